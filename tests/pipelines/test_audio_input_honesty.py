"""Broken, cut-short, silent and tiny audio: one-line errors or one-line warnings, never a
traceback or a silent 0-note success; no third-party warning text on the terminal.

The reader is `engine.audio.io.load_audio` (transcribe, accompany, harmonize/continue
of a
recording); MusicGen's melody and audio prompt use `engine.pipelines.musicgen.read_audio`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from engine import cli
from engine.audio import io as AIO
from engine.cli import common
from engine.errors import AudioFileError, InputWarning
from engine.models.basic_pitch import BasicPitch
from engine.pipelines import accompany as A
from engine.pipelines import musicgen as mg
from engine.pipelines import transcribe as T

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
            lambda path=path: AIO.load_audio(path),
            lambda path=path: T.transcribe(path, model=model),
            lambda path=path: A.analyze(path),
        ):
            with pytest.raises((AudioFileError, A.AccompanyError), match="NaN or infinite"):
                call()
        with pytest.raises(mg.MusicgenError, match="melody .* holds NaN or infinite"):
            mg.check_request(model="musicgen-melody", melody=path)


def test_a_file_cut_short_is_read_as_far_as_it_goes_with_a_warning(files):
    with pytest.warns(InputWarning, match=r"cut short: only 1\.00 s of the 3\.00 s"):
        audio, sr = AIO.load_audio(files["cut"])
    assert sr == SR and audio.shape[0] == pytest.approx(SR, abs=30)
    assert AIO.promised_frames(files["cut"]) == 3 * SR
    assert AIO.promised_frames(files["cut.aiff"]) == 3 * SR
    with pytest.warns(InputWarning, match=r"cut short: only 1\.50 s of the 3\.00 s"):
        AIO.load_audio(files["cut.aiff"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a whole file: no warning
        AIO.load_audio(files["good"])
        assert AIO.promised_frames(files["good"]) == 3 * SR
    with pytest.warns(InputWarning, match="melody .* cut short"):
        mg.check_request(model="musicgen-melody", melody=files["cut"])


def test_silence_and_too_short_are_refused(files, model):
    for name, words in (
        ("silent", "is silent .every sample is zero"),
        ("hiss", r"is silent \(peak -6\d dBFS\)"),  # noise far below -60 dBFS
        ("tiny", "5 ms long, too short to hold a note"),
    ):
        with pytest.raises(AudioFileError, match=words):
            T.transcribe(files[name], model=model)
    with pytest.raises(A.AccompanyError, match="is silent"):
        A.analyze(files["hiss"])
    with pytest.raises(mg.MusicgenError, match="audio prompt .* is silent"):
        mg.check_request(audio_prompt=files["silent"])


def test_no_notes_found_is_a_warning_and_the_api_sees_it(files, model):
    with pytest.warns(InputWarning, match="no notes found .* lower the onset and frame"):
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


@pytest.mark.parametrize(  # (a real process each, 10 s: the default run has one of each command)
    ("command", "short"),
    [
        ("transcribe", "short03"),
        ("accompany", "short21"),
        pytest.param("transcribe", "short21", marks=pytest.mark.slow),
        pytest.param("accompany", "short03", marks=pytest.mark.slow),
    ],
)
def test_no_third_party_warning_reaches_the_terminal(files, tmp_path, command, short):
    """Short input made librosa say 'n_fft=1024 is too large for input signal of length=...'."""
    if command == "transcribe":
        argv = ("transcribe", files[short], "--quantize", "--out", tmp_path / "a.mid")
    else:
        argv = ("accompany", files[short], "--part", "drums", "--out", tmp_path / "c")
    code, lines = _stderr_lines(*argv, cwd=tmp_path)
    assert code in (0, 2), lines
    assert all(line.startswith(("warning: ", "error: ")) for line in lines), lines


def test_librosa_warnings_stay_inside_in_process(files, model):
    import librosa  # noqa: F401  (its import-time deprecations are not the point here)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", InputWarning)  # ours: tested above
        # chroma_cqt warned here; 2.1 s is now too short to hear a beat in (a clean refusal)
        with contextlib.suppress(A.AccompanyError):
            A.analyze(files["short21"], transcribe_notes=False)
        T.transcribe(files["short21"], quantize=True, model=model)
        T.transcribe(files["short03"], quantize=True, model=model)


# ---- content before decoders, every message naming the file -----------------------------------
def _random_bytes(path, seed: int = 1, n: int = 40_000):
    """Random bytes; seed 1 starts with a valid MPEG frame header (ff e4 22 ..)."""
    path.write_bytes(np.random.default_rng(seed).bytes(n))
    return path


def test_content_that_is_not_audio_is_refused_before_any_decoder(tmp_path, capfd, model):
    """libmpg123 printed 'Note: Illegal Audio-MPEG-Header ...' on fd 2 for random bytes, and
    the error then said 'File does not exist or is not a regular file'."""
    from tests.hostile.corpus import melody_midi

    cases = {
        "random.wav": _random_bytes(tmp_path / "random.wav"),
        "random.mp3": _random_bytes(tmp_path / "random.mp3", seed=4),
        "utf16.wav": tmp_path / "utf16.wav",  # ff fe: a valid-looking MPEG header alone
    }
    cases["utf16.wav"].write_text("hello, this is text\n" * 50, encoding="utf-16")
    for path in cases.values():
        for call, args in ((AIO.load_audio, {}), (T.transcribe, {"model": model}), (A.analyze, {})):
            with pytest.raises((AudioFileError, A.AccompanyError)) as e:
                call(path, **args)
            assert str(e.value).startswith(f"{path} is not audio (its first bytes are not WAV, ")
        with pytest.raises(mg.MusicgenError, match=f"melody {path} is not audio"):
            mg.check_request(model="musicgen-melody", melody=path)
    (tmp_path / "midi.wav").write_bytes(melody_midi())
    with pytest.raises(AudioFileError, match="midi.wav is a MIDI file, not audio"):
        AIO.load_audio(tmp_path / "midi.wav")
    out, err = capfd.readouterr()
    assert err == "" and out == ""


def test_every_kind_soundfile_writes_passes_the_content_check(tmp_path):
    x = pulse(0.5)
    for name, kw in (("a.wav", {}), ("a.flac", {}), ("a.ogg", {}), ("a.aiff", {}),
                     ("a.mp3", {"format": "MP3"}), ("a.caf", {"format": "CAF"}),
                     ("a.w64", {"format": "W64"}), ("a.rf64", {"format": "RF64"})):  # fmt: skip
        sf.write(tmp_path / name, np.stack([x, x], axis=1), SR, **kw)
        assert AIO.sniff_audio((tmp_path / name).read_bytes()[: AIO.SNIFF_BYTES]), name
        audio, sr = AIO.load_audio(tmp_path / name)
        assert sr == SR and audio.shape[1] == 2 and audio.shape[0] >= 0.45 * SR, name


def test_decoder_chatter_on_fd2_is_kept_off_the_terminal(tmp_path, capfd):
    """Data that passes the content check but not the decoder (an ID3 tag, then noise): the
    C library's own lines go to /dev/null, only around the decode; fd 2 works after it."""
    bad = tmp_path / "tagged.mp3"
    bad.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + np.random.default_rng(1).bytes(40_000))
    with pytest.raises(AudioFileError, match="tagged.mp3") as e:
        AIO.load_audio(bad)
    assert "does not exist or is not a regular file" not in str(e.value)
    os.write(2, b"still here\n")
    out, err = capfd.readouterr()
    assert err == "still here\n"
    with AIO.quiet_decoder():
        os.write(2, b"hidden\n")
    os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"


def test_a_file_without_samples_is_refused_naming_it(tmp_path, model):
    """header-only.wav / header-lies.wav said 'the audio is empty' without the file's name."""
    from tests.hostile.corpus import FILES

    for name, words in (
        ("header-only.wav", r"header-only.wav holds no samples \(a header only\)"),
        ("header-lies.wav", r"header-lies.wav holds no samples: its header promises 10.00 s"),
    ):
        path = tmp_path / name
        FILES[name](path)
        for call, args in ((AIO.load_audio, {}), (T.transcribe, {"model": model})):
            with pytest.raises(AudioFileError, match=words):
                call(path, **args)
        with pytest.raises(A.AccompanyError, match=words):
            A.analyze(path)
        with pytest.raises(mg.MusicgenError, match="audio prompt .*" + words):
            mg.check_request(audio_prompt=path)


def test_too_short_after_a_cut_is_one_error_without_a_warning_first(tmp_path, model):
    """accompany truncated.wav printed 'warning: ... cut short' and then 'error: ... 0.10 s
    long': the warning was noise, the run ended in an error anyway."""
    from tests.hostile.corpus import FILES

    path = tmp_path / "truncated.wav"
    FILES["truncated.wav"](path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no InputWarning may escape before the error
        with pytest.raises(A.AccompanyError) as e:
            A.analyze(path)
        assert str(e.value) == (
            f"{path} is cut short: only 0.10 s of the 10.00 s its header promises could be "
            "read, and at least 2 s are needed; use a complete copy of the file"
        )
        with pytest.raises(AudioFileError, match=r"cut short: its header promises 10.00 s"):
            T.transcribe(path, model=model)
    with pytest.warns(InputWarning, match="cut short"):  # long enough: read, with a warning
        AIO.load_audio(path, min_seconds=0.05)


def test_accompany_cli_cut_short_and_empty_are_one_line(run, tmp_path):
    from tests.hostile.corpus import FILES

    for name in ("truncated.wav", "header-lies.wav", "header-only.wav", "random.wav"):
        FILES[name](tmp_path / name)
        code, _, err = run("accompany", tmp_path / name, "--part", "drums", "--out", tmp_path / "o")
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
        assert name in err and not (tmp_path / "o").exists()


# ---- continuing a recording: every option honoured or refused --------------------------------
def test_continue_a_recording_checks_the_sampling_options_as_for_midi(
    files, run, tmp_path, monkeypatch
):
    """--top-k -1 and --top-k 2**70 were silently ignored and a folder was written."""

    def no_model(name):
        raise AssertionError(f"the model {name} was loaded before the options were checked")

    monkeypatch.setattr(common, "load_model", no_model)
    for argv, words in (
        (["--top-k", "-1"], "--top-k must be 0 or more, not -1"),
        (["--top-k", str(2**70)], "--top-k does not apply when a recording is continued"),
        (["--top-k", "5"], "--top-k does not apply when a recording is continued"),
        (["--temperature", "nan"], "--temperature"),
        (["--top-p", "0"], "--top-p must be more than 0"),
        (["--key-strength", "11"], "--key-strength"),
        (["--seed", "-1"], "--seed"),
    ):
        out = tmp_path / "o"
        code, _, err = run("continue", files["good"], "--formats", "mid", *argv, "--out", out)
        assert code == 2 and err.count("\n") == 1 and words in err, (argv, err)
        assert not out.exists()


def test_continue_a_recording_checks_the_audio_before_the_model_loads(run, tmp_path, monkeypatch):
    from tests.hostile.corpus import FILES

    monkeypatch.setattr(common, "load_model", lambda name: 1 / 0)  # a traceback if reached
    for name, words in (("random.wav", "is not audio"), ("header-lies.wav", "holds no samples"),
                        ("silence.wav", "is silent"), ("one-sample.wav", "too short")):  # fmt: skip
        FILES[name](tmp_path / name)
        out = tmp_path / "o"
        code, _, err = run("continue", tmp_path / name, "--formats", "mid", "--out", out)
        assert code == 2 and err.count("\n") == 1 and name in err and words in err, err
        assert not out.exists()
