"""Several sequences decoded together (engine.generate.BatchDecoder), as --variations does."""

import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import mlx.core as mx
import numpy as np
import pytest

from engine.generate import BatchDecoder, Cancelled, generate, generate_step
from engine.sample import make_sampler

V = 41


@pytest.fixture(scope="module")
def model(make_tiny_model):
    return make_tiny_model(5, vocab_size=V, max_position_embeddings=300)


def forcing(n: int) -> np.ndarray:
    """Forced single tokens, forced runs of 2-3 tokens, one of 20 across the first cache
    block's end (longer than a batched step takes: fed on its row alone), and free choices,
    by position."""
    mask = np.zeros(V, dtype=bool)
    if n % 11 in (3, 4, 5) or n % 7 == 0 or 248 <= n < 268:  # a run of forced tokens
        mask[(n * 5) % V] = True
    else:
        mask[[(n * 3) % V, (n * 3 + 1) % V, 7, 8, 9, 10]] = True
    return mask


def run_job(model, prompt, sections, sampler, decoder=None):
    """Like the score pipeline: several sequences in turn (sections), each with a grammar."""
    out = []
    for seed, max_tokens in sections:
        tokens = [
            r.token
            for r in generate_step(
                model,
                prompt + out[-5:],
                sampler=sampler,
                max_tokens=max_tokens,
                seed=seed,
                allowed_fn=lambda t: forcing(len(t)),
                decoder=decoder,
            )
        ]
        out += tokens
    return out


# rows with other prompt lengths, other numbers of sections and other lengths (one crosses
# the 256-position cache block, one ends long before the others)
JOBS = [
    ([1, 5, 9, 2], [(1, 60), (2, 40)]),
    ([3] * 30, [(3, 270)]),
    ([4, 4], [(4, 10)]),
    ([7, 1, 2, 3, 4, 5, 6], [(5, 30), (6, 30), (7, 30)]),
    ([2] * 240, [(8, 40)]),  # its long forced run starts 8 slots before the block ends
]


def batched(model, sampler, jobs=JOBS):
    return BatchDecoder(model, len(jobs)).run(
        [lambda d, p=p, s=s: run_job(model, p, s, sampler, d) for p, s in jobs]
    )


def test_greedy_rows_equal_full_forward_decoding(model):
    """Each row decodes exactly what the model (no cache, batch size 1) picks, whatever the
    other rows do: prompts, forced runs, sections and a capacity that grows."""
    greedy = make_sampler(temperature=0)
    rows = batched(model, greedy)
    for (prompt, sections), got in zip(JOBS, rows, strict=True):
        assert got == run_job(model, prompt, sections, greedy)  # alone, cached
        expected: list[int] = []
        for _, max_tokens in sections:  # the reference: argmax of a full forward pass
            seq = prompt + expected[-5:]
            for _ in range(max_tokens):
                logits = np.array(model(mx.array([seq]))[0, -1])
                logits[~forcing(len(seq))] = -np.inf
                seq.append(int(np.argmax(logits)))
            expected += seq[-max_tokens:]
        assert got == expected


def test_logits_of_a_row_match_batch_size_one(model):
    """The logits a row samples from agree with the model alone (float32, 1e-5)."""
    seen = {}
    sampler = make_sampler(temperature=0)

    def spy(row):
        def sample(logits, key):
            seen.setdefault(row, []).append(np.array(logits[0]))
            return sampler(logits, key)

        return sample

    jobs = [([1, 5, 9, 2], 50), ([2] * 9, 80), ([6, 6, 6], 20)]
    BatchDecoder(model, 3).run(
        [
            lambda d, p=p, n=n, r=r: generate(
                model, p, max_tokens=n, sampler=spy(r), seed=0, decoder=d
            )
            for r, (p, n) in enumerate(jobs)
        ]
    )
    for r, (prompt, n) in enumerate(jobs):
        seq = list(prompt)
        for logits in seen[r]:
            want = np.array(model(mx.array([seq]))[0, -1])
            np.testing.assert_allclose(logits, want, atol=1e-5, rtol=1e-5)
            seq.append(int(np.argmax(logits)))
        assert len(seen[r]) == n


def test_a_batch_is_deterministic_and_its_rows_differ(model):
    sampler = make_sampler(temperature=1.0, top_k=20)
    first = batched(model, sampler)
    assert batched(model, sampler) == first
    assert len({tuple(r) for r in first}) == len(first)
    assert [len(r) for r in first] == [sum(n for _, n in s) for _, s in JOBS]


@pytest.mark.parametrize("setting", [(1.0, 0, 1.0), (1.0, 20, 1.0), (0.8, 0, 0.9)])
def test_rows_drawn_together_are_the_rows_drawn_one_by_one(model, setting):
    """The rows of a round that share a setting draw in one computation (`TokenSampler.rows`);
    a sampler without it draws row by row. Both write the same tokens."""
    sampler = make_sampler(*setting)
    together = batched(model, sampler)
    assert batched(model, lambda logits, key: sampler(logits, key)) == together


def test_an_error_in_one_row_is_raised_once_the_others_are_done(model):
    finished = []

    def bad(decoder):
        def allowed(tokens):
            return np.zeros(V, dtype=bool) if len(tokens) == 12 else None

        return generate(model, [1, 2], max_tokens=50, seed=0, allowed_fn=allowed, decoder=decoder)

    def good(decoder):
        out = generate(model, [3, 4], max_tokens=60, seed=1, decoder=decoder)
        finished.append(len(out))
        return out

    with pytest.raises(ValueError, match="allows no token"):
        BatchDecoder(model, 3).run([good, bad, good])
    assert finished == [60, 60]


def test_ctrl_c_stops_every_row(model, monkeypatch):
    rounds = []
    answer = BatchDecoder._answer

    def interrupted(self, round_):
        rounds.append(len(round_))
        if len(rounds) == 5:
            raise KeyboardInterrupt
        answer(self, round_)

    monkeypatch.setattr(BatchDecoder, "_answer", interrupted)
    ended = []

    def job(decoder):
        try:
            return generate(model, [1, 2, 3], max_tokens=200, seed=2, decoder=decoder)
        except Cancelled:
            ended.append(True)
            raise

    with pytest.raises(KeyboardInterrupt):
        BatchDecoder(model, 3).run([job, job, job])
    assert ended == [True, True, True]


def test_bad_batches(model):
    with pytest.raises(ValueError, match="rows must be 1..8"):
        BatchDecoder(model, 9)
    with pytest.raises(ValueError, match="2 jobs for a batch of 3"):
        BatchDecoder(model, 3).run([lambda d: 1, lambda d: 2])
