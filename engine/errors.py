"""The one root of the errors a user can cause and fix: `UserError`.

Every face (the CLI, later the terminal studio) catches `UserError` once and shows its text
in one line; the Python API raises the same classes with the same text. Anything else is a
bug and raises normally. Each module keeps its own subclass (``ComposeError``,
``TranscribeError`` …) so that a caller can tell which step refused; most also derive from
``ValueError`` or ``RuntimeError`` as they did before this root existed.
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 600


class UserError(Exception):
    """A problem with what the user gave (a file, a folder, a number, a name), in one line
    that names the problem and what to do."""


class OutputError(UserError, ValueError):
    """An output path that cannot be written or must not be replaced."""


class InputWarning(UserWarning):
    """Something about the input that the result depends on and the user should know (a
    truncated file read as far as it goes, no notes found, clipping), in one line.

    Raised with `warnings.warn`, so the Python API sees it like any warning and each face
    shows it as one ``warning: ...`` line; results keep the same text (``.warnings``).
    """


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so that it cleans up as on Ctrl-C."""

    def __init__(self, signum: int):
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_stop_requests: list[int] = []


def request_stop(signum: int) -> None:
    """Remember that the user asked to stop (a signal), in case a library swallows the
    `Stopped` raised for it: `check_stop` raises it again before anything is published."""
    _stop_requests.append(signum)


def check_stop() -> None:
    """Raise `Stopped` if a stop was asked for since `clear_stop`."""
    if _stop_requests:
        raise Stopped(_stop_requests[0])


def clear_stop() -> None:
    _stop_requests.clear()


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (an ``OSError`` as ``path: reason``)."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.filename}: {e.strerror.lower()}"
    else:
        text = str(e) or type(e).__name__
    text = " ".join(text.split())
    if len(text) > MAX_MESSAGE_CHARS:  # it quotes what the user gave: 10 MB of it helps nobody
        keep = MAX_MESSAGE_CHARS // 2
        text = f"{text[:keep]} … {text[-keep:]}"
    return text


class RecordError(UserError, ValueError):
    """A ``generation.json`` (or sidecar) that cannot be replayed as it is."""


class RenderError(UserError, ValueError):
    """A user-facing problem with a SoundFont, a MIDI file, effect settings or an output file."""


class MusicgenError(UserError, ValueError):
    """A request MusicGen cannot serve; the message says what to do."""


class ScoreModelError(UserError, ValueError):
    """A user-facing problem: a bad parameter, file or model name."""


class AudioFileError(UserError, ValueError):
    """An audio file that cannot be used (missing, empty, not audio, no samples, NaN,
    silent, too long), named in one line."""


class LibraryError(UserError, ValueError):
    """The library of pieces: an unknown or ambiguous ID, a bad tag or rating, a damaged or
    read-only database."""
