"""The real studio in a real terminal (tmux), driven with keys as a person would: skip the
introduction, type a prompt, Ctrl+G, rate the piece 4, find it on the Library screen, Ctrl+Q;
then the library on disk has it, rated 4. Also what ``disco-musica`` alone says on a
terminal, and ``disco-musica studio`` refusing without one.

Each test runs its own tmux server (``tmux -L <name>``, no config file), with a temporary
``DISCO_MUSICA_HOME``, library and output folder, and ``--no-audio``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
PROMPT = "a calm chorale in G major for choir, 4 bars"
ROOT = Path(__file__).resolve().parents[2]


def disco_musica() -> list[str]:
    """The console script beside this Python, else ``python -m engine.cli``."""
    script = Path(sys.executable).parent / "disco-musica"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "engine.cli"]


class Tmux:
    """One tmux server of this test, one session, 100×30."""

    def __init__(self, env: dict[str, str]):
        self.socket = f"disco-musica-test-{uuid.uuid4().hex[:8]}"
        self.env = env

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [TMUX, "-L", self.socket, "-f", os.devnull, *args],
            capture_output=True,
            text=True,
            check=check,
            env=self.env,
            timeout=30,
        )

    def start(self, command: str, width: int = 100, height: int = 30) -> None:
        self("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self("send-keys", "-t", "t", *(["-l"] if literal else []), *keys)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "t").stdout

    def alive(self) -> bool:
        return self("has-session", "-t", "t", check=False).returncode == 0

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        end = time.monotonic() + timeout
        while True:
            text = self.screen() if self.alive() else ""
            found = re.search(pattern, text)
            if found:
                return found
            if time.monotonic() > end:
                raise AssertionError(f"not on screen after {timeout:.0f} s: {pattern}\n{text}")
            time.sleep(0.2)

    def wait_gone(self, pattern: str, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while re.search(pattern, text := self.screen()):
            if time.monotonic() > end:
                raise AssertionError(f"still on screen after {timeout:.0f} s: {pattern}\n{text}")
            time.sleep(0.2)

    def close(self) -> None:
        self("kill-server", check=False)


@pytest.fixture
def place(tmp_path):
    """The environment of the studio: a temporary home, the venv's bin first on PATH."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCO_MUSICA_", "TMUX"))}
    env.pop("NO_COLOR", None)
    env.update(
        DISCO_MUSICA_HOME=str(home),
        DISCO_MUSICA_SOUNDFONT=os.environ.get("DISCO_MUSICA_SOUNDFONT", "TimGM6mb"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        TERM="xterm-256color",
        LANG=env.get("LANG") or "C.UTF-8",
    )
    tmux = Tmux(env)
    yield tmp_path, env, tmux
    tmux.close()


def test_make_rate_find_and_quit_in_a_real_terminal(place):
    from engine.library.store import Library

    tmp, env, tmux = place
    lib, out, rc = tmp / "lib", tmp / "out", tmp / "rc"
    studio = shlex.join([*disco_musica(), "studio", "--library", str(lib), "--out", str(out)])
    tmux.start(f"cd {shlex.quote(str(tmp))}; {studio} --no-audio; echo $? > {rc}")

    tmux.wait_for(r"Step 1 of 4", timeout=60)  # a new home: the introduction first
    tmux.keys("Escape")
    tmux.wait_gone(r"Step 1 of 4")
    assert "Describe the music" in tmux.screen()
    tmux.keys(PROMPT, literal=True)
    tmux.wait_for(re.escape(PROMPT))
    tmux.keys("C-g")
    tmux.wait_for(r"Done in [\d.]+ s: 1 piece kept", timeout=60)

    # Out of the prompt first (there 4 would be typed): Tab to the Generate button. Not
    # Escape: an Escape read together with the next key is taken for Alt+4 under load.
    tmux.keys("Tab")
    time.sleep(0.5)
    tmux.keys("4")
    piece_id = tmux.wait_for(r"(\w+): rated 4 of 5").group(1)

    tmux.keys("F3")
    tmux.wait_for(r"\[F3 Library\]")
    tmux.wait_for(rf"{piece_id}\s+★★★★")

    tmux.keys("C-q")
    end = time.monotonic() + 30
    while tmux.alive() and time.monotonic() < end:
        time.sleep(0.2)
    assert not tmux.alive(), tmux.screen()
    assert rc.read_text().strip() == "0"

    with Library.open(lib, write=False) as library:
        pieces = library.list()
    assert [(p.id, p.rating) for p in pieces] == [(piece_id, 4)]
    assert pieces[0].prompt == PROMPT
    assert list(out.iterdir())  # the piece's folder, in --out


def test_disco_musica_alone_on_a_terminal_says_how_to_open_the_studio(place):
    tmp, env, tmux = place
    tmux.start(shlex.join(disco_musica()) + "; echo rc=$?; sleep 60")
    tmux.wait_for(r"rc=\d+")
    text = " ".join(tmux.screen().split())
    assert "open the studio with `disco-musica studio`" in text
    assert "rc=0" in text


def test_the_studio_without_a_terminal_exits_2_in_one_line(place):
    tmp, env, tmux = place
    done = subprocess.run(
        [*disco_musica(), "studio", "--library", str(tmp / "lib")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == ("error: the studio needs a terminal; run `disco-musica studio` in one\n")
    assert not (tmp / "lib").exists()  # refused before anything was made
