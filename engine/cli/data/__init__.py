"""``disco-musica data …``: your music in — import, preprocess, and keep versioned datasets.

    disco-musica data import ~/Music/stems songs.zip s3://bucket/takes --into my-songs
    disco-musica data prep audio my-songs --sample-rate 32000 --loudness -14 --segment 10-30
    disco-musica data prep midi my-songs --quantize 16 --transpose -2..2
    disco-musica data tag my-songs 'takes/*.wav' live --set genre=funk
    disco-musica data split my-songs --ratios 80,10,10 --seed 1
    disco-musica data versions my-songs ; data diff my-songs HEAD~1 HEAD ; data checkout my-songs V
    disco-musica data stats my-songs ; data get maestro --into maestro

A dataset is a name (kept in $DISCO_MUSICA_DATASETS, else $DISCO_MUSICA_HOME/datasets, else
the user data folder) or a folder path; the store is `engine.data.store`. Each action lives in
the module of its part: `manage` (show, tag, edit, split, versions…), `importing`, `prep`,
`public`, `stats`, `hub`.
"""

from __future__ import annotations

import argparse

from engine.cli import common


def add_commands(sub, command) -> None:
    group = command(
        sub,
        "data",
        cmd_help,
        "your music in: import files, preprocess them, and keep versioned datasets",
        ("data",),
    )
    actions = group.add_subparsers(dest="data_command", metavar="ACTION")

    def action(name: str, handler, help_text: str, json_out: bool = True):
        """Add ``data NAME`` (with --json when ``json_out``); returns its parser."""
        p = command(actions, name, handler, help_text, ("data", name))
        if json_out:
            p.add_argument("--json", action="store_true", help="print the result as JSON")
        return p

    prep = action(
        "prep",
        cmd_prep_help,
        "preprocess a dataset's audio, MIDI, images or video (each run is a recorded step)",
        json_out=False,
    )
    prep_kinds = prep.add_subparsers(dest="prep_kind", metavar="KIND")

    def prep_action(name: str, handler, help_text: str):
        """Add ``data prep NAME DATASET`` with the options every step has."""
        p = command(prep_kinds, name, handler, help_text, ("data", "prep", name))
        p.add_argument("dataset", metavar="DATASET", help="a dataset name or folder")
        p.add_argument(
            "--items",
            nargs="+",
            default=["all"],
            metavar="ITEM",
            help="only these items: IDs, paths or globs like 'songs/*.wav' (default: all)",
        )
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        return p

    from engine.cli.data import manage

    manage.add_actions(action)
    for module in _parts():
        if hasattr(module, "add_actions"):
            module.add_actions(action)
        if hasattr(module, "add_prep_actions"):
            module.add_prep_actions(prep_action)


def _parts() -> list:
    """The modules of the data group's other parts (each may be absent while it is built)."""
    import importlib

    out = []
    for name in ("importing", "prep_audio", "prep_midi", "prep_visual", "public", "stats", "hub"):
        try:
            out.append(importlib.import_module(f"engine.cli.data.{name}"))
        except ModuleNotFoundError as e:
            if e.name != f"engine.cli.data.{name}":
                raise
    return out


def cmd_help(args: argparse.Namespace) -> int:
    args.parser.print_help()
    return 0 if args.data_command is None else common.EXIT_USER_ERROR


def cmd_prep_help(args: argparse.Namespace) -> int:
    args.parser.print_help()
    return 0
