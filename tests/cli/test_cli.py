"""The `disco-musica` command line: outputs, recipes that remake them, and one-line errors."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from symusic import Score

from engine.cli import main
from engine.cli.common import STYLE_NAMES
from engine.symbolic import score_api
from engine.symbolic.tokenizer import STYLES


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, err: str, *needles: str) -> None:
    """Exit status 2 and exactly one line on stderr, `error: ...`, naming the problem."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], err


def notes(path: Path) -> tuple[list[list[tuple[int, int, int]]], Score]:
    """(onset, duration, pitch) of every note, per track, in ticks."""
    score = Score(str(path))
    return [sorted((n.time, n.duration, n.pitch) for n in t.notes) for t in score.tracks], score


def bar_ticks(score: Score) -> int:
    ts = score.time_signatures[0]
    return score.ticks_per_quarter * 4 * ts.numerator // ts.denominator


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def pieces(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """MIDI files written by `sketch`: a two-part piece and a one-part melody."""
    d = tmp_path_factory.mktemp("pieces")
    model = ["--model", str(tiny_model_dir)]
    args = ["--style", "chorale", "--bars", "4", "--seed", "7"]
    assert main(["sketch", *args, "--voices", "2", "--out", str(d / "duet.mid"), *model]) == 0
    assert main(["sketch", *args, "--voices", "1", "--out", str(d / "tune.mid"), *model]) == 0
    return {"duet": d / "duet.mid", "tune": d / "tune.mid"}


# ---- sketch --------------------------------------------------------------------------------
def test_sketch_writes_midi_and_a_recipe_that_remakes_it(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "piece.mid"
    code, stdout, err = run(
        capsys, "sketch", "--style", "folk", "--bars", "4", "--voices", "2",
        "--model", tiny_model_dir, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert f"wrote {out}" in stdout
    score = Score(str(out))
    assert len(score.tracks) == 2 and score.note_num() > 0

    recipe = json.loads(out.with_suffix(".json").read_text())
    assert isinstance(recipe["seed"], int) and recipe["seed"] >= 0  # picked for the user
    assert recipe["operation"] == "sketch"
    assert recipe["parameters"]["style"] == "folk" and recipe["parameters"]["bars"] == 4
    assert recipe["conditions"]["style"] == "folk" and recipe["conditions"]["voices"] == "2"
    assert set(recipe["conditions"]) == {"style", "key", "mode", "meter", "tempo", "voices"}
    assert recipe["model"]["sha256"] == sha256(tiny_model_dir / "model.safetensors")
    assert recipe["midi"] == {"file": "piece.mid", "sha256": sha256(out)}
    assert recipe["finish_reason"] in ("stop", "length")
    assert recipe["disco_musica_version"]
    assert recipe["command"].startswith("disco-musica sketch ")
    assert "--seed" in recipe["args"] and "--out" not in recipe["args"]

    again = tmp_path / "again.mid"
    code, _, err = run(capsys, *recipe["args"], "--out", again)
    assert code == 0, err
    assert again.read_bytes() == out.read_bytes()


def test_recipe_remakes_the_same_bytes_in_a_fresh_process(pieces, tmp_path):
    recipe = json.loads(pieces["duet"].with_suffix(".json").read_text())
    again = tmp_path / "again.mid"
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", *recipe["args"], "--out", str(again)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert again.read_bytes() == pieces["duet"].read_bytes()
    assert sha256(again) == recipe["midi"]["sha256"]


def test_default_output_names_are_new_files_here(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, _, err = run(
            capsys, "sketch", "--style", "celtic", "--bars", "2", "--voices", "1",
            "--seed", "5", "--model", tiny_model_dir,
        )  # fmt: skip
        assert code == 0, err
    assert listing(tmp_path) == [
        "disco-musica-celtic-5-2.json",
        "disco-musica-celtic-5-2.mid",
        "disco-musica-celtic-5.json",
        "disco-musica-celtic-5.mid",
    ]
    assert (tmp_path / "disco-musica-celtic-5.mid").read_bytes() == (
        tmp_path / "disco-musica-celtic-5-2.mid"
    ).read_bytes()


def test_existing_output_is_kept_unless_force(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "mine.mid"
    out.write_bytes(b"my own file")
    args = ["sketch", "--bars", "2", "--voices", "1", "--model", tiny_model_dir, "--out", out]
    code, _, err = run(capsys, *args)
    assert_user_error(code, err, "already exists", "--force")
    assert out.read_bytes() == b"my own file"
    assert listing(tmp_path) == ["mine.mid"]

    out.unlink()
    out.with_suffix(".json").write_text("{}")  # a sidecar in the way counts too
    code, _, err = run(capsys, *args)
    assert_user_error(code, err, "mine.json already exists")
    assert not out.exists()

    code, _, err = run(capsys, *args, "--force")  # --force replaces only our own files
    assert_user_error(code, err, "mine.json was not written by Disco-Musica")
    assert listing(tmp_path) == ["mine.json"]

    out.with_suffix(".json").unlink()
    code, _, err = run(capsys, *args)
    assert code == 0, err
    assert Score(str(out)).note_num() > 0
    assert json.loads(out.with_suffix(".json").read_text())["midi"]["sha256"] == sha256(out)
    first = out.read_bytes()

    code, _, err = run(capsys, *args, "--force", "--seed", "9")
    assert code == 0, err
    assert "move it back to undo" in err
    trash = tmp_path / ".disco-musica-trash"
    assert sorted(p.read_bytes() == first for p in trash.iterdir()) == [False, True]
    assert json.loads(out.with_suffix(".json").read_text())["midi"]["sha256"] == sha256(out)

    out.write_bytes(first + b"edited")
    code, _, err = run(capsys, *args, "--force")
    assert_user_error(code, err, "mine.mid was changed since Disco-Musica wrote it")


def test_json_output(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "p.mid"
    code, stdout, _ = run(
        capsys, "sketch", "--bars", "2", "--voices", "1", "--seed", "3",
        "--model", tiny_model_dir, "--out", out, "--json",
    )  # fmt: skip
    assert code == 0
    shown = json.loads(stdout)
    assert shown["midi"]["path"] == str(out)
    assert shown["sidecar"] == str(tmp_path / "p.json")
    assert shown["seed"] == 3


def test_the_default_model_is_used_when_installed(tiny_model_dir, tmp_path, monkeypatch, capsys):
    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models / score_api.DEFAULT_MODEL)
    monkeypatch.setattr(score_api, "MODELS_DIR", models)
    out = tmp_path / "p.mid"
    code, _, err = run(capsys, "sketch", "--bars", "2", "--voices", "1", "--out", out)
    assert code == 0, err
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["model"]["name"] == score_api.DEFAULT_MODEL

    code, stdout, _ = run(capsys, "models")
    assert code == 0
    assert f"{score_api.DEFAULT_MODEL} (default)" in stdout
    assert "M parameters" in stdout and "MB on disk" in stdout
    assert "trained: preset tiny" in stdout


def test_models_without_installed_models(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(score_api, "MODELS_DIR", tmp_path / "none")
    code, stdout, _ = run(capsys, "models")
    assert code == 0
    assert "no score models are installed" in stdout


# ---- continue, add-tracks, regenerate ------------------------------------------------------
def test_continue_keeps_the_given_bars(pieces, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "longer.mid"
    code, _, err = run(
        capsys, "continue", pieces["duet"], "--bars", "2", "--seed", "1",
        "--model", tiny_model_dir, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    given, score_in = notes(pieces["duet"])
    got, score_out = notes(out)
    end = 4 * bar_ticks(score_in)
    assert len(got) == len(given)
    for g, o in zip(given, got, strict=True):
        assert [n for n in o if n[0] < end] == g
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["operation"] == "continue"
    assert recipe["input"]["sha256"] == sha256(pieces["duet"])
    code, _, err = run(capsys, *recipe["args"], "--out", tmp_path / "again.mid")
    assert code == 0, err
    assert (tmp_path / "again.mid").read_bytes() == out.read_bytes()


def test_add_tracks_keeps_the_given_part(pieces, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "trio.mid"
    code, stdout, err = run(
        capsys, "add-tracks", pieces["tune"], "--parts", "alto,bass", "--seed", "2",
        "--model", tiny_model_dir, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert "3 tracks" in stdout
    (given,), _ = notes(pieces["tune"])
    got, _ = notes(out)
    assert len(got) == 3
    assert given in got


def test_regenerate_keeps_everything_outside_the_bars(pieces, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "varied.mid"
    # Bars 2-3 counted from 1 (the API's bars 1..2) of track 1 only.
    code, _, err = run(
        capsys, "regenerate", pieces["duet"], "--bars", "2-3", "--tracks", "1", "--seed", "9",
        "--model", tiny_model_dir, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    given, score_in = notes(pieces["duet"])
    got, _ = notes(out)
    bar = bar_ticks(score_in)
    assert got[1] == given[1]  # the other track is untouched

    def outside(track):
        return [n for n in track if not bar <= n[0] < 3 * bar]

    assert outside(got[0]) == outside(given[0])
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["parameters"]["bars"] == "2-3" and recipe["parameters"]["tracks"] == "1"


# ---- bad input -----------------------------------------------------------------------------
BAD_INPUT = {
    "empty file": (["continue", "{empty}"], "the file is empty"),
    "text file named .mid": (["add-tracks", "{text}"], "not a MIDI file"),
    "truncated MIDI": (["continue", "{truncated}"], "corrupt MIDI file"),
    "header only": (["regenerate", "{header}", "--bars", "1"], "no notes"),
    "missing input": (["continue", "{missing}"], "no such file"),
    "unknown style": (["sketch", "--style", "chorales"], "did you mean chorale?"),
    "bars 0": (["sketch", "--bars", "0"], "--bars must be 1..128, not 0; use 1"),
    "bars 1000": (["sketch", "--bars", "1000"], "--bars must be 1..128, not 1000; use 128"),
    "continue bars 0": (["continue", "{duet}", "--bars", "0"], "--bars must be 1..128"),
    "tempo 0": (["sketch", "--tempo", "0"], "--tempo must be 20..300, not 0"),
    "voices 9": (["sketch", "--voices", "9"], "--voices must be 1..8"),
    "temperature": (["sketch", "--temperature", "7"], "--temperature must be 0..5"),
    "top-p": (["sketch", "--top-p", "0"], "--top-p must be more than 0"),
    "negative seed": (["sketch", "--seed", "-1"], "--seed must be 0.."),
    "bad program": (["sketch", "--programs", "52,300"], "--programs must be 0..127"),
    "unknown key": (["sketch", "--key", "H"], "unknown key tonic 'H'"),
    "unknown meter": (["sketch", "--meter", "7/8"], "unsupported meter"),
    "not a number": (["sketch", "--bars", "eight"], "invalid int value"),
    "unknown mode": (["sketch", "--mode", "dorian"], "invalid choice"),
    "unknown model": (["sketch", "--model", "no-such-model"], "unknown score model"),
    "unknown part": (["add-tracks", "{duet}", "--parts", "alto,descant"], "unknown part"),
    "bars outside piece": (["regenerate", "{duet}", "--bars", "4-9"], "it has bars 1-4"),
    "bars backwards": (["regenerate", "{duet}", "--bars", "3-2"], "bars count from 1"),
    "track outside piece": (["regenerate", "{duet}", "--bars", "1", "--tracks", "3"], "track 3"),
    "out not .mid": (["sketch", "--out", "piece.txt"], "ending in .mid"),
    "out in missing folder": (["sketch", "--out", "nowhere/piece.mid"], "no such folder"),
    "unknown command": (["compose"], "invalid choice"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_one_line_and_writes_nothing(
    case, pieces, tiny_model_dir, tmp_path, monkeypatch, capsys
):
    argv, message = BAD_INPUT[case]
    midi = pieces["duet"].read_bytes()
    files = {
        "empty": b"",
        "text": b"these are not the notes you are looking for\n",
        "truncated": midi[: len(midi) // 2],
        "header": midi[:14],
        "duet": midi,
    }
    for name, data in files.items():
        (tmp_path / f"{name}.mid").write_bytes(data)
    before = listing(tmp_path)
    argv = [a.format(**{n: f"{n}.mid" for n in [*files, "missing"]}) for a in argv]
    if argv[0] != "compose" and "--model" not in argv:
        argv += ["--model", str(tiny_model_dir)]
    if argv[0] != "compose" and "--out" not in argv:
        argv += ["--out", "out.mid"]
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run(capsys, *argv)
    assert_user_error(code, err, message)
    assert stdout == ""
    assert listing(tmp_path) == before


def test_unwritable_output_folder(tiny_model_dir, tmp_path, capsys):
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    elif Path("/sys").is_dir():
        folder = Path("/sys")  # root may write anywhere on a normal file system
    else:
        pytest.skip("running as root without a read-only folder to try")
    before = listing(folder)
    try:
        code, _, err = run(
            capsys, "sketch", "--bars", "2", "--voices", "1",
            "--model", tiny_model_dir, "--out", folder / "piece.mid",
        )  # fmt: skip
    finally:
        if folder != Path("/sys"):
            folder.chmod(0o755)
    assert_user_error(code, err, "permission denied")
    assert listing(folder) == before


def test_bad_input_in_a_real_process(tmp_path):
    (tmp_path / "empty.mid").write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "continue", "empty.mid"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: empty.mid: the file is empty"
    assert proc.stdout == ""
    assert listing(tmp_path) == ["empty.mid"]


def test_interrupt_exits_130_and_leaves_nothing(tiny_model_dir, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(score_api.ScoreModel, "generate", interrupted)
    code, _, err = run(capsys, "sketch", "--model", tiny_model_dir, "--out", tmp_path / "p.mid")
    assert code == 130
    assert err.strip() == "interrupted"
    assert listing(tmp_path) == []


# ---- help ----------------------------------------------------------------------------------
def test_help_is_quick_to_load(tmp_path):
    code = (
        "import sys; from engine.cli import main; rc = main(['sketch', '--help']); "
        "heavy = [m for m in ('mlx.core', 'engine.symbolic.tokenizer', 'miditok', 'music21') "
        "if m in sys.modules]; print('HEAVY', heavy); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "--temperature" in proc.stdout
    assert "HEAVY []" in proc.stdout


def test_help_shows_the_api_defaults(capsys):
    def help_of(*words):
        assert main([*words, "--help"]) == 0
        return " ".join(capsys.readouterr().out.split())

    text = help_of("sketch")
    assert STYLE_NAMES == ", ".join(STYLES) and STYLE_NAMES in text
    assert f"(default {score_api.DEFAULT_TOP_K}: no limit)" in text
    assert f"(default {score_api.DEFAULT_BARS})" in text
    assert f"(default {score_api.DEFAULT_TEMPERATURE:g})" in text
    assert f"(default {score_api.DEFAULT_TOP_P:g})" in text
    assert f"(default {score_api.DEFAULT_MODEL})" in text
    bars = inspect.signature(score_api.ScoreModel.continue_score).parameters["bars"].default
    assert f"(default {bars})" in help_of("continue")
    parts = inspect.signature(score_api.ScoreModel.add_tracks).parameters["parts"].default
    assert f"(default {','.join(parts)})" in help_of("add-tracks")


def test_ci_runs_the_readme_test_command():
    root = Path(__file__).resolve().parents[2]
    ci = (root / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci.endswith(".venv/bin/python -m pytest -q")
    assert f"```sh\n{ci}\n```" in (root / "README.md").read_text()


# ---- corpus and training -------------------------------------------------------------------
def test_corpus_build(tmp_path, capsys):
    out = tmp_path / "data" / "music21"  # missing folders are made
    code, stdout, err = run(
        capsys, "corpus", "build", "--out", out, "--styles", "chorale", "--limit", "1",
        "--workers", "1",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pieces"] >= 1 and set(summary["by_style"]) == {"chorale"}
    assert f"built {out}: {summary['pieces']} piece" in stdout
    assert str(out / "failed.jsonl") in stdout

    code, _, err = run(capsys, "corpus", "build", "--out", out)
    assert_user_error(code, err, "already holds a corpus", "--force")


def test_corpus_build_refuses_bad_requests(tmp_path, capsys):
    code, _, err = run(capsys, "corpus", "build", "--out", tmp_path / "c", "--styles", "folks")
    assert_user_error(code, err, "unknown style 'folks'; did you mean folk?")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "song.mid").write_bytes(b"MThd")
    code, _, err = run(capsys, "corpus", "build", "--out", tmp_path / "mine")
    assert_user_error(code, err, "is not a corpus folder")
    assert listing(tmp_path / "mine") == ["song.mid"]
    code, _, err = run(capsys, "corpus", "build", "--out", tmp_path / "c", "--limit", "0")
    assert_user_error(code, err, "--limit must be 1..")
    assert listing(tmp_path) == ["mine"]


def test_train_score(small_corpus, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "score", "--corpus", small_corpus, "--preset", "tiny", "--out", run_dir]
    code, stdout, err = run(capsys, *args, "--max-steps", "2")
    assert code == 0, err
    assert (run_dir / "model" / "model.safetensors").is_file()
    assert f"model: {run_dir / 'model'}" in stdout

    code, _, err = run(capsys, *args, "--max-steps", "2")
    assert_user_error(code, err, "already holds a training run", "--resume")
    code, _, err = run(capsys, *args, "--max-steps", "3", "--resume")
    assert code == 0, err
    assert json.loads((run_dir / "model" / "training.json").read_text())["summary"]["step"] == 3


def test_train_score_init_from(small_corpus, tiny_model_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "score", "--corpus", small_corpus, "--out", run_dir, "--max-steps", "2"]
    code, _, err = run(capsys, *args, "--preset", "tiny-continue", "--init-from", tiny_model_dir)
    assert code == 0, err
    record = json.loads((run_dir / "model" / "training.json").read_text())
    assert record["init_from"]["path"] == str(tiny_model_dir.resolve())
    assert f"--init-from {tiny_model_dir}" in record["command"]
    # A run started from one model does not resume from another.
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    (other / "model.safetensors").write_bytes(b"x" + (other / "model.safetensors").read_bytes())
    code, _, err = run(capsys, *args, "--preset", "tiny-continue", "--resume", "--init-from", other)
    assert_user_error(code, err, "leave out --init-from")
    base = ["train", "score", "--corpus", small_corpus, "--preset", "base", "--out", tmp_path / "b"]
    code, _, err = run(capsys, *base, "--init-from", tiny_model_dir)
    assert_user_error(code, err, "hidden_size 64", "--preset tiny or tiny-continue")
    assert not (tmp_path / "b").exists()


def test_train_score_refuses_bad_requests(tmp_path, capsys):
    code, _, err = run(capsys, "train", "score", "--corpus", tmp_path, "--out", tmp_path / "r")
    assert_user_error(code, err, "not a built corpus", "corpus build")
    code, _, err = run(capsys, "train", "score", "--corpus", tmp_path, "--preset", "huge")
    assert_user_error(code, err, "unknown preset 'huge'")
    code, _, err = run(
        capsys, "train", "score", "--corpus", tmp_path, "--out", tmp_path / "r", "--resume"
    )
    assert_user_error(code, err, "no checkpoint to resume")
    assert listing(tmp_path) == []
