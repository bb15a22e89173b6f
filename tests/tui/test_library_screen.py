"""The studio's Library screen, driven with Textual's Pilot over a library of real pieces."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from textual.widgets import DataTable, Input

from tui.app import make_app
from tui.screens.library import FilterError, LibraryScreen, filters_from

PIECES = {
    "chorale": ("a calm chorale in G major for choir", 1, ["mid"]),
    "waltz": ("a lively waltz in D minor for strings", 2, ["wav", "mid"]),
    "jazz": ("a slow jazz ballad in F major for piano", 3, ["mid"]),
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A library of three real pieces: {name: id} and the library's folder (a template: each
    test works on a copy)."""
    from engine.library.store import keeping
    from engine.pipelines.compose import compose

    root = tmp_path_factory.mktemp("made")
    ids = {}
    with keeping(root / "lib") as kept:
        for name, (prompt, seed, formats) in PIECES.items():
            compose(prompt, bars=2, seed=seed).save(root / name, formats=formats)
            ids[name] = kept[-1].id
    return root / "lib", ids


@pytest.fixture
def lib_copy(made, tmp_path):
    template, ids = made
    shutil.copytree(template, tmp_path / "lib")
    return tmp_path / "lib", ids


def _app(tmp_path):
    return make_app(
        library=tmp_path / "lib",
        output=tmp_path / "out",
        settings_file=tmp_path / "s.json",
        first_run=False,
    )


def _run(test):
    asyncio.run(test())


async def _library_screen(pilot) -> LibraryScreen:
    await pilot.press("f3")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, LibraryScreen)
    return screen


def _rows(screen) -> list[str]:
    return list(screen.shown_ids)


def _open(path, ref):
    from engine.library.store import Library

    with Library.open(path, write=False) as lib:
        return lib.get(ref, include_deleted=True)


async def _set(screen, pilot, field: str, value: str) -> None:
    screen.query_one(f"#{field}", Input).value = value
    await pilot.pause(0.5)  # past the debounce
    await pilot.pause()


async def _select(screen, pilot, piece_id: str) -> None:
    screen.show_piece(piece_id)
    await pilot.pause(0.5)
    assert screen.selected_id == piece_id


async def _wait_jobs(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def test_filters_read_like_library_list():
    f = filters_from({"style": "chorale", "tempo": "60-90", "rating": "4", "since": "7d"})
    assert f["style"] == "chorale" and (f["tempo_min"], f["tempo_max"]) == (60.0, 90.0)
    assert f["min_rating"] == 4 and f["since"] > 0 and f["trash"] is False
    assert filters_from({"tempo": "120"})["tempo_max"] == 120.0
    for bad in ({"tempo": "fast-ish"}, {"tempo": "90-60"}, {"rating": "9"}, {"rating": "x"}):
        with pytest.raises(FilterError):
            filters_from(bad)
    with pytest.raises(FilterError, match="not a date"):
        filters_from({"since": "yesterdayish"})


def test_table_filters_sorting_and_search(lib_copy, tmp_path):
    _, ids = lib_copy

    async def test():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await _library_screen(pilot)
            assert sorted(_rows(screen)) == sorted(ids.values())
            assert screen.query_one("#pieces", DataTable).row_count == 3

            await _set(screen, pilot, "f-style", "chorale")
            assert _rows(screen) == [ids["chorale"]]
            await _set(screen, pilot, "f-style", "")
            await _set(screen, pilot, "f-key", "F")
            assert _rows(screen) == [ids["jazz"]]
            await _set(screen, pilot, "f-key", "")
            await _set(screen, pilot, "f-mode", "minor")
            assert _rows(screen) == [ids["waltz"]]
            await _set(screen, pilot, "f-mode", "")
            await _set(screen, pilot, "f-instrument", "soprano")
            assert _rows(screen) == [ids["chorale"]]
            await _set(screen, pilot, "f-instrument", "")

            # hostile values: one line under the filters, the table as it was, no crash
            for field, value, said in (
                ("f-tempo", "fast-ish", "tempo"),
                ("f-rating", "9", "rating"),
                ("f-since", "yesterdayish", "since"),
            ):
                await _set(screen, pilot, field, value)
                message = str(screen.query_one("#filter-msg").render())
                assert said in message and "\n" not in message.strip()
                assert len(_rows(screen)) == 3
                await _set(screen, pilot, field, "")
            assert screen.filter_problem is None

            # sorting: by tempo (fastest first), reversed with v, cycling with s
            screen.set_sort("tempo")
            await pilot.pause()
            tempos = [_open(tmp_path / "lib", i).tempo for i in _rows(screen)]
            assert tempos == sorted(tempos, reverse=True)
            screen.query_one("#pieces").focus()
            await pilot.press("v")
            tempos = [_open(tmp_path / "lib", i).tempo for i in _rows(screen)]
            assert tempos == sorted(tempos)
            await pilot.press("s")
            assert screen.sort == "key" and not screen.reverse  # the next of names.LIBRARY_SORTS
            keys = [_open(tmp_path / "lib", i).key for i in _rows(screen)]
            assert keys == ["D", "F", "G"]
            # a click on a heading sorts by it; a second click reverses
            table = screen.query_one("#pieces", DataTable)
            inside = table.content_region.offset - table.region.offset  # past the border
            x = inside.x + table.ordered_columns[0].get_render_width(table) + 2
            assert table.ordered_columns[1].key.value == "rating"
            await pilot.click("#pieces", offset=(x, inside.y))
            await pilot.pause()
            assert (screen.sort, screen.reverse) == ("rating", False)
            await pilot.click("#pieces", offset=(x, inside.y))
            await pilot.pause()
            assert (screen.sort, screen.reverse) == ("rating", True)

            # full-text search over the prompt's words
            await _set(screen, pilot, "search", "waltz")
            assert _rows(screen) == [ids["waltz"]]
            await _set(screen, pilot, "search", "ballad piano")
            assert _rows(screen) == [ids["jazz"]]
            await _set(screen, pilot, "search", "")
            assert len(_rows(screen)) == 3

    _run(test)


def test_rate_tag_note_rename_and_collection(lib_copy, tmp_path):
    path, ids = lib_copy
    pid = ids["chorale"]

    async def test():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await _library_screen(pilot)
            await _select(screen, pilot, pid)
            await pilot.press("4")
            assert _open(path, pid).rating == 4
            assert any("rated 4" in a for a in app.announcements)
            await pilot.press("0")
            assert _open(path, pid).rating is None

            await pilot.press("t")
            await pilot.pause()
            app.screen.query_one(Input).value = "keep, wedding"
            await pilot.press("enter")
            await pilot.pause()
            assert sorted(_open(path, pid).tags) == ["keep", "wedding"]

            await pilot.press("n")
            await pilot.pause()
            app.screen.query_one(Input).value = "slower next time"
            await pilot.press("enter")
            await pilot.pause()
            assert _open(path, pid).note == "slower next time"
            assert "slower next time" in str(screen.query_one("#details").render())

            await pilot.press("r")
            await pilot.pause()
            app.screen.query_one(Input).value = "Evening hymn"
            await pilot.press("enter")
            await pilot.pause()
            assert _open(path, pid).title == "Evening hymn"

            await pilot.press("c")
            await pilot.pause()
            app.screen.query_one(Input).value = "for Anna"
            await pilot.press("enter")
            await pilot.pause()
            assert _open(path, pid).collections == ["for Anna"]
            await _set(screen, pilot, "f-collection", "for anna")
            assert _rows(screen) == [pid]
            await _set(screen, pilot, "f-collection", "")

            # a tag the library refuses: one line in a modal, nothing changed
            await _select(screen, pilot, pid)
            await pilot.press("t")
            await pilot.pause()
            app.screen.query_one(Input).value = "x" * 80
            await pilot.press("enter")
            await pilot.pause()
            assert "at most 64" in str(app.screen.query_one("#error-text").render())
            await pilot.press("enter")
            assert sorted(_open(path, pid).tags) == ["keep", "wedding"]

    _run(test)


def test_show_piece_from_another_screen(lib_copy, tmp_path):
    _, ids = lib_copy

    async def test():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert not isinstance(app.screen, LibraryScreen)
            app.switch_mode("library")  # what the Make screen does, then show_piece at once
            app.screen.show_piece(ids["waltz"])
            await pilot.pause(0.5)
            screen = app.screen
            assert isinstance(screen, LibraryScreen) and screen.selected_id == ids["waltz"]
            assert "lively waltz" in str(screen.query_one("#details").render())
            screen.query_one("#f-style", Input).value = "chorale"
            await pilot.pause(0.5)
            screen.show_piece(ids["jazz"])  # the filters are cleared to show it
            await pilot.pause(0.5)
            assert screen.selected_id == ids["jazz"] and len(screen.shown_ids) == 3

    _run(test)


def test_delete_asks_then_trash_and_restore(lib_copy, tmp_path):
    path, ids = lib_copy
    pid = ids["jazz"]

    async def test():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await _library_screen(pilot)
            await _select(screen, pilot, pid)
            await pilot.press("d")
            await pilot.pause()
            await pilot.press("n")  # asked, and said no
            await pilot.pause()
            assert _open(path, pid).deleted is None
            await pilot.press("d")
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
            assert _open(path, pid).deleted is not None
            assert pid not in _rows(screen)
            assert (path / "trash" / pid).is_dir()

            await pilot.press("x")  # the trash view
            await pilot.pause()
            assert _rows(screen) == [pid]
            await pilot.press("u")
            await pilot.pause()
            assert _open(path, pid).deleted is None
            assert (path / "pieces" / pid).is_dir()
            assert any("restored" in a for a in app.announcements)

    _run(test)


def test_replay_keeps_an_identical_piece_and_the_lineage_shows_it(lib_copy, tmp_path):
    path, ids = lib_copy
    pid = ids["chorale"]

    async def test():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await _library_screen(pilot)
            await _select(screen, pilot, pid)
            await pilot.press("p")
            await _wait_jobs(pilot)
            said = str(screen.query_one("#job-line").render())
            assert "music.mid: identical" in said and "DIFFERENT" not in said
            from engine.library.store import Library

            with Library.open(path, write=False) as lib:
                children = [
                    p for p in lib.list(limit=None) if (pid, "replay") in lib.get(p.id).parents
                ]
            assert len(children) == 1
            new = children[0]
            assert new.id in _rows(screen)
            assert (tmp_path / "out").is_dir()
            await _select(screen, pilot, pid)
            labels = screen.lineage_labels()
            assert any(pid in x and x.startswith("▶") for x in labels)
            assert any(new.id in x and "replay:" in x for x in labels)

    _run(test)


def test_detect_finds_the_watermark_of_a_written_wav(lib_copy, tmp_path):
    _, ids = lib_copy

    async def test():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await _library_screen(pilot)
            await _select(screen, pilot, ids["waltz"])
            await pilot.press("w")
            await _wait_jobs(pilot)
            said = str(screen.query_one("#job-line").render())
            wav = next(x for x in said.splitlines() if x.startswith("music.wav"))
            assert "made with Disco-Musica" in wav and "watermark dm:" in wav
            assert ids["waltz"] in wav

            # a file typed in that is not ours, and one that is not there
            other = tmp_path / "other.mid"
            other.write_bytes(b"MThd")
            await pilot.press("W")
            await pilot.pause()
            app.screen.query_one(Input).value = str(tmp_path / "nothing-here.wav")
            await pilot.press("enter")
            await _wait_jobs(pilot)
            assert "no such file" in str(app.screen.query_one("#error-text").render())
            await pilot.press("enter")

    _run(test)


def test_export_writes_the_files_to_a_folder_and_open_shows_the_path(
    lib_copy, tmp_path, monkeypatch
):
    _, ids = lib_copy
    pid = ids["chorale"]

    async def test():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await _library_screen(pilot)
            await _select(screen, pilot, pid)
            await pilot.press("e")
            await pilot.pause()
            app.screen.query_one(Input).value = str(tmp_path / "exported")
            await pilot.press("enter")
            await _wait_jobs(pilot)
            folders = list((tmp_path / "exported").iterdir())
            assert len(folders) == 1 and folders[0].name.endswith(pid)
            assert {p.name for p in folders[0].iterdir()} == {"music.mid", "generation.json"}
            assert any("exported to" in a for a in app.announcements)

            monkeypatch.setattr("tui.screens.library.shutil.which", lambda name: None)
            await pilot.press("o")
            await pilot.pause()
            assert any(a.startswith("folder: ") and pid in a for a in app.announcements)

    _run(test)
