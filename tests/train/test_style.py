"""Style profiles and distances (engine.train.style): the proof that a fine-tune learnt the
user's music must separate a "signature" set (7/8, D Dorian, staccato) from a "plain" one
(4/4, C major, legato), measure by measure, and fall steadily as a set takes on the style."""

from __future__ import annotations

import json

import numpy as np
import pytest
from symusic import Note, Score, TimeSignature, Track

from engine.symbolic.midi import midi_bytes
from engine.train import style

TPQ = 480
EIGHTH = TPQ // 2
D_DORIAN = (62, 64, 65, 67, 69, 71, 72)  # D E F G A B C
C_MAJOR = (60, 62, 64, 65, 67, 69, 71)


def _melody(rng, scale, strong) -> list[int]:
    """A random walk on two octaves of ``scale``, one pitch per item of ``strong``; on strong
    onsets (bar lines) it moves to the nearest tonic-triad tone, and it ends on the tonic."""
    steps = list(scale) + [p + 12 for p in scale]
    triad = (0, 2, 4, 7, 9, 11)  # indices of the tonic, third and fifth in the two octaves
    i, out = 0, []
    for k, is_strong in enumerate(strong):
        if k == len(strong) - 1:
            i = 0 if i < 4 else 7
        elif is_strong:
            i = min(triad, key=lambda j: abs(j - i))
        out.append(steps[i])
        i = int(np.clip(i + rng.choice([-2, -1, -1, 1, 1, 2, 0]), 0, len(steps) - 1))
    return out


def signature_piece(seed: int, bars: int = 8) -> Score:
    """7/8 (2+2+3 eighths), D Dorian, staccato: every note lasts ~30 % of its IOI."""
    rng = np.random.default_rng(seed)
    score = Score(TPQ)
    score.time_signatures.append(TimeSignature(0, 7, 8))
    lead, bass = Track(name="lead", program=0), Track(name="bass", program=32)
    onsets, t = [], 0
    for _ in range(bars):
        for group in (2, 2, 3):
            for _ in range(group):
                if rng.random() < 0.25:  # two sixteenths
                    onsets += [(t, EIGHTH // 2), (t + EIGHTH // 2, EIGHTH // 2)]
                else:
                    onsets.append((t, EIGHTH))
                t += EIGHTH
    bar = 7 * EIGHTH
    pitches = _melody(rng, D_DORIAN, [on % bar == 0 for on, _ in onsets])
    for (on, ioi), p in zip(onsets, pitches, strict=True):
        dur = int(round(ioi * rng.uniform(0.25, 0.35)))
        lead.notes.append(Note(on, dur, p, int(rng.integers(70, 100))))
    t = 0
    for _ in range(bars):
        for group in (2, 2, 3):
            p = 38 if rng.random() < 0.7 else 45  # D or A
            bass.notes.append(Note(t, int(group * EIGHTH * 0.3), p, 80))
            t += group * EIGHTH
    score.tracks.extend([lead, bass])
    return score


def plain_piece(seed: int, bars: int = 8) -> Score:
    """4/4, C major, legato: quarters and eighths held to the next note; a bass in halves."""
    rng = np.random.default_rng(seed + 10_000)
    score = Score(TPQ)
    score.time_signatures.append(TimeSignature(0, 4, 4))
    lead, bass = Track(name="lead", program=0), Track(name="bass", program=32)
    onsets, t = [], 0
    for _ in range(bars):
        left = 4 * TPQ
        while left:
            ioi = TPQ if rng.random() < 0.6 and left >= TPQ else EIGHTH
            onsets.append((t, ioi))
            t += ioi
            left -= ioi
    for (on, ioi), p in zip(
        onsets, _melody(rng, C_MAJOR, [on % (4 * TPQ) == 0 for on, _ in onsets]), strict=True
    ):
        lead.notes.append(Note(on, ioi, p, int(rng.integers(70, 100))))
    for k in range(bars * 2):
        p = 43 if k % 2 and k < bars * 2 - 1 and rng.random() < 0.8 else 48  # C, or G
        bass.notes.append(Note(k * 2 * TPQ, 2 * TPQ, p, 80))
    score.tracks.extend([lead, bass])
    return score


@pytest.fixture(scope="module")
def sets():
    return {
        "sig_a": style.profile_scores(signature_piece(s) for s in range(8)),
        "sig_b": style.profile_scores(signature_piece(s) for s in range(8, 16)),
        "plain_a": style.profile_scores(plain_piece(s) for s in range(8)),
        "plain_b": style.profile_scores(plain_piece(s) for s in range(8, 16)),
    }


# ---- what each measure reads --------------------------------------------------------------
def test_a_small_piece_measured_exactly():
    score = Score(TPQ)  # no time signature: 4/4
    melody, chord = Track(name="m"), Track(name="c")
    for t, d, p in ((0, 480, 60), (480, 480, 64), (960, 240, 67), (1200, 240, 83)):
        melody.notes.append(Note(t, d, p, 90))
    for p in (48, 52, 55):
        chord.notes.append(Note(0, 1920, p, 90))
    drums = Track(name="d", is_drum=True)
    drums.notes.append(Note(0, 120, 36, 90))  # left out of every measure
    score.tracks.extend([melody, chord, drums])
    prof = style.profile_scores([score])

    assert (prof.pieces, prof.notes, prof.empty) == (1, 7, 0)
    assert prof.pitch_class[:8] == [2, 0, 0, 0, 2, 0, 0, 2] and prof.pitch_class[11] == 1
    assert prof.key == {"C major": 1} and prof.mode == {"major": 1}
    assert prof.pitch_class_in_key == prof.pitch_class  # tonic C
    iv = dict(zip(style.INTERVALS, prof.interval, strict=True))
    assert {k: v for k, v in iv.items() if v} == {4: 1, 3: 1, 12: 1}  # +16 clipped to +12
    assert prof.meter == {"4/4": 1.0}
    assert prof.onset_in_bar == {"4/4@0": 2, "4/4@12": 1, "4/4@24": 1, "4/4@30": 1}
    assert prof.onset_in_beat[0] == 4 and prof.onset_in_beat[6] == 1
    dur = dict(zip(style.DURATION_LABELS, prof.duration, strict=True))
    assert {k: v for k, v in dur.items() if v} == {"1": 2, "1/2": 2, "4": 3}
    assert prof.articulation == pytest.approx(1.0)  # legato; the chord has no next onset
    assert prof.notes_per_beat == pytest.approx(7 / 4)
    assert prof.polyphony == pytest.approx((480 * 2 + 240 * 2 + 3 * 1920) / 1920)


def test_signature_and_plain_read_as_built(sets):
    sig, plain = sets["sig_a"], sets["plain_a"]
    assert set(sig.meter) == {"7/8"} and sig.meter["7/8"] == pytest.approx(8 * 8)
    assert set(plain.meter) == {"4/4"} and plain.meter["4/4"] == pytest.approx(8 * 8)
    assert 0.25 <= sig.articulation <= 0.35
    assert plain.articulation == pytest.approx(1.0)
    # D Dorian: no pitch class outside D E F G A B C; heard in D (minor) or on its relative
    assert all(sig.pitch_class[pc] == 0 for pc in (1, 3, 6, 8, 10))
    assert all(plain.pitch_class[pc] == 0 for pc in (1, 3, 6, 8, 10))
    assert max(sig.key, key=sig.key.get) == "D minor"
    assert max(plain.key, key=plain.key.get) == "C major"
    # the Dorian colour: relative to D, the major sixth (B) and no minor sixth (Bb)
    assert sig.pitch_class_in_key[9] > 0 and sig.pitch_class_in_key[8] == 0


def test_scores_in_other_units_and_generation_results_alike():
    pieces = [signature_piece(s) for s in range(3)]

    class Generated:  # what ScoreModel.generate returns: .score
        def __init__(self, score):
            self.score = score

    ticks = style.profile_scores(pieces)
    quarters = style.profile_scores(p.to("quarter") for p in pieces)
    results = style.profile_scores(Generated(p) for p in pieces)
    assert results.to_dict() == ticks.to_dict()
    assert style.distance(ticks, quarters)["overall"] < 1e-3
    with pytest.raises(style.StyleError):
        style.profile_scores(["not a score"])


def test_empty_pieces_counted_and_as_far_as_can_be(sets):
    empty = style.profile_scores([Score(TPQ), Score(TPQ)])
    assert (empty.pieces, empty.empty, empty.notes) == (0, 2, 0)
    d = style.distance(empty, sets["sig_a"])
    assert all(v == 1.0 for v in d.values())
    assert all(v == 0.0 for v in style.distance(empty, empty).values())


# ---- the distance's properties --------------------------------------------------------------
def test_distance_zero_to_itself_symmetric_and_bounded(sets):
    names = list(sets)
    for a in names:
        self_d = style.distance(sets[a], sets[a])
        assert set(self_d) == {*style.MEASURES, "overall"}
        assert all(v == pytest.approx(0.0, abs=1e-7) for v in self_d.values())
        for b in names:
            ab, ba = style.distance(sets[a], sets[b]), style.distance(sets[b], sets[a])
            for k, v in ab.items():
                assert 0.0 <= v <= 1.0
                assert v == pytest.approx(ba[k], abs=1e-12)


@pytest.mark.parametrize(
    "measure",
    ["meter", "pitch_class", "articulation", "onset_in_bar", "duration", "pitch_class_in_key"],
)
def test_each_measure_separates_signature_from_plain(sets, measure):
    within = style.distance(sets["sig_a"], sets["sig_b"])[measure]
    within_plain = style.distance(sets["plain_a"], sets["plain_b"])[measure]
    across = style.distance(sets["sig_a"], sets["plain_a"])[measure]
    assert across > 0.2, (measure, across)
    assert across > 4 * max(within, within_plain), (measure, within, within_plain, across)


def test_overall_falls_steadily_as_the_signature_share_rises(sets):
    reference = style.profile_scores(signature_piece(s) for s in range(16))
    overall = []
    for k in (0, 2, 4, 6, 8):  # 0, 25, 50, 75, 100 % signature pieces among 8
        pieces = [signature_piece(100 + s) for s in range(k)]
        pieces += [plain_piece(100 + s) for s in range(k, 8)]
        overall.append(style.distance(style.profile_scores(pieces), reference)["overall"])
    assert all(a > b for a, b in zip(overall, overall[1:], strict=False)), overall
    assert overall[0] > 0.5 and overall[-1] < 0.1, overall


# ---- files and JSON -------------------------------------------------------------------------
def test_json_round_trip(sets):
    prof = sets["sig_a"]
    again = style.StyleProfile.from_dict(json.loads(json.dumps(prof.to_dict())))
    assert again == prof
    assert style.distance(again, prof)["overall"] == 0.0
    with pytest.raises(style.StyleError, match="format"):
        style.StyleProfile.from_dict({"format": 99})
    with pytest.raises(style.StyleError, match="pitch_class"):
        style.StyleProfile.from_dict({**prof.to_dict(), "pitch_class": [1, 2]})


def test_midi_files_read_and_unreadable_ones_skipped(tmp_path):
    pieces = [signature_piece(s) for s in range(3)]
    paths = []
    for i, p in enumerate(pieces):
        path = tmp_path / f"p{i}.mid"
        path.write_bytes(midi_bytes(p))
        paths.append(path)
    (tmp_path / "junk.mid").write_bytes(b"not a midi file at all")
    (tmp_path / "empty.mid").write_bytes(b"")
    (tmp_path / "silent.mid").write_bytes(midi_bytes(Score(TPQ)))  # no notes
    paths[1:1] = [tmp_path / "junk.mid", tmp_path / "empty.mid", tmp_path / "silent.mid"]
    paths.append(tmp_path / "missing.mid")
    events = []
    prof = style.profile_midi_files(paths, progress=events.append)
    assert (prof.pieces, prof.skipped) == (3, 4)
    assert [(e.stage, e.done, e.total) for e in events] == [
        (
            "files",
            i + 1,
            len(paths),
        )
        for i in range(len(paths))
    ]
    direct = style.profile_scores(pieces)
    assert style.distance(prof, direct)["overall"] == pytest.approx(0.0, abs=1e-9)


def test_compare_table_lists_each_measure_and_the_change(sets):
    reference = sets["sig_a"]
    base = style.distance(sets["plain_a"], reference)
    tuned = style.distance(sets["sig_b"], reference)
    table = style.compare_table(base, tuned)
    rows = [r for r in table.splitlines() if r.startswith("| ") and "---" not in r][1:]
    assert len(rows) == len(style.MEASURES) + 1
    assert rows[-1].startswith("| **overall** |")
    for row in rows:
        name, b, t, change = (c.strip().strip("*") for c in row.split("|")[1:5])
        assert float(change) == pytest.approx(float(t) - float(b), abs=2e-3)
        assert float(b) == pytest.approx(base[name], abs=5e-4)
    assert float(rows[-1].split("|")[4]) < 0  # the fine-tune came closer


# ---- audio ----------------------------------------------------------------------------------
SR = 22050
A_MAJOR = (57, 61, 64, 69, 71, 73, 76)  # A C# E A B C# E
EB_MAJOR = (51, 55, 58, 63, 65, 67, 70)


def tones(bpm: float, pitches, seed: int, seconds: float = 8.0) -> tuple[np.ndarray, int]:
    """A plucked tone (3 harmonics, decaying) on every beat at ``bpm``, random ``pitches``,
    louder on every fourth beat."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR), dtype=np.float32)
    beat = 60.0 / bpm
    n = int(seconds / beat)
    t = np.arange(int(beat * SR)) / SR
    for k in range(n):
        f = 440.0 * 2 ** ((int(rng.choice(pitches)) - 69) / 12)
        tone = sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3)) * np.exp(-t * 6)
        start = int(k * beat * SR)
        seg = y[start : start + t.shape[0]]
        seg += (0.5 if k % 4 == 0 else 0.3) * tone[: seg.shape[0]].astype(np.float32)
    return y, SR


def test_audio_profiles_order_tempo_and_key():
    a90 = style.profile_audio(tones(90, A_MAJOR, s) for s in range(2))
    a90b = style.profile_audio(tones(90, A_MAJOR, s) for s in range(2, 4))
    eb90 = style.profile_audio(tones(90, EB_MAJOR, s) for s in range(2))
    a140 = style.profile_audio(tones(140, A_MAJOR, s) for s in range(2))
    assert a90.pieces == 2 and a90.seconds == pytest.approx(16, abs=0.1)
    centre = style.TEMPO_CENTRES_BPM
    assert abs(centre[int(np.argmax(a90.tempo))] / 90 - 1) < 0.12
    assert abs(centre[int(np.argmax(a140.tempo))] / 140 - 1) < 0.12
    assert a140.onset_rate > 1.3 * a90.onset_rate
    assert int(np.argmax(a90.chroma)) in (9, 1, 4)  # A C# E
    assert int(np.argmax(eb90.chroma)) in (3, 7, 10)  # Eb G Bb

    same = style.audio_distance(a90, a90b)
    other_key = style.audio_distance(a90, eb90)
    other_tempo = style.audio_distance(a90, a140)
    assert same["chroma"] < 0.5 * other_key["chroma"]
    assert other_tempo["chroma"] < 0.5 * other_key["chroma"]
    assert same["tempo"] < 0.5 * other_tempo["tempo"]
    assert other_key["tempo"] < 0.5 * other_tempo["tempo"]
    assert same["onset_rate"] < other_tempo["onset_rate"]
    assert same["overall"] < min(other_key["overall"], other_tempo["overall"])
    for d in (same, other_key, other_tempo):
        assert all(0.0 <= v <= 1.0 for v in d.values())
    assert style.audio_distance(a90, a90)["overall"] == 0.0

    again = style.AudioProfile.from_dict(json.loads(json.dumps(a90.to_dict())))
    assert again == a90


def test_tempo_histogram_shares_weight_smoothly():
    h89, h91 = style.tempo_histogram(89.0), style.tempo_histogram(91.0)
    assert h89.sum() == pytest.approx(1.0)
    assert style.TEMPO_CENTRES_BPM[int(np.argmax(h89))] == pytest.approx(89.8, abs=0.1)
    assert style.js_distance(h89, h91) < 0.1
    assert style.js_distance(style.tempo_histogram(90), style.tempo_histogram(140)) > 0.9
    assert not style.tempo_histogram(float("nan")).any()
