"""engine.audio.render: SoundFont synthesis, effects, loudness normalisation and audio export."""

from __future__ import annotations

import io
import math
import shutil
import struct

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from symusic import Note, Score, Tempo, Track

from engine import atomic
from engine.audio import render
from engine.audio.render import (
    AUDIO_FORMATS,
    DEFAULT_SAMPLE_RATE,
    NO_EFFECTS,
    PEAK_CEILING_DB,
    RELEASE_TAIL_S,
    TARGET_LUFS,
    Effects,
    RenderError,
    apply_effects,
    normalize_loudness,
    render_audio,
    render_midi,
    write_audio,
)
from engine.audio.soundfonts import builtin_soundfont, default_soundfont, load_soundfont

SR = DEFAULT_SAMPLE_RATE
TPQ = 480
C_MAJOR = (60, 62, 64, 65, 67, 69, 71, 72)


def make_midi(tracks: list[tuple[int, list[tuple[int, int, int, int]]]], bpm=120.0) -> bytes:
    """MIDI bytes from [(program, [(start_tick, dur_tick, pitch, velocity), ...]), ...]."""
    score = Score(TPQ)
    score.tempos.append(Tempo(0, bpm))
    for program, notes in tracks:
        track = Track(program=program)
        for start, dur, pitch, vel in notes:
            track.notes.append(Note(start, dur, pitch, vel))
        score.tracks.append(track)
    return score.dumps_midi()


@pytest.fixture(scope="module")
def scale_midi() -> bytes:
    """A C major scale on piano, one quarter note each at 120 bpm: 4.0 s of notes."""
    return make_midi([(0, [(i * TPQ, TPQ, p, 90) for i, p in enumerate(C_MAJOR)])])


@pytest.fixture(scope="module")
def duo_midi() -> bytes:
    """Two tracks (strings and flute), 2 s."""
    strings = [(0, 4 * TPQ, p, 80) for p in (48, 55)]
    flute = [(i * TPQ // 2, TPQ // 2, p, 100) for i, p in enumerate(C_MAJOR)]
    return make_midi([(48, strings), (73, flute)])


@pytest.fixture(scope="module")
def dense_midi() -> bytes:
    """Loud and dense: four fortissimo six-note chords in 8ths, 2 s."""
    chords = [(k * TPQ // 2, TPQ // 2, p, 127) for k in range(8) for p in (48, 52, 55, 60, 64, 67)]
    return make_midi([(prog, chords) for prog in (61, 56, 48, 0)])


@pytest.fixture(scope="module")
def scale_audio(scale_midi) -> np.ndarray:
    return render_midi(scale_midi)


def lufs(audio: np.ndarray) -> float:
    return pyloudnorm.Meter(SR).integrated_loudness(audio.astype(np.float64))


def peak_db(audio: np.ndarray) -> float:
    return 20 * math.log10(float(np.max(np.abs(audio))))


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


# ---- synthesis ------------------------------------------------------------------------------


def test_render_shape_duration_and_sound(scale_audio):
    assert scale_audio.dtype == np.float32 and scale_audio.ndim == 2 and scale_audio.shape[1] == 2
    duration = scale_audio.shape[0] / SR
    assert 4.0 + RELEASE_TAIL_S <= duration <= 4.0 + RELEASE_TAIL_S + 0.05
    assert peak_db(scale_audio[: 4 * SR]) > -40  # audible, not silence
    assert np.abs(scale_audio).max() <= 1.0
    # the release tail is kept: the last note still sounds after its note-off at 4.0 s
    assert np.abs(scale_audio[int(4.05 * SR) : int(4.3 * SR)]).max() > 1e-3


def test_render_is_deterministic(scale_midi, duo_midi, scale_audio):
    assert np.array_equal(render_midi(scale_midi), scale_audio)
    a, info_a = render_audio(duo_midi)
    b, info_b = render_audio(duo_midi)
    assert np.array_equal(a, b) and info_a == info_b


def test_render_inputs_path_and_score(tmp_path, scale_midi, scale_audio):
    path = tmp_path / "scale.mid"
    path.write_bytes(scale_midi)
    assert np.array_equal(render_midi(path), scale_audio)
    assert np.array_equal(render_midi(str(path)), scale_audio)
    assert np.array_equal(render_midi(Score.from_midi(scale_midi)), scale_audio)


def test_two_tracks_and_sample_rates(duo_midi):
    a = render_midi(duo_midi)
    assert (
        a.shape[1] == 2 and 2.0 + RELEASE_TAIL_S <= a.shape[0] / SR <= 2.0 + RELEASE_TAIL_S + 0.05
    )
    b = render_midi(duo_midi, sample_rate=48000)  # the synth's own rate: no resampling
    c = render_midi(duo_midi, sample_rate=22050)
    assert abs(b.shape[0] / 48000 - a.shape[0] / SR) < 1e-3
    assert abs(c.shape[0] / 22050 - a.shape[0] / SR) < 1e-3
    with pytest.raises(RenderError, match="sample rate"):
        render_midi(duo_midi, sample_rate=1000)


def test_silent_midi_is_handled(tmp_path):
    silent = make_midi([(0, [])])
    a = render_midi(silent)
    assert a.shape[1] == 2 and a.shape[0] > 0 and not a.any()
    out, info = normalize_loudness(a, SR)
    assert info["silent"] and info["gain_db"] == 0.0 and info["lufs_before"] is None
    assert np.array_equal(out, a)
    b, info = render_audio(silent)
    assert info["silent"] and not b.any()
    path = write_audio(b, SR, tmp_path / "silence.wav")
    assert sf.info(path).frames == b.shape[0]


@pytest.mark.parametrize(
    "data, match",
    [(b"", "empty"), (b"garbage, not a midi file", "not a readable MIDI"), (b"MThd\0\0", "MIDI")],
)
def test_bad_midi(data, match):
    with pytest.raises(RenderError, match=match) as e:
        render_midi(data)
    one_line(e)


def test_missing_midi_file(tmp_path):
    with pytest.raises(RenderError, match="not found") as e:
        render_midi(tmp_path / "nope.mid")
    one_line(e)


# ---- SoundFonts -----------------------------------------------------------------------------


def test_default_soundfont_is_a_soundfont():
    # tests/conftest.py pins the default to the built-in one (tests/audio/test_soundfonts.py checks
    # the ranking that otherwise picks it)
    path = default_soundfont()
    assert path == builtin_soundfont()
    assert path.name == "TimGM6mb.sf2" and path.is_file()
    data = load_soundfont(None)
    assert data[:4] == b"RIFF" and data[8:12] == b"sfbk" and data == path.read_bytes()


def test_soundfont_errors(tmp_path):
    text = tmp_path / "notes.sf2"
    text.write_text("these are not samples\n")
    empty = tmp_path / "empty.sf2"
    empty.write_bytes(b"")
    sf3 = tmp_path / "compressed.sf3"
    sf3.write_bytes(b"RIFF\0\0\0\0sfbkLIST\0\0\0\0INFOifil\4\0\0\0\3\0\1\0")
    cases = [
        (tmp_path / "missing.sf2", "not found"),
        (text, r"is not a SoundFont \(\.sf2\) file"),
        (empty, "is empty"),
        (tmp_path, "is a folder"),
        (sf3, "SF3"),
    ]
    for path, match in cases:
        with pytest.raises(RenderError, match=match) as e:
            load_soundfont(path)
        assert str(path) in one_line(e)


def _riff(*lists: bytes) -> bytes:
    body = b"sfbk" + b"".join(b"LIST" + struct.pack("<I", 4) + t for t in lists)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_damaged_soundfont_is_a_render_error(tmp_path, scale_midi):
    bad = tmp_path / "damaged.sf2"
    bad.write_bytes(_riff(b"INFO", b"sdta", b"pdta"))  # every part there, no samples in them
    with pytest.raises(RenderError, match="could not synthesize") as e:
        render_midi(scale_midi, soundfont=bad)
    one_line(e)


def test_cut_short_or_incomplete_soundfont_is_refused_before_synthesis(tmp_path):
    cut = tmp_path / "cut.sf2"
    cut.write_bytes(builtin_soundfont().read_bytes()[:65536])  # an interrupted download
    partial = tmp_path / "partial.sf2"
    partial.write_bytes(_riff(b"INFO", b"pdta"))
    for path, match in ((cut, r"damaged \(cut short \(65536 of"), (partial, "missing its sdta")):
        with pytest.raises(RenderError, match=match) as e:
            load_soundfont(path)
        assert str(path) in one_line(e)
    # a RIFF size that overstates the file while every part is there still plays: accepted
    data = builtin_soundfont().read_bytes()
    loose = tmp_path / "loose.sf2"
    loose.write_bytes(data[:4] + struct.pack("<I", len(data)) + data[8:])
    assert load_soundfont(loose)[8:] == data[8:]


def test_custom_soundfont_path(tmp_path, scale_midi, scale_audio):
    copy = tmp_path / "My Font.sf2"
    shutil.copy(default_soundfont(), copy)
    assert np.array_equal(render_midi(scale_midi, soundfont=copy), scale_audio)
    _, info = render_audio(scale_midi, soundfont=copy)
    assert info["soundfont"] == "My Font.sf2"  # its name, never its folder
    _, default_info = render_audio(scale_midi)
    assert info["soundfont_sha256"] == default_info["soundfont_sha256"]
    assert len(info["soundfont_sha256"]) == 64


# ---- effects --------------------------------------------------------------------------------


def test_no_effects_is_identity(scale_audio):
    assert np.array_equal(apply_effects(scale_audio, SR, NO_EFFECTS), scale_audio)


def test_no_effects_render_is_the_raw_render_scaled(scale_midi, scale_audio):
    out, info = render_audio(scale_midi, effects=NO_EFFECTS)
    np.testing.assert_allclose(
        out, scale_audio * 10 ** (info["gain_db"] / 20), rtol=1e-5, atol=1e-7
    )
    # asking for the loudness it already has: gain 0, the raw render itself
    same, info0 = normalize_loudness(scale_audio, SR, target_lufs=info["lufs_before"])
    assert abs(info0["gain_db"]) < 1e-3
    np.testing.assert_allclose(same, scale_audio, rtol=1e-3, atol=1e-7)


def test_reverb_adds_energy_after_the_last_note(scale_audio):
    wet = apply_effects(scale_audio, SR, Effects(reverb=1.0, compression=0))
    assert wet.shape == scale_audio.shape and wet.dtype == np.float32

    def tail_ratio(a):  # energy after the last note-off (4.0 s) relative to the notes
        return np.sum(a[int(4.2 * SR) :] ** 2) / np.sum(a[: 4 * SR] ** 2)

    assert tail_ratio(wet) > 3 * tail_ratio(scale_audio)


def test_eq_shapes_the_spectrum(scale_audio):
    def band_energy(a, lo, hi):
        spec = np.abs(np.fft.rfft(a[:, 0])) ** 2
        freqs = np.fft.rfftfreq(a.shape[0], 1 / SR)
        return spec[(freqs >= lo) & (freqs < hi)].sum()

    bright = apply_effects(scale_audio, SR, Effects(reverb=0, compression=0, eq_high_db=12))
    ratio = band_energy(bright, 8000, 16000) / band_energy(scale_audio, 8000, 16000)
    assert ratio > 5  # +12 dB shelf ≈ x16 energy above the corner
    assert band_energy(bright, 200, 400) == pytest.approx(band_energy(scale_audio, 200, 400), 0.2)
    bass = apply_effects(scale_audio, SR, Effects(reverb=0, compression=0, eq_low_db=-12))
    assert band_energy(bass, 20, 80) < band_energy(scale_audio, 20, 80) / 5


def test_compression_evens_out_loud_and_soft_notes():
    notes = [(i * TPQ, TPQ, 60, 127 if i % 2 == 0 else 45) for i in range(8)]
    dry = render_midi(make_midi([(0, notes)]))

    def loud_minus_soft_db(a):  # mean level of the loud notes minus that of the soft ones
        rms = [10 * np.log10(np.mean(a[i * SR // 2 : (i + 1) * SR // 2] ** 2)) for i in range(8)]
        return np.mean(rms[0::2]) - np.mean(rms[1::2])

    squeezed = apply_effects(dry, SR, Effects(reverb=0, compression=1.0))
    gentle = apply_effects(dry, SR, Effects(reverb=0, compression=0.3))
    assert loud_minus_soft_db(dry) > loud_minus_soft_db(gentle) > loud_minus_soft_db(squeezed)
    assert loud_minus_soft_db(squeezed) < loud_minus_soft_db(dry) - 3


def test_effects_are_deterministic(scale_audio):
    fx = Effects(reverb=0.6, eq_low_db=3, eq_high_db=-2, compression=0.5)
    assert np.array_equal(apply_effects(scale_audio, SR, fx), apply_effects(scale_audio, SR, fx))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(reverb=1.5), "reverb=1.5 is out of range; use 0 to 1"),
        (dict(compression=-0.1), "compression"),
        (dict(eq_low_db=30), "eq_low_db=30 is out of range; use -24 to 24"),
        (dict(eq_high_db=-25), "eq_high_db"),
        (dict(reverb=float("nan")), "must be a number"),
        (dict(compression="lots"), "must be a number"),
    ],
)
def test_effects_validate(kwargs, match, scale_audio):
    fx = Effects(**kwargs)
    with pytest.raises(RenderError, match=match) as e:
        fx.validate()
    one_line(e)
    with pytest.raises(RenderError):
        apply_effects(scale_audio, SR, fx)


def test_effects_dict_round_trip():
    fx = Effects(reverb=0.5, eq_low_db=-3.0, eq_high_db=2.5, compression=0.0)
    assert Effects.from_dict(fx.to_dict()) == fx
    assert Effects.from_dict({}) == Effects()
    assert Effects().to_dict() == {
        "reverb": 0.25,
        "eq_low_db": 0.0,
        "eq_high_db": 0.0,
        "compression": 0.3,
    }
    with pytest.raises(RenderError, match="unknown effect setting delay"):
        Effects.from_dict({"delay": 0.3})
    with pytest.raises(RenderError, match="out of range"):
        Effects.from_dict({"reverb": 2})
    Effects().validate()
    NO_EFFECTS.validate()


# ---- loudness -------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["scale_midi", "duo_midi"])
def test_loudness_reaches_the_target(fixture, request):
    audio, info = render_audio(request.getfixturevalue(fixture))
    assert not info["limited"] and not info["silent"]
    assert abs(lufs(audio) - TARGET_LUFS) < 0.5
    assert abs(info["lufs_after"] - TARGET_LUFS) < 0.5
    assert peak_db(audio) <= PEAK_CEILING_DB
    assert info["peak_db"] == pytest.approx(peak_db(audio), abs=1e-3)
    assert info["duration_s"] == pytest.approx(audio.shape[0] / SR, abs=1e-3)


def test_peak_ceiling_limits_the_gain(dense_midi):
    audio, info = render_audio(dense_midi, target_lufs=-6.0)
    assert info["limited"]
    assert peak_db(audio) <= PEAK_CEILING_DB
    assert info["peak_db"] == pytest.approx(PEAK_CEILING_DB, abs=0.01)
    assert info["lufs_after"] < -6.0 - 0.5  # the target was not reached, and info says so
    # a custom ceiling is respected too
    raw = render_midi(dense_midi)
    out, info = normalize_loudness(raw, SR, target_lufs=0.0, peak_db=-3.0)
    assert info["limited"] and peak_db(out) <= -3.0


def test_short_audio_can_be_normalised():
    t = np.arange(int(0.1 * SR)) / SR
    tone = np.stack([0.01 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32)
    out, info = normalize_loudness(tone, SR)
    assert not info["silent"] and info["gain_db"] > 0 and peak_db(out) <= PEAK_CEILING_DB


# ---- export ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_audio(duo_midi) -> np.ndarray:
    return render_audio(duo_midi)[0]


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_write_each_format(fmt, tmp_path, short_audio):
    path = write_audio(short_audio, SR, tmp_path / f"piece.{fmt}", mark=False)
    assert path == tmp_path / f"piece.{fmt}"
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == SR and data.shape[1] == 2
    assert abs(data.shape[0] - short_audio.shape[0]) / SR < 0.005
    if fmt in ("wav", "flac"):
        np.testing.assert_allclose(data, short_audio, atol=1 / 2**15 + 1e-6)
    # the same audio gives the same bytes (Ogg's random stream serial is fixed)
    again = write_audio(short_audio, SR, tmp_path / f"again.{fmt}", mark=False)
    assert again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_written_audio_carries_the_watermark_its_statement_names(fmt, tmp_path, short_audio):
    from engine.audio import watermark
    from engine.credit import Credit, read_credit

    path = write_audio(short_audio, SR, tmp_path / f"piece.{fmt}")
    payload = watermark.mark_for(np.ascontiguousarray(short_audio, dtype="<f4").tobytes())
    assert Credit.parse(read_credit(path)).mark == f"dm:{payload:08x}"
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    found = watermark.detect(data, rate)
    assert found.found and found.payload == payload
    if fmt in ("wav", "flac"):  # the samples are the watermarked audio, to the last bit
        marked = watermark.embed(np.clip(short_audio, -1, 1), SR, payload)
        np.testing.assert_allclose(data, marked, atol=1 / 2**15 + 1e-6)
    again = write_audio(short_audio, SR, tmp_path / f"again.{fmt}")
    assert again.read_bytes() == path.read_bytes()  # the same audio, the same mark and bytes


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_bit_depths(fmt, tmp_path, short_audio):
    p16 = write_audio(short_audio, SR, tmp_path / f"a16.{fmt}", bit_depth=16, mark=False)
    p24 = write_audio(short_audio, SR, tmp_path / f"a24.{fmt}", bit_depth=24, mark=False)
    assert sf.info(p16).subtype == "PCM_16" and sf.info(p24).subtype == "PCM_24"
    data24, _ = sf.read(p24, dtype="float32")
    np.testing.assert_allclose(data24, short_audio, atol=1 / 2**23 + 1e-7)


def test_ogg_pages_stay_valid(tmp_path, short_audio):
    """The rewritten serial numbers come with correct page CRCs (libsndfile checks them)."""
    data = write_audio(short_audio, SR, tmp_path / "a.ogg").read_bytes()
    assert data[14:18] == render.OGG_SERIAL.to_bytes(4, "little")
    raw = io.BytesIO()
    sf.write(raw, short_audio, SR, format="OGG", subtype="VORBIS")
    page = bytearray(raw.getvalue()[:58])
    crc = int.from_bytes(page[22:26], "little")
    page[22:26] = bytes(4)
    assert render._ogg_crc(bytes(page)) == crc


def test_write_choices_and_errors(tmp_path, short_audio):
    path = write_audio(short_audio, SR, tmp_path / "no_suffix", fmt="FLAC")
    assert sf.info(path).format == "FLAC"
    mono = write_audio(short_audio[:, 0], SR, tmp_path / "mono.wav")
    assert sf.info(mono).channels == 1
    cases = [
        ("a.aiff", {}, "unknown audio format 'aiff'; use one of wav, flac, ogg, mp3"),
        ("a", {}, "cannot tell the audio format"),
        ("a.wav", dict(bit_depth=8), "unsupported bit depth 8; use 16 or 24"),
        ("missing/a.wav", {}, "does not exist"),
        ("a.mp3", dict(sample_rate=96000), "MP3 cannot hold 96000 Hz audio; use 8000, "),
    ]
    for name, kwargs, match in cases:
        rate = kwargs.pop("sample_rate", SR)
        with pytest.raises(RenderError, match=match) as e:
            write_audio(short_audio, rate, tmp_path / name, **kwargs)
        one_line(e)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mono.wav", "no_suffix"]


def test_write_clips_instead_of_wrapping(tmp_path):
    loud = np.full((1000, 2), 1.5, dtype=np.float32)
    data, _ = sf.read(write_audio(loud, SR, tmp_path / "loud.wav"), dtype="float32")
    assert data.min() > 0.99


def test_write_is_atomic(tmp_path, short_audio, monkeypatch):
    target = tmp_path / "piece.wav"
    target.write_bytes(b"old take")

    def broken_write(*args, **kwargs):
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as m:
        m.setattr(sf.SoundFile, "write", broken_write)  # the encoder fails mid-file
        with pytest.raises(RenderError):
            write_audio(short_audio, SR, target)
    assert target.read_bytes() == b"old take"
    assert [p.name for p in tmp_path.iterdir()] == ["piece.wav"]

    # the old file is replaced in one rename, from a temporary file in the same folder
    seen = []
    real_replace = atomic.os.replace

    def spy_replace(src, dst):
        seen.append((src, dst, target.read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy_replace)
    write_audio(short_audio, SR, target)
    [(src, dst, before)] = seen
    assert before == b"old take" and str(dst) == str(target)
    assert str(src).startswith(str(tmp_path)) and src != str(target)
    assert sf.info(target).frames == short_audio.shape[0]
    assert [p.name for p in tmp_path.iterdir()] == ["piece.wav"]
