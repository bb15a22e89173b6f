"""Records carry a format; records written by release 0.3.0 (before the field existed) still
replay to the same music: since 0.5.0 each file also states that it is AI-generated (a MIDI
copyright notice), so the bytes differ by that notice alone and replay says so.

`tests/data/records/` holds a ``generation.json`` and a MIDI sidecar that Disco-Musica 0.3.0
wrote (``generate "a calm chorale in G major for choir, 4 bars" --seed 11 --formats mid`` and
``sketch --style folk --key D --bars 4 --seed 5``): neither has a ``format`` field.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.record import RECORD_FORMAT, read_record
from engine.symbolic.score_api import available_models

DATA = Path(__file__).resolve().parents[1] / "data" / "records"
needs_model = pytest.mark.skipif(
    "score-base" not in available_models(), reason="needs the shipped score-base model"
)


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_the_old_records_have_no_format_and_read_as_format_1():
    old = json.loads((DATA / "0.3.0-chorale" / "generation.json").read_text())
    assert "format" not in old and old["disco_musica_version"] == "0.3.0"
    assert read_record(DATA / "0.3.0-chorale")["seed"] == 11
    assert "format" not in json.loads((DATA / "0.3.0-folk.json").read_text())


def _sha256_without_notice(data: bytes) -> str:
    """The sha256 of MIDI ``data`` without the copyright notice that opens its first track
    (as ``engine.symbolic.midi.with_copyright`` puts it), i.e. of the bytes 0.3.0 wrote."""
    pos = 8 + int.from_bytes(data[4:8], "big")
    assert data[pos : pos + 4] == b"MTrk" and data[pos + 8 : pos + 11] == b"\x00\xff\x02"
    n = data[pos + 11]
    assert n < 0x80 and data[pos + 12 : pos + 12 + n].startswith(b"AI-generated with ")
    size = int.from_bytes(data[pos + 4 : pos + 8], "big") - (4 + n)
    bare = data[: pos + 4] + size.to_bytes(4, "big") + data[pos + 12 + n :]
    return hashlib.sha256(bare).hexdigest()


@needs_model
def test_a_generation_of_release_0_3_0_replays_the_same_music_and_says_why_the_bytes_differ(
    tmp_path,
):
    record = tmp_path / "old" / "generation.json"
    record.parent.mkdir()
    shutil.copy(DATA / "0.3.0-chorale" / "generation.json", record)
    proc = _cli("replay", record, "--out", tmp_path / "again")
    assert proc.returncode == 1, proc.stderr
    assert "music.mid: DIFFERENT" in proc.stdout and "identical" not in proc.stdout
    (note,) = [line for line in proc.stdout.splitlines() if line.startswith("note:")]
    assert "made by disco-musica 0.3.0; files state in their metadata that they are " in note
    assert "AI-generated since 0.5.0, so music.mid differs here" in note
    assert "`pip install disco-musica==0.3.0` reproduces it exactly" in note
    old = json.loads(record.read_text())
    new = json.loads((tmp_path / "again" / "generation.json").read_text())
    assert new["format"] == RECORD_FORMAT and list(new)[0] == "format"
    assert new["outputs"]["music.mid"]["sha256"] != old["outputs"]["music.mid"]["sha256"]
    again = (tmp_path / "again" / "music.mid").read_bytes()
    assert _sha256_without_notice(again) == old["outputs"]["music.mid"]["sha256"]
    assert new["plan"] == old["plan"]


@needs_model
def test_a_sidecar_of_release_0_3_0_makes_the_same_midi_again_with_the_notice(tmp_path):
    old = json.loads((DATA / "0.3.0-folk.json").read_text())
    args = old["args"][:]
    proc = _cli(*args, "--out", tmp_path / "again.mid")
    assert proc.returncode == 0, proc.stderr
    sidecar = json.loads((tmp_path / "again.json").read_text())
    assert sidecar["format"] == RECORD_FORMAT and list(sidecar)[0] == "format"
    assert sidecar["midi"]["sha256"] != old["midi"]["sha256"]
    again = (tmp_path / "again.mid").read_bytes()
    assert _sha256_without_notice(again) == old["midi"]["sha256"]


@pytest.mark.parametrize(
    "fmt, message",
    [
        (RECORD_FORMAT + 1, "newer than this version reads"),
        ("2", "not a record format number"),
        (0, "not a record format number"),
        (True, "not a record format number"),
    ],
)
def test_a_record_of_an_unknown_format_is_refused_in_one_line(tmp_path, fmt, message):
    record = json.loads((DATA / "0.3.0-chorale" / "generation.json").read_text())
    path = tmp_path / "piece" / "generation.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"format": fmt, **record}))
    proc = _cli("replay", path, "--out", tmp_path / "again")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "again").exists()
