import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import mlx.core as mx
import numpy as np
import pytest

from engine.generate import GenerationResponse, generate, generate_step
from engine.models.score import Model
from engine.sample import make_sampler

V = 41


@pytest.fixture(scope="module")
def model(make_tiny_model) -> Model:
    return make_tiny_model(3, vocab_size=V, max_position_embeddings=300)


PROMPT = [1, 5, 9, 2]


def test_same_seed_same_tokens_different_seed_differs(model):
    sampler = make_sampler(temperature=1.0)
    a = generate(model, PROMPT, max_tokens=40, seed=11, sampler=sampler)
    b = generate(model, PROMPT, max_tokens=40, seed=11, sampler=sampler)
    c = generate(model, PROMPT, max_tokens=40, seed=12, sampler=sampler)
    assert len(a) == 40 and a == b and a != c
    assert all(0 <= t < V for t in a)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_cache_and_no_cache_agree(model, temperature):
    sampler = make_sampler(temperature=temperature, top_k=10)
    kw = dict(max_tokens=270, seed=5, sampler=sampler)  # crosses a 256-position cache block
    assert generate(model, PROMPT, **kw) == generate(model, PROMPT, use_cache=False, **kw)


def test_greedy_matches_argmax_of_full_forward(model):
    out = generate(model, PROMPT, max_tokens=12, sampler=make_sampler(temperature=0))
    seq = list(PROMPT)
    for t in out:
        expected = int(np.argmax(np.array(model(mx.array([seq]))[0, -1])))
        assert t == expected
        seq.append(t)


def allowed_set(n: int) -> set[int]:
    """One token, or three on even lengths."""
    return {(n * 7) % V} | ({2, 3} if n % 2 == 0 else set())


def test_allowed_fn_is_honoured_and_sees_all_tokens(model):
    seen: list[list[int]] = []

    def allowed_fn(tokens: list[int]) -> np.ndarray | None:
        seen.append(list(tokens))
        if len(tokens) % 3 == 0:
            return None  # no constraint at this step
        mask = np.zeros(V, dtype=bool)
        mask[list(allowed_set(len(tokens)))] = True
        return mask

    out = generate(model, PROMPT, max_tokens=60, seed=1, allowed_fn=allowed_fn)
    assert len(out) == 60
    seq = list(PROMPT)
    for i, t in enumerate(out):
        assert seen[i] == seq
        n = len(seq)
        if n % 3:
            assert t in allowed_set(n)
        seq.append(t)


def test_fully_masked_step_raises(model):
    with pytest.raises(ValueError, match="allows no token"):
        generate(model, PROMPT, max_tokens=5, allowed_fn=lambda toks: np.zeros(V, dtype=bool))


def test_finish_reasons(model):
    sampler = make_sampler(temperature=0)
    first = generate(model, PROMPT, max_tokens=1, sampler=sampler)[0]
    responses = list(
        generate_step(model, PROMPT, sampler=sampler, max_tokens=50, seed=0, eos_id=first)
    )
    assert len(responses) == 1 and responses[0].finish_reason == "stop"

    responses = list(generate_step(model, PROMPT, sampler=sampler, max_tokens=7, seed=0))
    assert [r.step for r in responses] == list(range(7))
    assert [r.finish_reason for r in responses] == [None] * 6 + ["length"]
    r = responses[-1]
    assert isinstance(r, GenerationResponse) and r.tokens_per_second > 0 and r.peak_memory_gb > 0

    prompt = list(range(1, 291))  # 10 positions left in a 300-token context
    responses = list(generate_step(model, prompt, sampler=sampler, max_tokens=50, seed=0))
    assert len(responses) == 10 and responses[-1].finish_reason == "context"


def test_bad_prompts(model):
    with pytest.raises(ValueError):
        generate(model, [], max_tokens=3)
    with pytest.raises(ValueError):
        generate(model, [1] * 300, max_tokens=3)
    assert generate(model, PROMPT, max_tokens=0) == []
