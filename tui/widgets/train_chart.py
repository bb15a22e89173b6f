"""A live line chart of a training run (textual-plotext), redrawn at most `REDRAW_HZ` a second.

`TrainChart` holds named series of (step, value) points. `add` only appends and marks the
chart out of date; a timer draws it again when it is, so a run that reports every few
milliseconds costs at most `REDRAW_HZ` redraws a second, and the last point always shows
within ``1 / REDRAW_HZ`` seconds (`flush` draws at once, e.g. when the run ends). ``s`` says
what it shows (the latest, lowest and first value of each series), for screen readers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from textual.binding import Binding
from textual_plotext import PlotextPlot

from tui.widgets._bars import Says

REDRAW_HZ = 4.0  # at most this many redraws a second while points arrive
REDUCED_REDRAW_HZ = 1.0  # with reduced motion
MAX_POINTS = 2000  # a longer series is thinned to this many points for drawing (every k-th)

# Okabe-Ito colours (safe for the common colour-blindness types), in series order; each
# series also has its own marker, so they differ without colour too.
SERIES_COLOURS = ((86, 180, 233), (230, 159, 0), (0, 158, 115), (204, 121, 167))
SERIES_MARKERS = ("braille", "dot", "hd", "fhd")


@dataclass
class Series:
    """One line: its points (x ascending as they arrive) and how it is drawn."""

    label: str
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    scatter: bool = False  # points, not a line (a few values, e.g. validation)


def thinned(xs: list[float], ys: list[float], limit: int = MAX_POINTS):
    """At most ``limit`` points of a series (every k-th, and always the last)."""
    if len(xs) <= limit:
        return xs, ys
    k = math.ceil(len(xs) / limit)
    idx = list(range(0, len(xs), k))
    if idx[-1] != len(xs) - 1:
        idx.append(len(xs) - 1)
    return [xs[i] for i in idx], [ys[i] for i in idx]


class TrainChart(Says, PlotextPlot):
    """Lines of values against the training step (loss, learning rate …)."""

    HELP_NAME = "Training charts"
    DEFAULT_CSS = """
    TrainChart { height: 1fr; min-height: 6; }
    TrainChart:focus { border: round $accent; }
    """
    BINDINGS = [Binding("s", "say", "Say what it shows", show=False)]

    can_focus = True

    def __init__(self, title: str, *, y_label: str = "", log_y: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.chart_title = title
        self.y_label = y_label
        self.log_y = log_y
        self.series: dict[str, Series] = {}
        self.dirty = False
        self.redraws = 0  # how many times the plot was built again (tests check the pace)
        self.drawn: dict[str, tuple[float, float]] = {}  # the last point drawn of each series
        self._draw()

    def on_mount(self) -> None:
        super().on_mount()
        hz = REDUCED_REDRAW_HZ if getattr(self.app, "reduced_motion", False) else REDRAW_HZ
        self.set_interval(1.0 / hz, self._redraw_if_dirty)

    # -- the data --
    def add_series(self, name: str, label: str, *, scatter: bool = False) -> None:
        self.series[name] = Series(label, scatter=scatter)

    def add(self, name: str, x: float, y: float) -> None:
        """Append a point to series ``name``; drawn at the next tick (not now)."""
        if y is None or not math.isfinite(y):
            return
        s = self.series.setdefault(name, Series(name))
        s.xs.append(float(x))
        s.ys.append(float(y))
        self.dirty = True

    def clear(self) -> None:
        for s in self.series.values():
            s.xs.clear()
            s.ys.clear()
        self.flush()

    def last(self, name: str) -> tuple[float, float] | None:
        s = self.series.get(name)
        return (s.xs[-1], s.ys[-1]) if s and s.xs else None

    # -- drawing --
    def flush(self) -> None:
        """Draw now (whether or not a point came since the last time)."""
        self._draw()
        self.refresh()

    def _redraw_if_dirty(self) -> None:
        if self.dirty:
            self.flush()

    def _draw(self) -> None:
        self.dirty = False
        self.redraws += 1
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.chart_title)
        plt.xlabel("step")
        if self.y_label:
            plt.ylabel(self.y_label)
        drawn = False
        self.drawn = {}
        steps = set()
        for i, (name, s) in enumerate(self.series.items()):
            if not s.xs:
                continue
            xs, ys = thinned(s.xs, s.ys)
            steps.update(xs)
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            marker = SERIES_MARKERS[i % len(SERIES_MARKERS)]
            draw = plt.scatter if s.scatter or len(xs) == 1 else plt.plot
            draw(xs, ys, label=s.label, color=colour, marker=marker)
            self.drawn[name] = (xs[-1], ys[-1])
            drawn = True
        if self.log_y and drawn:
            plt.yscale("log")
        if not drawn:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
        elif len(steps) == 1:  # one step so far (the first validation): from it, not around it
            plt.xlim(min(steps), min(steps) + 1)

    # -- words --
    def summary(self) -> str:
        """Each series: its points, first, lowest and latest value."""
        parts = []
        for s in self.series.values():
            if not s.xs:
                parts.append(f"{s.label}: no points yet")
                continue
            low = min(range(len(s.ys)), key=s.ys.__getitem__)
            parts.append(
                f"{s.label}: {len(s.xs)} points; {_num(s.ys[0])} at step {s.xs[0]:.0f}, "
                f"lowest {_num(s.ys[low])} at step {s.xs[low]:.0f}, "
                f"latest {_num(s.ys[-1])} at step {s.xs[-1]:.0f}"
            )
        return f"{self.chart_title}: " + "; ".join(parts) if parts else f"{self.chart_title}: empty"


def _num(v: float) -> str:
    return f"{v:.2e}" if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4) else f"{v:.4f}"
