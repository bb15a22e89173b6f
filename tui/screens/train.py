"""The Train screen: fine-tune the score model on one of your datasets, and watch it learn.

It runs what ``disco-musica train score --data DATASET`` runs (`engine.train.finetune.
finetune_score`), in a worker thread. On the left, the form: the dataset, the base model (a
shipped one, one of yours, or a folder), the method (LoRA or full), the preset, the steps,
learning rate and LoRA rank (empty: the preset's), your model's name, "continue from" one of
your models (a new round of it), and "resume" (an interrupted round of the named model). On
the right, live: the train and validation loss and the learning rate (charts redrawn at most
`tui.widgets.train_chart.REDRAW_HZ` a second, always up to the latest point), a line with
the step, tokens/s, memory and time left, the style distance of the samples to the data at
each validation, the samples as they are made (Enter plays one, ``o`` opens it in the system
player) and the checkpoints (Enter or ``m`` makes one the Make screen's model:
``NAME@step-N``, ``NAME@latest``, ``NAME@round-K`` for the round's best).

Ctrl+G starts, ``p`` pauses (the trainer writes a checkpoint and waits), ``r`` resumes and
``x`` stops (a checkpoint, then the round ends: `engine.train.trainer.TrainControl`). A
problem the user can act on (`engine.errors.UserError`, a disk error) is one line on the
screen; so is a bug in the worker (with "please report it"), never a traceback.

Nothing here imports mlx at module level (the studio starts without it): the engine is
imported by worker threads, which post `TrainEvent`s that the screen shows on the app's
thread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from engine.train.monitor import STOP_REASONS, format_duration
from tui.messages import WorkDone, WorkFailed, WorkProgress
from tui.screens import ScreenEntry
from tui.screens._base import StudioScreen
from tui.widgets.train_chart import REDRAW_HZ, TrainChart

TRAIN_KEY = "f6"  # the next function key after Data (F5)
STATES = ("idle", "preparing", "running", "pausing", "paused", "stopping")
# Which buttons work in which state.
ENABLED = {
    "start": {"idle"},
    "pause": {"preparing", "running"},
    "resume": {"pausing", "paused"},
    "stop": {"preparing", "running", "pausing", "paused"},
}
METHOD_LABELS = {"lora": "LoRA (small adapters)", "full": "full (every weight)"}
STYLE_HISTORY = 4  # validations shown on the style line
WORST_MEASURES = 3  # the measures furthest from the data, named on the style line


class TrainCancelled(BaseException):
    """Stop pressed before the first step (raised from the progress callback in the run's
    thread; a BaseException so that no ``except Exception`` of the engine takes it for a bad
    file). `finetune_score` removes what it had made of the round."""


@dataclass
class TrainEvent(Message):
    """What the run's thread says: ``kind`` is a `engine.train.monitor.Callback` event
    ("start", "train", "val", "sample", "checkpoint", "pause", "end") or "plan", "control",
    "warn"; ``info`` its dict."""

    kind: str
    info: dict = field(default_factory=dict)


@dataclass
class EngineReady(Message):
    """The training engine is imported: its presets and methods (or why not: ``error``)."""

    presets: dict
    methods: tuple
    error: str | None = None


@dataclass
class Choices(Message):
    """What the form offers, as (label, value): the datasets (value: the folder), the base
    models (shipped, and your full ones) and your models; ``problem`` if one could not be
    listed."""

    datasets: list
    bases: list
    mine: list
    problem: str | None = None


def read_choices() -> Choices:
    """The form's choices, read from disk (imports the score model's code: call it in a
    worker). A damaged dataset is left out (the Data screen says why)."""
    from engine import hub
    from engine.data.store import Dataset, list_datasets
    from engine.symbolic.score_api import available_models
    from tui.jobs import user_message

    datasets, problem = [], None
    try:
        paths = list_datasets()
    except Exception as e:
        problem, paths = user_message(e), []
        if problem is None:
            raise
    for p in paths:
        try:
            ds = Dataset.open(p)
            datasets.append((f"{ds.name} ({len(ds.items())} items)", str(p)))
        except Exception as e:
            if user_message(e) is None:
                raise
    mine = hub.trained_models()
    bases = [(m, m) for m in available_models()]
    for m in mine:  # your full (or fused) models can be a base; a LoRA one is continued
        try:
            folder = hub.resolve_trained(m)
        except hub.TrainedModelError:
            continue
        if folder is not None and (folder / "model.safetensors").is_file():
            bases.append((f"{m} (yours)", m))
    return Choices(datasets, bases, [(m, m) for m in mine], problem)


@dataclass
class SampleAudio(Message):
    """A sample rendered to audio (float32 [frames, 2]) for the player."""

    path: str
    audio: Any
    sample_rate: int


class ScreenCallback:
    """The trainer's callback (`engine.train.monitor.Callback`'s events): each report is
    posted to the screen as a `TrainEvent`. Runs in the training thread; never blocks."""

    def __init__(self, post: Callable[[Message], object]):
        self.post = post

    def _send(self, kind: str, info: dict) -> None:
        self.post(TrainEvent(kind, dict(info)))

    def on_start(self, info: dict) -> None:
        self._send("start", info)

    def on_train_report(self, info: dict) -> None:
        self._send("train", info)

    def on_val_report(self, info: dict) -> None:
        self._send("val", info)

    def on_sample_report(self, info: dict) -> None:
        self._send("sample", info)

    def on_checkpoint(self, info: dict) -> None:
        self._send("checkpoint", info)

    def on_pause(self, info: dict) -> None:
        self._send("pause", info)

    def on_end(self, summary: dict) -> None:
        self._send("end", summary)


def make_control(post: Callable[[Message], object]):
    """A `engine.train.trainer.TrainControl` that also says when the trainer has paused (it
    waits only after writing its checkpoint). Imports the trainer: call it in a worker."""
    from engine.train.trainer import TrainControl

    class ScreenControl(TrainControl):
        def wait(self) -> None:
            post(TrainEvent("pause", {}))
            super().wait()

    return ScreenControl()


@dataclass
class Checkpoint:
    """One pickable checkpoint of a trained model: ``spec`` loads it (``NAME@step-N``)."""

    spec: str
    label: str
    folder: Path


def read_state(folder: Path) -> dict:
    try:
        return json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return {}


def checkpoints_of(name: str) -> list[Checkpoint]:
    """The checkpoints of the last round of trained model ``name`` that load (a folder with
    its config.json): the round's best, the latest, then each kept ``step-N``, newest first."""
    from engine import hub

    folder = hub.trained_models_dir() / name
    rounds = sorted(
        (p for p in (folder / "runs").glob("round-*") if p.name[6:].isdigit()),
        key=lambda p: int(p.name[6:]),
    )
    if not rounds:
        return []
    run, k = rounds[-1], int(rounds[-1].name[6:])
    out = []
    best = run / "best"
    if (best / "config.json").is_file():
        s = read_state(best)
        out.append(Checkpoint(f"{name}@round-{k}", f"best: step {s.get('step')}", best))
    latest = run / "checkpoint"
    if (latest / "config.json").is_file():
        out.append(
            Checkpoint(f"{name}@latest", f"latest: step {read_state(latest).get('step')}", latest)
        )
    kept = sorted(
        (p for p in (run / "checkpoints").glob("step-*") if p.name[5:].isdigit()),
        key=lambda p: int(p.name[5:]),
        reverse=True,
    )
    for p in kept:
        if (p / "config.json").is_file():
            out.append(Checkpoint(f"{name}@step-{int(p.name[5:])}", f"step {int(p.name[5:])}", p))
    return out


def history(metrics: Path, until_step: int) -> dict[str, list]:
    """What a run reported up to ``until_step`` (its ``metrics.jsonl``, as
    `engine.train.monitor.read_metrics` reads it): ``train`` (step, loss, learning rate),
    ``val`` (step, loss) and ``sample`` (the sample reports). Shown when a round resumes."""
    from engine.train.monitor import read_metrics

    out: dict[str, list] = {"train": [], "val": [], "sample": []}
    try:
        events = read_metrics(metrics)
    except OSError:
        return out
    for e in events:
        step = e.get("iteration")
        if not isinstance(step, int) or step > until_step:
            continue
        kind = e.get("kind")
        if kind == "train" and e.get("train_loss") is not None:
            out["train"].append((step, e["train_loss"], e.get("learning_rate")))
        elif kind == "val" and e.get("val_loss") is not None:
            out["val"].append((step, e["val_loss"]))
        elif kind == "sample":
            out["sample"].append(e)
    return out


def stats_text(start: dict, step: int, train: dict | None, val: dict | None) -> Text:
    """The two status lines of a run: step, time left, speed, memory (of the last report);
    the losses."""
    t = Text()
    max_steps = (train or {}).get("max_steps") or start.get("max_steps") or "?"
    t.append(f"step {step}/{max_steps}", style="bold")
    if train:
        t.append(
            f" · {format_duration(train.get('eta_s'))} left · "
            f"{train['tokens_per_second']:.0f} tok/s · {train['peak_memory']:.2f} GB"
        )
    t.append("\n")
    if train:
        t.append(f"train {train['train_loss']:.4f} · lr {train['learning_rate']:.1e}")
    if val:
        t.append(" · " if train else "")
        t.append(f"validation {val['val_loss']:.4f} (best {val['best_val_loss']:.4f})")
    return t


def style_text(reports: list[dict]) -> str:
    """The style distance of the samples to the data at each validation (0: alike), and the
    measures still furthest from it."""
    if not reports:
        return "Style distance to your data: after the first validation."
    shown = reports[-STYLE_HISTORY:]
    history = " → ".join(f"{r['overall']:.3f} (step {r['iteration']})" for r in shown)
    worst = sorted((r for r in reports[-1].get("distances", {}).items()), key=lambda kv: -kv[1])
    far = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in worst[:WORST_MEASURES])
    return f"Style distance to your data (0 = alike): {history}" + (
        f"; furthest: {far}" if far else ""
    )


class TrainScreen(StudioScreen):
    """Fine-tune on your own music: the form, the controls, live charts, samples and
    checkpoints."""

    NAME = "train"
    HELP_WIDGETS = (TrainChart,)
    extra_options: dict = {}
    """More `engine.train.finetune.FinetuneOptions` fields for every run (tests make runs
    tiny with it: samples, tokens_per_batch, eval_every …)."""

    # narrow (80 columns): a thinner form, the buttons two by two; short (24 rows): shorter
    # lists, so that the charts keep their room
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    DEFAULT_CSS = """
    TrainScreen #tr-main { height: 1fr; }
    TrainScreen #tr-left { width: 38; }
    TrainScreen.-narrow #tr-left { width: 30; }
    TrainScreen #tr-form { height: 1fr; padding: 0 1; }
    TrainScreen #tr-form Label { color: $text-muted; }
    TrainScreen #tr-numbers { height: 3; }
    TrainScreen #tr-numbers Input { width: 1fr; }
    TrainScreen #tr-resume { width: 1fr; }
    TrainScreen #tr-buttons { grid-size: 4; grid-rows: 3; height: 3; }
    TrainScreen.-narrow #tr-buttons { grid-size: 2; height: 6; }
    TrainScreen #tr-buttons Button { width: 1fr; min-width: 6; }
    TrainScreen #tr-msg { height: auto; max-height: 3; color: $error; padding: 0 1; }
    TrainScreen #tr-right { width: 1fr; padding-left: 1; }
    TrainScreen #tr-stats { height: 2; }
    TrainScreen #tr-charts { height: 1fr; min-height: 6; }
    TrainScreen #tr-loss { width: 2fr; }
    TrainScreen #tr-lr { width: 1fr; }
    TrainScreen #tr-style { height: auto; max-height: 2; color: $text-muted; }
    TrainScreen.-short #tr-style { max-height: 1; }
    TrainScreen #tr-lists { height: 9; }
    TrainScreen.-short #tr-lists { height: 6; }
    TrainScreen #tr-lists Vertical { width: 1fr; }
    TrainScreen #tr-lists Label { width: 1fr; height: 1; text-overflow: ellipsis; }
    TrainScreen #tr-lists OptionList { height: 1fr; }
    TrainScreen #tr-status { height: auto; max-height: 2; padding: 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+g", "start", "Start training", priority=True),
        Binding("p", "pause", "Pause"),
        Binding("r", "resume", "Resume"),
        Binding("x", "stop", "Stop (keeps a checkpoint)"),
        Binding("space", "play", "Play / pause the sample", show=False),
        Binding("o", "open_sample", "Open the sample in the system player", show=False),
        Binding("m", "use_model", "Use the checkpoint on the Make screen"),
        Binding("escape", "leave_field", "Leave the text field", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="train")
        self.state = "idle"
        self.presets: dict = {}
        self.methods: tuple = ()
        self.engine_ready = False
        self._engine_asked = False
        self.choices: Choices | None = None
        self.control = None  # the run's TrainControl (set by its thread)
        self._pending: list[str] = []  # pause/stop asked before the control existed
        self.model: str | None = None  # the model being trained (or last trained)
        self.round: int | None = None
        self.step = 0  # the trainer's step, as last heard (reports, checkpoints)
        self.start_info: dict = {}
        self.last_train: dict | None = None
        self.last_val: dict | None = None
        self.plan: dict | None = None
        self.style_reports: list[dict] = []
        self.samples: list[str] = []
        self.checkpoints: list[Checkpoint] = []
        self.summary: dict | None = None
        self.result: dict | None = None
        self.status = ""
        self.message = ""
        self._stats_dirty = False
        self.player = None
        self.playing: str | None = None  # the sample loaded in the player

    # -- layout --
    def compose_body(self):
        with Horizontal(id="tr-main"):
            with Vertical(id="tr-left"):
                with VerticalScroll(id="tr-form"):
                    yield Label("Dataset (your MIDI)")
                    yield Select([], prompt="no datasets yet (F5 makes one)", id="tr-data")
                    yield Label("Base model, or a folder")
                    yield Select([], prompt="score-base", id="tr-base")
                    yield Input(placeholder="a model folder (optional)", id="tr-base-folder")
                    yield Label("Continue from (optional)")
                    yield Select([], prompt="none: a new model", id="tr-from")
                    yield Label("Method · preset")
                    yield Select([], prompt="loading…", id="tr-method")
                    yield Select([], prompt="loading…", id="tr-preset")
                    yield Label("Steps · learning rate · rank")
                    with Horizontal(id="tr-numbers"):
                        yield Input(placeholder="steps", id="tr-steps", type="integer")
                        yield Input(placeholder="lr", id="tr-lr-in")
                        yield Input(placeholder="rank", id="tr-rank", type="integer")
                    yield Label("Your model's name")
                    yield Input(placeholder="letters, digits, - _ .", id="tr-name")
                    yield Checkbox("Resume unfinished round", False, id="tr-resume")
                    yield Checkbox("Save memory (slower)", False, id="tr-lowmem")
                with Grid(id="tr-buttons"):
                    yield Button("Start", id="tr-start", variant="primary")
                    yield Button("Pause", id="tr-pause")
                    yield Button("Resume", id="tr-resume-btn")
                    yield Button("Stop", id="tr-stop", variant="error")
                yield Static("", id="tr-msg")
            with Vertical(id="tr-right"):
                yield Static("Nothing trained yet: pick a dataset and press Ctrl+G.", id="tr-stats")
                with Horizontal(id="tr-charts"):
                    yield TrainChart("loss", id="tr-loss")
                    yield TrainChart("learning rate", id="tr-lr")
                yield Static(style_text([]), id="tr-style")
                with Horizontal(id="tr-lists"):
                    with Vertical():
                        yield Label("Samples (Enter plays)")
                        yield OptionList(id="tr-samples")
                    with Vertical():
                        yield Label("Checkpoints (Enter uses)")
                        yield OptionList(id="tr-ckpts")
        yield Static("", id="tr-status")

    def on_mount(self) -> None:
        loss = self.query_one("#tr-loss", TrainChart)
        loss.add_series("train", "train")
        loss.add_series("val", "validation", scatter=True)
        self.query_one("#tr-lr", TrainChart).add_series("lr", "lr")
        self.refresh_lists()
        self._show_buttons()
        self.set_interval(1.0 / REDRAW_HZ, self._flush_stats)
        self.query_one("#tr-data", Select).focus()

    def on_screen_resume(self) -> None:
        if self.is_mounted and self.state == "idle" and self.choices is not None:
            self.refresh_lists()

    def on_unmount(self) -> None:
        if self.control is not None:
            self.control.stop()
        if self.player is not None:
            self.player.close()
        client = self.app.__dict__.pop("_render_client", None)
        if client is not None:
            client.close()

    # -- saying things --
    def _say(self, text: str, announce: bool = True) -> None:
        self.status = text
        self.query_one("#tr-status", Static).update(text)
        if announce:
            self.announce(text)

    def _problem(self, text: str) -> None:
        """One line for a problem: beside the buttons, in the status, and said."""
        self.message = text
        self.query_one("#tr-msg", Static).update(text)
        self._say(text)

    def _clear_problem(self) -> None:
        self.message = ""
        self.query_one("#tr-msg", Static).update("")

    def _guard(self, fn):
        """Run one quick read here: (result, None), or (None, the one line) for a problem the
        user can act on; a bug raises."""
        from tui.jobs import user_message

        try:
            return fn(), None
        except Exception as e:
            line = user_message(e)
            if line is None:
                raise
            return None, line

    # -- the lists of the form, and the engine: read in the background --
    def refresh_lists(self) -> None:
        """List the datasets, base models and your models again (keeping the choices); the
        first time, load the training engine too (its presets)."""
        load = not self._engine_asked
        self._engine_asked = True
        self._read_choices(load)

    @work(thread=True, exclusive=True, exit_on_error=False, group="train-lists")
    def _read_choices(self, load_engine: bool) -> None:
        self.post_message(read_choices())
        if load_engine:
            try:
                from engine.train.finetune import METHODS, PRESETS
            except Exception as e:  # an engine that will not load is said, not a crash
                self.post_message(EngineReady({}, (), f"the training engine did not load: {e}"))
                return
            self.post_message(EngineReady(json.loads(json.dumps(PRESETS)), tuple(METHODS)))

    def on_choices(self, event: Choices) -> None:
        from engine import names

        self._fill("#tr-data", event.datasets)
        self._fill("#tr-base", event.bases, default=names.DEFAULT_MODEL)
        self._fill("#tr-from", event.mine)
        self.choices = event
        if event.problem:
            self._problem(event.problem)

    def _fill(self, selector: str, options: list[tuple[str, str]], default: str | None = None):
        box = self.query_one(selector, Select)
        was = box.value
        box.set_options(options)
        values = [v for _, v in options]
        if isinstance(was, str) and was in values:
            box.value = was
        elif default in values:
            box.value = default
        elif selector == "#tr-data" and values:
            box.value = values[0]

    def on_engine_ready(self, event: EngineReady) -> None:
        if event.error:
            self._problem(event.error)
            return
        self.presets, self.methods, self.engine_ready = event.presets, event.methods, True
        method = self.query_one("#tr-method", Select)
        method.set_options([(METHOD_LABELS.get(m, m), m) for m in self.methods])
        method.value = self.methods[0]
        preset = self.query_one("#tr-preset", Select)
        preset.set_options([(f"{p} preset", p) for p in self.presets])
        preset.value = next(iter(self.presets))
        self._show_defaults()

    @on(Select.Changed, "#tr-method")
    @on(Select.Changed, "#tr-preset")
    def _show_defaults(self, event: Select.Changed | None = None) -> None:
        """The preset's numbers as the placeholders of the fields (empty: these)."""
        p = self.presets.get(self._value("#tr-preset") or "")
        if not p:
            return
        method = self._value("#tr-method") or "lora"
        lr = p["lr"].get(method) if isinstance(p.get("lr"), dict) else p.get("lr")
        self.query_one("#tr-steps", Input).placeholder = f"{p['max_steps']} steps"
        self.query_one("#tr-lr-in", Input).placeholder = f"lr {lr:g}" if lr else "lr"
        rank = self.query_one("#tr-rank", Input)
        rank.placeholder = f"rank {p['rank']}" if method == "lora" else "rank: LoRA only"
        rank.disabled = method != "lora" or self.state != "idle"

    @on(Select.Changed, "#tr-from")
    def _from_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.show_checkpoints(event.value)
            name = self.query_one("#tr-name", Input)
            if not name.value.strip():
                name.placeholder = f"{event.value} (a new round of it)"
        else:
            self.query_one("#tr-name", Input).placeholder = "letters, digits, - _ ."

    def _value(self, selector: str) -> str | None:
        v = self.query_one(selector, Select).value
        return v if isinstance(v, str) else None

    # -- reading the form --
    def read_form(self) -> tuple[dict | None, str | None]:
        """The run the form asks for, or (None, why not in one line)."""
        data = self._value("#tr-data")
        resume = self.query_one("#tr-resume", Checkbox).value
        if data is None and not resume:  # (a resumed round trains on its own data)
            return None, "pick a dataset to train on (the Data screen, F5, makes one)"
        folder = self.query_one("#tr-base-folder", Input).value.strip()
        if folder and not Path(folder).expanduser().is_dir():
            return None, f"no model folder {folder}: give a score model's folder or clear it"
        base = str(Path(folder).expanduser()) if folder else self._value("#tr-base")
        from_model = self._value("#tr-from")
        name = self.query_one("#tr-name", Input).value.strip() or from_model or ""
        if not name:
            return None, "name your model (letters, digits, '.', '_' or '-'), e.g. my-chorales"
        numbers = {}
        for selector, key, kind, what in (
            ("#tr-steps", "max_steps", int, "steps: a whole number above 0"),
            ("#tr-lr-in", "learning_rate", float, "learning rate: a number like 5e-4"),
            ("#tr-rank", "rank", int, "rank: a whole number above 0"),
        ):
            box = self.query_one(selector, Input)
            text = box.value.strip()
            if not text or box.disabled:
                continue
            try:
                value = kind(text)
            except ValueError:
                return None, f"{what}, not {text!r}"
            if not value > 0 or not math.isfinite(value):
                return None, f"{what}, not {text!r}"
            numbers[key] = value
        options = {**numbers, **self.extra_options}
        if self.query_one("#tr-lowmem", Checkbox).value:
            options["grad_checkpoint"] = True  # recompute activations in the backward pass
        method, preset = self._value("#tr-method"), self._value("#tr-preset")
        if method:
            options["method"] = method
        if preset:
            options["preset"] = preset
        request = {
            "data": data,
            "name": name,
            "base": base,
            "from_model": from_model,
            "resume": resume,
            "options": options,
        }
        return request, None

    # -- start, pause, resume, stop --
    def action_start(self) -> None:
        if self.state != "idle":
            self._say(f"a run is {self.state}: stop it (x) before starting another")
            return
        request, problem = self.read_form()
        if request is None:
            self._problem(problem)
            return
        self._clear_problem()
        self._reset_run()
        self.model, self.control, self._pending = request["name"], None, []
        self._set_state("preparing")
        from_text = f", from {request['from_model']}" if request["from_model"] else ""
        self._say(f"preparing {request['name']}{from_text}: reading the data …")
        self._train(request)

    def _reset_run(self) -> None:
        self.start_info, self.last_train, self.last_val, self.plan = {}, None, None, None
        self.style_reports, self.samples, self.summary, self.result = [], [], None, None
        self.round, self.step = None, 0
        for chart in self.query(TrainChart):
            chart.clear()
        self.query_one("#tr-samples", OptionList).clear_options()
        self.query_one("#tr-style", Static).update(style_text([]))
        self.query_one("#tr-stats", Static).update("")

    def _refuse(self, action: str) -> bool:
        """Say why ``action`` does nothing now (True), or False when it can run."""
        if self.state in ENABLED[action]:
            return False
        why = {
            "idle": "nothing is training",
            "preparing": "the run is still preparing",
            "paused": "the run is paused already",
            "stopping": "the run is stopping",
        }.get(self.state, f"the run is {self.state}")
        self._say(f"{why}: {action} does nothing now", announce=False)
        return True

    def action_pause(self) -> None:
        if self._refuse("pause"):
            return
        self._ask("pause")
        self._set_state("pausing")
        self._say("pausing after this step (a checkpoint is written first) …")

    def action_resume(self) -> None:
        if self._refuse("resume"):
            return
        self._ask("resume")
        self._set_state("running" if self.start_info else "preparing")
        self._say(f"resumed {self.model}")

    def action_stop(self) -> None:
        if self._refuse("stop"):
            return
        self._ask("stop")
        self._set_state("stopping")
        self._say("stopping after this step (a checkpoint is kept) …")

    def _ask(self, what: str) -> None:
        if self.control is None:
            self._pending.append(what)  # the run's thread has not made its control yet
        else:
            getattr(self.control, what)()

    def _set_state(self, state: str) -> None:
        self.state = state
        self._show_buttons()

    def _show_buttons(self) -> None:
        for name, button in (
            ("start", "#tr-start"),
            ("pause", "#tr-pause"),
            ("resume", "#tr-resume-btn"),
            ("stop", "#tr-stop"),
        ):
            self.query_one(button, Button).disabled = self.state not in ENABLED[name]
        idle = self.state == "idle"
        for widget in self.query("#tr-form Select, #tr-form Input, #tr-form Checkbox"):
            widget.disabled = not idle
        if idle:
            self._show_defaults()

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        {
            "tr-start": self.action_start,
            "tr-pause": self.action_pause,
            "tr-resume-btn": self.action_resume,
            "tr-stop": self.action_stop,
        }.get(event.button.id or "", lambda: None)()

    def action_leave_field(self) -> None:
        if isinstance(self.app.focused, Input | Select):
            self.query_one("#tr-buttons Button:enabled", Button).focus()

    def finish_before_exit(self) -> list[Worker]:
        """On quit: stop the run (it writes a checkpoint first: nothing learnt is lost, and
        the model continues with "continue from"); the app waits for it."""
        running = self._jobs_running()
        if running:
            self._ask("stop")
        return running

    def _jobs_running(self) -> list[Worker]:
        return [
            w
            for w in self.workers
            if w.node is self
            and w.group == "train"
            and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
        ]

    # -- the run's thread --
    @work(thread=True, exit_on_error=False, group="train")
    def _train(self, request: dict) -> None:
        from engine import names
        from engine.progress import Progress
        from engine.train.finetune import FinetuneOptions, finetune_score
        from tui.jobs import user_message

        control = make_control(self.post_message)
        self.control = control
        self.post_message(TrainEvent("control"))

        def progress(event: Progress) -> None:
            if control.stopping:
                raise TrainCancelled()
            self.post_message(
                WorkProgress("train", event.stage, event.done, event.total, event.message)
            )

        try:
            if control.stopping:
                raise TrainCancelled()
            result = finetune_score(
                request["data"] or "",
                name=request["name"],
                base=request["base"] or names.DEFAULT_MODEL,
                options=FinetuneOptions(**request["options"]),
                from_model=request["from_model"],
                resume=request["resume"],
                callback=ScreenCallback(self.post_message),
                progress=progress,
                control=control,
                plan=lambda info: self.post_message(TrainEvent("plan", info)),
                warn=lambda line: self.post_message(TrainEvent("warn", {"line": line})),
            )
        except TrainCancelled:
            self.post_message(
                WorkFailed("train", "stopped before training began; nothing kept", True)
            )
        except Exception as e:
            line = user_message(e)
            if line is None:
                raise
            self.post_message(WorkFailed("train", line))
        else:
            self.post_message(WorkDone("train", result))

    # -- what the run says --
    def on_train_event(self, event: TrainEvent) -> None:
        kind, info = event.kind, event.info
        if isinstance(info.get("iteration"), int):
            self.step = max(self.step, info["iteration"])
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(info)

    def _on_control(self, info: dict) -> None:
        pending, self._pending = self._pending, []
        for what in pending:
            getattr(self.control, what)()

    def _on_plan(self, info: dict) -> None:
        self.plan = info
        c = info.get("corpus", {})
        note = f" ({c['split_note']})" if c.get("split_note") else ""
        self._say(
            f"plan: {c.get('pieces')} pieces, {c.get('tokens')} tokens{note}; "
            f"{info['trainable_parameters']:,} of {info['total_parameters']:,} weights train; "
            f"about {info['memory_bytes'] / 2**20:.0f} MB and {format_duration(info['time_s'])} "
            f"for {info['max_steps']} steps",
            announce=False,
        )

    def _on_start(self, info: dict) -> None:
        self.start_info = info
        self.round = info.get("round")
        self.step = info.get("start_step") or 0
        if self.state == "preparing":
            self._set_state("running")
        self._stats_dirty = True
        if self.step and info.get("out_dir"):  # a resumed round: what it did before
            self._show_history(history(Path(info["out_dir"]) / "metrics.jsonl", self.step))
        method = {"lora": "LoRA", "full": "full"}.get(info.get("method"), info.get("method"))
        resumed = f" from step {info['start_step']}" if info.get("start_step") else ""
        self._say(
            f"training {info.get('name', self.model)} (round {self.round}, {method}){resumed}: "
            f"{info.get('trainable_parameters', 0):,} weights learn; p pauses, x stops"
        )

    def _show_history(self, past: dict[str, list]) -> None:
        loss, lr = self.query_one("#tr-loss", TrainChart), self.query_one("#tr-lr", TrainChart)
        for step, value, rate in past["train"]:
            loss.add("train", step, value)
            if rate is not None:
                lr.add("lr", step, rate)
        for step, value in past["val"]:
            loss.add("val", step, value)
        for report in past["sample"]:
            self._add_samples(report)

    def _on_train(self, info: dict) -> None:
        self.last_train = info
        step = info["iteration"]
        self.query_one("#tr-loss", TrainChart).add("train", step, info["train_loss"])
        self.query_one("#tr-lr", TrainChart).add("lr", step, info["learning_rate"])
        self._stats_dirty = True

    def _on_val(self, info: dict) -> None:
        self.last_val = info
        self.query_one("#tr-loss", TrainChart).add("val", info["iteration"], info["val_loss"])
        self._stats_dirty = True
        best = " (the best so far)" if info.get("is_best") else ""
        self.announce(f"validation loss {info['val_loss']:.4f} at step {info['iteration']}{best}")

    def _on_sample(self, info: dict) -> None:
        self._add_samples(info)
        n = len(info.get("samples", []))
        self.announce(
            f"{n} sample{'s' if n != 1 else ''} at step {info['iteration']}: style distance "
            f"{info['overall']:.3f}"
        )

    def _add_samples(self, info: dict) -> None:
        self.style_reports.append(info)
        self.query_one("#tr-style", Static).update(style_text(self.style_reports))
        box = self.query_one("#tr-samples", OptionList)
        for path in info.get("samples", []):
            if path in self.samples:
                continue  # (made again by a resumed round: the same file)
            self.samples.append(path)
            box.add_option(
                Option(f"step {info['iteration']} · {Path(path).stem.replace('-', ' ')}", id=path)
            )

    def _on_checkpoint(self, info: dict) -> None:
        if self.model:
            self.show_checkpoints(self.model)

    def _on_pause(self, info: dict) -> None:
        if self.state not in ("pausing", "paused"):
            return  # resumed or stopped since
        self._set_state("paused")
        self._stats_dirty = True
        self._say(f"paused at step {self.step}: a checkpoint is kept; r resumes, x stops")
        if self.model:
            self.show_checkpoints(self.model)

    def _on_end(self, info: dict) -> None:
        self.summary = info

    def _on_warn(self, info: dict) -> None:
        self.notify(info.get("line", ""), severity="warning", timeout=8)

    def _flush_stats(self) -> None:
        if self._stats_dirty:
            self._stats_dirty = False
            self.query_one("#tr-stats", Static).update(
                stats_text(self.start_info, self.step, self.last_train, self.last_val)
            )

    def on_work_progress(self, event: WorkProgress) -> None:
        if event.job != "train" or self.state not in ("preparing", "stopping", "pausing"):
            return
        of = f"/{event.total}" if event.total else ""
        self.query_one("#tr-status", Static).update(
            f"preparing {self.model}: {event.stage} {event.done}{of} {event.message}"
        )

    def on_work_done(self, event: WorkDone) -> None:
        if event.job != "train":
            return
        r = self.result = event.result
        self._finish()
        why = STOP_REASONS.get(r.get("stop_reason"), r.get("stop_reason"))
        val = r.get("best_val")
        val_text = (
            f"best validation loss {val:.4f} at step {r.get('best_step')}" if val else "no best"
        )
        style = r.get("style") or {}
        style_part = (
            f", style distance {style['base']['overall']:.3f} → {style['tuned']['overall']:.3f}"
            if style.get("base") and style.get("tuned")
            else ""
        )
        self._say(
            f"done: {r.get('name')} round {r.get('round')}, {r.get('steps')} steps ({why}); "
            f"{val_text}{style_part}; Enter on a checkpoint uses it to make music"
        )

    def on_work_failed(self, event: WorkFailed) -> None:
        if event.job == "train-audio":
            self._problem(event.error)
            return
        if event.job != "train":
            return
        self._finish()
        if event.cancelled:
            self._say(event.error)
        else:
            self._problem(event.error)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        line = f"a bug stopped the work ({type(error).__name__}: {error}); please report it"
        if event.worker.group == "train":
            self._finish()
            self._problem(line)
        elif event.worker.group in ("train-engine", "train-audio"):
            self._problem(line)

    def _finish(self) -> None:
        self.control = None
        self._pending = []
        self._set_state("idle")
        for chart in self.query(TrainChart):
            chart.flush()
        self._stats_dirty = True
        self._flush_stats()
        self.refresh_lists()
        if self.model:
            self.show_checkpoints(self.model)

    # -- checkpoints --
    def show_checkpoints(self, name: str) -> None:
        found, problem = self._guard(lambda: checkpoints_of(name))
        self.checkpoints = found or []
        box = self.query_one("#tr-ckpts", OptionList)
        was = box.highlighted
        box.clear_options()
        for c in self.checkpoints:
            box.add_option(Option(c.label, id=c.spec))
        if self.checkpoints:
            box.highlighted = min(was or 0, len(self.checkpoints) - 1)
        if problem:
            self._problem(problem)

    @on(OptionList.OptionSelected, "#tr-ckpts")
    def _checkpoint_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option_id:
            self.use_model(event.option_id)

    def action_use_model(self) -> None:
        box = self.query_one("#tr-ckpts", OptionList)
        if box.highlighted is None or not self.checkpoints:
            self._say("no checkpoint to use yet: they appear as the model trains")
            return
        self.use_model(self.checkpoints[box.highlighted].spec)

    def use_model(self, spec: str) -> bool:
        """Make ``spec`` (``NAME@step-N`` …) the studio's model: the Make screen writes with
        it from now on (`StudioApp.model_name`, and its model controls when it is open)."""
        from engine import hub

        folder, problem = self._guard(lambda: hub.resolve_trained(spec))
        if folder is None:
            self._problem(problem or f"no model {spec}")
            return False
        self.app.model_name = spec
        for controls in self._make_controls():
            controls.set_values(model=str(folder))
        self._say(f"the Make screen (F2) now writes with {spec}")
        return True

    def _make_controls(self) -> list:
        from tui.widgets.controls import GenerateControls

        found = []
        for stack in self.app._screen_stacks.values():
            for screen in stack:
                if screen is not self:
                    found += list(screen.query(GenerateControls))
        return found

    # -- samples --
    def _sample(self) -> str | None:
        box = self.query_one("#tr-samples", OptionList)
        if box.highlighted is None or box.highlighted >= len(self.samples):
            return None
        return self.samples[box.highlighted]

    @on(OptionList.OptionSelected, "#tr-samples")
    def _sample_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option_id:
            self.play_sample(event.option_id)

    def action_play(self) -> None:
        path = self._sample()
        if path is None:
            self._say("no sample yet: they are made at each validation")
            return
        self.play_sample(path)

    def play_sample(self, path: str) -> None:
        """Play ``path`` (a MIDI sample): rendered in the background the first time; the
        same one again pauses or plays on."""
        if self.player is not None and self.playing == path and self.player.length_s:
            playing = self.player.toggle()
            self._say(f"{'playing' if playing else 'paused'} {Path(path).name}")
            return
        self._say(f"rendering {Path(path).name} …", announce=False)
        self._render_sample(path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="train-audio")
    def _render_sample(self, path: str) -> None:
        from tui.jobs import user_message

        client = self.app.__dict__.get("_render_client")
        if client is None:
            from engine.audio.render_server import RenderClient

            client = self.app.__dict__["_render_client"] = RenderClient()
        try:
            audio, info = client.render_audio(Path(path).read_bytes())
        except Exception as e:
            line = user_message(e) or f"could not render {Path(path).name} ({e})"
            self.post_message(WorkFailed("train-audio", line))
            return
        self.post_message(SampleAudio(path, audio, int(info["sample_rate"])))

    def on_sample_audio(self, event: SampleAudio) -> None:
        from tui.player import ClockSink, Player, open_player

        if self.player is None:
            if self.app.audio_enabled:
                self.player, notice = open_player(device=self.app.settings.audio_device)
            else:
                self.player, notice = Player(sink=ClockSink()), "audio output is off"
            if notice:
                self.notify(f"{notice} (o opens the sample in the system player)", timeout=6)
        self.player.pause()
        self.player.load(event.audio, event.sample_rate, position=lambda _: 0.0)
        self.player.play()
        self.playing = event.path
        seconds = len(event.audio) / event.sample_rate
        self._say(f"playing {Path(event.path).name} ({seconds:.1f} s); Space pauses")

    def action_open_sample(self) -> None:
        from tui.player import open_in_system_player

        path = self._sample()
        self._say(open_in_system_player(path) if path else "no sample to open yet")


ENTRY = ScreenEntry(
    "train",
    "Train",
    TRAIN_KEY,
    50,
    TrainScreen,
    "fine-tune the score model on your own music: live charts, samples, checkpoints",
)
