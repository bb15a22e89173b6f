"""Reading audio files: the one reader (`load_audio`) and the one resampler (`resample`).

Every command that takes a recording reads it here: transcribe, accompany, the audio
workflows (harmonize, continue, restyle of a recording) and MusicGen's melody and audio
prompt. A file is recognised by its content (`sniff_audio`) before a decoder sees it; every
refusal is one `engine.errors.AudioFileError` line that names the file; a file cut short is
read as far as it goes with an `engine.errors.InputWarning`.
"""

from __future__ import annotations

import os
import struct
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from engine import names
from engine.errors import AudioFileError, InputWarning

MAX_AUDIO_SECONDS = names.MAX_AUDIO_SECONDS  # 1 hour (~1 GB of memory); longer is refused
_W64_GUID = bytes.fromhex("726966662e91cf11a5d628db04c10000")  # Sony Wave64's "riff"
RESAMPLE_QUALITY = "HQ"  # soxr's high quality (librosa.load's default resampler)


def resample(
    audio: np.ndarray, rate_in: int, rate_out: int, *, polyphase: bool = False
) -> np.ndarray:
    """``audio`` ([S] or [S, channels], samples first) from ``rate_in`` to ``rate_out`` Hz,
    float32.

    Recordings being analysed go through soxr's HQ mode, as librosa.load (and so Basic
    Pitch) resamples them. ``polyphase=True`` is the renderer's: scipy's polyphase filter
    (Kaiser window), exact and deterministic, used for every rendered file since 0.1, so
    the same MIDI keeps rendering to the same bytes.
    """
    if rate_in == rate_out:
        return np.asarray(audio, dtype=np.float32)
    if polyphase:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(rate_in, rate_out)
        return resample_poly(audio, rate_out // g, rate_in // g, axis=0).astype(np.float32)
    import soxr

    return soxr.resample(audio, rate_in, rate_out, quality=RESAMPLE_QUALITY).astype(np.float32)


CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped


CLIP_WARN_FRACTION = 0.001  # warn when more than 0.1 % of samples are clipped


SILENCE_DBFS = -60.0  # audio whose peak is below this is refused as silent


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Keep the warnings of librosa, audioread, soundfile and numba inside (``n_fft=2048 is too
    large for input signal of length=...``, deprecations): they talk about their own
    parameters, not about the user's audio; the callers say what matters in their own words
    (too short, no steady beat). Only around calls into those libraries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


AUDIO_KINDS = "WAV, FLAC, OGG, MP3 or AIFF"  # what `sniff_audio` knows, for messages


SNIFF_BYTES = 4096  # enough for an MPEG frame and the header of the next


_MPEG_KBPS = {  # (version is 1, layer): bitrate index 1..14 -> kbit/s
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}


_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(head: bytes, pos: int) -> int | None:
    """Bytes of the MPEG audio frame whose header starts at ``head[pos]``, or None when the
    four bytes there are not a valid frame header (sync, version, layer, bitrate, rate)."""
    if pos + 4 > len(head) or head[pos] != 0xFF or head[pos + 1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (head[pos + 1] >> 3) & 3, (head[pos + 1] >> 1) & 3
    rate_idx, bitrate_idx = (head[pos + 2] >> 2) & 3, head[pos + 2] >> 4
    if version == 1 or layer_bits == 0 or rate_idx == 3 or not 1 <= bitrate_idx <= 14:
        return None
    layer = 4 - layer_bits
    kbps = _MPEG_KBPS[(version == 3, layer)][bitrate_idx - 1]
    rate = _MPEG_RATES[version][rate_idx]
    padding = (head[pos + 2] >> 1) & 1
    if layer == 1:
        return (12 * kbps * 1000 // rate + padding) * 4
    per_frame = 72 if layer == 3 and version != 3 else 144
    return per_frame * kbps * 1000 // rate + padding


def sniff_audio(head: bytes) -> str | None:
    """The kind of audio file that starts with the bytes ``head`` ("WAV", "FLAC", "OGG",
    "MP3", "AIFF", "CAF", "AU", "W64"), or None when they are none of these.

    Looked at before any decoder sees the file: libsndfile hands data it does not know to
    libmpg123, which reads random bytes as broken MP3 (talking on stderr as it goes) and then
    reports "file does not exist". An MP3 without an ID3 tag must start with an MPEG frame
    header followed by another where the first one ends (one valid header alone turns up in
    random bytes, and in UTF-16 text).
    """
    four, form = head[:4], head[8:12]
    if four in (b"RIFF", b"RIFX", b"RF64", b"BW64") and form == b"WAVE":
        return "WAV"
    if four == b"FORM" and form in (b"AIFF", b"AIFC"):
        return "AIFF"
    kinds = {b"fLaC": "FLAC", b"OggS": "OGG", b"caff": "CAF", b".snd": "AU"}
    if four in kinds:
        return kinds[four]
    if head[:3] == b"ID3":
        return "MP3"  # (an ID3 tag may also sit before FLAC data: the decoder tells)
    if head[:16] == _W64_GUID:
        return "W64"
    n = _mpeg_frame_length(head, 0)
    if n and (n + 4 > len(head) or _mpeg_frame_length(head, n)):
        return "MP3"
    return None


@contextmanager
def quiet_decoder() -> Iterator[None]:
    """Send what C libraries write to file descriptor 2 to /dev/null, only around a call
    into a decoder (libmpg123 prints ``Note: Illegal Audio-MPEG-Header ...`` there, past
    Python's ``sys.stderr``); the error that follows says what matters in one line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no fd 2 (embedded): nothing to hide
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _label(path: str | Path, what: str | None) -> str:
    p = Path(path).expanduser()
    return f"{what} {p}" if what else str(p)


def load_audio(
    path: str | Path, *, what: str | None = None, min_seconds: float | None = None
) -> tuple[np.ndarray, int]:
    """(samples [S, channels] float32, sample_rate) of an audio file, or a AudioFileError.

    The one reader of audio files: transcribe, accompany, the audio workflows (harmonize,
    continue, restyle of a recording) and MusicGen's melody and audio prompt
    (`engine.pipelines.musicgen.read_audio`). ``what`` ("melody") goes before the file's name in
    messages. Refused in one line that names the file: a missing, empty or undecodable file,
    content that is not audio (`sniff_audio`, before any decoder sees it), a file with no
    samples, NaN or infinite samples (a broken export). A file cut short (its header promises
    more than it holds) is read as far as it goes with an `InputWarning` saying how much was
    readable; when ``min_seconds`` is given and the readable part is shorter, it is refused
    instead, in one line that says both (a warning before the error would be noise).
    """
    audio, sr, problems, promised = read_audio_checked(path, what)
    if min_seconds is not None and promised > audio.shape[0] and audio.shape[0] < min_seconds * sr:
        raise AudioFileError(
            f"{_label(path, what)} is cut short: only {audio.shape[0] / sr:.2f} s of the "
            f"{promised / sr:.2f} s its header promises could be read, and at least "
            f"{min_seconds:g} s are needed; use a complete copy of the file"
        )
    for text in problems:
        warnings.warn(text, InputWarning, stacklevel=2)
    return audio, sr


def read_audio_checked(path: str | Path, what: str | None = None):
    """`load_audio`'s work: (samples, rate, warnings as text, frames the header promises or
    0) without warning yet."""
    import soundfile as sf

    p = Path(path).expanduser()
    name = _label(p, what)
    if not p.exists():
        raise AudioFileError(f"{name} does not exist; check the path")
    if p.is_dir():
        raise AudioFileError(f"{name} is a folder; give an audio file (WAV, FLAC, OGG, MP3)")
    target = f"{p.stem}-fixed.wav" if p.suffix.lower() == ".wav" else f"{p.stem}.wav"
    convert = f"if it plays elsewhere, convert it to WAV, e.g. `ffmpeg -i {p.name} {target}`"
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as e:
        raise AudioFileError(
            f"cannot open {name} ({e.strerror or e}); check its permissions"
        ) from None
    if size == 0:
        raise AudioFileError(f"{name}: the file is empty; give a recording")
    if sniff_audio(head) is None:
        if head[:4] == b"MThd":
            raise AudioFileError(
                f"{name} is a MIDI file, not audio (its first bytes are MThd); rename it to "
                f"{p.stem}.mid and give it as MIDI"
            )
        raise AudioFileError(
            f"{name} is not audio (its first bytes are not {AUDIO_KINDS}); {convert}"
        )
    try:
        with quiet_libraries(), quiet_decoder():
            info = sf.info(str(p))
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError on unknown data
        raise AudioFileError(f"cannot read {name} as audio ({_reason(e)}); {convert}") from None
    check_duration(info.frames / info.samplerate if info.samplerate else 0.0, name)
    try:
        with quiet_libraries(), quiet_decoder():
            audio, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioFileError(
            f"cannot decode {name} ({_reason(e)}); the file may be damaged: export it again as "
            "WAV or FLAC"
        ) from None
    promised = max(int(info.frames), promised_frames(p) or 0)
    if audio.shape[0] == 0:
        if promised and sr:
            raise AudioFileError(
                f"{name} holds no samples: its header promises {promised / sr:.2f} s but the "
                "file ends there (a truncated copy or an interrupted export); use a complete copy"
            )
        raise AudioFileError(f"{name} holds no samples (a header only); give a recording")
    check_finite(audio, name)
    problems = []
    if sr and audio.shape[0] < promised:
        problems.append(
            f"{name} is cut short: only {audio.shape[0] / sr:.2f} s of the {promised / sr:.2f} s "
            "its header promises could be read (a truncated copy or an interrupted export); "
            "using what is there"
        )
    return audio, int(sr), problems, promised if promised > audio.shape[0] else 0


def promised_frames(path: Path) -> int | None:
    """Sample frames that a WAV (RIFF/RIFX) or AIFF header says the file holds, or None.

    libsndfile counts only the frames really there, so a file cut short reads as a shorter
    file without a word; the header's data size tells. None for other formats, streamed WAVs
    (size 0 or 0xFFFFFFFF) and headers this does not understand.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    if len(head) < 12:
        return None
    kind, form = head[:4], head[8:12]
    if kind in (b"RIFF", b"RIFX") and form == b"WAVE":
        order, data_id, fmt_id = ("<" if kind == b"RIFF" else ">"), b"data", b"fmt "
    elif kind == b"FORM" and form in (b"AIFF", b"AIFC"):
        order, data_id, fmt_id = ">", b"SSND", b"COMM"
    else:
        return None
    block = frames = None
    pos = 12
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], struct.unpack(order + "I", head[pos + 4 : pos + 8])[0]
        body = head[pos + 8 : pos + 8 + min(size, 64)]
        if cid == fmt_id and kind != b"FORM" and len(body) >= 14:
            block = struct.unpack(order + "H", body[12:14])[0]  # bytes a frame
        elif cid == fmt_id and len(body) >= 8:  # AIFF COMM: channels, frames, bits
            frames = struct.unpack(">I", body[2:6])[0]
        elif cid == data_id:
            if kind == b"FORM":
                return frames
            if size in (0, 0xFFFFFFFF) or not block:
                return None
            return size // block
        pos += 8 + size + (size & 1)
    return frames if kind == b"FORM" else None


def check_finite(audio: np.ndarray, name: str) -> None:
    """A AudioFileError when ``audio`` holds NaN or infinite samples."""
    a = np.asarray(audio)
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise AudioFileError(
            f"{name} holds NaN or infinite samples (a broken export); export it again, as "
            "16- or 24-bit WAV if the program offers it"
        )


def check_audible(audio: np.ndarray, name: str) -> None:
    """A AudioFileError when the peak of ``audio`` (floats, full scale 1) is below
    `SILENCE_DBFS`: there is nothing to hear."""
    a = np.asarray(audio)
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64) / float(2 ** (8 * a.dtype.itemsize - 1))
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    if peak < 10 ** (SILENCE_DBFS / 20):
        level = "every sample is zero" if peak == 0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        raise AudioFileError(
            f"{name} is silent ({level}); give a recording with music in it (or turn it up)"
        )


def _reason(e: Exception) -> str:
    """libsndfile's reason, without its path; its "File does not exist or is not a regular
    file" (said of data no decoder took) as what it means."""
    text = " ".join(str(e).split())
    text = text.split(": ", 1)[-1] if text else type(e).__name__
    if "does not exist or is not a regular file" in text:
        return "no decoder here understands its data"
    return text.rstrip(".")


def check_duration(seconds: float, name: str) -> None:
    if seconds > MAX_AUDIO_SECONDS:
        h, m = divmod(round(seconds / 60), 60)
        raise AudioFileError(
            f"{name} is {h} h {m:02d} min long; at most {MAX_AUDIO_SECONDS // 60} minutes "
            "are read at a time: cut it into parts first, e.g. `sox in.wav part.wav trim 0 3600 "
            ": newfile : restart`"
        )
