"""`data get`: the real download → checksum → unpack → import code, on small archives with
the structure of the real ones, served by a local HTTP server (with Range requests)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile as sf
import symusic

from engine.data import public
from engine.data.store import Dataset, DatasetError


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))


# ---- a local server that honours Range and can cut a response half-way -------------------------
class Served:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()  # paths whose next response stops half-way
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.ranges = True  # False: answer every request with the whole file


@pytest.fixture
def server():
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            served.requests.append((self.path, self.headers.get("Range")))
            data = served.files.get(self.path)
            if data is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            rng = self.headers.get("Range")
            if served.ranges and rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if self.path in served.cut:
                served.cut.discard(self.path)
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    served.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield served
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def serve_as(served: Served, name: str, blobs: dict[str, bytes], *, checksums=None) -> dict:
    """A catalogue whose entry ``name`` is the real one, with its files served locally
    (``blobs``: file name → bytes) and their checksums (the real algorithm) computed here
    (``checksums``: file name → a value to publish instead)."""
    e = public.CATALOG[name]
    files = []
    for f in e.files:
        data = blobs[f.filename]
        served.files[f"/{f.filename}"] = data
        checksum = None
        if f.algorithm:
            checksum = hashlib.new(f.algorithm, data).hexdigest()
        if checksums and f.filename in checksums:
            checksum = checksums[f.filename]
        files.append(
            replace(f, url=f"{served.base}/{f.filename}", size=len(data), checksum=checksum)
        )
    return {name: replace(e, files=tuple(files))}


# ---- archives with the structure of the real ones ---------------------------------------------
def midi_bytes(pitches, seconds_each: float = 0.5) -> bytes:
    s = symusic.Score(480)
    tr = symusic.Track(program=0)
    for n, p in enumerate(pitches):
        tr.notes.append(symusic.Note(int(n * 960 * seconds_each), 400, p, 80))
    s.tracks.append(tr)
    return s.dumps_midi()


MAESTRO_ROWS = [
    ("Frédéric Chopin", "Ballade No. 1", "train", "2004", "2004/MIDI-Unprocessed_A.midi"),
    ("Johann Sebastian Bach", "Prelude in C", "validation", "2006", "2006/MIDI-Unprocessed_B.midi"),
    (
        "Sergei Rachmaninoff / György Cziffra",
        "Flight of the Bumblebee",
        "test",
        "2018",
        "2018/MIDI-Unprocessed_C.midi",
    ),
]


def maestro_zip() -> bytes:
    buf = io.BytesIO()
    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(
        [
            "canonical_composer",
            "canonical_title",
            "split",
            "year",
            "midi_filename",
            "audio_filename",
            "duration",
        ]
    )
    with zipfile.ZipFile(buf, "w") as z:
        for k, (composer, title, split, year, midi) in enumerate(MAESTRO_ROWS):
            w.writerow([composer, title, split, year, midi, midi[:-5] + ".wav", "12.5"])
            z.writestr(f"maestro-v3.0.0/{midi}", midi_bytes([60 + k, 64, 67, 72]))
        z.writestr("maestro-v3.0.0/maestro-v3.0.0.csv", rows.getvalue())
        z.writestr("maestro-v3.0.0/maestro-v3.0.0.json", "{}")
        z.writestr("maestro-v3.0.0/LICENSE", "CC BY-NC-SA 4.0\n")
    return buf.getvalue()


def lakh_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, pitches in (
            ("clean_midi/ABBA/Dancing Queen.mid", [60, 62, 64]),
            ("clean_midi/ABBA/Dancing Queen.1.mid", [60, 62, 65]),
            ("clean_midi/The Beatles/Yesterday.mid", [67, 65, 64]),
        ):
            data = midi_bytes(pitches)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("clean_midi/ABBA/escape.mid")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../../../etc/passwd"
        t.addfile(link)
    return buf.getvalue()


def mp3_bytes(freq: float) -> bytes:
    sr = 22050
    t = np.arange(sr) / sr
    y = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="MP3")
    return buf.getvalue()


FMA_TRACKS = [
    # id, title, artist, split, genre_top, tags, licence
    (2, "Food", "AWOL", "training", "Hip-Hop", "[]", "Attribution-NonCommercial 3.0"),
    (5, "This World", "AWOL", "validation", "Hip-Hop", "['lofi']", "CC BY 4.0"),
    (1039, "Tapeworm", "Kosta T", "test", "Rock", "['indie', 'rock']", "CC BY-SA 3.0"),
    (9999, "Not in small", "Nobody", "training", "Jazz", "[]", "CC BY 4.0"),
]


def fma_zips() -> tuple[bytes, bytes]:
    small = io.BytesIO()
    with zipfile.ZipFile(small, "w") as z:
        for k, (tid, *_rest) in enumerate(FMA_TRACKS[:3]):
            z.writestr(f"fma_small/{tid // 1000:03d}/{tid:06d}.mp3", mp3_bytes(330 + 110 * k))
        z.writestr("fma_small/README.txt", "FMA small\n")
        z.writestr("fma_small/checksums", "")
    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(["", "album", "artist", "set", "set", "track", "track", "track", "track"])
    w.writerow(["", "title", "name", "split", "subset", "genre_top", "license", "tags", "title"])
    w.writerow(["track_id", "", "", "", "", "", "", "", ""])
    for tid, title, artist, split, genre, tags, lic in FMA_TRACKS:
        w.writerow([tid, "An album", artist, split, "small", genre, lic, tags, title])
    meta = io.BytesIO()
    with zipfile.ZipFile(meta, "w") as z:
        z.writestr("fma_metadata/tracks.csv", rows.getvalue())
        z.writestr("fma_metadata/genres.csv", "genre_id,title\n")
    return small.getvalue(), meta.getvalue()


# ---- the tests ---------------------------------------------------------------------------------
def test_catalogue_is_complete():
    for name in ("maestro", "lakh", "fma-small", "music21"):
        e = public.CATALOG[name]
        assert e.licence and e.licence_url.startswith("https://") and e.citation
        assert e.homepage.startswith("https://") and e.imports and e.metadata
        for f in e.files:
            assert f.url.startswith(("https://", "http://"))
            assert (f.checksum is None) == (f.algorithm is None)
            if f.checksum:
                assert f.algorithm in public.ALGORITHMS
                assert len(f.checksum) == {"md5": 32, "sha1": 40, "sha256": 64}[f.algorithm]
            assert f.checksum_from
    assert public.CATALOG["lakh"].files[0].checksum is None  # none published: said so


def test_maestro_download_check_unpack_import(tmp_path, server):
    data = maestro_zip()
    catalog = serve_as(server, "maestro", {"maestro-v3.0.0-midi.zip": data})
    ds = Dataset.create(tmp_path / "piano")
    from engine.progress import ProgressLog

    log = ProgressLog()
    r = public.get_public("maestro", ds, catalog=catalog, progress=log)
    assert r["members"] == 3 and r["imported"] == 3 and r["with_metadata"] == 3
    assert log.of("download")[-1].done == len(data)
    assert log.stages()[:3] == ["download", "unpack", "files"]
    items = {i.path: i for i in ds.items()}
    assert sorted(items) == sorted(f"maestro-v3.0.0/{row[4]}" for row in MAESTRO_ROWS)
    a = items["maestro-v3.0.0/2004/MIDI-Unprocessed_A.midi"]
    assert a.kind == "midi"
    assert a.meta["artists"] == ["Frédéric Chopin"] and a.meta["title"] == "Ballade No. 1"
    assert a.meta["tags"] == ["maestro", "2004"] and a.split == "train"
    assert a.meta_from["artists"] == a.meta_from["title"] == "import"
    c = items["maestro-v3.0.0/2018/MIDI-Unprocessed_C.midi"]
    assert c.meta["artists"] == ["Sergei Rachmaninoff", "György Cziffra"]
    assert c.split == "test"
    assert items["maestro-v3.0.0/2006/MIDI-Unprocessed_B.midi"].split == "validation"
    assert a.source == catalog["maestro"].files[0].url + "#" + a.path
    # the versions: the import, then the source and its metadata
    head, before = ds.versions()[:2]
    assert before.step["name"] == "import"
    step = head.step
    assert step["name"] == "get" and step["dataset"] == "maestro"
    f = step["files"][0]
    assert f["url"] == catalog["maestro"].files[0].url
    assert f["verified"] is True and f["algorithm"] == "sha256"
    assert f["sha256"] == hashlib.sha256(data).hexdigest() == f["checksum"]
    assert "CC BY-NC-SA" in step["licence"] and step["licence_url"].startswith("https://")
    # the archive stays in the cache; the unpacked copy is gone
    cache = tmp_path / "home" / "cache" / "datasets" / "maestro"
    assert (cache / "maestro-v3.0.0-midi.zip").read_bytes() == data
    assert not (cache / "unpacked").exists() and not list(cache.glob("*.part"))
    # again: nothing downloaded, nothing imported twice
    n = len(server.requests)
    again = public.get_public("maestro", ds, catalog=catalog)
    assert len(server.requests) == n
    assert again["already"] == 3 and again["imported"] == 0
    assert len(ds.items()) == 3 and ds.head == head.id


def test_interrupted_download_resumes_with_range(tmp_path, server):
    data = lakh_tar()
    catalog = serve_as(server, "lakh", {"clean_midi.tar.gz": data})
    server.cut.add("/clean_midi.tar.gz")
    target = tmp_path / "pop"
    with pytest.raises(DatasetError, match="run the command again to resume"):
        public.get_public("lakh", str(target), catalog=catalog, cache=tmp_path / "c")
    part = tmp_path / "c" / "lakh" / "clean_midi.tar.gz.part"
    kept = part.stat().st_size
    assert 0 < kept < len(data) and data.startswith(part.read_bytes())
    assert not target.exists()  # no empty dataset is left behind
    plan = public.plan("lakh", catalog=catalog, cache=tmp_path / "c")
    assert plan["files"][0]["partial"] == kept and plan["needs_download"]
    r = public.get_public("lakh", str(target), catalog=catalog, cache=tmp_path / "c")
    ds = Dataset.open(target)
    assert server.requests[-1] == ("/clean_midi.tar.gz", f"bytes={kept}-")
    assert (tmp_path / "c" / "lakh" / "clean_midi.tar.gz").read_bytes() == data
    # no checksum is published: the sha256 of what arrived is recorded
    f = r["files"][0]
    assert f["checksum"] is None and f["verified"] is False
    assert f["sha256"] == hashlib.sha256(data).hexdigest()
    assert ds.version().step["files"][0]["sha256"] == f["sha256"]
    items = {i.path: i for i in ds.items()}
    assert sorted(items) == [
        "clean_midi/ABBA/Dancing Queen.1.mid",
        "clean_midi/ABBA/Dancing Queen.mid",
        "clean_midi/The Beatles/Yesterday.mid",
    ]  # the link out of the archive was never made
    y = items["clean_midi/The Beatles/Yesterday.mid"]
    assert y.meta["artists"] == ["The Beatles"] and y.meta["title"] == "Yesterday"
    assert items["clean_midi/ABBA/Dancing Queen.1.mid"].meta["title"] == "Dancing Queen"
    assert y.meta["tags"] == ["lakh"]


def test_checksum_mismatch_removes_the_file_and_imports_nothing(tmp_path, server):
    small, meta = fma_zips()
    catalog = serve_as(
        server,
        "fma-small",
        {"fma_small.zip": small, "fma_metadata.zip": meta},
        checksums={"fma_small.zip": "0" * 40},
    )
    ds = Dataset.create(tmp_path / "fma")
    head = ds.head
    with pytest.raises(DatasetError, match="does not match its published sha1") as e:
        public.get_public("fma-small", ds, catalog=catalog)
    assert "0" * 40 in str(e.value) and hashlib.sha1(small).hexdigest() in str(e.value)
    cache = tmp_path / "home" / "cache" / "datasets" / "fma-small"
    assert not (cache / "fma_small.zip").exists() and not (cache / "fma_small.zip.part").exists()
    assert ds.head == head and ds.items() == []


def test_fma_metadata_and_limit(tmp_path, server):
    small, meta = fma_zips()
    catalog = serve_as(server, "fma-small", {"fma_small.zip": small, "fma_metadata.zip": meta})
    ds = Dataset.create(tmp_path / "fma")
    r = public.get_public("fma-small", ds, catalog=catalog, limit=2)
    assert r["members"] == 2 and r["imported"] == 2, r["skipped"]
    assert [f["verified"] for f in r["files"]] == [True, True]
    items = {i.path: i for i in ds.items()}
    assert sorted(items) == ["fma_small/000/000002.mp3", "fma_small/000/000005.mp3"]
    food = items["fma_small/000/000002.mp3"]
    assert food.kind == "audio" and food.split == "train"
    assert food.meta["genre"] == "Hip-Hop" and food.meta["title"] == "Food"
    assert food.meta["artists"] == ["AWOL"]
    assert food.meta["tags"] == ["fma", "licence: Attribution-NonCommercial 3.0"]
    world = items["fma_small/000/000005.mp3"]
    assert world.split == "validation" and world.meta["tags"][:2] == ["fma", "lofi"]
    # the rest, by a glob
    r = public.get_public("fma-small", ds, catalog=catalog, only="001/*")
    assert r["members"] == 1
    tape = {i.path: i for i in ds.items()}["fma_small/001/001039.mp3"]
    assert tape.meta["genre"] == "Rock" and tape.split == "test"
    assert tape.meta["tags"][:3] == ["fma", "indie", "rock"]


def test_music21_corpus_subset(tmp_path):
    ds = Dataset.create(tmp_path / "chorales")
    r = public.get_public("music21", ds, only="bach/*", limit=5)
    assert r["members"] == 5 and r["imported"] == 5, r["skipped"]
    items = ds.items()
    assert len(items) == 5
    for i in items:
        assert i.kind == "score" and i.path.startswith("music21/bach/")
        assert i.meta["tags"][:2] == ["music21", "bach"]
        assert i.source.startswith("music21#")
    step = ds.version().step
    assert step["files"][0]["package"] == "music21" and step["only"] == "bach/*"
    assert "BSD" in step["licence"]


def test_a_folder_of_the_user_s_in_the_cache_is_never_touched(tmp_path):
    cache = tmp_path / "my-downloads"
    mine = cache / "music21" / "unpacked"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    ds = Dataset.create(tmp_path / "chorales")
    public.get_public("music21", ds, only="bach/*", limit=2, cache=cache)
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (cache / "music21").iterdir()) == ["unpacked"]  # ours went


def test_unpack_keeps_members_inside(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("top/ok.mid", b"MThd")
        z.writestr("../evil.mid", b"MThd")
        z.writestr("/abs/evil2.mid", b"MThd")
        z.writestr("top/notes.txt", b"x")
    archive = tmp_path / "a.zip"
    archive.write_bytes(buf.getvalue())
    got = public.unpack(archive, tmp_path / "out", public.selector((".mid",)))
    assert got == ["top/ok.mid"]
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["ok.mid"]
    assert not (tmp_path / "evil.mid").exists()


def test_cli_asks_for_yes_without_a_terminal(tmp_path, server, monkeypatch, capsys):
    from engine.cli import main

    data = maestro_zip()
    catalog = serve_as(server, "maestro", {"maestro-v3.0.0-midi.zip": data})
    monkeypatch.setitem(public.CATALOG, "maestro", catalog["maestro"])
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    target = tmp_path / "piano"
    assert main(["data", "get", "maestro", "--into", str(target)]) == 2
    out, err = capsys.readouterr()
    assert err.strip().count("\n") == 0 and "add --yes" in err and err.startswith("error: ")
    assert "licence   CC BY-NC-SA 4.0" in out and catalog["maestro"].files[0].url in out
    assert f"sha256    {hashlib.sha256(data).hexdigest()}" in out
    assert not target.exists() and server.requests == []
    assert main(["data", "get", "maestro", "--into", str(target), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "imported 3 of 3 music files" in out and "matches the published checksum" in out
    assert len(Dataset.open(target).items()) == 3
    assert main(["data", "get", "maestro", "--into", str(target), "--json"]) == 0
    cap = capsys.readouterr()
    report = json.loads(cap.out)  # cached: no question asked, the summary went to stderr
    assert report["already"] == 3 and "cached    yes" in cap.err


def test_no_server_says_so_and_keeps_nothing(tmp_path, server):
    catalog = serve_as(server, "maestro", {"maestro-v3.0.0-midi.zip": b"x"})
    e = catalog["maestro"]
    dead = replace(e.files[0], url="http://127.0.0.1:9/maestro-v3.0.0-midi.zip")
    catalog = {"maestro": replace(e, files=(dead,))}
    with pytest.raises(DatasetError, match="nothing was received: check the network"):
        public.get_public("maestro", str(tmp_path / "p"), catalog=catalog)
    assert not (tmp_path / "p").exists()
    catalog = serve_as(server, "maestro", {"maestro-v3.0.0-midi.zip": b"x"})
    del server.files["/maestro-v3.0.0-midi.zip"]
    with pytest.raises(DatasetError, match="answered 404"):
        public.get_public("maestro", str(tmp_path / "p"), catalog=catalog)


def test_cli_asks_on_a_terminal(tmp_path, server, monkeypatch, capsys):
    from engine.cli import main

    data = maestro_zip()
    catalog = serve_as(server, "maestro", {"maestro-v3.0.0-midi.zip": data})
    monkeypatch.setitem(public.CATALOG, "maestro", catalog["maestro"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    asked = []

    def answer(text):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr("builtins.input", answer)
    answers = ["n", "y"]
    target = tmp_path / "piano"
    assert main(["data", "get", "maestro", "--into", str(target)]) == 1
    assert asked == [f"Download {public.describe_size(len(data))}? [y/N] "]
    assert "nothing downloaded" in capsys.readouterr().out
    assert server.requests == [] and not target.exists()
    assert main(["data", "get", "maestro", "--into", str(target)]) == 0
    assert len(Dataset.open(target).items()) == 3


def test_a_server_without_ranges_sends_it_all_again(tmp_path, server):
    data = lakh_tar()
    catalog = serve_as(server, "lakh", {"clean_midi.tar.gz": data})
    server.ranges = False
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "clean_midi.tar.gz.part").write_bytes(b"left from an older try")
    got = public.download(catalog["lakh"].files[0], folder)
    assert server.requests[-1][1] == "bytes=22-"  # asked to resume, got the whole file
    assert got.path.read_bytes() == data and got.resumed_from == 0 and not got.cached
