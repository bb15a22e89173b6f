import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import mlx.core as mx
import numpy as np
import pytest

from engine.sample import apply_mask, make_sampler


def draws(sampler, logits: mx.array, n: int = 400, seed: int = 0) -> np.ndarray:
    """n draws for each row of logits [B, V] -> [n, B]."""
    keys = mx.random.split(mx.random.key(seed), n)
    return np.stack([np.array(sampler(logits, keys[i])) for i in range(n)])


def test_temperature_zero_is_argmax():
    logits = mx.random.normal((4, 50))
    sampler = make_sampler(temperature=0.0, top_k=3, top_p=0.5)
    out = sampler(logits, mx.random.key(1))
    assert out.dtype == mx.int32
    np.testing.assert_array_equal(np.array(out), np.argmax(np.array(logits), axis=-1))


def test_top_k_keeps_exactly_k():
    logits = mx.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0, -2.0]])
    got = set(draws(make_sampler(temperature=5.0, top_k=3), logits)[:, 0].tolist())
    assert got == {0, 1, 2}


def test_top_k_with_tied_logits_keeps_exactly_k():
    # All 10 tokens tie: a value threshold would keep all of them.
    logits = mx.zeros((2, 10))
    out = draws(make_sampler(temperature=1.0, top_k=4), logits)
    for row in range(2):
        assert len(set(out[:, row].tolist())) == 4
    # Ties at the cut-off: 2 clear winners, then 5 tied tokens, k=4.
    logits = mx.array([[9.0, 8.0, 1.0, 1.0, 1.0, 1.0, 1.0, -5.0]])
    got = set(draws(make_sampler(temperature=20.0, top_k=4), logits)[:, 0].tolist())
    assert len(got) == 4 and {0, 1} <= got and 7 not in got


def test_top_p_excludes_tokens_outside_nucleus():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    logits = mx.array(np.log(probs)[None].astype(np.float32))
    got = draws(make_sampler(top_p=0.7), logits)[:, 0]
    assert set(got.tolist()) == {0, 1}  # 0.5 < 0.7 <= 0.5 + 0.3
    # Renormalised inside the nucleus: P(0) = 0.5 / 0.8.
    assert abs((got == 0).mean() - 0.625) < 0.08
    assert set(draws(make_sampler(top_p=0.85), logits)[:, 0].tolist()) == {0, 1, 2}


def test_top_p_always_keeps_one():
    logits = mx.array([[3.0, 0.0, 0.0]])
    assert set(draws(make_sampler(top_p=0.01), logits, n=50)[:, 0].tolist()) == {0}


def test_plain_sampling_follows_distribution():
    probs = np.array([0.6, 0.3, 0.1])
    logits = mx.array(np.log(probs)[None].astype(np.float32))
    got = draws(make_sampler(), logits, n=2000)[:, 0]
    np.testing.assert_allclose(np.bincount(got, minlength=3) / 2000, probs, atol=0.04)


def test_same_key_same_tokens():
    logits = mx.random.normal((3, 100))
    sampler = make_sampler(temperature=1.3, top_k=20, top_p=0.9)
    a = draws(sampler, logits, n=30, seed=7)
    b = draws(sampler, logits, n=30, seed=7)
    c = draws(sampler, logits, n=30, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_apply_mask_is_honoured():
    logits = mx.zeros((2, 6))
    allowed = np.array([[True, False, False, True, False, False], [False] * 5 + [True]])
    masked = apply_mask(logits, allowed)
    out = draws(make_sampler(), masked, n=200)
    assert set(out[:, 0].tolist()) == {0, 3} and set(out[:, 1].tolist()) == {5}
    # An mx.array mask works the same way.
    np.testing.assert_array_equal(np.array(apply_mask(logits, mx.array(allowed))), np.array(masked))


@pytest.mark.parametrize("as_mx", [False, True])
def test_fully_masked_row_raises(as_mx):
    allowed = np.array([[True, False], [False, False]])
    with pytest.raises(ValueError, match=r"allows no token.*\[1\]"):
        apply_mask(mx.zeros((2, 2)), mx.array(allowed) if as_mx else allowed)


def test_bad_settings_raise():
    with pytest.raises(ValueError):
        make_sampler(temperature=-1)
    with pytest.raises(ValueError):
        make_sampler(top_k=-2)
    with pytest.raises(ValueError):
        make_sampler(top_p=0.0)


SETTINGS = [(0.0, 0, 1.0), (1.0, 0, 1.0), (0.9, 40, 1.0), (1.1, 0, 0.95), (1.0, 20, 0.9)]


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "t{}-k{}-p{}".format(*s))
def test_rows_draw_what_each_row_draws_alone(setting):
    """``rows`` (a batch of variations) gives every row the token the sampler gives that row
    alone with its key, bit for bit: 300 batches of 1-8 rows of the score model's vocabulary
    (509), logits of every scale, masks keeping 1 token to all of them."""
    sampler = make_sampler(*setting)
    rng = np.random.default_rng(sum(int(10 * x) for x in setting))
    total = 0
    for trial in range(300):
        n, V = int(rng.integers(1, 9)), 509
        x = rng.standard_normal((n, V)) * rng.uniform(0.1, 12)
        keep = rng.random((n, V)) < rng.uniform(0.0, 1.0)
        keep[np.arange(n), rng.integers(0, V, n)] = True
        logits = mx.array(np.where(keep, x, -np.inf).astype(np.float32))
        keys = mx.random.split(mx.random.key(trial), num=n)
        alone = [sampler(logits[i : i + 1], keys[i]).item() for i in range(n)]
        together = sampler.rows(logits, keys)
        assert together.dtype == mx.int32 and together.shape == (n,)
        assert np.array(together).tolist() == alone, trial
        total += n
    assert total > 1000


def test_rows_of_only_masked_tokens_draw_like_one_row():
    """Where a row's logits are all -inf MLX draws uniformly over them; rows does the same."""
    sampler = make_sampler(1.0)
    logits = mx.array(np.full((3, 12), -np.inf, dtype=np.float32))
    for seed in range(20):
        keys = mx.random.split(mx.random.key(seed), num=3)
        alone = [sampler(logits[i : i + 1], keys[i]).item() for i in range(3)]
        assert np.array(sampler.rows(logits, keys)).tolist() == alone
