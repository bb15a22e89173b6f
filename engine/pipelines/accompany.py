"""Accompany a recording or a MIDI file: a bass line, chords, strings or drums that follow it.

>>> from engine.pipelines.accompany import accompany
>>> acc = accompany("song.wav", part="bass", seed=1)
>>> acc.analysis.tempo_bpm, acc.analysis.meter, acc.analysis.chords[:4]
(100.2, '4/4', ['C', 'Am', 'F', 'G'])
>>> acc.save("song-bass")        # part.mid, part.wav, mix.wav (+ mix.mid), generation.json

The pipeline is a chain of small steps, each testable alone:

1. **Analysis** (`analyze`). Audio: the mono mix at 22050 Hz; the beat period from two
   envelopes (`hear_pulse`): the onset strength (spectral flux, clear in detached playing)
   and the chroma novelty (chord changes, there in legato playing too), then beats from
   ``librosa.beat.beat_track`` at that tempo on both envelopes (held close to that tempo when
   the onset strength is flat, i.e. legato); 6/8 when the beat divides in
   three, else 4, 3 or 2 beats a bar and bar 1 from the chord changes and accents on the
   beats (`hear_meter`); one chord a bar from ``librosa.feature.chroma_cqt``
   averaged over the bar and matched (cosine) against the 24 major and minor triad templates;
   the key from the whole piece's chroma against the Krumhansl-Kessler profiles; the onset
   density (onsets a beat). MIDI: tempo map and time signature from the file, beats on the
   grid, one chord a bar from the notes sounding in it (pitch classes weighted by duration),
   key from `engine.symbolic.quality.analyze_key`.
2. **A grid** (`Analysis.time_of`): every part is written in quarter notes from the first bar
   line; quarter ``q`` sounds at ``time_of(q)`` seconds. For audio that is the detected beats
   (linear between beats, the median period past the ends), so the part follows the
   recording's tempo drift; ``part.mid`` carries one tempo change a beat to say the same.
3. **The part** (`write_part`):

   Bass, strings and chords come from the score model (`ScoreModel.add_tracks`), eight
   bars at a time, against the input's top line (for audio, its Basic Pitch transcription
   placed on the grid). The detected chords steer the sampling (`engine.symbolic.steer`): the lowest
   new part may only choose tones of its bar's chord, the others get a bonus for them.

   - ``bass``: a bass line (GM 33, fingered bass), folded into the bass's range.
   - ``strings``: violin, viola and cello (GM 40-42); the cello plays chord tones only, the
     upper parts are the model's notes folded into their ranges.
   - ``chords``: piano. Three voices (upper and lower right hand, left hand); any note the
     model still put off the chord is moved to the nearest chord tone within its hand's
     range and clipped at the bar line, and the voices are joined into one piano track: the
     model's rhythm and voice leading on the detected harmony. A bar where all three rest
     holds the chord (root under a close triad), so the harmony never drops out.
   - ``drums``: RULE-BASED patterns on GM channel 10 (see `drum_pattern`), chosen by metre,
     tempo, onset density and style.

4. **Output** (`Accompaniment.save`): a new folder with ``part.mid``, ``part.wav``,
   ``mix.wav`` (the input plus the part at matched loudness), ``mix.mid`` for MIDI input, and
   ``generation.json`` (input path and sha256, analysis, part, seed, model sha256, versions,
   output hashes), written into a hidden folder and renamed into place when complete.
"""

from __future__ import annotations

import difflib
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine import names
from engine.atomic import sha256_file
from engine.audio.rhythm import (
    ANALYSIS_SAMPLE_RATE,
    BEAT_TIGHTNESS,
    HARMONY_LAG,
    HARMONY_SMOOTH_FRAMES,
    HOP,
    LEGATO_CONTRAST,
    LEGATO_TIGHTNESS,
    METER_BEATS,
    PULSE_MAX_BPM,
    PULSE_MIN_BPM,
    bass_accents,
    beat_chroma,
    beat_period,
    hear_meter,
    hear_pulse,
    position_in_beats,
    refine_beats,
)
from engine.errors import UserError
from engine.progress import Progress, ProgressFn
from engine.record import OutputFolder, check_new_folder, with_replaced, write_record
from engine.seeds import check_seed, derive_seed
from engine.symbolic.model_versions import weights_sha256

PARTS = names.ACCOMPANY_PARTS
MODEL_PARTS = ("bass", "chords", "strings")  # written by the score model; drums are rule-based
DRUM_STYLES = names.DRUM_STYLES
DEFAULT_DRUM_STYLE = names.DEFAULT_DRUM_STYLE
TRIM_TOP_DB = 50  # audio this far below the peak is not music
CHANGE_TOP_DB = 20  # a chord change this far below the loudest frame is a release tail's
MIN_BEATS = 4  # fewer detected beats: no usable beat
MIN_SECONDS = 2.0  # shorter audio cannot hold MIN_BEATS beats at any usable tempo
GRID_SLACK_S = 0.05  # the first bar may start this early (before 0 s) and still be used
LEAD_MIN_S = 0.02  # a first bar line later than this gets a silent lead-in bar in part.mid
TICKS_PER_QUARTER = names.TICKS_PER_QUARTER
WINDOW_BARS = 8  # the score model writes the part this many bars at a time
GRID_DIVISIONS = 4  # input notes snap to sixteenths (of a quarter) before the model hears them
CHORD_MIN_ENERGY = 1e-3  # a bar whose mean chroma sums to less has no chord (the last one holds)
DENSE_ONSETS_PER_BEAT = 2.0  # busier input: sixteenth hi-hats (at tempos below DENSE_MAX_BPM)
SPARSE_ONSETS_PER_BEAT = 0.75  # calmer input: quarter-note hi-hats
DENSE_MAX_BPM = 130.0
PART_LEVEL_DB = -3.0  # the part sits this far below the input's loudness in mix.wav
MIX_PEAK_DB = -1.0
GENERATION_FILE = names.GENERATION_FILE

# General MIDI programs and playable ranges (MIDI, inclusive).
BASS_PROGRAM = 33  # Electric Bass (finger)
BASS_RANGE = (28, 55)
CHORD_PROGRAM = 0  # Acoustic Grand Piano
CHORD_CENTER = 62  # close-position triads sit around D4
STRING_PROGRAMS = (40, 41, 42)  # violin, viola, cello
STRING_PARTS = ("alto", "tenor", "bass")  # score-model registers, top to bottom
STRING_RANGES = ((55, 93), (48, 84), (36, 76))
MELODY_PROGRAM = 0  # the input's top line as the model hears it
INPUT_TRACK = "Input"  # the name of that track in what the model gets and gives back
# Chords: three piano voices from the score model (registers top to bottom), each on its own
# piano program while generating so they can be told apart, then one piano track.
CHORD_PARTS = ("alto", "tenor", "bass")
CHORD_VOICE_PROGRAMS = (1, 2, 3)  # bright, electric grand and honky-tonk piano
CHORD_RANGES = ((60, 76), (52, 69), (40, 57))

# GM drum keys (channel 10).
KICK, SNARE, SIDE_STICK, CLOSED_HAT, PEDAL_HAT = 36, 38, 37, 42, 44
CRASH, RIDE = 49, 51

NOTE_NAMES = names.TONICS
# What a listener may tell the analysis of audio (`--meter`): the metres audio is heard in, as
# (counted beats a bar, whether the beat divides in three).
HINT_METERS = {"4/4": (4, False), "3/4": (3, False), "2/4": (2, False), "6/8": (2, True)}


class AccompanyError(UserError, ValueError):
    """A user-facing problem: an unreadable or silent input, an unknown part or style."""


# ---- analysis ------------------------------------------------------------------------------
@dataclass
class Analysis:
    """What the accompaniment follows. Times in seconds, positions in quarter notes."""

    kind: str  # "audio" | "midi"
    tempo_bpm: float
    numerator: int
    denominator: int
    key: str  # e.g. "G major"
    chords: list[str]  # one symbol a bar, from the first bar line
    bars: int
    duration_s: float
    onsets_per_beat: float
    beats_s: list[float] = field(default_factory=list)  # detected beats (audio)
    origin_beat: int = 0  # index of the beat at the first bar line (audio)
    notes: list[tuple[float, float, int, int]] = field(default_factory=list, repr=False)
    tempo_map: list[tuple[int, float]] = field(default_factory=list, repr=False)  # (tick, qpm)
    ticks_per_quarter: int = TICKS_PER_QUARTER

    @property
    def meter(self) -> str:
        return f"{self.numerator}/{self.denominator}"

    @property
    def bar_quarters(self) -> float:
        return self.numerator * 4 / self.denominator

    @property
    def beat_quarters(self) -> float:
        """The counted beat: a dotted quarter in 6/8, 9/8, 12/8; else the denominator's note."""
        compound = self.denominator == 8 and self.numerator % 3 == 0 and self.numerator > 3
        return 1.5 if compound else 4 / self.denominator

    def time_of(self, q: np.ndarray | float) -> np.ndarray:
        """Seconds at ``q`` quarter notes after the first bar line."""
        q = np.asarray(q, dtype=np.float64)
        if self.kind == "audio":
            beats = np.asarray(self.beats_s)
            idx = np.arange(beats.shape[0], dtype=np.float64)
            period = beat_period(beats)
            b = q + self.origin_beat
            t = np.interp(b, idx, beats)
            t = np.where(b < 0, beats[0] + b * period, t)
            return np.where(b > idx[-1], beats[-1] + (b - idx[-1]) * period, t)
        tpq = self.ticks_per_quarter
        ticks = q * tpq
        out = np.zeros_like(ticks)
        elapsed, prev_tick, prev_qpm = 0.0, 0, self.tempo_map[0][1]
        starts = []
        for tick, qpm in self.tempo_map:
            elapsed += (tick - prev_tick) / tpq * 60 / prev_qpm
            starts.append((tick, elapsed, qpm))
            prev_tick, prev_qpm = tick, qpm
        for tick, t0, qpm in starts:
            out = np.where(ticks >= tick, t0 + (ticks - tick) / tpq * 60 / qpm, out)
        return out

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("notes", "tempo_map")}
        d["meter"] = self.meter
        d["beats_s"] = [round(b, 4) for b in self.beats_s]
        return d


def check_hints(tempo_bpm: float | None = None, meter: str | None = None) -> str | None:
    """Check what a listener tells the analysis of audio: ``tempo_bpm`` (quarter notes a
    minute, as a MIDI file counts them) and ``meter`` (one of HINT_METERS). Returns the metre
    (stripped) or None; raises AccompanyError with the allowed values. With a tempo and no
    metre the counted beat is the quarter note (give 6/8 to count dotted quarters)."""
    if meter is not None:
        if not isinstance(meter, str) or meter.strip() not in HINT_METERS:
            raise AccompanyError(
                f"metre {meter!r} cannot be heard in audio; give one of "
                f"{', '.join(HINT_METERS)} (or give MIDI, whose own metre is read)"
            )
        meter = meter.strip()
    if tempo_bpm is not None:
        scale = 1.5 if meter and HINT_METERS[meter][1] else 1.0  # 6/8 counts dotted quarters
        lo, hi = PULSE_MIN_BPM * scale, PULSE_MAX_BPM * scale
        number = isinstance(tempo_bpm, int | float) and not isinstance(tempo_bpm, bool)
        finite = number and bool(np.isfinite(tempo_bpm))
        if not finite or not lo <= float(tempo_bpm) <= hi:
            shown = names.num(tempo_bpm) if finite else repr(tempo_bpm)
            nearest = f"; use {names.num(lo if tempo_bpm < lo else hi)}" if finite else ""
            where = " in 6/8" if scale > 1 else ""
            raise AccompanyError(
                f"tempo {shown} cannot be heard{where}: give {names.num(lo)} to "
                f"{names.num(hi)} quarter notes a minute{nearest}"
            )
    return meter


def analyze(
    input_path: str | Path,
    *,
    transcribe_notes: bool = True,
    tempo_bpm: float | None = None,
    meter: str | None = None,
) -> Analysis:
    """Analyse an audio or MIDI file (chosen by its first bytes). See the module docstring.

    ``tempo_bpm`` and ``meter`` (audio only, `check_hints`): what the listener knows. The
    tempo given is the beat period (the beats tracked at it still sit on the notes where
    onsets show) and the metre given is the bar (bar 1 still heard); either alone narrows
    the search (`engine.audio.rhythm.hear_pulse`)."""
    meter = check_hints(tempo_bpm, meter)
    path = Path(input_path).expanduser()
    if not path.exists():
        raise AccompanyError(f"{path} does not exist; check the path")
    if path.is_dir():
        raise AccompanyError(f"{path} is a folder; give an audio or MIDI file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"MThd":
        from engine.names import AUDIO_SUFFIXES

        if path.suffix.lower() in AUDIO_SUFFIXES:  # as every other command says of it
            raise AccompanyError(
                f"{input_path} is a MIDI file, not audio (its first bytes are MThd); rename it "
                f"to {path.stem}.mid and give it as MIDI"
            )
        if tempo_bpm is not None or meter is not None:
            raise AccompanyError(
                f"{path.name} is MIDI, whose own tempo and metre are read; --tempo and --meter "
                "are for audio"
            )
        return _analyze_midi(path)
    return _analyze_audio(path, transcribe_notes=transcribe_notes, tempo_bpm=tempo_bpm, meter=meter)


def _load_mono(path: Path) -> tuple[np.ndarray, int, np.ndarray]:
    """(mono at ANALYSIS_SAMPLE_RATE, original rate, original [S, C]) or AccompanyError."""

    from engine.audio.io import check_audible, load_audio, resample
    from engine.errors import AudioFileError

    try:  # NaN/Inf refused, a file cut short warned about (InputWarning), silence refused
        audio, sr = load_audio(path, min_seconds=MIN_SECONDS)  # cut short and too short: 1 line
        check_audible(audio, str(path))
    except AudioFileError as e:
        raise AccompanyError(str(e)) from None
    if audio.shape[0] < MIN_SECONDS * sr:
        raise AccompanyError(
            f"{path} is {audio.shape[0] / sr:.2f} s long; accompany needs at least "
            f"{MIN_SECONDS:g} s of music with a pulse"
        )
    mono = audio.mean(axis=1).astype(np.float32)
    if sr != ANALYSIS_SAMPLE_RATE:
        mono = resample(mono, sr, ANALYSIS_SAMPLE_RATE)
    return mono, sr, audio


def _analyze_audio(
    path: Path, *, transcribe_notes: bool, tempo_bpm: float | None = None, meter: str | None = None
) -> Analysis:
    import librosa
    from scipy.ndimage import uniform_filter1d

    from engine.audio.io import quiet_libraries

    y, _, _ = _load_mono(path)
    sr = ANALYSIS_SAMPLE_RATE
    fps = sr / HOP
    with quiet_libraries():  # librosa's warnings about its own parameters stay inside
        env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP)
        chroma = librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=HOP)
        smooth = uniform_filter1d(chroma, HARMONY_SMOOTH_FRAMES, axis=1)
        harmony = librosa.onset.onset_strength(S=smooth, sr=sr, hop_length=HOP, lag=HARMONY_LAG)
    n = min(env.shape[0], harmony.shape[0])
    env, harmony = env[:n], harmony[:n]
    per_bar, compound = HINT_METERS[meter] if meter else (None, None)
    beat_s = None
    if tempo_bpm is not None:  # a tempo alone counts quarter notes
        compound = bool(compound)
        beat_s = 60.0 / float(tempo_bpm) * (1.5 if compound else 1.0)
    try:
        pulse = hear_pulse(env, harmony, fps, beat_s=beat_s, per_bar=per_bar, compound=compound)
    except ValueError as e:  # no beat period leaves room for the bars
        if tempo_bpm is None and meter is None:
            raise AccompanyError(
                f"no steady beat found in {path.name} ({e}); accompany music with a pulse, at "
                "least a few bars long"
            ) from None
        given = " ".join(x for x in (tempo_bpm and f"{names.num(tempo_bpm)} BPM", meter) if x)
        raise AccompanyError(
            f"{path.name} is {y.shape[0] / sr:.1f} s long: at {given} {e}; check --tempo and "
            "--meter, or give a longer recording"
        ) from None
    # Legato (a flat onset strength: std 0.3-1.3 of its mean in the legato test pieces, 2.0
    # and more in the detached ones and a piece drifting in tempo): the envelope has
    # peaks only at chord changes, and beats left loose between them wander (5 % fast at 60
    # BPM), so they are held close to the tempo hear_pulse found.
    legato = float(env.std()) < LEGATO_CONTRAST * float(env.mean())
    both = env / max(float(env.mean()), 1e-12) + harmony / max(float(harmony.mean()), 1e-12)
    with quiet_libraries():
        _, frames = librosa.beat.beat_track(
            onset_envelope=both,
            sr=sr,
            hop_length=HOP,
            bpm=60.0 / pulse.beat_s,
            tightness=LEGATO_TIGHTNESS if legato else BEAT_TIGHTNESS,
        )
    frames = np.asarray(frames, dtype=int)
    beats = librosa.frames_to_time(frames, sr=sr, hop_length=HOP).astype(np.float64)
    if legato and beats.shape[0] >= MIN_BEATS:
        # beat_track spaces beats by a whole number of 23 ms frames (140 BPM came out 143.6),
        # which legato music has no onsets to correct: held beats keep the pulse's period,
        # at the tracked beats' phase
        k = np.arange(beats.shape[0], dtype=np.float64)
        start = float(np.median(beats - k * pulse.beat_s))
        count = int(round((beats[-1] - start) / pulse.beat_s)) + 1
        beats = start + np.arange(count, dtype=np.float64) * pulse.beat_s
        beats = beats[beats >= 0]
        frames = librosa.time_to_frames(beats, sr=sr, hop_length=HOP)
    if beats.shape[0] < MIN_BEATS:
        raise AccompanyError(
            f"no steady beat found in {path.name} ({beats.shape[0]} beats); accompany music "
            "with a pulse, at least a few bars long"
        )
    idx = np.clip(frames, 0, n - 1)
    accents = env[idx] / max(float(env[idx].mean()), 1e-12) + bass_accents(y, idx)
    per_bar, downbeat = hear_meter(
        accents, beat_chroma(chroma, frames), (pulse.per_bar,) if pulse.per_bar else METER_BEATS
    )
    beats = refine_beats(y, beats)
    if pulse.compound:  # the quarter-note grid through the dotted-quarter beats, from a bar line
        first = downbeat % 2
        q = np.arange(0.0, (beats.shape[0] - 1 - first) * 1.5 + 1e-9, 1.0)
        beats = np.interp(first + q / 1.5, np.arange(beats.shape[0]), beats)
        downbeat, numerator, denominator = 0, 6, 8
    else:
        numerator, denominator = per_bar, 4
    bar_q = int(round(numerator * 4 / denominator))
    period = beat_period(beats)
    origin = downbeat
    while beats[0] + (origin - bar_q) * period >= -GRID_SLACK_S and origin - bar_q >= -8:
        origin -= bar_q
    with quiet_libraries():
        onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=HOP, units="time")
        changes = librosa.onset.onset_detect(
            onset_envelope=harmony, sr=sr, hop_length=HOP, units="time"
        )
        _, (_, end) = librosa.effects.trim(y, top_db=TRIM_TOP_DB)
        level = librosa.amplitude_to_db(librosa.feature.rms(y=y, hop_length=HOP)[0], ref=np.max)
    loud = librosa.frames_to_time(np.flatnonzero(level > -CHANGE_TOP_DB), sr=sr, hop_length=HOP)
    changes = changes[changes <= loud.max()] if loud.size else changes  # not in a release tail
    # the music ends with the bar of its last onset or chord change (legato music may have
    # no onset the flux shows in its last bars; a release tail is no new bar)
    found = np.concatenate([onsets, changes])
    end_s = min(end / sr, float(found.max()) + 1e-3) if found.size else end / sr
    an = Analysis(
        kind="audio",
        tempo_bpm=round(60.0 / period, 2),
        numerator=int(numerator),
        denominator=int(denominator),
        key="",
        chords=[],
        bars=0,
        duration_s=round(y.shape[0] / sr, 3),
        onsets_per_beat=0.0,
        beats_s=[float(b) for b in beats],
        origin_beat=int(origin),
    )
    end_q = _quarter_of(an, end_s)
    an.bars = max(1, int(np.floor(end_q / an.bar_quarters)) + 1)
    music_beats = max(1.0, end_q - max(0.0, _quarter_of(an, 0.0)))
    an.onsets_per_beat = round(len(onsets) / music_beats, 3)
    times = librosa.frames_to_time(np.arange(chroma.shape[1]), sr=sr, hop_length=HOP)
    per_bar = []
    for b in range(an.bars):
        t0, t1 = an.time_of([b * an.bar_quarters, (b + 1) * an.bar_quarters])
        sel = (times >= t0) & (times < t1)
        per_bar.append(chroma[:, sel].mean(axis=1) if sel.any() else np.zeros(12))
    an.chords = _chords_from_profiles(per_bar)
    an.key = _key_from_profile(chroma.mean(axis=1))
    if transcribe_notes:
        an.notes = _transcribed_notes(path, an)
    return an


def _quarter_of(an: Analysis, t_s: float) -> float:
    """Quarter notes after the first bar line at ``t_s`` seconds (audio grid)."""

    return float(position_in_beats(np.asarray(t_s), np.asarray(an.beats_s))) - an.origin_beat


def _transcribed_notes(path: Path, an: Analysis) -> list[tuple[float, float, int, int]]:
    """Basic Pitch's notes as (start_q, end_q, pitch, velocity) on the grid (sixteenths)."""
    import warnings

    from engine.errors import InputWarning
    from engine.pipelines.transcribe import transcribe

    notes = []
    with warnings.catch_warnings():  # the input's warnings came with its analysis; "no notes
        warnings.simplefilter("ignore", InputWarning)  # found" is not the user's to act on
        found = transcribe(path).notes
    for n in found:
        s = round(_quarter_of(an, n.start_s) * GRID_DIVISIONS) / GRID_DIVISIONS
        e = round(_quarter_of(an, n.end_s) * GRID_DIVISIONS) / GRID_DIVISIONS
        if s < 0:
            continue
        notes.append((s, max(e, s + 1 / GRID_DIVISIONS), int(n.pitch), n.velocity))
    return notes


def _analyze_midi(path: Path) -> Analysis:
    from engine.symbolic.quality import analyze_key
    from engine.symbolic.score_api import ScoreModelError, read_midi

    try:
        score = read_midi(path)
    except ScoreModelError as e:
        raise AccompanyError(str(e)) from None
    tpq = score.ticks_per_quarter
    notes = [
        (n.time / tpq, n.end / tpq, int(n.pitch), int(n.velocity))
        for t in score.tracks
        if not t.is_drum
        for n in t.notes
    ]
    if not notes:
        raise AccompanyError(f"{path.name} has no pitched notes (only drums); nothing to follow")
    ts = score.time_signatures[0] if len(score.time_signatures) else None
    num, den = (int(ts.numerator), int(ts.denominator)) if ts is not None else (4, 4)
    tempo_map = [(int(t.time), float(t.qpm)) for t in score.tempos] or [(0, 120.0)]
    if tempo_map[0][0] != 0:
        tempo_map.insert(0, (0, tempo_map[0][1]))
    an = Analysis(
        kind="midi",
        tempo_bpm=round(tempo_map[0][1], 2),
        numerator=num,
        denominator=den,
        key="",
        chords=[],
        bars=0,
        duration_s=0.0,
        onsets_per_beat=0.0,
        notes=notes,
        tempo_map=tempo_map,
        ticks_per_quarter=tpq,
    )
    end_q = max(e for _, e, _, _ in notes)
    an.bars = max(1, int(np.ceil(end_q / an.bar_quarters - 1e-3)))
    an.duration_s = round(float(an.time_of(end_q)), 3)
    an.onsets_per_beat = round(len({round(s, 3) for s, _, _, _ in notes}) / max(end_q, 1.0), 3)
    per_bar = [np.zeros(12) for _ in range(an.bars)]
    bq = an.bar_quarters
    for s, e, p, _ in notes:
        for b in range(int(s // bq), min(an.bars, int(np.ceil(e / bq)))):
            overlap = min(e, (b + 1) * bq) - max(s, b * bq)
            if overlap > 0:
                per_bar[b][p % 12] += overlap
    an.chords = _chords_from_profiles(per_bar)
    tonic, mode = analyze_key(score)
    an.key = f"{NOTE_NAMES[tonic]} {mode}"
    return an


def _triad_templates() -> tuple[np.ndarray, list[str]]:
    """[24, 12] unit vectors: C, C#, ... B major, then C minor ... B minor; and their names."""
    rows, names = [], []
    for third, suffix in ((4, ""), (3, "m")):
        for root in range(12):
            v = np.zeros(12)
            v[[root, (root + third) % 12, (root + 7) % 12]] = 1.0
            rows.append(v / np.linalg.norm(v))
            names.append(NOTE_NAMES[root] + suffix)
    return np.array(rows), names


def _chords_from_profiles(profiles: list[np.ndarray]) -> list[str]:
    """One triad a bar: the template with the highest cosine to the bar's pitch-class profile.

    A bar without energy (silence, a rest) keeps the chord before it (the first chord found
    fills the bars before it). Raises AccompanyError when no bar has any harmony.
    """
    templates, names = _triad_templates()
    found: list[str | None] = []
    for p in profiles:
        p = np.asarray(p, dtype=np.float64)
        if p.sum() < CHORD_MIN_ENERGY:
            found.append(None)
            continue
        found.append(names[int(np.argmax(templates @ (p / np.linalg.norm(p))))])
    first = next((c for c in found if c), None)
    if first is None:
        raise AccompanyError("no harmony found in the input (no pitched sound); nothing to follow")
    out, last = [], first
    for c in found:
        last = c or last
        out.append(last)
    return out


def _key_from_profile(profile: np.ndarray) -> str:
    """Krumhansl-Schmuckler on a recording's mean chroma (`engine.symbolic.theory`)."""
    from engine.symbolic.theory import key_from_profile

    tonic, mode = key_from_profile(profile)
    return f"{NOTE_NAMES[tonic]} {mode}"


# ---- writing the part ------------------------------------------------------------------------
@dataclass
class PartTrack:
    """One track of the part: notes as (start_q, end_q, pitch, velocity) on the grid."""

    name: str
    program: int
    notes: list[tuple[float, float, int, int]]
    is_drum: bool = False


def check_part(part: str) -> str:
    p = (part or "").strip().lower()
    if p not in PARTS:
        near = difflib.get_close_matches(p, PARTS, n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        raise AccompanyError(f"unknown part {part!r}; {hint}choose from {', '.join(PARTS)}")
    return p


def write_part(
    an: Analysis,
    part: str,
    *,
    style: str | None = None,
    seed: int = 0,
    model=None,
    progress: ProgressFn | None = None,
) -> list[PartTrack]:
    """The new part's tracks on ``an``'s grid (see the module docstring for each part)."""
    part = check_part(part)
    if part == "drums":
        return [drum_pattern(an, style=style)]
    return _model_parts(an, part, style=style, seed=seed, model=model, progress=progress)


def _chord_pcs(symbol: str) -> list[int]:
    from engine.symbolic.steer import parse_chord

    c = parse_chord(symbol)
    return sorted(c.pitch_classes, key=lambda pc: (pc - c.root) % 12)  # root, third, fifth


def _nearest_tone(pitch: int, pcs: list[int], lo: int, hi: int) -> int:
    """The chord tone nearest ``pitch`` (ties go down), then folded by octaves into lo..hi."""
    best = min(
        (pitch + d for d in range(-6, 7) if (pitch + d) % 12 in pcs),
        key=lambda p: (abs(p - pitch), p),
    )
    while best < lo:
        best += 12
    while best > hi:
        best -= 12
    return best


def _fold(pitch: int, lo: int, hi: int) -> int:
    while pitch < lo:
        pitch += 12
    while pitch > hi:
        pitch -= 12
    return pitch


def _top_line(notes: list[tuple[float, float, int, int]]) -> list[tuple[float, float, int, int]]:
    """The highest note at each onset, each held until the next onset at most (a melody)."""
    by_onset: dict[float, tuple[float, float, int, int]] = {}
    for n in notes:
        if n[0] not in by_onset or n[2] > by_onset[n[0]][2]:
            by_onset[n[0]] = n
    starts = sorted(by_onset)
    out = []
    for i, s in enumerate(starts):
        _, e, p, v = by_onset[s]
        if i + 1 < len(starts):
            e = min(e, starts[i + 1])
        out.append((s, e, p, v))
    return out


def _model_parts(an, part, *, style, seed, model, progress) -> list[PartTrack]:
    from symusic import Note, Score, Tempo, TimeSignature, Track

    from engine.symbolic import score_api as api
    from engine.symbolic.steer import Steering

    line = _top_line(an.notes)
    if not line:
        raise AccompanyError("no notes found in the input to write a part against")
    sm = model if isinstance(model, api.ScoreModel) else api.load(model or api.DEFAULT_MODEL)
    if part == "bass":
        parts, programs, names = ["bassline"], [BASS_PROGRAM], ["Bass"]
        ranges = [BASS_RANGE]
    elif part == "chords":
        parts, programs = list(CHORD_PARTS), list(CHORD_VOICE_PROGRAMS)
        names = ["Piano right hand (upper)", "Piano right hand (lower)", "Piano left hand"]
        ranges = list(CHORD_RANGES)
    else:
        parts, programs = list(STRING_PARTS), list(STRING_PROGRAMS)
        names = ["Violin", "Viola", "Cello"]
        ranges = list(STRING_RANGES)
    bq = an.bar_quarters
    window_q = WINDOW_BARS * bq
    windows = int(np.ceil(an.bars / WINDOW_BARS))
    out = {p: [] for p in programs}
    tpq = TICKS_PER_QUARTER
    for w in range(windows):
        if progress:
            progress(Progress(part, w * WINDOW_BARS, an.bars))
        w0 = w * window_q
        notes = [n for n in line if w0 <= n[0] < w0 + window_q]
        if not notes:
            continue
        s = Score(tpq)
        s.tempos.append(Tempo(0, float(min(max(an.tempo_bpm, 20.0), 300.0))))
        s.time_signatures.append(TimeSignature(0, an.numerator, an.denominator))
        tr = Track(name=INPUT_TRACK, program=MELODY_PROGRAM)
        for st, e, p, v in notes:
            end = min(e, w0 + window_q)
            t0 = round((st - w0) * tpq)
            tr.notes.append(Note(t0, max(1, round((end - w0) * tpq) - t0), p, max(1, min(127, v))))
        s.tracks.append(tr)
        # The window's detected chords steer the sampling: chord tones get a bonus in every
        # new part and are the only choice for the lowest one (given track first, so the
        # lowest new part is track len(parts)).
        bars = an.chords[w * WINDOW_BARS : (w + 1) * WINDOW_BARS]
        steer = Steering(
            progression=bars, total_bars=len(bars), bass_track=len(parts), cadence=False
        )
        try:
            g = sm.add_tracks(
                s,
                parts=parts,
                programs=programs,
                style=style,
                seed=derive_seed(seed, "window", w),
                steer=steer,
            )
        except api.ScoreModelError as e:
            raise AccompanyError(f"the score model could not write the {part}: {e}") from None
        gtpq = g.score.ticks_per_quarter
        for t in g.score.tracks:
            if t.program in out and t.name != INPUT_TRACK:
                for n in t.notes:
                    st = w0 + n.time / gtpq
                    if st >= w0 + window_q:
                        continue
                    end = min(w0 + (n.time + n.duration) / gtpq, w0 + window_q)
                    out[t.program].append((st, end, int(n.pitch), int(n.velocity)))
    if progress:
        progress(Progress(part, an.bars, an.bars))
    tracks = []
    lowest = len(programs) - 1
    for i, (prog, name, (lo, hi)) in enumerate(zip(programs, names, ranges, strict=True)):
        notes = []
        for st, e, p, v in sorted(out[prog]):
            if i == lowest or part == "chords":  # chord tones only
                bar = min(int(st // bq), an.bars - 1)
                p = _nearest_tone(p, _chord_pcs(an.chords[bar]), lo, hi)
                if part == "chords":  # piano chords change at the bar line
                    e = min(e, (bar + 1) * bq)
            else:
                p = _fold(p, lo, hi)
            notes.append((st, e, p, v))
        tracks.append(PartTrack(name, prog, notes))
    if part == "chords":
        return [_piano_chords(an, tracks)]
    return tracks


def _piano_chords(an: Analysis, voices: list[PartTrack]) -> PartTrack:
    """The model's three piano voices (already on chord tones) as one piano track.

    A bar where all three rest gets its chord held (root under a close triad, as
    `_block_chords` voices it), so the harmony never drops out; a pitch struck twice at
    once sounds once.
    """
    notes: dict[tuple[float, int], tuple[float, float, int, int]] = {}
    for v in voices:
        for n in v.notes:
            key = (n[0], n[2])
            if key not in notes or n[1] > notes[key][1]:
                notes[key] = n
    bq = an.bar_quarters
    sounding = {min(int(st // bq), an.bars - 1) for st, _, _, _ in notes.values()}
    held = _block_chords(an, held=True).notes
    for n in held:
        if int(n[0] // bq) not in sounding:
            notes[(n[0], n[2])] = n
    return PartTrack("Piano chords", CHORD_PROGRAM, sorted(notes.values()))


def _block_chords(an: Analysis, *, held: bool = False) -> PartTrack:
    """Each bar's chord on every beat (``held``: once, for the whole bar), root below a
    close-position triad voiced nearest the previous chord."""
    notes = []
    prev_center = float(CHORD_CENTER)
    beat = an.bar_quarters if held else an.beat_quarters
    per_bar = max(1, int(round(an.bar_quarters / beat)))
    for b, symbol in enumerate(an.chords):
        pcs = _chord_pcs(symbol)
        voicings = []
        for inv in range(3):
            order = pcs[inv:] + pcs[:inv]
            base = CHORD_CENTER - 9 + (order[0] - CHORD_CENTER + 9) % 12
            v = [base]
            for pc in order[1:]:
                v.append(v[-1] + (pc - v[-1]) % 12)
            voicings.append(v)
        triad = min(voicings, key=lambda v: (abs(np.mean(v) - prev_center), v[0]))
        prev_center = float(np.mean(triad))
        root = _fold(triad[0] - 12 - ((triad[0] - pcs[0]) % 12), 40, 52)
        for k in range(per_bar):
            s = b * an.bar_quarters + k * beat
            vel = 78 if k == 0 else 64
            for p in (root, *triad):
                notes.append((s, s + beat * 0.9, int(p), vel))
    return PartTrack("Piano chords", CHORD_PROGRAM, notes)


def drum_pattern(an: Analysis, *, style: str | None = None) -> PartTrack:
    """RULE-BASED drums: a fixed pattern a bar, chosen from the metre, density and style.

    - 4/4, 2/4 and other simple metres: kick on 1 (and 3 in 4/4; ``rock`` adds the "and" of
      3), snare on the backbeats (2 and 4), hi-hat eighths; sixteenths when the input has more
      than DENSE_ONSETS_PER_BEAT onsets a beat (below DENSE_MAX_BPM), quarters when it has
      fewer than SPARSE_ONSETS_PER_BEAT.
    - 3/4: waltz, kick on 1, soft snare on 2 and 3, hi-hat on the beats (eighths when dense).
    - 6/8, 9/8, 12/8: kick on each dotted-quarter group's start, snare on the second (and
      fourth), hi-hat on every eighth.
    - ``ballad`` and ``folk``: side stick instead of snare, softer; ``jazz``: ride
      "spang-a-lang" (swung eighths), pedal hi-hat on 2 and 4, feathered kick on the beats.
    A crash marks the first bar. Velocities are fixed per instrument and accent.
    """
    style = (style or DEFAULT_DRUM_STYLE).strip().lower()
    if style not in DRUM_STYLES:
        near = difflib.get_close_matches(style, DRUM_STYLES, n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        raise AccompanyError(
            f"unknown drum style {style!r}; {hint}choose from {', '.join(DRUM_STYLES)}"
        )
    bq = an.bar_quarters
    beat = an.beat_quarters
    beats = max(1, int(round(bq / beat)))
    soft = style in ("ballad", "folk")
    snare = SIDE_STICK if soft else SNARE
    dense = an.onsets_per_beat > DENSE_ONSETS_PER_BEAT and an.tempo_bpm < DENSE_MAX_BPM
    sparse = an.onsets_per_beat < SPARSE_ONSETS_PER_BEAT or soft
    hits: list[tuple[float, int, int]] = []  # (quarter in bar, key, velocity)
    if beat == 1.5:  # compound metre: groups of three eighths
        for g in range(beats):
            hits.append((g * 1.5, KICK if g % 2 == 0 else snare, 96 if g == 0 else 84))
        hits += [(e * 0.5, CLOSED_HAT, 70 if e % 3 == 0 else 52) for e in range(int(bq * 2))]
    elif style == "jazz":
        for k in range(beats):
            hits.append((k * beat, RIDE, 80))
            hits.append((k * beat, KICK, 40))
            if k % 2 == 1:
                hits.append((k * beat, PEDAL_HAT, 70))
                hits.append((k * beat + beat * 2 / 3, RIDE, 64))  # swung "a" before the next
    else:
        step = 0.25 if dense else (1.0 if sparse else 0.5)
        step *= beat
        n = int(round(bq / step))
        hits += [(i * step, CLOSED_HAT, 72 if (i * step) % beat == 0 else 54) for i in range(n)]
        if beats == 3:
            hits += [(0.0, KICK, 100), (beat, snare, 58), (2 * beat, snare, 58)]
        else:
            for k in range(beats):
                if k % 2 == 0 and (k == 0 or beats >= 4):
                    hits.append((k * beat, KICK, 100 if k == 0 else 90))
                elif k % 2 == 1:
                    hits.append((k * beat, snare, 70 if soft else 96))
            if style == "rock" and beats >= 4:
                hits.append((2.5 * beat, KICK, 84))
    notes = []
    for b in range(an.bars):
        for q, key, vel in hits:
            s = b * bq + q
            notes.append((s, s + min(0.25, beat / 4), key, vel))
    if notes:
        notes.append((0.0, 0.25, CRASH, 90))
    notes.sort()
    return PartTrack(f"Drums ({style})", 0, notes, is_drum=True)


# ---- MIDI, audio and the folder ------------------------------------------------------------
def part_score(an: Analysis, tracks: list[PartTrack]):
    """A symusic Score of the part whose seconds are the input's.

    MIDI input: the input's ticks, tempo map and time signature. Audio input: 480 ticks a
    quarter, one tempo change a beat (so each beat lands on its detected time), and, when the
    first bar line is later than LEAD_MIN_S, a silent lead-in bar before it.
    """
    from symusic import Note, Score, Tempo, TimeSignature, Track

    if an.kind == "midi":
        tpq = an.ticks_per_quarter
        score = Score(tpq)
        for tick, qpm in an.tempo_map:
            score.tempos.append(Tempo(int(tick), float(qpm)))
        lead_q = 0.0
    else:
        tpq = TICKS_PER_QUARTER
        score = Score(tpq)
        t0 = float(an.time_of(0.0))
        lead_q = an.bar_quarters if t0 > LEAD_MIN_S else 0.0
        if lead_q:
            score.tempos.append(Tempo(0, 60.0 * lead_q / t0))
        end_q = max([e for t in tracks for _, e, _, _ in t.notes], default=0.0) + 1
        qs = np.arange(0, int(np.ceil(end_q)) + 1, dtype=np.float64)
        times = an.time_of(qs)
        times[0] = max(times[0], 0.0)
        for k in range(len(qs) - 1):
            qpm = 60.0 / max(times[k + 1] - times[k], 1e-3)
            score.tempos.append(Tempo(round((lead_q + k) * tpq), float(qpm)))
    score.time_signatures.append(TimeSignature(0, an.numerator, an.denominator))
    for pt in tracks:
        tr = Track(name=pt.name, program=pt.program, is_drum=pt.is_drum)
        for s, e, p, v in pt.notes:
            a = round((lead_q + s) * tpq)
            tr.notes.append(Note(a, max(1, round((lead_q + e) * tpq) - a), int(p), int(v)))
        tr.notes.sort(key=lambda n: (n.time, n.pitch))
        score.tracks.append(tr)
    return score


@dataclass
class Accompaniment:
    """The result of `accompany`: the analysis, the part's tracks and its score."""

    input_path: Path
    part: str
    style: str | None
    seed: int
    analysis: Analysis
    tracks: list[PartTrack]
    score: object  # symusic Score (see part_score)
    model: dict | None = None  # {"name", "sha256"} when the score model wrote the part
    hints: dict = field(default_factory=dict)  # the tempo and metre the listener gave

    def midi_bytes(self) -> bytes:
        from engine.symbolic.midi import midi_bytes

        return midi_bytes(self.score)

    def onsets_s(self) -> np.ndarray:
        """Onset times (seconds) of the part's notes, sorted."""
        qs = np.array([s for t in self.tracks for s, _, _, _ in t.notes], dtype=np.float64)
        return np.sort(self.analysis.time_of(qs)) if qs.size else qs

    def save(
        self,
        folder: str | Path,
        *,
        overwrite: bool = False,
        soundfont: str | Path | None = None,
        progress: ProgressFn | None = None,
    ) -> dict:
        """Write part.mid, part.wav, mix.wav (and mix.mid for MIDI input) and generation.json
        into a new ``folder`` (a hidden folder renamed into place); return the record."""
        return _save(self, Path(folder), overwrite, soundfont, progress)


def check_request(
    part: str,
    *,
    style: str | None = None,
    seed: int = 0,
    model=None,
    tempo_bpm: float | None = None,
    meter: str | None = None,
) -> str:
    """The cheap checks of an `accompany` call, before any analysis or model: the part, the
    style (a drum style for drums, a score-model style for the others), the seed, the tempo
    and metre given (`check_hints`) and the score model's name or folder (found, not
    loaded). Returns the part's name as `check_part`.
    """
    from engine.symbolic import score_api as api

    part = check_part(part)
    check_seed(seed, AccompanyError)
    check_hints(tempo_bpm, meter)
    try:
        if part == "drums":
            drum_pattern(Analysis("midi", 120, 4, 4, "", [], 0, 0, 0), style=style)
            return part
        api.check_conditions(style)
        if not isinstance(model, api.ScoreModel):
            api.resolve_model_path(model or api.DEFAULT_MODEL)
    except api.ScoreModelError as e:
        raise AccompanyError(str(e)) from None
    return part


def accompany(
    input_path: str | Path,
    part: str = "bass",
    *,
    style: str | None = None,
    seed: int = 0,
    model=None,
    tempo_bpm: float | None = None,
    meter: str | None = None,
    progress: ProgressFn | None = None,
) -> Accompaniment:
    """Analyse ``input_path`` (an audio file: wav, flac, ogg, mp3 …; or a MIDI file) and write
    ``part`` (bass, chords, strings, drums) on its beats.

    ``style``: the score model's style for bass/chords/strings, the drum style (pop, rock,
    ballad, jazz, folk) for drums. ``seed`` 0..2**32-1 (the same seed, input and model make
    the same part). ``model``: the score model's name, folder or a loaded `ScoreModel` (not
    used for drums). ``tempo_bpm`` (quarter notes a minute) and ``meter`` (4/4, 3/4, 2/4,
    6/8): what you know of an audio input, when it is heard wrong (`analyze`). ``progress``
    gets `engine.progress.Progress` events: stage "analysis" (0..1 of 1), then the part's
    name (bars done of bars) for a part the model writes; `Accompaniment.save` adds "audio"
    (0..3 of 3).

    Returns an `Accompaniment`: ``.analysis`` (tempo in BPM, beat times in seconds, meter,
    key), ``.score`` (a symusic Score of the part, in ticks), ``.onsets_s()`` (seconds) and
    ``.save(folder)``, which writes ``part.mid``, ``part.wav``, ``mix.wav`` (the input
    and the part, stereo) and ``generation.json`` and returns the record. Raises
    `AccompanyError` (a `engine.errors.UserError`).
    """
    part = check_request(
        part, style=style, seed=seed, model=model, tempo_bpm=tempo_bpm, meter=meter
    )
    if progress:
        progress(Progress("analysis", 0, 1))
    an = analyze(input_path, transcribe_notes=part in MODEL_PARTS, tempo_bpm=tempo_bpm, meter=meter)
    if part in MODEL_PARTS:  # (after the input is known to be usable)
        from engine.symbolic import score_api as api

        if not isinstance(model, api.ScoreModel):
            model = api.load(model or api.DEFAULT_MODEL)
    if progress:
        progress(Progress("analysis", 1, 1))
    tracks = write_part(an, part, style=style, seed=seed, model=model, progress=progress)
    if not any(t.notes for t in tracks):
        raise AccompanyError(f"the {part} came out empty; try another --seed")
    info = None
    if part in MODEL_PARTS:
        path = Path(model.path)
        info = {"name": path.name, "sha256": weights_sha256(path)}
    hints = {"tempo_bpm": tempo_bpm, "meter": check_hints(None, meter)}
    return Accompaniment(
        Path(input_path),
        part,
        style,
        seed,
        an,
        tracks,
        part_score(an, tracks),
        info,
        {k: v for k, v in hints.items() if v is not None},
    )


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    from engine import __version__

    out = {"disco_musica": __version__, "python": platform.python_version()}
    for pkg in ("librosa", "symusic", "numpy", "music21", "mlx"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _input_audio(path: Path, sample_rate: int) -> np.ndarray:
    """The input file as float32 [frames, 2] at ``sample_rate``."""
    import warnings

    from engine.audio.io import load_audio, resample
    from engine.errors import InputWarning

    with warnings.catch_warnings():  # a file cut short was reported when it was analysed
        warnings.simplefilter("ignore", InputWarning)
        audio, sr = load_audio(path)
    audio = audio if audio.shape[1] >= 2 else np.repeat(audio, 2, axis=1)
    audio = np.ascontiguousarray(audio[:, :2], dtype=np.float32)
    if sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
    return audio


def _mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = max(a.shape[0], b.shape[0])
    out = np.zeros((n, 2), dtype=np.float64)
    out[: a.shape[0]] += a
    out[: b.shape[0]] += b
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    ceiling = 10 ** (MIX_PEAK_DB / 20)
    if peak > ceiling:
        out *= ceiling / peak
    return out.astype(np.float32)


def _save(acc: Accompaniment, folder: Path, overwrite, soundfont, progress) -> dict:
    from engine.audio.render import (
        NO_EFFECTS,
        normalize_loudness,
        render_audio,
        write_audio,
    )

    check_new_folder(folder, overwrite, AccompanyError)
    with OutputFolder(folder, overwrite=overwrite, error=AccompanyError) as out:
        tmp = out.path
        if progress:
            progress(Progress("audio", 0, 3))
        part_mid = acc.midi_bytes()
        (tmp / "part.mid").write_bytes(part_mid)
        part_audio, render_info = render_audio(part_mid, soundfont=soundfont)
        sr = int(render_info["sample_rate"])
        write_audio(part_audio, sr, tmp / "part.wav")
        if progress:
            progress(Progress("audio", 1, 3))
        an = acc.analysis
        if an.kind == "audio":
            inp = _input_audio(acc.input_path, sr)
            _, in_info = normalize_loudness(inp, sr)
            level = (in_info["lufs_before"] or -20.0) + PART_LEVEL_DB
            part_level, _ = normalize_loudness(part_audio, sr, target_lufs=level, peak_db=0.0)
            mix = _mix(inp, part_level)
        else:
            from engine.symbolic.midi import midi_bytes, read_midi

            full = read_midi(acc.input_path)
            for t in acc.score.tracks:
                full.tracks.append(t.copy())
            (tmp / "mix.mid").write_bytes(midi_bytes(full))
            mix, _ = render_audio(tmp / "mix.mid", soundfont=soundfont, effects=NO_EFFECTS)
        write_audio(mix, sr, tmp / "mix.wav")
        if progress:
            progress(Progress("audio", 3, 3))
        record = {
            "engine": "accompany",
            "input": {
                "path": str(acc.input_path.resolve()),
                "sha256": sha256_file(acc.input_path),
                "kind": an.kind,
            },
            "part": acc.part,
            "style": acc.style,
            "seed": acc.seed,
            "hints": acc.hints,
            "analysis": an.to_dict(),
            "tracks": [
                {"name": t.name, "program": t.program, "is_drum": t.is_drum, "notes": len(t.notes)}
                for t in acc.tracks
            ],
            "model": acc.model,
            "render": render_info,
            "versions": _versions(),
            "replay": _replay_command(acc),
        }
        record = write_record(tmp, record)
    return with_replaced(record, out)


def _replay_command(acc: Accompaniment) -> str:
    cmd = f"disco-musica accompany {acc.input_path} --part {acc.part} --seed {acc.seed}"
    if "tempo_bpm" in acc.hints:
        cmd += f" --tempo {names.num(acc.hints['tempo_bpm'])}"
    if "meter" in acc.hints:
        cmd += f" --meter {acc.hints['meter']}"
    return cmd + (f" --style {acc.style}" if acc.style else "")
