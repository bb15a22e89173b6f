"""MIDI → stereo audio: SoundFont synthesis, an effects chain, loudness normalisation, export.

The pipeline is a row of small functions, each usable alone::

    render_midi        MIDI bytes/file + SoundFont → float32 [frames, 2] at sample_rate
    apply_effects      EQ → compression → reverb (Spotify's pedalboard)
    normalize_loudness gain to TARGET_LUFS, capped so the sample peak stays ≤ PEAK_CEILING_DB
    write_audio        wav / flac / ogg / mp3, written atomically

``render_audio`` runs the first three.  Synthesis is midirenderer (rustysynth, a Rust
SoundFont synthesizer): single-threaded float arithmetic, so the same MIDI and the same
SoundFont give the same samples on every run.  ``docs/audio.md`` is the user guide.

>>> audio, info = render_audio("piece.mid")             # default GM SoundFont, default effects
>>> write_audio(audio, DEFAULT_SAMPLE_RATE, "piece.flac")
"""

from __future__ import annotations

import io
import math
import re
import warnings
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from engine import names
from engine.atomic import write_bytes_atomic
from engine.audio.io import resample
from engine.audio.soundfonts import load_soundfont, soundfont_path, soundfont_sha256
from engine.credit import Credit, mark_text
from engine.errors import RenderError

DEFAULT_SAMPLE_RATE = 44100
SAMPLE_RATE_RANGE = (8000, 192000)
# Integrated loudness target, EBU R128 / ITU-R BS.1770 LUFS.  -16 is where podcasts and
# streaming previews sit (Spotify plays at -14, Apple Music at -16): loud enough to compare
# with other music, while leaving ~15 dB between average level and full scale so sparse,
# dynamic pieces (a solo piano, a chorale) reach the target without hitting the ceiling.
TARGET_LUFS = -16.0
# Sample-peak ceiling after normalisation: 1 dB of headroom keeps the PCM files unclipped and
# leaves room for the inter-sample overshoot that MP3 and Ogg encoders add.
PEAK_CEILING_DB = -1.0
AUDIO_FORMATS = names.AUDIO_FORMATS
BIT_DEPTHS = names.BIT_DEPTHS
# The renderer stops at the MIDI file's last event, which would cut every release (and the
# synth's own reverb) short: the end of the file is moved this much later.
RELEASE_TAIL_S = 2.0

EQ_LOW_SHELF_HZ = 120.0
EQ_HIGH_SHELF_HZ = 6000.0
EQ_RANGE_DB = names.EQ_RANGE_DB
# compression amount c (0..1) → ratio 1 + COMP_MAX_RATIO_GAIN·c, threshold c·COMP_MAX_DEPTH_DB
# below the input's sample peak.  c = 0.3 → 2.5:1 from 7.2 dB under the peak; c = 1 → 6:1
# from 24 dB under.  The threshold follows the input level because the synth's raw level
# varies by 20 dB with the SoundFont and the number of parts.
COMP_MAX_RATIO_GAIN = 5.0
COMP_MAX_DEPTH_DB = 24.0
COMP_ATTACK_MS = 10.0
COMP_RELEASE_MS = 150.0
# reverb amount r (0..1) → Freeverb room size 0.25 + 0.65·r, wet 0.45·r, dry 1 - 0.2·r.
REVERB_ROOM_MIN = 0.25
REVERB_ROOM_SPAN = 0.65
REVERB_WET_MAX = 0.45
REVERB_DRY_DROP = 0.2
REVERB_DAMPING = 0.5


_SUBTYPES = {
    ("wav", 16): "PCM_16",
    ("wav", 24): "PCM_24",
    ("flac", 16): "PCM_16",
    ("flac", 24): "PCM_24",
}
_LOSSY_SUBTYPES = {"ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}
_SF_FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "mp3": "MP3"}
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# Ogg pages carry a random stream serial number; it is replaced by this one so that the same
# audio always gives the same bytes.  A file holds a single stream, so any value is valid.
OGG_SERIAL = 0x44697363  # "Disc"


# ---------------------------------------------------------------------------------------------
# Effects


@dataclass
class Effects:
    """The effects chain applied after synthesis, in this order: EQ, compression, reverb.

    ``reverb``       0..1, room size and wet level together (0 = off).
    ``eq_low_db``    -24..24 dB, low shelf at ``EQ_LOW_SHELF_HZ`` (120 Hz).
    ``eq_high_db``   -24..24 dB, high shelf at ``EQ_HIGH_SHELF_HZ`` (6 kHz).
    ``compression``  0..1 (0 = off): ratio 1 + 5·c, threshold 24·c dB under the input peak.
    """

    reverb: float = 0.25
    eq_low_db: float = 0.0
    eq_high_db: float = 0.0
    compression: float = 0.3

    def validate(self) -> None:
        """Raise RenderError naming the first setting out of its range."""
        ranges = {
            "reverb": (0.0, 1.0),
            "eq_low_db": (-EQ_RANGE_DB, EQ_RANGE_DB),
            "eq_high_db": (-EQ_RANGE_DB, EQ_RANGE_DB),
            "compression": (0.0, 1.0),
        }
        for name, (lo, hi) in ranges.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise RenderError(
                    f"effect {name} must be a number from {lo:g} to {hi:g}, got {v!r}"
                )
            if not lo <= v <= hi:
                raise RenderError(f"effect {name}={v:g} is out of range; use {lo:g} to {hi:g}")

    @property
    def is_off(self) -> bool:
        return (
            self.reverb == 0
            and self.eq_low_db == 0
            and self.eq_high_db == 0
            and self.compression == 0
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Effects:
        """Effects from a dict such as ``to_dict()`` made; missing keys keep their defaults."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise RenderError(
                f"unknown effect setting {', '.join(unknown)}; use {', '.join(known)}"
            )
        effects = cls(**d)
        effects.validate()
        return effects


NO_EFFECTS = Effects(reverb=0, eq_low_db=0, eq_high_db=0, compression=0)


def _peak_db(audio: np.ndarray) -> float:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def apply_effects(
    audio: np.ndarray, sample_rate: int, effects: Effects, *, peak_db: float | None = None
) -> np.ndarray:
    """Run ``audio`` [frames, channels] through EQ → compressor → reverb; same shape, float32.

    With every setting at 0 (``NO_EFFECTS``) the audio comes back unchanged (a copy).  The
    reverb tail is kept inside the input's length: ``render_midi`` leaves RELEASE_TAIL_S of
    room after the last note for it.  ``peak_db``: the level the compressor's threshold is set
    under (None: this audio's sample peak; a window of a piece passes the whole piece's).
    """
    from pedalboard import Compressor, HighShelfFilter, LowShelfFilter, Pedalboard, Reverb

    effects.validate()
    audio = np.asarray(audio, dtype=np.float32)
    if effects.is_off or not audio.size:
        return audio.copy()
    board = Pedalboard()
    if effects.eq_low_db:
        board.append(LowShelfFilter(cutoff_frequency_hz=EQ_LOW_SHELF_HZ, gain_db=effects.eq_low_db))
    if effects.eq_high_db:
        board.append(
            HighShelfFilter(cutoff_frequency_hz=EQ_HIGH_SHELF_HZ, gain_db=effects.eq_high_db)
        )
    peak_db = _peak_db(audio) if peak_db is None else peak_db
    if effects.compression and math.isfinite(peak_db):
        c = effects.compression
        board.append(
            Compressor(
                threshold_db=peak_db - COMP_MAX_DEPTH_DB * c,
                ratio=1.0 + COMP_MAX_RATIO_GAIN * c,
                attack_ms=COMP_ATTACK_MS,
                release_ms=COMP_RELEASE_MS,
            )
        )
    if effects.reverb:
        r = effects.reverb
        board.append(
            Reverb(
                room_size=REVERB_ROOM_MIN + REVERB_ROOM_SPAN * r,
                damping=REVERB_DAMPING,
                wet_level=REVERB_WET_MAX * r,
                dry_level=1.0 - REVERB_DRY_DROP * r,
                width=1.0,
            )
        )
    # pedalboard takes [channels, frames]; reset=True (the default) makes each call independent.
    out = board(np.ascontiguousarray(audio.T), float(sample_rate))
    return np.ascontiguousarray(out.T, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Loudness


def _integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)  # ITU-R BS.1770-4, 400 ms blocks
    block = int(math.ceil(meter.block_size * sample_rate)) + 1
    x = np.asarray(audio, dtype=np.float64)
    if x.shape[0] < block:  # shorter than one gating block: measure it padded with silence
        x = np.concatenate([x, np.zeros((block - x.shape[0], *x.shape[1:]))])
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(meter.integrated_loudness(x))


def normalize_loudness(
    audio: np.ndarray,
    sample_rate: int,
    *,
    target_lufs: float = TARGET_LUFS,
    peak_db: float = PEAK_CEILING_DB,
) -> tuple[np.ndarray, dict]:
    """Scale ``audio`` [frames, channels] to ``target_lufs`` integrated loudness.

    If that gain would lift the sample peak above ``peak_db`` dBFS, the gain is lowered so the
    peak sits at the ceiling instead and ``info["limited"]`` is True (the target is then not
    reached; nothing is compressed or clipped).  Silent audio comes back unchanged with
    ``info["silent"]`` True and None for the levels.

    info: ``lufs_before, lufs_after, gain_db, peak_db`` (sample peak after, dBFS), ``limited``,
    ``silent``, ``target_lufs``, ``peak_ceiling_db``.
    """
    audio = np.asarray(audio, dtype=np.float32)
    info = {"target_lufs": float(target_lufs), "peak_ceiling_db": float(peak_db)}
    before = _integrated_lufs(audio, sample_rate) if audio.size else -math.inf
    peak_before = _peak_db(audio)
    if not math.isfinite(before) or not math.isfinite(peak_before):
        info.update(
            lufs_before=None, lufs_after=None, gain_db=0.0, peak_db=None, limited=False, silent=True
        )
        return audio.copy(), info
    gain_db = target_lufs - before
    limited = peak_before + gain_db > peak_db
    if limited:
        gain_db = peak_db - peak_before
    # a hair under the ceiling so float32 rounding can never land above it
    gain = 10.0 ** (gain_db / 20.0) * (1.0 - 1e-6 if limited else 1.0)
    out = (audio.astype(np.float64) * gain).astype(np.float32)
    info.update(
        lufs_before=round(before, 3),
        # Loudness scales with gain (K-weighting is linear, the gates are relative or far
        # below any music), so it is computed, not measured again (saves a second pass).
        lufs_after=round(before + gain_db, 3),
        gain_db=gain_db,  # exact: out == audio * 10 ** (gain_db / 20)
        peak_db=round(_peak_db(out), 3),
        limited=bool(limited),
        silent=False,
    )
    return out, info


# ---------------------------------------------------------------------------------------------
# Synthesis


def midi_data(midi) -> tuple[bytes, str]:
    """MIDI bytes and a name for messages, from bytes, a path or a symusic Score."""
    if isinstance(midi, bytes | bytearray):
        return bytes(midi), "the MIDI data"
    if hasattr(midi, "dumps_midi"):
        return bytes(midi.dumps_midi()), "the score"
    p = Path(midi).expanduser()
    if not p.is_file():
        raise RenderError(f"MIDI file not found: {p}; check the path")
    try:
        return p.read_bytes(), str(p)
    except OSError as e:
        raise RenderError(f"cannot read the MIDI file {p} ({e.strerror or e})") from e


def prepare_midi(data: bytes, name: str) -> tuple[bytes | None, float]:
    """(MIDI bytes ending RELEASE_TAIL_S later, or None when it has no notes; its length in s,
    measured only when it has no notes, else 0)."""
    import mido

    if not data:
        raise RenderError(f"{name} is empty, not a MIDI file; export it again")
    try:
        mf = mido.MidiFile(file=io.BytesIO(data), clip=True)
        has_notes = any(m.type == "note_on" and m.velocity > 0 for t in mf.tracks for m in t)
        length_s = 0.0 if has_notes or mf.type == 2 else float(mf.length)
    except Exception as e:  # mido raises OSError, EOFError, KeyError, ValueError... on bad bytes
        raise RenderError(f"{name} is not a readable MIDI file ({e}); export it again") from e
    if not has_notes:
        return None, length_s
    # tempo in force at the end decides how many ticks RELEASE_TAIL_S is: the last set_tempo
    # in time (of several at one tick, the later track's; as merging the tracks orders them)
    tempo_us, tempo_tick = 500_000, -1
    for track in mf.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo" and tick >= tempo_tick:
                tempo_us, tempo_tick = msg.tempo, tick
    tail = math.ceil(RELEASE_TAIL_S * 1e6 / tempo_us * mf.ticks_per_beat)
    longest = max(mf.tracks, key=lambda t: sum(m.time for m in t))
    if len(longest) and longest[-1].type == "end_of_track":
        longest[-1] = longest[-1].copy(time=longest[-1].time + tail)
    else:
        longest.append(mido.MetaMessage("end_of_track", time=tail))
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue(), length_s


def check_sample_rate(sample_rate: int) -> int:
    lo, hi = SAMPLE_RATE_RANGE
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise RenderError(f"sample rate must be a whole number of Hz, got {sample_rate!r}")
    if not lo <= sample_rate <= hi:
        raise RenderError(f"sample rate {sample_rate} Hz is out of range; use {lo} to {hi} Hz")
    return int(sample_rate)


def synthesize(midi, sf2: bytes, sf2_path: Path, sample_rate: int) -> np.ndarray:
    import midirenderer
    import soundfile as sf

    sample_rate = check_sample_rate(sample_rate)
    data, name = midi_data(midi)
    prepared, length_s = prepare_midi(data, name)
    if prepared is None:
        frames = round((length_s + RELEASE_TAIL_S) * sample_rate)
        return np.zeros((frames, 2), dtype=np.float32)
    try:
        wav = midirenderer.render_wave_from(sf2, prepared)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # a Rust panic arrives as pyo3's PanicException (a BaseException)
        raise RenderError(
            f"could not synthesize {name} ({e}); check that the SoundFont {sf2_path} "
            "opens in another player"
        ) from e
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    audio = np.ascontiguousarray(audio[:, :2])
    return resample(audio, int(rate), sample_rate, polyphase=True)


def render_midi(
    midi: bytes | str | Path,
    *,
    soundfont: str | Path | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """Synthesize MIDI (bytes, a file path, or a symusic Score) with a SoundFont.

    Returns float32 [frames, 2] at ``sample_rate``: the MIDI's length plus RELEASE_TAIL_S.  The
    level is the synth's own (often -20 dBFS or lower): ``normalize_loudness`` sets it.  A MIDI
    file without notes gives silence of its length.
    """
    path = soundfont_path(soundfont)
    return synthesize(midi, load_soundfont(path), path, sample_rate)


def render_audio(
    midi: bytes | str | Path,
    *,
    soundfont: str | Path | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    effects: Effects | None = None,
    target_lufs: float = TARGET_LUFS,
) -> tuple[np.ndarray, dict]:
    """Render, apply ``effects`` (None: ``Effects()`` defaults) and normalise loudness.

    Returns (float32 [frames, 2], info): ``normalize_loudness``'s info plus ``soundfont``
    (the file's name, never its folder: records stay portable), ``soundfont_name``
    (``engine.audio.soundfonts.name_for``), ``soundfont_sha256``, ``sample_rate``,
    ``duration_s`` and ``effects`` (a dict).
    """
    effects = Effects() if effects is None else effects
    effects.validate()
    path = soundfont_path(soundfont)
    sf2 = load_soundfont(path)
    audio = synthesize(midi, sf2, path, sample_rate)
    audio = apply_effects(audio, sample_rate, effects)
    audio, info = normalize_loudness(audio, sample_rate, target_lufs=target_lufs)
    from engine.audio.soundfonts import name_for

    sha256 = soundfont_sha256(path)
    info.update(
        soundfont=Path(path).name,
        soundfont_name=name_for(path, sha256),
        soundfont_sha256=sha256,
        sample_rate=int(sample_rate),
        duration_s=round(audio.shape[0] / sample_rate, 3),
        effects=effects.to_dict(),
    )
    return audio, info


# ---------------------------------------------------------------------------------------------
# Export

_BIT_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _ogg_crc(data: bytes) -> int:
    """Ogg's page CRC (poly 0x04C11DB7, no reflection, init 0) via zlib's reflected CRC-32."""
    raw = zlib.crc32(data.translate(_BIT_REVERSE), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


def _fix_ogg_serial(data: bytes, serial: int = OGG_SERIAL) -> bytes:
    """Give every Ogg page the same stream serial number (and so the same bytes every run)."""
    out = bytearray(data)
    pos = 0
    while pos < len(out):
        if out[pos : pos + 4] != b"OggS" or pos + 27 > len(out):
            raise RenderError("the Ogg encoder wrote an unexpected page; write wav or flac instead")
        nseg = out[pos + 26]
        size = 27 + nseg + sum(out[pos + 27 : pos + 27 + nseg])
        out[pos + 14 : pos + 18] = serial.to_bytes(4, "little")
        out[pos + 22 : pos + 26] = b"\0\0\0\0"
        out[pos + 22 : pos + 26] = _ogg_crc(bytes(out[pos : pos + size])).to_bytes(4, "little")
        pos += size
    return bytes(out)


def _watermarked(audio: np.ndarray, sample_rate: int, credit: Credit) -> tuple[np.ndarray, Credit]:
    """The audio with its watermark, and the credit naming the mark (unchanged outside the
    watermark's sample rates)."""
    import dataclasses

    from engine.audio import watermark

    if not watermark.MIN_SAMPLE_RATE <= sample_rate <= watermark.MAX_SAMPLE_RATE:
        return audio, credit
    given = re.fullmatch(r"dm:([0-9a-f]{8})", credit.mark or "")
    if given:  # the caller's mark (a piece's own): the watermark carries it
        payload = int(given[1], 16)
    else:
        payload = watermark.mark_for(np.ascontiguousarray(audio, dtype="<f4").tobytes())
    marked = watermark.embed(audio, sample_rate, payload)
    return marked, dataclasses.replace(credit, mark=mark_text(payload))


def write_audio(
    audio: np.ndarray,
    sample_rate: int,
    path: str | Path,
    *,
    fmt: str | None = None,
    bit_depth: int = 16,
    credit: Credit | None = None,
    mark: bool = True,
) -> Path:
    """Write ``audio`` ([frames, channels] or [frames], float in -1..1) atomically; return the path.

    The format is ``fmt`` or the file's suffix: wav and flac (16 or 24-bit PCM), ogg (Vorbis)
    and mp3 (LAME through libsndfile ≥ 1.1; ``bit_depth`` does not apply to these two).  Samples
    beyond ±1 are clipped, never wrapped.  The same audio always gives the same bytes in every
    format (Ogg's random stream serial number is replaced by a fixed one).

    Every file states that it is AI-generated: ``credit.statement`` (``Credit()`` when None:
    the statement without a mark) in its comment tag, which libsndfile writes as RIFF INFO
    ``ICMT``, a Vorbis ``COMMENT`` or an ID3 ``COMM``; a WAV gets an ID3 chunk as well, since
    many tag readers (mutagen among them) do not read RIFF INFO.  The tags never touch the
    samples.  ``engine.credit.read_credit`` finds the statement again.

    ``mark`` (the default): the audio carries the inaudible watermark of
    `engine.audio.watermark` (16 to 192 kHz audio), whose 32-bit payload is
    ``watermark.mark_for`` of the unmarked samples, so the same audio always gets the same
    mark; the statement names it (``dm:1a2b3c4d``), and ``disco-musica detect`` reads it back.
    """
    import soundfile as sf

    path = Path(path).expanduser()
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in AUDIO_FORMATS:
        choices = ", ".join(AUDIO_FORMATS)
        if not fmt:
            raise RenderError(f"cannot tell the audio format of {path}; end it in one of {choices}")
        raise RenderError(f"unknown audio format {fmt!r}; use one of {choices}")
    if bit_depth not in BIT_DEPTHS:
        raise RenderError(
            f"unsupported bit depth {bit_depth!r}; use {' or '.join(map(str, BIT_DEPTHS))}"
        )
    sample_rate = check_sample_rate(sample_rate)
    if fmt == "mp3" and sample_rate not in MP3_SAMPLE_RATES:
        rates = ", ".join(map(str, MP3_SAMPLE_RATES))
        raise RenderError(f"MP3 cannot hold {sample_rate} Hz audio; use {rates} Hz, or flac")
    if not path.parent.is_dir():
        raise RenderError(f"folder {path.parent} does not exist; create it first")
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or not 1 <= audio.shape[1] <= 2:
        raise RenderError(f"audio must be [frames, 1 or 2 channels], got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise RenderError("the audio contains NaN or infinite samples; render it again")
    audio = np.clip(audio, -1.0, 1.0)
    credit = Credit() if credit is None else credit
    if mark:
        audio, credit = _watermarked(audio, sample_rate, credit)
    subtype = _LOSSY_SUBTYPES.get(fmt) or _SUBTYPES[(fmt, bit_depth)]
    buf = io.BytesIO()
    try:
        with sf.SoundFile(
            buf, "w", sample_rate, audio.shape[1], subtype, format=_SF_FORMATS[fmt]
        ) as f:
            # (not ``software``: libsndfile appends its own version to that one)
            f.comment = credit.statement
            f.write(audio)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        why = getattr(e, "error_string", None) or str(e)
        raise RenderError(f"could not encode {fmt} at {sample_rate} Hz ({why}); try wav") from e
    data = buf.getvalue()
    if fmt == "ogg":
        data = _fix_ogg_serial(data)
    elif fmt == "wav":
        data = _with_id3_chunk(data, credit)
    return write_bytes_atomic(path, data)


def _with_id3_chunk(wav: bytes, credit: Credit) -> bytes:
    """``wav`` with an ``id3 `` chunk after its data: ID3v2.3 ``COMM`` (the statement) and
    ``TSSE`` (the software), in Latin-1 (the statement is ASCII; v2.3 has no UTF-8)."""
    from mutagen.id3 import COMM, TSSE, Encoding
    from mutagen.wave import WAVE

    buf = io.BytesIO(wav)
    tagged = WAVE(buf)
    tagged.add_tags()
    tagged.tags.add(COMM(encoding=Encoding.LATIN1, lang="eng", desc="", text=[credit.statement]))
    tagged.tags.add(TSSE(encoding=Encoding.LATIN1, text=[credit.software]))
    tagged.save(buf, v2_version=3, padding=lambda info: 0)  # no padding: nothing edits it later
    return buf.getvalue()
