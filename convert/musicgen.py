"""transformers MusicGen checkpoint (Hub repo or local snapshot) -> MLX model folder.

    convert_musicgen("facebook/musicgen-small", Path("models/musicgen-small"), dtype="float16")

Reads ``config.json`` and the weights (``model.safetensors``, sharded safetensors with their
index, or ``pytorch_model.bin``; the last needs torch, imported only then), renames them to
`engine.models.musicgen` names (`engine.models.musicgen.sanitize`; the EnCodec part through
`convert.encodec.convert_encodec_weights`), checks every tensor against the model the config
describes, and writes ``config.json``, ``model.safetensors`` and the tokenizer files.

Precision: the decoder (and the conditioning projections) take ``dtype``; the T5 text encoder
stays float32 when ``dtype`` is float16 (T5 activations overflow float16, which is why
transformers keeps T5's ``wo`` in float32), and the EnCodec codec always stays float32 (it is
small, and its output is the audio itself). ``quantize`` (4 or 8 bits) applies to the
decoder's linear layers only, in groups of `QUANT_GROUP_SIZE`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from convert.encodec import convert_encodec_weights
from convert.errors import ConversionError, HubUnreachableError
from engine.atomic import write_text_atomic
from engine.models.musicgen import (
    QUANT_GROUP_SIZE,
    MusicgenConfig,
    MusicgenModel,
    quantize_decoder,
    sanitize,
)

# Hub revisions to download. Two are pinned to commits that public transformers-format code
# loads from its Hugging Face cache (snapshot folder names); the others could not be looked
# up from the build machines (no Hub access) and follow "main" until someone with access pins
# them (`huggingface_hub.model_info(repo).sha`).
PINNED_REVISIONS: dict[str, str] = {
    "facebook/musicgen-small": "4c8334b02c6ec4e8664a91979669a501ec497792",
    "facebook/musicgen-medium": "main",
    "facebook/musicgen-large": "15ccdc92099879e47b6da12c350cdb71d4eab3ca",
    "facebook/musicgen-melody": "main",
    "facebook/musicgen-stereo-small": "main",
    "facebook/musicgen-stereo-medium": "main",
    "facebook/musicgen-stereo-large": "main",
    "facebook/musicgen-stereo-melody": "main",
}

DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
TOKENIZER_FILES = (
    "tokenizer.json",
    "spiece.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
EXTRA_FILES = ("generation_config.json",)
SAFETENSORS_PATTERNS = ["*.safetensors", "model.safetensors.index.json"]
BIN_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]
MAX_NAMED = 20  # names listed in one error message before "and N more"
HUB_CHECK_TIMEOUT_S = 1.5  # one connection attempt to the Hub (or proxy) before downloading


def convert_musicgen(
    src: str | Path,
    out: Path,
    *,
    dtype: str = "float32",
    quantize: int | None = None,
    revision: str | None = None,
) -> Path:
    """Convert a transformers MusicGen checkpoint into the MLX folder ``out``; return ``out``.

    Args:
        src: a local snapshot folder, or a Hub repo id (downloaded with
            ``huggingface_hub.snapshot_download``, which honours ``HF_HUB_OFFLINE`` and the
            Hugging Face cache).
        dtype: "float32", "float16" or "bfloat16" for the decoder (see the module docstring).
        quantize: 4 or 8 to quantize the decoder's linear layers; None keeps them in ``dtype``.
        revision: Hub revision; defaults to the `PINNED_REVISIONS` entry, else "main".

    Raises:
        ConversionError: the checkpoint does not fit its config; every missing, unexpected or
            mis-shaped tensor is named in one message.
    """
    snapshot, source, revision, raw = check_source(
        src, dtype=dtype, quantize=quantize, revision=revision
    )
    config = MusicgenConfig.from_dict(raw)
    state = _read_weights(snapshot)
    weights = convert_musicgen_weights(state, raw, config)
    del state

    model = MusicgenModel(config)
    model.load_weights(list(_cast(weights, config, DTYPES[dtype]).items()), strict=True)
    quantization = None
    if quantize:
        quantize_decoder(model.decoder, quantize, QUANT_GROUP_SIZE)
        quantization = {"bits": quantize, "group_size": QUANT_GROUP_SIZE}
    tensors = dict(tree_flatten(model.parameters()))
    tensors.update({k: mx.array(v) for k, v in weights.items() if k.startswith("audio_encoder.")})
    mx.eval(tensors)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _save_safetensors_atomic(out / "model.safetensors", tensors)
    raw["disco_musica"] = {
        "dtype": dtype,
        "quantization": quantization,
        "source": source,
        "revision": revision,
    }
    write_text_atomic(out / "config.json", json.dumps(raw, indent=2) + "\n")
    for name in (*TOKENIZER_FILES, *EXTRA_FILES):
        if (snapshot / name).is_file():
            shutil.copyfile(snapshot / name, out / name)
    return out


def convert_musicgen_weights(
    state: dict[str, np.ndarray], raw_config: dict[str, Any], config: MusicgenConfig
) -> dict[str, np.ndarray]:
    """transformers tensors -> `MusicgenModel` names, plus ``audio_encoder.*`` for the codec.

    Raises `ConversionError` naming all missing, unexpected and mis-shaped tensors.
    """
    problems: list[str] = []
    core = sanitize({k: v for k, v in state.items() if not k.startswith("audio_encoder.")})
    expected = {k: tuple(v.shape) for k, v in tree_flatten(MusicgenModel(config).parameters())}
    missing = sorted(set(expected) - set(core))
    unexpected = sorted(set(core) - set(expected))
    wrong = sorted(
        f"{k} {tuple(v.shape)} (expected {expected[k]})"
        for k, v in core.items()
        if k in expected and tuple(v.shape) != expected[k]
    )
    for what, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            problems.append(f"{what}: {_names(items)}")
    try:
        codec = convert_encodec_weights(state, raw_config["audio_encoder"], prefix="audio_encoder.")
    except ConversionError as e:
        problems.append(str(e))
        codec = {}
    if problems:
        raise ConversionError("MusicGen weights do not fit the config; " + "; ".join(problems))
    out = dict(core)
    out.update({f"audio_encoder.{k}": v for k, v in codec.items()})
    return out


def _cast(weights: dict[str, np.ndarray], config: MusicgenConfig, dtype: mx.Dtype) -> dict:
    """MLX arrays for the non-codec weights, in the precision each part is kept at."""
    text_dtype = mx.float32 if dtype == mx.float16 else dtype
    out = {}
    for k, v in weights.items():
        if k.startswith("audio_encoder."):
            continue
        a = mx.array(v)
        if mx.issubdtype(a.dtype, mx.floating):
            a = a.astype(text_dtype if k.startswith("text_encoder.") else dtype)
        out[k] = a
    return out


def check_source(
    src: str | Path,
    *,
    dtype: str = "float32",
    quantize: int | None = None,
    revision: str | None = None,
) -> tuple[Path, str, str | None, dict]:
    """Everything `convert_musicgen` checks before it writes anything: the settings, the
    snapshot (a folder, or a Hub id found in the cache or downloaded) and its config.
    Returns (snapshot folder, source name, revision, config); raises `ConversionError`."""
    if dtype not in DTYPES:
        raise ConversionError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if quantize not in (None, 4, 8):
        raise ConversionError(f"quantize must be 4, 8 or None, not {quantize!r}")
    if not str(src).strip():
        raise ConversionError(
            "no checkpoint given: name a snapshot folder or a Hub id such as "
            "facebook/musicgen-small"
        )
    snapshot, source, revision = _snapshot(src, revision)
    try:
        raw = json.loads((snapshot / "config.json").read_text())
    except (OSError, ValueError):
        raise ConversionError(f"{source}/config.json is not a JSON config") from None
    if not isinstance(raw, dict) or raw.get("model_type") not in ("musicgen", "musicgen_melody"):
        kind = raw.get("model_type") if isinstance(raw, dict) else None
        raise ConversionError(f"{source} is not a MusicGen checkpoint (model_type {kind!r})")
    try:
        MusicgenConfig.from_dict(raw)
    except ValueError as e:  # the config lacks a part MusicGen needs
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConversionError(
            f"{source}/config.json is not a usable MusicGen config ({first})"
        ) from None
    return snapshot, source, revision, raw


def _snapshot(src: str | Path, revision: str | None) -> tuple[Path, str, str | None]:
    """(local folder, source name, revision) for a folder or a Hub repo id."""
    path = Path(src)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConversionError(f"{path} has no config.json: not a transformers snapshot")
        return path, str(path), revision
    repo = str(src)
    if str(src).startswith((".", "/", "~")) or repo.count("/") != 1:
        raise ConversionError(
            f"{src} is neither a folder nor a Hub repo id like facebook/musicgen-small"
        )
    import huggingface_hub

    revision = revision or PINNED_REVISIONS.get(repo) or "main"
    base = ["config.json", *EXTRA_FILES, *TOKENIZER_FILES]
    offline = _hub_offline_reason()
    with _quiet_hub(bars=offline is None):

        def download(patterns: list[str]) -> Path:
            return Path(
                huggingface_hub.snapshot_download(
                    repo,
                    revision=revision,
                    allow_patterns=patterns,
                    **({"local_files_only": True} if offline else {}),
                )
            )

        try:
            folder = download(base + SAFETENSORS_PATTERNS)
            if not any(folder.glob("*.safetensors")):  # older repos only have pytorch_model.bin
                folder = download(base + BIN_PATTERNS)
        except ConversionError:
            raise
        except Exception as e:
            if offline is None:  # online, yet the Hub refused: a wrong name, a dropped line
                first = str(e).splitlines()[0] if str(e) else ""
                raise ConversionError(
                    f"cannot download {repo} (revision {revision}) from the Hugging Face Hub "
                    f"({type(e).__name__}: {first}); check the name and the connection, or "
                    "convert a snapshot folder: `disco-musica convert musicgen /path/to/snapshot "
                    "--out DIR`"
                ) from None
            raise HubUnreachableError(
                f"cannot download {repo}: {offline}; get its snapshot (the files of "
                f"huggingface.co/{repo}) on a computer that is online, copy the folder here and "
                "run `disco-musica convert musicgen /path/to/snapshot --out DIR`",
                offline,
            ) from None
    return folder, repo, revision


def _hub_offline_reason() -> str | None:
    """Why the Hub cannot be reached, in a few words, or None when it can be tried.

    ``HF_HUB_OFFLINE`` is honoured; otherwise one TCP connection to the Hub's host (or to the
    proxy that would carry the download) is tried for at most `HUB_CHECK_TIMEOUT_S`,
    name lookup included, instead of huggingface_hub's retries (five, about 25 s, each one
    logged). When it fails, only the Hugging Face cache is used.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set and the files are not in the Hugging Face cache"
    url = urllib.parse.urlsplit(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
    proxy = urllib.request.getproxies().get(url.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        purl = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = purl.hostname or host, purl.port or 8080
    if _can_connect(host, port, HUB_CHECK_TIMEOUT_S):
        return None
    return f"no network connection to {url.hostname or host} (the Hugging Face Hub)"


def _can_connect(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to host:port opens within ``timeout`` seconds (the name lookup,
    which socket timeouts do not cover, runs in a thread that is waited for as long)."""
    done: list[bool] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            done.append(True)
        except Exception:  # OSError, socket.gaierror, a timeout: not reachable
            done.append(False)

    worker = threading.Thread(target=attempt, daemon=True, name="hub-check")
    worker.start()
    worker.join(timeout + 0.25)
    return bool(done and done[0])


@contextlib.contextmanager
def _quiet_hub(*, bars: bool) -> Iterator[None]:
    """huggingface_hub's retry messages and warnings stay off the terminal while it looks in
    its cache or downloads; its tqdm bars too unless ``bars`` (a real download, gigabytes:
    its progress is worth showing)."""
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    logger = logging.getLogger("huggingface_hub")
    level, bars_off = logger.level, are_progress_bars_disabled()
    logger.setLevel(logging.ERROR)
    if not bars:
        disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
        if not bars and not bars_off:
            enable_progress_bars()


def _read_weights(folder: Path) -> dict[str, np.ndarray]:
    """Every tensor of the snapshot as numpy (bfloat16 widened to float32)."""
    files = sorted(folder.glob("*.safetensors"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [folder / s for s in shards]
    if files:
        state: dict[str, np.ndarray] = {}
        for f in files:
            for k, v in mx.load(str(f)).items():
                state[k] = np.array(v.astype(mx.float32) if v.dtype == mx.bfloat16 else v)
        return state
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if bins:
        return _read_torch_bins(bins)
    raise ConversionError(f"{folder} has no model.safetensors or pytorch_model.bin weights")


def _read_torch_bins(files: list[Path]) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as e:
        raise ConversionError(
            "This snapshot stores its weights as pytorch_model.bin, which needs torch to read: "
            "pip install torch (or use a snapshot with model.safetensors)"
        ) from e
    state: dict[str, np.ndarray] = {}
    for f in files:
        for k, t in torch.load(f, weights_only=True, map_location="cpu").items():
            t = t.float() if t.dtype == torch.bfloat16 else t
            state[k] = t.numpy()
    return state


def _save_safetensors_atomic(file: Path, tensors: dict[str, mx.array]) -> None:
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.stem}.", suffix=".safetensors")
    os.close(fd)
    try:
        mx.save_safetensors(tmp, tensors, metadata={"format": "mlx"})
        os.chmod(tmp, 0o644)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    more = len(items) - MAX_NAMED
    return f"{shown} and {more} more" if more > 0 else shown
