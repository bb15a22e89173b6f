"""Messages the studio's workers post to its widgets (Textual messages, as dataclasses).

Workers run engine calls in threads; they never touch widgets. They post one of these, and
the screen's handler (``on_<name>``) updates what is shown on the app's thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass
class WorkProgress(Message):
    """One `engine.progress.Progress` event of a job (``job`` names it: "generate", ...)."""

    job: str
    stage: str
    done: int
    total: int | None
    message: str = ""
    seconds_left: float | None = None


@dataclass
class BarsWritten(Message):
    """The piece so far: ``score`` (a symusic Score) with ``bars`` of ``total`` written."""

    score: Any
    bars: int
    total: int
    changes: list = field(default_factory=list)


@dataclass
class WorkDone(Message):
    """A job finished; ``result`` is what it returned."""

    job: str
    result: Any = None


@dataclass
class WorkFailed(Message):
    """A job stopped with a problem the user can act on (one line), or was cancelled."""

    job: str
    error: str
    cancelled: bool = False


@dataclass
class Announce(Message):
    """A state change said in words (shown in plain mode, for screen readers)."""

    text: str


@dataclass
class PieceKept(Message):
    """A piece went into the library as ``piece_id`` (its folder: ``folder``)."""

    piece_id: str
    folder: str
    title: str = ""


@dataclass
class PlaybackState(Message):
    """The player's state: ``position_s`` of ``length_s``, playing or not."""

    playing: bool
    position_s: float
    length_s: float
    loop: bool = False


@dataclass
class Understood(Message):
    """How the prompt and the controls were read (`tui.widgets.understood.Understanding`):
    ``plan_summary`` is the plan as a dict (``Plan.to_dict()`` with ``"line"``, the one-line
    plan, ``"understood"`` and ``"ignored"``), or None when ``error`` (one line) says why
    there is no plan."""

    plan_summary: dict | None
    error: str | None = None


@dataclass
class ControlsChanged(Message):
    """The generate controls changed and all of them are valid: ``options`` are the keyword
    options of `engine.pipelines.compose.plan` (`tui.widgets.controls.GenerateControls`)."""

    options: dict
