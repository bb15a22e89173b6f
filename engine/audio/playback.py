"""Audio for playback while a piece changes: the full render with its levels, and a window.

A player that hears a change "from the next bar on" cannot render the whole piece again for
every change; it renders the bars not yet heard and splices them into what it plays::

    render_playback   MIDI → (float32 [frames, 2], Levels): ``render_audio``'s samples, and
                      the numbers its effects and loudness gain were made with
    render_window     MIDI, start_s, seconds → float32 [round(seconds·rate), 2]: the same
                      samples as the full render over [start_s, start_s + seconds)

A window is synthesized from an earlier point (``PREROLL_S`` before it, further back to the
onset of a note still sounding there, at most ``MAX_PREROLL_S``) so that the notes sounding
into it, the synth's voices and the reverb have settled, and is then cut.  Its effects use
the full render's compressor threshold and its loudness gain the full render's gain
(``Levels``): a spliced window continues the full render at the same level.  When a change
makes the music louder (velocities up), the gain stays: the change is heard, not normalised
away.

The synthesizer (rustysynth) starts each MIDI event at the start of a 64-sample block at its
own rate (48 kHz).  A window's synthesis starts on that block grid (and on a whole sample of
the output rate): its events fall on the same blocks as in the full render, apart from an
event that lies exactly on a block boundary, which floating-point rounding may move one block
(1.3 ms) either way.
"""

from __future__ import annotations

import bisect
import functools
import io
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio.io import resample
from engine.audio.render import (
    DEFAULT_SAMPLE_RATE,
    RELEASE_TAIL_S,
    TARGET_LUFS,
    Effects,
    apply_effects,
    check_sample_rate,
    midi_data,
    normalize_loudness,
    prepare_midi,
    synthesize,
)
from engine.audio.soundfonts import load_soundfont, soundfont_path
from engine.errors import RenderError

# Synthesized before a window so that voices, the synth's reverb and the effects' reverb
# settle (the default Freeverb room decays by 60 dB in well under 2 s).
PREROLL_S = 3.0
# A note still sounding at the pre-roll start moves the start back to its onset, at most this
# far before the window; an older note is struck again there.
MAX_PREROLL_S = 6.0
# Synthesized after a window: the resampler's filter looks a few ms ahead.
TAIL_MARGIN_S = 0.05
SYNTH_SAMPLE_RATE = 48000  # midirenderer's output rate
SYNTH_BLOCK = 64  # rustysynth processes MIDI events at the start of each block of this many


@dataclass(frozen=True)
class Levels:
    """What the full render's effects and loudness gain were made with.

    ``synth_peak_db``: the synthesizer output's sample peak (dBFS), the compressor's
    reference; ``gain_db``: the loudness gain; ``limited``: the gain was capped by the peak
    ceiling (then it is a hair lower, as ``normalize_loudness`` makes it).
    """

    synth_peak_db: float
    gain_db: float
    limited: bool = False

    @property
    def gain(self) -> float:
        """The linear factor ``normalize_loudness`` multiplied the samples by."""
        return 10.0 ** (self.gain_db / 20.0) * (1.0 - 1e-6 if self.limited else 1.0)


def render_playback(
    midi: bytes | str | Path,
    *,
    soundfont: str | Path | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    effects: Effects | None = None,
    target_lufs: float = TARGET_LUFS,
    gain: Levels | None = None,
) -> tuple[np.ndarray, Levels]:
    """The whole piece as ``render_audio`` makes it (float32 [frames, 2], the same samples),
    and its `Levels` for `render_window`.

    ``gain``: another version's `Levels` to render with instead of measuring this one's (a
    changed piece keeps the level it played at; it is returned unchanged).
    """
    effects = Effects() if effects is None else effects
    effects.validate()
    path = soundfont_path(soundfont)
    audio = synthesize(midi, load_soundfont(path), path, sample_rate)
    if gain is not None:
        audio = apply_effects(audio, sample_rate, effects, peak_db=gain.synth_peak_db)
        return (audio.astype(np.float64) * gain.gain).astype(np.float32), gain
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    peak_db = 20.0 * math.log10(peak) if peak > 0 else -math.inf
    audio = apply_effects(audio, sample_rate, effects)
    audio, info = normalize_loudness(audio, sample_rate, target_lufs=target_lufs)
    return audio, Levels(peak_db, float(info["gain_db"]), bool(info["limited"]))


def rendered_seconds(midi: bytes | str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE) -> float:
    """The length (s) of the piece's full render at ``sample_rate``, without rendering it."""
    sample_rate = check_sample_rate(sample_rate)
    data, name = midi_data(midi)
    timeline = _timeline(data, name)
    if timeline is None:
        _, length_s = prepare_midi(data, name)
        return round((length_s + RELEASE_TAIL_S) * sample_rate) / sample_rate
    synth_frames = int(SYNTH_SAMPLE_RATE * timeline[1][-1])
    g = math.gcd(SYNTH_SAMPLE_RATE, sample_rate)
    frames = -(-synth_frames * (sample_rate // g) // (SYNTH_SAMPLE_RATE // g))
    return frames / sample_rate


def warm() -> None:
    """Import what a render needs (a render process calls it once, before the first piece)."""
    import midirenderer  # noqa: F401
    import mido  # noqa: F401
    import pedalboard  # noqa: F401
    import pyloudnorm  # noqa: F401
    import scipy.signal  # noqa: F401
    import soundfile  # noqa: F401


# ---------------------------------------------------------------------------------------------
# The synthesizer's timeline

_CHANNEL_TYPES = frozenset(
    {
        "note_on",
        "note_off",
        "control_change",
        "program_change",
        "pitchwheel",
        "aftertouch",
        "polytouch",
    }
)
_DT = 1.0 * SYNTH_BLOCK / SYNTH_SAMPLE_RATE  # as the sequencer computes it (f64)


def _synth_timeline(mf) -> tuple[list, list[float]]:
    """The messages the synthesizer plays and their times (s), merged and timed exactly as
    rustysynth's ``MidiFile`` does (same f64 operations in the same order): channel messages
    and each track's end; tempo changes only change the times; sysex and other meta events
    are not read."""
    lists = []
    for track in mf.tracks:
        tick, kept = 0, []
        for msg in track:
            tick += msg.time
            if msg.type in _CHANNEL_TYPES or msg.type == "set_tempo":
                kept.append((tick, msg))
            elif msg.type == "end_of_track":
                kept.append((tick, msg))
                break
        lists.append(kept)
    resolution = float(mf.ticks_per_beat)
    messages, times = [], []
    idx = [0] * len(lists)
    tick, now, tempo = 0, 0.0, 120.0
    while True:
        best, best_tick = -1, None
        for i, kept in enumerate(lists):
            if idx[i] < len(kept) and (best_tick is None or kept[idx[i]][0] < best_tick):
                best, best_tick = i, kept[idx[i]][0]
        if best < 0:
            break
        msg = lists[best][idx[best]][1]
        idx[best] += 1
        now += 60.0 / (resolution * tempo) * float(best_tick - tick)
        tick = best_tick
        if msg.type == "set_tempo":
            tempo = 60000000.0 / float(msg.tempo)
        else:
            messages.append(msg)
            times.append(now)
    return messages, times


@functools.lru_cache(maxsize=4)
def _timeline(data: bytes, name: str) -> tuple[list, list[float], list] | None:
    """(messages, times, note spans (onset s, end s)) of the file the full render plays,
    or None when it has no notes.  Kept for the last few pieces: a player renders several
    windows of one version."""
    import mido

    prepared, _ = prepare_midi(data, name)
    if prepared is None:
        return None
    messages, times = _synth_timeline(mido.MidiFile(file=io.BytesIO(prepared), clip=True))
    spans, sounding = [], {}
    for msg, t in zip(messages, times, strict=True):
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.setdefault((msg.channel, msg.note), []).append(t)
        elif msg.type in ("note_on", "note_off") and sounding.get((msg.channel, msg.note)):
            spans.append((sounding[(msg.channel, msg.note)].pop(0), t))
    spans += [(t, math.inf) for ts in sounding.values() for t in ts]
    return messages, times, spans


def _block_starts(n: int) -> list[float]:
    """The sequencer's clock at the start of blocks 0..n-1 (summed block by block, as it is)."""
    return list(itertools.accumulate(itertools.repeat(_DT, n - 1), initial=0.0))


def _grid_samples(sample_rate: int) -> int:
    """Synth samples between possible window starts: whole blocks, and a whole number of
    output samples (so the resampler's phase matches the full render's)."""
    step = SYNTH_SAMPLE_RATE // math.gcd(SYNTH_SAMPLE_RATE, sample_rate)
    return SYNTH_BLOCK * step // math.gcd(SYNTH_BLOCK, step)


# The window's file: 1 tick = half a block (tempo 64 ms per quarter, 96 ticks per quarter), so
# an event put at tick 2j - 1 lies in the middle of block j - 1 and is played at block j.
_WINDOW_TPQ = 96
_WINDOW_TEMPO_US = round(SYNTH_BLOCK * 1e6 / SYNTH_SAMPLE_RATE * _WINDOW_TPQ / 2)


def _window_midi(messages: list, blocks: list[int], g: int, end: int) -> bytes:
    """A type-0 file that plays ``messages`` of blocks [g, end) at blocks [0, end - g).

    Before block g: notes are dropped, those still sounding at g are struck again at its
    start; every other channel message is kept at the start (programs, controllers, pedal,
    pitch bend keep their state).
    """
    import mido

    before, held, events = [], {}, []
    for msg, b in zip(messages, blocks, strict=True):
        if b >= end:
            break
        if msg.type == "end_of_track":
            continue
        if b < g:
            if msg.type == "note_on" and msg.velocity > 0:
                held.setdefault((msg.channel, msg.note), []).append(msg)
            elif msg.type in ("note_on", "note_off"):
                starts = held.get((msg.channel, msg.note))
                if starts:
                    starts.pop(0)
            else:
                before.append(msg)
        else:
            events.append((max(0, 2 * (b - g) - 1), msg))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=_WINDOW_TEMPO_US)])
    track += [m.copy(time=0) for m in before]
    track += [m.copy(time=0) for starts in held.values() for m in starts]
    last = 0
    for tick, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=2 * (end - g) - last))
    out = mido.MidiFile(type=0, ticks_per_beat=_WINDOW_TPQ)
    out.tracks.append(track)
    buf = io.BytesIO()
    out.save(file=buf)
    return buf.getvalue()


def render_window(
    midi: bytes | str | Path,
    start_s: float,
    seconds: float,
    *,
    soundfont: str | Path | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    effects: Effects | None = None,
    gain: Levels | None = None,
) -> np.ndarray:
    """The piece's audio over [start_s, start_s + seconds): float32 [round(seconds·rate), 2].

    Sample i is close to sample ``round(start_s·rate) + i`` of ``render_playback`` (silence
    past its end).  ``gain``: the full render's `Levels` (``render_playback`` returns them);
    None measures them with a full render first (slow: a player keeps them).  ``effects``
    must be the full render's.
    """
    import midirenderer
    import soundfile as sf

    sample_rate = check_sample_rate(sample_rate)
    if not (math.isfinite(start_s) and math.isfinite(seconds)) or start_s < 0 or seconds < 0:
        raise RenderError(f"cannot render {seconds!r} s from {start_s!r} s; use times of 0 or more")
    effects = Effects() if effects is None else effects
    effects.validate()
    if gain is None:
        _, gain = render_playback(
            midi, soundfont=soundfont, sample_rate=sample_rate, effects=effects
        )
    first = round(start_s * sample_rate)
    n = round(seconds * sample_rate)
    out = np.zeros((n, 2), dtype=np.float32)
    data, name = midi_data(midi)
    timeline = _timeline(data, name)
    if timeline is None or n == 0:
        return out
    messages, times, spans = timeline
    full_frames = int(SYNTH_SAMPLE_RATE * times[-1])  # midirenderer's length, truncated
    start_s = first / sample_rate
    end_s = (first + n) / sample_rate + TAIL_MARGIN_S
    if start_s * SYNTH_SAMPLE_RATE >= full_frames:
        return out

    # where synthesis starts: the pre-roll, back to the onset of a note sounding there
    floor_s = max(0.0, start_s - MAX_PREROLL_S)
    pre_s = max(floor_s, start_s - PREROLL_S)
    for _ in range(16):
        earlier = [a for a, b in spans if a < pre_s < b]
        if not earlier:
            break
        pre_s = max(floor_s, min(earlier))
    grid = _grid_samples(sample_rate)
    g = math.floor(pre_s * SYNTH_SAMPLE_RATE / grid) * grid // SYNTH_BLOCK  # first block
    end = min(math.ceil(end_s * SYNTH_SAMPLE_RATE / SYNTH_BLOCK), -(-full_frames // SYNTH_BLOCK))
    starts = _block_starts(end + 1)
    blocks = [bisect.bisect_left(starts, t) for t in times]  # the block each message plays at
    window = _window_midi(messages, blocks, g, end)

    path = soundfont_path(soundfont)
    try:
        wav = midirenderer.render_wave_from(load_soundfont(path), window)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # a Rust panic arrives as pyo3's PanicException
        raise RenderError(
            f"could not synthesize {name} ({e}); check that the SoundFont {path} "
            "opens in another player"
        ) from e
    synth, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    if synth.shape[1] == 1:
        synth = np.repeat(synth, 2, axis=1)
    # the full render stops at its own length: nothing past it
    frames = min(synth.shape[0], full_frames - g * SYNTH_BLOCK)
    synth = np.ascontiguousarray(synth[:frames, :2])
    audio = resample(synth, rate, sample_rate, polyphase=True)
    audio = apply_effects(audio, sample_rate, effects, peak_db=gain.synth_peak_db)
    audio = (audio.astype(np.float64) * gain.gain).astype(np.float32)
    # the output sample where synthesis started is whole by the grid's choice
    offset = first - g * SYNTH_BLOCK * sample_rate // SYNTH_SAMPLE_RATE
    piece = audio[offset : offset + n]
    out[: len(piece)] = piece
    return out
