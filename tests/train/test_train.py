import json
from dataclasses import replace

import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from engine.models import load_model
from engine.models.score import Model
from engine.train.trainer import JsonlCallback, PrintCallback, TrainConfig, evaluate, train

V, L, B = 16, 24, 8
PAD = 0
STYLES = {"up": 1, "skip": 3}


def make_batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows ``2 + (start + i * stride) % 12`` of random length, padded with 0."""
    inputs = np.full((n, L), PAD, dtype=np.int32)
    lengths = rng.integers(L // 2, L + 1, size=n).astype(np.int32)
    groups = [str(g) for g in rng.choice(list(STYLES), size=n)]
    for b in range(n):
        start = rng.integers(0, 12)
        inputs[b, : lengths[b]] = 2 + (start + np.arange(lengths[b]) * STYLES[groups[b]]) % 12
    return inputs, lengths, groups


class Batches:
    """Deterministic training batches with a resumable position."""

    def __init__(self, seed: int = 0, limit: int | None = None):
        self.seed, self.index, self.limit = seed, 0, limit

    def __iter__(self):
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        if self.limit is not None and self.index >= self.limit:
            raise StopIteration
        inputs, lengths, _ = make_batch(np.random.default_rng([self.seed, self.index]), B)
        self.index += 1
        return inputs, lengths

    def state_dict(self) -> dict:
        return {"index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.index = state["index"]


VAL = [make_batch(np.random.default_rng([99, i]), 16) for i in range(2)]


def val_batches():
    return iter(VAL)


@pytest.fixture
def tiny_model(make_tiny_model):
    """``tiny_model(seed=0)``: a tiny random score model over this file's vocabulary."""

    def build(seed: int = 0) -> Model:
        return make_tiny_model(seed, vocab_size=V)

    return build


CONFIG = TrainConfig(
    batch_size=B,
    learning_rate=3e-3,
    min_learning_rate=3e-4,
    warmup_steps=10,
    max_steps=100,
    eval_every=25,
    checkpoint_every=25,
    report_every=10,
    early_stop_patience=3,
)


class Recorder:
    def __init__(self):
        self.train, self.val = [], []

    def on_train_report(self, info):
        self.train.append(info)

    def on_val_report(self, info):
        self.val.append(info)


def test_training_lowers_val_loss_and_writes_checkpoints(tmp_path, tiny_model):
    model = tiny_model()
    initial, _ = evaluate(model, val_batches())
    rec = Recorder()
    result = train(model, CONFIG, Batches(), val_batches, tmp_path, callback=rec)

    assert result["step"] == 100 and result["stop_reason"] == "max_steps"
    assert initial > 2.0 and result["best_val"] < 0.5 * initial
    assert [r["iteration"] for r in rec.val] == [25, 50, 75, 100]
    assert [r["iteration"] for r in rec.train] == list(range(10, 101, 10))
    assert rec.train[-1]["train_loss"] < rec.train[0]["train_loss"]
    assert rec.train[0]["learning_rate"] < rec.train[1]["learning_rate"]  # warmup
    assert abs(rec.train[-1]["learning_rate"] - CONFIG.min_learning_rate) < 1e-4  # cosine end
    assert rec.val[-1]["val_loss_by_group"].keys() == {"up", "skip"}
    assert all(r["tokens_per_second"] > 0 and r["peak_memory"] > 0 for r in rec.train)

    # Checkpoint and best model are complete, with no temporary leftovers.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "checkpoint"]
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ]
    state = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 100 and state["data_state"] == {"index": 100}
    assert state["best_val"] == result["best_val"] and state["elapsed_s"] > 0
    assert int(mx.load(str(tmp_path / "checkpoint" / "optimizer.safetensors"))["step"]) == 100
    best, config = load_model(tmp_path / "best")
    assert config["vocab_size"] == V
    assert abs(evaluate(best, val_batches())[0] - result["best_val"]) < 1e-5


def test_resume_continues_like_an_uninterrupted_run(tmp_path, tiny_model):
    config = replace(CONFIG, max_steps=40, eval_every=10, checkpoint_every=10)
    straight = tiny_model()
    rec_a = Recorder()
    train(straight, config, Batches(), val_batches, tmp_path / "a", callback=rec_a)

    first = tiny_model()
    result = train(first, config, Batches(limit=20), val_batches, tmp_path / "b")
    assert result["step"] == 20 and result["stop_reason"] == "data_exhausted"

    resumed = tiny_model(seed=123)  # weights come from the checkpoint, not this init
    rec_b = Recorder()
    result = train(
        resumed, config, Batches(), val_batches, tmp_path / "b", callback=rec_b, resume=True
    )
    assert result["step"] == 40
    assert [r["iteration"] for r in rec_b.train] == [30, 40]
    assert [r["iteration"] for r in rec_b.val] == [30, 40]
    for a, b in zip(rec_a.val[2:], rec_b.val, strict=True):
        assert abs(a["val_loss"] - b["val_loss"]) < 1e-5
    for a, b in zip(rec_a.train[2:], rec_b.train, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-5
        assert abs(a["learning_rate"] - b["learning_rate"]) < 1e-9
    wa, wb = dict(tree_flatten(straight.parameters())), dict(tree_flatten(resumed.parameters()))
    for k in wa:
        np.testing.assert_allclose(np.array(wa[k]), np.array(wb[k]), atol=1e-5)


def test_early_stopping_and_time_budget(tmp_path, tiny_model):
    frozen = replace(CONFIG, learning_rate=0.0, min_learning_rate=0.0, eval_every=5)
    result = train(tiny_model(), frozen, Batches(), val_batches, tmp_path / "a")
    # First evaluation sets the best; 3 more without improvement stop the run.
    assert result["stop_reason"] == "early_stop" and result["step"] == 20

    result = train(
        tiny_model(), replace(CONFIG, max_minutes=0.0), Batches(), val_batches, tmp_path / "b"
    )
    assert result["stop_reason"] == "time_budget" and result["step"] == 1
    assert (tmp_path / "b" / "checkpoint" / "trainer_state.json").exists()
    # the weights it stopped with were validated: they are the best, not thrown away
    assert result["best_val"] is not None and (tmp_path / "b" / "best").is_dir()


def test_callbacks(tmp_path, capsys, tiny_model):
    config = replace(CONFIG, max_steps=10, eval_every=10, report_every=5)
    log = tmp_path / "log.jsonl"

    class Both:
        def __init__(self):
            self.cbs = [PrintCallback(), JsonlCallback(log)]

        def on_train_report(self, info):
            for cb in self.cbs:
                cb.on_train_report(info)

        def on_val_report(self, info):
            for cb in self.cbs:
                cb.on_val_report(info)

    train(tiny_model(), config, Batches(), val_batches, tmp_path / "run", callback=Both())
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("iter 5: train loss")
    assert "val loss" in lines[2] and "skip" in lines[2]
    records = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["train", "train", "val"]
    assert records[2]["val_loss_by_group"].keys() == {"up", "skip"}


# ---- warm start (train_score --init-from) on the tiny presets ---------------------------------
class _Interrupt(Exception):
    pass


class _StopAt:
    """Raises at the training report of ``iteration`` (the run keeps its last checkpoint)."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def on_train_report(self, info):
        if info["iteration"] == self.iteration:
            raise _Interrupt

    def on_val_report(self, info):
        pass


def _val_log(run) -> dict[int, float]:
    records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    return {r["iteration"]: r["val_loss"] for r in records if r["kind"] == "val"}


def test_warm_start_begins_from_the_given_weights(small_corpus, tiny_model_dir, tmp_path):
    from engine.atomic import sha256_file
    from engine.data.dataset import ScoreDataset, val_batches
    from engine.train.score import PRESETS, train_score, validation_windows

    record = train_score(
        small_corpus, tmp_path / "run", preset="tiny-continue", init_from=tiny_model_dir, quiet=True
    )
    ds = ScoreDataset(small_corpus)
    windows = validation_windows(ds, "tiny-continue")
    parent, _ = load_model(tiny_model_dir)
    batches = val_batches(
        windows, ds.tokenizer.pad_id, PRESETS["tiny-continue"]["tokens_per_batch"]
    )
    parent_val, _ = evaluate(parent, batches)
    fresh = _val_log(tmp_path / "run")
    # The first validation (before any step) is the parent's, to the bit; a random init
    # would score about ln(vocabulary) = 6.2 nats.
    assert list(fresh) == [0, 10, 20]
    assert fresh[0] == parent_val and parent_val < 4.0
    assert record["summary"]["best_val"] <= parent_val
    info = record["init_from"]
    assert info["sha256"] == sha256_file(tiny_model_dir / "model.safetensors")
    assert info["path"] == str(tiny_model_dir.resolve()) and info["steps"] == 60
    assert info["val_loss_at_start"] == parent_val
    parent_record = json.loads((tiny_model_dir / "training.json").read_text())
    seen = record["tokens_seen"]
    assert seen["this_run"]["tokens"] > 0
    assert (
        seen["total_tokens"]
        == parent_record["tokens_seen"]["total_tokens"] + (seen["this_run"]["tokens"])
    )
    assert record["data_seed"] == 1 and "--init-from" in record["command"]
    assert record["command"].endswith(f" --out {tmp_path / 'run'}")  # where it went, too


@pytest.mark.slow  # 28 s; test_resume_continues_like_an_uninterrupted_run stays
def test_warm_started_run_resumes_exactly(small_corpus, tiny_model_dir, tmp_path):
    from engine.train.score import train_score

    kw = dict(preset="tiny-continue", init_from=tiny_model_dir, quiet=True, max_steps=30)
    straight = train_score(small_corpus, tmp_path / "a", **kw)
    try:
        train_score(small_corpus, tmp_path / "b", callback=_StopAt(20), **kw)
    except _Interrupt:
        pass
    state = json.loads((tmp_path / "b" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 10 and state["extra"]["init_from"]["steps"] == 60
    # Resumed without --init-from: the checkpoint remembers where the run started.
    resumed = train_score(
        small_corpus, tmp_path / "b", preset="tiny-continue", quiet=True, max_steps=30, resume=True
    )
    assert resumed["summary"]["step"] == 30
    a, b = _val_log(tmp_path / "a"), _val_log(tmp_path / "b")
    for it in (10, 20, 30):
        assert abs(a[it] - b[it]) < 1e-5, (it, a[it], b[it])
    assert resumed["init_from"] == straight["init_from"]
    assert resumed["tokens_seen"] == straight["tokens_seen"]
    wa = mx.load(str(tmp_path / "a" / "model" / "model.safetensors"))
    wb = mx.load(str(tmp_path / "b" / "model" / "model.safetensors"))
    for k in wa:
        np.testing.assert_allclose(np.array(wa[k]), np.array(wb[k]), atol=1e-3)


# ---- the trainer's controls (issue 16) ---------------------------------------------------------
class ScaledTask:
    """TokenTask whose loss is multiplied by a per-batch factor (NaN poisons a step)."""

    def __init__(self):
        from engine.train.trainer import TokenTask

        self.inner = TokenTask()

    def arrays(self, batch):
        inputs, lengths, scale = batch
        return (*self.inner.arrays((inputs, lengths)), mx.array(scale, mx.float32))

    def loss(self, model, inputs, lengths, scale):
        loss, ntoks = self.inner.loss(model, inputs, lengths)
        return loss * scale, ntoks

    def slots(self, batch):
        return int(batch[0].size)

    def evaluate(self, model, batches, max_batches=0):
        return evaluate(model, batches, max_batches)


class PoisonedBatches(Batches):
    def __init__(self, poison_at: int):
        super().__init__()
        self.poison_at = poison_at

    def __next__(self):
        index = self.index
        inputs, lengths = super().__next__()
        return inputs, lengths, float("nan") if index == self.poison_at else 1.0


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, tiny_model):
    config = replace(CONFIG, max_steps=20, eval_every=2, checkpoint_every=2)
    ended = []

    class End:
        def on_end(self, summary):
            ended.append(summary)

    result = train(
        tiny_model(), config, PoisonedBatches(5), val_batches, tmp_path, End(), task=ScaledTask()
    )
    assert result["stop_reason"] == "nan_loss" and result["step"] == 6
    assert result["last_good_step"] == 4 and ended == [result]
    state = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 4
    best, _ = load_model(tmp_path / "best")
    assert all(np.isfinite(np.array(v)).all() for _, v in tree_flatten(best.parameters()))


def test_pause_checkpoints_and_waits_and_stop_ends_the_run(tmp_path, tiny_model):
    import threading

    from engine.train.trainer import TrainControl

    control = TrainControl()
    seen = {}

    class Driver:
        def on_train_report(self, info):
            if info["iteration"] == 20:
                control.pause()
            if info["iteration"] == 40:
                control.stop()

        def on_pause(self, info):
            seen["paused_at"] = info["iteration"]
            state = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
            seen["checkpoint_at_pause"] = state["step"]
            threading.Timer(0.2, control.resume).start()

    config = replace(CONFIG, checkpoint_every=1000)
    result = train(
        tiny_model(), config, Batches(), val_batches, tmp_path, Driver(), control=control
    )
    assert seen == {"paused_at": 20, "checkpoint_at_pause": 20}
    assert result["stop_reason"] == "stopped" and result["step"] == 40
    state = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 40


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd", "adafactor", "lion"])
def test_every_optimizer_learns_the_toy_task(tmp_path, tiny_model, name):
    lr = {"sgd": 0.3, "lion": 3e-4}.get(name, 3e-3)
    config = replace(
        CONFIG,
        optimizer=name,
        learning_rate=lr,
        min_learning_rate=lr / 10,
        max_steps=60,
        eval_every=60,
        checkpoint_every=60,
    )
    model = tiny_model()
    initial, _ = evaluate(model, val_batches())
    result = train(model, config, Batches(), val_batches, tmp_path)
    assert result["best_val"] < 0.7 * initial, (name, initial, result["best_val"])


def test_schedules():
    from engine.train.trainer import make_schedule

    base = replace(CONFIG, learning_rate=1.0, min_learning_rate=0.1, warmup_steps=10, max_steps=110)
    for schedule, mid, end in (
        ("cosine", 0.55, 0.1),
        ("linear", 0.55, 0.1),
        ("constant", 1.0, 1.0),
    ):
        lr = make_schedule(replace(base, schedule=schedule))
        assert abs(lr(mx.array(5)).item() - 0.5) < 1e-6  # warm-up
        assert abs(lr(mx.array(60)).item() - mid) < 1e-6, schedule
        assert abs(lr(mx.array(110)).item() - end) < 1e-6, schedule


def test_gradient_accumulation_equals_one_big_batch(tmp_path, tiny_model):
    config = replace(
        CONFIG,
        optimizer="sgd",
        momentum=0.0,
        weight_decay=0.0,
        grad_clip=0.0,
        learning_rate=0.1,
        min_learning_rate=0.1,
        warmup_steps=0,
        max_steps=3,
        eval_every=100,
        checkpoint_every=100,
    )

    class Pairs(Batches):
        def __next__(self):
            a, b = super().__next__(), super().__next__()
            return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])

    small, big = tiny_model(), tiny_model()
    train(small, replace(config, grad_accumulation=2), Batches(), val_batches, tmp_path / "a")
    train(big, config, Pairs(), val_batches, tmp_path / "b")
    wa, wb = dict(tree_flatten(small.parameters())), dict(tree_flatten(big.parameters()))
    for k in wa:
        np.testing.assert_allclose(np.array(wa[k]), np.array(wb[k]), atol=2e-6)


def test_keep_last_prunes_only_its_own_step_folders(tmp_path, tiny_model):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "notes.txt").write_text("mine")
    (tmp_path / "checkpoints" / "step-extra").mkdir()
    config = replace(CONFIG, max_steps=40, eval_every=10, checkpoint_every=10, keep_last=2)
    train(tiny_model(), config, Batches(), val_batches, tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "notes.txt",
        "step-000030",
        "step-000040",
        "step-extra",
    ]
    got, _ = load_model(tmp_path / "checkpoints" / "step-000040")
    final, _ = load_model(tmp_path / "checkpoint")
    pairs = zip(tree_flatten(got.parameters()), tree_flatten(final.parameters()), strict=True)
    for (k, a), (_, b) in pairs:
        assert np.array_equal(np.array(a), np.array(b)), k


def test_min_delta_and_label_smoothing(tmp_path, tiny_model):
    # A min_delta no improvement can reach stops after `patience` evaluations.
    config = replace(CONFIG, eval_every=5, min_delta=100.0)
    result = train(tiny_model(), config, Batches(), val_batches, tmp_path / "a")
    assert result["stop_reason"] == "early_stop" and result["step"] == 20  # best at 5, 3 more
    # Label smoothing changes the training loss, never the validation loss it reports.
    recs = []
    for ls in (0.0, 0.2):
        rec = Recorder()
        cfg = replace(CONFIG, max_steps=10, eval_every=10, report_every=10, label_smoothing=ls)
        train(tiny_model(), cfg, Batches(), val_batches, tmp_path / f"ls{ls}", rec, eval_first=True)
        recs.append(rec)
    assert recs[0].val[0]["val_loss"] == recs[1].val[0]["val_loss"]  # before any step
    assert recs[0].train[0]["train_loss"] != recs[1].train[0]["train_loss"]
