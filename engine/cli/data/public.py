"""``data get NAME --into DATASET``: a public dataset (MAESTRO, Lakh MIDI, FMA small, the
music21 corpus) into a dataset of yours, with its licence shown and asked about first
(`engine.data.public`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from engine.cli import common
from engine.cli.data.manage import command_of, open_dataset, print_json, say_version


def add_actions(action) -> None:
    from engine.data.public import NAMES

    p = action(
        "get",
        cmd_get,
        "download a public dataset (its URL, size, checksum and licence are shown first), "
        "check it and import it with its own metadata",
    )
    p.add_argument("name", choices=NAMES, metavar="NAME", help=" | ".join(NAMES))
    p.add_argument(
        "--into", required=True, metavar="DATASET", help="the dataset to import into (made if new)"
    )
    p.add_argument("--yes", action="store_true", help="download without asking first")
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="where downloads are kept (default $DISCO_MUSICA_HOME/cache/datasets, else the "
        "user cache folder)",
    )
    p.add_argument("--limit", type=_count, metavar="N", help="import only the first N music files")
    p.add_argument(
        "--only",
        metavar="GLOB",
        help="import only music files whose path matches, e.g. '2018/*' or 'bach/*'",
    )


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number; give 1 or more"
        ) from None
    if not 1 <= n <= common.MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{text} is out of range; give 1..{common.MAX_LIMIT}")
    return n


def _check_target(text: str) -> None:
    """Refuse a dataset that cannot be made or opened, before anything is downloaded."""
    from engine.data.store import Dataset, DatasetError, dataset_path

    path = dataset_path(text)
    if (path / "dataset.json").is_file():
        Dataset.open(path)  # a damaged one is refused now
        return
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DatasetError(
            f"--into {text}: {path} exists and is not a dataset; give a new name or folder"
        )
    where = path if path.exists() else path.parent
    while not where.exists() and where.parent != where:
        where = where.parent
    if where.is_dir() and not os.access(where, os.W_OK | os.X_OK):
        raise DatasetError(f"--into {text}: {where} cannot be written; give another folder")


def summary_lines(p: dict) -> list[str]:
    """What `engine.data.public.plan` says, as the lines shown before a download."""
    from engine.data.public import describe_size

    lines = [f"{p['title']} ({p['name']})", f"  holds     {p['holds']}"]
    for f in p["files"]:
        if f["size"] is None:
            size = f["size_note"]
        elif f["size_note"] == "exact":
            size = f"{describe_size(f['size'])} ({f['size']:,} bytes)"
        else:
            size = f"{describe_size(f['size'])} ({f['size_note']})"
        lines.append(f"  from      {f['url']}")
        lines.append(f"  size      {size}")
        if f["checksum"]:
            lines.append(f"  {f['algorithm']:<9} {f['checksum']}")
            lines.append(f"            {f['checksum_from']}")
        else:
            lines.append(
                f"  checksum  none published ({f['checksum_from']}); the sha256 of what "
                "arrives is recorded in the dataset's version"
            )
        if f["cached"]:
            lines.append("  cached    yes (checked again, not downloaded)")
        elif f["partial"]:
            lines.append(f"  cached    {f['partial']:,} bytes of an earlier try (resumed)")
    if "source" in p:
        s = p["source"]
        lines.append(f"  from      the installed {s['package']} {s['version']}: {s['folder']}")
        lines.append("  size      nothing to download")
    lines.append(f"  licence   {p['licence']} ({p['licence_url']})")
    lines.append(f"  cite      {p['citation']}")
    lines.append(f"  imports   {p['imports']}")
    lines.append(f"  metadata  {p['metadata']}")
    if p["files"]:
        lines.append(f"  cache     {p['cache']}")
    return lines


class StageDisplays:
    """A byte bar for downloads and a bar for each other stage (one at a time), labelled
    from ``labels`` (stage → label; default the stage's name)."""

    def __init__(self, labels: dict[str, str] | None = None):
        self.labels = labels or {}
        self.stack = contextlib.ExitStack()
        self.stage = None
        self.display = None

    def __enter__(self):
        return self

    def __call__(self, event) -> None:
        from engine.cli import progress as ui

        if event.stage != self.stage:
            self.stack.close()
            self.stack = contextlib.ExitStack()
            self.stage = event.stage
            if event.stage == "download":
                display = ui.BarProgress(event.message or "download", kind="bytes")
            else:
                display = ui.FileProgress(self.labels.get(event.stage, event.stage))
            self.display = self.stack.enter_context(display)
        self.display(event)

    def __exit__(self, *exc) -> None:
        self.stack.close()


def cmd_get(args) -> int:
    from engine.data import public

    cache = public.datasets_cache(args.cache)
    public.check_cache(cache)
    _check_target(args.into)
    plan = public.plan(args.name, cache=args.cache)
    shown = sys.stderr if args.json else sys.stdout
    for line in summary_lines(plan):
        print(line, file=shown)
    shown.flush()
    if plan["needs_download"] and not args.yes:
        size = plan["download_bytes"]
        size = public.describe_size(size) if size is not None else "its size is not published"
        if not sys.stdin.isatty():
            raise common.CliError(
                f"standard input is not a terminal, so nobody can answer; add --yes to "
                f"download {args.name} ({size})"
            )
        try:
            question = f"Download {size}?" if plan["download_bytes"] else f"Download ({size})?"
            answer = input(f"{question} [y/N] ").strip().lower()
        except EOFError:
            answer = ""
        if answer not in ("y", "yes"):
            print("nothing downloaded")
            return 1
    with StageDisplays({"unpack": "Unpacking", "files": "Importing"}) as bar:
        report = public.get_public(
            args.name,
            args.into,
            cache=args.cache,
            limit=args.limit,
            only=args.only,
            progress=bar,
            command=command_of(args),
        )
    if args.json:
        print_json(report)
        return 0
    for f in report["files"]:
        if "url" in f:
            check = (
                f"{f['algorithm']} matches the published checksum"
                if f["verified"]
                else "no published checksum"
            )
            print(f"{f['filename']}: {check}; sha256 {f['sha256']}")
    skipped = report["skipped"]
    print(
        f"imported {report['imported']} of {report['members']} music files"
        + (f" ({report['already']} already there)" if report["already"] else "")
        + f"; the source's metadata set on {common.plural(report['with_metadata'], 'item')}"
    )
    for s in skipped[:20]:
        print(f"  skipped {s['source']}: {s['reason']}")
    if len(skipped) > 20:
        print(f"  … and {len(skipped) - 20} more skipped (--json lists them all)")
    print(f"licence: {report['licence']} ({report['licence_url']})")
    say_version(open_dataset(report["path"]), report["version"])
    return 0
