"""What a record says about its piece, for the library: attributes, inputs, lineage keys.

Records come in a few shapes (all written through `engine.record`):

- a generation folder's ``generation.json`` of the score model (``generate``; ``harmonize``,
  ``restyle``, ``continue`` name their workflow in ``request.workflow``), of MusicGen
  (``engine: musicgen``) or of ``accompany`` (``engine: accompany``);
- the JSON sidecar beside a MIDI file (``sketch``, ``continue``, ``add-tracks``,
  ``regenerate``, ``transcribe``: ``operation``, ``parameters``, ``conditions``).

`describe` turns any of them into the flat attributes the library filters and searches on;
`input_hashes` lists the sha256 of the files a piece was made from (its parents, when the
library holds them); `changes` says what differs between a parent and a child.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

ATTRIBUTES = (
    "operation",
    "prompt",
    "style",
    "key",
    "mode",
    "meter",
    "tempo",
    "bars",
    "instruments",
    "model",
    "model_sha256",
    "seed",
    "created",
    "version",
)


def is_piece_record(record: object) -> bool:
    """Whether ``record`` is the record of a piece (not a training report or a model)."""
    if not isinstance(record, dict):
        return False
    if isinstance(record.get("midi"), dict) and "operation" in record:
        return True  # a MIDI command's sidecar
    return isinstance(record.get("outputs"), dict) and (
        "request" in record or record.get("engine") in ("musicgen", "accompany")
    )


def operation(record: dict) -> str:
    """``generate``, ``harmonize``, ``musicgen``, ``accompany``, ``sketch`` … of a record."""
    if isinstance(record.get("operation"), str):
        return record["operation"]
    engine = record.get("engine", "score")
    if engine == "musicgen":
        request = record.get("request") or {}
        return "continue" if (record.get("inputs") or {}).get("audio") else "musicgen"
    if engine == "accompany":
        return "accompany"
    request = record.get("request") if isinstance(record.get("request"), dict) else {}
    return str(request.get("workflow") or "generate")


def _text(x) -> str | None:
    return x if isinstance(x, str) and x else None


def _number(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x)


def describe(record: dict) -> dict:
    """The library's attributes of a piece (None where the record does not say)."""
    plan = record.get("plan") if isinstance(record.get("plan"), dict) else {}
    cond = record.get("conditions") if isinstance(record.get("conditions"), dict) else {}
    request = record.get("request") if isinstance(record.get("request"), dict) else {}
    model = record.get("model") if isinstance(record.get("model"), dict) else {}
    analysis = record.get("analysis") if isinstance(record.get("analysis"), dict) else {}
    params = record.get("parameters") if isinstance(record.get("parameters"), dict) else {}
    instruments: list[str] = []
    for part in plan.get("parts") or []:
        if isinstance(part, dict) and _text(part.get("name")):
            instruments.append(part["name"])
    for track in record.get("tracks") or []:
        if isinstance(track, dict) and _text(track.get("name")):
            instruments.append(track["name"])
    tempo = (
        _number(plan.get("tempo_bpm"))
        or _number(record.get("tempo_bpm"))
        or _number(analysis.get("tempo_bpm"))
        or _number((record.get("quantization") or {}).get("tempo_bpm"))
    )
    prompt = _text(record.get("prompt")) or _text(request.get("prompt"))
    seed = record.get("seed", request.get("seed", params.get("seed")))
    return {
        "operation": operation(record),
        "prompt": prompt,
        "style": _text(plan.get("style")) or _text(cond.get("style")) or _text(record.get("style")),
        "key": _text(plan.get("key")) or _text(cond.get("key")) or _text(analysis.get("key")),
        "mode": _text(plan.get("mode")) or _text(cond.get("mode")) or _text(analysis.get("mode")),
        "meter": _text(plan.get("meter"))
        or _text(cond.get("meter"))
        or _text(analysis.get("meter")),
        "tempo": tempo,
        "bars": plan.get("bars") if isinstance(plan.get("bars"), int) else params.get("bars"),
        "instruments": instruments,
        "model": _text(model.get("name")),
        "model_sha256": _text(model.get("sha256")),
        "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        "created": _text(record.get("created")),
        "version": _text(record.get("disco_musica_version"))
        or _text((record.get("versions") or {}).get("disco_musica")),
    }


def title_for(record: dict, fallback: str) -> str:
    """A readable default title: the prompt's first words, else the operation and input."""
    attrs = describe(record)
    if attrs["prompt"]:
        words = attrs["prompt"].split()
        return " ".join(words[:10]) + (" …" if len(words) > 10 else "")
    op = attrs["operation"]
    inp = record.get("input") if isinstance(record.get("input"), dict) else {}
    path = _text(inp.get("path")) or _text(record.get("request", {}).get("input"))
    if path:
        from pathlib import PurePath

        return f"{op} of {PurePath(path).name}"
    words = [attrs["style"] or "", op]
    if attrs["key"]:
        words.append(f"in {attrs['key']} {attrs['mode'] or ''}".strip())
    text = " ".join(w for w in words if w)
    return text if attrs["style"] or attrs["key"] else f"{op} {fallback}"


def input_hashes(record: dict) -> list[str]:
    """The sha256 of every input file the record names (melody, audio prompt, MIDI, clip)."""
    found: list[str] = []

    def take(node) -> None:
        if isinstance(node, dict) and isinstance(node.get("sha256"), str):
            found.append(node["sha256"])

    take(record.get("input"))
    inputs = record.get("inputs")
    if isinstance(inputs, dict):
        for node in inputs.values():
            take(node)
    return list(dict.fromkeys(h for h in found if len(h) == 64))


def batch_of(record: dict) -> tuple[tuple[int, ...], int] | None:
    """(seeds, row) of a piece written as one of variations in a batch, else None."""
    request = record.get("request") if isinstance(record.get("request"), dict) else {}
    batch = request.get("batch")
    if not isinstance(batch, dict):
        return None
    seeds, row = batch.get("seeds"), batch.get("row")
    if not isinstance(seeds, list) or not isinstance(row, int):
        return None
    return tuple(s for s in seeds if isinstance(s, int)), row


def output_hashes(record: dict) -> dict[str, str]:
    """{file name: sha256} of the files the record lists as its outputs."""
    out: dict[str, str] = {}
    outputs = record.get("outputs")
    if isinstance(outputs, dict):
        for name, info in outputs.items():
            if isinstance(info, dict) and isinstance(info.get("sha256"), str):
                out[name] = info["sha256"]
    midi = record.get("midi")
    if isinstance(midi, dict) and isinstance(midi.get("file"), str):
        if isinstance(midi.get("sha256"), str):
            out[midi["file"]] = midi["sha256"]
    return out


# ---- what changed between a parent and a child -----------------------------------------------
_SKIP = {"created", "outputs", "midi", "replay", "command", "args", "parsed", "warnings"}
_SKIP |= {"finish_reason", "num_tokens", "note_count", "mlx_version", "platform", "format"}
_SKIP |= {"replaced", "render", "versions", "settings", "tracks", "analysis"}


def _flat(node, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for k, v in node.items():
            if not prefix and k in _SKIP:
                continue
            if k in ("path",):  # where a file was is not what made the music
                continue
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    if isinstance(node, list) and len(node) > 6:
        return {prefix[:-1]: json.dumps(node)[:60]}
    return {prefix[:-1]: node}


def _shown(v) -> str:
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return v[:10]  # a hash: its start is enough to tell two apart
    text = json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= 40 else text[:37] + "…"


_ALWAYS = {"operation", "seed", "model.sha256", "model.name", "prompt", "input.sha256"}


def changes(parent: dict, child: dict, limit: int = 6) -> list[str]:
    """What differs from ``parent`` to ``child``: ``seed 11 → 12``, ``model a1b2… → c3d4…``,
    ``operation generate → continue``; at most ``limit`` lines (then ``+N more``)."""
    a, b = _flat(parent), _flat(child)
    a["operation"], b["operation"] = operation(parent), operation(child)
    # The same fact is recorded in several places: say it once.
    lines: list[str] = []
    seen_values: set[tuple[str, str]] = set()
    keys = ["operation", "seed", "model.sha256", "model.name"]
    keys += sorted(k for k in set(a) | set(b) if k not in keys)
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if va == vb:
            continue
        if (va is None or vb is None) and k not in _ALWAYS:
            continue  # an option one operation has and the other has not: not a change
        short = k.rsplit(".", 1)[-1] if k.startswith(("request.", "plan.", "parameters.")) else k
        pair = (_shown(va) if va is not None else "—", _shown(vb) if vb is not None else "—")
        if (short.split(".")[-1], pair[1]) in seen_values:
            continue
        seen_values.add((short.split(".")[-1], pair[1]))
        lines.append(f"{short} {pair[0]} → {pair[1]}")
    if len(lines) > limit:
        lines = lines[:limit] + [f"+{len(lines) - limit} more"]
    return lines


def search_text(record: dict) -> str:
    """The attributes as words, for full-text search (style, key, instruments, model …)."""
    attrs = describe(record)
    words: list[str] = []
    for k in ("operation", "style", "key", "mode", "meter", "model"):
        if attrs[k]:
            words.append(str(attrs[k]))
    if attrs["key"] and attrs["mode"]:
        words.append(f"{attrs['key']} {attrs['mode']}")
    if attrs["tempo"]:
        words.append(f"{attrs['tempo']:g} bpm")
    words += attrs["instruments"]
    parsed = record.get("parsed")
    if isinstance(parsed, dict):
        for item in parsed.get("understood") or []:
            if isinstance(item, dict) and isinstance(item.get("value"), str):
                words.append(item["value"])
    return " ".join(dict.fromkeys(words))


def instruments_text(instruments: Iterable[str]) -> str:
    """Instruments stored in one column: ``|Soprano|Alto|`` (so that LIKE '%|alto|%' finds a
    whole name)."""
    names_ = [i.strip() for i in instruments if i and i.strip()]
    return "|" + "|".join(dict.fromkeys(names_)) + "|" if names_ else ""
