"""Music that holds up (issue 11): measured over many seeds and prompts, never one lucky seed.

- textures an instrument can play on 105 generated pieces across every style (point 2);
- registers by role: lines top to bottom, rarely crossing, over a grid of ensembles (3);
- voice leading on held-out Bach sopranos: at Bach's level of parallels, crossing and
  spacing, the soprano untouched, and worse with the penalty off (4);
- cadences: pieces end on the tonic with the tonic in the bass (5);
- nothing drops out; with a progression the bass plays the root on the first beat, also in
  the rewritten bars of a form; `sketch` keeps key, mode and the style's voices (6, 7).
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.pipelines import compose as C
from engine.pipelines.eval_prompts import evaluate_harmonization, measure_piece
from engine.symbolic import quality as q
from engine.symbolic.score_api import STYLE_VOICES, available_models, load
from engine.symbolic.texture import is_one_note, limits
from engine.symbolic.tokenizer import STYLES, TONICS

pytestmark = pytest.mark.skipif(
    "score-base" not in available_models(), reason="needs the shipped score-base model"
)
KEYS = [(t, m) for m in ("major", "minor") for t in TONICS]


@pytest.fixture(scope="module")
def model():
    return load("score-base")


def _sketch_set(model, seeds: int) -> list:
    """`seeds` pieces of 8 bars for every style, keys cycling over all 24."""
    out = []
    for s, style in enumerate(STYLES):
        for seed in range(seeds):
            key, mode = KEYS[(seed * 5 + s) % 24]
            g = model.generate(style=style, key=key, mode=mode, bars=8, seed=seed)
            out.append((style, key, mode, g))
    return out


@pytest.fixture(scope="module")
def sketches(model):
    """105 pieces: 15 seeds of every style (the slow run's evidence, 200 s here)."""
    return _sketch_set(model, 15)


@pytest.fixture(scope="module")
def few_sketches(model):
    """21 pieces: the first 3 seeds of every style (the default run's guard)."""
    return _sketch_set(model, 3)


def _playable_and_whole(pieces) -> None:
    for style, key, mode, g in pieces:
        bt = g.score.ticks_per_quarter * 4 * int(g.conditions["meter"].split("/")[0])
        bt //= int(g.conditions["meter"].split("/")[1])
        for t in g.score.tracks:
            most, _ = limits(t.program)
            assert q.max_simultaneous(t) <= most, (style, key, mode, t.name)
            assert q.duplicate_notes(t) == 0
            if is_one_note(t.program):
                assert q.chord_notes(t) == 0
            assert q.silent_bar_share(t, bt, 8) <= 0.25, (style, key, mode, t.name)


def _parts_and_closes(pieces) -> float:
    finals = []
    for style, key, _mode, g in pieces:
        assert len(g.score.tracks) == STYLE_VOICES[style]  # a chorale has a bass
        finals.append(q.final_tonic_in_bass(g.score, TONICS.index(key)))
    return float(np.mean(finals))


def test_sketches_of_every_style_are_playable_whole_and_close_on_the_tonic(few_sketches):
    _playable_and_whole(few_sketches)
    assert _parts_and_closes(few_sketches) >= 0.9


@pytest.mark.slow
def test_105_pieces_are_playable_and_never_drop_a_part(sketches):
    assert len(sketches) >= 100
    _playable_and_whole(sketches)


@pytest.mark.slow
def test_a_style_writes_its_parts_and_the_pieces_close_on_the_tonic(sketches):
    assert _parts_and_closes(sketches) >= 0.9


@pytest.mark.slow
def test_the_requested_key_is_heard(sketches):
    heard = [
        q.analyze_key(g.score, "key.krumhansl") == (TONICS.index(key), mode)
        for _, key, mode, g in sketches
    ]
    # (measured since 0.10.0: 103 of these 105, 202 of 210 over seeds 0-29 = 96.2 %, as the
    # prompts of `eval prompts`. Before, with a minor key's third weighed as in major: 100
    # of 105 and 196 of 210 = 93.3 %, 96 of the 105 of seeds 15-29: these are kind seeds)
    assert np.mean(heard) >= 0.93


@pytest.mark.slow
def test_a_minor_key_is_not_heard_as_its_parallel_major(sketches):
    """The model leans to the parallel major (its modal corpus ends minor pieces on a major
    chord); the key bonus weighs a minor key's third like its tonic (release 0.10.0)."""
    minor = [g for _, _key, mode, g in sketches if mode == "minor"]
    parallel = [
        g
        for _, key, mode, g in sketches
        if mode == "minor"
        and q.analyze_key(g.score, "key.krumhansl") == (TONICS.index(key), "major")
    ]
    # (measured: 2 over seeds 0-29 (210 sketches); before 0.10.0: 5 of these 51, 9 of 210)
    assert len(minor) >= 50 and len(parallel) <= 2


@pytest.mark.parametrize("seeds", [range(4), pytest.param(range(4, 8), marks=pytest.mark.slow)])
def test_sketch_keeps_a_chorale_in_four_parts_with_a_bass(model, seeds):
    for seed in seeds:
        g = model.generate(style="chorale", key="G", bars=8, seed=seed)
        assert [t.name for t in g.score.tracks] == ["Soprano", "Alto", "Tenor", "Bass"]
        assert g.conditions["key"] == "G"


# the default run keeps one the issue found collapsed (unnamed voices); the slow run all five
GRID = [
    "5 voices",
    *(
        pytest.param(e, marks=pytest.mark.slow)
        for e in ("four recorders", "string quartet", "brass quintet", "horn trio")
    ),
]


@pytest.mark.parametrize("ensemble", GRID)
def test_lines_keep_their_registers(model, ensemble):
    rows = [
        measure_piece(C.compose(f"{ensemble} in C major, 8 bars", model=model, seed=seed))
        for seed in range(8)
    ]
    assert np.mean([r["in_order"] for r in rows]) >= 0.95
    assert np.mean([r["crossing"] for r in rows]) <= 0.03


def test_the_voice_leading_penalty_acts_on_harmonized_bach_sopranos(model):
    """The default run's guard (4 chorales): the soprano untouched, fewer parallels with the
    penalty than without; the slow test below holds them to Bach's level over 10."""
    r = evaluate_harmonization(model, chorales=4)
    assert r["chorales"] >= 3 and r["soprano_untouched"]
    off = evaluate_harmonization(model, chorales=4, voice_leading=0)["generated"]
    assert off["parallels_per_100_beats"] > r["generated"]["parallels_per_100_beats"]


@pytest.mark.slow  # 60 s
def test_harmonized_bach_sopranos_are_voiced_like_bach(model):
    r = evaluate_harmonization(model, chorales=10)
    assert r["chorales"] >= 8 and r["soprano_untouched"]
    g = r["generated"]
    assert g["parallels_per_100_beats"] <= 1.0
    assert g["crossing"] <= 0.02 and g["wide_spacing"] <= 0.02
    off = evaluate_harmonization(model, chorales=10, voice_leading=0)["generated"]
    assert off["parallels_per_100_beats"] > 2 * max(g["parallels_per_100_beats"], 0.5)


def test_the_bass_plays_the_root_on_the_first_beat_also_in_rewritten_bars(model):
    rates, rewritten = [], []
    for seed in range(8):
        comp = C.compose("choir in C major, I-vi-IV-V, AABA, 16 bars", model=model, seed=seed)
        row = measure_piece(comp)
        rates.append(row["bass_root"])
        s = comp.score
        bt = 4 * s.ticks_per_quarter
        roots = {0: 0, 1: 9, 2: 5, 3: 7}
        bass = s.tracks[-1]
        for bar in (3, 7, 15):  # the last bar of each A: rewritten by the varied repeat
            at = [n.pitch for n in bass.notes if n.time <= bar * bt < n.end]
            want = 0 if bar == 15 else roots[bar % 4]  # (the piece's last bar: the tonic)
            rewritten.append(bool(at) and min(at) % 12 == want)
    assert np.mean(rates) >= 0.8
    assert np.mean(rewritten) >= 0.8
