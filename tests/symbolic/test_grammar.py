"""Grammar: real corpus sequences pass; plans force what they promise; random walks decode."""

from __future__ import annotations

import numpy as np
import pytest
from symusic import Score

from engine.data.dataset import ScoreDataset, TrainStream
from engine.symbolic.grammar import GrammarError, ScoreGrammar, TrackPlan
from engine.symbolic.tokenizer import ScoreTokenizer


@pytest.fixture(scope="module")
def dataset(small_corpus):
    return ScoreDataset(small_corpus)


def test_every_training_window_is_grammatical(dataset):
    stream = TrainStream(dataset, max_tokens=1024, seed=3)
    for _ in range(200):
        seq = stream.sample()
        g = ScoreGrammar(dataset.tokenizer, strict_meter=False)
        g.feed_all(seq)
        assert g.done
    for _, seq in dataset.val_windows(1024):
        g = ScoreGrammar(dataset.tokenizer, strict_meter=False)
        g.feed_all(seq)
        assert g.done


def test_rejects_bad_tokens():
    tok = ScoreTokenizer()
    g = ScoreGrammar(tok)
    g.feed(tok.bos_id)
    with pytest.raises(GrammarError, match="not allowed"):
        g.feed(tok.vocab["Key_C"])  # style must come first


def _random_walk(tok, g, rng, max_len=100_000):
    while not g.done and len(g.tokens) < max_len:
        allowed = np.flatnonzero(g.allowed())
        g.feed(int(rng.choice(allowed)))
    return g.tokens


def test_random_walks_decode_to_valid_midi(tmp_path):
    tok = ScoreTokenizer()
    rng = np.random.default_rng(0)
    for i in range(20):
        plans = [TrackPlan(free_bars=int(rng.integers(1, 3))) for _ in range(3)]
        g = ScoreGrammar(tok, conditions={"voices": "3", "meter": "3/4"}, plans=plans)
        ids = _random_walk(tok, g, rng)
        assert g.done
        score = tok.decode(ids)
        path = tmp_path / f"walk{i}.mid"
        score.dump_midi(path)
        again = Score(path)
        assert len(again.tracks) == sum(1 for t in score.tracks if len(t.notes))
        assert {(ts.numerator, ts.denominator) for ts in score.time_signatures} == {(3, 4)}
        # every track has the planned number of bars
        _, tracks = tok.split(ids)
        assert len(tracks) == 3
        assert {len(t.bars) for t in tracks} == {plans[0].free_bars}


def test_a_window_always_holds_the_planned_sequence():
    # Random walks crowd every bar with notes: with max_tokens the grammar still ends every
    # planned bar and track, and EOS, inside the window (up to 8 voices, copied bars first).
    tok = ScoreTokenizer()
    rng = np.random.default_rng(2)
    pos0, dur = tok.vocab["Position_0"], tok.vocab["Duration_1.0.8"]
    given = [tok.bar_id, tok.timesig_id("4/4"), pos0, tok.vocab["Pitch_60"], dur]
    for window, voices, bars in [(300, 8, 6), (200, 4, 3), (1024, 8, 12), (1024, 1, 64)]:
        plans = [TrackPlan(prefix=[given], free_bars=bars) for _ in range(voices)]
        conditions = {"voices": str(voices), "meter": "4/4"}
        g = ScoreGrammar(tok, conditions=conditions, plans=plans, max_tokens=window)
        ids = _random_walk(tok, g, rng, max_len=window)
        assert g.done and len(ids) <= window
        _, tracks = tok.split(ids)
        assert [len(t.bars) for t in tracks] == [1 + bars] * voices
        assert all(t.bars[0] == given for t in tracks)
        if window == 1024:  # paced: even walks that crowd every bar leave notes to the last part
            assert any(tok.kind(i) == "Pitch" for bar in tracks[-1].bars[1:] for i in bar)


def test_plans_force_prefix_suffix_program_register():
    tok = ScoreTokenizer()
    rng = np.random.default_rng(1)
    ts = tok.timesig_id("4/4")
    p60, p64 = tok.vocab["Pitch_60"], tok.vocab["Pitch_64"]
    pos0, dur = tok.vocab["Position_0"], tok.vocab["Duration_1.0.8"]
    bar_a = [tok.bar_id, ts, pos0, p60, dur]
    bar_b = [tok.bar_id, ts, pos0, p64, dur]
    plans = [
        TrackPlan(program=52, register=4, prefix=[bar_a, bar_a, bar_a, bar_a], free_bars=0),
        TrackPlan(program=40, register=1, prefix=[bar_a], free_bars=2, suffix=[bar_b]),
    ]
    for _ in range(10):
        g = ScoreGrammar(tok, conditions={"voices": "2"}, plans=plans)
        ids = _random_walk(tok, g, rng)
        _, tracks = tok.split(ids)
        assert [t.program for t in tracks] == [52, 40]
        assert tracks[0].bars == [bar_a] * 4
        assert len(tracks[1].bars) == 4
        assert tracks[1].bars[0] == bar_a and tracks[1].bars[-1] == bar_b
        regs = [tok.value(i) for i in ids if tok.kind(i) == "Register"]
        assert regs == ["4", "1"]
