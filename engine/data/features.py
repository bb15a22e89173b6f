"""Features of a piece of audio, stored beside each preprocessed item (`save_features`).

`audio_features` computes, from one short-time Fourier transform of the mono mix (librosa's
defaults: ``N_FFT`` = 2048-sample windows every ``HOP`` = 512 samples, centred), the frame
features a training run or ``data stats`` reads, plus the scalars a dataset keeps as
metadata estimates. ``T`` below is the number of frames, ``1 + len(y) // HOP``; frame ``t``
is centred at ``t * HOP / sample_rate`` seconds.

=====================  ============  ===============================================
name                   shape, dtype  what, in which unit
=====================  ============  ===============================================
``mel_db``             [128, T] f32  mel power spectrogram (128 bands, 0 Hz to sr/2),
                                     dB (``power_to_db``: ref 1, at most 80 dB below the
                                     loudest cell)
``chroma``             [12, T] f32   energy per pitch class (C first), 0..1 a frame
``mfcc``               [20, T] f32   20 mel-frequency cepstral coefficients of ``mel_db``
``spectral_centroid``  [T] f32       centre of mass of the spectrum, Hz
``spectral_rolloff``   [T] f32       frequency under which 85 % of the energy lies, Hz
``beat_times``         [B] f64       beats, seconds from the start
``tempo_bpm``          [] f64        beats a minute (NaN when fewer than two beats)
``key``                [] str        e.g. ``"C major"`` (``""`` when nothing is pitched)
``loudness_lufs``      [] f64        integrated loudness, LUFS (ITU-R BS.1770; -inf for
                                     silence, NaN for audio under 0.4 s)
``sample_rate``        [] i64        Hz of the audio the features were computed on
``hop_length``         [] i64        samples between frames (`HOP`)
=====================  ============  ===============================================

The spectral features are exactly what librosa's own ``melspectrogram``, ``chroma_stft``,
``mfcc``, ``spectral_centroid`` and ``spectral_rolloff`` return from the waveform (each
of those computes the transform again; this computes it once). The tempo and beats come from
the project's one beat chain (`engine.audio.rhythm`: onset strength, ``beat_track``, the
tempo from the slope through the beats), the key from its one key finder
(`engine.symbolic.theory.key_from_profile`, Krumhansl-Schmuckler on the mean chroma), the
loudness from pyloudnorm (with every channel, as BS.1770 sums them).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from engine import names
from engine.audio.rhythm import HOP

N_FFT = 2048
N_MELS = 128
N_MFCC = 20
ROLLOFF_PERCENT = 0.85
FRAME_FEATURES = ("mel_db", "chroma", "mfcc", "spectral_centroid", "spectral_rolloff")
SCALAR_FEATURES = ("tempo_bpm", "key", "loudness_lufs", "sample_rate", "hop_length")
FEATURES = (*FRAME_FEATURES, "beat_times", *SCALAR_FEATURES)


def audio_features(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """The features of ``y`` ([S] mono or [S, channels], floats, full scale 1) at ``sr`` Hz:
    a dict of the arrays listed in this module's docstring (`FEATURES`)."""
    import librosa

    from engine.audio.io import quiet_libraries
    from engine.audio.rhythm import beat_period

    y = np.asarray(y, dtype=np.float32)
    mono = y if y.ndim == 1 else y.mean(axis=1)
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    with quiet_libraries():  # "n_fft is too large" on very short audio, and the like
        mag = np.abs(librosa.stft(mono, n_fft=N_FFT, hop_length=HOP))
        power = mag**2
        mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=N_MELS)
        mel_db = librosa.power_to_db(mel)
        chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=N_FFT, hop_length=HOP)
        mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=N_MFCC)
        centroid = librosa.feature.spectral_centroid(S=mag, sr=sr, n_fft=N_FFT, hop_length=HOP)
        rolloff = librosa.feature.spectral_rolloff(
            S=mag, sr=sr, n_fft=N_FFT, hop_length=HOP, roll_percent=ROLLOFF_PERCENT
        )
        envelope = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=HOP)
        _, frames = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=HOP)
        beats = librosa.frames_to_time(np.asarray(frames, dtype=int), sr=sr, hop_length=HOP)
    beats = np.asarray(beats, dtype=np.float64)
    tempo = 60.0 / beat_period(beats) if beats.shape[0] >= 2 else math.nan
    return {
        "mel_db": mel_db.astype(np.float32),
        "chroma": chroma.astype(np.float32),
        "mfcc": mfcc.astype(np.float32),
        "spectral_centroid": centroid[0].astype(np.float32),
        "spectral_rolloff": rolloff[0].astype(np.float32),
        "beat_times": beats,
        "tempo_bpm": np.array(tempo, dtype=np.float64),
        "key": np.array(key_of_chroma(chroma)),
        "loudness_lufs": np.array(loudness_lufs(y, sr), dtype=np.float64),
        "sample_rate": np.array(int(sr), dtype=np.int64),
        "hop_length": np.array(HOP, dtype=np.int64),
    }


def key_of_chroma(chroma: np.ndarray) -> str:
    """``"C major"``… from a chroma [12, T] (its mean is the pitch-class profile), or ``""``
    when it is empty (silence)."""
    from engine.symbolic.theory import key_from_profile

    profile = np.asarray(chroma, dtype=np.float64).mean(axis=1)
    if not np.isfinite(profile).all() or profile.sum() <= 0 or np.ptp(profile) == 0:
        return ""
    tonic, mode = key_from_profile(profile)
    return f"{names.TONICS[tonic]} {mode}"


def loudness_lufs(y: np.ndarray, sr: int) -> float:
    """Integrated loudness (ITU-R BS.1770, pyloudnorm) of ``y`` ([S] or [S, channels]) in
    LUFS: -inf for silence, NaN for audio shorter than one 0.4 s gating block or with more
    than the 5 channels BS.1770 weighs."""
    import pyloudnorm

    y = np.asarray(y, dtype=np.float64)
    channels = 1 if y.ndim == 1 else y.shape[1]
    if y.shape[0] < int(0.4 * sr) + 1 or channels > 5:
        return math.nan
    meter = pyloudnorm.Meter(sr)
    with np.errstate(divide="ignore"):
        return float(meter.integrated_loudness(y))


def save_features(features: dict[str, np.ndarray]) -> bytes:
    """The features as the bytes of an .npz file (numpy arrays only, no pickles)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in features.items()})
    return buf.getvalue()


def load_features(source: bytes | str | Path) -> dict[str, np.ndarray]:
    """Features saved by `save_features`, from their bytes or a file (a dataset's stored
    file: ``ds.object_path(item.extras["features"])``)."""
    f = io.BytesIO(source) if isinstance(source, bytes | bytearray) else open(source, "rb")
    with f, np.load(f, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
