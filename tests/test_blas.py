"""OpenBLAS loading: one module, Linux only, one clear warning when missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import ctypes.util, sys
ctypes.util.find_library = lambda name: None
import engine, engine._blas as b
import mlx.core as mx
print(mx.sum(mx.ones((4, 4)) @ mx.ones((4, 4))).item())
print(b.loaded)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OpenBLAS matters on Linux")
def test_missing_openblas_warns_once_and_still_works():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["64.0", "None"]
    lines = [x for x in r.stderr.splitlines() if "OpenBLAS" in x]
    assert len(lines) == 1
    assert "apt-get install libopenblas0-pthread" in lines[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OpenBLAS matters on Linux")
def test_openblas_is_loaded_when_present():
    import ctypes.util

    import engine._blas as b

    if ctypes.util.find_library("openblas") is None:
        pytest.skip("OpenBLAS is not installed on this machine")
    assert b.loaded is not None
