"""The metadata form of the Data screen: one line per field of `engine.data.store.META_FIELDS`,
each checked as it is typed with `engine.data.store.check_meta` (a one-line message under a
bad value), for one item or several at once.

`MetaForm.load` fills it from the items; `MetaForm.changes` gives only the fields the user
changed (an emptied field removes it), or raises `MetaProblem` naming the first bad field.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Static

# What each field takes (the placeholder of its input).
HINTS = {
    "title": "the piece's title",
    "genre": "e.g. funk",
    "mood": "e.g. calm",
    "instruments": "comma-separated: piano, strings",
    "tempo": "beats per minute, 10 to 400",
    "key": "e.g. G major",
    "meter": "e.g. 3/4",
    "artists": "comma-separated: who made or plays it",
    "influences": "comma-separated: artists it draws on",
    "tags": "comma-separated: live, demo",
    "caption": "one line that describes the music",
}
ESTIMATE_MARK = "~"


def meta_text(value) -> str:
    """A metadata value as one line of text (lists comma-separated, tempo without ``.0``)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def shown_value(item, field: str) -> str:
    """A field of an item as a table shows it: estimates start with ``~``."""
    value = item.meta.get(field)
    if value is None or value == []:
        return ""
    mark = ESTIMATE_MARK if item.meta_from.get(field) == "estimate" else ""
    return mark + meta_text(value)


class MetaProblem(ValueError):
    """A value of the form that cannot be saved: ``field`` and the one-line reason."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class MetaForm(VerticalScroll):
    """Inputs for every metadata field of the items being edited."""

    DEFAULT_CSS = """
    MetaForm { height: 1fr; }
    MetaForm .meta-row { height: 3; }
    MetaForm .meta-label { width: 14; padding: 1 1 0 0; text-align: right; }
    MetaForm .meta-row Input { width: 1fr; }
    MetaForm .meta-from { width: 16; padding: 1 0 0 1; color: $text-muted; }
    MetaForm .meta-msg { height: 1; color: $error; padding-left: 15; display: none; }
    MetaForm .meta-msg.shown { display: block; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.initial: dict[str, str] = {}
        self.count = 0

    @property
    def fields(self) -> tuple[str, ...]:
        from engine.data.store import META_FIELDS

        return META_FIELDS

    def compose(self) -> ComposeResult:
        for f in self.fields:
            with Horizontal(classes="meta-row"):
                yield Label(f, classes="meta-label", id=f"ml-{f}")
                yield Input(placeholder=HINTS.get(f, ""), id=f"m-{f}", disabled=True)
                yield Static("", classes="meta-from", id=f"mf-{f}")
            yield Static("", classes="meta-msg", id=f"m-{f}-msg")

    def field_input(self, field: str) -> Input:
        return self.query_one(f"#m-{field}", Input)

    def load(self, items: list) -> None:
        """Show the values of ``items`` (a value they share; blank where they differ)."""
        self.count = len(items)
        self.initial = {}
        for f in self.fields:
            texts = {meta_text(i.meta.get(f)) for i in items}
            sources = {i.meta_from.get(f) for i in items if f in i.meta}
            differs = len(texts) > 1
            text = "" if differs or not texts else next(iter(texts))
            self.initial[f] = text
            box = self.field_input(f)
            box.disabled = not items
            box.value = text
            box.placeholder = (
                f"differs between the {len(items)} items; type a value to set it on all"
                if differs
                else HINTS.get(f, "")
            )
            if differs:
                where = "(differs)"
            elif len(sources) == 1 and text:
                source = next(iter(sources))
                where = "estimated" if source == "estimate" else f"from {source}"
            else:
                where = ""
            self.query_one(f"#mf-{f}", Static).update(where)
            self._show_problem(f, None)

    def problem(self, field: str) -> str | None:
        """Why the value typed for ``field`` cannot be kept (one line), or None."""
        from engine.data.store import DatasetError, check_meta

        text = self.field_input(field).value.strip()
        try:
            check_meta(field, text or None)
        except DatasetError as e:
            return str(e)
        return None

    def changes(self) -> dict:
        """The fields the user changed → their checked values (None: remove the field).
        Raises `MetaProblem` for the first bad value (and shows every message)."""
        from engine.data.store import check_meta

        out: dict = {}
        first: MetaProblem | None = None
        for f in self.fields:
            message = self.problem(f)
            self._show_problem(f, message)
            text = self.field_input(f).value.strip()
            if message is not None:
                first = first or MetaProblem(f, message)
                continue
            if text == self.initial.get(f, "").strip():
                continue
            out[f] = check_meta(f, text or None)
        if first is not None:
            raise first
        return out

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        field = (event.input.id or "")[2:]
        if field in self.fields and not event.input.disabled:
            self._show_problem(field, self.problem(field))

    def on_descendant_focus(self, event) -> None:
        """Say which field has the focus, what it takes and where its value came from (for
        screen readers: plain mode shows it)."""
        field = (event.widget.id or "")[2:]
        if field not in self.fields or not isinstance(event.widget, Input):
            return
        where = str(self.query_one(f"#mf-{field}", Static).render())
        said = f"{field}: {HINTS.get(field, '')}" + (f", {where}" if where else "")
        problem = self.problem(field)
        self.app.announce(said + (f"; {problem}" if problem else ""))

    def _show_problem(self, field: str, message: str | None) -> None:
        msg = self.query_one(f"#m-{field}-msg", Static)
        msg.update(message or "")
        msg.set_class(bool(message), "shown")

    def messages(self) -> dict[str, str]:
        """The messages shown now, by field (what a person reads under the inputs)."""
        out = {}
        for f in self.fields:
            msg = self.query_one(f"#m-{f}-msg", Static)
            if msg.has_class("shown"):
                out[f] = str(msg.render())
        return out
