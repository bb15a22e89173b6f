"""Atomic file writes: a temporary file in the same folder, then a rename over the target.

A crash or a full disk never leaves a half-written file under the final name.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path


def write_bytes_atomic(file: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``file`` atomically; return the path."""
    file = Path(file)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file


def write_text_atomic(file: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``file`` atomically; return the path."""
    return write_bytes_atomic(file, text.encode("utf-8"))


def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file_cached(path: str | Path) -> str:
    """`sha256_file`, computed once per version of the file (its resolved path, size and
    modification time): model weights are hashed by several steps of one load."""
    st = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def chmod_like_new(folder: str | Path) -> None:
    """Give a folder made by ``tempfile.mkdtemp`` (private) and its files the modes a new
    folder and new files would have under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for f in Path(folder).iterdir():
        # A sub-folder (a corpus's tokenizer/) needs its search bit, or no one can open its files.
        os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~umask)


def json_default(o):
    """``json.dumps(default=...)`` for the values records hold: numpy scalars and paths."""
    if hasattr(o, "item") and getattr(o, "shape", None) == ():
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot record {type(o).__name__}")
