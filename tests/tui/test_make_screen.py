"""The studio's Make screen, driven with Textual's Pilot: the real shipped model, a temporary
library and output folder. A person's flows: type → generate → rate → find it in the library
→ replay → identical files; cancel mid-way leaves nothing; a change while the piece is
written reaches the bars after it; variations; a change after it is written keeps a new
version."""

from __future__ import annotations

import asyncio
import io
import json
import time

import mido
import pytest
from textual.widgets import Input

from tui.app import make_app
from tui.screens.make import MakeScreen, folder_name, unique_folder


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))


def _app(tmp_path, **kw):
    return make_app(
        library=tmp_path / "lib",
        output=tmp_path / "out",
        settings_file=tmp_path / "s.json",
        first_run=False,
        audio=False,
        **kw,
    )


async def _wait(pilot, done, timeout: float = 120.0, step: float = 0.2) -> None:
    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, "timed out"
        await pilot.pause(step)


async def _type(pilot, text: str) -> None:
    screen = pilot.app.screen
    screen.query_one("#prompt", Input).value = text
    await pilot.pause()


def _library(tmp_path):
    from engine.library.store import Library

    return Library.open(tmp_path / "lib", write=False)


def _leftovers(root):
    """Anything in the output folder that is not a finished piece's folder."""
    if not root.exists():
        return []
    return [p.name for p in root.iterdir() if p.name.startswith(".") or not p.is_dir()]


def test_folder_names_never_replace(tmp_path):
    assert folder_name("A calm Chorale, in G!", 12) == "a-calm-chorale-in-g-12"
    assert folder_name("", 3) == "piece-3"
    (tmp_path / "x-1").mkdir()
    (tmp_path / "x-1-2").mkdir()
    assert unique_folder(tmp_path, "x-1") == tmp_path / "x-1-3"


def test_type_generate_rate_find_replay_identical(tmp_path):
    """The flow of the issue: type a prompt → generate → rate → find it in the library →
    replay → identical files."""

    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            make = app.screen
            assert isinstance(make, MakeScreen)
            await _type(pilot, "a calm chorale in G major for choir, 4 bars")
            await pilot.pause(1.0)  # the understanding table is read after a debounce
            await _wait(pilot, lambda: make.query_one("#understanding").plan_summary is not None)
            assert make.query_one("#understanding").plan_summary["bars"] == 4
            controls = make.query_one("#controls")
            controls.set_values(seed=7)
            await pilot.pause(0.5)
            await pilot.press("ctrl+g")
            await _wait(pilot, lambda: not make.busy and make.piece is not None)
            piece = make.piece
            assert piece["id"] and (piece["folder"] / "generation.json").is_file()
            assert make.query_one("#roll").data.bars == 4
            await pilot.press("escape")  # out of the prompt box
            await pilot.press("4")
            await _wait(pilot, lambda: make.piece.get("rating") == 4, timeout=20)
            await pilot.press("b")  # the piece on the Library screen
            await pilot.pause(1.0)
            library = app.screen
            assert library.NAME == "library"
            assert piece["id"] in library.shown_ids
            await pilot.press("p")  # replay it
            await _wait(pilot, lambda: any("identical" in a for a in app.announcements), 60)
            return piece

    piece = asyncio.run(run())
    with _library(tmp_path) as lib:
        kept = lib.get(piece["id"])
        assert kept.rating == 4
        record = json.loads((piece["folder"] / "generation.json").read_text())
        assert record["request"]["by_bar"] is True and record["seed"] == 7
        pieces = lib.list()
        assert len(pieces) == 2  # the piece and its replay
        replayed = next(p for p in pieces if p.id != piece["id"])
        folder = lib.folder_path(replayed)
        for name in ("music.mid", "music.musicxml"):
            assert (folder / name).read_bytes() == (piece["folder"] / name).read_bytes(), name
    assert _leftovers(tmp_path / "out") == []


def test_cancel_mid_generation_leaves_nothing(tmp_path):
    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            make = app.screen
            await _type(pilot, "a chorale for choir in G major, 64 bars")
            await pilot.press("ctrl+g")
            await _wait(pilot, lambda: make.writer is not None and make.writer.written >= 3)
            await pilot.press("escape")
            await _wait(pilot, lambda: not make.busy, timeout=30)
            assert make.writer.written < make.writer.total
            assert make.piece is None
            status = str(make.query_one("#status").render())
            assert "cancelled" in status.lower()

    asyncio.run(run())
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []
    if (tmp_path / "lib").exists():  # the library is made by the first piece kept
        with _library(tmp_path) as lib:
            assert lib.list() == []


@pytest.mark.parametrize(
    "seed", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)]
)
def test_tempo_change_while_writing_reaches_the_bars_after_it(tmp_path, seed):
    """`>` while bar k is being written: the tempo changes from the next bar written, and
    the record (and so replay) holds the change there."""

    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            make = app.screen
            await _type(pilot, "a chorale for choir in G major, 60 bpm, 16 bars")
            make.query_one("#controls").set_values(seed=seed)
            await pilot.pause(0.5)
            await pilot.press("ctrl+g")
            await _wait(pilot, lambda: make.writer is not None and make.writer.written >= 2)
            make.query_one("#roll").focus()
            written = make.writer.written
            await pilot.press("greater_than_sign")
            await _wait(pilot, lambda: not make.busy and make.piece is not None)
            return written, make.piece

    written, piece = asyncio.run(run())
    record = json.loads((piece["folder"] / "generation.json").read_text())
    changes = record["request"]["changes"]
    assert len(changes) == 1 and changes[0]["tempo_bpm"] == 65.0
    bar = changes[0]["bar"]
    assert written + 1 <= bar <= written + 3  # the next bar not yet written when it came
    mid = mido.MidiFile(file=io.BytesIO((piece["folder"] / "music.mid").read_bytes()))
    tempos = [(t, m.tempo) for t, m in _absolute(mid) if m.type == "set_tempo"]
    bar_ticks = 4 * mid.ticks_per_beat
    assert tempos == [(0, mido.bpm2tempo(60)), ((bar - 1) * bar_ticks, mido.bpm2tempo(65))]


def _absolute(mid):
    for track in mid.tracks:
        t = 0
        for m in track:
            t += m.time
            yield t, m


def test_variations_side_by_side_and_pick(tmp_path):
    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            make = app.screen
            await _type(pilot, "a folk song for flute, 2 bars")
            make.query_one("#controls").set_values(seed=11, variations=3)
            await pilot.pause(0.5)
            await pilot.press("ctrl+g")
            await _wait(pilot, lambda: not make.busy and len(make.variations) == 3)
            await pilot.pause()
            buttons = list(make.query(".variation Button"))
            assert len(buttons) == 3
            assert make.piece["id"] == make.variations[0]["id"]
            await pilot.click(f"#{buttons[2].id}")
            await pilot.pause()
            assert make.piece["id"] == make.variations[2]["id"]
            return [v["record"]["seed"] for v in make.variations]

    seeds = asyncio.run(run())
    assert seeds == [11, 12, 13]
    with _library(tmp_path) as lib:
        assert len(lib.list()) == 3


@pytest.mark.slow  # 25 s; tests/pipelines/test_live.py keeps creativity changes by default
def test_creativity_change_after_writing_keeps_a_changed_version(tmp_path):
    """Once written, a creativity change rewrites the bars from the playhead's next bar; the
    changed version is kept as a new piece that the library traces to the first, and it
    replays to the same files."""

    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            make = app.screen
            await _type(pilot, "a chorale for choir in G major, 6 bars")
            make.query_one("#controls").set_values(seed=5)
            await pilot.pause(0.5)
            await pilot.press("ctrl+g")
            await _wait(pilot, lambda: not make.busy and make.piece is not None)
            first = make.piece
            make.apply_change(creativity=1.0)
            await _wait(pilot, lambda: make.piece is not first and make.piece.get("changed"), 60)
            return first, make.piece

    first, changed = asyncio.run(run())
    record = json.loads((changed["folder"] / "generation.json").read_text())
    assert record["request"]["changes"] == [{"bar": 1, "creativity": 1.0}]
    with _library(tmp_path) as lib:
        tree = lib.lineage(changed["id"])
        text = json.dumps(tree)
        assert first["id"] in text and "changed" in text
    from engine.pipelines.replay import replay

    _, same = replay(changed["folder"] / "generation.json", tmp_path / "again")
    assert all(same.values()), same


def test_keep_tag_note_collection_and_rewrite_bars(tmp_path):
    """Tag, note and collection by key (a line of text each); rewrite bars 2-3 keeps the
    rest and is kept in the library, traced to the piece (the CLI's regenerate, replayable
    from its sidecar)."""

    async def answer(pilot, key: str, text: str) -> None:
        await pilot.press(key)
        await pilot.pause()
        pilot.app.screen.query_one(Input).value = text
        await pilot.press("enter")
        await pilot.pause(0.5)

    async def run():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            make = app.screen
            await _type(pilot, "a chorale for choir in G major, 4 bars")
            make.query_one("#controls").set_values(seed=3)
            await pilot.pause(0.5)
            await pilot.press("ctrl+g")
            await _wait(pilot, lambda: not make.busy and make.piece is not None)
            first = dict(make.piece)
            make.query_one("#roll").focus()
            await answer(pilot, "t", "warm, slow")
            await answer(pilot, "n", "the one for Sunday")
            await answer(pilot, "c", "sunday")
            await _wait(pilot, lambda: any("collection sunday" in a for a in app.announcements))
            await answer(pilot, "r", "2-3")
            await _wait(pilot, lambda: make.piece["id"] != first["id"] and not make.busy, 90)
            return first, make.piece

    first, rewritten = asyncio.run(run())
    with _library(tmp_path) as lib:
        kept = lib.get(first["id"])
        assert sorted(kept.tags) == ["slow", "warm"]
        assert kept.note == "the one for Sunday"
        assert [p.id for p in lib.list(collection="sunday")] == [first["id"]]
        new = lib.get(rewritten["id"])
        assert new.operation == "regenerate"
        assert first["id"] in json.dumps(lib.lineage(new.id))
    from symusic import Score

    old = Score.from_file(str(first["folder"] / "music.mid"))
    new_score = Score.from_midi(rewritten["midi"])
    bar = old.ticks_per_quarter * 4

    def notes(score, lo, hi):
        return sorted(
            (t.name, n.time, n.pitch) for t in score.tracks for n in t.notes if lo <= n.time < hi
        )

    assert notes(old, 0, bar) == notes(new_score, 0, bar)  # bar 1 kept
    assert notes(old, 3 * bar, 4 * bar) == notes(new_score, 3 * bar, 4 * bar)  # bar 4 kept


def test_the_next_bar_is_the_one_after_the_playhead():
    from tui.screens.make import next_bar

    lines = [0.0, 2.0, 4.0, 6.0, 8.0]  # 4 bars of 2 s
    assert next_bar(lines, 0.5, 4) == 2  # in bar 1: from bar 2
    assert next_bar(lines, 2.0, 4) == 3  # at bar 2's line: bar 2 is being heard
    assert next_bar(lines, 5.9, 4) == 4
    assert next_bar(lines, 7.0, 4) == 4  # in the last bar: nothing after it, the last
