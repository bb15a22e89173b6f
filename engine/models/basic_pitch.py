"""Basic Pitch (Spotify, ICASSP 2022): audio -> note, onset and pitch-contour posteriorgrams.

A port to MLX of the network in basic-pitch's ``saved_models/icassp_2022/nmp.onnx`` (the ONNX
graph is what was checked, node by node), and of the windowing in its ``inference.py``::

    audio [S] at 22050 Hz
      -> windows of AUDIO_N_SAMPLES (2 s less one hop), N_OVERLAPPING_FRAMES frames of overlap
      -> CQT: nnAudio's CQT2010v2 (one 36-filter top octave applied to the audio halved by a
         256-tap low-pass 8 times), 309 bins from 27.5 Hz, 3 per semitone, hop 256
      -> normalised log (dB, scaled 0..1 per window) -> batch norm (folded: x * w + b)
      -> harmonic stacking: 8 copies shifted by 0.5, 1, 2 .. 7 x f, 264 bins kept [T, 264, 8]
      -> CNN: contour [T, 264], note [T, 88] and onset [T, 88], each a sigmoid
      -> half the overlap trimmed at each end of every window, windows joined, cut to the
         audio's length (``unwrap_output``)

Shapes are [B, T, F, C] (MLX's NHWC). Everything is float32, like onnxruntime. The large
convolutions are computed in ways that suit the CPU (the 3x39 contour convolution through an
FFT along frequency, the one-channel outputs as one matmul plus shifted sums); the numbers
agree with onnxruntime within 1e-5 on x86 CPUs with AVX-512, within 3e-4 on others
(tests/models/test_basic_pitch.py, docs/models/basic-pitch.md).

Weights: ``engine/assets/models/basic-pitch`` (converted by ``convert.basic_pitch`` from the
Apache-2.0 ``nmp.onnx``; see the NOTICE file there).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from engine.models.base import BaseModelArgs

AUDIO_SAMPLE_RATE = 22050  # Hz: the only rate the network was trained at
FFT_HOP = 256  # samples per output frame
AUDIO_WINDOW_LENGTH_S = 2  # seconds per training example
ANNOTATIONS_FPS = AUDIO_SAMPLE_RATE // FFT_HOP  # 86: frames a second, as basic-pitch rounds it
ANNOT_N_FRAMES = ANNOTATIONS_FPS * AUDIO_WINDOW_LENGTH_S  # 172 frames per window
AUDIO_N_SAMPLES = AUDIO_SAMPLE_RATE * AUDIO_WINDOW_LENGTH_S - FFT_HOP  # 43844 samples per window
N_OVERLAPPING_FRAMES = 30  # frames shared by neighbouring windows
OVERLAP_LEN = N_OVERLAPPING_FRAMES * FFT_HOP  # 7680 samples
HOP_SIZE = AUDIO_N_SAMPLES - OVERLAP_LEN  # 36164 samples between window starts
N_NOTES = 88  # piano keys, A0 (MIDI 21) .. C8 (MIDI 108)
MIDI_OFFSET = 21  # MIDI pitch of note bin 0
CONTOURS_BINS_PER_SEMITONE = 3
N_CONTOUR_BINS = N_NOTES * CONTOURS_BINS_PER_SEMITONE  # 264
DEFAULT_WINDOWS_PER_BATCH = 1  # windows per network call: one at a time stays in the CPU's cache
RESAMPLE_QUALITY = "soxr_hq"  # librosa.load's default resampler, which basic-pitch uses
SMALL_GEMM_MACS = 1 << 21  # see downsample2
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "models" / "basic-pitch"


@dataclass
class ModelArgs(BaseModelArgs):
    """Hyper-parameters of the ICASSP 2022 model (basic-pitch's ``models.model`` defaults)."""

    model_type: str = "basic_pitch"
    sample_rate: int = AUDIO_SAMPLE_RATE
    hop_length: int = FFT_HOP
    window_samples: int = AUDIO_N_SAMPLES
    fmin_hz: float = 27.5  # centre of the lowest CQT bin (A0)
    bins_per_semitone: int = CONTOURS_BINS_PER_SEMITONE
    n_cqt_semitones: int = 103  # min(88 + 12 log2(8), semitones below Nyquist)
    n_semitones: int = N_NOTES
    harmonics: list[float] = field(default_factory=lambda: [0.5, 1, 2, 3, 4, 5, 6, 7])
    cqt_kernel_size: int = 256  # samples: length of the top-octave CQT filters
    lowpass_taps: int = 256  # the half-band filter between octaves
    n_filters_contour: int = 8
    n_filters_notes: int = 32
    n_filters_onsets: int = 32
    log_eps: float = 1e-10  # added to the CQT power before the log

    @property
    def bins_per_octave(self) -> int:
        return 12 * self.bins_per_semitone

    @property
    def n_cqt_bins(self) -> int:
        return self.n_cqt_semitones * self.bins_per_semitone

    @property
    def n_octaves(self) -> int:
        return math.ceil(self.n_cqt_bins / self.bins_per_octave)

    @property
    def n_contour_bins(self) -> int:
        return self.n_semitones * self.bins_per_semitone

    @property
    def frames_per_window(self) -> int:
        return (self.window_samples + 2 * (self.cqt_kernel_size // 2) - self.cqt_kernel_size) // (
            self.hop_length
        ) + 1

    @property
    def harmonic_shifts(self) -> list[int]:
        """CQT bins each harmonic's copy is shifted by (36 * log2 h, rounded half to even)."""
        return [int(round(self.bins_per_octave * math.log2(float(h)))) for h in self.harmonics]


# ---- the CQT ---------------------------------------------------------------------------------
def reflect_pad(x: mx.array, pad: int) -> mx.array:
    """Mirror ``pad`` samples at both ends of ``x`` [B, S] (torch's ReflectionPad1d)."""
    return mx.concatenate([x[:, pad:0:-1], x, x[:, -2 : -pad - 2 : -1]], axis=1)


def frame(x: mx.array, size: int, hop: int) -> mx.array:
    """Frames [B, (S - size) // hop + 1, size] of ``x`` [B, S] (a copy of only those samples)."""
    B, S = x.shape
    n = (S - size) // hop + 1
    return mx.as_strided(mx.contiguous(x), (B, n, size), (S, hop, 1))


def downsample2(x: mx.array, taps: mx.array) -> mx.array:
    """nnAudio's ``downsampling_by_n(x, taps, 2)``: zero-pad (K - 1) // 2, filter, keep every 2nd.

    ``x`` [B, S] -> [B, (S + 2 * ((K - 1) // 2) - K) // 2 + 1]. One matmul of the taps with
    the K-sample frames (laid out [B, K, n] from the even and odd samples, which copies
    fastest): each output is then one chain of fused multiply-adds over the taps in order,
    as onnxruntime computes it, so the result is the same to the bit. (Sums in another order
    differ by an ulp, and the quietest CQT bins, 100 dB down, would show it.)
    """
    B, S = x.shape
    K = taps.shape[0]
    p = (K - 1) // 2
    n = (S + 2 * p - K) // 2 + 1
    xp = mx.pad(x, [(0, 0), (p, p + (S + 2 * p) % 2)])
    half = xp.shape[1] // 2
    planes = mx.contiguous(xp.reshape(B, half, 2).transpose(0, 2, 1))  # [B, 2, half]
    # frames[b, 2j + r, i] = x_padded[b, 2 (i + j) + r] = planes[b, r, i + j]
    frames = mx.as_strided(planes, (B, K // 2, 2, n), (2 * half, 1, half, 1)).reshape(B, K, n)
    # OpenBLAS sends products of fewer than ~100**3 multiply-adds to a "small matrix" kernel
    # that sums in another order; rows of zeros keep this one on the main kernel
    rows = 1 + SMALL_GEMM_MACS // (n * K)
    weights = mx.pad(taps[None, :], [(0, rows - 1), (0, 0)])
    return (weights @ frames)[:, 0]


class CQT(nn.Module):
    """nnAudio's CQT2010v2 as basic-pitch builds it: magnitude [B, T, n_cqt_bins] of audio [B, S].

    The top octave's 36 complex filters (``kernel_real``/``kernel_imag`` [36, K]) run with
    hop 256 on the reflect-padded audio; each lower octave runs the same filters on the audio
    low-passed and halved once more (hop halved too). Bins are scaled by sqrt(filter length)
    (``length_scale``, librosa's normalisation).
    """

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        n, K = args.bins_per_octave, args.cqt_kernel_size
        self.kernel_real = mx.zeros((n, K))
        self.kernel_imag = mx.zeros((n, K))
        self.lowpass = mx.zeros((args.lowpass_taps,))
        self.length_scale = mx.zeros((args.n_cqt_bins,))

    def __call__(self, x: mx.array) -> mx.array:
        a = self.args
        K, n = a.cqt_kernel_size, a.bins_per_octave
        kernels = mx.concatenate([self.kernel_real, self.kernel_imag], axis=0).T  # [K, 2n]
        hop, frames = a.hop_length, []
        for octave in range(a.n_octaves):
            if octave:
                x = downsample2(x, self.lowpass)
                hop //= 2
            frames.append(frame(reflect_pad(x, K // 2), K, hop))  # [B, T, K]
        cqt = mx.concatenate(frames, axis=1) @ kernels  # one matmul for all octaves
        ends = np.cumsum([f.shape[1] for f in frames]).tolist()
        octaves = [cqt[:, e - f.shape[1] : e] for f, e in zip(frames, ends, strict=True)]
        octaves.reverse()  # lowest first
        real = mx.concatenate([o[..., :n] for o in octaves], axis=-1)[..., -a.n_cqt_bins :]
        imag = mx.concatenate([-o[..., n:] for o in octaves], axis=-1)[..., -a.n_cqt_bins :]
        real, imag = real * self.length_scale, imag * self.length_scale
        return mx.sqrt(real * real + imag * imag)


def normalized_log(magnitude: mx.array, eps: float) -> mx.array:
    """basic-pitch's NormalizedLog: power in dB, shifted and scaled to 0..1 per window [B, T, F]."""
    power = magnitude * magnitude
    log_power = mx.log(power + eps) * np.float32(1 / np.log(10)) * 10.0
    offset = log_power - log_power.min(axis=(1, 2), keepdims=True)
    top = offset.max(axis=(1, 2), keepdims=True)
    return mx.where(top == 0, 0.0, offset / top)  # tf.math.divide_no_nan


def harmonic_stacking(x: mx.array, shifts: list[int], n_out: int) -> mx.array:
    """[B, T, F] -> [B, T, n_out, len(shifts)]: bin f of channel h is bin f + shift[h] (or 0)."""
    lo = max(0, -min(shifts))
    hi = max(0, n_out + max(shifts) - x.shape[-1])
    xp = mx.pad(x, [(0, 0), (0, 0), (lo, hi)])
    return mx.stack([xp[..., lo + s : lo + s + n_out] for s in shifts], axis=-1)


# ---- convolutions ------------------------------------------------------------------------------
def conv_same_fft(x: mx.array, weight: mx.array, bias: mx.array, G: mx.array | None = None):
    """'same' conv (stride 1, odd kernel) of ``x`` [B, T, F, C] with ``weight`` [Co, KH, KW, C].

    Along frequency through a real FFT (a wide kernel like 3x39 costs ~10x less so); along
    time as KH shifted copies stacked into the contraction; one real matmul per frequency
    does the complex products (complex numbers are only ever viewed as float pairs: MLX's
    complex arithmetic is slow on the CPU). ``G`` is ``fft_conv_kernel(weight, F)`` when
    already computed. Returns [B, T, F, Co].
    """
    B, T, F, C = x.shape
    Co, KH, KW, _ = weight.shape
    ph = KH // 2
    n = fft_size(F, KW)
    Kf = n // 2 + 1
    G = fft_conv_kernel(weight, F) if G is None else G
    X = mx.fft.rfft(x, n=n, axis=2).view(mx.float32)  # [B, T, Kf, C * 2]
    X = mx.pad(X.transpose(2, 0, 1, 3), [(0, 0), (0, 0), (ph, ph), (0, 0)])
    Z = mx.concatenate([X[:, :, kh : kh + T] for kh in range(KH)], axis=-1)
    Y = Z.reshape(Kf, B * T, KH * C * 2) @ G  # [Kf, BT, Co * 2]
    Y = Y.reshape(Kf, B * T, Co, 2).view(mx.complex64)[..., 0]
    y = mx.fft.irfft(Y, n=n, axis=0)[:F]  # [F, BT, Co]
    return y.transpose(1, 0, 2).reshape(B, T, F, Co) + bias


def fft_size(F: int, KW: int) -> int:
    """FFT length for a KW-tap 'same' conv over F bins: the smallest 2^a 3^b 5^c that is at
    least F + KW - 1, so nothing wraps round (320 for the 3x39 conv: faster than 512)."""
    n = F + KW - 1
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def fft_conv_kernel(weight: mx.array, F: int) -> mx.array:
    """``weight`` [Co, KH, KW, C] as the per-frequency matrices [Kf, KH * C * 2, Co * 2]."""
    Co, KH, KW, C = weight.shape
    pw = KW // 2
    n = fft_size(F, KW)
    Kf = n // 2 + 1
    # the kernel as a circular filter along frequency: tap kw sits at (pw - kw) mod n
    wr = weight[:, :, ::-1, :]
    g = mx.concatenate(
        [wr[:, :, KW - 1 - pw :], mx.zeros((Co, KH, n - KW, C)), wr[:, :, : KW - 1 - pw]], axis=2
    )
    H = mx.fft.rfft(g, axis=2).view(mx.float32).reshape(Co, KH, Kf, C, 2)
    Hr, Hi = H[..., 0], H[..., 1]
    # rows (kh, c, re|im in), columns (o, re|im out): (a + ib)(c + id) = ac - bd + i(ad + bc)
    G = mx.stack([mx.stack([Hr, Hi], axis=-1), mx.stack([-Hi, Hr], axis=-1)], axis=-2)
    return G.transpose(2, 1, 3, 4, 0, 5).reshape(Kf, KH * C * 2, Co * 2)


def conv_same_few_out(x: mx.array, weight: mx.array, bias: mx.array) -> mx.array:
    """'same' conv (stride 1, odd kernel) with few outputs: one matmul, then KH*KW shifted sums.

    ``x`` [B, T, F, C], ``weight`` [Co, KH, KW, C] -> [B, T, F, Co].
    """
    B, T, F, C = x.shape
    Co, KH, KW, _ = weight.shape
    ph, pw = KH // 2, KW // 2
    y = x @ weight.transpose(3, 1, 2, 0).reshape(C, KH * KW * Co)  # [B, T, F, KH*KW*Co]
    y = mx.pad(y, [(0, 0), (ph, ph), (pw, pw), (0, 0)])
    out = None
    for kh in range(KH):
        for kw in range(KW):
            j = (kh * KW + kw) * Co
            part = y[:, kh : kh + T, kw : kw + F, j : j + Co]
            out = part if out is None else out + part
    return out + bias


class Conv(nn.Module):
    """A 2-D conv's parameters, MLX layout: ``weight`` [O, KH, KW, C], ``bias`` [O]."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int]):
        super().__init__()
        scale = 1 / math.sqrt(c_in * kernel[0] * kernel[1])
        self.weight = mx.random.uniform(-scale, scale, (c_out, *kernel, c_in))
        self.bias = mx.zeros((c_out,))

    def strided(self, x: mx.array, stride: tuple[int, int]) -> mx.array:
        """TensorFlow 'same' padding with ``stride`` (the pads of the ONNX graph)."""
        _, KH, KW, _ = self.weight.shape
        pads = [
            _same_pad(x.shape[1 + i], k, s)
            for i, (k, s) in enumerate(zip((KH, KW), stride, strict=True))
        ]
        if any(lo != hi for lo, hi in pads):
            x = mx.pad(x, [(0, 0), *pads, (0, 0)])
            pads = [(0, 0), (0, 0)]
        return mx.conv2d(x, self.weight, stride=stride, padding=tuple(p[0] for p in pads)) + (
            self.bias
        )


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _KernelCache:
    """Frequency-domain conv kernels: {(layer, bins): (weight they came from, kernel)}."""

    def __init__(self):
        self.kernels: dict = {}


class BatchNorm(nn.Module):
    """Inference batch norm folded into a scale and a shift: ``x * weight + bias``."""

    def __init__(self, n: int):
        super().__init__()
        self.weight = mx.ones((n,))
        self.bias = mx.zeros((n,))

    def __call__(self, x: mx.array) -> mx.array:
        return x * self.weight + self.bias


# ---- the network -------------------------------------------------------------------------------
class Model(nn.Module):
    """The network of one window: audio [B, window_samples] -> dict of posteriorgrams.

    Returns ``note`` [B, T, 88], ``onset`` [B, T, 88] and ``contour`` [B, T, 264], T = 172.
    (The Keras model's first contour conv, 32 filters, is computed and then overwritten; the
    ONNX export dropped it, and so does this port.)
    """

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        h = len(args.harmonics)
        self.cqt = CQT(args)
        self.input_bn = BatchNorm(1)
        self.contour_conv = Conv(h, args.n_filters_contour, (3, 39))  # BN folded in
        self.contour_out = Conv(args.n_filters_contour, 1, (5, 5))
        self.note_conv = Conv(1, args.n_filters_notes, (7, 7))  # stride (1, 3)
        self.note_out = Conv(args.n_filters_notes, 1, (7, 3))
        self.onset_conv = Conv(h, args.n_filters_onsets, (5, 5))  # stride (1, 3), BN folded in
        self.onset_out = Conv(args.n_filters_onsets + 1, 1, (3, 3))
        self._cache = _KernelCache()  # a plain object: not a parameter

    def __call__(self, audio: mx.array) -> dict[str, mx.array]:
        a = self.args
        x = normalized_log(self.cqt(audio), a.log_eps)  # [B, T, 309]
        x = self.input_bn(x)
        x = harmonic_stacking(x, a.harmonic_shifts, a.n_contour_bins)  # [B, T, 264, 8]

        F = x.shape[2]
        w = self.contour_conv
        c = nn.relu(conv_same_fft(x, w.weight, w.bias, self._fft_kernel("contour_conv", F)))
        w = self.contour_out
        contour = mx.sigmoid(conv_same_fft(c, w.weight, w.bias, self._fft_kernel("contour_out", F)))

        n = nn.relu(self.note_conv.strided(contour, (1, 3)))  # [B, T, 88, 32]
        note = mx.sigmoid(conv_same_few_out(n, self.note_out.weight, self.note_out.bias))

        o = nn.relu(self.onset_conv.strided(x, (1, 3)))  # [B, T, 88, 32]
        o = mx.concatenate([note, o], axis=-1)
        onset = mx.sigmoid(conv_same_few_out(o, self.onset_out.weight, self.onset_out.bias))
        return {"note": note[..., 0], "onset": onset[..., 0], "contour": contour[..., 0]}

    def _fft_kernel(self, name: str, F: int) -> mx.array:
        """A conv's kernel in the frequency domain, kept while its weight is the same array."""
        w = self[name].weight
        weight, kernel = self._cache.kernels.get((name, F), (None, None))
        if weight is not w:
            kernel = fft_conv_kernel(w, F)
            self._cache.kernels[(name, F)] = (w, kernel)
        return kernel

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        """Accept MLX-layout weights as they are, or ONNX layouts under the same names.

        ONNX conv kernels [O, C, KH, KW] move to [O, KH, KW, C]; the CQT's [36, 1, 1, K]
        filters, [1, 1, 1, K] low-pass and [309, 1, 1] scale lose their unit axes. Tensors
        whose shape fits neither are kept as they are, so strict loading names them.
        """
        from mlx.utils import tree_flatten

        expected = {k: tuple(v.shape) for k, v in tree_flatten(self.parameters())}
        out = {}
        for k, v in weights.items():
            want = expected.get(k)
            if want is None or tuple(v.shape) == want:
                out[k] = v
            elif v.ndim == 4 and v.transpose(0, 2, 3, 1).shape == want:
                out[k] = v.transpose(0, 2, 3, 1)
            elif v.size == math.prod(want) and [d for d in v.shape if d != 1] == [
                d for d in want if d != 1
            ]:
                out[k] = v.reshape(want)
            else:
                out[k] = v
        return out


# ---- fixed front-end weights, computed (for models built from a config alone) ------------------
def cqt_weights(args: ModelArgs) -> dict[str, np.ndarray]:
    """The CQT's fixed tensors as nnAudio computes them (scipy), named as in ``Model``.

    The shipped weights are read from the ONNX file instead; tests check that both agree.
    """
    from scipy.signal import firwin2, get_window

    bpo, sr = args.bins_per_octave, float(args.sample_rate)
    Q = 1.0 / (2 ** (1 / bpo) - 1)
    n_octaves = args.n_octaves
    remainder = args.n_cqt_bins % bpo
    fmin_t = args.fmin_hz * 2 ** (n_octaves - 1)
    top = bpo - 1 if remainder == 0 else remainder - 1
    fmax_t = fmin_t * 2 ** (top / bpo)
    fmin_t = fmax_t / 2 ** (1 - 1 / bpo)
    n_fft = 2 ** int(np.ceil(np.log2(np.ceil(Q * sr / fmin_t))))
    if n_fft != args.cqt_kernel_size:
        raise ValueError(f"CQT kernel size would be {n_fft}, not {args.cqt_kernel_size}")
    freqs = fmin_t * 2.0 ** (np.arange(bpo) / float(bpo))
    kernels = np.zeros((bpo, n_fft), dtype=np.complex64)
    for k, freq in enumerate(freqs):
        length = np.ceil(Q * sr / freq)
        start = int(np.ceil(n_fft / 2.0 - length / 2.0)) - int(length % 2)
        sig = (
            get_window("hann", int(length), fftbins=True)
            * np.exp(np.r_[-length // 2 : length // 2] * 1j * 2 * np.pi * freq / sr)
            / length
        )
        kernels[k, start : start + int(length)] = sig / np.linalg.norm(sig, 1)
    all_freqs = args.fmin_hz * 2.0 ** (np.arange(args.n_cqt_bins) / float(bpo))
    lengths = np.ceil(Q * sr / all_freqs)
    band = 0.5
    lowpass = firwin2(
        args.lowpass_taps, [0.0, band / 1.001, band * 1.001, 1.0], [1.0, 1.0, 0.0, 0.0]
    )
    return {
        "cqt.kernel_real": kernels.real.astype(np.float32),
        "cqt.kernel_imag": kernels.imag.astype(np.float32),
        "cqt.lowpass": lowpass.astype(np.float32),
        "cqt.length_scale": np.sqrt(lengths.astype(np.float32)),
    }


# ---- windowing (basic-pitch's inference.py) ----------------------------------------------------
def window_audio(audio: np.ndarray) -> Iterator[np.ndarray]:
    """basic-pitch's ``get_audio_input``: windows [AUDIO_N_SAMPLES] of mono 22050 Hz ``audio``.

    OVERLAP_LEN / 2 zeros go in front; windows start every HOP_SIZE samples; the last ones are
    zero-padded. Yields ``n_windows(len(audio))`` float32 arrays.
    """
    padded = np.concatenate([np.zeros(OVERLAP_LEN // 2, dtype=np.float32), audio])
    for i in range(0, padded.shape[0], HOP_SIZE):
        window = padded[i : i + AUDIO_N_SAMPLES]
        if window.shape[0] < AUDIO_N_SAMPLES:
            window = np.pad(window, (0, AUDIO_N_SAMPLES - window.shape[0]))
        yield window


def n_windows(n_samples: int) -> int:
    """How many windows ``window_audio`` makes of ``n_samples`` samples."""
    return -(-(n_samples + OVERLAP_LEN // 2) // HOP_SIZE)


def n_output_frames(n_samples: int) -> int:
    """Frames basic-pitch keeps for ``n_samples`` of audio: floor(n * 86 / 22050)."""
    return int(np.floor(n_samples * (ANNOTATIONS_FPS / AUDIO_SAMPLE_RATE)))


def unwrap_output(output: np.ndarray, audio_original_length: int, n_overlapping_frames: int):
    """basic-pitch's ``unwrap_output``: [n_windows, T, F] -> [n_frames, F].

    Half the overlapping frames are cut from both ends of each window; the rest are joined
    and cut to ``n_output_frames(audio_original_length)``.
    """
    n_olap = int(0.5 * n_overlapping_frames)
    if n_olap > 0:
        output = output[:, n_olap:-n_olap, :]
    unwrapped = output.reshape(output.shape[0] * output.shape[1], output.shape[2])
    return unwrapped[: n_output_frames(audio_original_length), :]


# ---- audio in ----------------------------------------------------------------------------------
def prepare_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at 22050 Hz, as ``librosa.load(path, sr=22050, mono=True)`` makes it.

    ``audio`` is [S] or [S, channels] (soundfile's layout); integer samples are scaled to
    -1..1 as soundfile does. Channels are averaged, then resampled with soxr's HQ mode and
    cut or zero-padded to ceil(S * 22050 / sample_rate) samples, as librosa does.
    """
    a = np.asarray(audio)
    if a.ndim == 2 and a.shape[1] > 64 and a.shape[0] <= 64:
        raise ValueError(
            f"audio of shape {a.shape} looks like [channels, samples]; pass [samples, channels]"
        )
    if a.ndim not in (1, 2):
        raise ValueError(f"audio must be [samples] or [samples, channels], not shape {a.shape}")
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / np.float32(2 ** (8 * a.dtype.itemsize - 1))
    a = a.astype(np.float32, copy=False)
    if a.ndim == 2:
        a = np.mean(a, axis=1) if a.shape[1] > 1 else a[:, 0]
    if not np.all(np.isfinite(a)):
        raise ValueError("the audio holds NaN or infinite samples")
    if sample_rate != AUDIO_SAMPLE_RATE and a.shape[0]:
        import soxr

        n = int(np.ceil(a.shape[0] * float(AUDIO_SAMPLE_RATE) / sample_rate))
        a = soxr.resample(a, sample_rate, AUDIO_SAMPLE_RATE, quality=RESAMPLE_QUALITY)
        a = np.asarray(a, dtype=np.float32)
        a = a[:n] if a.shape[0] >= n else np.pad(a, (0, n - a.shape[0]))
    return np.ascontiguousarray(a, dtype=np.float32)


# ---- the public model ------------------------------------------------------------------------
class BasicPitch:
    """Basic Pitch in MLX: ``BasicPitch.load()(audio, sample_rate)`` -> note/onset/contour.

    >>> bp = BasicPitch.load()
    >>> out = bp(audio, 44100)   # audio [S] or [S, channels]
    >>> out["note"].shape, out["onset"].shape, out["contour"].shape
    ((n_frames, 88), (n_frames, 88), (n_frames, 264))

    The arrays are what basic-pitch's ``run_inference`` returns for the same audio: float32
    posteriorgrams (0..1) at 86.13 frames a second (hop 256 at 22050 Hz).
    """

    sample_rate = AUDIO_SAMPLE_RATE
    frame_rate = AUDIO_SAMPLE_RATE / FFT_HOP

    def __init__(self, model: Model, path: Path | None = None):
        self.model = model
        self.path = path

    @classmethod
    def load(cls, path: str | Path | None = None) -> BasicPitch:
        """Load a converted model folder (default: the weights shipped in the package)."""
        path = DEFAULT_MODEL_DIR if path is None else Path(path)
        config = json.loads((path / "config.json").read_text())
        model = Model(ModelArgs.from_dict(config))
        weights = model.sanitize(mx.load(str(path / "model.safetensors")))
        model.load_weights(list(weights.items()), strict=True)
        mx.eval(model.parameters())
        return cls(model, path)

    def predict(
        self,
        audio: np.ndarray,
        sample_rate: int,
        *,
        progress: Callable[[int, int], None] | None = None,
        windows_per_batch: int = DEFAULT_WINDOWS_PER_BATCH,
    ) -> dict[str, np.ndarray]:
        """Posteriorgrams of ``audio`` ([S] or [S, channels] at ``sample_rate`` Hz).

        Returns ``note`` [n, 88], ``onset`` [n, 88] and ``contour`` [n, 264] float32 arrays,
        n = floor(seconds * 86). ``progress(windows_done, windows_total)`` is called after
        each batch of windows.
        """
        return self.run(prepare_audio(audio, sample_rate), progress, windows_per_batch)

    __call__ = predict

    def run(
        self,
        audio: np.ndarray,
        progress: Callable[[int, int], None] | None = None,
        windows_per_batch: int = DEFAULT_WINDOWS_PER_BATCH,
    ) -> dict[str, np.ndarray]:
        """``predict`` for audio already mono, float32, at 22050 Hz [S]."""
        total = n_windows(audio.shape[0])
        outputs: dict[str, list[np.ndarray]] = {"note": [], "onset": [], "contour": []}
        batch: list[np.ndarray] = []
        done = 0
        for window in window_audio(audio):
            batch.append(window)
            if len(batch) == windows_per_batch or done + len(batch) == total:
                result = self.model(mx.array(np.stack(batch)))
                mx.eval(result)
                for k in outputs:
                    outputs[k].append(np.array(result[k]))
                done += len(batch)
                batch = []
                if progress is not None:
                    progress(done, total)
        return {
            k: unwrap_output(np.concatenate(v), audio.shape[0], N_OVERLAPPING_FRAMES)
            for k, v in outputs.items()
        }
