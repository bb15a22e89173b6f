"""Empty MLX's per-thread caches of the main thread before Python shuts down.

Since MLX 0.32 the cache of ``mx.compile`` is thread-local and MLX no longer empties it at
exit: its entries hold Python objects, and when the C++ runtime destroys the main thread's
cache after the interpreter has finalised, releasing them crashes the process (exit 139 after
every test passed; ml-explore/mlx#4327, #4347). MLX's maintainers ask every thread that used
MLX to call ``mx.clear_streams()`` when it ends, the main thread included.

This module registers that call with :mod:`atexit`. ``engine/__init__.py`` imports it first,
so the handler is one of the earliest registered and runs after every later one (they run in
reverse order), e.g. after a library's own exit handler that still computes with MLX. It
does nothing in a process that never imported MLX.
"""

from __future__ import annotations

import atexit
import sys


def clear_main_thread() -> bool:
    """Empty this thread's compile cache and streams if MLX is loaded; True if it was."""
    mx = sys.modules.get("mlx.core")
    if mx is None:
        return False
    mx.clear_streams()
    return True


atexit.register(clear_main_thread)
