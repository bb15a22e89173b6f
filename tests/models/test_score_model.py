import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from engine.models import load_model, save_model
from engine.models.cache import KVCache, StaticKVCache
from engine.models.score import ModelArgs, apply_rope, rope_tables


def test_from_dict_ignores_unknown_keys(tiny_model_args):
    args = ModelArgs.from_dict(
        {**tiny_model_args, "architectures": ["LlamaForCausalLM"], "bogus": 1}
    )
    assert args.hidden_size == 32 and args.vocab_size == 37 and args.model_type == "score"


def test_logits_shape_and_parameter_count(make_tiny_model):
    model = make_tiny_model()
    x = mx.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]], dtype=mx.int32)
    assert model(x).shape == (2, 5, 37)
    D, F, V, n = 32, 64, 37, 2
    expected = V * D + n * (4 * D * D + 3 * D * F + 2 * D) + D
    assert model.num_parameters == expected
    assert make_tiny_model(tie_word_embeddings=False).num_parameters == expected + V * D


def test_causal_prefix_independence(make_tiny_model):
    model = make_tiny_model()
    x = mx.random.randint(0, 37, (1, 12))
    a = model(x)[:, :6]
    b = model(x[:, :6])
    np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-5)


@pytest.mark.parametrize("prefill", [1, 7])
def test_kv_cache_incremental_matches_full(prefill, make_tiny_model):
    model = make_tiny_model()
    x = mx.random.randint(0, 37, (2, 40))
    full = model(x)
    cache = model.make_cache()
    steps = [model(x[:, :prefill], cache)]
    steps += [model(x[:, i : i + 1], cache) for i in range(prefill, 40)]
    np.testing.assert_allclose(np.array(mx.concatenate(steps, 1)), np.array(full), atol=1e-4)
    assert cache[0].offset == 40


def test_kv_cache_chunks_cross_block_boundary(make_tiny_model):
    model = make_tiny_model(max_position_embeddings=600)
    x = mx.random.randint(0, 37, (1, 300))
    full = model(x)
    cache = model.make_cache()
    parts = [model(x[:, :250], cache), model(x[:, 250:260], cache), model(x[:, 260:], cache)]
    np.testing.assert_allclose(np.array(mx.concatenate(parts, 1)), np.array(full), atol=1e-4)
    assert cache[0].keys.shape[2] == 512  # grown in 256-position blocks


def test_static_cache_matches_full(make_tiny_model):
    model = make_tiny_model()
    x = mx.random.randint(0, 37, (1, 20))
    full = model(x)
    z = mx.zeros((1, 4, 32, 8))
    cache = [StaticKVCache(z, z, mx.array(0)) for _ in model.layers]
    outs = [model(x[:, :5], cache)]
    for i in range(5, 20):
        cache = [StaticKVCache(k, v, mx.array(i)) for k, v in (c.state for c in cache)]
        outs.append(model(x[:, i : i + 1], cache))
    np.testing.assert_allclose(np.array(mx.concatenate(outs, 1)), np.array(full), atol=1e-4)


def test_kv_cache_returns_everything_so_far():
    c = KVCache()
    k = mx.ones((1, 2, 3, 4))
    keys, values = c.update_and_fetch(k, 2 * k)
    keys, values = c.update_and_fetch(3 * k[:, :, :1], 4 * k[:, :, :1])
    assert keys.shape == (1, 2, 4, 4) and c.offset == 4
    np.testing.assert_array_equal(np.array(keys[0, 0, :, 0]), [1, 1, 1, 3])
    np.testing.assert_array_equal(np.array(values[0, 0, :, 0]), [2, 2, 2, 4])


def test_save_load_round_trip(tmp_path, make_tiny_model, tiny_model_args):
    model = make_tiny_model()
    config = {**tiny_model_args, "model_type": "score", "note": "extra keys survive"}
    save_model(tmp_path, model, config)
    loaded, cfg = load_model(tmp_path)
    assert cfg == config
    x = mx.random.randint(0, 37, (2, 9))
    np.testing.assert_array_equal(np.array(loaded(x)), np.array(model(x)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_save_float16_loads_back_as_float32(tmp_path, make_tiny_model, tiny_model_args):
    model = make_tiny_model()
    save_model(tmp_path, model, {**tiny_model_args, "model_type": "score"}, dtype=mx.float16)
    assert mx.load(str(tmp_path / "model.safetensors"))["model.norm.weight"].dtype == mx.float16
    loaded, _ = load_model(tmp_path)
    assert all(v.dtype == mx.float32 for _, v in tree_flatten(loaded.parameters()))
    x = mx.random.randint(0, 37, (1, 9))
    np.testing.assert_allclose(np.array(loaded(x)), np.array(model(x)), atol=5e-2)


def test_strict_loading_names_missing_tensor(tmp_path, make_tiny_model, tiny_model_args):
    model = make_tiny_model()
    save_model(tmp_path, model, {**tiny_model_args, "model_type": "score"})
    weights = mx.load(str(tmp_path / "model.safetensors"))
    del weights["model.layers.1.mlp.up_proj.weight"]
    mx.save_safetensors(str(tmp_path / "model.safetensors"), weights)
    with pytest.raises(ValueError, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
        load_model(tmp_path)


def test_sanitize_drops_rotary_buffers_and_tied_head(make_tiny_model):
    model = make_tiny_model()
    weights = dict(tree_flatten(model.parameters()))
    extra = {
        "model.layers.0.self_attn.rotary_emb.inv_freq": mx.zeros(4),
        "lm_head.weight": mx.zeros((37, 32)),
    }
    assert model.sanitize({**weights, **extra}).keys() == weights.keys()
    untied = make_tiny_model(tie_word_embeddings=False)
    assert "lm_head.weight" in untied.sanitize({**weights, **extra})


def test_unknown_model_type(tmp_path, make_tiny_model, tiny_model_args):
    save_model(tmp_path, make_tiny_model(), {**tiny_model_args, "model_type": "no_such_arch"})
    with pytest.raises(ValueError, match="no_such_arch"):
        load_model(tmp_path)


@pytest.mark.parametrize("offset", [0, 13])
def test_rope_matches_mx_fast_rope(offset):
    x = mx.random.normal((2, 4, 9, 16))
    ours = apply_rope(x, *rope_tables(offset + mx.arange(9), 16, 10000.0))
    ref = mx.fast.rope(x, 16, traditional=False, base=10000.0, scale=1.0, offset=offset)
    np.testing.assert_allclose(np.array(ours), np.array(ref), atol=1e-5)


@pytest.mark.parametrize("L", [17, 256, 257, 700, 1024])
def test_causal_attention_in_query_blocks_is_one_calls_attention(L):
    """Training and scoring run causal attention in blocks of `ATTENTION_BLOCK` queries; the
    outputs and their gradients agree with MLX's one call to float rounding."""
    import mlx.core as mx

    from engine.models.score import ATTENTION_BLOCK, causal_attention

    assert ATTENTION_BLOCK < 1024  # the window is blocked
    mx.random.seed(L)
    q, k, v = (mx.random.normal((2, 4, L, 32)) for _ in range(3))
    cot = mx.random.normal((2, 4, L, 32))

    def one(q, k, v):
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=0.17, mask="causal")

    def blocked(q, k, v):
        return causal_attention(q, k, v, 0.17)

    np.testing.assert_allclose(np.array(blocked(q, k, v)), np.array(one(q, k, v)), atol=2e-6)
    g_one = mx.vjp(one, [q, k, v], [cot])[1]
    g_blocked = mx.vjp(blocked, [q, k, v], [cot])[1]
    for a, b in zip(g_blocked, g_one, strict=True):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=2e-5)
