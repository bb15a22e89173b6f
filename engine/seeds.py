"""Seeds: the one check of a seed a user gives, and the one way a stream is derived from it.

Every random draw of the engine is keyed by a whole number (``mx.random.key(seed)``). A user
gives one seed; a piece draws several streams from it (its sections, the windows of a long
section, the repeat of a section, the variations of a request). `derive_seed` names each
stream by a path and is the only place that turns a path into a number.

The paths and the numbers they give (``s``: the seed the path starts from; every stream the
engine drew before this module existed keeps its number, so records replay bit-identically):

==================  ===============  ======================================================
path                number           the stream of
==================  ===============  ======================================================
``variation, i``    ``s + i``        variation i of ``generate --variations`` (compose,
                                     the CLI's folders), piece i of ``eval prompts``
``section, i``      ``s + i``        section i of a composed piece (section 0: ``s``
                                     itself); section i of the melody that harmonize
                                     and restyle write parts for (workflows)
``repeat, i``       ``s + 1000 + i`` the rewritten last bar of section i when it repeats
                                     an earlier section (compose)
``window, k``       ``s + k``        window k of music written window by window:
                                     score_api `generate` (window 0: ``s``) and
                                     `continue_score`, accompany's windows of the input
``piece, i``        ``s + i``        piece i of each style in ``eval`` (train.evaluate)
``chorale, i``      ``s + i``        held-out chorale i harmonised by ``eval`` and ``eval
                                     prompts`` (train.evaluate, pipelines.eval_prompts)
``data, i``         ``s + i``        the training data's order (train.score: a preset's
                                     ``data_seed_offset``)
``bar, i``          ``s + 2000 + i`` bar i of a piece written bar by bar (the studio:
                                     pipelines.live; bar 0 uses ``s`` itself)
``step, i``         ``s + 3000 + i`` training step i's random draws (dropout, LoRA dropout:
                                     train.trainer), so a resumed run draws the same
==================  ===============  ======================================================

Paths nest: ``derive_seed(s, "section", i, "window", k)`` is ``s + i + k``, the window k of
section i (compose hands `continue_score` the section's seed, which derives its windows).

Overlaps this arithmetic leaves (kept: changing any of them changes music that the shipped
engine makes today, and the replay of its records):

- Across seeds: the streams of seed ``s`` are streams of seeds nearby. Section 1 of the piece
  with seed ``s`` draws the stream of section 0 of the piece with seed ``s + 1``, so
  variation 1 of a request meets variation 0's section 1, and so on. The music still
  differs (another prompt and another score so far go into each draw), but the random
  numbers are the same.
- Within one piece, between windows and sections: window k of section i is ``s + i + k``,
  the number of window 0 of section i + k. That happens when a section needs more than one
  window (about 7 bars of 4 voices with the 1024-token score-base; a single-section piece
  never meets another section) and a later section starts new material: ``"a chorale in G
  major, AB, 32 bars"`` draws window 1 of A and window 0 of B from one key. Repeats
  (``s + 1000 + i``, i < 128 sections) never meet sections or windows of the same piece.

A derived seed is always a seed (0..`names.MAX_SEED`): the sum wraps around past the top
(modulo 2**32), so every derived number below the top is the one of the table, and a seed
near the top (a piece of many sections at ``--seed 4294967295``) works as any other. Before
0.4.0 the sum passed the top there and the section was refused (``not 4294967296``) or a
repeat was copied without its rewritten last bar.
"""

from __future__ import annotations

from engine import names
from engine.errors import UserError

MAX_SEED = names.MAX_SEED

# Each path component adds its index and its base to the seed: today's arithmetic.
BASES = {
    "variation": 0,
    "section": 0,
    "repeat": 1000,
    "window": 0,
    "piece": 0,
    "chorale": 0,
    "data": 0,
    "bar": 2000,
    "step": 3000,
}


class SeedError(UserError, ValueError):
    """A seed outside 0..MAX_SEED, or not a whole number."""


def is_whole(x) -> bool:
    """An int (or a numpy integer), not a bool."""
    return hasattr(type(x), "__index__") and not isinstance(x, bool)


def is_seed(x) -> bool:
    """A whole number 0..MAX_SEED (what a user may give as a seed)."""
    return is_whole(x) and 0 <= x <= MAX_SEED


def check_seed(
    seed, error: type[Exception] = SeedError, *, count: int = 1, name: str = "seed"
) -> int:
    """``seed`` as an int, or ``error`` with the one message every face gives.

    ``count``: the seeds ``seed .. seed + count - 1`` are all used (variations), so the
    largest seed allowed is ``MAX_SEED - count + 1``. ``name``: how the message names the
    seed (``--seed`` on the command line). ``error``: the caller's kind of `UserError`
    (``ComposeError``, ``MusicgenError``…), so that a caller can tell which step refused.
    """
    hi = MAX_SEED - count + 1
    what = f" for {count} variations" if count > 1 else ""
    if not is_whole(seed):
        raise error(f"{name} must be 0..{hi}{what} (a whole number), not {seed!r}")
    if not 0 <= seed <= hi:
        nearest = 0 if seed < 0 else hi
        raise error(f"{name} must be 0..{hi}{what}, not {int(seed)}; use {nearest}")
    return int(seed)


def derive_seed(seed: int, *path) -> int:
    """The seed of the stream that ``path`` names, derived from ``seed``.

    ``path`` is pairs of a name and an index: ``derive_seed(s, "section", 2)``,
    ``derive_seed(s, "section", 2, "window", 1)``. The names and their numbers are in the
    table of this module's docstring; an unknown name, a missing or negative index, or a
    seed that is not a whole number >= 0 is a ValueError (a bug, not a user's mistake).
    """
    if not is_whole(seed) or seed < 0:
        raise ValueError(f"derive_seed needs a whole number >= 0, not {seed!r}")
    if len(path) % 2:
        raise ValueError(f"derive_seed needs (name, index) pairs, not {path!r}")
    out = int(seed)
    for name, index in zip(path[::2], path[1::2], strict=True):
        if name not in BASES:
            raise ValueError(f"unknown seed path {name!r}; use one of {', '.join(BASES)}")
        if not is_whole(index) or index < 0:
            raise ValueError(f"seed path {name!r} needs a whole number >= 0, not {index!r}")
        out += BASES[name] + int(index)
    return out % (MAX_SEED + 1)
