"""The Library screen: the pieces you made, found, sorted, rated, tagged, traced and replayed.

The filters are those of ``disco-musica library list`` (`filters_from` reads them from the
text fields, one line of explanation for a bad value); the table sorts like ``--sort``; the
details pane shows a piece's files, record and family tree (`engine.library.store.Library.
lineage`). Quick reads and changes open the library on the app's thread for one action;
replay, export and watermark detection run in a worker thread and post `tui.messages`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import (
    Checkbox,
    Collapsible,
    DataTable,
    Input,
    ProgressBar,
    Static,
    Tree,
)
from textual.worker import Worker, WorkerState, get_current_worker

from tui.messages import WorkDone, WorkFailed, WorkProgress
from tui.screens import ScreenEntry
from tui.screens._base import StudioScreen

SORTS = ("created", "rating", "title", "tempo", "key", "style", "id")  # names.LIBRARY_SORTS
TABLE_LIMIT = 500
DEBOUNCE_S = 0.3
MAX_RATING = 5

# (field id, placeholder) of the filter fields, in the order of `library list`'s options.
FILTER_FIELDS = (
    ("style", "style"),
    ("key", "key (G, F#)"),
    ("mode", "mode"),
    ("meter", "meter (3/4)"),
    ("tempo", "tempo 60-90"),
    ("instrument", "instrument"),
    ("model", "model"),
    ("rating", "rating ≥ N"),
    ("tag", "tag"),
    ("collection", "collection"),
    ("operation", "operation"),
    ("since", "since 7d / date"),
    ("until", "until date"),
)
TEXT_FILTERS = ("style", "key", "mode", "meter", "instrument", "model", "tag", "collection")


class FilterError(ValueError):
    """A filter value that cannot be used, in one line that says what to type."""


def _when(text: str, name: str) -> float:
    from engine.errors import LibraryError
    from engine.library.store import parse_moment

    try:
        return parse_moment(text, name)
    except LibraryError as e:
        raise FilterError(str(e)) from None


def _tempo(text: str) -> tuple[float | None, float | None]:
    from engine.errors import LibraryError
    from engine.library.store import parse_tempo_range

    try:
        return parse_tempo_range(text, "tempo")
    except LibraryError as e:
        raise FilterError(str(e)) from None


def filters_from(values: dict[str, str], *, trash: bool = False) -> dict[str, Any]:
    """The keyword arguments of `Library.list` for the text of the filter fields (empty ones
    are left out). Raises `FilterError` in one line for a value that cannot be used."""
    v = {k: (values.get(k) or "").strip() for k, _ in FILTER_FIELDS}
    out: dict[str, Any] = {k: v[k] or None for k in TEXT_FILTERS}
    out["operation"] = v["operation"] or None
    if v["tempo"]:
        out["tempo_min"], out["tempo_max"] = _tempo(v["tempo"])
    if v["rating"]:
        try:
            rating = int(v["rating"])
        except ValueError:
            raise FilterError(
                f"rating {v['rating']!r} is not a whole number; type 1 to 5"
            ) from None
        if not 1 <= rating <= MAX_RATING:
            raise FilterError(f"rating {rating} is out of range; type 1 to 5 (at least N stars)")
        out["min_rating"] = rating
    if v["since"]:
        out["since"] = _when(v["since"], "since")
    if v["until"]:
        out["until"] = _when(v["until"], "until")
    out["trash"] = trash
    return out


def stars(rating: int | None) -> str:
    return "★" * (rating or 0) + "·" * (MAX_RATING - (rating or 0))


def human_bytes(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _facts(p) -> str:
    key = " ".join(x for x in (p.key, p.mode) if x)
    tempo = f"{p.tempo:.0f} BPM" if p.tempo else ""
    return ", ".join(x for x in (p.style, key, p.meter, tempo) if x)


class LibraryScreen(StudioScreen):
    """Find a piece, see everything about it, and act on it by key."""

    NAME = "library"
    DEFAULT_CSS = """
    LibraryScreen #lib-main { height: 1fr; }
    LibraryScreen #lib-left { width: 3fr; }
    LibraryScreen #lib-right { width: 2fr; border-left: solid $primary; padding: 0 1; }
    LibraryScreen #filters { height: auto; }
    LibraryScreen .filters { grid-size: 4; grid-rows: 3; height: auto; }
    LibraryScreen .filters Input { width: 1fr; }
    LibraryScreen .filters Checkbox { width: 1fr; }
    LibraryScreen #filter-msg { height: 1; color: $error; }
    LibraryScreen #sort-line { height: 1; color: $text-muted; }
    LibraryScreen #pieces { height: 1fr; }
    LibraryScreen #lineage { height: auto; max-height: 12; }
    LibraryScreen #job-line { height: auto; }
    LibraryScreen #job-bar { display: none; }
    LibraryScreen #job-bar.busy { display: block; }
    """
    BINDINGS = [
        Binding("slash", "focus_search", "Search"),
        Binding("f", "toggle_filters", "Filters"),
        Binding("escape", "escape", "Cancel the job / back to the table", show=False),
        Binding("1", "rate(1)", "Rate 1-5 (0 clears)", key_display="0-5"),
        *[Binding(str(n), f"rate({n})", f"Rate {n} stars", show=False) for n in range(2, 6)],
        Binding("0", "rate(0)", "Clear the rating", show=False),
        Binding("t", "tag", "Tag"),
        Binding("n", "note", "Note"),
        Binding("r", "rename", "Rename"),
        Binding("c", "collection", "Add to collection"),
        Binding("p", "replay", "Replay"),
        Binding("e", "export", "Export"),
        Binding("d", "delete", "Delete"),
        Binding("u", "restore", "Restore"),
        Binding("w", "detect", "Detect mark"),
        Binding("W", "detect_file", "Detect mark of a file", show=False),
        Binding("o", "open_folder", "Open folder"),
        Binding("s", "next_sort", "Sort"),
        Binding("v", "reverse_sort", "Reverse", show=False),
        Binding("x", "toggle_trash", "Trash view", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="library")
        self.sort = "created"
        self.reverse = False
        self.selected_id: str | None = None
        self.shown_ids: list[str] = []
        self.filter_problem: str | None = None
        self._debounce: Timer | None = None
        self._pending: str | None = None  # show_piece before the screen was mounted

    # -- layout --
    def compose_body(self):
        with Horizontal(id="lib-main"):
            with Vertical(id="lib-left"):
                yield Input(
                    placeholder="search: words of the prompt, title, tags, notes  (/)",
                    id="search",
                )
                fields = [f for f, _ in FILTER_FIELDS]
                placeholders = dict(FILTER_FIELDS)
                with Collapsible(title="Filters (f)", collapsed=True, id="filters"):
                    with Grid(classes="filters"):
                        for f in fields:
                            yield Input(placeholder=placeholders[f], id=f"f-{f}")
                        yield Checkbox("Trash", id="f-trash")
                yield Static("", id="filter-msg")
                yield Static("", id="sort-line")
                yield DataTable(id="pieces", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="lib-right"):
                yield Static("", id="details")
                yield Tree("lineage", id="lineage")
                yield Static("", id="job-line")
                yield ProgressBar(id="job-bar", show_eta=False)

    def on_mount(self) -> None:
        table = self.query_one("#pieces", DataTable)
        for label, key in (
            ("ID", "id"),
            ("Rating", "rating"),
            ("Created", "created"),
            ("Title", "title"),
            ("Style", "style"),
            ("Key", "key"),
            ("Tempo", "tempo"),
            ("Tags", "tags"),
        ):
            table.add_column(label, key=key)
        self.query_one("#lineage", Tree).show_root = False
        self.reload()
        table.focus()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._show_piece(pending)

    def action_toggle_filters(self) -> None:
        box = self.query_one("#filters", Collapsible)
        box.collapsed = not box.collapsed
        if not box.collapsed:
            self.query_one(".filters Input", Input).focus()
        self.app.announce("filters shown" if not box.collapsed else "filters hidden")

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.reload()

    # -- the library --
    @property
    def library_path(self) -> Path:
        path = getattr(self.app, "library_path", None)
        if path is not None:
            return Path(path)
        from engine.library.store import default_path

        return default_path()

    @contextlib.contextmanager
    def _library(self, write: bool = False):
        from engine.library.store import Library

        lib = Library.open(self.library_path, write=write)
        try:
            yield lib
        finally:
            lib.close()

    def _has_library(self) -> bool:
        return (self.library_path / "library.db").is_file()

    def _guard(self, fn: Callable[[], Any]) -> Any:
        """Run one quick library action here; a problem the user can act on is a modal."""
        from tui.jobs import user_message

        try:
            return fn()
        except Exception as e:
            message = user_message(e)
            if message is None:
                raise
            self.app.show_error(message)
            return None

    # -- the table --
    def filter_values(self) -> dict[str, str]:
        return {f: self.query_one(f"#f-{f}", Input).value for f, _ in FILTER_FIELDS}

    @property
    def trash(self) -> bool:
        return self.query_one("#f-trash", Checkbox).value

    def reload(self) -> None:
        """Fill the table again from the library (the filters, search text and sort now)."""
        message = self.query_one("#filter-msg", Static)
        try:
            filters = filters_from(self.filter_values(), trash=self.trash)
        except FilterError as e:
            self.filter_problem = str(e)
            message.update(str(e))
            self.announce(str(e))
            return
        self.filter_problem = None
        message.update("")
        text = self.query_one("#search", Input).value.strip()
        pieces: list = []
        if self._has_library():
            from engine.errors import UserError

            try:
                with self._library() as lib:
                    filters.update(sort=self.sort, reverse=self.reverse, limit=TABLE_LIMIT)
                    pieces = lib.search(text, **filters) if text else lib.list(**filters)
            except UserError as e:
                from engine.errors import one_line

                self.filter_problem = one_line(e)
                message.update(self.filter_problem)
                self.announce(self.filter_problem)
                return
        self._fill(pieces)

    def _fill(self, pieces: list) -> None:
        table = self.query_one("#pieces", DataTable)
        keep = self.selected_id
        table.clear()
        for p in pieces:
            table.add_row(
                p.id,
                stars(p.rating),
                (p.created or "")[:10],
                p.title[:30],
                p.style or "",
                " ".join(x for x in (p.key, p.mode) if x),
                f"{p.tempo:.0f}" if p.tempo else "",
                ", ".join(p.tags),
                key=p.id,
            )
        self.shown_ids = [p.id for p in pieces]
        order = "reversed" if self.reverse else "usual order"
        where = "trash" if self.trash else "library"
        self.query_one("#sort-line", Static).update(
            f"{len(pieces)} piece{'s' if len(pieces) != 1 else ''} in the {where}; "
            f"sorted by {self.sort} ({order}) — s: next sort, v: reverse, click a heading"
        )
        if keep in self.shown_ids:
            table.move_cursor(row=self.shown_ids.index(keep))
        elif self.shown_ids:
            table.move_cursor(row=0)
        self._select(self.shown_ids[table.cursor_row] if self.shown_ids else None)

    @on(DataTable.RowHighlighted, "#pieces")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != event.data_table.cursor_row:
            return  # stale: the table was filled again and its cursor moved since
        piece_id = event.row_key.value if event.row_key is not None else None
        if piece_id != self.selected_id:
            self._select(piece_id)

    @on(DataTable.HeaderSelected, "#pieces")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key not in SORTS:
            return
        self.set_sort(key, not self.reverse if key == self.sort else False)

    def set_sort(self, sort: str, reverse: bool = False) -> None:
        """Sort the table by ``sort`` (one of `SORTS`), the other way round if ``reverse``."""
        if sort not in SORTS:
            raise ValueError(f"unknown sort {sort!r}")
        self.sort, self.reverse = sort, reverse
        self.reload()
        self.announce(f"sorted by {sort}{', reversed' if reverse else ''}")

    def action_next_sort(self) -> None:
        self.set_sort(SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)])

    def action_reverse_sort(self) -> None:
        self.set_sort(self.sort, not self.reverse)

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        if event.input.id == "search" or (event.input.id or "").startswith("f-"):
            if self._debounce is not None:
                self._debounce.stop()
            self._debounce = self.set_timer(DEBOUNCE_S, self.reload)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self.reload()
        self.action_focus_table()

    @on(Checkbox.Changed, "#f-trash")
    def _trash_changed(self, event: Checkbox.Changed) -> None:
        self.reload()
        self.announce("showing the trash" if event.value else "showing the library")

    def action_toggle_trash(self) -> None:
        box = self.query_one("#f-trash", Checkbox)
        box.value = not box.value

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one("#pieces", DataTable).focus()

    def show_piece(self, piece_id: str) -> None:
        """Show one piece (from another screen): the filters and search are cleared, the
        trash shown if the piece is there, and its row selected. Works right after
        ``app.switch_mode("library")``, before the screen is mounted."""
        if not self.is_mounted:
            self._pending = piece_id
            return
        self._show_piece(piece_id)

    def _show_piece(self, piece_id: str) -> None:
        from engine.errors import UserError

        try:
            with self._library() as lib:
                piece = lib.get(piece_id, include_deleted=True)
        except UserError as e:
            from engine.errors import one_line

            self.app.show_error(one_line(e))
            return
        for f, _ in FILTER_FIELDS:
            self.query_one(f"#f-{f}", Input).value = ""
        self.query_one("#search", Input).value = ""
        if self._debounce is not None:
            self._debounce.stop()
        box = self.query_one("#f-trash", Checkbox)
        with box.prevent(Checkbox.Changed):
            box.value = piece.deleted is not None
        self.selected_id = piece.id
        self.reload()  # (the cleared fields' Changed events reload once more, harmlessly)
        self.action_focus_table()
        self.announce(f"showing {piece.id}: {piece.title}")

    # -- the details --
    def _select(self, piece_id: str | None) -> None:
        self.selected_id = piece_id
        details = self.query_one("#details", Static)
        tree = self.query_one("#lineage", Tree)
        tree.clear()
        if piece_id is None:
            details.update(
                "No pieces here yet. Make one on the Make screen (F2)."
                if not self.trash
                else "The trash is empty."
            )
            return
        try:
            with self._library() as lib:
                piece = lib.get(piece_id, include_deleted=True)
                record = lib.record(piece.id)
                family = lib.lineage(piece.id)
                folder = lib.folder_path(piece)
        except Exception as e:
            from tui.jobs import user_message

            message = user_message(e)
            if message is None:
                raise
            details.update(message)
            return
        details.update(self._details_text(piece, record, folder))
        for root in family["roots"]:
            self._add_node(tree.root, root, family["focus"])
        tree.root.expand_all()

    def _details_text(self, piece, record: dict, folder: Path) -> Text:
        t = Text()
        t.append(piece.title + "\n", style="bold")
        gone = "  (in the trash)" if piece.deleted is not None else ""
        t.append(f"{piece.id}{gone}\n")
        rating = stars(piece.rating) if piece.rating else "not rated"
        model = record.get("model") if isinstance(record.get("model"), dict) else {}
        sha = (model.get("sha256") or "")[:12]
        rows = [
            ("rating", rating),
            ("tags", ", ".join(piece.tags) or "none"),
            ("note", piece.note or "none"),
            ("collections", ", ".join(piece.collections)),
            ("made by", piece.operation + ("" if piece.seed is None else f", seed {piece.seed}")),
            ("prompt", piece.prompt or ""),
            ("music", _facts(piece) + (f", {piece.bars} bars" if piece.bars else "")),
            ("parts", ", ".join(piece.instruments)),
            ("model", " ".join(x for x in (piece.model, sha) if x)),
            ("made", f"{piece.created or '?'} with disco-musica {piece.version or '?'}"),
            ("parents", ", ".join(f"{i} ({r})" for i, r in piece.parents)),
            ("folder", str(folder)),
        ]
        for label, value in rows:
            if value:
                t.append(f"{label:12}", style="bold")
                t.append(f"{value}\n")
        t.append("files\n", style="bold")
        for f in piece.files:
            mark = f"  mark {f.mark}" if f.mark else ""
            t.append(f"  {f.name:24} {human_bytes(f.bytes):>12}{mark}\n")
        return t

    def _add_node(self, parent, node: dict, focus: str) -> None:
        here = "▶ " if node["id"] == focus else ""
        how = f"{node['relation']}: " if node["relation"] else ""
        gone = " (in the trash)" if node["deleted"] else ""
        label = f"{here}{node['id']}  {how}{node['title']}{gone}"
        item = parent.add(label, data=node["id"], expand=True)
        for change in node["changes"]:
            item.add_leaf(change)
        for kid in node["children"]:
            self._add_node(item, kid, focus)

    def lineage_labels(self) -> list[str]:
        """The labels of the lineage tree, depth first (what the tree shows, as text)."""
        out: list[str] = []

        def walk(node) -> None:
            for child in node.children:
                out.append(str(child.label))
                walk(child)

        walk(self.query_one("#lineage", Tree).root)
        return out

    # -- acting on the selected piece --
    def _need_piece(self) -> str | None:
        if self.selected_id is None:
            self.announce("no piece is selected")
            self.app.notify("Select a piece first.", severity="warning")
        return self.selected_id

    def _change(self, fn: Callable[[Any, str], Any], said: Callable[[Any], str]) -> None:
        pid = self._need_piece()
        if pid is None:
            return

        def act():
            with self._library(write=True) as lib:
                return fn(lib, pid)

        result = self._guard(act)
        if result is not None:
            self.reload()
            self.announce(said(result))

    def action_rate(self, n: int) -> None:
        self._change(
            lambda lib, pid: lib.rate(pid, n or None),
            lambda p: (
                f"{p.id} rated {p.rating} star{'s' if p.rating != 1 else ''}"
                if p.rating
                else f"{p.id}: rating cleared"
            ),
        )

    def _ask(self, question: str, then: Callable[[str], None], value: str = "") -> None:
        from tui.screens._modals import AskText

        def answered(text: str | None) -> None:
            if text is None:
                self.announce("cancelled")
                return
            then(text)

        self.app.push_screen(AskText(question, value=value), answered)

    def _current(self):
        pid = self._need_piece()
        if pid is None:
            return None
        return self._guard(lambda: self._get(pid))

    def _get(self, pid: str):
        with self._library() as lib:
            return lib.get(pid, include_deleted=True)

    def action_tag(self) -> None:
        piece = self._current()
        if piece is None:
            return

        def tag(text: str) -> None:
            tags = [t.strip() for t in text.split(",") if t.strip()]
            self._change(
                lambda lib, pid: lib.tag(pid, tags),
                lambda p: f"{p.id} tags: {', '.join(p.tags) or 'none'}",
            )

        self._ask(f"Tags for {piece.title} (commas between tags)", tag)

    def action_note(self) -> None:
        piece = self._current()
        if piece is None:
            return
        self._ask(
            f"Note on {piece.title} (empty clears it)",
            lambda text: self._change(
                lambda lib, pid: lib.set_note(pid, text.strip()),
                lambda p: f"{p.id} note kept" if p.note else f"{p.id} note cleared",
            ),
            value=piece.note,
        )

    def action_rename(self) -> None:
        piece = self._current()
        if piece is None:
            return
        self._ask(
            f"New title for {piece.id}",
            lambda text: self._change(
                lambda lib, pid: lib.rename(pid, text),
                lambda p: f"{p.id} renamed to {p.title}",
            ),
            value=piece.title,
        )

    def action_collection(self) -> None:
        piece = self._current()
        if piece is None:
            return

        def add(name: str) -> None:
            self._change(
                lambda lib, pid: lib.collection_add(name, [pid])[0],
                lambda p: f"{p.id} added to the collection {name.strip()}",
            )

        known = self._guard(self._collection_names) or []
        hint = f" (yours: {', '.join(known)})" if known else ""
        self._ask(f"Add {piece.title} to the collection{hint}", add)

    def _collection_names(self) -> list[str]:
        if not self._has_library():
            return []
        with self._library() as lib:
            return [c for c, _ in lib.collections()]

    def action_delete(self) -> None:
        piece = self._current()
        if piece is None:
            return
        if piece.deleted is not None:
            self.announce(f"{piece.id} is already in the trash (u restores it)")
            return
        from tui.screens._modals import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if not yes:
                self.announce("nothing deleted")
                return
            self._change(
                lambda lib, pid: lib.delete(pid),
                lambda p: f"{p.id} ({p.title}) moved to the trash; u in the trash view restores it",
            )

        self.app.push_screen(
            ConfirmScreen(f"Move {piece.id} ({piece.title}) to the trash?"), answered
        )

    def action_restore(self) -> None:
        piece = self._current()
        if piece is None:
            return
        if piece.deleted is None:
            self.announce(f"{piece.id} is not in the trash")
            return
        self._change(lambda lib, pid: lib.restore(pid), lambda p: f"{p.id} ({p.title}) restored")

    def action_open_folder(self) -> None:
        piece = self._current()
        if piece is None:
            return
        folder = self._guard(lambda: self._folder(piece))
        if folder is None:
            return
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        program = shutil.which(opener)
        if program is None:
            self.app.notify(str(folder), title="The piece's folder", timeout=15)
            self.announce(f"folder: {folder}")
            return
        subprocess.Popen(
            [program, str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.announce(f"opened {folder}")

    def _folder(self, piece) -> Path:
        with self._library() as lib:
            return lib.folder_path(piece)

    # -- jobs in a worker --
    def action_replay(self) -> None:
        piece = self._current()
        if piece is None:
            return
        library, output = self.library_path, Path(self.app.output_root)
        pid, title = piece.id, piece.title

        def job(progress):
            return replay_piece(library, pid, title, output, progress)

        self.start_job("replay", f"replaying {pid}", job)

    def action_export(self) -> None:
        piece = self._current()
        if piece is None:
            return
        default = str(Path(self.app.output_root) / "exports")

        def export(text: str) -> None:
            if not text.strip():
                self.announce("nothing exported: no destination")
                return
            library, pid, to = self.library_path, piece.id, Path(text.strip()).expanduser()

            def job(progress):
                from engine.library.store import Library
                from engine.library.transfer import export

                with Library.open(library, write=False) as lib:
                    return export(lib, [pid], to)

            self.start_job("export", f"exporting {pid} to {to}", job)

        self._ask("Export to (a folder, or a new file ending .zip)", export, value=default)

    def action_detect(self) -> None:
        piece = self._current()
        if piece is None:
            return
        folder = self._guard(lambda: self._folder(piece))
        if folder is None:
            return
        files = [folder / f.name for f in piece.files if not f.name.endswith(".json")]
        self._detect(files)

    def action_detect_file(self) -> None:
        self._ask(
            "File to check for Disco-Musica's mark (audio, MIDI or MusicXML)",
            lambda text: (
                self._detect([Path(text.strip()).expanduser()])
                if text.strip()
                else self.announce("no file given")
            ),
        )

    def _detect(self, files: list[Path]) -> None:
        library = self.library_path

        def job(progress):
            return detect_files(library, files, progress)

        self.start_job("detect", f"looking for marks in {len(files)} file(s)", job)

    def start_job(self, job: str, said: str, fn: Callable[[Callable], Any]) -> None:
        """Run ``fn(progress)`` in a worker thread (one job at a time); the result comes back
        as `WorkDone` (or `WorkFailed`)."""
        line = self.query_one("#job-line", Static)
        bar = self.query_one("#job-bar", ProgressBar)
        line.update(said + " …")
        bar.update(total=None, progress=0)
        bar.add_class("busy")
        self.announce(said)
        self._job_worker(job, fn)

    @work(thread=True, exclusive=True, exit_on_error=False, group="library-job")
    def _job_worker(self, job: str, fn: Callable[[Callable], Any]) -> None:
        from engine.progress import Progress
        from tui.jobs import user_message

        worker = get_current_worker()

        def progress(event: Progress) -> None:
            if worker.is_cancelled:
                raise JobCancelled()
            self.post_message(
                WorkProgress(job, event.stage, event.done, event.total, event.message)
            )

        try:
            result = fn(progress)
        except JobCancelled:
            self.post_message(WorkFailed(job, "cancelled", cancelled=True))
            return
        except Exception as e:
            message = user_message(e)
            if message is None:
                raise
            self.post_message(WorkFailed(job, message))
            return
        self.post_message(WorkDone(job, result))

    def action_escape(self) -> None:
        """Cancel the running job, if any; else go back to the table."""
        running = [
            w
            for w in self.workers
            if w.group == "library-job" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
        ]
        for w in running:
            w.cancel()
        if running:
            self.announce("cancelling (the job stops at its next step)")
        else:
            self.action_focus_table()

    def on_work_progress(self, event: WorkProgress) -> None:
        bar = self.query_one("#job-bar", ProgressBar)
        bar.update(total=event.total, progress=event.done)
        of = f"/{event.total}" if event.total else ""
        self.query_one("#job-line", Static).update(f"{event.job}: {event.stage} {event.done}{of}")

    def on_work_failed(self, event: WorkFailed) -> None:
        self._job_finished()
        self.query_one("#job-line", Static).update(f"{event.job}: {event.error}")
        if event.cancelled:
            self.announce(f"{event.job} {event.error}")
        else:
            self.app.show_error(event.error, title=f"{event.job.capitalize()} failed")

    def on_work_done(self, event: WorkDone) -> None:
        self._job_finished()
        line = self.query_one("#job-line", Static)
        said = getattr(self, f"_done_{event.job}")(event.result)
        line.update(said)
        for text in said.splitlines():
            self.announce(text)

    def _job_finished(self) -> None:
        self.query_one("#job-bar", ProgressBar).remove_class("busy")

    def _done_replay(self, result: dict) -> str:
        lines = [
            f"{name}: {'identical' if same else 'DIFFERENT'}"
            for name, same in result["same"].items()
        ]
        kept = ", ".join(result["kept"])
        lines.append(
            f"replay of {result['piece']} written to {result['folder']}"
            + (f"; kept in the library as {kept}" if kept else "")
        )
        self.reload()
        return "\n".join(lines)

    def _done_export(self, written: list[Path]) -> str:
        return "\n".join(f"exported to {w}" for w in written)

    def _done_detect(self, findings: list) -> str:
        return "\n".join(describe_finding(f) for f in findings)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "library-job" and event.state == WorkerState.ERROR:
            self._job_finished()
            error = event.worker.error
            self.app.show_error(
                f"a bug stopped the job ({type(error).__name__}: {error}); please report it",
                title="Internal error",
            )


class JobCancelled(Exception):
    """Raised in a worker's progress callback once its job was cancelled."""


def replay_piece(
    library: Path, piece_id: str, title: str, output_root: Path, progress=None
) -> dict:
    """Replay a piece of the library into a new folder under ``output_root``; the new piece
    is kept in the library as a replay of the old one. Runs in a worker thread."""
    from engine import names
    from engine.errors import LibraryError
    from engine.library.store import Library
    from engine.library.transfer import slug
    from engine.pipelines.replay import replay
    from engine.record import plan_dirs, unique_folder
    from tui.jobs import keeping

    with Library.open(library, write=False) as lib:
        piece = lib.get(piece_id, include_deleted=True)
        record_file = lib.folder_path(piece) / names.GENERATION_FILE
    if not record_file.is_file():
        raise LibraryError(
            f"{piece_id} has no {names.GENERATION_FILE} to replay here; try `disco-musica "
            f"library replay {piece_id}`"
        )
    plan_dirs(output_root)
    out = unique_folder(output_root, f"{slug(title)}-{piece_id}-replay")
    with keeping(library) as kept:
        _, same = replay(record_file, out, progress=progress)
        new_ids = [p.id for p in kept]
    with Library.open(library) as lib:
        for new in new_ids:
            lib.link(new, piece_id, "replay")
    return {"piece": piece_id, "same": same, "kept": new_ids, "folder": out}


def detect_files(library: Path, files: list[Path], progress=None) -> list:
    """`engine.library.marks.inspect_file` of each file, looked up in the library."""
    from engine.library.marks import inspect_file
    from engine.library.store import Library
    from engine.progress import Progress

    lib = Library.open(library, write=False) if (library / "library.db").is_file() else None
    try:
        found = []
        for i, f in enumerate(files):
            if progress:
                progress(Progress("files", i, len(files), str(f)))
            found.append(inspect_file(f, lib))
        return found
    finally:
        if lib is not None:
            lib.close()


def describe_finding(f) -> str:
    """One line for `engine.library.marks.Finding`, as ``disco-musica detect`` says it."""
    name = Path(f.file).name
    if not f.ours:
        score = f" (watermark score {f.score:g})" if f.score is not None else ""
        return f"{name}: no Disco-Musica mark found{score}"
    how = []
    if f.watermark:
        how.append(f"watermark {f.mark} (score {f.score:g})")
    if f.statement:
        how.append(f"metadata: {f.statement!r}")
    pieces = "; ".join(f"{p['id']} ({p['how']})" for p in f.pieces)
    where = f"; in the library: {pieces}" if pieces else ""
    return f"{name}: made with Disco-Musica — " + "; ".join(how or ["kept in the library"]) + where


ENTRY = ScreenEntry(
    "library",
    "Library",
    "f3",
    20,
    LibraryScreen,
    "the pieces you made: find, sort, rate, tag, trace, replay, export",
)
