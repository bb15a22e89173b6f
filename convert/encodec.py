"""Transformers EnCodec state dict -> MLX weights for ``engine.models.encodec``.

Accepts both ways torch stores weight norm (``conv.weight_g``/``conv.weight_v`` and
``conv.parametrizations.weight.original0``/``original1``), folds it into a plain weight, moves
conv kernels to MLX layout, sums the two LSTM biases and drops the EMA codebook buffers. The
translation itself lives in ``EncodecModel.convert_hf_weights`` (shared with ``sanitize``);
this module adds the prefix handling and the checks that name every bad tensor at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mlx.utils import tree_flatten

from convert.errors import ConversionError
from engine.models.encodec import EncodecConfig, EncodecModel

MAX_NAMED = 20  # names listed in one error message before "and N more"


def convert_encodec_weights(
    state: dict[str, np.ndarray], config: dict[str, Any], prefix: str = ""
) -> dict[str, np.ndarray]:
    """Convert a transformers EnCodec state dict to MLX parameter names and layouts.

    ``state`` maps transformers keys to numpy arrays, all of them under ``prefix`` when one is
    given (e.g. ``"audio_encoder."`` inside a MusicGen checkpoint; other keys are ignored).
    ``config`` is the transformers ``EncodecConfig.to_dict()``. Returns float tensors named as
    ``EncodecModel`` expects, without the prefix. Raises ``ConversionError`` naming every
    missing, unexpected or mis-shaped tensor.
    """
    try:
        model = EncodecModel(EncodecConfig.from_dict(config))  # lazy: only shapes are read
    except ValueError as e:
        raise ConversionError(f"cannot convert this EnCodec: {e}") from None
    expected = {k: tuple(v.shape) for k, v in tree_flatten(model.parameters())}
    weights = {k[len(prefix) :]: np.asarray(v) for k, v in state.items() if k.startswith(prefix)}
    out, used = model.convert_hf_weights(weights)

    style = "weight_g" if any(k.endswith(".weight_g") for k in weights) else "parametrizations"
    sources = {name: model.hf_sources(name, style)[1] for name in expected}
    known = {k for keys in sources.values() for k in keys}
    missing = sorted(
        prefix + k
        for name in expected
        if name not in out
        for k in sources[name]
        if k not in weights
    )
    # a key whose partner is missing is reported through that partner, not as unexpected
    unexpected = sorted(prefix + k for k in weights if k not in used and k not in known)
    wrong = sorted(
        f"{prefix}{name} {tuple(w.shape)} (expected {expected[name]})"
        for name, w in out.items()
        if tuple(w.shape) != expected[name]
    )
    problems = [
        f"{what}: {_names(items)}"
        for what, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
        )
        if items
    ]
    if problems:
        raise ConversionError("EnCodec weights do not fit the config; " + "; ".join(problems))
    return {k: np.ascontiguousarray(v, dtype=v.dtype) for k, v in out.items()}


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    more = len(items) - MAX_NAMED
    return f"{shown} and {more} more" if more > 0 else shown
