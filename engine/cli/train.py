"""Training data, training and evaluation: corpus build, train score, eval score/prompts, models."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from engine import names
from engine.cli import common
from engine.cli import progress as ui

CORPUS_MUSIC21 = "music21"

DEFAULT_CORPUS_DIR = Path("data") / "music21"


def add_commands(sub, command) -> None:
    """corpus build, train score, eval score, eval prompts and models."""
    corpus = sub.add_parser("corpus", help="training data").add_subparsers(
        dest="corpus_command", required=True, metavar="COMMAND"
    )
    p = command(
        corpus,
        "build",
        _cmd_corpus_build,
        "tokenize the music21 corpus (public-domain scores) for training",
        ("corpus", "build"),
    )
    p.add_argument(
        "--out",
        default=str(DEFAULT_CORPUS_DIR),
        metavar="DIR",
        help=f"where to write the corpus (default {DEFAULT_CORPUS_DIR})",
    )
    p.add_argument("--styles", metavar="S,...", help="only these styles (default: all)")
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help=f"only N files, taken across styles, 1..{common.MAX_LIMIT} (default: all)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=f"parallel processes, 1..{common.MAX_WORKERS} (default: the CPUs)",
    )
    p.add_argument("--force", action="store_true", help="replace a corpus already in DIR")

    train = sub.add_parser("train", help="train models").add_subparsers(
        dest="train_command", required=True, metavar="MODEL"
    )
    p = command(
        train, "score", _cmd_train_score, "train the symbolic score model", ("train", "score")
    )
    p.add_argument(
        "--corpus",
        metavar="music21|DIR",
        help=f"train from scratch on a built corpus folder, or music21 for {DEFAULT_CORPUS_DIR} "
        "(built if missing); or fine-tune on your own music with --data",
    )
    p.add_argument(
        "--preset",
        default=None,
        help="with --corpus: model size and schedule (default base); with --data: quick "
        "(default), balanced or thorough",
    )
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/score-PRESET)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--init-from",
        metavar="NAME|DIR",
        help="start from this model's weights (same architecture as the preset), with a fresh "
        "optimizer and the preset's schedule, e.g. --preset base-continue --init-from score-base",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        metavar="N",
        help=f"stop after N steps, 1..{common.MAX_LIMIT} (default: the preset's)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        metavar="M",
        help="stop after M minutes, more than 0 (default: the preset's)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help=f"random seed, 0..{common.MAX_SEED} (default 0)",
    )
    from engine.cli import train_finetune

    train_finetune.add_options(p)
    train_finetune.add_fuse(train, command)
    p = command(
        train,
        "merge",
        _cmd_train_merge,
        "average two score models weight by weight (one trained on from the other) into a new one",
        ("train", "merge"),
    )
    p.add_argument("first", metavar="FIRST", help="score model name or folder, e.g. score-base")
    p.add_argument("second", metavar="SECOND", help="the same shape, e.g. its continued run")
    p.add_argument(
        "--weight",
        type=float,
        default=0.5,
        metavar="W",
        help="share of SECOND, more than 0 and less than 1 (default 0.5)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder")
    p.add_argument(
        "--key-strength-scale",
        type=float,
        default=None,
        metavar="S",
        help="the merged model's calibration of the key bonus, more than 0 and at most 2 "
        "(default: none, 1)",
    )
    from engine.cli.train_musicgen import add_parser as add_musicgen

    add_musicgen(train, command)

    evaluate = sub.add_parser("eval", help="measure model quality").add_subparsers(
        dest="eval_command", required=True, metavar="MODEL"
    )
    p = command(
        evaluate,
        "score",
        _cmd_eval_score,
        "measure a score model: valid MIDI, key adherence, scale, entropy, NLL, parallels",
        ("eval", "score"),
    )
    p.add_argument("--model", default=None, metavar="NAME|DIR", help="default score-base")
    p.add_argument(
        "--corpus",
        default=str(DEFAULT_CORPUS_DIR),
        metavar="DIR",
        help=f"built corpus with the held-out split (default {DEFAULT_CORPUS_DIR})",
    )
    p.add_argument(
        "--pieces-per-style",
        type=int,
        default=names.DEFAULT_EVAL_PIECES_PER_STYLE,
        metavar="N",
        help=f"pieces generated per style, 1..{names.MAX_EVAL_PIECES_PER_STYLE} "
        f"(default {names.DEFAULT_EVAL_PIECES_PER_STYLE})",
    )
    p.add_argument(
        "--bars",
        type=int,
        default=names.DEFAULT_BARS,
        metavar="N",
        help=f"bars per piece, 1..{names.MAX_BARS} (default {names.DEFAULT_BARS})",
    )
    p.add_argument(
        "--harmonizations",
        type=int,
        default=names.DEFAULT_EVAL_HARMONIZATIONS,
        metavar="N",
        help=f"held-out chorales, 0..{names.MAX_EVAL_HARMONIZATIONS} "
        f"(default {names.DEFAULT_EVAL_HARMONIZATIONS})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help=f"first seed, 0..{common.MAX_SEED} (default 0)",
    )
    p.add_argument(
        "--key-strength",
        type=float,
        metavar="S",
        help=f"scale bonus while generating, 0..{names.num(names.MAX_KEY_STRENGTH)}; 0 = the model "
        f"alone (default {names.num(names.DEFAULT_KEY_STRENGTH)})",
    )
    p.add_argument(
        "--no-nll", action="store_true", help="skip the validation NLL (it ignores sampling)"
    )
    p.add_argument(
        "--out",
        default="eval/score-base",
        metavar="PATH",
        help="report path without suffix: writes PATH.json and PATH.md (default eval/score-base)",
    )

    p = command(
        evaluate,
        "prompts",
        _cmd_eval_prompts,
        "measure what users hear: compose a fixed set of 40 prompts and measure each piece",
        ("eval", "prompts"),
    )
    p.add_argument("--model", default=None, metavar="NAME|DIR", help="default score-base")
    p.add_argument(
        "--seeds",
        type=int,
        default=3,
        metavar="N",
        help="seeds per prompt, 1..100 (default 3)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help=f"first seed, 0..{common.MAX_SEED} (default 0)",
    )
    p.add_argument(
        "--out",
        default="eval/prompts",
        metavar="PATH",
        help="report path without suffix: writes PATH.json and PATH.md (default eval/prompts)",
    )

    p = command(
        evaluate,
        "compare",
        _cmd_eval_compare,
        "compare two prompt evaluations measure by measure: better, worse or within the seeds' "
        "noise",
        ("eval", "compare"),
    )
    p.add_argument(
        "first", metavar="FIRST", help="report of `eval prompts` (PATH.json), e.g. the default"
    )
    p.add_argument("second", metavar="SECOND", help="report made with the same prompts and seeds")
    p.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        metavar="C",
        help="confidence of each interval, 0.5..0.999 (default 0.95)",
    )

    command(sub, "models", _cmd_models, "list the models: score models and MusicGen", ("models",))


def _cmd_corpus_build(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if (out / "pieces.jsonl").is_file() and not args.force:
        raise common.CliError(f"{out} already holds a corpus; add --force to build it again")
    if out.exists() and not (out / "pieces.jsonl").is_file():
        if not out.is_dir() or any(out.iterdir()):
            raise common.CliError(f"{out} exists and is not a corpus folder; choose another --out")
    summary = _build_corpus(out, args.styles, args.limit, args.workers)
    _print_corpus_summary(out, summary)
    return 0


def _build_corpus(out: Path, styles: str | None, limit: int | None, workers: int | None) -> dict:
    from engine.data.corpus import build_corpus

    style_list = _parse_styles(styles) if styles else None
    if limit is not None:
        common.check_range("--limit", limit, 1, 10**9)
    if workers is not None:
        common.check_range("--workers", workers, 1, 1024)
    folder = out.absolute().parent
    while not folder.exists():  # build_corpus makes the missing folders
        folder = folder.parent
    common.check_writable_dir(folder)
    with ui.FileProgress("Building corpus") as progress:
        return build_corpus(out, styles=style_list, limit=limit, workers=workers, progress=progress)


def _print_corpus_summary(out: Path, summary: dict) -> None:
    styles = ", ".join(f"{s} {n}" for s, n in summary["by_style"].items())
    print(
        f"built {out}: {common.plural(summary['pieces'], 'piece')} ({styles}), "
        f"{summary['tokens']:,} tokens, {summary['val_pieces']} held out for validation"
    )
    print(f"{summary['failed']} failed; the list is in {out / 'failed.jsonl'}")


def _parse_styles(text: str) -> list[str]:
    import difflib

    from engine.symbolic.tokenizer import STYLES

    styles = common.split_list(text)
    for s in styles:
        if s not in STYLES:
            near = difflib.get_close_matches(s, STYLES, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise common.CliError(f"unknown style {s!r}; {hint}known styles: {', '.join(STYLES)}")
    return styles


def _cmd_train_score(args: argparse.Namespace) -> int:
    from engine.cli import train_finetune
    from engine.train.score import PRESETS, train_score
    from engine.train.trainer import CHECKPOINT_DIR

    if (args.corpus is None) == (args.data is None):
        raise common.CliError(
            "give --data DATASET to fine-tune on your own music, or --corpus music21|DIR to "
            "train from scratch (not both)"
        )
    if args.data is not None:
        if args.init_from is not None or args.out is not None:
            raise common.CliError(
                "--init-from and --out are for --corpus runs; with --data use --from and --name"
            )
        return train_finetune.run(args)
    ignored = train_finetune.given_data_options(args)
    if ignored:
        raise common.CliError(
            f"{', '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} for fine-tuning "
            "with --data; a --corpus run takes its schedule from --preset (with --max-steps, "
            "--max-minutes and --seed): leave "
            f"{'it' if len(ignored) == 1 else 'them'} out"
        )
    args.preset = "base" if args.preset is None else args.preset

    if args.preset not in PRESETS:
        raise common.CliError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    if args.max_steps is not None:
        common.check_range("--max-steps", args.max_steps, 1, 10**9)
    if args.max_minutes is not None:
        common.check_range("--max-minutes", args.max_minutes, 1 / 60, common.MAX_TRAIN_MINUTES)
    common.check_seed(args.seed)
    out = Path(args.out) if args.out else common.DEFAULT_RUNS_DIR / f"score-{args.preset}"
    run_files = {CHECKPOINT_DIR, "best", "model", "model.partial", "log.jsonl"}
    common.check_run_folder(out, args.resume, run_files)
    if args.corpus == CORPUS_MUSIC21:
        corpus = DEFAULT_CORPUS_DIR
        if not (corpus / "pieces.jsonl").is_file():
            print(f"{corpus} is not built yet; building it first")
            _print_corpus_summary(corpus, _build_corpus(corpus, None, None, None))
    else:
        corpus = Path(args.corpus)
    if args.init_from is not None:  # refuse a model that does not fit before anything starts
        from engine.data.dataset import ScoreDataset
        from engine.train.score import check_init_from

        tok = ScoreDataset(corpus).tokenizer
        model_cfg = {"model_type": "score", "vocab_size": len(tok), **PRESETS[args.preset]["model"]}
        check_init_from(args.init_from, tok, model_cfg, args.preset)
    with ui.Spinner(f"Training score model (preset {args.preset}) in {out}") as spinner:

        class _Progress:
            def on_train_report(self, info: dict) -> None:
                spinner.update(
                    f"Training: step {info['iteration']}, loss {info['train_loss']:.3f}, "
                    f"{info['tokens_per_second']:.0f} tok/s"
                )

            def on_val_report(self, info: dict) -> None:
                pass

        record = train_score(
            corpus,
            out,
            preset=args.preset,
            max_steps=args.max_steps,
            max_minutes=args.max_minutes,
            resume=args.resume,
            seed=args.seed,
            callback=_Progress(),
            init_from=args.init_from,
        )
    s = record["summary"]
    best = f"best validation loss {s['best_val']:.4f}, " if s["best_val"] is not None else ""
    from engine.train.monitor import STOP_REASONS

    why = STOP_REASONS.get(s["stop_reason"], s["stop_reason"])
    print(f"model: {out / 'model'} ({best}{s['step']} steps, stopped: {why})")
    print(f"try it: {common.PROG} generate --model {common.quote_arg(str(out / 'model'))}")
    return 0


def _cmd_eval_score(args: argparse.Namespace) -> int:
    from engine.symbolic import score_api as api
    from engine.train.evaluate import (
        check_report_target,
        evaluate_score_model,
        report_markdown,
        write_report,
    )

    common.check_range("--pieces-per-style", args.pieces_per_style, 1, 1000)
    common.check_range("--bars", args.bars, 1, api.MAX_BARS)
    common.check_range("--harmonizations", args.harmonizations, 0, 1000)
    common.check_seed(args.seed)
    if args.key_strength is not None:
        common.check_range("--key-strength", args.key_strength, 0.0, api.MAX_KEY_STRENGTH)
    model = args.model or api.DEFAULT_MODEL
    api.resolve_model_path(model)
    default_out = args.out == args.parser.get_default("out")  # eval/ is made for the default
    check_report_target(args.out, make_parent=default_out)
    corpus = Path(args.corpus)
    if not (corpus / "pieces.jsonl").is_file():
        raise common.CliError(
            f"{corpus} is not a built corpus; run `{common.PROG} corpus build` first"
        )
    with ui.Spinner("Evaluating") as spinner:
        report = evaluate_score_model(
            model,
            corpus,
            pieces_per_style=args.pieces_per_style,
            bars=args.bars,
            harmonizations=args.harmonizations,
            seed=args.seed,
            key_strength=args.key_strength,
            nll=not args.no_nll,
            progress=spinner,
        )
    report["command"] = " ".join([common.PROG, "eval", "score", *_eval_args(args)])
    js, md = write_report(report, args.out, make_parent=default_out)
    print(report_markdown(report))
    print(f"report: {js} and {md}")
    return 0


def _cmd_eval_prompts(args: argparse.Namespace) -> int:
    from engine.pipelines.eval_prompts import evaluate_prompts, report_markdown
    from engine.symbolic import score_api as api
    from engine.train.evaluate import check_report_target, write_report

    common.check_range("--seeds", args.seeds, 1, 100)
    common.check_seed(args.seed)
    model = args.model or api.DEFAULT_MODEL
    api.resolve_model_path(model)
    default_out = args.out == args.parser.get_default("out")
    check_report_target(args.out, make_parent=default_out)
    sm = common.load_model(model)
    with ui.Spinner("Evaluating") as spinner:
        report = evaluate_prompts(sm, seeds=args.seeds, first_seed=args.seed, progress=spinner)
    report["command"] = " ".join(
        [common.PROG, "eval", "prompts", "--model", model, "--seeds", str(args.seeds)]
        + ["--seed", str(args.seed)]
    )
    js, md = write_report(report, args.out, make_parent=default_out, markdown=report_markdown)
    print(report_markdown(report))
    print(f"report: {js} and {md}")
    return 0


def _cmd_train_merge(args: argparse.Namespace) -> int:
    from engine.record import protected_reason
    from engine.symbolic import score_api as api
    from engine.train.merge import merge_models

    # (--weight and --key-strength-scale are checked by merge_models, before anything)
    out = Path(args.out)
    why = protected_reason(out)
    if why:
        raise common.CliError(f"--out {out} {why}; give a new folder, e.g. {out / 'merged'}")
    for name in (args.first, args.second):
        api.resolve_model_path(name)
    with ui.Spinner("Merging"):
        folder = merge_models(
            args.first,
            args.second,
            out,
            weight=args.weight,
            key_strength_scale=args.key_strength_scale,
        )
    print(f"model: {folder}")
    print(f'try it: {common.PROG} generate --model {folder} "..."')
    return 0


def _cmd_eval_compare(args: argparse.Namespace) -> int:
    from engine.pipelines.eval_compare import compare_reports, comparison_markdown, load_report

    common.check_range("--confidence", args.confidence, 0.5, 0.999)
    first, second = load_report(args.first), load_report(args.second)
    print(comparison_markdown(compare_reports(first, second, confidence=args.confidence)), end="")
    return 0


def _eval_args(args: argparse.Namespace) -> list[str]:
    out = []
    flags = ("model", "corpus", "pieces_per_style", "bars", "harmonizations", "seed")
    for flag in (*flags, "key_strength"):
        value = getattr(args, flag)
        if value is not None:
            out += [f"--{flag.replace('_', '-')}", str(value)]
    return out + (["--no-nll"] if args.no_nll else [])


def _cmd_models(args: argparse.Namespace) -> int:
    from engine.symbolic import score_api as api

    names = api.available_models()
    if not names:
        print(f"no score models are installed in {api.MODELS_DIR}")
        print(
            f"train one with `{common.PROG} train score --corpus music21` and use it with "
            f"--model DIR"
        )
        return 0
    print("Score models (MIDI; shipped, offline):")
    for name in names:
        print(f"{name}{' (default)' if name == api.DEFAULT_MODEL else ''}")
        for line in _model_facts(api.MODELS_DIR / name):
            print(f"  {line}")
    from engine.cli import train_finetune

    train_finetune.print_trained()
    _print_musicgen_catalog()
    return 0


def _print_musicgen_catalog() -> None:
    from engine import hub as cat

    print()
    print("MusicGen (audio; downloaded from the Hugging Face Hub and converted on first use):")
    home = cat.models_home()
    for e in cat.CATALOG.values():
        converted = sorted(p.name for p in home.glob(f"{e.name}*") if (p / "config.json").is_file())
        state = f" [converted: {', '.join(converted)}]" if converted else ""
        print(f"{cat.describe(e)}{state}")
    print(f"warning: {cat.NON_COMMERCIAL_WARNING}")


def _model_facts(path: Path) -> list[str]:
    params = _safetensors_parameters(path / "model.safetensors")
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    lines = [f"{params / 1e6:.1f} M parameters, {size / 1e6:.1f} MB on disk, {path}"]
    training = path / "training.json"
    if training.is_file():
        t = json.loads(training.read_text())
        merge = t.get("merge")
        if isinstance(merge, dict):  # `train merge`: its two sources
            first, second = merge.get("first") or {}, merge.get("second") or {}
            w = merge.get("weight")
            line = f"merged: {first.get('name', '?')} and {second.get('name', '?')}" + (
                f", {w:g} of the second" if isinstance(w, int | float) else ""
            )
            if isinstance(t.get("key_strength_scale"), int | float):
                line += f", key bonus x{t['key_strength_scale']:g}"
            return [*lines, line]
        s, corpus = t.get("summary", {}), t.get("corpus", {})
        facts = [f"preset {t.get('preset', '?')}", f"{s.get('step', '?')} steps"]
        if s.get("elapsed_s") is not None:
            facts.append(f"{s['elapsed_s'] / 60:.0f} min on {t.get('machine', 'unknown')}")
        if s.get("best_val") is not None:
            facts.append(f"validation loss {s['best_val']:.3f}")
        if corpus.get("pieces"):
            facts.append(f"{corpus['pieces']} pieces")
        lines.append("trained: " + ", ".join(facts))
    return lines


def _safetensors_parameters(file: Path) -> int:
    """Number of weights in a safetensors file, read from its JSON header alone."""
    with open(file, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
