"""Fixtures shared by the data tests: audio signals (``signals``) and audio and MIDI files
(``media``) built here.

Tests get these through the fixtures, never by importing a test module or this one
(tests/test_test_layout.py checks).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest


class Signals:
    """Audio with known pitch, key and tempo, as float arrays at ``SR`` unless told."""

    SR = 22050

    @staticmethod
    def midi_hz(m: int) -> float:
        return 440.0 * 2 ** ((m - 69) / 12)

    @staticmethod
    def note(hz: float, seconds: float, sr: int = SR) -> np.ndarray:
        """A plucked harmonic tone (four partials, decaying to a sustain)."""
        t = np.arange(int(seconds * sr)) / sr
        env = np.minimum(1.0, np.exp(-2 * t) + 0.3)
        return env * sum(0.3 / h * np.sin(2 * np.pi * hz * h * t) for h in (1, 2, 3, 4))

    @staticmethod
    def scale_and_chord(tonic: int = 60, sr: int = SR) -> np.ndarray:
        """A major scale up twice, then the tonic triad with its bass: a clear key."""
        note, midi_hz = Signals.note, Signals.midi_hz
        steps = (0, 2, 4, 5, 7, 9, 11, 12)
        scale = np.concatenate([note(midi_hz(tonic + s), 0.4, sr) for s in steps] * 2)
        chord = sum(note(midi_hz(tonic + s), 3.0, sr) for s in (-12, 0, 4, 7))
        return np.concatenate([scale, 0.5 * chord]).astype(np.float32)

    @staticmethod
    def clicks(bpm: float, seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
        """Short noise bursts on every beat from 0 s, nothing between."""
        rng = np.random.default_rng(seed)
        y = np.zeros(int(seconds * sr), dtype=np.float32)
        n = int(0.01 * sr)
        decay = np.exp(-np.arange(n) / (0.002 * sr))
        for b in np.arange(0.0, seconds - 0.05, 60.0 / bpm):
            i = int(round(b * sr))
            y[i : i + n] += 0.8 * decay * rng.standard_normal(n)
        return y


class Media:
    """Small audio files and MIDI bytes to import."""

    @staticmethod
    def tone(seconds: float, rate: int, channels: int = 1, hz: float = 440.0) -> np.ndarray:
        t = np.arange(int(seconds * rate)) / rate
        x = 0.3 * np.sin(2 * np.pi * hz * t)
        return np.repeat(x[:, None], channels, axis=1).astype(np.float32)

    @staticmethod
    def write_audio(path: Path, seconds=1.0, rate=8000, channels=1, fmt=None, hz=440.0) -> Path:
        import soundfile as sf

        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), Media.tone(seconds, rate, channels, hz), rate, format=fmt)
        return path

    @staticmethod
    def midi_bytes(
        pitches=(60, 62, 64, 65, 67),
        midi_type=1,
        tempo_bpm=100.0,
        meter=(3, 4),
        key: str | None = "Em",
        program=33,
        drums=True,
    ) -> bytes:
        import mido

        mid = mido.MidiFile(type=midi_type, ticks_per_beat=480)
        meta = mido.MidiTrack()
        if tempo_bpm:
            meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm)))
        if meter:
            meta.append(
                mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1])
            )
        if key:
            meta.append(mido.MetaMessage("key_signature", key=key))
        notes = mido.MidiTrack([mido.Message("program_change", program=program, channel=1)])
        for p in pitches:
            notes.append(mido.Message("note_on", note=p, velocity=80, channel=1))
            notes.append(mido.Message("note_off", note=p, channel=1, time=480))
        tracks = [meta, notes]
        if drums:
            tracks.append(
                mido.MidiTrack(
                    [
                        mido.Message("note_on", note=36, velocity=90, channel=9),
                        mido.Message("note_off", note=36, channel=9, time=240),
                    ]
                )
            )
        if midi_type == 0:
            mid.tracks.append(mido.merge_tracks(tracks))
        else:
            mid.tracks += tracks
        buf = io.BytesIO()
        mid.save(file=buf)
        return buf.getvalue()


@pytest.fixture(scope="session")
def signals():
    """Audio builders: ``note``, ``midi_hz``, ``scale_and_chord``, ``clicks`` (:class:`Signals`,
    a namespace; ``SR`` their default rate)."""
    return Signals


@pytest.fixture(scope="session")
def media():
    """File builders: ``tone``, ``write_audio``, ``midi_bytes`` (:class:`Media`, a namespace)."""
    return Media
