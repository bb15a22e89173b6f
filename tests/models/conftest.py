"""Fixtures shared by the model tests: tiny random-weight EnCodec codecs."""

from __future__ import annotations

import pytest


class TinyEncodec:
    """Tiny transformers EnCodec models with random weights, and their MLX twins."""

    # hop 16 samples: 2 kbit/s per 16-entry codebook at 32 kHz, so 32 kbit/s = 4 codebooks
    TINY = dict(
        sampling_rate=32000,
        audio_channels=1,
        num_filters=4,
        upsampling_ratios=[4, 4],
        codebook_size=16,
        hidden_size=8,
        num_lstm_layers=2,
        target_bandwidths=[16.0, 32.0],
        norm_type="weight_norm",
        use_causal_conv=False,
        use_conv_shortcut=False,
    )

    @staticmethod
    def build_hf(**overrides):
        """A tiny transformers EnCodec with random weights (weight-norm g and v apart).

        Each codebook is drawn from the residuals it will quantize (embeddings of random
        audio), so that every codebook of the residual quantizer is used and codes are not
        constant.
        """
        import torch
        import transformers

        torch.manual_seed(0)
        config = transformers.EncodecConfig(**{**TinyEncodec.TINY, **overrides})
        model = transformers.EncodecModel(config).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
            audio = torch.randn(4, config.audio_channels, 64 * config.hop_length)
            residual = model.encoder(audio).transpose(1, 2).reshape(-1, config.codebook_dim)
            for layer in model.quantizer.layers:
                picks = residual[torch.randperm(residual.shape[0])[: config.codebook_size]]
                layer.codebook.embed.copy_(picks + 0.01 * torch.randn_like(picks))
                residual = residual - layer.codebook.decode(layer.codebook.quantize(residual))
        return model

    @staticmethod
    def state_dict(model):
        """The model's tensors as numpy arrays (copies)."""
        return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    @staticmethod
    def load_mlx(hf):
        """The MLX EncodecModel with ``hf``'s weights, converted as convert.encodec does."""
        import mlx.core as mx

        from convert.encodec import convert_encodec_weights
        from engine.models.encodec import EncodecConfig, EncodecModel

        config = hf.config.to_dict()
        model = EncodecModel(EncodecConfig.from_dict(config))
        weights = convert_encodec_weights(TinyEncodec.state_dict(hf), config)
        model.load_weights([(k, mx.array(v)) for k, v in weights.items()], strict=True)
        return model


@pytest.fixture(scope="session")
def tiny_encodec():
    """Builders of tiny EnCodec models (:class:`TinyEncodec`, a namespace)."""
    return TinyEncodec
