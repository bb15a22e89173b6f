"""The library's store: one SQLite database and the pieces' files beside it.

    lib = Library.open()                    # $DISCO_MUSICA_LIBRARY, else the user data folder
    piece = lib.register({"music.mid": path, "generation.json": rec_path}, record)
    lib.list(style="chorale", min_rating=4) ; lib.search("waltz strings")
    lib.tag(piece.id, "keep") ; lib.rate(piece.id, 5) ; lib.delete(piece.id)

Layout of a library folder::

    library.db            SQLite (WAL, foreign keys, PRAGMA user_version = schema version)
    pieces/<id>/          the files of a piece, plain files, exactly as the command wrote them
    trash/<id>/           deleted pieces (restored within LIBRARY_TRASH_DAYS days)
    incoming/             pieces being registered (a killed registration is finished or undone
                          by the next process that opens the library)
    backups/              the database as it was before each migration (never overwritten)

Safety: files are copied into ``incoming/<id>/`` and renamed into ``pieces/<id>/`` before
the database row is committed; a marker ``incoming/<id>.<process id>.pending`` covers
the moment in between, so a ``kill -9`` anywhere leaves either no trace or a whole piece.
The library removes only files it wrote and lists in its database.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine import names
from engine.atomic import sha256_file
from engine.errors import LibraryError
from engine.library import records

SCHEMA_VERSION = 1
APPLICATION_ID = 0x444D4C42  # "DMLB": a Disco-Musica library, whatever the file is called
DB_FILE = "library.db"
PIECES_DIR, TRASH_DIR, INCOMING_DIR, BACKUP_DIR = "pieces", "trash", "incoming", "backups"
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lower case
MAX_TAG_CHARS = 64
MAX_TITLE_CHARS = 200
MAX_NOTE_CHARS = 10_000
ORDER_BY = {
    "created": "p.created_ts",
    "rating": "COALESCE(p.rating, 0)",
    "title": "p.title COLLATE NOCASE",
    "tempo": "p.tempo",
    "key": "p.key",
    "style": "p.style",
    "id": "p.id",
}

_SCHEMA_1 = """
CREATE TABLE pieces (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    operation TEXT NOT NULL COLLATE NOCASE,
    prompt TEXT,
    style TEXT COLLATE NOCASE, key TEXT COLLATE NOCASE, mode TEXT COLLATE NOCASE,
    meter TEXT, tempo REAL, bars INTEGER,
    instruments TEXT NOT NULL DEFAULT '',
    model TEXT COLLATE NOCASE, model_sha256 TEXT, seed INTEGER,
    rating INTEGER CHECK (rating IS NULL OR rating BETWEEN 1 AND 5),
    note TEXT NOT NULL DEFAULT '',
    created TEXT, created_ts REAL NOT NULL, registered_ts REAL NOT NULL,
    version TEXT, origin TEXT,
    record TEXT NOT NULL,
    deleted_ts REAL,
    status TEXT NOT NULL DEFAULT 'ok'
);
CREATE INDEX pieces_created ON pieces(created_ts);
CREATE INDEX pieces_prompt_seed ON pieces(prompt, seed);
CREATE INDEX pieces_title ON pieces(title COLLATE NOCASE);
CREATE INDEX pieces_style ON pieces(style, created_ts);
CREATE INDEX pieces_key ON pieces(key, mode);
CREATE INDEX pieces_model ON pieces(model);
CREATE INDEX pieces_rating ON pieces(rating);
CREATE INDEX pieces_tempo ON pieces(tempo);
CREATE INDEX pieces_deleted ON pieces(deleted_ts);
CREATE TABLE files (
    piece INTEGER NOT NULL REFERENCES pieces(n) ON DELETE CASCADE,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    mark TEXT,
    PRIMARY KEY (piece, name)
);
CREATE INDEX files_sha256 ON files(sha256);
CREATE INDEX files_mark ON files(mark);
CREATE TABLE instruments (
    piece INTEGER NOT NULL REFERENCES pieces(n) ON DELETE CASCADE,
    name TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (piece, name)
);
CREATE INDEX instruments_name ON instruments(name, piece);
CREATE TABLE tags (
    piece INTEGER NOT NULL REFERENCES pieces(n) ON DELETE CASCADE,
    tag TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (piece, tag)
);
CREATE INDEX tags_tag ON tags(tag, piece);
CREATE TABLE collections (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    created_ts REAL NOT NULL
);
CREATE TABLE collection_items (
    collection TEXT NOT NULL COLLATE NOCASE REFERENCES collections(name) ON DELETE CASCADE,
    piece INTEGER NOT NULL REFERENCES pieces(n) ON DELETE CASCADE,
    added_ts REAL NOT NULL,
    PRIMARY KEY (collection, piece)
);
CREATE INDEX collection_items_piece ON collection_items(piece);
CREATE TABLE parents (
    child INTEGER NOT NULL REFERENCES pieces(n) ON DELETE CASCADE,
    parent INTEGER NOT NULL REFERENCES pieces(n) ON DELETE CASCADE,
    relation TEXT NOT NULL,
    PRIMARY KEY (child, parent)
);
CREATE INDEX parents_parent ON parents(parent);
CREATE VIRTUAL TABLE pieces_fts USING fts5(
    prompt, title, tags, note, attributes, tokenize = 'unicode61 remove_diacritics 2'
);
"""

assert tuple(ORDER_BY) == names.LIBRARY_SORTS

# Each schema version's statements, applied in order from the database's version + 1.
MIGRATIONS: dict[int, str] = {1: _SCHEMA_1}


# ---- where ---------------------------------------------------------------------------------
def default_path() -> Path:
    """$DISCO_MUSICA_LIBRARY, else $DISCO_MUSICA_HOME/library, else the platform's user data
    folder (``~/.local/share/disco-musica/library`` on Linux,
    ``~/Library/Application Support/disco-musica/library`` on macOS)."""
    env = os.environ.get(names.LIBRARY_ENV)
    if env:
        return Path(env).expanduser()
    home = os.environ.get("DISCO_MUSICA_HOME")
    if home:
        return Path(home).expanduser() / "library"
    import platformdirs

    return platformdirs.user_data_path("disco-musica", appauthor=False) / "library"


# ---- pieces ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileEntry:
    name: str
    sha256: str
    bytes: int
    mark: str | None = None


@dataclass
class Piece:
    """One piece of the library, as ``show`` and ``--json`` give it."""

    id: str
    title: str
    operation: str
    prompt: str | None
    style: str | None
    key: str | None
    mode: str | None
    meter: str | None
    tempo: float | None
    bars: int | None
    instruments: list[str]
    model: str | None
    model_sha256: str | None
    seed: int | None
    rating: int | None
    note: str
    created: str | None
    version: str | None
    origin: str | None
    deleted: float | None
    status: str
    tags: list[str] = field(default_factory=list)
    collections: list[str] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    parents: list[tuple[str, str]] = field(default_factory=list)  # (id, relation)
    folder: Path | None = None

    def to_dict(self, *, record: dict | None = None) -> dict:
        d = asdict(self)
        d["files"] = [asdict(f) for f in self.files]
        d["parents"] = [{"id": i, "relation": r} for i, r in self.parents]
        d["folder"] = str(self.folder) if self.folder else None
        if record is not None:
            d["record"] = record
        return d


_PIECE_COLUMNS = (
    "p.n, p.id, p.title, p.operation, p.prompt, p.style, p.key, p.mode, p.meter, p.tempo, "
    "p.bars, p.instruments, p.model, p.model_sha256, p.seed, p.rating, p.note, p.created, "
    "p.version, p.origin, p.deleted_ts, p.status"
)


def _check_text(what: str, text: str, limit: int) -> str:
    if not isinstance(text, str):
        raise LibraryError(f"{what} must be text")
    clean = unicodedata.normalize("NFC", text).strip()
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in clean if c != "\n"):
        raise LibraryError(f"{what} {text!r} holds control characters; type it without them")
    if not clean:
        raise LibraryError(f"{what} is empty; give some text")
    if len(clean) > limit:
        raise LibraryError(f"{what} is {len(clean)} characters long; at most {limit} are kept")
    return clean


def check_tag(tag: str) -> str:
    """A tag as stored: one line, no control characters, at most 64 characters, no commas."""
    clean = _check_text("the tag", tag, MAX_TAG_CHARS)
    if "\n" in clean or "," in clean:
        raise LibraryError(f"the tag {tag!r} holds a line break or a comma; give one tag at a time")
    return clean


def parse_moment(text: str, name: str, now: float | None = None) -> float:
    """A moment for the ``since``/``until`` filters, as a timestamp: ``7d`` or ``12h`` ago,
    or a date (``2026-12-01``, any ISO form; without a zone, the local one). ``name`` is how
    the face calls the filter in its one-line `LibraryError` (``--since``, ``since``)."""
    import datetime

    text = text.strip()
    if text[:-1].isdigit() and text[-1:].lower() in ("d", "h"):
        unit = 86400 if text[-1].lower() == "d" else 3600
        return (time.time() if now is None else now) - int(text[:-1]) * unit
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise LibraryError(
            f"{name} {text!r} is not a date; use YYYY-MM-DD, or 7d for the last 7 days"
        ) from None
    if t.tzinfo is None:
        t = t.astimezone()
    return t.timestamp()


def parse_tempo_range(text: str, name: str) -> tuple[float | None, float | None]:
    """(lowest, highest) BPM of the tempo filter: ``60-90``, ``120`` (exactly), ``-90`` or
    ``60-`` (open ends are None); a `LibraryError` in one line naming ``name`` otherwise."""
    lo, sep, hi = text.partition("-")
    try:
        a = float(lo) if lo.strip() else None
        b = float(hi) if hi.strip() else None
    except ValueError:
        raise LibraryError(
            f"{name} {text!r} is not a range of BPM; use e.g. 60-90 or 120"
        ) from None
    if not sep:
        b = a
    if a is not None and b is not None and a > b:
        raise LibraryError(f"{name} {text!r} runs backwards; put the lower BPM first, e.g. 60-90")
    return a, b


def check_rating(rating) -> int:
    if isinstance(rating, bool) or not isinstance(rating, int):
        raise LibraryError(f"the rating must be a whole number from 1 to 5, not {rating!r}")
    if not names.MIN_RATING <= rating <= names.MAX_RATING:
        raise LibraryError(
            f"the rating must be from {names.MIN_RATING} to {names.MAX_RATING}, not {rating}"
        )
    return rating


def new_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(names.LIBRARY_ID_CHARS))


def _owner() -> dict:
    from engine.record import owner_info

    return owner_info()


# ---- the library -----------------------------------------------------------------------------
class Library:
    """A library folder and its database. Open with `Library.open`; use as a context manager
    or call `close`."""

    def __init__(self, root: Path, conn: sqlite3.Connection, writable: bool):
        self.root = root
        self.db = conn
        self.writable = writable

    # -- opening --
    @classmethod
    def open(cls, path: str | Path | None = None, *, write: bool = True) -> Library:
        """Open (creating it if it does not exist and ``write``) the library at ``path``
        (default `default_path`). Raises `LibraryError` in one line for a damaged or foreign
        database, one made by a newer version, or (``write``) a read-only folder."""
        root = Path(path).expanduser() if path is not None else default_path()
        if root.exists() and not root.is_dir():
            raise LibraryError(f"the library {root} is a file, not a folder; give a folder")
        db_path = root / DB_FILE
        if db_path.is_symlink() or (db_path.exists() and not db_path.is_file()):
            raise LibraryError(f"{db_path} is not a file; move it away or use another library")
        writable = _writable(root)
        if not write:
            writable = writable and db_path.exists()
        if write and not writable:
            raise LibraryError(
                f"the library {root} is read-only here ({_why_not_writable(root)}); nothing "
                "was changed: use --library PATH or --no-library"
            )
        if not db_path.exists() and not write:
            raise LibraryError(f"there is no library at {root} yet; make a piece first")
        if write:
            root.mkdir(parents=True, exist_ok=True)
        try:
            if writable:
                conn = sqlite3.connect(db_path, timeout=30.0, isolation_level=None)
            else:  # a read-only disk: no -wal / -shm can be made, so read it as immutable
                uri = f"file:{db_path.absolute()}?mode=ro&immutable=1"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            lib = cls(root, conn, writable)
            lib._prepare_waiting()
        except sqlite3.DatabaseError as e:
            with contextlib.suppress(Exception):
                conn.close()
            raise LibraryError(
                f"{db_path} is not a usable library database ({e}); move it away (it is left "
                "as it is) or give another --library"
            ) from None
        if write:  # (only once the database is known to be a library: nothing else is made)
            for sub in (PIECES_DIR, TRASH_DIR, INCOMING_DIR):
                (root / sub).mkdir(parents=True, exist_ok=True)
            lib._finish_interrupted()
            lib._purge_old_trash()
        return lib

    def _prepare_waiting(self, seconds: float = 30.0) -> None:
        """`_prepare`, waiting while another process holds the database (two commands that
        open a new library at once: switching to WAL needs it alone for a moment)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                return self._prepare()
            except sqlite3.OperationalError as e:
                busy = "locked" in str(e) or "busy" in str(e)
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _prepare(self) -> None:
        db = self.db
        db.execute("PRAGMA busy_timeout = 30000")
        # one read transaction: another process making this new library commits its tables
        # and our application_id together; read apart, the tables could be seen without the
        # id, and the library taken for another program's database
        db.execute("BEGIN")
        try:
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            db.execute("COMMIT")
        if app_id != APPLICATION_ID and (tables or app_id):
            raise LibraryError(
                f"{self.root / DB_FILE} is an SQLite database of another program, not a "
                "Disco-Musica library; it was left as it is: give another --library"
            )
        if version > SCHEMA_VERSION:
            raise LibraryError(
                f"the library {self.root} was made by a newer Disco-Musica (schema {version}, "
                f"this one reads up to {SCHEMA_VERSION}); upgrade disco-musica"
            )
        if self.writable:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        if version < SCHEMA_VERSION:
            if not self.writable:
                raise LibraryError(
                    f"the library {self.root} needs an upgrade, which a read-only disk does not "
                    "allow; open it where it can be written"
                )
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        db = self.db
        if version > 0:
            self.backup(self._backup_name(version))
        db.execute("BEGIN IMMEDIATE")
        try:
            current = db.execute("PRAGMA user_version").fetchone()[0]  # another process?
            for v in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[v].split(";\n"):  # executescript would commit
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _backup_name(self, version: int) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return self.root / BACKUP_DIR / f"library-schema{version}-{stamp}.db"

    def backup(self, to: str | Path) -> Path:
        """Copy the database (consistently, while others use it) to a new file ``to``; an
        existing file is never overwritten. Returns the path."""
        to = Path(to).expanduser()
        if to.exists() or to.is_symlink():
            raise LibraryError(f"{to} exists; a backup never replaces a file: give a new name")
        to.parent.mkdir(parents=True, exist_ok=True)
        tmp = to.with_name(f".{to.name}.{os.getpid()}.tmp")
        try:
            target = sqlite3.connect(tmp)
            with target:
                self.db.backup(target)
            target.close()
            os.link(tmp, to)  # fails if `to` appeared meanwhile: never overwrite
        except FileExistsError:
            raise LibraryError(f"{to} exists; a backup never replaces a file") from None
        finally:
            tmp.unlink(missing_ok=True)
        return to

    def close(self) -> None:
        if self.writable:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("PRAGMA optimize")  # statistics for the query planner
        self.db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._check_writable()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _check_writable(self) -> None:
        if not self.writable:
            raise LibraryError(f"the library {self.root} is read-only here; nothing was changed")

    # -- registering --
    def register(
        self,
        files: Mapping[str, Path],
        record: dict,
        *,
        origin: Path | None = None,
        title: str | None = None,
        marks: Mapping[str, str] | None = None,
    ) -> Piece:
        """Keep a piece: copy ``files`` ({name in the piece: where it is now}) into the
        library and index ``record``. Returns the new `Piece`. Its parents are the pieces
        the library holds whose files the record names as inputs, the first variation of its
        batch, or the piece it replays."""
        self._check_writable()
        for name in files:
            _check_member_name(name)
        pid = self._unused_id()
        incoming = self.root / INCOMING_DIR / pid
        # The marker's name holds the process too: readable even if a kill cut its content.
        marker = self.root / INCOMING_DIR / f"{pid}.{os.getpid()}.pending"
        final = self.root / PIECES_DIR / pid
        marker.write_text(json.dumps(_owner()))  # first: a killed copy is known as ours
        entries: list[FileEntry] = []
        try:
            incoming.mkdir(parents=True)
            for name, src in sorted(files.items()):
                dst = incoming / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                entries.append(
                    FileEntry(name, sha256_file(dst), dst.stat().st_size, (marks or {}).get(name))
                )
            os.rename(incoming, final)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            marker.unlink(missing_ok=True)
            raise
        try:
            piece = self._index(pid, record, entries, origin=origin, title=title)
        except BaseException:
            _remove_listed(final, [e.name for e in entries])
            marker.unlink(missing_ok=True)
            raise
        marker.unlink(missing_ok=True)
        return piece

    def _unused_id(self) -> str:
        while True:
            pid = new_id()
            if not self.db.execute("SELECT 1 FROM pieces WHERE id = ?", (pid,)).fetchone():
                return pid

    def _index(
        self,
        pid: str,
        record: dict,
        entries: list[FileEntry],
        *,
        origin: Path | None,
        title: str | None,
        created_ts: float | None = None,
    ) -> Piece:
        attrs = records.describe(record)
        title = _check_text("the title", title, MAX_TITLE_CHARS) if title else None
        title = title or records.title_for(record, pid)[:MAX_TITLE_CHARS]
        now = time.time()
        created_ts = created_ts or _timestamp(attrs["created"]) or now
        if not attrs["created"]:  # generation folders record no date: it is made now
            import datetime

            stamp = datetime.datetime.fromtimestamp(created_ts, datetime.UTC)
            attrs["created"] = stamp.isoformat(timespec="seconds")
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO pieces (id, title, operation, prompt, style, key, mode, meter, "
                "tempo, bars, instruments, model, model_sha256, seed, created, created_ts, "
                "registered_ts, version, origin, record) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    pid,
                    title,
                    attrs["operation"],
                    attrs["prompt"],
                    attrs["style"],
                    attrs["key"],
                    attrs["mode"],
                    attrs["meter"],
                    attrs["tempo"],
                    attrs["bars"] if isinstance(attrs["bars"], int) else None,
                    records.instruments_text(attrs["instruments"]),
                    attrs["model"],
                    attrs["model_sha256"],
                    attrs["seed"],
                    attrs["created"],
                    created_ts,
                    now,
                    attrs["version"],
                    str(origin) if origin else None,
                    json.dumps(record, sort_keys=True),
                ),
            )
            n = cur.lastrowid
            db.executemany(
                "INSERT INTO files (piece, name, sha256, bytes, mark) VALUES (?,?,?,?,?)",
                [(n, e.name, e.sha256, e.bytes, e.mark) for e in entries],
            )
            db.executemany(
                "INSERT OR IGNORE INTO instruments (piece, name) VALUES (?, ?)",
                [(n, i) for i in dict.fromkeys(attrs["instruments"])],
            )
            for parent, relation in self._find_parents(n, record, entries):
                db.execute(
                    "INSERT OR IGNORE INTO parents (child, parent, relation) VALUES (?,?,?)",
                    (n, parent, relation),
                )
            self._reindex(n)
        return self.get(pid, include_deleted=True)

    def _find_parents(
        self, n: int, record: dict, entries: list[FileEntry]
    ) -> list[tuple[int, str]]:
        db = self.db
        op = records.operation(record)
        found: list[tuple[int, str]] = []
        for sha in records.input_hashes(record):
            row = db.execute(
                "SELECT f.piece FROM files f JOIN pieces p ON p.n = f.piece "
                "WHERE f.sha256 = ? AND f.piece != ? ORDER BY p.deleted_ts IS NOT NULL, p.n "
                "LIMIT 1",
                (sha, n),
            ).fetchone()
            if row:
                found.append((row[0], op))
        batch = records.batch_of(record)
        if batch and batch[1] > 0:
            seeds = json.dumps(list(batch[0]))
            row = db.execute(
                "SELECT n FROM pieces WHERE n != ? AND prompt IS ? AND seed = ? "
                "AND json_extract(record, '$.request.batch.seeds') = json(?) ORDER BY n LIMIT 1",
                (n, records.describe(record)["prompt"], batch[0][0], seeds),
            ).fetchone()
            if row:
                found.append((row[0], "variation"))
        outputs = records.output_hashes(record)
        if outputs and not found:  # the same files again: a replay of a piece
            name, sha = sorted(outputs.items())[0]
            rows = db.execute(
                "SELECT f.piece FROM files f WHERE f.sha256 = ? AND f.name = ? AND f.piece != ? "
                "ORDER BY f.piece",
                (sha, name, n),
            ).fetchall()
            for (cand,) in rows:
                other = self.record_by_n(cand)
                if records.output_hashes(other) == outputs:
                    found.append((cand, "replay"))
                    break
        attrs = records.describe(record)
        if not found and attrs["prompt"] and attrs["seed"] is not None and attrs["model_sha256"]:
            row = db.execute(  # the same request with other weights: a rerun with another model
                "SELECT n FROM pieces WHERE n != ? AND prompt = ? AND seed = ? AND operation = ? "
                "AND model_sha256 IS NOT ? ORDER BY n LIMIT 1",
                (n, attrs["prompt"], attrs["seed"], op, attrs["model_sha256"]),
            ).fetchone()
            if row:
                found.append((row[0], "other model"))
        return list(dict.fromkeys(found))

    def record_by_n(self, n: int) -> dict:
        row = self.db.execute("SELECT record FROM pieces WHERE n = ?", (n,)).fetchone()
        return json.loads(row[0]) if row else {}

    def _reindex(self, n: int) -> None:
        """Rewrite the full-text row of piece ``n`` (inside a transaction)."""
        db = self.db
        row = db.execute("SELECT prompt, title, note, record FROM pieces WHERE n = ?", (n,))
        prompt, title, note, record = row.fetchone()
        tags = " ".join(t for (t,) in db.execute("SELECT tag FROM tags WHERE piece = ?", (n,)))
        db.execute("DELETE FROM pieces_fts WHERE rowid = ?", (n,))
        db.execute(
            "INSERT INTO pieces_fts (rowid, prompt, title, tags, note, attributes) "
            "VALUES (?,?,?,?,?,?)",
            (n, prompt or "", title, tags, note, records.search_text(json.loads(record))),
        )

    # -- recovering from a killed process --
    def _finish_interrupted(self) -> list[str]:
        """Finish or undo what a killed registration left in ``incoming/``: a piece whose
        files were all in place is indexed; a copy that never finished is removed."""
        from engine.record import is_stale

        done: list[str] = []
        incoming = self.root / INCOMING_DIR
        for marker in sorted(incoming.glob("*.pending")):
            m = re.fullmatch(
                f"([{ID_ALPHABET}]{{{names.LIBRARY_ID_CHARS}}})\\.(\\d+)\\.pending", marker.name
            )
            if m is None:
                continue
            pid = m[1]
            try:
                owner = json.loads(marker.read_text())
            except (OSError, ValueError):
                owner = None
            if not isinstance(owner, dict):  # cut short by a kill: its name says who wrote it
                owner = {"pid": int(m[2]), "host": socket.gethostname(), "created": 0}
            if not is_stale(owner):
                continue  # still being registered by a live process
            known = self.db.execute("SELECT 1 FROM pieces WHERE id = ?", (pid,)).fetchone()
            folder = self.root / PIECES_DIR / pid
            if not known and folder.is_dir():
                if self._adopt(folder, pid) is not None:
                    done.append(f"registered {pid} (a stopped run had not finished it)")
            partial = incoming / pid
            if partial.is_dir() and not partial.is_symlink():
                shutil.rmtree(partial, ignore_errors=True)  # a copy that never finished
                done.append(f"removed an unfinished copy of {pid}")
            marker.unlink(missing_ok=True)
        return done

    def _adopt(self, folder: Path, pid: str) -> Piece | None:
        """Index a complete piece folder that has no row (its registration was killed)."""
        found = _record_in(folder)
        if found is None:
            return None
        record, _ = found
        entries = [
            FileEntry(str(p.relative_to(folder)), sha256_file(p), p.stat().st_size)
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        ]
        listed = records.output_hashes(record)
        have = {e.name: e.sha256 for e in entries}
        if any(have.get(name) != sha for name, sha in listed.items()):
            return None  # not whole: leave it for `verify` to report
        return self._index(pid, record, entries, origin=None, title=None)

    def _purge_old_trash(self) -> None:
        limit = time.time() - names.LIBRARY_TRASH_DAYS * 86400
        rows = self.db.execute(
            "SELECT id FROM pieces WHERE deleted_ts IS NOT NULL AND deleted_ts < ?", (limit,)
        ).fetchall()
        for (pid,) in rows:
            self._erase(pid)

    # -- reading --
    def get(self, ref: str, *, include_deleted: bool = False) -> Piece:
        """The piece an ID, an ID prefix (3+ characters) or a title names."""
        n = self.resolve(ref, include_deleted=include_deleted)
        row = self.db.execute(f"SELECT {_PIECE_COLUMNS} FROM pieces p WHERE p.n = ?", (n,))
        return self._piece(row.fetchone(), full=True)

    def record(self, ref: str, *, include_deleted: bool = True) -> dict:
        return self.record_by_n(self.resolve(ref, include_deleted=include_deleted))

    def resolve(self, ref: str, *, include_deleted: bool = False) -> int:
        if not isinstance(ref, str) or not ref.strip():
            raise LibraryError("give a piece's ID, the start of its ID, or its title")
        ref = ref.strip()
        alive = "" if include_deleted else " AND deleted_ts IS NULL"
        low = ref.lower()
        if re.fullmatch(f"[{ID_ALPHABET}]+", low):
            row = self.db.execute(f"SELECT n FROM pieces WHERE id = ?{alive}", (low,)).fetchone()
            if row:
                return row[0]
            if len(low) >= names.LIBRARY_MIN_PREFIX:
                rows = self.db.execute(
                    f"SELECT n, id, title FROM pieces WHERE id >= ? AND id < ?{alive} "
                    "ORDER BY id LIMIT 6",
                    (low, low + "~"),
                ).fetchall()
                if len(rows) == 1:
                    return rows[0][0]
                if len(rows) > 1:
                    shown = ", ".join(f"{i} ({t[:30]})" for _, i, t in rows[:5])
                    raise LibraryError(f"{ref!r} starts several IDs: {shown}; type more of the ID")
        rows = self.db.execute(
            f"SELECT n, id FROM pieces WHERE title = ? COLLATE NOCASE{alive} LIMIT 6", (ref,)
        ).fetchall()
        if len(rows) == 1:
            return rows[0][0]
        if len(rows) > 1:
            ids = ", ".join(i for _, i in rows[:5])
            raise LibraryError(f"several pieces are titled {ref!r} ({ids}); give an ID")
        where = "" if include_deleted else " (see `library list --trash` for deleted ones)"
        raise LibraryError(f"no piece {ref!r} in the library {self.root}{where}")

    def _piece(self, row, *, full: bool = False) -> Piece:
        n, pid = row[0], row[1]
        piece = Piece(
            id=pid,
            title=row[2],
            operation=row[3],
            prompt=row[4],
            style=row[5],
            key=row[6],
            mode=row[7],
            meter=row[8],
            tempo=row[9],
            bars=row[10],
            instruments=[i for i in (row[11] or "").split("|") if i],
            model=row[12],
            model_sha256=row[13],
            seed=row[14],
            rating=row[15],
            note=row[16],
            created=row[17],
            version=row[18],
            origin=row[19],
            deleted=row[20],
            status=row[21],
        )
        db = self.db
        piece.tags = [t for (t,) in db.execute("SELECT tag FROM tags WHERE piece = ?", (n,))]
        if full:
            piece.collections = [
                c
                for (c,) in db.execute(
                    "SELECT collection FROM collection_items WHERE piece = ? ORDER BY 1", (n,)
                )
            ]
            piece.files = [
                FileEntry(*r)
                for r in db.execute(
                    "SELECT name, sha256, bytes, mark FROM files WHERE piece = ? ORDER BY name",
                    (n,),
                )
            ]
            piece.parents = list(
                db.execute(
                    "SELECT p.id, r.relation FROM parents r JOIN pieces p ON p.n = r.parent "
                    "WHERE r.child = ? ORDER BY p.n",
                    (n,),
                )
            )
            piece.folder = self.folder_of(pid, piece.deleted is not None)
        return piece

    def folder_of(self, pid: str, deleted: bool = False) -> Path:
        return self.root / (TRASH_DIR if deleted else PIECES_DIR) / pid

    def list(
        self,
        *,
        style: str | None = None,
        key: str | None = None,
        mode: str | None = None,
        meter: str | None = None,
        tempo_min: float | None = None,
        tempo_max: float | None = None,
        instrument: str | None = None,
        model: str | None = None,
        min_rating: int | None = None,
        tag: str | None = None,
        collection: str | None = None,
        operation: str | None = None,
        since: float | None = None,
        until: float | None = None,
        trash: bool = False,
        sort: str = "created",
        reverse: bool = False,
        limit: int | None = names.LIBRARY_DEFAULT_LIMIT,
        text: str | None = None,
    ) -> list[Piece]:
        """Pieces matching every filter given, newest first (``sort``: created, rating,
        title, tempo, key, style, id; ``reverse`` flips it). ``text``: an FTS5 search
        (`search`). ``trash``: the deleted pieces instead."""
        if sort not in ORDER_BY:
            raise LibraryError(f"unknown sort {sort!r}; use one of {', '.join(ORDER_BY)}")
        where = ["p.deleted_ts IS NOT NULL" if trash else "p.deleted_ts IS NULL"]
        args: list = []

        def eq(column: str, value) -> None:  # the columns compare without case (the schema)
            where.append(f"{column} = ?")
            args.append(value)

        for column, value in (
            ("p.style", style),
            ("p.key", key),
            ("p.mode", mode),
            ("p.meter", meter),
            ("p.operation", operation),
        ):
            if value:
                eq(column, value)
        if min_rating is not None:
            check_rating(min_rating)
        for condition, value in (
            ("p.tempo >= ?", tempo_min),
            ("p.tempo <= ?", tempo_max),
            ("p.rating >= ?", min_rating),
            ("p.created_ts >= ?", since),
            ("p.created_ts < ?", until),
        ):
            if value is not None:
                where.append(condition)
                args.append(value)
        if model:
            where.append("(p.model = ? OR p.model_sha256 LIKE ?)")
            args += [model, model.lower() + "%"]
        for table, column, value in (
            ("instruments", "name", instrument),
            ("tags", "tag", tag),
            ("collection_items", "collection", collection),
        ):
            if value:
                member = f"SELECT 1 FROM {table} x WHERE x.piece = p.n AND x.{column} = ?"
                where.append(f"EXISTS ({member})")
                args.append(value)
        ascending = reverse != (sort in ("title", "key", "style", "id"))
        order = f"{ORDER_BY[sort]} {'ASC' if ascending else 'DESC'}, p.n DESC"
        if text is not None:
            query = _fts_query(text)
            sql = (
                f"SELECT {_PIECE_COLUMNS} FROM pieces_fts f JOIN pieces p ON p.n = f.rowid "
                f"WHERE pieces_fts MATCH ? AND {' AND '.join(where)} ORDER BY "
                + ("f.rank" if sort == "created" and not reverse else order)
            )
            args = [query, *args]
        else:
            sql = f"SELECT {_PIECE_COLUMNS} FROM pieces p WHERE {' AND '.join(where)} "
            sql += f"ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        try:
            rows = self.db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            if text is not None and "fts5" in str(e).lower():
                raise LibraryError(f"cannot search for {text!r} ({e}); use plain words") from None
            raise
        return [self._piece(r) for r in rows]

    def search(self, text: str, **filters) -> list[Piece]:
        """Full-text search (SQLite FTS5) over prompt, title, tags, notes and attributes,
        best matches first; every `list` filter applies."""
        if not isinstance(text, str) or not text.strip():
            raise LibraryError("give words to search for")
        return self.list(text=text, **filters)

    def count(self, *, trash: bool = False) -> int:
        cond = "IS NOT NULL" if trash else "IS NULL"
        return self.db.execute(f"SELECT count(*) FROM pieces WHERE deleted_ts {cond}").fetchone()[0]

    # -- changing --
    def tag(self, ref: str, tags: Iterable[str], *, remove: bool = False) -> Piece:
        clean = [check_tag(t) for t in tags]
        if not clean:
            raise LibraryError("give at least one tag")
        n = self.resolve(ref)
        with self._tx() as db:
            if remove:
                db.executemany(
                    "DELETE FROM tags WHERE piece = ? AND tag = ?", [(n, t) for t in clean]
                )
            else:
                db.executemany(
                    "INSERT OR IGNORE INTO tags (piece, tag) VALUES (?, ?)", [(n, t) for t in clean]
                )
            self._reindex(n)
        return self.by_n(n)

    def rate(self, ref: str, rating: int | None) -> Piece:
        rating = None if rating is None else check_rating(rating)
        n = self.resolve(ref)
        with self._tx() as db:
            db.execute("UPDATE pieces SET rating = ? WHERE n = ?", (rating, n))
        return self.by_n(n)

    def set_note(self, ref: str, note: str) -> Piece:
        note = "" if note == "" else _check_text("the note", note, MAX_NOTE_CHARS)
        n = self.resolve(ref)
        with self._tx() as db:
            db.execute("UPDATE pieces SET note = ? WHERE n = ?", (note, n))
            self._reindex(n)
        return self.by_n(n)

    def rename(self, ref: str, title: str) -> Piece:
        title = _check_text("the title", title, MAX_TITLE_CHARS)
        if "\n" in title:
            raise LibraryError("a title is one line; give it without line breaks")
        n = self.resolve(ref)
        with self._tx() as db:
            db.execute("UPDATE pieces SET title = ? WHERE n = ?", (title, n))
            self._reindex(n)
        return self.by_n(n)

    def collection_add(self, name: str, refs: Iterable[str]) -> list[Piece]:
        name = _check_text("the collection name", name, MAX_TAG_CHARS)
        row = self.db.execute("SELECT name FROM collections WHERE name = ?", (name,)).fetchone()
        name = row[0] if row else name  # the spelling it was made with
        ns = [self.resolve(r) for r in refs]
        if not ns:
            raise LibraryError("give at least one piece to add")
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO collections (name, created_ts) VALUES (?, ?)", (name, now)
            )
            db.executemany(
                "INSERT OR IGNORE INTO collection_items (collection, piece, added_ts) "
                "VALUES (?,?,?)",
                [(name, n, now) for n in ns],
            )
        return [self.by_n(n) for n in ns]

    def collection_remove(self, name: str, refs: Iterable[str]) -> list[Piece]:
        self._collection_exists(name)
        ns = [self.resolve(r, include_deleted=True) for r in refs]
        with self._tx() as db:
            db.executemany(
                "DELETE FROM collection_items WHERE collection = ? AND piece = ?",
                [(name, n) for n in ns],
            )
        return [self.by_n(n) for n in ns]

    def collections(self) -> list[tuple[str, int]]:
        return list(
            self.db.execute(
                "SELECT c.name, count(p.n) FROM collections c LEFT JOIN collection_items i ON "
                "i.collection = c.name LEFT JOIN pieces p ON p.n = i.piece AND p.deleted_ts IS "
                "NULL GROUP BY c.name ORDER BY c.name COLLATE NOCASE"
            )
        )

    def _collection_exists(self, name: str) -> None:
        if not self.db.execute("SELECT 1 FROM collections WHERE name = ?", (name,)).fetchone():
            known = ", ".join(c for c, _ in self.collections()) or "none yet"
            raise LibraryError(f"no collection {name!r} (collections: {known})")

    def by_n(self, n: int) -> Piece:
        row = self.db.execute(f"SELECT {_PIECE_COLUMNS} FROM pieces p WHERE p.n = ?", (n,))
        return self._piece(row.fetchone(), full=True)

    # -- deleting --
    def delete(self, ref: str) -> Piece:
        """Move a piece to the trash (its files to ``trash/<id>/``)."""
        n = self.resolve(ref)
        pid = self.by_n(n).id
        with self._tx() as db:
            db.execute("UPDATE pieces SET deleted_ts = ? WHERE n = ?", (time.time(), n))
        self._place(pid, deleted=True)
        return self.by_n(n)

    def restore(self, ref: str) -> Piece:
        n = self.resolve(ref, include_deleted=True)
        piece = self.by_n(n)
        if piece.deleted is None:
            raise LibraryError(f"{piece.id} ({piece.title}) is not in the trash")
        with self._tx() as db:
            db.execute("UPDATE pieces SET deleted_ts = NULL WHERE n = ?", (n,))
        self._place(piece.id, deleted=False)
        return self.by_n(n)

    def _place(self, pid: str, *, deleted: bool) -> None:
        """Move a piece's folder where its row says it is (after the row changed: a crash in
        between leaves it where `verify` and `folder_path` still find it)."""
        src, dst = self.folder_of(pid, not deleted), self.folder_of(pid, deleted)
        if src.is_dir() and not dst.exists():
            dst.parent.mkdir(exist_ok=True)
            os.rename(src, dst)

    def empty_trash(self) -> list[str]:
        """Erase every piece in the trash now; returns their IDs."""
        self._check_writable()
        ids = [i for (i,) in self.db.execute("SELECT id FROM pieces WHERE deleted_ts IS NOT NULL")]
        for pid in ids:
            self._erase(pid)
        return ids

    def _erase(self, pid: str) -> None:
        row = self.db.execute("SELECT n FROM pieces WHERE id = ?", (pid,)).fetchone()
        if row is None:
            return
        files = self.db.execute("SELECT name FROM files WHERE piece = ?", row)
        listed = [name for (name,) in files]
        with self._tx() as db:
            db.execute("DELETE FROM pieces_fts WHERE rowid = ?", row)
            db.execute("DELETE FROM pieces WHERE n = ?", row)
        for folder in (self.folder_of(pid, True), self.folder_of(pid, False)):
            _remove_listed(folder, listed)

    # -- the files --
    def folder_path(self, piece: Piece) -> Path:
        """Where a piece's files are (the trash or not, wherever a crash left them)."""
        want = self.folder_of(piece.id, piece.deleted is not None)
        other = self.folder_of(piece.id, piece.deleted is None)
        return want if want.is_dir() or not other.is_dir() else other

    def file_path(self, piece: Piece, name: str) -> Path:
        return self.folder_path(piece) / name

    def find_file(self, sha256: str) -> Path | None:
        """A library file with this content (any piece), or None."""
        rows = self.db.execute(
            "SELECT p.id, p.deleted_ts, f.name FROM files f JOIN pieces p ON p.n = f.piece "
            "WHERE f.sha256 = ? ORDER BY p.deleted_ts IS NOT NULL",
            (sha256,),
        ).fetchall()
        for pid, deleted, name in rows:
            path = self.folder_of(pid, deleted is not None) / name
            if path.is_file():
                return path
        return None

    def pieces_with_file(self, sha256: str) -> list[Piece]:
        """The pieces holding a file with this content (the trash included)."""
        rows = self.db.execute(
            f"SELECT DISTINCT {_PIECE_COLUMNS} FROM files f JOIN pieces p ON p.n = f.piece "
            "WHERE f.sha256 = ? ORDER BY p.n",
            (sha256,),
        ).fetchall()
        return [self._piece(r, full=True) for r in rows]

    def by_mark(self, mark: str) -> list[Piece]:
        rows = self.db.execute(
            f"SELECT DISTINCT {_PIECE_COLUMNS} FROM files f JOIN pieces p ON p.n = f.piece "
            "WHERE f.mark = ? ORDER BY p.n",
            (mark,),
        ).fetchall()
        return [self._piece(r, full=True) for r in rows]

    def set_mark(self, ref: str, name: str, mark: str | None) -> None:
        n = self.resolve(ref, include_deleted=True)
        with self._tx() as db:
            db.execute("UPDATE files SET mark = ? WHERE piece = ? AND name = ?", (mark, n, name))

    def link(self, child: str, parent: str, relation: str) -> None:
        """Record that ``child`` was made from ``parent`` (``relation``: replay, variation …)."""
        c = self.resolve(child, include_deleted=True)
        p = self.resolve(parent, include_deleted=True)
        if c == p:
            return
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO parents (child, parent, relation) VALUES (?,?,?)",
                (c, p, relation),
            )

    def add_files(self, ref: str, files: Mapping[str, Path]) -> Piece:
        """Put more files (pictures) into a piece's folder and list them. A name the piece
        already lists is replaced only if it is a picture the library drew; a file there that
        the library does not list is never replaced."""
        n = self.resolve(ref)
        piece = self.by_n(n)
        folder = self.folder_path(piece)
        listed = {f.name for f in piece.files}
        for name in files:
            _check_member_name(name)
            target = folder / name
            if name in listed and Path(name).suffix.lstrip(".") not in names.PICTURE_FORMATS:
                raise LibraryError(f"{piece.id} already has {name}; it is not replaced")
            if target.exists() and name not in listed:
                raise LibraryError(f"{target} is not the library's file; move it away first")
        entries = []
        for name, src in sorted(files.items()):
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, folder / name)
            entries.append((n, name, sha256_file(folder / name), (folder / name).stat().st_size))
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO files (piece, name, sha256, bytes) VALUES (?,?,?,?)",
                entries,
            )
        return self.by_n(n)

    # -- lineage --
    def lineage(self, ref: str) -> dict:
        """The family tree of a piece: ``{"focus": id, "roots": [node]}``, each node
        ``{"id", "title", "operation", "relation", "changes", "children": [...]}``."""
        n = self.resolve(ref, include_deleted=True)
        db = self.db
        seen: set[int] = set()
        frontier, roots = [n], []
        while frontier:  # up to the first pieces
            m = frontier.pop()
            if m in seen:
                continue
            seen.add(m)
            ups = [p for (p,) in db.execute("SELECT parent FROM parents WHERE child = ?", (m,))]
            if not ups:
                roots.append(m)
            frontier += ups

        def node(m: int, relation: str | None, parent: dict | None, path: set[int]) -> dict:
            piece = self.by_n(m)
            rec = self.record_by_n(m)  # read once: its children's changes compare with it
            item = {
                "id": piece.id,
                "title": piece.title,
                "operation": piece.operation,
                "deleted": piece.deleted is not None,
                "relation": relation,
                "changes": records.changes(parent, rec) if parent is not None else [],
                "children": [],
            }
            for child, rel in db.execute(
                "SELECT child, relation FROM parents WHERE parent = ? ORDER BY child", (m,)
            ).fetchall():
                if child not in path:
                    item["children"].append(node(child, rel, rec, path | {child}))
            return item

        focus = self.by_n(n).id
        return {"focus": focus, "roots": [node(r, None, None, {r}) for r in sorted(set(roots))]}

    # -- verify --
    def verify(self) -> dict:
        """Re-hash every file; report missing and changed ones; repair the index (pieces in
        the wrong folder moved back, the search index rebuilt, statuses updated, complete
        folders without a row registered). Returns ``{"checked", "ok", "problems": [...],
        "repaired": [...]}``."""
        self._check_writable()
        repaired = self._finish_interrupted()
        problems: list[dict] = []
        rows = self.db.execute("SELECT n, id, deleted_ts, status FROM pieces ORDER BY n").fetchall()
        statuses: list[tuple[str, int]] = []
        for n, pid, deleted, old_status in rows:
            want = self.folder_of(pid, deleted is not None)
            other = self.folder_of(pid, deleted is None)
            if not want.is_dir() and other.is_dir():
                os.rename(other, want)
                repaired.append(f"moved {pid} to {want.parent.name}/")
            bad = []
            for name, sha, size in self.db.execute(
                "SELECT name, sha256, bytes FROM files WHERE piece = ?", (n,)
            ).fetchall():
                path = want / name
                if not path.is_file():
                    bad.append({"id": pid, "file": name, "problem": "missing"})
                elif path.stat().st_size != size or sha256_file(path) != sha:
                    bad.append({"id": pid, "file": name, "problem": "changed"})
            status = "ok" if not bad else ",".join(sorted({b["problem"] for b in bad}))
            if status != old_status:
                statuses.append((status, n))
            problems += bad
        with self._tx() as db:
            db.executemany("UPDATE pieces SET status = ? WHERE n = ?", statuses)
            db.execute("DELETE FROM pieces_fts")
            for (n,) in db.execute("SELECT n FROM pieces").fetchall():
                self._reindex(n)
        known = {pid for (_, pid, _, _) in rows}
        for sub in (PIECES_DIR, TRASH_DIR):
            base = self.root / sub
            for folder in sorted(base.iterdir()) if base.is_dir() else []:
                if folder.name in known or not folder.is_dir():
                    continue
                if re.fullmatch(f"[{ID_ALPHABET}]{{{names.LIBRARY_ID_CHARS}}}", folder.name):
                    piece = self._adopt(folder, folder.name) if sub == PIECES_DIR else None
                    if piece is not None:
                        repaired.append(f"registered {folder.name} (its files had no entry)")
                        continue
                problems.append({"id": None, "file": f"{sub}/{folder.name}", "problem": "unknown"})
        return {
            "checked": len(rows),
            "ok": len(rows) - len({p["id"] for p in problems if p["id"]}),
            "problems": problems,
            "repaired": repaired,
        }


# ---- helpers ---------------------------------------------------------------------------------
def _writable(root: Path) -> bool:
    probe = root
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        return False
    db = root / DB_FILE
    return not db.exists() or os.access(db, os.W_OK)


def _why_not_writable(root: Path) -> str:
    probe = root
    while not probe.exists():
        probe = probe.parent
    return f"{probe} cannot be written"


def _check_member_name(name: str) -> None:
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or not p.parts or name.startswith("."):
        raise LibraryError(f"a piece's file cannot be called {name!r}")


def _remove_listed(folder: Path, listed: Iterable[str]) -> None:
    """Remove the files the library listed for a piece from ``folder``, then the folders
    that became empty. Anything else in it stays."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for name in listed:
        _check_member_name(name)
        p = folder / name
        if p.is_file() and not p.is_symlink():
            p.unlink()
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _record_in(folder: Path) -> tuple[dict, Path] | None:
    """The piece record in ``folder`` (``generation.json``, or a MIDI file's sidecar)."""
    gen = folder / names.GENERATION_FILE
    candidates = [gen] if gen.is_file() else sorted(folder.glob(f"*{names.SIDECAR_SUFFIX}"))
    for path in candidates:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if records.is_piece_record(record):
            return record, path
    return None


def _timestamp(iso: str | None) -> float | None:
    if not iso:
        return None
    import datetime

    try:
        return datetime.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _fts_query(text: str) -> str:
    """Plain words as an FTS5 query: each word must occur (prefix match), quotes kept as
    phrases; FTS5 operators typed by the user are taken as words."""
    phrases = re.findall(r'"([^"]+)"', text)
    rest = re.sub(r'"[^"]*"', " ", text)
    words = re.findall(r"[\w#♭♯'-]+", rest, flags=re.UNICODE)
    parts = ['"' + p.replace('"', "") + '"' for p in phrases if p.strip()]
    parts += ['"' + w.replace('"', "") + '"*' for w in words]
    if not parts:
        raise LibraryError(f"{text!r} holds no words to search for")
    return " ".join(parts)


# ---- keeping every piece a command writes ---------------------------------------------------
def keep_pieces(lib: Library, kept: list[Piece] | None = None):
    """An `engine.record.add_publish_hook` hook that registers each piece in ``lib`` just
    before it is put in place (and removes it again if that fails). ``kept`` collects the
    new pieces."""

    def hook(published):
        if not records.is_piece_record(published.record):
            return None
        from engine.library.marks import marks_of

        marks = marks_of(published.files)
        piece = lib.register(
            published.files, published.record, origin=published.target.absolute(), marks=marks
        )
        if kept is not None:
            kept.append(piece)

        def undo() -> None:
            lib._erase(piece.id)
            if kept is not None and piece in kept:
                kept.remove(piece)

        return undo

    return hook


@contextlib.contextmanager
def keeping(path: str | Path | None = None) -> Iterator[list[Piece]]:
    """Keep every piece saved inside the block in the library at ``path`` (default
    `default_path`), as the CLI does; yields the list of pieces kept so far::

        with keeping() as kept:
            compose("a calm chorale", seed=1).save("chorale")
        kept[0].id
    """
    from engine.record import add_publish_hook

    lib = Library.open(path)
    kept: list[Piece] = []
    remove = add_publish_hook(keep_pieces(lib, kept))
    try:
        yield kept
    finally:
        remove()
        lib.close()
