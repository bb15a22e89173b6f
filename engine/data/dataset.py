"""Training windows from a built corpus (see ``engine.data.corpus``).

A training example is a window of consecutive bars of one piece, all of its voices, laid out
as a full model sequence (conditions first).  Windows are drawn on the fly with

- transposition augmentation: every piece is shifted by a random interval (default -5..+6
  semitones, within the piano range); the key condition moves with it;
- track-order permutation: voices appear in random order, so the model learns to write any
  voice given any others (adding an alto, tenor and bass under a given soprano, a bass under
  a melody...);
- a random start bar (a quarter of the windows start at bar 0, so openings are learnt).

Batches are padded to a few fixed lengths with a fixed token budget, so ``mx.compile`` sees
only a handful of shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.corpus import duplicate_of, style_of
from engine.errors import UserError
from engine.symbolic.tokenizer import MAX_VOICES, PITCH_RANGE, TONICS, ScoreTokenizer, Track

# Share of training windows drawn from each style (the corpus is dominated by folk tunes
# and Palestrina masses by count; chorales matter most for harmonisation).
STYLE_WEIGHTS = {
    "chorale": 0.22,
    "renaissance": 0.20,
    "madrigal": 0.10,
    "medieval": 0.06,
    "celtic": 0.16,
    "folk": 0.14,
    "classical": 0.12,
}
BUCKETS = (128, 256, 384, 512, 768, 1024)
TRANSPOSE_RANGE = (-5, 6)
HEADER_TOKENS = 8  # BOS + 6 conditions + EOS
TRACK_OVERHEAD = 4  # Track_Start, Program, Register, Track_End


class DatasetError(UserError, RuntimeError):
    """A user-facing problem with a dataset folder."""


@dataclass
class CorpusPiece:
    id: str
    style: str
    tonic: int
    mode: str
    tempo: str
    tracks: list[dict]  # program, name, bar_offset, num_bars
    num_tokens: int


class ScoreDataset:
    """A built corpus folder: pieces, their bar tokens and the train/validation split."""

    def __init__(self, directory: str | Path, tokenizer: ScoreTokenizer | None = None):
        directory = Path(directory)
        if not (directory / "pieces.jsonl").is_file():
            raise DatasetError(
                f"{directory} is not a built corpus (no pieces.jsonl); "
                "run `disco-musica corpus build` first"
            )
        self.directory = directory
        self.tokenizer = tokenizer or ScoreTokenizer.load(directory / "tokenizer")
        self.tokens = np.load(directory / "tokens.npy").astype(np.int32)
        self.bars = np.load(directory / "bars.npy")
        split = json.loads((directory / "split.json").read_text())
        self.val_ids = set(split["val"])
        self.pieces: list[CorpusPiece] = []
        with open(directory / "pieces.jsonl") as f:
            rows = [json.loads(line) for line in f]
        files = {r["id"].split("#")[0] for r in rows}
        summary_file = directory / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
        music21 = "source" not in summary  # else a user's dataset (engine.train.finetune)
        for p in rows:
            path = p["id"].split("#")[0]
            if music21 and (duplicate_of(path, files) or style_of(path) != p["style"]):
                continue  # same work in a preferred format, or a file no longer used
            n = sum(
                int(self.bars[t["bar_offset"] + t["num_bars"]] - self.bars[t["bar_offset"]])
                for t in p["tracks"]
            )
            self.pieces.append(
                CorpusPiece(p["id"], p["style"], p["tonic"], p["mode"], p["tempo"], p["tracks"], n)
            )
        self.train = [p for p in self.pieces if p.id not in self.val_ids]
        self.val = [p for p in self.pieces if p.id in self.val_ids]
        pitch_ids = self.tokenizer.ids_of_kind("Pitch")
        assert np.all(np.diff(pitch_ids) == 1), "Pitch tokens must be contiguous"
        self.pitch_lo, self.pitch_hi = int(pitch_ids[0]), int(pitch_ids[-1])

    def bar_tokens(self, track: dict, bar: int) -> np.ndarray:
        i = track["bar_offset"] + bar
        return self.tokens[self.bars[i] : self.bars[i + 1]]

    def window(
        self,
        piece: CorpusPiece,
        start_bar: int,
        *,
        max_tokens: int,
        order: list[int] | None = None,
        transpose: int = 0,
        max_bars: int | None = None,
    ) -> list[int] | None:
        """The model sequence for bars ``start_bar..`` of a piece that fits ``max_tokens``.

        Returns None when not even one bar of all voices fits.
        """
        tok = self.tokenizer
        nbars = min(t["num_bars"] for t in piece.tracks)
        budget = max_tokens - HEADER_TOKENS - TRACK_OVERHEAD * len(piece.tracks)
        end = start_bar
        used = 0
        while end < nbars and (max_bars is None or end - start_bar < max_bars):
            cost = sum(len(self.bar_tokens(t, end)) for t in piece.tracks)
            if used + cost > budget:
                break
            used += cost
            end += 1
        if end == start_bar:
            return None
        tracks = []
        for t in piece.tracks:
            bars = [self.bar_tokens(t, b) for b in range(start_bar, end)]
            if not any(((bar >= self.pitch_lo) & (bar <= self.pitch_hi)).any() for bar in bars):
                continue  # voice silent in this window
            tracks.append((t["program"], bars))
        if not tracks:
            return None
        tracks = tracks[:MAX_VOICES]
        if order is not None:
            tracks = [tracks[i] for i in order if i < len(tracks)]
        if transpose:
            shifted = []
            for prog, bars in tracks:
                new = []
                for bar in bars:
                    bar = bar.copy()
                    is_pitch = (bar >= self.pitch_lo) & (bar <= self.pitch_hi)
                    bar[is_pitch] += transpose
                    new.append(bar)
                shifted.append((prog, new))
            tracks = shifted
        first_ts = int(tracks[0][1][0][1])
        conditions = {
            "style": piece.style,
            "key": TONICS[(piece.tonic + transpose) % 12],
            "mode": piece.mode,
            "meter": tok.value(first_ts),
            "tempo": piece.tempo,
            "voices": str(len(tracks)),
        }
        return tok.build_sequence(
            conditions, [Track(program=p, bars=[b.tolist() for b in bars]) for p, bars in tracks]
        )

    def transpose_range(self, piece: CorpusPiece) -> tuple[int, int]:
        """Allowed transposition interval keeping every pitch in the piano range."""
        lo, hi = PITCH_RANGE[1], PITCH_RANGE[0]
        for t in piece.tracks:
            a, b = self.bars[t["bar_offset"]], self.bars[t["bar_offset"] + t["num_bars"]]
            p = self.tokenizer.pitch_of[self.tokens[a:b]]
            p = p[p >= 0]
            if p.size:
                lo, hi = min(lo, int(p.min())), max(hi, int(p.max()))
        return max(TRANSPOSE_RANGE[0], PITCH_RANGE[0] - lo), min(
            TRANSPOSE_RANGE[1], PITCH_RANGE[1] - 1 - hi
        )

    def val_windows(self, max_tokens: int, per_piece: int = 2) -> list[tuple[str, list[int]]]:
        """Deterministic validation windows: (style, sequence), original order, no shift."""
        out = []
        for p in self.val:
            start, n = 0, min(t["num_bars"] for t in p.tracks)
            for _ in range(per_piece):
                if start >= n:
                    break
                seq = self.window(p, start, max_tokens=max_tokens)
                if seq is None:
                    break
                out.append((p.style, seq))
                _, tracks = self.tokenizer.split(seq)
                start += len(tracks[0].bars)
        return out


def pad_batch(seqs: list[list[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.full((len(seqs), length), pad_id, dtype=np.int32)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    return x, np.array([len(s) for s in seqs], dtype=np.int32)


def bucket_of(n: int) -> int:
    for b in BUCKETS:
        if n <= b:
            return b
    return BUCKETS[-1]


class TrainStream:
    """Endless iterator of training batches ``(inputs [B, L], lengths [B])``.

    ``tokens_per_batch`` fixes B x L: short windows come in bigger batches.
    Its random state can be saved and restored (``state_dict``) to resume training.
    """

    def __init__(
        self,
        dataset: ScoreDataset,
        *,
        max_tokens: int = 1024,
        tokens_per_batch: int = 8192,
        seed: int = 0,
        style_weights: dict[str, float] | None = None,
    ):
        self.ds = dataset
        self.max_tokens = max_tokens
        self.tokens_per_batch = tokens_per_batch
        self.rng = np.random.default_rng(seed)
        weights = style_weights or STYLE_WEIGHTS
        by_style: dict[str, list[CorpusPiece]] = {}
        for p in dataset.train:
            by_style.setdefault(p.style, []).append(p)
        if not by_style:
            raise DatasetError("the dataset has no training pieces")
        self.styles = sorted(by_style)
        w = np.array([weights.get(s, 0.05) for s in self.styles], dtype=np.float64)
        self.style_p = w / w.sum()
        self.by_style = by_style
        self.piece_p = {}
        for s, ps in by_style.items():
            n = np.array([p.num_tokens for p in ps], dtype=np.float64) + 1
            self.piece_p[s] = n / n.sum()
        self.pending: dict[int, list[list[int]]] = {}

    def sample(self) -> list[int]:
        while True:
            style = self.styles[self.rng.choice(len(self.styles), p=self.style_p)]
            ps = self.by_style[style]
            piece = ps[self.rng.choice(len(ps), p=self.piece_p[style])]
            nbars = min(t["num_bars"] for t in piece.tracks)
            start = 0 if self.rng.random() < 0.25 else int(self.rng.integers(0, nbars))
            lo, hi = self.ds.transpose_range(piece)
            shift = int(self.rng.integers(lo, hi + 1)) if lo <= hi else 0
            order = list(self.rng.permutation(min(len(piece.tracks), MAX_VOICES)))
            seq = self.ds.window(
                piece, start, max_tokens=self.max_tokens, order=order, transpose=shift
            )
            if seq is not None:
                return seq

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        while True:
            seq = self.sample()
            b = bucket_of(len(seq))
            bucket = self.pending.setdefault(b, [])
            bucket.append(seq)
            if len(bucket) >= max(1, self.tokens_per_batch // b):
                self.pending[b] = []
                return pad_batch(bucket, b, self.ds.tokenizer.pad_id)

    def state_dict(self) -> dict:
        # The windows drawn but not yet batched are part of the position: without them a
        # resumed run would batch other windows than an uninterrupted one.
        pending = {str(b): [[int(t) for t in s] for s in seqs] for b, seqs in self.pending.items()}
        return {"rng": self.rng.bit_generator.state, "pending": pending}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.pending = {int(b): seqs for b, seqs in state.get("pending", {}).items()}


def val_batches(
    windows: list[tuple[str, list[int]]], pad_id: int, tokens_per_batch: int = 8192
) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
    """Validation batches ``(inputs, lengths, styles)`` in bucketed, deterministic order."""
    by_bucket: dict[int, list[tuple[str, list[int]]]] = {}
    for style, seq in windows:
        by_bucket.setdefault(bucket_of(len(seq)), []).append((style, seq))
    for b in sorted(by_bucket):
        items = by_bucket[b]
        bs = max(1, tokens_per_batch // b)
        for i in range(0, len(items), bs):
            chunk = items[i : i + bs]
            x, n = pad_batch([s for _, s in chunk], b, pad_id)
            yield x, n, [st for st, _ in chunk]
