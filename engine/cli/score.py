"""The MIDI commands of the score model: sketch, continue, add-tracks, regenerate."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import sys
from pathlib import Path

from engine import names
from engine.atomic import sha256_file
from engine.cli import common
from engine.cli import progress as ui
from engine.record import record_bytes


def add_commands(sub, command) -> None:
    """sketch, continue, add-tracks and regenerate."""
    from engine.cli import generate as cli_generate

    p = command(
        sub,
        "sketch",
        _cmd_generate,
        "write a MIDI sketch from the score model's conditions alone",
        ("sketch",),
    )
    p.add_argument("--style", help=f"{common.STYLE_NAMES} (default: the model chooses)")
    p.add_argument("--key", help="tonic: C, C#, Db, D, ... B (default: the model chooses)")
    p.add_argument("--mode", choices=("major", "minor"), help="major or minor (default: any)")
    p.add_argument("--meter", help="time signature such as 4/4, 3/4, 6/8 (default: any)")
    p.add_argument(
        "--tempo",
        type=float,
        metavar="BPM",
        help=f"beats per minute, {common.TEMPO_RANGE} (default: the model chooses)",
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
        help=f"General MIDI program (0..{common.MAX_PROGRAM}) of each part, e.g. 52,52,52,52 for "
        f"a choir",
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
    common.sampling_options(p)

    p = command(
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
    p.add_argument("--style", help=f"{common.STYLE_NAMES} (default: the model chooses)")
    common.sampling_options(p, audio_key_strength=names.WORKFLOW_KEY_STRENGTH)
    a = p.add_argument_group("audio input (MusicGen: --model musicgen-small and the family)")
    a.add_argument("--prompt", default="", metavar="TEXT", help="what the continuation is")
    a.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help=f"seconds to add, more than 0, at most {names.num(names.MUSICGEN_MAX_SECONDS)} "
        f"(default {names.num(names.MUSICGEN_DEFAULT_SECONDS)})",
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

    p = command(
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
        help=f"General MIDI program (0..{common.MAX_PROGRAM}) of each new part (default: the first "
        "given part's)",
    )
    p.add_argument("--style", help=f"{common.STYLE_NAMES} (default: the model chooses)")
    common.sampling_options(p)

    p = command(
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
    p.add_argument("--style", help=f"{common.STYLE_NAMES} (default: the model chooses)")
    common.sampling_options(p)


def _cmd_generate(args: argparse.Namespace) -> int:
    from engine.symbolic import score_api as api
    from engine.symbolic.tokenizer import MAX_VOICES

    common.fill_defaults(args, bars=api.DEFAULT_BARS)
    common.check_range("--bars", args.bars, 1, api.MAX_BARS)
    if args.voices is not None:
        common.check_range("--voices", args.voices, 1, MAX_VOICES)
    if args.tempo is not None:
        common.check_range("--tempo", args.tempo, api.MIN_TEMPO_BPM, api.MAX_TEMPO_BPM)
    programs = common.parse_programs(args.programs)
    api.check_polyphony(args.polyphony)
    api.check_voice_leading(args.voice_leading)
    api.check_request(
        style=args.style,
        key=args.key,
        mode=args.mode,
        meter=args.meter,
        parts=common.split_list(args.parts) if args.parts else None,
        programs=programs,
        model=args.model,
        **common.sampling_args(args),
    )
    out = common.check_out(args.out, args.force)
    model = common.load_model(args.model)
    with ui.TokenProgress("Generating") as progress:
        piece = model.generate(
            style=args.style,
            key=args.key,
            mode=args.mode,
            meter=args.meter,
            tempo_bpm=args.tempo,
            voices=args.voices,
            programs=programs,
            parts=common.split_list(args.parts) if args.parts else None,
            bars=args.bars,
            **common.sampling_args(args),
            progress=progress,
            polyphony=args.polyphony,
            voice_leading=args.voice_leading,
            double_stops=args.double_stops,
        )
    stem = f"{common.PROG}-{piece.conditions.get('style', 'piece')}-{args.seed}"
    return _finish(args, piece, model, out, stem)


def _cmd_continue(args: argparse.Namespace) -> int:
    from engine.symbolic import score_api as api

    if Path(args.input).suffix.lower() in common.AUDIO_SUFFIXES:
        from engine.pipelines.musicgen import is_musicgen

        if args.model and is_musicgen(args.model):
            from engine.cli.generate import continue_audio

            return continue_audio(args)
        from engine.cli.workflows import continue_audio_with_score_model

        return continue_audio_with_score_model(args)
    for flag, value in (("--prompt", args.prompt), ("--duration", args.duration)):
        if value:
            raise common.CliError(
                f"{flag} is for continuing audio with MusicGen; give an audio file"
            )

    common.fill_defaults(args, bars=common.default_of(api.ScoreModel.continue_score, "bars"))
    common.check_range("--bars", args.bars, 1, api.MAX_BARS)
    api.check_request(args.input, style=args.style, model=args.model, **common.sampling_args(args))
    out = common.check_out(args.out, args.force)
    model = common.load_model(args.model)
    with ui.TokenProgress("Continuing") as progress:  # the path: its sidecar may name a style
        piece = model.continue_score(
            args.input,
            bars=args.bars,
            style=args.style,
            **common.sampling_args(args),
            progress=progress,
        )
    stem = f"{Path(args.input).stem}-continued-{args.seed}"
    return _finish(args, piece, model, out, stem, source=Path(args.input))


def _cmd_add_tracks(args: argparse.Namespace) -> int:
    from engine.symbolic import score_api as api

    common.fill_defaults(args, parts=common.default_of(api.ScoreModel.add_tracks, "parts"))
    parts = common.split_list(args.parts) if isinstance(args.parts, str) else list(args.parts)
    args.parts = ",".join(parts)
    programs = common.parse_programs(args.programs)
    api.check_request(
        args.input,
        style=args.style,
        parts=parts,
        programs=programs,
        model=args.model,
        **common.sampling_args(args),
    )
    out = common.check_out(args.out, args.force)
    model = common.load_model(args.model)
    with ui.TokenProgress("Writing parts") as progress:  # the path: its sidecar may name a style
        piece = model.add_tracks(
            args.input,
            parts=parts,
            programs=programs,
            style=args.style,
            **common.sampling_args(args),
            progress=progress,
        )
    stem = f"{Path(args.input).stem}-with-{'-'.join(parts)}-{args.seed}"
    return _finish(args, piece, model, out, stem, source=Path(args.input))


def _cmd_regenerate(args: argparse.Namespace) -> int:
    from engine.symbolic import score_api as api

    common.fill_defaults(args)
    first, last = common.parse_bar_range(args.bars)
    track_numbers = None if args.tracks is None else common.parse_ints("--tracks", args.tracks)
    api.check_request(args.input, style=args.style, model=args.model, **common.sampling_args(args))
    num_bars, num_tracks = api.input_shape(args.input, args.model)
    if last > num_bars:
        raise common.CliError(f"--bars {args.bars} is outside the piece: it has bars 1-{num_bars}")
    tracks = None
    if track_numbers is not None:
        for t in track_numbers:
            common.check_range("--tracks", t, 1, num_tracks, what="track")
        tracks = sorted({t - 1 for t in track_numbers})
    out = common.check_out(args.out, args.force)
    model = common.load_model(args.model)
    with ui.TokenProgress("Regenerating") as progress:
        piece = model.regenerate_bars(
            args.input,
            start_bar=first - 1,
            end_bar=last - 1,
            tracks=tracks,
            style=args.style,
            **common.sampling_args(args),
            progress=progress,
        )
    stem = f"{Path(args.input).stem}-bars{first}-{last}-{args.seed}"
    return _finish(args, piece, model, out, stem, source=Path(args.input))


def _finish(args, piece, model, out: Path | None, stem: str, source: Path | None = None) -> int:
    """Write the MIDI file and its sidecar; print where they are."""
    if out is None:
        out = common.new_path(Path.cwd(), stem)
    sidecar = out.with_suffix(common.SIDECAR_SUFFIX)
    midi = piece.to_midi_bytes()
    record = _recipe(args, piece, model, midi, out, source)
    common.write_outputs([(out, midi), (sidecar, record_bytes(record))])
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
        print(f"wrote {common.shown_path(out)} ({_describe(piece)})")
        print(
            f"recipe: {common.shown_path(sidecar)} (seed {args.seed}; its command makes the "
            f"piece again)"
        )
    return 0


def _recipe(args, piece, model, midi: bytes, out: Path, source: Path | None) -> dict:
    """What the sidecar records: enough to make the same MIDI bytes again."""
    from engine import __version__
    from engine.symbolic import model_versions

    words = common.recorded_args(args)
    record = {
        "command": " ".join(common.quote_arg(w) for w in [common.PROG, *words]),
        "args": words,
        "operation": args.words[0],
        "parameters": {
            k: v
            for k, v in sorted(vars(args).items())
            if k not in common.NOT_RECORDED and k not in ("command", "input")
        },
        "seed": args.seed,
        "conditions": piece.conditions,
        "requested_conditions": piece.settings.get("requested_conditions", {}),
        "tempo_bpm": piece.settings.get("tempo_bpm"),
        "finish_reason": piece.finish_reason,
        "num_tokens": len(piece.tokens),
        "model": {
            "name": args.model,
            "sha256": model_versions.weights_sha256(Path(model.path)),
        },
        "midi": {"file": out.name, "sha256": hashlib.sha256(midi).hexdigest()},
        "disco_musica_version": __version__,
        "mlx_version": common.package_version("mlx"),
        "platform": f"{platform.system()} {platform.machine()}",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if source is not None:
        record["input"] = {"path": str(source.resolve()), "sha256": sha256_file(source)}
    return record


def _describe(piece) -> str:
    """'8 bars, 4 tracks: 1 Soprano, 2 Alto, ...; chorale, G major, 4/4, 96 BPM'."""
    score = piece.score
    tracks = ", ".join(f"{i} {t.name or 'Track'}" for i, t in enumerate(score.tracks, 1))
    c = piece.conditions
    facts = [c.get("style"), " ".join(x for x in (c.get("key"), c.get("mode")) if x)]
    facts.append(c.get("meter"))
    if piece.settings.get("tempo_bpm"):
        facts.append(f"{piece.settings['tempo_bpm']:g} BPM")
    head = (
        f"{common.plural(_num_bars(score), 'bar')}, "
        f"{common.plural(len(score.tracks), 'track')}: {tracks}"
    )
    return head + "; " + ", ".join(f for f in facts if f)


def _num_bars(score) -> int:
    """Bars up to the last note onset (a last long note may ring past the final bar line)."""
    onsets = [n.time for t in score.tracks for n in t.notes]
    if not onsets or not len(score.time_signatures):
        return 0
    ts = score.time_signatures[0]
    bar_ticks = score.ticks_per_quarter * 4 * ts.numerator / ts.denominator
    return int(max(onsets) // bar_ticks) + 1
