"""A dataset out and in: `engine.data.hf` (plain files + manifest, Hugging Face `datasets`)
and ``disco-musica data export`` / ``data load-hf``."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from engine.cli import main
from engine.data import hf
from engine.data.store import Dataset, DatasetError, Item, item_id


# ---- fixtures built here -------------------------------------------------------------------------
def wav_bytes(seconds: float = 0.5, rate: int = 8000, freq: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * freq * t), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def midi_bytes() -> bytes:
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for pitch in (60, 64, 67):
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=480))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 90)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets
    import huggingface_hub.constants as hub

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    return tmp_path


def _put(ch, path, data, kind, **kw) -> Item:
    h = ch.put_bytes(data)
    return ch.put(Item(item_id(path), path, h, kind, len(data), **kw))


@pytest.fixture
def songs(home) -> Dataset:
    """WAV, MIDI and an image; metadata told and estimated; splits; chunks of one song with
    their parent and group; and two versions."""
    ds = Dataset.create("songs")
    with ds.change({"name": "import", "sources": ["~/Music"]}, "import") as ch:
        whole = _put(ch, "songs/a.wav", wav_bytes(1.0), "audio", duration_s=1.0, group="songs/a")
        _put(ch, "midi/sketch.mid", midi_bytes(), "midi", duration_s=1.5, info={"tracks": 1})
    with ds.change({"name": "audio", "segment": [0.5, 0.5]}, "chunks") as ch:
        for n, freq in enumerate((440.0, 660.0)):
            path = f"songs/a~{n:03d}.wav"
            item = Item(
                item_id(path),
                path,
                ch.put_bytes(wav_bytes(0.5, freq=freq)),
                "audio",
                len(wav_bytes(0.5, freq=freq)),
                duration_s=0.5,
                group="songs/a",
                parent=whole.id,
                step="audio",
                info={"sample_rate": 8000, "channels": 1},
            )
            item = item.with_meta({"genre": "funk", "instruments": "bass, drums"}, "user")
            ch.put(item.with_meta({"tempo": 96.5, "key": "A minor"}, "estimate"))
        ch.remove(whole.id)
        cover = _put(ch, "art/cover.png", png_bytes(), "image", info={"width": 4, "height": 3})
        ch.put(cover.with_meta({"caption": "a red cover", "tags": ["art", "cover"]}, "sidecar"))
    with ds.change({"name": "split", "ratios": [50, 0, 50]}, "split") as ch:
        for item in list(ch.items.values()):
            split = "train" if item.group == "songs/a" else "test"
            if item.kind == "image":
                split = None
            ch.put(Item(**{**item.__dict__, "split": split}))
    return ds


def facts(item: Item) -> tuple:
    return (
        item.id,
        item.path,
        item.hash,
        item.kind,
        item.size,
        item.duration_s,
        item.split,
        item.group,
        item.parent,
        item.step,
        item.meta,
        item.estimated,
        item.info,
    )


# ---- export to plain files -----------------------------------------------------------------------
def test_export_files_writes_the_files_manifest_and_dataset_json(songs, tmp_path):
    out = hf.export_files(songs, tmp_path / "out")
    items = songs.items()
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted([i.path for i in items] + ["manifest.jsonl", "dataset.json"])
    for item in items:
        assert (out / item.path).read_bytes() == songs.file(item).read_bytes()
    manifest = (songs.path / "versions" / f"{songs.head}.jsonl").read_bytes()
    assert (out / "manifest.jsonl").read_bytes() == manifest
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert [Item.from_json(json.loads(line)) for line in lines] == items
    info = json.loads((out / "dataset.json").read_text())
    assert info["id"] == songs.ident() and info["name"] == "songs"
    assert info["pipeline"] == songs.pipeline()
    assert [s["name"] for s in info["pipeline"]] == ["create", "import", "audio", "split"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_export_files_of_an_earlier_version_into_an_empty_folder(songs, tmp_path):
    (tmp_path / "empty").mkdir()
    out = hf.export_files(songs, tmp_path / "empty", version="HEAD~2")
    old = songs.items("HEAD~2")
    assert sorted(i.path for i in old) == ["midi/sketch.mid", "songs/a.wav"]
    assert (out / "songs/a.wav").read_bytes() == songs.file(old[1]).read_bytes()
    assert json.loads((out / "dataset.json").read_text())["id"] == songs.ident("HEAD~2")


def test_export_refuses_a_folder_that_is_not_empty_or_a_file(songs, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep me")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("notes")
    for fn in (hf.export_files, hf.export_hf):
        with pytest.raises(DatasetError, match="exists and is not empty"):
            fn(songs, full)
        with pytest.raises(DatasetError, match="is a file"):
            fn(songs, a_file)
    assert [p.name for p in full.iterdir()] == ["mine.txt"]
    assert (full / "mine.txt").read_text() == "keep me" and a_file.read_text() == "notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["datasets", "full", "notes.txt"]


# ---- to Hugging Face -----------------------------------------------------------------------------
def test_to_hf_columns_splits_and_lossless_files(songs):
    from datasets import Audio, List, Value

    dd = hf.to_hf(songs)
    assert list(dd) == ["train", "test", "unassigned"]
    features = dd["train"].features
    assert features["audio"] == Audio(decode=False)
    assert features["file"] == Value("binary")
    assert features["instruments"] == List(Value("string"))
    assert features["tempo"] == Value("float64")
    rows = {r["path"]: r for name in dd for r in dd[name]}
    by_path = {i.path: i for i in songs.items()}
    assert sorted(rows) == sorted(by_path)
    chunk = rows["songs/a~001.wav"]
    item = by_path["songs/a~001.wav"]
    assert chunk["file"] is None
    assert chunk["audio"]["bytes"] == songs.file(item).read_bytes()
    assert chunk["instruments"] == ["bass", "drums"] and chunk["tempo"] == 96.5
    assert chunk["estimated"] == ["key", "tempo"]
    assert json.loads(chunk["info"]) == {"sample_rate": 8000, "channels": 1}
    assert chunk["parent"] == item_id("songs/a.wav") and chunk["group"] == "songs/a"
    assert chunk["split"] == "train"
    cover = rows["art/cover.png"]
    assert cover["audio"] is None and cover["split"] is None
    assert cover["file"] == songs.file(by_path["art/cover.png"]).read_bytes()
    assert cover["tags"] == ["art", "cover"] and cover["caption"] == "a red cover"
    midi = rows["midi/sketch.mid"]
    assert midi["kind"] == "midi" and midi["file"] == midi_bytes()
    assert set(dd["test"]["path"]) == {"midi/sketch.mid"}


def test_an_empty_version_is_not_exported_to_hugging_face(home, tmp_path):
    empty = Dataset.create("empty")
    with pytest.raises(DatasetError, match="empty has no items in version"):
        hf.export_hf(empty, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    out = hf.export_files(empty, tmp_path / "files")  # the files export says so plainly
    assert (out / "manifest.jsonl").read_bytes() == b""


def test_split_rule_unassigned_items_go_to_train_only_when_nothing_is_split(songs):
    assert set(hf.to_hf(songs, "HEAD~1")) == {"train"}  # before the split step
    items = songs.items("HEAD~1")
    assert hf.hf_split_names(items) == {None: "train"}
    assert hf.hf_split_names(songs.items()) == {
        "train": "train",
        "test": "test",
        None: "unassigned",
    }


def test_to_hf_uses_its_tables_again_and_refuses_another_versions(songs, tmp_path):
    first = hf.to_hf(songs, cache_dir=tmp_path / "tables")
    stamp = (tmp_path / "tables" / "train.arrow").stat().st_mtime_ns
    again = hf.to_hf(songs, cache_dir=tmp_path / "tables")
    assert (tmp_path / "tables" / "train.arrow").stat().st_mtime_ns == stamp
    assert list(again["train"]["hash"]) == list(first["train"]["hash"])
    with pytest.raises(DatasetError, match="another dataset or version"):
        hf.to_hf(songs, "HEAD~1", cache_dir=tmp_path / "tables")


def test_export_hf_then_load_hf_gives_the_same_items(songs, tmp_path):
    import datasets

    events = []
    done = hf.export_hf(songs, tmp_path / "hf-out", progress=events.append)
    assert done.splits == {"train": 2, "test": 1, "unassigned": 1}
    assert (events[-1].stage, events[-1].done, events[-1].total) == ("items", 4, 4)
    saved = datasets.load_from_disk(str(tmp_path / "hf-out"))
    assert set(saved) == {"train", "test", "unassigned"}
    card = (tmp_path / "hf-out" / "README.md").read_text()
    for text in (songs.ident(), "# songs", "Items: 4 (2 audio, 1 midi, 1 image", "user's own"):
        assert text in card
    assert "`audio` (version" in card and "train 2, test 1, unassigned 1" in card
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf-out.")]

    back = Dataset.create("back")
    events = []
    report = hf.load_hf(str(tmp_path / "hf-out"), back, command=["test"], progress=events.append)
    assert (events[-1].stage, events[-1].done, events[-1].total) == ("rows", 4, 4)
    assert back.version().command == ["test"]
    assert (report.added, report.replaced, report.unchanged, report.skipped) == (4, 0, 0, [])
    assert report.splits == {"train": 2, "test": 1, "unassigned": 1}
    ours = {i.path: i for i in songs.items()}
    theirs = {i.path: i for i in back.items()}
    assert {p: facts(i) for p, i in theirs.items()} == {p: facts(i) for p, i in ours.items()}
    for path, item in theirs.items():
        assert back.file(item).read_bytes() == songs.file(ours[path]).read_bytes()
        told = {f: s for f, s in item.meta_from.items() if s != "estimate"}
        assert set(told.values()) <= {"import"}
    assert theirs["songs/a~000.wav"].meta_from == {
        "genre": "import",
        "instruments": "import",
        "tempo": "estimate",
        "key": "estimate",
    }
    assert back.version().step["name"] == "load-hf"

    again = hf.load_hf(str(tmp_path / "hf-out"), back)  # nothing new: no new version
    assert (again.added, again.unchanged, again.version) == (0, 4, None)
    only = Dataset.create("only-test")
    report = hf.load_hf(str(tmp_path / "hf-out"), only, split="test")
    assert [i.path for i in only.items()] == ["midi/sketch.mid"] and report.added == 1


def test_load_hf_into_a_dataset_that_has_the_path_replaces_it(songs, tmp_path):
    hf.export_hf(songs, tmp_path / "hf-out")
    other = Dataset.create("other")
    with other.change({"name": "import"}, "mine") as ch:
        mine = _put(ch, "midi/sketch.mid", b"MThd other", "midi")
    report = hf.load_hf(str(tmp_path / "hf-out"), other)
    assert (report.added, report.replaced) == (3, 1)
    loaded = other.find(["midi/sketch.mid"])[0]
    assert loaded.id == mine.id and loaded.hash == hashlib.sha256(midi_bytes()).hexdigest()
    assert [i.hash for i in other.items("HEAD~1")] == [mine.hash]  # the older version keeps it


def test_an_interrupted_load_continues_without_doubles(songs, tmp_path, monkeypatch):
    hf.export_hf(songs, tmp_path / "hf-out")
    back = Dataset.create("back")
    real, calls = hf._put, []

    def dies_on_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(hf, "_put", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        hf.load_hf(str(tmp_path / "hf-out"), back)
    assert (back.path / "pending.jsonl").is_file() and back.items() == []
    monkeypatch.setattr(hf, "_put", real)
    report = hf.load_hf(str(tmp_path / "hf-out"), back)
    assert report.added + report.unchanged == 4
    assert sorted(i.path for i in back.items()) == sorted(i.path for i in songs.items())
    assert len(back.versions()) == 2  # created, then the one load


# ---- refusals ------------------------------------------------------------------------------------
def _save_rows(folder, rows: dict) -> str:
    import datasets

    datasets.Dataset.from_dict(rows).save_to_disk(str(folder))
    return str(folder)


@pytest.mark.parametrize("bad", ["../evil.mid", "/etc/evil.mid", "a/../../evil.mid", ""])
def test_load_hf_refuses_an_unsafe_path_and_loads_nothing(home, tmp_path, bad):
    data = midi_bytes()
    sha = hashlib.sha256(data).hexdigest()
    rows = {
        "path": ["fine.mid", bad],
        "kind": ["midi", "midi"],
        "hash": [sha, sha],
        "file": [data, data],
    }
    folder = _save_rows(tmp_path / "evil", rows)
    target = Dataset.create("target")
    with pytest.raises(DatasetError, match="unsafe path"):
        hf.load_hf(folder, target)
    assert target.items() == [] and len(target.versions()) == 1
    assert not (target.path / "pending.jsonl").exists()


def test_load_hf_refuses_two_rows_at_one_path_and_skips_a_damaged_row(home, tmp_path):
    data = midi_bytes()
    sha = hashlib.sha256(data).hexdigest()
    rows = {"path": ["a.mid", "./a.mid"], "kind": ["midi"] * 2, "hash": [sha] * 2}
    folder = _save_rows(tmp_path / "twice", {**rows, "file": [data, data]})
    with pytest.raises(DatasetError, match="two rows with the path 'a.mid'"):
        hf.open_hf_source(folder)
    rows = {"path": ["a.mid", "b.mid"], "kind": ["midi", "midi"], "hash": [sha, sha]}
    folder = _save_rows(tmp_path / "damaged", {**rows, "file": [data, data + b"x"]})
    target = Dataset.create("target")
    report = hf.load_hf(folder, target)
    assert [i.path for i in target.items()] == ["a.mid"]
    assert report.skipped == [("b.mid", "its bytes do not match its hash (damaged)")]


def test_load_hf_refuses_what_is_not_a_saved_dataset(home, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "notes.txt").write_text("notes")
    for source, pattern in [
        (tmp_path / "empty", "not a saved Hugging Face dataset"),
        (tmp_path / "photos", "not a saved Hugging Face dataset"),
        (tmp_path / "notes.txt", "is a file, not a saved dataset folder"),
        ("no-such-folder", "no folder 'no-such-folder'"),
        ("someone/nothing", "could not load someone/nothing from the Hugging Face Hub"),
    ]:
        with pytest.raises(DatasetError, match=pattern):
            hf.open_hf_source(str(source))
    no_audio = _save_rows(tmp_path / "numbers", {"x": [1, 2], "label": [0, 1]})
    with pytest.raises(DatasetError, match="neither Disco-Musica's columns.*x, label"):
        hf.open_hf_source(no_audio)


def test_a_push_that_cannot_work_is_refused_before_any_export(songs, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DatasetError, match="cannot push to me/songs: .* offline mode"):
        hf.export_hf(songs, tmp_path / "pushed", push_to="me/songs")
    with pytest.raises(DatasetError, match="not a Hub dataset name"):
        hf.export_hf(songs, tmp_path / "pushed", push_to="no slash")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(DatasetError, match="no Hugging Face token to push me/songs"):
        hf.export_hf(songs, tmp_path / "pushed", push_to="me/songs")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_failed_push_writes_nothing(songs, tmp_path, monkeypatch):
    """The push itself needs the network (not reached here): its failure is one error and
    leaves no folder behind."""
    import datasets

    monkeypatch.setattr(hf, "check_can_push", lambda repo: None)

    def no_network(self, repo, **kw):
        raise ConnectionError("no network here")

    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", no_network)
    with pytest.raises(DatasetError, match="could not push .* as me/songs .no network here"):
        hf.export_hf(songs, tmp_path / "pushed", push_to="me/songs")
    assert not (tmp_path / "pushed").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pushed.")]


# ---- foreign datasets ----------------------------------------------------------------------------
def test_a_foreign_audio_dataset_with_labels_loads_into_items(home, tmp_path):
    import datasets
    from datasets import Audio, ClassLabel, Features, Value

    flac = io.BytesIO()
    sf.write(flac, np.zeros(4000), 8000, format="FLAC")
    clips = [wav_bytes(0.25), wav_bytes(0.5, freq=220.0), flac.getvalue()]
    features = Features(
        {
            "audio": {"bytes": Value("binary"), "path": Value("string")},
            "label": ClassLabel(names=["rock", "jazz"]),
            "text": Value("string"),
            "speaker": Value("int64"),
        }
    )
    train = datasets.Dataset.from_dict(
        {
            "audio": [
                {"bytes": clips[0], "path": "/home/someone/clips/one.wav"},
                {"bytes": clips[1], "path": None},
                {"bytes": b"not audio at all", "path": "junk.wav"},
            ],
            "label": [1, 0, 0],
            "text": ["a slow swing", "loud riffs", "junk"],
            "speaker": [3, 4, 5],
        },
        features=features,
    ).cast_column("audio", Audio())
    valid = datasets.Dataset.from_dict(
        {
            "audio": [
                {"bytes": clips[2], "path": "one.wav"},
                {"bytes": clips[1], "path": "one.wav"},
            ],
            "label": [0, 1],
            "text": [None, ""],
            "speaker": [5, 6],
        },
        features=features,
    ).cast_column("audio", Audio())
    datasets.DatasetDict({"train": train, "valid": valid}).save_to_disk(str(tmp_path / "foreign"))

    target = Dataset.create("target")
    report = hf.load_hf(str(tmp_path / "foreign"), target)
    assert report.added == 4
    ((row, why),) = report.skipped  # read as `data import` reads a file: its reason
    assert row == "train row 2" and "audio" in why
    items = {i.path: i for i in target.items()}
    assert sorted(items) == ["one.flac", "one.wav", "one~1.wav", "row-1.wav"]
    assert items["one~1.wav"].meta == {"genre": "jazz"}
    one, row1, flac_item = items["one.wav"], items["row-1.wav"], items["one.flac"]
    assert target.file(one).read_bytes() == clips[0]
    assert target.file(row1).read_bytes() == clips[1]
    assert target.file(flac_item).read_bytes() == clips[2]
    assert (one.split, row1.split, flac_item.split) == ("train", "train", "validation")
    assert one.meta == {"genre": "jazz", "caption": "a slow swing"}
    assert row1.meta == {"genre": "rock", "caption": "loud riffs"}
    assert one.meta_from == {"genre": "import", "caption": "import"}
    assert flac_item.meta == {"genre": "rock"} and flac_item.kind == "audio"
    assert row1.duration_s == pytest.approx(0.5) and row1.info["sample_rate"] == 8000
    assert flac_item.info["codec"] == "FLAC PCM_16"


def test_a_foreign_audio_array_is_written_as_wav(home, tmp_path):
    import datasets
    from datasets import Features, List, Value

    samples = (0.25 * np.sin(np.arange(1000) / 7)).astype(np.float32)
    features = Features(
        {
            "audio": {"array": List(Value("float32")), "sampling_rate": Value("int64")},
            "genre": Value("string"),
            "bpm": Value("float64"),
        }
    )
    rows = {
        "audio": [{"array": samples.tolist(), "sampling_rate": 16000}],
        "genre": ["ambient"],
        "bpm": [999.0],  # out of range: left out with a warning
    }
    folder = tmp_path / "arrays"
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(folder))
    target = Dataset.create("target")
    report = hf.load_hf(str(folder), target, split="unassigned")  # a Dataset, not a dict
    (item,) = target.items()
    assert item.path == "row-0.wav" and item.split is None
    back, rate = sf.read(target.file(item), dtype="float32")
    assert rate == 16000 and np.array_equal(back, samples)
    assert item.meta == {"genre": "ambient"}
    assert len(report.warnings) == 1 and "bpm" in report.warnings[0]


# ---- the commands --------------------------------------------------------------------------------
def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["data", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_commands_export_and_load(songs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "export", "songs", "--to", "plain")
    assert code == 0, err
    assert out == (
        f"exported 4 items of songs (version {songs.head[:12]}) to plain with manifest.jsonl "
        "and dataset.json\n"
    )
    code, out, err = run(capsys, "export", "songs", "--hf", "hfdir", "--version", "HEAD~1")
    assert code == 0, err
    assert out.startswith("saved 4 items of songs (version ") and "; train 4)" in out
    code, out, err = run(capsys, "load-hf", "hfdir", "--into", "copy")
    assert code == 0, err
    assert out.startswith(
        "loaded 4 items from hfdir into copy (4 new; unassigned 4): now at version"
    )
    code, out, err = run(capsys, "load-hf", "hfdir", "--into", "copy", "--json")
    assert code == 0 and json.loads(out)["unchanged"] == 4 and json.loads(out)["version"] is None
    assert len(Dataset.open("copy").items()) == 4


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["export", "songs", "--to", "x", "--push", "me/x"], "--push needs --hf"),
        (["export", "songs", "--hf", "x", "--public"], "--public only goes with --push"),
        (["export", "songs", "--hf", "x", "--push", "nope"], "--push takes a Hub dataset"),
        (["export", "songs", "--to", "full"], "full exists and is not empty"),
        (["export", "songs", "--to", "x", "--version", "zzz"], "no version 'zzz'"),
        (["export", "nothing", "--to", "x"], "no dataset 'nothing'"),
        (["load-hf", "full", "--into", "new"], "not a saved Hugging Face dataset"),
        (["load-hf", "someone/nothing", "--into", "new"], "could not load someone/nothing"),
    ],
)
def test_the_commands_refuse_in_one_line(songs, tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "datasets" / "new").exists()


def test_the_commands_do_not_import_datasets_for_help():
    code = (
        "import sys; from engine.cli import build_parser; build_parser(); "
        "import engine.cli.data.hub, engine.data.hf; "
        "assert 'datasets' not in sys.modules, 'datasets imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    "argv", [["export", "songs", "--hf", "x"], ["load-hf", "someone/songs", "--into", "new"]]
)
def test_without_the_datasets_package_it_says_how_to_install_it(
    songs, tmp_path, capsys, monkeypatch, argv
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "datasets" else real(name, *a)
    )
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.strip() == (
        "error: Hugging Face datasets need the datasets package; install it with: "
        "pip install 'disco-musica[data]'"
    )
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "datasets" / "new").exists()
