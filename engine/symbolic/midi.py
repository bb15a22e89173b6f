"""MIDI in and out, and music21 scores in: the one place that reads and writes MIDI.

- `read_midi`: a symusic Score from a path, bytes or a Score, with one-line refusals for
  files that are not MIDI or cannot be placed in time (`engine.errors.ScoreModelError`).
- `midi_bytes`: a Score as Standard MIDI File bytes (symusic's writer), the one serialiser;
  every file it writes states that it is AI-generated (a copyright notice, `engine.credit`).
- `score_from_music21`: a music21 Score/Part/Stream read note by note into a Score (no MIDI
  round trip: ~20x faster than music21's export and never fails on badly formed repeats;
  ties merged, chords as simultaneous notes, grace notes dropped, repeats as written).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from symusic import Note, Score, Tempo, TimeSignature, Track

from engine import names
from engine.credit import Credit
from engine.errors import ScoreModelError, one_line

TICKS_PER_QUARTER = names.TICKS_PER_QUARTER


MIDI_DEFAULT_METER = (4, 4)  # what a MIDI file without a time signature is in


def midi_bytes(score: Score, *, credit: Credit | None = None) -> bytes:
    """``score`` as Standard MIDI File bytes that state they are AI-generated.

    ``credit.statement`` (``Credit()`` when None) is a copyright notice (meta event FF 02) at
    tick 0 of the first track, before everything else there, where the MIDI standard puts it.
    symusic, and so ``read_midi`` and the tokenizer, ignores it: the notes, track names and
    tokens are those of the score, and writing a score read back from these bytes gives the
    same bytes.
    """
    credit = Credit() if credit is None else credit
    return with_copyright(bytes(score.dumps_midi()), credit.statement)


def with_program_changes(data: bytes, changes) -> bytes:
    """MIDI ``data`` with a program change for each (track, tick, program) of ``changes``:
    track ``track`` (0 = the first track holding notes) sounds as ``program`` from ``tick``
    on, on that track's channel. No changes: ``data`` itself.

    The tracks are those that hold channel messages (symusic writes a program change in every
    track of the score, one without notes too, so a silent part keeps its place); a change
    past a track's last event moves the track's end to it."""
    if not changes:
        return data
    import io

    import mido

    mid = mido.MidiFile(file=io.BytesIO(data))
    parts = [t for t in mid.tracks if any(hasattr(m, "channel") for m in t)]
    for track_index, tick, program in changes:
        track = parts[track_index]
        channel = next(m.channel for m in track if hasattr(m, "channel"))
        events, at = [], 0
        for m in track:  # absolute times
            at += m.time
            events.append([at, m])
        change = mido.Message("program_change", channel=channel, program=int(program))
        # after the events at earlier ticks and the note-offs at this tick, before note-ons
        pos = next(
            (
                i
                for i, (t, m) in enumerate(events)
                if t > tick
                or (t == tick and m.type == "note_on" and m.velocity > 0)
                or m.type == "end_of_track"
            ),
            len(events),
        )
        events.insert(pos, [tick, change])
        for e in events[pos + 1 :]:  # the end of the track, when it came before ``tick``
            e[0] = max(e[0], tick)
        track.clear()
        last = 0
        for t, m in events:
            track.append(m.copy(time=t - last))
            last = t
    out = io.BytesIO()
    mid.save(file=out)
    return out.getvalue()


def with_copyright(data: bytes, text: str) -> bytes:
    """MIDI ``data`` with a copyright notice ``text`` (ASCII) at tick 0 of its first track.

    A file without any track gets one holding the notice alone.
    """
    payload = text.encode("ascii")
    length = bytearray([len(payload) & 0x7F])  # the length as a variable-length quantity
    for shift in range(7, 28, 7):
        if len(payload) >> shift:
            length.insert(0, 0x80 | (len(payload) >> shift) & 0x7F)
    event = b"\x00\xff\x02" + bytes(length) + payload
    pos = 8 + int.from_bytes(data[4:8], "big")
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "big")
        if data[pos : pos + 4] == b"MTrk":
            head = data[pos : pos + 4] + (size + len(event)).to_bytes(4, "big")
            return data[:pos] + head + event + data[pos + 8 :]
        pos += 8 + size
    track = event + b"\x00\xff\x2f\x00"  # the notice, then end of track
    ntrks = (int.from_bytes(data[10:12], "big") + 1).to_bytes(2, "big")
    return data[:10] + ntrks + data[12:] + b"MTrk" + len(track).to_bytes(4, "big") + track


def source_name(source) -> str:
    """How a message names an input: its path as given, else what it is."""
    if isinstance(source, str | Path):
        return str(source)
    return "the score" if isinstance(source, Score) else "the MIDI data"


def read_midi(source: str | Path | Score | bytes) -> Score:
    """A symusic Score from a path, MIDI bytes or a Score; clear errors for bad files.

    A file is read by its content (a MIDI file starts with ``MThd``), whatever its name ends
    in. Every refusal names the file as it was given and says what is wrong with it: no
    notes (and why, when the file says), 0 ticks a beat, an impossible tempo, a note so far
    out (tick 2**31 and beyond, which MIDI readers wrap to negative times) or a file so long
    (over ``MAX_MIDI_HOURS``) that it cannot be music to work with.
    """
    if isinstance(source, Score):
        return source
    if isinstance(source, bytearray | memoryview):
        source = bytes(source)
    if not isinstance(source, str | Path | bytes):
        raise ScoreModelError(
            f"give a MIDI file path, MIDI bytes or a symusic Score, not {type(source).__name__}"
        )
    name = source_name(source)
    if isinstance(source, bytes):
        data = source
        if not data:
            raise ScoreModelError("the MIDI data is empty")
        if data[:4] != b"MThd":
            raise ScoreModelError("the data is not MIDI (it does not start with MThd)")
    else:
        path = Path(source)
        if path.is_dir():
            raise ScoreModelError(f"{name} is a folder, not a MIDI file")
        if not path.is_file():
            raise ScoreModelError(f"{name}: no such file")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ScoreModelError(f"cannot read {name}: {(e.strerror or str(e)).lower()}") from None
        if not data:
            raise ScoreModelError(f"{name}: the file is empty")
        if data[:4] != b"MThd":
            raise ScoreModelError(f"{name}: not a MIDI file (it does not start with MThd)")
    if len(data) >= 14 and data[12] & 0x80:
        raise ScoreModelError(
            f"{name} counts time in SMPTE frames, not ticks a beat, which is not read; save it "
            "again from a MIDI editor with a tempo and ticks per beat"
        )
    try:
        score = Score.from_midi(data)
    except Exception as e:  # symusic raises RuntimeError/ValueError on corrupt data
        raise ScoreModelError(f"{name}: corrupt MIDI file ({one_line(e)})") from None
    _check_timing(score, name, scan_midi(data))
    return score


MAX_MIDI_HOURS = 3.0
MAX_MIDI_TICK = 2**31 - 1  # symusic holds ticks as int32: later ones wrap to negative times


@dataclass
class MidiScan:
    """What the raw MIDI data says, in exact ticks (symusic's int32 ticks wrap at 2**31)."""

    tracks: int = 0  # MTrk chunks
    note_ons: int = 0  # note-ons with a velocity above 0
    silent_note_ons: int = 0  # note-ons with velocity 0 (MIDI's other spelling of note-off)
    last_onset: int = 0  # the latest tick a note starts at
    last_end: int = 0  # the latest tick a note stops at


def _vlq(data: bytes, i: int) -> tuple[int, int]:
    """(value, next index) of the variable-length quantity at ``data[i]`` (IndexError at end)."""
    value = 0
    for _ in range(4):
        b = data[i]
        i += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            break
    return value, i


def scan_midi(data: bytes) -> MidiScan:
    """The notes' exact ticks in ``data`` (a MIDI file symusic has read), as far as it parses."""
    scan = MidiScan()
    pos = 8 + int.from_bytes(data[4:8], "big")
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "big")
        chunk = data[pos + 8 : pos + 8 + size]
        pos += 8 + size
        if chunk_id != b"MTrk":
            continue
        scan.tracks += 1
        tick, i, status = 0, 0, 0
        try:
            while i < len(chunk):
                delta, i = _vlq(chunk, i)
                tick += delta
                b = chunk[i]
                if b == 0xFF:  # meta event: type, length, data
                    if chunk[i + 1] == 0x2F:
                        break
                    length, i = _vlq(chunk, i + 2)
                    i += length
                    continue
                if b in (0xF0, 0xF7):  # sysex: length, data
                    length, i = _vlq(chunk, i + 1)
                    i += length
                    continue
                if b & 0x80:
                    status = b
                    i += 1
                elif not status:
                    break  # data byte without a status: symusic decided what it means
                kind = status & 0xF0
                if kind in (0xC0, 0xD0):
                    i += 1
                    continue
                velocity = chunk[i + 1]  # (after the pitch)
                i += 2
                if kind == 0x90 and velocity > 0:
                    scan.note_ons += 1
                    scan.last_onset = max(scan.last_onset, tick)
                elif kind == 0x90 or kind == 0x80:
                    scan.silent_note_ons += kind == 0x90
                    scan.last_end = max(scan.last_end, tick)
        except IndexError:  # a track cut short: what was read stands
            pass
    scan.last_end = max(scan.last_end, scan.last_onset)
    return scan


def _bar_of(score: Score, tick: int) -> int:
    """The bar (from 1) that ``tick`` lies in, counted in the file's first time signature."""
    ts = score.time_signatures[0] if len(score.time_signatures) else None
    num, den = (int(ts.numerator), int(ts.denominator)) if ts is not None else MIDI_DEFAULT_METER
    bar_ticks = max(1, score.ticks_per_quarter) * 4 * max(num, 1) / max(den, 1)
    return int(tick // bar_ticks) + 1


def _check_timing(score: Score, name: str = "the MIDI file", scan: MidiScan | None = None):
    """Refuse a file whose notes cannot be placed in time: notes past tick 2**31, 0 ticks a
    beat, no notes, tempo 0 (or absurd tempi) and absurd lengths, before anything allocates
    for them. ``name`` is the file as the user gave it; ``scan`` what its raw data says."""
    if scan is not None and scan.last_end > MAX_MIDI_TICK:
        late = scan.last_onset > MAX_MIDI_TICK
        tick = scan.last_onset if late else scan.last_end
        what = "a note at" if late else "a note that lasts until"
        raise ScoreModelError(
            f"{name} has {what} bar {_bar_of(score, tick):,} (tick {tick:,}), far beyond the "
            f"{MAX_MIDI_HOURS:g}-hour limit and past the last tick MIDI readers hold "
            f"({MAX_MIDI_TICK:,}); fix or delete that note in a MIDI editor"
        )
    if score.ticks_per_quarter <= 0:
        raise ScoreModelError(
            f"{name} says its beat has 0 ticks (a broken header), so its notes have no place "
            "in time; save it again from a MIDI editor"
        )
    if score.note_num() == 0:
        why = ""
        if scan is not None and scan.tracks == 0:
            why = ": it holds a MIDI header and no tracks"
        elif scan is not None and scan.silent_note_ons and not scan.note_ons:
            n = scan.silent_note_ons
            what = f"its {n} note-ons all have" if n > 1 else "its one note-on has"
            why = f": {what} velocity 0, which MIDI reads as a note-off"
        raise ScoreModelError(f"{name} has no notes{why}; give a MIDI file with music in it")
    for t in score.tempos:
        qpm = float(t.qpm)
        if not math.isfinite(qpm) or not 1.0 <= qpm <= 1000.0:
            shown = f"{qpm:g} BPM" if math.isfinite(qpm) else f"{t.mspq} microseconds a beat"
            raise ScoreModelError(
                f"{name} sets an impossible tempo ({shown}); fix its tempo (1..1000 BPM) "
                "in a MIDI editor"
            )
    seconds = score.to("second").end()
    if not math.isfinite(seconds) or seconds > MAX_MIDI_HOURS * 3600:
        hours = seconds / 3600
        raise ScoreModelError(
            f"{name} lasts {hours:,.0f} hours (absurd tick values?): its music reaches bar "
            f"{_bar_of(score, score.end()):,}; the limit is {MAX_MIDI_HOURS:g} hours"
        )


def score_from_music21(s, *, tempo_bpm: float = 96.0, program: int = 0) -> Score:
    """A symusic Score (ticks, 480 per quarter) from a music21 Score, Part or Stream."""
    from music21 import meter, stream

    tpq = TICKS_PER_QUARTER
    score = Score(tpq)
    parts = list(s.parts) if isinstance(s, stream.Score) and s.parts else [s]
    for i, part in enumerate(parts):
        flat = part.flatten()
        track = Track(name=str(part.partName or part.id or f"Part {i + 1}"), program=program)
        open_ties: dict[int, Note] = {}
        for el in flat.notes:
            if el.duration.isGrace or el.quarterLength <= 0:
                continue
            start = round(float(el.offset) * tpq)
            dur = max(1, round(float(el.quarterLength) * tpq))
            pitches = [p.midi for p in el.pitches]
            tie = el.tie.type if el.tie is not None else None
            for pitch in pitches:
                prev = open_ties.get(pitch)
                if (
                    tie in ("stop", "continue")
                    and prev is not None
                    and (prev.time + prev.duration == start)
                ):
                    prev.duration += dur
                    if tie == "stop":
                        del open_ties[pitch]
                    continue
                note = Note(start, dur, pitch, 90)
                track.notes.append(note)
                if tie in ("start", "continue"):
                    open_ties[pitch] = track.notes[-1]
                else:
                    open_ties.pop(pitch, None)
        if len(track.notes):
            score.tracks.append(track)
        if i == 0:
            for ts in flat.getElementsByClass(meter.TimeSignature):
                score.time_signatures.append(
                    TimeSignature(round(float(ts.offset) * tpq), ts.numerator, ts.denominator)
                )
    if not len(score.time_signatures):
        score.time_signatures.append(TimeSignature(0, 4, 4))
    score.tempos.append(Tempo(0, float(tempo_bpm)))
    return score
