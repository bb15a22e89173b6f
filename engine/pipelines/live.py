"""Writing a piece bar by bar, with changes that take effect from a bar on.

`compose` writes each section in one call of the score model. `BarWriter` writes the same
plan one bar at a time (a repeated section is still copied whole), so that a face can show
the piece as it grows and change it while it is written or played: the terminal studio's
Make screen drives one directly. A change names the bar it applies from and any of

- ``tempo_bpm``: a tempo change at that bar line;
- ``dynamics``: the dynamic level (pp .. ff) of the notes from that bar on;
- ``creativity`` (0..1) and ``density`` (0..1): how the bars from that bar on are written;
- ``part`` and ``instrument``: part ``part`` (1 = the top part) sounds as ``instrument`` from
  that bar on (a MIDI program change; the notes are the part's own).

Tempo, dynamics and instruments change how the written bars sound; creativity and density
change how bars are written, so a change of these at a bar already written rewrites the
piece from that bar (from the start of a repeated section that holds it). The writing is a
function of the plan and the schedule of changes alone: `compose(..., by_bar=True,
changes=[...])` — what `replay` runs from the record — makes the same piece as a session in
which the same changes were made live, at whatever moments.

`LiveControls` is the thread-safe box a face writes new values into while a worker writes;
the worker takes them before each bar (`BarWriter.take`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from engine.pipelines.compose import (
    CHANGE_FIELDS,
    DOWNBEAT_ACCENT,
    HAIRPIN_SPAN,
    MELODY_LIFT,
    PROGRESS_STAGE,
    VELOCITIES,
    WRITING_FIELDS,
    Change,
    ComposeError,
    Composition,
    articulate,
    bar_ticks,
    check_change,
    check_changes,
    label_sections,
    model_name,
    plan,
    program_of,
    quarters_per_bar,
    repeat_section,
    steering_for,
    write_more,
    write_opening,
)
from engine.progress import Progress, ProgressFn
from engine.seeds import derive_seed
from engine.symbolic.model_versions import weights_sha256


class LiveControls:
    """New values a face sets while a worker writes or plays (thread-safe). The worker
    `take`s them before each bar; values set twice before that count once (the last)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: dict = {}

    def set(self, **values) -> None:
        """``tempo_bpm=``, ``dynamics=``, ``creativity=``, ``density=`` or
        ``instrument=(part, name)``."""
        unknown = set(values) - set(CHANGE_FIELDS)
        if unknown:
            raise ComposeError(f"cannot change {', '.join(sorted(unknown))} while playing")
        with self._lock:
            for k, v in values.items():
                if k == "instrument":
                    self._pending.setdefault("instrument", {})[v[0]] = v[1]
                else:
                    self._pending[k] = v

    def take(self) -> dict:
        with self._lock:
            out, self._pending = self._pending, {}
        return out

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._pending)


class BarWriter:
    """A piece written bar by bar (see the module docstring).

    ``step()`` writes the next bar (or a repeated section) and returns how many bars are
    written; ``change(bar, ...)`` adds changes; ``score()`` is the piece so far as it sounds;
    ``composition()`` the finished piece, whose request replays it exactly.
    """

    def __init__(self, prompt: str = "", *, model=None, **options):
        from engine.symbolic import score_api as api

        options = dict(options)
        options.pop("by_bar", None)
        changes = options.pop("changes", None)
        self.prompt = prompt
        self.options = options
        self.plan, self.parsed = plan(prompt, **options)
        self.changes: list[Change] = check_changes(changes, self.plan)
        self.model = model
        self.sm = (
            model if isinstance(model, api.ScoreModel) else api.load(model or api.DEFAULT_MODEL)
        )
        p = self.plan
        self.total = p.bars
        self.written = 0
        self._raw = None  # the score as the model wrote it (no dynamics, tempo or labels)
        self._before: dict[int, object] = {}  # bar -> the raw score before it was written
        self._key_before: dict[int, tuple] = {}
        self._sections = []
        start = 0
        first_use: dict[str, int] = {}
        for i, (label, n) in enumerate(p.sections):
            repeat_of = first_use.get(label) if label else None
            self._sections.append((i, label, start, n, repeat_of))
            if label and label not in first_use:
                first_use[label] = start
            start += n
        ranges = [(q.low, q.high) for q in p.parts]
        centres = [(q.low + q.high) / 2 for q in p.parts]
        bass = min(reversed(range(len(centres))), key=lambda i: centres[i])
        self._bass = bass if len(p.parts) > 1 else None
        self._ranges = ranges
        self._given_key = (p.key, p.mode)

    # -- the schedule --
    def value_at(self, field: str, bar: int, part: int | None = None):
        """The value of ``field`` in force at ``bar`` (1-based)."""
        p = self.plan
        if field == "instrument":
            value = p.parts[part - 1].name
        else:
            value = {
                "tempo_bpm": p.tempo_bpm,
                "dynamics": p.dynamics,
                "creativity": p.creativity,
                "density": p.density,
            }[field]
        for c in self.changes:
            if c.field == field and c.bar <= bar and (part is None or c.part == part):
                value = c.value
        return value

    def change(self, bar: int, **values) -> int:
        """Add changes from ``bar`` (1-based) on: ``tempo_bpm``, ``dynamics``,
        ``creativity``, ``density`` or ``instrument=(part, name)``. Returns the first bar
        that must be written again (``written + 1`` when none)."""
        p = self.plan
        if type(bar) is not int:  # a float or a bool would make a record replay refuses
            raise ComposeError(f"a change needs a whole bar number, not {bar!r}")
        new = []
        for k, v in values.items():
            if k == "instrument":
                items = v.items() if isinstance(v, dict) else [v]
                if not all(isinstance(x, tuple | list) and len(x) == 2 for x in items):
                    raise ComposeError(f"instrument= takes (part, name), not {v!r}")
                for part, name in items:
                    new.append(check_change(bar, "instrument", name, part, p))
            elif k in CHANGE_FIELDS:
                new.append(check_change(bar, k, v, None, p))
            else:
                raise ComposeError(f"cannot change {k}; changes are {', '.join(CHANGE_FIELDS)}")
        if not 1 <= bar <= p.bars:
            raise ComposeError(f"a change at bar {bar}: the piece has bars 1..{p.bars}")
        for c in new:
            # a later change of the same thing from the same bar replaces the earlier one
            self.changes = [
                x
                for x in self.changes
                if not (x.bar == c.bar and x.field == c.field and x.part == c.part)
            ]
            self.changes.append(c)
        self.changes.sort(key=lambda c: c.bar)
        rewrite = [c.bar for c in new if c.field in WRITING_FIELDS and c.bar <= self.written]
        if rewrite:
            self._rewind(min(rewrite) - 1)
        return self.written + 1

    def take(self, controls: LiveControls) -> int | None:
        """Apply what the face set in ``controls`` from the next bar to write (or, for the
        sound only, from ``bar`` if given by the face); returns that bar or None."""
        values = controls.take()
        if not values:
            return None
        bar = min(self.written + 1, self.total)
        self.change(bar, **values)
        return bar

    def _rewind(self, bar0: int) -> None:
        """Back to the state before 0-based bar ``bar0`` was written (the start of its
        repeated section when it lies in one)."""
        for *_, start, n, repeat_of in self._sections:
            if repeat_of is not None and start <= bar0 < start + n:
                bar0 = start
        while bar0 not in self._before and bar0 > 0:
            bar0 -= 1
        if bar0 >= self.written:
            return
        self._raw = self._before[bar0]
        self.plan.key, self.plan.mode = self._key_before[bar0]
        self._before = {b: s for b, s in self._before.items() if b <= bar0}
        self.written = bar0
        if bar0 == 0:
            self._raw = None

    # -- writing --
    @property
    def done(self) -> bool:
        return self.written >= self.total

    def _sampling(self, bar0: int) -> dict:
        c = float(self.value_at("creativity", bar0 + 1))
        # the mapping of `plan` (creativity 0 conservative .. 1 experimental)
        return {
            "temperature": round(0.6 + 0.6 * c, 4),
            "top_p": round(0.85 + 0.14 * c, 4),
            "key_strength": round(2.7 - 2.4 * c, 4),
        }

    def _steer(self, bar0: int):
        p = self.plan
        density = self.value_at("density", bar0 + 1)
        saved = p.density
        p.density = density
        try:
            return steering_for(p, self._bass)
        finally:
            p.density = saved

    def step(self) -> int:
        """Write the next bar (a repeated section: all of it); return the bars written."""
        if self.done:
            return self.written
        p = self.plan
        bar0 = self.written
        i, label, start, n, repeat_of = next(
            s for s in self._sections if s[2] <= bar0 < s[2] + s[3]
        )
        self._before[bar0] = self._raw.copy() if self._raw is not None else None
        self._key_before[bar0] = (p.key, p.mode)
        sampling = self._sampling(bar0)
        steer = self._steer(bar0)
        if repeat_of is not None and bar0 == start and self._raw is not None:
            self._raw = repeat_section(
                self.sm, self._raw, p, (repeat_of, n), i, sampling, None, steer, p.voice_leading
            )
            self._in_range(start * bar_ticks(self._raw, p.meter))
            self.written = start + n
            return self.written
        if self._raw is None:
            self._raw = write_opening(self.sm, p, 1, steer, sampling)
        else:
            seed = derive_seed(p.seed, "bar", bar0)
            self._raw = write_more(self.sm, self._raw, p, 1, seed, steer, sampling)
        self.written = bar0 + 1
        return self.written

    def _in_range(self, tick: int) -> None:
        """The notes from ``tick`` on in their parts' ranges, moved by octaves: the rewritten
        last bar of a repeat (`repeat_section`'s ``regenerate_bars`` knows no ranges) may
        leave them."""
        for t, (low, high) in zip(self._raw.tracks, self._ranges, strict=False):
            for x in t.notes:
                if x.time >= tick and not low <= x.pitch <= high:
                    pitch = x.pitch
                    while pitch > high and pitch - 12 >= low:
                        pitch -= 12
                    while pitch < low and pitch + 12 <= high:
                        pitch += 12
                    x.pitch = min(max(pitch, low), high)

    def run(
        self,
        progress: ProgressFn | None = None,
        *,
        controls: LiveControls | None = None,
        on_bars: Callable[[BarWriter], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Composition | None:
        """Write every bar left; take ``controls`` before each; ``on_bars(self)`` after each;
        stop early (returning None) when ``should_stop()``."""
        while not self.done:
            if should_stop is not None and should_stop():
                return None
            if controls is not None:
                self.take(controls)
            self.step()
            if progress is not None:
                progress(Progress(PROGRESS_STAGE, self.written, self.total))
            if on_bars is not None:
                on_bars(self)
        return self.composition()

    # -- what it sounds like --
    def bar_ticks(self) -> int:
        return bar_ticks(self._raw, self.plan.meter) if self._raw is not None else 0

    def score(self):
        """The piece so far as it sounds: names, dynamics and articulation from the plan and
        the changes, tempo changes at their bars, section markers (a new Score)."""
        from symusic import Score, Tempo

        if self._raw is None:
            return Score(480)
        p = self.plan
        score = self._raw.copy()
        for t, q in zip(score.tracks, p.parts, strict=False):
            t.name = q.name
        bt = bar_ticks(score, p.meter)
        self._dynamics(score, bt)
        articulate(score, p)
        label_sections(score, p)
        tempos = [Tempo(0, qpm=float(p.tempo_bpm))]
        for c in self.changes:
            if c.field == "tempo_bpm":
                tick = (c.bar - 1) * bt
                tempos = [t for t in tempos if t.time != tick] + [Tempo(tick, qpm=float(c.value))]
        score.tempos = sorted(tempos, key=lambda t: t.time)
        return score

    def _dynamics(self, score, bt: int) -> None:
        """`engine.pipelines.compose._shape_dynamics` with the level of each note's bar."""
        p = self.plan
        length = max(p.bars * bt, 1)
        levels = [VELOCITIES[self.value_at("dynamics", b + 1)] for b in range(p.bars)]
        for i, t in enumerate(score.tracks):
            for x in t.notes:
                v = float(levels[min(x.time // bt, p.bars - 1)])
                if p.dynamics_shape:
                    ramp = (min(x.time / length, 1.0) - 0.5) * HAIRPIN_SPAN
                    v += ramp if p.dynamics_shape == "crescendo" else -ramp
                if x.time % bt == 0:
                    v += DOWNBEAT_ACCENT
                if i == 0 and len(score.tracks) > 1:
                    v += MELODY_LIFT
                x.velocity = int(min(max(round(v), 1), 127))

    def program_changes(self) -> list[tuple[int, int, int]]:
        """(track, tick, program) of each instrument change."""
        bt = self.bar_ticks()
        return [
            (c.part - 1, (c.bar - 1) * bt, program_of(c.value))
            for c in self.changes
            if c.field == "instrument"
        ]

    def bar_seconds(self) -> list[float]:
        """The time of each bar line (0 .. bars, so ``bars + 1`` values), with the tempo
        changes."""
        q = quarters_per_bar(self.plan.meter)
        out, t = [0.0], 0.0
        for b in range(self.total):
            t += q * 60.0 / float(self.value_at("tempo_bpm", b + 1))
            out.append(t)
        return out

    def midi_bytes(self) -> bytes:
        from engine.symbolic.midi import midi_bytes, with_program_changes

        return with_program_changes(midi_bytes(self.score()), self.program_changes())

    def composition(self) -> Composition:
        """The piece (all bars written); its request replays it (``by_bar`` and the
        changes)."""

        if not self.done:
            raise RuntimeError("the piece is not finished")
        from pathlib import Path

        request = {
            "prompt": self.prompt,
            **{k: v for k, v in self.options.items() if v is not None},
        }
        request["by_bar"] = True
        if self.changes:
            request["changes"] = _grouped(self.changes)
        name = model_name(self.model, self.sm)
        comp = Composition(
            score=self.score(),
            plan=self.plan,
            request={**request, "model": name},
            parsed=self.parsed,
            model_name=name,
            model_sha256=weights_sha256(Path(self.sm.path)),
        )
        comp.program_changes = self.program_changes()
        return comp


def _grouped(changes: list[Change]) -> list[dict]:
    """The changes as the request records them: one dict per bar (and part)."""
    out: dict[tuple, dict] = {}
    for c in changes:
        key = (c.bar, c.part)
        d = out.setdefault(key, {"bar": c.bar} | ({"part": c.part} if c.part else {}))
        d[c.field] = c.value
    return [out[k] for k in sorted(out, key=lambda k: (k[0], k[1] or 0))]


def compose_by_bar(prompt: str = "", *, model=None, progress: ProgressFn | None = None, **options):
    """`engine.pipelines.compose.compose` with ``by_bar=True``: the plan written a bar at a
    time with the changes of ``changes`` (what `replay` runs for a studio piece)."""
    writer = BarWriter(prompt, model=model, **options)
    return writer.run(progress)
