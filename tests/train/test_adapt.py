"""Adapting a model to its user's ratings (engine.train.adapt, `disco-musica adapt`): a
simulated user whose taste is a rule, the refusals, the card's rounds and changelog, kept and
discarded variations, and ``--auto`` counting only new ratings."""

import contextlib
import io
import json
import shutil
from pathlib import Path

import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import numpy as np
import pytest

from engine.errors import UserError
from engine.library.store import Library
from engine.train import adapt, finetune
from engine.train.finetune import read_card
from engine.train.score import TrainingError

RATED_SEEDS = range(16)  # pieces the simulated user rates
SPARE_SEEDS = range(16, 24)  # pieces left unrated (rated later: "new ratings")
FAST = dict(steps=16, max_pairs=32)


def taste(mode: str | None, tempo_bpm: float | None) -> int:
    """The simulated user: likes fast minor pieces, dislikes slow major ones (stars 1..5)."""
    from engine.symbolic.tokenizer import tempo_band

    band = tempo_band(tempo_bpm or 96.0)
    stars = 3 + (1 if mode == "minor" else -1) + {"fast": 1, "slow": -1}.get(band, 0)
    return max(1, min(5, stars))


def quiet_main(argv: list[str]) -> int:
    from engine.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(argv)


@pytest.fixture(scope="module")
def made(tiny_model_dir, tmp_path_factory):
    """A library of pieces sketched by the tiny model (the model chooses mode and tempo):
    seeds 0..15 rated by the simulated user, 16..23 unrated. Tests use a copy of it."""
    root = tmp_path_factory.mktemp("adapt")
    model = root / "tiny"
    shutil.copytree(tiny_model_dir, model)
    lib_dir, out = root / "library", root / "out"
    out.mkdir()
    for s in [*RATED_SEEDS, *SPARE_SEEDS]:
        argv = ["sketch", "--model", str(model), "--seed", str(s), "--bars", "4"]
        argv += ["--voices", "2", "--out", str(out / f"p{s}.mid"), "--library", str(lib_dir)]
        assert quiet_main(argv) == 0
    with Library.open(lib_dir) as lib:
        pieces = sorted(lib.list(limit=None), key=lambda p: p.seed)
        assert [p.seed for p in pieces] == [*RATED_SEEDS, *SPARE_SEEDS]
        for p in pieces[: len(RATED_SEEDS)]:
            lib.rate(p.id, taste(p.mode, p.tempo))
    return {"model": model, "library": lib_dir}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def lib_dir(made, tmp_path):
    out = tmp_path / "library"
    shutil.copytree(made["library"], out)
    return out


def ratings(lib_dir: Path) -> dict[int, int]:
    with Library.open(lib_dir) as lib:
        return {p.seed: p.rating for p in lib.list(limit=None) if p.rating}


# ---- the simulated user -----------------------------------------------------------------------
def test_simulated_user_after_adapting_the_model_moves_toward_their_taste(home, made, lib_dir):
    from engine.symbolic.score_api import ScoreModel
    from engine.symbolic.tokenizer import TEMPO_BAND_DEFAULT_BPM

    stars = ratings(lib_dir)
    assert len(stars) == 16 and min(stars.values()) <= 2 and max(stars.values()) >= 4

    got = adapt.adapt_model("taste", library=lib_dir, from_model=str(made["model"]), **FAST)
    assert got["status"] == "finished" and got["preference"] == "dpo"
    assert got["method"] == "lora" and got["steps"] == 16 and 8 <= got["pairs"] <= 32
    assert got["new_ratings"] == 16 and got["liked"] + got["disliked"] + got["neutral"] == 16
    # On the pairs it learnt from: half right (equal) before, the liked side after.
    assert got["before"]["accuracy"] == 0.5 and got["after"]["accuracy"] >= 0.9

    ref, tuned = ScoreModel.load(made["model"]), ScoreModel.load("taste")

    def stars_of(g) -> int:
        c = g.conditions
        return taste(c["mode"], TEMPO_BAND_DEFAULT_BPM[c["tempo"]])

    # 1. Held-out pieces (the model before adapting writes them on new seeds): the adapted
    # model's log-probability moves up for the ones the user would like, relative to the
    # ones they would dislike, and it does not unlearn the liked ones.
    held = [ref.generate(bars=4, seed=s, voices=2) for s in range(100, 124)]
    liked = np.array([stars_of(g) >= 4 for g in held])
    disliked = np.array([stars_of(g) <= 2 for g in held])
    assert liked.sum() >= 3 and disliked.sum() >= 3
    seqs = [g.tokens for g in held]
    pad = ref.tokenizer.pad_id
    # The implicit reward DPO trains: log pi(x) - log ref(x), in nats, for each piece.
    reward = adapt.sequence_logprobs(tuned.model, seqs, pad) - adapt.sequence_logprobs(
        ref.model, seqs, pad
    )
    assert reward[liked].mean() - reward[disliked].mean() > 3.0, (reward[liked], reward[disliked])
    right = [reward[i] > reward[j] for i in np.flatnonzero(liked) for j in np.flatnonzero(disliked)]
    assert np.mean(right) >= 0.7
    # ... and the liked music stays about as likely a token (plain DPO loses ~0.5 nats a
    # token here; the SFT term keeps it).
    per_token = reward / np.array([len(s) - 1 for s in seqs])
    assert per_token[liked].mean() > -0.2

    # 2. What the models write on new seeds: the adapted one writes more of what is liked.
    seeds = range(200, 212)
    before = [stars_of(ref.generate(bars=2, seed=s, voices=2)) for s in seeds]
    after = [stars_of(tuned.generate(bars=2, seed=s, voices=2)) for s in seeds]
    assert np.mean(after) >= np.mean(before) + 0.5, (before, after)
    assert np.mean([a >= 4 for a in after]) >= np.mean([b >= 4 for b in before]) + 0.3


# ---- refusals ---------------------------------------------------------------------------------
def test_too_few_ratings_is_one_line_and_makes_nothing(home, made, tmp_path):
    lib_dir = tmp_path / "few"
    shutil.copytree(made["library"], lib_dir)
    with Library.open(lib_dir) as lib:
        for p in [p for p in lib.list(limit=None) if p.rating][3:]:
            lib.rate(p.id, None)
    with pytest.raises(TrainingError) as e:
        adapt.adapt_model("mine", library=lib_dir, from_model=str(made["model"]))
    text = str(e.value)
    assert "\n" not in text and "needs at least 6 new ratings" in text, text
    assert "there are 3 in the library" in text, text
    assert "library rate" in text
    assert not (home / "my-models" / "mine").exists()

    with pytest.raises(TrainingError, match="no trained model named 'nosuch'.*--from"):
        adapt.adapt_model("nosuch", library=lib_dir)
    with pytest.raises(TrainingError, match="--beta must be"):
        adapt.adapt_model("mine", library=lib_dir, from_model=str(made["model"]), beta=0)


def test_dpo_needs_a_disliked_piece_and_auto_falls_back_to_sft(home, made, lib_dir):
    with Library.open(lib_dir) as lib:
        for p in lib.list(limit=None):
            if p.rating is not None and p.rating < 4:
                lib.rate(p.id, None)
        liked = sum(1 for p in lib.list(limit=None) if p.rating)
    m = str(made["model"])
    with pytest.raises(TrainingError, match=r"DPO learns from pairs.*--method sft"):
        adapt.adapt_model("mine", library=lib_dir, from_model=m, method="dpo", min_ratings=2)
    plan = adapt.adapt_model("mine", library=lib_dir, from_model=m, min_ratings=2, dry_run=True)
    assert plan["preference"] == "sft" and plan["sequences"] == liked and plan["pairs"] == 0
    assert not (home / "my-models" / "mine").exists()  # a dry run makes nothing


def test_kept_and_discarded_variations_are_preferences(home, made, tmp_path):
    """Of the variations of one request, the deleted ones count as disliked and the others
    as liked; a rating wins over both; tags keep/discard count like 4 and 2 stars."""
    lib_dir = tmp_path / "variations"
    argv = ["generate", "a short tune", "--model", str(made["model"]), "--bars", "2"]
    argv += ["--formats", "mid", "--variations", "4", "--seed", "7", "--out", str(tmp_path / "v")]
    assert quiet_main([*argv, "--library", str(lib_dir)]) == 0
    with Library.open(lib_dir) as lib:
        v = sorted(lib.list(limit=None), key=lambda p: p.seed)
        assert len(v) == 4
        lib.delete(v[0].id)
        lib.delete(v[1].id)
        lib.rate(v[2].id, 1)
        ident = adapt._identity(None, made["model"], True)
        signals, pieces, used = adapt.gather(lib, ident, {})
        got = {s.id: (s.score, s.source) for s in signals}
        assert pieces == 4 and used == 0
        assert got == {
            v[0].id: (2, "discarded variation"),
            v[1].id: (2, "discarded variation"),
            v[2].id: (1, "rating"),
            v[3].id: (4, "kept variation"),
        }
        pairs = adapt.make_pairs(signals)
        assert {(a.id, b.id) for a, b in pairs} == {
            (v[3].id, v[0].id),
            (v[3].id, v[1].id),
            (v[3].id, v[2].id),
        }
        # The sequences the model learns from: its own tokens, conditions from the record.
        path, record = adapt._midi_of(lib, v[0].id)
        from engine.symbolic.tokenizer import ScoreTokenizer

        tok = ScoreTokenizer.load(made["model"] / "tokenizer")
        seq = adapt.piece_sequence(tok, path, record, 512)
        cond, tracks = tok.split(seq)
        assert cond["mode"] == v[0].mode and cond["key"] == v[0].key and len(seq) <= 512
        assert len(tracks) == int(cond["voices"]) >= 1

        # Tags: keep / discard on unrated pieces.
        lib.restore(v[0].id)
        lib.tag(v[0].id, ["discard"])
        lib.tag(v[3].id, ["keep"])
        got = {s.id: (s.score, s.source) for s in adapt.gather(lib, ident, {})[0]}
        assert got[v[0].id] == (2, "discard tag") and got[v[3].id] == (4, "keep tag")
        # Only new (or changed) signals count: those used before are not new.
        used_before = {v[0].id: 2, v[2].id: 1}
        new = {s.id for s in adapt.gather(lib, ident, used_before)[0] if s.new}
        assert new == {v[1].id, v[3].id}


# ---- the card, the changelog and --auto ----------------------------------------------------------
def test_round_card_changelog_and_auto_counts_only_new_ratings(home, made, lib_dir):
    from engine.cli import adapt as cli_adapt
    from engine.symbolic.score_api import ScoreModel

    m = str(made["model"])
    argv = ["adapt", "mine", "--from", m, "--max-steps", "6", "--auto", "4"]
    assert run_cli([*argv, "--library", str(lib_dir)]) == 0
    card = read_card("mine")
    r1 = card["rounds"][-1]
    assert r1["kind"] == "adapt" and r1["round"] == 1 and r1["status"] == "finished"
    assert r1["preference"] == "dpo" and r1["ratings"]["new_ratings"] == 16
    assert r1["ratings"]["pairs"] > 0 and r1["changelog"].startswith("adapted to your ratings")
    assert card["current"] == "runs/round-1/best" and card["adapt"]["auto"] == 4
    assert len(card["adapt"]["used"]) == 16
    readme = (home / "my-models" / "mine" / "README.md").read_text()
    assert "## Changelog" in readme and r1["changelog"] in readme
    prefs = json.loads((home / "my-models/mine/runs/round-1/preferences.json").read_text())
    assert len(prefs["pairs"]) == r1["ratings"]["pairs"]

    # Nothing new yet: not due, and a manual adapt refuses (only new ratings count).
    assert adapt.pending("mine", library=lib_dir)["new"] == 0
    assert adapt.maybe_adapt("mine", library=lib_dir) is None
    with pytest.raises(TrainingError, match="there are 0 \\(16 used by earlier rounds\\)"):
        adapt.adapt_model("mine", library=lib_dir)

    with Library.open(lib_dir) as lib:
        spare = sorted((p for p in lib.list(limit=None) if p.rating is None), key=lambda p: p.seed)
        for p in spare[:3]:  # 3 new ratings: not yet
            lib.rate(p.id, taste(p.mode, p.tempo))
        assert adapt.maybe_adapt("mine", library=lib) is None
        assert adapt.pending("mine", library=lib)["new"] == 3
        for p in spare[3:5]:  # 2 more (one of them a changed rating counts too)
            lib.rate(p.id, 5 if p.mode == "minor" else 1)
        first = min(lib.list(limit=None), key=lambda p: p.seed)
        lib.rate(first.id, 1 if first.rating >= 3 else 5)
        said = io.StringIO()
        done = cli_adapt.after_rating(lib, out=said)  # what `library rate` calls
    assert [d["round"] for d in done] == [2] and "adapted mine to your ratings" in said.getvalue()
    got = done[0]
    # The default length: two passes over the pairs, 4 pairs a step, 20..100 steps.
    assert got["status"] == "finished" and got["steps"] == max(20, -(-2 * got["pairs"] // 4))
    card = read_card("mine")
    r2 = card["rounds"][-1]
    assert r2["kind"] == "adapt" and r2["ratings"]["new_ratings"] == 6
    assert r2["ratings"]["used_before"] == 15 and r2["from"] == "mine@round-1"
    assert card["current"] == "runs/round-2/best" and len(card["adapt"]["used"]) == 21
    assert adapt.maybe_adapt("mine", library=lib_dir) is None
    assert [line.split(":")[0] for line in finetune.changelog(card)] == ["round 1", "round 2"]

    # Each round is a version that loads by name; the new one is the model.
    x = [[1, 5, 9, 13, 17, 21, 25, 29]]
    import mlx.core as mx

    def logits(name):
        return np.array(ScoreModel.load(name).model(mx.array(x)))

    assert np.abs(logits("mine") - logits("mine@round-2")).max() < 1e-6
    assert np.abs(logits("mine@round-1") - logits("mine@round-2")).max() > 1e-4

    # --auto 0 turns it off.
    adapt.set_auto("mine", 0)
    assert read_card("mine")["adapt"]["auto"] is None and adapt.auto_models() == []


def run_cli(argv: list[str]) -> int:
    """`disco-musica` with the adapt command added (until engine.cli wires it): 0, or 2 and
    the error line for a user error."""
    from engine.cli import _Parser, register
    from engine.cli import adapt as cli_adapt

    parser = _Parser(prog="disco-musica")
    cli_adapt.add_commands(parser.add_subparsers(dest="command", required=True), register)
    args = parser.parse_args(argv)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return args.handler(args) or 0
    except UserError:
        return 2


def test_cli_dry_run_and_errors(home, made, lib_dir, capsys):
    from engine.cli import _Parser, register
    from engine.cli import adapt as cli_adapt

    parser = _Parser(prog="disco-musica")
    cli_adapt.add_commands(parser.add_subparsers(dest="command", required=True), register)
    m = str(made["model"])
    args = parser.parse_args(["adapt", "mine", "--from", m, "--dry-run", "--library", str(lib_dir)])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    plan = adapt.adapt_model("mine", library=lib_dir, from_model=m, dry_run=True)
    assert f"learns from: {plan['pairs']} pairs of 16 new ratings" in out
    assert f"DPO on the lora weights, {plan['steps']} steps (nothing trained" in out
    assert not (home / "my-models" / "mine").exists()
    for argv, match in [
        (["adapt", "mine", "--from", m, "--beta", "0"], "--beta must be"),
        (["adapt", "mine", "--from", m, "--max-steps", "0"], "--max-steps must be"),
        (["adapt", "mine", "--from", m, "--auto", "-1"], "--auto must be"),
        (["adapt", "nosuch", "--library", str(lib_dir)], "no trained model named 'nosuch'"),
    ]:
        args = parser.parse_args(argv)
        with pytest.raises(UserError, match=match):
            args.handler(args)


def test_a_full_model_is_adapted_in_full(home, made, lib_dir):
    """A fully fine-tuned model (no adapter) trains every weight; the round's weights are a
    whole model, and the old round stays loadable."""
    from engine.atomic import sha256_file
    from engine.symbolic.score_api import ScoreModel

    folder = home / "my-models" / "full"
    shutil.copytree(made["model"], folder / "runs" / "round-1" / "best")
    base = {"name": str(made["model"]), "sha256": sha256_file(made["model"] / "model.safetensors")}
    card = {"format": 1, "name": "full", "kind": "score", "method": "full", "base": base}
    card["current"] = "runs/round-1/best"
    card["rounds"] = [{"round": 1, "status": "finished", "dataset_name": "d", "dataset": "d@1"}]
    card["rounds"][0]["command"] = "disco-musica train score --data d --method full"
    (folder / "model.json").write_text(json.dumps(card))

    got = adapt.adapt_model("full", library=lib_dir, steps=6, max_pairs=8)
    assert got["method"] == "full" and got["round"] == 2 and got["changed"]
    best = folder / "runs" / "round-2" / "best"
    assert (best / "model.safetensors").is_file() and not (best / "adapter_config.json").exists()
    x = [[1, 5, 9, 13, 17, 21, 25, 29]]
    import mlx.core as mx

    old = np.array(ScoreModel.load("full@round-1").model(mx.array(x)))
    new = np.array(ScoreModel.load("full").model(mx.array(x)))
    assert np.abs(old - new).max() > 1e-4
    assert read_card("full")["rounds"][1]["changelog"].startswith("adapted to your ratings")


def test_grad_checkpoint_adapts_to_the_same_weights(home, made, lib_dir):
    """``adapt --grad-checkpoint`` (DPO through recomputed blocks) ends with the adapter the
    plain run ends with, bit for bit, and the recorded command says how it was run."""
    import mlx.core as mx

    m = str(made["model"])
    got = {}
    for name, checkpoint in (("plain", False), ("saving", True)):
        o = adapt.AdaptOptions(steps=4, max_pairs=8, grad_checkpoint=checkpoint)
        adapt.adapt_model(name, library=lib_dir, options=o, from_model=m)
        got[name] = mx.load(
            str(home / "my-models" / name / "runs/round-1/best/adapters.safetensors")
        )
        assert ("--grad-checkpoint" in read_card(name)["rounds"][-1]["command"]) == checkpoint
    assert got["plain"].keys() == got["saving"].keys()
    for k in got["plain"]:
        np.testing.assert_array_equal(np.array(got["plain"][k]), np.array(got["saving"][k]), k)
    assert any(np.abs(np.array(v)).max() > 0 for k, v in got["plain"].items() if "lora_b" in k)


def test_a_rating_while_a_round_runs_starts_no_second_one(home, made, lib_dir, monkeypatch):
    """``library rate`` starts a due round in the background, unless one is running (its
    lock held by a live process): then it says so and the ratings wait for the next."""
    import os
    import subprocess
    import time

    from engine.atomic import sha256_file
    from engine.cli import adapt as cli_adapt
    from engine.record import owner_info

    folder = home / "my-models" / "mine"
    shutil.copytree(made["model"], folder / "runs" / "round-1" / "best")
    base = {"name": str(made["model"]), "sha256": sha256_file(made["model"] / "model.safetensors")}
    card = {"format": 1, "name": "mine", "kind": "score", "method": "full", "base": base}
    card |= {"current": "runs/round-1/best", "adapt": {"auto": 2}}
    card["rounds"] = [{"round": 1, "status": "finished", "dataset_name": "d", "dataset": "d@1"}]
    (folder / "model.json").write_text(json.dumps(card))
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kw: started.append(argv))

    (folder / adapt.LOCK_FILE).write_text(json.dumps(owner_info()))  # this process: alive
    said = io.StringIO()
    done = cli_adapt.after_rating(lib_dir, out=said, background=True)
    assert started == [] and done == [{"name": "mine", "status": "busy", "pid": os.getpid()}]
    assert said.getvalue().startswith(f"mine is adapting already (pid {os.getpid()}); the 16 new")

    (folder / adapt.LOCK_FILE).unlink()  # the round ended
    done = cli_adapt.after_rating(lib_dir, out=io.StringIO(), background=True)
    assert [d["status"] for d in done] == ["started"]
    assert started[0][3:7] == ["adapt", "mine", "--min-ratings", "2"]
    # a second rating before that process has taken the lock: no second process
    said = io.StringIO()
    done = cli_adapt.after_rating(lib_dir, out=said, background=True)
    assert len(started) == 1 and [d["status"] for d in done] == ["busy"]
    assert said.getvalue().startswith("mine is starting a round already")
    # the process takes the lock (and the mark of its start), adapts, ends: the next may start
    with adapt._lock("mine"):
        assert not (folder / adapt.STARTING_FILE).exists()
    done = cli_adapt.after_rating(lib_dir, out=io.StringIO(), background=True)
    assert [d["status"] for d in done] == ["started"] and len(started) == 2
    # a start whose process never took the lock is forgotten after STARTING_S
    old = time.time() - adapt.STARTING_S - 1
    os.utime(folder / adapt.STARTING_FILE, (old, old))
    done = cli_adapt.after_rating(lib_dir, out=io.StringIO(), background=True)
    assert [d["status"] for d in done] == ["started"] and len(started) == 3
