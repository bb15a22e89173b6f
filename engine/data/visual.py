"""Images and video of a dataset, made ready for training: two preprocessing steps.

`prep_images` (``data prep image``) turns each image into an 8-bit RGB picture with its EXIF
orientation applied (and wide-gamut ICC profiles converted to sRGB), optionally resized (fit
inside W×H, or cover W×H and crop the middle, keeping the aspect) and re-encoded as JPEG, PNG
or WebP. `prep_video` (``data prep video``) samples frames (N per second, or the middle
frame of every scene) as image items ``clip~f0012.jpg``, finds the scene cuts, measures the
motion energy over time and extracts the soundtrack as ``clip~soundtrack.wav``.

Measures (`image_features`, all from OpenCV on the final pixels), stored beside each image as
an ``.npz`` in ``extras["features"]`` with the scalars also in ``info``:

- ``hist_hsv`` [3, BINS]: hue, saturation and value histograms, each summing to 1
  (hue in OpenCV's 0..180 range);
- ``brightness``: mean luma, 0..1; ``contrast``: RMS contrast (standard deviation of the
  luma, 0..0.5); ``saturation``: mean HSV saturation, 0..1;
- ``texture``: variance of the Laplacian of the luma (luma in 0..1; 0 for a flat picture,
  high for fine detail or noise); ``edge_density``: the share of Canny edge pixels, 0..1;
- ``dominant_rgb`` [K, 3] and ``dominant_share`` [K]: the main colours by k-means (OpenCV,
  seeded, so the same picture gives the same colours), largest share first.

Video measures (the video item's ``.npz``): ``motion`` [F-1] (mean absolute difference of
consecutive frames' luma at `ANALYSIS_WIDTH` pixels wide, 0..1) at ``motion_t_s``;
``scene_start_s`` / ``scene_end_s`` (cuts by PySceneDetect's ContentDetector);
``sample_t_s`` and, per sampled frame, ``sample_motion`` (mean motion over the frame's
stretch) and its brightness, contrast, saturation and texture.

Both steps run as one change of the dataset each, parallel over the cores with a spawn
pool (workers read the stored files and write their outputs to a temporary folder; only
this process stores them), and resume after a kill: a rerun with the same parameters and
items skips what the interrupted run had stored.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path, PurePosixPath

import numpy as np

from engine import names
from engine.data.store import Dataset, DatasetError, Item, PrepReport, disk_error, item_id
from engine.progress import Progress, ProgressFn

# ---- constants with their units ----------------------------------------------------------------
_CODECS = {"jpg": ("JPEG", ".jpg"), "png": ("PNG", ".png"), "webp": ("WEBP", ".webp")}
"""Output formats: name → (Pillow format, extension)."""
FORMAT_ALIASES = {"jpeg": "jpg"}
MAX_SIDE = 16384
"""Largest width or height a resize may ask for, in pixels."""
HIST_BINS = 16
"""Bins per HSV channel of the colour histograms."""
MAX_COLORS = 16
DEFAULT_COLORS = 5
"""Dominant colours found per image (0: none)."""
DEFAULT_QUALITY = 95
"""JPEG / WebP quality of the pictures written."""
"""Most frames per second `prep_video` samples."""
DEFAULT_FRAME_SIZE = (512, 512)
ANALYSIS_WIDTH = 256
"""Frames are scaled to this width (pixels) for scene cuts and motion."""
CANNY_LOW, CANNY_HIGH = 100, 200
KMEANS_PIXELS = 64
"""Dominant colours are found on the picture scaled to fit 64×64 pixels."""
POOL_MIN_IMAGES, POOL_MIN_BYTES = 8, 8 << 20
"""Fewer images, or fewer bytes of them, are done in this process (starting workers would
cost more than they save)."""
SOUNDTRACK_SUBTYPE = "PCM_16"
SMALL_FILE = 64 << 20
"""Outputs up to this many bytes are stored from memory."""


# ---- the report and the options ----------------------------------------------------------------
def parse_size(text: str, name: str = "--size") -> tuple[int, int]:
    """``"512x384"`` (or ``"512"`` for a square) as (width, height) in pixels."""
    parts = str(text).strip().lower().replace("×", "x").split("x")
    try:
        if len(parts) == 1:
            w = h = int(parts[0])
        elif len(parts) == 2:
            w, h = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise DatasetError(
            f"{name} takes WIDTHxHEIGHT in pixels, e.g. {name} 512x512 (not {text!r})"
        ) from None
    _check_size(name, (w, h))
    return w, h


def _check_size(name: str, size) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise DatasetError(f"{name} takes WIDTHxHEIGHT in pixels, e.g. 512x512") from None
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise DatasetError(
            f"{name} {w}x{h} is out of range; width and height must be 1..{MAX_SIDE} pixels"
        )
    return w, h


def _check_common(fit: str, colors, quality) -> None:
    if fit not in names.IMAGE_FITS:
        raise DatasetError(f"--fit must be one of {', '.join(names.IMAGE_FITS)}, not {fit!r}")
    if not isinstance(colors, int) or not 0 <= colors <= MAX_COLORS:
        raise DatasetError(f"colors must be 0..{MAX_COLORS} (0: none), not {colors!r}")
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise DatasetError(f"quality must be 1..100, not {quality!r}")


@dataclass(frozen=True)
class ImagePrep:
    """How `prep_images` treats each image."""

    size: tuple[int, int] | None = None
    """(width, height) in pixels to resize to; None keeps each image's size."""
    fit: str = "inside"
    """``inside``: the whole picture fits in ``size``; ``cover``: it fills ``size`` and the
    middle is kept (the overflow cropped)."""
    format: str | None = None
    """``jpg``, ``png`` or ``webp``; None keeps JPEG, PNG and WebP as they are (others → PNG)."""
    features: bool = True
    """Store the measures (.npz) beside each image."""
    keep_originals: bool = False
    """Keep each original and add the prepared picture beside it (``a~512x512.jpg``)."""
    colors: int = DEFAULT_COLORS
    """Dominant colours to find (0: none)."""
    quality: int = DEFAULT_QUALITY
    """JPEG / WebP quality, 1..100."""

    def check(self) -> ImagePrep:
        """These options with names normalised, or a `DatasetError` naming the bad one."""
        size = None if self.size is None else _check_size("--size", self.size)
        fmt = self.format
        if fmt is not None:
            fmt = FORMAT_ALIASES.get(str(fmt).lower().lstrip("."), str(fmt).lower().lstrip("."))
            if fmt not in _CODECS:
                raise DatasetError(
                    f"--format must be one of {', '.join(names.IMAGE_OUTPUT_FORMATS)}, "
                    f"not {self.format!r}"
                )
        _check_common(self.fit, self.colors, self.quality)
        return replace(self, size=size, format=fmt)

    def step(self) -> dict:
        d = asdict(self)
        d["size"] = None if self.size is None else list(self.size)
        return {"name": "image", **d}


@dataclass(frozen=True)
class VideoPrep:
    """How `prep_video` treats each video."""

    fps: float | None = 1.0
    """Frames sampled per second (0 < fps ≤ `engine.names.MAX_VIDEO_FPS`); ignored when
    ``scenes``."""
    scenes: bool = False
    """Sample the middle frame of every scene instead of ``fps`` frames per second."""
    frame_size: tuple[int, int] | None = DEFAULT_FRAME_SIZE
    """(width, height) the frames are fitted to; None keeps the video's size."""
    fit: str = "inside"
    soundtrack: bool = True
    """Extract the soundtrack as a WAV audio item."""
    features: bool = True
    """Store the measures (.npz) beside the video and each frame."""
    drop_video: bool = False
    """Take the video item out of the new version (its frames and soundtrack stay)."""
    colors: int = DEFAULT_COLORS
    quality: int = DEFAULT_QUALITY

    def check(self) -> VideoPrep:
        """These options checked, or a `DatasetError` naming the bad one."""
        fps = self.fps
        if self.scenes:
            fps = None
        else:
            try:
                fps = float(fps)
            except (TypeError, ValueError):
                raise DatasetError(
                    f"--fps takes a number of frames per second, not {fps!r}"
                ) from None
            if not (math.isfinite(fps) and 0 < fps <= names.MAX_VIDEO_FPS):
                raise DatasetError(
                    f"--fps must be above 0 and at most {names.MAX_VIDEO_FPS:g} frames per second, "
                    f"not {self.fps!r}; e.g. --fps 1"
                )
        size = None if self.frame_size is None else _check_size("--frame-size", self.frame_size)
        _check_common(self.fit, self.colors, self.quality)
        return replace(self, fps=fps, frame_size=size)

    def step(self) -> dict:
        d = asdict(self)
        d["frame_size"] = None if self.frame_size is None else list(self.frame_size)
        return {"name": "video", **d}


# ---- pictures ----------------------------------------------------------------------------------
def load_image(path: str | Path, draft_to: int | None = None):
    """A picture file as an 8-bit RGB Pillow image (EXIF orientation applied, transparency
    laid on white, 16-bit and float pictures scaled, an ICC profile converted to sRGB,
    the first frame of an animation) and what was found: ``{"format", "mode", "width",
    "height", "orientation", "frames", "icc"}``. Raises OSError / ValueError for what
    Pillow cannot read."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = Image.open(path)
        im.load()
    found = {
        "format": (im.format or "").lower(),
        "mode": im.mode,
        "width": im.width,
        "height": im.height,
        "frames": int(getattr(im, "n_frames", 1) or 1),
    }
    orientation = im.getexif().get(0x0112)
    found["orientation"] = int(orientation) if isinstance(orientation, int) else 1
    if found["orientation"] != 1:
        im = ImageOps.exif_transpose(im)
    icc = im.info.get("icc_profile")
    found["icc"] = False
    if icc and im.mode in ("RGB", "CMYK"):
        with contextlib.suppress(Exception):  # a broken profile: keep the pixels as they are
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            im = ImageCms.profileToProfile(
                im, src, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            found["icc"] = True
    return _to_rgb8(im), found


def _to_rgb8(im):
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16"):
        a = np.asarray(im).astype(np.uint16) >> 8
        return Image.fromarray(a.astype(np.uint8), "L").convert("RGB")
    if mode in ("I", "F"):
        a = np.asarray(im).astype(np.float64)
        if mode == "F" and a.size and np.nanmax(a) <= 1.0:
            a = a * 255.0
        elif a.size and np.nanmax(a) > 255:
            a = a / 257.0
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
        return Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8), "L").convert("RGB")
    return im.convert("RGB")


def resize(im, size: tuple[int, int] | None, fit: str = "inside", enlarge: bool = True):
    """``im`` fitted inside ``size`` (keeping its aspect) or covering it (the middle kept);
    with ``enlarge`` False a picture that already fits inside ``size`` stays as it is."""
    from PIL import Image, ImageOps

    if size is None or tuple(im.size) == tuple(size):
        return im
    if not enlarge and im.width <= size[0] and im.height <= size[1]:
        return im
    if fit == "cover":
        return ImageOps.fit(im, size, Image.Resampling.LANCZOS)
    return ImageOps.contain(im, size, Image.Resampling.LANCZOS)


def encode_image(im, fmt: str, quality: int = DEFAULT_QUALITY) -> bytes:
    """``im`` written as ``jpg``, ``png`` or ``webp`` (no metadata kept)."""
    pil_format = _CODECS[fmt][0]
    buf = io.BytesIO()
    if pil_format == "JPEG":
        im.save(buf, "JPEG", quality=quality)
    elif pil_format == "WEBP":
        im.save(buf, "WEBP", quality=quality, method=4)
    else:
        im.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def image_features(
    rgb: np.ndarray, bins: int = HIST_BINS, colors: int = DEFAULT_COLORS
) -> dict[str, np.ndarray]:
    """The measures of an RGB picture ``rgb`` [H, W, 3] uint8 (see the module docstring)."""
    import cv2

    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hist = np.stack(
        [
            cv2.calcHist([hsv], [c], None, [bins], [0, top]).ravel()
            for c, top in ((0, 180), (1, 256), (2, 256))
        ]
    ).astype(np.float64)
    hist /= np.maximum(hist.sum(axis=1, keepdims=True), 1.0)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    luma = gray.astype(np.float64) / 255.0
    texture = float(cv2.Laplacian(luma, cv2.CV_64F).var())
    edges = cv2.Canny(gray, CANNY_LOW, CANNY_HIGH)
    out = {
        "hist_hsv": hist.astype(np.float32),
        "brightness": np.float32(luma.mean()),
        "contrast": np.float32(luma.std()),
        "saturation": np.float32(hsv[..., 1].mean() / 255.0),
        "texture": np.float32(texture),
        "edge_density": np.float32(np.count_nonzero(edges) / edges.size),
    }
    if colors:
        out["dominant_rgb"], out["dominant_share"] = dominant_colors(rgb, colors)
    return out


def dominant_colors(rgb: np.ndarray, k: int = DEFAULT_COLORS) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` main colours of ``rgb`` [H, W, 3] by k-means (OpenCV, seeded):
    ([k', 3] uint8, their shares [k'], largest first); k' ≤ k when there are fewer colours."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, KMEANS_PIXELS / max(h, w))
    small = cv2.resize(
        rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    data = small.reshape(-1, 3).astype(np.float32)
    k = min(k, len(np.unique(data, axis=0)))
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centers = cv2.kmeans(data, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    share = np.bincount(labels.ravel(), minlength=k) / len(labels)
    order = np.argsort(-share, kind="stable")
    return (
        np.clip(centers[order].round(), 0, 255).astype(np.uint8),
        share[order].astype(np.float32),
    )


def feature_info(features: dict[str, np.ndarray]) -> dict:
    """The scalar measures (and dominant colours as ``#rrggbb``) for an item's ``info``."""
    out = {
        k: _round(float(features[k]))
        for k in ("brightness", "contrast", "saturation", "texture", "edge_density")
    }
    if "dominant_rgb" in features:
        out["dominant_colors"] = [
            "#" + "".join(f"{int(v):02x}" for v in c) for c in features["dominant_rgb"]
        ]
    return out


def _round(x: float) -> float:
    """Five significant digits, for the measures shown in ``info``."""
    return float(f"{x:.5g}") if abs(x) > 1e-9 else 0.0


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


# ---- workers (run in spawned processes; they read files and write to a temporary folder) ------
_READ_ERRORS: tuple = (OSError, ValueError, EOFError, SyntaxError, MemoryError)


def _disk_trouble(e: BaseException) -> bool:
    """A full or read-only disk: the whole step stops (one line), not just this file."""
    return isinstance(e, OSError) and e.errno in (
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
    )


def _reason(e: BaseException, src: str) -> str:
    """A library's error in a few words, without the stored file's inner path."""
    text = getattr(e, "strerror", None) if getattr(e, "filename", None) == src else None
    text = str(text or e).replace(f" '{src}'", "").replace(f": {src}", "").replace(src, "")
    text = " ".join(text.split()).rstrip(":; ") or type(e).__name__
    return text[:300]


def _prep_image_file(src: str, options: ImagePrep, out_dir: str) -> dict:
    """One image: the prepared picture and its measures written under ``out_dir``."""
    from PIL import Image

    try:
        im, found = load_image(src, max(options.size) if options.size else None)
    except Image.DecompressionBombError as e:
        return {"error": f"the picture is too large to read safely ({_reason(e, src)})"}
    except _READ_ERRORS as e:
        if _disk_trouble(e):
            raise
        return {"error": f"not a picture Pillow can read ({_reason(e, src)})"}
    im = resize(im, options.size, options.fit)
    fmt = options.format or {"jpeg": "jpg", "png": "png", "webp": "webp"}.get(
        found["format"], "png"
    )
    same_pixels = (
        im.size == (found["width"], found["height"])
        and found["orientation"] == 1
        and found["mode"] == "RGB"
        and not found["icc"]
        and found["frames"] == 1
        and _CODECS[fmt][0].lower() == found["format"]
    )
    out = Path(out_dir) / "picture"
    if same_pixels:  # nothing to change: keep the file's own bytes (no second compression)
        shutil.copyfile(src, out)
    else:
        out.write_bytes(encode_image(im, fmt, options.quality))
    info = {
        "width": im.width,
        "height": im.height,
        "format": _CODECS[fmt][0].lower(),
        "mode": "RGB",
        "source": {k: found[k] for k in ("width", "height", "format", "mode", "orientation")},
    }
    result = {"picture": str(out), "ext": _CODECS[fmt][1], "info": info}
    if options.features:
        feats = image_features(np.asarray(im), colors=options.colors)
        info.update(feature_info(feats))
        (Path(out_dir) / "features.npz").write_bytes(npz_bytes(feats))
        result["features"] = str(Path(out_dir) / "features.npz")
    return result


def _video_frame_image(frame):
    """A decoded frame as an RGB Pillow image, turned upright by the stream's rotation."""
    from PIL import Image

    im = frame.to_image()
    with contextlib.suppress(Exception):
        turn = round((frame.rotation or 0) / 90) % 4  # counterclockwise quarter turns
        if turn:
            im = im.transpose(
                {
                    1: Image.Transpose.ROTATE_90,
                    2: Image.Transpose.ROTATE_180,
                    3: Image.Transpose.ROTATE_270,
                }[turn]
            )
    return im


def _analysis_size(w: int, h: int) -> tuple[int, int]:
    scale = min(1.0, ANALYSIS_WIDTH / max(w, 1))
    return max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)


def _write_frame(im, options: VideoPrep, out_dir: Path, n: int) -> dict:
    im = resize(im, options.frame_size, options.fit, enlarge=False)
    path = out_dir / f"f{n:06d}.jpg"
    path.write_bytes(encode_image(im, "jpg", options.quality))
    out = {"picture": str(path), "width": im.width, "height": im.height}
    if options.features:
        feats = image_features(np.asarray(im), colors=options.colors)
        out["scalars"] = feature_info(feats)
        out["arrays"] = {k: feats[k] for k in ("brightness", "contrast", "saturation", "texture")}
        fpath = out_dir / f"f{n:06d}.npz"
        fpath.write_bytes(npz_bytes(feats))
        out["features"] = str(fpath)
    return out


def _analyse_video(src: str, options: VideoPrep, out_dir: str) -> dict:
    """One video: sampled frames, soundtrack, scene cuts and motion (files under ``out_dir``)."""
    import av

    try:
        container = av.open(src)
    except (av.FFmpegError, *_READ_ERRORS) as e:
        if _disk_trouble(e):
            raise
        return {"error": f"not a video PyAV can read ({_reason(e, src)})"}
    with container:
        try:
            return _read_video(container, src, options, Path(out_dir))
        except (av.FFmpegError, *_READ_ERRORS) as e:
            if _disk_trouble(e):
                raise
            return {"error": f"the video cannot be decoded ({_reason(e, src)})"}


def _read_video(container, src: str, options: VideoPrep, out: Path) -> dict:
    import av
    import cv2
    from scenedetect import ContentDetector, FrameTimecode
    from scenedetect.common import Timecode

    videos = list(container.streams.video)
    if not videos:
        return {"error": "no video stream in the file"}
    vs = videos[0]
    vs.thread_type = "AUTO"
    audios = list(container.streams.audio) if options.soundtrack else []
    aus = audios[0] if audios else None
    rate = Fraction(vs.average_rate or vs.guessed_rate or 25)
    tb = Fraction(vs.time_base) if vs.time_base else 1 / rate
    detector = ContentDetector()

    t0 = None
    frames = 0
    cuts: list[float] = []
    motion: list[float] = []
    motion_t: list[float] = []
    prev = None
    samples: list[dict] = []
    next_k = 0
    tol = 0.5 / float(rate)
    size = (vs.codec_context.width, vs.codec_context.height)
    rotation = 0
    last_t = 0.0
    bad_packets = 0

    wav = None
    wav_path = out / "soundtrack.wav"
    resampler = None
    audio_frames = 0
    audio_rate = audio_channels = 0

    def on_audio(frame) -> None:
        nonlocal wav, resampler, audio_frames, audio_rate, audio_channels
        import soundfile as sf

        if resampler is None:
            audio_rate = frame.sample_rate
            audio_channels = len(frame.layout.channels)
            resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=audio_rate)
            wav = sf.SoundFile(
                wav_path, "w", audio_rate, audio_channels, SOUNDTRACK_SUBTYPE, format="WAV"
            )
        for f in resampler.resample(frame):
            a = f.to_ndarray().reshape(-1, audio_channels)
            wav.write(a)
            audio_frames += len(a)

    streams = [vs] + ([aus] if aus is not None else [])
    try:
        for packet in container.demux(*streams):
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                bad_packets += 1
                continue
            for frame in decoded:
                if packet.stream is not vs:
                    on_audio(frame)
                    continue
                t = frame.time if frame.time is not None else frames / float(rate)
                if t0 is None:
                    t0 = t
                    size = (frame.width, frame.height)
                    with contextlib.suppress(Exception):
                        rotation = int(frame.rotation or 0)
                t = max(0.0, t - t0)
                last_t = max(last_t, t)
                aw, ah = _analysis_size(frame.width, frame.height)
                small = frame.reformat(width=aw, height=ah, format="bgr24").to_ndarray()
                tc = FrameTimecode(Timecode(pts=round(t / tb), time_base=tb), fps=rate)
                cuts.extend(c.seconds for c in detector.process_frame(tc, small))
                gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
                if prev is not None:
                    d = cv2.absdiff(gray, prev)
                    motion.append(float(d.mean()) / 255.0)
                    motion_t.append(t)
                prev = gray
                frames += 1
                if not options.scenes and t >= next_k / options.fps - tol:
                    s = _write_frame(_video_frame_image(frame), options, out, len(samples))
                    samples.append({**s, "t": t})
                    while next_k / options.fps <= t + tol:
                        next_k += 1
        if resampler is not None:
            on_audio_flush = resampler.resample(None)
            for f in on_audio_flush:
                a = f.to_ndarray().reshape(-1, audio_channels)
                wav.write(a)
                audio_frames += len(a)
    finally:
        if wav is not None:
            wav.close()
    if frames == 0:
        return {"error": "no frame of the video could be decoded"}
    duration = last_t + 1.0 / float(rate)
    end_tc = FrameTimecode(Timecode(pts=round(last_t / tb), time_base=tb), fps=rate)
    cuts.extend(c.seconds for c in detector.post_process(end_tc))
    cuts = sorted({round(c, 4) for c in cuts if 0 < c < duration})
    bounds = [0.0, *cuts, duration]
    scenes = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]

    if options.scenes:
        mids = [(a + b) / 2 for a, b in scenes]
        for t, im in _grab_frames(src, mids, float(rate)):
            s = _write_frame(im, options, out, len(samples))
            samples.append({**s, "t": t})

    motion_a = np.asarray(motion, dtype=np.float32)
    motion_ta = np.asarray(motion_t, dtype=np.float64)
    # the change across a cut is not motion: it is left out of the means (kept in the array)
    at_cut = np.zeros(len(motion_a), bool)
    for c in cuts:
        at_cut |= np.abs(motion_ta - c) < tol

    def scene_at(t: float) -> int:
        return next((i for i, (a, b) in enumerate(scenes) if t < b - 1e-6), len(scenes) - 1)

    ends = [s["t"] for s in samples[1:]] + [duration]
    for s, end in zip(samples, ends, strict=True):
        s["scene"] = scene_at(s["t"])
        # a scene's middle frame stands for the whole scene
        a, b = scenes[s["scene"]] if options.scenes else (s["t"], end)
        sel = (motion_ta >= a - tol) & (motion_ta < b - tol) & ~at_cut
        s["motion"] = float(motion_a[sel].mean()) if sel.any() else 0.0
    moving = motion_a[~at_cut]

    width, height = size
    if round(rotation / 90) % 2:
        width, height = height, width
    info = {
        "width": width,
        "height": height,
        "fps": round(float(rate), 4),
        "frames": frames,
        "codec": vs.codec_context.name,
        "duration_s": round(duration, 4),
        "scenes": [[round(a, 4), round(b, 4)] for a, b in scenes],
        "scene_cuts_s": cuts,
        "motion_mean": _round(float(moving.mean()) if len(moving) else 0.0),
        "sampled_frames": len(samples),
        "has_audio": bool(container.streams.audio),
    }
    if rotation:
        info["rotation"] = rotation
    if bad_packets:
        info["bad_packets"] = bad_packets
        result_warning = f"{bad_packets} damaged packets could not be decoded and were skipped"
    else:
        result_warning = None
    result: dict = {"info": info, "samples": samples}
    if result_warning:
        result["warning"] = result_warning
    if aus is not None:
        info["audio_codec"] = aus.codec_context.name
        if audio_frames:
            result["soundtrack"] = {
                "path": str(wav_path),
                "sample_rate": audio_rate,
                "channels": audio_channels,
                "duration_s": round(audio_frames / audio_rate, 4),
                "codec": aus.codec_context.name,
            }
        else:
            info["soundtrack_note"] = "the audio stream holds no sound that could be decoded"
    elif not container.streams.audio:
        info["soundtrack_note"] = "the video has no audio"
    if options.features:
        arrays = {
            "motion": motion_a,
            "motion_t_s": motion_ta.astype(np.float32),
            "scene_start_s": np.asarray([a for a, _ in scenes], np.float32),
            "scene_end_s": np.asarray([b for _, b in scenes], np.float32),
            "sample_t_s": np.asarray([s["t"] for s in samples], np.float32),
            "sample_motion": np.asarray([s["motion"] for s in samples], np.float32),
        }
        for k in ("brightness", "contrast", "saturation", "texture"):
            arrays[f"sample_{k}"] = np.asarray([float(s["arrays"][k]) for s in samples], np.float32)
        (out / "video.npz").write_bytes(npz_bytes(arrays))
        result["features"] = str(out / "video.npz")
    for s in samples:
        s.pop("arrays", None)
    return result


def _grab_frames(src: str, times: list[float], rate: float) -> Iterator[tuple[float, object]]:
    """The first frame at or after each of ``times`` (seconds from the first frame, rising),
    found by seeking: (its time, RGB image)."""
    import av

    tol = 0.5 / rate
    with av.open(src) as container:
        vs = container.streams.video[0]
        tb = Fraction(vs.time_base)
        t0 = None
        for frame in container.decode(vs):  # the first frame's time is the origin
            t0 = frame.time or 0.0
            break
        if t0 is None:
            return
        for target in times:
            container.seek(int((t0 + max(0.0, target - 1.0)) / tb), stream=vs, backward=True)
            for frame in container.decode(vs):
                t = (frame.time or 0.0) - t0
                if t >= target - tol:
                    yield t, _video_frame_image(frame)
                    break


# ---- running work over the cores -----------------------------------------------------------------
def _workers(workers: int | None, jobs: int, pays: bool) -> int:
    """Processes to use: ``workers`` if given (1: all here), else one per core when a pool
    pays for its start (``pays``), else 1."""
    if workers is None:
        workers = (os.cpu_count() or 1) if pays else 1
    return max(1, min(jobs, workers))


def _results(fn, jobs: list[tuple], workers: int) -> Iterator[tuple[int, dict]]:
    """(index, result) of ``fn(*job)`` for each job, in a spawn pool of ``workers``
    processes (1: here), as they finish."""
    if workers < 2:
        for n, job in enumerate(jobs):
            yield n, fn(*job)
        return
    from engine.data.workers import spawn_pool

    with spawn_pool(workers) as pool:
        futures = {pool.submit(fn, *job): n for n, job in enumerate(jobs)}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


@contextlib.contextmanager
def _disk_errors(ds: Dataset) -> Iterator[None]:
    """A full or read-only disk as one line (the change stays journalled: run it again)."""
    try:
        yield
    except OSError as e:
        if _disk_trouble(e):
            raise disk_error(e, ds.path) from None
        raise


SCRATCH_PREFIX = ".visual-"


def _scratch(stack: contextlib.ExitStack, ds: Dataset) -> Path:
    """A folder for the workers' outputs inside the dataset (the same disk, so a soundtrack
    hours long never fills /tmp), removed at the end; one an earlier run left when it was
    killed is removed first (the dataset's lock is held, so none is in use)."""
    for old in ds.path.glob(f"{SCRATCH_PREFIX}*"):
        shutil.rmtree(old, ignore_errors=True)
    try:
        return Path(
            stack.enter_context(tempfile.TemporaryDirectory(dir=ds.path, prefix=SCRATCH_PREFIX))
        )
    except OSError as e:
        raise disk_error(e, ds.path) from None


def _resume_key(step: dict, items: Iterable[Item]) -> str:
    body = json.dumps(
        {"step": step, "items": sorted((i.id, i.hash) for i in items)}, sort_keys=True
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _stem(path: str) -> str:
    p = PurePosixPath(path)
    return str(p.with_suffix("")) if p.suffix else path


def _select(ds: Dataset, selectors, kind: str) -> list[Item]:
    selectors = list(selectors) or ["all"]
    chosen = ds.find(selectors)
    items = [i for i in chosen if i.kind == kind]
    if items:
        return items
    plural = "images" if kind == "image" else "videos"
    if selectors != ["all"]:
        kinds = ", ".join(sorted({i.kind for i in chosen}))
        raise DatasetError(
            f"none of the items you chose in {ds.name} is {'an' if kind == 'image' else 'a'} "
            f"{kind} (they are {kinds}); pick {plural} with --items"
        )
    raise DatasetError(
        f"{ds.name} has no {plural}; import some with "
        f"`disco-musica data import FILES --into {ds.name}`"
    )


def _say(progress: ProgressFn | None, stage: str, done: int, total: int, msg: str = "") -> None:
    if progress is not None:
        progress(Progress(stage, done, total, msg))


# ---- the steps -----------------------------------------------------------------------------------
def prep_images(
    ds: Dataset,
    options: ImagePrep,
    selectors: Iterable[str] = ("all",),
    *,
    progress: ProgressFn | None = None,
    command: list | None = None,
    workers: int | None = None,
) -> PrepReport:
    """Resize, normalise and measure the chosen images of ``ds`` as one new version (see the
    module docstring). Unreadable images are skipped with their reason (``report.skipped``).
    ``workers``: processes (None: one per core; 1: all here). Progress: stage ``"files"``,
    images done / all, the last one's path."""
    options = options.check()
    items = _select(ds, selectors, "image")
    step = options.step()
    report = PrepReport()
    what = f"{options.size[0]}x{options.size[1]} ({options.fit})" if options.size else "as is"
    message = f"prep image: {len(items)} images, size {what}"
    with contextlib.ExitStack() as stack:
        stack.enter_context(_disk_errors(ds))
        ch = stack.enter_context(
            ds.change(step, message, command=command, resume=_resume_key(step, items))
        )
        done = {i.id for i in ch.done} | {i.parent for i in ch.done if i.step == "image"}
        todo = [i for i in items if i.id not in done and i.id in ch.items]
        report.made.extend({i.id: i for i in ch.done if i.step == "image"}.values())
        tmp = _scratch(stack, ds)
        jobs = []
        for n, item in enumerate(todo):
            (tmp / str(n)).mkdir()
            jobs.append((str(ds.file(item)), options, str(tmp / str(n))))
        count = len(items) - len(todo)
        _say(progress, "files", count, len(items))
        pays = len(todo) >= POOL_MIN_IMAGES and sum(i.size for i in todo) >= POOL_MIN_BYTES
        for n, res in _results(_prep_image_file, jobs, _workers(workers, len(jobs), pays)):
            item = todo[n]
            count += 1
            if "error" in res:
                report.skipped.append((item.path, res["error"]))
            else:
                _put_image(ch, item, res, options, report)
            shutil.rmtree(tmp / str(n), ignore_errors=True)
            _say(progress, "files", count, len(items), item.path)
    report.version = ch.version
    return report


def _put_image(ch, item: Item, res: dict, options: ImagePrep, report: PrepReport) -> None:
    ext = res["ext"]
    h = _store(ch, res["picture"])
    extras = dict(item.extras)
    if "features" in res:
        extras["features"] = _store(ch, res["features"])
    else:
        extras.pop("features", None)
    info = {**item.info, **res["info"]}
    size = Path(res["picture"]).stat().st_size
    if options.keep_originals:
        tag = f"{options.size[0]}x{options.size[1]}" if options.size else "rgb"
        path = f"{_stem(item.path)}~{tag}{ext}"
        new = replace(
            item,
            id=item_id(path),
            path=path,
            hash=h,
            size=size,
            parent=item.id,
            group=item.group or item.id,
            step="image",
            info=info,
            extras=extras,
        )
    else:
        path = item.path
        if PurePosixPath(path).suffix.lower() not in _same_ext(ext):
            path = _stem(item.path) + ext
        other = ch.by_path(path)
        if other is not None and other.id != item.id:
            report.skipped.append(
                (item.path, f"another item already sits at {path}; use --keep-originals")
            )
            return
        new = replace(item, path=path, hash=h, size=size, step="image", info=info, extras=extras)
    ch.put(new)
    report.made.append(new)


def _store(ch, path: str) -> str:
    """Store a worker's output file; small ones from memory, so that content the dataset
    already holds is neither copied nor synced again."""
    if os.path.getsize(path) <= SMALL_FILE:
        return ch.put_bytes(Path(path).read_bytes())
    return ch.put_file(path)


def _same_ext(ext: str) -> tuple[str, ...]:
    return {".jpg": (".jpg", ".jpeg", ".jpe"), ".png": (".png",), ".webp": (".webp",)}[ext]


def prep_video(
    ds: Dataset,
    options: VideoPrep,
    selectors: Iterable[str] = ("all",),
    *,
    progress: ProgressFn | None = None,
    command: list | None = None,
    workers: int | None = None,
) -> PrepReport:
    """Sample frames, find scene cuts, measure motion and extract the soundtrack of the
    chosen videos of ``ds`` as one new version (see the module docstring). Frames become
    image items ``<video>~f0012.jpg`` and the soundtrack ``<video>~soundtrack.wav`` (parent:
    the video; group and split: the video's); the video stays with its measures attached
    unless ``options.drop_video``. Unreadable videos are skipped with their reason.
    ``workers`` as for `prep_images`. Progress: stage ``"files"``, videos done / all."""
    options = options.check()
    items = _select(ds, selectors, "video")
    step = options.step()
    report = PrepReport()
    how = "scene middles" if options.scenes else f"{options.fps:g} frames/s"
    message = f"prep video: {len(items)} videos, {how}"
    with contextlib.ExitStack() as stack:
        stack.enter_context(_disk_errors(ds))
        ch = stack.enter_context(
            ds.change(step, message, command=command, resume=_resume_key(step, items))
        )
        done_ids = {i.id for i in ch.done}
        todo = [i for i in items if i.id in ch.items and i.id not in done_ids]
        finished = {i.id for i in items if i.id in done_ids or i.id not in ch.items}
        report.made.extend(
            {i.id: i for i in ch.done if i.id in finished or i.parent in finished}.values()
        )
        report.removed.extend(i.id for i in items if i.id not in ch.items)
        tmp = _scratch(stack, ds)
        jobs = []
        for n, item in enumerate(todo):
            (tmp / str(n)).mkdir()
            jobs.append((str(ds.file(item)), options, str(tmp / str(n))))
        count = len(items) - len(todo)
        _say(progress, "files", count, len(items))
        for n, res in _results(_analyse_video, jobs, _workers(workers, len(jobs), True)):
            item = todo[n]
            count += 1
            if "error" in res:
                report.skipped.append((item.path, res["error"]))
            else:
                _put_video(ch, item, res, options, report)
            shutil.rmtree(tmp / str(n), ignore_errors=True)
            _say(progress, "files", count, len(items), item.path)
    report.version = ch.version
    return report


def _put_video(ch, video: Item, res: dict, options: VideoPrep, report: PrepReport) -> None:
    stem = _stem(video.path)
    group = video.group or video.id
    if res.get("warning"):
        report.warnings.append((video.path, res["warning"]))
    made: list[Item] = []

    def child(path: str, file: str, kind: str, **fields) -> Item:
        return Item(
            id=item_id(path),
            path=path,
            hash=_store(ch, file),
            kind=kind,
            size=Path(file).stat().st_size,
            split=video.split,
            group=group,
            parent=video.id,
            step="video",
            source=video.source,
            meta=dict(video.meta),
            meta_from=dict(video.meta_from),
            **fields,
        )

    planned = [f"{stem}~f{n:04d}.jpg" for n in range(len(res["samples"]))]
    if "soundtrack" in res:
        planned.append(f"{stem}~soundtrack.wav")
    taken = {i.path: i.id for i in ch.items.values()}
    clash = [p for p in planned if taken.get(p, item_id(p)) != item_id(p)]
    if clash:
        report.skipped.append(
            (video.path, f"another item already sits at {clash[0]}; rename or remove it")
        )
        return
    for n, s in enumerate(res["samples"]):
        info = {
            "width": s["width"],
            "height": s["height"],
            "format": "jpeg",
            "mode": "RGB",
            "time_s": round(s["t"], 4),
            "scene": s["scene"],
            "motion": _round(s["motion"]),
            **s.get("scalars", {}),
        }
        extras = {"features": _store(ch, s["features"])} if "features" in s else {}
        made.append(child(planned[n], s["picture"], "image", info=info, extras=extras))
    if "soundtrack" in res:
        st = res["soundtrack"]
        info = {k: st[k] for k in ("sample_rate", "channels", "codec")}
        info["from_video"] = video.id
        made.append(child(planned[-1], st["path"], "audio", duration_s=st["duration_s"], info=info))
    for it in made:
        ch.put(it)
    report.made.extend(made)
    # outputs of an earlier run that this one did not make again (another fps, say)
    new_paths = set(planned)
    for it in list(ch.items.values()):
        if (
            it.parent == video.id
            and it.path not in new_paths
            and (
                it.path.startswith(f"{stem}~f")
                or (options.soundtrack and it.path == f"{stem}~soundtrack.wav")
            )
        ):
            ch.remove(it.id)
            report.removed.append(it.id)
    if options.drop_video:
        ch.remove(video.id)
        report.removed.append(video.id)
        return
    info = {**video.info, **res["info"]}
    if "soundtrack" in res:
        info["soundtrack"] = item_id(planned[-1])
    extras = dict(video.extras)
    if "features" in res:
        extras["features"] = _store(ch, res["features"])
    else:
        extras.pop("features", None)
    new = replace(video, info=info, extras=extras, duration_s=res["info"]["duration_s"])
    ch.put(new)
    report.made.append(new)
