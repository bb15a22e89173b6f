"""The studio's accessibility, driven with Textual's Pilot: the keyboard reaches everything
and shows where it is, screens and state changes are said in words (plain mode), motion can
be reduced, colour is never the only carrier, the themes and a damaged settings file behave,
and an 80x24 terminal is enough."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from rich.color import ColorType
from textual.geometry import Region
from textual.widgets import Button, Input

from tui.app import PLAIN_ENV, REDUCED_MOTION_ENV, make_app
from tui.screens.library import LibraryScreen
from tui.screens.make import MakeScreen
from tui.screens.models import ModelsScreen
from tui.settings import THEMES
from tui.widgets._bars import PART_GLYPHS
from tui.widgets.announcer import Announcer
from tui.widgets.pianoroll import PianoRoll
from tui.widgets.waveform import Waveform

HIGH_CONTRAST = "disco-high-contrast"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """The studio's home (settings, models, temporary records) in this test's folder; none
    of the environment switches of the studio or of Textual set."""
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))
    for name in (PLAIN_ENV, REDUCED_MOTION_ENV, "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def _app(tmp_path, **kwargs):
    return make_app(
        library=tmp_path / "lib",
        output=tmp_path / "out",
        settings_file=kwargs.pop("settings_file", tmp_path / "studio.json"),
        first_run=False,
        audio=False,
        **kwargs,
    )


def _run(app, test, size=(120, 40)):
    """``await test(app, pilot)`` in the running app; errors of the app fail the test."""

    async def main():
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await test(app, pilot)
        assert app._exception is None, app._exception

    asyncio.run(main())


async def _wait(pilot, condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            app = pilot.app
            top = app.screen
            status = app.screen.query("#status")
            raise AssertionError(
                f"{what}: not after {timeout:.0f} s; showing {type(top).__name__} "
                f"{getattr(top, 'message', '')}; status "
                f"{status.first().render() if status else '-'}; said {app.announcements[-3:]}"
            )
        await pilot.pause(0.05)


def _rendered(widget) -> list[list[tuple]]:
    """The widget's lines as drawn now (text and style of each segment)."""
    w, h = widget.outer_size
    lines = widget.render_lines(Region(0, 0, w, h))
    return [[(s.text, s.style) for s in strip] for strip in lines]


def _focus_style(widget, accent) -> str | None:
    """What shows that ``widget`` has the focus: its outline, or a border in the accent
    colour (None: nothing)."""
    styles = widget.styles
    outline = styles.outline_top
    if outline[0] not in ("", "none", "hidden"):
        return f"outline {outline[0]}"
    border = styles.border_top
    if border[0] not in ("", "none", "hidden") and border[1].rgb == accent.rgb:
        return f"border {border[0]} in the accent colour"
    return None


# ---- the keyboard --------------------------------------------------------------------------
def test_tab_cycles_through_the_make_screen_and_every_focused_widget_shows_it(tmp_path):
    async def test(app, pilot):
        screen = app.screen
        assert isinstance(screen, MakeScreen)
        prompt = screen.query_one("#prompt", Input)
        assert app.focused is prompt
        accent = app.current_theme.to_color_system().accent
        seen = []
        for _ in range(80):
            focused = app.focused
            assert focused is not None, f"Tab left nothing focused after {seen}"
            shown = _focus_style(focused, accent)
            assert shown, f"{focused!r} is focused but shows no focus style"
            drawn = _rendered(focused)
            seen.append(focused)
            await pilot.press("tab")
            await pilot.pause()
            if app.focused is prompt:
                break
            # the widget left behind is drawn differently now: the focus was visible
            assert _rendered(seen[-1]) != drawn, f"{seen[-1]!r} looks the same unfocused"
        else:
            raise AssertionError(f"Tab never came back to the prompt: {seen}")
        ids = {w.id for w in seen}
        assert {"prompt", "generate", "roll"} <= ids, ids
        names = {type(w).__name__ for w in seen}
        assert "ContentTabs" in names, names  # the tabs of both panes are reached
        assert not screen.query_one("#cancel", Button).disabled or "cancel" not in ids
        # shift+tab goes back the same way
        await pilot.press("shift+tab")
        await pilot.pause()
        assert app.focused is seen[-1]

    _run(_app(tmp_path), test)


def test_the_generate_controls_are_reached_with_the_keyboard(tmp_path):
    async def test(app, pilot):
        screen = app.screen
        # the left pane's tabs: focus them and move to "Controls" with the arrow keys
        tabs = screen.query_one("#make-left").query_one("ContentTabs")
        while app.focused is not tabs:
            await pilot.press("tab")
        for _ in range(4):
            if screen.query_one("#make-left").active == "tab-controls":
                break
            await pilot.press("right")
        assert screen.query_one("#make-left").active == "tab-controls"
        controls = screen.query_one("#controls")
        reached = []
        for _ in range(60):
            await pilot.press("tab")
            if app.focused in controls.query("*"):
                reached.append(app.focused)
            elif reached:
                break
        assert len(reached) >= 5, reached
        assert any(isinstance(w, Input) for w in reached), reached

    _run(_app(tmp_path), test)


def test_function_keys_switch_screens_and_say_so(tmp_path):
    async def test(app, pilot):
        for key, cls, said in (
            ("f3", LibraryScreen, "Library screen"),
            ("f4", ModelsScreen, "Models screen"),
            ("f2", MakeScreen, "Make screen"),
        ):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, cls), (key, app.screen)
            assert app.announcements[-1] == said
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        assert app.announcements[-1].startswith("help:")
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MakeScreen)

    _run(_app(tmp_path), test)


# ---- plain mode ----------------------------------------------------------------------------
def _announcer_lines(app) -> list[str]:
    return list(app.screen.query_one(Announcer).lines)


def test_plain_mode_shows_the_announcer(tmp_path):
    async def test(app, pilot):
        assert app.plain and app.has_class("plain")
        for key in ("f2", "f3", "f4"):
            await pilot.press(key)
            await pilot.pause()
            announcer = app.screen.query_one(Announcer)
            assert announcer.display and announcer.region.height > 0, key

    _run(_app(tmp_path, plain=True), test)


def test_the_plain_environment_variable_shows_the_announcer(tmp_path, monkeypatch):
    monkeypatch.setenv(PLAIN_ENV, "1")

    async def test(app, pilot):
        assert app.screen.query_one(Announcer).display

    _run(_app(tmp_path), test)


def test_the_plain_environment_variable_turns_plain_mode_on(tmp_path, monkeypatch):
    monkeypatch.setenv(PLAIN_ENV, "1")

    async def test(app, pilot):
        assert app.plain and app.has_class("plain")

    _run(_app(tmp_path), test)


def test_plain_mode_says_screen_changes_and_help_in_the_announcer(tmp_path):
    async def test(app, pilot):
        await pilot.press("f1")
        await pilot.pause()
        assert app.announcements[-1].startswith("help:")
        await pilot.press("escape")
        await pilot.pause()
        for key in ("f3", "f4", "f2"):  # each screen made once
            await pilot.press(key)
            await pilot.pause()
        for key, said in (("f3", "Library screen"), ("f4", "Models screen")):
            await pilot.press(key)
            await pilot.pause()
            assert app.announcements[-1] == said
            # what is said is written where it can be read: the screen showing now
            assert said in _announcer_lines(app), (key, _announcer_lines(app))

    _run(_app(tmp_path, plain=True), test)


def test_plain_mode_shows_the_first_visit_of_a_screen_in_its_announcer(tmp_path):
    async def test(app, pilot):
        await pilot.press("f3")
        await pilot.pause()
        assert "Library screen" in _announcer_lines(app), _announcer_lines(app)

    _run(_app(tmp_path, plain=True), test)


def test_without_plain_mode_the_announcer_is_hidden_but_everything_is_still_said(tmp_path):
    async def test(app, pilot):
        assert not app.plain
        assert not app.screen.query_one(Announcer).display
        await pilot.press("f4")
        await pilot.pause()
        assert app.announcements[-1] == "Models screen"

    _run(_app(tmp_path), test)


def test_plain_mode_says_a_generation_from_start_to_kept(tmp_path):
    """A real 2-bar piece, written by the shipped model."""

    async def test(app, pilot):
        screen = app.screen
        screen.query_one("#prompt", Input).focus()
        await pilot.press(*"a chorale for choir in G major, 2 bars")
        controls = screen.query_one("#controls")
        await _wait(pilot, lambda: not controls.checking, 30, "the controls' checks")
        await pilot.press("ctrl+g")
        await _wait(pilot, lambda: screen.busy or screen.piece, 10, "writing")
        await _wait(pilot, lambda: not screen.busy and screen.piece, 240, "the piece")
        await _wait(
            pilot,
            lambda: any(a.startswith("audio ready") for a in app.announcements),
            120,
            "the audio",
        )
        said = app.announcements
        assert any(a.startswith("generating: a chorale for choir") for a in said), said
        assert "bar 2 of 2 written" in said, said
        kept = [a for a in said if "kept in the library as " in a]
        assert kept and screen.piece["id"] in kept[0], said
        shown = _announcer_lines(app)
        for line in ("bar 2 of 2 written", kept[0]):
            assert line in shown, shown
        assert said.index("bar 2 of 2 written") < said.index(kept[0])
        # space plays (the player is silent here), and that is said too
        screen.query_one(PianoRoll).focus()
        await pilot.press("space")
        await pilot.pause()
        assert app.announcements[-1].startswith("playing from")
        await pilot.press("space")
        await pilot.pause()
        assert app.announcements[-1].startswith("paused at")

    _run(_app(tmp_path, plain=True), test)


# ---- motion and colour ---------------------------------------------------------------------
def test_reduced_motion_from_the_environment_turns_animations_off(tmp_path, monkeypatch):
    monkeypatch.setenv(REDUCED_MOTION_ENV, "1")

    async def test(app, pilot):
        assert app.animation_level == "none"
        assert app.reduced_motion

    _run(_app(tmp_path), test)


def test_reduced_motion_is_off_by_default(tmp_path):
    async def test(app, pilot):
        assert app.animation_level != "none"

    _run(_app(tmp_path), test)


def _roll_data(parts: int = 4):
    from symusic import Score

    from tests.studio_pieces import piece
    from tui.widgets.roll import roll_data

    midi, _ = piece(4, 120.0)
    return roll_data(Score.from_midi(midi))


def _has_colour(style) -> bool:
    for colour in (style.color, style.bgcolor) if style else ():
        if colour is None or colour.type == ColorType.DEFAULT:
            continue
        r, g, b = colour.get_truecolor()
        if not r == g == b:  # a grey is no colour (the Monochrome filter's output)
            return True
    return False


def test_no_color_renders_without_colour_and_the_roll_tells_parts_by_glyph(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = _app(tmp_path)
    assert app.no_color

    async def test(app, pilot):
        roll = app.screen.query_one(PianoRoll)
        roll.data = _roll_data()
        await pilot.pause()
        roll.fit_pitch()
        await pilot.pause()
        strips = roll.render_lines(Region(0, 0, *roll.outer_size))
        filtered = []
        for strip in strips:
            for f in app._filters:
                strip = strip.apply_filter(f, app.screen.styles.background)
            filtered.append(strip)
        coloured = [s for strip in filtered for s in strip if _has_colour(s.style)]
        assert not coloured, coloured[:5]
        text = "".join(s.text for strip in filtered for s in strip)
        glyphs = {g for g in PART_GLYPHS[:4] if g in text}
        assert len(glyphs) >= 3, f"parts are not told apart by glyph: {glyphs}"

    _run(app, test)


def test_the_parts_of_the_roll_differ_in_glyph_not_only_in_colour():
    assert len(set(PART_GLYPHS)) == len(PART_GLYPHS) >= 4


# ---- themes and settings -------------------------------------------------------------------
def test_ctrl_t_reaches_the_high_contrast_theme_and_it_persists(tmp_path):
    settings = tmp_path / "studio.json"

    async def choose(app, pilot):
        assert app.theme == THEMES[0]
        app.screen.query_one(PianoRoll).focus()  # not in the prompt: Ctrl+T is the app's
        for _ in range(len(THEMES)):
            if app.theme == HIGH_CONTRAST:
                break
            await pilot.press("ctrl+t")
            await pilot.pause()
        assert app.theme == HIGH_CONTRAST
        assert f"theme: {HIGH_CONTRAST}" in app.announcements
        colours = app.current_theme
        assert colours.background.upper() == "#000000" and colours.foreground.upper() == "#FFFFFF"

    _run(_app(tmp_path, settings_file=settings), choose)
    assert json.loads(settings.read_text())["theme"] == HIGH_CONTRAST

    async def reopened(app, pilot):
        assert app.theme == HIGH_CONTRAST

    _run(_app(tmp_path, settings_file=settings), reopened)


def test_ctrl_t_cycles_every_theme(tmp_path):
    async def test(app, pilot):
        app.screen.query_one(PianoRoll).focus()
        seen = [app.theme]
        for _ in THEMES:
            await pilot.press("ctrl+t")
            await pilot.pause()
            seen.append(app.theme)
        assert set(seen) == set(THEMES) and seen[-1] == seen[0], seen

    _run(_app(tmp_path), test)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"{not json", id="broken-json"),
        pytest.param(b'["a", "list"]', id="a-list"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xfe\x00garbage", id="binary"),
    ],
)
def test_a_damaged_settings_file_gives_a_notice_and_defaults_and_is_kept_aside(tmp_path, content):
    settings = tmp_path / "studio.json"
    settings.write_bytes(content)

    async def test(app, pilot):
        assert app.theme == THEMES[0]
        assert app.settings.problem
        notices = [n.message for n in app._notifications]
        assert any("settings" in m or str(settings) in m for m in notices), notices
        assert settings.read_bytes() == content  # not rewritten just by opening
        app.screen.query_one(PianoRoll).focus()
        await pilot.press("ctrl+t")  # a change saves the settings
        await pilot.pause()

    _run(_app(tmp_path, settings_file=settings), test)
    aside = tmp_path / "studio.json.damaged"
    assert aside.read_bytes() == content
    assert json.loads(settings.read_text())["theme"] == THEMES[1]


def test_a_second_damaged_file_never_replaces_the_first_one_kept_aside(tmp_path):
    settings = tmp_path / "studio.json"
    aside = tmp_path / "studio.json.damaged"
    aside.write_bytes(b"the first damaged file")
    settings.write_bytes(b"{the second")

    async def test(app, pilot):
        app.screen.query_one(PianoRoll).focus()
        await pilot.press("ctrl+t")
        await pilot.pause()

    _run(_app(tmp_path, settings_file=settings), test)
    assert aside.read_bytes() == b"the first damaged file"
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("studio.json"))
    # the second damaged file is somewhere too (never lost)
    contents = [(tmp_path / name).read_bytes() for name in kept]
    assert b"{the second" in contents, kept


# ---- a small terminal ----------------------------------------------------------------------
def _inside(widget, screen) -> bool:
    r = widget.region
    return r.width > 0 and r.height > 0 and screen.region.contains_region(r)


def test_every_screen_works_at_80_by_24(tmp_path):
    async def test(app, pilot):
        screen = app.screen
        for selector in ("#prompt", "#generate"):
            widget = screen.query_one(selector)
            assert _inside(widget, screen), (selector, widget.region)
        assert screen.query_one("#generate", Button).label.plain.startswith("Generate")
        for key, cls in (("f3", LibraryScreen), ("f4", ModelsScreen), ("f2", MakeScreen)):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, cls)
            assert app._exception is None, app._exception
            focused = app.focused
            assert focused is None or _inside(focused, app.screen), (key, focused)
        await pilot.press("f1")
        await pilot.pause()
        help_table = app.screen.query_one("#keys")
        assert _inside(help_table, app.screen)

    _run(_app(tmp_path), test, size=(80, 24))


# ---- words for what is drawn ---------------------------------------------------------------
def test_the_piano_roll_and_the_waveform_say_what_they_show(tmp_path):
    async def test(app, pilot):
        screen = app.screen
        roll = screen.query_one(PianoRoll)
        roll.data = _roll_data()
        roll.playhead_q = 4.0
        await pilot.pause()
        said = roll.summary()
        assert "4 bars of 4/4" in said and "120 quarter notes a minute" in said, said
        assert len([x for x in said.splitlines() if x.startswith("Part ")]) == 4, said
        assert "playhead: bar 2 beat 1.0" in said, said

        wave = screen.query_one(Waveform)
        sr = 22050
        t = np.arange(4 * sr) / sr
        mono = np.where(t < 2.0, 0.5, 0.05) * np.sin(2 * np.pi * 440 * t)
        wave.set_audio(np.stack([mono, mono], axis=1).astype(np.float32), sr)
        await pilot.pause()
        said = wave.summary()
        assert "0:04 long, stereo, 22050 Hz" in said, said
        assert "loudest passage 0:00" in said and "quietest passage" in said, said

    _run(_app(tmp_path), test)


def test_the_roll_summary_can_be_heard_from_the_keyboard(tmp_path):
    async def test(app, pilot):
        roll = app.screen.query_one(PianoRoll)
        roll.data = _roll_data()
        roll.focus()
        await pilot.pause()
        before = len(app.announcements)
        for key in ("s", "question_mark", "enter"):
            await pilot.press(key)
            await pilot.pause()
        said = app.announcements[before:]
        assert any("bars of 4/4" in a for a in said), said

    _run(_app(tmp_path, plain=True), test)
