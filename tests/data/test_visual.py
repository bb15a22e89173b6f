"""Images and video preprocessing (`engine.data.visual`): pictures, frames, scene cuts,
motion and soundtracks measured on media built here (Pillow pictures, MP4s made with PyAV)."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest

from engine import names
from engine.data.store import Dataset, DatasetError, Item, item_id
from engine.data.visual import (
    ImagePrep,
    VideoPrep,
    image_features,
    parse_size,
    prep_images,
    prep_video,
)

av = pytest.importorskip("av")
Image = pytest.importorskip("PIL.Image")

FPS = 10
CUT_S = 2.0
SINE_HZ = 440.0
AUDIO_RATE = 44100
W, H = 160, 120


# ---- media built in the test ---------------------------------------------------------------------
def png(arr: np.ndarray, mode: str | None = None, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG", **save)
    return buf.getvalue()


def solid(w: int, h: int, rgb) -> np.ndarray:
    return np.full((h, w, 3), rgb, np.uint8)


def jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def jpeg_with_orientation() -> bytes:
    """40×20 stored, left half red and right half blue, EXIF orientation 6 (shown turned a
    quarter clockwise: 20×40, red on top)."""
    a = solid(40, 20, (255, 0, 0))
    a[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def mp4(seconds: float = 4.0, audio: bool = True) -> bytes:
    """A clip at 10 fps, 160×120: a white square moves over grey for 2 s, then a hard cut to
    blue with the square standing still; with ``audio`` a 440 Hz sine soundtrack (AAC)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        vs = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        if vs.codec_context.name == "libx264":
            vs.options = {"preset": "ultrafast", "crf": "18"}
        if audio:
            aus = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for n in range(int(seconds * FPS)):
            t = n / FPS
            if t < CUT_S:
                img = solid(W, H, (100, 100, 100))
                x = 4 + 6 * n
            else:
                img = solid(W, H, (0, 0, 200))
                x = 4 + 6 * int(CUT_S * FPS)
            img[40:60, x : x + 20] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = n
            frame.time_base = Fraction(1, FPS)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        if audio:
            total = int(seconds * AUDIO_RATE)
            t = np.arange(total) / AUDIO_RATE
            sig = (0.5 * np.sin(2 * np.pi * SINE_HZ * t)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = sig[start : start + 1024]
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                frame.sample_rate = AUDIO_RATE
                frame.pts = start
                frame.time_base = Fraction(1, AUDIO_RATE)
                out.mux(aus.encode(frame))
            out.mux(aus.encode(None))
    return buf.getvalue()


@pytest.fixture(scope="module")
def clip() -> bytes:
    return mp4()


@pytest.fixture(scope="module")
def silent_clip() -> bytes:
    return mp4(audio=False)


def dataset(tmp_path, files: dict[str, tuple[bytes, str]], group: str = "") -> Dataset:
    ds = Dataset.create(tmp_path / "ds")
    with ds.change({"name": "import"}, "import") as ch:
        for path, (data, kind) in files.items():
            h = ch.put_bytes(data)
            ch.put(Item(item_id(path), path, h, kind, len(data), group=group, split="train"))
    return ds


def by_path(ds: Dataset) -> dict[str, Item]:
    return {i.path: i for i in ds.items()}


def npz(ds: Dataset, item: Item) -> dict[str, np.ndarray]:
    with np.load(ds.object_path(item.extras["features"])) as z:
        return {k: z[k] for k in z.files}


def picture(ds: Dataset, item: Item):
    im = Image.open(ds.file(item))
    im.load()
    return im


# ---- options ------------------------------------------------------------------------------------
def test_sizes_parse_and_bad_options_name_the_option():
    assert parse_size("512x384") == (512, 384)
    assert parse_size("256") == (256, 256)
    for bad in ("0x512", "512x", "abc", "99999x10", "-5x5"):
        with pytest.raises(DatasetError, match="--size"):
            parse_size(bad)
    with pytest.raises(DatasetError, match="--format"):
        ImagePrep(format="gif").check()
    with pytest.raises(DatasetError, match="--fit"):
        ImagePrep(fit="stretch").check()
    assert ImagePrep(format="JPEG").check().format == "jpg"
    for fps in (0, -1, float("nan"), float("inf"), 61, "x"):
        with pytest.raises(DatasetError, match="--fps"):
            VideoPrep(fps=fps).check()
    assert VideoPrep(fps=0, scenes=True).check().fps is None  # --scenes: fps unused


def test_the_command_line_offers_what_the_step_takes():
    from engine.data import visual

    assert tuple(visual._CODECS) == names.IMAGE_OUTPUT_FORMATS


# ---- images ---------------------------------------------------------------------------------
def test_resize_normalise_and_measure_images(tmp_path):
    rng = np.random.default_rng(0)
    rgba = np.zeros((50, 50, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent on the left half
    rgba[:, 25:, 3] = 255
    files = {
        "img/dark.png": (png(solid(800, 400, (30, 30, 30))), "image"),
        "img/bright.png": (png(solid(300, 600, (220, 220, 220))), "image"),
        "img/noise.png": (png(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)), "image"),
        "img/flat.png": (png(solid(200, 200, (128, 128, 128))), "image"),
        "img/turned.jpg": (jpeg_with_orientation(), "image"),
        "img/alpha.png": (png(rgba, "RGBA"), "image"),
        "img/grey16.png": (png((np.ones((30, 30)) * 40000).astype(np.uint16)), "image"),
        "img/broken.jpg": (b"\xff\xd8\xff\xe0 not really a jpeg" * 10, "image"),
        "img/photo.jpg": (
            jpeg(np.tile(np.arange(2400) % 256, (1600, 1)).astype(np.uint8)),
            "image",
        ),
    }
    ds = dataset(tmp_path, files)
    before = by_path(ds)
    events = []
    r = prep_images(
        ds, ImagePrep(size=(128, 128)), progress=events.append, command=["prep", "image"]
    )
    assert r.skipped == [("img/broken.jpg", r.skipped[0][1])]
    assert "Pillow" in r.skipped[0][1]
    items = by_path(ds)
    assert r.version == ds.head and len(r.made) == 8
    # fit inside keeps the aspect: 800×400 → 128×64, 300×600 → 64×128
    assert picture(ds, items["img/dark.png"]).size == (128, 64)
    assert picture(ds, items["img/bright.png"]).size == (64, 128)
    assert picture(ds, items["img/photo.jpg"]).size == (128, 85)  # decoded at 1/8 scale first
    assert items["img/photo.jpg"].info["source"]["width"] == 2400
    for path in files:
        if path != "img/broken.jpg":
            it = items[path]
            assert it.id == before[path].id and it.hash != before[path].hash
            assert picture(ds, it).mode == "RGB" and it.step == "image"
            assert (it.info["width"], it.info["height"]) == picture(ds, it).size
            hist = npz(ds, it)["hist_hsv"]
            assert hist.shape == (3, 16) and np.allclose(hist.sum(axis=1), 1.0, atol=1e-5)
    # orientation applied: 40×20 stored → 20×40 shown, red on top, blue below
    turned = np.asarray(Image.open(ds.file(by_path(ds)["img/turned.jpg"])).convert("RGB"), np.int32)
    assert turned.shape[:2] == (128, 64)
    assert turned[10, 32, 0] > 200 and turned[10, 32, 2] < 60
    assert turned[118, 32, 2] > 200 and turned[118, 32, 0] < 60
    assert items["img/turned.jpg"].info["source"]["orientation"] == 6
    # transparency lies on white; a 16-bit grey is scaled, not clipped to white
    alpha = np.asarray(picture(ds, items["img/alpha.png"]))
    assert tuple(alpha[64, 5]) == (255, 255, 255) and tuple(alpha[64, 120]) == (255, 0, 0)
    grey = np.asarray(picture(ds, items["img/grey16.png"]))
    assert abs(int(grey[5, 5, 0]) - 40000 // 257) <= 1
    # measures: ordering of brightness, texture of noise over flat, saturation
    info = {p: items[p].info for p in items}
    assert info["img/dark.png"]["brightness"] < 0.2 < 0.8 < info["img/bright.png"]["brightness"]
    assert info["img/noise.png"]["texture"] > 100 * max(info["img/flat.png"]["texture"], 1e-6)
    assert info["img/noise.png"]["edge_density"] > info["img/flat.png"]["edge_density"] == 0
    assert info["img/flat.png"]["contrast"] < 0.01 < info["img/noise.png"]["contrast"]
    assert info["img/flat.png"]["saturation"] < 0.01
    assert info["img/flat.png"]["dominant_colors"] == ["#808080"]
    # progress counted every image; the step is recorded with its parameters
    assert events[-1].done == events[-1].total == 9 and events[-1].stage == "files"
    step = ds.pipeline()[-1]
    assert step["name"] == "image" and step["size"] == [128, 128] and step["fit"] == "inside"
    assert ds.version().command == ["prep", "image"]


def test_cover_crop_format_and_keep_originals(tmp_path):
    a = solid(300, 100, (0, 200, 0))
    a[:, :100] = (255, 0, 0)  # red | green | blue thirds; cover to a square keeps the middle
    a[:, 200:] = (0, 0, 255)
    ds = dataset(tmp_path, {"covers/a.png": (png(a), "image")}, group="album")
    orig = by_path(ds)["covers/a.png"]
    r = prep_images(ds, ImagePrep(size=(64, 64), fit="cover", format="webp", keep_originals=True))
    items = by_path(ds)
    assert set(items) == {"covers/a.png", "covers/a~64x64.webp"}
    new = items["covers/a~64x64.webp"]
    assert new.parent == orig.id and new.group == "album" and new.split == "train"
    assert items["covers/a.png"] == orig and r.made == [new]
    im = picture(ds, new)
    assert im.format == "WEBP" and im.size == (64, 64)
    px = np.asarray(im.convert("RGB"), np.int32)
    assert px[:, :, 1].mean() > 150 and px[:, :, 0].mean() < 60  # only the green middle
    # without --keep-originals a new format renames the item and keeps its ID
    r2 = prep_images(ds, ImagePrep(format="jpg", features=False), ["covers/a.png"])
    items = by_path(ds)
    assert "covers/a.jpg" in items and "covers/a.png" not in items
    assert items["covers/a.jpg"].id == orig.id and "features" not in items["covers/a.jpg"].extras
    assert picture(ds, items["covers/a.jpg"]).format == "JPEG" and r2.removed == []


def test_unchanged_picture_keeps_its_bytes_and_rerun_changes_nothing(tmp_path):
    data = png(solid(64, 32, (10, 20, 30)))
    ds = dataset(tmp_path, {"a.png": (data, "image")})
    h = by_path(ds)["a.png"].hash
    r = prep_images(ds, ImagePrep())
    assert by_path(ds)["a.png"].hash == h and r.version is not None  # info and features added
    assert prep_images(ds, ImagePrep()).version is None


def test_image_features_histogram_of_a_known_colour():
    f = image_features(solid(16, 16, (255, 0, 0)), colors=2)
    h = f["hist_hsv"]
    assert h[0, 0] == pytest.approx(1.0) and h[1, -1] == pytest.approx(1.0)
    assert h[2, -1] == pytest.approx(1.0) and float(f["saturation"]) == pytest.approx(1.0)
    assert f["dominant_rgb"].tolist() == [[255, 0, 0]] and f["dominant_share"].tolist() == [1.0]


def test_no_images_is_refused(tmp_path):
    ds = dataset(tmp_path, {"a.wav": (b"RIFF", "audio")})
    with pytest.raises(DatasetError, match="has no images"):
        prep_images(ds, ImagePrep())
    with pytest.raises(DatasetError, match="none of the items you chose .* is a video"):
        prep_video(ds, VideoPrep(), ["a.wav"])


# ---- video ----------------------------------------------------------------------------------
def test_frames_scenes_motion_and_soundtrack(tmp_path, clip, silent_clip):
    files = {
        "clips/v.mp4": (clip, "video"),
        "clips/mute.mp4": (silent_clip, "video"),
        "clips/bad.mp4": (b"\x00\x00\x00\x18ftypmp42" + b"\x00garbage" * 200, "video"),
    }
    ds = dataset(tmp_path, files, group="")
    before = by_path(ds)
    vid = before["clips/v.mp4"]
    events = []
    r = prep_video(ds, VideoPrep(fps=2, frame_size=(80, 80)), progress=events.append)
    assert [p for p, _ in r.skipped] == ["clips/bad.mp4"]
    assert "video" in r.skipped[0][1]
    items = by_path(ds)
    frames = sorted(p for p in items if p.startswith("clips/v~f"))
    assert frames == [f"clips/v~f{n:04d}.jpg" for n in range(8)]  # 4 s at 2 frames/s
    for n, p in enumerate(frames):
        f = items[p]
        assert f.kind == "image" and f.parent == vid.id and f.group == vid.id
        assert f.split == "train" and f.step == "video" and f.id == item_id(p)
        assert f.info["time_s"] == pytest.approx(n / 2, abs=0.051)
        assert picture(ds, f).size == (80, 60)
        assert np.allclose(npz(ds, f)["hist_hsv"].sum(axis=1), 1.0, atol=1e-5)
    # colours of the frames: grey before the cut, blue after
    early = np.asarray(picture(ds, items["clips/v~f0001.jpg"]), np.int32)
    late = np.asarray(picture(ds, items["clips/v~f0006.jpg"]), np.int32)
    assert abs(early[5, 5] - 100).max() < 20 and late[5, 5, 2] > 150 > late[5, 5, 0] + 100
    # the video stays, with its measures: one cut within a frame of 2 s
    v = items["clips/v.mp4"]
    assert v.id == vid.id and v.hash == vid.hash and v.info["has_audio"]
    assert len(v.info["scene_cuts_s"]) == 1
    assert v.info["scene_cuts_s"][0] == pytest.approx(CUT_S, abs=1 / FPS + 1e-6)
    assert len(v.info["scenes"]) == 2 and v.duration_s == pytest.approx(4.0, abs=0.11)
    feats = npz(ds, v)
    motion, mt = feats["motion"], feats["motion_t_s"]
    assert len(motion) == 39 and motion.dtype == np.float32
    moving = motion[(mt > 0.05) & (mt < 1.95)]
    still = motion[(mt > 2.05)]
    assert moving.min() > 5 * max(still.max(), 1e-4)
    sm = feats["sample_motion"]
    assert sm[:4].min() > 5 * max(sm[5:].max(), 1e-4)
    cut = np.abs(mt - CUT_S) < 0.05  # the change across the cut is not counted as motion
    assert motion[cut].min() > 10 * moving.max()
    assert v.info["motion_mean"] == pytest.approx(float(motion[~cut].mean()), rel=1e-4)
    assert [items[p].info["scene"] for p in frames] == [0, 0, 0, 0, 1, 1, 1, 1]
    # the soundtrack: 4 s of a 440 Hz sine
    st = items["clips/v~soundtrack.wav"]
    assert st.kind == "audio" and st.parent == vid.id and v.info["soundtrack"] == st.id
    import soundfile as sf

    y, sr = sf.read(ds.file(st), dtype="float32")
    assert sr == AUDIO_RATE and y.ndim == 1
    assert st.duration_s == pytest.approx(4.0, abs=0.1) == len(y) / sr
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert np.fft.rfftfreq(len(y), 1 / sr)[spec.argmax()] == pytest.approx(SINE_HZ, abs=1.0)
    # the clip without audio says so and has no soundtrack
    mute = items["clips/mute.mp4"]
    assert not mute.info["has_audio"] and "no audio" in mute.info["soundtrack_note"]
    assert "clips/mute~soundtrack.wav" not in items
    assert len([p for p in items if p.startswith("clips/mute~f")]) == 8
    assert items["clips/bad.mp4"] == before["clips/bad.mp4"]
    # recorded and reported
    step = ds.pipeline()[-1]
    assert step["name"] == "video" and step["fps"] == 2.0 and step["frame_size"] == [80, 80]
    assert events[-1].done == events[-1].total == 3 and events[-1].stage == "files"


def test_scene_middles_drop_video_and_rerun_replaces_old_frames(tmp_path, clip):
    ds = dataset(tmp_path, {"v.mp4": (clip, "video")}, group="take1")
    vid = by_path(ds)["v.mp4"]
    prep_video(ds, VideoPrep(fps=4, soundtrack=False, features=False))
    assert len([p for p in by_path(ds) if p.startswith("v~f")]) == 16
    r = prep_video(ds, VideoPrep(scenes=True, drop_video=True, frame_size=None))
    items = by_path(ds)
    frames = sorted(p for p in items if p.startswith("v~f"))
    assert frames == ["v~f0000.jpg", "v~f0001.jpg"]  # the middle of each scene; old ones gone
    assert "v.mp4" not in items and vid.id in r.removed and "v~soundtrack.wav" in items
    assert [items[p].info["time_s"] for p in frames] == pytest.approx([1.0, 3.0], abs=0.11)
    assert all(items[p].group == "take1" for p in items)
    assert picture(ds, items["v~f0000.jpg"]).size == (W, H)  # --frame-size none: as shot
    first = np.asarray(picture(ds, items["v~f0000.jpg"]), np.int32)
    second = np.asarray(picture(ds, items["v~f0001.jpg"]), np.int32)
    assert abs(first[5, 5] - 100).max() < 20 and second[5, 5, 2] > 150
    assert [s["name"] for s in ds.pipeline()] == ["create", "import", "video", "video"]


def test_an_interrupted_run_resumes_without_redoing_work(tmp_path, clip, silent_clip, monkeypatch):
    from engine.data import visual

    ds = dataset(tmp_path, {"a.mp4": (clip, "video"), "b.mp4": (silent_clip, "video")})
    calls = []
    real = visual._analyse_video

    def dying(src, options, out):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while the second video is read
        return real(src, options, out)

    monkeypatch.setattr(visual, "_analyse_video", dying)
    opts = VideoPrep(fps=1, features=False)
    with pytest.raises(KeyboardInterrupt):
        prep_video(ds, opts, workers=1)  # (the stand-ins cannot go to a spawned worker)
    assert (ds.path / "pending.jsonl").is_file()
    calls.clear()
    monkeypatch.setattr(visual, "_analyse_video", lambda *a: calls.append(a[0]) or real(*a))
    r = prep_video(ds, opts, workers=1)
    assert len(calls) == 1  # only the video the first run had not finished
    assert len(r.made) == 2 + 8 + 1  # both videos, their frames, one soundtrack
    items = by_path(ds)
    assert sorted(items) == sorted(
        ["a.mp4", "b.mp4", "a~soundtrack.wav"]
        + [f"{s}~f{n:04d}.jpg" for s in "ab" for n in range(4)]
    )
    assert r.version == ds.head and not (ds.path / "pending.jsonl").exists()


def test_many_images_in_the_spawn_pool_match_the_serial_result(tmp_path):
    rng = np.random.default_rng(1)
    files = {
        f"p/{n}.png": (png(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)), "image")
        for n in range(10)
    }
    a = dataset(tmp_path / "a", files)
    b = dataset(tmp_path / "b", files)
    prep_images(a, ImagePrep(size=(32, 32)), workers=2)
    prep_images(b, ImagePrep(size=(32, 32)), workers=1)
    assert [(i.path, i.hash, i.extras) for i in a.items()] == [
        (i.path, i.hash, i.extras) for i in b.items()
    ]


def test_a_phone_video_turned_on_its_side_comes_out_upright(tmp_path):
    """A 64×32 clip (red left, blue right) whose display matrix says: turn a quarter
    counterclockwise; shown as 32×64, red below blue."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        vs = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 64, 32, "yuv420p"
        vs.set_display_rotation(90)
        a = solid(64, 32, (255, 0, 0))
        a[:, 32:] = (0, 0, 255)
        for n in range(5):
            frame = av.VideoFrame.from_ndarray(a, format="rgb24")
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    ds = dataset(tmp_path, {"phone.mp4": (buf.getvalue(), "video")})
    prep_video(ds, VideoPrep(features=False))
    items = by_path(ds)
    v = items["phone.mp4"]
    assert (v.info["width"], v.info["height"], v.info["rotation"]) == (32, 64, 90)
    px = np.asarray(picture(ds, items["phone~f0000.jpg"]), np.int32)
    assert px.shape[:2] == (64, 32)
    assert px[5, 16, 2] > 200 > px[5, 16, 0] + 100  # blue on top
    assert px[58, 16, 0] > 200 > px[58, 16, 2] + 100  # red below


def test_a_colour_profile_is_converted_and_a_rename_never_overwrites(tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    files = {
        "a.png": (png(solid(8, 8, (200, 100, 50)), icc_profile=srgb), "image"),
        "b.png": (png(solid(8, 8, (0, 0, 0))), "image"),
        "b.jpg": (jpeg(solid(8, 8, (0, 0, 0))), "image"),
    }
    ds = dataset(tmp_path, files)
    r = prep_images(ds, ImagePrep(format="jpg"))
    items = by_path(ds)
    px = np.asarray(picture(ds, items["a.jpg"]), np.int32)
    assert abs(px[4, 4] - (200, 100, 50)).max() <= 3  # sRGB to sRGB: the colours stay
    assert r.skipped == [("b.png", "another item already sits at b.jpg; use --keep-originals")]
    before = {i.path: i for i in ds.items("HEAD~1")}
    assert items["b.png"] == before["b.png"] and items["b.jpg"].id == before["b.jpg"].id


def test_a_full_disk_stops_with_one_line_and_leaves_no_scratch(tmp_path, monkeypatch):
    import errno

    from engine.data import visual

    ds = dataset(tmp_path, {"a.png": (png(solid(8, 8, (1, 2, 3))), "image")})
    (ds.path / ".visual-left-by-a-killed-run").mkdir()
    head = ds.head

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(visual, "encode_image", full)
    with pytest.raises(DatasetError, match="full"):
        prep_images(ds, ImagePrep(size=(4, 4)), workers=1)
    assert ds.head == head and not list(ds.path.glob(".visual-*"))
    monkeypatch.undo()
    assert prep_images(ds, ImagePrep(size=(4, 4))).version == ds.head != head
    assert not list(ds.path.glob(".visual-*"))
