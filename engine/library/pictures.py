"""Pictures of a piece, written beside its files on request (``--formats png,svg,pdf``).

- `piano_roll`: the notes as bars, one colour per part (named in a legend), on a time axis in
  bars and beats read from the MIDI's own meters, with minutes:seconds from its tempi on top.
- `audio_picture`: the waveform (the min/max envelope of the mid signal, one pair per pixel
  column) over the short-term loudness (EBU R128: 3 s windows every 100 ms, K-weighted with
  pyloudnorm), with the integrated loudness (ITU-R BS.1770-4) in the title.
- `parameter_curves`: per bar, the mean velocity of each part (the dynamics), the tempo and
  the number of notes each part starts.
- `engrave`: the MusicXML engraved by Verovio as SVG pages, and as PNG pages and one vector
  PDF through Typst: both are wheels with their fonts inside, so no program or system font
  is needed and a page is the same pixels on every machine.
- `render_pictures`: every picture that a piece's files allow, in the formats asked for.

Plots are drawn on `matplotlib.figure.Figure` objects (no pyplot, no global figure state), so
they work headless and from worker threads; the ``*_figure`` builders return the Figure, laid
out and fixed, for a caller (or a test) to inspect before it is saved. The same input gives
the same bytes, in any order of formats: dates are left out of the files and SVG ids are
salted with a constant.

Nothing is replaced: a picture whose name is taken is refused (`engine.errors.OutputError`)
before anything is written, unless ``overwrite=True``.

>>> render_pictures("calm-chorale", {"png", "pdf"}, "calm-chorale")
[.../piano-roll.png, .../parameters.png, .../music-audio.png, .../score.png, .../pictures.pdf,
 .../score.pdf]
"""

from __future__ import annotations

import io
import re
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine import names
from engine.atomic import write_bytes_atomic
from engine.errors import OutputError, RenderError
from engine.symbolic.midi import MIDI_DEFAULT_METER, read_midi

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from symusic import Score

PICTURE_FORMATS = names.PICTURE_FORMATS
MXL_SUFFIX = ".mxl"  # compressed MusicXML, read beside notation's .musicxml and .xml

DPI = 100  # pixels an inch: a PNG plot is its size in inches times this
PIANO_ROLL_SIZE_IN = (14.0, 7.0)  # 1400 × 700 pixels
PARAMETERS_SIZE_IN = (14.0, 8.0)  # 1400 × 800 pixels
AUDIO_SIZE_IN = (14.0, 6.0)  # 1400 × 600 pixels
MAX_GRID_LINES = 120  # bar and beat lines a plot draws at most (about 10 pixels apart)
WAVE_COLUMNS = int(AUDIO_SIZE_IN[0] * DPI)  # one min/max pair per pixel column
SHORT_TERM_S = 3.0  # EBU R128 short-term loudness window
MOMENTARY_S = 0.4  # EBU R128 momentary window: the curve of audio shorter than 3 s
LOUDNESS_HOP_S = 0.1  # one loudness value every 100 ms (EBU Tech 3341: at least 10 a second)
LOUDNESS_FLOOR_LUFS = -70.0  # BS.1770's absolute gate: anything quieter is drawn as silence
DEFAULT_TEMPO_QPM = 120.0  # what MIDI plays when a file sets no tempo
# The velocities the composer gives each dynamic (engine.pipelines.compose.VELOCITIES),
# marked beside the velocity axis.
DYNAMICS_VELOCITIES = {"pp": 36, "p": 52, "mp": 66, "mf": 80, "f": 96, "ff": 112}

SCORE_PPI = 150  # PNG pages of the score: an A4 page is 1240 × 1754 pixels
MUSIC_FONT = "Leipzig"  # Verovio's default music font (its glyphs come inside the wheel)
# The name of the font file built from its glyphs (`_music_font_dir`): "Leipzig" is a Reserved
# Font Name under its licence (SIL OFL 1.1), which a converted copy may not carry.
MUSIC_TEXT_FAMILY = "Disco-Musica Music Text"
SCORE_SCALE = 70  # Verovio's scale in percent: 100 fits about 10 bars of 4 staves on A4
VEROVIO_OPTIONS = {
    "pageWidth": 2100,  # A4, in Verovio's tenths of a millimetre
    "pageHeight": 2970,
    "scale": SCORE_SCALE,
    "font": MUSIC_FONT,
    "footer": "none",
    "xmlIdChecksum": True,  # ids from the input, not random: the same file, the same SVG
    "svgRemoveXlink": True,
}

_SVG_SALT = "disco-musica"  # matplotlib's SVG ids are random unless salted
_SAVE_LOCK = threading.Lock()  # matplotlib's rcParams are global: one SVG save at a time


# ---------------------------------------------------------------------------------------------
# Formats, outputs


def check_formats(formats: Iterable[str]) -> list[str]:
    """``formats`` (names such as ``"png"``, any case) checked, in `PICTURE_FORMATS` order."""
    asked = {str(f).strip().lower().lstrip(".") for f in formats}
    unknown = sorted(asked - set(PICTURE_FORMATS))
    if unknown:
        raise RenderError(
            f"unknown picture format {', '.join(repr(f) for f in unknown)}; choose from "
            f"{', '.join(PICTURE_FORMATS)}"
        )
    if not asked:
        raise RenderError(f"no picture format given; choose from {', '.join(PICTURE_FORMATS)}")
    return [f for f in PICTURE_FORMATS if f in asked]


def _format_of(out_path: Path) -> str:
    fmt = out_path.suffix.lower().lstrip(".")
    if fmt not in PICTURE_FORMATS:
        raise RenderError(
            f"{out_path}: pictures are written as {', '.join('.' + f for f in PICTURE_FORMATS)}"
            "; change the file name's ending"
        )
    return fmt


def _check_outputs(paths: Iterable[Path], overwrite: bool) -> None:
    """Refuse, before anything is written, a folder that is missing or a name that is taken."""
    for p in paths:
        if not p.parent.is_dir():
            raise OutputError(f"folder {p.parent} does not exist; create it first")
        if p.is_dir():
            raise OutputError(f"{p} is a folder; remove it or write the pictures elsewhere")
        if p.exists() and not overwrite:
            raise OutputError(
                f"{p} already exists and is not replaced; remove it or write the pictures elsewhere"
            )


def _write(outputs: dict[Path, bytes], overwrite: bool) -> list[Path]:
    """Write every ``{path: data}`` atomically, after checking all of them; the paths."""
    _check_outputs(outputs, overwrite)
    return [write_bytes_atomic(p, data) for p, data in outputs.items()]


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """``fig`` as PNG, SVG or PDF bytes, without dates (the same figure, the same bytes)."""
    import matplotlib

    buf = io.BytesIO()
    if fmt == "png":
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    elif fmt == "svg":
        with _SAVE_LOCK, matplotlib.rc_context({"svg.hashsalt": _SVG_SALT}):
            fig.savefig(buf, format="svg", metadata={"Date": None})
    elif fmt == "pdf":
        fig.savefig(buf, format="pdf", metadata={"CreationDate": None})
    else:
        raise RenderError(f"unknown picture format {fmt!r}; choose from png, svg, pdf")
    return buf.getvalue()


def _pdf_pages(figures: list[Figure]) -> bytes:
    """One PDF with a page for each figure (matplotlib's PdfPages), without dates."""
    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    with PdfPages(buf, metadata={"CreationDate": None}) as pdf:
        for fig in figures:
            pdf.savefig(fig)
    return buf.getvalue()


def _new_figure(size_in: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=size_in, dpi=DPI, layout="constrained")


def _laid_out(fig: Figure) -> Figure:
    """``fig`` laid out once and then fixed: matplotlib's constrained layout moves things a
    little at each drawing, so a figure saved as PNG and then as SVG would differ from one
    saved as SVG alone."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    return fig


# ---------------------------------------------------------------------------------------------
# Time: bars, beats, seconds


@dataclass(frozen=True)
class Timeline:
    """Where a score's bars and beats fall (ticks) and when (seconds).

    ``bar_ticks`` [B + 1] are the starts of the B bars and the end of the last one, read from
    the time signatures (4/4 until the first); a time signature that comes in the middle of a
    bar starts a new bar there, as MIDI players count. ``beat_ticks`` are the beats (the
    dotted beat of 6/8, 9/8, 12/8). ``tempo_ticks``/``tempo_qpm`` are the tempo changes
    (120 quarter notes a minute until the first). Positions in bars count from 1: bar 3 is
    [3, 4).
    """

    tpq: int
    bar_ticks: np.ndarray
    beat_ticks: np.ndarray
    tempo_ticks: np.ndarray
    tempo_qpm: np.ndarray

    @property
    def bars(self) -> int:
        return len(self.bar_ticks) - 1

    def bar_position(self, ticks) -> np.ndarray:
        """``ticks`` as positions in bars (1.0 = the start of bar 1), beyond the ends too."""
        return _interp(np.asarray(ticks, float), self.bar_ticks, np.arange(self.bars + 1) + 1.0)

    def seconds(self, ticks) -> np.ndarray:
        """``ticks`` in seconds from the start, through the tempo changes."""
        t = np.asarray(ticks, float)
        sec_per_tick = 60.0 / (self.tempo_qpm * self.tpq)
        starts = np.concatenate([[0.0], np.cumsum(np.diff(self.tempo_ticks) * sec_per_tick[:-1])])
        k = np.clip(np.searchsorted(self.tempo_ticks, t, side="right") - 1, 0, None)
        return starts[k] + (t - self.tempo_ticks[k]) * sec_per_tick[k]

    def bar_seconds_map(self) -> tuple[np.ndarray, np.ndarray]:
        """(bar positions, seconds) at every bar line and tempo change: both increasing."""
        ticks = np.union1d(self.bar_ticks, self.tempo_ticks[self.tempo_ticks < self.bar_ticks[-1]])
        return self.bar_position(ticks), self.seconds(ticks)


def _interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """np.interp, continued in straight lines beyond both ends (axes are asked past them)."""
    y = np.interp(x, xp, fp)
    if len(xp) > 1:
        lo, hi = x < xp[0], x > xp[-1]
        y[lo] = fp[0] + (x[lo] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
        y[hi] = fp[-1] + (x[hi] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return y


def timeline(score: Score) -> Timeline:
    """The `Timeline` of ``score`` (a symusic Score in ticks), over every bar it sounds in."""
    tpq = int(score.ticks_per_quarter)
    end = max(int(score.end()), 1)
    sigs: dict[int, tuple[int, int]] = {0: MIDI_DEFAULT_METER}
    for ts in score.time_signatures:
        if int(ts.time) < end and ts.numerator > 0 and ts.denominator > 0:
            sigs[int(ts.time)] = (int(ts.numerator), int(ts.denominator))
    starts = sorted(sigs)
    bars, beats = [], []
    t = 0.0
    for i, t0 in enumerate(starts):
        num, den = sigs[t0]
        stop = starts[i + 1] if i + 1 < len(starts) else end
        bar_len = tpq * 4 * num / den
        compound = den == 8 and num % 3 == 0 and num > 3
        beat_len = bar_len / (num // 3 if compound else num)
        n_bars = max(1, int(np.ceil((stop - t0) / bar_len)))
        bars.append(t0 + bar_len * np.arange(n_bars))
        seg_beats = t0 + beat_len * np.arange(int(np.ceil((stop - t0) / beat_len)))
        beats.append(seg_beats[seg_beats < stop])
        t = t0 + bar_len * n_bars
    bar_ticks = np.append(np.concatenate(bars), max(t, float(end)))
    # The last of several tempi at one tick wins, as players do (a stable sort keeps order).
    tempos = sorted(((int(x.time), float(x.qpm)) for x in score.tempos), key=lambda x: x[0])
    if not tempos or tempos[0][0] > 0:
        tempos.insert(0, (0, DEFAULT_TEMPO_QPM))
    tempo_at = dict(tempos)
    return Timeline(
        tpq=tpq,
        bar_ticks=bar_ticks,
        beat_ticks=np.concatenate(beats),
        tempo_ticks=np.array(sorted(tempo_at), dtype=float),
        tempo_qpm=np.array([tempo_at[k] for k in sorted(tempo_at)]),
    )


# ---------------------------------------------------------------------------------------------
# Parts


@dataclass(frozen=True)
class Part:
    """One track with notes: its name (the track's, else its General MIDI instrument), its
    colour, and its notes as arrays in ticks."""

    name: str
    colour: str
    is_drum: bool
    time: np.ndarray  # [N] onsets, ticks
    duration: np.ndarray  # [N] ticks
    pitch: np.ndarray  # [N] MIDI pitches
    velocity: np.ndarray  # [N] 1..127


def parts_of(score: Score) -> list[Part]:
    """The tracks of ``score`` that hold notes, each named (unique) and coloured."""
    import matplotlib
    from matplotlib.colors import to_hex
    from pretty_midi.constants import INSTRUMENT_MAP

    tracks = [t for t in score.tracks if len(t.notes)]
    palette = matplotlib.colormaps["tab10" if len(tracks) <= 10 else "tab20"].colors
    parts: list[Part] = []
    seen: dict[str, int] = {}
    for i, track in enumerate(tracks):
        name = str(track.name).strip()
        if not name:
            name = "Drums" if track.is_drum else INSTRUMENT_MAP[int(track.program) % 128]
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} {seen[name]}"
        notes = track.notes.numpy()
        order = np.lexsort((notes["pitch"], notes["time"]))
        parts.append(
            Part(
                name=name,
                colour=to_hex(palette[i % len(palette)]),
                is_drum=bool(track.is_drum),
                time=notes["time"][order].astype(np.int64),
                duration=notes["duration"][order].astype(np.int64),
                pitch=notes["pitch"][order].astype(np.int64),
                velocity=notes["velocity"][order].astype(np.int64),
            )
        )
    return parts


def note_name(pitch: int) -> str:
    """MIDI pitch as a name with its octave: 60 → C4, 61 → C#4."""
    return f"{names.TONICS[pitch % 12]}{pitch // 12 - 1}"


def _summary(score: Score, tl: Timeline, parts: list[Part]) -> str:
    seconds = float(tl.seconds(score.end()))
    sigs = sorted({(int(s.numerator), int(s.denominator)) for s in score.time_signatures})
    meter = ", ".join(f"{n}/{d}" for n, d in sigs) or "{}/{}".format(*MIDI_DEFAULT_METER)
    lo, hi = float(tl.tempo_qpm.min()), float(tl.tempo_qpm.max())
    tempo = f"{lo:.0f} BPM" if round(lo) == round(hi) else f"{lo:.0f}-{hi:.0f} BPM"
    n = len(parts)
    return (
        f"{n} part{'s' * (n != 1)}, {tl.bars} bars, {_clock(seconds)}, {meter}, {tempo}, "
        f"{sum(len(p.time) for p in parts)} notes"
    )


def _clock(seconds: float) -> str:
    m, s = divmod(max(0.0, float(seconds)), 60.0)
    return f"{int(m)}:{int(s):02d}"


def _bar_axis(ax, tl: Timeline, *, seconds_on_top: bool) -> None:
    """Bars on the x axis (numbers at bar starts), bar and beat lines, and time on top."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    first, last = 1.0, float(tl.bars + 1)
    ax.set_xlim(first, last)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(tl.bars + 1, 32)))
    # Grid lines some pixels apart: beats only while they fit, then every bar, then every 2nd,
    # 4th, 8th … bar (phrase lengths; a long piece's bars would otherwise paint the plot grey).
    if len(tl.beat_ticks) <= MAX_GRID_LINES:
        ax.vlines(
            tl.bar_position(tl.beat_ticks),
            0,
            1,
            transform=ax.get_xaxis_transform(),
            colors="0.85",
            linewidth=0.5,
            zorder=0,
        )
    step = 1
    while len(tl.bar_ticks) / step > MAX_GRID_LINES:
        step *= 2
    ax.vlines(
        tl.bar_position(tl.bar_ticks[::step]),
        0,
        1,
        transform=ax.get_xaxis_transform(),
        colors="0.55",
        linewidth=0.8,
        zorder=0,
    )
    ax.set_xlabel("bar")
    if seconds_on_top:
        pos, sec = tl.bar_seconds_map()
        top = ax.secondary_xaxis(
            "top", functions=(lambda x: _interp(x, pos, sec), lambda s: _interp(s, sec, pos))
        )
        top.xaxis.set_major_formatter(FuncFormatter(lambda s, _: _clock(s)))
        top.set_xlabel("time (min:s)")


# ---------------------------------------------------------------------------------------------
# Piano roll


def piano_roll_figure(score: Score, *, title: str = "Piano roll") -> Figure:
    """The piano roll of ``score``: one PolyCollection of note bars per part (its ``label``
    the part's name, one path per note), a legend, bars/beats and pitch names."""
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    tl = timeline(score)
    parts = parts_of(score)
    fig = _new_figure(PIANO_ROLL_SIZE_IN)
    ax = fig.add_subplot()
    lo = min(int(p.pitch.min()) for p in parts) - 1
    hi = max(int(p.pitch.max()) for p in parts) + 1
    # Black-key rows shaded, as on a keyboard.
    black = [p for p in range(lo, hi + 1) if p % 12 in (1, 3, 6, 8, 10)]
    ax.barh(
        black,
        width=1,
        left=0,
        height=1,
        transform=ax.get_yaxis_transform(),
        color="0.95",
        zorder=-1,
    )
    _bar_axis(ax, tl, seconds_on_top=True)
    for part in parts:
        x0 = tl.bar_position(part.time)
        x1 = tl.bar_position(part.time + np.maximum(part.duration, 1))
        y0, y1 = part.pitch - 0.4, part.pitch + 0.4
        verts = np.stack(
            [
                np.stack([x0, y0], -1),
                np.stack([x1, y0], -1),
                np.stack([x1, y1], -1),
                np.stack([x0, y1], -1),
            ],
            axis=1,
        )
        ax.add_collection(
            PolyCollection(
                verts,
                facecolors=part.colour,
                edgecolors="black",
                linewidths=0.3,
                alpha=0.85,
                label=part.name,
                zorder=2,
            )
        )
    ax.set_ylim(lo - 0.5, hi + 0.5)
    if hi - lo <= 24:
        ticks = list(range(lo, hi + 1))
    else:
        ticks = [p for p in range(lo, hi + 1) if p % 12 == 0]
    ax.set_yticks(ticks, [note_name(p) for p in ticks], fontsize=8)
    ax.set_ylabel("pitch")
    ax.legend(
        handles=[Patch(facecolor=p.colour, edgecolor="black", label=p.name) for p in parts],
        loc="upper left",
        bbox_to_anchor=(1.005, 1.0),
        frameon=False,
        title="parts",
    )
    fig.suptitle(f"{title}\n{_summary(score, tl, parts)}", fontsize=12)
    return _laid_out(fig)


def piano_roll(
    midi_path: str | Path, out_path: str | Path, *, title: str | None = None, overwrite=False
) -> Path:
    """Write the piano roll of a MIDI file as PNG, SVG or PDF (by ``out_path``'s ending)."""
    out = Path(out_path).expanduser()
    fmt = _format_of(out)
    _check_outputs([out], overwrite)
    fig = piano_roll_figure(read_midi(midi_path), title=title or _stem(midi_path))
    return _write({out: figure_bytes(fig, fmt)}, overwrite)[0]


def _stem(source) -> str:
    return Path(source).stem if isinstance(source, str | Path) else "Piece"


# ---------------------------------------------------------------------------------------------
# Parameter curves


@dataclass(frozen=True)
class BarParameters:
    """What a score does bar by bar (B bars, P parts; a note counts in the bar it starts in).

    - ``velocity`` [P, B]: mean MIDI velocity of the notes a part starts; NaN where none.
    - ``density`` [P, B]: how many notes a part starts.
    - ``tempo_qpm`` [B]: quarter notes a minute over the bar (its length in quarter notes over
      the minutes it lasts: the tempo one hears, whatever changes inside it).
    """

    timeline: Timeline
    parts: list[Part]
    velocity: np.ndarray
    density: np.ndarray
    tempo_qpm: np.ndarray


def bar_parameters(score: Score) -> BarParameters:
    """`BarParameters` of ``score``."""
    tl = timeline(score)
    parts = parts_of(score)
    B = tl.bars
    velocity = np.full((len(parts), B), np.nan)
    density = np.zeros((len(parts), B), dtype=np.int64)
    for i, part in enumerate(parts):
        bar = np.clip(np.searchsorted(tl.bar_ticks, part.time, side="right") - 1, 0, B - 1)
        density[i] = np.bincount(bar, minlength=B)
        sums = np.bincount(bar, weights=part.velocity, minlength=B)
        has = density[i] > 0
        velocity[i, has] = sums[has] / density[i, has]
    quarters = np.diff(tl.bar_ticks) / tl.tpq
    minutes = np.diff(tl.seconds(tl.bar_ticks)) / 60.0
    return BarParameters(tl, parts, velocity, density, quarters / minutes)


def parameter_figure(score: Score, *, title: str = "Parameters") -> Figure:
    """Three panels over the bars: mean velocity per part (lines, dynamics marked on the
    right), tempo (steps) and notes per bar per part (stacked bars)."""
    p = bar_parameters(score)
    tl = p.timeline
    centres = np.arange(tl.bars) + 1.5
    edges = np.arange(tl.bars + 1) + 1.0
    fig = _new_figure(PARAMETERS_SIZE_IN)
    ax_vel, ax_tempo, ax_dens = fig.subplots(3, 1, sharex=True)
    for i, part in enumerate(p.parts):
        ax_vel.plot(
            centres,
            p.velocity[i],
            marker="o" if tl.bars <= MAX_GRID_LINES else "",
            markersize=4,
            color=part.colour,
            label=part.name,
        )
    ax_vel.set_ylim(0, 128)
    ax_vel.set_ylabel("mean velocity")
    dyn = ax_vel.secondary_yaxis("right")
    dyn.set_yticks(list(DYNAMICS_VELOCITIES.values()), list(DYNAMICS_VELOCITIES))
    ax_vel.legend(loc="upper left", bbox_to_anchor=(1.04, 1.0), frameon=False, title="parts")
    ax_tempo.stairs(p.tempo_qpm, edges, color="black", linewidth=1.5, baseline=None)
    span = float(np.ptp(p.tempo_qpm))
    mid = float(p.tempo_qpm.mean())
    pad = max(5.0, span * 0.15)
    ax_tempo.set_ylim(max(0.0, mid - span / 2 - pad), mid + span / 2 + pad)
    ax_tempo.set_ylabel("tempo (BPM)")
    bottom = np.zeros(tl.bars)
    for i, part in enumerate(p.parts):
        ax_dens.bar(
            centres,
            p.density[i],
            bottom=bottom,
            width=0.8 if tl.bars <= MAX_GRID_LINES else 1.0,  # gaps between bars while they show
            linewidth=0,
            color=part.colour,
            label=part.name,
        )
        bottom = bottom + p.density[i]
    ax_dens.set_ylabel("notes per bar")
    for ax in (ax_vel, ax_tempo, ax_dens):
        _bar_axis(ax, tl, seconds_on_top=ax is ax_vel)
        if ax is not ax_dens:
            ax.set_xlabel("")
    fig.suptitle(f"{title}\n{_summary(score, tl, p.parts)}", fontsize=12)
    return _laid_out(fig)


def parameter_curves(
    midi_path: str | Path, out_path: str | Path, *, title: str | None = None, overwrite=False
) -> Path:
    """Write the per-bar parameter curves of a MIDI file as PNG, SVG or PDF."""
    out = Path(out_path).expanduser()
    fmt = _format_of(out)
    _check_outputs([out], overwrite)
    fig = parameter_figure(read_midi(midi_path), title=title or _stem(midi_path))
    return _write({out: figure_bytes(fig, fmt)}, overwrite)[0]


# ---------------------------------------------------------------------------------------------
# Audio


def waveform_envelope(mono: np.ndarray, columns: int = WAVE_COLUMNS):
    """(lowest, highest) sample [C] in each of ``columns`` equal runs of ``mono`` [S] (fewer
    when there are fewer samples), the shape a waveform is drawn with."""
    S = len(mono)
    C = max(1, min(int(columns), S))
    edges = np.linspace(0, S, C + 1).astype(np.int64)[:-1]
    return np.minimum.reduceat(mono, edges), np.maximum.reduceat(mono, edges)


def _for_meter(audio: np.ndarray) -> np.ndarray:
    """float64 [S, channels] that pyloudnorm measures (its channel weights stop at 5)."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    return x if x.shape[1] <= 5 else x.mean(axis=1, keepdims=True)


def loudness_curve(
    audio: np.ndarray, sample_rate: int, *, window_s: float = SHORT_TERM_S
) -> tuple[np.ndarray, np.ndarray]:
    """(times_s [N], loudness_lufs [N]): ungated K-weighted loudness (pyloudnorm's BS.1770
    filters) of ``window_s`` windows every `LOUDNESS_HOP_S`, each at the time its window ends
    (as a meter shows it). ``audio`` is [S] or [S, channels]. Audio shorter than the window
    is measured in momentary (400 ms) windows, or as one padded window; silence is -inf."""
    import pyloudnorm

    x = _for_meter(audio)
    seconds = x.shape[0] / sample_rate
    window = window_s if seconds >= window_s else MOMENTARY_S
    if seconds < window:
        x = np.concatenate(
            [x, np.zeros((int(np.ceil(window * sample_rate)) + 1 - x.shape[0], x.shape[1]))]
        )
    meter = pyloudnorm.Meter(sample_rate, block_size=window, overlap=1 - LOUDNESS_HOP_S / window)
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meter.integrated_loudness(x)
    lufs = np.asarray(meter.blockwise_loudness, dtype=float)
    return window + LOUDNESS_HOP_S * np.arange(len(lufs)), lufs


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, gated, pyloudnorm) in LUFS; -inf for silence.
    Audio shorter than one 400 ms block is measured padded with silence."""
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    x = _for_meter(audio)
    block = int(np.ceil(meter.block_size * sample_rate)) + 1
    if x.shape[0] < block:
        x = np.concatenate([x, np.zeros((block - x.shape[0], x.shape[1]))])
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(meter.integrated_loudness(x))


def audio_figure(audio: np.ndarray, sample_rate: int, *, title: str = "Audio") -> Figure:
    """Waveform (mid signal's min/max envelope) over short-term loudness; ``audio`` is
    [S, channels] float, full scale 1."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    mid = x.mean(axis=1)
    seconds = x.shape[0] / sample_rate
    lo, hi = waveform_envelope(mid)
    t = (np.arange(len(lo)) + 0.5) * seconds / len(lo)
    lufs = integrated_loudness(x, sample_rate)
    times, curve = loudness_curve(x, sample_rate)
    peak = float(np.max(np.abs(x))) if x.size else 0.0

    fig = _new_figure(AUDIO_SIZE_IN)
    ax_w, ax_l = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    ax_w.fill_between(t, lo, hi, color="tab:blue", linewidth=0, step="mid")
    ax_w.axhline(0, color="0.5", linewidth=0.5)
    ax_w.set_ylim(-1.0, 1.0)
    channels = {1: "mono", 2: "mid of left and right"}.get(x.shape[1], f"mid of {x.shape[1]}")
    ax_w.set_ylabel(f"waveform\n({channels})")
    shown = np.maximum(curve, LOUDNESS_FLOOR_LUFS)
    ax_l.plot(
        times,
        shown,
        color="tab:red",
        linewidth=1.2,
        label="short-term loudness (3 s)"
        if times[0] >= SHORT_TERM_S
        else "momentary loudness (400 ms)",
    )
    if np.isfinite(lufs):
        ax_l.axhline(
            lufs, color="black", linestyle="--", linewidth=1, label=f"integrated {lufs:.1f} LUFS"
        )
    audible = shown[shown > LOUDNESS_FLOOR_LUFS]
    top = float(audible.max()) if audible.size else -20.0
    low = float(audible.min()) if audible.size else LOUDNESS_FLOOR_LUFS
    ax_l.set_ylim(max(LOUDNESS_FLOOR_LUFS, low - 3.0), max(top + 3.0, -10.0))
    ax_l.set_ylabel("loudness (LUFS)")
    if seconds >= 120:  # minutes:seconds once seconds run into the hundreds
        from matplotlib.ticker import FuncFormatter

        ax_l.xaxis.set_major_formatter(FuncFormatter(lambda s, _: _clock(s)))
        ax_l.set_xlabel("time (min:s)")
    else:
        ax_l.set_xlabel("time (s)")
    ax_l.set_xlim(0, seconds)
    ax_l.legend(loc="lower right", frameon=False)
    for ax in (ax_w, ax_l):
        ax.grid(True, axis="x", color="0.85", linewidth=0.5)
    level = f"integrated {lufs:.1f} LUFS" if np.isfinite(lufs) else "silent"
    peak_db = f"peak {20 * np.log10(peak):.1f} dBFS" if peak > 0 else "peak -inf dBFS"
    fig.suptitle(
        f"{title}\n{level}, {peak_db}, {_clock(seconds)}, {sample_rate} Hz, "
        f"{x.shape[1]} channel{'s' * (x.shape[1] != 1)}",
        fontsize=12,
    )
    return _laid_out(fig)


def audio_picture(
    audio_path: str | Path, out_path: str | Path, *, title: str | None = None, overwrite=False
) -> Path:
    """Write the waveform and loudness of an audio file as PNG, SVG or PDF."""
    from engine.audio.io import load_audio

    out = Path(out_path).expanduser()
    fmt = _format_of(out)
    _check_outputs([out], overwrite)
    audio, sr = load_audio(audio_path)
    fig = audio_figure(audio, sr, title=title or Path(audio_path).name)
    return _write({out: figure_bytes(fig, fmt)}, overwrite)[0]


# ---------------------------------------------------------------------------------------------
# The engraved score


def _read_musicxml(path: Path) -> tuple[bytes, bool]:
    """(data, compressed): a MusicXML file's bytes, refused in one line unless it is MusicXML
    (a compressed .mxl is a zip archive, checked by Verovio)."""
    import xml.etree.ElementTree as ET

    again = "export the score again as MusicXML from the program that made it"
    if path.is_dir():
        raise RenderError(f"{path} is a folder; give a MusicXML file")
    if not path.is_file():
        raise RenderError(f"{path}: no such file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RenderError(f"cannot read {path}: {(e.strerror or str(e)).lower()}") from None
    if not data.strip():
        raise RenderError(f"{path}: the file is empty; {again}")
    if data[:4] == b"PK\x03\x04":
        return data, True
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise RenderError(
            f"{path} is not MusicXML: it is not well-formed XML ({e}); {again}"
        ) from None
    tag = root.tag.rsplit("}", 1)[-1]
    if tag not in ("score-partwise", "score-timewise"):
        raise RenderError(
            f"{path} is XML but not MusicXML (its root element is <{tag}>, not "
            f"<score-partwise>); {again}"
        )
    return data, False


def engrave_svg(musicxml_path: str | Path) -> list[str]:
    """The pages of a MusicXML (or compressed .mxl) file engraved by Verovio: one SVG
    document each, A4, the same text for the same file."""
    import verovio

    path = Path(musicxml_path).expanduser()
    data, compressed = _read_musicxml(path)
    verovio.enableLog(verovio.LOG_OFF)
    tk = verovio.toolkit()  # its fonts and resources come inside the wheel
    tk.setOptions(VEROVIO_OPTIONS)
    tk.setInputFrom("musicxml")
    if compressed:
        import base64

        ok = tk.loadZipDataBase64(base64.b64encode(data).decode("ascii"))
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:  # UTF-16 and others: let the XML parser decode it
            import xml.etree.ElementTree as ET

            text = ET.tostring(ET.fromstring(data), encoding="unicode")
        ok = tk.loadData(text)
    pages = tk.getPageCount() if ok else 0
    if not pages:
        raise RenderError(
            f"Verovio could not engrave {path}; open it in a notation program (MuseScore) and "
            "export it again as MusicXML"
        )
    return [tk.renderToSVG(i) for i in range(1, pages + 1)]


_font_lock = threading.Lock()
_font_dirs: dict[str, str] = {}


def _music_font_dir(font: str = MUSIC_FONT) -> str:
    """A folder with Verovio's music font as a TrueType file (family `MUSIC_TEXT_FAMILY`),
    built once a process from the glyph outlines inside the verovio wheel.

    Verovio draws most symbols as shapes, but writes a few as text in the music font (the
    note of a tempo mark, dynamics); a browser reads the font embedded in the SVG's CSS,
    Typst only reads font files. Built with fontTools (matplotlib's own dependency), the
    same bytes every time (no timestamps), with the font's copyright and licence (SIL OFL
    1.1) in its name table; it never leaves the process (PDFs embed the glyphs they use).
    """
    with _font_lock:
        if font in _font_dirs:
            return _font_dirs[font]
        import atexit
        import shutil
        import tempfile
        import xml.etree.ElementTree as ET

        import verovio
        from fontTools.fontBuilder import FontBuilder
        from fontTools.pens.cu2quPen import Cu2QuPen
        from fontTools.pens.ttGlyphPen import TTGlyphPen
        from fontTools.svgLib.path import parse_path

        data = Path(verovio.__file__).parent / "data"
        boxes = ET.parse(data / f"{font}.xml").getroot()
        advance = {g.get("c"): round(float(g.get("h-a-x") or g.get("w") or 0)) for g in boxes}
        order, cmap, glyphs = [".notdef"], {}, {".notdef": TTGlyphPen(None).glyph()}
        for f in sorted((data / font).glob("*.xml")):
            name = f"uni{f.stem}"
            pen = TTGlyphPen(None)
            for path in ET.parse(f).getroot().iter("path"):  # outlines in font units, y up
                parse_path(path.get("d", ""), Cu2QuPen(pen, max_err=1.0, reverse_direction=True))
            order.append(name)
            cmap[int(f.stem, 16)] = name
            glyphs[name] = pen.glyph()
        fb = FontBuilder(1000, isTTF=True)
        fb.setupGlyphOrder(order)
        fb.setupCharacterMap(cmap)
        fb.setupGlyf(glyphs)
        glyf = fb.font["glyf"]
        fb.setupHorizontalMetrics(
            {n: (advance.get(n[3:], 0), getattr(glyf[n], "xMin", 0)) for n in order}
        )
        fb.setupHorizontalHeader(ascent=800, descent=-200)
        family = MUSIC_TEXT_FAMILY
        fb.setupNameTable(  # Typst skips a font without its full and PostScript names
            {
                "copyright": (
                    "Copyright (c) 2014, Etienne Darbellay, Jean-Francois Marti and Laurent "
                    f'Pugin, with Reserved Font Name "{font}"; converted from Verovio\'s glyphs'
                ),
                "familyName": family,
                "styleName": "Regular",
                "fullName": f"{family} Regular",
                "psName": family.replace(" ", "") + "-Regular",
                "uniqueFontIdentifier": family.replace(" ", "") + "-Regular",
                "version": "Version 1.0",
                "licenseDescription": "SIL Open Font License, Version 1.1",
                "licenseInfoURL": "https://openfontlicense.org",
            }
        )
        fb.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=1000, usWinDescent=500)
        fb.setupPost()
        fb.updateHead(created=0, modified=0)
        fb.font.recalcTimestamp = False
        folder = tempfile.mkdtemp(prefix="disco-musica-fonts-")
        atexit.register(shutil.rmtree, folder, True)
        fb.save(str(Path(folder) / "music-text.ttf"))
        _font_dirs[font] = folder
        return folder


# A page per SVG, the size of Verovio's page; Typst's own fonts and the music font only, so
# a page is the same on every machine (Verovio draws the music as shapes; its titles and
# names ask for Times, and get Typst's serif, Libertinus).
_TYPST_PAGES = """#set document(date: none)
#set page(width: float(sys.inputs.w) * 1mm, height: float(sys.inputs.h) * 1mm, margin: 0pt)
#for i in range(int(sys.inputs.n)) {
  if i > 0 { pagebreak() }
  image(bytes(sys.inputs.at("p" + str(i))), format: "svg", width: 100%, height: 100%)
}
"""


def _typst(pages: list[str], fmt: str, ppi: int = SCORE_PPI) -> list[bytes]:
    """SVG pages → one PDF (``fmt="pdf"``, a list of one) or a PNG per page (``"png"``)."""
    import typst

    inputs = {
        "n": str(len(pages)),
        "w": str(VEROVIO_OPTIONS["pageWidth"] / 10),  # tenths of a millimetre
        "h": str(VEROVIO_OPTIONS["pageHeight"] / 10),
    }
    for i, svg in enumerate(pages):
        # Typst's SVG reader would read a <title> tooltip inside a text as part of it and set
        # the title off-centre; the tooltips mean nothing on paper.
        svg = re.sub(r"<title\b[^>]*>[^<]*</title>", "", svg)
        inputs[f"p{i}"] = svg.replace(
            f'font-family="{MUSIC_FONT}"', f'font-family="{MUSIC_TEXT_FAMILY}"'
        )
    out = typst.compile(
        _TYPST_PAGES.encode(),
        format=fmt,
        ppi=ppi if fmt == "png" else None,
        ignore_system_fonts=True,
        font_paths=[_music_font_dir()],
        sys_inputs=inputs,
    )
    return out if isinstance(out, list) else [out]


def engraved_pages(pages: list[str], fmt: str) -> list[bytes]:
    """Engraved SVG pages as files' bytes in ``fmt``: a file per page for SVG and PNG, one
    PDF for all of them."""
    if fmt == "svg":
        return [p.encode("utf-8") for p in pages]
    return _typst(pages, fmt)


def _page_paths(out: Path, n: int) -> list[Path]:
    """``score.png`` for one page; ``score-1.png``, ``score-2.png`` … for several."""
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(1, n + 1)]


def engrave(musicxml_path: str | Path, out_path: str | Path, *, overwrite=False) -> list[Path]:
    """Engrave a MusicXML file with Verovio to ``out_path`` (.svg, .png or .pdf, A4 pages).

    A PDF holds every page; SVG and PNG are one file a page: ``score.svg`` for a one-page
    score, else ``score-1.svg``, ``score-2.svg`` … Returns the files written.
    """
    out = Path(out_path).expanduser()
    fmt = _format_of(out)
    _check_outputs([out], overwrite)
    files = engraved_pages(engrave_svg(musicxml_path), fmt)
    return _write(dict(zip(_page_paths(out, len(files)), files, strict=True)), overwrite)


# ---------------------------------------------------------------------------------------------
# All the pictures of a piece


@dataclass(frozen=True)
class PieceFiles:
    """The files of a piece that pictures are made from, each list sorted by name."""

    midi: list[Path]
    musicxml: list[Path]
    audio: list[Path]


def piece_files(folder_or_files: str | Path | Iterable[str | Path]) -> PieceFiles:
    """The MIDI, MusicXML and audio files in a folder (not its sub-folders, not hidden
    files), or those among the files given (any other file given is refused)."""
    from engine.symbolic.notation import MUSICXML_SUFFIXES

    musicxml = (*MUSICXML_SUFFIXES, MXL_SUFFIX)
    kinds: dict[str, list[Path]] = {"midi": [], "musicxml": [], "audio": []}

    def kind(p: Path) -> str | None:
        s = p.suffix.lower()
        if s in names.MIDI_SUFFIXES:
            return "midi"
        if s in musicxml:
            return "musicxml"
        return "audio" if s in names.AUDIO_SUFFIXES else None

    if isinstance(folder_or_files, str | Path) and Path(folder_or_files).expanduser().is_dir():
        folder = Path(folder_or_files).expanduser()
        for p in sorted(folder.iterdir()):
            k = kind(p)
            if k and p.is_file() and not p.name.startswith("."):
                kinds[k].append(p)
    else:
        given = [folder_or_files] if isinstance(folder_or_files, str | Path) else folder_or_files
        for p in map(lambda f: Path(f).expanduser(), given):
            if p.is_dir():
                raise RenderError(f"{p} is a folder; give one piece's folder or its files")
            if not p.exists():
                raise RenderError(f"{p}: no such file or folder")
            k = kind(p)
            if k is None:
                raise RenderError(
                    f"{p}: no picture is made of {p.suffix or 'such'} files; give MIDI "
                    f"({', '.join(names.MIDI_SUFFIXES)}), MusicXML ({', '.join(musicxml)}) "
                    f"or audio ({', '.join(names.AUDIO_SUFFIXES)}) files, or a piece's folder"
                )
            kinds[k].append(p)
    return PieceFiles(*(sorted(set(kinds[k])) for k in ("midi", "musicxml", "audio")))


def _labels(paths: list[Path]) -> dict[Path, str]:
    """What names each file's pictures: its stem (``music``), or stem and kind where stems
    are shared (``music-wav``, ``music-flac``)."""
    stems = [p.stem for p in paths]
    return {
        p: p.stem if stems.count(p.stem) == 1 else f"{p.stem}-{p.suffix.lstrip('.').lower()}"
        for p in paths
    }


def _named(name: str, label: str, several: bool) -> str:
    """``piano-roll``, or ``music-piano-roll`` when a piece has several such sources."""
    return f"{label}-{name}" if several else name


def render_pictures(
    folder_or_files: str | Path | Iterable[str | Path],
    formats: Iterable[str],
    out_dir: str | Path,
    *,
    title: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write every picture that a piece's files allow, in each of ``formats``; the files
    written, in order. Nothing is written unless all of them can be.

    From a MIDI file: ``piano-roll`` and ``parameters``; from each audio file ``music.wav``:
    ``music-audio``; from a MusicXML file: ``score`` (``score-1``, ``score-2`` … when SVG or
    PNG pages are several). With several MIDI (or MusicXML) files each picture's name starts
    with its file's stem; files of one stem are told apart by their kind (``music-wav-audio``,
    ``music-flac-audio``). ``png`` and ``svg`` write one file a picture; ``pdf`` writes the
    plots into one ``pictures.pdf`` (a page each, to read on screen or share) and the
    engraved score into ``score.pdf`` (A4 pages to print and play from). A kind of input the
    piece lacks makes no picture; a file that cannot be read is refused in one line.
    ``title`` heads the plots (default: the folder's name, else the first file's stem).
    """
    fmts = check_formats(formats)
    files = piece_files(folder_or_files)
    if not (files.midi or files.musicxml or files.audio):
        raise RenderError(
            f"{folder_or_files}: no MIDI, MusicXML or audio file to draw; give a piece's folder"
        )
    out_dir = Path(out_dir).expanduser()
    if not out_dir.is_dir():
        raise OutputError(f"folder {out_dir} does not exist; create it first")
    if title is None:
        is_folder = isinstance(folder_or_files, str | Path) and Path(folder_or_files).is_dir()
        first = (files.midi + files.musicxml + files.audio)[0]
        title = Path(folder_or_files).expanduser().resolve().name if is_folder else first.stem

    figures: list[tuple[str, Figure]] = []  # (name, figure), in the order of pictures.pdf
    midi_labels = _labels(files.midi)
    several = len(files.midi) > 1
    for midi in files.midi:
        score = read_midi(midi)
        name = f"{title} ({midi.name})" if several else title
        label = midi_labels[midi]
        figures.append((_named("piano-roll", label, several), piano_roll_figure(score, title=name)))
        figures.append((_named("parameters", label, several), parameter_figure(score, title=name)))
    if files.audio:
        from engine.audio.io import load_audio

        for path, label in _labels(files.audio).items():
            audio, sr = load_audio(path)
            figures.append((f"{label}-audio", audio_figure(audio, sr, title=path.name)))
    several = len(files.musicxml) > 1
    scores = [
        (_named("score", label, several), engrave_svg(path))
        for path, label in _labels(files.musicxml).items()
    ]

    outputs: dict[Path, bytes] = {}
    for fmt in fmts:
        if fmt == "pdf":
            if figures:
                outputs[out_dir / "pictures.pdf"] = _pdf_pages([f for _, f in figures])
        else:
            for name, fig in figures:
                outputs[out_dir / f"{name}.{fmt}"] = figure_bytes(fig, fmt)
        for name, pages in scores:
            data = engraved_pages(pages, fmt)
            outputs |= dict(
                zip(_page_paths(out_dir / f"{name}.{fmt}", len(data)), data, strict=True)
            )
    return _write(outputs, overwrite)
