"""Voice leading while sampling: a penalty on the pitches that would break the part-writing.

The score model writes one whole part after another (`engine.symbolic.tokenizer`), so when a part is
sampled every part before it is known. At each new note of a one-note part (a line: voices,
winds, brass, solo strings; `engine.symbolic.texture`) `VoiceLeading` lowers the logits of the
pitches that would make

- **a crossing**: the part above the line into the line's own pitch space, or the line below
  it (a line sounds at or below the line ranked above it, at or above the one below);
- **a wide spacing**: more than an octave between two adjacent upper parts (the lowest part
  may lie further below);
- **a parallel fifth or octave** with any part written before: both parts move in the same
  direction into the same perfect interval (mod 12) they had at the moment before.

Each fault found costs ``strength`` logits (0 = the model alone; `DEFAULT_STRENGTH` is
strong enough that a fault is taken only when every alternative is much less likely). The
moments are the ones `engine.symbolic.quality` measures: the onsets of the parts, a part's pitch at
a
moment being the latest note that sounds then. Chord instruments (piano, harp, ...) stand
outside: they neither get nor cause a penalty.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from engine.names import DEFAULT_VOICE_LEADING as DEFAULT_STRENGTH  # logits per fault
from engine.names import MAX_VOICE_LEADING as MAX_STRENGTH  # noqa: F401 (re-exported)

CROSSING_STRENGTH = 4.0  # logits per crossing at the least, whenever voice leading is on
SPACING = 12  # semitones: the widest interval between adjacent upper parts
PERFECT = (0, 7)  # unison/octave, fifth (mod 12)


class _Line:
    """One finished part's notes, for lookups by time."""

    def __init__(self, notes: Sequence[tuple[int, int, int]], *, in_order: bool = False):
        ordered = list(notes) if in_order else sorted(notes, key=lambda n: (n[0], n[2]))
        self.starts = [n[0] for n in ordered]
        self.notes = ordered

    def at(self, t: int) -> int | None:
        """The pitch sounding at ``t``: the latest note started by ``t`` that still sounds
        (or starts exactly at ``t``), as `engine.symbolic.quality` samples a voice."""
        i = bisect.bisect_right(self.starts, t)
        for start, end, pitch in reversed(self.notes[max(0, i - 4) : i]):
            if end > t or start == t:
                return pitch
        return None


class VoiceLeading:
    """Pitch penalties for part ``grammar.track`` against the parts written before it.

    ``order`` ranks the tracks top to bottom (a list of track indices, highest part first);
    tracks not in it stand outside. ``parallels``/``spacing`` switch those rules on (the
    crossing rule is always on, at ``crossing_strength``).
    """

    def __init__(
        self,
        tokenizer,
        order: Sequence[int],
        *,
        strength: float = DEFAULT_STRENGTH,
        crossing_strength: float = CROSSING_STRENGTH,
        parallels: bool = True,
        spacing: bool = True,
    ):
        self.order = list(order)
        self.strength = float(strength)
        self.crossing_strength = float(crossing_strength)
        self.parallels = parallels and self.strength > 0
        self.spacing = spacing and self.strength > 0
        pitch = tokenizer.pitch_of
        self.pitch_ids = np.flatnonzero(pitch >= 0)
        self.pitches = pitch[self.pitch_ids].astype(np.int64)
        self.V = len(pitch)
        self._lines: dict[int, _Line] = {}
        self._onsets: list[int] | None = None
        self._onsets_of: tuple[int, ...] = ()

    @property
    def active(self) -> bool:
        return len(self.order) > 1 and (self.strength > 0 or self.crossing_strength > 0)

    def _line(self, grammar, k: int) -> _Line:
        if k not in self._lines:
            self._lines[k] = _Line(grammar.notes[k])
        return self._lines[k]

    def _earlier_onsets(self, grammar, written: Sequence[int]) -> list[int]:
        key = tuple(written)
        if self._onsets is None or key != self._onsets_of:
            self._onsets = sorted({n[0] for k in written for n in grammar.notes[k]})
            self._onsets_of = key
        return self._onsets

    def __call__(self, grammar) -> np.ndarray | None:
        j = grammar.track
        if j not in self.order or grammar.state not in ("pitch", "event") or grammar.sealed:
            return None
        if grammar.poly != 1 or grammar.position < 0:
            return None
        written = [k for k in self.order if k < j and grammar.polys[k] == 1]
        if not written:
            return None
        t = grammar.bar_start + grammar.position
        rank = self.order.index(j)
        lowest = rank == len(self.order) - 1
        above = next((k for k in reversed(self.order[:rank]) if k in written), None)
        below = next((k for k in self.order[rank + 1 :] if k in written), None)
        P = self.pitches
        fault = np.zeros(len(P), dtype=np.float32)
        if above is not None:
            pu = self._line(grammar, above).at(t)
            if pu is not None:
                fault += self.crossing_strength * (P > pu)
                if self.spacing and not lowest:
                    fault += self.strength * (P < pu - SPACING)
        if below is not None:
            pd = self._line(grammar, below).at(t)
            if pd is not None:
                fault += self.crossing_strength * (P < pd)
                below_is_lowest = self.order.index(below) == len(self.order) - 1
                if self.spacing and not below_is_lowest:
                    fault += self.strength * (P > pd + SPACING)
        if self.parallels:
            fault += self.strength * self._parallels(grammar, written, t)
        if not fault.any():
            return None
        bias = np.zeros(self.V, dtype=np.float32)
        bias[self.pitch_ids] = -fault
        return bias

    def _parallels(self, grammar, written: Sequence[int], t: int) -> np.ndarray:
        """1 for each candidate pitch that moves in parallel fifths/octaves with a part."""
        # (the line being written: one note at a time, fed in time order)
        own = _Line(grammar.notes[grammar.track], in_order=True)
        onsets = self._earlier_onsets(grammar, written)
        i = bisect.bisect_left(onsets, t)
        before = onsets[i - 1] if i else -1
        if own.starts and own.starts[-1] > before:
            before = own.starts[-1]
        if before < 0:
            return np.zeros(len(self.pitches), dtype=np.float32)
        pj = own.at(before)
        if pj is None:
            return np.zeros(len(self.pitches), dtype=np.float32)
        P = self.pitches
        step = np.sign(P - pj)
        out = np.zeros(len(P), dtype=np.float32)
        for k in written:
            line = self._line(grammar, k)
            pk0, pk1 = line.at(before), line.at(t)
            if pk0 is None or pk1 is None or pk0 == pk1:
                continue
            interval = abs(pj - pk0) % 12
            if interval not in PERFECT:
                continue
            out += (step == np.sign(pk1 - pk0)) & (np.abs(P - pk1) % 12 == interval)
        return out
