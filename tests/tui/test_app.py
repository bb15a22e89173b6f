"""The studio app as a whole: the screen registry, the first-run wizard, help, the command
palette, the settings dialog and what persists, the `studio` command's plug-in."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest
from textual.widgets import DataTable, Input

import tui.screens
from tui.app import STUDIO_THEMES, make_app
from tui.screens import registered
from tui.screens._help import bindings_table
from tui.settings import THEMES, Settings


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))


def _app(tmp_path, **kw):
    kw.setdefault("first_run", False)
    return make_app(
        library=tmp_path / "lib",
        output=tmp_path / "out",
        settings_file=tmp_path / "s.json",
        audio=False,
        **kw,
    )


def test_the_registry_finds_each_screen_and_a_new_file_adds_one(tmp_path, monkeypatch):
    assert [(e.name, e.key) for e in registered()] == [
        ("make", "f2"),
        ("library", "f3"),
        ("models", "f4"),
        ("data", "f5"),
        ("train", "f6"),
    ]
    # a later issue adds its screen by adding a file
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "stems.py").write_text(
        "from textual.widgets import Static\n"
        "from tui.screens import ScreenEntry\n"
        "from tui.screens._base import StudioScreen\n"
        "class StemsScreen(StudioScreen):\n"
        "    NAME = 'stems'\n"
        "    def compose_body(self):\n"
        "        yield Static('stems here', id='stems-body')\n"
        "ENTRY = ScreenEntry('stems', 'Stems', 'f7', 60, StemsScreen)\n"
    )
    monkeypatch.setattr(tui.screens, "__path__", [*tui.screens.__path__, str(extra)])
    monkeypatch.delitem(sys.modules, "tui.screens.stems", raising=False)
    names = [e.name for e in registered()]
    assert names == ["make", "library", "models", "data", "train", "stems"]

    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("f7")
            await pilot.pause()
            assert app.current_mode == "stems"
            assert str(app.screen.query_one("#stems-body").render()) == "stems here"
            assert "F7 Stems" in str(app.screen.query_one("ScreenTabs").render())

    asyncio.run(run())
    sys.modules.pop("tui.screens.stems", None)


def test_first_run_wizard_four_steps_remembered_and_its_prompt_is_made(tmp_path):
    async def run():
        app = _app(tmp_path, first_run=None)  # from the settings: never run → shown
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert type(app.screen).__name__ == "WizardScreen"
            await pilot.press("n")  # step 2: the ready prompts
            await pilot.pause()
            await pilot.press("down", "enter")  # the second ready prompt; on to step 3
            await pilot.pause()
            assert app.screen.step == 3
            assert str(tmp_path / "lib") in str(app.screen.query_one("#wizard-text").render())
            await pilot.press("n", "n")  # step 4, then start
            await pilot.pause()
            make = app.screen
            assert make.NAME == "make"
            end = time.monotonic() + 90
            while make.piece is None:
                assert time.monotonic() < end
                await pilot.pause(0.3)
            return make.query_one("#prompt", Input).value

    from tui.screens._wizard import READY_PROMPTS

    prompt = asyncio.run(run())
    assert prompt == READY_PROMPTS[1]
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["first_run_done"] is True and saved["last_prompts"][0] == prompt

    async def again():
        app = _app(tmp_path, first_run=None)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            return type(app.screen).__name__

    assert asyncio.run(again()) == "MakeScreen"  # remembered: not shown again


def test_the_wizard_can_be_skipped(tmp_path):
    async def run():
        app = _app(tmp_path, first_run=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()
            return type(app.screen).__name__, app.screen.piece

    assert asyncio.run(run()) == ("MakeScreen", None)
    assert json.loads((tmp_path / "s.json").read_text())["first_run_done"] is True


def test_help_lists_every_binding_of_every_screen(tmp_path):
    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("f1")
            await pilot.pause()
            table = app.screen.query_one(DataTable)
            shown = {tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)}
            return shown, bindings_table(app), app

    shown, rows, app = asyncio.run(run())
    assert shown == set(rows)
    whats = {what for _, _, what in rows}
    for needed in (
        "Generate",
        "Play / pause",
        "Rate 1-5",
        "Help",
        "Search",
        "Replay",
        "Download and convert",
        "Zoom in (time)",
        "Make screen",
        "Library screen",
    ):
        assert needed in whats, needed
    # every screen's described bindings are there
    for e in app.entries:
        for b in e.factory.BINDINGS:
            if getattr(b, "description", ""):
                assert b.description in whats, (e.name, b.description)


def test_the_palette_reaches_screens_and_actions(tmp_path):
    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            titles = [c.title for c in app.get_system_commands(app.screen)]
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"Go to Models")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await pilot.pause()
            return app.current_mode, titles

    mode, titles = asyncio.run(run())
    assert mode == "models"
    for t in (
        "Go to Make",
        "Go to Library",
        "Help: every key",
        "Settings",
        "Generate",
        "Play / pause",
        "Change: faster",
        "Quit",
    ):
        assert t in titles, t


def test_settings_persist_and_a_damaged_file_is_kept_aside(tmp_path):
    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("ctrl+t")  # next theme
            await pilot.pause()
            await pilot.press("f9")
            await pilot.pause()
            screen = app.screen
            screen.query_one("#set-density").value = "compact"
            screen.query_one("#set-palette").value = "classic"
            screen.query_one("#set-plain").value = True
            screen.query_one("#set-output", Input).value = str(tmp_path / "elsewhere")
            await pilot.pause()
            await pilot.click("#save")
            await pilot.pause()
            return app.theme, app.has_class("compact"), app.plain, app.output_root

    theme, compact, plain, output = asyncio.run(run())
    assert theme == THEMES[1] and compact and plain and output == tmp_path / "elsewhere"
    saved = Settings.load(tmp_path / "s.json")
    assert (saved.theme, saved.density, saved.palette, saved.plain, saved.output) == (
        THEMES[1],
        "compact",
        "classic",
        True,
        str(tmp_path / "elsewhere"),
    )

    (tmp_path / "s.json").write_text("{not json")
    damaged = Settings.load(tmp_path / "s.json")
    assert damaged.problem and damaged.theme == THEMES[0]
    damaged.theme = THEMES[2]
    damaged.save(tmp_path / "s.json")
    assert (tmp_path / "s.json.damaged").read_text() == "{not json"
    assert Settings.load(tmp_path / "s.json").theme == THEMES[2]


def test_settings_refuse_a_library_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")

    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("f9")
            await pilot.pause()
            app.screen.query_one("#set-library", Input).value = str(tmp_path / "afile")
            await pilot.click("#save")
            await pilot.pause()
            return type(app.screen).__name__, str(app.screen.query_one("#settings-msg").render())

    name, message = asyncio.run(run())
    assert name == "SettingsScreen" and "is a file, not a folder" in message
    assert not (tmp_path / "s.json").exists() or "afile" not in (tmp_path / "s.json").read_text()


def test_themes_are_the_settings_themes():
    assert tuple(t.name for t in STUDIO_THEMES) == THEMES


def test_the_studio_command_is_plugged_in_and_starts_without_mlx():
    import subprocess

    code = (
        "import sys; from engine.cli import build_parser; p = build_parser(); "
        "a = p.parse_args(['studio', '--no-audio']); "
        "from tui.app import make_app; make_app(); "
        "print(a.handler.__module__, 'mlx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["tui.command", "False"]


def test_every_file_the_studio_reads_is_installed_with_it():
    """A non-editable install carries only the package data pyproject.toml names: the theme
    (app.tcss) must be among it, or `disco-musica studio` cannot start once installed."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"].get("tui", [])
    files = [
        p.relative_to(root / "tui").as_posix()
        for p in (root / "tui").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    ]
    assert "app.tcss" in files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert not missing, f"not installed: {missing}"
