"""What the widgets drawn on the bar grid share (the piano roll and the parameter lanes): the
part palettes and glyphs, and `BarGrid`, a widget whose columns are bars.

The grid's horizontal view is two numbers, the same in every `BarGrid`: ``scroll_bar`` (the
bar at the left edge, from 0) and ``bar_width`` (columns a bar, the zoom). Each bar is as wide
as every other whatever its meter, so widgets given the same two numbers line up column for
column; every one posts ``ViewChanged`` when they change, for a screen to keep the others in
step. Columns left of the grid (`GUTTER`) hold labels.
"""

from __future__ import annotations

import math

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from tui.settings import PALETTES
from tui.widgets.roll import GUTTER, RollData, empty_roll

# Part colours. Okabe & Ito (2008): told apart with the common colour-blindnesses (its black
# is a grey here, seen on dark themes). "classic" is matplotlib's tab10, as the pictures use.
PART_COLOURS = {
    "okabe-ito": (
        "#E69F00",
        "#56B4E9",
        "#009E73",
        "#F0E442",
        "#0072B2",
        "#D55E00",
        "#CC79A7",
        "#999999",
    ),
    "classic": (
        "#1F77B4",
        "#FF7F0E",
        "#2CA02C",
        "#D62728",
        "#9467BD",
        "#8C564B",
        "#E377C2",
        "#7F7F7F",
    ),
}
assert set(PART_COLOURS) == set(PALETTES)
# Each part's own fill, so parts are told apart without colour (NO_COLOR, monochrome
# terminals); neighbouring parts get fills far apart.
PART_GLYPHS = ("█", "░", "▚", "▓", "▄", "▒", "▀", "▞")

BAR_WIDTHS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)  # columns a bar, the time zoom levels
DEFAULT_BAR_WIDTH = 16  # a sixteenth note a column in 4/4


def part_colour(palette: str, i: int) -> str:
    colours = PART_COLOURS.get(palette, PART_COLOURS[PALETTES[0]])
    return colours[i % len(colours)]


def part_glyph(i: int) -> str:
    return PART_GLYPHS[i % len(PART_GLYPHS)]


# Moving along time, shared by every widget that shows time left to right (the bar grids and
# the waveform); each defines ``action_pan``, ``action_pan_to_start``/``_end`` and
# ``action_zoom_time``.
TIME_BINDINGS = [
    Binding("left,h", "pan(-1)", "Earlier", show=False),
    Binding("right,l", "pan(1)", "Later", show=False),
    Binding("home", "pan_to_start", "Start", show=False),
    Binding("end", "pan_to_end", "End", show=False),
    Binding("plus,equals_sign", "zoom_time(1)", "Zoom in (time)"),
    Binding("minus", "zoom_time(-1)", "Zoom out (time)"),
]


class Says:
    """A widget that can say what it shows (``summary()``) on the ``s`` key."""

    def action_say(self) -> None:
        """Announce `summary` (plain mode's announcer, and a notice)."""
        text = self.summary()
        announce = getattr(self.app, "announce", None)
        if announce:
            announce(text.replace("\n", "; "))
        self.notify(text, timeout=8)


class BarGrid(Widget):
    """A widget whose columns right of `GUTTER` are bars of a `RollData` (see the module
    docstring). Subclasses draw `grid_lines`; this class keeps the view and its keys."""

    BINDINGS = TIME_BINDINGS

    can_focus = True
    scroll_bar: reactive[int] = reactive(0)
    bar_width: reactive[int] = reactive(DEFAULT_BAR_WIDTH)
    playhead_q: reactive[float | None] = reactive(None)
    """Where playback is, in quarters (None: no playhead)."""
    follow: reactive[bool] = reactive(True)
    """Scroll to keep the playhead in view."""

    class ViewChanged(Message):
        """The horizontal view changed (pan or zoom): give the same numbers to the others."""

        def __init__(self, grid: BarGrid, scroll_bar: int, bar_width: int) -> None:
            super().__init__()
            self.grid = grid
            self.scroll_bar = scroll_bar
            self.bar_width = bar_width

        @property
        def control(self) -> BarGrid:
            return self.grid

    def __init__(
        self,
        data: RollData | None = None,
        *,
        bar_width: int = DEFAULT_BAR_WIDTH,
        scroll_bar: int = 0,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._data = data or empty_roll()
        self.set_reactive(BarGrid.bar_width, bar_width)
        self.set_reactive(BarGrid.scroll_bar, scroll_bar)

    # -- the data --
    @property
    def data(self) -> RollData:
        return self._data

    @data.setter
    def data(self, data: RollData | None) -> None:
        self._data = data or empty_roll()
        self.scroll_bar = self.validate_scroll_bar(self.scroll_bar)
        self.data_changed()
        self.refresh()

    def data_changed(self) -> None:
        """Called when new data is given (subclasses refit their views)."""

    # -- geometry --
    @property
    def grid_width(self) -> int:
        return max(self.size.width - GUTTER, 0)

    @property
    def visible_bars(self) -> float:
        return self.grid_width / self.bar_width

    def column_of(self, q):
        """Quarters → grid column (from 0 at the gutter's right edge), fractional."""
        import numpy as np

        return (np.asarray(self._data.bar_position(q)) - self.scroll_bar) * self.bar_width

    def bar_columns(self) -> list[tuple[int, int]]:
        """(bar index, its first grid column) of each bar that starts in view."""
        out = []
        first = max(self.scroll_bar, 0)
        for b in range(first, self._data.bars):
            x = (b - self.scroll_bar) * self.bar_width
            if x >= self.grid_width:
                break
            out.append((b, x))
        return out

    def playhead_column(self) -> int | None:
        if self.playhead_q is None:
            return None
        x = int(math.floor(float(self.column_of(self.playhead_q))))
        return x if 0 <= x < self.grid_width else None

    def written_column(self) -> int | None:
        """The first grid column of the bars still to be written (None: all written)."""
        d = self._data
        if d.bars_written is None or d.bars_written >= d.bars:
            return None
        return (d.bars_written - self.scroll_bar) * self.bar_width

    # -- the view --
    def validate_scroll_bar(self, value: int) -> int:
        return max(0, min(int(value), self._data.bars - 1))

    def validate_bar_width(self, value: int) -> int:
        return min(BAR_WIDTHS, key=lambda w: abs(w - value))

    def watch_scroll_bar(self) -> None:
        self._view_changed()

    def watch_bar_width(self) -> None:
        self._view_changed()

    def _view_changed(self) -> None:
        self.post_message(self.ViewChanged(self, self.scroll_bar, self.bar_width))
        self.refresh()

    def watch_playhead_q(self, q: float | None) -> None:
        if q is None or not self.follow or not self.size.width:
            return
        pos = self._data.bar_position(q)
        if pos < self.scroll_bar or pos >= self.scroll_bar + max(self.visible_bars, 1):
            self.scroll_bar = int(math.floor(pos))

    def set_view(self, scroll_bar: int, bar_width: int) -> None:
        """Show the bars as another grid does (from its ``ViewChanged``)."""
        self.bar_width = bar_width
        self.scroll_bar = scroll_bar

    def action_pan(self, bars: int) -> None:
        self.scroll_bar += bars * max(1, int(self.visible_bars) // 4 if self.bar_width < 8 else 1)

    def action_pan_to_start(self) -> None:
        self.scroll_bar = 0

    def action_pan_to_end(self) -> None:
        self.scroll_bar = self._data.bars - max(int(self.visible_bars), 1)

    def action_zoom_time(self, step: int) -> None:
        i = BAR_WIDTHS.index(self.bar_width)
        self.bar_width = BAR_WIDTHS[max(0, min(len(BAR_WIDTHS) - 1, i + step))]

    # -- drawing helpers --
    def base_style(self) -> Style:
        return self.rich_style

    def header_strip(self, label: str = "") -> Strip:
        """Bar numbers over their first columns (as many as fit), the playhead as ▼ and the
        first bar still to be written marked ✎."""
        w = self.grid_width
        cells = [" "] * w
        taken = -1
        for b, x in self.bar_columns():
            text = str(b + 1)
            if x > taken and x + len(text) <= w:
                cells[x : x + len(text)] = list(text)
                taken = x + len(text)
        wc = self.written_column()
        if wc is not None and 0 <= wc < w:
            cells[wc] = "✎"
        ph = self.playhead_column()
        if ph is not None:
            cells[ph] = "▼"
        base = self.base_style()
        segs = [Segment(label[:GUTTER].ljust(GUTTER), base + Style(dim=True))]
        segs.append(Segment("".join(cells), base + Style(bold=True)))
        return Strip(segs, GUTTER + w)
