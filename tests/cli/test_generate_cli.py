"""`disco-musica generate "PROMPT"`, `replay` and `prompt` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.symbolic.score_api import available_models

needs_model = pytest.mark.skipif(
    "score-base" not in available_models(), reason="needs the shipped score-base model"
)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@needs_model
def test_generate_writes_a_folder_and_replay_makes_the_same_files(tmp_path, capsys):
    out = tmp_path / "waltz"
    code, stdout, err = run(
        capsys, "generate", "a sad waltz for string quartet in D minor, 4 bars, violn",
        "--seed", "7", "--out", out, "--formats", "wav,mid,musicxml,flac",
    )  # fmt: skip
    assert code == 0, err
    assert listing(tmp_path) == [
        "waltz",
        "waltz/generation.json",
        "waltz/music.flac",
        "waltz/music.mid",
        "waltz/music.musicxml",
        "waltz/music.wav",
    ]
    assert "What I understood" in err and "string quartet" in err
    assert "ignored: violn (did you mean violin" in err
    assert f"wrote {out}/" in stdout
    record = json.loads((out / "generation.json").read_text())
    assert record["seed"] == 7
    assert record["plan"]["meter"] == "3/4" and record["plan"]["key"] == "D"
    assert [p["program"] for p in record["plan"]["parts"]] == [40, 40, 41, 42]
    assert record["parsed"]["ignored"][0]["word"] == "violn"
    assert len(record["model"]["sha256"]) == 64
    assert record["output"]["soundfont"]["sha256"]
    assert set(record["outputs"]) == {"music.wav", "music.flac", "music.mid", "music.musicxml"}

    # replay, in another process as a user would
    again = tmp_path / "again"
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "replay", str(out / "generation.json"), "--out",
         str(again)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "music.mid: identical" in proc.stdout and "music.wav: identical" in proc.stdout
    for name in ("music.mid", "music.wav", "music.flac"):
        assert (again / name).read_bytes() == (out / name).read_bytes()

    # the folder is never overwritten without --overwrite
    code, _, err = run(capsys, "generate", "chorale", "--out", out, "--seed", "1")
    assert code == 2 and "already exists; add --overwrite" in err


@needs_model
def test_variations_and_json(tmp_path, capsys):
    code, stdout, _ = run(
        capsys, "generate", "folk tune in G major, 2 bars", "--variations", "2", "--seed", "3",
        "--out", tmp_path / "v", "--formats", "mid", "--json",
    )  # fmt: skip
    assert code == 0
    records = json.loads(stdout)
    assert [r["seed"] for r in records] == [3, 4]
    a = (tmp_path / "v" / "variation-1" / "music.mid").read_bytes()
    b = (tmp_path / "v" / "variation-2" / "music.mid").read_bytes()
    assert a != b


@needs_model
def test_variations_written_together_replay_exactly(tmp_path, capsys):
    """--variations decodes the pieces as one batch; each records its batch, and replay of
    any one of them (rerunning the batch) gives the same bytes."""
    code, _, err = run(
        capsys, "generate", "a chorale in A minor for choir, 4 bars", "--variations", "3",
        "--seed", "40", "--out", tmp_path / "v", "--formats", "mid,musicxml",
    )  # fmt: skip
    assert code == 0, err
    mids = []
    for i in (1, 2, 3):
        folder = tmp_path / "v" / f"variation-{i}"
        record = json.loads((folder / "generation.json").read_text())
        assert record["request"]["batch"] == {"seeds": [40, 41, 42], "row": i - 1}
        assert record["seed"] == 39 + i
        mids.append((folder / "music.mid").read_bytes())
    assert len(set(mids)) == 3
    code, stdout, err = run(
        capsys, "replay", tmp_path / "v" / "variation-2", "--out", tmp_path / "again"
    )
    assert code == 0, err
    assert "music.mid: identical" in stdout and "music.musicxml: identical" in stdout
    assert (tmp_path / "again" / "music.mid").read_bytes() == mids[1]

    # a damaged batch in the record: one line, nothing written
    record_path = tmp_path / "v" / "variation-3" / "generation.json"
    record = json.loads(record_path.read_text())
    record["request"]["batch"]["row"] = 0  # not the row of seed 42
    record_path.write_text(json.dumps(record))
    code, _, err = run(capsys, "replay", record_path, "--out", tmp_path / "bad")
    assert code == 2 and "request.batch is damaged" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad").exists()


@needs_model
def test_double_stops_option_reaches_the_record_and_replays(tmp_path, capsys):
    """--double-stops (generate): recorded in the request and the plan, heard in the MIDI
    (a string part sounds 2 notes at once, never 3), and replayed byte for byte."""
    from symusic import Score

    from engine.symbolic.quality import max_simultaneous

    out = tmp_path / "stops"
    code, _, err = run(
        capsys, "generate", "a string quartet in D minor, 4 bars", "--double-stops",
        "--seed", "1", "--out", out, "--formats", "mid",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads((out / "generation.json").read_text())
    assert record["request"]["double_stops"] is True and record["plan"]["double_stops"] is True
    most = [max_simultaneous(t) for t in Score(str(out / "music.mid")).tracks]
    assert max(most) == 2, most
    code, stdout, err = run(capsys, "replay", out / "generation.json", "--out", tmp_path / "again")
    assert code == 0, err
    assert "music.mid: identical" in stdout
    assert (tmp_path / "again" / "music.mid").read_bytes() == (out / "music.mid").read_bytes()

    # the words alone: in the plan, not in the request (replay reads the prompt again)
    code, _, err = run(
        capsys, "generate", "a string quartet in D minor with double stops, 4 bars",
        "--seed", "1", "--out", tmp_path / "words", "--formats", "mid",
    )  # fmt: skip
    assert code == 0, err
    assert "double stops" in err and "double_stops" in err  # the understood table
    record = json.loads((tmp_path / "words" / "generation.json").read_text())
    assert "double_stops" not in record["request"] and record["plan"]["double_stops"] is True
    # without either, no double stops
    code, _, err = run(
        capsys, "generate", "a string quartet in D minor, 4 bars",
        "--seed", "1", "--out", tmp_path / "plain", "--formats", "mid",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads((tmp_path / "plain" / "generation.json").read_text())
    assert "double_stops" not in record["request"] and record["plan"]["double_stops"] is False
    plain = Score(str(tmp_path / "plain" / "music.mid"))
    assert all(max_simultaneous(t) == 1 for t in plain.tracks)


@needs_model
def test_sketch_double_stops_reach_the_sidecar_and_its_command(tmp_path, capsys):
    from symusic import Score

    from engine.symbolic.quality import max_simultaneous

    out = tmp_path / "duo.mid"
    argv = ["sketch", "--style", "classical", "--programs", "40,42", "--bars", "4"]
    code, _, err = run(capsys, *argv, "--seed", "2", "--double-stops", "--out", out)
    assert code == 0, err
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["parameters"]["double_stops"] is True and "--double-stops" in recipe["args"]
    assert max(max_simultaneous(t) for t in Score(str(out)).tracks) == 2
    again = tmp_path / "again.mid"
    code, _, err = run(capsys, *recipe["args"], "--out", again)
    assert code == 0, err
    assert again.read_bytes() == out.read_bytes()
    code, _, err = run(capsys, *argv, "--seed", "2", "--out", tmp_path / "plain.mid")
    assert code == 0, err
    recipe = json.loads((tmp_path / "plain.json").read_text())
    assert recipe["parameters"]["double_stops"] is False and "--double-stops" not in recipe["args"]
    assert all(max_simultaneous(t) == 1 for t in Score(str(tmp_path / "plain.mid")).tracks)


def test_prompt_shows_double_stops(capsys):
    code, out, err = run(capsys, "prompt", "string quartet with double stops")
    assert code == 0
    assert "double stops" in out + err and "double_stops" in out + err
    code, out, _ = run(capsys, "prompt")
    assert code == 0 and "double stops" in out and "double stopping" in out
    for command in ("generate", "sketch"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "--double-stops" in out, command


def test_prompt_lists_the_vocabulary(capsys):
    code, out, _ = run(capsys, "prompt")
    assert code == 0
    for word in ("waltz", "string quartet", "adagio", "crescendo", "AABA", "I-vi-IV-V"):
        assert word in out


BAD = {
    "tempo 0": (["generate", "x", "--tempo", "0"], "tempo 0 BPM is outside 20..300"),
    "tempo 1000": (["generate", "fast, 1000 bpm"], "1000"),
    "duration 0": (["generate", "x", "--duration", "0"], "duration 0 s is outside"),
    "duration huge": (["generate", "x", "--duration", "100000"], "is outside 0..600 s"),
    "unknown format": (["generate", "x", "--formats", "aiff"], "unknown output format 'aiff'"),
    "unknown instrument": (["generate", "x", "--instruments", "trumpit"], "did you mean trumpet"),
    "variations 0": (["generate", "x", "--variations", "0"], "--variations must be 1..32"),
    "creativity": (["generate", "x", "--creativity", "3"], "creativity must be between 0 and 1"),
}


@pytest.mark.parametrize("argv,message", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line_and_writes_nothing(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert listing(tmp_path) in ([], ["disco-musica-output"])


def test_bad_soundfont_and_unwritable_folder(tmp_path, capsys):
    fake = tmp_path / "fake.sf2"
    fake.write_text("not a soundfont")
    code, _, err = run(capsys, "generate", "x", "--soundfont", fake, "--out", tmp_path / "o")
    assert code == 2 and "is not a SoundFont" in err and err.count("\n") == 1
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _, err = run(capsys, "generate", "x", "--out", locked / "o")
    if code == 2:  # root may write anywhere; then the folder is simply made
        assert "cannot write" in err or "permission" in err
    assert not (tmp_path / "o").exists()


def test_ten_megabyte_prompt_from_stdin(tmp_path, capsys, monkeypatch):
    import io

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("waltz " * 2_000_000))
    code, _, err = run(capsys, "generate", "-")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert listing(tmp_path) in ([], ["disco-musica-output"])


def test_empty_prompt_says_it_is_unconditional(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "generate", "", "--tempo", "0")
    assert "empty prompt" not in err or code == 2  # errors come first
    code, _, err = run(capsys, "prompt", "")
    assert code == 0 and "empty prompt" in err
