"""engine.pipelines.transcribe: the same note events as basic-pitch's note_creation, and bad
input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from engine.audio import io as AIO
from engine.audio import rhythm
from engine.errors import AudioFileError, InputWarning
from engine.models.basic_pitch import BasicPitch
from engine.pipelines import transcribe as T
from engine.progress import Progress, ProgressLog

SETTINGS = [  # (transcribe keywords, basic-pitch keywords)
    ({}, {}),
    (
        dict(onset_threshold=0.3, frame_threshold=0.2, min_note_ms=60.0, melodia_trick=False),
        dict(
            onset_threshold=0.3, frame_threshold=0.2, minimum_note_length=60.0,
            melodia_trick=False,
        ),
    ),
    (
        dict(
            onset_threshold=0.6, frame_threshold=0.4, min_note_ms=250.0, min_freq=100.0,
            max_freq=1000.0,
        ),
        dict(
            onset_threshold=0.6, frame_threshold=0.4, minimum_note_length=250.0,
            minimum_frequency=100.0, maximum_frequency=1000.0,
        ),
    ),
    (
        dict(onset_threshold=0.2, frame_threshold=0.1, min_note_ms=30.0, max_freq=300.0),
        dict(
            onset_threshold=0.2, frame_threshold=0.1, minimum_note_length=30.0,
            maximum_frequency=300.0,
        ),
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def model():
    return BasicPitch.load()


@pytest.fixture(scope="module")
def files(tmp_path_factory, basic_pitch_audio):
    folder = tmp_path_factory.mktemp("transcribe")
    signals = {
        "melody-16000": (basic_pitch_audio.melody(16000, 3.0), 16000),
        "rendered-44100": (basic_pitch_audio.rendered(), 44100),
        "glide-44100": (basic_pitch_audio.tone([196.0], 44100, 2.0, amp=0.4, glide=0.5), 44100),
    }
    out = {}
    for name, (audio, sr) in signals.items():
        out[name] = folder / f"{name}.wav"
        sf.write(out[name], audio, sr, subtype="FLOAT")
    return out


@pytest.fixture(scope="module")
def assert_same_events(basic_pitch_audio):
    """``assert_same_events(ours, theirs, amplitude_atol=...)``, at this CPU's tolerances."""
    bit_exact = basic_pitch_audio.BIT_EXACT_CPU
    default_atol = 1e-5 if bit_exact else basic_pitch_audio.TOLERANCE

    def assert_same_events(ours, theirs, amplitude_atol=default_atol):
        """Same count, order, frames (so times), pitches and bends; amplitudes (means of
        posteriors) within atol, which follows the network's tolerance on this CPU.

        A bend is the argmax of the pitch contour near the note, so where two contour bins are
        within the network's rounding of each other it may flip: off a bit-exact CPU (see
        tests/models/test_basic_pitch.py) up to 1 bend in 20 may differ.
        """
        assert len(ours) == len(theirs)
        bends_seen = bends_differing = 0
        for a, b in zip(ours, theirs, strict=True):
            start, end, pitch, amplitude, bends = b
            assert (a.start_s, a.end_s, a.pitch) == (float(start), float(end), int(pitch))
            assert a.amplitude == pytest.approx(float(amplitude), abs=amplitude_atol)
            want = None if bends is None else [int(x) for x in bends]
            if bit_exact or want is None:
                assert a.bends == want
            else:
                assert a.bends is not None and len(a.bends) == len(want)
                bends_seen += len(want)
                bends_differing += sum(x != y for x, y in zip(a.bends, want, strict=True))
        assert bends_differing <= bends_seen / 20, (bends_differing, bends_seen)

    return assert_same_events


@pytest.mark.parametrize("name", ["melody-16000", "rendered-44100", "glide-44100"])
@pytest.mark.parametrize("ours_kw,theirs_kw", SETTINGS)
def test_notes_equal_basic_pitch_predict(
    name, ours_kw, theirs_kw, basic_pitch_reference, model, files, assert_same_events
):
    """basic-pitch's predict() always adds pitch bends: compare with pitch_bends=True."""
    inference, ref_model, _ = basic_pitch_reference
    _, _, expected = inference.predict(files[name], ref_model, **theirs_kw)
    got = T.transcribe(files[name], pitch_bends=True, model=model, **ours_kw)
    assert_same_events(got.notes, expected)
    assert got.notes, "the settings should find some notes"


@pytest.mark.parametrize("melodia", [True, False])
def test_notes_without_pitch_bends_equal_model_output_to_notes(
    melodia, basic_pitch_reference, model, files, assert_same_events
):
    inference, ref_model, _ = basic_pitch_reference
    from basic_pitch import note_creation

    path = files["rendered-44100"]
    output = inference.run_inference(path, ref_model)
    _, expected = note_creation.model_output_to_notes(
        output, onset_thresh=0.5, frame_thresh=0.3, include_pitch_bends=False,
        melodia_trick=melodia,
    )  # fmt: skip
    got = T.transcribe(path, melodia_trick=melodia, model=model)
    assert_same_events(got.notes, expected)
    assert all(n.bends is None for n in got.notes)


def test_same_posteriorgrams_give_bit_identical_events(
    basic_pitch_reference, files, assert_same_events
):
    inference, ref_model, _ = basic_pitch_reference
    from basic_pitch import note_creation

    output = inference.run_inference(files["melody-16000"], ref_model)
    for kw in (dict(onset_thresh=0.5, frame_thresh=0.3), dict(onset_thresh=0.2, frame_thresh=0.1)):
        _, expected = note_creation.model_output_to_notes(
            {k: v.copy() for k, v in output.items()}, min_note_len=3, **kw
        )
        got = T.model_output_to_notes(output, min_note_len=3, **kw)
        assert_same_events(got, expected, amplitude_atol=0)


@pytest.mark.parametrize("seed", range(4))
def test_note_decoding_equals_basic_pitch_on_random_activations(seed, basic_pitch_reference):
    """Random activations with many exact ties: the decoding (melodia order too) is the same."""
    from basic_pitch import note_creation

    rng = np.random.default_rng(seed)
    n = 300
    frames = np.round(rng.random((n, 88)) ** 3 * 8) / 8  # steps of 1/8: ties everywhere
    frames = np.repeat(frames, 4, axis=0)[:n].astype(np.float32)
    onsets = (np.round(rng.random((n, 88)) ** 6 * 8) / 8).astype(np.float32)
    args = dict(onset_thresh=0.5, frame_thresh=0.3, min_note_len=5, infer_onsets=True,
                max_freq=None, min_freq=None, melodia_trick=True)  # fmt: skip
    expected = note_creation.output_to_notes_polyphonic(frames.copy(), onsets.copy(), **args)
    got = T.output_to_notes_polyphonic(frames.copy(), onsets.copy(), **args)
    assert len(expected) > 20
    assert [(s, e, p, float(a)) for s, e, p, a in got] == [
        (int(s), int(e), int(p), float(a)) for s, e, p, a in expected
    ]


@pytest.mark.parametrize("multiple", [False, True])
def test_midi_has_basic_pitchs_notes_and_bends(multiple, basic_pitch_reference, model, files):
    inference, ref_model, _ = basic_pitch_reference
    path = files["glide-44100"]
    _, midi, _ = inference.predict(path, ref_model, multiple_pitch_bends=multiple)
    got = T.transcribe(path, pitch_bends=True, multiple_pitch_bends=multiple, model=model)
    score = got.to_score().to("second")
    ours = sorted(
        (round(n.time, 2), round(n.end, 2), n.pitch, n.velocity)
        for t in score.tracks
        for n in t.notes
    )
    theirs = sorted(
        (round(n.start, 2), round(n.end, 2), n.pitch, n.velocity)
        for i in midi.instruments
        for n in i.notes
    )
    assert ours == theirs
    assert len(score.tracks) == len(midi.instruments)
    our_bends = sorted(b.value for t in score.tracks for b in t.pitch_bends)
    their_bends = sorted(b.pitch for i in midi.instruments for b in i.pitch_bends)
    assert our_bends == their_bends and (their_bends or not multiple)
    assert score.tracks[0].program == 4  # Electric Piano 1, as basic-pitch


def test_quantize_finds_tempo_metre_and_grid(model):
    pytest.importorskip("librosa")
    sr, bpm, beats = 22050, 100, 18
    period = 60 / bpm
    t = np.arange(int(sr * (period * beats + 1))) / sr
    audio = 5e-4 * np.random.default_rng(0).standard_normal(t.shape)
    for b in range(beats):  # a waltz: loud bass and melody on every third beat
        s, e = int(b * period * sr), int((b + 0.8) * period * sr)
        tt = t[s:e] - t[s]
        pitch = (60, 64, 67)[b % 3]
        audio[s:e] += (
            (0.5 if b % 3 == 0 else 0.15)
            * np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * tt)
            * np.exp(-4 * tt)
        )
        if b % 3 == 0:
            audio[s:e] += 0.4 * np.sin(2 * np.pi * 110 * tt) * np.exp(-3 * tt)
    result = T.transcribe(audio.astype(np.float32), sr, quantize=True, model=model)
    q = result.quantization
    assert q.tempo_bpm == pytest.approx(bpm, rel=0.01)
    assert q.numerator == 3
    score = result.to_score()
    assert score.tempos[0].qpm == pytest.approx(q.tempo_bpm, abs=0.01)
    ts = score.time_signatures[0]
    assert (ts.numerator, ts.denominator) == (3, 4)
    step = 480 // T.QUANTIZE_DIVISIONS
    notes = score.tracks[0].notes
    assert all(n.time % step == 0 and n.duration % step == 0 and n.duration > 0 for n in notes)
    downbeat_a3 = [n.time for n in notes if n.pitch == 45]  # the bass: on every bar line
    assert downbeat_a3 and all(tick % (3 * 480) == 0 for tick in downbeat_a3)


def test_guess_meter():
    assert rhythm.guess_meter(np.tile([3.0, 1, 1], 6)) == (3, 0)
    assert rhythm.guess_meter(np.tile([1.0, 3, 1, 1], 5)) == (4, 1)
    assert rhythm.guess_meter(np.ones(12))[0] == 4  # no accents: 4/4
    assert rhythm.guess_meter(np.ones(3)) == (4, 0)  # too few beats to tell


def test_mixdown_and_sample_rates(model, basic_pitch_audio):
    tone = basic_pitch_audio.tone
    a, b = tone([220.0], 48000, 1.5), tone([329.63], 48000, 1.5)
    stereo = T.transcribe(np.stack([a, b], axis=1), 48000, model=model)
    mono = T.transcribe((a + b) / 2, 48000, model=model)
    assert [n.as_tuple() for n in stereo.notes] == [n.as_tuple() for n in mono.notes]
    assert {n.pitch for n in mono.notes} >= {57, 64}
    for sr in (8000, 192000):
        got = T.transcribe(tone([261.63], sr, 1.0, amp=0.4), sr, model=model)
        assert [n.pitch for n in got.notes] == [60], sr
    six = np.stack([a] * 6, axis=1)  # 5.1
    assert {n.pitch for n in T.transcribe(six, 48000, model=model).notes} == {57}


def test_silence_short_and_clipped_audio(model, basic_pitch_audio):
    tone = basic_pitch_audio.tone
    with pytest.raises(AudioFileError, match="is silent .every sample is zero"):
        T.transcribe(np.zeros(22050, np.float32), 22050, model=model)
    with pytest.raises(AudioFileError, match=r"is silent \(peak -66 dBFS\)"):
        T.transcribe(tone([440.0], 22050, 1.0, amp=0.0005), 22050, model=model)
    with pytest.raises(AudioFileError, match="0 ms long, too short to hold a note"):
        T.transcribe(np.array([0.5], np.float32), 22050, model=model)
    with pytest.raises(AudioFileError, match="100 ms long, too short .* shortest kept is 128"):
        T.transcribe(tone([440.0], 22050, 0.1), 22050, model=model)
    short = T.transcribe(tone([440.0], 22050, 0.1), 22050, min_note_ms=50, model=model)
    assert short.duration_s == pytest.approx(0.1)  # a shorter minimum note lets it through
    quiet = T.transcribe(tone([440.0], 22050, 1.0, amp=0.01), 22050, model=model)  # -40 dBFS
    assert 69 in {n.pitch for n in quiet.notes} and quiet.warnings == []
    loud = np.clip(tone([440.0], 22050, 1.0, amp=3.0), -1, 1)
    with pytest.warns(InputWarning, match="clipped"):
        clipped = T.transcribe(loud, 22050, model=model)
    assert any("clipped" in w for w in clipped.warnings)
    assert 69 in {n.pitch for n in clipped.notes}


def test_bad_input_is_a_one_line_transcribe_error(tmp_path, monkeypatch, model):
    def fails(match, *args, **kw):
        with pytest.raises(AudioFileError, match=match) as e:
            T.transcribe(*args, model=model, **kw)
        assert "\n" not in str(e.value)

    fails("does not exist", tmp_path / "missing.wav")
    fails("is a folder", tmp_path)
    (tmp_path / "notes.txt").write_text("not audio")
    fails(
        r"notes.txt is not audio \(its first bytes are not WAV, FLAC, OGG, MP3 or AIFF\); .*"
        "convert it to WAV.*ffmpeg -i notes.txt notes.wav",
        tmp_path / "notes.txt",
    )
    (tmp_path / "broken.wav").write_bytes(b"RIFF1234WAVEfmt garbage")
    fails("ffmpeg -i broken.wav broken-fixed.wav", tmp_path / "broken.wav")  # never over itself
    (tmp_path / "empty.wav").write_bytes(b"")
    fails("the file is empty", tmp_path / "empty.wav")
    fails("sample rate of the audio array", np.zeros(100, np.float32))
    fails("whole number of Hz", np.zeros(100, np.float32), 22050.5)
    fails("NaN", np.array([0.0, np.nan] * 1000, np.float32), 22050)
    fails("empty", np.zeros(0, np.float32), 22050)
    fails("onset threshold", np.zeros(100, np.float32), 22050, onset_threshold=0)
    fails("frame threshold", np.zeros(100, np.float32), 22050, frame_threshold=1.5)
    fails("minimum frequency .* below the maximum", np.zeros(9), 8000, min_freq=500, max_freq=400)
    monkeypatch.setattr(AIO, "MAX_AUDIO_SECONDS", 1)
    long_file = tmp_path / "long.wav"
    sf.write(long_file, np.zeros(3 * 8000, np.float32), 8000)
    fails("long; at most 0 minutes are read at a time: cut it", long_file)
    fails("long", np.zeros(3 * 8000, np.float32), 8000)


def test_piano_roll_and_progress(model, basic_pitch_audio):
    from engine.cli.transcribe import describe, note_name, piano_roll

    calls = ProgressLog()
    result = T.transcribe(basic_pitch_audio.melody(22050, 3.0), 22050, model=model, progress=calls)
    assert calls.stages() == ["windows"]  # 2-second windows: done rises to the total
    assert [e.done for e in calls] == sorted(e.done for e in calls)
    assert calls[-1] == Progress("windows", 2, 2)
    roll = piano_roll(result.notes, result.duration_s, width=40).splitlines()
    pitches = sorted({n.pitch for n in result.notes}, reverse=True)
    assert roll[0].startswith(note_name(pitches[0])) and "█" in "".join(roll)
    assert all(len(line) == 45 for line in roll[:-2])  # label (4) + bar (1) + 40 columns
    assert roll[-1].strip().startswith("0s")
    assert note_name(60) == "C4" and note_name(21) == "A0"
    assert describe(result).startswith(f"{len(result.notes)} notes, ")
