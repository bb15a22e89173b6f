"""The Make screen: type an idea, see how it was read, write it bar by bar, hear it, change
it while it plays, keep it.

The piece is written by `engine.pipelines.live.BarWriter` in a worker thread, one bar at a
time; after each bar the worker posts the piece so far (`BarsWritten`) and the piano roll
grows. Changes of tempo, dynamics, creativity, density or a part's instrument go through
`LiveControls` while the piece is written (they apply from the next bar), and straight to
the writer once it is finished (from the bar after the playhead; creativity and density
rewrite the bars from there). Every finished piece — and every changed version — is saved
into the output folder and kept in the library; its ``generation.json`` replays it exactly.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    Input,
    Label,
    ProgressBar,
    Select,
    Static,
    TabbedContent,
    TabPane,
)
from textual.worker import Worker, WorkerState, get_current_worker

from engine import names
from tui.jobs import TimeLeft, keeping, user_message
from tui.messages import BarsWritten, ControlsChanged, WorkDone, WorkFailed, WorkProgress
from tui.screens import ScreenEntry
from tui.screens._base import StudioScreen
from tui.widgets.controls import GenerateControls
from tui.widgets.lanes import ParameterLanes
from tui.widgets.pianoroll import PianoRoll
from tui.widgets.roll import roll_data
from tui.widgets.scoreview import ScoreView
from tui.widgets.understood import Understanding
from tui.widgets.waveform import Waveform

DYNAMICS = tuple(names.DYNAMICS)
TEMPO_STEP_BPM = 5.0
SAVE_CHANGED_AFTER_S = 3.0  # a changed version is kept once the changes stop for this long
PLAYHEAD_HZ = 10.0  # playhead updates a second (reduced motion: one a second)


def folder_name(prompt: str, seed: int) -> str:
    """``a-calm-chorale-in-g-1234``: the prompt's first words and the seed."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())[:5]
    return "-".join([*(words or ["piece"]), str(seed)])


def unique_folder(root: Path, name: str) -> Path:
    """``root/name``, or ``root/name-2``… when that exists (nothing is ever replaced)."""
    path = root / name
    n = 2
    while path.exists():
        path = root / f"{name}-{n}"
        n += 1
    return path


def next_bar(bar_seconds: list[float], position_s: float, bars: int) -> int:
    """The 1-based bar that starts at the first bar line after ``position_s``
    (``bar_seconds[k]`` is where bar k + 1 starts), at most ``bars``."""
    import bisect

    return min(bars, bisect.bisect_right(bar_seconds, position_s) + 1)


class LivePanel(VerticalScroll):
    """What can change while the piece plays or is written: tempo, dynamics, creativity,
    density and the instrument of a part. Enter (or a choice) applies a value from the
    next bar."""

    DEFAULT_CSS = """
    LivePanel { height: 1fr; padding: 0 1; }
    LivePanel .row { height: auto; }
    LivePanel .row > Label { width: 12; padding: 1 1 0 0; text-style: bold; }
    LivePanel .row > Input, LivePanel .row > Select { width: 1fr; }
    LivePanel #live-msg { height: auto; color: $error; }
    LivePanel #live-log { height: auto; color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield Static(
            "Changes take effect from the next bar: while the piece is written, the bars not "
            "yet written follow them; while it plays, the audio ahead of the playhead.",
            classes="hint",
        )
        rows = (
            ("Tempo", Input(placeholder="BPM, e.g. 96", id="live-tempo", type="number")),
            ("Dynamics", Select([(d, d) for d in DYNAMICS], id="live-dynamics", prompt="dynamics")),
            ("Creativity", Input(placeholder="0..1", id="live-creativity", type="number")),
            ("Density", Input(placeholder="0..1", id="live-density", type="number")),
            ("Part", Select([], id="live-part", prompt="part")),
            ("Instrument", Input(placeholder="e.g. flute (Enter)", id="live-instrument")),
        )
        for label, field in rows:
            with Horizontal(classes="row"):
                yield Label(label)
                yield field
        yield Static("", id="live-msg")
        yield Static("", id="live-log")

    def set_parts(self, parts: list[str]) -> None:
        select = self.query_one("#live-part", Select)
        select.set_options([(f"{i}: {p}", i) for i, p in enumerate(parts, 1)])
        if parts:
            select.value = 1


class MakeScreen(StudioScreen):
    """Make: prompt, controls, the piece as it is written, playback, live changes, keep."""

    NAME = "make"
    HELP_WIDGETS = (PianoRoll, Waveform, ScoreView)
    BINDINGS = [
        Binding("ctrl+g", "generate", "Generate", priority=True),
        Binding("escape", "cancel", "Cancel / stop"),
        Binding("space", "play", "Play / pause"),
        Binding("comma", "seek(-1)", "Back a bar", show=False),
        Binding("full_stop", "seek(1)", "On a bar", show=False),
        Binding("ctrl+l", "loop", "Loop on/off", show=False),
        Binding("less_than_sign", "tempo(-1)", "Slower (from the next bar)", show=False),
        Binding("greater_than_sign", "tempo(1)", "Faster (from the next bar)", show=False),
        Binding("left_parenthesis", "dynamics(-1)", "Softer (from the next bar)", show=False),
        Binding("right_parenthesis", "dynamics(1)", "Louder (from the next bar)", show=False),
        Binding("1", "rate(1)", "Rate 1-5", key_display="1-5"),
        *[Binding(str(n), f"rate({n})", f"Rate {n} stars", show=False) for n in range(2, 6)],
        Binding("t", "tag", "Tag", show=False),
        Binding("n", "note", "Note", show=False),
        Binding("c", "collection", "Add to a collection", show=False),
        Binding("r", "rewrite", "Rewrite bars", show=False),
        Binding("o", "open_player", "Open in the system player", show=False),
        Binding("b", "in_library", "Show in the library", show=False),
        Binding("ctrl+e", "focus_prompt", "Back to the prompt", show=False),
    ]

    def __init__(self):
        super().__init__(id="make")
        self.writer = None  # the BarWriter of the current piece
        self.controls_live = None  # LiveControls while a piece is written
        self.piece: dict | None = None  # {"id", "folder", "record", "title"} of the current piece
        self.variations: list[dict] = []
        self.audio = None  # (samples [frames, 2], sample_rate) of the current piece
        self.player = None
        self.live = None  # LiveAudio: re-renders ahead of the playhead after a change
        self.audio_notice: str | None = None
        self.job_started = 0.0
        self._dirty_since: float | None = None  # changes after the piece was kept
        self._change_log: list[str] = []
        self._changed_from = 1
        self._scratch = None  # TemporaryDirectory of the engraved pages shown

    # -- layout --
    def compose_body(self) -> ComposeResult:
        with Horizontal(id="prompt-row"):
            yield Input(
                placeholder="Describe the music, e.g. a calm chorale in G major for choir, "
                "30 seconds (Ctrl+G generates)",
                id="prompt",
            )
            yield Button("Generate ^G", id="generate", variant="primary")
            yield Button("Cancel Esc", id="cancel", disabled=True)
        with Horizontal(id="status-row"):
            yield Static("Ready. Type an idea and press Ctrl+G.", id="status")
            yield ProgressBar(id="progress", show_eta=False)
        with Horizontal(id="make-main"):
            with TabbedContent(id="make-left"):
                with TabPane("Understood", id="tab-understood"):
                    with VerticalScroll():
                        yield Understanding(id="understanding")
                with TabPane("Controls", id="tab-controls"):
                    yield GenerateControls(id="controls")
                with TabPane("Change", id="tab-change"):
                    yield LivePanel(id="live")
                with TabPane("Keep", id="tab-keep"):
                    yield Static("Nothing made yet.", id="keep-info")
            with TabbedContent(id="make-right"):
                with TabPane("Roll", id="tab-roll"):
                    with Vertical():
                        yield PianoRoll(id="roll", palette=self.app.settings.palette)
                        yield ParameterLanes(id="lanes")
                with TabPane("Audio", id="tab-audio"):
                    yield Waveform(id="waveform")
                with TabPane("Score", id="tab-score"):
                    yield ScoreView(id="score")
                with TabPane("Variations", id="tab-variations"):
                    yield VerticalScroll(id="variations")

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).focus()
        hz = 1.0 if self.app.reduced_motion else PLAYHEAD_HZ
        self.set_interval(1.0 / hz, self._tick)
        self.query_one("#progress", ProgressBar).update(total=1, progress=0)
        if self.app.model_name:  # `studio --model NAME`
            self.query_one(GenerateControls).set_values(model=self.app.model_name)
        self._open_player()

    def on_unmount(self) -> None:
        client = self.app.__dict__.pop("_render_client", None)
        if client is not None:
            client.close()
        if self._scratch is not None:
            self._scratch.cleanup()
        if self.live is not None:
            self.live.close()
        if self.player is not None:
            self.player.close()

    # -- the prompt and the controls --
    @on(Input.Changed, "#prompt")
    def _prompt_changed(self, event: Input.Changed) -> None:
        self.query_one(Understanding).set_prompt(event.value)

    @on(Input.Submitted, "#prompt")
    def _prompt_submitted(self, event: Input.Submitted) -> None:
        self.action_generate()

    def on_controls_changed(self, event: ControlsChanged) -> None:
        self.query_one(Understanding).set_options(event.options)

    def start_from_prompt(self, prompt: str) -> None:
        """Put ``prompt`` in the box and generate it (the first-run wizard's choice)."""
        self.query_one("#prompt", Input).value = prompt
        self.query_one(Understanding).set_prompt(prompt)
        self.action_generate()

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    @on(Button.Pressed, "#generate")
    def _generate_pressed(self) -> None:
        self.action_generate()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    # -- generating --
    @property
    def busy(self) -> bool:
        return any(
            w.group == "make" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
            for w in self.workers
        )

    def action_generate(self) -> None:
        if self.busy:
            self.set_status("Already writing; Escape cancels it first.")
            return
        controls = self.query_one(GenerateControls)
        problems = controls.errors()
        if problems:
            self.set_status(f"Fix first: {problems[0]}", problem=True)
            self.query_one("#make-left", TabbedContent).active = "tab-controls"
            return
        prompt = self.query_one("#prompt", Input).value.strip()
        options = controls.options()
        if options.get("seed") is None:
            options["seed"] = random.SystemRandom().randrange(100_000)
        model = controls.model()
        from engine.pipelines.live import LiveControls

        self.controls_live = LiveControls()
        self.variations = []
        self.query_one("#variations").remove_children()
        self._set_busy(True)
        self.set_status(f"Writing (seed {options['seed']})…")
        self.announce(f"generating: {prompt or 'the model chooses'}; seed {options['seed']}")
        self._remember_prompt(prompt)
        self.job_started = time.monotonic()
        self._write(prompt, options, model, controls.formats(), controls.variations())

    def _remember_prompt(self, prompt: str) -> None:
        if not prompt:
            return
        s = self.app.settings
        s.last_prompts = [prompt, *[p for p in s.last_prompts if p != prompt]][:20]
        self.app.save_settings()

    @work(thread=True, exclusive=True, group="make", exit_on_error=False)
    def _write(self, prompt: str, options: dict, model: str | None, formats, count: int):
        from engine.pipelines.live import BarWriter
        from engine.pipelines.musicgen import is_musicgen
        from engine.seeds import derive_seed

        worker = get_current_worker()
        if is_musicgen(model):
            return self._write_audio(prompt, options, model, formats, count, worker)
        sm = self._score_model(model)
        seed = options["seed"]
        for i in range(count):
            seed_i = derive_seed(seed, "variation", i)
            writer = BarWriter(prompt, model=sm, **{**options, "seed": seed_i})
            self.app.call_from_thread(self._writer_started, writer, i, count)
            left = TimeLeft()

            def on_bars(w, i=i, left=left):
                self.post_message(BarsWritten(w.score(), w.written, w.total, [i]))
                self.post_message(
                    WorkProgress(
                        "generate", "music", w.written, w.total, "", left(w.written, w.total)
                    )
                )

            comp = writer.run(
                controls=self.controls_live,
                on_bars=on_bars,
                should_stop=lambda: worker.is_cancelled,
            )
            if comp is None:
                self.post_message(WorkFailed("generate", "cancelled; nothing was written", True))
                return None
            if model:
                comp.request["model"] = comp.model_name = model
            self._save(comp, formats, i, writer)
            if worker.is_cancelled:
                self.post_message(WorkFailed("generate", "cancelled after a piece was kept", True))
                return None
        self.post_message(WorkDone("generate", count))
        return None

    def _renderer(self):
        """The render process of the saves (one for the app; started on first use)."""
        client = self.app.__dict__.get("_render_client")
        if client is None:
            from engine.audio.render_server import RenderClient

            client = self.app.__dict__["_render_client"] = RenderClient()
        return client

    def _score_model(self, model: str | None):
        """The score model, loaded once per name (in the worker thread)."""
        cache = self.app.__dict__.setdefault("_score_models", {})
        key = model or "score-base"
        if key not in cache:
            from engine.symbolic import score_api as api

            self.post_message(WorkProgress("generate", "loading model", 0, 1))
            cache[key] = api.load(key)
            import gc

            # what the model and its libraries leave is there for good: out of the garbage
            # collector's full passes, which otherwise stop every thread for 100 ms and more
            gc.freeze()
        return cache[key]

    def _save(
        self, comp, formats, index: int, writer, parent: str | None = None, changed=False
    ) -> dict:
        """Save ``comp`` into a new folder, keep it; post the result (worker thread)."""
        root = self.app.output_root
        root.mkdir(parents=True, exist_ok=True)
        folder = unique_folder(root, folder_name(comp.request.get("prompt", ""), comp.plan.seed))

        def progress(event):
            self.post_message(WorkProgress("save", event.stage, event.done, event.total))

        with keeping(self.app.library_path) as kept:
            # the audio renders in a child process: the synthesizer holds the GIL while it
            # runs, and in this process it would freeze the interface for as long
            record = comp.save(
                folder, formats=formats, progress=progress, renderer=self._renderer().render_audio
            )
        piece_id = kept[0].id if kept else None
        if parent and piece_id:
            from engine.library.store import Library

            lib = Library.open(self.app.library_path)
            try:
                lib.link(piece_id, parent, "changed")
            finally:
                lib.close()
        result = {
            "id": piece_id,
            "folder": folder,
            "record": record,
            "title": kept[0].title if kept else folder.name,
            "index": index,
            "writer": writer,
            "midi": comp.midi_bytes(),
            "changed": changed,
        }
        self.app.call_from_thread(self._piece_saved, result)
        return result

    def _write_audio(self, prompt, options, model, formats, count, worker):
        """A MusicGen piece (audio only, written in one go)."""
        from engine.pipelines import musicgen as mg
        from engine.seeds import derive_seed

        audio_formats = [f for f in formats if f in ("wav", "flac", "ogg", "mp3")] or ["wav"]
        for i in range(count):
            seed = derive_seed(options["seed"], "variation", i)
            root = self.app.output_root
            root.mkdir(parents=True, exist_ok=True)
            folder = unique_folder(root, folder_name(prompt, seed))
            left = TimeLeft()

            def progress(event, left=left):
                if worker.is_cancelled:
                    from engine.errors import Stopped

                    raise Stopped(2)
                self.post_message(
                    WorkProgress(
                        "generate",
                        event.stage,
                        event.done,
                        event.total,
                        "",
                        left(event.done, event.total),
                    )
                )

            try:
                with keeping(self.app.library_path) as kept:
                    record = mg.generate_audio_piece(
                        prompt,
                        folder,
                        formats=audio_formats,
                        model=model,
                        seconds=options.get("seconds"),
                        seed=seed,
                        creativity=options.get("creativity"),
                        progress=progress,
                        style=options.get("style"),
                        mood=options.get("mood"),
                        instruments=options.get("instruments"),
                        key=options.get("key"),
                        mode=options.get("mode"),
                        tempo_bpm=options.get("tempo_bpm"),
                    )
            except BaseException as e:
                from engine.errors import Stopped

                if isinstance(e, Stopped):
                    self.post_message(
                        WorkFailed("generate", "cancelled; nothing was written", True)
                    )
                    return None
                raise
            result = {
                "id": kept[0].id if kept else None,
                "folder": folder,
                "record": record,
                "title": kept[0].title if kept else folder.name,
                "index": i,
                "writer": None,
                "midi": None,
            }
            self.app.call_from_thread(self._piece_saved, result)
        self.post_message(WorkDone("generate", count))
        return None

    def _writer_started(self, writer, index: int, count: int) -> None:
        self.writer = writer
        self._dirty_since = None
        p = writer.plan
        self.query_one(LivePanel).set_parts([q.name for q in p.parts])
        what = f"variation {index + 1} of {count}: " if count > 1 else ""
        self.set_status(f"Writing {what}{p.bars} bars for {', '.join(q.name for q in p.parts)}")

    def on_bars_written(self, event: BarsWritten) -> None:
        data = roll_data(event.score, bars_written=event.bars, bars=event.total)
        self.query_one(PianoRoll).data = data
        self.query_one(ParameterLanes).data = data
        if self.app.plain and (event.bars == event.total or event.bars % 4 == 0):
            self.announce(f"bar {event.bars} of {event.total} written")

    def on_work_progress(self, event: WorkProgress) -> None:
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=event.total, progress=event.done)
        if event.job == "generate" and event.stage == "music":
            left = f", about {event.seconds_left:.0f} s left" if event.seconds_left else ""
            self.set_status(f"Writing: bar {event.done} of {event.total}{left}")
        elif event.job == "save":
            self.set_status(f"Saving: {event.stage}")
        elif event.stage == "audio frames":
            left = f", about {event.seconds_left:.0f} s left" if event.seconds_left else ""
            self.set_status(f"MusicGen: frame {event.done} of {event.total}{left}")
        else:
            self.set_status(event.stage.capitalize() + "…")

    def on_work_done(self, event: WorkDone) -> None:
        self.query_one("#progress", ProgressBar).update(total=1, progress=1)
        if event.job == "rewrite":
            self._set_busy(False)
        if event.job == "generate":
            self._set_busy(False)
            took = time.monotonic() - self.job_started
            n = event.result or 1
            self.set_status(f"Done in {took:.1f} s: {n} piece{'s' if n > 1 else ''} kept.")
            if n > 1:
                self.query_one("#make-right", TabbedContent).active = "tab-variations"
                self.announce(f"{n} variations ready: pick one on the Variations tab")

    def on_work_failed(self, event: WorkFailed) -> None:
        self._set_busy(False)
        self.query_one("#progress", ProgressBar).update(total=1, progress=0)
        self.set_status(event.error, problem=not event.cancelled)
        self.announce(event.error)
        if not event.cancelled:
            self.app.show_error(event.error)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        message = user_message(error) if error is not None else None
        self._set_busy(False)
        if message is None:  # a bug: say so, keep the app alive
            import traceback

            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            message = f"internal error ({detail}); please report it"
            self.log.error("".join(traceback.format_exception(error)))
        self.set_status(message, problem=True)
        self.app.show_error(message)

    def action_cancel(self) -> None:
        if self.busy:
            self.workers.cancel_group(self, "make")
            self.set_status("Cancelling at the end of this bar…")
            self.announce("cancelling")
            return
        if self.player is not None and self.player.playing:
            self.player.pause()
            self.announce("paused")
            return
        self.query_one(PianoRoll).focus()

    def _set_busy(self, busy: bool) -> None:
        if busy:  # (the bar moves on its own until the first step is known)
            self.query_one("#progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#generate", Button).disabled = busy
        self.query_one("#cancel", Button).disabled = not busy

    def set_status(self, text: str, problem: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.update(text)
        status.set_class(problem, "problem")

    # -- a piece is ready --
    def _piece_saved(self, result: dict) -> None:
        self.variations.append(result)
        self._show_variation(result)
        if len(self.variations) == 1 or result.get("changed"):
            self._make_current(result)
        what = f"kept in the library as {result['id']}" if result["id"] else "saved"
        self.announce(f"{result['title']}: {what} ({result['folder']})")

    def _make_current(self, result: dict) -> None:
        self.piece = result
        self.writer = result.get("writer") or self.writer
        self._dirty_since = None
        self._show_keep()
        self._load_audio(result)
        folder = Path(result["folder"])
        png = next(iter(sorted(folder.glob("score*.png"))), None)
        if result.get("midi"):
            from symusic import Score

            data = roll_data(Score.from_midi(result["midi"]))
            self.query_one(PianoRoll).data = data
            self.query_one(ParameterLanes).data = data
            view = self.query_one(ScoreView)
            view.show(png, data)
            if png is None and view.support_pictures and (folder / "music.musicxml").is_file():
                self._engrave(folder / "music.musicxml", data)
            if self.app.plain:
                self.announce(self.query_one(PianoRoll).summary())

    @work(thread=True, exclusive=True, group="engrave", exit_on_error=False)
    def _engrave(self, musicxml: Path, data) -> None:
        """The engraved first page, for a terminal that shows pictures (in the studio's
        cache: the piece's own folder stays as it was kept)."""
        import tempfile

        from engine.library.pictures import engrave

        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="disco-musica-studio-")
        out = Path(self._scratch.name) / f"{musicxml.parent.name}.png"
        pages = engrave(musicxml, out, overwrite=True)
        if pages:
            self.app.call_from_thread(self.query_one(ScoreView).show, pages[0], data)

    def _show_keep(self) -> None:
        p = self.piece
        if not p:
            return
        record = p["record"]
        plan = record.get("plan", {})
        lines = [
            f"[b]{p['title']}[/b]",
            f"library id: {p['id'] or '(not kept)'}",
            f"folder: {p['folder']}",
            f"seed {record.get('seed')}, {plan.get('bars', '?')} bars, "
            f"{plan.get('key') or ''} {plan.get('mode') or ''}, {plan.get('tempo_bpm', '')} BPM",
            "",
            "1-5 rate · t tag · n note · c collection · r rewrite bars · b show in library",
        ]
        if p.get("rating"):
            lines.insert(2, f"rating: {'★' * p['rating']}")
        if p.get("tags"):
            lines.insert(2, f"tags: {', '.join(p['tags'])}")
        self.query_one("#keep-info", Static).update("\n".join(lines))

    def _show_variation(self, result: dict) -> None:
        box = self.query_one("#variations", VerticalScroll)
        i = result["index"]
        label = f"{i + 1}: {result['title']} ({result['id'] or 'not kept'})"
        row = Vertical(classes="variation")
        box.mount(row)
        row.mount(Button(f"Pick {label}", id=f"pick-{len(self.variations) - 1}"))
        if result.get("midi"):
            from symusic import Score

            roll = PianoRoll(roll_data(Score.from_midi(result["midi"])), bar_width=4)
            roll.styles.height = 8
            row.mount(roll)

    @on(Button.Pressed, ".variation Button")
    def _pick(self, event: Button.Pressed) -> None:
        n = int(event.button.id.split("-")[1])
        result = self.variations[n]
        self._make_current(result)
        self.query_one("#make-right", TabbedContent).active = "tab-roll"
        self.announce(f"picked variation {result['index'] + 1}: {result['title']}")

    # -- hearing --
    def _open_player(self) -> None:
        """The player: the audio output, else a silent transport with a one-line notice."""
        from tui.player import ClockSink, Player, open_player

        if self.app.audio_enabled:
            self.player, notice = open_player(device=self.app.settings.audio_device)
        else:
            self.player = Player(sink=ClockSink())
            notice = "audio output is off (--no-audio); playing silently"
        self.audio_notice = notice
        if notice:
            self.set_status("No sound here: playing silently (o: system player)")
            self.announce(f"{notice}; o opens the piece in the system player")

    def _live_audio(self):
        if self.live is None:
            from tui.live_audio import LiveAudio

            def applied(a) -> None:
                self.app.call_from_thread(self._change_heard, a)

            def failed(e: BaseException) -> None:
                self.app.call_from_thread(self.set_status, f"the new audio failed: {e}", True)

            self.live = LiveAudio(self.player, on_applied=applied, on_error=failed)
        return self.live

    def _change_heard(self, a) -> None:
        self.announce(f"the change is heard from bar {a.bar + 1}")

    @work(thread=True, exclusive=True, group="audio", exit_on_error=False)
    def _load_audio(self, result: dict) -> None:
        import numpy as np

        writer = result.get("writer")
        if writer is not None:  # the score's own render, so changes can be spliced in
            self._live_audio().load(writer.midi_bytes(), writer.bar_seconds())
            audio, sr = self.player.audio, self.player.sample_rate
        else:
            folder = Path(result["folder"])
            files = [folder / f"music.{f}" for f in ("wav", "flac", "ogg", "mp3")]
            wav = next((f for f in files if f.is_file()), None)
            if wav is None:
                return
            from engine.audio.io import load_audio

            audio, sr = load_audio(wav)
            audio = np.asarray(audio, np.float32)
            if audio.ndim == 1 or audio.shape[1] == 1:
                audio = np.repeat(audio.reshape(-1, 1), 2, axis=1)
            self.player.load(audio, sr, position=lambda _: 0.0)
        self.app.call_from_thread(self._audio_ready, audio, sr)

    def _audio_ready(self, audio, sr: int) -> None:
        self.audio = (audio, sr)
        self.query_one(Waveform).set_audio(audio, sr)
        self.announce(f"audio ready: {len(audio) / sr:.1f} seconds; space plays")

    def action_play(self) -> None:
        if self.player is None or not self.player.length_s:
            self.set_status(
                "Nothing to play yet" + (": it is being written." if self.busy else ".")
            )
            return
        playing = self.player.toggle()
        where = f"{self.player.position_s:.1f} s"
        self.announce(f"playing from {where}" if playing else f"paused at {where}")
        self.set_status(("Playing" if playing else "Paused") + f" at {where}")

    def action_seek(self, bars: int) -> None:
        if self.player is None or not self.player.length_s:
            return
        times = self.writer.bar_seconds() if self.writer is not None else None
        pos = self.player.position_s
        if times:
            import bisect

            now = max(0, bisect.bisect_right(times, pos + 1e-6) - 1)
            target = times[min(max(now + bars, 0), len(times) - 1)]
        else:
            target = max(0.0, pos + 2.0 * bars)
        self.player.seek(min(target, self.player.length_s))
        self.announce(f"at {self.player.position_s:.1f} s")

    def action_loop(self) -> None:
        if self.player is None:
            return
        on = self.player.loop is None
        self.player.set_loop(0.0 if on else None)
        self.announce("loop on" if on else "loop off")
        self.set_status("Loop on" if on else "Loop off")

    def action_open_player(self) -> None:
        from tui.player import open_in_system_player

        if not self.piece:
            self.set_status("Nothing made yet.")
            return
        folder = Path(self.piece["folder"])
        files = [folder / f"music.{f}" for f in ("wav", "flac", "ogg", "mp3", "mid")]
        target = next((f for f in files if f.is_file()), folder)
        said = open_in_system_player(target)
        self.set_status(said)
        self.announce(said)

    def _tick(self) -> None:
        if (
            self._dirty_since is not None
            and time.monotonic() - self._dirty_since >= SAVE_CHANGED_AFTER_S
            and not self.busy
        ):
            self._save_changed()
        player = self.player
        if player is None or not player.length_s:
            return
        pos = player.position_s
        roll = self.query_one(PianoRoll)
        data = roll.data
        if data is not None and (player.playing or roll.playhead_q is not None):
            roll.playhead_q = float(data.quarters_at(pos))
            self.query_one(ParameterLanes).playhead_q = roll.playhead_q
            self.query_one(Waveform).playhead_s = pos

    # -- changing it --
    def action_tempo(self, direction: int) -> None:
        now = self._current("tempo_bpm")
        if now is None:
            return
        tempo = min(
            max(float(now) + direction * TEMPO_STEP_BPM, names.MIN_TEMPO_BPM), names.MAX_TEMPO_BPM
        )
        self.apply_change(tempo_bpm=tempo)

    def action_dynamics(self, direction: int) -> None:
        now = self._current("dynamics")
        if now is None:
            return
        i = min(max(DYNAMICS.index(now) + direction, 0), len(DYNAMICS) - 1)
        self.apply_change(dynamics=DYNAMICS[i])

    def _current(self, field: str):
        if self.writer is None:
            self.set_status("Nothing to change yet: generate a piece first.")
            return None
        return self.writer.value_at(field, max(1, min(self.writer.written + 1, self.writer.total)))

    def apply_change(self, **values) -> None:
        """Apply a change from the next bar: to the bars not yet written while writing, to
        the bars after the playhead once written."""
        from engine.errors import UserError

        if self.writer is None:
            self.set_status("Nothing to change yet: generate a piece first.")
            return
        words = ", ".join(
            f"part {v[0]} {v[1]}"
            if k == "instrument"
            else f"{k.replace('_bpm', '')} {v:g}"
            if isinstance(v, float)
            else f"{k} {v}"
            for k, v in values.items()
        )
        if self.busy and not self.writer.done:
            try:
                from engine.pipelines.compose import check_change

                for k, v in values.items():  # a bad value is refused here, not in the worker
                    part, value = v if k == "instrument" else (None, v)
                    check_change(1, k, value, part, self.writer.plan)
                self.controls_live.set(**values)
            except UserError as e:
                self._live_message(str(e))
                return
            bar = self.writer.written + 1
            self._log_change(f"{words} from bar {bar} (the next bar written)")
            return
        bar = self._next_bar()
        try:
            rewrite_from = self.writer.change(bar, **values)
        except UserError as e:
            self._live_message(str(e))
            return
        self._log_change(f"{words} from bar {bar}")
        self._dirty_since = time.monotonic()
        self._changed_from = bar
        if not self.writer.done:
            self._rewrite_rest(rewrite_from)
        else:
            self._changed_sound()

    def _next_bar(self) -> int:
        """The first bar not yet heard (1-based): the bar after the playhead's (bar 1 before
        playback starts)."""
        if self.player is None or not self.player.position_s:
            return 1
        return next_bar(self.writer.bar_seconds(), self.player.position_s, self.writer.total)

    def _live_message(self, text: str) -> None:
        self.query_one("#live-msg", Static).update(text)
        self.set_status(text, problem=True)
        self.announce(text)

    def _log_change(self, text: str) -> None:
        self.query_one("#live-msg", Static).update("")
        self._change_log = [text, *self._change_log][:6]
        self.query_one("#live-log", Static).update("\n".join(self._change_log))
        self.set_status(f"Change: {text}")
        self.announce(f"change: {text}")

    @work(thread=True, exclusive=True, group="make", exit_on_error=False)
    def _rewrite_rest(self, from_bar: int) -> None:
        """Write the bars from ``from_bar`` again (a creativity or density change)."""
        worker = get_current_worker()
        writer = self.writer
        self.post_message(WorkProgress("generate", "music", writer.written, writer.total))

        def on_bars(w):
            self.post_message(BarsWritten(w.score(), w.written, w.total, []))
            self.post_message(WorkProgress("generate", "music", w.written, w.total))

        comp = writer.run(
            controls=self.controls_live, on_bars=on_bars, should_stop=lambda: worker.is_cancelled
        )
        if comp is None:
            self.post_message(
                WorkFailed("generate", "cancelled; the changed piece was not kept", True)
            )
            return
        self.app.call_from_thread(self._changed_sound)
        self.post_message(WorkDone("rewrite", 1))

    def _changed_sound(self) -> None:
        """The written piece changed how it sounds: show it, re-render ahead, keep it later."""
        from symusic import Score

        midi = self.writer.midi_bytes()
        data = roll_data(Score.from_midi(midi))
        self.query_one(PianoRoll).data = data
        self.query_one(ParameterLanes).data = data
        self._dirty_since = time.monotonic()
        if self.live is not None and self.live.levels is not None:
            self.live.change(midi, self.writer.bar_seconds(), from_bar=self._changed_from - 1)

    def _save_changed(self) -> None:
        """Keep the changed version (a new piece, linked to the one it changes)."""
        self._dirty_since = None
        writer = self.writer
        if writer is None or not writer.done or self.piece is None:
            return
        formats = [f for f in self.query_one(GenerateControls).formats()]
        self._keep_changed(writer, formats, self.piece.get("id"))

    @work(thread=True, exclusive=False, group="keep-changed", exit_on_error=False)
    def _keep_changed(self, writer, formats, parent: str | None) -> None:
        comp = writer.composition()
        model = self.query_one(GenerateControls).model()
        if model:
            comp.request["model"] = comp.model_name = model
        self._save(comp, formats, len(self.variations), writer, parent=parent, changed=True)

    def finish_before_exit(self) -> list:
        """Cancel the writing, keep a changed version now; the workers to wait for."""
        self.workers.cancel_group(self, "make")
        if self._dirty_since is not None and self.writer is not None and self.writer.done:
            self._save_changed()
        return [
            w
            for w in self.workers
            if w.group in ("make", "keep", "keep-changed")
            and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
        ]

    # -- keeping --
    def _piece_id(self) -> str | None:
        if not self.piece or not self.piece.get("id"):
            self.set_status("Nothing kept yet: generate a piece first.")
            return None
        return self.piece["id"]

    def action_rate(self, stars: int) -> None:
        pid = self._piece_id()
        if pid:
            self._library_job("rate", pid, stars)

    def action_tag(self) -> None:
        self._ask("Tags for this piece (commas between them)", "tag")

    def action_note(self) -> None:
        self._ask("A note on this piece", "note")

    def action_collection(self) -> None:
        self._ask("Add to the collection named", "collection")

    def _ask(self, question: str, what: str) -> None:
        pid = self._piece_id()
        if not pid:
            return
        from tui.screens._modals import AskText

        def answered(text: str | None) -> None:
            if text is not None and text.strip():
                self._library_job(what, pid, text.strip())

        self.app.push_screen(AskText(question), answered)

    @work(thread=True, group="keep", exit_on_error=False)
    def _library_job(self, what: str, pid: str, value) -> None:
        from engine.library.store import Library

        lib = Library.open(self.app.library_path)
        try:
            if what == "rate":
                piece = lib.rate(pid, value)
                said = f"rated {value} of 5"
            elif what == "tag":
                piece = lib.tag(pid, [t.strip() for t in value.split(",") if t.strip()])
                said = f"tagged {', '.join(piece.tags)}"
            elif what == "note":
                piece = lib.set_note(pid, value)
                said = "note kept"
            else:
                lib.collection_add(value, [pid])
                piece = lib.get(pid)
                said = f"added to the collection {value}"
        except Exception as e:
            message = user_message(e)
            if message is None:
                raise
            self.app.call_from_thread(self.set_status, message, True)
            self.app.call_from_thread(self.app.show_error, message)
            return
        finally:
            lib.close()
        self.app.call_from_thread(self._kept_change, piece, said)

    def _kept_change(self, piece, said: str) -> None:
        if self.piece and self.piece.get("id") == piece.id:
            self.piece["rating"] = piece.rating
            self.piece["tags"] = list(piece.tags)
        self._show_keep()
        self.set_status(f"{piece.id}: {said}")
        self.announce(f"{piece.title}: {said}")

    def action_in_library(self) -> None:
        pid = self._piece_id()
        if not pid:
            return
        self.app.action_switch_screen("library")
        screen = self.app.screen
        show = getattr(screen, "show_piece", None)
        if show is not None:
            show(pid)

    def action_rewrite(self) -> None:
        pid = self._piece_id()
        if not pid or not (Path(self.piece["folder"]) / "music.mid").is_file():
            if pid:
                self.set_status("This piece has no MIDI file to rewrite (add mid to the formats).")
            return
        from tui.screens._modals import AskText

        def answered(text: str | None) -> None:
            if text is not None and text.strip():
                self._rewrite_bars(text.strip())

        bars = self.writer.total if self.writer else "N"
        self.app.push_screen(
            AskText(f"Bars to rewrite, keeping the rest (e.g. 3-4; the piece has 1-{bars})"),
            answered,
        )

    @work(thread=True, exclusive=True, group="make", exit_on_error=False)
    def _rewrite_bars(self, bars: str) -> None:
        """``disco-musica regenerate`` on the piece's MIDI (the CLI writes, records and keeps
        it; its sidecar replays it)."""
        import subprocess
        import sys

        source = Path(self.piece["folder"]) / "music.mid"
        out = unique_folder(self.app.output_root, f"{Path(self.piece['folder']).name}-bars-{bars}")
        out = out.with_suffix(".mid")
        cmd = [
            sys.executable,
            "-m",
            "engine.cli",
            "regenerate",
            str(source),
            "--bars",
            bars,
            "--out",
            str(out),
        ]
        if self.app.library_path is not None:
            cmd += ["--library", str(self.app.library_path)]
        self.post_message(WorkProgress("rewrite", f"rewriting bars {bars}", 0, None))
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            lines = [x for x in done.stderr.splitlines() if x.startswith("error:")]
            message = (
                lines[-1][7:] if lines else (done.stderr.strip().splitlines() or ["failed"])[-1]
            )
            self.post_message(WorkFailed("rewrite", message))
            return
        kept = re.search(r"kept in the library as (\w+)", done.stdout)

        midi = out.read_bytes()
        self.app.call_from_thread(self._rewritten, out, kept.group(1) if kept else None, midi)
        self.post_message(WorkDone("rewrite", 1))

    def _rewritten(self, out: Path, pid: str | None, midi: bytes) -> None:
        from symusic import Score

        data = roll_data(Score.from_midi(midi))
        self.query_one(PianoRoll).data = data
        self.query_one(ParameterLanes).data = data
        self.piece = {
            **self.piece,
            "id": pid,
            "folder": out.parent,
            "title": out.stem,
            "midi": midi,
        }
        self._show_keep()
        self.set_status(f"Rewritten: {out.name}, kept as {pid}")
        self.announce(f"bars rewritten; kept in the library as {pid}")

    # -- live panel --
    @on(Input.Submitted, "#live-tempo")
    def _live_tempo(self, event: Input.Submitted) -> None:
        self._live_number("tempo_bpm", event.value)

    @on(Input.Submitted, "#live-creativity")
    def _live_creativity(self, event: Input.Submitted) -> None:
        self._live_number("creativity", event.value)

    @on(Input.Submitted, "#live-density")
    def _live_density(self, event: Input.Submitted) -> None:
        self._live_number("density", event.value)

    def _live_number(self, field: str, text: str) -> None:
        try:
            value = float(text)
        except ValueError:
            self._live_message(f"{field.replace('_bpm', '')} must be a number, not {text!r}")
            return
        self.apply_change(**{field: value})

    @on(Select.Changed, "#live-dynamics")
    def _live_dynamics(self, event: Select.Changed) -> None:
        if event.value is not Select.BLANK and self.writer is not None:
            self.apply_change(dynamics=event.value)

    @on(Input.Submitted, "#live-instrument")
    def _live_instrument(self, event: Input.Submitted) -> None:
        part = self.query_one("#live-part", Select).value
        if part is Select.BLANK:
            self._live_message("choose the part first")
            return
        self.apply_change(instrument=(int(part), event.value.strip()))

    def commands(self):
        out = super().commands()
        out.append(
            ("Change: faster", "tempo +5 BPM from the next bar (>)", lambda: self.action_tempo(1))
        )
        out.append(
            ("Change: slower", "tempo -5 BPM from the next bar (<)", lambda: self.action_tempo(-1))
        )
        out.append(
            (
                "Change: louder",
                "dynamics up a step from the next bar",
                lambda: self.action_dynamics(1),
            )
        )
        out.append(
            (
                "Change: softer",
                "dynamics down a step from the next bar",
                lambda: self.action_dynamics(-1),
            )
        )
        return out


ENTRY = ScreenEntry(
    "make", "Make", "f2", 10, MakeScreen, "write a piece from words, hear it, change it, keep it"
)
