"""``data prep midi DATASET``: standardise, quantise, augment and tokenize a dataset's MIDI
(and scores), as one recorded step (`engine.data.midi_prep`)."""

from __future__ import annotations

import argparse
import re

from engine.cli.data.manage import (
    command_of,
    number,
    open_dataset,
    print_json,
    say_version,
    whole_number,
)


def add_prep_actions(prep_action) -> None:
    p = prep_action(
        "midi",
        cmd_prep_midi,
        "MIDI for training: repair and standardise, quantise (swing), transpose and "
        "tempo-scale copies, tokenize",
    )
    p.add_argument(
        "--resolution",
        metavar="TPQ",
        default="480",
        help="ticks a quarter note after standardising (24..32767; default 480)",
    )
    p.add_argument(
        "--quantize",
        metavar="GRID",
        help="move notes onto a grid: 4, 8, 16, 32 notes a whole note, or triplets 12, 24",
    )
    p.add_argument(
        "--swing",
        metavar="S",
        default="0",
        help="with --quantize: off-beat grid lines this share of a step later (0..0.75)",
    )
    p.add_argument(
        "--strength",
        metavar="S",
        default="1",
        help="with --quantize: how far notes move towards the grid (0..1; default 1)",
    )
    p.add_argument(
        "--tokenize",
        action="store_true",
        help="store the score model's tokens (.npy) beside each MIDI item",
    )
    p.add_argument(
        "--model",
        metavar="MODEL",
        default=None,
        help="the score model whose tokenizer --tokenize uses (default: the shipped one)",
    )
    p.add_argument(
        "--transpose",
        metavar="RANGE",
        help="add transposed copies: a range such as -3..3 (0 left out) or -2,2",
    )
    p.add_argument(
        "--tempo-scale",
        metavar="FACTORS",
        help="add copies with their tempo multiplied, e.g. 0.9,1.1 (0.5..2)",
    )
    p.add_argument(
        "--from-scores",
        action="store_true",
        help="first turn score items (MusicXML, ABC) into MIDI with music21",
    )
    p.add_argument(
        "--keep-originals",
        action="store_true",
        help="with --from-scores: keep each score beside its new MIDI (default: replaced; "
        "augmentation always keeps the original)",
    )
    # "--transpose -3..3" and "-2,2": a word that starts with a minus and a digit is a value,
    # not an option (argparse takes only plain negative numbers so).
    p._negative_number_matcher = re.compile(r"^-\d[\d.,+-]*$")


def options_of(args: argparse.Namespace):
    """The `MidiPrep` the arguments ask for (checked)."""
    from engine import names
    from engine.data.midi_prep import (
        MidiPrep,
        parse_grid,
        parse_tempo_scale,
        parse_transpose,
    )

    return MidiPrep(
        from_scores=args.from_scores,
        resolution=whole_number("--resolution", args.resolution),
        quantize=None if args.quantize is None else parse_grid(args.quantize),
        swing=number("--swing", args.swing),
        strength=number("--strength", args.strength),
        tokenize=args.tokenize,
        model=args.model or names.DEFAULT_MODEL,
        transpose=() if args.transpose is None else parse_transpose(args.transpose),
        tempo_scale=() if args.tempo_scale is None else parse_tempo_scale(args.tempo_scale),
        keep_originals=args.keep_originals,
    ).check()


def cmd_prep_midi(args: argparse.Namespace) -> int:
    from engine.cli.progress import FileProgress
    from engine.data.midi_prep import prep_midi

    options = options_of(args)  # bad options are refused before the dataset is touched
    if options.tokenize:
        from engine.data.midi_prep import tokenizer_dir

        tokenizer_dir(options.model)
    ds = open_dataset(args.dataset)
    with FileProgress("Preparing MIDI") as bar:
        report = prep_midi(ds, options, args.items, progress=bar, command=command_of(args))
    if args.json:
        print_json(report.to_json())
        return 0
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}")
    for path, text in report.warnings:
        print(f"{path}: {text}")
    copies = sum(1 for i in report.made if i.info.get("augmented"))
    tokenized = sum(1 for i in report.made if "tokens" in i.extras)
    repaired = sum(1 for _, text in report.warnings if text.startswith("repaired"))
    line = f"prepared {len(report.made) - copies} MIDI item{'s' * (len(report.made) - copies != 1)}"
    extra = []
    if repaired:
        extra.append(f"{repaired} repaired")
    if copies:
        extra.append(f"{copies} augmented cop{'ies' if copies != 1 else 'y'}")
    if options.tokenize:
        extra.append(f"{tokenized} tokenized")
    if report.skipped:
        extra.append(f"{len(report.skipped)} skipped")
    print(line + (f" ({', '.join(extra)})" if extra else ""))
    say_version(ds, report.version)
    return 0
