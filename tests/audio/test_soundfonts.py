"""engine.audio.soundfonts: the catalogue, the ranking that picks the default, ``--soundfont NAME``,
the record naming the SoundFont, replay finding it by sha256, and the checked download
(against a local HTTP server the tests start and stop: no internet needed)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import re
import shutil
import struct
import threading
from pathlib import Path

import pytest

from engine.audio import soundfonts as sf
from engine.audio.render import render_audio
from engine.audio.soundfonts import builtin_soundfont, load_soundfont
from engine.cli import main
from engine.errors import one_line
from engine.progress import Progress

FLUID = sf.entry("FluidR3_GM")
DEBIAN_FLUID = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
needs_fluid = pytest.mark.skipif(
    sf.locate(FLUID) is None,
    reason="FluidR3_GM is not installed (Debian/Ubuntu: apt install fluid-soundfont-gm)",
)


def header_only(version: int = 2) -> bytes:
    """The first bytes of a SoundFont: enough for the lookup, not for synthesis."""
    ifil = b"ifil" + struct.pack("<IHH", 4, version, 1)
    body = b"sfbk" + b"LIST" + struct.pack("<I", 4 + len(ifil)) + b"INFO" + ifil
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """No SoundFont installed but the built-in one: the user folder and one system folder are
    empty folders of the test, $HOME is another, and no default is pinned."""
    monkeypatch.delenv(sf.ENV_DEFAULT, raising=False)
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "dm"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    system = tmp_path / "usr-share-soundfonts"
    system.mkdir()
    monkeypatch.setattr(sf, "SYSTEM_DIRS", (str(system),))
    monkeypatch.setattr(
        sf, "CATALOGUE", tuple(dataclasses.replace(e, dirs=()) for e in sf.CATALOGUE)
    )
    user = sf.user_dir()
    user.mkdir(parents=True)
    return user, system


@pytest.fixture(scope="module")
def midi() -> bytes:
    import io

    import mido

    mf = mido.MidiFile()
    t = mido.MidiTrack()
    mf.tracks.append(t)
    t.append(mido.Message("program_change", program=40, time=0))
    for p in (60, 64, 67):
        t.append(mido.Message("note_on", note=p, velocity=90, time=0))
        t.append(mido.Message("note_off", note=p, velocity=0, time=240))
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


# ---- the catalogue --------------------------------------------------------------------------
def test_the_catalogue_is_ranked_and_complete():
    assert sf.names() == ["MuseScore_General", "FluidR3_GM", "GeneralUser_GS", "TimGM6mb"]
    assert sf.BUILTIN.builtin and sf.BUILTIN is sf.CATALOGUE[-1]
    for e in sf.CATALOGUE:
        assert e.licence and e.homepage.startswith("https://") and e.provenance, e.name
        assert e.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", e.sha256), e.name
        assert all(f.endswith(".sf2") for f in e.files), e.name  # SF3 cannot be rendered
        assert e.url or e.install, e.name  # every one says how to get it
        if e.url:
            assert e.url.startswith("https://") and e.url.endswith(e.file), e.name
            assert e.size and e.sha256, e.name  # downloads are checked
    # the built-in copy is the one the catalogue describes
    data = builtin_soundfont().read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (sf.BUILTIN.size, sf.BUILTIN.sha256)


@pytest.mark.skipif(not DEBIAN_FLUID.is_file(), reason="no /usr/share/sounds/sf2/FluidR3_GM.sf2")
def test_the_fluid_entry_describes_debians_file():
    if DEBIAN_FLUID.stat().st_size != FLUID.size:
        pytest.skip("another build of FluidR3_GM than Debian's 3.1-5.3")
    from engine.atomic import sha256_file

    assert sha256_file(DEBIAN_FLUID) == FLUID.sha256


SF3_FILES = [  # real SF3 files (Debian's default-GM.sf3 may be an SF2 file by another name)
    p
    for p in sorted(Path("/usr/share/sounds/sf3").glob("*.sf3"))
    if sf.sf2_header_problem(p.read_bytes()[: sf.HEADER_BYTES]) == "sf3"
]


@pytest.mark.skipif(not SF3_FILES, reason="no real SF3 file in /usr/share/sounds/sf3")
def test_the_synthesizer_cannot_read_sf3_so_it_is_never_offered(midi):
    import midirenderer

    data = SF3_FILES[0].read_bytes()
    with pytest.raises(RuntimeError, match="SoundFont3 is not yet supported"):
        midirenderer.render_wave_from(data, midi)
    with pytest.raises(sf.RenderError, match="SF3"):
        load_soundfont(SF3_FILES[0])


def test_names_in_any_spelling_and_unknown_names():
    for text in ("FluidR3_GM", "fluidr3-gm", "FLUIDR3 GM", "fluidr3", "fluid"):
        assert sf.lookup(text) is FLUID
    assert sf.lookup("generaluser").name == "GeneralUser_GS"
    assert sf.lookup("musescore").name == "MuseScore_General"
    for bad in ("banjo", "", "x" * 100_000):
        with pytest.raises(sf.SoundFontError) as e:
            sf.entry(bad)
        text = one_line(e.value)
        assert "unknown SoundFont" in text and "MuseScore_General, FluidR3_GM" in text
        assert len(text) < 300


# ---- the ranking ----------------------------------------------------------------------------
def test_a_soundfont_is_read_once_while_it_stays_the_same_file(tmp_path, monkeypatch):
    """Writing a piece asks for the SoundFont three times (check, render, record); the file is
    read and hashed once, and read again once it is replaced or rewritten."""
    good = builtin_soundfont().read_bytes()
    path = tmp_path / "mine.sf2"
    path.write_bytes(good)
    reads, hashes = [], []
    real_read, real_sha = Path.read_bytes, hashlib.sha256
    monkeypatch.setattr(Path, "read_bytes", lambda p: reads.append(p.name) or real_read(p))
    monkeypatch.setattr(sf.hashlib, "sha256", lambda b: hashes.append(len(b)) or real_sha(b))
    for _ in range(3):
        assert load_soundfont(path) == good
        assert sf.soundfont_sha256(path) == real_sha(good).hexdigest()
    assert reads == ["mine.sf2"] and hashes == [len(good)]

    replacement = tmp_path / "new.sf2"  # replaced whole (a new inode), as a download does
    replacement.write_bytes(good[:-2] + b"\0\0")
    replacement.replace(path)
    assert sf.soundfont_sha256(path) == real_sha(good[:-2] + b"\0\0").hexdigest()
    assert reads == ["mine.sf2"] * 2
    with path.open("r+b") as f:  # rewritten in place: a new modification time
        f.write(good[:4])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert load_soundfont(path)[:4] == good[:4] and reads == ["mine.sf2"] * 3
    path.unlink()  # gone: the same clear error, not the kept bytes
    with pytest.raises(sf.RenderError, match="SoundFont not found"):
        load_soundfont(path)


def test_the_default_is_the_best_installed_and_nothing_is_cached(machine):
    user, system = machine
    assert sf.default() == ("TimGM6mb", builtin_soundfont())
    (user / "GeneralUser-GS.sf2").write_bytes(header_only())
    assert sf.default() == ("GeneralUser_GS", user / "GeneralUser-GS.sf2")
    (system / "FluidR3_GM.sf2").write_bytes(header_only())
    assert sf.default() == ("FluidR3_GM", system / "FluidR3_GM.sf2")
    # MuseScore's own SoundFont is an SF3 file: found, reported, never used
    (system / "MuseScore_General.sf3").write_bytes(header_only(version=3))
    assert sf.default()[0] == "FluidR3_GM"
    row = next(r for r in sf.status() if r["name"] == "MuseScore_General")
    assert not row["installed"]
    assert row["unusable"] == [(str(system / "MuseScore_General.sf3"), sf.PROBLEM_TEXT["sf3"])]
    # an SF2 file under the .sf3 name is an alias, not trusted to be MuseScore General
    (system / "MuseScore_General.sf3").write_bytes(header_only())
    assert sf.default()[0] == "FluidR3_GM"
    assert next(r for r in sf.status() if r["name"] == "MuseScore_General")["unusable"] == []
    # a .sf2 name that is really SF3 or not a SoundFont is skipped the same way
    (system / "MuseScore_General.sf2").write_bytes(header_only(version=3))
    assert sf.default()[0] == "FluidR3_GM"
    (system / "MuseScore_General.sf2").write_bytes(header_only())
    assert sf.default() == ("MuseScore_General", system / "MuseScore_General.sf2")
    # the user folder comes before the system's
    (user / "MuseScore_General.sf2").write_bytes(header_only())
    assert sf.default()[1] == user / "MuseScore_General.sf2"
    rows = sf.status()
    assert [r["name"] for r in rows if r["default"]] == ["MuseScore_General"]
    assert [r["installed"] for r in rows] == [True, True, True, True]


def test_the_environment_variable_picks_the_default(machine, monkeypatch, tmp_path):
    user, _ = machine
    (user / "GeneralUser-GS.sf2").write_bytes(header_only())
    monkeypatch.setenv(sf.ENV_DEFAULT, "timgm6mb")
    assert sf.default() == ("TimGM6mb", builtin_soundfont())
    mine = tmp_path / "Mine.sf2"
    mine.write_bytes(header_only())
    monkeypatch.setenv(sf.ENV_DEFAULT, str(mine))
    assert sf.default() == ("Mine", mine)
    assert [r["name"] for r in sf.status() if r["default"]] == ["Mine"]
    for bad, needle in (("banjo", "neither a SoundFont file"), ("MuseScore_General", "get it")):
        monkeypatch.setenv(sf.ENV_DEFAULT, bad)
        with pytest.raises(sf.SoundFontError, match=needle) as e:
            sf.default()
        assert sf.ENV_DEFAULT in one_line(e.value)


def test_soundfont_option_takes_a_name_or_a_path(machine, tmp_path, monkeypatch):
    user, _ = machine
    assert sf.resolve("TimGM6mb") == builtin_soundfont()
    with pytest.raises(sf.SoundFontError) as e:
        sf.resolve("GeneralUser_GS")
    assert "GeneralUser_GS is not installed" in str(e.value)
    assert "disco-musica soundfonts get GeneralUser_GS" in str(e.value)
    with pytest.raises(sf.SoundFontError, match="apt install fluid-soundfont-gm"):
        sf.resolve("fluidr3")
    (user / "GeneralUser-GS.sf2").write_bytes(header_only())
    assert sf.resolve("GeneralUser_GS") == user / "GeneralUser-GS.sf2"
    # a file of that name here is a path, not a name; so is anything with a slash
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fluidr3").write_bytes(header_only())
    assert sf.resolve("fluidr3") == Path("fluidr3")
    assert sf.resolve("./GeneralUser_GS") == Path("GeneralUser_GS")
    with pytest.raises(Exception, match="SoundFont not found: nowhere.sf2"):
        load_soundfont("nowhere.sf2")


# ---- rendering with FluidR3_GM and the record ---------------------------------------------
@needs_fluid
def test_renders_with_fluidr3_and_names_it(midi, monkeypatch):
    monkeypatch.delenv(sf.ENV_DEFAULT)
    audio, info = render_audio(midi, soundfont="FluidR3_GM")
    assert info["soundfont_name"] == "FluidR3_GM"
    assert info["soundfont"] == sf.locate(FLUID).name  # the file name only: records travel
    assert audio.shape[0] > 0 and float(abs(audio).max()) > 0.01
    _, builtin = render_audio(midi, soundfont="TimGM6mb")
    assert builtin["soundfont_name"] == "TimGM6mb"
    assert builtin["soundfont_sha256"] == sf.BUILTIN.sha256 != info["soundfont_sha256"]
    if sf.locate(sf.entry("MuseScore_General")) is None:  # then FluidR3_GM is the best here
        _, default = render_audio(midi)
        assert default["soundfont_name"] == "FluidR3_GM"
        assert default["soundfont_sha256"] == info["soundfont_sha256"]


needs_model = pytest.mark.skipif(
    "score-base" not in __import__("engine.symbolic.score_api", fromlist=["x"]).available_models(),
    reason="needs the shipped score-base model",
)


@needs_fluid
@needs_model
def test_the_record_names_fluidr3_and_replay_needs_it(tmp_path, monkeypatch):
    from engine.pipelines import compose, replay

    monkeypatch.delenv(sf.ENV_DEFAULT)
    if sf.locate(sf.entry("MuseScore_General")) is not None:
        monkeypatch.setenv(sf.ENV_DEFAULT, "FluidR3_GM")
    comp = compose.compose("a chorale, 2 bars", seed=1)
    record = comp.save(tmp_path / "piece", formats=["wav", "mid"])
    used = record["output"]["soundfont"]
    assert used["name"] == "FluidR3_GM" and used["default"] is True
    assert used["file"] == sf.locate(FLUID).name and "path" not in used  # portable
    assert str(tmp_path) not in json.dumps(record) or "replaced" in record
    assert used["sha256"] == record["render"]["soundfont_sha256"]
    assert record["render"]["soundfont_name"] == "FluidR3_GM"
    saved = json.loads((tmp_path / "piece" / "generation.json").read_text())
    assert saved["output"]["soundfont"] == used

    # today's default is another SoundFont: replay still finds FluidR3_GM, by its sha256
    monkeypatch.setenv(sf.ENV_DEFAULT, "TimGM6mb")
    _, same = replay.replay(tmp_path / "piece" / "generation.json", tmp_path / "again")
    assert same == {"music.wav": True, "music.mid": True}

    # FluidR3_GM gone: replay says in one line which SoundFont it needs, before any work
    monkeypatch.setattr(sf, "SYSTEM_DIRS", ())
    saved["output"]["soundfont"]["path"] = str(tmp_path / "moved" / "FluidR3_GM.sf2")
    (tmp_path / "piece" / "generation.json").write_text(json.dumps(saved))
    if used["sha256"] == FLUID.sha256:  # Debian's build: the hint is the package
        needle = "apt install fluid-soundfont-gm"
    else:
        needle = "put that file back"
    with pytest.raises(sf.SoundFontError, match=needle) as e:
        replay.replay(tmp_path / "piece" / "generation.json", tmp_path / "third")
    text = one_line(e.value)
    assert "rendered with FluidR3_GM" in text and used["sha256"] in text
    assert not (tmp_path / "third").exists()


# ---- replay finds the recorded SoundFont by sha256 --------------------------------------------
def test_recorded_soundfont(machine, tmp_path):
    user, _ = machine
    builtin = builtin_soundfont()
    tim = sf.BUILTIN.sha256
    # nothing recorded (MIDI only, old records): the recorded choice as it was
    assert sf.recorded_soundfont({"default": True, "sha256": None}) is None
    assert sf.recorded_soundfont({"path": "/x/y.sf2", "sha256": None}) == "/x/y.sf2"
    # the default then and now
    assert sf.recorded_soundfont({"default": True, "sha256": tim, "path": "/gone"}) is None
    # a file moved into the user folder under another name is found by its bytes
    mine = tmp_path / "Mine.sf2"
    mine.write_bytes(header_only() + b"mine")
    sha = hashlib.sha256(mine.read_bytes()).hexdigest()
    record = {"name": "Mine", "path": str(mine), "default": False, "sha256": sha}
    assert sf.recorded_soundfont(record) == str(mine)
    moved = user / "Renamed.sf2"
    shutil.move(mine, moved)
    assert sf.recorded_soundfont(record) == str(moved)
    # the default changed since: the recorded one is still used, by path
    (user / "GeneralUser-GS.sf2").write_bytes(header_only())
    assert sf.recorded_soundfont({"default": True, "sha256": tim}) == str(builtin)
    # not here: one line naming it and how to get it
    moved.unlink()
    with pytest.raises(sf.SoundFontError) as e:
        sf.recorded_soundfont(record)
    assert f"rendered with Mine (sha256 {sha})" in one_line(e.value)
    assert f"put that file back at {mine}" in one_line(e.value)
    # a record of 0.5.0 on: the file by name, never its folder; the hint says where to put it
    with pytest.raises(sf.SoundFontError) as e:
        sf.recorded_soundfont({"name": "Mine", "file": "Mine.sf2", "default": False, "sha256": sha})
    assert f"put Mine.sf2 into {user}" in one_line(e.value)
    gu = sf.entry("GeneralUser_GS")
    with pytest.raises(sf.SoundFontError, match="soundfonts get GeneralUser_GS"):
        sf.recorded_soundfont({"name": gu.name, "default": True, "sha256": gu.sha256})
    for bad in ({"sha256": "abc"}, {"sha256": 5}, {"sha256": tim, "path": 7}):
        with pytest.raises(sf.SoundFontError, match="was it edited"):
            sf.recorded_soundfont(bad)
    # accompany keeps only render_audio's info
    assert sf.recorded_render_soundfont(None) is None
    info = {"soundfont": str(builtin), "soundfont_sha256": tim, "soundfont_name": "TimGM6mb"}
    assert sf.recorded_render_soundfont(info) == str(builtin)  # GeneralUser_GS is the default


# ---- downloads, from a local server -------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802
        name = self.path.lstrip("/")
        if name not in self.files:
            self.send_error(404, "Not Found")
            return
        data = self.files[name]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if name.startswith("short"):  # says it sends it all, stops halfway, hangs up
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


SOUNDFONT = builtin_soundfont().read_bytes()[:200_000]  # a few chunks' worth of real bytes
SOUNDFONT_SHA = hashlib.sha256(SOUNDFONT).hexdigest()


@pytest.fixture
def server():
    _Handler.files = {
        "good.sf2": SOUNDFONT,
        "short.sf2": SOUNDFONT,
        "page.sf2": b"<html>" + bytes(len(SOUNDFONT) - 6),
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def served_entry(**changes) -> sf.SoundFont:
    fields = {"size": len(SOUNDFONT), "sha256": SOUNDFONT_SHA, **changes}
    return dataclasses.replace(sf.entry("GeneralUser_GS"), **fields)


def everything(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


def test_download_is_verified_then_renamed(server, tmp_path):
    seen = []
    path = sf.download(
        served_entry(),
        folder=tmp_path,
        url=f"{server}/good.sf2",
        progress=seen.append,
    )
    assert path == tmp_path / "GeneralUser-GS.sf2"
    assert path.read_bytes() == SOUNDFONT
    assert everything(tmp_path) == ["GeneralUser-GS.sf2"]
    assert {e.stage for e in seen} == {"download"}
    assert [e.done for e in seen] == sorted(e.done for e in seen)
    assert seen[-1] == Progress("download", len(SOUNDFONT), len(SOUNDFONT))


@pytest.mark.parametrize(
    "url,changes,needle",
    [
        ("good.sf2", {"sha256": "0" * 64}, f"its sha256 is {SOUNDFONT_SHA}, not the expected 0000"),
        ("short.sf2", {}, f"stopped after {len(SOUNDFONT) // 2} of {len(SOUNDFONT)} bytes"),
        ("short.sf2", {"size": None, "sha256": None}, "stopped after"),
        ("good.sf2", {"size": len(SOUNDFONT) + 1}, "offers 200000 bytes, not the 200001"),
        ("missing.sf2", {}, "the server answered 404"),
        ("page.sf2", {"sha256": None}, "what arrived is not a SoundFont 2 file"),
    ],
    ids=["sha-mismatch", "cut-short", "cut-short-unchecked", "size-mismatch", "404", "html"],
)
def test_failed_downloads_leave_nothing(server, tmp_path, url, changes, needle):
    (tmp_path / "GeneralUser-GS.sf2").write_bytes(b"an older file stays as it was")
    with pytest.raises(sf.SoundFontError) as e:
        sf.download(served_entry(**changes), folder=tmp_path, url=f"{server}/{url}")
    text = one_line(e.value)
    assert needle in text and "nothing was kept" in text
    assert everything(tmp_path) == ["GeneralUser-GS.sf2"]
    assert (tmp_path / "GeneralUser-GS.sf2").read_bytes() == b"an older file stays as it was"


def test_interrupted_download_leaves_nothing(server, tmp_path):
    def stop(event):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sf.download(served_entry(), folder=tmp_path, url=f"{server}/good.sf2", progress=stop)
    assert everything(tmp_path) == []


def test_unreachable_server(tmp_path):
    with pytest.raises(sf.SoundFontError, match="check the network connection"):
        sf.download(served_entry(), folder=tmp_path, url="http://127.0.0.1:9/x.sf2", timeout_s=5)
    assert everything(tmp_path) == []


# ---- the command ----------------------------------------------------------------------------
def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def catalogue(server, monkeypatch):
    """GeneralUser_GS served by the local server; MuseScore_General with no known sha256."""
    gu = served_entry(url=f"{server}/good.sf2")
    ms = dataclasses.replace(
        sf.entry("MuseScore_General"), url=f"{server}/good.sf2", size=None, sha256=None
    )
    table = {"GeneralUser_GS": gu, "MuseScore_General": ms}
    monkeypatch.setattr(sf, "CATALOGUE", tuple(table.get(e.name, e) for e in sf.CATALOGUE))
    return gu, ms


def test_list_and_get(machine, catalogue, capsys):
    user, _ = machine
    code, out, err = run(capsys, "soundfonts")
    assert code == 0, err
    assert "* TimGM6mb: installed, the default now" in out
    assert "GeneralUser_GS: not installed" in out
    assert "get it with `disco-musica soundfonts get GeneralUser_GS`" in out
    assert "licence MIT" in out and "licence GPL-2.0" in out
    assert f"your SoundFont folder: {user}" in out

    code, out, err = run(capsys, "soundfonts", "get", "generaluser", "--yes")
    assert code == 0, err
    # what is fetched, its size, sha256 and licence come before the download
    assert out.index("sha256   " + SOUNDFONT_SHA) < out.index("saved ")
    assert "licence  GeneralUser GS License v2.0" in out and "size     0.2 MB" in out
    assert (user / "GeneralUser-GS.sf2").read_bytes() == SOUNDFONT
    assert "the default SoundFont is now GeneralUser_GS" in out
    assert everything(user) == ["GeneralUser-GS.sf2"]

    code, out, _ = run(capsys, "soundfonts", "get", "GeneralUser_GS")
    assert code == 0 and "already installed" in out
    code, out, _ = run(capsys, "soundfonts", "--json")
    rows = {r["name"]: r for r in json.loads(out)["soundfonts"]}
    assert rows["GeneralUser_GS"]["default"] and rows["GeneralUser_GS"]["installed"]
    assert rows["GeneralUser_GS"]["path"] == str(user / "GeneralUser-GS.sf2")


def test_get_asks_first(machine, catalogue, capsys, monkeypatch):
    user, _ = machine

    class Terminal:
        def isatty(self):
            return True

    # no terminal to answer: refused, nothing fetched
    code, out, err = run(capsys, "soundfonts", "get", "GeneralUser_GS")
    assert code == 2 and err.startswith("error: ") and "--yes" in err
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    code, out, err = run(capsys, "soundfonts", "get", "GeneralUser_GS")
    assert code == 1 and "nothing downloaded" in out
    assert everything(user) == []
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    code, out, err = run(capsys, "soundfonts", "get", "GeneralUser_GS")
    assert code == 0, err
    assert everything(user) == ["GeneralUser-GS.sf2"]


def test_get_without_a_known_sha256_needs_yes(machine, catalogue, capsys):
    user, _ = machine
    code, out, err = run(capsys, "soundfonts", "get", "MuseScore_General")
    assert code == 2 and "sha256   not known" in out
    assert "is not known, so the download cannot be checked; add --yes" in err
    assert everything(user) == []
    code, out, err = run(capsys, "soundfonts", "get", "MuseScore_General", "--yes")
    assert code == 0, err
    assert everything(user) == ["MuseScore_General.sf2"]


def test_get_refusals(machine, catalogue, capsys):
    for argv, needle in (
        (["banjo"], "unknown SoundFont 'banjo'; known names: MuseScore_General"),
        (["FluidR3_GM"], "apt install fluid-soundfont-gm"),
    ):
        code, out, err = run(capsys, "soundfonts", "get", *argv, "--yes")
        assert code == 2 and err.startswith("error: ") and needle in err, err
        assert len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, "soundfonts", "get", "TimGM6mb")
    assert code == 0 and "already installed" in out


def test_ci_installs_fluidr3_so_the_fluidr3_tests_run_there():
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text().splitlines()
    installs = [line for line in ci if line.startswith("apt-get install")]
    assert any("fluid-soundfont-gm" in line.split() for line in installs)
