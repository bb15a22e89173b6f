"""convert_musicgen: transformers snapshot folder -> MLX folder -> MusicGen.load, end to end.

The snapshots are tiny random-weight models written here with ``save_pretrained``; the loaded
MLX model (with its EnCodec codec) must generate the same codes and audio as transformers.
"""

import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
import json

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import convert.musicgen  # noqa: E402
from convert.errors import ConversionError  # noqa: E402
from convert.musicgen import PINNED_REVISIONS, convert_musicgen  # noqa: E402
from engine.models.musicgen import MusicGen  # noqa: E402


@pytest.fixture(scope="module")
def converted(tmp_path_factory, tiny_musicgen):
    """kind -> (transformers model, snapshot folder, converted MLX folder)."""
    cache = {}

    def get(kind: str):
        if kind not in cache:
            hf = tiny_musicgen.build_hf(kind)
            snap = tmp_path_factory.mktemp(f"hf-{kind}")
            hf.save_pretrained(snap)
            out = convert_musicgen(snap, tmp_path_factory.mktemp(f"mlx-{kind}"))
            cache[kind] = (hf, snap, out)
        return cache[kind]

    return get


def hf_audio(hf, **kwargs) -> np.ndarray:
    with torch.no_grad():
        audio = hf.generate(**kwargs)  # [B, C, T]
    return audio.numpy().transpose(0, 2, 1)


@pytest.mark.parametrize("kind", ["mono", "stereo", "melody"])
def test_converted_model_generates_the_same_audio(converted, kind, tiny_musicgen):
    hf, _, out = converted(kind)
    model = MusicGen.load(out)
    assert model.audio_encoder is not None and model.tokenizer is None
    ids, mask = tiny_musicgen.text_inputs()
    N = 16  # >= 2K - 1 (K = 8 for stereo)
    kwargs = dict(
        input_ids=torch.tensor(ids),
        attention_mask=torch.tensor(mask),
        do_sample=False,
        guidance_scale=3.0,
        max_new_tokens=N,
    )
    chroma = None
    if kind == "melody":
        chroma = np.random.default_rng(6).random((2, 4, 12)).astype(np.float32)
        kwargs["input_features"] = torch.tensor(chroma)
    want = hf_audio(hf, **kwargs)
    got = model.generate(
        input_ids=ids,
        attention_mask=mask,
        chroma=chroma,
        duration_s=tiny_musicgen.frames_for(model, N),
        temperature=0.0,
    )
    assert got.dtype == np.float32 and got.shape == want.shape
    assert got.shape[-1] == (2 if kind == "stereo" else 1)
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("kind", ["mono", "stereo"])
def test_audio_prompt_continuation_matches_transformers(converted, kind, tiny_musicgen):
    hf, _, out = converted(kind)
    model = MusicGen.load(out)
    ids, mask = tiny_musicgen.text_inputs()
    C = 2 if kind == "stereo" else 1
    prompt = np.random.default_rng(8).uniform(-0.5, 0.5, (40, C)).astype(np.float32)  # 5 frames
    N = 9
    want = tiny_musicgen.hf_generate_codes(
        hf,
        input_ids=torch.tensor(ids),
        attention_mask=torch.tensor(mask),
        input_values=torch.tensor(np.stack([prompt.T, prompt.T])),
        do_sample=False,
        guidance_scale=3.0,
        max_new_tokens=N,
    )
    got = tiny_musicgen.run(
        model.generate_step(
            input_ids=ids,
            attention_mask=mask,
            audio_prompt=prompt,
            audio_prompt_sr=800,
            duration_s=tiny_musicgen.frames_for(model, N, prompt=5),
            temperature=0.0,
        )
    )
    np.testing.assert_array_equal(got, want)


def test_audio_prompt_is_resampled_and_mixed(converted):
    _, _, out = converted("mono")
    model = MusicGen.load(out)
    stereo_1600hz = np.random.default_rng(9).uniform(-0.5, 0.5, (80, 2)).astype(np.float32)
    codes = model.encode_audio(stereo_1600hz, 1600)
    assert codes.shape == (1, 4, 5)  # 80 samples at 1600 Hz = 40 at 800 Hz = 5 frames


def test_converted_folder_contents(converted):
    _, snap, out = converted("mono")
    config = json.loads((out / "config.json").read_text())
    assert config["disco_musica"] == {
        "dtype": "float32",
        "quantization": None,
        "source": str(snap),
        "revision": None,
    }
    assert (out / "generation_config.json").exists()
    weights = mx.load(str(out / "model.safetensors"))
    assert "enc_to_dec_proj.weight" in weights
    assert "decoder.lm_heads.3.weight" in weights
    assert "text_encoder.shared.weight" in weights
    assert any(k.startswith("audio_encoder.") for k in weights)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_conversion(converted, tmp_path, dtype, tiny_musicgen):
    hf, snap, _ = converted("mono")
    out = convert_musicgen(snap, tmp_path, dtype=dtype)
    model = MusicGen.load(out)
    assert model.dtype == getattr(mx, dtype)
    text_dtype = mx.float32 if dtype == "float16" else mx.bfloat16
    assert model.text_encoder.shared.weight.dtype == text_dtype
    ids, mask = tiny_musicgen.text_inputs()
    codes = tiny_musicgen.run(
        model.generate_step(input_ids=ids, attention_mask=mask, duration_s=0.1)
    )
    assert codes.shape == (2, 4, 10) and codes.max() < tiny_musicgen.V
    assert model.generate(input_ids=ids, attention_mask=mask, duration_s=0.05).shape == (2, 40, 1)


def test_quantized_conversion(tmp_path, tiny_musicgen):
    hf = tiny_musicgen.build_hf("mono")
    # A decoder wide enough (64) for groups of 64.
    import transformers as tf

    torch.manual_seed(0)
    config = hf.config.to_dict()
    config["decoder"].update(hidden_size=64, ffn_dim=128)
    hf = tf.MusicgenForConditionalGeneration(tf.MusicgenConfig(**config)).eval()
    hf.save_pretrained(tmp_path / "hf")
    ref = MusicGen.load(convert_musicgen(tmp_path / "hf", tmp_path / "f32"))
    q = MusicGen.load(convert_musicgen(tmp_path / "hf", tmp_path / "q8", quantize=8))
    assert json.loads((tmp_path / "q8" / "config.json").read_text())["disco_musica"][
        "quantization"
    ] == {"bits": 8, "group_size": 64}
    assert isinstance(q.decoder.layers[0].fc1, nn.QuantizedLinear)
    assert isinstance(q.decoder.lm_heads[0], nn.QuantizedLinear)
    assert isinstance(q.text_encoder.encoder.block[0].layer[1].DenseReluDense.wi, nn.Linear)
    ids, mask = tiny_musicgen.text_inputs()
    codes = mx.array(np.random.default_rng(2).integers(0, tiny_musicgen.V + 1, (2, 4, 6)))
    a = ref.decoder(codes, *ref.encode_text(mx.array(ids), mx.array(mask)))
    b = q.decoder(codes, *q.encode_text(mx.array(ids), mx.array(mask)))
    assert float(mx.abs(a - b).max()) < 0.05 * float(mx.abs(a).max())
    q4 = MusicGen.load(convert_musicgen(tmp_path / "hf", tmp_path / "q4", quantize=4))
    assert q4.decoder.layers[0].fc2.bits == 4


def test_sharded_and_torch_bin_snapshots(converted, tmp_path):
    hf, snap, ref_out = converted("mono")
    ref = mx.load(str(ref_out / "model.safetensors"))

    sharded = tmp_path / "sharded"
    hf.save_pretrained(sharded, max_shard_size="20KB")
    assert (sharded / "model.safetensors.index.json").exists()
    got = mx.load(str(convert_musicgen(sharded, tmp_path / "a") / "model.safetensors"))
    assert got.keys() == ref.keys()
    assert all(mx.array_equal(got[k], ref[k]) for k in ref)

    binary = tmp_path / "bin"
    binary.mkdir()
    (binary / "config.json").write_text((snap / "config.json").read_text())
    torch.save(hf.state_dict(), binary / "pytorch_model.bin")
    got = mx.load(str(convert_musicgen(binary, tmp_path / "b") / "model.safetensors"))
    assert all(mx.array_equal(got[k], ref[k]) for k in ref)


def test_missing_and_unexpected_tensors_are_all_named(converted, tmp_path):
    from safetensors.numpy import load_file, save_file

    _, snap, _ = converted("mono")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((snap / "config.json").read_text())
    state = load_file(snap / "model.safetensors")
    del state["decoder.model.decoder.layers.1.fc1.weight"]
    del state["text_encoder.encoder.final_layer_norm.weight"]
    del state["audio_encoder.quantizer.layers.0.codebook.embed"]
    state["decoder.bogus.weight"] = np.zeros(3, np.float32)
    state["enc_to_dec_proj.weight"] = np.zeros((2, 2), np.float32)
    save_file(state, bad / "model.safetensors")
    with pytest.raises(ConversionError) as err:
        convert_musicgen(bad, tmp_path / "out")
    msg = str(err.value)
    for name in (
        "decoder.layers.1.fc1.weight",
        "text_encoder.encoder.final_layer_norm.weight",
        "audio_encoder.quantizer.layers.0.codebook.embed",
        "decoder.bogus.weight",
        "enc_to_dec_proj.weight (2, 2)",
    ):
        assert name in msg
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_tokenizer_json_is_copied_and_used(converted, tmp_path, tiny_musicgen):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    hf, snap, _ = converted("mono")
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "happy": 3, "jazz": 4, "sad": 5, "piano": 6}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    folder = tmp_path / "snap"
    hf.save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "spiece.model").write_bytes(b"not used by MLX")
    out = convert_musicgen(folder, tmp_path / "out")
    assert (out / "tokenizer.json").exists() and (out / "spiece.model").exists()
    model = MusicGen.load(out)
    ids, mask = model.tokenize(["happy jazz piano", "sad"])
    assert np.array(ids).tolist() == [[3, 4, 6, 1], [5, 1, 0, 0]]
    assert np.array(mask).tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    by_text = tiny_musicgen.run(
        model.generate_step(["happy jazz piano", "sad"], duration_s=0.1, seed=5)
    )
    by_ids = tiny_musicgen.run(
        model.generate_step(input_ids=ids, attention_mask=mask, duration_s=0.1, seed=5)
    )
    np.testing.assert_array_equal(by_text, by_ids)


def test_hub_download_uses_pinned_revision(converted, tmp_path, monkeypatch):
    import huggingface_hub

    _, snap, _ = converted("mono")
    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None, **kw):
        calls.append((repo_id, revision, allow_patterns))
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(convert.musicgen, "_can_connect", lambda *a: True)  # no traffic at all
    out = convert_musicgen("facebook/musicgen-small", tmp_path / "out")
    assert calls[0][:2] == ("facebook/musicgen-small", PINNED_REVISIONS["facebook/musicgen-small"])
    assert "*.safetensors" in calls[0][2] and "tokenizer.json" in calls[0][2]
    meta = json.loads((out / "config.json").read_text())["disco_musica"]
    pinned = PINNED_REVISIONS["facebook/musicgen-small"]
    assert meta["source"] == "facebook/musicgen-small" and meta["revision"] == pinned
    convert_musicgen("facebook/musicgen-small", tmp_path / "out2", revision="abc123")
    assert calls[-1][1] == "abc123"


def test_bad_inputs_raise_conversion_error(tmp_path):
    with pytest.raises(ConversionError, match="dtype"):
        convert_musicgen(tmp_path, tmp_path / "o", dtype="int8")
    with pytest.raises(ConversionError, match="quantize"):
        convert_musicgen(tmp_path, tmp_path / "o", quantize=3)
    with pytest.raises(ConversionError, match="config.json"):
        convert_musicgen(tmp_path, tmp_path / "o")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(ConversionError, match="not a MusicGen"):
        convert_musicgen(tmp_path, tmp_path / "o")
