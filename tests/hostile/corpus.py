"""Broken and absurd input files, built in the test (nothing binary is committed).

Every builder takes the path to write and writes it; ``FILES`` maps the file names the cases
use to their builders, so a case names the files it needs and only those are made.  Audio is
written by hand (RIFF chunks) so that a file can lie about itself (a header that promises
more than it holds, NaN samples, 6 channels, 8-bit at 8 kHz); MIDI is written byte by byte
for the same reason (tempo 0, 0 ticks a beat, a note at tick 2**31).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

# ---- audio -----------------------------------------------------------------------------------
WAVE_PCM = 1
WAVE_FLOAT = 3


def wav_bytes(samples: np.ndarray, rate: int, fmt: str = "pcm16", frames: int | None = None):
    """A RIFF/WAVE file of ``samples`` (frames x channels, floats in -1..1).

    ``fmt`` is pcm8, pcm16, pcm24 or float32; ``frames`` overrides the frame count the data
    chunk's header states (a lie, for truncated files).
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim == 1:
        samples = samples[:, None]
    channels = samples.shape[1]
    if fmt == "float32":
        data, bits, tag = samples.astype("<f4").tobytes(), 32, WAVE_FLOAT
    elif fmt == "pcm8":
        data, bits, tag = (np.clip(samples, -1, 1) * 127 + 128).astype(np.uint8).tobytes(), 8, 1
    elif fmt == "pcm16":
        data, bits, tag = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(), 16, 1
    elif fmt == "pcm24":
        ints = (np.clip(samples, -1, 1) * (2**23 - 1)).astype("<i4").reshape(-1)
        raw = ints.view(np.uint8).reshape(-1, 4)[:, :3]
        data, bits, tag = raw.tobytes(), 24, 1
    else:
        raise ValueError(fmt)
    block = channels * bits // 8
    stated = len(data) if frames is None else frames * block
    fmt_chunk = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
    body += b"data" + struct.pack("<I", stated) + data
    riff_size = 4 + 8 + len(fmt_chunk) + 8 + stated
    return b"RIFF" + struct.pack("<I", riff_size) + body[: 4 + 8 + len(fmt_chunk) + 8 + len(data)]


def tone(seconds: float, rate: int, channels: int = 1, freqs=(440.0,)) -> np.ndarray:
    """A melody of sine notes (one per ``freqs`` entry, equal lengths), frames x channels."""
    n = max(int(round(seconds * rate)), 0)
    t = np.arange(n) / rate
    seg = max(n // len(freqs), 1)
    f = np.repeat(np.asarray(freqs), seg)[:n]
    f = np.pad(f, (0, n - len(f)), mode="edge") if len(f) else f
    phase = 2 * np.pi * np.cumsum(f) / rate
    wave = 0.5 * np.sin(phase) * np.minimum(1.0, 20 * np.minimum(t, t[::-1] if n else t))
    return np.repeat(wave[:, None], channels, axis=1)


MELODY_HZ = (261.63, 293.66, 329.63, 349.23, 392.0, 440.0, 493.88, 523.25)


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _audio(seconds, rate=22050, channels=1, fmt="pcm16", freqs=MELODY_HZ):
    return lambda p: _write(p, wav_bytes(tone(seconds, rate, channels, freqs), rate, fmt))


def pulse(seconds: float, rate: int, channels: int = 1, bpm: float = 120.0) -> np.ndarray:
    """Plucked notes on every beat (a clear pulse), frames x channels."""
    n = int(round(seconds * rate))
    beat = int(round(rate * 60 / bpm))
    out = np.zeros(n)
    t = np.arange(beat) / rate
    for i, start in enumerate(range(0, n, beat)):
        f = MELODY_HZ[(i * 3) % len(MELODY_HZ)] / (2 if i % 4 else 1)
        note = 0.6 * np.sin(2 * np.pi * f * t) * np.exp(-6 * t)
        out[start : start + beat] += note[: n - start]
    return np.repeat(out[:, None], channels, axis=1)


def _pulse(seconds=8.0, rate=22050, channels=1, fmt="pcm16"):
    return lambda p: _write(p, wav_bytes(pulse(seconds, rate, channels), rate, fmt))


def _truncated(p: Path) -> None:
    """Header says 10 s, the file holds 0.1 s."""
    _write(p, wav_bytes(tone(0.1, 22050), 22050, frames=10 * 22050))


def _header_only(p: Path) -> None:
    _write(p, wav_bytes(np.zeros((0, 1)), 22050))


def _header_promising(p: Path) -> None:
    """A 44-byte header that promises 10 s of data and holds none."""
    _write(p, wav_bytes(np.zeros((0, 1)), 22050, frames=10 * 22050))


def _special(value: float) -> Callable[[Path], None]:
    def build(p: Path) -> None:
        x = tone(2.0, 22050)
        x[::7] = value
        _write(p, wav_bytes(x, 22050, "float32"))

    return build


def _all_special(value: float) -> Callable[[Path], None]:
    return lambda p: _write(p, wav_bytes(np.full((22050, 1), value), 22050, "float32"))


def _random(n: int, seed: int) -> Callable[[Path], None]:
    return lambda p: _write(p, np.random.default_rng(seed).bytes(n))


# ---- MIDI ------------------------------------------------------------------------------------
def vlq(n: int) -> bytes:
    """A MIDI variable-length quantity (at most 0x0FFFFFFF)."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


MAX_DELTA = 0x0FFFFFFF


def track_bytes(events: list[tuple[int, bytes]]) -> bytes:
    """An MTrk chunk from (absolute tick, event bytes), an end-of-track appended.

    Gaps longer than a delta can hold are bridged with empty text events.
    """
    body, now = b"", 0
    for tick, ev in sorted(events, key=lambda e: e[0]):
        gap = tick - now
        while gap > MAX_DELTA:
            body += vlq(MAX_DELTA) + b"\xff\x01\x00"
            gap -= MAX_DELTA
        body += vlq(gap) + ev
        now = tick
    body += b"\x00\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(body)) + body


def midi_bytes(tracks: list[bytes], tpq: int = 480, fmt: int = 1, ntracks: int | None = None):
    n = len(tracks) if ntracks is None else ntracks
    return b"MThd" + struct.pack(">IHHH", 6, fmt, n, tpq) + b"".join(tracks)


def tempo_event(mspq: int) -> bytes:
    return b"\xff\x51\x03" + mspq.to_bytes(3, "big")


METER_44 = b"\xff\x58\x04\x04\x02\x18\x08"


def notes_events(notes, channel: int = 0) -> list[tuple[int, bytes]]:
    """(start tick, length, pitch, velocity) -> note on/off events."""
    ev = []
    for start, length, pitch, vel in notes:
        ev.append((start, bytes([0x90 | channel, pitch, vel])))
        ev.append((start + length, bytes([0x80 | channel, pitch, 0])))
    return ev


def scale(tpq: int, pitches=(60, 62, 64, 65, 67, 69, 71, 72), vel: int = 80):
    return [(i * tpq, tpq, p, vel) for i, p in enumerate(pitches)]


def conductor(mspq: int = 500_000) -> bytes:
    return track_bytes([(0, tempo_event(mspq)), (0, METER_44)])


def melody_midi(tpq: int = 480, mspq: int = 500_000) -> bytes:
    """A plain C major scale, two bars at 120 BPM: the valid input."""
    return midi_bytes([conductor(mspq), track_bytes(notes_events(scale(tpq)))], tpq)


def duet_midi(tpq: int = 480) -> bytes:
    top = track_bytes(notes_events(scale(tpq)))
    low = track_bytes(notes_events(scale(tpq, (48, 43, 48, 41, 43, 45, 43, 48)), channel=1))
    return midi_bytes([conductor(), top, low], tpq)


def _midi(data: bytes) -> Callable[[Path], None]:
    return lambda p: _write(p, data)


def _tpq(tpq: int) -> Callable[[Path], None]:
    def build(p: Path) -> None:
        notes = scale(max(tpq, 1))
        _write(p, midi_bytes([conductor(), track_bytes(notes_events(notes))], tpq))

    return build


def _twenty_tracks(p: Path) -> None:
    tracks = [conductor()]
    for i in range(20):
        ch = i % 16 if i % 16 != 9 else 10
        tracks.append(track_bytes(notes_events(scale(480, [48 + i + k for k in range(8)]), ch)))
    _write(p, midi_bytes(tracks))


def _note_events_raw(events) -> Callable[[Path], None]:
    return lambda p: _write(p, midi_bytes([conductor(), track_bytes(events)]))


# ---- text, folders and the rest --------------------------------------------------------------
def _cut_short_soundfont(p: Path) -> None:
    """The first 64 KiB of the built-in SoundFont: a download or copy that stopped early."""
    from engine.audio.soundfonts import builtin_soundfont

    with open(builtin_soundfont(), "rb") as f:
        p.write_bytes(f.read(65536))


def _text(text: str) -> Callable[[Path], None]:
    return lambda p: p.write_text(text)


def _folder(files: dict[str, bytes] | None = None) -> Callable[[Path], None]:
    def build(p: Path) -> None:
        p.mkdir()
        for name, data in (files or {}).items():
            (p / name).write_bytes(data)

    return build


def _foreign_sqlite(p: Path) -> None:
    """An SQLite database of another program (a photo catalogue)."""
    import sqlite3

    con = sqlite3.connect(p)
    con.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
    con.execute("INSERT INTO photos (path) VALUES ('holiday.jpg')")
    con.commit()
    con.close()


def _foreign_library(p: Path) -> None:
    """A folder whose library.db is another program's SQLite database."""
    p.mkdir()
    _foreign_sqlite(p / "library.db")


FOREIGN = {"thesis.txt": b"my thesis, five years of work\n", "photo.jpg": b"\xff\xd8\xff" * 100}

FILES: dict[str, Callable[[Path], None]] = {
    # valid inputs
    "tune.wav": _audio(2.0),
    "tune.mid": _midi(melody_midi()),
    "duet.mid": _midi(duet_midi()),
    # broken audio
    "empty.wav": _midi(b""),
    "truncated.wav": _truncated,
    "header-only.wav": _header_only,
    "header-lies.wav": _header_promising,
    "nan.wav": _special(math.nan),
    "inf.wav": _special(math.inf),
    "all-nan.wav": _all_special(math.nan),
    "silence.wav": lambda p: _write(p, wav_bytes(np.zeros((2 * 22050, 1)), 22050)),
    "one-sample.wav": lambda p: _write(p, wav_bytes(np.full((1, 1), 0.5), 22050)),
    "short.wav": _audio(0.3, freqs=(440.0,)),
    "midi-named.wav": _midi(melody_midi()),
    "text-named.wav": _text("this is not audio\n" * 50),
    "random.wav": _random(40_000, 1),
    "random.flac": _random(40_000, 2),
    "random.ogg": _random(40_000, 3),
    "random.mp3": _random(40_000, 4),
    "riff-garbage.wav": _midi(b"RIFF\xff\xff\xff\x7fWAVEfmt \xff\xff\xff\xff" + b"\x07" * 64),
    # odd but valid audio
    "wav-named.mp3": _audio(2.0),
    "wav-named.flac": _audio(2.0),
    "six-channel.wav": _audio(2.0, channels=6),
    "pulse-6ch.wav": _pulse(channels=6),
    "pulse-8k-pcm8.wav": _pulse(rate=8000, fmt="pcm8"),
    "pulse-192k-float.wav": _pulse(rate=192000, fmt="float32"),
    "pulse-24bit.wav": _pulse(fmt="pcm24"),
    "pulse-named.flac": _pulse(),
    "pcm8-8k.wav": _audio(2.0, rate=8000, fmt="pcm8"),
    "pcm24-192k.wav": _audio(2.0, rate=192000, fmt="pcm24"),
    "float-8k.wav": _audio(2.0, rate=8000, fmt="float32"),
    "float-192k.wav": _audio(2.0, rate=192000, fmt="float32"),
    # broken MIDI
    "broken.mid": _midi(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\xff\xff\xff\xff\x90<"),
    "empty.mid": _midi(b""),
    "header-only.mid": _midi(midi_bytes([], ntracks=1)),
    "tempo0.mid": _midi(melody_midi(mspq=0)),
    "tpq0.mid": _tpq(0),
    "tpq1.mid": _tpq(1),
    "tpq65535.mid": _tpq(65535),
    "note-at-2e31.mid": _note_events_raw(notes_events([(0, 480, 60, 80), (2**31, 480, 62, 80)])),
    "long-note.mid": _note_events_raw(notes_events([(0, 2**31, 60, 80)])),
    "no-notes.mid": _midi(midi_bytes([conductor(), track_bytes([])])),
    "drums-only.mid": _midi(
        midi_bytes([conductor(), track_bytes(notes_events(scale(480, [36, 38] * 4), 9))])
    ),
    "twenty-tracks.mid": _twenty_tracks,
    "velocity0.mid": _note_events_raw([(i * 480, bytes([0x90, 60 + i, 0])) for i in range(8)]),
    "midi-named.txt": _midi(melody_midi()),
    "text-named.mid": _text("MIDI? no, a shopping list: eggs, milk\n"),
    "folder.mid": _folder(),
    "folder.wav": _folder(),
    "locked": _folder(),
    # targets and other files
    "notes.txt": _text("my notes\n"),
    "song.mid": _midi(duet_midi()),  # a user's own MIDI file, no sidecar
    "user.json": _text('{"my": "settings"}\n'),
    # eval prompts reports: one of a single piece, and one made with another seed
    "prompts.json": _text(
        '{"model": "score-base", "summary": {"corpus": {}}, '
        '"pieces": [{"prompt": "a chorale", "seed": 1, "key_ok": true}]}'
    ),
    "prompts-seed2.json": _text(
        '{"model": "score-base", "summary": {"corpus": {}}, '
        '"pieces": [{"prompt": "a chorale", "seed": 2, "key_ok": true}]}'
    ),
    "empty.json": _text(""),
    "half.json": _text('{"model": "score-base", "pieces": [{"prompt": "a cho'),
    "foreign": _folder(FOREIGN),
    "empty-folder": _folder(),
    "not-a-soundfont.sf2": _text("not a soundfont\n"),
    "empty.sf2": _midi(b""),
    "riff-wave.sf2": _audio(0.1),
    "cut-short.sf2": _cut_short_soundfont,
    "no-config-model": _folder({"model.safetensors": b"\x00" * 16}),
    "bad-config-model": _folder({"config.json": b"{not json", "model.safetensors": b"x"}),
    "fake-corpus": _folder({"pieces.jsonl": b""}),
    "junk-corpus": _folder({"pieces.jsonl": b"not json\n{\n"}),
    "musicgen-junk": _folder({"config.json": b'{"model_type": "musicgen"}'}),
    "photos.db": _foreign_sqlite,
    "foreign-library": _foreign_library,
    "dataset": lambda p: _dataset(p),
}


def _dataset(p: Path) -> None:
    """A dataset folder with a WAV and a MIDI item (one version after the empty one)."""
    from engine.data.store import Dataset, Item, item_id

    ds = Dataset.create(p)
    with ds.change({"name": "import"}, "two files") as ch:
        for path, kind, data in (
            ("a.wav", "audio", wav_bytes(tone(1.0, 22050), 22050)),
            ("b.mid", "midi", melody_midi()),
        ):
            ch.put(Item(item_id(path), path, ch.put_bytes(data), kind, len(data)))


def build(folder: Path, names) -> None:
    """Write the named corpus files into ``folder``."""
    for name in names:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        FILES[name](target)


# ---- records (generation.json) for replay -----------------------------------------------------
def tampered(base: dict, how: str, here: Path):
    """A record (or raw text) made from a real generation record ``base``."""
    r = json.loads(json.dumps(base))
    if how == "valid":
        pass
    elif how == "seed-abc":
        r["seed"] = r["plan"]["seed"] = r["request"]["seed"] = "abc"
    elif how == "seed-2e70":
        r["seed"] = r["plan"]["seed"] = r["request"]["seed"] = 2**70
    elif how == "seed-negative":
        r["seed"] = r["plan"]["seed"] = r["request"]["seed"] = -5
    elif how == "seed-float":
        r["seed"] = r["plan"]["seed"] = r["request"]["seed"] = 3.5
    elif how == "seeds-disagree":
        r["seed"] = r["seed"] + 1
    elif how == "plan-seed-disagrees":
        r["plan"]["seed"] = r["plan"]["seed"] + 7
    elif how == "no-model":
        del r["model"]
    elif how == "model-sha-wrong":
        r["model"]["sha256"] = "0" * 64
    elif how == "model-unknown":  # (a record of an unknown name with known weights replays)
        r["request"]["model"] = r["model"]["name"] = "no-such-model"
        r["model"]["sha256"] = "1" * 64
    elif how == "engine-unknown":
        r["engine"] = "banjo-9000"
    elif how == "engine-number":
        r["engine"] = 7
    elif how == "outputs-list":
        r["outputs"] = ["music.mid"]
    elif how == "outputs-string":
        r["outputs"] = "music.mid"
    elif how == "no-outputs":
        del r["outputs"]
    elif how == "no-request":
        del r["request"]
    elif how == "no-output":
        del r["output"]
    elif how == "no-plan":
        del r["plan"]
    elif how == "request-list":
        r["request"] = [1, 2]
    elif how == "request-unknown-key":
        r["request"]["banjo"] = 1
    elif how == "bars-huge":
        r["request"]["bars"] = 2**70
    elif how == "bars-negative":
        r["request"]["bars"] = -3
    elif how == "formats-unknown":
        r["output"]["formats"] = ["mid", "exe"]
    elif how == "formats-string":
        r["output"]["formats"] = "mid"
    elif how == "bit-depth-7":
        r["output"]["bit_depth"] = 7
    elif how == "soundfont-gone":
        r["output"]["formats"] = ["wav"]
        r["output"]["soundfont"] = {"path": str(here / "gone.sf2"), "default": False}
    elif how in ("soundfont-sha-gone", "soundfont-sha-bad"):
        r["output"]["formats"] = ["wav"]
        sha = "ab" * 32 if how == "soundfont-sha-gone" else "not a sha256"
        r["output"]["soundfont"] = {
            "name": "Gone",
            "path": str(here / "gone.sf2"),
            "default": False,
            "sha256": sha,
        }
    elif how == "prompt-number":
        r["prompt"] = 12
    elif how == "prompt-huge":
        r["prompt"] = "a calm chorale " * 700_000
    elif how == "empty-object":
        r = {}
    elif how == "json-list":
        r = [r]
    elif how == "json-string":
        r = "generation"
    elif how == "json-number":
        r = 42
    elif how == "json-null":
        r = None
    else:
        raise ValueError(how)
    return r


RECORD_TAMPERING = (
    "seed-abc seed-2e70 seed-negative seed-float seeds-disagree plan-seed-disagrees no-model "
    "model-sha-wrong model-unknown engine-unknown engine-number outputs-list outputs-string "
    "no-outputs no-request no-output no-plan request-list request-unknown-key bars-huge "
    "bars-negative formats-unknown formats-string bit-depth-7 soundfont-gone soundfont-sha-gone "
    "soundfont-sha-bad prompt-number "
    "prompt-huge empty-object json-list json-string json-number json-null"
).split()

RAW_RECORDS = {
    "empty": b"",
    "not-json": b"this is not json {",
    "truncated-json": b'{"prompt": "a calm chorale", "request": {"bars": 2',
    "binary": bytes(range(256)) * 4,
    "utf16": '{"prompt": ""}'.encode("utf-16"),
    "nan-json": b'{"prompt": "", "seed": NaN, "request": {"seed": NaN}}',
}
