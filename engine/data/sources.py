"""Where imported files come from: local files and folders, zip and tar archives, and cloud
storage through fsspec. `expand` turns one source the user typed into the files it holds
(`Entry`), each with the path it gets in the dataset and a way to read it; nothing is
written here.

Archives are read member by member (never unpacked to disk) and refused whole when a
member would land outside the archive's folder (zip-slip: ``..`` or an absolute path), when
a link points out of it, or when the archive looks like a bomb (`MAX_ARCHIVE_MEMBERS`,
`MAX_ARCHIVE_BYTES`, `MAX_COMPRESSION_RATIO`). Tar members pass `tarfile.data_filter`,
the checks of ``extractall(filter="data")``.

Cloud addresses go through fsspec and each service's own client; credentials come only
from where that client looks (environment, its config files, fsspec's
``FSSPEC_<PROTOCOL>_<KWARG>`` variables and ``~/.config/fsspec``), never from the
dataset, and never recorded: a source is recorded without user name, password or query.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import posixpath
import re
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from engine import names
from engine.errors import UserError

# Archives: every bigger or denser one is refused (unpack it yourself, then import the folder).
MAX_ARCHIVE_MEMBERS = 100_000
MAX_ARCHIVE_BYTES = 100 * 2**30  # uncompressed, all members together
MAX_COMPRESSION_RATIO = 200  # uncompressed / archive bytes (a stem of pure silence: ~1000)
RATIO_FLOOR_BYTES = 64 * 2**20  # the ratio is only checked once this much would be unpacked
ARCHIVE_SUFFIXES = (
    ".zip",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz2",
    ".tbz",
    ".tar.xz",
    ".txz",
)
# Sidecars: metadata the user wrote for the files beside them (read, never imported).
SIDECAR_TABLES = ("metadata.csv", "metadata.json")
FILE_SIDECAR_SUFFIX = names.SIDECAR_SUFFIX  # song.json or song.wav.json beside song.wav
OWN_RECORDS = ("generation.json",)  # what Disco-Musica writes beside its own outputs
MAX_SIDECAR_BYTES = 16 * 2**20
IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
WRITE_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT)  # the disk we write to, not a source

PIP_DATA = "pip install 'disco-musica[data]'"
# scheme → (the package that reads it, what it is called)
REMOTE_SCHEMES = {
    "s3": ("s3fs", "Amazon S3"),
    "gs": ("gcsfs", "Google Cloud Storage"),
    "gcs": ("gcsfs", "Google Cloud Storage"),
    "dropbox": ("dropboxdrivefs", "Dropbox"),
    "gdrive": ("pydrive2", "Google Drive"),
    "hf": ("huggingface_hub", "the Hugging Face Hub"),
    "http": ("aiohttp", "the web"),
    "https": ("aiohttp", "the web"),
}


class Skip(UserError, ValueError):
    """A source or file that cannot be imported, with the one-line reason."""


@dataclass
class Entry:
    """One file a source holds."""

    source: str
    """Where it came from, as recorded (a path, ``archive!/member``, or a URL)."""
    path: str
    """The path it gets in the dataset (POSIX, relative)."""
    size: int | None = None
    local: Path | None = None
    """The file itself when it is on this computer (read in place)."""
    opener: Callable[[], contextlib.AbstractContextManager] | None = None
    """Opens it for reading (archive members and cloud files)."""
    stamp: dict | None = None
    """What the container says about it (size, ETag, mtime, CRC): equal stamps, same file."""
    sidecar: dict = field(default_factory=dict)
    """Metadata from the user's sidecar files (unchecked values)."""


@dataclass
class Expanded:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---- names ------------------------------------------------------------------------------------
def is_url(text: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) is not None


def archive_suffix(name: str) -> str | None:
    low = name.lower()
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if low.endswith(suffix) and len(low) > len(suffix):
            return suffix
    return None


def clean_source(text: str) -> str:
    """A source as recorded: a local path made absolute, a URL without user name, password,
    query or fragment (where tokens hide)."""
    if is_url(text):
        u = urlsplit(text)
        host = u.hostname or ""
        if u.port:
            host = f"{host}:{u.port}"
        return urlunsplit((u.scheme.lower(), host, u.path, "", ""))
    return str(Path(text).expanduser().absolute())


def clean_command(argv: list | None) -> list:
    """A command line as recorded: URLs cleaned like sources."""
    return [clean_source(a) if isinstance(a, str) and is_url(a) else a for a in argv or []]


def _hidden(parts) -> bool:
    return any(p.startswith(".") or p in IGNORED_NAMES for p in parts)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) < 300 else text[:297] + "..."


# ---- sidecars ---------------------------------------------------------------------------------
def sidecar_owners(names) -> dict[str, list[str]]:
    """For each per-file sidecar among ``names`` (a tree's file paths), the files it
    describes: ``song.json`` → song.wav, song.mid…; ``song.wav.json`` → song.wav."""
    by_stem: dict[str, list[str]] = {}
    for n in names:
        if not n.lower().endswith(FILE_SIDECAR_SUFFIX):
            by_stem.setdefault(posixpath.splitext(n)[0], []).append(n)
    out = {}
    for n in names:
        base = posixpath.basename(n)
        if not n.lower().endswith(FILE_SIDECAR_SUFFIX) or base in SIDECAR_TABLES + OWN_RECORDS:
            continue
        stem = n[: -len(FILE_SIDECAR_SUFFIX)]
        owners = list(by_stem.get(stem, []))
        if stem in by_stem.get(posixpath.splitext(stem)[0], []):
            owners = [stem, *(o for o in owners if o != stem)]  # song.wav.json
        if owners:
            out[n] = owners
    return out


def _is_sidecar(rel: str, owners: dict[str, list[str]]) -> bool:
    """Is ``rel`` a sidecar (`sidecar_owners`) or our own record?"""
    base = posixpath.basename(rel)
    return base in SIDECAR_TABLES or base in OWN_RECORDS or rel in owners


def _table_rows(name: str, data: bytes) -> list[dict]:
    """The rows of a metadata.csv / metadata.json (each a dict with a file or path key)."""
    text = data.decode("utf-8-sig")
    if name.endswith(".csv"):
        return [dict(r) for r in csv.DictReader(io.StringIO(text))]
    doc = json.loads(text)
    if isinstance(doc, dict):  # {"a.wav": {...}, ...}
        return [{"file": k, **v} for k, v in doc.items() if isinstance(v, dict)]
    if isinstance(doc, list):
        return [r for r in doc if isinstance(r, dict)]
    raise ValueError("expected a list of rows or an object of file → fields")


def _sidecar_fields(row: dict, fields: tuple[str, ...]) -> dict:
    out = {}
    for k, v in row.items():
        key = str(k).strip().lower() if k is not None else ""
        if key in fields and v not in (None, ""):
            out[key] = v
    return out


def attach_sidecars(
    names: list[str], read: Callable[[str], bytes], fields: tuple[str, ...], where: str
) -> tuple[dict[str, dict], list[str]]:
    """Metadata for the files ``names`` of one tree from its sidecars: metadata.csv/json in
    any folder (paths relative to that folder; nearer folders win) and NAME.json beside a
    file (wins over the tables). Returns file → fields, and notes on what was not used."""
    name_set = set(names)
    out: dict[str, dict] = {}
    notes: list[str] = []
    tables = sorted(
        (n for n in names if posixpath.basename(n) in SIDECAR_TABLES),
        key=lambda n: n.count("/"),
    )
    for table in tables:  # shallow first, so deeper tables win
        folder = posixpath.dirname(table)
        shown = f"{where}/{table}" if where else table
        try:
            rows = _table_rows(table, _read_small(read, table))
        except (ValueError, UnicodeDecodeError, csv.Error) as e:
            notes.append(f"{shown}: not read ({_one_line(e)})")
            continue
        for n, row in enumerate(rows, 1):
            row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
            target = row.get("file") or row.get("path")
            if not target:
                notes.append(f"{shown}: row {n} has no file or path column")
                continue
            rel = posixpath.normpath(posixpath.join(folder, str(target).strip()))
            if rel not in name_set:
                notes.append(f"{shown}: row {n}: no file {target!r} here")
                continue
            out.setdefault(rel, {}).update(_sidecar_fields(row, fields))
    for n, owners in sidecar_owners(names).items():
        try:
            doc = json.loads(_read_small(read, n).decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError):
            continue  # not ours to judge: a record of some other program
        if not isinstance(doc, dict):
            continue
        values = _sidecar_fields(doc, fields)
        if isinstance(doc.get("meta"), dict):  # a dataset item's own JSON (data show --json)
            values = {**_sidecar_fields(doc["meta"], fields), **values}
        for owner in owners:
            if values:
                out.setdefault(owner, {}).update(values)
    return out, notes


def _read_small(read: Callable[[str], bytes], rel: str) -> bytes:
    try:
        data = read(rel)
    except Exception as e:  # unreadable on disk, in an archive, or in the cloud
        raise ValueError(_one_line(e)) from None
    if len(data) > MAX_SIDECAR_BYTES:
        raise ValueError(f"over {MAX_SIDECAR_BYTES >> 20} MiB")
    return data


# ---- expanding a source -----------------------------------------------------------------------
def expand(
    text: str,
    stack: contextlib.ExitStack,
    *,
    sidecars: bool,
    fields: tuple[str, ...],
    exclude: Path | None = None,
    tmp_dir: Path | None = None,
) -> Expanded:
    """The files one source holds. Archives and cloud connections stay open in ``stack``;
    ``exclude`` (the dataset's own folder) is never read; a cloud archive is downloaded to
    ``tmp_dir`` first."""
    out = Expanded()
    try:
        if is_url(text):
            _expand_url(text, out, stack, sidecars, fields, tmp_dir)
        else:
            _expand_local(text, out, stack, sidecars, fields, exclude)
    except Skip as e:
        out.skipped.append((text, str(e)))
    except OSError as e:
        if e.errno in WRITE_ERRNOS:  # the dataset's disk (a cloud archive's download)
            raise
        out.skipped.append((text, f"cannot be read ({(e.strerror or str(e)).lower()})"))
    return out


def _expand_local(text, out, stack, sidecars, fields, exclude) -> None:
    p = Path(text).expanduser()
    if not p.exists():
        raise Skip("no such file or folder" if not p.is_symlink() else "a broken link")
    p = p.absolute()
    if p.is_dir():
        root = p.resolve()
        if exclude is not None and (root == exclude.resolve() or exclude.resolve() in root.parents):
            raise Skip("that is the dataset's own folder")
        name = root.name or "root"
        files: list[str] = []

        def unreadable(e: OSError) -> None:
            out.skipped.append((e.filename, f"cannot be read ({(e.strerror or '').lower()})"))

        for dirpath, dirnames, filenames in os.walk(p, onerror=unreadable):
            here = Path(dirpath)
            keep = []
            for d in sorted(dirnames):
                sub = here / d
                if d.startswith(".") or d in IGNORED_NAMES:
                    continue
                if (sub / "dataset.json").is_file() or (
                    exclude is not None and sub.resolve() == exclude.resolve()
                ):
                    out.notes.append(f"{sub}: a dataset folder, not imported")
                    continue
                keep.append(d)
            dirnames[:] = keep
            for f in sorted(filenames):
                if f.startswith(".") or f in IGNORED_NAMES:
                    continue
                files.append((here / f).relative_to(p).as_posix())
        owners = sidecar_owners(files)
        meta = {}
        if sidecars:
            meta, notes = attach_sidecars(files, lambda r: (p / r).read_bytes(), fields, str(p))
            out.notes += notes
        for rel in files:
            if _is_sidecar(rel, owners):
                continue
            f = p / rel
            if not f.is_file():
                out.skipped.append(
                    (str(f), "not a regular file" if f.exists() else "a broken link")
                )
                continue
            if archive_suffix(rel):
                _expand_archive(f, f"{name}/{posixpath.dirname(rel)}", out, stack, sidecars, fields)
                continue
            out.entries.append(
                Entry(str(f), f"{name}/{rel}", f.stat().st_size, local=f, sidecar=meta.get(rel, {}))
            )
        return
    if not p.is_file():
        raise Skip("not a regular file or folder")
    if archive_suffix(p.name):
        _expand_archive(p, "", out, stack, sidecars, fields)
        return
    meta = {}
    if sidecars:
        folder = p.parent
        names = [p.name] + [
            q.name
            for q in (
                folder / (p.stem + FILE_SIDECAR_SUFFIX),
                folder / (p.name + FILE_SIDECAR_SUFFIX),
            )
            if q.is_file()
        ]
        meta, notes = attach_sidecars(names, lambda r: (folder / r).read_bytes(), fields, "")
        out.notes += notes
    out.entries.append(
        Entry(str(p), p.name, p.stat().st_size, local=p, sidecar=meta.get(p.name, {}))
    )


# ---- archives ---------------------------------------------------------------------------------
def _safe_member(name: str) -> str:
    """A member's path inside the archive, or `Skip` for one that escapes it."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise Skip(f"refused: member {name!r} has an absolute path (zip-slip)")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Skip(f"refused: member {name!r} would land outside the archive's folder (zip-slip)")
    return "/".join(parts)


def _check_totals(count: int, total: int, archive_bytes: int) -> None:
    if count > MAX_ARCHIVE_MEMBERS:
        raise Skip(
            f"refused: more than {MAX_ARCHIVE_MEMBERS:,} members (a bomb?); unpack it yourself "
            "and import the folder"
        )
    if total > MAX_ARCHIVE_BYTES:
        raise Skip(
            f"refused: it would unpack to over {MAX_ARCHIVE_BYTES >> 30} GiB; unpack it "
            "yourself and import the folder"
        )
    if total > RATIO_FLOOR_BYTES and total > MAX_COMPRESSION_RATIO * max(archive_bytes, 1):
        raise Skip(
            f"refused: it would unpack to {total / max(archive_bytes, 1):.0f}× its size "
            f"(over {MAX_COMPRESSION_RATIO}×: a zip bomb?)"
        )


def _expand_archive(
    path: Path, folder: str, out, stack, sidecars, fields, shown=None, name=None
) -> None:
    """The members of a zip or tar archive (called ``name``, default its file name), at
    ``folder/<archive stem>/<member>``."""
    shown = shown or str(path)
    name = name or path.name
    suffix = archive_suffix(name) or ""
    prefix = "/".join(p for p in (folder.strip("/"), name[: -len(suffix)]) if p)
    try:
        if suffix == ".zip":
            members = _zip_members(path, stack)
        else:
            members = _tar_members(path, stack)
    except Skip as e:
        out.skipped.append((shown, str(e)))
        return
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, ValueError) as e:
        out.skipped.append((shown, f"not a readable archive ({_one_line(e)})"))
        return
    names = [m[0] for m in members]
    readers = {m[0]: m[3] for m in members}
    owners = sidecar_owners(names)
    meta: dict = {}
    if sidecars:

        def read(rel):
            with readers[rel]() as f:
                return f.read(MAX_SIDECAR_BYTES + 1)

        meta, notes = attach_sidecars(names, read, fields, shown)
        out.notes += notes
    for rel, size, stamp, opener in members:
        if _is_sidecar(rel, owners):
            continue
        src = f"{shown}!/{rel}"
        if archive_suffix(rel):
            out.skipped.append((src, "an archive inside an archive; unpack it first"))
            continue
        out.entries.append(
            Entry(
                src, f"{prefix}/{rel}", size, opener=opener, stamp=stamp, sidecar=meta.get(rel, {})
            )
        )


def _zip_members(path: Path, stack) -> list:
    zf = stack.enter_context(zipfile.ZipFile(path))
    infos = zf.infolist()
    _check_totals(len(infos), 0, 1)
    archive_bytes = path.stat().st_size
    total, members = 0, []
    for info in infos:
        rel = _safe_member(info.filename)
        mode = info.external_attr >> 16
        if (mode & 0o170000) == 0o120000:  # a symbolic link
            target = zf.read(info).decode("utf-8", "replace")
            joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
            if target.startswith("/") or joined == ".." or joined.startswith("../"):
                raise Skip(f"refused: member {info.filename!r} links out of the archive")
            continue  # a link inside the archive: its target is imported anyway
        if info.is_dir() or not rel or _hidden(rel.split("/")):
            continue
        if info.flag_bits & 0x1:
            raise Skip(f"member {info.filename!r} is encrypted; unpack it yourself")
        total += info.file_size
        _check_totals(len(members), total, archive_bytes)
        stamp = {"size": info.file_size, "crc": f"{info.CRC:08x}"}
        members.append((rel, info.file_size, stamp, lambda info=info: zf.open(info)))
    return members


def _tar_members(path: Path, stack) -> list:
    tf = stack.enter_context(tarfile.open(path, "r:*"))
    archive_bytes = path.stat().st_size
    dest = "/nonexistent-disco-musica-import"  # where data_filter imagines the members land
    total, count, members = 0, 0, []
    for m in tf:
        count += 1
        try:
            tarfile.data_filter(m, dest)
        except tarfile.SpecialFileError:
            continue  # a device or pipe: nothing to import
        except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
            raise Skip(f"refused: member {m.name!r} links out of the archive") from None
        except (tarfile.AbsolutePathError, tarfile.OutsideDestinationError):
            _safe_member(m.name)  # says which, in our words
            raise Skip(f"refused: member {m.name!r} would land outside the archive") from None
        except tarfile.FilterError as e:
            raise Skip(f"refused: member {m.name!r}: {_one_line(e)}") from None
        rel = _safe_member(m.name)
        if not m.isfile() or not rel or _hidden(rel.split("/")):
            continue  # folders, and links inside the archive (their targets are imported)
        total += m.size
        _check_totals(count, total, archive_bytes)
        stamp = {"size": m.size, "mtime": int(m.mtime)}
        members.append((rel, m.size, stamp, lambda m=m: contextlib.closing(tf.extractfile(m))))
    return members


# ---- cloud ------------------------------------------------------------------------------------
def remote_fs(url: str):
    """(filesystem, path in it) for a cloud URL; `Skip` with what to do when its package is
    missing or the address is not one we read."""
    scheme = url.split("://", 1)[0].lower()
    if scheme not in REMOTE_SCHEMES:
        known = ", ".join(f"{s}://" for s in REMOTE_SCHEMES if s != "gcs")
        raise Skip(f"{scheme}:// is not a kind of address this imports; use a path, or {known}")
    package, _ = REMOTE_SCHEMES[scheme]
    try:
        if scheme == "gdrive":
            return _gdrive(url)
        if scheme == "dropbox":
            from fsspec.config import conf

            if not conf.get("dropbox", {}).get("token"):
                raise Skip(
                    "Dropbox needs an access token: set FSSPEC_DROPBOX_TOKEN (make one in "
                    "your Dropbox app's settings) or put it in ~/.config/fsspec"
                )
        import fsspec

        fs, path = fsspec.core.url_to_fs(url, skip_instance_cache=True)
        return fs, path
    except ImportError as e:
        missing = getattr(e, "name", None) or package
        raise Skip(
            f"reading {scheme}:// needs the {missing} package; install it with: {PIP_DATA}"
        ) from None
    except Skip:
        raise
    except Exception as e:  # a backend refusing its settings or credentials
        raise Skip(remote_reason(e, url)) from None


# The cloud clients' loggers print tracebacks of every retry; their errors reach the user as
# one skipped line instead.
NOISY_LOGGERS = ("gcsfs", "s3fs", "fsspec", "aiobotocore", "botocore", "pydrive2", "dropbox")


@contextlib.contextmanager
def quiet_clients():
    """Silence the cloud clients' own logging while importing (restored after)."""
    import logging

    loggers = [logging.getLogger(n) for n in NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _gdrive(url: str):
    """PyDrive2's fsspec filesystem; credentials from fsspec's config (FSSPEC_GDRIVE_*,
    ~/.config/fsspec) or PyDrive2's own settings.yaml in the current folder."""
    from fsspec.config import conf
    from pydrive2.fs import GDriveFileSystem

    path = url.split("://", 1)[1].strip("/") or "root"
    root = path.split("/", 1)[0]
    kwargs = dict(conf.get("gdrive", {}))
    if not any(k in kwargs for k in ("client_id", "client_json", "client_json_file_path")):
        if not Path("settings.yaml").is_file():
            raise Skip(
                "Google Drive needs credentials: set FSSPEC_GDRIVE_CLIENT_ID and "
                "FSSPEC_GDRIVE_CLIENT_SECRET (or FSSPEC_GDRIVE_CLIENT_JSON_FILE_PATH and "
                "FSSPEC_GDRIVE_USE_SERVICE_ACCOUNT=true), or keep PyDrive2's settings.yaml here"
            )
        from pydrive2.auth import GoogleAuth

        auth = GoogleAuth()  # PyDrive2's settings.yaml, saved credentials included
        auth.LocalWebserverAuth()
        kwargs = {"google_auth": auth}
    return GDriveFileSystem(root, **kwargs), path


# Errors (by class name, from any client library) that mean the host could not be reached.
UNREACHABLE = (
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectError",
    "ConnectTimeout",
    "ClientConnectorError",
    "ClientConnectorDNSError",
    "ServerDisconnectedError",
    "gaierror",
)


def _unreachable(e: BaseException) -> BaseException | None:
    """The error in ``e``'s chain (itself, its causes) saying the host was not reached."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__name__ in UNREACHABLE or isinstance(e, ConnectionError | TimeoutError):
            return e
        e = e.__cause__ or e.__context__
    return None


def check_host(url: str) -> None:
    """Fail at once, in one line, when the host of a web or Google Cloud Storage address has
    no network address (offline, or a mistyped name). Without it gcsfs spends about 85 s
    (looking for credentials, then retrying) before giving up; other clients fail within
    seconds on their own. Checked before the client is made (making gcsfs's is most of it)."""
    import socket

    scheme = url.split("://", 1)[0].lower()
    if scheme in ("http", "https"):
        endpoint, where = url, None
    elif scheme in ("gs", "gcs"):
        try:
            import gcsfs  # noqa: F401  (missing: remote_fs says how to install it)
        except ImportError:
            return
        from fsspec.config import conf

        endpoint = conf.get("gcs", {}).get("endpoint_url") or conf.get("gs", {}).get("endpoint_url")
        emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")  # as gcsfs reads it
        if not endpoint and emulator not in ("", "default"):
            endpoint = emulator if "://" in emulator else f"http://{emulator}"
        endpoint, where = endpoint or "https://storage.googleapis.com", REMOTE_SCHEMES["gs"][1]
    else:
        return
    parts = urlsplit(endpoint)
    if not parts.hostname:
        return
    try:
        port = parts.port or (80 if parts.scheme == "http" else 443)
        socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except ValueError:  # a port that is not a number: the client reports the address
        return
    except OSError as e:
        raise Skip(
            f"cannot reach {where or parts.hostname} (no address for {parts.hostname}: "
            f"{e.strerror or e}); check the network and the address"
        ) from None


def remote_reason(e: BaseException, url: str) -> str:
    """A cloud error in one line that says what to do."""
    name = type(e).__name__
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("http", "https") or scheme not in REMOTE_SCHEMES:
        host = urlsplit(url).hostname or url
    else:
        host = REMOTE_SCHEMES[scheme][1]
    if isinstance(e, Skip):
        return str(e)
    lost = _unreachable(e)
    if lost is not None and name != "NoCredentialsError":
        # (fsspec's web client reports a host it could not reach as a missing file)
        return f"cannot reach {host} ({_one_line(lost)}); check the network and the address"
    if name == "NoCredentialsError":
        return (
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or run "
            "`aws configure` (a public bucket: set FSSPEC_S3_ANON=true)"
        )
    if isinstance(e, FileNotFoundError):
        return "not found there (check the address)"
    if isinstance(e, PermissionError) or name in ("AccessDenied", "ClientAuthenticationError"):
        return f"access denied ({_one_line(e)}); check your credentials for {host}"
    return f"{name}: {_one_line(e)}"


def _stamp(info: dict) -> dict:
    """What a cloud listing says about a file: size, plus its ETag and time where given."""
    out = {"size": info.get("size")}
    for key in ("ETag", "etag", "md5Hash", "content_hash", "blob_id", "checksum", "sha256"):
        if info.get(key):
            out["etag"] = str(info[key]).strip('"')
            break
    for key in ("LastModified", "last_modified", "updated", "mtime", "Last-Modified", "modified"):
        if info.get(key):
            v = info[key]
            out["mtime"] = v.isoformat() if hasattr(v, "isoformat") else str(v)
            break
    return out


def _expand_url(text, out, stack, sidecars, fields, tmp_dir) -> None:
    scheme = text.split("://", 1)[0].lower()
    check_host(text)
    fs, root = remote_fs(text)
    shown = clean_source(text)
    try:
        if scheme in ("http", "https"):
            if text.rstrip().endswith("/"):
                raise Skip("give the address of a file (web folders are not listed)")
            info = fs.info(text)
            files = {text: info}
            base = None
        elif fs.isdir(root):
            files = fs.find(root, detail=True)
            base = root.rstrip("/")
        else:
            info = fs.info(root)
            files = {root: info}
            base = None
    except Skip:
        raise
    except Exception as e:
        raise Skip(remote_reason(e, text)) from None
    if base is None:  # one file
        ((name, info),) = files.items()
        fname = posixpath.basename(urlsplit(name).path if scheme.startswith("http") else name)
        if not fname:
            raise Skip("the address names no file")
        opener = _remote_opener(fs, name, scheme)
        if archive_suffix(fname):
            local = _download(opener, tmp_dir, stack, text)
            _expand_archive(local, "", out, stack, sidecars, fields, shown=shown, name=fname)
            return
        out.entries.append(Entry(shown, fname, info.get("size"), opener=opener, stamp=_stamp(info)))
        return
    top = posixpath.basename(base) or base.split("/")[0]
    rels = {}
    for name, info in sorted(files.items()):
        if info.get("type", "file") != "file":
            continue
        rel = name[len(base) :].lstrip("/") if name.startswith(base) else posixpath.basename(name)
        if not rel or _hidden(rel.split("/")):
            continue
        rels[rel] = (name, info)
    owners = sidecar_owners(rels)
    meta = {}
    if sidecars:

        def read(rel):
            try:
                return fs.cat_file(rels[rel][0])
            except Exception as e:
                raise ValueError(remote_reason(e, text)) from None

        meta, notes = attach_sidecars(sorted(rels), read, fields, shown)
        out.notes += notes
    prefix = shown.rstrip("/")
    for rel, (name, info) in rels.items():
        if _is_sidecar(rel, owners):
            continue
        src = f"{prefix}/{rel}"
        if archive_suffix(rel):
            out.skipped.append((src, "a cloud archive inside a folder; import its address alone"))
            continue
        out.entries.append(
            Entry(
                src,
                f"{top}/{rel}",
                info.get("size"),
                opener=_remote_opener(fs, name, scheme),
                stamp=_stamp(info),
                sidecar=meta.get(rel, {}),
            )
        )


def _remote_opener(fs, name: str, scheme: str):
    def opener():
        if scheme in ("http", "https"):
            return fs.open(name, "rb", block_size=0)  # a plain stream: no range requests
        return fs.open(name, "rb")

    return opener


def _download(opener, tmp_dir: Path | None, stack, url: str) -> Path:
    """A cloud archive, downloaded to a temporary file that the stack removes. Errors of
    the download are a `Skip`; errors writing here (a full disk) raise `OSError`."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=tmp_dir, suffix=".tmp")
    stack.callback(Path(tmp).unlink, missing_ok=True)
    with os.fdopen(fd, "wb") as out:
        try:
            opened = opener()
        except Exception as e:
            raise Skip(remote_reason(e, url)) from None
        with opened as f:
            while True:
                try:
                    chunk = f.read(1 << 20)
                except Exception as e:
                    raise Skip(remote_reason(e, url)) from None
                if not chunk:
                    break
                out.write(chunk)
    return Path(tmp)
