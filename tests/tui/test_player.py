"""tui.player: the Player's transport on a ClockSink, splicing, and the no-audio paths."""

from __future__ import annotations

import builtins
import shutil
import subprocess

import numpy as np
import pytest

from tui import player as player_module
from tui.messages import PlaybackState
from tui.player import (
    CROSSFADE_S,
    LATE_SPLICE_AHEAD_S,
    ClockSink,
    NoAudio,
    Player,
    SoundDeviceSink,
    available,
    open_in_system_player,
    open_player,
)

SR = 1000  # a round rate: a second is 1000 frames


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ramp(frames: int, offset: float = 0.0) -> np.ndarray:
    """[frames, 2]: frame i holds offset + i (left) and -(offset + i) (right)."""
    x = offset + np.arange(frames, dtype=np.float32)
    return np.stack([x, -x], axis=1)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def player(clock):
    states = []
    p = Player(ramp(10 * SR), SR, sink=ClockSink(clock), on_state=states.append)
    p.states = states
    return p


def test_the_clock_sink_advances_the_position_with_time(player, clock):
    assert player.length_s == 10.0 and player.position_s == 0.0 and not player.playing
    clock.now += 5.0
    assert player.position_s == 0.0  # paused: time does not move it
    player.play()
    clock.now += 1.25
    assert player.position_s == 1.25
    clock.now += 0.0004  # less than a frame is carried, not lost
    assert player.position_s == 1.25
    clock.now += 0.0007
    assert player.position_s == 1.251
    player.pause()
    clock.now += 3.0
    assert player.position_s == 1.251 and not player.playing
    assert isinstance(player.states[-1], PlaybackState) and not player.states[-1].playing


def test_pause_toggle_seek_and_the_end(player, clock):
    assert player.toggle() is True and player.playing
    player.seek(4.0)
    clock.now += 0.5
    assert player.position_s == 4.5
    assert player.toggle() is False
    player.seek(-3)
    assert player.position_s == 0.0
    player.seek(99)
    assert player.position_s == 10.0
    player.seek(9.0)
    player.play()
    clock.now += 2.0  # past the end: it stops there and says so
    assert player.position_s == 10.0 and not player.playing
    assert player.states[-1] == PlaybackState(False, 10.0, 10.0, False)
    player.play()  # at the end, play starts again from the start
    assert player.position_s == 0.0 and player.playing


def test_a_loop_wraps(player, clock):
    player.set_loop(2.0, 3.0)
    assert player.position_s == 2.0  # moved into the loop
    assert player.loop == (2.0, 3.0)
    player.play()
    clock.now += 2.25  # 2.0 → 3.0 wraps to 2.0 twice, then 0.25 on
    assert player.position_s == 2.25 and player.playing
    player.set_loop(8.0)  # to the end of the buffer
    clock.now += 2.5
    assert player.position_s == 8.5
    player.set_loop(None)
    clock.now += 5.0
    assert player.position_s == 10.0 and not player.playing
    with pytest.raises(ValueError):
        player.set_loop(3.0, 2.0)


def test_the_audio_callback_reads_the_buffer_and_wraps():
    p = Player(ramp(10), SR, sink=ClockSink())
    p.set_loop(0.002, 0.006)  # frames 2..5
    p._playing = True
    out = np.zeros((10, 2), dtype=np.float32)
    p._advance(10, out)
    np.testing.assert_array_equal(out[:, 0], [2, 3, 4, 5, 2, 3, 4, 5, 2, 3])
    p.set_loop(None)
    p.seek(0.008)
    p._playing = True
    p._advance(10, out)  # the end: the rest is silence, and it stops
    np.testing.assert_array_equal(out[:, 0], [8, 9, 0, 0, 0, 0, 0, 0, 0, 0])
    assert not p.playing


def test_splice_keeps_the_audio_before_and_replaces_it_after_with_a_crossfade(clock):
    sr = 44100
    old = ramp(5 * sr)
    p = Player(old, sr, sink=ClockSink(clock))
    p.play()
    clock.now += 1.0
    new = ramp(3 * sr, offset=1e6)
    at = p.splice(2.0, new)
    assert at == 2.0 and p.length_s == 5.0  # 2 s kept, then the 3 s spliced
    buf = p._buf
    a, x = 2 * sr, round(CROSSFADE_S * sr)
    assert x == 220  # 5 ms
    np.testing.assert_array_equal(buf[:a], old[:a])  # before: exactly the old
    np.testing.assert_array_equal(buf[a + x :], new[x:])  # after the fade: exactly the new
    w = (np.arange(x) + 0.5) / x
    mix = old[a : a + x, 0] * (1 - w) + new[:x, 0] * w
    np.testing.assert_allclose(buf[a : a + x, 0], mix, rtol=1e-6)  # (float32)
    assert np.all(np.diff(buf[a : a + x, 0]) > 0)  # it rises from the old to the new
    assert p.position_s == 1.0 and p.playing  # the position does not move


def test_a_splice_the_playhead_already_passed_starts_just_ahead_of_the_playhead(clock):
    p = Player(ramp(5 * SR), SR, sink=ClockSink(clock))
    p.play()
    clock.now += 3.0
    at = p.splice(2.0, ramp(3 * SR, offset=1e6), crossfade_s=0)
    k = 3 * SR + round(LATE_SPLICE_AHEAD_S * SR)
    assert at == k / SR
    np.testing.assert_array_equal(p._buf[:k], ramp(k))  # what plays now is not cut
    np.testing.assert_array_equal(p._buf[k:], ramp(5 * SR - k, offset=1e6 + k - 2 * SR))


def test_a_splice_chased_by_the_playhead_settles(clock):
    """Making the new buffer takes longer than the margin ahead (a long piece, a busy
    machine): the splice tries again further ahead, and ends (it once chased the playhead
    until the piece was over)."""
    p = Player(ramp(20 * SR), SR, sink=ClockSink(clock))
    p.play()
    clock.now += 3.0
    import tui.player as player_module

    made = player_module._spliced

    def slow(*args):
        clock.now += 0.05  # each new buffer takes 50 ms of playing time
        return made(*args)

    player_module._spliced = slow
    try:
        at = p.splice(2.0, ramp(18 * SR, offset=1e6), crossfade_s=0)
    finally:
        player_module._spliced = made
    assert 3.0 < at < 3.5 and p.position_s <= at


def test_load_maps_the_position(player, clock):
    player.seek(4.0)
    player.load(ramp(20 * SR), position=lambda s: 2 * s)
    assert player.position_s == 8.0 and player.length_s == 20.0


def test_available_says_why_not_without_raising():
    ok, why = available()
    if ok:  # a machine with sound: the name of its device
        assert why
        return
    assert isinstance(why, str) and why and "\n" not in why


def _no_sounddevice(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_no_portaudio_is_noaudio_in_one_line_and_a_silent_player(monkeypatch):
    _no_sounddevice(monkeypatch)
    with pytest.raises(NoAudio) as e:
        Player(ramp(10), SR, sink=SoundDeviceSink())
    assert "PortAudio" in str(e.value) and "\n" not in str(e.value)
    assert available() == (False, str(e.value))
    p, notice = open_player(ramp(10), SR)
    assert isinstance(p.sink, ClockSink) and "PortAudio" in notice and "\n" not in notice
    assert "system player" in notice


def test_a_device_that_is_not_there_is_noaudio(monkeypatch):
    class FakeSd:
        @staticmethod
        def query_devices(device=None, kind=None):
            raise ValueError(f"No output device matching {device!r}")

    monkeypatch.setattr(player_module, "_import_sounddevice", lambda: FakeSd)
    with pytest.raises(NoAudio, match="no audio output device named 'Nope'"):
        Player(ramp(10), SR, sink=SoundDeviceSink("Nope"))
    assert available("Nope")[0] is False


def test_open_in_system_player_without_an_opener_says_where_the_file_is(monkeypatch, tmp_path):
    f = tmp_path / "piece.wav"
    f.write_bytes(b"RIFF")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(player_module.sys, "platform", "linux")
    message = open_in_system_player(f)
    assert str(f) in message and "no system player" in message and "\n" not in message
    assert "no file" in open_in_system_player(tmp_path / "missing.wav")


def test_open_in_system_player_starts_the_opener_and_survives_its_failure(monkeypatch, tmp_path):
    f = tmp_path / "piece.wav"
    f.write_bytes(b"RIFF")
    monkeypatch.setattr(player_module.sys, "platform", "linux")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda args, **kw: started.append(args))
    assert open_in_system_player(f) == "opened piece.wav in the system player"
    assert started == [["/usr/bin/xdg-open", str(f)]]

    def broken(args, **kw):
        raise PermissionError("denied")

    monkeypatch.setattr(subprocess, "Popen", broken)
    message = open_in_system_player(f)
    assert "could not open" in message and str(f) in message


def test_a_splice_at_the_end_of_the_buffer_continues_it_without_a_fade():
    p = Player(ramp(2 * SR), SR, sink=ClockSink())
    p.splice(2.0, ramp(SR, offset=5e5))  # the next part of a render in parts
    np.testing.assert_array_equal(p._buf, np.concatenate([ramp(2 * SR), ramp(SR, offset=5e5)]))
    p.splice(2.5, ramp(SR, offset=7e5), crossfade_s=0.1)  # a fade needs old audio under it
    assert p.length_s == 3.5
    np.testing.assert_array_equal(p._buf[int(2.6 * SR) :], ramp(int(0.9 * SR), offset=7e5 + 100))
