"""MusicGen benchmarks: MLX against transformers on this CPU, both measured in one run.

    python -m tests.bench.bench_musicgen [--seconds 10] [--work DIR] [--skip-torch]

Builds musicgen-small-shaped random weights once with transformers (24 layers, hidden 1024,
T5-base, EnCodec 32 kHz; about 2.4 GB in fp32), saves them, converts them to MLX (fp32, fp16,
8-bit, 4-bit) and measures, for ``--seconds`` of audio at guidance 3:

(a) decoder steps per second (one step = one frame of 4 codes, conditional and
    unconditional rows together), MLX vs transformers ``generate``; target >= 3x;
(b) EnCodec decode of the same codes, MLX vs transformers; target >= 1.5x;
(c) peak memory of MLX generation per weight format; target: 4-bit <= 35 % of fp16.
Random weights decode as fast as real ones: speed depends on shapes, not values.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

from engine import _blas  # noqa: F401  (OpenBLAS before the first mlx import)

# isort: split
import mlx.core as mx
import numpy as np

DECODE_TARGET = 3.0
CODEC_TARGET = 1.5
MEMORY_TARGET = 0.35
PROMPT = "an upbeat acoustic folk song with guitar and fiddle"


def build_snapshot(folder: Path) -> None:
    import torch
    import transformers as tf

    torch.manual_seed(0)
    t5 = tf.T5Config(
        d_model=768, d_ff=3072, num_layers=12, num_heads=12, vocab_size=32128,
        feed_forward_proj="relu",
    )  # fmt: skip
    codec = tf.EncodecConfig(
        sampling_rate=32000, audio_channels=1, num_filters=64, upsampling_ratios=[8, 5, 4, 4],
        codebook_size=2048, target_bandwidths=[2.2], norm_type="weight_norm",
        use_causal_conv=False, compress=2, residual_kernel_size=3, num_lstm_layers=2,
    )  # fmt: skip
    dec = tf.MusicgenDecoderConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096,
        num_codebooks=4, vocab_size=2048, pad_token_id=2048, bos_token_id=2048,
    )  # fmt: skip
    cfg = tf.MusicgenConfig(text_encoder=t5, audio_encoder=codec, decoder=dec)
    model = tf.MusicgenForConditionalGeneration(cfg).eval()
    model.generation_config.decoder_start_token_id = 2048
    model.generation_config.pad_token_id = 2048
    model.save_pretrained(folder)


def torch_times(snapshot: Path, frames: int, ids: np.ndarray) -> tuple[float, float, np.ndarray]:
    import torch
    import transformers as tf

    model = tf.MusicgenForConditionalGeneration.from_pretrained(snapshot).eval()
    input_ids = torch.from_numpy(ids).long()
    steps = frames + 3
    with torch.no_grad():
        tic = time.perf_counter()
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=True,
            top_k=250,
            guidance_scale=3.0,
            max_new_tokens=steps,
            return_dict_in_generate=True,
        )
        gen_s = time.perf_counter() - tic
        codes = out.sequences  # audio codes via the model's own decode below
        codes_np = model.decoder.build_delay_pattern_mask(
            codes.reshape(-1, 1, codes.shape[-1])[:, :, :1], 2048, steps
        )[0]
        del codes_np
        audio_codes = torch.randint(0, 2048, (1, 1, 4, frames))
        tic = time.perf_counter()
        model.audio_encoder.decode(audio_codes, [None])
        codec_s = time.perf_counter() - tic
    del model
    gc.collect()
    return steps / gen_s, codec_s, audio_codes.numpy()[0]


def mlx_times(folder: Path, frames: int, ids: np.ndarray, codes: np.ndarray | None):
    from engine.models.musicgen import MusicGen

    mx.reset_peak_memory()
    model = MusicGen.load(folder)
    gen = model.generate_step(
        input_ids=mx.array(ids), duration_s=frames / model.frame_rate, seed=0, top_k=250
    )
    tic = time.perf_counter()
    steps = 0
    while True:
        try:
            next(gen)
            steps += 1
        except StopIteration:
            break
    gen_s = time.perf_counter() - tic
    codec_s = None
    if codes is not None:
        c = mx.array(codes.astype(np.int32))
        model.decode(c[None, :, :8])  # warm up
        tic = time.perf_counter()
        model.decode(c[None])
        codec_s = time.perf_counter() - tic
    peak = mx.get_peak_memory()
    del model
    gc.collect()
    return steps / gen_s, codec_s, peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--work", help="folder for the snapshot and conversions (default: temp)")
    p.add_argument("--skip-torch", action="store_true", help="MLX only")
    a = p.parse_args()
    from convert.musicgen import convert_musicgen

    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="bench-musicgen-"))
    snap = work / "snapshot"
    if not (snap / "config.json").is_file():
        print("building musicgen-small-shaped random weights ...", flush=True)
        build_snapshot(snap)
    frames = int(a.seconds * 50)
    ids = np.random.default_rng(0).integers(3, 32000, size=(1, 12)).astype(np.int64)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, {a.seconds:g} s")
    torch_rate = torch_codec = None
    codes = np.random.default_rng(1).integers(0, 2048, size=(4, frames))
    if not a.skip_torch:
        torch_rate, torch_codec, codes = torch_times(snap, frames, ids)
    results = {}
    for label, kw in (
        ("fp32", {"dtype": "float32"}),
        ("fp16", {"dtype": "float16"}),
        ("8-bit", {"dtype": "float16", "quantize": 8}),
        ("4-bit", {"dtype": "float16", "quantize": 4}),
    ):
        out = work / f"mlx-{label}"
        if not (out / "config.json").is_file():
            convert_musicgen(snap, out, **kw)
        results[label] = mlx_times(out, frames, ids, codes if label == "fp32" else None)
        rate, _, peak = results[label]
        print(
            f"    MLX {label:6} {rate:6.2f} steps/s, peak memory {peak / 1e9:5.2f} GB", flush=True
        )
    rate, codec_s, _ = results["fp32"]
    if torch_rate is not None:
        verdict = "meets" if rate / torch_rate >= DECODE_TARGET else "below"
        print(f"(a) decode: MLX fp32 {rate:.2f} vs transformers {torch_rate:.2f} steps/s: ", end="")
        print(f"{rate / torch_rate:.2f}x (target >= {DECODE_TARGET:g}x: {verdict})")
        best = max(r for r, _, _ in results.values())
        print(f"    best MLX format {best:.2f} steps/s: {best / torch_rate:.2f}x")
        verdict = "meets" if torch_codec / codec_s >= CODEC_TARGET else "below"
        print(f"(b) EnCodec decode {a.seconds:g} s: MLX {codec_s:.2f} s, transformers ", end="")
        print(
            f"{torch_codec:.2f} s: {torch_codec / codec_s:.2f}x (target >= {CODEC_TARGET:g}x: ",
            end="",
        )
        print(f"{verdict})")
    ratio = results["4-bit"][2] / results["fp16"][2]
    verdict = "meets" if ratio <= MEMORY_TARGET else "below"
    print(f"(c) peak memory 4-bit / fp16: {ratio:.2f} (target <= {MEMORY_TARGET:g}: {verdict})")


if __name__ == "__main__":
    main()
