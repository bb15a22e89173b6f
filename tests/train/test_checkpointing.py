"""Activation checkpointing (engine.models.checkpointing, ``--grad-checkpoint``): the same
gradients and the same trained weights as the plain model, LoRA dropout included, and the
blocks plain again afterwards. The memory it saves is measured in tests/bench/bench_train.py."""

import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map

from engine.models import checkpointing, lora
from engine.models.checkpointing import (
    KeyedDropout,
    checkpoint_blocks,
    is_checkpointed,
    set_dropout,
)
from engine.train.trainer import TokenTask, TrainConfig, loss_fn, train


def _lora_model(make_tiny_model, dropout: float):
    model = make_tiny_model(seed=1)
    mx.random.seed(2)
    cfg = lora.LoraConfig(rank=4, dropout=dropout, keys=lora.targets("all"))
    lora.apply(model, cfg)
    # adapters away from zero, so that every weight's gradient is non-zero
    model.update(tree_map(lambda p: 0.05 * mx.random.normal(p.shape), model.trainable_parameters()))
    mx.eval(model.parameters())
    return model


def _grads(model, seed: int = 5):
    mx.random.seed(seed)
    inputs = mx.random.randint(0, 37, (3, 24)).astype(mx.int32)
    lengths = mx.array([24, 20, 9], mx.int32)
    mx.random.seed(seed + 1)  # what dropout draws from
    model.train()
    (loss, _), g = nn.value_and_grad(model, loss_fn)(model, inputs, lengths)
    mx.eval(loss, g)
    return loss.item(), {k: np.array(v) for k, v in tree_flatten(g)}


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_gradients_are_bit_identical_to_the_plain_models(make_tiny_model, method):
    def model():
        return make_tiny_model(seed=1) if method == "full" else _lora_model(make_tiny_model, 0.0)

    loss0, plain = _grads(model())
    m = model()
    undo = checkpoint_blocks(m.layers)
    assert all(is_checkpointed(b) for b in m.layers)
    loss1, checked = _grads(m)
    assert loss0 == loss1
    assert any(np.abs(v).max() > 0 for v in plain.values())
    _same(plain, checked)
    undo()
    assert not any(is_checkpointed(b) for b in m.layers)


def test_lora_dropout_drops_the_same_units_when_the_block_is_recomputed(
    make_tiny_model, monkeypatch
):
    """The recomputation must see the forward pass's masks: the gradient with recomputation
    equals the gradient of the same keyed masks without it. Plain dropout (a fresh draw on
    recomputation) gives another gradient: the test can tell."""
    m = _lora_model(make_tiny_model, 0.3)
    undo = checkpoint_blocks(m.layers)
    assert all(
        isinstance(layer.dropout, KeyedDropout)
        for _, layer in m.named_modules()
        if hasattr(layer, "lora_a")
    )
    _, recomputed = _grads(m)
    with monkeypatch.context() as p:
        p.setattr(checkpointing.mx, "checkpoint", lambda f: f)  # keep activations instead
        _, kept = _grads(m)
    _same(recomputed, kept)
    undo()
    # undone: mlx-lm's own dropout is back, and the same draw no longer gives those masks
    assert all(
        type(layer.dropout) is nn.Dropout
        for _, layer in m.named_modules()
        if hasattr(layer, "lora_a")
    )
    _, plain = _grads(m)
    assert any(not np.array_equal(plain[k], kept[k]) for k in kept)


def test_parameter_names_do_not_change_and_switching_on_twice_is_harmless(make_tiny_model):
    m = _lora_model(make_tiny_model, 0.1)
    names = [k for k, _ in tree_flatten(m.parameters())]
    undo = checkpoint_blocks(m.layers)
    again = checkpoint_blocks(m.layers)  # already on: leaves them to the first
    assert [k for k, _ in tree_flatten(m.parameters())] == names
    again()
    assert all(is_checkpointed(b) for b in m.layers)
    undo()
    assert [k for k, _ in tree_flatten(m.parameters())] == names
    assert type(m.layers[0]).__name__ == "TransformerBlock"


def test_forward_passes_are_the_plain_models_in_training_and_with_a_cache(make_tiny_model):
    m = make_tiny_model(seed=4)
    x = mx.array([[1, 5, 7, 9, 2, 3]], mx.int32)
    m.eval()
    cached = np.array(m(x, cache=m.make_cache()))  # sampling and validation
    m.train()
    trained = np.array(m(x))
    undo = checkpoint_blocks(m.layers)
    np.testing.assert_array_equal(np.array(m(x)), trained)
    m.eval()
    np.testing.assert_array_equal(np.array(m(x, cache=m.make_cache())), cached)
    undo()


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_a_run_with_checkpointing_ends_with_the_same_weights(make_tiny_model, tmp_path, dropout):
    """The trainer's ``grad_checkpoint``: the same weights after steps of AdamW (dropout 0),
    or a run as deterministic as the plain one (dropout 0.2: the masks come from other
    draws, so the weights differ from the plain run's but are the same on every run)."""

    def batches():
        rng = np.random.default_rng(0)
        while True:
            yield (
                rng.integers(0, 37, (2, 16)).astype(np.int32),
                np.array([16, 12], np.int32),
            )

    def run(folder, checkpoint: bool):
        m = _lora_model(make_tiny_model, dropout)
        cfg = TrainConfig(
            learning_rate=1e-2,
            warmup_steps=0,
            max_steps=5,
            eval_every=5,
            checkpoint_every=5,
            report_every=1,
            grad_checkpoint=checkpoint,
        )
        it = batches()
        val = [(mx.array(b[0]), mx.array(b[1]), ["v"] * 2) for b in [next(batches())]]
        train(m, cfg, it, lambda: iter(val), tmp_path / folder, task=TokenTask())
        assert not any(is_checkpointed(b) for b in m.layers)  # plain again after the run
        return {k: np.array(v) for k, v in tree_flatten(m.trainable_parameters())}

    checked = run("a", True)
    _same(checked, run("b", True))
    if dropout == 0:
        _same(checked, run("c", False))


def test_residual_dropout_trains_only_and_is_put_back(make_tiny_model):
    m = make_tiny_model(seed=4)
    x = mx.array([[1, 5, 7, 9, 2, 3, 4, 8]], mx.int32)
    m.train()
    plain = np.array(m(x))
    m.eval()
    evaluated = np.array(m(x))
    rates = set_dropout(m.layers, 0.5)
    m.train()
    assert not np.array_equal(np.array(m(x)), plain)  # units dropped while training
    m.eval()
    np.testing.assert_array_equal(np.array(m(x)), evaluated)  # validation: none
    rates()
    m.train()
    np.testing.assert_array_equal(np.array(m(x)), plain)
    with pytest.raises(ValueError, match="dropout must be in"):
        set_dropout(m.layers, 1.0)


def test_residual_dropout_with_checkpointing_recomputes_the_same_masks(
    make_tiny_model, monkeypatch
):
    m = make_tiny_model(seed=1)
    rates = set_dropout(m.layers, 0.3)
    undo = checkpoint_blocks(m.layers)
    assert all(isinstance(b.dropout, KeyedDropout) for b in m.layers)
    _, recomputed = _grads(m)
    with monkeypatch.context() as p:
        p.setattr(checkpointing.mx, "checkpoint", lambda f: f)
        _, kept = _grads(m)
    _same(recomputed, kept)
    undo()
    rates()
    assert all(type(b.dropout) is nn.Dropout and b.dropout._p_1 == 1 for b in m.layers)


def test_a_run_with_residual_dropout_is_repeatable_and_leaves_the_model_as_it_was(
    make_tiny_model, tmp_path
):
    def run(folder, dropout):
        m = make_tiny_model(seed=1)
        cfg = TrainConfig(
            learning_rate=1e-2,
            warmup_steps=0,
            max_steps=4,
            eval_every=4,
            checkpoint_every=4,
            dropout=dropout,
        )
        rng = np.random.default_rng(0)
        batches = iter(
            lambda: (rng.integers(0, 37, (2, 16)).astype(np.int32), np.array([16, 12], np.int32)),
            None,
        )
        val = [(mx.array(np.ones((1, 8), np.int32)), mx.array([8], mx.int32), ["v"])]
        train(m, cfg, batches, lambda: iter(val), tmp_path / folder, task=TokenTask())
        assert all(b.dropout._p_1 == 1 for b in m.layers)  # no dropout after the run
        return {k: np.array(v) for k, v in tree_flatten(m.parameters())}

    a, b, none = run("a", 0.2), run("b", 0.2), run("c", 0.0)
    _same(a, b)
    assert any(not np.array_equal(a[k], none[k]) for k in a)
