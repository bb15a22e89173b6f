"""``disco-musica data`` list, show, tag, edit, remove, split, versions, diff, checkout."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.data.store import Dataset, Item, item_id


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_DATASETS", str(tmp_path / "datasets"))
    return tmp_path


@pytest.fixture
def songs(home):
    ds = Dataset.create("songs")
    with ds.change({"name": "import"}, "add") as ch:
        for n in range(6):
            path = f"takes/take{n}.wav"
            h = ch.put_bytes(f"take {n}".encode())
            item = Item(item_id(path), path, h, "audio", 7, duration_s=30.0, group=f"g{n // 2}")
            ch.put(item.with_meta({"key": "A minor"}, "estimate"))
    return ds


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["data", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_and_show(songs, capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0 and "songs" in out and "6 items" in out
    code, out, _ = run(capsys, "show", "songs")
    assert code == 0
    assert songs.ident() in out
    assert "6 items (6 audio), 0.05 h" in out
    assert "~A minor" in out  # estimates are marked
    code, out, _ = run(capsys, "show", "songs", "takes/take1.wav", "--json")
    shown = json.loads(out)
    assert [i["path"] for i in shown["items"]] == ["takes/take1.wav"]
    assert shown["items"][0]["estimated"] == ["key"]


def test_tag_edit_remove_each_make_a_version(songs, capsys):
    first = songs.head
    assert run(capsys, "tag", "songs", "live", "raw", "--items", "takes/take[01].wav")[0] == 0
    tagged = [i for i in songs.items() if i.meta.get("tags")]
    assert [i.meta["tags"] for i in tagged] == [["live", "raw"], ["live", "raw"]]
    assert run(capsys, "tag", "songs", "raw", "--remove", "--items", "all")[0] == 0
    assert {tuple(i.meta.get("tags", [])) for i in songs.items()} == {("live",), ()}
    code, out, _ = run(
        capsys, "edit", "songs", "takes/*", "--set", "genre=funk", "--set", "key=E minor"
    )
    assert code == 0 and "now at version" in out
    item = songs.items()[0]
    assert item.meta["key"] == "E minor" and item.meta_from["key"] == "user"
    assert item.estimated == []
    assert run(capsys, "edit", "songs", "takes/take5.wav", "--split", "test")[0] == 0
    assert songs.find(["takes/take5.wav"])[0].split == "test"
    assert run(capsys, "remove", "songs", "takes/take5.wav")[0] == 0
    assert len(songs.items()) == 5
    code, out, _ = run(capsys, "versions", "songs")
    assert out.count("\n") == 8 and out.startswith("* ")  # 7 versions + the legend line
    code, out, _ = run(capsys, "diff", "songs", first, "HEAD")
    assert "- takes/take5.wav" in out and "~ takes/take0.wav: meta, meta_from" in out
    code, out, _ = run(capsys, "checkout", "songs", first)
    assert code == 0 and len(songs.items()) == 6 and songs.head == first


def test_edit_group_makes_items_one_song(songs, capsys):
    assert run(capsys, "edit", "songs", "takes/take[0-3].wav", "--group", "night-drive")[0] == 0
    assert {i.path: i.group for i in songs.items()} == {
        **{f"takes/take{n}.wav": "night-drive" for n in range(4)},
        "takes/take4.wav": "g2",
        "takes/take5.wav": "g2",
    }
    code, _, err = run(capsys, "edit", "songs", "all", "--group", " ")
    assert code == 2 and "--group takes a name" in err


def test_split_groups_songs(songs, capsys):
    code, out, _ = run(capsys, "split", "songs", "--ratios", "34,33,33", "--seed", "2")
    assert code == 0
    splits = {}
    for i in songs.items():
        splits.setdefault(i.group, set()).add(i.split)
    assert all(len(s) == 1 for s in splits.values())
    assert {next(iter(s)) for s in splits.values()} == {"train", "validation", "test"}


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["show", "nope"], "no dataset 'nope'"),
        (["show", "songs", "missing.wav"], "no item 'missing.wav'"),
        (["edit", "songs", "all", "--set", "tempo=fast"], "beats per minute"),
        (["edit", "songs", "all", "--set", "colour=red"], "unknown metadata field"),
        (["edit", "songs", "all", "--set", "genre"], "FIELD=VALUE"),
        (["edit", "songs", "all"], "say what to change"),
        (["split", "songs", "--ratios", "1,2,3,4"], "ratios"),
        (["split", "songs", "--stratify", "colour"], "stratify"),
        (["checkout", "songs", "abcdef12"], "no version"),
        (["diff", "songs", "HEAD~5"], "fewer than 5"),
    ],
)
def test_refusals_are_one_line_and_change_nothing(songs, capsys, argv, needle):
    head = songs.head
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err
    assert songs.head == head


def test_a_reader_that_goes_away_ends_the_command_quietly(songs, tmp_path):
    import os
    import subprocess
    import sys

    with songs.change({"name": "import"}, "many") as ch:
        h = ch.put_bytes(b"x")
        for n in range(5000):
            ch.put(Item(item_id(f"many/{n}.wav"), f"many/{n}.wav", h, "audio", 1))
    shell = f"{sys.executable} -m engine.cli data show songs --limit 0 | head -1"
    env = {**os.environ, "PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[2])}
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=env)
    assert done.stdout.startswith("songs  ID ")
    assert done.stderr == ""  # no "error: [Errno 32] Broken pipe", no traceback
