"""The Make screen (being built)."""

from __future__ import annotations

from textual.widgets import Static

from tui.screens import ScreenEntry
from tui.screens._base import StudioScreen


class MakeScreen(StudioScreen):
    NAME = "make"

    def compose_body(self):
        yield Static("Make")


ENTRY = ScreenEntry("make", "Make", "f2", 10, MakeScreen)
