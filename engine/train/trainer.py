"""On-device training in MLX, mlx-lm style: full or LoRA, token models or any other task.

One compiled step (forward, backward, clip, optimizer update) per batch, or gradients summed
over ``grad_accumulation`` batches before one update; a learning-rate schedule (constant,
linear or cosine, after a linear warm-up); periodic validation with early stopping; atomic
checkpoints that a later run resumes exactly (weights, optimizer state, data position,
schedule and step; each step's random stream is seeded from the seed and the step); a NaN
loss stops the run with the last good checkpoint kept.

Layout of ``out_dir``::

    checkpoint/   what `weights` exports + optimizer.safetensors, trainer_state.json
                                                         (the latest state; a resume starts here)
    best/         what `weights` exports                 (lowest validation loss so far)
    checkpoints/step-000400/ ...                         (the last ``keep_last`` checkpoints,
                                                          for picking one for inference)

What a checkpoint's weights are is up to the ``weights`` object (`FullWeights`: the whole
model, ``config.json`` + ``model.safetensors``; `engine.train.finetune` also writes LoRA
adapters). Progress goes to a callback object (see `engine.train.monitor.Callback`): every
method is optional.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import partial, wraps
from pathlib import Path
from typing import Any, Protocol

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from engine import names
from engine.models import save_model, save_safetensors, write_text_atomic
from engine.models.checkpointing import checkpoint_blocks, set_dropout
from engine.seeds import derive_seed

TrainBatch = tuple[np.ndarray, np.ndarray]  # inputs [B, L] int32, lengths [B] int32
ValBatch = tuple[np.ndarray, np.ndarray, list[str]]  # + one group label per row

CHECKPOINT_DIR = "checkpoint"
CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"

OPTIMIZERS = names.OPTIMIZERS
SCHEDULES = names.SCHEDULES


@dataclass
class TrainConfig:
    batch_size: int = 16  # informational: batches come shaped from ``train_batches``
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4  # where cosine and linear decay end
    warmup_steps: int = 200
    max_steps: int = 20000
    schedule: str = "cosine"  # after the warm-up: cosine, linear or constant
    optimizer: str = "adamw"  # adamw, adam, sgd (with momentum), adafactor, lion
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.1  # decoupled (adamw, lion, adafactor) or L2 (sgd); adam has none
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    grad_accumulation: int = 1  # batches whose gradients make one update
    label_smoothing: float = 0.0  # training loss only; validation is plain NLL
    eval_every: int = 250
    eval_batches: int = 0  # 0 = the whole validation set
    early_stop_patience: int = 8  # evaluations without improvement before stopping
    min_delta: float = 0.0  # an improvement must lower the validation loss by more than this
    max_minutes: float | None = None  # stop cleanly (validated, checkpointed) after this long
    checkpoint_every: int = 250
    checkpoint_minutes: float | None = None  # also checkpoint when this long has passed
    keep_last: int = 0  # copies of the last K checkpoints under checkpoints/ (0: none)
    report_every: int = 10
    seed: int = 0
    grad_checkpoint: bool = False  # recompute each block's activations in the backward pass
    dropout: float = 0.0  # residual dropout inside the model's blocks, while training only


class Task(Protocol):
    """What is trained: how a batch becomes arrays, its loss, and the validation score."""

    def arrays(self, batch: Any) -> tuple[mx.array, ...]: ...

    def loss(self, model: nn.Module, *arrays: mx.array) -> tuple[mx.array, mx.array]:
        """(mean loss, weight): the weight (e.g. target tokens) weights the mean."""

    def slots(self, batch: Any) -> int: ...

    def evaluate(
        self, model: nn.Module, batches: Iterable[Any], max_batches: int = 0
    ) -> tuple[float, dict[str, float]]: ...


class Weights(Protocol):
    """How a checkpoint keeps the trained weights: ``export`` writes a folder inference can
    load; ``restore`` puts the trainable weights of such a folder back into the model."""

    def export(self, folder: Path, model: nn.Module) -> None: ...

    def restore(self, folder: Path, model: nn.Module) -> None: ...


class FullWeights:
    """The whole model: ``config.json`` + ``model.safetensors`` (float32)."""

    def __init__(self, model_config: dict, extra: Callable[[Path], None] | None = None):
        self.model_config, self.extra = model_config, extra

    def export(self, folder: Path, model: nn.Module) -> None:
        save_model(folder, model, self.model_config)
        if self.extra is not None:
            self.extra(folder)

    def restore(self, folder: Path, model: nn.Module) -> None:
        weights = model.sanitize(mx.load(str(folder / "model.safetensors")))
        model.load_weights(list(weights.items()), strict=True)


class TrainControl:
    """Stop or pause a run from another thread (the studio's buttons): the trainer looks
    after every step. A stop checkpoints and ends the run (``stop_reason`` "stopped"); a
    pause checkpoints and waits until `resume` or `stop`."""

    def __init__(self):
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait(self) -> None:
        self._running.wait()


class PrintCallback:
    """Prints one line per report."""

    def on_train_report(self, info: dict) -> None:
        print(
            f"iter {info['iteration']}: train loss {info['train_loss']:.4f}, "
            f"lr {info['learning_rate']:.2e}, {info['tokens_per_second']:.0f} tok/s, "
            f"peak mem {info['peak_memory']:.2f} GB",
            flush=True,
        )

    def on_val_report(self, info: dict) -> None:
        groups = ", ".join(f"{k} {v:.4f}" for k, v in sorted(info["val_loss_by_group"].items()))
        print(
            f"iter {info['iteration']}: val loss {info['val_loss']:.4f}"
            + (f" ({groups})" if groups else "")
            + f", {info['val_time_s']:.1f} s",
            flush=True,
        )


class JsonlCallback:
    """Appends every report as one JSON line (with a ``kind`` field) to ``path``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, kind: str, info: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"kind": kind, **info}) + "\n")

    def on_train_report(self, info: dict) -> None:
        self._write("train", info)

    def on_val_report(self, info: dict) -> None:
        self._write("val", info)


def make_schedule(config: TrainConfig) -> Callable[[mx.array], mx.array]:
    """Linear warm-up from 0 to ``learning_rate``, then ``config.schedule``: cosine or linear
    decay to ``min_learning_rate`` at ``max_steps``, or constant."""
    if config.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {config.schedule!r}; one of {', '.join(SCHEDULES)}")
    decay_steps = max(config.max_steps - config.warmup_steps, 1)
    lr, end = config.learning_rate, config.min_learning_rate
    if config.schedule == "cosine":
        main = optim.cosine_decay(lr, decay_steps, end)
    elif config.schedule == "linear":
        main = optim.linear_schedule(lr, end, decay_steps)
    else:
        main = lambda step: mx.array(lr, mx.float32)  # noqa: E731
    if config.warmup_steps <= 0:
        return main
    warmup = optim.linear_schedule(0.0, lr, config.warmup_steps)
    return optim.join_schedules([warmup, main], [config.warmup_steps])


def make_optimizer(config: TrainConfig) -> optim.Optimizer:
    lr, wd = make_schedule(config), config.weight_decay
    name = config.optimizer
    if name == "adamw":
        return optim.AdamW(learning_rate=lr, weight_decay=wd)
    if name == "adam":
        return optim.Adam(learning_rate=lr)
    if name == "sgd":
        return optim.SGD(learning_rate=lr, momentum=config.momentum, weight_decay=wd)
    if name == "adafactor":
        # The schedule sets the step size (not Adafactor's own relative step).
        return optim.Adafactor(
            learning_rate=lr, weight_decay=wd, relative_step=False, scale_parameter=False
        )
    if name == "lion":
        return optim.Lion(learning_rate=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}; one of {', '.join(OPTIMIZERS)}")


def token_nll(
    model: nn.Module, inputs: mx.array, lengths: mx.array, label_smoothing: float = 0.0
) -> tuple[mx.array, mx.array]:
    """Per-row next-token NLL sum and target count: inputs [B, L], lengths [B] -> [B], [B].

    Row b predicts tokens 1..lengths[b]-1 from their prefixes; padding is masked out.
    """
    logits = model(inputs[:, :-1])
    targets = inputs[:, 1:]
    mask = mx.arange(targets.shape[1])[None] < (lengths[:, None] - 1)
    nll = nn.losses.cross_entropy(
        logits.astype(mx.float32), targets, label_smoothing=label_smoothing
    )
    return (nll * mask).sum(axis=1), mask.sum(axis=1)


def loss_fn(
    model: nn.Module, inputs: mx.array, lengths: mx.array, label_smoothing: float = 0.0
) -> tuple[mx.array, mx.array]:
    """Token-weighted mean NLL over the batch, and the number of target tokens."""
    nll, ntoks = token_nll(model, inputs, lengths, label_smoothing)
    ntoks = ntoks.sum()
    return nll.sum() / mx.maximum(ntoks, 1), ntoks


def evaluate(
    model: nn.Module, batches: Iterable[ValBatch], max_batches: int = 0
) -> tuple[float, dict[str, float]]:
    """Token-weighted mean NLL over ``batches``, overall and per group label."""
    nll_sum: dict[str, float] = {}
    tok_sum: dict[str, int] = {}
    for i, (inputs, lengths, groups) in enumerate(batches):
        if max_batches and i >= max_batches:
            break
        nll, ntoks = token_nll(model, mx.array(inputs), mx.array(lengths))
        nll, ntoks = np.array(nll), np.array(ntoks)
        for g, n, t in zip(groups, nll.tolist(), ntoks.tolist(), strict=True):
            nll_sum[g] = nll_sum.get(g, 0.0) + n
            tok_sum[g] = tok_sum.get(g, 0) + t
    total = sum(tok_sum.values())
    if total == 0:
        raise ValueError("The validation set has no target tokens to score")
    by_group = {g: nll_sum[g] / tok_sum[g] for g in nll_sum if tok_sum[g] > 0}
    return sum(nll_sum.values()) / total, by_group


class TokenTask:
    """Next-token prediction on (inputs [B, L], lengths [B]) batches."""

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def arrays(self, batch: TrainBatch) -> tuple[mx.array, ...]:
        inputs, lengths = batch
        return mx.array(inputs, dtype=mx.int32), mx.array(lengths, dtype=mx.int32)

    def loss(self, model: nn.Module, inputs: mx.array, lengths: mx.array):
        return loss_fn(model, inputs, lengths, self.label_smoothing)

    def slots(self, batch: TrainBatch) -> int:
        return int(batch[0].size)

    def evaluate(self, model, batches, max_batches=0):
        return evaluate(model, batches, max_batches)


class NanLoss(RuntimeError):
    """Internal: the loss of a step was not a number."""


def _recomputing(run: Callable[..., dict]) -> Callable[..., dict]:
    """`train` with ``config.dropout`` (the blocks' residual dropout) and
    ``config.grad_checkpoint`` (the blocks recompute their activations) for the run; the
    blocks are as they were afterwards however it ends."""

    @wraps(run)
    def train(model: nn.Module, config: TrainConfig, *args, **kwargs) -> dict:
        rates = set_dropout(model.layers, config.dropout) if config.dropout else None
        undo = checkpoint_blocks(model.layers) if config.grad_checkpoint else None
        try:
            return run(model, config, *args, **kwargs)
        finally:
            if undo is not None:
                undo()
            if rates is not None:
                rates()

    return train


def time_passes(
    model: nn.Module, loss: Callable, batches: Iterable[tuple], checkpoint: bool = False
) -> list[float]:
    """Seconds of one forward-backward pass of ``loss(model, *arrays)`` per tuple of arrays
    in ``batches``, in training mode and recomputing activations when ``checkpoint``, as a
    run will (the gradients are dropped: the weights do not change). For the plans that
    say how long and how much memory a run needs (read `mx.get_peak_memory` after)."""
    grad = nn.value_and_grad(model, loss)
    undo = checkpoint_blocks(model.layers) if checkpoint else None
    was_training = model.training
    model.train()
    times = []
    try:
        for arrays in batches:
            tic = time.perf_counter()
            (value, _), g = grad(model, *arrays)
            mx.eval(value, g)
            times.append(time.perf_counter() - tic)
            del g
    finally:
        model.train(was_training)
        if undo is not None:
            undo()
    return times


@_recomputing
def train(
    model: nn.Module,
    config: TrainConfig,
    train_batches: Iterator[Any],
    val_batches: Callable[[], Iterable[Any]],
    out_dir: Path,
    callback: Any = None,
    resume: bool = False,
    eval_first: bool = False,
    extra_state: dict | None = None,
    *,
    task: Task | None = None,
    weights: Weights | None = None,
    sampler: Callable[[int, nn.Module], dict | None] | None = None,
    control: TrainControl | None = None,
    start_info: dict | None = None,
) -> dict:
    """Train the trainable parameters of ``model`` in place; return a summary dict (step,
    best_val, best_step, stop_reason, elapsed_s, tokens, token_slots, last_good_step).

    ``train_batches`` yields batches for ``task`` (default `TokenTask`: (inputs [B, L] int32,
    lengths [B] int32)); if it also has ``state_dict()``/``load_state_dict()`` its position
    is checkpointed and restored. ``val_batches()`` returns a fresh pass over validation
    batches (for `TokenTask`: inputs, lengths, group labels).
    ``callback`` gets the reports described in `engine.train.monitor.Callback` (any subset).
    ``resume=True`` continues from ``out_dir/checkpoint`` exactly where it stopped: the
    weights, optimizer state, random state, data position and step all come back, so a run
    killed and resumed ends with the same weights as one that was never stopped.
    ``eval_first=True`` (a model that starts from trained weights) validates before the first
    step (iteration 0), so that the starting weights are the best until beaten.
    ``extra_state`` (JSON-able) is kept in every checkpoint's trainer state, for the caller.
    ``weights`` says what a checkpoint holds (default `FullWeights`). ``sampler(step, model)``
    runs after each validation (e.g. generates pieces and measures them) and its dict goes
    to ``on_sample_report``. ``control`` (`TrainControl`) stops or pauses the run.
    ``tokens`` counts the target tokens trained on, ``token_slots`` the batch cells
    (rows x window length, padding included); both carry over a resume.
    A step whose loss is not a number ends the run (``stop_reason`` "nan_loss") without
    writing a checkpoint: the last good one stays.
    ``config.grad_checkpoint`` recomputes the activations of ``model.layers`` in the backward
    pass (`engine.models.checkpointing`): less memory, the same weights, about a third
    slower.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    task = task or TokenTask(config.label_smoothing)
    weights = weights or FullWeights(asdict(model.args))
    accumulate = max(1, int(config.grad_accumulation))
    mx.random.seed(config.seed)
    optimizer = make_optimizer(config)
    optimizer.init(model.trainable_parameters())

    step, best_val, best_step, bad_evals, elapsed_before = 0, math.inf, None, 0, 0.0
    tokens, token_slots = 0, 0
    if resume:
        ts = _load_checkpoint(out_dir, model, optimizer, weights)
        step, elapsed_before = ts["step"], ts["elapsed_s"]
        tokens, token_slots = ts.get("tokens", 0), ts.get("token_slots", 0)
        bad_evals = ts["evals_without_improvement"]
        best_val = math.inf if ts["best_val"] is None else ts["best_val"]
        best_step = ts.get("best_step")
        if ts.get("data_state") is not None and hasattr(train_batches, "load_state_dict"):
            train_batches.load_state_dict(ts["data_state"])

    state = [model.state, optimizer.state, mx.random.state]
    mx.reset_peak_memory()  # the reports' peak is this run's (not the caller's plan or load)
    loss_and_grad = nn.value_and_grad(model, task.loss)

    @partial(mx.compile, inputs=state, outputs=state)
    def train_step(*arrays: mx.array) -> tuple[mx.array, mx.array]:
        (loss, ntoks), grads = loss_and_grad(model, *arrays)
        if config.grad_clip > 0:
            grads, _ = optim.clip_grad_norm(grads, config.grad_clip)
        optimizer.update(model, grads)
        return loss, ntoks

    @partial(mx.compile, inputs=state, outputs=state)
    def grad_step(*arrays: mx.array):
        (loss, ntoks), grads = loss_and_grad(model, *arrays)
        return loss, ntoks, tree_map(lambda g: g * ntoks, grads)

    @partial(mx.compile, inputs=state, outputs=state)
    def update_step(summed, total: mx.array) -> None:
        grads = tree_map(lambda g: g / mx.maximum(total, 1), summed)
        if config.grad_clip > 0:
            grads, _ = optim.clip_grad_norm(grads, config.grad_clip)
        optimizer.update(model, grads)

    def one_step() -> tuple[float, int, int] | None:
        """One update; (mean loss, target tokens, slots), or None when the data ran out."""
        if accumulate == 1:
            batch = next(train_batches, None)
            if batch is None:
                return None
            loss, ntoks = train_step(*task.arrays(batch))
            mx.eval(state, loss, ntoks)
            return loss.item(), ntoks.item(), task.slots(batch)
        summed, total, loss_sum, slots = None, 0, 0.0, 0
        for _ in range(accumulate):
            batch = next(train_batches, None)
            if batch is None:
                return None
            loss, ntoks, g = grad_step(*task.arrays(batch))
            summed = g if summed is None else tree_map(mx.add, summed, g)
            mx.eval(summed, loss, ntoks, mx.random.state)
            total += ntoks.item()
            loss_sum += loss.item() * ntoks.item()
            slots += task.slots(batch)
        update_step(summed, mx.array(total, mx.float32))
        mx.eval(state)
        return loss_sum / max(total, 1), total, slots

    saved_step = step if resume else -1
    last_save_time = time.perf_counter()

    def save_checkpoint() -> None:
        nonlocal saved_step, last_save_time
        if saved_step == step:
            return
        saved_step, last_save_time = step, time.perf_counter()
        trainer_state = {
            "step": step,
            "best_val": None if math.isinf(best_val) else best_val,
            "best_step": best_step,
            "evals_without_improvement": bad_evals,
            "elapsed_s": elapsed(),
            "tokens": tokens,
            "token_slots": token_slots,
            "data_state": (
                train_batches.state_dict() if hasattr(train_batches, "state_dict") else None
            ),
            "train_config": asdict(config),
            **({"extra": extra_state} if extra_state is not None else {}),
        }
        with _atomic_dir(out_dir / CHECKPOINT_DIR) as tmp:
            weights.export(tmp, model)
            save_safetensors(tmp / OPTIMIZER_FILE, dict(tree_flatten(optimizer.state)))
            write_text_atomic(tmp / STATE_FILE, json.dumps(trainer_state, indent=2) + "\n")
        _report(
            callback,
            "on_checkpoint",
            {"iteration": step, "path": str(out_dir / CHECKPOINT_DIR), "kind": "checkpoint"},
        )
        if config.keep_last > 0:
            keep = out_dir / CHECKPOINTS_DIR / f"step-{step:06d}"
            keep.parent.mkdir(exist_ok=True)
            with _atomic_dir(keep) as tmp:
                weights.export(tmp, model)
                write_text_atomic(tmp / STATE_FILE, json.dumps(trainer_state, indent=2) + "\n")
            _prune(out_dir / CHECKPOINTS_DIR, config.keep_last)

    tic = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - tic

    def validate() -> float:
        """Validate at ``step``, keep the best weights, report; return the seconds it took."""
        nonlocal best_val, best_step, bad_evals
        val_tic = time.perf_counter()
        model.eval()
        val_loss, by_group = task.evaluate(model, val_batches(), config.eval_batches)
        is_best = val_loss < best_val - config.min_delta or math.isinf(best_val)
        if is_best:
            best_val, best_step, bad_evals = val_loss, step, 0
            with _atomic_dir(out_dir / BEST_DIR) as tmp:
                weights.export(tmp, model)
                write_text_atomic(
                    tmp / STATE_FILE, json.dumps({"step": step, "val_loss": val_loss}) + "\n"
                )
        else:
            bad_evals += 1
        _report(
            callback,
            "on_val_report",
            {
                "iteration": step,
                "val_loss": val_loss,
                "val_loss_by_group": by_group,
                "best_val_loss": best_val,
                "is_best": is_best,
                "val_time_s": time.perf_counter() - val_tic,
                "elapsed_s": elapsed(),
            },
        )
        if is_best:
            _report(
                callback,
                "on_checkpoint",
                {"iteration": step, "path": str(out_dir / BEST_DIR), "kind": "best"},
            )
        if sampler is not None:
            info = sampler(step, model)
            if info is not None:
                _report(callback, "on_sample_report", {"iteration": step, **info})
        model.train()
        return time.perf_counter() - val_tic

    _report(
        callback,
        "on_start",
        {
            "max_steps": config.max_steps,
            "start_step": step,
            "trainable_parameters": sum(
                v.size for _, v in tree_flatten(model.trainable_parameters())
            ),
            "total_parameters": sum(v.size for _, v in tree_flatten(model.parameters())),
            "out_dir": str(out_dir),
            "config": asdict(config),
            **(start_info or {}),
        },
    )
    if eval_first and step == 0:
        validate()
    model.train()
    stop_reason = "max_steps"
    start_step = step
    losses, ntoks_acc, report_tic = [], 0, time.perf_counter()
    while step < config.max_steps:
        if control is not None:
            if control.paused and not control.stopping:
                save_checkpoint()
                _report(callback, "on_pause", {"iteration": step})
                control.wait()
                report_tic = time.perf_counter()
            if control.stopping:
                stop_reason = "stopped"
                break
        # The random stream of each step (dropout) depends on the seed and the step only,
        # so a resumed run draws what an uninterrupted one would have drawn.
        mx.random.seed(derive_seed(config.seed, "step", step))
        done = one_step()
        if done is None:
            stop_reason = "data_exhausted"
            break
        loss, ntoks, slots = done
        if not math.isfinite(loss):
            stop_reason = "nan_loss"
            step += 1
            break
        step += 1
        losses.append((loss, ntoks))
        ntoks_acc += ntoks
        tokens += ntoks
        token_slots += slots

        if step % config.report_every == 0 or step == config.max_steps:
            dt = time.perf_counter() - report_tic
            total = sum(n for _, n in losses)
            spent = elapsed() - elapsed_before
            _report(
                callback,
                "on_train_report",
                {
                    "iteration": step,
                    "train_loss": sum(loss * n for loss, n in losses) / max(total, 1),
                    "learning_rate": optimizer.learning_rate.item(),
                    "tokens_per_second": ntoks_acc / dt,
                    "peak_memory": mx.get_peak_memory() / 1e9,
                    "elapsed_s": elapsed(),
                    "max_steps": config.max_steps,
                    "eta_s": spent / (step - start_step) * (config.max_steps - step),
                },
            )
            losses, ntoks_acc, report_tic = [], 0, time.perf_counter()

        if step % config.eval_every == 0 or step == config.max_steps:
            report_tic += validate()  # keep eval time out of tokens/s
            if bad_evals >= config.early_stop_patience:
                stop_reason = "early_stop"
                break

        if step % config.checkpoint_every == 0 or (
            config.checkpoint_minutes is not None
            and time.perf_counter() - last_save_time > 60 * config.checkpoint_minutes
        ):
            save_checkpoint()
        if config.max_minutes is not None and time.perf_counter() - tic > 60 * config.max_minutes:
            stop_reason = "time_budget"
            if step % config.eval_every:
                # Validate the weights it stops with, so that the steps since the last
                # validation can still make the best model (they are not thrown away).
                validate()
            break

    if stop_reason != "nan_loss":
        save_checkpoint()
    model.eval()
    summary = {
        "step": step,
        "best_val": None if math.isinf(best_val) else best_val,
        "best_step": best_step,
        "stop_reason": stop_reason,
        "elapsed_s": elapsed(),
        "tokens": tokens,
        "token_slots": token_slots,
        "last_good_step": saved_step if saved_step >= 0 else None,
    }
    _report(callback, "on_end", summary)
    return summary


def _report(callback: Any, method: str, info: dict) -> None:
    fn = getattr(callback, method, None) if callback is not None else None
    if fn is not None:
        fn(info)


def _prune(folder: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` ``step-NNNNNN`` folders in ``folder`` (only those:
    nothing else in it is touched)."""
    steps = sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit()
    )
    for old in steps[:-keep]:
        shutil.rmtree(old)


def _load_checkpoint(
    out_dir: Path, model: nn.Module, optimizer: optim.Optimizer, weights: Weights
) -> dict:
    ckpt = out_dir / CHECKPOINT_DIR
    if not ckpt.exists() and _old(ckpt).exists():  # interrupted between the two renames
        ckpt = _old(ckpt)
    if not (ckpt / STATE_FILE).exists():
        raise FileNotFoundError(f"No checkpoint to resume from in {out_dir}")
    weights.restore(ckpt, model)
    optimizer.state = tree_unflatten(list(mx.load(str(ckpt / OPTIMIZER_FILE)).items()))
    optimizer.init(model.trainable_parameters())  # checks the structure, keeps loaded values
    mx.eval(model.parameters(), optimizer.state)
    return json.loads((ckpt / STATE_FILE).read_text())


def _old(path: Path) -> Path:
    return path.with_name(path.name + ".old")


class _atomic_dir:
    """``with _atomic_dir(final) as tmp:`` fill ``tmp``; on success it replaces ``final``."""

    def __init__(self, final: Path):
        self.final = final

    def __enter__(self) -> Path:
        self.tmp = Path(tempfile.mkdtemp(dir=self.final.parent, prefix=f".{self.final.name}."))
        os.chmod(self.tmp, 0o755)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = _old(self.final)
        if self.final.exists():
            shutil.rmtree(old, ignore_errors=True)
            self.final.rename(old)
        self.tmp.rename(self.final)
        shutil.rmtree(old, ignore_errors=True)
