"""Progress on the terminal: rich displays that the commands pass to the pipelines as callbacks.

Each display is a progress callback: it takes the `engine.progress.Progress` events the
pipelines report and draws them (the pipelines never import rich).
"""

from __future__ import annotations

import contextlib
import sys

from engine.progress import Progress as Event


def make_console():
    from rich.console import Console

    return Console(stderr=True)


def status_spinner(text: str):
    """A spinner while a short step runs (only on a terminal)."""

    console = make_console()
    return console.status(text) if console.is_terminal else contextlib.nullcontext()


class RichDisplay:
    """Base of the progress displays: a rich Progress (terminal only), stopped on exit."""

    progress = None

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


class TokenProgress(RichDisplay):
    """Spinner with the count of tokens written so far.

    The model stops when the music is complete, usually well before its context window, so
    a bar towards the window size would mislead; the count shows that work is going on.
    The display starts with the first token, so errors found earlier print alone.
    """

    def __init__(self, label: str):
        self.label = label
        self.progress = None
        self.task = None

    def __enter__(self) -> TokenProgress:
        return self

    def __call__(self, event: Event) -> None:
        tokens, window = event.done, event.total
        if self.progress is None:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            console = make_console()
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed} tokens (window {task.total})"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                disable=not console.is_terminal,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=window)
        self.progress.update(self.task, completed=tokens)


class FileProgress(RichDisplay):
    """A bar over corpus files; on a non-terminal, one plain line per tenth of the work."""

    def __init__(self, label: str):
        self.label = label
        self.progress = None
        self.task = None
        self.console = make_console()
        self.last_tenth = -1

    def __enter__(self) -> FileProgress:
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[current]}"),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=None, current="")
        return self

    def __call__(self, event: Event) -> None:
        done, total, current = event.done, event.total, event.message
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total, current=current)
            return
        tenth = done * 10 // max(total or 0, 1)
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            print(f"{self.label}: {done}/{total} files", file=sys.stderr, flush=True)


class Spinner(RichDisplay):
    """A spinner with elapsed time under lines printed by a long step (only on a terminal)."""

    def __init__(self, label: str):
        self.label = label
        self.progress = None

    def __enter__(self) -> Spinner:
        console = make_console()
        if console.is_terminal:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=None)
        return self

    def update(self, label: str) -> None:
        """Change the text next to the spinner (no-op off a terminal)."""
        if self.progress is not None:
            self.progress.update(self.task, description=label)

    def __call__(self, event: Event) -> None:
        """Show the event next to the label: ``Evaluating: harmonization 3/20``."""
        self.update(f"{self.label}: {event.stage} {event.done}/{event.total}")


class StageProgress:
    """A progress bar per stage (writing music bar by bar, notation, audio)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.progress = None
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> StageProgress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = make_console()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.progress.start()
        return self

    def __call__(self, event: Event, prefix: str | None = None) -> None:
        stage, done, total = event.stage, event.done, event.total
        name = {"audio": "Rendering audio", "notation": "Writing notation"}.get(
            stage, f"Writing {stage} (bars)"
        )
        prefix = self.prefix if prefix is None else prefix
        if prefix:
            name = f"{prefix}: {name}"
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total)
        self.progress.update(self.tasks[name], completed=done, total=total)

    def piece(self, prefix: str):
        """The progress callback of one of several pieces written at once."""
        return lambda event: self(event, prefix)

    def __exit__(self, *exc) -> None:
        self.progress.stop()


class BarProgress(RichDisplay):
    """A bar over one stage's events on a terminal; nothing otherwise. ``kind``: "percent"
    (the 2-second windows a transcription reads) or "bytes" (a download: size, speed and
    time left)."""

    def __init__(self, label: str, kind: str = "percent"):
        self.label = label
        self.kind = kind
        self.progress = None
        self.task = None

    def __enter__(self) -> BarProgress:
        console = make_console()
        if console.is_terminal:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            if self.kind == "bytes":
                columns = (DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
            else:
                columns = (TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn())
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                *columns,
                console=console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=None)
        return self

    def __call__(self, event: Event) -> None:
        """One event: ``done`` of ``total`` (None: not known yet)."""
        if self.progress is not None:
            self.progress.update(self.task, completed=event.done, total=event.total)
