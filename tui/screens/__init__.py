"""The studio's screens and their registry.

Each module here that defines ``ENTRY = ScreenEntry(...)`` is one screen of the app, found
when the app starts (`registered`): adding a screen (Data, Train…) is adding a file. The app
makes each a Textual mode, binds its key and lists it in the command palette.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from textual.screen import Screen


@dataclass(frozen=True)
class ScreenEntry:
    """One screen of the studio."""

    name: str
    """The mode's name (``"make"``), also the screen's id."""
    title: str
    """What the tabs and the palette show (``"Make"``)."""
    key: str
    """The key that opens it from anywhere (``"f2"``)."""
    order: int
    """Position in the tabs (lowest first)."""
    factory: Callable[[], Screen]
    """Makes the screen (called once, when it is first shown)."""
    description: str = ""


def registered() -> list[ScreenEntry]:
    """Every screen of this package, in tab order (modules without ``ENTRY`` are helpers)."""
    entries = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        entry = getattr(module, "ENTRY", None)
        if isinstance(entry, ScreenEntry):
            entries.append(entry)
    entries.sort(key=lambda e: (e.order, e.name))
    names = [e.name for e in entries]
    keys = [e.key for e in entries]
    if len(set(names)) != len(names) or len(set(keys)) != len(keys):
        raise RuntimeError(f"two screens share a name or key: {names} {keys}")
    return entries
