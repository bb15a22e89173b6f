"""A process that used MLX ends cleanly: the main thread's compile cache is emptied at exit.

MLX 0.32 keeps ``mx.compile``'s cache per thread and leaves it to the program to empty it
(``mx.clear_streams()``); otherwise the C++ runtime frees it after Python has finalised and
the process can die with exit 139 after all its work is done (seen when ``pytest tests/tui``
ran alone). ``engine._mlx_exit`` registers that call at import, before anything else can
register an exit handler, so it runs last.
"""

from __future__ import annotations

import subprocess
import sys

# The handler is wrapped to report when it runs; an exit handler registered after the engine
# was imported still computes with a compiled function, and must run first.
CODE = """
import atexit
import engine
import mlx.core as mx

real = mx.clear_streams
def spy():
    print("cleared", flush=True)
    real()
mx.clear_streams = spy

double = mx.compile(lambda x: {"y": 2 * x + 1})
print("value", double(mx.ones(3))["y"].sum().item(), flush=True)

def late_work():
    print("late", double(mx.ones(2))["y"].sum().item(), flush=True)
atexit.register(late_work)
"""


def test_the_compile_cache_is_emptied_last_at_exit():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split("\n")[:3] == ["value 9.0", "late 6.0", "cleared"]
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr


def test_nothing_is_done_without_mlx():
    code = "import sys, engine._mlx_exit as e; print(e.clear_main_thread(), 'mlx' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]
