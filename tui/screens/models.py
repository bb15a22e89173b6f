"""The Models screen: the score models shipped with Disco-Musica, the MusicGen catalogue
(`engine.hub`) and the models converted on this computer, with licence, size, parameters and
memory per dtype; the selected MusicGen model is downloaded and converted in a worker.

The listing uses the engine functions ``disco-musica models`` uses
(`engine.symbolic.score_api.available_models`, `engine.hub.CATALOG`, `engine.hub.models_home`);
the download is `engine.hub.resolve_model`, which converts into a hidden ``.NAME.partial``
folder and renames it into place, so a cancelled or failed download leaves no model folder.
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from rich.markdown import Markdown
from textual import on, work
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from tui.messages import WorkDone, WorkFailed, WorkProgress
from tui.screens import ScreenEntry
from tui.screens._base import StudioScreen

DOCS_MODELS = Path(__file__).resolve().parents[2] / "docs" / "models"
MEMORY_COLUMNS = (("float32", None), ("float16", None), ("bfloat16", None), (None, 8), (None, 4))
MEMORY_LABELS = ("fp32", "fp16", "bf16", "8-bit", "4-bit")


@dataclass
class ModelInfo:
    """One row of the Models screen."""

    name: str
    kind: str  # score, transcription, musicgen or converted
    installed: bool
    licence: str
    params: int | None = None
    disk_bytes: int | None = None  # on disk, when installed
    download_bytes: int | None = None  # about what a download fetches (its float32 weights)
    memory: dict[str, int] = field(default_factory=dict)  # MEMORY_LABELS -> bytes of weights
    features: str = ""
    path: Path | None = None
    card: str = ""  # the model card (Markdown) or what the folder says about itself
    downloadable: bool = False


def gigabytes(n: int | None) -> str:
    if n is None:
        return "—"
    if n < 1e9:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e9:.1f} GB"


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _safetensors_parameters(file: Path) -> int | None:
    """Weights in a safetensors file, from its JSON header alone."""
    import math

    try:
        with open(file, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    except (OSError, ValueError):
        return None
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def _card(*names: str) -> str:
    for name in names:
        path = DOCS_MODELS / f"{name}.md"
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    return ""


def _card_licence(card: str) -> str | None:
    m = re.search(r"^\|\s*licen[cs]e\s*\|\s*(.+?)\s*\|\s*$", card, re.MULTILINE | re.IGNORECASE)
    return m.group(1).split(";")[0].strip() if m else None


def _folder_card(folder: Path) -> str:
    for name in ("README.md", "README.txt", "README"):
        if (folder / name).is_file():
            return (folder / name).read_text(encoding="utf-8", errors="replace")
    cfg = folder / "config.json"
    if cfg.is_file():
        text = cfg.read_text(encoding="utf-8", errors="replace")
        return f"No model card; its config.json:\n\n```json\n{text[:4000]}\n```"
    return ""


def list_models() -> list[ModelInfo]:
    """Every model the studio knows: shipped, catalogue and converted here."""
    from engine import hub
    from engine.symbolic import score_api as api

    out: list[ModelInfo] = []
    for name in api.available_models():
        folder = api.MODELS_DIR / name
        params = _safetensors_parameters(folder / "model.safetensors")
        card = _card(name, re.sub(r"-v\d+$", "", name)) or _folder_card(folder)
        default = " (default)" if name == api.DEFAULT_MODEL else ""
        out.append(
            ModelInfo(
                name=name,
                kind="score",
                installed=True,
                licence=_card_licence(card) or "see the model card",
                params=params,
                disk_bytes=_folder_bytes(folder),
                memory={"fp32": params * 4, "fp16": params * 2, "bf16": params * 2}
                if params
                else {},
                features="MIDI, shipped, offline" + default,
                path=folder,
                card=card,
            )
        )
    transcription = hub.MODELS_DIR / "basic-pitch"
    if (transcription / "config.json").is_file():
        params = _safetensors_parameters(transcription / "model.safetensors")
        licence_file = transcription / "LICENSE"
        licence = "see LICENSE"
        if licence_file.is_file() and "Apache License" in licence_file.read_text(errors="replace"):
            licence = "Apache-2.0"
        out.append(
            ModelInfo(
                name="basic-pitch",
                kind="transcription",
                installed=True,
                licence=licence,
                params=params,
                disk_bytes=_folder_bytes(transcription),
                memory={"fp32": params * 4} if params else {},
                features="audio to MIDI, shipped",
                path=transcription,
                card=_card("basic-pitch") or _folder_card(transcription),
            )
        )
    home = hub.models_home()
    musicgen_card = _card("musicgen")
    for e in hub.CATALOG.values():
        folder = home / e.name
        installed = (folder / "config.json").is_file()
        memory = {
            label: e.memory_bytes(dtype or "float16", bits)
            for label, (dtype, bits) in zip(MEMORY_LABELS, MEMORY_COLUMNS, strict=True)
        }
        kind = " ".join(k for k, on in (("stereo", e.stereo), ("melody", e.melody)) if on)
        out.append(
            ModelInfo(
                name=e.name,
                kind="musicgen",
                installed=installed,
                licence=hub.LICENCE,
                params=e.params,
                disk_bytes=_folder_bytes(folder) if installed else None,
                download_bytes=e.memory_bytes("float32"),
                memory=memory,
                features=f"audio, {kind or 'mono'}, {e.repo}",
                path=folder if installed else None,
                card=musicgen_card,
                downloadable=True,
            )
        )
    if home.is_dir():
        for folder in sorted(home.iterdir()):
            if folder.name in hub.CATALOG or folder.name.startswith("."):
                continue
            cfg = folder / "config.json"
            try:
                raw = json.loads(cfg.read_text()) if cfg.is_file() else None
            except (OSError, ValueError):
                raw = None
            if not isinstance(raw, dict) or "disco_musica" not in raw:
                continue
            params = _safetensors_parameters(folder / "model.safetensors")
            how = raw.get("disco_musica") or {}
            dtype = how.get("dtype") if isinstance(how, dict) else None
            out.append(
                ModelInfo(
                    name=folder.name,
                    kind="converted",
                    installed=True,
                    licence=hub.LICENCE
                    if raw.get("model_type", "").startswith("musicgen")
                    else "?",
                    params=params,
                    disk_bytes=_folder_bytes(folder),
                    features=f"converted here ({dtype or '?'}) from {how.get('source', '?')}"
                    if isinstance(how, dict)
                    else "converted here",
                    path=folder,
                    card=_folder_card(folder),
                )
            )
    return out


class DownloadCancelled(BaseException):
    """Raised inside the download's thread when the user cancels it (a BaseException, so that
    no ``except Exception`` of the download swallows it; `engine.hub` removes its partial
    folder on any BaseException)."""


class ModelsScreen(StudioScreen):
    """The models: what is here, what can be fetched, and fetching one."""

    NAME = "models"
    DEFAULT_CSS = """
    ModelsScreen #models-main { height: 1fr; }
    ModelsScreen #models-left { width: 3fr; }
    ModelsScreen #models-table { height: 1fr; }
    ModelsScreen #card { width: 2fr; border-left: solid $primary; padding: 0 1; }
    ModelsScreen #models-status { height: auto; }
    ModelsScreen #models-bar { display: none; }
    ModelsScreen #models-bar.busy { display: block; }
    """
    BINDINGS = [
        Binding("d", "download", "Download and convert"),
        Binding("escape", "cancel", "Cancel the download"),
        Binding("r", "refresh", "Refresh the list", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="models")
        self.models: dict[str, ModelInfo] = {}
        self.selected: str | None = None
        self.status = ""
        self.card_text = ""
        self._download_thread: int | None = None
        self._inject = threading.Lock()

    def compose_body(self):
        with Horizontal(id="models-main"):
            with Vertical(id="models-left"):
                yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="models-status")
                yield ProgressBar(id="models-bar", show_eta=False)
            with VerticalScroll(id="card"):
                yield Static("", id="card-text")

    def on_mount(self) -> None:
        table = self.query_one("#models-table", DataTable)
        table.add_column("Model", key="name")
        table.add_column("Kind", key="kind")
        table.add_column("Here", key="installed")
        table.add_column("Params", key="params")
        table.add_column("Size", key="size")
        for label in MEMORY_LABELS:
            table.add_column(label, key=label)
        table.add_column("Licence", key="licence")
        self.refresh_models()
        table.focus()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.refresh_models()

    def action_refresh(self) -> None:
        self.refresh_models()
        self.announce("models listed again")

    def refresh_models(self) -> None:
        """List the models again (after a download, or a conversion elsewhere)."""
        from tui.jobs import user_message

        try:
            models = list_models()
        except Exception as e:
            message = user_message(e)
            if message is None:
                raise
            self._say(message)
            return
        self.models = {m.name: m for m in models}
        table = self.query_one("#models-table", DataTable)
        keep = self.selected
        table.clear()
        for m in models:
            if m.installed:
                size = gigabytes(m.disk_bytes)
            else:
                size = f"↓ {gigabytes(m.download_bytes)}" if m.download_bytes else "—"
            table.add_row(
                m.name,
                m.kind,
                "yes" if m.installed else "no",
                f"{m.params / 1e6:.1f} M" if m.params else "—",
                size,
                *[gigabytes(m.memory.get(label)) for label in MEMORY_LABELS],
                m.licence,
                key=m.name,
            )
        names = list(self.models)
        if keep in names:
            table.move_cursor(row=names.index(keep))
        if names:
            self._show(names[table.cursor_row])

    @on(DataTable.RowHighlighted, "#models-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != event.data_table.cursor_row:
            return  # stale: the table was filled again since
        if event.row_key is not None and event.row_key.value != self.selected:
            self._show(event.row_key.value)

    def _show(self, name: str) -> None:
        self.selected = name
        m = self.models[name]
        head = [
            f"# {m.name}",
            "",
            f"- kind: {m.kind}; {m.features}",
            f"- licence: {m.licence}",
            f"- installed: {'yes, ' + str(m.path) if m.installed else 'no (d downloads it)'}",
        ]
        if m.params:
            head.append(f"- parameters: {m.params:,}")
        if m.memory:
            mem = ", ".join(f"{k} {gigabytes(v)}" for k, v in m.memory.items())
            head.append(f"- memory of the weights: {mem}")
        if m.kind == "musicgen":
            from engine.hub import NON_COMMERCIAL_WARNING

            head.append(f"- **{NON_COMMERCIAL_WARNING}**")
        text = "\n".join(head) + "\n\n---\n\n" + (m.card or "No model card.")
        self.card_text = text
        self.query_one("#card-text", Static).update(Markdown(text))

    def _say(self, text: str) -> None:
        self.status = text
        self.query_one("#models-status", Static).update(text)
        self.announce(text)

    # -- download --
    def _downloads_running(self) -> list[Worker]:
        return [
            w
            for w in self.workers
            if w.group == "models-download"
            and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
        ]

    def action_download(self) -> None:
        if self.selected is None:
            return
        m = self.models[self.selected]
        if self._downloads_running():
            self._say("a download is running; Escape cancels it")
            return
        if not m.downloadable:
            where = f" ({m.path})" if m.path else ""
            self._say(f"{m.name} ships with Disco-Musica: nothing to download{where}")
            return
        if m.installed:
            self._say(f"{m.name} is already on this computer ({m.path})")
            return
        bar = self.query_one("#models-bar", ProgressBar)
        bar.update(total=None, progress=0)
        bar.add_class("busy")
        self._say(
            f"downloading and converting {m.name} (about {gigabytes(m.download_bytes)}); "
            "Escape cancels"
        )
        self._download(m.name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-download")
    def _download(self, name: str) -> None:
        try:
            self._download_body(name)
        except DownloadCancelled:  # a cancel that came as the download ended
            self.post_message(WorkFailed("download", f"{name}: cancelled", cancelled=True))
        finally:
            with self._inject:
                self._download_thread = None

    def _download_body(self, name: str) -> None:
        from engine import hub
        from engine.progress import Progress
        from tui.jobs import user_message

        worker = get_current_worker()

        def progress(event: Progress) -> None:
            if worker.is_cancelled:
                raise DownloadCancelled()
            self.post_message(
                WorkProgress("download", event.stage, event.done, event.total, event.message)
            )

        with self._inject:
            self._download_thread = threading.get_ident()
        try:
            try:
                path = hub.resolve_model(name, progress=progress)
            finally:
                with self._inject:
                    self._download_thread = None
        except DownloadCancelled:
            # engine.hub removed its partial folder; one more time in case the cancel came
            # while it was cleaning up
            shutil.rmtree(hub.models_home() / f".{name}.partial", ignore_errors=True)
            self.post_message(WorkFailed("download", f"{name}: cancelled", cancelled=True))
            return
        except Exception as e:
            message = user_message(e)
            if message is None:
                raise
            self.post_message(WorkFailed("download", message))
            return
        self.post_message(WorkDone("download", {"name": name, "path": path}))

    def action_cancel(self) -> None:
        running = self._downloads_running()
        if not running:
            return
        for w in running:
            w.cancel()
        with self._inject:  # stop the download's thread at its next Python step
            if self._download_thread is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._download_thread), ctypes.py_object(DownloadCancelled)
                )
        self._say("cancelling the download …")

    def on_work_progress(self, event: WorkProgress) -> None:
        bar = self.query_one("#models-bar", ProgressBar)
        bar.update(total=event.total, progress=event.done)
        if event.stage == "converting" and event.done == 0:
            self._say(f"{self.selected}: downloading and converting … (Escape cancels)")

    def on_work_failed(self, event: WorkFailed) -> None:
        self.query_one("#models-bar", ProgressBar).remove_class("busy")
        if event.cancelled:
            self._say(f"{event.error}; nothing was kept")
        else:
            self._say(event.error)
            self.app.show_error(event.error, title="Download failed")

    def on_work_done(self, event: WorkDone) -> None:
        self.query_one("#models-bar", ProgressBar).remove_class("busy")
        self.refresh_models()
        self._say(f"{event.result['name']} is ready: {event.result['path']}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "models-download" and event.state == WorkerState.ERROR:
            self.query_one("#models-bar", ProgressBar).remove_class("busy")
            error = event.worker.error
            self.app.show_error(
                f"a bug stopped the download ({type(error).__name__}: {error}); please report it",
                title="Internal error",
            )


ENTRY = ScreenEntry(
    "models",
    "Models",
    "f4",
    30,
    ModelsScreen,
    "the models: licence, size, memory; download and convert MusicGen",
)
