"""`data stats`: counts, hours, metadata distributions and the duplicate report, on a dataset
of known content built here (melodies rendered to audio and written as MIDI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import symusic

from engine.data import stats as st
from engine.data.store import Dataset, Item, item_id
from engine.progress import ProgressLog

SR = 22050
SCALE = (60, 62, 64, 65, 67, 69, 71, 72)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One home (and fingerprint cache) for the module: later tests reuse fingerprints."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(autouse=True)
def _home(home, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(home))


def melody(seed: int, seconds: float = 16.0) -> list[tuple[float, float, int]]:
    """(start s, length s, pitch) of a random tune on the C major scale."""
    r = np.random.default_rng(seed)
    notes, t = [], 0.0
    while t < seconds:
        d = float(r.choice([0.25, 0.5, 0.5, 1.0]))
        notes.append((t, d, int(r.choice(SCALE))))
        t += d
    return notes


def render(notes, seconds: float = 16.0) -> np.ndarray:
    """The tune as audio (three harmonics a note), mono float."""
    y = np.zeros(int((seconds + 2) * SR))
    for t, d, p in notes:
        f = 440 * 2 ** ((p - 69) / 12)
        n = int(d * SR)
        tt = np.arange(n) / SR
        env = np.minimum(1, np.minimum(tt * 50, (d - tt) * 50))
        tone = sum(np.sin(2 * np.pi * f * k * tt) / k for k in (1, 2, 3))
        y[int(t * SR) : int(t * SR) + n] += env * tone
    return (y[: int(seconds * SR)] * 0.2).astype(np.float32)


def wav(path, y) -> None:
    sf.write(path, y, SR, subtype="PCM_16")


def mid(path, notes, shift: int = 0) -> None:
    """The tune as MIDI at 120 BPM (480 ticks a beat: 960 ticks a second)."""
    s = symusic.Score(480)
    tr = symusic.Track(program=0)
    for t, d, p in notes:
        tr.notes.append(symusic.Note(int(t * 960), int(d * 960), p + shift, 80))
    s.tracks.append(tr)
    s.dump_midi(str(path))


def put(ch, src, path, kind, **kw) -> Item:
    h = ch.put_file(src)
    item = Item(id=item_id(path), path=path, hash=h, kind=kind, size=src.stat().st_size, **kw)
    return ch.put(item)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A dataset of known content: 8 audio items, 6 MIDI items, 1 image (15 items)."""
    tmp = tmp_path_factory.mktemp("stats")
    src = tmp / "src"
    src.mkdir()
    rng = np.random.default_rng(7)
    tunes = [melody(s) for s in range(6)]
    a = render(tunes[0])
    wav(src / "a.wav", a)
    noisy = a * 0.5 + rng.normal(0, 0.02, a.shape).astype(np.float32)
    wav(src / "a_noisy.wav", noisy)
    wav(src / "b.wav", render(tunes[1]))
    wav(src / "c.wav", render(tunes[2]))
    # two chunks of one song that sound alike: never reported as duplicates of each other
    s3 = render(tunes[3])
    wav(src / "s0.wav", s3)
    wav(src / "s1.wav", s3 * 0.8 + rng.normal(0, 0.01, s3.shape).astype(np.float32))
    wav(src / "quiet.wav", np.zeros(SR * 2, dtype=np.float32))
    mid(src / "m.mid", tunes[0])
    mid(src / "m_up3.mid", tunes[0], shift=3)
    changed = list(tunes[0])
    t, d, p = changed[5]
    changed[5] = (t, d, p + 1)
    mid(src / "m_one.mid", changed)
    mid(src / "n.mid", tunes[4])
    mid(src / "o.mid", tunes[5])
    (src / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\xff")
    (src / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))

    ds = Dataset.create(tmp / "ds")
    with ds.change({"name": "test"}, "built by the test") as ch:
        user = {"genre": "funk", "tempo": 96}
        it = put(
            ch, src / "a.wav", "songs/a.wav", "audio", duration_s=16.0, split="train", group="a"
        )
        ch.put(it.with_meta(user, "user"))
        put(
            ch,
            src / "a.wav",
            "copies/a-again.wav",
            "audio",
            duration_s=16.0,
            split="train",
            group="a2",
        )
        it = put(
            ch,
            src / "a_noisy.wav",
            "takes/a-noisy.wav",
            "audio",
            duration_s=16.0,
            split="validation",
            group="an",
        )
        ch.put(it.with_meta({"genre": "funk"}, "sidecar").with_meta({"tempo": 121}, "estimate"))
        it = put(
            ch, src / "b.wav", "songs/b.wav", "audio", duration_s=16.0, split="test", group="b"
        )
        ch.put(
            it.with_meta({"genre": "jazz", "instruments": "piano,bass"}, "tags").with_meta(
                {"key": "C major", "tempo": 59}, "estimate"
            )
        )
        it = put(ch, src / "c.wav", "songs/c.wav", "audio", duration_s=16.0, group="c")
        ch.put(it.with_meta({"instruments": ["piano"], "tags": ["live", "demo"]}, "user"))
        put(
            ch, src / "s0.wav", "songs/s~000.wav", "audio", duration_s=16.0, group="s", step="audio"
        )
        put(
            ch, src / "s1.wav", "songs/s~001.wav", "audio", duration_s=16.0, group="s", step="audio"
        )
        put(ch, src / "quiet.wav", "songs/quiet.wav", "audio", duration_s=2.0, group="q")
        for name, g in (("m", "m"), ("m_up3", "mu"), ("m_one", "mo"), ("n", "n"), ("o", "o")):
            it = put(
                ch,
                src / f"{name}.mid",
                f"midi/{name}.mid",
                "midi",
                duration_s=16.0,
                group=g,
                split="train",
            )
            if name == "m":
                ch.put(it.with_meta({"key": "C major", "meter": "4/4"}, "estimate"))
        put(ch, src / "broken.mid", "midi/broken.mid", "midi", group="x")
        put(ch, src / "cover.png", "art/cover.png", "image", group="img")
    return ds


def test_counts_and_hours_are_exact(built):
    r = st.stats(built, near=False)
    c = r["counts"]
    assert r["items"] == 15
    assert c["by_kind"] == {"audio": 8, "image": 1, "midi": 6}
    assert c["by_split"] == {"train": 7, "validation": 1, "test": 1, "unassigned": 6}
    assert c["by_step"] == {"audio": 2, "import": 13}
    assert c["by_kind_and_split"]["audio"] == {
        "test": 1,
        "train": 2,
        "unassigned": 4,
        "validation": 1,
    }
    assert c["files"] == 14  # a.wav twice
    assert c["groups"] == 14  # the two chunks of s share one
    assert c["bytes"] == sum(i.size for i in built.items())
    h = r["hours"]
    assert h["audio"] == pytest.approx((7 * 16 + 2) / 3600)
    assert h["midi"] == pytest.approx(5 * 16 / 3600)
    assert h["total"] == pytest.approx((7 * 16 + 2 + 5 * 16) / 3600)
    assert h["no_duration"] == 1  # broken.mid
    assert "near" not in r["duplicates"]


def test_distributions_and_told_versus_estimated(built):
    f = st.stats(built, near=False)["fields"]
    assert f["genre"] == {
        "items": 3,
        "told": 3,
        "estimated": 0,
        "missing": 12,
        "by_source": {"sidecar": 1, "tags": 1, "user": 1},
        "values": {"funk": 2, "jazz": 1},
        "distinct": 2,
    }
    # tempo: 96 told, 121 and 59 estimated, in bins
    assert f["tempo"]["values"] == {"under 60": 1, "80-99": 1, "120-139": 1}
    assert (f["tempo"]["told"], f["tempo"]["estimated"]) == (1, 2)
    assert f["tempo"]["by_source"] == {"estimate": 2, "user": 1}
    assert f["instruments"]["values"] == {"piano": 2, "bass": 1}
    assert f["tags"]["values"] == {"demo": 1, "live": 1}
    assert (f["key"]["items"], f["key"]["estimated"], f["key"]["told"]) == (2, 2, 0)
    assert f["key"]["values"] == {"C major": 2}
    assert f["meter"]["values"] == {"4/4": 1}
    assert f["mood"] == {
        "items": 0,
        "told": 0,
        "estimated": 0,
        "missing": 15,
        "by_source": {},
        "values": {},
        "distinct": 0,
    }
    assert st.tempo_bin(180) == "180 and over" and st.tempo_bin(60) == "60-79"


def test_exact_and_near_duplicates(built):
    log = ProgressLog()
    r = st.stats(built, progress=log, workers=1)
    d = r["duplicates"]
    assert [sorted(i["path"] for i in e["items"]) for e in d["exact"]] == [
        ["copies/a-again.wav", "songs/a.wav"]
    ]
    pairs = {(p["a"]["path"], p["b"]["path"]): p for p in d["near"]}
    found = {frozenset(k) for k in pairs}
    assert found == {
        frozenset({"songs/a.wav", "takes/a-noisy.wav"}),
        frozenset({"copies/a-again.wav", "takes/a-noisy.wav"}),
        frozenset({"midi/m.mid", "midi/m_up3.mid"}),
        frozenset({"midi/m.mid", "midi/m_one.mid"}),
        frozenset({"midi/m_up3.mid", "midi/m_one.mid"}),
    }, found
    for p in d["near"]:
        assert st.NEAR_THRESHOLD <= p["similarity"] <= 1.0
        assert p["offset_s"] == 0
    up = next(p for k, p in pairs.items() if set(k) == {"midi/m.mid", "midi/m_up3.mid"})
    assert up["semitones"] == (3 if up["b"]["path"] == "midi/m_up3.mid" else -3)
    skipped = {f["path"]: f["reason"] for f in d["not_fingerprinted"]}
    assert set(skipped) == {"midi/broken.mid", "songs/quiet.wav"}
    assert "not compared" in skipped["songs/quiet.wav"]
    assert d["fingerprinted"] == 13  # 8 audio items (7 contents) + 5 readable MIDI files
    ev = log.of("fingerprints")
    assert ev[-1].done == ev[-1].total == 13  # each content once (broken.mid included)
    # a second run reads the fingerprints from the cache: only the broken file is tried again
    log2 = ProgressLog()
    again = st.stats(built, progress=log2, workers=1)
    assert again["duplicates"] == d
    assert log2.of("fingerprints")[-1].total == 1


def test_similarity_survives_offsets_and_rejects_other_tunes():
    a = render(melody(0))
    ca = st.audio_chroma_of(a, SR)
    late = np.concatenate([np.zeros(int(1.25 * SR), dtype=np.float32), a])
    sim, offset, semis = st.similarity(ca, st.audio_chroma_of(late, SR))
    assert sim >= st.NEAR_THRESHOLD and offset in (1.0, 1.5) and semis == 0
    for seed in range(1, 5):
        other = st.similarity(ca, st.audio_chroma_of(render(melody(seed)), SR))[0]
        assert other < 0.5, seed
    sim_t = st.similarity(ca, st.audio_chroma_of(render(melody(0)), SR), transpose=False)[0]
    assert sim_t == pytest.approx(1.0, abs=1e-4)


def test_features_file_is_used_when_an_item_has_one(tmp_path):
    from engine.data.features import audio_features, save_features

    y = render(melody(0))
    npz = save_features(audio_features(y, SR))
    from_features = st.features_chroma(npz)
    assert from_features is not None
    assert st.similarity(st.audio_chroma_of(y, SR), from_features)[0] > 0.95


def test_workers_give_the_same_fingerprints(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCO_MUSICA_HOME", str(tmp_path / "home"))
    ds = Dataset.create(tmp_path / "many")
    with ds.change({"name": "test"}, "tunes") as ch:
        for k in range(8):
            p = tmp_path / f"t{k}.mid"
            mid(p, melody(k // 2), shift=k % 2)  # pairs: a tune and its copy a semitone up
            put(ch, p, f"t{k}.mid", "midi", duration_s=16.0)
    one, _ = st.fingerprints(ds, ds.items(), workers=1)
    import shutil

    shutil.rmtree(tmp_path / "home", ignore_errors=True)  # no cache: the pool does the work
    two, _ = st.fingerprints(ds, ds.items(), workers=2)
    assert one.keys() == two.keys()
    for k in one:
        np.testing.assert_allclose(one[k], two[k])
    near = st.near_duplicates(ds, ds.items())["near"]
    assert sorted((p["a"]["path"], p["b"]["path"]) for p in near) == [
        (f"t{k}.mid", f"t{k + 1}.mid") for k in range(0, 8, 2)
    ]


def test_cli_tables_and_json(built, capsys):
    from engine.cli import main

    assert main(["data", "stats", str(built.path)]) == 0
    out = capsys.readouterr().out
    assert "Items by kind and split" in out
    assert "Exact duplicates: 1 set of items with the same file" in out
    assert "Near-duplicates: 5 pairs" in out and "midi/m_up3.mid" in out
    assert "midi/broken.mid" in out
    assert main(["data", "stats", str(built.path), "--json", "--no-near"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["items"] == 15 and "near" not in r["duplicates"]
    assert r["fields"]["genre"]["values"] == {"funk": 2, "jazz": 1}
