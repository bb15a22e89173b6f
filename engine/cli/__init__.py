"""``disco-musica``: the command line of Disco-Musica.

    disco-musica generate "a calm chorale in G major for choir, 30 seconds"
    disco-musica replay disco-musica-output/a-calm-chorale-in-g-1234/generation.json
    disco-musica prompt
    disco-musica sketch --style chorale --key G --bars 8 --out chorale.mid
    disco-musica continue sketch.mid --bars 4
    disco-musica add-tracks melody.mid --parts alto,tenor,bass
    disco-musica regenerate piece.mid --bars 4-5
    disco-musica corpus build
    disco-musica train score --corpus music21 --preset base
    disco-musica models

``generate`` writes a new folder per piece (audio, MIDI, MusicXML and generation.json, which
``replay`` turns back into the same files); the MIDI commands (sketch, continue, add-tracks,
regenerate) write a MIDI file and, beside it, a JSON sidecar that records how to make the
same file again (command, seed, model hash, versions).  Problems a user can fix
are printed as one ``error: ...`` line with exit status 2; nothing is left half-written.
Heavy imports (MLX, MidiTok, music21) happen inside the commands so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import inspect
import json
import math
import os
import platform
import random
import signal
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from engine import names
from engine.atomic import sha256_file
from engine.errors import Stopped, UserError, check_stop, clear_stop, one_line, request_stop

PROG = "disco-musica"
DEFAULT_CORPUS_DIR = Path("data") / "music21"
CORPUS_MUSIC21 = "music21"
DEFAULT_RUNS_DIR = Path("runs")
# Shown in --help without importing the tokenizer; tests/cli/test_cli.py checks it against STYLES.
STYLE_NAMES = "chorale, renaissance, madrigal, medieval, celtic, folk, classical"
MIDI_SUFFIXES = (".mid", ".midi")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
SIDECAR_SUFFIX = ".json"
MAX_SEED = names.MAX_SEED
RANDOM_SEED_LIMIT = 100_000  # seeds picked for the user stay short enough for file names
MAX_TEMPERATURE = names.MAX_TEMPERATURE
MAX_PROGRAM = names.MAX_PROGRAM
STOP_REASONS = {
    "max_steps": "step limit reached",
    "early_stop": "validation loss stopped improving",
    "time_budget": "time limit reached",
    "data_exhausted": "no more training data",
}
MAX_TRAIN_MINUTES = 7 * 24 * 60  # a week
EXIT_USER_ERROR = 2
_n = names.num  # numbers in help texts: 0.9, 300, 4294967295
TEMPO_RANGE = f"{_n(names.MIN_TEMPO_BPM)}..{_n(names.MAX_TEMPO_BPM)}"
SEED_HELP = f"0..{MAX_SEED}; the same seed makes the same music"
MAX_LIMIT = 10**9  # corpus build --limit, train score --max-steps
MAX_WORKERS = 1024
EXIT_INTERRUPTED = 130
# Options that say where and how to write, not what to make: left out of the recipe.
NOT_RECORDED = {"out", "force", "json", "help", "handler", "parser", "words"}


class CliError(UserError):
    """A problem with the command line's own input (ranges, paths), shown in one line."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other error of the command."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"error: {message}; see `{self.prog} --help`\n")


# ---- entry point ---------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 user error, 130 interrupted,
    128 + N for signal N: SIGTERM and SIGHUP stop a command as Ctrl-C does)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors (already printed)
        return e.code if isinstance(e.code, int) else EXIT_USER_ERROR
    from engine import record

    clear_stop()
    restore = _stop_on_signals()
    code = EXIT_USER_ERROR
    try:
        record.sweep_stale()
        with _warnings_as_lines():
            code = args.handler(args) or 0
        check_stop()  # a stop that a library swallowed still ends the run as stopped
        return code
    except KeyboardInterrupt as e:
        print("interrupted", file=sys.stderr)
        code = 128 + getattr(e, "signum", signal.SIGINT)
        return code
    except Exception as e:
        if not isinstance(e, _user_error_types()):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        if code == 0:
            record.forget_made_dirs()
        else:
            record.remove_made_dirs()
        restore()


@contextlib.contextmanager
def _warnings_as_lines():
    """Show each `engine.errors.InputWarning` as one ``warning: ...`` line on stderr (once per
    text) instead of Python's ``file:line: InputWarning: ...`` form."""
    import warnings

    from engine.errors import InputWarning

    shown: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("always", InputWarning)
        python_show = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if not issubclass(category, InputWarning):
                return python_show(message, category, filename, lineno, file, line)
            text = one_line(message if isinstance(message, Warning) else Warning(message))
            if text not in shown:
                shown.add(text)
                print(f"warning: {text}", file=sys.stderr)

        warnings.showwarning = show
        yield


def _stop_on_signals() -> Callable[[], None]:
    """Turn SIGINT, SIGTERM and SIGHUP into `Stopped` (main thread only), remembered (see
    `engine.errors.request_stop`) in case a library swallows it; return the undo."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum, frame):
        request_stop(signum)
        raise Stopped(signum)

    names = ("SIGINT", "SIGTERM", "SIGHUP")
    old = {n: signal.signal(getattr(signal, n), stop) for n in names if hasattr(signal, n)}

    def restore() -> None:
        for n, handler in old.items():
            signal.signal(getattr(signal, n), handler)

    return restore


def _user_error_types() -> tuple[type[BaseException], ...]:
    return (UserError, OSError)


def _one_line(e: BaseException) -> str:
    return one_line(e)


# ---- argument parsing ----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Disco-Musica: make music on your own computer. Offline, no account, no GPU.",
        epilog=f"Run `{PROG} COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from engine.cli import accompany as cli_accompany
    from engine.cli import generate as cli_generate
    from engine.cli import soundfonts as cli_soundfonts
    from engine.cli import transcribe as cli_transcribe
    from engine.cli import workflows as cli_workflows

    cli_generate.add_commands(sub, _command)
    cli_transcribe.add_commands(sub, _command)
    cli_workflows.add_commands(sub, _command)
    cli_accompany.add_commands(sub, _command)

    p = _command(
        sub,
        "sketch",
        _cmd_generate,
        "write a MIDI sketch from the score model's conditions alone",
        ("sketch",),
    )
    p.add_argument("--style", help=f"{STYLE_NAMES} (default: the model chooses)")
    p.add_argument("--key", help="tonic: C, C#, Db, D, ... B (default: the model chooses)")
    p.add_argument("--mode", choices=("major", "minor"), help="major or minor (default: any)")
    p.add_argument("--meter", help="time signature such as 4/4, 3/4, 6/8 (default: any)")
    p.add_argument(
        "--tempo",
        type=float,
        metavar="BPM",
        help=f"beats per minute, {TEMPO_RANGE} (default: the model chooses)",
    )
    p.add_argument(
        "--voices",
        type=int,
        metavar="N",
        help=f"number of parts, 1..{names.MAX_VOICES} (default: the model chooses)",
    )
    p.add_argument(
        "--programs",
        metavar="P,P,...",
        help=f"General MIDI program (0..{MAX_PROGRAM}) of each part, e.g. 52,52,52,52 for a choir",
    )
    p.add_argument(
        "--parts",
        metavar="P,P,...",
        help="register of each part: soprano, alto, tenor, bass, melody, bassline, high, low, "
        "mezzo, baritone (default: 2-8 voices are laid out soprano..bass)",
    )
    p.add_argument(
        "--bars",
        type=int,
        metavar="N",
        help=f"length in bars, 1..{names.MAX_BARS} (default {names.DEFAULT_BARS})",
    )
    cli_generate.part_writing_options(p)
    _sampling_options(p)

    p = _command(
        sub,
        "continue",
        _cmd_continue,
        "add new bars at the end of a MIDI file or of a recording (transcribed), or new "
        "seconds of audio after a clip with --model musicgen-*",
        ("continue",),
    )
    p.add_argument("input", metavar="INPUT", help="the MIDI or audio file to continue")
    p.add_argument(
        "--bars",
        type=int,
        metavar="N",
        help=f"new bars to add, 1..{names.MAX_BARS} (default {names.DEFAULT_CONTINUE_BARS})",
    )
    p.add_argument("--style", help=f"{STYLE_NAMES} (default: the model chooses)")
    _sampling_options(p, audio_key_strength=names.WORKFLOW_KEY_STRENGTH)
    a = p.add_argument_group("audio input (MusicGen: --model musicgen-small and the family)")
    a.add_argument("--prompt", default="", metavar="TEXT", help="what the continuation is")
    a.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help=f"seconds to add, more than 0, at most {_n(names.MUSICGEN_MAX_SECONDS)} "
        f"(default {_n(names.MUSICGEN_DEFAULT_SECONDS)})",
    )
    a.add_argument("--formats", default="wav", metavar="LIST", help="wav, flac, ogg, mp3")
    a.add_argument(
        "--bit-depth",
        type=int,
        default=names.DEFAULT_BIT_DEPTH,
        choices=names.BIT_DEPTHS,
        help=f"WAV/FLAC bits (default {names.DEFAULT_BIT_DEPTH})",
    )
    a.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")

    p = _command(
        sub,
        "add-tracks",
        _cmd_add_tracks,
        "write new parts against the parts of a MIDI file",
        ("add-tracks",),
    )
    p.add_argument("input", metavar="INPUT.mid", help="the MIDI file to add parts to")
    p.add_argument(
        "--parts",
        metavar="PART,...",
        help="register of each new part: soprano, alto, tenor, bass, melody, bassline, high, "
        "low (default alto,tenor,bass)",
    )
    p.add_argument(
        "--programs",
        metavar="P,P,...",
        help=f"General MIDI program (0..{MAX_PROGRAM}) of each new part (default: the first "
        "given part's)",
    )
    p.add_argument("--style", help=f"{STYLE_NAMES} (default: the model chooses)")
    _sampling_options(p)

    p = _command(
        sub,
        "regenerate",
        _cmd_regenerate,
        "rewrite some bars of a MIDI file and keep the rest",
        ("regenerate",),
    )
    p.add_argument("input", metavar="INPUT.mid", help="the MIDI file to change")
    p.add_argument(
        "--bars",
        required=True,
        metavar="A-B",
        help="bars to rewrite, counted from 1, both ends included (4-5, or 4 for one bar)",
    )
    p.add_argument(
        "--tracks",
        metavar="T,...",
        help="tracks to rewrite, counted from 1 in file order (default: all)",
    )
    p.add_argument("--style", help=f"{STYLE_NAMES} (default: the model chooses)")
    _sampling_options(p)

    corpus = sub.add_parser("corpus", help="training data").add_subparsers(
        dest="corpus_command", required=True, metavar="COMMAND"
    )
    p = _command(
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
        help=f"only N files, taken across styles, 1..{MAX_LIMIT} (default: all)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=f"parallel processes, 1..{MAX_WORKERS} (default: the CPUs)",
    )
    p.add_argument("--force", action="store_true", help="replace a corpus already in DIR")

    train = sub.add_parser("train", help="train models").add_subparsers(
        dest="train_command", required=True, metavar="MODEL"
    )
    p = _command(
        train, "score", _cmd_train_score, "train the symbolic score model", ("train", "score")
    )
    p.add_argument(
        "--corpus",
        required=True,
        metavar="music21|DIR",
        help=f"a built corpus folder, or music21 for {DEFAULT_CORPUS_DIR} (built if missing)",
    )
    p.add_argument("--preset", default="base", help="model size and schedule (default base)")
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
        help=f"stop after N steps, 1..{MAX_LIMIT} (default: the preset's)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        metavar="M",
        help="stop after M minutes, more than 0 (default: the preset's)",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help=f"random seed, 0..{MAX_SEED} (default 0)"
    )

    evaluate = sub.add_parser("eval", help="measure model quality").add_subparsers(
        dest="eval_command", required=True, metavar="MODEL"
    )
    p = _command(
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
        "--seed", type=int, default=0, metavar="N", help=f"first seed, 0..{MAX_SEED} (default 0)"
    )
    p.add_argument(
        "--key-strength",
        type=float,
        metavar="S",
        help=f"scale bonus while generating, 0..{_n(names.MAX_KEY_STRENGTH)}; 0 = the model "
        f"alone (default {_n(names.DEFAULT_KEY_STRENGTH)})",
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

    p = _command(
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
        "--seed", type=int, default=0, metavar="N", help=f"first seed, 0..{MAX_SEED} (default 0)"
    )
    p.add_argument(
        "--out",
        default="eval/prompts",
        metavar="PATH",
        help="report path without suffix: writes PATH.json and PATH.md (default eval/prompts)",
    )

    _command(sub, "models", _cmd_models, "list the models: score models and MusicGen", ("models",))
    cli_soundfonts.add_commands(sub, _command)
    return parser


def _command(sub, name: str, handler: Callable, help_text: str, words: tuple[str, ...]):
    p = sub.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:])
    p.set_defaults(handler=handler, parser=p, words=words)
    return p


def _sampling_options(p: argparse.ArgumentParser, audio_key_strength: float | None = None) -> None:
    """The sampling options of the MIDI commands; ``audio_key_strength``: the default
    ``--key-strength`` when the input is a recording (continue: engine.pipelines.workflows)."""
    p.add_argument(
        "--temperature",
        type=float,
        metavar="T",
        help=f"randomness, 0..{_n(MAX_TEMPERATURE)} (default {_n(names.DEFAULT_TEMPERATURE)})",
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
        f"{_n(names.DEFAULT_TOP_P)})",
    )
    audio = "" if audio_key_strength is None else f"; {_n(audio_key_strength)} for a recording"
    p.add_argument(
        "--key-strength",
        type=float,
        metavar="S",
        help=f"bonus for notes of the key's scale, 0..{_n(names.MAX_KEY_STRENGTH)}; 0 leaves the "
        f"key to the model alone (default {_n(names.DEFAULT_KEY_STRENGTH)}{audio})",
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


# ---- music commands --------------------------------------------------------------------------
def _cmd_generate(args: argparse.Namespace) -> int:
    from engine.symbolic import score_api as api
    from engine.symbolic.tokenizer import MAX_VOICES

    _fill_defaults(args, bars=api.DEFAULT_BARS)
    _check_range("--bars", args.bars, 1, api.MAX_BARS)
    if args.voices is not None:
        _check_range("--voices", args.voices, 1, MAX_VOICES)
    if args.tempo is not None:
        _check_range("--tempo", args.tempo, api.MIN_TEMPO_BPM, api.MAX_TEMPO_BPM)
    programs = _parse_programs(args.programs)
    api.check_polyphony(args.polyphony)
    api.check_voice_leading(args.voice_leading)
    api.check_request(
        style=args.style,
        key=args.key,
        mode=args.mode,
        meter=args.meter,
        parts=_split(args.parts) if args.parts else None,
        programs=programs,
        model=args.model,
        **_sampling(args),
    )
    out = _check_out(args.out, args.force)
    model = _load_model(args.model)
    with _TokenProgress("Generating") as progress:
        piece = model.generate(
            style=args.style,
            key=args.key,
            mode=args.mode,
            meter=args.meter,
            tempo_bpm=args.tempo,
            voices=args.voices,
            programs=programs,
            parts=_split(args.parts) if args.parts else None,
            bars=args.bars,
            **_sampling(args),
            progress=progress,
            polyphony=args.polyphony,
            voice_leading=args.voice_leading,
            double_stops=args.double_stops,
        )
    stem = f"{PROG}-{piece.conditions.get('style', 'piece')}-{args.seed}"
    return _finish(args, piece, model, out, stem)


def _cmd_continue(args: argparse.Namespace) -> int:
    from engine.symbolic import score_api as api

    if Path(args.input).suffix.lower() in AUDIO_SUFFIXES:
        from engine.pipelines.musicgen import is_musicgen

        if args.model and is_musicgen(args.model):
            from engine.cli.generate import continue_audio

            return continue_audio(args)
        from engine.cli.workflows import continue_audio_with_score_model

        return continue_audio_with_score_model(args)
    for flag, value in (("--prompt", args.prompt), ("--duration", args.duration)):
        if value:
            raise CliError(f"{flag} is for continuing audio with MusicGen; give an audio file")

    _fill_defaults(args, bars=_default_of(api.ScoreModel.continue_score, "bars"))
    _check_range("--bars", args.bars, 1, api.MAX_BARS)
    api.check_request(args.input, style=args.style, model=args.model, **_sampling(args))
    out = _check_out(args.out, args.force)
    model = _load_model(args.model)
    with _TokenProgress("Continuing") as progress:  # the path: its sidecar may name a style
        piece = model.continue_score(
            args.input, bars=args.bars, style=args.style, **_sampling(args), progress=progress
        )
    stem = f"{Path(args.input).stem}-continued-{args.seed}"
    return _finish(args, piece, model, out, stem, source=Path(args.input))


def _cmd_add_tracks(args: argparse.Namespace) -> int:
    from engine.symbolic import score_api as api

    _fill_defaults(args, parts=_default_of(api.ScoreModel.add_tracks, "parts"))
    parts = _split(args.parts) if isinstance(args.parts, str) else list(args.parts)
    args.parts = ",".join(parts)
    programs = _parse_programs(args.programs)
    api.check_request(
        args.input,
        style=args.style,
        parts=parts,
        programs=programs,
        model=args.model,
        **_sampling(args),
    )
    out = _check_out(args.out, args.force)
    model = _load_model(args.model)
    with _TokenProgress("Writing parts") as progress:  # the path: its sidecar may name a style
        piece = model.add_tracks(
            args.input,
            parts=parts,
            programs=programs,
            style=args.style,
            **_sampling(args),
            progress=progress,
        )
    stem = f"{Path(args.input).stem}-with-{'-'.join(parts)}-{args.seed}"
    return _finish(args, piece, model, out, stem, source=Path(args.input))


def _cmd_regenerate(args: argparse.Namespace) -> int:
    from engine.symbolic import score_api as api

    _fill_defaults(args)
    first, last = _parse_bar_range(args.bars)
    track_numbers = None if args.tracks is None else _parse_ints("--tracks", args.tracks)
    api.check_request(args.input, style=args.style, model=args.model, **_sampling(args))
    num_bars, num_tracks = api.input_shape(args.input, args.model)
    if last > num_bars:
        raise CliError(f"--bars {args.bars} is outside the piece: it has bars 1-{num_bars}")
    tracks = None
    if track_numbers is not None:
        for t in track_numbers:
            _check_range("--tracks", t, 1, num_tracks, what="track")
        tracks = sorted({t - 1 for t in track_numbers})
    out = _check_out(args.out, args.force)
    model = _load_model(args.model)
    with _TokenProgress("Regenerating") as progress:
        piece = model.regenerate_bars(
            args.input,
            start_bar=first - 1,
            end_bar=last - 1,
            tracks=tracks,
            style=args.style,
            **_sampling(args),
            progress=progress,
        )
    stem = f"{Path(args.input).stem}-bars{first}-{last}-{args.seed}"
    return _finish(args, piece, model, out, stem, source=Path(args.input))


def _fill_defaults(args: argparse.Namespace, **command_defaults) -> None:
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
    _check_range("--temperature", args.temperature, 0.0, MAX_TEMPERATURE)
    if args.top_k < 0:
        raise CliError(f"--top-k must be 0 or more, not {args.top_k}")
    if not 0 < args.top_p <= 1:
        raise CliError(f"--top-p must be more than 0 and at most 1, not {args.top_p:g}")
    _check_range("--key-strength", args.key_strength, 0.0, api.MAX_KEY_STRENGTH)
    _check_range("--seed", args.seed, 0, MAX_SEED)


def _default_of(method: Callable, name: str):
    """The default value of a keyword parameter of an API method."""
    return inspect.signature(method).parameters[name].default


def _sampling(args: argparse.Namespace) -> dict:
    return {
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "key_strength": args.key_strength,
        "seed": args.seed,
    }


def _load_model(name_or_path: str):
    from engine.symbolic import score_api as api

    with _status(f"Loading model {name_or_path}"):
        return api.load(name_or_path)


def _finish(args, piece, model, out: Path | None, stem: str, source: Path | None = None) -> int:
    """Write the MIDI file and its sidecar; print where they are."""
    if out is None:
        out = _new_path(Path.cwd(), stem)
    sidecar = out.with_suffix(SIDECAR_SUFFIX)
    midi = piece.to_midi_bytes()
    record = _recipe(args, piece, model, midi, out, source)
    _write_files([(out, midi), (sidecar, (json.dumps(record, indent=1) + "\n").encode())])
    if piece.finish_reason == "length":
        print(
            f"warning: the model's {model.context}-token window filled up before the end; the "
            "last bars may be missing (ask for fewer bars or parts)",
            file=sys.stderr,
        )
    if args.json:
        shown = {**record, "midi": {**record["midi"], "path": str(out)}, "sidecar": str(sidecar)}
        print(json.dumps(shown, indent=1))
    else:
        print(f"wrote {_shown(out)} ({_describe(piece)})")
        print(f"recipe: {_shown(sidecar)} (seed {args.seed}; its command makes the piece again)")
    return 0


def _shown(path: Path) -> str:
    """A path as the user would type it: relative when it is inside the current folder."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _recipe(args, piece, model, midi: bytes, out: Path, source: Path | None) -> dict:
    """What the sidecar records: enough to make the same MIDI bytes again."""
    from engine import __version__

    words = _recorded_args(args)
    record = {
        "command": " ".join(_quote(w) for w in [PROG, *words]),
        "args": words,
        "operation": args.words[0],
        "parameters": {
            k: v
            for k, v in sorted(vars(args).items())
            if k not in NOT_RECORDED and k not in ("command", "input")
        },
        "seed": args.seed,
        "conditions": piece.conditions,
        "requested_conditions": piece.settings.get("requested_conditions", {}),
        "tempo_bpm": piece.settings.get("tempo_bpm"),
        "finish_reason": piece.finish_reason,
        "num_tokens": len(piece.tokens),
        "model": {
            "name": args.model,
            "path": str(Path(model.path).resolve()),
            "sha256": sha256_file(Path(model.path) / "model.safetensors"),
        },
        "midi": {"file": out.name, "sha256": hashlib.sha256(midi).hexdigest()},
        "disco_musica_version": __version__,
        "mlx_version": _package_version("mlx"),
        "platform": f"{platform.system()} {platform.machine()}",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if source is not None:
        record["input"] = {"path": str(source.resolve()), "sha256": sha256_file(source)}
    return record


def _recorded_args(args: argparse.Namespace, skip: Collection[str] = ()) -> list[str]:
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
            words += [action.option_strings[-1], _format_value(value)]
    return words


def _format_value(value) -> str:
    if isinstance(value, float):
        return repr(value) if value != int(value) else str(int(value))
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _quote(word: str) -> str:
    import shlex

    return shlex.quote(word)


def _describe(piece) -> str:
    """'8 bars, 4 tracks: 1 Soprano, 2 Alto, ...; chorale, G major, 4/4, 96 BPM'."""
    score = piece.score
    tracks = ", ".join(f"{i} {t.name or 'Track'}" for i, t in enumerate(score.tracks, 1))
    c = piece.conditions
    facts = [c.get("style"), " ".join(x for x in (c.get("key"), c.get("mode")) if x)]
    facts.append(c.get("meter"))
    if piece.settings.get("tempo_bpm"):
        facts.append(f"{piece.settings['tempo_bpm']:g} BPM")
    head = f"{_plural(_num_bars(score), 'bar')}, {_plural(len(score.tracks), 'track')}: {tracks}"
    return head + "; " + ", ".join(f for f in facts if f)


def _num_bars(score) -> int:
    """Bars up to the last note onset (a last long note may ring past the final bar line)."""
    onsets = [n.time for t in score.tracks for n in t.notes]
    if not onsets or not len(score.time_signatures):
        return 0
    ts = score.time_signatures[0]
    bar_ticks = score.ticks_per_quarter * 4 * ts.numerator / ts.denominator
    return int(max(onsets) // bar_ticks) + 1


# ---- corpus, training, models ----------------------------------------------------------------
def _cmd_corpus_build(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if (out / "pieces.jsonl").is_file() and not args.force:
        raise CliError(f"{out} already holds a corpus; add --force to build it again")
    if out.exists() and not (out / "pieces.jsonl").is_file():
        if not out.is_dir() or any(out.iterdir()):
            raise CliError(f"{out} exists and is not a corpus folder; choose another --out")
    summary = _build_corpus(out, args.styles, args.limit, args.workers)
    _print_corpus_summary(out, summary)
    return 0


def _build_corpus(out: Path, styles: str | None, limit: int | None, workers: int | None) -> dict:
    from engine.data.corpus import build_corpus

    style_list = _parse_styles(styles) if styles else None
    if limit is not None:
        _check_range("--limit", limit, 1, 10**9)
    if workers is not None:
        _check_range("--workers", workers, 1, 1024)
    folder = out.absolute().parent
    while not folder.exists():  # build_corpus makes the missing folders
        folder = folder.parent
    _check_writable_dir(folder)
    with _FileProgress("Building corpus") as progress:
        return build_corpus(out, styles=style_list, limit=limit, workers=workers, progress=progress)


def _print_corpus_summary(out: Path, summary: dict) -> None:
    styles = ", ".join(f"{s} {n}" for s, n in summary["by_style"].items())
    print(
        f"built {out}: {_plural(summary['pieces'], 'piece')} ({styles}), "
        f"{summary['tokens']:,} tokens, {summary['val_pieces']} held out for validation"
    )
    print(f"{summary['failed']} failed; the list is in {out / 'failed.jsonl'}")


def _parse_styles(text: str) -> list[str]:
    import difflib

    from engine.symbolic.tokenizer import STYLES

    styles = _split(text)
    for s in styles:
        if s not in STYLES:
            near = difflib.get_close_matches(s, STYLES, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise CliError(f"unknown style {s!r}; {hint}known styles: {', '.join(STYLES)}")
    return styles


def _cmd_train_score(args: argparse.Namespace) -> int:
    from engine.train.score import PRESETS, train_score
    from engine.train.trainer import CHECKPOINT_DIR

    if args.preset not in PRESETS:
        raise CliError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    if args.max_steps is not None:
        _check_range("--max-steps", args.max_steps, 1, 10**9)
    if args.max_minutes is not None:
        _check_range("--max-minutes", args.max_minutes, 1 / 60, MAX_TRAIN_MINUTES)
    _check_range("--seed", args.seed, 0, MAX_SEED)
    out = Path(args.out) if args.out else DEFAULT_RUNS_DIR / f"score-{args.preset}"
    if args.resume and not (out / CHECKPOINT_DIR).is_dir():
        raise CliError(f"{out} has no checkpoint to resume; leave out --resume to start a run")
    if not args.resume and (out / CHECKPOINT_DIR).is_dir():
        raise CliError(
            f"{out} already holds a training run; add --resume to continue it or choose "
            "another --out"
        )
    from engine.record import protected_reason

    why = protected_reason(out)
    if why:
        raise CliError(f"--out {out} {why}; give a new folder for the run, e.g. {out / 'run'}")
    run_files = {CHECKPOINT_DIR, "best", "model", "model.partial", "log.jsonl"}
    if out.exists() and (not out.is_dir() or {p.name for p in out.iterdir()} - run_files):
        raise CliError(f"{out} holds files that are not a training run's; choose another --out")
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
    with _Spinner(f"Training score model (preset {args.preset}) in {out}") as spinner:

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
    why = STOP_REASONS.get(s["stop_reason"], s["stop_reason"])
    print(f"model: {out / 'model'} ({best}{s['step']} steps, stopped: {why})")
    print(f"try it: {PROG} generate --model {_quote(str(out / 'model'))}")
    return 0


def _cmd_eval_score(args: argparse.Namespace) -> int:
    from engine.symbolic import score_api as api
    from engine.train.evaluate import (
        check_report_target,
        evaluate_score_model,
        report_markdown,
        write_report,
    )

    _check_range("--pieces-per-style", args.pieces_per_style, 1, 1000)
    _check_range("--bars", args.bars, 1, api.MAX_BARS)
    _check_range("--harmonizations", args.harmonizations, 0, 1000)
    _check_range("--seed", args.seed, 0, MAX_SEED)
    if args.key_strength is not None:
        _check_range("--key-strength", args.key_strength, 0.0, api.MAX_KEY_STRENGTH)
    model = args.model or api.DEFAULT_MODEL
    api.resolve_model_path(model)
    default_out = args.out == args.parser.get_default("out")  # eval/ is made for the default
    check_report_target(args.out, make_parent=default_out)
    corpus = Path(args.corpus)
    if not (corpus / "pieces.jsonl").is_file():
        raise CliError(f"{corpus} is not a built corpus; run `{PROG} corpus build` first")
    with _Spinner("Evaluating") as spinner:

        def progress(stage: str, i: int, n: int) -> None:
            spinner.update(f"Evaluating: {stage} {i}/{n}")

        report = evaluate_score_model(
            model,
            corpus,
            pieces_per_style=args.pieces_per_style,
            bars=args.bars,
            harmonizations=args.harmonizations,
            seed=args.seed,
            key_strength=args.key_strength,
            nll=not args.no_nll,
            progress=progress,
        )
    report["command"] = " ".join([PROG, "eval", "score", *_eval_args(args)])
    js, md = write_report(report, args.out, make_parent=default_out)
    print(report_markdown(report))
    print(f"report: {js} and {md}")
    return 0


def _cmd_eval_prompts(args: argparse.Namespace) -> int:
    from engine.pipelines.eval_prompts import evaluate_prompts, report_markdown
    from engine.symbolic import score_api as api
    from engine.train.evaluate import check_report_target, write_report

    _check_range("--seeds", args.seeds, 1, 100)
    _check_range("--seed", args.seed, 0, MAX_SEED)
    model = args.model or api.DEFAULT_MODEL
    api.resolve_model_path(model)
    default_out = args.out == args.parser.get_default("out")
    check_report_target(args.out, make_parent=default_out)
    sm = _load_model(model)
    with _Spinner("Evaluating") as spinner:

        def progress(stage: str, i: int, n: int) -> None:
            spinner.update(f"Evaluating: {stage} {i}/{n}")

        report = evaluate_prompts(sm, seeds=args.seeds, first_seed=args.seed, progress=progress)
    report["command"] = " ".join(
        [PROG, "eval", "prompts", "--model", model, "--seeds", str(args.seeds)]
        + ["--seed", str(args.seed)]
    )
    js, md = write_report(report, args.out, make_parent=default_out, markdown=report_markdown)
    print(report_markdown(report))
    print(f"report: {js} and {md}")
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
        print(f"train one with `{PROG} train score --corpus music21` and use it with --model DIR")
        return 0
    print("Score models (MIDI; shipped, offline):")
    for name in names:
        print(f"{name}{' (default)' if name == api.DEFAULT_MODEL else ''}")
        for line in _model_facts(api.MODELS_DIR / name):
            print(f"  {line}")
    _print_musicgen_catalog()
    return 0


def _print_musicgen_catalog() -> None:
    from engine.pipelines import musicgen_catalog as cat

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


# ---- small helpers -------------------------------------------------------------------------
def _check_range(name: str, value, lo, hi, what: str | None = None) -> None:
    if not lo <= value <= hi:
        if what:
            raise CliError(f"{what} {_num(value)} does not exist ({name} allows {lo}..{hi})")
        nearest = lo if value < lo else hi
        raise CliError(
            f"{name} must be {_num(lo)}..{_num(hi)}, not {_num(value)}; use {_num(nearest)}"
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _split(text: str) -> list[str]:
    return [w.strip() for w in text.split(",") if w.strip()]


def _parse_ints(name: str, text: str) -> list[int]:
    try:
        values = [int(w) for w in _split(text)]
    except ValueError:
        raise CliError(f"{name} takes whole numbers separated by commas, not {text!r}") from None
    if not values:
        raise CliError(f"{name} needs at least one number")
    return values


def _parse_programs(text: str | None) -> list[int] | None:
    if text is None:
        return None
    programs = _parse_ints("--programs", text)
    for p in programs:
        _check_range("--programs", p, 0, MAX_PROGRAM)
    return programs


def _parse_bar_range(text: str) -> tuple[int, int]:
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


def _check_out(out: str | None, force: bool) -> Path | None:
    """The output path, checked before any work: folder exists and is writable; an existing
    file is replaced (--force) only if Disco-Musica wrote it (`engine.record.check_new_file`)."""
    from engine.record import check_new_file

    if out is None:
        _check_writable_dir(Path.cwd())
        return None
    path = Path(out).expanduser()
    if path.suffix.lower() not in MIDI_SUFFIXES:
        raise CliError(f"--out {out}: give a file name ending in .mid")
    if path.is_dir():
        raise CliError(f"--out {out} is a folder; give a file name ending in .mid")
    _check_writable_dir(path.absolute().parent)
    check_new_file(path, [path.with_suffix(SIDECAR_SUFFIX)], force=force)
    return path


def _check_writable_dir(folder: Path) -> None:
    if not folder.is_dir():
        raise CliError(f"cannot write to {folder}: no such folder; create it or change --out")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"cannot write to {folder}: permission denied; change --out")


def _new_path(folder: Path, stem: str) -> Path:
    """folder/stem.mid, or stem-2.mid, stem-3.mid ... if it or its sidecar exists."""
    n = 1
    while True:
        path = folder / (f"{stem}.mid" if n == 1 else f"{stem}-{n}.mid")
        if not path.exists() and not path.with_suffix(SIDECAR_SUFFIX).exists():
            return path
        n += 1


def _write_files(files: list[tuple[Path, bytes]], force: bool = True) -> None:
    """Write a MIDI file and its sidecar together (`engine.record.write_files`).

    ``_check_out`` has already refused existing files without --force; what exists now is
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


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _version() -> str:
    from engine import __version__

    return __version__


# ---- progress display ----------------------------------------------------------------------
def _console():
    from rich.console import Console

    return Console(stderr=True)


def _status(text: str):
    """A spinner while a short step runs (only on a terminal)."""
    import contextlib

    console = _console()
    return console.status(text) if console.is_terminal else contextlib.nullcontext()


class _RichDisplay:
    """Base of the progress displays: a rich Progress (terminal only), stopped on exit."""

    progress = None

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


class _TokenProgress(_RichDisplay):
    """Spinner with the count of tokens written so far.

    The model stops when the music is complete, usually well before its context window, so
    a bar towards the window size would mislead; the count shows that work is going on.
    The display starts with the first token, so errors found earlier print alone.
    """

    def __init__(self, label: str):
        self.label = label
        self.progress = None
        self.task = None

    def __enter__(self) -> _TokenProgress:
        return self

    def __call__(self, tokens: int, window: int) -> None:
        if self.progress is None:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            console = _console()
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed} tokens (window {task.total})"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                disable=not console.is_terminal,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=window)
        self.progress.update(self.task, completed=tokens)


class _FileProgress(_RichDisplay):
    """A bar over corpus files; on a non-terminal, one plain line per tenth of the work."""

    def __init__(self, label: str):
        self.label = label
        self.progress = None
        self.task = None
        self.console = _console()
        self.last_tenth = -1

    def __enter__(self) -> _FileProgress:
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[current]}"),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=None, current="")
        return self

    def __call__(self, done: int, total: int, current: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total, current=current)
            return
        tenth = done * 10 // max(total, 1)
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            print(f"{self.label}: {done}/{total} files", file=sys.stderr, flush=True)


class _Spinner(_RichDisplay):
    """A spinner with elapsed time under lines printed by a long step (only on a terminal)."""

    def __init__(self, label: str):
        self.label = label
        self.progress = None

    def __enter__(self) -> _Spinner:
        console = _console()
        if console.is_terminal:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=None)
        return self

    def update(self, label: str) -> None:
        """Change the text next to the spinner (no-op off a terminal)."""
        if self.progress is not None:
            self.progress.update(self.task, description=label)
