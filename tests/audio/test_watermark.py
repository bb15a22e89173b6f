"""engine.audio.watermark: round trips, the attacks it must survive, unmarked audio, the mark's
level, determinism, silence, clipping, short audio and bad inputs.

The pieces are music21 corpus excerpts rendered once for the module (12 s each, the shipped
TimGM6mb SoundFont); tests/bench/bench_watermark.py measures the same on 50 pieces.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from engine.audio import watermark as wm
from engine.audio.render import render_audio
from engine.errors import RenderError

SR = 44100
SECONDS = 12.0
# (corpus piece, General MIDI program of every part)
PIECES = (
    ("bach/bwv66.6", 0),  # piano chorale
    ("bach/bwv10.7", 48),  # strings
    ("ryansMammoth/7thRegimentReel.abc", 73),  # flute
)


def _midi(path: str, program: int) -> bytes:
    import pretty_midi
    from music21 import corpus
    from music21.midi import translate

    data = translate.streamToMidiFile(corpus.parse(path)).writestr()
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    for inst in pm.instruments:
        inst.program, inst.is_drum = program, False
        inst.notes = [n for n in inst.notes if n.start < SECONDS - 1]
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def pieces() -> list[np.ndarray]:
    """Rendered pieces, float32 [frames, 2] at 44.1 kHz, SECONDS long."""
    out = []
    for path, program in PIECES:
        audio, _ = render_audio(_midi(path, program))
        out.append(audio[: int(SECONDS * SR)])
    return out


@pytest.fixture(scope="module")
def marked(pieces) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(7)
    out = []
    for x in pieces:
        payload = int(rng.integers(0, 2**32))
        out.append((wm.embed(x, SR, payload), payload))
    return out


def snr_db(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64)
    return float(10 * np.log10(np.sum(x**2) / np.sum((y.astype(np.float64) - x) ** 2)))


def codec(x: np.ndarray, fmt: str) -> np.ndarray:
    buf = io.BytesIO()
    if fmt == "mp3":  # libsndfile: CBR bitrate 320 - 288 * level → 128 kbit/s
        kw = dict(compression_level=2 / 3, bitrate_mode="CONSTANT")
        sf.write(buf, x, SR, format="MP3", subtype="MPEG_LAYER_III", **kw)
    else:  # libsndfile: Vorbis quality 1 - level → 0.3 (oggenc -q 3)
        sf.write(buf, x, SR, format="OGG", subtype="VORBIS", compression_level=0.7)
    buf.seek(0)
    return sf.read(buf, dtype="float32", always_2d=True)[0]


# -- round trips ----------------------------------------------------------------------------------


def test_the_pieces_are_music(pieces):
    for x in pieces:
        assert x.shape == (int(SECONDS * SR), 2)
        assert 0.01 < np.sqrt(np.mean(x**2)) < 0.5


def test_round_trip_on_rendered_pieces(marked):
    for y, payload in marked:
        d = wm.detect(y, SR)
        assert d.found and d.payload == payload and d.decoded == payload
        assert d.score > 2 * wm.SYNC_THRESHOLD
        assert d.offset_s == pytest.approx(0.0, abs=0.002)


def test_random_payloads_and_mono(pieces):
    rng = np.random.default_rng(11)
    x = pieces[1].mean(axis=1)
    for payload in (0, wm.MAX_PAYLOAD, *rng.integers(0, 2**32, 2).tolist()):
        y = wm.embed(x, SR, payload)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert wm.detect(y, SR).payload == payload


@pytest.mark.parametrize("rate", [22050, 32000, 48000])
def test_sample_rates(pieces, rate):
    x = resample_poly(pieces[0], rate, SR, axis=0).astype(np.float32)
    y = wm.embed(x, rate, 0xC0FFEE)
    assert snr_db(x, y) >= 35.0
    assert wm.detect(y, rate).payload == 0xC0FFEE
    # read at another rate than it was written at
    assert wm.detect(resample_poly(y, SR, rate, axis=0), SR).payload == 0xC0FFEE


# -- attacks --------------------------------------------------------------------------------------


def attacked(y: np.ndarray, name: str) -> np.ndarray:
    if name in ("mp3", "ogg"):
        return codec(y, name)
    if name == "resample":
        return resample_poly(resample_poly(y, 1, 2, axis=0), 2, 1, axis=0)
    if name == "excerpt":
        start = int(1.37 * SR) + 11  # anywhere: not on a frame or a period
        return y[start : start + 10 * SR]
    if name == "gain+6":
        return np.clip(y * 10 ** (6 / 20), -1, 1)
    if name == "gain-6":
        return y * 10 ** (-6 / 20)
    if name == "noise30":
        rng = np.random.default_rng(3)
        return y + rng.normal(0, np.sqrt(np.mean(y**2) / 1000), y.shape).astype(np.float32)
    raise AssertionError(name)


@pytest.mark.parametrize(
    "name", ["mp3", "ogg", "resample", "excerpt", "gain+6", "gain-6", "noise30"]
)
def test_the_payload_survives(marked, name):
    for y, payload in marked[:2]:
        z = attacked(y, name)
        assert not np.array_equal(z[: len(y)], y[: len(z)])  # the attack did something
        d = wm.detect(z, SR)
        assert d.found and d.payload == payload, (name, d)


def test_an_excerpt_shorter_than_a_period_is_not_read_as_another_payload(marked):
    y, payload = marked[0]
    d = wm.detect(y[: int(1.5 * SR)], SR)
    assert d.payload in (None, payload)


# -- unmarked audio -------------------------------------------------------------------------------


def test_unmarked_audio_is_not_detected(pieces):
    rng = np.random.default_rng(5)
    unmarked = [
        *pieces,
        rng.normal(0, 0.1, (int(10 * SR), 2)).astype(np.float32),  # white noise
        np.cumsum(rng.normal(0, 0.001, int(10 * SR))).astype(np.float32),  # brown noise
        np.zeros((int(5 * SR), 2), np.float32),  # digital silence
    ]
    for x in unmarked:
        d = wm.detect(x, SR)
        assert not d.found and d.payload is None
        assert d.score < wm.SYNC_THRESHOLD


def test_a_mark_cannot_be_read_from_the_unmarked_original(pieces, marked):
    # the mark really is in the difference: unmarked + mark is detected, unmarked alone is not
    x, (y, payload) = pieces[2], marked[2]
    assert not wm.detect(x, SR).found
    assert wm.detect(x + (y - x), SR).payload == payload


# -- the mark's level, determinism, silence, clipping ---------------------------------------------


def test_the_mark_is_at_least_35_db_under_the_music(pieces, marked):
    for x, (y, _) in zip(pieces, marked, strict=True):
        assert 35.0 <= snr_db(x, y) < 45.0  # present, but quiet


def test_the_mark_is_quieter_in_quiet_passages(pieces):
    x = pieces[0].copy()
    x[: 6 * SR] *= 0.01  # -40 dB
    d = wm.embed(x, SR, 99).astype(np.float64) - x
    ratio = np.sqrt(np.mean(d[: 5 * SR] ** 2) / np.mean(d[7 * SR :] ** 2))
    assert ratio < 0.05


def test_embedding_is_deterministic(pieces):
    a = wm.embed(pieces[0], SR, 12345)
    b = wm.embed(pieces[0].copy(), SR, 12345)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != wm.embed(pieces[0], SR, 12346).tobytes()


def test_silence_stays_silent(pieces):
    zeros = np.zeros((int(4 * SR), 2), np.float32)
    assert not np.any(wm.embed(zeros, SR, 1))
    x = np.concatenate([zeros, pieces[0][: 6 * SR], zeros])
    y = wm.embed(x, SR, 1)
    gap = int(0.1 * SR)  # more than one frame (64 ms) from the music
    assert not np.any(y[: 4 * SR - gap]) and not np.any(y[10 * SR + gap :])
    assert np.any(y[4 * SR : 10 * SR] != x[4 * SR : 10 * SR])


def test_the_output_stays_within_full_scale(pieces):
    x = pieces[1] / np.abs(pieces[1]).max()  # peaks at exactly 1.0
    y = wm.embed(x, SR, 7)
    assert np.abs(y).max() <= 1.0
    assert wm.detect(y, SR).payload == 7
    hot = np.clip(x * 1.5, -1.5, 1.5)  # beyond full scale: clipped, never wrapped
    assert np.abs(wm.embed(hot, SR, 7)).max() <= 1.0


def test_float64_comes_back_as_float64(pieces):
    x = pieces[2][: 4 * SR].astype(np.float64)
    y = wm.embed(x, SR, 3)
    assert y.dtype == np.float64 and y.shape == x.shape


# -- short audio ----------------------------------------------------------------------------------


def test_audio_shorter_than_a_frame_comes_back_unchanged(pieces):
    x = pieces[0][SR : SR + int(0.03 * SR)]
    y = wm.embed(x, SR, 5)
    assert y.tobytes() == x.tobytes() and y is not x
    assert not wm.detect(x, SR).found
    empty = np.zeros((0, 2), np.float32)
    assert wm.embed(empty, SR, 5).shape == (0, 2)
    assert not wm.detect(empty, SR).found


def test_audio_shorter_than_a_period_is_marked_as_far_as_it_goes(pieces):
    x = pieces[0][SR : SR + int(1.5 * SR)]
    y = wm.embed(x, SR, 5)
    assert y.shape == x.shape and 35.0 <= snr_db(x, y) < 50.0


# -- inputs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [-1, 2**32, 1.5, True, "7", None])
def test_a_bad_payload_is_refused(pieces, payload):
    with pytest.raises(RenderError, match="payload"):
        wm.embed(pieces[0][:SR], SR, payload)


def test_bad_audio_and_rates_are_refused(pieces):
    x = pieces[0][:SR]
    bad = [
        (np.zeros((SR, 2, 1), np.float32), SR, "shape"),
        (np.zeros((SR, 0), np.float32), SR, "shape"),
        ((x * 32767).astype(np.int16), SR, "floating-point"),
        (np.full((SR, 2), np.nan, np.float32), SR, "NaN"),
        (x, 8000, "sample rate"),
        (x, 44100.0, "sample rate"),
        (x, True, "sample rate"),
    ]
    for audio, rate, words in bad:
        with pytest.raises(RenderError, match=words):
            wm.embed(audio, rate, 1)
        with pytest.raises(RenderError, match=words):
            wm.detect(audio, rate)


def test_mark_for():
    a = wm.mark_for(b"piece one")
    assert a == wm.mark_for(b"piece one") == wm.mark_for(bytearray(b"piece one"))
    assert a != wm.mark_for(b"piece two")
    assert 0 <= a <= wm.MAX_PAYLOAD
    assert wm.mark_for(b"") == 0xE3B0C442  # sha256("") begins e3b0c442
    with pytest.raises(RenderError):
        wm.mark_for("text")  # type: ignore[arg-type]


def test_detection_is_a_small_frozen_record():
    fields = {f.name for f in dataclasses.fields(wm.Detection)}
    assert {"found", "payload", "score"} <= fields
    d = wm.Detection(False, None, 0.0, 0.0, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.found = True  # type: ignore[misc]


def test_the_code_corrects_errors():
    rng = np.random.default_rng(2)
    info = rng.integers(0, 2, wm.INFO_BITS).astype(np.int8)
    coded = wm._encode(info)
    assert coded.shape == (wm.CODED_BITS,)
    soft = 1.0 - 2.0 * coded
    soft[rng.choice(wm.CODED_BITS, 8, replace=False)] *= -1  # 8 of 108 bits flipped
    assert np.array_equal(wm._viterbi(soft), info)
    # CRC-16/CCITT-FALSE of "123456789" is 0x29B1
    bits = np.unpackbits(np.frombuffer(b"123456789", np.uint8))
    assert int("".join(map(str, wm._crc(bits))), 2) == 0x29B1
