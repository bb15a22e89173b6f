"""What every screen of the studio shares: the tabs line, the footer of keys, the
announcer of plain mode, and the `commands` hook of the command palette."""

from __future__ import annotations

from collections.abc import Callable

from textual.screen import Screen

from tui.widgets.announcer import Announcer
from tui.widgets.footer import KeysFooter
from tui.widgets.tabs import ScreenTabs


class StudioScreen(Screen):
    """A screen of the studio. Subclasses set ``NAME`` (their registry name) and compose
    their body in `compose_body`."""

    NAME = ""
    HELP_WIDGETS: tuple = ()

    def compose(self):
        yield ScreenTabs(self.NAME)
        yield from self.compose_body()
        yield Announcer()
        yield KeysFooter()

    def compose_body(self):
        return iter(())

    def commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        """(title, help, callback) of this screen's actions for the command palette: by
        default every binding of the screen that has a description."""
        out = []
        for b in self.BINDINGS:
            if isinstance(b, tuple):
                continue
            if b.description:
                out.append((b.description, f"key {b.key}", lambda a=b.action: self.run_action(a)))
        return out

    def announce(self, text: str) -> None:
        self.app.announce(text)
