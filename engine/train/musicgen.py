"""Fine-tune MusicGen on the user's own audio: LoRA or full training of the decoder.

    >>> from engine.train.musicgen import train_musicgen, load_finetuned
    >>> record = train_musicgen("my-songs", "runs/my-musicgen", base="musicgen-small")
    >>> mg = load_finetuned("runs/my-musicgen/model")     # a MusicGen, base + adapter fused

What is trained: the codebook decoder (``engine.models.musicgen.MusicgenDecoder``), with the
projection of the text states into it (`MusicgenLM`). The T5 text encoder and the EnCodec
codec stay frozen, so their outputs are computed once (`prepare`) and cached on disk:

- **codes**: each audio item of the dataset is read (`engine.audio.io.load_audio`), resampled
  to the model's rate (`engine.audio.io.resample`), cut into segments of ``segment_s`` and
  encoded by EnCodec; one ``.npy`` per (item content, codec weights, segment length), int16
  [segments, K, frames] with -1 after the end of a short last segment.
- **text**: each distinct caption goes through the tokenizer and T5 once; one ``.npy`` per
  (caption, T5 weights and tokenizer), float32 [tokens, T5 width].

A rerun (another learning rate, a resumed run) computes neither again. A caption is the
item's own, else one built from its metadata (`caption_for`).

The loss (`MusicgenTask`) is the one MusicGen was trained with: the codes are laid out in the
delay pattern that generation uses (`engine.models.musicgen.build_delay_pattern`: codebook k
one step later than codebook k - 1), every code is predicted from the codes before it and
the caption, and the cross-entropy of each codebook is weighted (``codebook_weights``,
default equal) and smoothed (``label_smoothing``); the pads of the pattern and of short
segments are masked out. A share of the captions (``cond_dropout``, 10 %) is dropped while
training, as MusicGen was trained, so that classifier-free guidance keeps working.

LoRA the mlx-lm way on the linear layers of the decoder blocks (`MUSICGEN_TARGETS`:
self-attention, cross-attention, feed-forward); a checkpoint holds the adapter only
(``adapter_config.json`` + ``adapters.safetensors``). Full fine-tuning trains every decoder
weight in float32 and a checkpoint holds them (``decoder.safetensors``). Either way
``finetune.json`` names the base model (name, folder, SHA-256), and `load_finetuned` turns any
such folder (``RUN/model``, ``RUN/best``, ``RUN/checkpoints/step-000400``) into a MusicGen.

Layout of a run folder (the trainer's, `engine.train.trainer`, plus)::

    model/          the best weights (lowest validation loss) + finetune.json + training.json
    metrics.jsonl   every report; tensorboard/ the same as TensorBoard events
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from engine.models import lora as lora_lib
from engine.models.lora import LoraConfig, LoraError
from engine.progress import Progress, ProgressFn
from engine.seeds import derive_seed
from engine.train.score import TrainingError
from engine.train.trainer import CHECKPOINT_DIR, STATE_FILE, TrainConfig, train

DEFAULT_BASE = "musicgen-small"
TRAIN_SEGMENT_S = 10.0
MAX_SEGMENT_S = 30.0  # the window MusicGen was trained on (and generates in)
MIN_AUDIO_S = 1.0  # shorter items (and last pieces of items) are not trained on
DEFAULT_COND_DROPOUT = 0.1  # captions dropped while training (audiocraft's cfg dropout)
ENCODE_BATCH = 4  # segments per EnCodec call
TEXT_PAD = 8  # caption lengths in a batch are padded to a multiple of this (fewer shapes)
HELD_OUT_SHARE = 0.1  # of the songs, for validation when the dataset has no validation split
MAX_VAL_SEGMENTS = 64  # validation on the training segments takes at most this many
CACHE_FORMAT = 1
FINETUNE_FILE = "finetune.json"
DECODER_WEIGHTS = "decoder.safetensors"
TRAINING_FILE = "training.json"
MODEL_DIR = "model"
HASHES_FILE = "weights-hashes.json"

# The linear layers of one decoder block (engine/models/musicgen.py, MusicgenDecoderLayer).
MUSICGEN_TARGETS = {
    "self_attn": (
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.out_proj",
    ),
    "cross_attn": (
        "encoder_attn.q_proj",
        "encoder_attn.k_proj",
        "encoder_attn.v_proj",
        "encoder_attn.out_proj",
    ),
    "ffn": ("fc1", "fc2"),
}
TARGET_ALIASES = {
    "all": ("self_attn", "cross_attn", "ffn"),
    "attention": ("self_attn", "cross_attn"),
}
DEFAULT_TARGETS = "all"

# Defaults of a run (`default_config`): LoRA moves small adapters and takes a larger
# learning rate; full fine-tuning moves every weight of a trained model and takes a small one.
DEFAULTS = {
    "lora": dict(
        batch_size=2,
        learning_rate=2e-4,
        min_learning_rate=2e-5,
        warmup_steps=20,
        max_steps=500,
        weight_decay=0.0,
        eval_every=50,
        checkpoint_every=50,
        early_stop_patience=5,
        report_every=5,
    ),
    "full": dict(
        batch_size=2,
        learning_rate=1e-5,
        min_learning_rate=1e-6,
        warmup_steps=50,
        max_steps=500,
        weight_decay=0.01,
        eval_every=50,
        checkpoint_every=50,
        early_stop_patience=5,
        report_every=5,
    ),
}
METHODS = tuple(DEFAULTS)


def default_config(method: str = "lora", **overrides) -> TrainConfig:
    """The `TrainConfig` a MusicGen run of ``method`` starts from, with ``overrides``."""
    _check_method(method)
    return TrainConfig(**{**DEFAULTS[method], **overrides})


def musicgen_targets(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"all"``, ``"attention"``, ``"self_attn"``, ``"cross_attn"``, ``"ffn"`` or module names of
    a decoder block (``self_attn.q_proj``), comma-separated or a list -> the module names."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    known = [k for group in MUSICGEN_TARGETS.values() for k in group]
    keys: list[str] = []
    for part in (p.strip() for p in parts):
        if part in TARGET_ALIASES:
            keys += [k for g in TARGET_ALIASES[part] for k in MUSICGEN_TARGETS[g]]
        elif part in MUSICGEN_TARGETS:
            keys += MUSICGEN_TARGETS[part]
        elif part in known:
            keys.append(part)
        else:
            raise LoraError(
                f"unknown LoRA target {part!r} for MusicGen; use all, attention, self_attn, "
                f"cross_attn, ffn or module names ({', '.join(known)})"
            )
    if not keys:
        raise LoraError("give at least one LoRA target (all, self_attn, cross_attn, ffn)")
    return tuple(dict.fromkeys(keys))


# ---- captions ---------------------------------------------------------------------------------
def caption_for(item) -> str | None:
    """The text MusicGen learns to connect with ``item``'s sound: its caption, else one built
    from its metadata (genre, mood, instruments, key, tempo; estimated values too), in the
    words `engine.pipelines.musicgen.describe_text` gives the same options at generation
    (``"funk, groovy mood, featuring bass, drums, in E minor, 96 bpm"``); None when nothing
    is known."""
    meta = item.meta or {}
    caption = str(meta.get("caption") or "").strip()
    if caption:
        return caption
    words = []
    if meta.get("genre"):
        words.append(str(meta["genre"]))
    if meta.get("mood"):
        words.append(f"{meta['mood']} mood")
    inst = meta.get("instruments")
    if inst:
        words.append("featuring " + (inst if isinstance(inst, str) else ", ".join(inst)))
    if meta.get("key"):
        words.append(f"in {meta['key']}")
    if meta.get("tempo"):
        words.append(f"{float(meta['tempo']):g} bpm")
    return ", ".join(words) or None


# ---- prepared data ----------------------------------------------------------------------------
@dataclass
class Segment:
    """One training example: codes [K, frames] int16 (-1 after ``length``) and its caption."""

    item: str  # the dataset item's ID
    codes: np.ndarray
    length: int
    text: str  # key of the caption's T5 states in `PreparedData.texts`


@dataclass
class PreparedData:
    """What `prepare` made: segments to train and validate on, and the T5 states of their
    captions (``texts``: key -> float32 [tokens, T5 width])."""

    train: list[Segment]
    val: list[Segment]
    texts: dict[str, np.ndarray]
    captions: dict[str, str]  # item ID -> caption
    dataset: str  # the dataset ID: <uuid>@<version>
    dataset_name: str
    num_codebooks: int
    audio_channels: int
    frame_rate: int
    sample_rate: int
    segment_frames: int
    val_from: str  # "validation" (the split), "held out" (songs set aside) or "train"
    items: int  # audio items used
    audio_s: float  # seconds of audio used
    too_short: list[str] = field(default_factory=list)  # paths of items left out
    encoded_items: int = 0  # items EnCodec encoded in this call (the others were cached)
    encoded_texts: int = 0  # captions T5 encoded in this call

    def summary(self) -> dict:
        return {
            "dataset": self.dataset,
            "name": self.dataset_name,
            "items": self.items,
            "audio_s": round(self.audio_s, 3),
            "train_segments": len(self.train),
            "val_segments": len(self.val),
            "val_from": self.val_from,
            "captions": len(self.texts),
            "too_short": len(self.too_short),
        }


def check_segment(segment_s: float) -> float:
    try:
        segment_s = float(segment_s)
    except (TypeError, ValueError):
        raise TrainingError(
            f"the segment length must be a number of seconds, not {segment_s!r}"
        ) from None
    if not 0 < segment_s <= MAX_SEGMENT_S:
        raise TrainingError(
            f"segment length {segment_s:g} s is outside 0..{MAX_SEGMENT_S:g} s (MusicGen's "
            "window); 10 to 30 s is usual"
        )
    return segment_s


def prepare(
    dataset,
    version: str | None = None,
    model_dir_or_models: Any = DEFAULT_BASE,
    cache_dir: str | Path | None = None,
    *,
    segment_s: float = TRAIN_SEGMENT_S,
    min_audio_s: float | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> PreparedData:
    """EnCodec codes of every audio item and T5 states of every caption, from the cache or
    computed once (see the module docstring).

    ``dataset``: a `engine.data.store.Dataset`, a name or a folder; ``version`` (None: HEAD).
    ``model_dir_or_models``: a MusicGen name or converted folder, or a loaded
    `engine.models.musicgen.MusicGen`. Items of the ``test`` split are left out; the
    ``validation`` split validates (without one, about a tenth of the songs is held out, or,
    with a single song, a few training segments are reused). Items shorter than
    ``min_audio_s`` (default ``min(1 s, segment_s)``) are left out and listed in
    ``too_short``; a last piece of an item shorter than that is dropped. ``progress`` gets
    ``Progress("audio codes", items done, items)`` and ``Progress("captions", done, all)``.

    Raises `TrainingError` (one line) for a dataset with no audio, items with nothing to
    caption them, or no audio long enough.
    """
    from engine.data.store import Dataset

    segment_s = check_segment(segment_s)
    min_s = min(MIN_AUDIO_S, segment_s) if min_audio_s is None else float(min_audio_s)
    ds = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    items = [i for i in ds.items(version) if i.kind == "audio" and i.split != "test"]
    if not items:
        raise TrainingError(
            f"{ds.name} has no audio to train MusicGen on; add recordings with "
            f"`disco-musica data import FOLDER --into {ds.name}`"
        )
    captions = {i.id: caption_for(i) for i in items}
    missing = [i for i in items if captions[i.id] is None]
    if missing:
        first = missing[0].path
        raise TrainingError(
            f"{len(missing)} of {len(items)} audio items of {ds.name} have no caption and no "
            f"genre, mood, instruments, key or tempo to build one from (e.g. {first}); caption "
            f'them with `disco-musica data edit {ds.name} ITEMS --set caption="..."` (or '
            "--set genre=... --set instruments=...), or estimate tempo and key with "
            f"`disco-musica data prep audio {ds.name}`"
        )
    source = _ModelSource(model_dir_or_models, cache_dir)
    cache = source.cache_dir
    codec_key = source.codec_key()
    sr, K, channels = source.sample_rate, source.num_codebooks, source.audio_channels
    frames = int(round(segment_s * source.frame_rate))
    hop = sr / source.frame_rate
    seg_samples = int(round(frames * hop))
    min_frames = max(int(math.ceil(min_s * source.frame_rate)), 1)

    codes: dict[str, np.ndarray] = {}
    too_short: list[str] = []
    encoded = 0
    for n, item in enumerate(items):
        if progress:
            progress(Progress("audio codes", n, len(items), item.path))
        key = _digest(["codes", CACHE_FORMAT, item.hash, codec_key, repr(segment_s), min_frames])
        file = cache / "codes" / f"{key}.npy"
        if file.is_file():
            c = np.load(file)
        else:
            c = _encode_item(ds, item, source, seg_samples, frames, min_frames, hop)
            _save_npy(file, c)
            encoded += 1
        if c.shape[0] == 0:
            too_short.append(item.path)
        else:
            codes[item.id] = c
    if progress:
        progress(Progress("audio codes", len(items), len(items)))
    if not codes:
        longest = max((i.duration_s or 0.0) for i in items)
        raise TrainingError(
            f"need at least {min_s:g} s of audio to train MusicGen; the {len(items)} audio "
            f"items of {ds.name} are shorter (the longest {longest:.2f} s): import longer "
            "recordings"
        )

    text_key = source.text_key()
    used = [i for i in items if i.id in codes]
    distinct = sorted({captions[i.id] for i in used})
    keys = {c: _digest(["text", CACHE_FORMAT, c, text_key]) for c in distinct}
    texts: dict[str, np.ndarray] = {}
    encoded_texts = 0
    for n, caption in enumerate(distinct):
        if progress:
            progress(Progress("captions", n, len(distinct)))
        file = cache / "text" / f"{keys[caption]}.npy"
        if file.is_file():
            texts[keys[caption]] = np.load(file)
        else:
            states = source.encode_text(caption)
            _save_npy(file, states)
            texts[keys[caption]] = states
            encoded_texts += 1
    if progress:
        progress(Progress("captions", len(distinct), len(distinct)))

    def segments(chosen) -> list[Segment]:
        out = []
        for item in chosen:
            c = codes[item.id]
            for row in c:
                length = int((row[0] >= 0).sum())
                out.append(Segment(item.id, row, length, keys[captions[item.id]]))
        return out

    val_items = [i for i in used if i.split == "validation"]
    train_items = [i for i in used if i.split != "validation"]
    val_from = "validation"
    if not val_items:
        train_items, val_items = _hold_out(used, seed)
        val_from = "held out" if val_items else "train"
    elif not train_items:  # every item validates: train on them too
        train_items, val_from = val_items, "train"
    train_segments = segments(train_items)
    if val_from == "train":
        val_segments = train_segments[:MAX_VAL_SEGMENTS]
    else:
        val_segments = segments(val_items)
    audio_s = sum(s.length for s in segments(used)) / source.frame_rate
    return PreparedData(
        train=train_segments,
        val=val_segments,
        texts=texts,
        captions={i.id: captions[i.id] for i in used},
        dataset=ds.ident(version),
        dataset_name=ds.name,
        num_codebooks=K,
        audio_channels=channels,
        frame_rate=source.frame_rate,
        sample_rate=sr,
        segment_frames=frames,
        val_from=val_from,
        items=len(used),
        audio_s=audio_s,
        too_short=too_short,
        encoded_items=encoded,
        encoded_texts=encoded_texts,
    )


def _hold_out(items: list, seed: int) -> tuple[list, list]:
    """(train, validation): about `HELD_OUT_SHARE` of the songs (groups), at least one, when
    there are at least two; else every item trains and nothing is held out."""
    groups = sorted({i.group or i.id for i in items})
    if len(groups) < 2:
        return items, []
    n = max(1, round(len(groups) * HELD_OUT_SHARE))
    ranked = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    held = set(ranked[:n])
    return (
        [i for i in items if (i.group or i.id) not in held],
        [i for i in items if (i.group or i.id) in held],
    )


def _encode_item(ds, item, source, seg_samples, frames, min_frames, hop) -> np.ndarray:
    """Codes int16 [segments, K, frames] of one item (-1 past the end of a short last
    segment); [0, K, frames] when the item is too short."""
    from engine.audio.io import load_audio, resample
    from engine.errors import AudioFileError

    K = source.num_codebooks
    try:
        audio, sr = load_audio(ds.file(item), what=f"{ds.name} item {item.path}:")
    except AudioFileError as e:
        raise TrainingError(str(e)) from None
    audio = resample(audio, sr, source.sample_rate)
    n = audio.shape[0]
    lengths = []
    for start in range(0, n, seg_samples):
        f = min(frames, int(math.ceil((n - start) / hop)))
        if f >= min_frames:
            lengths.append((start, f))
    out = np.full((len(lengths), K, frames), -1, np.int16)
    for b in range(0, len(lengths), ENCODE_BATCH):
        chunk = lengths[b : b + ENCODE_BATCH]
        x = np.zeros((len(chunk), seg_samples, audio.shape[1]), np.float32)
        for r, (start, _) in enumerate(chunk):
            piece = audio[start : start + seg_samples]
            x[r, : piece.shape[0]] = piece
        c = source.encode_audio(x)  # [B, K, >= frames]
        for r, (_, f) in enumerate(chunk):
            out[b + r, :, :f] = c[r, :, :f]
    return out


def _save_npy(file: Path, array: np.ndarray) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, file)


def _digest(parts: list) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:40]


def default_cache_dir() -> Path:
    """Where prepared codes and text states are kept: ``<models home>/../cache/musicgen``
    ($DISCO_MUSICA_HOME/cache/musicgen by default)."""
    from engine.hub import models_home

    return models_home().parent / "cache" / "musicgen"


class _ModelSource:
    """The frozen parts of a MusicGen (codec, T5, tokenizer) as `prepare` needs them: cache
    keys from their weights, and the model loaded only when something must be computed."""

    def __init__(self, model_dir_or_models: Any, cache_dir: str | Path | None):
        from engine.models.musicgen import MusicGen, MusicgenConfig

        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._model: MusicGen | None = None
        if isinstance(model_dir_or_models, MusicGen):
            self._model = model_dir_or_models
            self.folder = None
            config = model_dir_or_models.config
        else:
            self.folder = resolve_base(model_dir_or_models)
            config = _read_config(self.folder)
        self.config: MusicgenConfig = config
        self.sample_rate = config.sampling_rate
        self.frame_rate = config.frame_rate
        self.num_codebooks = config.decoder.num_codebooks
        self.audio_channels = config.audio_channels

    @property
    def model(self):
        if self._model is None:
            from engine.models.musicgen import MusicGen

            self._model = MusicGen.load(self.folder)
        return self._model

    def _weights_hash(self, prefix: str) -> str:
        if self.folder is not None:
            return weights_hash(self.folder / "model.safetensors", prefix, self.cache_dir)
        mg = self._model
        module = mg.text_encoder if prefix == "text_encoder." else mg.audio_encoder
        h = hashlib.sha256()
        for name, v in sorted(tree_flatten(module.parameters())):
            a = np.array(v.astype(mx.float32) if v.dtype == mx.bfloat16 else v)
            h.update(json.dumps([name, str(v.dtype), list(v.shape)]).encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def codec_key(self) -> str:
        cfg = self.config
        return _digest(
            [
                self._weights_hash("audio_encoder."),
                cfg.audio_encoder,
                cfg.decoder.num_codebooks,
                cfg.decoder.audio_channels,
            ]
        )

    def text_key(self) -> str:
        if self.folder is not None:
            tok = self.folder / "tokenizer.json"
            tok_hash = _file_hash(tok, self.cache_dir) if tok.is_file() else None
        else:
            t = self._model.tokenizer
            tok_hash = hashlib.sha256(t.to_str().encode()).hexdigest() if t else None
        return _digest([self._weights_hash("text_encoder."), tok_hash])

    def encode_audio(self, x: np.ndarray) -> np.ndarray:
        """Audio [B, samples, C] at the model's rate -> codes [B, K, frames]."""
        return np.array(self.model.encode_audio(x, self.sample_rate))

    def encode_text(self, caption: str) -> np.ndarray:
        """One caption -> T5 states float32 [tokens, T5 width] (before the decoder's
        projection, which full fine-tuning trains)."""
        from engine.errors import MusicgenError

        mg = self.model
        try:
            ids, mask = mg.tokenize([caption])
        except MusicgenError as e:
            raise TrainingError(str(e)) from None
        h = mg.text_encoder(ids, mask).astype(mx.float32)
        return np.array(h[0])


def resolve_base(name_or_path: str | Path) -> Path:
    """The converted folder of a MusicGen base (a catalogue name or folder; see
    `engine.hub.resolve_model`), refusing melody models."""
    from engine.errors import MusicgenError
    from engine.hub import resolve_model

    try:
        folder = resolve_model(str(name_or_path))
    except MusicgenError as e:
        raise TrainingError(str(e)) from None
    if _read_config(folder).is_melody:
        raise TrainingError(
            f"{name_or_path} is a melody model; fine-tuning takes the text-only MusicGen models "
            "(musicgen-small, -medium, -large and their stereo versions)"
        )
    return folder


def _read_config(folder: Path):
    from engine.models.musicgen import MusicgenConfig

    raw = json.loads((folder / "config.json").read_text())
    gen = folder / "generation_config.json"
    if gen.exists():
        raw = {**raw, "generation_config": json.loads(gen.read_text())}
    return MusicgenConfig.from_dict(raw)


def _hash_cache(cache_dir: Path, key: str, compute: Callable[[], str]) -> str:
    """A hash of a file remembered by (path, size, modification time) in ``cache_dir``."""
    book = cache_dir / HASHES_FILE
    try:
        known = json.loads(book.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    value = compute()
    known[key] = value
    try:
        from engine.atomic import write_text_atomic

        cache_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(book, json.dumps(known, indent=1) + "\n")
    except OSError:
        pass  # a read-only cache: computed again next time
    return value


def _stamp(file: Path) -> str:
    st = file.stat()
    return f"{file.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _file_hash(file: Path, cache_dir: Path) -> str:
    """SHA-256 of a whole file (as `engine.atomic.sha256_file`), remembered."""
    from engine.atomic import sha256_file

    return _hash_cache(cache_dir, f"{_stamp(file)}:file", lambda: sha256_file(file))


def weights_hash(file: Path, prefix: str, cache_dir: Path | None = None) -> str:
    """SHA-256 over the tensors of a safetensors ``file`` whose names start with ``prefix``
    (names, dtypes, shapes and bytes, read straight from the file), remembered in
    ``cache_dir``."""

    def compute() -> str:
        h = hashlib.sha256()
        with open(file, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
            names = sorted(k for k in header if k != "__metadata__" and k.startswith(prefix))
            for name in names:
                info = header[name]
                h.update(json.dumps([name, info["dtype"], info["shape"]]).encode())
                a, b = info["data_offsets"]
                f.seek(8 + n + a)
                left = b - a
                while left:
                    chunk = f.read(min(left, 1 << 24))
                    if not chunk:
                        raise TrainingError(f"{file} is cut short; convert the model again")
                    h.update(chunk)
                    left -= len(chunk)
        return h.hexdigest()

    if cache_dir is None:
        return compute()
    return _hash_cache(Path(cache_dir), f"{_stamp(file)}:{prefix}", compute)


# ---- batches ----------------------------------------------------------------------------------
MusicgenBatch = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""codes [B, K, F] int32 (-1 after each row's length), lengths [B] int32, text states
[B, S, D_text] float32, text mask [B, S] int32."""


def collate(segments: Sequence[Segment], texts: dict[str, np.ndarray]) -> MusicgenBatch:
    """Stack segments into a `MusicgenBatch`; captions padded to a multiple of `TEXT_PAD`."""
    codes = np.stack([s.codes for s in segments]).astype(np.int32)
    lengths = np.array([s.length for s in segments], np.int32)
    states = [texts[s.text] for s in segments]
    S = max(len(t) for t in states)
    S = -(-S // TEXT_PAD) * TEXT_PAD
    text = np.zeros((len(states), S, states[0].shape[-1]), np.float32)
    mask = np.zeros((len(states), S), np.int32)
    for b, t in enumerate(states):
        text[b, : len(t)] = t
        mask[b, : len(t)] = 1
    return codes, lengths, text, mask


class SegmentBatches:
    """Training batches of ``batch_size`` segments, in a new random order every epoch
    (seeded by ``seed`` and the epoch), wrapping from one epoch into the next so that every
    batch is full; ``epochs`` (None: no end) stops the iteration. Its position
    (`state_dict`) goes into every checkpoint, so a resumed run sees the same batches."""

    def __init__(
        self,
        segments: Sequence[Segment],
        texts: dict[str, np.ndarray],
        batch_size: int,
        seed: int = 0,
        epochs: int | None = None,
    ):
        if not segments:
            raise TrainingError("no training segments")
        self.segments, self.texts = list(segments), texts
        self.batch_size = max(1, min(int(batch_size), len(self.segments)))
        self.seed, self.epochs = int(seed), epochs
        self.epoch, self.index = 0, 0
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:  # one epoch's order kept at a time
            rng = np.random.default_rng([self.seed, epoch])
            self._orders = {epoch: rng.permutation(len(self.segments))}
        return self._orders[epoch]

    def __iter__(self):
        return self

    def __next__(self) -> MusicgenBatch:
        rows = []
        while len(rows) < self.batch_size:
            if self.epochs is not None and self.epoch >= self.epochs:
                break
            rows.append(self.segments[self._order(self.epoch)[self.index]])
            self.index += 1
            if self.index == len(self.segments):
                self.epoch, self.index = self.epoch + 1, 0
        if not rows:
            raise StopIteration
        return collate(rows, self.texts)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise TrainingError("the checkpoint's data order was seeded differently")
        self.epoch, self.index = int(state["epoch"]), int(state["index"])

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.segments) / self.batch_size)


def val_batches(data: PreparedData, batch_size: int) -> list[MusicgenBatch]:
    """The validation segments in order, ``batch_size`` at a time."""
    segs = data.val
    return [collate(segs[i : i + batch_size], data.texts) for i in range(0, len(segs), batch_size)]


# ---- the model being trained and its loss -----------------------------------------------------
class MusicgenLM(nn.Module):
    """What fine-tuning trains: the decoder and the projection of T5 states into it.

    ``model(codes [B, K, L], text [B, S, D_text], text_mask [B, S]) -> logits [B, K, L, V]``,
    the same computation as `MusicGen.encode_text` followed by the decoder. Its parameter
    names are those of `engine.models.musicgen.MusicgenModel` (``decoder.…``,
    ``enc_to_dec_proj.…``). ``layers`` are the decoder blocks (what LoRA adapts).
    """

    def __init__(self, decoder: nn.Module, enc_to_dec_proj: nn.Module | None = None):
        super().__init__()
        self.decoder = decoder
        if enc_to_dec_proj is not None:
            self.enc_to_dec_proj = enc_to_dec_proj

    @classmethod
    def of(cls, mg) -> MusicgenLM:
        """The trainable part of a loaded `MusicGen` (sharing its modules)."""
        return cls(mg.decoder, mg.enc_to_dec_proj)

    @property
    def layers(self) -> list:
        return self.decoder.layers

    def condition(self, text: mx.array, text_mask: mx.array) -> mx.array:
        h = text.astype(self.decoder.layer_norm.weight.dtype)
        if "enc_to_dec_proj" in self:
            h = self.enc_to_dec_proj(h)
        return h * text_mask[..., None].astype(h.dtype)

    def __call__(self, codes: mx.array, text: mx.array, text_mask: mx.array) -> mx.array:
        return self.decoder(codes, self.condition(text, text_mask), text_mask)


def delayed(
    codes: np.ndarray, lengths: np.ndarray, start_token: int, audio_channels: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes [B, K, F] (-1 after ``lengths``) -> (inputs, targets, valid) [B, K, F + Kc - 1].

    The sequence is the start token followed by the codes, laid out in the delay pattern
    exactly as generation lays it out (`build_delay_pattern`, ``Kc`` codebooks per channel):
    codebook k sits k // channels steps late and the pattern's corners are start tokens.
    ``inputs`` are the sequence without its last step, ``targets`` without its first; a
    target is ``valid`` where it is a real code (not a pad of the pattern, not past the end
    of a short segment); elsewhere it is 0.
    """
    from engine.models.musicgen import build_delay_pattern

    B, K, F = codes.shape
    Kc = K // audio_channels
    filled = np.where(codes < 0, start_token, codes).astype(np.int64)
    prompt = np.concatenate([np.full((B, K, 1), start_token, np.int64), filled], axis=-1)
    seq = build_delay_pattern(prompt, F + Kc, start_token, audio_channels)
    inputs, targets = seq[:, :, :-1], seq[:, :, 1:]
    d = (np.arange(K) // audio_channels)[None, :, None]
    t = np.arange(F + Kc - 1)[None, None, :]
    valid = (t >= d) & (t < d + np.asarray(lengths)[:, None, None])
    targets = np.where(valid, targets, 0)
    return inputs.astype(np.int32), targets.astype(np.int32), valid


class MusicgenTask:
    """The trainer's task for MusicGen (see `engine.train.trainer.Task`).

    ``loss``: cross-entropy over the codebooks, codebook k weighted by
    ``codebook_weights[k]`` (default equal), with ``label_smoothing``; the weight the trainer
    averages by is the number of codes predicted. While training, each row's caption is
    dropped with probability ``cond_dropout`` (the unconditional branch of classifier-free
    guidance: zero states, an all-zero mask). ``evaluate``: plain NLL per code (no weights,
    smoothing or dropout), overall and per codebook (groups ``codebook 1`` ...).
    """

    def __init__(
        self,
        num_codebooks: int,
        start_token: int,
        audio_channels: int = 1,
        codebook_weights: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        cond_dropout: float = DEFAULT_COND_DROPOUT,
    ):
        self.K, self.start, self.channels = num_codebooks, start_token, audio_channels
        self.weights = check_codebook_weights(codebook_weights, num_codebooks)
        self.label_smoothing = float(label_smoothing)
        self.cond_dropout = float(cond_dropout)

    def arrays(self, batch: MusicgenBatch) -> tuple[mx.array, ...]:
        codes, lengths, text, mask = batch
        inputs, targets, valid = delayed(codes, lengths, self.start, self.channels)
        return (
            mx.array(inputs),
            mx.array(targets),
            mx.array(valid.astype(np.float32)),
            mx.array(text),
            mx.array(mask),
        )

    def loss(self, model, inputs, targets, valid, text, mask) -> tuple[mx.array, mx.array]:
        if self.cond_dropout > 0 and model.training:
            keep = mx.random.bernoulli(1 - self.cond_dropout, (text.shape[0],))
            mask = mask * keep[:, None].astype(mask.dtype)
        logits = model(inputs, text, mask).astype(mx.float32)
        nll = nn.losses.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        w = mx.array(self.weights, mx.float32)[None, :, None] * valid
        ntoks = valid.sum()
        return (nll * w).sum() / mx.maximum(w.sum(), 1e-9), ntoks

    def slots(self, batch: MusicgenBatch) -> int:
        return int(batch[0].size)

    def codebook_nll(self, model, batch: MusicgenBatch) -> tuple[np.ndarray, np.ndarray]:
        """NLL summed per codebook [K] and the codes counted [K] (no dropout, no smoothing)."""
        inputs, targets, valid, text, mask = self.arrays(batch)
        logits = model(inputs, text, mask).astype(mx.float32)
        nll = nn.losses.cross_entropy(logits, targets) * valid
        return np.array(nll.sum(axis=(0, 2))), np.array(valid.sum(axis=(0, 2)))

    def evaluate(
        self, model, batches: Iterable[MusicgenBatch], max_batches: int = 0
    ) -> tuple[float, dict[str, float]]:
        nll, count = np.zeros(self.K), np.zeros(self.K)
        for i, batch in enumerate(batches):
            if max_batches and i >= max_batches:
                break
            n, c = self.codebook_nll(model, batch)
            nll, count = nll + n, count + c
        if count.sum() == 0:
            raise TrainingError("the validation set has no codes to score")
        by_group = {f"codebook {k + 1}": float(nll[k] / count[k]) for k in range(self.K)}
        return float(nll.sum() / count.sum()), by_group


def check_codebook_weights(weights: Sequence[float] | str | None, K: int) -> tuple[float, ...]:
    """Per-codebook loss weights: None -> equal; K numbers >= 0, not all 0 (text: "1,1,0.5,0.5")."""
    if weights is None:
        return (1.0,) * K
    if isinstance(weights, str):
        try:
            weights = [float(w) for w in weights.split(",")]
        except ValueError:
            raise TrainingError(
                f"codebook weights are numbers, e.g. 1,1,1,1 (not {weights!r})"
            ) from None
    weights = tuple(float(w) for w in weights)
    if len(weights) != K:
        raise TrainingError(
            f"give one codebook weight per codebook: this model has {K}, not {len(weights)}"
        )
    if any(not math.isfinite(w) or w < 0 for w in weights) or not sum(weights) > 0:
        raise TrainingError("codebook weights must be 0 or more, and not all 0")
    return weights


# ---- what a checkpoint holds ------------------------------------------------------------------
class LoraWeights:
    """A checkpoint of a LoRA run: the adapter (mlx-lm's two files) and ``finetune.json``."""

    def __init__(self, cfg: LoraConfig, info: dict):
        self.cfg, self.info = cfg, info

    def export(self, folder: Path, model: nn.Module) -> None:
        base = {"name": self.info["base"]["name"], "sha256": self.info["base"]["sha256"]}
        lora_lib.save(folder, model, self.cfg, base)
        _write_finetune(folder, self.info)

    def restore(self, folder: Path, model: nn.Module) -> None:
        weights = mx.load(str(folder / lora_lib.ADAPTER_WEIGHTS))
        have = lora_lib.adapter_weights(model)
        if set(weights) != set(have) or any(weights[k].shape != v.shape for k, v in have.items()):
            raise LoraError(f"{folder}: the adapter does not fit this run's model")
        model.load_weights(list(weights.items()), strict=False)


class DecoderWeights:
    """A checkpoint of a full run: every decoder weight (float32) and ``finetune.json``."""

    def __init__(self, info: dict):
        self.info = info

    def export(self, folder: Path, model: nn.Module) -> None:
        from engine.models import save_safetensors

        folder.mkdir(parents=True, exist_ok=True)
        save_safetensors(folder / DECODER_WEIGHTS, dict(tree_flatten(model.parameters())))
        _write_finetune(folder, self.info)

    def restore(self, folder: Path, model: nn.Module) -> None:
        weights = mx.load(str(folder / DECODER_WEIGHTS))
        model.load_weights(list(weights.items()), strict=True)


def _write_finetune(folder: Path, info: dict) -> None:
    from engine.atomic import write_text_atomic

    write_text_atomic(folder / FINETUNE_FILE, json.dumps(info, indent=2) + "\n")


# ---- training ---------------------------------------------------------------------------------
def _check_method(method: str) -> None:
    if method not in METHODS:
        raise TrainingError(f"unknown method {method!r}; use lora or full")


def train_musicgen(
    dataset,
    out_dir: str | Path,
    *,
    base: str | Path = DEFAULT_BASE,
    method: str = "lora",
    lora: LoraConfig | None = None,
    config: TrainConfig | None = None,
    version: str | None = None,
    segment_s: float = TRAIN_SEGMENT_S,
    cache_dir: str | Path | None = None,
    codebook_weights: Sequence[float] | str | None = None,
    cond_dropout: float = DEFAULT_COND_DROPOUT,
    epochs: int | None = None,
    resume: bool = False,
    callback: Any = None,
    progress: ProgressFn | None = None,
    control: Any = None,
    tensorboard: bool = True,
) -> dict:
    """Fine-tune MusicGen ``base`` on the audio of ``dataset``; return the run's record.

    ``method``: ``"lora"`` (``lora``: a `LoraConfig`: rank, alpha, dropout, ``keys`` from
    `musicgen_targets`, default all of them, number of blocks) or ``"full"``. ``config``
    (default `default_config(method)`): optimizer, schedule, steps, ``batch_size`` (segments
    per step), accumulation, label smoothing, early stopping, checkpoints, seed.
    ``segment_s``: seconds of audio per training example; ``codebook_weights``: one loss
    weight per codebook; ``cond_dropout``: share of captions dropped while training;
    ``epochs``: stop after this many passes over the data (None: ``config.max_steps``).
    ``resume=True`` continues the run in ``out_dir`` exactly (same dataset version, base and
    settings, which it checks). ``callback`` gets the trainer's reports (see
    `engine.train.monitor`); the run also writes ``metrics.jsonl`` and (``tensorboard``)
    TensorBoard events. ``progress`` gets the `prepare` events; ``control`` is a
    `engine.train.trainer.TrainControl`.

    The best weights (lowest validation loss) end in ``out_dir/model`` with ``training.json``;
    `load_finetuned` loads them for generation. Raises `TrainingError` / `LoraError`.
    """
    from engine import __version__
    from engine.train import monitor

    _check_method(method)
    out_dir = Path(out_dir)
    config = replace(config) if config is not None else default_config(method)
    lora_config = lora or LoraConfig(keys=musicgen_targets(DEFAULT_TARGETS))
    if not 0 <= cond_dropout < 1:
        raise TrainingError(f"the caption dropout must be in 0..0.99, not {cond_dropout:g}")
    if not 0 <= config.label_smoothing < 1:
        raise TrainingError(f"label smoothing must be in 0..0.99, not {config.label_smoothing:g}")
    if epochs is not None and epochs < 1:
        raise TrainingError(f"epochs must be at least 1, not {epochs}")
    segment_s = check_segment(segment_s)
    state = out_dir / CHECKPOINT_DIR / STATE_FILE
    recorded = None
    if resume:
        if not state.is_file():
            raise TrainingError(f"{out_dir} has no checkpoint to resume; start a new run")
        recorded = (json.loads(state.read_text()).get("extra") or {}).get("musicgen")
        if recorded is None:
            raise TrainingError(f"{out_dir} holds another kind of training run, not MusicGen's")
        version = _resumed_version(recorded, version)
    elif state.is_file():
        raise TrainingError(
            f"{out_dir} already holds a training run; resume it or choose another folder"
        )

    folder = resolve_base(base)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    mg_config = _read_config(folder)
    if not (folder / "tokenizer.json").is_file():
        raise TrainingError(
            f"{folder} has no tokenizer.json, so captions cannot be read; convert the model "
            "again from a snapshot that includes its tokenizer"
        )
    quantized = (json.loads((folder / "config.json").read_text()).get("disco_musica") or {}).get(
        "quantization"
    )
    if method == "full" and quantized:
        raise TrainingError(
            f"{base} is quantized to {quantized.get('bits')} bits; full fine-tuning needs a "
            "float32 or float16 model (convert one), or use --method lora"
        )
    K = mg_config.decoder.num_codebooks
    weights = check_codebook_weights(codebook_weights, K)
    data = prepare(
        dataset, version, folder, cache, segment_s=segment_s, seed=config.seed, progress=progress
    )
    base_info = {
        "name": str(base),
        "path": str(folder.resolve()),
        "sha256": _file_hash(folder / "model.safetensors", cache),
    }
    settings = {
        "method": method,
        "base": base_info,
        "dataset": data.dataset,
        "segment_s": segment_s,
        "codebook_weights": list(weights),
        "cond_dropout": cond_dropout,
        "lora": asdict(lora_config) if method == "lora" else None,
    }
    if recorded is not None:
        _check_same_run(recorded, settings, out_dir)

    from engine.models.musicgen import MusicGen

    model = MusicgenLM.of(MusicGen.load(folder))  # the decoder only is read into memory
    mx.random.seed(config.seed)  # the adapters' starting values
    if method == "lora":
        lora_config = replace(lora_config, keys=tuple(lora_config.keys))
        lora_lib.apply(model, lora_config)
    else:
        model.set_dtype(mx.float32)
        model.unfreeze()
    mx.eval(model.parameters())
    info = {
        "format": 1,
        "kind": "musicgen-finetune",
        "method": method,
        "base": base_info,
        "dataset": data.dataset,
        "segment_s": segment_s,
    }
    store = LoraWeights(lora_config, info) if method == "lora" else DecoderWeights(info)
    task = MusicgenTask(
        K,
        mg_config.decoder.start_token_id,
        mg_config.audio_channels,
        weights,
        config.label_smoothing,
        cond_dropout,
    )
    batches = SegmentBatches(
        data.train, data.texts, config.batch_size, derive_seed(config.seed, "data", 0), epochs
    )
    val = val_batches(data, batches.batch_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [monitor.MetricsJsonl(out_dir / monitor.METRICS_FILE)]
    if tensorboard:
        callbacks.append(monitor.TensorBoard(out_dir / monitor.TENSORBOARD_DIR))
    fan = monitor.Fanout([*callbacks, callback])
    tic = time.time()
    try:
        summary = train(
            model,
            config,
            batches,
            lambda: iter(val),
            out_dir,
            callback=fan,
            resume=resume,
            extra_state={"musicgen": settings},
            task=task,
            weights=store,
            control=control,
            start_info={
                "method": method,
                "base": str(base),
                "dataset": data.dataset,
                "segments": len(data.train),
                "steps_per_epoch": batches.steps_per_epoch,
            },
        )
    finally:
        fan.close()
    record = {
        "kind": "musicgen-finetune",
        **settings,
        "lora": asdict(lora_config) if method == "lora" else None,
        "data": data.summary(),
        "train_config": asdict(config),
        "epochs": epochs,
        "summary": summary,
        "wall_time_s_this_run": time.time() - tic,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count() or 1} CPU cores",
        "disco_musica_version": __version__,
        "mlx_version": mx.__version__,
    }
    _publish_model(out_dir, record)
    return record


def _resumed_version(recorded: dict, version: str | None) -> str:
    """The dataset version a resumed run reads: the one it started with."""
    have = recorded["dataset"].split("@")[-1]
    if version is not None and not have.startswith(version):
        raise TrainingError(
            f"the run was started on dataset version {have[:12]}, not {version}; a resumed run "
            "reads the same data (leave out the version)"
        )
    return have


def _check_same_run(recorded: dict, settings: dict, out_dir: Path) -> None:
    if recorded["dataset"].split("@")[0] != settings["dataset"].split("@")[0]:
        raise TrainingError(
            f"the run in {out_dir} was started on another dataset; resume it with that one"
        )
    for key, what in (
        ("method", "method"),
        ("segment_s", "segment length"),
        ("codebook_weights", "codebook weights"),
        ("cond_dropout", "caption dropout"),
        ("lora", "LoRA settings"),
    ):
        if json.loads(json.dumps(recorded.get(key))) != json.loads(json.dumps(settings[key])):
            raise TrainingError(
                f"the run in {out_dir} was started with another {what} "
                f"({recorded.get(key)}); resume it with the same settings"
            )
    if recorded["base"]["sha256"] != settings["base"]["sha256"]:
        raise TrainingError(
            f"the run in {out_dir} was started from another base model "
            f"({recorded['base']['name']}); resume it with that one"
        )


def _publish_model(out_dir: Path, record: dict) -> None:
    """``out_dir/model``: the best weights (else the last checkpoint's) + training.json."""
    from engine.atomic import write_text_atomic
    from engine.train.trainer import BEST_DIR, OPTIMIZER_FILE

    src = out_dir / BEST_DIR
    if not (src / FINETUNE_FILE).is_file():
        src = out_dir / CHECKPOINT_DIR
    if not (src / FINETUNE_FILE).is_file():
        return  # nothing was saved (a NaN at the first step)
    tmp = out_dir / f".{MODEL_DIR}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(OPTIMIZER_FILE, STATE_FILE))
    best = json.loads((src / STATE_FILE).read_text()) if (src / STATE_FILE).is_file() else {}
    full = {**record, "model_step": best.get("step"), "model_from": src.name}
    write_text_atomic(tmp / TRAINING_FILE, json.dumps(full, indent=1, default=str) + "\n")
    final = out_dir / MODEL_DIR
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


# ---- using a fine-tuned model -----------------------------------------------------------------
def is_finetuned(folder: str | Path) -> bool:
    """Whether ``folder`` (or its ``model/``) holds a MusicGen fine-tune."""
    p = Path(folder)
    return (p / FINETUNE_FILE).is_file() or (p / MODEL_DIR / FINETUNE_FILE).is_file()


def read_finetune(folder: str | Path) -> tuple[Path, dict]:
    """(the folder with the weights, its finetune.json) of a fine-tune or run folder."""
    p = Path(folder).expanduser()
    if not (p / FINETUNE_FILE).is_file() and (p / MODEL_DIR / FINETUNE_FILE).is_file():
        p = p / MODEL_DIR
    try:
        info = json.loads((p / FINETUNE_FILE).read_text())
        info["method"], info["base"]["sha256"]  # noqa: B018  (the fields it must have)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TrainingError(
            f"{folder} is not a MusicGen fine-tune (its {FINETUNE_FILE} is missing or "
            f"unreadable: {e}); give a folder made by `disco-musica train musicgen`"
        ) from None
    return p, info


def load_finetuned(
    folder: str | Path, *, fuse: bool = True, cache_dir: str | Path | None = None
) -> Any:
    """A `engine.models.musicgen.MusicGen` with the fine-tune in ``folder`` on its base.

    ``folder``: a run's ``model/`` (or the run folder), ``best/``, ``checkpoint/`` or any
    ``checkpoints/step-N``. The base model is found where the run found it (else by its
    name) and must be the very model the fine-tune was made on (SHA-256). LoRA adapters are
    fused into the decoder's weights (``fuse=False`` keeps them apart: the same logits up to
    rounding, slower); full fine-tunes replace the decoder weights (cast to the base's dtype).
    """
    from engine.models.musicgen import MusicGen

    p, info = read_finetune(folder)
    base = info["base"]
    path = Path(base.get("path") or "")
    if not (path / "config.json").is_file():
        path = resolve_base(base["name"])
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if _file_hash(path / "model.safetensors", cache) != base["sha256"]:
        raise LoraError(
            f"{p} was made for another base model than {path} (its SHA-256 differs); use the "
            f"base it was trained on ({base['name']})"
        )
    mg = MusicGen.load(path)
    model = MusicgenLM.of(mg)
    if info["method"] == "lora":
        lora_lib.load(model, p)
        if fuse:
            lora_lib.fuse(model)
    else:
        weights = mx.load(str(p / DECODER_WEIGHTS))
        have = dict(tree_flatten(model.parameters()))
        if set(weights) != set(have) or any(weights[k].shape != v.shape for k, v in have.items()):
            raise LoraError(f"{p}: the decoder weights do not fit {path}")
        model.load_weights([(k, v.astype(have[k].dtype)) for k, v in weights.items()])
    model.freeze()
    model.eval()  # no LoRA dropout when the adapter is kept apart
    mx.eval(model.parameters())
    return mg
