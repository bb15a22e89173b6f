"""The score: the engraved page (a PNG made by engine.library.pictures) where the terminal
can show pictures, else the score in words.

Pictures are drawn by textual-image, which finds what the terminal can do by asking it (Sixel,
the Terminal Graphics Protocol) when ``textual_image.renderable`` is first imported. That
query must happen before Textual starts (Textual then owns the terminal's input), so the app
calls `detect_image_support` before ``run()``; `image_support` only reads what was found and
never asks. Half-cell and Unicode renderings (coloured blocks) cannot show notation legibly,
so they count as no picture support unless the view is built with ``allow_cells=True``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from tui.widgets.pianoroll import describe_roll
from tui.widgets.roll import RollData, estimate_key, note_name

REAL_IMAGES = ("sixel", "tgp")  # textual-image's renderings that show a picture as pixels
CELL_IMAGES = ("halfcell", "unicode")  # coloured character cells
FIRST_BARS = 4  # bars of each part the text shows as note names


def image_support() -> str:
    """What textual-image chose for this terminal: "sixel", "tgp", "halfcell", "unicode", or
    "none" when it was not asked (`detect_image_support` was not called)."""
    module = sys.modules.get("textual_image.renderable")
    if module is None:
        return "none"
    return module.Image.__module__.rsplit(".", 1)[-1]


def detect_image_support() -> str:
    """Ask the terminal what pictures it can show (through textual-image) and return
    `image_support`. Call it before the Textual app runs, never while it runs."""
    import textual_image.widget  # noqa: F401  (asks the terminal, once)

    return image_support()


def first_bars(data: RollData, bars: int = FIRST_BARS) -> list[str]:
    """Each part's first ``bars`` bars as note names: ``"Soprano: | C4 E4+G4 | – |"`` (notes
    that start together joined by +, – for a bar where no note starts)."""
    out = []
    n = min(bars, data.bars)
    for part in data.parts:
        cells = []
        for b in range(n):
            lo, hi = data.bar_starts[b], data.bar_starts[b + 1]
            notes = part.notes[(part.notes[:, 0] >= lo) & (part.notes[:, 0] < hi)]
            if not len(notes):
                cells.append("–")
                continue
            words = []
            for onset in np.unique(notes[:, 0]):
                chord = sorted(int(p) for p in notes[notes[:, 0] == onset, 2])
                words.append("+".join(note_name(p) for p in chord))
            cells.append(" ".join(words))
        out.append(f"{part.name}: | " + " | ".join(cells) + " |")
    return out


def describe_score(data: RollData | None) -> str:
    """The score in words: key, meter, tempo, bars, parts with ranges, the first bars."""
    if data is None:
        return "no score yet"
    key = data.key
    if key is None:
        guess = estimate_key(data)
        key = f"{guess} (estimated from the notes)" if guess else "none"
    lines = [f"key: {key}", f"meter: {data.meter}", describe_roll(data)]
    bars = first_bars(data)
    if bars:
        n = min(FIRST_BARS, data.bars)
        lines.append("the first bar:" if n == 1 else f"the first {n} bars:")
        lines += bars
    return "\n".join(lines)


class ScoreView(VerticalScroll):
    """The engraved score (``png``) as a picture, or `describe_score` of ``data`` as text
    (when the terminal shows no pictures, in tests, or when there is no PNG). ``t`` switches
    between the two where both are possible.

    ``support`` overrides `image_support` (tests, or an app that detected it itself).
    """

    HELP_NAME = "Score"
    DEFAULT_CSS = """
    ScoreView {
        height: 1fr;
        border: round $panel;
    }
    ScoreView:focus {
        border: round $accent;
    }
    ScoreView > .score-text {
        width: 100%;
        padding: 0 1;
    }
    ScoreView > .score-image {
        width: auto;
        height: auto;
    }
    """
    BINDINGS = [Binding("t", "toggle_text", "Score as text / picture")]

    prefer_text: reactive[bool] = reactive(False, recompose=True)

    def __init__(
        self,
        png: str | Path | None = None,
        data: RollData | None = None,
        *,
        allow_cells: bool = False,
        support: str | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.png = Path(png) if png else None
        self.data = data
        self.allow_cells = allow_cells
        self.support = support
        self.border_title = self.HELP_NAME

    @property
    def support_pictures(self) -> bool:
        """Whether the terminal can show a picture legibly (whatever the PNG)."""
        support = self.support if self.support is not None else image_support()
        return support in REAL_IMAGES + (CELL_IMAGES if self.allow_cells else ())

    @property
    def can_show_image(self) -> bool:
        """Whether the PNG exists and the terminal can show it legibly."""
        support = self.support if self.support is not None else image_support()
        allowed = REAL_IMAGES + (CELL_IMAGES if self.allow_cells else ())
        return support in allowed and self.png is not None and self.png.is_file()

    @property
    def mode(self) -> str:
        """ "image" or "text": what the view shows."""
        return "image" if self.can_show_image and not self.prefer_text else "text"

    def show(self, png: str | Path | None = None, data: RollData | None = None) -> None:
        """Show another score (a new PNG, new data, or both)."""
        self.png = Path(png) if png else None
        self.data = data
        self.refresh(recompose=True)

    def compose(self) -> ComposeResult:
        if self.mode == "image":
            from textual_image.widget import Image

            yield Image(self.png, classes="score-image")
        else:
            yield Static(self.summary(), classes="score-text", markup=False)

    def action_toggle_text(self) -> None:
        if not self.can_show_image:
            self.notify("this terminal shows the score as text only")
            return
        self.prefer_text = not self.prefer_text

    def summary(self) -> str:
        """The score in words (what the text view shows)."""
        return describe_score(self.data)
