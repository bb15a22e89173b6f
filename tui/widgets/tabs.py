"""The tabs line: every screen with its key, the current one marked (and said in words)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class ScreenTabs(Static):
    """``F2 Make │ F3 Library │ F4 Models`` with the current screen in reverse video and
    bracketed (so it is seen without colour, too)."""

    DEFAULT_CSS = """
    ScreenTabs {
        dock: top;
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """

    def __init__(self, current: str, **kwargs):
        super().__init__(**kwargs)
        self.current = current

    def on_mount(self) -> None:
        self.update(self.render_tabs())

    def render_tabs(self) -> Text:
        text = Text(" Disco-Musica  ", style="bold")
        for i, e in enumerate(self.app.entries):
            if i:
                text.append(" │ ")
            label = f"{e.key.upper()} {e.title}"
            if e.name == self.current:
                text.append(f"[{label}]", style="bold reverse")
            else:
                text.append(f" {label} ")
        return text
