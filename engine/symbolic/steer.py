"""Steering: musical controls applied while the score model samples, as logit biases.

The score model is conditioned only on style, key, mode, meter, tempo band and voices.  The
other controls a musician asks for are applied token by token through `Steering`, which the
sampler calls at every step with the grammar's state (which track, which bar, what comes
next) and which returns a bias added to the logits (``-inf`` forbids a token):

- **harmony**: a chord per bar (a progression such as ``I-vi-IV-V`` or ``Am F C G``, cycled
  over the piece).  Chord tones get ``chord_strength`` in every part; in the bass part the
  chord is a hard constraint (only chord tones are allowed).
- **density**: short durations and close onsets favoured (dense) or long ones (sparse).
- **syncopation**: onsets off the beat favoured (or, below 0.5, onsets on the beat).
- **contour**: the melody part (track 0) is drawn towards a pitch line that rises, falls or
  arches over the piece.
- **cadences** (on by default): the plan of `cadence_chords`. The last bar of the piece is
  the tonic chord; without a progression the first bar is the tonic too and the bar before
  the last the dominant (an authentic cadence), and the end of a section (``section_ends``)
  is a half cadence (the dominant) or a full one (dominant, then tonic). The bass takes the
  plan's chords like a progression's and plays the tonic alone in the last bar (a single
  part is its own bass); the parts above get a gentle pull (``CADENCE_STRENGTH``) to the
  chord's tones, and a chord instrument plays only the tonic as low as the bass's range.
- **the bass on the beat**: in a bar with a chord the bass part starts a note on the bar's
  first beat, on the chord's root, and its notes do not tie over into a bar with a chord.

The biases are documented, reproducible (a pure function of the sequence so far) and small
enough that the model's own choices still carry the music: see ``docs/prompting.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from engine.errors import UserError
from engine.symbolic import theory
from engine.symbolic.tokenizer import TONICS, ScoreTokenizer, tonic_index

# Roman numeral degree -> semitones above the tonic (major scale; minor uses its own).
_ROMAN = ("i", "ii", "iii", "iv", "v", "vi", "vii")
_QUALITIES = {
    "": (0, 4, 7),
    "maj": (0, 4, 7),
    "m": (0, 3, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10),
    "min7": (0, 3, 7, 10),
    "sus2": (0, 2, 7),
    "sus4": (0, 5, 7),
}
_SYMBOL = re.compile(r"^([A-G])([#b]?)(maj7|min7|maj|min|m7|dim|aug|sus2|sus4|m|7)?$")
_NUMERAL = re.compile(r"^([b#]?)(vii|iii|vi|iv|ii|v|i)(°|o|dim|\+|aug)?(7)?$", re.IGNORECASE)

CHORD_STRENGTH = 2.0  # logit bonus for chord tones in the parts above the bass
DENSITY_STRENGTH = 2.0  # logit scale of the duration/onset preference at density 0 or 1
SYNCOPATION_STRENGTH = 1.5  # logit bonus for off-beat onsets at syncopation 1
CONTOUR_STRENGTH = 1.5  # logit penalty per octave away from the contour line
CADENCE_STRENGTH = 1.0  # logit bonus for a cadence chord's tones in the parts above the bass
CLOSING_STRENGTH = 3.0  # logits for the last bass note to be held to the end


class SteeringError(UserError, ValueError):
    """A control that cannot be applied (an unreadable chord, an unknown contour)."""


@dataclass(frozen=True)
class Chord:
    symbol: str
    root: int  # pitch class 0..11
    pitch_classes: frozenset[int]


def parse_chord(symbol: str, key: str | None = None, mode: str | None = None) -> Chord:
    """A chord symbol (``Am``, ``F#7``, ``Bbmaj7``) or a Roman numeral in ``key``/``mode``.

    Roman numerals without a key are read in C major (upper-case first numeral) or A minor.
    """
    s = symbol.strip()
    m = _SYMBOL.match(s)
    if m:
        root = (tonic_index(m[1]) + {"#": 1, "b": -1, "": 0}[m[2]]) % 12
        intervals = _QUALITIES[m[3] or ""]
        return Chord(s, root, frozenset((root + i) % 12 for i in intervals))
    m = _NUMERAL.match(s)
    if m:
        accidental, numeral, quality, seventh = m[1], m[2], m[3] or "", m[4] or ""
        degree = _ROMAN.index(numeral.lower())
        minor_key = mode == "minor"
        tonic = tonic_index(key) if key else (9 if minor_key else 0)
        steps = theory.NATURAL_MINOR_STEPS if minor_key else theory.MAJOR_SCALE_STEPS
        root = (tonic + steps[degree] + {"#": 1, "b": -1, "": 0}[accidental]) % 12
        if quality in ("°", "o", "dim"):
            intervals = [0, 3, 6]
        elif quality in ("+", "aug"):
            intervals = [0, 4, 8]
        elif numeral.isupper():
            intervals = [0, 4, 7]
        else:
            intervals = [0, 3, 7]
        if seventh:
            intervals.append(10 if not (numeral.isupper() and degree in (0, 3)) else 11)
            if numeral.isupper() and degree == 4:
                intervals[-1] = 10  # V7 is a dominant seventh
        return Chord(s, root, frozenset((root + i) % 12 for i in intervals))
    raise SteeringError(
        f"cannot read the chord {symbol!r}; write symbols like Am, F, C7, Bbmaj7 or Roman "
        "numerals like I, vi, IV, V7"
    )


def key_of_progression(chords: list[str]) -> tuple[str, str] | None:
    """The key a chord-symbol progression implies: its first chord (``Am`` -> A minor)."""
    m = _SYMBOL.match(chords[0].strip()) if chords else None
    if not m:
        return None
    tonic = TONICS[(tonic_index(m[1]) + {"#": 1, "b": -1, "": 0}[m[2]]) % 12]
    return tonic, "minor" if (m[3] or "").startswith("m") and m[3] != "maj7" else "major"


@dataclass
class Steering:
    """Controls applied while sampling; every field is optional (None/neutral = off)."""

    progression: list[str] | None = None
    key: str | None = None
    mode: str | None = None
    density: float | None = None  # 0 sparse .. 0.5 neutral .. 1 dense
    syncopation: float | None = None  # 0 on the beat .. 1 off the beat
    contour: str | None = None  # rising, falling, arch
    total_bars: int = 8
    bass_track: int | None = None  # the part that must play chord tones only
    cadence: bool = True  # steer the last bars (and section ends) to a cadence
    section_ends: dict[int, str] = field(default_factory=dict)  # bar -> "half" | "full"
    chords: list[Chord] = field(default_factory=list, init=False)

    def __post_init__(self):
        if self.progression:
            self.chords = [parse_chord(c, self.key, self.mode) for c in self.progression]
        for name in ("density", "syncopation"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 1:
                raise SteeringError(f"{name} must be between 0 and 1, not {v}")
        if self.contour not in (None, "rising", "falling", "arch"):
            raise SteeringError(f"unknown contour {self.contour!r}; use rising, falling or arch")

    @property
    def active(self) -> bool:
        return bool(
            self.chords
            or self.cadence
            or (self.density is not None and self.density != 0.5)
            or self.syncopation is not None
            or self.contour
        )

    def cadence_chords(self, key: str | None, mode: str | None) -> dict[int, tuple[str, bool]]:
        """bar -> (Roman numeral, final) of the cadence plan, for a piece in ``key``/``mode``.

        The last bar is ``I`` (final: every part on the tonic triad, the bass on the tonic);
        without a progression the first bar is ``I`` and the bar before the last ``V``; a
        "half" section end is ``V``, a "full" one ``V`` then ``I``. Empty without a key or
        with cadences off.
        """
        if not self.cadence or key is None or mode is None:
            return {}
        tonic = "i" if mode == "minor" else "I"  # (a minor piece ends in minor)
        plan: dict[int, tuple[str, bool]] = {}
        for bar, kind in sorted(self.section_ends.items()):
            if self.chords or not 0 <= bar < self.total_bars - 1:
                continue
            plan[bar] = (tonic, False) if kind == "full" else ("V", False)
            if kind == "full" and bar > 0:
                plan.setdefault(bar - 1, ("V", False))
        last = self.total_bars - 1
        if last >= 2 and not self.chords:
            plan.setdefault(0, (tonic, False))  # the piece opens on the tonic
        if last >= 1 and not self.chords:
            plan[last - 1] = ("V", False)
        plan[last] = (tonic, True)
        return plan

    def chord_at(self, bar: int) -> Chord | None:
        """The chord of bar ``bar`` (0-based, over the whole piece), cycling the progression."""
        return self.chords[bar % len(self.chords)] if self.chords else None

    def to_dict(self) -> dict:
        return {
            "progression": self.progression,
            "density": self.density,
            "syncopation": self.syncopation,
            "contour": self.contour,
            "bass_track": self.bass_track,
            "cadence": self.cadence,
            "section_ends": {str(k): v for k, v in sorted(self.section_ends.items())},
        }

    def bind(self, tokenizer: ScoreTokenizer) -> _Biases:
        return _Biases(self, tokenizer)


def _duration_positions(value: str) -> int:
    beats, steps, res = (int(x) for x in value.split("."))
    return beats * 8 + steps * 8 // res


class _Biases:
    """Precomputed per-token vectors; ``__call__(grammar, bar_offset)`` gives the bias [V]."""

    def __init__(self, steering: Steering, tok: ScoreTokenizer):
        self.s = steering
        V = len(tok)
        self.pitch = tok.pitch_of
        self.is_pitch = self.pitch >= 0
        self.duration_bias = np.zeros(V, np.float32)
        self.position_bias = np.zeros(V, np.float32)
        dens = steering.density
        if dens is not None and dens != 0.5:
            w = (dens - 0.5) * 2 * DENSITY_STRENGTH  # >0 dense, <0 sparse
            for i in tok.ids_of_kind("Duration"):
                beats, pos, res = (int(x) for x in tok.value(int(i)).split("."))
                length = beats + pos / res
                # log2(length in beats): a quarter is 0, an eighth -1, a half 1.
                self.duration_bias[i] = -w * float(np.clip(np.log2(length), -3, 3)) / 2
        sync = steering.syncopation
        if sync is not None:
            w = (sync - 0.5) * 2 * SYNCOPATION_STRENGTH
            for i in tok.ids_of_kind("Position"):
                p = int(tok.value(int(i)))
                self.position_bias[i] = w * (1.0 if p % 8 else -1.0) / 2
        self.chord_cache: dict[tuple[int, bool], np.ndarray] = {}
        self.tok = tok
        self.cadences: dict[int, tuple[Chord, bool]] | None = None  # once the key is known
        self.position_ids = tok.ids_of_kind("Position")
        self.position_value = np.array([int(tok.value(int(i))) for i in self.position_ids])
        self.duration_ids = tok.ids_of_kind("Duration")
        self.duration_len = np.array(
            [_duration_positions(tok.value(int(i))) for i in self.duration_ids]
        )

    def _cadence_plan(self, grammar) -> dict[int, tuple[Chord, bool]]:
        if self.cadences is None:
            key, mode = self.s.key, self.s.mode
            if key is None or mode is None:
                cond, _ = self.tok.split(grammar.tokens)
                key, mode = key or cond.get("key"), mode or cond.get("mode")
            plan = self.s.cadence_chords(key, mode)
            self.cadences = {
                bar: (parse_chord(numeral, key, mode), final)
                for bar, (numeral, final) in plan.items()
            }
        return self.cadences

    def chord(self, grammar, bar: int) -> tuple[Chord | None, bool]:
        """(chord of ``bar``, whether it is the final bar of the piece)."""
        planned = self._cadence_plan(grammar).get(bar) if self.s.cadence else None
        if planned is not None:
            return planned
        return self.s.chord_at(bar), False

    def _chord_bias(self, chord: Chord, hard: bool) -> np.ndarray:
        key = (hash(chord), hard)
        if key not in self.chord_cache:
            tones = self.is_pitch & np.isin(self.pitch % 12, list(chord.pitch_classes))
            bias = np.zeros(len(self.pitch), np.float32)
            if hard:
                bias[self.is_pitch & ~tones] = -np.inf
            else:
                bias[tones] = CHORD_STRENGTH
            self.chord_cache[key] = bias
        return self.chord_cache[key]

    def __call__(self, grammar, bar_offset: int = 0) -> np.ndarray | None:
        state = grammar.state
        if state not in ("pitch", "event", "duration") or grammar.sealed:
            return None
        bar = bar_offset + max(grammar.bars_in_track - 1, 0)
        is_bass = grammar.track == self.s.bass_track
        alone = self.s.bass_track is None and (grammar.voices or 1) == 1
        closing = self.s.cadence and bar == self.s.total_bars - 1 and (is_bass or alone)
        if closing:  # the last note: held to the end of the piece, not repeated
            return self._closing_bias(grammar, state, bar)
        if state == "duration":
            if not is_bass or self.chord(grammar, bar + 1)[0] is None:
                return self.duration_bias
            # The bass does not tie into a bar with a chord: it must strike its root.
            bias = self.duration_bias.copy()
            left = grammar.bar_len - grammar.position
            bias[self.duration_ids[self.duration_len > left]] = -np.inf
            return bias
        bias = self.position_bias.copy()
        chord, final = self.chord(grammar, bar)
        planned = self.s.chord_at(bar) is not chord  # a chord of the cadence plan
        if chord is not None:
            if final and (is_bass or alone):  # (a single part is its own bass)
                bias += self._final_bias(chord)
            elif planned and not is_bass:  # a gentle pull above the bass
                pull = CHORD_STRENGTH if final else CADENCE_STRENGTH  # (the last chord most)
                bias += self._chord_bias(chord, hard=False) * (pull / CHORD_STRENGTH)
                if final and grammar.poly > 1:
                    bias += self._below_the_bass(grammar, chord)
            else:
                bias += self._chord_bias(chord, hard=is_bass)
            if is_bass:
                bias += self._bass_on_the_beat(grammar, chord)
        if self.s.contour and grammar.track == 0:
            bias += self._contour_bias(bar, grammar._plan().pitch_range)
        return bias

    def _closing_bias(self, grammar, state: str, bar: int) -> np.ndarray:
        """The bass's (or a single part's) last bar: the tonic alone, held to the bar's end
        (`CLOSING_STRENGTH` logits for a note that lasts to the end, against a new onset)."""
        if state == "duration":
            bias = self.duration_bias.copy()
            left = grammar.bar_len - grammar.position
            bias[self.duration_ids[self.duration_len >= left]] += CLOSING_STRENGTH
            return bias
        chord, _ = self.chord(grammar, bar)
        bias = self.position_bias.copy()
        if chord is not None:
            bias += self._final_bias(chord)
        if grammar.bar_sounds:  # a note has started (or is held): no more onsets wanted
            bias[self.position_ids] -= CLOSING_STRENGTH
        return bias

    def _final_bias(self, chord: Chord) -> np.ndarray:
        """The bass's last bar: the tonic only."""
        bias = np.zeros(len(self.pitch), np.float32)
        bias[self.is_pitch & (self.pitch % 12 != chord.root)] = -np.inf
        return bias

    def _below_the_bass(self, grammar, chord: Chord) -> np.ndarray:
        """The last bar of a chord instrument: what it plays as low as the bass's range is
        the tonic, so the last sound has the tonic in the bass."""
        bias = np.zeros(len(self.pitch), np.float32)
        b = self.s.bass_track
        plans = grammar.plans
        if b is None or b >= len(plans) or plans[b].pitch_range is None:
            return bias
        top = plans[b].pitch_range[1]
        bias[self.is_pitch & (self.pitch <= top) & (self.pitch % 12 != chord.root)] = -np.inf
        return bias

    def _bass_on_the_beat(self, grammar, chord: Chord) -> np.ndarray:
        """The bass's first note of a chord's bar: on the first beat, the chord's root."""
        bias = np.zeros(len(self.pitch), np.float32)
        if grammar.bar_sounds and grammar.position != 0:
            return bias
        if grammar.position < 0:  # the bar's first event: a note at its start
            bias[self.position_ids[self.position_value != 0]] = -np.inf
        elif grammar.state == "pitch" and not any(
            n[0] == grammar.bar_start for n in grammar._active
        ):
            bias[self.is_pitch & (self.pitch % 12 != chord.root)] = -np.inf
        return bias

    def _contour_bias(self, bar: int, pitch_range: tuple[int, int] | None) -> np.ndarray:
        lo, hi = pitch_range or (60, 84)
        t = min(max(bar / max(self.s.total_bars - 1, 1), 0.0), 1.0)
        shape = {"rising": t, "falling": 1 - t, "arch": 1 - abs(2 * t - 1)}[self.s.contour]
        target = lo + 3 + (hi - lo - 6) * shape
        bias = np.zeros(len(self.pitch), np.float32)
        p = self.pitch[self.is_pitch].astype(np.float32)
        bias[self.is_pitch] = -CONTOUR_STRENGTH * np.abs(p - target) / 12
        return bias
