"""melody_chroma against transformers' MusicgenMelodyFeatureExtractor.

The extractor needs torchaudio for its spectrogram and resampler. Where torchaudio cannot be
imported (no wheel matches this torch), ``torchaudio_port`` stands in: torchaudio 2.11's
``Spectrogram`` and ``functional.resample``, written again in torch. It agrees with the real
torchaudio bit for bit (checked by hand: see docs/models/encodec-notes.md).
"""

import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import importlib
import math
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers.audio_utils import chroma_filter_bank as hf_chroma_filter_bank  # noqa: E402

from engine.models.chroma import (  # noqa: E402
    CHROMA_SAMPLE_RATE,
    DEFAULT_HOP_LENGTH,
    DEFAULT_N_FFT,
    chroma_filter_bank,
    melody_chroma,
    resample,
)


def torchaudio_port() -> types.ModuleType:
    """The two torchaudio pieces the extractor uses, as in torchaudio 2.11."""

    class Spectrogram(torch.nn.Module):
        def __init__(self, n_fft, win_length, hop_length, power, center, pad, normalized):
            super().__init__()
            assert pad == 0 and normalized is True
            self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
            self.power, self.center = power, center
            self.register_buffer("window", torch.hann_window(win_length))

        def forward(self, waveform):
            shape = waveform.size()
            spec = torch.stft(
                waveform.reshape(-1, shape[-1]),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=self.window,
                center=self.center,
                pad_mode="reflect",
                normalized=False,
                onesided=True,
                return_complex=True,
            )
            spec = spec.reshape(shape[:-1] + spec.shape[-2:])
            spec /= self.window.pow(2.0).sum().sqrt()
            return spec.abs().pow(self.power)

    def resample(waveform, orig_freq, new_freq, rolloff=0.99, lowpass_filter_width=6):
        if orig_freq == new_freq:
            return waveform
        gcd = math.gcd(int(orig_freq), int(new_freq))
        orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
        base_freq = min(orig, new) * rolloff
        width = math.ceil(lowpass_filter_width * orig / base_freq)
        dtype = waveform.dtype
        idx = torch.arange(-width, width + orig, dtype=dtype)[None, None] / orig
        t = torch.arange(0, -new, -1, dtype=dtype)[:, None, None] / new + idx
        t *= base_freq
        t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)
        window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
        t *= math.pi
        kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
        kernels *= window * (base_freq / orig)

        shape = waveform.size()
        waveform = waveform.view(-1, shape[-1])
        length = waveform.shape[-1]
        waveform = torch.nn.functional.pad(waveform, (width, width + orig))
        out = torch.nn.functional.conv1d(waveform[:, None], kernels, stride=orig)
        out = out.transpose(1, 2).reshape(waveform.shape[0], -1)
        target = torch.ceil(torch.as_tensor(new * length / orig)).long()
        out = out[..., :target]
        return out.view(shape[:-1] + out.shape[-1:])

    module = types.ModuleType("torchaudio_port")
    module.transforms = types.SimpleNamespace(Spectrogram=Spectrogram)
    module.functional = types.SimpleNamespace(resample=resample)
    return module


@pytest.fixture(scope="module")
def torchaudio():
    try:
        import torchaudio

        return torchaudio
    except Exception:  # not installed, or built for another torch
        return torchaudio_port()


@pytest.fixture(scope="module")
def extractor(torchaudio):
    mod = importlib.import_module(
        "transformers.models.musicgen_melody.feature_extraction_musicgen_melody"
    )
    saved = getattr(mod, "torchaudio", None)
    mod.torchaudio = torchaudio
    fe = mod.MusicgenMelodyFeatureExtractor()

    def run(audio: np.ndarray, sr: int) -> np.ndarray:
        """audio [T] or [C, T] -> one-hot chroma [frames, 12]."""
        x = torch.from_numpy(np.ascontiguousarray(audio, np.float32))
        out = fe(x[None], sampling_rate=sr, return_tensors="np")
        return out["input_features"][0]

    yield run
    if saved is not None:
        mod.torchaudio = saved


def chords(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Two-note chords (random pitches) changing every half second."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * 0.5)) / sr
    parts = []
    for _ in range(int(seconds * 2)):
        f1, f2 = 220 * 2 ** (rng.integers(0, 24) / 12), 330 * 2 ** (rng.integers(0, 12) / 12)
        parts.append(np.sin(2 * np.pi * f1 * t) + 0.7 * np.sin(2 * np.pi * f2 * t + 1.0))
    return (0.2 * np.concatenate(parts)).astype(np.float32)


def c_major(sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = sum(np.sin(2 * np.pi * f * t + i) for i, f in enumerate([261.63, 329.63, 392.0]))
    return (0.2 * x).astype(np.float32)


def noise(sr: int, seconds: float) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(int(sr * seconds)).astype(np.float32)


SIGNALS = {
    "c_major": lambda sr: c_major(sr, 3.0),
    "noise": lambda sr: noise(sr, 4.3),
    "chords": lambda sr: chords(sr, 8.0),
    "shorter_than_fft": lambda sr: c_major(sr, 0.2),
    "longer_than_30s": lambda sr: chords(sr, 31.0, seed=2),
}


def test_filter_bank_matches_transformers():
    ours = chroma_filter_bank(CHROMA_SAMPLE_RATE, DEFAULT_N_FFT)
    ref = hf_chroma_filter_bank(DEFAULT_N_FFT, 12, CHROMA_SAMPLE_RATE, tuning=0)
    assert ours.shape == (12, DEFAULT_N_FFT // 2 + 1)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("sr", [44100, 48000, 22050, 16000])
def test_resample_is_torchaudios(torchaudio, sr):
    x = noise(sr, 1.3).astype(np.float64)
    ref = torchaudio.functional.resample(
        torch.from_numpy(x), sr, CHROMA_SAMPLE_RATE, rolloff=0.945, lowpass_filter_width=24
    ).numpy()
    ours = resample(x, sr, CHROMA_SAMPLE_RATE)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-12)


@pytest.mark.parametrize("name", list(SIGNALS))
def test_identical_at_32k(extractor, name):
    x = SIGNALS[name](CHROMA_SAMPLE_RATE)
    ours = melody_chroma(x, CHROMA_SAMPLE_RATE)
    np.testing.assert_array_equal(ours, extractor(x, CHROMA_SAMPLE_RATE))
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours.sum(axis=1), 1.0)


@pytest.mark.parametrize("name", list(SIGNALS))
def test_identical_at_44k(extractor, name):
    x = SIGNALS[name](44100)
    np.testing.assert_array_equal(melody_chroma(x, 44100), extractor(x, 44100))


def test_stereo_is_mixed_to_mono(extractor):
    x = np.stack([chords(44100, 4.0, seed=3), noise(44100, 4.0)], axis=1)  # [T, 2]
    np.testing.assert_array_equal(melody_chroma(x, 44100), extractor(x.T, 44100))


def test_frames_and_pitch():
    t = np.arange(2 * CHROMA_SAMPLE_RATE) / CHROMA_SAMPLE_RATE
    x = np.sin(2 * np.pi * 392.0 * t).astype(np.float32)  # G4
    chroma = melody_chroma(x, CHROMA_SAMPLE_RATE)
    assert chroma.shape == (1 + x.shape[0] // DEFAULT_HOP_LENGTH, 12)
    assert (chroma.argmax(axis=1) == 7).all()  # C=0 ... G=7
    thirty_one_s = np.zeros(31 * CHROMA_SAMPLE_RATE, np.float32)
    assert melody_chroma(thirty_one_s, CHROMA_SAMPLE_RATE).shape[0] == 235  # cut to 30 s


def test_rejects_batches():
    with pytest.raises(ValueError, match="samples"):
        melody_chroma(np.zeros((2, 100, 2), np.float32), CHROMA_SAMPLE_RATE)
