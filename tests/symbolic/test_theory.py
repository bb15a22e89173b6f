"""engine.symbolic.theory: the one key finder agrees with music21's Krumhansl-Schmuckler, and
the scale tables."""

from __future__ import annotations

import numpy as np
import pytest

from engine.symbolic import theory
from engine.symbolic.midi import score_from_music21
from engine.symbolic.quality import analyze_key

CHORALES = [f"bach/bwv{n}" for n in ("66.6", "1.6", "10.7", "101.7", "102.7", "103.6", "104.6")]
OTHERS = ["bach/bwv57.8", "essenFolksong/han1", "monteverdi/madrigal.3.1"]


def _music21_key(score, method):
    """music21's own answer (a method name the fast path does not take)."""
    return analyze_key(
        score, method={"key": "key.aardenessen", "key.krumhansl": "key.krumhanslschmuckler"}[method]
    )


@pytest.mark.parametrize("method", ["key", "key.krumhansl"])
@pytest.mark.parametrize("cid", CHORALES + OTHERS)
def test_the_key_finder_agrees_with_music21_on_corpus_pieces(cid, method):
    from music21 import corpus

    # number=1: an opus's first piece only (essenFolksong/han1 holds 554 songs; parsing them
    # all took a minute of the default run)
    score = score_from_music21(corpus.parse(cid, number=1))
    assert analyze_key(score, method) == _music21_key(score, method)


@pytest.mark.parametrize("method", ["key", "key.krumhansl"])
def test_the_key_finder_agrees_with_music21_on_random_note_sets(method):
    from symusic import Note, Score, Track

    rng = np.random.default_rng(0)
    for _ in range(40):
        s = Score(480)
        t = Track(program=0)
        for k in range(int(rng.integers(3, 30))):
            t.notes.append(Note(k * 240, int(rng.integers(60, 960)), int(rng.integers(40, 90)), 80))
        s.tracks.append(t)
        assert analyze_key(s, method) == _music21_key(s, method)


def test_known_keys_and_scales():
    major = np.zeros(12)
    major[[0, 2, 4, 5, 7, 9, 11]] = [4, 1, 2, 1, 3, 1, 1]  # C major, tonic and fifth weighted
    assert theory.key_from_profile(major) == (0, "major")
    assert theory.key_from_profile(np.roll(major, 7)) == (7, "major")
    minor = np.zeros(12)
    minor[[9, 11, 0, 2, 4, 5, 8]] = [4, 1, 2, 1, 3, 1, 1]  # A minor with G#
    assert theory.key_from_profile(minor) == (9, "minor")
    assert theory.scale_pitch_classes(9, "minor") == {9, 11, 0, 2, 4, 5, 6, 7, 8}
    assert theory.scale_pitch_classes(7, "major") == {7, 9, 11, 0, 2, 4, 6}


@pytest.mark.parametrize("bad", [np.zeros(12), np.ones(11), np.full(12, np.nan)])
def test_an_empty_or_malformed_profile_is_refused(bad):
    with pytest.raises(ValueError):
        theory.key_from_profile(bad)
