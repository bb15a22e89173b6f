"""Audio preprocessing throughput and memory, measured in one run.

    python -m tests.bench.bench_data_prep [--minutes 60] [--repeats 2] [--memory-hours 1,3,10]

(a) throughput: ``--minutes`` of varied test audio (WAV files of 30-120 s at 44.1 kHz, mono
    and stereo: chords, a melody, click tracks at several tempos over a bass line, noise
    bursts, silence at the ends) go through the real dataset path: imported
    (`engine.data.ingest.import_sources`), then ``prep_audio`` with resampling to 22050 Hz
    and features (mel, chroma, MFCC, centroid, roll-off, tempo and beats, key, loudness),
    on both cores. Against it, the same files in a plain loop, one after another:
    ``librosa.load(sr=22050)`` and the same features by plain librosa calls (each computing
    its own spectrogram, as a script would), the key from the mean chroma, the loudness by
    pyloudnorm. Reported: audio hours a minute of each and the ratio (target >= 2x), and
    the CPU seconds each used (all processes), which other work on the machine does not
    change. Both run as fresh processes, as a user runs them: ``disco-musica data prep audio
    DS --sample-rate 22050`` and a script; both clocks include librosa's start-up (its
    import compiles numba code: seconds), once in the script, once in each of the
    pipeline's two workers (at the same time). Each side runs ``--repeats`` times,
    alternating (the pipeline from the imported version each time); the best is kept.
(b) memory: for each of ``--memory-hours``, a fresh process imports and preprocesses that
    many hours (5-minute files at 8 kHz mono, to keep the disk small; prep: loudness -23
    LUFS, 5-30 s chunks, features) while this process samples the resident memory of it
    and its workers (psutil, every 0.1 s). Flat means the peak does not grow with the hours.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

import engine  # noqa: F401  (OpenBLAS before anything else)

SPEEDUP_TARGET = 2.0
MEMORY_FILE_S = 300
MEMORY_RATE = 8000


# ---- test audio ---------------------------------------------------------------------------------
def _hz(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


def _tone(hz: float, n: int, sr: int, partials: int = 4) -> np.ndarray:
    t = np.arange(n) / sr
    return sum(np.sin(2 * np.pi * hz * h * t) / h for h in range(1, partials + 1))


def piece(kind: int, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """[S] mono test music of one of five kinds."""
    n = int(seconds * sr)
    y = np.zeros(n)
    if kind == 0:  # chords, a new one every 2 s
        step = 2 * sr
        for i, start in enumerate(range(0, n, step)):
            root = 48 + (0, 5, 7, 9)[i % 4]
            for m in (root, root + 4, root + 7, root + 12):
                seg = min(step, n - start)
                y[start : start + seg] += 0.08 * _tone(_hz(m), seg, sr)
    elif kind == 1:  # a melody, notes of 0.25-0.5 s
        pos = 0
        while pos < n:
            seg = min(n - pos, int(rng.choice((0.25, 0.5)) * sr))
            env = np.exp(-np.arange(seg) / (0.3 * sr))
            y[pos : pos + seg] = 0.3 * env * _tone(_hz(60 + rng.integers(0, 12)), seg, sr)
            pos += seg
    elif kind == 2:  # clicks at a tempo over a bass line
        bpm = rng.uniform(70, 160)
        burst = int(0.01 * sr)
        for b in np.arange(0, seconds - 0.02, 60 / bpm):
            i = int(b * sr)
            y[i : i + burst] += 0.6 * rng.standard_normal(burst) * np.exp(-np.arange(burst) / 40)
        y += 0.2 * np.sin(2 * np.pi * _hz(36 + rng.integers(0, 7)) * np.arange(n) / sr)
    elif kind == 3:  # noise bursts (a drum-machine-like texture)
        for start in range(0, n, int(0.25 * sr)):
            seg = min(n - start, int(0.1 * sr))
            y[start : start + seg] = 0.2 * rng.standard_normal(seg)
    else:  # chords and clicks together
        y = 0.6 * piece(0, seconds, sr, rng) + 0.6 * piece(2, seconds, sr, rng)
    pad = int(rng.uniform(0.2, 1.5) * sr)  # silence at both ends
    y[:pad] = 0
    y[n - pad :] = 0
    return y.astype(np.float32)


def make_audio(folder: Path, minutes: float, sr: int, *, lengths=(30, 120), stereo=True):
    """WAV files (16-bit) adding up to ``minutes``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    left, paths, k = minutes * 60, [], 0
    while left > 0.5:
        seconds = min(left, float(rng.uniform(*lengths)) if lengths[0] < lengths[1] else lengths[0])
        y = piece(k % 5, seconds, sr, rng)
        if stereo and k % 2:
            y = np.stack([y, np.roll(y, int(0.01 * sr)) * 0.8], axis=1)
        p = folder / f"take{k:04d}.wav"
        sf.write(p, y, sr, subtype="PCM_16")
        paths.append(p)
        left -= seconds
        k += 1
    return paths


def audio_hours(paths) -> float:
    return sum(sf.info(str(p)).duration for p in paths) / 3600


# ---- (a) throughput ---------------------------------------------------------------------------
def plain_features(path: Path) -> dict:
    """What a plain script does for one file: librosa calls, one after another."""
    import librosa
    import pyloudnorm

    from engine.symbolic.theory import key_from_profile

    y, sr = librosa.load(path, sr=22050)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr))
    chroma = librosa.feature.chroma_stft(y=y, sr=sr)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr)
    rolloff = librosa.feature.spectral_rolloff(y=y, sr=sr)
    tempo, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
    profile = chroma.mean(axis=1)
    key = key_from_profile(profile) if profile.sum() > 0 else None
    loudness = pyloudnorm.Meter(sr).integrated_loudness(y.astype(np.float64))
    return {
        "mel": mel,
        "chroma": chroma,
        "mfcc": mfcc,
        "centroid": centroid,
        "rolloff": rolloff,
        "tempo": tempo,
        "beats": beats,
        "key": key,
        "lufs": loudness,
    }


def plain_loop(folder: str) -> None:
    """The plain script: every WAV in ``folder``, one after another."""
    for p in sorted(Path(folder).glob("*.wav")):
        plain_features(p)


def timed_run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and all its children) of a command."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def cli() -> list[str]:
    """The `disco-musica` command of this Python."""
    script = Path(sys.executable).parent / "disco-musica"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]


def throughput(minutes: float, work: Path, repeats: int = 2) -> dict:
    from engine.data.ingest import import_sources
    from engine.data.store import Dataset

    print(f"(a) making {minutes:g} minutes of test audio (44.1 kHz WAV) ...", flush=True)
    paths = make_audio(work / "takes", minutes, 44100)
    hours = audio_hours(paths)
    print(f"    {len(paths)} files, {hours * 60:.1f} min", flush=True)

    ds = Dataset.create(work / "ds")
    t0 = time.perf_counter()
    imp = import_sources(ds, [str(work / "takes")])
    t_import = time.perf_counter() - t0
    assert not imp.skipped and len(imp.added) == len(paths), imp.skipped
    load = os.getloadavg()[0]
    imported = Dataset.open(ds.path).head
    runs_prep, runs_plain = [], []
    for r in range(repeats):
        # the command a user types, in a fresh process (its workers start in it)
        Dataset.open(ds.path).checkout(imported)  # each run prepares the imported files
        cmd = [*cli(), "data", "prep", "audio", str(ds.path), "--sample-rate", "22050"]
        runs_prep.append(timed_run(cmd))
        made = Dataset.open(ds.path).items()
        assert len(made) == len(paths) and all("features" in i.extras for i in made)
        # the plain script, in a fresh process too
        mod = [sys.executable, "-m", "tests.bench.bench_data_prep"]
        runs_plain.append(timed_run([*mod, "--plain-loop", str(work / "takes")]))
        load = max(load, os.getloadavg()[0])
        print(
            f"    run {r + 1}: pipeline prep {runs_prep[-1][0]:.1f} s (import "
            f"{t_import:.1f} s), plain loop {runs_plain[-1][0]:.1f} s",
            flush=True,
        )
    t_prep, cpu_prep = min(runs_prep)
    t_plain, cpu_plain = min(runs_plain)
    ours = hours / (t_prep / 60)
    with_import = hours / ((t_prep + t_import) / 60)
    plain = hours / (t_plain / 60)
    return {
        "files": len(paths),
        "audio_minutes": round(hours * 60, 2),
        "import_s": round(t_import, 2),
        "prep_s": round(t_prep, 2),
        "plain_s": round(t_plain, 2),
        "prep_cpu_s": round(cpu_prep, 2),
        "plain_cpu_s": round(cpu_plain, 2),
        "prep_hours_per_min": round(ours, 3),
        "import_and_prep_hours_per_min": round(with_import, 3),
        "plain_hours_per_min": round(plain, 3),
        "ratio": round(ours / plain, 2),
        "ratio_with_import": round(with_import / plain, 2),
        "cpu_ratio": round(cpu_plain / cpu_prep, 2),
        "load_average": round(load, 2),
        "runs_prep_s": [round(w, 2) for w, _ in runs_prep],
        "runs_plain_s": [round(w, 2) for w, _ in runs_plain],
    }


# ---- (b) memory -------------------------------------------------------------------------------
def memory_child(folder: str, hours: float) -> None:
    """In a fresh process: make ``hours`` of 8 kHz audio, import it, preprocess it."""
    from engine.data.audio_prep import AudioPrep, prep_audio
    from engine.data.ingest import import_sources
    from engine.data.store import Dataset

    work = Path(folder)
    t0 = time.perf_counter()
    make_audio(
        work / "src",
        hours * 60,
        MEMORY_RATE,
        lengths=(MEMORY_FILE_S, MEMORY_FILE_S),
        stereo=False,
    )
    t_make = time.perf_counter() - t0
    print(json.dumps({"phase": "import"}), flush=True)
    ds = Dataset.create(work / "ds")
    t0 = time.perf_counter()
    imp = import_sources(ds, [str(work / "src")])
    t_import = time.perf_counter() - t0
    print(json.dumps({"phase": "prep"}), flush=True)
    t0 = time.perf_counter()
    opts = AudioPrep(loudness_lufs=-23.0, segment_s=(5.0, 30.0))
    report = prep_audio(ds, opts, workers=2)
    t_prep = time.perf_counter() - t0
    out = {
        "phase": "done",
        "imported": len(imp.added),
        "chunks": len(report.made),
        "skipped": len(report.skipped),
        "make_s": round(t_make, 1),
        "import_s": round(t_import, 1),
        "prep_s": round(t_prep, 1),
    }
    print(json.dumps(out), flush=True)


def memory(hours: float, work: Path) -> dict:
    import psutil

    folder = work / f"mem-{hours:g}h"
    cmd = [sys.executable, "-m", "tests.bench.bench_data_prep", "--memory-child", str(folder)]
    cmd += ["--memory-hours", str(hours)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=Path.cwd())
    root = psutil.Process(proc.pid)
    peak = {"make": 0.0, "import": 0.0, "prep": 0.0}
    peak_main = dict(peak)
    phase = "make"
    lines: list[str] = []
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    while proc.poll() is None:
        for _ in sel.select(timeout=0.1):
            line = proc.stdout.readline()
            if line:
                lines.append(line)
                phase = json.loads(line).get("phase", phase) if line.startswith("{") else phase
        try:
            procs = [root, *root.children(recursive=True)]
            rss = []
            for p in procs:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            key = phase if phase in peak else "prep"
            peak[key] = max(peak[key], sum(rss) / 2**20)
            peak_main[key] = max(peak_main[key], rss[0] / 2**20 if rss else 0)
        except psutil.NoSuchProcess:
            break
    lines += proc.stdout.readlines()
    proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"the {hours:g} h run failed ({proc.returncode})")
    done = json.loads(next(ln for ln in reversed(lines) if '"done"' in ln))
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "hours": hours,
        **{k: v for k, v in done.items() if k != "phase"},
        "peak_import_mb": round(peak["import"], 1),
        "peak_prep_total_mb": round(peak["prep"], 1),
        "peak_prep_main_mb": round(peak_main["prep"], 1),
    }


# ---- the run ------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="test audio for (a)")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each side in (a); best kept")
    ap.add_argument("--memory-hours", default="1,3,10", help="hours for (b), comma-separated")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-child", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--plain-loop", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain_loop:
        plain_loop(args.plain_loop)
        return
    if args.memory_child:
        memory_child(args.memory_child, float(args.memory_hours))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-data-prep-"))
    print(f"machine: {os.cpu_count()} cores; work in {work}")
    results: dict = {}
    try:
        if not args.skip_throughput:
            a = results["throughput"] = throughput(args.minutes, work, args.repeats)
            print(
                f"(a) {a['audio_minutes']:.1f} min of audio in {a['files']} files:\n"
                f"    pipeline (prep, 2 workers): {a['prep_hours_per_min']:.3f} audio h/min "
                f"({a['prep_s']:.1f} s); with the import {a['import_and_prep_hours_per_min']:.3f}"
                f" h/min\n"
                f"    plain librosa loop:         {a['plain_hours_per_min']:.3f} audio h/min "
                f"({a['plain_s']:.1f} s)\n"
                f"    ratio {a['ratio']:.2f}x (with the import {a['ratio_with_import']:.2f}x); "
                f"target >= {SPEEDUP_TARGET:g}x: "
                + ("met" if a["ratio"] >= SPEEDUP_TARGET else "NOT met")
                + f"\n    CPU seconds: pipeline {a['prep_cpu_s']:.1f} (all processes), plain "
                f"{a['plain_cpu_s']:.1f}: {a['cpu_ratio']:.2f}x less work a file"
                f"\n    load average of this machine meanwhile: {a['load_average']:.1f} "
                f"on {os.cpu_count()} cores (other work takes cores from the two workers)",
                flush=True,
            )
        if not args.skip_memory:
            rows = []
            for h in (float(x) for x in args.memory_hours.split(",")):
                print(f"(b) {h:g} h of {MEMORY_RATE} Hz audio: import and prep ...", flush=True)
                row = memory(h, work)
                rows.append(row)
                print(
                    f"    {row['chunks']} chunks; import {row['import_s']} s, prep "
                    f"{row['prep_s']} s; peak RSS import {row['peak_import_mb']:.0f} MB, "
                    f"prep {row['peak_prep_total_mb']:.0f} MB (main "
                    f"{row['peak_prep_main_mb']:.0f} MB + workers)",
                    flush=True,
                )
            results["memory"] = rows
            if len(rows) >= 2:
                grow = rows[-1]["peak_prep_total_mb"] / max(rows[0]["peak_prep_total_mb"], 1)
                print(
                    f"(b) peak RSS from {rows[0]['hours']:g} h to {rows[-1]['hours']:g} h: "
                    f"x{grow:.2f} ({'flat' if grow < 1.25 else 'GROWS'})"
                )
        print(json.dumps(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
