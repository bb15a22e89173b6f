"""The fast paths of MusicGen and EnCodec give the results of the plain ones.

Compiled decoding over a growing fixed-capacity cache, row-split matmuls on CPU streams,
float32 compute for quantized decoders, T5/EnCodec weights read from disk on use, EnCodec's
chunked upsampling and its ELU (its convolutions and LSTM: tests/models/test_encodec.py).
"""

import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import engine.models.musicgen as musicgen  # noqa: E402
from convert.musicgen import convert_musicgen  # noqa: E402
from engine.models import encodec  # noqa: E402
from engine.models.musicgen import MusicGen, _dense  # noqa: E402


@pytest.mark.parametrize("kind", ["mono", "melody"])
def test_generation_across_cache_growth_matches_transformers(monkeypatch, kind, tiny_musicgen):
    # Blocks of 4 positions: the cache grows (and the step is traced again) many times,
    # also inside the first call (melody prefix of 10 + 7 text states).
    monkeypatch.setattr(musicgen, "CACHE_BLOCK", 4)
    hf = tiny_musicgen.build_hf(kind)
    tiny_musicgen.assert_greedy_guided_generation_matches(hf, tiny_musicgen.to_mlx(hf), kind, N=16)


def test_decoder_step_matches_the_cached_call(tiny_musicgen):
    model = tiny_musicgen.to_mlx(tiny_musicgen.build_hf("mono"))
    dec = model.decoder
    ids, mask = tiny_musicgen.text_inputs()
    text, m = model.encode_text(mx.array(ids), mx.array(mask))
    codes = mx.array(np.random.default_rng(3).integers(0, 65, (2, 4, 9)).astype(np.int32))
    want = dec(codes, text, m)[:, :, 4:8]  # logits at positions 4..7, no cache
    cross = dec.make_cache(text, m)
    kv = dec.static_cache(2, 8, mx.float32)
    got = []
    logits, kv = dec.step(codes[:, :, :5], mx.array(0), kv, cross.cross, cross.cross_mask)
    got.append(logits)
    for i in range(5, 8):
        if i + 1 > kv[0][0].shape[2]:
            kv = dec.static_cache(2, 16, mx.float32, kv)
        logits, kv = dec.step(
            codes[:, :, i : i + 1], mx.array(i), kv, cross.cross, cross.cross_mask
        )
        got.append(logits)
    got = mx.stack(got, axis=2)
    np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-5)


@pytest.mark.parametrize("kind", ["float16", "q4", "q8"])
def test_row_split_dense_matches_the_layer(kind):
    layer = nn.Linear(128, 192, bias=True)
    if kind == "float16":
        layer.set_dtype(mx.float16)
    else:
        layer = nn.QuantizedLinear.from_linear(layer, group_size=64, bits=int(kind[1:]))
        musicgen.compute_in_float32(layer)
    x = mx.random.normal((2, 128), key=mx.random.key(0)).astype(mx.float16)
    np.testing.assert_allclose(
        np.array(_dense(layer, x).astype(mx.float32)),
        np.array(layer(x).astype(mx.float32)),
        rtol=1e-3,
        atol=1e-3,
    )


@pytest.fixture(scope="module")
def converted(tmp_path_factory, tiny_musicgen):
    hf = tiny_musicgen.build_hf("mono")
    snap = tmp_path_factory.mktemp("hf")
    hf.save_pretrained(snap)
    return convert_musicgen(snap, tmp_path_factory.mktemp("mlx"))


def test_offloaded_text_encoder_and_codec_give_the_same_audio(converted, tiny_musicgen):
    ids, mask = tiny_musicgen.text_inputs()
    kw = dict(input_ids=ids, attention_mask=mask, duration_s=0.12, seed=3)
    resident = MusicGen.load(converted, offload=False)
    want = resident.generate(**kw)
    model = MusicGen.load(converted)
    before = model.text_encoder.encoder.block[0].layer[1].DenseReluDense.wi.weight
    got = model.generate(**kw)
    np.testing.assert_array_equal(got, want)
    # The weights used were let go: fresh (unread) arrays from the file took their place.
    after = model.text_encoder.encoder.block[0].layer[1].DenseReluDense.wi.weight
    assert after is not before
    np.testing.assert_array_equal(model.generate(**kw), want)  # and read again when needed


def test_quantized_decoder_computes_in_float32_on_cpu(tmp_path, tiny_musicgen):
    hf = tiny_musicgen.build_hf("mono")
    import transformers as tf

    config = hf.config.to_dict()
    config["decoder"].update(hidden_size=64, ffn_dim=128)
    hf = tf.MusicgenForConditionalGeneration(tf.MusicgenConfig(**config)).eval()
    hf.save_pretrained(tmp_path / "hf")
    out = convert_musicgen(tmp_path / "hf", tmp_path / "q4", dtype="float16", quantize=4)
    q = MusicGen.load(out)
    assert q.decoder.layers[0].fc1.scales.dtype == mx.float32
    assert q.dtype == mx.float32 and q.cache_dtype == mx.float16
    ids, mask = tiny_musicgen.text_inputs()
    codes = tiny_musicgen.run(
        q.generate_step(input_ids=ids, attention_mask=mask, duration_s=0.1, seed=1)
    )
    assert codes.shape == (2, 4, 10) and codes.min() >= 0 and codes.max() < 64


# -- EnCodec ------------------------------------------------------------------------------------


def test_elu_matches_expm1():
    x = np.concatenate(
        [
            np.random.default_rng(0).normal(size=100_000) * 5,
            [0.0, -0.0, 1e-30, -1e-30, -1e-7, -1e-3, -29.9, -30.0, -31.0, -1e6, 1e6],
        ]
    ).astype(np.float32)
    want = np.where(x > 0, x, np.expm1(np.minimum(x, 0).astype(np.float64)))
    got = np.array(encodec.elu(mx.array(x)))
    np.testing.assert_allclose(got, want, rtol=5e-7, atol=1e-12)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(upsampling_ratios=[4, 2, 2]),
        dict(upsampling_ratios=[2, 3, 2, 2], use_causal_conv=True, trim_right_ratio=0.5),
        dict(upsampling_ratios=[2, 2, 3], num_residual_layers=2, dilation_growth_rate=3),
    ],
)
def test_chunked_decoder_equals_one_pass(overrides, tiny_encodec):
    dec = tiny_encodec.load_mlx(tiny_encodec.build_hf(**overrides)).decoder
    x = mx.array(np.random.default_rng(4).normal(size=(2, 37, 8)).astype(np.float32))
    whole = np.array(dec(x, chunk_frames=None))
    assert dec.context_frames() >= 1
    for chunk in (1, 3, 5, 16):
        np.testing.assert_allclose(np.array(dec(x, chunk_frames=chunk)), whole, atol=1e-6)
