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
import signal
import sys
from collections.abc import Callable, Sequence

from engine.cli import common
from engine.errors import Stopped, UserError, check_stop, clear_stop, one_line, request_stop


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other error of the command."""

    def error(self, message: str):
        self.exit(common.EXIT_USER_ERROR, f"error: {message}; see `{self.prog} --help`\n")


# ---- entry point ---------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 user error, 130 interrupted,
    128 + N for signal N: SIGTERM and SIGHUP stop a command as Ctrl-C does)."""
    parser = build_parser()
    if argv is None and len(sys.argv) <= 1 or argv is not None and not list(argv):
        return _no_command(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors (already printed)
        return e.code if isinstance(e.code, int) else common.EXIT_USER_ERROR
    from engine import record

    clear_stop()
    restore = _stop_on_signals()
    code = common.EXIT_USER_ERROR
    keeping = None
    try:
        record.sweep_stale()
        keeping = _keep_in_library(args)
        with _warnings_as_lines():
            code = args.handler(args) or 0
        check_stop()  # a stop that a library swallowed still ends the run as stopped
        if keeping is not None and not getattr(args, "json", False):
            _say_kept(keeping[1])
        return code
    except BrokenPipeError:  # the reader went away (`… | head`): stop quietly, as shell tools do
        import os

        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + signal.SIGPIPE
        return code
    except KeyboardInterrupt as e:
        print("interrupted", file=sys.stderr)
        code = 128 + getattr(e, "signum", signal.SIGINT)
        return code
    except Exception as e:
        if not isinstance(e, _user_error_types()):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return common.EXIT_USER_ERROR
    finally:
        if keeping is not None:
            keeping[0]()
        if code == 0:
            record.forget_made_dirs()
        else:
            record.remove_made_dirs()
        restore()


def _no_command(parser) -> int:
    """``disco-musica`` alone: on a terminal, say how to open the studio and where the
    commands are; otherwise (a script) the usual usage error."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        print(
            f"Disco-Musica {common.program_version()}: open the studio with "
            f"`{common.PROG} studio`, or make music from the command line, e.g.\n"
            f'  {common.PROG} generate "a calm chorale in G major for choir, 30 seconds"\n'
            f"Every command: `{common.PROG} --help`."
        )
        return 0
    parser.print_usage(sys.stderr)
    print(
        f"error: give a command (`{common.PROG} studio` opens the studio); see "
        f"`{common.PROG} --help`",
        file=sys.stderr,
    )
    return common.EXIT_USER_ERROR


def _keep_in_library(args) -> tuple[Callable[[], None], list] | None:
    """Open the library before any work (a problem with it stops the command at once) and
    keep every piece the command writes; returns (undo, the pieces kept) or None with
    --no-library or for commands that write no pieces."""
    if not hasattr(args, "no_library") or args.no_library:
        return None
    from engine.library.store import Library, keep_pieces
    from engine.record import add_publish_hook

    lib = Library.open(args.library)
    kept: list = []
    remove = add_publish_hook(keep_pieces(lib, kept))

    def undo() -> None:
        remove()
        lib.close()

    return undo, kept


def _say_kept(kept: list) -> None:
    for piece in kept:
        print(f"kept in the library as {piece.id} (`{common.PROG} library show {piece.id}`)")


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
        prog=common.PROG,
        description="Disco-Musica: make music on your own computer. Offline, no account, no GPU.",
        epilog=f"Run `{common.PROG} COMMAND --help` for the options of a command.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {common.program_version()}"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from engine.cli import accompany as cli_accompany
    from engine.cli import adapt as cli_adapt
    from engine.cli import data as cli_data
    from engine.cli import generate as cli_generate
    from engine.cli import library as cli_library
    from engine.cli import score as cli_score
    from engine.cli import soundfonts as cli_soundfonts
    from engine.cli import train as cli_train
    from engine.cli import transcribe as cli_transcribe
    from engine.cli import workflows as cli_workflows

    cli_generate.add_commands(sub, register)
    cli_transcribe.add_commands(sub, register)
    cli_workflows.add_commands(sub, register)
    cli_accompany.add_commands(sub, register)

    cli_score.add_commands(sub, register)
    cli_train.add_commands(sub, register)
    cli_adapt.add_commands(sub, register)
    cli_soundfonts.add_commands(sub, register)
    cli_library.add_commands(sub, register)
    cli_data.add_commands(sub, register)
    _plugin_commands(sub)
    return parser


PLUGIN_GROUP = "disco_musica.commands"


def _plugin_commands(sub) -> None:
    """Commands of the faces installed beside the engine (``studio`` from `tui`), found by
    their entry points: engine never imports them. A plugin that fails to load is left out
    with a one-line warning; the rest of the CLI still works."""
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            add = ep.load()
        except Exception as e:  # a broken optional face must not break every command
            print(f"warning: the {ep.name} command is unavailable ({e})", file=sys.stderr)
            continue
        add(sub, register)


def register(sub, name: str, handler: Callable, help_text: str, words: tuple[str, ...]):
    p = sub.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:])
    p.set_defaults(handler=handler, parser=p, words=words)
    if words == (name,) and name in KEEPING_COMMANDS:
        common.add_library_option(p, keeps=True)
    return p


# The commands whose pieces the library keeps (each also takes --library and --no-library).
KEEPING_COMMANDS = frozenset(
    {
        "generate",
        "replay",
        "transcribe",
        "harmonize",
        "restyle",
        "accompany",
        "sketch",
        "continue",
        "add-tracks",
        "regenerate",
    }
)


# ---- music commands --------------------------------------------------------------------------


# ---- corpus, training, models ----------------------------------------------------------------


# ---- small helpers -------------------------------------------------------------------------


# ---- progress display ----------------------------------------------------------------------
