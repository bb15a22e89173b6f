"""Melody chroma features for MusicGen-Melody, in numpy.

The same computation as transformers' ``MusicgenMelodyFeatureExtractor``: resample to 32 kHz
(a port of ``torchaudio.functional.resample``'s windowed-sinc kernel, with the extractor's
``rolloff=0.945, lowpass_filter_width=24``), mix to mono, keep at most ``chunk_length``
seconds, take a Hann-window power spectrogram (``n_fft=16384``, ``hop_length=4096``, centred,
normalised by the window's energy), project it on a librosa-style chroma filter bank and
keep a one-hot of the strongest pitch class in each frame.

Everything is computed in float64 from float32 input (transformers works in float32), so the
one-hot frames agree with transformers except where two pitch classes tie to ~1e-6.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

CHROMA_SAMPLE_RATE = 32_000  # Hz: the rate MusicGen-Melody's extractor works at
DEFAULT_N_CHROMA = 12
DEFAULT_N_FFT = 16_384  # samples (~0.51 s at 32 kHz)
DEFAULT_HOP_LENGTH = 4_096  # samples: 7.8125 chroma frames per second at 32 kHz
DEFAULT_CHUNK_LENGTH_S = 30  # seconds of audio kept; the rest is cut off
RESAMPLE_ROLLOFF = 0.945
RESAMPLE_LOWPASS_FILTER_WIDTH = 24


def resample(
    audio: np.ndarray,
    orig_sr: int,
    new_sr: int,
    *,
    rolloff: float = RESAMPLE_ROLLOFF,
    lowpass_filter_width: int = RESAMPLE_LOWPASS_FILTER_WIDTH,
) -> np.ndarray:
    """Resample ``audio`` [T] from ``orig_sr`` to ``new_sr`` Hz (``torchaudio`` sinc_interp_hann).

    Returns [ceil(T * new_sr / orig_sr)] samples in float64.
    """
    x = np.asarray(audio, dtype=np.float64)
    if orig_sr == new_sr:
        return x
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    base_freq = min(orig, new) * rolloff  # cut-off below the lower Nyquist rate
    width = math.ceil(lowpass_filter_width * orig / base_freq)
    # one filter per output phase: kernels[j] makes y[n * new + j] from x[n * orig - width ...]
    idx = np.arange(-width, width + orig, dtype=np.float64)[None, :] / orig
    t = np.arange(0, -new, -1, dtype=np.float64)[:, None] / new + idx
    t = np.clip(t * base_freq, -lowpass_filter_width, lowpass_filter_width)
    window = np.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc = np.where(t == 0, 1.0, np.sin(t) / t)
    kernels = sinc * window * (base_freq / orig)  # [new, 2 * width + orig]

    length = x.shape[0]
    x = np.pad(x, (width, width + orig))
    frames = sliding_window_view(x, kernels.shape[1])[::orig]  # [length // orig + 1, K]
    y = (frames @ kernels.T).reshape(-1)
    # torchaudio rounds the target length through a float32 tensor
    target = int(math.ceil(np.float32(new * length / orig)))
    return y[:target]


def chroma_filter_bank(
    sampling_rate: int, n_fft: int, n_chroma: int = DEFAULT_N_CHROMA, tuning: float = 0.0
) -> np.ndarray:
    """Chroma filters [n_chroma, n_fft // 2 + 1] (librosa's ``filters.chroma`` defaults).

    Gaussian bumps per pitch class, each FFT bin's column L2-normalised, weighted by a
    Gaussian over octaves centred on octave 5 (half-width 2), starting at C.
    """
    freqs = np.linspace(0, sampling_rate, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (tuning / n_chroma)
    freq_bins = n_chroma * np.log2(freqs / (a440 / 16))
    # the 0 Hz bin gets a made-up pitch 1.5 octaves below bin 1
    freq_bins = np.concatenate(([freq_bins[0] - 1.5 * n_chroma], freq_bins))
    bins_width = np.concatenate((np.maximum(freq_bins[1:] - freq_bins[:-1], 1.0), [1]))

    d = np.subtract.outer(freq_bins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    d = np.remainder(d + half + 10 * n_chroma, n_chroma) - half  # into -n/2 .. n/2
    filters = np.exp(-0.5 * (2 * d / np.tile(bins_width, (n_chroma, 1))) ** 2)
    filters = filters / np.sqrt(np.sum(filters**2, axis=0, keepdims=True))
    filters *= np.tile(np.exp(-0.5 * ((freq_bins / n_chroma - 5.0) / 2.0) ** 2), (n_chroma, 1))
    filters = np.roll(filters, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(filters[:, : int(1 + n_fft / 2)])


def power_spectrogram(audio: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred (reflect-padded) periodic-Hann power spectrogram [1 + T // hop, n_fft // 2 + 1].

    Normalised by the window's energy, like ``torchaudio.transforms.Spectrogram(normalized=True,
    power=2)``.
    """
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    x = np.pad(np.asarray(audio, dtype=np.float64), n_fft // 2, mode="reflect")
    frames = sliding_window_view(x, n_fft)[::hop_length]
    spec = np.fft.rfft(frames * window, axis=-1)
    return (spec.real**2 + spec.imag**2) / np.sum(window**2)


def melody_chroma(
    audio: np.ndarray,
    sampling_rate: int,
    *,
    n_chroma: int = DEFAULT_N_CHROMA,
    hop_length: int = DEFAULT_HOP_LENGTH,
    n_fft: int = DEFAULT_N_FFT,
    chunk_length: int = DEFAULT_CHUNK_LENGTH_S,
) -> np.ndarray:
    """One-hot melody chroma [frames, n_chroma] float32 of ``audio`` [T] or [T, C] (channels last).

    ``audio`` at ``sampling_rate`` Hz is resampled to 32 kHz, averaged to mono and cut to
    ``chunk_length`` seconds; each frame (``hop_length`` samples at 32 kHz) is 1 at its
    strongest pitch class (index 0 is C) and 0 elsewhere. ``frames = 1 + T_32k // hop_length``
    (audio shorter than ``n_fft`` is first zero-padded on both sides to ``n_fft``).
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float64)
    elif x.ndim != 1:
        raise ValueError(f"audio must be [samples] or [samples, channels], got shape {x.shape}")
    x = resample(x, sampling_rate, CHROMA_SAMPLE_RATE)
    x = x[: chunk_length * CHROMA_SAMPLE_RATE]
    if x.shape[0] < n_fft:
        pad = n_fft - x.shape[0]
        x = np.pad(x, (pad // 2, pad - pad // 2))

    power = power_spectrogram(x, n_fft, hop_length)
    chroma = power @ chroma_filter_bank(CHROMA_SAMPLE_RATE, n_fft, n_chroma).T
    one_hot = np.zeros(chroma.shape, dtype=np.float32)
    one_hot[np.arange(chroma.shape[0]), chroma.argmax(axis=-1)] = 1.0
    return one_hot
