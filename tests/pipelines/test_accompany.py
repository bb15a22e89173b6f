"""`disco-musica accompany`: analysis of audio and MIDI, parts on the input's beats, errors.

The input is made here: eight bars of C Am F G (twice) at 100 BPM in 4/4, a melody over
block chords with a low root on each downbeat, rendered to audio with `render_midi`. Its true
beats are k * 0.6 s, so the alignment of a part is measured against known times.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine import cli
from engine.cli.accompany import PARTS, add_commands
from engine.pipelines import accompany as acc_mod
from engine.pipelines.accompany import AccompanyError, accompany
from engine.progress import Progress, ProgressLog

BPM = 100.0
BEAT_S = 60.0 / BPM
CHORDS = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)] * 2  # C Am F G
TRUE_CHORDS = ["C", "Am", "F", "G"] * 2
MELODY = [72, 71, 72, 74, 72, 71, 69, 67, 69, 72, 69, 65, 67, 71, 74, 71] * 2


def _piece() -> Score:
    s = Score(480)
    s.tempos.append(Tempo(0, BPM))
    s.time_signatures.append(TimeSignature(0, 4, 4))
    tr = Track(name="Piano", program=0)
    for b, chord in enumerate(CHORDS):
        tr.notes.append(Note(b * 1920, 1800, chord[0] - 24, 100))
        for k in range(4):
            t = (b * 4 + k) * 480
            for p in chord:
                tr.notes.append(Note(t, 440, p - 12, 90 if k == 0 else 60))
            tr.notes.append(Note(t, 440, MELODY[b * 4 + k], 105 if k == 0 else 75))
    s.tracks.append(tr)
    return s


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from engine.audio.render import render_midi

    d = tmp_path_factory.mktemp("accompany")
    score = _piece()
    score.dump_midi(d / "in.mid")
    sf.write(d / "in.wav", render_midi(score), 44100)
    return d


@pytest.fixture(scope="module")
def bass(inputs):
    return accompany(inputs / "in.wav", "bass", seed=0)


def _onset_errors(acc) -> np.ndarray:
    """|written onset (read back from part.mid in seconds) - true time of its grid position|."""
    sec = Score.from_midi(acc.midi_bytes()).to("second")
    errors = []
    for pt, tr in zip(acc.tracks, sec.tracks, strict=True):
        qs = sorted((round(s * 480), p) for s, _, p, _ in pt.notes)
        ts = sorted((n.time, n.pitch) for n in tr.notes)
        assert len(qs) == len(ts)
        # the test piece's first bar line is at 0 s, so quarter q truly sounds at q * BEAT_S
        errors += [abs(t - q / 480 * BEAT_S) for (q, _), (t, _) in zip(qs, ts, strict=True)]
    return np.array(errors)


def test_audio_analysis_finds_tempo_meter_key_and_chords(bass):
    an = bass.analysis
    assert abs(an.tempo_bpm - BPM) < 1.0
    assert an.meter == "4/4"
    assert an.key == "C major"
    assert an.bars == 8
    assert an.chords == TRUE_CHORDS
    assert abs(float(an.time_of(0.0))) < 0.03  # the first bar line is at 0 s


def test_bass_on_the_beats_and_on_chord_tones(bass):
    errors = _onset_errors(bass)
    assert np.median(errors) < 0.03, np.median(errors)
    assert np.percentile(errors, 90) < 0.05
    notes = bass.tracks[0].notes
    assert len(notes) >= 8
    assert all(28 <= p <= 55 for _, _, p, _ in notes)
    true_pcs = [{p % 12 for p in c} for c in CHORDS]
    on_chord = np.mean([p % 12 in true_pcs[int(s // 4)] for s, _, p, _ in notes])
    assert on_chord == 1.0  # detected chords are the true ones; the bass keeps to their tones


def test_drums_on_the_beats_and_saved(inputs, tmp_path):
    acc = accompany(inputs / "in.wav", "drums")
    errors = _onset_errors(acc)
    assert np.median(errors) < 0.03, np.median(errors)
    tr = acc.score.tracks[0]
    assert tr.is_drum
    kicks = sorted({s for s, _, p, _ in acc.tracks[0].notes if p == acc_mod.KICK})
    assert kicks[:4] == [0.0, 2.0, 4.0, 6.0]  # 1 and 3 in 4/4
    snares = sorted({s for s, _, p, _ in acc.tracks[0].notes if p == acc_mod.SNARE})
    assert snares[:2] == [1.0, 3.0]
    record = acc.save(tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["generation.json", "mix.wav", "part.mid", "part.wav"]
    saved = json.loads((tmp_path / "out" / "generation.json").read_text())
    assert saved["input"]["sha256"] == record["input"]["sha256"]
    assert saved["analysis"]["chords"] == TRUE_CHORDS
    mix, sr = sf.read(tmp_path / "out" / "mix.wav")
    assert sr == 44100 and mix.shape[0] >= 44100 * 19 and np.abs(mix).max() < 1.0
    with pytest.raises(AccompanyError, match="already exists"):
        acc.save(tmp_path / "out")


def test_drums_follow_tempo_drift_and_a_late_start(tmp_path):
    """90 -> 115 BPM over eight bars, after 0.37 s of silence: the part follows both."""
    from engine.audio.render import render_midi

    piece = _piece()
    piece.tempos.clear()
    bpms = [90 + b * 25 / 7 for b in range(8)]
    for b, bpm in enumerate(bpms):
        piece.tempos.append(Tempo(b * 1920, bpm))
    lead = np.zeros((int(0.37 * 44100), 2), np.float32)
    sf.write(tmp_path / "drift.wav", np.concatenate([lead, render_midi(piece)]), 44100)
    acc = accompany(tmp_path / "drift.wav", "drums")
    bar_starts = 0.37 + np.concatenate([[0], np.cumsum([4 * 60 / b for b in bpms])])

    def true_s(q):
        b = int(q // 4)
        return bar_starts[b] + (q - 4 * b) * 60 / bpms[b]

    sec = Score.from_midi(acc.midi_bytes()).to("second")
    qs = sorted((s, p) for s, _, p, _ in acc.tracks[0].notes)
    ts = sorted((n.time, n.pitch) for n in sec.tracks[0].notes)
    errors = [abs(t - true_s(q)) for (q, _), (t, _) in zip(qs, ts, strict=True)]
    assert np.median(errors) < 0.03, np.median(errors)
    assert acc.analysis.chords == TRUE_CHORDS


def test_waltz_and_compound_drums():
    for num, den, per_bar in ((3, 4, 3.0), (6, 8, 3.0)):
        an = acc_mod.Analysis("midi", 120, num, den, "C major", ["C"], 1, 2.0, 1.0)
        notes = acc_mod.drum_pattern(an).notes
        kicks = [s for s, _, p, _ in notes if p == acc_mod.KICK]
        assert kicks == [0.0]
        assert max(s for s, _, _, _ in notes) < per_bar


def test_midi_input_chords_and_strings(inputs, tmp_path):
    log = ProgressLog()
    chords = accompany(inputs / "in.mid", "chords", seed=2, progress=log)
    assert log.stages() == ["analysis", "chords"]
    assert log.of("analysis") == [Progress("analysis", 0, 1), Progress("analysis", 1, 1)]
    bars = [e.done for e in log.of("chords")]
    assert bars == sorted(bars) and log[-1] == Progress("chords", len(CHORDS), len(CHORDS))
    assert chords.analysis.kind == "midi" and chords.analysis.chords == TRUE_CHORDS
    assert chords.model["sha256"]  # written by the score model
    (piano,) = chords.tracks
    assert piano.program == 0 and not piano.is_drum
    # every note a tone of its bar's chord, in the piano's comping range, every bar sounding
    assert all(p % 12 in {q % 12 for q in CHORDS[int(s // 4)]} for s, _, p, _ in piano.notes)
    assert all(40 <= p <= 76 for _, _, p, _ in piano.notes)
    assert {int(s // 4) for s, _, _, _ in piano.notes} == set(range(len(CHORDS)))
    assert all(e <= (s // 4 + 1) * 4 for s, e, _, _ in piano.notes)  # none over a bar line
    # the model's own rhythm, not one block chord a beat
    onsets = sorted({s for s, _, _, _ in piano.notes})
    assert onsets != [b * 1.0 for b in range(4 * len(CHORDS))]
    strings = accompany(inputs / "in.mid", "strings", seed=1)
    assert [t.program for t in strings.tracks] == [40, 41, 42]
    assert all(t.notes for t in strings.tracks)
    cello = strings.tracks[2].notes
    assert all(p % 12 in {q % 12 for q in CHORDS[int(s // 4)]} for s, _, p, _ in cello)
    strings.save(tmp_path / "s")
    assert (tmp_path / "s" / "mix.mid").is_file()
    mix = Score(tmp_path / "s" / "mix.mid")
    assert len(mix.tracks) == 4


@pytest.fixture
def run(capsys, monkeypatch):
    original = cli.build_parser

    def build():
        parser = original()
        sub = parser._subparsers._group_actions[0]
        if "accompany" not in sub.choices:
            add_commands(sub, cli.register)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)

    def _run(*argv):
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def test_bad_inputs_give_one_line_errors_and_write_nothing(run, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(44100 * 2, np.float32), 44100)
    empty = tmp_path / "empty.mid"
    s = Score(480)
    s.tracks.append(Track(program=0))
    s.dump_midi(empty)
    blip = tmp_path / "blip.wav"
    sf.write(blip, np.full(1, 0.5, np.float32), 44100)
    empty_wav = tmp_path / "nothing.wav"
    empty_wav.write_bytes(b"")
    for args, words in (
        ((silent, "--part", "drums"), "silent"),
        ((blip, "--part", "drums"), "0.00 s long; accompany needs at least 2 s"),
        ((empty_wav, "--part", "bass"), "the file is empty"),
        ((empty, "--part", "chords"), "no notes"),
        ((silent, "--part", "base"), "did you mean bass"),
        ((tmp_path / "nope.wav",), "does not exist"),
    ):
        code, out, err = run("accompany", *args, "--out", tmp_path / "out")
        assert code == 2, err
        assert err.startswith("error: ") and err.count("\n") == 1 and words in err, err
    names = ["blip.wav", "empty.mid", "nothing.wav", "silent.wav"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_cli_writes_a_folder(run, inputs, tmp_path):
    code, out, err = run(
        "accompany", inputs / "in.mid", "--part", "drums", "--style", "rock", "--out",
        tmp_path / "d", "--json",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads(out)
    assert record["part"] == "drums" and record["style"] == "rock"
    assert set(record["outputs"]) == {"mix.mid", "mix.wav", "part.mid", "part.wav"}
    assert PARTS == acc_mod.PARTS


def _no_model_load(monkeypatch):
    from engine.symbolic import score_api

    def no_load(*a, **k):
        raise AssertionError("the score model was loaded before the refusal")

    monkeypatch.setattr(score_api.ScoreModel, "load", classmethod(no_load))


def test_absurd_midi_is_refused_naming_the_file_before_the_model_loads(tmp_path, monkeypatch):
    from tests.hostile import corpus

    _no_model_load(monkeypatch)
    monkeypatch.chdir(tmp_path)
    late = corpus.notes_events([(0, 480, 60, 80), (2**31, 480, 62, 80)])
    files = {
        "late.mid": (
            corpus.midi_bytes([corpus.conductor(), corpus.track_bytes(late)]),
            "late.mid has a note at bar 1,118,482",
        ),
        "none.mid": (
            corpus.midi_bytes([corpus.conductor(), corpus.track_bytes([])]),
            "none.mid has no notes",
        ),
        "tempo.mid": (corpus.melody_midi(mspq=0), "tempo.mid sets an impossible tempo"),
        "midi.wav": (corpus.melody_midi(), "midi.wav is a MIDI file, not audio"),
    }
    for name, (data, words) in files.items():
        (tmp_path / name).write_bytes(data)
        for part in ("bass", "drums"):
            with pytest.raises(AccompanyError) as e:
                accompany(name, part)
            assert words in str(e.value) and "\n" not in str(e.value)


def test_unknown_style_or_model_is_refused_before_any_work(inputs, monkeypatch):
    _no_model_load(monkeypatch)
    for part, kwargs, words in (
        ("bass", {"style": "banjo"}, "unknown style 'banjo'"),
        ("chords", {"model": "no-such-model"}, "unknown score model 'no-such-model'"),
        ("drums", {"style": "chorale"}, "unknown drum style 'chorale'"),
        ("strings", {"seed": -1}, "seed must be 0..4294967295"),
    ):
        with pytest.raises(AccompanyError, match=words):
            accompany(inputs / "in.mid", part, **kwargs)
    assert acc_mod.check_request(" BASS ") == "bass"


def test_told_the_tempo_and_metre_a_legato_waltz_gets_its_bars_recorded_and_replayed(run, tmp_path):
    """A legato organ waltz at 76 BPM is heard alone at a beat and a half (51 BPM 2/4); told
    `--tempo 76 --meter 3/4`, its drums fall on its bar lines, the record keeps what was
    told, and replay makes the same files."""
    from engine.audio.render import render_midi
    from engine.pipelines.replay import replay
    from tests.accompany_pieces import ALL_PIECES, score_of

    piece = next(p for p in ALL_PIECES if p.name == "organ-76-Eb-waltz")
    wav = tmp_path / "waltz.wav"
    sf.write(wav, render_midi(score_of(piece)), 44100)
    alone = acc_mod.analyze(wav, transcribe_notes=False)
    assert alone.meter != "3/4" and abs(alone.tempo_bpm - 76) > 10  # (why it is told)
    code, out, err = run(
        "accompany", wav, "--part", "drums", "--tempo", "76", "--meter", "3/4", "--out",
        tmp_path / "d",
    )  # fmt: skip
    assert code == 0, err
    assert re.match(r"audio input: 76(\.0\d)? BPM, 3/4, .* \(tempo and metre as given\)\n", out)
    record = json.loads((tmp_path / "d" / "generation.json").read_text())
    assert record["hints"] == {"tempo_bpm": 76.0, "meter": "3/4"}
    assert record["replay"].endswith(f"{wav} --part drums --seed 0 --tempo 76 --meter 3/4")
    assert record["analysis"]["chords"] == piece.true_chords
    kicks = np.array(
        [n.time for n in Score(tmp_path / "d" / "part.mid").to("second").tracks[0].notes
         if n.pitch == acc_mod.KICK]
    )  # fmt: skip
    bar_s = 3 * 60 / 76
    assert len(kicks) >= 8
    assert np.abs(kicks - np.round(kicks / bar_s) * bar_s).max() < 0.05  # on the bar lines
    _, same = replay(tmp_path / "d" / "generation.json", tmp_path / "again")
    assert same and all(same.values()), same
    with pytest.raises(AccompanyError, match=r"MIDI, whose own tempo and metre are read"):
        acc_mod.analyze(tmp_path / "d" / "part.mid", meter="3/4")


def test_a_record_of_accompany_names_the_release_that_made_it():
    from engine.cli.generate import _made_by

    assert _made_by({"engine": "accompany", "versions": {"disco_musica": "0.10.0"}}) == "0.10.0"
    assert _made_by({"disco_musica_version": "0.9.0"}) == "0.9.0"
    assert _made_by({"versions": {"disco_musica": "99.0.0"}}) is None  # not older than this


def test_a_part_the_model_wrote_replays_with_the_recorded_weights(inputs, tmp_path):
    from engine.pipelines.replay import replay

    acc = accompany(inputs / "in.mid", "bass", seed=3)
    record = acc.save(tmp_path / "b")
    assert record["model"]["name"] == "score-base" and record["hints"] == {}
    _, same = replay(tmp_path / "b" / "generation.json", tmp_path / "again")
    assert same and all(same.values()), same
    # weights no installed model holds: refused in one line naming them, nothing written
    record["model"]["sha256"] = "0" * 64
    (tmp_path / "b" / "generation.json").write_text(json.dumps(record))
    with pytest.raises(AccompanyError, match=r"^[^\n]*0{12}") as e:
        replay(tmp_path / "b" / "generation.json", tmp_path / "third")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "third").exists()


def test_a_tempo_too_slow_for_the_recording_is_refused_in_one_line(run, tmp_path):
    """3 s of clicks: at 40 BPM in 4/4 not even one of the four bars needed fits."""
    sr = 22050
    clicks = np.zeros(3 * sr, np.float32)
    for k in range(6):
        clicks[k * sr // 2 : k * sr // 2 + 500] = 0.5 * np.hanning(500)
    sf.write(tmp_path / "short.wav", clicks, sr)
    code, out, err = run(
        "accompany", tmp_path / "short.wav", "--part", "drums", "--tempo", "40", "--meter",
        "4/4", "--out", tmp_path / "out",
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert "short.wav is 3.0 s long: at 40 BPM 4/4 fewer than 4 bars fit" in err
    assert not (tmp_path / "out").exists()
