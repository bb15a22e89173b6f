"""Workflows on music the user brings: harmonize a melody, restyle a piece, continue audio.

>>> from engine import workflows
>>> comp = workflows.harmonize("tune.wav", style="chorale", voices=4, seed=1)
>>> comp.save("tune-chorale")                        # music.wav/.mid/.musicxml + generation.json
>>> comp = workflows.restyle("piece.mid", style="celtic", keep_rhythm=True)
>>> comp = workflows.continue_audio("clip.wav", bars=4)

Each call returns an `engine.compose.Composition`, written like ``generate`` writes.

How the melody is treated (``harmonize``):

* audio is transcribed with Basic Pitch (``quantize=True``: beats, metre and tempo found);
* the melody is cleaned: snapped to the score tokenizer's grid (eight steps a beat), then
  made monophonic (at each onset the highest note is kept, and every note is cut where the
  next one starts), then snapped once more. A polyphonic input (chords, several parts) is
  accepted: its top line is harmonized and ``warnings`` says how many notes were left out;
* the cleaned melody is kept exactly, note for note, in the result's first track.

Pieces longer than the model's window are processed in sections of whole bars that fit
(each section hears only itself, and its key is found in it); the sections are joined in
time. ``restyle`` and ``harmonize`` share this.
"""

from __future__ import annotations

from engine.errors import UserError
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
DEFAULT_STYLE = "chorale"
DEFAULT_VOICES = 4
# Lower parts written under a melody, by total number of voices.
LOWER_PARTS = {2: ("bass",), 3: ("alto", "bass"), 4: ("alto", "tenor", "bass")}
AUDIO_MELODY_PROGRAM = 52  # Choir Aahs: a sung or hummed melody, harmonized for voices
# Key bonus (see score_api.DEFAULT_KEY_STRENGTH) when the user's music sets the key: firmer than
# the default 1.5, which let about one harmonization in six drift to the subdominant's key.
WORKFLOW_KEY_STRENGTH = 3.0
SECTION_FILL = 0.7  # share of the model's window one section may use (room for busy parts)
SECTION_OVERHEAD_TOKENS = 24  # BOS, conditions, track headers, EOS
# Part name for a register index (engine.tokenizer.REGISTER_NAMES order).
REGISTER_PARTS = ("low", "bass", "tenor", "alto", "soprano", "high")

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total), as engine.compose


class WorkflowError(UserError, ValueError):
    """A request a workflow cannot carry out; the message says what to change."""


@dataclass
class Melody:
    """A cleaned melody: one monophonic track on the tokenizer's grid."""

    score: object  # symusic.Score, one track
    source: str  # "audio" or "midi"
    dropped_notes: int = 0  # notes left out to make the line monophonic
    warnings: list[str] = field(default_factory=list)


# ---- input ---------------------------------------------------------------------------------
def is_audio(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def read_input(source, *, quantize_audio: bool = True):
    """A symusic Score from a MIDI file, an audio file (transcribed) or a Score; (score, kind)."""
    from symusic import Score

    from engine.score_api import read_midi

    if isinstance(source, Score):
        return read_midi(source), "midi"
    path = Path(source)
    if is_audio(path):
        from engine.transcribe import transcribe

        if not path.is_file():
            raise WorkflowError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise WorkflowError(f"{path}: the file is empty")
        tr = transcribe(path, quantize=quantize_audio)
        if not tr.notes:
            raise WorkflowError(f"{path}: no notes were heard in the audio")
        return tr.to_score(), "audio"
    return read_midi(path), "midi"


def snap(score, tokenizer):
    """``score`` as the score model keeps it: encoded and decoded by its tokenizer.

    Times and durations land on the tokenizer's grid; velocities are the decoder's.
    """
    from engine.tokenizer import TokenizerError

    try:
        piece = tokenizer.encode_score(score)
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


def clean_melody(score, tokenizer, *, source: str = "midi", track: int | None = None) -> Melody:
    """The monophonic melody on the tokenizer's grid (see the module docstring)."""
    tracks = [t for t in score.tracks if not t.is_drum and t.note_num() > 0]
    line, dropped = top_line(snap(score, tokenizer), track)
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
    return Melody(line, source, dropped, warnings)


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
            **{**sampling, "seed": sampling["seed"] + k},
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
            progress("parts", done, total)
    out = Score(sm.tokenizer.base.time_division)
    out.tempos = given.tempos
    out.time_signatures = given.time_signatures
    out.tracks = kept[:n_given] + new
    for t in out.tracks:
        t.notes.sort(key=lambda n: (n.time, n.pitch))
    return out.tracks[:n_given], new, out


# ---- the composition record --------------------------------------------------------------
def _composition(sm, score, *, workflow: str, style, request: dict, sampling: dict, names):
    from symusic import KeySignature

    from engine.atomic import sha256_file
    from engine.compose import Composition, Part, Plan, _model_name
    from engine.quality import analyze_key
    from engine.score_api import _key_sharps
    from engine.tokenizer import TONICS

    tonic, mode = analyze_key(score)
    key = TONICS[tonic]
    score.key_signatures = [KeySignature(0, _key_sharps(key, mode), 0 if mode == "major" else 1)]
    for t, name in zip(score.tracks, names, strict=True):
        t.name = name
    ts = score.time_signatures[0] if len(score.time_signatures) else None
    meter = f"{ts.numerator}/{ts.denominator}" if ts is not None else "4/4"
    tempo = float(score.tempos[0].qpm) if len(score.tempos) else 96.0
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
    name = _model_name(None, sm)
    return Composition(
        score=score,
        plan=plan,
        request={"workflow": workflow, **request, "model": name},
        parsed={},
        model_name=name,
        model_sha256=sha256_file(Path(sm.path) / "model.safetensors"),
        settings={},
    )


def _sampling(temperature, top_p, key_strength, seed) -> dict:
    from engine import score_api as api

    return {
        "temperature": api.DEFAULT_TEMPERATURE if temperature is None else temperature,
        "top_k": api.DEFAULT_TOP_K,
        "top_p": api.DEFAULT_TOP_P if top_p is None else top_p,
        "key_strength": WORKFLOW_KEY_STRENGTH if key_strength is None else key_strength,
        "seed": int(seed),
    }


def _load(model):
    from engine import score_api as api

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
    Aahs for audio). The result's first track is the cleaned melody, note for note
    (`clean_melody`); ``comp.settings["warnings"]`` lists what was changed in the input.
    """
    from engine.score_api import ScoreModelError

    if voices not in LOWER_PARTS:
        raise WorkflowError(
            f"voices must be 2, 3 or 4 (the melody and 1 to 3 lower parts), not {voices}"
        )
    if program is not None and not 0 <= int(program) <= 127:
        raise WorkflowError(f"program {program} is not a General MIDI program (0..127)")
    sampling = _sampling(temperature, top_p, key_strength, seed)
    sm = _load(model)
    sm._conditions(style, None, None, None, None, None)  # unknown style: fail before any work
    score, kind = read_input(melody)
    m = clean_melody(score, sm.tokenizer, source=kind)
    if program is None:
        program = AUDIO_MELODY_PROGRAM if kind == "audio" else m.score.tracks[0].program
    m.score.tracks[0].program = int(program)
    parts = LOWER_PARTS[voices]
    try:
        kept, _, out = add_parts(
            sm,
            m.score,
            parts,
            programs=[int(program)] * len(parts),
            style=style,
            sampling=sampling,
            progress=progress,
        )
    except ScoreModelError as e:
        raise WorkflowError(str(e)) from None
    if notes_of(kept[0]) != notes_of(m.score.tracks[0]):  # internal: the model must keep it
        raise RuntimeError("the melody changed while the parts were written")
    names = ["Soprano" if style in ("chorale", "renaissance", "madrigal") else "Melody"]
    names += [p.capitalize() for p in parts]
    request = {
        "input": str(Path(melody).resolve()) if not hasattr(melody, "tracks") else "<score>",
        "input_kind": kind,
        "style": style,
        "voices": voices,
        "program": int(program),
    }
    comp = _composition(
        sm, out, workflow="harmonize", style=style, request=request, sampling=sampling, names=names
    )
    comp.settings.update(warnings=m.warnings, melody_notes=len(m.score.tracks[0].notes))
    comp.melody = m
    return comp


def _part_for(track) -> str:
    from engine.tokenizer import register_of

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
    one). The new parts keep the old parts' registers and programs. ``keep_rhythm``: every
    old note keeps its onset, duration and velocity and takes its pitch from the new part
    (`repitch`).
    """
    from engine.score_api import ScoreModelError, read_midi

    sampling = _sampling(temperature, top_p, key_strength, seed)
    sm = _load(model)
    sm._conditions(style, None, None, None, None, None)
    if is_audio(source) if not hasattr(source, "tracks") else False:
        raise WorkflowError("restyle needs a MIDI file with several parts, not audio")
    score = snap(read_midi(source), sm.tokenizer)
    tracks = [t for t in score.tracks if not t.is_drum and t.note_num() > 0]
    if len(tracks) < 2:
        raise WorkflowError("the piece has one part only; use harmonize to add parts to a melody")
    if melody_track is None:
        melody_track = max(
            range(len(tracks)),
            key=lambda i: sorted(n.pitch for n in tracks[i].notes)[len(tracks[i].notes) // 2],
        )
    elif not 0 <= melody_track < len(tracks):
        raise WorkflowError(
            f"track {melody_track} does not exist; the piece has tracks 0..{len(tracks) - 1}"
        )
    melody = tracks[melody_track]
    others = [t for i, t in enumerate(tracks) if i != melody_track]
    parts = [_part_for(t) for t in others]
    given = score.copy()
    given.tracks = [melody.copy()]
    try:
        kept, new, out = add_parts(
            sm,
            given,
            parts,
            programs=[t.program for t in others],
            style=style,
            sampling=sampling,
            progress=progress,
        )
    except ScoreModelError as e:
        raise WorkflowError(str(e)) from None
    if notes_of(kept[0]) != notes_of(melody):
        raise RuntimeError("the melody changed while the parts were written")
    if keep_rhythm:
        for t_new, t_old in zip(new, others, strict=True):
            notes = repitch(t_old, t_new)
            t_new.notes.clear()
            for n in notes:
                t_new.notes.append(n)
    names = [melody.name or "Melody"] + [
        t.name or p.capitalize() for t, p in zip(others, parts, strict=True)
    ]
    request = {
        "input": str(Path(source).resolve()) if not hasattr(source, "tracks") else "<score>",
        "style": style,
        "melody_track": melody_track,
        "keep_rhythm": keep_rhythm,
    }
    return _composition(
        sm, out, workflow="restyle", style=style, request=request, sampling=sampling, names=names
    )


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
    """
    from engine import score_api as api
    from engine.quality import analyze_key
    from engine.tokenizer import TONICS

    bars = api.DEFAULT_CONTINUE_BARS if bars is None else bars
    sampling = _sampling(temperature, top_p, key_strength, seed)
    sm = _load(model)
    score, kind = read_input(audio)
    score = snap(score, sm.tokenizer)
    tonic, mode = analyze_key(score)
    sm_progress = (lambda d, t: progress("continuation", d, t)) if progress else None
    result = sm.continue_score(
        score,
        bars=bars,
        style=style,
        key=TONICS[tonic],
        mode=mode,
        progress=sm_progress,
        **sampling,
    )
    out = result.score
    names = [t.name or "Transcription" for t in out.tracks]
    request = {
        "input": str(Path(audio).resolve()),
        "input_kind": kind,
        "bars": bars,
        "style": style,
    }
    comp = _composition(
        sm, out, workflow="continue", style=style, request=request, sampling=sampling, names=names
    )
    comp.settings.update(
        input_key=TONICS[tonic],
        input_mode=mode,
        input_end_tick=int(score.end()),
        ticks_per_quarter=int(score.ticks_per_quarter),
        finish_reason=result.finish_reason,
    )
    return comp
