"""``disco-musica train musicgen``: fine-tune MusicGen on a dataset of your own audio.

    disco-musica train musicgen --data my-songs --base musicgen-small --out runs/my-musicgen
    disco-musica train musicgen --data my-songs --method full --lr 1e-5 --steps 800
    disco-musica train musicgen --out runs/my-musicgen --data my-songs --resume

The work is `engine.train.musicgen.train_musicgen`; this module turns options into its
arguments, shows the encoding of the audio as a bar and the run on the live panel
(`engine.cli.train_live.LiveDisplay`), and prints where the model went.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli import common
from engine.cli import progress as ui


def add_parser(train_subparsers, command) -> argparse.ArgumentParser:
    """Add ``musicgen`` to the ``train`` subcommands; ``command`` is the CLI's ``register``."""
    p = command(
        train_subparsers,
        "musicgen",
        _cmd_train_musicgen,
        "fine-tune MusicGen on a dataset of your audio (LoRA or full)",
        ("train", "musicgen"),
    )
    p.add_argument("--data", required=True, metavar="DATASET", help="a dataset name or folder")
    p.add_argument(
        "--version",
        metavar="V",
        help="dataset version (default: the current one; a resumed run keeps its own)",
    )
    p.add_argument(
        "--method",
        choices=("lora", "full"),
        default="lora",
        help="lora: small adapters on the decoder (default); full: every decoder weight",
    )
    p.add_argument(
        "--base",
        default="musicgen-small",
        metavar="NAME|DIR",
        help="the MusicGen to start from (default musicgen-small; not a melody model)",
    )
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/musicgen-DATASET)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    g = p.add_argument_group("LoRA")
    g.add_argument("--rank", type=int, default=8, metavar="N", help="adapter rank (default 8)")
    g.add_argument(
        "--alpha", type=float, default=16.0, metavar="A", help="scale alpha/rank (default 16)"
    )
    g.add_argument(
        "--lora-dropout", type=float, default=0.0, metavar="P", help="0..0.99 (default 0)"
    )
    g.add_argument(
        "--lora-layers",
        default="all",
        metavar="N|all",
        help="adapt the last N decoder blocks (default all)",
    )
    g.add_argument(
        "--targets",
        default="all",
        metavar="SPEC",
        help="self_attn, cross_attn, ffn, attention, all, or module names (fc1,"
        "self_attn.q_proj...), comma-separated (default all)",
    )
    g = p.add_argument_group("training")
    g.add_argument(
        "--lr", type=float, metavar="LR", help="peak learning rate (LoRA 2e-4, full 1e-5)"
    )
    g.add_argument("--min-lr", type=float, metavar="LR", help="where the decay ends")
    g.add_argument("--steps", type=int, metavar="N", help="optimizer steps (default 500)")
    g.add_argument("--epochs", type=int, metavar="N", help="stop after N passes over the data")
    g.add_argument("--batch-size", type=int, metavar="N", help="segments per step (default 2)")
    g.add_argument(
        "--grad-accumulation", type=int, metavar="N", help="batches per update (default 1)"
    )
    g.add_argument("--warmup", type=int, metavar="N", help="warm-up steps")
    g.add_argument("--schedule", choices=("cosine", "linear", "constant"), help="after warm-up")
    g.add_argument("--optimizer", choices=("adamw", "adam", "sgd", "adafactor", "lion"))
    g.add_argument("--weight-decay", type=float, metavar="W")
    g.add_argument("--grad-clip", type=float, metavar="C", help="max gradient norm; 0: none")
    g.add_argument("--label-smoothing", type=float, metavar="S", help="0..0.99 (default 0)")
    g.add_argument(
        "--segment",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds of audio per example, up to 30 (default 10)",
    )
    g.add_argument(
        "--codebook-weights",
        metavar="W,...",
        help="loss weight of each codebook, e.g. 2,1,1,1 (default equal)",
    )
    g.add_argument(
        "--caption-dropout",
        type=float,
        default=0.1,
        metavar="P",
        help="share of captions left out while training, for guidance (default 0.1)",
    )
    g.add_argument("--eval-every", type=int, metavar="N", help="validate every N steps")
    g.add_argument("--checkpoint-every", type=int, metavar="N", help="checkpoint every N steps")
    g.add_argument("--keep-last", type=int, metavar="K", help="keep the last K checkpoints")
    g.add_argument("--patience", type=int, metavar="N", help="early stopping: validations")
    g.add_argument("--min-delta", type=float, metavar="D", help="early stopping: improvement")
    g.add_argument("--max-minutes", type=float, metavar="M", help="stop after M minutes")
    g.add_argument(
        "--seed", type=int, default=0, metavar="N", help=f"0..{common.MAX_SEED} (default 0)"
    )
    p.add_argument(
        "--cache-dir", metavar="DIR", help="where audio codes and caption states are cached"
    )
    p.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files")
    return p


def _config(args: argparse.Namespace):
    """The TrainConfig of the options (the method's defaults for those not given)."""
    from engine.train.musicgen import default_config

    checks = [
        ("--steps", args.steps, 1, common.MAX_LIMIT),
        ("--epochs", args.epochs, 1, common.MAX_LIMIT),
        ("--batch-size", args.batch_size, 1, 4096),
        ("--grad-accumulation", args.grad_accumulation, 1, 4096),
        ("--warmup", args.warmup, 0, common.MAX_LIMIT),
        ("--eval-every", args.eval_every, 1, common.MAX_LIMIT),
        ("--checkpoint-every", args.checkpoint_every, 1, common.MAX_LIMIT),
        ("--keep-last", args.keep_last, 0, 10_000),
        ("--patience", args.patience, 1, 10_000),
        ("--lr", args.lr, 1e-9, 1.0),
        ("--min-lr", args.min_lr, 0.0, 1.0),
        ("--weight-decay", args.weight_decay, 0.0, 10.0),
        ("--grad-clip", args.grad_clip, 0.0, 1e6),
        ("--label-smoothing", args.label_smoothing, 0.0, 0.99),
        ("--min-delta", args.min_delta, 0.0, 100.0),
        ("--max-minutes", args.max_minutes, 1 / 60, common.MAX_TRAIN_MINUTES),
    ]
    for name, value, lo, hi in checks:
        if value is not None:
            common.check_range(name, value, lo, hi)
    common.check_seed(args.seed)
    given = {
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "grad_accumulation": args.grad_accumulation,
        "warmup_steps": args.warmup,
        "schedule": args.schedule,
        "optimizer": args.optimizer,
        "learning_rate": args.lr,
        "min_learning_rate": args.min_lr,
        "weight_decay": args.weight_decay,
        "grad_clip": args.grad_clip,
        "label_smoothing": args.label_smoothing,
        "eval_every": args.eval_every,
        "checkpoint_every": args.checkpoint_every,
        "keep_last": args.keep_last,
        "early_stop_patience": args.patience,
        "min_delta": args.min_delta,
        "max_minutes": args.max_minutes,
    }
    cfg = default_config(
        args.method, seed=args.seed, **{k: v for k, v in given.items() if v is not None}
    )
    if args.lr is not None and args.min_lr is None:
        cfg.min_learning_rate = min(cfg.min_learning_rate, args.lr / 10)
    if args.warmup is None:  # a short run warms up over its first tenth at most
        cfg.warmup_steps = min(cfg.warmup_steps, cfg.max_steps // 10)
    if args.epochs is not None and args.steps is None:
        cfg.max_steps = common.MAX_LIMIT  # the epochs end the run
    return cfg


def _lora(args: argparse.Namespace):
    from engine.models.lora import LoraConfig
    from engine.train.musicgen import musicgen_targets

    common.check_range("--rank", args.rank, 1, 4096)
    common.check_range("--alpha", args.alpha, 1e-6, 1e6)
    common.check_range("--lora-dropout", args.lora_dropout, 0.0, 0.99)
    if args.lora_layers == "all":
        layers = -1
    else:
        try:
            layers = int(args.lora_layers)
        except ValueError:
            raise common.CliError(
                f"--lora-layers takes a number of blocks or all, not {args.lora_layers!r}"
            ) from None
        common.check_range("--lora-layers", layers, 1, 10_000)
    return LoraConfig(
        args.rank, args.alpha, args.lora_dropout, musicgen_targets(args.targets), layers
    )


def _out(args: argparse.Namespace) -> Path:
    from engine.record import protected_reason
    from engine.train.trainer import CHECKPOINT_DIR

    name = Path(str(args.data).rstrip("/")).name or "dataset"
    out = Path(args.out).expanduser() if args.out else common.DEFAULT_RUNS_DIR / f"musicgen-{name}"
    if args.resume and not (out / CHECKPOINT_DIR).is_dir():
        raise common.CliError(f"{out} has no checkpoint to resume; leave out --resume to start")
    if not args.resume and (out / CHECKPOINT_DIR).is_dir():
        raise common.CliError(
            f"{out} already holds a training run; add --resume to continue it or choose "
            "another --out"
        )
    why = protected_reason(out)
    if why:
        raise common.CliError(
            f"--out {out} {why}; give a new folder for the run, e.g. {out / 'run'}"
        )
    run_files = {
        CHECKPOINT_DIR,
        "best",
        "checkpoints",
        "model",
        ".model.partial",
        "metrics.jsonl",
        "tensorboard",
    }
    if out.exists() and (
        not out.is_dir()
        or {p.name for p in out.iterdir() if not p.name.startswith(".")} - run_files
    ):
        raise common.CliError(
            f"{out} holds files that are not a training run's; choose another --out"
        )
    return out


def _cmd_train_musicgen(args: argparse.Namespace) -> int:
    from engine.train import monitor
    from engine.train import musicgen as mt

    out = _out(args)
    cfg = _config(args)
    lora = _lora(args) if args.method == "lora" else None
    if not 0 <= args.caption_dropout < 1:
        raise common.CliError(f"--caption-dropout must be 0..0.99, not {args.caption_dropout:g}")
    mt.check_segment(args.segment)
    cache = Path(args.cache_dir).expanduser() if args.cache_dir else None
    if not args.resume:  # encode the audio with a bar first; the run then finds it cached
        base = mt.resolve_base(args.base)
        with ui.FileProgress("Encoding audio") as bar:
            data = mt.prepare(
                args.data,
                args.version,
                base,
                cache,
                segment_s=args.segment,
                seed=cfg.seed,
                progress=lambda e: bar(e) if e.stage == "audio codes" else None,
            )
        _say_data(data, args.segment)
    from engine.cli.train_live import LiveDisplay

    with LiveDisplay(ui.make_console(), f"Fine-tuning {args.base} ({args.method})") as live:
        record = mt.train_musicgen(
            args.data,
            out,
            base=args.base,
            method=args.method,
            lora=lora,
            config=cfg,
            version=args.version,
            segment_s=args.segment,
            cache_dir=cache,
            codebook_weights=args.codebook_weights,
            cond_dropout=args.caption_dropout,
            epochs=args.epochs,
            resume=args.resume,
            callback=live,
            tensorboard=not args.no_tensorboard,
        )
    s = record["summary"]
    best = f"best validation loss {s['best_val']:.4f}, " if s["best_val"] is not None else ""
    why = monitor.STOP_REASONS.get(s["stop_reason"], s["stop_reason"])
    print(f"model: {out / mt.MODEL_DIR} ({best}{s['step']} steps, stopped: {why})")
    print(f"try it: {common.PROG} generate --model {common.quote_arg(str(out / mt.MODEL_DIR))}")
    return 0


def _say_data(data, segment_s: float) -> None:
    where = {
        "validation": "the validation split",
        "held out": "songs held out",
        "train": "training segments (no validation split, one song)",
    }[data.val_from]
    line = (
        f"{common.plural(data.items, 'item')}, {data.audio_s / 60:.1f} min of audio: "
        f"{len(data.train)} training segments of {segment_s:g} s, {len(data.val)} validating "
        f"({where}), {common.plural(len(data.texts), 'caption')}"
    )
    if data.too_short:
        line += f"; {common.plural(len(data.too_short), 'item')} too short, left out"
    print(line)
