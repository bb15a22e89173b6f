"""Fine-tune the score model on a user's dataset: LoRA or full, in rounds, into a named model.

``disco-musica train score --data DATASET --method lora --base score-base --name my-model``
runs :func:`finetune_score`. A trained model is a folder in `engine.hub.trained_models_dir`::

    my-model/
      model.json            the card: method, base, every round (dataset version, settings,
                            result, style distances) and ``current``, the folder it loads
      README.md             the card for people
      runs/round-1/         one run of the trainer (engine.train.trainer):
        corpus/             the dataset's MIDI items, tokenized (its ID in summary.json)
        checkpoint/ best/ checkpoints/step-NNNNNN/
                            each a loadable model: config.json, tokenizer/ and either
                            model.safetensors (full) or adapter_config.json +
                            adapters.safetensors (LoRA, mlx-lm's files)
        metrics.jsonl  tensorboard/  samples/step-N/*.mid  report.md

``generate --model my-model`` loads ``current`` (the best weights of the last round);
``my-model@step-400``, ``@latest``, ``@round-1`` pick others (`engine.hub.resolve_trained`).
``--from my-model`` starts a new round from the model's weights on new data.
"""

from __future__ import annotations

import errno
import json
import math
import re
import shlex
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from engine import __version__, hub, names
from engine.atomic import sha256_file
from engine.data.dataset import ScoreDataset, TrainStream, val_batches
from engine.models import lora, save_model, write_text_atomic
from engine.progress import Progress, ProgressFn
from engine.seeds import derive_seed
from engine.symbolic.tokenizer import METERS, TONICS
from engine.train.score import TrainingError
from engine.train.trainer import (
    BEST_DIR,
    CHECKPOINT_DIR,
    OPTIMIZERS,
    SCHEDULES,
    TokenTask,
    TrainConfig,
    TrainControl,
    time_passes,
    train,
)

CARD = hub.TRAINED_CARD
CARD_FORMAT = hub.TRAINED_CARD_FORMAT
MIN_PIECES = 2  # one to learn from, one to validate on
MIN_TOKENS = 1000  # about 30 bars of one voice
DEFAULT_STYLE = "classical"
METHODS = names.TRAIN_METHODS

# What each preset trains; the CLI's options override any of it. Learning rates differ by
# method: LoRA's adapters start at zero and need a larger step than full weights do.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "max_steps": 150,
        "eval_every": 50,
        "early_stop_patience": 3,
        "rank": 8,
        "lr": {"lora": 1e-3, "full": 1e-4},
        "tokens_per_batch": 4096,
        "samples": 8,
        "sample_bars": 4,
    },
    "balanced": {
        "max_steps": 500,
        "eval_every": 100,
        "early_stop_patience": 4,
        "rank": 16,
        "lr": {"lora": 5e-4, "full": 5e-5},
        "tokens_per_batch": 4096,
        "samples": 8,
        "sample_bars": 8,
    },
    "thorough": {
        "max_steps": 2000,
        "eval_every": 200,
        "early_stop_patience": 5,
        "rank": 32,
        "lr": {"lora": 3e-4, "full": 3e-5},
        "tokens_per_batch": 8192,
        "samples": 8,
        "sample_bars": 8,
    },
}


@dataclass
class FinetuneOptions:
    """Everything one round is trained with (the card records it)."""

    method: str = "lora"
    preset: str = "quick"
    max_steps: int | None = None
    epochs: float | None = None
    learning_rate: float | None = None
    min_learning_rate: float | None = None
    schedule: str = "cosine"
    warmup_steps: int | None = None
    optimizer: str = "adamw"
    weight_decay: float | None = None
    grad_clip: float = 1.0
    grad_accumulation: int = 1
    label_smoothing: float = 0.0
    tokens_per_batch: int | None = None
    eval_every: int | None = None
    early_stop_patience: int | None = None
    min_delta: float = 0.0
    checkpoint_every: int | None = None
    checkpoint_minutes: float | None = None
    keep_last: int = 3
    max_minutes: float | None = None
    rank: int | None = None
    alpha: float | None = None
    lora_dropout: float = 0.0
    dropout: float = 0.0  # residual dropout inside the model's blocks while training
    grad_checkpoint: bool = False  # less memory, about a third slower (see docs/training.md)
    targets: str = "all"
    lora_layers: int = -1
    samples: int | None = None
    sample_bars: int | None = None
    style: str | None = None
    transpose: bool = True
    seed: int = 0

    def check(self) -> None:
        if self.method not in METHODS:
            raise TrainingError(f"unknown method {self.method!r}; use lora or full")
        if self.preset not in PRESETS:
            raise TrainingError(f"unknown preset {self.preset!r}; use {', '.join(PRESETS)}")
        if self.optimizer not in OPTIMIZERS:
            raise TrainingError(
                f"unknown optimizer {self.optimizer!r}; use {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise TrainingError(f"unknown schedule {self.schedule!r}; use {', '.join(SCHEDULES)}")
        if self.style is not None and self.style not in names.STYLES:
            raise TrainingError(f"unknown style {self.style!r}; use one of {names.STYLE_NAMES}")
        if self.learning_rate is not None and not 0 < self.learning_rate <= 1:
            raise TrainingError(f"--lr must be in (0, 1], not {self.learning_rate:g}")
        if not 0 <= self.label_smoothing < 1:
            raise TrainingError(f"--label-smoothing must be in 0..0.99, not {self.label_smoothing}")
        for flag, p in (("--dropout", self.dropout), ("--lora-dropout", self.lora_dropout)):
            if not 0 <= p < 1:
                raise TrainingError(f"{flag} must be in 0..0.99, not {p}")


def _number_of(text: str) -> int | None:
    m = re.fullmatch(r"round-(\d+)", text)
    return int(m.group(1)) if m else None


# ---- the card -----------------------------------------------------------------------------------
def model_folder(name: str) -> Path:
    return hub.trained_models_dir() / name


def check_name(name: str) -> str:
    """A new model's name: letters, digits, ``.``, ``_``, ``-``; not a shipped model's."""
    if not isinstance(name, str) or not re.fullmatch(hub.TRAINED_NAME_RE, name):
        raise TrainingError(
            f"the model name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if (hub.MODELS_DIR / name).exists() or hub.is_musicgen_name(name):
        raise TrainingError(f"{name!r} is the name of a model Disco-Musica ships; choose another")
    return name


def read_card(name: str, kind: str | None = "score") -> dict:
    path = model_folder(name) / CARD
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        known = ", ".join(hub.trained_models()) or "none yet"
        raise TrainingError(f"no trained model named {name!r} (yours: {known})") from None
    except (OSError, ValueError) as e:
        raise TrainingError(f"{path} is unreadable ({e}); it cannot be continued") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise TrainingError(f"{path} is not a model card this version of Disco-Musica reads")
    if kind is not None and card.get("kind", "score") != kind:
        raise TrainingError(
            f"{name} is a {card.get('kind')} model; continue it with `disco-musica train "
            f"{card.get('kind')} --from {name}`"
        )
    return card


def write_card(folder: Path, card: dict) -> None:
    write_text_atomic(folder / CARD, json.dumps(card, indent=1) + "\n")
    write_text_atomic(folder / "README.md", card_markdown(card))


def card_markdown(card: dict, about: str | None = None) -> str:
    """The card for people (README.md): ``about`` (default: the score model's line), how to
    use it, and a table of every round."""
    kind = "LoRA" if card["method"] == "lora" else "fully"
    about = about or (
        f"A {kind} fine-tuned score model, based on {card['base']['name']}. Made with Disco-Musica."
    )
    lines = [
        f"# {card['name']}",
        "",
        about,
        "",
        f'Use it with `disco-musica generate --model {card["name"]} "..."`; '
        f"pick a checkpoint with `{card['name']}@step-N`, `@latest` or `@round-N`.",
        "",
        "| round | dataset | from | steps | best step | validation loss | stop | style distance "
        "(base → tuned) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in card["rounds"]:
        style = r.get("style") or {}
        dist = (
            f"{style['base']['overall']:.3f} → {style['tuned']['overall']:.3f}"
            if style.get("base") and style.get("tuned")
            else "–"
        )
        val = f"{r['best_val']:.4f}" if isinstance(r.get("best_val"), float) else "–"
        lines.append(
            f"| {r['round']} | {r['dataset_name']} `{r['dataset']}` | {r.get('from') or '–'} | "
            f"{r.get('steps', '–')} | {r.get('best_step', '–')} | {val} | "
            f"{r.get('stop_reason', r.get('status'))} | {dist} |"
        )
    lines += ["", "Each round's command:", ""]
    lines += [f"{r['round']}. `{r['command']}`" for r in card["rounds"]]
    log = changelog(card)
    if log:
        lines += ["", "## Changelog", "", *(f"- {x}" for x in log)]
    return "\n".join(lines) + "\n"


def changelog(card: dict) -> list[str]:
    """One line for each round of a model (newest last): what it learnt from."""
    lines = []
    for r in card.get("rounds", []):
        if r.get("changelog"):
            lines.append(f"round {r['round']}: {r['changelog']}")
        elif r.get("kind", "train") == "train" and r.get("dataset_name"):
            val = r.get("best_val")
            lines.append(
                f"round {r['round']}: {r.get('method', '?')} fine-tuning on "
                f"{r['dataset_name']} ({r.get('pieces', '?')} pieces)"
                + (f", validation loss {val:.4f}" if isinstance(val, float) else "")
                + (f" (from {r['inherited_from']})" if r.get("inherited_from") else "")
            )
    return lines


# ---- the data -----------------------------------------------------------------------------------
@dataclass
class UserCorpus:
    folder: Path
    pieces: int
    val_pieces: int
    tokens: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    split_note: str = ""


def build_corpus(
    ds,
    version: str | None,
    out: Path,
    tokenizer,
    *,
    style: str | None,
    seed: int,
    progress: ProgressFn | None = None,
) -> UserCorpus:
    """Tokenize the MIDI items of a dataset version into a corpus folder ``out``.

    Items split "val" are held out for validation, "test" ones are left out; with no "val"
    items, about a tenth of the groups (at least one piece) are held out, chosen by ``seed``.
    """
    from engine.data.corpus import write_pieces
    from engine.symbolic.midi import read_midi
    from engine.symbolic.theory import key_from_profile, pitch_class_profile
    from engine.symbolic.tokenizer import tempo_band

    items = [it for it in ds.items(version) if it.kind == "midi" and it.split != "test"]
    pieces, failed = [], []
    for n, it in enumerate(items, 1):
        if progress:
            progress(Progress("read", n, len(items), it.path))
        try:
            score = read_midi(ds.file(it).read_bytes())
            meters = {f"{t.numerator}/{t.denominator}" for t in score.time_signatures}
            odd = sorted(m for m in meters if m not in METERS)
            if odd:
                raise TrainingError(
                    f"its meter {', '.join(odd)} is not one the score model writes "
                    f"({', '.join(METERS)})"
                )
            piece = tokenizer.encode_score(score, name=it.path)
        except Exception as e:  # noqa: BLE001  (any unreadable MIDI item is listed and skipped)
            failed.append({"id": it.id, "error": f"{type(e).__name__}: {e}"[:300]})
            continue
        notes = [(n.pitch, n.duration) for t in score.tracks if not t.is_drum for n in t.notes]
        tonic, mode = _key_of(it.meta.get("key"))
        if tonic is None:
            p = np.array(notes, dtype=np.float64)
            tonic, mode = key_from_profile(pitch_class_profile(p[:, 0], p[:, 1]))
        bpm = float(it.meta.get("tempo") or (score.tempos[0].qpm if len(score.tempos) else 120))
        genre = (it.meta.get("genre") or "").lower()
        meter_tok = piece.tracks[0].bars[0][1]
        pieces.append(
            {
                "id": it.id,
                "style": genre if genre in names.STYLES else (style or DEFAULT_STYLE),
                "title": it.meta.get("title") or it.path,
                "composer": ", ".join(it.meta.get("artists") or []),
                "tonic": int(tonic),
                "mode": mode if mode in names.MODES else "minor",
                "meter": tokenizer.value(meter_tok),
                "tempo_bpm": bpm,
                "tempo": tempo_band(bpm),
                "group": it.group or it.id,
                "tracks": [
                    {
                        "program": t.program,
                        "name": t.name,
                        "bars": [[int(i) for i in bar] for bar in t.bars],
                    }
                    for t in piece.tracks
                ],
            }
        )
    tokens = sum(len(b) for p in pieces for t in p["tracks"] for b in t["bars"])
    if len(pieces) < MIN_PIECES or tokens < MIN_TOKENS:
        raise TrainingError(
            f"{ds.name} has {len(pieces)} usable MIDI piece(s), {tokens} tokens"
            + (f" ({len(failed)} unreadable)" if failed else "")
            + f"; fine-tuning needs at least {MIN_PIECES} pieces and {MIN_TOKENS} tokens (about "
            "30 bars of one voice; a few hundred bars learn a style): add MIDI files with "
            "`disco-musica data import`"
        )
    by_item = {it.id: it for it in items}
    val = [p["id"] for p in pieces if by_item[p["id"]].split == "val"]
    note = ""
    if not val:
        groups = sorted({p["group"] for p in pieces})
        rng = np.random.default_rng(seed)
        k = max(1, round(len(groups) * 0.1))
        held = set(rng.permutation(groups)[:k].tolist()) if len(groups) > 1 else set()
        val = [p["id"] for p in pieces if p["group"] in held]
        if not val or len(val) == len(pieces):
            val = [pieces[-1]["id"]]
        note = (
            f"the dataset has no validation split: {len(val)} piece(s) held out for it "
            "(choose them with `disco-musica data split`)"
        )
    elif len(val) == len(pieces):
        raise TrainingError(
            f"every MIDI piece of {ds.name} is in its validation split; leave some for "
            "training (`disco-musica data split`)"
        )
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tokenizer.save(out / "tokenizer")
    write_pieces(out, pieces, failed, val, {"dataset": ds.ident(version), "name": ds.name})
    return UserCorpus(
        out, len(pieces), len(val), tokens, [(f["id"], f["error"]) for f in failed], note
    )


def _key_of(text: Any) -> tuple[int | None, str]:
    from engine.symbolic.tokenizer import tonic_index

    if not isinstance(text, str) or not text.strip():
        return None, "major"
    parts = text.replace("♭", "b").replace("♯", "#").split()
    try:
        tonic = tonic_index(parts[0])
    except (ValueError, KeyError):
        return None, "major"
    mode = parts[1].lower() if len(parts) > 1 else "major"
    return tonic, mode if mode in names.MODES else "minor"


# ---- what a checkpoint holds --------------------------------------------------------------------
class ModelExport:
    """Full weights (`FullWeights`) or the LoRA adapter, plus config.json and tokenizer/, so
    every checkpoint folder loads as a model on its own."""

    def __init__(self, model_config: dict, tokenizer, adapter: lora.LoraConfig | None, base: dict):
        self.model_config, self.tokenizer = model_config, tokenizer
        self.adapter, self.base = adapter, base

    def export(self, folder: Path, model: nn.Module) -> None:
        if self.adapter is None:
            save_model(folder, model, self.model_config)
        else:
            lora.save(folder, model, self.adapter, self.base)
            write_text_atomic(folder / "config.json", json.dumps(self.model_config, indent=1))
        self.tokenizer.save(folder / "tokenizer")

    def restore(self, folder: Path, model: nn.Module) -> None:
        if self.adapter is None:
            weights = model.sanitize(mx.load(str(folder / "model.safetensors")))
            model.load_weights(list(weights.items()), strict=True)
        else:
            weights = mx.load(str(folder / lora.ADAPTER_WEIGHTS))
            model.load_weights(list(weights.items()), strict=False)


# ---- the style proof ----------------------------------------------------------------------------
class StyleSampler:
    """At each validation: generate a few pieces (fixed seeds, the dataset's conditions),
    save them, and measure their distance to the dataset's style (`engine.train.style`)."""

    def __init__(self, corpus: ScoreDataset, config: dict, tokenizer, out: Path, n: int, bars: int):
        from engine.train import style

        self.style, self.out, self.n, self.bars = style, out, n, bars
        self.config, self.tokenizer = config, tokenizer
        rows = {}
        with open(corpus.directory / "pieces.jsonl") as f:
            for line in f:
                row = json.loads(line)
                rows[row["id"]] = row
        self.conditions = [
            {
                "style": p.style,
                "key": TONICS[p.tonic],
                "mode": p.mode,
                "meter": rows[p.id]["meter"],
                "tempo_bpm": rows[p.id]["tempo_bpm"],
                "voices": min(len(p.tracks), 4),
            }
            for p in corpus.train or corpus.pieces
        ]
        self.reference = None
        self.reports: list[dict] = []

    def set_reference(self, corpus: ScoreDataset) -> None:
        """The dataset's training pieces as the model reads them (tokenized and decoded: the
        model cannot write finer timing than its tokens hold, so neither is it asked to)."""
        scores = []
        for p in corpus.train or corpus.pieces:
            seq = corpus.window(p, 0, max_tokens=1 << 30)
            if seq is not None:
                scores.append(self.tokenizer.decode(seq))
        self.reference = self.style.profile_scores(scores)

    def __call__(self, step: int, model: nn.Module) -> dict | None:
        if self.n <= 0 or self.reference is None:
            return None
        from engine.symbolic.score_api import ScoreModel

        folder = self.out / f"step-{step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        generator = ScoreModel(model, self.config, self.tokenizer, None)
        scores, paths = [], []
        for i in range(self.n):
            c = self.conditions[i % len(self.conditions)]
            g = generator.generate(**c, bars=self.bars, seed=i)
            path = folder / f"sample-{i}.mid"
            g.save_midi(path)
            scores.append(g.score)
            paths.append(str(path))
        d = self.style.distance(self.style.profile_scores(scores), self.reference)
        overall = d.pop("overall")
        report = {"distances": d, "overall": overall, "samples": paths, "step": step}
        self.reports.append(report)
        return report


# ---- the run ------------------------------------------------------------------------------------
def finetune_score(
    data: str,
    *,
    name: str,
    base: str = names.DEFAULT_MODEL,
    options: FinetuneOptions | None = None,
    from_model: str | None = None,
    version: str | None = None,
    resume: bool = False,
    callback: Any = None,
    progress: ProgressFn | None = None,
    control: TrainControl | None = None,
    command: str | None = None,
    plan: Any = None,
    wandb_project: str | None = None,
    warn: Any = None,
) -> dict:
    """Train a round of ``name`` on the MIDI items of dataset ``data``; return the round.

    ``method`` "lora" trains adapters on the base's linear layers (the base stays as it is);
    "full" trains every weight. ``from_model`` (a trained model's name) starts from its
    current weights (a new round of it when ``name`` is the same). ``resume`` continues the
    last, unfinished round of ``name`` exactly. ``plan(info)`` is called once before the
    first step with the memory and time the run needs (the CLI prints it).
    """
    from engine.data.store import Dataset
    from engine.symbolic import score_api as api
    from engine.symbolic.tokenizer import ScoreTokenizer

    o = options or FinetuneOptions()
    o.check()
    folder = model_folder(name)
    card = None
    if resume:
        card = read_card(name)
        last = unfinished_round(card, name)
        o = FinetuneOptions(**last["options"])
        data, version, from_model = last["dataset_name"], last["dataset_version"], last.get("from")
        base = card["base"]["name"]
    elif from_model is not None:
        parent = read_card(hub.split_tag(from_model)[0])
        base = parent["base"]["name"]
        if name == parent["name"]:
            card = parent
        else:
            check_name(name)
    else:
        check_name(name)
    if not resume and card is None and (folder / CARD).exists():
        raise TrainingError(
            f"you already have a model named {name!r}; continue it with --from {name}, "
            "or choose another --name"
        )
    ds = Dataset.open(data)
    ident = ds.ident(version)
    version = ident.split("@", 1)[1]

    # A model's later rounds keep the base weights its first round was trained on.
    base_path = api.folder_with_weights(base, card["base"].get("sha256") if card else None)
    base_info = {
        "name": base,
        "path": str(base_path),
        "sha256": sha256_file(base_path / "model.safetensors"),
    }
    tokenizer = ScoreTokenizer.load(base_path / "tokenizer")
    model_config = json.loads((base_path / "config.json").read_text())
    preset = PRESETS[o.preset]

    round_no = 1 if card is None else card["rounds"][-1]["round"] + (0 if resume else 1)
    run = folder / "runs" / f"round-{round_no}"
    if not resume and run.exists():
        raise TrainingError(f"{run} exists already; remove it or resume with --resume")
    model_created, run_created = not folder.exists(), not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    try:
        corpus_info = build_corpus(
            ds, version, run / "corpus", tokenizer, style=o.style, seed=o.seed, progress=progress
        )
        corpus = ScoreDataset(run / "corpus")
        ctx = model_config["max_position_embeddings"]
        tokens_per_batch = o.tokens_per_batch or preset["tokens_per_batch"]
        tokens_per_batch = max(tokens_per_batch, ctx)

        # The model: the base, the parent's weights on it, then LoRA layers or all trainable.
        model, _ = _load_plain(base_path)
        parent_path = None
        if from_model is not None:
            parent_path = api.resolve_model_path(from_model)
            if (parent_path / lora.ADAPTER_CONFIG).is_file():
                lora.load(model, parent_path)
                if o.method == "full":
                    lora.fuse(model)
            else:
                model, _ = _load_plain(parent_path)
        adapter = None
        if o.method == "lora":
            if parent_path is not None and (parent_path / lora.ADAPTER_CONFIG).is_file():
                adapter = lora.LoraConfig.from_adapter_config(lora.read_config(parent_path))
                model.freeze()
                _unfreeze_adapters(model)
            else:
                rank = o.rank or preset["rank"]
                adapter = lora.LoraConfig(
                    rank=rank,
                    alpha=o.alpha if o.alpha is not None else 2.0 * rank,
                    dropout=o.lora_dropout,
                    keys=lora.targets(o.targets),
                    num_layers=o.lora_layers,
                )
                mx.random.seed(derive_seed(o.seed, "step", 0))  # the adapters' initial A
                lora.apply(model, adapter)
        else:
            model.unfreeze()

        stream = TrainStream(
            corpus,
            max_tokens=ctx,
            tokens_per_batch=tokens_per_batch,
            seed=derive_seed(o.seed, "data", round_no - 1),
            style_weights=dict.fromkeys(names.STYLES, 1.0),
        )
        if not o.transpose:
            corpus.transpose_range = lambda piece: (0, 0)  # type: ignore[method-assign]
        steps_per_epoch = max(1, math.ceil(corpus_info.tokens * 1.0 / tokens_per_batch))
        max_steps = o.max_steps or (
            math.ceil(o.epochs * steps_per_epoch) if o.epochs else preset["max_steps"]
        )
        lr = o.learning_rate or preset["lr"][o.method]
        eval_every = o.eval_every or min(preset["eval_every"], max_steps)
        config = TrainConfig(
            batch_size=tokens_per_batch // ctx,
            learning_rate=lr,
            min_learning_rate=o.min_learning_rate if o.min_learning_rate is not None else lr / 10,
            warmup_steps=o.warmup_steps if o.warmup_steps is not None else min(20, max_steps // 10),
            max_steps=max_steps,
            schedule=o.schedule,
            optimizer=o.optimizer,
            weight_decay=o.weight_decay if o.weight_decay is not None else 0.01,
            grad_clip=o.grad_clip,
            grad_accumulation=o.grad_accumulation,
            label_smoothing=o.label_smoothing,
            eval_every=eval_every,
            early_stop_patience=o.early_stop_patience or preset["early_stop_patience"],
            min_delta=o.min_delta,
            max_minutes=o.max_minutes,
            checkpoint_every=o.checkpoint_every or eval_every,
            checkpoint_minutes=o.checkpoint_minutes,
            keep_last=o.keep_last,
            report_every=max(1, min(10, eval_every // 2)),
            seed=o.seed,
            grad_checkpoint=o.grad_checkpoint,
            dropout=o.dropout,
        )
        windows = corpus.val_windows(ctx, per_piece=4)
        if not windows:
            raise TrainingError(
                f"the validation pieces of {ds.name} have no bars the model can read"
            )

        def val():
            return val_batches(windows, tokenizer.pad_id, tokens_per_batch)

        sampler = StyleSampler(
            corpus,
            model_config,
            tokenizer,
            run / "samples",
            o.samples if o.samples is not None else preset["samples"],
            o.sample_bars or preset["sample_bars"],
        )
        sampler.set_reference(corpus)

        estimate = plan_run(model, config, stream, tokens_per_batch, corpus_info)
        if plan is not None:
            plan({**estimate, "corpus": asdict(corpus_info) | {"folder": str(corpus_info.folder)}})

        round_entry = {
            "round": round_no,
            "status": "running",
            "dataset": ident,
            "dataset_name": ds.name,
            "dataset_version": version,
            "from": from_model,
            "method": o.method,
            "options": asdict(o),
            "train_config": asdict(config),
            "lora": None if adapter is None else asdict(adapter),
            "pieces": corpus_info.pieces,
            "val_pieces": corpus_info.val_pieces,
            "tokens": corpus_info.tokens,
            "command": command or _command(data, name, base, o, from_model),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "disco_musica_version": __version__,
        }
        if card is None:
            card = {
                "format": CARD_FORMAT,
                "name": name,
                "kind": "score",
                "method": o.method,
                "base": {"name": base, "sha256": base_info["sha256"]},
                "current": None,
                "rounds": [],
            }
            if from_model is not None and name != hub.split_tag(from_model)[0]:
                card["rounds"] = [dict(r, inherited_from=parent["name"]) for r in parent["rounds"]]
        card["method"] = o.method
        if resume:
            card["rounds"][-1] = {**card["rounds"][-1], "resumed": round_entry["started"]}
        else:
            card["rounds"].append(round_entry)
        folder.mkdir(parents=True, exist_ok=True)
        write_card(folder, card)
    except BaseException:
        # Nothing trained yet: remove only what this call made (the round's folder, and the
        # model's folder when it was new and is empty again).
        if run_created:
            shutil.rmtree(run, ignore_errors=True)
        if model_created:
            for empty in (folder / "runs", folder):
                if empty.is_dir() and not any(empty.iterdir()):
                    empty.rmdir()
        raise

    export = ModelExport(model_config, tokenizer, adapter, base_info)
    from engine.train.monitor import make_monitor

    monitor = make_monitor(
        run,
        display=callback,
        wandb_project=wandb_project,
        run_name=f"{name}-round-{round_no}",
        config=round_entry,
        warn=warn,
    )
    try:
        summary = train(
            model,
            config,
            stream,
            val,
            run,
            callback=monitor,
            resume=resume and (run / CHECKPOINT_DIR).exists(),
            eval_first=True,
            task=TokenTask(config.label_smoothing),
            weights=export,
            sampler=sampler,
            control=control,
            start_info={"method": o.method, "name": name, "round": round_no},
        )
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise TrainingError(
                f"the disk is full: training of {name} stopped; its last checkpoint is kept "
                f"in {run / CHECKPOINT_DIR}: free some space and run the same command with "
                "--resume"
            ) from None
        raise
    finally:
        monitor.close()

    style_base = sampler.reports[0] if sampler.reports else None
    best = next((r for r in sampler.reports if r["step"] == summary["best_step"]), None)
    entry = card["rounds"][-1]
    finish_round(entry, summary, style_base, best)
    entry["trained_tokens"] = summary["tokens"]
    card["current"] = f"runs/round-{round_no}/{BEST_DIR}"
    write_card(folder, card)
    write_text_atomic(run / "report.md", run_report(card, entry, sampler.reports))
    if summary["stop_reason"] == "nan_loss":
        raise TrainingError(
            f"the loss of {name} became NaN at step {summary['step']}: training stopped; the "
            f"best weights (step {summary['best_step']}) are kept as {name}. Try a lower --lr "
            "or --grad-clip"
        )
    return {
        **entry,
        "name": name,
        "folder": str(folder),
        "run": str(run),
        "estimate": estimate,
        "split_note": corpus_info.split_note,
        "skipped": corpus_info.skipped,
    }


def unfinished_round(card: dict, name: str) -> dict:
    """The last round of a card, which ``--resume`` continues; a finished one is refused."""
    last = card["rounds"][-1]
    if last.get("status") != "running":
        raise TrainingError(
            f"the last round of {name} finished ({last.get('stop_reason')}); start a new "
            f"one with --from {name}"
        )
    return last


def finish_round(entry: dict, summary: dict, base: dict | None, tuned: dict | None) -> None:
    """Mark a card's round finished with the trainer's ``summary`` and the style reports of
    the base and the tuned model (None: no samples were measured)."""
    entry.update(
        status="finished",
        finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        steps=summary["step"],
        best_step=summary["best_step"],
        best_val=summary["best_val"],
        stop_reason=summary["stop_reason"],
        elapsed_s=summary["elapsed_s"],
        style={"base": base, "tuned": tuned} if base else None,
    )


def _load_plain(path: Path):
    from engine.models import load_model

    return load_model(path)


def _unfreeze_adapters(model: nn.Module) -> None:
    for _, m in model.named_modules():
        if hasattr(m, "lora_a"):
            m.unfreeze(keys=["lora_a", "lora_b"], recurse=False)


# FinetuneOptions fields -> the `train score` flag that sets each (the command a round
# records when it was not started from the command line, e.g. from the studio)
FLAGS = {
    "max_steps": "--max-steps",
    "epochs": "--epochs",
    "learning_rate": "--lr",
    "min_learning_rate": "--min-lr",
    "schedule": "--schedule",
    "warmup_steps": "--warmup",
    "optimizer": "--optimizer",
    "weight_decay": "--weight-decay",
    "grad_clip": "--grad-clip",
    "grad_accumulation": "--accumulate",
    "label_smoothing": "--label-smoothing",
    "tokens_per_batch": "--batch-tokens",
    "eval_every": "--eval-every",
    "early_stop_patience": "--patience",
    "min_delta": "--min-delta",
    "checkpoint_every": "--checkpoint-every",
    "checkpoint_minutes": "--checkpoint-minutes",
    "keep_last": "--keep",
    "max_minutes": "--max-minutes",
    "rank": "--rank",
    "alpha": "--alpha",
    "lora_dropout": "--lora-dropout",
    "dropout": "--dropout",
    "grad_checkpoint": "--grad-checkpoint",
    "targets": "--targets",
    "lora_layers": "--lora-layers",
    "samples": "--samples",
    "style": "--style",
    "transpose": "--no-transpose",
}


def _command(data: str, name: str, base: str, o: FinetuneOptions, from_model: str | None) -> str:
    """The `train score` command line that trains this round again: every option that is
    not the default's is spelled out."""
    parts = ["disco-musica", "train", "score", "--data", data, "--method", o.method]
    parts += ["--from", from_model] if from_model else ["--base", base]
    parts += ["--name", name, "--preset", o.preset, "--seed", str(o.seed)]
    default = FinetuneOptions()
    for key, flag in FLAGS.items():
        value = getattr(o, key)
        if value == getattr(default, key):
            continue
        if isinstance(value, bool):  # --grad-checkpoint on, --no-transpose off
            parts.append(flag)
        else:
            parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(parts)


def plan_run(model: nn.Module, config: TrainConfig, stream, tokens_per_batch: int, corpus) -> dict:
    """The memory and time a run needs, measured: three forward-backward passes on batches
    of the run's shapes (weights untouched) give the step time and the peak memory of the
    weights, activations and gradients; the optimizer's state is added by arithmetic."""
    from mlx.utils import tree_flatten

    from engine.train.trainer import loss_fn

    total = sum(v.size for _, v in tree_flatten(model.parameters()))
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    states = {"adamw": 2, "adam": 2, "lion": 1, "sgd": 1, "adafactor": 1}[config.optimizer]
    probe = TrainStream(
        stream.ds, max_tokens=stream.max_tokens, tokens_per_batch=tokens_per_batch, seed=12345
    )
    mx.synchronize()
    mx.reset_peak_memory()
    batches = [tuple(mx.array(a) for a in next(probe)) for _ in range(3)]
    times = time_passes(model, loss_fn, batches, config.grad_checkpoint)
    peak = mx.get_peak_memory()
    step_s = float(np.median(times[1:])) * config.grad_accumulation
    return {
        "total_parameters": total,
        "trainable_parameters": trainable,
        "memory_bytes": int(peak + 4 * trainable * states),
        "step_s": step_s,
        "max_steps": config.max_steps,
        "time_s": step_s * config.max_steps * 1.15,  # + validation and sampling
        "tokens_per_batch": tokens_per_batch,
        "steps_per_epoch": max(1, math.ceil(corpus.tokens / tokens_per_batch)),
    }


def run_report(card: dict, entry: dict, reports: list[dict]) -> str:
    from engine.train import style

    lines = [f"# {card['name']}, round {entry['round']}", ""]
    lines.append(
        f"Data: {entry['dataset_name']} `{entry['dataset']}`, {entry['pieces']} pieces "
        f"({entry['val_pieces']} held out), {entry['tokens']} tokens."
    )
    lines.append(
        f"Method: {entry['method']}; {entry['steps']} steps, best at step "
        f"{entry['best_step']} (validation loss {entry['best_val']:.4f}); stopped: "
        f"{entry['stop_reason']}."
    )
    lines += ["", f"Command: `{entry['command']}`", ""]
    st = entry.get("style")
    if st and st.get("base") and st.get("tuned"):
        lines += [
            "## Does it sound like the data?",
            "",
            "Distances to the dataset (0 = the same; samples on the same seeds and conditions):",
            "",
            style.compare_table(
                {**st["base"]["distances"], "overall": st["base"]["overall"]},
                {**st["tuned"]["distances"], "overall": st["tuned"]["overall"]},
            ),
            "",
        ]
    if reports:
        lines += ["## Style distance at each validation", "", "| step | overall |", "|---|---|"]
        lines += [f"| {r['step']} | {r['overall']:.3f} |" for r in reports]
    return "\n".join(lines) + "\n"


def fuse_model(name: str, out_name: str) -> Path:
    """Write ``out_name``: ``name``'s current LoRA adapter folded into full weights."""
    from engine.symbolic import score_api as api

    check_name(out_name)
    src = api.resolve_model_path(name)
    if not (src / lora.ADAPTER_CONFIG).is_file():
        raise TrainingError(f"{name} has no LoRA adapter to fuse (it is a full model already)")
    target = model_folder(out_name)
    if target.exists():
        raise TrainingError(f"you already have a model named {out_name!r}; choose another name")
    loaded = api.ScoreModel.load(name)  # base + adapter, fused
    card = read_card(hub.split_tag(name)[0])
    tmp = target.with_name(f".{out_name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    weights = tmp / "fused"
    save_model(weights, loaded.model, loaded.config)
    shutil.copytree(src / "tokenizer", weights / "tokenizer")
    fused = replace_card(card, out_name, "fused")
    write_card(tmp, fused)
    tmp.rename(target)
    return target


def replace_card(card: dict, name: str, current: str) -> dict:
    out = json.loads(json.dumps(card))
    out.update(name=name, current=current, method="full", fused_from=card["name"])
    return out
