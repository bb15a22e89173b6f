"""Measured-quality metrics for generated symbolic music.

Every metric takes a ``symusic.Score`` and reports a number a model card can quote next to the
same number measured on a reference corpus (`corpus_reference_stats`):

- `analyze_key` / `key_adherence`: the key music21 hears, and whether it is the requested one.
- `pitch_in_scale_rate`: share of notes whose pitch class lies in the key's scale.
- `pitch_class_entropy`: spread of the 12-bin pitch-class histogram, in bits.
- `parallel_perfects_per_100_beats`: textbook parallel fifths and octaves between voices.

Times are read in ticks (``score.ticks_per_quarter`` per quarter note); scores in quarter or
second units are converted to ticks first. "Beats" are quarter notes throughout, whatever the
time signature. Drum tracks (``track.is_drum``) carry instrument numbers, not pitches, so the
pitch metrics ignore them. A score with no pitched notes raises ``ValueError``.

Pitch-class numbering: 0 = C, 1 = C#/Db, ..., 11 = B.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
from symusic import Score, TimeUnit

from engine.symbolic import theory

if TYPE_CHECKING:
    pass

MODES = theory.MODES
MAJOR_SCALE_STEPS = theory.MAJOR_SCALE_STEPS
MINOR_SCALE_STEPS = theory.MINOR_SCALE_STEPS
PERFECT_FIFTH = 7  # semitones, mod 12
PERFECT_OCTAVE = 0  # semitones, mod 12 (unison and octaves alike)
SILENT = -1  # sampled "pitch" of a voice that is not sounding
MAX_PITCH_CLASS_ENTROPY = math.log2(12)  # bits, all 12 pitch classes equally often

# music21's own default, ``analyze("key")`` (Aarden-Essen weightings): the corpus builder
# labels every training piece's key with it, so key adherence is judged by the same ear.
# On 100 Bach chorales its tonic matches the final bass note in 82 (Krumhansl-Schmuckler,
# "key.krumhansl": 74). It hears an even-rhythm C major scale as A minor (no tonic weight).
DEFAULT_KEY_METHOD = "key"


def _in_ticks(score: Score) -> Score:
    """The score with tick times (quarter- and second-unit scores are converted)."""
    return score if score.ttype == TimeUnit.tick else score.to("tick")


def _note_arrays(tracks: Iterable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onsets [N] (ticks), durations [N] (ticks) and MIDI pitches [N] of all notes in tracks."""
    times, durations, pitches = [], [], []
    for track in tracks:
        arrays = track.notes.numpy()
        times.append(arrays["time"].astype(np.int64))
        durations.append(arrays["duration"].astype(np.int64))
        pitches.append(arrays["pitch"].astype(np.int64))
    if not times:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(times), np.concatenate(durations), np.concatenate(pitches)


def _pitched_notes(score: Score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onsets, durations (ticks) and pitches of all non-drum notes; ValueError if there are none."""
    times, durations, pitches = _note_arrays(t for t in score.tracks if not t.is_drum)
    if len(pitches) == 0:
        raise ValueError("the score has no pitched notes to measure (it is empty or drums only)")
    return times, durations, pitches


def analyze_key(score: Score, method: str = DEFAULT_KEY_METHOD) -> tuple[int, str]:
    """The key music21 finds in the score, as (tonic pitch class 0..11, "major" | "minor").

    The non-drum notes are placed in a music21 ``Part`` at their quarter-note offsets, with
    their quarter-note durations (the key finders weight each pitch class by duration), and
    ``part.analyze(method)`` is asked for the key. ``method`` is any music21 key-analysis
    name; the default ``"key"`` (DEFAULT_KEY_METHOD) is music21's own, Aarden-Essen, the ear
    the corpus's keys are labelled with; ``"key.krumhansl"`` is Krumhansl-Schmuckler, which
    `eval prompts` and issue 11's key figure use. Raises ValueError for a score with no
    pitched notes or whose notes all have zero duration.
    """
    score = _in_ticks(score)
    times, durations, pitches = _pitched_notes(score)
    if durations.sum() <= 0:
        raise ValueError("the score's notes all have zero duration, so no key can be heard")
    if method in theory.METHOD_PROFILES:  # music21's computation, without building its stream
        profile = theory.pitch_class_profile(pitches, durations)
        return theory.key_from_profile(profile, theory.METHOD_PROFILES[method])
    from music21 import note, stream

    tpq = score.ticks_per_quarter
    part = stream.Part()
    for t, d, p in zip(times.tolist(), durations.tolist(), pitches.tolist(), strict=True):
        n = note.Note(p)
        n.quarterLength = Fraction(d, tpq)
        part.coreInsert(Fraction(t, tpq), n)
    part.coreElementsChanged()
    found = part.analyze(method)
    return found.tonic.pitchClass, found.mode


def key_adherence(score: Score, tonic: int, mode: str, method: str = DEFAULT_KEY_METHOD) -> bool:
    """Whether `analyze_key` finds exactly the requested key.

    The relative major/minor (same key signature, other tonic) counts as a miss.
    """
    theory.check_key(tonic, mode)
    return analyze_key(score, method) == (tonic, mode)


scale_pitch_classes = theory.scale_pitch_classes


def pitch_in_scale_rate(score: Score, tonic: int, mode: str) -> float:
    """Share (0..1) of non-drum notes whose pitch class is in `scale_pitch_classes`.

    Every note counts once, whatever its duration.
    """
    scale = np.zeros(12, dtype=bool)
    scale[list(scale_pitch_classes(tonic, mode))] = True
    _, _, pitches = _pitched_notes(_in_ticks(score))
    return float(scale[pitches % 12].mean())


def pitch_class_entropy(score: Score) -> float:
    """Shannon entropy in bits (0 .. MAX_PITCH_CLASS_ENTROPY = log2 12) of the pitch classes.

    The histogram counts notes (each note once, whatever its duration), over the non-drum
    tracks. One repeated pitch class gives 0; all 12 equally often give log2(12).
    """
    _, _, pitches = _pitched_notes(_in_ticks(score))
    counts = np.bincount(pitches % 12, minlength=12)
    p = counts[counts > 0] / counts.sum()
    return float(np.sum(p * np.log2(1.0 / p)))


def _sample_voice(
    times: np.ndarray, durations: np.ndarray, pitches: np.ndarray, grid: np.ndarray
) -> np.ndarray:
    """The pitch a voice sounds at each grid time [G] (ticks), or SILENT.

    A note sounds at t when onset <= t < onset + duration (a zero-length note only at its
    onset). Where several notes sound (a chord, or a legato overlap), the most recently
    started one wins, the highest pitch among simultaneous onsets.
    """
    order = np.lexsort((pitches, times))
    notes = list(
        zip(
            times[order].tolist(),
            (times + durations)[order].tolist(),
            pitches[order].tolist(),
            strict=True,
        )
    )
    out = np.full(len(grid), SILENT, dtype=np.int64)
    active: list[tuple[int, int, int]] = []
    k = 0
    for g, t in enumerate(grid.tolist()):
        while k < len(notes) and notes[k][0] <= t:
            active.append(notes[k])
            k += 1
        active = [n for n in active if n[1] > t or n[0] == t]
        if active:
            out[g] = active[-1][2]
    return out


def _count_parallels(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(fifths, octaves) between two voices sampled on the same grid [G]."""
    sounding = (a != SILENT) & (b != SILENT)
    da, db = np.diff(a), np.diff(b)
    moving_together = (
        sounding[:-1] & sounding[1:] & (da != 0) & (db != 0) & (np.sign(da) == np.sign(db))
    )
    interval = np.abs(a - b) % 12
    fifths = moving_together & (interval[:-1] == PERFECT_FIFTH) & (interval[1:] == PERFECT_FIFTH)
    octaves = moving_together & (interval[:-1] == PERFECT_OCTAVE) & (interval[1:] == PERFECT_OCTAVE)
    return int(fifths.sum()), int(octaves.sum())


def parallel_perfects_per_100_beats(
    score: Score, voices: list[int] | None = None
) -> tuple[float, dict]:
    """Parallel fifths and octaves per 100 quarter-note beats, and their counts.

    ``voices`` are track indices, each track read as one voice (default: every non-drum
    track with notes). Each voice's sounding pitch (see `_sample_voice`) is sampled on one
    grid: the union of all the voices' note onsets. For every pair of voices and every two
    consecutive grid points, one parallel is counted when both voices sound at both points,
    both change pitch in the same direction, and their interval mod 12 is a perfect fifth at
    both points (a parallel fifth) or a unison/octave at both points (a parallel octave).
    Contrary or oblique motion, repeated notes, and motion from one perfect class into the
    other never count; neither does motion into or out of a rest. A track that doubles
    another (a colla parte instrument) makes every shared move a parallel octave or unison:
    pass ``voices`` to choose the real voices.

    Returns ``(rate, {"fifths": int, "octaves": int, "beats": float})`` where ``beats`` is the
    score length in quarter notes (latest note end over all tracks) and
    ``rate = (fifths + octaves) / beats * 100``. Raises ValueError for a score with no notes
    or no length, or for a bad voice index.
    """
    score = _in_ticks(score)
    all_times, all_durations, _ = _note_arrays(score.tracks)
    if len(all_times) == 0:
        raise ValueError("the score has no notes to measure")
    beats = float((all_times + all_durations).max()) / score.ticks_per_quarter
    if beats <= 0:
        raise ValueError("the score has zero length, so no rate per beat can be given")

    if voices is None:
        voices = [i for i, t in enumerate(score.tracks) if not t.is_drum and len(t.notes) > 0]
    for v in voices:
        if not isinstance(v, int | np.integer) or not 0 <= v < len(score.tracks):
            raise ValueError(
                f"voice {v!r} is not a track index (the score has {len(score.tracks)} tracks)"
            )
    if len(set(voices)) != len(voices):
        raise ValueError(f"voices must not repeat a track, got {voices}")

    per_voice = [_note_arrays([score.tracks[v]]) for v in voices]
    onsets = [times for times, _, _ in per_voice]
    grid = np.unique(np.concatenate(onsets)) if onsets else np.zeros(0, dtype=np.int64)
    sampled = [_sample_voice(*arrays, grid) for arrays in per_voice]

    fifths = octaves = 0
    for i in range(len(sampled)):
        for j in range(i + 1, len(sampled)):
            f, o = _count_parallels(sampled[i], sampled[j])
            fifths += f
            octaves += o
    rate = (fifths + octaves) / beats * 100.0
    return rate, {"fifths": fifths, "octaves": octaves, "beats": beats}


def corpus_reference_stats(scores: Iterable[tuple[Score, int, str]]) -> dict:
    """Mean metrics over (score, tonic, mode) triples, for side-by-side comparison.

    Returns ``{"n_scores", "mean_pitch_in_scale_rate", "mean_pitch_class_entropy" (bits),
    "mean_parallel_perfects_per_100_beats"}``; each score counts once (an unweighted mean
    over scores, not over notes). The parallel rate uses every non-drum track as a voice.
    Raises ValueError for an empty iterable.
    """
    rates, entropies, parallels = [], [], []
    for score, tonic, mode in scores:
        rates.append(pitch_in_scale_rate(score, tonic, mode))
        entropies.append(pitch_class_entropy(score))
        parallels.append(parallel_perfects_per_100_beats(score)[0])
    if not rates:
        raise ValueError("no scores given to measure")
    return {
        "n_scores": len(rates),
        "mean_pitch_in_scale_rate": float(np.mean(rates)),
        "mean_pitch_class_entropy": float(np.mean(entropies)),
        "mean_parallel_perfects_per_100_beats": float(np.mean(parallels)),
    }


# ---- texture, part-writing and form (issue 11) ---------------------------------------------
def _track_notes(track) -> list[tuple[int, int, int]]:
    return sorted(
        (int(n.time), int(n.time + max(n.duration, 1)), int(n.pitch)) for n in track.notes
    )


def max_simultaneous(track) -> int:
    """The most notes one track sounds at one moment (a note sounds from onset to end)."""
    events = []
    for start, end, _ in _track_notes(track):
        events += [(start, 1), (end, -1)]
    events.sort(key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, d in events:
        now += d
        most = max(most, now)
    return most


def duplicate_notes(track) -> int:
    """Notes that repeat another of the same track: same pitch and onset."""
    keys = [(int(n.time), int(n.pitch)) for n in track.notes]
    return len(keys) - len(set(keys))


def chord_notes(track) -> int:
    """Notes of a track that sound while another of its notes sounds (overlaps)."""
    notes = _track_notes(track)
    count = 0
    latest_end = -1
    for i, (start, end, _) in enumerate(notes):
        overlaps = latest_end > start or (i + 1 < len(notes) and notes[i + 1][0] < end)
        count += overlaps
        latest_end = max(latest_end, end)
    return count


def _moments(score: Score, voices: list[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    per_voice = [_note_arrays([score.tracks[v]]) for v in voices]
    onsets = [times for times, _, _ in per_voice]
    grid = np.unique(np.concatenate(onsets)) if onsets else np.zeros(0, dtype=np.int64)
    return grid, [_sample_voice(*arrays, grid) for arrays in per_voice]


def crossing_and_spacing(score: Score, voices: list[int]) -> dict:
    """Shares of moments (the onsets of ``voices``, given top to bottom) where two adjacent
    voices cross (the upper below the lower) and where two adjacent upper voices (not the
    lowest) are more than an octave apart; each among the moments both voices sound."""
    score = _in_ticks(score)
    grid, sampled = _moments(score, voices)
    crossed = both = wide = upper_both = 0
    for k in range(len(sampled) - 1):
        a, b = sampled[k], sampled[k + 1]
        sounding = (a != SILENT) & (b != SILENT)
        both += int(sounding.sum())
        crossed += int((sounding & (a < b)).sum())
        if k + 1 < len(sampled) - 1:
            upper_both += int(sounding.sum())
            wide += int((sounding & (a - b > 12)).sum())
    return {
        "crossing": crossed / both if both else 0.0,
        "wide_spacing": wide / upper_both if upper_both else 0.0,
        "moments": int(both),
    }


def medians_in_order(score: Score, voices: list[int]) -> bool:
    """Whether the median pitches of ``voices`` (top to bottom) never rise."""
    med = [float(np.median([n.pitch for n in score.tracks[v].notes])) for v in voices]
    return all(a >= b for a, b in zip(med, med[1:], strict=False))


def final_tonic_in_bass(score: Score, tonic: int) -> bool:
    """Whether the lowest note sounding at the piece's last onset is the tonic."""
    score = _in_ticks(score)
    times, durations, pitches = _pitched_notes(score)
    if not len(times):
        return False
    last = times.max()
    sounding = (times == last) | ((times <= last) & (times + durations > last))
    return int(pitches[sounding].min()) % 12 == tonic


def silent_bar_share(track, bar_ticks: int, bars: int) -> float:
    """Share of ``bars`` bars in which the track sounds no note at all."""
    heard = np.zeros(bars, dtype=bool)
    for start, end, _ in _track_notes(track):
        first, last = start // bar_ticks, (max(end, start + 1) - 1) // bar_ticks
        heard[max(0, first) : min(bars, last + 1)] = True
    return float(1 - heard.mean()) if bars else 0.0


def bass_root_rate(track, bar_ticks: int, roots: list[int | None]) -> float | None:
    """Share of the bars with a chord (``roots``: root pitch class per bar, None: no chord)
    where ``track`` sounds the chord's root at the bar's first beat."""
    notes = _track_notes(track)
    hits = total = 0
    for bar, root in enumerate(roots):
        if root is None:
            continue
        total += 1
        t = bar * bar_ticks
        at = [p for s, e, p in notes if s <= t < e]
        hits += bool(at) and min(at) % 12 == root
    return hits / total if total else None
