"""EnCodec in MLX against transformers' EncodecModel, on tiny random-weight models.

Codes must be identical; decoded audio must agree to >= 60 dB SNR (it is ~120-140 dB).
The models are built by the ``tiny_encodec`` fixture (tests/models/conftest.py).
"""

import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import mlx.core as mx
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from convert.encodec import convert_encodec_weights  # noqa: E402
from convert.errors import ConversionError  # noqa: E402
from engine.models import build_model  # noqa: E402
from engine.models.encodec import (  # noqa: E402
    LSTM,
    EncodecConfig,
    EncodecModel,
    conv1d,
    conv_transpose1d,
)

# Options over the tiny codec (tiny_encodec.TINY: hop 16 samples, 4 codebooks at 32 kbit/s)
VARIANTS = {
    "mono": {},  # the 32 kHz MusicGen codec's options
    "stereo": dict(audio_channels=2),
    "causal": dict(use_causal_conv=True, trim_right_ratio=0.5, use_conv_shortcut=True),
    "group_norm": dict(
        norm_type="time_group_norm",
        num_residual_layers=2,
        dilation_growth_rate=3,
        upsampling_ratios=[5, 3],
        pad_mode="replicate",
    ),
}
LENGTHS = [1000, 37, 3]  # 1000 is not a multiple of the hop; 3 needs _pad1d's extra padding
MIN_SNR_DB = 60.0


def snr_db(ref: np.ndarray, x: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - x) ** 2)))


@pytest.fixture(scope="module", params=list(VARIANTS))
def pair(request, tiny_encodec):
    hf = tiny_encodec.build_hf(**VARIANTS[request.param])
    return hf, tiny_encodec.load_mlx(hf)


def test_codes_match_transformers(pair):
    hf, model = pair
    rng = np.random.default_rng(1)
    C = hf.config.audio_channels
    for T in LENGTHS:
        audio = rng.standard_normal((2, C, T)).astype(np.float32)
        for bw in hf.config.target_bandwidths:
            with torch.no_grad():
                ref = hf.encode(torch.from_numpy(audio), bandwidth=bw).audio_codes[0].numpy()
            codes = model.encode(mx.array(audio.transpose(0, 2, 1)), bandwidth=bw)
            assert codes.dtype == mx.int32
            np.testing.assert_array_equal(np.array(codes), ref, err_msg=f"T={T} bandwidth={bw}")
        if T == LENGTHS[0]:  # every codebook is exercised
            assert all(len(np.unique(ref[:, k])) > 4 for k in range(ref.shape[1]))


def test_default_bandwidth_uses_every_codebook(pair):
    hf, model = pair
    audio = np.random.default_rng(2).standard_normal((1, 100, hf.config.audio_channels))
    codes = model.encode(mx.array(audio.astype(np.float32)))
    assert codes.shape == (1, hf.config.num_quantizers, 7)  # ceil(100 / 16)
    assert model.num_codebooks == hf.config.num_quantizers


def test_decode_matches_transformers(pair):
    hf, model = pair
    rng = np.random.default_rng(3)
    for S in [40, 3, 1]:
        codes = rng.integers(0, hf.config.codebook_size, (2, hf.config.num_quantizers, S))
        with torch.no_grad():
            ref = hf.decode(torch.from_numpy(codes)[None], [None]).audio_values.numpy()
        ref = ref.transpose(0, 2, 1)
        audio = np.array(model.decode(mx.array(codes.astype(np.int32))))
        assert audio.shape == ref.shape == (2, S * hf.config.hop_length, hf.config.audio_channels)
        assert snr_db(ref, audio) >= MIN_SNR_DB
        assert np.abs(ref - audio).max() < 1e-4


def test_fewer_codebooks_decode(tiny_encodec):
    hf = tiny_encodec.build_hf()
    model = tiny_encodec.load_mlx(hf)
    codes = np.random.default_rng(4).integers(0, 16, (1, 2, 10))
    with torch.no_grad():
        ref = hf.decode(torch.from_numpy(codes)[None], [None]).audio_values.numpy()
    audio = np.array(model.decode(mx.array(codes.astype(np.int32))))
    assert snr_db(ref.transpose(0, 2, 1), audio) >= MIN_SNR_DB


def _rename_weight_norm(state: dict) -> dict:
    """parametrizations.weight.original0/1 (torch's current style) -> weight_g/weight_v."""
    out = {}
    for k, v in state.items():
        k = k.replace(".parametrizations.weight.original0", ".weight_g")
        out[k.replace(".parametrizations.weight.original1", ".weight_v")] = v
    return out


def test_both_weight_norm_styles(tiny_encodec):
    hf = tiny_encodec.build_hf()
    state = tiny_encodec.state_dict(hf)
    assert any(k.endswith("parametrizations.weight.original0") for k in state)  # torch's default
    old_style = _rename_weight_norm(state)
    assert any(k.endswith(".weight_g") for k in old_style)
    config = hf.config.to_dict()
    new = convert_encodec_weights(state, config)
    old = convert_encodec_weights(old_style, config)
    assert new.keys() == old.keys()
    for k in new:
        np.testing.assert_array_equal(new[k], old[k])
        assert new[k].dtype == np.float32 and new[k].flags.c_contiguous


def test_weight_norm_is_folded_like_torch(tiny_encodec):
    hf = tiny_encodec.build_hf()
    conv = hf.decoder.layers[3].conv  # a ConvTranspose1d: torch normalises over dims 1, 2
    with torch.no_grad():
        torch_w = conv.weight.numpy()  # [in, out, k], computed by the parametrization
    w = convert_encodec_weights(tiny_encodec.state_dict(hf), hf.config.to_dict())[
        "decoder.layers.3.conv.weight"
    ]
    np.testing.assert_allclose(w, torch_w.transpose(1, 2, 0), rtol=1e-6, atol=1e-7)


def test_sanitize_takes_a_transformers_state_dict(tiny_encodec):
    hf = tiny_encodec.build_hf()
    model = EncodecModel(EncodecConfig.from_dict(hf.config.to_dict()))
    raw = {k: mx.array(v) for k, v in _rename_weight_norm(tiny_encodec.state_dict(hf)).items()}
    model.load_weights(list(model.sanitize(raw).items()), strict=True)
    ref = tiny_encodec.load_mlx(hf)
    codes = mx.array(np.random.default_rng(5).integers(0, 16, (1, 4, 12)).astype(np.int32))
    np.testing.assert_allclose(
        np.array(model.decode(codes)), np.array(ref.decode(codes)), atol=1e-6
    )
    converted = {
        k: mx.array(v)
        for k, v in convert_encodec_weights(
            tiny_encodec.state_dict(hf), {**tiny_encodec.TINY}
        ).items()
    }
    assert model.sanitize(converted) is converted  # already MLX weights: untouched


def test_prefix_and_other_models_keys_are_ignored(tiny_encodec):
    hf = tiny_encodec.build_hf()
    state = tiny_encodec.state_dict(hf)
    prefixed = {"audio_encoder." + k: v for k, v in state.items()}
    prefixed["text_encoder.shared.weight"] = np.zeros((3, 3), np.float32)
    a = convert_encodec_weights(prefixed, hf.config.to_dict(), prefix="audio_encoder.")
    b = convert_encodec_weights(state, hf.config.to_dict())
    assert a.keys() == b.keys()
    assert not any(k.startswith("audio_encoder.") for k in a)


def test_missing_and_unexpected_tensors_are_all_named(tiny_encodec):
    hf = tiny_encodec.build_hf()
    state = {"audio_encoder." + k: v for k, v in tiny_encodec.state_dict(hf).items()}
    p = "audio_encoder."
    gone = [
        p + "encoder.layers.0.conv.parametrizations.weight.original0",  # partner v stays
        p + "decoder.layers.1.lstm.bias_hh_l1",
        p + "quantizer.layers.3.codebook.embed",
    ]
    for k in gone:
        del state[k]
    extra = [p + "encoder.layers.99.conv.bias", p + "decoder.extra_head.weight"]
    for k in extra:
        state[k] = np.zeros(3, np.float32)
    del state[p + "quantizer.layers.0.codebook.embed_avg"]  # an unused buffer: not an error
    with pytest.raises(ConversionError) as e:
        convert_encodec_weights(state, hf.config.to_dict(), prefix=p)
    msg = str(e.value)
    assert "\n" not in msg
    for k in gone + extra:
        assert k in msg
    # the weight-norm partner that is present is not called unexpected
    assert "encoder.layers.0.conv.parametrizations.weight.original1" not in msg


def test_wrong_shape_is_named(tiny_encodec):
    hf = tiny_encodec.build_hf()
    state = tiny_encodec.state_dict(hf)
    state["quantizer.layers.1.codebook.embed"] = np.zeros((8, 8), np.float32)
    with pytest.raises(
        ConversionError, match=r"wrong shape: quantizer\.layers\.1\.codebook\.embed"
    ):
        convert_encodec_weights(state, hf.config.to_dict())


def test_the_48khz_codec_is_refused_in_one_line(tiny_encodec):
    hf = tiny_encodec.build_hf()
    config = hf.config.to_dict() | {"normalize": True, "chunk_length_s": 1.0}
    with pytest.raises(ConversionError, match="normalises loudness per chunk") as e:
        convert_encodec_weights(tiny_encodec.state_dict(hf), config)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("recurrence", ["mlx", "numpy"])
def test_lstm_matches_torch(recurrence):
    torch.manual_seed(0)
    ref = torch.nn.LSTM(8, 8, 2).eval()
    lstm = LSTM(8, 8, 2)
    params = dict(ref.named_parameters())
    for n, layer in enumerate(lstm.layers):
        layer.Wx = mx.array(params[f"weight_ih_l{n}"].detach().numpy())
        layer.Wh = mx.array(params[f"weight_hh_l{n}"].detach().numpy())
        bias = params[f"bias_ih_l{n}"] + params[f"bias_hh_l{n}"]
        layer.bias = mx.array(bias.detach().numpy())
    x = np.random.default_rng(6).standard_normal((3, 25, 8)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x).transpose(0, 1))[0].transpose(0, 1).numpy()
    got = lstm(mx.array(x), recurrence)
    np.testing.assert_allclose(np.array(got), want, atol=1e-5)


@pytest.mark.parametrize(
    "C_in,C_out,K,stride,dilation,L",
    [(16, 8, 3, 1, 1, 20), (16, 8, 5, 1, 3, 20), (16, 8, 10, 5, 1, 37), (16, 8, 7, 3, 1, 29),
     (16, 8, 4, 5, 1, 29), (8, 8, 6, 3, 1, 6), (2, 4, 7, 1, 1, 30)],
)  # fmt: skip
def test_conv1d_matches_mlx(C_in, C_out, K, stride, dilation, L):
    rng = np.random.default_rng(7)
    x = mx.array(rng.standard_normal((2, L, C_in)).astype(np.float32))
    w = mx.array(rng.standard_normal((C_out, K, C_in)).astype(np.float32))
    want = mx.conv1d(x, w, stride=stride, dilation=dilation)
    np.testing.assert_allclose(np.array(conv1d(x, w, stride, dilation)), np.array(want), atol=1e-4)


@pytest.mark.parametrize("K,stride", [(8, 4), (9, 4), (3, 4), (6, 3), (5, 1)])
def test_conv_transpose1d_matches_mlx(K, stride):
    rng = np.random.default_rng(8)
    x = mx.array(rng.standard_normal((2, 7, 6)).astype(np.float32))
    w = mx.array(rng.standard_normal((5, K, 6)).astype(np.float32))
    want = mx.conv_transpose1d(x, w, stride=stride)
    np.testing.assert_allclose(np.array(conv_transpose1d(x, w, stride)), np.array(want), atol=1e-4)


def test_config_of_the_musicgen_codec():
    # facebook/encodec_32khz (transformers' conversion script settings)
    hf_config = transformers.EncodecConfig(
        sampling_rate=32000,
        upsampling_ratios=[8, 5, 4, 4],
        target_bandwidths=[2.2],
        num_filters=64,
        codebook_size=2048,
        use_causal_conv=False,
        normalize=False,
        use_conv_shortcut=False,
    )
    config = EncodecConfig.from_dict({**hf_config.to_dict(), "not_a_field": 1})
    assert (config.hop_length, config.frame_rate) == (640, 50)
    assert config.num_quantizers == hf_config.num_quantizers == 4
    assert config.codebook_dim == 128
    model = build_model(hf_config.to_dict())  # model_type "encodec" picks this file
    assert isinstance(model, EncodecModel)
    assert (model.sampling_rate, model.frame_rate, model.num_codebooks) == (32000, 50, 4)


def test_rejects_what_it_does_not_support(tiny_encodec):
    with pytest.raises(ValueError, match="48 kHz"):
        EncodecModel(EncodecConfig(**{**tiny_encodec.TINY, "normalize": True}))
    with pytest.raises(ValueError, match="48 kHz"):
        EncodecModel(EncodecConfig(**{**tiny_encodec.TINY, "chunk_length_s": 1.0, "overlap": 0.01}))
    model = EncodecModel(EncodecConfig(**tiny_encodec.TINY))
    with pytest.raises(ValueError, match="bandwidth"):
        model.encode(mx.zeros((1, 32, 1)), bandwidth=3.0)
    with pytest.raises(ValueError, match="audio must be"):
        model.encode(mx.zeros((1, 32, 2)))
