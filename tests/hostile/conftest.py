"""The hostile-input harness: a watched folder, a snapshot of it, and one CLI run in-process.

The watched folder is the test's ``tmp_path``.  It holds ``here/`` (the current folder during
the run, with the inputs), ``home/`` (``$HOME``, with a user's files in it) and nothing else,
so that ``--out .``, ``--out ..`` and ``--out ~`` all point inside it.  Model caches
(``DISCO_MUSICA_HOME``, ``HF_HOME``, ``XDG_*``) point at a folder outside it, and the Hub is
offline.  Every path under the watched folder is snapshotted (type, size, mtime_ns, mode and
the SHA-256 of files) before and after a run and compared exactly, so a file created and
removed again, a hidden temporary left behind or a touched input all show.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import stat
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hostile import corpus

CASE_TIMEOUT_S = 60  # a refusal is quick; past this a case is doing real work
MODEL_WORK: list[tuple[str, str]] = []  # (case id, what was loaded) for the summary


@functools.cache
def shared_parser(build):
    """One ``build_parser()`` for every case: building it (about 60 subcommands, argparse's
    gettext lookups, the plugin entry points) took most of a case's time, and a case checks
    what a command does with its arguments, not the building. Each real process builds its
    own, as ``tests/hostile/test_subprocess.py`` does."""
    return build()


class CaseTimeout(BaseException):  # noqa: N818  (not an Exception: nothing may catch it)
    pass


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (``root`` itself included): type, size, mtime_ns, mode, sha."""
    out: dict[str, tuple] = {}

    def entry(p: Path) -> tuple:
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            kind, digest = "link", os.readlink(p)
        elif stat.S_ISDIR(st.st_mode):
            kind, digest = "dir", None
        elif stat.S_ISREG(st.st_mode):
            kind, digest = "file", hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            kind, digest = "other", None
        return (kind, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode), digest)

    out["."] = entry(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = entry(p)
    return out


def diff(before: dict, after: dict) -> list[str]:
    """What changed between two snapshots, one line each."""
    lines = []
    for k in sorted(before.keys() - after.keys()):
        lines.append(f"removed {k} ({before[k][0]})")
    for k in sorted(after.keys() - before.keys()):
        lines.append(f"created {k} ({after[k][0]}, {after[k][1]} bytes)")
    for k in sorted(before.keys() & after.keys()):
        if before[k] != after[k]:
            what = [
                name
                for name, a, b in zip(
                    ("type", "size", "mtime", "mode", "content"), before[k], after[k], strict=True
                )
                if a != b
            ]
            lines.append(f"changed {k} ({', '.join(what)})")
    return lines


@dataclass
class Result:
    code: int | None
    out: str
    err: str
    exc: str | None = None  # the traceback of an exception that escaped main()
    seconds: float = 0.0
    loads: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)


class Sandbox:
    """One watched folder and the runs in it."""

    def __init__(self, root: Path, monkeypatch, capsys, request):
        self.root = root
        self.here = root / "here"
        self.home = root / "home"
        self.here.mkdir()
        self.home.mkdir()
        (self.home / ".profile").write_text("export EDITOR=vi\n")
        (self.home / "Music").mkdir()
        (self.home / "Music" / "my-song.mid").write_bytes(corpus.duet_midi())
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.request = request
        self.case_id = request.node.name
        monkeypatch.chdir(self.here)

    def build(self, names) -> None:
        corpus.build(self.here, names)

    def expand(self, argv) -> list[str]:
        subs = {"{home}": str(self.home), "{root}": str(self.root), "{here}": str(self.here)}
        out = []
        for a in argv:
            a = str(a)
            for k, v in subs.items():
                a = a.replace(k, v)
            out.append(a)
        return out

    def run(self, argv, stdin: str | None = None, timeout: float = CASE_TIMEOUT_S) -> Result:
        """``engine.cli.main(argv)`` in-process; the snapshot diff of the watched folder."""
        from engine.symbolic import score_api

        argv = self.expand(argv)
        loads: list[str] = []
        original = score_api.ScoreModel.__dict__["load"].__func__

        def spy(cls, name_or_path=score_api.DEFAULT_MODEL):
            loads.append(f"score model {name_or_path}")
            return original(cls, name_or_path)

        self.monkeypatch.setattr(score_api.ScoreModel, "load", classmethod(spy))
        from engine import cli

        real = cli.build_parser
        self.monkeypatch.setattr(cli, "build_parser", lambda: shared_parser(real))
        try:
            from engine.pipelines import transcribe

            real_model = transcribe.basic_pitch_model

            def model_spy(*a, **k):
                loads.append("basic-pitch")
                return real_model(*a, **k)

            self.monkeypatch.setattr(transcribe, "basic_pitch_model", model_spy)
        except (ImportError, AttributeError):
            pass
        if stdin is not None:
            import io

            self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        self.capsys.readouterr()
        top_level = sorted(os.listdir("/"))
        before = snapshot(self.root)

        def expire(signum, frame):
            raise CaseTimeout(f"still running after {timeout:g} s")

        old = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        start = time.perf_counter()
        code, exc = None, None
        try:
            from engine.cli import main

            code = main(argv)
        except SystemExit as e:
            exc = f"SystemExit({e.code!r}) escaped main()"
            code = e.code if isinstance(e.code, int) else None
        except BaseException:  # noqa: BLE001  (a traceback is the finding)
            exc = traceback.format_exc()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        seconds = time.perf_counter() - start
        out, err = self.capsys.readouterr()
        os.chdir(self.here if self.here.is_dir() else self.root.parent)
        after = snapshot(self.root) if self.root.is_dir() else {}
        changes = diff(before, after)
        if sorted(os.listdir("/")) != top_level:
            changes.append(f"changed / : {sorted(set(os.listdir('/')) ^ set(top_level))}")
        if loads:
            MODEL_WORK.append((self.case_id, ", ".join(loads)))
        return Result(code, out, err, exc, seconds, loads, changes)


@pytest.fixture
def sandbox(tmp_path, monkeypatch, capfd, request, tmp_path_factory):
    caches = tmp_path_factory.mktemp("caches")
    env = {
        "HOME": str(tmp_path / "home"),
        "DISCO_MUSICA_HOME": str(caches / "disco-musica"),
        "XDG_STATE_HOME": str(caches / "state"),
        "XDG_CACHE_HOME": str(caches / "cache"),
        "XDG_CONFIG_HOME": str(caches / "config"),
        "HF_HOME": str(caches / "hf"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLCONFIGDIR": str(caches / "mpl"),
        "NUMBA_CACHE_DIR": str(caches / "numba"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        import huggingface_hub.constants as hf

        monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    except ImportError:
        pass
    return Sandbox(tmp_path, monkeypatch, capfd, request)


# ---- real records to tamper with -----------------------------------------------------------
@pytest.fixture(scope="session")
def base_records(tmp_path_factory) -> dict[str, dict]:
    """generation.json of a real generate, harmonize and accompany run (made once)."""
    from engine.cli import main

    d = tmp_path_factory.mktemp("records")
    corpus.build(d, ["tune.mid"])
    runs = {
        "generate": ["generate", "a chorale", "--bars", "2", "--formats", "mid", "--seed", "3"],
        "harmonize": ["harmonize", "tune.mid", "--formats", "mid", "--seed", "1"],
        "accompany": ["accompany", "tune.mid", "--part", "drums"],
    }
    records = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        mp.setenv("HOME", str(d))
        mp.setenv("HF_HUB_OFFLINE", "1")
        for name, argv in runs.items():
            code = main([*argv, "--out", name])
            assert code == 0, f"could not make the base {name} record"
            records[name] = json.loads((d / name / "generation.json").read_text())
    return records


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory) -> Path:
    """A built corpus of three public-domain pieces (outside every watched folder)."""
    from engine.data.corpus import build_corpus

    out = tmp_path_factory.mktemp("corpus") / "music21"
    paths = ["bach/bwv66.6.mxl", "essenFolksong/testd.abc", "bach/bwv10.7.mxl"]
    build_corpus(out, paths=paths, workers=1)
    return out


def pytest_terminal_summary(terminalreporter):
    if MODEL_WORK:
        terminalreporter.section("hostile: cases that loaded a model before answering")
        for case, what in MODEL_WORK:
            terminalreporter.write_line(f"{case}: {what}")
