"""``data list | show | tag | edit | remove | split | versions | diff | checkout``: looking
after datasets (the store is `engine.data.store`, splits `engine.data.splits`)."""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli import common
from engine.errors import UserError


# ---- shared by the data group's modules -------------------------------------------------------
def open_dataset(text: str, create: bool = False):
    """The dataset named or pointed at by ``text``; with ``create`` a new one if missing."""
    from engine.data.store import Dataset, dataset_path

    if create and not (dataset_path(text) / "dataset.json").is_file():
        return Dataset.create(text)
    return Dataset.open(text)


def print_json(obj) -> None:
    from engine.atomic import json_default

    print(json.dumps(obj, indent=1, ensure_ascii=False, default=json_default))


def say_version(ds, version: str | None) -> None:
    """The line every changing command ends with."""
    if version is None:
        print(f"nothing changed; {ds.name} stays at version {ds.head[:12]}")
    else:
        print(f"{ds.name} is now at version {version[:12]} ({len(ds.items())} items)")


def whole_number(name: str, text: str) -> int:
    """``text`` as an int, or a `DatasetError` naming the option."""
    from engine.data.store import DatasetError

    try:
        return int(text)
    except ValueError:
        raise DatasetError(f"{name} takes a whole number, not {text!r}") from None


def number(name: str, text: str) -> float:
    """``text`` as a float, or a `DatasetError` naming the option."""
    from engine.data.store import DatasetError

    try:
        return float(text)
    except ValueError:
        raise DatasetError(f"{name} takes a number, not {text!r}") from None


def command_of(args: argparse.Namespace) -> list[str]:
    """What the user typed, for the version's record."""
    return [common.PROG, *sys.argv[1:]] if sys.argv[1:2] == ["data"] else list(args.words)


# ---- the actions --------------------------------------------------------------------------------
def add_actions(action) -> None:
    p = action("list", cmd_list, "list your datasets (name, items, version, folder)")
    p = action("show", cmd_show, "a dataset's items (or the ones you name), splits and ID")
    p.add_argument("dataset", metavar="DATASET", help="a dataset name or folder")
    p.add_argument("items", nargs="*", metavar="ITEM", help="IDs, paths or globs (default: all)")
    p.add_argument("--version", metavar="V", help="an earlier version (ID, or HEAD~N)")
    p.add_argument("--limit", type=_count, default=50, help="rows to print (0: all; default 50)")
    p = action("tag", cmd_tag, "add free tags to items (or --remove them)")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("tags", nargs="+", metavar="TAG")
    p.add_argument(
        "--items", nargs="+", default=["all"], metavar="ITEM", help="IDs, paths or globs"
    )
    p.add_argument("--remove", action="store_true", help="remove these tags instead")
    p = action("edit", cmd_edit, "set or clear metadata fields of items (marked as yours)")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("items", nargs="+", metavar="ITEM", help="IDs, paths or globs")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="e.g. --set genre=funk --set tempo=96 --set instruments=bass,drums",
    )
    p.add_argument("--unset", action="append", default=[], metavar="FIELD", help="clear a field")
    p.add_argument("--split", choices=("train", "validation", "test", "none"), help="move items")
    p.add_argument(
        "--group",
        metavar="SONG",
        help="make the items one song (one group, kept in one split), e.g. --group night-drive",
    )
    p = action("remove", cmd_remove, "take items out of the next version (older ones keep them)")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("items", nargs="+", metavar="ITEM")
    p = action("split", cmd_split, "assign train/validation/test by ratio, grouped by song")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--ratios", default="80,10,10", help="train,validation,test (default 80,10,10)")
    p.add_argument("--seed", type=_count, default=0, help="the same seed gives the same splits")
    p.add_argument("--stratify", metavar="FIELD", help="deal each value of a field out evenly")
    p = action("versions", cmd_versions, "the versions of a dataset, newest first")
    p.add_argument("dataset", metavar="DATASET")
    p = action("diff", cmd_diff, "what changed between two versions (default: HEAD~1 → HEAD)")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("old", nargs="?", default="HEAD~1", metavar="V1")
    p.add_argument("new", nargs="?", default="HEAD", metavar="V2")
    p = action("checkout", cmd_checkout, "make an earlier (or later) version the current one")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("version", metavar="V", help="a version ID (or its start), or HEAD~N")


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text} is below 0")
    return n


def _meta_text(item) -> str:
    bits = []
    for k in ("genre", "mood", "tempo", "key", "meter"):
        if k in item.meta:
            mark = "~" if item.meta_from.get(k) == "estimate" else ""
            v = item.meta[k]
            bits.append(f"{mark}{v:g} BPM" if k == "tempo" else f"{mark}{v}")
    if item.meta.get("tags"):
        bits.append("#" + " #".join(item.meta["tags"]))
    return ", ".join(bits)


def _duration(item) -> str:
    if item.duration_s is None:
        return ""
    m, s = divmod(item.duration_s, 60)
    return f"{int(m)}:{s:04.1f}"


def cmd_list(args) -> int:
    from engine.data.store import Dataset, datasets_root, list_datasets

    rows = []
    for path in list_datasets():
        try:
            ds = Dataset.open(path)
            rows.append(
                {"name": ds.name, "items": len(ds.items()), "version": ds.head, "path": str(path)}
            )
        except UserError as e:  # a damaged one is listed, not fatal
            rows.append({"name": path.name, "error": str(e), "path": str(path)})
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(
            f"no datasets yet in {datasets_root()}; make one with "
            f"`{common.PROG} data import FILES --into NAME`"
        )
    for r in rows:
        if "error" in r:
            print(f"{r['name']:24}  damaged: {r['error']}")
        else:
            print(f"{r['name']:24}  {r['items']:6} items  {r['version'][:12]}  {r['path']}")
    return 0


def cmd_show(args) -> int:
    from engine.data.splits import split_counts

    ds = open_dataset(args.dataset)
    items = ds.find(args.items, args.version) if args.items else ds.items(args.version)
    vid = ds.resolve(args.version)
    if args.json:
        print_json(
            {
                "name": ds.name,
                "id": ds.ident(vid),
                "version": vid,
                "path": str(ds.path),
                "items": [i.to_json() for i in items],
            }
        )
        return 0
    hours = sum(i.duration_s or 0 for i in items) / 3600
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(_counter(i.kind for i in items).items()))
    splits = ", ".join(f"{k} {n}" for k, n in split_counts(items).items())
    print(f"{ds.name}  ID {ds.ident(vid)}")
    print(f"{len(items)} items ({kinds or 'none'}), {hours:.2f} h; splits: {splits or 'none'}")
    shown = items if not args.limit else items[: args.limit]
    for i in shown:
        print(
            f"{i.id}  {i.kind:5}  {_duration(i):>8}  {(i.split or '-'):10}  {i.path}"
            + (f"  [{_meta_text(i)}]" if _meta_text(i) else "")
        )
    if len(shown) < len(items):
        print(f"… and {len(items) - len(shown)} more (--limit 0 shows all); ~ marks estimates")
    return 0


def _counter(values):
    from collections import Counter

    return Counter(values)


def _change(args, ds, items, step: dict, message: str, fn) -> int:
    with ds.change(step, message, command=command_of(args)) as ch:
        for item in items:
            new = fn(item)
            if new != item:
                ch.put(new)
    if args.json:
        print_json({"version": ch.version, "items": len(items)})
    else:
        say_version(ds, ch.version)
    return 0


def cmd_tag(args) -> int:
    from engine.data.store import check_meta

    ds = open_dataset(args.dataset)
    tags = check_meta("tags", list(args.tags))
    items = ds.find(args.items)

    def tagged(item):
        old = list(item.meta.get("tags", []))
        new = [t for t in old if t not in tags] if args.remove else list(dict.fromkeys(old + tags))
        return item.with_meta({"tags": new}, "user") if new != old else item

    what = "untag" if args.remove else "tag"
    return _change(
        args, ds, items, {"name": what, "tags": tags}, f"{what} {' '.join(tags)}", tagged
    )


def cmd_edit(args) -> int:
    from engine.data.store import check_meta

    ds = open_dataset(args.dataset)
    values: dict = {}
    for pair in args.sets:
        field, eq, value = pair.partition("=")
        if not eq or not field.strip():
            raise common.CliError(f"--set {pair!r}: write FIELD=VALUE, e.g. --set genre=funk")
        values[field.strip()] = check_meta(field.strip(), value)
    for field in args.unset:
        check_meta(field, None)
        values[field] = None
    if args.group is not None and not args.group.strip():
        raise common.CliError("--group takes a name, e.g. --group night-drive")
    if not values and args.split is None and args.group is None:
        raise common.CliError(
            "say what to change: --set FIELD=VALUE, --unset FIELD, --split or --group"
        )
    items = ds.find(args.items)
    split = None if args.split in (None, "none") else args.split

    def edited(item):
        new = item.with_meta(values, "user") if values else item
        from dataclasses import replace

        if args.split is not None and new.split != split:
            new = replace(new, split=split)
        if args.group is not None and new.group != args.group.strip():
            new = replace(new, group=args.group.strip())
        return new

    step = {"name": "edit", "set": values, "split": args.split, "group": args.group}
    return _change(args, ds, items, step, f"edit {common.plural(len(items), 'item')}", edited)


def cmd_remove(args) -> int:
    ds = open_dataset(args.dataset)
    items = ds.find(args.items)
    step = {"name": "remove", "items": [i.id for i in items]}
    with ds.change(
        step, f"remove {common.plural(len(items), 'item')}", command=command_of(args)
    ) as ch:
        for item in items:
            ch.remove(item.id)
    if args.json:
        print_json({"version": ch.version, "removed": [i.id for i in items]})
    else:
        say_version(ds, ch.version)
    return 0


def cmd_split(args) -> int:
    from engine.data.splits import parse_ratios, split_counts, split_dataset

    ds = open_dataset(args.dataset)
    ratios = parse_ratios(args.ratios)
    version = split_dataset(ds, ratios, args.seed, args.stratify, command=command_of(args))
    counts = split_counts(ds.items())
    if args.json:
        print_json({"version": version, "splits": counts})
        return 0
    print(", ".join(f"{k} {n}" for k, n in counts.items()))
    say_version(ds, version)
    return 0


def cmd_versions(args) -> int:
    ds = open_dataset(args.dataset)
    versions = ds.versions()
    if args.json:
        from dataclasses import asdict

        print_json([asdict(v) for v in versions])
        return 0
    head = ds.head
    for v in versions:
        mark = "*" if v.id == head else " "
        print(f"{mark} {v.id[:12]}  {v.created}  {v.count:6} items  {v.message}")
    print("* marks the current version")
    return 0


def cmd_diff(args) -> int:
    ds = open_dataset(args.dataset)
    d = ds.diff(args.old, args.new)
    if args.json:
        print_json(
            {
                "from": d["from"],
                "to": d["to"],
                "added": [i.to_json() for i in d["added"]],
                "removed": [i.to_json() for i in d["removed"]],
                "changed": [
                    {"id": new.id, "path": new.path, "fields": fields}
                    for _, new, fields in d["changed"]
                ],
            }
        )
        return 0
    print(f"{d['from'][:12]} → {d['to'][:12]}")
    for i in d["added"]:
        print(f"+ {i.path}")
    for i in d["removed"]:
        print(f"- {i.path}")
    for _old, new, fields in d["changed"]:
        print(f"~ {new.path}: {', '.join(fields)}")
    if not (d["added"] or d["removed"] or d["changed"]):
        print("no differences")
    return 0


def cmd_checkout(args) -> int:
    ds = open_dataset(args.dataset)
    vid = ds.checkout(args.version)
    if args.json:
        print_json({"version": vid, "id": ds.ident(vid)})
        return 0
    print(
        f"{ds.name} is now at version {vid[:12]} ({len(ds.items())} items); later versions "
        f"stay (`{common.PROG} data versions {ds.name}`)"
    )
    return 0
