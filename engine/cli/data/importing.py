"""``data import SOURCE... --into DATASET``: files, folders, zip/tar archives and cloud
addresses into a dataset (made if missing); see `engine.data.ingest`."""

from __future__ import annotations

import contextlib
import sys

from engine.cli.data.manage import command_of, open_dataset, print_json


def add_actions(action) -> None:
    p = action(
        "import",
        cmd_import,
        "import files, folders, zip/tar archives and cloud addresses (s3:// gs:// dropbox:// "
        "gdrive:// hf:// https://) into a dataset",
    )
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="a file, a folder (read with everything inside), an archive, or an address",
    )
    p.add_argument(
        "--into",
        required=True,
        metavar="DATASET",
        help="a dataset name or folder; made if missing",
    )
    p.add_argument(
        "--group-by",
        choices=("file", "folder"),
        default="file",
        help="what makes one song, kept in one split: each file (default), or each folder "
        "(the stems and mix of a DAW export)",
    )
    p.add_argument(
        "--no-sidecars",
        action="store_true",
        help="ignore metadata.csv / metadata.json and NAME.json files beside the files",
    )


def cmd_import(args) -> int:
    from pathlib import Path

    from engine.cli import progress as ui
    from engine.data.ingest import import_sources
    from engine.data.store import DatasetError, dataset_path

    if Path(args.into).expanduser().is_file():
        raise DatasetError(f"--into {args.into} is a file; give a dataset name or a folder")
    existed = (dataset_path(args.into) / "dataset.json").is_file()
    ds = open_dataset(args.into, create=True)
    display = ui.FileProgress("Importing") if sys.stderr.isatty() else contextlib.nullcontext()
    try:
        with display as progress:
            report = import_sources(
                ds,
                list(args.sources),
                sidecars=not args.no_sidecars,
                group_by=args.group_by,
                progress=progress,
                command=command_of(args),
            )
    except BaseException:
        if not existed:
            _drop_if_empty(ds)
        raise
    if not report.read_any:
        if not existed:
            _drop_if_empty(ds)
        if len(report.skipped) == 1:
            source, reason = report.skipped[0]
            raise DatasetError(f"{source}: {reason}")
        if report.skipped:
            for source, reason in report.skipped:
                print(f"skipped: {source}: {reason}")
            raise DatasetError(
                f"nothing could be imported: all {len(report.skipped)} files were skipped "
                "(the reasons are listed above)"
            )
        raise DatasetError(
            f"found no files to import in {' '.join(args.sources)} (hidden files and "
            "sidecars are left out)"
        )
    if args.json:
        print_json({"dataset": ds.name, "path": str(ds.path), "head": ds.head, **report.to_json()})
        return 0
    for source, reason in report.skipped:
        print(f"skipped: {source}: {reason}")
    for note in report.notes:
        print(f"note: {note}")
    resumed = f" ({report.resumed} taken up from an interrupted import)" if report.resumed else ""
    print(
        f"added {len(report.added) + report.resumed}{resumed}, changed {len(report.changed)}, "
        f"already there {report.already}, skipped {len(report.skipped)} "
        f"→ version {ds.head[:12]} of {ds.name}"
    )
    return 0


def _drop_if_empty(ds) -> None:
    """Remove a dataset this command made when nothing went into it."""
    from engine.data.store import DatasetError

    with contextlib.suppress(OSError, DatasetError):  # an empty one left behind is harmless
        ds.discard_if_empty()
