"""engine.library.pictures: piano roll, parameter curves, audio waveform and loudness, the
engraved score, and render_pictures' files, checked against values computed here."""

from __future__ import annotations

import io
import re
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from matplotlib.collections import PolyCollection
from PIL import Image
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine.errors import OutputError, UserError
from engine.library import pictures as P
from engine.symbolic.midi import midi_bytes, read_midi
from engine.symbolic.notation import write_musicxml

TPQ = 480
Q = TPQ
SR = 44100
# Two bars of 4/4, then four of 3/4; 120 quarter notes a minute, 90 from the middle of bar 3.
BAR_TICKS = [0, 4 * Q, 8 * Q, 11 * Q, 14 * Q, 17 * Q, 20 * Q]
# (track name, program, lowest pitch); the second track has no name (its instrument names
# it), the fourth repeats the third's name.
PARTS = [("Soprano", 73, 67), ("", 40, 60), ("Tenor", 42, 52), ("Tenor", 32, 40)]
NAMES = ["Soprano", "Violin", "Tenor", "Tenor 2"]


def make_score(seed: int = 0) -> Score:
    rng = np.random.default_rng(seed)
    sc = Score(TPQ)
    sc.time_signatures.append(TimeSignature(0, 4, 4))
    sc.time_signatures.append(TimeSignature(8 * Q, 3, 4))
    sc.tempos.append(Tempo(0, 120.0))
    sc.tempos.append(Tempo(9 * Q, 90.0))
    for name, program, low in PARTS:
        track = Track(name=name, program=program)
        t = 0
        while t < 20 * Q:
            d = int(min(rng.choice([Q // 2, Q, 2 * Q]), 20 * Q - t))
            track.notes.append(
                Note(t, d, int(low + rng.integers(0, 12)), int(rng.integers(30, 120)))
            )
            t += d
        sc.tracks.append(track)
    sc.tracks.append(Track(name="Empty", program=0))  # no notes: no part
    return sc


def sine_audio(seconds: float = 8.0) -> np.ndarray:
    """Stereo 440 Hz, quiet for the first half and 12 dB louder for the second."""
    t = np.arange(int(seconds * SR)) / SR
    level = np.where(t < seconds / 2, 0.1, 0.4)
    tone = np.sin(2 * np.pi * 440 * t) * level
    return np.stack([tone, 0.5 * tone], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def piece(tmp_path_factory) -> Path:
    """A piece's folder: music.mid, music.musicxml (the project's writer), music.wav."""
    folder = tmp_path_factory.mktemp("piece")
    score = make_score()
    (folder / "music.mid").write_bytes(midi_bytes(score))
    write_musicxml(score, folder / "music.musicxml", title="Test piece")
    sf.write(folder / "music.wav", sine_audio(), SR, subtype="PCM_16")
    return folder


@pytest.fixture(scope="module")
def chorale(tmp_path_factory) -> Path:
    from music21 import corpus

    path = tmp_path_factory.mktemp("chorale") / "bwv66.6.musicxml"
    corpus.parse("bach/bwv66.6").write("musicxml", fp=path)
    return path


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data)).size


def pitched_notes(musicxml: Path) -> int:
    root = ET.parse(musicxml).getroot()
    return sum(1 for n in root.iter("note") if n.find("rest") is None)


def svg_notes(svg: str) -> int:
    return len(re.findall(r'class="note"', svg))


# ---------------------------------------------------------------------------------------------
# Time and parameters


def test_timeline_bars_beats_and_seconds():
    score = make_score()
    tl = P.timeline(score)
    assert tl.bar_ticks.tolist() == BAR_TICKS
    assert tl.beat_ticks.tolist() == list(range(0, 20 * Q, Q))
    assert tl.bar_position([0, 2 * Q, 8 * Q, 20 * Q]).tolist() == [1.0, 1.5, 3.0, 7.0]
    # Every note's onset in seconds as symusic places it through the tempo changes.
    secs = score.to("second")
    for track, track_s in zip(score.tracks, secs.tracks, strict=True):
        ticks = [n.time for n in track.notes]
        np.testing.assert_allclose(tl.seconds(ticks), [n.time for n in track_s.notes], atol=1e-4)


def test_compound_meter_beats_are_dotted_quarters():
    sc = Score(TPQ)
    sc.time_signatures.append(TimeSignature(0, 6, 8))
    t = Track()
    t.notes.append(Note(0, 6 * Q, 60, 80))
    sc.tracks.append(t)
    tl = P.timeline(sc)
    assert tl.bar_ticks.tolist() == [0, 3 * Q, 6 * Q]
    assert tl.beat_ticks.tolist() == [0, 1.5 * Q, 3 * Q, 4.5 * Q]


def test_bar_parameters_match_counts_made_here():
    score = make_score()
    p = P.bar_parameters(score)
    assert [part.name for part in p.parts] == NAMES
    for i, track in enumerate(t for t in score.tracks if len(t.notes)):
        counts, sums = [0] * 6, [0] * 6
        for note in track.notes:
            bar = max(b for b in range(6) if BAR_TICKS[b] <= note.time)
            counts[bar] += 1
            sums[bar] += note.velocity
        assert p.density[i].tolist() == counts
        expected = [s / c if c else np.nan for s, c in zip(sums, counts, strict=True)]
        np.testing.assert_allclose(p.velocity[i], expected)
    # Bar 3: one quarter at 120, two at 90 -> 3 quarters in 0.5 + 4/3 s.
    expected = [120, 120, 3 / (0.5 + 4 / 3) * 60, 90, 90, 90]
    np.testing.assert_allclose(p.tempo_qpm, expected, rtol=1e-5)  # MIDI's microseconds a beat


def test_parameter_figure_draws_the_values():
    score = make_score()
    p = P.bar_parameters(score)
    fig = P.parameter_figure(score)
    ax_vel, ax_tempo, ax_dens = fig.axes[:3]
    lines = {ln.get_label(): ln for ln in ax_vel.get_lines()}
    for i, part in enumerate(p.parts):
        np.testing.assert_allclose(lines[part.name].get_ydata(), p.velocity[i])
    heights = np.array([r.get_height() for r in ax_dens.patches]).reshape(len(p.parts), -1)
    assert (heights == p.density).all()
    assert len(ax_tempo.patches) == 1  # the tempo steps


# ---------------------------------------------------------------------------------------------
# Piano roll


def test_piano_roll_one_coloured_named_collection_per_part():
    score = make_score()
    fig = P.piano_roll_figure(score, title="Test")
    ax = fig.axes[0]
    rolls = [c for c in ax.collections if isinstance(c, PolyCollection) and c.get_label() in NAMES]
    assert [c.get_label() for c in rolls] == NAMES
    tracks = [t for t in score.tracks if len(t.notes)]
    assert [len(c.get_paths()) for c in rolls] == [len(t.notes) for t in tracks]
    colours = {tuple(np.round(c.get_facecolor()[0], 3)) for c in rolls}
    assert len(colours) == len(NAMES)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == NAMES
    # Each bar spans its note: the soprano's first note, in bar positions and pitch.
    first = tracks[0].notes[0]
    x = rolls[0].get_paths()[0].vertices[:, 0]
    y = rolls[0].get_paths()[0].vertices[:, 1]
    assert x.min() == pytest.approx(1 + first.time / (4 * Q))
    assert x.max() == pytest.approx(1 + (first.time + first.duration) / (4 * Q))
    assert y.min() == pytest.approx(first.pitch - 0.4)


def test_piano_roll_png_size_and_not_blank(piece, tmp_path):
    out = P.piano_roll(piece / "music.mid", tmp_path / "roll.png")
    data = out.read_bytes()
    assert png_size(data) == (1400, 700)
    pixels = np.asarray(Image.open(out).convert("L"), dtype=float)
    assert pixels.std() > 20  # drawn, not one colour


def test_note_names():
    assert [P.note_name(p) for p in (21, 60, 61, 70, 108)] == ["A0", "C4", "C#4", "Bb4", "C8"]


# ---------------------------------------------------------------------------------------------
# Audio


def test_waveform_envelope_is_min_max_per_column():
    x = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    lo, hi = P.waveform_envelope(x, columns=10)
    assert lo.tolist() == [x[i * 100 : (i + 1) * 100].min() for i in range(10)]
    assert hi.tolist() == [x[i * 100 : (i + 1) * 100].max() for i in range(10)]
    assert len(P.waveform_envelope(x[:5], columns=10)[0]) == 5


def test_audio_loudness_matches_pyloudnorm():
    audio = sine_audio()
    expected = pyloudnorm.Meter(SR).integrated_loudness(audio.astype(np.float64))
    assert P.integrated_loudness(audio, SR) == pytest.approx(expected, abs=0.1)
    fig = P.audio_figure(audio, SR, title="tone")
    shown = float(re.search(r"integrated (-?[\d.]+) LUFS", fig._suptitle.get_text()).group(1))
    assert shown == pytest.approx(expected, abs=0.1)
    # The short-term curve: windows wholly in each half read that half's own loudness.
    times, lufs = P.loudness_curve(audio, SR)
    assert times[0] == pytest.approx(3.0) and np.diff(times) == pytest.approx(0.1)
    for start in (0.0, 4.0):
        part = audio[int(start * SR) : int((start + 3.0) * SR)].astype(np.float64)
        level = pyloudnorm.Meter(SR).integrated_loudness(part)
        assert lufs[np.argmin(np.abs(times - (start + 3.0)))] == pytest.approx(level, abs=0.1)


def test_audio_picture_and_short_or_silent_audio(piece, tmp_path):
    out = P.audio_picture(piece / "music.wav", tmp_path / "audio.png")
    assert png_size(out.read_bytes()) == (1400, 600)
    silent = np.zeros((SR // 10, 1), dtype=np.float32)  # 100 ms: shorter than one block
    fig = P.audio_figure(silent, SR)
    assert "silent" in fig._suptitle.get_text()
    assert P.loudness_curve(silent, SR)[1][0] == -np.inf


# ---------------------------------------------------------------------------------------------
# The engraved score


def test_engrave_chorale_notes_pages_and_formats(chorale, tmp_path):
    pages = P.engrave_svg(chorale)
    assert sum(svg_notes(p) for p in pages) == pitched_notes(chorale) == 165
    assert P.engrave_svg(chorale) == pages  # ids from the input, not random
    png = P.engrave(chorale, tmp_path / "score.png")
    assert len(png) == len(pages)
    assert png_size(png[0].read_bytes()) == (1240, 1754)  # A4 at 150 ppi
    (pdf,) = P.engrave(chorale, tmp_path / "score.pdf")
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and len(data) > 10_000
    assert re.search(rb"/Count\s+(\d+)", data).group(1) == str(len(pages)).encode()


def test_engrave_the_projects_musicxml(piece, tmp_path):
    pages = P.engrave_svg(piece / "music.musicxml")
    assert sum(svg_notes(p) for p in pages) == pitched_notes(piece / "music.musicxml")
    assert "Test piece" in pages[0]
    # The note of the tempo mark is text in the music font: Typst draws it from the font
    # built from Verovio's glyphs (without it the PNG has a box where the note should be).
    assert 'font-family="Leipzig"' in pages[0]
    (pdf,) = P.engraved_pages(pages, "pdf")
    assert b"Disco-MusicaMusicText" in pdf  # the glyph embedded, under its converted name


# ---------------------------------------------------------------------------------------------
# render_pictures


def test_render_pictures_writes_each_kind_the_same_bytes_twice(piece, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    made = P.render_pictures(piece, {"png", "svg", "pdf"}, a, title="Test")
    pages = len(P.engrave_svg(piece / "music.musicxml"))
    score = ["score.png"] if pages == 1 else [f"score-{i}.png" for i in range(1, pages + 1)]
    pngs = ["piano-roll.png", "parameters.png", "music-audio.png", *score]
    expected = pngs + [n.replace(".png", ".svg") for n in pngs] + ["pictures.pdf", "score.pdf"]
    assert [p.name for p in made] == expected
    assert re.search(rb"/Count\s+3\b", (a / "pictures.pdf").read_bytes())
    # Files named one by one (any order), formats in any case: the same pictures.
    files = [piece / "music.wav", piece / "music.musicxml", piece / "music.mid"]
    assert [p.name for p in P.render_pictures(files, ["PNG"], b, title="Test")] == pngs
    P.render_pictures(piece, {"svg", "pdf"}, b, title="Test")
    for p in made:
        assert (b / p.name).read_bytes() == p.read_bytes(), p.name


def test_several_sources_name_their_pictures(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for stem in ("melody", "bass"):
        (src / f"{stem}.mid").write_bytes(midi_bytes(make_score()))
    for ext in ("wav", "flac"):
        sf.write(src / f"take.{ext}", sine_audio(1.0), SR)
    (src / ".take.wav.tmp").write_bytes(b"half written")  # hidden: not a source
    made = [p.name for p in P.render_pictures(src, {"png"}, out)]
    assert made == [
        "bass-piano-roll.png",
        "bass-parameters.png",
        "melody-piano-roll.png",
        "melody-parameters.png",
        "take-flac-audio.png",
        "take-wav-audio.png",
    ]


def test_existing_files_are_not_replaced(piece, tmp_path):
    (tmp_path / "parameters.png").write_bytes(b"mine")
    with pytest.raises(OutputError, match="parameters.png already exists"):
        P.render_pictures(piece, {"png"}, tmp_path)
    assert (tmp_path / "parameters.png").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parameters.png"]  # nothing written
    with pytest.raises(OutputError, match="already exists"):
        P.piano_roll(piece / "music.mid", tmp_path / "parameters.png")
    assert P.piano_roll(piece / "music.mid", tmp_path / "parameters.png", overwrite=True)
    assert (tmp_path / "parameters.png").read_bytes()[:4] == b"\x89PNG"


def test_threads_draw_the_same_svg(piece):
    score = read_midi(piece / "music.mid")
    results: list[bytes] = []

    def draw():
        results.append(P.figure_bytes(P.piano_roll_figure(score), "svg"))

    threads = [threading.Thread(target=draw) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]


# ---------------------------------------------------------------------------------------------
# What a user can get wrong: one line that names the file


@pytest.mark.parametrize(
    "name, data, call, words",
    [
        ("bad.mid", b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\xff", "roll",
         "corrupt MIDI"),
        ("empty.mid", b"", "roll", "empty"),
        ("text.mid", b"hello", "parameters", "not a MIDI file"),
        ("empty.musicxml", b"", "engrave", "empty"),
        ("text.musicxml", b"hello, not XML", "engrave", "not well-formed XML"),
        ("cut.musicxml", b"<?xml version='1.0'?><score-partwise><part", "engrave", "well-formed"),
        ("page.xml", b"<html><body/></html>", "engrave", "root element is <html>"),
    ],
)  # fmt: skip
def test_bad_files_one_line(tmp_path, name, data, call, words):
    path = tmp_path / name
    path.write_bytes(data)
    fn = {"roll": P.piano_roll, "parameters": P.parameter_curves, "engrave": P.engrave}[call]
    with pytest.raises(UserError) as e:
        fn(path, tmp_path / "out.png")
    text = str(e.value)
    assert "\n" not in text and str(path) in text and words in text
    assert not (tmp_path / "out.png").exists()


def test_bad_requests(piece, tmp_path):
    with pytest.raises(UserError, match="unknown picture format 'jpg'; choose from png, svg, pdf"):
        P.render_pictures(piece, {"png", "jpg"}, tmp_path)
    with pytest.raises(UserError, match="no picture format"):
        P.render_pictures(piece, set(), tmp_path)
    with pytest.raises(UserError, match=r"roll\.gif: pictures are written as \.png"):
        P.piano_roll(piece / "music.mid", tmp_path / "roll.gif")
    with pytest.raises(OutputError, match="does not exist"):
        P.render_pictures(piece, {"png"}, tmp_path / "nowhere")
    with pytest.raises(UserError, match="no such file or folder"):
        P.render_pictures(tmp_path / "elsewhere", {"png"}, tmp_path)
    with pytest.raises(UserError, match="no MIDI, MusicXML or audio file"):
        P.render_pictures(tmp_path, {"png"}, tmp_path)
    (tmp_path / "notes.txt").write_text("la la")
    with pytest.raises(UserError, match="no picture is made of .txt files"):
        P.render_pictures([piece / "music.mid", tmp_path / "notes.txt"], {"png"}, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
