"""``disco-musica studio``: the CLI command that opens the studio.

Plugged into the CLI through the entry point group ``disco_musica.commands`` (engine never
imports tui). Kept apart from `tui.app` so that loading the command costs nothing: Textual
is imported only when the studio opens.
"""

from __future__ import annotations

import sys


def add_command(sub, register) -> None:
    """Add ``studio`` to the CLI (an entry point of group ``disco_musica.commands``)."""
    p = register(sub, "studio", cmd_studio, "open the terminal studio", ("studio",))
    p.add_argument("--library", metavar="PATH", help="the library to use (default: the usual)")
    p.add_argument("--out", metavar="DIR", help="where the studio writes pieces' folders")
    p.add_argument("--model", metavar="NAME|DIR", help="score model (default score-base)")
    p.add_argument("--plain", action="store_true", help="announce changes as text lines")
    p.add_argument("--first-run", action="store_true", help="show the introduction again")
    p.add_argument("--no-audio", action="store_true", help="never open an audio device")


def check_model(name: str) -> None:
    """A model the studio can use (a shipped score model, a MusicGen name, or a model
    folder), checked without loading it (that would cost seconds before the first frame)."""
    from pathlib import Path

    from engine.errors import UserError
    from engine.hub import MODELS_DIR
    from engine.pipelines.musicgen import is_musicgen

    p = Path(name).expanduser()

    def score_model(folder: Path) -> bool:
        return (folder / "config.json").is_file() and (folder / "tokenizer").is_dir()

    if is_musicgen(name) or score_model(MODELS_DIR / name) or score_model(p):
        return
    from engine.hub import TrainedModelError, resolve_trained

    try:
        if resolve_trained(name) is not None:  # one of the user's (`train score --name`)
            return
    except TrainedModelError as e:
        raise UserError(f"--model {name}: {e}") from None
    shipped = sorted(q.name for q in MODELS_DIR.iterdir() if score_model(q))
    what = "a file, not a model folder" if p.is_file() else "neither a model name nor a folder"
    raise UserError(
        f"--model {name}: {what}; use {', '.join(shipped)}, a MusicGen name (musicgen-small) "
        "or a model folder (see `disco-musica models`)"
    )


def check_output(out: str) -> None:
    """``--out``: a folder, or a place where one can be made."""
    from pathlib import Path

    from engine.errors import UserError

    p = Path(out).expanduser()
    for q in (p, *p.parents):
        if q.exists() and not q.is_dir():
            raise UserError(f"--out {out}: {q} is a file, not a folder; give a folder")
        if q.exists():
            break


def cmd_studio(args) -> int:
    from engine.errors import UserError

    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise UserError("the studio needs a terminal; run `disco-musica studio` in one")
    if args.model is not None:
        check_model(args.model)
    if args.out is not None:
        check_output(args.out)
    if args.library is not None:
        from engine.library.store import Library

        Library.open(args.library).close()  # a damaged library stops here, in one line
    from engine.record import sweep_stale
    from tui.app import make_app

    sweep_stale()  # what a killed run left behind, as every command does first
    from tui.widgets.scoreview import detect_image_support

    detect_image_support()  # asks the terminal once, before Textual takes it over

    app = make_app(
        library=args.library,
        output=args.out,
        model=args.model,
        plain=True if args.plain else None,
        first_run=True if args.first_run else None,
        audio=not args.no_audio,
    )
    app.run()
    return app.return_code or 0
