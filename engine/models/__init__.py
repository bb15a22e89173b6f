"""MLX model architectures, one file per architecture, and their load/save helpers.

A model directory holds ``config.json`` (Hugging Face field names, with ``model_type``
naming the file ``engine/models/{model_type}.py``) and ``model.safetensors``.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from pathlib import Path
from types import ModuleType

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_map

from engine import names
from engine.atomic import write_text_atomic  # noqa: F401  (re-exported)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = names.WEIGHTS_FILE


def get_model_module(model_type: str) -> ModuleType:
    """The architecture module ``engine.models.{model_type}``."""
    name = f"engine.models.{model_type}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        raise ValueError(f"Unknown model type {model_type!r}: there is no {name}") from e


def build_model(config: dict) -> nn.Module:
    """A freshly initialised model from a config dict."""
    arch = get_model_module(config.get("model_type", "score"))
    return arch.Model(arch.ModelArgs.from_dict(config))


def load_model(path: str | Path, dtype: mx.Dtype | None = mx.float32) -> tuple[nn.Module, dict]:
    """Load ``config.json`` + ``model.safetensors`` from the directory ``path``.

    Loading is strict: a missing, unexpected or mis-shaped tensor raises and names it.
    ``dtype`` casts floating-point weights after loading (None keeps the stored dtype).
    """
    path = Path(path)
    config = json.loads((path / CONFIG_FILE).read_text())
    model = build_model(config)
    weights = model.sanitize(mx.load(str(path / WEIGHTS_FILE)))
    model.load_weights(list(weights.items()), strict=True)
    if dtype is not None:
        model.update(tree_map(lambda w: _cast(w, dtype), model.parameters()))
    mx.eval(model.parameters())
    return model, config


def save_model(
    path: str | Path, model: nn.Module, config: dict, dtype: mx.Dtype | None = None
) -> None:
    """Write ``config.json`` and ``model.safetensors`` into the directory ``path``, atomically.

    ``dtype`` (e.g. ``mx.float16`` for shipping) casts floating-point weights on the way out.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(model.parameters()))
    if dtype is not None:
        weights = {k: _cast(v, dtype) for k, v in weights.items()}
    save_safetensors(path / WEIGHTS_FILE, weights, metadata={"format": "mlx"})
    write_text_atomic(path / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")


def save_safetensors(
    file: str | Path, arrays: dict[str, mx.array], metadata: dict[str, str] | None = None
) -> None:
    """``mx.save_safetensors`` into a temporary file in the same directory, then rename."""
    file = Path(file)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.stem}.", suffix=".safetensors")
    os.close(fd)
    try:
        mx.save_safetensors(tmp, arrays, metadata=metadata or {})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private; a model file is not
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cast(w: mx.array, dtype: mx.Dtype) -> mx.array:
    return w.astype(dtype) if mx.issubdtype(w.dtype, mx.floating) else w
