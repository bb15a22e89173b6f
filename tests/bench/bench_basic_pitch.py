"""Basic Pitch speed: the MLX port against onnxruntime, on the same audio in one run.

    python -m tests.bench.bench_basic_pitch [--seconds 30] [--repeats 5] [--rounds 2]

Audio: a Bach chorale rendered with the GM SoundFont (44.1 kHz stereo), cut to
``--seconds``. Each runtime is timed in a process of its own (a loaded onnxruntime session
slowed MLX by a quarter in the same process here), the two taking turns ``--rounds`` times,
``--repeats`` timings a turn after one warm-up; best and median:

(a) the network: the 22050 Hz mono audio through the model, windows and unwrapping
    included; MLX (``BasicPitch.run``) vs onnxruntime running ``nmp.onnx`` one window at a
    time (as basic-pitch's ``run_inference`` does) and all windows in one batch;
(b) end to end, file to note events: ``engine.pipelines.transcribe.transcribe(path)`` vs
basic-pitch's
    ``predict(path)`` (reading, resampling, network and note creation).

Target: the MLX port is not slower than onnxruntime. ``--write-docs`` puts the table into
docs/models/basic-pitch.md between its ``bench`` markers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# pause before each timing: onnxruntime's idle threads spin for a while after a run, and on a
# small machine they would slow whatever is timed next
SETTLE_S = 0.5
ROOT = Path(__file__).resolve().parents[2]


def _audio(seconds: float) -> tuple[np.ndarray, int]:
    from music21 import corpus

    from engine.audio.render import render_midi
    from engine.symbolic.midi import score_from_music21

    score = score_from_music21(corpus.parse("bach/bwv66.6.mxl"), tempo_bpm=60.0)
    sr = 44100
    audio = render_midi(score, sample_rate=sr)
    while audio.shape[0] < seconds * sr:
        audio = np.concatenate([audio, audio])
    return audio[: int(seconds * sr)], sr


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        time.sleep(SETTLE_S)
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def worker(side: str, seconds: float, repeats: int) -> dict[str, list[float]]:
    """Time one side's cases in this process (the other runtime is never loaded here)."""
    import soundfile as sf

    from engine.models.basic_pitch import prepare_audio, window_audio

    audio, sr = _audio(seconds)
    mono = prepare_audio(audio, sr)
    cases = {}
    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / "audio.wav"
    sf.write(path, audio, sr, subtype="FLOAT")
    if side == "mlx":
        from engine.models.basic_pitch import BasicPitch
        from engine.pipelines.transcribe import transcribe

        model = BasicPitch.load()
        cases["mlx network"] = lambda: model.run(mono)
        cases["mlx file to notes"] = lambda: transcribe(path, pitch_bends=True, model=model)
    else:
        logging.disable(logging.WARNING)
        from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
        from basic_pitch.inference import Model, predict

        ref = Model(build_icassp_2022_model_path(FilenameSuffix.onnx))
        assert ref.model_type == Model.MODEL_TYPES.ONNX
        session, windows = ref.model, np.stack(list(window_audio(mono)))[..., None]
        name = session.get_inputs()[0].name

        def by_window():
            for w in windows:
                session.run(None, {name: w[None]})

        cases["onnxruntime network, window by window"] = by_window
        cases["onnxruntime network, one batch"] = lambda: session.run(None, {name: windows})
        cases["basic-pitch file to notes (onnxruntime)"] = lambda: predict(path, ref)
    for fn in cases.values():  # warm-up
        fn()
    out = {label: _time(fn, repeats) for label, fn in cases.items()}
    tmp.cleanup()
    return out


def bench(seconds: float, repeats: int, rounds: int = 2) -> str:
    """Each side in its own process, ``rounds`` times in turn: mlx, onnx, mlx, onnx ..."""
    import onnxruntime as ort

    from engine.models.basic_pitch import window_audio

    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        for side in ("mlx", "onnx"):
            proc = subprocess.run(
                [sys.executable, "-m", "tests.bench.bench_basic_pitch", "--worker", side,
                 "--seconds", str(seconds), "--repeats", str(repeats)],
                capture_output=True, text=True, check=True, cwd=ROOT,
            )  # fmt: skip
            for label, times in json.loads(proc.stdout.splitlines()[-1]).items():
                results.setdefault(label, []).extend(times)
    order = [
        "mlx network",
        "onnxruntime network, window by window",
        "onnxruntime network, one batch",
        "mlx file to notes",
        "basic-pitch file to notes (onnxruntime)",
    ]
    n_windows = len(list(window_audio(np.zeros(int(seconds * 22050), np.float32))))
    load = os.getloadavg()[0]
    lines = [
        f"{seconds:g} s of rendered chorale (44.1 kHz stereo, {n_windows} windows); best and "
        f"median of {rounds * repeats} ({rounds} rounds of {repeats}, each runtime in its own "
        f"process); {platform.machine()}, {os.cpu_count()} cores, load average {load:.2f} at "
        f"the end; onnxruntime {ort.__version__} (CPU, default threads).",
        "",
        "| what | best s | median s | x real time (best) |",
        "| --- | --- | --- | --- |",
    ]
    for label in order:
        times = results[label]
        best, med = min(times), statistics.median(times)
        lines.append(f"| {label} | {best:.3f} | {med:.3f} | {seconds / best:.0f}x |")

    def ratio(a, b, f=min):
        return f(results[a]) / f(results[b])

    net, win, batch = "mlx network", order[1], order[2]
    e2e = ("mlx file to notes", order[4])
    lines += [
        "",
        f"MLX / onnxruntime time, best (median): network {ratio(net, win):.2f}x "
        f"({ratio(net, win, statistics.median):.2f}x) of window by window, "
        f"{ratio(net, batch):.2f}x ({ratio(net, batch, statistics.median):.2f}x) of one batch; "
        f"file to notes {ratio(*e2e):.2f}x ({ratio(*e2e, statistics.median):.2f}x).",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=5, help="timings per round and side")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--write-docs", action="store_true", help="update docs/models/basic-pitch.md")
    ap.add_argument("--worker", choices=("mlx", "onnx"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.seconds, args.repeats)))
        return
    table = bench(args.seconds, args.repeats, args.rounds)
    print(table)
    if args.write_docs:
        from tests.bench.eval_basic_pitch import write_docs

        write_docs(table, marker="bench")


if __name__ == "__main__":
    main()
