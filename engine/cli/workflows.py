"""``disco-musica harmonize`` and ``restyle``, and continuing audio with the score model.

Workflows on music the user brings (see `engine.pipelines.workflows`); each writes a folder as
``generate`` does. Heavy modules are imported inside the handlers so ``--help`` stays quick.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from engine import names
from engine.cli import common
from engine.cli import progress as ui

_n = names.num
DEFAULT_FORMATS = ",".join(names.DEFAULT_FORMATS)
STYLE_HELP = names.STYLE_NAMES


def add_commands(sub, command) -> None:
    """Register harmonize and restyle on the ``sub`` parsers."""
    p = command(
        sub,
        "harmonize",
        cmd_harmonize,
        "write lower voices under a melody (MIDI, or sung, hummed or played audio)",
        ("harmonize",),
    )
    p.add_argument(
        "melody",
        metavar="MELODY",
        help="a MIDI file, or a WAV/FLAC/OGG/MP3 of one voice or instrument; a part with chords "
        "(or several parts) is reduced to its top line, with a warning",
    )
    p.add_argument(
        "--style",
        default=names.WORKFLOW_DEFAULT_STYLE,
        help=f"{STYLE_HELP} (default {names.WORKFLOW_DEFAULT_STYLE})",
    )
    p.add_argument(
        "--voices",
        type=int,
        default=names.WORKFLOW_DEFAULT_VOICES,
        choices=names.WORKFLOW_VOICES,
        help="voices in all, the melody included: 2 adds a bass, 3 alto and bass, 4 alto, tenor "
        f"and bass (default {names.WORKFLOW_DEFAULT_VOICES})",
    )
    p.add_argument(
        "--program",
        type=int,
        metavar="P",
        help=f"General MIDI program of every part, 0..{names.MAX_PROGRAM} (default: the "
        f"melody's; {names.AUDIO_MELODY_PROGRAM} choir for audio)",
    )
    _common(p)

    p = command(
        sub,
        "restyle",
        cmd_restyle,
        "keep a piece's melody and write its other parts again in another style",
        ("restyle",),
    )
    p.add_argument("input", metavar="INPUT.mid", help="a MIDI file with a melody and other parts")
    p.add_argument("--style", required=True, help=STYLE_HELP)
    p.add_argument(
        "--melody-track",
        type=int,
        metavar="N",
        help="the melody's track, 0 or more: 0 = the first track with notes (default: the "
        "highest part)",
    )
    p.add_argument(
        "--keep-rhythm",
        action="store_true",
        help="keep every old note's onset and length; only its pitch is chosen again",
    )
    _common(p)


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument(
        "--model", metavar="NAME|DIR", help=f"score model (default {names.DEFAULT_MODEL})"
    )
    g.add_argument(
        "--temperature",
        type=float,
        metavar="T",
        help=f"randomness, 0..{names.num(names.MAX_TEMPERATURE)} (default "
        f"{names.num(names.DEFAULT_TEMPERATURE)})",
    )
    g.add_argument(
        "--top-p",
        type=float,
        metavar="P",
        help=f"0 < P <= 1 (default {names.num(names.DEFAULT_TOP_P)})",
    )
    g.add_argument(
        "--key-strength",
        type=float,
        metavar="S",
        help=f"bonus for the key's notes, 0..{names.num(names.MAX_KEY_STRENGTH)} (default "
        f"{names.num(names.WORKFLOW_KEY_STRENGTH)}, firmer than generate's)",
    )
    g.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help=f"0..{names.MAX_SEED}; same seed, same music (default: random)",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--formats",
        default=DEFAULT_FORMATS,
        metavar="LIST",
        help="any of wav, flac, ogg, mp3, mid, musicxml (default wav,mid,musicxml)",
    )
    o.add_argument(
        "--bit-depth",
        type=int,
        default=names.DEFAULT_BIT_DEPTH,
        choices=names.BIT_DEPTHS,
        help=f"WAV/FLAC bits (default {names.DEFAULT_BIT_DEPTH})",
    )
    o.add_argument("--soundfont", metavar="FILE.sf2", help="General MIDI SoundFont for the audio")
    o.add_argument("--out", metavar="DIR", help="folder to create (default: disco-musica-output/…)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    o.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


# ---- handlers ------------------------------------------------------------------------------
def _prepare(args: argparse.Namespace, words: str) -> tuple[list[str], Path]:
    """Checks before any work: seed, ranges, formats, SoundFont; the folder to write."""
    from engine.audio.soundfonts import load_soundfont
    from engine.pipelines.compose import check_formats

    if args.seed is None:
        args.seed = random.SystemRandom().randrange(common.RANDOM_SEED_LIMIT)
    common.check_seed(args.seed)
    if args.temperature is not None:
        common.check_range("--temperature", args.temperature, 0.0, common.MAX_TEMPERATURE)
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise common.CliError(f"--top-p must be more than 0 and at most 1, not {args.top_p:g}")
    if args.key_strength is not None:
        common.check_range("--key-strength", args.key_strength, 0.0, 10.0)
    formats = check_formats([f for f in args.formats.split(",") if f.strip()])
    if args.soundfont is not None or any(f in ("wav", "flac", "ogg", "mp3") for f in formats):
        load_soundfont(args.soundfont)
    ns = argparse.Namespace(
        variations=1, out=args.out, prompt=words, seed=args.seed, overwrite=args.overwrite
    )
    return formats, common.output_folders(ns, "piece")[0]


def _sampling(args: argparse.Namespace) -> dict:
    return {
        "temperature": args.temperature,
        "top_p": args.top_p,
        "key_strength": args.key_strength,
        "seed": args.seed,
    }


def _write(args, comp, formats: list[str], folder: Path, prog, what: str) -> int:

    record = comp.save(
        folder,
        formats=formats,
        soundfont=args.soundfont,
        bit_depth=args.bit_depth,
        overwrite=args.overwrite,
        progress=prog,
    )
    for w in comp.settings.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps({"folder": str(folder), **record}, indent=1))
    else:
        p = comp.plan
        print(
            f"wrote {common.shown_path(folder)}/ ({', '.join(record['outputs'])}); {what}, "
            f"{p.key} {p.mode}, {p.meter}, {p.tempo_bpm:.0f} BPM, {p.bars} bars, seed {p.seed}"
        )
    common.say_replaced(folder, record.get("replaced"))
    return 0


def _check_input(path: str) -> None:

    p = Path(path)
    if not p.exists():
        raise common.CliError(f"{path}: no such file")
    if p.is_dir():
        raise common.CliError(f"{path} is a folder, not a file")


def cmd_harmonize(args: argparse.Namespace) -> int:
    from engine.pipelines import workflows

    _check_input(args.melody)
    if args.program is not None:
        common.check_range("--program", args.program, 0, 127)
    formats, folder = _prepare(args, f"{Path(args.melody).stem} {args.style}")
    workflows.check_harmonize(
        args.melody,
        style=args.style,
        voices=args.voices,
        program=args.program,
        model=args.model,
        **_sampling(args),
    )
    model = common.load_model(args.model or "score-base")
    with ui.StageProgress("") as prog:
        comp = workflows.harmonize(
            args.melody,
            style=args.style,
            voices=args.voices,
            program=args.program,
            model=model,
            progress=prog,
            **_sampling(args),
        )
        what = f"{args.style}, {args.voices} voices"
        return _write(args, comp, formats, folder, prog, what)


def cmd_restyle(args: argparse.Namespace) -> int:
    from engine.pipelines import workflows

    _check_input(args.input)
    formats, folder = _prepare(args, f"{Path(args.input).stem} {args.style}")
    workflows.check_restyle(
        args.input,
        style=args.style,
        melody_track=args.melody_track,
        model=args.model,
        **_sampling(args),
    )
    model = common.load_model(args.model or "score-base")
    with ui.StageProgress("") as prog:
        comp = workflows.restyle(
            args.input,
            style=args.style,
            melody_track=args.melody_track,
            keep_rhythm=args.keep_rhythm,
            model=model,
            progress=prog,
            **_sampling(args),
        )
        what = f"{args.style}{', rhythm kept' if args.keep_rhythm else ''}"
        return _write(args, comp, formats, folder, prog, what)


def continue_audio_with_score_model(args: argparse.Namespace) -> int:
    """``continue clip.wav`` without a MusicGen model: transcribe, then the score model.

    Uses the ``continue`` command's arguments: input, bars, style, model, temperature,
    top_p, key_strength, seed, out (a folder), overwrite, formats (its default ``wav`` means
    wav,mid,musicxml here), bit_depth, json; ``prompt``/``duration`` must be unset, and
    ``soundfont`` is read when present. The sampling options are range-checked as for a MIDI
    input; ``top_k`` must be unset (the transcription is continued without a top-k limit).
    """
    from engine.pipelines import workflows
    from engine.symbolic.score_api import MAX_BARS

    for flag, value in (
        ("--prompt", getattr(args, "prompt", None)),
        ("--duration", getattr(args, "duration", None)),
    ):
        if value:
            raise common.CliError(
                f"{flag} is for MusicGen; add --model musicgen-small, or leave it out to "
                "continue the transcribed notes with the score model"
            )
    _check_input(args.input)
    if args.bars is not None:
        common.check_range("--bars", args.bars, 1, MAX_BARS)
    _check_sampling_as_for_midi(args)
    if getattr(args, "formats", "wav") == "wav":  # the command's default: give notation too
        args.formats = DEFAULT_FORMATS
    for name, default in (("soundfont", None), ("bit_depth", 16), ("json", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    formats, folder = _prepare(args, f"{Path(args.input).stem} continued")
    workflows.check_continue_audio(
        args.input, bars=args.bars, style=args.style, model=args.model, **_sampling(args)
    )
    model = common.load_model(args.model or "score-base")
    with ui.StageProgress("") as prog:
        comp = workflows.continue_audio(
            args.input,
            bars=args.bars,
            style=args.style,
            model=model,
            progress=prog,
            **_sampling(args),
        )
        what = f"transcribed and continued by {comp.model_name}"
        return _write(args, comp, formats, folder, prog, what)


def _check_sampling_as_for_midi(args: argparse.Namespace) -> None:
    """The sampling options of ``continue clip.wav`` checked by the MIDI path's own check
    (`engine.common.fill_defaults`, on a copy: the recording keeps its own defaults, e.g. key
    strength); ``--top-k``, which this path cannot pass on, is refused rather than ignored."""

    common.fill_defaults(argparse.Namespace(**{"top_k": None, **vars(args)}))
    if getattr(args, "top_k", None) is not None:
        raise common.CliError(
            f"--top-k does not apply when a recording is continued (its transcription is "
            f"continued with top-k {names.DEFAULT_TOP_K}: no limit); leave it out, or transcribe "
            "it first (`disco-musica transcribe`) and continue the MIDI file with --top-k"
        )
