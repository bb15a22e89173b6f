"""Broken, cut-short, silent and tiny audio: one-line errors or one-line warnings, never a
traceback or a silent 0-note success; no third-party warning text on the terminal.

The reader is `engine.transcribe.load_audio` (transcribe, accompany, harmonize/continue of a
recording); MusicGen's melody and audio prompt use `engine.musicgen_api.read_audio`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from engine import accompany as A
from engine import cli
from engine import musicgen_api as mg
from engine import transcribe as T
from engine.models.basic_pitch import BasicPitch

SR = 22050


def pulse(seconds: float, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    """A 220 Hz tone switched on and off twice a second (notes with a beat)."""
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return BasicPitch.load()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    x = pulse(3.0)
    out = {}
    for name, bad in (("nan", np.nan), ("inf", np.inf)):
        y = x.copy()
        y[1000:1010] = bad
        sf.write(d / f"{name}.wav", y, SR, subtype="FLOAT")
        out[name] = d / f"{name}.wav"
    sf.write(d / "good.wav", x, SR)
    data = (d / "good.wav").read_bytes()
    (d / "cut.wav").write_bytes(data[: len(data) // 3])  # header: 3 s; data: 1 s
    sf.write(d / "good.aiff", x, SR)
    data = (d / "good.aiff").read_bytes()
    (d / "cut.aiff").write_bytes(data[: len(data) // 2])
    sf.write(d / "silent.wav", np.zeros(3 * SR, np.float32), SR)
    sf.write(d / "hiss.wav", (1e-4 * np.random.default_rng(0).standard_normal(3 * SR)), SR)
    sf.write(d / "tiny.wav", x[:100], SR)
    sf.write(d / "short03.wav", x[: int(0.3 * SR)], SR)
    sf.write(d / "short21.wav", x[: int(2.1 * SR)], SR)
    out.update({p.stem if p.suffix == ".wav" else p.name: p for p in d.iterdir()})
    return out


@pytest.fixture
def run(capsys):
    def _run(*argv):
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return _run


# ---- the reader ------------------------------------------------------------------------------
def test_nan_and_inf_samples_are_one_line_errors_everywhere(files, model):
    for name in ("nan", "inf"):
        path = files[name]
        for call in (
            lambda path=path: T.load_audio(path),
            lambda path=path: T.transcribe(path, model=model),
            lambda path=path: A.analyze(path),
        ):
            with pytest.raises((T.TranscribeError, A.AccompanyError), match="NaN or infinite"):
                call()
        with pytest.raises(mg.MusicgenError, match="melody .* holds NaN or infinite"):
            mg.check_request(model="musicgen-melody", melody=path)


def test_a_file_cut_short_is_read_as_far_as_it_goes_with_a_warning(files):
    with pytest.warns(T.InputWarning, match=r"cut short: only 1\.00 s of the 3\.00 s"):
        audio, sr = T.load_audio(files["cut"])
    assert sr == SR and audio.shape[0] == pytest.approx(SR, abs=30)
    assert T.promised_frames(files["cut"]) == 3 * SR
    assert T.promised_frames(files["cut.aiff"]) == 3 * SR
    with pytest.warns(T.InputWarning, match=r"cut short: only 1\.50 s of the 3\.00 s"):
        T.load_audio(files["cut.aiff"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a whole file: no warning
        T.load_audio(files["good"])
        assert T.promised_frames(files["good"]) == 3 * SR
    with pytest.warns(T.InputWarning, match="melody .* cut short"):
        mg.check_request(model="musicgen-melody", melody=files["cut"])


def test_silence_and_too_short_are_refused(files, model):
    for name, words in (
        ("silent", "is silent .every sample is zero"),
        ("hiss", r"is silent \(peak -6\d dBFS\)"),  # noise far below -60 dBFS
        ("tiny", "5 ms long, too short to hold a note"),
    ):
        with pytest.raises(T.TranscribeError, match=words):
            T.transcribe(files[name], model=model)
    with pytest.raises(A.AccompanyError, match="is silent"):
        A.analyze(files["hiss"])
    with pytest.raises(mg.MusicgenError, match="audio prompt .* is silent"):
        mg.check_request(audio_prompt=files["silent"])


def test_no_notes_found_is_a_warning_and_the_api_sees_it(files, model):
    with pytest.warns(T.InputWarning, match="no notes found .* lower the onset and frame"):
        result = T.transcribe(files["good"], onset_threshold=1, frame_threshold=1, model=model)
    assert result.notes == [] and "no notes found" in result.warnings[0]


# ---- the command line --------------------------------------------------------------------------
def test_transcribe_cli_says_each_problem_in_one_line(files, run, tmp_path):
    code, out, err = run("transcribe", files["cut"], "--out", tmp_path / "cut.mid")
    assert code == 0, err
    assert err.count("\n") == 1 and err.startswith("warning: ") and "1.00 s of the 3.00 s" in err
    record = json.loads((tmp_path / "cut.json").read_text())
    assert any("cut short" in w for w in record["warnings"])
    code, out, err = run(
        "transcribe", files["good"], "--out", tmp_path / "none.mid", "--onset-threshold", "1",
        "--frame-threshold", "1",
    )  # fmt: skip
    assert code == 0 and err.count("\n") == 1 and err.startswith("warning: no notes found"), err
    assert "wrote" in out and "0 notes" in out
    for name, words in (("nan", "NaN or infinite"), ("silent", "is silent"), ("tiny", "too short")):
        code, out, err = run("transcribe", files[name], "--out", tmp_path / f"{name}.mid")
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert words in err and not (tmp_path / f"{name}.mid").exists()


def test_accompany_and_harmonize_cli_refuse_broken_and_silent_audio(files, run, tmp_path):
    for command in (["accompany", "--part", "drums"], ["harmonize"]):
        for name, words in (("nan", "NaN or infinite"), ("silent", "is silent")):
            out = tmp_path / f"{command[0]}-{name}"
            code, _, err = run(command[0], files[name], *command[1:], "--out", out)
            assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
            assert words in err and not out.exists()


def _stderr_lines(*argv, cwd) -> tuple[int, list[str]]:
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # show every warning Python would
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", *map(str, argv)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=600,
    )  # fmt: skip
    return proc.returncode, proc.stderr.splitlines()


def test_no_third_party_warning_reaches_the_terminal(files, tmp_path):
    """Short input made librosa say 'n_fft=1024 is too large for input signal of length=...'."""
    for argv in (
        ("transcribe", files["short03"], "--quantize", "--out", tmp_path / "a.mid"),
        ("transcribe", files["short21"], "--quantize", "--out", tmp_path / "b.mid"),
        ("accompany", files["short21"], "--part", "drums", "--out", tmp_path / "c"),
        ("accompany", files["short03"], "--part", "drums", "--out", tmp_path / "d"),
    ):
        code, lines = _stderr_lines(*argv, cwd=tmp_path)
        assert code in (0, 2), lines
        assert all(line.startswith(("warning: ", "error: ")) for line in lines), lines


def test_librosa_warnings_stay_inside_in_process(files, model):
    import librosa  # noqa: F401  (its import-time deprecations are not the point here)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", T.InputWarning)  # ours: tested above
        A.analyze(files["short21"], transcribe_notes=False)  # chroma_cqt warned here
        T.transcribe(files["short21"], quantize=True, model=model)
        T.transcribe(files["short03"], quantize=True, model=model)
