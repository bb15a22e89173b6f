"""engine.record: outputs replace only our own work, atomically, and crashes leave nothing.

This is the most dangerous code in the project (it moves folders and removes temporary ones),
so every refusal is checked to change nothing on disk, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import record as R
from engine.atomic import sha256_file
from engine.errors import OutputError


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "dmhome"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path / "dmhome" / "state" / "pending"


def snapshot(root: Path) -> dict:
    """Every path under ``root`` with its kind, mode and content hash."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if p.is_symlink():
            out[str(p)] = ("link", os.readlink(p))
        elif p.is_dir():
            out[str(p)] = ("dir", st.st_mode)
        else:
            out[str(p)] = ("file", st.st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def make_output(folder: Path, files: dict[str, bytes]) -> None:
    """A folder as Disco-Musica writes it: the files and a generation.json listing them."""
    with R.OutputFolder(folder, overwrite=True) as out:
        outputs = {}
        for name, data in files.items():
            (out.path / name).write_bytes(data)
            outputs[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        (out.path / R.GENERATION_FILE).write_text(json.dumps({"outputs": outputs}))


def refused(folder, *, overwrite=True, match=None):
    root = Path.cwd().parent
    before = snapshot(root)
    with pytest.raises(OutputError, match=match):
        with R.OutputFolder(folder, overwrite=overwrite) as out:
            (out.path / "music.mid").write_bytes(b"new")
    assert snapshot(root) == before


# ---- what is never replaced ------------------------------------------------------------------
def test_the_current_folder_and_those_above_are_never_replaced(tmp_path):
    Path("notes.txt").write_text("mine")
    for target in (".", "..", Path.cwd(), Path.cwd().parent, "/", "sub/.."):
        refused(target, match="new folder name")


def test_home_is_never_replaced(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.txt").write_text("years of work")
    monkeypatch.setenv("HOME", str(home))
    refused("~", match="home folder")
    refused(home, match="home folder")


def test_a_file_is_never_replaced_by_a_folder():
    Path("notes.txt").write_text("mine")
    Path("song.mid").write_bytes(b"MThd")
    refused("notes.txt", match="is a file")
    refused("song.mid", match="is a file")


def test_a_link_is_never_replaced(tmp_path):
    make_output(Path("real"), {"music.mid": b"x"})
    Path("link").symlink_to("real")
    refused("link", match="link")


def test_folders_that_are_not_our_outputs_are_refused():
    Path("plain").mkdir()
    Path("plain/keep.txt").write_text("mine")
    refused("plain", match="no generation.json")

    Path("fake").mkdir()
    Path("fake/generation.json").write_text("[1, 2]")
    refused("fake", match="not Disco-Musica's")

    make_output(Path("ours"), {"music.mid": b"x"})
    Path("ours/my-notes.txt").write_text("mine")
    refused("ours", match="did not write .*my-notes.txt")

    make_output(Path("nested"), {"music.mid": b"x"})
    Path("nested/takes").mkdir()
    refused("nested", match="takes")


def test_an_output_edited_since_is_refused():
    make_output(Path("piece"), {"music.mid": b"ours", "music.wav": b"wav"})
    Path("piece/music.mid").write_bytes(b"edited in a DAW")
    refused("piece", match="music.mid was changed")


def test_without_overwrite_an_existing_folder_is_refused():
    make_output(Path("piece"), {"music.mid": b"x"})
    refused("piece", overwrite=False, match="already exists; add --overwrite")


def test_a_missing_parent_is_refused():
    refused("no/such/place", match="does not exist")


# ---- what is replaced, and how ---------------------------------------------------------------
def test_replacing_our_output_moves_the_old_one_to_the_trash():
    make_output(Path("piece"), {"music.mid": b"old", "music.wav": b"old wav"})
    old = {p.name: p.read_bytes() for p in Path("piece").iterdir()}
    with R.OutputFolder("piece", overwrite=True) as out:
        (out.path / "music.mid").write_bytes(b"new")
        (out.path / R.GENERATION_FILE).write_text(json.dumps({"outputs": {}}))
    assert Path("piece/music.mid").read_bytes() == b"new"
    assert not Path("piece/music.wav").exists()
    assert out.replaced is not None and out.replaced.parent.name == R.TRASH_DIR
    assert {p.name: p.read_bytes() for p in out.replaced.iterdir()} == old
    assert "move it back" in R.trash_hint(Path("piece"), out.replaced)
    assert sorted(p.name for p in Path(".").iterdir()) == [R.TRASH_DIR, "piece"]


def test_an_empty_folder_is_filled_without_trash():
    Path("empty").mkdir()
    with R.OutputFolder("empty", overwrite=True) as out:
        (out.path / "music.mid").write_bytes(b"new")
    assert out.replaced is None and Path("empty/music.mid").read_bytes() == b"new"
    assert not Path(R.TRASH_DIR).exists()


def test_new_folders_get_ordinary_modes():
    with R.OutputFolder("piece") as out:
        (out.path / "music.mid").write_bytes(b"new")
    umask = os.umask(0)
    os.umask(umask)
    assert Path("piece").stat().st_mode & 0o777 == 0o777 & ~umask
    assert sorted(p.name for p in Path("piece").iterdir()) == ["music.mid"]  # no owner file


def test_an_error_while_writing_leaves_the_old_output_and_no_litter(state):
    make_output(Path("piece"), {"music.mid": b"old"})
    before = snapshot(Path.cwd())
    with pytest.raises(ZeroDivisionError):
        with R.OutputFolder("piece", overwrite=True) as out:
            (out.path / "music.mid").write_bytes(b"half")
            raise ZeroDivisionError("a bug while writing")
    assert snapshot(Path.cwd()) == before
    assert not list(state.glob("*.json"))


def test_ctrl_c_while_writing_leaves_nothing(state):
    with pytest.raises(KeyboardInterrupt):
        with R.OutputFolder("piece") as out:
            (out.path / "music.wav").write_bytes(b"x" * 1000)
            raise KeyboardInterrupt
    assert list(Path.cwd().iterdir()) == []
    assert not list(state.glob("*.json"))


def test_a_folder_changed_while_writing_is_not_replaced():
    make_output(Path("piece"), {"music.mid": b"old"})
    with pytest.raises(OutputError, match="did not write .*late.txt"):
        with R.OutputFolder("piece", overwrite=True) as out:
            (out.path / "music.mid").write_bytes(b"new")
            Path("piece/late.txt").write_text("the user saved this meanwhile")
    assert Path("piece/music.mid").read_bytes() == b"old"
    assert Path("piece/late.txt").exists()
    assert [p.name for p in Path.cwd().iterdir()] == ["piece"]


# ---- crashes -----------------------------------------------------------------------------
CRASH = """
import json, os, sys
from engine import record as R
with R.OutputFolder(sys.argv[1], overwrite=True) as out:
    (out.path / "music.wav").write_bytes(b"x" * 100000)
    if sys.argv[2] == "after-rename":  # published, its owner file not yet removed
        real = os.rename
        def rename(a, b):
            real(a, b)
            os._exit(9)
        os.rename = rename
    if sys.argv[2] == "between-renames":
        R.OutputFolder._abort = lambda self: None
        real = os.rename
        def rename(a, b):
            real(a, b)
            if str(b).find(R.TRASH_DIR) >= 0:
                os._exit(9)
        os.rename = rename
        (out.path / R.GENERATION_FILE).write_text(json.dumps({"outputs": {"music.wav": {}}}))
    elif sys.argv[2] != "after-rename":
        os._exit(9)
"""


def crash(folder: str, when: str) -> None:
    code = subprocess.run(
        [sys.executable, "-c", CRASH, folder, when], env=os.environ, cwd=Path.cwd()
    ).returncode
    assert code == 9


def test_a_killed_run_is_cleaned_by_the_next_one(state):
    crash("piece", "writing")
    left = [p for p in Path.cwd().iterdir()]
    assert len(left) == 1 and left[0].name.startswith(R.TEMP_PREFIX)
    assert len(list(state.glob("*.json"))) == 1
    done = R.sweep_stale()
    assert done and "removed" in done[0]
    assert list(Path.cwd().iterdir()) == [] and not list(state.glob("*.json"))


def test_a_run_killed_between_its_two_renames_is_finished_by_the_next_one(state):
    make_output(Path("piece"), {"music.wav": b"old"})
    crash("piece", "between-renames")
    assert not Path("piece").exists()  # the old one is in the trash, the new one beside
    assert R.sweep_stale()[0].startswith("finished writing")
    assert Path("piece/music.wav").read_bytes() == b"x" * 100000
    assert sorted(p.name for p in Path("piece").iterdir()) == ["generation.json", "music.wav"]
    trashed = list(Path(R.TRASH_DIR).iterdir())
    assert len(trashed) == 1 and (trashed[0] / "music.wav").read_bytes() == b"old"
    assert not list(state.glob("*.json"))


def test_a_run_killed_just_after_publishing_loses_its_owner_file_to_the_next_one(state):
    """Killed between renaming its folder into place and removing the owner file from it
    (a kill -9 under load hit this window: `library export` left the file in a piece)."""
    crash("piece", "after-rename")
    assert sorted(p.name for p in Path("piece").iterdir()) == [R.OWNER_FILE, "music.wav"]
    assert R.sweep_stale() == []  # (nothing to report: the folder was already whole)
    assert [p.name for p in Path("piece").iterdir()] == ["music.wav"]
    assert not list(state.glob("*.json"))


def test_the_sweep_leaves_an_owner_file_of_another_run(state):
    """A finished entry whose target holds an owner file with another id touches nothing."""
    crash("piece", "after-rename")
    owner = Path("piece") / R.OWNER_FILE
    owner.write_text(json.dumps({**json.loads(owner.read_text()), "id": "someone-else"}))
    before = snapshot(Path.cwd())
    assert R.sweep_stale() == []
    assert snapshot(Path.cwd()) == before


def test_running_processes_keep_their_temporary_folders(state):
    with R.OutputFolder("piece") as out:
        assert R.sweep_stale() == []
        assert out.path.is_dir()


def test_the_sweep_removes_only_what_carries_our_mark(state):
    """A registry entry that names a user's folder (corrupt, or forged) removes nothing."""
    Path("mine").mkdir()
    Path("mine/song.wav").write_bytes(b"precious")
    Path(f"{R.TEMP_PREFIX}lookalike").mkdir()
    Path(f"{R.TEMP_PREFIX}lookalike/song.wav").write_bytes(b"precious too")
    state.mkdir(parents=True)
    for i, path in enumerate(["mine", f"{R.TEMP_PREFIX}lookalike", "mine/song.wav"]):
        entry = {"pid": 999999999, "host": os.uname().nodename, "id": f"x{i}", "created": 0}
        entry |= {"path": str(Path(path).absolute()), "target": "t", "kind": "folder"}
        (state / f"x{i}.json").write_text(json.dumps(entry))
    (state / "broken.json").write_text("{not json")
    before = snapshot(Path.cwd())
    assert R.sweep_stale() == []
    assert snapshot(Path.cwd()) == before
    assert not list(state.glob("*.json"))


def test_a_run_killed_before_its_owner_file_is_whole_leaves_a_folder_the_sweep_removes(state):
    """Killed between making its temporary folder and writing the owner file into it: the
    registry names that very folder and it is empty, so it goes; a non-empty folder without
    an owner file (someone else's) stays."""
    empty = Path(f"{R.TEMP_PREFIX}piece.123.abcdef12")
    empty.mkdir()
    half = Path(f"{R.TEMP_PREFIX}piece.123.abcdef14")
    half.mkdir()
    (half / R.OWNER_FILE).write_text('{"id": "k')  # killed while writing it
    full = Path(f"{R.TEMP_PREFIX}other.123.abcdef13")
    full.mkdir()
    (full / "song.wav").write_bytes(b"not ours to judge")
    state.mkdir(parents=True)
    for i, path in enumerate([empty, full, half]):
        entry = {"pid": 999999999, "host": os.uname().nodename, "id": f"k{i}", "created": 0}
        entry |= {"path": str(path.absolute()), "target": "t", "kind": "folder"}
        (state / f"k{i}.json").write_text(json.dumps(entry))
    assert sorted(R.sweep_stale()) == sorted(
        f"removed {p.absolute()} (left by a stopped run)" for p in (empty, half)
    )
    assert not empty.exists() and not half.exists()
    assert (full / "song.wav").read_bytes() == b"not ours to judge"


def test_stale_owners():
    me = R._owner()
    assert not R.is_stale({**me, "created": 0})
    assert R.is_stale({**me, "pid": 999999999, "created": 0})  # gone
    assert R.is_stale({**me, "started": me["started"] - 3600, "created": 0})  # pid reused
    import time

    other = {"pid": 1, "started": 0, "host": "elsewhere"}
    assert not R.is_stale({**other, "created": time.time()})
    assert R.is_stale({**other, "created": 0})


# ---- files (MIDI and sidecar) ------------------------------------------------------------
def sidecar_for(path: Path, data: bytes) -> bytes:
    return json.dumps({"midi": {"file": path.name, "sha256": hashlib.sha256(data).hexdigest()}})


def test_write_files_writes_both_and_replaces_only_our_unchanged_file():
    mid, side = Path("a.mid"), Path("a.json")
    assert R.write_files([(mid, b"one"), (side, sidecar_for(mid, b"one").encode())]) == []
    with pytest.raises(OutputError, match="already exists; add --force"):
        R.write_files([(mid, b"two"), (side, b"{}")], force=False)
    trashed = R.write_files([(mid, b"two"), (side, sidecar_for(mid, b"two").encode())], force=True)
    assert mid.read_bytes() == b"two" and [t.read_bytes() for t in trashed][0] == b"one"
    mid.write_bytes(b"edited")
    with pytest.raises(OutputError, match="changed since"):
        R.write_files([(mid, b"three"), (side, b"{}")], force=True)
    assert mid.read_bytes() == b"edited"


def test_write_files_never_replaces_a_users_file():
    Path("song.mid").write_bytes(b"the user's own")
    Path("song.json").write_text('{"tempo": 120}')
    before = snapshot(Path.cwd())
    with pytest.raises(OutputError, match="not written by Disco-Musica"):
        R.write_files([(Path("song.mid"), b"x"), (Path("song.json"), b"{}")], force=True)
    assert snapshot(Path.cwd()) == before


def test_write_files_refuses_folders_and_links():
    Path("d.mid").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        R.write_files([(Path("d.mid"), b"x"), (Path("d.json"), b"{}")], force=True)
    Path("l.mid").symlink_to("elsewhere.mid")
    with pytest.raises(OutputError, match="link"):
        R.write_files([(Path("l.mid"), b"x"), (Path("l.json"), b"{}")], force=True)


# ---- folders made for outputs ----------------------------------------------------------------
def test_folders_made_for_a_failed_run_are_removed_only_while_empty():
    R.make_dirs(Path("out/a/b"))
    R.make_dirs(Path("kept"))
    Path("kept/file").write_text("x")
    R.remove_made_dirs()
    assert sorted(p.name for p in Path.cwd().iterdir()) == ["kept"]
    R.make_dirs(Path("ok"))
    R.forget_made_dirs()
    R.remove_made_dirs()
    assert Path("ok").is_dir()


def test_unique_folder():
    Path("p").mkdir()
    assert R.unique_folder(Path("."), "p") == Path("p-2")
    assert R.unique_folder(Path("."), "p", [Path("p-2")]) == Path("p-3")
    assert R.prompt_words("A calm chorale in G major, please", "x") == "a-calm-chorale-in-g"


def test_sha256_of_written_output_matches_record():
    make_output(Path("piece"), {"music.mid": b"abc"})
    rec = json.loads(Path("piece/generation.json").read_text())
    assert rec["outputs"]["music.mid"]["sha256"] == sha256_file(Path("piece/music.mid"))


# ---- records read back for replay --------------------------------------------------------
GOOD = {
    "prompt": "a chorale",
    "request": {"seed": 7, "model": "score-base"},
    "plan": {"seed": 7},
    "seed": 7,
    "model": {"name": "score-base", "sha256": "ab"},
    "output": {},
    "outputs": {"music.mid": {"sha256": "cd", "bytes": 1}},
}


def write_record(data) -> Path:
    path = Path("generation.json")
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize(
    "data, message",
    [
        ("", "is not JSON"),
        ("{oops", "is not JSON"),
        ([1, 2], "holds a list, not a Disco-Musica record"),
        ('"text"', "holds a string"),
        ("3", "holds a number"),
        ({**GOOD, "engine": "stable-audio"}, "engine 'stable-audio', which this version cannot"),
        ({**GOOD, "seed": "abc"}, "seed is 'abc', not a whole number"),
        ({**GOOD, "seed": 2**70}, "outside 0..4294967295"),
        ({**GOOD, "seed": -1}, "outside 0..4294967295"),
        ({**GOOD, "seed": True}, "not a whole number"),
        ({k: v for k, v in GOOD.items() if k != "seed"}, "has no seed"),
        (
            {**GOOD, "seed": 8},
            r"edited: its copies of the seed differ \(seed = 8, request.seed = 7",
        ),
        ({**GOOD, "plan": {"seed": 9}}, "plan.seed = 9"),
        ({k: v for k, v in GOOD.items() if k != "model"}, "has no model entry"),
        ({**GOOD, "model": {"name": "score-base"}}, "has no model entry"),
        ({**GOOD, "model": {"name": "other", "sha256": "ab"}}, "request.model is 'score-base'"),
        ({**GOOD, "outputs": []}, "'outputs' is not a table"),
        ({**GOOD, "outputs": {"music.mid": "cd"}}, "'outputs' is not a table"),
    ],
)
def test_records_that_cannot_be_replayed_say_what_is_wrong(data, message):
    from engine.errors import RecordError

    path = write_record(data)
    with pytest.raises(RecordError, match=message):
        R.read_record(path)


def test_a_consistent_record_reads_back_and_folders_find_their_record():
    write_record(GOOD)
    assert R.read_record("generation.json") == GOOD
    Path("piece").mkdir()
    Path("generation.json").rename("piece/generation.json")
    assert R.read_record("piece")["seed"] == 7
    from engine.errors import RecordError

    with pytest.raises(RecordError, match="does not exist"):
        R.read_record("nowhere/generation.json")
    Path("bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RecordError, match="not text|not JSON"):
        R.read_record("bin.json")


def test_eval_reports_replace_only_earlier_reports(monkeypatch):
    from engine.train import evaluate
    from engine.train.evaluate import write_report

    monkeypatch.setattr(evaluate, "report_markdown", lambda r: f"# {r['model']}\n")

    Path("notes.json").write_text('{"mine": true}')
    before = snapshot(Path.cwd())
    with pytest.raises(OutputError, match="not an earlier evaluation report"):
        write_report({"command": "disco-musica eval score"}, "notes")
    assert snapshot(Path.cwd()) == before
    report = {"command": "disco-musica eval score", "model": "m"}
    js, md = write_report(report, "eval/first")
    assert json.loads(js.read_text()) == report and md.is_file()
    write_report({**report, "model": "n"}, "eval/first")
    assert json.loads(js.read_text())["model"] == "n"
    trashed = sorted(p.name.split(".")[1] for p in Path("eval", R.TRASH_DIR).iterdir())
    assert trashed == ["json", "md"]


def test_convert_force_replaces_only_a_converted_model(capsys):
    from engine import cli

    Path("models").mkdir()
    Path("models/my-notes.txt").write_text("mine")
    before = snapshot(Path.cwd())
    for out in ("models", ".", "~"):
        code = cli.main(["convert", "musicgen", "facebook/musicgen-small", "--out", out, "--force"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.splitlines()) == 1, err
        assert "nothing was replaced" in err or "new folder name" in err, err
    assert snapshot(Path.cwd()) == before


def test_corpus_build_force_replaces_only_a_corpus(capsys):
    from engine import cli

    Path("data").mkdir()
    Path("data/pieces.jsonl").write_text("{}\n")  # looks like a corpus, but holds more
    Path("data/thesis.tex").write_text("mine")
    before = snapshot(Path.cwd())
    code = cli.main(["corpus", "build", "--out", "data", "--force", "--limit", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "thesis.tex" in err and len(err.strip().splitlines()) == 1, err
    assert snapshot(Path.cwd()) == before


def test_outputs_still_work_when_the_state_folder_cannot_be_written(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state folder would be")
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(blocker))
    with R.OutputFolder("piece") as out:
        (out.path / "music.mid").write_bytes(b"x")
    assert Path("piece/music.mid").read_bytes() == b"x"
    assert R.write_files([(Path("a.mid"), b"m"), (Path("a.json"), b"{}")]) == []


def test_a_stop_that_a_library_swallowed_still_stops_before_publishing(state):
    """A C extension may run our SIGTERM handler and clear the exception it raised; the
    request is remembered, so nothing is published and the run ends as stopped."""
    from engine.errors import Stopped, clear_stop, request_stop

    try:
        with pytest.raises(Stopped):
            with R.OutputFolder("piece") as out:
                (out.path / "music.mid").write_bytes(b"x")
                try:
                    request_stop(15)
                    raise Stopped(15)
                except Stopped:
                    pass  # swallowed, as some libraries do
        assert list(Path.cwd().iterdir()) == [] and not list(state.glob("*.json"))
        with pytest.raises(Stopped):
            R.write_files([(Path("a.mid"), b"m"), (Path("a.json"), b"{}")])
        assert list(Path.cwd().iterdir()) == []
    finally:
        clear_stop()


def test_a_cached_hash_is_recomputed_when_the_file_changes(tmp_path):
    """sha256_file_cached hashes a file once per version: the same answer as sha256_file,
    and a new one as soon as the file's size or modification time changes."""
    import os

    from engine.atomic import sha256_file_cached

    f = tmp_path / "model.safetensors"
    f.write_bytes(b"first weights")
    assert sha256_file_cached(f) == sha256_file(f)
    f.write_bytes(b"other weights")  # same size: only the modification time tells
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert sha256_file_cached(f) == sha256_file(f)
    f.write_bytes(b"longer other weights")
    assert sha256_file_cached(f) == sha256_file(f) == sha256_file_cached(f)
