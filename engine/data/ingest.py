"""Import the user's files into a dataset: `import_sources`.

Sources are local files and folders, zip and tar archives, and cloud addresses (s3://,
gs://, dropbox://, gdrive://, hf://, http(s)://); `engine.data.sources` lists what each
holds. Every file is recognised by its extension (`detect_kind`) and confirmed by reading it
(`probe`); a file that cannot be read is skipped with the reason and the import goes on.

Where a file lands: a folder ``~/Music/stems`` as ``stems/<path inside>``, a single file as
its name, an archive ``songs.zip`` as ``songs/<member>``, ``s3://bucket/takes/`` as
``takes/<path inside>``. The same path with the same content is already there (nothing is
copied; cloud files are compared by the size and ETag or time their service reports, so a
rerun downloads nothing twice); the same path with new content replaces the item (it keeps
its ID, split, group and the metadata you set yourself); the same content under another path
is a new item whose bytes are stored once.

Metadata, strongest first: the user's sidecars (``metadata.csv`` / ``metadata.json`` in a
folder, ``NAME.json`` beside a file; marked "sidecar"), the file's own tags (mutagen; marked
"tags"), estimates from MIDI (tempo, meter, key, instruments; marked "estimate").

An import is one change of the dataset, resumable: a run killed half-way continues where it
stopped when run again with the same sources (see `engine.data.store.Dataset.change`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import posixpath
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.data import sources as src
from engine.data.sources import Skip
from engine.data.store import (
    META_FIELDS,
    Dataset,
    DatasetError,
    Item,
    disk_error,
    item_id,
)
from engine.progress import Progress, ProgressFn

# Extension → kind; every file is then read to confirm it.
KIND_SUFFIXES = {
    "audio": (".wav", ".wave", ".aif", ".aiff", ".aifc", ".flac", ".mp3", ".ogg", ".oga")
    + (".m4a", ".aac"),
    "midi": (".mid", ".midi"),
    "score": (".musicxml", ".mxl", ".xml", ".abc"),
    "image": (".jpg", ".jpeg", ".png", ".webp"),
    "video": (".mp4", ".mov", ".mkv"),
}
_KIND_OF = {s: k for k, suffixes in KIND_SUFFIXES.items() for s in suffixes}
PYAV_AUDIO = (".m4a", ".aac")  # read with PyAV (FFmpeg); the others with soundfile
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")
MIDI_TYPES = (0, 1)
CONFIRM_SECONDS = 1.0  # audio decoded to confirm a file reads (beyond its header)
STAGE = "files"
GROUP_BY = ("file", "folder")  # what makes one song (`import_sources`' group_by)
FROM_USER = ("user", "sidecar")  # kept when a file's new content replaces an item
TAG_KEYS = {  # metadata field → tag names (Vorbis comments; ID3 frames; MP4 atoms)
    "title": (("title",), ("TIT2",), ("\xa9nam",)),
    "artists": (("artist",), ("TPE1",), ("\xa9ART",)),
    "genre": (("genre",), ("TCON",), ("\xa9gen",)),
    "tempo": (("bpm", "tempo"), ("TBPM",), ("tmpo",)),
    "key": (("key", "initialkey"), ("TKEY",), ("----:com.apple.iTunes:initialkey",)),
    "caption": (("description", "comment"), ("COMM",), ("desc", "\xa9cmt")),
    "mood": (("mood",), ("TMOO",), ()),
}


@dataclass
class ImportReport:
    """What an import did."""

    added: list[Item] = field(default_factory=list)
    changed: list[Item] = field(default_factory=list)
    """Items whose path was there with other content (replaced)."""
    already: int = 0
    """Files already in the dataset at their path with the same content (nothing copied)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(source, one-line reason) for every file or source that could not be imported."""
    resumed: int = 0
    """Files an interrupted run of the same import had done (taken up, not redone)."""
    version: str | None = None
    """The new version's ID (None if nothing changed)."""
    notes: list[str] = field(default_factory=list)
    """Sidecar rows or values that were not used, and why."""

    @property
    def read_any(self) -> bool:
        """Whether anything was imported or found already there."""
        return bool(self.added or self.changed or self.already or self.resumed)

    def to_json(self) -> dict:
        return {
            "added": [i.path for i in self.added],
            "changed": [i.path for i in self.changed],
            "already": self.already,
            "resumed": self.resumed,
            "skipped": [{"source": s, "reason": r} for s, r in self.skipped],
            "notes": list(self.notes),
            "version": self.version,
        }


# ---- kinds and reading ------------------------------------------------------------------------
def detect_kind(name: str) -> str | None:
    """The kind a file name's extension promises ("audio", "midi", "score", "image",
    "video"), or None."""
    return _KIND_OF.get(posixpath.splitext(str(name).lower())[1])


def probe(path: str | Path, kind: str) -> tuple[dict, float | None]:
    """Read a file of ``kind`` to confirm it: (facts about it, duration in seconds or None).
    Raises `Skip` with the reason when it cannot be read."""
    info, duration, _ = _read(Path(path), kind, Path(path).name)
    return info, duration


def _read(path: Path, kind: str, name: str):
    """(info, duration_s, what was parsed) for ``path`` holding a file called ``name``."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise Skip(_os_reason(e)) from None
    if size == 0:
        raise Skip("empty file")
    readers = {
        "audio": _read_audio,
        "midi": _read_midi,
        "score": read_score,
        "image": _read_image,
        "video": _read_video,
    }
    try:
        return readers[kind](path, name)
    except Skip:
        raise
    except OSError as e:
        raise Skip(_os_reason(e)) from None
    except Exception as e:  # each reader's library raises its own kinds for a bad file
        why = getattr(e, "error_string", None) or _one_line(e)  # libsndfile's, without the path
        raise Skip(f"not a readable {_KIND_WORD[kind]} file ({why})") from None


_KIND_WORD = {
    "audio": "audio",
    "midi": "MIDI",
    "score": "score",
    "image": "image",
    "video": "video",
}


def _read_audio(path: Path, name: str):
    if name.lower().endswith(PYAV_AUDIO):
        return _read_audio_av(path)
    import soundfile as sf

    from engine.audio.io import quiet_decoder, sniff_audio

    with open(path, "rb") as f:
        head = f.read(4096)
    if sniff_audio(head) is None:  # before libsndfile hands random bytes to libmpg123
        raise Skip("not audio (neither WAV, AIFF, FLAC, OGG nor MP3 inside)")
    try:
        with quiet_decoder():
            i = sf.info(str(path))
    except Exception:
        if name.lower().endswith(".mp3"):  # an MP3 libsndfile does not take: try FFmpeg
            return _read_audio_av(path)
        raise
    if i.frames <= 0 or i.samplerate <= 0:
        raise Skip("no audio in it")
    with quiet_decoder():
        sf.read(str(path), frames=min(i.frames, int(CONFIRM_SECONDS * i.samplerate)))
    info = {
        "sample_rate": i.samplerate,
        "channels": i.channels,
        "frames": i.frames,
        "codec": f"{i.format} {i.subtype}",
    }
    return info, i.frames / i.samplerate, None


def _read_audio_av(path: Path):
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            raise Skip("no audio stream in it")
        s = c.streams.audio[0]
        if next(c.decode(s), None) is None:
            raise Skip("no audio in it")
        duration = _av_duration(c, s)
        rate = s.sample_rate or s.codec_context.sample_rate
        info = {
            "sample_rate": rate,
            "channels": s.channels,
            "frames": round(duration * rate) if duration else None,
            "codec": s.codec_context.name,
        }
        return info, duration, None


def _av_duration(c, s) -> float | None:
    if s.duration and s.time_base:
        return float(s.duration * s.time_base)
    if c.duration:
        return c.duration / 1_000_000
    return None


def _read_video(path: Path, name: str):
    import av

    with av.open(str(path)) as c:
        if not c.streams.video:
            raise Skip("no video stream in it")
        s = c.streams.video[0]
        if next(c.decode(s), None) is None:
            raise Skip("no video frames in it")
        duration = _av_duration(c, s)
        rate = s.average_rate or s.guessed_rate
        fps = float(rate) if rate else None
        frames = s.frames or (round(duration * fps) if duration and fps else None)
        info = {
            "fps": round(fps, 3) if fps else None,
            "frames": frames,
            "width": s.width,
            "height": s.height,
            "has_audio": bool(c.streams.audio),
            "codec": s.codec_context.name,
        }
        return info, duration, None


def _read_image(path: Path, name: str):
    from PIL import Image

    with Image.open(path) as im:
        if im.format not in IMAGE_FORMATS:
            raise Skip(f"a {im.format} image; JPEG, PNG and WebP are imported")
        im.load()
        info = {"width": im.width, "height": im.height, "mode": im.mode, "format": im.format}
    return info, None, None


def _read_midi(path: Path, name: str):
    import symusic

    data = path.read_bytes()
    if data[:4] != b"MThd" or len(data) < 14:
        raise Skip("not a MIDI file (no MThd header)")
    midi_type = int.from_bytes(data[8:10], "big")
    if midi_type not in MIDI_TYPES:
        raise Skip(f"MIDI type {midi_type}; types 0 and 1 are imported")
    score = symusic.Score.from_midi(data)
    notes = sum(len(t.notes) for t in score.tracks)
    if notes == 0:
        raise Skip("no notes in it")
    info = {
        "type": midi_type,
        "ticks_per_beat": score.tpq,
        "tracks": int.from_bytes(data[10:12], "big"),
        "notes": notes,
    }
    return info, round(float(score.to("second").end()), 3), score


def read_score(path: Path, name: str):
    import music21

    head = path.read_bytes()[:512]
    if head[:2] == b"PK":
        fmt, suffix = "musicxml", ".mxl"
    elif head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<":
        fmt, suffix = "musicxml", ".musicxml"
    else:
        fmt, suffix = "abc", ".abc"
    with tempfile.TemporaryDirectory(prefix="disco-import-") as tmp:
        named = Path(tmp) / f"score{suffix}"  # music21 tells .mxl by its name
        named.symlink_to(path.absolute())
        score = music21.converter.parse(str(named), format=fmt, forceSource=True)
    if score.metadata is not None and score.metadata.movementName == named.name:
        score.metadata.movementName = None  # music21 fills in the file name: not a title
    notes = len(score.flatten().notes)
    if notes == 0:
        raise Skip("no notes in it")
    parts = list(getattr(score, "parts", [])) or [score]
    marks = list(score.flatten().getElementsByClass(music21.tempo.MetronomeMark))
    bpm = marks[0].getQuarterBPM() if marks and marks[0].getQuarterBPM() else 120.0
    info = {
        "format": "mxl" if suffix == ".mxl" else fmt,
        "parts": len(parts),
        "measures": len(parts[0].getElementsByClass(music21.stream.Measure)),
        "notes": notes,
    }
    return info, round(float(score.highestTime) * 60.0 / bpm, 3), score


# ---- metadata -----------------------------------------------------------------------------------
def file_tags(path: Path) -> dict:
    """Metadata from a file's own tags (mutagen): title, artists, genre, tempo, key, caption,
    mood, where present (raw text)."""
    try:
        import mutagen

        f = mutagen.File(str(path))
    except Exception:  # no tags mutagen can read is no tags
        return {}
    tags = getattr(f, "tags", None)
    if not tags:
        return {}
    out = {}
    style = _tag_style(tags)
    for fld, names in TAG_KEYS.items():
        for key in names[style]:
            values = _tag_values(tags, key, style)
            if values:
                out[fld] = ", ".join(values) if fld == "artists" else values[0]
                break
    if "key" in out:
        out["key"] = _key_text(out["key"])
    return out


def _tag_style(tags) -> int:
    if hasattr(tags, "getall"):
        return 1  # ID3
    if type(tags).__name__ == "MP4Tags":
        return 2
    return 0  # Vorbis comments and the like


def _tag_values(tags, key: str, style: int) -> list[str]:
    if style == 1:
        frames = tags.getall(key)
        values = []
        for fr in frames:
            if key == "TCON" and hasattr(fr, "genres"):
                values += fr.genres
            else:
                values += [str(t) for t in getattr(fr, "text", [])]
        return [v.strip() for v in values if str(v).strip()]
    try:
        raw = tags.get(key)
    except (KeyError, ValueError):
        return []
    if raw is None:
        return []
    raw = raw if isinstance(raw, list) else [raw]
    out = []
    for v in raw:
        if isinstance(v, bytes):  # MP4 freeform atoms
            v = v.decode("utf-8", "replace")
        out.append(str(v).strip())
    return [v for v in out if v]


_KEY_RE = re.compile(r"^\s*([A-Ga-g])\s*([#♯b♭]?)\s*(m|min|minor|maj|major)?\s*$")


def _key_text(text: str) -> str:
    """``Am`` / ``F# major`` / ``Bbmin`` → ``A minor`` / ``F# major`` / ``Bb minor``; other
    spellings (Camelot codes…) as they are."""
    m = _KEY_RE.match(str(text))
    if not m:
        return str(text).strip()
    tonic = m.group(1).upper() + m.group(2).replace("♯", "#").replace("♭", "b")
    mode = "minor" if (m.group(3) or "").lower() in ("m", "min", "minor") else "major"
    return f"{tonic} {mode}"


def midi_estimates(score) -> dict:
    """Tempo (first tempo event), meter (first time signature), key (key signature, else
    the key finder on the notes' pitch classes) and instruments (GM families; channel 10 is
    "drums") of a `symusic.Score`."""
    import numpy as np

    from engine import names
    from engine.symbolic import theory

    out: dict = {}
    if len(score.tempos):
        out["tempo"] = round(float(score.tempos[0].qpm), 2)
    if len(score.time_signatures):
        ts = score.time_signatures[0]
        out["meter"] = f"{ts.numerator}/{ts.denominator}"
    if len(score.key_signatures):
        ks = score.key_signatures[0]
        minor = bool(ks.tonality)
        tonic = (7 * int(ks.key) + (9 if minor else 0)) % 12
        out["key"] = f"{names.TONICS[tonic]} {'minor' if minor else 'major'}"
    else:
        pitches, durations = [], []
        for t in score.tracks:
            if not t.is_drum and len(t.notes):
                arr = t.notes.numpy()
                pitches.append(arr["pitch"])
                durations.append(arr["duration"])
        if pitches:
            profile = theory.pitch_class_profile(np.concatenate(pitches), np.concatenate(durations))
            with contextlib.suppress(ValueError):
                tonic, mode = theory.key_from_profile(profile)
                out["key"] = f"{names.TONICS[tonic]} {mode}"
    instruments = []
    for t in score.tracks:
        if not len(t.notes):
            continue
        if t.is_drum:
            instruments.append("drums")
        else:
            import pretty_midi

            instruments.append(pretty_midi.program_to_instrument_class(int(t.program)).lower())
    if instruments:
        out["instruments"] = list(dict.fromkeys(instruments))
    return out


def _score_tags(score) -> dict:
    md = getattr(score, "metadata", None)
    out = {}
    if md is not None:
        title = md.title or md.movementName
        if title and title != "Music21 Fragment":
            out["title"] = title
        if md.composer and md.composer != "Music21":  # music21's placeholder
            out["artists"] = md.composer
    return out


def _with_meta(item: Item, values: dict, source: str, notes: list[str], where: str) -> Item:
    """``item`` with each good value set (a bad one is noted and left out)."""
    for k, v in values.items():
        try:
            item = item.with_meta({k: v}, source)
        except DatasetError as e:
            notes.append(f"{where}: {source} {k}={str(v)[:60]!r} not used ({e})")
    return item


# ---- the import -------------------------------------------------------------------------------
def resume_key(sources: list[str]) -> str:
    """Names an import by its sources, so that a rerun of an interrupted one continues."""
    body = json.dumps(sorted(src.clean_source(s) for s in sources))
    return hashlib.sha256(("import\n" + body).encode()).hexdigest()


def import_sources(
    ds: Dataset,
    sources: list[str],
    *,
    sidecars: bool = True,
    group_by: str = "file",
    progress: ProgressFn | None = None,
    command: list | None = None,
) -> ImportReport:
    """Import files, folders, archives and cloud addresses into ``ds`` as one new version.

    Never stops on a bad file (each is in ``report.skipped`` with the reason); a full or
    read-only disk raises `DatasetError` and leaves HEAD and every manifest as they were
    (a rerun continues). ``progress`` gets ``Progress("files", done, total, path)``.

    ``group_by`` says which new files belong to one song (a group never straddles splits):
    ``"file"`` (each file is a song of its own) or ``"folder"`` (the files of one folder
    are one song: the stems and the mix of a DAW export). An item already in keeps its group.
    """
    if group_by not in GROUP_BY:
        raise DatasetError(f"group by {group_by!r}? give one of {', '.join(GROUP_BY)}")
    report = ImportReport()
    step = {"name": "import", "sources": [src.clean_source(s) for s in sources]}
    step["sidecars"] = sidecars
    step["group_by"] = group_by
    shown = " ".join(step["sources"])
    message = f"import {shown if len(shown) < 200 else shown[:197] + '...'}"
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(src.quiet_clients())
            ch = stack.enter_context(
                ds.change(
                    step=step,
                    message=message,
                    command=src.clean_command(command),
                    resume=resume_key(sources),
                )
            )
            entries = []
            for text in sources:
                found = src.expand(
                    text,
                    stack,
                    sidecars=sidecars,
                    fields=META_FIELDS,
                    exclude=ds.path,
                    tmp_dir=ds.path / "objects",
                )
                entries += found.entries
                report.skipped += found.skipped
                report.notes += found.notes
            _Importer(ds, ch, report, progress, group_by).run(entries)
        report.version = ch.version
    except OSError as e:  # writing the dataset: a full disk, a read-only folder
        raise disk_error(e, ds.path) from None
    return report


class _Importer:
    def __init__(self, ds: Dataset, ch, report: ImportReport, progress, group_by: str = "file"):
        self.ds, self.ch, self.report, self.progress = ds, ch, report, progress
        self.group_by = group_by
        self.by_path = {i.path: i for i in ch.items.values()}
        self.done = {i.source: i for i in ch.done}
        self.claimed: dict[str, str] = {}  # dataset path → the source that took it this run
        self._referenced: set[str] | None = None

    def run(self, entries: list) -> None:
        total = len(entries)
        for n, e in enumerate(entries):
            if self.progress:
                self.progress(Progress(STAGE, n, total, e.path))
            try:
                self.one(e)
            except Skip as why:
                self.report.skipped.append((e.source, str(why)))
        if self.progress:
            self.progress(Progress(STAGE, total, total, ""))

    def one(self, e) -> None:
        if e.path in self.claimed:
            raise Skip(f"{e.path} is already taken by {self.claimed[e.path]}; rename one of them")
        self.claimed[e.path] = e.source
        if e.source in self.done and self.done[e.source].path == e.path:
            self.report.resumed += 1
            return
        kind = detect_kind(e.path)
        if kind is None:
            ext = posixpath.splitext(e.path)[1]
            raise Skip(f"unknown file type ({ext or 'no extension'})")
        old = self.by_path.get(e.path)
        if e.local is not None:
            self.local(e, kind, old)
        else:
            self.streamed(e, kind, old)

    # a file on this computer: hash it only to compare, copy it only when it is new
    def local(self, e, kind: str, old: Item | None) -> None:
        try:
            size = e.local.stat().st_size
        except OSError as err:
            raise Skip(_os_reason(err)) from None
        if old is not None and old.size == size and _sha256(e.local) == old.hash:
            self.already(e, old)
            return
        info, duration, parsed = _read(e.local, kind, e.path)
        try:
            f = open(e.local, "rb")
        except OSError as err:
            raise Skip(_os_reason(err)) from None
        with f:
            digest = self.ch.put_stream(_SourceReader(f))
        self.store(e, kind, old, digest, size, info, duration, parsed, e.local)

    # an archive member or a cloud file: compare stamps, then stream it into the store
    def streamed(self, e, kind: str, old: Item | None) -> None:
        if old is not None and _trusted(e.stamp) and old.info.get("remote") == e.stamp:
            self.already(e, old)
            return
        try:
            opened = e.opener()
        except Skip:
            raise
        except Exception as err:
            raise Skip(src.remote_reason(err, e.source)) from None
        with opened as f:
            reader = _SourceReader(f, e.source)
            digest = self.ch.put_stream(reader)
        if old is not None and old.hash == digest:
            self.already(e, old, replace(old, info={**old.info, "remote": e.stamp}))
            return
        obj = self.ds.object_path(digest)
        try:
            info, duration, parsed = _read(obj, kind, e.path)
        except Skip:
            self.forget(digest)
            raise
        if e.stamp:
            info["remote"] = e.stamp
        self.store(e, kind, old, digest, reader.count, info, duration, parsed, obj)

    def store(self, e, kind, old, digest, size, info, duration, parsed, path: Path) -> None:
        new_id = old.id if old is not None else item_id(e.path)
        item = Item(
            id=new_id,
            path=e.path,
            hash=digest,
            kind=kind,
            size=size,
            duration_s=round(duration, 3) if duration is not None else None,
            split=old.split if old is not None else None,
            group=old.group if old is not None and old.group else self.group_of(e.path, new_id),
            source=e.source,
            info=info,
        )
        notes = self.report.notes
        if kind == "midi" and parsed is not None:
            item = _with_meta(item, midi_estimates(parsed), "estimate", notes, e.source)
        if kind in ("audio", "video"):
            item = _with_meta(item, file_tags(path), "tags", notes, e.source)
        if kind == "score" and parsed is not None:
            item = _with_meta(item, _score_tags(parsed), "tags", notes, e.source)
        item = _with_meta(item, e.sidecar, "sidecar", notes, e.source)
        if old is not None:  # what the user set with data tag / data edit stays
            kept = {k: v for k, v in old.meta.items() if old.meta_from.get(k) == "user"}
            item = _with_meta(item, kept, "user", notes, e.source)
        self.ch.put(item)
        self.by_path[item.path] = item
        (self.report.changed if old is not None else self.report.added).append(item)

    def group_of(self, path: str, new_id: str) -> str:
        folder = posixpath.dirname(path)
        return folder if self.group_by == "folder" and folder else new_id

    def already(self, e, old: Item, item: Item | None = None) -> None:
        """The file is there (as ``item``, default ``old``): only newer sidecar values (or
        a cloud file's new stamp) are taken."""
        item = item or old
        if e.sidecar:
            fresh = {k: v for k, v in e.sidecar.items() if old.meta_from.get(k) not in ("user",)}
            item = _with_meta(item, fresh, "sidecar", self.report.notes, e.source)
        if item != old:
            self.ch.put(item)
            self.by_path[item.path] = item
        self.report.already += 1

    def forget(self, digest: str) -> None:
        """Remove the stored copy of a file that could not be read, unless some version
        holds the same bytes."""
        if self._referenced is None:
            self._referenced = set()
            for manifest in (self.ds.path / "versions").glob("*.jsonl"):
                with open(manifest, encoding="utf-8") as f:
                    for line in f:
                        if line.strip():
                            d = json.loads(line)
                            self._referenced.add(d.get("hash"))
                            self._referenced.update((d.get("extras") or {}).values())
        held = self._referenced | {i.hash for i in self.ch.items.values()}
        if digest not in held:
            self.ds.object_path(digest).unlink(missing_ok=True)


class _SourceReader:
    """A source's stream for `Change.put_stream`: its read errors become a `Skip` (the file
    is skipped), so that an `OSError` out of the store is always the dataset's own disk."""

    def __init__(self, f, where: str = ""):
        self.f, self.where, self.count = f, where, 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.f.read(n)
        except OSError as e:
            if self.where and src.is_url(self.where):
                raise Skip(src.remote_reason(e, self.where)) from None
            raise Skip(_os_reason(e)) from None
        except Exception as e:  # a cloud client's or an archive's own errors
            raise Skip(src.remote_reason(e, self.where) if self.where else _one_line(e)) from None
        self.count += len(data)
        return data


def _trusted(stamp: dict | None) -> bool:
    """Whether a stamp tells content apart (a size alone does not: a re-rendered take of the
    same length has the same size)."""
    return bool(stamp) and any(k in stamp for k in ("etag", "mtime", "crc"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise Skip(_os_reason(e)) from None
    return h.hexdigest()


def _os_reason(e: OSError) -> str:
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (not readable)"
    if e.errno == errno.ENOENT:
        return "gone (removed while importing?)"
    return (e.strerror or str(e)).lower()


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) < 200 else text[:197] + "..."
