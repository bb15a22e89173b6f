"""A dataset out and in: its files with their manifest, and Hugging Face `datasets`.

- `export_files`: a version's files under their dataset paths, plus ``manifest.jsonl`` (the
  version's manifest, byte for byte) and ``dataset.json`` (the dataset ID a training run
  records, the name and the pipeline that made the version).
- `to_hf` / `export_hf`: the version as a `datasets.DatasetDict`, one split per item split
  (see `hf_split_names` for where unassigned items go), saved with ``save_to_disk`` beside
  a dataset card, and pushed to the Hub when asked.
- `open_hf_source` / `load_hf`: rows of a saved folder or a Hub dataset back into items,
  our own exports exactly (paths, hashes, kinds, splits, groups, metadata and its
  "estimate" marks), and foreign audio datasets too (`FOREIGN_META` says which of their
  columns become metadata).

The columns of an exported dataset (`hf_features`): ``id``, ``path``, ``kind``, ``hash``,
``split`` (the item's own split; None when unassigned), ``duration_s``, ``group``,
``parent``, ``step``, one column per metadata field (`META_FIELDS`; the list fields as
sequences of strings), ``estimated`` (the fields whose values are estimates), ``info`` (JSON
text) and the file itself, never decoded or re-encoded: audio items in ``audio`` (the
`datasets.Audio` feature with ``decode=False``: ``{"bytes", "path"}``, so the Hub can play
it), every other item in ``file`` (binary). Files stored beside items (``extras``: features,
tokens) are not exported.

`datasets` is slow to import; it is imported inside the functions only. Its ``Audio``
feature in 5.x needs torch and torchcodec to *encode* or *decode* values, neither of which
Disco-Musica installs, so the tables are written with pyarrow through
`datasets.arrow_writer.ArrowWriter` (a cast, no encoding) and audio columns are always read
with ``decode=False``.

Progress stages: ``"items"`` (items written / all, export) and ``"rows"`` (rows read / all
rows of the chosen splits, load).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from engine.atomic import json_default
from engine.data.sources import Skip
from engine.data.store import (
    KINDS,
    LIST_FIELDS,
    META_FIELDS,
    SPLITS,
    Dataset,
    DatasetError,
    Item,
    disk_error,
    item_id,
    materialize,
    utc_now,
)
from engine.progress import Progress, ProgressFn

MANIFEST_FILE = "manifest.jsonl"
INFO_FILE = "dataset.json"
CARD_FILE = "README.md"
EXPORT_FORMAT = 1
"""Version of the exported layout (``dataset.json``'s ``format``; bumped when columns change)."""
UNASSIGNED_SPLIT = "unassigned"
"""The split of items without one, when other items have one (`hf_split_names`)."""
BATCH_ROWS = 256
BATCH_BYTES = 64 << 20
"""Rows are written in batches of at most this many rows or bytes (memory stays flat)."""

# Columns of a foreign dataset that become metadata, in order of preference per field.
FOREIGN_META: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "genre": ("genre", "genres", "label"),
    "mood": ("mood",),
    "instruments": ("instruments", "instrument"),
    "tempo": ("tempo", "bpm"),
    "key": ("key",),
    "meter": ("meter", "time_signature"),
    "artists": ("artists", "artist"),
    "influences": ("influences", "influence"),
    "tags": ("tags",),
    "caption": ("caption", "text", "description"),
}
# Split names of other datasets that mean one of ours (anything else: unassigned).
SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation", "eval": "test"}
_ID = re.compile(r"[0-9a-f]{12}")
REPO_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_SOUND_FORMATS = {"WAV": ".wav", "FLAC": ".flac", "OGG": ".ogg", "MP3": ".mp3", "AIFF": ".aiff"}


# ---- plain files ---------------------------------------------------------------------------------
def require_datasets() -> None:
    """Refuse in one line, before any work, when Hugging Face `datasets` is not installed
    (it comes with the ``data`` extra, not with the main install)."""
    import importlib.util

    if importlib.util.find_spec("datasets") is None or importlib.util.find_spec("pyarrow") is None:
        raise DatasetError(
            "Hugging Face datasets need the datasets package; install it with: "
            "pip install 'disco-musica[data]'"
        )


def export_files(
    ds: Dataset,
    dest: str | Path,
    version: str | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Write ``version``'s files (default HEAD) under ``dest`` by their dataset paths, with
    ``manifest.jsonl`` (the version's manifest, byte for byte) and ``dataset.json`` (format,
    ``id`` = `Dataset.ident`, name, version, item count, pipeline, time of export).

    ``dest`` must be new or an empty folder; nothing is replaced, and nothing is left
    half-written (everything is written in a hidden folder beside it, then renamed).
    Returns ``dest``.
    """
    vid = ds.resolve(version)
    items = ds.items(vid)
    dest = check_new_dest(dest)
    clash = sorted({i.path for i in items} & {MANIFEST_FILE, INFO_FILE})
    if clash:
        raise DatasetError(
            f"{ds.name} has an item at {clash[0]}, where the export writes its own file; "
            "rename the item first (`disco-musica data remove` and import it again)"
        )
    info = {
        "format": EXPORT_FORMAT,
        "id": ds.ident(vid),
        "name": ds.name,
        "version": vid,
        "items": len(items),
        "pipeline": ds.pipeline(vid),
        "exported": utc_now(),
    }
    if progress:
        progress(Progress("items", 0, len(items), ""))
    with _work_folder(dest, ".export") as work:
        out = work / "files"
        materialize(ds, out, vid)
        try:
            shutil.copyfile(ds.path / "versions" / f"{vid}.jsonl", out / MANIFEST_FILE)
            text = json.dumps(info, indent=2, ensure_ascii=False, default=json_default)
            (out / INFO_FILE).write_text(text + "\n", encoding="utf-8")
            _publish(out, dest)
        except OSError as e:
            raise disk_error(e, dest) from None
    if progress:
        progress(Progress("items", len(items), len(items), ""))
    return dest


def check_new_dest(dest: str | Path) -> Path:
    """``dest`` as a Path after checking that it is new or an empty folder that may be
    written (a `DatasetError` says why not); changes nothing."""
    from engine.record import protected_reason

    dest = Path(dest).expanduser()
    why = protected_reason(Path(os.path.abspath(dest)))  # "." and ".." by what they are
    if why:
        raise DatasetError(f"{dest} {why}; give a new folder for the export")
    if dest.is_symlink():
        raise DatasetError(f"{dest} is a link; give a new folder for the export")
    if dest.exists() and not dest.is_dir():
        raise DatasetError(f"{dest} is a file; give a new folder for the export")
    if dest.is_dir() and any(dest.iterdir()):
        raise DatasetError(
            f"{dest} exists and is not empty; nothing was replaced: give a new folder"
        )
    for p in dest.absolute().parents:
        if p.exists():
            if not p.is_dir():
                raise DatasetError(f"{p} is a file; give a folder for the export")
            if not os.access(p, os.W_OK | os.X_OK):
                raise DatasetError(f"cannot write in {p}; give another folder for the export")
            break
    return dest


@contextlib.contextmanager
def _work_folder(dest: Path, suffix: str):
    """A hidden folder beside ``dest`` (made with its missing parents), removed at the end."""
    from engine.record import make_dirs

    parent = dest.absolute().parent
    try:
        make_dirs(parent)
        work = Path(tempfile.mkdtemp(dir=parent, prefix=f".{dest.name}.", suffix=suffix))
    except OSError as e:
        raise disk_error(e, parent) from None
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _publish(out: Path, dest: Path) -> None:
    """Rename the finished folder ``out`` to ``dest`` (an empty ``dest`` is replaced)."""
    from engine.atomic import chmod_like_new

    chmod_like_new(out)
    if dest.is_dir():
        dest.rmdir()  # empty (checked); fails if something appeared meanwhile
    os.replace(out, dest)


# ---- to Hugging Face -----------------------------------------------------------------------------
def hf_split_names(items: list[Item]) -> dict[str | None, str]:
    """Item split → the `datasets` split it goes to: each assigned split to itself; items
    with no split go to ``train`` when no item has a split (a dataset not split yet), else
    to ``unassigned`` (so that a training run never takes them for training data)."""
    present = {i.split for i in items}
    names: dict[str | None, str] = {s: s for s in SPLITS if s in present}
    if None in present:
        names[None] = UNASSIGNED_SPLIT if names else "train"
    return names


def hf_features():
    """The `datasets.Features` of an exported dataset (see the module's docstring)."""
    require_datasets()
    from datasets import Audio, Features, List, Value

    cols = {
        "id": Value("string"),
        "path": Value("string"),
        "kind": Value("string"),
        "hash": Value("string"),
        "split": Value("string"),
        "duration_s": Value("float64"),
        "group": Value("string"),
        "parent": Value("string"),
        "step": Value("string"),
    }
    for name in META_FIELDS:
        if name in LIST_FIELDS:
            cols[name] = List(Value("string"))
        elif name == "tempo":
            cols[name] = Value("float64")
        else:
            cols[name] = Value("string")
    cols["estimated"] = List(Value("string"))
    cols["info"] = Value("string")
    cols["file"] = Value("binary")
    cols["audio"] = Audio(decode=False)
    return Features(cols)


def _row(item: Item, data: bytes) -> dict:
    row = {
        "id": item.id,
        "path": item.path,
        "kind": item.kind,
        "hash": item.hash,
        "split": item.split,
        "duration_s": item.duration_s,
        "group": item.group,
        "parent": item.parent,
        "step": item.step,
    }
    for name in META_FIELDS:
        value = item.meta.get(name)
        if name in LIST_FIELDS:
            row[name] = [str(v) for v in value or []]
        elif value is None:
            row[name] = None
        else:
            row[name] = float(value) if name == "tempo" else str(value)
    row["estimated"] = item.estimated
    row["info"] = json.dumps(item.info, sort_keys=True, ensure_ascii=False, default=json_default)
    audio = item.kind == "audio"
    row["file"] = None if audio else data
    row["audio"] = {"bytes": data, "path": item.path} if audio else None
    return row


def to_hf(
    ds: Dataset,
    version: str | None = None,
    *,
    progress: ProgressFn | None = None,
    cache_dir: str | Path | None = None,
):
    """``version`` (default HEAD) as a `datasets.DatasetDict`: one split per item split
    (`hf_split_names`), the columns of `hf_features`, rows sorted by path.

    The tables are written to ``cache_dir`` (default: a folder per dataset version in the
    `datasets` cache; a new or empty folder, or one that `to_hf` wrote for the same version)
    and memory-mapped from there, so memory stays flat however large the files; tables
    already there for the same version are used again (a version never changes).
    """
    require_datasets()
    import datasets

    vid = ds.resolve(version)
    items = ds.items(vid)
    if not items:
        raise DatasetError(
            f"{ds.name} has no items in version {vid[:12]}; import some first "
            "(`disco-musica data import FILES --into NAME`)"
        )
    if cache_dir is None:
        key = f"{ds.info['id']}@{vid}.v{EXPORT_FORMAT}"
        cache_dir = Path(datasets.config.HF_DATASETS_CACHE) / "disco_musica" / key
    cache_dir = Path(cache_dir)
    if not (cache_dir / "done.json").is_file():
        _write_tables(ds, vid, items, cache_dir, progress)
    try:
        done = json.loads((cache_dir / "done.json").read_text())
        names = done["splits"] if done["id"] == ds.ident(vid) else None
    except (OSError, ValueError, KeyError, TypeError):
        names = None
    if names is None:
        raise DatasetError(
            f"{cache_dir} holds tables of another dataset or version (or damaged ones); "
            "give a new folder for them"
        )
    features = hf_features()
    description = f"{ds.name}: a Disco-Musica dataset, {ds.ident(vid)}"
    out = datasets.DatasetDict()
    for name in names:
        info = datasets.DatasetInfo(features=features.copy(), description=description)
        out[name] = datasets.Dataset.from_file(
            str(cache_dir / f"{name}.arrow"), info=info, split=name
        )
    return out


def _write_tables(
    ds: Dataset, items_version: str, items: list[Item], folder: Path, progress
) -> None:
    """One Arrow file per split in ``folder`` and ``done.json`` (the split names), written
    in a temporary folder and renamed (a folder already there is left as it is)."""
    import pyarrow as pa
    from datasets.arrow_writer import ArrowWriter

    features = hf_features()
    schema = features.arrow_schema
    names = hf_split_names(items)
    splits: dict[str, list[Item]] = {n: [] for n in dict.fromkeys(names.values())}
    for item in items:
        splits[names[item.split]].append(item)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".new"))
    except OSError as e:
        raise disk_error(e, folder.parent) from None
    done = 0
    try:
        for name, members in splits.items():
            writer = ArrowWriter(features=features, path=str(tmp / f"{name}.arrow"))
            batch, size = [], 0
            for item in members:
                batch.append(_row(item, _read_stored(ds, item)))
                size += item.size
                done += 1
                if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch, size = [], 0
                    if progress:
                        progress(Progress("items", done, len(items), item.path))
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            writer.finalize()
            if progress:
                progress(Progress("items", done, len(items), ""))
        done_info = {"id": ds.ident(items_version), "splits": list(splits)}
        (tmp / "done.json").write_text(json.dumps(done_info) + "\n")
        try:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "done.json").is_file():  # not made by another run meanwhile
                raise
    except OSError as e:
        raise disk_error(e, folder) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_stored(ds: Dataset, item: Item) -> bytes:
    try:
        return ds.file(item).read_bytes()
    except FileNotFoundError:
        raise DatasetError(
            f"{ds.name}: the stored file of {item.path} ({item.hash[:12]}) is missing; "
            "the dataset is damaged"
        ) from None


@dataclass
class HfExport:
    """What `export_hf` wrote."""

    dest: Path
    ident: str
    splits: dict[str, int]
    pushed: str | None = None
    private: bool = True


def export_hf(
    ds: Dataset,
    dest_dir: str | Path,
    version: str | None = None,
    push_to: str | None = None,
    private: bool = True,
    *,
    progress: ProgressFn | None = None,
) -> HfExport:
    """Save ``version`` (default HEAD) as a Hugging Face dataset (`to_hf`) in the new folder
    ``dest_dir`` with ``save_to_disk``, beside a dataset card (README.md: name, dataset ID,
    pipeline, counts, licence note); with ``push_to`` (``user/name``) also push it to the
    Hub with ``push_to_hub`` (``private`` by default) and put the card there.

    Credentials for the push come from huggingface_hub's usual places (``HF_TOKEN``, or
    ``hf auth login``). The push happens before the folder is published: when it fails,
    nothing is written. Nothing is replaced, nothing is left half-written.
    """
    require_datasets()
    vid = ds.resolve(version)
    dest = check_new_dest(dest_dir)
    if push_to is not None:
        check_can_push(push_to)
    items = ds.items(vid)
    if not items:
        raise DatasetError(
            f"{ds.name} has no items in version {vid[:12]}; there is nothing to export"
        )
    with _work_folder(dest, ".hf") as work, _quiet_datasets():
        dd = to_hf(ds, vid, progress=progress, cache_dir=work / "tables")
        splits = {name: len(split) for name, split in dd.items()}
        card = dataset_card(ds, vid, items, splits)
        out = work / "out"
        try:
            dd.save_to_disk(str(out))
            (out / CARD_FILE).write_text(card, encoding="utf-8")
        except OSError as e:
            raise disk_error(e, dest) from None
        if push_to is not None:
            _push(dd, push_to, private, card)
        del dd
        try:
            _publish(out, dest)
        except OSError as e:
            raise disk_error(e, dest) from None
    return HfExport(dest, ds.ident(vid), splits, push_to, private)


def check_can_push(repo: str) -> None:
    """Refuse a push that cannot work before any export is made: a name that is not
    ``user/name``, offline mode (``HF_HUB_OFFLINE``), or no token in huggingface_hub's usual
    places (``HF_TOKEN``, the token file `hf auth login` writes)."""
    import huggingface_hub
    from huggingface_hub import constants

    if not REPO_NAME.fullmatch(repo):
        raise DatasetError(f"{repo!r} is not a Hub dataset name; give user/name")
    if constants.HF_HUB_OFFLINE:
        raise DatasetError(
            f"cannot push to {repo}: the Hugging Face Hub is in offline mode (HF_HUB_OFFLINE "
            "is set); unset it, or export without pushing"
        )
    if huggingface_hub.get_token() is None:
        raise DatasetError(
            f"no Hugging Face token to push {repo} with; log in with `hf auth login` (or set "
            "HF_TOKEN), or export without pushing"
        )


def _push(dd, repo: str, private: bool, card: str) -> None:
    """``push_to_hub``, then the card's text on the Hub's README (keeping the YAML that
    ``push_to_hub`` wrote there). Needs the network; not run by the tests."""
    from huggingface_hub import DatasetCard

    try:
        dd.push_to_hub(repo, private=private, commit_message="Disco-Musica export")
        hub_card = DatasetCard.load(repo, repo_type="dataset")
        hub_card.text = card.split("\n---\n", 1)[-1] if card.startswith("---\n") else card
        hub_card.push_to_hub(repo, repo_type="dataset", commit_message="Disco-Musica card")
    except _network_errors() as e:  # no network, offline mode, no token, refused
        raise DatasetError(
            f"could not push to the Hugging Face Hub as {repo} ({_short(e)}); nothing was "
            "written: log in with `hf auth login` (or set HF_TOKEN) and check the name"
        ) from None


def dataset_card(ds: Dataset, version: str, items: list[Item], splits: dict[str, int]) -> str:
    """The README.md of an exported dataset: what it is, where it came from, what it holds."""
    kinds = Counter(i.kind for i in items)
    hours = sum(i.duration_s or 0.0 for i in items if i.kind in ("audio", "video")) / 3600
    lines = [
        "---",
        "tags:",
        "- disco-musica",
        "- music",
        "---",
        f"# {ds.name}",
        "",
        "A dataset of one musician's own files, kept and exported by Disco-Musica.",
        "",
        f"- Dataset ID: `{ds.ident(version)}` (what a training run records)",
        f"- Items: {len(items)} ("
        + ", ".join(f"{kinds[k]} {k}" for k in KINDS if kinds[k])
        + (f"; {_length(hours)} of audio and video" if hours else "")
        + ")",
        "- Splits: " + ", ".join(f"{name} {n}" for name, n in splits.items()),
        "",
        "## How it was made",
        "",
    ]
    for n, step in enumerate(ds.pipeline(version), 1):
        params = {k: v for k, v in step.items() if k not in ("version", "name")}
        shown = json.dumps(params, sort_keys=True, default=json_default) if params else ""
        lines.append(f"{n}. `{step.get('name')}` (version `{step['version']}`) {shown}".rstrip())
    lines += [
        "",
        "## Columns",
        "",
        "`id`, `path`, `kind`, `hash` (SHA-256 of the file), `split` (the item's own; empty "
        "when not assigned), `duration_s`, `group` (chunks of one song share it), `parent` "
        "(the item it was made from), `step`, the metadata fields ("
        + ", ".join(f"`{f}`" for f in META_FIELDS)
        + "), `estimated` (the fields whose values are estimates), `info` (JSON), and the "
        "file itself, unchanged: `audio` for audio items, `file` (bytes) for the others.",
        "",
        f"Items with no split are in the `{UNASSIGNED_SPLIT}` split when other items have one, "
        "and in `train` when the dataset has no splits yet.",
        "",
        "## Licence",
        "",
        "As the user's own files: these are the works of whoever made them, shared under the "
        "terms their owner chooses. Ask the owner before using them for anything.",
        "",
    ]
    return "\n".join(lines)


def _length(hours: float) -> str:
    return f"{hours:.2f} hours" if hours >= 1 else f"{hours * 60:.1f} minutes"


@contextlib.contextmanager
def _quiet_datasets():
    """No tqdm bars from `datasets` on our stderr (the CLI shows its own progress)."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


# ---- from Hugging Face ---------------------------------------------------------------------------
@dataclass
class HfSource:
    """A Hugging Face dataset opened for `load_hf`: its splits, and how their rows read."""

    where: str
    """The folder (absolute) or ``hf://datasets/user/name``."""
    splits: dict
    """Split name → `datasets.Dataset` (only the chosen split when one was asked for)."""
    own: dict[str, bool]
    """Split name → whether its rows are Disco-Musica's own columns (else foreign)."""
    audio_column: dict[str, str | None]
    """Split name → the column holding the audio of foreign rows."""

    @property
    def rows(self) -> int:
        return sum(len(s) for s in self.splits.values())


@dataclass
class LoadReport:
    """What `load_hf` did."""

    source: str
    dataset: str
    version: str | None = None
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    """Our split of each item loaded (``unassigned`` for none) → count."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(row, reason) for each row that was not loaded."""
    warnings: list[str] = field(default_factory=list)
    """Values that did not fit a metadata field (once per column and reason)."""

    @property
    def loaded(self) -> int:
        return self.added + self.replaced + self.unchanged


def open_hf_source(source: str, split: str | None = None) -> HfSource:
    """Open ``source`` (a folder written by ``save_to_disk``, ``hf://datasets/user/name`` or
    ``user/name`` on the Hub) and check every row's path, changing nothing anywhere: what
    `load_hf` would refuse is refused here."""
    require_datasets()
    import datasets

    text = str(source).strip()
    if not text:
        raise DatasetError("give a saved dataset folder or a Hub dataset (user/name)")
    repo = text[len("hf://datasets/") :] if text.startswith("hf://datasets/") else None
    path = Path(text).expanduser()
    with _quiet_datasets():
        if repo is None and path.exists():
            where = str(path.absolute())
            loaded = _load_folder(path)
        elif repo is not None or (REPO_NAME.fullmatch(text) and not text.startswith(".")):
            also = "" if repo else " (no folder of that name here either)"
            repo = repo or text
            if not REPO_NAME.fullmatch(repo):
                raise DatasetError(f"{text!r} is not a Hub dataset; give hf://datasets/user/name")
            where = f"hf://datasets/{repo}"
            try:
                loaded = datasets.load_dataset(repo)
            except (*_network_errors(), datasets.exceptions.DatasetsError) as e:
                raise DatasetError(
                    f"could not load {repo} from the Hugging Face Hub ({_short(e)}); check the "
                    f"name and the network{also}"
                ) from None
        else:
            raise DatasetError(
                f"no folder {text!r}, and it is not a Hub dataset name (user/name); give a "
                "folder written by `disco-musica data export --hf` or a Hub dataset"
            )
    if isinstance(loaded, datasets.Dataset):
        loaded = {str(loaded.split) if loaded.split else UNASSIGNED_SPLIT: loaded}
    if not isinstance(loaded, dict | datasets.DatasetDict) or not loaded:
        raise DatasetError(f"{text} holds no dataset splits")
    splits = dict(loaded)
    if split is not None:
        if split not in splits:
            raise DatasetError(f"{text} has no split {split!r}; its splits are {', '.join(splits)}")
        splits = {split: splits[split]}
    own, audio, seen = {}, {}, set()
    for name, part in splits.items():
        part, own[name], audio[name] = _prepare(text, name, part)
        splits[name] = part
        if own[name]:
            _check_paths(text, name, part["path"], seen)
    return HfSource(where, splits, own, audio)


def _load_folder(path: Path):
    import datasets
    import pyarrow as pa

    if not path.is_dir():
        raise DatasetError(
            f"{path} is a file, not a saved dataset folder; give the folder that "
            "`data export --hf` or `save_to_disk` wrote"
        )
    marks = ("dataset_dict.json", "state.json")
    if not any((path / m).is_file() for m in marks):
        raise DatasetError(
            f"{path} is not a saved Hugging Face dataset (no dataset_dict.json or state.json); "
            "give the folder that `data export --hf` or `save_to_disk` wrote"
        )
    try:
        return datasets.load_from_disk(str(path))
    except (OSError, ValueError, KeyError, TypeError, IndexError, pa.ArrowException) as e:
        raise DatasetError(
            f"{path} looks like a saved dataset but cannot be read ({_short(e)}); it may be "
            "damaged or written by a newer `datasets`"
        ) from None


def _prepare(text: str, name: str, part):
    """(the split with its audio columns cast to ``decode=False``, whether it has our
    columns, the column holding the audio of a foreign split)."""
    from datasets import Audio

    cols = set(part.column_names)
    for col, feature in part.features.items():
        if isinstance(feature, Audio) and feature.decode:
            part = part.cast_column(col, Audio(decode=False))
    own = {"path", "kind", "hash"} <= cols and bool({"file", "audio"} & cols)
    if own:
        return part, True, None
    column = next((c for c, f in part.features.items() if isinstance(f, Audio)), None)
    if column is None and isinstance(part.features.get("audio"), dict):
        sub = part.features["audio"]
        if "bytes" in sub or "array" in sub:
            column = "audio"
    if column is None:
        raise DatasetError(
            f"{text} ({name}) has neither Disco-Musica's columns (path, kind, hash, file) nor "
            f"an audio column; its columns are {', '.join(part.column_names)}"
        )
    return part, False, column


def safe_path(path) -> str | None:
    """``path`` as an item path (POSIX, relative, normalised), or None when it is not one:
    empty, absolute, with a ``..`` part, a backslash or a NUL."""
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        return None
    if path.startswith("/") or re.match(r"[A-Za-z]:(/|$)", path):
        return None
    if ".." in path.split("/"):
        return None
    norm = posixpath.normpath(path)
    return None if norm in (".", "") else norm


def _check_paths(text: str, name: str, paths, seen: set[str]) -> None:
    for n, p in enumerate(paths):
        norm = safe_path(p)
        if norm is None:
            raise DatasetError(
                f"{text} ({name}, row {n}) has the unsafe path {p!r} (absolute, empty or with "
                "..); nothing was loaded"
            )
        if norm in seen:
            raise DatasetError(
                f"{text} ({name}) has two rows with the path {norm!r}; nothing was loaded"
            )
        seen.add(norm)


def load_hf(
    source: str | HfSource,
    into: Dataset,
    *,
    split: str | None = None,
    progress: ProgressFn | None = None,
    command: list | None = None,
) -> LoadReport:
    """Read the rows of ``source`` (see `open_hf_source`) into items of ``into``, as one
    change (step ``load-hf``, resumable: a rerun after a kill skips what is already there).

    Our own exports come back as they were: paths, IDs, hashes (checked: a row whose bytes
    do not match its hash is skipped), kinds, splits, groups, parents, steps, info, and
    metadata marked "import" (the ``estimated`` fields stay "estimate"). Rows of a foreign
    dataset become audio items: the audio column's bytes (or its decoded array written as
    WAV), at the audio's file name (or ``row-N.wav``), split from the split's name, and
    metadata from the columns of `FOREIGN_META`. An item already at a row's path with the
    same file and facts is left as it is; with other content it is replaced (older versions
    keep it).
    """
    require_datasets()
    src = source if isinstance(source, HfSource) else open_hf_source(source, split)
    if isinstance(source, HfSource) and split is not None and split not in src.splits:
        raise DatasetError(f"{src.where} was opened without the split {split!r}")
    splits = {split: src.splits[split]} if split is not None else src.splits
    report = LoadReport(src.where, into.name)
    step = {"name": "load-hf", "source": src.where, "split": split}
    resume = hashlib.sha256(json.dumps(step, sort_keys=True).encode()).hexdigest()
    total = sum(len(s) for s in splits.values())
    warned: set[str] = set()

    def warn(text: str) -> None:
        if text not in warned:
            warned.add(text)
            report.warnings.append(text)

    done = 0
    with _quiet_datasets(), into.change(step, f"load {src.where}", command, resume) as ch:
        by_path = {i.path: i for i in ch.items.values()}
        taken_ids = {i.id: i.path for i in ch.items.values()}
        used: set[str] = set()  # the paths of foreign rows so far (a name used twice gets ~N)
        for name, part in splits.items():
            if progress:
                progress(Progress("rows", done, total, name))
            if src.own[name]:
                rows = (_own_item(name, n, row, warn) for n, row in enumerate(part))
            else:
                rows = _foreign_items(name, part, src.audio_column[name], used, warn)
            for label, got in rows:
                done += 1
                if isinstance(got, str):
                    report.skipped.append((label, got))
                    continue
                item, data = got
                _put(ch, report, item, data, src.where, by_path, taken_ids)
                if progress and done % 64 == 0:
                    progress(Progress("rows", done, total, item.path))
        if progress:
            progress(Progress("rows", done, total, ""))
    report.version = ch.version
    return report


def _put(ch, report: LoadReport, item: Item, data: bytes, where: str, by_path, taken_ids):
    if item.hash and hashlib.sha256(data).hexdigest() != item.hash:
        report.skipped.append((item.path, "its bytes do not match its hash (damaged)"))
        return
    digest = ch.put_bytes(data)
    old = by_path.get(item.path)
    if old is not None:
        item.id = old.id
    elif not _ID.fullmatch(item.id or "") or item.id in taken_ids:
        item.id = item_id(item.path)
        if item.id in taken_ids:
            item.id = item_id(f"{item.path}#{where}")
    item.hash, item.size, item.source = digest, len(data), where
    key = item.split or UNASSIGNED_SPLIT
    report.splits[key] = report.splits.get(key, 0) + 1
    if old is not None:
        same = Item(**{**old.__dict__, "source": item.source}) == item
        if same:
            report.unchanged += 1
            return
        report.replaced += 1
    else:
        report.added += 1
    ch.put(item)
    by_path[item.path] = item
    taken_ids[item.id] = item.path


def split_of(split_name: str) -> str | None:
    """Our split for the rows of a `datasets` split: ``train``, ``validation``, ``test``
    as they are, ``valid``/``val``/``dev`` → validation, ``eval`` → test, any other name
    (``unassigned`` included) → none."""
    name = str(split_name).lower()
    return name if name in SPLITS else SPLIT_ALIASES.get(name)


def _own_item(name: str, n: int, row: dict, warn):
    """(label, (Item, bytes)) for one row of our own columns, or (label, reason skipped)."""
    path = safe_path(row.get("path"))  # checked before the change began
    label = path or f"{name} row {n}"
    kind = row.get("kind")
    if kind not in KINDS:
        return label, f"kind {kind!r} is not one Disco-Musica keeps ({', '.join(KINDS)})"
    data = row.get("file")
    audio = row.get("audio")
    if data is None and isinstance(audio, dict):
        data = audio.get("bytes")
    if data is None:
        return label, "the row holds no file (no bytes in file or audio)"
    try:
        info = json.loads(row.get("info") or "{}")
    except ValueError:
        info = None
    if not isinstance(info, dict):
        warn(f"info of {label} is not a JSON object; left empty")
        info = {}
    duration = row.get("duration_s")
    item = Item(
        id=str(row.get("id") or ""),
        path=path,
        hash=str(row.get("hash") or ""),
        kind=kind,
        size=len(data),
        duration_s=float(duration) if duration is not None else None,
        split=split_of(name),
        group=str(row.get("group") or ""),
        parent=row.get("parent") or None,
        step=str(row.get("step") or "load-hf"),
        info=info,
    )
    if "split" in row:  # our own column says it exactly (None: not assigned)
        item.split = row["split"] if row["split"] in SPLITS else None
    estimated = set(row.get("estimated") or [])
    for field_name in META_FIELDS:
        value = row.get(field_name)
        if value is None or value == [] or value == "":
            continue
        source = "estimate" if field_name in estimated else "import"
        item = _with_meta(item, field_name, value, source, field_name, warn)
    return label, (item, bytes(data))


def _with_meta(item: Item, name: str, value, source: str, column: str, warn) -> Item:
    try:
        return item.with_meta({name: value}, source)
    except DatasetError as e:
        warn(f"column {column}: {e}; left out")
        return item


def _foreign_items(name: str, part, column: str, used: set[str], warn):
    """(label, (Item, bytes)) for each row of a foreign split, or (label, reason skipped)."""
    features = part.features
    mapping = {f: c for f, cols in FOREIGN_META.items() for c in cols[::-1] if c in features}
    for n, row in enumerate(part):
        label = f"{name} row {n}"
        got = _audio_bytes(row.get(column))
        if isinstance(got, str):
            yield label, got
            continue
        data, ext, hint = got
        path = _foreign_path(hint, ext or _sniff_suffix(data), n, used)
        try:
            info, duration = _probe_audio(data, path)
        except Skip as e:
            yield label, str(e)
            continue
        used.add(path)
        item = Item(
            id="",
            path=path,
            hash="",
            kind="audio",
            size=len(data),
            duration_s=duration,
            split=split_of(name),
            step="load-hf",
            info=info,
        )
        for field_name, col in mapping.items():
            value = _foreign_value(row.get(col), features[col], field_name, col)
            if value is not None:
                item = _with_meta(item, field_name, value, "import", col, warn)
        yield path, (item, data)


def _foreign_value(value, feature, field_name: str, column: str):
    """A foreign column's value as metadata for ``field_name`` (class labels by name), or
    None when it does not fit."""
    from datasets import ClassLabel, List, Sequence

    if value is None:
        return None
    if isinstance(feature, ClassLabel) and isinstance(value, int):
        value = feature.int2str(value) if value >= 0 else None
    elif isinstance(feature, List | Sequence) and isinstance(value, list):
        inner = feature.feature
        if isinstance(inner, ClassLabel):
            value = [inner.int2str(v) for v in value if isinstance(v, int) and v >= 0]
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and field_name not in ("tempo",):
        if column == "label":  # a bare class number: kept as a tag, not as a genre
            return None
        value = str(value)
    if isinstance(value, list):
        words = [str(v) for v in value if isinstance(v, str | int | float)]
        return words if field_name in LIST_FIELDS else ", ".join(words)
    return value


def _audio_bytes(value):
    """(bytes, suffix to use, the file name it had) of one foreign audio value, or why not.
    A value with only a path is skipped: ``save_to_disk`` and the Hub embed the bytes, and
    a path named by someone else's dataset is never read from this computer."""
    import numpy as np

    if not isinstance(value, dict):
        return "no audio in the row"
    hint = value.get("path") or ""
    data = value.get("bytes")
    if data is not None:
        return bytes(data), None, hint
    array = value.get("array")
    if array is not None:
        import soundfile as sf

        rate = value.get("sampling_rate")
        if not isinstance(rate, int) or rate <= 0:
            return "an audio array without a sampling rate"
        a = np.asarray(array)
        if a.ndim == 2 and a.shape[0] < a.shape[1]:
            a = a.T  # (channels, samples) as datasets decodes it
        subtype = {"int16": "PCM_16", "int32": "PCM_32"}.get(a.dtype.name, "FLOAT")
        if subtype == "FLOAT":
            a = a.astype(np.float32)
        buf = io.BytesIO()
        sf.write(buf, a, rate, format="WAV", subtype=subtype)
        return buf.getvalue(), ".wav", hint
    return "the audio has neither bytes nor an array"


def _sniff_suffix(data: bytes) -> str | None:
    """The suffix of the sound format ``data`` is in, when libsndfile knows it."""
    import soundfile as sf

    try:
        return _SOUND_FORMATS.get(sf.info(io.BytesIO(data)).format)
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError):
        return None


def _probe_audio(data: bytes, path: str) -> tuple[dict, float | None]:
    """(facts, duration) of foreign audio to be kept at ``path``, read as `data import`
    reads a file (its facts alike); `Skip` with the reason when it cannot be read."""
    from engine.data.ingest import probe

    with tempfile.TemporaryDirectory(prefix="disco-musica-hf-") as tmp:
        file = Path(tmp) / posixpath.basename(path)
        file.write_bytes(data)
        try:
            return probe(file, "audio")
        except Skip as e:
            raise Skip(str(e).replace(str(file), path)) from None


def _foreign_path(hint: str, ext: str | None, n: int, used: set[str]) -> str:
    """A foreign row's item path: the file name its audio had (its folders dropped), else
    ``row-N``; the suffix of the sound's format when it is known (else the name's own, else
    ``.wav``); ``~N`` added when this load already used the name (an item that was there
    before is replaced)."""
    base = posixpath.basename(str(hint).replace("\\", "/"))
    if base in ("", ".", "..") or "\x00" in base:
        base = f"row-{n}"
    stem, suffix = posixpath.splitext(base)
    if ext is not None and suffix.lower() not in (ext, ".aif" if ext == ".aiff" else ext):
        suffix = ext
    suffix = suffix or ".wav"
    path = f"{stem}{suffix}"
    k = 1
    while path in used:
        path = f"{stem}~{k}{suffix}"
        k += 1
    return path


def _network_errors() -> tuple[type[BaseException], ...]:
    """What talking to the Hub raises when it fails: OSError (offline mode, HTTP status
    errors, no token) and the HTTP library's own errors (whichever huggingface_hub uses)."""
    import sys

    errors: list[type[BaseException]] = [OSError]
    for name in ("httpx", "httpx2"):
        if name in sys.modules and hasattr(sys.modules[name], "HTTPError"):
            errors.append(sys.modules[name].HTTPError)
    if "requests" in sys.modules:
        errors.append(sys.modules["requests"].exceptions.RequestException)
    return tuple(errors)


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."
