"""The MusicGen catalogue: its sizes are those of the transformers configurations."""

from __future__ import annotations

import pytest

from engine import hub as cat

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

SIZES = {
    "small": (1024, 24, 16, 4096),
    "medium": (1536, 48, 24, 6144),
    "large": (2048, 48, 32, 8192),
}


def configs():
    t5 = transformers.T5Config(
        d_model=768, d_ff=3072, num_layers=12, num_heads=12, vocab_size=32128,
        feed_forward_proj="relu",
    )  # fmt: skip
    codec = transformers.EncodecConfig(
        sampling_rate=32000, audio_channels=1, num_filters=64, upsampling_ratios=[8, 5, 4, 4],
        codebook_size=2048, target_bandwidths=[2.2], norm_type="weight_norm",
        use_causal_conv=False, compress=2, residual_kernel_size=3, num_lstm_layers=2,
    )  # fmt: skip
    return t5, codec


@pytest.mark.parametrize("name", ["musicgen-small", "musicgen-stereo-small"])
def test_parameter_counts_match_the_transformers_model(name):
    e = cat.entry(name)
    t5, codec = configs()
    D, L, H, F = SIZES["small"]
    K = 8 if e.stereo else 4
    dec = transformers.MusicgenDecoderConfig(
        hidden_size=D, num_hidden_layers=L, num_attention_heads=H, ffn_dim=F, num_codebooks=K,
        vocab_size=2048, audio_channels=2 if e.stereo else 1,
    )  # fmt: skip
    cfg = transformers.MusicgenConfig(
        text_encoder=t5.to_dict(), audio_encoder=codec.to_dict(), decoder=dec.to_dict()
    )
    with torch.device("meta"):
        model = transformers.MusicgenForConditionalGeneration(cfg)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model.text_encoder) == cat.TEXT_ENCODER_PARAMS
    assert count(model.audio_encoder) == cat.CODEC_PARAMS
    assert count(model.decoder) == e.decoder_params
    linear = sum(
        m.weight.numel() for n, m in model.decoder.named_modules() if isinstance(m, torch.nn.Linear)
    )
    assert linear == e.decoder_linear_params


def test_memory_per_dtype():
    e = cat.entry("musicgen-small")
    assert e.memory_bytes("float32") == 4 * e.params
    assert e.memory_bytes("float16") == 2 * e.params
    # quantised: decoder linears at 4 (8) bits + an fp16 scale and bias per 64 weights
    rest = e.params - e.decoder_linear_params
    assert e.memory_bytes(bits=4) == int(rest * 2 + e.decoder_linear_params * (0.5 + 4 / 64))
    assert e.memory_bytes(bits=8) == int(rest * 2 + e.decoder_linear_params * (1.0 + 4 / 64))


def test_unknown_name_suggests():
    with pytest.raises(cat.CatalogError, match="did you mean musicgen-small"):
        cat.entry("musicgen-smal")
    assert cat.entry("facebook/musicgen-melody").melody


def test_catalogue_lines_name_the_licence():
    for e in cat.CATALOG.values():
        line = cat.describe(e)
        assert e.name in line and "CC-BY-NC-4.0" in line and "4-bit" in line
