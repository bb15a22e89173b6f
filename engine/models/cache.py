"""Key/value caches of the models' self-attention, all in one place.

- `KVCache`: grows in blocks along the time axis (eager decoding, MusicGen's decoder).
- `StaticKVCache`: fixed capacity, array ``offset``, for compiled single-sequence decoding.
- `BatchKVCache`: fixed capacity, one position per row, for batched decoding.
- `RowKVCache`: one row of a `BatchKVCache`'s buffers taking several tokens at once.
- `DecoderCache`: MusicGen's per-generation decoder state (a `KVCache` per layer and the
  cross-attention keys/values).

Every cache takes keys/values [B, H, L, Dh] in ``update_and_fetch`` and returns the keys and
values attention should read.
"""

from __future__ import annotations

import mlx.core as mx


class KVCache:
    """Per-layer key/value cache, grown in ``step``-sized blocks along the time axis."""

    step = 256

    def __init__(self):
        self.keys: mx.array | None = None
        self.values: mx.array | None = None
        self.offset = 0

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        """Append ``keys``/``values`` [B, H, L, Dh]; return everything cached so far."""
        prev = self.offset
        L = keys.shape[2]
        if self.keys is None or prev + L > self.keys.shape[2]:
            B, H, _, Dh = keys.shape
            n = ((prev + L + self.step - 1) // self.step) * self.step
            new_k = mx.zeros((B, H, n - prev, Dh), keys.dtype)
            new_v = mx.zeros((B, H, n - prev, Dh), values.dtype)
            if self.keys is not None:
                self.keys = mx.concatenate([self.keys[..., :prev, :], new_k], axis=2)
                self.values = mx.concatenate([self.values[..., :prev, :], new_v], axis=2)
            else:
                self.keys, self.values = new_k, new_v
        self.offset += L
        self.keys[..., prev : self.offset, :] = keys
        self.values[..., prev : self.offset, :] = values
        return self.keys[..., : self.offset, :], self.values[..., : self.offset, :]

    def make_mask(self, L: int) -> str | None:
        # "causal" aligns the L new queries with the last L keys.
        return "causal" if L > 1 else None

    @property
    def state(self) -> tuple[mx.array, mx.array]:
        return self.keys, self.values


class StaticKVCache:
    """Fixed-capacity cache for compiled decoding: shapes never change, ``offset`` is an array.

    ``keys``/``values`` are [B, H, S, Dh] buffers; attention runs over all S slots with a mask
    hiding the unwritten ones, so one traced graph serves every step.
    """

    def __init__(self, keys: mx.array, values: mx.array, offset: mx.array):
        self.keys, self.values, self.offset = keys, values, offset

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        start = mx.reshape(self.offset, (1,))
        self.keys = mx.slice_update(self.keys, keys, start, axes=(2,))
        self.values = mx.slice_update(self.values, values, start, axes=(2,))
        return self.keys, self.values

    def make_mask(self, L: int) -> mx.array:
        """Additive [L, S]: query i (at position offset + i) sees keys at positions <= its own."""
        q_pos = self.offset + mx.arange(L)[:, None]
        return mx.where(mx.arange(self.keys.shape[2])[None] <= q_pos, 0.0, -mx.inf)

    @property
    def state(self) -> tuple[mx.array, mx.array]:
        return self.keys, self.values


class BatchKVCache:
    """Fixed-capacity cache of N sequences, each taking L new tokens per step at its own
    position.

    ``keys``/``values`` are [N, H, S, Dh] buffers and ``offset`` [N] int32 holds each row's
    position: row i writes its L tokens' keys/values at ``offset[i]`` .. ``offset[i] + L - 1``
    and its query j attends to the slots up to ``offset[i] + j``. A row that has fewer than L
    tokens pads them: the padding lands after its last token, where its next step writes
    before any of its queries can see it. The caller keeps ``offset[i] + L <= S``.
    """

    def __init__(self, keys: mx.array, values: mx.array, offset: mx.array):
        self.keys, self.values, self.offset = keys, values, offset

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        """Write ``keys``/``values`` [N, H, L, Dh] at each row's positions; return the buffers."""
        L = keys.shape[2]
        pos = self.offset[:, None] + mx.arange(L)  # [N, L]
        idx = mx.broadcast_to(pos[:, None, :, None], keys.shape)
        self.keys = mx.put_along_axis(self.keys, idx, keys, axis=2)
        self.values = mx.put_along_axis(self.values, idx, values, axis=2)
        return self.keys, self.values

    def make_mask(self, L: int) -> mx.array:
        """Additive [N, 1, L, S]: query j of row i sees the slots up to its own position."""
        q_pos = self.offset[:, None] + mx.arange(L)  # [N, L]
        seen = mx.arange(self.keys.shape[2])[None, None] <= q_pos[:, :, None]
        return mx.where(seen, 0.0, -mx.inf)[:, None]

    @property
    def state(self) -> tuple[mx.array, mx.array]:
        return self.keys, self.values


class RowKVCache(StaticKVCache):
    """One row of a `BatchKVCache`'s buffers taking several new tokens (a prompt, a forced
    run): ``keys``/``values`` [N, H, S, Dh] are updated in place at row ``row`` from
    ``offset``, and attention reads that row alone."""

    def __init__(self, keys: mx.array, values: mx.array, row: int, offset: int):
        super().__init__(keys, values, offset)
        self.row = row

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        start = mx.array([self.row, self.offset])
        self.keys = mx.slice_update(self.keys, keys, start, axes=(0, 2))
        self.values = mx.slice_update(self.values, values, start, axes=(0, 2))
        r = slice(self.row, self.row + 1)
        return self.keys[r], self.values[r]


class DecoderCache:
    """Per-generation decoder state: self-attention KV caches and the cross-attention K/V.

    The cross-attention keys/values depend only on the encoder states, so they are computed
    once (`MusicgenDecoder.make_cache`) and reused by every step (and every long-form window).
    """

    def __init__(
        self,
        num_layers: int,
        cross: list[tuple[mx.array, mx.array]] | None = None,
        cross_mask: mx.array | None = None,
    ):
        self.layers = [KVCache() for _ in range(num_layers)]
        self.cross = cross
        self.cross_mask = cross_mask

    @property
    def offset(self) -> int:
        return self.layers[0].offset
