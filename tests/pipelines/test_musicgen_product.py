"""MusicGen from the command line, as a user runs it: convert, generate, continue, replay.

The model is a tiny random-weight transformers MusicGen (8 kHz codec) written with
``save_pretrained`` plus a small tokenizer by the ``musicgen_snapshot`` fixture
(tests/pipelines/conftest.py), converted with ``disco-musica convert musicgen``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine.cli import main  # noqa: E402


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def converted(tmp_path_factory, musicgen_snapshot):
    """kind -> converted MLX folder (through the CLI)."""
    cache: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in cache:
            snap = musicgen_snapshot(tmp_path_factory.mktemp(f"snap-{kind}"), kind)
            out = tmp_path_factory.mktemp(f"conv-{kind}") / "model"
            assert main(["convert", "musicgen", str(snap), "--out", str(out)]) == 0
            cache[kind] = out
        return cache[kind]

    return get


def test_generate_writes_audio_and_replay_is_identical(converted, tmp_path, capsys):
    model = converted("mono")
    out = tmp_path / "rain"
    code, stdout, err = run(
        capsys, "generate", "calm piano rain", "--model", model, "--duration", "0.2",
        "--seed", "4", "--out", out, "--formats", "wav,flac",
    )  # fmt: skip
    assert code == 0, err
    assert "CC-BY-NC" in err
    assert sorted(p.name for p in out.iterdir()) == ["generation.json", "music.flac", "music.wav"]
    record = json.loads((out / "generation.json").read_text())
    assert record["engine"] == "musicgen" and record["model"]["licence"] == "CC-BY-NC-4.0"
    assert "not be used commercially" in record["warning"] and record["seed"] == 4
    assert record["settings"]["text"] == "calm piano rain"
    audio, sr = sf.read(out / "music.wav")
    assert sr == 8000 and audio.shape[0] == pytest.approx(0.2 * 8000, abs=80)
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "replay", str(out), "--out", str(tmp_path / "r")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "music.wav: identical" in proc.stdout
    assert (tmp_path / "r" / "music.flac").read_bytes() == (out / "music.flac").read_bytes()


def test_options_become_words_and_steering_options_are_refused(converted, tmp_path, capsys):
    model = converted("mono")
    code, stdout, _ = run(
        capsys, "generate", "calm", "--model", model, "--duration", "0.1", "--seed", "1",
        "--key", "D", "--mode", "minor", "--tempo", "90", "--out", tmp_path / "a", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(stdout)["settings"]["text"] == "calm, in D minor, 90 bpm"
    code, _, err = run(
        capsys, "generate", "calm", "--model", model, "--progression", "I-IV", "--out",
        tmp_path / "b",
    )  # fmt: skip
    assert code == 2 and "--progression cannot steer MusicGen" in err
    assert not (tmp_path / "b").exists()
    for flag in (["--polyphony", "2"], ["--voice-leading", "3"], ["--double-stops"]):
        code, _, err = run(
            capsys, "generate", "calm", "--model", model, *flag, "--out", tmp_path / "c"
        )
        assert code == 2 and f"{flag[0]} cannot steer MusicGen" in err
        assert not (tmp_path / "c").exists()


def test_continue_an_audio_clip(converted, tmp_path, capsys):
    model = converted("mono")
    clip = tmp_path / "clip.wav"
    t = np.arange(int(0.3 * 44100)) / 44100
    sf.write(clip, 0.3 * np.sin(2 * np.pi * 220 * t), 44100)
    out = tmp_path / "more"
    code, _, err = run(
        capsys, "continue", clip, "--model", model, "--duration", "0.2", "--prompt", "piano",
        "--seed", "2", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    audio, sr = sf.read(out / "music.wav")
    assert audio.shape[0] == pytest.approx(0.5 * sr, abs=80)  # the clip + 0.2 s
    record = json.loads((out / "generation.json").read_text())
    assert record["inputs"]["audio_prompt"]["path"] == str(clip.resolve())


def test_melody_needs_a_melody_model(converted, tmp_path, capsys):
    hum = tmp_path / "hum.wav"
    t = np.arange(8000) / 8000
    sf.write(hum, 0.5 * np.sin(2 * np.pi * 330 * t), 8000)
    code, _, err = run(
        capsys, "generate", "sad", "--model", converted("mono"), "--melody", hum,
        "--duration", "0.1", "--out", tmp_path / "x",
    )  # fmt: skip
    assert code == 2 and "has no melody conditioning" in err
    code, _, err = run(
        capsys, "generate", "sad", "--model", converted("melody"), "--melody", hum,
        "--duration", "0.1", "--out", tmp_path / "y", "--seed", "3",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "y" / "generation.json").read_text())["inputs"]["melody"]


BAD = {
    "unknown name": (["--model", "musicgen-smal"], "did you mean musicgen-small"),
    "duration 0": (["--duration", "0"], "duration 0 s is outside"),
    "silent melody": (["--melody", "{silent}"], "is silent"),
    "unreadable melody": (["--melody", "{text}"], "is not audio"),
}


@pytest.mark.parametrize("extra,message", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line(extra, message, converted, tmp_path, capsys, monkeypatch):
    silent, text, folder = tmp_path / "silent.wav", tmp_path / "notes.wav", tmp_path / "empty"
    sf.write(silent, np.zeros(8000), 8000)
    text.write_text("not audio")
    folder.mkdir()
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))
    model = ["--model", str(converted("melody"))] if "--model" not in extra else []
    extra = [e.format(silent=silent, text=text, folder=folder) for e in extra]
    code, _, err = run(capsys, "generate", "calm", *model, *extra, "--out", tmp_path / "o")
    assert code == 2, err
    assert message in err and err.count("\n") <= 2 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_name_not_downloaded_offline_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out = tmp_path / "o"
    code, _, err = run(capsys, "generate", "calm", "--model", "musicgen-small", "--out", out)
    assert code == 2 and "could not be downloaded" in err and "disco-musica convert" in err
    assert not (tmp_path / "home" / "models" / "musicgen-small").exists() and not out.exists()


def test_converting_something_else_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text('{"model_type": "bert"}')
    for folder, message in ((empty, "config.json"), (bert, "not a MusicGen checkpoint")):
        code, _, err = run(capsys, "convert", "musicgen", folder, "--out", tmp_path / "o")
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "o").exists()
    code, _, err = run(capsys, "convert", "musicgen", "nonsense", "--out", tmp_path / "o")
    assert code == 2 and "neither a folder nor a Hub id" in err
