"""Grammar-aware masking: which tokens may come next, so every sampled sequence decodes.

The grammar is a small state machine over the sequence layout of ``engine.symbolic.tokenizer``::

    BOS cond*6 (Track_Start Program Register (Bar TimeSig (Position (Pitch Duration)+)*)+
    Track_End){voices} EOS

with these extra rules, all checked by ``tests/symbolic/test_grammar.py`` on real corpus windows:

- conditions come in fixed order, each from its own category (or forced to a given value);
- positions strictly increase inside a bar and stay inside the bar of the current meter
  (a pitch may sound twice at one position with different durations: piano music does);
- every track after the first has exactly as many bars as the first, with the same time
  signature bar by bar; the number of tracks equals the ``Voices`` condition;
- a plan (``TrackPlan``) can force whole parts of tracks: a program, a register, bars to
  copy before and after the freely generated ones, and how many bars to generate;
- with ``max_tokens`` (the model's window), a note may start only while the tokens that
  must still follow (the rest of the planned bars and tracks, each at least ``Bar TimeSig``,
  and ``EOS``) fit after it: a planned sequence always ends inside the window. The room is
  also paced: one generated bar of one track may take at most ``PACE`` times its fair share
  of the room left when it starts (at least one note), so that a bar the model
  crowds with notes cannot starve the bars and tracks after it;
- with ``texture=True`` (what generation uses), every generated note is playable by its
  track's instrument (`engine.symbolic.texture.limits`): a one-note instrument never sounds two
  notes at once (a new onset waits for the note before to end), a chord instrument sounds
  at most its limit of notes within its span, no pitch sounds twice at once in one track
  (no duplicate notes), and no generated bar is silent (a bar starts a note or hears one
  held from the bar before) unless the plan allows rests. Copied bars are left as given.

``allowed()`` returns a boolean mask over the vocabulary; ``feed(token)`` advances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.symbolic.texture import MAX_POLYPHONY, limits
from engine.symbolic.tokenizer import (
    CONDITION_ORDER,
    CONDITION_PREFIX,
    POSITIONS_PER_BEAT,
    ScoreTokenizer,
)

PACE = 2.0  # a generated bar may take this many times its fair share of the room left
PACE_MIN = 3  # tokens a generated bar may always take (room permitting): one note


def _positions(duration: str) -> int:
    """A Duration token's value ("beats.steps.resolution") in bar positions."""
    beats, steps, res = (int(x) for x in duration.split("."))
    return beats * POSITIONS_PER_BEAT + steps * POSITIONS_PER_BEAT // res


class GrammarError(ValueError):
    """A token sequence that breaks the grammar (a bug, or a bad prompt)."""


@dataclass
class TrackPlan:
    """What is fixed about one track before generation.

    ``prefix`` / ``suffix`` are bars (lists of token ids, each starting with Bar) copied
    verbatim before / after ``free_bars`` generated bars.  ``free_bars=None`` lets the model
    decide how many bars (first track only; later tracks follow the first).
    """

    program: int | None = None
    register: int | None = None
    prefix: list[list[int]] = field(default_factory=list)
    free_bars: int | None = None
    suffix: list[list[int]] = field(default_factory=list)
    pitch_range: tuple[int, int] | None = None  # inclusive MIDI range for generated notes
    polyphony: int | None = None  # at most this many notes at once (the instrument's limit)
    double_stops: bool = False  # a solo string part may sound two notes at once
    rests: bool = False  # generated bars may be silent


class ScoreGrammar:
    """Incremental validity mask for one sequence."""

    def __init__(
        self,
        tokenizer: ScoreTokenizer,
        *,
        conditions: dict[str, str] | None = None,
        plans: Sequence[TrackPlan] | None = None,
        meter: str | None = None,
        max_bars: int = 512,
        strict_meter: bool = True,
        max_tokens: int | None = None,
        texture: bool = False,
    ):
        self.tok = tok = tokenizer
        self.V = len(tok)
        self.forced_conditions = {
            c: tok.condition_id(c, v) for c, v in (conditions or {}).items() if v is not None
        }
        self.plans = list(plans or [])
        # A requested meter holds for every bar (corpus pieces may change meter).
        meter = meter or (conditions or {}).get("meter")
        self.meter_id = tok.timesig_id(meter) if meter else None
        # strict_meter: the first generated bar takes the Meter condition (given or sampled)
        # and later bars keep the previous bar's meter.  Off only to check corpus data,
        # where meters change.
        self.strict_meter = strict_meter
        self.max_bars = max_bars
        # The window: notes are masked once only the tokens that must follow still fit.
        self.max_tokens = max_tokens
        self.squeezed = False  # the window, not the model, ended some bar's notes
        self.bar_cap: float | None = None  # token count at which this bar's notes must end
        # Texture (``texture=True``): what each track sounds, in positions from its start.
        self.texture = texture
        self.notes: list[list[tuple[int, int, int]]] = []  # per track: (start, end, pitch)
        self.polys: list[int] = []  # per track: notes it may sound at once
        self._active: list[tuple[int, int, int]] = []  # this track's notes still sounding
        self.bar_start = 0  # position of the current bar's start in the track
        self.poly, self.span = MAX_POLYPHONY, 127
        self.bar_sounds = False  # the current bar has a note (started or held into it)
        self._pitch = -1
        self._fixed = [sum(len(bar) for bar in p.prefix + p.suffix) for p in self.plans]
        k = tok.ids_of_kind
        self.cond_ids = {c: k(CONDITION_PREFIX[c]) for c in CONDITION_ORDER}
        self.program_ids = k("Program")
        self.register_ids = k("Register")
        self.timesig_ids = k("TimeSig")
        self.position_ids = k("Position")
        self.pitch_ids = k("Pitch")
        self.duration_ids = k("Duration")
        self.position_value = {int(i): int(tok.value(i)) for i in self.position_ids}
        self.pitch_value = {int(i): int(tok.value(i)) for i in self.pitch_ids}
        self.voices_value = {int(i): int(tok.value(i)) for i in self.cond_ids["voices"]}
        self.program_value = {int(i): int(tok.value(i)) for i in self.program_ids}
        self.duration_value = {int(i): _positions(tok.value(i)) for i in self.duration_ids}
        by_pitch = sorted(self.pitch_value.items(), key=lambda kv: kv[1])
        self._pitch_ids_arr = np.array([i for i, _ in by_pitch])
        self._pitch_arr = np.array([v for _, v in by_pitch])
        self._pos_ids_arr = np.array([int(i) for i in self.position_ids])
        self._pos_arr = np.array([self.position_value[int(i)] for i in self.position_ids])
        # state
        self.tokens: list[int] = []
        self.state = "bos"
        self.cond_index = 0
        self.voices: int | None = None
        self.track = -1
        self.bar_meters: list[int] = []  # TimeSig id of each bar of the first track
        self.bars_in_track = 0
        self.bar_len = 0
        self.position = -1
        self.forced: list[int] = []  # queued tokens that must come next
        self.sealed = False  # the current bar was copied from the plan: no notes may be added
        self.done = False

    # ---- plan helpers -----------------------------------------------------------------------
    def _plan(self) -> TrackPlan:
        return self.plans[self.track] if 0 <= self.track < len(self.plans) else TrackPlan()

    def _target_bars(self) -> int | None:
        """Total bars this track must have, or None if the model decides (first track)."""
        if self.track > 0 and self.bar_meters:
            return len(self.bar_meters)
        p = self._plan()
        if p.free_bars is None:
            return None
        return len(p.prefix) + p.free_bars + len(p.suffix)

    def _free_end(self) -> int | None:
        """Bar count after which the plan's suffix starts (None: no fixed end)."""
        p = self._plan()
        target = self._target_bars()
        if target is None:
            return None
        return target - len(p.suffix)

    # ---- the mask ---------------------------------------------------------------------------
    def _mask(self, ids) -> np.ndarray:
        m = np.zeros(self.V, dtype=bool)
        m[ids] = True
        return m

    def allowed(self) -> np.ndarray:
        """Boolean mask [V] of the tokens that may come next."""
        tok = self.tok
        if self.done:
            raise GrammarError("the sequence is complete")
        if self.forced:
            return self._mask([self.forced[0]])
        s = self.state
        if s == "bos":
            return self._mask([tok.bos_id])
        if s == "cond":
            cat = CONDITION_ORDER[self.cond_index]
            if cat in self.forced_conditions:
                return self._mask([self.forced_conditions[cat]])
            ids = self.cond_ids[cat]
            if cat == "voices" and self.plans:
                ids = [i for i in ids if self.voices_value[int(i)] >= len(self.plans)]
            return self._mask(ids)
        if s == "track_start":
            if self.voices is not None and self.track + 1 >= self.voices:
                return self._mask([tok.eos_id])
            return self._mask([tok.track_start_id])
        if s == "program":
            p = self._plan().program
            return self._mask([tok.program_id(p)] if p is not None else self.program_ids)
        if s == "register":
            r = self._plan().register
            return self._mask([tok.register_id(r)] if r is not None else self.register_ids)
        if s == "first_bar":
            return self._mask([tok.bar_id])
        if s == "timesig":
            if self.track > 0 and self.bars_in_track <= len(self.bar_meters):
                return self._mask([self.bar_meters[self.bars_in_track - 1]])
            if self.meter_id is not None and not (self.strict_meter and self.bar_meters):
                return self._mask([self.meter_id])
            if self.strict_meter and self.bar_meters:
                return self._mask([self.bar_meters[-1]])
            return self._mask(self.timesig_ids)
        if s == "pitch":
            ids = list(self.pitch_ids)
            pr = self._plan().pitch_range
            if pr is not None:
                inside = [i for i in ids if pr[0] <= self.pitch_value[int(i)] <= pr[1]]
                ids = inside or ids
            m = self._mask(ids)
            if self.texture and not self.sealed:
                playable = m & self._playable_pitches()
                if playable.any():
                    m = playable
            return m
        if s == "duration":
            return self._mask(self.duration_ids)
        if s == "event":  # after TimeSig or Duration: more notes, next bar, or end of track
            if self.sealed:
                return self._mask(self._boundary_tokens())
            m = np.zeros(self.V, dtype=bool)
            window, slots = self._room()
            if self.bar_cap is None:  # the first event of a generated bar: pace the room
                share = window / max(1, slots)
                self.bar_cap = len(self.tokens) + max(PACE_MIN, PACE * share)
            room = min(window, self.bar_cap - len(self.tokens))
            now = self.bar_start + self.position
            if self.position >= 0 and room >= 2 and self._free_voices(now) > 0:
                m |= self.allowed_pitch_mask()  # another note at the same position
            if room >= 3:
                later = (self._pos_arr > self.position) & (self._pos_arr < self.bar_len)
                if self.texture and self._active:
                    later &= self._onset_ok(self._pos_arr)
                m[self._pos_ids_arr[later]] = True
            if window < 3:
                self.squeezed = True
            silent = self.texture and not self.bar_sounds and not self._plan().rests
            if not (silent and room >= 3 and m.any()):  # a generated bar may not stay silent
                m[self._boundary_tokens()] = True
            return m
        raise GrammarError(f"unknown grammar state {s!r}")

    # ---- texture ----------------------------------------------------------------------------
    def _sounding(self, at: int) -> list[tuple[int, int, int]]:
        return [n for n in self._active if n[0] <= at < n[1]]

    def _free_voices(self, at: int) -> int:
        """How many more notes the track may start at position ``at`` (of the track)."""
        if not self.texture:
            return MAX_POLYPHONY
        return self.poly - len(self._sounding(at))

    def _onset_ok(self, positions: np.ndarray) -> np.ndarray:
        """Which bar positions a new note may start at (fewer than ``poly`` notes sound)."""
        at = self.bar_start + positions
        count = np.zeros(len(positions), dtype=np.int32)
        for start, end, _ in self._active:
            count += (start <= at) & (at < end)
        return count < self.poly

    def _playable_pitches(self) -> np.ndarray:
        """Pitch tokens a new note at the current position may take: not sounding already
        in this track, and within the instrument's span of the notes that do sound."""
        m = np.zeros(self.V, dtype=bool)
        sounding = [n[2] for n in self._sounding(self.bar_start + self.position)]
        ok = ~np.isin(self._pitch_arr, sounding)
        if sounding and self.poly > 1:
            ok &= (self._pitch_arr >= max(sounding) - self.span) & (
                self._pitch_arr <= min(sounding) + self.span
            )
        m[self._pitch_ids_arr[ok]] = True
        return m

    def allowed_pitch_mask(self) -> np.ndarray:
        saved = self.state
        self.state = "pitch"
        try:
            return self.allowed()
        finally:
            self.state = saved

    def _room(self) -> tuple[float, int]:
        """(tokens free for notes now, generated bars left including this one): the window
        less what is written and what must follow (infinite without ``max_tokens``, or while
        the first track decides its length)."""
        if self.max_tokens is None:
            return float("inf"), 1
        free_end, target = self._free_end(), self._target_bars()
        if free_end is None or target is None:
            return float("inf"), 1
        n, plan = self.bars_in_track, self._plan()
        # This track: Bar TimeSig for each generated bar still to come, its suffix, Track_End.
        need = 2 * max(0, free_end - n) + 1
        slots = max(1, free_end - n + 1)
        if n <= free_end:
            need += sum(len(bar) for bar in plan.suffix)
        bars = len(self.bar_meters) if self.track > 0 else target
        voices = self.voices if self.voices is not None else len(self.plans)
        for j in range(self.track + 1, max(voices, len(self.plans))):
            p = self.plans[j] if j < len(self.plans) else TrackPlan()
            fixed = self._fixed[j] if j < len(self.plans) else 0
            free = max(0, bars - len(p.prefix) - len(p.suffix))
            need += 3 + fixed + 2 * free + 1  # Track_Start Program Register ... Track_End
            slots += free
        need += 1  # EOS
        return self.max_tokens - len(self.tokens) - need, slots

    def _boundary_tokens(self) -> list[int]:
        """Tokens that may close the current bar: next Bar, the plan's suffix, Track_End."""
        tok = self.tok
        free_end = self._free_end()
        target = self._target_bars()
        n = self.bars_in_track
        if free_end is not None and n == free_end:
            suffix = self._plan().suffix
            return [suffix[0][0]] if suffix else [tok.track_end_id]
        out = []
        if target is None:
            if n < self.max_bars:
                out.append(tok.bar_id)
            out.append(tok.track_end_id)
        elif n < target:
            out.append(tok.bar_id)
        else:
            out.append(tok.track_end_id)
        return out

    # ---- advancing --------------------------------------------------------------------------
    def feed(self, token: int) -> None:
        """Advance by one token; raise GrammarError if it was not allowed."""
        token = int(token)
        if not self.allowed()[token]:
            raise GrammarError(
                f"token {self.tok.tokens[token]!r} not allowed here (state {self.state})"
            )
        self.tokens.append(token)
        was_forced = bool(self.forced)
        if was_forced:
            self.forced.pop(0)
        self._advance(token)
        if was_forced and not self.forced:
            self.sealed = True

    def _advance(self, token: int) -> None:
        tok = self.tok
        kind = tok.kind(token)
        s = self.state
        if s == "bos":
            self.state = "cond"
        elif s == "cond":
            if kind == "Voices":
                self.voices = self.voices_value[token]
            elif kind == "Meter" and self.strict_meter and self.meter_id is None:
                self.meter_id = tok.timesig_id(tok.value(token))
            self.cond_index += 1
            if self.cond_index == len(CONDITION_ORDER):
                self.state = "track_start"
        elif s == "track_start":
            if token == tok.eos_id:
                self.done = True
            else:
                self.track += 1
                self.bars_in_track = 0
                self.notes.append([])
                self._active = []
                self.bar_start = self.bar_len = 0
                self.state = "program"
        elif s == "program":
            plan = self._plan()
            self.poly, self.span = limits(
                self.program_value[token], plan.polyphony, plan.double_stops
            )
            self.polys.append(self.poly)
            self.state = "register"
        elif s == "register":
            prefix = self._plan().prefix
            if prefix:
                self.forced = [t for bar in prefix for t in bar]
            self.state = "first_bar"
        elif kind == "Bar":
            self._start_bar()
        elif s == "timesig":
            self.bar_len = tok.bar_positions(token)
            if self.track == 0 and len(self.bar_meters) < self.bars_in_track:
                self.bar_meters.append(token)
            self.state = "event"
        elif kind == "Position":
            self.position = self.position_value[token]
            self.state = "pitch"
        elif kind == "Pitch":
            self._pitch = self.pitch_value[token]
            self.state = "duration"
        elif kind == "Duration":
            start = self.bar_start + self.position
            note = (start, start + self.duration_value[token], self._pitch)
            self.notes[self.track].append(note)
            self._active.append(note)
            self.bar_sounds = True
            self.state = "event"
        elif token == tok.track_end_id:
            self.state = "track_start"
        else:
            raise GrammarError(f"unexpected token {tok.tokens[token]!r}")

    def _start_bar(self) -> None:
        self.sealed = False
        self.bar_cap = None
        if self.track >= 0:
            self.bar_start += self.bar_len
            self._active = [n for n in self._active if n[1] > self.bar_start]
            self.bar_sounds = bool(self._active)
        self.bars_in_track += 1
        self.position = -1
        self.state = "timesig"
        free_end = self._free_end()
        suffix = self._plan().suffix
        if suffix and free_end is not None and self.bars_in_track == free_end + 1:
            # The model closed the generated bars with the suffix's first Bar: copy the rest.
            self.forced = [t for t in suffix[0][1:]] + [t for bar in suffix[1:] for t in bar]

    def feed_all(self, tokens: Sequence[int]) -> None:
        for t in tokens:
            self.feed(t)
