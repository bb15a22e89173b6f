"""tui.live_audio: a change is heard from the first bar line not yet played."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine.audio.playback import render_playback
from tests.studio_pieces import piece
from tui.live_audio import LiveAudio, Renderer, first_bar_at_or_after
from tui.player import CROSSFADE_S, LATE_SPLICE_AHEAD_S, ClockSink, Player

SR = 44100


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_first_bar_line_at_or_after_the_playhead():
    bars = [0.0, 2.0, 4.0, 6.0]
    assert first_bar_at_or_after(bars, 0.0) == 0
    assert first_bar_at_or_after(bars, 0.01) == 1
    assert first_bar_at_or_after(bars, 3.99) == 2
    assert first_bar_at_or_after(bars, 4.0) == 2
    assert first_bar_at_or_after(bars, 1.0, from_bar=3) == 3  # not before the change
    assert first_bar_at_or_after(bars, 6.5) is None


@pytest.fixture(scope="module")
def versions():
    before, bars = piece(bars=8)
    after, bars_after = piece(bars=8, program_from=(0, 1, 71), velocity_from=(0, 1.3))
    assert bars_after == bars
    return before, after, bars


def test_a_change_is_spliced_at_the_first_bar_line_after_the_playhead(versions):
    before, after, bars = versions
    clock = FakeClock()
    player = Player(sample_rate=SR, sink=ClockSink(clock))
    live = LiveAudio(player, renderer=Renderer(in_process=True), clock=clock)
    try:
        live.load(before, bars)
        old = player._buf.copy()
        player.play()
        clock.now += 3.1  # the playhead in bar 1 (bar 2 starts at bars[2])
        assert bars[1] < 3.1 < bars[2]
        applied = live.apply(after, bars, from_bar=5)
        assert (applied.bar, applied.at_s, applied.piece_s) == (5, bars[5], bars[5])
        assert applied.position_s == pytest.approx(3.1)
        new, _ = render_playback(after, gain=live.levels)
        a, x = round(bars[5] * SR), round(CROSSFADE_S * SR)
        buf = player._buf
        np.testing.assert_array_equal(buf[:a], old[:a])  # bars not changed: as they were
        assert np.abs(buf[a + x :] - new[a + x :]).max() < 5e-4  # the new version after
        assert np.abs(old[a + x :] - new[a + x :]).max() > 0.05  # (which does differ)
        assert live.bar_times_s == bars

        # a change from bar 0 (already heard): from the next bar line on now, then the whole
        # new version, the position kept
        third, _ = piece(bars=8, program_from=(0, 0, 19))
        applied = live.apply(third, bars, from_bar=0)
        assert (applied.bar, applied.at_s) == (2, bars[2])
        final, _ = render_playback(third, gain=live.levels)
        assert player._buf.shape == final.shape
        assert np.abs(player._buf - final).max() < 1e-6
        assert player.position_s == pytest.approx(3.1) and player.playing
    finally:
        live.close()


def test_a_render_that_ends_after_the_bar_line_is_heard_from_the_playhead(versions):
    """A change just before a bar line: the render outlasts the line, and the new audio
    starts where the playhead is then (the same place of the new version), not a bar later."""
    before, after, bars = versions
    clock = FakeClock()
    player = Player(sample_rate=SR, sink=ClockSink(clock))

    class LateRenderer(Renderer):
        def window(self, midi, start_s, seconds, **kwargs):
            audio = super().window(midi, start_s, seconds, **kwargs)
            clock.now += 0.3  # the render takes 0.3 s of playing time
            return audio

    live = LiveAudio(player, renderer=LateRenderer(in_process=True), clock=clock)
    try:
        live.load(before, bars)
        player.play()
        clock.now += bars[3] - 0.1  # 0.1 s before bar 3's line
        applied = live.apply(after, bars, from_bar=3)
        assert applied.bar == 3
        # late by the render, just ahead of the playhead
        assert applied.at_s == pytest.approx(bars[3] + 0.2 + LATE_SPLICE_AHEAD_S, abs=1e-3)
        assert applied.at_s - applied.position_s < bars[4] - bars[3]  # within one bar
        new, _ = render_playback(after, gain=live.levels)
        a = round(applied.at_s * SR) + round(CROSSFADE_S * SR)
        assert np.abs(player._buf[a : a + SR] - new[a : a + SR]).max() < 5e-4
    finally:
        live.close()


class SlowRenderer(Renderer):
    """Renders made of the MIDI's first byte, after a pause: which version is playing shows."""

    def __init__(self):
        super().__init__(in_process=True)
        self.calls = []
        self.started = threading.Event()

    def full(self, midi, **kwargs):
        self.calls.append(("full", midi))
        from engine.audio.playback import Levels

        return np.full((8 * SR, 2), float(midi[0]), np.float32), Levels(-10.0, 0.0)

    def window(self, midi, start_s, seconds, **kwargs):
        self.calls.append(("window", midi))
        self.started.set()
        time.sleep(0.3)
        return np.full((round(seconds * SR), 2), float(midi[0]), np.float32)

    def length_s(self, midi, sample_rate):
        return 8.0


def test_a_newer_change_supersedes_one_still_rendering():
    renderer = SlowRenderer()
    player = Player(sample_rate=SR, sink=ClockSink())
    live = LiveAudio(player, renderer=renderer)
    try:
        live.load(b"\x01", [0.0, 2.0, 4.0, 6.0])
        live.change(b"\x02", [0.0, 2.0, 4.0, 6.0], from_bar=1)
        assert renderer.started.wait(5)
        live.change(b"\x03", [0.0, 2.0, 4.0, 6.0], from_bar=1)
        assert live.wait(10)
        # version 2: its first bars rendered, then dropped; version 3 rendered to the end
        assert renderer.calls == [
            ("full", b"\x01"),
            ("window", b"\x02"),
            ("window", b"\x03"),
            ("window", b"\x03"),
        ]
        assert set(np.unique(player._buf[2 * SR + 300 :])) == {3.0}
        assert [a.bar for a in live.applied] == [1, 1]
    finally:
        live.close()
