"""The waveform of a piece's audio, with a loudness strip under it.

The top shows the peak envelope: for each column, the lowest and highest sample of any
channel over the column's stretch of time, drawn with half-block characters (two steps a
row, full scale at the edges). The strip below is the short-term **RMS level** of each column,
in dB relative to full scale (dBFS: a full-scale square wave reads 0 dB, a full-scale sine
−3 dB), measured over the column's time or `LOUDNESS_WINDOW_S` centred on it, whichever is
longer. It is a plain RMS level, *not* loudness in LUFS (no K-weighting, no gating; the
pictures written beside a piece give LUFS), and is drawn as ▁…█ from `FLOOR_DB` to 0 dB.

`AudioLevels` does the numbers once per audio, in `BLOCK_FRAMES` blocks reduced with numpy
reshapes, so any view of any length costs the same; `Waveform` draws them.
"""

from __future__ import annotations

import math

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from tui.widgets._bars import TIME_BINDINGS, Says
from tui.widgets.pianoroll import format_time
from tui.widgets.roll import GUTTER

BLOCK_FRAMES = 256  # frames a block of the precomputed levels (5.8 ms at 44.1 kHz)
LOUDNESS_WINDOW_S = 0.4  # the shortest time an RMS level is measured over
PASSAGE_S = 3.0  # the loudest and quietest passages the summary names are this long
PASSAGE_HOP_S = 0.5
FLOOR_DB = -60.0  # the loudness strip's bottom; quieter is drawn as nothing
SILENCE_DB = -120.0  # the level given to digital silence
SPARKS = "▁▂▃▄▅▆▇█"
MAX_ZOOM = 16  # the view shows at least 1/2**16 of the audio


def to_db(rms):
    """Linear level → dBFS (`SILENCE_DB` for zero)."""
    x = np.asarray(rms, np.float64)
    with np.errstate(divide="ignore"):
        db = np.where(x > 0, 20.0 * np.log10(np.maximum(x, 1e-300)), SILENCE_DB)
    return np.maximum(db, SILENCE_DB)


class AudioLevels:
    """Peaks and energies of ``audio`` ([frames, channels] or [frames], float, full scale 1.0)
    in blocks of `BLOCK_FRAMES`, computed once (O(frames), one pass of reshapes)."""

    def __init__(self, audio: np.ndarray, sample_rate: int):
        a = np.asarray(audio, dtype=np.float32)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"audio must be [frames, channels], not {a.shape}")
        self.audio = a
        self.sample_rate = int(sample_rate)
        self.frames, self.channels = a.shape
        B = BLOCK_FRAMES
        full = self.frames // B
        mins, maxs, sq, counts = [], [], [], []
        if full:
            blocks = a[: full * B].reshape(full, B * self.channels)
            mins.append(blocks.min(axis=1))
            maxs.append(blocks.max(axis=1))
            sq.append(np.einsum("ij,ij->i", blocks, blocks, dtype=np.float64))
            counts.append(np.full(full, B * self.channels, dtype=np.float64))
        if self.frames > full * B:
            tail = a[full * B :].reshape(-1)
            mins.append(tail.min(keepdims=True))
            maxs.append(tail.max(keepdims=True))
            sq.append(np.array([np.dot(tail.astype(np.float64), tail)]))
            counts.append(np.array([float(tail.size)]))
        self.block_min = np.concatenate(mins) if mins else np.zeros(0, np.float32)
        self.block_max = np.concatenate(maxs) if maxs else np.zeros(0, np.float32)
        sq_all = np.concatenate(sq) if sq else np.zeros(0)
        n_all = np.concatenate(counts) if counts else np.zeros(0)
        self._cum_sq = np.concatenate([[0.0], np.cumsum(sq_all)])
        self._cum_n = np.concatenate([[0.0], np.cumsum(n_all)])

    @property
    def length_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def peak_db(self) -> float:
        """The sample peak in dBFS."""
        if not self.frames:
            return SILENCE_DB
        peak = max(abs(float(self.block_min.min())), abs(float(self.block_max.max())))
        return float(to_db(peak))

    def rms_db(self, start_s, end_s):
        """The RMS level in dBFS from ``start_s`` to ``end_s`` (arrays or floats), to the
        nearest block."""
        n_blocks = len(self.block_min)
        b0 = np.clip(np.floor(np.asarray(start_s) * self.sample_rate / BLOCK_FRAMES), 0, n_blocks)
        b1 = np.clip(np.ceil(np.asarray(end_s) * self.sample_rate / BLOCK_FRAMES), 0, n_blocks)
        b0, b1 = b0.astype(np.int64), np.maximum(b1.astype(np.int64), b0.astype(np.int64))
        n = self._cum_n[b1] - self._cum_n[b0]
        with np.errstate(invalid="ignore", divide="ignore"):
            ms = np.where(n > 0, (self._cum_sq[b1] - self._cum_sq[b0]) / np.maximum(n, 1), 0.0)
        db = to_db(np.sqrt(ms))
        return float(db) if db.ndim == 0 else db

    def columns(self, start_s: float, end_s: float, n: int):
        """(min [n], max [n], RMS dBFS [n]) of ``n`` equal columns from ``start_s`` to
        ``end_s``; columns past the end are NaN (min, max) and `SILENCE_DB`."""
        edges = np.linspace(start_s, end_s, n + 1)
        f = np.round(edges * self.sample_rate).astype(np.int64)
        per_col = (end_s - start_s) * self.sample_rate / max(n, 1)
        mn = np.full(n, np.nan)
        mx = np.full(n, np.nan)
        inside = (f[:-1] < self.frames) & (f[1:] > 0)
        if per_col >= BLOCK_FRAMES:
            lo_src, hi_src, unit, count = self.block_min, self.block_max, BLOCK_FRAMES, None
        else:  # zoomed in past the blocks: read the samples in view only
            f0 = max(int(f[0]), 0)
            f1 = min(int(f[-1]) + 1, self.frames)
            seg = self.audio[f0:f1]
            lo_src, hi_src, unit = seg.min(axis=1), seg.max(axis=1), 1
            f = f - f0
            count = len(seg)
        size = len(lo_src) if count is None else count
        if size and inside.any():
            i0 = np.clip(f[:-1] // unit, 0, size - 1)
            i1 = np.clip(-(-f[1:] // unit), 1, size)
            i1 = np.maximum(i1, i0 + 1)
            cols = np.nonzero(inside)[0]
            starts = i0[cols]
            # Each column reduces from its start to the next column's start (columns are
            # contiguous); the last one would run to the end of the audio, so it is redone.
            lo = np.minimum.reduceat(lo_src, starts)
            hi = np.maximum.reduceat(hi_src, starts)
            last = cols[-1]
            lo_last = lo_src[i0[last] : i1[last]].min()
            hi_last = hi_src[i0[last] : i1[last]].max()
            lo[-1], hi[-1] = lo_last, hi_last
            mn[cols], mx[cols] = lo, hi
        centre = (edges[:-1] + edges[1:]) / 2
        half = max((end_s - start_s) / max(n, 1), LOUDNESS_WINDOW_S) / 2
        db = np.where(inside, self.rms_db(centre - half, centre + half), SILENCE_DB)
        return mn, mx, db

    def passages(self, window_s: float = PASSAGE_S, hop_s: float = PASSAGE_HOP_S):
        """(start times [K], RMS dBFS [K]) of windows of ``window_s`` every ``hop_s`` (one
        window over everything when the audio is shorter)."""
        if self.length_s <= window_s:
            return np.array([0.0]), np.array([self.rms_db(0.0, self.length_s)])
        starts = np.arange(0.0, self.length_s - window_s + 1e-9, hop_s)
        return starts, np.atleast_1d(self.rms_db(starts, starts + window_s))


class Waveform(Says, Widget):
    """The audio's peak envelope and RMS level strip (see the module docstring), a time
    axis on top, the playhead as a reversed column.

    Keys: ←/→ or h/l earlier/later, Home/End, + and - zoom time.
    """

    HELP_NAME = "Waveform"
    DEFAULT_CSS = """
    Waveform {
        height: 8;
        min-height: 5;
        border: round $panel;
    }
    Waveform:focus {
        border: round $accent;
    }
    Waveform > .waveform--wave { color: $primary; }
    Waveform > .waveform--level { color: $secondary; }
    """
    COMPONENT_CLASSES = {"waveform--wave", "waveform--level"}
    BINDINGS = [*TIME_BINDINGS, Binding("s", "say", "Say what it shows", show=False)]

    can_focus = True
    zoom: reactive[int] = reactive(0)
    """The view shows 1/2**zoom of the audio."""
    scroll_s: reactive[float] = reactive(0.0)
    """The time at the left edge, in seconds."""
    playhead_s: reactive[float | None] = reactive(None)
    follow: reactive[bool] = reactive(True)

    def __init__(
        self,
        audio: np.ndarray | None = None,
        sample_rate: int = 44100,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = self.HELP_NAME
        self.levels: AudioLevels | None = None
        if audio is not None:
            self.set_audio(audio, sample_rate)

    def set_audio(self, audio: np.ndarray | None, sample_rate: int = 44100) -> None:
        """Show ``audio`` ([frames, channels] float, full scale 1.0); None clears."""
        self.levels = AudioLevels(audio, sample_rate) if audio is not None else None
        self.scroll_s = 0.0
        if self.levels is not None:
            self.border_subtitle = f"peak {self.levels.peak_db:.1f} dBFS · RMS strip"
        self.refresh()

    # -- the view --
    @property
    def length_s(self) -> float:
        return self.levels.length_s if self.levels else 0.0

    @property
    def span_s(self) -> float:
        """Seconds in view."""
        return max(self.length_s, 1e-3) / 2**self.zoom

    @property
    def grid_width(self) -> int:
        return max(self.size.width - GUTTER, 0)

    def validate_zoom(self, value: int) -> int:
        return max(0, min(int(value), MAX_ZOOM))

    def validate_scroll_s(self, value: float) -> float:
        return max(0.0, min(float(value), max(self.length_s - self.span_s, 0.0)))

    def watch_zoom(self) -> None:
        self.scroll_s = self.scroll_s  # clamp to the new span

    def watch_playhead_s(self, s: float | None) -> None:
        if s is None or not self.follow:
            return
        if not self.scroll_s <= s < self.scroll_s + self.span_s:
            self.scroll_s = s

    def playhead_column(self) -> int | None:
        if self.playhead_s is None or not self.grid_width:
            return None
        x = int(math.floor((self.playhead_s - self.scroll_s) / self.span_s * self.grid_width))
        return x if 0 <= x < self.grid_width else None

    def action_pan(self, step: int) -> None:
        self.scroll_s += step * self.span_s / 4

    def action_pan_to_start(self) -> None:
        self.scroll_s = 0.0

    def action_pan_to_end(self) -> None:
        self.scroll_s = self.length_s

    def action_zoom_time(self, step: int) -> None:
        middle = self.scroll_s + self.span_s / 2
        self.zoom += step
        self.scroll_s = middle - self.span_s / 2

    # -- drawing --
    def view_columns(self):
        """(min, max, RMS dBFS) of each column in view (see `AudioLevels.columns`)."""
        W = self.grid_width
        if self.levels is None or not W:
            return np.full(W, np.nan), np.full(W, np.nan), np.full(W, SILENCE_DB)
        return self.levels.columns(self.scroll_s, self.scroll_s + self.span_s, W)

    def envelope_rows(self, rows: int) -> list[str]:
        """The envelope drawn in ``rows`` rows of half blocks (top row first)."""
        mn, mx, _ = self.view_columns()
        return envelope_text(mn, mx, rows)

    def level_cells(self) -> str:
        """The loudness strip's characters: ▁ at `FLOOR_DB` … █ at 0 dBFS."""
        _, _, db = self.view_columns()
        return level_text(db)

    def render_line(self, y: int) -> Strip:
        H, W = self.size.height, self.grid_width
        key = (id(self.levels), self.size, self.zoom, self.scroll_s, self.app.theme)
        if getattr(self, "_cache_key", None) != key:
            self._cache_key = key
            env_rows = max(H - 2, 1)
            self._env = self.envelope_rows(env_rows)
            self._level = self.level_cells()
        base = self.rich_style
        dim = base + Style(dim=True)
        ph = self.playhead_column()
        if y == 0:
            text, style, label = self._axis(W), base, "time"
        elif y == H - 1:
            text, style = self._level, base + self.get_component_rich_style("waveform--level")
            label = "RMS"
        elif y - 1 < len(self._env):
            text = self._env[y - 1]
            style = base + self.get_component_rich_style("waveform--wave")
            n = len(self._env)
            label = "+1" if y == 1 else ("-1" if y == n else ("0" if y == (n + 1) // 2 else ""))
        else:
            return Strip.blank(self.size.width, base)
        segs = [Segment(label.rjust(GUTTER - 1) + "┤", dim)]
        if ph is not None and y > 0:
            segs += [Segment(text[:ph], style), Segment(text[ph], style + Style(reverse=True))]
            segs.append(Segment(text[ph + 1 :], style))
        elif ph is not None:
            segs.append(Segment(text[:ph] + "▼" + text[ph + 1 :], style))
        else:
            segs.append(Segment(text, style))
        return Strip(segs, GUTTER + W).simplify()

    def _axis(self, W: int) -> str:
        """m:ss labels at round times, as many as fit."""
        cells = [" "] * W
        if not W or self.levels is None:
            return "".join(cells)
        per_col = self.span_s / W
        step = next(
            (
                s
                for s in (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800)
                if s / per_col >= 8
            ),
            3600,
        )
        t = math.ceil(self.scroll_s / step) * step
        while True:
            x = int(round((t - self.scroll_s) / per_col))
            if x >= W:
                break
            text = format_time(t)
            if x + len(text) <= W:
                cells[x : x + len(text)] = list(text)
            t += step
        return "".join(cells)

    # -- words --
    def summary(self) -> str:
        """Length, sample peak, and the loudest and quietest passages with their times."""
        lv = self.levels
        if lv is None or not lv.frames:
            return "no audio"
        starts, db = lv.passages()
        win = min(PASSAGE_S, lv.length_s)
        loud, quiet = int(np.argmax(db)), int(np.argmin(db))

        def at(i: int) -> str:
            level = "silence" if db[i] <= SILENCE_DB else f"{db[i]:.1f} dB RMS"
            return f"{format_time(starts[i])}–{format_time(starts[i] + win)} ({level})"

        ch = {1: "mono", 2: "stereo"}.get(lv.channels, f"{lv.channels} channels")
        lines = [
            f"audio: {format_time(lv.length_s)} long, {ch}, {lv.sample_rate} Hz, "
            f"sample peak {lv.peak_db:.1f} dBFS",
            f"loudest passage {at(loud)}; quietest passage {at(quiet)}",
        ]
        if self.playhead_s is not None:
            lines.append(f"playhead: {format_time(self.playhead_s)}")
        return "\n".join(lines)


def envelope_text(mn: np.ndarray, mx: np.ndarray, rows: int) -> list[str]:
    """Columns' (min, max) drawn in ``rows`` rows of half blocks from +1 (top) to −1: a half
    cell is filled where [min, max] reaches into it (a flat column, such as silence, fills
    the half cell just under its value). NaN columns are empty."""
    halves = 2 * rows
    step = 2.0 / halves
    hi_edge = 1.0 - step * np.arange(halves)  # [halves] top of each half cell
    lo_edge = hi_edge - step
    a = np.clip(np.nan_to_num(mn, nan=np.inf), -1.0, 1.0)
    b = np.clip(np.nan_to_num(mx, nan=-np.inf), -1.0, 1.0)
    valid = np.isfinite(mn) & np.isfinite(mx)
    overlap = (lo_edge[:, None] < b[None, :]) & (hi_edge[:, None] > a[None, :])
    filled = overlap & valid[None, :]
    # a flat stretch (silence, DC) fills the half cell under it (counted in whole half
    # cells, so zero never falls between two by rounding)
    flat = np.nonzero(valid & (a == b))[0]
    k = np.clip(np.floor((1.0 - a[flat]) / step + 1e-9).astype(np.int64), 0, halves - 1)
    filled[k, flat] = True
    glyphs = np.array([" ", "▄", "▀", "█"])  # bottom half, top half, both
    code = filled[0::2].astype(np.int64) * 2 + filled[1::2].astype(np.int64)
    return ["".join(glyphs[row]) for row in code]


def level_text(db: np.ndarray) -> str:
    """dBFS values as ▁ (`FLOOR_DB`) … █ (0 dB); a space below the floor."""
    out = []
    for v in db:
        if v < FLOOR_DB:
            out.append(" ")
        else:
            i = int(round((min(v, 0.0) - FLOOR_DB) / -FLOOR_DB * (len(SPARKS) - 1)))
            out.append(SPARKS[i])
    return "".join(out)
