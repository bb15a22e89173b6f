"""Shared fixtures: a small real corpus (music21 files), tiny score and MusicGen models, and
Basic Pitch test audio and its reference."""

from __future__ import annotations

import os
import platform
import tempfile
import warnings

import pytest

import engine  # noqa: F401  (loads OpenBLAS before mlx)

# Converted models and the registry of temporary outputs (engine.record) go to a folder of
# the test run, never to the user's own (subprocesses inherit it).
os.environ["DISCO_MUSICA_HOME"] = tempfile.mkdtemp(prefix="disco-musica-tests-")
# Audio renders with the shipped TimGM6mb whatever else this machine has installed (CI installs
# FluidR3_GM, which would otherwise be the default), so results do not depend on the machine;
# tests/audio/test_soundfonts.py unsets it to check the real choice.
os.environ["DISCO_MUSICA_SOUNDFONT"] = "TimGM6mb"

# Real public-domain pieces from music21's corpus, at least one per style.
SMALL_CORPUS = [
    "bach/bwv66.6.mxl",
    "bach/bwv10.7.mxl",
    "bach/bwv1.6.mxl",
    "bach/bwv101.7.mxl",
    "bach/bwv102.7.mxl",
    "bach/bwv103.6.mxl",
    "palestrina/Agnus_01.krn",
    "palestrina/Agnus_02.krn",
    "monteverdi/madrigal.3.1.mxl",
    "ciconia/quod_jactatur.xml",
    "luca/gloria.xml",
    "ryansMammoth/7thRegimentReel.abc",
    "ryansMammoth/42dHighlandRegimentStrathspey.abc",
    "essenFolksong/testd.abc",
    "essenFolksong/teste.abc",
    "schumann_clara/polonaise_op1n1.mxl",
]


@pytest.fixture(scope="session", autouse=True)
def _quiet_music21():
    warnings.filterwarnings("ignore", module="music21")


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    from engine.data.corpus import build_corpus

    out = tmp_path_factory.mktemp("corpus") / "music21"
    build_corpus(out, paths=SMALL_CORPUS, workers=2)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(small_corpus, tmp_path_factory):
    """A tiny score model trained for a few steps on the small corpus (a model folder)."""
    from engine.train.score import train_score

    out = tmp_path_factory.mktemp("train")
    train_score(small_corpus, out, preset="tiny", quiet=True)
    return out / "model"


# -- Shared builders -----------------------------------------------------------------------------
# Tests get these through the fixtures below, never by importing a test module (or this one):
# tests/test_test_layout.py checks. Heavy imports (torch, transformers, mlx models) stay inside
# the builders, so collecting the tests stays fast.

TINY_MODEL_ARGS = dict(
    vocab_size=37,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
)


def _make_tiny_model(seed: int = 0, **overrides):
    """A tiny random score model (2 layers, width 32) built from config alone."""
    import mlx.core as mx

    from engine.models.score import Model, ModelArgs

    mx.random.seed(seed)
    model = Model(ModelArgs(**{**TINY_MODEL_ARGS, **overrides}))
    mx.eval(model.parameters())
    return model


@pytest.fixture(scope="session")
def make_tiny_model():
    """``make_tiny_model(seed=0, **overrides)``: a tiny random score model (width 32)."""
    return _make_tiny_model


@pytest.fixture
def tiny_model_args():
    """The tiny score model's ``ModelArgs`` keywords (a fresh copy for each test)."""
    return dict(TINY_MODEL_ARGS)


class TinyMusicGen:
    """Tiny random-weight transformers MusicGen models (800 Hz codec) and their MLX twins.

    ``V`` is the decoder vocabulary (== codec codebook size); the codec runs at ``FRAME_RATE``
    frames per second (800 Hz, hop 8).
    """

    V = 64
    FRAME_RATE = 100
    DECODER = dict(
        vocab_size=V,
        max_position_embeddings=64,
        num_hidden_layers=2,
        ffn_dim=40,
        num_attention_heads=4,
        hidden_size=24,
        pad_token_id=V,
        bos_token_id=V,
        initializer_factor=0.2,  # 10x transformers' default: peaked logits that depend on the text
    )

    @staticmethod
    def t5_config(d_model=16, **kw):
        from transformers import T5Config as HFT5Config

        args = dict(
            vocab_size=50,
            d_model=d_model,
            d_kv=4,
            d_ff=24,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=20,
        )
        return HFT5Config(**{**args, **kw})

    @staticmethod
    def encodec_config():
        from transformers import EncodecConfig

        return EncodecConfig(
            target_bandwidths=[2.4],  # 1000 * 2.4 // (100 frames/s * 6 bits) = 4 codebooks
            sampling_rate=800,
            audio_channels=1,
            hidden_size=8,
            num_filters=2,
            num_residual_layers=1,
            upsampling_ratios=[4, 2],
            codebook_size=TinyMusicGen.V,
            codebook_dim=8,
            num_lstm_layers=1,
            use_causal_conv=False,
            normalize=False,
        )

    @staticmethod
    def build_hf(kind: str = "mono", seed: int = 0):
        """A tiny transformers MusicGen.

        ``kind``: mono, stereo, same_width (text width == decoder width: no enc_to_dec_proj),
        melody or stereo_melody.
        """
        import torch
        import transformers as tf

        mg = TinyMusicGen
        torch.manual_seed(seed)
        dec = dict(mg.DECODER)
        text = mg.t5_config()
        if kind in ("stereo", "stereo_melody"):
            dec.update(num_codebooks=8, audio_channels=2)
        if kind == "same_width":
            text = mg.t5_config(d_model=24)
        if kind.endswith("melody"):
            config = tf.MusicgenMelodyConfig(
                text_encoder=text,
                audio_encoder=mg.encodec_config(),
                decoder=tf.MusicgenMelodyDecoderConfig(**dec),
                chroma_length=10,
            )
            model = tf.MusicgenMelodyForConditionalGeneration(config)
        else:
            config = tf.MusicgenConfig(
                text_encoder=text,
                audio_encoder=mg.encodec_config(),
                decoder=tf.MusicgenDecoderConfig(**dec),
            )
            model = tf.MusicgenForConditionalGeneration(config)
        with torch.no_grad():
            # transformers starts EnCodec codebooks at zero (every code decodes alike): spread
            # them around what the random encoder outputs, so audio prompts give varied codes.
            noise = torch.rand(1, 1, 800, generator=torch.Generator().manual_seed(seed)) - 0.5
            z = model.audio_encoder.encoder(noise)[0].T  # [frames, dim]
            mean, std = z.mean(0), z.std(0)
            for i, layer in enumerate(model.audio_encoder.quantizer.layers):
                embed = layer.codebook.embed
                embed.copy_(torch.randn(embed.shape) * std * 2 + (mean if i == 0 else 0))
        model.generation_config.decoder_start_token_id = mg.V
        model.generation_config.pad_token_id = mg.V
        return model.eval()

    @staticmethod
    def to_mlx(hf):
        """The MLX model with the same weights (no codec, no conversion step)."""
        import mlx.core as mx

        from engine.models.musicgen import MusicGen, MusicgenConfig, sanitize

        model = MusicGen(MusicgenConfig.from_dict(hf.config.to_dict()))
        state = {
            k: mx.array(v.detach().numpy())
            for k, v in hf.state_dict().items()
            if not k.startswith("audio_encoder.")
        }
        model.model.load_weights(list(sanitize(state).items()), strict=True)
        mx.eval(model.model.parameters())
        return model

    @staticmethod
    def text_inputs(B=2, L=7, seed=1):
        import numpy as np

        g = np.random.default_rng(seed)
        ids = g.integers(2, 50, (B, L))
        mask = np.ones((B, L), np.int64)
        if B > 1:
            mask[1, L - 3 :] = 0  # padding in the second prompt
        ids[mask == 0] = 0
        return ids, mask

    @staticmethod
    def hf_generate_codes(hf, **kwargs):
        """transformers ``generate`` -> the codes [B, K, T] it hands to the (stubbed) codec."""
        import types

        import torch

        seen = []

        def fake_decode(audio_codes, *args, **kw):
            seen.append(audio_codes.clone())
            return types.SimpleNamespace(audio_values=torch.zeros(1, 1, 1))

        hf.audio_encoder.decode = fake_decode
        with torch.no_grad():
            hf.generate(**kwargs)
        if len(seen) == 1:
            return seen[0][0].numpy()
        left, right = seen[0][0], seen[1][0]  # stereo: even / odd codebooks decoded separately
        B, Kc, T = left.shape
        return torch.stack([left, right], dim=2).reshape(B, 2 * Kc, T).numpy()

    @staticmethod
    def run(gen):
        """Drain a ``generate_step`` generator; its return value as a numpy array."""
        import numpy as np

        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return np.array(stop.value)

    @staticmethod
    def frames_for(model, new_tokens: int, prompt: int = 0) -> float:
        """duration_s giving transformers' ``max_new_tokens`` steps after ``prompt`` frames."""
        Kc = model.config.decoder.codebooks_per_channel
        return (prompt + new_tokens + 1 - Kc) / TinyMusicGen.FRAME_RATE

    @staticmethod
    def assert_greedy_guided_generation_matches(hf, model, kind: str, N: int = 16) -> None:
        """``N`` greedy steps at guidance 3 give transformers' codes exactly."""
        import numpy as np
        import torch

        mg = TinyMusicGen
        ids, mask = mg.text_inputs()
        kwargs = dict(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            do_sample=False,
            guidance_scale=3.0,
            max_new_tokens=N,
        )
        chroma = None
        if kind.endswith("melody"):
            chroma = np.random.default_rng(6).random((2, 4, 12)).astype(np.float32)
            kwargs["input_features"] = torch.tensor(chroma)
        want = mg.hf_generate_codes(hf, **kwargs)
        got = mg.run(
            model.generate_step(
                input_ids=ids,
                attention_mask=mask,
                chroma=chroma,
                duration_s=mg.frames_for(model, N),
                guidance_scale=3.0,
                temperature=0.0,
            )
        )
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="session")
def tiny_musicgen():
    """Builders of tiny MusicGen models and inputs (:class:`TinyMusicGen`, a namespace)."""
    return TinyMusicGen


# -- Basic Pitch: audio made here, and basic-pitch's own ONNX model as the reference ------------


def _cpu_has_avx512() -> bool:
    from pathlib import Path

    try:
        return " avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


class BasicPitchAudio:
    """Test audio for Basic Pitch (tones, chords, glides, a melody, a rendered MIDI phrase) and
    the tolerances its outputs are held to on this CPU."""

    # On x86 CPUs with AVX-512, OpenBLAS (MLX's matmuls) and onnxruntime's convolutions run the
    # same multiply-add chains: the CQT is bit-equal and the outputs agree within 1e-6. On
    # other CPUs (AMD Zen with AVX2 measured, 2026-11-29) their rounding differs by an ulp,
    # which matters only in the quietest CQT bins, and the outputs differ by up to 3e-4;
    # onnxruntime's own CQT is further from the exact (float64) one there than ours.
    BIT_EXACT_CPU = platform.machine() in ("x86_64", "AMD64") and _cpu_has_avx512()
    TOLERANCE = 1e-4 if BIT_EXACT_CPU else 1e-3  # 1e-4: the brief
    BATCH_TOLERANCE = 1e-5 if BIT_EXACT_CPU else 1e-3  # one window at a time against three
    CQT_RELATIVE_TOLERANCE = 0.0 if BIT_EXACT_CPU else 2e-6  # of the largest magnitude

    @staticmethod
    def tone(freqs, sr: int, seconds: float, amp: float = 0.2, glide: float = 0.0):
        """Sum of sines (with an optional glide of ``glide`` octaves over the clip), float32."""
        import numpy as np

        t = np.arange(int(sr * seconds)) / sr
        out = np.zeros_like(t)
        for f in freqs:
            inst = f * 2 ** (glide * t / seconds)
            out += amp * np.sin(2 * np.pi * np.cumsum(inst) / sr)
        return out.astype(np.float32)

    @staticmethod
    def melody(sr: int, seconds: float = 3.0):
        """Plucked notes one after another (decaying sines), with a quiet noise floor."""
        import numpy as np

        t = np.arange(int(sr * seconds)) / sr
        out = np.zeros_like(t)
        for i, f in enumerate((196.0, 246.94, 293.66, 392.0, 110.0, 55.0)):
            on = (t >= i * 0.45) & (t < i * 0.45 + 0.4)
            out[on] += 0.4 * np.sin(2 * np.pi * f * t[on]) * np.exp(-3 * (t[on] - i * 0.45))
        return (out + 1e-4 * np.random.default_rng(0).standard_normal(t.shape)).astype(np.float32)

    @staticmethod
    def rendered(sr: int = 44100):
        """A short piano phrase over a bass note, rendered by engine.audio.render (stereo)."""
        from symusic import Note, Score, Tempo, Track

        from engine.audio.render import render_midi

        score = Score(480)
        track = Track(program=0)
        for i, p in enumerate([60, 64, 67, 72, 48, 55]):
            track.notes.append(Note(i * 240, 360, p, 90))
        track.notes.append(Note(0, 1440, 36, 80))
        score.tracks.append(track)
        score.tempos.append(Tempo(0, 120))
        return render_midi(score, sample_rate=sr)


@pytest.fixture(scope="session")
def basic_pitch_audio():
    """Audio builders and tolerances for Basic Pitch (:class:`BasicPitchAudio`, a namespace)."""
    return BasicPitchAudio


def _load_basic_pitch_reference():
    """basic-pitch's inference module and its Model, checked to run the ONNX file."""
    import logging

    pytest.importorskip("onnxruntime")
    logging.disable(logging.WARNING)  # basic-pitch warns about every runtime it lacks
    try:
        inference = pytest.importorskip("basic_pitch.inference")
    finally:
        logging.disable(logging.NOTSET)
    from basic_pitch import FilenameSuffix, build_icassp_2022_model_path

    path = build_icassp_2022_model_path(FilenameSuffix.onnx)
    model = inference.Model(path)
    assert model.model_type == inference.Model.MODEL_TYPES.ONNX
    assert type(model.model).__name__ == "InferenceSession"
    return inference, model, path


@pytest.fixture(scope="module")
def basic_pitch_reference():
    """(basic-pitch's inference module, its ONNX Model, the .onnx path); skips without
    basic-pitch and onnxruntime."""
    return _load_basic_pitch_reference()
