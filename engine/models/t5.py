"""T5 text encoder (the encoder half of Hugging Face ``T5EncoderModel``), as MusicGen uses it.

Weight names follow the Hugging Face layout (``shared.weight``,
``encoder.block.{i}.layer.0.SelfAttention.q.weight`` …) so a checkpoint converts by renaming
nothing; `T5Encoder.sanitize` only drops the tied copy of the embedding.

T5 specifics kept exactly: a relative position bias computed by the first block and shared by
all blocks, an RMS-style layer norm (no mean subtraction, no bias), no scaling of attention
scores, and either a plain ``relu`` feed-forward (original t5-base, which MusicGen uses) or a
gated one (``gated-gelu`` for t5 v1.1). Dropout is ignored (inference only).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from engine.models.base import BaseModelArgs


def _gelu_tanh(x: mx.array) -> mx.array:
    return 0.5 * x * (1.0 + mx.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


# Hugging Face ACT2FN names -> MLX functions.
ACTIVATIONS = {
    "relu": nn.relu,
    "gelu": nn.gelu,  # exact (erf)
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "silu": nn.silu,
    "swish": nn.silu,
}


@dataclass
class T5Config(BaseModelArgs):
    model_type: str = "t5"
    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"

    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def is_gated_act(self) -> bool:
        return self.feed_forward_proj.split("-")[0] == "gated"

    @property
    def dense_act_fn(self) -> str:
        # As transformers' T5Config: "gated-gelu" means the tanh approximation.
        if self.feed_forward_proj == "gated-gelu":
            return "gelu_new"
        return self.feed_forward_proj.split("-")[-1]


def relative_position_bucket(
    relative_position: np.ndarray, num_buckets: int, max_distance: int
) -> np.ndarray:
    """Bidirectional T5 bucket of each ``memory - query`` offset (int array, any shape).

    Mirrors transformers' ``T5Attention._relative_position_bucket`` with ``bidirectional=True``,
    including its float32 log and truncation towards zero.
    """
    num_buckets //= 2
    buckets = (relative_position > 0).astype(np.int64) * num_buckets
    n = np.abs(relative_position)
    max_exact = num_buckets // 2
    with np.errstate(divide="ignore"):
        scaled = (
            np.log(n.astype(np.float32) / np.float32(max_exact))
            / np.float32(math.log(max_distance / max_exact))
            * np.float32(num_buckets - max_exact)
        )
    large = max_exact + np.where(n < max_exact, 0, scaled).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return buckets + np.where(n < max_exact, n, large)


class T5LayerNorm(nn.Module):
    """RMS norm without mean subtraction or bias, computed in float32."""

    def __init__(self, dims: int, eps: float = 1e-6):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.eps = eps

    def __call__(self, x: mx.array) -> mx.array:
        var = mx.mean(mx.square(x.astype(mx.float32)), axis=-1, keepdims=True)
        return self.weight * (x * mx.rsqrt(var + self.eps)).astype(self.weight.dtype)


class T5Attention(nn.Module):
    def __init__(self, config: T5Config, has_relative_attention_bias: bool = False):
        super().__init__()
        inner = config.num_heads * config.d_kv
        self.n_heads = config.num_heads
        self.q = nn.Linear(config.d_model, inner, bias=False)
        self.k = nn.Linear(config.d_model, inner, bias=False)
        self.v = nn.Linear(config.d_model, inner, bias=False)
        self.o = nn.Linear(inner, config.d_model, bias=False)
        if has_relative_attention_bias:
            self.num_buckets = config.relative_attention_num_buckets
            self.max_distance = config.relative_attention_max_distance
            self.relative_attention_bias = nn.Embedding(self.num_buckets, config.num_heads)

    def compute_bias(self, L: int) -> mx.array:
        """Relative position bias [1, H, L, L] (query rows, key columns)."""
        pos = np.arange(L)
        buckets = relative_position_bucket(
            pos[None, :] - pos[:, None], self.num_buckets, self.max_distance
        )
        values = self.relative_attention_bias(mx.array(buckets.astype(np.int32)))  # [L, L, H]
        return values.transpose(2, 0, 1)[None]

    def __call__(self, x: mx.array, bias: mx.array) -> mx.array:
        """x [B, L, D], additive ``bias`` [B or 1, H, L, L] (position bias + padding mask)."""
        B, L, _ = x.shape

        def heads(t: mx.array) -> mx.array:
            return t.reshape(B, L, self.n_heads, -1).transpose(0, 2, 1, 3)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        # T5 folds the 1/sqrt(d) scaling into its initialisation: scores are not scaled.
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=1.0, mask=bias.astype(q.dtype))
        return self.o(out.transpose(0, 2, 1, 3).reshape(B, L, -1))


class T5LayerSelfAttention(nn.Module):
    def __init__(self, config: T5Config, has_relative_attention_bias: bool = False):
        super().__init__()
        self.SelfAttention = T5Attention(config, has_relative_attention_bias)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)

    def __call__(self, x: mx.array, bias: mx.array) -> mx.array:
        return x + self.SelfAttention(self.layer_norm(x), bias)


class T5DenseActDense(nn.Module):
    def __init__(self, config: T5Config):
        super().__init__()
        self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.act = ACTIVATIONS[config.dense_act_fn]

    def __call__(self, x: mx.array) -> mx.array:
        return self.wo(self.act(self.wi(x)))


class T5DenseGatedActDense(nn.Module):
    def __init__(self, config: T5Config):
        super().__init__()
        self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.act = ACTIVATIONS[config.dense_act_fn]

    def __call__(self, x: mx.array) -> mx.array:
        return self.wo(self.act(self.wi_0(x)) * self.wi_1(x))


class T5LayerFF(nn.Module):
    def __init__(self, config: T5Config):
        super().__init__()
        gated = config.is_gated_act
        self.DenseReluDense = T5DenseGatedActDense(config) if gated else T5DenseActDense(config)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)

    def __call__(self, x: mx.array) -> mx.array:
        return x + self.DenseReluDense(self.layer_norm(x))


class T5Block(nn.Module):
    def __init__(self, config: T5Config, has_relative_attention_bias: bool = False):
        super().__init__()
        self.layer = [T5LayerSelfAttention(config, has_relative_attention_bias), T5LayerFF(config)]

    def __call__(self, x: mx.array, bias: mx.array) -> mx.array:
        return self.layer[1](self.layer[0](x, bias))


class T5Stack(nn.Module):
    def __init__(self, config: T5Config):
        super().__init__()
        self.block = [T5Block(config, i == 0) for i in range(config.num_layers)]
        self.final_layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)


class T5Encoder(nn.Module):
    """T5 encoder: token ids -> contextual hidden states."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config)

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        release: Callable[[str], None] | None = None,
    ) -> mx.array:
        """``input_ids`` [B, L] int, ``attention_mask`` [B, L] (1 keep, 0 pad) -> hidden [B, L, D].

        Padded positions still get (meaningless) hidden states, as in transformers; callers zero
        them with the mask. With ``release``, the computation is evaluated part by part and
        ``release(name)`` is called with the name of each submodule (``shared``,
        ``encoder.block.3`` …) whose weights are no longer needed, so that weights streamed
        from disk can be dropped one block at a time.
        """
        B, L = input_ids.shape
        x = self.shared(input_ids)
        bias = self.encoder.block[0].layer[0].SelfAttention.compute_bias(L)  # [1, H, L, L]
        if attention_mask is not None:
            neg = mx.finfo(mx.float32).min
            pad = mx.where(attention_mask.astype(mx.bool_), 0.0, neg).astype(mx.float32)
            bias = bias.astype(mx.float32) + pad[:, None, None, :]
        if release is not None:
            mx.eval(x, bias)
            release("shared")
        for i, block in enumerate(self.encoder.block):
            x = block(x, bias)
            if release is not None:
                mx.eval(x)
                release(f"encoder.block.{i}")
        return self.encoder.final_layer_norm(x)

    @staticmethod
    def sanitize(weights: dict) -> dict:
        """Hugging Face ``T5EncoderModel`` names -> this module's (works on any array type).

        Keeps one copy of the tied token embedding (``shared``) and drops decoder-only tensors
        when a full ``T5Model`` checkpoint is given.
        """
        out = {}
        for k, v in weights.items():
            if k.startswith(("decoder.", "lm_head.")):
                continue
            if k == "encoder.embed_tokens.weight":
                if "shared.weight" not in weights:
                    out["shared.weight"] = v
                continue
            out[k] = v
        return out
