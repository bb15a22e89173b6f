"""The footer of keys (`tui.widgets.footer.KeysFooter`), driven with Textual's Pilot: it always
shows the keys of what has focus, and it is rebuilt only when those keys change (Textual's own
footer is rebuilt on every change of focus: about 230 style applications per Tab press on the
Make screen)."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets._footer import FooterKey

from tui.app import PLAIN_ENV, REDUCED_MOTION_ENV, make_app
from tui.widgets.footer import KeysFooter


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))
    for name in (PLAIN_ENV, REDUCED_MOTION_ENV, "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


def _expected(screen) -> list[tuple[str, str, bool]]:
    """(key, description, enabled) of the bindings a footer should show now, one per action
    (the first binding of each), as Textual's `Footer.compose` picks them."""
    seen, out = set(), []
    for _key, binding, enabled, _tooltip in screen.active_bindings.values():
        if binding.show and binding.action not in seen:
            seen.add(binding.action)
            out.append((binding.key, binding.description, enabled))
    return out


def _shown(footer) -> list[tuple[str, str, bool]]:
    return [
        (k.key, k.description, not k._disabled)
        for k in footer.query(FooterKey)
        if not k.has_class("-command-palette")
    ]


def test_the_footer_follows_focus_and_is_rebuilt_only_when_its_keys_change(tmp_path, monkeypatch):
    rebuilds = []
    recompose = KeysFooter.recompose

    async def counted(self):
        rebuilds.append(type(self.app.focused).__name__)
        await recompose(self)

    monkeypatch.setattr(KeysFooter, "recompose", counted)
    app = make_app(
        library=tmp_path / "lib",
        output=tmp_path / "out",
        settings_file=tmp_path / "studio.json",
        first_run=False,
        audio=False,
    )

    async def main():
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            footer = app.screen.query_one(KeysFooter)
            focused, changes = [], 0
            for _ in range(16):
                before = _expected(app.screen)
                await pilot.press("tab")
                await pilot.pause()
                focused.append(type(app.focused).__name__)
                after = _expected(app.screen)
                changes += after != before
                assert _shown(footer) == after, (focused[-1], _shown(footer), after)
            # the widgets reached have keys of their own (the piano roll's zoom, the rating
            # of a button) and some share them: both cases are met
            assert len(set(focused)) >= 3, focused
            assert 0 < changes < 16, focused
            assert len(rebuilds) <= changes + 1, (rebuilds, changes)
        assert app._exception is None, app._exception

    asyncio.run(main())
