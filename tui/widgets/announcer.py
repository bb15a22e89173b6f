"""The announcer: state changes said as text lines (plain mode, for screen readers)."""

from __future__ import annotations

from textual.widgets import Log


class Announcer(Log):
    """The last state changes, one line each; shown in plain mode only."""

    DEFAULT_CSS = """
    Announcer {
        dock: bottom;
        height: 4;
        border-top: solid $secondary;
        display: none;
    }
    """  # shown by app.tcss in plain mode (DEFAULT_CSS is scoped to the widget)

    def __init__(self, **kwargs):
        super().__init__(max_lines=200, auto_scroll=True, **kwargs)

    def on_mount(self) -> None:
        # what was said just before this screen existed (its own "X screen", say)
        for text in getattr(self.app, "announcements", [])[-3:]:
            self.write_line(text)

    def say(self, text: str) -> None:
        self.write_line(text)
