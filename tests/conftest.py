"""Shared fixtures: a small real corpus (music21 files) and tiny score models."""

from __future__ import annotations

import os
import tempfile
import warnings

import pytest

import engine  # noqa: F401  (loads OpenBLAS before mlx)

# Converted models and the registry of temporary outputs (engine.record) go to a folder of
# the test run, never to the user's own (subprocesses inherit it).
os.environ["DISCO_MUSICA_HOME"] = tempfile.mkdtemp(prefix="disco-musica-tests-")
# Audio renders with the shipped TimGM6mb whatever else this machine has installed (CI installs
# FluidR3_GM, which would otherwise be the default), so results do not depend on the machine;
# tests/audio/test_soundfonts.py unsets it to check the real choice.
os.environ["DISCO_MUSICA_SOUNDFONT"] = "TimGM6mb"

# Real public-domain pieces from music21's corpus, at least one per style.
SMALL_CORPUS = [
    "bach/bwv66.6.mxl",
    "bach/bwv10.7.mxl",
    "bach/bwv1.6.mxl",
    "bach/bwv101.7.mxl",
    "bach/bwv102.7.mxl",
    "bach/bwv103.6.mxl",
    "palestrina/Agnus_01.krn",
    "palestrina/Agnus_02.krn",
    "monteverdi/madrigal.3.1.mxl",
    "ciconia/quod_jactatur.xml",
    "luca/gloria.xml",
    "ryansMammoth/7thRegimentReel.abc",
    "ryansMammoth/42dHighlandRegimentStrathspey.abc",
    "essenFolksong/testd.abc",
    "essenFolksong/teste.abc",
    "schumann_clara/polonaise_op1n1.mxl",
]


@pytest.fixture(scope="session", autouse=True)
def _quiet_music21():
    warnings.filterwarnings("ignore", module="music21")


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    from engine.data.corpus import build_corpus

    out = tmp_path_factory.mktemp("corpus") / "music21"
    build_corpus(out, paths=SMALL_CORPUS, workers=2)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(small_corpus, tmp_path_factory):
    """A tiny score model trained for a few steps on the small corpus (a model folder)."""
    from engine.train.score import train_score

    out = tmp_path_factory.mktemp("train")
    train_score(small_corpus, out, preset="tiny", quiet=True)
    return out / "model"


# -- Shared builders -----------------------------------------------------------------------------
# Tests get these through the fixtures below, never by importing a test module (or this one):
# tests/test_test_layout.py checks. Heavy imports (torch, transformers, mlx models) stay inside
# the builders, so collecting the tests stays fast.

TINY_MODEL_ARGS = dict(
    vocab_size=37,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
)


def _make_tiny_model(seed: int = 0, **overrides):
    """A tiny random score model (2 layers, width 32) built from config alone."""
    import mlx.core as mx

    from engine.models.score import Model, ModelArgs

    mx.random.seed(seed)
    model = Model(ModelArgs(**{**TINY_MODEL_ARGS, **overrides}))
    mx.eval(model.parameters())
    return model


@pytest.fixture(scope="session")
def make_tiny_model():
    """``make_tiny_model(seed=0, **overrides)``: a tiny random score model (width 32)."""
    return _make_tiny_model


@pytest.fixture
def tiny_model_args():
    """The tiny score model's ``ModelArgs`` keywords (a fresh copy for each test)."""
    return dict(TINY_MODEL_ARGS)
