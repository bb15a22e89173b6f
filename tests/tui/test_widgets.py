"""The studio's widgets: RollData from real symusic scores, and the piano roll, parameter
lanes, waveform and score view drawn in small apps driven by Textual's Pilot.

Async tests run through ``asyncio.run`` (pytest-asyncio is not a dependency)."""

from __future__ import annotations

import asyncio
import math
import re

import numpy as np
import pytest
import symusic
from textual.app import App

from tui.widgets._bars import PART_GLYPHS, BarGrid, part_colour
from tui.widgets.lanes import ParameterLanes
from tui.widgets.pianoroll import PianoRoll
from tui.widgets.roll import GUTTER, roll_data
from tui.widgets.scoreview import ScoreView, first_bars
from tui.widgets.waveform import (
    BLOCK_FRAMES,
    SILENCE_DB,
    AudioLevels,
    Waveform,
    envelope_text,
    level_text,
)

TPQ = 480
SIZE = (80, 24)


def make_score(parts, tempos=((0, 120.0),), meters=((0, 4, 4),), tpq=TPQ) -> symusic.Score:
    """``parts``: (name, program, [(start q, duration q, pitch, velocity), …])."""
    score = symusic.Score(tpq)
    for name, program, notes in parts:
        track = symusic.Track(name, program, False)
        for start, dur, pitch, vel in notes:
            track.notes.append(symusic.Note(int(start * tpq), int(dur * tpq), pitch, vel))
        score.tracks.append(track)
    for q, qpm in tempos:
        score.tempos.append(symusic.Tempo(int(q * tpq), qpm))
    for q, num, den in meters:
        score.time_signatures.append(symusic.TimeSignature(int(q * tpq), num, den))
    return score


def two_parts(bars: int = 4):
    """Soprano: C4 at bar 2 beat 1 (q 4) and a note per bar; Alto: E3 at the same time."""
    sop = [(4.0, 1.0, 60, 80)] + [(4.0 * b, 1.0, 67, 100) for b in range(bars) if b != 1]
    alto = [(4.0, 2.0, 52, 60)]
    return roll_data(make_score([("Soprano", 0, sop), ("Alto", 0, alto)]), bars=bars)


def drive(app: App, body, size=SIZE):
    """Run ``body(pilot)`` (async) in ``app`` at ``size``."""

    async def main():
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await body(pilot)

    asyncio.run(main())


class One(App):
    """A tiny app showing the widgets given."""

    def __init__(self, *widgets):
        super().__init__()
        self.widgets = widgets
        self.views: list[tuple[str, int, int]] = []

    def compose(self):
        yield from self.widgets

    def on_bar_grid_view_changed(self, message: BarGrid.ViewChanged) -> None:
        self.views.append((type(message.grid).__name__, message.scroll_bar, message.bar_width))
        for grid in self.query(BarGrid):
            if grid is not message.grid:
                grid.set_view(message.scroll_bar, message.bar_width)


def text(widget, y: int) -> str:
    return widget.render_line(y).text


# -------------------------------------------------------------------------------------------
# RollData


def test_roll_data_reads_notes_in_quarters_and_the_tempo_map():
    score = make_score(
        [("Piano", 5, [(0, 1, 60, 60), (1.5, 0.5, 64, 80), (9, 2, 67, 100)])],
        tempos=((0, 120.0), (8, 60.0)),  # 60 from bar 3
    )
    d = roll_data(score)
    assert [p.name for p in d.parts] == ["Piano"] and d.parts[0].program == 5
    np.testing.assert_allclose(
        d.parts[0].notes, [[0, 1, 60, 60], [1.5, 0.5, 64, 80], [9, 2, 67, 100]]
    )
    assert d.bars == 3 and d.quarters_per_bar == 4.0 and d.length_q == 12.0
    assert d.seconds_at(4.0) == 2.0
    assert d.seconds_at(8.0) == 4.0  # two bars at 120
    assert d.seconds_at(10.0) == 6.0  # then a second a quarter
    assert d.quarters_at(6.0) == 10.0 and d.quarters_at(1.0) == 2.0
    np.testing.assert_allclose(d.seconds_at(np.array([0.0, 12.0])), [0.0, 8.0])
    assert d.length_s == 8.0


def test_per_bar_statistics_are_exact():
    notes = [(0, 1, 60, 60), (1, 1, 62, 80), (2, 1, 64, 100), (8.5, 1, 60, 90)]
    # tempo 120, then 60 in the middle of bar 1: its 4 quarters take 1 + 2 s, 80 a minute
    d = roll_data(make_score([("P", 0, notes)], tempos=((0, 120.0), (2, 60.0), (4, 90.0))))
    s = d.bar_stats()
    np.testing.assert_array_equal(s.density, [3, 0, 1])
    np.testing.assert_allclose(s.velocity[[0, 2]], [80.0, 90.0])
    assert np.isnan(s.velocity[1])
    # MIDI keeps a tempo as whole microseconds a quarter: 90 is 666667 µs, 89.99996
    np.testing.assert_allclose(s.tempo, [80.0, 90.0, 90.0], rtol=1e-6)


def test_meter_changes_give_bars_of_their_length():
    notes = [(0, 1, 60, 80), (9, 1, 60, 80)]
    d = roll_data(make_score([("P", 0, notes)], meters=((0, 3, 4), (6, 4, 4))))
    np.testing.assert_allclose(d.bar_starts, [0, 3, 6, 10])
    assert d.meters == ((0, 3, 4), (2, 4, 4)) and d.meter == "3/4, 4/4 from bar 3"
    assert d.bar_position(7.0) == 2.25 and d.quarter_of_bar(2.25) == 7.0


def test_partial_score_while_writing():
    d = roll_data(make_score([("P", 0, [(0, 4, 60, 80), (4, 4, 62, 80)])]), bars_written=2, bars=8)
    assert d.bars == 8 and d.written_q == 8.0 and d.bars_written == 2
    np.testing.assert_array_equal(d.bar_stats().density, [1, 1, 0, 0, 0, 0, 0, 0])


def test_empty_score():
    d = roll_data(symusic.Score(TPQ))
    assert d.parts == () and d.bars == 1 and d.pitch_range is None
    assert d.bar_stats().density.tolist() == [0]


def test_key_signature_is_named():
    score = make_score([("P", 0, [(0, 1, 62, 80)])])
    score.key_signatures.append(symusic.KeySignature(0, -1, 1))  # one flat, minor
    assert roll_data(score).key == "D minor"


# -------------------------------------------------------------------------------------------
# Piano roll


def _pin(roll: PianoRoll, top: int = 72, spr: int = 1) -> None:
    roll.semitones_per_row = spr
    roll.pitch_top = top


def test_piano_roll_draws_each_note_at_its_bar_and_pitch():
    roll = PianoRoll(two_parts())

    async def body(pilot):
        _pin(roll, top=72)
        assert roll.size == (SIZE[0] - 2, SIZE[1] - 2)  # inside the border
        assert roll.bar_width == 16
        # C4 = 60 is 12 rows under the top (72), +1 for the bar numbers
        c4 = text(roll, 1 + 12)
        assert c4.startswith("  C4┤")
        x = GUTTER + 16  # bar 2 beat 1
        assert c4[x : x + 4] == PART_GLYPHS[0] * 4 and c4[x + 4] != PART_GLYPHS[0]
        assert c4[x - 1] != PART_GLYPHS[0]
        e3 = text(roll, 1 + 72 - 52)
        assert e3.startswith("  E3┤")
        assert e3[x : x + 8] == PART_GLYPHS[1] * 8  # the alto's own fill, two beats long
        assert PART_GLYPHS[0] != PART_GLYPHS[1]
        header = text(roll, 0)
        assert header[GUTTER] == "1" and header[GUTTER + 16] == "2" and header[GUTTER + 32] == "3"
        # the colours: a part each, Okabe-Ito first
        seg = next(s for s in roll.render_line(13)._segments if PART_GLYPHS[0] in s.text)
        assert seg.style.color.name.lower() == part_colour("okabe-ito", 0).lower()
        roll.palette = "classic"
        await pilot.pause()
        seg = next(s for s in roll.render_line(13)._segments if PART_GLYPHS[0] in s.text)
        assert seg.style.color.name.lower() == part_colour("classic", 0).lower()

    drive(One(roll), body)


def test_keys_pan_and_zoom_the_piano_roll():
    data = two_parts(bars=32)
    roll = PianoRoll(data)

    async def body(pilot):
        roll.focus()
        await pilot.pause()
        top, spr = roll.pitch_top, roll.semitones_per_row
        await pilot.press("plus")
        assert roll.bar_width == 24
        await pilot.press("minus", "minus")
        assert roll.bar_width == 12
        await pilot.press("l", "right")
        assert roll.scroll_bar == 2
        await pilot.press("h")
        assert roll.scroll_bar == 1
        assert text(roll, 0)[GUTTER] == "2"  # bar 2 now at the left edge
        await pilot.press("end")
        assert roll.scroll_bar == 32 - int(roll.grid_width / 12)
        await pilot.press("home")
        assert roll.scroll_bar == 0
        await pilot.press("k", "k", "up")
        assert roll.pitch_top == top + 3 * spr
        await pilot.press("j")
        assert roll.pitch_top == top + 2 * spr
        await pilot.press("left_square_bracket")
        assert roll.semitones_per_row > spr
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert roll.semitones_per_row == 1

    drive(One(roll), body)


def test_playhead_moves_and_is_followed():
    roll = PianoRoll(two_parts(bars=16))

    async def body(pilot):
        roll.playhead_q = 4.0
        await pilot.pause()
        assert roll.playhead_column() == 16
        assert text(roll, 0)[GUTTER + 16] == "▼"
        segs = roll.render_line(5)._segments
        col, reversed_at = 0, []
        for s in segs:
            if s.style and s.style.reverse:
                reversed_at.append(col)
            col += len(s.text)
        assert reversed_at == [GUTTER + 16]
        roll.playhead_q = 6.0
        await pilot.pause()
        assert roll.playhead_column() == 24
        roll.playhead_q = 40.0  # bar 11, out of view: the view follows
        await pilot.pause()
        assert roll.scroll_bar == 10 and roll.playhead_column() == 0
        roll.follow = False
        roll.playhead_q = 4.0
        await pilot.pause()
        assert roll.scroll_bar == 10 and roll.playhead_column() is None

    drive(One(roll), body)


def test_bars_still_to_be_written_are_dim_dots():
    score = make_score([("P", 0, [(0, 4, 60, 80), (4, 4, 62, 80)])])
    roll = PianoRoll(roll_data(score, bars_written=2, bars=4))

    async def body(pilot):
        row = text(roll, 3)
        assert row[GUTTER + 32] == "┊" and set(row[GUTTER + 33 : GUTTER + 64]) == {"·"}
        assert "·" not in row[GUTTER : GUTTER + 32]
        assert text(roll, 0)[GUTTER + 32] == "✎"
        assert "2 of 4 bars written" in roll.summary()

    drive(One(roll), body)


def test_piano_roll_summary_in_words():
    roll = PianoRoll(two_parts())

    async def body(pilot):
        roll.playhead_q = 5.0
        s = roll.summary()
        assert "4 bars of 4/4" in s and "120 quarter notes a minute" in s
        assert "Soprano: 4 notes, C4–G4" in s and "Alto: 1 note, E3–E3" in s
        assert "playhead: bar 2 beat 2.0, 0:02.5" in s

    drive(One(roll), body)


@pytest.mark.parametrize("case", ["empty", "one note", "eight parts", "128 bars"])
def test_piano_roll_copes(case):
    if case == "empty":
        data = roll_data(symusic.Score(TPQ))
    elif case == "one note":
        data = roll_data(make_score([("P", 0, [(0, 0.25, 127, 1)])]))
    elif case == "eight parts":
        parts = [(f"P{i}", i, [(i * 0.5, 1, 30 + 10 * i, 80)]) for i in range(8)]
        data = roll_data(make_score(parts))
    else:
        notes = [(q, 0.5, 40 + int(q) % 40, 64) for q in np.arange(0, 512, 0.5)]
        data = roll_data(make_score([("P", 0, notes)]))
        assert data.bars == 128
    roll, lanes = PianoRoll(data), ParameterLanes(data)

    async def body(pilot):
        roll.focus()
        for keys in [(), ("end",), ("plus",) * 12, ("minus",) * 12, ("left_square_bracket",) * 8]:
            await pilot.press(*keys)
            for w in (roll, lanes):
                for y in range(w.size.height + 1):
                    assert len(text(w, y)) <= w.size.width
        roll.playhead_q = data.length_q
        await pilot.pause()
        assert roll.summary() and lanes.summary()
        if case == "eight parts":
            roll.fit_pitch()
            await pilot.pause()
            drawn = "".join(text(roll, y) for y in range(1, roll.size.height))
            assert all(g in drawn for g in PART_GLYPHS)

    drive(One(roll, lanes), body)


# -------------------------------------------------------------------------------------------
# Lanes


def test_lanes_values_and_their_alignment_with_the_roll():
    notes = [(0, 1, 60, 40), (1, 1, 62, 60), (4, 1, 60, 100), (12, 1, 60, 70)]
    data = roll_data(make_score([("P", 0, notes)], tempos=((0, 120.0), (8, 90.0))))
    roll, lanes = PianoRoll(data), ParameterLanes(data)

    async def body(pilot):
        np.testing.assert_allclose(lanes.values("velocity")[[0, 1, 3]], [50, 100, 70])
        assert np.isnan(lanes.values("velocity")[2])
        np.testing.assert_allclose(lanes.values("tempo"), [120, 120, 90, 90], rtol=1e-6)
        np.testing.assert_array_equal(lanes.values("density"), [2, 1, 0, 1])
        vel = text(lanes, 0)
        assert vel.startswith(" vel┤")
        bw = 16
        bars = [vel[GUTTER + b * bw : GUTTER + (b + 1) * bw] for b in range(4)]
        assert bars == ["▁" * bw, "█" * bw, " " * bw, "▄" * bw]  # 50, 100, none, 70 of 50–100
        assert text(lanes, 1)[GUTTER : GUTTER + 4 * bw] == "█" * 32 + "▁" * 32
        assert "vel 50–100" in lanes.border_subtitle and "bpm 90–120" in lanes.border_subtitle
        assert "mean velocity: 50–100, highest in bar 2, lowest in bar 1" in lanes.summary()
        # a pan or zoom of the roll reaches the lanes (through ViewChanged)
        roll.focus()
        await pilot.press("minus", "l")
        await pilot.pause()
        assert (lanes.scroll_bar, lanes.bar_width) == (roll.scroll_bar, roll.bar_width) == (1, 12)
        assert [x for _, x in lanes.bar_columns()] == [x for _, x in roll.bar_columns()]
        assert ("PianoRoll", 1, 12) in pilot.app.views
        assert text(lanes, 0)[GUTTER : GUTTER + 12] == "█" * 12  # bar 2 at the left edge

    drive(One(roll, lanes), body)


# -------------------------------------------------------------------------------------------
# Waveform


def sine(amplitude: float, seconds: float, sr: int = 8000, hz: float = 200.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_levels_of_a_sine_then_silence():
    sr = 8000
    a = np.concatenate([sine(0.5, 4.0, sr), np.zeros(4 * sr, np.float32)])
    lv = AudioLevels(np.stack([a, a], axis=1), sr)
    assert len(lv.block_min) == math.ceil(len(a) / BLOCK_FRAMES)
    assert lv.length_s == 8.0 and lv.peak_db == pytest.approx(20 * math.log10(0.5), abs=0.01)
    mn, mx, db = lv.columns(0.0, 8.0, 8)
    np.testing.assert_allclose(mx[:4], 0.5, atol=1e-3)
    np.testing.assert_allclose(mn[:4], -0.5, atol=1e-3)
    np.testing.assert_array_equal(mx[5:], 0.0)
    sine_db = 20 * math.log10(0.5 / math.sqrt(2))  # -9.03 dBFS
    np.testing.assert_allclose(db[:3], sine_db, atol=0.05)
    np.testing.assert_array_equal(db[5:], SILENCE_DB)
    assert lv.rms_db(0.0, 4.0) == pytest.approx(sine_db, abs=0.01)


def test_columns_read_samples_when_zoomed_in():
    sr = 1000
    ramp = (np.arange(1000) / 1000).astype(np.float32)
    mn, mx, _ = AudioLevels(ramp, sr).columns(0.0, 0.1, 10)  # 10 samples a column
    np.testing.assert_allclose(mn, np.arange(0, 100, 10) / 1000, atol=1e-6)
    np.testing.assert_allclose(mx, np.arange(9, 100, 10) / 1000, atol=1e-6)
    # past the end: empty columns
    mn, mx, db = AudioLevels(ramp, sr).columns(0.5, 1.5, 10)
    assert np.isnan(mx[5:]).all() and (db[5:] == SILENCE_DB).all() and mx[4] == ramp[-1]


def test_envelope_and_level_characters():
    rows = envelope_text(np.array([-0.5, 0.0, np.nan, -1.0]), np.array([0.5, 0.0, np.nan, 1.0]), 4)
    # 4 rows of 0.5 each, in half cells of 0.25: ±0.5 fills the middle two rows; silence the
    # half cell just under zero; full scale everything
    assert [r[0] for r in rows] == [" ", "█", "█", " "]
    assert [r[1] for r in rows] == [" ", " ", "▀", " "]
    assert [r[2] for r in rows] == [" "] * 4
    assert [r[3] for r in rows] == ["█"] * 4
    assert level_text(np.array([0.0, -60.0, -61.0, -30.0, SILENCE_DB])) == "█▁ ▅ "


def test_ten_minutes_of_audio():
    sr = 44100
    minutes = 10
    a = np.zeros(sr * 60 * minutes, np.float32)
    a[: sr * 300] = np.tile(sine(0.25, 1.0, sr, 441.0), 300)  # five loud minutes, then silence
    wave = Waveform(a[:, None], sr)
    lv = wave.levels
    assert len(lv.block_min) == math.ceil(len(a) / BLOCK_FRAMES)
    s = wave.summary()
    assert "10:00 long, mono, 44100 Hz" in s and "sample peak -12.0 dBFS" in s
    starts, db = lv.passages()
    assert starts[np.argmax(db)] < 300 - 3 and starts[np.argmin(db)] >= 300
    assert re.search(r"loudest passage \d:\d\d(\.\d)?–\d:\d\d(\.\d)? \(-15\.1 dB RMS\)", s)
    # blocks straddling 5:00 still hold sound: the first silent window starts just after
    assert "quietest passage 5:00.5–5:03.5 (silence)" in s


def test_waveform_widget_draws_keys_and_playhead():
    sr = 8000
    a = np.concatenate([sine(0.5, 4.0, sr), np.zeros(4 * sr, np.float32)])
    wave = Waveform(a, sr)

    async def body(pilot):
        H, W = wave.size.height, wave.grid_width
        assert (H, W) == (6, SIZE[0] - 2 - GUTTER)
        assert text(wave, 0).startswith("time┤0:00")
        # 4 envelope rows: the sine's half fills the middle two, the silence a half cell
        half = W // 2
        assert text(wave, 2)[GUTTER : GUTTER + half - 2] == "█" * (half - 2)
        assert text(wave, 3)[GUTTER : GUTTER + half - 2] == "█" * (half - 2)
        assert text(wave, 3)[GUTTER + half + 2 :] == "▀" * (W - half - 2)
        assert text(wave, 2)[GUTTER + half + 2 :].strip() == ""
        assert text(wave, 1)[GUTTER:].strip() == ""
        strip = text(wave, H - 1)
        assert strip.startswith(" RMS┤") and strip[GUTTER] == level_text(np.array([-9.03]))
        assert strip[-1] == " "
        wave.focus()
        await pilot.press("plus")
        assert wave.zoom == 1 and wave.scroll_s == pytest.approx(2.0)
        await pilot.press("l")
        assert wave.scroll_s == pytest.approx(3.0)
        await pilot.press("home")
        assert wave.scroll_s == 0.0
        await pilot.press("end")
        assert wave.scroll_s == pytest.approx(4.0)
        await pilot.press("minus")
        assert wave.zoom == 0 and wave.scroll_s == 0.0
        wave.playhead_s = 2.0
        await pilot.pause()
        assert wave.playhead_column() == W // 4
        assert text(wave, 0)[GUTTER + W // 4] == "▼"
        assert "playhead: 0:02" in wave.summary()

    drive(One(wave), body)


# -------------------------------------------------------------------------------------------
# Score view


def _score_data():
    score = make_score(
        [
            ("Soprano", 0, [(0, 1, 64, 80), (0, 1, 67, 80), (1, 1, 65, 80), (4, 2, 62, 80)]),
            ("Bass", 32, [(8, 4, 43, 80)]),
        ],
        tempos=((0, 96.0),),
        meters=((0, 3, 4),),
    )
    score.key_signatures.append(symusic.KeySignature(0, 0, 0))
    return roll_data(score)


def test_score_view_falls_back_to_text(tmp_path):
    from PIL import Image

    png = tmp_path / "score.png"
    Image.new("RGB", (40, 20), "white").save(png)
    data = _score_data()
    assert first_bars(data, 4) == [
        "Soprano: | E4+G4 F4 | D4 | – | – |",
        "Bass: | – | – | G2 | – |",
    ]
    view = ScoreView(png, data)

    async def body(pilot):
        assert view.mode == "text"  # the test terminal shows no pictures
        shown = str(view.query_one(".score-text").content)
        assert "key: C major" in shown and "meter: 3/4" in shown and "96 quarter notes" in shown
        assert "Bass: 1 note, G2–G2" in shown and "Soprano: | E4+G4 F4 | D4 |" in shown
        assert not view.query(".score-image")

    drive(One(view), body)
    # where the terminal shows pixels the picture is used, never cells unless allowed
    assert ScoreView(png, data, support="sixel").mode == "image"
    assert ScoreView(png, data, support="tgp").mode == "image"
    assert ScoreView(png, data, support="halfcell").mode == "text"
    assert ScoreView(png, data, support="halfcell", allow_cells=True).mode == "image"
    assert ScoreView(tmp_path / "absent.png", data, support="sixel").mode == "text"
    assert ScoreView(None, None).summary() == "no score yet"


def test_every_widget_names_itself_and_describes_its_keys():
    from textual.binding import Binding

    for cls in (PianoRoll, ParameterLanes, Waveform, ScoreView):
        assert cls.HELP_NAME and "DEFAULT_CSS" in vars(cls)
        bindings = [b if isinstance(b, Binding) else Binding(*b) for b in cls.BINDINGS]
        assert bindings and all(b.description for b in bindings), cls
    keys = {b.description for b in PianoRoll.BINDINGS}
    assert {"Earlier", "Later", "Higher", "Lower", "Zoom in (time)", "Zoom in (pitch)"} <= keys


# -------------------------------------------------------------------------------------------
# Snapshots


class Studio(App):
    """The piano roll, its lanes and the waveform, as the Make screen stacks them."""

    CSS = "PianoRoll { height: 1fr; } Waveform { height: 7; }"

    def compose(self):
        data = two_parts(bars=8)
        sr = 8000
        a = np.concatenate([sine(0.5, 4.0, sr), sine(0.1, 4.0, sr), np.zeros(8 * sr, np.float32)])
        yield PianoRoll(data, bar_width=8)
        yield ParameterLanes(data, bar_width=8)
        yield Waveform(a, sr)

    def on_mount(self) -> None:
        self.query_one(PianoRoll).playhead_q = 6.0
        self.query_one(Waveform).playhead_s = 3.0
        self.query_one(PianoRoll).focus()


def test_snapshot_roll_lanes_waveform(snap_compare):
    assert snap_compare(Studio(), terminal_size=SIZE)


def test_snapshot_after_zoom_and_pan(snap_compare):
    assert snap_compare(Studio(), press=["minus", "l", "left_square_bracket"], terminal_size=SIZE)
