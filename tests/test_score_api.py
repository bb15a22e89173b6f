"""Python API of the score model on a tiny trained model: (a) generate, (b) continue,
(c) add tracks, (d) regenerate bars, plus bad input."""

from __future__ import annotations

import re

import pytest
from symusic import Score

from engine.score_api import ScoreModelError, load, read_midi


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
    from engine.steer import Steering, parse_chord

    melody = model.generate(style="chorale", voices=1, bars=4, seed=7, programs=[52]).score
    chords = ["C", "G", "Am", "F"]
    steer = Steering(progression=chords, total_bars=4, bass_track=2)  # given 0, tenor 1, bass 2
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
    with pytest.raises(ScoreModelError, match="unknown part 'baritone'"):
        model.generate(parts=["soprano", "baritone"], bars=2)


def test_named_parts_keep_their_ranges(model):
    from engine.score_api import PART_RANGES

    g = model.generate(parts=["soprano", "alto", "tenor", "bass"], bars=4, seed=8)
    _, tracks = model.tokenizer.split(g.tokens)
    for part, t in zip(["soprano", "alto", "tenor", "bass"], tracks, strict=True):
        lo, hi = PART_RANGES[part]
        pitches = [model.tokenizer.pitch_of[i] for bar in t.bars for i in bar]
        assert all(lo <= p <= hi for p in pitches if p >= 0)


def test_key_strength_pulls_notes_into_the_scale(model):
    from engine.quality import pitch_in_scale_rate

    kw = {"style": "folk", "key": "Eb", "mode": "major", "voices": 1, "bars": 8, "seed": 4}
    free = model.generate(key_strength=0, **kw)
    strong = model.generate(key_strength=10, **kw)
    assert free.settings["key_strength"] == 0 and strong.settings["key_strength"] == 10
    assert pitch_in_scale_rate(strong.score, 3, "major") == 1.0
    assert pitch_in_scale_rate(free.score, 3, "major") < 1.0


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
