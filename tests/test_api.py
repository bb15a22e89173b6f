"""The public Python API of docs/api.md: `from engine import compose, load, ...`.

``import engine`` stays light (no MLX, music21, librosa or torch: each name is imported from
its home on first use), every public name is that home's own callable with a docstring, and
nothing inside the project imports a public name through the package (a circle waiting to
happen: the package would import a pipeline that imports the package).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import engine

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("mlx", "music21", "librosa", "torch", "numpy", "symusic", "miditok", "rich")
API = [n for n in engine.__all__ if n != "__version__"]
DOCUMENTED = ("compose", "load", "transcribe", "harmonize", "accompany", "replay")


def _fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter (with the project on the path); its JSON output."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_engine_is_light():
    loaded = _fresh(
        "import json, sys, engine; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    heavy = sorted(set(loaded) & set(HEAVY))
    assert not heavy, f"`import engine` imports {heavy}"


def test_the_brief_s_names_are_public():
    assert set(DOCUMENTED) <= set(API)
    assert engine.__version__
    assert set(API) <= set(dir(engine))


@pytest.mark.parametrize("name", API)
def test_each_name_is_its_home_s_callable_with_a_docstring(name):
    obj = getattr(engine, name)
    assert callable(obj), name
    assert obj.__doc__ and len(obj.__doc__.split()) >= 8, f"{name} has no real docstring"
    home = sys.modules[engine._API[name]]
    assert getattr(home, name) is obj  # the home's own, not a copy
    assert obj.__module__ == home.__name__


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        engine.nonsense  # noqa: B018
    assert not hasattr(engine, "_private_nothing")


def test_the_docstrings_state_units_and_shapes():
    doc = {n: " ".join(getattr(engine, n).__doc__.split()) for n in API}
    assert "seconds" in doc["compose"] and "BPM" in doc["compose"]
    assert "[S]" in doc["transcribe"] and "Hz" in doc["transcribe"]
    assert "[frames, 2]" in doc["render_midi"]
    assert "[frames, channels]" in doc["compose_audio"] and "Hz" in doc["compose_audio"]
    for name in ("compose", "harmonize", "accompany", "restyle", "continue_audio"):
        assert "progress" in doc[name], name
        assert "seed" in doc[name], name
    for name in ("compose", "harmonize", "restyle", "accompany", "transcribe", "replay"):
        assert "Error" in doc[name], f"{name}: which error it raises"


def test_nothing_in_the_project_imports_the_api_through_the_package():
    found = []
    for pkg in ("engine", "convert", "cloud_train", "tui"):
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == "engine" and not node.level:
                    found += [
                        f"{path.relative_to(ROOT)}:{node.lineno} {a.name}"
                        for a in node.names
                        if a.name in engine._API
                    ]
    assert not found, found


def test_audio_composition_saves_like_the_others(tmp_path):
    """`compose_audio`'s result has `.save(folder)` like every pipeline's (no model needed)."""
    import numpy as np

    from engine.pipelines.musicgen import AudioComposition

    t = np.arange(32000) / 32000
    comp = AudioComposition(
        audio=(0.3 * np.sin(2 * np.pi * 440 * t))[:, None].astype(np.float32),
        sample_rate=32000,
        text="a test tone",
        request={"prompt": "a test tone", "model": "musicgen-small", "seed": 1},
        settings={"seed": 1},
        model_name="musicgen-small",
        model_sha256="0" * 64,
    )
    record = comp.save(tmp_path / "tone", formats=["wav", "flac"])
    assert sorted(record["outputs"]) == ["music.flac", "music.wav"]
    assert (tmp_path / "tone" / "generation.json").is_file()
    assert record["engine"] == "musicgen" and record["seed"] == 1
