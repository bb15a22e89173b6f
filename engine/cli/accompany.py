"""``disco-musica accompany INPUT --part bass|chords|strings|drums``.

    disco-musica accompany song.wav --part bass                # -> song-bass/ (a new folder)
    disco-musica accompany sketch.mid --part strings --seed 3 --out sketch-strings
    disco-musica accompany take.flac --part drums --style rock --json

The folder holds part.mid, part.wav, mix.wav (the input plus the part), mix.mid for MIDI
input, and generation.json. Kept apart from `engine.cli` (entry point, errors, progress);
heavy modules (librosa, mlx, music21) are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine import names
from engine.cli import common
from engine.cli import progress as ui

PARTS = names.ACCOMPANY_PARTS  # engine.pipelines.accompany.PARTS


def add_commands(sub, command) -> None:
    """Register ``accompany`` on the ``sub`` parsers."""
    p = command(
        sub,
        "accompany",
        cmd_accompany,
        "write a bass line, chords, strings or drums that follow a recording or MIDI file",
        ("accompany",),
    )
    p.add_argument(
        "input", metavar="INPUT", help="audio (WAV, FLAC, OGG, MP3) or a MIDI file to accompany"
    )
    p.add_argument(
        "--part",
        default=names.DEFAULT_ACCOMPANY_PART,
        metavar="PART",
        help=f"what to add: {', '.join(PARTS)} (default {names.DEFAULT_ACCOMPANY_PART})",
    )
    p.add_argument(
        "--style",
        help="bass/chords/strings: the score model's style (chorale, folk, classical, ...); "
        f"drums: {', '.join(names.DRUM_STYLES)} (default {names.DEFAULT_DRUM_STYLE})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=names.DEFAULT_ACCOMPANY_SEED,
        metavar="N",
        help=f"0..{names.MAX_SEED}; same seed, same part (default {names.DEFAULT_ACCOMPANY_SEED})",
    )
    p.add_argument(
        "--tempo",
        type=float,
        metavar="BPM",
        help="audio: its tempo in quarter notes a minute when it is heard wrong, 40..200 "
        "(60..300 with --meter 6/8, still in quarter notes) (default: heard)",
    )
    p.add_argument(
        "--meter",
        metavar="N/D",
        help="audio: its metre, one of " + ", ".join(names.ACCOMPANY_HINT_METERS) + " (default: "
        "heard)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="folder to create (default: INPUT's name + -PART, here)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--json", action="store_true", help="print the record as JSON on stdout")


def cmd_accompany(args: argparse.Namespace) -> int:
    from engine.pipelines.accompany import accompany, check_hints, check_part

    part = check_part(args.part)
    common.check_seed(args.seed)
    check_hints(args.tempo, args.meter)
    src = Path(args.input)
    folder = Path(args.out).expanduser() if args.out else Path(f"{src.stem}-{part}")
    from engine.record import check_new_folder

    check_new_folder(folder, args.overwrite, common.CliError)
    with ui.StageProgress("") as prog:
        acc = accompany(
            src,
            part,
            style=args.style,
            seed=args.seed,
            tempo_bpm=args.tempo,
            meter=args.meter,
            progress=prog,
        )
        record = acc.save(folder, overwrite=args.overwrite, progress=prog)
    if args.json:
        print(json.dumps({"folder": str(folder), **record}, indent=1))
        return 0
    an = acc.analysis
    chords = " ".join(an.chords[:16]) + (" ..." if len(an.chords) > 16 else "")
    given = " and ".join(("tempo" if k == "tempo_bpm" else "metre") for k in acc.hints)
    print(
        f"{an.kind} input: {an.tempo_bpm:g} BPM, {an.meter}, {an.key}, {an.bars} bars"
        + (f" ({given} as given)" if given else "")
        + "\n"
        f"chords: {chords}\n"
        f"wrote {folder}/: " + ", ".join(record["outputs"]) + ", generation.json"
    )
    common.say_replaced(folder, record.get("replaced"))
    return 0
