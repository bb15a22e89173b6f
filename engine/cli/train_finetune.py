"""``train score --data DATASET``: fine-tune the score model on one's own MIDI, and
``train fuse``; the user's models in ``models``."""

from __future__ import annotations

import argparse
import json
import sys

from engine import names
from engine.cli import common
from engine.cli import progress as ui

MAX_STEPS = 10**7


def add_options(p: argparse.ArgumentParser) -> None:
    """The fine-tuning options of ``train score`` (used with --data)."""
    METHODS, OPTIMIZERS, SCHEDULES = names.TRAIN_METHODS, names.OPTIMIZERS, names.SCHEDULES
    g = p.add_argument_group("fine-tuning on your own music (with --data)")
    added: list[argparse.Action] = []

    def add(*flags, **kw) -> None:
        added.append(g.add_argument(*flags, **kw))

    add("--data", metavar="DATASET", help="a dataset of MIDI files (`data import`)")
    add("--version", metavar="V", help="the dataset version (default: its HEAD)")
    add("--method", choices=METHODS, default="lora", help="lora or full (default lora)")
    add(
        "--base",
        default=names.DEFAULT_MODEL,
        metavar="MODEL",
        help=f"the model to start from (default {names.DEFAULT_MODEL})",
    )
    add("--name", metavar="NAME", help="your model's name (default: the --from model's)")
    add(
        "--from",
        dest="from_model",
        metavar="MODEL",
        help="continue one of your models on new data: a new round of it",
    )
    add(
        "--epochs",
        type=float,
        metavar="E",
        help="passes over the data instead of --max-steps, 0.01..10000 (default: the "
        "preset's steps)",
    )
    add(
        "--lr", type=float, metavar="X", help="peak learning rate, 1e-08..1 (default: the preset's)"
    )
    add("--min-lr", type=float, metavar="X", help="where the decay ends, 0..1 (default: lr/10)")
    add(
        "--schedule", choices=SCHEDULES, default="cosine", help="after the warm-up (default cosine)"
    )
    add(
        "--warmup",
        type=int,
        metavar="N",
        help="warm-up steps, 0..10000000 (default: a tenth of the steps, at most 20)",
    )
    add("--optimizer", choices=OPTIMIZERS, default="adamw", help="(default adamw)")
    add("--weight-decay", type=float, metavar="X", help="0..1 (default 0.01)")
    add(
        "--grad-clip",
        type=float,
        default=1.0,
        metavar="X",
        help="largest gradient norm, 0..1000000; 0 = off (default 1)",
    )
    add(
        "--accumulate",
        type=int,
        default=1,
        metavar="N",
        help="batches per optimizer step, 1..1024 (default 1)",
    )
    add(
        "--batch-tokens",
        type=int,
        metavar="N",
        help="tokens per batch, 128..1048576 (default: the preset's, 4096 or 8192)",
    )
    add("--label-smoothing", type=float, default=0.0, metavar="X", help="0..0.99 (default 0)")
    add("--rank", type=int, metavar="R", help="LoRA rank, 1..1024 (default: the preset's)")
    add(
        "--alpha",
        type=float,
        metavar="A",
        help="LoRA alpha, more than 0; scale = alpha/rank (default: 2 x rank)",
    )
    add("--lora-dropout", type=float, default=0.0, metavar="P", help="0..0.99 (default 0)")
    add(
        "--dropout",
        type=float,
        default=0.0,
        metavar="P",
        help="residual dropout inside the model while it trains, 0..0.99 (default 0)",
    )
    add(
        "--grad-checkpoint",
        action="store_true",
        help="recompute activations in the backward pass: less memory, about a third slower",
    )
    add(
        "--targets",
        default="all",
        metavar="T",
        help="LoRA targets: attention, mlp, all or module names (default all)",
    )
    add(
        "--lora-layers",
        type=int,
        default=-1,
        metavar="N",
        help="adapt the last N blocks, 1..1024; -1 = all (default -1)",
    )
    add(
        "--eval-every",
        type=int,
        metavar="N",
        help="validate every N steps, 1..10000000 (default: the preset's)",
    )
    add(
        "--patience",
        type=int,
        metavar="N",
        help="validations without improvement before stopping, 1..10000 (default: the preset's)",
    )
    add(
        "--min-delta",
        type=float,
        default=0.0,
        metavar="X",
        help="an improvement must beat the best validation loss by more than X, 0..100 (default 0)",
    )
    add(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="steps, 1..10000000 (default: --eval-every)",
    )
    add(
        "--checkpoint-minutes",
        type=float,
        metavar="M",
        help="also every M minutes, 0.1..10080 (default: off)",
    )
    add(
        "--keep",
        type=int,
        default=3,
        metavar="K",
        help="checkpoints kept to pick from (`NAME@step-N`), 0..1000 (default 3)",
    )
    add(
        "--samples",
        type=int,
        metavar="N",
        help="pieces generated at each validation to measure the style, 0..64; 0 = none "
        "(default 8)",
    )
    add(
        "--style",
        choices=names.STYLES,
        help="the style condition of pieces whose genre is not a model style (default classical)",
    )
    add(
        "--no-transpose",
        action="store_true",
        help="train on the pieces' own keys only (default: random transpositions)",
    )
    add("--wandb", metavar="PROJECT", help="also log to Weights & Biases (if logged in)")
    p.set_defaults(data_options=tuple((a.dest, a.option_strings[0]) for a in added))


def given_data_options(args: argparse.Namespace) -> list[str]:
    """The fine-tuning options (``add_options``) given on the command line, other than
    --data: a --corpus run has no use for them and must not pass them over in silence."""
    return [
        flag
        for dest, flag in args.data_options
        if dest != "data" and getattr(args, dest) != args.parser.get_default(dest)
    ]


def run(args: argparse.Namespace) -> int:
    from engine.train.finetune import finetune_score

    if args.resume and args.name is None:
        raise common.CliError("--resume needs --name: the model whose last round to continue")
    if args.name is None and args.from_model is None:
        raise common.CliError("name your model: --name NAME (or continue one with --from NAME)")
    options = options_from(args)
    name = args.name or args.from_model.partition("@")[0]
    console = ui.make_console()
    from engine.cli.train_live import LiveDisplay

    def plan(info: dict) -> None:
        c = info["corpus"]
        print(
            f"data: {c['pieces']} pieces ({c['val_pieces']} for validation), {c['tokens']} "
            f"tokens; {info['steps_per_epoch']} steps make one pass"
        )
        if c.get("split_note"):
            print(f"note: {c['split_note']}")
        for item, why in c.get("skipped", []):
            print(f"skipped {item}: {why}")
        print(
            f"plan: {args.method}, {info['trainable_parameters']:,} of "
            f"{info['total_parameters']:,} weights train; about "
            f"{info['memory_bytes'] / 2**20:.0f} MB of memory and "
            f"{_duration(info['time_s'])} for {info['max_steps']} steps on this machine "
            f"({info['step_s']:.1f} s a step)"
        )

    with LiveDisplay(console, f"Training {name}") as display:
        result = finetune_score(
            args.data,
            name=name,
            base=args.base,
            options=options,
            from_model=args.from_model,
            version=args.version,
            resume=args.resume,
            callback=display,
            progress=None,
            command=" ".join(map(common.quote_arg, [common.PROG, *sys.argv[1:]]))
            if sys.argv[1:2] == ["train"]
            else None,
            plan=plan,
            wandb_project=args.wandb,
            warn=lambda line: print(f"warning: {line}"),
        )
    from engine.train.monitor import STOP_REASONS

    why = STOP_REASONS.get(result["stop_reason"], result["stop_reason"])
    print(
        f"model: {name} (round {result['round']}, best validation loss "
        f"{result['best_val']:.4f} at step {result['best_step']}; stopped: {why})"
    )
    style = result.get("style") or {}
    if style.get("base") and style.get("tuned"):
        print(
            f"style distance to your data: {style['base']['overall']:.3f} (base) -> "
            f"{style['tuned']['overall']:.3f} (fine-tuned); report: {result['run']}/report.md"
        )
    print(f'try it: {common.PROG} generate --model {name} "..."')
    return 0


def _duration(seconds: float) -> str:
    from engine.train.monitor import format_duration

    return format_duration(seconds)


def add_fuse(train_sub, command) -> None:
    p = command(
        train_sub,
        "fuse",
        cmd_fuse,
        "fold a LoRA model's adapter into full weights, as a new model",
        ("train", "fuse"),
    )
    p.add_argument("model", metavar="MODEL", help="one of your LoRA models (NAME or NAME@tag)")
    p.add_argument("--name", required=True, metavar="NAME", help="the fused model's name")


def cmd_fuse(args: argparse.Namespace) -> int:
    from engine.train.finetune import fuse_model

    folder = fuse_model(args.model, args.name)
    print(f"model: {args.name} ({folder})")
    print(f'try it: {common.PROG} generate --model {args.name} "..."')
    return 0


def print_trained() -> None:
    """The user's own models, for `models`."""
    from engine import hub

    trained = hub.trained_models()
    print()
    where = hub.trained_models_dir()
    print(f"Your models (made with `{common.PROG} train score|musicgen --name`; {where}):")
    if not trained:
        print(f"none yet: `{common.PROG} train score --data DATASET --name NAME` makes one")
        return
    for name in trained:
        try:
            card = json.loads((hub.trained_models_dir() / name / "model.json").read_text())
        except (OSError, ValueError):
            print(f"{name}: its model.json is unreadable")
            continue
        rounds = card.get("rounds") or []
        last = rounds[-1] if rounds else {}
        state = last.get("status", "?")
        val = last.get("best_val")
        print(
            f"{name}: {card.get('kind', 'score')}, {card.get('method', '?')} on "
            f"{card.get('base', {}).get('name', '?')}, "
            f"{len(rounds)} round(s), last on {last.get('dataset_name', '?')}"
            + (f", validation loss {val:.4f}" if isinstance(val, float) else "")
            + ("" if state == "finished" else f" ({state}: resume with --resume --name {name})")
        )


def options_from(args: argparse.Namespace):
    """The `FinetuneOptions` that ``train score --data …`` asks for, every value checked
    (a `common.CliError` names the flag and its range)."""
    from engine.train.finetune import FinetuneOptions

    preset = "quick" if args.preset is None else args.preset
    if preset not in names.FINETUNE_PRESETS:
        raise common.CliError(
            f"unknown preset {preset!r} for fine-tuning; choose one of "
            f"{', '.join(names.FINETUNE_PRESETS)}"
        )
    if args.max_steps is not None:
        common.check_range("--max-steps", args.max_steps, 1, MAX_STEPS)
    if args.epochs is not None:
        common.check_range("--epochs", args.epochs, 0.01, 10_000)
    for flag, value, lo, hi in (
        ("--lr", args.lr, 1e-8, 1.0),
        ("--min-lr", args.min_lr, 0.0, 1.0),
        ("--warmup", args.warmup, 0, MAX_STEPS),
        ("--weight-decay", args.weight_decay, 0.0, 1.0),
        ("--grad-clip", args.grad_clip, 0.0, 1e6),
        ("--accumulate", args.accumulate, 1, 1024),
        ("--batch-tokens", args.batch_tokens, 128, 1 << 20),
        ("--label-smoothing", args.label_smoothing, 0.0, 0.99),
        ("--rank", args.rank, 1, 1024),
        ("--alpha", args.alpha, 1e-6, 1e6),
        ("--lora-dropout", args.lora_dropout, 0.0, 0.99),
        ("--dropout", args.dropout, 0.0, 0.99),
        ("--eval-every", args.eval_every, 1, MAX_STEPS),
        ("--patience", args.patience, 1, 10_000),
        ("--min-delta", args.min_delta, 0.0, 100.0),
        ("--checkpoint-every", args.checkpoint_every, 1, MAX_STEPS),
        ("--checkpoint-minutes", args.checkpoint_minutes, 0.1, 7 * 24 * 60),
        ("--keep", args.keep, 0, 1000),
        ("--samples", args.samples, 0, 64),
        ("--max-minutes", args.max_minutes, 1 / 60, 7 * 24 * 60),
    ):
        if value is not None:
            common.check_range(flag, value, lo, hi)
    from engine.models.lora import targets

    targets(args.targets)  # an unknown target: one line before anything starts
    if args.lora_layers != -1:
        common.check_range("--lora-layers", args.lora_layers, 1, 1024)
    common.check_seed(args.seed)
    options = FinetuneOptions(
        method=args.method,
        preset=preset,
        max_steps=args.max_steps,
        epochs=args.epochs,
        learning_rate=args.lr,
        min_learning_rate=args.min_lr,
        schedule=args.schedule,
        warmup_steps=args.warmup,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        grad_clip=args.grad_clip,
        grad_accumulation=args.accumulate,
        label_smoothing=args.label_smoothing,
        tokens_per_batch=args.batch_tokens,
        eval_every=args.eval_every,
        early_stop_patience=args.patience,
        min_delta=args.min_delta,
        checkpoint_every=args.checkpoint_every,
        checkpoint_minutes=args.checkpoint_minutes,
        keep_last=args.keep,
        max_minutes=args.max_minutes,
        rank=args.rank,
        alpha=args.alpha,
        lora_dropout=args.lora_dropout,
        dropout=args.dropout,
        grad_checkpoint=args.grad_checkpoint,
        targets=args.targets,
        lora_layers=args.lora_layers,
        samples=args.samples,
        style=args.style,
        transpose=not args.no_transpose,
        seed=args.seed,
    )
    return options
