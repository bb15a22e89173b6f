"""`engine.data.ingest`: local files, folders and archives into a dataset; kinds read and
confirmed, metadata from sidecars, tags and MIDI estimates, reruns, and the CLI."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.data import ingest, sources
from engine.data.store import Dataset
from engine.progress import ProgressLog


# ---- fixtures built here ------------------------------------------------------------------------
def write_flac_tagged(media, path: Path, **tags) -> Path:
    from mutagen.flac import FLAC

    media.write_audio(path)
    f = FLAC(str(path))
    for k, v in tags.items():
        f[k] = v
    f.save()
    return path


def write_av(media, path: Path, video: bool, audio: bool = True, seconds=1.0, fmt=None) -> Path:
    """An AAC .m4a (audio only) or a small video (MPEG-4 part 2, with AAC sound)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    rate, fps = 16000, 10
    with av.open(str(path), "w", format=fmt) as c:
        vs = c.add_stream("mpeg4", rate=fps) if video else None
        if vs is not None:
            vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=rate) if audio else None
        if a is not None:
            a.layout = "mono"
        if vs is not None:
            for i in range(int(seconds * fps)):
                img = np.full((48, 64, 3), i * 20 % 255, np.uint8)
                for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
            for p in vs.encode(None):
                c.mux(p)
        if a is not None:
            x = media.tone(seconds, rate)[:, 0][None, :]
            for i in range(0, x.shape[1], 1024):
                fr = av.AudioFrame.from_ndarray(x[:, i : i + 1024].copy(), "fltp", "mono")
                fr.sample_rate = rate
                for p in a.encode(fr):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return path


def write_score(folder: Path) -> dict[str, Path]:
    """A MusicXML, a compressed MXL and an ABC tune, each of three notes."""
    import music21

    folder.mkdir(parents=True, exist_ok=True)
    s = music21.stream.Score()
    part = music21.stream.Part()
    for n in ("C4", "E4", "G4"):
        part.append(music21.note.Note(n))
    s.append(part)
    s.insert(0, music21.metadata.Metadata(title="Little Tune", composer="Ann"))
    out = {"xml": folder / "tune.musicxml", "mxl": folder / "packed.mxl"}
    s.write("musicxml", fp=str(out["xml"]))
    s.write("mxl", fp=str(out["mxl"]))
    out["abc"] = folder / "reel.abc"
    out["abc"].write_text("X:1\nT:Reel\nM:4/4\nL:1/4\nK:G\nGABc|\n")
    return out


def write_image(path: Path, fmt: str, size=(32, 24)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 60)).save(path, format=fmt)
    return path


def build_folder(media, root: Path) -> Path:
    """A folder of every kind the import reads, some bad files, a hidden one and sidecars."""
    d = root / "stems"
    media.write_audio(d / "loop.wav", seconds=1.0, rate=8000, channels=2)
    media.write_audio(d / "pad.aiff", seconds=0.5, rate=11025)
    write_flac_tagged(
        media,
        d / "take.flac",
        title="Take One",
        artist="Ann, Bob",
        genre="funk",
        bpm="100",
        initialkey="F#m",
        comment="first take",
        mood="happy",
    )
    media.write_audio(d / "ogg" / "amb.ogg", seconds=1.0, rate=16000)
    media.write_audio(d / "mp3" / "hook.mp3", seconds=1.0, rate=16000, fmt="MP3")
    write_av(media, d / "voice.m4a", video=False)
    (d / "midi").mkdir()
    (d / "midi" / "bass.mid").write_bytes(media.midi_bytes())
    (d / "midi" / "flat.midi").write_bytes(media.midi_bytes(midi_type=0, key=None, drums=False))
    (d / "midi" / "three.mid").write_bytes(
        media.midi_bytes(midi_type=1).replace(b"\x00\x01", b"\x00\x02", 1)
    )
    write_score(d / "scores")
    for name, fmt in (("cover.jpg", "JPEG"), ("art.png", "PNG"), ("web.webp", "WEBP")):
        write_image(d / "art" / name, fmt)
    write_image(d / "art" / "anim.gif", "GIF")
    write_av(media, d / "video" / "clip.mp4", video=True)
    write_av(media, d / "video" / "clip.mov", video=True, fmt="mov")
    write_av(media, d / "video" / "clip.mkv", video=True, fmt="matroska")
    (d / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    (d / "empty.mid").write_bytes(b"")
    (d / "notes.txt").write_text("my notes\n")
    (d / ".hidden.wav").write_bytes(b"x")
    (d / ".git").mkdir()
    (d / ".git" / "config.wav").write_bytes(b"x")
    (d / "metadata.csv").write_text(
        "file,genre,tempo,instruments,colour\n"
        'loop.wav,house,124,"drums, bass",red\n'
        "take.flac,disco,,,\n"
        "midi/bass.mid,,90,,\n"
        "missing.wav,rock,,,\n"
    )
    (d / "pad.json").write_text(json.dumps({"caption": "a warm pad", "mood": "calm"}))
    (d / "midi" / "bass.mid.json").write_text(json.dumps({"genre": "dub"}))
    return d


@pytest.fixture(scope="module")
def imported(media, tmp_path_factory):
    root = tmp_path_factory.mktemp("imp")
    folder = build_folder(media, root / "music")
    ds = Dataset.create(root / "ds")
    log = ProgressLog()
    report = ingest.import_sources(ds, [str(folder)], progress=log)
    return ds, report, folder, log


def by_path(ds):
    return {i.path: i for i in ds.items()}


# ---- kinds, paths, info -------------------------------------------------------------------------
GOOD = {
    "stems/loop.wav": "audio",
    "stems/pad.aiff": "audio",
    "stems/take.flac": "audio",
    "stems/ogg/amb.ogg": "audio",
    "stems/mp3/hook.mp3": "audio",
    "stems/voice.m4a": "audio",
    "stems/midi/bass.mid": "midi",
    "stems/midi/flat.midi": "midi",
    "stems/scores/tune.musicxml": "score",
    "stems/scores/packed.mxl": "score",
    "stems/scores/reel.abc": "score",
    "stems/art/cover.jpg": "image",
    "stems/art/art.png": "image",
    "stems/art/web.webp": "image",
    "stems/video/clip.mp4": "video",
    "stems/video/clip.mov": "video",
    "stems/video/clip.mkv": "video",
}


def test_a_folder_imports_every_kind_at_its_relative_path(imported):
    ds, report, folder, _ = imported
    items = by_path(ds)
    assert {p: i.kind for p, i in items.items()} == GOOD
    assert sorted(i.path for i in report.added) == sorted(GOOD)
    assert report.version == ds.head and report.changed == [] and report.already == 0
    for item in items.values():
        assert item.group == item.id and item.step == "import" and item.split is None
        assert item.source == str(folder / item.path.split("/", 1)[1])
        assert ds.file(item).read_bytes() == Path(item.source).read_bytes()
        assert item.size == Path(item.source).stat().st_size


def test_bad_unknown_and_unreadable_files_are_skipped_with_reasons(imported):
    ds, report, folder, _ = imported
    reasons = {Path(s).name: r for s, r in report.skipped}
    assert set(reasons) == {"garbage.wav", "empty.mid", "notes.txt", "three.mid", "anim.gif"}
    assert reasons["empty.mid"] == "empty file"
    assert reasons["notes.txt"] == "unknown file type (.txt)"
    assert reasons["three.mid"] == "MIDI type 2; types 0 and 1 are imported"
    assert reasons["anim.gif"].startswith("unknown file type (.gif)")
    assert reasons["garbage.wav"] == "not audio (neither WAV, AIFF, FLAC, OGG nor MP3 inside)"
    # hidden files and sidecars are neither imported nor reported
    assert not any(".hidden" in s or ".git" in s or s.endswith(".json") for s, _ in report.skipped)
    assert not any(s.endswith(".csv") for s, _ in report.skipped)


def test_info_and_durations_are_read_from_the_files(imported):
    items = by_path(imported[0])
    loop = items["stems/loop.wav"]
    assert loop.info == {"sample_rate": 8000, "channels": 2, "frames": 8000, "codec": "WAV PCM_16"}
    assert loop.duration_s == 1.0
    assert items["stems/pad.aiff"].info["frames"] == 5512
    assert items["stems/pad.aiff"].info["codec"].startswith("AIFF")
    assert items["stems/ogg/amb.ogg"].info["codec"] == "OGG VORBIS"
    assert items["stems/mp3/hook.mp3"].info["sample_rate"] == 16000
    m4a = items["stems/voice.m4a"]
    assert m4a.info["codec"] == "aac" and m4a.info["sample_rate"] == 16000
    assert m4a.info["channels"] == 1 and m4a.duration_s == pytest.approx(1.0, abs=0.1)
    bass = items["stems/midi/bass.mid"]
    assert bass.info == {"type": 1, "ticks_per_beat": 480, "tracks": 3, "notes": 6}
    assert bass.duration_s == pytest.approx(5 * 0.6)  # five beats at 100 BPM
    assert items["stems/midi/flat.midi"].info["type"] == 0
    xml = items["stems/scores/tune.musicxml"]
    assert xml.info == {"format": "musicxml", "parts": 1, "measures": 1, "notes": 3}
    assert xml.duration_s == pytest.approx(1.5)  # three quarters at 120
    assert items["stems/scores/packed.mxl"].info["format"] == "mxl"
    assert items["stems/scores/reel.abc"].info["notes"] == 4
    assert items["stems/art/cover.jpg"].info == {
        "width": 32,
        "height": 24,
        "mode": "RGB",
        "format": "JPEG",
    }
    assert items["stems/art/web.webp"].info["format"] == "WEBP"
    assert items["stems/art/cover.jpg"].duration_s is None
    for name in ("clip.mp4", "clip.mov", "clip.mkv"):
        v = items[f"stems/video/{name}"]
        assert (v.info["width"], v.info["height"], v.info["fps"]) == (64, 48, 10.0)
        assert abs(v.info["frames"] - 10) <= 1 and v.info["has_audio"] is True
        assert v.duration_s == pytest.approx(1.0, abs=0.15)


def test_probe_and_detect_kind_are_usable_alone(media, tmp_path):
    assert ingest.detect_kind("A/B/Song.WAV") == "audio"
    assert ingest.detect_kind("x.midi") == "midi" and ingest.detect_kind("x.mxl") == "score"
    assert ingest.detect_kind("x.webp") == "image" and ingest.detect_kind("x.mkv") == "video"
    assert ingest.detect_kind("x.txt") is None and ingest.detect_kind("noext") is None
    info, dur = ingest.probe(
        media.write_audio(tmp_path / "a.flac", seconds=0.25, rate=8000), "audio"
    )
    assert info["frames"] == 2000 and dur == 0.25
    (tmp_path / "bad.mid").write_bytes(b"MThd nonsense")
    with pytest.raises(sources.Skip, match="MIDI"):
        ingest.probe(tmp_path / "bad.mid", "midi")


# ---- metadata -----------------------------------------------------------------------------------
def test_tags_sidecars_and_estimates_are_marked_and_ranked(imported):
    items = by_path(imported[0])
    take = items["stems/take.flac"]  # tags, with the genre overridden by metadata.csv
    assert take.meta == {
        "title": "Take One",
        "artists": ["Ann", "Bob"],
        "genre": "disco",
        "tempo": 100.0,
        "key": "F# minor",
        "caption": "first take",
        "mood": "happy",
    }
    assert take.meta_from == {
        "title": "tags",
        "artists": "tags",
        "genre": "sidecar",
        "tempo": "tags",
        "key": "tags",
        "caption": "tags",
        "mood": "tags",
    }
    loop = items["stems/loop.wav"]  # metadata.csv only; its unknown column is ignored
    assert loop.meta == {"genre": "house", "tempo": 124.0, "instruments": ["drums", "bass"]}
    assert set(loop.meta_from.values()) == {"sidecar"}
    pad = items["stems/pad.aiff"]  # pad.json beside it
    assert pad.meta == {"caption": "a warm pad", "mood": "calm"}
    bass = items["stems/midi/bass.mid"]  # estimates, with tempo from csv and genre from json
    assert bass.meta == {
        "tempo": 90.0,
        "meter": "3/4",
        "key": "E minor",
        "instruments": ["bass", "drums"],
        "genre": "dub",
    }
    assert bass.meta_from == {
        "tempo": "sidecar",
        "meter": "estimate",
        "key": "estimate",
        "instruments": "estimate",
        "genre": "sidecar",
    }
    assert bass.estimated == ["instruments", "key", "meter"]
    flat = items["stems/midi/flat.midi"]  # no key signature: the key finder on the notes
    assert flat.meta["key"] == "C major" and flat.meta_from["key"] == "estimate"
    assert flat.meta["instruments"] == ["bass"] and flat.meta["tempo"] == 100.0
    tune = items["stems/scores/tune.musicxml"]
    assert tune.meta == {"title": "Little Tune", "artists": ["Ann"]}
    assert any("missing.wav" in n for n in imported[1].notes)


def test_no_sidecars_reads_only_tags_and_estimates(media, tmp_path):
    folder = build_folder(media, tmp_path / "m")
    ds = Dataset.create(tmp_path / "ds")
    ingest.import_sources(ds, [str(folder / "take.flac"), str(folder / "loop.wav")], sidecars=False)
    items = by_path(ds)
    assert items["take.flac"].meta["genre"] == "funk"
    assert items["loop.wav"].meta == {}


def test_bad_sidecar_values_are_noted_not_fatal(media, tmp_path):
    d = tmp_path / "songs"
    media.write_audio(d / "a.wav")
    (d / "metadata.json").write_text(json.dumps([{"path": "a.wav", "tempo": "fast", "genre": "x"}]))
    ds = Dataset.create(tmp_path / "ds")
    report = ingest.import_sources(ds, [str(d)])
    assert by_path(ds)["songs/a.wav"].meta == {"genre": "x"}
    assert any("tempo" in n for n in report.notes)


# ---- reruns -------------------------------------------------------------------------------------
def objects(ds) -> list[Path]:
    return sorted(p for p in (ds.path / "objects").rglob("*") if p.is_file())


def test_rerun_copies_nothing_and_a_changed_file_replaces_its_item(media, tmp_path):
    d = tmp_path / "takes"
    media.write_audio(d / "a.wav", hz=440)
    media.write_audio(d / "b.wav", hz=550)
    ds = Dataset.create(tmp_path / "ds")
    first = ingest.import_sources(ds, [str(d)])
    assert len(first.added) == 2
    v1, stored = ds.head, objects(ds)

    again = ingest.import_sources(ds, [str(d)])
    assert (again.added, again.changed, again.already, again.version) == ([], [], 2, None)
    assert ds.head == v1 and objects(ds) == stored

    # your own edits and the split stay when the file's content changes
    old = by_path(ds)["takes/a.wav"]
    edited = replace(old.with_meta({"genre": "mine"}, "user"), split="test")
    with ds.change({"name": "edit"}, "edit") as ch:
        ch.put(edited)
    media.write_audio(d / "a.wav", hz=660)
    changed = ingest.import_sources(ds, [str(d)])
    assert [i.path for i in changed.changed] == ["takes/a.wav"] and changed.already == 1
    new = by_path(ds)["takes/a.wav"]
    assert new.id == old.id and new.group == old.group and new.split == "test"
    assert new.hash != old.hash and new.meta == {"genre": "mine"}
    assert len(objects(ds)) == 3

    # the same content under another path: a new item, its bytes stored once
    (d / "copy").mkdir()
    (d / "copy" / "b.wav").write_bytes((d / "b.wav").read_bytes())
    dup = ingest.import_sources(ds, [str(d)])
    assert [i.path for i in dup.added] == ["takes/copy/b.wav"]
    items = by_path(ds)
    assert items["takes/copy/b.wav"].hash == items["takes/b.wav"].hash
    assert len(objects(ds)) == 3


def test_single_files_keep_their_names_and_clashes_are_refused(media, tmp_path):
    a = media.write_audio(tmp_path / "one" / "song.wav")
    b = media.write_audio(tmp_path / "two" / "song.wav", hz=300)
    ds = Dataset.create(tmp_path / "ds")
    report = ingest.import_sources(ds, [str(a), str(b)])
    assert [i.path for i in report.added] == ["song.wav"]
    assert report.skipped == [(str(b), f"song.wav is already taken by {a}; rename one of them")]


# ---- archives -----------------------------------------------------------------------------------
def test_zip_and_tar_members_stream_in_under_the_archive_name(media, tmp_path):
    wav = media.write_audio(tmp_path / "w" / "a.wav").read_bytes()
    mid = media.midi_bytes()
    z = tmp_path / "songs.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.wav", wav)
        zf.writestr("midi/b.mid", mid)
        zf.writestr("midi/b.json", json.dumps({"genre": "reggae"}))
        zf.writestr("__MACOSX/._a.wav", b"junk")
        zf.writestr("bad.wav", b"RIFF\x24\x00\x00\x00WAVEnonsense")
    t = tmp_path / "more.tar.gz"
    with tarfile.open(t, "w:gz") as tf:
        for name, data in (("x/a.wav", wav), ("x/c.mid", mid)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("x/link.wav")
        link.type, link.linkname = tarfile.SYMTYPE, "a.wav"  # inside the archive: left out
        tf.addfile(link)
    ds = Dataset.create(tmp_path / "ds")
    before = sorted(p.name for p in tmp_path.iterdir())
    report = ingest.import_sources(ds, [str(z), str(t)])
    assert sorted(i.path for i in report.added) == [
        "more/x/a.wav",
        "more/x/c.mid",
        "songs/a.wav",
        "songs/midi/b.mid",
    ]
    assert [(s, r.split(" (")[0]) for s, r in report.skipped] == [
        (f"{z}!/bad.wav", "not a readable audio file")
    ]
    items = by_path(ds)
    assert items["songs/midi/b.mid"].meta["genre"] == "reggae"
    assert items["songs/a.wav"].hash == items["more/x/a.wav"].hash
    assert items["songs/a.wav"].info["remote"]["size"] == len(wav)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing unpacked
    # the unreadable member's stored copy is not kept
    assert len(objects(ds)) == 2
    # a rerun reads no member again (the archive's CRC / time say they are the same)
    again = ingest.import_sources(ds, [str(z), str(t)])
    assert again.already == 4 and again.version is None


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tf:
        for m in members:
            tf.addfile(m, io.BytesIO(data[m.name]) if m.name in data else None)
    return path


def test_zip_slip_links_out_and_bombs_are_refused_whole(media, tmp_path, monkeypatch):
    wav = media.write_audio(tmp_path / "w" / "a.wav").read_bytes()
    cases = {}
    cases["slip.zip"] = _zip(tmp_path / "slip.zip", {"ok.wav": wav, "../evil.wav": wav})
    cases["abs.zip"] = _zip(tmp_path / "abs.zip", {"ok.wav": wav, "/tmp/evil.wav": wav})
    ok = tarfile.TarInfo("ok.wav")
    ok.size = len(wav)
    up = tarfile.TarInfo("../../evil.wav")
    up.size = len(wav)
    cases["slip.tar"] = _tar(tmp_path / "slip.tar", [ok, up], {"ok.wav": wav, up.name: wav})
    out = tarfile.TarInfo("etc.wav")
    out.type, out.linkname = tarfile.SYMTYPE, "/etc/passwd"
    cases["link.tar"] = _tar(tmp_path / "link.tar", [ok, out], {"ok.wav": wav})
    hard = tarfile.TarInfo("hard.wav")
    hard.type, hard.linkname = tarfile.LNKTYPE, "../outside.wav"
    cases["hard.tar"] = _tar(tmp_path / "hard.tar", [ok, hard], {"ok.wav": wav})
    link = zipfile.ZipInfo("passwd.wav")
    link.external_attr = 0o120777 << 16  # a symbolic link to /etc/passwd
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        zf.writestr("ok.wav", wav)
        zf.writestr(link, "../../../etc/passwd")
    cases["link.zip"] = tmp_path / "link.zip"
    ds = Dataset.create(tmp_path / "ds")
    report = ingest.import_sources(ds, [str(p) for p in cases.values()])
    assert report.added == [] and ds.items() == []
    why = {Path(s).name: r for s, r in report.skipped}
    assert set(why) == set(cases)
    assert "zip-slip" in why["slip.zip"] and "../evil.wav" in why["slip.zip"]
    assert "absolute" in why["abs.zip"]
    assert "outside" in why["slip.tar"]
    assert "links out" in why["link.tar"] and "links out" in why["hard.tar"]
    assert "links out" in why["link.zip"]
    assert not (tmp_path.parent / "evil.wav").exists()

    # bombs: limits lowered so that the test stays small
    zeros = b"\0" * 2_000_000
    bomb = _zip(tmp_path / "bomb.zip", {"silence.wav": zeros})
    monkeypatch.setattr(sources, "RATIO_FLOOR_BYTES", 1_000_000)
    many = _zip(tmp_path / "many.zip", {f"{i}.wav": wav for i in range(5)})
    huge = _zip(tmp_path / "huge.zip", {"a.wav": wav})
    monkeypatch.setattr(sources, "MAX_ARCHIVE_MEMBERS", 4)
    r = ingest.import_sources(ds, [str(bomb), str(many)])
    why = {Path(s).name: m for s, m in r.skipped}
    assert (
        "zip bomb" in why["bomb.zip"] and f"over {sources.MAX_COMPRESSION_RATIO}" in why["bomb.zip"]
    )
    assert "more than 4 members" in why["many.zip"]
    monkeypatch.setattr(sources, "MAX_ARCHIVE_BYTES", len(wav) - 1)
    r = ingest.import_sources(ds, [str(huge)])
    assert "unpack to over" in r.skipped[0][1]
    assert ds.items() == []


def test_progress_counts_the_files(imported):
    log = imported[3]
    events = log.of("files")
    total = len(GOOD) + 5
    assert events[-1].done == events[-1].total == total
    assert [e.done for e in events] == list(range(total + 1))


# ---- the command --------------------------------------------------------------------------------
def run_cli(argv, capsys):
    from engine.cli import main

    code = main(["data", "import", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_skips_and_a_summary(media, tmp_path, capsys):
    d = tmp_path / "takes"
    media.write_audio(d / "a.wav")
    (d / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    target = tmp_path / "my-set"
    code, out, err = run_cli([str(d), "--into", str(target)], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith(f"skipped: {d / 'bad.wav'}: not a readable audio file")
    ds = Dataset.open(target)
    assert lines[-1] == (
        f"added 1, changed 0, already there 0, skipped 1 → version {ds.head[:12]} of my-set"
    )
    assert ds.version().step == {
        "name": "import",
        "sources": [str(d)],
        "sidecars": True,
        "group_by": "file",
    }
    code, out, err = run_cli([str(d), "--into", str(target), "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["already"] == 1 and doc["added"] == [] and doc["version"] is None
    assert doc["skipped"][0]["source"] == str(d / "bad.wav")


def test_cli_refuses_when_nothing_can_be_read(tmp_path, capsys):
    (tmp_path / "garbage.wav").write_bytes(b"not audio at all")
    target = tmp_path / "new-set"
    code, out, err = run_cli([str(tmp_path / "garbage.wav"), "--into", str(target)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {tmp_path / 'garbage.wav'}: not audio")
    assert not target.exists()  # the dataset it would have made is not left behind
    code, out, err = run_cli(["foo://x", str(tmp_path / "nope"), "--into", str(target)], capsys)
    assert code == 2 and err.startswith("error: nothing could be imported: all 2 files")
    assert "skipped: foo://x: foo:// is not a kind of address" in out
    assert "skipped: " + str(tmp_path / "nope") + ": no such file or folder" in out
    (tmp_path / "file.txt").write_text("x")
    code, out, err = run_cli(["foo://x", "--into", str(tmp_path / "file.txt")], capsys)
    assert code == 2 and "is a file" in err and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli([str(tmp_path / "empty"), "--into", str(target)], capsys)
    assert code == 2 and "found no files to import" in err and not target.exists()


def test_group_by_folder_keeps_a_songs_stems_in_one_split(media, tmp_path):
    from engine.data.splits import split_dataset

    root = tmp_path / "exports"
    for song in range(12):
        for stem in ("mix", "bass", "drums"):
            media.write_audio(root / f"song{song:02d}" / f"{stem}.wav", seconds=0.2, hz=200 + song)
    by_file = Dataset.create(tmp_path / "by-file")
    ingest.import_sources(by_file, [str(root)])
    assert len({i.group for i in by_file.items()}) == 36  # each file its own song
    ds = Dataset.create(tmp_path / "by-folder")
    report = ingest.import_sources(ds, [str(root)], group_by="folder")
    assert len(report.added) == 36
    assert {i.group for i in ds.items()} == {f"exports/song{s:02d}" for s in range(12)}
    assert ds.version().step["group_by"] == "folder"
    for seed in range(8):
        split_dataset(ds, (0.6, 0.2, 0.2), seed=seed)
        per_song: dict[str, set] = {}
        for i in ds.items():
            per_song.setdefault(i.group, set()).add(i.split)
        assert all(len(s) == 1 for s in per_song.values()), seed
    with pytest.raises(Exception, match="group by"):
        ingest.import_sources(ds, [str(root)], group_by="song")
