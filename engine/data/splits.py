"""Train / validation / test splits of a dataset, by ratio and seed, grouped and optionally
stratified.

- **Grouped:** the items of one group (the chunks, stems and augmented copies of one song
  all keep the song's ``group``) always land in the same split, so a model is never
  validated on a piece of a song it was trained on.
- **Stratified** (optional, by a metadata field such as ``genre``): groups are dealt out
  within each value of the field, so each split gets its share of every genre. A group's
  value is the one most of its items have ("unknown" when none has one).
- **By ratio, deterministic:** within each stratum the groups are shuffled with the seed,
  then each goes to the split that is furthest below its share of items so far. The same
  dataset, ratios and seed give the same splits. With few groups a split can come out empty
  (three songs cannot fill 80/10/10); the result says how many items each split got.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from engine.data.store import META_FIELDS, SPLITS, Dataset, DatasetError, Item

DEFAULT_RATIOS = (0.8, 0.1, 0.1)


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``"80,10,10"`` or ``"0.8,0.1,0.1"`` (two numbers: no test split) as shares summing to 1."""
    try:
        parts = [float(p) for p in text.replace("/", ",").split(",") if p.strip()]
    except ValueError:
        raise DatasetError(f"--ratios takes numbers like 80,10,10 (not {text!r})") from None
    if len(parts) == 2:
        parts.append(0.0)
    if len(parts) != 3:
        raise DatasetError(f"--ratios takes train,validation[,test], e.g. 80,10,10 (not {text!r})")
    return check_ratios(parts)


def check_ratios(ratios) -> tuple[float, float, float]:
    ratios = [float(r) for r in ratios]
    if len(ratios) != 3 or any(not np.isfinite(r) or r < 0 for r in ratios) or sum(ratios) <= 0:
        raise DatasetError(
            "split ratios are three numbers ≥ 0 (train, validation, test), e.g. 80,10,10"
        )
    if ratios[0] == 0:
        raise DatasetError("the train share of a split must be more than 0")
    total = sum(ratios)
    return tuple(r / total for r in ratios)


def assign(
    items: list[Item], ratios=DEFAULT_RATIOS, seed: int = 0, stratify: str | None = None
) -> dict[str, str]:
    """Item id → split name for ``items`` (see the module's docstring)."""
    ratios = check_ratios(ratios)
    if stratify is not None and stratify not in META_FIELDS:
        raise DatasetError(f"cannot stratify by {stratify!r}; give one of {', '.join(META_FIELDS)}")
    if not 0 <= seed < 2**32:
        raise DatasetError(f"--seed must be 0 to {2**32 - 1} (not {seed})")
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.group or item.id].append(item)
    strata: dict[str, list[str]] = defaultdict(list)
    for g in sorted(groups):
        strata[_stratum(groups[g], stratify)].append(g)
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    for name in sorted(strata):
        keys = strata[name]
        order = rng.permutation(len(keys))
        counts = np.zeros(3)
        for k in order:
            members = groups[keys[k]]
            total = counts.sum() + len(members)
            # the split furthest below its share once this group is counted
            need = np.array(ratios) * total - counts
            need[np.array(ratios) == 0] = -np.inf
            s = int(np.argmax(need))
            counts[s] += len(members)
            for item in members:
                out[item.id] = SPLITS[s]
    return out


def _stratum(members: list[Item], field: str | None) -> str:
    if field is None:
        return ""
    values = Counter()
    for item in members:
        v = item.meta.get(field)
        if isinstance(v, list):
            v = v[0] if v else None
        if v is not None:
            values[str(v)] += 1
    return values.most_common(1)[0][0] if values else "unknown"


def split_dataset(
    ds: Dataset,
    ratios=DEFAULT_RATIOS,
    seed: int = 0,
    stratify: str | None = None,
    command: list | None = None,
) -> str | None:
    """Assign every item of HEAD to a split as one change; returns the new version's ID
    (None if every item already had that split)."""
    ratios = check_ratios(ratios)
    items = ds.items()
    if not items:
        raise DatasetError(f"{ds.name} has no items to split; import some first")
    chosen = assign(items, ratios, seed, stratify)
    step = {
        "name": "split",
        "ratios": [round(r, 6) for r in ratios],
        "seed": seed,
        "stratify": stratify,
        "grouped_by": "group",
    }
    shares = "/".join(f"{round(r * 100):g}" for r in ratios)
    message = f"split {shares} (seed {seed}" + (f", stratified by {stratify})" if stratify else ")")
    with ds.change(step, message, command=command) as ch:
        for item in items:
            if item.split != chosen[item.id]:
                item.split = chosen[item.id]
                ch.put(item)
    return ch.version


def split_counts(items: list[Item]) -> dict[str, int]:
    """Items per split (``unassigned`` for none)."""
    c = Counter(i.split or "unassigned" for i in items)
    return {k: c[k] for k in (*SPLITS, "unassigned") if c[k]}
