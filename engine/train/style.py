"""Has a fine-tune learnt the user's music? Style profiles of sets of pieces, and distances.

A `StyleProfile` is what a set of pieces (a dataset's MIDI files, or the samples a model
writes at a validation) has in common, measured objectively; `distance` says how far two
profiles are apart, one number in [0, 1] per measure (0: the same) and their mean,
``"overall"``. Generated samples whose distances to the dataset fall as training goes on are
the proof that the model moves towards the user's music; `compare_table` puts the base and the
fine-tuned model's distances side by side for the run's report.

Units: times in quarter notes ("beats", as everywhere in the project: `engine.symbolic.quality`),
whatever the time signature. Drum tracks (``track.is_drum``) carry instruments, not pitches,
and are left out of every measure. A piece with no pitched notes counts in ``empty`` and moves
no measure (report the share of empty samples beside the distances).

The measures (`MEASURES`, in this order; the histograms are counts, normalised when compared):

- ``pitch_class`` [12]: notes per pitch class (C first), each note once whatever its length,
  transposition kept: a user who writes in D and A should get D and A back.
- ``pitch_class_in_key`` [12]: the same, relative to the tonic of the key found in each piece
  (degree 0 = tonic), so modal colour shows apart from the key: a Dorian piece heard as minor
  has its major sixth (degree 9) where a minor piece has its minor sixth (degree 8).
- ``interval`` [25]: melodic intervals -12..+12 semitones (wider leaps clipped into the end
  bins) between successive notes of each track's top line: at each onset of a track its
  highest note starting there (a monophonic track is its own top line; in a chordal track it
  is the melody players hear on top). Intervals are never measured across tracks.
- ``key`` and ``mode``: pieces per key ("D minor") and per mode, one vote a piece, from the
  project's one key finder (`engine.symbolic.theory`, Aarden-Essen profiles on the pitch-class
  durations, as `engine.symbolic.quality.analyze_key`). It tells major from minor only;
  modes (Dorian, Mixolydian …) show in ``pitch_class_in_key``.
- ``meter``: bars per time signature ("7/8"), up to the end of the bar the music ends in; a
  piece without one is in 4/4 (MIDI's default).
- ``onset_in_bar``: onsets per (time signature, position in the bar on a grid of 1/12 beat),
  keyed ``"7/8@18"``: duplets (6), triplets (4) and sixteenths (3) all land on the grid. An
  onset is a distinct start time within a track (a chord's notes are one onset).
- ``onset_in_beat`` [12]: the same positions folded onto one beat (counted from the bar line):
  the swing and subdivision feel, comparable across meters.
- ``duration``: notes per duration class (`DURATION_CLASSES`, in beats, the nearest on a log
  scale): "1/2" is an eighth note, "1/3" a triplet eighth.
- ``articulation``: mean ratio of a note's duration to the time to its track's next onset
  (its inter-onset interval, IOI), clipped to [0, `MAX_ARTICULATION`]: about 1 legato, 0.3
  staccato. The last onset of each track has no IOI and does not count.
- ``notes_per_beat``: notes over the beats from each piece's first onset to its last note end,
  summed over pieces.
- ``polyphony``: mean number of notes sounding while any sounds (total note time over the
  time some note sounds): 1 for a melody, about 4 for a chorale.

`distance`: histograms by the Jensen-Shannon distance with base 2 (the square root of the
JS divergence; 0 for equal distributions, 1 for disjoint ones; an empty histogram is at 0 from
another empty one and at 1 from any other), scalars by ``|a - b| / (|a| + |b|)`` (0 when both
are 0; a ratio of 2 is at 1/3, of 3 at 1/2), ``"overall"`` the mean of all.

Audio (`AudioProfile`, `profile_audio`, `audio_distance`): the mean chroma, the tempo
distribution and the onset rate, from the project's feature extractor
(`engine.data.features.audio_features`: librosa chroma, the one beat chain's tempo), which
also computes the features stored beside each dataset item, so a dataset's profile can be
read from those (`profile_audio_features`) without decoding its audio again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine import names
from engine.errors import UserError
from engine.progress import Progress, ProgressFn
from engine.symbolic.midi import MIDI_DEFAULT_METER

PROFILE_FORMAT = 1  # the ``format`` of `StyleProfile.to_dict` / `AudioProfile.to_dict`

GRID = 12  # onset positions a beat: duplets, triplets and sixteenths all land
MAX_INTERVAL = 12  # semitones; wider leaps count in the end bins
INTERVALS = tuple(range(-MAX_INTERVAL, MAX_INTERVAL + 1))
MAX_ARTICULATION = 2.0  # duration / IOI above this (a note held over rests) counts as this
# Duration classes in beats (quarter notes), each note in the nearest on a log scale.
DURATION_CLASSES = tuple(
    Fraction(x)
    for x in (
        "1/8", "1/6", "1/4", "1/3", "3/8", "1/2", "2/3", "3/4", "1", "4/3", "3/2", "2", "3",
        "4", "6", "8",
    )
)  # fmt: skip
DURATION_LABELS = tuple(str(f) for f in DURATION_CLASSES)
_LOG_DURATIONS = np.log2([float(f) for f in DURATION_CLASSES])
_DURATION_EDGES = (_LOG_DURATIONS[1:] + _LOG_DURATIONS[:-1]) / 2
KEY_LABELS = tuple(f"{t} {m}" for m in names.MODES for t in names.TONICS)

MEASURES = {
    "pitch_class": "pitch classes (absolute: the keys played)",
    "pitch_class_in_key": "pitch classes relative to each piece's tonic (modal colour)",
    "interval": "melodic intervals of each track's top line",
    "key": "keys found, one vote a piece",
    "mode": "major / minor, one vote a piece",
    "meter": "time signatures, by bars",
    "onset_in_bar": "onset positions in the bar (1/12-beat grid, per meter)",
    "onset_in_beat": "onset positions within the beat (1/12-beat grid)",
    "duration": "note-length classes",
    "articulation": "note length over inter-onset interval (staccato .. legato)",
    "notes_per_beat": "note density, notes a beat",
    "polyphony": "notes sounding at once",
}
HISTOGRAMS = (
    "pitch_class",
    "pitch_class_in_key",
    "interval",
    "key",
    "mode",
    "meter",
    "onset_in_bar",
    "onset_in_beat",
    "duration",
)
SCALARS = ("articulation", "notes_per_beat", "polyphony")


class StyleError(UserError, ValueError):
    """A style profile that cannot be read or compared."""


# ---- distances ------------------------------------------------------------------------------
def js_distance(p, q) -> float:
    """Jensen-Shannon distance, base 2, of two histograms [N] (counts; normalised here): in
    [0, 1]. Two empty histograms are at 0, an empty and a non-empty one at 1."""
    from scipy.spatial.distance import jensenshannon

    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    sp, sq = float(p.sum()), float(q.sum())
    if sp <= 0 or sq <= 0:
        return 0.0 if sp <= 0 and sq <= 0 else 1.0
    d = float(jensenshannon(p / sp, q / sq, base=2))
    return min(max(d if math.isfinite(d) else 0.0, 0.0), 1.0)


def scalar_distance(a: float, b: float) -> float:
    """``|a - b| / (|a| + |b|)``, in [0, 1] for numbers of one sign (0 when both are 0)."""
    den = abs(a) + abs(b)
    return 0.0 if den == 0 else min(abs(a - b) / den, 1.0)


def _as_vectors(a, b) -> tuple[list[float], list[float]]:
    """Two histograms (lists, or dicts label -> count) as aligned lists."""
    if isinstance(a, Mapping):
        labels = sorted(set(a) | set(b))
        return [a.get(k, 0.0) for k in labels], [b.get(k, 0.0) for k in labels]
    return list(a), list(b)


# ---- the symbolic profile -------------------------------------------------------------------
def _zeros(n: int) -> list[float]:
    return [0.0] * n


@dataclass
class StyleProfile:
    """Histograms (counts) and scalars measured over a set of pieces; see the module
    docstring for each measure. JSON-ready through `to_dict` / `from_dict`."""

    pieces: int = 0  # pieces measured (with pitched notes)
    notes: int = 0  # pitched notes measured
    empty: int = 0  # pieces given with no pitched notes
    skipped: int = 0  # files that could not be read (`profile_midi_files`)
    pitch_class: list[float] = field(default_factory=lambda: _zeros(12))
    pitch_class_in_key: list[float] = field(default_factory=lambda: _zeros(12))
    interval: list[float] = field(default_factory=lambda: _zeros(len(INTERVALS)))
    key: dict[str, float] = field(default_factory=dict)
    mode: dict[str, float] = field(default_factory=dict)
    meter: dict[str, float] = field(default_factory=dict)
    onset_in_bar: dict[str, float] = field(default_factory=dict)
    onset_in_beat: list[float] = field(default_factory=lambda: _zeros(GRID))
    duration: list[float] = field(default_factory=lambda: _zeros(len(DURATION_CLASSES)))
    articulation: float = 0.0
    notes_per_beat: float = 0.0
    polyphony: float = 0.0

    def to_dict(self) -> dict:
        """Plain numbers, lists and dicts (JSON-serialisable), with a ``format`` field."""
        out: dict = {"format": PROFILE_FORMAT}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                v = [float(x) for x in v]
            elif isinstance(v, dict):
                v = {str(k): float(x) for k, x in v.items()}
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> StyleProfile:
        """The profile `to_dict` wrote; `StyleError` for another format or a wrong shape."""
        return _from_dict(cls, d)

    def summary(self) -> dict:
        """Headline values for a report: the commonest meter and key, the minor share,
        articulation, notes a beat and polyphony."""
        minor = self.mode.get("minor", 0.0) / max(sum(self.mode.values()), 1e-12)
        return {
            "pieces": self.pieces,
            "notes": self.notes,
            "meter": max(self.meter, key=self.meter.get) if self.meter else None,
            "key": max(self.key, key=self.key.get) if self.key else None,
            "minor_share": round(minor, 3),
            "articulation": round(self.articulation, 3),
            "notes_per_beat": round(self.notes_per_beat, 3),
            "polyphony": round(self.polyphony, 3),
        }


def _from_dict(cls, d: Mapping):
    name = cls.__name__
    if not isinstance(d, Mapping) or d.get("format") != PROFILE_FORMAT:
        got = d.get("format") if isinstance(d, Mapping) else type(d).__name__
        raise StyleError(f"not a {name} of format {PROFILE_FORMAT} (got {got!r}); measure it again")
    proto = cls()
    kwargs = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        v, like = d[f.name], getattr(proto, f.name)
        if isinstance(like, list):
            if not isinstance(v, list) or len(v) != len(like):
                raise StyleError(f"{name}.{f.name} must be a list of {len(like)} numbers")
            v = [float(x) for x in v]
        elif isinstance(like, dict):
            if not isinstance(v, Mapping):
                raise StyleError(f"{name}.{f.name} must map labels to numbers")
            v = {str(k): float(x) for k, x in v.items()}
        elif isinstance(like, int):
            v = int(v)
        else:
            v = float(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def _add(hist: dict[str, float], key: str, weight: float) -> None:
    hist[key] = hist.get(key, 0.0) + float(weight)


def _meters(score, end: int) -> list[tuple[int, int, int, int]]:
    """[(start tick, numerator, denominator, bar ticks)] of the score's time signatures, the
    first at tick 0 (4/4 when none is there), one a tick (the last wins)."""
    tpq = score.ticks_per_quarter
    by_tick: dict[int, tuple[int, int]] = {0: MIDI_DEFAULT_METER}
    for ts in sorted(score.time_signatures, key=lambda ts: ts.time):
        num, den = int(ts.numerator), int(ts.denominator)
        if num > 0 and den > 0 and int(ts.time) <= end:
            by_tick[max(int(ts.time), 0)] = (num, den)
    return [
        (t, num, den, max(1, round(tpq * 4 * num / den)))
        for t, (num, den) in sorted(by_tick.items())
    ]


def _measure(profile: StyleProfile, sums: dict, score) -> None:
    """Add one score (ticks) to ``profile`` (histograms) and ``sums`` (scalar totals)."""
    from engine.symbolic import quality, theory

    tpq = max(int(score.ticks_per_quarter), 1)
    tracks = []
    for track in score.tracks:
        if track.is_drum or not len(track.notes):
            continue
        a = track.notes.numpy()
        t = a["time"].astype(np.int64)
        d = np.maximum(a["duration"].astype(np.int64), 0)
        p = a["pitch"].astype(np.int64)
        order = np.lexsort((-p, t))  # by onset, the highest first at each onset
        tracks.append((t[order], d[order], p[order]))
    if not tracks:
        profile.empty += 1
        return
    t_all = np.concatenate([x[0] for x in tracks])
    d_all = np.concatenate([x[1] for x in tracks])
    p_all = np.concatenate([x[2] for x in tracks])
    profile.pieces += 1
    profile.notes += int(p_all.shape[0])

    pcs = np.bincount(p_all % 12, minlength=12).astype(np.float64)
    profile.pitch_class = (np.asarray(profile.pitch_class) + pcs).tolist()
    weights = theory.pitch_class_profile(p_all, np.maximum(d_all, 1))
    tonic, mode = theory.key_from_profile(
        weights, theory.METHOD_PROFILES[quality.DEFAULT_KEY_METHOD]
    )
    profile.pitch_class_in_key = (
        np.asarray(profile.pitch_class_in_key) + np.roll(pcs, -tonic)
    ).tolist()
    _add(profile.key, f"{names.TONICS[tonic]} {mode}", 1)
    _add(profile.mode, mode, 1)

    end = int((t_all + d_all).max())
    meters = _meters(score, end)
    starts = np.array([m[0] for m in meters], dtype=np.int64)
    for i, (start, num, den, bar) in enumerate(meters):
        if i + 1 < len(meters):
            bars = (meters[i + 1][0] - start) / bar
        else:  # the last meter: to the end of the bar the music ends in
            bars = math.ceil((end - start) / bar)
        if bars > 0:
            _add(profile.meter, f"{num}/{den}", bars)

    intervals = np.zeros(len(INTERVALS))
    on_beat = np.zeros(GRID)
    durations = np.zeros(len(DURATION_CLASSES))
    ratios = []
    for t, d, p in tracks:
        first = np.ones(t.shape[0], dtype=bool)
        first[1:] = t[1:] != t[:-1]  # the first (highest) note at each onset
        onsets, top = t[first], p[first]
        steps = np.clip(np.diff(top), -MAX_INTERVAL, MAX_INTERVAL) + MAX_INTERVAL
        intervals += np.bincount(steps, minlength=len(INTERVALS))
        # positions in the bar, per meter
        seg = np.maximum(np.searchsorted(starts, onsets, side="right") - 1, 0)
        for k in np.unique(seg).tolist():
            start, num, den, bar = meters[k]
            off = (onsets[seg == k] - start) % bar
            pos = np.rint(off * GRID / tpq).astype(np.int64)
            cells = max(1, round(bar * GRID / tpq))
            pos %= cells  # a hair before the bar line is on the next downbeat
            on_beat += np.bincount(pos % GRID, minlength=GRID)
            for cell, n in zip(*np.unique(pos, return_counts=True), strict=True):
                _add(profile.onset_in_bar, f"{num}/{den}@{int(cell)}", int(n))
        # note lengths and articulation
        beats = np.maximum(d, 1) / tpq
        cls = np.searchsorted(_DURATION_EDGES, np.log2(beats))
        durations += np.bincount(cls, minlength=len(DURATION_CLASSES))
        nxt = np.searchsorted(onsets, t, side="right")
        has = nxt < onsets.shape[0]
        if has.any():
            ioi = onsets[nxt[has]] - t[has]
            ratios.append(np.clip(d[has] / ioi, 0.0, MAX_ARTICULATION))
    profile.interval = (np.asarray(profile.interval) + intervals).tolist()
    profile.onset_in_beat = (np.asarray(profile.onset_in_beat) + on_beat).tolist()
    profile.duration = (np.asarray(profile.duration) + durations).tolist()
    if ratios:
        r = np.concatenate(ratios)
        sums["articulation"] += float(r.sum())
        sums["articulated"] += int(r.shape[0])

    first_onset = int(t_all.min())
    sums["beats"] += max(end - first_onset, 1) / tpq
    # polyphony: total note time over the time some note sounds (the union of the notes)
    order = np.argsort(t_all, kind="stable")
    s, reach = t_all[order], np.maximum.accumulate((t_all + d_all)[order])
    first = np.flatnonzero(np.r_[True, s[1:] >= reach[:-1]])  # where a sounding span begins
    last = np.r_[first[1:] - 1, s.shape[0] - 1]
    covered = int((reach[last] - s[first]).sum())
    sums["note_ticks"] += float(d_all.sum()) / tpq
    sums["sounding"] += covered / tpq


def _score_of(piece):
    """A symusic Score in ticks from a Score (any time unit) or a result with ``.score``
    (`engine.symbolic.score_api.GeneratedScore`)."""
    from symusic import TimeUnit

    score = getattr(piece, "score", piece)
    if not hasattr(score, "tracks") or not hasattr(score, "ticks_per_quarter"):
        raise StyleError(f"a style profile measures symusic Scores, not {type(piece).__name__}")
    return score if score.ttype == TimeUnit.tick else score.to("tick")


def _finish(profile: StyleProfile, sums: dict) -> StyleProfile:
    n = sums["articulated"]
    profile.articulation = sums["articulation"] / n if n else 0.0
    profile.notes_per_beat = profile.notes / sums["beats"] if sums["beats"] else 0.0
    profile.polyphony = sums["note_ticks"] / sums["sounding"] if sums["sounding"] else 0.0
    return profile


def _new_sums() -> dict:
    return dict.fromkeys(("articulation", "articulated", "beats", "note_ticks", "sounding"), 0)


def profile_scores(scores: Iterable) -> StyleProfile:
    """The `StyleProfile` of ``scores``: symusic Scores (ticks, quarters or seconds) or
    generation results with a ``.score`` (`GeneratedScore`). Pieces without pitched notes
    count in ``empty``."""
    profile, sums = StyleProfile(), _new_sums()
    for piece in scores:
        _measure(profile, sums, _score_of(piece))
    return _finish(profile, sums)


def profile_midi_files(
    paths: Iterable[str | Path], *, progress: ProgressFn | None = None
) -> StyleProfile:
    """The `StyleProfile` of MIDI files (read with `engine.symbolic.midi.read_midi`); files
    that cannot be read (not MIDI, corrupt, no notes, absurd timing) are skipped and counted
    in ``skipped``. ``progress`` gets ``Progress("files", done, total, path)``."""
    from engine.symbolic.midi import read_midi

    paths = list(paths)
    profile, sums = StyleProfile(), _new_sums()
    for i, path in enumerate(paths):
        try:
            score = read_midi(Path(path))
        except UserError:
            profile.skipped += 1
        else:
            _measure(profile, sums, _score_of(score))
        if progress is not None:
            progress(Progress("files", i + 1, len(paths), str(path)))
    return _finish(profile, sums)


def distance(a: StyleProfile, b: StyleProfile) -> dict[str, float]:
    """One number in [0, 1] per measure (`MEASURES`; 0: alike) and ``"overall"``, their mean:
    the Jensen-Shannon distance (base 2) of each histogram, ``|a - b| / (|a| + |b|)`` of each
    scalar. Symmetric; a profile is at 0 from itself."""
    out = {}
    for name in HISTOGRAMS:
        out[name] = js_distance(*_as_vectors(getattr(a, name), getattr(b, name)))
    for name in SCALARS:
        out[name] = scalar_distance(getattr(a, name), getattr(b, name))
    out["overall"] = float(np.mean(list(out.values())))
    return out


# ---- audio ----------------------------------------------------------------------------------
# Tempo bins: centres a sixth of an octave apart from 40 BPM (40, 44.9 … 226 BPM). A tempo is
# spread over them by a Gaussian in log BPM, TEMPO_SPREAD_BINS wide (about 12 %): a beat
# tracker's few per cent of error moves a histogram a little (89 and 91 BPM: JS 0.08), not from
# one bin into the next, while 90 and 140 BPM stay far apart (0.95).
TEMPO_MIN_BPM = 40.0
TEMPO_BINS_PER_OCTAVE = 6
TEMPO_BIN_COUNT = 16
TEMPO_SPREAD_BINS = 1.0
TEMPO_CENTRES_BPM = tuple(
    TEMPO_MIN_BPM * 2 ** (k / TEMPO_BINS_PER_OCTAVE) for k in range(TEMPO_BIN_COUNT)
)
AUDIO_MEASURES = {
    "chroma": "mean chroma (pitch classes heard, transposition kept)",
    "tempo": "tempo distribution (log-spaced BPM bins)",
    "onset_rate": "note onsets a second",
}


def tempo_histogram(bpm: float) -> np.ndarray:
    """[TEMPO_BIN_COUNT]: one tempo spread over the bins (a Gaussian in log BPM,
    `TEMPO_SPREAD_BINS` wide, sum 1); tempi beyond the bins count at the end bin. Zeros for
    NaN or a tempo of 0."""
    out = np.zeros(TEMPO_BIN_COUNT)
    if not math.isfinite(bpm) or bpm <= 0:
        return out
    x = math.log2(bpm / TEMPO_MIN_BPM) * TEMPO_BINS_PER_OCTAVE
    x = min(max(x, 0.0), TEMPO_BIN_COUNT - 1.0)
    out = np.exp(-0.5 * ((np.arange(TEMPO_BIN_COUNT) - x) / TEMPO_SPREAD_BINS) ** 2)
    return out / out.sum()


@dataclass
class AudioProfile:
    """Mean chroma, tempo distribution and onset rate of a set of recordings."""

    pieces: int = 0  # recordings measured
    seconds: float = 0.0  # their total length
    no_tempo: int = 0  # recordings in which fewer than two beats were found
    chroma: list[float] = field(default_factory=lambda: _zeros(12))  # chroma summed over frames
    tempo: list[float] = field(default_factory=lambda: _zeros(TEMPO_BIN_COUNT))
    onsets: int = 0  # note onsets found
    onset_rate: float = 0.0  # onsets a second over all recordings

    def to_dict(self) -> dict:
        out: dict = {"format": PROFILE_FORMAT}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = [float(x) for x in v] if isinstance(v, list) else v
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> AudioProfile:
        return _from_dict(cls, d)


def _onset_count(mel_db: np.ndarray, sr: int, hop: int) -> int:
    """Note onsets in a recording, from its mel spectrogram in dB (librosa's onset strength
    and peak picking, as the project's beat chain hears them)."""
    import librosa

    from engine.audio.io import quiet_libraries

    with quiet_libraries():
        env = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop)
        return int(librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop).size)


def profile_audio_features(features: Iterable[Mapping[str, np.ndarray]]) -> AudioProfile:
    """The `AudioProfile` of recordings given by their `engine.data.features.audio_features`
    (as computed, or as a dataset stores them: `load_features`)."""
    out = AudioProfile()
    for f in features:
        sr, hop = int(f["sample_rate"]), int(f["hop_length"])
        chroma = np.asarray(f["chroma"], dtype=np.float64)
        frames = chroma.shape[1]
        out.pieces += 1
        out.seconds += frames * hop / sr
        out.chroma = (np.asarray(out.chroma) + np.nan_to_num(chroma).sum(axis=1)).tolist()
        bpm = float(f["tempo_bpm"])
        if math.isfinite(bpm):
            out.tempo = (np.asarray(out.tempo) + tempo_histogram(bpm)).tolist()
        else:
            out.no_tempo += 1
        out.onsets += _onset_count(np.asarray(f["mel_db"]), sr, hop)
    out.onset_rate = out.onsets / out.seconds if out.seconds else 0.0
    return out


def profile_audio(
    signals: Iterable[tuple[np.ndarray, int]],
    *,
    features: Callable[[np.ndarray, int], Mapping] | None = None,
) -> AudioProfile:
    """The `AudioProfile` of recordings given as (samples [S] or [S, channels], sample
    rate in Hz). ``features``: the extractor (default `audio_features`)."""
    if features is None:
        from engine.data.features import audio_features as features
    return profile_audio_features(features(y, int(sr)) for y, sr in signals)


def audio_distance(a: AudioProfile, b: AudioProfile) -> dict[str, float]:
    """``chroma`` and ``tempo`` by the Jensen-Shannon distance (base 2), ``onset_rate`` by
    ``|a - b| / (|a| + |b|)``, and ``"overall"`` their mean; each in [0, 1]."""
    out = {
        "chroma": js_distance(a.chroma, b.chroma),
        "tempo": js_distance(a.tempo, b.tempo),
        "onset_rate": scalar_distance(a.onset_rate, b.onset_rate),
    }
    out["overall"] = float(np.mean(list(out.values())))
    return out


# ---- the report -----------------------------------------------------------------------------
def compare_table(base: Mapping[str, float], tuned: Mapping[str, float]) -> str:
    """A Markdown table of each measure's distance to the dataset for the base and the
    fine-tuned model (`distance` / `audio_distance` results on the same seeds), with the
    change (negative: the fine-tune came closer) and what the measure is; ``overall`` last."""
    about = {**MEASURES, **AUDIO_MEASURES, "overall": "mean of the measures above"}
    order = [k for k in base if k != "overall"]
    order += [k for k in tuned if k not in base and k != "overall"]
    if "overall" in base or "overall" in tuned:
        order.append("overall")

    def cell(d: Mapping[str, float], k: str) -> str:
        return f"{d[k]:.3f}" if k in d else "–"

    lines = [
        "| measure | base | fine-tuned | change | what it compares |",
        "|---|---:|---:|---:|---|",
    ]
    for k in order:
        change = f"{tuned[k] - base[k]:+.3f}" if k in base and k in tuned else "–"
        name = f"**{k}**" if k == "overall" else k
        lines.append(
            f"| {name} | {cell(base, k)} | {cell(tuned, k)} | {change} | {about.get(k, '')} |"
        )
    return "\n".join(lines) + "\n"
