"""The General MIDI SoundFonts Disco-Musica knows: where each is installed, which one renders
by default, and a checked download for those with an official one.

The default is the first of ``CATALOGUE`` that is installed, in this order (the ranking)::

    MuseScore_General   MuseScore General 0.2, 206 MB (MuseScore 3's own, from FluidR3Mono)
    FluidR3_GM          Fluid (R3) GM, 142 MB (Debian/Ubuntu: apt install fluid-soundfont-gm)
    GeneralUser_GS      GeneralUser GS 2.0.3, 31 MB
    TimGM6mb            TimGM6mb, 5.7 MB, shipped inside pretty_midi: always there

The order is by size and coverage of the sample sets (the larger banks have more samples per
instrument and longer, stereo samples), not by a listening test.  ``$DISCO_MUSICA_SOUNDFONT``
(a known name or a path) overrides the ranking; ``--soundfont NAME|PATH`` overrides both for
one command.  Each SoundFont is looked for under its usual file names in the user folder
(``user_dir()``) first, then in the folders distributions and MuseScore install them to.
Nothing is cached: each lookup is a few ``stat`` calls and reads the first 34 bytes of a
found file (SF3 files, which the renderer cannot read, are never offered).

>>> name, path = default()                 # ("FluidR3_GM", PosixPath("/usr/share/sounds/…"))
>>> download(entry("GeneralUser_GS"))      # into user_dir(), verified before it is renamed
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.errors import RenderError
from engine.progress import Progress, ProgressFn

SOUNDFONT_PACKAGE = "pretty_midi"  # ships the built-in SoundFont
SOUNDFONT_FILE = "TimGM6mb.sf2"
ENV_DEFAULT = "DISCO_MUSICA_SOUNDFONT"  # a known name or a path: the default SoundFont
DOWNLOAD_TIMEOUT_S = 60.0  # per network read, not for the whole download
CHUNK_BYTES = 1 << 20
HEADER_BYTES = 34  # RIFF, sfbk, LIST, INFO, ifil and its major version (sf2_header_problem)

# Folders distributions install SoundFonts to, searched after the user folder.
SYSTEM_DIRS = (
    "/usr/share/sounds/sf2",  # Debian, Ubuntu, openSUSE
    "/usr/share/soundfonts",  # Fedora, Arch
    "/usr/local/share/sounds/sf2",
    "/usr/local/share/soundfonts",
    "~/.local/share/soundfonts",
    "~/.local/share/sounds/sf2",
    "~/.nix-profile/share/soundfonts",  # Nix
    "/run/current-system/sw/share/soundfonts",  # NixOS
)
# MuseScore's own folders: the user's SoundFonts folder, and the installed program's (which
# usually holds only the .sf3 edition, listed as unreadable).
MUSESCORE_DIRS = (
    "/usr/share/sounds/sf3",  # Debian's MuseScore_General.sf3 (an alternative: any SF3 font)
    "~/Documents/MuseScore4/SoundFonts",
    "~/Documents/MuseScore3/SoundFonts",
    "/usr/share/mscore-3.6/sound",
    "/usr/share/mscore4portable/sound",
    "/Applications/MuseScore 4.app/Contents/Resources/sound",
    "/Applications/MuseScore 3.app/Contents/Resources/sound",
    "C:/Program Files/MuseScore 4/sound",
    "C:/Program Files/MuseScore 3/sound",
)


class SoundFontError(RenderError):
    """An unknown SoundFont name, one that is not installed, or a failed download."""


@dataclass(frozen=True)
class SoundFont:
    """A catalogue entry.  ``size`` and ``sha256`` describe the file ``url`` serves (or, with
    no ``url``, the build named in ``provenance``); ``provenance`` says where they come from
    and how far they were checked.  ``install`` tells how to get one without a ``url``."""

    name: str
    title: str
    files: tuple[str, ...]  # file names looked for; the first is the one downloads write
    licence: str
    homepage: str
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    provenance: str = ""
    install: str = ""
    dirs: tuple[str, ...] = ()  # folders searched besides user_dir() and SYSTEM_DIRS
    aliases: tuple[str, ...] = ()
    builtin: bool = False

    @property
    def file(self) -> str:
        return self.files[0]


CATALOGUE: tuple[SoundFont, ...] = (
    SoundFont(
        name="MuseScore_General",
        title="MuseScore General 0.2 (S. Christian Collins, from FluidR3Mono)",
        files=("MuseScore_General.sf2",),
        licence="MIT",
        homepage="https://musescore.org/en/handbook/3/soundfonts-and-sfz-files",
        url="https://ftp.osuosl.org/pub/musescore/soundfont/MuseScore_General/MuseScore_General.sf2",
        size=215_614_036,
        sha256="ee51d2c4b1525e70f19a45909c4fd7a2e26d91d115fa89dbf5a6bc413d8b9bf3",
        provenance=(
            "MuseScore's download mirror (OSUOSL); the URL names no version, so a new upload "
            "would be refused by the sha256 check.  Size and sha256 are the ones several "
            "independent projects pin for this URL (a Homebrew formula, download scripts); "
            "not downloaded by Disco-Musica's developers"
        ),
        dirs=MUSESCORE_DIRS,
        aliases=("musescore",),
    ),
    SoundFont(
        name="FluidR3_GM",
        title="Fluid (R3) General MIDI (Frank Wen)",
        files=("FluidR3_GM.sf2",),
        licence="MIT",
        homepage="https://packages.debian.org/fluid-soundfont-gm",
        size=148_398_306,
        sha256="74594e8f4250680adf590507a306655a299935343583256f3b722c48a1bc1cb0",
        provenance=(
            "no official single-file download: distributions package it.  Size and sha256 "
            "are those of Debian/Ubuntu's fluid-soundfont-gm 3.1-5.3, measured on the "
            "installed file; other distributions' builds may differ"
        ),
        install=(
            "install it with your package manager: sudo apt install fluid-soundfont-gm "
            "(Debian, Ubuntu), sudo dnf install fluid-soundfont-gm (Fedora), "
            "sudo pacman -S soundfont-fluid (Arch)"
        ),
        aliases=("fluidr3", "fluid"),
    ),
    SoundFont(
        name="GeneralUser_GS",
        title="GeneralUser GS 2.0.3 (S. Christian Collins)",
        files=("GeneralUser-GS.sf2", "GeneralUser GS v1.471.sf2", "GeneralUser_GS_v1.471.sf2"),
        licence="GeneralUser GS License v2.0 (free for music, private or commercial)",
        homepage="https://www.schristiancollins.com/generaluser",
        url=(
            "https://raw.githubusercontent.com/mrbumpy409/GeneralUser-GS/"
            "684543d5e5efaef08d02be50dcda8d552478fa60/GeneralUser-GS.sf2"
        ),
        size=32_319_396,
        sha256="9575028c7a1f589f5770fccc8cff2734566af40cd26ed836944e9a5152688cfe",
        provenance=(
            "the author's GitHub repository, pinned to commit 684543d (v2.0.3; git blob "
            "298b552d2e9d1307e03e5c5c99d2c046aaed9ec3).  Size and sha256 are the ones several "
            "independent projects pin for this file; not downloaded by Disco-Musica's "
            "developers"
        ),
        aliases=("generaluser",),
    ),
    SoundFont(
        name="TimGM6mb",
        title="TimGM6mb (Tim Brechbill), shipped inside pretty_midi",
        files=("TimGM6mb.sf2",),
        licence="GPL-2.0",
        homepage="https://github.com/craffel/pretty-midi",
        size=5_994_284,
        sha256="82475b91a76de15cb28a104707d3247ba932e228bada3f47bba63c6b31aaf7a1",
        provenance="pretty_midi 0.2.10's copy, measured on the installed file",
        install="it ships with Disco-Musica (inside pretty_midi): nothing to download",
        aliases=("timgm", "builtin"),
        builtin=True,
    ),
)
BUILTIN = CATALOGUE[-1]


def names() -> list[str]:
    return [e.name for e in CATALOGUE]


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def lookup(name: str) -> SoundFont | None:
    """The entry called ``name`` (any case; ``-``, ``_`` and spaces ignored; aliases such as
    ``fluidr3`` accepted), or None."""
    k = _key(name)
    for e in CATALOGUE:
        if k and k in (_key(e.name), *map(_key, e.aliases)):
            return e
    return None


def entry(name: str) -> SoundFont:
    """The entry called ``name``; SoundFontError listing the known names if there is none."""
    found = lookup(name) if isinstance(name, str) else None
    if found is None:
        shown = name if len(str(name)) <= 60 else f"{str(name)[:60]}…"
        raise SoundFontError(
            f"unknown SoundFont {shown!r}; known names: {', '.join(names())} "
            "(see `disco-musica soundfonts`)"
        )
    return found


# ---- where they are --------------------------------------------------------------------------
def user_dir() -> Path:
    """``$DISCO_MUSICA_HOME/soundfonts``, else the platform's user data folder's
    ``disco-musica/soundfonts`` (``~/.local/share/disco-musica/soundfonts`` on Linux)."""
    home = os.environ.get("DISCO_MUSICA_HOME")
    if home:
        return Path(home).expanduser() / "soundfonts"
    import platformdirs

    return platformdirs.user_data_path("disco-musica", appauthor=False) / "soundfonts"


def _places(e: SoundFont) -> list[Path]:
    folders = [user_dir(), *(Path(d).expanduser() for d in (*SYSTEM_DIRS, *e.dirs))]
    return [folder / f for folder in folders for f in e.files]


def _header(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(HEADER_BYTES)
    except OSError:
        return None


PROBLEM_TEXT = {
    "empty": "empty",
    "not-sf2": "not a SoundFont 2 file",
    "sf3": "an SF3 (compressed) SoundFont, which the renderer cannot read",
    "unreadable": "cannot be read",
}


def _problem(path: Path) -> str | None:
    head = _header(path)
    return "unreadable" if head is None else sf2_header_problem(head)


def survey(e: SoundFont) -> tuple[Path | None, list[tuple[Path, str]]]:
    """(the first usable copy of ``e`` or None, [(a copy that cannot be used, why)]).

    Copies under an ``.sf3`` name beside the places looked in are reported as unusable too
    (MuseScore installs its SoundFont as ``MuseScore_General.sf3``); an SF2 file under such a
    name is neither used nor reported (Debian's alternatives give any SoundFont that name)."""
    if e.builtin:
        return builtin_soundfont(), []
    found, bad = None, []
    for p in _places(e):
        for q in (p, p.with_suffix(".sf3")):
            try:
                if not q.is_file():
                    continue
            except OSError:
                continue
            why = _problem(q)
            if why:
                bad.append((q, why))
            elif q is p and found is None:  # an SF2 file named .sf3 is an alias: not used
                found = q
    return found, bad


def locate(e: SoundFont) -> Path | None:
    """Where ``e`` is installed (a readable SF2 file), or None."""
    return survey(e)[0]


def default() -> tuple[str, Path]:
    """(name, path) of the SoundFont used when none is given; see the module docstring."""
    chosen = os.environ.get(ENV_DEFAULT, "").strip()
    if chosen:
        p = resolve(chosen, origin=ENV_DEFAULT)
        if not p.is_file():
            raise SoundFontError(
                f"{ENV_DEFAULT} is {chosen!r}, which is neither a SoundFont file nor a known "
                f"name ({', '.join(names())}); fix it or unset it"
            )
        return name_for(p), p
    for e in CATALOGUE:
        p = locate(e)
        if p is not None:
            return e.name, p
    raise AssertionError("unreachable: the built-in SoundFont is always located or raises")


def resolve(value: str | Path | None, *, origin: str = "") -> Path:
    """The file a ``--soundfont`` value means: None → ``default()``; a path to an existing
    file or folder → that path; a known name → where it is installed (SoundFontError saying
    how to get it if it is not); anything else → the path (``load_soundfont`` says it is
    missing)."""
    if value is None:
        return default()[1]
    p = Path(value).expanduser()
    if isinstance(value, str) and not p.exists() and "/" not in value:
        e = lookup(value)
        if e is not None:
            found = locate(e)
            if found is None:
                where = f" (named by {origin})" if origin else ""
                raise SoundFontError(
                    f"the SoundFont {e.name}{where} is not installed; {how_to_get(e)}"
                )
            return found
    return p


def how_to_get(e: SoundFont) -> str:
    if e.url:
        return f"get it with `disco-musica soundfonts get {e.name}`"
    return e.install


def name_for(path: str | Path, sha256: str | None = None) -> str:
    """The catalogue name of the SoundFont at ``path``: the entry whose sha256 is ``sha256``,
    else the entry one of whose file names it has, else the file's own name without suffix."""
    if sha256:
        for e in CATALOGUE:
            if e.sha256 == sha256:
                return e.name
    fname = Path(path).name
    for e in CATALOGUE:
        if fname in e.files:
            return e.name
    return Path(path).stem


def others() -> list[Path]:
    """SoundFont files in ``user_dir()`` that are none of the catalogue's (by file name)."""
    known = {f for e in CATALOGUE for f in e.files}
    try:
        files = sorted(user_dir().glob("*.sf2"))
    except OSError:
        return []
    return [p for p in files if p.name not in known and p.is_file()]


def status() -> list[dict]:
    """One dict per catalogue entry, in ranking order: name, title, installed, path, size
    (the installed file's, else the catalogue's), licence, default (bool), download (the
    URL or None), sha256 (the catalogue's), provenance, how_to_get, unusable [(path, why)]."""
    default_name, default_path = default()
    rows = []
    for e in CATALOGUE:
        path, bad = survey(e)
        size = path.stat().st_size if path is not None else e.size
        rows.append(
            {
                "name": e.name,
                "title": e.title,
                "installed": path is not None,
                "path": str(path) if path is not None else None,
                "size": size,
                "licence": e.licence,
                "default": path is not None and path == default_path,
                "download": e.url,
                "sha256": e.sha256,
                "provenance": e.provenance,
                "how_to_get": how_to_get(e),
                "unusable": [(str(p), PROBLEM_TEXT[why]) for p, why in bad],
            }
        )
    if not any(r["default"] for r in rows):  # $DISCO_MUSICA_SOUNDFONT names another file
        rows.append(
            {
                "name": default_name,
                "title": f"from ${ENV_DEFAULT}",
                "installed": True,
                "path": str(default_path),
                "size": default_path.stat().st_size if default_path.is_file() else None,
                "licence": "unknown",
                "default": True,
                "download": None,
                "sha256": None,
                "provenance": "",
                "how_to_get": "",
                "unusable": [],
            }
        )
    return rows


# ---- replay ------------------------------------------------------------------------------------
def _sha256_file(path: Path) -> str | None:
    from engine.atomic import sha256_file

    try:
        return sha256_file(path)
    except OSError:
        return None


def recorded_soundfont(sf: dict) -> str | None:
    """The ``soundfont`` argument that renders with the SoundFont a record names.

    ``sf`` is a record's ``output.soundfont`` (``name``, ``file`` — ``path`` in records before
    0.5.0 —, ``default``, ``sha256``).
    With no sha256 recorded (a MIDI-only generation, an old record) the recorded choice is
    kept: None for the default, else the path.  Otherwise the answer is a file with that
    sha256: None when it is today's default and the record used the default, else the first
    match among the recorded path, the installed catalogue SoundFonts (the recorded name
    first) and the other files in ``user_dir()``.  SoundFontError, in one line, naming the
    SoundFont needed and how to get it, when none matches."""
    sha, path, name = sf.get("sha256"), sf.get("path"), sf.get("name")
    default_used = bool(sf.get("default"))
    if sha is None:
        return None if default_used else path
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise SoundFontError(f"the recorded SoundFont sha256 {sha!r} is not one (was it edited?)")
    if path is not None and not isinstance(path, str):
        raise SoundFontError(f"the recorded SoundFont path {path!r} is not text (was it edited?)")
    name = name if isinstance(name, str) else None
    if default_used:
        current = default()[1]
        if _sha256_file(current) == sha:
            return None
    candidates: list[Path] = [Path(path)] if path else []
    known = lookup(name) if name else None
    ordered = sorted(CATALOGUE, key=lambda e: e is not known)
    candidates += [p for p in map(locate, ordered) if p is not None]
    candidates += others()
    seen: set[Path] = set()
    for p in candidates:
        if p in seen or not p.is_file():
            continue
        seen.add(p)
        if _sha256_file(p) == sha:
            return str(p)
    file = sf.get("file") if isinstance(sf.get("file"), str) else None
    label = name or (Path(path).stem if path else "a SoundFont")
    if known is not None and known.sha256 == sha:
        hint = how_to_get(known)
    elif path:
        hint = f"put that file back at {path}"
    elif file:
        hint = f"put {Path(file).name} into {user_dir()}"
    else:
        hint = "install the SoundFont it was made with"
    raise SoundFontError(
        f"this generation was rendered with {label} (sha256 {sha}), which is not installed "
        f"here; {hint}"
    )


def recorded_render_soundfont(render: object) -> str | None:
    """``recorded_soundfont`` for a record that keeps only ``render_audio``'s info (accompany's
    ``render``: ``soundfont``, ``soundfont_name``, ``soundfont_sha256``; always the default)."""
    if not isinstance(render, dict):
        return None
    return recorded_soundfont(
        {
            "name": render.get("soundfont_name"),
            "path": render.get("soundfont"),
            "sha256": render.get("soundfont_sha256"),
            "default": True,
        }
    )


# ---- download ----------------------------------------------------------------------------------
def download(
    e: SoundFont,
    *,
    folder: str | Path | None = None,
    url: str | None = None,
    progress: ProgressFn | None = None,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Download ``e`` from ``url`` (default ``e.url``) into ``folder`` (default
    ``user_dir()``) as ``e.file``; return its path.

    The bytes go to a hidden temporary file in the same folder; only when the download is
    complete, has ``e.size`` bytes and ``e.sha256`` (where the catalogue knows them) and is a
    SoundFont 2 file is it renamed to its name.  On any failure, Ctrl-C included, the
    temporary file is removed and nothing else has changed.  ``progress`` gets a
    `engine.progress.Progress` of stage "download" after each chunk (``done``: bytes
    received, ``total``: bytes expected, None if unknown)."""
    import http.client
    import shutil
    import urllib.error
    import urllib.request

    from engine import __version__

    url = url or e.url
    if not url:
        raise SoundFontError(f"{e.name} has no download; {how_to_get(e)}")
    folder = Path(folder) if folder is not None else user_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SoundFontError(
            f"cannot create the SoundFont folder {folder} ({err.strerror or err}); "
            "set DISCO_MUSICA_HOME to a folder you can write to"
        ) from err
    if e.size and shutil.disk_usage(folder).free < e.size:
        free = shutil.disk_usage(folder).free
        raise SoundFontError(
            f"{e.name} needs {e.size / 1e6:.1f} MB but {folder} has {free / 1e6:.1f} MB free; "
            "make room and run it again"
        )
    target = folder / e.file
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{e.file}.", suffix=".part")
    except OSError as err:
        raise SoundFontError(f"cannot write to {folder} ({err.strerror or err})") from err
    tmp = Path(tmp_name)
    failed = f"the download of {e.name} from {url} failed"
    try:
        h = hashlib.sha256()
        done = 0
        head = b""
        request = urllib.request.Request(url, headers={"User-Agent": f"disco-musica/{__version__}"})
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(request, timeout=timeout_s) as r:
                length = r.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else e.size
                if e.size and total != e.size:
                    raise SoundFontError(
                        f"{failed}: the server offers {total} bytes, not the {e.size} expected; "
                        "nothing was kept"
                    )
                while chunk := r.read(CHUNK_BYTES):
                    if len(head) < HEADER_BYTES:
                        head += chunk[: HEADER_BYTES - len(head)]
                    h.update(chunk)
                    f.write(chunk)
                    done += len(chunk)
                    if total is not None and done > total:
                        raise SoundFontError(
                            f"{failed}: more than the {total} bytes expected arrived; "
                            "nothing was kept"
                        )
                    if progress:
                        progress(Progress("download", done, total))
                f.flush()
                os.fsync(f.fileno())
        except urllib.error.HTTPError as err:
            raise SoundFontError(
                f"{failed}: the server answered {err.code} {err.reason}; nothing was kept"
            ) from err
        except urllib.error.URLError as err:
            raise SoundFontError(
                f"{failed} ({err.reason}); check the network connection and run it again; "
                "nothing was kept"
            ) from err
        except (OSError, http.client.HTTPException, ValueError) as err:
            why = getattr(err, "strerror", None) or str(err) or type(err).__name__
            raise SoundFontError(f"{failed} ({why}); run it again; nothing was kept") from err
        if total is not None and done != total:
            raise SoundFontError(
                f"{failed}: it stopped after {done} of {total} bytes; run it again; "
                "nothing was kept"
            )
        digest = h.hexdigest()
        if e.sha256 and digest != e.sha256:
            raise SoundFontError(
                f"{failed}: its sha256 is {digest}, not the expected {e.sha256}; "
                "nothing was kept (a changed or damaged file)"
            )
        why = sf2_header_problem(head)
        if why:
            raise SoundFontError(f"{failed}: what arrived is {PROBLEM_TEXT[why]}; nothing was kept")
        tmp.chmod(0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


# ---- reading a SoundFont ---------------------------------------------------------------------


def builtin_soundfont() -> Path:
    """The General MIDI SoundFont shipped inside the installed pretty_midi (TimGM6mb.sf2)."""
    spec = importlib.util.find_spec(SOUNDFONT_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / SOUNDFONT_FILE
        if path.is_file():
            return path
    raise RenderError(
        f"the built-in SoundFont ({SOUNDFONT_FILE} from {SOUNDFONT_PACKAGE}) is missing; "
        f"reinstall it with 'pip install --force-reinstall {SOUNDFONT_PACKAGE}' "
        "or pass --soundfont PATH"
    )


def default_soundfont() -> Path:
    """The SoundFont used when none is given: ``$DISCO_MUSICA_SOUNDFONT`` (a name or a path)
    if set, else the best one installed (``engine.audio.soundfonts.CATALOGUE`` order: MuseScore
    General, FluidR3_GM, GeneralUser GS), else the built-in TimGM6mb.  Looked up afresh on
    every call (a few ``stat`` calls), so a SoundFont installed meanwhile is used at once."""
    return default()[1]


def soundfont_path(path: str | Path | None) -> Path:
    """``None``: the default SoundFont; a known name (``FluidR3_GM``): where it is installed;
    anything else: a path."""
    return resolve(path)


def sf2_header_problem(head: bytes) -> str | None:
    """Why a file starting with ``head`` (34 bytes are enough) is not a SoundFont the
    renderer reads: ``"empty"``, ``"not-sf2"`` or ``"sf3"``; None when it is one."""
    if not head:
        return "empty"
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        return "not-sf2"
    # RIFF sfbk → LIST INFO → ifil (version).  SF3 (Ogg-compressed samples) is not readable.
    if head[24:28] == b"ifil" and len(head) >= 34 and int.from_bytes(head[32:34], "little") >= 3:
        return "sf3"
    return None


def sf2_structure_problem(data: bytes) -> str | None:
    """What is wrong with the chunk layout of SoundFont bytes (their header already checked),
    in words, or None: a file cut short (an interrupted download or copy) or one missing the
    INFO, sdta (samples) or pdta (presets) part.  Microseconds: only chunk sizes are read."""
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    # The parts themselves decide: a file whose RIFF size overstates it but whose parts are
    # all there still plays (the synthesizer reads part by part).
    end = min(riff_end, len(data))
    parts, pos = set(), 12
    while pos + 8 <= end:
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if data[pos : pos + 4] == b"LIST":
            parts.add(data[pos + 8 : pos + 12].decode("latin-1"))
        pos += 8 + size
        if pos > end:
            if riff_end > len(data):
                return f"cut short ({len(data)} of {riff_end} bytes)"
            return "cut short (its last part ends after the end of the file)"
        pos += size & 1  # the pad byte after an odd-sized part (may be missing at the end)
    missing = [p for p in ("INFO", "sdta", "pdta") if p not in parts]
    if missing:
        return f"missing its {', '.join(missing)} part"
    return None


# The last SoundFont read, checked, and its sha256 once asked: {(path, size, mtime, inode):
# [bytes, sha256 or None]}. Writing a piece needs the file three times (a check before any
# work, the render, the record's sha256), and FluidR3_GM is 141 MB: 0.5 s a piece, read once
# instead. The key changes when the file is replaced or rewritten, so a new file is read.
_LAST: dict[tuple, list] = {}


def load_soundfont(path: str | Path | None) -> bytes:
    """The bytes of a SoundFont 2 file (``None``: the default one), checked to be one.

    The last file loaded is kept in memory and given again while its size, modification
    time and inode stay the same."""
    p = soundfont_path(path)
    hint = (
        "use a General MIDI .sf2 file or a known name (see `disco-musica soundfonts`), "
        "or leave out --soundfont for the default one"
    )
    if not p.exists():
        raise RenderError(f"SoundFont not found: {p}; check the path, or {hint}")
    if p.is_dir():
        raise RenderError(f"{p} is a folder, not a SoundFont (.sf2) file; {hint}")
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
        if key in _LAST:
            return _LAST[key][0]
        data = p.read_bytes()
    except OSError as e:
        raise RenderError(
            f"cannot read the SoundFont {p} ({e.strerror or e}); check its permissions"
        ) from e
    problem = sf2_header_problem(data[:34])
    if problem == "empty":
        raise RenderError(
            f"{p} is empty, not a SoundFont (.sf2) file; download it again, or {hint}"
        )
    if problem == "not-sf2":
        raise RenderError(f"{p} is not a SoundFont (.sf2) file; {hint}")
    if problem == "sf3":
        raise RenderError(
            f"{p} is an SF3 (compressed) SoundFont, which the renderer cannot read; "
            "use the .sf2 version of the same SoundFont"
        )
    damage = sf2_structure_problem(data)
    if damage:
        raise RenderError(f"the SoundFont {p} is damaged ({damage}); download or copy it again")
    _LAST.clear()
    _LAST[key] = [data, None]
    return data


def soundfont_sha256(path: str | Path | None) -> str:
    """The sha256 (hex) of the SoundFont ``load_soundfont(path)`` gives, computed once per
    file kept."""
    data = load_soundfont(path)
    for entry in list(_LAST.values()):
        if entry[0] is data:
            if entry[1] is None:
                entry[1] = hashlib.sha256(data).hexdigest()
            return entry[1]
    return hashlib.sha256(data).hexdigest()  # another thread loaded another file meanwhile
