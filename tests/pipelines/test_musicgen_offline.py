"""MusicGen without a network: one fast line with the way out, and every option checked
before any model is looked up (so the user sees the option's error, not the network's).

No test sends traffic anywhere but 127.0.0.1: `no_traffic` refuses every other connection,
and "no network" is a closed port on 127.0.0.1 or a refused ``socket.create_connection``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

import convert.musicgen as cm
from convert.errors import HubUnreachableError
from engine.cli import main
from engine.pipelines import musicgen as mg


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def no_traffic(monkeypatch, tmp_path):
    """Connections only to 127.0.0.1; empty model and Hugging Face homes; Hub not offline."""
    import huggingface_hub.constants as hc

    connect = socket.socket.connect

    def local_only(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "localhost"):
            raise OSError(f"test refused a connection to {address}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.setattr(hc, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


def run(capsys, *argv):
    t0 = time.perf_counter()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err, time.perf_counter() - t0


def error_lines(err: str) -> list[str]:
    """stderr's lines (the licence notice comes only after a generation succeeded)."""
    assert "CC-BY-NC" not in err
    return err.splitlines()


# ---- no network ------------------------------------------------------------------------------
def test_generate_offline_is_one_fast_line(capsys, tmp_path):
    code, out, err, seconds = run(
        capsys, "generate", "x", "--model", "musicgen-small", "--out", tmp_path / "o"
    )
    assert code == 2 and seconds <= 2.0, (seconds, err)
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: musicgen-small is not on this comp")
    assert "no network connection" in lines[0] and "connect to the internet" in lines[0]
    assert "disco-musica convert musicgen /path/to/snapshot --out DIR" in lines[0]
    assert "Retrying" not in err and "Traceback" not in err and out == ""
    assert not (tmp_path / "o").exists()
    assert not (tmp_path / "home" / "models" / "musicgen-small").exists()


def test_convert_offline_says_how_to_convert_a_snapshot_folder(capsys, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    code, out, err, seconds = run(
        capsys, "convert", "musicgen", "facebook/musicgen-small", "--out", tmp_path / "m"
    )
    assert code == 2 and seconds <= 2.0, (seconds, err)
    assert err.count("\n") == 1 and err.startswith("error: cannot download facebook/musicgen")
    assert "disco-musica convert musicgen /path/to/snapshot" in err
    assert not (tmp_path / "m").exists()


def test_hub_offline_variable_and_logging_left_as_found(monkeypatch, tmp_path):
    import logging

    import huggingface_hub.constants as hc
    from huggingface_hub.utils import are_progress_bars_disabled

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    level = logging.getLogger("huggingface_hub").level
    bars = are_progress_bars_disabled()
    t0 = time.perf_counter()
    with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE is set") as e:
        cm.convert_musicgen("facebook/musicgen-small", tmp_path / "m")
    assert time.perf_counter() - t0 <= 2.0 and "\n" not in str(e.value)
    assert logging.getLogger("huggingface_hub").level == level
    assert are_progress_bars_disabled() == bars


def test_the_check_is_bounded_when_the_line_hangs(monkeypatch):
    def hang(address, timeout=None):
        time.sleep(2)  # a name lookup or a firewall that drops packets
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    monkeypatch.setattr(cm, "HUB_CHECK_TIMEOUT_S", 0.3)
    t0 = time.perf_counter()
    assert cm._can_connect("example.invalid", 443, 0.3) is False
    assert time.perf_counter() - t0 < 1.0


def test_offline_uses_the_hugging_face_cache(monkeypatch, tmp_path, musicgen_snapshot):
    """Offline, a snapshot already in the cache is converted (looked up with
    local_files_only, no retries)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import huggingface_hub

    snap = musicgen_snapshot(tmp_path / "snap", "mono")
    calls = []

    def cached_only(repo_id, revision=None, allow_patterns=None, **kw):
        calls.append(kw)
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cached_only)
    out = cm.convert_musicgen("facebook/musicgen-small", tmp_path / "m")
    assert (out / "model.safetensors").is_file() and calls[0] == {"local_files_only": True}


def test_cli_subprocess_offline_prints_only_our_lines(tmp_path):
    env = {
        **os.environ,
        "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "HF_HOME": str(tmp_path / "hf"),
        "DISCO_MUSICA_HOME": str(tmp_path / "home"),
        "PYTHONWARNINGS": "default",
    }
    env.pop("HF_HUB_OFFLINE", None)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "generate", "x", "--model", "musicgen-small",
         "--out", str(tmp_path / "o")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    assert proc.returncode == 2 and seconds < 10, (seconds, proc.stderr)  # was 23 s of retries
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no network" in lines[0]


# ---- options before the model ------------------------------------------------------------------
@pytest.fixture
def no_lookup(monkeypatch):
    """resolve_model refuses loudly: a request that reaches it says REACHED."""

    def refuse(name, **kw):
        raise mg.MusicgenError(f"REACHED resolve_model({name})")

    monkeypatch.setattr(mg, "resolve_model", refuse)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    d = tmp_path_factory.mktemp("mg-audio")
    t = np.arange(16000) / 16000
    sf.write(d / "hum.wav", 0.4 * np.sin(2 * np.pi * 330 * t), 16000)
    sf.write(d / "silent.wav", np.zeros(16000), 16000)
    y = 0.4 * np.sin(2 * np.pi * 330 * t)
    y[10] = np.nan
    sf.write(d / "nan.wav", y, 16000, subtype="FLOAT")
    (d / "text.wav").write_text("not audio")
    # random bytes that start with an MPEG frame header: libmpg123 used to talk on fd 2
    (d / "random.wav").write_bytes(np.random.default_rng(1).bytes(40_000))
    sf.write(d / "header.wav", np.zeros((0, 1)), 16000)
    sf.write(d / "long.wav", np.tile(0.3 * np.sin(2 * np.pi * 330 * t), 31), 16000)
    return d


MELODY = ["--model", "musicgen-melody"]
BAD_OPTIONS = {
    "duration 0": (["--duration", "0"], "duration 0 s is outside"),
    "duration huge": (["--duration", "1e9"], "is outside 0..300 s"),
    "duration nan": (["--duration", "nan"], "duration nan s is outside"),
    "guidance": (["--guidance", "100"], "guidance must be between 0 and 20"),
    "guidance nan": (["--guidance", "nan"], "guidance must be between 0 and 20"),
    "creativity": (["--creativity", "2"], "creativity must be between 0 and 1"),
    "missing melody": (["--melody", "{d}/nope.wav", *MELODY], "does not exist"),
    "corrupt melody": (["--melody", "{d}/text.wav", *MELODY], "text.wav is not audio (its"),
    "random-bytes melody": (["--melody", "{d}/random.wav", *MELODY], "random.wav is not audio"),
    "header-only melody": (["--melody", "{d}/header.wav", *MELODY], "header.wav holds no samp"),
    "silent melody": (["--melody", "{d}/silent.wav", *MELODY], "is silent"),
    "nan melody": (["--melody", "{d}/nan.wav", *MELODY], "NaN or infinite"),
    "melody on a plain model": (["--melody", "{d}/hum.wav"], "has no melody conditioning"),
    "unknown model": (["--model", "musicgen-smal"], "did you mean musicgen-small"),
}


@pytest.mark.parametrize("extra,message", BAD_OPTIONS.values(), ids=BAD_OPTIONS.keys())
def test_options_are_refused_before_the_model_is_looked_up(
    extra, message, no_lookup, audio, capsys, tmp_path
):
    model = [] if "--model" in extra else ["--model", "musicgen-small"]
    extra = [e.format(d=audio) for e in extra]
    code, _, err, _ = run(capsys, "generate", "calm", *model, *extra, "--out", tmp_path / "o")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert "REACHED" not in err and not (tmp_path / "o").exists()


def test_a_good_request_does_reach_the_lookup(no_lookup, audio, capsys, tmp_path):
    """(So the refusals above are the checks', not the sentinel's.)"""
    code, _, err, _ = run(
        capsys, "generate", "calm", "--model", "musicgen-melody", "--melody", audio / "hum.wav",
        "--duration", "5", "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 2 and "REACHED resolve_model(musicgen-melody)" in err


def test_continue_checks_the_clip_before_the_model(no_lookup, audio, capsys, tmp_path):
    for clip, message in (("long.wav", "31.0 s long; MusicGen continues clips shorter"),
                          ("nan.wav", "NaN or infinite"), ("silent.wav", "is silent")):  # fmt: skip
        code, _, err, _ = run(
            capsys, "continue", audio / clip, "--model", "musicgen-small", "--out", tmp_path / "o"
        )
        lines = error_lines(err)
        assert code == 2 and len(lines) == 1 and message in lines[0], err


def test_a_prompt_over_the_limit_is_refused_before_the_model_lookup(no_lookup, capsys, tmp_path):
    """A 10 MB prompt said "musicgen-small is not on this computer": the lookup came first."""
    from engine.pipelines.prompt import MAX_PROMPT_CHARS

    big = "a calm chorale " * 700_000
    for argv in (["generate", big, "--model", "musicgen-small"],
                 ["continue", "{clip}", "--model", "musicgen-small", "--prompt", big]):  # fmt: skip
        clip = tmp_path / "clip.wav"
        sf.write(clip, 0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 330), 16000)
        argv = [str(clip) if a == "{clip}" else a for a in argv]
        code, _, err, _ = run(capsys, *argv, "--out", tmp_path / "o")
        lines = error_lines(err)
        assert code == 2 and len(lines) == 1, err
        assert lines[0] == (
            f"error: prompt is {len(big)} characters; the limit is {MAX_PROMPT_CHARS}: shorten it"
        )
    with pytest.raises(mg.MusicgenError, match="prompt is 2001 characters"):
        mg.check_request("y" * 2001)
    with pytest.raises(mg.MusicgenError, match="the prompt must be text"):
        mg.check_request(12)
    mg.check_request("y" * MAX_PROMPT_CHARS)  # the limit itself is allowed


def test_a_musicgen_folder_that_is_only_a_config_is_one_line_naming_it(capsys, tmp_path):
    """``{"model_type": "musicgen"}`` alone: ``ValueError: Not a MusicGen config`` escaped
    from the conversion (engine.models.musicgen's from_dict) as a traceback."""
    junk = tmp_path / "musicgen-junk"
    junk.mkdir()
    (junk / "config.json").write_text('{"model_type": "musicgen"}')
    from engine.errors import UserError

    with pytest.raises(UserError) as e:  # the converter's ConversionError, checked first
        mg.resolve_model(str(junk))
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{junk}/config.json is not a usable MusicGen")
    assert "missing text_encoder, decoder, audio_encoder" in text
    code, out, err, _ = run(capsys, "generate", "", "--model", junk, "--out", tmp_path / "o")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {junk}/config.json is not a usable"), err
    assert not (tmp_path / "o").exists()
    assert not list((tmp_path / "home").glob("models/*musicgen-junk*"))  # no partial left


def test_check_request_api(audio):
    with pytest.raises(mg.MusicgenError, match=r"MusicGen makes audio: .*\(not mid\)"):
        mg.check_request(formats=["wav", "mid"])
    assert mg.check_formats("WAV, .flac") == ["wav", "flac"]
    with pytest.raises(
        mg.MusicgenError, match=r"seed must be 0..4294967295 \(a whole number\), not 1.5"
    ):
        mg.check_request(seed=1.5)
    with pytest.raises(mg.MusicgenError, match="tempo cannot steer"):
        mg.check_request(tempo=90)
    ok = mg.check_request(model="musicgen-melody", melody=audio / "hum.wav", seconds=4)
    assert ok.melody_model is True and ok.seconds == 4 and ok.melody_audio[1] == 16000


def test_formats_mid_is_refused_before_the_model_is_looked_up(no_lookup, capsys, tmp_path):
    code, _, err, _ = run(
        capsys, "generate", "calm", "--model", "musicgen-small", "--formats", "mid",
        "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 2 and "MusicGen makes audio" in err and "REACHED" not in err
