"""Activation checkpointing for training: a block keeps only its input for the backward pass
and recomputes its activations there (`mlx.core.checkpoint`), trading about a third more time
per step for the memory of every block's activations but one.

`checkpoint_blocks(model.layers)` switches it on for those blocks, in place, and returns the
function that switches it off. Nothing else changes: parameter names, saving and loading are
those of the plain blocks, and the gradients are bit-identical to the plain model's.

Dropout inside a block (LoRA's, and the residual dropout of `set_dropout`) would draw a new
mask when the block is recomputed, and the gradient would belong to another mask. So each
checkpointed block draws one key per call from the global random state and its dropouts draw
their masks from that key: the forward pass and its recomputation drop the same units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import mlx.core as mx
import mlx.nn as nn


class KeyedDropout(nn.Module):
    """`mlx.nn.Dropout` whose mask comes from the key its block set for this call."""

    def __init__(self, p: float):
        super().__init__()
        self._p_1 = 1 - p
        object.__setattr__(self, "_key", None)

    def __call__(self, x: mx.array) -> mx.array:
        if self._p_1 == 1 or not self.training:
            return x
        mask = mx.random.bernoulli(self._p_1, x.shape, key=self._key)
        return (mask * x) * (1 / self._p_1)


def _is_arrays(a) -> bool:
    return isinstance(a, mx.array) or (
        isinstance(a, tuple | list) and bool(a) and all(isinstance(t, mx.array) for t in a)
    )


@cache
def _checkpointed(cls: type) -> type:
    """A subclass of ``cls`` whose call recomputes in the backward pass."""
    plain_call = cls.__call__

    def __call__(self, x, *args):
        if not self.training:  # validation and sampling: nothing to recompute
            return plain_call(self, x, *args)
        dropouts = [m for _, m in self.named_modules() if isinstance(m, KeyedDropout)]
        if dropouts:
            key = mx.random.randint(0, 2**31 - 1, (2,)).astype(mx.uint32)
            for d, k in zip(dropouts, mx.random.split(key, len(dropouts)), strict=True):
                object.__setattr__(d, "_key", k)
        # arrays travel as inputs of the checkpoint (gradients reach them: e.g. MusicGen's
        # cross-attention keys and values); the rest (batch size, "causal", None) is fixed
        at = [i for i, a in enumerate(args) if _is_arrays(a)]

        def inner(params, x, *passed):
            self.update(params)
            full = list(args)
            for i, a in zip(at, passed, strict=True):
                full[i] = a
            return plain_call(self, x, *full)

        return mx.checkpoint(inner)(self.trainable_parameters(), x, *(args[i] for i in at))

    return type(f"Checkpointed{cls.__name__}", (cls,), {"__call__": __call__, "_plain": cls})


def checkpoint_blocks(blocks: Sequence[nn.Module]) -> Callable[[], None]:
    """Make each of ``blocks`` recompute its activations in the backward pass (in place);
    return the function that makes them plain again. Blocks already checkpointed are left
    as they are (and to whoever switched them on)."""
    changed: list[tuple[nn.Module, type, list[tuple[nn.Module, str, nn.Module]]]] = []
    for block in blocks:
        if is_checkpointed(block):
            continue
        cls = type(block)
        swapped = []
        for _, module in block.named_modules():
            for name, child in list(module.children().items()):
                if isinstance(child, nn.Dropout) and not isinstance(child, KeyedDropout):
                    keyed = KeyedDropout(1 - child._p_1)
                    keyed.train(child.training)
                    setattr(module, name, keyed)
                    swapped.append((module, name, child))
        block.__class__ = _checkpointed(cls)
        changed.append((block, cls, swapped))

    def undo() -> None:
        for block, cls, swapped in changed:
            block.__class__ = cls
            for module, name, child in swapped:
                child.train(module[name].training)
                setattr(module, name, child)

    return undo


def set_dropout(blocks: Sequence[nn.Module], p: float) -> Callable[[], None]:
    """Give each block's residual dropout (its ``dropout`` child) the rate ``p`` for a run;
    return the function that puts the rates back. A block without one is a `ValueError`."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout must be in [0, 1), not {p}")
    old = []
    for block in blocks:
        before = block.get("dropout") if isinstance(block, dict) else None
        if not isinstance(before, nn.Dropout | KeyedDropout):
            raise ValueError(f"{type(block).__name__} has no dropout to set")
        new = (KeyedDropout if isinstance(before, KeyedDropout) else nn.Dropout)(p)
        new.train(before.training)
        block.dropout = new
        old.append((block, before))

    def undo() -> None:
        for block, before in old:
            before.train(block.dropout.training)
            block.dropout = before

    return undo


def is_checkpointed(block: nn.Module) -> bool:
    return "_plain" in type(block).__dict__
