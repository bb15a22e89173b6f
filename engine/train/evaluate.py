"""Measured quality of a score model: the numbers in its model card.

``disco-musica eval score --model score-base --corpus data/music21`` runs
:func:`evaluate_score_model` and writes a JSON report plus a Markdown table:

- per style, ``pieces_per_style`` pieces generated from condition tokens alone (keys cycle
  through all 24 major and minor keys): share that decode to valid MIDI (written and re-read),
  key adherence (music21's key analysis equals the requested tonic and mode), pitch-in-scale
  rate and pitch-class entropy, next to the same two figures for held-out corpus pieces;
- validation NLL per style (nats per token on the held-out windows);
- harmonisation: for held-out chorales, the soprano is given and alto, tenor and bass are
  generated; parallel fifths/octaves per 100 beats of the result next to Bach's own rate on
  the same chorales.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from symusic import Score

from engine import names
from engine.progress import Progress, ProgressFn
from engine.seeds import derive_seed
from engine.symbolic.tokenizer import MODES, STYLES, TONICS

DEFAULT_PIECES_PER_STYLE = 20
DEFAULT_BARS = names.DEFAULT_BARS
DEFAULT_HARMONIZATIONS = 20
# Ensemble sizes typical of each style, used as the Voices condition.
STYLE_VOICES = names.STYLE_VOICES


def _valid_midi(score: Score) -> bool:
    """Write the score as a MIDI file and read it back: valid if it re-reads with notes."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.mid"
        score.dump_midi(path)
        again = Score(path)
    return again.note_num() == score.note_num() and score.note_num() > 0


def _corpus_reference(ds, style: str, limit: int = 40) -> dict:
    from engine.symbolic.quality import pitch_class_entropy, pitch_in_scale_rate

    tok = ds.tokenizer
    rates, ents = [], []
    for p in [p for p in ds.val if p.style == style][:limit]:
        seq = ds.window(p, 0, max_tokens=1024)
        if seq is None:
            continue
        score = tok.decode(seq)
        if score.note_num() == 0:
            continue
        rates.append(pitch_in_scale_rate(score, p.tonic, p.mode))
        ents.append(pitch_class_entropy(score))
    return {
        "pieces": len(rates),
        "pitch_in_scale_rate": float(np.mean(rates)) if rates else math.nan,
        "pitch_class_entropy": float(np.mean(ents)) if ents else math.nan,
    }


def validation_nll(model, ds) -> dict[str, float]:
    """Mean NLL (nats per token) of the held-out windows, per style and overall."""
    import mlx.core as mx

    from engine.data.dataset import val_batches
    from engine.train.trainer import token_nll

    windows = ds.val_windows(model.args.max_position_embeddings)
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for x, n, styles in val_batches(windows, ds.tokenizer.pad_id):
        nll, ntok = token_nll(model, mx.array(x), mx.array(n))
        mx.eval(nll, ntok)
        nll, ntok = np.array(nll), np.array(ntok)
        for i, s in enumerate(styles):
            sums[s] = sums.get(s, 0.0) + float(nll[i])
            counts[s] = counts.get(s, 0.0) + float(ntok[i])
    out = {s: sums[s] / counts[s] for s in sorted(sums)}
    out["all"] = sum(sums.values()) / sum(counts.values())
    return out


def _soprano_index(score: Score) -> int:
    med = [np.median([n.pitch for n in t.notes]) if len(t.notes) else -1 for t in score.tracks]
    return int(np.argmax(med))


def evaluate_score_model(
    model_name: str | Path,
    corpus_dir: str | Path,
    *,
    pieces_per_style: int = DEFAULT_PIECES_PER_STYLE,
    bars: int = DEFAULT_BARS,
    harmonizations: int = DEFAULT_HARMONIZATIONS,
    seed: int = 0,
    key_strength: float | None = None,
    nll: bool = True,
    progress: ProgressFn | None = None,
) -> dict:
    """Run the whole evaluation; return the report as a dict.

    ``key_strength`` is passed to generation (None: the API default; 0: the model alone).
    ``nll=False`` skips the validation NLL (it does not depend on sampling settings).
    """
    from engine.data.dataset import ScoreDataset
    from engine.symbolic.quality import (
        analyze_key,
        parallel_perfects_per_100_beats,
        pitch_class_entropy,
        pitch_in_scale_rate,
    )
    from engine.symbolic.score_api import DEFAULT_KEY_STRENGTH, load

    if key_strength is None:
        key_strength = DEFAULT_KEY_STRENGTH

    t0 = time.time()
    m = load(model_name)
    ds = ScoreDataset(corpus_dir, tokenizer=m.tokenizer)
    keys = [(t, mode) for mode in MODES for t in range(12)]
    report: dict = {
        "model": str(model_name),
        "bars": bars,
        "key_strength": key_strength,
        "styles": {},
    }
    for style in STYLES:
        rows = []
        for i in range(pieces_per_style):
            tonic, mode = keys[(i * 5 + STYLES.index(style)) % len(keys)]
            piece_seed = derive_seed(seed, "piece", i)
            g = m.generate(
                style=style,
                key=TONICS[tonic],
                mode=mode,
                voices=STYLE_VOICES[style],
                bars=bars,
                seed=piece_seed,
                key_strength=key_strength,
            )
            score = g.score
            row = {"seed": piece_seed, "tonic": tonic, "mode": mode, "valid": _valid_midi(score)}
            if row["valid"]:
                found = analyze_key(score)
                row.update(
                    found_key=list(found),
                    key_ok=found == (tonic, mode),
                    in_scale=pitch_in_scale_rate(score, tonic, mode),
                    entropy=pitch_class_entropy(score),
                    finish=g.finish_reason,
                )
            rows.append(row)
            if progress:
                progress(Progress(style, i + 1, pieces_per_style))
        valid = [r for r in rows if r["valid"]]
        report["styles"][style] = {
            "generated": len(rows),
            "valid_midi_share": len(valid) / len(rows),
            "key_adherence": float(np.mean([r["key_ok"] for r in valid])) if valid else 0.0,
            "pitch_in_scale_rate": float(np.mean([r["in_scale"] for r in valid])),
            "pitch_class_entropy": float(np.mean([r["entropy"] for r in valid])),
            "corpus": _corpus_reference(ds, style),
            "pieces": rows,
        }
    if nll:
        report["validation_nll"] = validation_nll(m.model, ds)
    report["harmonization"] = _harmonization(
        m, ds, harmonizations, seed, key_strength, progress, parallel_perfects_per_100_beats
    )
    report["wall_time_s"] = time.time() - t0
    return report


def _harmonization(m, ds, n: int, seed: int, key_strength: float, progress, parallels) -> dict:
    """Soprano given, alto/tenor/bass generated, on held-out 4-voice chorales."""
    tok = ds.tokenizer
    chorales = [p for p in ds.val if p.style == "chorale" and len(p.tracks) == 4][:n]
    gen_counts = {"fifths": 0, "octaves": 0, "beats": 0.0}
    bach_counts = {"fifths": 0, "octaves": 0, "beats": 0.0}
    done = 0
    for i, p in enumerate(chorales):
        seq = ds.window(p, 0, max_tokens=m.context // 2)
        if seq is None:
            continue
        original = tok.decode(seq)
        if len(original.tracks) != 4:
            continue
        soprano = original.copy()
        soprano.tracks = [original.tracks[_soprano_index(original)]]
        g = m.add_tracks(
            soprano,
            parts=["alto", "tenor", "bass"],
            style="chorale",
            seed=derive_seed(seed, "chorale", i),
            key_strength=key_strength,
        )
        for counts, score in ((gen_counts, g.score), (bach_counts, original)):
            _, d = parallels(score)
            for k in counts:
                counts[k] += d[k]
        done += 1
        if progress:
            progress(Progress("harmonization", i + 1, len(chorales)))

    def rate(c):
        return 100.0 * (c["fifths"] + c["octaves"]) / c["beats"] if c["beats"] else math.nan

    return {
        "chorales": done,
        "generated": {**gen_counts, "per_100_beats": rate(gen_counts)},
        "bach": {**bach_counts, "per_100_beats": rate(bach_counts)},
    }


def report_markdown(report: dict) -> str:
    """The report as the Markdown tables of the model card."""
    lines = [
        "| style | valid MIDI | key adherence | in-scale (gen / corpus) | "
        "PC entropy bits (gen / corpus) | val NLL |",
        "|---|---|---|---|---|---|",
    ]
    nll = report.get("validation_nll", {})
    for style, r in report["styles"].items():
        c = r["corpus"]
        lines.append(
            f"| {style} | {r['valid_midi_share']:.0%} ({r['generated']}) | "
            f"{r['key_adherence']:.0%} | {r['pitch_in_scale_rate']:.3f} / "
            f"{c['pitch_in_scale_rate']:.3f} | {r['pitch_class_entropy']:.2f} / "
            f"{c['pitch_class_entropy']:.2f} | {_fmt(nll.get(style))} |"
        )
    if nll:
        lines.append(f"| **all** | | | | | {nll['all']:.3f} |")
    lines.insert(0, f"Key strength {report['key_strength']:g} (0 = the model alone).\n")
    h = report["harmonization"]
    lines += [
        "",
        f"Harmonisation of {h['chorales']} held-out chorales (soprano given; alto, tenor, bass "
        "generated): parallel fifths + octaves per 100 beats",
        "",
        "| | fifths | octaves | beats | per 100 beats |",
        "|---|---|---|---|---|",
    ]
    for who in ("generated", "bach"):
        x = h[who]
        lines.append(
            f"| {who} | {x['fifths']} | {x['octaves']} | {x['beats']:.0f} | "
            f"{x['per_100_beats']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def check_report_target(out: str | Path, *, make_parent: bool = False) -> tuple[Path, Path]:
    """PATH.json and PATH.md for ``--out PATH``, after checking that each is new or an
    earlier report of `disco-musica eval` (which is then replaced), and that PATH's folder
    exists (or, ``make_parent``, may be made). Raises `OutputError`."""
    from engine.errors import OutputError

    out = Path(out).expanduser()
    if out.name in ("", ".", ".."):
        raise OutputError(f"--out {out} names a folder; give a report path such as {out / 'eval'}")
    if not make_parent and not out.absolute().parent.is_dir():
        raise OutputError(f"{out.absolute().parent} does not exist; create it or change --out")
    js, md = out.with_suffix(".json"), out.with_suffix(".md")
    for p in (js, md):
        if p.is_symlink() or (p.exists() and not p.is_file()):
            raise OutputError(f"{p} is not a file; choose another --out")
    if js.exists() or md.exists():
        try:
            ours = str(json.loads(js.read_text()).get("command", "")).startswith(
                "disco-musica eval"
            )
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise OutputError(
                f"{js if js.exists() else md} is not an earlier evaluation report; nothing was "
                "replaced: choose another --out"
            )
    return js, md


def write_report(
    report: dict, out: str | Path, *, make_parent: bool = True, markdown=None
) -> tuple[Path, Path]:
    """Write PATH.json and PATH.md (an earlier report there goes to the trash beside it);
    ``markdown`` turns the report into the .md text (default: `report_markdown`)."""
    from engine.record import make_dirs, trash_path, write_files

    js, md = check_report_target(out, make_parent=make_parent)
    make_dirs(js.parent)
    text = json.dumps(report, indent=1, default=float)
    md_text = (markdown or report_markdown)(report)
    for p in (js, md):  # checked above: ours, so they may be replaced
        if p.exists():
            trash = trash_path(p)
            trash.parent.mkdir(exist_ok=True)
            os.rename(p, trash)
    write_files([(js, text.encode()), (md, md_text.encode())], force=False)
    return js, md
