"""Text-to-music benchmarks, measured in one run on this machine.

    python -m tests.bench.bench_generate [--seconds 30] [--repeats 3]

(a) wall time from prompt to all files (WAV, MIDI, MusicXML, generation.json) for
    ``--seconds`` of music with the shipped model, as a ratio of that wall time to the
    music's duration (target <= 1/10), split into composing, notation and audio;
(b) audio render speed: seconds of music rendered per second of wall time, for the SoundFont
    synthesis itself (MIDI to samples; target >= 100x real time) and for the whole audio
    chain (synthesis, effects, loudness normalisation).
The model is loaded once before timing (as in a running studio session).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from engine.pipelines import compose as C
from engine.symbolic.score_api import load

PROMPTS = (
    "a calm chorale in G major for choir",
    "a lively jig in D major for fiddle and guitar",
    "a melancholy waltz for string quartet in D minor",
)
WALL_TARGET = 0.1
RENDER_TARGET = 100.0


def bench(seconds: float, repeats: int) -> None:
    from engine.audio.render import render_audio, render_midi, write_audio
    from engine.symbolic.notation import write_musicxml

    model = load("score-base")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"(a) prompt to files, {seconds:g} s of music, best of {repeats} seeds per prompt")
    worst_ratio, render_rates, synth_rates = 0.0, [], []
    for prompt in PROMPTS:
        best = None
        for seed in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                comp = C.compose(prompt, model=model, seconds=seconds, seed=seed)
                t1 = time.perf_counter()
                write_musicxml(comp.score, Path(tmp) / "x.musicxml")
                t2 = time.perf_counter()
                audio, info = render_audio(comp.midi_bytes())
                write_audio(audio, info.get("sample_rate", 44100), Path(tmp) / "x.wav")
                t3 = time.perf_counter()
                comp.save(Path(tmp) / "all")  # the real path, all files and the record
                t4 = time.perf_counter()
                render_midi(comp.midi_bytes())
                t5 = time.perf_counter()
            music = comp.plan.seconds
            synth_rates.append(music / (t5 - t4))
            render_rates.append(music / (t3 - t2))
            total = t4 - t3
            if best is None or total < best[0]:
                best = (total, t1 - t0, t2 - t1, t3 - t2, music)
        total, comp_s, xml_s, audio_s, music = best
        ratio = (comp_s + total) / music  # composing + writing every file
        worst_ratio = max(worst_ratio, ratio)
        print(f"    {prompt!r}")
        print(
            f"      {music:5.1f} s of music: compose {comp_s:5.2f} s, files {total:5.2f} s "
            f"(notation {xml_s:.2f} s, audio {audio_s:.2f} s) -> ratio {ratio:.3f}"
        )
    verdict = "meets" if worst_ratio <= WALL_TARGET else "below"
    print(f"    worst ratio {worst_ratio:.3f} (target <= {WALL_TARGET}: {verdict})")
    synth, chain = max(synth_rates), max(render_rates)
    verdict = "meets" if synth >= RENDER_TARGET else "below"
    print(f"(b) synthesis: {synth:.0f}x real time (target >= {RENDER_TARGET:.0f}x: {verdict})")
    print(f"    whole audio chain (synthesis, effects, loudness, WAV): {chain:.0f}x real time")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    bench(a.seconds, a.repeats)


if __name__ == "__main__":
    main()
