"""Train the symbolic score model on a built corpus and export it as a model folder.

``disco-musica train score --corpus music21 --preset base`` runs :func:`train_score`.
A model folder (what ``engine.score_api.load`` reads) holds ``config.json``,
``model.safetensors`` (float16), ``tokenizer/`` and ``training.json`` (how it was made).
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import mlx.core as mx

from engine import __version__
from engine.data.dataset import ScoreDataset, TrainStream, val_batches
from engine.errors import UserError
from engine.models import build_model, load_model, save_model, write_text_atomic
from engine.train import JsonlCallback, PrintCallback, TrainConfig, train

PRESETS: dict[str, dict] = {
    # ~3.4 M parameters, 7 MB in float16; trained on a 2-core CPU in about 75 minutes.
    # Four wide heads rather than eight narrow ones: on a CPU the attention softmax over a
    # 1,024-token window dominates a training step, and its cost grows with the head count.
    "base": {
        "model": {
            "hidden_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "intermediate_size": 768,
            "max_position_embeddings": 1024,
        },
        "train": {
            "learning_rate": 1.5e-3,
            "min_learning_rate": 1e-4,
            "warmup_steps": 60,
            "max_steps": 800,
            "eval_every": 200,
            "checkpoint_every": 50,
            "early_stop_patience": 4,
            "max_minutes": 75,
        },
        "tokens_per_batch": 8192,
        "val_windows_per_style": 40,
    },
    # For tests and smoke runs: trains in seconds.
    "tiny": {
        "model": {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 128,
            "max_position_embeddings": 512,
        },
        "train": {
            "learning_rate": 3e-3,
            "min_learning_rate": 3e-4,
            "warmup_steps": 10,
            "max_steps": 60,
            "eval_every": 30,
            "checkpoint_every": 30,
            "early_stop_patience": 3,
        },
        "tokens_per_batch": 2048,
        "val_windows_per_style": 20,
    },
}


class TrainingError(UserError, RuntimeError):
    """A user-facing problem with a training request."""


def train_score(
    corpus_dir: str | Path,
    out_dir: str | Path,
    *,
    preset: str = "base",
    max_steps: int | None = None,
    max_minutes: float | None = None,
    resume: bool = False,
    seed: int = 0,
    quiet: bool = False,
    callback=None,
) -> dict:
    """Train a score model on ``corpus_dir``; write checkpoints and the final model folder.

    The final model goes to ``out_dir/model`` (best validation loss, float16 weights).
    ``callback`` (optional) also receives the training and validation reports
    (``on_train_report(dict)``, ``on_val_report(dict)``), e.g. to drive a progress display.
    """
    if preset not in PRESETS:
        raise TrainingError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    out_dir = Path(out_dir)
    ds = ScoreDataset(corpus_dir)
    if not ds.train or not ds.val:
        raise TrainingError(f"{corpus_dir} has no training or no validation pieces")
    tok = ds.tokenizer
    model_cfg = {"model_type": "score", "vocab_size": len(tok), **p["model"]}
    ctx = model_cfg["max_position_embeddings"]
    cfg = TrainConfig(**{**p["train"], "seed": seed})
    if max_steps is not None:
        cfg.max_steps = max_steps
    if max_minutes is not None:
        cfg.max_minutes = max_minutes
    mx.random.seed(seed)
    model = build_model(model_cfg)
    stream = TrainStream(ds, max_tokens=ctx, tokens_per_batch=p["tokens_per_batch"], seed=seed)
    # Validation during training: the first windows of each style's held-out pieces (the
    # full held-out set is scored by `disco-musica eval score`).
    windows = _per_style(ds.val_windows(ctx, per_piece=1), p["val_windows_per_style"])

    def val():
        return val_batches(windows, tok.pad_id, p["tokens_per_batch"])

    out_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [JsonlCallback(out_dir / "log.jsonl")]
    if not quiet:
        callbacks.append(PrintCallback())
    if callback is not None:
        callbacks.append(callback)
    t0 = time.time()
    summary = train(model, cfg, stream, val, out_dir, callback=_Fanout(callbacks), resume=resume)
    wall = time.time() - t0
    best, best_cfg = load_model(out_dir / "best")
    final = out_dir / "model"
    tmp = out_dir / "model.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp, best, best_cfg, dtype=mx.float16)
    tok.save(tmp / "tokenizer")
    record = {
        "command": f"disco-musica train score --corpus {_corpus_arg(corpus_dir)} --preset {preset}"
        + (f" --seed {seed}" if seed else ""),
        "preset": preset,
        "model_config": model_cfg,
        "train_config": asdict(cfg),
        "summary": summary,
        "wall_time_s_this_run": wall,
        "corpus": json.loads((Path(corpus_dir) / "summary.json").read_text()),
        "val_pieces": len(ds.val),
        "val_windows": len(windows),
        "machine": f"{platform.system()} {platform.machine()}, {_cpu_count()} CPU cores",
        "disco_musica_version": __version__,
        "mlx_version": mx.__version__,
    }
    write_text_atomic(tmp / "training.json", json.dumps(record, indent=1))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return record


def _corpus_arg(corpus_dir: str | Path) -> str:
    """How the CLI names this corpus: ``music21`` for the default folder, else its path."""
    default = Path("data") / "music21"
    return "music21" if Path(corpus_dir).resolve() == default.resolve() else str(corpus_dir)


def _per_style(windows: list[tuple[str, list[int]]], n: int) -> list[tuple[str, list[int]]]:
    out, seen = [], {}
    for style, seq in windows:
        if seen.get(style, 0) < n:
            seen[style] = seen.get(style, 0) + 1
            out.append((style, seq))
    return out


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


class _Fanout:
    def __init__(self, callbacks):
        self.callbacks = callbacks

    def on_train_report(self, info: dict) -> None:
        for c in self.callbacks:
            c.on_train_report(info)

    def on_val_report(self, info: dict) -> None:
        for c in self.callbacks:
            c.on_val_report(info)
