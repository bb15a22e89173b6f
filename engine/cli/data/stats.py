"""``data stats DATASET``: what a dataset holds, as tables (or ``--json``): counts, hours,
metadata distributions and duplicates (`engine.data.stats`)."""

from __future__ import annotations

import argparse
import math

from engine.cli import common
from engine.cli.data.manage import open_dataset, print_json

TOP_VALUES = 8  # values of a field shown in the table (--json has them all)
MAX_ROWS = 40  # duplicate rows shown in the tables
WIDE = 120  # columns of the tables when the output is not a terminal


def add_actions(action) -> None:
    p = action(
        "stats",
        cmd_stats,
        "what a dataset holds: counts, hours, metadata by field, exact and near duplicates",
    )
    p.add_argument("dataset", metavar="DATASET", help="a dataset name or folder")
    p.add_argument("--version", metavar="V", help="an earlier version (ID, or HEAD~N)")
    p.add_argument(
        "--no-near",
        action="store_true",
        help="skip the near-duplicate search (the chroma fingerprints are the slow part)",
    )
    p.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        metavar="S",
        help="similarity from which two items are near-duplicates, 0.5..1 (default 0.85)",
    )


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give 0.5..1") from None
    if not math.isfinite(value) or not 0.5 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is out of range; give 0.5..1")
    return value


def cmd_stats(args) -> int:
    from engine.cli.data.public import StageDisplays
    from engine.data import stats as st

    ds = open_dataset(args.dataset)
    ds.resolve(args.version)  # a wrong version is refused before any work
    threshold = st.NEAR_THRESHOLD if args.threshold is None else args.threshold
    labels = {
        "fingerprints": "Fingerprinting",
        "comparisons (audio)": "Comparing audio",
        "comparisons (midi)": "Comparing MIDI",
    }
    with StageDisplays(labels) as bar:
        report = st.stats(
            ds, args.version, near=not args.no_near, threshold=threshold, progress=bar
        )
    if args.json:
        print_json(report)
    else:
        show(report)
    return 0


# ---- the tables ------------------------------------------------------------------------------
def _hours(h: float) -> str:
    if h < 1:
        return f"{h * 60:.1f} min"
    return f"{h:.2f} h"


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def show(report: dict) -> None:
    """Print a `engine.data.stats.stats` report as tables."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not console.is_terminal:  # a file or a pipe: wide enough that paths stay whole
        console = Console(highlight=False, width=WIDE)
    c = report["counts"]
    h = report["hours"]
    console.print(f"[bold]{report['dataset']}[/]  version {report['version'][:12]}")
    console.print(f"ID {report['id']}")
    hours = ", ".join(f"{k} {_hours(v)}" for k, v in h.items() if k not in ("total", "no_duration"))
    console.print(
        f"{common.plural(report['items'], 'item')} ({c['files']} distinct files, "
        f"{common.plural(c['groups'], 'group')}, {_size(c['bytes'])}); "
        f"{_hours(h['total'])} in all"
        + (f" ({hours})" if hours else "")
        + (f"; {h['no_duration']} of unknown length" if h.get("no_duration") else "")
    )

    splits = list(c["by_split"])
    t = Table(title="Items by kind and split", box=box.SIMPLE_HEAD, title_justify="left")
    t.add_column("kind")
    for s in splits:
        t.add_column(s, justify="right")
    t.add_column("all", justify="right")
    for kind, n in c["by_kind"].items():
        per = c["by_kind_and_split"].get(kind, {})
        t.add_row(kind, *(str(per.get(s, 0)) for s in splits), str(n))
    t.add_row("all", *(str(c["by_split"][s]) for s in splits), str(report["items"]))
    console.print(t)

    t = Table(title="Items by step", box=box.SIMPLE_HEAD, title_justify="left")
    t.add_column("step")
    t.add_column("items", justify="right")
    for step, n in c["by_step"].items():
        t.add_row(step, str(n))
    console.print(t)

    t = Table(
        title="Metadata (told: from tags, sidecars, you or the source; estimated: measured)",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    for col, just in (
        ("field", "left"),
        ("items", "right"),
        ("told", "right"),
        ("estimated", "right"),
        ("values", "left"),
    ):
        t.add_column(col, justify=just)
    for name, f in report["fields"].items():
        if "values" in f:
            vals = list(f["values"].items())
            shown = ", ".join(f"{v} {n}" for v, n in vals[:TOP_VALUES])
            if len(vals) > TOP_VALUES:
                shown += f", … ({len(vals) - TOP_VALUES} more)"
        else:
            shown = f"{f['distinct']} distinct" if f["items"] else ""
        t.add_row(name, str(f["items"]), str(f["told"]), str(f["estimated"]), shown)
    console.print(t)

    d = report["duplicates"]
    exact = d["exact"]
    if exact:
        console.print(
            f"Exact duplicates: {common.plural(len(exact), 'set')} of items with the same file"
        )
        t = Table(box=box.SIMPLE_HEAD)
        t.add_column("content")
        t.add_column("items", overflow="fold")
        for e in exact[:MAX_ROWS]:
            t.add_row(e["hash"][:12], "\n".join(i["path"] for i in e["items"]))
        console.print(t)
    else:
        console.print("Exact duplicates: none")
    if "near" not in d:
        console.print("Near-duplicates: not searched (--no-near)")
        return
    near = d["near"]
    m = d["method"]
    how = (
        f"chroma of the first {m['seconds']:g} s, offsets up to ±{m['max_shift_s']:g} s"
        + (", any transposition" if m["transpose"] else "")
        + f", similarity ≥ {m['threshold']:g}"
    )
    if near:
        console.print(
            f"Near-duplicates: {common.plural(len(near), 'pair')} ({how}; offset: how much "
            "later the music comes in the second; semitones: how far above the first it is)"
        )
        t = Table(box=box.SIMPLE_HEAD)
        for col, just in (
            ("similarity", "right"),
            ("first", "left"),
            ("second", "left"),
            ("offset", "right"),
            ("semitones", "right"),
        ):
            t.add_column(col, justify=just, overflow="fold")
        for p in near[:MAX_ROWS]:
            t.add_row(
                f"{p['similarity']:.3f}",
                p["a"]["path"],
                p["b"]["path"],
                f"{p['offset_s']:+g} s",
                f"{p['semitones']:+d}" if p["semitones"] else "",
            )
        console.print(t)
        if len(near) > MAX_ROWS:
            console.print(f"… and {len(near) - MAX_ROWS} more pairs (--json lists them all)")
    else:
        console.print(
            f"Near-duplicates: none ({how}; "
            f"{common.plural(d['fingerprinted'], 'audio or MIDI item')} fingerprinted)"
        )
    if d["not_fingerprinted"]:
        console.print(f"Not compared ({len(d['not_fingerprinted'])}):")
        for f in d["not_fingerprinted"][:MAX_ROWS]:
            console.print(f"  {f['path']}: {f['reason']}")
