"""Build a tokenized training set from the music21 corpus (public-domain scores).

Each corpus file is parsed with music21 (multi-tune ABC files are parsed once, as an Opus),
its key analysed, converted to a symusic score (``engine.symbolic.midi``) and tokenized per
track and bar.
The result is a folder::

    pieces.jsonl    one line per piece: id, style, key, mode, meter, tempo, voices, programs,
                    track token offsets
    tokens.npy      all bar tokens, int16, concatenated
    bars.npy        [N + 1] start offsets of each bar in tokens.npy
    split.json      seed and the held-out piece ids (validation)
    failed.jsonl    files or tunes that could not be parsed, with the reason
    tokenizer/      the ScoreTokenizer used

Pieces that fail to parse are reported and skipped; they never stop the build.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import names
from engine.errors import UserError
from engine.progress import Progress, ProgressFn

# Style of each top-level folder of the music21 corpus; folders not listed are skipped
# (theory exercises, demos, 20th-century atonal pieces, single lead sheets).
COLLECTION_STYLES = {
    "bach": "chorale",
    "palestrina": "renaissance",
    "josquin": "renaissance",
    "lusitano": "renaissance",
    "monteverdi": "madrigal",
    "trecento": "medieval",
    "ciconia": "medieval",
    "luca": "medieval",
    "ryansMammoth": "celtic",
    "oneills1850": "celtic",
    "airdsAirs": "celtic",
    "nottingham-dataset": "celtic",
    "essenFolksong": "folk",
    "miscFolk": "folk",
    "beethoven": "classical",
    "mozart": "classical",
    "haydn": "classical",
    "schubert": "classical",
    "schumann_robert": "classical",
    "schumann_clara": "classical",
    "chopin": "classical",
    "weber": "classical",
    "handel": "classical",
    "corelli": "classical",
    "cpebach": "classical",
    "beach": "classical",
}
# Files inside a collection whose style differs from the collection's (None: skipped;
# han1/han2 are Chinese folk songs inside the Essen collection).
FILE_STYLES: dict[str, str | None] = {
    "essenFolksong/irl.abc": "celtic",
    "essenFolksong/han1.abc": None,
    "essenFolksong/han2.abc": None,
}
# General MIDI program given to every part of these styles (the corpus has no instruments
# for them): 52 Choir Aahs for vocal music, 40 Violin for fiddle tunes, 73 Flute for songs.
STYLE_PROGRAMS = {
    "chorale": 52,
    "renaissance": 52,
    "madrigal": 52,
    "medieval": 52,
    "celtic": 40,
    "folk": 73,
}
# Roman-numeral analyses are chord reductions, not the music itself.
SKIP_SUFFIXES = (".rntxt",)
# Some works exist in several formats; keep the first of these.
FORMAT_PREFERENCE = (".mxl", ".xml", ".musicxml", ".krn", ".abc")
DEFAULT_TEMPO_BPM = names.DEFAULT_TEMPO_BPM
VAL_FRACTION = 0.05
SPLIT_SEED = 1234


class CorpusError(UserError, RuntimeError):
    """A user-facing problem while building the corpus."""


@dataclass
class CorpusFile:
    path: str  # relative to the corpus root, e.g. "bach/bwv66.6.mxl"
    style: str


def style_of(path: str) -> str | None:
    """Training style of a corpus file, or None if it is not used."""
    if path.endswith(SKIP_SUFFIXES):
        return None
    if path in FILE_STYLES:
        return FILE_STYLES[path]
    return COLLECTION_STYLES.get(path.split("/")[0])


def duplicate_of(path: str, paths: set[str]) -> str | None:
    """The preferred file of the same work in another format (bwv277.krn → bwv277.mxl)."""
    stem, ext = os.path.splitext(path)
    for better in (
        FORMAT_PREFERENCE[: FORMAT_PREFERENCE.index(ext)] if ext in FORMAT_PREFERENCE else ()
    ):
        if stem + better in paths:
            return stem + better
    return None


def corpus_files(styles: Iterable[str] | None = None, limit: int | None = None) -> list[CorpusFile]:
    """The music21 core-corpus files we train on, in a stable order (one file per work)."""
    from music21 import corpus

    wanted = set(styles) if styles else None
    out = []
    all_paths = sorted(str(p).split("/corpus/", 1)[-1] for p in corpus.getPaths())
    path_set = set(all_paths)
    for rel in all_paths:
        if duplicate_of(rel, path_set):
            continue
        style = style_of(rel)
        if style is None:
            continue
        if wanted is not None and style not in wanted:
            continue
        out.append(CorpusFile(rel, style))
    if limit is not None:
        # Keep every style represented in small builds: take files round-robin by style.
        by_style: dict[str, list[CorpusFile]] = {}
        for f in out:
            by_style.setdefault(f.style, []).append(f)
        out = []
        while len(out) < limit and any(by_style.values()):
            for s in sorted(by_style):
                if by_style[s] and len(out) < limit:
                    out.append(by_style[s].pop(0))
    return out


def _scores_of(path: str):
    """Yield (number, title, composer, music21 Score) for every work in a corpus file."""
    from music21 import corpus, stream

    parsed = corpus.parse(path, forceSource=True)
    if isinstance(parsed, stream.Opus):
        for i, s in enumerate(parsed.scores):
            yield (s.metadata.number if s.metadata else None) or i + 1, s
    else:
        yield None, parsed


def _tempo_bpm(s) -> float:
    from music21 import tempo

    marks = list(s.recurse().getElementsByClass(tempo.MetronomeMark))
    for m in marks:
        bpm = m.getQuarterBPM()
        if bpm and 20 <= bpm <= 300:
            return float(bpm)
    return DEFAULT_TEMPO_BPM


def _process_file(args: tuple[CorpusFile, str]) -> tuple[list[dict], list[dict]]:
    """Worker: parse one corpus file and tokenize every work in it."""
    cf, tokenizer_dir = args
    warnings.filterwarnings("ignore")
    from engine.symbolic.midi import score_from_music21
    from engine.symbolic.tokenizer import ScoreTokenizer, tempo_band

    tok = _worker_tokenizer(tokenizer_dir, ScoreTokenizer)
    pieces, failed = [], []
    try:
        works = list(_scores_of(cf.path))
    except Exception as e:  # music21 raises many kinds of errors on odd files
        return [], [{"id": cf.path, "error": f"{type(e).__name__}: {e}"[:300]}]
    for number, s in works:
        pid = cf.path if number is None else f"{cf.path}#{number}"
        try:
            key = s.analyze("key")
            ts = s.recurse().getElementsByClass("TimeSignature")
            meter = ts[0].ratioString if ts else "4/4"
            bpm = _tempo_bpm(s)
            score = score_from_music21(s, tempo_bpm=bpm)
            piece = tok.encode_score(score)
            program = STYLE_PROGRAMS.get(cf.style)
            tracks = []
            for t in piece.tracks:
                tracks.append(
                    {
                        "program": program if program is not None else t.program,
                        "name": t.name,
                        "bars": [[int(i) for i in bar] for bar in t.bars],
                    }
                )
            meter_tok = piece.tracks[0].bars[0][1]
            pieces.append(
                {
                    "id": pid,
                    "style": cf.style,
                    "title": (s.metadata.title if s.metadata else "") or "",
                    "composer": (s.metadata.composer if s.metadata else "") or "",
                    "tonic": key.tonic.pitchClass,
                    "mode": key.mode if key.mode in ("major", "minor") else "major",
                    "meter": tok.value(meter_tok) if tok.kind(meter_tok) == "TimeSig" else meter,
                    "tempo_bpm": bpm,
                    "tempo": tempo_band(bpm),
                    "tracks": tracks,
                }
            )
        except Exception as e:
            failed.append({"id": pid, "error": f"{type(e).__name__}: {e}"[:300]})
    return pieces, failed


_TOKENIZERS: dict[str, object] = {}


def _worker_tokenizer(directory, cls):
    if directory not in _TOKENIZERS:
        _TOKENIZERS[directory] = cls.load(directory)
    return _TOKENIZERS[directory]


def build_corpus(
    out_dir: str | Path,
    *,
    styles: Iterable[str] | None = None,
    limit: int | None = None,
    paths: Iterable[str] | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    val_fraction: float = VAL_FRACTION,
    seed: int = SPLIT_SEED,
) -> dict:
    """Parse, tokenize and split the music21 corpus into ``out_dir``; return a summary.

    ``styles`` / ``limit`` select a subset (``limit`` takes files round-robin by style);
    ``paths`` names corpus files exactly (``"bach/bwv66.6.mxl"``). A corpus already in
    ``out_dir`` is replaced (moved to the trash beside it); any other folder is refused.
    """
    out_dir = Path(out_dir)
    files = corpus_files(styles, limit)
    if paths is not None:
        wanted = list(paths)
        by_path = {f.path: f for f in corpus_files()}
        missing = [p for p in wanted if p not in by_path]
        if missing:
            raise CorpusError(f"not in the music21 corpus: {', '.join(missing)}")
        files = [by_path[p] for p in wanted]
    if not files:
        raise CorpusError("no music21 corpus files match; check the style names")
    from engine.record import OutputFolder

    out_dir.absolute().parent.mkdir(parents=True, exist_ok=True)
    folder = OutputFolder(
        out_dir, overwrite=True, error=CorpusError, replaceable=check_corpus_folder
    )
    with folder:
        return _build(folder.path, files, workers, progress, val_fraction, seed)


CORPUS_FILES = (
    "tokenizer",
    "pieces.jsonl",
    "tokens.npy",
    "bars.npy",
    "failed.jsonl",
    "split.json",
    "summary.json",
)


def check_corpus_folder(folder: Path) -> None:
    """Raise `engine.errors.OutputError` unless ``folder`` holds a built corpus and nothing
    else (so that building again may replace it)."""
    from engine.errors import OutputError

    names = sorted(p.name for p in folder.iterdir())
    foreign = [n for n in names if n not in CORPUS_FILES]
    if "pieces.jsonl" not in names or foreign:
        why = f"it holds {', '.join(foreign[:3])}" if foreign else "it has no pieces.jsonl"
        raise OutputError(
            f"{folder} is not a corpus folder Disco-Musica built ({why}); nothing was "
            "replaced: choose another --out"
        )


def _build(tmp: Path, files, workers, progress, val_fraction, seed) -> dict:
    from engine.symbolic.tokenizer import ScoreTokenizer

    tok = ScoreTokenizer()
    tok.save(tmp / "tokenizer")
    workers = workers or max(1, min(len(files), os.cpu_count() or 1))
    pieces: list[dict] = []
    failed: list[dict] = []
    jobs = [(f, str(tmp / "tokenizer")) for f in files]
    if workers == 1:
        results = map(_process_file, jobs)
        pool = None
    else:
        pool = mp.get_context("spawn").Pool(workers, maxtasksperchild=50)
        results = pool.imap_unordered(_process_file, jobs)
    try:
        for n, (ps, fs) in enumerate(results, 1):
            pieces += ps
            failed += fs
            if progress:
                current = ps[0]["id"] if ps else (fs[0]["id"] if fs else "")
                progress(Progress("files", n, len(files), current))
    finally:
        if pool is not None:
            pool.terminate()
    pieces.sort(key=lambda p: p["id"])
    failed.sort(key=lambda f: f["id"])
    return _write_dataset(tmp, pieces, failed, val_fraction, seed)


def write_pieces(
    out: Path,
    pieces: list[dict],
    failed: list[dict],
    val_ids: list[str],
    source: dict,
) -> dict:
    """Write tokenized ``pieces`` (as `_process_file` makes them) as a corpus folder with the
    given held-out ids, e.g. from a user's dataset (``source`` names it in summary.json)."""
    return _write_dataset(out, pieces, failed, 0.0, 0, val_ids=val_ids, source=source)


def _write_dataset(
    out: Path,
    pieces: list[dict],
    failed: list[dict],
    val_fraction: float,
    seed: int,
    *,
    val_ids: list[str] | None = None,
    source: dict | None = None,
) -> dict:
    tokens: list[int] = []
    bar_starts: list[int] = []
    with open(out / "pieces.jsonl", "w") as f:
        for p in pieces:
            for t in p["tracks"]:
                t["bar_offset"] = len(bar_starts)
                t["num_bars"] = len(t["bars"])
                for bar in t.pop("bars"):
                    bar_starts.append(len(tokens))
                    tokens += bar
            f.write(json.dumps(p) + "\n")
    bar_starts.append(len(tokens))
    np.save(out / "tokens.npy", np.asarray(tokens, dtype=np.int16))
    np.save(out / "bars.npy", np.asarray(bar_starts, dtype=np.int64))
    with open(out / "failed.jsonl", "w") as f:
        for x in failed:
            f.write(json.dumps(x) + "\n")
    # Split by piece, per style, with a fixed seed (every style gets at least one).
    rng = random.Random(seed)
    val: list[str] = []
    by_style: dict[str, list[str]] = {}
    for p in pieces:
        by_style.setdefault(p["style"], []).append(p["id"])
    for style in sorted(by_style) if val_ids is None else ():
        ids = sorted(by_style[style])
        rng.shuffle(ids)
        k = max(1, round(len(ids) * val_fraction)) if len(ids) > 1 else 0
        val += sorted(ids[:k])
    if val_ids is not None:
        val = sorted(val_ids)
    split = {"seed": seed, "val_fraction": val_fraction, "val": sorted(val)}
    (out / "split.json").write_text(json.dumps(split, indent=1))
    summary = {
        "pieces": len(pieces),
        "failed": len(failed),
        "tokens": len(tokens),
        "val_pieces": len(val),
        "by_style": {s: len(v) for s, v in sorted(by_style.items())},
        **({"source": source} if source is not None else {}),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
