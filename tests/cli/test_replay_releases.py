"""Replay of records made before the sampling rules of issue 11 (release 0.2.0): the files
differ, and replay says in one line which release reproduces them (never "identical")."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from engine import __version__
from engine.symbolic.score_api import available_models

pytestmark = pytest.mark.skipif(
    "score-base" not in available_models(), reason="needs the shipped score-base model"
)


def _replay(record, out):
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "replay", str(record), "--out", str(out)],
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """formats -> a folder that `generate "a chorale in G major, 2 bars" --seed 3` wrote
    (each made once; tests change copies of it)."""
    folders = {}

    def make(formats: str):
        if formats not in folders:
            folder = tmp_path_factory.mktemp("made") / "piece"
            subprocess.run(
                [sys.executable, "-m", "engine.cli", "generate", "a chorale in G major, 2 bars",
                 "--seed", "3", "--out", str(folder), "--formats", formats],
                check=True, capture_output=True,
            )  # fmt: skip
            folders[formats] = folder
        return folders[formats]

    return make


def _copy(made, tmp_path, formats: str = "mid"):
    folder = tmp_path / "piece"
    shutil.copytree(made(formats), folder)
    return folder / "generation.json"


def _made(made, tmp_path, version: str, seed_shift: int):
    path = _copy(made, tmp_path)
    record = json.loads(path.read_text())
    # Stand in for a record an older release made: its version, and music this code does
    # not make from it (another seed's).
    record["disco_musica_version"] = version
    record["seed"] += seed_shift
    record["request"]["seed"] = record["plan"]["seed"] = record["seed"]
    path.write_text(json.dumps(record))
    return path


def test_an_older_record_names_the_release_that_reproduces_it(made, tmp_path):
    proc = _replay(_made(made, tmp_path, "0.1.0", 1), tmp_path / "again")
    assert proc.returncode == 1
    assert "music.mid: DIFFERENT" in proc.stdout and "identical" not in proc.stdout
    (note,) = [line for line in proc.stdout.splitlines() if line.startswith("note:")]
    assert "made by disco-musica 0.1.0" in note and "disco-musica==0.1.0" in note


def test_a_record_of_the_previous_release_that_differs_says_what_changed(made, tmp_path):
    proc = _replay(_made(made, tmp_path, "0.2.0", 1), tmp_path / "again")
    assert proc.returncode == 1 and "music.mid: DIFFERENT" in proc.stdout
    (note,) = [line for line in proc.stdout.splitlines() if line.startswith("note:")]
    assert "made by disco-musica 0.2.0; a repeated section no longer overlaps" in note
    assert "disco-musica==0.2.0" in note


def test_a_current_record_that_differs_gets_no_release_note(made, tmp_path):
    proc = _replay(_made(made, tmp_path, __version__, 1), tmp_path / "again")
    assert proc.returncode == 1 and "music.mid: DIFFERENT" in proc.stdout
    assert "note:" not in proc.stdout


def test_a_current_record_replays_identically(made, tmp_path):
    proc = _replay(_made(made, tmp_path, __version__, 0), tmp_path / "again")
    assert proc.returncode == 0 and "music.mid: identical" in proc.stdout


def test_a_record_of_the_previous_default_replays_with_its_versioned_copy(tmp_path):
    """A record of score-base made while it held the weights score-base-v1 keeps (releases
    0.1.0 to 0.2.0) replays identically through score-base-v1, whatever score-base holds."""
    from engine.symbolic import model_versions as mv

    folder = tmp_path / "old"
    subprocess.run(
        [sys.executable, "-m", "engine.cli", "generate", "a chorale in G major, 2 bars",
         "--seed", "5", "--out", str(folder), "--formats", "mid,musicxml",
         "--model", "score-base-v1"],
        check=True, capture_output=True,
    )  # fmt: skip
    path = folder / "generation.json"
    record = json.loads(path.read_text())
    v1 = next(r for r in mv.RELEASES if r.kept_as == "score-base-v1")
    assert record["model"]["sha256"] == v1.sha256
    record["model"]["name"] = record["request"]["model"] = "score-base"  # as 0.2.0 wrote it
    path.write_text(json.dumps(record))
    proc = _replay(path, tmp_path / "again")
    assert proc.returncode == 0, proc.stderr
    assert "music.mid: identical" in proc.stdout and "music.musicxml: identical" in proc.stdout
    replayed = json.loads((tmp_path / "again" / "generation.json").read_text())
    moved_on = mv.installed_weights()["score-base"] != v1.sha256
    assert replayed["model"]["name"] == ("score-base-v1" if moved_on else "score-base")
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note:")]
    assert notes == (
        [f"note: score-base now holds other weights; score-base-v1 holds the recorded weights "
         f"(sha256 {v1.sha256[:12]}...)"] if moved_on else []
    )  # fmt: skip


def test_a_record_of_an_unknown_name_replays_with_the_model_holding_its_weights(made, tmp_path):
    from engine.symbolic.model_versions import installed_weights

    path = _made(made, tmp_path, "0.3.0", 0)
    record = json.loads(path.read_text())
    record["model"]["name"] = record["request"]["model"] = "my-renamed-model"
    path.write_text(json.dumps(record))
    proc = _replay(path, tmp_path / "again")
    assert proc.returncode == 0, proc.stderr
    assert "music.mid: identical" in proc.stdout
    holder = sorted(n for n, s in installed_weights().items() if s == record["model"]["sha256"])
    (note,) = [line for line in proc.stdout.splitlines() if line.startswith("note:")]
    assert note.startswith(f"note: my-renamed-model is not installed; {holder[0]} holds the")


def test_a_record_of_0_3_0_whose_notation_differs_names_the_notation_change(made, tmp_path):
    path = _copy(made, tmp_path, "mid,musicxml")
    record = json.loads(path.read_text())
    record["disco_musica_version"] = "0.3.0"
    record["outputs"]["music.musicxml"]["sha256"] = "0" * 64  # as 0.3.0 wrote it: other bytes
    path.write_text(json.dumps(record))
    proc = _replay(path, tmp_path / "again")
    assert proc.returncode == 1
    assert "music.mid: identical" in proc.stdout and "music.musicxml: DIFFERENT" in proc.stdout
    (note,) = [line for line in proc.stdout.splitlines() if line.startswith("note:")]
    assert "made by disco-musica 0.3.0; MusicXML spells notes as their key does" in note
    assert (
        "since 0.4.0; files state in their metadata that they are AI-generated since 0.5.0, "
        in note
    )
    assert "so music.musicxml differs here" in note
    assert "repeated section" not in note and "disco-musica==0.3.0` reproduces it" in note


def test_each_change_is_named_for_the_files_it_changed():
    """0.5.0's statement changes every file; from 0.5.0 on every file names its release."""
    from engine.cli.generate import _changes_for

    statement = "files state in their metadata that they are AI-generated since 0.5.0"
    spelling = "MusicXML spells notes as their key does and prints no natural sign on notes"
    staccato = "staccato no longer shortens each part's last notes since 0.9.0"
    third = "a minor key's third gets as much of the key bonus as its tonic since 0.10.0"
    assert _changes_for("0.4.0", ["music.wav"]) == [statement, staccato, third]
    assert _changes_for("0.4.0", []) == []
    (first, second) = _changes_for("0.3.0", ["music.musicxml"])
    assert first.startswith(spelling) and second == statement
    assert _changes_for("0.5.0", ["music.mid"]) == [staccato, third]  # the music only
    assert _changes_for("0.8.0", ["music.musicxml"]) == []  # notation: nothing since 0.5.0
    assert _changes_for("0.9.0", ["music.mid"]) == [third]
    assert _changes_for("0.10.0", ["music.mid"]) == []
    # a record whose plan asked for no staccato, in a major key: neither change is its reason
    legato = {"plan": {"articulation": "legato", "mode": "major"}}
    assert _changes_for("0.5.0", ["music.mid"], legato) == []
    assert _changes_for("0.5.0", ["music.mid"], {"plan": {"articulation": "staccato"}}) == [
        staccato,
        third,  # (no mode: the model chose the key, which may be minor)
    ]
    minor = {"plan": {"articulation": "legato", "mode": "minor"}}
    assert _changes_for("0.9.0", ["music.mid"], minor) == [third]
    assert _changes_for("0.9.0", ["music.mid"], legato) == []
    assert _changes_for("0.4.0", ["music.wav"], legato) == [statement]
    # accompany's part of audio: the legato beats of 0.11.0 (not a MIDI input's part)
    held = "accompany holds the beats of legato audio to the tempo heard exactly since 0.11.0"
    audio = {"engine": "accompany", "input": {"kind": "audio"}}
    assert _changes_for("0.10.0", ["part.mid", "part.wav", "mix.wav"], audio) == [held]
    assert _changes_for("0.10.0", ["part.mid"], {**audio, "input": {"kind": "midi"}}) == []
    assert _changes_for("0.11.0", ["part.mid"], audio) == []
    assert _changes_for("0.5.0", []) == []
