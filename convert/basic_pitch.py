"""basic-pitch's ONNX model (``nmp.onnx``) -> MLX folder for ``engine.models.basic_pitch``.

    convert_basic_pitch("…/basic_pitch/saved_models/icassp_2022/nmp.onnx", Path("out"))

Reads only the initializers of the ONNX graph (the ``onnx`` package; no TensorFlow, no
onnxruntime), finds each tensor by the node that uses it rather than by TensorFlow's long
generated names, checks the graph's fixed settings (CQT hop, harmonic shifts, log epsilon)
against ``ModelArgs``, and writes ``model.safetensors`` + ``config.json``. The weights shipped
in ``engine/assets/models/basic-pitch`` were made this way from basic-pitch 0.4.0.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from convert.errors import ConversionError
from engine.atomic import write_text_atomic
from engine.models.basic_pitch import Model, ModelArgs

SOURCE = "basic-pitch 0.4.0, saved_models/icassp_2022/nmp.onnx (Spotify, Apache-2.0)"

# The six convs of the CNN, told apart by kernel size, stride and channels (ONNX [O, C, KH, KW]).
CONVS = {
    "contour_conv": ((3, 39), (1, 1), (8, 8)),
    "contour_out": ((5, 5), (1, 1), (1, 8)),
    "note_conv": ((7, 7), (1, 3), (32, 1)),
    "note_out": ((7, 3), (1, 1), (1, 32)),
    "onset_conv": ((5, 5), (1, 3), (32, 8)),
    "onset_out": ((3, 3), (1, 1), (1, 33)),
}


def convert_basic_pitch(onnx_path: str | Path, out_dir: str | Path) -> Path:
    """Convert ``onnx_path`` into ``out_dir`` (created if missing); return ``out_dir``.

    Raises ``ConversionError`` when the graph is not the Basic Pitch model this port knows.
    """
    import onnx
    from onnx import numpy_helper

    onnx_path, out = Path(onnx_path), Path(out_dir)
    if not onnx_path.is_file():
        raise ConversionError(f"{onnx_path} does not exist; give basic-pitch's nmp.onnx")
    try:
        graph = onnx.load(str(onnx_path)).graph
    except Exception as e:  # protobuf's DecodeError and friends
        raise ConversionError(f"{onnx_path} is not a readable ONNX model ({e})") from e
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    args = ModelArgs()
    weights = _find_weights(graph, inits, args)

    model = Model(args)
    weights = model.sanitize({k: mx.array(np.ascontiguousarray(v)) for k, v in weights.items()})
    expected = {k: tuple(v.shape) for k, v in tree_flatten(model.parameters())}
    missing = sorted(set(expected) - set(weights))
    wrong = sorted(
        f"{k} {tuple(v.shape)} (expected {expected[k]})"
        for k, v in weights.items()
        if k in expected and tuple(v.shape) != expected[k]
    )
    if missing or wrong:
        raise ConversionError(
            f"{onnx_path} does not fit the Basic Pitch model: missing {missing}, wrong {wrong}"
        )

    out.mkdir(parents=True, exist_ok=True)
    _save_safetensors_atomic(out / "model.safetensors", weights)
    config = {**asdict(args), "source": SOURCE}
    write_text_atomic(out / "config.json", json.dumps(config, indent=2) + "\n")
    return out


def _find_weights(graph, inits: dict[str, np.ndarray], args: ModelArgs) -> dict[str, np.ndarray]:
    """Our parameter names -> ONNX initializers (ONNX layouts), found through the nodes."""
    from onnx import helper

    def attr(node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    weights: dict[str, np.ndarray] = {}
    problems: list[str] = []
    cqt_real, cqt_imag, lowpass, hops = set(), set(), set(), set()
    for node in graph.node:
        if node.op_type != "Conv" or node.input[1] not in inits:
            continue
        w = inits[node.input[1]]
        kernel, strides = tuple(attr(node, "kernel_shape")), tuple(attr(node, "strides"))
        if kernel == (1, args.cqt_kernel_size) and w.shape[0] == args.bins_per_octave:
            negated = any(c.op_type == "Neg" for c in consumers.get(node.output[0], []))
            (cqt_imag if negated else cqt_real).add(node.input[1])
            hops.add(strides[1])
        elif kernel == (1, args.lowpass_taps) and w.shape[0] == 1:
            lowpass.add(node.input[1])
        else:
            for name, (k, s, (o, c)) in CONVS.items():
                if (kernel, strides, w.shape[:2]) == (k, s, (o, c)):
                    weights[f"{name}.weight"] = w
                    weights[f"{name}.bias"] = inits[node.input[2]]
                    break
            else:
                problems.append(f"an unknown Conv {kernel} stride {strides} of shape {w.shape}")
    for what, names, key in (
        ("CQT real filters", cqt_real, "cqt.kernel_real"),
        ("CQT imaginary filters", cqt_imag, "cqt.kernel_imag"),
        ("low-pass filter", lowpass, "cqt.lowpass"),
    ):
        if len(names) != 1:
            problems.append(f"{len(names)} tensors look like the {what}")
        else:
            weights[key] = inits[names.pop()]
    expected_hops = {args.hop_length >> i for i in range(args.n_octaves)}
    if hops != expected_hops:
        problems.append(f"CQT hops {sorted(hops)}, expected {sorted(expected_hops)}")

    # sqrt(filter lengths): multiplies the CQT [.., 309, 1, 1]; the input batch norm: a Mul by
    # a [1] tensor whose result goes into an Add of a [1] tensor
    for node in graph.node:
        if node.op_type != "Mul":
            continue
        for name in node.input:
            v = inits.get(name)
            if v is not None and v.shape == (args.n_cqt_bins, 1, 1):
                weights["cqt.length_scale"] = v
            if v is not None and v.shape == (1,):
                for nxt in consumers.get(node.output[0], []):
                    shift = [inits[i] for i in nxt.input if i in inits]
                    if nxt.op_type == "Add" and len(shift) == 1 and shift[0].shape == (1,):
                        weights["input_bn.weight"], weights["input_bn.bias"] = v, shift[0]
    eps = [v for n, v in inits.items() if "normalized_log" in n and "add" in n.lower()]
    if eps and not np.isclose(float(eps[0]), args.log_eps, rtol=1e-6):
        problems.append(f"log epsilon {float(eps[0])}, expected {args.log_eps}")
    pads = sorted(
        int(v[6] or -v[2])
        for n, v in inits.items()
        if n.startswith("pad_const") and v.shape == (8,) and (v[2] or v[6])
    )
    shifts = sorted(s for s in args.harmonic_shifts if s)
    if pads != shifts:
        problems.append(f"harmonic shifts {pads}, expected {shifts}")
    for key in ("cqt.length_scale", "input_bn.weight"):
        if key not in weights:
            problems.append(f"no tensor looks like {key}")
    if problems:
        raise ConversionError("not the Basic Pitch ICASSP 2022 graph: " + "; ".join(problems))
    return {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}


def _save_safetensors_atomic(file: Path, tensors: dict[str, mx.array]) -> None:
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.stem}.", suffix=".safetensors")
    os.close(fd)
    try:
        mx.save_safetensors(tmp, tensors, metadata={"format": "mlx", "source": SOURCE})
        os.chmod(tmp, 0o644)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
