"""The worker processes of the data steps: spawned, one BLAS thread each, ended with their
parent, and each with a numba cache of its own.

**Why a numba cache of its own.** librosa compiles its numba functions on first use and
caches the machine code beside its own files. Two processes compiling the same function at
once write that cache together, and the result can be a cache that crashes (a segmentation
fault) every later process that loads it: in a fresh install, the first `data prep audio`
over two workers left librosa's chroma unusable for every command after it. So each worker
claims one of a few cache *slots* (a folder under the user cache, held with a lock for the
worker's life) and points ``NUMBA_CACHE_DIR`` at it before numba is imported: no two live
processes ever write the same cache, and a slot stays warm for the next run.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

MAX_SLOTS = 16  # cache slots; a worker that finds none free compiles into a temporary folder
_held: list[int] = []  # the slot's lock, open for the worker's life


def cache_root() -> Path:
    """Where the workers' numba caches live: $DISCO_MUSICA_HOME/cache/numba, else the user
    cache folder."""
    if os.environ.get("DISCO_MUSICA_HOME"):
        return Path(os.environ["DISCO_MUSICA_HOME"]).expanduser() / "cache" / "numba"
    import platformdirs

    return platformdirs.user_cache_path("disco-musica") / "numba"


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes set up by `init_worker`."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(os.getpid(),),
    )


def init_worker(parent: int) -> None:
    """In a new worker: its own numba cache slot, one BLAS/OpenMP thread (the workers are
    the parallelism), Ctrl-C left to the main process (it stops the pool; the journal keeps
    what was done), and an end when the parent is gone (``kill -9``) instead of blocking for
    ever on a result nobody reads."""
    claim_numba_cache()
    import engine  # noqa: F401  (loads OpenBLAS first, as every engine process does)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    watch_parent(parent)


def claim_numba_cache() -> Path:
    """Point this process's numba cache at a slot no other live process holds; return it."""
    import fcntl
    import tempfile

    root = cache_root()
    for k in range(MAX_SLOTS):
        slot = root / f"slot-{k}"
        try:
            slot.mkdir(parents=True, exist_ok=True)
            fd = os.open(slot / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            break  # no cache folder can be made here: a private one below
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _held.append(fd)
        return _use(slot)
    return _use(Path(tempfile.mkdtemp(prefix="disco-musica-numba-")))


def _use(folder: Path) -> Path:
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    import sys

    if "numba" in sys.modules:  # imported already (it should not be): read the setting again
        from numba.core import config

        config.reload_config()
    return folder


def watch_parent(parent: int) -> None:
    """End this process when ``parent`` is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()
