"""The floors of docs/developer-guide.md hold: imports go down, never up, never in a circle,
and no module reaches into another's private names.

Every import is read with `ast`, also the ones inside functions (a lazy import is still a
dependency, and it is where circles hide).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "convert", "cloud_train", "tui")

# The floor of each module, by the longest prefix that names it. A module may import its own
# floor and the floors below; nothing imports a floor above it.
FLOORS = {
    "engine": 0,  # the package itself: __version__, the BLAS loader
    "engine._blas": 0,
    "engine._mlx_exit": 0,
    "engine.errors": 0,
    "engine.names": 0,
    "engine.atomic": 0,
    "engine.sample": 0,
    "engine.seeds": 0,
    "engine.record": 0,
    "engine.credit": 0,  # the statement every written file carries, and its reader
    "engine.progress": 0,  # the Progress event every long job reports (standard library only)
    "engine.models": 1,
    "convert": 2,
    "engine.generate": 3,
    "engine.hub": 3,
    "engine.audio": 4,
    "engine.symbolic": 4,
    "engine.data": 5,
    "engine.train": 5,
    "engine.library": 5,
    "engine.pipelines": 6,
    "engine.cli": 7,
    "tui": 8,
    "cloud_train": 8,
}
# Faces are leaves: only these may import them.
FACES = ("engine.cli", "tui")
# convert may use the models and the ground floor, nothing else of engine.
CONVERT_MAY_IMPORT = ("engine", "engine.models", "engine.atomic", "engine.errors", "engine.names")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if "assets" not in path.parts:
                out[module_name(path)] = path
    return out


MODULES = modules()


def resolve(name: str) -> str | None:
    """The module of ours that ``name`` (a module or a name in one) refers to."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def floor(module: str) -> int:
    best = max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len)
    return FLOORS[best]


def imports_of(module: str) -> list[tuple[str, int, str | None]]:
    """(imported module, line, name imported from it or None) for every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    pkg = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                target = resolve(a.name)
                if target:
                    out.append((target, node.lineno, None))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                if full in MODULES:
                    out.append((full, node.lineno, None))
                else:
                    target = resolve(base)
                    if target:
                        out.append((target, node.lineno, a.name))
    return [(t, line, n) for t, line, n in out if t != module]


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_floor():
    for m in MODULES:
        assert any(m == p or m.startswith(p + ".") for p in FLOORS), f"{m} is on no floor"


def test_imports_go_down():
    upward = []
    for m, deps in GRAPH.items():
        for target, line, _ in deps:
            if target == "engine" or m.startswith(target + "."):
                continue  # a package's own __init__ (the version, the BLAS loader)
            if floor(target) > floor(m):
                upward.append(f"{MODULES[m].relative_to(ROOT)}:{line} {m} -> {target}")
    assert not upward, "imports going up a floor:\n" + "\n".join(upward)


def test_faces_are_leaves():
    wrong = [
        f"{m} -> {t}"
        for m, deps in GRAPH.items()
        for t, _, _ in deps
        if any(t == f or t.startswith(f + ".") for f in FACES)
        and not any(m == f or m.startswith(f + ".") for f in FACES)
    ]
    assert not wrong, wrong


def test_convert_uses_only_models_and_the_ground_floor():
    wrong = [
        f"{m} -> {t}"
        for m, deps in GRAPH.items()
        if m.startswith("convert")
        for t, _, _ in deps
        if t.startswith("engine")
        and not any(t == p or t.startswith(p + ".") for p in CONVERT_MAY_IMPORT)
    ]
    assert not wrong, wrong
    # and only the hub calls convert
    callers = {m for m, deps in GRAPH.items() for t, _, _ in deps if t.startswith("convert")}
    callers = {m for m in callers if m.startswith("engine")}
    assert callers <= {"engine.hub"}, callers


def test_no_import_circles():
    edges = defaultdict(set)
    for m, deps in GRAPH.items():
        for t, _, _ in deps:
            if t != "engine":
                edges[m].add(t)
    # a package's __init__ importing its own submodules is not a circle of layers
    for m in list(edges):
        edges[m] = {t for t in edges[m] if not (t.startswith(m + ".") and m in MODULES)}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t) :] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_no_private_names_across_modules():
    found = []
    for m, deps in GRAPH.items():
        for target, line, name in deps:
            if name and name.startswith("_") and not name.startswith("__"):
                found.append(f"{MODULES[m].relative_to(ROOT)}:{line} {name} from {target}")
        # module aliases: `from engine.x import y as z` then `z._private`
        tree = ast.parse(MODULES[m].read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                for a in node.names:
                    base = getattr(node, "module", None)
                    full = f"{base}.{a.name}" if base else a.name
                    if full in MODULES and full != m:
                        aliases[a.asname or a.name.split(".")[-1]] = full
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append(
                    f"{MODULES[m].relative_to(ROOT)}:{node.lineno} "
                    f"{node.value.id}.{node.attr} ({aliases[node.value.id]})"
                )
    assert not found, "private names used across modules:\n" + "\n".join(sorted(set(found)))


def third_party_imports(module: str) -> list[tuple[str, int]]:
    """(top-level package, line) for every import of ``module`` that is not one of ours."""
    out = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name.partition(".")[0], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.append((node.module.partition(".")[0], node.lineno))
    return out


def test_only_the_faces_import_rich():
    """Pipelines report `engine.progress.Progress` events; drawing them is the faces' job."""
    wrong = [
        f"{MODULES[m].relative_to(ROOT)}:{line}"
        for m in MODULES
        if not any(m == f or m.startswith(f + ".") for f in FACES)
        for name, line in third_party_imports(m)
        if name == "rich"
    ]
    assert not wrong, "rich imported outside engine.cli and tui:\n" + "\n".join(wrong)
    assert any(
        name == "rich" for name, _ in third_party_imports("engine.cli.progress")
    )  # the check reads the imports that are there


def test_the_progress_event_needs_only_the_standard_library():
    import sys

    names = {name for name, _ in third_party_imports("engine.progress")}
    assert names <= set(sys.stdlib_module_names) | {"__future__"}, names


@pytest.mark.parametrize("bad", ["up", "circle"])
def test_the_checks_catch_a_violation(bad, monkeypatch):
    """The rule fails on an upward import and on a circle (so it cannot pass vacuously)."""
    graph = dict(GRAPH)
    if bad == "up":
        graph["engine.models.score"] = [
            *GRAPH["engine.models.score"],
            ("engine.pipelines", 1, None),
        ]
        check, match = test_imports_go_down, "going up"
    else:
        graph["engine.errors"] = [*GRAPH["engine.errors"], ("engine.record", 1, None)]
        graph["engine.record"] = [*GRAPH["engine.record"], ("engine.errors", 1, None)]
        check, match = test_no_import_circles, "circles"
    monkeypatch.setitem(globals(), "GRAPH", graph)
    with pytest.raises(AssertionError, match=match):
        check()


# ---- names.py: each value of the shared vocabulary is defined once ----------------------------
# The same name defined with a literal in two modules, on purpose (each line says why).
SAME_NAME_ON_PURPOSE = {
    "CACHE_BLOCK": "different caches, different block sizes (score decoder 256, MusicGen 64)",
    "METER_MARGIN": "the two beat-tracking chains (transcribe, accompany) are tuned apart",
    "RESAMPLE_QUALITY": "librosa's spelling in the Basic Pitch model file, soxr's in audio/io",
    "_NUMERAL": "prompt.py finds numerals in words; steer.py parses them (and is heavy)",
}
# Values equal to one of names.py by coincidence, not copies of it.
SAME_VALUE_BY_CHANCE = {"PROGRESS_STAGE"}  # the stage "music", not the file stem "music"


def _literal_constants() -> dict[str, list[tuple[str, object]]]:
    found: dict[str, list[tuple[str, object]]] = defaultdict(list)
    for m, path in MODULES.items():
        if not m.startswith("engine"):
            continue
        for node in ast.parse(path.read_text()).body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target = node.targets[0]
            if not isinstance(target, ast.Name) or not target.id.lstrip("_").isupper():
                continue
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = ast.unparse(node.value)
                if "re.compile" not in value:
                    continue  # an expression of other names: a binding, not a definition
            found[target.id].append((m, value))
    return found


def test_no_constant_is_defined_twice():
    from engine import names

    twice = [
        f"{name}: {', '.join(m for m, _ in where)}"
        for name, where in _literal_constants().items()
        if len(where) > 1 and name not in SAME_NAME_ON_PURPOSE
    ]
    assert not twice, "constants defined in several modules:\n" + "\n".join(twice)
    vocabulary = {
        repr(v): k
        for k, v in vars(names).items()
        if k.isupper() and isinstance(v, tuple | str | dict) and len(v) > 1
    }
    copies = [
        f"{m}.{name} copies names.{vocabulary[repr(value)]}"
        for name, where in _literal_constants().items()
        for m, value in where
        if m != "engine.names" and repr(value) in vocabulary and name not in SAME_VALUE_BY_CHANCE
    ]
    assert not copies, "\n".join(copies)
