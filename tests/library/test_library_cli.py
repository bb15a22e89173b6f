"""``disco-musica library …`` as a user types it, on pieces the real commands write (the
shipped score model): kept automatically, found, changed, exported, traced, replayed — also
after the library moved to another folder — and every bad input refused in one line with
nothing changed."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from engine.cli import main


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("library.db-")
    }


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A library with a sketch, its continuation and a generation folder (MIDI only)."""
    import os

    root = tmp_path_factory.mktemp("made")
    lib = root / "lib"
    old = os.environ.get("DISCO_MUSICA_LIBRARY")
    os.environ["DISCO_MUSICA_LIBRARY"] = str(lib)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert (
            main(
                [
                    "sketch",
                    "--style",
                    "chorale",
                    "--key",
                    "G",
                    "--mode",
                    "major",
                    "--bars",
                    "4",
                    "--seed",
                    "3",
                    "--out",
                    "a.mid",
                ]
            )
            == 0
        )
        assert main(["continue", "a.mid", "--bars", "2", "--seed", "4", "--out", "b.mid"]) == 0
        assert (
            main(
                [
                    "generate",
                    "a calm chorale in G major for choir, 4 bars",
                    "--seed",
                    "11",
                    "--formats",
                    "mid",
                    "--out",
                    "gen",
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "sketch",
                    "--style",
                    "folk",
                    "--bars",
                    "4",
                    "--seed",
                    "5",
                    "--out",
                    "kept-out.mid",
                    "--no-library",
                ]
            )
            == 0
        )
    finally:
        os.chdir(cwd)
        if old is None:
            os.environ.pop("DISCO_MUSICA_LIBRARY")
        else:
            os.environ["DISCO_MUSICA_LIBRARY"] = old
    return root, lib


def _list(capsys, lib, *extra) -> list[dict]:
    code, out, _ = run(capsys, "library", "list", "--library", lib, "--json", *extra)
    assert code == 0
    return json.loads(out)


def test_every_command_keeps_its_piece_with_its_record(made, capsys):
    root, lib = made
    pieces = _list(capsys, lib)
    ops = sorted(p["operation"] for p in pieces)
    assert ops == ["continue", "generate", "sketch"]  # not the --no-library sketch
    by_op = {p["operation"]: p for p in pieces}
    cont, sketch = by_op["continue"], by_op["sketch"]
    assert (sketch["style"], sketch["key"], sketch["mode"]) == ("chorale", "G", "major")
    assert cont["parents"] == [] or True  # list gives the summary; show gives the parents
    code, out, _ = run(
        capsys, "library", "show", cont["id"], "--library", lib, "--json", "--record"
    )
    shown = json.loads(out)
    assert shown["parents"] == [{"id": sketch["id"], "relation": "continue"}]
    assert shown["record"]["seed"] == 4 and shown["record"]["model"]["sha256"]
    kept = Path(shown["folder"])
    for name in ("b.mid", "b.json"):
        assert (kept / name).read_bytes() == (root / name).read_bytes()
    gen = by_op["generate"]
    assert gen["prompt"] == "a calm chorale in G major for choir, 4 bars"
    assert gen["instruments"] == ["Soprano", "Alto", "Tenor", "Bass"]


def test_records_hold_no_path_of_this_machine(made, capsys):
    import sys

    root, lib = made
    for p in _list(capsys, lib):
        code, out, _ = run(
            capsys, "library", "show", p["id"], "--library", lib, "--json", "--record"
        )
        record = json.dumps(json.loads(out)["record"])
        assert sys.prefix not in record and "site-packages" not in record
        assert "/engine/assets/models" not in record


def test_tag_rate_note_rename_collection_search_and_filters(made, capsys, tmp_path):
    root, lib = made
    work = tmp_path / "lib"
    shutil.copytree(lib, work)
    sketch = next(p for p in _list(capsys, work) if p["operation"] == "sketch")
    sid = sketch["id"]
    assert run(capsys, "library", "tag", sid[:4], "keep", "Wedding", "--library", work)[0] == 0
    assert run(capsys, "library", "rate", sid, "5", "--library", work)[0] == 0
    assert run(capsys, "library", "note", sid, "for the choir on Sunday", "--library", work)[0] == 0
    assert run(capsys, "library", "rename", sid, "Sunday hymn", "--library", work)[0] == 0
    assert (
        run(capsys, "library", "collection", "add", "Church", "sunday hymn", "--library", work)[0]
        == 0
    )
    assert [p["id"] for p in _list(capsys, work, "--rating", "5")] == [sid]
    assert [p["id"] for p in _list(capsys, work, "--tag", "wedding")] == [sid]
    assert [p["id"] for p in _list(capsys, work, "--collection", "church")] == [sid]
    assert {p["operation"] for p in _list(capsys, work, "--instrument", "bass")} >= {"generate"}
    for words in (["sunday"], ["choir", "sunday"], ["wedding"], ["Sunday", "hymn"]):
        code, out, _ = run(capsys, "library", "search", *words, "--library", work, "--json")
        assert code == 0 and [p["id"] for p in json.loads(out)] == [sid], words
    code, out, _ = run(capsys, "library", "show", "sunday hymn", "--library", work)
    assert "★★★★★" in out and "keep, Wedding" in out and "Church" in out


def test_export_to_a_folder_and_a_zip_never_replaces(made, capsys, tmp_path):
    root, lib = made
    ids = [p["id"] for p in _list(capsys, lib)]
    code, out, err = run(
        capsys,
        "library",
        "export",
        *ids,
        "--to",
        tmp_path / "out",
        "--library",
        lib,
        "--formats",
        "mid",
    )
    assert code == 0, err
    folders = sorted((tmp_path / "out").iterdir())
    assert len(folders) == 3
    for f in folders:
        suffixes = {p.suffix for p in f.iterdir()}
        assert suffixes == {".mid", ".json"}
    code, _, err = run(
        capsys, "library", "export", ids[0], "--to", tmp_path / "out", "--library", lib
    )
    assert code == 2 and "exists; export never replaces it" in err and err.count("\n") == 1
    z = tmp_path / "all.zip"
    assert run(capsys, "library", "export", *ids, "--to", z, "--library", lib)[0] == 0
    with zipfile.ZipFile(z) as zf:
        names = zf.namelist()
    assert len({n.split("/")[0] for n in names}) == 3
    before = z.read_bytes()
    code, _, err = run(capsys, "library", "export", ids[0], "--to", z, "--library", lib)
    assert code == 2 and "never replaces" in err and z.read_bytes() == before


def test_delete_restore_verify_and_lineage(made, capsys, tmp_path):
    root, lib = made
    work = tmp_path / "lib"
    shutil.copytree(lib, work)
    pieces = {p["operation"]: p["id"] for p in _list(capsys, work)}
    code, out, _ = run(capsys, "library", "lineage", pieces["continue"], "--library", work)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(pieces["sketch"]) and f"▶ {pieces['continue']}" in lines[1]
    assert any("seed 3 → 4" in line for line in lines)
    assert run(capsys, "library", "delete", pieces["sketch"], "--library", work)[0] == 0
    assert pieces["sketch"] not in [p["id"] for p in _list(capsys, work)]
    assert [p["id"] for p in _list(capsys, work, "--trash")] == [pieces["sketch"]]
    assert run(capsys, "library", "restore", pieces["sketch"], "--library", work)[0] == 0
    code, out, _ = run(capsys, "library", "verify", "--library", work)
    assert code == 0 and "3 whole, 0 problems" in out
    kept = work / "pieces" / pieces["generate"] / "music.mid"
    kept.write_bytes(b"damaged")
    code, out, _ = run(capsys, "library", "verify", "--library", work, "--json")
    assert code == 1
    assert json.loads(out)["problems"] == [
        {"id": pieces["generate"], "file": "music.mid", "problem": "changed"}
    ]


def test_a_moved_library_replays_its_pieces_identically(made, capsys, tmp_path, monkeypatch):
    """The library copied to a new folder, the outputs and inputs it was made from gone:
    every piece replays to the same bytes (inputs are found in the library by sha256)."""
    root, lib = made
    moved = tmp_path / "elsewhere" / "my-library"
    shutil.copytree(lib, moved)
    work = tmp_path / "fresh"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("DISCO_MUSICA_LIBRARY", str(moved))
    gone = root / "gone"
    gone.mkdir(exist_ok=True)
    for name in ("a.mid", "a.json"):
        if (root / name).exists():
            shutil.move(root / name, gone / name)  # continue's input is no longer there
    try:
        for p in _list(capsys, moved):
            code, out, err = run(capsys, "library", "replay", p["id"])
            assert code == 0, (p["operation"], out, err)
            assert "DIFFERENT" not in out and "identical" in out
            assert f"a replay of {p['id']}" in out
    finally:
        for name in ("a.mid", "a.json"):
            shutil.move(gone / name, root / name)
    replays = [
        p for p in _list(capsys, moved) if p["id"] not in {x["id"] for x in _list(capsys, lib)}
    ]
    assert len(replays) == 3


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["show", "zzzzzzzz"], "no piece 'zzzzzzzz'"),
        (["rate", "{id}", "7"], "rating must be from 1 to 5, not 7"),
        (["rate", "{id}", "x"], "not a whole number"),
        (["tag", "{id}", "bad\x07tag"], "control characters"),
        (["tag", "{id}", "a,b"], "comma"),
        (["note", "{id}", "\x00"], "control characters"),
        (["rename", "{id}", "two\nlines"], "line"),
        (["export", "{id}", "--to", "{file}"], "exists"),
        (["export", "{id}", "--to", "x", "--formats", "doc"], "unknown format 'doc'"),
        (["collection", "remove", "nope", "{id}"], "no collection 'nope'"),
        (["list", "--tempo", "90-60"], "backwards"),
        (["list", "--since", "yesterday-ish"], "not a date"),
        (["list", "--rating", "9"], "rating must be from 1 to 5"),
        (["restore", "{id}"], "not in the trash"),
        (["replay", "nothing"], "no piece 'nothing'"),
        (["import", "{file}"], "not a folder"),
    ],
)
def test_bad_input_gets_one_line_and_changes_nothing(made, capsys, tmp_path, argv, needle):
    root, lib = made
    work = tmp_path / "lib"
    shutil.copytree(lib, work)
    pid = _list(capsys, work)[0]["id"]
    existing = tmp_path / "existing.zip"
    existing.write_text("mine")
    before = _hash_tree(work)
    words = [w.replace("{id}", pid).replace("{file}", str(existing)) for w in argv]
    code, out, err = run(capsys, "library", *words[:1], "--library", work, *words[1:])
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert _hash_tree(work) == before
    assert existing.read_text() == "mine"


def test_a_corrupt_library_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "library.db").write_bytes(b"\x00garbage" * 64)
    code, _, err = run(
        capsys, "sketch", "--bars", "2", "--seed", "1", "--out", "x.mid", "--library", lib
    )
    assert code == 2 and "not a usable library database" in err and err.count("\n") == 1
    assert not (tmp_path / "x.mid").exists()
    assert (lib / "library.db").read_bytes() == b"\x00garbage" * 64


def test_two_commands_writing_at_once_into_a_new_library_both_keep_their_piece(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "DISCO_MUSICA_LIBRARY": str(tmp_path / "lib")}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.cli",
                "sketch",
                "--bars",
                "2",
                "--seed",
                str(seed),
                "--out",
                str(tmp_path / f"s{seed}.mid"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    from engine.library.store import Library

    with Library.open(tmp_path / "lib") as lib:
        kept = {p.seed for p in lib.list()}
        assert kept == {1, 2} and lib.verify()["problems"] == []
