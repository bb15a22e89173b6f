"""Where outputs are written, and how they replace older ones without losing anything.

Every piece Disco-Musica makes is written into a temporary place beside its target and moved
into place only when complete (`OutputFolder`, `write_files`). The temporary place carries
an owner (process id and start time) in a small registry under the state folder, so the next
run of any command removes what a killed run left behind (`sweep_stale`).

Replacing is the most dangerous thing the program does, so it is narrow:

- a folder is replaced only if it is a Disco-Musica output: it holds our ``generation.json``
  and nothing but the files that record lists, each unchanged since we wrote it;
- a MIDI file is replaced only if its sidecar records it, unchanged;
- ``.``, ``..``, the current folder or any folder above it, the home folder, ``/`` and links
  are never replaced, and a file is never replaced by a folder (or a folder by a file);
- what is replaced is moved to ``.disco-musica-trash/`` beside it (never deleted), and the new
  version is complete before the old one is moved, so a crash at any moment leaves the old
  one or the new one (a crash between the two renames is finished by the next run).

One record format (`RECORD_FORMAT`): ``generation.json`` of a generation folder and the JSON
sidecar beside a MIDI file both carry ``"format"``; a record without it was written before
release 0.4.0 (format 1) and replays the same way. `write_record` is the one writer of
``generation.json`` (every pipeline calls it inside its `OutputFolder`), `read_record` the one
reader; replay dispatch by engine is `engine.pipelines.replay`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from engine import names
from engine.atomic import chmod_like_new, sha256_file, write_text_atomic
from engine.errors import OutputError, check_stop

GENERATION_FILE = names.GENERATION_FILE
DEFAULT_ROOT = Path("disco-musica-output")
TRASH_DIR = ".disco-musica-trash"
TEMP_PREFIX = ".dm-tmp-"
OWNER_FILE = ".disco-musica-owner.json"
STALE_FOREIGN_HOST_S = 7 * 24 * 3600  # another machine's leftovers (shared disks) after a week
_made_dirs: list[Path] = []  # folders this process created for its outputs (see make_dirs)
_planned: set[Path] = set()  # folders an output may create when it is written (plan_dirs)


# ---- owners and the registry of temporary places --------------------------------------------
def state_dir() -> Path:
    """Per-user state: ``$DISCO_MUSICA_HOME/state``, else the platform's user state folder."""
    home = os.environ.get("DISCO_MUSICA_HOME")
    if home:
        return Path(home).expanduser() / "state"
    import platformdirs

    return platformdirs.user_state_path("disco-musica", appauthor=False)


def _pending_dir() -> Path:
    return state_dir() / "pending"


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None


def _owner() -> dict:
    pid = os.getpid()
    return {"pid": pid, "started": _process_start(pid), "host": socket.gethostname()}


def owner_info() -> dict:
    """This process as an owner (pid, start time, host, now), for `is_stale` to judge later."""
    return {**_owner(), "created": time.time()}


def is_stale(owner: dict) -> bool:
    """Whether the process that made a temporary place has ended (pid gone or reused)."""
    if owner.get("host") != socket.gethostname():
        return time.time() - float(owner.get("created", 0)) > STALE_FOREIGN_HOST_S
    started = _process_start(int(owner.get("pid", -1)))
    if started is None:
        return True
    return owner.get("started") is not None and abs(started - float(owner["started"])) > 1.0


class _Pending:
    """One registry entry: a temporary path (folder or file) this process owns."""

    def __init__(self, path: Path, target: Path, kind: str):
        self.id = uuid.uuid4().hex
        self.entry = {
            **_owner(),
            "created": time.time(),
            "id": self.id,
            "path": str(path.absolute()),
            "target": str(target.absolute()),
            "kind": kind,
            "complete": False,
        }
        self.file = _pending_dir() / f"{self.id}.json"
        self._write()

    def _write(self) -> None:
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.file, json.dumps(self.entry))
        except OSError:  # a read-only home: outputs still work, only the sweep cannot see this
            pass

    def mark_complete(self, trash: Path | None) -> None:
        self.entry.update(complete=True, trash=str(trash) if trash else None)
        self._write()

    def close(self) -> None:
        try:
            self.file.unlink(missing_ok=True)
        except OSError:
            pass


def sweep_stale() -> list[str]:
    """Remove what killed runs left (temporary folders and files of processes that have
    ended); finish a replacement that was killed between its two renames. Returns what
    was done, one line each. Touches only paths named by our registry that carry our mark."""
    done: list[str] = []
    folder = _pending_dir()
    if not folder.is_dir():
        return done
    for file in sorted(folder.glob("*.json")):
        try:
            entry = json.loads(file.read_text())
            if not isinstance(entry, dict) or not is_stale(entry):
                continue
            path, target = Path(entry["path"]), Path(entry["target"])
        except (OSError, ValueError, KeyError, TypeError):
            file.unlink(missing_ok=True)  # unreadable: it names nothing we could act on
            continue
        if _ours(path, entry):
            if entry.get("complete") and not target.exists() and not target.is_symlink():
                os.replace(path, target)
                if path.is_dir() or target.is_dir():
                    (target / OWNER_FILE).unlink(missing_ok=True)
                done.append(f"finished writing {target} (an earlier run was stopped)")
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                done.append(f"removed {path} (left by a stopped run)")
            else:
                path.unlink(missing_ok=True)
                done.append(f"removed {path} (left by a stopped run)")
        elif entry.get("complete") and not path.exists() and _owns(target, entry):
            # killed between renaming its folder into place and removing its owner file
            (target / OWNER_FILE).unlink(missing_ok=True)
        file.unlink(missing_ok=True)
    return done


def _owns(folder: Path, entry: dict) -> bool:
    """``folder`` (a published target) still holds the owner file of ``entry``'s run."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        return json.loads((folder / OWNER_FILE).read_text()).get("id") == entry.get("id")
    except (OSError, ValueError, AttributeError):
        return False


def _ours(path: Path, entry: dict) -> bool:
    """A registry entry's path is ours to remove: our name mark, and (folders) our owner
    file with the same id inside — or nothing inside but a missing or half-written owner
    file (a run killed between making the folder and finishing its owner file: the registry
    names this very folder)."""
    if not path.name.startswith(TEMP_PREFIX) or path.is_symlink():
        return False
    if path.is_dir():
        try:
            return json.loads((path / OWNER_FILE).read_text()).get("id") == entry.get("id")
        except (OSError, ValueError, AttributeError):
            # Killed while making it: nothing inside but a missing or half-written owner file.
            return all(p.name == OWNER_FILE for p in path.iterdir())
    return path.is_file() and entry.get("kind") == "file"


def _temp_name(target: Path) -> str:
    return f"{TEMP_PREFIX}{target.name[:80]}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


# ---- announcing new pieces (the library keeps them) -------------------------------------------
class Published:
    """A piece about to be put in place: its files (name in the piece → where it is now, in a
    temporary place), its record and where it will be. What `add_publish_hook` hooks get."""

    def __init__(self, files: dict[str, Path], record: dict, target: Path):
        self.files, self.record, self.target = files, record, target


_publish_hooks: list[Callable[[Published], Callable[[], None] | None]] = []


def add_publish_hook(hook: Callable[[Published], Callable[[], None] | None]) -> Callable[[], None]:
    """Call ``hook(published)`` for every piece (a generation folder with its
    ``generation.json``, a MIDI file with its sidecar) just before it is put in place; it may
    return an undo, called if putting it in place then fails. An exception from the hook
    stops the write (nothing is published). Returns the function that removes the hook."""
    _publish_hooks.append(hook)
    return lambda: _publish_hooks.remove(hook) if hook in _publish_hooks else None


def _announce(files: dict[str, Path], target: Path, record_name: str) -> list[Callable]:
    if not _publish_hooks or record_name not in files:
        return []
    try:
        record = json.loads(files[record_name].read_bytes())
    except (OSError, ValueError):
        return []
    undos = []
    try:
        for hook in list(_publish_hooks):
            undo = hook(Published(files, record, target))
            if undo is not None:
                undos.append(undo)
    except BaseException:
        _undo(undos)
        raise
    return undos


def _undo(undos: list[Callable]) -> None:
    for undo in reversed(undos):
        try:
            undo()
        except Exception:  # an undo that fails must not hide why the write failed
            pass


def _folder_files(folder: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(folder)): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != OWNER_FILE
    }


# ---- checks on targets ----------------------------------------------------------------------
def protected_reason(path: Path) -> str | None:
    """Why ``path`` may never be replaced, or None."""
    if path.name in ("", ".", ".."):
        return "is not a new folder name"
    real = path.resolve()
    cwd = Path.cwd().resolve()
    if real == Path(real.anchor):
        return "is the top of the file system"
    if real == Path.home().resolve():
        return "is your home folder"
    if real == cwd:
        return "is the current folder"
    if real in cwd.parents:
        return "holds the current folder"
    return None


def _listed_outputs(folder: Path) -> tuple[dict | None, str | None]:
    """(outputs of our generation.json in ``folder``, or None; why not)."""
    try:
        record = json.loads((folder / GENERATION_FILE).read_text())
    except FileNotFoundError:
        return None, f"has no {GENERATION_FILE}"
    except (OSError, ValueError):
        return None, f"has a {GENERATION_FILE} that is not Disco-Musica's"
    outputs = record.get("outputs") if isinstance(record, dict) else None
    if not isinstance(outputs, dict) or not all(isinstance(v, dict) for v in outputs.values()):
        return None, f"has a {GENERATION_FILE} that is not Disco-Musica's"
    return outputs, None


def check_replaceable_folder(folder: Path) -> None:
    """Raise `OutputError` unless ``folder`` (existing) is a Disco-Musica output, unchanged."""
    entries = sorted(p.name for p in folder.iterdir())
    if not entries:
        return
    outputs, why = _listed_outputs(folder)
    if outputs is None:
        raise OutputError(
            f"{folder} is not a folder Disco-Musica wrote (it {why}); nothing was replaced: "
            "choose a new folder name"
        )
    ours = {GENERATION_FILE, OWNER_FILE, *outputs}
    foreign = [n for n in entries if n not in ours]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if foreign[3:] else "")
        raise OutputError(
            f"{folder} holds files Disco-Musica did not write ({shown}); nothing was "
            "replaced: move them away or choose a new folder name"
        )
    for name, info in outputs.items():
        f = folder / name
        if f.is_symlink() or (f.exists() and not f.is_file()):
            raise OutputError(f"{f} is not a file Disco-Musica wrote; nothing was replaced")
        if f.is_file() and info.get("sha256") and sha256_file(f) != info["sha256"]:
            raise OutputError(
                f"{f} was changed since Disco-Musica wrote it; nothing was replaced: keep your "
                "edit by choosing a new folder name"
            )


def check_new_folder(
    folder: str | Path,
    overwrite: bool,
    error: type[Exception] = OutputError,
    *,
    flag: str = "--overwrite",
    replaceable: Callable[[Path], None] | None = None,
) -> Path:
    """``folder``'s parent (absolute), after checking that the folder can be made there, or
    (with ``overwrite``) that it is a Disco-Musica output that may be replaced.

    ``replaceable(folder)`` raises `OutputError` unless an existing folder is ours to
    replace (default `check_replaceable_folder`: an output with its ``generation.json``).
    Raises ``error`` with a one-line message otherwise; changes nothing.
    """
    folder = Path(folder).expanduser()
    why = protected_reason(folder)
    if why:
        raise error(
            f"{folder} {why}; give a new folder name for the output, e.g. {folder / 'piece'}"
        )
    if folder.is_symlink():
        raise error(f"{folder} is a link; give a new folder name")
    if folder.exists() and not folder.is_dir():
        raise error(
            f"{folder} is a file, not an output folder; nothing was replaced: give a new "
            "folder name"
        )
    if folder.exists():
        if not overwrite:
            raise error(
                f"{folder} already exists; add {flag} to replace it (only a folder "
                "Disco-Musica wrote), or choose another folder"
            )
        try:
            (replaceable or check_replaceable_folder)(folder)
        except OutputError as e:
            raise error(str(e)) from None
    parent = folder.absolute().parent
    existing = parent
    if parent in _planned:  # made when the output is written (the default root, variations)
        while not existing.exists():
            existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise error(f"{existing} is a file; choose another folder")
    if not existing.is_dir():
        raise error(f"{parent} does not exist; create it or choose another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise error(f"cannot write in {existing}; choose another folder")
    return parent


def trash_path(target: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = target.absolute().parent / TRASH_DIR / f"{target.name}.{stamp}"
    path, k = base, 2
    while path.exists():
        path, k = base.with_name(f"{base.name}-{k}"), k + 1
    return path


def with_replaced(record: dict, out: OutputFolder) -> dict:
    """The record a save function returns: as written, plus ``"replaced"`` (where the
    previous folder went) when it replaced one. The file itself never holds that path."""
    return {**record, "replaced": str(out.replaced)} if out.replaced else record


def trash_hint(old: Path, trash: Path) -> str:
    """The line that tells the user where a replaced output went."""
    return f"the previous {old} is in {trash} (move it back to undo)"


# ---- writing ----------------------------------------------------------------------------
class OutputFolder:
    """A new output folder, written in a temporary folder and moved into place on success.

        with OutputFolder("calm-chorale", overwrite=False) as out:
            (out.path / "music.mid").write_bytes(midi)
        out.replaced  # where the previous folder went (overwrite), or None

    On an exception (Ctrl-C, SIGTERM included) the temporary folder is removed and the
    target is untouched. The checks of `check_new_folder` run on entry, and again (the
    folder may have changed meanwhile) just before an old folder is moved to the trash.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        overwrite: bool = False,
        error: type[Exception] = OutputError,
        flag: str = "--overwrite",
        replaceable: Callable[[Path], None] | None = None,
        announce: bool = True,
    ):
        self.target = Path(folder).expanduser()
        self.announce = announce
        self.checks = {"flag": flag, "replaceable": replaceable}
        self.overwrite = overwrite
        self.error = error
        self.path: Path | None = None
        self.replaced: Path | None = None
        self._pending: _Pending | None = None
        self._moved_to: Path | None = None

    def __enter__(self) -> OutputFolder:
        parent = check_new_folder(self.target, self.overwrite, self.error, **self.checks)
        sweep_stale()
        if not parent.exists():  # a planned folder (see plan_dirs)
            make_dirs(parent)
        self.path = parent / _temp_name(self.target)
        self._pending = _Pending(self.path, self.target, "folder")
        try:
            self.path.mkdir(mode=0o700)
            owner = {"id": self._pending.id, **_owner(), "target": str(self.target)}
            (self.path / OWNER_FILE).write_text(json.dumps(owner))
        except BaseException:
            self._abort()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self._publish()
        except BaseException:
            self._abort()
            raise

    def _publish(self) -> None:
        check_stop()  # never publish what a stopped run made
        chmod_like_new(self.path)
        trash = None
        if self.target.exists():
            check_new_folder(self.target, self.overwrite, self.error, **self.checks)
            if any(self.target.iterdir()):
                trash = trash_path(self.target)
        undos = (
            _announce(_folder_files(self.path), self.target, GENERATION_FILE)
            if self.announce
            else []
        )
        try:
            self._pending.mark_complete(trash)
            if trash is not None:
                trash.parent.mkdir(exist_ok=True)
                os.rename(self.target, trash)
                self._moved_to = trash
            elif self.target.exists():
                self.target.rmdir()  # an empty folder
            os.rename(self.path, self.target)
        except BaseException as e:
            _undo(undos)
            if not isinstance(e, OSError):
                raise
            raise self.error(
                f"cannot write {self.target}: {(e.strerror or str(e)).lower()}; nothing was "
                "replaced"
            ) from None
        self._moved_to = None
        self.path = None
        (self.target / OWNER_FILE).unlink(missing_ok=True)
        self.replaced = trash
        self._pending.close()

    def _abort(self) -> None:
        moved = self._moved_to
        if moved is not None and not self.target.exists():
            os.rename(moved, self.target)  # stopped between the two renames: put it back
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._pending is not None:
            self._pending.close()


def check_new_file(
    path: Path, companions: Sequence[Path] = (), *, force: bool, flag: str = "--force"
) -> None:
    """Check that ``path`` (and its ``companions``, e.g. a sidecar) may be written.

    Without ``force`` none may exist. With ``force`` an existing ``path`` is replaced only if
    the first companion is our sidecar recording it unchanged (``{"midi": {"sha256": …}}``
    or a ``generation.json``-style ``outputs``). Raises `OutputError`; changes nothing.
    """
    for p in (path, *companions):
        if p.is_symlink():
            raise OutputError(f"{p} is a link; give a new file name")
        if p.exists() and not p.is_file():
            raise OutputError(f"{p} is a folder, not a file; give a new file name")
    existing = [p for p in (path, *companions) if p.exists()]
    if not existing:
        return
    if not force:
        raise OutputError(
            f"{existing[0]} already exists; add {flag} to replace it (only a file "
            "Disco-Musica wrote), or choose another name"
        )
    recorded = _sidecar_sha256(companions[0], path.name) if companions else None
    if recorded is None:
        raise OutputError(
            f"{existing[0]} was not written by Disco-Musica (no sidecar records it); nothing "
            "was replaced: choose another name"
        )
    if path.exists() and sha256_file(path) != recorded:
        raise OutputError(
            f"{path} was changed since Disco-Musica wrote it; nothing was replaced: keep your "
            "edit by choosing another name"
        )


def _sidecar_sha256(sidecar: Path, name: str) -> str | None:
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    midi = record.get("midi") if isinstance(record, dict) else None
    if isinstance(midi, dict) and midi.get("file") == name and isinstance(midi.get("sha256"), str):
        return midi["sha256"]
    return None


def write_files(files: Sequence[tuple[Path, bytes]], *, force: bool = False) -> list[Path]:
    """Write several files together (a MIDI file and its sidecar): each to an owned temporary
    file first, then renamed into place; files replaced (``force``, checked with
    `check_new_file`) go to the trash. Returns the trash paths (empty if nothing was
    replaced)."""
    paths = [p for p, _ in files]
    check_new_file(paths[0], paths[1:], force=force)
    sweep_stale()
    pending: list[tuple[Path, _Pending]] = []
    trashed: list[Path] = []
    try:
        for path, data in files:
            tmp = path.absolute().parent / _temp_name(path)
            pending.append((tmp, _Pending(tmp, path, "file")))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o666 & ~_umask())
        check_new_file(paths[0], paths[1:], force=force)
        check_stop()
        records = [p.name for p in paths[1:] if p.suffix == names.SIDECAR_SUFFIX]
        staged = {path.name: tmp for (tmp, _), path in zip(pending, paths, strict=True)}
        undos = _announce(staged, paths[0], records[0]) if records else []
    except OSError as e:
        _remove_pending(pending)
        reason = (e.strerror or str(e)).lower()
        raise OutputError(f"cannot write {paths[0]}: {reason}; choose another place") from None
    except BaseException:
        _remove_pending(pending)
        raise
    try:
        for (tmp, entry), (path, _) in zip(pending, files, strict=True):
            trash = trash_path(path) if path.exists() else None
            entry.mark_complete(trash)
            if trash is not None:
                trash.parent.mkdir(exist_ok=True)
                os.rename(path, trash)
                trashed.append(trash)
            os.rename(tmp, path)
            entry.close()
    except BaseException as e:
        _undo(undos)
        if not isinstance(e, OSError):
            raise
        reason = (e.strerror or str(e)).lower()
        raise OutputError(f"cannot write {paths[0]}: {reason}; choose another place") from None
    finally:
        _remove_pending(pending)
    return trashed


def _remove_pending(pending: list[tuple[Path, _Pending]]) -> None:
    for tmp, entry in pending:
        if tmp.exists() and tmp.name.startswith(TEMP_PREFIX):
            tmp.unlink()
        entry.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- default folders ----------------------------------------------------------------------
def plan_dirs(folder: Path) -> None:
    """Let outputs inside ``folder`` create it (and missing folders above it) when they are
    written, not before: a run refused or stopped earlier leaves nothing, not even an
    empty ``disco-musica-output/``. Raises `OutputError` if a part of the path is a file."""
    folder = Path(folder).expanduser().absolute()
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                raise OutputError(f"{p} is a file; choose another folder")
            break
    _planned.add(folder)


def make_dirs(folder: Path) -> None:
    """``mkdir -p`` that remembers which folders it made, so that a failed run can remove
    them again if they stayed empty (`remove_made_dirs`)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    _made_dirs.extend(reversed(missing))


def remove_made_dirs() -> None:
    """Remove the folders `make_dirs` made in this process that are still empty."""
    _planned.clear()
    while _made_dirs:
        d = _made_dirs.pop()
        try:
            d.rmdir()
        except OSError:
            pass


def forget_made_dirs() -> None:
    """The run succeeded: the folders it made stay."""
    _made_dirs.clear()
    _planned.clear()


def prompt_words(prompt: str, fallback: str) -> str:
    """A folder name from a prompt's first five words (``a-calm-chorale-in-g``)."""
    import re

    words = "-".join(w[:20] for w in re.findall(r"[a-z0-9]+", prompt.lower())[:5])
    return words or fallback


def unique_folder(root: Path, stem: str, taken: Iterable[Path] = ()) -> Path:
    """``root/stem``, or ``root/stem-2``, ``-3`` … if it exists or is in ``taken``."""
    taken = set(taken)
    folder, k = root / stem, 2
    while folder.exists() or folder in taken:
        folder, k = root / f"{stem}-{k}", k + 1
    return folder


# ---- writing records ------------------------------------------------------------------------
# 1: before 0.4.0 (no "format" field); 2: "format" added, nothing else changed.
RECORD_FORMAT = 2


def file_info(path: Path) -> dict:
    """``{"sha256", "bytes"}`` of a written output file, as records list them."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def record_bytes(record: dict) -> bytes:
    """A record as it is written: ``format`` first, then the record, as indented JSON."""
    from engine.atomic import json_default

    text = json.dumps({"format": RECORD_FORMAT, **record}, indent=1, default=json_default)
    return (text + "\n").encode()


def write_record(folder: Path, record: dict, outputs: dict | None = None) -> dict:
    """Write ``generation.json`` into ``folder`` (an `OutputFolder`'s ``path``): ``record``
    with ``format``, ``outputs`` (every file in ``folder`` but our owner file when None) and
    ``disco_musica_version`` (the one running). Return the record as written."""
    from engine import __version__
    from engine.atomic import write_bytes_atomic

    if outputs is None:
        outputs = {
            f.name: file_info(f)
            for f in sorted(folder.iterdir())
            if f.name not in (OWNER_FILE, GENERATION_FILE)
        }
    record = {**record, "outputs": outputs}
    record.setdefault("disco_musica_version", __version__)
    write_bytes_atomic(folder / GENERATION_FILE, record_bytes(record))
    return {"format": RECORD_FORMAT, **record}


# ---- reading records back ----------------------------------------------------------------
ENGINES = {"score": "the score model", "musicgen": "MusicGen", "accompany": "accompany"}
SEED_PATHS = (("seed",), ("request", "seed"), ("plan", "seed"), ("settings", "seed"))
MAX_SEED = names.MAX_SEED


def _at(record: dict, path: tuple[str, ...]):
    node = record
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


_MISSING = object()


def read_record(path: str | Path) -> dict:
    """A ``generation.json`` (or the folder holding one), read and checked for replay.

    Raises `RecordError` naming what is wrong: not JSON or not an object, an engine this
    version does not know, a seed that is not a whole number in range, copies of the seed
    or of the model that disagree (an edit: the message says which copies hold what), a
    missing model entry, an ``outputs`` table that is not Disco-Musica's.
    """
    from engine.errors import RecordError

    path = Path(path).expanduser()
    if path.is_dir():
        path = path / GENERATION_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(f"{path} does not exist; give a {GENERATION_FILE}") from None
    except UnicodeDecodeError:
        raise RecordError(f"{path} is not text; give a {GENERATION_FILE}") from None
    except IsADirectoryError:
        raise RecordError(f"{path} is a folder; give a {GENERATION_FILE}") from None
    try:
        record = json.loads(text)
    except ValueError as e:
        raise RecordError(f"{path} is not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(record, dict):
        kind = {list: "a list", str: "a string", type(None): "null"}.get(type(record), "a number")
        raise RecordError(f"{path} holds {kind}, not a Disco-Musica record; give a generation.json")
    fmt = record.get("format", 1)
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        raise RecordError(f"{path}: format is {fmt!r}, not a record format number (edited?)")
    if fmt > RECORD_FORMAT:
        raise RecordError(
            f"{path} has record format {fmt}, newer than this version reads (up to "
            f"{RECORD_FORMAT}); install a newer Disco-Musica to replay it"
        )
    engine = record.get("engine", "score")
    if engine not in ENGINES:
        raise RecordError(
            f"{path} was made by engine {engine!r}, which this version cannot replay "
            f"(it knows {', '.join(ENGINES)})"
        )
    _check_seeds(record, path)
    _check_model(record, path, engine)
    outputs = record.get("outputs")
    if not isinstance(outputs, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in outputs.values()
    ):
        raise RecordError(f"{path}: 'outputs' is not a table of files with their sha256 (edited?)")
    return record


def _check_seeds(record: dict, path: Path) -> None:
    from engine.errors import RecordError

    copies = {".".join(p): _at(record, p) for p in SEED_PATHS if _at(record, p) is not _MISSING}
    if "seed" not in copies:
        raise RecordError(f"{path} has no seed; a record always holds one (was it edited?)")
    for where, seed in copies.items():
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise RecordError(f"{path}: {where} is {seed!r}, not a whole number (was it edited?)")
        if not 0 <= seed <= MAX_SEED:
            raise RecordError(f"{path}: {where} {seed} is outside 0..{MAX_SEED} (was it edited?)")
    if len(set(copies.values())) > 1:
        shown = ", ".join(f"{w} = {s}" for w, s in copies.items())
        raise RecordError(
            f"{path} was edited: its copies of the seed differ ({shown}); to make a new "
            "version, give every copy the same seed"
        )


def _check_model(record: dict, path: Path, engine: str) -> None:
    from engine.errors import RecordError

    if engine == "accompany":
        return  # accompaniment records name their models per part
    model = record.get("model")
    if not isinstance(model, dict) or not model.get("name") or "sha256" not in model:
        raise RecordError(
            f"{path} has no model entry (model.name and model.sha256), so replay cannot tell "
            "which model made it (was it edited?)"
        )
    requested = _at(record, ("request", "model"))
    if requested not in (_MISSING, None) and requested != model["name"]:
        raise RecordError(
            f"{path} was edited: request.model is {requested!r} but model.name is "
            f"{model['name']!r}; give both the same model"
        )
