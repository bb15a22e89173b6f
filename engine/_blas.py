"""Make MLX use the system OpenBLAS on Linux.

The ``mlx[cpu]`` wheel for Linux links the reference BLAS, whose matmul runs at a few
GFLOP/s.  Loading OpenBLAS into the global symbol namespace *before* MLX is first imported
makes MLX resolve its BLAS symbols to it (about 60x faster here).  This module is imported
by ``engine/__init__.py`` so it runs once, before any ``import mlx`` in the project.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

logger = logging.getLogger(__name__)

OPENBLAS_FIX = "sudo apt-get install libopenblas0-pthread"
OPENBLAS_WARNING = (
    "warning: OpenBLAS not found; MLX will use its slow reference BLAS on this Linux machine "
    f"(about 60x slower). Fix: {OPENBLAS_FIX}"
)

loaded: str | None = None


def load_openblas() -> str | None:
    """Load OpenBLAS globally on Linux; return the library name, or None if unavailable."""
    global loaded
    if loaded is not None or not sys.platform.startswith("linux"):
        return loaded
    if "mlx.core" in sys.modules:
        logger.warning("mlx was imported before engine._blas; OpenBLAS may not take effect")
    name = ctypes.util.find_library("openblas")
    if name is None:
        print(OPENBLAS_WARNING, file=sys.stderr)
        return None
    try:
        ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        print(f"{OPENBLAS_WARNING} ({e})", file=sys.stderr)
        return None
    loaded = name
    return loaded


load_openblas()
