"""MusicGen in MLX against transformers, on tiny random-weight models built from configs.

Every fixture is a real transformers model (``MusicgenForConditionalGeneration`` or
``MusicgenMelodyForConditionalGeneration``) with random weights; the MLX model gets the same
weights, then encoder states and logits must agree to 1e-4 (fp32) and greedy generation with
classifier-free guidance must give identical codes. The builders are the ``tiny_musicgen``
fixture's (tests/conftest.py).
"""

import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import math

import mlx.core as mx
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from engine.models.musicgen import (  # noqa: E402
    _plan_windows,
    build_delay_pattern,
    sinusoidal_table,
    undelay,
)
from engine.models.t5 import T5Config, T5Encoder, relative_position_bucket  # noqa: E402


@pytest.fixture(scope="module")
def models(tiny_musicgen):
    cache = {}

    def get(kind: str):
        if kind not in cache:
            hf = tiny_musicgen.build_hf(kind)
            cache[kind] = (hf, tiny_musicgen.to_mlx(hf))
        return cache[kind]

    return get


# -- T5 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ffn", ["relu", "gated-gelu"])
def test_t5_encoder_matches_transformers(ffn, tiny_musicgen):
    from transformers import T5EncoderModel

    torch.manual_seed(0)
    hf = T5EncoderModel(tiny_musicgen.t5_config(feed_forward_proj=ffn)).eval()
    model = T5Encoder(T5Config.from_dict(hf.config.to_dict()))
    state = {k: mx.array(v.numpy()) for k, v in hf.state_dict().items()}
    model.load_weights(list(T5Encoder.sanitize(state).items()), strict=True)
    # longer than max_distance: log-spaced buckets are used
    ids, mask = tiny_musicgen.text_inputs(L=30)
    with torch.no_grad():
        want = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))[0].numpy()
    got = np.array(model(mx.array(ids), mx.array(mask)))
    keep = mask.astype(bool)  # padded positions are meaningless (zeroed downstream)
    np.testing.assert_allclose(got[keep], want[keep], atol=1e-4)
    assert np.abs(got[keep] - want[keep]).max() < 1e-5


def test_relative_position_buckets_match_transformers():
    from transformers.models.t5.modeling_t5 import T5Attention

    rel = np.arange(-700, 700)
    for buckets, distance in [(32, 128), (8, 20)]:  # t5-base, and the tiny fixtures
        want = T5Attention._relative_position_bucket(
            torch.tensor(rel), bidirectional=True, num_buckets=buckets, max_distance=distance
        ).numpy()
        np.testing.assert_array_equal(relative_position_bucket(rel, buckets, distance), want)


def test_sinusoidal_table_matches_transformers():
    from transformers.models.musicgen.modeling_musicgen import (
        MusicgenSinusoidalPositionalEmbedding as Emb,
    )

    # musicgen-small/-medium/-large widths at every position, and a tiny odd width, against
    # the exact table (float64 throughout). Both tables take float32 angles, rounded twice
    # (the frequency, then position x frequency), each time by up to the spacing of float32
    # numbers at the largest angle (1.2e-4 below 2048); transformers' also takes float32
    # cos/sin, whose error depends on the CPU's vector kernels (1.2e-4 near 2000 on an
    # AVX-512 Xeon, none elsewhere). Ours takes cos/sin in float64 and rounds once.
    for n, d in [(2048, 1024), (2048, 1536), (2048, 2048), (100, 25)]:
        half = d // 2
        freqs = np.exp(np.arange(half) * -(math.log(10000) / (half - 1)))
        angles = np.arange(n)[:, None] * freqs[None]
        exact = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
        if d % 2:
            exact = np.concatenate([exact, np.zeros((n, 1))], axis=1)
        float32_angle = 2 * float(np.spacing(np.float32(angles.max())))
        ours, theirs = sinusoidal_table(n, d), Emb.get_embedding(n, d).numpy()
        np.testing.assert_allclose(ours, exact, atol=float32_angle, rtol=0)
        np.testing.assert_allclose(theirs, exact, atol=float32_angle, rtol=0)
        np.testing.assert_allclose(ours, theirs, atol=float32_angle, rtol=0)


# -- decoder ------------------------------------------------------------------------------------


def hf_encoder_states(hf, ids, mask):
    with torch.no_grad():
        h = hf.text_encoder(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))[0]
        if hasattr(hf, "enc_to_dec_proj"):
            h = hf.enc_to_dec_proj(h)
    return h * torch.tensor(mask)[..., None]


@pytest.mark.parametrize("kind", ["mono", "stereo", "same_width"])
def test_decoder_logits_match_transformers(models, kind, tiny_musicgen):
    hf, model = models(kind)
    ids, mask = tiny_musicgen.text_inputs()
    K = model.config.decoder.num_codebooks
    codes = np.random.default_rng(2).integers(0, tiny_musicgen.V + 1, (2, K, 9))
    with torch.no_grad():
        want = hf(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            decoder_input_ids=torch.tensor(codes.reshape(2 * K, 9)),
        ).logits.numpy()
    states, m = model.encode_text(mx.array(ids), mx.array(mask))
    np.testing.assert_allclose(
        np.array(states), hf_encoder_states(hf, ids, mask).numpy(), atol=1e-5
    )
    got = np.array(model.decoder(mx.array(codes), states, m))
    np.testing.assert_allclose(got.reshape(2 * K, 9, tiny_musicgen.V), want, atol=1e-4)


def test_melody_decoder_logits_match_transformers(models, tiny_musicgen):
    hf, model = models("melody")
    ids, mask = tiny_musicgen.text_inputs()
    K = model.config.decoder.num_codebooks
    codes = np.random.default_rng(2).integers(0, tiny_musicgen.V + 1, (2, K, 6))
    chroma = np.random.default_rng(3).random((2, 4, 12)).astype(np.float32)
    with torch.no_grad():
        want = hf(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            input_features=torch.tensor(chroma),
            decoder_input_ids=torch.tensor(codes.reshape(2 * K, 6)),
        ).logits.numpy()
    text, _ = model.encode_text(mx.array(ids), mx.array(mask))
    prefix = model.melody_prefix(text, chroma, 2, guidance=False)
    assert prefix.shape[1] == 10 + 7  # chroma tiled to chroma_length, then the text
    got = np.array(model.decoder(mx.array(codes), prefix))
    np.testing.assert_allclose(got.reshape(2 * K, 6, tiny_musicgen.V), want[:, -6:], atol=1e-4)


@pytest.mark.parametrize("kind", ["mono", "melody"])
def test_kv_cache_step_by_step_matches_full(models, kind, tiny_musicgen):
    _, model = models(kind)
    ids, mask = tiny_musicgen.text_inputs()
    K = model.config.decoder.num_codebooks
    codes = mx.array(np.random.default_rng(4).integers(0, tiny_musicgen.V + 1, (2, K, 12)))
    text, m = model.encode_text(mx.array(ids), mx.array(mask))
    dec = model.decoder
    if kind == "melody":
        prefix = model.melody_prefix(text, None, 2, guidance=False)
        full = dec(codes, prefix)
        cache = dec.make_cache()
        steps = [dec(codes[:, :, :3], prefix, cache=cache)]
    else:
        full = dec(codes, text, m)
        cache = dec.make_cache(text, m)  # cross-attention K/V computed once, here
        steps = [dec(codes[:, :, :3], cache=cache)]
    steps += [dec(codes[:, :, i : i + 1], cache=cache) for i in range(3, 12)]
    np.testing.assert_allclose(np.array(mx.concatenate(steps, 2)), np.array(full), atol=1e-4)


# -- delay pattern ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mono", "stereo"])
@pytest.mark.parametrize("prompt_len", [1, 4])
def test_delay_pattern_matches_transformers(models, kind, prompt_len, tiny_musicgen):
    hf, _ = models(kind)
    K = hf.decoder.num_codebooks
    prompt = np.random.default_rng(5).integers(0, tiny_musicgen.V, (2, K, prompt_len))
    prompt[:, :, 0] = tiny_musicgen.V  # the start token
    _, want = hf.decoder.build_delay_pattern_mask(
        torch.tensor(prompt.reshape(2 * K, prompt_len)), pad_token_id=tiny_musicgen.V, max_length=13
    )
    got = build_delay_pattern(prompt, 13, tiny_musicgen.V, audio_channels=K // 4)
    np.testing.assert_array_equal(got.reshape(2 * K, 13), want.numpy())


def test_delay_pattern_docstring_example():
    got = build_delay_pattern(np.full((1, 4, 1), 9), 8, 9)[0]
    P = 9
    assert got.tolist() == [
        [P, -1, -1, -1, -1, P, P, P],
        [P, P, -1, -1, -1, -1, P, P],
        [P, P, P, -1, -1, -1, -1, P],
        [P, P, P, P, -1, -1, -1, -1],
    ]
    seq = np.arange(8 * 11).reshape(1, 8, 11)
    assert undelay(seq, audio_channels=2).shape == (1, 8, 11 - 4)
    assert undelay(seq).shape == (1, 8, 11 - 8)


# -- generation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mono", "stereo", "same_width", "melody", "stereo_melody"])
def test_greedy_guided_generation_matches_transformers(models, kind, tiny_musicgen):
    hf, model = models(kind)
    # N >= 2K - 1 (K = 8 stereo)
    tiny_musicgen.assert_greedy_guided_generation_matches(hf, model, kind, N=16)


@pytest.mark.parametrize("kind", ["mono", "stereo", "melody"])
def test_continuation_from_prompt_codes_matches_transformers(models, kind, tiny_musicgen):
    hf, model = models(kind)
    ids, mask = tiny_musicgen.text_inputs()
    K = model.config.decoder.num_codebooks
    P, N = 5, 10
    prompt = np.random.default_rng(7).integers(0, tiny_musicgen.V, (2, K, P))
    want = tiny_musicgen.hf_generate_codes(
        hf,
        input_ids=torch.tensor(ids),
        attention_mask=torch.tensor(mask),
        decoder_input_ids=torch.tensor(prompt.reshape(2 * K, P)),
        do_sample=False,
        guidance_scale=3.0,
        max_new_tokens=N,
    )
    got = tiny_musicgen.run(
        model.generate_step(
            input_ids=ids,
            attention_mask=mask,
            prompt_codes=prompt,
            duration_s=tiny_musicgen.frames_for(model, N, prompt=P),
            temperature=0.0,
        )
    )
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[:, :, :P], prompt)


def test_greedy_without_guidance_matches_transformers(models, tiny_musicgen):
    hf, model = models("mono")
    ids, mask = tiny_musicgen.text_inputs()
    want = tiny_musicgen.hf_generate_codes(
        hf,
        input_ids=torch.tensor(ids),
        attention_mask=torch.tensor(mask),
        do_sample=False,
        guidance_scale=1.0,
        max_new_tokens=9,
    )
    got = tiny_musicgen.run(
        model.generate_step(
            input_ids=ids,
            attention_mask=mask,
            duration_s=tiny_musicgen.frames_for(model, 9),
            guidance_scale=1.0,
            temperature=0.0,
        )
    )
    np.testing.assert_array_equal(got, want)


def test_sampling_is_seeded_and_top_k_1_is_greedy(models, tiny_musicgen):
    _, model = models("mono")
    ids, mask = tiny_musicgen.text_inputs()

    def gen(**kw):
        return tiny_musicgen.run(
            model.generate_step(input_ids=ids, attention_mask=mask, duration_s=0.2, **kw)
        )

    a, b = gen(seed=3, top_k=5), gen(seed=3, top_k=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, gen(seed=4, top_k=5))
    np.testing.assert_array_equal(gen(seed=9, top_k=1), gen(temperature=0.0))
    nucleus = gen(seed=3, top_k=0, top_p=0.9, temperature=0.7)
    assert nucleus.shape == a.shape and nucleus.max() < tiny_musicgen.V


def test_top_k_samples_only_from_the_k_best(models, tiny_musicgen):
    """Every sampled code is among the k best guided logits at its step."""
    _, model = models("mono")
    ids, mask = tiny_musicgen.text_inputs(B=1)
    k = 3
    codes = tiny_musicgen.run(
        model.generate_step(input_ids=ids[:1], attention_mask=mask[:1], duration_s=0.1, top_k=k)
    )
    # Recompute the guided logits of each generated frame with teacher forcing.
    dec = model.config.decoder
    K = dec.num_codebooks
    text, m = model.encode_text(mx.array(ids[:1]), mx.array(mask[:1]))
    text2 = mx.concatenate([text, mx.zeros_like(text)])
    m2 = mx.concatenate([m, mx.zeros_like(m)])
    T = codes.shape[-1]
    start = np.full((1, K, 1), tiny_musicgen.V)
    pattern = build_delay_pattern(start, T + K, tiny_musicgen.V)
    seq = np.where(pattern == -1, 0, pattern)
    for k_ in range(K):
        seq[0, k_, k_ + 1 : k_ + 1 + T] = codes[0, k_]
    logits = np.array(model.decoder(mx.array(np.concatenate([seq, seq])), text2, m2))
    guided = logits[1] + (logits[0] - logits[1]) * 3.0  # [K, L, V]
    for k_ in range(K):
        for t in range(T):
            row = guided[k_, k_ + t]
            assert codes[0, k_, t] in np.argsort(-row)[:k]


def test_generate_step_progress_and_cancel(models, tiny_musicgen):
    _, model = models("mono")
    ids, mask = tiny_musicgen.text_inputs()
    gen = model.generate_step(input_ids=ids, attention_mask=mask, duration_s=0.2)
    first = next(gen)
    assert first.step == 1 and first.total == 20 + 3
    assert first.tokens_per_second > 0 and first.peak_memory_gb >= 0
    gen.close()  # cancelling is closing the generator
    with pytest.raises(StopIteration):
        next(gen)


def test_plan_windows():
    assert _plan_windows(100, 0, 300, 180) == [(0, 100)]
    # 30 s windows, 18 s stride at 50 frames/s for 60 s: 1500, then +900, then +600.
    assert _plan_windows(3000, 0, 1500, 900) == [(0, 1500), (600, 900), (600, 600)]
    assert _plan_windows(3000, 200, 1500, 900)[0] == (200, 1300)
    with pytest.raises(ValueError):
        _plan_windows(100, 100, 300, 180)


def test_long_form_windows_continue_the_previous_codes(models, tiny_musicgen):
    """Beyond max_window_s each window is a continuation prompted by the previous codes."""
    _, model = models("mono")
    ids, mask = tiny_musicgen.text_inputs()
    common = dict(input_ids=ids, attention_mask=mask, temperature=0.0)
    # frame rate 100: window 12 frames, stride 7 frames, 20 frames in total
    long = tiny_musicgen.run(
        model.generate_step(duration_s=0.2, max_window_s=0.12, extend_stride_s=0.07, **common)
    )
    assert long.shape == (2, 4, 20)
    first = tiny_musicgen.run(model.generate_step(duration_s=0.12, **common))
    np.testing.assert_array_equal(long[:, :, :12], first)
    second = tiny_musicgen.run(
        model.generate_step(duration_s=0.12, prompt_codes=long[:, :, 7:12], **common)
    )
    np.testing.assert_array_equal(long[:, :, 12:19], second[:, :, 5:])
    third = tiny_musicgen.run(
        model.generate_step(duration_s=0.06, prompt_codes=long[:, :, 14:19], **common)
    )
    np.testing.assert_array_equal(long[:, :, 19:], third[:, :, 5:])


def test_melody_audio_long_form_takes_each_windows_melody(models, monkeypatch, tiny_musicgen):
    """melody= audio -> chroma per window: the first window the whole melody (transformers),
    later ones the melody from the window's start time, looped (audiocraft)."""
    import sys

    _, model = models("melody")

    def fake_melody_chroma(audio, sampling_rate):  # one frame per 8 samples, content-dependent
        a = np.asarray(audio)[::8]
        return np.eye(12, dtype=np.float32)[(a * 12).astype(int) % 12]

    fake = type(sys)("engine.models.chroma")
    fake.melody_chroma = fake_melody_chroma
    monkeypatch.setitem(sys.modules, "engine.models.chroma", fake)
    melody = np.random.default_rng(0).random(120).astype(np.float32)  # 0.15 s at 800 Hz
    ids, mask = tiny_musicgen.text_inputs()
    common = dict(input_ids=ids, attention_mask=mask, temperature=0.0)
    windows = dict(max_window_s=0.12, extend_stride_s=0.07)  # 12 frames = 96 samples, stride 7
    long = tiny_musicgen.run(
        model.generate_step(duration_s=0.2, melody=melody, melody_sr=800, **windows, **common)
    )
    first = tiny_musicgen.run(
        model.generate_step(duration_s=0.12, chroma=fake_melody_chroma(melody, 800), **common)
    )
    np.testing.assert_array_equal(long[:, :, :12], first)
    for start, end, dur in [(7, 19, 0.12), (14, 20, 0.06)]:  # windows starting at frames 7, 14
        piece = melody[(start * 8 + np.arange(96)) % 120]
        nxt = tiny_musicgen.run(
            model.generate_step(
                duration_s=dur,
                prompt_codes=long[:, :, start : start + 5],
                chroma=fake_melody_chroma(piece, 800),
                **common,
            )
        )
        np.testing.assert_array_equal(
            long[:, :, start + 5 : end], nxt[:, :, 5 : 5 + end - start - 5]
        )


def test_melody_audio_uses_the_chroma_module(models, tiny_musicgen):
    chroma_mod = pytest.importorskip("engine.models.chroma")
    _, model = models("melody")
    t = np.arange(1600) / 16000
    melody = (np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 660 * t)).astype(np.float32)
    ids, mask = tiny_musicgen.text_inputs()
    common = dict(input_ids=ids, attention_mask=mask, duration_s=0.1, temperature=0.0)
    got = tiny_musicgen.run(model.generate_step(melody=melody, melody_sr=16000, **common))
    ch = chroma_mod.melody_chroma(melody, 16000)
    np.testing.assert_array_equal(got, tiny_musicgen.run(model.generate_step(chroma=ch, **common)))
    assert not np.array_equal(got, tiny_musicgen.run(model.generate_step(**common)))


def test_unconditional_and_errors(models, tiny_musicgen):
    _, model = models("mono")
    codes = tiny_musicgen.run(model.generate_step(None, duration_s=0.1, seed=1))
    assert codes.shape == (1, 4, 10)
    with pytest.raises(ValueError, match="tokenizer"):
        tiny_musicgen.run(model.generate_step(["a prompt"], duration_s=0.1))
    with pytest.raises(ValueError, match="too short"):
        tiny_musicgen.run(model.generate_step(None, duration_s=0.02))
    with pytest.raises(ValueError, match="melody"):
        tiny_musicgen.run(model.generate_step(None, duration_s=0.1, chroma=np.ones((4, 12))))
