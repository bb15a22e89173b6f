"""Every refusal case: exit 2, one ``error:`` line naming the problem, nothing touched on disk.

The cases are in `tests.hostile.cases`; the files they read are built by
`tests.hostile.corpus` inside the test's own folder.  A case fails on any of: another exit
status, an exception escaping ``main()`` (its traceback is shown), more or less than one line
on stderr, a line that does not start with ``error: `` or does not name the problem, and any
path under the watched folder created, changed or removed (hidden temporaries included).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
from collections import Counter

import pytest

from tests.hostile import corpus
from tests.hostile.cases import CASES, IDS, Case

ROOT_SKIP = (
    "running as root: permission bits do not stop root from writing, so a read-only folder "
    "cannot be emulated here"
)


def test_the_corpus_has_at_least_300_refusal_cases():
    per_command = Counter(
        c.argv[0]
        if c.argv[0] not in ("convert", "corpus", "train", "eval")
        else " ".join(c.argv[:2])
        for c in CASES
    )
    assert len(CASES) >= 300, per_command
    assert len(per_command) >= 14, per_command


def write_record(sandbox, request, folder: str, base: str, how: str) -> None:
    d = sandbox.here / folder
    d.mkdir(parents=True, exist_ok=True)
    target = d / "generation.json"
    if base == "raw":
        target.write_bytes(corpus.RAW_RECORDS[how])
        return
    records = request.getfixturevalue("base_records")
    if base == "generate":
        target.write_text(json.dumps(corpus.tampered(records[base], how, sandbox.here)))
        return
    r = json.loads(json.dumps(records[base]))
    if how == "input-gone":
        path = sandbox.here / "gone.mid"
    elif how == "input-changed":
        path = sandbox.here / "changed.mid"
        path.write_bytes(corpus.duet_midi())
    elif how == "input-is-folder":
        path = sandbox.here / "a-folder.mid"
        path.mkdir()
    elif how == "input-not-midi":
        path = sandbox.here / "not-midi.mid"
        path.write_text("not MIDI at all\n")
    else:
        raise ValueError(how)
    sha = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "0" * 64
    if how == "input-changed":
        sha = hashlib.sha256(corpus.melody_midi()).hexdigest()
    if base == "harmonize":
        r["request"]["input"] = str(path)
        r.setdefault("input", {})["sha256"] = sha
    else:
        r["input"]["path"] = str(path)
        r["input"]["sha256"] = sha
    target.write_text(json.dumps(r))


class _Terminal(io.StringIO):
    """Standard input that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def fake_terminal(sandbox) -> list:
    """Make ``studio`` believe it runs in a terminal, and never start its app: the apps it
    would have run are listed in the returned list (a refusal leaves it empty)."""
    from tui.app import StudioApp

    opened = []

    def run(app, *a, **k):
        opened.append(app)
        app._return_code = 0

    sandbox.monkeypatch.setattr("sys.stdin", _Terminal(""))
    sandbox.monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    sandbox.monkeypatch.setattr(StudioApp, "run", run)
    return opened


def problems(r, needle: str) -> list[str]:
    """What is wrong with a run that should have been refused (empty: nothing)."""
    found = []
    if r.exc:
        found.append("an exception escaped main():\n" + r.exc.rstrip())
    if r.code != 2:
        found.append(f"exit status {r.code!r}, not 2")
    if "Traceback" in r.err:
        found.append("a traceback on stderr")
    lines = r.err.strip().splitlines()
    if len(lines) != 1:
        found.append(f"{len(lines)} lines on stderr, not 1")
    elif not lines[0].startswith("error: "):
        found.append("the stderr line does not start with 'error: '")
    elif needle and not re.search(needle, lines[0], re.IGNORECASE):
        found.append(f"the error does not name the problem (expected /{needle}/)")
    if r.changes:
        found.append("the watched folder changed:\n  " + "\n  ".join(r.changes[:40]))
    return found


def report(case: Case, argv: list[str], r, found: list[str]) -> str:
    shown = " ".join(a if len(a) < 80 else f"{a[:40]}...({len(a)} chars)" for a in argv)
    tail = r.err if len(r.err) < 3000 else r.err[:1500] + "\n...\n" + r.err[-1500:]
    loads = f"\nmodels loaded: {', '.join(r.loads)}" if r.loads else ""
    return (
        f"\n$ disco-musica {shown}\n(cwd here/, {r.seconds:.1f} s){loads}\n"
        + "\n".join(f"- {p}" for p in found)
        + f"\n--- stderr ---\n{tail}\n--- stdout (end) ---\n{r.out[-1500:]}"
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_refused(case: Case, sandbox, request):
    if case.root_only_skip and os.geteuid() == 0:
        pytest.skip(ROOT_SKIP)
    if case.known_bug:
        request.applymarker(pytest.mark.xfail(reason=case.known_bug, strict=True))
    sandbox.build(case.files)
    if "locked" in case.files:
        (sandbox.here / "locked").chmod(0o500)
    for folder, base, how in case.records:
        write_record(sandbox, request, folder, base, how)
    argv = list(case.argv)
    needle = case.needle
    if case.corpus:
        built = str(request.getfixturevalue("mini_corpus"))
        argv = [a.replace("{corpus}", built) for a in argv]
    needle = needle.replace("{home}", re.escape(str(sandbox.home)))
    needle = needle.replace("{root}", re.escape(str(sandbox.root)))
    opened = fake_terminal(sandbox) if case.terminal else []
    r = sandbox.run(argv, stdin="" if case.terminal is False else None)
    found = problems(r, needle)
    if opened:
        found.append("the studio opened instead of refusing")
    if os.environ.get("HOSTILE_REPORT"):  # a JSON line per case, for triage
        with open(os.environ["HOSTILE_REPORT"], "a") as f:
            exc_last = r.exc.strip().splitlines()[-1] if r.exc else None
            err = r.err.strip()
            row = {
                "id": case.id,
                "code": r.code,
                "err": err if len(err) < 700 else f"{err[:300]} ... {err[-300:]}",
                "exc": exc_last,
                "changes": r.changes[:6],
                "problems": [p.splitlines()[0] for p in found],
                "seconds": round(r.seconds, 2),
                "loads": r.loads,
            }
            f.write(json.dumps(row) + "\n")
    assert not found, report(case, sandbox.expand(argv), r, found)
