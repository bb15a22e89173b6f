"""A few hostile cases through the real ``disco-musica`` entry point, in a child process.

The in-process runs (test_refusals) cover the corpus; these check the same promises end to
end: the installed script, a real exit status, the real stderr (rich, logging and warnings
included), a 10 MB prompt on standard input, and the disk after the process is gone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile import corpus
from tests.hostile.conftest import diff, snapshot

SCRIPT = Path(sys.executable).with_name("disco-musica")


def command() -> list[str]:
    if SCRIPT.is_file():
        return [str(SCRIPT)]
    found = shutil.which("disco-musica")
    return [found] if found else [sys.executable, "-m", "engine.cli"]


CASES = [
    # (id, argv, files, keyword the error names, stdin)
    ("transcribe-empty.wav", ["transcribe", "empty.wav"], ["empty.wav"], "empty.wav", None),
    ("add-tracks-broken.mid", ["add-tracks", "broken.mid"], ["broken.mid"], "broken.mid", None),
    ("accompany-random.mp3", ["accompany", "random.mp3"], ["random.mp3"], "random.mp3", None),
    ("sketch-bars=0", ["sketch", "--bars", "0"], [], "--bars", None),
    ("replay-not-json", ["replay", "notes.txt"], ["notes.txt"], "notes.txt", None),
    ("soundfonts-get=banjo", ["soundfonts", "get", "banjo"], [], "banjo", None),
    (
        "generate-soundfont=cut-short.sf2",
        ["generate", "", "--formats", "wav", "--soundfont", "cut-short.sf2"],
        ["cut-short.sf2"],
        "cut-short.sf2",
        None,
    ),
    (
        "generate-out=dot+overwrite",
        [
            "generate",
            "",
            "--formats",
            "mid",
            "--bars",
            "2",
            "--seed",
            "1",
            "--out",
            ".",
            "--overwrite",
        ],
        ["notes.txt", "song.mid"],
        "",
        None,
    ),  # fmt: skip
    (
        "generate-prompt-10MB-stdin",
        ["generate", "-", "--formats", "mid"],
        [],
        "prompt",
        "a calm chorale " * 700_000,
    ),
    ("studio-no-terminal", ["studio"], [], "needs a terminal", None),
    (
        "studio-no-terminal-library-file",
        ["studio", "--library", "notes.txt"],
        ["notes.txt"],
        "needs a terminal",
        None,
    ),
    (
        "sketch-out=users-midi+force",
        ["sketch", "--bars", "2", "--seed", "1", "--out", "song.mid", "--force"],
        ["song.mid"],
        "song.mid",
        None,
    ),
]


@pytest.mark.parametrize(
    ("argv", "files", "keyword", "stdin"),
    [pytest.param(a, f, k, s, id=i) for i, a, f, k, s in CASES],
)
def test_refused_end_to_end(argv, files, keyword, stdin, tmp_path, tmp_path_factory):
    here, home = tmp_path / "here", tmp_path / "home"
    here.mkdir()
    home.mkdir()
    (home / ".profile").write_text("export EDITOR=vi\n")
    corpus.build(here, files)
    caches = tmp_path_factory.mktemp("caches")
    env = {
        **os.environ,
        "HOME": str(home),
        "DISCO_MUSICA_HOME": str(caches / "disco-musica"),
        "XDG_STATE_HOME": str(caches / "state"),
        "XDG_CACHE_HOME": str(caches / "cache"),
        "HF_HOME": str(caches / "hf"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLCONFIGDIR": str(caches / "mpl"),
        "NUMBA_CACHE_DIR": str(caches / "numba"),
    }
    before = snapshot(tmp_path)
    p = subprocess.run(
        [*command(), *argv],
        cwd=here,
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=180,
    )
    changes = diff(before, snapshot(tmp_path)) if tmp_path.is_dir() else ["the folder is gone"]
    lines = p.stderr.strip().splitlines()
    found = []
    if p.returncode != 2:
        found.append(f"exit status {p.returncode}, not 2")
    if "Traceback" in p.stderr:
        found.append("a traceback on stderr")
    if len(lines) != 1:
        found.append(f"{len(lines)} lines on stderr, not 1")
    elif not lines[0].startswith("error: "):
        found.append("the stderr line does not start with 'error: '")
    elif keyword and keyword.lower() not in lines[0].lower():
        found.append(f"the error does not name {keyword!r}")
    if changes:
        found.append("the watched folder changed:\n  " + "\n  ".join(changes[:40]))
    assert not found, "\n".join(found) + f"\n--- stderr ---\n{p.stderr[-3000:]}"
