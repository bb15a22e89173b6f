"""Parameter lanes: the velocity, tempo and density of each bar, as block sparklines on the
same bar grid as the piano roll (give both the same ``scroll_bar`` and ``bar_width``; each
posts ``ViewChanged``)."""

from __future__ import annotations

import math

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from tui.widgets._bars import BarGrid
from tui.widgets.roll import GUTTER, RollData

SPARKS = "▁▂▃▄▅▆▇█"
# (name, gutter label (4 characters at most), what the value is, its unit in words)
LANES = (
    ("velocity", "vel", "mean velocity", ""),
    ("tempo", "bpm", "tempo", " quarter notes a minute"),
    ("density", "dens", "notes a bar", ""),
)


FLAT = 1e-4  # a relative spread below this is no spread


def sparks(values: np.ndarray, lo: float, hi: float) -> list[str]:
    """One block character a value, ▁ at ``lo`` to █ at ``hi`` (a space for NaN; ▄ for every
    value when ``lo == hi``)."""
    out = []
    flat = hi - lo <= FLAT * max(1.0, abs(hi))  # MIDI's µs a beat: 66 BPM reads 65.99997
    for v in values:
        if not np.isfinite(v):
            out.append(" ")
        elif flat:
            out.append(SPARKS[3])
        else:
            i = int(round((v - lo) / (hi - lo) * (len(SPARKS) - 1)))
            out.append(SPARKS[max(0, min(i, len(SPARKS) - 1))])
    return out


def value_range(values: np.ndarray) -> tuple[float, float] | None:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    return float(finite.min()), float(finite.max())


class ParameterLanes(BarGrid):
    """Velocity, tempo and density rows, one sparkline block a bar, drawn across the bar's
    columns; each row's range is in the border's subtitle (and `summary`). Bars still to be
    written are dim dots. Keys: ←/→ earlier/later, Home/End, + and - zoom time."""

    HELP_NAME = "Parameter lanes"
    DEFAULT_CSS = """
    ParameterLanes {
        height: 5;
        border: round $panel;
    }
    ParameterLanes:focus {
        border: round $accent;
    }
    """

    def __init__(self, data: RollData | None = None, **kwargs):
        super().__init__(data, **kwargs)
        self.border_title = self.HELP_NAME
        self.data_changed()

    def data_changed(self) -> None:
        self.border_subtitle = " · ".join(
            f"{label} {_fmt(r[0])}–{_fmt(r[1])}" if r else f"{label} –"
            for (name, label, _, _) in LANES
            for r in [value_range(self.values(name))]
        )

    def values(self, lane: str) -> np.ndarray:
        """[bars] the values of ``lane`` ("velocity", "tempo" or "density")."""
        return np.asarray(getattr(self._data.bar_stats(), lane), dtype=np.float64)

    def lane_cells(self, lane: str) -> list[str]:
        """The characters of the lane's row right of the gutter."""
        vals = self.values(lane)
        r = value_range(vals) or (0.0, 0.0)
        marks = sparks(vals, *r)
        W = self.grid_width
        cells = [" "] * W
        written = self._data.bars_written
        for b, x in self.bar_columns():
            mark = "·" if written is not None and b >= written else marks[b]
            cells[x : min(x + self.bar_width, W)] = [mark] * (min(x + self.bar_width, W) - x)
        return cells

    def render_line(self, y: int) -> Strip:
        if y >= len(LANES):
            return Strip.blank(self.size.width, self.base_style())
        name, label, _, _ = LANES[y]
        base = self.base_style()
        dim = base + Style(dim=True)
        ph = self.playhead_column()
        segs = [Segment(label.rjust(GUTTER - 1) + "┤", dim)]
        for x, c in enumerate(self.lane_cells(name)):
            style = dim if c == "·" else base
            segs.append(Segment(c, style + Style(reverse=True) if x == ph else style))
        return Strip(segs, GUTTER + self.grid_width).simplify()

    def summary(self) -> str:
        """Each lane's range, and where it is highest and lowest, in words."""
        lines = []
        for name, _, what, unit in LANES:
            vals = self.values(name)
            r = value_range(vals)
            if r is None:
                lines.append(f"{what}: no notes")
                continue
            hi_bar = int(np.nanargmax(vals)) + 1
            lo_bar = int(np.nanargmin(vals)) + 1
            if r[0] == r[1]:
                lines.append(f"{what}: {_fmt(r[0])}{unit} in every bar")
            else:
                lines.append(
                    f"{what}: {_fmt(r[0])}–{_fmt(r[1])}{unit}, highest in bar {hi_bar}, "
                    f"lowest in bar {lo_bar}"
                )
        return "\n".join(lines)


def _fmt(v: float) -> str:
    return str(int(round(v))) if math.isclose(v, round(v), abs_tol=0.05) else f"{v:.1f}"
