"""EnCodec neural audio codec in MLX (the codec MusicGen generates tokens for).

A port of transformers' ``EncodecModel``: a SEANet encoder (convolutions, then an LSTM with a
skip connection), a residual vector quantizer, and a mirrored SEANet decoder. The padding
rules (``_pad1d`` reflect padding of short inputs, causal or centred padding, extra right
padding up to a whole number of strides, ``trim_right_ratio``) follow transformers exactly, so
codes match it bit for bit and decoded audio to about 1e-6.

Layout: MLX convolutions are channels-last, so audio is ``[B, T, C]`` and hidden states are
``[B, L, D]`` throughout. Parameter names mirror the transformers module tree
(``decoder.layers.3.conv.weight``); weight norm is folded into a plain ``weight`` and the LSTM
is stored like ``mlx.nn.LSTM`` (``Wx``, ``Wh`` and one ``bias`` = ``bias_ih + bias_hh``).
``EncodecModel.sanitize`` turns a transformers state dict into these names.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from engine.models.base import BaseModelArgs

# Buffers of transformers' EMA codebook that inference does not use.
DROPPED_BUFFERS = (".codebook.embed_avg", ".codebook.cluster_size", ".codebook.inited")
# The two ways torch stores weight-norm parameters: (magnitude g, direction v).
WEIGHT_NORM_STYLES = {
    "weight_g": (".conv.weight_g", ".conv.weight_v"),
    "parametrizations": (
        ".conv.parametrizations.weight.original0",
        ".conv.parametrizations.weight.original1",
    ),
}
# EnCodec decodes its upsampling stack this many frames at a time (see EncodecDecoder).
DECODE_CHUNK_FRAMES = 50
# Key endings found only in transformers state dicts, never in converted MLX weights.
_HF_MARKERS = (
    *DROPPED_BUFFERS,
    ".weight_g",
    ".weight_v",
    ".original0",
    ".original1",
    "_l0",
)
_LSTM_PARAM = re.compile(r"^(?P<base>.*\.lstm)\.layers\.(?P<n>\d+)\.(?P<p>Wx|Wh|bias)$")
_LSTM_SOURCES = {"Wx": ("weight_ih",), "Wh": ("weight_hh",), "bias": ("bias_ih", "bias_hh")}


@dataclass
class EncodecConfig(BaseModelArgs):
    """EnCodec hyper-parameters; field names are transformers' ``EncodecConfig`` names."""

    model_type: str = "encodec"
    target_bandwidths: list[float] = field(default_factory=lambda: [1.5, 3.0, 6.0, 12.0, 24.0])
    sampling_rate: int = 24_000
    audio_channels: int = 1
    normalize: bool = False
    chunk_length_s: float | None = None
    overlap: float | None = None
    hidden_size: int = 128
    num_filters: int = 32
    num_residual_layers: int = 1
    upsampling_ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    norm_type: str = "weight_norm"
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_growth_rate: int = 2
    use_causal_conv: bool = True
    pad_mode: str = "reflect"
    compress: int = 2
    num_lstm_layers: int = 2
    trim_right_ratio: float = 1.0
    codebook_size: int = 1024
    codebook_dim: int | None = None
    use_conv_shortcut: bool = True

    def __post_init__(self):
        if self.codebook_dim is None:
            self.codebook_dim = self.hidden_size
        self.target_bandwidths = [float(b) for b in self.target_bandwidths]
        self.upsampling_ratios = [int(r) for r in self.upsampling_ratios]
        if self.norm_type not in ("weight_norm", "time_group_norm"):
            raise ValueError(
                f"norm_type must be weight_norm or time_group_norm, not {self.norm_type!r}"
            )

    @property
    def hop_length(self) -> int:
        """Audio samples per code frame."""
        return math.prod(self.upsampling_ratios)

    @property
    def frame_rate(self) -> int:
        """Code frames per second (rounded up, as transformers does)."""
        return math.ceil(self.sampling_rate / self.hop_length)

    @property
    def codebook_nbits(self) -> int:
        return math.ceil(math.log2(self.codebook_size))

    @property
    def num_quantizers(self) -> int:
        """Codebooks in the quantizer: enough for the largest target bandwidth."""
        return int(1000 * self.target_bandwidths[-1] // (self.frame_rate * self.codebook_nbits))


@mx.compile
def elu(x: mx.array) -> mx.array:
    """ELU, within 4e-7 (relative) of ``where(x > 0, x, expm1(x))``, as one fused kernel.

    On the x86 CPU MLX's ``exp``/``expm1`` are scalar library calls and ``where`` on random
    signs mispredicts a branch per element: ~13 ns an element, and EnCodec's decoder applies
    ELU to ~95 M elements for 10 s of audio. Here only multiplies, adds and ``abs`` (branch
    free, vectorised by the compiler: ~1.6 ns an element): ``min(x, 0)`` clamped at -30 (where
    ``expm1`` is -1 in float32), scaled by 2^-7, a degree-6 Taylor ``expm1`` (error 8e-9),
    then doubled back seven times with ``expm1(2a) = expm1(a) (expm1(a) + 2)``, which keeps
    the relative precision near 0. (NaN stays NaN; -inf gives NaN, not -1.)
    """
    a = mx.abs(x)
    u = (x - a) * 0.5  # min(x, 0), exactly
    d = -30.0 - u
    u = u + (d + mx.abs(d)) * 0.5  # max(u, -30), exact above -30
    v = u * (1.0 / 128)
    m = v * (1.0 + v * (1 / 2 + v * (1 / 6 + v * (1 / 24 + v * (1 / 120 + v * (1 / 720))))))
    for _ in range(7):
        m = m * (m + 2.0)
    return (x + a) * 0.5 + m


def conv1d(x: mx.array, weight: mx.array, stride: int = 1, dilation: int = 1) -> mx.array:
    """Unpadded conv of ``x`` [B, L, C_in] with ``weight`` [C_out, K, C_in] -> [B, L', C_out].

    Computed as one matmul per kernel tap (per stride-long block of taps when strided): on the
    CPU that is several times faster than ``mx.conv1d`` over many channels, and ~100x faster
    for dilated kernels. Few input channels keep ``mx.conv1d``.
    """
    B, L, C_in = x.shape
    C_out, K, _ = weight.shape
    if C_in < 8 or (stride > 1 and dilation > 1):
        return mx.conv1d(x, weight, stride=stride, dilation=dilation)
    L_out = (L - (K - 1) * dilation - 1) // stride + 1
    if stride == 1 and K > 1 and C_out < C_in:
        # Fewer outputs than inputs: one matmul gives every tap's output [B, L, C_out, K]; the
        # shifted sum then runs over the smaller side (~1.6x faster in SEANet's residual
        # blocks, 2x for the last 64 -> 1 channel conv).
        p = (x @ weight.reshape(C_out * K, C_in).T).reshape(B, L, C_out, K)
        y = p[:, :L_out, :, 0]
        for k in range(1, K):
            y = y + p[:, k * dilation : k * dilation + L_out, :, k]
        return y
    if stride == 1:
        taps = [(x[:, k * dilation : k * dilation + L_out], weight[:, k]) for k in range(K)]
    else:
        # view the input as blocks of `stride` samples; tap block j spans kernel[j*s:(j+1)*s]
        m = -(-K // stride)
        weight = mx.pad(weight, [(0, 0), (0, m * stride - K), (0, 0)])
        n = (L_out + m - 1) * stride
        x = mx.pad(x, [(0, 0), (0, n - L), (0, 0)]) if n > L else x[:, :n]
        blocks = x.reshape(B, L_out + m - 1, stride * C_in)
        taps = [
            (blocks[:, j : j + L_out], weight[:, j * stride : (j + 1) * stride].reshape(C_out, -1))
            for j in range(m)
        ]
    y = None
    for xs, w in taps:
        p = xs @ w.T
        y = p if y is None else y + p
    return y


def conv_transpose1d(x: mx.array, weight: mx.array, stride: int) -> mx.array:
    """Transposed conv of ``x`` [B, L, C_in] with ``weight`` [C_out, K, C_in] (no padding).

    Returns [B, (L - 1) * stride + K, C_out]. Computed as ceil(K / stride) matmuls whose
    outputs are overlap-added one stride apart: ~50x faster than ``mx.conv_transpose1d`` on
    the CPU.
    """
    B, L, C_in = x.shape
    C_out, K, _ = weight.shape
    if K == 2 * stride and B * L <= 2 * C_out * K:
        # Big weight, few input rows (SEANet's first upsamplings): one matmul W @ x.T reads
        # the weight as stored, no per-tap copies (2x faster for 1024 -> 512 channels).
        p = weight.reshape(C_out * K, C_in) @ x.reshape(B * L, C_in).T  # [C_out * K, B * L]
        p = p.reshape(C_out, 2, stride, B, L).transpose(3, 4, 1, 2, 0)  # [B, L, 2, s, C_out]
        first, second = p[:, :, 0], p[:, :, 1]
        y = [first[:, :1], first[:, 1:] + second[:, :-1], second[:, -1:]]
        return mx.concatenate(y, axis=1).reshape(B, (L + 1) * stride, C_out)
    m = -(-K // stride)
    if m * stride != K:
        weight = mx.pad(weight, [(0, 0), (0, m * stride - K), (0, 0)])
    y = None
    for j in range(m):
        w = weight[:, j * stride : (j + 1) * stride].transpose(2, 1, 0)  # [C_in, s, C_out]
        p = (x @ w.reshape(C_in, stride * C_out)).reshape(B, L * stride, C_out)
        p = mx.pad(p, [(0, 0), (j * stride, (m - 1 - j) * stride), (0, 0)])
        y = p if y is None else y + p
    return y[:, : (L - 1) * stride + K]


class ELU(nn.Module):
    """A parameter-free layer, kept so layer indices match transformers' module lists."""

    def __call__(self, x: mx.array) -> mx.array:
        return elu(x)


def pad1d(x: mx.array, left: int, right: int, mode: str) -> mx.array:
    """Pad ``x`` [B, L, C] along time like transformers' ``EncodecConv1d._pad1d``.

    Reflect padding of an input no longer than the padding first appends zeros (and drops
    them again afterwards), as torch's reflect mode needs ``pad < length``.
    """
    if left == 0 and right == 0:
        return x
    if mode == "constant":
        return mx.pad(x, [(0, 0), (left, right), (0, 0)])
    if mode == "replicate":
        return mx.pad(x, [(0, 0), (left, right), (0, 0)], mode="edge")
    if mode != "reflect":
        raise ValueError(f"pad_mode must be reflect, constant or replicate, not {mode!r}")
    L = x.shape[1]
    extra = 0
    if L <= max(left, right):
        extra = max(left, right) - L + 1
        x = mx.pad(x, [(0, 0), (0, extra), (0, 0)])
        L += extra
    parts = [x]
    if left:
        parts.insert(0, x[:, 1 : left + 1][:, ::-1])
    if right:
        parts.append(x[:, L - 1 - right : L - 1][:, ::-1])
    x = mx.concatenate(parts, axis=1)
    return x[:, : x.shape[1] - extra] if extra else x


class EncodecConv1d(nn.Module):
    """Conv1d with transformers' causal or centred padding (and optional time group norm)."""

    def __init__(
        self,
        config: EncodecConfig,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
    ):
        super().__init__()
        self.causal = config.use_causal_conv
        self.pad_mode = config.pad_mode
        self.stride = stride
        self.dilation = dilation
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation)
        if config.norm_type == "time_group_norm":
            self.norm = nn.GroupNorm(1, out_channels, pytorch_compatible=True)
        effective_kernel = (kernel_size - 1) * dilation + 1
        self.padding_total = effective_kernel - stride

    def __call__(self, x: mx.array) -> mx.array:
        L, s = x.shape[1], self.stride
        # right-pad so the last window is complete: the output covers ceil(L / stride) frames
        extra = -(-L // s) * s - L
        if self.causal:
            left, right = self.padding_total, extra
        else:
            right = self.padding_total // 2
            left, right = self.padding_total - right, right + extra
        x = pad1d(x, left, right, self.pad_mode)
        x = conv1d(x, self.conv.weight, self.stride, self.dilation) + self.conv.bias
        if "norm" in self:
            x = self.norm(x)
        return x


class EncodecConvTranspose1d(nn.Module):
    """ConvTranspose1d that trims its fixed padding like transformers (``trim_right_ratio``)."""

    def __init__(
        self,
        config: EncodecConfig,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
    ):
        super().__init__()
        if not (config.use_causal_conv or config.trim_right_ratio == 1.0):
            raise ValueError("trim_right_ratio != 1.0 only makes sense for causal convolutions")
        self.stride = stride
        self.conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride)
        if config.norm_type == "time_group_norm":
            self.norm = nn.GroupNorm(1, out_channels, pytorch_compatible=True)
        padding_total = kernel_size - stride
        if config.use_causal_conv:
            self.trim_right = math.ceil(padding_total * config.trim_right_ratio)
        else:
            self.trim_right = padding_total // 2
        self.trim_left = padding_total - self.trim_right

    def __call__(self, x: mx.array) -> mx.array:
        x = conv_transpose1d(x, self.conv.weight, self.stride) + self.conv.bias
        if "norm" in self:
            x = self.norm(x)
        return x[:, self.trim_left : x.shape[1] - self.trim_right]


class LSTMLayer(nn.Module):
    """One LSTM layer, gates ordered like PyTorch (i, f, g, o)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        scale = 1.0 / math.sqrt(hidden_size)
        self.Wx = mx.random.uniform(-scale, scale, (4 * hidden_size, input_size))
        self.Wh = mx.random.uniform(-scale, scale, (4 * hidden_size, hidden_size))
        self.bias = mx.random.uniform(-scale, scale, (4 * hidden_size,))

    def __call__(self, x: mx.array, recurrence: str | None = None) -> mx.array:
        """``x`` [B, L, D_in] -> hidden states [B, L, H], starting from zero state.

        The input projection of every step is one MLX matmul. The recurrence, one
        matrix-vector product per step, runs in MLX (``recurrence="mlx"``, the default on a
        GPU) or in numpy (``"numpy"``, the default on the CPU). MLX's CPU backend sends every
        matmul through sgemm, which repacks the whole [4H, H] weight (16 MB for H = 1024) at
        each step: ~0.8 ms a step here, against ~0.12 ms for numpy's sgemv, and EnCodec's
        decoder takes 1000 steps for 10 s. Both give the same states (tests/models/test_encodec.py).
        """
        if recurrence is None:
            recurrence = "numpy" if mx.default_device() == mx.cpu else "mlx"
        B, L, D = x.shape
        # Wx @ x.T reads the [4H, D] weight as stored: ~2x faster than x @ Wx.T for L = 500
        g = (self.Wx @ x.reshape(B * L, D).T).T + self.bias
        if recurrence == "mlx":
            gates_x = g.reshape(B, L, -1)
            h = mx.zeros((B, self.Wh.shape[1]), x.dtype)
            c = h
            hs = []
            for t in range(L):
                h, c = _lstm_step(gates_x[:, t], h, c, self.Wh)
                hs.append(h)
            return mx.stack(hs, axis=1)
        gates_x = np.ascontiguousarray(np.asarray(g.astype(mx.float32))).reshape(B, L, -1)
        h = _lstm_recurrence(gates_x, np.asarray(self.Wh.astype(mx.float32)))
        return mx.array(h).astype(x.dtype)


@mx.compile
def _lstm_step(gates_x: mx.array, h: mx.array, c: mx.array, Wh: mx.array):
    z = gates_x + (Wh @ h.T).T  # Wh @ h.T reads Wh row-major
    i, f, g, o = mx.split(z, 4, axis=-1)
    c = mx.sigmoid(f) * c + mx.sigmoid(i) * mx.tanh(g)
    h = mx.sigmoid(o) * mx.tanh(c)
    return h, c


def _lstm_recurrence(gates_x: np.ndarray, Wh: np.ndarray) -> np.ndarray:
    """Hidden states [B, L, H] from input gates [B, L, 4H] and the recurrent weight [4H, H]."""
    B, L, _ = gates_x.shape
    H = Wh.shape[1]
    out = np.empty((B, L, H), np.float32)
    for b in range(B):
        h = np.zeros(H, np.float32)
        c = np.zeros(H, np.float32)
        for t in range(L):
            z = gates_x[b, t] + Wh @ h
            s = np.tanh(z * 0.5) * 0.5 + 0.5  # sigmoid, without overflow warnings
            c = s[H : 2 * H] * c + s[:H] * np.tanh(z[2 * H : 3 * H])
            h = s[3 * H :] * np.tanh(c)
            out[b, t] = h
    return out


class LSTM(nn.Module):
    """Stacked LSTM (``torch.nn.LSTM(dim, dim, num_layers)`` with zero initial state)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int):
        super().__init__()
        self.layers = [
            LSTMLayer(input_size if n == 0 else hidden_size, hidden_size) for n in range(num_layers)
        ]

    def __call__(self, x: mx.array, recurrence: str | None = None) -> mx.array:
        for layer in self.layers:
            x = layer(x, recurrence)
        return x


class EncodecLSTM(nn.Module):
    """LSTM over time with a skip connection."""

    def __init__(self, config: EncodecConfig, dim: int):
        super().__init__()
        self.lstm = LSTM(dim, dim, config.num_lstm_layers)

    def __call__(self, x: mx.array) -> mx.array:
        return self.lstm(x) + x


class EncodecResnetBlock(nn.Module):
    """SEANet residual block: ELU, conv(k), ELU, conv(1), plus a 1x1-conv or identity skip."""

    def __init__(self, config: EncodecConfig, dim: int, dilations: list[int]):
        super().__init__()
        kernel_sizes = (config.residual_kernel_size, 1)
        hidden = dim // config.compress
        self.block = []
        for i, (k, d) in enumerate(zip(kernel_sizes, dilations, strict=True)):
            in_ch = dim if i == 0 else hidden
            out_ch = dim if i == len(kernel_sizes) - 1 else hidden
            self.block += [ELU(), EncodecConv1d(config, in_ch, out_ch, k, dilation=d)]
        if config.use_conv_shortcut:
            self.shortcut = EncodecConv1d(config, dim, dim, kernel_size=1)

    def __call__(self, x: mx.array) -> mx.array:
        residual = self.shortcut(x) if "shortcut" in self else x
        for layer in self.block:
            x = layer(x)
        return residual + x


class EncodecEncoder(nn.Module):
    """SEANet encoder: audio [B, T, C] -> embeddings [B, T / hop_length, hidden_size]."""

    def __init__(self, config: EncodecConfig):
        super().__init__()
        c = config
        layers = [EncodecConv1d(c, c.audio_channels, c.num_filters, c.kernel_size)]
        scaling = 1
        for ratio in reversed(c.upsampling_ratios):
            dim = scaling * c.num_filters
            for j in range(c.num_residual_layers):
                layers.append(EncodecResnetBlock(c, dim, [c.dilation_growth_rate**j, 1]))
            layers += [ELU(), EncodecConv1d(c, dim, dim * 2, kernel_size=ratio * 2, stride=ratio)]
            scaling *= 2
        layers.append(EncodecLSTM(c, scaling * c.num_filters))
        layers += [
            ELU(),
            EncodecConv1d(c, scaling * c.num_filters, c.hidden_size, c.last_kernel_size),
        ]
        self.layers = layers

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.layers:
            x = layer(x)
        return x


class EncodecDecoder(nn.Module):
    """SEANet decoder: embeddings [B, S, hidden_size] -> audio [B, S * hop_length, C]."""

    def __init__(self, config: EncodecConfig):
        super().__init__()
        c = config
        scaling = 2 ** len(c.upsampling_ratios)
        layers = [EncodecConv1d(c, c.hidden_size, scaling * c.num_filters, c.kernel_size)]
        layers.append(EncodecLSTM(c, scaling * c.num_filters))
        for ratio in c.upsampling_ratios:
            dim = scaling * c.num_filters
            layers += [
                ELU(),
                EncodecConvTranspose1d(c, dim, dim // 2, kernel_size=ratio * 2, stride=ratio),
            ]
            for j in range(c.num_residual_layers):
                layers.append(EncodecResnetBlock(c, dim // 2, [c.dilation_growth_rate**j, 1]))
            scaling //= 2
        layers += [ELU(), EncodecConv1d(c, c.num_filters, c.audio_channels, c.last_kernel_size)]
        self.layers = layers
        self.config = config

    def _split(self) -> int:
        """Index of the first layer run in chunks: the residual blocks after the second
        upsampling, and everything after them.

        These have the big activations (for 10 s at 32 kHz: 20 to 82 MB a layer) and small
        weights; the first transposed convolutions have big weights that chunks would re-read.
        """
        ups = [
            i for i, layer in enumerate(self.layers) if isinstance(layer, EncodecConvTranspose1d)
        ]
        return ups[1] + 1 if len(ups) > 1 else 2

    def _hop_before(self, index: int) -> int:
        """Samples per frame at the input of layer ``index``."""
        layers = self.layers[:index]
        return math.prod(m.stride for m in layers if isinstance(m, EncodecConvTranspose1d))

    def context_frames(self) -> int:
        """Frames either side of a frame that the chunked layers read (a safe bound)."""
        split = self._split()
        hop, frames = self._hop_before(split), 0.0
        for layer in self.layers[split:]:
            if isinstance(layer, EncodecConvTranspose1d):
                frames += 2 / hop  # kernel 2 x stride: two input samples
                hop *= layer.stride
            elif isinstance(layer, EncodecResnetBlock):
                convs = [m for m in layer.block if isinstance(m, EncodecConv1d)]
                frames += sum(c.padding_total for c in convs) / hop
            elif isinstance(layer, EncodecConv1d):
                frames += layer.padding_total / hop
        return math.ceil(frames) + 1

    def __call__(self, x: mx.array, chunk_frames: int | None = DECODE_CHUNK_FRAMES) -> mx.array:
        """``x`` [B, S, hidden_size] -> audio [B, S * hop_length, C].

        The layers from `_split` on are local in time, so they run over chunks of
        ``chunk_frames`` frames, each with `context_frames` of neighbours on either side (the
        chunk edges' padding never reaches the kept samples): the same result as one pass,
        with activations of a few MB that stay in cache and in MLX's buffer cache instead of
        20-80 MB buffers paged in afresh by every layer. ``chunk_frames=None`` runs in one
        pass (as time group norm, which is not local, needs).
        """
        c = self.config
        split = self._split()
        x = _run(self.layers[:split], x)
        tail = self.layers[split:]
        up = self._hop_before(split)
        S = x.shape[1] // up
        m = self.context_frames()
        if chunk_frames is None or c.norm_type != "weight_norm" or S <= chunk_frames + m:
            return _run(tail, x)
        out = []
        for a in range(0, S, chunk_frames):
            b = min(a + chunk_frames, S)
            lo, hi = max(0, a - m), min(S, b + m)
            y = _run(tail, x[:, lo * up : hi * up])
            y = y[:, (a - lo) * c.hop_length : (b - lo) * c.hop_length]
            mx.eval(y)  # one chunk's activations at a time
            out.append(y)
        return mx.concatenate(out, axis=1)


def _run(layers: list[nn.Module], x: mx.array) -> mx.array:
    for layer in layers:
        x = layer(x)
    return x


class EncodecEuclideanCodebook(nn.Module):
    def __init__(self, config: EncodecConfig):
        super().__init__()
        self.embed = mx.zeros((config.codebook_size, config.codebook_dim))

    def encode(self, x: mx.array) -> mx.array:
        """Nearest entry of ``x`` [..., D] -> indices [...] (transformers' distance formula)."""
        shape = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        embed = self.embed
        dist = -(
            (x * x).sum(axis=1, keepdims=True) - 2 * (x @ embed.T) + (embed * embed).sum(axis=1)
        )
        return mx.argmax(dist, axis=-1).astype(mx.int32).reshape(shape)

    def decode(self, codes: mx.array) -> mx.array:
        return self.embed[codes]


class EncodecVectorQuantization(nn.Module):
    def __init__(self, config: EncodecConfig):
        super().__init__()
        self.codebook = EncodecEuclideanCodebook(config)


class EncodecResidualVectorQuantizer(nn.Module):
    def __init__(self, config: EncodecConfig):
        super().__init__()
        self.config = config
        self.layers = [EncodecVectorQuantization(config) for _ in range(config.num_quantizers)]

    def num_quantizers_for_bandwidth(self, bandwidth: float | None) -> int:
        """Codebooks used at ``bandwidth`` kbps (None: all of them), as transformers counts."""
        if bandwidth is None or bandwidth <= 0.0:
            return len(self.layers)
        bw_per_q = math.log2(self.config.codebook_size) * self.config.frame_rate
        return int(max(1, math.floor(bandwidth * 1000 / bw_per_q)))

    def encode(self, x: mx.array, num_quantizers: int) -> mx.array:
        """Embeddings [B, S, D] -> codes [B, K, S]: each codebook quantizes the residual."""
        residual = x
        codes = []
        for layer in self.layers[:num_quantizers]:
            idx = layer.codebook.encode(residual)
            residual = residual - layer.codebook.decode(idx)
            codes.append(idx)
        return mx.stack(codes, axis=1)

    def decode(self, codes: mx.array) -> mx.array:
        """Codes [B, K, S] -> the sum of the K codebook embeddings [B, S, D]."""
        out = None
        for k in range(codes.shape[1]):
            q = self.layers[k].codebook.decode(codes[:, k])
            out = q if out is None else out + q
        return out


class EncodecModel(nn.Module):
    """EnCodec: audio [B, T, C] <-> codes [B, K, S] at ``frame_rate`` frames per second."""

    def __init__(self, config: EncodecConfig):
        super().__init__()
        if config.normalize or config.chunk_length_s is not None:
            # Only the 48 kHz EnCodec uses these (per-chunk loudness scales); every MusicGen
            # checkpoint ships the 32 kHz codec without them.
            raise ValueError(
                "this EnCodec normalises loudness per chunk (normalize/chunk_length_s, the "
                "48 kHz model); only EnCodec without them, as in every MusicGen, is supported"
            )
        if 2 ** int(math.log2(config.codebook_size)) != config.codebook_size:
            raise ValueError("codebook_size must be a power of 2")
        self.config = config
        self.encoder = EncodecEncoder(config)
        self.decoder = EncodecDecoder(config)
        self.quantizer = EncodecResidualVectorQuantizer(config)

    @property
    def sampling_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def frame_rate(self) -> int:
        return self.config.frame_rate

    @property
    def num_codebooks(self) -> int:
        return self.config.num_quantizers

    @property
    def audio_channels(self) -> int:
        return self.config.audio_channels

    def encode(self, audio: mx.array, bandwidth: float | None = None) -> mx.array:
        """Audio [B, T, C] at ``sampling_rate`` -> codes [B, K, ceil(T / hop_length)] int32.

        ``bandwidth`` (kbps) must be one of the config's ``target_bandwidths``; None uses every
        codebook of the quantizer (for MusicGen's 32 kHz codec, all 4). Note that transformers
        defaults to the smallest bandwidth instead.
        """
        if bandwidth is not None and bandwidth not in self.config.target_bandwidths:
            raise ValueError(
                f"bandwidth {bandwidth} is not one of {self.config.target_bandwidths} kbps"
            )
        if audio.ndim != 3 or audio.shape[-1] != self.config.audio_channels:
            raise ValueError(
                f"audio must be [batch, samples, {self.config.audio_channels}], got {audio.shape}"
            )
        n_q = self.quantizer.num_quantizers_for_bandwidth(bandwidth)
        return self.quantizer.encode(self.encoder(audio), n_q)

    def decode(self, codes: mx.array) -> mx.array:
        """Codes [B, K, S] -> audio [B, S * hop_length, C] (untrimmed, like transformers)."""
        if codes.ndim != 3 or codes.shape[1] > len(self.quantizer.layers):
            raise ValueError(f"codes must be [batch, <= {self.num_codebooks}, frames]")
        return self.decoder(self.quantizer.decode(codes))

    # -- weights ------------------------------------------------------------------------

    def hf_sources(self, name: str, style: str = "weight_g") -> tuple[str, tuple[str, ...]]:
        """How the MLX parameter ``name`` is made from transformers keys: ``(kind, keys)``.

        ``kind`` is ``copy``, ``conv`` (torch Conv1d layout), ``conv_t`` (ConvTranspose1d),
        ``wn_conv`` / ``wn_conv_t`` (weight norm: keys are g then v) or ``sum`` (LSTM biases).
        ``style`` picks the weight-norm key names: ``weight_g`` or ``parametrizations``.
        """
        if name.endswith(".conv.weight"):
            base = name[: -len(".conv.weight")]
            kind = "conv_t" if self._is_transposed(base) else "conv"
            if self.config.norm_type == "weight_norm":
                return "wn_" + kind, tuple(base + s for s in WEIGHT_NORM_STYLES[style])
            return kind, (name,)
        m = _LSTM_PARAM.match(name)
        if m:
            keys = tuple(f"{m['base']}.{p}_l{m['n']}" for p in _LSTM_SOURCES[m["p"]])
            return ("sum" if len(keys) > 1 else "copy"), keys
        return "copy", (name,)

    def _is_transposed(self, module_path: str) -> bool:
        obj: Any = self
        for part in module_path.split("."):
            obj = obj[int(part)] if isinstance(obj, list) else obj[part]
        return isinstance(obj, EncodecConvTranspose1d)

    def convert_hf_weights(self, weights: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
        """Translate transformers tensors (numpy or MLX arrays) to this model's names/layouts.

        Returns the translated tensors and the input keys that were used or dropped; a
        parameter whose transformers keys are not all present is left out.
        """
        style = "weight_g" if any(k.endswith(".weight_g") for k in weights) else "parametrizations"
        out: dict[str, Any] = {}
        used = {k for k in weights if k.endswith(DROPPED_BUFFERS)}
        for name, _ in tree_flatten(self.parameters()):
            kind, keys = self.hf_sources(name, style)
            if not all(k in weights for k in keys):
                continue
            out[name] = _translate(kind, [weights[k] for k in keys])
            used.update(keys)
        return out, used

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        """Accept converted MLX weights as they are, or a transformers EnCodec state dict.

        Transformers tensors are renamed, weight norm is folded (``w = g * v / ||v||``), conv
        kernels move to MLX layout and EMA buffers are dropped; keys that could not be used are
        kept so that strict loading names them.
        """
        if not any(k.endswith(_HF_MARKERS) for k in weights):
            return weights
        out, used = self.convert_hf_weights(weights)
        out.update({k: v for k, v in weights.items() if k not in used})
        return out


def _translate(kind: str, tensors: list[Any]) -> Any:
    """Apply one ``hf_sources`` kind; works on numpy and MLX arrays alike."""
    if kind == "sum":
        return tensors[0] + tensors[1]
    if kind == "copy":
        return tensors[0]
    if kind.startswith("wn_"):
        g, v = tensors
        # torch weight_norm(dim=0): the norm is over every axis but the first
        w = v * (g / ((v * v).sum(axis=(1, 2), keepdims=True) ** 0.5))
        kind = kind[3:]
    else:
        (w,) = tensors
    if kind == "conv":  # [out, in, k] -> [out, k, in]
        return w.transpose(0, 2, 1)
    return w.transpose(1, 2, 0)  # conv_t: [in, out, k] -> [out, k, in]


ModelArgs = EncodecConfig
Model = EncodecModel
