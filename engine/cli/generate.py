"""``disco-musica generate "PROMPT"``, ``replay`` and ``prompt``: the text-to-music commands.

Kept apart from `engine.cli` (which owns the entry point, errors and progress displays) so
the main job reads in one place.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

from engine import names
from engine.cli import common
from engine.cli import progress as ui
from engine.seeds import derive_seed

_n = names.num
MAX_VARIATIONS = names.MAX_VARIATIONS
common.RANDOM_SEED_LIMIT = 100_000
DEFAULT_OUTPUT_ROOT = Path("disco-musica-output")
DEFAULT_FORMATS = ",".join(names.DEFAULT_FORMATS)


def part_writing_options(p) -> None:
    """--polyphony, --double-stops and --voice-leading (generate and sketch)."""
    p.add_argument(
        "--polyphony",
        type=int,
        metavar="N",
        help=f"notes a chord instrument may sound at once, 1..{names.MAX_POLYPHONY} "
        "(one-note instruments and voices always 1; default: the instrument's limit)",
    )
    p.add_argument(
        "--double-stops",
        action="store_true",
        help="a solo violin, viola, cello or double bass may play 2 notes at once (other "
        "instruments are unaffected; default: one note at a time)",
    )
    p.add_argument(
        "--voice-leading",
        type=float,
        metavar="S",
        help=f"penalty on parallel fifths/octaves, crossing and wide spacing, "
        f"0..{names.num(names.MAX_VOICE_LEADING)}; 0 = the model alone "
        f"(default {names.num(names.DEFAULT_VOICE_LEADING)})",
    )


def add_commands(sub, command) -> None:
    """Register generate, replay and prompt on the ``sub`` parsers."""
    p = command(sub, "generate", cmd_generate, "make music from a text prompt", ("generate",))
    p.add_argument(
        "prompt",
        nargs="?",
        default="",
        metavar="PROMPT",
        help='what to make, e.g. "a calm chorale in G major for choir, 30 seconds" '
        "(see `disco-musica prompt`; empty = the model chooses everything; - reads it from "
        "standard input)",
    )
    g = p.add_argument_group("what to make (each overrides the prompt's words)")
    g.add_argument(
        "--model",
        metavar="NAME|DIR",
        help=f"score model, or musicgen-small and the family (default {names.DEFAULT_MODEL})",
    )
    g.add_argument(
        "--style",
        help="chorale, renaissance, madrigal, medieval, celtic, folk, classical (default: the "
        "prompt's, or the model chooses)",
    )
    g.add_argument("--mood", help="joy, sadness, anger, tranquility, tension, nostalgia, ...")
    g.add_argument("--key", help="tonic: C, C#, Db, ... B")
    g.add_argument("--mode", choices=("major", "minor"))
    g.add_argument("--meter", help="time signature: 4/4, 3/4, 6/8, 2/4, ...")
    g.add_argument(
        "--tempo",
        type=float,
        metavar="BPM",
        help=f"beats per minute, "
        f"{names.num(names.MIN_TEMPO_BPM)}..{names.num(names.MAX_TEMPO_BPM)} (default: "
        f"the style's, else {names.num(names.DEFAULT_TEMPO_BPM)})",
    )
    g.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help=f"length in seconds, more than 0, at most {names.num(names.COMPOSE_MAX_SECONDS)} and "
        f"{names.COMPOSE_MAX_BARS} bars (MusicGen: at most "
        f"{names.num(names.MUSICGEN_MAX_SECONDS)}, "
        f"default {names.num(names.MUSICGEN_DEFAULT_SECONDS)})",
    )
    g.add_argument(
        "--bars",
        type=int,
        metavar="N",
        help=f"length in bars, 1..{names.COMPOSE_MAX_BARS} (default {names.COMPOSE_DEFAULT_BARS}; "
        f"with a form, {names.DEFAULT_SECTION_BARS} a section)",
    )
    g.add_argument(
        "--instruments", metavar="LIST", help='parts, top to bottom: "violin, viola, cello"'
    )
    g.add_argument(
        "--structure",
        metavar="FORM",
        help='e.g. AABA, "verse chorus verse", or with bars "A:8 A:8 B:4 A:8" (sections share '
        f"the length; default {names.DEFAULT_SECTION_BARS} bars a section; at most "
        f"{names.COMPOSE_MAX_BARS} bars in all)",
    )
    g.add_argument(
        "--progression", metavar="CHORDS", help='one chord a bar: "I-vi-IV-V", "Am F C G"'
    )
    g.add_argument(
        "--dynamics",
        choices=names.DYNAMICS,
        help=f"loudness (default: the prompt's, else {names.DEFAULT_DYNAMICS})",
    )
    g.add_argument(
        "--hairpin",
        dest="dynamics_shape",
        choices=("crescendo", "diminuendo"),
        help="over the piece",
    )
    g.add_argument("--articulation", choices=("legato", "staccato"))
    g.add_argument(
        "--density",
        type=float,
        metavar="0..1",
        help="0..1: 0 sparse, 1 busy (default: the prompt's, else the model's own)",
    )
    g.add_argument(
        "--syncopation",
        type=float,
        metavar="0..1",
        help="0..1: 0 on the beat, 1 off it (default: the prompt's, else the model's own)",
    )
    g.add_argument("--register", choices=("low", "middle", "high"))
    g.add_argument("--contour", choices=("rising", "falling", "arch"), help="of the top part")
    g.add_argument(
        "--creativity",
        type=float,
        metavar="0..1",
        help=f"0..1: 0 conservative, 1 experimental (default "
        f"{names.num(names.DEFAULT_CREATIVITY)})",
    )
    part_writing_options(g)
    g.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help=f"0..{names.MAX_SEED} (less N-1 with --variations N); same seed, same music "
        "(default: random)",
    )
    g.add_argument(
        "--melody", metavar="AUDIO", help="MusicGen melody models: follow this audio's melody"
    )
    g.add_argument(
        "--guidance",
        type=float,
        metavar="G",
        help=f"MusicGen: classifier-free guidance, 0..{names.num(names.MAX_GUIDANCE)} (default "
        f"{names.num(names.DEFAULT_GUIDANCE)})",
    )
    g.add_argument(
        "--variations",
        type=int,
        default=names.DEFAULT_VARIATIONS,
        metavar="N",
        help=f"N pieces, seeds SEED..SEED+N-1, 1..{MAX_VARIATIONS} (default "
        f"{names.DEFAULT_VARIATIONS}); the score model writes them together, up to "
        f"{names.MAX_BATCH_ROWS} at a time, so each can differ from its seed alone: replay "
        "its generation.json",
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
    o.add_argument(
        "--reverb",
        type=float,
        metavar="0..1",
        help=f"room reverb, 0..1 (default {names.num(names.DEFAULT_REVERB)})",
    )
    eq = (
        f"-{names.num(names.EQ_RANGE_DB)}..{names.num(names.EQ_RANGE_DB)} dB (default "
        f"{names.num(names.DEFAULT_EQ_DB)})"
    )
    o.add_argument("--eq-low", type=float, metavar="DB", help=f"low shelf gain, {eq}")
    o.add_argument("--eq-high", type=float, metavar="DB", help=f"high shelf gain, {eq}")
    o.add_argument(
        "--compression",
        type=float,
        metavar="0..1",
        help=f"compressor, 0..1 (default {names.num(names.DEFAULT_COMPRESSION)})",
    )
    o.add_argument(
        "--out",
        metavar="DIR",
        help=f"folder to create (default {DEFAULT_OUTPUT_ROOT}/<words>-<seed>)",
    )
    o.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    o.add_argument("--json", action="store_true", help="print the result as JSON on stdout")

    p = command(sub, "replay", cmd_replay, "make a recorded generation again", ("replay",))
    p.add_argument(
        "record", metavar="generation.json", help="a generation's record (or its folder)"
    )
    p.add_argument("--out", metavar="DIR", help="folder to create (default: beside, -replay)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")

    conv = sub.add_parser("convert", help="convert Hugging Face models to MLX").add_subparsers(
        dest="convert_command", required=True, metavar="FAMILY"
    )
    p = conv.add_parser(
        "musicgen",
        help="a transformers MusicGen snapshot (Hub id or folder) -> MLX folder",
        description="Convert a MusicGen checkpoint (facebook/musicgen-small ... -stereo-*, "
        "-melody) from the Hugging Face Hub or a local snapshot folder into an MLX folder.",
    )
    p.set_defaults(handler=cmd_convert_musicgen, parser=p, words=("convert", "musicgen"))
    p.add_argument("source", metavar="REPO|DIR", help="e.g. facebook/musicgen-small, or a folder")
    p.add_argument("--out", required=True, metavar="DIR", help="the MLX model folder to write")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    p.add_argument(
        "--quantize",
        type=int,
        choices=(4, 8),
        help="decoder linears at 4 or 8 bits (default: none)",
    )
    p.add_argument("--revision", metavar="REV", help="Hub revision (default: the pinned one)")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")

    p = command(sub, "prompt", cmd_prompt, "list the words prompts understand", ("prompt",))
    p.add_argument(
        "text", nargs="?", metavar="PROMPT", help="show how this prompt is read, without generating"
    )


# ---- generate ------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    from engine.audio.render import Effects
    from engine.audio.soundfonts import load_soundfont
    from engine.pipelines.compose import check_formats, compose, compose_variations, plan
    from engine.pipelines.musicgen import is_musicgen

    if not 1 <= args.variations <= MAX_VARIATIONS:
        raise common.CliError(f"--variations must be 1..{MAX_VARIATIONS}, not {args.variations}")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(common.RANDOM_SEED_LIMIT)
    common.check_seed(args.seed, count=args.variations)
    if args.prompt == "-":
        args.prompt = _read_prompt(sys.stdin)
    if is_musicgen(args.model):
        return _generate_musicgen(args)
    for flag, value in (("--melody", args.melody), ("--guidance", args.guidance)):
        if value is not None:
            raise common.CliError(f"{flag} is for MusicGen models; add --model musicgen-melody")
    options = _options(args)
    effects = Effects(
        **{
            k: v
            for k, v in {
                "reverb": args.reverb,
                "eq_low_db": args.eq_low,
                "eq_high_db": args.eq_high,
                "compression": args.compression,
            }.items()
            if v is not None
        }
    )
    effects.validate()
    formats = check_formats([f for f in args.formats.split(",") if f.strip()])
    first_plan, parsed = plan(args.prompt, **options)  # all checks before any work
    if args.soundfont is not None or any(f in ("wav", "flac", "ogg", "mp3") for f in formats):
        load_soundfont(args.soundfont)
    folders = common.output_folders(args, first_plan.style or "piece")
    model = common.load_model(args.model or "score-base")
    _show_understanding(args.prompt, parsed, first_plan, quiet=args.json)
    results = []
    n = len(folders)
    batched = None
    if n > 1:  # the variations are written together, then saved one by one
        with ui.StageProgress("") as prog:
            batched = compose_variations(
                args.prompt,
                count=n,
                seed=args.seed,
                model=model,
                progress=lambda i: prog.piece(f"Piece {i + 1}/{n}"),
                **{k: v for k, v in options.items() if k != "seed"},
            )
    for i, folder in enumerate(folders):
        seed = derive_seed(args.seed, "variation", i)
        with ui.StageProgress(f"Piece {i + 1}/{n}" if n > 1 else "") as prog:
            if batched is not None:
                comp = batched[i]
            else:
                comp = compose(args.prompt, model=model, progress=prog, **{**options, "seed": seed})
            if args.model:
                comp.request["model"] = comp.model_name = args.model
            record = comp.save(
                folder,
                formats=formats,
                soundfont=args.soundfont,
                effects=effects,
                bit_depth=args.bit_depth,
                overwrite=args.overwrite,
                progress=prog,
            )
        results.append((folder, record))
        if not args.json:
            files = ", ".join(record["outputs"])
            print(f"wrote {common.shown_path(folder)}/ ({files}); {_summary(record)}")
        common.say_replaced(folder, record.get("replaced"))
    if args.json:
        out = [{"folder": str(f), **r} for f, r in results]
        print(json.dumps(out[0] if len(out) == 1 else out, indent=1))
    else:
        print(f"replay: disco-musica replay {common.shown_path(results[0][0])}/generation.json")
    return 0


def _generate_musicgen(args: argparse.Namespace, audio_prompt: str | None = None) -> int:
    """generate (and continue, for audio) with a MusicGen model: audio files in a folder."""
    from engine.hub import NON_COMMERCIAL_WARNING
    from engine.pipelines import musicgen as mg

    formats = [f for f in args.formats.split(",") if f.strip()]
    if args.formats == DEFAULT_FORMATS:  # the default asks for notation MusicGen cannot make
        formats = ["wav"]
    steering = {
        "--structure": args.structure,
        "--progression": args.progression,
        "--dynamics": args.dynamics,
        "--hairpin": args.dynamics_shape,
        "--articulation": args.articulation,
        "--density": args.density,
        "--syncopation": args.syncopation,
        "--register": args.register,
        "--contour": args.contour,
        "--meter": args.meter,
        "--bars": args.bars,
        "--soundfont": args.soundfont,
        "--polyphony": args.polyphony,
        "--voice-leading": args.voice_leading,
        "--double-stops": args.double_stops or None,
    }
    given = [k for k, v in steering.items() if v is not None]
    if given:
        raise common.CliError(
            f"{', '.join(given)} cannot steer MusicGen, which reads only text; put it in the "
            "prompt or use the score model"
        )
    formats = mg.check_formats(formats)
    folders = common.output_folders(args, "audio")
    results = []
    for i, folder in enumerate(folders):
        with ui.StageProgress(f"Piece {i + 1}/{len(folders)}" if len(folders) > 1 else "") as prog:
            record = mg.generate_audio_piece(
                args.prompt,
                folder,
                formats=formats,
                bit_depth=args.bit_depth,
                overwrite=args.overwrite,
                model=args.model,
                seconds=args.duration,
                seed=derive_seed(args.seed, "variation", i),
                creativity=args.creativity,
                guidance=mg.DEFAULT_GUIDANCE if args.guidance is None else args.guidance,
                melody=args.melody,
                audio_prompt=audio_prompt,
                progress=prog,
                style=args.style,
                mood=args.mood,
                instruments=args.instruments,
                key=args.key,
                mode=args.mode,
                tempo_bpm=args.tempo,
            )
        results.append(record)
        if not args.json:
            files = ", ".join(record["outputs"])
            s = record["settings"]
            print(
                f"wrote {common.shown_path(folder)}/ ({files}); {s['total_seconds']:.1f} s, "
                f"text {s['text']!r}, seed {record['seed']}"
            )
        common.say_replaced(folder, record.get("replaced"))
    print(f"warning: {NON_COMMERCIAL_WARNING}", file=sys.stderr)
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=1))
    else:
        print(f"replay: disco-musica replay {common.shown_path(folders[0])}/generation.json")
    return 0


def continue_audio(args: argparse.Namespace) -> int:
    """``continue clip.wav --model musicgen-small``: the clip, then new seconds of music."""
    from engine.pipelines.musicgen import is_musicgen

    model = args.model
    if not is_musicgen(model):
        raise common.CliError(
            f"{args.input} is audio: continue it with a MusicGen model (--model musicgen-small)"
        )
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(common.RANDOM_SEED_LIMIT)
    common.check_seed(args.seed)  # before its folder is named after it
    steering = dict.fromkeys(
        (
            "structure progression dynamics dynamics_shape articulation density syncopation "
            "register contour meter bars soundfont style mood instruments key mode tempo melody "
            "polyphony voice_leading double_stops"
        ).split()
    )
    ns = argparse.Namespace(
        **{
            **steering,
            "prompt": args.prompt,
            "model": model,
            "formats": args.formats,
            "bit_depth": args.bit_depth,
            "duration": args.duration,
            "creativity": None,
            "guidance": None,
            "variations": 1,
            "seed": args.seed,
            "out": args.out,
            "overwrite": args.overwrite,
            "json": args.json,
            "bars": None,
        }
    )
    if args.bars is not None or args.style is not None:
        raise common.CliError("--bars and --style are for MIDI input; use --duration and --prompt")
    return _generate_musicgen(ns, audio_prompt=args.input)


def _read_prompt(stream, limit: int = 1 << 20) -> str:
    """The prompt from standard input (at most ``limit`` characters are read)."""
    from engine.pipelines.prompt import MAX_PROMPT_CHARS

    text = stream.read(limit + 1)
    if len(text) > limit:
        raise _cli_error(
            f"the prompt on standard input is over {limit} characters; the limit is "
            f"{MAX_PROMPT_CHARS}"
        )
    return text.strip()


def _cli_error(message: str):

    return common.CliError(message)


def _options(args: argparse.Namespace) -> dict:
    return {
        "style": args.style,
        "mood": args.mood,
        "key": args.key,
        "mode": args.mode,
        "meter": args.meter,
        "tempo_bpm": args.tempo,
        "seconds": args.duration,
        "bars": args.bars,
        "instruments": args.instruments,
        "structure": args.structure,
        "progression": args.progression,
        "dynamics": args.dynamics,
        "dynamics_shape": args.dynamics_shape,
        "articulation": args.articulation,
        "density": args.density,
        "syncopation": args.syncopation,
        "register": args.register,
        "contour": args.contour,
        "creativity": args.creativity,
        "seed": args.seed,
        "polyphony": args.polyphony,
        "voice_leading": args.voice_leading,
        "double_stops": args.double_stops or None,  # absent: the prompt's words, else off
    }


def _show_understanding(prompt: str, parsed: dict, p, quiet: bool) -> None:
    """The table of what the prompt was read as, and the words left out (on stderr)."""
    from rich.table import Table

    console = ui.make_console()
    if not prompt.strip():
        console.print("empty prompt: the model chooses style, key and the rest (unconditional)")
    if quiet:
        return
    if parsed["understood"]:
        table = Table(title="What I understood", title_justify="left")
        for col in ("words", "means", "value"):
            table.add_column(col)
        for u in parsed["understood"]:
            table.add_row(u["phrase"], u["attribute"], u["value"])
        console.print(table)
    for i in parsed["ignored"]:
        near = f" (did you mean {', '.join(i['suggestions'])}?)" if i["suggestions"] else ""
        console.print(f"ignored: {i['word']}{near}")
    parts = ", ".join(q.name for q in p.parts)
    key = f"{p.key or 'any'} {p.mode or ''}".strip()
    console.print(
        f"making {p.bars} bars ({p.seconds:.0f} s) of {p.style or 'any style'}, {key}, "
        f"{p.meter}, {p.tempo_bpm:g} BPM for {parts}"
    )


def _summary(record: dict) -> str:
    p = record["plan"]
    return (
        f"{p['bars']} bars, {p['seconds']:.0f} s, {p.get('key') or ''} {p.get('mode') or ''}, "
        f"{p['meter']}, {p['tempo_bpm']:g} BPM, seed {record['seed']}"
    ).replace("  ", " ")


# ---- replay ----------------------------------------------------------------------------------
# The release from which the score model samples under the rules of issue 11 (textures,
# voice leading, cadences): records made before it cannot be replayed exactly by this code.
SAMPLING_RULES_SINCE = "0.2.0"
# Releases whose changes alter some files of earlier records: (release, what changed, the
# files it can change: "music" for the music and its audio, "all" for every file, or a file
# name).
CHANGES = (
    ("0.3.0", "a repeated section no longer overlaps a note held over its first barline", "music"),
    (
        "0.4.0",
        "MusicXML spells notes as their key does and prints no natural sign on notes of the key",
        "music.musicxml",
    ),
    ("0.5.0", "files state in their metadata that they are AI-generated", "all"),
    ("0.9.0", "staccato no longer shortens each part's last notes", "music"),
    ("0.10.0", "a minor key's third gets as much of the key bonus as its tonic", "music"),
    ("0.11.0", "accompany holds the beats of legato audio to the tempo heard exactly", "part.mid"),
)
# Changes that concern only some records: (release, what) -> does the record's request ask
# for what changed? (Other changes may concern any record.)
CHANGE_APPLIES = {
    ("0.9.0", "staccato no longer shortens each part's last notes"): lambda record: (
        (record.get("plan") or {}).get("articulation") in ("staccato", None)
    ),
    # (a piece in a key the model chose may be in minor)
    ("0.10.0", "a minor key's third gets as much of the key bonus as its tonic"): lambda record: (
        (record.get("plan") or {}).get("mode") in ("minor", None)
    ),
    ("0.11.0", "accompany holds the beats of legato audio to the tempo heard exactly"): (
        lambda record: (
            record.get("engine") == "accompany"
            and (record.get("input") or {}).get("kind") == "audio"
        )
    ),
}


def _changes_for(made_by: str, different: list[str], record: dict | None = None) -> list[str]:
    """What changed since ``made_by`` in the files that differ (newest last); ``record``
    (the replayed record) leaves out changes its request does not touch."""
    out = []
    for release, what, files in CHANGES:
        if _release(made_by) >= _release(release):
            continue
        applies = CHANGE_APPLIES.get((release, what))
        if applies is not None and record is not None and not applies(record):
            continue
        music = [f for f in different if not f.endswith(".musicxml")]
        if (files == "music" and music) or (files == "all" and different) or files in different:
            out.append(f"{what} since {release}")
    return out


def _record_as_found(record_path: Path) -> dict:
    """The record before replay (a damaged one reads as {}; replay itself reports it)."""
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _made_by(record: dict) -> str | None:
    """The release that made ``record``, when it is older than this one."""
    from engine import __version__

    versions = record.get("versions") if isinstance(record.get("versions"), dict) else {}
    # (accompany's records name it among their versions)
    version = str(record.get("disco_musica_version") or versions.get("disco_musica") or "")
    if version and _release(version) < _release(__version__):
        return version
    return None


def _release(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def cmd_replay(args: argparse.Namespace) -> int:
    from engine.pipelines.compose import GENERATION_FILE
    from engine.pipelines.replay import replay
    from engine.symbolic.model_versions import reproducing_model

    src = Path(args.record)
    record_path = src / GENERATION_FILE if src.is_dir() else src
    if not record_path.is_file():
        raise common.CliError(f"{record_path} does not exist; give a generation.json")
    out = (
        Path(args.out)
        if args.out
        else record_path.absolute().parent.with_name(record_path.absolute().parent.name + "-replay")
    )
    from engine.record import check_new_folder

    check_new_folder(out, args.overwrite, common.CliError)
    old = _record_as_found(record_path)  # (read first: --overwrite may replace it)
    with ui.StageProgress("Replay") as prog:
        record, same = replay(record_path, out, overwrite=args.overwrite, progress=prog)
    made_by = _made_by(old)
    recorded = old.get("model") if isinstance(old.get("model"), dict) else {}
    if recorded.get("name") != (record.get("model") or {}).get("name") and not args.json:
        print(f"note: {reproducing_model(recorded)[1]}")
    different = [name for name, ok in same.items() if not ok]
    if different and made_by is not None and not args.json:
        if _release(made_by) < _release(SAMPLING_RULES_SINCE):
            why = (
                f"since {SAMPLING_RULES_SINCE} the score model samples with playable textures, "
                "voice leading and cadences"
            )
        else:
            why = "; ".join(_changes_for(made_by, different, old)) or "this release writes it anew"
        print(
            f"note: {record_path} was made by disco-musica {made_by}; {why}, so "
            f"{', '.join(different)} {'differs' if len(different) == 1 else 'differ'} here: "
            f"`pip install disco-musica=={made_by}` reproduces "
            f"{'it' if len(different) == 1 else 'them'} exactly"
        )
    if args.json:
        print(json.dumps({"folder": str(out), "identical": same, **record}, indent=1))
    else:
        for name, ok in same.items():
            print(f"{name}: {'identical' if ok else 'DIFFERENT'}")
        print(f"wrote {common.shown_path(out)}/")
    common.say_replaced(out, record.get("replaced"))
    return 0 if all(same.values()) else 1


# ---- convert ---------------------------------------------------------------------------------
def cmd_convert_musicgen(args: argparse.Namespace) -> int:
    from engine.record import OutputFolder, check_new_folder

    out = Path(args.out).expanduser()
    check_new_folder(out, args.force, common.CliError, flag="--force", replaceable=_converted_model)
    if not args.source.strip():
        raise common.CliError(
            "give a MusicGen snapshot folder or a Hub id (facebook/musicgen-small)"
        )
    src = Path(args.source).expanduser()
    if not src.exists() and "/" not in args.source:
        raise common.CliError(
            f"{args.source} is neither a folder nor a Hub id (owner/name, e.g. "
            "facebook/musicgen-small)"
        )
    from engine import hub

    source = str(src) if src.exists() else args.source
    options = {"dtype": args.dtype, "quantize": args.quantize, "revision": args.revision}
    with ui.status_spinner(f"Finding {args.source}"):
        hub.check_musicgen_source(source, **options)  # before anything is written
    folder = OutputFolder(out, overwrite=args.force, flag="--force", replaceable=_converted_model)
    with folder, ui.status_spinner(f"Converting {args.source}"):
        hub.convert_musicgen_snapshot(source, folder.path, **options)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {common.shown_path(out)}/ ({size / 1e6:.1f} MB); use it with --model {out}")
    common.say_replaced(out, folder.replaced)
    return 0


def _converted_model(folder: Path) -> None:
    """Raise unless ``folder`` is a model folder `disco-musica convert` wrote."""
    import json

    from engine.errors import OutputError
    from engine.hub import converted_file_names

    try:
        ours = "disco_musica" in json.loads((folder / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        ours = False
    allowed = converted_file_names()
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in allowed)
    if not ours or foreign:
        raise OutputError(
            f"{folder} is not a model folder Disco-Musica converted"
            + (f" (it holds {', '.join(foreign[:3])})" if foreign else "")
            + "; nothing was replaced: choose a new folder name"
        )


# ---- prompt help -----------------------------------------------------------------------------
def cmd_prompt(args: argparse.Namespace) -> int:
    from rich.table import Table

    from engine.pipelines.compose import plan
    from engine.pipelines.prompt import examples, vocabulary

    console = ui.make_console()
    out = console if sys.stdout.isatty() else None
    if args.text is not None:
        p, parsed = plan(args.text)
        _show_understanding(args.text, parsed, p, quiet=False)
        return 0
    for category, entries in vocabulary().items():
        table = Table(title=category, title_justify="left", show_header=False)
        table.add_column("words")
        table.add_column("means")
        for word, meaning in entries:
            table.add_row(word, meaning)
        (out or _plain_console()).print(table)
    (out or _plain_console()).print("Examples:")
    for e in examples():
        (out or _plain_console()).print(f'  disco-musica generate "{e}"')
    return 0


def _plain_console():
    from rich.console import Console

    return Console(file=sys.stdout, width=120)
