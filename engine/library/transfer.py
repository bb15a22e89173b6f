"""Pieces in and out of the library: ``export`` to a folder or a ZIP, ``import`` of folders
written before the library existed (or with ``--no-library``).

Export never replaces anything: each piece goes to a new folder ``TO/<title>-<id>/`` (written
in a temporary folder and renamed, `engine.record.OutputFolder`), or all of them into one new
ZIP file. Import is resumable: a piece whose files the library already holds is skipped, so
running it again after a stop copies nothing twice.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine import names
from engine.errors import LibraryError, OutputError
from engine.library import records
from engine.library.store import Library, Piece

RECORD_SUFFIXES = (".json",)
PICTURE_FORMATS = names.PICTURE_FORMATS
FORMAT_SUFFIXES = {
    "mid": (".mid", ".midi"),
    "midi": (".mid", ".midi"),
    "musicxml": (".musicxml", ".xml", ".mxl"),
    "xml": (".musicxml", ".xml", ".mxl"),
    **{f: (f".{f}",) for f in names.AUDIO_FORMATS},
    "json": (".json",),
    **{f: (f".{f}",) for f in PICTURE_FORMATS},
}


def check_formats(formats: Iterable[str] | None) -> set[str] | None:
    """The format names of ``--formats`` (None: every file)."""
    if formats is None:
        return None
    chosen = {f.strip().lower().lstrip(".") for f in formats if f.strip()}
    unknown = sorted(chosen - set(FORMAT_SUFFIXES))
    if unknown:
        known = ", ".join(sorted(set(FORMAT_SUFFIXES) - {"midi", "xml"}))
        raise LibraryError(f"unknown format {unknown[0]!r}; use some of {known}")
    if not chosen:
        raise LibraryError("--formats is empty; give some of mid, wav, musicxml, png, pdf")
    return chosen


def _wanted(name: str, formats: set[str] | None) -> bool:
    if formats is None or name.endswith(RECORD_SUFFIXES):
        return True  # the record always goes with the music: it says how to make it again
    suffix = Path(name).suffix.lower()
    return any(suffix in FORMAT_SUFFIXES[f] for f in formats)


def slug(text: str, limit: int = 40) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    out = "-".join(words)[:limit].strip("-")
    return out or "piece"


def export(
    lib: Library,
    refs: Sequence[str],
    to: str | Path,
    *,
    formats: Iterable[str] | None = None,
    pictures: Callable[..., list[Path]] | None = None,
) -> list[Path]:
    """Copy pieces out of the library: to ``to`` (a ``.zip`` file, else a folder that may
    exist) in ``<title>-<id>`` folders. ``formats`` (mid, wav, musicxml, png, …) keeps only
    those files (the record always comes too); pictures the piece lacks are drawn by
    ``pictures(music_files, formats, out_folder, title=)`` (`engine.library.pictures.
    render_pictures`). Returns what was written. Nothing is replaced:
    an existing target is refused in one line before anything is written."""
    chosen = check_formats(formats)
    pieces = [lib.get(r, include_deleted=True) for r in refs]
    if not pieces:
        raise LibraryError("give at least one piece to export")
    pieces = list({p.id: p for p in pieces}.values())
    to = Path(to).expanduser()
    draw = sorted((chosen or set()) & set(PICTURE_FORMATS))
    if draw and pictures is None:
        raise LibraryError("pictures cannot be drawn here (matplotlib or verovio is missing)")
    for piece in pieces:
        missing = [f.name for f in piece.files if not lib.file_path(piece, f.name).is_file()]
        if missing:
            raise LibraryError(
                f"{piece.id} ({piece.title}) has lost {missing[0]}; run `disco-musica library "
                "verify` and export the rest"
            )
    if to.suffix.lower() == ".zip":
        return [_export_zip(lib, pieces, to, chosen, pictures)]
    if to.exists() and not to.is_dir():
        raise LibraryError(f"{to} is a file; export goes into a folder (or a new .zip)")
    targets = [to / f"{slug(p.title)}-{p.id}" for p in pieces]
    for t in targets:
        if t.exists() or t.is_symlink():
            raise LibraryError(f"{t} exists; export never replaces it: remove it or choose --to")
    from engine.record import OutputFolder, make_dirs

    if not to.exists():
        make_dirs(to)
    written = []
    for piece, target in zip(pieces, targets, strict=True):
        with OutputFolder(target, error=LibraryError, announce=False) as out:
            for f in piece.files:
                if _wanted(f.name, chosen):
                    dst = out.path / f.name
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(lib.file_path(piece, f.name).read_bytes())
            if draw:
                for name, data in _drawn(lib, piece, draw, pictures):
                    if not (out.path / name).exists():  # drawn before: the kept one goes
                        (out.path / name).write_bytes(data)
        written.append(target)
    return written


def _export_zip(lib, pieces: list[Piece], to: Path, chosen, pictures) -> Path:
    if to.exists() or to.is_symlink():
        raise LibraryError(f"{to} exists; export never replaces a file: choose a new name")
    if not to.parent.is_dir():
        raise LibraryError(f"folder {to.parent} does not exist; create it first")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for piece in pieces:
            base = f"{slug(piece.title)}-{piece.id}"
            stamp = _zip_time(piece.created)
            files = [
                (f.name, lib.file_path(piece, f.name).read_bytes())
                for f in piece.files
                if _wanted(f.name, chosen)
            ]
            draw = sorted((chosen or set()) & set(PICTURE_FORMATS))
            if draw:
                have = {name for name, _ in files}
                files += [(n, d) for n, d in _drawn(lib, piece, draw, pictures) if n not in have]
            for name, data in sorted(files):
                info = zipfile.ZipInfo(f"{base}/{name}", date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, data)
    from engine.record import write_files

    try:
        write_files([(to, buf.getvalue())], force=False)
    except OutputError as e:
        raise LibraryError(str(e)) from None
    return to


MUSIC_SUFFIXES = (*names.MIDI_SUFFIXES, ".musicxml", ".xml", ".mxl", *names.AUDIO_SUFFIXES)


def _drawn(lib, piece: Piece, formats, pictures) -> list[tuple[str, bytes]]:
    """The pictures of a piece in ``formats``, drawn from its music files: (name, bytes)."""
    import tempfile

    folder = lib.folder_path(piece)
    sources = [folder / f.name for f in piece.files if Path(f.name).suffix in MUSIC_SUFFIXES]
    if not sources:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        made = pictures(sources, set(formats), Path(tmp), title=piece.title)
        return [(p.name, p.read_bytes()) for p in made]


def _zip_time(created: str | None) -> tuple[int, int, int, int, int, int]:
    import datetime

    try:
        t = datetime.datetime.fromisoformat(created or "")
        return (max(t.year, 1980), t.month, t.day, t.hour, t.minute, t.second)
    except ValueError:
        return (1980, 1, 1, 0, 0, 0)


# ---- import ----------------------------------------------------------------------------------
@dataclass
class ImportReport:
    added: list[Piece] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)

    def to_dict(self) -> dict:
        return {
            "added": [{"id": p.id, "title": p.title} for p in self.added],
            "skipped": [{"path": p, "why": w} for p, w in self.skipped],
        }


def find_pieces(folder: Path) -> list[tuple[Path, dict, dict[str, Path]]]:
    """Every piece under ``folder``: (its record file, the record, its files by name)."""
    found = []
    for path in sorted(folder.rglob("*.json")):
        parts = path.relative_to(folder).parts
        if any(p.startswith(".") for p in parts) or path.is_symlink():
            continue  # our trash, temporary folders, hidden folders
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if not records.is_piece_record(record):
            continue
        if path.name == names.GENERATION_FILE:
            files = {path.name: path}
            for name in records.output_hashes(record):
                files[name] = path.parent / name
        else:
            midi = record["midi"]["file"]
            files = {path.name: path, midi: path.parent / midi}
        found.append((path, record, files))
    return found


def import_folders(
    lib: Library,
    folders: Sequence[str | Path],
    *,
    on_piece: Callable[[str, Piece | None, str | None], None] | None = None,
) -> ImportReport:
    """Register the pieces found in ``folders`` (generation folders and MIDI files with
    their sidecars). A piece the library holds already (the same files) is skipped; one with
    a file missing is skipped with the reason; a file changed since it was written is kept
    as it is now (`verify` checks against what was imported)."""
    report = ImportReport()
    roots = []
    for f in folders:
        p = Path(f).expanduser()
        if not p.is_dir():
            raise LibraryError(f"{f} is not a folder; give folders that hold generations")
        roots.append(p)
    for root in roots:
        for path, record, files in find_pieces(root):
            shown = str(path.parent if path.name == names.GENERATION_FILE else path)
            missing = [n for n, p in files.items() if not p.is_file()]
            if missing:
                why = f"{missing[0]} is missing"
                report.skipped.append((shown, why))
                if on_piece:
                    on_piece(shown, None, why)
                continue
            if _held(lib, record):
                report.skipped.append((shown, "already in the library"))
                if on_piece:
                    on_piece(shown, None, "already in the library")
                continue
            from engine.library.marks import marks_of

            piece = lib.register(
                files, record, origin=path.parent.absolute(), marks=marks_of(files)
            )
            report.added.append(piece)
            if on_piece:
                on_piece(shown, piece, None)
    return report


def _held(lib: Library, record: dict) -> bool:
    """Whether the library already holds these very files (a piece imported before)."""
    outputs = records.output_hashes(record)
    if not outputs:
        return False
    name, sha = sorted(outputs.items())[0]
    rows = lib.db.execute(
        "SELECT f.piece FROM files f JOIN pieces p ON p.n = f.piece WHERE f.sha256 = ? AND "
        "f.name = ? AND json_extract(p.record, '$.created') IS ?",
        (sha, name, record.get("created")),
    ).fetchall()
    return any(records.output_hashes(lib.record_by_n(n)) == outputs for (n,) in rows)
