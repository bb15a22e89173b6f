"""What every command shares: names, limits, checks of arguments, output paths, the
record of the command line."""

from __future__ import annotations

import argparse
import inspect
import os
import random
import sys
from collections.abc import Callable, Collection
from pathlib import Path

from engine import names, seeds
from engine.cli import progress as ui
from engine.errors import UserError

PROG = "disco-musica"

# Shown in --help without importing the tokenizer; tests/cli/test_cli.py checks it against STYLES.
STYLE_NAMES = names.STYLE_NAMES

MIDI_SUFFIXES = names.MIDI_SUFFIXES

AUDIO_SUFFIXES = names.AUDIO_SUFFIXES

SIDECAR_SUFFIX = names.SIDECAR_SUFFIX

MAX_SEED = names.MAX_SEED

RANDOM_SEED_LIMIT = 100_000  # seeds picked for the user stay short enough for file names

MAX_TEMPERATURE = names.MAX_TEMPERATURE

MAX_PROGRAM = names.MAX_PROGRAM

EXIT_USER_ERROR = 2

TEMPO_RANGE = f"{names.num(names.MIN_TEMPO_BPM)}..{names.num(names.MAX_TEMPO_BPM)}"

SEED_HELP = f"0..{MAX_SEED}; the same seed makes the same music"

MAX_LIMIT = 10**9  # corpus build --limit, train score --max-steps

MAX_WORKERS = 1024

EXIT_INTERRUPTED = 130

# Options that say where and how to write, not what to make: left out of the recipe.
NOT_RECORDED = {"out", "force", "json", "help", "handler", "parser", "words", "library"}
NOT_RECORDED |= {"no_library"}


DEFAULT_RUNS_DIR = Path("runs")  # where `train ... --out` puts a run by default
MAX_TRAIN_MINUTES = 7 * 24 * 60  # the longest --max-minutes: a week


class CliError(UserError):
    """A problem with the command line's own input (ranges, paths), shown in one line."""


def fill_defaults(args: argparse.Namespace, **command_defaults) -> None:
    """Unset options take the API's defaults (one source of truth); check sampling ranges."""
    from engine.symbolic import score_api as api

    defaults = {
        "temperature": api.DEFAULT_TEMPERATURE,
        "top_k": api.DEFAULT_TOP_K,
        "top_p": api.DEFAULT_TOP_P,
        "key_strength": api.DEFAULT_KEY_STRENGTH,
        "model": api.DEFAULT_MODEL,
        **command_defaults,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(RANDOM_SEED_LIMIT)
    check_range("--temperature", args.temperature, 0.0, MAX_TEMPERATURE)
    if args.top_k < 0:
        raise CliError(f"--top-k must be 0 or more, not {args.top_k}")
    if not 0 < args.top_p <= 1:
        raise CliError(f"--top-p must be more than 0 and at most 1, not {args.top_p:g}")
    check_range("--key-strength", args.key_strength, 0.0, api.MAX_KEY_STRENGTH)
    check_seed(args.seed)


def default_of(method: Callable, name: str):
    """The default value of a keyword parameter of an API method."""
    return inspect.signature(method).parameters[name].default


def sampling_args(args: argparse.Namespace) -> dict:
    return {
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "key_strength": args.key_strength,
        "seed": args.seed,
    }


def load_model(name_or_path: str):
    from engine.symbolic import score_api as api

    with ui.status_spinner(f"Loading model {name_or_path}"):
        return api.load(name_or_path)


def shown_path(path: Path) -> str:
    """A path as the user would type it: relative when it is inside the current folder."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def recorded_args(args: argparse.Namespace, skip: Collection[str] = ()) -> list[str]:
    """The command's arguments with every value spelled out (seed and defaults included),
    leaving out NOT_RECORDED and ``skip`` (option names as argparse stores them)."""
    words = list(args.words)
    for action in args.parser._actions:
        if action.dest in NOT_RECORDED or action.dest in skip:
            continue
        value = getattr(args, action.dest, None)
        if value is None or value is False:
            continue
        if not action.option_strings:
            words.append(str(value))
        elif value is True:
            words.append(action.option_strings[-1])
        else:
            words += [action.option_strings[-1], format_value(value)]
    return words


def format_value(value) -> str:
    if isinstance(value, float):
        return repr(value) if value != int(value) else str(int(value))
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def quote_arg(word: str) -> str:
    import shlex

    return shlex.quote(word)


def check_range(name: str, value, lo, hi, what: str | None = None) -> None:
    if not lo <= value <= hi:
        if what:
            raise CliError(f"{what} {names.num(value)} does not exist ({name} allows {lo}..{hi})")
        nearest = lo if value < lo else hi
        raise CliError(
            f"{name} must be {names.num(lo)}..{names.num(hi)}, not {names.num(value)}; use "
            f"{names.num(nearest)}"
        )


def check_seed(value, count: int = 1) -> None:
    """``--seed`` in range, with the message every face gives (`engine.seeds.check_seed`);
    ``count``: the variations that use ``value`` and the seeds after it."""
    seeds.check_seed(value, CliError, count=count, name="--seed")


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def split_list(text: str) -> list[str]:
    return [w.strip() for w in text.split(",") if w.strip()]


def parse_ints(name: str, text: str) -> list[int]:
    try:
        values = [int(w) for w in split_list(text)]
    except ValueError:
        raise CliError(f"{name} takes whole numbers separated by commas, not {text!r}") from None
    if not values:
        raise CliError(f"{name} needs at least one number")
    return values


def parse_programs(text: str | None) -> list[int] | None:
    if text is None:
        return None
    programs = parse_ints("--programs", text)
    for p in programs:
        check_range("--programs", p, 0, MAX_PROGRAM)
    return programs


def parse_bar_range(text: str) -> tuple[int, int]:
    """'4-5' → (4, 5); '4' → (4, 4). Bars count from 1; both ends are included."""
    parts = text.replace(" ", "").split("-")
    try:
        if len(parts) not in (1, 2):
            raise ValueError
        first, last = int(parts[0]), int(parts[-1])
    except ValueError:
        raise CliError(f"--bars takes a bar or a range such as 4-5, not {text!r}") from None
    if first < 1 or last < first:
        raise CliError(f"--bars {text}: bars count from 1 and the range must go forward")
    return first, last


def check_out(out: str | None, force: bool) -> Path | None:
    """The output path, checked before any work: folder exists and is writable; an existing
    file is replaced (--force) only if Disco-Musica wrote it (`engine.record.check_new_file`)."""
    from engine.record import check_new_file

    if out is None:
        check_writable_dir(Path.cwd())
        return None
    path = Path(out).expanduser()
    if path.suffix.lower() not in MIDI_SUFFIXES:
        raise CliError(f"--out {out}: give a file name ending in .mid")
    if path.is_dir():
        raise CliError(f"--out {out} is a folder; give a file name ending in .mid")
    check_writable_dir(path.absolute().parent)
    check_new_file(path, [path.with_suffix(SIDECAR_SUFFIX)], force=force)
    return path


def check_run_folder(out: Path, resume: bool, run_files: Collection[str]) -> Path:
    """A training run's ``--out`` folder, checked before anything is written: ``resume``
    needs a checkpoint in it, a new run needs none; it must not be a folder we protect
    (home, the project, a system folder) nor hold files other than ``run_files`` (names a
    run writes; hidden files aside). One line each."""
    from engine.record import protected_reason
    from engine.train.trainer import CHECKPOINT_DIR

    if resume and not (out / CHECKPOINT_DIR).is_dir():
        raise CliError(f"{out} has no checkpoint to resume; leave out --resume to start a run")
    if not resume and (out / CHECKPOINT_DIR).is_dir():
        raise CliError(
            f"{out} already holds a training run; add --resume to continue it or choose "
            "another --out"
        )
    why = protected_reason(out)
    if why:
        raise CliError(f"--out {out} {why}; give a new folder for the run, e.g. {out / 'run'}")
    if out.exists() and (
        not out.is_dir()
        or {p.name for p in out.iterdir() if not p.name.startswith(".")} - set(run_files)
    ):
        raise CliError(f"{out} holds files that are not a training run's; choose another --out")
    return out


def check_writable_dir(folder: Path) -> None:
    if not folder.is_dir():
        raise CliError(f"cannot write to {folder}: no such folder; create it or change --out")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"cannot write to {folder}: permission denied; change --out")


def new_path(folder: Path, stem: str) -> Path:
    """folder/stem.mid, or stem-2.mid, stem-3.mid ... if it or its sidecar exists."""
    n = 1
    while True:
        path = folder / (f"{stem}.mid" if n == 1 else f"{stem}-{n}.mid")
        if not path.exists() and not path.with_suffix(SIDECAR_SUFFIX).exists():
            return path
        n += 1


def write_outputs(files: list[tuple[Path, bytes]], force: bool = True) -> None:
    """Write a MIDI file and its sidecar together (`engine.record.write_files`).

    ``check_out`` has already refused existing files without --force; what exists now is
    replaced only if Disco-Musica wrote it, and goes to the trash (the line says where).
    """
    from engine.record import write_files

    for old, trash in zip([p for p, _ in files], write_files(files, force=force), strict=False):
        say_replaced(old, trash)


def say_replaced(old: Path, trash: Path | str | None) -> None:
    """Tell where a replaced output went (stderr), when one was replaced."""
    if trash:
        from engine.record import trash_hint

        print(f"note: {trash_hint(Path(old), Path(trash))}", file=sys.stderr)


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def program_version() -> str:
    from engine import __version__

    return __version__


def sampling_options(p: argparse.ArgumentParser, audio_key_strength: float | None = None) -> None:
    """The sampling options of the MIDI commands; ``audio_key_strength``: the default
    ``--key-strength`` when the input is a recording (continue: engine.pipelines.workflows)."""
    p.add_argument(
        "--temperature",
        type=float,
        metavar="T",
        help=f"randomness, 0..{names.num(MAX_TEMPERATURE)} (default "
        f"{names.num(names.DEFAULT_TEMPERATURE)})",
    )
    p.add_argument(
        "--top-k",
        type=int,
        metavar="K",
        help=f"sample from the K likeliest tokens only, 0 or more (default "
        f"{names.DEFAULT_TOP_K}: no limit)",
    )
    p.add_argument(
        "--top-p",
        type=float,
        metavar="P",
        help=f"sample from the likeliest tokens covering P of the chance, 0 < P <= 1 (default "
        f"{names.num(names.DEFAULT_TOP_P)})",
    )
    audio = (
        "" if audio_key_strength is None else f"; {names.num(audio_key_strength)} for a recording"
    )
    p.add_argument(
        "--key-strength",
        type=float,
        metavar="S",
        help=f"bonus for notes of the key's scale, 0..{names.num(names.MAX_KEY_STRENGTH)}; 0 "
        f"leaves the "
        f"key to the model alone (default {names.num(names.DEFAULT_KEY_STRENGTH)}{audio})",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help=f"{SEED_HELP} (default: a new random seed, written to the sidecar)",
    )
    p.add_argument(
        "--model",
        metavar="NAME|DIR",
        help=f"score model name or model folder (default {names.DEFAULT_MODEL})",
    )
    p.add_argument(
        "--out",
        metavar="FILE.mid",
        help="MIDI file to write; its sidecar is FILE.json (default: a new file here)",
    )
    p.add_argument("--force", action="store_true", help="overwrite FILE.mid and FILE.json")
    p.add_argument("--json", action="store_true", help="print the result as a JSON object")


def output_folders(args: argparse.Namespace, fallback: str) -> list[Path]:
    """One new folder per piece; checked (a new name, or with --overwrite one of our outputs
    to replace; a writable parent) before any work. The folders above them (the default
    root, the variations' folder) are made only when a piece is written (`plan_dirs`)."""
    from engine.record import DEFAULT_ROOT, check_new_folder, plan_dirs, prompt_words, unique_folder

    n = args.variations
    if args.out and n == 1:
        folders = [Path(args.out).expanduser()]
    elif args.out:
        base = Path(args.out).expanduser()
        if base.is_symlink() or (base.exists() and not base.is_dir()):
            raise CliError(f"--out {base} is a file; give a folder for the variations")
        plan_dirs(base)
        folders = [base / f"variation-{i + 1}" for i in range(n)]
    else:
        plan_dirs(DEFAULT_ROOT)
        words = prompt_words(args.prompt, fallback)
        folders = []
        for i in range(n):
            seed = seeds.derive_seed(args.seed, "variation", i)
            folders.append(unique_folder(DEFAULT_ROOT, f"{words}-{seed}", folders))
    for f in folders:
        check_new_folder(f, args.overwrite, CliError)
    return folders


def add_library_option(p: argparse.ArgumentParser, keeps: bool) -> None:
    """``--library PATH`` (and, for commands that write pieces, ``--no-library``)."""
    p.add_argument(
        "--library",
        metavar="PATH",
        help=f"the library folder (default: ${names.LIBRARY_ENV}, else your user data folder)",
    )
    if keeps:
        p.add_argument(
            "--no-library",
            action="store_true",
            help="do not keep what this command writes in the library",
        )
