"""Public datasets: `CATALOG` says what each holds, where it comes from, how big it is, how
to check it and under which licence; `get_public` downloads it (resumable), checks it,
unpacks the music and imports it into a dataset with its own metadata.

``data get NAME --into DATASET`` goes through these steps:

1. `plan` — what will be fetched (from `CATALOG`) and what the cache already holds; the
   command shows it and asks before any download.
2. `download` — each file into the cache folder (`datasets_cache`), as ``FILE.part`` until
   it is whole; a download that stops is resumed with an HTTP Range request the next time.
   The whole file is then checked against the checksum its source publishes (md5, sha1 or
   sha256); a mismatch removes the file and nothing is imported. Where the source publishes
   none, the summary says so and the sha256 of what arrived is recorded instead.
3. `unpack` — only the music files (and only ``limit`` / ``only`` of them when asked) into
   a new ``<cache>/<name>/.unpacked-…`` folder, through `tarfile`'s ``data`` filter and
   `zipfile`'s own path cleaning (no member lands outside the folder, no links or devices are made).
4. `engine.data.ingest.import_sources` — the unpacked folder is imported (a version whose
   step is ``import``); the unpacked copy is then removed (the dataset holds the files; the
   archive stays in the cache so that another ``data get`` downloads nothing).
5. the dataset's own metadata is set on the imported items (marked ``import``, never over
   what you set yourself or a sidecar) in a second version whose step is
   ``{"name": "get", …}``: the dataset, every file's URL, size, published checksum and its
   origin, the sha256 of what arrived, the licence and the citation.

The music21 corpus needs no download: it is the one installed with the music21 package.

``progress`` gets ``Progress("download", bytes, total bytes or None, file name)``, then
``"unpack"`` (music files unpacked, or copied from the music21 corpus) and the import's
``"files"``.
"""

from __future__ import annotations

import csv
import errno
import fnmatch
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from engine.data.store import HOME_ENV, Dataset, DatasetError, Item
from engine.progress import Progress, ProgressFn

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0
ALGORITHMS = ("md5", "sha1", "sha256")
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


# ---- the catalogue ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Remote:
    """One file a public dataset is downloaded as."""

    url: str
    filename: str
    size: int | None
    """Bytes, as far as the source says (None: it does not say)."""
    size_note: str
    """How exact ``size`` is and where it comes from."""
    checksum: str | None
    """The published checksum (hex), or None where the source publishes none."""
    algorithm: str | None
    """``md5``, ``sha1`` or ``sha256`` (None with no checksum)."""
    checksum_from: str
    """Where the checksum is published (or why there is none)."""
    role: str = "music"
    """``music`` (unpacked and imported) or ``metadata`` (read for the metadata only)."""


@dataclass(frozen=True)
class PublicDataset:
    """A public dataset `get_public` can fetch."""

    name: str
    title: str
    holds: str
    homepage: str
    files: tuple[Remote, ...]
    licence: str
    licence_url: str
    citation: str
    imports: str
    """What of it becomes items."""
    metadata: str
    """How its own metadata maps to the dataset's fields."""
    music_suffixes: tuple[str, ...] = ()
    """Members (or corpus files) imported: those ending in one of these."""
    tags: tuple[str, ...] = field(default_factory=tuple)
    """Tags every imported item gets."""

    @property
    def download_bytes(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]


MAESTRO_CITATION = (
    "Curtis Hawthorne, Andriy Stasyuk, Adam Roberts, Ian Simon, Cheng-Zhi Anna Huang, Sander "
    "Dieleman, Erich Elsen, Jesse Engel and Douglas Eck. Enabling Factorized Piano Music "
    "Modeling and Generation with the MAESTRO Dataset. ICLR 2019. "
    "https://openreview.net/forum?id=r1lYRjC9F7"
)
LAKH_CITATION = (
    "Colin Raffel. Learning-Based Methods for Comparing Sequences, with Applications to "
    "Audio-to-MIDI Alignment and Matching. PhD thesis, Columbia University, 2016."
)
FMA_CITATION = (
    "Michaël Defferrard, Kirell Benzi, Pierre Vandergheynst and Xavier Bresson. FMA: A "
    "Dataset for Music Analysis. ISMIR 2017. https://arxiv.org/abs/1612.01840"
)
MUSIC21_CITATION = (
    "Michael Scott Cuthbert and Christopher Ariza. music21: A Toolkit for Computer-Aided "
    "Musicology and Symbolic Music Data. ISMIR 2010."
)
MUSPY_NOTE = (
    "not published by the source: the value MusPy's dataset catalogue checks downloads "
    "against, github.com/salu133445/muspy muspy/datasets/{}"
)
FMA_README = "published in the FMA README, github.com/mdeff/fma"

CATALOG: dict[str, PublicDataset] = {
    "maestro": PublicDataset(
        name="maestro",
        title="MAESTRO v3.0.0 (MIDI)",
        holds=(
            "1,276 virtuoso piano performances (about 200 hours) from the International "
            "Piano-e-Competition, recorded on Yamaha Disklavier pianos: MIDI with key "
            "velocities and pedals, composer, title, year and a train/validation/test split"
        ),
        homepage="https://magenta.tensorflow.org/datasets/maestro",
        files=(
            Remote(
                url="https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/"
                "maestro-v3.0.0-midi.zip",
                filename="maestro-v3.0.0-midi.zip",
                size=58_416_533,
                size_note="exact",
                checksum="70470ee253295c8d2c71e6d9d4a815189e35c89624b76d22fce5a019d5dde12c",
                algorithm="sha256",
                checksum_from=MUSPY_NOTE.format("maestro.py"),
            ),
        ),
        licence="CC BY-NC-SA 4.0 (non-commercial, share alike, attribution)",
        licence_url="https://creativecommons.org/licenses/by-nc-sa/4.0/",
        citation=MAESTRO_CITATION,
        imports="the .midi files under maestro-v3.0.0/ (the archive holds no audio)",
        metadata=(
            "maestro-v3.0.0.csv: canonical_composer → artists, canonical_title → title, "
            "split → the item's split (train/validation/test), year → a tag; tag maestro"
        ),
        music_suffixes=(".midi", ".mid"),
        tags=("maestro",),
    ),
    "lakh": PublicDataset(
        name="lakh",
        title="Lakh MIDI Dataset v0.1, clean MIDI subset",
        holds=(
            "about 17,000 MIDI files of popular songs, in a folder per artist and named by "
            "title (the names are known to be somewhat inaccurate)"
        ),
        homepage="https://colinraffel.com/projects/lmd/",
        files=(
            Remote(
                url="http://hog.ee.columbia.edu/craffel/lmd/clean_midi.tar.gz",
                filename="clean_midi.tar.gz",
                size=None,
                size_note="not published (a few hundred MB)",
                checksum=None,
                algorithm=None,
                checksum_from="the Lakh MIDI page publishes no checksum",
            ),
        ),
        licence="CC BY 4.0 (attribution)",
        licence_url="https://creativecommons.org/licenses/by/4.0/",
        citation=LAKH_CITATION,
        imports="the .mid files under clean_midi/",
        metadata=(
            "clean_midi/ARTIST/TITLE.mid: the folder → artists, the file name → title "
            "(a trailing .1, .2 of another version left out); tag lakh"
        ),
        music_suffixes=(".mid", ".midi"),
        tags=("lakh",),
    ),
    "lakh-full": PublicDataset(
        name="lakh-full",
        title="Lakh MIDI Dataset v0.1, LMD-full",
        holds=(
            "176,581 deduplicated MIDI files, each named by its MD5 (a few thousand are "
            "likely corrupt and are skipped with the reason)"
        ),
        homepage="https://colinraffel.com/projects/lmd/",
        files=(
            Remote(
                url="http://hog.ee.columbia.edu/craffel/lmd/lmd_full.tar.gz",
                filename="lmd_full.tar.gz",
                size=1_768_163_879,
                size_note="exact",
                checksum="6fcfe2ac49ca08f3f214cec86ab138d4fc4dabcd7f27f491a838dae6db45a12b",
                algorithm="sha256",
                checksum_from=MUSPY_NOTE.format("lmd.py"),
            ),
        ),
        licence="CC BY 4.0 (attribution)",
        licence_url="https://creativecommons.org/licenses/by/4.0/",
        citation=LAKH_CITATION,
        imports="the .mid files under lmd_full/",
        metadata="none (files are named by their MD5); tag lakh",
        music_suffixes=(".mid", ".midi"),
        tags=("lakh",),
    ),
    "fma-small": PublicDataset(
        name="fma-small",
        title="FMA small (Free Music Archive)",
        holds=(
            "8,000 30-second MP3 clips, 1,000 of each of 8 top genres, with title, artist, "
            "genre, tags, licence and a train/validation/test split per track"
        ),
        homepage="https://github.com/mdeff/fma",
        files=(
            Remote(
                url="https://os.unil.cloud.switch.ch/fma/fma_small.zip",
                filename="fma_small.zip",
                size=int(7.2 * 2**30),
                size_note="about 7.2 GiB, as published",
                checksum="ade154f733639d52e35e32f5593efe5be76c6d70",
                algorithm="sha1",
                checksum_from=FMA_README,
            ),
            Remote(
                url="https://os.unil.cloud.switch.ch/fma/fma_metadata.zip",
                filename="fma_metadata.zip",
                size=342 * 2**20,
                size_note="about 342 MiB, as published",
                checksum="f0df49ffe5f2a6008d7dc83c6915b31835dfe733",
                algorithm="sha1",
                checksum_from=FMA_README,
                role="metadata",
            ),
        ),
        licence=(
            "audio: the Creative Commons licence each artist chose (kept as a tag on each "
            "track); metadata: CC BY 4.0; meant for research"
        ),
        licence_url="https://github.com/mdeff/fma#license--co",
        citation=FMA_CITATION,
        imports="the .mp3 files under fma_small/",
        metadata=(
            "fma_metadata/tracks.csv by track ID: track genre_top → genre, track title → "
            "title, artist name → artists, set split (training/validation/test) → the item's "
            "split, track tags → tags, track license → a tag 'licence: …'; tag fma"
        ),
        music_suffixes=(".mp3",),
        tags=("fma",),
    ),
    "music21": PublicDataset(
        name="music21",
        title="music21 core corpus",
        holds=(
            "the scores installed with the music21 package: Bach chorales, Beethoven, "
            "Haydn and Mozart quartets, Monteverdi madrigals, Palestrina, thousands of folk "
            "tunes in ABC, … (MusicXML and ABC; Humdrum and Roman-numeral files are left out)"
        ),
        homepage="https://music21.org/music21docs/about/referenceCorpus.html",
        files=(),
        licence=(
            "freely distributable, per the music21 documentation (music21 does not own most "
            "of the works; they are free in the US to its authors' knowledge, not necessarily "
            "everywhere); music21 itself is BSD 3-clause"
        ),
        licence_url="https://music21.org/music21docs/moduleReference/moduleCorpus.html",
        citation=MUSIC21_CITATION,
        imports=(
            "the corpus's MusicXML (.mxl, .xml, .musicxml) and ABC files, one format per work"
        ),
        metadata=(
            "composer → artists and title → title as each score states them (read by the "
            "import, marked as from the file's tags); the collection folder (bach, "
            "essenFolksong, …) → a tag; tag music21"
        ),
        music_suffixes=(".mxl", ".xml", ".musicxml", ".abc", ".mid", ".midi"),
        tags=("music21",),
    ),
}
NAMES = tuple(CATALOG)


def entry(name: str, catalog: dict[str, PublicDataset] | None = None) -> PublicDataset:
    catalog = CATALOG if catalog is None else catalog
    if name not in catalog:
        raise DatasetError(f"no public dataset {name!r}; the choices are {', '.join(catalog)}")
    return catalog[name]


# ---- where downloads go ----------------------------------------------------------------------
def cache_home() -> Path:
    """Disco-Musica's cache folder: $DISCO_MUSICA_HOME/cache, else the user cache folder."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser() / "cache"
    import platformdirs

    return platformdirs.user_cache_path("disco-musica")


def datasets_cache(cache: str | Path | None = None) -> Path:
    """Where public datasets are downloaded: ``cache`` as given, else ``cache_home()/datasets``."""
    if cache is not None:
        return Path(cache).expanduser()
    return cache_home() / "datasets"


UNPACK_PREFIX = ".unpacked-"  # the folder an archive is unpacked into, made anew each run


def check_cache(folder: Path) -> None:
    """Refuse a cache folder that is a file or cannot be made (before anything is fetched)."""
    p = folder
    while not p.exists() and p.parent != p:
        p = p.parent
    if p.exists() and not p.is_dir():
        raise DatasetError(f"--cache {folder}: {p} is a file, not a folder; give a folder")
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise DatasetError(f"--cache {folder}: {p} cannot be written; give another folder")


# ---- what would be fetched -------------------------------------------------------------------
def plan(
    name: str,
    *,
    catalog: dict[str, PublicDataset] | None = None,
    cache: str | Path | None = None,
) -> dict:
    """What `get_public` would fetch: the catalogue entry and, per file, whether the cache
    already holds it whole (``cached``) or a part of it (``partial`` bytes). Nothing is
    read beyond file sizes."""
    e = entry(name, catalog)
    folder = datasets_cache(cache) / e.name
    files = []
    to_fetch: int | None = 0
    for f in e.files:
        final, part = folder / f.filename, folder / (f.filename + ".part")
        cached = final.is_file()
        partial = part.stat().st_size if part.is_file() else 0
        files.append({**_remote_json(f), "cached": cached, "partial": partial})
        if not cached:
            to_fetch = None if f.size is None or to_fetch is None else to_fetch + f.size - partial
    out = {
        "name": e.name,
        "title": e.title,
        "holds": e.holds,
        "homepage": e.homepage,
        "licence": e.licence,
        "licence_url": e.licence_url,
        "citation": e.citation,
        "imports": e.imports,
        "metadata": e.metadata,
        "files": files,
        "cache": str(folder),
        "download_bytes": to_fetch,
        "needs_download": any(not f["cached"] for f in files),
    }
    if not e.files:
        out["source"] = _music21_source()
    return out


def _remote_json(f: Remote) -> dict:
    return {
        "url": f.url,
        "filename": f.filename,
        "size": f.size,
        "size_note": f.size_note,
        "checksum": f.checksum,
        "algorithm": f.algorithm,
        "checksum_from": f.checksum_from,
        "role": f.role,
    }


def _music21_source() -> dict:
    import music21
    from music21 import corpus

    return {
        "package": "music21",
        "version": music21.__version__,
        "folder": str(Path(corpus.__file__).parent),
    }


# ---- download --------------------------------------------------------------------------------
@dataclass
class Fetched:
    """A downloaded, checked file."""

    path: Path
    sha256: str
    verified: bool
    """True when it matched a published checksum (False: none is published)."""
    cached: bool
    """True when it was already in the cache (nothing downloaded)."""
    resumed_from: int = 0
    """Bytes a previous, interrupted download had kept."""


def _hashes(path: Path, algorithm: str | None) -> tuple[str, str | None]:
    """(sha256, the ``algorithm`` digest) of a file, read once."""
    sha = hashlib.sha256()
    other = hashlib.new(algorithm) if algorithm and algorithm != "sha256" else None
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            sha.update(chunk)
            if other is not None:
                other.update(chunk)
    s = sha.hexdigest()
    return s, (s if algorithm == "sha256" else other.hexdigest() if other else None)


def verify(path: Path, remote: Remote) -> tuple[str, bool]:
    """(sha256, whether it matched the published checksum) of a whole file; a mismatch
    removes the file and raises `DatasetError`."""
    sha, digest = _hashes(path, remote.algorithm)
    if remote.checksum is None:
        return sha, False
    if digest != remote.checksum.lower():
        path.unlink(missing_ok=True)
        raise DatasetError(
            f"{remote.filename} does not match its published {remote.algorithm} "
            f"(expected {remote.checksum}, got {digest}): the file was removed and nothing "
            "was imported; run the command again to download it anew"
        )
    return sha, True


def download(
    remote: Remote,
    folder: Path,
    *,
    progress: ProgressFn | None = None,
    timeout_s: float = TIMEOUT_S,
) -> Fetched:
    """Download ``remote`` into ``folder`` (``FILE.part`` until whole, resumed with an HTTP
    Range request when a part is there), check it and return it. A file already in the
    cache is checked and kept. ``progress`` gets ``Progress("download", bytes, total)``."""
    import http.client
    import urllib.error
    import urllib.request

    from engine import __version__

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _disk_error(e, folder) from None
    final = folder / remote.filename
    part = folder / (remote.filename + ".part")
    if final.is_file():
        sha, ok = verify(final, remote)
        return Fetched(final, sha, ok, cached=True)
    have = part.stat().st_size if part.is_file() else 0
    resumed_from = have
    headers = {"User-Agent": f"disco-musica/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(remote.url, headers=headers)
    exact = remote.size if remote.size_note == "exact" else None
    done, total = have, exact  # total: what the server says, else the catalogue's exact size

    def stopped(why: str) -> DatasetError:
        text = f"the download of {remote.filename} from {remote.url} stopped ({why}); "
        if done:
            text += (
                f"run the command again to resume (the {done:,} bytes received are kept in {part})"
            )
        else:
            text += "nothing was received: check the network connection and run the command again"
        return DatasetError(text)

    try:
        try:
            r = urllib.request.urlopen(request, timeout=timeout_s)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing left past what we have: the part is whole
                r = None
            else:
                raise
        if r is not None:
            with r:
                length = r.headers.get("Content-Length")
                length = int(length) if length and length.isdigit() else None
                if have and r.status == 206:
                    mode = "ab"
                    total = have + length if length is not None else exact
                else:  # the server sent the whole file: start again
                    mode, done, resumed_from = "wb", 0, 0
                    total = length if length is not None else exact
                if progress:
                    progress(Progress("download", done, total, remote.filename))
                with open(part, mode) as f:
                    while chunk := r.read(CHUNK_BYTES):
                        f.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(Progress("download", done, total, remote.filename))
                    f.flush()
                    os.fsync(f.fileno())
    except urllib.error.HTTPError as e:
        raise DatasetError(
            f"{remote.url} answered {e.code} {e.reason}; the file may have moved (see "
            f"{_home_of(remote)}), or try again later"
        ) from None
    except urllib.error.URLError as e:
        why = getattr(e.reason, "strerror", None) or str(e.reason)
        raise stopped(why) from None
    except OSError as e:
        if e.errno in DISK_ERRORS or e.filename is not None:
            raise _disk_error(e, folder) from None
        why = e.strerror or str(e) or type(e).__name__
        raise stopped(why) from None
    except http.client.HTTPException as e:
        why = str(e) or type(e).__name__
        raise stopped(why) from None
    if total is not None and done < total:
        raise stopped(f"{done:,} of {total:,} bytes")
    os.replace(part, final)
    sha, ok = verify(final, remote)
    return Fetched(final, sha, ok, cached=False, resumed_from=resumed_from)


def _home_of(remote: Remote) -> str:
    for e in CATALOG.values():
        if any(f.url == remote.url for f in e.files):
            return e.homepage
    return "the dataset's home page"


def _disk_error(e: OSError, where: Path) -> DatasetError:
    from engine.data.store import disk_error

    return disk_error(e, where)


# ---- unpack ----------------------------------------------------------------------------------
def _clean_member(name: str) -> str | None:
    """A member's path as it lands (POSIX, relative), or None for one outside the folder."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or name.startswith("/") or ":" in parts[0]:
        return None
    return "/".join(parts)


def selector(
    suffixes: tuple[str, ...], only: str | None = None, prefix: str = ""
) -> Callable[[str], bool]:
    """Which member paths are music to import: ``suffixes``, under ``prefix``, matching the
    glob ``only`` (on the path, or on the path below the top folder)."""

    def want(path: str) -> bool:
        low = path.lower()
        if not low.endswith(suffixes) or not path.startswith(prefix):
            return False
        if any(p.startswith(".") or p == "__MACOSX" for p in path.split("/")):
            return False
        if only:
            below = path.split("/", 1)[1] if "/" in path else path
            return fnmatch.fnmatchcase(path, only) or fnmatch.fnmatchcase(below, only)
        return True

    return want


def unpack(
    archive: Path,
    dest: Path,
    want: Callable[[str], bool],
    *,
    limit: int | None = None,
    progress: ProgressFn | None = None,
) -> list[str]:
    """Unpack the members ``want`` accepts (the first ``limit`` of them, in the archive's
    order) into ``dest``; return their paths. Tar members go through tarfile's ``data``
    filter; zip members through zipfile's path cleaning; links and devices are never made."""
    import tarfile
    import zipfile

    dest.mkdir(parents=True, exist_ok=True)
    out: list[str] = []
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = []
                for info in zf.infolist():
                    rel = _clean_member(info.filename)
                    is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                    if rel is None or info.is_dir() or is_link or not want(rel):
                        continue
                    infos.append((rel, info))
                    if limit is not None and len(infos) >= limit:
                        break
                _check_room(dest, sum(i.file_size for _, i in infos))
                for n, (rel, info) in enumerate(infos, 1):
                    target = dest / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as f:
                        shutil.copyfileobj(src, f, CHUNK_BYTES)
                    out.append(rel)
                    if progress:
                        progress(Progress("unpack", n, len(infos), rel))
        else:
            with tarfile.open(archive, "r:*") as tf:
                total = limit
                for m in tf:
                    rel = _clean_member(m.name)
                    if rel is None or not m.isfile() or not want(rel):
                        continue
                    _check_room(dest, m.size)
                    m.name = rel
                    tf.extract(m, dest, filter="data")
                    out.append(rel)
                    if progress:
                        progress(Progress("unpack", len(out), total, rel))
                    if limit is not None and len(out) >= limit:
                        break
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError) as e:
        raise DatasetError(
            f"{archive.name} is not a readable archive ({' '.join(str(e).split())}); remove "
            f"{archive} and run the command again to download it anew"
        ) from None
    except OSError as e:
        raise _disk_error(e, dest) from None
    return out


def _check_room(dest: Path, needed: int) -> None:
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise DatasetError(
            f"unpacking needs {needed / 1e9:.1f} GB but {dest} has {free / 1e9:.1f} GB free; "
            "free some space or pass --cache on a bigger disk"
        )


# ---- the datasets' own metadata --------------------------------------------------------------
Meta = dict  # member path → {"meta": {...}, "split": str | None}


def _zip_text(archive: Path, member_end: str) -> str:
    """The text of the member of ``archive`` whose path ends with ``member_end``."""
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            if name == member_end or name.endswith("/" + member_end):
                return zf.read(name).decode("utf-8-sig")
    raise DatasetError(f"{archive.name} holds no {member_end}; its metadata cannot be read")


SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "test": "test"}


def maestro_metadata(archives: dict[str, Path], members: list[str]) -> Meta:
    """MAESTRO's CSV: composer → artists, title, split, year → a tag."""
    archive = archives["maestro-v3.0.0-midi.zip"]
    rows = csv.DictReader(io.StringIO(_zip_text(archive, "maestro-v3.0.0.csv")))
    by_file = {}
    for row in rows:
        meta: dict = {}
        if row.get("canonical_composer"):
            meta["artists"] = [a.strip() for a in row["canonical_composer"].split(" / ")]
        if row.get("canonical_title"):
            meta["title"] = row["canonical_title"]
        if row.get("year"):
            meta["tags"] = [str(row["year"]).strip()]
        by_file[row.get("midi_filename", "")] = {
            "meta": meta,
            "split": SPLIT_NAMES.get((row.get("split") or "").strip()),
        }
    out = {}
    for m in members:
        below = m.split("/", 1)[1] if "/" in m else m
        if below in by_file:
            out[m] = by_file[below]
    return out


def lakh_metadata(archives: dict[str, Path], members: list[str]) -> Meta:
    """Lakh clean_midi's names: clean_midi/ARTIST/TITLE.mid (TITLE.1.mid: another version)."""
    out = {}
    for m in members:
        parts = m.split("/")
        if len(parts) < 3:
            continue
        title = PurePosixPath(parts[-1]).stem
        stem, _, n = title.rpartition(".")
        if stem and n.isdigit():
            title = stem
        out[m] = {"meta": {"artists": [parts[-2]], "title": title}, "split": None}
    return out


def fma_metadata(archives: dict[str, Path], members: list[str]) -> Meta:
    """FMA's tracks.csv (three header rows: group, field, then ``track_id``)."""
    import ast

    wanted = {}
    for m in members:
        stem = PurePosixPath(m).stem
        if stem.isdigit():
            wanted[int(stem)] = m
    text = _zip_text(archives["fma_metadata.zip"], "tracks.csv")
    reader = csv.reader(io.StringIO(text))
    try:
        groups, names = next(reader), next(reader)
        next(reader)
    except StopIteration:
        raise DatasetError("fma_metadata.zip: tracks.csv has no header rows") from None
    col = {}
    last = ""
    for i, (g, n) in enumerate(zip(groups, names, strict=False)):
        last = g or last
        col[(last, n)] = i

    def cell(row, group, name):
        i = col.get((group, name))
        return row[i].strip() if i is not None and i < len(row) else ""

    out = {}
    for row in reader:
        if not row or not row[0].strip().isdigit() or int(row[0]) not in wanted:
            continue
        meta: dict = {}
        if cell(row, "track", "genre_top"):
            meta["genre"] = cell(row, "track", "genre_top")
        if cell(row, "track", "title"):
            meta["title"] = cell(row, "track", "title")
        if cell(row, "artist", "name"):
            meta["artists"] = [cell(row, "artist", "name")]
        tags = []
        raw = cell(row, "track", "tags")
        if raw:
            try:
                parsed = ast.literal_eval(raw)
                tags = [str(t) for t in parsed] if isinstance(parsed, list) else []
            except (ValueError, SyntaxError):
                tags = []
        if cell(row, "track", "license"):
            tags.append(f"licence: {cell(row, 'track', 'license')}")
        if tags:
            meta["tags"] = tags
        split = SPLIT_NAMES.get(cell(row, "set", "split"))
        out[wanted[int(row[0])]] = {"meta": meta, "split": split}
    return out


def music21_metadata(members: list[str]) -> Meta:
    """The corpus's collection (``bach``, ``essenFolksong``…) → a tag. Composer and title
    come from each score itself, read by the import (marked ``tags``)."""
    out = {}
    for m in members:
        below = m.split("/", 1)[1] if "/" in m else m
        out[m] = {"meta": {"tags": [below.split("/")[0]] if "/" in below else []}, "split": None}
    return out


ARCHIVE_METADATA = {
    "maestro": maestro_metadata,
    "lakh": lakh_metadata,
    "fma-small": fma_metadata,
}


# ---- get -------------------------------------------------------------------------------------
def get_public(
    name: str,
    ds: Dataset | str | Path,
    *,
    catalog: dict[str, PublicDataset] | None = None,
    cache: str | Path | None = None,
    limit: int | None = None,
    only: str | None = None,
    progress: ProgressFn | None = None,
    command: list | None = None,
) -> dict:
    """Download (or reuse from the cache), check, unpack and import public dataset ``name``
    into ``ds`` (a dataset, or a name or folder: opened, or made once the files are
    downloaded and checked, so a failed download leaves no empty dataset), then set its own
    metadata; return a report (see the module docstring).
    ``catalog`` replaces `CATALOG` (tests point the URLs at a local server); ``limit``
    imports only the first N music files, ``only`` those matching a glob on their path."""
    e = entry(name, catalog)
    if limit is not None and limit < 1:
        raise DatasetError(f"--limit takes 1 or more files, not {limit}")
    folder = datasets_cache(cache) / e.name
    check_cache(folder)
    fetched: list[tuple[Remote, Fetched]] = []
    for f in e.files:
        fetched.append((f, download(f, folder, progress=progress)))
    for stale in folder.glob(f"{UNPACK_PREFIX}*"):  # left by a killed run: ours by name
        shutil.rmtree(stale, ignore_errors=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        unpacked = Path(tempfile.mkdtemp(dir=folder, prefix=UNPACK_PREFIX))
    except OSError as e:
        raise _disk_error(e, folder) from None
    try:  # the unpacked copy goes whatever happens (a rerun unpacks it again)
        return _unpack_and_import(e, ds, fetched, unpacked, folder, limit, only, progress, command)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


def _unpack_and_import(
    e: PublicDataset,
    ds: Dataset | str | Path,
    fetched: list[tuple[Remote, Fetched]],
    unpacked: Path,
    folder: Path,
    limit: int | None,
    only: str | None,
    progress: ProgressFn | None,
    command: list | None,
) -> dict:
    """`get_public` once the files are here: unpack, import, then the source's metadata."""
    from engine.data.ingest import import_sources

    want = selector(e.music_suffixes, only)
    members: list[str] = []
    archives = {f.filename: got.path for f, got in fetched}
    if e.files:
        for f, got in fetched:
            if f.role == "music":
                members += unpack(got.path, unpacked, want, limit=limit, progress=progress)
        meta_of = ARCHIVE_METADATA.get(e.name)
        metadata = meta_of(archives, members) if meta_of else {}
        sources = [
            {**_remote_json(f), "sha256": got.sha256, "verified": got.verified}
            for f, got in fetched
        ]
    else:
        members = _stage_music21(unpacked, want, limit, progress)
        metadata = music21_metadata(members)
        sources = [_music21_source()]
    if not members:
        what = f" matching --only {only!r}" if only else ""
        raise DatasetError(f"{e.title} holds no music files{what}; nothing was imported")
    tops = sorted({m.split("/", 1)[0] for m in members})
    if not isinstance(ds, Dataset):
        ds = Dataset.create(ds, exist_ok=True)
    report = import_sources(
        ds,
        [str((unpacked / t).absolute()) for t in tops],
        sidecars=False,
        progress=progress,
        command=command,
    )
    record = {
        "name": "get",
        "dataset": e.name,
        "title": e.title,
        "homepage": e.homepage,
        "files": sources,
        "licence": e.licence,
        "licence_url": e.licence_url,
        "citation": e.citation,
        "limit": limit,
        "only": only,
    }
    urls = {f.role: f.url for f in e.files}
    origin = urls.get("music") or "music21"
    imported = set(members)
    with ds.change(
        step=record,
        message=f"{e.title}: its metadata, source and licence",
        command=command,
        resume=hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest(),
    ) as ch:
        tagged = 0
        for item in list(ch.items.values()):
            if item.path not in imported:
                continue
            new = with_source_meta(item, metadata.get(item.path), e.tags, f"{origin}#{item.path}")
            if new != item:
                ch.put(new)
                tagged += 1
    return {
        "dataset": ds.name,
        "path": str(ds.path),
        "name": e.name,
        "title": e.title,
        "files": sources,
        "members": len(members),
        "import": report.to_json(),
        "imported": len(report.added) + len(report.changed),
        "already": report.already,
        "skipped": [{"source": s, "reason": r} for s, r in report.skipped],
        "with_metadata": tagged,
        "import_version": report.version,
        "version": ch.version or ds.head,
        "licence": e.licence,
        "licence_url": e.licence_url,
        "citation": e.citation,
        "cache": str(folder),
    }


KEEP_SOURCES = ("user", "sidecar")  # what the dataset's own metadata never overwrites


def with_source_meta(item: Item, found: dict | None, tags: tuple[str, ...], source: str) -> Item:
    """``item`` with a public dataset's metadata (marked ``import``, never over values you
    or a sidecar set), its split, its tags and where it came from."""
    meta = dict((found or {}).get("meta", {}))
    meta["tags"] = list(dict.fromkeys([*tags, *meta.get("tags", [])]))
    values = {}
    for k, v in meta.items():
        if item.meta_from.get(k) in KEEP_SOURCES:
            continue
        if k == "tags" and item.meta.get("tags") and item.meta_from.get("tags") != "import":
            v = list(dict.fromkeys([*item.meta["tags"], *v]))
        values[k] = v
    new = item
    for k, v in values.items():
        try:
            new = new.with_meta({k: v}, "import")
        except DatasetError:
            continue  # a value the field cannot hold (an overlong title…) is left out
    split = (found or {}).get("split")
    return replace(new, source=source, split=split or new.split)


def _stage_music21(
    dest: Path, want: Callable[[str], bool], limit: int | None, progress: ProgressFn | None
) -> list[str]:
    """Copy the chosen core-corpus files to ``dest/music21/<corpus path>``; return those
    paths (one format per work: MusicXML before ABC, as `engine.data.corpus` chooses)."""
    from music21 import corpus

    from engine.data.corpus import SKIP_SUFFIXES, duplicate_of

    root = Path(corpus.__file__).parent
    rels = sorted(str(p).replace("\\", "/").split("/corpus/", 1)[-1] for p in corpus.getPaths())
    rel_set = set(rels)
    chosen = []
    for rel in rels:
        path = f"music21/{rel}"
        if rel.endswith(SKIP_SUFFIXES) or duplicate_of(rel, rel_set) or not want(path):
            continue
        chosen.append(rel)
        if limit is not None and len(chosen) >= limit:
            break
    out = []
    try:
        for n, rel in enumerate(chosen, 1):
            target = dest / "music21" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, target)
            out.append(f"music21/{rel}")
            if progress:
                progress(Progress("unpack", n, len(chosen), rel))
    except OSError as e:
        raise _disk_error(e, dest) from None
    return out


def describe_size(n: int | None) -> str:
    """Bytes for people: ``58.4 MB``, ``7.7 GB``."""
    if n is None:
        return "unknown"
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""
