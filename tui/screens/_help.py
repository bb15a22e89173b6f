"""The help screen: every key binding of the app and of each screen (F1)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static


def bindings_table(app) -> list[tuple[str, str, str]]:
    """(where, key, what) for every binding with a description: the app's, then each
    screen's, then the widgets' the screens declare in ``HELP_WIDGETS``."""
    rows: list[tuple[str, str, str]] = []
    seen = set()

    def add(where: str, bindings) -> None:
        for b in bindings:
            if isinstance(b, tuple):
                b = Binding(*b)
            if not b.description:
                continue
            for key in b.key.split(","):
                item = (where, _key_name(key.strip()), b.description)
                if item not in seen:
                    seen.add(item)
                    rows.append(item)

    add("Everywhere", type(app).BINDINGS)
    for e in app.entries:
        add("Everywhere", [Binding(e.key, "", f"{e.title} screen")])
    for e in app.entries:
        cls = _screen_class(e)
        if cls is None:
            continue
        add(e.title, getattr(cls, "BINDINGS", []))
        for widget in getattr(cls, "HELP_WIDGETS", ()):
            add(f"{e.title}: {getattr(widget, 'HELP_NAME', widget.__name__)}", widget.BINDINGS)
    return rows


def _screen_class(entry):
    factory = entry.factory
    return factory if isinstance(factory, type) else getattr(factory, "screen_class", None)


def _key_name(key: str) -> str:
    """How a key is written for people: ``Ctrl+G``, ``F2``, ``<``, ``Esc``, ``Space``."""
    import re

    from textual.keys import format_key

    modifiers = {"ctrl": "Ctrl", "shift": "Shift", "alt": "Alt"}
    special = {"escape": "Esc", "space": "Space", "enter": "Enter", "tab": "Tab"}
    *mods, base = key.split("+")
    if re.fullmatch(r"f\d{1,2}", base):
        name = base.upper()
    elif base in special:
        name = special[base]
    else:
        name = format_key(base)
        name = name.upper() if mods and len(name) == 1 else name
    return "+".join([*(modifiers.get(m, m) for m in mods), name])


class HelpScreen(ModalScreen[None]):
    """Every binding, in a table; Escape or F1 closes it."""

    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close help")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog help"):
            yield Label("Keys of the studio", classes="dialog-title")
            yield Static(
                "Everything works from the keyboard. Tab moves between controls; the focused "
                "one is outlined. Ctrl+P finds any action by name.",
                classes="hint",
            )
            yield DataTable(id="keys", zebra_stripes=True, cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("where", "key", "what it does")
        for row in bindings_table(self.app):
            table.add_row(*row)
        table.focus()
        self.app.announce("help: every key binding, Escape closes")
