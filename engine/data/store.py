"""Versioned datasets of the user's own music: a folder of content-addressed files and one
manifest per version.

    DATASET/
      dataset.json          format, id (a UUID made once), name, created
      HEAD                  the current version's ID
      objects/ab/abcdef…    every file once, named by its SHA-256 (never changed or removed)
      versions/V.jsonl      the manifest of version V: one JSON item per line, sorted by path
      versions/V.json       how V was made: parent version, step (name + parameters), message,
                            command, time, item count
      pending.jsonl         the journal of a change in progress (see `Dataset.change`)
      lock                  held while a command changes the dataset

A version is never changed once written, so an older one can always be checked out again;
its ID is the SHA-256 of its parent's ID and its manifest (content-addressed: the same items
from the same parent give the same ID). A file is stored once however many items or versions
hold it, so a change copies only new content.

Every change goes through `Dataset.change`, which journals each item it adds or replaces
(one line each, flushed at once) before the version is written: a command killed half-way (even
``kill -9``) leaves the journal, and the next change of the same kind picks it up (an
interrupted import continues without copying again), while any other change first keeps what
the interrupted one had done as a version of its own. No item is lost or doubled, and the
manifests on disk are always whole.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from engine.atomic import json_default, write_text_atomic
from engine.errors import UserError

FORMAT = 1
KINDS = ("audio", "midi", "score", "image", "video")
SPLITS = ("train", "validation", "test")
# Metadata every item may carry (all optional). Lists are lists of strings; tempo is in BPM.
# ``artists`` made or play the music (a file's artist tag); ``influences`` are the artists it
# draws on (told by the user or a sidecar).
META_FIELDS = (
    "title",
    "genre",
    "mood",
    "instruments",
    "tempo",
    "key",
    "meter",
    "artists",
    "influences",
    "tags",
    "caption",
)
LIST_FIELDS = frozenset({"instruments", "artists", "influences", "tags"})
# Where a metadata value came from; "estimate" values are measured, not told, and marked so.
META_SOURCES = ("tags", "sidecar", "estimate", "user", "import")
DATASETS_ENV = "DISCO_MUSICA_DATASETS"
HOME_ENV = "DISCO_MUSICA_HOME"


class DatasetError(UserError, ValueError):
    """A dataset that cannot be used as asked: missing, damaged, busy, read-only, or an
    unknown item or version."""


@dataclass
class Item:
    """One file of a dataset and what is known about it."""

    id: str
    """12 hex digits, stable across versions (made from the path the item first had)."""
    path: str
    """Where the item sits in the dataset (POSIX, relative, unique in a version)."""
    hash: str
    """SHA-256 of the file's bytes; the file is ``objects/<hash[:2]>/<hash>``."""
    kind: str
    """One of `KINDS`."""
    size: int
    """Bytes."""
    duration_s: float | None = None
    """Length of audio, MIDI or video in seconds (None for images and unknown)."""
    split: str | None = None
    """``train``, ``validation``, ``test`` or None (not assigned yet)."""
    group: str = ""
    """Items of one group (the chunks of one song) always land in the same split."""
    parent: str | None = None
    """The item this one was made from by a preprocessing step, or None."""
    step: str = "import"
    """The step that made this item (``import``, ``audio``, ``midi``…)."""
    source: str = ""
    """Where the file came from (a path or URL, for imports)."""
    meta: dict = field(default_factory=dict)
    """Metadata (`META_FIELDS`), each value told or estimated; see ``meta_from``."""
    meta_from: dict = field(default_factory=dict)
    """Field → where its value came from (one of `META_SOURCES`)."""
    info: dict = field(default_factory=dict)
    """Facts about the file read from it (sample rate, channels, size in pixels, tracks…)."""
    extras: dict = field(default_factory=dict)
    """Files stored beside the item: name → hash (``features`` → an .npz, ``tokens``…)."""

    @property
    def estimated(self) -> list[str]:
        """Metadata fields whose values are estimates, not told by the user or the file."""
        return sorted(k for k, v in self.meta_from.items() if v == "estimate")

    def to_json(self) -> dict:
        d = asdict(self)
        d["estimated"] = self.estimated
        return d

    @classmethod
    def from_json(cls, d: dict) -> Item:
        d = {k: v for k, v in d.items() if k in _ITEM_FIELDS}
        return cls(**d)

    def with_meta(self, values: dict, source: str) -> Item:
        """A copy with ``values`` set (None removes a field), each marked as from ``source``."""
        meta, meta_from = dict(self.meta), dict(self.meta_from)
        for k, v in values.items():
            v = check_meta(k, v)
            if v is None or v == [] or v == "":
                meta.pop(k, None)
                meta_from.pop(k, None)
            else:
                meta[k] = v
                meta_from[k] = source
        return replace(self, meta=meta, meta_from=meta_from)


_ITEM_FIELDS = frozenset(Item.__dataclass_fields__)


def item_id(path: str) -> str:
    """The ID an item gets when it first appears at ``path``."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:12]


def check_meta(name: str, value):
    """``value`` as field ``name`` holds it (lists from comma-separated text, tempo as a
    number), or a `DatasetError` naming the field and what it takes."""
    if name not in META_FIELDS:
        raise DatasetError(
            f"unknown metadata field {name!r}; the fields are {', '.join(META_FIELDS)}"
        )
    if value is None:
        return None
    if name in LIST_FIELDS:
        if isinstance(value, str):
            value = [v for v in (p.strip() for p in value.split(",")) if v]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise DatasetError(f"{name} takes a list of words, e.g. {name}=piano,strings")
        return list(dict.fromkeys(v.strip() for v in value if v.strip()))
    if name == "tempo":
        try:
            bpm = float(value)
        except (TypeError, ValueError):
            raise DatasetError(
                f"tempo takes beats per minute, e.g. tempo=96 (not {value!r})"
            ) from None
        if not 10 <= bpm <= 400:
            raise DatasetError(f"tempo {bpm:g} BPM is out of range; give 10 to 400")
        return round(bpm, 2)
    if not isinstance(value, str | int | float):
        raise DatasetError(f"{name} takes text (not {type(value).__name__})")
    text = " ".join(str(value).split())
    if len(text) > 2000:
        raise DatasetError(f"{name} is {len(text)} characters long; keep it under 2000")
    return text


# ---- where datasets live --------------------------------------------------------------------
def datasets_root() -> Path:
    """$DISCO_MUSICA_DATASETS, else $DISCO_MUSICA_HOME/datasets, else the user data folder."""
    if os.environ.get(DATASETS_ENV):
        return Path(os.environ[DATASETS_ENV]).expanduser()
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser() / "datasets"
    import platformdirs

    return platformdirs.user_data_path("disco-musica") / "datasets"


def dataset_path(name_or_path: str | Path) -> Path:
    """A dataset's folder: a path as given (anything with a slash or starting with a dot;
    a bare name that is a dataset or a file in the current folder), else a name in
    `datasets_root` (so ``--into demo`` beside an unrelated ``./demo`` folder is the dataset
    named demo)."""
    text = str(name_or_path)
    if not text.strip():
        raise DatasetError("give a dataset name or folder")
    p = Path(text).expanduser()
    if "/" in text or os.sep in text or text.startswith("."):
        return p
    if (p / "dataset.json").is_file() or p.is_file():  # a dataset or a file right here
        return p
    if not all(c.isalnum() or c in "-_." for c in text):
        raise DatasetError(
            f"{text!r} is not a dataset name (letters, digits, - _ . only); or give a folder path"
        )
    return datasets_root() / text


def list_datasets(root: Path | None = None) -> list[Path]:
    """The dataset folders in ``root`` (default `datasets_root`)."""
    root = root or datasets_root()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "dataset.json").is_file())


# ---- the dataset ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Version:
    """How one version was made."""

    id: str
    parent: str | None
    created: str
    message: str
    step: dict
    """The step that made it: ``{"name": …, plus its parameters}``."""
    command: list
    count: int


class Dataset:
    """A dataset folder. Open with `Dataset.open` (or `Dataset.create`)."""

    def __init__(self, path: Path, info: dict):
        self.path = path
        self.info = info

    # opening
    @classmethod
    def create(cls, name_or_path: str | Path, exist_ok: bool = False) -> Dataset:
        """Make a new empty dataset (its first version has no items); with ``exist_ok``
        open it if it is already there."""
        path = dataset_path(name_or_path)
        if (path / "dataset.json").is_file():
            if exist_ok:
                return cls.open(path)
            raise DatasetError(f"{path} is already a dataset; import into it or pick a new name")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise DatasetError(
                f"{path} exists and is not a dataset; give a new folder or an empty one"
            )
        parent = path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{path.name}.", suffix=".new"))
        except OSError as e:
            raise disk_error(e, parent) from None
        try:
            for sub in ("objects", "versions"):
                (tmp / sub).mkdir()
            info = {
                "format": FORMAT,
                "id": uuid.uuid4().hex,
                "name": path.name,
                "created": utc_now(),
            }
            (tmp / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
            root = _version_id(None, b"")
            (tmp / "versions" / f"{root}.jsonl").write_bytes(b"")
            meta = Version(root, None, info["created"], "empty dataset", {"name": "create"}, [], 0)
            (tmp / "versions" / f"{root}.json").write_text(json.dumps(asdict(meta), indent=2))
            (tmp / "HEAD").write_text(root + "\n")
            os.chmod(tmp, 0o755)
            if path.is_dir():
                path.rmdir()  # only ever an empty folder (checked above)
            os.replace(tmp, path)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise disk_error(e, parent) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls.open(path)

    @classmethod
    def open(cls, name_or_path: str | Path) -> Dataset:
        """Open an existing dataset; a `DatasetError` says what is wrong if it cannot."""
        path = dataset_path(name_or_path)
        info_file = path / "dataset.json"
        if not info_file.is_file():
            if path.is_file():
                raise DatasetError(f"{path} is a file, not a dataset folder")
            if path.is_dir():
                raise DatasetError(
                    f"{path} is not a dataset (no dataset.json); "
                    "make one with `disco-musica data import FILES --into NAME`"
                )
            raise DatasetError(
                f"no dataset {str(name_or_path)!r} (looked in {path}); "
                "`disco-musica data list` shows yours"
            )
        try:
            info = json.loads(info_file.read_text())
            if not isinstance(info, dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            raise DatasetError(
                f"{info_file} is damaged (not JSON); restore it from a backup"
            ) from None
        if info.get("format") != FORMAT:
            raise DatasetError(
                f"{path} has dataset format {info.get('format')!r}; this version of "
                f"Disco-Musica reads format {FORMAT}: upgrade Disco-Musica"
            )
        ds = cls(path, info)
        _ = ds.head  # a damaged HEAD is reported now, not half-way through a command
        return ds

    # reading
    @property
    def name(self) -> str:
        return self.info.get("name") or self.path.name

    @property
    def head(self) -> str:
        """The current version's ID."""
        try:
            head = (self.path / "HEAD").read_text().strip()
        except OSError:
            raise DatasetError(f"{self.path} has no HEAD; the dataset is damaged") from None
        if not (self.path / "versions" / f"{head}.jsonl").is_file():
            raise DatasetError(f"{self.path}: HEAD names version {head!r}, which is missing")
        return head

    def ident(self, version: str | None = None) -> str:
        """The dataset ID a training run records: ``<dataset uuid>@<version>``."""
        return f"{self.info['id']}@{self.resolve(version)}"

    def resolve(self, version: str | None = None) -> str:
        """A full version ID from None (HEAD), an ID or its start, or ``HEAD~N``."""
        if version is None or version == "HEAD":
            return self.head
        if version.startswith("HEAD~"):
            try:
                back = int(version[5:])
            except ValueError:
                raise DatasetError(f"{version!r} is not a version; e.g. HEAD~1") from None
            v = self.head
            for _ in range(back):
                parent = self.version(v).parent
                if parent is None:
                    raise DatasetError(f"{self.name} has fewer than {back} earlier versions")
                v = parent
            return v
        ids = [p.stem for p in (self.path / "versions").glob(f"{version}*.jsonl")]
        if len(ids) == 1 and version:
            return ids[0]
        if not ids or not version:
            raise DatasetError(
                f"{self.name} has no version {version!r}; `disco-musica data versions "
                f"{self.name}` lists them"
            )
        raise DatasetError(f"{version!r} starts several versions; give more of the ID")

    def version(self, version: str | None = None) -> Version:
        vid = self.resolve(version)
        try:
            d = json.loads((self.path / "versions" / f"{vid}.json").read_text())
            return Version(**{k: d[k] for k in Version.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            raise DatasetError(f"{self.path}: the record of version {vid} is damaged") from None

    def versions(self) -> list[Version]:
        """Every version, newest first (those after an earlier checkout included)."""
        metas = [self.version(p.stem) for p in (self.path / "versions").glob("*.jsonl")]
        depth = {}

        def level(m: Version) -> int:  # versions made in the same second sort by ancestry
            if m.id not in depth:
                depth[m.id] = 0 if m.parent is None else level(self.version(m.parent)) + 1
            return depth[m.id]

        return sorted(metas, key=lambda m: (m.created, level(m)), reverse=True)

    def history(self, version: str | None = None) -> list[Version]:
        """The versions that led to ``version`` (HEAD by default), newest first."""
        out, v = [], self.resolve(version)
        while v is not None:
            meta = self.version(v)
            out.append(meta)
            v = meta.parent
        return out

    def pipeline(self, version: str | None = None) -> list[dict]:
        """The steps that made ``version``, oldest first: how the dataset was made."""
        steps, v = [], self.resolve(version)
        while v is not None:
            meta = self.version(v)
            steps.append({"version": meta.id, **meta.step})
            v = meta.parent
        return steps[::-1]

    def items(self, version: str | None = None) -> list[Item]:
        """The items of a version (HEAD by default), sorted by path."""
        vid = self.resolve(version)
        out, n = [], 0
        try:
            with open(self.path / "versions" / f"{vid}.jsonl", encoding="utf-8") as f:
                for line in f:
                    n += 1
                    if line.strip():
                        out.append(Item.from_json(json.loads(line)))
        except (ValueError, TypeError) as e:
            raise DatasetError(
                f"{self.path}: manifest {vid} is damaged at line {n} ({e})"
            ) from None
        return out

    def object_path(self, digest: str) -> Path:
        """The stored file with this SHA-256."""
        return self.path / "objects" / digest[:2] / digest

    def file(self, item: Item) -> Path:
        """The stored file of an item (read it; never change it)."""
        return self.object_path(item.hash)

    def find(self, selectors: Iterable[str], version: str | None = None) -> list[Item]:
        """Items by ID, start of an ID, path, or a glob on paths (``songs/*.wav``), or ``all``.
        Each selector must match something."""
        items = self.items(version)
        chosen: dict[str, Item] = {}
        for sel in selectors:
            if sel == "all":
                matched = items
            else:
                matched = [i for i in items if i.id == sel or i.path == sel]
                if not matched and any(c in sel for c in "*?["):
                    matched = [i for i in items if fnmatch.fnmatchcase(i.path, sel)]
                if not matched and len(sel) >= 4:
                    matched = [i for i in items if i.id.startswith(sel)]
            if not matched:
                raise DatasetError(
                    f"{self.name} has no item {sel!r}; give an ID, a path or a glob "
                    f"(`disco-musica data show {self.name}` lists them)"
                )
            chosen.update((i.id, i) for i in matched)
        return [i for i in items if i.id in chosen]

    def diff(self, a: str | None, b: str | None) -> dict:
        """What changed from version ``a`` to ``b``: added, removed and changed items (with
        the names of the fields that changed)."""
        old = {i.id: i for i in self.items(a)}
        new = {i.id: i for i in self.items(b)}
        changed = []
        for k in sorted(old.keys() & new.keys(), key=lambda k: new[k].path):
            fields = [
                f for f in Item.__dataclass_fields__ if getattr(old[k], f) != getattr(new[k], f)
            ]
            if fields:
                changed.append((old[k], new[k], fields))
        return {
            "from": self.resolve(a),
            "to": self.resolve(b),
            "added": sorted((new[k] for k in new.keys() - old.keys()), key=lambda i: i.path),
            "removed": sorted((old[k] for k in old.keys() - new.keys()), key=lambda i: i.path),
            "changed": changed,
        }

    def discard_if_empty(self) -> bool:
        """Remove this dataset if it was never given an item (a new one an import could put
        nothing into): only the files a new dataset is made of are removed, each by name,
        and a folder only once it is empty, so nothing else is ever touched. Returns whether
        the dataset is gone."""
        with self._locked():
            versions = list((self.path / "versions").iterdir())
            if (self.path / "pending.jsonl").exists() or len(versions) != 2 or self.items():
                return False
            for f in (*versions, self.path / "HEAD", self.path / "dataset.json"):
                f.unlink()
            (self.path / "versions").rmdir()
            for tmp in (self.path / "objects").glob("*.tmp"):
                tmp.unlink()
            for sub in (self.path / "objects").iterdir():
                if sub.is_dir() and not any(sub.iterdir()):
                    sub.rmdir()
            (self.path / "objects").rmdir()  # refuses (OSError) if anything else is inside
            (self.path / "lock").unlink(missing_ok=True)
        self.path.rmdir()
        return True

    # changing
    def checkout(self, version: str) -> str:
        """Make ``version`` the current one (the next change starts from it); nothing is
        lost: later versions stay and can be checked out again."""
        vid = self.resolve(version)
        with self._locked():
            self._recover()
            write_text_atomic(self.path / "HEAD", vid + "\n")
        return vid

    @contextlib.contextmanager
    def change(
        self,
        step: dict,
        message: str,
        command: list | None = None,
        resume: str | None = None,
    ) -> Iterator[Change]:
        """Change the dataset: yields a `Change`; when the block ends without an error the
        new version is written and becomes HEAD (nothing is written if nothing changed).

        ``resume`` names the work (e.g. a hash of an import's sources): if a change with
        the same name was interrupted, its journalled items are taken up again
        (`Change.done` lists them) and it continues. An interrupted change of another name is
        first kept as a version of its own.
        """
        with self._locked():
            self._recover(keep_if=resume)
            change = Change(self, step, message, command or [], resume)
            yield change
            change._commit()

    @contextlib.contextmanager
    def _locked(self):
        import fcntl

        try:
            fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise disk_error(e, self.path) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DatasetError(
                    f"another command is changing {self.name} now; wait for it to finish"
                ) from None
            yield
        finally:
            os.close(fd)

    def _recover(self, keep_if: str | None = None) -> None:
        """Deal with the journal of an interrupted change (the lock is held): left for a
        change that resumes it, else kept as a version of its own."""
        journal = self.path / "pending.jsonl"
        for tmp in (self.path / "objects").glob("*.tmp"):
            tmp.unlink(missing_ok=True)  # half-copied files of an interrupted change
        if not journal.is_file():
            return
        header, entries = _read_journal(journal)
        if header is None:
            journal.unlink()
            return
        if keep_if is not None and header.get("resume") == keep_if:
            return
        change = Change(
            self,
            {**header.get("step", {}), "interrupted": True},
            f"kept from an interrupted change: {header.get('message', '')}",
            header.get("command", []),
            header.get("resume"),
        )
        change._commit()

    def _write_version(
        self, parent: str, items: list[Item], step: dict, message: str, command: list
    ) -> str | None:
        items = sorted(items, key=lambda i: i.path)
        body = "".join(
            json.dumps(i.to_json(), sort_keys=True, default=json_default) + "\n" for i in items
        ).encode("utf-8")
        vid = _version_id(parent, body)
        if vid == parent or body == (self.path / "versions" / f"{parent}.jsonl").read_bytes():
            return None
        meta = Version(vid, parent, utc_now(), message, step, list(command), len(items))
        vdir = self.path / "versions"
        try:
            _write_durable(vdir / f"{vid}.jsonl", body)
            _write_durable(vdir / f"{vid}.json", json.dumps(asdict(meta), indent=2).encode())
            _write_durable(self.path / "HEAD", (vid + "\n").encode())
        except OSError as e:
            raise disk_error(e, self.path) from None
        return vid


class Change:
    """The items of a change in progress (see `Dataset.change`)."""

    def __init__(self, ds: Dataset, step: dict, message: str, command: list, resume: str | None):
        self.ds = ds
        self.step = dict(step)
        self.message = message
        self.command = command
        self.resume = resume
        self.base = ds.head
        self.items: dict[str, Item] = {i.id: i for i in ds.items(self.base)}
        self._paths: dict[str, str] = {i.path: i.id for i in self.items.values()}
        self.done: list[Item] = []
        """Items an interrupted change of the same name had journalled (already applied)."""
        journal = ds.path / "pending.jsonl"
        if journal.is_file():
            header, entries = _read_journal(journal)
            for op, item in entries:
                self._apply(op, item)
                if op == "put":
                    self.done.append(item)
            self._journal = open(journal, "a", encoding="utf-8")
        else:
            self._journal = None

    # reading
    def by_path(self, path: str) -> Item | None:
        item_id = self._paths.get(path)
        return None if item_id is None else self.items.get(item_id)

    def hashes(self) -> set[str]:
        return {i.hash for i in self.items.values()}

    # storing files
    def put_file(self, source: str | Path) -> str:
        """Store a local file (copied once, however often it is put); return its hash."""
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.ds.path / "objects", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                    out.write(chunk)
            return self._place(Path(tmp), h.hexdigest())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_stream(self, stream) -> str:
        """Store what a binary file-like object holds (a download); return its hash."""
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.ds.path / "objects", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    h.update(chunk)
                    out.write(chunk)
            return self._place(Path(tmp), h.hexdigest())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_bytes(self, data: bytes) -> str:
        """Store bytes (a chunk, a features file); return their hash."""
        digest = hashlib.sha256(data).hexdigest()
        if self.ds.object_path(digest).is_file():
            return digest
        fd, tmp = tempfile.mkstemp(dir=self.ds.path / "objects", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            return self._place(Path(tmp), digest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _place(self, tmp: Path, digest: str) -> str:
        final = self.ds.object_path(digest)
        if final.is_file():
            tmp.unlink()
            return digest
        final.parent.mkdir(exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)
        return digest

    # changing items
    def put(self, item: Item) -> Item:
        """Add an item, or replace the one with its ID (journalled at once). Its file must
        be stored first (`put_file` / `put_bytes`)."""
        if item.kind not in KINDS:
            raise ValueError(f"unknown kind {item.kind!r}")
        if not self.ds.object_path(item.hash).is_file():
            raise ValueError(f"store the file of {item.path} before putting the item")
        other = self.by_path(item.path)
        if other is not None and other.id != item.id:
            raise DatasetError(f"{self.ds.name} already has an item at {item.path}")
        self._log("put", item)
        self._apply("put", item)
        return item

    def remove(self, item_id: str) -> None:
        """Remove an item from the new version (its file stays for older versions)."""
        if item_id in self.items:
            self._log("remove", self.items[item_id])
            self._apply("remove", self.items[item_id])

    def _apply(self, op: str, item: Item) -> None:
        old = self.items.pop(item.id, None)
        if old is not None:
            self._paths.pop(old.path, None)
        if op == "put":
            self.items[item.id] = item
            self._paths[item.path] = item.id

    def _log(self, op: str, item: Item) -> None:
        if self._journal is None:
            header = {
                "resume": self.resume,
                "base": self.base,
                "step": self.step,
                "message": self.message,
                "command": self.command,
            }
            self._journal = open(self.ds.path / "pending.jsonl", "w", encoding="utf-8")
            self._journal.write(json.dumps({"header": header}, default=json_default) + "\n")
        line = json.dumps({"op": op, "item": item.to_json()}, default=json_default)
        self._journal.write(line + "\n")
        self._journal.flush()  # in the kernel's hands: a killed process loses nothing

    def _commit(self) -> None:
        if self._journal is not None:
            os.sync()  # the new files and the journal reach the disk before the version does
        vid = self.ds._write_version(
            self.base, list(self.items.values()), self.step, self.message, self.command
        )
        self.version = vid
        if self._journal is not None:
            self._journal.close()
        (self.ds.path / "pending.jsonl").unlink(missing_ok=True)

    version: str | None = None
    """The new version's ID after the change (None if nothing changed)."""


@dataclass
class PrepReport:
    """What a preprocessing step did (audio, MIDI, images, video)."""

    made: list[Item] = field(default_factory=list)
    """The items put: processed in place (same ID) or new (chunks, stems, copies, frames)."""
    removed: list[str] = field(default_factory=list)
    """IDs of the items that left the new version (originals that were split up)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of the inputs left as they were, and copies left out."""
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(path, text): what to know about an item that was processed (repairs, a file cut
    short, a piece not tokenized)."""
    version: str | None = None
    """The new version's ID (None when nothing changed)."""

    def to_json(self) -> dict:
        return {
            "made": [i.to_json() for i in self.made],
            "removed": list(self.removed),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "warnings": [{"path": p, "text": t} for p, t in self.warnings],
            "version": self.version,
        }


def _read_journal(journal: Path) -> tuple[dict | None, list[tuple[str, Item]]]:
    header, entries = None, []
    with open(journal, encoding="utf-8") as f:
        for line in f:
            try:
                d = json.loads(line)
            except ValueError:
                break  # the torn last line of a killed command
            if header is None:
                header = d.get("header")
                if header is None:
                    break
                continue
            entries.append((d["op"], Item.from_json(d["item"])))
    return header, entries


def _version_id(parent: str | None, body: bytes) -> str:
    h = hashlib.sha256((parent or "").encode() + b"\n" + body)
    return h.hexdigest()[:16]


def _write_durable(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def utc_now() -> str:
    """The time now in UTC, as versions record it (2026-12-06T16:05:08Z)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def disk_error(e: OSError, where: Path) -> DatasetError:
    """A disk problem as one line that says what to do."""
    if e.errno == errno.ENOSPC:
        return DatasetError(f"the disk holding {where} is full; free some space and run it again")
    if e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return DatasetError(f"{where} cannot be written (read-only or not yours); pick another")
    return DatasetError(f"{e.filename or where}: {(e.strerror or str(e)).lower()}")


_os_error = disk_error  # the name the data modules were first written against


def materialize(ds: Dataset, dest: str | Path, version: str | None = None) -> list[Path]:
    """Copy a version's files under ``dest`` by their dataset paths (copies, not links, so
    editing them never touches the dataset); ``dest`` must be new or empty. Returns the files
    written."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DatasetError(f"{dest} exists and is not empty; give a new folder")
    written = []
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".new"))
    try:
        for item in ds.items(version):
            out = tmp / item.path
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ds.file(item), out)
            written.append(dest / item.path)
        os.chmod(tmp, 0o755)
        if dest.is_dir():
            dest.rmdir()
        os.replace(tmp, dest)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise disk_error(e, dest) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return written
