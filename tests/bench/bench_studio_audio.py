"""Live playback benchmark: changes heard while a piece plays, and the interface's frame gaps.

    python -m tests.bench.bench_studio_audio [--changes 20] [--seed 0]

A 4-part, 16-bar piece at 120 BPM (one bar = 2.0 s) plays on a ClockSink (silent, at the
wall clock's pace) while ``--changes`` changes come at random times: tempo up or down, the
velocities scaled, the program of one part, each from the bar after the playhead.  For each:

(a) change → changed audio ready: the first bars rendered (in the render process) and
    spliced into the player;
(b) change → changed audio heard: until the playhead reaches the bar line it applies from;

both against one bar at 120 BPM (2.0 s): mean, max, the fraction within one bar.  Then
(c) the frame gaps of a Textual app ticking at 60 Hz while the same changes render in the
background: the largest gap, against 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import random
import statistics
import time

from tests.studio_pieces import piece
from tui.live_audio import LiveAudio, Renderer
from tui.player import ClockSink, Player

BAR_S = 2.0  # one bar of 4/4 at 120 BPM
FRAME_GAP_TARGET_S = 0.100
TICK_S = 1 / 60


def random_change(rng: random.Random, bar: int) -> dict:
    kind = rng.choice(["tempo", "velocity", "program"])
    if kind == "tempo":
        return {"tempo_from": (bar, rng.choice([108.0, 114.0, 126.0, 132.0]))}
    if kind == "velocity":
        return {"velocity_from": (bar, rng.choice([0.6, 0.8, 1.2, 1.4]))}
    return {"program_from": (bar, rng.randrange(4), rng.choice([19, 48, 56, 68, 71]))}


def run_changes(live: LiveAudio, player: Player, n: int, rng: random.Random, log=print) -> list:
    """Make ``n`` changes at random times while ``player`` plays; (ready_s, heard_s) each."""
    results = []
    for i in range(n):
        time.sleep(rng.uniform(0.3, 1.7))
        if player.position_s > player.length_s - 6 * BAR_S:  # near the end: from the top
            player.seek(0.0)
        pos = player.position_s
        bar = min(15, bisect.bisect_right(live.bar_times_s, pos))  # the bar after the playhead
        midi, bars = piece(16, 120.0, **random_change(rng, bar))
        requested = time.monotonic()
        done = len(live.applied)
        live.change(midi, bars, from_bar=bar)
        while len(live.applied) == done:
            time.sleep(0.005)
        applied = live.applied[-1]
        ready = applied.ready - requested
        heard = applied.at_s - applied.position_s  # the playhead reaches it this much later
        late = applied.ready > applied.requested + heard
        log(
            f"  change {i + 1:2d} at {pos:5.2f} s, from bar {bar:2d}: heard from bar "
            f"{applied.bar:2d}; ready {ready * 1000:6.0f} ms, heard {heard:5.2f} s"
            + ("  LATE (spliced after the playhead passed)" if late else "")
        )
        results.append((ready, heard, late))
        live.wait(30)  # the rest of the piece too, before the next change
    return results


def summary(name: str, values: list[float]) -> str:
    within = sum(v <= BAR_S for v in values) / len(values)
    return (
        f"{name}: mean {statistics.mean(values):.3f} s, max {max(values):.3f} s, "
        f"within one bar ({BAR_S:.1f} s) {within:.0%}"
    )


def frame_gaps(n_changes: int, seed: int, *, render: bool = True) -> list[float]:
    """The gaps (s) between the 60 Hz ticks of a Textual app while ``n_changes`` changes
    render in the background (``render=False``: while the same time passes, nothing
    rendering: the machine's own baseline)."""
    from textual.app import App
    from textual.widgets import Static

    class Ticker(App):
        def compose(self):
            yield Static("0", id="pos")

        def on_mount(self) -> None:
            self.gaps: list[float] = []
            self.last = time.perf_counter()
            self.set_interval(TICK_S, self.tick)

        def tick(self) -> None:
            now = time.perf_counter()
            self.gaps.append(now - self.last)
            self.last = now
            self.query_one("#pos", Static).update(f"{self.player.position_s:.2f}")

    async def main() -> list[float]:
        player = Player(sample_rate=44100, sink=ClockSink())
        renderer = Renderer()
        renderer.warm()
        live = LiveAudio(player, renderer=renderer)
        midi, bars = piece(16, 120.0)
        app = Ticker()
        app.player = player
        async with app.run_test(size=(80, 24)):
            # the first render, the changes: all in a worker thread, as the studio does them
            def work():
                live.load(midi, bars)
                player.play()
                if render:
                    run_changes(live, player, n_changes, random.Random(seed), log=lambda s: None)
                else:
                    time.sleep(n_changes * 1.5)

            await asyncio.to_thread(work)
            gaps = list(app.gaps[1:])
        live.close()
        return gaps

    return asyncio.run(main())


def gap_line(name: str, gaps: list[float]) -> str:
    worst = sorted(gaps)[-3:][::-1]
    p99 = sorted(gaps)[int(0.99 * (len(gaps) - 1))]
    after = ", ".join(f"{g * 1000:.0f}" for g in worst[1:])
    return (
        f"{name}: max {worst[0] * 1000:.0f} ms (next {after} ms), p99 {p99 * 1000:.0f} ms, "
        f"mean {statistics.mean(gaps) * 1000:.1f} ms, "
        f"{len(gaps)} ticks, over {FRAME_GAP_TARGET_S * 1000:.0f} ms: "
        f"{sum(g > FRAME_GAP_TARGET_S for g in gaps)}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    player = Player(sample_rate=44100, sink=ClockSink())
    renderer = Renderer()
    tic = time.perf_counter()
    renderer.warm()
    print(f"render process started in {time.perf_counter() - tic:.2f} s")
    live = LiveAudio(player, renderer=renderer)
    midi, bars = piece(16, 120.0)
    tic = time.perf_counter()
    live.load(midi, bars)
    print(f"first render of 16 bars ({player.length_s:.1f} s): {time.perf_counter() - tic:.2f} s")
    player.play()
    results = run_changes(live, player, args.changes, random.Random(args.seed))
    live.close()
    ready = [r for r, _, _ in results]
    heard = [h for _, h, _ in results]
    late = sum(late for _, _, late in results)
    print(summary("(a) change -> changed audio ready", ready))
    print(summary("(b) change -> changed audio heard", heard))
    print(f"    spliced after the playhead passed the bar line: {late} of {len(results)}")

    print("(c) frame gaps of a Textual app ticking at 60 Hz:")
    print("    " + gap_line("while the changes render", frame_gaps(args.changes, args.seed)))
    print(
        "    "
        + gap_line("baseline, nothing rendering", frame_gaps(args.changes, args.seed, render=False))
    )


if __name__ == "__main__":
    main()
