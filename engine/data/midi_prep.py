"""Preprocess a dataset's MIDI (and scores) for training: one recorded step, ``midi``.

`prep_midi(ds, MidiPrep(...))` runs these steps, each optional, always in this order, on the
MIDI items chosen (and, with ``from_scores``, the score items):

1. **scores** (``from_scores``): MusicXML / ABC items are read with music21 and written as
   MIDI (`engine.symbolic.midi.score_from_music21`; part instruments become GM programs, the
   first metronome mark the tempo). The MIDI item replaces the score (same ID and group, the
   path ending in ``.mid``); with ``keep_originals`` the score stays and the MIDI is a new
   item beside it (its ``parent`` the score). An ABC file of several tunes gives its first.
2. **standardise** (``standardize``, on by default): broken events are repaired and counted
   in ``info["repairs"]`` (see `REPAIRS`), every track is named (its own name, else its
   General MIDI program's name, drums ``Drums``), tracks named like drums (`DRUM_WORDS`) are
   marked as drums, and every drum track is written on channel 10; then the file is
   resampled to one resolution (``resolution`` ticks a quarter note, symusic's ``resample``).
3. **quantise** (``quantize`` = 4, 8, 16, 32 or the triplet grids 12, 24: notes per whole
   note): onsets and ends move to the nearest grid line by ``strength`` (1: onto it). With
   ``swing`` (straight grids only) the off-beat lines (every second one) sit later by that
   fraction of a grid step. Same-pitch notes that quantising makes overlap are trimmed again.
4. **augment**: for each ``transpose`` interval a copy ``<stem>~t+2.mid`` (drums stay, key
   signatures move along; a copy that would push a note out of MIDI's 0..127 is left out
   and listed), for each ``tempo_scale`` factor a copy ``<stem>~x1.1.mid`` whose tempi are
   multiplied by it (the notes keep their beats; the piece lasts ``1/factor`` as long).
   Copies keep the song's group (so a split never separates them) and its told metadata (a
   told key and tempo moved with the copy); the original stays. Copies are never copied
   again.
5. **tokenize** (``tokenize``): each output is tokenized with the shipped score model's
   tokenizer (`engine.symbolic.tokenizer.ScoreTokenizer`, of ``model``). The tokens, an int32
   ``.npy``, are the model's sequence without its Style token — ``BOS Key Mode Meter Tempo
   Voices`` then each track ``Track_Start Program Register Bar TimeSig Position Pitch
   Duration … Track_End`` then ``EOS`` — stored beside the item (``extras["tokens"]``, count
   in ``info["tokens"]``); ``ScoreTokenizer.split`` and ``decode`` read them, and a trainer adds
   the style it trains. Drum tracks are not part of the model's music and are left out. A
   piece the tokenizer cannot hold (more than `MAX_VOICES` pitched tracks, notes outside the
   model's range, a meter it lacks, no pitched notes) keeps its MIDI and gets the reason in
   ``info["tokens_skipped"]``.

Every output gets ``duration_s``, ``info`` (tracks, notes, ticks_per_beat, repairs…) and
metadata estimates made as the import makes them (tempo, meter, key, instruments as GM
families: `engine.data.ingest.midi_estimates`), marked ``estimate``, for the fields the user,
a sidecar or the file's tags have not told.

A file that cannot be read at all is skipped and listed with its reason; the work goes on.
An interrupted run continues where it stopped when run again with the same options.

The files are written with symusic's own writer, not `engine.symbolic.midi.midi_bytes`: they
are the user's music, not generated, so they get no "AI-generated" notice.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np

from engine import names
from engine.data.store import Dataset, DatasetError, Item, PrepReport, item_id
from engine.errors import UserError
from engine.progress import Progress, ProgressFn

MIDI_STEP = "midi"
DEFAULT_RESOLUTION = 480  # ticks a quarter note (what Disco-Musica writes)
MIN_RESOLUTION, MAX_RESOLUTION = 24, 32767  # a 1/32-triplet grid needs 24; MIDI holds 15 bits
GRIDS = {4: "1/4", 8: "1/8", 16: "1/16", 32: "1/32", 12: "1/12 (triplet 1/8)", 24: "1/24"}
STRAIGHT_GRIDS = (4, 8, 16, 32)
MAX_SWING = 0.75  # share of a grid step the off-beat lines move later
MAX_TRANSPOSE = 12  # semitones either way
TEMPO_SCALE_RANGE = (0.5, 2.0)
# A note of zero (or negative) length gets this many quarter notes (a 1/32 note): drum
# hits are often written so, and a note must last to be heard and tokenized.
ZERO_LENGTH_FIX_QUARTERS = 0.125
# A track whose name holds one of these words holds drums (written on channel 10).
DRUM_WORDS = ("drum", "drums", "drumkit", "kit", "percussion", "perc")
DRUMS_NAME = "Drums"
MIDI_DEFAULT_QPM = 120.0  # the tempo of a MIDI file that sets none
# What standardising repairs, as counted in ``info["repairs"]`` (only those that happened):
REPAIRS = {
    "unterminated": "note-ons never released before their track ends: left out",
    "velocity0": "notes of velocity 0 (silent): left out",
    "zero_length": "notes of zero or negative length: given a 1/32 note",
    "duplicates": "notes doubled (same pitch, same onset, same track): one kept",
    "overlaps": "same-pitch notes overlapping in a track: the earlier ends where the next starts",
    "empty_tracks": "tracks without notes: dropped",
    "drums_to_channel_10": "tracks named as drums on another channel: moved to channel 10",
}
# How a warning names each repair: (one, several).
REPAIR_WORDS = {
    "unterminated": ("note never released (left out)", "notes never released (left out)"),
    "velocity0": ("silent note (left out)", "silent notes (left out)"),
    "zero_length": ("zero-length note (lengthened)", "zero-length notes (lengthened)"),
    "duplicates": ("doubled note (one kept)", "doubled notes (one kept)"),
    "overlaps": ("overlapping note (trimmed)", "overlapping notes (trimmed)"),
    "empty_tracks": ("empty track (dropped)", "empty tracks (dropped)"),
    "drums_to_channel_10": ("drum track moved to channel 10", "drum tracks moved to channel 10"),
}
# One process by default. Measured on the project's 2-core machine (1,500-note files, a
# transposition each way, other work running): 120 files without tokens took 1.6-1.8 s in one
# process and 9-10 s with two spawned workers; with tokens 6.5-8.5 s against 11-15 s, and
# 600 files 66 s against 69 s. A worker costs ~1.7 s of CPU to start (music21, MidiTok,
# symusic imports) and ~3-6 s of wall time on a busy machine; a file costs ~15 ms of CPU
# (~50 ms with tokens) while the main process spends ~40 ms a file storing it (fsync'd
# objects and journal lines), which workers cannot share. ``workers=2`` is there for bigger,
# idle machines.
DEFAULT_WORKERS = 1
TOKENS_INFO = ("tokens", "tokens_skipped", "token_conditions")


@dataclass(frozen=True)
class MidiPrep:
    """What `prep_midi` does (see the module docstring for the order)."""

    from_scores: bool = False
    """Convert score items (MusicXML, ABC) to MIDI first."""
    standardize: bool = True
    """Repair, name tracks, drums on channel 10, one resolution."""
    resolution: int = DEFAULT_RESOLUTION
    """Ticks a quarter note after standardising."""
    quantize: int | None = None
    """Grid in notes per whole note (4, 8, 16, 32; triplets 12, 24); None: no quantising."""
    swing: float = 0.0
    """0..0.75: the off-beat grid lines move later by this share of a grid step."""
    strength: float = 1.0
    """0..1: how far notes move towards the grid (1: onto it)."""
    tokenize: bool = False
    """Store the score model's tokens beside each output."""
    model: str = names.DEFAULT_MODEL
    """The score model whose tokenizer is used (a shipped name or a model folder)."""
    transpose: tuple[int, ...] = ()
    """Semitone intervals of transposed copies (0 not allowed), e.g. (-2, -1, 1, 2)."""
    tempo_scale: tuple[float, ...] = ()
    """Tempo factors of tempo-scaled copies (1 not allowed), e.g. (0.9, 1.1)."""
    keep_originals: bool = False
    """Keep converted scores beside their MIDI (instead of replacing them)."""

    def check(self) -> MidiPrep:
        """The options as `prep_midi` uses them (sorted, deduplicated), or a `DatasetError`
        naming the option and what it allows."""
        res = _whole(self.resolution, "--resolution")
        if not MIN_RESOLUTION <= res <= MAX_RESOLUTION:
            raise DatasetError(
                f"--resolution must be {MIN_RESOLUTION}..{MAX_RESOLUTION} ticks a quarter "
                f"note (not {res}); {DEFAULT_RESOLUTION} is usual"
            )
        grid = self.quantize
        if grid is not None:
            grid = _whole(grid, "--quantize")
            if grid not in GRIDS:
                raise DatasetError(
                    f"--quantize takes a grid of {', '.join(map(str, GRIDS))} (notes a whole "
                    f"note: 16 = sixteenths, 12 and 24 = triplets), not {grid}"
                )
        swing = _number(self.swing, "--swing")
        if not 0 <= swing <= MAX_SWING:
            raise DatasetError(
                f"--swing must be 0..{MAX_SWING} (a share of a grid step), not {swing:g}"
            )
        strength = _number(self.strength, "--strength")
        if not 0 <= strength <= 1:
            raise DatasetError(f"--strength must be 0..1 (1: onto the grid), not {strength:g}")
        if grid is None and swing:
            raise DatasetError("--swing needs a grid: add --quantize 8 or 16")
        if grid is None and strength != 1:
            raise DatasetError("--strength needs a grid: add --quantize 16 (or 8, 32…)")
        if swing and grid not in STRAIGHT_GRIDS:
            raise DatasetError(
                f"--swing needs a straight grid ({', '.join(map(str, STRAIGHT_GRIDS))}); "
                f"the triplet grid {grid} swings already"
            )
        shifts = sorted({_whole(n, "--transpose") for n in self.transpose})
        for n in shifts:
            if n == 0 or abs(n) > MAX_TRANSPOSE:
                raise DatasetError(
                    f"--transpose takes intervals of -{MAX_TRANSPOSE}..{MAX_TRANSPOSE} "
                    f"semitones other than 0 (not {n}), e.g. -3..3"
                )
        lo, hi = TEMPO_SCALE_RANGE
        factors = sorted({round(_number(f, "--tempo-scale"), 4) for f in self.tempo_scale})
        for f in factors:
            if not lo <= f <= hi or f == 1:
                raise DatasetError(
                    f"--tempo-scale takes factors of {lo:g}..{hi:g} other than 1 (not {f:g}), "
                    "e.g. 0.9,1.1"
                )
        if not isinstance(self.model, str) or not self.model.strip():
            raise DatasetError("--model takes a score model's name or folder, e.g. score-base")
        return replace(
            self,
            from_scores=bool(self.from_scores),
            standardize=bool(self.standardize),
            resolution=res,
            quantize=grid,
            swing=float(swing),
            strength=float(strength),
            tokenize=bool(self.tokenize),
            transpose=tuple(shifts),
            tempo_scale=tuple(factors),
            keep_originals=bool(self.keep_originals),
        )

    def step(self) -> dict:
        """The step as a version records it."""
        d = asdict(self)
        d["transpose"] = list(self.transpose)
        d["tempo_scale"] = list(self.tempo_scale)
        return {"name": MIDI_STEP, **d}


# ---- option text (the command line) -----------------------------------------------------------
def parse_grid(text: str) -> int:
    """``"16"`` or ``"1/16"`` → 16."""
    t = text.strip()
    if t.startswith("1/"):
        t = t[2:]
    try:
        return int(t)
    except ValueError:
        raise DatasetError(
            f"--quantize takes a grid of {', '.join(map(str, GRIDS))} (or 1/16…), not {text!r}"
        ) from None


def parse_transpose(text: str) -> tuple[int, ...]:
    """``"-3..3"`` (every interval between, 0 left out) or ``"-2,2,5"``."""
    t = text.replace(" ", "")
    m = re.fullmatch(r"([+-]?\d+)\.\.([+-]?\d+)", t)
    try:
        if m:
            a, b = int(m[1]), int(m[2])
            if a > b or max(abs(a), abs(b)) > 10 * MAX_TRANSPOSE:
                raise ValueError
            return tuple(n for n in range(a, b + 1) if n != 0)
        values = tuple(int(w) for w in t.split(","))
        if not values:
            raise ValueError
        return values
    except ValueError:
        raise DatasetError(
            f"--transpose takes a range such as -3..3 or intervals such as -2,2 (semitones "
            f"-{MAX_TRANSPOSE}..{MAX_TRANSPOSE}), not {text!r}"
        ) from None


def parse_tempo_scale(text: str) -> tuple[float, ...]:
    """``"0.9,1.1"`` → (0.9, 1.1)."""
    try:
        values = tuple(float(w) for w in text.split(",") if w.strip())
        if not values or not all(math.isfinite(v) for v in values):
            raise ValueError
        return values
    except ValueError:
        lo, hi = TEMPO_SCALE_RANGE
        raise DatasetError(
            f"--tempo-scale takes factors of {lo:g}..{hi:g} separated by commas, such as "
            f"0.9,1.1 (not {text!r})"
        ) from None


def _whole(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise DatasetError(f"{name} takes a whole number, not {value!r}")
    return int(value)


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise DatasetError(f"{name} takes a number, not {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise DatasetError(f"{name} takes a finite number, not {value}")
    return value


# ---- the step ------------------------------------------------------------------------------------
def prep_midi(
    ds: Dataset,
    options: MidiPrep,
    selectors: Sequence[str] = ("all",),
    *,
    progress: ProgressFn | None = None,
    command: list | None = None,
    workers: int | None = None,
) -> PrepReport:
    """Preprocess the MIDI (and, with ``from_scores``, score) items that ``selectors`` pick,
    as one change of ``ds``; returns what was made and skipped and the new version.

    ``workers``: processes to prepare the files in (default `DEFAULT_WORKERS`: this one)."""
    options = options.check()
    tok_dir = tokenizer_dir(options.model) if options.tokenize else None
    selectors = list(selectors) or ["all"]
    head = ds.head
    inputs, skipped = _inputs(ds, ds.find(selectors, head), options, selectors)
    step = options.step()
    selection = [(i.id, i.hash) for i in inputs]
    resume = hashlib.sha256(
        json.dumps({"step": step, "items": selection}, sort_keys=True).encode()
    ).hexdigest()
    message = _message(options, len(inputs))
    report = PrepReport()
    with ds.change(step=step, message=message, command=command, resume=resume) as ch:
        if ch.base != head:  # another command's interrupted change was kept first: read again
            inputs, skipped = _inputs(ds, ds.find(selectors, ch.base), options, selectors)
        report.skipped += skipped
        done = {d.id: d for d in ch.done if d.step == MIDI_STEP}
        todo = []
        for item in inputs:
            main = _main_id(item, options)
            if main in done:  # an interrupted run had finished this input (copies first)
                report.made += [d for d in ch.done if d.id == main or d.parent == item.id]
                continue
            todo.append(item)
        total, count = len(inputs), len(inputs) - len(todo)
        if progress is not None:
            progress(Progress("files", count, total))
        jobs = [_job(ds, item, options, tok_dir) for item in todo]
        for item, result in zip(todo, _run(jobs, workers), strict=True):
            _apply(ch, item, options, result, report)
            count += 1
            if progress is not None:
                progress(Progress("files", count, total, item.path))
    report.version = ch.version
    return report


def _inputs(
    ds: Dataset, chosen: list[Item], options: MidiPrep, selectors: list[str]
) -> tuple[list[Item], list[tuple[str, str]]]:
    """The items to prepare among those chosen, and the scores left out (no --from-scores);
    a `DatasetError` when there is nothing to prepare."""
    inputs, skipped = [], []
    for item in chosen:
        if item.kind == "midi" or (item.kind == "score" and options.from_scores):
            inputs.append(item)
        elif item.kind == "score":
            skipped.append(
                (item.path, "a score (MusicXML/ABC): add --from-scores to make MIDI of it")
            )
    # what this step made from an input that is prepared too (a copy, the MIDI of a kept
    # score) is made again from it, not prepared on its own
    ids = {i.id for i in inputs}
    inputs = [i for i in inputs if not (i.step == MIDI_STEP and i.parent in ids)]
    if not inputs:
        what = "MIDI or score" if options.from_scores else "MIDI"
        if len(chosen) == 1 and chosen[0].kind != "score":
            kind = chosen[0].kind
            raise DatasetError(
                f"{chosen[0].path} is a{'n' * (kind[0] in 'aeiou')} {kind} item, not {what}"
            )
        hint = "" if options.from_scores or not skipped else " (add --from-scores)"
        where = "among those chosen" if selectors != ["all"] else "to prepare"
        raise DatasetError(f"{ds.name} has no {what} items {where}{hint}")
    return inputs, skipped


def _message(options: MidiPrep, n: int) -> str:
    parts = []
    if options.from_scores:
        parts.append("scores to MIDI")
    if options.standardize:
        parts.append(f"standardised at {options.resolution} ticks a beat")
    if options.quantize:
        q = f"quantised to 1/{options.quantize}"
        if options.swing:
            q += f" swing {options.swing:g}"
        if options.strength != 1:
            q += f" strength {options.strength:g}"
        parts.append(q)
    if options.transpose:
        parts.append("transposed " + ",".join(f"{n:+d}" for n in options.transpose))
    if options.tempo_scale:
        parts.append("tempo x" + ",".join(f"{f:g}" for f in options.tempo_scale))
    if options.tokenize:
        parts.append("tokenized")
    return f"MIDI prep of {n} item{'s' * (n != 1)}: " + (", ".join(parts) or "read")


def tokenizer_dir(model: str) -> str:
    """The tokenizer folder of a score model (a shipped name or a model folder)."""
    from engine.hub import MODELS_DIR

    text = model.strip()
    candidates = [Path(text).expanduser()]
    if "/" not in text and os.sep not in text:
        candidates.insert(0, MODELS_DIR / text)
    for folder in candidates:
        if (folder / "tokenizer" / "tokenizer.json").is_file():
            return str((folder / "tokenizer").resolve())
    raise DatasetError(
        f"--model {model!r} is not a score model with a tokenizer; give a name such as "
        f"{names.DEFAULT_MODEL} or a model folder holding tokenizer/"
    )


def _main_id(item: Item, options: MidiPrep) -> str:
    if item.kind == "score" and options.keep_originals:
        return item_id(_midi_path(item.path))
    return item.id


def _midi_path(path: str) -> str:
    p = PurePosixPath(path)
    return str(p.with_suffix(".mid")) if p.suffix else f"{path}.mid"


def _copy_path(path: str, suffix: str) -> str:
    p = PurePosixPath(path)
    stem = str(p.with_suffix("")) if p.suffix else path
    return f"{stem}~{suffix}.mid"


def _job(ds: Dataset, item: Item, options: MidiPrep, tokenizer_dir: str | None) -> dict:
    return {
        "file": str(ds.file(item)),
        "path": item.path,
        "kind": item.kind,
        # copies are never copied again (their own copies would be copies of copies)
        "augment": not item.info.get("augmented"),
        "options": asdict(options),
        "tokenizer_dir": tokenizer_dir,
    }


def _run(jobs: list[dict], workers: int | None) -> Iterable[dict]:
    n = workers if workers is not None else DEFAULT_WORKERS
    n = max(1, min(n, len(jobs), os.cpu_count() or 1))
    if n == 1:
        yield from map(prepare_one, jobs)
        return
    from collections import deque

    from engine.data.workers import spawn_pool

    pool = spawn_pool(n)
    pending: deque = deque()
    try:
        for job in jobs:  # a few jobs ahead of the writer, in order: memory stays flat
            pending.append(pool.submit(prepare_one, job))
            if len(pending) >= 4 * n:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # (an interrupt stops the rest)


def _apply(ch, item: Item, options: MidiPrep, result: dict, report: PrepReport) -> None:
    """Store one input's outputs (copies first, the main output last: resuming looks for
    it) and note what was skipped."""
    for path_suffix, reason in result.get("skipped", []):
        path = _copy_path(item.path, path_suffix) if path_suffix else item.path
        report.skipped.append((path, reason))
    if "error" in result:
        return
    outputs = result["outputs"]
    main_out, copies = outputs[0], outputs[1:]
    group = item.group or item.id
    if item.kind == "score":
        path = _midi_path(item.path)
        other = ch.by_path(path)
        if other is not None and other.id not in (item.id, _main_id(item, options)):
            report.skipped.append(
                (item.path, f"{path} is already in the dataset; the score is left as it is")
            )
            return
        if options.keep_originals:
            base = replace(item, id=item_id(path), parent=item.id, path=path)
        else:
            base = replace(item, path=path)
    else:
        base = item
    base = replace(base, group=group, kind="midi", step=MIDI_STEP, split=item.split)
    made = []
    for out in copies:
        path = _copy_path(item.path, out["suffix"])
        meta, meta_from = _moved_meta(item, out)
        copy = replace(
            base, id=item_id(path), path=path, parent=item.id, meta=meta, meta_from=meta_from
        )
        made.append(_put(ch, copy, out, fresh=True))
    made.insert(0, _put(ch, base, main_out, fresh=item.kind == "score"))
    report.made += made
    repairs = main_out["info"].get("repairs")
    if repairs:
        words = [f"{n} {REPAIR_WORDS[k][n != 1]}" for k, n in repairs.items()]
        report.warnings.append((made[0].path, "repaired: " + ", ".join(words)))
    for out, new in zip([main_out, *copies], made, strict=True):
        if out["info"].get("tokens_skipped"):
            report.warnings.append((new.path, f"not tokenized: {out['info']['tokens_skipped']}"))


def _put(ch, item: Item, out: dict, fresh: bool) -> Item:
    digest = ch.put_bytes(out["midi"])
    info = {} if fresh else {k: v for k, v in item.info.items() if k not in TOKENS_INFO}
    if info.get("repairs") and not out["info"].get("repairs", True):
        out = {**out, "info": {k: v for k, v in out["info"].items() if k != "repairs"}}
    info.update(out["info"])  # (repairs an earlier run made stay told: the file has them)
    extras = {} if fresh else {k: v for k, v in item.extras.items() if k != "tokens"}
    if out.get("tokens") is not None:
        extras["tokens"] = ch.put_bytes(out["tokens"])
    new = replace(
        item,
        hash=digest,
        size=len(out["midi"]),
        duration_s=out["duration_s"],
        info=info,
        extras=extras,
    )
    told = {k for k, v in new.meta_from.items() if v in ("user", "sidecar", "tags")}
    estimates = {k: v for k, v in out["estimates"].items() if k not in told}
    if estimates:
        new = new.with_meta(estimates, "estimate")
    ch.put(new)
    return new


def _moved_meta(item: Item, out: dict) -> tuple[dict, dict]:
    """The original's metadata for a copy: a told key moves with a transposition, a told
    tempo with a tempo factor; estimates are made again from the copy."""
    meta, meta_from = dict(item.meta), dict(item.meta_from)
    for k in [k for k, v in meta_from.items() if v == "estimate"]:
        meta.pop(k, None)
        meta_from.pop(k, None)
    if out.get("transpose") and "key" in meta:
        moved = transpose_key(str(meta["key"]), out["transpose"])
        if moved is None:
            meta.pop("key")
            meta_from.pop("key", None)
        else:
            meta["key"] = moved
    if out.get("tempo_factor") and "tempo" in meta:
        try:
            bpm = round(float(meta["tempo"]) * out["tempo_factor"], 2)
        except (TypeError, ValueError):
            bpm = None
        if bpm is not None and 10 <= bpm <= 400:
            meta["tempo"] = bpm
        else:
            meta.pop("tempo")
            meta_from.pop("tempo", None)
    return meta, meta_from


def transpose_key(text: str, semitones: int) -> str | None:
    """A key such as ``"F# minor"`` (or ``"Bb"``) moved by ``semitones``; None if ``text``
    is not a key."""
    m = re.fullmatch(r"\s*([A-Ga-g])([#b♯♭-]?)\s*(.*)", text)
    if not m:
        return None
    pc = "C D EF G A B".index(m[1].upper()) + {"#": 1, "♯": 1, "b": -1, "♭": -1, "-": -1}.get(
        m[2], 0
    )
    rest = m[3].strip()
    if rest and rest.lower() not in ("major", "minor", "maj", "min", "m"):
        return None
    tonic = names.TONICS[(pc + semitones) % 12]
    return f"{tonic} {rest}" if rest else tonic


# ---- the work on one input (in a worker process) ------------------------------------------------
def prepare_one(job: dict) -> dict:
    """Read one stored MIDI or score file and make its outputs (bytes, info, estimates).

    Returns ``{"outputs": [main, copies…], "skipped": [(suffix, why)]}`` or
    ``{"error": why, "skipped": [("", why)]}``; each output is ``{"suffix", "midi",
    "tokens", "info", "estimates", "duration_s", "transpose", "tempo_factor"}``."""
    opts = MidiPrep(
        **{
            **job["options"],
            "transpose": tuple(job["options"]["transpose"]),
            "tempo_scale": tuple(job["options"]["tempo_scale"]),
        }
    )
    info: dict = {}
    try:
        if job["kind"] == "score":
            score, converted = score_from_notation(Path(job["file"]), job["path"])
            info["converted_from"] = PurePosixPath(job["path"]).suffix.lstrip(".").lower()
            info.update(converted)
            lost = empty = 0
        else:
            score, lost, empty = read_midi_file(Path(job["file"]))
    except DatasetError as e:
        return {"error": str(e), "skipped": [("", str(e))]}
    if opts.standardize:
        score, repairs = standardize(score, opts.resolution, unterminated=lost, empty=empty)
        info["repairs"] = repairs
    if opts.quantize:
        score, q = quantize(score, opts.quantize, opts.swing, opts.strength)
        info["quantized"] = {k: q[k] for k in ("grid", "swing", "strength")}
    variants: list[tuple[str, object, dict]] = [("", score, {})]
    skipped: list[tuple[str, str]] = []
    if job["augment"]:
        for n in opts.transpose:
            suffix = f"t{n:+d}"
            try:
                variants.append((suffix, transpose(score, n), {"transpose": n}))
            except DatasetError as e:
                skipped.append((suffix, str(e)))
        for f in opts.tempo_scale:
            variants.append((f"x{f:g}", scale_tempo(score, f), {"tempo_factor": f}))
    tok = _worker_tokenizer(job["tokenizer_dir"]) if job["tokenizer_dir"] else None
    outputs = []
    for suffix, s, how in variants:
        out_info = dict(info)
        if suffix:
            out_info["augmented"] = suffix
            for k in ("repairs", "converted_from", "works", "tempo_told"):
                out_info.pop(k, None)  # (the original's story, told there once)
        out_info.update(describe(s))
        estimates = estimate_meta(s)
        if info.get("tempo_told") is False:
            estimates.pop("tempo", None)  # (the MIDI default the conversion wrote)
        tokens = None
        if tok is not None:
            try:
                ids, conditions = tokenize(tok, s)
            except DatasetError as e:
                out_info["tokens_skipped"] = str(e)
            else:
                buf = io.BytesIO()
                np.save(buf, np.asarray(ids, dtype=np.int32))
                tokens = buf.getvalue()
                out_info["tokens"] = len(ids)
                out_info["token_conditions"] = conditions
        outputs.append(
            {
                "suffix": suffix,
                "midi": bytes(s.dumps_midi()),
                "tokens": tokens,
                "info": out_info,
                "estimates": estimates,
                "duration_s": round(float(s.to("second").end()), 3),
                **how,
            }
        )
    return {"outputs": outputs, "skipped": skipped}


def read_midi_file(path: Path):
    """(symusic Score, notes the reader left out because they are never released, tracks
    without notes it dropped) of a stored MIDI file; a `DatasetError` with the reason when
    it cannot be read."""
    from engine.errors import ScoreModelError
    from engine.symbolic.midi import read_midi, scan_midi

    try:
        data = path.read_bytes()
        score = read_midi(data)
    except OSError as e:
        reason = (e.strerror or str(e)).lower()
        raise DatasetError(f"cannot read the stored file: {reason}") from None
    except ScoreModelError as e:
        reason = str(e).replace("the MIDI data", "the file").replace("the data", "it")
        raise DatasetError(reason) from None
    note_ons, empty = _raw_counts(data, scan_midi)
    return score, max(0, note_ons - int(score.note_num())), empty


def _raw_counts(data: bytes, scan) -> tuple[int, int]:
    """(note-ons in the file, tracks without any) as the raw data says (symusic drops tracks
    without notes unseen). The first track of a type-1 file is its conductor track (tempo,
    meter), without notes by design: not counted as empty."""
    header_end = 8 + int.from_bytes(data[4:8], "big")
    file_type = int.from_bytes(data[8:10], "big") if len(data) >= 10 else 0
    pos, chunks, note_ons, empty = header_end, 0, 0, 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "big")
        chunk = data[pos : pos + 8 + size]
        pos += 8 + size
        if chunk[:4] != b"MTrk":
            continue
        n = scan(data[:header_end] + chunk).note_ons  # (the one MIDI scanner, a track at a time)
        note_ons += n
        if n == 0 and not (file_type == 1 and chunks == 0):
            empty += 1
        chunks += 1
    return note_ons, empty


def score_from_notation(path: Path, name: str):
    """A symusic Score (480 ticks a quarter) of a MusicXML or ABC file, read with music21 as
    the import reads it (`engine.data.ingest`), and what the conversion says (``{"works":
    n}`` when the file holds several, ``{"tempo_told": False}`` when it sets no tempo)."""
    import warnings

    from music21 import instrument, stream, tempo

    from engine.data.ingest import read_score
    from engine.symbolic.midi import score_from_music21

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, _, parsed = read_score(path, name)
    except UserError as e:
        raise DatasetError(str(e)) from None
    except Exception as e:  # music21 raises many kinds of errors on odd files
        raise DatasetError(f"music21 cannot read this score ({_short(e)})") from None
    extra = {}
    if isinstance(parsed, stream.Opus):
        works = list(parsed.scores)
        if not works:
            raise DatasetError("the file holds no music music21 can read")
        if len(works) > 1:
            extra["works"] = len(works)
        parsed = works[0]
    bpm, told = MIDI_DEFAULT_QPM, False
    for mark in parsed.recurse().getElementsByClass(tempo.MetronomeMark):
        q = mark.getQuarterBPM()
        if q and 10 <= q <= 400:
            bpm, told = float(q), True
            break
    try:
        score = score_from_music21(parsed, tempo_bpm=bpm)
    except Exception as e:
        raise DatasetError(f"the score cannot be turned into MIDI ({_short(e)})") from None
    if score.note_num() == 0:
        raise DatasetError("the score has no notes")
    parts = list(parsed.parts) if isinstance(parsed, stream.Score) and parsed.parts else [parsed]
    sounding = [p for p in parts if any(not n.duration.isGrace for n in p.flatten().notes)]
    auto_ids = {str(p.id) for p in parts if not p.partName}
    for track in score.tracks:  # music21 makes up part IDs: no name, not a random one
        if track.name in auto_ids:
            track.name = ""
    if len(sounding) == len(score.tracks):
        for part, track in zip(sounding, score.tracks, strict=True):
            ins = part.getInstrument(returnDefault=False)
            if isinstance(ins, instrument.UnpitchedPercussion):
                track.is_drum = True
            elif ins is not None and ins.midiProgram is not None:
                track.program = int(ins.midiProgram)
    if not told:
        extra["tempo_told"] = False
    return score, extra


def _short(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:200]


def standardize(score, resolution: int = DEFAULT_RESOLUTION, unterminated: int = 0, empty: int = 0):
    """The score repaired, named and resampled (see the module docstring), and the repairs
    made: ``{name: count}`` for the `REPAIRS` that happened. ``unterminated`` and ``empty``:
    notes and tracks the MIDI reader already left out (`read_midi_file`), counted too."""
    from miditok.constants import MIDI_INSTRUMENTS
    from miditok.utils import fix_offsets_overlapping_notes, remove_duplicated_notes
    from symusic import Note

    score = score.copy()
    repairs = dict.fromkeys(REPAIRS, 0)
    repairs["unterminated"] = unterminated
    repairs["empty_tracks"] = empty
    fix_len = max(1, round(ZERO_LENGTH_FIX_QUARTERS * score.ticks_per_quarter))
    kept = []
    for track in score.tracks:
        soa = track.notes.numpy()
        if len(soa["time"]):
            silent = soa["velocity"] <= 0
            repairs["velocity0"] += int(silent.sum())
            soa = {k: v[~silent] for k, v in soa.items()}
            short = soa["duration"] <= 0
            repairs["zero_length"] += int(short.sum())
            soa["duration"][short] = fix_len
            # onset, pitch, longest first: the duplicate kept is the longest
            order = np.lexsort((-soa["duration"].astype(np.int64), soa["pitch"], soa["time"]))
            soa = {k: v[order] for k, v in soa.items()}
            n = len(soa["time"])
            remove_duplicated_notes(soa)
            repairs["duplicates"] += n - len(soa["time"])
            repairs["overlaps"] += _count_overlaps(soa)
            track.notes = Note.from_numpy(**soa)
            fix_offsets_overlapping_notes(track.notes)
        if track.note_num() == 0:
            repairs["empty_tracks"] += 1
            continue
        if not track.is_drum and _sounds_like_drums(track.name):
            track.is_drum = True
            repairs["drums_to_channel_10"] += 1
        if not track.name.strip():
            track.name = DRUMS_NAME if track.is_drum else MIDI_INSTRUMENTS[track.program]["name"]
        kept.append(track)
    score.tracks = kept
    if score.ticks_per_quarter != resolution:
        score = score.resample(resolution, min_dur=1)
    return score, {k: v for k, v in repairs.items() if v}


def _count_overlaps(soa: dict) -> int:
    """Notes (sorted by onset, then pitch) that sound on when the next of their pitch starts."""
    if len(soa["time"]) < 2:
        return 0
    order = np.lexsort((soa["time"], soa["pitch"]))
    t = soa["time"][order].astype(np.int64)
    end = t + soa["duration"][order].astype(np.int64)
    p = soa["pitch"][order]
    return int(((p[:-1] == p[1:]) & (end[:-1] > t[1:])).sum())


def _sounds_like_drums(name: str) -> bool:
    words = re.findall(r"[a-z]+", name.lower())
    return any(w in DRUM_WORDS for w in words)


def grid_lines(times: np.ndarray, step: float, swing: float) -> np.ndarray:
    """The grid line nearest each time (ticks, int64): lines at ``k * step``, the odd ones
    ``swing * step`` later."""
    t = np.asarray(times, dtype=np.float64)
    k0 = np.floor(t / step)
    cands = k0[:, None] + np.arange(-1, 3)[None, :]
    lines = cands * step + swing * step * (np.mod(cands, 2) == 1)
    best = np.argmin(np.abs(lines - t[:, None]), axis=1)
    return np.rint(lines[np.arange(len(t)), best]).astype(np.int64)


def _next_line(times: np.ndarray, step: float, swing: float) -> np.ndarray:
    """The first grid line after each time (a grid line itself)."""
    t = np.asarray(times, dtype=np.float64)
    k0 = np.floor(t / step)
    cands = k0[:, None] + np.arange(0, 3)[None, :]
    lines = np.rint(cands * step + swing * step * (np.mod(cands, 2) == 1))
    lines[lines <= t[:, None]] = np.inf
    return lines.min(axis=1).astype(np.int64)


def quantize(score, grid: int, swing: float = 0.0, strength: float = 1.0):
    """The score with note onsets and ends moved towards a grid of ``grid`` notes a whole
    note (see the module docstring), and what was done: ``{"grid", "swing", "strength",
    "moved", "merged"}`` (notes whose onset moved; same-pitch notes trimmed or merged after)."""
    from miditok.utils import fix_offsets_overlapping_notes, remove_duplicated_notes
    from symusic import Note

    score = score.copy()
    step = score.ticks_per_quarter * 4 / grid
    moved = merged = 0
    for track in score.tracks:
        soa = track.notes.numpy()
        if not len(soa["time"]):
            continue
        t = soa["time"].astype(np.int64)
        e = t + soa["duration"].astype(np.int64)
        gt = grid_lines(t, step, swing)
        ge = grid_lines(e, step, swing)
        if strength >= 1:
            ge = np.where(ge <= gt, _next_line(gt, step, swing), ge)
        nt = np.rint(t + strength * (gt - t)).astype(np.int64)
        ne = np.rint(e + strength * (ge - e)).astype(np.int64)
        ne = np.maximum(ne, nt + 1)
        moved += int((nt != t).sum())
        soa["time"] = np.maximum(nt, 0).astype(soa["time"].dtype)
        soa["duration"] = (ne - np.maximum(nt, 0)).astype(soa["duration"].dtype)
        order = np.lexsort((-soa["duration"].astype(np.int64), soa["pitch"], soa["time"]))
        soa = {k: v[order] for k, v in soa.items()}
        n = len(soa["time"])
        remove_duplicated_notes(soa)
        merged += n - len(soa["time"]) + _count_overlaps(soa)
        track.notes = Note.from_numpy(**soa)
        fix_offsets_overlapping_notes(track.notes)
    q = {"grid": grid, "swing": swing, "strength": strength, "moved": moved}
    if merged:
        q["merged"] = merged
    return score, q


def transpose(score, semitones: int):
    """A copy with every pitched note ``semitones`` higher (drums stay) and its key
    signatures moved along (fewest accidentals, F# rather than Gb), or a `DatasetError` when a
    note would leave MIDI's 0..127 (MidiTok's ``augment_score``)."""
    from miditok.data_augmentation import augment_score

    pitched = [t.notes.numpy()["pitch"] for t in score.tracks if not t.is_drum and t.note_num()]
    if pitched:
        p = np.concatenate(pitched).astype(np.int64)
        lo, hi = int(p.min()) + semitones, int(p.max()) + semitones
        if lo < 0 or hi > 127:
            edge = f"below 0 (to {lo})" if lo < 0 else f"above 127 (to {hi})"
            raise DatasetError(f"transposing by {semitones:+d} would push notes {edge}; left out")
    moved = augment_score(score, pitch_offset=semitones)
    for ks in moved.key_signatures:  # (MidiTok moves the notes only)
        minor = bool(ks.tonality)
        tonic = (7 * int(ks.key) + (9 if minor else 0) + semitones) % 12
        fifths = 7 * ((tonic + (3 if minor else 0)) % 12) % 12  # of the relative major
        ks.key = fifths - 12 if fifths > 6 else fifths
    return moved


def scale_tempo(score, factor: float):
    """A copy whose tempi are ``factor`` times faster (notes keep their beats)."""
    from symusic import Tempo

    s = score.copy()
    if not len(s.tempos):
        s.tempos.append(Tempo(0, MIDI_DEFAULT_QPM))
    for t in s.tempos:
        t.qpm = float(t.qpm) * factor
    return s


def describe(score) -> dict:
    """What ``info`` holds about a MIDI score."""
    return {
        "tracks": len(score.tracks),
        "notes": int(score.note_num()),
        "ticks_per_beat": int(score.ticks_per_quarter),
        "drum_tracks": sum(1 for t in score.tracks if t.is_drum),
    }


def estimate_meta(score) -> dict:
    """Tempo, meter, key and instruments of a score, as the import estimates them
    (`engine.data.ingest.midi_estimates`: GM families, "drums" for drum tracks), tempi
    outside 10..400 BPM left out."""
    from engine.data.ingest import midi_estimates

    out = midi_estimates(score)
    if "tempo" in out and not 10 <= out["tempo"] <= 400:
        del out["tempo"]
    return out


_TOKENIZERS: dict[str, object] = {}


def _worker_tokenizer(directory: str):
    if directory not in _TOKENIZERS:
        from engine.symbolic.tokenizer import ScoreTokenizer, TokenizerError

        try:
            _TOKENIZERS[directory] = ScoreTokenizer.load(directory)
        except TokenizerError as e:
            raise DatasetError(str(e)) from None
    return _TOKENIZERS[directory]


def tokenize(tok, score) -> tuple[list[int], dict]:
    """The score model's sequence of ``score`` without the Style token (see the module
    docstring) and its conditions; a `DatasetError` says why a piece cannot be tokenized."""
    from engine.symbolic.quality import analyze_key
    from engine.symbolic.tokenizer import (
        CONDITION_ORDER,
        MAX_VOICES,
        METERS,
        PITCH_RANGE,
        TokenizerError,
        tempo_band,
    )

    lo, hi = PITCH_RANGE
    pitched = [t for t in score.tracks if not t.is_drum and t.note_num()]
    if not pitched:
        raise DatasetError("no pitched notes (the model's tokens leave drums out)")
    if len(pitched) > MAX_VOICES:
        raise DatasetError(
            f"{len(pitched)} pitched tracks; the model holds at most {MAX_VOICES} voices"
        )
    p = np.concatenate([t.notes.numpy()["pitch"] for t in pitched]).astype(np.int64)
    outside = int(((p < lo) | (p >= hi)).sum())
    if outside:
        raise DatasetError(
            f"{outside} note{'s' * (outside != 1)} outside the model's range "
            f"{lo}..{hi - 1} (MIDI pitches)"
        )
    for ts in score.time_signatures:
        meter = f"{ts.numerator}/{ts.denominator}"
        if meter not in METERS:
            raise DatasetError(f"meter {meter} is not one the model reads ({', '.join(METERS)})")
    try:
        piece = tok.encode_score(score, "the piece")
        tonic, mode = analyze_key(score)
    except (TokenizerError, ValueError) as e:
        raise DatasetError(str(e)) from None
    if len(piece.tracks) > MAX_VOICES:
        raise DatasetError(
            f"{len(piece.tracks)} voices once read; the model holds at most {MAX_VOICES}"
        )
    ts_id = piece.tracks[0].bars[0][1]
    bpm = float(score.tempos[0].qpm) if len(score.tempos) else MIDI_DEFAULT_QPM
    conditions = {
        "key": names.TONICS[tonic],
        "mode": mode,
        "meter": tok.value(ts_id) if tok.kind(ts_id) == "TimeSig" else "4/4",
        "tempo": tempo_band(bpm),
        "voices": str(len(piece.tracks)),
    }
    ids = tok.build_sequence({"style": names.STYLES[0], **conditions}, piece.tracks)
    style_slot = 1 + CONDITION_ORDER.index("style")
    del ids[style_slot]
    return ids, conditions
