"""``disco-musica library …``: the pieces you made, kept, found, tagged, rated and traced.

    disco-musica library list --style chorale --rating 4 --sort rating
    disco-musica library search "waltz strings"
    disco-musica library show k3f9            # an ID, the start of one, or a title
    disco-musica library tag k3f9 keep wedding ; library rate k3f9 5 ; library note k3f9 "…"
    disco-musica library collection add "for Anna" k3f9 q8d2
    disco-musica library export k3f9 q8d2 --formats mid,wav --to ~/Desktop/for-anna.zip
    disco-musica library lineage k3f9 ; library replay k3f9
    disco-musica library delete k3f9 ; library restore k3f9 ; library empty-trash --yes
    disco-musica library verify ; library import old-outputs/

The store is `engine.library.store`; export and import `engine.library.transfer`. Every
command takes ``--library PATH`` (else $DISCO_MUSICA_LIBRARY, else the user data folder) and
``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine import names
from engine.cli import common

SORTS = names.LIBRARY_SORTS


def add_commands(sub, command) -> None:
    d = command(
        sub,
        "detect",
        cmd_detect,
        "say whether files carry Disco-Musica's mark (watermark, metadata) and which piece",
        ("detect",),
    )
    d.add_argument("files", nargs="+", metavar="FILE", help="audio, MIDI or MusicXML files")
    common.add_library_option(d, keeps=False)
    d.add_argument("--json", action="store_true", help="print the findings as JSON")
    lib = command(
        sub,
        "library",
        cmd_help,
        "the pieces you made: list, search, tag, rate, export, trace and replay them",
        ("library",),
    )
    actions = lib.add_subparsers(dest="library_command", metavar="ACTION")

    def action(name: str, handler, help_text: str, json_out: bool = True):
        p = command(actions, name, handler, help_text, ("library", name))
        common.add_library_option(p, keeps=False)
        if json_out:
            p.add_argument("--json", action="store_true", help="print the result as JSON")
        return p

    p = action("list", cmd_list, "list pieces, newest first, filtered and sorted")
    _filters(p)
    p = action("search", cmd_search, "full-text search over prompt, title, tags, notes, attributes")
    p.add_argument("text", nargs="+", metavar="WORD", help='words (all must occur) or "a phrase"')
    _filters(p)
    p = action("show", cmd_show, "everything about one piece: files, record, tags, parents")
    p.add_argument("piece", metavar="ID", help="an ID, the start of one, or a title")
    p.add_argument("--record", action="store_true", help="print its whole record too")
    for name, handler, what in (
        ("tag", cmd_tag, "add tags to a piece"),
        ("untag", cmd_untag, "remove tags from a piece"),
    ):
        p = action(name, handler, what)
        p.add_argument("piece", metavar="ID")
        p.add_argument("tags", nargs="+", metavar="TAG")
    p = action("rate", cmd_rate, "rate a piece from 1 to 5 stars (0 clears the rating)")
    p.add_argument("piece", metavar="ID")
    p.add_argument("rating", type=_int, metavar="1..5")
    p = action("note", cmd_note, "write a note on a piece (an empty note clears it)")
    p.add_argument("piece", metavar="ID")
    p.add_argument("text", metavar="TEXT")
    p = action("rename", cmd_rename, "give a piece a title (titles work where IDs do)")
    p.add_argument("piece", metavar="ID")
    p.add_argument("title", metavar="TITLE")
    p = action("collection", cmd_collection, "add pieces to a collection, remove, or list")
    p.add_argument("op", choices=("add", "remove", "list"), metavar="add|remove|list")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("pieces", nargs="*", metavar="ID")
    p = action("export", cmd_export, "copy pieces to a folder or a ZIP (never replaces one)")
    p.add_argument("pieces", nargs="+", metavar="ID")
    p.add_argument("--to", required=True, metavar="FOLDER|FILE.zip")
    p.add_argument(
        "--formats", metavar="LIST", help="only these files, e.g. mid,wav,musicxml,png,pdf"
    )
    p = action("render", cmd_render, "draw a piece: piano roll, curves, waveform, engraved score")
    p.add_argument("piece", metavar="ID")
    p.add_argument(
        "--formats", default="png", metavar="LIST", help="png, svg and/or pdf (default png)"
    )
    p.add_argument("--to", metavar="FOLDER", help="write them there (default: beside its files)")
    p = action("delete", cmd_delete, f"move pieces to the trash ({_days()} to restore them)")
    p.add_argument("pieces", nargs="+", metavar="ID")
    p = action("restore", cmd_restore, "take pieces back out of the trash")
    p.add_argument("pieces", nargs="+", metavar="ID")
    p = action("empty-trash", cmd_empty_trash, "erase the pieces in the trash now")
    p.add_argument("--yes", action="store_true", help="do not ask first")
    action("verify", cmd_verify, "re-hash every file; report missing or changed ones; repair")
    p = action("lineage", cmd_lineage, "the family tree of a piece and what changed at each step")
    p.add_argument("piece", metavar="ID")
    p = action("replay", cmd_replay, "make a piece again and check that the files are the same")
    p.add_argument("piece", metavar="ID")
    p.add_argument("--out", metavar="DIR", help="where to write it (default disco-musica-output/)")
    p = action("import", cmd_import, "take in generation folders and MIDI sidecars made before")
    p.add_argument("folders", nargs="+", metavar="FOLDER")
    p = action("backup", cmd_backup, "copy the database to a new file (never overwrites one)")
    p.add_argument("file", metavar="FILE")
    action("path", cmd_path, "print where the library is")


def _days() -> str:
    return f"{names.LIBRARY_TRASH_DAYS} days"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _filters(p: argparse.ArgumentParser) -> None:
    f = p.add_argument_group("filters")
    f.add_argument("--style", help="chorale, waltz, jazz, …")
    f.add_argument("--key", help="the tonic: C, F#, Bb, …")
    f.add_argument("--mode", help="major or minor")
    f.add_argument("--meter", help="4/4, 3/4, 6/8, …")
    f.add_argument("--tempo", metavar="MIN-MAX", help="BPM range, e.g. 60-90 (or 120 exactly)")
    f.add_argument("--instrument", help="a part's name, e.g. Cello or Soprano")
    f.add_argument("--model", help="a model name, or the start of its weights' sha256")
    f.add_argument(
        "--rating", type=_int, metavar="N", help="at least N stars (1..5; default: any rating)"
    )
    f.add_argument("--tag")
    f.add_argument("--collection")
    f.add_argument("--operation", help="generate, harmonize, sketch, accompany, …")
    f.add_argument("--since", metavar="DATE", help="made on or after (2026-12-01, or 7d)")
    f.add_argument("--until", metavar="DATE", help="made before (2026-12-06)")
    f.add_argument("--trash", action="store_true", help="list the deleted pieces instead")
    o = p.add_argument_group("order")
    o.add_argument("--sort", choices=SORTS, default="created", help="default: newest first")
    o.add_argument("--reverse", action="store_true", help="the other way round")
    o.add_argument("--limit", type=_int, default=names.LIBRARY_DEFAULT_LIMIT, help="0 for no limit")


# ---- opening ---------------------------------------------------------------------------------
def open_library(args: argparse.Namespace, *, write: bool = True):
    from engine.library.store import Library

    return Library.open(getattr(args, "library", None), write=write)


def _date(text: str, flag: str) -> float:
    from engine.library.store import parse_moment

    return parse_moment(text, flag)


def _tempo(text: str | None) -> tuple[float | None, float | None]:
    from engine.library.store import parse_tempo_range

    return parse_tempo_range(text, "--tempo") if text else (None, None)


def _filter_args(args: argparse.Namespace) -> dict:
    if args.limit < 0:
        raise common.CliError("--limit must be 0 (no limit) or more")
    lo, hi = _tempo(args.tempo)
    if args.rating is not None:
        from engine.library.store import check_rating

        check_rating(args.rating)
    return {
        "style": args.style,
        "key": args.key,
        "mode": args.mode,
        "meter": args.meter,
        "tempo_min": lo,
        "tempo_max": hi,
        "instrument": args.instrument,
        "model": args.model,
        "min_rating": args.rating,
        "tag": args.tag,
        "collection": args.collection,
        "operation": args.operation,
        "since": _date(args.since, "--since") if args.since else None,
        "until": _date(args.until, "--until") if args.until else None,
        "trash": args.trash,
        "sort": args.sort,
        "reverse": args.reverse,
        "limit": args.limit or None,
    }


# ---- printing --------------------------------------------------------------------------------
def _stars(rating: int | None) -> str:
    return "★" * rating + "·" * (names.MAX_RATING - rating) if rating else "·" * names.MAX_RATING


def _facts(p) -> str:
    key = " ".join(x for x in (p.key, p.mode) if x)
    tempo = f"{p.tempo:.0f} BPM" if p.tempo else ""
    return ", ".join(x for x in (p.style, key, p.meter, tempo) if x)


def _print_table(pieces, total_hint: str = "") -> None:
    if not pieces:
        print("no pieces" + total_hint)
        return
    for p in pieces:
        when = (p.created or "")[:10]
        tags = f"  #{' #'.join(p.tags)}" if p.tags else ""
        status = "" if p.status == "ok" else f"  [{p.status}]"
        print(f"{p.id}  {_stars(p.rating)}  {when}  {p.title[:48]:48}  {_facts(p)}{tags}{status}")


def _json(obj) -> None:
    print(json.dumps(obj, indent=1, ensure_ascii=False))


# ---- commands --------------------------------------------------------------------------------
def cmd_detect(args: argparse.Namespace) -> int:
    """Exit 0 when every file is ours, 1 when one is not, 2 for a file that cannot be read."""
    from engine.library.marks import inspect_file
    from engine.library.store import Library, default_path

    root = Path(args.library).expanduser() if args.library else default_path()
    if args.library:  # asked for: it must be a library
        lib = Library.open(root, write=False)
    else:  # the default one, where there is one
        lib = Library.open(root, write=False) if (root / "library.db").is_file() else None
    try:
        found = [inspect_file(f, lib) for f in args.files]
    finally:
        if lib is not None:
            lib.close()
    if args.json:
        _json([f.to_dict() for f in found])
    for f in found if not args.json else []:
        if not f.ours:
            score = f" (watermark score {f.score:g})" if f.score is not None else ""
            print(f"{f.file}: no Disco-Musica mark found{score}")
            continue
        how = []
        if f.watermark:
            how.append(f"watermark {f.mark} (score {f.score:g})")
        if f.statement:
            how.append(f"metadata: {f.statement!r}")
        print(f"{f.file}: made with Disco-Musica — " + "; ".join(how or ["kept in the library"]))
        for p in f.pieces:
            print(f"  in the library: {p['id']}  {p['title']}  ({p['how']})")
        if not f.pieces and lib is None:
            print(f"  (no library at {root} to look it up in)")
    return 0 if all(f.ours for f in found) else 1


def cmd_help(args: argparse.Namespace) -> int:
    args.parser.print_help()
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    filters = _filter_args(args)  # checked before the library is opened
    with open_library(args, write=False) as lib:
        pieces = lib.list(**filters)
        if args.json:
            _json([p.to_dict() for p in pieces])
        else:
            _print_table(pieces, ' (make one with `disco-musica generate "…"`)')
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    filters = _filter_args(args)
    text = " ".join(args.text)
    if not text.strip():
        raise common.CliError("give words to search for")
    with open_library(args, write=False) as lib:
        pieces = lib.search(text, **filters)
        if args.json:
            _json([p.to_dict() for p in pieces])
        else:
            _print_table(pieces, f" match {' '.join(args.text)!r}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_library(args, write=False) as lib:
        piece = lib.get(args.piece, include_deleted=True)
        record = lib.record(piece.id)
        if args.json:
            _json(piece.to_dict(record=record if args.record else None))
            return 0
        print(f"{piece.id}  {piece.title}")
        rows = [
            ("made by", piece.operation + ("" if piece.seed is None else f", seed {piece.seed}")),
            ("prompt", piece.prompt),
            ("music", _facts(piece) + (f", {piece.bars} bars" if piece.bars else "")),
            ("parts", ", ".join(piece.instruments)),
            ("model", " ".join(x for x in (piece.model, (piece.model_sha256 or "")[:12]) if x)),
            ("rating", _stars(piece.rating) if piece.rating else "not rated"),
            ("tags", ", ".join(piece.tags)),
            ("collections", ", ".join(piece.collections)),
            ("note", piece.note),
            ("made", f"{piece.created} with disco-musica {piece.version}"),
            ("parents", ", ".join(f"{i} ({r})" for i, r in piece.parents)),
            ("folder", str(lib.folder_path(piece))),
            ("written to", piece.origin),
            ("status", piece.status if piece.deleted is None else "in the trash"),
        ]
        for label, value in rows:
            if value:
                print(f"  {label:12} {value}")
        print("  files:")
        for f in piece.files:
            mark = f"  mark {f.mark}" if f.mark else ""
            print(f"    {f.name:28} {f.bytes:>10,} bytes  sha256 {f.sha256[:16]}…{mark}")
        if args.record:
            _json(record)
    return 0


def _changed(args, piece, what: str) -> int:
    if args.json:
        _json(piece.to_dict())
    else:
        print(f"{piece.id} ({piece.title}): {what}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    with open_library(args) as lib:
        piece = lib.tag(args.piece, args.tags)
        return _changed(args, piece, "tags " + ", ".join(piece.tags))


def cmd_untag(args: argparse.Namespace) -> int:
    with open_library(args) as lib:
        piece = lib.tag(args.piece, args.tags, remove=True)
        return _changed(args, piece, "tags " + (", ".join(piece.tags) or "none"))


def cmd_rate(args: argparse.Namespace) -> int:
    with open_library(args) as lib:
        piece = lib.rate(args.piece, None if args.rating == 0 else args.rating)
        status = _changed(
            args, piece, f"rated {_stars(piece.rating)}" if piece.rating else "unrated"
        )
    if piece.rating:  # models that adapt by themselves (`adapt NAME --auto N`) may be due
        from engine.cli.adapt import after_rating

        after_rating(args.library, background=True)
    return status


def cmd_note(args: argparse.Namespace) -> int:
    with open_library(args) as lib:
        piece = lib.set_note(args.piece, args.text)
        return _changed(args, piece, "note kept" if piece.note else "note cleared")


def cmd_rename(args: argparse.Namespace) -> int:
    with open_library(args) as lib:
        piece = lib.rename(args.piece, args.title)
        return _changed(args, piece, "renamed")


def cmd_collection(args: argparse.Namespace) -> int:
    with open_library(args) as lib:
        if args.op == "list":
            if args.name:  # the pieces of one collection
                pieces = lib.list(collection=args.name, limit=None)
                if not pieces and args.name not in [c for c, _ in lib.collections()]:
                    raise common.CliError(f"no collection {args.name!r}")
                if args.json:
                    _json([p.to_dict() for p in pieces])
                else:
                    _print_table(pieces, f" in {args.name!r}")
                return 0
            cols = lib.collections()
            if args.json:
                _json([{"name": c, "pieces": k} for c, k in cols])
            elif not cols:
                print("no collections (make one with `library collection add NAME ID…`)")
            for c, k in cols if not args.json else []:
                print(f"{c}  ({common.plural(k, 'piece')})")
            return 0
        if not args.name or not args.pieces:
            raise common.CliError(f"collection {args.op} needs a NAME and at least one ID")
        if args.op == "add":
            pieces = lib.collection_add(args.name, args.pieces)
        else:
            pieces = lib.collection_remove(args.name, args.pieces)
        if args.json:
            _json([p.to_dict() for p in pieces])
        else:
            done = "added to" if args.op == "add" else "removed from"
            print(f"{common.plural(len(pieces), 'piece')} {done} {args.name!r}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from engine.library import transfer

    formats = common.split_list(args.formats) if args.formats is not None else None
    transfer.check_formats(formats)
    with open_library(args, write=False) as lib:
        written = transfer.export(
            lib, args.pieces, args.to, formats=formats, pictures=_pictures_function()
        )
    if args.json:
        _json({"written": [str(w) for w in written]})
    else:
        for w in written:
            print(f"wrote {common.shown_path(w)}")
    return 0


def _pictures_function():
    try:
        from engine.library import pictures
    except ImportError:
        return None
    return getattr(pictures, "render_pictures", None)


def cmd_render(args: argparse.Namespace) -> int:
    """The pictures of a piece, beside its files in the library (listed with them, so export
    and verify know them) or in ``--to FOLDER``."""
    import tempfile

    from engine.library.pictures import check_formats, render_pictures

    formats = check_formats(common.split_list(args.formats))
    with open_library(args, write=args.to is None) as lib:
        piece = lib.get(args.piece)
        folder = lib.folder_path(piece)
        music = (*names.MIDI_SUFFIXES, ".musicxml", ".xml", ".mxl", *names.AUDIO_SUFFIXES)
        sources = [folder / f.name for f in piece.files if Path(f.name).suffix.lower() in music]
        if not sources:
            raise common.CliError(f"{piece.id} has no MIDI, MusicXML or audio file to draw")
        if args.to:
            to = Path(args.to).expanduser()
            if not to.is_dir():
                raise common.CliError(f"--to {to} is not a folder; create it first")
            written = render_pictures(sources, formats, to, title=piece.title)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                made = render_pictures(sources, formats, Path(tmp), title=piece.title)
                piece = lib.add_files(piece.id, {p.name: p for p in made})
                written = [folder / p.name for p in made]
    if args.json:
        _json({"id": piece.id, "written": [str(w) for w in written]})
    else:
        for w in written:
            print(f"wrote {common.shown_path(w)}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with open_library(args) as lib:
        pieces = [lib.delete(r) for r in _unique_refs(lib, args.pieces)]
    if args.json:
        _json([p.to_dict() for p in pieces])
    else:
        for p in pieces:
            print(f"{p.id} ({p.title}) is in the trash: `library restore {p.id}` within {_days()}")
    return 0


def _unique_refs(lib, refs: list[str], include_deleted: bool = False) -> list[str]:
    """Resolve every reference first (an unknown one changes nothing), each once."""
    ids = [lib.get(r, include_deleted=include_deleted).id for r in refs]
    return list(dict.fromkeys(ids))


def cmd_restore(args: argparse.Namespace) -> int:
    with open_library(args) as lib:
        pieces = [lib.restore(r) for r in _unique_refs(lib, args.pieces, include_deleted=True)]
    if args.json:
        _json([p.to_dict() for p in pieces])
    else:
        for p in pieces:
            print(f"{p.id} ({p.title}) restored")
    return 0


def cmd_empty_trash(args: argparse.Namespace) -> int:
    with open_library(args) as lib:
        n = lib.count(trash=True)
        if n and not args.yes:
            if not sys.stdin.isatty():
                raise common.CliError(
                    f"this erases {common.plural(n, 'piece')} for good; add --yes to confirm"
                )
            answer = input(f"Erase {common.plural(n, 'piece')} in the trash for good? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing erased")
                return 0
        ids = lib.empty_trash()
    if args.json:
        _json({"erased": ids})
    else:
        print(f"erased {common.plural(len(ids), 'piece')}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with open_library(args) as lib:
        report = lib.verify()
    if args.json:
        _json(report)
    else:
        for line in report["repaired"]:
            print(f"repaired: {line}")
        for p in report["problems"]:
            who = p["id"] or "?"
            print(f"{p['problem']}: {who} {p['file']}")
        print(
            f"checked {common.plural(report['checked'], 'piece')}: {report['ok']} whole, "
            f"{len(report['problems'])} problem{'s' if len(report['problems']) != 1 else ''}"
        )
    return 0 if not report["problems"] else 1


def cmd_lineage(args: argparse.Namespace) -> int:
    with open_library(args, write=False) as lib:
        tree = lib.lineage(args.piece)
    if args.json:
        _json(tree)
        return 0
    for root in tree["roots"]:
        _print_node(root, tree["focus"], "", True, top=True)
    return 0


def _print_node(node: dict, focus: str, indent: str, last: bool, top: bool = False) -> None:
    here = "▶ " if node["id"] == focus else ""
    gone = " (in the trash)" if node["deleted"] else ""
    how = f"{node['relation']}: " if node["relation"] else ""
    branch = "" if top else ("└─ " if last else "├─ ")
    print(f"{indent}{branch}{here}{node['id']}  {how}{node['title']}{gone}")
    child_indent = indent + ("" if top else ("   " if last else "│  "))
    for change in node["changes"]:
        print(f"{child_indent}     {change}")
    kids = node["children"]
    for i, kid in enumerate(kids):
        _print_node(kid, focus, child_indent, i == len(kids) - 1)


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay a piece of the library into a new folder (or MIDI file), with its inputs found
    in the library by sha256 when they are no longer where they were; the new piece is kept
    as a replay of the old one."""
    from engine.library.store import keep_pieces
    from engine.record import add_publish_hook

    with open_library(args) as lib:
        piece = lib.get(args.piece, include_deleted=True)
        record = lib.record(piece.id)
        folder = lib.folder_path(piece)
        kept: list = []
        remove = add_publish_hook(keep_pieces(lib, kept))
        try:
            if (folder / names.GENERATION_FILE).is_file():
                code = _replay_folder(args, lib, piece, record, folder)
            else:
                code = _replay_midi(args, lib, piece, record)
        finally:
            remove()
        for new in kept:
            lib.link(new.id, piece.id, "replay")
            if not args.json:
                print(f"kept in the library as {new.id} (a replay of {piece.id})")
    return code


def _local_inputs(lib, record: dict) -> dict[str, str]:
    """{recorded input path: a file with its sha256 here} for inputs that are gone."""
    found: dict[str, str] = {}
    nodes = [record.get("input")]
    if isinstance(record.get("inputs"), dict):
        nodes += list(record["inputs"].values())
    for node in nodes:
        if not isinstance(node, dict) or not isinstance(node.get("path"), str):
            continue
        if Path(node["path"]).is_file() or not isinstance(node.get("sha256"), str):
            continue
        here = lib.find_file(node["sha256"])
        if here is None:
            raise common.CliError(
                f"the input {node['path']} is gone and no file of the library has its "
                "content (sha256); put it back to replay this piece"
            )
        found[node["path"]] = str(here)
    return found


def _replay_folder(args, lib, piece, record: dict, folder: Path) -> int:
    import tempfile

    from engine.cli import generate as cli_generate
    from engine.library.transfer import slug
    from engine.record import DEFAULT_ROOT, plan_dirs, unique_folder

    out = Path(args.out).expanduser() if args.out else None
    if out is None:
        plan_dirs(DEFAULT_ROOT)
        out = unique_folder(DEFAULT_ROOT, f"{slug(piece.title)}-{piece.id}-replay")
    moved = _local_inputs(lib, record)
    with tempfile.TemporaryDirectory() as tmp:
        source = folder / names.GENERATION_FILE
        if moved:  # the same record, pointing at the inputs where they are now
            patched = json.loads(json.dumps(record))
            for node in [patched.get("input"), *(patched.get("inputs") or {}).values()]:
                if isinstance(node, dict) and node.get("path") in moved:
                    node["path"] = moved[node["path"]]
            request = patched.get("request")
            if isinstance(request, dict) and request.get("input") in moved:
                request["input"] = moved[request["input"]]
            source = Path(tmp) / names.GENERATION_FILE
            source.write_text(json.dumps(patched))
        ns = argparse.Namespace(record=str(source), out=str(out), overwrite=False, json=args.json)
        return cli_generate.cmd_replay(ns)


def _replay_midi(args, lib, piece, record: dict) -> int:
    """A MIDI command's piece: its recorded command again, into a new MIDI file."""
    import hashlib

    from engine.cli import build_parser
    from engine.library.transfer import slug
    from engine.record import DEFAULT_ROOT, make_dirs

    words = record.get("args")
    midi = record.get("midi") or {}
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise common.CliError(f"{piece.id}: its record has no command to run again")
    moved = _local_inputs(lib, record)
    recorded_input = (record.get("input") or {}).get("path")
    if recorded_input in moved:
        name = Path(recorded_input).name
        words = [moved[recorded_input] if Path(w).name == name else w for w in words]
    out = Path(args.out).expanduser() if args.out else None
    if out is None or out.is_dir():
        base = out or DEFAULT_ROOT
        make_dirs(base)
        out = base / f"{slug(piece.title)}-{piece.id}-replay.mid"
    if out.exists():
        raise common.CliError(f"{out} exists; give a new --out")
    parser = build_parser()
    again = parser.parse_args([*words, "--out", str(out)])
    code = again.handler(again) or 0
    if code:
        return code
    same = hashlib.sha256(out.read_bytes()).hexdigest() == midi.get("sha256")
    if args.json:
        _json({"written": str(out), "identical": {midi.get("file"): same}})
    else:
        print(f"{midi.get('file')}: {'identical' if same else 'DIFFERENT'}")
    return 0 if same else 1


def cmd_import(args: argparse.Namespace) -> int:
    from engine.library import transfer

    def say(path: str, piece, why: str | None) -> None:
        if args.json:
            return
        if piece is not None:
            print(f"added {piece.id}  {piece.title}  ({path})")
        else:
            print(f"skipped {path}: {why}")

    with open_library(args) as lib:
        report = transfer.import_folders(lib, args.folders, on_piece=say)
    if args.json:
        _json(report.to_dict())
    else:
        print(
            f"imported {common.plural(len(report.added), 'piece')}, skipped {len(report.skipped)}"
        )
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    with open_library(args) as lib:
        to = lib.backup(args.file)
    if args.json:
        _json({"backup": str(to)})
    else:
        print(
            f"wrote {common.shown_path(to)} (restore: copy it over library.db while no "
            "disco-musica runs)"
        )
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    from engine.library.store import default_path

    path = Path(args.library).expanduser() if args.library else default_path()
    if args.json:
        _json({"library": str(path.absolute())})
    else:
        print(path.absolute())
    return 0
