"""symusic Score → music21 Score → MusicXML, for MuseScore, Dorico, Sibelius, Finale...

Every track becomes one part: its General MIDI program picks the instrument, its name the
part name.  Onsets and ends are snapped to a 1/8-quarter grid (``GRID_PER_QUARTER``, the
tokenizer's ``POSITIONS_PER_BEAT``), so every duration is a plain or dotted note value, or a
few of them tied: no tuplets are ever needed.  Notes that start and end together become a
chord; notes that overlap otherwise go to a second (third...) voice.  Gaps become rests;
music21's ``makeNotation`` then cuts measures, ties notes over barlines, spells accidentals
and beams.

>>> write_musicxml(piece.score, "chorale.musicxml", title="Chorale in G")
"""

from __future__ import annotations

import re
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from engine.atomic import write_bytes_atomic
from engine.credit import Credit
from engine.errors import UserError
from engine.symbolic.tokenizer import POSITIONS_PER_BEAT

if TYPE_CHECKING:
    import music21
    import symusic

GRID_PER_QUARTER = POSITIONS_PER_BEAT  # grid steps per quarter note
DEFAULT_TITLE = "Untitled"
MUSICXML_SUFFIXES = (".musicxml", ".xml")
# The credit at the foot of page 1, in tenths from the page's bottom left: centred on music21's
# default page (A4, 40 tenths = 7 mm, so 1200 x 1697 tenths), in the bottom margin.
CREDIT_POSITION = (600, 60)
CREDIT_FONT_SIZE = 8
TITLE_POSITION = (600, 1620)  # the title, centred at the top of page 1
TITLE_FONT_SIZE = 22


class NotationError(UserError, ValueError):
    """A user-facing problem turning a score into notation."""


def _grid(ticks: int, tpq: int) -> Fraction:
    """Ticks → quarter lengths on the 1/GRID_PER_QUARTER grid."""
    return Fraction(round(ticks * GRID_PER_QUARTER / tpq), GRID_PER_QUARTER)


def _events(track, tpq: int) -> list[tuple[Fraction, Fraction, list[int]]]:
    """(offset, quarter length, pitches) chords of one track, sorted, on the grid.

    The same pitch struck twice at once is kept once (the longer); a note still sounding when
    the same pitch starts again is cut there, as a MIDI synthesizer cuts it.
    """
    step = Fraction(1, GRID_PER_QUARTER)
    ends: dict[tuple[int, Fraction], Fraction] = {}
    for n in track.notes:
        start = _grid(n.time, tpq)
        end = max(_grid(n.time + n.duration, tpq), start + step)
        key = (int(n.pitch), start)
        ends[key] = max(end, ends.get(key, end))
    groups: dict[tuple[Fraction, Fraction], list[int]] = defaultdict(list)
    keys = sorted(ends)
    for i, (pitch, start) in enumerate(keys):
        end = ends[(pitch, start)]
        if i + 1 < len(keys) and keys[i + 1][0] == pitch:
            end = min(end, keys[i + 1][1])
        groups[(start, end - start)].append(pitch)
    return sorted((start, ql, sorted(pitches)) for (start, ql), pitches in groups.items())


def _voices(events) -> list[list[tuple[Fraction, Fraction, list[int]]]]:
    """Split events into voices with no overlaps (first fit, in onset order)."""
    voices: list[list] = []
    ends: list[Fraction] = []
    for ev in events:
        start, ql, _ = ev
        for i, end in enumerate(ends):
            if end <= start:
                voices[i].append(ev)
                ends[i] = start + ql
                break
        else:
            voices.append([ev])
            ends.append(start + ql)
    return voices


def _bar_end(end: Fraction, meters: list[tuple[Fraction, int, int]]) -> Fraction:
    """The end of the bar in which ``end`` falls (``end`` itself if it is a barline)."""
    if end <= 0:
        num, den = meters[0][1:] if meters else (4, 4)
        return Fraction(4 * num, den)
    bar_start = Fraction(0)
    bar_len = Fraction(4)
    for i, (offset, num, den) in enumerate(meters):
        bar_start, bar_len = offset, Fraction(4 * num, den)
        nxt = meters[i + 1][0] if i + 1 < len(meters) else None
        if nxt is None or end <= nxt:
            break
    bars = -((bar_start - end) // bar_len)  # ceiling
    return bar_start + max(bars, 1) * bar_len


def _filled(voice, end: Fraction, stream_cls, *, hide_rests: bool = False):
    """A music21 stream of the voice's chords with rests in every gap, up to ``end``.

    ``hide_rests``: the rests are not printed (for second and later voices, which are silent
    most of the time).
    """
    from music21 import chord, note

    def rest(ql):
        r = note.Rest(quarterLength=ql)
        r.style.hideObjectOnPrint = hide_rests
        return r

    s = stream_cls()
    pos = Fraction(0)
    for start, ql, pitches in voice:
        if start > pos:
            s.insert(pos, rest(start - pos))
        el = note.Note(pitches[0]) if len(pitches) == 1 else chord.Chord(pitches)
        for p in el.pitches:  # a MIDI number spells B as "B natural": makeNotation would
            if p.accidental is not None and p.accidental.alter == 0:  # print every natural
                p.accidental = None  # the key signature and the bar do not call for
        el.quarterLength = ql
        s.insert(start, el)
        pos = start + ql
    if end > pos:
        s.insert(pos, rest(end - pos))
    return s


SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "D-", "D", "E-", "E", "F", "G-", "G", "A-", "A", "B-", "B")


def _key_names(sharps: int, mode: str) -> list[str]:
    """Pitch class -> how it is spelled in the key with ``sharps`` sharps (negative: flats):
    the scale's own names, the other pitch classes as sharps in sharp keys, else flats."""
    from music21 import key

    names = list(SHARP_NAMES if sharps > 0 else FLAT_NAMES)
    for p in key.KeySignature(sharps).asKey(mode).pitches:
        names[p.pitchClass] = p.name
    return names


def _spell(part, keys: list[tuple[Fraction, tuple[int, str]]]) -> None:
    """Spell every note as its key does (D sharp in E major, A flat in E flat major), not as
    a MIDI number is spelled by default (E flat, G sharp), so that only notes outside the key
    signature print accidentals."""
    from music21 import pitch

    if not keys:
        return
    spellings = [(offset, _key_names(sharps, mode)) for offset, (sharps, mode) in keys]
    for el in part.recurse().notes:
        at = el.getOffsetInHierarchy(part)
        names = next((n for o, n in reversed(spellings) if o <= at), spellings[0][1])
        for i, p in enumerate(el.pitches):
            name = names[p.pitchClass]
            if p.name == name:
                continue
            q = pitch.Pitch(name)
            q.octave = p.midi // 12 - 1
            q.octave += (p.midi - q.midi) // 12  # B# and C- sit across an octave line
            if q.accidental is not None and q.accidental.alter == 0:
                q.accidental = None
            if hasattr(el, "notes"):  # a chord
                el.notes[i].pitch = q
            else:
                el.pitch = q


def _instrument(program: int, is_drum: bool):
    """The music21 instrument of a General MIDI program (a plain one named Drums for drums)."""
    from music21 import instrument

    if is_drum:
        inst = instrument.Instrument()
        inst.instrumentName = "Drums"
        inst.midiChannel = 9
    else:
        try:
            inst = instrument.instrumentFromMidiProgram(int(program))
        except Exception:  # music21 has no class for a few programs
            inst = instrument.Instrument()
            inst.midiProgram = int(program)
    return inst


def _tidy_measures(part) -> None:
    """Cut complex durations into tied notes, drop silent extra voices, number voices from 1.

    music21's MusicXML writer splits a complex duration (5/8 of a quarter...) itself but
    forgets the ties when it does, so the split is done here.  A second voice that only rests
    in a bar is removed from that bar: it would print a hidden whole-bar rest, and music21's
    reader then stretches the first voice's whole rest to the full bar.
    """
    from music21 import stream

    part.splitAtDurations(recurse=True)
    for m in part.getElementsByClass(stream.Measure):
        voices = list(m.voices)
        for v in voices[1:]:
            if not v.notes:
                m.remove(v)
        m.flattenUnnecessaryVoices(inPlace=True)
        for j, v in enumerate(m.voices):
            v.id = str(j + 1)  # makeMeasures numbers voices from 0, MusicXML from 1


def score_to_music21(
    score: symusic.Score,
    *,
    title: str | None = None,
    part_names: list[str] | None = None,
) -> music21.stream.Score:
    """A music21 Score with measures, ties, rests, key, meter and tempo from a symusic Score.

    ``part_names`` (one per track) overrides the tracks' names; unnamed tracks are named
    after their instrument.  Markers become rehearsal marks.
    """
    from music21 import clef, expressions, key, metadata, meter, stream, tempo

    if type(score).__name__ != "ScoreTick" and hasattr(score, "to"):
        score = score.to("tick")
    tracks = list(score.tracks)
    if not tracks:
        raise NotationError("the score has no tracks, so there is nothing to write as notation")
    if part_names is not None and len(part_names) != len(tracks):
        raise NotationError(
            f"{len(part_names)} part names for {len(tracks)} tracks; give one name per track"
        )
    tpq = int(score.ticks_per_quarter)

    def changes(items):
        """[(offset, value)] sorted, the last given per offset, repeats of a value dropped."""
        at = {}
        for time, value in items:
            at[_grid(time, tpq)] = value
        out = []
        for offset, value in sorted(at.items()):
            if not out or out[-1][1] != value:
                out.append((offset, value))
        return out

    meters = [
        (o, *v)
        for o, v in changes(
            (ts.time, (ts.numerator, ts.denominator)) for ts in score.time_signatures
        )
    ]
    if not meters or meters[0][0] > 0:
        meters.insert(0, (Fraction(0), 4, 4))
    for _, num, den in meters:
        if num <= 0 or den <= 0 or den & (den - 1):
            raise NotationError(f"time signature {num}/{den} cannot be written; fix the MIDI file")
    events = [_events(t, tpq) for t in tracks]
    last = max((s + q for evs in events for s, q, _ in evs), default=Fraction(0))
    end = _bar_end(last, meters)

    keys = changes(
        (k.time, (int(k.key), "minor" if int(k.tonality) else "major"))
        for k in score.key_signatures
    )
    for _, (sharps, _mode) in keys:
        if not -7 <= sharps <= 7:
            raise NotationError(f"a key signature of {sharps} sharps cannot be written")
    tempos = changes((t.time, round(float(t.qpm), 2)) for t in score.tempos)
    markers = [(_grid(m.time, tpq), str(m.text)) for m in getattr(score, "markers", [])]

    sc = stream.Score()
    sc.metadata = metadata.Metadata()
    sc.metadata.title = title or DEFAULT_TITLE
    sc.metadata.composer = ""  # otherwise music21 signs the score "Music21"
    for i, (track, evs) in enumerate(zip(tracks, events, strict=True)):
        inst = _instrument(track.program, track.is_drum)
        name = (part_names[i] if part_names else None) or str(track.name or "")
        name = name.strip() or inst.instrumentName or f"Part {i + 1}"
        inst.partName = name
        voices = _voices(evs) or [[]]
        if len(voices) == 1:
            part = _filled(voices[0], end, stream.Part)
        else:
            part = stream.Part()
            for j, v in enumerate(voices):
                part.insert(0, _filled(v, end, stream.Voice, hide_rests=j > 0))
        part.partName = name
        inst.partId = f"P{i + 1}"  # fixed ids (music21 picks random ones): same score, same file
        inst.instrumentId = f"P{i + 1}-I1"
        part.insert(0, inst)
        for offset, num, den in meters:
            part.insert(offset, meter.TimeSignature(f"{num}/{den}"))
        for offset, (sharps, mode) in keys:
            part.insert(offset, key.KeySignature(sharps).asKey(mode))
        if i == 0:
            for offset, qpm in tempos:
                number = int(qpm) if qpm == int(qpm) else qpm
                part.insert(offset, tempo.MetronomeMark(number=number, referent=1.0))
            for offset, text in markers:
                part.insert(offset, expressions.RehearsalMark(text))
        _spell(part, keys)
        part.insert(0, clef.bestClef(part, recurse=True))  # once: bestClef=True repeats it per bar
        part.makeNotation(inPlace=True)
        _tidy_measures(part)
        sc.insert(0, part)
    return sc


def write_musicxml(
    score: symusic.Score,
    path: str | Path,
    *,
    title: str | None = None,
    credit: Credit | None = None,
) -> Path:
    """Write ``score`` as uncompressed MusicXML (``.musicxml`` or ``.xml``) atomically.

    The file states that it is AI-generated: ``credit.statement`` (``Credit()`` when None) in
    ``<identification><rights>``, ``credit.software`` in ``<encoding><software>`` (after
    music21's), and the statement again as a ``<credit>`` of type ``rights`` at the foot of
    page 1, which notation programs print.
    """
    from music21 import metadata, text
    from music21.musicxml import m21ToXml

    path = Path(path).expanduser()
    if path.suffix.lower() not in MUSICXML_SUFFIXES:
        raise NotationError(
            f"{path.name}: MusicXML files end in {' or '.join(MUSICXML_SUFFIXES)}; rename it"
        )
    if not path.parent.is_dir():
        raise NotationError(f"folder {path.parent} does not exist; create it first")
    credit = Credit() if credit is None else credit
    sc = score_to_music21(score, title=title or path.stem)
    sc.metadata.copyright = metadata.Copyright(credit.statement)
    sc.metadata.add("software", credit.software)
    # With any credit, engravers (Verovio, MuseScore) print the credits instead of the title:
    # so the title is a credit too, at the top of page 1.
    head = text.TextBox(title or path.stem, *TITLE_POSITION)
    head.style.justify = "center"
    head.style.alignVertical = "top"
    head.style.fontSize = TITLE_FONT_SIZE
    sc.insert(0, head)
    foot = text.TextBox(credit.statement, *CREDIT_POSITION)
    foot.style.justify = "center"
    foot.style.alignVertical = "bottom"
    foot.style.fontSize = CREDIT_FONT_SIZE
    sc.insert(0, foot)
    try:
        data = m21ToXml.GeneralObjectExporter(sc).parse()
    except Exception as e:  # music21 raises many kinds; any of them means this score failed
        raise NotationError(f"music21 could not write this score as MusicXML ({e})") from e
    # music21 stamps today's date; without it the same score always gives the same bytes.
    data = re.sub(rb"\s*<encoding-date>[^<]*</encoding-date>", b"", data, count=1)
    # music21 cannot type a credit: the foot says what it is (MusicXML 3.0's credit-type).
    statement = credit.statement.encode()

    def typed(m: re.Match) -> bytes:
        kind = b"rights" if statement in m[4] else b"title"
        return m[1] + m[2] + b"<credit-type>" + kind + b"</credit-type>" + m[2] + m[3] + m[4]

    data = re.sub(rb"(<credit page=\"1\">)(\s*)(<credit-words )([^>]*>[^<]*)", typed, data, count=2)
    return write_bytes_atomic(path, data)
