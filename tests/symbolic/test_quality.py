"""Tests for engine.symbolic.quality: hand-checkable scores with known answers, plus one Bach
chorale."""

import math

import pytest
from symusic import Note, Score, Track

from engine.symbolic.midi import score_from_music21
from engine.symbolic.quality import (
    MAX_PITCH_CLASS_ENTROPY,
    analyze_key,
    corpus_reference_stats,
    key_adherence,
    parallel_perfects_per_100_beats,
    pitch_class_entropy,
    pitch_in_scale_rate,
    scale_pitch_classes,
)

TPQ = 480
C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72]
REST = None


def make_score(*voices: list[int | None], tpq: int = TPQ) -> Score:
    """One track per voice; each entry is a one-quarter-note pitch, or REST."""
    score = Score(tpq)
    for i, pitches in enumerate(voices):
        track = Track(f"voice {i}", 0, False)
        for beat, pitch in enumerate(pitches):
            if pitch is not REST:
                track.notes.append(Note(beat * tpq, tpq, pitch, 80))
        score.tracks.append(track)
    return score


# Beat by beat (upper, lower, interval mod 12):
#   0 (67, 60) 7
#   1 (69, 62) 7   both up, fifth -> fifth: parallel fifth (counts)
#   2 (71, 67) 4   both up, fifth -> third: similar motion, not parallel
#   3 (72, 60) 0   contrary
#   4 (74, 62) 0   both up, octave -> octave: parallel octave (counts)
#   5 (67, 60) 7   both down, octave -> fifth
#   6 (74, 55) 7   fifth -> twelfth in contrary motion (does not count)
#   7 (74, 55) 7   repeated notes, no motion
#   8 (--, 67)     upper rests; had it held 74 this would be a fifth
#   9 (76, 69) 7   both "up" from beat 8, but out of a rest (does not count)
UPPER = [67, 69, 71, 72, 74, 67, 74, 74, REST, 76]
LOWER = [60, 62, 67, 60, 62, 60, 55, 55, 67, 69]


def test_parallel_perfects_hand_built():
    rate, details = parallel_perfects_per_100_beats(make_score(UPPER, LOWER))
    assert details == {"fifths": 1, "octaves": 1, "beats": 10.0}
    assert rate == pytest.approx(20.0)


def test_parallel_perfects_is_symmetric_in_voice_order():
    _, details = parallel_perfects_per_100_beats(make_score(LOWER, UPPER))
    assert (details["fifths"], details["octaves"]) == (1, 1)


def test_parallel_perfects_selected_voices_and_grid():
    # A third voice that holds one long note: it adds no onsets and no parallels with others.
    score = make_score(UPPER, LOWER)
    drone = Track("drone", 0, False)
    drone.notes.append(Note(0, 10 * TPQ, 48, 80))
    score.tracks.append(drone)
    rate, details = parallel_perfects_per_100_beats(score)
    assert details == {"fifths": 1, "octaves": 1, "beats": 10.0}
    _, details = parallel_perfects_per_100_beats(score, voices=[0, 2])
    assert (details["fifths"], details["octaves"]) == (0, 0)
    with pytest.raises(ValueError):
        parallel_perfects_per_100_beats(score, voices=[0, 3])


def test_parallel_perfects_constant_parallel_fifths_is_high():
    lower = C_MAJOR_SCALE + C_MAJOR_SCALE[::-1]  # 16 beats, 15 steps, every one moving
    upper = [p + 7 for p in lower]
    rate, details = parallel_perfects_per_100_beats(make_score(upper, lower))
    # The turn at the top repeats 72 (no motion), so 14 of the 15 steps are parallel fifths.
    assert details == {"fifths": 14, "octaves": 0, "beats": 16.0}
    assert rate == pytest.approx(14 / 16 * 100)


def test_parallel_perfects_uses_quarter_note_beats_whatever_tpq():
    rate, details = parallel_perfects_per_100_beats(make_score(UPPER, LOWER, tpq=96))
    assert details["beats"] == 10.0
    assert rate == pytest.approx(20.0)


def test_c_major_scale_key_and_scale_rates():
    score = make_score(C_MAJOR_SCALE)
    assert analyze_key(score, method="key.krumhansl") == (0, "major")
    assert key_adherence(score, 0, "major", method="key.krumhansl")
    assert not key_adherence(score, 9, "minor", method="key.krumhansl")
    assert pitch_in_scale_rate(score, 0, "major") == 1.0
    # F# major = F# G# A# B C# D# E#: only F (E#) and B of the C scale's 8 notes are in it.
    assert pitch_in_scale_rate(score, 6, "major") == 0.25


def test_scale_pitch_classes():
    assert scale_pitch_classes(0, "major") == {0, 2, 4, 5, 7, 9, 11}
    assert scale_pitch_classes(6, "major") == {6, 8, 10, 11, 1, 3, 5}
    # A minor: natural minor plus raised 6th (F#) and 7th (G#).
    assert scale_pitch_classes(9, "minor") == {9, 11, 0, 2, 4, 5, 7, 6, 8}
    with pytest.raises(ValueError):
        scale_pitch_classes(0, "dorian")
    with pytest.raises(ValueError):
        scale_pitch_classes(12, "major")


def test_pitch_class_entropy():
    assert pitch_class_entropy(make_score([60] * 8)) == 0.0
    assert pitch_class_entropy(make_score([60, 72, 48])) == 0.0  # octaves share a class
    all_twelve = make_score(list(range(60, 72)))
    assert pitch_class_entropy(all_twelve) == pytest.approx(math.log2(12))
    assert MAX_PITCH_CLASS_ENTROPY == pytest.approx(math.log2(12))
    # C twice, six other classes once: 0.25 * 2 + 6 * 0.125 * 3 = 2.75 bits.
    assert pitch_class_entropy(make_score(C_MAJOR_SCALE)) == pytest.approx(2.75)


def test_drum_tracks_are_ignored_by_pitch_metrics():
    score = make_score([60] * 4)
    drums = Track("drums", 0, True)
    drums.notes.append(Note(0, TPQ, 37, 80))
    score.tracks.append(drums)
    assert pitch_class_entropy(score) == 0.0
    assert pitch_in_scale_rate(score, 0, "major") == 1.0


def test_corpus_reference_stats():
    stats = corpus_reference_stats(
        [(make_score(C_MAJOR_SCALE), 0, "major"), (make_score([61] * 4), 0, "major")]
    )
    assert stats["n_scores"] == 2
    assert stats["mean_pitch_in_scale_rate"] == pytest.approx(0.5)
    assert stats["mean_pitch_class_entropy"] == pytest.approx(1.375)
    assert stats["mean_parallel_perfects_per_100_beats"] == 0.0
    with pytest.raises(ValueError):
        corpus_reference_stats([])


def test_empty_score_raises():
    empty = Score(TPQ)
    drums_only = Score(TPQ)
    drums = Track("drums", 0, True)
    drums.notes.append(Note(0, TPQ, 36, 80))
    drums_only.tracks.append(drums)
    for score in (empty, drums_only, make_score([])):
        with pytest.raises(ValueError, match="no pitched notes"):
            analyze_key(score)
        with pytest.raises(ValueError):
            pitch_in_scale_rate(score, 0, "major")
        with pytest.raises(ValueError):
            pitch_class_entropy(score)
    with pytest.raises(ValueError):
        parallel_perfects_per_100_beats(empty)


def test_score_from_music21_round_trip():
    from music21 import note, stream

    part = stream.Part()
    for pitch in (60, 64, 67):
        part.append(note.Note(pitch, quarterLength=1.0))
    score = score_from_music21(part)
    notes = [n for t in score.tracks for n in t.notes]
    tpq = score.ticks_per_quarter
    assert [(n.time / tpq, n.duration / tpq, n.pitch) for n in notes] == [
        (0.0, 1.0, 60),
        (1.0, 1.0, 64),
        (2.0, 1.0, 67),
    ]


def test_bach_chorale_bwv66_6():
    from music21 import corpus

    score = score_from_music21(corpus.parse("bach/bwv66.6"))
    assert len(score.tracks) == 4
    assert analyze_key(score) == (6, "minor")  # F# minor
    assert key_adherence(score, 6, "minor")
    assert pitch_in_scale_rate(score, 6, "minor") > 0.95
    rate, details = parallel_perfects_per_100_beats(score)
    assert details["beats"] == 36.0
    assert rate < 2.0


def test_key_method_can_be_chosen():
    # music21's bare "key" (Aarden-Essen, the default) hears an even-rhythm C major scale
    # as A minor; Krumhansl-Schmuckler hears C major.
    assert analyze_key(make_score(C_MAJOR_SCALE), method="key") == (9, "minor")
    assert analyze_key(make_score(C_MAJOR_SCALE), method="key.krumhansl") == (0, "major")


def test_quarter_unit_scores_are_read_like_tick_scores():
    score = make_score(UPPER, LOWER).to("quarter")
    assert parallel_perfects_per_100_beats(score) == (
        20.0,
        {"fifths": 1, "octaves": 1, "beats": 10.0},
    )
    assert pitch_class_entropy(score) == pitch_class_entropy(make_score(UPPER, LOWER))


def test_score_from_music21_badly_formed_repeats_exports_notes_as_written():
    from music21 import bar, note, stream

    part = stream.Part()
    for i in range(3):
        measure = stream.Measure(number=i + 1)
        measure.append(note.Note(60 + i, quarterLength=4.0))
        part.append(measure)
    # Two start-repeats for one end-repeat: music21 refuses to expand these.
    part.measure(1).leftBarline = bar.Repeat(direction="start")
    part.measure(2).leftBarline = bar.Repeat(direction="start")
    part.measure(3).rightBarline = bar.Repeat(direction="end")
    score = score_from_music21(part)
    notes = [n for t in score.tracks for n in t.notes]
    tpq = score.ticks_per_quarter
    assert [(n.time / tpq, n.pitch) for n in notes] == [(0.0, 60), (4.0, 61), (8.0, 62)]
