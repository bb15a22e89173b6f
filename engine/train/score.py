"""Train the symbolic score model on a built corpus and export it as a model folder.

``disco-musica train score --corpus music21 --preset base`` runs :func:`train_score`.
A model folder (what ``engine.symbolic.score_api.load`` reads) holds ``config.json``,
``model.safetensors`` (float16), ``tokenizer/`` and ``training.json`` (how it was made).
"""

from __future__ import annotations

import json
import platform
import shlex
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import mlx.core as mx

from engine import __version__
from engine.data.dataset import ScoreDataset, TrainStream, val_batches
from engine.errors import UserError, one_line
from engine.models import build_model, load_model, save_model, write_text_atomic
from engine.seeds import derive_seed
from engine.train.trainer import JsonlCallback, PrintCallback, TrainConfig, train

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
    # Continues a trained base model (``--init-from score-base``): the same architecture, a
    # fresh optimizer and a gentler schedule, and other random windows than the first run
    # drew (data seed + 1). The peak is 2x the learning rate score-base ended at (1e-4): a
    # fresh AdamW moves every weight by about the learning rate from its first steps, and
    # a peak of 6e-4 threw score-base out of its minimum (80 steps: validation 0.998 ->
    # 1.025, train loss 1.15 at step 50 against 1.04 at the end of its own run).
    "base-continue": {
        "model": {
            "hidden_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "intermediate_size": 768,
            "max_position_embeddings": 1024,
        },
        "train": {
            "learning_rate": 2e-4,
            "min_learning_rate": 2e-5,
            "warmup_steps": 20,
            "max_steps": 900,
            "eval_every": 150,
            "checkpoint_every": 50,
            "early_stop_patience": 4,
            "max_minutes": 80,
        },
        "tokens_per_batch": 8192,
        "val_windows_per_style": 40,
        "data_seed_offset": 1,
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
    # A tiny model's continuation (tests of --init-from): tiny's architecture, base-continue's
    # kind of schedule.
    "tiny-continue": {
        "model": {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 128,
            "max_position_embeddings": 512,
        },
        "train": {
            "learning_rate": 1e-3,
            "min_learning_rate": 1e-4,
            "warmup_steps": 4,
            "max_steps": 20,
            "eval_every": 10,
            "checkpoint_every": 10,
            "early_stop_patience": 3,
        },
        "tokens_per_batch": 2048,
        "val_windows_per_style": 20,
        "data_seed_offset": 1,
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
    init_from: str | Path | None = None,
) -> dict:
    """Train a score model on ``corpus_dir``; write checkpoints and the final model folder.

    The final model goes to ``out_dir/model`` (best validation loss, float16 weights).
    ``init_from`` (a model name or folder) starts from that model's weights instead of a
    random initialisation, with a fresh optimizer and the preset's schedule; it is validated
    before the first step, so the new model is never worse on the validation windows than
    the one it started from. The model must have the preset's architecture and the corpus's
    vocabulary. A resumed run keeps the model it was started from (in its checkpoint).
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
    parent = _run_parent(out_dir) if resume else None
    if init_from is not None:
        given = check_init_from(init_from, tok, model_cfg, preset)
        if resume and (parent is None or parent["sha256"] != given["sha256"]):
            was = f"from {parent['model']}" if parent else "from scratch"
            raise TrainingError(
                f"the run in {out_dir} was started {was}, not from {given['model']}; "
                "leave out --init-from to resume it"
            )
        parent = parent or given
    cfg = TrainConfig(**{**p["train"], "seed": seed})
    if max_steps is not None:
        cfg.max_steps = max_steps
    if max_minutes is not None:
        cfg.max_minutes = max_minutes
    mx.random.seed(seed)
    if parent is not None and not resume:
        model, _ = load_model(parent["path"])  # float32 copy of its weights
    else:
        model = build_model(model_cfg)  # (a resumed run loads its checkpoint's weights)
    data_seed = derive_seed(seed, "data", p.get("data_seed_offset", 0))
    stream = TrainStream(ds, max_tokens=ctx, tokens_per_batch=p["tokens_per_batch"], seed=data_seed)
    # Validation during training: the first windows of each style's held-out pieces (the
    # full held-out set is scored by `disco-musica eval score`).
    windows = validation_windows(ds, preset)

    def val():
        return val_batches(windows, tok.pad_id, p["tokens_per_batch"])

    out_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [JsonlCallback(out_dir / "log.jsonl")]
    if not quiet:
        callbacks.append(PrintCallback())
    if callback is not None:
        callbacks.append(callback)
    t0 = time.time()
    summary = train(
        model,
        cfg,
        stream,
        val,
        out_dir,
        callback=_Fanout(callbacks),
        resume=resume,
        eval_first=parent is not None,
        extra_state={"init_from": parent} if parent is not None else None,
    )
    wall = time.time() - t0
    best, best_cfg = load_model(out_dir / "best")
    final = out_dir / "model"
    tmp = out_dir / "model.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp, best, best_cfg, dtype=mx.float16)
    tok.save(tmp / "tokenizer")
    record = {
        "command": f"disco-musica train score --corpus {_corpus_arg(corpus_dir)} --preset {preset}"
        + (f" --init-from {parent['model']}" if parent else "")
        + (f" --seed {seed}" if seed else "")
        + (f" --max-steps {max_steps}" if max_steps is not None else "")
        + (f" --max-minutes {max_minutes:g}" if max_minutes is not None else "")
        + f" --out {shlex.quote(str(out_dir))}",
        "preset": preset,
        "model_config": model_cfg,
        "train_config": asdict(cfg),
        "data_seed": data_seed,
        "summary": summary,
        **_lineage(parent, summary, out_dir / "log.jsonl"),
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


def validation_windows(ds: ScoreDataset, preset: str) -> list[tuple[str, list[int]]]:
    """The (style, tokens) windows a run of ``preset`` validates on: the first window of
    each held-out piece, at most the preset's number per style."""
    p = PRESETS[preset]
    ctx = p["model"]["max_position_embeddings"]
    return _per_style(ds.val_windows(ctx, per_piece=1), p["val_windows_per_style"])


def check_init_from(init_from: str | Path, tok, model_cfg: dict, preset: str) -> dict:
    """What ``init_from`` (a model name or folder) is, checked to fit ``model_cfg`` and the
    corpus tokenizer ``tok``; raise `TrainingError` (one line) when it does not.

    Returns ``{"model", "path", "sha256", "preset", "steps", "best_val", "tokens",
    "token_slots", "token_slots_estimated"}`` (what training.json records of the parent).
    """
    from engine.atomic import sha256_file
    from engine.models.score import ModelArgs
    from engine.symbolic import score_api as api
    from engine.symbolic.tokenizer import ScoreTokenizer

    try:
        path = api.resolve_model_path(init_from)
    except api.ScoreModelError as e:
        raise TrainingError(f"--init-from: {e}") from None
    shown = path.name if path.parent.resolve() == api.MODELS_DIR.resolve() else str(path)
    where = f"--init-from {shown} cannot start preset {preset!r} on this corpus"
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise TrainingError(f"{where}: its config.json is unreadable ({e})") from None
    want, have = asdict(ModelArgs.from_dict(model_cfg)), asdict(ModelArgs.from_dict(config))
    diff = [f"{k} {have[k]} (the preset's: {want[k]})" for k in want if have[k] != want[k]]
    if diff:
        fits = [n for n, q in PRESETS.items() if _same_arch(q, have, len(tok))]
        hint = f"use --preset {' or '.join(fits)}" if fits else "no preset has its shape"
        raise TrainingError(f"{where}: it has {', '.join(diff)}; {hint}")
    try:
        parent_tok = ScoreTokenizer.load(path / "tokenizer")
    except Exception as e:  # noqa: BLE001  (any unreadable tokenizer: one line, not a trace)
        raise TrainingError(f"{where}: its tokenizer is unreadable ({one_line(e)})") from None
    if parent_tok.tokens != tok.tokens:
        raise TrainingError(
            f"{where}: its vocabulary differs from the corpus tokenizer's "
            "(made by another version of Disco-Musica); rebuild the corpus with that version "
            "or train from scratch"
        )
    record = {}
    if (path / "training.json").is_file():
        try:
            record = json.loads((path / "training.json").read_text())
        except ValueError:
            record = {}
    steps = (record.get("summary") or {}).get("step")
    lineage = record.get("tokens_seen") or {}
    slots, tokens, estimated = lineage.get("total_token_slots"), lineage.get("total_tokens"), False
    if slots is None and isinstance(steps, int) and record.get("preset") in PRESETS:
        # Older records do not count tokens: steps x the preset's batch is an upper bound
        # (batches of the 384- and 768-token buckets hold slightly fewer slots).
        slots, estimated = steps * PRESETS[record["preset"]]["tokens_per_batch"], True
    return {
        "model": shown,
        "path": str(path.resolve()),
        "sha256": sha256_file(path / "model.safetensors"),
        "preset": record.get("preset"),
        "steps": steps,
        "best_val": (record.get("summary") or {}).get("best_val"),
        "tokens": tokens,
        "token_slots": slots,
        "token_slots_estimated": estimated,
    }


def _same_arch(preset: dict, have: dict, vocab_size: int) -> bool:
    from engine.models.score import ModelArgs

    cfg = {"model_type": "score", "vocab_size": vocab_size, **preset["model"]}
    return asdict(ModelArgs.from_dict(cfg)) == have


def _run_parent(out_dir: Path) -> dict | None:
    """The model a run in ``out_dir`` was started from (its checkpoint says), or None."""
    from engine.train.trainer import CHECKPOINT_DIR, STATE_FILE

    state = out_dir / CHECKPOINT_DIR / STATE_FILE
    if not state.is_file():
        return None
    return (json.loads(state.read_text()).get("extra") or {}).get("init_from")


def _lineage(parent: dict | None, summary: dict, log: Path) -> dict:
    """training.json's ``init_from`` (when warm-started) and ``tokens_seen`` entries."""
    this = {"tokens": summary["tokens"], "token_slots": summary["token_slots"]}
    out: dict = {}
    total_tokens, total_slots = this["tokens"], this["token_slots"]
    if parent is not None:
        start = None
        if log.is_file():
            for line in log.read_text().splitlines():
                r = json.loads(line)
                if r.get("kind") == "val" and r.get("iteration") == 0:
                    start = r["val_loss"]
                    break
        out["init_from"] = {**parent, "val_loss_at_start": start}
        total_tokens = None if parent["tokens"] is None else parent["tokens"] + total_tokens
        total_slots = None if parent["token_slots"] is None else parent["token_slots"] + total_slots
    out["tokens_seen"] = {
        "this_run": this,
        "total_tokens": total_tokens,
        "total_token_slots": total_slots,
        "note": "tokens: target tokens trained on; token slots: batch rows x window length "
        "(padding included); totals include the models this one was started from"
        + (
            " (the parent's slots estimated from its steps)"
            if parent and parent["token_slots_estimated"]
            else ""
        ),
    }
    return out


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
