"""Workflows on music the user brings: harmonize a melody, restyle a piece, continue audio.

>>> from engine import workflows
>>> comp = workflows.harmonize("tune.wav", style="chorale", voices=4, seed=1)
>>> comp.save("tune-chorale")                        # music.wav/.mid/.musicxml + generation.json
>>> comp = workflows.restyle("piece.mid", style="celtic", keep_rhythm=True)
>>> comp = workflows.continue_audio("clip.wav", bars=4)

Each call returns an `engine.pipelines.compose.Composition`, written like ``generate`` writes.

What is given is kept. The model hears a copy of the user's music snapped to its grid
(eighths of a beat); the result holds the user's own notes, each one's onset, length,
velocity and pitch unchanged, at the input's ticks per quarter, with the input's tempo map,
time and key signatures and track names and programs. New parts are scaled from the
model's grid onto that time base; their velocity is the median of the user's notes.

How the melody is treated (``harmonize``):

* audio is transcribed with Basic Pitch (``quantize=True``: beats, metre and tempo found);
  the transcription is put back on the recording's time base (`lead_in`), so its first
  note sounds when it was sung;
* the model hears the melody snapped to the tokenizer's grid (eight steps a beat) and made
  monophonic (at each onset the highest note is kept, and every note is cut where the next
  one starts). A polyphonic input (chords, several parts) is accepted: its top line (the
  highest note starting on each grid step) is harmonized and ``warnings`` says how many
  notes were left out;
* the result's first track is the user's top line, note for note, unchanged
  (`Melody.score`; the model's copy is `Melody.grid`).

``restyle`` keeps the melody track exactly (as above) and writes every other part again;
with ``keep_rhythm`` each old note of those parts keeps its onset, length and velocity
exactly and only its pitch changes. Tracks the model cannot read (drums) are kept as they
are. ``continue_audio`` keeps the transcription's notes exactly (its tick 0 is a bar line of
the beat grid) and adds the new bars after them.

Pieces longer than the model's window are processed in sections of whole bars that fit
(each section hears only itself, and its key is found in it); the sections are joined in
time. ``restyle`` and ``harmonize`` share this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine import names
from engine.errors import UserError
from engine.progress import Progress, ProgressFn
from engine.seeds import derive_seed
from engine.symbolic.model_versions import weights_sha256

AUDIO_SUFFIXES = names.AUDIO_SUFFIXES
DEFAULT_STYLE = names.WORKFLOW_DEFAULT_STYLE
DEFAULT_VOICES = 4
# Lower parts written under a melody, by total number of voices.
LOWER_PARTS = {2: ("bass",), 3: ("alto", "bass"), 4: ("alto", "tenor", "bass")}
AUDIO_MELODY_PROGRAM = names.AUDIO_MELODY_PROGRAM
# Key bonus (see score_api.DEFAULT_KEY_STRENGTH) when the user's music sets the key: firmer than
# the default 1.5, which let about one harmonization in six drift to the subdominant's key.
WORKFLOW_KEY_STRENGTH = names.WORKFLOW_KEY_STRENGTH
SECTION_FILL = 0.7  # share of the model's window one section may use (room for busy parts)
SECTION_OVERHEAD_TOKENS = 24  # BOS, conditions, track headers, EOS
# Part name for a register index (engine.symbolic.tokenizer.REGISTER_NAMES order).
LEAD_IN_MIN_S = 0.03  # a sung melody starting this soon needs no silent lead-in
MAX_LEAD_IN_BPM = (
    1000.0  # tempo limits of a lead-in (as engine.symbolic.score_api reads MIDI files)
)
MIN_LEAD_IN_BPM = 1.0
REGISTER_PARTS = names.REGISTER_NAMES


class WorkflowError(UserError, ValueError):
    """A request a workflow cannot carry out; the message says what to change."""


@dataclass
class Melody:
    """A melody to harmonize: the user's notes, and the monophonic copy the model hears.

    ``score`` is the melody as the result keeps it: the user's own notes (the top line of a
    polyphonic input), each note's onset, length, velocity and pitch unchanged, at the
    input's ticks per quarter (audio: the transcription, on the time base of the recording).
    ``grid`` is what the model hears: the line snapped to the tokenizer's grid and made
    monophonic.
    """

    score: object  # symusic.Score, one track: the user's notes
    source: str  # "audio" or "midi"
    dropped_notes: int = 0  # notes left out to make the line monophonic
    warnings: list[str] = field(default_factory=list)
    grid: object = None  # symusic.Score, one track, on the tokenizer's grid


@dataclass
class LeadIn:
    """Where the model's tick 0 (a bar line) lies on the output's time base.

    ``shift`` output ticks are added to every model time; the output's first ``anchor``
    ticks last ``seconds`` (a tempo of their own), so that the music sounds when it was
    played. ``pickup`` (beats, 0 if none) is a short first bar when the bar line before the
    first note lies before the recording starts.
    """

    shift: int = 0
    anchor: int = 0
    seconds: float = 0.0
    pickup: int = 0


# ---- input ---------------------------------------------------------------------------------
def is_audio(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def read_input(source, *, quantize_audio: bool = True):
    """A symusic Score from a MIDI file, an audio file (transcribed) or a Score; (score, kind).

    A transcription's tick 0 is a bar line of the beat grid (see `engine.pipelines.transcribe`);
    `read_input_timed` also says where that lies in the recording.
    """
    score, kind, _ = read_input_timed(source, quantize_audio=quantize_audio)
    return score, kind


def read_input_timed(source, *, quantize_audio: bool = True):
    """(score, kind, lead-in): as `read_input`, plus the `LeadIn` that puts a quantized
    transcription back where it was played in the recording (None for MIDI)."""
    from symusic import Score

    from engine.symbolic.score_api import read_midi

    if isinstance(source, Score):
        return read_midi(source), "midi", None
    if not isinstance(source, str | Path):
        raise WorkflowError(
            f"give a MIDI or audio file path or a symusic Score, not {type(source).__name__}"
        )
    path = Path(source)
    if is_audio(path):
        from engine.pipelines.transcribe import transcribe

        if not path.is_file():
            raise WorkflowError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise WorkflowError(f"{path}: the file is empty")
        tr = transcribe(path, quantize=quantize_audio)
        if not tr.notes:
            raise WorkflowError(f"{path}: no notes were heard in the audio")
        score = tr.to_score()
        return score, "audio", lead_in(score, tr.quantization)
    return read_midi(path), "midi", None


def _beat_time(q, position: float) -> float:
    """Seconds at beat ``position`` of a quantization's beat grid (inverse of its
    ``beat_position``: linear between the beats found, the median period outside)."""
    import numpy as np

    from engine.pipelines.transcribe import beat_period

    beats = np.asarray(q.beats_s, dtype=np.float64)
    if beats.shape[0] < 2:
        return position * 60.0 / float(q.tempo_bpm)
    period = beat_period(beats)
    if position < 0:
        return float(beats[0] + position * period)
    if position > beats.shape[0] - 1:
        return float(beats[-1] + (position - (beats.shape[0] - 1)) * period)
    return float(np.interp(position, np.arange(beats.shape[0], dtype=np.float64), beats))


def lead_in(score, q) -> LeadIn | None:
    """The `LeadIn` that makes a quantized transcription's first note sound when it was sung.

    The transcriber writes tick 0 at a bar line of its beat grid (``q.origin_beat``), which
    is not the start of the recording: left so, a melody sung 0.5 s in would start at 0 s,
    or a whole bar late when the bar line lies before the recording. Here the beat ``a`` at
    or before the first note is placed at the time it was sung: the ticks before it get a
    tempo of their own (whole empty bars added, chosen to keep that tempo nearest the
    song's); when that beat comes right at the start, a short first bar (a pickup of
    the beats before it) takes the place of the silence.
    """
    import math

    if q is None or not score.note_num():
        return None
    tpq = score.ticks_per_quarter
    first = min(int(t.notes[0].time) for t in score.tracks if len(t.notes))
    a = first // tpq  # beats from the bar line at tick 0 to the beat at or before the note
    n = int(q.numerator)
    t_a = _beat_time(q, float(q.origin_beat) + a)
    tempo = float(q.tempo_bpm)
    if t_a >= LEAD_IN_MIN_S:
        best = None
        for k in range(0, 64):
            beats = a + k * n
            if beats <= 0:
                continue
            bpm = beats * 60.0 / t_a
            if MIN_LEAD_IN_BPM <= bpm <= MAX_LEAD_IN_BPM:
                cost = abs(math.log(bpm / tempo))
                if best is None or cost < best[0]:
                    best = (cost, k, beats)
        if best is not None:
            _, k, beats = best
            return LeadIn(shift=k * n * tpq, anchor=beats * tpq, seconds=t_a)
    if a % n == 0:
        return LeadIn()  # the first note is in the first beat of a bar: nothing to move
    return LeadIn(shift=-a * tpq, pickup=n - a % n)


def place_lead_in(score, lead: LeadIn | None):
    """``score`` (tick 0: the model's bar line) moved onto the recording's time base."""
    from symusic import Tempo, TimeSignature

    if lead is None or (lead.shift == 0 and lead.anchor == 0 and lead.pickup == 0):
        return score
    out = score.copy()
    if lead.shift:
        for t in out.tracks:
            t.shift_time(lead.shift, inplace=True)
            kept = [b for b in t.pitch_bends if b.time >= 0]
            if len(kept) != len(t.pitch_bends):
                t.pitch_bends = kept
        for events in (out.tempos, out.time_signatures, out.key_signatures, out.markers):
            for e in events:
                e.time = max(0, e.time + lead.shift)
        for events in (out.tempos, out.time_signatures, out.key_signatures):
            if len(events) and events[0].time > 0:
                first = events[0].copy()
                first.time = 0
                events.insert(0, first)
    tempo = float(score.tempos[0].qpm) if len(score.tempos) else 120.0
    ts = score.time_signatures[0] if len(score.time_signatures) else TimeSignature(0, 4, 4)
    if lead.anchor:
        lead_bpm = (lead.anchor / score.ticks_per_quarter) * 60.0 / lead.seconds
        later = [t for t in out.tempos if t.time > lead.anchor]
        out.tempos = [Tempo(0, lead_bpm), Tempo(lead.anchor, tempo), *later]
    if lead.pickup:
        later = [t for t in out.time_signatures if t.time > 0]
        bar_line = lead.pickup * score.ticks_per_quarter
        out.time_signatures = [
            TimeSignature(0, lead.pickup, 4),
            TimeSignature(bar_line, ts.numerator, ts.denominator),
            *[t for t in later if t.time > bar_line],
        ]
    return out


def snap(score, tokenizer, name: str = "the input"):
    """``score`` as the score model keeps it: encoded and decoded by its tokenizer.

    Times and durations land on the tokenizer's grid; velocities are the decoder's. ``name``
    is how an error names the input (its path as the user gave it).
    """
    from engine.symbolic.tokenizer import TokenizerError

    try:
        piece = tokenizer.encode_score(score, name)
    except TokenizerError as e:
        raise WorkflowError(str(e)) from None
    tempo = float(score.tempos[0].qpm) if len(score.tempos) else None
    ids: list[int] = []
    for t in piece.tracks:
        ids += [tokenizer.track_start_id, tokenizer.program_id(t.program)]
        for bar in t.bars:
            ids += bar
        ids.append(tokenizer.track_end_id)
    out = tokenizer.decode(ids, tempo_bpm=tempo)
    for t_out, t in zip(out.tracks, piece.tracks, strict=True):
        t_out.name = t.name
    return out


def top_line(score, track: int | None = None):
    """(one-track Score, notes left out): the highest note at each onset, overlaps cut.

    ``track``: index among the tracks with pitched notes (None: all of them together).
    """
    from symusic import Note, Score, Track

    tracks = [t for t in score.tracks if not t.is_drum and t.note_num() > 0]
    if not tracks:
        raise WorkflowError("the input has no pitched notes")
    if track is not None:
        if not 0 <= track < len(tracks):
            raise WorkflowError(
                f"track {track} does not exist; the input has tracks 0..{len(tracks) - 1}"
            )
        tracks = [tracks[track]]
    notes = sorted(
        ((n.time, n.duration, n.pitch, n.velocity) for t in tracks for n in t.notes),
        key=lambda n: (n[0], -n[2]),
    )
    line: list[list[int]] = []
    for time, dur, pitch, vel in notes:
        if line and line[-1][0] == time:
            continue  # a lower note of the same onset
        if line and line[-1][0] + line[-1][1] > time:
            line[-1][1] = time - line[-1][0]  # cut the previous note where this one starts
        line.append([time, max(1, dur), pitch, vel])
    out = Score(score.ticks_per_quarter)
    out.tempos = score.tempos
    out.time_signatures = score.time_signatures
    out.key_signatures = score.key_signatures
    main = max(tracks, key=lambda t: t.note_num())
    t = Track(name=main.name or "Melody", program=main.program)
    for time, dur, pitch, vel in line:
        t.notes.append(Note(time, dur, pitch, vel))
    out.tracks.append(t)
    return out, len(notes) - len(line)


def clean_melody(
    score,
    tokenizer,
    *,
    source: str = "midi",
    track: int | None = None,
    name: str = "the input",
) -> Melody:
    """The melody to harmonize (see the module docstring): the user's notes of its top line
    (``score``) and the monophonic copy on the tokenizer's grid that the model hears
    (``grid``). ``name``: how an error names the input."""
    tracks = [t for t in score.tracks if not t.is_drum and t.note_num() > 0]
    line, dropped = top_line(snap(score, tokenizer, name), track)
    line = snap(line, tokenizer)
    line, more = top_line(line)  # grid rounding may have put two onsets together
    line = snap(line, tokenizer)
    dropped += more
    warnings = []
    if track is None and len(tracks) > 1:
        warnings.append(f"the input has {len(tracks)} parts; harmonizing its top line")
    if dropped and source == "midi":
        warnings.append(
            f"the melody has chords or overlaps; kept its top line ({dropped} notes left out)"
        )
    elif dropped:
        warnings.append(
            f"the transcription had overlapping notes; kept the top line ({dropped} left out)"
        )
    return Melody(user_line(score, track), source, dropped, warnings, grid=line)


def user_line(score, track: int | None = None):
    """The user's own notes of the top line, unchanged: one track at ``score``'s resolution.

    A note is in the line when it is the highest of the notes that start on the same step
    of the tokenizer's grid (eighths of a beat); its onset, length, velocity and pitch are
    kept as they are. Tempo map, time and key signatures and markers come along.
    """
    from symusic import Score, Track

    from engine.symbolic.tokenizer import POSITIONS_PER_BEAT

    tracks = [t for t in score.tracks if not t.is_drum and t.note_num() > 0]
    if not tracks:
        raise WorkflowError("the input has no pitched notes")
    if track is not None:
        if not 0 <= track < len(tracks):
            raise WorkflowError(
                f"track {track} does not exist; the input has tracks 0..{len(tracks) - 1}"
            )
        tracks = [tracks[track]]
    tpq = score.ticks_per_quarter
    best: dict[int, object] = {}
    for t in tracks:
        for n in t.notes:
            step = round(n.time * POSITIONS_PER_BEAT / tpq)
            if step not in best or n.pitch > best[step].pitch:
                best[step] = n
    out = Score(tpq)
    out.tempos = score.tempos
    out.time_signatures = score.time_signatures
    out.key_signatures = score.key_signatures
    out.markers = score.markers
    main = max(tracks, key=lambda t: t.note_num())
    line = Track(name=main.name, program=main.program)
    for n in sorted(best.values(), key=lambda n: (n.time, n.pitch)):
        line.notes.append(n.copy())
    out.tracks.append(line)
    return out


def exact_notes(track) -> list[tuple[int, int, int, int]]:
    """(time, duration, pitch, velocity) of a track's notes, sorted: "the user's notes"."""
    return sorted((n.time, n.duration, n.pitch, n.velocity) for n in track.notes)


def notes_of(track) -> list[tuple[int, int, int]]:
    """(time, duration, pitch) of a track's notes, in order: what "the same notes" means."""
    return sorted((n.time, n.duration, n.pitch) for n in track.notes)


# ---- writing parts in sections -------------------------------------------------------------
def _bar_ticks(score) -> int:
    ts = score.time_signatures[0] if len(score.time_signatures) else None
    num, den = (ts.numerator, ts.denominator) if ts is not None else (4, 4)
    return score.ticks_per_quarter * 4 * num // den


def _sections(sm, given, new_parts: int) -> list[tuple[int, int]]:
    """Bar ranges [start, end) of the given score, each small enough for the model's window."""
    piece = sm.tokenizer.encode_score(given)
    nbars = max(len(t.bars) for t in piece.tracks)
    per_bar = [sum(len(t.bars[b]) for t in piece.tracks) for b in range(nbars)]
    per_track = max(1, len(piece.tracks))
    budget = SECTION_FILL * sm.context - SECTION_OVERHEAD_TOKENS
    scale = (per_track + new_parts) / per_track  # new parts about as busy as the given ones
    out, start, used = [], 0, 0.0
    for b, n in enumerate(per_bar):
        cost = n * scale
        if cost > budget:
            raise WorkflowError(f"bar {b + 1} alone is too busy for the model's window")
        if used + cost > budget:
            out.append((start, b))
            start, used = b, 0.0
        used += cost
    out.append((start, nbars))
    return out


def _slice(score, start_tick: int, end_tick: int):
    """Notes starting in [start_tick, end_tick), moved to start at 0; same settings."""
    from symusic import Score, Track

    out = Score(score.ticks_per_quarter)
    out.tempos = score.tempos
    out.time_signatures = score.time_signatures
    for t in score.tracks:
        nt = Track(name=t.name, program=t.program, is_drum=t.is_drum)
        for n in t.notes:
            if start_tick <= n.time < end_tick:
                c = n.copy()
                c.time -= start_tick
                nt.notes.append(c)
        out.tracks.append(nt)
    return out


def add_parts(
    sm,
    given,
    parts: Sequence[str],
    *,
    programs: Sequence[int] | None,
    style: str | None,
    sampling: dict,
    progress: ProgressFn | None = None,
):
    """(given track, new tracks, score): ``parts`` written under the one-track ``given``.

    The new tracks come in the order of ``parts``; the given ones are returned as the model
    kept them (identical to ``snap(given)``). A section whose window fills up before its
    parts are complete is split in two and written again.
    """
    from symusic import Score, Track

    if sum(1 for t in given.tracks if t.note_num() > 0) != 1:
        raise ValueError("add_parts writes against exactly one given track")
    bar = _bar_ticks(given)
    queue = _sections(sm, given, len(parts))
    total, done = queue[-1][1], 0
    n_given = sum(1 for t in given.tracks if not t.is_drum and t.note_num() > 0)
    kept = [Track(name=t.name, program=t.program) for t in given.tracks if t.note_num() > 0]
    new = [Track(name=p.capitalize(), program=0) for p in parts]
    k = 0
    while queue:
        start, end = queue.pop(0)
        chunk = _slice(given, start * bar, end * bar)
        if sum(t.note_num() for t in chunk.tracks) == 0:
            done += end - start
            continue  # an empty section: rests in every part
        chunk.tracks = [t for t in chunk.tracks if t.note_num() > 0]
        result = sm.add_tracks(
            chunk,
            parts=list(parts),
            programs=programs,
            style=style,
            **{**sampling, "seed": derive_seed(sampling["seed"], "section", k)},
        )
        k += 1
        if result.finish_reason == "length":
            if end - start == 1:
                raise WorkflowError(
                    f"bar {start + 1} and {len(parts)} new parts do not fit the model's window; "
                    "ask for fewer voices"
                )
            mid = (start + end) // 2
            queue[:0] = [(start, mid), (mid, end)]
            continue
        # Sequence order (given tracks, then the new parts): decode the tokens again.
        ordered = sm.tokenizer.decode(result.tokens, tempo_bpm=result.settings["tempo_bpm"])
        tracks = list(ordered.tracks)
        if len(tracks) != len(chunk.tracks) + len(parts):
            raise WorkflowError("the model did not finish every part; ask for fewer voices")
        shift = start * bar
        for i, t in enumerate(tracks):
            dest = kept[i] if i < len(chunk.tracks) else new[i - len(chunk.tracks)]
            if i >= len(chunk.tracks):
                dest.program = t.program
            for n in t.notes:
                c = n.copy()
                c.time += shift
                dest.notes.append(c)
        done += end - start
        if progress:
            progress(Progress("parts", done, total))
    out = Score(sm.tokenizer.base.time_division)
    out.tempos = given.tempos
    out.time_signatures = given.time_signatures
    out.tracks = kept[:n_given] + new
    for t in out.tracks:
        t.notes.sort(key=lambda n: (n.time, n.pitch))
    return out.tracks[:n_given], new, out


# ---- the composition record --------------------------------------------------------------
def _composition(
    sm, score, *, workflow: str, style, request: dict, sampling: dict, names, key=None
):
    from symusic import KeySignature

    from engine.pipelines.compose import Composition, Part, Plan, model_name
    from engine.symbolic.score_api import first_onset, input_key, key_sharps, tempo_at
    from engine.symbolic.tokenizer import TONICS

    tonic, mode = input_key(score) if key is None else key  # the input's key, when given
    key = TONICS[tonic]
    if not len(score.key_signatures):  # the input's own key signatures are kept
        score.key_signatures = [KeySignature(0, key_sharps(key, mode), int(mode == "minor"))]
    for t, name in zip(score.tracks, names, strict=True):
        t.name = name
    first = first_onset(score)
    in_force = [t for t in score.time_signatures if t.time <= first]
    ts = (
        in_force[-1]
        if in_force
        else (score.time_signatures[0] if len(score.time_signatures) else None)
    )
    meter = f"{ts.numerator}/{ts.denominator}" if ts is not None else "4/4"
    tempo = tempo_at(score, first)
    bars = max(1, -(-score.end() // _bar_ticks(score)))
    parts = []
    for t in score.tracks:
        pitches = [n.pitch for n in t.notes] or [60]
        parts.append(Part(t.name, int(t.program), min(pitches), max(pitches)))
    plan = Plan(
        style=style,
        key=key,
        mode=mode,
        meter=meter,
        tempo_bpm=tempo,
        bars=int(bars),
        parts=parts,
        sections=[(workflow, int(bars))],
        temperature=sampling["temperature"],
        top_p=sampling["top_p"],
        key_strength=sampling["key_strength"],
        creativity=0.5,
        dynamics="mf",
        dynamics_shape=None,
        articulation=None,
        density=None,
        syncopation=None,
        contour=None,
        register=None,
        progression=None,
        moods=[],
        seed=sampling["seed"],
    )
    name = model_name(None, sm)
    return Composition(
        score=score,
        plan=plan,
        request={"workflow": workflow, **request, "model": name},
        parsed={},
        model_name=name,
        model_sha256=weights_sha256(Path(sm.path)),
        settings={},
    )


def _sampling(temperature, top_p, key_strength, seed, sm=None) -> dict:
    """The sampling settings, checked by the score model (a WorkflowError if out of range)."""
    from engine.symbolic import score_api as api

    sampling = {
        "temperature": api.DEFAULT_TEMPERATURE if temperature is None else temperature,
        "top_k": api.DEFAULT_TOP_K,
        "top_p": api.DEFAULT_TOP_P if top_p is None else top_p,
        "key_strength": WORKFLOW_KEY_STRENGTH if key_strength is None else key_strength,
        "seed": seed,
    }
    try:
        checked = api.check_sampling(**sampling) if sm is None else sm._sampling(**sampling)
    except api.ScoreModelError as e:
        raise WorkflowError(str(e)) from None
    return checked if sm is not None else sampling


def _check_style(sm, style) -> None:
    from engine.symbolic.score_api import ScoreModelError, check_conditions

    try:
        check_conditions(style)
    except ScoreModelError as e:
        raise WorkflowError(str(e)) from None


def _input_name(source) -> str:
    """How a message names an input: its path as the user gave it, else "the score"."""
    return str(source) if isinstance(source, str | Path) else "the score"


def _check_model(model) -> None:
    """The score model's name or folder found (not loaded): a wrong one fails before work."""
    from engine.symbolic import score_api as api

    if not isinstance(model, api.ScoreModel):
        try:
            api.resolve_model_path(model or api.DEFAULT_MODEL)
        except api.ScoreModelError as e:
            raise WorkflowError(str(e)) from None


def check_input(source, *, audio: bool = True):
    """The input checked without a model: a MIDI file read (`engine.symbolic.score_api.read_midi`:
    its Score is returned), an audio file read and checked as `engine.pipelines.transcribe` will
    (`engine.pipelines.transcribe.check_audio`; None is returned: it is transcribed later), a Score
    returned as it is. ``audio=False``: an audio file is refused (restyle)."""
    from symusic import Score

    from engine.symbolic.score_api import ScoreModelError, read_midi

    if isinstance(source, Score):
        return source
    if not isinstance(source, str | Path):
        raise WorkflowError(
            f"give a MIDI or audio file path or a symusic Score, not {type(source).__name__}"
        )
    if is_audio(source):
        if not audio:
            raise WorkflowError(
                f"{source} is audio; restyle needs a MIDI file with several parts (transcribe "
                "it first, or harmonize it)"
            )
        import warnings

        from engine.pipelines.transcribe import check_audio

        with warnings.catch_warnings():  # (what it warns about is warned when it is read)
            warnings.simplefilter("ignore")
            check_audio(source)
        return None
    try:
        return read_midi(source)
    except ScoreModelError as e:
        raise WorkflowError(str(e)) from None


def check_harmonize(
    melody,
    *,
    style: str = DEFAULT_STYLE,
    voices: int = DEFAULT_VOICES,
    program: int | None = None,
    model=None,
    temperature: float | None = None,
    top_p: float | None = None,
    key_strength: float | None = None,
    seed: int = 0,
):
    """Every cheap check of a `harmonize` call, before any model loads or any transcription
    runs: voices, program, sampling numbers, style, the model's name or folder (found, not
    loaded) and the input (`check_input`). Returns the MIDI input's Score (None for audio).
    A face calls it before loading the model: ``workflows.check_harmonize(path, style=...)``.
    """
    if isinstance(voices, bool) or voices not in LOWER_PARTS:
        raise WorkflowError(
            f"voices must be 2, 3 or 4 (the melody and 1 to 3 lower parts), not {voices}"
        )
    from engine.symbolic.score_api import is_int

    if program is not None and (not is_int(program) or not 0 <= program <= 127):
        raise WorkflowError(f"program {program!r} is not a General MIDI program (0..127)")
    _sampling(temperature, top_p, key_strength, seed)
    _check_style(None, style)
    _check_model(model)
    score = check_input(melody)
    if score is not None:
        _check_readable(score, _input_name(melody))
    return score


def _check_readable(score, name: str) -> list:
    """The tracks of ``score`` the model reads (not drums, pitches in its range); refused
    when there are none, in the words of `engine.symbolic.tokenizer.ScoreTokenizer.encode_score`."""
    from engine.symbolic.score_api import ScoreModelError, readable_tracks

    try:
        return readable_tracks(score, name)
    except ScoreModelError as e:
        raise WorkflowError(str(e)) from None


def check_restyle(
    source,
    *,
    style: str,
    melody_track: int | None = None,
    model=None,
    temperature: float | None = None,
    top_p: float | None = None,
    key_strength: float | None = None,
    seed: int = 0,
):
    """Every cheap check of a `restyle` call, before any model loads: sampling numbers,
    style, the model's name or folder, the input (a MIDI file, read: its Score is returned)
    and ``melody_track`` against the tracks the model reads."""
    _sampling(temperature, top_p, key_strength, seed)
    _check_style(None, style)
    if melody_track is not None and (
        isinstance(melody_track, bool) or not isinstance(melody_track, int)
    ):
        raise WorkflowError(f"melody_track must be a track number from 0, not {melody_track!r}")
    _check_model(model)
    score = check_input(source, audio=False)
    name = _input_name(source)
    readable = _check_readable(score, name)
    if len(readable) == 1:
        raise WorkflowError(f"{name} has one part only; use harmonize to add parts to a melody")
    if melody_track is not None and readable and not 0 <= melody_track < len(readable):
        raise WorkflowError(
            f"track {melody_track} does not exist; {name} has tracks 0..{len(readable) - 1}"
        )
    return score


def check_continue_audio(
    audio,
    *,
    bars: int | None = None,
    style: str | None = None,
    model=None,
    temperature: float | None = None,
    top_p: float | None = None,
    key_strength: float | None = None,
    seed: int = 0,
) -> None:
    """Every cheap check of a `continue_audio` call, before any model loads or any
    transcription runs: bars, sampling numbers, style, the model and the audio file."""
    from engine.symbolic import score_api as api

    if bars is not None and (not api.is_int(bars) or not 1 <= bars <= api.MAX_BARS):
        raise WorkflowError(f"bars must be a whole number 1..{api.MAX_BARS}, not {bars!r}")
    _sampling(temperature, top_p, key_strength, seed)
    _check_style(None, style)
    _check_model(model)
    check_input(audio)


def _on_time_base(tracks, from_tpq: int, to_tpq: int, shift: int, velocities) -> list:
    """New tracks (the model's ticks) on the output's time base: ticks scaled from the model's
    grid to ``to_tpq`` a quarter and moved by ``shift``; velocity ``velocities[i]`` each."""
    from symusic import Note, Track

    out = []
    for t, velocity in zip(tracks, velocities, strict=True):
        nt = Track(name=t.name, program=t.program)
        for n in t.notes:
            t0 = round(n.time * to_tpq / from_tpq) + shift
            t1 = round((n.time + n.duration) * to_tpq / from_tpq) + shift
            nt.notes.append(Note(t0, max(1, t1 - t0), n.pitch, int(velocity)))
        out.append(nt)
    return out


def _median_velocity(track) -> int:
    v = sorted(n.velocity for n in track.notes)
    return int(v[len(v) // 2]) if v else 100


def _load(model):
    from engine.symbolic import score_api as api

    return model if isinstance(model, api.ScoreModel) else api.load(model or api.DEFAULT_MODEL)


# ---- workflows ---------------------------------------------------------------------------
def harmonize(
    melody,
    *,
    style: str = DEFAULT_STYLE,
    voices: int = DEFAULT_VOICES,
    program: int | None = None,
    model=None,
    temperature: float | None = None,
    top_p: float | None = None,
    key_strength: float | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
):
    """A melody (MIDI file, audio file or Score) with ``voices - 1`` lower parts in ``style``.

    ``program``: General MIDI program of every part (default: the melody's own, or Choir
    Aahs for audio). The result's first track is the user's melody (its top line), every
    note's onset, length, velocity and pitch unchanged at the input's ticks per quarter,
    with its track name; the input's tempo map and time signatures are kept, and audio is
    placed where it was sung (`lead_in`). ``comp.melody`` holds it and the grid copy the
    model heard (`clean_melody`); ``comp.settings["warnings"]`` lists what was left out.

    ``voices``: 2, 3 or 4 parts in all (the melody and bass; alto; tenor). ``program``: a
    General MIDI program number, 0..127. ``model``: a name, folder or loaded `ScoreModel`.
    ``temperature`` / ``top_p`` / ``key_strength``: sampling (None: the workflow defaults);
    ``seed`` 0..2**32-1 (the same seed makes the same parts). ``progress`` gets
    `engine.progress.Progress` events: bars of the melody written (stage ``"parts"``); an
    audio melody is transcribed first. Returns an `engine.pipelines.compose.Composition`
    (``.score``, ``.save(folder)``, replayable). Raises `WorkflowError` (a `UserError`).
    """
    from engine.symbolic.score_api import ScoreModelError, input_key

    # Cheap checks first (an unknown style or a broken file fails before any model loads),
    # then the input (transcribed if audio), then the model.
    given = check_harmonize(
        melody,
        style=style,
        voices=voices,
        program=program,
        model=model,
        temperature=temperature,
        top_p=top_p,
        key_strength=key_strength,
        seed=seed,
    )
    score, kind, lead = read_input_timed(melody if given is None else given)
    sm = _load(model)
    sampling = _sampling(temperature, top_p, key_strength, seed, sm)
    m = clean_melody(score, sm.tokenizer, source=kind, name=_input_name(melody))
    user = place_lead_in(m.score, lead)  # the user's notes, where they were played
    own_program = m.score.tracks[0].program
    if program is None:
        program = AUDIO_MELODY_PROGRAM if kind == "audio" else own_program
    m.grid.tracks[0].program = int(program)
    user.tracks[0].program = int(program)  # asked for (or a transcription's): else its own
    parts = LOWER_PARTS[voices]
    try:
        kept, new, _ = add_parts(
            sm,
            m.grid,
            parts,
            programs=[int(program)] * len(parts),
            style=style,
            sampling=sampling,
            progress=progress,
        )
    except ScoreModelError as e:
        raise WorkflowError(str(e)) from None
    if notes_of(kept[0]) != notes_of(m.grid.tracks[0]):  # internal: the model must keep it
        raise RuntimeError("the melody changed while the parts were written")
    velocity = _median_velocity(user.tracks[0])
    new = _on_time_base(
        new,
        sm.tokenizer.base.time_division,
        user.ticks_per_quarter,
        lead.shift if lead is not None else 0,
        [velocity] * len(new),
    )
    out = user.copy()
    out.tracks = [user.tracks[0].copy(), *new]
    own_name = user.tracks[0].name if kind == "midi" else ""
    names = [
        own_name or ("Soprano" if style in ("chorale", "renaissance", "madrigal") else "Melody")
    ]
    names += [p.capitalize() for p in parts]
    request = {
        "input": str(Path(melody).resolve()) if not hasattr(melody, "tracks") else "<score>",
        "input_kind": kind,
        "style": style,
        "voices": voices,
        "program": int(program),
    }
    comp = _composition(
        sm,
        out,
        workflow="harmonize",
        style=style,
        request=request,
        sampling=sampling,
        names=names,
        key=input_key(user),
    )
    m.score = user
    comp.settings.update(
        warnings=m.warnings,
        melody_notes=len(user.tracks[0].notes),
        ticks_per_quarter=int(out.ticks_per_quarter),
    )
    if lead is not None:
        comp.settings["lead_in"] = {
            "shift_ticks": lead.shift,
            "ticks": lead.anchor,
            "seconds": round(lead.seconds, 4),
            "pickup_beats": lead.pickup,
        }
    comp.melody = m
    return comp


def _part_for(track) -> str:
    from engine.symbolic.tokenizer import register_of

    pitches = sorted(n.pitch for n in track.notes)
    return REGISTER_PARTS[register_of(float(pitches[len(pitches) // 2]))]


def repitch(original, generated) -> list:
    """``original``'s notes (onsets, durations, velocities) with pitches from ``generated``.

    Each note takes the pitch of the generated note sounding at its onset, or else of the
    generated note whose onset is nearest in time (a track left empty keeps its pitches).
    """
    gen = sorted(generated.notes, key=lambda n: n.time)
    out = []
    for n in original.notes:
        c = n.copy()
        if gen:
            sounding = [g for g in gen if g.time <= n.time < g.time + g.duration]
            g = sounding[-1] if sounding else min(gen, key=lambda g: abs(g.time - n.time))
            c.pitch = g.pitch
        out.append(c)
    return out


def restyle(
    source,
    *,
    style: str,
    melody_track: int | None = None,
    keep_rhythm: bool = False,
    model=None,
    temperature: float | None = None,
    top_p: float | None = None,
    key_strength: float | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
):
    """A piece's melody kept, its other parts written again in ``style``.

    ``melody_track``: index among the tracks with notes (default: the highest-sounding
    one). The melody comes back exactly (every note, velocity and the track's name and
    program, at the file's ticks per quarter, with its tempo map and time signatures). The
    new parts keep the old parts' registers, programs and names. ``keep_rhythm``: every old
    note keeps its onset, duration and velocity exactly and takes its pitch from the new
    part (`repitch`). Drum tracks are kept as they are.

    ``source``: a MIDI file path or a symusic Score with at least two parts. Sampling,
    ``seed`` (0..2**32-1) and ``progress`` (`Progress` events, bars, stage ``"parts"``) are
    as in `harmonize`. Returns a `Composition`; raises `WorkflowError`.
    """
    from engine.symbolic.score_api import ScoreModelError, input_key, track_index_of

    original = check_restyle(  # cheap checks and the input first: then the model
        source,
        style=style,
        melody_track=melody_track,
        model=model,
        temperature=temperature,
        top_p=top_p,
        key_strength=key_strength,
        seed=seed,
    )
    sm = _load(model)
    sampling = _sampling(temperature, top_p, key_strength, seed, sm)
    name = _input_name(source)
    from engine.symbolic.tokenizer import TokenizerError

    try:
        piece = sm.tokenizer.encode_score(original, name)
    except TokenizerError as e:
        raise WorkflowError(str(e)) from None
    index = track_index_of(original, piece.tracks)  # grid track j is original.tracks[index[j]]
    score = snap(original, sm.tokenizer, name)
    tracks = list(score.tracks)
    if len(tracks) < 2:
        raise WorkflowError(f"{name} has one part only; use harmonize to add parts to a melody")
    if melody_track is None:
        melody_track = max(
            range(len(tracks)),
            key=lambda i: sorted(n.pitch for n in tracks[i].notes)[len(tracks[i].notes) // 2],
        )
    elif isinstance(melody_track, bool) or not isinstance(melody_track, int):
        raise WorkflowError(f"melody_track must be a track number from 0, not {melody_track!r}")
    elif not 0 <= melody_track < len(tracks):
        raise WorkflowError(
            f"track {melody_track} does not exist; the piece has tracks 0..{len(tracks) - 1}"
        )
    melody = tracks[melody_track]
    others = [t for i, t in enumerate(tracks) if i != melody_track]
    own_melody = original.tracks[index[melody_track]]
    own_others = [original.tracks[index[i]] for i in range(len(tracks)) if i != melody_track]
    parts = [_part_for(t) for t in others]
    given = score.copy()
    given.tracks = [melody.copy()]
    try:
        kept, new, _ = add_parts(
            sm,
            given,
            parts,
            programs=[t.program for t in own_others],
            style=style,
            sampling=sampling,
            progress=progress,
        )
    except ScoreModelError as e:
        raise WorkflowError(str(e)) from None
    if notes_of(kept[0]) != notes_of(melody):
        raise RuntimeError("the melody changed while the parts were written")
    new = _on_time_base(
        new,
        sm.tokenizer.base.time_division,
        original.ticks_per_quarter,
        0,
        [_median_velocity(t) for t in own_others],
    )
    if keep_rhythm:
        for t_new, t_old in zip(new, own_others, strict=True):
            notes = repitch(t_old, t_new)
            t_new.notes.clear()
            for n in notes:
                t_new.notes.append(n)
    # Tracks the model does not read (drums, pitches outside its range) stay as they were.
    untouched = [t for i, t in enumerate(original.tracks) if i not in index and t.note_num() > 0]
    out = original.copy()
    out.tracks = [own_melody.copy(), *new, *(t.copy() for t in untouched)]
    names = [own_melody.name or "Melody"]
    names += [t.name or p.capitalize() for t, p in zip(own_others, parts, strict=True)]
    names += [t.name for t in untouched]
    request = {
        "input": str(Path(source).resolve()) if not hasattr(source, "tracks") else "<score>",
        "style": style,
        "melody_track": melody_track,
        "keep_rhythm": keep_rhythm,
    }
    comp = _composition(
        sm,
        out,
        workflow="restyle",
        style=style,
        request=request,
        sampling=sampling,
        names=names,
        key=input_key(original),
    )
    comp.settings.update(ticks_per_quarter=int(out.ticks_per_quarter))
    return comp


def continue_audio(
    audio,
    *,
    bars: int | None = None,
    style: str | None = None,
    model=None,
    temperature: float | None = None,
    top_p: float | None = None,
    key_strength: float | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
):
    """An audio clip transcribed (Basic Pitch, quantized) and continued by the score model.

    The continuation is in the clip's own key (music21's), metre and tempo (the beat
    tracker's); the result is the transcription followed by ``bars`` new bars.

    ``audio``: an audio file path (wav, flac, ogg, mp3 …). ``bars``: new bars, 1..128
    (default 4). Sampling and ``seed`` as in `harmonize`; ``progress`` gets `Progress`
    events counting tokens of the continuation (stage ``"continuation"``). Returns a `Composition`;
    raises `WorkflowError` (or `engine.errors.AudioFileError` for audio that cannot be
    read).
    """
    from engine.symbolic import score_api as api
    from engine.symbolic.tokenizer import TONICS

    bars = api.DEFAULT_CONTINUE_BARS if bars is None else bars
    check_continue_audio(
        audio,
        bars=bars,
        style=style,
        model=model,
        temperature=temperature,
        top_p=top_p,
        key_strength=key_strength,
        seed=seed,
    )
    score, kind = read_input(audio)
    sm = _load(model)
    sampling = _sampling(temperature, top_p, key_strength, seed, sm)
    # the model's token events, as stage "continuation"
    sm_progress = (lambda e: progress(replace(e, stage="continuation"))) if progress else None
    try:
        result = sm.continue_score(score, bars=bars, style=style, progress=sm_progress, **sampling)
    except api.ScoreModelError as e:
        raise WorkflowError(str(e)) from None
    out = result.score
    names = [t.name or "Transcription" for t in out.tracks]
    request = {
        "input": str(Path(audio).resolve()),
        "input_kind": kind,
        "bars": bars,
        "style": style,
    }
    conditioned = result.settings["conditioned_on"]
    comp = _composition(
        sm,
        out,
        workflow="continue",
        style=style,
        request=request,
        sampling=sampling,
        names=names,
        key=(TONICS.index(conditioned["key"]), conditioned["mode"]),
    )
    comp.settings.update(
        input_key=conditioned["key"],
        input_mode=conditioned["mode"],
        conditioned_on=conditioned,
        input_end_tick=int(score.end()),
        continuation_start_tick=result.settings["continuation_start_tick"],
        ticks_per_quarter=int(score.ticks_per_quarter),
        finish_reason=result.finish_reason,
    )
    return comp
