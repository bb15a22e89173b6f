"""Scales and keys: the one key finder and the one set of scale tables.

- Scales: `MAJOR_SCALE_STEPS`, `NATURAL_MINOR_STEPS` (the degrees Roman numerals count in),
  `MINOR_SCALE_STEPS` (natural, harmonic and melodic minor together: what counts as "in the
  scale" of a minor key), `scale_pitch_classes`.
- Keys: the key whose rotated key profile correlates best (Pearson) with a pitch-class
  profile (`key_from_profile`), with the Aarden-Essen profiles (``"aarden"``: what the
  corpus is labelled with and generated pieces are judged by) or the Krumhansl-Kessler ones
  (``"krumhansl"``: Krumhansl-Schmuckler, used on the chroma of recordings). A profile is
  any weight per pitch class: note durations (`pitch_class_profile`) or mean chroma. This
  is the computation of music21's ``analyze("key")`` / ``analyze("key.krumhansl")`` (same
  profiles, same correlation, same choice on ties) without building a music21 stream;
  tests/symbolic/test_theory.py checks that the two agree.
"""

from __future__ import annotations

import numpy as np

from engine import names

MODES = names.MODES
MAJOR_SCALE_STEPS = names.MAJOR_SCALE_STEPS
NATURAL_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)
# Natural minor (0 2 3 5 7 8 10) plus the raised 6th (9) and 7th (11): the union of natural,
# harmonic and melodic minor, so leading tones and melodic-minor ascents count as in scale.
MINOR_SCALE_STEPS = (0, 2, 3, 5, 7, 8, 9, 10, 11)

# Key profiles (C major, C minor), as music21's KrumhanslSchmuckler and AardenEssen.
KK_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
KK_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
AARDEN_MAJOR = (
    17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587,
    0.291248, 22.062, 0.145624, 8.15494, 0.232998, 4.95122,
)  # fmt: skip
AARDEN_MINOR = (
    18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362,
    0.702494, 18.6161, 4.56621, 1.93186, 7.37619, 1.75623,
)  # fmt: skip
PROFILES = {"krumhansl": (KK_MAJOR, KK_MINOR), "aarden": (AARDEN_MAJOR, AARDEN_MINOR)}
# music21's analysis method names for them (``Stream.analyze(name)``).
METHOD_PROFILES = {
    **dict.fromkeys(("key", "key.aarden", "key.aarden-essen", "aarden", "aarden-essen"), "aarden"),
    **dict.fromkeys(("key.krumhansl", "key.krumhansl-schmuckler", "krumhansl"), "krumhansl"),
}


def check_key(tonic: int, mode: str) -> None:
    if not isinstance(tonic, int | np.integer) or not 0 <= tonic <= 11:
        raise ValueError(f"tonic must be a pitch class 0 (C) to 11 (B), got {tonic!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be 'major' or 'minor', got {mode!r}")


def scale_pitch_classes(tonic: int, mode: str) -> set[int]:
    """Pitch classes (0..11) of the scale on ``tonic``.

    "major" is the ionian scale (7 classes). "minor" is natural minor plus the raised 6th and
    7th degrees (9 classes): the union of natural, harmonic and melodic minor, since tonal
    minor-key music uses all three. Example: A minor -> A B C D E F F# G G#.
    """
    check_key(tonic, mode)
    steps = MAJOR_SCALE_STEPS if mode == "major" else MINOR_SCALE_STEPS
    return {(int(tonic) + s) % 12 for s in steps}


def _correlations(profile: np.ndarray, weights: tuple[float, ...]) -> list[float]:
    """Pearson correlation of ``profile`` [12] with ``weights`` rotated to each tonic."""
    w = np.asarray(weights, dtype=np.float64) - np.mean(weights)
    x = np.asarray(profile, dtype=np.float64) - float(np.mean(profile))
    out = []
    for tonic in range(12):
        rotated = np.roll(w, tonic)  # rotated[j] = weights[(j - tonic) % 12]
        den = float(np.sum(rotated**2) * np.sum(x**2))
        out.append(0.0 if den == 0 else float(np.dot(rotated, x) / den**0.5))
    return out


def key_from_profile(profile, profiles: str = "krumhansl") -> tuple[int, str]:
    """(tonic pitch class 0..11, "major" | "minor") whose key profile (`PROFILES`
    ``profiles``) correlates best with ``profile`` [12] (non-negative weights, C first).

    Exact ties go as in music21 (the higher tonic, then minor before major)."""
    profile = np.asarray(profile, dtype=np.float64)
    if profile.shape != (12,) or not np.isfinite(profile).all():
        raise ValueError(f"a pitch-class profile has 12 finite values, got shape {profile.shape}")
    if profile.sum() <= 0:
        raise ValueError("the pitch-class profile is empty, so no key can be heard")
    major, minor = PROFILES[profiles]
    ranked = [(r, t, "major") for t, r in enumerate(_correlations(profile, major))]
    ranked += [(r, t, "minor") for t, r in enumerate(_correlations(profile, minor))]
    r, tonic, mode = max(ranked)
    return tonic, mode


def pitch_class_profile(pitches: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """[12]: the total duration of the notes of each pitch class (C first)."""
    return np.bincount(
        np.asarray(pitches, dtype=np.int64) % 12,
        weights=np.asarray(durations, dtype=np.float64),
        minlength=12,
    )
