"""The piano roll: a piece's notes on a grid of bars (across) and pitches (down).

Each part has its colour (the Okabe-Ito palette unless ``palette`` is "classic") and its own
fill (█ ░ ▚ ▓ …), so parts are told apart without colour too. Note names label the pitch rows
at the left, bar numbers the top. The playhead is a column in reverse video (▼ on top); while
a piece is being written, the bars still to come are dim dots after a ✎ mark. `summary`
says the same in words for plain mode and screen readers.
"""

from __future__ import annotations

import math

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.reactive import reactive
from textual.strip import Strip

from tui.settings import PALETTES
from tui.widgets._bars import BarGrid, Says, part_colour, part_glyph
from tui.widgets.roll import GUTTER, RollData, note_name

SEMITONES_PER_ROW = (1, 2, 3, 4, 6, 12)  # the pitch zoom levels
LOWEST_PITCH, HIGHEST_PITCH = 0, 127


class PianoRoll(Says, BarGrid):
    """The notes of a `RollData` (see the module docstring).

    Keys: ←/→ or h/l earlier/later, ↑/↓ or k/j higher/lower, Home/End, + and - zoom time,
    ] and [ zoom pitch, f follows the playhead.
    """

    HELP_NAME = "Piano roll"
    DEFAULT_CSS = """
    PianoRoll {
        height: 1fr;
        min-height: 5;
        border: round $panel;
        border-title-color: $foreground;
    }
    PianoRoll:focus {
        border: round $accent;
        border-title-style: bold;
    }
    """
    BINDINGS = [  # the grid's own too: the help screen reads this list
        *BarGrid.BINDINGS,
        Binding("up,k", "pan_pitch(1)", "Higher", show=False),
        Binding("down,j", "pan_pitch(-1)", "Lower", show=False),
        Binding("right_square_bracket", "zoom_pitch(-1)", "Zoom in (pitch)"),
        Binding("left_square_bracket", "zoom_pitch(1)", "Zoom out (pitch)"),
        Binding("f", "toggle_follow", "Follow playhead", show=False),
        Binding("s", "say", "Say what it shows", show=False),
    ]

    palette: reactive[str] = reactive(PALETTES[0])
    pitch_top: reactive[int] = reactive(72)
    """The highest pitch of the top row."""
    semitones_per_row: reactive[int] = reactive(1)

    def __init__(self, data: RollData | None = None, *, palette: str = PALETTES[0], **kwargs):
        super().__init__(data, **kwargs)
        self.set_reactive(PianoRoll.palette, palette)
        self._fit_pending = True
        self.border_title = self.HELP_NAME

    # -- the view --
    @property
    def grid_rows(self) -> int:
        return max(self.size.height - 1, 0)

    def data_changed(self) -> None:
        self._fit_pending = True
        self.fit_pitch()

    def on_resize(self) -> None:
        if self._fit_pending:
            self.fit_pitch()

    def fit_pitch(self) -> None:
        """Zoom and scroll the pitches so every note shows (when the height allows)."""
        rows = self.grid_rows
        if rows <= 0:
            return
        self._fit_pending = False
        rng = self._data.pitch_range or (60, 72)
        lo, hi = rng
        spr = next(
            (s for s in SEMITONES_PER_ROW if math.ceil((hi - lo + 1) / s) <= rows),
            SEMITONES_PER_ROW[-1],
        )
        self.semitones_per_row = spr
        spare = rows * spr - (hi - lo + 1)
        self.pitch_top = hi + max(spare // 2, 0)

    def validate_pitch_top(self, value: int) -> int:
        return max(LOWEST_PITCH, min(int(value), HIGHEST_PITCH))

    def validate_semitones_per_row(self, value: int) -> int:
        return min(SEMITONES_PER_ROW, key=lambda s: abs(s - value))

    def row_of(self, pitch: int) -> int:
        """The grid row (0 at the top) that shows ``pitch`` (may be outside the view)."""
        return (self.pitch_top - pitch) // self.semitones_per_row

    def row_pitch(self, row: int) -> int:
        """The lowest pitch of grid row ``row``."""
        return self.pitch_top - (row + 1) * self.semitones_per_row + 1

    def action_pan_pitch(self, rows: int) -> None:
        self._fit_pending = False
        self.pitch_top += rows * self.semitones_per_row

    def action_zoom_pitch(self, step: int) -> None:
        self._fit_pending = False
        i = SEMITONES_PER_ROW.index(self.semitones_per_row)
        middle = self.pitch_top - self.grid_rows * self.semitones_per_row // 2
        spr = SEMITONES_PER_ROW[max(0, min(len(SEMITONES_PER_ROW) - 1, i + step))]
        self.semitones_per_row = spr
        self.pitch_top = middle + self.grid_rows * spr // 2

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        announce = getattr(self.app, "announce", None)
        if announce:
            announce("follow playhead on" if self.follow else "follow playhead off")

    def watch_pitch_top(self) -> None:
        self.refresh()

    def watch_semitones_per_row(self) -> None:
        self.refresh()

    def watch_palette(self) -> None:
        self.refresh()

    # -- drawing --
    def cell_parts(self) -> np.ndarray:
        """[rows, columns] index of the part drawn in each grid cell (-1: none); the first
        part wins where parts overlap."""
        R, W = self.grid_rows, self.grid_width
        grid = np.full((R, W), -1, dtype=np.int64)
        if R == 0 or W == 0:
            return grid
        for i in range(len(self._data.parts) - 1, -1, -1):
            notes = self._data.parts[i].notes
            if not len(notes):
                continue
            x0 = self.column_of(notes[:, 0])
            x1 = self.column_of(notes[:, 0] + notes[:, 1])
            c0 = np.floor(x0).astype(np.int64)
            c1 = np.maximum(np.ceil(x1 - 1e-9).astype(np.int64), c0 + 1)
            rows = (self.pitch_top - notes[:, 2].astype(np.int64)) // self.semitones_per_row
            keep = (c1 > 0) & (c0 < W) & (rows >= 0) & (rows < R)
            for r, a, b in zip(rows[keep], c0[keep], c1[keep], strict=True):
                grid[r, max(a, 0) : min(b, W)] = i
        return grid

    def render_line(self, y: int) -> Strip:
        if y == 0:
            return self.header_strip("bar")
        lines = self._lines()
        if y - 1 >= len(lines):
            return Strip.blank(self.size.width)
        return with_playhead(lines[y - 1], self.playhead_column())

    def _lines(self) -> list[Strip]:
        key = (
            id(self._data),
            self.size,
            self.scroll_bar,
            self.bar_width,
            self.pitch_top,
            self.semitones_per_row,
            self.palette,
            self.has_focus,
            self.app.theme if self.is_attached else None,
        )
        if getattr(self, "_cache_key", None) != key:
            self._cache_key = key
            self._cache = self._draw()
        return self._cache

    def _draw(self) -> list[Strip]:
        R, W = self.grid_rows, self.grid_width
        grid = self.cell_parts()
        base = self.base_style()
        dim = base + Style(dim=True)
        part_styles = [
            base + Style(color=part_colour(self.palette, i)) for i in range(len(self._data.parts))
        ]
        bar_cols = {x for _, x in self.bar_columns()} if self.bar_width >= 2 else set()
        wc = self.written_column()
        out = []
        for r in range(R):
            low = self.row_pitch(r)
            label = note_name(low) if 0 <= low <= 127 else ""
            black = low % 12 in (1, 3, 6, 8, 10)
            is_c = self.semitones_per_row == 1 and low % 12 == 0
            segs = [Segment(label.rjust(GUTTER - 1) + "┤", dim if black else base)]
            row = grid[r]
            for x in range(W):
                i = int(row[x])
                if wc is not None and x >= wc and i < 0:
                    char, style = ("┊" if x == wc else "·"), dim
                elif i >= 0:
                    char, style = part_glyph(i), part_styles[i]
                elif x in bar_cols:
                    char, style = ("┼" if is_c else "│"), dim
                elif is_c:
                    char, style = "─", dim
                else:
                    char, style = " ", base
                segs.append(Segment(char, style))
            out.append(Strip(segs, GUTTER + W).simplify())
        return out

    # -- words --
    def summary(self) -> str:
        """The piece and the view in words (plain mode, screen readers)."""
        d = self._data
        lines = [describe_roll(d)]
        last = min(self.scroll_bar + max(int(self.visible_bars), 1), d.bars)
        view = f"showing bars {self.scroll_bar + 1}–{last}"
        if self.grid_rows:
            top = min(self.pitch_top, 127)
            bottom = max(self.row_pitch(self.grid_rows - 1), 0)
            view += f", pitches {note_name(bottom)}–{note_name(top)}"
        lines.append(view)
        if self.playhead_q is not None:
            bar = d.bar_position(self.playhead_q)
            b = d.bar_at(self.playhead_q)
            beat = self.playhead_q - d.bar_starts[b]
            lines.append(
                f"playhead: bar {int(bar) + 1} beat {beat + 1:.1f}, "
                f"{format_time(d.seconds_at(self.playhead_q))}"
            )
        return "\n".join(lines)


def with_playhead(strip: Strip, column: int | None) -> Strip:
    """``strip`` with the cell of grid column ``column`` in reverse video (the playhead is
    drawn over the cached roll: moving it redraws no notes)."""
    if column is None:
        return strip
    x = GUTTER + column
    if not 0 <= x < strip.cell_length:
        return strip
    before, cell, after = strip.divide([x, x + 1, strip.cell_length])
    cell = Strip(
        [Segment(s.text, (s.style or Style()) + Style(reverse=True)) for s in cell],
        cell.cell_length,
    )
    return Strip.join([before, cell, after])


def format_time(seconds: float) -> str:
    """Seconds as m:ss (or m:ss.s under a minute's precision needs)."""
    seconds = max(float(seconds), 0.0)
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:04.1f}" if s != int(s) else f"{int(m)}:{int(s):02d}"


def describe_roll(d: RollData) -> str:
    """Parts, ranges (note names), bars, tempo and notes per bar, in words."""
    bars = f"{d.bars} bar{'s' if d.bars != 1 else ''} of {d.meter}"
    tempi = sorted({round(float(t)) for t in d.tempo_qpm})
    tempo = f"{tempi[0]}" if len(tempi) == 1 else f"{tempi[0]}–{tempi[-1]}"
    head = f"{bars}, {tempo} quarter notes a minute, {format_time(d.length_s)} long"
    if d.bars_written is not None and d.bars_written < d.bars:
        head += f"; {d.bars_written} of {d.bars} bars written so far"
    if not d.parts:
        return head + "; no notes"
    lines = [head + f"; {d.note_count} notes, {d.note_count / d.bars:.1f} a bar"]
    for p in d.parts:
        lo, hi = p.pitch_range
        what = "drums" if p.is_drum else f"{note_name(lo)}–{note_name(hi)}"
        n = len(p.notes)
        lines.append(f"{p.name}: {n} note{'s' if n != 1 else ''}, {what}")
    return "\n".join(lines)
