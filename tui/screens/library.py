"""The Library screen (being built)."""

from __future__ import annotations

from textual.widgets import Static

from tui.screens import ScreenEntry
from tui.screens._base import StudioScreen


class LibraryScreen(StudioScreen):
    NAME = "library"

    def compose_body(self):
        yield Static("Library")


ENTRY = ScreenEntry("library", "Library", "f3", 20, LibraryScreen)
