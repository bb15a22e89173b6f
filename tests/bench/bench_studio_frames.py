"""Frame gaps of the real studio while it generates, plays and re-renders.

    python -m tests.bench.bench_studio_frames [--bars 16] [--changes 6] [--idle 5]

The studio (``tui.app.make_app``, a temporary library, output folder and settings; audio off,
so the player is a silent ClockSink at the wall clock's pace) runs headless at 120x40. A 60 Hz
``set_interval`` probe on the app records the gap between its ticks: a tick late by more than
its period means the event loop was blocked (by a handler, a render, or a thread holding the
GIL). Phases, each against the idle baseline measured first in the same run:

(a) generate: a 16-bar piece for four voices, typed into the prompt, Ctrl+G, until it is kept
    and its audio is loaded (the model's loading is a phase of its own);
(b) play: space, then ``--changes`` tempo changes with ``>`` / ``<`` while it plays, each
    waited for until the re-rendered audio is spliced in (the live re-render);
(c) creativity: a second piece, with the creativity changed every two bars while it is written.

For each: the largest gap, the 99th percentile, the gaps over 100 ms (the target: the UI never
blocks longer). To say where the time goes, the bench also times (without changing them)
Textual's message dispatch, the screen's layout and display, the piano roll's drawing and the
Make screen's handlers, and a sampler thread looks at the main thread's stack every 5 ms
while a tick is overdue; when the sampler itself is held up, a thread holding the GIL
(compiled code in a worker) is the cause.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

TICK_S = 1 / 60
TARGET_S = 0.100
SLOW_CALL_S = 0.020  # calls at least this long are listed
PROMPT = "a chorale for choir in G major, 16 bars"


class Probe:
    """The 60 Hz tick's gaps, per phase; the slow calls; the stalls' main-thread stacks."""

    def __init__(self):
        self.phase = "start"
        self.gaps: dict[str, list[float]] = collections.defaultdict(list)
        self.last = time.monotonic()
        self.slow: dict[str, list[tuple[str, float, float]]] = collections.defaultdict(list)
        self.stall_frames: dict[str, collections.Counter] = collections.defaultdict(
            collections.Counter
        )
        self.sampler_gaps: dict[str, list[float]] = collections.defaultdict(list)
        self.holders: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.main_ident = threading.get_ident()
        self._stop = threading.Event()

    def tick(self) -> None:
        now = time.monotonic()
        self.gaps[self.phase].append(now - self.last)
        self.last = now

    def set_phase(self, name: str) -> None:
        self.phase = name
        self.last = time.monotonic()  # the first gap of a phase is its own

    def call(self, name: str, seconds: float, cpu: float) -> None:
        """A call on the app's thread: ``seconds`` of wall time, ``cpu`` of its thread's CPU
        time (less than the wall time when the machine's other work held it up)."""
        if seconds >= SLOW_CALL_S:
            self.slow[self.phase].append((name, seconds, cpu))

    # -- the sampler thread --
    def start_sampler(self) -> None:
        threading.Thread(target=self._sample, daemon=True, name="frame-sampler").start()

    def stop_sampler(self) -> None:
        self._stop.set()

    def _sample(self) -> None:
        prev = time.monotonic()
        while not self._stop.is_set():
            time.sleep(0.005)
            now = time.monotonic()
            self.sampler_gaps[self.phase].append(now - prev)
            if now - prev > TARGET_S:  # held up: which other threads ran Python just now?
                me = threading.get_ident()
                names = {t.ident: t.name for t in threading.enumerate()}
                for ident, frame in sys._current_frames().items():
                    if ident in (me, self.main_ident) or idle(frame):
                        continue
                    self.holders[self.phase][f"[{names.get(ident, ident)}] {where(frame)}"] += 1
            prev = now
            if now - self.last > TARGET_S:  # a tick is overdue: where is the main thread?
                frame = sys._current_frames().get(self.main_ident)
                self.stall_frames[self.phase][where(frame)] += 1


def idle(frame) -> bool:
    """A thread waiting (on a lock, a condition, a queue, a pipe, a sleep)."""
    code = frame.f_code
    return code.co_name in ("wait", "_wait_for_tstate_lock", "get", "select", "poll", "sleep") or (
        code.co_name in ("_recv_bytes", "recv_bytes", "_recv", "readinto", "read")
    )


def where(frame) -> str:
    """The innermost frames of ours (tui/, engine/) and Textual's of a stack, shortened."""
    ours, textual = [], []
    innermost = frame
    while frame is not None:
        f = frame.f_code.co_filename
        name = f"{Path(f).name}:{frame.f_code.co_name}"
        if "/tui/" in f or "/engine/" in f:
            ours.append(name)
        elif "textual" in f or "rich" in f:
            textual.append(name)
        elif not ours and not textual:
            textual.append(name)  # the innermost frame, whatever it is
        frame = frame.f_back
    shown = ours[:2] if ours else textual[:3]
    inner = Path(innermost.f_code.co_filename).name if innermost is not None else "?"
    inner = f"{inner}:{innermost.f_code.co_name}" if innermost is not None else inner
    if shown and shown[0] != inner:
        shown = [inner, *shown]
    return " < ".join(shown) or "?"


def timed_sync(probe: Probe, owner, attr: str, label: str | None = None) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    def wrapper(*a, **k):
        if threading.get_ident() != probe.main_ident:
            return original(*a, **k)
        tic, cpu = time.monotonic(), time.thread_time()
        try:
            return original(*a, **k)
        finally:
            probe.call(
                label or f"{owner.__name__}.{attr}",
                time.monotonic() - tic,
                time.thread_time() - cpu,
            )

    setattr(owner, attr, wrapper)


def instrument(probe: Probe) -> None:
    """Time the calls that run on the app's thread (class attributes wrapped, nothing else)."""
    from textual.app import App
    from textual.message_pump import MessagePump
    from textual.screen import Screen

    from tui.screens.make import MakeScreen
    from tui.widgets.lanes import ParameterLanes
    from tui.widgets.pianoroll import PianoRoll
    from tui.widgets.waveform import Waveform

    dispatch = MessagePump._dispatch_message

    async def timed_dispatch(self, message):
        tic, cpu = time.monotonic(), time.thread_time()
        try:
            return await dispatch(self, message)
        finally:
            probe.call(
                f"dispatch {type(message).__name__} to {type(self).__name__}",
                time.monotonic() - tic,
                time.thread_time() - cpu,
            )

    MessagePump._dispatch_message = timed_dispatch
    timed_sync(probe, Screen, "_refresh_layout")
    timed_sync(probe, Screen, "_compositor_refresh")
    timed_sync(probe, App, "_display")
    timed_sync(probe, PianoRoll, "_draw")
    timed_sync(probe, PianoRoll, "cell_parts")
    timed_sync(probe, Waveform, "set_audio")
    for name in ("render_line",):
        timed_sync(probe, Waveform, name)
        timed_sync(probe, ParameterLanes, name)
    for name in (
        "on_bars_written",
        "on_work_progress",
        "_piece_saved",
        "_make_current",
        "_show_variation",
        "_audio_ready",
        "_changed_sound",
        "apply_change",
        "_tick",
        "action_play",
        "action_generate",
    ):
        timed_sync(probe, MakeScreen, name)
    from tui.widgets import roll

    original = roll.roll_data

    @functools.wraps(original)
    def roll_data(*a, **k):
        tic, cpu = time.monotonic(), time.thread_time()
        try:
            return original(*a, **k)
        finally:
            if threading.get_ident() == probe.main_ident:
                probe.call("roll_data", time.monotonic() - tic, time.thread_time() - cpu)

    import tui.screens.make as make

    make.roll_data = roll_data


async def wait_for(pilot, condition, timeout: float, what: str) -> float:
    tic = time.monotonic()
    while not condition():
        if time.monotonic() - tic > timeout:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        await pilot.pause(0.05)
    return time.monotonic() - tic


async def run(args) -> tuple[Probe, dict]:
    from tui.app import make_app
    from tui.screens.make import MakeScreen
    from tui.widgets.pianoroll import PianoRoll

    probe = Probe()
    instrument(probe)
    tmp = Path(tempfile.mkdtemp(prefix="bench-studio-frames-"))
    os.environ["DISCO_MUSICA_HOME"] = str(tmp / "home")
    app = make_app(
        library=tmp / "lib",
        output=tmp / "out",
        settings_file=tmp / "studio.json",
        first_run=False,
        audio=False,
    )
    info: dict = {"dialogs": []}

    async def close_dialogs(screen) -> None:
        """An error or a question on top of the Make screen: note what it says, close it."""
        while app.screen is not screen:
            top = app.screen
            info["dialogs"].append(
                f"{probe.phase}: {type(top).__name__}: {getattr(top, 'message', '')}"
            )
            app.pop_screen()
            await pilot.pause()

    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.5)
        screen = app.screen
        assert isinstance(screen, MakeScreen), screen
        app.set_interval(TICK_S, probe.tick)
        probe.start_sampler()

        probe.set_phase("idle")
        await pilot.pause(args.idle)

        # (a) generate
        screen.query_one("#prompt").focus()
        await pilot.press(*PROMPT.replace("16 bars", f"{args.bars} bars"))
        controls = screen.query_one("#controls")
        await wait_for(pilot, lambda: not controls.checking, 30, "the controls' checks")
        probe.set_phase("(a) load model")
        tic = time.monotonic()
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: screen.writer is not None, 300, "the model's loading")
        info["load_s"] = time.monotonic() - tic
        probe.set_phase("(a) generate")
        tic = time.monotonic()
        await wait_for(pilot, lambda: not screen.busy, 900, "the piece")
        info["generate_s"] = time.monotonic() - tic
        info["parts"] = [q.name for q in screen.writer.plan.parts]
        info["bars"] = screen.writer.total
        probe.set_phase("(a) save, load audio")
        tic = time.monotonic()
        await wait_for(pilot, lambda: screen.audio is not None, 300, "the audio")
        info["audio_s"] = time.monotonic() - tic

        # (b) play, change the tempo while it plays: the live re-render
        probe.set_phase("(b) play + live changes")
        screen.query_one(PianoRoll).focus()
        await pilot.press("space")
        await wait_for(pilot, lambda: screen.player.playing, 10, "playing")
        ready, missed = [], 0
        for i in range(args.changes):
            await pilot.pause(1.0)
            player, live = screen.player, screen.live
            await close_dialogs(screen)
            if player.position_s > 0.6 * player.length_s:  # keep bars ahead to change
                player.seek(0.0)
                await pilot.pause(0.2)
            done = len(live.applied)
            tic = time.monotonic()
            await pilot.press(">" if i % 2 == 0 else "<")
            await pilot.pause(0.1)
            await wait_for(
                pilot,
                lambda live=live: live._pending is None and not live._busy,
                120,
                "a change",
            )
            if len(live.applied) > done:
                ready.append(live.applied[-1].ready - tic)
            else:
                missed += 1  # no bar line left ahead of the playhead: nothing spliced
        info["changes_missed"] = missed
        info["change_ready_s"] = ready
        await pilot.press("space")
        await wait_for(pilot, lambda: screen._dirty_since is None and not screen.busy, 30, "keep")
        await app.workers.wait_for_complete()

        # (c) creativity changes while a second piece is written
        probe.set_phase("(c) write + creativity changes")
        tic = time.monotonic()
        await close_dialogs(screen)
        await pilot.press("ctrl+g")
        try:
            await wait_for(pilot, lambda: screen.busy, 10, "the second piece starting")
        except TimeoutError as e:
            status = screen.query_one("#status").render()
            raise TimeoutError(
                f"{e}; status {status!s}; screen {app.screen!r}; said {app.announcements[-3:]}"
            ) from None
        creativity = [0.9, 0.3, 0.7, 0.5, 0.8, 0.2, 0.6, 0.4]
        changed = 0
        last_bar = 0
        while screen.busy:
            w = screen.writer
            if (
                w is not None
                and not w.done
                and w.written >= 1
                and w.written >= last_bar + 2
                and w.written < w.total
            ):
                screen.apply_change(creativity=creativity[changed % len(creativity)])
                changed += 1
                last_bar = w.written
            await pilot.pause(0.05)
        await close_dialogs(screen)
        info["creativity_changes"] = changed
        info["second_s"] = time.monotonic() - tic
        probe.set_phase("end")
        await app.workers.wait_for_complete()
        probe.stop_sampler()
        info["announcements"] = list(app.announcements)
    return probe, info


def gap_line(name: str, gaps: list[float]) -> str:
    if not gaps:
        return f"{name}: no ticks"
    s = sorted(gaps)
    p99 = s[int(0.99 * (len(s) - 1))]
    over = sum(g > TARGET_S for g in s)
    return (
        f"{name:32s} max {s[-1] * 1000:6.0f} ms  p99 {p99 * 1000:5.0f} ms  "
        f"mean {statistics.mean(s) * 1000:5.1f} ms  ticks {len(s):5d}  "
        f"over {TARGET_S * 1000:.0f} ms: {over}"
    )


def report(probe: Probe, info: dict) -> None:
    print(
        f"piece: {info['bars']} bars for {', '.join(info['parts'])}; model loaded in "
        f"{info['load_s']:.1f} s, written in {info['generate_s']:.1f} s, kept and its audio "
        f"loaded in {info['audio_s']:.1f} s"
    )
    ready = info["change_ready_s"] or [float("nan")]
    print(
        f"live tempo changes while playing: {len(info['change_ready_s'])} spliced in "
        f"({info['changes_missed']} not: no bar left ahead), key -> re-rendered audio "
        f"spliced in: mean {statistics.mean(ready):.2f} s, max {max(ready):.2f} s"
    )
    print(
        f"second piece with {info['creativity_changes']} creativity changes: "
        f"{info['second_s']:.1f} s"
    )
    for dialog in info["dialogs"]:
        print(f"a dialog opened: {dialog}")
    print("frame gaps of a 60 Hz tick on the studio app:")
    for phase in (
        "idle",
        "(a) load model",
        "(a) generate",
        "(a) save, load audio",
        "(b) play + live changes",
        "(c) write + creativity changes",
    ):
        print("  " + gap_line(phase, probe.gaps.get(phase, [])))
    print("the sampler thread's own 5 ms sleeps (late: another thread held the GIL):")
    for phase, gaps in probe.sampler_gaps.items():
        if phase in ("start", "end") or not gaps:
            continue
        s = sorted(gaps)
        print(
            f"  {phase:32s} max {s[-1] * 1000:6.0f} ms, over {TARGET_S * 1000:.0f} ms: "
            f"{sum(g > TARGET_S for g in s)}"
        )
    print(
        f"calls on the app's thread of {SLOW_CALL_S * 1000:.0f} ms or more: count, max wall "
        "(its CPU time), total wall (CPU)"
    )
    for phase, calls in probe.slow.items():
        if phase in ("start",) or not calls:
            continue
        by = collections.defaultdict(list)
        for name, wall, cpu in calls:
            by[name].append((wall, cpu))
        print(f"  {phase}:")
        for name, ss in sorted(by.items(), key=lambda kv: -max(kv[1])[0])[:10]:
            worst = max(ss)
            print(
                f"    {name:46s} {len(ss):4d}  max {worst[0] * 1000:5.0f} ms "
                f"({worst[1] * 1000:4.0f})  total {sum(w for w, _ in ss) * 1000:6.0f} ms "
                f"({sum(c for _, c in ss) * 1000:5.0f})"
            )
    print(
        "the other threads running Python when the sampler woke late "
        "(the innermost frames: the call that held the GIL has just returned or is still on)"
    )
    for phase, counter in probe.holders.items():
        if not counter:
            continue
        print(f"  {phase}:")
        for frame, n in counter.most_common(6):
            print(f"    {n:4d}  {frame}")
    print("where the app's thread was while a tick was overdue (5 ms samples):")
    for phase, counter in probe.stall_frames.items():
        if not counter:
            continue
        print(f"  {phase}:")
        for frame, n in counter.most_common(6):
            print(f"    {n:4d}  {frame}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bars", type=int, default=16)
    ap.add_argument("--changes", type=int, default=6)
    ap.add_argument("--idle", type=float, default=5.0, help="seconds of idle baseline")
    args = ap.parse_args()
    load = os.getloadavg()
    tic = time.thread_time(), time.process_time(), time.monotonic()
    probe, info = asyncio.run(run(args))
    wall = time.monotonic() - tic[2]
    print(
        f"load average before {load[0]:.1f}, after {os.getloadavg()[0]:.1f} "
        f"({os.cpu_count()} CPUs); this process used {time.process_time() - tic[1]:.0f} s of CPU "
        f"in {wall:.0f} s, its app thread {time.thread_time() - tic[0]:.0f} s"
    )
    report(probe, info)


if __name__ == "__main__":
    main()
