"""engine.symbolic.notation: symusic Score → MusicXML, checked by reading the file back with
music21."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from music21 import converter, expressions, key, meter, note, tempo
from symusic import KeySignature, Note, Score, Tempo, TextMeta, TimeSignature, Track

from engine.symbolic.notation import (
    GRID_PER_QUARTER,
    NotationError,
    _events,
    score_to_music21,
    write_musicxml,
)

TPQ = 480
Q = TPQ  # one quarter note in ticks

# (offset, quarter length, pitches) per part, in quarter notes.  Bars: two of 3/4 (0-6), then
# two of 6/8 (6-12).  Flute: a note tied over the first barline (2.0-4.0), a rest (4.5-6.0).
FLUTE = [
    (0, 1, [72]),
    (1, Fraction(1, 2), [74]),
    (Fraction(3, 2), Fraction(1, 2), [75]),
    (2, 2, [77]),
    (4, Fraction(1, 2), [79]),
    (6, Fraction(3, 2), [72]),
    (Fraction(15, 2), Fraction(1, 2), [70]),
    (8, 1, [68]),
    (9, 3, [67]),
]
# Piano: three- and two-note chords, a chord tied over the 6/8 barline (4.5-7.5), a 32nd.
PIANO = [
    (0, 3, [48, 55, 60]),
    (3, Fraction(3, 2), [43, 50]),
    (Fraction(9, 2), 3, [44, 51, 56]),
    (Fraction(15, 2), Fraction(1, 8), [55]),
    (9, 3, [41, 48, 53]),
]
CELLO = [(0, 6, [36]), (6, 6, [43])]


def ticks(ql) -> int:
    return int(Fraction(ql) * TPQ)


def make_track(name: str, program: int, events) -> Track:
    track = Track(name=name, program=program)
    for start, ql, pitches in events:
        for p in pitches:
            track.notes.append(Note(ticks(start), ticks(ql), p, 80))
    return track


def make_score(*tracks: Track) -> Score:
    score = Score(TPQ)
    score.time_signatures.append(TimeSignature(0, 3, 4))
    score.time_signatures.append(TimeSignature(6 * Q, 6, 8))
    score.key_signatures.append(KeySignature(0, -3, 0))  # E-flat major: three flats
    score.tempos.append(Tempo(0, 72))
    score.markers.append(TextMeta(6 * Q, "B"))
    for t in tracks:
        score.tracks.append(t)
    return score


@pytest.fixture(scope="module")
def trio() -> Score:
    return make_score(
        make_track("Flute", 73, FLUTE),
        make_track("Piano", 0, PIANO),
        make_track("Cello", 42, CELLO),
    )


@pytest.fixture(scope="module")
def trio_parsed(trio, tmp_path_factory):
    path = write_musicxml(trio, tmp_path_factory.mktemp("xml") / "trio.musicxml", title="Trio")
    return converter.parse(path)


def stripped(part) -> list[tuple[Fraction, Fraction, list[int]]]:
    """(offset, quarter length, pitches) of every note and chord, ties merged by stripTies."""
    return [
        (Fraction(n.offset), Fraction(n.quarterLength), [p.midi for p in n.pitches])
        for n in part.stripTies().flatten().notes
    ]


def merged_notes(part) -> list[tuple[Fraction, int, Fraction]]:
    """(offset, pitch, quarter length) of every note, ties merged; unlike stripTies this also
    follows ties inside voices across barlines."""
    open_ties: dict[tuple[int, Fraction], list] = {}
    out = []
    for el in part.recurse().notes:
        offset = Fraction(el.getOffsetInHierarchy(part))
        ql = Fraction(el.quarterLength)
        for n in el.notes if el.isChord else [el]:
            tie = n.tie or el.tie
            kind = tie.type if tie is not None else None
            pitch = n.pitch.midi
            if kind in ("stop", "continue") and (pitch, offset) in open_ties:
                rec = open_ties.pop((pitch, offset))
                rec[2] += ql
            else:
                rec = [offset, pitch, ql]
                out.append(rec)
            if kind in ("start", "continue"):
                open_ties[(pitch, offset + ql)] = rec
    return sorted(tuple(r) for r in out)


def expected_notes(track: Track, tpq: int) -> list[tuple[Fraction, int, Fraction]]:
    return sorted((start, p, ql) for start, ql, pitches in _events(track, tpq) for p in pitches)


# ---- the hand-made trio ---------------------------------------------------------------------


def test_parts_names_and_instruments(trio_parsed):
    parts = list(trio_parsed.parts)
    assert [p.partName for p in parts] == ["Flute", "Piano", "Cello"]
    assert [p.getInstrument().midiProgram for p in parts] == [73, 0, 42]
    assert trio_parsed.metadata.bestTitle == "Trio"
    assert trio_parsed.metadata.composer in (None, "")  # not music21's default "Music21"


@pytest.mark.parametrize("index, events", [(0, FLUTE), (1, PIANO), (2, CELLO)])
def test_notes_offsets_and_durations_round_trip(trio_parsed, index, events):
    want = [(Fraction(s), Fraction(q), p) for s, q, p in events]
    assert stripped(trio_parsed.parts[index]) == want


def test_ties_over_barlines_and_rests_are_written(trio_parsed):
    flute, piano = trio_parsed.parts[0], trio_parsed.parts[1]
    tied = [
        (n.offset + n.getContextByClass("Measure").offset, n.tie.type)
        for n in flute.recurse().notes
        if n.tie is not None
    ]
    assert tied == [(2.0, "start"), (3.0, "stop")]
    assert any(n.tie is not None and n.tie.type == "start" for n in piano.recurse().notes)
    rests = [r.getOffsetInHierarchy(flute) for r in flute.recurse().getElementsByClass(note.Rest)]
    assert 4.5 in rests
    measures = flute.getElementsByClass("Measure")
    assert [m.offset for m in measures] == [0.0, 3.0, 6.0, 9.0]


def test_meter_key_tempo_and_markers(trio_parsed):
    for part in trio_parsed.parts:
        flat = part.flatten()
        sigs = [(ts.offset, ts.ratioString) for ts in flat.getElementsByClass(meter.TimeSignature)]
        assert sigs == [(0.0, "3/4"), (6.0, "6/8")]
        keys = flat.getElementsByClass(key.KeySignature)
        assert [(k.offset, k.sharps) for k in keys] == [(0.0, -3)]
    first = trio_parsed.parts[0].flatten()
    marks = first.getElementsByClass(tempo.MetronomeMark)
    assert [(m.offset, m.number) for m in marks] == [(0.0, 72)]
    rehearsal = first.getElementsByClass(expressions.RehearsalMark)
    assert [(r.offset, r.content) for r in rehearsal] == [(6.0, "B")]
    # a clef that fits each part's range, written once
    clefs = [[c.sign for c in p.recurse().getElementsByClass("Clef")] for p in trio_parsed.parts]
    assert clefs == [["G"], ["F"], ["F"]]


def test_minor_key_and_part_name_override(tmp_path):
    score = make_score(make_track("", 73, FLUTE))
    score.key_signatures[0] = KeySignature(0, -3, 1)  # C minor
    sc = score_to_music21(score, part_names=["Flauto"])
    k = sc.parts[0].recurse().getElementsByClass(key.KeySignature).first()
    assert k.sharps == -3 and k.mode == "minor"
    assert sc.parts[0].partName == "Flauto"
    assert score_to_music21(score).parts[0].partName == "Flute"  # unnamed: the instrument's name
    with pytest.raises(NotationError, match="2 part names for 1 tracks"):
        score_to_music21(score, part_names=["a", "b"])


# ---- robustness -----------------------------------------------------------------------------


def test_overlapping_notes_become_voices(tmp_path):
    held = [(0, 4, [48]), (0, 1, [60]), (1, 1, [62]), (2, 2, [64, 67]), (3, 3, [50])]
    track = make_track("Piano", 0, held)
    track.notes.append(Note(0, ticks(1), 60, 80))  # the same pitch struck twice: kept once
    score = Score(TPQ)
    score.tracks.append(track)
    parsed = converter.parse(write_musicxml(score, tmp_path / "voices.musicxml"))
    assert parsed.parts[0].recurse().getElementsByClass("Voice")
    assert merged_notes(parsed.parts[0]) == expected_notes(track, TPQ)
    assert len(expected_notes(track, TPQ)) == 6  # seven notes in, the doubled C once
    voices = parsed.parts[0].recurse().getElementsByClass("Voice")
    assert {v.id for v in voices} <= {"1", "2", "3"}


def test_same_pitch_overlap_is_cut_where_it_restarts():
    track = make_track("Flute", 73, [(0, 3, [67]), (1, 1, [67])])
    assert _events(track, TPQ) == [(0, 1, [67]), (1, 1, [67])]


def test_off_grid_timing_is_quantised(tmp_path):
    triplets = Track(name="Flute", program=73)
    for i in range(6):  # eighth-note triplets: 160 ticks apart
        triplets.notes.append(Note(i * TPQ // 3, TPQ // 3, 72 + i, 80))
    triplets.notes.append(Note(3 * Q + 7, 5, 60, 80))  # very short and slightly late
    score = Score(TPQ)
    score.tracks.append(triplets)
    parsed = converter.parse(write_musicxml(score, tmp_path / "triplets.xml"))
    notes = merged_notes(parsed.parts[0])
    assert len(notes) == 7
    for offset, _, ql in notes:
        assert (offset * GRID_PER_QUARTER).denominator == 1 and ql >= Fraction(1, 8)
    assert notes == expected_notes(triplets, TPQ)


@pytest.mark.parametrize("seed", range(3))
def test_random_scores_round_trip(seed, tmp_path):
    rng = random.Random(seed)
    score = Score(TPQ)
    num, den = [(5, 4), (7, 8), (12, 8)][seed]
    score.time_signatures.append(TimeSignature(0, num, den))
    score.key_signatures.append(KeySignature(0, rng.randint(-7, 7), rng.randint(0, 1)))
    for k in range(2):
        track = Track(name=f"Part {k}", program=rng.randrange(128))
        for _ in range(30):
            start, dur = rng.randrange(0, 16 * TPQ, 60), rng.randrange(60, 24 * 60, 60)
            for p in rng.sample(range(40, 90), rng.randint(1, 3)):
                track.notes.append(Note(start, dur, p, 80))
        score.tracks.append(track)
    parsed = converter.parse(write_musicxml(score, tmp_path / "random.musicxml"))
    for track, part in zip(score.tracks, parsed.parts, strict=True):
        assert merged_notes(part) == expected_notes(track, TPQ)


def test_other_time_units_and_defaults(trio):
    by_quarter = score_to_music21(trio.to("quarter"))
    by_tick = score_to_music21(trio)
    assert [stripped(p) for p in by_quarter.parts] == [stripped(p) for p in by_tick.parts]
    bare = Score(TPQ)
    bare.tracks.append(make_track("Horn", 60, [(1, 1, [60])]))
    sc = score_to_music21(bare)  # no meter, key or tempo given: 4/4, a full bar, no key
    assert (
        sc.parts[0].recurse().getElementsByClass(meter.TimeSignature).first().ratioString == "4/4"
    )
    assert sc.parts[0].duration.quarterLength == 4.0


def test_errors_and_atomic_write(tmp_path, trio):
    with pytest.raises(NotationError, match="no tracks"):
        score_to_music21(Score(TPQ))
    with pytest.raises(NotationError, match="end in .musicxml or .xml"):
        write_musicxml(trio, tmp_path / "trio.mid")
    with pytest.raises(NotationError, match="does not exist"):
        write_musicxml(trio, tmp_path / "missing" / "trio.musicxml")
    target = tmp_path / "trio.musicxml"
    target.write_text("old")
    assert write_musicxml(trio, target) == target
    assert target.read_text().startswith("<?xml")
    assert [p.name for p in tmp_path.iterdir()] == ["trio.musicxml"]
    assert "<work-title>trio</work-title>" in target.read_text()  # the title defaults to the name


def test_same_score_same_file(tmp_path, trio):
    a = write_musicxml(trio, tmp_path / "a.musicxml", title="Trio").read_bytes()
    b = write_musicxml(trio, tmp_path / "b.musicxml", title="Trio").read_bytes()
    assert a == b  # part and instrument ids are fixed (only <encoding-date> changes by day)
    assert b'<score-part id="P1">' in a


# ---- a real generated piece -----------------------------------------------------------------


def test_generated_chorale_round_trips(tmp_path):
    from engine.symbolic.score_api import load

    piece = load("score-base").generate(
        style="chorale", key="G", mode="major", meter="4/4", bars=8, seed=1
    )
    score = piece.score
    path = write_musicxml(score, tmp_path / "chorale.musicxml", title="Chorale")
    parsed = converter.parse(path)
    assert len(parsed.parts) == len(score.tracks)
    tpq = score.ticks_per_quarter
    total = 0
    for track, part in zip(score.tracks, parsed.parts, strict=True):
        got = merged_notes(part)
        assert len(got) == len(track.notes)  # every note written, none merged away
        assert sorted(p for _, p, _ in got) == sorted(n.pitch for n in track.notes)
        assert got == expected_notes(track, tpq)
        total += len(got)
    assert total > 50
    ts = parsed.parts[0].recurse().getElementsByClass(meter.TimeSignature).first()
    assert ts.ratioString == "4/4"
    assert parsed.parts[0].recurse().getElementsByClass(key.KeySignature).first().sharps == 1


def _accidentals(path) -> list[tuple[int, str, str]]:
    """(measure, note name, printed accidental) of every note that prints one."""
    out = []
    for n in converter.parse(str(path)).recurse().notes:
        for p in n.pitches:
            if p.accidental is not None and p.accidental.displayStatus:
                out.append((n.measureNumber, p.nameWithOctave, p.accidental.name))
    return out


@pytest.mark.parametrize(
    "sharps, tonic",
    [(1, 67), (-3, 63), (0, 60), (4, 64), (-1, 65)],  # G, Eb, C, E and F major
)
def test_notes_in_the_key_print_no_accidental(tmp_path, sharps, tonic):
    from engine.symbolic.theory import MAJOR_SCALE_STEPS

    s = Score(480)
    s.time_signatures.append(TimeSignature(0, 4, 4))
    s.key_signatures.append(KeySignature(0, sharps, 0))
    t = Track(program=0)
    scale = [tonic + d for d in MAJOR_SCALE_STEPS] + [tonic + 12]
    for i, pitch in enumerate(scale + scale[::-1] + [p - 12 for p in scale]):
        t.notes.append(Note(i * 480, 480, pitch, 80))
    s.tracks.append(t)
    path = write_musicxml(s, tmp_path / "scale.musicxml")
    assert _accidentals(path) == []


def test_only_notes_outside_the_key_signature_carry_accidentals(tmp_path):
    s = Score(480)
    s.time_signatures.append(TimeSignature(0, 4, 4))
    s.key_signatures.append(KeySignature(0, 1, 0))  # G major: F sharp
    t = Track(program=0)
    # bar 1 in the key; bar 2: F natural, F sharp again, F natural; bar 3: A sharp (a sharp
    # key spells the pitch classes outside its scale as sharps), B, C, C sharp
    pitches = [67, 69, 71, 72, 65, 66, 65, 71, 70, 71, 60, 61]
    for i, pitch in enumerate(pitches):
        t.notes.append(Note(i * 480, 480, pitch, 80))
    s.tracks.append(t)
    path = write_musicxml(s, tmp_path / "g.musicxml")
    assert _accidentals(path) == [
        (2, "F4", "natural"),  # outside the key
        (2, "F#4", "sharp"),  # back to the key after an F natural in the same bar
        (2, "F4", "natural"),
        (3, "A#4", "sharp"),
        (3, "C#4", "sharp"),
    ]


@pytest.mark.parametrize("prompt", ["a chorale in E major", "a folk tune in B flat minor, 3/4"])
def test_generated_pieces_print_accidentals_only_off_the_key_signature(tmp_path, prompt):
    from music21 import key as m21key

    from engine.pipelines.compose import compose
    from engine.symbolic.score_api import available_models

    if "score-base" not in available_models():
        pytest.skip("needs the shipped score-base model")
    comp = compose(f"{prompt}, 8 bars", seed=3)
    path = write_musicxml(comp.score, tmp_path / "piece.musicxml")
    parsed = converter.parse(str(path))
    (ks,) = {k.sharps for k in parsed.recurse().getElementsByClass(m21key.KeySignature)}
    in_signature = {p.name for p in m21key.KeySignature(ks).getScale("major").pitches}
    for part in parsed.parts:
        before: set[str] = set()  # steps off the signature in the bar before (courtesy)
        for measure in part.getElementsByClass("Measure"):
            altered: set[str] = set()  # steps sounding off the signature earlier in this bar
            notes = sorted(measure.recurse().notes, key=lambda n: n.getOffsetInHierarchy(measure))
            for n in notes:
                for p in n.pitches:
                    shown = p.accidental is not None and p.accidental.displayStatus
                    if p.name not in in_signature:
                        altered.add(p.step)
                    elif shown:
                        assert p.step in altered | before, (measure.number, p.nameWithOctave)
            before = altered
