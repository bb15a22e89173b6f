"""The controls of ``disco-musica generate``: a scrollable form, one row a control, each
with a one-line message under it.

Every control checks its value as it is typed, with the engine's own limits (`engine.names`)
and, for words (instruments, form, progression, a style or key not in the lists), with
`engine.pipelines.compose.plan` itself in a thread worker. Empty means "from the prompt, else
the default". Controls that a MusicGen model cannot follow are disabled, with a note saying
why (MusicGen reads the text; style, mood, instruments, key, mode and tempo become its words).
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Select, SelectionList, Static
from textual.widgets.selection_list import Selection

from engine import names
from engine.errors import UserError
from engine.hub import CATALOG
from engine.pipelines.compose import ALL_FORMATS
from engine.seeds import check_seed
from engine.symbolic.model_versions import RELEASES
from tui.messages import ControlsChanged

FROM_PROMPT = "from the prompt"
UNITS = (("bars", "bars"), ("seconds", "seconds"))
# Controls whose words the engine checks (plan("", name=value)), off the UI thread.
WORD_FIELDS = ("style", "mood", "key", "mode", "meter", "dynamics", "instruments")
WORD_FIELDS += ("structure", "progression")
SELECT_FIELDS = ("style", "mood", "key", "mode", "meter", "dynamics")
# What MusicGen cannot follow (engine.cli.generate refuses these with a MusicGen model).
SCORE_ONLY = ("meter", "structure", "progression", "dynamics", "density", "unit")
MUSICGEN_NOTE = "MusicGen reads only text: use the prompt or a score model"


def score_models() -> list[str]:
    """The shipped score models: the current one and the kept versions of earlier weights."""
    kept = [r.kept_as for r in RELEASES if r.kept_as]
    return list(dict.fromkeys([names.DEFAULT_MODEL, *kept]))


def _number(text: str, whole: bool) -> float | int:
    value = float(text) if not whole else int(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


STARTUP_DELAY_S = 0.5


class GenerateControls(VerticalScroll):
    """Every control of ``generate``. `options` are `plan`'s keyword options; `errors` the
    problems of now; `set_values` fills the controls from a record's request. Posts
    `ControlsChanged` whenever a change leaves every control valid."""

    can_focus = False  # Tab goes from control to control; the focused one scrolls into view

    DEFAULT_CSS = """
    GenerateControls {
        height: 1fr;
        padding: 0 1;
    }
    GenerateControls .row { height: auto; }
    GenerateControls .row > Label {
        width: 12;
        padding: 1 1 0 0;
        text-style: bold;
    }
    GenerateControls .row > Input, GenerateControls .row > Select { width: 1fr; }
    GenerateControls .row > #c-unit { width: 16; }
    GenerateControls .row > #c-folder { width: 1fr; }
    GenerateControls .row > SelectionList { width: 1fr; height: auto; max-height: 11; }
    GenerateControls .msg {
        height: auto;
        padding-left: 12;
        color: $error;
        display: none;
    }
    GenerateControls .msg.shown { display: block; }
    GenerateControls .msg.note { color: $text-muted; }
    GenerateControls #c-model-note { padding-left: 0; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._problems: dict[str, str] = {}  # control -> its one-line problem
        self._checking: dict[str, int] = {}  # control -> serial of its engine check
        self._choices: dict[str, list[tuple[str, str]]] = {
            "style": [(s, s) for s in names.STYLES],
            "key": [(t, t) for t in names.TONICS],
            "mode": [(m, m) for m in names.MODES],
            "dynamics": [(d, d) for d in names.DYNAMICS],
            "meter": [],  # the tokenizer's meters, loaded in a worker (its import is slow)
            "mood": [],
        }
        self._musicgen = False
        self._score_formats: list[str] = list(names.DEFAULT_FORMATS)
        self._last_posted: dict | None = None

    # -- layout --
    def compose(self):
        models = [(m, m) for m in score_models()] + [(m, m) for m in CATALOG]
        yield from self._row(
            "model",
            "Model",
            Select(models, prompt=f"{names.DEFAULT_MODEL} (default)", id="c-model"),
        )
        yield from self._row(
            "folder", "or folder", Input(placeholder="a model folder (optional)", id="c-folder")
        )
        yield Static("", id="c-model-note", classes="msg note")
        yield from self._row(
            "length",
            "Length",
            Input(placeholder=FROM_PROMPT, id="c-length"),
            Select(UNITS, allow_blank=False, value="bars", id="c-unit"),
        )
        tempo = f"BPM, {names.num(names.MIN_TEMPO_BPM)}..{names.num(names.MAX_TEMPO_BPM)}"
        yield from self._row("tempo", "Tempo", Input(placeholder=tempo, id="c-tempo"))
        for name, label in (("key", "Key"), ("mode", "Mode"), ("meter", "Meter")):
            yield from self._row(name, label, self._select(name))
        yield from self._row(
            "instruments",
            "Instruments",
            Input(placeholder="top to bottom: violin, viola, cello", id="c-instruments"),
        )
        for name, label in (("style", "Style"), ("mood", "Mood")):
            yield from self._row(name, label, self._select(name))
        yield from self._row(
            "structure", "Form", Input(placeholder="AABA, verse chorus, A:8 B:4", id="c-structure")
        )
        yield from self._row(
            "progression",
            "Chords",
            Input(placeholder="one a bar: I-vi-IV-V, Am F C G", id="c-progression"),
        )
        yield from self._row("dynamics", "Dynamics", self._select("dynamics"))
        creativity = f"0..1, default {names.num(names.DEFAULT_CREATIVITY)}"
        yield from self._row(
            "creativity", "Creativity", Input(placeholder=creativity, id="c-creativity")
        )
        yield from self._row(
            "density", "Density", Input(placeholder="0 sparse .. 1 busy", id="c-density")
        )
        yield from self._row(
            "variations",
            "Variations",
            Input(
                placeholder=f"1..{names.MAX_VARIATIONS}, default {names.DEFAULT_VARIATIONS}",
                id="c-variations",
            ),
        )
        yield from self._row("seed", "Seed", Input(placeholder="random", id="c-seed"))
        guidance = f"MusicGen: 0..{names.num(names.MAX_GUIDANCE)}"
        yield from self._row(
            "guidance",
            "Guidance",
            Input(
                placeholder=f"{guidance}, default {names.num(names.DEFAULT_GUIDANCE)}",
                id="c-guidance",
                disabled=True,
            ),
        )
        formats = [Selection(f, f, f in names.DEFAULT_FORMATS, id=f"fmt-{f}") for f in ALL_FORMATS]
        yield from self._row("formats", "Files", SelectionList(*formats, id="c-formats"))

    def _row(self, name: str, label: str, *controls):
        with Horizontal(classes="row", id=f"row-{name}"):
            yield Label(label)
            yield from controls
        yield Static("", id=f"c-{name}-msg", classes="msg")

    def _select(self, name: str) -> Select:
        return Select(self._choices[name], prompt=FROM_PROMPT, id=f"c-{name}")

    def on_mount(self) -> None:
        # after the first frames: the tokenizer's import (miditok) is heavy, and a thread
        # that imports it at once slows the studio's start
        self.set_timer(STARTUP_DELAY_S, self._load_choices)
        self._apply_model()

    @work(thread=True, group="controls-choices", exit_on_error=False)
    def _load_choices(self) -> None:
        from engine.pipelines.prompt import MOOD_DEFAULTS
        from engine.symbolic.tokenizer import METERS

        choices = {"meter": [(m, m) for m in METERS], "mood": [(m, m) for m in MOOD_DEFAULTS]}
        self.app.call_from_thread(self._choices_loaded, choices)

    def _choices_loaded(self, choices: dict) -> None:
        for name, options in choices.items():
            self._choices[name] = options
            self._set_select(name, self._select_value(name))

    # -- reading the controls --
    def _text(self, name: str) -> str:
        return self.query_one(f"#c-{name}", Input).value.strip()

    def _select_value(self, name: str) -> str | None:
        value = self.query_one(f"#c-{name}", Select).value
        return None if value is Select.NULL else value

    def model(self) -> str | None:
        """The model folder when one is typed, else the chosen name (None: the default)."""
        return self._text("folder") or self._select_value("model")

    def options(self) -> dict:
        """The keyword options of `engine.pipelines.compose.plan` (and `compose`); None for
        an empty control (the prompt's, else the default) and for one with a problem."""
        bars = seconds = None
        length = self._good("length")
        if length is not None:
            if self._select_value("unit") == "seconds" or self._musicgen:
                seconds = float(length)
            else:
                bars = int(length)
        out = {
            "style": self._good("style"),
            "mood": self._good("mood"),
            "key": self._good("key"),
            "mode": self._good("mode"),
            "meter": self._good("meter"),
            "tempo_bpm": self._good("tempo"),
            "seconds": seconds,
            "bars": bars,
            "instruments": self._good("instruments"),
            "structure": self._good("structure"),
            "progression": self._good("progression"),
            "dynamics": self._good("dynamics"),
            "creativity": self._good("creativity"),
            "density": self._good("density"),
            "seed": self._good("seed"),
        }
        if self._musicgen:
            for name in ("meter", "structure", "progression", "dynamics", "density"):
                out[name] = None
        return out

    def variations(self) -> int:
        """How many pieces (seeds SEED..SEED+N-1); the default when empty or wrong."""
        v = self._good("variations")
        return names.DEFAULT_VARIATIONS if v is None else v

    def guidance(self) -> float | None:
        """MusicGen's classifier-free guidance; None: the default (and for score models)."""
        return None if not self._musicgen else self._good("guidance")

    def formats(self) -> list[str]:
        """The files to write, in the order of `ALL_FORMATS`."""
        chosen = set(self.query_one("#c-formats", SelectionList).selected)
        return [f for f in ALL_FORMATS if f in chosen]

    def errors(self) -> list[str]:
        """The problems of now, one line each (empty: every control is valid)."""
        return [msg for name, msg in self._problems.items() if msg and not self._unused(name)]

    def _unused(self, name: str) -> bool:
        """True for a control the chosen model does not read (its value is not used)."""
        return (self._musicgen and name in SCORE_ONLY) or (
            name == "guidance" and not self._musicgen
        )

    def _good(self, name: str):
        """The value of a control, parsed; None when empty or wrong."""
        if self._problems.get(name):
            return None
        if name in SELECT_FIELDS:
            return self._select_value(name)
        text = self._text(name)
        if not text:
            return None
        if name in ("instruments", "structure", "progression"):
            return text
        try:
            whole = name in ("seed", "variations") or (
                name == "length" and self._select_value("unit") == "bars" and not self._musicgen
            )
            return _number(text, whole)
        except ValueError:
            return None

    # -- setting the controls --
    def set_values(self, **options) -> None:
        """Fill the controls from ``options`` (the keyword options of `plan`, as a record's
        request holds them, and ``model``, ``variations``, ``formats``, ``guidance``);
        absent or None empties a control. Unknown names are a `ValueError` (a bug)."""
        known = {
            "style", "mood", "key", "mode", "meter", "tempo_bpm", "seconds", "bars",
            "instruments", "structure", "progression", "dynamics", "creativity", "density",
            "seed", "model", "variations", "formats", "guidance",
        }  # fmt: skip
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown control(s) {', '.join(sorted(unknown))}")

        def text(v) -> str:
            if v is None:
                return ""
            if isinstance(v, list | tuple):
                return ", ".join(str(x) for x in v)
            return names.num(v) if isinstance(v, float) else str(v)

        model = options.get("model")
        listed = [*score_models(), *CATALOG]
        if model and (model not in listed or Path(str(model)).expanduser().is_dir()):
            self._set_select("model", None)
            self.query_one("#c-folder", Input).value = str(model)
        else:
            self._set_select("model", model)
            self.query_one("#c-folder", Input).value = ""
        self._apply_model()
        if options.get("seconds") is not None and options.get("bars") is None:
            self._set_select("unit", "seconds")
            length = options["seconds"]
        else:
            self._set_select("unit", "bars")
            length = options.get("bars")
        self.query_one("#c-length", Input).value = text(length)
        for name in SELECT_FIELDS:
            self._set_select(name, options.get(name))
        for name, field in (
            ("tempo", "tempo_bpm"),
            ("instruments", "instruments"),
            ("structure", "structure"),
            ("progression", "progression"),
            ("creativity", "creativity"),
            ("density", "density"),
            ("seed", "seed"),
            ("guidance", "guidance"),
        ):
            self.query_one(f"#c-{name}", Input).value = text(options.get(field))
        v = options.get("variations")
        self.query_one("#c-variations", Input).value = (
            "" if v in (None, names.DEFAULT_VARIATIONS) else text(v)
        )
        if "formats" in options:
            wanted = [str(f) for f in options["formats"] or ()]
            fl = self.query_one("#c-formats", SelectionList)
            fl.deselect_all()
            for f in wanted:
                if f in ALL_FORMATS:
                    fl.select(f)
            bad = [f for f in wanted if f not in ALL_FORMATS]
            if bad:
                self._problems["formats"] = (
                    f"unknown output format {bad[0]!r}; choose from {', '.join(ALL_FORMATS)}"
                )
        for name in ("length", "tempo", "creativity", "density", "variations", "seed"):
            self._check(name)
        self._check("guidance")
        for name in WORD_FIELDS:
            self._check(name)
        if "formats" not in options or not self._problems.get("formats"):
            self._check("formats")
        self._check("folder")
        self._changed()

    def _set_select(self, name: str, value) -> None:
        """Choose ``value`` (None: blank); a value not in the list is added to it (a record's
        meter, say), and the engine says whether it is right."""
        select = self.query_one(f"#c-{name}", Select)
        if name in self._choices:
            base = list(self._choices[name])
            if value is not None and all(v != value for _, v in base):
                base.append((f"{value} (as given)", value))
            select.set_options(base)
        if value is None:
            select.clear()
        else:
            select.value = value

    # -- checking --
    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        name = (event.input.id or "")[2:]
        self._check(name)
        if name == "folder":
            self._apply_model()
        if name == "variations":
            self._check("seed")  # the largest seed depends on the variations
        self._changed()

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        name = (event.select.id or "")[2:]
        if name == "model":
            self._apply_model()
        elif name == "unit":
            self._check("length")
        else:
            self._check(name)
        self._changed()

    @on(SelectionList.SelectedChanged)
    def _formats_changed(self, event: SelectionList.SelectedChanged) -> None:
        event.stop()
        if not self._musicgen:
            self._score_formats = self.formats()
        self._check("formats")
        self._changed()

    def _check(self, name: str) -> None:
        """Check one control now (numbers) or in a worker (words); show its message."""
        self._problems.pop(name, None)
        if name in WORD_FIELDS:
            self._checking[name] = self._checking.get(name, 0) + 1
            value = self._select_value(name) if name in SELECT_FIELDS else self._text(name)
            if value and not (
                name in SELECT_FIELDS and any(v == value for _, v in self._choices[name])
            ):
                self._check_words(name, value, self._checking[name])
        else:
            problem = self._problem(name)
            if problem:
                self._problems[name] = problem
        self._show_message(name)

    def _problem(self, name: str) -> str | None:
        """The one-line problem of a number control, the folder or the formats."""
        if name == "formats":
            chosen = self.formats()
            if not chosen:
                return "choose at least one file format"
            if self._musicgen:
                from engine.pipelines.musicgen import check_formats
            else:
                from engine.pipelines.compose import check_formats
            try:
                check_formats(chosen)
            except UserError as e:
                return str(e)
            return None
        text = self._text(name) if name not in ("formats",) else ""
        if not text:
            return None
        if name == "folder":
            if Path(text).expanduser().is_dir():
                return None
            from engine import hub

            try:
                if hub.resolve_trained(text) is not None:  # one of yours: NAME or NAME@step-N
                    return None
            except hub.TrainedModelError as e:
                return str(e)
            return f"no folder {text}"
        whole_bars = self._select_value("unit") == "bars" and not self._musicgen
        ranges = {
            "tempo": (
                names.MIN_TEMPO_BPM,
                names.MAX_TEMPO_BPM,
                False,
                f"tempo must be {names.num(names.MIN_TEMPO_BPM)}.."
                f"{names.num(names.MAX_TEMPO_BPM)} BPM",
            ),
            "creativity": (0.0, 1.0, False, "creativity must be 0..1"),
            "density": (0.0, 1.0, False, "density must be 0..1 (0 sparse, 1 busy)"),
            "guidance": (
                0.0,
                names.MAX_GUIDANCE,
                False,
                f"guidance must be 0..{names.num(names.MAX_GUIDANCE)}",
            ),
            "variations": (
                1,
                names.MAX_VARIATIONS,
                True,
                f"variations must be 1..{names.MAX_VARIATIONS} (a whole number)",
            ),
        }
        if name == "length":
            if whole_bars:
                hi = names.COMPOSE_MAX_BARS
                ranges["length"] = (1, hi, True, f"bars must be 1..{hi} (a whole number)")
            else:
                hi = names.MUSICGEN_MAX_SECONDS if self._musicgen else names.COMPOSE_MAX_SECONDS
                ranges["length"] = (
                    0.0,
                    hi,
                    False,
                    f"seconds must be more than 0 and at most {names.num(hi)}",
                )
        if name == "seed":
            try:
                seed = _number(text, whole=True)
            except ValueError:
                seed = text
            try:
                check_seed(seed, UserError, count=self.variations())
            except UserError as e:
                return str(e)
            return None
        lo, hi, whole, message = ranges[name]
        try:
            value = _number(text, whole)
        except ValueError:
            return message
        if not lo <= value <= hi or (name == "length" and not whole_bars and value <= 0):
            return message
        return None

    @work(thread=True, group="controls-check", exit_on_error=False)
    def _check_words(self, name: str, value: str, serial: int) -> None:
        from engine.pipelines.compose import plan

        try:
            plan("", **{name: value})
            problem = None
        except UserError as e:
            problem = (str(e).splitlines() or ["?"])[0]
        self.app.call_from_thread(self._words_checked, name, serial, problem)

    def _words_checked(self, name: str, serial: int, problem: str | None) -> None:
        if self._checking.get(name) != serial:
            return  # the control has changed since
        self._problems.pop(name, None)
        if problem:
            self._problems[name] = problem
        self._show_message(name)
        self._changed()

    @property
    def checking(self) -> bool:
        """True while the engine checks some words."""
        return any(
            w.group in ("controls-check", "controls-choices") and not w.is_finished
            for w in self.workers
        )

    def _show_message(self, name: str) -> None:
        try:
            msg = self.query_one(f"#c-{name}-msg", Static)
        except Exception:  # the unit, say: its problems are the length's
            return
        problem = None if self._unused(name) else self._problems.get(name)
        disabled = self._musicgen and name in SCORE_ONLY
        if name == "guidance" and not self._musicgen:
            disabled, note = True, "for MusicGen models only"
        else:
            note = MUSICGEN_NOTE
        text = problem or (note if disabled else "")
        msg.update(text)
        msg.set_class(bool(text), "shown")
        msg.set_class(not problem and disabled, "note")

    def _changed(self) -> None:
        if self.errors():
            return
        options = self.options()
        key = {**options, "variations": self.variations(), "formats": self.formats()}
        key["model"], key["guidance"] = self.model(), self.guidance()
        if key != self._last_posted:
            self._last_posted = key
            self.post_message(ControlsChanged(options))

    # -- the model --
    def _apply_model(self) -> None:
        """Disable what the model cannot follow (MusicGen: only text and a few numbers)."""
        from engine.pipelines.musicgen import is_musicgen

        self._check("folder")
        model = self.model()
        musicgen = bool(model) and not self._problems.get("folder") and is_musicgen(model)
        was, self._musicgen = self._musicgen, musicgen
        for name in SCORE_ONLY:
            self.query_one(f"#c-{name}").disabled = musicgen
        self.query_one("#c-guidance", Input).disabled = not musicgen
        fl = self.query_one("#c-formats", SelectionList)
        if musicgen != was:
            if musicgen:
                self._score_formats = self.formats()
                fl.deselect_all()
                keep = [f for f in self._score_formats if f in names.AUDIO_FORMATS] or ["wav"]
                for f in keep:
                    fl.select(f)
            else:
                fl.deselect_all()
                for f in self._score_formats:
                    fl.select(f)
        for f in ALL_FORMATS:
            if musicgen and f not in names.AUDIO_FORMATS:
                fl.disable_option(f"fmt-{f}")
            else:
                fl.enable_option(f"fmt-{f}")
        note = self.query_one("#c-model-note", Static)
        note.update(
            f"{model}: text to audio; meter, form, chords, dynamics and density are for "
            "the score models; files: audio only"
            if musicgen
            else ""
        )
        note.set_class(musicgen, "shown")
        for name in (*SCORE_ONLY, "guidance", "length", "formats"):
            if name in ("unit",):
                continue
            if name in ("length", "formats", "guidance"):
                self._check(name)
            else:
                self._show_message(name)
        self._show_message("meter")
