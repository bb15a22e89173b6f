"""Token samplers: a factory builds one function per setting, so the decode loop has no ifs.

A sampler maps logits [B, V] and a PRNG key to tokens [B] (int32).  Randomness comes only
from the explicit key, so the same key always gives the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import numpy as np

Sampler = Callable[[mx.array, mx.array], mx.array]


class TokenSampler:
    """A sampler of one setting: ``sampler(logits [1, V], key) -> token [1]`` (int32), and
    ``sampler.rows(logits [N, V], keys [N, 2]) -> tokens [N]`` for N sequences at once.

    Row ``i`` of ``rows`` is the token that calling the sampler on ``logits[i:i+1]`` with
    ``keys[i]`` gives, bit for bit: for one row MLX's ``categorical`` draws by an inverse CDF
    (an exclusive cumulative sum of ``exp(x - max)`` searched at ``uniform(key) * sum``), and
    ``rows`` does that same computation row by row, with each row's uniform number from its
    own key (``mx.vmap`` over the keys). So a batch of variations decodes what its rows drew
    one at a time, in one computation instead of one per row. ``settings`` (temperature,
    top_k, top_p) tells samplers of the same setting apart from others.
    """

    def __init__(self, temperature: float, top_k: int, top_p: float):
        self.settings = (float(temperature), int(top_k), float(top_p))
        self._one, self._rows = _compiled(*self.settings)

    def __call__(self, logits: mx.array, key: mx.array | None = None) -> mx.array:
        return self._one(logits, key)

    def rows(self, logits: mx.array, keys: mx.array) -> mx.array:
        return self._rows(logits, keys)


def make_sampler(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> TokenSampler:
    """Build ``sampler(logits [B, V], key) -> tokens [B]`` (a `TokenSampler`).

    Args:
        temperature: 0 picks the argmax (the key is ignored); otherwise logits are divided by it.
        top_k: keep exactly the ``top_k`` highest logits (ties broken arbitrarily but never
            widened); 0 keeps all.
        top_p: nucleus sampling, keep the smallest set of tokens whose probability mass is at
            least ``top_p`` (always at least one token); 1.0 keeps all.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    return TokenSampler(temperature, top_k, top_p)


def _compiled(temperature: float, top_k: int, top_p: float) -> tuple[Sampler, Sampler]:
    """The compiled draw of one setting, for one row and for rows."""
    if temperature == 0:

        def greedy(logits: mx.array, key: mx.array | None = None) -> mx.array:
            return mx.argmax(logits, axis=-1).astype(mx.int32)

        return greedy, greedy

    def shaped(logits: mx.array) -> mx.array:
        logits = logits.astype(mx.float32) * (1.0 / temperature)
        if 0 < top_k < logits.shape[-1]:
            logits = _top_k(logits, top_k)
        if top_p < 1.0:
            logits = _top_p(logits, top_p)
        return logits

    def sample(logits: mx.array, key: mx.array) -> mx.array:
        return mx.random.categorical(shaped(logits), axis=-1, key=key).astype(mx.int32)

    def rows(logits: mx.array, keys: mx.array) -> mx.array:
        x = shaped(logits)
        top = mx.max(x, axis=-1, keepdims=True)
        # As MLX's categorical for one row: where the maximum is infinite, uniform over it.
        w = mx.where(mx.isinf(top), (x == top).astype(mx.float32), mx.exp(x - top))
        cdf = mx.cumsum(w, axis=-1, inclusive=False)
        u = _uniform_per_key(keys) * mx.sum(w, axis=-1, keepdims=True)
        # searchsorted(cdf, u, "right") - 1: cdf does not decrease, so count what is <= u.
        return (mx.sum(cdf <= u, axis=-1) - 1).astype(mx.int32)

    return mx.compile(sample), mx.compile(rows)


_uniform_per_key = mx.vmap(lambda key: mx.random.uniform(shape=(1,), key=key))


def _top_k(logits: mx.array, k: int) -> mx.array:
    # Positions, not a value threshold: with ties a threshold would keep more than k.
    drop = mx.argpartition(-logits, kth=k - 1, axis=-1)[..., k:]
    return mx.put_along_axis(logits, drop, mx.array(-mx.inf, logits.dtype), axis=-1)


def _top_p(logits: mx.array, p: float) -> mx.array:
    order = mx.argsort(-logits, axis=-1)
    probs = mx.take_along_axis(mx.softmax(logits, axis=-1), order, axis=-1)
    # Keep a token if the mass strictly before it is < p; the first token always qualifies.
    keep_sorted = (mx.cumsum(probs, axis=-1) - probs) < p
    keep = mx.put_along_axis(mx.zeros(logits.shape, mx.bool_), order, keep_sorted, axis=-1)
    return mx.where(keep, logits, -mx.inf)


def apply_mask(logits: mx.array, allowed: mx.array | np.ndarray) -> mx.array:
    """Set logits [B, V] to -inf where ``allowed`` (bool [B, V] or [V]) is False.

    Raises ValueError if some row allows no token at all (nothing could be sampled).
    """
    if isinstance(allowed, np.ndarray):
        rows_ok = allowed.reshape(-1, allowed.shape[-1]).any(axis=-1)
        allowed = mx.array(allowed)
    else:
        rows_ok = np.array(mx.any(allowed.reshape(-1, allowed.shape[-1]), axis=-1))
    if not rows_ok.all():
        bad = np.flatnonzero(~rows_ok).tolist()
        raise ValueError(f"The token mask allows no token at all (rows {bad}); cannot sample.")
    return mx.where(allowed, logits, mx.array(-mx.inf, logits.dtype))
