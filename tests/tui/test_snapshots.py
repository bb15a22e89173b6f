"""Snapshots of every screen of the studio (pytest-textual-snapshot), at 120×40 and 80×24, in
the default theme and in high contrast; and docs/studio.md lists every key of the help screen.

Each app gets a temporary ``DISCO_MUSICA_HOME`` (settings, models home), library and output
folder, no audio device, and reduced motion (the indeterminate progress bar stands still).
What would vary between runs is made steady before the picture: the Inputs' cursor stops
blinking, the prompt's reading has finished, and the one timing on screen ("Done in 8.9 s")
is checked, then written as 0.0 s.

    pytest tests/tui/test_snapshots.py                    # compare
    pytest tests/tui/test_snapshots.py --snapshot-update  # accept new pictures (look first)
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from rich.markdown import Markdown
from textual.widgets import Input, OptionList, Static

from tui.app import make_app
from tui.settings import Settings

SIZES = {"120x40": (120, 40), "80x24": (80, 24)}
THEMES = ("disco-dark", "disco-high-contrast")
# The default run shows each screen at both sizes, each in one theme; the slow run the other
# two (update them with `pytest tests/tui/test_snapshots.py -m "slow or not slow"
# --snapshot-update`; on the default run alone it would delete the other two looks' files).
DEFAULT_LOOKS = {("120x40", "disco-dark"), ("80x24", "disco-high-contrast")}
PARAMS = [
    pytest.param(
        size,
        theme,
        id=f"{size}-{theme}",
        marks=[] if (size, theme) in DEFAULT_LOOKS else [pytest.mark.slow],
    )
    for size in SIZES
    for theme in THEMES
]
PROMPT = "a calm chorale in G major for choir, 4 bars"
SEED = "7"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "studio.md"


@pytest.fixture
def studio(tmp_path, monkeypatch):
    """``studio(theme, first_run=False, library=None)``: the app over empty temporary
    folders (nothing of the user's is read)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(home))
    monkeypatch.setenv("DISCO_MUSICA_REDUCED_MOTION", "1")
    for name in ("DISCO_MUSICA_PLAIN", "DISCO_MUSICA_LIBRARY", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)

    def build(theme: str, first_run: bool = False, library: Path | None = None):
        return make_app(
            library=library or tmp_path / "lib",
            output=tmp_path / "out",
            settings=Settings(theme=theme, first_run_done=not first_run),
            settings_file=home / "studio.json",
            first_run=first_run,
            audio=False,
        )

    return build


async def wait_for(pilot, condition, what: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        await pilot.pause(0.1)


async def steady(pilot) -> None:
    """Stop what changes by itself: the cursors' blinking, the prompt's pending reading."""
    from tui.widgets.understood import Understanding

    app = pilot.app
    await pilot.pause()

    def reading() -> bool:
        return any(u.pending for u in app.screen.query(Understanding))

    await wait_for(pilot, lambda: not reading(), "the prompt's reading")
    for screen in app.screen_stack:
        for widget in screen.query(Input):
            widget.cursor_blink = False
    await pilot.pause()


def text_of(svg: str) -> str:
    """The characters of a snapshot (what a person reads on it), spaces normalised."""
    import html

    words = re.findall(r"<text[^>]*>(.*?)</text>", svg)
    return html.unescape("".join(words)).replace("\xa0", " ")


@pytest.fixture
def shows(snap_compare):
    """``shows(app, size, *texts, run_before=None)``: compare the snapshot, and check the
    picture really shows the screen (each of ``texts`` is on it)."""

    def check(app, size: str, *texts: str, run_before=None) -> bool:
        async def before(pilot):
            if run_before is not None:
                await run_before(pilot)
            await steady(pilot)
            pilot.app.shown_svg = pilot.app.export_screenshot()

        ok = snap_compare(app, terminal_size=SIZES[size], run_before=before)
        flat = text_of(app.shown_svg)
        missing = [t for t in texts if t not in flat]
        assert not missing, f"not on screen: {missing}"
        return ok

    return check


# -- the screens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size,theme", PARAMS)
def test_make_empty(studio, shows, size, theme):
    assert shows(studio(theme), size, "[F2 Make]", "Describe the music", "Piano roll")


@pytest.mark.parametrize("size,theme", PARAMS)
def test_make_after_a_generation(studio, shows, size, theme):
    """A 4-bar chorale with seed 7 (the generation is deterministic for a fixed seed)."""

    async def generate(pilot):
        from tui.widgets.controls import GenerateControls

        screen = pilot.app.screen
        controls = screen.query_one(GenerateControls)
        controls.query_one("#c-seed", Input).value = SEED
        await wait_for(pilot, lambda: controls.options()["seed"] == int(SEED), "the seed")
        screen.query_one("#prompt", Input).value = PROMPT
        await pilot.press("ctrl+g")
        status = screen.query_one("#status", Static)

        def said() -> str:
            return str(status.render())

        await wait_for(
            pilot, lambda: said().startswith("Done") or status.has_class("problem"), "the piece"
        )
        assert re.fullmatch(r"Done in \d+\.\d s: 1 piece kept\.", said()), said()
        await pilot.app.workers.wait_for_complete()
        screen.set_status(re.sub(r"\d+\.\d s", "0.0 s", said()))  # the one timing on screen

    app = studio(theme)
    assert shows(app, size, "Done in 0.0 s: 1 piece kept.", "bar  1", run_before=generate)
    assert f"seed {SEED}" in " ".join(app.announcements)


@pytest.mark.parametrize("size,theme", PARAMS)
def test_library_empty(studio, shows, size, theme):
    async def library(pilot):
        await pilot.press("f3")

    assert shows(studio(theme), size, "[F3 Library]", "search", run_before=library)


@pytest.mark.parametrize("size,theme", PARAMS)
def test_models(studio, shows, size, theme):
    async def models(pilot):
        from tui.screens.models import ModelsScreen

        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ModelsScreen), "Models")
        await wait_for(pilot, lambda: pilot.app.screen.models, "the list of models")
        # The card says where the shipped model is: this checkout's folder, which differs
        # between machines. Checked, then shown relative to the checkout.
        screen = pilot.app.screen
        root = str(Path(__file__).resolve().parents[2])
        assert f"yes, {root}/engine/assets/models/score-base" in screen.card_text
        screen.query_one("#card-text", Static).update(
            Markdown(screen.card_text.replace(root + "/", ""))
        )

    assert shows(studio(theme), size, "[F4 Models]", "score-base", run_before=models)


@pytest.mark.parametrize("size,theme", PARAMS)
def test_help(studio, shows, size, theme):
    async def help_(pilot):
        await pilot.press("f1")

    assert shows(studio(theme), size, "what it does", "Everywhere", run_before=help_)


@pytest.mark.parametrize("size,theme", PARAMS)
def test_first_run_step_1(studio, shows, size, theme):
    assert shows(studio(theme, first_run=True), size, "Step 1 of 4", "Welcome to the studio")


@pytest.mark.parametrize("size,theme", PARAMS)
def test_first_run_step_2(studio, shows, size, theme):
    async def step_2(pilot):
        await pilot.press("n")
        await wait_for(pilot, lambda: pilot.app.screen.query(OptionList), "step 2")

    assert shows(
        studio(theme, first_run=True), size, "Step 2 of 4", "a calm chorale", run_before=step_2
    )


@pytest.mark.parametrize("size,theme", PARAMS)
def test_command_palette(studio, shows, size, theme):
    async def palette(pilot):
        from textual.command import CommandPalette

        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, CommandPalette), "palette")
        await pilot.pause(0.5)  # the commands are gathered in the background

    assert shows(studio(theme), size, "Search for commands", "Back a bar", run_before=palette)


# -- the user's guide lists every key ------------------------------------------------------------


def test_docs_list_every_key_binding(studio):
    """Each (key, what it does) of the help screen is a row of docs/studio.md's tables."""
    import asyncio

    from tui.screens._help import bindings_table

    async def rows():
        app = studio(THEMES[0])
        async with app.run_test(size=(120, 40)):
            return bindings_table(app)

    table = asyncio.run(rows())
    assert len(table) > 40
    lines = [x for x in DOCS.read_text(encoding="utf-8").splitlines() if x.startswith("|")]
    missing = [
        f"{where}: {key} {what}"
        for where, key, what in table
        if not any(f"`{key}`" in line and line.rstrip().endswith(f"| {what} |") for line in lines)
    ]
    assert not missing, "docs/studio.md lacks these keys:\n" + "\n".join(missing)
