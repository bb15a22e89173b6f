import engine  # noqa: F401  (loads OpenBLAS before the first mlx import)

# isort: split
from dataclasses import dataclass, field

from engine.models import basic_pitch, encodec, musicgen, score, t5
from engine.models.base import BaseModelArgs

ARGS = (
    score.ModelArgs,
    basic_pitch.ModelArgs,
    encodec.EncodecConfig,
    t5.T5Config,
    musicgen.MusicgenDecoderConfig,
    musicgen.MusicgenConfig,
)


@dataclass
class Args(BaseModelArgs):
    width: int = 4
    sizes: list[int] = field(default_factory=lambda: [1, 2])


def test_from_dict_keeps_known_keys_and_ignores_the_rest():
    assert Args.from_dict({"width": 8, "architectures": ["X"], "torch_dtype": "f16"}) == Args(8)
    assert Args.from_dict({}) == Args()


def test_every_models_args_share_one_from_dict():
    for cls in ARGS:
        assert issubclass(cls, BaseModelArgs), cls
    # Only the composite MusicGen config converts anything (its nested configs).
    own = [cls for cls in ARGS if "from_dict" in vars(cls)]
    assert own == [musicgen.MusicgenConfig]


def test_musicgen_config_builds_nested_configs_and_takes_tokens_from_generation_config():
    cfg = musicgen.MusicgenConfig.from_dict(
        {
            "text_encoder": {"d_model": 32, "bogus": 1},
            "decoder": {"hidden_size": 16, "pad_token_id": None},
            "audio_encoder": {"sampling_rate": 16000},
            "generation_config": {"decoder_start_token_id": 7, "pad_token_id": 9},
            "model_type": "musicgen_melody",
            "extra": 1,
        }
    )
    assert cfg.text_encoder == t5.T5Config(d_model=32)
    assert cfg.decoder == musicgen.MusicgenDecoderConfig(
        hidden_size=16, pad_token_id=9, decoder_start_token_id=7
    )
    assert cfg.audio_encoder == {"sampling_rate": 16000} and cfg.is_melody
