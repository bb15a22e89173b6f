"""A 4-part piece for the studio's playback tests and benchmark, and its changed versions.

``piece(bars, bpm)`` → (MIDI bytes, bar lines in s); ``piece(..., tempo_from=(k, bpm2))``,
``velocity_from=(k, scale)``, ``program_from=(k, part, program)`` are the changes the Make
screen makes: from bar ``k`` on.  Deterministic (a seeded generator), 4/4, 480 ticks a beat.
"""

from __future__ import annotations

import io

import mido
import numpy as np

TPQ = 480
BAR_TICKS = 4 * TPQ
PROGRAMS = (0, 40, 42, 73)  # piano, violin, cello, flute
LOW = (60, 67, 43, 74)
STEPS = (TPQ, TPQ // 2, 2 * TPQ, TPQ // 2)  # quarters, eighths, halves, eighths


def piece(
    bars: int = 16,
    bpm: float = 120.0,
    *,
    seed: int = 0,
    tempo_from: tuple[int, float] | None = None,
    velocity_from: tuple[int, float] | None = None,
    program_from: tuple[int, int, int] | None = None,
) -> tuple[bytes, list[float]]:
    """(MIDI bytes, the time in s of each bar line, bar 0 first: ``bars`` of them)."""
    rng = np.random.default_rng(seed)
    mf = mido.MidiFile(type=1, ticks_per_beat=TPQ)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("time_signature", numerator=4, denominator=4))
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    if tempo_from is not None:
        k, bpm2 = tempo_from
        conductor.append(
            mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm2), time=k * BAR_TICKS)
        )
    mf.tracks.append(conductor)
    for part, program in enumerate(PROGRAMS):
        events = [(0, 0, mido.Message("program_change", channel=part, program=program))]
        if program_from is not None and program_from[1] == part:
            k, _, program2 = program_from
            events.append(
                (k * BAR_TICKS, 0, mido.Message("program_change", channel=part, program=program2))
            )
        step = STEPS[part]
        for t in range(0, bars * BAR_TICKS, step):
            note = LOW[part] + int(rng.integers(0, 12))
            velocity = int(rng.integers(50, 100))
            if velocity_from is not None and t >= velocity_from[0] * BAR_TICKS:
                velocity = max(1, min(127, round(velocity * velocity_from[1])))
            events.append(
                (t, 1, mido.Message("note_on", channel=part, note=note, velocity=velocity))
            )
            events.append((t + step - 10, 0, mido.Message("note_off", channel=part, note=note)))
        events.sort(key=lambda e: (e[0], e[1]))
        track, now = mido.MidiTrack(), 0
        for t, _, msg in events:
            track.append(msg.copy(time=t - now))
            now = t
        mf.tracks.append(track)
    buf = io.BytesIO()
    mf.save(file=buf)
    beat_s = [60.0 / bpm] * bars
    if tempo_from is not None:
        beat_s[tempo_from[0] :] = [60.0 / tempo_from[1]] * (bars - tempo_from[0])
    bar_times = [0.0]
    for k in range(bars - 1):
        bar_times.append(bar_times[-1] + 4 * beat_s[k])
    return buf.getvalue(), bar_times
