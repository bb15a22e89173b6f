"""MusicGen (text-to-music) in MLX: T5 text encoder, codebook decoder, EnCodec audio codec.

Ports Hugging Face ``MusicgenForConditionalGeneration`` (facebook/musicgen-small, -medium,
-large, -stereo-*) and ``MusicgenMelodyForConditionalGeneration`` (facebook/musicgen-melody,
-stereo-melody*). Generation reproduces transformers' ``generate`` token for token in greedy
mode: same codebook delay pattern, same classifier-free guidance batch layout, same
logits-processor order (guidance, then temperature, top-k, top-p).

Layout of the decoder weights (after `sanitize`)::

    decoder.embed_tokens.{k}.weight            one embedding per codebook, [V + 1, D]
    decoder.layers.{i}.self_attn.{q,k,v,out}_proj.weight
    decoder.layers.{i}.encoder_attn.…          cross-attention (absent in melody models)
    decoder.layers.{i}.{self_attn,encoder_attn,final}_layer_norm.{weight,bias}
    decoder.layers.{i}.fc1.weight / fc2.weight
    decoder.layer_norm.{weight,bias}
    decoder.lm_heads.{k}.weight                one output head per codebook, [V, D]
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from engine import names
from engine.errors import MusicgenError
from engine.models.base import BaseModelArgs
from engine.models.cache import DecoderCache, KVCache
from engine.models.t5 import ACTIVATIONS, T5Config, T5Encoder
from engine.sample import make_sampler

# Named defaults (audiocraft's ``set_generation_params``).
DEFAULT_GUIDANCE_SCALE = 3.0
DEFAULT_TOP_K = names.MUSICGEN_DEFAULT_TOP_K
DEFAULT_MAX_WINDOW_S = 30.0  # the context the models were trained on
DEFAULT_EXTEND_STRIDE_S = 18.0  # new audio per window beyond the first in long-form generation
NUM_CHROMA = 12

# Decoding attends over every slot of its fixed-capacity KV cache (written or not), so the
# capacity grows in small blocks: each extra slot costs 24 layers x 2 rows x 16 KB of reads
# per step for musicgen-small. Each capacity traces the compiled step once (~15 ms).
CACHE_BLOCK = 64

# Quantization of the decoder linears (convert/musicgen.py writes this into config.json).
QUANT_GROUP_SIZE = 64


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass
class MusicgenDecoderConfig(BaseModelArgs):
    model_type: str = "musicgen_decoder"
    vocab_size: int = 2048
    max_position_embeddings: int = 2048
    num_hidden_layers: int = 24
    ffn_dim: int = 4096
    num_attention_heads: int = 16
    hidden_size: int = 1024
    activation_function: str = "gelu"
    num_codebooks: int = 4
    audio_channels: int = 1
    pad_token_id: int = 2048
    bos_token_id: int = 2048
    decoder_start_token_id: int | None = None
    cross_attention_hidden_size: int | None = None
    layer_norm_eps: float = 1e-5  # torch.nn.LayerNorm's default; not in the HF config

    @property
    def start_token_id(self) -> int:
        """Token that fills the delay pattern (transformers: decoder_start or bos token)."""
        if self.decoder_start_token_id is not None:
            return self.decoder_start_token_id
        return self.bos_token_id

    @property
    def codebooks_per_channel(self) -> int:
        return self.num_codebooks // self.audio_channels


@dataclass
class MusicgenConfig(BaseModelArgs):
    """The composite transformers config: ``text_encoder``, ``audio_encoder``, ``decoder``.

    ``model_type`` is ``"musicgen"`` or ``"musicgen_melody"`` (which adds ``num_chroma`` and
    ``chroma_length`` and conditions by prepending instead of cross-attention).
    """

    text_encoder: T5Config
    decoder: MusicgenDecoderConfig
    audio_encoder: dict = field(default_factory=dict)
    model_type: str = "musicgen"
    num_chroma: int = NUM_CHROMA
    chroma_length: int = 235

    @classmethod
    def from_dict(cls, params: dict) -> MusicgenConfig:
        """Build from a transformers ``MusicgenConfig``/``MusicgenMelodyConfig`` dict: the
        nested configs become theirs, the decoder taking its start and pad tokens from
        ``generation_config`` where it has none."""
        missing = [k for k in ("text_encoder", "decoder", "audio_encoder") if k not in params]
        if missing:
            raise ValueError(f"Not a MusicGen config: missing {', '.join(missing)}")
        decoder = dict(params["decoder"])
        gen = params.get("generation_config") or {}
        for key in ("decoder_start_token_id", "pad_token_id"):
            if decoder.get(key) is None and gen.get(key) is not None:
                decoder[key] = gen[key]
        return super().from_dict(
            {
                **params,
                "text_encoder": T5Config.from_dict(params["text_encoder"]),
                "decoder": MusicgenDecoderConfig.from_dict(decoder),
                "audio_encoder": dict(params["audio_encoder"]),
            }
        )

    @property
    def is_melody(self) -> bool:
        return self.model_type == "musicgen_melody"

    @property
    def has_enc_to_dec_proj(self) -> bool:
        if self.text_encoder.d_model == self.decoder.hidden_size:
            return False
        # transformers skips the projection when the decoder declares the text width itself.
        return self.is_melody or self.decoder.cross_attention_hidden_size is None

    @property
    def has_audio_enc_to_dec_proj(self) -> bool:
        return self.is_melody and self.num_chroma != self.decoder.hidden_size

    @property
    def sampling_rate(self) -> int:
        return int(self.audio_encoder.get("sampling_rate", 32000))

    @property
    def frame_rate(self) -> int:
        """Codec frames per second (transformers' ``EncodecConfig.frame_rate``)."""
        hop = math.prod(self.audio_encoder.get("upsampling_ratios", [8, 5, 4, 4]))
        return math.ceil(self.sampling_rate / hop)

    @property
    def audio_channels(self) -> int:
        return self.decoder.audio_channels


# --------------------------------------------------------------------------------------------
# Decoder


def sinusoidal_table(num_positions: int, dims: int) -> np.ndarray:
    """[num_positions, dims] float32, as transformers' ``MusicgenSinusoidalPositionalEmbedding``.

    Cosines in the first half, sines in the second. The angles are float32 products like
    torch's, so large positions round the same way; the frequencies are correctly rounded
    (torch's float32 ``exp`` differs in 4 of musicgen-small's 512, by one ulp). Cosine and
    sine are taken in float64 and rounded once: numpy's float32 ``sin``/``cos`` use a
    CPU-dependent kernel (SVML on AVX-512) that is off by up to 1.2e-4 at angles near 2000.
    """
    half = dims // 2
    step = np.float32(-math.log(10000) / (half - 1))
    exponents = np.arange(half, dtype=np.float32) * step
    freqs = np.exp(exponents.astype(np.float64)).astype(np.float32)
    angles = np.arange(num_positions, dtype=np.float32)[:, None] * freqs[None, :]
    angles = angles.astype(np.float64)
    table = np.concatenate([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    if dims % 2:
        table = np.concatenate([table, np.zeros((num_positions, 1), np.float32)], axis=1)
    return table


class MusicgenAttention(nn.Module):
    def __init__(self, dims: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dims // num_heads) ** -0.5
        self.q_proj = nn.Linear(dims, dims, bias=False)
        self.k_proj = nn.Linear(dims, dims, bias=False)
        self.v_proj = nn.Linear(dims, dims, bias=False)
        self.out_proj = nn.Linear(dims, dims, bias=False)

    def _heads(self, t: mx.array) -> mx.array:  # [B, L, D] -> [B, H, L, Dh]
        B, L, _ = t.shape
        return t.reshape(B, L, self.num_heads, -1).transpose(0, 2, 1, 3)

    def kv(self, states: mx.array) -> tuple[mx.array, mx.array]:
        """Keys and values [B, H, S, Dh] of ``states`` [B, S, D] (cross-attention)."""
        return self._heads(self.k_proj(states)), self._heads(self.v_proj(states))

    def __call__(
        self,
        x: mx.array,
        mask: mx.array | str | None,
        cache: KVCache | None = None,
        kv: tuple[mx.array, mx.array] | None = None,
    ) -> mx.array:
        """Self-attention over ``x`` [B, L, D], or cross-attention when ``kv`` is given."""
        B, L, D = x.shape
        q = self._heads(self.q_proj(x))
        if kv is None:
            k, v = self.kv(x)
            if cache is not None:
                k, v = cache.update_and_fetch(k, v)
        else:
            k, v = kv
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale, mask=mask)
        return self.out_proj(out.transpose(0, 2, 1, 3).reshape(B, L, D))


class MusicgenDecoderLayer(nn.Module):
    """Pre-LN block: self-attention, cross-attention (unless melody), feed-forward."""

    def __init__(self, args: MusicgenDecoderConfig, cross_attention: bool = True):
        super().__init__()
        D = args.hidden_size
        self.self_attn = MusicgenAttention(D, args.num_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(D, eps=args.layer_norm_eps)
        if cross_attention:
            self.encoder_attn = MusicgenAttention(D, args.num_attention_heads)
            self.encoder_attn_layer_norm = nn.LayerNorm(D, eps=args.layer_norm_eps)
        self.fc1 = nn.Linear(D, args.ffn_dim, bias=False)
        self.fc2 = nn.Linear(args.ffn_dim, D, bias=False)
        self.final_layer_norm = nn.LayerNorm(D, eps=args.layer_norm_eps)
        self.act = ACTIVATIONS[args.activation_function]
        # residual dropout: none except while a run trains with some (`set_dropout`)
        self.dropout = nn.Dropout(0.0)

    def __call__(
        self,
        x: mx.array,
        mask: mx.array | str | None,
        cache: KVCache | None,
        cross: tuple[mx.array, mx.array] | None,
        cross_mask: mx.array | None,
    ) -> mx.array:
        x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), mask, cache))
        if cross is not None:
            x = x + self.dropout(
                self.encoder_attn(self.encoder_attn_layer_norm(x), cross_mask, kv=cross)
            )
        return x + self.dropout(self.fc2(self.act(self.fc1(self.final_layer_norm(x)))))


StaticKV = tuple[mx.array, mx.array]


def _dense(layer: nn.Module, x: mx.array) -> mx.array:
    """``layer(x)`` for a few rows ``x`` [N, D], as fast as this CPU allows.

    Decoding is bound by reading the weights. A float32 weight [out, in] is multiplied as
    ``W @ x.T``, which streams it in its stored row-major order (1.5-2x faster than
    ``x @ W.T`` for N = 2), in blocks of rows small enough for OpenBLAS's small-matrix
    kernel (M * N * K <= 1e6), which skips the packing copy that dominates sgemm here; the
    blocks alternate over one CPU stream per core (~12% faster decoding than one sgemm).
    Float16 and quantized weights go through MLX's own single-threaded kernels, so their
    output rows are split over the streams (1.5-1.7x faster on two cores).
    """
    streams = _cpu_streams()
    if isinstance(layer, nn.Linear) and layer.weight.dtype == mx.float32:
        W = layer.weight
        rows = max(16, (1 << 19) // (W.shape[1] * x.shape[0]))
        if len(streams) < 2 or rows >= W.shape[0]:
            y = (W @ x.T).T
        else:
            parts = [
                mx.matmul(W[i : i + rows], x.T, stream=streams[(i // rows) % len(streams)])
                for i in range(0, W.shape[0], rows)
            ]
            y = mx.concatenate(parts, axis=0).T
        return y + layer.bias if "bias" in layer else y
    if len(streams) < 2 or not isinstance(layer, (nn.Linear, nn.QuantizedLinear)):
        return layer(x)
    N, n = layer.weight.shape[0], len(streams)
    parts = []
    for i, stream in enumerate(streams):
        rows = slice(N * i // n, N * (i + 1) // n)
        if isinstance(layer, nn.QuantizedLinear):
            w, scales, biases = layer.weight[rows], layer.scales[rows], layer.biases[rows]
            part = mx.quantized_matmul(
                x, w, scales, biases, True, layer.group_size, layer.bits, stream=stream
            )
        else:
            part = mx.matmul(x, layer.weight[rows].T, stream=stream)
        parts.append(part)
    y = mx.concatenate(parts, axis=-1)
    return y + layer.bias if "bias" in layer else y


@functools.cache
def _cpu_streams() -> tuple[mx.Stream, ...]:
    """One CPU stream per core (at most 8) when running on the CPU, else none."""
    if mx.default_device() != mx.cpu:
        return ()
    return tuple(mx.new_stream(mx.cpu) for _ in range(min(os.cpu_count() or 1, 8)))


def _heads(t: mx.array, B: int, H: int) -> mx.array:  # [B * L, D] -> [B, H, L, Dh]
    return t.reshape(B, -1, H, t.shape[-1] // H).transpose(0, 2, 1, 3)


def _merge(t: mx.array) -> mx.array:  # [B, H, L, Dh] -> [B * L, D]
    B, H, L, Dh = t.shape
    return t.transpose(0, 2, 1, 3).reshape(B * L, H * Dh)


def _self_attention(
    attn: MusicgenAttention, x: mx.array, B: int, mask: mx.array, kv: StaticKV, offset: mx.array
) -> tuple[mx.array, StaticKV]:
    """Self-attention of ``x`` [B * L, D] written into the static buffers ``kv`` at ``offset``."""
    H, dtype = attn.num_heads, kv[0].dtype  # the cache may be narrower than x
    q = _heads(_dense(attn.q_proj, x), B, H).astype(dtype)
    k = _heads(_dense(attn.k_proj, x), B, H).astype(dtype)
    v = _heads(_dense(attn.v_proj, x), B, H).astype(dtype)
    start = mx.reshape(offset, (1,))
    keys = mx.slice_update(kv[0], k, start, axes=(2,))
    values = mx.slice_update(kv[1], v, start, axes=(2,))
    out = mx.fast.scaled_dot_product_attention(q, keys, values, scale=attn.scale, mask=mask)
    return _dense(attn.out_proj, _merge(out).astype(x.dtype)), (keys, values)


def _cross_attention(
    attn: MusicgenAttention, x: mx.array, B: int, mask: mx.array | None, kv: StaticKV
) -> mx.array:
    q = _heads(_dense(attn.q_proj, x), B, attn.num_heads)
    out = mx.fast.scaled_dot_product_attention(q, *kv, scale=attn.scale, mask=mask)
    return _dense(attn.out_proj, _merge(out))


def _additive_mask(mask: mx.array, dtype: mx.Dtype) -> mx.array:
    """Key mask [B, S] (1 keep, 0 drop) -> additive [B, 1, 1, S].

    A finite minimum rather than -inf: the unconditional guidance branch masks every key, and
    transformers then averages (zero) values instead of producing NaN.
    """
    neg = mx.array(mx.finfo(dtype).min, dtype)
    return mx.where(mask.astype(mx.bool_), mx.array(0, dtype), neg)[:, None, None, :]


class MusicgenDecoder(nn.Module):
    """``MusicgenForCausalLM``: codes [B, K, L] (+ conditioning) -> logits [B, K, L, V].

    With ``cross_attention=False`` (melody models) the conditioning states are prepended to the
    summed code embeddings instead, and share the positional embedding and the causal mask.
    """

    def __init__(self, args: MusicgenDecoderConfig, cross_attention: bool = True):
        super().__init__()
        self.args = args
        self.cross_attention = cross_attention
        D, K = args.hidden_size, args.num_codebooks
        self.embed_tokens = [nn.Embedding(args.vocab_size + 1, D) for _ in range(K)]
        self.layers = [
            MusicgenDecoderLayer(args, cross_attention) for _ in range(args.num_hidden_layers)
        ]
        self.layer_norm = nn.LayerNorm(D, eps=args.layer_norm_eps)
        self.lm_heads = [nn.Linear(D, args.vocab_size, bias=False) for _ in range(K)]
        self._positions = mx.array(sinusoidal_table(args.max_position_embeddings, D))

    def positions(self, offset: int, L: int) -> mx.array:
        if offset + L > self._positions.shape[0]:  # transformers grows the table the same way
            self._positions = mx.array(sinusoidal_table(offset + L, self.args.hidden_size))
        return self._positions[offset : offset + L]

    def cross_kv(self, encoder_states: mx.array) -> list[tuple[mx.array, mx.array]]:
        """Cross-attention keys/values of every layer for ``encoder_states`` [B, S, D]."""
        return [layer.encoder_attn.kv(encoder_states) for layer in self.layers]

    def make_cache(
        self, encoder_states: mx.array | None = None, encoder_mask: mx.array | None = None
    ) -> DecoderCache:
        """A fresh cache; cross-attention K/V are computed here, once, from the encoder states."""
        cross = cross_mask = None
        if self.cross_attention and encoder_states is not None:
            cross = self.cross_kv(encoder_states)
            if encoder_mask is not None:
                cross_mask = _additive_mask(encoder_mask, encoder_states.dtype)
        return DecoderCache(len(self.layers), cross, cross_mask)

    def __call__(
        self,
        codes: mx.array,
        encoder_states: mx.array | None = None,
        encoder_mask: mx.array | None = None,
        cache: DecoderCache | None = None,
    ) -> mx.array:
        """``codes`` [B, K, L] int -> logits [B, K, L, V].

        Args:
            encoder_states: [B, S, D] conditioning at decoder width. Cross-attention models
                attend to it (ignored when ``cache`` already holds cross K/V); melody models
                prepend it (pass it on the first call only; logits cover the codes only).
            encoder_mask: [B, S] (1 keep, 0 drop) for cross-attention.
            cache: from `make_cache`; the codes continue the cached sequence.
        """
        B, K, L = codes.shape
        x = self.embed_tokens[0](codes[:, 0])
        for k in range(1, K):
            x = x + self.embed_tokens[k](codes[:, k])
        prefix = 0
        cross = cross_mask = None
        if self.cross_attention:
            if cache is not None and cache.cross is not None:
                cross, cross_mask = cache.cross, cache.cross_mask
            elif encoder_states is not None:
                cross = self.cross_kv(encoder_states)
                if encoder_mask is not None:
                    cross_mask = _additive_mask(encoder_mask, encoder_states.dtype)
                if cache is not None:
                    cache.cross, cache.cross_mask = cross, cross_mask
        elif encoder_states is not None:
            prefix = encoder_states.shape[1]
            x = mx.concatenate([encoder_states.astype(x.dtype), x], axis=1)
        T = x.shape[1]
        offset = cache.offset if cache is not None else 0
        x = x + self.positions(offset, T).astype(x.dtype)
        mask = "causal" if T > 1 else None
        caches = cache.layers if cache is not None else [None] * len(self.layers)
        crosses = cross if cross is not None else [None] * len(self.layers)
        for layer, c, kv in zip(self.layers, caches, crosses, strict=True):
            x = layer(x, mask, c, kv, cross_mask)
        x = self.layer_norm(x)
        if prefix:
            x = x[:, prefix:]
        return mx.stack([head(x) for head in self.lm_heads], axis=1)

    # -- fast decoding over a fixed-capacity cache -----------------------------------------------

    def static_cache(
        self, batch: int, capacity: int, dtype: mx.Dtype, kv: list[StaticKV] | None = None
    ) -> list[StaticKV]:
        """Self-attention buffers [batch, H, capacity, Dh] (keys, values) per layer for `step`.

        Zeroed, or ``kv`` extended with zeroed slots (one copy; capacity grows in blocks).
        """
        H = self.args.num_attention_heads
        have = kv[0][0].shape[2] if kv else 0
        z = mx.zeros((batch, H, capacity - have, self.args.hidden_size // H), dtype)
        if capacity > self._positions.shape[0]:
            self._positions = mx.array(sinusoidal_table(capacity, self.args.hidden_size))
        if not kv:
            return [(z, z) for _ in self.layers]
        return [(mx.concatenate([k, z], axis=2), mx.concatenate([v, z], axis=2)) for k, v in kv]

    def step(
        self,
        codes: mx.array,
        offset: mx.array,
        kv: list[StaticKV],
        cross: list[StaticKV] | None = None,
        cross_mask: mx.array | None = None,
        prefix: mx.array | None = None,
    ) -> tuple[mx.array, list[StaticKV]]:
        """Logits [B, K, V] of the last position of ``codes`` [B, K, L], and the updated cache.

        The same computation as ``__call__`` with a cache, shaped for `mx.compile`: ``kv`` holds
        fixed-capacity buffers from `static_cache` (attention runs over every slot, a mask
        hides those not yet written), ``offset`` (int32 scalar array) counts the positions
        already cached, and activations stay 2-D [B * L, D]. ``prefix`` [B, P, D] (melody
        models) is prepended on the first call. ``cross``/``cross_mask`` as `make_cache` makes.
        """
        B, K, L = codes.shape
        x = self.embed_tokens[0](codes[:, 0])
        for k in range(1, K):
            x = x + self.embed_tokens[k](codes[:, k])
        x = x.astype(self.layer_norm.weight.dtype)  # float16 embeddings of a float32 decoder
        if prefix is not None:
            x = mx.concatenate([prefix.astype(x.dtype), x], axis=1)
            L = x.shape[1]
        pos = offset + mx.arange(L)
        x = (x + mx.take(self._positions, pos, axis=0).astype(x.dtype)).reshape(B * L, -1)
        S = kv[0][0].shape[2]
        mask = mx.where(mx.arange(S)[None] <= pos[:, None], 0.0, -mx.inf).astype(kv[0][0].dtype)
        crosses = cross if cross is not None else [None] * len(self.layers)
        new_kv = []
        for layer, c, ckv in zip(self.layers, kv, crosses, strict=True):
            h = layer.self_attn_layer_norm(x)
            h, c = _self_attention(layer.self_attn, h, B, mask, c, offset)
            x = x + h
            new_kv.append(c)
            if ckv is not None:
                h = layer.encoder_attn_layer_norm(x)
                x = x + _cross_attention(layer.encoder_attn, h, B, cross_mask, ckv)
            h = _dense(layer.fc1, layer.final_layer_norm(x))
            x = x + _dense(layer.fc2, layer.act(h))
        x = self.layer_norm(x.reshape(B, L, -1)[:, -1])
        return mx.stack([_dense(head, x) for head in self.lm_heads], axis=1), new_kv

    @staticmethod
    def sanitize(weights: dict) -> dict:
        """transformers ``MusicgenForCausalLM`` names -> this module's (any array type)."""
        out = {}
        for k, v in weights.items():
            if k.endswith("embed_positions.weights"):  # a non-persistent buffer
                continue
            if k.startswith("model.decoder."):
                k = k[len("model.decoder.") :]
            out[k] = v
        return out


# --------------------------------------------------------------------------------------------
# The codebook delay pattern


def build_delay_pattern(
    prompt: np.ndarray, max_length: int, pad_token_id: int, audio_channels: int = 1
) -> np.ndarray:
    """The delay-pattern mask [B, K, max_length] for ``prompt`` [B, K, P] (P >= 1).

    Codebook k is delayed by k steps (stereo models: left/right codebooks are interleaved and
    codebook pair c is delayed by c). Entries are -1 where a token must be generated and the
    token to force elsewhere: the prompt, shifted by its delay, or ``pad_token_id`` in the
    leading/trailing triangles. Example, 4 codebooks, ``max_length`` 8, prompt of one start
    token (P = pad token)::

        [P, -1, -1, -1, -1,  P,  P,  P]
        [P,  P, -1, -1, -1, -1,  P,  P]
        [P,  P,  P, -1, -1, -1, -1,  P]
        [P,  P,  P,  P, -1, -1, -1, -1]

    With a longer prompt ``[S, a, b]`` in codebook 0 (``S`` the start token), row 0 becomes
    ``[P, a, b, -1, -1, P, P, P]`` and row 1 ``[P, P, c, d, -1, -1, P, P]``: only the -1
    entries are sampled. Same as transformers' ``build_delay_pattern_mask``.
    """
    B, K, P = prompt.shape
    Kc = K // audio_channels
    if max_length < 2 * Kc - 1:
        raise ValueError(
            f"max_length {max_length} is too short for the delay pattern of {Kc} codebooks"
        )
    shifted = np.full((B, K, max_length), -1, dtype=np.int64)
    delays = np.arange(K) // audio_channels
    for k, d in enumerate(delays):
        n = min(P, max_length - d)
        shifted[:, k, d : d + n] = prompt[:, k, :n]
    j = np.arange(max_length)[None, :]
    d = delays[:, None]
    pad = (j <= d) | (j >= max_length - Kc + 1 + d)  # [K, M]
    return np.where(pad[None], pad_token_id, shifted)


def undelay(seq: np.ndarray | mx.array, audio_channels: int = 1):
    """Codes [B, K, M] laid out in the delay pattern -> aligned codes [B, K, M - Kc].

    Drops each codebook's leading and trailing pads (transformers filters the pad token).
    """
    B, K, M = seq.shape
    Kc = K // audio_channels
    rows = [seq[:, k, k // audio_channels + 1 : M - Kc + 1 + k // audio_channels] for k in range(K)]
    stack = mx.stack if isinstance(seq, mx.array) else np.stack
    return stack(rows, axis=1)


# --------------------------------------------------------------------------------------------
# The composite model


@dataclass
class StepInfo:
    """Progress of `MusicGen.generate_step`: one per decoding step (one frame of codes)."""

    step: int  # 1-based, across all long-form windows
    total: int
    tokens_per_second: float  # decoding steps (frames of K codes) per second
    peak_memory_gb: float


class MusicgenModel(nn.Module):
    """The parameters of MusicGen except the audio codec."""

    def __init__(self, config: MusicgenConfig):
        super().__init__()
        self.text_encoder = T5Encoder(config.text_encoder)
        self.decoder = MusicgenDecoder(config.decoder, cross_attention=not config.is_melody)
        if config.has_enc_to_dec_proj:
            D_text, D = config.text_encoder.d_model, config.decoder.hidden_size
            self.enc_to_dec_proj = nn.Linear(D_text, D)
        if config.has_audio_enc_to_dec_proj:
            self.audio_enc_to_dec_proj = nn.Linear(config.num_chroma, config.decoder.hidden_size)


def sanitize(weights: dict) -> dict:
    """transformers MusicGen checkpoint names -> `MusicgenModel` names (any array type).

    ``audio_encoder.*`` tensors pass through untouched (the codec converts its own).
    Idempotent: already-converted names map to themselves.
    """
    text, dec, out = {}, {}, {}
    for k, v in weights.items():
        if k.startswith("text_encoder."):
            text[k[len("text_encoder.") :]] = v
        elif k.startswith("decoder."):
            dec[k[len("decoder.") :]] = v
        else:
            out[k] = v
    out.update({f"text_encoder.{k}": v for k, v in T5Encoder.sanitize(text).items()})
    out.update({f"decoder.{k}": v for k, v in MusicgenDecoder.sanitize(dec).items()})
    return out


def quantize_decoder(decoder: nn.Module, bits: int, group_size: int = QUANT_GROUP_SIZE) -> None:
    """Quantize the decoder's linear layers in place (embeddings and norms stay as they are)."""

    def predicate(_path: str, m: nn.Module) -> bool:
        return isinstance(m, nn.Linear) and m.weight.shape[-1] % group_size == 0

    nn.quantize(decoder, group_size=group_size, bits=bits, class_predicate=predicate)


def compute_in_float32(decoder: nn.Module) -> None:
    """A quantized decoder on the CPU: float32 scales, biases and norms, so it computes in float32.

    MLX's CPU quantized matmul is ~40x slower with float16 scales than with float32 ones (its
    float16 arithmetic is scalar): 340 against 8 ms for a 4096 x 1024 4-bit weight and two
    rows here. The copies add 1/16 byte per weight (21 MB for musicgen-small). Embeddings and
    the KV cache keep the stored dtype.
    """
    for _, m in decoder.named_modules():
        if isinstance(m, nn.QuantizedLinear):
            m.scales = m.scales.astype(mx.float32)
            m.biases = m.biases.astype(mx.float32)
            if "bias" in m:
                m.bias = m.bias.astype(mx.float32)
        elif isinstance(m, nn.LayerNorm):
            m.update({k: v.astype(mx.float32) for k, v in m.parameters().items()})


@dataclass
class _Conditioning:
    """Decoder-width conditioning for one generation (guidance branch already stacked)."""

    text: mx.array | None  # [B or 2B, S, D], zeroed where masked
    mask: mx.array | None  # [B or 2B, S]
    batch: int
    guidance: bool


class MusicGen:
    """Text (and melody / audio prompt) to music. Build with `MusicGen.load(folder)`.

    Attributes: ``text_encoder`` (T5), ``decoder``, ``enc_to_dec_proj`` (or None),
    ``audio_enc_to_dec_proj`` (melody, or None), ``audio_encoder`` (EnCodec, or None if the
    codec module is unavailable), ``config``, ``tokenizer`` (``tokenizers.Tokenizer`` or None).
    """

    def __init__(self, config: MusicgenConfig, tokenizer=None, audio_encoder=None):
        self.config = config
        self.model = MusicgenModel(config)
        self.tokenizer = tokenizer
        self.audio_encoder = audio_encoder
        self._weights_file: Path | None = None  # set by `load` when offloading

    # -- properties (audiocraft names) --------------------------------------------------------

    @property
    def text_encoder(self) -> T5Encoder:
        return self.model.text_encoder

    @property
    def decoder(self) -> MusicgenDecoder:
        return self.model.decoder

    @property
    def enc_to_dec_proj(self) -> nn.Linear | None:
        return getattr(self.model, "enc_to_dec_proj", None)

    @property
    def audio_enc_to_dec_proj(self) -> nn.Linear | None:
        return getattr(self.model, "audio_enc_to_dec_proj", None)

    @property
    def dtype(self) -> mx.Dtype:
        """Compute dtype of the decoder (the text encoder may run in float32)."""
        return self.decoder.layer_norm.weight.dtype

    @property
    def cache_dtype(self) -> mx.Dtype:
        """Dtype of the decoder's self-attention cache: the stored weights' (embeddings')."""
        return self.decoder.embed_tokens[0].weight.dtype

    @property
    def sample_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def frame_rate(self) -> int:
        return self.config.frame_rate

    @property
    def audio_channels(self) -> int:
        return self.config.audio_channels

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, *, offload: bool = True) -> MusicGen:
        """Load a folder written by ``convert.musicgen.convert_musicgen``.

        Reads ``config.json`` + ``model.safetensors`` (+ ``tokenizer.json`` when present):
        strict weight loading, so a missing or misshaped tensor is named in the error.

        With ``offload`` (the default) only the decoder is held in memory. The T5 text
        encoder and the EnCodec codec, needed once per generation (before and after the
        decoding steps), stay in the file: their weights are read when used (~0.2 s for
        musicgen-small's 0.44 GB T5, from the page cache) and dropped again, the T5 block by
        block, so they never sit beside the decoder's cache. ``offload=False`` keeps
        everything resident.
        """
        path = Path(path)
        raw = json.loads((path / "config.json").read_text())
        gen_file = path / "generation_config.json"
        if gen_file.exists():
            raw = {**raw, "generation_config": json.loads(gen_file.read_text())}
        config = MusicgenConfig.from_dict(raw)
        tokenizer = None
        if (path / "tokenizer.json").exists():
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self = cls(config, tokenizer=tokenizer)
        quant = (raw.get("disco_musica") or {}).get("quantization")
        if quant:
            quantize_decoder(self.decoder, quant["bits"], quant.get("group_size", QUANT_GROUP_SIZE))
        weights = mx.load(str(path / "model.safetensors"))
        prefix = "audio_encoder."
        codec = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        core = sanitize({k: v for k, v in weights.items() if not k.startswith(prefix)})
        self.model.load_weights(list(core.items()), strict=True)
        if quant and mx.default_device() == mx.cpu:
            compute_in_float32(self.decoder)
        if offload:
            self._weights_file = path / "model.safetensors"
            mx.eval({k: v for k, v in self.model.children().items() if k != "text_encoder"})
        else:
            mx.eval(self.model.parameters())
        self.audio_encoder = _load_codec(raw["audio_encoder"], codec, evaluate=not offload)
        return self

    def _offload(self, *prefixes: str, fresh: dict[str, mx.array] | None = None) -> None:
        """Point the weights under ``prefixes`` (file names) back at the file, unread.

        Arrays from ``mx.load`` are read on first use and then kept; fresh ones from a new
        ``mx.load`` let the used ones go. ``fresh``: such a load to take them from (one
        load can serve several calls, as long as each name is taken once).
        """
        if self._weights_file is None:
            return
        if fresh is None:
            fresh = mx.load(str(self._weights_file))
        for prefix in prefixes:
            if prefix.startswith("audio_encoder."):
                codec = self._require_codec()
                cut = len("audio_encoder.")
                part = {k[cut:]: v for k, v in fresh.items() if k.startswith(prefix)}
                codec.load_weights(list(codec.sanitize(part).items()), strict=False)
            else:
                part = sanitize({k: v for k, v in fresh.items() if k.startswith(prefix)})
                self.model.load_weights(list(part.items()), strict=False)

    # -- conditioning -------------------------------------------------------------------------

    def tokenize(self, prompts: list[str]) -> tuple[mx.array, mx.array]:
        """Texts -> (input_ids [B, L], attention_mask [B, L]), right-padded with T5's pad id 0."""
        if self.tokenizer is None:
            raise MusicgenError(
                "This model folder has no tokenizer.json, so text prompts cannot be read. "
                "Re-convert the model from a snapshot that includes its tokenizer."
            )
        encs = self.tokenizer.encode_batch(list(prompts))
        L = max(len(e.ids) for e in encs)
        pad = self.tokenizer.token_to_id("<pad>") or 0
        ids = np.full((len(encs), L), pad, np.int32)
        mask = np.zeros((len(encs), L), np.int32)
        for i, e in enumerate(encs):  # the tokenizer.json may pad already: keep its mask
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = e.attention_mask
        return mx.array(ids), mx.array(mask)

    def encode_text(
        self, input_ids: mx.array, attention_mask: mx.array | None = None
    ) -> tuple[mx.array, mx.array]:
        """T5 states projected to decoder width and zeroed at padding: ([B, S, D], mask [B, S])."""
        if attention_mask is None:
            attention_mask = mx.ones(input_ids.shape, mx.int32)
        release = None
        if self._weights_file is not None:
            fresh = mx.load(str(self._weights_file))  # one read of the file's index

            def release(name: str) -> None:
                self._offload(f"text_encoder.{name}.", fresh=fresh)

        h = self.text_encoder(input_ids, attention_mask, release=release).astype(self.dtype)
        if self.enc_to_dec_proj is not None:
            h = self.enc_to_dec_proj(h)
        h = h * attention_mask[..., None].astype(h.dtype)
        return h, attention_mask

    def _conditioning(
        self,
        input_ids: mx.array | None,
        attention_mask: mx.array | None,
        batch: int,
        guidance_scale: float,
    ) -> _Conditioning:
        """Text conditioning with the unconditional branch stacked after the conditional one.

        As transformers: the unconditional branch has zeroed text states and an all-zero mask.
        Without text, both branches would be equal, so guidance is skipped.
        """
        D = self.config.decoder.hidden_size
        if input_ids is None:
            text = mx.zeros((batch, 1, D), self.dtype)
            mask = mx.zeros((batch, 1), mx.int32)
            return _Conditioning(text, mask, batch, False)
        text, mask = self.encode_text(input_ids, attention_mask)
        guidance = guidance_scale is not None and guidance_scale > 1
        if guidance:
            text = mx.concatenate([text, mx.zeros_like(text)], axis=0)
            mask = mx.concatenate([mask, mx.zeros_like(mask)], axis=0)
        return _Conditioning(text, mask, input_ids.shape[0], guidance)

    def melody_prefix(
        self, text: mx.array | None, chroma: np.ndarray | None, batch: int, guidance: bool
    ) -> mx.array:
        """Melody models: the decoder prefix [B (x2), chroma_length + S, D].

        ``chroma`` [T, 12] or [B, T, 12] (None: the "no melody" one-hot on bin 0, as
        transformers). The unconditional branch gets the no-melody chroma at the same length.
        Chroma shorter than ``chroma_length`` frames is tiled, longer is cut.
        """
        C = self.config.num_chroma
        if chroma is None:
            feats = np.zeros((batch, 1, C), np.float32)
            feats[:, :, 0] = 1
        else:
            feats = np.asarray(chroma, np.float32)
            if feats.ndim == 2:
                feats = feats[None]
            feats = np.broadcast_to(feats, (batch, *feats.shape[1:]))
        null = np.zeros_like(feats)
        null[:, :, 0] = 1
        if guidance:
            feats = np.concatenate([feats, null], axis=0)
        audio = mx.array(feats).astype(self.dtype)
        if self.audio_enc_to_dec_proj is not None:
            audio = self.audio_enc_to_dec_proj(audio)
        n = self.config.chroma_length
        if audio.shape[1] < n:
            audio = mx.tile(audio, (1, math.ceil(n / audio.shape[1]), 1))
        audio = audio[:, :n]
        if text is None:
            return audio
        return mx.concatenate([audio, text.astype(audio.dtype)], axis=1)

    def window_chroma(
        self, melody: np.ndarray, sampling_rate: int, start_frame: int, window_frames: int
    ) -> np.ndarray:
        """Chroma [frames, 12] conditioning the window that starts at codec frame ``start_frame``.

        The first window takes the melody as it is (transformers: its chroma is tiled or cut to
        ``chroma_length``). Later windows take ``window_frames`` worth of melody from their
        start time, looping the melody when it is shorter (audiocraft's long-form melody).
        """
        from engine.models.chroma import melody_chroma

        m = np.asarray(melody, np.float32)
        if start_frame > 0:
            i0 = start_frame * sampling_rate // self.frame_rate
            n = window_frames * sampling_rate // self.frame_rate
            m = np.take(m, i0 + np.arange(n), axis=0, mode="wrap")
        return melody_chroma(m, sampling_rate)

    # -- audio --------------------------------------------------------------------------------

    def _require_codec(self):
        if self.audio_encoder is None:
            raise RuntimeError(
                "The EnCodec audio codec (engine/models/encodec.py) is not available, so audio "
                "cannot be encoded or decoded; generate_step still returns codes."
            )
        return self.audio_encoder

    def encode_audio(self, audio: np.ndarray, sampling_rate: int) -> mx.array:
        """Audio [T], [T, C] or [B, T, C] at ``sampling_rate`` -> prompt codes [B, K, S].

        Resampled to the codec rate; channels mixed down (mono models) or duplicated (stereo
        models given mono). Stereo models encode left and right separately and interleave the
        codebooks, as transformers does.
        """
        codec = self._require_codec()
        x = np.asarray(audio, np.float32)
        if x.ndim == 1:
            x = x[None, :, None]
        elif x.ndim == 2:
            x = x[None]
        x = resample(x, sampling_rate, self.sample_rate)
        codec_channels = int(self.config.audio_encoder.get("audio_channels", 1))
        if self.audio_channels == 2:
            if x.shape[-1] == 1:
                x = np.repeat(x, 2, axis=-1)
            sides = [_fit_channels(x[..., c : c + 1], codec_channels) for c in range(2)]
            left, right = (codec.encode(mx.array(s)) for s in sides)
            B, Kc, S = left.shape
            codes = mx.stack([left, right], axis=2).reshape(B, 2 * Kc, S)
        else:
            codes = codec.encode(mx.array(_fit_channels(x, codec_channels)))
        mx.eval(codes)
        self._offload("audio_encoder.encoder.")
        return codes

    def decode(self, codes: mx.array) -> np.ndarray:
        """Codes [B, K, T] -> audio [B, samples, C] float32 at `sample_rate`."""
        codec = self._require_codec()
        if self.audio_channels == 2:
            left = codec.decode(codes[:, ::2])
            right = codec.decode(codes[:, 1::2])
            audio = mx.concatenate([left, right], axis=-1)
        else:
            audio = codec.decode(codes)
        audio = np.array(audio.astype(mx.float32))
        self._offload("audio_encoder.decoder.", "audio_encoder.quantizer.")
        return audio

    # -- generation ---------------------------------------------------------------------------

    def frames(self, duration_s: float) -> int:
        """Codec frames in ``duration_s`` seconds (audiocraft: ``int(duration * frame_rate)``)."""
        return int(duration_s * self.frame_rate + 1e-6)

    def _window_steps(
        self,
        cond: _Conditioning,
        prompt: mx.array | None,
        new_frames: int,
        guidance_scale: float,
        sampler,
        keys: mx.array,
        step0: int,
        total: int,
        tic: float,
        prefix: mx.array | None = None,
        cross: tuple[list[tuple[mx.array, mx.array]], mx.array] | None = None,
    ) -> Generator[StepInfo, None, mx.array]:
        """One window: ``new_frames`` frames after ``prompt`` [B, K, P] -> codes [B, K, P + new].

        ``prefix`` (melody models) is prepended on the first step; ``cross`` (the others) is the
        precomputed cross-attention K/V of every layer and its additive mask.
        """
        dec = self.config.decoder
        B, K = cond.batch, dec.num_codebooks
        start = np.full((B, K, 1), dec.start_token_id, np.int64)
        if prompt is not None:
            start = np.concatenate([start, np.asarray(prompt, np.int64)], axis=-1)
        first = start.shape[-1]
        n_steps = new_frames + dec.codebooks_per_channel - 1  # transformers' max_new_tokens
        M = first + n_steps
        pattern = build_delay_pattern(start, M, dec.start_token_id, dec.audio_channels)
        pattern = mx.array(pattern.astype(np.int32))
        rows = 2 * B if cond.guidance else B
        P = prefix.shape[1] if prefix is not None else 0
        kv = None
        cross_kv, cross_mask = cross if cross is not None else (None, None)

        def step(codes, offset, kv, key, forced, prefix=None):
            x = mx.concatenate([codes, codes], axis=0) if cond.guidance else codes
            logits, kv = self.decoder.step(x, offset, kv, cross_kv, cross_mask, prefix)
            logits = logits.astype(mx.float32)
            if cond.guidance:
                c, u = logits[:B], logits[B:]
                logits = u + (c - u) * guidance_scale
            tok = sampler(logits.reshape(B * K, -1), key).reshape(B, K, 1)
            return mx.where(forced == -1, tok.astype(mx.int32), forced), kv

        # One traced graph serves the single-frame steps of each cache capacity; the first
        # call (prompt codes, melody prefix) runs uncompiled.
        compiled = mx.compile(step)
        seq = [pattern[:, :, :first]]
        inputs = seq[0]
        for i in range(n_steps):
            forced = pattern[:, :, first + i : first + i + 1]
            pos = 0 if i == 0 else P + first + i - 1
            end = P + first if i == 0 else pos + 1
            if kv is None or end > kv[0][0].shape[2]:
                capacity = -(-end // CACHE_BLOCK) * CACHE_BLOCK
                kv = self.decoder.static_cache(rows, capacity, self.cache_dtype, kv)
            offset = mx.array(pos, mx.int32)
            if i == 0 and (first > 1 or prefix is not None):
                nxt, kv = step(inputs, offset, kv, keys[step0], forced, prefix)
            else:
                nxt, kv = compiled(inputs, offset, kv, keys[step0 + i], forced)
            # Queue this step before waiting for the previous one, so the Python work between
            # steps overlaps the computation.
            mx.async_eval(nxt)
            if i > 0:
                mx.eval(inputs)
                yield self._step_info(step0 + i, total, tic)
            inputs = nxt
            seq.append(nxt)
        mx.eval(inputs)
        yield self._step_info(step0 + n_steps, total, tic)
        return undelay(mx.concatenate(seq, axis=-1), dec.audio_channels)

    @staticmethod
    def _step_info(done: int, total: int, tic: float) -> StepInfo:
        return StepInfo(
            step=done,
            total=total,
            tokens_per_second=done / max(time.perf_counter() - tic, 1e-9),
            peak_memory_gb=mx.get_peak_memory() / 1e9,
        )

    def generate_step(
        self,
        prompts: list[str] | None = None,
        *,
        duration_s: float,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        temperature: float = 1.0,
        top_k: int = DEFAULT_TOP_K,
        top_p: float = 0.0,
        seed: int = 0,
        audio_prompt: np.ndarray | None = None,
        audio_prompt_sr: int | None = None,
        melody: np.ndarray | None = None,
        melody_sr: int | None = None,
        extend_stride_s: float = DEFAULT_EXTEND_STRIDE_S,
        max_window_s: float = DEFAULT_MAX_WINDOW_S,
        input_ids: mx.array | np.ndarray | None = None,
        attention_mask: mx.array | np.ndarray | None = None,
        prompt_codes: mx.array | np.ndarray | None = None,
        chroma: np.ndarray | None = None,
    ) -> Generator[StepInfo, None, mx.array]:
        """Generate codes, yielding a `StepInfo` per decoding step; returns codes [B, K, T].

        ``T = frames(duration_s)``. The output includes the prompt (audiocraft's
        ``generate_continuation``): ``duration_s`` is the total length. Close the generator to
        cancel. Beyond ``max_window_s`` the audio is extended window by window: each new window
        is prompted with the last ``max_window_s - extend_stride_s`` seconds of codes and adds
        ``extend_stride_s`` seconds.

        Args:
            prompts: text descriptions (one per output); None for unconditional generation.
            guidance_scale: classifier-free guidance; <= 1 turns it off.
            temperature: 0 is greedy (argmax), as ``do_sample=False``.
            top_k: keep exactly the k most likely codes (0: all). top_p: nucleus (0: off).
            seed: fixes the sampled codes exactly.
            audio_prompt / audio_prompt_sr: audio to continue ([T], [T, C] or [B, T, C]).
            melody / melody_sr: melody models only, audio whose chroma conditions the music.
            input_ids / attention_mask: pre-tokenized text instead of ``prompts``.
            prompt_codes: [B, K, P] codes instead of ``audio_prompt``.
            chroma: [T, 12] or [B, T, 12] chroma features instead of ``melody``.
        """
        cfg = self.config
        if prompts is not None and input_ids is not None:
            raise ValueError("Pass either prompts or input_ids, not both")
        if prompts is not None:
            input_ids, attention_mask = self.tokenize(prompts)
        if input_ids is not None:
            input_ids = mx.array(input_ids).astype(mx.int32)
            if attention_mask is not None:
                attention_mask = mx.array(attention_mask).astype(mx.int32)
        if audio_prompt is not None:
            if prompt_codes is not None:
                raise ValueError("Pass either audio_prompt or prompt_codes, not both")
            prompt_codes = self.encode_audio(audio_prompt, audio_prompt_sr or self.sample_rate)
        if (melody is not None or chroma is not None) and not cfg.is_melody:
            raise MusicgenError(
                "This MusicGen model has no melody conditioning (use a -melody model)"
            )
        if melody is not None and chroma is not None:
            raise ValueError("Pass either melody or chroma, not both")

        batch = input_ids.shape[0] if input_ids is not None else 1
        if prompt_codes is not None:
            prompt_codes = mx.array(prompt_codes).astype(mx.int32)
            K = cfg.decoder.num_codebooks
            if prompt_codes.ndim != 3 or prompt_codes.shape[1] != K:
                raise ValueError(f"prompt codes must be [B, {K}, frames], got {prompt_codes.shape}")
            if input_ids is None:
                batch = prompt_codes.shape[0]
            if prompt_codes.shape[0] != batch:
                prompt_codes = mx.broadcast_to(prompt_codes, (batch, *prompt_codes.shape[1:]))

        total = self.frames(duration_s)
        window = self.frames(max_window_s)
        stride = self.frames(extend_stride_s)
        P0 = prompt_codes.shape[-1] if prompt_codes is not None else 0
        plan = _plan_windows(total, P0, window, stride)
        Kc = cfg.decoder.codebooks_per_channel
        for p, new in plan:
            if p + new < Kc - 1 or new < 1:
                raise MusicgenError(
                    f"{duration_s} s is too short to generate: need at least "
                    f"{(Kc - 1) / self.frame_rate:.2f} s beyond the prompt"
                )
        n_total = sum(new + Kc - 1 for _, new in plan)

        cond = self._conditioning(input_ids, attention_mask, batch, guidance_scale)
        cross = None
        if not cfg.is_melody:
            cross_kv = self.decoder.cross_kv(cond.text)
            cross = (cross_kv, _additive_mask(cond.mask, cond.text.dtype))
            mx.eval(cross)  # constants of the compiled decoding step
        sampler = make_sampler(temperature, top_k, top_p if top_p > 0 else 1.0)
        keys = mx.random.split(mx.random.key(seed), num=max(n_total, 1))

        tic = time.perf_counter()
        done = 0
        out = prompt_codes
        prompt = prompt_codes
        for p, new in plan:
            prefix = None
            if cfg.is_melody:
                ch = chroma
                if melody is not None:
                    # This window starts (output frames - prompt frames) into the output.
                    start = (out.shape[-1] if out is not None else 0) - p
                    ch = self.window_chroma(melody, melody_sr or self.sample_rate, start, window)
                text = cond.text if input_ids is not None else None
                prefix = self.melody_prefix(text, ch, batch, cond.guidance)
            codes = yield from self._window_steps(
                cond, prompt, new, guidance_scale, sampler, keys, done, n_total, tic,
                prefix=prefix, cross=cross,
            )  # fmt: skip
            done += new + Kc - 1
            fresh = codes[:, :, p:]
            out = fresh if out is None else mx.concatenate([out, fresh], axis=-1)
            prompt = out[:, :, -(window - stride) :]
        return out

    def generate(
        self,
        prompts: list[str] | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Generate audio [B, samples, C] float32 at `sample_rate`; see `generate_step`.

        ``progress(step, total)`` is called after every decoding step.
        """
        gen = self.generate_step(prompts, **kwargs)
        while True:
            try:
                info = next(gen)
            except StopIteration as stop:
                codes = stop.value
                break
            if progress is not None:
                progress(info.step, info.total)
        return self.decode(codes)


def _plan_windows(total: int, prompt: int, window: int, stride: int) -> list[tuple[int, int]]:
    """(prompt frames, new frames) of each generation window for ``total`` output frames."""
    if prompt >= total:
        raise MusicgenError("The audio prompt is as long as the requested duration: nothing to add")
    if prompt >= window:
        raise MusicgenError("The audio prompt must be shorter than the generation window")
    plan = [(prompt, min(total, window) - prompt)]
    have = min(total, window)
    if have < total and not 0 < stride < window:
        raise ValueError("extend_stride_s must be positive and shorter than max_window_s")
    while have < total:
        p = min(window - stride, have)
        new = min(total - have, window - p)
        plan.append((p, new))
        have += new
    return plan


def _fit_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """[B, T, C] -> [B, T, channels]: average down to mono or repeat mono up."""
    if x.shape[-1] == channels:
        return x
    if channels == 1:
        return x.mean(axis=-1, keepdims=True)
    if x.shape[-1] == 1:
        return np.repeat(x, channels, axis=-1)
    raise ValueError(f"Cannot map {x.shape[-1]} audio channels to {channels}")


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample [B, T, C] float audio with scipy's polyphase filter (one path everywhere, so
    a recorded generation with an audio prompt replays the same on every machine)."""
    if sr_in == sr_out:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(int(sr_in), int(sr_out))
    return resample_poly(x, sr_out // g, sr_in // g, axis=1).astype(np.float32)


def _load_codec(config: dict, weights: dict, evaluate: bool = True):
    """EnCodec from engine/models/encodec.py, or None when that module is not available.

    ``evaluate=False`` leaves lazily loaded weights unread until used.
    """
    try:
        from engine.models.encodec import EncodecConfig, EncodecModel
    except ImportError:
        return None
    codec = EncodecModel(EncodecConfig.from_dict(config))
    if hasattr(codec, "sanitize"):
        weights = codec.sanitize(weights)
    codec.load_weights(list(weights.items()), strict=True)
    if evaluate:
        mx.eval(codec.parameters())
    return codec
