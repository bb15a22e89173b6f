"""The test suite's own layout: test modules share builders through conftest.py fixtures, never
by importing one another (or a conftest module)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# tests/hostile's harness helpers (snapshot, diff) live in its conftest and its subprocess test
# imports them; that folder keeps its own layout.
ALLOWED = {"tests.hostile.conftest"}


def _is_test_or_conftest(module: str) -> bool:
    if module in ALLOWED:
        return False
    last = module.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def _forbidden_imports(source: str, name: str) -> list[str]:
    """``name:line: imports module`` for each import of a test module or a conftest."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: from .test_x import y, from . import test_x
                names = [module] if module else [a.name for a in node.names]
                bad = [m for m in names if _is_test_or_conftest(m)]
            elif module == "tests" or module.startswith("tests."):
                names = [f"{module}.{a.name}" for a in node.names]
                bad = [module] if _is_test_or_conftest(module) else []
                bad += [m for m in names if _is_test_or_conftest(m)]
            else:
                bad = []
        elif isinstance(node, ast.Import):
            bad = [
                a.name
                for a in node.names
                if a.name.startswith("tests.") and _is_test_or_conftest(a.name)
            ]
        else:
            continue
        found += [f"{name}:{node.lineno}: imports {m}" for m in bad]
    return found


def test_no_test_module_imports_another_test_module_or_a_conftest():
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 50  # the walk really sees the suite
    found = [
        line
        for path in files
        for line in _forbidden_imports(
            path.read_text(encoding="utf-8"), str(path.relative_to(TESTS.parent))
        )
    ]
    assert found == [], "share builders as conftest.py fixtures instead:\n" + "\n".join(found)


def test_the_check_catches_each_form():
    cases = {
        "from tests.models.test_musicgen import V": True,
        "from tests.conftest import make_tiny_model": True,
        "from tests import conftest": True,
        "from tests.models import test_encodec": True,
        "import tests.models.test_encodec": True,
        "from .test_basic_pitch import tone": True,
        "from . import conftest": True,
        "from tests.hostile import corpus": False,
        "from tests.hostile.conftest import diff": False,
        "from tests.accompany_pieces import ALL_PIECES": False,
        "import numpy as np": False,
    }
    for source, forbidden in cases.items():
        assert bool(_forbidden_imports(source, "probe.py")) is forbidden, source
