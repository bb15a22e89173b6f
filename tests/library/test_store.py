"""The library's store: registering, finding, changing, deleting, verifying and tracing
pieces, on synthetic records (fast) shaped like the records every command writes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import LibraryError
from engine.library import records
from engine.library.store import DB_FILE, SCHEMA_VERSION, Library, check_tag

DATA = Path(__file__).parent.parent / "data" / "records"


def _generation(
    tmp: Path,
    name: str,
    *,
    prompt: str,
    seed: int,
    style="chorale",
    key="G",
    mode="major",
    tempo=64.0,
    parts=("Soprano", "Alto"),
    model_sha="a" * 64,
    extra: dict | None = None,
) -> dict[str, Path]:
    """A generation folder like `generate` writes: music.mid and generation.json."""
    folder = tmp / name
    folder.mkdir(parents=True)
    midi = folder / "music.mid"
    midi.write_bytes(f"MThd {name} {seed}".encode())
    import hashlib

    record = {
        "format": 2,
        "prompt": prompt,
        "request": {"seed": seed, "model": "score-base"},
        "plan": {
            "style": style,
            "key": key,
            "mode": mode,
            "meter": "4/4",
            "tempo_bpm": tempo,
            "bars": 8,
            "parts": [{"name": p} for p in parts],
        },
        "seed": seed,
        "model": {"name": "score-base", "sha256": model_sha},
        "outputs": {
            "music.mid": {
                "sha256": hashlib.sha256(midi.read_bytes()).hexdigest(),
                "bytes": midi.stat().st_size,
            }
        },
        "disco_musica_version": "0.5.0",
        "created": "2026-12-01T10:00:00+00:00",
        **(extra or {}),
    }
    (folder / "generation.json").write_text(json.dumps(record))
    return {"generation.json": folder / "generation.json", "music.mid": midi}


def _register(lib: Library, files: dict[str, Path], **kw):
    record = json.loads(files["generation.json"].read_text())
    return lib.register(files, record, **kw)


@pytest.fixture
def lib(tmp_path):
    with Library.open(tmp_path / "lib") as library:
        yield library


def test_a_new_library_is_sqlite_in_wal_mode_with_foreign_keys_and_a_schema_version(tmp_path):
    with Library.open(tmp_path / "lib") as lib:
        assert lib.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert lib.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert lib.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert {"pieces", "files", "tags", "parents", "pieces_fts"} <= {
            r[0] for r in lib.db.execute("SELECT name FROM sqlite_master")
        }
    assert sorted(p.name for p in (tmp_path / "lib").iterdir()) >= ["incoming", "library.db"]


def test_registering_copies_the_files_and_indexes_what_the_record_says(lib, tmp_path):
    files = _generation(tmp_path, "a", prompt="a calm chorale in G major for choir", seed=11)
    piece = _register(lib, files, origin=tmp_path / "a")
    assert len(piece.id) == 8 and piece.title == "a calm chorale in G major for choir"
    assert (piece.style, piece.key, piece.mode, piece.tempo) == ("chorale", "G", "major", 64.0)
    assert piece.instruments == ["Soprano", "Alto"] and piece.seed == 11
    kept = lib.folder_path(piece)
    assert kept == tmp_path / "lib" / "pieces" / piece.id
    for name, src in files.items():
        assert (kept / name).read_bytes() == src.read_bytes()
    src_midi = files["music.mid"]
    src_midi.write_bytes(b"changed by the user")  # the user's copy is theirs: ours is apart
    assert (kept / "music.mid").read_bytes() != src_midi.read_bytes()
    assert [f.name for f in piece.files] == ["generation.json", "music.mid"]


def test_list_filters_and_sorts(lib, tmp_path):
    a = _register(
        lib,
        _generation(
            tmp_path,
            "a",
            prompt="waltz one",
            seed=1,
            style="waltz",
            key="D",
            mode="minor",
            tempo=150.0,
            parts=("Violin", "Cello"),
        ),
    )
    b = _register(lib, _generation(tmp_path, "b", prompt="chorale two", seed=2, tempo=70.0))
    c = _register(
        lib,
        _generation(
            tmp_path, "c", prompt="chorale three", seed=3, key="F", tempo=90.0, model_sha="b" * 64
        ),
    )
    lib.rate(b.id, 5)
    lib.rate(c.id, 3)
    lib.tag(c.id, ["keep"])
    lib.collection_add("for Anna", [a.id, c.id])

    def ids(**kw):
        return [p.id for p in lib.list(**kw)]

    assert ids(style="chorale") == [c.id, b.id]  # newest first
    assert ids(style="WALTZ") == [a.id]
    assert ids(key="d", mode="minor") == [a.id]
    assert ids(tempo_min=60, tempo_max=95) == [c.id, b.id]
    assert ids(instrument="cello") == [a.id]
    assert ids(model="bbbb") == [c.id] and ids(model="score-base") == [c.id, b.id, a.id]
    assert ids(min_rating=4) == [b.id]
    assert ids(tag="keep") == [c.id]
    assert ids(collection="for anna") == [c.id, a.id]
    assert ids(sort="rating") == [b.id, c.id, a.id]
    assert ids(sort="tempo", reverse=True) == [b.id, c.id, a.id]
    assert ids(sort="title") == [c.id, b.id, a.id]  # "chorale three" < "chorale two"
    assert ids(limit=1) == [c.id]
    assert ids(since=time.time() + 60) == []


def test_search_covers_prompt_title_tags_notes_and_attributes(lib, tmp_path):
    a = _register(
        lib,
        _generation(
            tmp_path, "a", prompt="a melancholy waltz", seed=1, style="waltz", parts=("Violin",)
        ),
    )
    b = _register(lib, _generation(tmp_path, "b", prompt="a bright hymn", seed=2))
    lib.tag(b.id, ["wedding"])
    lib.set_note(a.id, "play this at the recital")
    lib.rename(b.id, "Sunday morning")

    def found(text):
        return {p.id for p in lib.search(text)}

    assert found("melancholy") == {a.id}
    assert found("wedding") == {b.id}
    assert found("recital") == {a.id}
    assert found("sunday") == {b.id}
    assert found("violin") == {a.id}  # an attribute: the parts
    assert found("waltz violin") == {a.id}  # every word must occur
    assert found('"bright hymn"') == {b.id}
    assert found("melan") == {a.id}  # prefixes
    assert found("AND OR NOT") == set()  # operators are words, not syntax errors
    lib.tag(b.id, ["wedding"], remove=True)
    assert found("wedding") == set()
    with pytest.raises(LibraryError, match="words"):
        lib.search("  ")


def test_ids_prefixes_and_titles_resolve_and_ambiguity_is_refused(lib, tmp_path):
    a = _register(lib, _generation(tmp_path, "a", prompt="one", seed=1))
    b = _register(lib, _generation(tmp_path, "b", prompt="two", seed=2))
    assert lib.get(a.id).id == a.id and lib.get(a.id.upper()).id == a.id
    assert lib.get(a.id[:5]).id == a.id
    assert lib.get("ONE").id == a.id
    lib.rename(b.id, "one")
    with pytest.raises(LibraryError, match="several pieces are titled"):
        lib.get("one")
    # Two IDs with the same start: the prefix is ambiguous.
    lib.db.execute("UPDATE pieces SET id = 'abc00000' WHERE id = ?", (a.id,))
    lib.db.execute("UPDATE pieces SET id = 'abc11111' WHERE id = ?", (b.id,))
    with pytest.raises(LibraryError, match="starts several IDs.*type more"):
        lib.get("abc")
    assert lib.get("abc1").id == "abc11111"
    with pytest.raises(LibraryError, match="no piece 'zzzzz'"):
        lib.get("zzzzz")


@pytest.mark.parametrize("bad", [0, 6, 7, -1, True, "5", 2.5, None])
def test_ratings_are_1_to_5(lib, tmp_path, bad):
    a = _register(lib, _generation(tmp_path, "a", prompt="one", seed=1))
    if bad is None:
        assert lib.rate(a.id, None).rating is None  # clearing is allowed
        return
    with pytest.raises(LibraryError, match="rating"):
        lib.rate(a.id, bad)
    assert lib.get(a.id).rating is None


@pytest.mark.parametrize(
    "bad", ["", "   ", "a\x00b", "tab\there", "line\nbreak", "a,b", "x" * 65, "bidi\u202eoverride"]
)
def test_bad_tags_are_refused_and_change_nothing(lib, tmp_path, bad):
    a = _register(lib, _generation(tmp_path, "a", prompt="one", seed=1))
    lib.tag(a.id, ["good"])
    with pytest.raises(LibraryError):
        lib.tag(a.id, ["fine", bad])
    assert lib.get(a.id).tags == ["good"]  # not even the good tag of the same call


def test_tags_are_kept_as_typed_and_compared_without_case(lib, tmp_path):
    assert check_tag("  Ballad  ") == "Ballad"
    a = _register(lib, _generation(tmp_path, "a", prompt="one", seed=1))
    lib.tag(a.id, ["Ballad", "ballad", "Chill"])
    assert sorted(lib.get(a.id).tags, key=str.lower) == ["Ballad", "Chill"]


def test_delete_restore_and_empty_trash_touch_only_what_the_library_wrote(lib, tmp_path):
    a = _register(lib, _generation(tmp_path, "a", prompt="one", seed=1))
    b = _register(lib, _generation(tmp_path, "b", prompt="two", seed=2))
    lib.delete(a.id)
    assert [p.id for p in lib.list()] == [b.id]
    assert [p.id for p in lib.list(trash=True)] == [a.id]
    assert (tmp_path / "lib" / "trash" / a.id / "music.mid").is_file()
    assert not (tmp_path / "lib" / "pieces" / a.id).exists()
    with pytest.raises(LibraryError, match="no piece"):
        lib.get(a.id)  # deleted pieces are not found by default …
    assert lib.get(a.id, include_deleted=True).deleted  # … but are on request
    lib.restore(a.id)
    assert (tmp_path / "lib" / "pieces" / a.id / "music.mid").is_file()
    with pytest.raises(LibraryError, match="not in the trash"):
        lib.restore(a.id)
    lib.delete(a.id)
    stranger = tmp_path / "lib" / "trash" / a.id / "my-notes.txt"
    stranger.write_text("the user's own file")  # put there by hand: not ours
    assert lib.empty_trash() == [a.id]
    assert stranger.read_text() == "the user's own file"
    assert sorted(p.name for p in stranger.parent.iterdir()) == ["my-notes.txt"]
    assert lib.count() == 1 and lib.count(trash=True) == 0
    assert (tmp_path / "lib" / "pieces" / b.id / "music.mid").is_file()


def test_the_trash_is_emptied_after_30_days(tmp_path):
    with Library.open(tmp_path / "lib") as lib:
        a = _register(lib, _generation(tmp_path, "a", prompt="one", seed=1))
        b = _register(lib, _generation(tmp_path, "b", prompt="two", seed=2))
        lib.delete(a.id)
        lib.delete(b.id)
        old = time.time() - 31 * 86400
        lib.db.execute("UPDATE pieces SET deleted_ts = ? WHERE id = ?", (old, a.id))
    with Library.open(tmp_path / "lib") as lib:
        assert [p.id for p in lib.list(trash=True)] == [b.id]
        assert not (tmp_path / "lib" / "trash" / a.id).exists()


def test_verify_reports_missing_and_changed_files_and_repairs_the_index(lib, tmp_path):
    a = _register(lib, _generation(tmp_path, "a", prompt="one", seed=1))
    b = _register(lib, _generation(tmp_path, "b", prompt="two", seed=2))
    c = _register(lib, _generation(tmp_path, "c", prompt="three", seed=3))
    assert lib.verify()["problems"] == []
    (lib.folder_path(a) / "music.mid").unlink()
    (lib.folder_path(b) / "music.mid").write_bytes(b"edited")
    # A crash between the row and the move: the folder is in pieces/ while the row says trash.
    lib.db.execute("UPDATE pieces SET deleted_ts = ? WHERE id = ?", (time.time(), c.id))
    lib.db.execute("DELETE FROM pieces_fts")  # a damaged search index
    report = lib.verify()
    assert {(p["id"], p["problem"]) for p in report["problems"]} == {
        (a.id, "missing"),
        (b.id, "changed"),
    }
    assert any(c.id in line for line in report["repaired"])
    assert (tmp_path / "lib" / "trash" / c.id / "music.mid").is_file()
    assert [p.id for p in lib.search("two")] == [b.id]  # the index is rebuilt
    assert lib.get(a.id).status == "missing" and lib.get(b.id).status == "changed"


def test_lineage_links_inputs_variations_replays_and_other_models(lib, tmp_path):
    root = _register(lib, _generation(tmp_path, "root", prompt="a hymn", seed=5))
    mid = lib.folder_path(root) / "music.mid"
    import hashlib

    sha = hashlib.sha256(mid.read_bytes()).hexdigest()
    child = _register(
        lib,
        _generation(
            tmp_path,
            "cont",
            prompt="",
            seed=6,
            extra={
                "request": {"seed": 6, "workflow": "continue", "input": "/gone/music.mid"},
                "input": {"path": "/gone/music.mid", "sha256": sha},
            },
        ),
    )
    v0 = _register(
        lib,
        _generation(
            tmp_path,
            "v0",
            prompt="jig",
            seed=10,
            extra={"request": {"seed": 10, "batch": {"seeds": [10, 20], "row": 0}}},
        ),
    )
    v1 = _register(
        lib,
        _generation(
            tmp_path,
            "v1",
            prompt="jig",
            seed=20,
            extra={"request": {"seed": 20, "batch": {"seeds": [10, 20], "row": 1}}},
        ),
    )
    # The same files again: a replay.
    again_files = _generation(tmp_path, "again", prompt="a hymn", seed=5)
    again_files["music.mid"].write_bytes(mid.read_bytes())
    rec = json.loads(again_files["generation.json"].read_text())
    rec["outputs"]["music.mid"]["sha256"] = sha
    again = lib.register(again_files, rec)
    other = _register(
        lib, _generation(tmp_path, "other", prompt="a hymn", seed=5, model_sha="c" * 64)
    )
    assert lib.get(child.id).parents == [(root.id, "continue")]
    assert lib.get(v1.id).parents == [(v0.id, "variation")]
    assert lib.get(again.id).parents == [(root.id, "replay")]
    assert lib.get(other.id).parents == [(root.id, "other model")]
    tree = lib.lineage(child.id)
    assert tree["focus"] == child.id and [r["id"] for r in tree["roots"]] == [root.id]
    kids = {k["id"]: k for k in tree["roots"][0]["children"]}
    assert set(kids) == {child.id, again.id, other.id}
    assert "seed 5 → 6" in kids[child.id]["changes"]
    assert any(
        line.startswith("model.sha256 aaaaaaaaaa → cccccccccc")
        for line in kids[other.id]["changes"]
    )


def test_records_of_every_command_are_described():
    chorale = json.loads((DATA / "0.3.0-chorale" / "generation.json").read_text())
    folk = json.loads((DATA / "0.3.0-folk.json").read_text())
    assert records.is_piece_record(chorale) and records.is_piece_record(folk)
    assert not records.is_piece_record({"steps": 3, "loss": 1.0})  # a training report
    a = records.describe(chorale)
    assert (a["operation"], a["style"], a["key"], a["seed"]) == ("generate", "chorale", "G", 11)
    assert a["instruments"] == ["Soprano", "Alto", "Tenor", "Bass"]
    f = records.describe(folk)
    assert (f["operation"], f["style"], f["key"], f["meter"], f["seed"]) == (
        "sketch",
        "folk",
        "D",
        "2/4",
        5,
    )
    assert records.describe({"engine": "accompany", "input": {}})["operation"] == "accompany"
    assert (
        records.describe({"engine": "musicgen", "request": {"prompt": "lofi"}})["prompt"] == "lofi"
    )


# ---- the database file -------------------------------------------------------------------------
def test_a_corrupt_database_is_refused_in_one_line_and_left_as_it_is(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    (root / DB_FILE).write_bytes(b"this is not sqlite" * 100)
    before = (root / DB_FILE).read_bytes()
    with pytest.raises(LibraryError, match="not a usable library database.*left as it is"):
        Library.open(root)
    assert (root / DB_FILE).read_bytes() == before


def test_a_foreign_sqlite_database_is_refused(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    con = sqlite3.connect(root / DB_FILE)
    con.execute("CREATE TABLE photos (id INTEGER)")
    con.commit()
    con.close()
    before = (root / DB_FILE).read_bytes()
    with pytest.raises(LibraryError, match="another program"):
        Library.open(root)
    assert (root / DB_FILE).read_bytes() == before


def test_a_newer_schema_is_refused(tmp_path):
    Library.open(tmp_path / "lib").close()
    con = sqlite3.connect(tmp_path / "lib" / DB_FILE)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(LibraryError, match="newer Disco-Musica"):
        Library.open(tmp_path / "lib")


def test_a_migration_backs_the_database_up_first_and_never_overwrites_a_backup(
    tmp_path, monkeypatch
):
    from engine.library import store

    with Library.open(tmp_path / "lib") as lib:
        _register(lib, _generation(tmp_path, "a", prompt="one", seed=1))
    monkeypatch.setitem(
        store.MIGRATIONS, SCHEMA_VERSION + 1, "ALTER TABLE pieces ADD COLUMN mood TEXT"
    )
    monkeypatch.setattr(store, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    existing = tmp_path / "lib" / "backups"
    existing.mkdir()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    taken = existing / f"library-schema{SCHEMA_VERSION}-{stamp}.db"
    taken.write_text("an older backup")
    try:
        lib = Library.open(tmp_path / "lib")
    except LibraryError as e:  # the same second: the name is taken and is not overwritten
        assert "never replaces" in str(e)
        assert taken.read_text() == "an older backup"
        return
    with lib:
        assert lib.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert lib.count() == 1
    backups = sorted(existing.iterdir())
    assert taken.read_text() == "an older backup" and len(backups) == 2


def test_backup_never_overwrites(lib, tmp_path):
    _register(lib, _generation(tmp_path, "a", prompt="one", seed=1))
    out = lib.backup(tmp_path / "b.db")
    con = sqlite3.connect(out)
    assert con.execute("SELECT count(*) FROM pieces").fetchone()[0] == 1
    con.close()
    (tmp_path / "c.db").write_text("mine")
    with pytest.raises(LibraryError, match="never replaces"):
        lib.backup(tmp_path / "c.db")
    assert (tmp_path / "c.db").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_library_on_a_read_only_disk_reads_but_changes_nothing(tmp_path):
    with Library.open(tmp_path / "lib") as lib:
        a = _register(lib, _generation(tmp_path, "a", prompt="one", seed=1))
    for p in [tmp_path / "lib", *(tmp_path / "lib").rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        with pytest.raises(LibraryError, match="read-only"):
            Library.open(tmp_path / "lib")
        with Library.open(tmp_path / "lib", write=False) as lib:
            assert [p.id for p in lib.list()] == [a.id]
            with pytest.raises(LibraryError, match="read-only"):
                lib.rate(a.id, 3)
    finally:
        for p in [tmp_path / "lib", *(tmp_path / "lib").rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_read_only_library_refusal_with_a_simulated_read_only_folder(tmp_path, monkeypatch):
    """The same check as root (who can write anywhere): the folder reports no write access."""
    from engine.library import store

    with Library.open(tmp_path / "lib") as lib:
        _register(lib, _generation(tmp_path, "a", prompt="one", seed=1))
    before = (tmp_path / "lib" / DB_FILE).read_bytes()
    monkeypatch.setattr(store, "_writable", lambda root: False)
    with pytest.raises(LibraryError, match="read-only.*nothing was changed"):
        Library.open(tmp_path / "lib")
    with Library.open(tmp_path / "lib", write=False) as lib:
        assert lib.count() == 1
        with pytest.raises(LibraryError, match="read-only"):
            lib.tag(lib.list()[0].id, ["x"])
    assert (tmp_path / "lib" / DB_FILE).read_bytes() == before


_WRITER = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from engine.library.store import Library
lib = Library.open({lib!r})
for i in range({n}):
    folder = Path({tmp!r}) / f"{{sys.argv[1]}}-{{i}}"
    folder.mkdir()
    (folder / "music.mid").write_bytes(f"{{sys.argv[1]}}{{i}}".encode())
    rec = {{"prompt": f"p {{sys.argv[1]}} {{i}}", "request": {{"seed": i}}, "outputs": {{}}}}
    (folder / "generation.json").write_text(json.dumps(rec))
    lib.register({{"music.mid": folder / "music.mid",
                  "generation.json": folder / "generation.json"}}, rec)
"""


def test_two_processes_registering_at_once_both_keep_every_piece(tmp_path):
    code = _WRITER.format(
        root=str(Path(__file__).parents[2]), lib=str(tmp_path / "lib"), n=15, tmp=str(tmp_path)
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, who]) for who in ("x", "y")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with Library.open(tmp_path / "lib") as lib:
        assert lib.count() == 30
        assert lib.verify()["problems"] == []
