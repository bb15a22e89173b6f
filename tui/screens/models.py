"""The Models screen (being built)."""

from __future__ import annotations

from textual.widgets import Static

from tui.screens import ScreenEntry
from tui.screens._base import StudioScreen


class ModelsScreen(StudioScreen):
    NAME = "models"

    def compose_body(self):
        yield Static("Models")


ENTRY = ScreenEntry("models", "Models", "f4", 30, ModelsScreen)
