"""The CLI's progress displays draw `engine.progress.Progress` events with the texts they
always had; `ProgressLog` collects the events for tests."""

from __future__ import annotations

import dataclasses
import io

import pytest
from rich.console import Console

from engine.cli import progress as ui
from engine.progress import Progress, ProgressLog


@pytest.fixture
def terminal(monkeypatch):
    """The displays draw on a (fake) terminal."""
    monkeypatch.setattr(
        ui, "make_console", lambda: Console(file=io.StringIO(), force_terminal=True, width=100)
    )


def descriptions(display) -> list[str]:
    return [t.description for t in display.progress.tasks]


def test_the_event_is_small_and_frozen():
    e = Progress("music", 3, 8)
    assert (e.stage, e.done, e.total, e.message) == ("music", 3, 8, "")
    assert e.fraction == 3 / 8 and Progress("download", 5, None).fraction is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.done = 4


def test_the_log_collects_events_and_is_true_while_empty():
    log = ProgressLog()
    assert log  # pipelines test `if progress:` before their first report
    log(Progress("analysis", 0, 1))
    log(Progress("bass", 4, 8))
    log(Progress("analysis", 1, 1))
    assert log.stages() == ["analysis", "bass"]
    assert log.of("analysis") == [Progress("analysis", 0, 1), Progress("analysis", 1, 1)]
    with pytest.raises(TypeError, match="Progress event"):
        log(("music", 1, 2))


def test_stage_progress_names_its_bars(terminal):
    with ui.StageProgress("") as prog:
        prog(Progress("music", 2, 8))
        prog(Progress("music", 8, 8))
        prog(Progress("notation", 0, 1))
        prog(Progress("audio", 1, 2))
        prog.piece("Piece 2/3")(Progress("music", 1, 4))
        assert descriptions(prog) == [
            "Writing music (bars)",
            "Writing notation",
            "Rendering audio",
            "Piece 2/3: Writing music (bars)",
        ]
        music = prog.progress.tasks[0]
        assert (music.completed, music.total) == (8, 8)
    with ui.StageProgress("Replay") as prog:
        prog(Progress("audio", 0, 3))
        assert descriptions(prog) == ["Replay: Rendering audio"]


def test_token_progress_counts_tokens_of_the_window(terminal):
    with ui.TokenProgress("Generating") as prog:
        prog(Progress("tokens", 40, 1024))
        prog(Progress("tokens", 90, 1024))
        task = prog.progress.tasks[0]
        assert (task.description, task.completed, task.total) == ("Generating", 90, 1024)
        assert "90 tokens (window 1024)" in prog.progress.columns[2].render(task).plain


def test_spinner_shows_the_stage_and_count(terminal):
    with ui.Spinner("Evaluating") as spinner:
        spinner(Progress("harmonization", 3, 20))
        assert descriptions(spinner) == ["Evaluating: harmonization 3/20"]


def test_file_progress_off_a_terminal_prints_a_line_a_tenth(capsys):
    with ui.FileProgress("Building corpus") as prog:
        for n in range(1, 21):
            prog(Progress("files", n, 20, f"bach/piece-{n}"))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "Building corpus: 1/20 files"
    assert lines[-1] == "Building corpus: 20/20 files"
    assert len(lines) == 11  # 0/10 .. 10/10


def test_file_progress_on_a_terminal_shows_the_piece(terminal):
    with ui.FileProgress("Building corpus") as prog:
        prog(Progress("files", 3, 10, "bach/bwv66.6"))
        task = prog.progress.tasks[0]
        assert (task.completed, task.total, task.fields["current"]) == (3, 10, "bach/bwv66.6")


@pytest.mark.parametrize(
    "kind, column", [("percent", "TimeElapsedColumn"), ("bytes", "DownloadColumn")]
)
def test_bar_progress_follows_done_and_total(terminal, kind, column):
    with ui.BarProgress("Transcribing a.wav", kind=kind) as bar:
        bar(Progress("windows", 1, 4))
        bar(Progress("windows", 3, 4))
        (task,) = bar.progress.tasks
        assert (task.description, task.completed, task.total) == ("Transcribing a.wav", 3, 4)
        assert column in {type(c).__name__ for c in bar.progress.columns}
    assert not bar.progress.live.is_started


def test_bar_progress_draws_nothing_off_a_terminal(monkeypatch):
    monkeypatch.setattr(ui, "make_console", lambda: Console(file=io.StringIO()))
    with ui.BarProgress("Downloading", kind="bytes") as bar:
        bar(Progress("download", 10, None))
    assert bar.progress is None
