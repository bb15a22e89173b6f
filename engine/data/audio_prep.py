"""Preprocessing a dataset's audio: one recorded step (``data prep audio``).

`prep_audio` runs the steps an `AudioPrep` asks for over the audio items chosen, always in
this order, each optional:

1. read the stored file (`engine.audio.io.load_audio`, the project's one reader; M4A/AAC
   through PyAV when it is installed);
2. channels: ``mono`` (the mean of the channels), ``stereo`` (mono doubled; of more than
   two channels the first two, front left and right) or ``keep``;
3. resample to ``sample_rate`` (soxr HQ, `engine.audio.io.resample`, the one resampler);
4. trim silence at both ends (``librosa.effects.trim``: quieter than ``trim_db`` below
   the peak);
5. noise reduction (noisereduce's spectral gate, stationary or not, ``denoise`` = how much
   of the noise is taken away, 0..1);
6. segmentation into chunks of ``segment_s`` = (MIN, MAX) seconds, cut at the quietest
   point (``cut_at="energy"``: RMS on 2048-sample frames) or at the quietest beat
   (``"beats"``: the project's beat chain, `engine.audio.rhythm`) within each window. The
   cuts are placed so that every chunk is MIN..MAX long; when a length cannot be cut so
   (35 s into 20-30 s chunks) the last piece, shorter than MIN, is dropped (its length is
   in the info of the chunk before it, ``dropped_tail_s``). An item shorter than MIN is
   left as it was and listed as skipped;
7. stems: ``hpss`` (librosa's harmonic/percussive separation, offline) makes two items of
   each chunk, ``~harmonic`` and ``~percussive``; ``demucs`` (when the demucs package is
   installed) makes ``~drums``, ``~bass``, ``~other``, ``~vocals`` with its `DEMUCS_MODEL`;
8. loudness: each output (chunk, stem) is brought to ``loudness_lufs`` (pyloudnorm,
   ITU-R BS.1770) unless that would push its true peak (4x oversampled) over ``peak_db``
   dBTP: then it gets only the gain that reaches the ceiling, and its info says so
   (``peak_limited``); so normalising never clips;
9. written as WAV at ``bit_depth`` (16, 24 or 32-bit float; default: the source's depth
   where it is one of those, 24 for 32-bit PCM, else 16), with its features
   (`engine.data.features`) stored beside it (``extras["features"]``), the tempo (heard
   over at least `MIN_TEMPO_BEATS` beats) and key as metadata estimates (a value the user, a
   sidecar or the file's tags gave is never replaced), and ``info``: sample rate, channels,
   bit depth, loudness.

Names: a run that neither segments nor separates keeps each item's ID, path (its extension
becomes .wav) and group; chunks and stems are new items ``stem~003.wav``,
``stem~harmonic.wav``, ``stem~003~harmonic.wav`` whose ``parent`` is the original's ID, in
its group and split, with its metadata; the original leaves the new version unless
``keep_originals`` (older versions keep it). Items that are not audio are left alone.

The work is spread over the cores (a spawn process pool: each worker reads a stored file and
returns the encoded WAV, the features and the info; only this process writes the dataset),
one `Dataset.change` whose ``resume`` key is the step, its parameters and the items chosen:
after a kill, the same command continues where it stopped (an input whose outputs were all
journalled is not done again; one half-done is done again, its outputs replaced by ID).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import posixpath
import sys
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from engine.data.store import Dataset, DatasetError, Item, PrepReport, disk_error, item_id
from engine.progress import Progress, ProgressFn

AUDIO_STEP = "audio"
CHANNELS = ("keep", "mono", "stereo")
WAV_SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
LOUDNESS_RANGE = (-70.0, -5.0)  # LUFS
DEFAULT_PEAK_DB = -1.0  # dBTP: the EBU R128 / streaming ceiling
PEAK_RANGE = (-20.0, 0.0)
TRUE_PEAK_OVERSAMPLE = 4  # BS.1770-4 measures true peak at 4x (192 kHz for 48 kHz audio)
TRIM_DB_RANGE = (10.0, 100.0)  # dB below the peak that counts as silence
DEFAULT_TRIM_DB = 60.0  # librosa's top_db
DEFAULT_DENOISE = 1.0  # noisereduce's prop_decrease
SEGMENT_LIMITS_S = (1.0, 120.0)
DEFAULT_SEGMENT_S = (5.0, 30.0)
CUT_AT = ("energy", "beats")
STEMS = ("hpss", "demucs")
HPSS_STEMS = ("harmonic", "percussive")
DEMUCS_MODEL = "htdemucs"  # Hybrid Transformer Demucs: drums, bass, other, vocals
MIN_PREP_SECONDS = 0.5  # shorter audio (after trimming) is not preprocessed
MIN_TEMPO_BEATS = 6  # a tempo heard over fewer beats is not kept as an estimate
ENERGY_FRAME, ENERGY_HOP = 2048, 512  # RMS frames the quiet cut points are found on
PREP_WORKERS = 2
DEMUCS_INSTALL = (
    "--stems demucs needs the demucs package, which is not installed: `pip install demucs` "
    f"(it separates drums, bass, vocals and other with its {DEMUCS_MODEL} model, downloaded "
    "on first use); --stems hpss works without it"
)


@dataclass
class AudioPrep:
    """What `prep_audio` does; every field off by default except the features (see the
    module docstring for the order)."""

    sample_rate: int | None = None
    """Hz (8000..192000), or None to keep each file's rate."""
    channels: str = "keep"
    """``mono``, ``stereo`` or ``keep``."""
    bit_depth: str | None = None
    """``"16"``, ``"24"``, ``"32f"`` (32-bit float), or None (the source's where possible)."""
    loudness_lufs: float | None = None
    """Target integrated loudness (-70..-5 LUFS), or None to leave levels alone."""
    peak_db: float = DEFAULT_PEAK_DB
    """The true-peak ceiling loudness normalisation keeps under (-20..0 dBTP)."""
    trim_db: float | None = None
    """Trim silence quieter than this many dB below the peak (10..100), or None."""
    denoise: float | None = None
    """Noise reduction strength (0 < s <= 1: the fraction of the noise taken away), or None."""
    stationary_noise: bool = False
    """The noise is steady (hiss, hum): estimate it once over the whole file (faster)."""
    segment_s: tuple[float, float] | None = None
    """(MIN, MAX) chunk seconds (1..120, MIN <= MAX), or None for whole files."""
    cut_at: str = "energy"
    """Where chunks are cut: ``energy`` (the quietest point) or ``beats`` (the quietest beat)."""
    stems: str | None = None
    """``hpss`` or ``demucs``, or None."""
    features: bool = True
    """Store features beside each output and estimate its tempo and key."""
    keep_originals: bool = False
    """Keep the items that were segmented or separated in the new version."""

    def check(self) -> AudioPrep:
        """Itself, or a `DatasetError` naming the first field out of range and its range."""
        from engine.audio.render import SAMPLE_RATE_RANGE  # the renderer's own limits

        sr = self.sample_rate
        if sr is not None and (
            isinstance(sr, bool)
            or not isinstance(sr, int | np.integer)
            or not SAMPLE_RATE_RANGE[0] <= sr <= SAMPLE_RATE_RANGE[1]
        ):
            raise DatasetError(
                f"sample_rate (--sample-rate) must be a whole number of Hz from "
                f"{SAMPLE_RATE_RANGE[0]} to {SAMPLE_RATE_RANGE[1]}, not {sr!r}"
            )
        _choice("channels", self.channels, CHANNELS)
        if self.bit_depth is not None:
            _choice("bit_depth", str(self.bit_depth), tuple(WAV_SUBTYPES), "--bit-depth")
            self.bit_depth = str(self.bit_depth)
        if self.loudness_lufs is not None:
            _number("loudness_lufs", "--loudness", self.loudness_lufs, *LOUDNESS_RANGE, "LUFS")
        _number("peak_db", "--peak", self.peak_db, *PEAK_RANGE, "dBTP")
        if self.trim_db is not None:
            _number("trim_db", "--trim-db", self.trim_db, *TRIM_DB_RANGE, "dB")
        if self.denoise is not None:
            _number("denoise", "--denoise", self.denoise, 0.0, 1.0, "", lo_open=True)
        if self.segment_s is not None:
            seg = self.segment_s
            lo, hi = SEGMENT_LIMITS_S
            if (
                not isinstance(seg, tuple | list)
                or len(seg) != 2
                or not all(_finite(v) for v in seg)
                or not lo <= seg[0] <= seg[1] <= hi
            ):
                raise DatasetError(
                    f"segment_s (--segment) must be MIN-MAX seconds with {lo:g} <= MIN <= MAX "
                    f"<= {hi:g}, e.g. 5-30, not {_shown(seg)}"
                )
            self.segment_s = (float(seg[0]), float(seg[1]))
        _choice("cut_at", self.cut_at, CUT_AT, "--cut-at")
        if self.stems is not None:
            _choice("stems", self.stems, STEMS)
        return self

    @property
    def one_to_one(self) -> bool:
        """Each item gives one item (no segmentation, no stems): IDs and paths are kept."""
        return self.segment_s is None and self.stems is None

    def step(self) -> dict:
        """The version's record of this step: its name and every parameter."""
        d = asdict(self)
        if d["segment_s"] is not None:
            d["segment_s"] = list(d["segment_s"])
        return {"name": AUDIO_STEP, **d}


def _finite(v) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool) and math.isfinite(v)


def _shown(v) -> str:
    if isinstance(v, tuple | list) and len(v) == 2:
        return "-".join(f"{x:g}" if _finite(x) else repr(x) for x in v)
    return repr(v)


def _choice(name: str, value, allowed: tuple, flag: str | None = None) -> None:
    if value not in allowed:
        raise DatasetError(
            f"{name} ({flag or '--' + name}) must be one of {', '.join(allowed)}, not {value!r}"
        )


def _number(name, flag, value, lo, hi, unit, lo_open=False) -> None:
    ok = _finite(value) and lo <= value <= hi and not (lo_open and value == lo)
    if not ok:
        span = f"more than {lo:g} and at most {hi:g}" if lo_open else f"{lo:g} to {hi:g}"
        raise DatasetError(
            f"{name} ({flag}) must be {span}{' ' + unit if unit else ''}, not {value!r}"
        )


def check_demucs() -> None:
    """A `DatasetError` saying how to install demucs when it is not installed."""
    import importlib.util

    if importlib.util.find_spec("demucs") is None:
        raise DatasetError(DEMUCS_INSTALL)


# ---- the step -----------------------------------------------------------------------------------
def prep_audio(
    ds: Dataset,
    options: AudioPrep,
    selectors: Iterable[str] = ("all",),
    *,
    progress: ProgressFn | None = None,
    command: list | None = None,
    workers: int | None = None,
) -> PrepReport:
    """Run ``options`` over the audio items ``selectors`` choose (IDs, paths, globs, ``all``)
    as one new version of ``ds``; see the module docstring. ``workers``: processes (default:
    up to `PREP_WORKERS`, one per core and input; 1 works in this process). ``progress``
    gets ``Progress("files", done, total, path)`` per input."""
    options.check()
    if options.stems == "demucs":
        check_demucs()
    found = ds.find(list(selectors))
    chosen = [i for i in found if i.kind == "audio"]
    if not chosen:
        if not found:
            raise DatasetError(f"{ds.name} has no items yet; import some audio first")
        raise DatasetError(
            f"none of the items chosen is audio ({found[0].path} is a {found[0].kind} item); "
            "nothing to prepare: choose audio items with --items"
        )
    step = options.step()
    key = json.dumps(
        {"step": step, "items": sorted((i.id, i.hash) for i in chosen)}, sort_keys=True
    )
    resume = hashlib.sha256(key.encode()).hexdigest()
    report = PrepReport()
    what = f"{len(chosen)} audio item{'s' * (len(chosen) != 1)}"
    try:
        with ds.change(step, f"prep audio: {what}", command=command, resume=resume) as ch:
            _work(ch, ds, chosen, options, report, progress, workers)
    except OSError as e:  # writing the dataset: a full disk, a read-only folder
        raise disk_error(e, ds.path) from None
    report.version = ch.version
    return report


def _work(ch, ds: Dataset, chosen: list[Item], options, report, progress, workers) -> None:
    """The inside of `prep_audio`'s change: what an interrupted run did, then the rest."""
    finished = _finished(chosen, ch.done, options)
    todo = []
    for item in chosen:
        if item.id in finished:
            report.made += finished[item.id]
            if not options.one_to_one and not options.keep_originals:
                ch.remove(item.id)  # (a no-op when the interrupted run had removed it)
                report.removed.append(item.id)
        else:
            todo.append(item)
    total = len(chosen)
    count = total - len(todo)
    if progress:
        progress(Progress("files", count, total, ""))
    jobs = [(str(ds.file(i)), i.path, options) for i in todo]
    n = workers or max(1, min(PREP_WORKERS, os.cpu_count() or 1, len(jobs)))
    for item, result in zip_results(todo, jobs, n):
        count += 1
        for text in result.get("warnings", ()):
            report.warnings.append((item.path, text))
        if "skip" in result:
            report.skipped.append((item.path, result["skip"]))
        else:
            _put_outputs(ch, item, result["outputs"], options, report)
        if progress:
            progress(Progress("files", count, total, item.path))


def _finished(chosen: list[Item], done: list[Item], options: AudioPrep) -> dict[str, list[Item]]:
    """Inputs whose outputs an interrupted run of the same step had all journalled."""
    if not done:
        return {}
    ids = {i.id for i in chosen}
    out: dict[str, list[Item]] = {}
    if options.one_to_one:
        for d in done:
            if d.id in ids:
                out[d.id] = [d]
        return out
    by_parent: dict[str, list[Item]] = {}
    for d in done:
        if d.parent in ids:
            by_parent.setdefault(d.parent, []).append(d)
    for parent, outs in by_parent.items():
        parts = {d.info.get("part") for d in outs}
        if all(len(parts) == d.info.get("parts") for d in outs):
            out[parent] = sorted(outs, key=lambda d: d.path)
    return out


def default_depth(file: str | Path) -> str:
    """The bit depth a file is written at when none is asked for: its own where it is 16,
    24 or float, 24 for 32-bit PCM, else 16 (MP3, 8-bit, what soundfile cannot read)."""
    import soundfile as sf

    try:
        subtype = sf.info(str(file)).subtype
    except Exception:  # not a file libsndfile reads (M4A through PyAV): 16-bit
        return "16"
    return {"PCM_24": "24", "PCM_32": "24", "FLOAT": "32f", "DOUBLE": "32f"}.get(subtype, "16")


def zip_results(items: list, jobs: list, workers: int) -> Iterator[tuple[object, dict]]:
    """(item, `process_file` result) for each job, as they finish; over ``workers`` spawned
    processes (at most twice as many jobs in flight, so memory stays flat however many
    there are), or in this process for 1."""
    if workers <= 1:
        for item, job in zip(items, jobs, strict=True):
            yield item, process_file(*job)
        return
    from engine.data.workers import spawn_pool

    pool = spawn_pool(workers)
    try:
        queue = iter(zip(items, jobs, strict=True))
        running: dict = {}

        def submit() -> bool:
            nxt = next(queue, None)
            if nxt is None:
                return False
            running[pool.submit(process_file, *nxt[1])] = nxt[0]
            return True

        for _ in range(2 * workers):
            if not submit():
                break
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                item = running.pop(fut)
                yield item, fut.result()
                submit()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _put_outputs(ch, item: Item, outputs: list[dict], options: AudioPrep, report) -> None:
    """Store the outputs of one input and put their items (the main process only)."""
    stem, ext = posixpath.splitext(item.path)
    planned = []
    for out in outputs:
        if out["suffix"] is None:
            path = item.path if ext.lower() == ".wav" else f"{stem}.wav"
            new_id, parent = item.id, item.parent
        else:
            path = f"{stem}~{out['suffix']}.wav"
            new_id, parent = item_id(path), item.id
        other = ch.by_path(path)
        if other is not None and other.id != new_id:
            report.skipped.append(
                (item.path, f"{path} is already another item ({other.id}); rename one first")
            )
            return
        planned.append((out, path, new_id, parent))
    for out, path, new_id, parent in planned:
        digest = ch.put_bytes(out["wav"])
        extras = {k: v for k, v in item.extras.items() if k != "features"}
        if out.get("features") is not None:
            extras["features"] = ch.put_bytes(out["features"])
        stale = _FORMAT_INFO if options.one_to_one else _FORMAT_INFO | _PIECE_INFO
        info = {k: v for k, v in item.info.items() if k not in stale}
        info.update(out["info"])
        new = replace(
            item,
            id=new_id,
            path=path,
            hash=digest,
            kind="audio",
            size=len(out["wav"]),
            duration_s=round(out["duration_s"], 6),
            parent=parent,
            step=AUDIO_STEP,
            info=info,
            extras=extras,
        )
        new = _with_estimates(new, out.get("estimates", {}))
        report.made.append(ch.put(new))
    if not options.one_to_one and not options.keep_originals:
        ch.remove(item.id)
        report.removed.append(item.id)


# What an item's info says about its audio that a new encoding makes untrue, and (for chunks
# and stems, whose place in the new parent differs) where a piece came from.
_FORMAT_INFO = frozenset(
    {
        "sample_rate",
        "channels",
        "subtype",
        "format",
        "codec",
        "bit_depth",
        "bitrate",
        "frames",
        "loudness_lufs",
        "gain_db",
        "peak_limited",
        "true_peak_db",
        "trimmed_start_s",
    }
)
_PIECE_INFO = frozenset({"start_s", "end_s", "stem", "part", "parts", "dropped_tail_s", "cut_at"})
_TOLD = ("user", "sidecar", "tags", "import")


def _with_estimates(item: Item, estimates: dict) -> Item:
    """``item`` with the tempo and key measured, where nobody told them."""
    fresh = {k: v for k, v in estimates.items() if item.meta_from.get(k) not in _TOLD}
    return item.with_meta(fresh, "estimate") if fresh else item


# ---- the work on one file (in a worker) -------------------------------------------------------
def process_file(file: str, label: str, options: AudioPrep) -> dict:
    """The outputs of one stored file: ``{"outputs": [{suffix, wav, features, info,
    duration_s, estimates}], "warnings": [...]}``, or ``{"skip": reason}``. ``label`` (the
    item's path) names the file in messages."""
    from engine.errors import AudioFileError

    try:
        y, sr, notes = read_audio(file, label)
    except AudioFileError as e:
        return {"skip": _reworded(str(e), file, label)}
    y = convert_channels(y, options.channels)
    if options.sample_rate and sr != options.sample_rate:
        from engine.audio.io import resample

        y, sr = resample(y, sr, options.sample_rate), options.sample_rate
    offset = 0
    if options.trim_db is not None:
        y, offset = trim_silence(y, options.trim_db)
    if y.shape[0] < MIN_PREP_SECONDS * sr:
        return {
            "skip": f"{y.shape[0] / sr:.2f} s of sound{' after trimming' * (offset > 0)} "
            f"is too short to preprocess (at least {MIN_PREP_SECONDS:g} s)",
            "warnings": notes,
        }
    if options.denoise is not None:
        y = reduce_noise(y, sr, options.denoise, options.stationary_noise)
    pieces: list[tuple[int, int, dict]] = [(0, y.shape[0], {})]
    if options.segment_s is not None:
        lo, hi = options.segment_s
        if y.shape[0] < round(lo * sr):
            return {
                "skip": f"{y.shape[0] / sr:.1f} s is shorter than the {lo:g} s minimum "
                "chunk; left as it was",
                "warnings": notes,
            }
        pieces = segment(y, sr, lo, hi, options.cut_at)
    outputs = []
    width = max(3, len(str(len(pieces) - 1)))
    stems = _stem_names(options.stems)
    parts = len(pieces) * max(1, len(stems))
    bit_depth = options.bit_depth or default_depth(file)
    for n, (start, end, extra) in enumerate(pieces):
        chunk = y[start:end]
        separated = separate(chunk, sr, options.stems) if options.stems else [(None, chunk)]
        for stem_name, audio in separated:
            words = [f"{n:0{width}d}"] if options.segment_s is not None else []
            words += [stem_name] if stem_name else []
            info = {
                "sample_rate": int(sr),
                "channels": int(audio.shape[1]),
                "bit_depth": bit_depth,
                "subtype": WAV_SUBTYPES[bit_depth],
                **extra,
            }
            if not options.one_to_one:
                info.update(part=len(outputs), parts=parts)
            if options.segment_s is not None:
                info["start_s"] = round((offset + start) / sr, 4)
                info["end_s"] = round((offset + end) / sr, 4)
            elif offset:
                info["trimmed_start_s"] = round(offset / sr, 4)
            if stem_name:
                info["stem"] = stem_name
            if options.loudness_lufs is not None:
                audio, level = normalize_loudness(audio, sr, options.loudness_lufs, options.peak_db)
                info.update(level)
            outputs.append(_encode(audio, sr, bit_depth, info, options.features, words))
    return {"outputs": outputs, "warnings": notes}


def _reworded(text: str, file: str, label: str) -> str:
    """The reader's message about the stored file ``file`` said of the item ``label``; its
    advice names the stored file (a hash), so it gives way to advice about the item."""
    text = text.replace(file, label)
    if Path(file).name in text:
        first = text.split("; ")[0]
        if Path(file).name in first:
            first = f"{label} cannot be read as audio"
        text = f"{first}; export it again (WAV or FLAC) and import it again"
    return text


def _stem_names(stems: str | None) -> tuple[str, ...]:
    if stems == "hpss":
        return HPSS_STEMS
    if stems == "demucs":
        return ("drums", "bass", "other", "vocals")
    return ()


def _encode(audio, sr, bit_depth, info, features: bool, words: list[str]) -> dict:
    import soundfile as sf

    from engine.data.features import audio_features, loudness_lufs, save_features

    out = {
        "suffix": "~".join(words) if words else None,
        "duration_s": audio.shape[0] / sr,
        "features": None,
        "estimates": {},
    }
    if features:
        feats = audio_features(audio, sr)
        out["features"] = save_features(feats)
        lufs = float(feats["loudness_lufs"])
        tempo = float(feats["tempo_bpm"])
        beats = int(feats["beat_times"].shape[0])
        if beats >= MIN_TEMPO_BEATS and math.isfinite(tempo) and 10 <= tempo <= 400:
            out["estimates"]["tempo"] = round(tempo, 2)
        if str(feats["key"]):
            out["estimates"]["key"] = str(feats["key"])
    else:
        lufs = info.get("loudness_lufs", loudness_lufs(audio, sr))
    info["loudness_lufs"] = round(lufs, 2) if math.isfinite(lufs) else None
    subtype = WAV_SUBTYPES[bit_depth]
    data = audio if subtype == "FLOAT" else np.clip(audio, -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, data, sr, format="WAV", subtype=subtype)
    out["wav"] = buf.getvalue()
    out["info"] = info
    return out


# ---- the steps (each usable alone) -------------------------------------------------------------
def read_audio(file: str | Path, label: str = "") -> tuple[np.ndarray, int, list[str]]:
    """(samples [S, channels] float32, sample rate, warnings as text) of an audio file, by
    `engine.audio.io.load_audio`; what it does not know (M4A/AAC) through PyAV when that is
    installed. An `AudioFileError` when neither reads it."""
    from engine.audio.io import load_audio
    from engine.errors import AudioFileError, InputWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InputWarning)
            y, sr = load_audio(file)
        notes = [str(w.message).replace(str(file), label or str(file)) for w in caught]
        return y, sr, notes
    except AudioFileError as first:
        try:
            y, sr = _decode_with_av(file)
        except Exception:  # PyAV missing, or it cannot read the file either
            raise first from None
        return y, sr, []


def _decode_with_av(file: str | Path) -> tuple[np.ndarray, int]:
    """(samples [S, channels] float32, rate) of the first audio stream, decoded by PyAV."""
    import av

    with av.open(str(file)) as container:
        stream = container.streams.audio[0]
        blocks, sr = [], stream.codec_context.sample_rate
        for frame in container.decode(stream):
            a = frame.to_ndarray()
            if frame.format.is_planar:
                a = a.T
            else:
                a = a.reshape(-1, len(frame.layout.channels))
            if np.issubdtype(a.dtype, np.integer):
                a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
            blocks.append(a.astype(np.float32))
    if not blocks or not sr:
        raise ValueError("no audio")
    return np.concatenate(blocks), int(sr)


def convert_channels(y: np.ndarray, layout: str) -> np.ndarray:
    """[S, C] as ``layout``: mono (the mean of the channels), stereo (mono doubled; of more
    than two channels the first two), keep."""
    if layout == "mono" and y.shape[1] > 1:
        return y.mean(axis=1, keepdims=True)
    if layout == "stereo":
        if y.shape[1] == 1:
            return np.repeat(y, 2, axis=1)
        return np.ascontiguousarray(y[:, :2])
    return y


def trim_silence(y: np.ndarray, top_db: float) -> tuple[np.ndarray, int]:
    """(``y`` [S, C] without the silence at its ends, the first sample kept). Silence is
    quieter than ``top_db`` below the peak (``librosa.effects.trim``, all channels)."""
    import librosa

    from engine.audio.io import quiet_libraries

    with quiet_libraries():
        _, (start, end) = librosa.effects.trim(np.ascontiguousarray(y.T), top_db=top_db)
    return y[int(start) : int(end)], int(start)


class _NoTorch:
    """An import finder that says PyTorch is not installed (see `_noisereduce`)."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not used here")
        return None


def _noisereduce():
    """noisereduce, imported without PyTorch: it imports torch (1.6 s, hundreds of MB) for
    a GPU gate this never uses, whenever torch is installed."""
    if "noisereduce" in sys.modules or "torch" in sys.modules:
        import noisereduce

        return noisereduce
    finder = _NoTorch()
    sys.meta_path.insert(0, finder)
    try:
        import noisereduce
    finally:
        sys.meta_path.remove(finder)
    return noisereduce


def reduce_noise(y: np.ndarray, sr: int, strength: float, stationary: bool) -> np.ndarray:
    """``y`` [S, C] with ``strength`` (0..1) of its noise taken away (noisereduce's spectral
    gating; ``stationary``: one noise profile for the whole file)."""
    nr = _noisereduce()
    from engine.audio.io import quiet_libraries

    with quiet_libraries():
        out = nr.reduce_noise(
            y=np.ascontiguousarray(y.T),
            sr=sr,
            stationary=stationary,
            prop_decrease=float(strength),
            n_jobs=1,
        )
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(y.shape[::-1]).T)


def segment(
    y: np.ndarray, sr: int, min_s: float, max_s: float, cut_at: str = "energy"
) -> list[tuple[int, int, dict]]:
    """(start, end, info) sample ranges of the chunks of ``y`` [S, C] (at least ``min_s``
    long): MIN..MAX seconds each, cut at the quietest frame (``energy``) or the quietest beat
    (``beats``) of each window. See the module docstring for the last piece."""
    import librosa

    from engine.audio.io import quiet_libraries

    n = y.shape[0]
    lo, hi = round(min_s * sr), round(max_s * sr)
    mono = np.ascontiguousarray(y.mean(axis=1), dtype=np.float32)
    with quiet_libraries():
        rms = librosa.feature.rms(y=mono, frame_length=ENERGY_FRAME, hop_length=ENERGY_HOP)[0]
    positions = np.arange(rms.shape[0]) * ENERGY_HOP
    energy = rms
    how = "energy"
    if cut_at == "beats":
        beats = beat_samples(mono, sr)
        if beats.shape[0] >= 2:
            # the energy of the frame just before each beat: quiet before the note it marks
            idx = np.clip((beats - ENERGY_FRAME // 2) // ENERGY_HOP, 0, rms.shape[0] - 1)
            positions, energy, how = beats, rms[idx], "beats"
        else:
            how = "energy (no beats found)"
    feasible = _fits(n, lo, hi)
    cuts, start = [], 0
    while n - start > hi:
        window = (positions >= start + lo) & (positions <= start + hi)
        cand = np.flatnonzero(window)
        if feasible and cand.size:
            ok = [c for c in cand if _fits(n - int(positions[c]), lo, hi)]
            cand = np.asarray(ok, dtype=int)
        if cand.size:
            best = cand[np.argmin(energy[cand])]
            cut = int(positions[best])
        else:  # no beat (or frame) here that keeps the rest cuttable: a cut that does
            cut = _any_cut(n, start, lo, hi) if feasible else start + hi
        cuts.append((start, cut))
        start = cut
    if n - start >= lo:
        cuts.append((start, n))
    out = [(a, b, {"cut_at": how}) for a, b in cuts]
    if cuts and cuts[-1][1] < n:
        out[-1][2]["dropped_tail_s"] = round((n - cuts[-1][1]) / sr, 3)
    return out


def _any_cut(n: int, start: int, lo: int, hi: int) -> int:
    """The latest cut in ``start + lo .. start + hi`` that leaves ``n - cut`` samples that
    can be cut into chunks of ``lo``..``hi`` (one exists when ``n - start`` can)."""
    best = start + hi
    for k in range(1, (n - start) // max(lo, 1) + 1):
        a, b = max(start + lo, n - k * hi), min(start + hi, n - k * lo)
        if a <= b:
            return b
    return best


def _fits(length: int, lo: int, hi: int) -> bool:
    """Whether ``length`` samples can be cut into chunks of ``lo``..``hi`` samples."""
    if length < lo:
        return False
    return -(-length // hi) <= length // lo


def beat_samples(mono: np.ndarray, sr: int) -> np.ndarray:
    """Beat positions (samples at ``sr``) of mono audio by the project's beat chain:
    onset strength and ``beat_track`` at 22050 Hz, each beat moved onto the onset it marks
    (`engine.audio.rhythm.refine_beats`)."""
    import librosa

    from engine.audio.io import quiet_libraries, resample
    from engine.audio.rhythm import ANALYSIS_SAMPLE_RATE, HOP, refine_beats

    a = resample(mono, sr, ANALYSIS_SAMPLE_RATE)
    with quiet_libraries():
        env = librosa.onset.onset_strength(y=a, sr=ANALYSIS_SAMPLE_RATE, hop_length=HOP)
        _, frames = librosa.beat.beat_track(
            onset_envelope=env, sr=ANALYSIS_SAMPLE_RATE, hop_length=HOP
        )
        times = librosa.frames_to_time(
            np.asarray(frames, dtype=int), sr=ANALYSIS_SAMPLE_RATE, hop_length=HOP
        )
    times = np.asarray(times, dtype=np.float64)
    if times.shape[0] >= 1:
        times = refine_beats(a, times)
    return np.round(times * sr).astype(np.int64)


def separate(y: np.ndarray, sr: int, how: str) -> list[tuple[str, np.ndarray]]:
    """(stem name, [S, C] audio) of ``y`` [S, C]: ``hpss`` gives harmonic and percussive
    (``librosa.effects.hpss``), ``demucs`` drums, bass, other and vocals."""
    if how == "demucs":
        return _demucs(y, sr)
    import librosa

    from engine.audio.io import quiet_libraries

    with quiet_libraries():
        h, p = librosa.effects.hpss(np.ascontiguousarray(y.T))
    return [("harmonic", np.ascontiguousarray(h.T)), ("percussive", np.ascontiguousarray(p.T))]


_DEMUCS = None


def _demucs(y: np.ndarray, sr: int) -> list[tuple[str, np.ndarray]]:
    """Stems by the demucs package's `DEMUCS_MODEL` on the CPU (loaded once a process)."""
    global _DEMUCS
    import torch
    from demucs.apply import apply_model
    from demucs.pretrained import get_model

    from engine.audio.io import resample

    if _DEMUCS is None:
        _DEMUCS = get_model(DEMUCS_MODEL)
        _DEMUCS.eval()
    model = _DEMUCS
    x = resample(y, sr, model.samplerate)
    if x.shape[1] != model.audio_channels:
        x = np.repeat(x.mean(axis=1, keepdims=True), model.audio_channels, axis=1)
    ref = x.mean(axis=1)
    mean, std = float(ref.mean()), float(ref.std()) or 1.0
    wav = torch.from_numpy(((x - mean) / std).T.copy())[None]
    with torch.no_grad():
        sources = apply_model(model, wav, device="cpu", progress=False)[0]
    out = []
    for name, src in zip(model.sources, sources, strict=True):
        a = resample(src.numpy().T * std + mean, model.samplerate, sr)
        if y.shape[1] != a.shape[1]:
            a = a.mean(axis=1, keepdims=True) if y.shape[1] == 1 else a[:, : y.shape[1]]
        out.append((name, np.ascontiguousarray(a[: y.shape[0]], dtype=np.float32)))
    return out


def true_peak_db(y: np.ndarray, sr: int) -> float:
    """The true peak of ``y`` in dBTP: the largest sample after 4x oversampling (soxr)."""
    from engine.audio.io import resample

    up = resample(y, sr, sr * TRUE_PEAK_OVERSAMPLE)
    peak = float(np.max(np.abs(up))) if up.size else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def normalize_loudness(
    y: np.ndarray, sr: int, target_lufs: float, peak_db: float = DEFAULT_PEAK_DB
) -> tuple[np.ndarray, dict]:
    """(``y`` at ``target_lufs``, what was done): pyloudnorm's gain, reduced where the true
    peak would go over ``peak_db`` dBTP (``peak_limited``). Silence and audio under 0.4 s
    (no loudness to measure) are left as they are (``gain_db`` 0)."""
    import pyloudnorm

    from engine.data.features import loudness_lufs

    before = loudness_lufs(y, sr)
    if not math.isfinite(before):
        return y, {"gain_db": 0.0, "peak_limited": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Possible clipped samples in output": handled here
        out = pyloudnorm.normalize.loudness(y.astype(np.float64), before, target_lufs)
    gain_db = target_lufs - before
    peak = true_peak_db(out, sr)
    limited = peak > peak_db
    if limited:
        out = out * 10 ** ((peak_db - peak) / 20)
        gain_db += peak_db - peak
        peak = peak_db
    return out.astype(np.float32), {
        "gain_db": round(gain_db, 2),
        "peak_limited": bool(limited),
        "true_peak_db": round(peak, 2),
    }
