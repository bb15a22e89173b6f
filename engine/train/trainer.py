"""On-device training of token models in MLX, mlx-lm style.

One compiled step (forward, backward, clip, AdamW update) per batch; a warmup + cosine
learning-rate schedule; periodic validation with early stopping; atomic checkpoints that a
later run resumes exactly.  Progress goes to a callback object as plain dicts.

Layout of ``out_dir``::

    checkpoint/   config.json  model.safetensors  optimizer.safetensors  trainer_state.json
    best/         config.json  model.safetensors            (lowest validation loss so far)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from engine.models import save_model, save_safetensors, write_text_atomic

TrainBatch = tuple[np.ndarray, np.ndarray]  # inputs [B, L] int32, lengths [B] int32
ValBatch = tuple[np.ndarray, np.ndarray, list[str]]  # + one group label per row

CHECKPOINT_DIR = "checkpoint"
BEST_DIR = "best"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"


@dataclass
class TrainConfig:
    batch_size: int = 16  # informational: batches come shaped from ``train_batches``
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    warmup_steps: int = 200
    max_steps: int = 20000
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    eval_every: int = 250
    eval_batches: int = 0  # 0 = the whole validation set
    early_stop_patience: int = 8  # evaluations without improvement before stopping
    max_minutes: float | None = None  # stop cleanly (validated, checkpointed) after this long
    checkpoint_every: int = 250
    report_every: int = 10
    seed: int = 0


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
    """Linear warmup from 0 to ``learning_rate``, then cosine decay to ``min_learning_rate``."""
    decay_steps = max(config.max_steps - config.warmup_steps, 1)
    cosine = optim.cosine_decay(config.learning_rate, decay_steps, config.min_learning_rate)
    if config.warmup_steps <= 0:
        return cosine
    warmup = optim.linear_schedule(0.0, config.learning_rate, config.warmup_steps)
    return optim.join_schedules([warmup, cosine], [config.warmup_steps])


def token_nll(model: nn.Module, inputs: mx.array, lengths: mx.array) -> tuple[mx.array, mx.array]:
    """Per-row next-token NLL sum and target count: inputs [B, L], lengths [B] -> [B], [B].

    Row b predicts tokens 1..lengths[b]-1 from their prefixes; padding is masked out.
    """
    logits = model(inputs[:, :-1])
    targets = inputs[:, 1:]
    mask = mx.arange(targets.shape[1])[None] < (lengths[:, None] - 1)
    nll = nn.losses.cross_entropy(logits.astype(mx.float32), targets) * mask
    return nll.sum(axis=1), mask.sum(axis=1)


def loss_fn(model: nn.Module, inputs: mx.array, lengths: mx.array) -> tuple[mx.array, mx.array]:
    """Token-weighted mean NLL over the batch, and the number of target tokens."""
    nll, ntoks = token_nll(model, inputs, lengths)
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


def train(
    model: nn.Module,
    config: TrainConfig,
    train_batches: Iterator[TrainBatch],
    val_batches: Callable[[], Iterable[ValBatch]],
    out_dir: Path,
    callback: Any = None,
    resume: bool = False,
    eval_first: bool = False,
    extra_state: dict | None = None,
) -> dict:
    """Train ``model`` in place; return a summary dict (step, best_val, stop_reason, elapsed_s,
    tokens, token_slots).

    ``train_batches`` yields (inputs [B, L] int32, lengths [B] int32); if it also has
    ``state_dict()``/``load_state_dict()`` its position is checkpointed and restored.
    ``val_batches()`` returns a fresh pass over (inputs, lengths, group labels).
    ``callback`` gets ``on_train_report(dict)`` and ``on_val_report(dict)``.
    ``resume=True`` continues from ``out_dir/checkpoint`` exactly where it stopped.
    ``eval_first=True`` (a model that starts from trained weights) validates before the first
    step (iteration 0), so that the starting weights are the best until beaten.
    ``extra_state`` (JSON-able) is kept in every checkpoint's trainer state, for the caller.
    ``tokens`` counts the target tokens trained on, ``token_slots`` the batch cells
    (rows x window length, padding included); both carry over a resume.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_config = asdict(model.args)
    mx.random.seed(config.seed)
    optimizer = optim.AdamW(learning_rate=make_schedule(config), weight_decay=config.weight_decay)
    optimizer.init(model.trainable_parameters())

    step, best_val, bad_evals, elapsed_before = 0, math.inf, 0, 0.0
    tokens, token_slots = 0, 0
    if resume:
        ts = _load_checkpoint(out_dir, model, optimizer)
        step, elapsed_before = ts["step"], ts["elapsed_s"]
        tokens, token_slots = ts.get("tokens", 0), ts.get("token_slots", 0)
        bad_evals = ts["evals_without_improvement"]
        best_val = math.inf if ts["best_val"] is None else ts["best_val"]
        if ts.get("data_state") is not None and hasattr(train_batches, "load_state_dict"):
            train_batches.load_state_dict(ts["data_state"])

    state = [model.state, optimizer.state, mx.random.state]
    loss_and_grad = nn.value_and_grad(model, loss_fn)

    @partial(mx.compile, inputs=state, outputs=state)
    def train_step(inputs: mx.array, lengths: mx.array) -> tuple[mx.array, mx.array]:
        (loss, ntoks), grads = loss_and_grad(model, inputs, lengths)
        if config.grad_clip > 0:
            grads, _ = optim.clip_grad_norm(grads, config.grad_clip)
        optimizer.update(model, grads)
        return loss, ntoks

    saved_step = -1

    def save_checkpoint() -> None:
        nonlocal saved_step
        if saved_step == step:
            return
        saved_step = step
        trainer_state = {
            "step": step,
            "best_val": None if math.isinf(best_val) else best_val,
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
            save_model(tmp, model, model_config)
            save_safetensors(tmp / OPTIMIZER_FILE, dict(tree_flatten(optimizer.state)))
            write_text_atomic(tmp / STATE_FILE, json.dumps(trainer_state, indent=2) + "\n")

    tic = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - tic

    def validate() -> float:
        """Validate at ``step``, keep the best weights, report; return the seconds it took."""
        nonlocal best_val, bad_evals
        val_tic = time.perf_counter()
        model.eval()
        val_loss, by_group = evaluate(model, val_batches(), config.eval_batches)
        model.train()
        if val_loss < best_val:
            best_val, bad_evals = val_loss, 0
            with _atomic_dir(out_dir / BEST_DIR) as tmp:
                save_model(tmp, model, model_config)
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
                "val_time_s": time.perf_counter() - val_tic,
                "elapsed_s": elapsed(),
            },
        )
        return time.perf_counter() - val_tic

    if eval_first and step == 0:
        validate()
    model.train()
    stop_reason = "max_steps"
    losses, ntoks_acc, report_tic = [], 0, time.perf_counter()
    while step < config.max_steps:
        batch = next(train_batches, None)
        if batch is None:
            stop_reason = "data_exhausted"
            break
        inputs, lengths = batch
        loss, ntoks = train_step(mx.array(inputs, dtype=mx.int32), mx.array(lengths, mx.int32))
        mx.eval(state, loss, ntoks)
        step += 1
        losses.append((loss.item(), ntoks.item()))
        ntoks_acc += losses[-1][1]
        tokens += losses[-1][1]
        token_slots += int(inputs.size)

        if step % config.report_every == 0 or step == config.max_steps:
            dt = time.perf_counter() - report_tic
            total = sum(n for _, n in losses)
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
                },
            )
            losses, ntoks_acc, report_tic = [], 0, time.perf_counter()

        if step % config.eval_every == 0 or step == config.max_steps:
            report_tic += validate()  # keep eval time out of tokens/s
            if bad_evals >= config.early_stop_patience:
                stop_reason = "early_stop"
                break

        if step % config.checkpoint_every == 0:
            save_checkpoint()
        if config.max_minutes is not None and time.perf_counter() - tic > 60 * config.max_minutes:
            stop_reason = "time_budget"
            if step % config.eval_every:
                # Validate the weights it stops with, so that the steps since the last
                # validation can still make the best model (they are not thrown away).
                validate()
            break

    save_checkpoint()
    model.eval()
    return {
        "step": step,
        "best_val": None if math.isinf(best_val) else best_val,
        "stop_reason": stop_reason,
        "elapsed_s": elapsed(),
        "tokens": tokens,
        "token_slots": token_slots,
    }


def _report(callback: Any, method: str, info: dict) -> None:
    if callback is not None:
        getattr(callback, method)(info)


def _load_checkpoint(out_dir: Path, model: nn.Module, optimizer: optim.Optimizer) -> dict:
    ckpt = out_dir / CHECKPOINT_DIR
    if not ckpt.exists() and _old(ckpt).exists():  # interrupted between the two renames
        ckpt = _old(ckpt)
    if not (ckpt / STATE_FILE).exists():
        raise FileNotFoundError(f"No checkpoint to resume from in {out_dir}")
    weights = model.sanitize(mx.load(str(ckpt / "model.safetensors")))
    model.load_weights(list(weights.items()), strict=True)
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
