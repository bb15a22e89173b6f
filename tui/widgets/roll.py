"""The notes of a piece as the studio's widgets read them: `RollData`, made by `roll_data`.

A neutral model (numpy arrays, no Textual): the piano roll, the parameter lanes and the score
view all draw from it, so they agree on bars, tempi and notes. Times are in quarter notes
from the start (``q``); the bars and the tempo map come from `engine.library.pictures.timeline`
(the same bar counting as the pictures written beside a piece: 4/4 until the first time
signature, 120 quarter notes a minute until the first tempo).

>>> data = roll_data(score)              # a symusic Score in ticks
>>> data.bars, data.seconds_at(8.0), data.bar_stats().density
>>> roll_data(partial, bars_written=3, bars=8)   # while a piece is being written
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from engine import names
from engine.library.pictures import note_name, timeline
from engine.symbolic import theory

if TYPE_CHECKING:
    from symusic import Score

__all__ = ["BarStats", "RollData", "RollPart", "bar_label", "note_name", "roll_data"]

GUTTER = 5  # columns left of the bar grid (note names, lane names): every bar widget shares it

# Key signatures by sharps (negative: flats), as symusic's KeySignature.key counts them.
_MAJOR_KEYS = ("Cb Gb Db Ab Eb Bb F C G D A E B F# C#").split()
_MINOR_KEYS = ("Ab Eb Bb F C G D A E B F# C# G# D# A#").split()


@dataclass(frozen=True, eq=False)
class RollPart:
    """One track that has notes."""

    name: str
    program: int
    is_drum: bool
    notes: np.ndarray
    """[N, 4] float64 rows of (start q, duration q, MIDI pitch, velocity), sorted by start."""

    @property
    def pitch_range(self) -> tuple[int, int] | None:
        """(lowest, highest) MIDI pitch, None without notes."""
        if not len(self.notes):
            return None
        return int(self.notes[:, 2].min()), int(self.notes[:, 2].max())


@dataclass(frozen=True, eq=False)
class BarStats:
    """Per bar (index 0 is bar 1): what the parameter lanes draw."""

    velocity: np.ndarray
    """[B] mean velocity of the notes that start in the bar; NaN where none start."""
    tempo: np.ndarray
    """[B] the bar's tempo in quarter notes a minute (its quarters over its minutes, so a
    tempo change inside a bar gives the mean)."""
    density: np.ndarray
    """[B] how many notes start in the bar (all parts)."""


@dataclass(frozen=True, eq=False)
class RollData:
    """The notes, bars and tempi of a score, in quarter notes (see the module docstring)."""

    parts: tuple[RollPart, ...]
    bar_starts: np.ndarray
    """[B + 1] where each bar starts, in quarters, and where the last one ends."""
    meters: tuple[tuple[int, int, int], ...]
    """(bar index from 0, numerator, denominator) at each meter change (the first at bar 0)."""
    tempo_q: np.ndarray
    """[T] where each tempo starts, in quarters (the first at 0)."""
    tempo_qpm: np.ndarray
    """[T] quarter notes a minute from there on."""
    key: str | None = None
    """The first key signature as a name (``"D minor"``); None when the score has none."""
    bars_written: int | None = None
    """While a piece is being written: how many bars are finished (the rest are to come)."""
    _stats: dict = field(default_factory=dict, compare=False, repr=False)

    # -- sizes --
    @property
    def bars(self) -> int:
        return len(self.bar_starts) - 1

    @property
    def length_q(self) -> float:
        """The whole length, in quarters (to the end of the last bar)."""
        return float(self.bar_starts[-1])

    @property
    def length_s(self) -> float:
        return self.seconds_at(self.length_q)

    @property
    def quarters_per_bar(self) -> float:
        """Quarters in the first bar (see `meters` for changes)."""
        return float(self.bar_starts[1] - self.bar_starts[0])

    @property
    def written_q(self) -> float:
        """Where the written bars end, in quarters (the whole length when all are written)."""
        if self.bars_written is None:
            return self.length_q
        return float(self.bar_starts[min(max(self.bars_written, 0), self.bars)])

    @property
    def note_count(self) -> int:
        return sum(len(p.notes) for p in self.parts)

    @property
    def pitch_range(self) -> tuple[int, int] | None:
        ranges = [p.pitch_range for p in self.parts if p.pitch_range]
        if not ranges:
            return None
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    @property
    def meter(self) -> str:
        """The meters as text: ``"3/4"``, or ``"4/4, 3/4 from bar 5"``."""
        out = []
        for i, (bar, num, den) in enumerate(self.meters):
            out.append(f"{num}/{den}" + (f" from bar {bar + 1}" if i else ""))
        return ", ".join(out)

    # -- time --
    @cached_property
    def _tempo_seconds(self) -> np.ndarray:
        """[T] seconds at each tempo change."""
        sec_per_q = 60.0 / self.tempo_qpm
        return np.concatenate([[0.0], np.cumsum(np.diff(self.tempo_q) * sec_per_q[:-1])])

    def seconds_at(self, q):
        """Quarters → seconds from the start, through the tempo changes (array or float)."""
        x = np.asarray(q, float)
        k = np.clip(np.searchsorted(self.tempo_q, x, side="right") - 1, 0, None)
        s = self._tempo_seconds[k] + (x - self.tempo_q[k]) * 60.0 / self.tempo_qpm[k]
        return float(s) if s.ndim == 0 else s

    def quarters_at(self, seconds):
        """Seconds → quarters (the inverse of `seconds_at`)."""
        x = np.asarray(seconds, float)
        k = np.clip(np.searchsorted(self._tempo_seconds, x, side="right") - 1, 0, None)
        q = self.tempo_q[k] + (x - self._tempo_seconds[k]) * self.tempo_qpm[k] / 60.0
        return float(q) if q.ndim == 0 else q

    def tempo_at(self, q: float) -> float:
        k = max(int(np.searchsorted(self.tempo_q, q, side="right")) - 1, 0)
        return float(self.tempo_qpm[k])

    # -- bars --
    def bar_position(self, q):
        """Quarters → positions in bars from 0 (1.5 is the middle of bar 2); beyond the last
        bar they go on at its length."""
        x = np.asarray(q, float)
        starts = self.bar_starts
        i = np.clip(np.searchsorted(starts, x, side="right") - 1, 0, self.bars - 1)
        pos = i + (x - starts[i]) / (starts[i + 1] - starts[i])
        return float(pos) if pos.ndim == 0 else pos

    def bar_at(self, q: float) -> int:
        """The bar index (from 0) that ``q`` falls in, clipped to the bars."""
        return int(min(max(np.floor(self.bar_position(q)), 0), self.bars - 1))

    def quarter_of_bar(self, pos: float) -> float:
        """A position in bars → quarters (the inverse of `bar_position`)."""
        i = int(min(max(np.floor(pos), 0), self.bars - 1))
        return float(self.bar_starts[i] + (pos - i) * (self.bar_starts[i + 1] - self.bar_starts[i]))

    def bar_stats(self) -> BarStats:
        """Mean velocity, tempo and notes started, per bar (computed once)."""
        if "stats" not in self._stats:
            B = self.bars
            notes = (
                np.concatenate([p.notes for p in self.parts]) if self.parts else np.zeros((0, 4))
            )
            bar = np.clip(np.searchsorted(self.bar_starts, notes[:, 0], side="right") - 1, 0, B - 1)
            density = np.bincount(bar, minlength=B).astype(np.int64)
            vel_sum = np.bincount(bar, weights=notes[:, 3], minlength=B)
            with np.errstate(invalid="ignore", divide="ignore"):
                velocity = np.where(density > 0, vel_sum / density, np.nan)
            secs = np.diff(self.seconds_at(self.bar_starts))
            tempo = 60.0 * np.diff(self.bar_starts) / secs
            self._stats["stats"] = BarStats(velocity=velocity, tempo=tempo, density=density)
        return self._stats["stats"]


def bar_label(i: int) -> str:
    """Bar index from 0 → the number a musician reads (from 1)."""
    return str(i + 1)


def key_name(sharps: int, minor: bool) -> str:
    """A key signature (sharps, negative for flats) and its mode as a name: (2, False) → D
    major."""
    names = _MINOR_KEYS if minor else _MAJOR_KEYS
    return f"{names[max(-7, min(7, sharps)) + 7]} {'minor' if minor else 'major'}"


def estimate_key(data: RollData) -> str | None:
    """The key the pitched notes suggest (Krumhansl-Schmuckler, engine.symbolic.theory)."""
    notes = [p.notes for p in data.parts if not p.is_drum and len(p.notes)]
    if not notes:
        return None
    n = np.concatenate(notes)
    if n[:, 1].sum() <= 0:
        return None
    profile = theory.pitch_class_profile(n[:, 2].astype(np.int64), n[:, 1])
    tonic, mode = theory.key_from_profile(profile, "krumhansl")
    return f"{names.TONICS[tonic]} {mode}"


def roll_data(score: Score, bars_written: int | None = None, bars: int | None = None) -> RollData:
    """The `RollData` of ``score`` (a symusic Score in ticks).

    While a piece is being written, ``bars_written`` says how many bars are finished and
    ``bars`` how many there will be: the bar grid is extended to ``bars`` (at the last bar's
    length) so the widgets can show the bars to come.
    """
    tl = timeline(score)
    tpq = float(tl.tpq)
    bar_starts = tl.bar_ticks / tpq
    want = max(bars or 0, bars_written or 0)
    if want > len(bar_starts) - 1:
        last = bar_starts[-1] - bar_starts[-2]
        extra = bar_starts[-1] + last * np.arange(1, want - (len(bar_starts) - 1) + 1)
        bar_starts = np.concatenate([bar_starts, extra])
    meters: list[tuple[int, int, int]] = []
    sigs = sorted(
        (int(t.time), int(t.numerator), int(t.denominator)) for t in score.time_signatures
    )
    sigs = [s for s in sigs if s[1] > 0 and s[2] > 0]
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    for t, num, den in sigs:
        b = int(np.searchsorted(bar_starts, t / tpq, side="right")) - 1
        if meters and meters[-1][0] == b:
            meters[-1] = (b, num, den)
        elif not meters or meters[-1][1:] != (num, den):
            meters.append((b, num, den))
    parts = []
    for track in score.tracks:
        if not len(track.notes):
            continue
        a = track.notes.numpy()
        notes = np.stack(
            [
                a["time"] / tpq,
                a["duration"] / tpq,
                a["pitch"].astype(np.float64),
                a["velocity"].astype(np.float64),
            ],
            axis=1,
        )
        notes = notes[np.argsort(notes[:, 0], kind="stable")]
        name = str(track.name).strip() or f"Part {len(parts) + 1}"
        parts.append(RollPart(name, int(track.program), bool(track.is_drum), notes))
    key = None
    if len(score.key_signatures):
        ks = min(score.key_signatures, key=lambda k: int(k.time))
        key = key_name(int(ks.key), bool(ks.tonality))
    return RollData(
        parts=tuple(parts),
        bar_starts=bar_starts,
        meters=tuple(meters),
        tempo_q=tl.tempo_ticks / tpq,
        tempo_qpm=tl.tempo_qpm.astype(np.float64),
        key=key,
        bars_written=bars_written,
    )


def empty_roll() -> RollData:
    """One empty bar of 4/4 at 120: what the widgets show before a piece is given."""
    return RollData(
        parts=(),
        bar_starts=np.array([0.0, 4.0]),
        meters=((0, 4, 4),),
        tempo_q=np.array([0.0]),
        tempo_qpm=np.array([120.0]),
    )
