"""Transcription accuracy of Basic Pitch on rendered Bach chorales: MLX port vs onnxruntime.

    python -m tests.bench.eval_basic_pitch [--pieces 10] [--write-docs]

The first ``--pieces`` chorales of the score model's held-out list
(docs/models/score-base-heldout.txt) are read from the music21 corpus
(``engine.symbolic.midi``, 96 BPM, piano), rendered with the General MIDI SoundFont
(``engine.audio.render.render_midi``, 44.1 kHz, no effects), and transcribed with basic-pitch's
default settings twice: by the MLX model with ``engine.pipelines.transcribe``, and by basic-pitch's
own ``predict`` running ``nmp.onnx`` in onnxruntime. mir_eval's note precision / recall / F1
against the score's notes: onset-only (50 ms onset tolerance) and with offsets (also the
offset within 20 % of the note or 50 ms). ``--write-docs`` puts the table into
docs/models/basic-pitch.md between its ``eval`` markers. Needs basic-pitch (``--no-deps``),
onnxruntime, mir_eval and music21.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = ROOT / "docs" / "models" / "score-base-heldout.txt"
DOC = ROOT / "docs" / "models" / "basic-pitch.md"
SAMPLE_RATE = 44100
TEMPO_BPM = 96.0


def chorales(n: int) -> list[str]:
    rows = [line.split("\t") for line in HELDOUT.read_text().splitlines() if "\t" in line]
    return [path for style, path in rows if style == "chorale"][:n]


def ground_truth(corpus_path: str):
    """(symusic Score in ticks, intervals [N, 2] s, pitches [N] MIDI) of a corpus piece."""
    from music21 import corpus

    from engine.symbolic.midi import score_from_music21

    score = score_from_music21(corpus.parse(corpus_path), tempo_bpm=TEMPO_BPM, program=0)
    seconds = score.to("second")
    notes = [(n.time, n.end, n.pitch) for t in seconds.tracks for n in t.notes]
    # the same pitch held by two voices at once sounds (and is transcribed) as one note
    notes = sorted(set(notes))
    intervals = np.array([[s, e] for s, e, _ in notes])
    pitches = np.array([p for _, _, p in notes])
    return score, intervals, pitches


def scores(ref_iv, ref_p, notes) -> dict:
    import mir_eval

    def hz(p):
        return 440.0 * 2 ** ((np.asarray(p, dtype=float) - 69) / 12)

    est_iv = np.array([[n[0], n[1]] for n in notes]).reshape(-1, 2)
    est_p = np.array([n[2] for n in notes])
    out = {}
    for name, ratio in (("onset", None), ("offset", 0.2)):
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            ref_iv, hz(ref_p), est_iv, hz(est_p), offset_ratio=ratio
        )
        out[name] = {"precision": p, "recall": r, "f1": f}
    return out


def evaluate(n_pieces: int) -> dict:
    import soundfile as sf

    from engine.audio.render import render_midi
    from engine.models.basic_pitch import BasicPitch
    from engine.pipelines.transcribe import transcribe

    logging.disable(logging.WARNING)
    from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
    from basic_pitch.inference import Model, predict

    logging.disable(logging.NOTSET)
    onnx_model = Model(build_icassp_2022_model_path(FilenameSuffix.onnx))
    assert onnx_model.model_type == Model.MODEL_TYPES.ONNX
    mlx_model = BasicPitch.load()
    rows = []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for path in chorales(n_pieces):
            score, ref_iv, ref_p = ground_truth(path)
            audio = render_midi(score, sample_rate=SAMPLE_RATE)
            wav = Path(tmp) / "piece.wav"
            sf.write(wav, audio, SAMPLE_RATE, subtype="FLOAT")
            t0 = time.perf_counter()
            ours = transcribe(wav, pitch_bends=True, model=mlx_model).notes
            t1 = time.perf_counter()
            _, _, theirs = predict(wav, onnx_model)
            t2 = time.perf_counter()
            ours_t = [n.as_tuple() for n in ours]
            same = len(ours_t) == len(theirs) and all(
                a[2] == b[2] and a[0] == b[0] and a[1] == b[1]
                for a, b in zip(ours_t, theirs, strict=False)
            )
            row = {
                "piece": path,
                "seconds": round(audio.shape[0] / SAMPLE_RATE, 2),
                "reference_notes": int(ref_p.shape[0]),
                "mlx": {**scores(ref_iv, ref_p, ours_t), "notes": len(ours_t), "time_s": t1 - t0},
                "onnx": {
                    **scores(ref_iv, ref_p, theirs),
                    "notes": len(theirs),
                    "time_s": t2 - t1,
                },
                "identical_notes": bool(same),
            }
            rows.append(row)
            print(
                f"{path}: {row['seconds']:.0f} s, {row['reference_notes']} notes; F1 onset "
                f"MLX {row['mlx']['onset']['f1']:.3f} ONNX {row['onnx']['onset']['f1']:.3f}; "
                f"with offsets MLX {row['mlx']['offset']['f1']:.3f} "
                f"ONNX {row['onnx']['offset']['f1']:.3f}; identical notes: {same}",
                flush=True,
            )
    return {"pieces": rows, "summary": summary(rows)}


def summary(rows: list[dict]) -> dict:
    out = {}
    for side in ("mlx", "onnx"):
        out[side] = {
            kind: {
                m: float(np.mean([r[side][kind][m] for r in rows]))
                for m in ("precision", "recall", "f1")
            }
            for kind in ("onset", "offset")
        }
    out["identical_pieces"] = sum(r["identical_notes"] for r in rows)
    out["pieces"] = len(rows)
    out["audio_seconds"] = float(sum(r["seconds"] for r in rows))
    return out


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = [
        f"{s['pieces']} held-out Bach chorales ({s['audio_seconds'] / 60:.1f} min of audio), "
        "mean over pieces; basic-pitch's default settings (onset 0.5, frame 0.3, 127.7 ms, "
        "melodia trick); mir_eval note scores against the score.",
        "",
        "| model | onset P | onset R | onset F1 | with offsets P | R | F1 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for side, label in (("mlx", "MLX port (this project)"), ("onnx", "basic-pitch ONNX")):
        o, f = s[side]["onset"], s[side]["offset"]
        lines.append(
            f"| {label} | {o['precision']:.3f} | {o['recall']:.3f} | {o['f1']:.3f} | "
            f"{f['precision']:.3f} | {f['recall']:.3f} | {f['f1']:.3f} |"
        )
    lines += [
        "",
        f"Identical note lists (same count, pitches, start and end frames): "
        f"{s['identical_pieces']} of {s['pieces']} pieces.",
        "",
        "| piece | s | notes (score) | notes (MLX / ONNX) | F1 onset MLX / ONNX | "
        "F1 offsets MLX / ONNX |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["pieces"]:
        lines.append(
            f"| {r['piece']} | {r['seconds']:.0f} | {r['reference_notes']} | "
            f"{r['mlx']['notes']} / {r['onnx']['notes']} | {r['mlx']['onset']['f1']:.3f} / "
            f"{r['onnx']['onset']['f1']:.3f} | {r['mlx']['offset']['f1']:.3f} / "
            f"{r['onnx']['offset']['f1']:.3f} |"
        )
    return "\n".join(lines)


def write_docs(table: str, marker: str = "eval") -> None:
    text = DOC.read_text()
    pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(\n<!-- {marker}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC} has no <!-- {marker}:start --> ... <!-- {marker}:end --> markers")
    DOC.write_text(pattern.sub(lambda m: m.group(1) + table + m.group(2), text))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pieces", type=int, default=10)
    ap.add_argument("--json", type=Path, help="also write the full results here")
    ap.add_argument("--write-docs", action="store_true", help="update docs/models/basic-pitch.md")
    args = ap.parse_args()
    result = evaluate(args.pieces)
    table = markdown(result)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.write_docs:
        write_docs(table)


if __name__ == "__main__":
    main()
