"""Progress of long work: one small event passed to a callback.

Every pipeline, service and model wrapper that takes ``progress=`` calls it with one
`Progress` per step, and nothing else; the faces decide how to show it (the CLI with rich
bars in `engine.cli.progress`, the terminal studio as a Textual message, tests collect the
events in a `ProgressLog`). Nothing here draws anything, so no pipeline needs rich.

Stage names in use (``done`` / ``total`` count):

- ``"music"``: bars of the whole piece written (compose: one stream per piece, forwards);
- ``"section A"``...: not reported alone, folded into ``"music"``;
- ``"tokens"``: tokens in the model's window so far / the window size (the score model's
  sampling; the music usually ends well before the window is full);
- ``"continuation"``: the same token count while continuing a transcription (workflows);
- ``"parts"``: bars written by the new parts / bars of the input (add parts to a score);
- ``"bass"``, ``"chords"``, ``"strings"``: bars of an accompaniment part written / bars;
- ``"analysis"``: 0 then 1 of 1 while an accompaniment reads its input;
- ``"notation"``: 0 of 1 while MusicXML is written;
- ``"audio"``: steps of rendering and writing the audio files;
- ``"audio frames"``: decoding steps of MusicGen / its total;
- ``"converting"``: 0 then 1 of 1 while model weights are converted (the hub);
- ``"windows"``: transcription windows analysed / all windows;
- ``"download"``: bytes received / bytes offered (``total`` None when the server does not
  say);
- ``"files"``: files read / all files: a corpus build (``message``: the id of the last piece
  read), a dataset import, or a preprocessing step (``message``: the file's path);
- ``"pieces"``: prompts of the prompt evaluation written / all;
- ``"harmonization"``: chorales harmonized / all (model evaluation);
- a style name (``"bach"``...): pieces of that style written / per style (model evaluation);
- ``"unpack"``: archive members unpacked / all (``data get``);
- ``"items"``: dataset items written / all (``data export``, a Hugging Face export);
- ``"rows"``: rows of a Hugging Face dataset read into a dataset / all;
- ``"fingerprints"``: items fingerprinted for near-duplicates / all (``data stats``);
- ``"comparisons (audio)"``, ``"comparisons (midi)"``: items whose pairs are compared / all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One step of long work."""

    stage: str
    """What is being done, one of the names listed in this module's docstring."""
    done: int
    """How much of the stage is done, in the stage's unit; never goes back within a stage."""
    total: int | None
    """How much there is to do in the same unit; None when unknown (a download of no size)."""
    message: str = ""
    """Optional detail for the display (the piece just read, for example)."""

    @property
    def fraction(self) -> float | None:
        """``done / total`` in 0..1, or None when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))


ProgressFn = Callable[[Progress], None]


class ProgressLog(list):
    """A progress callback that keeps every event (for tests and scripts).

    It is a list of the events, but always true, even empty: pipelines test ``if progress:``
    before they report, and an empty log must still be called.
    """

    def __bool__(self) -> bool:
        return True

    def __call__(self, event: Progress) -> None:
        if not isinstance(event, Progress):
            raise TypeError(f"a progress callback takes a Progress event, not {event!r}")
        self.append(event)

    def stages(self) -> list[str]:
        """The stages reported, in order of their first event."""
        return list(dict.fromkeys(e.stage for e in self))

    def of(self, stage: str) -> list[Progress]:
        """The events of one stage, in order."""
        return [e for e in self if e.stage == stage]
