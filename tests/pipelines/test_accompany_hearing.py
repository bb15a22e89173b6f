"""`accompany` hears tempo, metre and chords of rendered pieces, legato and detached.

The pieces (`tests/accompany_pieces.py`) are built here with symusic and rendered with the
project's renderer (TimGM6mb): eight bars each, known tempo, metre and one chord a bar (two
bars in three of them); PIECES were tuned on, HELD_OUT were added after the rule was set,
HELD_OUT_2 (legato) before the legato hearing was reworked. A piece is heard right when the
tempo is within 2 %, the metre is the written one and at least 80 % of its eight bars have
the right chord (root and third; a seventh read as its triad counts). The pieces it still
mishears are listed in KNOWN_MISHEARD, run as strict xfails (so a fix shows up), and
described in docs/accompany.md. Told the tempo and metre (`accompany --tempo --meter`, as a
listener who knows the piece would), it hears all but KNOWN_MISHEARD_WITH_HINTS.
"""

from __future__ import annotations

import pytest
import soundfile as sf

from engine.pipelines.accompany import analyze
from tests.accompany_pieces import ALL_PIECES, same_chord, score_of

TEMPO_TOLERANCE = 0.02
MIN_CHORDS_RIGHT = 0.8

KNOWN_MISHEARD = {
    "organ-120-G-waltz": "legato 3/4 whose onsets come back every beat and a half: heard "
    "as 82 BPM 4/4",
    "strings-140-Eb": "fast legato strings whose melody mostly repeats one tied note: no "
    "onset pulse at the beat; heard at 62 BPM",
    "choir-6/8-F": "legato 6/8 whose melody moves only in dotted quarters: nothing divides "
    "the beat, so it sounds as 2/4 would; right tempo, heard as 3/4",
    "organ-150-Ab-waltz-2bar": "fast legato waltz, chords held two bars: heard at 100 BPM 4/4",
    "flute-150-D": "fast legato flute: heard at half tempo, 78 BPM 2/4",
    "organ-76-Eb-waltz": "slow legato waltz: heard at 51 BPM 2/4 (a beat and a half)",
    "choir-132-A-waltz": "fast legato choir waltz: heard at 51 BPM 4/4",
}
KNOWN_MISHEARD_WITH_HINTS = {
    "strings-140-Eb": "fast legato strings whose melody repeats one tied note: 6 bars of 8 "
    "heard, its last chord changes not found",
    "strings-60-E-2bar": "chords held two bars, bar 1 heard a beat late: 6 of 8 bars' chords "
    "right (without the hints the same late bar 1 reads 8 of 8)",
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Each piece rendered once (TimGM6mb), by name."""
    from engine.audio.render import render_midi

    folder = tmp_path_factory.mktemp("pieces")
    out = {}

    def get(piece):
        if piece.name not in out:
            path = folder / f"{len(out)}.wav"
            sf.write(path, render_midi(score_of(piece)), 44100)
            out[piece.name] = path
        return out[piece.name]

    return get


def _heard(piece, path, **hints):
    an = analyze(path, transcribe_notes=False, **hints)
    true = piece.true_chords
    right = sum(same_chord(f, c) for f, c in zip(an.chords, true, strict=False))
    return an, right / len(true)


def _pieces(known: dict[str, str]) -> list:
    """Every piece, those in ``known`` as strict expected failures (so a fix shows up)."""
    return [
        pytest.param(
            p,
            id=p.name,
            marks=[pytest.mark.xfail(reason=known[p.name], strict=True)] if p.name in known else [],
        )
        for p in ALL_PIECES
    ]


@pytest.mark.parametrize("piece", _pieces(KNOWN_MISHEARD))
def test_hears_tempo_meter_and_chords(piece, rendered):
    an, chords_right = _heard(piece, rendered(piece))
    assert abs(an.tempo_bpm - piece.bpm) <= TEMPO_TOLERANCE * piece.bpm, an.tempo_bpm
    assert an.meter == piece.meter
    assert chords_right >= MIN_CHORDS_RIGHT, an.chords


@pytest.mark.parametrize("piece", _pieces(KNOWN_MISHEARD_WITH_HINTS))
def test_told_the_tempo_and_metre_it_hears_the_bars_and_chords(piece, rendered):
    """The tempo given is the beat (within 1 %: beats held to it in legato, on the onsets in
    detached playing; 0.5 % at most here); bar 1 and the chords are still heard."""
    an, chords_right = _heard(piece, rendered(piece), tempo_bpm=piece.bpm, meter=piece.meter)
    assert abs(an.tempo_bpm - piece.bpm) <= 0.01 * piece.bpm, an.tempo_bpm
    assert an.meter == piece.meter
    assert chords_right >= MIN_CHORDS_RIGHT, an.chords
    assert abs(an.bars - len(piece.true_chords)) <= 1


def test_the_set_covers_both_styles_and_three_meters():
    heard = [p for p in ALL_PIECES if p.name not in KNOWN_MISHEARD]
    assert len(ALL_PIECES) >= 14
    assert {p.style for p in heard} == {"legato", "detached"}
    assert {p.meter for p in heard} == {"4/4", "3/4", "2/4", "6/8"}
