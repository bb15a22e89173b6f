"""Hearing changes while a piece plays: re-render the bars not yet heard and splice them in.

The Make screen makes a new MIDI after each change (tempo, dynamics, the instrument of a
part), applying from bar ``from_bar``.  `LiveAudio.change` hands it over; a worker thread then

1. picks the first bar line at or after the playhead (and at or after ``from_bar``): the
   first bar not yet heard, `first_bar_at_or_after`;
2. renders ``FIRST_BARS`` bars of the new piece from that bar line and splices them into the
   player there (the change is heard from that bar on: `Applied`); when the playhead passed
   the bar line while it rendered, the new audio starts where the playhead is, at the
   matching place of the new version: the change is then heard the render time (about
   0.3 s) into the bar, never a whole bar later;
3. renders the rest of the new piece and splices it after them;
4. when bars before that bar line changed too (the playhead was already past
   ``from_bar``), renders the whole new piece and swaps it in, mapping the position bar by
   bar, so that a loop or a seek back plays the new version as well.

A newer change supersedes an older one still rendering (between steps: one render call is
not interrupted).  Renders run in a separate process (`Renderer`): the synthesizer holds
Python's GIL while it runs, and a render in a thread of the app's process would freeze the
interface for as long.  The loudness gain of the first full render is kept for every later
render, so a change of dynamics is heard rather than normalised away.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tui.player import Player

# Bars rendered before the first splice: one to hear the change from, one so the next step
# has a bar's time (2 s at 120 BPM) to splice the rest after it.
FIRST_BARS = 2


class Renderer:
    """`engine.audio.playback` renders, in a child process (``in_process``: in the caller's
    thread, for tests).  One render at a time; the caller's thread waits for it, without
    holding the GIL (`engine.audio.render_server`)."""

    def __init__(self, *, in_process: bool = False):
        self._client = None
        if not in_process:
            from engine.audio.render_server import RenderClient

            self._client = RenderClient()

    def warm(self) -> None:
        """Start the process and import the renderer there (a second or two, once)."""
        from engine.audio import playback

        if self._client is None:
            playback.warm()
        else:
            self._client.call("warm")

    def full(self, midi: bytes, **kwargs) -> tuple[np.ndarray, object]:
        """``render_playback(midi, **kwargs)``: (audio, Levels)."""
        from engine.audio.playback import Levels, render_playback

        if self._client is None:
            return render_playback(midi, **kwargs)
        answer, audio = self._client.call("playback", midi, **kwargs)
        return audio, Levels(**answer["levels"])

    def window(self, midi: bytes, start_s: float, seconds: float, **kwargs) -> np.ndarray:
        """``render_window(midi, start_s, seconds, **kwargs)``."""
        from engine.audio.playback import render_window

        if self._client is None:
            return render_window(midi, start_s, seconds, **kwargs)
        return self._client.call("window", midi, start_s=start_s, seconds=seconds, **kwargs)[1]

    def length_s(self, midi: bytes, sample_rate: int) -> float:
        """The full render's length (s)."""
        from engine.audio.playback import rendered_seconds

        if self._client is None:
            return rendered_seconds(midi, sample_rate)
        return self._client.call("seconds", midi, sample_rate=sample_rate)[0]["seconds"]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def first_bar_at_or_after(bar_times_s: Sequence[float], t: float, from_bar: int = 0) -> int | None:
    """The index of the first bar line at or after ``t`` seconds (and not before
    ``from_bar``), or None when there is none."""
    k = bisect.bisect_left(bar_times_s, t - 1e-9)
    k = max(k, from_bar)
    return k if k < len(bar_times_s) else None


@dataclass(frozen=True)
class Applied:
    """A change as heard: from bar ``bar``, which starts at ``at_s`` in the player's buffer
    (when the playhead reaches it, the change is heard) and at ``piece_s`` in the new piece.
    ``requested`` and ``ready`` are monotonic clock times (s) of the change and of the
    splice; ``position_s`` is where the playhead was when the change came."""

    bar: int
    at_s: float
    piece_s: float
    position_s: float
    requested: float
    ready: float
    render_s: float


class Superseded(Exception):
    """A newer change came while this one rendered."""


class LiveAudio:
    """Keeps ``player`` playing the latest version of a piece (see the module's docstring).

    ``load`` renders the first version (blocking: call it from a worker); ``change`` queues a
    new version for the worker thread.  ``on_applied`` gets each `Applied` from that thread.
    """

    def __init__(
        self,
        player: Player,
        *,
        renderer: Renderer | None = None,
        soundfont: str | Path | None = None,
        effects=None,
        first_bars: int = FIRST_BARS,
        on_applied: Callable[[Applied], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.player = player
        self.renderer = renderer if renderer is not None else Renderer()
        self.kwargs = {"soundfont": soundfont, "effects": effects}
        self.first_bars = first_bars
        self.on_applied = on_applied
        self.on_error = on_error
        self.clock = clock
        self.levels = None
        self.bar_times_s: list[float] = []  # bar lines in the player's buffer
        self.latencies: list[float] = []  # render times of the first windows (s)
        self.applied: list[Applied] = []
        self._cond = threading.Condition()
        self._pending: tuple | None = None
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="live-audio", daemon=True)
        self._thread.start()

    def load(self, midi: bytes, bar_times_s: Sequence[float]) -> None:
        """Render ``midi`` whole and play it (position kept); its loudness gain is kept for
        every later change."""
        audio, levels = self.renderer.full(midi, sample_rate=self.player.sample_rate, **self.kwargs)
        self.levels = levels
        self.player.load(audio)
        self.bar_times_s = [float(t) for t in bar_times_s]

    def change(self, midi: bytes, bar_times_s: Sequence[float], from_bar: int = 0) -> None:
        """Hear ``midi`` (the new version, changed from bar ``from_bar`` on, its bar lines at
        ``bar_times_s``) from the first bar not yet heard; returns at once."""
        with self._cond:
            self._pending = (
                bytes(midi),
                [float(t) for t in bar_times_s],
                int(from_bar),
                self.clock(),
            )
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every change is applied; False on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self.renderer.close()

    # -- the worker
    def _work(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job, self._pending = self._pending, None
                self._busy = True
            try:
                self.apply(*job)
            except Superseded:
                pass
            except Exception as e:  # a render that failed: said once, the old audio plays on
                if self.on_error is not None:
                    self.on_error(e)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _check(self) -> None:
        if self._pending is not None or self._closed:
            raise Superseded

    def apply(
        self,
        midi: bytes,
        bar_times_s: Sequence[float],
        from_bar: int = 0,
        requested: float | None = None,
    ) -> Applied | None:
        """Steps 1 to 4 of the module's docstring, in this thread; the `Applied` of step 2,
        or None when no bar line is left ahead of the playhead."""
        if self.levels is None:
            raise RuntimeError("load a piece before changing it")
        requested = self.clock() if requested is None else requested
        rate = self.player.sample_rate
        kw = dict(self.kwargs, sample_rate=rate, gain=self.levels)
        new_times = [float(t) for t in bar_times_s]
        state = self.player.state()
        # the next bar line, however near: a render that ends after it splices late (from
        # where the playhead is then), so a change is heard within one bar or the render
        # time, never a bar later (aiming past a near line did that, up to 2.2 s at 120 BPM)
        bar = first_bar_at_or_after(self.bar_times_s, state.position_s, from_bar)
        if bar is not None and bar >= len(new_times):
            bar = None
        applied = None
        if bar is not None:
            tic = self.clock()
            piece_s = new_times[bar]
            stop = bar + self.first_bars
            first_end = new_times[stop] if stop < len(new_times) else None
            length = self.renderer.length_s(midi, rate)
            seconds = (first_end if first_end is not None else length) - piece_s
            audio = self.renderer.window(midi, piece_s, max(0.0, seconds), **kw)
            at_s = self.player.splice(self.bar_times_s[bar], audio)
            # the buffer's bar lines: the old ones up to the splice, the new ones after it
            shift = self.bar_times_s[bar] - piece_s
            self.bar_times_s = self.bar_times_s[:bar] + [t + shift for t in new_times[bar:]]
            ready = self.clock()
            self.latencies.append(ready - tic)
            applied = Applied(bar, at_s, piece_s, state.position_s, requested, ready, ready - tic)
            self.applied.append(applied)
            if self.on_applied is not None:
                self.on_applied(applied)
            if first_end is not None and first_end < length:
                self._check()
                rest = self.renderer.window(midi, first_end, length - first_end, **kw)
                self.player.splice(first_end + shift, rest)
        if bar is None or bar > from_bar:
            self._check()
            self._swap(midi, new_times)
        return applied

    def _swap(self, midi: bytes, new_times: list[float]) -> None:
        """Play the whole new version, the position moved to the same place in its bars."""
        rate = self.player.sample_rate
        audio, _ = self.renderer.full(midi, sample_rate=rate, gain=self.levels, **self.kwargs)
        self._check()
        old_times = list(self.bar_times_s)
        self.player.load(audio, position=lambda s: _map_time(s, old_times, new_times))
        self.bar_times_s = new_times


def _map_time(s: float, old: Sequence[float], new: Sequence[float]) -> float:
    """The time in the new bar lines at the same place in its bar as ``s`` in the old."""
    n = min(len(old), len(new))
    if n == 0:
        return s
    k = max(0, bisect.bisect_right(old[:n], s) - 1)
    if k + 1 < n and old[k + 1] > old[k]:
        frac = (s - old[k]) / (old[k + 1] - old[k])
        return new[k] + frac * (new[k + 1] - new[k])
    return new[k] + (s - old[k])
