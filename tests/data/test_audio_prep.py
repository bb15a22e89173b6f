"""``data prep audio`` (`engine.data.audio_prep`): every step measured on audio built here
(sines, clicks at a known tempo, noise, silence), the names and lineage of chunks and
stems, the recorded step, resuming after an interruption, and the command line."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.data import audio_prep
from engine.data.audio_prep import AudioPrep, PrepReport, prep_audio, segment
from engine.data.features import load_features
from engine.data.store import Dataset, DatasetError, Item, item_id
from engine.progress import ProgressLog

SR = 44100
ROOT = Path(__file__).resolve().parents[2]


def sine(hz: float, seconds: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def noise(seconds: float, sr: int = SR, amp: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal(int(seconds * sr))).astype(np.float32)


def wav(y: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def make_ds(tmp_path: Path, files: dict[str, bytes], kinds: dict[str, str] | None = None):
    """A dataset holding ``files`` (dataset path → bytes), each its own group."""
    ds = Dataset.create(tmp_path / "ds")
    with ds.change({"name": "import"}, "import") as ch:
        for path, data in files.items():
            h = ch.put_bytes(data)
            kind = (kinds or {}).get(path, "audio")
            ch.put(Item(item_id(path), path, h, kind, len(data), group=path))
    return ds


def read(ds: Dataset, item: Item) -> tuple[np.ndarray, int]:
    y, sr = sf.read(ds.file(item), dtype="float32", always_2d=True)
    return y, sr


def lufs(y: np.ndarray, sr: int) -> float:
    import pyloudnorm

    return pyloudnorm.Meter(sr).integrated_loudness(y.astype(np.float64))


# ---- format: rate, channels, bit depth ------------------------------------------------------
def test_resample_channels_and_bit_depth_keep_ids_and_paths(tmp_path):
    stereo = np.stack([sine(440, 3.0), sine(660, 3.0)], axis=1)
    ds = make_ds(tmp_path, {"songs/a.wav": wav(stereo), "songs/b.flac": wav(sine(220, 2.0))})
    before = {i.path: i for i in ds.items()}
    log = ProgressLog()
    opts = AudioPrep(sample_rate=22050, channels="mono", bit_depth="24", features=False)
    r = prep_audio(ds, opts, progress=log, workers=1)
    assert not r.skipped and not r.removed and r.version == ds.head
    items = {i.path: i for i in ds.items()}
    assert set(items) == {"songs/a.wav", "songs/b.wav"}  # outputs are WAV
    a, b = items["songs/a.wav"], items["songs/b.wav"]
    assert a.id == before["songs/a.wav"].id and b.id == before["songs/b.flac"].id
    assert a.group == "songs/a.wav" and a.parent is None and a.step == "audio"
    for item, seconds in ((a, 3.0), (b, 2.0)):
        info = sf.info(str(ds.file(item)))
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_24")
        assert info.frames == int(seconds * 22050)
        assert item.duration_s == pytest.approx(seconds)
        assert item.info["sample_rate"] == 22050 and item.info["channels"] == 1
        assert item.info["bit_depth"] == "24" and "features" not in item.extras
    # the mix of 440 and 660 Hz: both still there, nothing above the new Nyquist
    y, sr = read(ds, a)
    spectrum = np.abs(np.fft.rfft(y[:, 0]))
    freqs = np.fft.rfftfreq(y.shape[0], 1 / sr)
    assert {440, 660} <= {round(f) for f in freqs[np.argsort(spectrum)[-2:]]}
    # the step is recorded with every parameter
    last = ds.pipeline()[-1]
    assert last["name"] == "audio" and last["sample_rate"] == 22050
    assert last["channels"] == "mono" and last["bit_depth"] == "24"
    assert log.of("files")[-1].done == log.of("files")[-1].total == 2


@pytest.mark.parametrize(
    ("channels", "bit_depth", "want"),
    [("stereo", "32f", (2, "FLOAT")), ("keep", None, (1, "PCM_24")), ("keep", "16", (1, "PCM_16"))],
)
def test_channel_layouts_and_depths(tmp_path, channels, bit_depth, want):
    ds = make_ds(tmp_path, {"a.wav": wav(sine(440, 1.0), subtype="PCM_24")})
    prep_audio(ds, AudioPrep(channels=channels, bit_depth=bit_depth, features=False), workers=1)
    (item,) = ds.items()
    info = sf.info(str(ds.file(item)))
    assert (info.channels, info.subtype) == want
    y, _ = read(ds, item)
    if channels == "stereo":
        np.testing.assert_array_equal(y[:, 0], y[:, 1])


# ---- loudness ---------------------------------------------------------------------------------
def test_loudness_reaches_the_target_within_half_a_lu(signals, tmp_path):
    files = {
        "quiet.wav": wav(sine(440, 4.0, amp=0.02)),
        "loud.wav": wav(noise(4.0, amp=0.3)),
        "music.wav": wav(signals.scale_and_chord(sr=SR)[: 6 * SR]),
    }
    ds = make_ds(tmp_path, files)
    prep_audio(ds, AudioPrep(loudness_lufs=-23.0, features=False), workers=1)
    for item in ds.items():
        y, sr = read(ds, item)
        assert lufs(y, sr) == pytest.approx(-23.0, abs=0.5), item.path
        assert item.info["loudness_lufs"] == pytest.approx(-23.0, abs=0.5)
        assert item.info["peak_limited"] is False


def test_loudness_never_clips_past_the_true_peak_ceiling(tmp_path):
    ds = make_ds(tmp_path, {"a.wav": wav(sine(997, 3.0, amp=0.25))})
    # a -12 dBFS sine reads about -15 LUFS: 10 dB more would peak at -2 dBFS, over -3 dBTP
    opts = AudioPrep(loudness_lufs=-5.0, peak_db=-3.0, bit_depth="32f", features=False)
    prep_audio(ds, opts, workers=1)
    (item,) = ds.items()
    y, sr = read(ds, item)
    assert item.info["peak_limited"] is True
    assert audio_prep.true_peak_db(y, sr) == pytest.approx(-3.0, abs=0.05)
    assert float(np.max(np.abs(y))) < 1.0
    assert lufs(y, sr) < -5.0  # quieter than asked: the ceiling won


# ---- trimming and noise -------------------------------------------------------------------
def test_silence_is_trimmed_from_both_ends(tmp_path):
    y = np.concatenate([np.zeros(SR), sine(440, 2.0), np.zeros(int(1.5 * SR))])
    ds = make_ds(tmp_path, {"a.wav": wav(y)})
    prep_audio(ds, AudioPrep(trim_db=40, features=False), workers=1)
    (item,) = ds.items()
    out, _ = read(ds, item)
    assert out.shape[0] / SR == pytest.approx(2.0, abs=0.1)
    assert item.info["trimmed_start_s"] == pytest.approx(1.0, abs=0.06)


def _snr_db(y: np.ndarray, tone_part: slice, noise_part: slice) -> float:
    return 10 * math.log10(np.mean(y[tone_part] ** 2) / np.mean(y[noise_part] ** 2))


@pytest.mark.parametrize("stationary", [True, False])
def test_noise_reduction_raises_the_snr(signals, tmp_path, stationary):
    # 3.2 s of a melody, then 2 s of nothing, all of it under steady hiss
    clean = np.concatenate(
        [0.5 * signals.scale_and_chord(sr=SR)[: int(3.2 * SR)], np.zeros(2 * SR)]
    )
    y = (clean + noise(clean.shape[0] / SR, amp=0.02)).astype(np.float32)
    music, hiss = slice(int(0.2 * SR), int(3.0 * SR)), slice(int(3.5 * SR), int(5.0 * SR))
    before = _snr_db(y, music, hiss)
    files = {"full.wav": wav(y, subtype="FLOAT"), "half.wav": wav(y, subtype="FLOAT")}
    ds = make_ds(tmp_path, files)
    for path, strength in (("full.wav", 1.0), ("half.wav", 0.5)):
        opts = AudioPrep(denoise=strength, stationary_noise=stationary, features=False)
        prep_audio(ds, opts, selectors=[path], workers=1)
    snr = {}
    for item in ds.items():
        out, _ = read(ds, item)
        snr[item.path] = _snr_db(out[:, 0], music, hiss)
    # the floor goes down by more than 15 dB at full strength, less at half
    assert snr["full.wav"] > before + 15, (before, snr)
    assert before + 1 < snr["half.wav"] < snr["full.wav"] - 10, (before, snr)


# ---- segmentation -----------------------------------------------------------------------------
GAPS_S = (8.0, 17.5, 26.0, 38.0, 47.0, 58.0)  # quiet gaps (0.4 s) in a 66 s piece


def gapped(seconds: float = 66.0, sr: int = SR) -> np.ndarray:
    y = sine(330, seconds, sr, amp=0.3) + noise(seconds, sr, amp=0.05, seed=3)
    for g in GAPS_S:
        y[int(g * sr) : int((g + 0.4) * sr)] *= 0.01
    return y


def test_chunks_are_min_to_max_long_cut_in_quiet_gaps_and_named(tmp_path):
    ds = make_ds(tmp_path, {"songs/take.wav": wav(gapped()), "songs/other.wav": wav(sine(1, 6))})
    original = next(i for i in ds.items() if i.path == "songs/take.wav")
    r = prep_audio(ds, AudioPrep(segment_s=(5.0, 15.0), features=False), workers=1)
    chunks = sorted((i for i in ds.items() if i.parent == original.id), key=lambda i: i.path)
    assert [i.path for i in chunks] == [f"songs/take~{n:03d}.wav" for n in range(len(chunks))]
    assert original.id in r.removed and original.id not in {i.id for i in ds.items()}
    for c in chunks:
        assert 5.0 - 1e-6 <= c.duration_s <= 15.0 + 1e-6
        assert c.id == item_id(c.path) and c.group == original.group and c.step == "audio"
    # contiguous and complete
    assert chunks[0].info["start_s"] == 0.0
    assert chunks[-1].info["end_s"] == pytest.approx(66.0, abs=1e-3)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.info["end_s"] == b.info["start_s"]
    # every cut inside a quiet gap
    for c in chunks[:-1]:
        assert any(g - 0.05 <= c.info["end_s"] <= g + 0.45 for g in GAPS_S), c.info["end_s"]
    # the 6 s item makes one chunk; the next version's lineage is in its parent
    other = [i for i in ds.items() if i.path.startswith("songs/other~")]
    assert [i.path for i in other] == ["songs/other~000.wav"]


def test_keep_originals_keeps_the_segmented_item(tmp_path):
    ds = make_ds(tmp_path, {"a.wav": wav(gapped(30.0))})
    r = prep_audio(ds, AudioPrep(segment_s=(5, 15), keep_originals=True, features=False), workers=1)
    assert not r.removed and "a.wav" in {i.path for i in ds.items()}
    assert len(ds.items()) == 1 + len(r.made)


def test_cuts_at_beats_fall_on_clicks(signals, tmp_path):
    bpm = 120.0
    y = signals.clicks(bpm, 40.0, sr=SR) + 0.3 * sine(220, 40.0)
    ds = make_ds(tmp_path, {"beat.wav": wav(y)})
    prep_audio(ds, AudioPrep(segment_s=(5, 12), cut_at="beats", features=False), workers=1)
    chunks = sorted(ds.items(), key=lambda i: i.path)
    assert len(chunks) >= 4
    for c in chunks:
        assert 5.0 - 1e-6 <= c.duration_s <= 12.0 + 1e-6 and c.info["cut_at"] == "beats"
    for c in chunks[:-1]:
        off = (c.info["end_s"] + 0.25) % (60 / bpm) - 0.25  # from the nearest click
        assert abs(off) < 0.03, c.info["end_s"]


def test_a_length_that_cannot_be_cut_drops_its_short_tail(tmp_path):
    ds = make_ds(tmp_path, {"a.wav": wav(gapped(35.0)), "short.wav": wav(sine(440, 12.0))})
    r = prep_audio(ds, AudioPrep(segment_s=(20, 30), features=False), workers=1)
    (chunk,) = [i for i in ds.items() if i.path.startswith("a~")]
    assert 20 <= chunk.duration_s <= 30
    assert chunk.info["dropped_tail_s"] == pytest.approx(35.0 - chunk.duration_s, abs=1e-3)
    # shorter than MIN: left as it was, and said
    assert [p for p, _ in r.skipped] == ["short.wav"] and "minimum" in r.skipped[0][1]
    assert "short.wav" in {i.path for i in ds.items()}


@pytest.mark.parametrize("seconds", [5.0, 9.9, 10.0, 31.0, 59.0, 61.0, 100.0, 241.3])
@pytest.mark.parametrize(("lo", "hi"), [(5, 30), (5, 10), (10, 12), (1, 120)])
def test_segment_plan_covers_everything_with_chunks_in_range(seconds, lo, hi):
    sr = 1000
    y = np.random.default_rng(int(seconds)).standard_normal((int(seconds * sr), 1)) * 0.1
    if seconds < lo:
        return
    pieces = segment(y.astype(np.float32), sr, lo, hi)
    lengths = [(b - a) / sr for a, b, _ in pieces]
    assert all(lo - 1e-9 <= n <= hi + 1e-9 for n in lengths), lengths
    assert pieces[0][0] == 0
    for (_, b, _), (a, _, _) in zip(pieces, pieces[1:], strict=False):
        assert a == b
    fits = audio_prep._fits(y.shape[0], lo * sr, hi * sr)
    assert (pieces[-1][1] == y.shape[0]) == fits


# ---- stems ------------------------------------------------------------------------------------
def _energy(ds, item) -> float:
    y, _ = read(ds, item)
    return float(np.sum(y.astype(np.float64) ** 2))


def test_hpss_puts_a_tone_in_harmonic_and_clicks_in_percussive(signals, tmp_path):
    ds = make_ds(
        tmp_path, {"tone.wav": wav(sine(440, 4.0)), "clicks.wav": wav(signals.clicks(100, 4.0))}
    )
    r = prep_audio(ds, AudioPrep(stems="hpss", features=False), workers=1)
    items = {i.path: i for i in ds.items()}
    assert set(items) == {
        "tone~harmonic.wav",
        "tone~percussive.wav",
        "clicks~harmonic.wav",
        "clicks~percussive.wav",
    }
    assert len(r.removed) == 2
    t_h, t_p = _energy(ds, items["tone~harmonic.wav"]), _energy(ds, items["tone~percussive.wav"])
    c_h, c_p = (
        _energy(ds, items["clicks~harmonic.wav"]),
        _energy(ds, items["clicks~percussive.wav"]),
    )
    assert t_h > 100 * t_p
    assert c_p > 3 * c_h
    assert items["tone~harmonic.wav"].info["stem"] == "harmonic"
    assert items["tone~harmonic.wav"].parent == item_id("tone.wav")


def test_chunks_and_stems_together(tmp_path):
    ds = make_ds(tmp_path, {"a.wav": wav(gapped(20.0, sr=8000), sr=8000)})
    prep_audio(ds, AudioPrep(segment_s=(5, 12), stems="hpss", features=False), workers=1)
    paths = sorted(i.path for i in ds.items())
    n = len(paths) // 2
    assert paths == sorted(f"a~{k:03d}~{s}.wav" for k in range(n) for s in audio_prep.HPSS_STEMS)
    assert {i.info["parts"] for i in ds.items()} == {2 * n}


def test_demucs_when_missing_says_how_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "demucs" else real(name, *a)
    )
    ds = make_ds(tmp_path, {"a.wav": wav(sine(440, 1.0))})
    head = ds.head
    with pytest.raises(DatasetError, match=r"pip install demucs"):
        prep_audio(ds, AudioPrep(stems="demucs"))
    assert ds.head == head


# ---- features and estimates -----------------------------------------------------------------
def test_features_beside_each_item_and_estimates_that_never_overwrite(signals, tmp_path):
    sr = 22050
    y = 0.5 * signals.scale_and_chord(sr=sr)[: 9 * sr] + signals.clicks(120.0, 9.0, sr=sr)
    ds = make_ds(tmp_path, {"told.wav": wav(y, sr), "untold.wav": wav(y, sr)})
    with ds.change({"name": "edit"}, "edit") as ch:
        told = ch.by_path("told.wav")
        ch.put(told.with_meta({"tempo": 96, "genre": "funk"}, "user"))
    prep_audio(ds, AudioPrep(), workers=1)
    items = {i.path: i for i in ds.items()}
    told, untold = items["told.wav"], items["untold.wav"]
    assert told.meta["tempo"] == 96 and told.meta_from["tempo"] == "user"
    assert told.meta["genre"] == "funk"
    assert untold.meta["tempo"] == pytest.approx(120.0, rel=0.02)
    assert untold.meta["key"] == "C major"
    assert untold.estimated == ["key", "tempo"]
    f = load_features(ds.object_path(untold.extras["features"]))
    assert f["mel_db"].shape[0] == 128 and int(f["sample_rate"]) == sr
    assert float(f["tempo_bpm"]) == pytest.approx(120.0, rel=0.02)
    assert untold.info["loudness_lufs"] == pytest.approx(float(f["loudness_lufs"]), abs=0.01)
    assert untold.info["sample_rate"] == sr and untold.info["channels"] == 1


def test_no_features_stores_none_and_drops_stale_ones(tmp_path):
    ds = make_ds(tmp_path, {"a.wav": wav(sine(440, 1.0))})
    prep_audio(ds, AudioPrep(), workers=1)
    assert "features" in ds.items()[0].extras
    prep_audio(ds, AudioPrep(sample_rate=16000, features=False), workers=1)
    (item,) = ds.items()
    assert "features" not in item.extras and item.info["sample_rate"] == 16000


# ---- what is left alone -----------------------------------------------------------------------
def test_other_kinds_are_left_alone_and_unreadable_audio_is_skipped(tmp_path):
    files = {
        "a.wav": wav(sine(440, 1.0)),
        "tune.mid": b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0",
        "broken.wav": b"this is not audio\n" * 50,
        "tiny.wav": wav(sine(440, 0.1)),
    }
    ds = make_ds(tmp_path, files, kinds={"tune.mid": "midi"})
    before = {i.path: i for i in ds.items()}
    r = prep_audio(ds, AudioPrep(sample_rate=16000), workers=1)
    after = {i.path: i for i in ds.items()}
    assert after["tune.mid"] == before["tune.mid"]
    assert after["broken.wav"] == before["broken.wav"] and after["tiny.wav"] == before["tiny.wav"]
    reasons = dict(r.skipped)
    assert set(reasons) == {"broken.wav", "tiny.wav"}
    assert "broken.wav" in reasons["broken.wav"] and "objects" not in reasons["broken.wav"]
    assert "too short" in reasons["tiny.wav"]
    assert [i.path for i in r.made] == ["a.wav"]


def test_choosing_no_audio_is_refused_without_a_change(tmp_path):
    ds = make_ds(tmp_path, {"tune.mid": b"MThd"}, kinds={"tune.mid": "midi"})
    head = ds.head
    with pytest.raises(DatasetError, match=r"tune\.mid is a midi item"):
        prep_audio(ds, AudioPrep())
    assert ds.head == head and not (ds.path / "pending.jsonl").exists()


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("sample_rate", 0, "sample_rate"),
        ("sample_rate", 44100.5, "sample_rate"),
        ("channels", "quad", "channels"),
        ("bit_depth", "8", "bit_depth"),
        ("loudness_lufs", 3.0, "loudness"),
        ("loudness_lufs", math.nan, "loudness"),
        ("peak_db", 1.0, "peak"),
        ("trim_db", 0.0, "trim"),
        ("denoise", 0.0, "denoise"),
        ("denoise", 1.5, "denoise"),
        ("segment_s", (0.5, 10), "segment"),
        ("segment_s", (10, 5), "segment"),
        ("segment_s", (5, 121), "segment"),
        ("cut_at", "bars", "cut_at"),
        ("stems", "spleeter", "stems"),
    ],
)
def test_bad_options_name_the_field_and_its_range(field, value, needle):
    with pytest.raises(DatasetError, match=needle):
        AudioPrep(**{field: value}).check()


def test_a_full_disk_is_one_line_and_the_rerun_continues(tmp_path, monkeypatch):
    import errno

    from engine.data.store import Change

    ds = make_ds(tmp_path, _songs(3))
    head = ds.head
    real = Change.put_bytes
    stored = []

    def full(self, data):
        if len(stored) == 3:  # the second song's chunks
            raise OSError(errno.ENOSPC, "No space left on device")
        stored.append(1)
        return real(self, data)

    monkeypatch.setattr(Change, "put_bytes", full)
    opts = AudioPrep(segment_s=(5, 10), features=False)
    with pytest.raises(DatasetError, match="is full; free some space and run it again"):
        prep_audio(ds, opts, workers=1)
    assert ds.head == head and len(ds.items()) == 3  # no version half-written
    monkeypatch.setattr(Change, "put_bytes", real)
    r = prep_audio(ds, opts, workers=1)
    _check_whole(ds, r, 3)


# ---- resuming ---------------------------------------------------------------------------------
def _songs(n: int) -> dict[str, bytes]:
    return {f"s{k}.wav": wav(gapped(20.0, sr=8000), sr=8000) for k in range(n)}


def test_an_interrupted_run_continues_without_losing_or_doubling(tmp_path, monkeypatch):
    ds = make_ds(tmp_path, _songs(5))
    opts = AudioPrep(segment_s=(5, 10), features=False)
    real = audio_prep.process_file
    calls = []

    def flaky(file, label, options):
        calls.append(label)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(file, label, options)

    monkeypatch.setattr(audio_prep, "process_file", flaky)
    head = ds.head
    with pytest.raises(KeyboardInterrupt):
        prep_audio(ds, opts, workers=1)
    assert ds.head == head and (ds.path / "pending.jsonl").is_file()
    calls.clear()
    monkeypatch.setattr(audio_prep, "process_file", lambda *a: calls.append(a[1]) or real(*a))
    r = prep_audio(ds, opts, workers=1)
    assert sorted(calls) == ["s2.wav", "s3.wav", "s4.wav"]  # s0, s1 were done
    _check_whole(ds, r, 5)


def _check_whole(ds: Dataset, r: PrepReport, songs: int) -> None:
    items = ds.items()
    paths = [i.path for i in items]
    assert len(paths) == len(set(paths))
    assert {i.parent for i in items} == {item_id(f"s{k}.wav") for k in range(songs)}
    for k in range(songs):
        mine = sorted(i.info["part"] for i in items if i.parent == item_id(f"s{k}.wav"))
        assert mine == list(range(items[0].info["parts"]))
    assert sorted(i.path for i in r.made) == sorted(paths)
    assert not (ds.path / "pending.jsonl").exists()
    assert ds.pipeline()[-1]["name"] == "audio"


KILL_SCRIPT = """
import sys, time
import engine
from engine.data import audio_prep
from engine.data.store import Dataset
real = audio_prep.process_file
def slow(*a):
    out = real(*a)
    time.sleep(0.4)
    return out
audio_prep.process_file = slow
ds = Dataset.open(sys.argv[1])
audio_prep.prep_audio(ds, audio_prep.AudioPrep(segment_s=(5, 10), features=False), workers=1)
"""


def test_kill_9_half_way_then_rerun(tmp_path):
    ds = make_ds(tmp_path, _songs(8))
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(ds.path)], cwd=ROOT)
    journal = ds.path / "pending.jsonl"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.is_file() and journal.read_text().count('"op": "remove"') >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    r = prep_audio(Dataset.open(ds.path), AudioPrep(segment_s=(5, 10), features=False), workers=1)
    _check_whole(ds, r, 8)
    kept = [v for v in ds.versions() if v.step.get("interrupted")]
    assert not kept  # the same step continued; nothing was kept apart


@pytest.mark.slow  # 35 s: two worker processes start and import librosa
def test_two_workers_give_the_same_dataset_as_one(tmp_path):
    # (no features: a worker's first beat tracking waits for librosa to compile it, seconds)
    files = {f"w{k}.wav": wav(gapped(12.0, sr=16000), sr=16000) for k in range(3)}
    one = make_ds(tmp_path / "one", files)
    two = make_ds(tmp_path / "two", files)
    opts = AudioPrep(sample_rate=8000, segment_s=(3, 6), loudness_lufs=-20, features=False)
    prep_audio(one, opts, workers=1)
    log = ProgressLog()
    r = prep_audio(two, opts, workers=2, progress=log)
    assert len(r.made) >= 6 and [e.done for e in log.of("files")] == [0, 1, 2, 3]
    assert [(i.path, i.hash, i.info) for i in one.items()] == [
        (i.path, i.hash, i.info) for i in two.items()
    ]


# ---- the command line ---------------------------------------------------------------------------
def test_cli_prints_what_it_made_and_the_new_version(tmp_path, capsys):
    from engine.cli import main

    ds = make_ds(tmp_path, {"a.wav": wav(gapped(30.0)), "b.txt.wav": b"not audio" * 100})
    argv = ["data", "prep", "audio", str(ds.path), "--sample-rate", "22050"]
    code = main([*argv, "--segment", "5-15", "--channels", "mono", "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "skipped b.txt.wav:" in out
    made = [i for i in ds.items() if i.path.startswith("a~")]
    assert f"made {len(made)} audio items (0:30) from 1, which left the new version" in out
    assert f"is now at version {ds.head[:12]}" in out
    code = main([*argv, "--json", "--items", "a~000.wav", "--workers", "1"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["version"] == ds.head
    assert [m["path"] for m in data["made"]] == ["a~000.wav"]
    # a 1:1 step keeps where a chunk came from
    assert data["made"][0]["info"]["start_s"] == 0.0 and data["made"][0]["info"]["end_s"] > 5


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sample-rate", "0"], "sample.rate"),
        (["--segment", "30-5"], "segment"),
        (["--segment", "five"], "segment"),
        (["--denoise", "2"], "denoise"),
        (["--bit-depth", "8"], "bit.depth"),
        (["--loudness", "abc"], "loudness"),
        (["--workers", "0"], "workers"),
    ],
)
def test_cli_refuses_bad_options_before_opening_the_dataset(tmp_path, capsys, args, needle):
    from engine.cli import main

    code = main(["data", "prep", "audio", str(tmp_path / "nowhere"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert __import__("re").search(needle, err[0]), err[0]
    assert not (tmp_path / "nowhere").exists()
