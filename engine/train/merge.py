"""`disco-musica train merge`: a new score model whose weights lie between two others.

Two score models of the same shape and vocabulary, where one was trained on from the other
(``train score --init-from``), can be averaged weight by weight: ``(1 - weight) * first +
weight * second``. Such a linear merge (as in Wortsman et al., "Robust fine-tuning of
zero-shot models", 2022) keeps most of what the further training gained in held-out
likelihood while the music it samples stays nearer the first model's (the model card of
score-base measures score-base merged half-way with its 450-step continuation).

The merged folder is a plain model folder (config.json, model.safetensors, tokenizer/,
training.json): its training.json records the command and both sources, each by name, the
sha256 of its weights and its own training record, so the merge can be made again. The
weights are computed in float32 and stored in the first model's dtype.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from engine import names
from engine.atomic import chmod_like_new
from engine.errors import one_line
from engine.train.score import TrainingError


def merge_models(
    first: str | Path,
    second: str | Path,
    out: str | Path,
    *,
    weight: float = 0.5,
    key_strength_scale: float | None = None,
    command: str | None = None,
) -> Path:
    """Write the merged model into ``out`` (a new or empty folder) and return it.

    ``key_strength_scale`` goes into the merged config.json (see
    `engine.symbolic.score_api.key_strength_scale`); None leaves it out (1). Raises
    `TrainingError` (one line) for models that cannot be merged, and writes nothing then.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from engine.models import load_model, save_model
    from engine.symbolic import score_api as api
    from engine.symbolic.model_versions import weights_sha256

    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < 1:
        shown = names.num(weight) if isinstance(weight, int | float) else repr(weight)
        raise TrainingError(f"--weight must be more than 0 and less than 1, not {shown}")
    if key_strength_scale is not None and not (
        isinstance(key_strength_scale, int | float)
        and not isinstance(key_strength_scale, bool)
        and 0 < key_strength_scale <= api.MAX_KEY_SCALE
    ):
        shown = (
            names.num(key_strength_scale)
            if isinstance(key_strength_scale, int | float)
            else repr(key_strength_scale)
        )
        raise TrainingError(
            f"--key-strength-scale must be more than 0 and at most "
            f"{names.num(api.MAX_KEY_SCALE)}, not {shown}"
        )
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TrainingError(f"{out} is not a new or empty folder; choose another --out")
    folders = []
    for name in (first, second):
        folder = api.resolve_model_path(name)
        if (folder / "adapter_config.json").is_file():
            raise TrainingError(
                f"{name} is a LoRA adapter; fold it into full weights first "
                "(`disco-musica train fuse`), then merge"
            )
        folders.append(folder)
    tokenizers = [(f / "tokenizer" / "tokenizer.json").read_bytes() for f in folders]
    if tokenizers[0] != tokenizers[1]:
        raise TrainingError(
            f"{first} and {second} have different tokenizers; merge models trained one from "
            "the other"
        )
    loaded = []
    for name, folder in zip((first, second), folders, strict=True):
        try:
            loaded.append(load_model(folder, dtype=None))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise TrainingError(
                f"{name} is not a usable score model ({one_line(e)}); give a score model "
                "folder or a name from `disco-musica models`"
            ) from None
    (a, config), (b, _) = loaded
    pa, pb = dict(tree_flatten(a.parameters())), dict(tree_flatten(b.parameters()))
    if pa.keys() != pb.keys() or any(pa[k].shape != pb[k].shape for k in pa):
        raise TrainingError(
            f"{first} and {second} have different shapes; merge models trained one from the "
            "other (`train score --init-from`)"
        )
    merged = {
        k: ((1 - weight) * pa[k].astype(mx.float32) + weight * pb[k].astype(mx.float32)).astype(
            pa[k].dtype
        )
        for k in pa
    }
    a.load_weights(list(merged.items()), strict=True)
    config = {k: v for k, v in config.items() if k != api.KEY_SCALE_KEY}
    if key_strength_scale is not None:
        config[api.KEY_SCALE_KEY] = float(key_strength_scale)

    def source(name, folder: Path) -> dict:
        record = folder / "training.json"
        try:
            training = json.loads(record.read_text()) if record.is_file() else None
        except (OSError, ValueError):
            training = None
        return {"name": str(name), "sha256": weights_sha256(folder), "training": training}

    record = {
        "command": command
        or f"disco-musica train merge {first} {second} --weight {weight:g} --out {out}"
        + ("" if key_strength_scale is None else f" --key-strength-scale {key_strength_scale:g}"),
        "merge": {
            "method": "linear",
            "weight": weight,
            "first": source(first, folders[0]),
            "second": source(second, folders[1]),
        },
        "key_strength_scale": key_strength_scale,
    }
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    # A fresh hidden folder beside --out (only ever ours), renamed into place when complete.
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.absolute().parent)
    )
    try:
        save_model(tmp, a, config)
        shutil.copytree(folders[0] / "tokenizer", tmp / "tokenizer")
        (tmp / "training.json").write_text(json.dumps(record, indent=1) + "\n")
        chmod_like_new(tmp)  # mkdtemp's folder is private; a model folder is not
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
