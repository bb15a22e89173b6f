"""What a dataset holds: counts, hours, metadata distributions and a duplicate report.

`stats` reads one version of a dataset (nothing is written to it) and returns a plain dict
(the CLI prints it as tables or JSON):

- ``counts``: items by kind, split (``unassigned`` for none) and step, distinct files, groups
  and bytes;
- ``hours``: total duration of the audio, MIDI, score and video items (and how many of
  those have no duration);
- ``fields``: for every metadata field (`engine.data.store.META_FIELDS`) how many items have
  it, how many of those values were told (file tags, a sidecar, the user, a public
  dataset's own metadata) and how many estimated, by source, and the distribution of its
  values (each word of a list field counted once per item; tempo in `TEMPO_BINS`; title and
  caption only as a number of distinct values);
- ``duplicates``: ``exact`` (one content hash at several paths) and ``near`` (pairs whose
  chroma fingerprints match, see below).

Near-duplicates: every audio and MIDI item gets a chroma fingerprint, a sequence of 12-bin
pitch-class vectors, one per `FRAME_S` seconds over its first `FINGERPRINT_S` seconds:

- audio: read (the first `FINGERPRINT_S` seconds, mixed to mono), resampled to
  `AUDIO_RATE` Hz, chroma from librosa's STFT chroma (unnormalised, so silence stays
  silent), the frames of each `FRAME_S` block averaged; an item's own features file
  (``extras["features"]``, an .npz with ``chroma`` and its frame rate) is used instead when
  it has one;
- MIDI: from its notes (symusic, in seconds): each note adds its time in a block, times its
  velocity / 127, to its pitch class; drum tracks are left out.

The blocks are blurred over time (weights 1, 2, 1: a pair offset by half a block still
matches); blocks quieter than `SILENCE_DB` below the loudest are silent (zero); each other block is
scaled to unit length, then the item's mean block is taken away from its blocks (so what is
compared is how the harmony moves, not the key every piece in a key shares). Two items are
compared by the normalised cross-correlation of their fingerprints,
``sum_k <a_k, b_{k+s}> / (|a| |b|)`` over the blocks both cover, at the best time offset
``s`` within ±`MAX_SHIFT_S` seconds and (``transpose=True``, the default) the best of the
12 transpositions; at least `MIN_OVERLAP` of the shorter one's sounding blocks must overlap.
A pair at or above `NEAR_THRESHOLD` is a near-duplicate (the same recording with noise or
another gain or a few seconds trimmed; the same MIDI transposed or with a note changed).
Only items of one kind are compared, and never two items of one group (the chunks of one
song, augmented copies) or two with the same content (those are exact duplicates).
Fingerprints are kept in the user cache (``fingerprints/``), by content hash.

``progress`` gets ``Progress("fingerprints", contents read, contents to read, path)``, then
``"comparisons (audio)"`` / ``"comparisons (midi)"`` (items whose pairs are compared / all).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.audio.io import resample
from engine.data.store import LIST_FIELDS, META_FIELDS, SPLITS, Dataset, Item
from engine.progress import Progress, ProgressFn

# ---- fingerprint parameters (documented in the module docstring and docs/datasets.md) -------
FRAME_S = 0.5
"""Seconds of one fingerprint block."""
FINGERPRINT_S = 60.0
"""Seconds of each item that are fingerprinted (from its start)."""
FRAMES = int(round(FINGERPRINT_S / FRAME_S))
AUDIO_RATE = 11025
"""Sample rate audio is analysed at, Hz."""
AUDIO_HOP = 512
"""STFT hop at `AUDIO_RATE`, samples (about 46 ms)."""
AUDIO_FFT = 2048
SILENCE_DB = 30.0
"""A block this many dB below the item's loudest block counts as silent."""
MAX_SHIFT_S = 3.0
"""Largest time offset between two items that is tried, seconds."""
MAX_SHIFT = int(round(MAX_SHIFT_S / FRAME_S))
MIN_BLOCKS = 8
"""An item needs this many sounding blocks (4 s) to be fingerprinted."""
MIN_OVERLAP = 0.5
"""Share of the shorter item's sounding blocks that must overlap the other's."""
NEAR_THRESHOLD = 0.85
"""Similarity (0..1) from which a pair is reported as a near-duplicate."""
FINGERPRINT_VERSION = 1
COMPARED_KINDS = ("audio", "midi")

TEMPO_BINS = (60, 80, 100, 120, 140, 160, 180)
"""Upper edges (BPM) of the tempo bins: under 60, 60-79, … 160-179, 180 and over."""
UNASSIGNED = "unassigned"
KINDS_WITH_HOURS = ("audio", "midi", "score", "video")


# ---- the report ------------------------------------------------------------------------------
def stats(
    ds: Dataset,
    version: str | None = None,
    *,
    near: bool = True,
    threshold: float = NEAR_THRESHOLD,
    transpose: bool = True,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> dict:
    """Counts, hours, metadata distributions and duplicates of a version (HEAD by default)
    of ``ds``; see the module docstring for each part. ``near=False`` skips the chroma
    fingerprints (the slow part) and reports exact duplicates only."""
    vid = ds.resolve(version)
    items = ds.items(vid)
    out = {
        "dataset": ds.name,
        "id": ds.ident(vid),
        "version": vid,
        "items": len(items),
        "counts": counts(items),
        "hours": hours(items),
        "fields": fields(items),
    }
    dups = {"exact": exact_duplicates(items)}
    if near:
        dups.update(
            near_duplicates(
                ds,
                items,
                threshold=threshold,
                transpose=transpose,
                workers=workers,
                progress=progress,
            )
        )
    out["duplicates"] = dups
    return out


def counts(items: list[Item]) -> dict:
    """Items by kind, split and step; distinct files, groups and bytes."""
    splits = Counter(i.split or UNASSIGNED for i in items)
    return {
        "by_kind": dict(sorted(Counter(i.kind for i in items).items())),
        "by_split": {s: splits[s] for s in (*SPLITS, UNASSIGNED, *sorted(splits)) if splits.get(s)},
        "by_step": dict(sorted(Counter(i.step for i in items).items())),
        "by_kind_and_split": {
            k: dict(sorted(Counter(i.split or UNASSIGNED for i in items if i.kind == k).items()))
            for k in sorted({i.kind for i in items})
        },
        "files": len({i.hash for i in items}),
        "groups": len({_group(i) for i in items}),
        "bytes": sum(i.size for i in items),
    }


def hours(items: list[Item]) -> dict:
    """Hours of audio, MIDI and video (items of unknown duration are counted apart)."""
    out: dict = {}
    for k in KINDS_WITH_HOURS:
        of_kind = [i for i in items if i.kind == k]
        if of_kind:
            out[k] = sum(i.duration_s or 0.0 for i in of_kind) / 3600.0
    out["total"] = sum(out.values())
    out["no_duration"] = sum(
        1 for i in items if i.kind in KINDS_WITH_HOURS and i.duration_s is None
    )
    return out


def tempo_bin(bpm: float) -> str:
    """The `TEMPO_BINS` label of a tempo: ``under 60``, ``60-79`` … ``180 and over``."""
    if bpm < TEMPO_BINS[0]:
        return f"under {TEMPO_BINS[0]}"
    for lo, hi in zip(TEMPO_BINS, TEMPO_BINS[1:], strict=False):
        if bpm < hi:
            return f"{lo}-{hi - 1}"
    return f"{TEMPO_BINS[-1]} and over"


def _tempo_order(label: str) -> int:
    return -1 if label.startswith("under") else int(label.split("-")[0].split()[0])


def fields(items: list[Item]) -> dict:
    """Per metadata field: items with it, told vs estimated, by source, and its values."""
    out = {}
    for name in META_FIELDS:
        having = [i for i in items if name in i.meta]
        sources = Counter(i.meta_from.get(name, "unknown") for i in having)
        estimated = sources.get("estimate", 0)
        entry = {
            "items": len(having),
            "told": len(having) - estimated,
            "estimated": estimated,
            "missing": len(items) - len(having),
            "by_source": dict(sorted(sources.items())),
        }
        if name in ("title", "caption"):
            entry["distinct"] = len({str(i.meta[name]) for i in having})
        else:
            values: Counter = Counter()
            for i in having:
                v = i.meta[name]
                if name in LIST_FIELDS:
                    values.update(dict.fromkeys(v, 1))
                elif name == "tempo":
                    values[tempo_bin(float(v))] += 1
                else:
                    values[str(v)] += 1
            if name == "tempo":
                entry["values"] = dict(sorted(values.items(), key=lambda kv: _tempo_order(kv[0])))
            else:
                entry["values"] = dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0])))
            entry["distinct"] = len(values)
        out[name] = entry
    return out


def _group(item: Item) -> str:
    """An item's group (an item of no group is a group of its own)."""
    return item.group or f"item:{item.id}"


def _ref(item: Item) -> dict:
    return {"id": item.id, "path": item.path, "kind": item.kind}


def exact_duplicates(items: list[Item]) -> list[dict]:
    """Sets of items with the same content at different paths (from more than one group),
    largest first."""
    by_hash: dict[str, list[Item]] = {}
    for i in items:
        by_hash.setdefault(i.hash, []).append(i)
    out = []
    for h, same in by_hash.items():
        if len(same) > 1 and len({_group(i) for i in same}) > 1:
            out.append({"hash": h, "size": same[0].size, "items": [_ref(i) for i in same]})
    out.sort(key=lambda d: (-len(d["items"]), d["items"][0]["path"]))
    return out


# ---- fingerprints ----------------------------------------------------------------------------
def audio_chroma(path: str | Path) -> np.ndarray:
    """Raw chroma blocks [T, 12] (T <= `FRAMES`) of an audio file's first `FINGERPRINT_S`
    seconds; raises `engine.errors.AudioFileError` (or OSError) if it cannot be read."""
    import soundfile as sf

    from engine.audio.io import quiet_decoder, quiet_libraries, read_audio_checked

    p = Path(path)
    try:
        with quiet_libraries(), quiet_decoder():
            info = sf.info(str(p))
            audio, sr = sf.read(
                str(p),
                frames=int(FINGERPRINT_S * info.samplerate),
                dtype="float32",
                always_2d=True,
            )
    except Exception:
        # Not for soundfile (or damaged): the one reader says why, or reads it another way.
        audio, sr, _, _ = read_audio_checked(p)
        audio = audio[: int(FINGERPRINT_S * sr)]
    return audio_chroma_of(audio, int(sr))


def audio_chroma_of(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Raw chroma blocks [T, 12] of samples ([S] or [S, channels]) at ``sample_rate`` Hz."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    audio = audio[: int(FINGERPRINT_S * sample_rate)]
    if audio.shape[0] == 0 or not np.isfinite(audio).all():
        raise ValueError("no finite samples")
    return _chroma_of_signal(resample(audio, sample_rate, AUDIO_RATE))


def _chroma_of_signal(mono: np.ndarray) -> np.ndarray:
    import librosa

    from engine.audio.io import quiet_libraries

    if mono.shape[0] < AUDIO_FFT:
        mono = np.pad(mono, (0, AUDIO_FFT - mono.shape[0]))
    with quiet_libraries():
        chroma = librosa.feature.chroma_stft(
            y=mono, sr=AUDIO_RATE, n_fft=AUDIO_FFT, hop_length=AUDIO_HOP, norm=None
        )  # [12, F]
    return blocks_of(chroma.T, AUDIO_RATE / AUDIO_HOP)


def blocks_of(frames: np.ndarray, fps: float) -> np.ndarray:
    """Frames [F, 12] at ``fps`` frames a second averaged into `FRAME_S` blocks [T, 12]."""
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != 12 or frames.shape[0] == 0:
        raise ValueError(f"chroma of shape {frames.shape} is not [frames, 12]")
    idx = np.floor(np.arange(frames.shape[0]) / fps / FRAME_S).astype(int)
    keep = idx < FRAMES
    idx, frames = idx[keep], frames[keep]
    n = int(idx.max()) + 1 if idx.size else 0
    sums = np.zeros((n, 12))
    np.add.at(sums, idx, frames)
    counts = np.bincount(idx, minlength=n)[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def midi_chroma(path: str | Path) -> np.ndarray:
    """Raw chroma blocks [T, 12] of a MIDI file's first `FINGERPRINT_S` seconds: each note
    adds its seconds in a block times velocity / 127 to its pitch class (drums left out)."""
    from engine.symbolic.midi import read_midi

    score = read_midi(Path(path).read_bytes()).to("second")
    out = np.zeros((FRAMES, 12))
    last = 0
    for track in score.tracks:
        if track.is_drum or not len(track.notes):
            continue
        n = track.notes.numpy()
        for t, d, p, v in zip(n["time"], n["duration"], n["pitch"], n["velocity"], strict=True):
            t, end = float(t), float(t) + max(float(d), 0.0)
            if t >= FINGERPRINT_S:
                continue
            end = min(end, FINGERPRINT_S)
            b0, b1 = int(t // FRAME_S), min(int(end // FRAME_S), FRAMES - 1)
            for b in range(b0, b1 + 1):
                overlap = min(end, (b + 1) * FRAME_S) - max(t, b * FRAME_S)
                if overlap > 0:
                    out[b, int(p) % 12] += overlap * (int(v) / 127.0)
                    last = max(last, b + 1)
    return out[:last].astype(np.float32)


def features_chroma(npz_bytes: bytes) -> np.ndarray | None:
    """Raw chroma blocks from a features .npz (key ``chroma``, [12, F] or [F, 12], with its
    frame rate as ``chroma_fps``/``fps`` or ``sample_rate`` and ``hop_length``), or None when
    it has no chroma or no frame rate."""
    with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as z:
        if "chroma" not in z.files:
            return None
        chroma = np.asarray(z["chroma"], dtype=np.float64)
        fps = None
        for key in ("chroma_fps", "fps", "frame_rate"):
            if key in z.files:
                fps = float(z[key])
                break
        if fps is None and "sample_rate" in z.files and "hop_length" in z.files:
            fps = float(z["sample_rate"]) / float(z["hop_length"])
    if fps is None or not fps > 0 or chroma.ndim != 2 or 12 not in chroma.shape:
        return None
    if chroma.shape[0] == 12 and chroma.shape[1] != 12:
        chroma = chroma.T
    return blocks_of(chroma, fps)


def prepare(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fingerprint [FRAMES, 12], sounding mask [FRAMES]) from raw chroma blocks: blurred
    over time (weights 1, 2, 1), silent blocks zero, the others at unit length less the
    item's mean block."""
    x = np.zeros((FRAMES, 12))
    mask = np.zeros(FRAMES, dtype=bool)
    raw = np.asarray(raw, dtype=np.float64)[:FRAMES]
    if raw.size == 0:
        return x.astype(np.float32), mask
    raw = np.clip(raw, 0, None)
    if raw.shape[0] > 1:  # blur by a block each way: offsets that are not whole blocks still match
        padded = np.pad(raw, ((1, 1), (0, 0)), mode="edge")
        raw = (padded[:-2] + 2 * padded[1:-1] + padded[2:]) / 4
    energy = raw.sum(axis=1)
    top = float(energy.max())
    if not np.isfinite(top) or top <= 0:
        return x.astype(np.float32), mask
    sounding = energy > top * 10 ** (-SILENCE_DB / 10)
    n = raw.shape[0]
    x[:n] = np.where(sounding[:, None], raw, 0.0)
    norms = np.linalg.norm(x[:n], axis=1, keepdims=True)
    x[:n] = np.divide(x[:n], norms, out=np.zeros_like(x[:n]), where=norms > 0)
    mask[:n] = sounding
    if mask.any():
        x[mask] -= x[mask].mean(axis=0)
    return x.astype(np.float32), mask


def similarity(a: np.ndarray, b: np.ndarray, *, transpose: bool = True) -> tuple[float, float, int]:
    """(similarity, offset of b in seconds, semitones b lies above a) of two raw chroma
    block sequences, as `near_duplicates` measures it (0 when they do not overlap enough)."""
    (xa, ma), (xb, mb) = prepare(a), prepare(b)
    fp = np.stack([xa, xb])
    masks = np.stack([ma, mb])
    best, code = _best_matches(fp, masks, np.array([0]), transpose)
    return float(best[0, 1]), *_decode(int(code[0, 1]))


def _decode(code: int) -> tuple[float, int]:
    """(offset of b in seconds, semitones b lies above a) from a match code."""
    shift, t = divmod(code, 12)
    shift -= MAX_SHIFT
    semitones = ((-t + 5) % 12) - 5
    return shift * FRAME_S, int(semitones)


def _best_matches(
    fp: np.ndarray, masks: np.ndarray, rows: np.ndarray, transpose: bool, first: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """For ``rows`` of the fingerprints ``fp`` [N, FRAMES, 12]: the best similarity to each
    item from ``first`` on [len(rows), N - first] and its code ``(shift + MAX_SHIFT) * 12 +
    t`` (b's blocks rolled by t pitch classes and read ``shift`` blocks later than a's)."""
    sounding = masks.sum(axis=1).astype(np.float64)
    need = MIN_OVERLAP * np.minimum(sounding[rows][:, None], sounding[None, first:])
    need = np.maximum(need, MIN_BLOCKS)
    n = fp.shape[0] - first
    best = np.zeros((len(rows), n), dtype=np.float32)
    code = np.zeros((len(rows), n), dtype=np.int32)
    shifts = range(-MAX_SHIFT, MAX_SHIFT + 1)
    trans = range(12) if transpose else (0,)
    m = masks.astype(np.float32)
    for s in shifts:
        # a's blocks k against b's blocks k + s
        if s >= 0:
            a, b = fp[:, : FRAMES - s], fp[first:, s:]
            ma, mb = m[:, : FRAMES - s], m[first:, s:]
        else:
            a, b = fp[:, -s:], fp[first:, : FRAMES + s]
            ma, mb = m[:, -s:], m[first:, : FRAMES + s]
        overlap = ma[rows] @ mb.T  # sounding blocks both cover [R, N]
        na = np.sqrt((a[rows] ** 2).sum(axis=(1, 2)))[:, None]
        nb = np.sqrt((b**2).sum(axis=(1, 2)))[None, :]
        den = na * nb
        ok = (overlap >= need) & (den > 0)
        b_flat = np.ascontiguousarray(b).reshape(n, -1)
        scale = np.where(ok, 1.0 / np.where(den > 0, den, 1.0), 0.0).astype(np.float32)
        for t in trans:
            # <a, b rolled by t> = <a rolled by -t, b>: roll the few rows, not all of b
            a_t = np.roll(a[rows], -t, axis=2).reshape(len(rows), -1)
            sim = (a_t @ b_flat.T) * scale
            better = sim > best
            best[better] = sim[better]
            code[better] = (s + MAX_SHIFT) * 12 + t
    return best, code


def _fingerprint_job(job: tuple[str, str, str, bytes | None]) -> tuple[str, object]:
    """Worker: (item id, raw chroma blocks) or (item id, the reason it has none)."""
    item_id, kind, path, features = job
    try:
        raw = None
        if features is not None:
            raw = features_chroma(features)
        if raw is None:
            raw = midi_chroma(path) if kind == "midi" else audio_chroma(path)
        return item_id, raw
    except Exception as e:  # any unreadable file is listed with its reason, never fatal
        text = " ".join(str(e).split()) or type(e).__name__
        return item_id, f"cannot be fingerprinted: {text}"


def _cache_dir() -> Path | None:
    try:
        from engine.data.public import cache_home

        return cache_home() / "fingerprints" / f"v{FINGERPRINT_VERSION}"
    except Exception:
        return None


def _cached(folder: Path | None, digest: str) -> np.ndarray | None:
    if folder is None:
        return None
    p = folder / digest[:2] / f"{digest}.npy"
    try:
        return np.load(p, allow_pickle=False) if p.is_file() else None
    except (OSError, ValueError):
        return None


def _keep(folder: Path | None, digest: str, raw: np.ndarray) -> None:
    if folder is None:
        return
    try:
        d = folder / digest[:2]
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, raw.astype(np.float32))
        os.replace(tmp, d / f"{digest}.npy")
    except OSError:
        pass  # a cache that cannot be written only costs time


def fingerprints(
    ds: Dataset,
    items: list[Item],
    *,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Raw chroma blocks of each audio and MIDI item (id → [T, 12]) and the items that
    could not be fingerprinted, with the reason. Each content is read once."""
    cache = _cache_dir()
    wanted = [i for i in items if i.kind in COMPARED_KINDS]
    key_of = {i.id: _cache_key(i) for i in wanted}
    found: dict[str, object] = {}  # key -> raw blocks, or the reason there are none
    jobs = []
    for i in wanted:
        key = key_of[i.id]
        if key in found:
            continue
        hit = _cached(cache, key)
        if hit is not None:
            found[key] = hit
            continue
        features = None
        if i.kind == "audio" and i.extras.get("features"):
            try:
                features = ds.object_path(i.extras["features"]).read_bytes()
            except OSError:
                features = None
        found[key] = "not read"
        jobs.append((i.id, i.kind, str(ds.file(i)), features))
    total, done = len(jobs), 0
    paths = {i.id: i.path for i in wanted}
    if progress and total:
        progress(Progress("fingerprints", 0, total, ""))
    for item_id, result in _run_jobs(jobs, workers):
        key = key_of[item_id]
        found[key] = result
        if not isinstance(result, str):
            _keep(cache, key, result)
        done += 1
        if progress:
            progress(Progress("fingerprints", done, total, paths[item_id]))
    raw: dict[str, np.ndarray] = {}
    failed: list[dict] = []
    for i in wanted:
        got = found[key_of[i.id]]
        if isinstance(got, str):
            failed.append({"id": i.id, "path": i.path, "reason": got})
        else:
            raw[i.id] = got
    return raw, failed


def _cache_key(item: Item) -> str:
    """What a fingerprint is kept under: the content hash (and the features file used)."""
    feats = item.extras.get("features") if item.kind == "audio" else None
    if not feats:
        return item.hash
    return hashlib.sha256(f"{item.hash}+{feats}".encode()).hexdigest()


def _run_jobs(jobs: list, workers: int | None) -> Iterator[tuple[str, object]]:
    """Fingerprint jobs, across the cores when there are enough of them to pay for it."""
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    if workers <= 1 or len(jobs) < 8:
        for job in jobs:
            yield _fingerprint_job(job)
        return
    from engine.data.workers import spawn_pool

    with spawn_pool(workers) as pool:
        yield from pool.map(_fingerprint_job, jobs, chunksize=4)


def near_duplicates(
    ds: Dataset,
    items: list[Item],
    *,
    threshold: float = NEAR_THRESHOLD,
    transpose: bool = True,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> dict:
    """Pairs of items whose chroma fingerprints match (see the module docstring):
    ``{"near": [...], "fingerprinted": n, "not_fingerprinted": [...], "method": {...}}``."""
    raw, failed = fingerprints(ds, items, workers=workers, progress=progress)
    by_id = {i.id: i for i in items}
    pairs: list[dict] = []
    too_short = []
    for kind in COMPARED_KINDS:
        ids = []
        fps, masks = [], []
        for i in items:
            if i.kind != kind or i.id not in raw:
                continue
            x, m = prepare(raw[i.id])
            if m.sum() < MIN_BLOCKS:
                too_short.append(
                    {
                        "id": i.id,
                        "path": i.path,
                        "reason": f"under {MIN_BLOCKS * FRAME_S:g} s of sound; not compared",
                    }
                )
                continue
            ids.append(i.id)
            fps.append(x)
            masks.append(m)
        if len(ids) < 2:
            continue
        fp, mk = np.stack(fps), np.stack(masks)
        groups = np.array([_group(by_id[k]) for k in ids])
        hashes = np.array([by_id[k].hash for k in ids])
        block = 256
        for start in range(0, len(ids), block):
            if progress:
                progress(Progress(f"comparisons ({kind})", start, len(ids), ""))
            rows = np.arange(start, min(start + block, len(ids)))
            best, code = _best_matches(fp, mk, rows, transpose, first=start)
            for r_local, r in enumerate(rows):
                for c_local in np.nonzero(best[r_local] >= threshold)[0]:
                    c = start + int(c_local)
                    if c <= r or groups[c] == groups[r] or hashes[c] == hashes[r]:
                        continue
                    offset, semitones = _decode(int(code[r_local, c_local]))
                    pairs.append(
                        {
                            "a": _ref(by_id[ids[r]]),
                            "b": _ref(by_id[ids[c]]),
                            "similarity": round(float(best[r_local, c_local]), 4),
                            "offset_s": offset,
                            "semitones": semitones,
                        }
                    )
        if progress:
            progress(Progress(f"comparisons ({kind})", len(ids), len(ids), ""))
    pairs.sort(key=lambda p: (-p["similarity"], p["a"]["path"], p["b"]["path"]))
    return {
        "near": pairs,
        "fingerprinted": len(raw),
        "not_fingerprinted": sorted(failed + too_short, key=lambda d: d["path"]),
        "method": {
            "frame_s": FRAME_S,
            "seconds": FINGERPRINT_S,
            "max_shift_s": MAX_SHIFT_S,
            "transpose": transpose,
            "threshold": threshold,
            "kinds": list(COMPARED_KINDS),
        },
    }
