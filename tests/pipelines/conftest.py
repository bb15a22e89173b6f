"""Fixtures shared by the pipeline tests: transformers MusicGen snapshot folders."""

from __future__ import annotations

from pathlib import Path

import pytest


def _build_hf_8khz(mg, kind: str, seed: int = 0):
    """A tiny transformers MusicGen whose codec runs at 8 kHz (100 frames/s, hop 80).

    ``mg``: the tiny MusicGen builders (the ``tiny_musicgen`` fixture).
    """
    import torch
    import transformers as tf

    V, DECODER, t5_config = mg.V, mg.DECODER, mg.t5_config
    torch.manual_seed(seed)
    codec = tf.EncodecConfig(
        target_bandwidths=[2.4], sampling_rate=8000, audio_channels=1, hidden_size=8,
        num_filters=2, num_residual_layers=1, upsampling_ratios=[5, 4, 4], codebook_size=V,
        codebook_dim=8, num_lstm_layers=1, use_causal_conv=False, normalize=False,
    )  # fmt: skip
    if kind == "melody":
        config = tf.MusicgenMelodyConfig(
            text_encoder=t5_config(), audio_encoder=codec,
            decoder=tf.MusicgenMelodyDecoderConfig(**DECODER), chroma_length=10,
        )  # fmt: skip
        model = tf.MusicgenMelodyForConditionalGeneration(config)
    else:
        config = tf.MusicgenConfig(
            text_encoder=t5_config(), audio_encoder=codec,
            decoder=tf.MusicgenDecoderConfig(**DECODER),
        )  # fmt: skip
        model = tf.MusicgenForConditionalGeneration(config)
    with torch.no_grad():  # spread the codebooks so different audio gives different codes
        noise = torch.rand(1, 1, 8000, generator=torch.Generator().manual_seed(seed)) - 0.5
        z = model.audio_encoder.encoder(noise)[0].T
        mean, std = z.mean(0), z.std(0)
        for i, layer in enumerate(model.audio_encoder.quantizer.layers):
            embed = layer.codebook.embed
            embed.copy_(torch.randn(embed.shape) * std * 2 + (mean if i == 0 else 0))
    model.generation_config.decoder_start_token_id = V
    model.generation_config.pad_token_id = V
    return model.eval()


@pytest.fixture(scope="session")
def musicgen_snapshot(tiny_musicgen):
    """``musicgen_snapshot(folder, kind) -> folder``: a tiny transformers MusicGen (8 kHz
    codec) written with ``save_pretrained``, plus a small word-level tokenizer.json."""

    def snapshot(folder: Path, kind: str) -> Path:
        from tokenizers import Tokenizer, models, pre_tokenizers, processors

        _build_hf_8khz(tiny_musicgen, kind).save_pretrained(folder)
        vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "calm": 3, "piano": 4, "rain": 5, "sad": 6}
        tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", 1)]
        )
        tok.save(str(folder / "tokenizer.json"))
        return folder

    return snapshot
