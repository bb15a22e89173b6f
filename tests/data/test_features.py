"""Audio features (`engine.data.features`): shapes and units, the same numbers as plain
librosa calls, and measured tempo, key and loudness of audio built here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.data.features import (
    FEATURES,
    HOP,
    audio_features,
    load_features,
    loudness_lufs,
    save_features,
)

SR = 22050  # the rate of the audio the ``signals`` fixture builds (signals.SR)


def test_shapes_dtypes_and_round_trip():
    y = np.random.default_rng(1).standard_normal(3 * SR).astype(np.float32) * 0.1
    f = audio_features(y, SR)
    assert set(f) == set(FEATURES)
    T = 1 + y.shape[0] // HOP
    assert f["mel_db"].shape == (128, T) and f["mel_db"].dtype == np.float32
    assert f["chroma"].shape == (12, T) and 0 <= f["chroma"].min() <= f["chroma"].max() <= 1
    assert f["mfcc"].shape == (20, T)
    assert f["spectral_centroid"].shape == (T,) and f["spectral_rolloff"].shape == (T,)
    # white noise: the centroid sits near the middle of the band, the roll-off above it
    assert 3000 < float(np.median(f["spectral_centroid"])) < 8000
    assert float(np.median(f["spectral_rolloff"])) > float(np.median(f["spectral_centroid"]))
    # dB of the mel power (librosa's scale: ref 1, an 80 dB range below the loudest cell)
    assert f["mel_db"].max() - f["mel_db"].min() <= 80.0 + 1e-3
    for k in ("tempo_bpm", "key", "loudness_lufs", "sample_rate", "hop_length"):
        assert f[k].shape == ()
    assert int(f["sample_rate"]) == SR and int(f["hop_length"]) == HOP
    back = load_features(save_features(f))
    assert set(back) == set(f)
    for k in f:
        np.testing.assert_array_equal(back[k], f[k])


def test_stereo_is_analysed_as_its_mix_and_loudness_counts_both_channels(signals):
    y = signals.scale_and_chord()[: 4 * SR]
    stereo = np.stack([y, y], axis=1)
    fm, fs = audio_features(y, SR), audio_features(stereo, SR)
    np.testing.assert_allclose(fs["mel_db"], fm["mel_db"], atol=1e-4)
    # BS.1770 sums the channels' power: two equal channels are 3 dB louder than one
    assert float(fs["loudness_lufs"]) - float(fm["loudness_lufs"]) == pytest.approx(3.01, abs=0.05)


def test_the_same_numbers_as_plain_librosa_calls(signals):
    import librosa

    y = (signals.scale_and_chord()[: 5 * SR] + signals.clicks(100, 5.0)).astype(np.float32)
    f = audio_features(y, SR)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR))
    np.testing.assert_allclose(f["mel_db"], mel, atol=1e-3)
    np.testing.assert_allclose(f["chroma"], librosa.feature.chroma_stft(y=y, sr=SR), atol=1e-5)
    np.testing.assert_allclose(
        f["mfcc"], librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20), atol=1e-2, rtol=1e-4
    )
    np.testing.assert_allclose(
        f["spectral_centroid"], librosa.feature.spectral_centroid(y=y, sr=SR)[0], rtol=1e-4
    )
    np.testing.assert_allclose(
        f["spectral_rolloff"], librosa.feature.spectral_rolloff(y=y, sr=SR)[0], rtol=1e-4
    )


@pytest.mark.parametrize("bpm", [90.0, 120.0, 150.0])
def test_tempo_and_beats_of_clicks(signals, bpm):
    f = audio_features(signals.clicks(bpm, 20.0), SR)
    assert float(f["tempo_bpm"]) == pytest.approx(bpm, rel=0.02)
    gaps = np.diff(f["beat_times"])
    assert np.median(gaps) == pytest.approx(60 / bpm, abs=0.03)
    # the beats are on the clicks (within two 23 ms frames)
    phase = np.mod(f["beat_times"] + 0.1, 60 / bpm) - 0.1
    assert np.median(np.abs(phase)) < 0.05


@pytest.mark.parametrize(("tonic", "name"), [(60, "C major"), (67, "G major"), (62, "D major")])
def test_key_of_a_scale_and_chord(signals, tonic, name):
    f = audio_features(signals.scale_and_chord(tonic), SR)
    assert str(f["key"]) == name


def test_loudness_is_pyloudnorm_and_silence_has_no_key_or_tempo():
    import pyloudnorm

    y = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(3 * SR) / SR)).astype(np.float32)
    expected = pyloudnorm.Meter(SR).integrated_loudness(y.astype(np.float64))
    assert loudness_lufs(y, SR) == pytest.approx(expected, abs=1e-6)
    # a 1 kHz sine at -6 dBFS reads about -6.0 LUFS... minus 3 dB for a mono sine
    assert expected == pytest.approx(-9.0, abs=0.5)
    silent = audio_features(np.zeros(2 * SR, dtype=np.float32), SR)
    assert str(silent["key"]) == "" and math.isnan(float(silent["tempo_bpm"]))
    assert float(silent["loudness_lufs"]) == -math.inf
    assert math.isnan(loudness_lufs(np.ones(SR // 10, dtype=np.float32), SR))  # under 0.4 s
