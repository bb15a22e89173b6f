"""LoRA adapters, for training and for inference, the mlx-lm way: `linear_to_lora_layers`,
``LoRALinear.from_base``, `fuse`.

An adapter folder holds mlx-lm's two files, so mlx-lm's own loader reads it too::

    adapter_config.json   fine_tune_type "lora", num_layers, lora_parameters {rank, scale,
                          dropout, keys}, and ours: alpha, base_model {name, sha256}
    adapters.safetensors  the lora_a / lora_b matrices only

``scale`` is ``alpha / rank`` (the PEFT convention, so that a larger rank does not change
the size of the update at the start); mlx-lm itself takes ``scale`` directly.

mlx-lm is imported inside the functions: importing it loads transformers (about 2 s), which
only training and adapter loading need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from engine.errors import UserError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapters.safetensors"

# The linear layers of one score-model block (engine/models/score.py), by role.
SCORE_TARGETS = {
    "attention": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
    "mlp": ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
}


class LoraError(UserError, ValueError):
    """An adapter that cannot be made, saved or applied as asked."""


@dataclass
class LoraConfig:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    keys: tuple[str, ...] = field(default_factory=lambda: SCORE_TARGETS["attention"])
    num_layers: int = -1  # the last N blocks; -1 = all

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def to_mlx_lm(self, num_blocks: int) -> dict:
        """The ``adapter_config.json`` fields mlx-lm reads."""
        n = num_blocks if self.num_layers < 0 else self.num_layers
        return {
            "fine_tune_type": "lora",
            "num_layers": n,
            "lora_parameters": {
                "rank": self.rank,
                "scale": self.scale,
                "dropout": self.dropout,
                "keys": list(self.keys),
            },
            "alpha": self.alpha,
        }

    @classmethod
    def from_adapter_config(cls, config: dict) -> LoraConfig:
        p = config["lora_parameters"]
        rank = int(p["rank"])
        alpha = float(config.get("alpha", p["scale"] * rank))
        return cls(
            rank, alpha, float(p.get("dropout", 0.0)), tuple(p["keys"]), config["num_layers"]
        )


def targets(spec: str) -> tuple[str, ...]:
    """``"attention"``, ``"mlp"``, ``"all"`` or comma-separated module names
    (``self_attn.q_proj,self_attn.v_proj``) -> the module names of one block."""
    keys: list[str] = []
    known = [k for group in SCORE_TARGETS.values() for k in group]
    for part in (p.strip() for p in spec.split(",")):
        if part == "all":
            keys += known
        elif part in SCORE_TARGETS:
            keys += SCORE_TARGETS[part]
        elif part in known:
            keys.append(part)
        else:
            raise LoraError(
                f"unknown LoRA target {part!r}; use attention, mlp, all or module names "
                f"({', '.join(known)})"
            )
    return tuple(dict.fromkeys(keys))


def check(model: nn.Module, cfg: LoraConfig) -> None:
    """Refuse (one line) a rank, scale or layer count the model cannot take."""
    blocks = len(model.layers)
    if cfg.rank < 1:
        raise LoraError(f"the LoRA rank must be at least 1, not {cfg.rank}")
    if not cfg.alpha > 0:
        raise LoraError(f"the LoRA alpha must be more than 0, not {cfg.alpha:g}")
    if not 0 <= cfg.dropout < 1:
        raise LoraError(f"the LoRA dropout must be in 0..0.99, not {cfg.dropout:g}")
    if cfg.num_layers == 0 or cfg.num_layers < -1 or cfg.num_layers > blocks:
        raise LoraError(f"--lora-layers must be 1..{blocks} (this model's blocks) or all")
    modules = dict(model.layers[-1].named_modules())
    for key in cfg.keys:
        m = modules.get(key)
        if not isinstance(m, nn.Linear):
            raise LoraError(f"this model has no linear layer {key!r} to adapt")
        out_dims, in_dims = m.weight.shape
        if cfg.rank > min(in_dims, out_dims):
            raise LoraError(
                f"LoRA rank {cfg.rank} is larger than the layer {key} ({in_dims}x{out_dims}); "
                f"use a rank of at most {min(in_dims, out_dims)}"
            )


def apply(model: nn.Module, cfg: LoraConfig) -> nn.Module:
    """Freeze ``model`` and put LoRA layers on ``cfg.keys`` of its last ``num_layers`` blocks
    (in place). Only the adapters train afterwards."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    check(model, cfg)
    model.freeze()
    blocks = len(model.layers)
    linear_to_lora_layers(model, blocks if cfg.num_layers < 0 else cfg.num_layers, _mlx_lm(cfg))
    return model


def _mlx_lm(cfg: LoraConfig) -> dict:
    return {"rank": cfg.rank, "scale": cfg.scale, "dropout": cfg.dropout, "keys": list(cfg.keys)}


def adapter_weights(model: nn.Module) -> dict[str, mx.array]:
    """The adapter matrices (``...lora_a``, ``...lora_b``) by their names in the model."""
    return {
        k: v
        for k, v in tree_flatten(model.parameters())
        if k.rsplit(".", 1)[-1] in ("lora_a", "lora_b")
    }


def save(folder: Path, model: nn.Module, cfg: LoraConfig, base: dict) -> None:
    """Write ``adapter_config.json`` and ``adapters.safetensors`` into ``folder``; ``base``
    ({name, sha256}) names the model the adapter belongs to."""
    from engine.models import save_safetensors, write_text_atomic

    folder.mkdir(parents=True, exist_ok=True)
    config = {**cfg.to_mlx_lm(len(model.layers)), "base_model": base}
    save_safetensors(folder / ADAPTER_WEIGHTS, adapter_weights(model))
    write_text_atomic(folder / ADAPTER_CONFIG, json.dumps(config, indent=2) + "\n")


def read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
        LoraConfig.from_adapter_config(config)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LoraError(f"{folder}: its {ADAPTER_CONFIG} is unreadable ({e})") from None
    if config.get("fine_tune_type", "lora") != "lora":
        raise LoraError(
            f"{folder}: only LoRA adapters are supported, not {config['fine_tune_type']}"
        )
    return config


def load(model: nn.Module, folder: Path) -> nn.Module:
    """Put the adapter in ``folder`` on ``model`` (in place; the model must be its base)."""
    config = read_config(folder)
    cfg = LoraConfig.from_adapter_config(config)
    try:
        check(model, cfg)
    except LoraError as e:
        raise LoraError(f"{folder} does not fit this model: {e}") from None
    apply(model, cfg)
    try:
        weights = mx.load(str(folder / ADAPTER_WEIGHTS))
    except (OSError, ValueError, RuntimeError) as e:
        raise LoraError(f"{folder}: its {ADAPTER_WEIGHTS} is unreadable ({e})") from None
    have = {k: v.shape for k, v in adapter_weights(model).items()}
    wrong = [k for k, v in weights.items() if have.get(k) != v.shape]
    if wrong or set(have) != set(weights):
        missing = sorted(set(have) - set(weights))
        raise LoraError(
            f"{folder}: the adapter does not fit this model "
            f"({len(wrong)} tensors of other shapes, {len(missing)} missing); "
            "it was made for another base model"
        )
    model.load_weights(list(weights.items()), strict=False)
    mx.eval(model.parameters())
    return model


def fuse(model: nn.Module) -> nn.Module:
    """Fold every LoRA layer into a plain linear layer (W + scale * B^T A^T), in place."""
    fused = [(k, m.fuse()) for k, m in model.named_modules() if hasattr(m, "fuse")]
    if fused:
        model.update_modules(tree_unflatten(fused))
    model.unfreeze()
    return model


def trainable_count(model: nn.Module) -> int:
    return sum(v.size for _, v in tree_flatten(model.trainable_parameters()))


def total_count(model: nn.Module) -> int:
    return sum(v.size for _, v in tree_flatten(model.parameters()))
