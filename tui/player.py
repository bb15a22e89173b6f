"""Playback for the studio: a `Player` of a stereo buffer, and the sinks it plays through.

``Player`` holds float32 [frames, 2] at a sample rate and a play position; a `Sink` moves
the position on:

    SoundDeviceSink  sounddevice's OutputStream; its callback reads the player's buffer
    ClockSink        no sound: the position follows the wall clock (tests, the benchmark,
                     and the "silent transport" when there is no audio output)

Where there is no output device, or no PortAudio library (``import sounddevice`` raises
OSError), `open_player` falls back to a ClockSink and says so in one line, and
`open_in_system_player` hands a rendered file to the system's player instead.  Nothing here
raises for a missing device past `NoAudio`, which carries that one line.

The buffer can be changed while it plays: ``splice(from_s, audio)`` replaces it from a time
on with a short crossfade (``CROSSFADE_S``), by swapping buffer objects under the lock the
audio callback holds for each block, so the callback sees either the old buffer or the new
one, never half of each.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from engine.errors import UserError, one_line
from tui.messages import PlaybackState

DEFAULT_SAMPLE_RATE = 44100
CHANNELS = 2
# A splice fades from the old audio to the new over this long: long enough that the jump
# makes no click, short enough to sit inside the attack of the bar's first notes.
CROSSFADE_S = 0.005
# A splice the playhead has already passed starts this far ahead of it (doubled while making
# the new buffer takes longer than that).
LATE_SPLICE_AHEAD_S = 0.02
# sounddevice's block: 1024 frames is 23 ms at 44.1 kHz (the callback holds the lock for a
# copy of one block, a few µs).
BLOCK_FRAMES = 1024

StateCallback = Callable[[PlaybackState], None]


class NoAudio(UserError, RuntimeError):
    """No sound here (no PortAudio library, no output device, a device that will not open),
    in one line."""


# ---------------------------------------------------------------------------------------------
# Sinks


class Sink:
    """Where a `Player` plays to.  ``open`` attaches it to the player; ``pump`` brings the
    player's position up to date (a sink that advances it from elsewhere does nothing);
    ``close`` lets the device go.  ``name`` is shown to the user."""

    name = "sink"
    latency_s = 0.0  # how long after leaving the buffer a sample is heard

    def open(self, player: Player) -> None:
        self.player = player

    def pump(self) -> None:
        """Advance the player's position to now (called with the player's lock held)."""

    def playing_changed(self, playing: bool) -> None:
        """The player started or stopped (called with the player's lock held)."""

    def close(self) -> None:
        pass


class ClockSink(Sink):
    """No sound: while playing, the position advances with ``clock`` (seconds, monotonic).

    The position is brought up to date whenever the player is asked (lazily, no thread), so
    a test can drive it with a fake clock and exact frames.
    """

    name = "silent transport"

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._last: float | None = None
        self._carry = 0.0  # fractions of a frame not yet moved

    def pump(self) -> None:
        if self._last is None:
            return
        now = self.clock()
        frames = (now - self._last) * self.player.sample_rate + self._carry
        self._last = now
        whole = int(frames)
        self._carry = frames - whole
        if whole:
            self.player._advance(whole, None)

    def playing_changed(self, playing: bool) -> None:
        self._last = self.clock() if playing else None
        self._carry = 0.0


def _import_sounddevice():
    """sounddevice, or NoAudio saying why not (its import raises OSError without PortAudio)."""
    try:
        import sounddevice
    except OSError as e:
        raise NoAudio(f"no audio: the PortAudio library is not installed ({one_line(e)})") from e
    except ImportError as e:
        raise NoAudio(f"no audio: the sounddevice package is missing ({one_line(e)})") from e
    return sounddevice


def _output_device(sd, device: str | int | None) -> dict:
    """sounddevice's description of the output device (None: the default), or NoAudio."""
    try:
        info = sd.query_devices(device, kind="output")
    except ValueError as e:  # no such device (name or index), or no output device at all
        which = f"no audio output device named {device!r}" if device is not None else None
        raise NoAudio(which or f"no audio output device ({one_line(e)})") from e
    except Exception as e:  # PortAudioError and the like
        raise NoAudio(f"no audio output device ({one_line(e)})") from e
    if not info or info.get("max_output_channels", 0) < 1:
        raise NoAudio(f"{device!r} is not an audio output device")
    return info


def available(device: str | int | None = None) -> tuple[bool, str]:
    """(True, the output device's name) or (False, why not in one line); never raises."""
    try:
        sd = _import_sounddevice()
        return True, str(_output_device(sd, device)["name"])
    except NoAudio as e:
        return False, str(e)
    except Exception as e:  # anything else a broken audio setup can raise
        return False, f"no audio ({one_line(e)})"


class SoundDeviceSink(Sink):
    """The sound card, through sounddevice's OutputStream (``device``: a name, an index or
    None for the default output).  The stream runs from ``open`` to ``close``, playing
    silence while the player is paused (no start/stop latency on play and pause)."""

    def __init__(self, device: str | int | None = None, *, block_frames: int = BLOCK_FRAMES):
        self.device = device
        self.block_frames = block_frames
        self.stream = None
        self.name = "audio output"

    def open(self, player: Player) -> None:
        super().open(player)
        sd = _import_sounddevice()
        info = _output_device(sd, self.device)
        self.name = str(info["name"])
        try:
            self.stream = sd.OutputStream(
                samplerate=player.sample_rate,
                channels=CHANNELS,
                dtype="float32",
                device=self.device,
                blocksize=self.block_frames,
                callback=self._callback,
            )
            self.stream.start()
            self.latency_s = float(self.stream.latency)
        except Exception as e:  # PortAudioError, an unsupported rate or channel count
            self.close()
            raise NoAudio(f"cannot open the audio output {self.name} ({one_line(e)})") from e

    def _callback(self, outdata, frames, time_info, status) -> None:  # the audio thread
        self.player._advance(frames, outdata)

    def close(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close(ignore_errors=True)
            except Exception:  # a device unplugged while open: it is gone either way
                pass


# ---------------------------------------------------------------------------------------------
# The player


class Player:
    """Plays float32 [frames, 2] at ``sample_rate`` through ``sink`` (default: a ClockSink).

    Positions are in seconds of the buffer.  ``on_state`` gets a `PlaybackState` after play,
    pause, seek, a loop change, a splice and the end of the buffer, from the thread that made
    the change (the audio thread for the end): it must not block (post a message).
    """

    def __init__(
        self,
        audio: np.ndarray | None = None,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        *,
        sink: Sink | None = None,
        on_state: StateCallback | None = None,
    ):
        self.sample_rate = int(sample_rate)
        self.on_state = on_state
        self._lock = threading.Lock()
        self._buf = _as_stereo(audio if audio is not None else np.zeros((0, CHANNELS)))
        self._pos = 0
        self._playing = False
        self._loop: tuple[int, int | None] | None = None
        self._end_pending = False
        self.sink = sink if sink is not None else ClockSink()
        self.sink.open(self)

    # -- reading state
    @property
    def position_s(self) -> float:
        with self._pumped():
            return self._pos / self.sample_rate

    @property
    def length_s(self) -> float:
        return len(self._buf) / self.sample_rate

    @property
    def audio(self) -> np.ndarray:
        """The buffer as it plays now (float32 [frames, 2]; do not change it in place)."""
        return self._buf

    @property
    def playing(self) -> bool:
        with self._pumped():
            return self._playing

    @property
    def loop(self) -> tuple[float, float | None] | None:
        """(start_s, end_s or None for the end) while looping, else None."""
        lp = self._loop
        if lp is None:
            return None
        return lp[0] / self.sample_rate, None if lp[1] is None else lp[1] / self.sample_rate

    def state(self) -> PlaybackState:
        with self._pumped():
            return self._state()

    def _state(self) -> PlaybackState:
        return PlaybackState(
            playing=self._playing,
            position_s=self._pos / self.sample_rate,
            length_s=len(self._buf) / self.sample_rate,
            loop=self._loop is not None,
        )

    # -- transport
    def play(self) -> None:
        with self._pumped():
            if self._playing:
                return
            end = self._loop_end()
            if self._pos >= end:  # at the end: play from the start (of the loop)
                self._pos = self._loop[0] if self._loop else 0
            self._playing = True
            self.sink.playing_changed(True)
        self._notify()

    def pause(self) -> None:
        with self._pumped():
            if not self._playing:
                return
            self._playing = False
            self.sink.playing_changed(False)
        self._notify()

    def toggle(self) -> bool:
        """Play if paused, pause if playing; returns whether it now plays."""
        with self._pumped():
            playing = self._playing
        self.pause() if playing else self.play()
        return not playing

    def seek(self, seconds: float) -> None:
        """Move to ``seconds`` (clamped to the buffer)."""
        with self._pumped():
            self._pos = min(max(0, round(seconds * self.sample_rate)), len(self._buf))
            if self._playing:
                self.sink.playing_changed(True)  # the clock counts from here
        self._notify()

    def set_loop(self, start_s: float | None, end_s: float | None = None) -> None:
        """Loop [start_s, end_s) (``end_s`` None: to the end of the buffer); ``start_s`` None:
        stop looping.  The position moves into the loop if it is outside it."""
        with self._pumped():
            if start_s is None:
                self._loop = None
            else:
                a = max(0, round(start_s * self.sample_rate))
                b = None if end_s is None else round(end_s * self.sample_rate)
                if b is not None and b <= a:
                    raise ValueError(f"a loop must end after it starts ({start_s} to {end_s} s)")
                self._loop = (a, b)
                if not a <= self._pos < self._loop_end():
                    self._pos = a
        self._notify()

    def load(
        self,
        audio: np.ndarray,
        sample_rate: int | None = None,
        *,
        position: Callable[[float], float] | None = None,
    ) -> None:
        """Play ``audio`` instead; ``position`` maps the position now (s) to the one in the
        new audio, in the same step as the swap (None: the same position, clamped).
        ``sample_rate`` may change only on a ClockSink."""
        buf = _as_stereo(audio)
        with self._pumped():
            if sample_rate is not None and int(sample_rate) != self.sample_rate:
                if not isinstance(self.sink, ClockSink):
                    raise ValueError("the sample rate cannot change while a device plays")
                self.sample_rate = int(sample_rate)
            pos = self._pos
            if position is not None:
                pos = round(position(pos / self.sample_rate) * self.sample_rate)
            self._buf = buf
            self._pos = min(max(0, pos), len(buf))
        self._notify()

    def splice(
        self, from_s: float, audio: np.ndarray, *, crossfade_s: float = CROSSFADE_S
    ) -> float:
        """Replace the buffer from ``from_s`` on with ``audio`` [frames, 2] (what was after it
        goes; the buffer ends where ``audio`` ends), fading from the old audio to the new over
        ``crossfade_s``.  Thread-safe with the audio callback.

        If the position has already passed ``from_s``, the new audio starts just ahead of the
        position instead (`LATE_SPLICE_AHEAD_S`, from the matching sample of ``audio``).
        Returns the time (s) from which the new audio plays.
        """
        new = _as_stereo(audio)
        start = max(0, round(from_s * self.sample_rate))
        x = max(0, round(crossfade_s * self.sample_rate))
        ahead = LATE_SPLICE_AHEAD_S  # a late splice goes this far ahead of the playhead
        while True:
            with self._pumped():
                old, pos = self._buf, self._pos
            at = start if pos <= start else pos + round(ahead * self.sample_rate)
            buf = _spliced(old, at, new[at - start :], x)
            with self._pumped():
                if self._buf is old and self._pos <= at:
                    self._buf = buf
                    break
            # the buffer changed, or the playhead passed the splice while the new buffer was
            # made (a long piece): again, further ahead (a splice at the playhead itself
            # would chase it for ever)
            ahead *= 2
        self._notify()
        return at / self.sample_rate

    def close(self) -> None:
        with self._lock:
            self._playing = False
        self.sink.close()

    # -- the sink's side
    def _loop_end(self) -> int:
        if self._loop is None or self._loop[1] is None:
            return len(self._buf)
        return min(self._loop[1], len(self._buf))

    def _advance(self, frames: int, out: np.ndarray | None) -> None:
        """Move ``frames`` on, copying them into ``out`` [frames, 2] when given (the audio
        callback: silence where nothing plays).  Wraps at the loop's end; stops at the end."""
        # the audio callback takes the lock; a ClockSink calls this with it already held
        owned = out is not None
        if owned:
            self._lock.acquire()
        try:
            done = 0
            buf = self._buf
            while done < frames and self._playing:
                end = self._loop_end()
                if self._pos >= end:
                    if self._loop is not None and end > self._loop[0]:
                        self._pos = self._loop[0]
                        continue
                    self._playing = False
                    self._end_pending = True
                    self.sink.playing_changed(False)
                    break
                n = min(frames - done, end - self._pos)
                if out is not None:
                    out[done : done + n] = buf[self._pos : self._pos + n]
                self._pos += n
                done += n
            if out is not None and done < frames:
                out[done:] = 0
        finally:
            if owned:
                self._lock.release()
        if owned:
            self._tell_end()

    @contextlib.contextmanager
    def _pumped(self) -> Iterator[None]:
        """The lock, with the position brought up to date; the end, if reached, is told after
        the lock is let go."""
        with self._lock:
            self.sink.pump()
            yield
        self._tell_end()

    def _tell_end(self) -> None:
        if self._end_pending:
            self._end_pending = False
            self._notify()

    def _notify(self) -> None:
        if self.on_state is None:
            return
        with self._lock:
            state = self._state()
        self.on_state(state)


def _as_stereo(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] not in (1, 2):
        raise ValueError(f"audio must be [frames, 1 or 2], got shape {a.shape}")
    if a.shape[1] == 1:
        a = np.repeat(a, 2, axis=1)
    return np.ascontiguousarray(a)


def _spliced(old: np.ndarray, at: int, new: np.ndarray, x: int) -> np.ndarray:
    """old[:at] (silence past its end), then ``new``; new's first ``x`` frames fade in over
    old's (linear: the two are the same music, so their sum keeps the level).  Where old has
    nothing left to fade from (a buffer that ends at ``at``: the next part of a render in
    parts), new starts as it is."""
    out = np.zeros((at + len(new), CHANNELS), dtype=np.float32)
    kept = old[:at]
    out[: len(kept)] = kept
    out[at:] = new
    x = max(0, min(x, len(new), len(old) - at))
    if x:
        under = old[at : at + x]
        w = ((np.arange(x, dtype=np.float32) + 0.5) / x)[:, None]
        out[at : at + x] = under * (1.0 - w) + new[:x] * w
    return out


# ---------------------------------------------------------------------------------------------
# Opening a player, or the system's


def open_player(
    audio: np.ndarray | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    *,
    device: str | int | None = None,
    on_state: StateCallback | None = None,
) -> tuple[Player, str | None]:
    """A Player on the audio output (``device``: a name, an index, None for the default),
    or on a ClockSink when there is none: (player, None) or (player, the one-line notice)."""
    try:
        return Player(audio, sample_rate, sink=SoundDeviceSink(device), on_state=on_state), None
    except NoAudio as e:
        notice = f"{e}; playing silently: open the file in the system player to hear it"
        return Player(audio, sample_rate, sink=ClockSink(), on_state=on_state), notice


def open_in_system_player(path: str | Path) -> str:
    """Open ``path`` in the system's player (xdg-open, open, os.startfile); returns one line
    saying what happened.  Never raises."""
    try:
        p = Path(path).expanduser()
        if not p.exists():
            return f"no file at {p} to open"
        if sys.platform.startswith("win"):
            os.startfile(str(p))  # type: ignore[attr-defined]  # (Windows only)
            return f"opened {p.name} in the system player"
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        exe = shutil.which(opener)
        if exe is None:
            return f"no system player found ({opener} is not installed); the file is {p}"
        subprocess.Popen(
            [exe, str(p)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return f"opened {p.name} in the system player"
    except Exception as e:  # OSError, a missing startfile...: said, never raised
        return f"could not open the system player ({one_line(e)}); the file is {path}"
