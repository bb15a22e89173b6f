"""``data export`` and ``data load-hf``: a dataset out as plain files or a Hugging Face
dataset (saved, and pushed to the Hub when asked), and Hugging Face datasets in
(`engine.data.hf`)."""

from __future__ import annotations

import argparse
import sys

from engine.cli import common
from engine.cli.data.manage import command_of, open_dataset, print_json


def add_actions(action) -> None:
    p = action(
        "export",
        cmd_export,
        "write a version out: its files with their manifest (--to), or a Hugging Face "
        "dataset (--hf, and --push to the Hub)",
    )
    p.add_argument("dataset", metavar="DATASET", help="a dataset name or folder")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--to",
        metavar="DIR",
        help="a new folder: the files by their dataset paths, manifest.jsonl and dataset.json",
    )
    where.add_argument(
        "--hf",
        metavar="DIR",
        help="a new folder: a Hugging Face dataset (save_to_disk) with its README.md card",
    )
    p.add_argument("--version", metavar="V", help="an earlier version (ID, or HEAD~N)")
    p.add_argument(
        "--push",
        metavar="REPO",
        help="with --hf: also push it to the Hugging Face Hub as REPO (user/name); "
        "credentials from `hf auth login` or HF_TOKEN",
    )
    p.add_argument(
        "--public", action="store_true", help="with --push: a public repo (default: private)"
    )
    p = action(
        "load-hf",
        cmd_load_hf,
        "load a Hugging Face dataset (a saved folder, or user/name on the Hub) into a dataset",
    )
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="a folder written by `data export --hf` or save_to_disk, or a Hub dataset "
        "(user/name or hf://datasets/user/name)",
    )
    p.add_argument(
        "--into",
        required=True,
        metavar="DATASET",
        help="the dataset to load into (made if missing)",
    )
    p.add_argument("--split", metavar="S", help="only this split (default: every split)")


def cmd_export(args: argparse.Namespace) -> int:
    from engine.data import hf

    if args.push is not None and args.hf is None:
        raise common.CliError("--push needs --hf DIR (the folder saved before the push)")
    if args.public and args.push is None:
        raise common.CliError("--public only goes with --push REPO")
    from engine.data.hf import REPO_NAME

    if args.push is not None and not REPO_NAME.fullmatch(args.push):
        raise common.CliError(f"--push takes a Hub dataset name, user/name (not {args.push!r})")
    ds = open_dataset(args.dataset)
    vid = ds.resolve(args.version)
    hf.check_new_dest(args.to if args.to is not None else args.hf)
    count = len(ds.items(vid))
    if args.to is not None:
        dest = hf.export_files(ds, args.to, vid)
        if args.json:
            print_json({"dest": str(dest), "id": ds.ident(vid), "items": count})
        else:
            print(
                f"exported {common.plural(count, 'item')} of {ds.name} (version {vid[:12]}) to "
                f"{common.shown_path(dest)} with {hf.MANIFEST_FILE} and {hf.INFO_FILE}"
            )
        return 0
    from engine.cli.progress import FileProgress

    with FileProgress("Export") as bar:
        done = hf.export_hf(
            ds, args.hf, vid, push_to=args.push, private=not args.public, progress=bar
        )
    if args.json:
        print_json(
            {
                "dest": str(done.dest),
                "id": done.ident,
                "splits": done.splits,
                "pushed": done.pushed,
                "private": done.private if done.pushed else None,
            }
        )
        return 0
    pushed = ""
    if done.pushed:
        pushed = f", and pushed to {done.pushed} ({'private' if done.private else 'public'})"
    print(
        f"saved {common.plural(count, 'item')} of {ds.name} (version {vid[:12]}; "
        f"{_counts(done.splits)}) as a Hugging Face dataset in "
        f"{common.shown_path(done.dest)}{pushed}"
    )
    return 0


def cmd_load_hf(args: argparse.Namespace) -> int:
    from engine.cli.progress import FileProgress
    from engine.data import hf

    source = hf.open_hf_source(args.source, args.split)  # refused before the dataset is made
    ds = open_dataset(args.into, create=True)
    with FileProgress("Load") as bar:
        report = hf.load_hf(source, ds, split=args.split, progress=bar, command=command_of(args))
    if args.json:
        print_json(
            {
                "source": report.source,
                "dataset": report.dataset,
                "version": report.version,
                "added": report.added,
                "replaced": report.replaced,
                "unchanged": report.unchanged,
                "splits": report.splits,
                "skipped": [{"row": r, "reason": why} for r, why in report.skipped],
                "warnings": report.warnings,
            }
        )
        return 0
    for row, why in report.skipped:
        print(f"skipped {row}: {why}", file=sys.stderr)
    for text in report.warnings:
        print(f"warning: {text}", file=sys.stderr)
    parts = [f"{report.added} new"]
    if report.replaced:
        parts.append(f"{report.replaced} replaced")
    if report.unchanged:
        parts.append(f"{report.unchanged} already there")
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped")
    version = (
        f"now at version {report.version[:12]}"
        if report.version
        else f"nothing changed (version {ds.head[:12]})"
    )
    print(
        f"loaded {common.plural(report.loaded, 'item')} from {args.source} into {ds.name} "
        f"({', '.join(parts)}; {_counts(report.splits)}): {version}"
    )
    return 0


def _counts(splits: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in splits.items()) or "no items"
