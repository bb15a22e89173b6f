"""`disco-musica transcribe AUDIO` as a user runs it.

Until ``engine.cli`` registers ``engine.cli.transcribe.add_commands`` itself, the fixture
adds the command to the parser ``engine.cli.main`` builds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from engine import cli
from engine.cli.transcribe import add_commands


@pytest.fixture
def run(capsys, monkeypatch):
    original = cli.build_parser

    def build():
        parser = original()
        sub = parser._subparsers._group_actions[0]
        if "transcribe" not in sub.choices:
            add_commands(sub, cli.register)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)

    def _run(*argv):
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return _run


@pytest.fixture(scope="module")
def wav(tmp_path_factory, basic_pitch_audio):
    path = tmp_path_factory.mktemp("in") / "phrase.wav"
    sf.write(path, basic_pitch_audio.rendered(), 44100, subtype="PCM_16")
    return path


def test_writes_midi_and_a_recipe_that_remakes_it(run, wav, tmp_path):
    out = tmp_path / "phrase.mid"
    code, stdout, err = run("transcribe", wav, "--out", out, "--pitch-bends")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phrase.json", "phrase.mid"]
    assert f"wrote {out} (" in stdout and "notes, " in stdout
    assert "█" in stdout and "└" in stdout  # the piano roll
    record = json.loads((tmp_path / "phrase.json").read_text())
    assert record["operation"] == "transcribe"
    assert record["args"][:2] == ["transcribe", str(wav)]
    assert "--pitch-bends" in record["args"] and "--out" not in record["args"]
    assert record["parameters"]["onset_threshold"] == 0.5
    assert record["parameters"]["min_note_frames"] == 11
    assert len(record["input"]["sha256"]) == 64 and len(record["model"]["sha256"]) == 64
    assert record["note_count"] > 3

    from symusic import Score

    score = Score.from_file(str(out))
    assert score.note_num() == record["note_count"]
    assert {n.pitch for n in score.tracks[0].notes} >= {36, 60, 64, 67, 72}

    again = tmp_path / "again.mid"
    code, _, err = run(*record["args"], "--out", again)
    assert code == 0, err
    assert again.read_bytes() == out.read_bytes()


def test_default_names_never_overwrite(run, wav, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("transcribe", wav, "--no-preview")[0] == 0
    code, stdout, _ = run("transcribe", wav, "--no-preview", "--min-note-ms", "50")
    assert code == 0 and "wrote phrase-2.mid" in stdout and "█" not in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "phrase-2.json", "phrase-2.mid", "phrase.json", "phrase.mid",
    ]  # fmt: skip
    before = (tmp_path / "phrase.mid").read_bytes()
    code, _, err = run("transcribe", wav, "--out", "phrase.mid", "--min-note-ms", "50")
    assert code == 2 and err.startswith("error: phrase.mid already exists; add --force")
    assert (tmp_path / "phrase.mid").read_bytes() == before
    code, _, err = run("transcribe", wav, "--out", "phrase.mid", "--min-note-ms", "50", "--force")
    assert code == 0, err
    assert (tmp_path / "phrase.mid").read_bytes() == (tmp_path / "phrase-2.mid").read_bytes()


def test_json_and_quantize(run, tmp_path, basic_pitch_audio):
    pytest.importorskip("librosa")
    path = tmp_path / "tune.flac"
    sf.write(path, np.stack([basic_pitch_audio.melody(48000, 3.0)] * 2, axis=1), 48000)
    code, stdout, err = run("transcribe", path, "--out", tmp_path / "t.mid", "--json", "--quantize")
    assert code == 0, err
    shown = json.loads(stdout)
    assert shown["midi"]["path"] == str(tmp_path / "t.mid")
    assert shown["sidecar"] == str(tmp_path / "t.json")
    assert shown["quantization"]["time_signature"] in ("3/4", "4/4")
    assert shown["parameters"]["quantize"] is True
    notes = shown["notes"]
    assert len(notes) == shown["note_count"] > 3
    assert {n["pitch"] for n in notes} >= {55, 59, 62, 67}
    assert all(
        set(n) == {"start_s", "end_s", "pitch", "velocity", "amplitude", "bends"} for n in notes
    )


def test_bad_input_is_one_line_and_writes_nothing(run, wav, tmp_path):
    (tmp_path / "notes.txt").write_text("not audio")
    cases = [
        (["transcribe", tmp_path / "missing.wav"], "does not exist"),
        (["transcribe", tmp_path], "is a folder"),
        (["transcribe", tmp_path / "notes.txt", "--out", tmp_path / "x.mid"], "is not audio"),
        (["transcribe", wav, "--out", tmp_path / "x.txt"], "ending in .mid"),
        (["transcribe", wav, "--out", tmp_path / "x.mid", "--onset-threshold", "2"], "onset"),
        (["transcribe", wav, "--out", tmp_path / "x.mid", "--multiple-pitch-bends"], "needs"),
        (["transcribe", wav, "--min-note-ms", "fast"], "invalid float value"),
    ]
    for argv, message in cases:
        code, stdout, err = run(*argv)
        assert code == 2, argv
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_help_lists_the_options(run):
    code, stdout, _ = run("transcribe", "--help")
    assert code == 0
    for option in ("--out", "--quantize", "--onset-threshold", "--frame-threshold",
                   "--min-note-ms", "--pitch-bends", "--json", "--force"):  # fmt: skip
        assert option in stdout
    assert "default 0.5" in stdout and "default 127.7" in stdout


def test_help_defaults_are_the_apis_and_help_is_quick():
    import subprocess
    import sys

    from engine.cli import transcribe as c
    from engine.pipelines import transcribe as t

    for name in ("DEFAULT_ONSET_THRESHOLD", "DEFAULT_FRAME_THRESHOLD", "DEFAULT_MIN_NOTE_MS",
                 "MAX_AUDIO_SECONDS"):  # fmt: skip
        assert getattr(c, name) == getattr(t, name), name
    code = (
        "import sys, argparse; from engine import cli; from engine.cli.transcribe import "
        "add_commands; p = argparse.ArgumentParser(); s = p.add_subparsers(); "
        "add_commands(s, cli.register); print('HEAVY', [m for m in ('mlx.core', "
        "'engine.pipelines.transcribe', 'librosa') if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


def test_settings_and_audio_are_checked_before_the_model_loads(run, wav, tmp_path, monkeypatch):
    """transcribe loaded Basic Pitch first, then found --max-freq 0 or a file of random bytes
    wrong."""
    from engine.pipelines import transcribe as T

    loads = []
    monkeypatch.setattr(T, "basic_pitch_model", lambda: loads.append("basic-pitch") or 1 / 0)
    (tmp_path / "random.wav").write_bytes(np.random.default_rng(1).bytes(40_000))
    sf.write(tmp_path / "header.wav", np.zeros((0, 1)), 22050)
    for argv, words in (
        ([wav, "--onset-threshold", "0"], "onset threshold must be more than 0"),
        ([wav, "--frame-threshold", "1.5"], "frame threshold"),
        ([wav, "--min-note-ms", "-1"], "minimum note length"),
        ([wav, "--max-freq", "0"], "maximum frequency"),
        ([wav, "--min-freq", "1000", "--max-freq", "500"], "below the maximum"),
        ([tmp_path / "random.wav"], "random.wav is not audio (its first bytes are not WAV"),
        ([tmp_path / "header.wav"], "header.wav holds no samples"),
    ):
        code, _, err = run("transcribe", *argv, "--out", tmp_path / "x.mid")
        assert code == 2 and err.count("\n") == 1 and words in err, (argv, err)
    assert loads == [] and not (tmp_path / "x.mid").exists()
