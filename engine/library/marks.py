"""Is a file ours, and which piece is it? The answer of ``disco-musica detect FILE``.

Three kinds of evidence, strongest first:

1. the inaudible watermark of an audio file (`engine.audio.watermark`): a 32-bit payload
   that survives MP3/OGG encoding, resampling, cutting, gain and noise; every audio file
   Disco-Musica writes carries it, and the payload is its mark ``dm:xxxxxxxx``;
2. the metadata statement "AI-generated with Disco-Musica (dm:…)" (`engine.credit`), in
   audio tags, a MIDI copyright notice or a MusicXML credit — lost when a file is converted
   by another program, and easy to remove;
3. the library: a file whose sha256 is one of a kept piece's files, or whose mark is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine import names
from engine.credit import mark_text
from engine.errors import LibraryError


@dataclass
class Finding:
    """What `inspect_file` found about one file."""

    file: str
    kind: str  # audio, midi, musicxml or other
    watermark: bool = False
    mark: str | None = None
    score: float | None = None  # the watermark detector's synchronisation score
    statement: str | None = None  # the metadata statement, when present
    pieces: list[dict] = field(default_factory=list)  # {"id", "title", "how"} in the library

    @property
    def ours(self) -> bool:
        return self.watermark or self.statement is not None or bool(self.pieces)

    def to_dict(self) -> dict:
        return {**asdict(self), "ours": self.ours}


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in names.AUDIO_SUFFIXES or suffix in (".aif", ".aiff", ".m4a"):
        return "audio"
    if suffix in names.MIDI_SUFFIXES:
        return "midi"
    if suffix in (".musicxml", ".xml", ".mxl"):
        return "musicxml"
    return "other"


def marks_of(files: dict[str, Path]) -> dict[str, str]:
    """{name: mark} of the audio files among a piece's files, read from their metadata
    (cheap: the watermark itself holds the same payload)."""
    from engine.credit import Credit, read_credit

    out: dict[str, str] = {}
    for name, path in files.items():
        if _kind(Path(name)) != "audio":
            continue
        try:
            statement = read_credit(path)
        except Exception:  # a file we cannot read has no mark to index; register it anyway
            continue
        credit = Credit.parse(statement) if statement else None
        if credit is not None and credit.mark:
            out[name] = credit.mark
    return out


def inspect_file(path: str | Path, lib=None) -> Finding:
    """Look for our watermark, our metadata statement and, with ``lib`` (a `Library`), the
    piece the file is. Raises `LibraryError` (one line) for a missing file or a folder; an
    audio file that cannot be decoded is `engine.errors.AudioFileError`."""
    from engine.atomic import sha256_file
    from engine.credit import Credit, read_credit

    p = Path(path).expanduser()
    if not p.exists():
        raise LibraryError(f"{path}: no such file")
    if p.is_dir():
        raise LibraryError(f"{path} is a folder; give a file")
    kind = _kind(p)
    found = Finding(file=str(path), kind=kind)
    statement = read_credit(p)
    found.statement = statement
    credit = Credit.parse(statement) if statement else None
    if kind == "audio":
        from engine.audio import watermark
        from engine.audio.io import load_audio

        audio, sr = load_audio(p)
        hit = watermark.detect(audio, sr)
        found.score = round(float(hit.score), 2)
        if hit.found and hit.payload is not None:
            found.watermark = True
            found.mark = mark_text(hit.payload)
    if found.mark is None and credit is not None and credit.mark:
        found.mark = credit.mark
    if lib is not None:
        seen: set[str] = set()
        for piece in lib.pieces_with_file(sha256_file(p)):
            seen.add(piece.id)
            found.pieces.append({"id": piece.id, "title": piece.title, "how": "same file"})
        if found.mark:
            for piece in lib.by_mark(found.mark):
                if piece.id not in seen:
                    seen.add(piece.id)
                    found.pieces.append({"id": piece.id, "title": piece.title, "how": "mark"})
    return found
