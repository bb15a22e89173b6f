"""What is given is kept: continue, add tracks, harmonize and restyle return the user's own
notes exactly (onsets, lengths, velocities, pitches, at the file's resolution), keep its
tempo map and key, and place a sung melody where it was sung (score-base)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine.pipelines import workflows as wf
from engine.symbolic.quality import scale_pitch_classes

SEEDS = range(8)
D_MINOR = (2, "minor")
# A D minor folk-like line (MIDI pitches), one note a beat: 2 bars of 4/4.
LINE = [62, 65, 69, 67, 65, 64, 62, 61]
LOWER = [50, 53, 45, 48, 50, 46, 45, 50]


def _humanized(tpq: int, seed: int, *, tracks: int = 1) -> Score:
    """Two bars in D minor at ``tpq`` ticks a quarter: onsets and lengths off the grid by
    random ticks, varied velocities (never 100), a tempo change after the first bar."""
    r = random.Random(seed)
    s = Score(tpq)
    s.tempos = [Tempo(0, 92.0), Tempo(4 * tpq, 78.0)]
    s.time_signatures = [TimeSignature(0, 4, 4)]
    for line, program, name in [(LINE, 73, "Flute tune"), (LOWER, 42, "Cello line")][:tracks]:
        t = Track(name=name, program=program)
        for i, p in enumerate(line):
            jitter = r.randint(3, tpq // 10) * r.choice((-1, 1))  # never on the 16th grid
            onset = max(1, i * tpq + jitter) if i else r.randint(3, tpq // 10)
            dur = int(0.85 * tpq) + r.randint(-tpq // 9, tpq // 9)
            vel = r.choice([v for v in range(35, 120) if v != 100])
            t.notes.append(Note(onset, dur, p, vel))
        s.tracks.append(t)
    return s


def _off_grid(score: Score) -> bool:
    step = score.ticks_per_quarter // 4
    return any(n.time % step or n.duration % step for t in score.tracks for n in t.notes)


def _notes(score: Score, tracks=None) -> set[tuple[int, int, int, int, int]]:
    return {
        (i, n.time, n.duration, n.pitch, n.velocity)
        for i, t in enumerate(score.tracks)
        if tracks is None or i in tracks
        for n in t.notes
    }


def _tempos(score: Score) -> list[tuple[int, float]]:
    return [(t.time, round(float(t.qpm), 3)) for t in score.tempos]


@pytest.fixture(scope="module")
def model():
    from engine.symbolic.score_api import load

    return load("score-base")


@pytest.mark.parametrize("tpq", [480, 960])
def test_continue_keeps_every_note_tempo_and_key(model, tpq, tmp_path):
    in_scale = []
    for seed in SEEDS:
        given = _humanized(tpq, seed)
        assert _off_grid(given)
        g = model.continue_score(given, bars=1, seed=seed)
        out = Score(g.save_midi(tmp_path / f"c{seed}.mid"))  # as the file holds it
        assert out.ticks_per_quarter == tpq
        start = g.settings["continuation_start_tick"]
        assert start == 8 * tpq  # two bars of 4/4, on the input's time base
        before = {n for n in _notes(out) if n[1] < start}
        assert before == _notes(given)
        assert _tempos(out) == _tempos(given)
        assert [(t.name, t.program) for t in out.tracks] == [("Flute tune", 73)]
        cond = g.settings["conditioned_on"]
        assert (cond["key"], cond["mode"]) == ("D", "minor") and cond["key_from"] == "input"
        assert g.conditions["key"] == "D" and g.conditions["mode"] == "minor"
        new = [n for n in out.tracks[0].notes if n.time >= start]
        assert new, f"seed {seed}: no new notes"
        scale = scale_pitch_classes(*D_MINOR)
        in_scale += [n.pitch % 12 in scale for n in new]
        # new notes: on the file's time base, at the track's own loudness
        assert {n.velocity for n in new} == {
            int(np.median([x.velocity for x in given.tracks[0].notes]))
        }
    assert np.mean(in_scale) >= 0.8


def test_continue_keeps_the_recorded_style(model, tmp_path):
    """A file this program made records its style (a marker, or the sidecar): kept."""
    # (4 bars: two bars of a tune are too few for the key finder to hear D minor)
    sketch = model.generate(style="folk", key="D", mode="minor", voices=1, bars=4, seed=3)
    path = sketch.save_midi(tmp_path / "sketch.mid")
    for seed in SEEDS:
        g = model.continue_score(path, bars=1, seed=seed)
        assert g.conditions["style"] == "folk", seed
        assert g.settings["conditioned_on"]["style_from"] == "marker"
        assert (g.conditions["key"], g.conditions["mode"]) == ("D", "minor")
    # A file without the marker: the sidecar beside it is read.
    plain = Score(path)
    plain.markers = []
    bare = tmp_path / "bare.mid"
    plain.dump_midi(bare)
    (tmp_path / "bare.json").write_text('{"conditions": {"style": "celtic"}}')
    g = model.continue_score(bare, bars=1, seed=1)
    assert g.conditions["style"] == "celtic"
    assert g.settings["conditioned_on"]["style_from"] == "sidecar"
    # Asked for another style: the request wins.
    g = model.continue_score(path, bars=1, seed=1, style="chorale")
    assert g.conditions["style"] == "chorale"
    assert g.settings["conditioned_on"]["style_from"] == "request"


@pytest.mark.parametrize("tpq", [480, 960])
def test_add_tracks_keeps_every_note(model, tpq, tmp_path):
    for seed in SEEDS:
        given = _humanized(tpq, seed, tracks=2)
        g = model.add_tracks(given, parts="bass", seed=seed)
        out = Score(g.save_midi(tmp_path / f"a{seed}.mid"))
        assert out.ticks_per_quarter == tpq
        assert _notes(out, tracks={0, 1}) == _notes(given)
        assert _tempos(out) == _tempos(given)
        assert [(t.name, t.program) for t in out.tracks[:2]] == [
            ("Flute tune", 73),
            ("Cello line", 42),
        ]
        assert out.tracks[2].name == "Bass" and out.tracks[2].note_num() > 0
        assert g.settings["new_tracks"] == [2]
        assert (g.conditions["key"], g.conditions["mode"]) == ("D", "minor")
        # new notes on the file's time base: the model's grid scaled to tpq
        assert all(n.time % (tpq // 8) == 0 for n in out.tracks[2].notes)


@pytest.mark.parametrize("tpq", [480, 960])
def test_harmonize_keeps_the_melody_exactly(model, tpq):
    for seed in SEEDS:
        given = _humanized(tpq, seed)
        comp = wf.harmonize(given, voices=3, model=model, seed=seed)
        out = comp.score
        assert out.ticks_per_quarter == tpq
        assert _notes(out, tracks={0}) == _notes(given)
        assert _tempos(out) == _tempos(given)
        assert (out.tracks[0].name, out.tracks[0].program) == ("Flute tune", 73)
        assert [t.name for t in out.tracks[1:]] == ["Alto", "Bass"]
        assert all(t.note_num() > 0 for t in out.tracks[1:])
        assert (comp.plan.key, comp.plan.mode) == ("D", "minor")


def test_harmonize_chords_keep_the_top_notes_exactly(model):
    given = _humanized(480, 1)
    t = given.tracks[0]
    below = [Note(n.time + 2, n.duration, n.pitch - 5, 60) for n in list(t.notes)[::2]]
    for n in below:
        t.notes.append(n)
    t.notes.sort(key=lambda n: (n.time, n.pitch))
    comp = wf.harmonize(given, voices=2, model=model, seed=1)
    top = _humanized(480, 1)
    assert _notes(comp.score, tracks={0}) == _notes(top)
    assert "4 notes left out" in comp.settings["warnings"][0]


def test_restyle_keeps_the_melody_and_with_keep_rhythm_every_rhythm(model):
    for seed in SEEDS:
        given = _humanized(480, seed, tracks=2)
        out = wf.restyle(given, style="celtic", model=model, seed=seed).score
        assert out.ticks_per_quarter == 480
        assert _notes(out, tracks={0}) == _notes(given, tracks={0})
        assert _tempos(out) == _tempos(given)
        assert [(t.name, t.program) for t in out.tracks] == [
            ("Flute tune", 73),
            ("Cello line", 42),
        ]
        kept = wf.restyle(given, style="celtic", model=model, seed=seed, keep_rhythm=True).score
        assert _notes(kept, tracks={0}) == _notes(given, tracks={0})
        old = [(n.time, n.duration, n.velocity) for n in given.tracks[1].notes]
        assert [(n.time, n.duration, n.velocity) for n in kept.tracks[1].notes] == old


def _sung(path, start_s: float, bpm: float = 100.0) -> None:
    """Sine tones with a little vibrato (a sung or hummed line), the first at ``start_s``."""
    import soundfile as sf

    sr = 22050
    beat = 60.0 / bpm
    pitches = [62, 64, 65, 67, 69, 67, 65, 64, 62, 65, 69, 74]
    y = np.zeros(int((start_s + len(pitches) * beat + 1.0) * sr))
    for i, p in enumerate(pitches):
        n = int(0.9 * beat * sr)
        tt = np.arange(n) / sr
        f = 440.0 * 2 ** ((p - 69) / 12) * 2 ** (0.03 * np.sin(2 * np.pi * 5.5 * tt))
        phase = 2 * np.pi * np.cumsum(f) / sr
        env = np.minimum(1.0, np.minimum(tt / 0.02, (0.9 * beat - tt) / 0.05))
        a = int((start_s + i * beat) * sr)
        y[a : a + n] += 0.3 * env * (np.sin(phase) + 0.3 * np.sin(2 * phase))
    sf.write(path, y, sr)


@pytest.mark.parametrize("start_s", [0.5, 1.4])
def test_sung_melody_starts_where_it_was_sung(model, tmp_path, start_s):
    wav = tmp_path / "sung.wav"
    _sung(wav, start_s)
    comp = wf.harmonize(wav, voices=2, model=model, seed=1)
    first = min(comp.score.to("second").tracks[0].notes, key=lambda n: n.time)
    assert abs(first.time - start_s) <= 0.06, comp.settings.get("lead_in")
    # the melody in the result is the transcription, note for note
    assert _notes(comp.score, tracks={0}) == _notes(comp.melody.score)
