"""An inaudible, robust audio watermark that carries a 32-bit payload: `embed`, `detect`.

The scheme (informed spread spectrum on STFT log-magnitudes, see docs/library.md)::

    audio ─ resample to RATE_HZ (16 kHz) ─ STFT (FRAME 1024 = 64 ms, sqrt-Hann, 50 % overlap)
          └ cells: bins BAND_HZ (1–6 kHz, 320 bins) × frames; BLOCK_FRAMES (94 frames ≈ 3 s)
            form one period, which repeats the whole message for as long as the audio lasts

- **Message.** The payload (PAYLOAD_BITS) and its CRC-16 (CRC_BITS, CCITT polynomial) are
  encoded by the rate-1/2 convolutional code of constraint length 7 (generators 133, 171
  octal; the code of Voyager and 802.11) into CODED_BITS = 108 bits.
- **Layout.** A fixed pseudo-random layout (seeded by SEED) gives each of the 30 080 cells of a
  period a chip ±1 and a role: PILOT_SHARE of them are the pilot (a known pattern, for
  synchronisation), the rest are spread evenly and interleaved over the coded bits
  (~232 cells per bit per period, scattered over all frames and bins).
- **Feature.** A cell's feature is its log-magnitude minus the mean of its two temporal
  neighbours (high-passed in time, so a steady tone or a gain change reads as zero), clipped to
  ±CLIP_NEPER.
- **Embedding (informed).** Each period and each coded bit (and the pilot) is a group of cells;
  the detector reads a group as the mean of feature × chip. `embed` measures that on the audio
  and pushes only the groups that do not yet read the right sign by MARGIN, by log-gains on the
  cells in the direction of their chips, ITERATIONS times (re-measuring what the overlap-add
  really left each time). Groups the music already agrees with cost nothing, so the music
  itself hardly interferes. A cell's gain follows the local spectral envelope (a LOCAL_BINS
  moving average of the magnitude) rather than the cell, so the mark is noise shaped like the
  music's spectrum; each frame's mark stays FRAME_SNR_DB under that frame's energy, and
  the whole mark at least MIN_SNR_DB under the whole signal. The mark is silent where the
  music is: samples more than one frame (64 ms) away from any non-zero sample stay exactly zero.
- **Detection.** The audio is resampled to 16 kHz and analysed at candidate sample offsets
  (a quarter hop apart, then refined to 1 ms); the frames are folded modulo the period (so any
  excerpt of at least a period holds every cell, and longer ones average several periods); the
  pilot's correlation over all cyclic shifts (one FFT) gives the synchronisation and its
  z-score; the folded cells give each coded bit a soft value; Viterbi decoding and the CRC give
  the payload. A payload is reported only when the CRC holds and the pilot's z-score is at least
  SYNC_THRESHOLD: random audio passes the CRC once in 65 536 decodings.

Limits: the mark survives lossy coding (MP3 128 kbit/s, Vorbis q3), resampling, gain,
moderate noise and cutting (any 10 s excerpt), measured by tests/bench/bench_watermark.py;
it does not survive time stretching, pitch shifting or speed changes (no resynchronisation in
time scale), nor a deliberate attack by someone who knows this scheme (the layout is public).
Audio shorter than one period (BLOCK_FRAMES frames, about 3 s) is marked as far as it goes but
holds only part of the message, so it is rarely detected; audio shorter than one frame is
returned unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy.ndimage import maximum_filter1d, uniform_filter1d

from engine.errors import RenderError

PAYLOAD_BITS = 32
MAX_PAYLOAD = 2**PAYLOAD_BITS - 1
CRC_BITS = 16
CRC_POLY = 0x1021  # CRC-16/CCITT-FALSE: x^16 + x^12 + x^5 + 1, initial value 0xFFFF
CODE_K = 7  # constraint length of the convolutional code
CODE_GENERATORS = (0o133, 0o171)  # rate 1/2, the NASA/802.11 code
INFO_BITS = PAYLOAD_BITS + CRC_BITS
CODED_BITS = (INFO_BITS + CODE_K - 1) * len(CODE_GENERATORS)  # 108, zero-tail terminated

RATE_HZ = 16000  # the mark lives at this rate, whatever the audio's
FRAME = 1024  # STFT frame: 64 ms at RATE_HZ
HOP = FRAME // 2  # 32 ms
BAND_HZ = (1000.0, 6000.0)  # survives 22.05 kHz resampling, MP3 and Vorbis
BAND_LO = int(np.ceil(BAND_HZ[0] * FRAME / RATE_HZ))  # bin 64
BAND_HI = int(BAND_HZ[1] * FRAME / RATE_HZ)  # bin 384 (exclusive): 320 bins
BLOCK_FRAMES = 94  # one period of the message: 94 hops = 3.008 s
PERIOD_S = BLOCK_FRAMES * HOP / RATE_HZ
PILOT_SHARE = 1 / 6  # cells of a period that carry the known pilot pattern
SEED = 0x4D61726B  # "Mark": the layout's random generator

FRAME_SNR_DB = 33.0  # a frame's mark at least this far under the frame's energy
MIN_SNR_DB = 35.5  # the whole mark at least this far under the whole signal
MARGIN = 0.1  # nepers: the mean feature × chip each group is pushed to
ITERATIONS = 6  # measure-and-push rounds in `embed`
PUSH = 2.0  # a push is this many times the deficit (overlap-add leaves about half of it)
MAX_LOG_GAIN = 1.0  # nepers: the most a cell's magnitude is changed
LOCAL_BINS = 25  # the envelope a cell's gain follows: a moving mean over 25 bins (390 Hz)
MAX_SHAPE = 10.0  # a cell 20 dB under its envelope gets at most 10 times its own gain
FLOOR = 1e-4  # power floor under the log, relative to the frame's mean power in the band
CLIP_NEPER = 1.5  # features clipped to ±this (onsets would otherwise swamp the mean)

SEARCH_STEP = HOP // 4  # coarse synchronisation: sample offsets at 16 kHz
REFINE_STEPS = (HOP // 8, HOP // 16, HOP // 32)  # then ±these around the best
SYNC_CANDIDATES = 3  # synchronisations decoded, best pilot first, until the CRC holds
SYNC_THRESHOLD = 4.0  # pilot z-score below which nothing is reported (unmarked: ~2.5-3.3)

MIN_SAMPLE_RATE = 16000
MAX_SAMPLE_RATE = 192000
_RESAMPLE_QUALITY = "HQ"


@dataclass(frozen=True)
class Detection:
    """What `detect` found.

    ``found``: a mark whose CRC holds with a clear synchronisation; ``payload``: its 32-bit
    payload (None when not found); ``score``: the pilot's z-score at the best synchronisation
    (unmarked audio ~2.5-3.3, marked audio usually above 10); ``offset_s``: where a period of
    the mark starts, in seconds from the start of the audio (modulo PERIOD_S); ``decoded``: the
    32 bits read at the best synchronisation whether or not their CRC holds (for bit-error
    rates and diagnostics; None when the audio is too short or silent).
    """

    found: bool
    payload: int | None
    score: float
    offset_s: float
    decoded: int | None


# ---------------------------------------------------------------------------------------------
# Checks


def _check_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise RenderError(f"sample rate must be a whole number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise RenderError(
            f"sample rate {sample_rate} Hz cannot carry the watermark; use "
            f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
        )
    return int(sample_rate)


def _check_audio(audio) -> np.ndarray:
    a = np.asarray(audio)
    if a.dtype.kind != "f":
        raise RenderError(f"audio must be floating-point samples in -1..1, got {a.dtype} samples")
    if a.ndim not in (1, 2) or (a.ndim == 2 and a.shape[1] == 0):
        raise RenderError(
            f"audio must be [frames] or [frames, channels], got an array of shape {a.shape}"
        )
    if not np.isfinite(a).all():
        raise RenderError("audio holds NaN or infinite samples; it cannot be watermarked")
    return a


def _check_payload(payload) -> int:
    if isinstance(payload, bool) or not isinstance(payload, int | np.integer):
        raise RenderError(f"watermark payload must be a whole number, got {payload!r}")
    if not 0 <= payload <= MAX_PAYLOAD:
        raise RenderError(f"watermark payload {payload} is out of range; use 0 to {MAX_PAYLOAD}")
    return int(payload)


# ---------------------------------------------------------------------------------------------
# The message: CRC, convolutional code, Viterbi


def _crc(bits: np.ndarray) -> np.ndarray:
    """CRC_BITS check bits (MSB first) of ``bits`` (0/1)."""
    reg = 0xFFFF
    for b in bits:
        top = ((reg >> 15) & 1) ^ int(b)
        reg = (reg << 1) & 0xFFFF
        if top:
            reg ^= CRC_POLY
    return np.array([(reg >> (15 - i)) & 1 for i in range(CRC_BITS)], dtype=np.int8)


def _payload_bits(payload: int) -> np.ndarray:
    return np.array([(payload >> (PAYLOAD_BITS - 1 - i)) & 1 for i in range(PAYLOAD_BITS)], np.int8)


@lru_cache(maxsize=1)
def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """(outputs [states, 2, n_out] as ±1 for input bit 0/1 from each state, parity table)."""
    states = 1 << (CODE_K - 1)
    out = np.zeros((states, 2, len(CODE_GENERATORS)), np.float64)
    for s in range(states):
        for b in range(2):
            reg = (b << (CODE_K - 1)) | s
            for g, gen in enumerate(CODE_GENERATORS):
                out[s, b, g] = 1.0 - 2.0 * (bin(reg & gen).count("1") & 1)
    return out


def _encode(info: np.ndarray) -> np.ndarray:
    """Convolutional code of ``info`` plus CODE_K - 1 zero tail bits: [CODED_BITS] of 0/1."""
    out = _trellis()
    bits = np.concatenate([info, np.zeros(CODE_K - 1, np.int8)])
    coded, state = [], 0
    for b in bits:
        coded.append(out[state, b] < 0)
        state = ((int(b) << (CODE_K - 1)) | state) >> 1
    return np.concatenate(coded).astype(np.int8)


def _viterbi(soft: np.ndarray) -> np.ndarray:
    """Most likely info bits for soft values [CODED_BITS] (positive: a 0 was sent)."""
    out = _trellis()
    n_out = len(CODE_GENERATORS)
    states = out.shape[0]
    steps = len(soft) // n_out
    soft = soft.reshape(steps, n_out)
    # state n is reached from states p0, p0 | 1 by input bit n >> (K - 2)
    nxt = np.arange(states)
    bit = nxt >> (CODE_K - 2)
    p0 = (nxt & ((1 << (CODE_K - 2)) - 1)) << 1
    metric = np.full(states, -np.inf)
    metric[0] = 0.0
    choice = np.zeros((steps, states), bool)
    for t in range(steps):
        gain = out @ soft[t]  # [states, 2]
        m0 = metric[p0] + gain[p0, bit]
        m1 = metric[p0 | 1] + gain[p0 | 1, bit]
        choice[t] = m1 > m0
        metric = np.maximum(m0, m1)
        if t >= steps - (CODE_K - 1):  # the tail: only input 0
            metric[bit == 1] = -np.inf
    state, bits = 0, np.zeros(steps, np.int8)
    for t in range(steps - 1, -1, -1):
        bits[t] = state >> (CODE_K - 2)
        state = ((state & ((1 << (CODE_K - 2)) - 1)) << 1) | int(choice[t, state])
    return bits[: steps - (CODE_K - 1)]


# ---------------------------------------------------------------------------------------------
# Layout and spectra


@lru_cache(maxsize=1)
def _layout() -> tuple[np.ndarray, np.ndarray]:
    """(role [BLOCK_FRAMES, K]: coded bit index or -1 for the pilot; chip [BLOCK_FRAMES, K] ±1)."""
    rng = np.random.default_rng(SEED)
    n = BLOCK_FRAMES * (BAND_HI - BAND_LO)
    per_bit = int(n * (1 - PILOT_SHARE)) // CODED_BITS
    role = np.full(n, -1, np.int64)
    role[rng.permutation(n)[: per_bit * CODED_BITS]] = np.arange(per_bit * CODED_BITS) % CODED_BITS
    chip = rng.integers(0, 2, n).astype(np.float32) * 2 - 1
    shape = (BLOCK_FRAMES, BAND_HI - BAND_LO)
    return role.reshape(shape), chip.reshape(shape)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    n = np.arange(FRAME)
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * n / FRAME)).astype(np.float32)


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    import soxr

    if rate_in == rate_out:
        return np.asarray(x, np.float32)
    return soxr.resample(x, rate_in, rate_out, quality=_RESAMPLE_QUALITY).astype(np.float32)


def _stft(x: np.ndarray) -> np.ndarray:
    """x [S] at RATE_HZ → [T, FRAME // 2 + 1] complex64, frame t at sample t·HOP."""
    T = (len(x) - FRAME) // HOP + 1
    if T <= 0:
        return np.zeros((0, FRAME // 2 + 1), np.complex64)
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP][:T] * _window()
    return scipy.fft.rfft(frames, axis=1)


def _istft_band(band: np.ndarray, length: int) -> np.ndarray:
    """Band spectra [T, K] (bins BAND_LO..BAND_HI) → signal [length], sqrt-Hann overlap-add."""
    T = band.shape[0]
    full = np.zeros((T, FRAME // 2 + 1), np.complex64)
    full[:, BAND_LO:BAND_HI] = band
    frames = scipy.fft.irfft(full, n=FRAME, axis=1).astype(np.float32) * _window()
    out = np.zeros(length, np.float32)
    for j in range(FRAME // HOP):
        seg = frames[:, j * HOP : (j + 1) * HOP].ravel()
        out[j * HOP : j * HOP + len(seg)] += seg
    return out


def _features(power: np.ndarray) -> np.ndarray:
    """Band power [T, K] → features [T, K]: log-magnitude high-passed in time, clipped."""
    floor = FLOOR * power.mean(axis=1, keepdims=True) + 1e-20
    f = 0.5 * np.log(power + floor)
    r = np.zeros_like(f)
    r[1:-1] = f[1:-1] - 0.5 * (f[:-2] + f[2:])
    return np.clip(r, -CLIP_NEPER, CLIP_NEPER)


def _power(spec: np.ndarray) -> np.ndarray:
    return (spec.real**2 + spec.imag**2).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Embedding


def embed(audio: np.ndarray, sample_rate: int, payload: int) -> np.ndarray:
    """``audio`` with an inaudible mark carrying ``payload`` (0 .. 2**32 - 1).

    ``audio``: float [frames] or [frames, channels] in -1..1 at ``sample_rate`` (16 to 192 kHz).
    Returns an array of the same shape and dtype, clipped to -1..1. Deterministic: the same
    audio and payload always give the same samples. Digital silence stays silent (the mark
    follows the music's level and spectrum); audio shorter than one STFT frame (64 ms) comes
    back unchanged, and audio shorter than one period (about 3 s) carries only part of the
    message. Raises `RenderError` for a payload out of range, a wrong shape, non-float or
    non-finite samples or an unusable sample rate.
    """
    a = _check_audio(audio)
    sample_rate = _check_rate(sample_rate)
    payload = _check_payload(payload)
    x = a[:, None] if a.ndim == 1 else a
    x32 = x.astype(np.float32)
    mark = _mark(x32, sample_rate, payload)
    if mark is None:
        return a.copy()
    y = np.clip(x32.astype(np.float64) + mark, -1.0, 1.0).astype(a.dtype)
    return y[:, 0] if a.ndim == 1 else y


def _mark(x: np.ndarray, sample_rate: int, payload: int) -> np.ndarray | None:
    """The mark [frames, channels] (float32) for ``x`` [frames, channels], or None for none."""
    S, C = x.shape
    if not np.any(x):
        return None
    xr = _resample(x, sample_rate, RATE_HZ)
    Sr = xr.shape[0]
    if Sr < FRAME:
        return None
    # frames start HOP before the audio so that every sample lies under two frames
    T = -(-(Sr + HOP) // HOP) + 1
    L = (T - 1) * HOP + FRAME
    xp = np.zeros((L, C), np.float32)
    xp[HOP : HOP + Sr] = xr
    specs = [_stft(xp[:, c]) for c in range(C)]
    energy = sum(_power(s).sum(axis=1) for s in specs)  # [T], all bins, all channels
    bands = [s[:, BAND_LO:BAND_HI] for s in specs]
    power = sum(_power(b) for b in bands)  # [T, K]
    mono = sum(bands)
    mag = np.sqrt(power)
    envelope = uniform_filter1d(mag, LOCAL_BINS, axis=1, mode="nearest")
    with np.errstate(divide="ignore", invalid="ignore"):
        shape = np.where(mag > 0, np.minimum(envelope / mag, MAX_SHAPE), 0.0).astype(np.float32)

    # groups: (period, coded bit or pilot); sign: the chip times the bit's sign
    role, chip = _layout()
    coded = _encode(np.concatenate([_payload_bits(payload), _crc(_payload_bits(payload))]))
    pos = np.arange(T) % BLOCK_FRAMES
    n_roles = CODED_BITS + 1
    group = ((np.arange(T) // BLOCK_FRAMES)[:, None] * n_roles + role[pos] + 1).ravel()
    bit_sign = np.concatenate([[1.0], 1.0 - 2.0 * coded]).astype(np.float32)
    sign = chip[pos] * bit_sign[role[pos] + 1]
    n_groups = int(group.max()) + 1
    count = np.bincount(group, minlength=n_groups) + 1e-9
    spread = np.bincount(group, weights=shape.ravel(), minlength=n_groups) + 1e-9
    budget = 10 ** (-FRAME_SNR_DB / 10) * energy

    G = np.zeros_like(shape)  # log-gains of the cells
    for _ in range(ITERATIONS):
        heard = mono + _stft(_istft_band(mono * (np.exp(G) - 1), L))[:, BAND_LO:BAND_HI]
        reading = (
            np.bincount(
                group, weights=(_features(_power(heard)) * sign).ravel(), minlength=n_groups
            )
            / count
        )
        push = PUSH * np.maximum(0.0, MARGIN - reading) * count / spread
        G = np.clip(
            G + sign * shape * push[group].reshape(T, -1).astype(np.float32),
            -MAX_LOG_GAIN,
            MAX_LOG_GAIN,
        )
        spent = (power * (np.exp(G) - 1) ** 2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            over = np.where(spent > budget, np.sqrt(budget / spent), 1.0)
        G *= over[:, None].astype(np.float32)

    gain = np.exp(G) - 1
    mark = np.stack([_istft_band(b * gain, L)[HOP : HOP + Sr] for b in bands], axis=1)
    mark_energy = float(np.sum(mark.astype(np.float64) ** 2))
    signal_energy = float(np.sum(xr.astype(np.float64) ** 2))
    if mark_energy > 10 ** (-MIN_SNR_DB / 10) * signal_energy:
        mark *= np.sqrt(10 ** (-MIN_SNR_DB / 10) * signal_energy / mark_energy)
    out = np.zeros((S, C), np.float32)
    up = _resample(mark, RATE_HZ, sample_rate)[:S]
    out[: len(up)] = up
    # digital silence stays silent: no mark further than one frame from a non-zero sample
    reach_frames = int(round(FRAME * sample_rate / RATE_HZ))
    sounding = maximum_filter1d(np.abs(x).max(axis=1), 2 * reach_frames + 1) > 0
    out[~sounding] = 0.0
    return out


# ---------------------------------------------------------------------------------------------
# Detection


def _fold(features: np.ndarray) -> np.ndarray:
    """Features [T, K] summed over frames modulo the period: [BLOCK_FRAMES, K]."""
    T, K = features.shape
    pad = (-T) % BLOCK_FRAMES
    f = np.concatenate([features, np.zeros((pad, K), features.dtype)])
    return f.reshape(-1, BLOCK_FRAMES, K).sum(axis=0)


@lru_cache(maxsize=1)
def _pilot_spectra() -> tuple[np.ndarray, np.ndarray]:
    role, chip = _layout()
    pilot = np.where(role < 0, chip, 0.0)
    return np.fft.rfft(pilot, axis=0), np.fft.rfft(pilot**2, axis=0)


def _pilot_scores(folded: np.ndarray) -> np.ndarray:
    """z-score of the pilot for each cyclic shift s (folded frame j is period frame j + s)."""
    pilot, pilot2 = _pilot_spectra()
    n = BLOCK_FRAMES
    corr = np.fft.irfft((np.conj(np.fft.rfft(folded, axis=0)) * pilot).sum(axis=1), n=n)
    var = np.fft.irfft((np.conj(np.fft.rfft(folded**2, axis=0)) * pilot2).sum(axis=1), n=n)
    return corr / np.sqrt(np.maximum(var, 1e-30))


def _soft_bits(folded: np.ndarray, shift: int) -> np.ndarray:
    role, chip = _layout()
    aligned = np.roll(folded, shift, axis=0) * chip
    data = role >= 0
    return np.bincount(role[data], weights=aligned[data], minlength=CODED_BITS)


def _decode(folded: np.ndarray, shift: int) -> tuple[int, bool]:
    """(the payload bits read, whether their CRC holds)."""
    bits = _viterbi(_soft_bits(folded, shift))
    info, check = bits[:PAYLOAD_BITS], bits[PAYLOAD_BITS:]
    return int("".join(map(str, info)), 2), bool(np.array_equal(_crc(info), check))


def detect(audio: np.ndarray, sample_rate: int) -> Detection:
    """Look for a mark in ``audio`` (float [frames] or [frames, channels] at ``sample_rate``).

    The excerpt may start anywhere in the marked audio: the synchronisation is searched over
    sample offsets and over the position in the period. Needs at least one period (about
    3 s) of marked audio to read the whole message; 10 s or more for lossy-coded or noisy
    audio. Raises `RenderError` for a wrong shape, non-finite samples or an unusable rate.
    """
    a = _check_audio(audio)
    sample_rate = _check_rate(sample_rate)
    y = a.astype(np.float32) if a.ndim == 1 else a.astype(np.float32).mean(axis=1)
    yr = _resample(y, sample_rate, RATE_HZ)
    if len(yr) < FRAME + 2 * HOP or not np.any(yr):
        return Detection(False, None, 0.0, 0.0, None)

    def fold_at(offset: int) -> np.ndarray:
        return _fold(_features(_power(_stft(yr[offset:])[:, BAND_LO:BAND_HI])))

    tried: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def look(offset: int) -> float:
        if offset not in tried:
            folded = fold_at(offset)
            tried[offset] = (folded, _pilot_scores(folded))
        return float(tried[offset][1].max())

    best = max(range(0, HOP, SEARCH_STEP), key=look)
    for step in REFINE_STEPS:
        best = max((best - step, best, best + step), key=lambda o: look(o) if o >= 0 else -1e9)
    # candidates: the best shifts at every offset tried, strongest pilot first
    cands = sorted(
        ((float(z[s]), off, int(s)) for off, (_, z) in tried.items() for s in np.argsort(z)[-2:]),
        reverse=True,
    )
    z0, off0, s0 = cands[0]
    seen = set()
    for z, off, s in cands:
        start = (off - s * HOP) % (BLOCK_FRAMES * HOP)  # where the period starts, at 16 kHz
        key = round(start / HOP)
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > SYNC_CANDIDATES or z < SYNC_THRESHOLD:
            break
        payload, ok = _decode(tried[off][0], s)
        if ok:
            return Detection(True, payload, z, _offset_s(off, s), payload)
    return Detection(False, None, z0, _offset_s(off0, s0), _decode(tried[off0][0], s0)[0])


def _offset_s(offset: int, shift: int) -> float:
    """Seconds from the audio's start to the start of a period of the mark."""
    # folded frame j (at offset + j·HOP) is period frame j + shift; the period's frame 1 is
    # the first frame that starts at the marked audio's first sample
    start = (offset + ((1 - shift) % BLOCK_FRAMES) * HOP) % (BLOCK_FRAMES * HOP)
    return start / RATE_HZ


def mark_for(data: bytes) -> int:
    """A payload derived from ``data``: the first 32 bits of its SHA-256, big-endian.

    Callers derive it from the unmarked audio (or its source), so a replay writes identical
    files.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RenderError(f"mark_for needs bytes, got {type(data).__name__}")
    return int.from_bytes(hashlib.sha256(bytes(data)).digest()[:4], "big")
