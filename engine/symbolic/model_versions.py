"""Which shipped score model reproduces the model a generation record names.

A record (``generation.json``) stores its model as ``{"name": ..., "sha256": ...}``: the
name it was asked for (``score-base``, a model folder, or one of the user's trained models)
and the SHA-256 of that model's ``model.safetensors`` (for a LoRA model: of its adapter and
base together, `weights_sha256`).  A shipped name can move on to better weights; the weights it had
stay shipped under a versioned name (``score-base`` of 0.1.0 is ``score-base-v1``), so a
record made with the old ``score-base`` is still reproduced by ``score-base-v1``.

`reproducing_model` answers from the models installed now and, for weights that are not
installed, from `RELEASES`, the history of what each release shipped under each name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine import names

WEIGHTS_FILE = names.WEIGHTS_FILE


@dataclass(frozen=True)
class Release:
    """Weights that a Disco-Musica release shipped under ``name``."""

    name: str  # the name records made with them carry, e.g. "score-base"
    since: str  # the first Disco-Musica release that shipped them under that name
    sha256: str  # of model.safetensors
    kept_as: str | None = None  # the versioned name later releases ship them under
    until: str | None = None  # the last release that shipped them as ``name`` (None: current)


# Append a row whenever a shipped model's weights change (and ship the old folder under
# its versioned name, as score-base-v1 is).
RELEASES: tuple[Release, ...] = (
    Release(
        "score-base",
        "0.1.0",
        "9d5f3ca5c452fce7ddf9e919bee0686938e193850061270b261defdd81a1d4f4",
        kept_as="score-base-v1",
    ),
)


def installed_weights() -> dict[str, str]:
    """Shipped score model name -> SHA-256 of its weights (of the models installed now)."""
    from engine.symbolic import score_api as api

    return api.installed_weights()


def reproducing_model(model: object, made_by: str | None = None) -> tuple[str | None, str]:
    """``(name, why)``: the model that reproduces a record's ``model`` entry, and one line
    saying why; ``(None, why)`` when none installed does, ``why`` then naming the release
    that shipped those weights, when one did.

    ``name`` is the recorded name when it still holds the recorded weights (a shipped name
    or a model folder), else the shipped model that holds them (``score-base-v1`` for a
    record of ``score-base`` made before its weights changed). ``made_by`` (the record's
    ``disco_musica_version``) is the release a message suggests installing, when given.
    """
    if not isinstance(model, dict) or not isinstance(model.get("sha256"), str):
        return (
            None,
            "the record stores no sha256 of its model's weights, so no model can be matched",
        )
    name, sha = model.get("name"), model["sha256"]
    shown = name if isinstance(name, str) and name else "its model"
    short = sha[:12]
    shipped = installed_weights()
    if shipped.get(name) == sha:
        return name, f"{name} holds the recorded weights (sha256 {short}...)"
    if isinstance(name, str) and name not in shipped and _is_folder(name):
        if weights_sha256(Path(name)) == sha:
            return name, f"the folder {name} still holds the recorded weights (sha256 {short}...)"
    if isinstance(name, str) and name not in shipped:
        found = _trained_with(name, sha)
        if found:
            return found, f"your model {found} holds the recorded weights (sha256 {short}...)"
    holders = sorted(n for n, s in shipped.items() if s == sha)
    if holders:
        # Prefer a versioned name of the recorded one (score-base-v1 for score-base).
        holders.sort(key=lambda n: (not n.startswith(f"{name}-"), n))
        best = holders[0]
        now = "now holds other weights" if name in shipped else "is not installed"
        return best, f"{shown} {now}; {best} holds the recorded weights (sha256 {short}...)"
    known = [r for r in RELEASES if r.sha256 == sha]
    if known:
        r = known[0]
        span = f"{r.since} to {r.until}" if r.until else f"{r.since} and later"
        also = f", then as {r.kept_as}" if r.kept_as else ""
        return None, (
            f"the recorded weights (sha256 {short}...) are {r.name} as Disco-Musica {span} "
            f"shipped it{also}, and no installed model has them: install Disco-Musica "
            f"{made_by or r.since} to reproduce it"
        )
    return None, (
        f"no shipped model and no release has the recorded weights of {shown} (sha256 "
        f"{short}...): it was made with a model folder that is not here; give that folder"
    )


def weights_sha256(folder: Path) -> str | None:
    """What a record stores as the sha256 of a model folder's weights: that of its
    ``model.safetensors``, or for a LoRA adapter folder the sha256 of
    ``"<adapters.safetensors sha256>+<base model sha256>"`` (both parts decide the music).
    None when the folder holds neither."""
    from engine.atomic import sha256_file_cached

    folder = Path(folder)
    if (folder / "adapter_config.json").is_file() and (folder / "adapters.safetensors").is_file():
        import hashlib
        import json

        try:
            base = json.loads((folder / "adapter_config.json").read_text())["base_model"]
            both = f"{sha256_file_cached(folder / 'adapters.safetensors')}+{base['sha256']}"
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return hashlib.sha256(both.encode()).hexdigest()
    if (folder / WEIGHTS_FILE).is_file():
        return sha256_file_cached(folder / WEIGHTS_FILE)
    return None


def _trained_with(name: str, sha: str) -> str | None:
    """``name`` (one of the user's trained models, with or without a tag) or the tag of it
    whose weights have ``sha``: the model may have moved on to later rounds since."""
    from engine import hub

    base, _ = hub.split_tag(name)
    try:
        here = hub.resolve_trained(name)
    except hub.TrainedModelError:
        here = None
    if here is not None and weights_sha256(here) == sha:
        return name
    root = hub.trained_models_dir() / base
    if not (root / "model.json").is_file():
        return None
    for run in sorted((root / "runs").glob("round-*")):
        candidates = [run / "best", run / "checkpoint", *sorted(run.glob("checkpoints/step-*"))]
        for c in candidates:
            if weights_sha256(c) == sha:
                if c.name == "best":
                    return f"{base}@{run.name}"
                if c.name.startswith("step-"):
                    return str(c)  # (a step of an earlier round has no tag: its folder)
                return str(c)
    return None


def _is_folder(name: str) -> bool:
    return "/" in name or "\\" in name or Path(name).is_dir()
