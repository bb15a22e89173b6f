"""``kill -9`` at random moments: nothing lost, nothing half-registered, `verify` clean.

20 trials: the CLI writing and keeping a piece (``sketch``), importing a folder of 40
pieces, and exporting pieces to a ZIP or a folder, each killed with SIGKILL at a random
moment of its run (seeded; a fraction of the time one uninterrupted run of the same command
took on this machine, measured first, so that the kills land mid-way on fast and slow
machines alike). After each kill the next process opens the
library (which finishes or undoes what the killed one left) and:

- `verify` finds no missing or changed file and no unknown folder;
- every piece of the database has all its files, and ``incoming/`` is empty;
- a MIDI file the killed ``sketch`` published is in the library (kept before it was put in
  place), and an export is either whole (a valid ZIP, a folder with every file) or absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

from engine.library.store import Library

ROOT = Path(__file__).parents[2]
TRIALS = {"sketch": 8, "import": 6, "export": 6}


def _env(lib: Path) -> dict:
    return {**os.environ, "DISCO_MUSICA_LIBRARY": str(lib), "PYTHONPATH": str(ROOT)}


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *map(str, args)]


def _duration(cmd: list[str], env: dict, cwd: Path) -> float:
    """How long one uninterrupted run of ``cmd`` takes here (seconds)."""
    import time

    t = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - t


def _kill_after(cmd: list[str], env: dict, delay: float, cwd: Path) -> int | None:
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        return proc.wait(timeout=delay)  # it finished before the kill
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None


def _source_pieces(folder: Path, n: int) -> None:
    for i in range(n):
        d = folder / f"piece-{i}"
        d.mkdir(parents=True)
        midi = os.urandom(200_000)  # big enough that copying takes a moment
        (d / "music.mid").write_bytes(midi)
        rec = {
            "prompt": f"imported piece {i}",
            "request": {"seed": i},
            "plan": {"style": "folk"},
            "outputs": {
                "music.mid": {"sha256": hashlib.sha256(midi).hexdigest(), "bytes": len(midi)}
            },
            "created": f"2026-11-{1 + i % 28:02d}T10:00:00+00:00",
        }
        (d / "generation.json").write_text(json.dumps(rec))


def _check_whole(lib_path: Path) -> Library:
    lib = Library.open(lib_path)  # finishes or undoes what the killed process left
    report = lib.verify()
    assert report["problems"] == [], report
    for piece in lib.list(limit=None) + lib.list(trash=True, limit=None):
        full = lib.get(piece.id, include_deleted=True)
        assert full.files, f"{piece.id} has no files"
        for f in full.files:
            path = lib.file_path(full, f.name)
            assert path.is_file(), f"{piece.id}/{f.name} is missing"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == f.sha256
    assert sorted(p.name for p in (lib_path / "incoming").iterdir()) == []
    rows = {p.id for p in lib.list(limit=None)}
    assert {p.name for p in (lib_path / "pieces").iterdir()} == rows
    return lib


def _import_to_the_end(src: Path, lib_path: Path, env: dict, work: Path) -> None:
    """Import ``src`` uninterrupted; the library then holds its 40 pieces, each once."""
    done = subprocess.run(
        _cli("library", "import", src, "--json"),
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    with _check_whole(lib_path) as lib:
        prompts = [p.prompt for p in lib.list(limit=None) if p.operation == "generate"]
        imported = sorted(x for x in prompts if x.startswith("imported piece"))
        assert imported == sorted(f"imported piece {i}" for i in range(40)), done.stdout


def test_kill_9_at_random_moments_loses_nothing_and_leaves_nothing_half_done(tmp_path):
    rng = random.Random(20261206)
    lib_path = tmp_path / "lib"
    env = _env(lib_path)
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    src = tmp_path / "old-outputs"
    _source_pieces(src, 40)
    finished = killed = 0
    scratch = tmp_path / "scratch"
    sketch_s = _duration(
        _cli("sketch", "--bars", "4", "--seed", 99, "--out", work / "t.mid"),
        _env(scratch),
        work,
    )
    import_s = _duration(_cli("library", "import", src), _env(scratch), work)
    for trial in range(TRIALS["sketch"]):
        out = work / "out" / f"s{trial}.mid"
        cmd = _cli("sketch", "--style", "chorale", "--bars", "4", "--seed", trial, "--out", out)
        code = _kill_after(cmd, env, rng.uniform(0.3, 0.98) * sketch_s, work)
        finished, killed = finished + (code is not None), killed + (code is None)
        with _check_whole(lib_path) as lib:
            if out.exists():  # published: then it was kept first
                sha = hashlib.sha256(out.read_bytes()).hexdigest()
                assert lib.find_file(sha) is not None, f"trial {trial}: {out.name} was lost"
    for _ in range(TRIALS["import"]):
        delay = rng.uniform(0.3, 0.95) * import_s
        code = _kill_after(_cli("library", "import", src), env, delay, work)
        finished, killed = finished + (code is not None), killed + (code is None)
        _check_whole(lib_path).close()
    _import_to_the_end(src, lib_path, env, work)  # after all those kills: nothing twice
    with Library.open(lib_path) as lib:
        ids = [p.id for p in lib.list(limit=None)]
    export_s = _duration(_cli("library", "export", *ids[:30], "--to", work / "t.zip"), env, work)
    for trial in range(TRIALS["export"]):
        to = work / (f"e{trial}.zip" if trial % 2 else f"e{trial}")
        cmd = _cli("library", "export", *ids[:30], "--to", to)
        code = _kill_after(cmd, env, rng.uniform(0.3, 0.95) * export_s, work)
        finished, killed = finished + (code is not None), killed + (code is None)
        _check_whole(lib_path).close()
        subprocess.run(
            _cli("library", "path"), env=env, cwd=work, check=True, capture_output=True
        )  # the next run sweeps what the killed one left
        leftovers = [p.name for p in work.rglob(".dm-tmp-*")]
        assert leftovers == [], leftovers
        if to.suffix == ".zip" and to.exists():
            with zipfile.ZipFile(to) as z:
                assert z.testzip() is None
        elif to.exists():
            with Library.open(lib_path) as lib:
                for d in to.iterdir():  # each piece's folder is whole or absent
                    piece = lib.get(d.name.rsplit("-", 1)[1])
                    assert {p.name for p in d.iterdir()} == {f.name for f in piece.files}
    _import_to_the_end(src, lib_path, env, work)  # again: still the 40 pieces, once each
    assert killed >= 14, f"only {killed} of 20 trials were killed mid-way"
