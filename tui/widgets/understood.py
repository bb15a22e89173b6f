"""What the prompt was read as: the words understood, the words ignored (with "did you
mean"), and the one-line plan, as ``disco-musica generate`` prints them before it starts.

`Understanding` reads the prompt with `engine.pipelines.compose.plan` in a thread worker,
``DEBOUNCE_S`` after the typing stops; a result that a newer prompt has overtaken is dropped.
A problem (a `engine.errors.UserError` from the plan) is shown as one line, never raised.
"""

from __future__ import annotations

from rich.table import Table
from textual import work
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import get_current_worker

from tui.messages import Understood

DEBOUNCE_S = 0.3


def plan_line(p) -> str:
    """The one-line plan: ``making 8 bars (30 s) of chorale, G major, 4/4, 64 BPM for ...``
    (``p``: an `engine.pipelines.compose.Plan`)."""
    parts = ", ".join(q.name for q in p.parts)
    key = f"{p.key or 'any'} {p.mode or ''}".strip()
    return (
        f"making {p.bars} bars ({p.seconds:.0f} s) of {p.style or 'any style'}, {key}, "
        f"{p.meter}, {p.tempo_bpm:g} BPM for {parts}"
    )


def table_rows(understood: list[dict]) -> list[tuple[str, str, str]]:
    """(words, means, value) rows; what a mood implies ("64 (default for tranquility)")
    goes on one row of its words, so that a calm prompt does not fill the screen."""
    rows: list[tuple[str, str, str]] = []
    implied: dict[str, list[str]] = {}
    for u in understood:
        value = u["value"]
        if value.endswith(")") and " (default for " in value:
            short, _, source = value[:-1].partition(" (default for ")
            key = f"{u['phrase']}\0{source}"
            if key not in implied:
                implied[key] = []
                rows.append((u["phrase"], "implies", key))
            implied[key].append(f"{u['attribute'].removesuffix('_bpm')} {short}")
        else:
            rows.append((u["phrase"], u["attribute"], value))
    return [(w, m, ", ".join(implied[v]) if v in implied else v) for w, m, v in rows]


def ignored_line(ignored: list[dict]) -> str:
    """``ignored: blah (did you mean bach?), ...`` or "" when no word was left out."""
    words = []
    for i in ignored:
        near = f" (did you mean {', '.join(i['suggestions'])}?)" if i["suggestions"] else ""
        words.append(f"{i['word']}{near}")
    return f"ignored: {'; '.join(words)}" if words else ""


def _words(prompt: str) -> dict:
    """The words understood and ignored, when the plan itself was refused."""
    from dataclasses import asdict

    from engine.pipelines.prompt import PromptError, parse_prompt

    try:
        parsed = parse_prompt(prompt or "")
    except PromptError:
        return {"understood": [], "ignored": []}
    return {
        "understood": [asdict(u) for u in parsed.understood],
        "ignored": [asdict(i) for i in parsed.ignored],
    }


STARTUP_DELAY_S = 0.5


class Understanding(Vertical):
    """The table "words → means → value", the ignored words and the plan, for a prompt and
    the controls' options (the keyword options of `plan`). Posts `Understood` after each
    reading; `summary` says the same in plain text lines."""

    DEFAULT_CSS = """
    Understanding {
        height: auto;
    }
    Understanding > #understood-table { height: auto; }
    Understanding > #understood-ignored { height: auto; color: $warning; }
    Understanding > #understood-plan { height: auto; text-style: bold; }
    Understanding > #understood-plan.problem { color: $error; text-style: none; }
    """

    def __init__(
        self,
        prompt: str = "",
        options: dict | None = None,
        *,
        debounce_s: float = DEBOUNCE_S,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.prompt = prompt
        self.options: dict = dict(options or {})
        self.debounce_s = debounce_s
        self.plan_summary: dict | None = None
        self.error: str | None = None
        self.understood: list[dict] = []
        self.ignored: list[dict] = []
        self._serial = 0  # the reading whose result may be shown; older ones are dropped
        self._timer: Timer | None = None

    def compose(self):
        yield Static("", id="understood-table")
        yield Static("", id="understood-ignored")
        yield Static("reading the prompt...", id="understood-plan")

    def on_mount(self) -> None:
        # also loads the engine's vocabulary off the UI thread, after the first frames
        self._timer = self.set_timer(STARTUP_DELAY_S, self._read_now)

    # -- what to read --
    def set_prompt(self, prompt: str) -> None:
        """Read ``prompt`` once the typing has stopped for ``debounce_s``."""
        if prompt != self.prompt:
            self.prompt = prompt
            self._schedule()

    def set_options(self, options: dict) -> None:
        """Read the prompt again with these options (the controls' `options()`)."""
        options = dict(options)
        if options != self.options:
            self.options = options
            self._schedule()

    @property
    def pending(self) -> bool:
        """True while a reading is scheduled or running."""
        return self._timer is not None or any(
            w.group == "understanding" and not w.is_finished for w in self.workers
        )

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._serial += 1  # a result on its way is now stale
        self._timer = self.set_timer(self.debounce_s, self._read_now)

    def _read_now(self) -> None:
        self._timer = None
        self._serial += 1
        self._read(self.prompt, dict(self.options), self._serial)

    @work(thread=True, exclusive=True, group="understanding", exit_on_error=False)
    def _read(self, prompt: str, options: dict, serial: int) -> None:
        from engine.errors import UserError
        from engine.pipelines.compose import plan

        try:
            p, parsed = plan(prompt, **options)
        except UserError as e:
            summary, parsed, error = None, _words(prompt), (str(e).splitlines() or ["?"])[0]
        else:
            summary = {**p.to_dict(), "line": plan_line(p), **parsed}
            error = None
        if get_current_worker().is_cancelled:
            return
        self.app.call_from_thread(self._show, serial, summary, parsed, error)

    # -- showing it --
    def _show(self, serial: int, summary: dict | None, parsed: dict, error) -> None:
        if serial != self._serial:
            return  # a newer prompt or option is being read
        self.plan_summary, self.error = summary, error
        self.understood, self.ignored = parsed["understood"], parsed["ignored"]
        table = self.query_one("#understood-table", Static)
        if self.understood:
            t = Table(box=None, pad_edge=False, show_edge=False, expand=False)
            for col in ("words", "means", "value"):
                t.add_column(col, style="bold" if col == "value" else None)
            for phrase, means, value in table_rows(self.understood):
                t.add_row(phrase, means, value)
            table.update(t)
        elif not self.prompt.strip():
            table.update("empty prompt: the model chooses style, key and the rest")
        else:
            table.update("no words understood")
        self.query_one("#understood-ignored", Static).update(ignored_line(self.ignored))
        line = self.query_one("#understood-plan", Static)
        line.set_class(error is not None, "problem")
        line.update(f"problem: {error}" if error is not None else summary["line"])
        self.post_message(Understood(summary, error))

    def summary(self) -> str:
        """The reading as plain text lines (plain mode, screen readers)."""
        lines = [
            f"understood: {u['phrase']} means {u['attribute']} {u['value']}"
            for u in self.understood
        ]
        if self.ignored:
            lines.append(ignored_line(self.ignored))
        if self.error is not None:
            lines.append(f"problem: {self.error}")
        elif self.plan_summary is not None:
            lines.append(self.plan_summary["line"])
        return "\n".join(lines)
