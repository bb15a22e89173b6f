"""Variations written together against one after another, measured in one run.

    python -m tests.bench.bench_variations [--count 4] [--seconds 30] [--repeats 2]

(a) decoding speed: tokens per second (every token the score model writes: sampled and
    forced, section prompts excluded) for ``--count`` variations of each prompt written as
    one batch (`engine.pipelines.compose.compose_variations`), against the same seeds written one
    after another (`engine.pipelines.compose.compose`); target: batched >= 2.5x;
(b) prompt to files: the wall time of ``disco-musica generate PROMPT --variations N`` for
    ``--seconds`` of music each (composing together, then every file of every piece: WAV,
    MIDI, MusicXML, generation.json), divided by the music made (target <= 1/10).
The model is loaded once before timing (as in a running studio session); the best of
``--repeats`` runs is kept for each side.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from engine import generate as G
from engine.pipelines import compose as C
from engine.symbolic.score_api import load

PROMPTS = (
    "a calm chorale in G major for choir",
    "a melancholy waltz for string quartet in D minor",
    "a lively jig in D major for fiddle and guitar",
)
SPEEDUP_TARGET = 2.5
WALL_TARGET = 0.1


class TokenCount:
    """Counts the tokens `generate_step` yields, in every thread."""

    def __init__(self):
        self.n = 0
        self.inner = G.generate_step

    def __enter__(self):
        def counted(*args, **kwargs):
            for r in self.inner(*args, **kwargs):
                self.n += 1
                yield r

        G.generate_step = counted
        return self

    def __exit__(self, *exc):
        G.generate_step = self.inner


def timed(fn) -> tuple[float, int, object]:
    with TokenCount() as count:
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, count.n, out


def bench(count: int, seconds: float, repeats: int) -> None:
    model = load("score-base")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    C.compose(PROMPTS[0], model=model, seconds=4, seed=0)  # warm-up: traces, caches
    C.compose_variations(PROMPTS[0], model=model, seconds=4, seed=0, count=count)
    print(f"(a) {count} variations of {seconds:g} s: batched against one after another")
    ratios, walls = [], []
    for prompt in PROMPTS:
        seq = bat = None
        for _ in range(repeats):
            s = timed(
                lambda p=prompt: [
                    C.compose(p, model=model, seconds=seconds, seed=i) for i in range(1, count + 1)
                ]
            )
            b = timed(
                lambda p=prompt: C.compose_variations(
                    p, model=model, seconds=seconds, seed=1, count=count
                )
            )
            seq = s if seq is None or s[0] < seq[0] else seq
            bat = b if bat is None or b[0] < bat[0] else bat
        seq_rate, bat_rate = seq[1] / seq[0], bat[1] / bat[0]
        ratios.append(bat_rate / seq_rate)
        print(f"    {prompt!r}")
        print(
            f"      one after another {seq[0]:5.2f} s ({seq[1]} tokens, {seq_rate:5.0f} tok/s); "
            f"batched {bat[0]:5.2f} s ({bat[1]} tokens, {bat_rate:5.0f} tok/s) -> "
            f"{ratios[-1]:.2f}x"
        )
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            pieces = C.compose_variations(prompt, model=model, seconds=seconds, seed=1, count=count)
            for i, piece in enumerate(pieces):
                piece.save(Path(tmp) / f"variation-{i + 1}")
            wall = time.perf_counter() - t0
        music = sum(p.plan.seconds for p in pieces)
        walls.append(wall / music)
        print(
            f"      prompt to files of all {count}: {wall:5.2f} s for {music:.0f} s of music -> "
            f"ratio {walls[-1]:.3f}"
        )
    worst = min(ratios)
    verdict = "meets" if worst >= SPEEDUP_TARGET else "below"
    print(f"    slowest speed-up {worst:.2f}x (target >= {SPEEDUP_TARGET}x: {verdict})")
    verdict = "meets" if max(walls) <= WALL_TARGET else "below"
    print(f"(b) worst prompt-to-files ratio {max(walls):.3f} (target <= {WALL_TARGET}: {verdict})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    bench(args.count, args.seconds, args.repeats)


if __name__ == "__main__":
    main()
