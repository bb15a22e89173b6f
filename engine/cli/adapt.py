"""``disco-musica adapt NAME``: a new round of one of your models, learnt from your ratings.

    disco-musica adapt my-model                      # DPO on liked vs disliked pieces
    disco-musica adapt my-taste --from score-base    # a new model from score-base's pieces
    disco-musica adapt my-model --dry-run            # what it would learn from
    disco-musica adapt my-model --auto 10            # again after every 10 new ratings

The work is `engine.train.adapt` (`docs/adapting.md`). After ``library rate``, call
`after_rating` so that models with ``--auto`` adapt by themselves.
"""

from __future__ import annotations

import argparse
import json
import sys

from engine import names
from engine.cli import common


def add_commands(sub, command) -> None:
    p = command(
        sub,
        "adapt",
        cmd_adapt,
        "adapt one of your models to your ratings of its pieces (a new version of it)",
        ("adapt",),
    )
    p.add_argument(
        "name",
        metavar="NAME",
        help="your model (made by `train score --data`, or by adapt --from)",
    )
    p.add_argument(
        "--from",
        dest="from_model",
        metavar="MODEL",
        help="make NAME as a new model from MODEL (e.g. score-base), with your ratings of "
        "MODEL's pieces",
    )
    p.add_argument(
        "--method",
        choices=names.ADAPT_METHODS,
        default="auto",
        help="dpo: liked vs disliked pieces; sft: the liked ones only; auto (default): dpo "
        "when there are both",
    )
    p.add_argument(
        "--beta",
        type=float,
        default=names.ADAPT_BETA,
        metavar="B",
        help="how far DPO may move from the model as it is, more than 0 and at most 10: "
        f"smaller moves further (default {names.num(names.ADAPT_BETA)})",
    )
    p.add_argument(
        "--max-steps",
        dest="steps",
        type=int,
        metavar="N",
        help=f"training steps, 1..{names.ADAPT_MAX_STEPS} (default: two passes over the pairs, "
        f"{names.ADAPT_STEPS[0]} to {names.ADAPT_STEPS[1]})",
    )
    p.add_argument(
        "--lr",
        type=float,
        metavar="X",
        help=f"peak learning rate, more than 0 and at most 1 (default "
        f"{names.num(names.ADAPT_LEARNING_RATE['lora'])} for a LoRA model, "
        f"{names.num(names.ADAPT_LEARNING_RATE['full'])} for full weights)",
    )
    p.add_argument(
        "--sft-weight",
        type=float,
        default=names.ADAPT_SFT_WEIGHT,
        metavar="W",
        help="DPO also keeps the liked pieces likely, with this weight, 0..100 (0 = plain DPO; "
        f"default {names.num(names.ADAPT_SFT_WEIGHT)})",
    )
    p.add_argument(
        "--min-ratings",
        type=int,
        default=names.ADAPT_MIN_RATINGS,
        metavar="N",
        help=f"new ratings a round needs at least, 1..100000 (default {names.ADAPT_MIN_RATINGS})",
    )
    p.add_argument(
        "--own-pieces-only",
        action="store_true",
        help="learn only from pieces made with NAME itself, not with the model it was trained from",
    )
    p.add_argument(
        "--auto",
        type=int,
        metavar="N",
        help="from now on adapt again by itself after every N new ratings (`library rate` "
        "does it), 0..100000; 0 turns it off (default: as the model is set)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help=f"random seed (the order of the pairs, a new adapter), 0..{common.MAX_SEED} "
        "(default 0)",
    )
    p.add_argument(
        "--grad-checkpoint",
        action="store_true",
        help="recompute activations in the backward pass: less memory, about a third slower",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="say what it would learn from; train nothing"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    common.add_library_option(p, keeps=False)


def cmd_adapt(args: argparse.Namespace) -> int:
    from engine.train import adapt
    from engine.train.finetune import model_folder

    for flag, value, lo, hi in (
        ("--max-steps", args.steps, 1, adapt.MAX_STEPS),
        ("--lr", args.lr, 1e-8, 1.0),
        ("--sft-weight", args.sft_weight, 0.0, 100.0),
        ("--min-ratings", args.min_ratings, 1, 100_000),
        ("--auto", args.auto, 0, 100_000),
    ):
        if value is not None:
            common.check_range(flag, value, lo, hi)
    if not 0 < args.beta <= 10:
        raise common.CliError(f"--beta must be more than 0 and at most 10, not {args.beta:g}")
    common.check_seed(args.seed)
    options = adapt.AdaptOptions(
        method=args.method,
        beta=args.beta,
        steps=args.steps,
        learning_rate=args.lr,
        sft_weight=args.sft_weight,
        min_ratings=args.min_ratings,
        include_base=not args.own_pieces_only,
        grad_checkpoint=args.grad_checkpoint,
        seed=args.seed,
    )
    name = args.name
    exists = (model_folder(name) / "model.json").is_file() and args.from_model is None
    if args.auto is not None and exists and not args.dry_run:
        # --auto N: keep the setting; adapt now only when N new ratings are waiting.
        adapt.set_auto(name, args.auto)
        state = adapt.pending(name, library=args.library, include_base=options.include_base)
        if not args.auto:
            return _say(
                args, state, f"{name} adapts only when you run `{common.PROG} adapt {name}`"
            )
        if state["new"] < args.auto:
            return _say(
                args,
                state,
                f"{name} adapts by itself after every {args.auto} new ratings of its pieces "
                f"({state['new']} so far; `{common.PROG} library rate ID 1..5`)",
            )
        options.min_ratings = args.auto
    console = None
    if not args.json:
        from engine.cli import progress as ui

        console = ui.make_console()

    def plan(info: dict) -> None:
        if args.json:
            return
        print(_learns_from(info))
        from engine.train.monitor import format_duration

        print(
            f"plan: {info['preference'].upper()} on the {info['method']} weights, "
            f"{info['steps']} steps, about {format_duration(info['time_s'])} here "
            f"({info['step_s']:.2f} s a step)"
        )

    command = " ".join(map(common.quote_arg, [common.PROG, *sys.argv[1:]]))
    if sys.argv[1:2] != ["adapt"]:
        command = None
    kwargs = dict(
        library=args.library,
        options=options,
        from_model=args.from_model,
        auto=args.auto,
        command=command,
        plan=plan,
        warn=lambda line: print(f"warning: {line}", file=sys.stderr),
    )
    if args.dry_run:
        result = adapt.adapt_model(name, dry_run=True, **kwargs)
        if args.json:
            print(json.dumps(result, indent=1, default=str))
            return 0
        print(_learns_from(result))
        for pid, why in result["skipped_pieces"]:
            print(f"skipped {pid}: {why}")
        print(
            f"plan: {result['preference'].upper()} on the {result['method']} weights, "
            f"{result['steps']} steps (nothing trained: --dry-run)"
        )
        return 0
    if args.json:
        result = adapt.adapt_model(name, **kwargs)
        print(json.dumps(result, indent=1, default=str))
        return 0
    from engine.cli.train_live import LiveDisplay

    with LiveDisplay(console, f"Adapting {name}") as display:
        result = adapt.adapt_model(name, callback=display, **kwargs)
    for pid, why in result["skipped_pieces"]:
        print(f"skipped {pid}: {why}")
    print(f"model: {name}, round {result['round']} ({name}@round-{result['round']})")
    print(f"changelog: {result['changelog']}")
    auto = _auto_of(name)
    if auto:
        print(f"auto: adapts again after {auto} new ratings")
    print(f'try it: {common.PROG} generate --model {name} "..."')
    return 0


def _auto_of(name: str) -> int | None:
    from engine.train.finetune import read_card

    return (read_card(name).get("adapt") or {}).get("auto")


def _learns_from(info: dict) -> str:
    parts = [f"{info['liked']} liked", f"{info['disliked']} disliked"]
    if info.get("from_variations"):
        parts.append(f"{info['from_variations']} from kept or deleted variations")
    what = (
        f"{info['pairs']} pairs"
        if info["preference"] == "dpo"
        else (f"{info['sequences']} liked pieces")
    )
    line = f"learns from: {what} of {info['new_ratings']} new ratings ({', '.join(parts)})"
    if info.get("used_before"):
        line += f"; {info['used_before']} ratings were used by earlier rounds"
    return line


def _say(args, info: dict, line: str) -> int:
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(line)
    return 0


def after_rating(library=None, *, out=None, background: bool = False) -> list[dict]:
    """For ``library rate`` (after the rating is kept): adapt the models whose ``--auto N``
    is due, saying so in one line each on ``out`` (default stderr). A model that cannot
    adapt yet says why; nothing here makes the rating fail.

    ``background=True`` (what ``library rate`` uses) starts each due round as its own
    ``disco-musica adapt`` process, logging to ``adapt.log`` in the model's folder, so that
    rating a piece never waits minutes for training; the round's lock keeps two from
    running at once."""
    from engine import hub

    def asks(name: str) -> bool:  # read the card alone: no training code for most ratings
        try:
            card = json.loads((hub.trained_models_dir() / name / "model.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(card, dict) and bool((card.get("adapt") or {}).get("auto"))

    if not any(asks(name) for name in hub.trained_models()):
        return []
    from engine.errors import UserError, one_line
    from engine.train.adapt import (
        STARTING_FILE,
        auto_models,
        claim_start,
        maybe_adapt,
        pending,
        running,
    )
    from engine.train.finetune import model_folder, read_card

    out = out or sys.stderr
    done = []
    for name in auto_models():
        if not background:
            got = maybe_adapt(name, library=library)
            if got is None:
                continue
            done.append(got)
            if got.get("status") == "finished":
                print(f"adapted {name} to your ratings: {got['changelog']}", file=out)
            else:
                print(f"{name} did not adapt: {got.get('reason')}", file=out)
            continue
        try:
            every = read_card(name)["adapt"]["auto"]
            new = pending(name, library=library)["new"]
        except (UserError, KeyError, TypeError) as e:
            print(f"{name} did not adapt: {one_line(e)}", file=out)
            continue
        if new < every:
            continue
        busy = running(name)
        if busy:  # one round at a time: these ratings wait for the next
            print(
                f"{name} is adapting already (pid {busy.get('pid')}); the {new} new ratings "
                "count for its next round",
                file=out,
            )
            done.append({"name": name, "status": "busy", "pid": busy.get("pid")})
            continue
        if not claim_start(name):  # a rating a moment ago started one
            print(
                f"{name} is starting a round already; the {new} new ratings count for it or "
                "the next",
                file=out,
            )
            done.append({"name": name, "status": "busy", "pid": None})
            continue
        log = model_folder(name) / "adapt.log"
        argv = [sys.executable, "-m", "engine.cli", "adapt", name, "--min-ratings", str(every)]
        if library is not None:
            argv += ["--library", str(library)]
        import subprocess

        try:
            with open(log, "a") as f:
                subprocess.Popen(
                    argv,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except OSError as e:
            (model_folder(name) / STARTING_FILE).unlink(missing_ok=True)
            print(f"{name} did not adapt: could not start it ({one_line(e)})", file=out)
            continue
        print(
            f"adapting {name} to your ratings in the background ({new} new); log: {log}", file=out
        )
        done.append({"name": name, "status": "started", "log": str(log)})
    return done
