"""The data steps' worker processes: each live worker has a numba cache of its own (two
processes compiling into one cache at once can leave a cache that crashes every later
process), the slots are used again by later pools, and workers end with their parent."""

from __future__ import annotations

import os
import time
from pathlib import Path

from engine.data import workers


def where_numba_caches(pause: float) -> tuple[int, str, str]:
    """In a worker: its pid, NUMBA_CACHE_DIR, and the cache folder numba itself uses."""
    from numba.core import config

    time.sleep(pause)  # keep both workers busy at once
    return os.getpid(), os.environ["NUMBA_CACHE_DIR"], config.CACHE_DIR


def test_each_live_worker_has_its_own_numba_cache_and_slots_are_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path))
    root = tmp_path / "cache" / "numba"
    with workers.spawn_pool(2) as pool:
        got = list(pool.map(where_numba_caches, [1.0, 1.0, 0.2, 0.2]))
    by_pid = {pid: env for pid, env, _ in got}
    assert len(by_pid) == 2  # two workers, each kept its slot for all its tasks
    assert len(set(by_pid.values())) == 2
    for _, env, numba_dir in got:
        assert env == numba_dir  # numba read it: it was set before numba was imported
        assert Path(env).parent == root and Path(env).name.startswith("slot-")
    first = set(by_pid.values())
    with workers.spawn_pool(2) as pool:  # the next run finds the same (warm) slots free
        again = {env for _, env, _ in pool.map(where_numba_caches, [1.0, 1.0])}
    assert again == first


def test_a_slot_held_by_a_live_process_is_never_given_to_another(tmp_path, monkeypatch):
    import fcntl

    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path))
    slot0 = tmp_path / "cache" / "numba" / "slot-0"
    slot0.mkdir(parents=True)
    fd = os.open(slot0 / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process holds slot 0
    try:
        with workers.spawn_pool(2) as pool:
            dirs = {env for _, env, _ in pool.map(where_numba_caches, [1.0, 1.0])}
        assert str(slot0) not in dirs and len(dirs) == 2
    finally:
        os.close(fd)
