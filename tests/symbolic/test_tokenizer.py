"""Tokenizer: round trips on real corpus pieces, condition tokens, persistence."""

from __future__ import annotations

import pytest
from music21 import corpus

from engine.symbolic.midi import score_from_music21
from engine.symbolic.tokenizer import (
    POSITIONS_PER_BEAT,
    ScoreTokenizer,
    TokenizerError,
    register_of,
    tempo_band,
    tonic_index,
)

ROUND_TRIP_PIECES = [
    "bach/bwv66.6.mxl",
    "palestrina/Agnus_01.krn",
    "ryansMammoth/7thRegimentReel.abc",
    "essenFolksong/teste.abc",
]
CONDITIONS = {
    "style": "chorale",
    "key": "F#",
    "mode": "minor",
    "meter": "4/4",
    "tempo": "moderate",
    "voices": "4",
}


@pytest.fixture(scope="module")
def tok():
    return ScoreTokenizer()


def _parse(name):
    from music21 import stream

    s = corpus.parse(name)
    return s.scores[0] if isinstance(s, stream.Opus) else s


def _grid(score, tpq_out):
    """Notes per track as (onset, pitch, duration) on the tokenizer's grid."""
    step = score.ticks_per_quarter / POSITIONS_PER_BEAT
    out = []
    for t in score.tracks:
        if not len(t.notes):
            continue
        notes = {(round(n.time / step), n.pitch, max(1, round(n.duration / step))) for n in t.notes}
        out.append(sorted(notes))
    return out


@pytest.mark.parametrize("name", ROUND_TRIP_PIECES)
def test_round_trip_real_pieces(tok, name):
    score = score_from_music21(_parse(name))
    piece = tok.encode_score(score)
    voices = str(len(piece.tracks))
    ids = tok.build_sequence({**CONDITIONS, "voices": voices}, piece.tracks)
    decoded = tok.decode(ids)
    assert len(decoded.tracks) == len(piece.tracks)
    orig = _grid(score, decoded.ticks_per_quarter)
    back = _grid(decoded, decoded.ticks_per_quarter)
    assert len(orig) == len(back)
    for a, b in zip(orig, back, strict=True):
        # onsets and pitches exactly; durations up to MidiTok's duration grid (coarser for
        # notes longer than 4 beats)
        assert [(o, p) for o, p, _ in a] == [(o, p) for o, p, _ in b]
        for (_, _, da), (_, _, db) in zip(a, b, strict=True):
            assert abs(da - db) <= max(1, da // 4)
    # programs survive
    assert [t.program for t in decoded.tracks] == [t.program for t in piece.tracks]


def test_conditions_round_trip(tok):
    score = score_from_music21(corpus.parse("bach/bwv66.6.mxl"))
    piece = tok.encode_score(score)
    ids = tok.build_sequence(CONDITIONS, piece.tracks)
    assert tok.ids_to_tokens(ids[:7]) == [
        "BOS_None",
        "Style_chorale",
        "Key_F#",
        "Mode_minor",
        "Meter_4/4",
        "Tempo_moderate",
        "Voices_4",
    ]
    conditions, tracks = tok.split(ids)
    assert conditions == CONDITIONS
    assert [t.bars for t in tracks] == [t.bars for t in piece.tracks]
    # Register tokens follow each program: soprano high, bass low.
    regs = [tok.value(i) for i in ids if tok.kind(i) == "Register"]
    assert regs == ["4", "3", "2", "2"]


def test_unknown_condition_values(tok):
    with pytest.raises(TokenizerError, match="unknown style 'jazz'"):
        tok.condition_id("style", "jazz")
    with pytest.raises(TokenizerError, match="unknown key tonic"):
        tonic_index("H")
    assert tonic_index("Gb") == tonic_index("F#") == 6
    assert tonic_index("bb") == 10


def test_empty_score_is_an_error(tok):
    from symusic import Score

    with pytest.raises(TokenizerError, match="no notes"):
        tok.encode_score(Score(480))


def test_bands_and_registers():
    assert [tempo_band(b) for b in (50, 75.9, 76, 119, 120, 200)] == [
        "slow",
        "slow",
        "moderate",
        "moderate",
        "fast",
        "fast",
    ]
    assert [register_of(p) for p in (40, 48, 57, 62, 70, 80)] == [0, 1, 2, 3, 4, 5]


def test_save_load(tok, tmp_path):
    tok.save(tmp_path)
    again = ScoreTokenizer.load(tmp_path)
    assert again.tokens == tok.tokens
    with pytest.raises(TokenizerError, match="no tokenizer"):
        ScoreTokenizer.load(tmp_path / "missing")


def test_truncated_sequence_decodes(tok):
    score = score_from_music21(corpus.parse("bach/bwv66.6.mxl"))
    ids = tok.build_sequence(CONDITIONS, tok.encode_score(score).tracks)
    for cut in (3, 9, 100, 301, len(ids) - 2):
        out = tok.decode(ids[:cut])
        assert out.ticks_per_quarter > 0  # no exception, a valid score
