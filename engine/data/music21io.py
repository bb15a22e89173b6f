"""Direct music21 → symusic conversion (no MIDI round trip).

music21's MIDI export is slow (about 0.1-0.8 s a piece) and fails on some corpus files
(duplicate time signatures, badly formed repeats).  Reading the notes directly is ~20x
faster and never fails on those: each part becomes one track, ties are merged into single
notes, chords become simultaneous notes, grace notes are dropped and repeats are kept as
written (not expanded).
"""

from __future__ import annotations

from symusic import Note, Score, Tempo, TimeSignature, Track

from engine import names

TICKS_PER_QUARTER = names.TICKS_PER_QUARTER


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
