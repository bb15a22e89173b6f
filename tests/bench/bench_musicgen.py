"""MusicGen benchmarks: MLX against transformers on this CPU, both measured in one run.

    python -m tests.bench.bench_musicgen [--seconds 10] [--work DIR] [--skip-torch]

Builds musicgen-small-shaped random weights once with transformers (24 layers, hidden 1024,
T5-base, EnCodec 32 kHz; about 2.4 GB in fp32), saves them, converts them to MLX (fp32, fp16,
8-bit, 4-bit) and measures, for ``--seconds`` of audio at guidance 3:

(a) decoder steps per second (one step = one frame of 4 codes, conditional and
    unconditional rows together), MLX vs transformers ``generate``; target >= 3x;
(b) EnCodec decode of the same codes, MLX vs transformers; target >= 1.5x;
(c) peak memory of MLX generation per weight format; target: 4-bit <= 35 % of fp16;
(d) the effect of each format on the decoder's logits, against fp32.
Random weights decode as fast as real ones: speed depends on shapes, not values.

transformers runs in a child process that never imports ``engine``: the OpenBLAS that
``engine`` loads into the global symbol namespace (for MLX) would otherwise also serve
torch, and its spinning threads beside torch's made ``generate`` 3.5x slower.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DECODE_TARGET = 3.0
CODEC_TARGET = 1.5
MEMORY_TARGET = 0.35
WARMUP_STEPS = 8  # a short generation before each timed one, on both sides
LOGIT_FRAMES = 100  # frames of teacher-forced logits compared across formats


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
    """`torch_child` in a fresh process (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "ids.npy", ids)
        cmd = [sys.executable, "-m", "tests.bench.bench_musicgen", "--torch-child", tmp]
        cmd += ["--work", str(snapshot.parent), "--seconds", str(frames / 50)]
        subprocess.run(cmd, check=True)
        r = json.loads((Path(tmp) / "result.json").read_text())
        return r["rate"], r["codec_s"], np.load(Path(tmp) / "codes.npy")


def torch_child(snapshot: Path, frames: int, folder: Path) -> None:
    """transformers: decoder steps/s of ``generate``, EnCodec decode seconds, codes [K, T].

    ``generate`` ends by decoding its codes to audio; that decode is swapped out while the
    steps are timed (it is timed on its own, on the codes ``generate`` made), so (a) compares
    decoding steps only. Both are timed after a short warm-up run, as the MLX side.
    """
    import torch
    import transformers as tf
    from transformers.models.encodec.modeling_encodec import EncodecDecoderOutput

    model = tf.MusicgenForConditionalGeneration.from_pretrained(snapshot).eval()
    ids = np.load(folder / "ids.npy")
    codec = model.audio_encoder
    captured = {}

    def skip_decode(audio_codes, audio_scales=None, **_):
        captured["codes"] = audio_codes
        return EncodecDecoderOutput(audio_values=torch.zeros(1, 1, 1))

    input_ids = torch.from_numpy(ids).long()
    kwargs = dict(
        input_ids=input_ids, attention_mask=torch.ones_like(input_ids), do_sample=True,
        top_k=250, guidance_scale=3.0,
    )  # fmt: skip
    steps = frames + model.decoder.num_codebooks - 1  # transformers' max_new_tokens
    codec.decode = skip_decode
    with torch.no_grad():
        model.generate(**kwargs, max_new_tokens=WARMUP_STEPS)
        tic = time.perf_counter()
        model.generate(**kwargs, max_new_tokens=steps)
        gen_s = time.perf_counter() - tic
        del codec.decode  # back to the class method
        codes = captured["codes"]  # [1, B, K, T]
        codec.decode(codes[..., :8], [None])
        codec_s = min(_timed(codec.decode, codes, [None]) for _ in range(2))
    print(
        f"    transformers {steps / gen_s:6.2f} steps/s ({steps} steps in {gen_s:.1f} s, "
        f"{torch.get_num_threads()} threads), EnCodec decode {codec_s:.2f} s",
        flush=True,
    )
    np.save(folder / "codes.npy", codes[0, 0].numpy())
    (folder / "result.json").write_text(json.dumps({"rate": steps / gen_s, "codec_s": codec_s}))


def _timed(fn, *args) -> float:
    tic = time.perf_counter()
    fn(*args)
    return time.perf_counter() - tic


@dataclass
class MlxResult:
    rate: float  # decoder steps per second
    codec_s: float | None  # EnCodec decode of the codes, seconds
    resident: int  # bytes held after loading
    peak_generate: int  # peak bytes while generating codes (load excluded)
    peak_decode: int | None  # peak bytes while decoding them to audio
    peak_all: int  # peak bytes over load, generation and decoding


def mlx_times(folder: Path, frames: int, ids: np.ndarray, codes: np.ndarray) -> MlxResult:
    import engine  # noqa: F401  (OpenBLAS before the first mlx import)

    # isort: split
    import mlx.core as mx

    from engine.models.musicgen import MusicGen

    gc.collect()
    mx.clear_cache()
    mx.reset_peak_memory()
    model = MusicGen.load(folder)
    resident = mx.get_active_memory()
    peak_load = mx.get_peak_memory()
    kwargs = dict(input_ids=mx.array(ids), seed=0, top_k=250, guidance_scale=3.0)
    warm = WARMUP_STEPS - model.config.decoder.num_codebooks + 1
    for _ in model.generate_step(duration_s=warm / model.frame_rate, **kwargs):
        pass
    mx.clear_cache()
    mx.reset_peak_memory()
    gen = model.generate_step(duration_s=frames / model.frame_rate, **kwargs)
    tic = time.perf_counter()
    steps = sum(1 for _ in gen)
    gen_s = time.perf_counter() - tic
    peak_generate = mx.get_peak_memory()
    c = mx.array(codes.astype(np.int32))[None]
    model.decode(c[:, :, :8])  # warm up
    mx.clear_cache()
    mx.reset_peak_memory()
    codec_s = min(_timed(model.decode, c) for _ in range(2))
    peak_decode = mx.get_peak_memory()
    del model
    gc.collect()
    return MlxResult(
        steps / gen_s, codec_s, resident, peak_generate, peak_decode,
        max(peak_load, peak_generate, peak_decode),
    )  # fmt: skip


def mlx_logits(folder: Path, ids: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Guided-pair decoder logits [2, K, T, V] (float32) for the given codes, teacher-forced."""
    import engine  # noqa: F401

    # isort: split
    import mlx.core as mx

    from engine.models.musicgen import MusicGen

    model = MusicGen.load(folder)
    text, mask = model.encode_text(mx.array(ids), mx.ones(ids.shape, mx.int32))
    text = mx.concatenate([text, mx.zeros_like(text)], axis=0)  # conditional, unconditional
    mask = mx.concatenate([mask, mask], axis=0)
    c = mx.array(np.stack([codes, codes]).astype(np.int32))
    logits = np.array(model.decoder(c, text, mask).astype(mx.float32))
    del model
    gc.collect()
    return logits


def logit_effect(ref: np.ndarray, got: np.ndarray) -> str:
    """How far ``got`` is from the float32 ``ref``: errors, top-1 agreement, KL divergence."""
    err = np.abs(got - ref)
    rel = err.max() / np.abs(ref).max()
    top1 = float(np.mean(ref.argmax(-1) == got.argmax(-1)))

    def logp(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    lp, lq = logp(ref.astype(np.float64)), logp(got.astype(np.float64))
    kl = float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=-1)))
    return (
        f"max |diff| {err.max():.2e} ({rel:.1%} of max |logit| {np.abs(ref).max():.2f}), "
        f"mean |diff| {err.mean():.2e}, same top-1 {top1:.1%}, KL(fp32 || this) {kl:.2e} nats"
    )


FORMATS = {
    "fp32": {"dtype": "float32"},
    "fp16": {"dtype": "float16"},
    "8-bit": {"dtype": "float16", "quantize": 8},
    "4-bit": {"dtype": "float16", "quantize": 4},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--work", help="folder for the snapshot and conversions (default: temp)")
    p.add_argument("--skip-torch", action="store_true", help="MLX only")
    p.add_argument("--formats", default=",".join(FORMATS), help="MLX formats to measure")
    p.add_argument("--torch-child", help=argparse.SUPPRESS)
    a = p.parse_args()
    frames = int(a.seconds * 50)
    if a.torch_child:
        return torch_child(Path(a.work) / "snapshot", frames, Path(a.torch_child))
    import engine  # noqa: F401  (OpenBLAS before the first mlx import)

    # isort: split
    from convert.musicgen import convert_musicgen

    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="bench-musicgen-"))
    snap = work / "snapshot"
    if not (snap / "config.json").is_file():
        print("building musicgen-small-shaped random weights ...", flush=True)
        build_snapshot(snap)
    ids = np.random.default_rng(0).integers(3, 32000, size=(1, 12)).astype(np.int64)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, load average {load} on {os.cpu_count()} cores")
    print(f"{a.seconds:g} s of audio ({frames} frames), guidance 3, top-k 250")
    torch_rate = torch_codec = None
    codes = np.random.default_rng(1).integers(0, 2048, size=(4, frames))
    if not a.skip_torch:
        torch_rate, torch_codec, codes = torch_times(snap, frames, ids)
    results: dict[str, MlxResult] = {}
    for label in a.formats.split(","):
        out = work / f"mlx-{label}"
        if not (out / "config.json").is_file():
            convert_musicgen(snap, out, **FORMATS[label])
        r = results[label] = mlx_times(out, frames, ids, codes)
        print(
            f"    MLX {label:6} {r.rate:6.2f} steps/s, EnCodec decode {r.codec_s:.2f} s; memory "
            f"GB: resident {r.resident / 1e9:.2f}, generating {r.peak_generate / 1e9:.2f}, "
            f"decoding {r.peak_decode / 1e9:.2f}, peak {r.peak_all / 1e9:.2f}",
            flush=True,
        )
    if torch_rate is not None and results:
        base = results["fp32"] if "fp32" in results else next(iter(results.values()))
        label = "fp32" if "fp32" in results else next(iter(results))
        x = base.rate / torch_rate
        verdict = "meets" if x >= DECODE_TARGET else "below"
        print(
            f"(a) decoder steps: MLX {label} {base.rate:.2f}/s, transformers {torch_rate:.2f}/s: ",
            end="",
        )
        print(f"{x:.2f}x (target >= {DECODE_TARGET:g}x: {verdict})")
        for other, r in results.items():
            if other != label:
                print(f"    MLX {other}: {r.rate / torch_rate:.2f}x")
        x = torch_codec / base.codec_s
        verdict = "meets" if x >= CODEC_TARGET else "below"
        print(
            f"(b) EnCodec decode: MLX {base.codec_s:.2f} s, transformers {torch_codec:.2f} s: ",
            end="",
        )
        print(f"{x:.2f}x (target >= {CODEC_TARGET:g}x: {verdict})")
    if "fp32" in results and len(results) > 1:
        n = min(LOGIT_FRAMES, codes.shape[1])
        ref = mlx_logits(work / "mlx-fp32", ids, codes[:, :n])
        print(f"(d) decoder logits against fp32 ({n} frames of those codes, guidance pair):")
        for label in results:
            if label != "fp32":
                got = mlx_logits(work / f"mlx-{label}", ids, codes[:, :n])
                print(f"    {label:6} {logit_effect(ref, got)}")
    if "4-bit" in results and "fp16" in results:
        q, h = results["4-bit"], results["fp16"]
        for what, attr in (
            ("peak over load, generation and decoding", "peak_all"),
            ("peak while generating", "peak_generate"),
            ("resident after loading", "resident"),
        ):
            ratio = getattr(q, attr) / getattr(h, attr)
            verdict = "meets" if ratio <= MEMORY_TARGET else "below"
            print(f"(c) memory 4-bit / fp16, {what}: {ratio:.2f} ", end="")
            print(f"(target <= {MEMORY_TARGET:g}: {verdict})")


if __name__ == "__main__":
    main()
