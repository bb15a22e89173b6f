"""engine.audio.playback: a window of a piece is the full render's samples, spliced in."""

from __future__ import annotations

import time

import numpy as np
import pytest

from engine.audio.playback import render_playback, render_window, rendered_seconds
from engine.audio.render import NO_EFFECTS, render_audio
from tests.studio_pieces import piece

SR = 44100


@pytest.fixture(scope="module")
def eight_bars():
    midi, bars = piece(bars=8)
    audio, levels = render_playback(midi)
    return midi, bars, audio, levels


def test_render_playback_is_render_audio_with_its_levels(eight_bars):
    midi, _, audio, levels = eight_bars
    reference, info = render_audio(midi)
    np.testing.assert_array_equal(audio, reference)
    assert levels.gain_db == pytest.approx(info["gain_db"])
    assert rendered_seconds(midi, SR) == audio.shape[0] / SR


@pytest.mark.parametrize("bar", [0, 1, 3, 6])
def test_a_window_spliced_at_a_bar_line_is_the_full_render(eight_bars, bar):
    # Measured (TimGM6mb, 44.1 kHz, default effects, this 4-part piece): a window from bar 1
    # on is sample-identical (synthesized from the start); from bars 3 and 6 (3 s of pre-roll)
    # the largest difference is 6.4e-5 (about 2 steps of 16 bits) and the RMS of the
    # difference 3e-7 to 5e-7, against a signal RMS of 0.11 (-110 dB).  Allowed: about 8x
    # the largest and 10x the RMS.
    midi, bars, full, levels = eight_bars
    start = bars[bar]
    window = render_window(midi, start, 4.0, gain=levels)
    assert window.shape == (round(4.0 * SR), 2)
    reference = full[round(start * SR) : round(start * SR) + window.shape[0]]
    diff = window - reference
    assert np.abs(diff).max() < 5e-4
    assert np.sqrt(np.mean(diff**2)) < 5e-6
    # spliced into the full render at the bar line, nothing changes around the splice either
    spliced = np.concatenate([full[: round(start * SR)], window])
    around = slice(max(0, round(start * SR) - SR // 10), round(start * SR) + SR // 10)
    assert np.abs(spliced[around] - full[around]).max() < 5e-4


def test_windows_past_the_end_are_silence_and_a_window_is_fast(eight_bars):
    midi, bars, full, levels = eight_bars
    end = full.shape[0] / SR
    tail = render_window(midi, end - 1.0, 3.0, gain=levels)
    np.testing.assert_allclose(tail[:SR], full[-SR:], atol=5e-4)
    assert not tail[SR:].any()
    assert not render_window(midi, end + 5, 1.0, gain=levels).any()
    tic = time.perf_counter()
    render_window(midi, bars[4], 2 * 2.0, gain=levels)  # two bars at 120 BPM
    # measured 70-120 ms on a loaded 2-core machine; the bound is loose: one bar is 2 s
    assert time.perf_counter() - tic < 1.0


def test_a_window_without_effects_and_without_levels_given(eight_bars):
    midi, bars, _, _ = eight_bars
    full, _ = render_playback(midi, effects=NO_EFFECTS, sample_rate=48000)
    window = render_window(midi, bars[5], 2.0, effects=NO_EFFECTS, sample_rate=48000)
    a = round(bars[5] * 48000)
    assert np.abs(window - full[a : a + window.shape[0]]).max() < 5e-4
