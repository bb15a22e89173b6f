"""Atomic file writes: a temporary file in the same folder, then a rename over the target.

A crash or a full disk never leaves a half-written file under the final name.
"""

from __future__ import annotations

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
