"""`train merge`: two score models averaged weight by weight into a new folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from engine.symbolic.score_api import load
from engine.train.merge import merge_models
from engine.train.score import TrainingError


def _arrays(folder):
    import mlx.core as mx

    return {
        k: np.array(v.astype(mx.float32))
        for k, v in mx.load(str(folder / "model.safetensors")).items()
    }


@pytest.fixture(scope="module")
def two_models(tiny_model_dir, tmp_path_factory):
    """The tiny model and a copy of it with other weights (as a continued run would have)."""
    import mlx.core as mx

    other = tmp_path_factory.mktemp("other") / "model"
    shutil.copytree(tiny_model_dir, other)
    w = mx.load(str(other / "model.safetensors"))
    rng = np.random.default_rng(0)
    moved = {
        k: (v + mx.array(rng.normal(0, 0.05, v.shape).astype(np.float32)).astype(v.dtype))
        for k, v in w.items()
    }
    mx.save_safetensors(str(other / "model.safetensors"), moved, metadata={"format": "mlx"})
    return tiny_model_dir, other


def test_the_merge_is_the_weighted_mean_of_both_models(two_models, tmp_path):
    a, b = two_models
    out = merge_models(a, b, tmp_path / "merged", weight=0.25, key_strength_scale=0.8)
    wa, wb, wm = _arrays(a), _arrays(b), _arrays(out)
    assert wm.keys() == wa.keys()
    for k in wa:
        np.testing.assert_allclose(wm[k], 0.75 * wa[k] + 0.25 * wb[k], rtol=1e-3, atol=1e-3)
    assert not np.allclose(wm[next(iter(wa))], wa[next(iter(wa))])
    config = json.loads((out / "config.json").read_text())
    assert config["key_strength_scale"] == 0.8
    assert load(out).key_strength_scale == 0.8  # and the merged folder loads as a model
    record = json.loads((out / "training.json").read_text())
    assert record["merge"]["weight"] == 0.25 and record["merge"]["first"]["name"] == str(a)
    assert len(record["merge"]["second"]["sha256"]) == 64
    assert record["command"].startswith("disco-musica train merge ")
    from engine.cli.train import _model_facts  # what `disco-musica models` says of it

    assert _model_facts(out)[1] == f"merged: {a} and {b}, 0.25 of the second, key bonus x0.8"
    assert (out / "tokenizer" / "tokenizer.json").read_bytes() == (
        a / "tokenizer" / "tokenizer.json"
    ).read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["merged"]  # no temporary folder left
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private folder
    assert (out / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_model_merged_with_itself_is_itself(two_models, tmp_path):
    a, _ = two_models
    out = merge_models(a, a, tmp_path / "same", weight=0.5)
    wa, wm = _arrays(a), _arrays(out)
    assert all(np.array_equal(wa[k], wm[k]) for k in wa)
    assert "key_strength_scale" not in json.loads((out / "config.json").read_text())


def test_models_that_cannot_be_merged_are_refused_and_nothing_is_written(two_models, tmp_path):
    from engine.models import build_model, save_model

    a, b = two_models
    wide = tmp_path / "wide"
    shutil.copytree(a, wide)
    config = json.loads((a / "config.json").read_text())
    config["hidden_size"] *= 2
    save_model(wide, build_model(config), config)
    with pytest.raises(TrainingError, match="different shapes"):
        merge_models(a, wide, tmp_path / "m1")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.txt").write_text("mine")
    with pytest.raises(TrainingError, match="not a new or empty folder"):
        merge_models(a, b, busy)
    assert [p.name for p in busy.iterdir()] == ["thesis.txt"]
    for w in (0, 1, -0.5, 1.5):
        with pytest.raises(TrainingError, match="--weight"):
            merge_models(a, b, tmp_path / "m2", weight=w)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "wide"]


def test_the_command_writes_the_model_and_refuses_bad_options(two_models, tmp_path):
    a, b = two_models

    def run(*argv):
        return subprocess.run(
            [sys.executable, "-m", "engine.cli", "train", "merge", *map(str, argv)],
            capture_output=True,
            text=True,
        )

    proc = run(a, b, "--out", tmp_path / "m", "--weight", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert f"model: {tmp_path / 'm'}" in proc.stdout
    for argv, needle in (
        ((a, b, "--out", tmp_path / "x", "--weight", "1"), "--weight must be more than 0"),
        ((a, b, "--out", tmp_path / "x", "--key-strength-scale", "0"), "--key-strength-scale"),
        ((a, "no-such-model", "--out", tmp_path / "x"), "no-such-model"),
    ):
        proc = run(*argv)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()
