"""Adapt a model to what its user likes: a preference fine-tune from the library's ratings.

``disco-musica adapt my-model`` runs :func:`adapt_model`. What the user said about the pieces
a model made becomes a new round (a new version) of the model:

- a rating of 1..5 stars (`engine.library.store.Library.rate`) is what the piece scores;
- a piece tagged ``keep`` scores like 4 stars, one tagged ``discard`` like 2 (when unrated);
- of the variations of one request (``generate --variations N``), when some were deleted and
  some were not, the deleted ones score 2 ("discarded") and the unrated survivors 4 ("kept").

Two pieces make a preference pair when one scores at least `PAIR_GAP` stars more than the
other. With pairs, the round is **DPO** (Rafailov et al. 2023, "Direct Preference
Optimization"): the model learns to give the preferred piece more probability than the other,
measured against the model as it was before the round (the reference), so that it moves only
as far as the preferences ask (``beta``). Without any disliked piece it falls back to
**rejection-sampling fine-tuning** (``sft``): next-token training on the liked pieces (4..5
stars, kept variations). `docs/adapting.md` explains the choice and its limits.

A round is trained with `engine.train.trainer.train` (LoRA on the user's LoRA model, every
weight of a full one) into ``runs/round-N/`` of the model's folder, like a fine-tuning round
(`engine.train.finetune`); the card's round says ``kind: "adapt"``, what it learnt from and a
changelog line, and the card's ``adapt`` entry remembers which ratings were used, so that the
next round counts only new ones. ``adapt NAME --auto N`` stores N in the card: `maybe_adapt`
(which `library rate` calls, through `maybe_adapt_all`) adapts again once N new ratings
arrived.

The pieces a model's ratings come from: those made with any round of the model (by the
sha256 of the weights the piece's record names, or by the model's name), and, unless
``include_base=False``, those made with the base model it was trained from (the same
taste, heard through the model before it was fine-tuned).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shlex
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from engine import __version__, hub, names
from engine.atomic import sha256_file
from engine.errors import UserError, one_line
from engine.models import lora, write_text_atomic
from engine.progress import Progress, ProgressFn
from engine.seeds import derive_seed
from engine.train.finetune import (
    CARD_FORMAT,
    DEFAULT_STYLE,
    ModelExport,
    check_name,
    model_folder,
    read_card,
    write_card,
)
from engine.train.score import TrainingError
from engine.train.trainer import (
    BEST_DIR,
    TokenTask,
    TrainConfig,
    TrainControl,
    time_passes,
    token_nll,
    train,
)

METHODS = names.ADAPT_METHODS
DEFAULT_BETA = names.ADAPT_BETA
MIN_RATINGS = names.ADAPT_MIN_RATINGS
LIKED = 4  # stars from which a piece is liked (the pieces sft learns from)
DISLIKED = 2  # stars up to which a piece is disliked
PAIR_GAP = 2  # a preference pair: the preferred piece has at least this many stars more
KEPT_SCORE, DISCARDED_SCORE = LIKED, DISLIKED
KEEP_TAG, DISCARD_TAG = "keep", "discard"
MAX_PAIRS = 256  # pairs a round learns from at most (those of one request first)
PAIRS_PER_BATCH = 4
EPOCHS = 2  # default steps: about this many passes over the pairs ...
MIN_STEPS, MAX_DEFAULT_STEPS = names.ADAPT_STEPS  # ... within these bounds
MAX_STEPS = names.ADAPT_MAX_STEPS
LEARNING_RATE = names.ADAPT_LEARNING_RATE
DEFAULT_SFT_WEIGHT = names.ADAPT_SFT_WEIGHT
DEFAULT_RANK = 8  # the adapter of a model that adapt makes (--from a shipped model)
PREFERENCES_FILE = "preferences.json"
LOCK_FILE = ".adapt.lock"
STARTING_FILE = ".adapt.starting"  # a background round started, its lock not taken yet
STARTING_S = 120.0  # after this, a start that never took the lock is forgotten
EVAL_PAIRS = 64  # pairs (or liked pieces) the round's before / after measure scores at most
TIE = 1e-4  # a margin this small counts as a tie (half right) in the preference accuracy


# ---- what the user said about the pieces --------------------------------------------------------
@dataclass
class Signal:
    """One piece's score (1..5) and where it came from."""

    id: str
    score: int
    source: str  # rating, keep tag, discard tag, kept variation, discarded variation
    prompt: str | None
    group: str | None  # the request's variations (prompt and seeds) it belongs to
    deleted: bool
    model: str | None
    new: bool = True

    @property
    def liked(self) -> bool:
        return self.score >= LIKED

    @property
    def disliked(self) -> bool:
        return self.score <= DISLIKED


@dataclass
class AdaptOptions:
    """What one adapt round is trained with (the card records it)."""

    method: str = "auto"
    beta: float = DEFAULT_BETA
    steps: int | None = None
    learning_rate: float | None = None
    sft_weight: float = DEFAULT_SFT_WEIGHT  # DPO + this x the liked pieces' token NLL
    pairs_per_batch: int = PAIRS_PER_BATCH
    max_pairs: int = MAX_PAIRS
    min_ratings: int = MIN_RATINGS
    include_base: bool = True
    rank: int | None = None  # a new adapter only (adapt --from a shipped model)
    grad_checkpoint: bool = False  # recompute activations in the backward pass: less memory
    seed: int = 0

    def check(self) -> None:
        if self.method not in METHODS:
            raise TrainingError(f"unknown method {self.method!r}; use {', '.join(METHODS)}")
        if not (isinstance(self.beta, int | float) and 0 < self.beta <= 10):
            raise TrainingError(f"--beta must be more than 0 and at most 10, not {self.beta}")
        if self.steps is not None and not 1 <= self.steps <= MAX_STEPS:
            raise TrainingError(f"--steps must be 1..{MAX_STEPS}, not {self.steps}")
        if self.learning_rate is not None and not 0 < self.learning_rate <= 1:
            raise TrainingError(f"--lr must be in (0, 1], not {self.learning_rate:g}")
        if not 0 <= self.sft_weight <= 100:
            raise TrainingError(f"the SFT weight must be 0..100, not {self.sft_weight}")
        if not 1 <= self.pairs_per_batch <= 256:
            raise TrainingError(f"pairs per batch must be 1..256, not {self.pairs_per_batch}")
        if not 1 <= self.max_pairs <= 100_000:
            raise TrainingError(f"--max-pairs must be 1..100000, not {self.max_pairs}")
        if not 1 <= self.min_ratings <= 100_000:
            raise TrainingError(f"--min-ratings must be 1..100000, not {self.min_ratings}")
        if self.rank is not None and not 1 <= self.rank <= 1024:
            raise TrainingError(f"--rank must be 1..1024, not {self.rank}")


def _open_library(library):
    """(library, close it afterwards?) from a `Library`, a path or None (the default one)."""
    from engine.library.store import Library

    if isinstance(library, Library):
        return library, False
    return Library.open(library, write=False), True


@dataclass
class _Identity:
    """What a piece's record says when the piece was made with a model (or its base)."""

    shas: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)  # the model's own names (NAME, NAME@tag)
    folders: list[Path] = field(default_factory=list)  # a record may name a folder

    def made(self, model: str | None, sha: str | None) -> bool:
        if sha and sha.lower() in self.shas:
            return True
        if not model:
            return False
        if hub.split_tag(model)[0].lower() in self.names:
            return True
        if "/" in model or "\\" in model:
            with contextlib.suppress(OSError, ValueError):
                p = Path(model).expanduser().resolve()
                return any(p == f or f in p.parents for f in self.folders)
        return False


def _identity(card: dict | None, start: Path | None, include_base: bool) -> _Identity:
    from engine.symbolic.model_versions import weights_sha256

    ident = _Identity()
    if start is not None:  # a new model's starting weights (a shipped model or a folder)
        sha = weights_sha256(start)
        if sha:
            ident.shas.add(sha)
    if card is None:
        return ident
    owners = {card["name"]} | {r["inherited_from"] for r in card["rounds"] if "inherited_from" in r}
    for owner in owners:
        folder = model_folder(owner)
        ident.names.add(owner.lower())
        ident.folders.append(folder.resolve())
        for run in (folder / "runs").glob("round-*"):
            kept = (
                list((run / "checkpoints").glob("step-*")) if (run / "checkpoints").is_dir() else []
            )
            for weights in [run / BEST_DIR, run / "checkpoint", *kept]:
                sha = weights_sha256(weights) if weights.is_dir() else None
                if sha:
                    ident.shas.add(sha)
        if (folder / "fused").is_dir():
            sha = weights_sha256(folder / "fused")
            if sha:
                ident.shas.add(sha)
    if include_base and card.get("base", {}).get("sha256"):
        ident.shas.add(card["base"]["sha256"])
    return ident


def gather(
    lib, ident: _Identity, used: dict[str, int] | None = None
) -> tuple[list[Signal], int, int]:
    """(signals, pieces made with the model, signals used before and unchanged) of ``lib``.

    ``used`` ({piece id: score}) are the signals earlier rounds learnt from: a signal is new
    when its piece is not among them or its score changed since."""
    from engine.library import records

    used = used or {}
    alive = [p for p in lib.list(limit=None) if ident.made(p.model, p.model_sha256)]
    dead = [p for p in lib.list(trash=True, limit=None) if ident.made(p.model, p.model_sha256)]
    groups: dict[str, list[tuple[Any, bool]]] = {}
    group_of: dict[str, str | None] = {}
    for p, deleted in [(p, False) for p in alive] + [(p, True) for p in dead]:
        batch = records.batch_of(lib.record(p.id))
        key = None
        if batch is not None and len(batch[0]) > 1:
            key = json.dumps([p.prompt, list(batch[0])])
            groups.setdefault(key, []).append((p, deleted))
        group_of[p.id] = key
    signals: list[Signal] = []
    for p, deleted in [(p, False) for p in alive] + [(p, True) for p in dead]:
        tags = {t.lower() for t in p.tags}
        score, source = None, None
        if p.rating is not None:
            score, source = int(p.rating), "rating"
        elif KEEP_TAG in tags and not deleted:
            score, source = KEPT_SCORE, "keep tag"
        elif DISCARD_TAG in tags:
            score, source = DISCARDED_SCORE, "discard tag"
        elif group_of[p.id] is not None:
            members = groups[group_of[p.id]]
            some_deleted = any(d for _, d in members)
            some_alive = any(not d for _, d in members)
            if some_deleted and some_alive:
                score, source = (
                    (DISCARDED_SCORE, "discarded variation")
                    if deleted
                    else (KEPT_SCORE, "kept variation")
                )
        if score is None:
            continue
        signals.append(
            Signal(
                p.id,
                score,
                source,
                p.prompt,
                group_of[p.id],
                deleted,
                p.model,
                new=used.get(p.id) != score,
            )
        )
    unchanged = sum(1 for s in signals if not s.new)
    return signals, len(alive) + len(dead), unchanged


def make_pairs(
    signals: list[Signal], max_pairs: int = MAX_PAIRS, seed: int = 0
) -> list[tuple[Signal, Signal]]:
    """(preferred, other) pairs: scores ``PAIR_GAP`` or more apart, at least one of the two
    new. Pairs of one request's variations come first, then pairs of one prompt, then the
    rest in an order drawn from ``seed``; at most ``max_pairs``."""
    found = []
    for a in signals:
        for b in signals:
            if a.score - b.score >= PAIR_GAP and (a.new or b.new):
                same_prompt = a.prompt is not None and a.prompt == b.prompt
                near = 0 if a.group and a.group == b.group else 1 if same_prompt else 2
                found.append((near, a, b))
    order = np.random.default_rng(seed).permutation(len(found)) if found else []
    ranked = sorted((found[i] for i in order), key=lambda x: x[0])
    return [(a, b) for _, a, b in ranked[:max_pairs]]


# ---- pieces as model sequences -------------------------------------------------------------------
def piece_sequence(tokenizer, midi: Path, record: dict, max_tokens: int) -> list[int]:
    """The model sequence of a piece: its conditions (what the MIDI file's marker, else its
    record, says the model was told: style, key, mode, meter; the tempo band of its tempo)
    and as many of its first bars, all voices, as fit ``max_tokens`` (the model's window).

    Raises `TrainingError` (why, in words) for a file the model cannot read."""
    from engine.data.dataset import HEADER_TOKENS, TRACK_OVERHEAD
    from engine.library import records
    from engine.symbolic.midi import read_midi
    from engine.symbolic.score_api import recorded_conditions
    from engine.symbolic.theory import key_from_profile, pitch_class_profile
    from engine.symbolic.tokenizer import (
        MAX_VOICES,
        METERS,
        TEMPO_BANDS,
        TONICS,
        Track,
        tempo_band,
        tonic_index,
    )

    try:
        score = read_midi(midi)
        piece = tokenizer.encode_score(score, name=midi.name)
    except Exception as e:  # noqa: BLE001  (any unreadable file is skipped, with its reason)
        raise TrainingError(f"{type(e).__name__}: {e}"[:300]) from None
    marker, _ = recorded_conditions(None, score)
    attrs = records.describe(record)
    said = record.get("conditions") if isinstance(record.get("conditions"), dict) else {}

    def pick(name: str):
        for source in (marker, said, attrs):
            v = source.get(name)
            if isinstance(v, str) and v:
                return v
        return None

    style = pick("style")
    style = style.lower() if style and style.lower() in names.STYLES else DEFAULT_STYLE
    mode = pick("mode")
    tonic = None
    with contextlib.suppress(ValueError, KeyError, AttributeError):
        tonic = tonic_index(pick("key") or "")
    if tonic is None or mode not in names.MODES:
        notes = [(n.pitch, n.duration) for t in score.tracks if not t.is_drum for n in t.notes]
        p = np.array(notes, dtype=np.float64)
        tonic, mode = key_from_profile(pitch_class_profile(p[:, 0], p[:, 1]))
        mode = mode if mode in names.MODES else "minor"
    band = said.get("tempo") if said.get("tempo") in TEMPO_BANDS else None
    if band is None:
        bpm = attrs["tempo"] or (score.tempos[0].qpm if len(score.tempos) else 120.0)
        band = tempo_band(float(bpm))
    meter = tokenizer.value(piece.tracks[0].bars[0][1])
    if meter not in METERS:
        raise TrainingError(f"its meter {meter} is not one the score model writes")

    tracks = piece.tracks[:MAX_VOICES]
    nbars = min(len(t.bars) for t in tracks)
    budget = max_tokens - HEADER_TOKENS - TRACK_OVERHEAD * len(tracks)
    end, used = 0, 0
    while end < nbars:
        cost = sum(len(t.bars[end]) for t in tracks)
        if used + cost > budget:
            break
        used, end = used + cost, end + 1
    if end == 0:
        raise TrainingError(f"its first bar does not fit the model's {max_tokens}-token window")
    pitch = tokenizer.pitch_of
    kept = [
        Track(program=t.program, bars=[list(b) for b in t.bars[:end]])
        for t in tracks
        if any(pitch[i] >= 0 for b in t.bars[:end] for i in b)
    ]
    if not kept:
        raise TrainingError("its first bars have no notes the model reads")
    conditions = {
        "style": style,
        "key": TONICS[int(tonic)],
        "mode": mode,
        "meter": meter,
        "tempo": band,
        "voices": str(len(kept)),
    }
    return tokenizer.build_sequence(conditions, kept)


def _midi_of(lib, piece_id: str) -> tuple[Path, dict]:
    """The MIDI file of a piece (``music.mid`` first) and its record."""
    piece = lib.get(piece_id, include_deleted=True)
    mids = sorted(
        (f.name for f in piece.files if f.name.lower().endswith((".mid", ".midi"))),
        key=lambda n: (n != "music.mid", n),
    )
    if not mids:
        raise TrainingError("it has no MIDI file (audio-only pieces cannot teach the score model)")
    path = lib.folder_of(piece.id, piece.deleted is not None) / mids[0]
    if not path.is_file():
        raise TrainingError(f"its file {mids[0]} is missing (see `disco-musica library verify`)")
    return path, lib.record(piece_id)


def _pad(seqs: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    from engine.data.dataset import bucket_of, pad_batch

    longest = max(len(s) for s in seqs)
    return pad_batch(seqs, max(longest, bucket_of(longest)), pad_id)


def sequence_logprobs(
    model: nn.Module, seqs: list[list[int]], pad_id: int, batch_tokens: int = 8192
) -> np.ndarray:
    """Log-probability (a sum over the predicted tokens) the model gives each sequence, [N]."""
    from engine.data.dataset import bucket_of

    out = np.zeros(len(seqs), dtype=np.float64)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    i = 0
    while i < len(order):
        per = max(1, batch_tokens // bucket_of(len(seqs[order[i]])))
        chunk = order[i : i + per]
        x, n = _pad([seqs[j] for j in chunk], pad_id)
        nll, _ = token_nll(model, mx.array(x), mx.array(n))
        out[chunk] = -np.array(nll, dtype=np.float64)
        i += len(chunk)
    return out


# ---- DPO as a trainer task -----------------------------------------------------------------------
class DPOTask:
    """Direct preference optimisation on batches of pairs: ``(chosen [B, L], chosen lengths
    [B], rejected [B, L], rejected lengths [B], reference log-probs of chosen [B] and of
    rejected [B])``, the reference's computed once before training.

    loss = mean over pairs of ``-log sigmoid(beta * ((pi(c) - ref(c)) - (pi(r) - ref(r))))``
    (+ ``sft_weight`` x the chosen pieces' mean token NLL, when given), where ``pi(x)`` is the
    log-probability the model being trained gives sequence x."""

    def __init__(self, beta: float = DEFAULT_BETA, sft_weight: float = 0.0):
        self.beta, self.sft_weight = beta, sft_weight

    def arrays(self, batch) -> tuple[mx.array, ...]:
        c, lc, r, lr, ref_c, ref_r = batch
        return (
            mx.array(c, dtype=mx.int32),
            mx.array(lc, dtype=mx.int32),
            mx.array(r, dtype=mx.int32),
            mx.array(lr, dtype=mx.int32),
            mx.array(ref_c, dtype=mx.float32),
            mx.array(ref_r, dtype=mx.float32),
        )

    def margins(self, model, c, lc, r, lr, ref_c, ref_r):
        """(margin [B], chosen NLL [B], target tokens [2B]); margin = the policy's log-ratio
        of chosen minus that of rejected, both against the reference."""
        B = c.shape[0]
        nll, ntoks = token_nll(model, mx.concatenate([c, r]), mx.concatenate([lc, lr]))
        logp = -nll
        margin = (logp[:B] - ref_c) - (logp[B:] - ref_r)
        return margin, nll[:B], ntoks

    def loss(self, model, c, lc, r, lr, ref_c, ref_r):
        B = c.shape[0]
        margin, nll_c, ntoks = self.margins(model, c, lc, r, lr, ref_c, ref_r)
        loss = mx.logaddexp(mx.zeros_like(margin), -self.beta * margin).mean()
        if self.sft_weight:
            loss = loss + self.sft_weight * nll_c.sum() / mx.maximum(ntoks[:B].sum(), 1)
        return loss, ntoks.sum()

    def slots(self, batch) -> int:
        return int(batch[0].size + batch[2].size)

    def evaluate(self, model, batches, max_batches: int = 0) -> tuple[float, dict[str, float]]:
        """(mean DPO loss over the pairs, {accuracy: share of pairs the model prefers the
        right way (ties half), margin: mean beta x margin})."""
        losses, right, margins = [], [], []
        for i, batch in enumerate(batches):
            if max_batches and i >= max_batches:
                break
            m, _, _ = self.margins(model, *self.arrays(batch))
            m = np.array(m, dtype=np.float64) * self.beta
            losses += np.logaddexp(0.0, -m).tolist()
            right += np.where(np.abs(m) < TIE, 0.5, (m > 0).astype(np.float64)).tolist()
            margins += m.tolist()
        if not losses:
            raise ValueError("no preference pairs to evaluate")
        return float(np.mean(losses)), {
            "accuracy": float(np.mean(right)),
            "margin": float(np.mean(margins)),
        }


class PairStream:
    """Endless batches of preference pairs for `DPOTask`, reshuffled every pass (seeded);
    its position can be saved and restored (``state_dict``)."""

    def __init__(
        self,
        pairs: list[tuple[int, int]],
        seqs: list[list[int]],
        ref: np.ndarray,
        pad_id: int,
        pairs_per_batch: int,
        seed: int = 0,
    ):
        self.pairs, self.seqs, self.ref, self.pad_id = pairs, seqs, ref, pad_id
        self.per = max(1, min(pairs_per_batch, len(pairs)))
        self.rng = np.random.default_rng(seed)
        self.order: list[int] = []
        self.pos = 0

    def batch(self, idx: list[int]):
        c = [self.seqs[self.pairs[i][0]] for i in idx]
        r = [self.seqs[self.pairs[i][1]] for i in idx]
        x, n = _pad(c + r, self.pad_id)
        B = len(idx)
        ref_c = np.array([self.ref[self.pairs[i][0]] for i in idx], dtype=np.float32)
        ref_r = np.array([self.ref[self.pairs[i][1]] for i in idx], dtype=np.float32)
        return x[:B], n[:B], x[B:], n[B:], ref_c, ref_r

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        idx = []
        while len(idx) < self.per:
            if self.pos >= len(self.order):
                self.order, self.pos = self.rng.permutation(len(self.pairs)).tolist(), 0
            idx.append(self.order[self.pos])
            self.pos += 1
        return self.batch(idx)

    def all(self) -> Iterator:
        """Every pair once, in order (validation)."""
        for i in range(0, len(self.pairs), self.per):
            yield self.batch(list(range(i, min(i + self.per, len(self.pairs)))))

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "order": self.order, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order, self.pos = list(state["order"]), int(state["pos"])


class SequenceStream:
    """Endless batches ``(inputs [B, L], lengths [B])`` of the liked pieces (sft), reshuffled
    every pass (seeded)."""

    def __init__(self, seqs: list[list[int]], pad_id: int, per_batch: int, seed: int = 0):
        self.seqs, self.pad_id = seqs, pad_id
        self.per = max(1, min(per_batch, len(seqs)))
        self.rng = np.random.default_rng(seed)
        self.order: list[int] = []
        self.pos = 0

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        idx = []
        while len(idx) < self.per:
            if self.pos >= len(self.order):
                self.order, self.pos = self.rng.permutation(len(self.seqs)).tolist(), 0
            idx.append(self.order[self.pos])
            self.pos += 1
        return _pad([self.seqs[i] for i in idx], self.pad_id)

    def all(self) -> Iterator:
        for i in range(0, len(self.seqs), self.per):
            x, n = _pad(self.seqs[i : i + self.per], self.pad_id)
            yield x, n, ["liked"] * len(n)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "order": self.order, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order, self.pos = list(state["order"]), int(state["pos"])


# ---- the model and its card ----------------------------------------------------------------------
@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """One adapt of a model at a time (``--auto`` may start one while another runs)."""
    from engine.record import is_stale, owner_info

    folder = model_folder(name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(path.read_text())
            except (OSError, ValueError):
                owner = {}
            try:
                just_made = time.time() - path.stat().st_mtime < 10
            except OSError:
                just_made = False
            alive = owner and not is_stale(owner) if isinstance(owner, dict) else False
            if alive or (not owner and just_made):  # (an empty lock: its owner is writing it)
                raise AdaptBusy(
                    f"{name} is being adapted by another process (pid {owner.get('pid')}); "
                    "wait for it to finish"
                ) from None
            path.unlink(missing_ok=True)  # left by a process that ended
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(owner_info(), f)
        (folder / STARTING_FILE).unlink(missing_ok=True)  # the started round is this one
        break
    else:
        raise AdaptBusy(f"{name} is being adapted by another process; wait for it to finish")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


class AdaptBusy(TrainingError):
    """Another process is adapting the same model."""


def claim_start(name: str) -> bool:
    """Mark a background round of ``name`` as starting (before its process takes the lock);
    False when another start was marked in the last `STARTING_S` seconds and has not taken
    the lock yet, so that two ratings in quick succession start one round."""
    path = model_folder(name) / STARTING_FILE
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                fresh = time.time() - path.stat().st_mtime < STARTING_S
            except OSError:
                continue  # (its process took the lock just now)
            if fresh:
                return False
            path.unlink(missing_ok=True)  # a start that never took the lock
            continue
        os.close(fd)
        return True
    return False


def running(name: str) -> dict | None:
    """Who is adapting ``name`` now (the lock's owner: pid, host, started), or None."""
    from engine.record import is_stale

    try:
        owner = json.loads((model_folder(name) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and owner and not is_stale(owner) else None


@dataclass
class _Start:
    """The model a round starts from, and what its checkpoints export."""

    card: dict | None  # None: a new model
    parent: dict | None  # the card of the trained model a new one starts from
    from_name: str | None
    weights: Path  # the folder the starting weights load from
    base: dict  # the card's base: {name (a model name or folder), sha256}
    method: str  # lora | full
    new_adapter: bool  # a new model from a shipped one: a fresh LoRA adapter on it


def _resolve_start(name: str, from_model: str | None) -> _Start:
    from engine.symbolic import score_api as api

    folder = model_folder(name)
    if (folder / "model.json").is_file():
        if from_model is not None and hub.split_tag(from_model)[0] != name:
            raise TrainingError(
                f"you already have a model named {name!r}; adapt it without --from, or give "
                "the new model another name"
            )
        card = read_card(name)
        if card.get("kind", "score") != "score":
            raise TrainingError(f"{name} is not a score model; adapt works on score models")
        if not card.get("current"):
            raise TrainingError(f"{name} has no finished round to adapt yet")
        weights = api.resolve_model_path(from_model or name)
        method = "lora" if (weights / lora.ADAPTER_CONFIG).is_file() else "full"
        return _Start(card, None, None, weights, card["base"], method, False)
    if from_model is None:
        known = ", ".join(hub.trained_models()) or "none yet"
        raise TrainingError(
            f"no trained model named {name!r} (yours: {known}); to make one from your ratings "
            f"of another model's pieces, give it: `disco-musica adapt {name} --from score-base`"
        )
    check_name(name)
    weights = api.resolve_model_path(from_model)
    parent_name = hub.split_tag(from_model)[0]
    if hub.resolve_trained(parent_name) is not None:
        parent = read_card(parent_name)
        method = "lora" if (weights / lora.ADAPTER_CONFIG).is_file() else "full"
        return _Start(None, parent, from_model, weights, parent["base"], method, False)
    if (weights / lora.ADAPTER_CONFIG).is_file():
        raise TrainingError(
            f"{from_model} is a LoRA adapter folder; adapt one of your models by its name"
        )
    base = {"name": from_model, "sha256": sha256_file(weights / "model.safetensors")}
    return _Start(None, None, from_model, weights, base, "lora", True)


def _load_model(start: _Start, options: AdaptOptions):
    """(model with its trainable weights set, model config, tokenizer, adapter | None, base
    info for the adapter files) for the round."""
    from engine.models import load_model
    from engine.symbolic import score_api as api
    from engine.symbolic.tokenizer import ScoreTokenizer

    tokenizer = ScoreTokenizer.load(start.weights / "tokenizer")
    model_config = json.loads((start.weights / "config.json").read_text())
    if start.method == "full":
        model, _ = load_model(start.weights)
        model.unfreeze()
        return model, model_config, tokenizer, None, dict(start.base)
    base_path = (
        start.weights
        if start.new_adapter
        else api.folder_with_weights(start.base["name"], start.base.get("sha256"))
    )
    base_sha = sha256_file(base_path / "model.safetensors")
    base_info = {"name": start.base["name"], "path": str(base_path), "sha256": base_sha}
    model, _ = load_model(base_path)
    if start.new_adapter:
        rank = options.rank or DEFAULT_RANK
        adapter = lora.LoraConfig(rank=rank, alpha=2.0 * rank, keys=lora.targets("all"))
        mx.random.seed(derive_seed(options.seed, "step", 0))  # the adapters' initial A
        lora.apply(model, adapter)
        return model, model_config, tokenizer, adapter, base_info
    config = lora.read_config(start.weights)
    want = (config.get("base_model") or {}).get("sha256")
    if want and want != base_sha:
        raise TrainingError(
            f"{start.weights} is a LoRA adapter for other weights of {start.base['name']!r} "
            "than the ones installed; it cannot be adapted here"
        )
    lora.load(model, start.weights)
    model.freeze()
    for _, m in model.named_modules():
        if hasattr(m, "lora_a"):
            m.unfreeze(keys=["lora_a", "lora_b"], recurse=False)
    return model, model_config, tokenizer, lora.LoraConfig.from_adapter_config(config), base_info


def _write_card(folder: Path, card: dict) -> None:
    write_card(folder, card)


def set_auto(name: str, every: int | None) -> dict:
    """Store ``--auto N`` in the card of ``name``: adapt again after every ``every`` new
    ratings (None or 0: never by itself). Returns the card's ``adapt`` entry."""
    if every is not None and not 0 <= every <= 100_000:
        raise TrainingError(f"--auto must be 0..100000 new ratings, not {every}")
    card = read_card(name)
    entry = card.setdefault("adapt", {"used": {}})
    entry["auto"] = every or None
    _write_card(model_folder(name), card)
    return entry


def _used(card: dict | None) -> dict[str, int]:
    return dict(((card or {}).get("adapt") or {}).get("used") or {})


def pending(name: str, *, library=None, include_base: bool = True) -> dict:
    """How many new ratings of ``name``'s pieces an adapt would learn from: {new, liked,
    disliked, used, auto, library}."""
    card = read_card(name)
    lib, close = _open_library(library)
    try:
        signals, pieces, unchanged = gather(lib, _identity(card, None, include_base), _used(card))
        where = str(lib.root)
    finally:
        if close:
            lib.close()
    new = [s for s in signals if s.new]
    return {
        "name": name,
        "new": len(new),
        "liked": sum(s.liked for s in new),
        "disliked": sum(s.disliked for s in new),
        "used": unchanged,
        "pieces": pieces,
        "auto": (card.get("adapt") or {}).get("auto"),
        "library": where,
    }


# ---- the round -----------------------------------------------------------------------------------
def adapt_model(
    name: str,
    *,
    library=None,
    options: AdaptOptions | None = None,
    from_model: str | None = None,
    auto: int | None = None,
    dry_run: bool = False,
    callback: Any = None,
    progress: ProgressFn | None = None,
    control: TrainControl | None = None,
    command: str | None = None,
    plan: Any = None,
    warn: Any = None,
    **option_values,
) -> dict:
    """Adapt ``name`` to the ratings of its pieces in ``library`` (a `Library`, a folder, or
    None: the default library): a new round of the model; return the round (a dict).

    ``options`` (`AdaptOptions`) or the same names as keywords (``method="auto"|"dpo"|"sft"``,
    ``beta``, ``steps``, ``min_ratings`` …). ``from_model`` makes ``name`` as a new model
    from another (a shipped model such as ``score-base``, or one of the user's), with the
    ratings of that model's pieces. ``auto`` stores ``--auto N`` in the card (0: off) once
    the round is made. ``dry_run`` stops before training and returns what the round would
    learn from. ``plan(info)`` is called once before training with the measured time.

    Refuses (`TrainingError`, one line) when fewer than ``min_ratings`` new ratings exist,
    or when the method has nothing to learn from (DPO: no liked and disliked pieces).
    """
    o = options or AdaptOptions()
    if option_values:
        o = AdaptOptions(**{**asdict(o), **option_values})
    o.check()
    if auto is not None and not 0 <= auto <= 100_000:
        raise TrainingError(f"--auto must be 0..100000 new ratings, not {auto}")
    start = _resolve_start(name, from_model)
    folder = model_folder(name)
    created = not folder.exists()
    try:
        with _lock(name):
            return _adapt(
                name,
                start,
                o,
                library,
                auto,
                dry_run,
                callback,
                progress,
                control,
                command,
                plan,
                warn,
            )
    finally:
        if created and folder.is_dir() and not (folder / "model.json").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a new model that was not made


def _adapt(
    name, start, o, library, auto, dry_run, callback, progress, control, command, plan, warn
):
    card = start.card
    folder = model_folder(name)
    if card is not None:
        last = card["rounds"][-1] if card["rounds"] else {}
        if last.get("status") == "running" and last.get("kind") != "adapt":
            raise TrainingError(
                f"the last round of {name} did not finish; finish it first with "
                f"`disco-musica train score --resume --name {name}`"
            )
        if last.get("status") == "running":  # an adapt that was killed: made again
            shutil.rmtree(folder / "runs" / f"round-{last['round']}", ignore_errors=True)
            card["rounds"].pop()
            _write_card(folder, card)
    lib, close = _open_library(library)
    try:
        known = card or start.parent  # a new model inherits what its parent learnt from
        ident = _identity(known, start.weights if known is None else None, o.include_base)
        signals, n_pieces, unchanged = gather(lib, ident, _used(known))
        new = [s for s in signals if s.new]
        whose = name if card is not None else str(start.from_name)
        if known is not None and o.include_base:
            whose += f" (or its base {known['base']['name']})"
        if len(new) < o.min_ratings:
            raise TrainingError(
                f"adapting {name} needs at least {o.min_ratings} new ratings of pieces made with "
                f"{whose}; there {'is' if len(new) == 1 else 'are'} {len(new)}"
                + (f" ({unchanged} used by earlier rounds)" if unchanged else "")
                + f" in the library {lib.root}: rate pieces with "
                "`disco-musica library rate ID 1..5` (or keep the variations you like and "
                "delete the others)"
            )
        pairs = make_pairs(signals, o.max_pairs, o.seed)
        liked_new = [s for s in new if s.liked]
        method = o.method
        if method == "auto":
            method = "dpo" if pairs else "sft"
        if method == "dpo" and not pairs:
            n_like = sum(s.liked for s in signals)
            n_dis = sum(s.disliked for s in signals)
            raise TrainingError(
                f"DPO learns from pairs of a piece you liked (4-5 stars or a kept variation) and "
                f"one you disliked (1-2 stars or a discarded variation), one of them new; "
                f"{name} has {n_like} liked and {n_dis} disliked: rate more pieces, or use "
                "--method sft (it learns from the liked ones alone)"
            )
        if method == "sft" and not liked_new:
            raise TrainingError(
                f"--method sft learns from the pieces you liked (4-5 stars or kept variations); "
                f"none of the {len(new)} new ratings of {whose} is 4 stars or more"
            )
        # The pieces as sequences of the model's tokens.
        from engine.symbolic.tokenizer import ScoreTokenizer

        tokenizer = ScoreTokenizer.load(start.weights / "tokenizer")
        ctx = int(
            json.loads((start.weights / "config.json").read_text())["max_position_embeddings"]
        )
        wanted = (
            {a.id for a, b in pairs} | {b.id for a, b in pairs}
            if method == "dpo"
            else {s.id for s in liked_new}
        )
        seq_of: dict[str, list[int]] = {}
        skipped: list[tuple[str, str]] = []
        for n, pid in enumerate(sorted(wanted), 1):
            if progress:
                progress(Progress("pieces", n, len(wanted), pid))
            try:
                midi, record = _midi_of(lib, pid)
                seq_of[pid] = piece_sequence(tokenizer, midi, record, ctx)
            except TrainingError as e:
                skipped.append((pid, str(e)))
        library_root = str(lib.root)
    finally:
        if close:
            lib.close()

    if method == "dpo":
        pairs = [(a, b) for a, b in pairs if a.id in seq_of and b.id in seq_of]
        if not pairs:
            raise TrainingError(
                f"none of the pieces of the preference pairs of {name} can be read by the model "
                f"({len(skipped)} skipped: {skipped[0][1] if skipped else '?'})"
            )
        ids = sorted({a.id for a, _ in pairs} | {b.id for _, b in pairs})
    else:
        ids = sorted(s.id for s in liked_new if s.id in seq_of)
        if not ids:
            raise TrainingError(
                f"none of the liked pieces of {name} can be read by the model "
                f"({skipped[0][1] if skipped else '?'})"
            )
    index = {pid: i for i, pid in enumerate(ids)}
    seqs = [seq_of[pid] for pid in ids]
    by_id = {s.id: s for s in signals}
    counts = {
        "new_ratings": len(new),
        "liked": sum(s.liked for s in new),
        "disliked": sum(s.disliked for s in new),
        "neutral": sum(not s.liked and not s.disliked for s in new),
        "from_variations": sum(s.source.endswith("variation") for s in new),
        "from_tags": sum(s.source.endswith("tag") for s in new),
        "used_before": unchanged,
        "pieces_of_model": n_pieces,
        "pairs": len(pairs) if method == "dpo" else 0,
        "sequences": len(seqs),
        "skipped": len(skipped),
    }
    per = o.pairs_per_batch
    items = counts["pairs"] if method == "dpo" else len(seqs)
    steps = o.steps or int(
        min(MAX_DEFAULT_STEPS, max(MIN_STEPS, math.ceil(EPOCHS * items / max(1, min(per, items)))))
    )
    summary = {
        "name": name,
        "preference": method,
        "method": start.method,
        "steps": steps,
        "library": library_root,
        **counts,
        "skipped_pieces": skipped,
    }
    if dry_run:
        return {**summary, "dry_run": True}

    model, model_config, tokenizer, adapter, base_info = _load_model(start, o)
    pad = tokenizer.pad_id
    model.eval()
    if method == "dpo":
        if progress:
            progress(Progress("reference", 0, len(seqs), "the model before adapting"))
        ref = sequence_logprobs(model, seqs, pad)
        if progress:
            progress(Progress("reference", len(seqs), len(seqs), "the model before adapting"))
        pair_idx = [(index[a.id], index[b.id]) for a, b in pairs]
        stream: Any = PairStream(pair_idx, seqs, ref, pad, per, seed=derive_seed(o.seed, "data", 0))
        task: Any = DPOTask(o.beta, o.sft_weight)
        val = PairStream(pair_idx, seqs, ref, pad, per).all
    else:
        stream = SequenceStream(seqs, pad, per, seed=derive_seed(o.seed, "data", 0))
        task = TokenTask()
        val = stream.all
    lr = o.learning_rate or LEARNING_RATE[start.method]
    config = TrainConfig(
        batch_size=per,
        learning_rate=lr,
        min_learning_rate=lr / 10,
        warmup_steps=min(5, steps // 5),
        max_steps=steps,
        schedule="cosine",
        optimizer="adamw",
        weight_decay=0.0,
        grad_clip=1.0,
        eval_every=steps,  # (and before the first step: the weights to beat are the old ones)
        eval_batches=max(1, EVAL_PAIRS // per),
        early_stop_patience=10**6,
        checkpoint_every=steps,
        keep_last=0,
        report_every=max(1, min(10, steps // 5)),
        seed=o.seed,
        grad_checkpoint=o.grad_checkpoint,
    )
    estimate = _measure(model, task, stream, steps, o.grad_checkpoint)
    if plan is not None:
        plan({**summary, **estimate})

    made_card = card is None
    if made_card:
        card = {
            "format": CARD_FORMAT,
            "name": name,
            "kind": "score",
            "method": start.method,
            "base": dict(start.base),
            "current": None,
            "rounds": [],
        }
        if start.parent is not None:
            card["rounds"] = [
                dict(r, inherited_from=r.get("inherited_from") or start.parent["name"])
                for r in start.parent["rounds"]
            ]
            card["adapt"] = {"used": _used(start.parent), "auto": None}
    round_no = card["rounds"][-1]["round"] + 1 if card["rounds"] else 1
    run = folder / "runs" / f"round-{round_no}"
    if run.exists():
        shutil.rmtree(run)  # left by an adapt that was killed before its card was written
    run.mkdir(parents=True)
    previous = f"{card['name']}@round-{card['rounds'][-1]['round']}" if not made_card else None
    entry = {
        "round": round_no,
        "kind": "adapt",
        "status": "running",
        "preference": method,
        "method": start.method,
        "dataset": f"library:{library_root}",
        "dataset_name": "library ratings",
        "dataset_version": None,
        "from": previous or start.from_name,
        "options": asdict(o),
        "train_config": asdict(config),
        "lora": None if adapter is None else asdict(adapter),
        "ratings": counts,
        "pieces": len(seqs),
        "command": command or _command(name, o, from_model=start.from_name),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "disco_musica_version": __version__,
    }
    card["rounds"].append(entry)
    preferences = {
        "library": library_root,
        "method": method,
        "pairs": [
            {"chosen": a.id, "rejected": b.id, "scores": [a.score, b.score]}
            for a, b in (pairs if method == "dpo" else [])
        ],
        "pieces": [asdict(by_id[pid]) for pid in ids],
        "skipped": [{"id": i, "why": w} for i, w in skipped],
    }
    write_text_atomic(run / PREFERENCES_FILE, json.dumps(preferences, indent=1) + "\n")
    if not made_card:  # (a new model's card is written when its first round is made)
        _write_card(folder, card)

    export = ModelExport(model_config, tokenizer, adapter, base_info)
    from engine.train.monitor import make_monitor

    vals = _ValLog()
    monitor = make_monitor(
        run, display=callback, run_name=f"{name}-round-{round_no}", config=entry, warn=warn
    )
    monitor.add(vals)
    try:
        result = train(
            model,
            config,
            stream,
            val,
            run,
            callback=monitor,
            eval_first=True,
            task=task,
            weights=export,
            control=control,
            start_info={"method": start.method, "name": name, "round": round_no, "adapt": method},
        )
    except BaseException as e:
        # Nothing is kept of a round that did not end: the model stays as it was.
        if made_card:
            shutil.rmtree(run, ignore_errors=True)
        else:
            card["rounds"].pop()
            _write_card(folder, card)
            shutil.rmtree(run, ignore_errors=True)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise TrainingError(
                f"the disk is full: adapting {name} stopped; the model is as it was before "
                "(free some space and run adapt again)"
            ) from None
        raise
    finally:
        monitor.close()

    before, after = (vals.reports[0], vals.reports[-1]) if vals.reports else (None, None)
    stop = result["stop_reason"]
    improved = result["best_step"] not in (None, 0)
    entry.update(
        status="finished",
        finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        steps=result["step"],
        best_step=result["best_step"],
        best_val=result["best_val"],
        stop_reason=stop,
        elapsed_s=result["elapsed_s"],
        before=before,
        after=after,
        changed=improved,
    )
    entry["changelog"] = _changelog_line(counts, method, before, after, improved)
    card["current"] = f"runs/round-{round_no}/{BEST_DIR}"
    adapt_entry = card.setdefault("adapt", {})
    adapt_entry["used"] = {**(adapt_entry.get("used") or {}), **{s.id: s.score for s in new}}
    adapt_entry["library"] = library_root
    adapt_entry["auto"] = (auto or None) if auto is not None else adapt_entry.get("auto")
    _write_card(folder, card)
    if stop == "nan_loss":
        raise TrainingError(
            f"the loss of {name} became NaN at step {result['step']}: adapting stopped; the "
            "model is kept as it was before it. Try a lower --lr or --beta"
        )
    return {**summary, **entry, "folder": str(folder), "run": str(run), "estimate": estimate}


class _ValLog:
    """Keeps the validation reports of a run: {step, loss, accuracy?, margin?}."""

    def __init__(self):
        self.reports: list[dict] = []

    def on_val_report(self, info: dict) -> None:
        groups = info.get("val_loss_by_group") or {}
        extra = {k: v for k, v in groups.items() if k in ("accuracy", "margin")}
        self.reports.append({"step": info["iteration"], "loss": info["val_loss"], **extra})


def _changelog_line(counts, method, before, after, improved) -> str:
    what = (
        f"DPO on {counts['pairs']} pairs"
        if method == "dpo"
        else f"fine-tuned on {counts['sequences']} liked pieces (no disliked ones to compare)"
    )
    src = [
        f"{counts['new_ratings']} new ratings ({counts['liked']} liked, "
        f"{counts['disliked']} disliked)"
    ]
    if counts["from_variations"]:
        src.append(f"{counts['from_variations']} from kept or discarded variations")
    line = f"adapted to your ratings: {what} from {', '.join(src)}"
    if before and after and method == "dpo" and "accuracy" in after:
        line += (
            f"; prefers your liked pieces in {after['accuracy']:.0%} of the pairs "
            f"(was {before['accuracy']:.0%})"
        )
    elif before and after:
        line += f"; loss on them {before['loss']:.3f} -> {after['loss']:.3f}"
    if not improved:
        line += "; no improvement: the weights are those of the round before"
    return line


def _measure(model: nn.Module, task, stream, steps: int, checkpoint: bool = False) -> dict:
    """Seconds a step takes here: two forward-backward passes on a batch of the run (with
    ``checkpoint``, recomputing activations as the run will)."""
    state = stream.state_dict()
    batch = next(stream)
    stream.load_state_dict(state)  # the run starts where it would have
    times = time_passes(model, task.loss, [task.arrays(batch)] * 2, checkpoint)
    step_s = float(min(times))
    return {"step_s": step_s, "time_s": step_s * steps * 1.1, "max_steps": steps}


def _command(name: str, o: AdaptOptions, *, from_model: str | None) -> str:
    parts = ["disco-musica", "adapt", name]
    if from_model:
        parts += ["--from", from_model]
    parts += ["--method", o.method, "--beta", f"{o.beta:g}", "--seed", str(o.seed)]
    if o.steps:
        parts += ["--max-steps", str(o.steps)]
    if o.grad_checkpoint:
        parts.append("--grad-checkpoint")
    return shlex.join(parts)


# ---- adapting by itself --------------------------------------------------------------------------
def maybe_adapt(name: str, *, library=None, **kwargs) -> dict | None:
    """Adapt ``name`` if its card asks for it (``adapt NAME --auto N``) and N new ratings of
    its pieces have arrived since its last round; else None. A round that cannot be made
    (no pair to learn from yet, another process adapting it) returns ``{"status":
    "not adapted", "reason": ...}`` instead of raising: the rating that called it stands."""
    try:
        card = read_card(name)
    except TrainingError:
        return None
    every = (card.get("adapt") or {}).get("auto")
    if not every:
        return None
    include_base = kwargs.get("include_base", True)
    try:
        if pending(name, library=library, include_base=include_base)["new"] < every:
            return None
        return adapt_model(name, library=library, **{**kwargs, "min_ratings": every})
    except UserError as e:  # (the base model gone, no pair yet, another adapt running ...)
        return {"name": name, "status": "not adapted", "reason": one_line(e)}


def maybe_adapt_all(library=None, **kwargs) -> list[dict]:
    """`maybe_adapt` for every model of the user's with ``--auto`` set (call it after a
    rating: ``library rate``); the rounds made (or refused)."""
    out = []
    for name in auto_models():
        got = maybe_adapt(name, library=library, **kwargs)
        if got is not None:
            out.append(got)
    return out


def auto_models() -> list[str]:
    """The user's models that adapt by themselves (``--auto N`` set)."""
    found = []
    for name in hub.trained_models():
        with contextlib.suppress(TrainingError, KeyError, TypeError):
            if (read_card(name).get("adapt") or {}).get("auto"):
                found.append(name)
    return found
