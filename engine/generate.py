"""Autoregressive generation for decoder-only token models, layered the mlx-lm way.

``generate_step`` yields one `GenerationResponse` per sampled token; ``generate`` collects
the tokens.  Decoding with the cache runs a compiled single-token step over a fixed-capacity
`StaticKVCache`, so one traced graph serves every step of a capacity bucket.

The model is reached through a `Decoder` (feed tokens, sample the next one). `LocalDecoder`
decodes one sequence; `BatchDecoder` decodes several sequences, each written by its own
greenlet running the unchanged pipeline, with one compiled step for all of them: the
variations of a piece are written together (`BatchDecoder.run`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from engine.models.cache import BatchKVCache, RowKVCache, StaticKVCache
from engine.names import MAX_BATCH_ROWS  # noqa: F401  (the most rows of a BatchDecoder)
from engine.sample import Sampler, apply_mask, make_sampler

# Cache capacity grows in blocks of this many positions (each size is traced once).
CACHE_BLOCK = 256
# Tokens per row of one batched step, padded up to one of these (each traced once); longer
# forced runs and prompts run on their row alone.
STEP_TOKENS = (1, 2, 4, 8)

AllowedFn = Callable[[list[int]], np.ndarray | None]
T = TypeVar("T")


@dataclass
class GenerationResponse:
    token: int
    step: int
    tokens_per_second: float
    peak_memory_gb: float
    finish_reason: str | None


class Decoder(Protocol):
    """What `generate_step` asks of a model: one sequence, fed and sampled in turn."""

    def start(self, prompt: list[int], *, seed: int, max_tokens: int, sampler: Sampler) -> None:
        """Begin a new sequence: prefill ``prompt``; step i samples with key i of ``seed``."""

    def feed(self, tokens: list[int], total: int, need_logits: bool) -> None:
        """Append forced ``tokens`` (the sequence is then ``total`` long); the logits after
        them are computed only when ``need_logits``."""

    def sample(self, allowed: np.ndarray | None, step: int, total: int, feed: bool) -> int:
        """Sample the next token under ``allowed`` (bool mask or additive bias [V]) with
        key ``step``; with ``feed`` it is appended (the sequence is then ``total`` + 1)."""


class LocalDecoder:
    """One sequence at batch size 1, in the calling thread."""

    def __init__(self, model: nn.Module, use_cache: bool = True):
        self.forward = _cached_forward(model) if use_cache else _full_forward(model)

    def start(self, prompt: list[int], *, seed: int, max_tokens: int, sampler: Sampler) -> None:
        self.sampler = sampler
        self.keys = mx.random.split(mx.random.key(seed), num=max_tokens)
        self.logits = self.forward(mx.array([prompt], dtype=mx.int32), len(prompt))

    def feed(self, tokens: list[int], total: int, need_logits: bool) -> None:
        if need_logits:
            self.logits = self.forward(mx.array([tokens], dtype=mx.int32), total)
            mx.async_eval(self.logits)

    def sample(self, allowed: np.ndarray | None, step: int, total: int, feed: bool) -> int:
        y = self.sampler(_constrained(self.logits, allowed), self.keys[step])
        if feed:
            # Queue the next forward pass on the lazy token before waiting for it, so the
            # device computes while this thread yields (one wasted step if it is eos_id).
            self.logits = self.forward(y.reshape(1, 1), total + 1)
            mx.async_eval(self.logits)
        return y.item()


def _constrained(logits: mx.array, allowed: np.ndarray | None) -> mx.array:
    if allowed is None:
        return logits
    if allowed.dtype == np.bool_:
        return apply_mask(logits, allowed[None])
    return logits + mx.array(allowed, dtype=logits.dtype)[None]  # -inf marks disallowed


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
    decoder: Decoder | None = None,
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
        decoder: where the model runs (default a `LocalDecoder` of ``model``); a row of a
            `BatchDecoder` writes this sequence together with others.

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
    dec = decoder if decoder is not None else LocalDecoder(model, use_cache)

    tic = time.perf_counter()
    dec.start(prompt, seed=seed, max_tokens=max_tokens, sampler=sampler)
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
        allowed = None
        if allowed_fn is not None:
            allowed = pending.pop() if pending else allowed_fn(tokens)
            run = _forced_run(
                allowed_fn, tokens, allowed, max_tokens - step, context, eos_id, pending
            )
            if run:
                # Tokens the constraint forces need no sampling: feed them in one pass.
                more = step + len(run) < max_tokens and len(tokens) + len(run) < context
                dec.feed(run, len(tokens) + len(run), need_logits=more)
                for token in run:
                    tokens.append(token)
                    r = respond(token)
                    yield r
                    if r.finish_reason is not None:
                        return
                    step += 1
                continue
        more = step + 1 < max_tokens and len(tokens) + 1 < context
        token = dec.sample(allowed, step, len(tokens), feed=more)
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


# ---- several sequences at once ---------------------------------------------------------------
class Cancelled(Exception):
    """The batch was stopped (Ctrl-C, or a row's interruption): raised in every other row."""


@dataclass
class _Request:
    kind: str  # "start" | "feed" | "sample"
    args: tuple
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Done:
    result: Any = None
    error: BaseException | None = None


class BatchRow:
    """One row of a `BatchDecoder`: the `Decoder` of the job that writes that sequence."""

    def __init__(self, batch: BatchDecoder, row: int):
        self.batch, self.row = batch, row

    def start(self, prompt: list[int], *, seed: int, max_tokens: int, sampler: Sampler) -> None:
        self._ask(_Request("start", (list(prompt), seed, max_tokens, sampler)))

    def feed(self, tokens: list[int], total: int, need_logits: bool) -> None:
        self._ask(_Request("feed", (list(tokens), need_logits)))

    def sample(self, allowed: np.ndarray | None, step: int, total: int, feed: bool) -> int:
        return self._ask(_Request("sample", (allowed, step, feed)))

    def _ask(self, req: _Request):
        """Hand the request to the batch and wait for the round that answers it."""
        return self.batch._hub.switch(req)


class BatchDecoder:
    """Writes several sequences together: one compiled step samples a token for each.

    Each sequence is written by its own job, which runs the unchanged pipeline (grammar,
    steering, sections) with a `BatchRow` as its decoder, in a greenlet of the calling
    thread: a row's request (a prompt to prefill, forced tokens to feed, or a token to
    sample) switches back to `run`, which answers round k once every job still working has
    made its k-th request. No threads, no locks; the rounds are the same on every run. The
    tokens of a round (each row's sampled token, or its forced run of up to
    `STEP_TOKENS[-1]`, padded to a length of `STEP_TOKENS`) go through one compiled step over
    a [rows, H, S, Dh] cache with positions per row (`BatchKVCache`); prompts and longer
    forced runs run on their row alone (`RowKVCache`). The capacity S grows in
    `CACHE_BLOCK`s with the longest row.

    A batch is deterministic: the same jobs in the same rows give the same tokens. A row is
    not bit-identical to decoding the same sequence alone: the matrix products of a batch
    (and of a larger capacity) round differently (about 1e-6 on the logits), which can
    change a draw. So a piece written in a batch is made again by rerunning its batch.
    """

    def __init__(self, model: nn.Module, rows: int):
        if not 1 <= rows <= MAX_BATCH_ROWS:
            raise ValueError(f"rows must be 1..{MAX_BATCH_ROWS}, got {rows}")
        args = model.args
        self.model, self.rows, self.context = model, rows, args.max_position_embeddings
        self.heads = args.num_attention_heads
        self.head_dim = args.hidden_size // self.heads
        self.dtype = model.model.embed_tokens.weight.dtype
        self.state: list[tuple[mx.array, mx.array]] = []
        self.capacity = 0
        self.offsets = [0] * rows  # each row's next position
        self.logits: list[mx.array | None] = [None] * rows
        self.keys: list[mx.array | None] = [None] * rows
        self.samplers: list[Sampler | None] = [None] * rows
        self._hub = None  # the greenlet that runs the batch

        def batch_step(tokens, offsets, last, kv: list[tuple[mx.array, mx.array]]):
            """tokens [N, L], offsets [N], last [N] (each row's last real token) -> logits
            [N, V] after each row's last token, and the new cache."""
            cache = [BatchKVCache(k, v, offsets) for k, v in kv]
            logits = model(tokens, cache)
            logits = mx.take_along_axis(logits, last[:, None, None], axis=1)[:, 0]
            return logits, [c.state for c in cache]

        self._batch_step = mx.compile(batch_step)

    def run(self, jobs: Sequence[Callable[[BatchRow], T]]) -> list[T]:
        """Run ``jobs`` (functions of their `BatchRow`, one per row) together; return their
        results in order.

        The first error of a job (by row) is raised once every job has ended; an interrupt
        (Ctrl-C) stops every row (`Cancelled` is raised in the others) and is raised here.
        """
        from greenlet import getcurrent, greenlet

        if len(jobs) != self.rows:
            raise ValueError(f"{len(jobs)} jobs for a batch of {self.rows} rows")
        self._hub = getcurrent()

        def work(job: Callable[[BatchRow], T], row: int) -> _Done:
            try:
                return _Done(result=job(BatchRow(self, row)))
            except BaseException as e:  # handed to run
                return _Done(error=e)

        rows = [greenlet(work) for _ in jobs]
        done: dict[int, _Done] = {}
        pending: dict[int, _Request] = {}

        def resume(row: int, *value, error: BaseException | None = None) -> None:
            """Go on with a row until its next request (or its end)."""
            out = rows[row].throw(error) if error is not None else rows[row].switch(*value)
            if isinstance(out, _Done):
                done[row] = out
                if isinstance(out.error, (KeyboardInterrupt, SystemExit)):
                    raise out.error
            else:
                pending[row] = out

        try:
            for row, job in enumerate(jobs):
                resume(row, job, row)
            while pending:
                round_, pending = pending, {}
                self._answer(round_)
                for row, req in sorted(round_.items()):
                    resume(row, req.result, error=req.error)
        except BaseException:
            for g in rows:  # let every other job unwind (its finally clauses run)
                if g and not g.dead:
                    g.throw(Cancelled())
            raise
        errors = {r: d.error for r, d in done.items() if d.error is not None}
        if errors:
            raise errors[min(errors)]
        return [done[row].result for row in range(self.rows)]

    def _answer(self, round_: dict[int, _Request]) -> None:
        """One round: prompts (and forced runs longer than `STEP_TOKENS[-1]`) on their rows,
        then one batched step for every other token of the round."""
        self._reserve(round_)
        fed: dict[int, mx.array] = {}  # row -> its tokens [L] for the batched step
        sampled: dict[int, mx.array] = {}
        draws: dict[object, list[tuple[int, mx.array, mx.array, bool]]] = {}
        for row, req in sorted(round_.items()):
            try:
                if req.kind == "start":
                    prompt, seed, max_tokens, sampler = req.args
                    self.samplers[row] = sampler
                    self.keys[row] = mx.random.split(mx.random.key(seed), num=max_tokens)
                    self.offsets[row] = 0
                    self._row_forward(row, prompt)
                elif req.kind == "feed":
                    tokens, need_logits = req.args
                    if need_logits and len(tokens) <= STEP_TOKENS[-1]:
                        fed[row] = mx.array(tokens, dtype=mx.int32)
                    elif need_logits:
                        self._row_forward(row, tokens)
                else:
                    allowed, step, feed = req.args
                    logits = _constrained(self.logits[row], allowed)
                    sampler = self.samplers[row]
                    setting = getattr(sampler, "settings", None)
                    if setting is None:  # a sampler of the caller's own: its row alone
                        sampled[row] = sampler(logits, self.keys[row][step])
                        if feed:
                            fed[row] = sampled[row]
                    else:
                        draws.setdefault(setting, []).append(
                            (row, logits, self.keys[row][step], feed)
                        )
            except Exception as e:  # this row's request failed (e.g. a mask allowing nothing)
                req.error = e
                fed.pop(row, None)
                sampled.pop(row, None)
        for group in draws.values():  # the rows of one setting draw together (bit-identical)
            rows, logits, keys, feeds = zip(*group, strict=True)
            sampler = self.samplers[rows[0]]
            ys = sampler.rows(mx.concatenate(logits), mx.stack(keys))
            for i, (row, feed) in enumerate(zip(rows, feeds, strict=True)):
                sampled[row] = ys[i : i + 1]
                if feed:
                    fed[row] = sampled[row]
        if fed:
            L = next(n for n in STEP_TOKENS if n >= max(t.size for t in fed.values()))
            # Rows with fewer tokens (or none) pad after their last one, where their next
            # step writes before any of their queries can see it.
            tokens = mx.stack(
                [
                    mx.pad(fed[r], (0, L - fed[r].size)) if r in fed else mx.zeros(L, mx.int32)
                    for r in range(self.rows)
                ]
            )
            if max(self.offsets) + L > self.capacity:  # MLX does not check: guard it
                raise RuntimeError(f"a row would write past the cache ({self.capacity} slots)")
            offsets = mx.array(self.offsets, dtype=mx.int32)
            last = mx.array([fed[r].size - 1 if r in fed else 0 for r in range(self.rows)])
            logits, self.state = self._batch_step(tokens, offsets, last, self.state)
            for row, t in fed.items():
                self.logits[row] = logits[row : row + 1]
                self.offsets[row] += t.size
            mx.async_eval(logits, self.state)
        if sampled:  # one wait for all the drawn tokens
            drawn = np.array(mx.concatenate(list(sampled.values()))).tolist()
            for row, token in zip(sampled, drawn, strict=True):
                round_[row].result = token

    def _reserve(self, round_: dict[int, _Request]) -> None:
        """Grow the cache (all rows, in `CACHE_BLOCK`s) to hold what this round writes,
        padding included (up to `STEP_TOKENS[-1]` slots past the window)."""
        ends = []  # each row's position before the batched step
        for r, offset in enumerate(self.offsets):
            req = round_.get(r)
            if req is not None and req.kind == "start":
                offset = len(req.args[0])
            elif req is not None and req.kind == "feed" and len(req.args[0]) > STEP_TOKENS[-1]:
                offset += len(req.args[0])  # a long forced run, fed on its row alone
            ends.append(offset)
        need = max(ends) + STEP_TOKENS[-1]
        capacity = min(-(-need // CACHE_BLOCK) * CACHE_BLOCK, self.context + STEP_TOKENS[-1])
        if capacity <= self.capacity:
            return
        z = mx.zeros((self.rows, self.heads, capacity - self.capacity, self.head_dim), self.dtype)
        self.state = [(mx.concatenate([k, z], 2), mx.concatenate([v, z], 2)) for k, v in self.state]
        self.state = self.state or [(z, z) for _ in self.model.layers]
        self.capacity = capacity

    def _row_forward(self, row: int, tokens: list[int]) -> None:
        """Feed ``tokens`` to one row at batch size 1 (a prompt or a forced run)."""
        if self.offsets[row] + len(tokens) > self.capacity:  # MLX does not check: guard it
            raise RuntimeError(f"row {row} would write past the cache ({self.capacity} slots)")
        cache = [RowKVCache(k, v, row, self.offsets[row]) for k, v in self.state]
        self.logits[row] = self.model(mx.array([tokens], dtype=mx.int32), cache)[:, -1]
        self.state = [c.state for c in cache]
        self.offsets[row] += len(tokens)
