"""Fine-tune MusicGen on the user's own audio: LoRA or full training of the decoder.

    >>> from engine.train.musicgen import finetune_musicgen, train_musicgen, load_finetuned
    >>> round1 = finetune_musicgen("my-songs", name="my-sound", preset="balanced")
    >>> round2 = finetune_musicgen("new-songs", name="my-sound", from_model="my-sound")
    >>> record = train_musicgen("my-songs", "runs/my-musicgen", base="musicgen-small")
    >>> mg = load_finetuned("runs/my-musicgen/model")     # a MusicGen, base + adapter fused

Two ways to keep the result: a named model of the user's (`finetune_musicgen`: rounds in
``engine.hub.trained_models_dir() / NAME`` with a ``model.json`` card of ``"kind":
"musicgen"``, as the score model's, `engine.train.finetune`; ``generate --model NAME``,
``NAME@step-N``, ``@latest``, ``@round-N``), or a run folder (`train_musicgen`;
``generate --model RUN/model``). `engine.pipelines.musicgen.load_model` loads either
(`resolve_finetuned`, `load_finetuned`) and records `finetune_sha256` (adapter or decoder
weights + base) so that a generation replays only with the same weights. Presets
(`PRESETS`: quick, balanced, thorough) set steps, learning rate, batch, segment length and
rank; `plan_run` measures the memory and time a run needs before it starts. With
``samples`` > 0, `AudioStyleSampler` generates clips at each validation and measures how
near the dataset they sound (`engine.train.style.audio_distance`), the run's ``report.md``
putting base and fine-tune side by side.

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

Layout of a run folder (the trainer's, `engine.train.trainer`: ``checkpoint/``, ``best/``,
``checkpoints/step-N/``, each with finetune.json and the weights, plus)::

    model/          the best weights (lowest validation loss) + finetune.json + training.json
                    (a named model's rounds keep training.json in the run folder instead)
    metrics.jsonl   every report; tensorboard/ the same as TensorBoard events
    samples/        step-NNNNNN/sample-I.wav, the clips of each validation (``samples`` > 0)
    report.md       the clips' distances to the dataset, base against fine-tune
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

from engine import hub, names
from engine.models import lora as lora_lib
from engine.models.lora import LoraConfig, LoraError
from engine.progress import Progress, ProgressFn
from engine.seeds import derive_seed
from engine.train.score import TrainingError
from engine.train.trainer import CHECKPOINT_DIR, STATE_FILE, TrainConfig, time_passes, train

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
FINETUNE_FILE = hub.FINETUNE_FILE
DECODER_WEIGHTS = "decoder.safetensors"
TRAINING_FILE = "training.json"
MODEL_DIR = "model"
HASHES_FILE = "weights-hashes.json"
SAMPLES_DIR = "samples"  # of a run: step-NNNNNN/sample-I.wav, the style proof's clips
REPORT_FILE = "report.md"  # of a run with samples: base against fine-tuned, on the same seeds

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

# Presets (`--preset`): how long, how large a step, how much audio per example. The options
# given override any of it. No preset generates clips at the validations (``samples`` 0): on
# a CPU each costs seconds per second of audio (ask for them with --samples).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "max_steps": 200,
        "eval_every": 50,
        "early_stop_patience": 3,
        "batch_size": 2,
        "grad_accumulation": 1,
        "segment_s": 10.0,
        "rank": 8,
        "lr": {"lora": 3e-4, "full": 1e-5},
    },
    "balanced": {
        "max_steps": 600,
        "eval_every": 100,
        "early_stop_patience": 4,
        "batch_size": 4,
        "grad_accumulation": 1,
        "segment_s": 15.0,
        "rank": 16,
        "lr": {"lora": 2e-4, "full": 1e-5},
    },
    "thorough": {
        "max_steps": 2000,
        "eval_every": 200,
        "early_stop_patience": 5,
        "batch_size": 4,
        "grad_accumulation": 2,
        "segment_s": MAX_SEGMENT_S,
        "rank": 32,
        "lr": {"lora": 1e-4, "full": 5e-6},
    },
}
PRESET_KEEP_LAST = 3  # checkpoints a preset keeps to pick from (NAME@step-N)
DEFAULT_SAMPLE_S = names.MUSICGEN_SAMPLE_S  # seconds of each style-proof clip
MAX_REFERENCE_CLIPS = 32  # training segments the clips are compared with


def default_config(method: str = "lora", preset: str | None = None, **overrides) -> TrainConfig:
    """The `TrainConfig` a MusicGen run of ``method`` starts from, with ``overrides``:
    `DEFAULTS` of the method, or those of ``preset`` (`PRESETS`: quick, balanced, thorough;
    the learning rate decays to a tenth, warm-up over the first tenth at most, a checkpoint
    at each validation, the last `PRESET_KEEP_LAST` kept)."""
    _check_method(method)
    if preset is None:
        return TrainConfig(**{**DEFAULTS[method], **overrides})
    p = preset_values(preset)
    lr = p["lr"][method]
    values = dict(
        DEFAULTS[method],
        batch_size=p["batch_size"],
        grad_accumulation=p["grad_accumulation"],
        learning_rate=lr,
        min_learning_rate=lr / 10,
        max_steps=p["max_steps"],
        warmup_steps=min(DEFAULTS[method]["warmup_steps"], p["max_steps"] // 10),
        eval_every=p["eval_every"],
        checkpoint_every=p["eval_every"],
        early_stop_patience=p["early_stop_patience"],
        keep_last=PRESET_KEEP_LAST,
    )
    return TrainConfig(**{**values, **overrides})


def preset_values(preset: str) -> dict[str, Any]:
    """The settings of a preset (`PRESETS`); a `TrainingError` names the known ones."""
    if preset not in PRESETS:
        raise TrainingError(f"unknown preset {preset!r}; use {', '.join(PRESETS)}")
    return PRESETS[preset]


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

    if is_finetuned(name_or_path) or is_musicgen_card(str(name_or_path)):
        raise TrainingError(
            f"{name_or_path} is a fine-tuned MusicGen; to train it further, start from it "
            f"with --from {name_or_path} (its base is the one it was made from)"
        )
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
    init_from: str | Path | None = None,
    samples: int = 0,
    sample_seconds: float = DEFAULT_SAMPLE_S,
    callback: Any = None,
    progress: ProgressFn | None = None,
    control: Any = None,
    plan: Callable[[dict], None] | None = None,
    tensorboard: bool = True,
    publish: bool = True,
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
    settings, which it checks). ``init_from``: a fine-tune folder (`read_finetune`) of the
    same base whose weights the run starts from: a LoRA adapter goes on training (its own
    rank and targets; ``method="full"`` fuses it first), full weights only train fully.
    ``samples`` > 0: at each validation (and before the first step) generate that many clips
    of ``sample_seconds`` (seeds 0..samples-1, the dataset's captions) into
    ``out_dir/samples/step-N/`` and compare them with the dataset (`AudioStyleSampler`).
    ``callback`` gets the trainer's reports (see `engine.train.monitor`); the run also writes
    ``metrics.jsonl`` and (``tensorboard``) TensorBoard events. ``progress`` gets the
    `prepare` events; ``control`` is a `engine.train.trainer.TrainControl`; ``plan(info)`` is
    called once before the first step with the memory and time the run needs (`plan_run`).

    The best weights (lowest validation loss) are in ``out_dir/best``; with ``publish``
    they are copied to ``out_dir/model`` with ``training.json`` (else ``training.json`` goes
    into ``out_dir``). `load_finetuned` loads any of them for generation. Raises
    `TrainingError` / `LoraError`.
    """
    from engine import __version__
    from engine.atomic import write_text_atomic
    from engine.data.store import Dataset
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
    if samples < 0:
        raise TrainingError(f"the number of samples must be 0 or more, not {samples}")
    segment_s = check_segment(segment_s)
    if samples:
        sample_seconds = check_segment(sample_seconds)
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
    base_info = {
        "name": str(base),
        "path": str(folder.resolve()),
        "sha256": _file_hash(folder / "model.safetensors", cache),
    }
    parent = None
    if init_from is not None:
        parent_dir, parent_info = read_finetune(init_from)
        if parent_info["base"]["sha256"] != base_info["sha256"]:
            raise LoraError(
                f"{init_from} was fine-tuned from another base model than {base} (its SHA-256 "
                f"differs); continue it on its own base ({parent_info['base']['name']})"
            )
        if parent_info["method"] == "full" and method == "lora":
            raise TrainingError(
                f"{init_from} is fully fine-tuned: an adapter cannot be put on weights that are "
                "not its base's; continue it with --method full"
            )
        if parent_info["method"] == "lora" and method == "lora":
            lora_config = LoraConfig.from_adapter_config(lora_lib.read_config(parent_dir))
        parent = {
            "path": str(parent_dir.resolve()),
            "method": parent_info["method"],
            "sha256": finetune_sha256(parent_dir),
        }
    ds = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    data = prepare(
        ds, version, folder, cache, segment_s=segment_s, seed=config.seed, progress=progress
    )
    settings = {
        "method": method,
        "base": base_info,
        "dataset": data.dataset,
        "segment_s": segment_s,
        "codebook_weights": list(weights),
        "cond_dropout": cond_dropout,
        "lora": asdict(lora_config) if method == "lora" else None,
        "init_from": parent,
    }
    if recorded is not None:
        _check_same_run(recorded, settings, out_dir)

    from engine.models.musicgen import MusicGen

    mg = MusicGen.load(folder)  # the decoder is read into memory; T5 and EnCodec when used
    model = MusicgenLM.of(mg)
    mx.random.seed(config.seed)  # the adapters' starting values
    _set_up(model, method, lora_config, parent)
    mx.eval(model.parameters())
    info = {
        "format": 1,
        "kind": "musicgen-finetune",
        "method": method,
        "base": base_info,
        "dataset": data.dataset,
        "segment_s": segment_s,
        "init_from": parent,
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
    sampler = None
    if samples:
        sampler = AudioStyleSampler(
            mg, data, out_dir / SAMPLES_DIR, samples, sample_seconds, cache_dir=cache
        )
    estimate = None
    if plan is not None:
        estimate = plan_run(model, task, data, config, epochs, sampler)
        plan(estimate)
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
            eval_first=parent is not None or sampler is not None,
            extra_state={"musicgen": settings},
            task=task,
            weights=store,
            sampler=sampler,
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
    style = style_reports(out_dir, summary["best_step"]) if sampler is not None else None
    record = {
        "kind": "musicgen-finetune",
        **settings,
        "data": data.summary(),
        "train_config": asdict(config),
        "epochs": epochs,
        "samples": samples,
        "sample_seconds": sample_seconds if samples else None,
        "summary": summary,
        "style": style,
        "estimate": estimate,
        "wall_time_s_this_run": time.time() - tic,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count() or 1} CPU cores",
        "disco_musica_version": __version__,
        "mlx_version": mx.__version__,
    }
    if style is not None and style.get("base") and style.get("tuned"):
        write_text_atomic(out_dir / REPORT_FILE, style_report_markdown(record))
    if publish:
        _publish_model(out_dir, record)
    else:
        write_text_atomic(out_dir / TRAINING_FILE, json.dumps(record, indent=1, default=str) + "\n")
    return record


def _set_up(model: MusicgenLM, method: str, cfg: LoraConfig, parent: dict | None) -> None:
    """Make ``model`` (the base's) what the run trains: the parent's weights on it, then
    LoRA layers (only they train) or every weight in float32."""
    if parent is not None and parent["method"] == "lora":
        lora_lib.load(model, Path(parent["path"]))
        if method == "full":
            lora_lib.fuse(model)
    if method == "lora":
        if parent is None:
            lora_lib.apply(model, cfg)
        else:  # the parent's adapter goes on training
            model.freeze()
            for _, m in model.named_modules():
                if hasattr(m, "lora_a"):
                    m.unfreeze(keys=["lora_a", "lora_b"], recurse=False)
        return
    model.set_dtype(mx.float32)
    if parent is not None and parent["method"] == "full":
        DecoderWeights({}).restore(Path(parent["path"]), model)
    model.unfreeze()


def recorded_settings(out_dir: str | Path) -> dict:
    """The settings a MusicGen run in ``out_dir`` was started with (method, base, dataset,
    segment length, LoRA...), from its last checkpoint."""
    state = Path(out_dir) / CHECKPOINT_DIR / STATE_FILE
    try:
        recorded = (json.loads(state.read_text()).get("extra") or {}).get("musicgen")
    except (OSError, ValueError):
        recorded = None
    if not isinstance(recorded, dict):
        raise TrainingError(f"{out_dir} holds no MusicGen training run to resume")
    return recorded


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
    have = (recorded.get("init_from") or {}).get("sha256")
    if have != (settings.get("init_from") or {}).get("sha256"):
        raise TrainingError(
            f"the run in {out_dir} was started from other weights "
            f"({(recorded.get('init_from') or {}).get('path') or 'the base alone'}); resume it "
            "from those"
        )


def _publish_model(out_dir: Path, record: dict) -> None:
    """``out_dir/model``: the best weights (else the last checkpoint's) + training.json."""
    from engine.atomic import write_text_atomic
    from engine.train.trainer import OPTIMIZER_FILE

    src = best_folder(out_dir)
    if src is None:
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


def best_folder(run: Path) -> Path | None:
    """The folder of a run that generation should load: ``best/`` (lowest validation loss),
    else the last ``checkpoint/``; None when the run saved nothing."""
    from engine.train.trainer import BEST_DIR

    for name in (BEST_DIR, CHECKPOINT_DIR):
        if (Path(run) / name / FINETUNE_FILE).is_file():
            return Path(run) / name
    return None


# ---- the memory and time a run needs ------------------------------------------------------------
def plan_run(
    model: MusicgenLM,
    task: MusicgenTask,
    data: PreparedData,
    config: TrainConfig,
    epochs: int | None = None,
    sampler: AudioStyleSampler | None = None,
) -> dict:
    """The memory and time a run needs, measured: three forward-backward passes on batches
    of the run's shape (the weights are not changed) give the step time and the peak memory
    of the weights, activations and gradients; the optimizer's state is added by
    arithmetic (AdamW keeps two numbers a trained weight). With a ``sampler``, one short
    generation times a decoding step, and the clips of every validation are added."""
    total = sum(v.size for _, v in tree_flatten(model.parameters()))
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    states = {"adamw": 2, "adam": 2, "lion": 1, "sgd": 1, "adafactor": 1}[config.optimizer]
    probe = SegmentBatches(data.train, data.texts, config.batch_size, seed=12345)
    mx.synchronize()
    mx.reset_peak_memory()
    batches = (task.arrays(next(probe)) for _ in range(3))
    times = time_passes(model, task.loss, batches, config.grad_checkpoint)
    peak = mx.get_peak_memory()
    step_s = float(np.median(times[1:])) * config.grad_accumulation
    steps_per_epoch = probe.steps_per_epoch
    steps = config.max_steps
    if epochs is not None:
        steps = min(steps, epochs * math.ceil(steps_per_epoch / config.grad_accumulation))
    validations = steps // config.eval_every + 1
    val_batch_s = step_s / config.grad_accumulation / 3  # a forward pass: about a third
    val_s = val_batch_s * math.ceil(len(data.val) / probe.batch_size)
    sample_s = sampler.estimate_s() if sampler is not None else 0.0
    return {
        "total_parameters": total,
        "trainable_parameters": trainable,
        "memory_bytes": int(peak + 4 * trainable * states),
        "step_s": step_s,
        "max_steps": steps,
        "validations": validations,
        "sample_s": sample_s,
        "time_s": step_s * steps + validations * (val_s + sample_s),
        "segments_per_step": probe.batch_size * config.grad_accumulation,
        "steps_per_epoch": math.ceil(steps_per_epoch / config.grad_accumulation),
    }


# ---- using a fine-tuned model -----------------------------------------------------------------
def is_finetuned(folder: str | Path) -> bool:
    """Whether ``folder`` (or its ``model/``, ``best/`` or ``checkpoint/``) holds a MusicGen
    fine-tune."""
    from engine.train.trainer import BEST_DIR

    p = Path(folder).expanduser()
    return any(
        (p / sub / FINETUNE_FILE).is_file() for sub in ("", MODEL_DIR, BEST_DIR, CHECKPOINT_DIR)
    )


def read_finetune(folder: str | Path) -> tuple[Path, dict]:
    """(the folder with the weights, its finetune.json) of a fine-tune or run folder (a run
    folder: its ``model/``, else ``best/``, else ``checkpoint/``)."""
    from engine.train.trainer import BEST_DIR

    p = Path(folder).expanduser()
    if not (p / FINETUNE_FILE).is_file():
        for sub in (MODEL_DIR, BEST_DIR, CHECKPOINT_DIR):
            if (p / sub / FINETUNE_FILE).is_file():
                p = p / sub
                break
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


def finetune_sha256(folder: str | Path, cache_dir: str | Path | None = None) -> str:
    """The SHA-256 a generation record stores for a fine-tune: of
    ``"<weights sha256>+<base model sha256>"``, the weights being ``adapters.safetensors``
    (LoRA) or ``decoder.safetensors`` (full): both parts decide the music. For a LoRA
    folder it is `engine.symbolic.model_versions.weights_sha256`, as for the score model's
    adapters."""
    p, info = read_finetune(folder)
    name = lora_lib.ADAPTER_WEIGHTS if info["method"] == "lora" else DECODER_WEIGHTS
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    both = f"{_file_hash(p / name, cache)}+{info['base']['sha256']}"
    return hashlib.sha256(both.encode()).hexdigest()


def is_musicgen_card(name: str) -> bool:
    """Whether ``name`` (``NAME`` or ``NAME@tag``) is one of the user's trained models made by
    `finetune_musicgen` (its ``model.json`` says ``"kind": "musicgen"``)."""
    from engine import hub

    base, _ = hub.split_tag(str(name))
    if not base or "/" in base or "\\" in base:
        return False
    try:
        card = json.loads((hub.trained_models_dir() / base / CARD).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(card, dict) and card.get("kind") == CARD_KIND


def resolve_finetuned(name_or_path: str | Path) -> Path | None:
    """The folder with the weights of a MusicGen fine-tune, or None when ``name_or_path`` is
    not one: a folder (`read_finetune`: a checkpoint, or a run folder) or one of the user's
    MusicGen models by name, with an optional tag (``my-songs@step-400``, ``@latest``,
    ``@round-2``, ``@best``: `engine.hub.resolve_trained`). A name whose checkpoint does not
    exist is a `engine.hub.TrainedModelError` (one line, naming the ones there are)."""
    from engine import hub

    p = Path(str(name_or_path)).expanduser()
    if p.is_dir():
        return read_finetune(p)[0] if is_finetuned(p) else None
    if not is_musicgen_card(str(name_or_path)):
        return None
    found = hub.resolve_trained(str(name_or_path))
    if found is None:
        return None
    return read_finetune(found)[0]


def finetune_checkpoints(name: str) -> list[tuple[str, Path]]:
    """Every loadable folder of the user's MusicGen model ``name``, as (tag or folder, path):
    each round's ``best`` (``NAME@round-N``), ``checkpoint`` and kept ``checkpoints/step-N``
    (the last round's as ``NAME@step-N``); for finding the weights a record names."""
    from engine import hub
    from engine.train.trainer import BEST_DIR, CHECKPOINTS_DIR

    base, _ = hub.split_tag(name)
    root = hub.trained_models_dir() / base
    rounds = sorted(
        (p for p in (root / "runs").glob("round-*") if p.name[6:].isdigit()),
        key=lambda p: int(p.name[6:]),
    )
    out = []
    for n, run in enumerate(rounds):
        last = n == len(rounds) - 1
        out.append((f"{base}@{run.name}", run / BEST_DIR))
        out.append((f"{base}@latest" if last else str(run / CHECKPOINT_DIR), run / CHECKPOINT_DIR))
        for step in sorted((run / CHECKPOINTS_DIR).glob("step-*")):
            tag = f"{base}@step-{int(step.name[5:])}" if last else str(step)
            out.append((tag, step))
    return [(t, p) for t, p in out if (p / FINETUNE_FILE).is_file()]


# ---- the style proof: does it sound like the user's audio? -----------------------------------
class AudioStyleSampler:
    """The trainer's ``sampler`` for MusicGen: at each validation, ``n`` clips of
    ``seconds`` from the model being trained (seeds 0..n-1, the dataset's captions, most
    common first, in turn; classifier-free guidance 3), written to
    ``out/step-NNNNNN/sample-I.wav`` and compared with the dataset on
    `engine.train.style.audio_distance` (mean chroma, tempo distribution, onset rate).

    ``mg``: the `engine.models.musicgen.MusicGen` whose decoder the run trains (the
    `MusicgenLM` shares its modules, so the clips come from the weights of the moment).
    The dataset is heard through the model's codec (`reference_profile`).
    Returns ``{"distances": {measure: d}, "overall", "samples": [paths], "captions", "step"}``.
    """

    def __init__(
        self,
        mg,
        data: PreparedData,
        out: Path,
        n: int,
        seconds: float = DEFAULT_SAMPLE_S,
        *,
        guidance: float = 3.0,
        cache_dir: str | Path | None = None,
    ):
        from engine.train import style

        self.style, self.mg, self.out, self.n = style, mg, Path(out), int(n)
        self.seconds, self.guidance = float(seconds), float(guidance)
        counts: dict[str, int] = {}
        for caption in data.captions.values():
            counts[caption] = counts.get(caption, 0) + 1
        self.captions = sorted(counts, key=lambda c: (-counts[c], c))
        self.reference = reference_profile(mg, data, self.seconds, cache_dir)

    def clip(self, i: int) -> np.ndarray:
        """Clip ``i``: audio [samples, channels] float32 at the model's rate."""
        audio = self.mg.generate(
            [self.captions[i % len(self.captions)]],
            duration_s=self.seconds,
            seed=i,
            guidance_scale=self.guidance,
        )
        return np.asarray(audio[0], np.float32)

    def estimate_s(self) -> float:
        """Seconds the clips of one validation take, from the time of a short generation."""
        frames = max(4, round(0.1 * self.mg.frame_rate))
        K = self.mg.config.decoder.num_codebooks // self.mg.audio_channels
        tic = time.perf_counter()
        self.mg.generate([self.captions[0]], duration_s=frames / self.mg.frame_rate, seed=0)
        per_step = (time.perf_counter() - tic) / (frames + K)
        steps = self.seconds * self.mg.frame_rate + K
        return self.n * per_step * steps

    def __call__(self, step: int, model: nn.Module) -> dict | None:
        if self.n <= 0:
            return None
        folder = self.out / f"step-{step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        sr = self.mg.sample_rate
        signals, paths = [], []
        for i in range(self.n):
            y = self.clip(i)
            path = folder / f"sample-{i}.wav"
            _write_clip(y, sr, path)
            signals.append((y, sr))
            paths.append(str(path))
        d = self.style.audio_distance(self.style.profile_audio(signals), self.reference)
        overall = d.pop("overall")
        captions = [self.captions[i % len(self.captions)] for i in range(self.n)]
        return {
            "distances": d,
            "overall": overall,
            "samples": paths,
            "captions": captions,
            "step": step,
        }


def _write_clip(y: np.ndarray, sr: int, path: Path) -> None:
    """A clip as a WAV file: `engine.audio.render.write_audio` (credited, watermarked) at
    the rates it writes; the tiny test models' codecs (800 Hz) as plain 16-bit PCM."""
    from engine.audio.render import SAMPLE_RATE_RANGE, write_audio

    if SAMPLE_RATE_RANGE[0] <= sr <= SAMPLE_RATE_RANGE[1]:
        write_audio(y, sr, path)
    else:
        import soundfile as sf

        sf.write(path, np.clip(y, -1, 1), sr, subtype="PCM_16")


def reference_profile(mg, data: PreparedData, seconds: float, cache_dir: Path | None = None):
    """The `engine.train.style.AudioProfile` of the dataset as the model hears it: up to
    `MAX_REFERENCE_CLIPS` training segments (spread over them), cut to ``seconds``, as the
    model's codec decodes their codes.

    Why not the recordings themselves: the clips can only sound as the codec makes them
    sound, so the recordings through the codec are the best a model can reach (distance 0);
    with a faithful codec (EnCodec) they are nearly the recordings, and with the random
    codec of a test model they are what its clips can be compared with. The reference also
    has the clips' length and sample rate, so tempo and onsets are found alike in both.
    Cached by the codes and the codec (``cache_dir``)."""
    from engine.train import style

    segs = data.train
    picked = sorted(set(np.linspace(0, len(segs) - 1, min(MAX_REFERENCE_CLIPS, len(segs)))))
    frames = max(1, int(round(seconds * mg.frame_rate)))
    codes = [segs[int(i)].codes[:, : min(segs[int(i)].length, frames)] for i in picked]
    h = hashlib.sha256()
    for c in codes:
        h.update(str(c.shape).encode())
        h.update(np.ascontiguousarray(c).tobytes())
    file = None
    if cache_dir is not None:
        key = _digest(
            ["style", style.PROFILE_FORMAT, h.hexdigest(), _ModelSource(mg, cache_dir).codec_key()]
        )
        file = Path(cache_dir) / "style" / f"{key}.json"
        try:
            return style.AudioProfile.from_dict(json.loads(file.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    sr = mg.sample_rate
    signals = ((mg.decode(mx.array(c[None].astype(np.int32)))[0], sr) for c in codes)
    profile = style.profile_audio(signals)
    if file is not None:
        try:
            from engine.atomic import write_text_atomic

            file.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(file, json.dumps(profile.to_dict()) + "\n")
        except OSError:
            pass  # a read-only cache: computed again next time
    return profile


def style_reports(run: Path, best_step: int | None) -> dict | None:
    """The style reports of a run (from its ``metrics.jsonl``, across resumes): ``base`` (the
    clips before the first step), ``tuned`` (those of the best weights, else the last ones)
    and every report in order; None when none was made."""
    from engine.train import monitor

    path = Path(run) / monitor.METRICS_FILE
    if not path.is_file():
        return None
    reports = [
        {k: e[k] for k in ("iteration", "distances", "overall", "samples") if k in e}
        for e in monitor.read_metrics(path)
        if e.get("kind") == "sample"
    ]
    if not reports:
        return None
    base = next((r for r in reports if r["iteration"] == 0), None)
    tuned = next((r for r in reports if r["iteration"] == best_step), reports[-1])
    return {"base": base, "tuned": tuned, "reports": reports}


def style_report_markdown(record: dict, title: str | None = None) -> str:
    """The run's ``report.md``: base and fine-tuned clips' distances to the dataset on the
    same seeds and captions, and the overall distance at each validation."""
    from engine.train import style

    st = record["style"]
    s = record["summary"]
    d = record["data"]
    lines = [f"# {title or 'MusicGen fine-tune'}", ""]
    lines.append(
        f"Data: {d['name']} `{d['dataset']}`, {d['items']} audio items, "
        f"{d['audio_s'] / 60:.1f} min ({d['train_segments']} training segments of "
        f"{record['segment_s']:g} s)."
    )
    best = f"{s['best_val']:.4f}" if s.get("best_val") is not None else "–"
    lines.append(
        f"Method: {record['method']} on {record['base']['name']}; {s['step']} steps, best at "
        f"step {s['best_step']} (validation loss {best}); stopped: {s['stop_reason']}."
    )
    lines += [
        "",
        "## Does it sound like the data?",
        "",
        f"Distances to the dataset's audio (0 = the same) of {record['samples']} clips of "
        f"{record['sample_seconds']:g} s, seeds 0..{record['samples'] - 1}, on the dataset's "
        "captions:",
        "",
        style.compare_table(
            {**st["base"]["distances"], "overall": st["base"]["overall"]},
            {**st["tuned"]["distances"], "overall": st["tuned"]["overall"]},
        ),
        "## Style distance at each validation",
        "",
        "| step | overall |",
        "|---|---|",
    ]
    lines += [f"| {r['iteration']} | {r['overall']:.3f} |" for r in st["reports"]]
    return "\n".join(lines) + "\n"


# ---- named models, in rounds ------------------------------------------------------------------
CARD = hub.TRAINED_CARD
CARD_FORMAT = hub.TRAINED_CARD_FORMAT
CARD_KIND = "musicgen"


def finetune_musicgen(
    data: Any = None,
    *,
    name: str,
    base: str | Path = DEFAULT_BASE,
    method: str | None = None,
    preset: str = "quick",
    lora: LoraConfig | None = None,
    config: TrainConfig | None = None,
    segment_s: float | None = None,
    codebook_weights: Sequence[float] | str | None = None,
    cond_dropout: float = DEFAULT_COND_DROPOUT,
    epochs: int | None = None,
    from_model: str | None = None,
    version: str | None = None,
    resume: bool = False,
    samples: int = 0,
    sample_seconds: float = DEFAULT_SAMPLE_S,
    cache_dir: str | Path | None = None,
    callback: Any = None,
    progress: ProgressFn | None = None,
    control: Any = None,
    plan: Callable[[dict], None] | None = None,
    command: str | None = None,
    tensorboard: bool = True,
) -> dict:
    """Train a round of the user's MusicGen model ``name`` on the audio of dataset ``data``;
    return the round (as the card lists it, plus ``name``, ``folder``, ``run``, ``record``).

    The model lives in ``engine.hub.trained_models_dir() / name`` as the score model's do
    (`engine.train.finetune`): ``model.json`` (``"kind": "musicgen"``; ``current``: the
    folder ``generate --model NAME`` loads, ``runs/round-K/best``; every round with its
    dataset version), ``README.md``, and ``runs/round-K/`` (a `train_musicgen` run folder:
    ``checkpoint/``, ``best/``, ``checkpoints/step-N/``, ``metrics.jsonl``, ``samples/``,
    ``report.md``, ``training.json``). Tags pick checkpoints: ``NAME@step-N``, ``@latest``,
    ``@round-N``, ``@best``.

    ``preset`` (`PRESETS`) gives the settings ``config``, ``lora`` and ``segment_s`` leave
    out. ``from_model`` (a MusicGen model of the user's, with an optional tag, or a fine-tune
    folder) starts from its weights: a new round of it when ``name`` is its name, else a
    new model whose card inherits its rounds; ``method`` defaults to the parent's (else
    LoRA). ``resume=True`` continues the last, unfinished round of ``name`` exactly (its
    data, version and settings: the other arguments are not used). ``samples``,
    ``sample_seconds``: the style proof (`AudioStyleSampler`); ``plan(info)``: the memory and
    time it needs, before the first step (`plan_run`). Raises `TrainingError` / `LoraError`.
    """
    from engine import __version__, hub
    from engine.atomic import write_text_atomic
    from engine.train import finetune as score_finetune

    card, parent_card, init_from = None, None, None
    if resume:
        card = read_musicgen_card(name)
        last = score_finetune.unfinished_round(card, name)
        o = last["options"]
        data, version, from_model = last["data"], last["dataset_version"], last.get("from")
        method, preset, base = last["method"], o["preset"], card["base"]["name"]
        config = TrainConfig(**last["train_config"])
        lora = None if last["lora"] is None else LoraConfig(**last["lora"])
        if lora is not None:
            lora = replace(lora, keys=tuple(lora.keys))
        segment_s, codebook_weights = o["segment_s"], o["codebook_weights"]
        cond_dropout, epochs = o["cond_dropout"], o["epochs"]
        samples, sample_seconds = o["samples"], o["sample_seconds"]
        init_from = last.get("from_path")
    else:
        if data is None:
            raise TrainingError("give the dataset to train on (--data DATASET)")
        preset_values(preset)
        if from_model is not None:
            init_from, parent_info, base = start_weights(from_model)
            if is_musicgen_card(from_model):
                parent_card = read_musicgen_card(hub.split_tag(from_model)[0])
            method = method or parent_info["method"]
            if parent_card is not None and parent_card["name"] == name:
                card = parent_card
        if card is None:
            score_finetune.check_name(name)
            if (score_finetune.model_folder(name) / CARD).exists():
                raise TrainingError(
                    f"you already have a model named {name!r}; continue it with --from {name}, "
                    "or choose another --name"
                )
    method = method or "lora"
    _check_method(method)
    p = preset_values(preset)
    config = config if config is not None else default_config(method, preset)
    if lora is None:
        rank = p["rank"]
        lora = LoraConfig(rank=rank, alpha=2.0 * rank, keys=musicgen_targets(DEFAULT_TARGETS))
    segment_s = check_segment(segment_s if segment_s is not None else p["segment_s"])
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    folder = score_finetune.model_folder(name)
    round_no = 1 if card is None else card["rounds"][-1]["round"] + (0 if resume else 1)
    run = folder / "runs" / f"round-{round_no}"
    if not resume and run.exists():
        raise TrainingError(f"{run} exists already; remove it or resume with --resume")
    # The data first (one line for what is wrong with it), then the card, then training.
    from engine.data.store import Dataset

    ds = data if isinstance(data, Dataset) else Dataset.open(data)
    base_folder = resolve_base(base)
    prepared = prepare(ds, version, base_folder, cache, segment_s=segment_s, seed=config.seed)
    ident = prepared.dataset
    dataset_version = ident.split("@", 1)[1]
    model_created = not folder.exists()
    entry = {
        "round": round_no,
        "status": "running",
        "data": str(data if not isinstance(data, Dataset) else data.path),
        "dataset": ident,
        "dataset_name": ds.name,
        "dataset_version": dataset_version,
        "from": from_model,
        "from_path": str(Path(init_from).resolve()) if init_from is not None else None,
        "method": method,
        "options": {
            "preset": preset,
            "segment_s": segment_s,
            "codebook_weights": codebook_weights
            if codebook_weights is None or isinstance(codebook_weights, str)
            else list(codebook_weights),
            "cond_dropout": cond_dropout,
            "epochs": epochs,
            "samples": samples,
            "sample_seconds": sample_seconds,
        },
        "train_config": asdict(config),
        "lora": asdict(lora) if method == "lora" else None,
        "items": prepared.items,
        "audio_s": round(prepared.audio_s, 3),
        "train_segments": len(prepared.train),
        "val_segments": len(prepared.val),
        "command": command or _command(data, name, base, method, preset, from_model),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "disco_musica_version": __version__,
    }
    if card is None:
        card = {
            "format": CARD_FORMAT,
            "name": name,
            "kind": CARD_KIND,
            "method": method,
            "base": {
                "name": str(base),
                "sha256": _file_hash(base_folder / "model.safetensors", cache),
            },
            "current": None,
            "rounds": [],
        }
        if parent_card is not None:
            card["rounds"] = [
                dict(r, inherited_from=parent_card["name"]) for r in parent_card["rounds"]
            ]
    card["method"] = method
    if resume:
        card["rounds"][-1] = {**card["rounds"][-1], "resumed": entry["started"]}
    else:
        card["rounds"].append(entry)
    run.mkdir(parents=True, exist_ok=True)
    write_musicgen_card(folder, card)
    try:
        record = train_musicgen(
            ds,
            run,
            base=base,
            method=method,
            lora=lora,
            config=config,
            version=dataset_version,
            segment_s=segment_s,
            cache_dir=cache,
            codebook_weights=codebook_weights,
            cond_dropout=cond_dropout,
            epochs=epochs,
            resume=resume and (run / CHECKPOINT_DIR / STATE_FILE).is_file(),
            init_from=init_from,
            samples=samples,
            sample_seconds=sample_seconds,
            callback=callback,
            progress=progress,
            control=control,
            plan=plan,
            tensorboard=tensorboard,
            publish=False,
        )
    except BaseException:
        if not (run / CHECKPOINT_DIR).exists() and not resume:
            # Nothing trained: take back what this call made (the round, and the model
            # when it was new).
            shutil.rmtree(run, ignore_errors=True)
            card["rounds"].pop()
            if model_created:
                shutil.rmtree(folder, ignore_errors=True)
            elif card["rounds"]:
                write_musicgen_card(folder, card)
        raise
    summary, style = record["summary"], record["style"]
    entry = card["rounds"][-1]
    score_finetune.finish_round(
        entry, summary, style["base"] if style else None, style["tuned"] if style else None
    )
    best = best_folder(run)
    if best is not None:
        card["current"] = best.relative_to(folder).as_posix()
    write_musicgen_card(folder, card)
    if style is not None and style.get("base") and style.get("tuned"):
        write_text_atomic(
            run / REPORT_FILE, style_report_markdown(record, f"{name}, round {round_no}")
        )
    if summary["stop_reason"] == "nan_loss":
        kept = f"the best weights (step {summary['best_step']}) are kept as {name}"
        raise TrainingError(
            f"the loss of {name} became NaN at step {summary['step']}: training stopped; "
            f"{kept if best is not None else 'nothing was kept'}. Try a lower --lr or "
            "--grad-clip"
        )
    return {**entry, "name": name, "folder": str(folder), "run": str(run), "record": record}


def start_weights(from_model: str | Path) -> tuple[Path, dict, str]:
    """What ``--from`` names: (the fine-tune's folder, its finetune.json, the base to load:
    the folder its run found it in, else its name). `TrainingError` when it is none."""
    from engine import hub

    folder = resolve_finetuned(from_model)
    if folder is None:
        mine = [n for n in hub.trained_models() if is_musicgen_card(n)]
        raise TrainingError(
            f"{from_model} is not a MusicGen model of yours (yours: "
            f"{', '.join(mine) or 'none yet'}) nor a folder made by `disco-musica train musicgen`"
        )
    info = read_finetune(folder)[1]
    b = info["base"]
    base = b["path"] if (Path(b.get("path") or "") / "config.json").is_file() else b["name"]
    return folder, info, base


def read_musicgen_card(name: str) -> dict:
    """The card of the user's MusicGen model ``name`` (one-line errors for another kind)."""
    from engine.train import finetune as score_finetune

    card = score_finetune.read_card(name, kind=None)
    if card.get("kind") != CARD_KIND:
        raise TrainingError(
            f"{name} is a {card.get('kind', 'score')} model, not a MusicGen one; continue it "
            f"with `disco-musica train score --from {name}`"
        )
    return card


def write_musicgen_card(folder: Path, card: dict) -> None:
    from engine.atomic import write_text_atomic

    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / CARD, json.dumps(card, indent=1) + "\n")
    write_text_atomic(folder / "README.md", card_markdown(card))


def card_markdown(card: dict) -> str:
    """The card for people: what the model is, how to use it, every round."""
    from engine.train import finetune as score_finetune

    how = "LoRA adapter on" if card["method"] == "lora" else "fully fine-tuned"
    return score_finetune.card_markdown(
        card,
        f"MusicGen, {how} {card['base']['name']}, trained on your audio with Disco-Musica. "
        "The MusicGen weights are CC-BY-NC 4.0: music made with them may not be used "
        "commercially.",
    )


def _command(data, name, base, method, preset, from_model) -> str:
    import shlex

    parts = ["disco-musica", "train", "musicgen", "--data", str(data), "--method", method]
    parts += ["--from", from_model] if from_model else ["--base", str(base)]
    parts += ["--name", name, "--preset", preset]
    return shlex.join(parts)
