"""MIDI preprocessing (`engine.data.midi_prep`): standardising and repairs, quantising with
swing, tokens, augmented copies, scores to MIDI, groups and splits, resuming, the command."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import mido
import numpy as np
import pytest
from symusic import Score

from engine.data import midi_prep
from engine.data.midi_prep import MidiPrep, prep_midi
from engine.data.splits import assign
from engine.data.store import Dataset, DatasetError, Item, item_id

TPQ = 96  # the files are written at 96 ticks a beat; standardising makes them 480


# ---- MIDI files built here ----------------------------------------------------------------------
def notes_track(notes, channel=0, program=None, name=None):
    """A mido track from (start, length, pitch, velocity) in ticks; zero lengths allowed."""
    events = []
    for start, length, pitch, vel in notes:
        events.append(
            (start, 1, mido.Message("note_on", channel=channel, note=pitch, velocity=vel))
        )
        off = mido.Message("note_off", channel=channel, note=pitch)
        events.append((start + length, 2 if length == 0 else 0, off))
    events.sort(key=lambda e: (e[0], e[1]))  # at one tick: offs first, but a note's own last
    track = mido.MidiTrack()
    if name:
        track.append(mido.MetaMessage("track_name", name=name, time=0))
    if program is not None:
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
    last = 0
    for t, _, m in events:
        track.append(m.copy(time=t - last))
        last = t
    return track


def conductor(bpm=120, meter=(4, 4), key=None):
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    track.append(
        mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1], time=0)
    )
    if key:
        track.append(mido.MetaMessage("key_signature", key=key, time=0))
    return track


def midi_file(tracks, file_type=1, tpq=TPQ) -> bytes:
    mid = mido.MidiFile(type=file_type, ticks_per_beat=tpq)
    mid.tracks.extend(tracks)
    out = io.BytesIO()
    mid.save(file=out)
    return out.getvalue()


def melody(pitches=(60, 62, 64, 65, 67, 69, 71, 72), step=TPQ // 2, offset=0):
    return [(offset + i * step, step, p, 80) for i, p in enumerate(pitches)]


def type0_file() -> bytes:
    """One track holding a piano melody (channel 1) and a drum part (channel 10)."""
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100), time=0))
    events = []
    for s, d, p, v in melody():
        events += [(s, 1, "note_on", 0, p, v), (s + d, 0, "note_off", 0, p, 0)]
    for i in range(4):
        events += [(i * TPQ, 1, "note_on", 9, 36, 100), (i * TPQ + 10, 0, "note_off", 9, 36, 0)]
    events.sort(key=lambda e: (e[0], e[1]))
    last = 0
    for t, _, kind, ch, p, v in events:
        track.append(mido.Message(kind, channel=ch, note=p, velocity=v, time=t - last))
        last = t
    return midi_file([track], file_type=0)


def type1_file() -> bytes:
    """A conductor, a named bass, an unnamed strings part and drums named "Kit" on channel 4."""
    bass = notes_track(melody((40, 41, 43, 45)), channel=0, program=33, name="Bass")
    strings = notes_track(melody((60, 64, 67, 72)), channel=1, program=48)
    kit = notes_track([(i * TPQ, 0, 38, 100) for i in range(4)], channel=3, name="Kit")
    return midi_file([conductor(90, (3, 4), key="Bb"), bass, strings, kit])


def broken_file() -> bytes:
    """A zero-length note and an overlapping pair of the same pitch."""
    track = mido.MidiTrack()
    for msg in (
        mido.Message("note_on", note=60, velocity=80, time=0),
        mido.Message("note_off", note=60, time=0),  # zero length
        mido.Message("note_on", note=64, velocity=80, time=TPQ),
        mido.Message("note_on", note=64, velocity=80, time=TPQ // 2),  # again while sounding
        mido.Message("note_off", note=64, time=TPQ // 2),
        mido.Message("note_off", note=64, time=TPQ),
        mido.Message("note_on", note=67, velocity=80, time=0),
        mido.Message("note_off", note=67, time=TPQ),
    ):
        track.append(msg)
    return midi_file([conductor(), track])


def make_dataset(tmp_path: Path, files: dict[str, bytes], kind_of=None) -> Dataset:
    ds = Dataset.create(tmp_path / "ds")
    with ds.change({"name": "import"}, "import") as ch:
        for path, data in files.items():
            kind = (kind_of or {}).get(path, "midi")
            h = ch.put_bytes(data)
            ch.put(Item(item_id(path), path, h, kind, len(data), group=f"song:{path}"))
    return ds


def score_of(ds: Dataset, item: Item) -> Score:
    return Score.from_midi(ds.file(item).read_bytes())


def by_path(ds: Dataset) -> dict[str, Item]:
    return {i.path: i for i in ds.items()}


# ---- standardising -------------------------------------------------------------------------------
def test_standardising_sets_one_resolution_names_every_track_and_puts_drums_on_channel_10(
    tmp_path,
):
    ds = make_dataset(tmp_path, {"a/type0.mid": type0_file(), "a/type1.mid": type1_file()})
    report = prep_midi(ds, MidiPrep())
    assert report.skipped == [] and report.version == ds.head
    items = by_path(ds)
    for path in ("a/type0.mid", "a/type1.mid"):
        item = items[path]
        assert item.id == item_id(path) and item.step == "midi" and item.group == f"song:{path}"
        score = score_of(ds, item)
        assert score.ticks_per_quarter == 480 == item.info["ticks_per_beat"]
        assert all(t.name.strip() for t in score.tracks)
        assert item.info["tracks"] == len(score.tracks)
        assert item.info["notes"] == score.note_num()
        mid = mido.MidiFile(file=io.BytesIO(ds.file(item).read_bytes()))
        drum_channels = {
            m.channel for tr in mid.tracks for m in tr if m.type == "note_on" and m.note in (36, 38)
        }
        assert drum_channels == {9}  # channel 10 counted from 1
    names = [t.name for t in score_of(ds, items["a/type1.mid"]).tracks]
    assert names == ["Bass", "String Ensembles 1", "Kit"]  # its own, else the GM program's
    assert "Drums" in [t.name for t in score_of(ds, items["a/type0.mid"]).tracks]
    assert items["a/type1.mid"].info["repairs"]["drums_to_channel_10"] == 1
    # the music stays: same notes, times scaled from 96 to 480 ticks a beat
    before = Score.from_midi(type1_file())
    after = score_of(ds, items["a/type1.mid"])
    bass = [(n.time, n.duration, n.pitch) for n in before.tracks[0].notes]
    assert [(n.time, n.duration, n.pitch) for n in after.tracks[0].notes] == [
        (t * 5, d * 5, p) for t, d, p in bass
    ]
    assert items["a/type1.mid"].duration_s == pytest.approx(after.to("second").end(), abs=1e-3)


def test_broken_events_are_repaired_and_listed_and_a_garbage_file_is_skipped(tmp_path):
    ds = make_dataset(
        tmp_path, {"b/broken.mid": broken_file(), "b/garbage.mid": b"\x00garbage\xff" * 20}
    )
    report = prep_midi(ds, MidiPrep())
    assert [p for p, _ in report.skipped] == ["b/garbage.mid"]
    assert "not MIDI" in report.skipped[0][1]
    item = by_path(ds)["b/broken.mid"]
    assert item.info["repairs"] == {"zero_length": 1, "overlaps": 1}
    assert report.warnings == [
        ("b/broken.mid", "repaired: 1 zero-length note (lengthened), 1 overlapping note (trimmed)")
    ]
    notes = [(n.time, n.duration, n.pitch) for n in score_of(ds, item).tracks[0].notes]
    assert notes == [(0, 60, 60), (480, 240, 64), (720, 720, 64), (1440, 480, 67)]
    # the garbage file stays as it was (listed, never stopping the work)
    assert by_path(ds)["b/garbage.mid"].step == "import"


def test_unterminated_notes_and_empty_tracks_are_counted():
    track = notes_track(melody((60, 62)))
    track.append(mido.Message("note_on", note=70, velocity=80, time=0))  # never released
    empty = mido.MidiTrack()
    empty.append(mido.Message("program_change", channel=2, program=40, time=0))
    data = midi_file([conductor(), track, empty])
    score, lost, empty_tracks = midi_prep.read_midi_file(_tmp_file(data))
    _, repairs = midi_prep.standardize(score, 480, unterminated=lost, empty=empty_tracks)
    assert repairs == {"unterminated": 1, "empty_tracks": 1}


def _tmp_file(data: bytes) -> Path:
    import tempfile

    f = tempfile.NamedTemporaryFile(suffix=".mid", delete=False)
    f.write(data)
    f.close()
    return Path(f.name)


# ---- quantising ----------------------------------------------------------------------------------
def loose_notes():
    """Eighth notes played a little early and late (96 ticks a beat)."""
    jitter = (0, 5, -4, 7, 3, -6, 2, -3)
    return [(max(0, i * 48 + j), 40, 60 + i, 80) for i, j in enumerate(jitter)]


def test_quantising_puts_onsets_on_the_grid_and_swing_moves_the_off_beats(tmp_path):
    data = midi_file([conductor(), notes_track(loose_notes())])
    ds = make_dataset(tmp_path, {"q/loose.mid": data})
    prep_midi(ds, MidiPrep(quantize=8))
    onsets = [n.time for n in score_of(ds, by_path(ds)["q/loose.mid"]).tracks[0].notes]
    assert onsets == [i * 240 for i in range(8)]  # eighths at 480 ticks a beat
    ends = [n.end for n in score_of(ds, by_path(ds)["q/loose.mid"]).tracks[0].notes]
    assert all(e % 240 == 0 for e in ends)

    ds2 = make_dataset(tmp_path / "swing", {"q/loose.mid": data})
    prep_midi(ds2, MidiPrep(quantize=8, swing=0.5))
    item = by_path(ds2)["q/loose.mid"]
    onsets = [n.time for n in score_of(ds2, item).tracks[0].notes]
    # on-beats on the beat, off-beats half a step (120 ticks) late
    assert onsets == [i * 240 + (120 if i % 2 else 0) for i in range(8)]
    assert item.info["quantized"]["grid"] == 8 and item.info["quantized"]["swing"] == 0.5


def test_quantising_at_half_strength_moves_notes_half_way():
    score = Score.from_midi(midi_file([conductor(), notes_track([(10, 40, 60, 80)])]))
    score = score.resample(480, min_dur=1)  # onset at tick 50
    q, info = midi_prep.quantize(score, 16, strength=0.5)
    assert q.tracks[0].notes[0].time == 25 and info["moved"] == 1
    q, _ = midi_prep.quantize(score, 12)  # triplet eighths: lines every 160 ticks
    assert q.tracks[0].notes[0].time == 0
    q, _ = midi_prep.quantize(score.shift_time(100), 12)
    assert q.tracks[0].notes[0].time == 160


# ---- tokens --------------------------------------------------------------------------------------
def test_tokens_decode_back_to_the_same_notes(tmp_path):
    from engine.symbolic.tokenizer import ScoreTokenizer

    two_voices = [
        conductor(100, (4, 4)),
        notes_track(melody((72, 74, 76, 77, 79, 77, 76, 74)), channel=0, program=0),
        notes_track(melody((48, 50, 52, 53), step=TPQ), channel=1, program=32),
    ]
    ds = make_dataset(tmp_path, {"t/duet.mid": midi_file(two_voices)})
    report = prep_midi(ds, MidiPrep(quantize=16, tokenize=True))
    item = by_path(ds)["t/duet.mid"]
    assert report.made[0].extras["tokens"] == item.extras["tokens"]
    ids = np.load(ds.object_path(item.extras["tokens"]))
    assert ids.dtype == np.int32 and len(ids) == item.info["tokens"]
    tok = ScoreTokenizer.load(Path(midi_prep.tokenizer_dir("score-base")))
    conditions, tracks = tok.split(ids.tolist())
    assert conditions == {k: v for k, v in item.info["token_conditions"].items()}
    assert "style" not in conditions and conditions["voices"] == "2"
    decoded = tok.decode(ids.tolist())
    scale = 480 / decoded.ticks_per_quarter
    original = score_of(ds, item)
    for got, want in zip(decoded.tracks, original.tracks, strict=True):
        assert [(round(n.time * scale), round(n.duration * scale), n.pitch) for n in got.notes] == [
            (n.time, n.duration, n.pitch) for n in want.notes
        ]
    assert [t.program for t in decoded.tracks] == [0, 32]


def test_a_piece_the_tokenizer_cannot_hold_keeps_its_midi_with_the_reason(tmp_path):
    nine = [conductor()] + [
        notes_track(melody((40 + 4 * k,)), channel=k, program=k) for k in range(9)
    ]
    low = [conductor(), notes_track(melody((12, 60)))]
    ds = make_dataset(tmp_path, {"t/nine.mid": midi_file(nine), "t/low.mid": midi_file(low)})
    report = prep_midi(ds, MidiPrep(tokenize=True))
    assert report.skipped == []
    items = by_path(ds)
    assert "9 pitched tracks" in items["t/nine.mid"].info["tokens_skipped"]
    assert "outside the model's range" in items["t/low.mid"].info["tokens_skipped"]
    assert "tokens" not in items["t/low.mid"].extras and items["t/low.mid"].step == "midi"
    assert [p for p, t in report.warnings if t.startswith("not tokenized")] == [
        "t/low.mid",
        "t/nine.mid",
    ]


# ---- augmentation --------------------------------------------------------------------------------
def test_transposed_copies_move_pitches_exactly_and_leave_drums(tmp_path):
    ds = make_dataset(tmp_path, {"s/song.mid": type1_file()})
    ds_items = {i.id: i for i in ds.items()}
    report = prep_midi(ds, MidiPrep(transpose=(-2, 1, 3)))
    items = by_path(ds)
    original = items["s/song.mid"]
    assert set(items) == {"s/song.mid", "s/song~t-2.mid", "s/song~t+1.mid", "s/song~t+3.mid"}
    assert len(report.made) == 4
    base = score_of(ds, original)
    for n in (-2, 1, 3):
        copy = items[f"s/song~t{n:+d}.mid"]
        assert copy.id == item_id(copy.path) and copy.parent == original.id
        assert copy.group == original.group == ds_items[original.id].group
        assert copy.info["augmented"] == f"t{n:+d}" and copy.step == "midi"
        # the key signature moved too, so the key estimate follows: Bb major +n
        assert copy.meta["key"] == {-2: "Ab major", 1: "B major", 3: "C# major"}[n]
        moved = score_of(ds, copy)
        for a, b in zip(base.tracks, moved.tracks, strict=True):
            shift = 0 if a.is_drum else n
            assert [m.pitch for m in b.notes] == [m.pitch + shift for m in a.notes]
            assert [m.time for m in b.notes] == [m.time for m in a.notes]


def test_a_transposition_that_would_leave_0_to_127_is_left_out(tmp_path):
    high = midi_file([conductor(), notes_track(melody((120, 125)))])
    ds = make_dataset(tmp_path, {"h/high.mid": high})
    report = prep_midi(ds, MidiPrep(transpose=(-1, 2, 3)))
    assert set(by_path(ds)) == {"h/high.mid", "h/high~t-1.mid", "h/high~t+2.mid"}
    assert report.skipped == [("h/high~t+3.mid", pytest.approx(report.skipped[0][1]))]
    assert "above 127" in report.skipped[0][1]


def test_tempo_scaled_copies_last_one_over_the_factor_as_long(tmp_path):
    ds = make_dataset(tmp_path, {"s/song.mid": type1_file()})
    prep_midi(ds, MidiPrep(tempo_scale=(0.8, 1.25)))
    items = by_path(ds)
    base = items["s/song.mid"]
    for f in (0.8, 1.25):
        copy = items[f"s/song~x{f:g}.mid"]
        assert copy.duration_s == pytest.approx(base.duration_s / f, rel=1e-3)
        s = score_of(ds, copy)
        assert s.tempos[0].qpm == pytest.approx(90 * f, rel=1e-4)
        assert [n.time for n in s.tracks[0].notes] == [
            n.time for n in score_of(ds, base).tracks[0].notes
        ]
        assert copy.meta["tempo"] == pytest.approx(90 * f, abs=0.01)
        assert copy.meta_from["tempo"] == "estimate"


def test_copies_keep_the_song_group_so_a_split_never_separates_them(tmp_path):
    files = {f"songs/s{k:02d}.mid": type1_file() for k in range(12)}
    ds = make_dataset(tmp_path, files)
    prep_midi(ds, MidiPrep(transpose=(-1, 1), tempo_scale=(1.1,)), workers=1)
    items = ds.items()
    assert len(items) == 12 * 4
    for seed in range(4):
        chosen = assign(items, (0.6, 0.2, 0.2), seed)
        per_song: dict[str, set[str]] = {}
        for i in items:
            per_song.setdefault(i.path.split("~")[0].removesuffix(".mid"), set()).add(chosen[i.id])
        assert len(per_song) == 12 and all(len(s) == 1 for s in per_song.values())
        assert len(set(chosen.values())) == 3


def test_rerunning_makes_no_copies_of_copies(tmp_path):
    ds = make_dataset(tmp_path, {"s/song.mid": type1_file()})
    prep_midi(ds, MidiPrep(transpose=(2,)))
    first = ds.head
    report = prep_midi(ds, MidiPrep(transpose=(2,)))
    assert set(by_path(ds)) == {"s/song.mid", "s/song~t+2.mid"}
    assert report.version is None and ds.head == first  # the same work gives the same files


# ---- scores, metadata, the recorded step ---------------------------------------------------------
def test_a_musicxml_score_becomes_midi_with_the_same_id_and_group(tmp_path):
    from music21 import instrument, meter, note, stream, tempo

    part = stream.Part()
    part.insert(0, instrument.Violin())
    part.append(meter.TimeSignature("3/4"))
    part.append(tempo.MetronomeMark(number=84))
    for name in ("G4", "A4", "B4", "C5", "D5", "G5"):
        part.append(note.Note(name, quarterLength=1))
    path = tmp_path / "tune.musicxml"
    stream.Score([part]).write("musicxml", fp=str(path))
    ds = make_dataset(
        tmp_path, {"x/tune.musicxml": path.read_bytes()}, {"x/tune.musicxml": "score"}
    )
    with pytest.raises(DatasetError, match="from-scores"):
        prep_midi(ds, MidiPrep())
    prep_midi(ds, MidiPrep(from_scores=True))
    (item,) = ds.items()
    assert item.id == item_id("x/tune.musicxml") and item.group == "song:x/tune.musicxml"
    assert item.path == "x/tune.mid" and item.kind == "midi"
    s = score_of(ds, item)
    assert [n.pitch for n in s.tracks[0].notes] == [67, 69, 71, 72, 74, 79]
    assert s.tracks[0].program == 40 and item.info["converted_from"] == "musicxml"
    assert item.meta["tempo"] == 84 and item.meta["meter"] == "3/4"
    assert item.meta["key"] == "G major" and item.meta["instruments"] == ["strings"]


def test_keep_originals_keeps_the_score_beside_its_midi(tmp_path):
    abc = b"X:1\nT:Tune\nM:6/8\nL:1/8\nQ:3/8=60\nK:D\ndef gfe|d3 A3|\n"
    ds = make_dataset(tmp_path, {"x/jig.abc": abc}, {"x/jig.abc": "score"})
    prep_midi(ds, MidiPrep(from_scores=True, keep_originals=True))
    items = by_path(ds)
    assert set(items) == {"x/jig.abc", "x/jig.mid"}
    assert items["x/jig.mid"].parent == items["x/jig.abc"].id
    assert items["x/jig.mid"].group == items["x/jig.abc"].group
    assert items["x/jig.mid"].meta["meter"] == "6/8"
    # the same command again changes nothing, copies of a converted score included
    opts = MidiPrep(from_scores=True, keep_originals=True, transpose=(1,), quantize=16)
    prep_midi(ds, opts)
    assert "x/jig~t+1.mid" in by_path(ds)
    assert prep_midi(ds, opts).version is None


def test_a_score_beside_a_midi_file_of_the_same_name_is_left_as_it_is(tmp_path):
    abc = b"X:1\nT:Tune\nM:4/4\nL:1/4\nK:C\nCDEF|G4|\n"
    ds = make_dataset(
        tmp_path, {"x/tune.abc": abc, "x/tune.mid": type1_file()}, {"x/tune.abc": "score"}
    )
    report = prep_midi(ds, MidiPrep(from_scores=True))
    assert report.skipped == [
        ("x/tune.abc", "x/tune.mid is already in the dataset; the score is left as it is")
    ]
    items = by_path(ds)
    assert items["x/tune.abc"].kind == "score" and items["x/tune.mid"].step == "midi"


def test_estimates_never_overwrite_what_the_user_told_and_a_told_key_moves(tmp_path):
    ds = make_dataset(tmp_path, {"s/song.mid": type1_file()})
    with ds.change({"name": "edit"}, "edit") as ch:
        (item,) = ch.items.values()
        ch.put(item.with_meta({"key": "D minor", "tempo": 100}, "user"))
    prep_midi(ds, MidiPrep(transpose=(2,)))
    items = by_path(ds)
    song, copy = items["s/song.mid"], items["s/song~t+2.mid"]
    assert song.meta["key"] == "D minor" and song.meta_from["key"] == "user"
    assert song.meta["tempo"] == 100 and song.meta_from["tempo"] == "user"
    assert song.meta_from["meter"] == "estimate" and song.meta["meter"] == "3/4"
    assert song.meta["instruments"] == ["bass", "ensemble", "drums"]  # the Kit is drums now
    assert copy.meta["key"] == "E minor" and copy.meta_from["key"] == "user"


def test_the_step_and_its_options_are_in_the_pipeline(tmp_path):
    ds = make_dataset(tmp_path, {"s/song.mid": type1_file()})
    opts = MidiPrep(resolution=960, quantize=16, swing=0.25, transpose=(-1, 1), tokenize=True)
    prep_midi(ds, opts, command=["disco-musica", "data", "prep", "midi"])
    steps = ds.pipeline()
    assert [s["name"] for s in steps] == ["create", "import", "midi"]
    last = steps[-1]
    assert last["resolution"] == 960 and last["quantize"] == 16 and last["swing"] == 0.25
    assert last["transpose"] == [-1, 1] and last["tokenize"] is True
    assert ds.version().command == ["disco-musica", "data", "prep", "midi"]


@pytest.mark.parametrize(
    "opts, needle",
    [
        (MidiPrep(resolution=0), "--resolution"),
        (MidiPrep(resolution=10**6), "--resolution"),
        (MidiPrep(quantize=7), "--quantize"),
        (MidiPrep(quantize=16, swing=0.8), "--swing"),
        (MidiPrep(swing=0.5), "--swing needs a grid"),
        (MidiPrep(quantize=12, swing=0.5), "straight grid"),
        (MidiPrep(quantize=16, strength=1.5), "--strength"),
        (MidiPrep(quantize=16, strength=float("nan")), "--strength"),
        (MidiPrep(transpose=(0,)), "--transpose"),
        (MidiPrep(transpose=(13,)), "--transpose"),
        (MidiPrep(tempo_scale=(1.0,)), "--tempo-scale"),
        (MidiPrep(tempo_scale=(3.0,)), "--tempo-scale"),
    ],
)
def test_bad_options_are_refused_naming_the_option(opts, needle):
    with pytest.raises(DatasetError, match=needle.replace("-", r"\-")):
        opts.check()


def test_option_text_is_read():
    assert midi_prep.parse_transpose("-3..3") == (-3, -2, -1, 1, 2, 3)
    assert midi_prep.parse_transpose("-2, 5") == (-2, 5)
    assert midi_prep.parse_grid("1/16") == 16 and midi_prep.parse_grid("12") == 12
    assert midi_prep.parse_tempo_scale("0.9,1.1") == (0.9, 1.1)
    for bad in ("3..-3", "a", "1..2..3", ""):
        with pytest.raises(DatasetError, match="--transpose"):
            midi_prep.parse_transpose(bad)
    assert midi_prep.transpose_key("F# minor", 2) == "Ab minor"
    assert midi_prep.transpose_key("Bb", -1) == "A" and midi_prep.transpose_key("funky", 1) is None


# ---- resuming, workers, the command --------------------------------------------------------------
def test_an_interrupted_run_continues_without_doing_an_item_twice(tmp_path, monkeypatch):
    files = {f"r/s{k}.mid": type1_file() for k in range(4)}
    ds = make_dataset(tmp_path, files)
    opts = MidiPrep(transpose=(1,))
    calls: list[str] = []
    real = midi_prep.prepare_one

    def counting(job):
        calls.append(job["path"])
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while preparing the third
        return real(job)

    monkeypatch.setattr(midi_prep, "prepare_one", counting)
    with pytest.raises(KeyboardInterrupt):
        prep_midi(ds, opts, workers=1)
    assert (ds.path / "pending.jsonl").is_file() and len(ds.items()) == 4  # nothing committed
    calls.clear()
    report = prep_midi(ds, opts, workers=1)
    assert calls == ["r/s2.mid", "r/s3.mid"]  # the first two were done
    items = ds.items()
    assert Counter(i.path for i in items) == Counter(
        [*files, *(p.replace(".mid", "~t+1.mid") for p in files)]
    )
    assert len(report.made) == 8 and not (ds.path / "pending.jsonl").exists()
    assert all(i.step == "midi" for i in items)


def test_two_worker_processes_give_the_same_dataset_as_one(tmp_path):
    files = {f"w/s{k}.mid": type1_file() if k % 2 else broken_file() for k in range(6)}
    one = make_dataset(tmp_path / "one", files)
    two = make_dataset(tmp_path / "two", files)
    opts = MidiPrep(quantize=16, transpose=(2,), tokenize=True)
    prep_midi(one, opts, workers=1)
    prep_midi(two, opts, workers=2)
    assert [i.to_json() for i in one.items()] == [i.to_json() for i in two.items()]


def test_the_command_prepares_and_says_the_version(tmp_path, capsys):
    from engine.cli import main

    ds = make_dataset(
        tmp_path, {"c/song.mid": type1_file(), "c/broken.mid": broken_file(), "c/bad.mid": b"x"}
    )
    argv = ["data", "prep", "midi", str(ds.path), "--quantize", "1/16", "--transpose", "-1..1"]
    code = main([*argv, "--tempo-scale", "0.9", "--tokenize"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "skipped c/bad.mid: it is not MIDI" in out
    assert (
        "c/broken.mid: repaired: 1 zero-length note (lengthened), 1 overlapping note (trimmed)"
        in out
    )
    assert "prepared 2 MIDI items (2 repaired, 6 augmented copies, 8 tokenized, 1 skipped)" in out
    assert f"is now at version {ds.head[:12]}" in out
    assert main(["data", "prep", "midi", str(ds.path), "--swing", "0.5"]) == 2
    assert "--swing needs a grid" in capsys.readouterr().err
