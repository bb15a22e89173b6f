"""``disco-musica soundfonts``: the General MIDI SoundFonts known, and ``get`` for one.

    disco-musica soundfonts                          # name, installed or not, path, size, licence
    disco-musica soundfonts --json
    disco-musica soundfonts get GeneralUser_GS       # shows size, sha256, licence; asks first
    disco-musica soundfonts get MuseScore_General --yes

The catalogue, the ranking that picks the default and the checked download are in
`engine.audio.soundfonts`; this module only prints and asks.
"""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli import common
from engine.cli import progress as ui


def add_commands(sub, command) -> None:
    """Register ``soundfonts`` and ``soundfonts get``."""
    p = command(
        sub,
        "soundfonts",
        cmd_soundfonts,
        "list the General MIDI SoundFonts: installed or not, where, which one is the default",
        ("soundfonts",),
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON on stdout")
    actions = p.add_subparsers(dest="soundfonts_command", metavar="ACTION")
    g = command(
        actions,
        "get",
        cmd_get,
        "download a known SoundFont from its official source into your SoundFont folder",
        ("soundfonts", "get"),
    )
    g.add_argument("name", metavar="NAME", help="MuseScore_General or GeneralUser_GS")
    g.add_argument("--yes", action="store_true", help="download without asking first")


def _mb(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / 1e6:.1f} MB"


def cmd_soundfonts(args: argparse.Namespace) -> int:
    from engine.audio import soundfonts as sf

    rows = sf.status()
    if args.json:
        print(json.dumps({"user_dir": str(sf.user_dir()), "soundfonts": rows}, indent=1))
        return 0
    print("General MIDI SoundFonts, best first (the first installed one is the default):")
    for r in rows:
        mark = "*" if r["default"] else " "
        state = "installed" if r["installed"] else "not installed"
        if r["default"]:
            state += ", the default now"
        print(f"{mark} {r['name']}: {state}")
        print(f"    {r['title']}; licence {r['licence']}")
        if r["installed"]:
            print(f"    {r['path']} ({_mb(r['size'])})")
        else:
            print(f"    {_mb(r['size'])}; {r['how_to_get']}")
        for path, why in r["unusable"]:
            print(f"    not used: {path} is {why}")
    for p in sf.others():
        print(f"  also in your SoundFont folder: {p} (use it with --soundfont {p})")
    print(f"your SoundFont folder: {sf.user_dir()}")
    print(f"pick one per command with --soundfont NAME|PATH, or for all with ${sf.ENV_DEFAULT}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from engine.audio import soundfonts as sf

    e = sf.entry(args.name)
    found = sf.locate(e)
    if found is not None:
        print(f"{e.name} is already installed: {found}")
        return 0
    if not e.url:
        raise sf.SoundFontError(f"{e.name} is not downloaded by disco-musica; {e.install}")
    target = sf.user_dir() / e.file
    print(f"{e.name}: {e.title}")
    print(f"  from     {e.url}")
    print(f"  size     {_mb(e.size)}" + (f" ({e.size:,} bytes)" if e.size else ""))
    if e.sha256:
        print(f"  sha256   {e.sha256} (checked before the file is kept)")
    else:
        print("  sha256   not known: the download cannot be checked")
    print(f"  licence  {e.licence} ({e.homepage})")
    print(f"  to       {target}")
    print(f"  note     {e.provenance}")
    sys.stdout.flush()
    if not e.sha256 and not args.yes:
        raise sf.SoundFontError(
            f"the sha256 of {e.name} is not known, so the download cannot be checked; "
            "add --yes to download it anyway"
        )
    if not args.yes:
        if not sys.stdin.isatty():
            raise common.CliError(
                "standard input is not a terminal, so nobody can answer; add --yes to download"
            )
        try:
            answer = input(f"Download {_mb(e.size)}? [y/N] ").strip().lower()
        except EOFError:
            answer = ""
        if answer not in ("y", "yes"):
            print("nothing downloaded")
            return 1
    with ui.BarProgress(e.name, kind="bytes") as progress:
        path = sf.download(e, progress=progress)
    print(f"saved {path}")
    name, _ = sf.default()
    print(f"the default SoundFont is now {name}")
    return 0
