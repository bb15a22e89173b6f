"""The studio's Data screen, driven with Textual's Pilot over real datasets in a temporary
folder: make one, import real files (two WAVs, a MIDI file and a broken file), browse and
filter, edit metadata, split, and walk the versions back to the first."""

from __future__ import annotations

import asyncio
import time
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import DataTable, DirectoryTree, Input, Select, Static

from tui.app import make_app
from tui.screens.data import DATA_KEY, DataScreen


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """The studio's home and the datasets in this test's folder; the import's folder tree
    starts there too."""
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DISCO_MUSICA_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.setenv("DISCO_MUSICA_REDUCED_MOTION", "1")
    for name in ("DISCO_MUSICA_PLAIN", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(DataScreen, "browse_root", tmp_path)
    return tmp_path


def _app(tmp_path):
    return make_app(
        library=tmp_path / "lib",
        output=tmp_path / "out",
        settings_file=tmp_path / "studio.json",
        first_run=False,
        audio=False,
    )


def _run(app, test, size=(120, 40)):
    async def main():
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await test(app, pilot)
        assert app._exception is None, app._exception

    asyncio.run(main())


async def _wait(pilot, condition, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            screen = pilot.app.screen
            raise AssertionError(
                f"{what}: not after {timeout:.0f} s; status {getattr(screen, 'status', '')!r}; "
                f"said {pilot.app.announcements[-3:]}"
            )
        await pilot.pause(0.05)


async def _data_screen(pilot) -> DataScreen:
    await pilot.press(DATA_KEY)
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, DataScreen)
    return screen


def _text(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def _node(tree, name: str):
    """The node of the folder tree's first level named ``name`` (None until it is loaded)."""
    return next((n for n in tree.root.children if n.data and n.data.path.name == name), None)


def _write_wav(path: Path, seconds: float, freq: float, sr: int = 22050) -> None:
    t = np.arange(int(sr * seconds)) / sr
    x = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(x.tobytes())


def _write_midi(path: Path) -> None:
    import mido

    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=500000))
    for pitch in (60, 64, 67, 72):
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=480))
    mid.tracks.append(track)
    mid.save(str(path))


@pytest.fixture
def music(tmp_path) -> Path:
    """A folder to import: two WAVs, a MIDI file and a file that claims to be a WAV."""
    folder = tmp_path / "music"
    folder.mkdir()
    _write_wav(folder / "a.wav", 1.0, 220.0)
    _write_wav(folder / "b.wav", 1.5, 330.0)
    _write_midi(folder / "c.mid")
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really a sound")
    return folder


# ---- the whole way: make, import, browse, edit, split, versions ------------------------------
def test_make_import_browse_edit_split_and_go_back_a_version(tmp_path, music):
    from engine.data.store import Dataset

    async def test(app, pilot):
        screen = await _data_screen(pilot)
        assert "No dataset open" in _text(screen, "#ds-line")

        # make a dataset by name (the name field has the focus when there is none)
        assert app.focused is screen.query_one("#ds-new", Input)
        await pilot.press(*"songs", "enter")
        await pilot.pause()
        ds = Dataset.open(tmp_path / "datasets" / "songs")
        assert screen.ds is not None and screen.ds.path == ds.path
        assert "songs" in _text(screen, "#ds-line")
        assert screen.pane == "import"  # a new dataset goes straight to the import

        # pick the folder in the tree (a adds the folder under the cursor), then import it:
        # progress is shown, the broken file is listed with its reason
        assert app.focused is screen.query_one("#imp-source", Input)
        tree = screen.query_one("#imp-tree", DirectoryTree)
        await _wait(pilot, lambda: _node(tree, "music") is not None, "the folder tree")
        await pilot.press("tab")
        assert app.focused is tree
        tree.move_cursor(_node(tree, "music"))
        await pilot.press("a")
        await pilot.pause()
        assert screen.sources == [str(music)]
        assert str(music) in _text(screen, "#imp-queue")
        await pilot.press("ctrl+g")
        await _wait(pilot, lambda: screen.busy is None, "the import")
        assert screen.progress_seen, "no progress event reached the screen"
        last = screen.progress_seen[-1]
        assert last.total is None or last.done <= last.total
        line, skipped = screen.last_import
        assert "3 added" in line, line
        assert [Path(s).name for s, _ in skipped] == ["broken.wav"], skipped
        assert all(reason.strip() for _, reason in skipped)
        shown = _text(screen, "#imp-result")
        assert "broken.wav" in shown and skipped[0][1] in shown
        assert sorted(i.kind for i in screen.items) == ["audio", "audio", "midi"]
        assert screen.query_one("#items", DataTable).row_count == 3
        first_version_count = len(Dataset.open(ds.path).versions())

        # browse and filter: by words, by kind, by split
        await pilot.press("escape", "b")
        await pilot.pause()
        assert screen.pane == "items"
        table = screen.query_one("#items", DataTable)
        assert app.focused is table
        await pilot.press("slash", *"mid")
        await pilot.pause()
        assert [i.kind for i in screen.shown] == ["midi"]
        screen.query_one("#flt-text", Input).value = ""
        screen.query_one("#flt-kind", Select).value = "audio"
        await pilot.pause()
        assert [i.kind for i in screen.shown] == ["audio", "audio"]
        screen.query_one("#flt-split", Select).value = "train"
        await pilot.pause()
        assert screen.shown == [] and table.row_count == 0
        screen.query_one("#flt-split", Select).clear()
        screen.query_one("#flt-kind", Select).clear()
        await pilot.pause()
        assert table.row_count == 3

        # the details of the selected item
        wav = next(i for i in screen.shown if i.path.endswith("a.wav"))
        table.focus()
        table.move_cursor(row=[i.id for i in screen.shown].index(wav.id))
        await pilot.pause()
        assert screen.current_id == wav.id
        details = _text(screen, "#item-details")
        assert wav.path in details and "audio" in details and wav.id in details

        # edit: a bad tempo says why and saves nothing; a good one makes a version
        await pilot.press("e")
        await pilot.pause()
        assert screen.pane == "edit"
        assert wav.path in _text(screen, "#edit-target")
        tempo = screen.query_one("#m-tempo", Input)
        tempo.value = "fast"
        await pilot.pause()
        form = screen.query_one("#edit-form")
        assert "tempo" in form.messages() and "beats per minute" in form.messages()["tempo"]
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert "not saved" in _text(screen, "#edit-msg")
        assert app.focused is tempo
        assert len(Dataset.open(ds.path).versions()) == first_version_count
        tempo.value = "96"
        await pilot.pause()
        assert "tempo" not in form.messages()
        await pilot.press("ctrl+g")
        await _wait(pilot, lambda: screen.busy is None, "the save")
        assert len(Dataset.open(ds.path).versions()) == first_version_count + 1
        saved = next(i for i in Dataset.open(ds.path).items() if i.id == wav.id)
        assert saved.meta["tempo"] == 96.0 and saved.meta_from["tempo"] == "user"
        assert table.get_cell(wav.id, "tempo") == "96"
        assert "saved tempo" in _text(screen, "#edit-msg")

        # several items at once: space marks them, the form sets a value on all of them
        await pilot.press("escape", "b")
        await pilot.pause()
        wavs = [i.id for i in screen.shown if i.kind == "audio"]
        for item_id in wavs:
            table.move_cursor(row=[i.id for i in screen.shown].index(item_id))
            await pilot.press("space")
        await pilot.pause()
        assert screen.marked == set(wavs)
        assert all(table.get_cell(i, "mark") == "✓" for i in wavs)
        await pilot.press("e")
        await pilot.pause()
        assert "Editing 2 marked items" in _text(screen, "#edit-target")
        assert tempo.value == "" and "differs" in tempo.placeholder  # 96 and none
        screen.query_one("#m-genre", Input).value = "folk"
        await pilot.press("ctrl+g")
        await _wait(pilot, lambda: screen.busy is None, "the save of two")
        after = {i.id: i for i in Dataset.open(ds.path).items()}
        assert all(after[i].meta["genre"] == "folk" for i in wavs)
        assert after[wav.id].meta["tempo"] == 96.0  # untouched fields stay
        assert len(Dataset.open(ds.path).versions()) == first_version_count + 2

        # split: every item gets a split; the counts are shown
        await pilot.press("escape", "s")
        await pilot.pause()
        assert screen.pane == "split"
        ratios = screen.query_one("#sp-ratios", Input)
        ratios.value = "lots"
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert "ratios takes numbers like 80,10,10" in _text(screen, "#sp-msg")
        assert len(Dataset.open(ds.path).versions()) == first_version_count + 2  # nothing made
        ratios.value = "34,33,33"
        screen.query_one("#sp-stratify", Select).value = "genre"
        await pilot.pause()
        assert _text(screen, "#sp-msg") == ""
        await pilot.press("ctrl+g")
        await _wait(pilot, lambda: screen.busy is None, "the split")
        step = Dataset.open(ds.path).version().step
        assert step["name"] == "split" and step["stratify"] == "genre" and step["seed"] == 0
        items = Dataset.open(ds.path).items()
        assert all(i.split in ("train", "validation", "test") for i in items)
        counts = Counter(i.split for i in items)
        said = _text(screen, "#sp-counts")
        for name in ("train", "validation", "test"):
            assert f"{name} {counts[name]}" in said, said
        assert all(table.get_cell(i.id, "split") == i.split for i in items)

        # versions: the list, the diff to HEAD, and a checkout of the first one
        await pilot.press("escape", "v")
        await pilot.pause()
        assert screen.pane == "versions"
        history = Dataset.open(ds.path).versions()
        vtable = screen.query_one("#versions", DataTable)
        assert vtable.row_count == len(history) == first_version_count + 3
        assert screen.version_ids == [v.id for v in history]
        assert screen.selected_version == history[0].id == Dataset.open(ds.path).head
        assert vtable.get_row_at(0)[0] == "HEAD"
        assert "is the current version" in _text(screen, "#ver-diff")
        for _ in range(len(history) - 1):
            await pilot.press("down")
        await pilot.pause()
        first = history[-1]
        assert screen.selected_version == first.id and first.count == 0
        diff = _text(screen, "#ver-diff")
        assert "3 added, 0 removed, 0 changed" in diff
        assert all(f"+ {i.path}" in diff for i in items)
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmScreen"
        await pilot.press("y")
        await pilot.pause()
        assert Dataset.open(ds.path).head == first.id
        assert screen.items == [] and table.row_count == 0
        # the later versions are still listed (and can be checked out again)
        assert screen.version_ids == [v.id for v in history]
        marks = [vtable.get_row_at(i)[0] for i in range(vtable.row_count)]
        assert marks == ["other"] * (len(history) - 1) + ["HEAD"]
        assert screen.selected_version == first.id
        assert f"now at version {first.id[:12]}" in screen.status

    _run(_app(tmp_path), test)


# ---- no dataset yet ------------------------------------------------------------------------
def test_the_screen_works_with_no_dataset_at_80_by_24(tmp_path):
    async def test(app, pilot):
        screen = await _data_screen(pilot)
        assert "No datasets yet" in _text(screen, "#ds-where")
        await pilot.press("escape")  # out of the name field: the letters switch tabs
        for key, pane in (("i", "import"), ("b", "items"), ("e", "edit"), ("s", "split")):
            await pilot.press(key)
            await pilot.pause()
            assert screen.pane == pane
            await pilot.press("ctrl+g")
            await pilot.pause()
            assert app._exception is None, app._exception
            focused = app.focused
            assert focused is not None and screen.region.contains_region(focused.region)
            await pilot.press("escape")
        assert "open or make a dataset first" in _text(screen, "#sp-msg")
        assert "choose an item first" in _text(screen, "#edit-msg")
        await pilot.press("v", "ctrl+g")
        await pilot.pause()
        assert "open a dataset" in screen.status
        await pilot.press("d")
        await pilot.pause()
        # a bad name says why in one line
        screen.query_one("#ds-new", Input).value = "bad name!"
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert _text(screen, "#ds-msg")
        assert not (Path(tmp_path) / "datasets").exists() or not any(
            (Path(tmp_path) / "datasets").iterdir()
        )

    _run(_app(tmp_path), test, size=(80, 24))


# ---- problems are said, never a crash; Escape cancels an import -----------------------------
def _fake_ingest(monkeypatch, fn) -> None:
    """Put ``fn`` in place of `engine.data.ingest.import_sources` (the worker imports it)."""
    import sys
    import types

    module = types.ModuleType("engine.data.ingest")
    module.import_sources = fn
    monkeypatch.setitem(sys.modules, "engine.data.ingest", module)


def test_import_problems_bugs_and_cancel_are_said_never_a_crash(tmp_path, monkeypatch, music):
    from engine.data.store import Dataset, DatasetError
    from engine.progress import Progress

    ds = Dataset.create("songs")
    other = Dataset.create("takes")

    def full(ds, sources, *, sidecars=True, progress=None, command=None):
        raise DatasetError(f"the disk holding {ds.path} is full; free some space and run it again")

    def bug(ds, sources, *, sidecars=True, progress=None, command=None):
        raise RuntimeError("a bug")

    def slow(ds, sources, *, sidecars=True, progress=None, command=None):
        for n in range(10_000):
            progress(Progress("files", n, 10_000, f"file {n}"))
            time.sleep(0.01)
        raise AssertionError("never cancelled")

    async def start(app, pilot, screen) -> None:
        screen.action_pane("import")
        await pilot.pause()
        screen.query_one("#imp-source", Input).value = str(music)
        await pilot.press("enter")  # typed sources are added with Enter
        assert screen.sources == [str(music)]
        await pilot.press("ctrl+g")

    async def test(app, pilot):
        screen = await _data_screen(pilot)
        assert screen.ds is not None and screen.ds.path == ds.path  # the first is opened
        # the list chooses another
        await pilot.press("down", "enter")
        await pilot.pause()
        assert screen.ds.path == other.path and "takes" in _text(screen, "#ds-line")
        await pilot.press("up", "enter")
        await pilot.pause()
        assert screen.ds.path == ds.path

        _fake_ingest(monkeypatch, full)
        await start(app, pilot, screen)
        await _wait(pilot, lambda: type(app.screen).__name__ == "ErrorScreen", "the error")
        assert "is full" in str(app.screen.query_one("#error-text").render())
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and screen.busy is None
        assert "is full" in screen.status

        _fake_ingest(monkeypatch, bug)
        await start(app, pilot, screen)
        await _wait(pilot, lambda: type(app.screen).__name__ == "ErrorScreen", "the bug")
        assert "RuntimeError: a bug" in str(app.screen.query_one("#error-text").render())
        await pilot.press("enter")
        await pilot.pause()
        assert screen.busy is None

        _fake_ingest(monkeypatch, slow)
        await start(app, pilot, screen)
        await _wait(pilot, lambda: screen.progress_seen, "the progress")
        await pilot.press("ctrl+g")  # a second start waits for the first
        await pilot.pause()
        assert "still running" in screen.status
        await pilot.press("escape")
        await _wait(pilot, lambda: screen.busy is None, "the cancel")
        assert app.screen is screen  # no modal: the user asked for it
        assert "import cancelled" in screen.status
        bar = screen.query_one("#imp-bar")
        assert not bar.has_class("busy")
        assert bar.progress == screen.progress_seen[-1].done > 0

        # quitting while an import runs cancels it and leaves at once
        await start(app, pilot, screen)
        await _wait(pilot, lambda: screen.busy and screen.progress_seen, "the second import")
        await pilot.press("ctrl+q")
        await pilot.pause(0.5)
        assert not app.is_running

    _run(_app(tmp_path), test)


# ---- a picture of the Items tab -------------------------------------------------------------
def _dataset_with_items():
    """A dataset of three items made in the store (not imported), so that every value on
    screen is the same from run to run: estimated, tagged and user values, a chunk."""
    from engine.data.store import Dataset, Item, item_id

    ds = Dataset.create("demo")
    rows = [
        ("songs/dawn.wav", "audio", 92.5, {"genre": "folk", "tags": ["live"]}, "user"),
        ("songs/dawn~001.wav", "audio", 12.0, {"tempo": 88.0, "key": "D major"}, "estimate"),
        ("sketches/waltz.mid", "midi", 31.0, {"tempo": 120.0, "genre": "waltz"}, "tags"),
    ]
    with ds.change({"name": "import"}, "import 3 files") as ch:
        for path, kind, seconds, meta, source in rows:
            data = f"{path} content".encode()
            item = Item(
                item_id(path),
                path,
                ch.put_bytes(data),
                kind,
                len(data),
                duration_s=seconds,
                group=item_id("songs/dawn.wav") if "dawn" in path else item_id(path),
                source=f"fixture/{path}",
                info={"sample_rate": 44100} if kind == "audio" else {"tracks": 1},
            )
            if "~" in path:
                item.parent = item_id("songs/dawn.wav")
                item.step = "audio"
            ch.put(item.with_meta(meta, source))
    return ds


def test_snapshot_items_tab(tmp_path, snap_compare):
    _dataset_with_items()

    async def before(pilot):
        screen = await _data_screen(pilot)
        screen.action_pane("items")
        await pilot.pause()
        table = screen.query_one("#items", DataTable)
        table.move_cursor(row=1)
        await pilot.pause()
        assert screen.current_id is not None
        for widget in screen.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    assert snap_compare(_app(tmp_path), terminal_size=(120, 40), run_before=before)
