"""Training benchmarks: LoRA against full fine-tuning and against PEFT, measured in one run.

    python -m tests.bench.bench_train [--quick] [--steps 3] [--skip-torch] [--skip-musicgen]
        [--sizes score-base,512x8] [--batch score-base=8x1024] [--torch-full]

(a) The score model at the shipped score-base shape and at a larger one (hidden 512 x 8
    layers, where the weights weigh more than the activations): MLX full fine-tuning (AdamW)
    against MLX LoRA (rank 8, alpha 16 on q, k, v, o, gate, up, down), both driven through
    `engine.train.trainer.train` as users run it. Target tokens/s (median of the steps after
    the warm-up) and peak memory (MLX's allocator peak after the warm-up, and the process's
    peak RSS over its imports); target: LoRA peak <= 50 % of full. The peak is split into
    weights, gradients, AdamW state and the rest (activations and temporaries), beside the
    arithmetic of the activations kept for backward.
(b) PEFT LoRA (same rank, alpha, targets) of the identical transformers ``LlamaForCausalLM``
    (our weights copied in, logits compared, trainable counts compared) with torch AdamW and
    gradient clipping on the same batches: the MLX/PyTorch tokens/s ratio at equal thread
    counts (all cores, then 1: MLX's OpenBLAS threads, torch.set_num_threads) and at each
    one's best, and peak RSS (``--torch-full`` adds torch full fine-tuning).
(c) Where a LoRA step's time goes, MLX vs torch, on one block's shapes: the attention core
    (forward + backward; MLX's as the model runs it, in blocks of queries; for MLX also its
    two matmuls alone, dense, so the rest is mostly its mask and softmax), the frozen
    projections (forward + input gradient, what LoRA needs), their weight gradients (what full
    fine-tuning adds), the adapters, the rest of the step, and a softmax over the B x H x L x L
    scores alone.
(d) A musicgen-small-shaped decoder (hidden 1024, 16 heads, FFN 4096, 4 codebooks, cross-
    attention to 32 T5-base states through the 768 -> 1024 projection; random weights): LoRA
    on its self-/cross-attention and feed-forward with float32 and float16 base weights
    (adapters float32), and float32 full fine-tuning, at 1 x 500 frames (10 s). 24 layers
    take minutes per step on this CPU, so it runs 2 and 4 layers (float16: 1 and 2, one step
    each, compilation included: MLX's CPU float16 matmul is scalar) and extrapolates per layer.
(e) Paper, not measured: memory of musicgen-small/medium LoRA on Apple Silicon, by counting
    tensors calibrated with (d)'s per-layer figures, against Stable Audio 3's MLX LoRA
    (2.5-6.5 GB).

Memory figures repeat exactly from run to run; speeds move with the machine's load (on a
shared 2-core machine, torch at 2 threads most of all), so compare ratios within one run.
Every configuration runs in a child process of its own (peak RSS is per process). The torch
children never import ``engine``: the OpenBLAS it loads into the global symbol namespace (for
MLX) would also serve torch (see bench_musicgen). Peak RSS is read from ``/proc`` (VmHWM, reset
through ``clear_refs`` after the warm-up step); where that is missing only MLX's peak shows.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

LORA_PEAK_TARGET = 0.50  # LoRA peak memory / full fine-tuning peak memory
RANK, ALPHA = 8, 16.0
VOCAB = 509  # the score tokenizer's vocabulary (engine/assets/models/score-base)
SCORE_KEYS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MG_KEYS = tuple(f"{a}.{p}" for a in ("self_attn", "encoder_attn") for p in
                ("q_proj", "k_proj", "v_proj", "out_proj")) + ("fc1", "fc2")  # fmt: skip
T5_DIMS, T5_TOKENS = 768, 32  # T5-base states of a caption (cached during training)
PARITY_TOKENS = 64
SA3_LORA_GB = (2.5, 6.5)  # Stable Audio 3's MLX LoRA, the anchor's own figures
GB = 1e9

# score model shapes: the shipped score-base and a larger one where weights matter
SCORE_SIZES = {
    "score-base": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                       intermediate_size=768),
    "512x8": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
                  intermediate_size=1536),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128),
}  # fmt: skip
# musicgen decoders (the Hugging Face configs; engine/hub.py's catalogue)
MUSICGEN = {
    "small": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096),
    "medium": dict(hidden_size=1536, num_hidden_layers=48, num_attention_heads=24, ffn_dim=6144),
}


# --------------------------------------------------------------------------------------------
# process memory


def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux: VmHWM) to its current RSS; False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Rss:
    """Peak RSS of this process over ``base`` (taken after the imports, before the model)."""

    def __init__(self, base: int | None):
        self.base = base
        self.resettable = False

    def reset(self) -> None:
        self.resettable = reset_peak_rss()

    def peak_over_base(self) -> int | None:
        hwm = _status_bytes("VmHWM")
        if hwm is None or self.base is None or not self.resettable:
            return None
        return hwm - self.base


# --------------------------------------------------------------------------------------------
# children: MLX


class _NoWeights:
    """Checkpoints without model weights (the trainer still writes its optimizer state)."""

    def export(self, folder, model) -> None:
        pass

    def restore(self, folder, model) -> None:
        pass


class _Recorder:
    """Per-step tokens/s; resets the memory peaks after the warm-up steps."""

    def __init__(self, warmup: int, rss: Rss):
        import mlx.core as mx

        self.mx, self.warmup, self.rss = mx, warmup, rss
        self.rates: list[float] = []
        self.first_peak = 0
        self.peak = 0
        self.peak_rss: int | None = None

    def on_train_report(self, info: dict) -> None:
        mx = self.mx
        if info["iteration"] <= self.warmup:
            self.first_peak = max(self.first_peak, mx.get_peak_memory())
            if info["iteration"] == self.warmup:
                gc.collect()
                mx.reset_peak_memory()
                self.rss.reset()
            return
        self.rates.append(info["tokens_per_second"])
        self.peak = max(self.peak, mx.get_peak_memory())
        self.peak_rss = self.rss.peak_over_base()


def _run_trainer(model, B, warmup, steps, batches, val, rss0, task=None, checkpoint=False):
    """`engine.train.trainer.train` for warmup + steps steps, one report per step; ``rss0``:
    the RSS before the model was built."""
    import mlx.core as mx

    from engine.train.trainer import TrainConfig, train

    rss = Rss(rss0)
    config = TrainConfig(
        batch_size=B, learning_rate=1e-4, warmup_steps=0, max_steps=warmup + steps,
        eval_every=10**9, checkpoint_every=10**9, report_every=1, grad_checkpoint=checkpoint,
    )  # fmt: skip
    rec = _Recorder(warmup, rss)
    gc.collect()
    mx.clear_cache()
    mx.reset_peak_memory()
    with tempfile.TemporaryDirectory() as out:
        summary = train(model, config, batches, lambda: val, out, rec, task=task,
                        weights=_NoWeights())  # fmt: skip
    if summary["stop_reason"] != "max_steps":
        raise RuntimeError(f"the run stopped early: {summary['stop_reason']}")
    return rec


def _tree_bytes(tree) -> int:
    from mlx.utils import tree_flatten

    return sum(v.nbytes for _, v in tree_flatten(tree))


def _tree_size(tree) -> int:
    from mlx.utils import tree_flatten

    return sum(v.size for _, v in tree_flatten(tree))


def _import_mlx() -> None:
    import engine  # noqa: F401  (OpenBLAS before the first mlx import)

    # isort: split
    import mlx_lm.tuner.utils  # noqa: F401  (lora.apply imports it; counted in the baseline)


def mlx_score_child(spec: dict) -> dict:
    """One score-model configuration through the real trainer (full or LoRA); then, at each
    further OpenBLAS thread count of ``spec["threads"]``, tokens/s (and parts) again."""
    _import_mlx()
    rss0 = _status_bytes("VmRSS")
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from engine.models import lora
    from engine.models.score import Model, ModelArgs

    B, L = spec["batch"], spec["seq"]
    args = ModelArgs(vocab_size=VOCAB, max_position_embeddings=max(L, 1024), **spec["shape"])
    val = [(np.ones((1, 8), np.int32), np.array([8], np.int32), ["x"])]
    result: dict = {"runs": []}
    for i, threads in enumerate(spec.get("threads") or [None]):
        if threads is not None:
            _set_blas_threads(threads)
        mx.random.seed(0)
        model = Model(args)
        mx.eval(model.parameters())
        if spec.get("parity_dir") and i == 0:  # weights and logits for the torch child's check
            folder = Path(spec["parity_dir"])
            w = {k: np.array(v) for k, v in tree_flatten(model.parameters())}
            np.savez(folder / "weights.npz", **w)
            ids = np.random.default_rng(1).integers(1, VOCAB, size=(1, PARITY_TOKENS))
            np.save(folder / "ids.npy", ids)
            np.save(folder / "logits.npy", np.array(model(mx.array(ids, mx.int32))))
        if spec["method"] == "lora":
            lora.apply(model, lora.LoraConfig(rank=RANK, alpha=ALPHA, keys=lora.targets("all")))
            mx.eval(model.parameters())
        rng = np.random.default_rng(0)

        def batches(rng=rng):
            while True:
                x = rng.integers(1, VOCAB, size=(B, L)).astype(np.int32)
                yield x, np.full((B,), L, np.int32)

        rec = _run_trainer(model, B, spec["warmup"], spec["steps"], batches(), val, rss0,
                           checkpoint=spec.get("checkpoint", False))  # fmt: skip
        run = {"threads": _blas_threads(), "tok_s": statistics.median(rec.rates),
               "rates": rec.rates}  # fmt: skip
        if i == 0:  # memory: the first run only (the process is fresh)
            result.update({
                "peak": rec.peak,
                "first_peak": rec.first_peak,
                "weights": _tree_bytes(model.parameters()),
                "params": _tree_size(model.parameters()),
                "trainable": _tree_size(model.trainable_parameters()),
                "peak_rss": rec.peak_rss,
            })  # fmt: skip
        del model, rec
        gc.collect()
        mx.clear_cache()
        if spec.get("parts"):
            run["parts"] = mlx_parts(spec["shape"], B, L, spec["parts"])
        result["runs"].append(run)
    result["tok_s"] = result["runs"][0]["tok_s"]
    return result


def _blas_threads() -> int | None:
    import ctypes

    from engine import _blas

    if _blas.loaded is None:
        return None
    return int(ctypes.CDLL(_blas.loaded).openblas_get_num_threads())


def _set_blas_threads(n: int) -> None:
    import ctypes

    from engine import _blas

    if _blas.loaded is not None:
        ctypes.CDLL(_blas.loaded).openblas_set_num_threads(n)


def _timed_median(fn, reps: int) -> float:
    fn()  # warm up (compiles)
    times = []
    for _ in range(reps):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def mlx_parts(shape: dict, B: int, L: int, reps: int) -> dict:
    """Seconds of the pieces of one block's training step (forward + backward) in MLX."""
    import mlx.core as mx

    D, H, F = shape["hidden_size"], shape["num_attention_heads"], shape["intermediate_size"]
    Dh, N = D // H, B * L
    mx.random.seed(0)
    q, k, v, dq = (mx.random.normal((B, H, L, Dh)) for _ in range(4))
    x, dx = mx.random.normal((N, D)), mx.random.normal((N, D))
    h, dh = mx.random.normal((N, F)), mx.random.normal((N, F))
    Wd = [mx.random.normal((D, D)) * D**-0.5 for _ in range(4)]
    Wg, Wu = (mx.random.normal((F, D)) * D**-0.5 for _ in range(2))
    Wdown = mx.random.normal((D, F)) * F**-0.5
    A = [mx.random.normal((i, RANK)) * 0.01 for i in [D] * 6 + [F]]
    Bm = [mx.random.normal((RANK, o)) * 0.01 for o in [D] * 4 + [F, F, D]]
    mx.eval(q, k, v, dq, x, dx, h, dh, Wd, Wg, Wu, Wdown, A, Bm)

    from engine.models.score import causal_attention

    def attention(q, k, v):  # as the model runs it: in blocks of queries (ATTENTION_BLOCK)
        return [causal_attention(q, k, v, Dh**-0.5)]

    def attention_matmuls(q, k, v):  # the same products without the mask and softmax
        return [((q * Dh**-0.5) @ k.swapaxes(-1, -2)) @ v]

    def proj(x, h, *W):
        return [x @ w.T for w in W[:6]] + [h @ W[6].T]

    Ws = [*Wd, Wg, Wu, Wdown]
    cots = [dx] * 4 + [dh, dh, dx]

    def adapters(x, h, *AB):
        ins = [x] * 6 + [h]
        return [(i @ a) @ b for i, a, b in zip(ins, AB[:7], AB[7:], strict=True)]

    attn_step = mx.compile(lambda q, k, v: mx.vjp(attention, [q, k, v], [dq]))
    matmul_step = mx.compile(lambda q, k, v: mx.vjp(attention_matmuls, [q, k, v], [dq]))
    frozen_step = mx.compile(lambda x, h: mx.vjp(lambda x, h: proj(x, h, *Ws), [x, h], cots))
    full_step = mx.compile(lambda x, h, *W: mx.vjp(proj, [x, h, *W], cots))
    lora_step = mx.compile(lambda x, h, *AB: mx.vjp(adapters, [x, h, *AB], cots))

    out = {}
    gc.collect()
    mx.clear_cache()
    before = mx.get_active_memory()
    mx.reset_peak_memory()
    out["attention"] = _timed_median(lambda: mx.eval(attn_step(q, k, v)), reps)
    out["attention_peak"] = mx.get_peak_memory() - before
    out["attention_matmuls"] = _timed_median(lambda: mx.eval(matmul_step(q, k, v)), reps)
    scores = mx.random.normal((B, H, L, L))
    mx.eval(scores)
    out["softmax"] = _timed_median(lambda: mx.eval(mx.softmax(scores, axis=-1)), reps)
    scores = None
    out["frozen"] = _timed_median(lambda: mx.eval(frozen_step(x, h)), reps)
    out["full"] = _timed_median(lambda: mx.eval(full_step(x, h, *Ws)), reps)
    out["adapters"] = _timed_median(lambda: mx.eval(lora_step(x, h, *A, *Bm)), reps)
    return out


def _decoder_lm(cfg):
    """The MusicGen decoder with its T5 -> decoder projection; ``layers`` for `lora.apply`."""
    import mlx.nn as nn

    from engine.models.musicgen import MusicgenDecoder

    class Lm(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc_to_dec_proj = nn.Linear(T5_DIMS, cfg.hidden_size)
            self.decoder = MusicgenDecoder(cfg)

        @property
        def layers(self):
            return self.decoder.layers

        def __call__(self, codes, text):
            return self.decoder(codes, self.enc_to_dec_proj(text))

    return Lm()


class _CodesTask:
    """Next-frame cross-entropy over all codebooks: batches (codes [B, K, T+1], text)."""

    def arrays(self, batch):
        import mlx.core as mx

        codes, text = batch
        return mx.array(codes), mx.array(text)

    def loss(self, model, codes, text):
        import mlx.core as mx
        import mlx.nn as nn

        logits = model(codes[:, :, :-1], text.astype(model.enc_to_dec_proj.weight.dtype))
        nll = nn.losses.cross_entropy(logits.astype(mx.float32), codes[:, :, 1:])
        frames = codes.shape[0] * (codes.shape[2] - 1)
        return nll.mean(), mx.array(frames)  # "tokens" = frames: tokens/s = frames/s

    def slots(self, batch) -> int:
        return int(batch[0].shape[0] * (batch[0].shape[2] - 1))

    def evaluate(self, model, batches, max_batches=0):
        return 0.0, {}  # not measured


def mlx_musicgen_child(spec: dict) -> dict:
    """LoRA steps of musicgen-shaped decoders: one run per (layers, dtype) in ``spec["runs"]``."""
    _import_mlx()
    import mlx.core as mx

    from engine.models import lora
    from engine.models.musicgen import MusicgenDecoderConfig

    B, T = spec["batch"], spec["frames"]
    out = []
    for run in spec["runs"]:
        shape = {**spec["shape"], "num_hidden_layers": run["layers"]}
        cfg = MusicgenDecoderConfig(num_codebooks=4, max_position_embeddings=max(2048, T), **shape)
        mx.random.seed(0)
        rss0 = _status_bytes("VmRSS")
        model = _decoder_lm(cfg)
        if run["dtype"] == "float16":
            model.set_dtype(mx.float16)
        mx.eval(model.parameters())
        base = _tree_bytes(model.parameters())
        if run["method"].startswith("lora"):
            lora.apply(model, lora.LoraConfig(rank=RANK, alpha=ALPHA, keys=MG_KEYS))
            mx.eval(model.parameters())
        rng = np.random.default_rng(0)

        def batches(rng=rng, V=cfg.vocab_size):
            while True:
                codes = rng.integers(0, V, size=(B, 4, T + 1)).astype(np.int32)
                yield codes, rng.standard_normal((B, T5_TOKENS, T5_DIMS)).astype(np.float32)

        ckpt = run["method"].endswith("ckpt")
        rec = _run_trainer(model, B, run["warmup"], run["steps"], batches(), [], rss0,
                           task=_CodesTask(), checkpoint=ckpt)  # fmt: skip
        out.append({
            **run,
            "step_s": B * T / statistics.median(rec.rates),
            "peak": rec.peak,
            "first_peak": rec.first_peak,
            "base_weights": base,
            "weights": _tree_bytes(model.parameters()),
            "trainable": _tree_size(model.trainable_parameters()),
            "peak_rss": rec.peak_rss,
        })  # fmt: skip
        print(f"    musicgen {run['layers']} layers {run['dtype']} {run['method']}: "
              f"{out[-1]['step_s']:.2f} s/step, peak {rec.peak / GB:.3f} GB",
              file=sys.stderr, flush=True)  # fmt: skip
        del model, rec
        gc.collect()
        mx.clear_cache()
    return {"runs": out}


# --------------------------------------------------------------------------------------------
# children: torch (never imports engine)


def torch_score_child(spec: dict) -> dict:
    """transformers LlamaForCausalLM with our weights; PEFT LoRA (or full) with torch AdamW,
    at each thread count of ``spec["threads"]`` (a fresh model each; the peak RSS of the first
    only: the later ones start from a process that has held the first)."""
    import peft
    import torch
    import transformers as tf

    rss0 = _status_bytes("VmRSS")
    s, B, L = spec["shape"], spec["batch"], spec["seq"]
    config = tf.LlamaConfig(
        vocab_size=VOCAB, hidden_size=s["hidden_size"], intermediate_size=s["intermediate_size"],
        num_hidden_layers=s["num_hidden_layers"], num_attention_heads=s["num_attention_heads"],
        num_key_value_heads=s["num_attention_heads"], rms_norm_eps=1e-5, rope_theta=10000.0,
        max_position_embeddings=max(L, 1024), tie_word_embeddings=True, attention_bias=False,
        mlp_bias=False, hidden_act="silu",
    )  # fmt: skip
    folder = Path(spec["parity_dir"]) if spec.get("parity_dir") else None
    result: dict = {"runs": []}

    def build():
        torch.manual_seed(0)
        model = tf.LlamaForCausalLM(config)
        result["attn_implementation"] = model.config._attn_implementation
        if folder is not None:
            weights = {k: torch.from_numpy(v) for k, v in np.load(folder / "weights.npz").items()}
            missing, unexpected = model.load_state_dict(weights, strict=False)
            if unexpected or set(missing) - {"lm_head.weight"}:
                raise RuntimeError(f"weights do not fit: missing {missing}, extra {unexpected}")
            model.tie_weights()
        return model

    for i, threads in enumerate(spec["threads"]):
        torch.set_num_threads(threads)
        model = build()
        if folder is not None and i == 0:
            with torch.no_grad():
                ids = torch.from_numpy(np.load(folder / "ids.npy")).long()
                got = model(input_ids=ids, use_cache=False).logits.numpy()
            ref = np.load(folder / "logits.npy")
            result["parity_max_abs"] = float(np.abs(got - ref).max())
            result["parity_max_logit"] = float(np.abs(ref).max())
        if spec["method"] == "lora":
            model = peft.get_peft_model(
                model,
                peft.LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, bias="none",
                                target_modules=list(SCORE_KEYS)),
            )  # fmt: skip
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1)
        rng = np.random.default_rng(0)

        def step(model=model, params=params, opt=opt, rng=rng) -> None:
            x = torch.from_numpy(rng.integers(1, VOCAB, size=(B, L))).long()
            logits = model(input_ids=x[:, :-1], use_cache=False).logits
            loss = torch.nn.functional.cross_entropy(
                logits.float().flatten(0, 1), x[:, 1:].flatten()
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()

        for _ in range(spec["warmup"]):
            step()
        gc.collect()
        resettable = reset_peak_rss()
        times = []
        for _ in range(spec["steps"]):
            tic = time.perf_counter()
            step()
            times.append(time.perf_counter() - tic)
        hwm = _status_bytes("VmHWM")
        run = {
            "threads": torch.get_num_threads(),
            "tok_s": B * (L - 1) / statistics.median(times),
            "rates": [B * (L - 1) / t for t in times],
            "peak_rss": hwm - rss0 if i == 0 and resettable and hwm and rss0 else None,
        }
        result["trainable"] = sum(p.numel() for p in params)
        result["params"] = sum(p.numel() for p in model.parameters())
        del model, opt, params, step
        gc.collect()
        if spec.get("parts"):
            run["parts"] = torch_parts(s, B, L, spec["parts"])
        result["runs"].append(run)
    return result


def torch_parts(shape: dict, B: int, L: int, reps: int) -> dict:
    """`mlx_parts` in torch (scaled_dot_product_attention with is_causal, as transformers)."""
    import torch
    from torch.nn import functional as F

    D, H, Fd = shape["hidden_size"], shape["num_attention_heads"], shape["intermediate_size"]
    Dh, N = D // H, B * L
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, L, Dh, requires_grad=True) for _ in range(3))
    dq = torch.randn(B, H, L, Dh)
    x, h = torch.randn(N, D, requires_grad=True), torch.randn(N, Fd, requires_grad=True)
    dx, dh = torch.randn(N, D), torch.randn(N, Fd)
    Ws = [torch.randn(D, D) * D**-0.5 for _ in range(4)]
    Ws += [torch.randn(Fd, D) * D**-0.5 for _ in range(2)] + [torch.randn(D, Fd) * Fd**-0.5]
    A = [(torch.randn(i, RANK) * 0.01).requires_grad_() for i in [D] * 6 + [Fd]]
    Bm = [(torch.randn(RANK, o) * 0.01).requires_grad_() for o in [D] * 4 + [Fd, Fd, D]]
    cots = [dx] * 4 + [dh, dh, dx]

    def attention():
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.autograd.grad(o, [q, k, v], dq)

    def proj(W, wrt):
        outs = [x @ w.T for w in W[:6]] + [h @ W[6].T]
        torch.autograd.grad(outs, wrt, cots)

    Wg = [w.clone().requires_grad_() for w in Ws]

    def adapters():
        ins = [x] * 6 + [h]
        outs = [(i @ a) @ b for i, a, b in zip(ins, A, Bm, strict=True)]
        torch.autograd.grad(outs, [x, h, *A, *Bm], cots)

    out = {"attention": _timed_median(attention, reps)}
    scores = torch.randn(B, H, L, L)
    out["softmax"] = _timed_median(lambda: torch.softmax(scores, -1), reps)
    scores = None
    out["frozen"] = _timed_median(lambda: proj(Ws, [x, h]), reps)
    out["full"] = _timed_median(lambda: proj(Wg, [x, h, *Wg]), reps)
    out["adapters"] = _timed_median(adapters, reps)
    return out


CHILDREN = {
    "mlx-score": mlx_score_child,
    "mlx-musicgen": mlx_musicgen_child,
    "torch-score": torch_score_child,
}


def run_child(kind: str, spec: dict) -> dict:
    """``CHILDREN[kind](spec)`` in a fresh process; its result (a JSON line on stdout)."""
    cmd = [sys.executable, "-m", "tests.bench.bench_train", "--child", kind, json.dumps(spec)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        raise RuntimeError(f"child {kind} failed (exit {p.returncode})")
    return json.loads(lines[-1][len("RESULT ") :])


# --------------------------------------------------------------------------------------------
# arithmetic


def score_activation_bytes(shape: dict, B: int, L: int) -> int:
    """Activations one training step keeps for backward (float32), by counting tensors.

    Per block, for N = B x L tokens: the inputs of the two RMSNorms, of q/k/v, of o_proj and of
    gate/up (5 N x D), q and k after RoPE and v (3 N x D), the gate and up outputs and their
    SwiGLU product (the input of down_proj: 3 N x F), and the attention probabilities
    B x H x L x L (MLX's CPU attention is not fused: its backward needs them). Then the final
    norm's input and the logits (N x V, and their log-softmax for the loss).
    LoRA keeps the same set: every adapted layer still needs its input, for lora_a's gradient.
    """
    D, H, F, n = (shape[k] for k in ("hidden_size", "num_attention_heads", "intermediate_size",
                                     "num_hidden_layers"))  # fmt: skip
    N = B * L
    per_block = N * (8 * D + 3 * F) + B * H * L * L
    return 4 * (n * per_block + N * D + 2 * N * VOCAB)


def musicgen_activation_bytes(shape: dict, B: int, T: int, itemsize: int) -> int:
    """Activations kept for backward by one musicgen decoder layer with LoRA (``itemsize``
    bytes per value), by counting tensors, for N = B x T frames and S caption states:
    the three LayerNorms' inputs and outputs (6 N x D), self-attention q, k, v and output
    (4 N x D), cross-attention q and output (2 N x D), fc1's output and the GELU's (2 N x F),
    and the attention probabilities (B x H x T x T, B x H x T x S)."""
    D, H, F = shape["hidden_size"], shape["num_attention_heads"], shape["ffn_dim"]
    N = B * T
    return itemsize * (N * (12 * D + 2 * F) + B * H * T * (T + T5_TOKENS))


def musicgen_params(shape: dict) -> tuple[int, int, int]:
    """(decoder parameters, of which per layer, LoRA parameters) for a musicgen decoder."""
    D, F, n = shape["hidden_size"], shape["ffn_dim"], shape["num_hidden_layers"]
    K, V = 4, 2048
    layer = 8 * D * D + 2 * D * F + 6 * D  # attention x2, feed-forward, three LayerNorms
    total = n * layer + K * (V + 1) * D + K * D * V + 2 * D + T5_DIMS * D + D
    lora = n * RANK * (8 * 2 * D + 2 * (D + F))
    return total, layer, lora


# --------------------------------------------------------------------------------------------
# the report


def _gb(x: float | None) -> str:
    return "   n/a" if x is None else f"{x / GB:6.3f}"


def _mb(x: float | None) -> str:
    return "   n/a" if x is None else f"{x / 1e6:7.1f}"


def bench_score(name: str, shape: dict, B: int, L: int, a) -> None:
    print(f"\n(a) score model {name} ({shape['hidden_size']} x {shape['num_hidden_layers']} "
          f"layers, {shape['num_attention_heads']} heads, FFN {shape['intermediate_size']}, "
          f"vocab {VOCAB}), batch {B} x {L} tokens; medians of {a.steps} steps after "
          f"{a.warmup} warm-up")  # fmt: skip
    common = {"shape": shape, "batch": B, "seq": L, "warmup": a.warmup, "steps": a.steps}
    parts = a.parts if name == a.parts_size else 0
    threads = sorted({os.cpu_count() or 1, 1}, reverse=True)
    with tempfile.TemporaryDirectory() as parity:
        full = run_child("mlx-score", {**common, "method": "full"})
        lo = run_child("mlx-score", {**common, "method": "lora", "parity_dir": parity,
                                     "parts": parts, "threads": threads})  # fmt: skip
        torch_runs = {}
        if not a.skip_torch:
            tspec = {**common, "threads": threads, "parts": parts}
            torch_runs["LoRA"] = run_child(
                "torch-score", {**tspec, "method": "lora", "parity_dir": parity}
            )
            if a.torch_full:
                torch_runs["full"] = run_child("torch-score", {**tspec, "method": "full"})
    print("    run                 params  trainable   tok/s  peak GB  RSS GB | weights   grads"
          "   AdamW    rest (MB)")  # fmt: skip
    for label, r in (("MLX full", full), ("MLX LoRA", lo)):
        w, g = r["weights"], r["trainable"] * 4
        rest = r["peak"] - w - 3 * g
        for i, run in enumerate(r["runs"]):
            mem = (f"{_gb(r['peak'])}  {_gb(r['peak_rss'])} | {_mb(w)} {_mb(g)} {_mb(2 * g)}  "
                   f"{_mb(rest)}") if i == 0 else "   (same)"  # fmt: skip
            print(f"    {label:9} {run['threads']} thr {r['params'] / 1e6:6.2f}M "
                  f"{r['trainable'] / 1e6:8.3f}M {run['tok_s']:7.0f}  {mem}")  # fmt: skip
    for label, t in torch_runs.items():
        for run in t["runs"]:
            print(f"    PEFT {label:4} {run['threads']} thr {t['params'] / 1e6:6.2f}M "
                  f"{t['trainable'] / 1e6:8.3f}M {run['tok_s']:7.0f}     n/a  "
                  f"{_gb(run['peak_rss'])} |")  # fmt: skip
    ratio = lo["peak"] / full["peak"]
    verdict = "meets" if ratio <= LORA_PEAK_TARGET else "misses"
    rss = ""
    if full["peak_rss"] and lo["peak_rss"]:
        rss = f", peak RSS {lo['peak_rss'] / full['peak_rss']:.2f}"
    print(f"    MLX LoRA / full ({threads[0]} threads): peak memory {ratio:.2f} (target <= "
          f"{LORA_PEAK_TARGET:.2f}: {verdict}){rss}, tokens/s "
          f"{lo['tok_s'] / full['tok_s']:.2f}x")  # fmt: skip
    W = full["weights"]
    rest = lo["peak"] - lo["weights"] - 3 * 4 * lo["trainable"]
    act = score_activation_bytes(shape, B, L)
    print(f"    why: LoRA drops the frozen weights' gradients and AdamW moments (3 x weights = "
          f"{3 * W / 1e6:.0f} MB); activations and temporaries ({rest / 1e6:.0f} MB; kept for "
          f"backward by arithmetic {act / 1e6:.0f} MB) stay. rest/weights = {rest / W:.1f}: "
          f"LoRA/full <= 0.5 needs rest <= ~2 x weights")  # fmt: skip
    # activation checkpointing (--grad-checkpoint): the activations LoRA cannot drop
    ck = {m: run_child("mlx-score", {**common, "method": m, "checkpoint": True})
          for m in ("full", "lora")}  # fmt: skip
    for m, r in ck.items():
        plain = full if m == "full" else lo
        print(f"    MLX {m} + --grad-checkpoint: peak {_gb(r['peak'])} GB, {r['tok_s']:.0f} "
              f"tok/s ({r['tok_s'] / plain['tok_s']:.2f}x of plain {m})")  # fmt: skip
    ratio = ck["lora"]["peak"] / full["peak"]
    verdict = "meets" if ratio <= LORA_PEAK_TARGET else "misses"
    print(f"    MLX LoRA + --grad-checkpoint / full: peak memory {ratio:.2f} (target <= "
          f"{LORA_PEAK_TARGET:.2f}: {verdict}); against full + --grad-checkpoint "
          f"{ck['lora']['peak'] / ck['full']['peak']:.2f}")  # fmt: skip
    print(f"    first-step peaks (compilation included): full {_gb(full['first_peak'])}, "
          f"LoRA {_gb(lo['first_peak'])} GB")  # fmt: skip
    t = torch_runs.get("LoRA")
    if t is None:
        runs = [("MLX", run) for run in lo["runs"] if "parts" in run]
        if runs:
            print_parts(shape, B, L, runs)
        return
    same = "same" if lo["trainable"] == t["trainable"] else "DIFFERENT"
    print(f"    parity: transformers logits with our weights, max |diff| "
          f"{t['parity_max_abs']:.1e} (max |logit| {t['parity_max_logit']:.1f}); trainable "
          f"parameters MLX {lo['trainable']}, PEFT {t['trainable']}: {same}")  # fmt: skip
    mlx_by = {run["threads"]: run for run in lo["runs"]}
    line = [f"{n} thread(s) each {mlx_by[run['threads']]['tok_s'] / run['tok_s']:.2f}x"
            for run in t["runs"] if (n := run["threads"]) in mlx_by]  # fmt: skip
    mb = max(lo["runs"], key=lambda run: run["tok_s"])
    tb = max(t["runs"], key=lambda run: run["tok_s"])
    first = t["runs"][0]
    mem = ""
    if first["peak_rss"] and lo["peak_rss"]:
        mem = f"; peak RSS MLX/torch {lo['peak_rss'] / first['peak_rss']:.2f}"
    print(f"(b) MLX LoRA / PEFT LoRA (torch attention {t['attn_implementation']}), tokens/s: "
          f"{', '.join(line)}; best setting each {mb['tok_s'] / tb['tok_s']:.2f}x (MLX at "
          f"{mb['threads']}, torch at {tb['threads']} threads){mem}")  # fmt: skip
    if "full" in torch_runs:
        f = torch_runs["full"]
        fb = max(f["runs"], key=lambda run: run["tok_s"])
        print(
            f"    torch LoRA / full peak RSS {first['peak_rss'] / f['runs'][0]['peak_rss']:.2f}; "
            f"MLX full / torch full (best) tokens/s {full['tok_s'] / fb['tok_s']:.2f}x"
        )
    runs = [("MLX", run) for run in lo["runs"] if "parts" in run]
    runs += [("torch", run) for run in t["runs"] if "parts" in run]
    if runs:
        print_parts(shape, B, L, runs)


def print_parts(shape: dict, B: int, L: int, runs: list[tuple[str, dict]]) -> None:
    D, H, F, n = (shape[k] for k in ("hidden_size", "num_attention_heads", "intermediate_size",
                                     "num_hidden_layers"))  # fmt: skip
    N, Dh = B * L, D // H
    proj_flop = 2 * N * (4 * D * D + 3 * D * F)  # one pass of the seven projections
    attn_flop = 3 * 4 * B * H * L * L * Dh  # QK^T and PV, forward + 2x backward, dense
    parts = [
        ("attention", "attention core fwd+bwd", attn_flop),
        ("attention_matmuls", "  its matmuls alone", attn_flop),
        ("frozen", "projections fwd + dx", 2 * proj_flop),
        ("adapters", "LoRA adapters fwd+bwd", 3 * 2 * N * RANK * (12 * D + 4 * F)),
        ("full", "projections fwd+dx+dW (full)", 3 * proj_flop),
    ]
    print(f"(c) where a LoRA step's time goes, per block (x {n} blocks), batch {B} x {L}: "
          f"ms (GFLOP/s; attention counted dense, torch's flash kernel skips the masked "
          f"half)")  # fmt: skip
    print("    part                        " + "".join(f"{fw:>6} {r['threads']}t      "
                                                      for fw, r in runs))  # fmt: skip
    for key, label, flop in parts:
        row = f"    {label:28}"
        for _, run in runs:
            tt = run["parts"].get(key)
            row += (
                "          n/a  " if tt is None else f" {tt * 1e3:6.0f} ({flop / tt / 1e9:4.0f})  "
            )
        print(row)
    row = "    whole LoRA step             "
    for _, run in runs:
        row += f" {B * (L - 1) / run['tok_s'] * 1e3:6.0f}         "
    print(row)
    for fw, run in runs:
        p = run["parts"]
        step = B * (L - 1) / run["tok_s"]
        block = p["attention"] + p["frozen"] + p["adapters"]
        soft = ""
        if "attention_matmuls" in p:
            mask_softmax = n * (p["attention"] - p["attention_matmuls"]) / step
            soft = f", of which mask + softmax {mask_softmax:.0%}"
        print(f"    {fw} {run['threads']}t: {n} x (attention + projections + adapters) = "
              f"{n * block / step:.0%} of the step (attention {n * p['attention'] / step:.0%}"
              f"{soft}); the rest {step - n * block:.2f} s")  # fmt: skip
    print("    (the rest: norms, RoPE, SwiGLU, embedding, logits + loss, AdamW, dispatch)")
    size = B * H * L * L
    sm = ", ".join(f"{fw} {r['threads']}t {r['parts']['softmax'] * 1e3:.0f} ms "
                   f"({size / r['parts']['softmax'] / 1e6:.0f} M/s)" for fw, r in runs)  # fmt: skip
    print(f"    a softmax over B x H x L x L = {size / 1e6:.1f} M scores, forward alone: {sm}")
    peak = runs[0][1]["parts"].get("attention_peak")
    print(f"    MLX attention core working set per block {_mb(peak)} MB (one B x H x L x L "
          f"float32 tensor: {4 * B * H * L * L / 1e6:.0f} MB); torch's flash kernel keeps "
          f"O(L) per head")  # fmt: skip


def bench_musicgen(a) -> dict | None:
    shape = MUSICGEN["small"]
    if a.quick:
        shape = {**shape, "hidden_size": 256, "ffn_dim": 1024, "num_attention_heads": 4}
    B, T = 1, a.frames
    runs = [dict(layers=n, dtype="float32", method="lora", warmup=a.warmup, steps=a.steps)
            for n in a.mg_layers]  # fmt: skip
    runs += [dict(layers=n, dtype="float32", method="full", warmup=a.warmup, steps=a.mg_full_steps)
             for n in a.mg_layers]  # fmt: skip
    # LoRA with --grad-checkpoint (method "lora-ckpt")
    runs += [dict(layers=n, dtype="float32", method="lora-ckpt", warmup=a.warmup, steps=a.steps)
             for n in a.mg_layers]  # fmt: skip
    # float16 steps take MLX's scalar CPU float16 matmul: one step each, compilation included
    runs += [dict(layers=n, dtype="float16", method="lora", warmup=0, steps=1)
             for n in a.mg_fp16_layers]  # fmt: skip
    print(f"\n(d) musicgen-small-shaped decoder ({shape['hidden_size']} x {shape['ffn_dim']}, "
          f"{shape['num_attention_heads']} heads, 4 codebooks), batch {B} x {T} frames, "
          f"cross-attention to {T5_TOKENS} T5 states; LoRA rank {RANK} on {len(MG_KEYS)} "
          f"linears per layer (adapters float32), or full fine-tuning; AdamW")  # fmt: skip
    spec = {"shape": {k: v for k, v in shape.items() if k != "num_hidden_layers"},
            "batch": B, "frames": T, "runs": runs}  # fmt: skip
    r = run_child("mlx-musicgen", spec)["runs"]
    print("    layers dtype   method  s/step  peak GB | base weights  trainable (MB)")
    for x in r:
        note = "  (1 step, compilation included)" if x["warmup"] == 0 else ""
        print(f"    {x['layers']:6} {x['dtype']:7} {x['method']:6} {x['step_s']:7.2f}  "
              f"{_gb(x['peak'])} | {_mb(x['base_weights'])}     {_mb(x['trainable'] * 4)}"
              f"{note}")  # fmt: skip
    n_full = MUSICGEN["small"]["num_hidden_layers"]
    est: dict = {}
    pairs = (
        ("float32", "lora"),
        ("float32", "full"),
        ("float32", "lora-ckpt"),
        ("float16", "lora"),
    )
    for dtype, method in pairs:
        xs = sorted((x for x in r if (x["dtype"], x["method"]) == (dtype, method)),
                    key=lambda x: x["layers"])  # fmt: skip
        if len(xs) < 2:
            continue
        lo, hi = xs[0], xs[-1]
        dn = hi["layers"] - lo["layers"]
        per_s = (hi["step_s"] - lo["step_s"]) / dn
        per_peak = (hi["peak"] - lo["peak"]) / dn
        per_w = (hi["weights"] - lo["weights"]) / dn  # base weights and adapters
        per_t = 3 * 4 * (hi["trainable"] - lo["trainable"]) / dn  # gradients and AdamW m, v
        per_act = per_peak - per_w - per_t
        step = lo["step_s"] + (n_full - lo["layers"]) * per_s
        peak = lo["peak"] + (n_full - lo["layers"]) * per_peak
        arith = musicgen_activation_bytes(shape, B, T, 4 if dtype == "float32" else 2)
        est[dtype, method] = {"per_layer_act": per_act, "arith": arith, "peak": peak}
        print(f"    {dtype} {method}: per layer {per_s:.2f} s, {per_peak / 1e6:.0f} MB (weights "
              f"{per_w / 1e6:.0f}, their gradients + AdamW {per_t / 1e6:.1f}, activations "
              f"{per_act / 1e6:.0f}; by arithmetic {arith / 1e6:.0f})")  # fmt: skip
        if not a.quick:
            print(
                f"      -> {n_full} layers (extrapolated): {step:.1f} s/step "
                f"({B * T / step:.1f} frames/s), peak {peak / GB:.2f} GB"
            )
    if ("float32", "lora") in est and ("float32", "full") in est:
        ratio = est["float32", "lora"]["peak"] / est["float32", "full"]["peak"]
        verdict = "meets" if ratio <= LORA_PEAK_TARGET else "misses"
        print(f"    LoRA / full peak memory at {n_full} layers, float32 (extrapolated): "
              f"{ratio:.2f} (target <= {LORA_PEAK_TARGET:.2f}: {verdict})")  # fmt: skip
    if ("float32", "lora-ckpt") in est and ("float32", "full") in est:
        ratio = est["float32", "lora-ckpt"]["peak"] / est["float32", "full"]["peak"]
        print(f"    LoRA + --grad-checkpoint / full at {n_full} layers, float32 (extrapolated): "
              f"{ratio:.2f}")  # fmt: skip
    return est


def paper_estimate(est: dict | None, seconds: tuple[float, ...] = (10.0, 30.0)) -> None:
    """(e) Expected memory of musicgen LoRA on Apple Silicon, by arithmetic (``est``: the
    measured per-layer activations of (d), to calibrate the tensor count)."""
    print(f"\n(e) PAPER, not measured: musicgen LoRA memory on Apple Silicon (MLX, Metal), "
          f"rank {RANK} on {len(MG_KEYS)} linears per layer, AdamW, batch 1; EnCodec codes and "
          f"T5 states cached (neither model loaded)")  # fmt: skip
    cal = {}
    for dtype in ("float32", "float16"):
        if est and (dtype, "lora") in est:
            e = est[dtype, "lora"]
            cal[dtype] = e["per_layer_act"] / e["arith"]
    if cal:
        print("    activations: the tensor count of `musicgen_activation_bytes` x "
              + ", ".join(f"{v:.2f} ({k})" for k, v in cal.items())
              + " (this run's per-layer activations on the CPU / the count), plus the logits, "
              "their log-softmax and gradient in float32")  # fmt: skip
    else:
        print("    activations: the tensor count of `musicgen_activation_bytes` (uncalibrated)")
    cols = "".join(f"  act {s:g} s  total {s:g} s" for s in seconds)
    print(f"    model   base  weights  adapters+grads+AdamW{cols}  (full fp32, {seconds[0]:g} s)")
    for name, shape in MUSICGEN.items():
        total, _, lora_n = musicgen_params(shape)
        n = shape["num_hidden_layers"]
        for dtype, item in (("float16", 2), ("float32", 4)):
            w = total * item
            ad = 4 * 4 * lora_n
            row = f"    {name:7} {dtype[0] + dtype[-2:]:4}  {w / GB:7.2f}  {ad / GB:20.3f}"
            full = None
            for sec in seconds:
                frames = int(sec * 50)
                act = cal.get(dtype, cal.get("float32", 1.0)) * n * musicgen_activation_bytes(
                    shape, 1, frames, item
                ) + 3 * 4 * 4 * frames * 2048  # fmt: skip
                row += f"  {act / GB:8.2f}  {(w + ad + act) / GB:9.2f}"
                if full is None:
                    full = 4 * total * 4 + act / item * 4
            if dtype == "float32":
                row += f"  ({full / GB:.1f})"
            print(row)
    lo, hi = SA3_LORA_GB
    print(f"    anchor: Stable Audio 3's MLX LoRA, {lo:g}-{hi:g} GB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, one timed step (< 60 s)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (compilation)")
    p.add_argument("--sizes", default="score-base,512x8", help=f"of {', '.join(SCORE_SIZES)}")
    p.add_argument(
        "--batch",
        default="score-base=2x1024,512x8=2x256,tiny=2x128",
        help="rows x tokens per size (the base preset uses 8 x 1024)",
    )
    p.add_argument("--frames", type=int, default=500, help="musicgen frames (50 per second)")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--torch-full", action="store_true", help="also torch full fine-tuning")
    p.add_argument("--skip-musicgen", action="store_true")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecations
        result = CHILDREN[a.child[0]](json.loads(a.child[1]))
        print("RESULT " + json.dumps(result), flush=True)
        return
    sys.stdout.reconfigure(line_buffering=True)
    if a.quick:
        a.sizes, a.steps, a.frames = "tiny", 1, 50
        a.mg_layers, a.mg_fp16_layers, a.mg_full_steps = [1, 2], [1], 1
    else:
        a.mg_layers, a.mg_fp16_layers, a.mg_full_steps = [2, 4], [1, 2], 2
    a.parts, a.parts_size = (2 if a.quick else 3), a.sizes.split(",")[0]
    batches = dict(item.split("=") for item in a.batch.split(","))
    tic = time.perf_counter()
    cpu = _cpu_name()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {cpu}, {os.cpu_count()} cores, "
          f"load average {load}")  # fmt: skip
    for name in a.sizes.split(","):
        B, L = map(int, batches[name].split("x"))
        bench_score(name, SCORE_SIZES[name], B, L, a)
    est = None if a.skip_musicgen else bench_musicgen(a)
    paper_estimate(None if a.quick else est)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\n{time.perf_counter() - tic:.0f} s in all; load average {load}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
