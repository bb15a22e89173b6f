"""Autoregressive generation for decoder-only token models, layered the mlx-lm way.

``generate_step`` yields one `GenerationResponse` per sampled token; ``generate`` collects
the tokens.  Decoding with the cache runs a compiled single-token step over a fixed-capacity
`StaticKVCache`, so one traced graph serves every step of a capacity bucket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from engine.models.score import StaticKVCache
from engine.sample import Sampler, apply_mask, make_sampler

# Cache capacity grows in blocks of this many positions (each size is traced once).
CACHE_BLOCK = 256

AllowedFn = Callable[[list[int]], np.ndarray | None]


@dataclass
class GenerationResponse:
    token: int
    step: int
    tokens_per_second: float
    peak_memory_gb: float
    finish_reason: str | None


def generate_step(
    model: nn.Module,
    prompt: list[int],
    *,
    sampler: Sampler,
    max_tokens: int,
    seed: int,
    eos_id: int | None = None,
    allowed_fn: AllowedFn | None = None,
    use_cache: bool = True,
) -> Generator[GenerationResponse, None, None]:
    """Sample up to ``max_tokens`` tokens continuing ``prompt`` (batch size 1).

    Args:
        sampler: from `engine.sample.make_sampler`; step ``i`` gets the i-th key split from
            ``mx.random.key(seed)``, so a seed fixes the output exactly.
        eos_id: stop after yielding this token (finish_reason "stop").
        allowed_fn: called with every token so far (prompt + generated); returns a bool mask
            [V] of allowed next tokens (True = allowed), a float array [V] added to the
            logits (-inf = not allowed), or None for no constraint.
        use_cache: False recomputes the whole sequence each step (reference path).

    The last response has finish_reason "stop", "length" (``max_tokens`` reached) or
    "context" (the model's ``max_position_embeddings`` is full); the others have None.
    """
    context = model.args.max_position_embeddings
    if not prompt:
        raise ValueError("generate_step needs a non-empty prompt")
    if len(prompt) >= context:
        raise ValueError(f"Prompt of {len(prompt)} tokens leaves no room in a {context} context")
    if max_tokens <= 0:
        return
    tokens = list(prompt)
    keys = mx.random.split(mx.random.key(seed), num=max_tokens)
    forward = _cached_forward(model) if use_cache else _full_forward(model)

    tic = time.perf_counter()
    logits = forward(mx.array([prompt], dtype=mx.int32), len(prompt))
    step = 0

    def respond(token: int) -> GenerationResponse:
        if token == eos_id:
            reason = "stop"
        elif step + 1 == max_tokens:
            reason = "length"
        elif len(tokens) == context:
            reason = "context"
        else:
            reason = None
        return GenerationResponse(
            token=token,
            step=step,
            tokens_per_second=(step + 1) / (time.perf_counter() - tic),
            peak_memory_gb=mx.get_peak_memory() / 1e9,
            finish_reason=reason,
        )

    pending: list = []  # the constraint for the current position, when already asked
    while step < max_tokens:
        if allowed_fn is not None:
            allowed = pending.pop() if pending else allowed_fn(tokens)
            run = _forced_run(
                allowed_fn, tokens, allowed, max_tokens - step, context, eos_id, pending
            )
            if run:
                # Tokens the constraint forces need no sampling: feed them in one pass.
                if step + len(run) < max_tokens and len(tokens) + len(run) < context:
                    logits = forward(mx.array([run], dtype=mx.int32), len(tokens) + len(run))
                    mx.async_eval(logits)
                for token in run:
                    tokens.append(token)
                    r = respond(token)
                    yield r
                    if r.finish_reason is not None:
                        return
                    step += 1
                continue
            if allowed is not None:
                if allowed.dtype == np.bool_:
                    logits = apply_mask(logits, allowed[None])
                else:  # an additive bias; -inf marks disallowed tokens
                    logits = logits + mx.array(allowed, dtype=logits.dtype)[None]
        y = sampler(logits, keys[step])
        if step + 1 < max_tokens and len(tokens) + 1 < context:
            # Queue the next forward pass on the lazy token before waiting for it, so the
            # device computes while this thread yields (one wasted step if it is eos_id).
            logits = forward(y.reshape(1, 1), len(tokens) + 1)
            mx.async_eval(logits)
        token = y.item()
        tokens.append(token)
        r = respond(token)
        yield r
        if r.finish_reason is not None:
            return
        step += 1


def _only_token(allowed: np.ndarray | None) -> int | None:
    """The one token ``allowed`` permits (bool mask or additive bias), else None."""
    if allowed is None:
        return None
    ok = allowed if allowed.dtype == np.bool_ else np.isfinite(allowed)
    idx = np.flatnonzero(ok)
    return int(idx[0]) if len(idx) == 1 else None


def _forced_run(
    allowed_fn: AllowedFn,
    tokens: list[int],
    allowed: np.ndarray | None,
    budget: int,
    context: int,
    eos_id: int | None,
    pending: list,
) -> list[int]:
    """The tokens forced from here on (each the only one allowed), up to ``budget``.

    ``allowed_fn`` is asked once per position: the answer for the position after the run
    is left in ``pending``.
    """
    run: list[int] = []
    nxt = _only_token(allowed)
    while nxt is not None:
        run.append(nxt)
        if nxt == eos_id or len(run) == budget or len(tokens) + len(run) >= context:
            break
        following = allowed_fn(tokens + run)
        nxt = _only_token(following)
        if nxt is None:
            pending.append(following)
    return run


def generate(
    model: nn.Module,
    prompt: list[int],
    *,
    max_tokens: int,
    seed: int = 0,
    sampler: Sampler | None = None,
    **kwargs,
) -> list[int]:
    """The generated tokens (without the prompt; ending with ``eos_id`` if it was sampled).

    ``sampler`` defaults to plain sampling at temperature 1; other keyword arguments go to
    `generate_step`.
    """
    sampler = sampler or make_sampler()
    return [
        r.token
        for r in generate_step(
            model, prompt, sampler=sampler, max_tokens=max_tokens, seed=seed, **kwargs
        )
    ]


def _full_forward(model: nn.Module) -> Callable[[mx.array, int], mx.array]:
    """Recompute all positions each step: forward(new_tokens [1, L], total_len) -> [1, V]."""
    seq: list[mx.array] = []

    def forward(new_tokens: mx.array, total: int) -> mx.array:
        seq.append(new_tokens)
        return model(mx.concatenate(seq, axis=1))[:, -1]

    return forward


def _cached_forward(model: nn.Module) -> Callable[[mx.array, int], mx.array]:
    """Prefill eagerly, then run single tokens through a compiled step over a static cache.

    forward(new_tokens [1, L], total_len) -> logits [1, V] of the last position.
    """
    args = model.args
    H = args.num_attention_heads
    Dh = args.hidden_size // H
    dtype = model.model.embed_tokens.weight.dtype
    state: list[tuple[mx.array, mx.array]] = []

    def step(tokens: mx.array, offset: mx.array, kv: list[tuple[mx.array, mx.array]]):
        cache = [StaticKVCache(k, v, offset) for k, v in kv]
        logits = model(tokens, cache)[:, -1]
        return logits, [c.state for c in cache]

    compiled = mx.compile(step)

    def forward(new_tokens: mx.array, total: int) -> mx.array:
        nonlocal state
        L = new_tokens.shape[1]
        capacity = min(-(-total // CACHE_BLOCK) * CACHE_BLOCK, args.max_position_embeddings)
        if not state or state[0][0].shape[2] < capacity:
            grow = capacity - (state[0][0].shape[2] if state else 0)
            z = mx.zeros((1, H, grow, Dh), dtype)
            state = [(mx.concatenate([k, z], 2), mx.concatenate([v, z], 2)) for k, v in state]
            state = state or [(z, z) for _ in model.layers]
        offset = mx.array(total - L, dtype=mx.int32)
        logits, state = (compiled if L == 1 else step)(new_tokens, offset, state)
        return logits

    return forward
