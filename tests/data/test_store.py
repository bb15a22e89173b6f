"""The dataset store: versions, content-addressed files, journalled changes, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.data.store import (
    Dataset,
    DatasetError,
    Item,
    check_meta,
    dataset_path,
    item_id,
    list_datasets,
    materialize,
)


def add_files(ds: Dataset, files: dict[str, bytes], kind: str = "audio", **step) -> str | None:
    with ds.change({"name": "import", **step}, f"add {len(files)}") as ch:
        for path, data in files.items():
            h = ch.put_bytes(data)
            ch.put(Item(item_id(path), path, h, kind, len(data), group=item_id(path)))
    return ch.version


def objects(ds: Dataset) -> list[Path]:
    return sorted(p for p in (ds.path / "objects").rglob("*") if p.is_file())


def test_a_new_dataset_has_one_empty_version(tmp_path):
    ds = Dataset.create(tmp_path / "songs")
    assert ds.items() == []
    assert [v.message for v in ds.versions()] == ["empty dataset"]
    assert ds.ident().startswith(ds.info["id"] + "@")
    with pytest.raises(DatasetError, match="already a dataset"):
        Dataset.create(tmp_path / "songs")
    assert Dataset.create(tmp_path / "songs", exist_ok=True).head == ds.head


def test_names_live_in_the_datasets_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_DATASETS", str(tmp_path / "all"))
    ds = Dataset.create("my-songs")
    assert ds.path == tmp_path / "all" / "my-songs"
    assert list_datasets() == [ds.path]
    assert dataset_path("./here") == Path("./here")
    with pytest.raises(DatasetError, match="not a dataset name"):
        dataset_path("bad name!")


def test_each_change_is_a_version_and_files_are_stored_once(tmp_path):
    ds = Dataset.create(tmp_path / "d")
    v1 = add_files(ds, {"a.wav": b"AAAA", "b.wav": b"BBBB", "copy-of-a.wav": b"AAAA"})
    assert len(objects(ds)) == 2  # the same bytes under two paths are stored once
    v2 = add_files(ds, {"c.wav": b"CCCC"})
    assert ds.head == v2 and ds.version(v2).parent == v1
    assert [i.path for i in ds.items()] == ["a.wav", "b.wav", "c.wav", "copy-of-a.wav"]
    assert [i.path for i in ds.items(v1)] == ["a.wav", "b.wav", "copy-of-a.wav"]
    assert len(objects(ds)) == 3
    # the same items again change nothing and make no version
    assert add_files(ds, {"c.wav": b"CCCC"}) is None
    assert ds.head == v2
    # every stored file is named by its hash and read-only
    for item in ds.items():
        assert ds.file(item).read_bytes() in (b"AAAA", b"BBBB", b"CCCC")
        assert not os.access(ds.file(item), os.W_OK) or os.geteuid() == 0


def test_version_ids_are_content_addressed(tmp_path):
    a, b = Dataset.create(tmp_path / "a"), Dataset.create(tmp_path / "b")
    assert add_files(a, {"x.mid": b"1"}, kind="midi") == add_files(b, {"x.mid": b"1"}, kind="midi")
    assert add_files(a, {"y.mid": b"2"}, kind="midi") != add_files(b, {"y.mid": b"3"}, kind="midi")


def test_checkout_diff_and_history(tmp_path):
    ds = Dataset.create(tmp_path / "d")
    v1 = add_files(ds, {"a.wav": b"A", "b.wav": b"B"})
    with ds.change({"name": "edit"}, "edit") as ch:
        a = ch.by_path("a.wav")
        ch.put(a.with_meta({"genre": "funk", "tempo": "96"}, "user"))
        ch.remove(ch.by_path("b.wav").id)
        h = ch.put_bytes(b"C")
        ch.put(Item(item_id("c.wav"), "c.wav", h, "audio", 1))
    v2 = ch.version
    d = ds.diff(v1, v2)
    assert [i.path for i in d["added"]] == ["c.wav"]
    assert [i.path for i in d["removed"]] == ["b.wav"]
    assert [(n.path, f) for _, n, f in d["changed"]] == [("a.wav", ["meta", "meta_from"])]
    assert ds.resolve("HEAD~1") == v1 and ds.resolve(v1[:6]) == v1
    assert ds.checkout(v1) == v1
    assert [i.path for i in ds.items()] == ["a.wav", "b.wav"]
    # later versions stay and can be checked out again
    assert {v.id for v in ds.versions()} >= {v1, v2}
    ds.checkout(v2)
    assert ds.items()[0].meta == {"genre": "funk", "tempo": 96.0}
    assert [s["name"] for s in ds.pipeline()] == ["create", "import", "edit"]
    with pytest.raises(DatasetError, match="no version"):
        ds.resolve("ffffffff")
    with pytest.raises(DatasetError, match="fewer than"):
        ds.resolve("HEAD~9")


def test_metadata_is_checked_and_marked_with_its_source():
    item = Item("0" * 12, "a.wav", "0" * 64, "audio", 1)
    told = item.with_meta({"instruments": "bass, drums", "tempo": 120}, "sidecar")
    est = told.with_meta({"key": "A minor"}, "estimate")
    assert est.meta == {"instruments": ["bass", "drums"], "tempo": 120.0, "key": "A minor"}
    assert est.estimated == ["key"]
    assert est.with_meta({"key": None}, "user").meta.get("key") is None
    for field, value, needle in (
        ("colour", "red", "unknown metadata field"),
        ("tempo", "fast", "beats per minute"),
        ("tempo", 4000, "out of range"),
        ("tags", 5, "list of words"),
    ):
        with pytest.raises(DatasetError, match=needle):
            check_meta(field, value)


def test_a_failed_change_writes_no_version_and_keeps_its_journal(tmp_path):
    ds = Dataset.create(tmp_path / "d")
    v1 = add_files(ds, {"a.wav": b"A"})
    with pytest.raises(RuntimeError):
        with ds.change({"name": "import"}, "more", resume="job-1") as ch:
            h = ch.put_bytes(b"B")
            ch.put(Item(item_id("b.wav"), "b.wav", h, "audio", 1))
            raise RuntimeError("boom")
    assert ds.head == v1 and len(ds.items()) == 1
    assert (ds.path / "pending.jsonl").is_file()
    # the same work resumes: what was done is taken up, not done again
    with ds.change({"name": "import"}, "more", resume="job-1") as ch:
        assert [i.path for i in ch.done] == ["b.wav"]
        h = ch.put_bytes(b"C")
        ch.put(Item(item_id("c.wav"), "c.wav", h, "audio", 1))
    assert [i.path for i in ds.items()] == ["a.wav", "b.wav", "c.wav"]
    assert not (ds.path / "pending.jsonl").exists()


def test_other_work_first_keeps_what_an_interrupted_change_did(tmp_path):
    ds = Dataset.create(tmp_path / "d")
    with pytest.raises(KeyboardInterrupt):
        with ds.change({"name": "import"}, "import x", resume="job-1") as ch:
            h = ch.put_bytes(b"B")
            ch.put(Item(item_id("b.wav"), "b.wav", h, "audio", 1))
            raise KeyboardInterrupt
    add_files(ds, {"c.wav": b"C"}, resume_note="other")
    history = ds.history()
    assert history[1].message.startswith("kept from an interrupted change")
    assert history[1].step["interrupted"] is True
    assert [i.path for i in ds.items()] == ["b.wav", "c.wav"]


KILLED_WRITER = """
import sys, time
from engine.data.store import Dataset, Item, item_id
ds = Dataset.open(sys.argv[1])
with ds.change({"name": "import"}, "slow import", resume="slow") as ch:
    done = {i.path for i in ch.done}
    for n in range(40):
        path = f"f{n:02d}.wav"
        if path in done:
            continue
        h = ch.put_bytes(f"data {n}".encode() * 1000)
        ch.put(Item(item_id(path), path, h, "audio", 1))
        print(n, flush=True)
        time.sleep(0.05)
"""


def test_kill_9_in_the_middle_of_a_change_loses_and_doubles_nothing(tmp_path):
    ds = Dataset.create(tmp_path / "d")
    head = ds.head
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(ds.path)], stdout=subprocess.PIPE, env=env
    )
    for _ in range(10):
        proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ds.head == head and ds.items() == []  # the manifest on disk is still whole
    journalled = (ds.path / "pending.jsonl").read_text().splitlines()
    assert len(journalled) >= 11  # header + at least 10 items
    before = len(objects(ds))
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(ds.path)], capture_output=True, env=env
    )
    assert done.returncode == 0, done.stderr
    paths = [i.path for i in ds.items()]
    assert paths == [f"f{n:02d}.wav" for n in range(40)]
    assert len(set(i.id for i in ds.items())) == 40
    assert len(objects(ds)) == 40 and before >= 10  # nothing stored twice
    assert not list((ds.path / "objects").glob("*.tmp"))
    for line in (ds.path / "versions" / f"{ds.head}.jsonl").read_text().splitlines():
        json.loads(line)


def test_a_second_writer_is_told_to_wait(tmp_path):
    ds = Dataset.create(tmp_path / "d")
    other = Dataset.open(ds.path)
    with ds.change({"name": "import"}, "one"):
        with pytest.raises(DatasetError, match="another command is changing"):
            with other.change({"name": "import"}, "two"):
                pass


def test_damaged_datasets_are_named(tmp_path):
    ds = Dataset.create(tmp_path / "d")
    add_files(ds, {"a.wav": b"A"})
    (ds.path / "HEAD").write_text("nonsense\n")
    with pytest.raises(DatasetError, match="missing"):
        Dataset.open(ds.path)
    (ds.path / "dataset.json").write_text("{")
    with pytest.raises(DatasetError, match="damaged"):
        Dataset.open(ds.path)
    (tmp_path / "plain").mkdir()
    with pytest.raises(DatasetError, match="not a dataset"):
        Dataset.open(tmp_path / "plain")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="is a file"):
        Dataset.open(tmp_path / "file")
    with pytest.raises(DatasetError, match="not a dataset"):
        Dataset.create(tmp_path / "file")


def test_disk_full_while_writing_a_version_leaves_the_last_one(tmp_path, monkeypatch):
    import errno

    import engine.data.store as store

    ds = Dataset.create(tmp_path / "d")
    v1 = add_files(ds, {"a.wav": b"A"})

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(store, "_write_durable", full)
    with pytest.raises(DatasetError, match="disk .* is full"):
        add_files(ds, {"b.wav": b"B"})
    monkeypatch.undo()
    assert ds.head == v1 and [i.path for i in ds.items()] == ["a.wav"]
    # the journal still holds b.wav: the next import of the same kind keeps it
    add_files(ds, {"c.wav": b"C"})
    assert [i.path for i in ds.items()] == ["a.wav", "b.wav", "c.wav"]


def test_materialize_copies_files_and_never_replaces(tmp_path):
    ds = Dataset.create(tmp_path / "d")
    add_files(ds, {"songs/a.wav": b"A", "b.wav": b"B"})
    out = materialize(ds, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in out) == [
        "b.wav",
        "songs/a.wav",
    ]
    (tmp_path / "out" / "b.wav").chmod(0o644)
    (tmp_path / "out" / "b.wav").write_bytes(b"edited")  # never reaches the store
    assert ds.file(ds.find(["b.wav"])[0]).read_bytes() == b"B"
    with pytest.raises(DatasetError, match="not empty"):
        materialize(ds, tmp_path / "out")


def test_find_by_id_path_glob_and_prefix(tmp_path):
    ds = Dataset.create(tmp_path / "d")
    add_files(ds, {"songs/a.wav": b"A", "songs/b.wav": b"B", "x.wav": b"X"})
    a = ds.find(["songs/a.wav"])[0]
    assert [i.path for i in ds.find(["songs/*"])] == ["songs/a.wav", "songs/b.wav"]
    assert ds.find([a.id[:6]]) == [a] and ds.find([a.id]) == [a]
    assert len(ds.find(["all"])) == 3
    with pytest.raises(DatasetError, match="no item 'nope'"):
        ds.find(["nope"])


def test_discard_if_empty_removes_only_what_a_new_dataset_is_made_of(tmp_path):
    ds = Dataset.create(tmp_path / "new")
    assert ds.discard_if_empty() and not (tmp_path / "new").exists()
    # something of the user's inside: the dataset's own files go, the folder and theirs stay
    ds = Dataset.create(tmp_path / "kept")
    (ds.path / "objects" / "my-notes.txt").write_text("mine")
    with pytest.raises(OSError):
        ds.discard_if_empty()
    assert (ds.path / "objects" / "my-notes.txt").read_text() == "mine"
    # a dataset with items, or with an interrupted change, is never removed
    ds = Dataset.create(tmp_path / "full")
    add_files(ds, {"a.wav": b"A"})
    assert not ds.discard_if_empty() and len(ds.items()) == 1
    ds = Dataset.create(tmp_path / "pending")
    with pytest.raises(RuntimeError):
        with ds.change({"name": "import"}, "x", resume="r") as ch:
            ch.put(Item(item_id("a.wav"), "a.wav", ch.put_bytes(b"A"), "audio", 1))
            raise RuntimeError
    assert not ds.discard_if_empty() and (ds.path / "pending.jsonl").is_file()


def test_a_bare_name_beside_a_plain_folder_of_that_name_is_the_named_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCO_MUSICA_DATASETS", str(tmp_path / "all"))
    (tmp_path / "demo").mkdir()
    assert dataset_path("demo") == tmp_path / "all" / "demo"
    Dataset.create(tmp_path / "here")
    assert dataset_path("here") == Path("here")  # a dataset right here
    (tmp_path / "notes.txt").write_text("x")
    assert dataset_path("notes.txt") == Path("notes.txt")  # refused later as a file
