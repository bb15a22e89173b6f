"""Helpers for the studio's workers: engine calls made in threads, kept in the library.

Nothing here touches a widget; workers call these and post `tui.messages` to the screens.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.errors import UserError, one_line

# The library's publish hook is process-wide: one keeping block at a time, so that a piece
# saved by one worker is not also registered by another's hook.
_KEEPING = threading.Lock()


@contextlib.contextmanager
def keeping(library: str | Path | None) -> Iterator[list]:
    """Keep every piece saved in the block in ``library`` (one block at a time)."""
    from engine.library.store import keeping as engine_keeping

    with _KEEPING, engine_keeping(library) as kept:
        yield kept


def user_message(error: BaseException) -> str | None:
    """The one line to show for a problem the user can act on, else None (a bug)."""
    if isinstance(error, UserError | OSError):
        return one_line(error)
    return None


class TimeLeft:
    """Estimates the seconds left of a job from its progress (a straight line since start)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.start = clock()

    def __call__(self, done: int, total: int | None) -> float | None:
        if not total or done <= 0:
            return None
        elapsed = self.clock() - self.start
        return max(0.0, elapsed * (total - done) / done)
