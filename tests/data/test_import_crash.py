"""An import killed with ``kill -9`` continues when run again (every file once, nothing copied
twice), and a full disk or a read-only dataset stops it in one line with HEAD and the
manifests as they were."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.data import ingest
from engine.data.store import Dataset

REPO = Path(__file__).resolve().parents[2]
FILES = 60

# The import, slowed down per file so that the test can kill it half-way.
SLOW_IMPORT = """
import runpy, sys, time
import engine.data.ingest as ingest
one = ingest._Importer.one
def slow(self, e):
    time.sleep(0.05)
    return one(self, e)
ingest._Importer.one = slow
sys.argv = ["disco-musica", *sys.argv[1:]]
runpy.run_module("engine.cli", run_name="__main__")
"""


def make_files(media, folder: Path, n: int = FILES) -> None:
    for i in range(n):
        if i % 3 == 0:
            (folder / f"m{i:02d}.mid").parent.mkdir(parents=True, exist_ok=True)
            (folder / f"m{i:02d}.mid").write_bytes(media.midi_bytes(pitches=(30 + i, 64, 67)))
        else:
            media.write_audio(folder / f"a{i:02d}.wav", seconds=0.05, rate=8000, hz=200 + 10 * i)


def journal_items(ds_path: Path) -> int:
    try:
        return max(0, len((ds_path / "pending.jsonl").read_text().splitlines()) - 1)
    except OSError:
        return 0


def object_files(ds: Dataset) -> list[Path]:
    return sorted(p for p in (ds.path / "objects").rglob("*") if p.is_file())


def test_kill_9_during_import_then_rerun_imports_every_file_once(media, tmp_path):
    src = tmp_path / "takes"
    make_files(media, src)
    target = tmp_path / "set"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = ["data", "import", str(src), "--into", str(target)]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_IMPORT, *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while journal_items(target) < 10 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = journal_items(target)
    assert 10 <= done_before < FILES
    ds = Dataset.open(target)
    assert ds.items() == []  # the version was never written: HEAD is still the empty one

    rerun = subprocess.run(
        [sys.executable, "-m", "engine.cli", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = rerun.stdout.splitlines()[-1]
    assert summary.startswith(f"added {FILES} (")
    resumed = int(summary.split("(")[1].split()[0])
    assert resumed >= done_before - 1  # a torn last journal line is redone, not lost

    ds = Dataset.open(target)
    items = ds.items()  # the manifest reads back whole
    paths = [i.path for i in items]
    assert sorted(paths) == sorted(f"takes/{p.name}" for p in src.iterdir())
    assert len(set(paths)) == len(paths) == FILES
    assert len({i.id for i in items}) == FILES
    assert not (ds.path / "pending.jsonl").exists()
    # every file's bytes once: as many objects as distinct contents, no leftovers
    objs = object_files(ds)
    assert len(objs) == len({i.hash for i in items}) == FILES
    assert not any(p.suffix == ".tmp" for p in objs)
    for item in items:
        assert ds.file(item).read_bytes() == (src / Path(item.path).name).read_bytes()
    assert ds.version().step["name"] == "import"


def _snapshot(ds: Dataset) -> tuple:
    versions = sorted(
        (p.name, p.read_bytes()) for p in (ds.path / "versions").iterdir() if p.is_file()
    )
    return (ds.path / "HEAD").read_bytes(), versions


def test_a_full_disk_stops_the_import_in_one_line_and_a_rerun_finishes(
    media, tmp_path, monkeypatch, capsys
):
    src = tmp_path / "takes"
    make_files(media, src, 9)
    ds = Dataset.create(tmp_path / "set")
    media.write_audio(tmp_path / "first.wav")
    ingest.import_sources(ds, [str(tmp_path / "first.wav")])
    before = _snapshot(ds)
    real_fdopen = os.fdopen
    opened = {"n": 0}

    class Full:
        """A stored file's writer on a disk that has just filled up."""

        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def __getattr__(self, name):
            return getattr(self.f, name)

    def fdopen(fd, *a, **k):  # the store writes each new file through os.fdopen
        opened["n"] += 1
        f = real_fdopen(fd, *a, **k)
        return Full(f) if opened["n"] > 3 else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    from engine.cli import main

    code = main(["data", "import", str(src), "--into", str(ds.path)])
    out, err = capsys.readouterr()
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: the disk holding")
    assert "is full" in err
    assert _snapshot(ds) == before  # HEAD and every manifest as they were
    assert not any(p.suffix == ".tmp" for p in object_files(ds))

    report = ingest.import_sources(ds, [str(src)])
    assert len(report.added) + report.resumed == 9 and report.resumed == 3
    assert len(ds.items()) == 10 and len({i.path for i in ds.items()}) == 10


def test_a_read_only_dataset_stops_the_import_in_one_line(media, tmp_path, monkeypatch, capsys):
    # Emulated: permission bits do not stop root, so the store's temporary files fail with
    # EROFS as on a read-only disk.
    src = tmp_path / "takes"
    make_files(media, src, 3)
    ds = Dataset.create(tmp_path / "set")
    before = _snapshot(ds)
    import engine.data.store as store

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store.tempfile, "mkstemp", read_only)
    from engine.cli import main

    code = main(["data", "import", str(src), "--into", str(ds.path)])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {ds.path} cannot be written (read-only")
    assert _snapshot(ds) == before
    assert not (ds.path / "pending.jsonl").exists()


def test_a_full_disk_at_the_first_journal_line_leaves_no_version(media, tmp_path, monkeypatch):
    src = tmp_path / "takes"
    make_files(media, src, 4)
    ds = Dataset.create(tmp_path / "set")
    before = _snapshot(ds)
    import engine.data.store as store

    def log(self, op, item):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.Change, "_log", log)
    with pytest.raises(store.DatasetError, match="is full"):
        ingest.import_sources(ds, [str(src)])
    assert _snapshot(ds) == before
    assert not (ds.path / "pending.jsonl").exists()
