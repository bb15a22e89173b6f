"""Beats, tempo and metre of audio: the one rhythm module.

Two ways of hearing the beat, for two jobs, from shared parts:

- **Onsets alone** (`transcribe --quantize`): librosa's ``beat_track`` on the onset strength,
  the tempo from the slope through the beats (`beat_period`), the metre from the accents on
  the beats (`guess_meter`, 4/4 or 3/4). Quick, and right when the notes are played
  detached.
- **Onsets and harmony** (`accompany`): the beat period that best explains the onset pulse
  and the chord changes together (`hear_pulse`, also for legato music where onsets hardly
  show), beats tracked at that tempo (held tight in legato), the metre and bar 1 from chord
  changes and accents (`hear_meter`, 4/4, 3/4, 2/4 or 6/8), beats moved onto the note onsets
  they mark (`refine_beats`). See docs/accompany.md for how it is measured.

Both place times in beats the same way (`position_in_beats`). Audio is mono at
``ANALYSIS_SAMPLE_RATE`` (22050 Hz), analysed on ``HOP``-sample frames (23 ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

ANALYSIS_SAMPLE_RATE = 22050
MIDI_TEMPO_BPM = 120.0  # the tempo assumed when fewer than two beats are found

HOP = 512  # analysis frames: 23 ms at 22050 Hz
FINE_HOP = 128  # onset frames (6 ms) that beats are refined to
BEAT_SNAP_S = 0.07  # a beat moves to a note onset at most this far away
# Hearing the pulse (`hear_pulse`): candidate beats, their tempo preference, the harmony's say.
PULSE_MIN_BPM, PULSE_MAX_BPM = 40.0, 200.0  # counted beats a minute that can be heard
PULSE_CANDIDATES = 800  # log-spaced beat periods tried (0.2 % apart)
FOLD_BINS = 12  # phases an envelope is folded onto to measure its pulse clarity
FOLD_SUB = 4  # phases a beat when a bar is folded (`_bar_share`)
MIN_BARS_HEARD = 4  # a bar must fit this many times in the audio
TEMPO_PRIOR_BPM = 100.0  # the preferred beat (log-normal, TEMPO_PRIOR_OCTAVES wide)
TEMPO_PRIOR_OCTAVES = 1.0
PRIOR_WEIGHT = 0.5
COMPOUND_MARGIN = 1.25  # the beat divides in three when that pulse is this much clearer
LEGATO_CONTRAST = 1.5  # onset strength this flat (std over mean) is legato: few peaks to follow
BEAT_TIGHTNESS = 100.0  # librosa's beat_track: how closely the beats keep the tempo (its default)
LEGATO_TIGHTNESS = 2000.0  # ... in legato music, where they would wander between chord changes
HARMONY_WEIGHT = 1.0  # chord changes at bar lines, against onsets at beats
HARMONY_SMOOTH_FRAMES = 9  # chroma smoothed over 0.2 s before its novelty (a tremolo is no change)
HARMONY_LAG = 4  # frames (90 ms) a chroma change is measured across
METER_BEATS = (4, 3, 2)  # beats a bar that can be heard (simple metres), preferred first
METER_MARGIN = 1.1  # a later metre must explain the bar lines this much better to win
CHANGE_WEIGHT = 2.0  # chord changes on the downbeats, against accents
BASS_FMAX = 250.0  # the bass's accents: onset strength below this many Hz ...
BASS_MELS = 16  # ... on this many mel bands
BASS_NEAR = 2  # ... the strongest within this many frames (46 ms) of the beat
METER_CANDIDATES = (4, 3)  # beats a bar that guess_meter chooses between, preferred first
ACCENT_METER_MARGIN = 1.1  # 3/4 must explain the accents this much better than 4/4 to win


def bass_accents(y: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """[B]: the onset strength below BASS_FMAX Hz at each beat frame (the strongest within
    BASS_NEAR frames of it), over its mean. The bass and the kick drum mark bar lines; the
    melody's own accents (an eighth pair on the weak beats) do not."""
    import librosa

    from engine.audio.io import quiet_libraries

    with quiet_libraries():
        mel = librosa.feature.melspectrogram(
            y=y, sr=ANALYSIS_SAMPLE_RATE, hop_length=HOP, fmax=BASS_FMAX, n_mels=BASS_MELS
        )
        low = librosa.onset.onset_strength(
            S=librosa.power_to_db(mel), sr=ANALYSIS_SAMPLE_RATE, hop_length=HOP
        )
    near = np.array(
        [low[max(f - BASS_NEAR, 0) : f + BASS_NEAR + 1].max(initial=0.0) for f in frames]
    )
    return near / max(float(near.mean()), 1e-12)


def _fold_clarity(env: np.ndarray, period_frames: np.ndarray) -> np.ndarray:
    """Pulse clarity of ``env`` [T] at each period (frames, [P]): the peak of the envelope
    folded onto one period (FOLD_BINS phases), over its mean. 1 = no pulse at that period."""
    t = np.arange(env.shape[0], dtype=np.float64)
    out = np.empty(period_frames.shape[0])
    for i, p in enumerate(period_frames):
        phase = ((t / p) % 1.0 * FOLD_BINS).astype(int)
        prof = np.bincount(phase, weights=env, minlength=FOLD_BINS) / np.maximum(
            np.bincount(phase, minlength=FOLD_BINS), 1
        )
        out[i] = prof.max() / max(prof.mean(), 1e-12)
    return out


def _bar_contrast(env: np.ndarray, period_frames: np.ndarray, per_bar: int) -> np.ndarray:
    """How strongly ``env`` [T] comes back once a bar, for each beat period [P] (frames): the
    envelope folded onto a bar of ``per_bar`` beats (FOLD_SUB phases a beat), its peak phase
    less its mean, in standard deviations of the envelope. A bar of half the true one, or one
    whose length the changes do not divide, halves it or flattens it."""
    t = np.arange(env.shape[0], dtype=np.float64)
    bins = per_bar * FOLD_SUB
    scale = max(float(env.std()), 1e-12)
    out = np.empty(period_frames.shape[0])
    for i, p in enumerate(period_frames):
        phase = ((t / (p * per_bar)) % 1.0 * bins).astype(int)
        prof = np.bincount(phase, weights=env, minlength=bins) / np.maximum(
            np.bincount(phase, minlength=bins), 1
        )
        out[i] = (prof.max() - prof.mean()) / scale
    return out


@dataclass
class Pulse:
    """The metre heard in audio: the counted beat, beats a bar, how each beat divides."""

    beat_s: float  # seconds a counted beat (a dotted quarter in 6/8)
    per_bar: int  # counted beats a bar when heard with the beat (2 in 6/8); 0: from accents
    compound: bool  # the beat divides in three (6/8)
    score: float


def hear_pulse(
    onsets: np.ndarray,
    harmony: np.ndarray,
    fps: float,
    *,
    beat_s: float | None = None,
    per_bar: int | None = None,
    compound: bool | None = None,
) -> Pulse:
    """The beat period that best explains two envelopes ([T] frames at ``fps``), and whether
    the beat divides in three (6/8, two beats a bar).

    ``onsets`` (spectral flux) says where notes start: every beat level shows in it when the
    music is played detached, hardly any when it is sung or bowed legato (flat amplitude, slow
    attacks, a choir's own tremolo). ``harmony`` (chroma novelty) says where the chord changes:
    at bar lines, whatever the articulation. A candidate beat period scores

    - the clarity of the onset pulse at the beat (``_fold_clarity``: the folded envelope's
      peak over its mean, less 1), which picks the beat level (not half, not double);
    - how strongly the chord changes come back once every 2, 3 or 4 beats (``_bar_contrast``,
      the best of the three), which finds the beat in legato music, where the onsets are
      flat: a bar that holds a whole number of beats;
    - a log-normal tempo preference (TEMPO_PRIOR_BPM).

    A beat whose onset pulse is clearer at a third of it than at a half (by COMPOUND_MARGIN:
    in legato playing both are faint) divides in three.
    At least MIN_BARS_HEARD bars of 2 beats must fit in the audio.

    What the listener knows and says (``accompany --tempo/--meter``) narrows the search:
    ``beat_s`` (seconds a counted beat) is the beat period, not heard (the beats tracked at
    it still follow the recording where its onsets show); ``per_bar`` (counted beats a bar)
    folds the chord changes on that bar alone, which also picks the beat level when only the
    metre is given (a waltz's chords come back every 3 beats, not every 2 of a beat and a
    half); ``compound`` says whether the beat divides in three instead of hearing it.
    Raises ValueError when no candidate leaves room for MIN_BARS_HEARD bars.
    """
    if beat_s is None:
        bpm = np.geomspace(PULSE_MIN_BPM, PULSE_MAX_BPM, PULSE_CANDIDATES)
    else:
        bpm = np.array([60.0 / beat_s])
    period = 60.0 / bpm * fps
    c_on = _fold_clarity(onsets, period) - 1.0
    prior = -0.5 * (np.log2(bpm / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCTAVES) ** 2
    bars = (per_bar,) if per_bar else (2, 3, 4)
    c_bar = np.max([_bar_contrast(harmony, period, n) for n in bars], axis=0)
    score = c_on + HARMONY_WEIGHT * c_bar + PRIOR_WEIGHT * prior
    score[period * max(2, per_bar or 0) * MIN_BARS_HEARD > onsets.shape[0]] = -np.inf
    if not np.isfinite(score).any():
        raise ValueError(f"fewer than {MIN_BARS_HEARD} bars fit")
    i = int(np.argmax(score))
    if compound is None:
        third, half = _fold_clarity(onsets, np.array([period[i] / 3, period[i] / 2]))
        compound = bool(third > COMPOUND_MARGIN * max(half, 0.0))
    return Pulse(60.0 / bpm[i], per_bar or (2 if compound else 0), compound, float(score[i]))


def beat_chroma(chroma: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """[B, 12]: the mean chroma of each beat, from its frame to the next beat's."""
    edges = np.append(np.clip(frames, 0, chroma.shape[1] - 1), chroma.shape[1])
    return np.stack(
        [chroma[:, a:b].mean(axis=1) if b > a else chroma[:, a] for a, b in pairwise(edges)]
    )


def _chord_changes(per_beat: np.ndarray, span: int) -> np.ndarray:
    """How much the harmony changes at each beat [B]: 1 - cosine of the mean chroma of the
    ``span`` beats from it with that of the ``span`` beats before it (0 where either side
    is short). Over a bar's span the melody averages out and a bar line stands out."""
    c = np.cumsum(np.vstack([np.zeros((1, 12)), per_beat]), axis=0)
    n = per_beat.shape[0]
    out = np.zeros(n)
    for k in range(span, n - span + 1):
        a, b = c[k] - c[k - span], c[k + span] - c[k]
        out[k] = 1.0 - a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)
    return out


def _phase_contrast(s: np.ndarray, m: int, first: int = 1) -> np.ndarray:
    """[m]: for each phase p, the correlation of ``s`` with "beat p, p + m, ... is a bar
    line" (the mean on those beats less the mean on the others, in standard deviations of
    ``s``, times sqrt(share (1 - share)), so that bars of 2, 3 and 4 beats compare fairly);
    beats before ``first`` left out."""
    k = np.arange(s.shape[0])
    use = k >= first
    scale = max(float(s[use].std()), 1e-12)
    out = np.zeros(m)
    for p in range(m):
        on = (k % m == p) & use
        off = ~on & use
        if on.any() and off.any():
            share = on.sum() / use.sum()
            out[p] = (s[on].mean() - s[off].mean()) / scale * np.sqrt(share * (1 - share))
    return out


def hear_meter(
    accents: np.ndarray, per_beat: np.ndarray, candidates: tuple[int, ...] = (4, 3, 2)
) -> tuple[int, int]:
    """(beats a bar, index of a downbeat) from the accent [B] and the chroma [B, 12] of each
    beat (`beat_chroma`).

    A bar line is where the chord changes and the beat is accented: for each number of beats
    a bar and each phase, the contrast of both on the would-be downbeats against the other
    beats (`_phase_contrast`, chord changes weighted CHANGE_WEIGHT). The harmony's contrast
    is largest for the bar whose lines carry every change and no beat within it does, so
    chords that change every bar give that bar, every two bars the longer metre (4/4 for
    eight beats, 3/4 for six). A metre earlier in ``candidates`` is preferred unless a later
    one's contrast is METER_MARGIN times larger.
    """
    best: tuple[float, int, int] | None = None
    for m in candidates:
        if accents.shape[0] < 2 * m:
            continue
        changes = _chord_changes(per_beat, m)
        c = _phase_contrast(accents, m) + CHANGE_WEIGHT * _phase_contrast(changes, m, m)
        p = int(np.argmax(c))
        if best is None or c[p] > METER_MARGIN * best[0]:
            best = (float(c[p]), m, p)
    return (candidates[0], 0) if best is None else (best[1], best[2])


def refine_beats(y: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Move each beat to the note onset it marks.

    The beat tracker's times are its onset-strength peaks: 23 ms frames that lag the sound by
    about 30 ms. Onsets found on 6 ms frames and backtracked to the energy minimum before
    them are where the notes start; a beat within BEAT_SNAP_S of one moves to it, the other
    beats move by the median shift of those that did.
    """
    import librosa

    from engine.audio.io import quiet_libraries

    sr = ANALYSIS_SAMPLE_RATE
    with quiet_libraries():
        env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=FINE_HOP)
        onsets = librosa.onset.onset_detect(
            onset_envelope=env, sr=sr, hop_length=FINE_HOP, units="time", backtrack=True
        )
    if onsets.size == 0:
        return beats
    nearest = onsets[np.abs(onsets[None, :] - beats[:, None]).argmin(axis=1)]
    close = np.abs(nearest - beats) <= BEAT_SNAP_S
    if not close.any():
        return beats
    shift = float(np.median(nearest[close] - beats[close]))
    out = np.where(close, nearest, beats + shift)
    return np.maximum.accumulate(out)


def position_in_beats(t: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Beat index (fractional) at times ``t``: linear between beats, the median period outside."""
    if beats.shape[0] < 2:
        return t * (MIDI_TEMPO_BPM / 60)
    period = beat_period(beats)
    idx = np.arange(beats.shape[0], dtype=np.float64)
    pos = np.interp(t, beats, idx)
    pos = np.where(t < beats[0], (t - beats[0]) / period, pos)
    return np.where(t > beats[-1], idx[-1] + (t - beats[-1]) / period, pos)


def beat_period(beats: np.ndarray) -> float:
    """Seconds a beat: the slope of the least-squares line through the beat times.

    (Each beat time is rounded to the beat tracker's 23 ms frames; the line averages that
    out, where the median gap would keep it: 117 BPM instead of 120.)
    """
    return float(np.polyfit(np.arange(beats.shape[0], dtype=np.float64), beats, 1)[0])


def guess_meter(beat_strength: np.ndarray) -> tuple[int, int]:
    """(beats a bar, index of a downbeat) from the onset strength at each beat.

    For 4 and 3 beats a bar and every phase, the accent contrast is the mean strength on the
    would-be downbeats less the mean on the other beats; the best phase of each metre is
    compared and 3/4 wins only when its contrast is ``ACCENT_METER_MARGIN`` times 4/4's. A simple
    guess: it hears accents, not harmony, so music that accents offbeats may come out wrong.
    """
    s = np.asarray(beat_strength, dtype=np.float64)
    best: dict[int, tuple[float, int]] = {}
    for m in METER_CANDIDATES:
        if s.shape[0] < 2 * m:
            continue
        scores = []
        for p in range(m):
            on = np.zeros(s.shape[0], dtype=bool)
            on[p::m] = True
            scores.append((float(s[on].mean() - s[~on].mean()), p))
        best[m] = max(scores, key=lambda x: x[0])
    if not best:
        return METER_CANDIDATES[0], 0
    if 3 in best and 4 in best:
        (c4, p4), (c3, p3) = best[4], best[3]
        return (3, p3) if c3 > 0 and c3 > ACCENT_METER_MARGIN * max(c4, 0) else (4, p4)
    m = next(iter(best))
    return m, best[m][1]
