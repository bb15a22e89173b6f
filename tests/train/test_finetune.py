"""Fine-tuning the score model on a user's dataset (engine.train.finetune): LoRA and full,
rounds, checkpoints picked by tag, exact resume after kill -9, and the refusals."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import mlx.core as mx
import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine.errors import ScoreModelError
from engine.models import load_model, lora
from engine.train.finetune import FinetuneOptions, finetune_score, read_card
from engine.train.score import TrainingError

ROOT = Path(__file__).resolve().parents[2]
DORIAN = [0, 2, 3, 5, 7, 9, 10]
MAJOR = [0, 2, 4, 5, 7, 9, 11]
FAST = dict(
    preset="quick", max_steps=6, eval_every=3, samples=0, tokens_per_batch=1024, keep_last=2
)


def write_pieces(folder: Path, n: int, signature: bool, seed: int = 0, meter=None) -> Path:
    """``n`` two-voice MIDI pieces of 8 bars: the signature is 5/4, D Dorian, staccato
    (notes 30 % of their spacing); the plain pieces 4/4, C major, legato."""
    folder.mkdir(parents=True, exist_ok=True)
    num, den, tonic, scale, art = (5, 4, 62, DORIAN, 0.3) if signature else (4, 4, 60, MAJOR, 0.95)
    if meter:
        num, den = meter
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        s = Score(480)
        s.time_signatures.append(TimeSignature(0, num, den))
        s.tempos.append(Tempo(0, 110))
        bar, step = num * (1920 // den), 240
        for v, (shift, program) in enumerate([(12, 0), (-12, 32)]):
            t = Track(program=program, name=f"voice {v}")
            deg = 0
            for b in range(8):
                for k in range(0, bar // step, 1 + v):
                    deg = int(np.clip(deg + rng.integers(-2, 3), -7, 10))
                    pitch = tonic + shift + scale[deg % 7] + 12 * (deg // 7)
                    t.notes.append(Note(b * bar + k * step, int(step * (1 + v) * art), pitch, 80))
            s.tracks.append(t)
        s.dump_midi(str(folder / f"piece{i:02d}.mid"))
    return folder


def make_dataset(name: str, folder: Path):
    from engine.data.ingest import import_sources
    from engine.data.store import Dataset

    ds = Dataset.create(name)
    import_sources(ds, [str(folder)])
    return Dataset.open(name)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def base(tiny_model_dir, tmp_path):
    """A copy of the tiny trained model (tests may change it)."""
    out = tmp_path / "base"
    shutil.copytree(tiny_model_dir, out)
    return out


@pytest.fixture
def signature(home, tmp_path):
    return make_dataset("sig", write_pieces(tmp_path / "sig", 6, True))


def logits(model, seq=(1, 5, 9, 13, 17, 21)):
    return np.array(model(mx.array([list(seq)])))


def test_lora_round_makes_a_model_that_loads_by_name_and_tag(home, base, signature):
    from engine.atomic import sha256_file
    from engine.symbolic import score_api as api

    base_hash = sha256_file(base / "model.safetensors")
    got = finetune_score("sig", name="mine", base=str(base), options=FinetuneOptions(**FAST))
    assert got["status"] == "finished" and got["steps"] == 6 and got["stop_reason"] == "max_steps"
    assert sha256_file(base / "model.safetensors") == base_hash  # the base is left alone

    card = read_card("mine")
    assert card["method"] == "lora" and card["current"] == "runs/round-1/best"
    assert card["rounds"][0]["dataset"] == signature.ident()
    assert card["base"]["sha256"] == base_hash
    best = home / "my-models" / "mine" / "runs" / "round-1" / "best"
    assert sorted(p.name for p in best.iterdir()) == [
        "adapter_config.json",
        "adapters.safetensors",
        "config.json",
        "tokenizer",
        "trainer_state.json",
    ]
    config = json.loads((best / "adapter_config.json").read_text())
    assert config["fine_tune_type"] == "lora" and config["lora_parameters"]["rank"] == 8
    assert config["lora_parameters"]["scale"] == 2.0  # alpha 16 / rank 8

    # Loaded by name: base + adapter, fused; equal to the adapter applied unfused.
    loaded = api.ScoreModel.load("mine")
    unfused, _ = load_model(base)
    lora.load(unfused, best)
    assert np.abs(logits(loaded.model) - logits(unfused)).max() < 1e-5
    plain, _ = load_model(base)
    assert np.abs(logits(loaded.model) - logits(plain)).max() > 1e-4  # it learnt something

    # Every kept checkpoint is a model of its own.
    kept = sorted(p.name for p in (best.parent / "checkpoints").iterdir())
    assert kept == ["step-000003", "step-000006"]
    for tag in ("step-3", "step-6", "latest", "round-1", "best"):
        assert api.resolve_model_path(f"mine@{tag}").is_dir()
    with pytest.raises(ScoreModelError, match=r"no checkpoint 'step-2'.*step-3, step-6$"):
        api.resolve_model_path("mine@step-2")
    with pytest.raises(ScoreModelError, match="unknown checkpoint 'fresh'"):
        api.resolve_model_path("mine@fresh")

    # An adapter whose base changed is refused in one line, not applied to other weights.
    w = mx.load(str(base / "model.safetensors"))
    w = {k: v + 1 for k, v in w.items()}
    mx.save_safetensors(str(base / "model.safetensors"), w)
    with pytest.raises(ScoreModelError, match="LoRA adapter for another version"):
        api.ScoreModel.load("mine")


def test_when_a_shipped_base_moves_on_its_adapters_keep_the_versioned_copy(
    home, tiny_model_dir, signature, tmp_path, monkeypatch
):
    """A LoRA model trained on a shipped base by name (score-base) loads, and trains a next
    round, on the versioned copy that keeps the weights it was trained on (score-base-v1)
    once the name holds new weights."""
    from engine.atomic import sha256_file
    from engine.symbolic import score_api as api

    models = tmp_path / "models"
    for name in ("mybase", "mybase-v1"):
        shutil.copytree(tiny_model_dir, models / name)
    monkeypatch.setattr(api, "MODELS_DIR", models)
    finetune_score("sig", name="mine", base="mybase", options=FinetuneOptions(**FAST))
    before = logits(api.ScoreModel.load("mine").model)
    old = sha256_file(models / "mybase" / "model.safetensors")
    w = mx.load(str(models / "mybase" / "model.safetensors"))
    mx.save_safetensors(
        str(models / "mybase" / "model.safetensors"), {k: v + 1 for k, v in w.items()}
    )
    assert np.array_equal(logits(api.ScoreModel.load("mine").model), before)
    got = finetune_score("sig", name="mine", from_model="mine", options=FinetuneOptions(**FAST))
    assert got["status"] == "finished"
    round2 = home / "my-models" / "mine" / "runs" / "round-2" / "best"
    assert lora.read_config(round2)["base_model"]["sha256"] == old  # trained on mybase-v1
    assert read_card("mine")["base"]["sha256"] == old


def test_an_adapter_of_zeros_changes_nothing_and_fuse_is_exact(base):
    model, _ = load_model(base)
    before = logits(model)
    lora.apply(model, lora.LoraConfig(rank=4, keys=lora.targets("all")))
    assert np.array_equal(logits(model), before)  # lora_b starts at zero
    assert lora.trainable_count(model) == sum(v.size for v in lora.adapter_weights(model).values())
    weights = {k: mx.random.normal(v.shape) * 0.05 for k, v in lora.adapter_weights(model).items()}
    model.load_weights(list(weights.items()), strict=False)
    adapted = logits(model)
    lora.fuse(model)
    assert np.abs(logits(model) - adapted).max() < 1e-5


def test_rank_larger_than_the_layer_and_bad_targets_are_refused(base):
    model, _ = load_model(base)
    with pytest.raises(lora.LoraError, match="rank 100 is larger than the layer"):
        lora.apply(model, lora.LoraConfig(rank=100))
    with pytest.raises(lora.LoraError, match="unknown LoRA target 'qkv'"):
        lora.targets("attention,qkv")


KILLED_RUN = """
import os, signal, sys
import engine
from engine.train.finetune import FinetuneOptions, finetune_score

class Kill:
    def on_train_report(self, info):
        if info["iteration"] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

options = FinetuneOptions(**{opts})
finetune_score("sig", name=sys.argv[3], base=sys.argv[1], options=options, callback=Kill())
"""


def test_a_run_killed_with_kill_9_resumes_to_bit_identical_weights(home, base, signature):
    opts = dict(FAST, max_steps=10, eval_every=4, lora_dropout=0.1, label_smoothing=0.1)
    script = KILLED_RUN.replace("{opts}", repr(opts))
    env = {**os.environ, "DISCO_MUSICA_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(base), "6", "killed"], cwd=ROOT, env=env, timeout=300
    )
    assert done.returncode == -9  # killed at step 6; its last checkpoint is step 4
    run = home / "my-models" / "killed" / "runs" / "round-1"
    assert json.loads((run / "checkpoint" / "trainer_state.json").read_text())["step"] == 4
    assert read_card("killed")["rounds"][0]["status"] == "running"

    with pytest.raises(TrainingError, match="already have a model named 'killed'"):
        finetune_score("sig", name="killed", base=str(base), options=FinetuneOptions(**opts))
    resumed = finetune_score("sig", name="killed", resume=True)
    straight = finetune_score(
        "sig", name="straight", base=str(base), options=FinetuneOptions(**opts)
    )
    assert resumed["steps"] == straight["steps"] == 10
    for sub in ("checkpoint", "best"):
        a = mx.load(str(run / sub / "adapters.safetensors"))
        b = mx.load(
            str(home / "my-models" / "straight" / "runs" / "round-1" / sub / "adapters.safetensors")
        )
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(np.array(a[k]), np.array(b[k])), (sub, k)
    assert read_card("killed")["rounds"][0]["status"] == "finished"


def test_from_continues_on_new_data_as_a_new_round(home, base, signature, tmp_path):
    from engine.data.dataset import ScoreDataset, val_batches
    from engine.symbolic import score_api as api
    from engine.train.trainer import evaluate

    finetune_score("sig", name="mine", base=str(base), options=FinetuneOptions(**FAST))
    plain = make_dataset("plain", write_pieces(tmp_path / "plain", 5, False))
    got = finetune_score("plain", name="mine", from_model="mine", options=FinetuneOptions(**FAST))
    assert got["round"] == 2
    card = read_card("mine")
    assert [r["dataset"] for r in card["rounds"]] == [signature.ident(), plain.ident()]
    assert [r["from"] for r in card["rounds"]] == [None, "mine"]
    assert card["current"] == "runs/round-2/best"
    readme = (home / "my-models" / "mine" / "README.md").read_text()
    assert "| 1 | sig" in readme and "| 2 | plain" in readme

    # Round 2 started from round 1's weights: its first validation is round 1's model scored
    # on round 2's validation windows.
    run2 = home / "my-models" / "mine" / "runs" / "round-2"
    first = next(
        json.loads(line)
        for line in (run2 / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["kind"] == "val"
    )
    corpus = ScoreDataset(run2 / "corpus")
    windows = corpus.val_windows(512, per_piece=4)
    round1 = api.ScoreModel.load("mine@round-1").model
    expected, _ = evaluate(round1, val_batches(windows, corpus.tokenizer.pad_id, 1024))
    assert first["iteration"] == 0 and abs(first["val_loss"] - expected) < 1e-4
    assert not np.array_equal(
        logits(round1), logits(api.ScoreModel.load("mine").model)
    )  # round 2 moved on


def test_full_fine_tune_and_fuse(home, base, signature):
    from engine.symbolic import score_api as api
    from engine.train.finetune import fuse_model

    finetune_score(
        "sig", name="whole", base=str(base), options=FinetuneOptions(**FAST, method="full")
    )
    best = home / "my-models" / "whole" / "runs" / "round-1" / "best"
    assert (best / "model.safetensors").is_file() and not (best / "adapter_config.json").exists()
    with pytest.raises(TrainingError, match="no LoRA adapter to fuse"):
        fuse_model("whole", "whole-fused")

    finetune_score("sig", name="adapted", base=str(base), options=FinetuneOptions(**FAST))
    fuse_model("adapted", "adapted-fused")
    a = api.ScoreModel.load("adapted").model
    b = api.ScoreModel.load("adapted-fused").model
    assert np.abs(logits(a) - logits(b)).max() < 1e-5
    assert read_card("adapted-fused")["fused_from"] == "adapted"


def test_too_little_data_odd_meters_and_names_are_refused(home, base, tmp_path):
    make_dataset("one", write_pieces(tmp_path / "one", 1, True))
    with pytest.raises(TrainingError, match=r"needs at least 2 pieces and 1000 tokens"):
        finetune_score("one", name="x", base=str(base), options=FinetuneOptions(**FAST))
    folder = write_pieces(tmp_path / "mixed", 3, True)
    write_pieces(tmp_path / "mixed" / "odd", 1, True, meter=(7, 8))
    mixed = make_dataset("mixed", folder)
    from engine.symbolic.tokenizer import ScoreTokenizer
    from engine.train.finetune import build_corpus

    tok = ScoreTokenizer.load(base / "tokenizer")
    got = build_corpus(mixed, None, tmp_path / "corpus", tok, style=None, seed=0)
    assert got.pieces == 3 and len(got.skipped) == 1  # the model writes no 7/8
    assert "meter 7/8 is not one the score model writes" in got.skipped[0][1]
    assert not (home / "my-models" / "x").exists()  # the refused run left nothing behind
    for bad in ("", "../up", "score-base", "a b"):
        with pytest.raises(TrainingError):
            finetune_score("mixed", name=bad, base=str(base), options=FinetuneOptions(**FAST))
    with pytest.raises(TrainingError, match="no trained model named 'ghost'"):
        finetune_score("mixed", name="x", from_model="ghost", options=FinetuneOptions(**FAST))


def test_a_full_disk_stops_with_the_last_checkpoint_kept(home, base, signature, monkeypatch):
    import errno

    from engine.train import finetune

    calls = []
    real = finetune.ModelExport.export

    def export(self, folder, model):
        calls.append(folder)
        if len(calls) == 4:  # best at 0, best at 3, checkpoint at 3, then this one
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, folder, model)

    monkeypatch.setattr(finetune.ModelExport, "export", export)
    with pytest.raises(TrainingError, match="the disk is full.*--resume"):
        finetune_score("sig", name="full", base=str(base), options=FinetuneOptions(**FAST))
    run = home / "my-models" / "full" / "runs" / "round-1"
    assert json.loads((run / "checkpoint" / "trainer_state.json").read_text())["step"] == 3
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no half-written folder
    monkeypatch.setattr(finetune.ModelExport, "export", real)
    assert finetune_score("sig", name="full", resume=True)["steps"] == 6


@pytest.mark.parametrize(
    "method,seed,lr",
    [  # (the default run fine-tunes fully in test_full_fine_tune_and_fuse)
        *(pytest.param("full", s, 1e-3, marks=pytest.mark.slow) for s in (0, 1)),
        ("lora", 0, 3e-3),
    ],
)
def test_fine_tuning_moves_generated_pieces_towards_the_data(
    home, base, tmp_path, method, seed, lr
):
    """A dataset with a strong signature (5/4, D Dorian, staccato): 8 pieces generated on the
    same seeds and conditions before and after fine-tuning; the tuned ones are measurably
    nearer the data (engine.train.style), overall and in articulation and note lengths."""
    make_dataset("sig", write_pieces(tmp_path / "sig", 12, True, seed=seed))
    options = FinetuneOptions(
        method=method,
        max_steps=40,
        eval_every=20,
        samples=8,
        sample_bars=4,
        tokens_per_batch=1024,
        learning_rate=lr,
        keep_last=0,
        seed=seed,
    )
    got = finetune_score("sig", name="proof", base=str(base), options=options)
    before, after = got["style"]["base"], got["style"]["tuned"]
    assert len(before["samples"]) == len(after["samples"]) == 8
    assert after["overall"] < before["overall"] - 0.04, (before["overall"], after["overall"])
    for measure in ("articulation", "duration"):
        assert after["distances"][measure] < before["distances"][measure] - 0.1, measure
    report = (home / "my-models" / "proof" / "runs" / "round-1" / "report.md").read_text()
    assert "| **overall** |" in report and "## Style distance at each validation" in report


@pytest.mark.parametrize(
    "options",
    [
        FinetuneOptions(),
        FinetuneOptions(
            method="full",
            preset="balanced",
            max_steps=40,
            learning_rate=3e-4,
            schedule="linear",
            optimizer="lion",
            grad_accumulation=2,
            label_smoothing=0.1,
            tokens_per_batch=2048,
            keep_last=5,
            grad_checkpoint=True,
            transpose=False,
            style="folk",
            seed=7,
        ),
        FinetuneOptions(
            rank=4, alpha=8.0, lora_dropout=0.05, dropout=0.1, targets="attention", lora_layers=2
        ),
    ],
)
def test_the_recorded_command_trains_the_same_round_again(options):
    """A round started from the studio or the API records the `train score` line that asks
    for exactly its options: parsed by the real CLI, it gives them back."""
    import shlex

    from engine.cli import build_parser
    from engine.cli.train_finetune import options_from
    from engine.train.finetune import _command

    line = _command("my-tunes", "mine", "score-base", options, None)
    argv = shlex.split(line)
    assert argv[:3] == ["disco-musica", "train", "score"]
    args = build_parser().parse_args(argv[1:])
    assert args.data == "my-tunes" and args.name == "mine" and args.base == "score-base"
    assert options_from(args) == options
