"""``disco-musica train musicgen``: fine-tune MusicGen on a dataset of your own audio.

    disco-musica train musicgen --data my-songs --name my-sound --preset balanced
    disco-musica train musicgen --data new-songs --from my-sound        (a new round of it)
    disco-musica train musicgen --name my-sound --resume                (an unfinished round)
    disco-musica train musicgen --data my-songs --base musicgen-small --out runs/my-musicgen
    disco-musica train musicgen --data my-songs --method full --lr 1e-5 --max-steps 800

With ``--name`` (or ``--from``) the model is one of the user's, in rounds
(`engine.train.musicgen.finetune_musicgen`), used as ``generate --model NAME``; without,
a run folder (``--out``, `engine.train.musicgen.train_musicgen`) whose ``model/`` is used
as ``generate --model FOLDER``. This module turns options into arguments, shows the
encoding of the audio as a bar, prints the memory and time the run needs (measured on a few
steps) and the run on the live panel (`engine.cli.train_live.LiveDisplay`), and says where
the model went.

``--samples N`` generates N clips at each validation (and before the first step, for the
base) to measure how close to the data the model sounds
(`engine.train.musicgen.AudioStyleSampler`). It is 0 by default: a clip costs one decoding
step of the whole decoder per frame (50 a second of audio, twice over for guidance), which on
a CPU is seconds of work per second of clip, at every validation; the plan printed before
the first step includes their time when asked for.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine import names
from engine.cli import common
from engine.cli import progress as ui

# The presets' names and the clips' default length (engine.train.musicgen, which imports mlx:
# kept here so that --help stays fast; tests check that they agree).
PRESETS = names.FINETUNE_PRESETS
DEFAULT_SAMPLE_S = names.MUSICGEN_SAMPLE_S
MAX = common.MAX_LIMIT


def add_parser(train_subparsers, command) -> argparse.ArgumentParser:
    """Add ``musicgen`` to the ``train`` subcommands; ``command`` is the CLI's ``register``."""
    p = command(
        train_subparsers,
        "musicgen",
        _cmd_train_musicgen,
        "fine-tune MusicGen on a dataset of your audio (LoRA or full)",
        ("train", "musicgen"),
    )
    p.add_argument("--data", metavar="DATASET", help="a dataset name or folder")
    p.add_argument(
        "--version",
        metavar="V",
        help="dataset version (default: the current one; a resumed run keeps its own)",
    )
    p.add_argument(
        "--method",
        choices=("lora", "full"),
        help="lora: small adapters on the decoder (default; with --from: its method); full: "
        "every decoder weight",
    )
    p.add_argument(
        "--base",
        metavar="NAME|DIR",
        help="the MusicGen to start from (default musicgen-small, with --from its base; not "
        "a melody model)",
    )
    p.add_argument(
        "--name",
        metavar="NAME",
        help="your model's name: kept with your models, used as generate --model NAME",
    )
    p.add_argument(
        "--from",
        dest="from_model",
        metavar="MODEL",
        help="start from one of your MusicGen models (NAME, NAME@step-N...) or a fine-tune "
        "folder: with its own name, a new round of it on new data",
    )
    p.add_argument(
        "--out", metavar="DIR", help="without --name: run folder (default runs/musicgen-DATASET)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out, or the unfinished round of --name, exactly",
    )
    p.add_argument(
        "--preset",
        choices=PRESETS,
        help="quick (default with --name), balanced or thorough: steps, learning rate, batch, "
        "segment length and rank; the options below override it",
    )
    g = p.add_argument_group("LoRA")
    g.add_argument(
        "--rank",
        type=int,
        metavar="N",
        help="adapter rank, 1..4096 (default 8, or the preset's: 8, 16, 32)",
    )
    g.add_argument(
        "--alpha", type=float, metavar="A", help="scale alpha/rank, more than 0 (default 2 x rank)"
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
        "--lr",
        type=float,
        metavar="LR",
        help="peak learning rate, more than 0, at most 1 (default LoRA 2e-4, full 1e-5, or the "
        "preset's)",
    )
    g.add_argument(
        "--min-lr", type=float, metavar="LR", help="where the decay ends, 0..1 (default lr/10)"
    )
    g.add_argument(
        "--max-steps",
        type=int,
        metavar="N",
        help=f"optimizer steps, 1..{MAX} (default 500, or the preset's)",
    )
    g.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help=f"stop after N passes over the data, 1..{MAX} (default: --max-steps)",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="segments per step, 1..4096 (default 2, or the preset's)",
    )
    g.add_argument(
        "--accumulate", type=int, metavar="N", help="batches per update, 1..4096 (default 1)"
    )
    g.add_argument(
        "--warmup",
        type=int,
        metavar="N",
        help=f"warm-up steps, 0..{MAX} (default LoRA 20, full 50, at most a tenth of the steps)",
    )
    g.add_argument("--schedule", choices=("cosine", "linear", "constant"), help="after warm-up")
    g.add_argument("--optimizer", choices=("adamw", "adam", "sgd", "adafactor", "lion"))
    g.add_argument(
        "--weight-decay", type=float, metavar="W", help="0..10 (default LoRA 0, full 0.01)"
    )
    g.add_argument(
        "--grad-clip",
        type=float,
        metavar="C",
        help="max gradient norm, 0 or more; 0: none (default 1)",
    )
    g.add_argument("--label-smoothing", type=float, metavar="S", help="0..0.99 (default 0)")
    g.add_argument(
        "--dropout",
        type=float,
        metavar="P",
        help="residual dropout inside the decoder while it trains, 0..0.99 (default 0)",
    )
    g.add_argument(
        "--grad-checkpoint",
        action="store_true",
        default=None,
        help="recompute activations in the backward pass: less memory, about a third slower",
    )
    g.add_argument(
        "--segment",
        type=float,
        metavar="S",
        help="seconds of audio per example, more than 0, at most 30 (default 10, or the "
        "preset's: 10, 15, 30)",
    )
    g.add_argument(
        "--codebook-weights",
        metavar="W,...",
        help="loss weight of each codebook, e.g. 2,1,1,1 (default equal)",
    )
    g.add_argument(
        "--caption-dropout",
        type=float,
        metavar="P",
        help="share of captions left out while training, for guidance, 0..0.99 (default 0.1)",
    )
    g.add_argument(
        "--eval-every",
        type=int,
        metavar="N",
        help=f"validate every N steps, 1..{MAX} (default 50, or the preset's)",
    )
    g.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help=f"checkpoint every N steps, 1..{MAX} (default 50, or --eval-every's with a preset)",
    )
    g.add_argument(
        "--keep",
        type=int,
        metavar="K",
        help="keep the last K checkpoints, 0..10000 (default 0, with a preset 3)",
    )
    g.add_argument(
        "--patience",
        type=int,
        metavar="N",
        help="early stopping: validations without improvement, 1..10000 (default 5, or the "
        "preset's)",
    )
    g.add_argument(
        "--min-delta",
        type=float,
        metavar="D",
        help="early stopping: least improvement, 0..100 (default 0)",
    )
    g.add_argument(
        "--max-minutes",
        type=float,
        metavar="M",
        help="stop after M minutes, more than 0 (default: no limit)",
    )
    g.add_argument(
        "--seed", type=int, default=0, metavar="N", help=f"0..{common.MAX_SEED} (default 0)"
    )
    g = p.add_argument_group("does it sound like your audio?")
    g.add_argument(
        "--samples",
        type=int,
        default=0,
        metavar="N",
        help="clips generated at each validation and compared with the data (chroma, tempo, "
        "onsets), 0..64 (default 0: on a CPU each clip takes seconds per second of audio)",
    )
    g.add_argument(
        "--sample-seconds",
        type=float,
        default=DEFAULT_SAMPLE_S,
        metavar="S",
        help=f"length of each clip, 0.1..30 (default {DEFAULT_SAMPLE_S:g})",
    )
    p.add_argument(
        "--cache-dir", metavar="DIR", help="where audio codes and caption states are cached"
    )
    p.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files")
    return p


def _config(args: argparse.Namespace, method: str, preset: str | None):
    """The TrainConfig of the options (the preset's, else the method's defaults, for those
    not given)."""
    from engine.train.musicgen import default_config

    checks = [
        ("--max-steps", args.max_steps, 1, common.MAX_LIMIT),
        ("--epochs", args.epochs, 1, common.MAX_LIMIT),
        ("--batch-size", args.batch_size, 1, 4096),
        ("--accumulate", args.accumulate, 1, 4096),
        ("--warmup", args.warmup, 0, common.MAX_LIMIT),
        ("--eval-every", args.eval_every, 1, common.MAX_LIMIT),
        ("--checkpoint-every", args.checkpoint_every, 1, common.MAX_LIMIT),
        ("--keep", args.keep, 0, 10_000),
        ("--patience", args.patience, 1, 10_000),
        ("--lr", args.lr, 1e-9, 1.0),
        ("--min-lr", args.min_lr, 0.0, 1.0),
        ("--weight-decay", args.weight_decay, 0.0, 10.0),
        ("--grad-clip", args.grad_clip, 0.0, 1e6),
        ("--label-smoothing", args.label_smoothing, 0.0, 0.99),
        ("--dropout", args.dropout, 0.0, 0.99),
        ("--min-delta", args.min_delta, 0.0, 100.0),
        ("--max-minutes", args.max_minutes, 1 / 60, common.MAX_TRAIN_MINUTES),
    ]
    for name, value, lo, hi in checks:
        if value is not None:
            common.check_range(name, value, lo, hi)
    common.check_seed(args.seed)
    given = {
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "grad_accumulation": args.accumulate,
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
        "keep_last": args.keep,
        "early_stop_patience": args.patience,
        "min_delta": args.min_delta,
        "max_minutes": args.max_minutes,
        "grad_checkpoint": args.grad_checkpoint,
        "dropout": args.dropout,
    }
    cfg = default_config(
        method, preset, seed=args.seed, **{k: v for k, v in given.items() if v is not None}
    )
    if args.lr is not None and args.min_lr is None:
        cfg.min_learning_rate = min(cfg.min_learning_rate, args.lr / 10)
    if args.warmup is None:  # a short run warms up over its first tenth at most
        cfg.warmup_steps = min(cfg.warmup_steps, cfg.max_steps // 10)
    if args.eval_every is not None and args.checkpoint_every is None and preset is not None:
        cfg.checkpoint_every = args.eval_every
    if args.epochs is not None and args.max_steps is None:
        cfg.max_steps = common.MAX_LIMIT  # the epochs end the run
    return cfg


def _lora(args: argparse.Namespace, preset: str | None):
    from engine.models.lora import LoraConfig
    from engine.train.musicgen import musicgen_targets, preset_values

    rank = args.rank if args.rank is not None else (preset_values(preset)["rank"] if preset else 8)
    alpha = args.alpha if args.alpha is not None else 2.0 * rank
    common.check_range("--rank", rank, 1, 4096)
    common.check_range("--alpha", alpha, 1e-6, 1e6)
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
    return LoraConfig(rank, alpha, args.lora_dropout, musicgen_targets(args.targets), layers)


def _out(args: argparse.Namespace) -> Path:
    from engine.train.trainer import CHECKPOINT_DIR

    name = Path(str(args.data).rstrip("/")).name or "dataset"
    out = Path(args.out).expanduser() if args.out else common.DEFAULT_RUNS_DIR / f"musicgen-{name}"
    run_files = {CHECKPOINT_DIR, "best", "checkpoints", "model", "metrics.jsonl", "tensorboard"}
    return common.check_run_folder(out, args.resume, run_files | {"samples", "report.md"})


def _check_args(args: argparse.Namespace) -> str | None:
    """The name of the user's model to train (None: a run folder, --out); one-line errors
    for options that do not go together."""
    if args.out and args.name:
        raise common.CliError("give --name (a model of yours) or --out (a run folder), not both")
    name = args.name
    if name is None and args.from_model and not args.out:
        from engine.train.musicgen import is_musicgen_card

        base = args.from_model.partition("@")[0]
        if not is_musicgen_card(base):
            raise common.CliError(
                f"name the new model: --name NAME (--from {args.from_model} is not a model of "
                "yours to add a round to)"
            )
        name = base
    if args.resume and name is None and not args.out:
        raise common.CliError(
            "--resume needs --name (the model whose last round to continue) or --out"
        )
    if not args.resume and not args.data:
        raise common.CliError("give the audio to train on: --data DATASET")
    if args.samples:
        common.check_range("--samples", args.samples, 0, 64)
        common.check_range("--sample-seconds", args.sample_seconds, 0.1, 30.0)
    if args.caption_dropout is not None and not 0 <= args.caption_dropout < 1:
        raise common.CliError(f"--caption-dropout must be 0..0.99, not {args.caption_dropout:g}")
    return name


def _cmd_train_musicgen(args: argparse.Namespace) -> int:
    from engine.train import musicgen as mt

    name = _check_args(args)
    cache = Path(args.cache_dir).expanduser() if args.cache_dir else None
    if name is not None:
        return _train_named(args, name, cache)
    out = _out(args)
    init_from, method, base, segment = None, args.method, args.base, args.segment
    lora, weights, dropout = None, args.codebook_weights, args.caption_dropout
    if args.from_model:
        init_from, info, from_base = mt.start_weights(args.from_model)
        method, base = method or info["method"], base or from_base
    if args.resume:  # what the run was started with, for what is not given again
        recorded = mt.recorded_settings(out)
        method = method or recorded["method"]
        if base is None:
            there = (Path(recorded["base"]["path"]) / "config.json").is_file()
            base = recorded["base"]["path"] if there else recorded["base"]["name"]
        if init_from is None and recorded.get("init_from"):
            init_from = recorded["init_from"]["path"]
        if segment is None:
            segment = recorded["segment_s"]
        weights = weights or recorded["codebook_weights"]
        dropout = recorded["cond_dropout"] if dropout is None else dropout
        if recorded.get("lora") and args.rank is None and args.alpha is None:
            from engine.models.lora import LoraConfig

            lora = LoraConfig(**{**recorded["lora"], "keys": tuple(recorded["lora"]["keys"])})
    method, base = method or "lora", base or mt.DEFAULT_BASE
    cfg = _config(args, method, args.preset)
    if method == "lora" and lora is None:
        lora = _lora(args, args.preset)
    if segment is None:
        segment = mt.preset_values(args.preset)["segment_s"] if args.preset else mt.TRAIN_SEGMENT_S
    mt.check_segment(segment)
    if not args.resume:  # encode the audio with a bar first; the run then finds it cached
        _encode(args.data, args.version, base, cache, segment, cfg.seed)
    from engine.cli.train_live import LiveDisplay

    with LiveDisplay(ui.make_console(), f"Fine-tuning {base} ({method})") as live:
        record = mt.train_musicgen(
            args.data,
            out,
            base=base,
            method=method,
            lora=lora,
            config=cfg,
            version=args.version,
            segment_s=segment,
            cache_dir=cache,
            codebook_weights=weights,
            cond_dropout=mt.DEFAULT_COND_DROPOUT if dropout is None else dropout,
            epochs=args.epochs,
            resume=args.resume,
            init_from=init_from,
            samples=args.samples,
            sample_seconds=args.sample_seconds,
            callback=live,
            plan=_say_plan(method),
            tensorboard=not args.no_tensorboard,
        )
    from engine.train import monitor

    s = record["summary"]
    best = f"best validation loss {s['best_val']:.4f}, " if s["best_val"] is not None else ""
    why = monitor.STOP_REASONS.get(s["stop_reason"], s["stop_reason"])
    print(f"model: {out / mt.MODEL_DIR} ({best}{s['step']} steps, stopped: {why})")
    _say_style(record.get("style"), out)
    print(f"try it: {common.PROG} generate --model {common.quote_arg(str(out / mt.MODEL_DIR))}")
    return 0


def _train_named(args: argparse.Namespace, name: str, cache: Path | None) -> int:
    """A round of the user's model ``name`` (`finetune_musicgen`)."""
    import sys

    from engine.cli.train_live import LiveDisplay
    from engine.train import monitor
    from engine.train import musicgen as mt

    config = lora = segment = None
    preset = args.preset or "quick"
    method = args.method
    if not args.resume:
        base = args.base or mt.DEFAULT_BASE
        if args.from_model:
            _, info, base = mt.start_weights(args.from_model)
            method = method or info["method"]
        method = method or "lora"
        config = _config(args, method, preset)
        lora = _lora(args, preset) if method == "lora" else None
        segment = args.segment
        if segment is None:
            segment = mt.preset_values(preset)["segment_s"]
        mt.check_segment(segment)
        _encode(args.data, args.version, base, cache, segment, config.seed)
    command = None
    if sys.argv[1:3] == ["train", "musicgen"]:
        command = " ".join(map(common.quote_arg, [common.PROG, *sys.argv[1:]]))
    with LiveDisplay(ui.make_console(), f"Training {name}") as live:
        result = mt.finetune_musicgen(
            args.data,
            name=name,
            base=args.base or mt.DEFAULT_BASE,
            method=method,
            preset=preset,
            lora=lora,
            config=config,
            segment_s=segment,
            codebook_weights=args.codebook_weights,
            cond_dropout=mt.DEFAULT_COND_DROPOUT
            if args.caption_dropout is None
            else args.caption_dropout,
            epochs=args.epochs,
            from_model=args.from_model,
            version=args.version,
            resume=args.resume,
            samples=args.samples,
            sample_seconds=args.sample_seconds,
            cache_dir=cache,
            callback=live,
            plan=_say_plan(method or "lora"),
            command=command,
            tensorboard=not args.no_tensorboard,
        )
    why = monitor.STOP_REASONS.get(result["stop_reason"], result["stop_reason"])
    val = result["best_val"]
    best = f"best validation loss {val:.4f} at step {result['best_step']}; " if val else ""
    print(f"model: {name} (round {result['round']}, {best}stopped: {why})")
    _say_style(result["record"].get("style"), Path(result["run"]))
    print(f'try it: {common.PROG} generate --model {name} "..."')
    return 0


def _encode(data, version, base, cache, segment: float, seed: int) -> None:
    """Encode the dataset's audio with a progress bar (the run then finds it cached)."""
    from engine.train import musicgen as mt

    folder = mt.resolve_base(base)
    with ui.FileProgress("Encoding audio") as bar:
        prepared = mt.prepare(
            data,
            version,
            folder,
            cache,
            segment_s=segment,
            seed=seed,
            progress=lambda e: bar(e) if e.stage == "audio codes" else None,
        )
    _say_data(prepared, segment)


def _say_plan(method: str):
    def plan(info: dict) -> None:
        from engine.train.monitor import format_duration

        clips = ""
        if info["sample_s"]:
            clips = f", {format_duration(info['sample_s'])} of clips at each validation"
        print(
            f"plan: {method}, {info['trainable_parameters']:,} of "
            f"{info['total_parameters']:,} weights train; about "
            f"{info['memory_bytes'] / 2**20:.0f} MB of memory and "
            f"{format_duration(info['time_s'])} for {info['max_steps']} steps on this machine "
            f"({info['step_s']:.2f} s a step of {info['segments_per_step']} segments{clips})"
        )

    return plan


def _say_style(style: dict | None, run: Path) -> None:
    if style and style.get("base") and style.get("tuned"):
        print(
            f"style distance to your audio: {style['base']['overall']:.3f} (base) -> "
            f"{style['tuned']['overall']:.3f} (fine-tuned); report: {run / 'report.md'}"
        )


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
