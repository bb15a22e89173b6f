"""The Data screen: your datasets (`engine.data`) — choose or make one, import files with
progress, browse and filter its items, edit their metadata, split it, and walk its versions.

It calls what the ``disco-musica data`` commands call: `engine.data.store` (datasets, items,
versions, checkout), `engine.data.ingest.import_sources` and `engine.data.splits.split_dataset`.
Quick reads (the item list, a diff) run on the app's thread; the import, saving an edit and a
split run in worker threads that post `tui.messages`. A problem the user can act on is a line
on the screen or a modal; a bug is a modal that asks for a report, never a crash.

The tabs: Datasets (d), Import (i), Items (b), Edit (e), Split (s), Versions (v). Ctrl+G runs
the current tab's action; Escape leaves a text field (then the letters switch tabs) or
cancels a running import (what was copied is kept: running it again continues).
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    DirectoryTree,
    Input,
    Label,
    OptionList,
    ProgressBar,
    Select,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from tui.messages import WorkDone, WorkFailed, WorkProgress
from tui.screens import ScreenEntry
from tui.screens._base import StudioScreen
from tui.widgets.data_meta import MetaForm, MetaProblem, meta_text, shown_value

DATA_KEY = "f5"  # the next function key after Models (F4)
PANES = ("datasets", "import", "items", "edit", "split", "versions")
TABLE_LIMIT = 1000  # rows of the item table (filter to see others)
ITEM_COLUMNS = (
    ("", "mark"),
    ("Path", "path"),
    ("Kind", "kind"),
    ("Length", "duration"),
    ("Split", "split"),
    ("Genre", "genre"),
    ("Tempo", "tempo"),
    ("Key", "key"),
    ("Tags", "tags"),
)
MARK = "✓"
UNASSIGNED = "unassigned"


class ImportCancelled(BaseException):
    """Raised in the import's thread (from its progress callback) when the user cancels; a
    BaseException so that no ``except Exception`` of the import takes it for a bad file. The
    dataset keeps the journal of what was copied; the next import of the same sources
    continues from there."""


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:04.1f}"


def size_text(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _count(value) -> int:
    """A count from a report field that is a number or a collection."""
    if value is None:
        return 0
    if isinstance(value, int | float):
        return int(value)
    return len(value)


def import_summary(name: str, report) -> tuple[str, list[tuple[str, str]]]:
    """(one line, the skipped files with their reasons) of an `ImportReport`."""
    skipped = [(str(s), str(r)) for s, r in (getattr(report, "skipped", None) or [])]
    version = getattr(report, "version", None)
    line = (
        f"Imported into {name}: {_count(getattr(report, 'added', 0))} added, "
        f"{_count(getattr(report, 'changed', 0))} changed, "
        f"{_count(getattr(report, 'already', 0))} already there, {len(skipped)} skipped"
    )
    resumed = _count(getattr(report, "resumed", 0))
    if resumed:
        line += f" (continued an interrupted import: {resumed} files were done already)"
    line += f"; version {version[:12]}" if version else "; no new version (nothing changed)"
    return line, skipped


def item_details(item, parent=None) -> Text:
    """Everything about one item: what it is, its metadata and where each value came from."""
    t = Text()
    t.append(item.path + "\n", style="bold")
    facts = [
        f"id {item.id}",
        item.kind,
        duration_text(item.duration_s),
        size_text(item.size),
        f"split {item.split or UNASSIGNED}",
    ]
    t.append(" · ".join(x for x in facts if x) + "\n")
    rows = [
        ("made by", item.step),
        ("group", item.group),
        ("source", item.source),
        ("hash", item.hash[:16] + "…"),
        (
            "parent",
            (f"{item.parent} ({parent.path})" if parent is not None else item.parent)
            if item.parent
            else "",
        ),
        ("info", ", ".join(f"{k} {meta_text(v)}" for k, v in sorted(item.info.items()))),
        ("extras", ", ".join(f"{k} {v[:12]}…" for k, v in sorted(item.extras.items()))),
    ]
    for label, value in rows:
        if value:
            t.append(f"{label:9}", style="bold")
            t.append(f"{value}\n")
    if item.meta:
        t.append("metadata (where each value came from; ~ estimated)\n", style="bold")
        for k, v in item.meta.items():
            source = item.meta_from.get(k, "?")
            mark = "~" if source == "estimate" else " "
            t.append(f"  {k:12}{mark}{meta_text(v)}  ({source})\n")
    else:
        t.append("no metadata yet (e edits it)\n", style="italic")
    return t


def diff_text(d: dict, head: str) -> Text:
    """A diff of `Dataset.diff` from the selected version to HEAD, one line per item."""
    t = Text()
    if d["from"] == d["to"]:
        t.append(f"{head[:12]} is the current version (HEAD).\n", style="bold")
        return t
    counts = f"{len(d['added'])} added, {len(d['removed'])} removed, {len(d['changed'])} changed"
    t.append(f"From {d['from'][:12]} to HEAD {head[:12]}: {counts}\n", style="bold")
    for i in d["added"]:
        t.append(f"+ {i.path}\n")
    for i in d["removed"]:
        t.append(f"- {i.path}\n")
    for _old, new, fields in d["changed"]:
        t.append(f"~ {new.path}: {', '.join(fields)}\n")
    if not (d["added"] or d["removed"] or d["changed"]):
        t.append("the same items\n")
    return t


class DataScreen(StudioScreen):
    """Datasets: choose, import, browse, edit, split, version."""

    NAME = "data"
    browse_root: Path | None = None
    """Where the import's folder tree starts (None: the home folder)."""

    DEFAULT_CSS = """
    DataScreen #ds-line { height: 1; padding: 0 1; }
    DataScreen #data-tabs { height: 1fr; }
    DataScreen TabPane { padding: 0 1; }
    DataScreen #ds-list { height: 1fr; }
    DataScreen .msg { height: auto; color: $error; }
    DataScreen .hint { color: $text-muted; }
    DataScreen #imp-pick { height: 1fr; min-height: 6; }
    DataScreen #imp-tree { width: 1fr; }
    DataScreen #imp-side { width: 1fr; padding-left: 1; }
    DataScreen #imp-queue { height: 1fr; }
    DataScreen #imp-buttons { height: 3; }
    DataScreen #imp-buttons Button { width: 1fr; min-width: 8; }
    DataScreen #imp-bar { display: none; }
    DataScreen #imp-bar.busy { display: block; }
    DataScreen #imp-summary { height: auto; max-height: 6; }
    DataScreen #flt-row { height: 3; }
    DataScreen #flt-text { width: 2fr; }
    DataScreen #flt-row Select { width: 1fr; }
    DataScreen #items { height: 1fr; min-height: 4; }
    DataScreen #item-box { height: 1fr; min-height: 3; max-height: 16; border-top: solid $primary; }
    DataScreen #edit-target { height: auto; }
    DataScreen #edit-buttons { height: 3; }
    DataScreen .split-field { width: 1fr; height: 4; padding-right: 1; }
    DataScreen #sp-row { height: 4; }
    DataScreen #sp-buttons { height: 3; }
    DataScreen #versions { height: 2fr; min-height: 4; }
    DataScreen #ver-box { height: 1fr; min-height: 3; border-top: solid $primary; }
    DataScreen #ver-buttons { height: 3; }
    DataScreen #data-status { height: auto; max-height: 2; padding: 0 1; }
    """
    BINDINGS = [
        Binding("d", "pane('datasets')", "Datasets"),
        Binding("i", "pane('import')", "Import"),
        Binding("b", "pane('items')", "Browse items"),
        Binding("e", "pane('edit')", "Edit metadata"),
        Binding("s", "pane('split')", "Split"),
        Binding("v", "pane('versions')", "Versions"),
        Binding("ctrl+g", "run", "Run this tab", priority=True),
        Binding("escape", "escape", "Leave the text field / cancel the import", show=False),
        Binding("slash", "focus_filter", "Filter the items", show=False),
        Binding("space", "mark", "Mark the item (edit several at once)", show=False),
        Binding("a", "add_source", "Add the file or folder to the import", show=False),
        Binding("r", "reload", "Read the dataset again", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="data")
        self.ds = None  # the open engine.data.store.Dataset
        self.items: list = []  # HEAD's items
        self.shown: list = []  # the items in the table (filtered)
        self.current_id: str | None = None
        self.marked: set[str] = set()
        self.sources: list[str] = []
        self.version_ids: list[str] = []
        self.selected_version: str | None = None
        self.busy: str | None = None  # the job running: import, edit, split
        self.progress_seen: list[WorkProgress] = []
        self.last_import: tuple[str, list[tuple[str, str]]] | None = None
        self.status = ""
        self._edit_for: tuple | None = None
        self._versions_head: str | None = None

    # -- layout --
    def compose_body(self):
        from engine.data.store import KINDS, META_FIELDS, SPLITS

        yield Static("", id="ds-line")
        with TabbedContent(id="data-tabs", initial="tab-datasets"):
            with TabPane("Datasets", id="tab-datasets"):
                yield Static("", id="ds-where", classes="hint")
                yield OptionList(id="ds-list")
                yield Label("New dataset")
                yield Input(
                    placeholder="a name (letters, digits, - _ .); Enter makes it", id="ds-new"
                )
                yield Static("", id="ds-msg", classes="msg")
            with TabPane("Import", id="tab-import"):
                yield Input(
                    placeholder="a file, folder or URL (s3:// gs:// hf:// https:// …); "
                    "Enter adds it",
                    id="imp-source",
                )
                with Horizontal(id="imp-pick"):
                    yield DirectoryTree(self.browse_root or Path.home(), id="imp-tree")
                    with Vertical(id="imp-side"):
                        yield Static("", id="imp-queue")
                        yield Checkbox("Read sidecar CSV/JSON metadata", True, id="imp-sidecars")
                        with Horizontal(id="imp-buttons"):
                            yield Button("Import (Ctrl+G)", id="imp-run", variant="primary")
                            yield Button("Clear", id="imp-clear")
                yield ProgressBar(id="imp-bar", show_eta=False)
                with VerticalScroll(id="imp-summary"):
                    yield Static("", id="imp-result")
            with TabPane("Items", id="tab-items"):
                with Horizontal(id="flt-row"):
                    yield Input(placeholder="filter: words of path or metadata (/)", id="flt-text")
                    yield Select([(k, k) for k in KINDS], prompt="any kind", id="flt-kind")
                    yield Select(
                        [(s, s) for s in (*SPLITS, UNASSIGNED)], prompt="any split", id="flt-split"
                    )
                yield Static("", id="items-line", classes="hint")
                yield DataTable(id="items", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="item-box"):
                    yield Static("", id="item-details")
            with TabPane("Edit", id="tab-edit"):
                yield Static("", id="edit-target")
                yield MetaForm(id="edit-form")
                with Horizontal(id="edit-buttons"):
                    yield Button("Save (Ctrl+G)", id="edit-save", variant="primary")
                yield Static("", id="edit-msg", classes="msg")
            with TabPane("Split", id="tab-split"):
                yield Static(
                    "Every item gets train, validation or test; the chunks of one song stay "
                    "together. The same ratios and seed give the same split.",
                    classes="hint",
                )
                with Horizontal(id="sp-row"):
                    with Vertical(classes="split-field"):
                        yield Label("Train,validation,test")
                        yield Input("80,10,10", id="sp-ratios")
                    with Vertical(classes="split-field"):
                        yield Label("Seed")
                        yield Input("0", id="sp-seed", type="integer")
                    with Vertical(classes="split-field"):
                        yield Label("Stratify by (optional)")
                        yield Select([(f, f) for f in META_FIELDS], prompt="none", id="sp-stratify")
                yield Static("", id="sp-msg", classes="msg")
                with Horizontal(id="sp-buttons"):
                    yield Button("Split (Ctrl+G)", id="sp-run", variant="primary")
                yield Static("", id="sp-counts")
            with TabPane("Versions", id="tab-versions"):
                yield Static("", id="ver-ident", classes="hint")
                yield DataTable(id="versions", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="ver-box"):
                    yield Static("", id="ver-diff")
                with Horizontal(id="ver-buttons"):
                    yield Button("Check out this version (Ctrl+G)", id="ver-checkout")
        yield Static("", id="data-status")

    def on_mount(self) -> None:
        items = self.query_one("#items", DataTable)
        for label, key in ITEM_COLUMNS:
            items.add_column(label, key=key)
        versions = self.query_one("#versions", DataTable)
        for label, key in (
            ("", "where"),
            ("Version", "id"),
            ("Made", "created"),
            ("Items", "count"),
            ("What", "message"),
        ):
            versions.add_column(label, key=key)
        self._show_sources()
        paths = self.refresh_datasets()
        if paths:
            self.open_dataset(paths[0], announce=False)
        else:
            self._show_dataset()
        self.query_one("#ds-list" if paths else "#ds-new").focus()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.refresh_datasets()
            if self.ds is not None:
                self.reload()

    # -- saying things --
    def _say(self, text: str) -> None:
        self.status = text
        self.query_one("#data-status", Static).update(text)
        self.announce(text)

    def _guard(self, fn):
        """Run one quick dataset action here; a problem the user can act on is said in one
        line (returned as ``(None, message)``), a bug raises."""
        from tui.jobs import user_message

        try:
            return fn(), None
        except Exception as e:
            message = user_message(e)
            if message is None:
                raise
            return None, message

    # -- tabs --
    @property
    def pane(self) -> str:
        return self.query_one("#data-tabs", TabbedContent).active.removeprefix("tab-")

    def action_pane(self, name: str) -> None:
        tabs = self.query_one("#data-tabs", TabbedContent)
        if tabs.active != f"tab-{name}":
            tabs.active = f"tab-{name}"  # TabActivated focuses the pane
        else:
            self._focus_pane(name)

    @on(TabbedContent.TabActivated, "#data-tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        name = (event.pane.id or "").removeprefix("tab-")
        if name == "edit":
            self._load_edit()
        self._focus_pane(name)
        self.announce(f"{event.tab.label.plain} tab")

    def _focus_pane(self, name: str) -> None:
        target = {
            "datasets": "#ds-list"
            if self.query_one("#ds-list", OptionList).option_count
            else "#ds-new",
            "import": "#imp-source",
            "items": "#items",
            "edit": "#m-genre",
            "split": "#sp-ratios",
            "versions": "#versions",
        }[name]
        widget = self.query_one(target)
        if widget.disabled:
            widget = self.query_one("#data-tabs ContentTabs")
        widget.focus()

    def action_escape(self) -> None:
        if self.busy == "import":
            self.action_cancel()
            return
        if isinstance(self.app.focused, Input | Select):
            self.query_one("#data-tabs ContentTabs").focus()

    # -- datasets --
    def refresh_datasets(self) -> list[Path]:
        """List the datasets again; returns their folders."""
        from engine.data.store import Dataset, datasets_root, list_datasets

        root = datasets_root()
        paths = list_datasets()
        box = self.query_one("#ds-list", OptionList)
        was = box.highlighted
        box.clear_options()
        for p in paths:
            ds, problem = self._guard(lambda p=p: Dataset.open(p))
            if ds is None:
                box.add_option(Option(f"{p.name}  (damaged: {problem})", id=str(p), disabled=True))
                continue
            count, _ = self._guard(lambda ds=ds: len(ds.items()))
            here = "  ◀ open" if self.ds is not None and ds.path == self.ds.path else ""
            box.add_option(Option(f"{ds.name}  ({count or 0} items){here}", id=str(p)))
        if paths:  # the open one highlighted, else where the highlight was
            open_at = [i for i, p in enumerate(paths) if self.ds is not None and p == self.ds.path]
            box.highlighted = open_at[0] if open_at else min(was or 0, len(paths) - 1)
        where = (
            f"Your datasets, in {root}: Enter opens one."
            if paths
            else (f"No datasets yet (they live in {root}). Type a name below to make one.")
        )
        self.query_one("#ds-where", Static).update(where)
        return paths

    @on(OptionList.OptionSelected, "#ds-list")
    def _dataset_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option_id and not self._refuse_when_busy():
            self.open_dataset(Path(event.option_id))

    def open_dataset(self, path: Path, announce: bool = True) -> bool:
        from engine.data.store import Dataset

        ds, problem = self._guard(lambda: Dataset.open(path))
        if ds is None:
            self.query_one("#ds-msg", Static).update(problem)
            self._say(problem)
            return False
        if self.ds is None or ds.path != self.ds.path:
            self.marked.clear()
            self.current_id = None
            self.selected_version = None
        self.ds = ds
        self.query_one("#ds-msg", Static).update("")
        self.reload()
        self.refresh_datasets()
        if announce:
            self._say(f"opened {ds.name}: {len(self.items)} items")
        return True

    @on(Input.Submitted, "#ds-new")
    def _create(self, event: Input.Submitted) -> None:
        self.create_dataset(event.value)

    def create_dataset(self, name: str) -> bool:
        from engine.data.store import Dataset

        name = name.strip()
        msg = self.query_one("#ds-msg", Static)
        if self._refuse_when_busy():
            return False
        if not name:
            msg.update("type a name for the new dataset first")
            return False
        ds, problem = self._guard(lambda: Dataset.create(name))
        if ds is None:
            msg.update(problem)
            self._say(problem)
            return False
        self.query_one("#ds-new", Input).value = ""
        self.open_dataset(ds.path, announce=False)
        self._say(f"made the dataset {ds.name} ({ds.path}); add files to import")
        self.action_pane("import")
        return True

    def _show_dataset(self) -> None:
        line = self.query_one("#ds-line", Static)
        if self.ds is None:
            line.update("No dataset open: make one or pick one on the Datasets tab (d).")
            return
        head, _ = self._guard(lambda: self.ds.head)
        line.update(
            Text.assemble(
                ("Dataset ", ""),
                (self.ds.name, "bold"),
                f": {len(self.items)} items · version {(head or '?')[:12]}",
            )
        )

    def reload(self) -> None:
        """Read the open dataset again: its items, splits and versions."""
        if self.ds is None:
            return
        items, problem = self._guard(lambda: self.ds.items())
        if items is None:
            self._say(problem)
            items = []
        self.items = items
        ids = {i.id for i in items}
        self.marked &= ids
        self._show_dataset()
        self.fill_items()
        self._show_counts()
        self.fill_versions()
        if self.pane == "edit":  # the form is filled again only for a new version or items
            self._load_edit()

    def action_reload(self) -> None:
        self.refresh_datasets()
        self.reload()
        self.announce("read the dataset again")

    # -- items --
    def _filters(self) -> tuple[list[str], str | None, str | None]:
        words = self.query_one("#flt-text", Input).value.lower().split()
        kind = self.query_one("#flt-kind", Select).value
        split = self.query_one("#flt-split", Select).value
        return (
            words,
            kind if isinstance(kind, str) else None,
            split if isinstance(split, str) else None,
        )

    def _matches(self, item, words, kind, split) -> bool:
        if kind and item.kind != kind:
            return False
        if split and (item.split or UNASSIGNED) != split:
            return False
        if words:
            hay = " ".join(
                [item.path, item.kind, item.split or UNASSIGNED]
                + [meta_text(v) for v in item.meta.values()]
            ).lower()
            return all(w in hay for w in words)
        return True

    def fill_items(self) -> None:
        """Fill the item table from HEAD's items and the filters."""
        words, kind, split = self._filters()
        shown = [i for i in self.items if self._matches(i, words, kind, split)]
        table = self.query_one("#items", DataTable)
        keep = self.current_id
        table.clear()
        self.shown = shown[:TABLE_LIMIT]
        for i in self.shown:
            table.add_row(*self._row(i), key=i.id)
        more = (
            f" (the first {TABLE_LIMIT}; filter to see others)" if len(shown) > TABLE_LIMIT else ""
        )
        marked = f", {len(self.marked)} marked" if self.marked else ""
        if self.ds is None:
            line = "No dataset open."
        elif not self.items:
            line = "No items yet: import some (i)."
        else:
            line = (
                f"{len(shown)} of {len(self.items)} items{more}{marked}; ~ estimated; "
                "space marks items to edit together"
            )
        self.query_one("#items-line", Static).update(line)
        ids = [i.id for i in self.shown]
        if keep in ids:
            table.move_cursor(row=ids.index(keep))
        elif ids:
            table.move_cursor(row=0)
        self._select(ids[table.cursor_row] if ids else None)

    def _row(self, i) -> tuple:
        return (
            MARK if i.id in self.marked else "",
            i.path,
            i.kind,
            duration_text(i.duration_s),
            i.split or "—",
            shown_value(i, "genre"),
            shown_value(i, "tempo"),
            shown_value(i, "key"),
            shown_value(i, "tags"),
        )

    @on(Input.Changed, "#flt-text")
    @on(Select.Changed, "#flt-kind")
    @on(Select.Changed, "#flt-split")
    def _filter_changed(self, event) -> None:
        self.fill_items()

    @on(Input.Submitted, "#flt-text")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#items", DataTable).focus()

    def action_focus_filter(self) -> None:
        self.action_pane("items")
        self.query_one("#flt-text", Input).focus()

    @on(DataTable.RowHighlighted, "#items")
    def _item_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != event.data_table.cursor_row:
            return  # stale: the table was filled again since
        item_id = event.row_key.value if event.row_key is not None else None
        if item_id != self.current_id:
            self._select(item_id)

    def _item(self, item_id: str | None):
        return next((i for i in self.items if i.id == item_id), None)

    def _select(self, item_id: str | None) -> None:
        self.current_id = item_id
        item = self._item(item_id)
        details = self.query_one("#item-details", Static)
        if item is None:
            details.update("")
            return
        details.update(item_details(item, self._item(item.parent)))

    def action_mark(self) -> None:
        if self.pane != "items" or self.current_id is None:
            return
        item = self._item(self.current_id)
        if self.current_id in self.marked:
            self.marked.discard(self.current_id)
            said = f"unmarked {item.path}"
        else:
            self.marked.add(self.current_id)
            said = f"marked {item.path}"
        table = self.query_one("#items", DataTable)
        table.update_cell(self.current_id, "mark", MARK if self.current_id in self.marked else "")
        self.announce(f"{said} ({len(self.marked)} marked)")
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def targets(self) -> list:
        """The items an edit changes: the marked ones, else the one under the cursor."""
        if self.marked:
            return [i for i in self.items if i.id in self.marked]
        item = self._item(self.current_id)
        return [item] if item is not None else []

    # -- edit --
    def _load_edit(self) -> None:
        items = self.targets()
        head = self._guard(lambda: self.ds.head)[0] if self.ds is not None else None
        where = self.ds.path if self.ds is not None else None
        key = (where, head, tuple(i.id for i in items))
        if key == self._edit_for:
            return
        self._edit_for = key
        form = self.query_one("#edit-form", MetaForm)
        form.load(items)
        target = self.query_one("#edit-target", Static)
        if not items:
            target.update(
                "No item chosen: pick one on the Items tab (b), or mark several with space."
                if self.items
                else "No items to edit yet."
            )
        elif len(items) == 1:
            target.update(Text.assemble("Editing ", (items[0].path, "bold")))
        else:
            names = ", ".join(i.path for i in items[:3]) + (" …" if len(items) > 3 else "")
            target.update(Text.assemble(f"Editing {len(items)} marked items: ", (names, "bold")))
        self.query_one("#edit-msg", Static).update("")

    def save_edit(self) -> None:
        if self._refuse_when_busy():
            return
        items = self.targets()
        msg = self.query_one("#edit-msg", Static)
        if self.ds is None or not items:
            msg.update("choose an item first (Items tab, b)")
            return
        form = self.query_one("#edit-form", MetaForm)
        try:
            values = form.changes()
        except MetaProblem as p:
            text = f"not saved: {p}"
            msg.update(text)
            self.announce(text)
            form.field_input(p.field).focus()
            return
        if not values:
            msg.update("nothing to save: no field was changed")
            self.announce("nothing to save: no field was changed")
            return
        msg.update("saving …")
        self.busy = "edit"
        self._edit(self.ds.path, [i.id for i in items], values)

    @work(thread=True, exit_on_error=False, group="data-change")
    def _edit(self, path: Path, ids: list[str], values: dict) -> None:
        from engine.data.store import Dataset

        def run():
            ds = Dataset.open(path)
            fields = ", ".join(values)
            n = len(ids)
            message = f"edit {fields} of {n} item{'s' if n != 1 else ''} (studio)"
            with ds.change({"name": "edit", "set": values, "items": ids}, message) as ch:
                for item_id in ids:
                    item = ch.items.get(item_id)
                    if item is None:
                        continue
                    new = item.with_meta(values, "user")
                    if new != item:
                        ch.put(new)
            return {"version": ch.version, "count": n, "fields": list(values)}

        self._run_job("edit", run)

    def _run_job(self, job: str, fn) -> None:
        """In a worker: run ``fn`` and post WorkDone, or WorkFailed with the user's line."""
        from tui.jobs import user_message

        try:
            result = fn()
        except Exception as e:
            message = user_message(e)
            if message is None:
                raise
            self.post_message(WorkFailed(job, message))
            return
        self.post_message(WorkDone(job, result))

    # -- split --
    def split_options(self) -> tuple[tuple, int, str | None]:
        """(ratios, seed, stratify) from the fields; a DatasetError says what to fix."""
        from engine.data.splits import parse_ratios
        from engine.data.store import DatasetError

        ratios = parse_ratios(self.query_one("#sp-ratios", Input).value)
        text = self.query_one("#sp-seed", Input).value.strip() or "0"
        try:
            seed = int(text)
        except ValueError:
            raise DatasetError(
                f"seed takes a whole number 0 to {2**32 - 1} (not {text!r})"
            ) from None
        if not 0 <= seed < 2**32:
            raise DatasetError(f"seed must be 0 to {2**32 - 1} (not {seed})")
        stratify = self.query_one("#sp-stratify", Select).value
        return ratios, seed, stratify if isinstance(stratify, str) else None

    def _split_problem(self) -> str | None:
        from engine.data.store import DatasetError

        try:
            self.split_options()
        except DatasetError as e:
            return str(e).replace("--ratios", "ratios").replace("--seed", "seed")
        return None

    @on(Input.Changed, "#sp-ratios")
    @on(Input.Changed, "#sp-seed")
    def _split_typed(self, event: Input.Changed) -> None:
        self.query_one("#sp-msg", Static).update(self._split_problem() or "")

    def start_split(self) -> None:
        if self._refuse_when_busy():
            return
        msg = self.query_one("#sp-msg", Static)
        if self.ds is None:
            msg.update("open or make a dataset first (Datasets tab, d)")
            return
        problem = self._split_problem()
        if problem:
            msg.update(problem)
            self.announce(f"not split: {problem}")
            return
        if not self.items:
            msg.update(f"{self.ds.name} has no items to split; import some first (i)")
            return
        ratios, seed, stratify = self.split_options()
        msg.update("")
        self.busy = "split"
        self.query_one("#sp-counts", Static).update("splitting …")
        self._split(self.ds.path, ratios, seed, stratify)

    @work(thread=True, exit_on_error=False, group="data-change")
    def _split(self, path: Path, ratios, seed: int, stratify: str | None) -> None:
        from engine.data.splits import split_counts, split_dataset
        from engine.data.store import Dataset

        def run():
            ds = Dataset.open(path)
            version = split_dataset(ds, ratios=ratios, seed=seed, stratify=stratify)
            return {"version": version, "counts": split_counts(ds.items())}

        self._run_job("split", run)

    def _show_counts(self, version: str | None = None, said: bool = False) -> None:
        from collections import Counter

        c = Counter(i.split or UNASSIGNED for i in self.items)
        counts = " · ".join(f"{k} {c[k]}" for k in ("train", "validation", "test", UNASSIGNED))
        text = f"Now: {counts}" if self.items else "No items yet."
        if said:
            text += f"  (version {version[:12]})" if version else "  (no change: already so)"
        self.query_one("#sp-counts", Static).update(text)

    # -- versions --
    def all_versions(self) -> list[tuple[str, object]]:
        """(where, Version) of every version, newest first: ``HEAD``, ``""`` for one that
        led to HEAD, ``other`` for one outside HEAD's history (later ones after a checkout of
        an older one, kept and checked out again at will)."""
        head = self.ds.head
        history = {v.id for v in self.ds.history()}
        return [
            ("HEAD" if v.id == head else "" if v.id in history else "other", v)
            for v in self.ds.versions()
        ]

    def fill_versions(self) -> None:
        table = self.query_one("#versions", DataTable)
        table.clear()
        self.version_ids = []
        ident = self.query_one("#ver-ident", Static)
        if self.ds is None:
            ident.update("No dataset open.")
            self.query_one("#ver-diff", Static).update("")
            return
        rows, problem = self._guard(self.all_versions)
        if rows is None:
            self._say(problem)
            return
        dataset_id, _ = self._guard(lambda: self.ds.ident())
        ident.update(f"ID for training runs: {dataset_id}")
        for where, v in rows:
            table.add_row(
                where,
                v.id[:12],
                v.created.replace("T", " ")[:16],
                str(v.count),
                v.message,
                key=v.id,
            )
            self.version_ids.append(v.id)
        head = next((v.id for where, v in rows if where == "HEAD"), None)
        keep = self.selected_version if head == self._versions_head else head
        self._versions_head = head  # a new HEAD: show it (and its diff: none)
        if keep in self.version_ids:
            table.move_cursor(row=self.version_ids.index(keep))
        self._select_version(self.version_ids[table.cursor_row] if self.version_ids else None)

    @on(DataTable.RowHighlighted, "#versions")
    def _version_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != event.data_table.cursor_row:
            return
        vid = event.row_key.value if event.row_key is not None else None
        if vid != self.selected_version:
            self._select_version(vid)

    def _select_version(self, vid: str | None) -> None:
        self.selected_version = vid
        box = self.query_one("#ver-diff", Static)
        if vid is None or self.ds is None:
            box.update("")
            return
        d, problem = self._guard(lambda: self.ds.diff(vid, None))
        if d is None:
            box.update(problem)
            return
        box.update(diff_text(d, d["to"]))

    def start_checkout(self) -> None:
        from tui.screens._modals import ConfirmScreen

        if self._refuse_when_busy():
            return
        if self.ds is None or self.selected_version is None:
            self._say("open a dataset and pick a version first (Versions tab, v)")
            return
        vid = self.selected_version
        if vid == self.ds.head:
            self._say(f"{vid[:12]} is already the current version")
            return
        meta, problem = self._guard(lambda: self.ds.version(vid))
        if meta is None:
            self._say(problem)
            return
        question = (
            f"Check out version {vid[:12]} ({meta.count} items: {meta.message})? The dataset "
            "goes back to it; later versions are kept and can be checked out again."
        )
        self.app.push_screen(ConfirmScreen(question), lambda yes: self._checkout(vid, yes))

    def _checkout(self, vid: str, yes: bool | None) -> None:
        if not yes:
            self._say("checkout cancelled; nothing changed")
            return
        done, problem = self._guard(lambda: self.ds.checkout(vid))
        if done is None:
            self.app.show_error(problem, title="Checkout failed")
            return
        self.marked.clear()
        self.reload()
        self.refresh_datasets()
        self._say(f"{self.ds.name} is now at version {vid[:12]} ({len(self.items)} items)")

    # -- import --
    def _show_sources(self) -> None:
        if self.sources:
            lines = "\n".join(f"• {s}" for s in self.sources)
            text = f"To import ({len(self.sources)}):\n{lines}"
        else:
            text = (
                "Nothing to import yet: type a path or URL above, or pick in the tree "
                "(Enter on a file, a on a folder)."
            )
        self.query_one("#imp-queue", Static).update(text)

    def add_source(self, source: str) -> None:
        source = source.strip()
        if not source:
            return
        if source not in self.sources:
            self.sources.append(source)
        self._show_sources()
        self.announce(f"to import: {source} ({len(self.sources)} in the list)")

    @on(Input.Submitted, "#imp-source")
    def _source_typed(self, event: Input.Submitted) -> None:
        self.add_source(event.value)
        event.input.value = ""

    @on(DirectoryTree.FileSelected, "#imp-tree")
    def _file_picked(self, event: DirectoryTree.FileSelected) -> None:
        self.add_source(str(event.path))

    def action_add_source(self) -> None:
        if self.pane != "import":
            return
        node = self.query_one("#imp-tree", DirectoryTree).cursor_node
        if node is not None and node.data is not None:
            self.add_source(str(node.data.path))

    def start_import(self) -> None:
        if self._refuse_when_busy():
            return
        if self.ds is None:
            self._say("open or make a dataset first (Datasets tab, d)")
            return
        typed = self.query_one("#imp-source", Input)
        if typed.value.strip():
            self.add_source(typed.value)
            typed.value = ""
        if not self.sources:
            self._say("add files, folders or URLs to import first")
            return
        bar = self.query_one("#imp-bar", ProgressBar)
        bar.update(total=None, progress=0)
        bar.add_class("busy")
        self.progress_seen = []
        self.busy = "import"
        self.query_one("#imp-result", Static).update("")
        sidecars = self.query_one("#imp-sidecars", Checkbox).value
        self._say(f"importing {len(self.sources)} source(s) into {self.ds.name} … (Escape cancels)")
        self._import(self.ds.path, list(self.sources), sidecars)

    @work(thread=True, exit_on_error=False, group="data-import")
    def _import(self, path: Path, sources: list[str], sidecars: bool) -> None:
        from engine.data.ingest import import_sources
        from engine.data.store import Dataset
        from engine.progress import Progress

        worker = get_current_worker()

        def progress(event: Progress) -> None:
            if worker.is_cancelled:
                raise ImportCancelled()
            self.post_message(
                WorkProgress("import", event.stage, event.done, event.total, event.message)
            )

        try:
            self._run_job(
                "import",
                lambda: import_sources(
                    Dataset.open(path), sources, sidecars=sidecars, progress=progress
                ),
            )
        except ImportCancelled:
            self.post_message(
                WorkFailed(
                    "import",
                    "import cancelled; what was copied is kept, and importing the same "
                    "sources again continues where it stopped",
                    cancelled=True,
                )
            )

    def action_cancel(self) -> None:
        running = self._jobs_running("data-import")
        for w in running:
            w.cancel()
        if running:
            self._say("cancelling the import …")

    def _jobs_running(self, *groups: str) -> list[Worker]:
        """This screen's workers of ``groups`` (default: all of its jobs) not finished."""
        groups = groups or ("data-import", "data-change")
        return [
            w
            for w in self.workers
            if w.node is self
            and w.group in groups
            and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
        ]

    def _refuse_when_busy(self) -> bool:
        if self.busy is None:
            return False
        extra = " (Escape cancels it)" if self.busy == "import" else ""
        self._say(f"wait: the {self.busy} is still running{extra}")
        return True

    def finish_before_exit(self) -> list[Worker]:
        """On quit: cancel the import (its journal keeps what was copied: the next import of
        the same sources continues) and let a save or a split finish; the app waits for
        these workers."""
        self.action_cancel()
        return self._jobs_running("data-change")

    # -- the workers' messages --
    def on_work_progress(self, event: WorkProgress) -> None:
        if event.job != "import":
            return
        self.progress_seen.append(event)
        bar = self.query_one("#imp-bar", ProgressBar)
        bar.update(total=event.total, progress=event.done)
        of = f"/{event.total}" if event.total else ""
        detail = f": {event.message}" if event.message else ""
        self.query_one("#data-status", Static).update(
            f"importing — {event.stage} {event.done}{of}{detail} (Escape cancels)"
        )

    def on_work_done(self, event: WorkDone) -> None:
        job, result = event.job, event.result
        self.busy = None
        if job == "import":
            self.query_one("#imp-bar", ProgressBar).remove_class("busy")
            line, skipped = import_summary(self.ds.name if self.ds else "the dataset", result)
            self.last_import = (line, skipped)
            text = Text(line + "\n")
            if skipped:
                text.append(f"Skipped ({len(skipped)}), each with why:\n", style="bold")
                for source, reason in skipped:
                    text.append(f"  {source}: {reason}\n")
            notes = list(getattr(result, "notes", None) or [])
            if notes:
                text.append(f"Sidecar values not used ({len(notes)}):\n", style="bold")
                for note in notes:
                    text.append(f"  {note}\n")
            self.query_one("#imp-result", Static).update(text)
            self.sources = []
            self._show_sources()
            self.reload()
            self.refresh_datasets()
            self._say(line + ("; the Import tab (i) says why each was skipped" if skipped else ""))
        elif job == "edit":
            self.reload()
            v = result["version"]
            fields = ", ".join(result["fields"])
            n = result["count"]
            said = (
                f"saved {fields} of {n} item{'s' if n != 1 else ''}: version {v[:12]}"
                if v
                else "nothing changed: the items already had these values"
            )
            self.query_one("#edit-msg", Static).update(said)
            self._say(said)
        elif job == "split":
            self.reload()
            counts = ", ".join(f"{k} {n}" for k, n in result["counts"].items())
            v = result["version"]
            self._show_counts(v, said=True)
            self._say(f"split: {counts}" + (f"; version {v[:12]}" if v else "; no change"))

    def on_work_failed(self, event: WorkFailed) -> None:
        self.busy = None
        if event.job == "import":
            self.query_one("#imp-bar", ProgressBar).remove_class("busy")
            self.query_one("#imp-result", Static).update(event.error)
            if self.ds is not None:
                self.reload()
        elif event.job == "edit":
            self.query_one("#edit-msg", Static).update(event.error)
        elif event.job == "split":
            self.query_one("#sp-msg", Static).update(event.error)
            self._show_counts()
        self._say(event.error)
        if not event.cancelled:
            self.app.show_error(event.error, title=f"The {event.job} stopped")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR or event.worker.group not in (
            "data-import",
            "data-change",
        ):
            return
        self.busy = None
        self.query_one("#imp-bar", ProgressBar).remove_class("busy")
        error = event.worker.error
        self.app.show_error(
            f"a bug stopped the work ({type(error).__name__}: {error}); please report it",
            title="Internal error",
        )

    # -- ctrl+g and the buttons --
    def action_run(self) -> None:
        pane = self.pane
        if pane == "datasets":
            typed = self.query_one("#ds-new", Input).value
            if typed.strip():
                self.create_dataset(typed)
            else:
                box = self.query_one("#ds-list", OptionList)
                if box.highlighted is not None:
                    if not self._refuse_when_busy():
                        self.open_dataset(Path(box.get_option_at_index(box.highlighted).id))
                else:
                    self._say("type a name to make a dataset, or pick one in the list")
        elif pane == "import":
            self.start_import()
        elif pane == "edit":
            self.save_edit()
        elif pane == "split":
            self.start_split()
        elif pane == "versions":
            self.start_checkout()
        elif pane == "items":
            self._say("Ctrl+G runs the Import, Edit, Split and Versions tabs; e edits this item")

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        {
            "imp-run": self.start_import,
            "imp-clear": self._clear_sources,
            "edit-save": self.save_edit,
            "sp-run": self.start_split,
            "ver-checkout": self.start_checkout,
        }.get(event.button.id or "", lambda: None)()

    def _clear_sources(self) -> None:
        self.sources = []
        self._show_sources()
        self.announce("the list of files to import is empty")


ENTRY = ScreenEntry(
    "data",
    "Data",
    DATA_KEY,
    40,
    DataScreen,
    "your datasets: import with progress, browse, edit metadata, split, versions",
)
