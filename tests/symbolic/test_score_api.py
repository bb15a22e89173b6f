"""Python API of the score model on a tiny trained model: (a) generate, (b) continue,
(c) add tracks, (d) regenerate bars, plus bad input."""

from __future__ import annotations

import re

import pytest
from symusic import Note, Score, Track

from engine.symbolic.score_api import ScoreModelError, load, read_midi


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load(tiny_model_dir)


def _notes(track, before=None, after=None):
    return [
        (n.time, n.pitch, n.duration)
        for n in track.notes
        if (before is None or n.time < before) and (after is None or n.time >= after)
    ]


def _bar_ticks(score):
    ts = score.time_signatures[0]
    return score.ticks_per_quarter * 4 * ts.numerator // ts.denominator


def test_generate_honours_conditions(model, tmp_path):
    g = model.generate(
        style="chorale",
        key="D",
        mode="minor",
        meter="3/4",
        voices=3,
        programs=[52, 40, 0],
        bars=4,
        seed=3,
    )
    assert g.conditions == {
        "style": "chorale",
        "key": "D",
        "mode": "minor",
        "meter": "3/4",
        "tempo": g.conditions["tempo"],
        "voices": "3",
    }
    _, tracks = model.tokenizer.split(g.tokens)
    assert [len(t.bars) for t in tracks] == [4, 4, 4]
    assert sorted(t.program for t in g.score.tracks) == [0, 40, 52]
    assert {(t.numerator, t.denominator) for t in g.score.time_signatures} == {(3, 4)}
    path = g.save_midi(tmp_path / "a.mid")
    again = Score(path)
    assert again.note_num() == g.score.note_num()
    assert again.key_signatures[0].key == -1 and again.key_signatures[0].tonality == 1


def test_same_seed_same_tokens(model):
    a = model.generate(style="folk", voices=1, bars=4, seed=11)
    b = model.generate(style="folk", voices=1, bars=4, seed=11)
    c = model.generate(style="folk", voices=1, bars=4, seed=12)
    assert a.tokens == b.tokens
    assert a.to_midi_bytes() == b.to_midi_bytes()
    assert a.tokens != c.tokens


def test_unset_conditions_are_sampled(model):
    g = model.generate(bars=2, seed=5)
    assert set(g.conditions) == {"style", "key", "mode", "meter", "tempo", "voices"}


def test_continue_keeps_prefix(model):
    src = model.generate(style="chorale", voices=2, bars=3, seed=1).score
    out = model.continue_score(src, bars=2, seed=2)
    # The prefix ends with its last bar that has notes (trailing silence is not in MIDI).
    n = out.settings["prefix_bars"]
    end = n * _bar_ticks(src)
    assert len(out.score.tracks) == 2
    for a, b in zip(src.tracks, out.score.tracks, strict=True):
        assert _notes(b, before=end) == _notes(a)
    _, tracks = model.tokenizer.split(out.tokens)
    assert [len(t.bars) for t in tracks] == [n + 2, n + 2]


def test_add_tracks_keeps_given_melody(model):
    melody = model.generate(style="chorale", voices=1, bars=4, seed=7, programs=[52]).score
    out = model.add_tracks(melody, parts=["alto", "tenor", "bass"], seed=3)
    assert len(out.score.tracks) == 4
    given = _notes(melody.tracks[0])
    assert given in [_notes(t) for t in out.score.tracks]
    _, tracks = model.tokenizer.split(out.tokens)
    regs = [model.tokenizer.value(i) for i in out.tokens if model.tokenizer.kind(i) == "Register"]
    assert regs[1:] == ["3", "2", "1"]
    assert {len(t.bars) for t in tracks} == {4}


def test_add_tracks_steered_by_a_progression(model):
    from engine.symbolic.steer import Steering, parse_chord

    melody = model.generate(style="chorale", voices=1, bars=4, seed=7, programs=[52]).score
    chords = ["C", "G", "Am", "F"]
    # given 0, tenor 1, bass 2; no cadence: the progression holds in every bar
    steer = Steering(progression=chords, total_bars=4, bass_track=2, cadence=False)
    out = model.add_tracks(melody, parts=["tenor", "bass"], programs=[48, 32], seed=5, steer=steer)
    bar = _bar_ticks(out.score)
    given = _notes(melody.tracks[0])
    (bass,) = [t for t in out.score.tracks if t.program == 32]
    assert bass.notes
    for n in bass.notes:  # the hard constraint: chord tones of each bar only
        assert n.pitch % 12 in parse_chord(chords[n.time // bar]).pitch_classes
    assert given in [_notes(t) for t in out.score.tracks]


def test_regenerate_bars_keeps_the_rest(model):
    src = model.generate(style="chorale", voices=2, bars=4, seed=21).score
    out = model.regenerate_bars(src, start_bar=1, end_bar=2, tracks=[1], seed=4)
    bar = _bar_ticks(src)
    assert _notes(out.score.tracks[0]) == _notes(src.tracks[0])  # untouched track
    t_src, t_out = src.tracks[1], out.score.tracks[1]
    assert _notes(t_out, before=bar) == _notes(t_src, before=bar)
    assert _notes(t_out, after=3 * bar) == _notes(t_src, after=3 * bar)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"style": "chorall"}, "did you mean chorale"),
        ({"bars": 0}, "bars must be"),
        ({"bars": 1000}, "bars must be"),
        ({"voices": 9}, "voices must be 1..8"),
        ({"key": "H"}, "unknown key tonic"),
        ({"meter": "7/8"}, "unsupported meter"),
        ({"tempo_bpm": 0}, "tempo 0 BPM"),
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"programs": [52, 999]}, "General MIDI"),
        ({"key_strength": -1}, "key_strength"),
    ],
)
def test_bad_parameters(model, kwargs, message):
    with pytest.raises((ScoreModelError, ValueError), match=message):
        model.generate(**kwargs)


def test_bad_files(model, tmp_path):
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mid"
    text.write_text("not a midi file")
    truncated = tmp_path / "cut.mid"
    g = model.generate(style="folk", voices=1, bars=2, seed=0)
    truncated.write_bytes(g.to_midi_bytes()[:30])
    for path, message in [
        (empty, "empty"),
        (text, "not a MIDI file"),
        (truncated, "corrupt MIDI"),
        (tmp_path / "missing.mid", "no such file"),
    ]:
        with pytest.raises(ScoreModelError, match=message):
            model.continue_score(path, bars=2)


def test_unknown_model_name():
    with pytest.raises(ScoreModelError, match="unknown score model"):
        load("score-bsae")


def test_long_pieces_are_generated_in_sections(model):
    # The tiny model's window (512 tokens) holds about 3 bars of 4 voices per section.
    g = model.generate(style="chorale", voices=4, meter="4/4", bars=8, seed=2)
    assert g.settings["sections"] > 1
    _, tracks = model.tokenizer.split(g.tokens)
    assert [len(t.bars) for t in tracks] == [8, 8, 8, 8]
    again = model.generate(style="chorale", voices=4, meter="4/4", bars=8, seed=2)
    assert again.tokens == g.tokens


def test_default_and_requested_parts(model):
    tok = model.tokenizer

    def registers(g):
        return [tok.value(i) for i in g.tokens if tok.kind(i) == "Register"]

    assert registers(model.generate(voices=4, bars=2, seed=1)) == ["4", "3", "2", "1"]
    g = model.generate(parts=["melody", "bassline"], bars=2, seed=1)
    assert registers(g) == ["4", "1"] and g.conditions["voices"] == "2"
    with pytest.raises(ScoreModelError, match="unknown part 'countertenor'"):
        model.generate(parts=["soprano", "countertenor"], bars=2)


def test_named_parts_keep_their_ranges(model):
    from engine.symbolic.score_api import PART_RANGES

    g = model.generate(parts=["soprano", "alto", "tenor", "bass"], bars=4, seed=8)
    _, tracks = model.tokenizer.split(g.tokens)
    for part, t in zip(["soprano", "alto", "tenor", "bass"], tracks, strict=True):
        lo, hi = PART_RANGES[part]
        pitches = [model.tokenizer.pitch_of[i] for bar in t.bars for i in bar]
        assert all(lo <= p <= hi for p in pitches if p >= 0)


def test_key_strength_pulls_notes_into_the_scale(model):
    from engine.symbolic.quality import pitch_in_scale_rate

    kw = {"style": "folk", "key": "Eb", "mode": "major", "voices": 1, "bars": 8, "seed": 4}
    free = model.generate(key_strength=0, **kw)
    strong = model.generate(key_strength=10, **kw)
    assert free.settings["key_strength"] == 0 and strong.settings["key_strength"] == 10
    assert pitch_in_scale_rate(strong.score, 3, "major") == 1.0
    assert pitch_in_scale_rate(free.score, 3, "major") < 1.0


def _calibrated(tiny_model_dir, tmp_path, scale):
    import json
    import shutil

    folder = tmp_path / f"scaled-{scale}"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "key_strength_scale": scale}))
    return folder


def test_a_models_key_strength_scale_calibrates_the_key_bonus(model, tiny_model_dir, tmp_path):
    """config.json's key_strength_scale multiplies the requested bonus: key strength 2 on a
    model calibrated at 0.5 writes what key strength 1 writes uncalibrated, token for token."""
    assert model.key_strength_scale == 1.0
    half = load(_calibrated(tiny_model_dir, tmp_path, 0.5))
    assert half.key_strength_scale == 0.5
    kw = {"style": "folk", "key": "Eb", "mode": "major", "voices": 2, "bars": 4, "seed": 4}
    plain = model.generate(key_strength=1.0, **kw)
    scaled = half.generate(key_strength=2.0, **kw)
    assert scaled.tokens == plain.tokens
    assert scaled.settings["key_strength"] == 2.0  # the record keeps what was asked for
    assert model.generate(key_strength=2.0, **kw).tokens != plain.tokens


@pytest.mark.parametrize("bad", [0, -1, 2.5, "0.5", None, True, float("nan")])
def test_a_bad_key_strength_scale_is_refused_when_the_model_loads(tiny_model_dir, tmp_path, bad):
    folder = _calibrated(tiny_model_dir, tmp_path, bad)
    with pytest.raises(ScoreModelError, match=r"key_strength_scale must be a number") as e:
        load(folder)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "tempo,ticks_per_beat,message",
    [
        (0, 480, "impossible tempo (0 microseconds a beat)"),
        (500000, 1, "lasts 69 hours (absurd tick values?)"),
    ],
)
def test_tempo_zero_and_absurd_ticks_are_refused(tmp_path, tempo, ticks_per_beat, message):
    import mido

    m = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    t = mido.MidiTrack()
    m.tracks.append(t)
    t.append(mido.MetaMessage("set_tempo", tempo=tempo))
    t.append(mido.Message("note_on", note=60, velocity=80, time=0))
    t.append(mido.Message("note_off", note=60, time=500_000))
    m.save(tmp_path / "bad.mid")
    with pytest.raises(ScoreModelError, match=re.escape(message)):
        read_midi(tmp_path / "bad.mid")


# ---- arguments that used to leak other errors: one-line ScoreModelErrors ---------------------
def _one_line_error(call, *words):
    with pytest.raises(ScoreModelError) as e:
        call()
    text = str(e.value)
    assert "\n" not in text
    for w in words:
        assert w in text, text
    return text


@pytest.mark.parametrize("seed", [2**70, 2**32, -1, "abc", 1.5, True, None])
def test_seeds_outside_the_range_are_refused(model, seed):
    _one_line_error(lambda: model.generate(bars=1, seed=seed), "seed must be 0..4294967295")


def test_largest_seed_is_accepted(model):
    assert model.generate(voices=1, bars=1, seed=2**32 - 1).score.note_num() >= 0


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"temperature": float("nan")}, ["temperature must be a number 0..5"]),
        ({"temperature": -1}, ["temperature must be a number 0..5"]),
        ({"top_p": 2}, ["top_p must be more than 0 and at most 1"]),
        ({"top_p": float("nan")}, ["top_p"]),
        ({"key_strength": float("nan")}, ["key_strength must be a number 0..10"]),
        ({"top_k": -1}, ["top_k must be a whole number"]),
        ({"bars": 10**9}, ["bars must be a whole number 1..128"]),
        ({"bars": 2.5}, ["bars must be a whole number 1..128"]),
        ({"mode": "dorian"}, ["unknown mode 'dorian'"]),
        ({"key": 5}, ["key must be a tonic name"]),
        ({"meter": 4}, ["unsupported meter"]),
        ({"style": 3}, ["unknown style"]),
        ({"voices": 2, "programs": [0, 128]}, ["program 128", "0..127"]),
        ({"programs": [-1]}, ["program -1", "0..127"]),
        ({"voices": 3, "programs": [0, 1]}, ["give one program per voice"]),
        ({"parts": []}, ["at least one part"]),
        ({"parts": ["alto", 7]}, ["part 7 is not a part name"]),
        ({"tempo_bpm": "fast"}, ["tempo"]),
        ({"pitch_ranges": [(40, 200)], "voices": 1}, ["0..127"]),
        ({"pitch_ranges": 5, "voices": 1}, ["pitch_ranges"]),
    ],
)
def test_absurd_arguments_name_the_argument(model, kwargs, words):
    _one_line_error(lambda: model.generate(**kwargs), *words)


def test_save_midi_in_a_missing_folder(model, tmp_path):
    g = model.generate(voices=1, bars=1, seed=1)
    _one_line_error(
        lambda: g.save_midi(tmp_path / "missing" / "folder" / "x.mid"),
        "does not exist",
        "create it or choose another path",
    )
    _one_line_error(lambda: g.save_midi(tmp_path), "is a folder")
    assert g.save_midi(tmp_path / "x.mid").is_file()


def test_add_tracks_takes_one_part_or_a_comma_list(model):
    melody = model.generate(style="chorale", voices=1, bars=2, seed=7, programs=[52]).score
    one = model.add_tracks(melody, parts="bass", seed=1)
    assert [t.name for t in one.score.tracks[1:]] == ["Bass"]
    two = model.add_tracks(melody, parts="alto, tenor", seed=1)
    assert [t.name for t in two.score.tracks[1:]] == ["Alto", "Tenor"]
    _one_line_error(lambda: model.add_tracks(melody, parts="bass,"), "empty name")
    _one_line_error(lambda: model.add_tracks(melody, parts="b"), "unknown part 'b'")
    _one_line_error(lambda: model.add_tracks(melody, parts=[]), "at least one part")
    _one_line_error(lambda: model.add_tracks(melody, parts=[1, 2]), "part 1 is not a part name")
    _one_line_error(
        lambda: model.add_tracks(melody, parts="bass", programs=[200]), "program 200", "0..127"
    )


@pytest.mark.parametrize(
    ("bars", "words"),
    [
        ((4, 2), ["goes backwards", "start_bar <= end_bar"]),
        ((-1, 1), ["start_bar must be a whole bar number counted from 0"]),
        ((0, -2), ["end_bar must be a whole bar number"]),
        ((0.5, 1), ["start_bar must be a whole bar number"]),
        (("1", 2), ["start_bar must be a whole bar number"]),
        ((0, 9), ["outside the piece"]),
    ],
)
def test_regenerate_bar_ranges(model, bars, words):
    src = model.generate(style="chorale", voices=2, bars=3, seed=21).score
    start, end = bars
    _one_line_error(lambda: model.regenerate_bars(src, start_bar=start, end_bar=end), *words)


def test_bad_sources_over_the_api(model, tmp_path):
    _one_line_error(lambda: model.continue_score(b"RIFF0000", bars=1), "not MIDI")
    _one_line_error(lambda: model.continue_score(b"", bars=1), "empty")
    _one_line_error(lambda: model.add_tracks(str(tmp_path / "gone.mid")), "no such file")
    _one_line_error(lambda: model.continue_score(42, bars=1), "MIDI file path")
    text = tmp_path / "t.mid"
    text.write_text("hello")
    _one_line_error(lambda: model.regenerate_bars(str(text), start_bar=0, end_bar=0), "not a MIDI")


def _model_folder(tmp_path, name, config_text):
    d = tmp_path / name
    d.mkdir()
    if config_text is not None:
        (d / "config.json").write_text(config_text)
    return d


@pytest.mark.parametrize(
    ("config_text", "words"),
    [
        ('{"model_type": "xyz"}', ["is not a score model", "model_type 'xyz'"]),
        (None, ["is not a score model", "no config.json"]),
        ("{not json", ["config.json is not valid JSON"]),
        ("[1, 2]", ["config.json is not a JSON object"]),
        ('{"model_type": "score"}', ["no tokenizer"]),
    ],
)
def test_folders_that_are_not_score_models(tmp_path, config_text, words):
    d = _model_folder(tmp_path, "m", config_text)
    text = _one_line_error(lambda: load(d), *words)
    assert "disco-musica models" in text


def test_basic_pitch_is_not_a_score_model():
    from engine.symbolic.score_api import available_models

    assert "basic-pitch" not in available_models()
    assert "score-base" in available_models()
    _one_line_error(
        lambda: load("basic-pitch"), "basic-pitch is the transcription model", "not a score model"
    )


# ---- absurd MIDI files: refused at read time, naming the file and what is wrong --------------
def _raw_midi(tracks, tpq=480):
    """A MIDI file written byte by byte (ticks symusic cannot hold, tempo 0, 0 ticks a beat)."""
    from tests.hostile import corpus

    return corpus.midi_bytes(tracks, tpq)


def _absurd_files():
    from tests.hostile import corpus as c

    notes = c.notes_events
    return {
        "late.mid": (
            _raw_midi(
                [c.conductor(), c.track_bytes(notes([(0, 480, 60, 80), (2**31, 480, 62, 80)]))]
            ),
            "has a note at bar 1,118,482 (tick 2,147,483,648)",
        ),
        "held.mid": (
            _raw_midi([c.conductor(), c.track_bytes(notes([(0, 2**31, 60, 80)]))]),
            "has a note that lasts until bar 1,118,482",
        ),
        "head.mid": (
            c.midi_bytes([], ntracks=1),
            "has no notes: it holds a MIDI header and no tracks",
        ),
        "silent.mid": (
            _raw_midi(
                [c.conductor(), c.track_bytes([(i * 480, bytes([0x90, 60, 0])) for i in range(3)])]
            ),
            "has no notes: its 3 note-ons all have velocity 0",
        ),
        "none.mid": (_raw_midi([c.conductor(), c.track_bytes([])]), "has no notes"),
        "tempo.mid": (c.melody_midi(mspq=0), "sets an impossible tempo (0 microseconds a beat)"),
        "zero.mid": (
            c.midi_bytes([c.conductor(), c.track_bytes(notes(c.scale(1)))], 0),
            "says its beat has 0 ticks",
        ),
        "smpte.mid": (
            c.midi_bytes([c.conductor(), c.track_bytes(notes(c.scale(480)))], 65535),
            "counts time in SMPTE frames",
        ),
    }


@pytest.mark.parametrize("name", list(_absurd_files()))
def test_absurd_midi_files_are_refused_naming_the_file(tmp_path, monkeypatch, name):
    from engine.symbolic.score_api import check_request

    data, words = _absurd_files()[name]
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_bytes(data)
    for call in (read_midi, check_request):
        text = _one_line_error(lambda call=call: call(name), words)
        assert text.startswith(name), text  # the path as the user gave it
        assert "the MIDI file" not in text


def test_a_midi_file_is_read_by_its_content_whatever_its_name(tmp_path):
    from tests.hostile import corpus

    path = tmp_path / "tune.txt"
    path.write_bytes(corpus.melody_midi())
    assert read_midi(path).note_num() == 8
    assert read_midi(str(path)).note_num() == 8


def test_negative_times_are_refused_by_the_tokenizer(model):
    from engine.symbolic.tokenizer import TokenizerError

    s = Score(480)
    t = Track(program=0)
    t.notes.append(Note(-(2**31), 480, 60, 80))
    t.notes.append(Note(0, 480, 62, 80))
    s.tracks.append(t)
    with pytest.raises(TokenizerError, match="odd.mid has notes before its start"):
        model.tokenizer.encode_score(s, "odd.mid")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"style": "banjo"}, "unknown style 'banjo'"),
        ({"key": "H"}, "unknown key tonic"),
        ({"mode": "lydian"}, "unknown mode"),
        ({"meter": "7/0"}, "unsupported meter"),
        ({"parts": "alto,kazoo"}, "unknown part 'kazoo'"),
        ({"parts": "alto,bass", "programs": [1, 2, 3]}, "2 parts but 3 programs"),
        ({"programs": [128]}, "program 128 is not a General MIDI program"),
        ({"top_k": 2**70}, "top_k must be a whole number"),
        ({"temperature": float("inf")}, "temperature must be a number 0..5"),
        ({"seed": -1}, "seed must be 0..4294967295"),
        ({"model": "no-such-model"}, "unknown score model 'no-such-model'"),
    ],
)
def test_check_request_refuses_cheap_arguments_without_a_model(monkeypatch, kwargs, words):
    from engine.symbolic import score_api

    def no_load(*a, **k):
        raise AssertionError("check_request loaded a model")

    monkeypatch.setattr(score_api.ScoreModel, "load", classmethod(no_load))
    _one_line_error(lambda: score_api.check_request(**kwargs), words)


def test_check_request_reads_the_input_and_refuses_what_the_model_cannot(tmp_path):
    from engine.symbolic.score_api import MAX_VOICES, check_request
    from tests.hostile import corpus

    drums = tmp_path / "drums.mid"
    drums.write_bytes(
        corpus.midi_bytes(
            [corpus.conductor(), corpus.track_bytes(corpus.notes_events(corpus.scale(480), 9))]
        )
    )
    _one_line_error(lambda: check_request(drums), f"{drums} has no pitched notes")
    many = tmp_path / "many.mid"
    tracks = [corpus.track_bytes(corpus.notes_events(corpus.scale(480), ch)) for ch in range(9)]
    many.write_bytes(corpus.midi_bytes([corpus.conductor(), *tracks]))
    _one_line_error(lambda: check_request(many), f"{many} has 9 tracks", f"at most {MAX_VOICES}")
    tune = tmp_path / "tune.mid"
    tune.write_bytes(corpus.melody_midi())
    assert check_request(tune, style="folk", parts="bass").note_num() == 8
    assert check_request() is None


def test_model_calls_name_the_input_file(model, tmp_path):
    from tests.hostile import corpus

    drums = tmp_path / "drums.mid"
    drums.write_bytes(
        corpus.midi_bytes(
            [corpus.conductor(), corpus.track_bytes(corpus.notes_events(corpus.scale(480), 9))]
        )
    )
    for call in (
        lambda: model.continue_score(drums, bars=1),
        lambda: model.add_tracks(drums, parts="bass"),
        lambda: model.regenerate_bars(drums, start_bar=0, end_bar=0),
    ):
        _one_line_error(call, f"{drums} has no pitched notes")


def test_parts_and_bars_are_checked_before_the_model_loads(tmp_path, tiny_model_dir, monkeypatch):
    from engine.symbolic import score_api
    from tests.hostile import corpus

    def no_load(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(score_api.ScoreModel, "load", classmethod(no_load))
    tune = tmp_path / "tune.mid"
    tune.write_bytes(corpus.duet_midi())
    _one_line_error(
        lambda: score_api.check_request(tune, parts=["soprano"] * 7),
        "2 given + 7 new tracks is more than 8 voices",
    )
    assert score_api.input_shape(tune, tiny_model_dir) == (2, 2)
    _one_line_error(lambda: score_api.input_shape(tune, "no-such-model"), "unknown score model")


def test_continue_takes_one_pitch_range_per_file_track_even_when_one_is_silent(model):
    """A planned part that came out silent is a track without notes: it is not encoded, but
    the caller still gives a range for it (compose does, section after section)."""
    score = Score(480)
    for name, pitches in (("Soprano", [72, 74, 76, 77]), ("Alto", []), ("Bass", [48, 50, 52, 53])):
        t = Track(name=name, program=0)
        for i, p in enumerate(pitches):
            t.notes.append(Note(i * 480, 480, p, 80))
        score.tracks.append(t)
    ranges = [(60, 84), (55, 77), (36, 60)]
    out = model.continue_score(score, bars=1, pitch_ranges=ranges, seed=1)
    assert [t.name for t in out.score.tracks][:3] == ["Soprano", "Alto", "Bass"]
    new = [n.pitch for n in out.score.tracks[2].notes if n.time >= 4 * 480]
    assert all(36 <= p <= 60 for p in new)
    with pytest.raises(ScoreModelError, match="1 pitch ranges for 2 tracks"):
        model.continue_score(score, bars=1, pitch_ranges=ranges[:1], seed=1)


def test_the_key_bonus_weighs_a_minor_keys_third_like_its_tonic(model):
    """The tonic, fifth and third get a share of the key bonus again (at most 0.9 logits):
    in minor the third as much as the tonic, 0.45 each (so a minor key is not heard as its
    parallel major), in major 0.15 beside the tonic's 0.6 (more would help the relative
    minor)."""
    import numpy as np

    def bonus(mode: str) -> dict[int, float]:
        g = model.generate(style="folk", key="D", mode=mode, voices=1, bars=1, seed=0)
        bias = model._key_bias(g.tokens, 1.5)
        pitch = model.tokenizer.pitch_of
        return {p: float(bias[np.flatnonzero(pitch == p)[0]]) for p in range(60, 72)}

    minor, major = bonus("minor"), bonus("major")
    D, F, Fs, A, B, E = 62, 65, 66, 69, 71, 64
    assert minor[D] == pytest.approx(1.5 + 0.675) and minor[F] == pytest.approx(1.5 + 0.675)
    assert minor[A] == pytest.approx(1.5 + 0.45) and minor[E] == pytest.approx(1.5)
    assert minor[Fs] == 0.0 and minor[B] == pytest.approx(0.75)  # the raised sixth: half
    assert major[D] == pytest.approx(1.5 + 0.9) and major[Fs] == pytest.approx(1.5 + 0.225)
    assert major[F] == 0.0 and major[A] == pytest.approx(1.5 + 0.45)
