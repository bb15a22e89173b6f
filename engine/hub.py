"""Where models come from: the score models shipped in the package, and the MusicGen family
on the Hugging Face Hub (names, pinned repositories, sizes, memory per dtype, licence),
downloaded and converted to MLX on first use into the models home.

This is the one engine module that calls `convert` (converting on first use, and the
``disco-musica convert`` command through `convert_musicgen_snapshot`).

The MusicGen catalogue:

Parameter counts are those of the transformers configurations of each checkpoint (text
encoder T5-base, EnCodec 32 kHz, and the decoder); ``tests/pipelines/test_musicgen_catalog.py``
recomputes them from the configs.  Memory is the weights alone: fp32 4 bytes, fp16/bf16 2,
and for 8-/4-bit the decoder's linear layers quantised with groups of 64 (a scale and a
bias per group, in fp16) while the rest stays in fp16.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.errors import MusicgenError, UserError
from engine.progress import Progress, ProgressFn

LICENCE = "CC-BY-NC-4.0"
NON_COMMERCIAL_WARNING = (
    "MusicGen weights are licensed CC-BY-NC 4.0: music made with them may not be used commercially"
)
TEXT_ENCODER_PARAMS = 109_628_544  # T5-base encoder
CODEC_PARAMS = 57_584_834  # EnCodec 32 kHz
GROUP_SIZE = 64
DTYPES = ("float32", "float16", "bfloat16")
QUANTIZATIONS = (8, 4)


@dataclass(frozen=True)
class MusicgenEntry:
    name: str
    repo: str
    decoder_params: int
    decoder_linear_params: int  # the part 8/4-bit quantisation applies to
    stereo: bool = False
    melody: bool = False

    @property
    def params(self) -> int:
        return self.decoder_params + TEXT_ENCODER_PARAMS + CODEC_PARAMS

    def memory_bytes(self, dtype: str = "float16", bits: int | None = None) -> int:
        """Bytes of weights in memory for ``dtype`` (and ``bits``-bit decoder linears)."""
        if bits is None:
            return self.params * (4 if dtype == "float32" else 2)
        rest = self.params - self.decoder_linear_params
        per_weight = bits / 8 + 2 * 2 / GROUP_SIZE  # packed weight + fp16 scale and bias
        return int(rest * 2 + self.decoder_linear_params * per_weight)


def _linear_params(hidden: int, layers: int, ffn: int, cross: bool, codebooks: int) -> int:
    """Weights of the decoder's linear layers: attention, feed-forward and the LM heads."""
    attention = 4 * hidden * hidden * (2 if cross else 1)
    return layers * (attention + 2 * hidden * ffn) + codebooks * hidden * 2048


CATALOG: dict[str, MusicgenEntry] = {
    e.name: e
    for e in (
        MusicgenEntry(
            "musicgen-small",
            "facebook/musicgen-small",
            419_584_000,
            _linear_params(1024, 24, 4096, True, 4),
        ),
        MusicgenEntry(
            "musicgen-medium",
            "facebook/musicgen-medium",
            1_837_556_736,
            _linear_params(1536, 48, 6144, True, 4),
        ),
        MusicgenEntry(
            "musicgen-large",
            "facebook/musicgen-large",
            3_255_382_016,
            _linear_params(2048, 48, 8192, True, 4),
        ),
        MusicgenEntry(
            "musicgen-melody",
            "facebook/musicgen-melody",
            1_384_424_448,
            _linear_params(1536, 48, 6144, False, 4),
            melody=True,
        ),
        MusicgenEntry(
            "musicgen-stereo-small",
            "facebook/musicgen-stereo-small",
            436_365_312,
            _linear_params(1024, 24, 4096, True, 8),
            stereo=True,
        ),
        MusicgenEntry(
            "musicgen-stereo-medium",
            "facebook/musicgen-stereo-medium",
            1_862_728_704,
            _linear_params(1536, 48, 6144, True, 8),
            stereo=True,
        ),
        MusicgenEntry(
            "musicgen-stereo-large",
            "facebook/musicgen-stereo-large",
            3_288_944_640,
            _linear_params(2048, 48, 8192, True, 8),
            stereo=True,
        ),
        MusicgenEntry(
            "musicgen-stereo-melody",
            "facebook/musicgen-stereo-melody",
            1_409_596_416,
            _linear_params(1536, 48, 6144, False, 8),
            stereo=True,
            melody=True,
        ),
    )
}


class CatalogError(UserError, ValueError):
    """An unknown model name (with suggestions)."""


def models_home() -> Path:
    """Where converted models live: $DISCO_MUSICA_HOME/models (default ~/.cache/disco-musica)."""
    root = os.environ.get("DISCO_MUSICA_HOME") or Path.home() / ".cache" / "disco-musica"
    return Path(root) / "models"


def entry(name: str) -> MusicgenEntry:
    """The catalogue entry for ``name`` (``musicgen-small`` or ``facebook/musicgen-small``)."""
    key = name.split("/")[-1]
    if key in CATALOG:
        return CATALOG[key]
    near = difflib.get_close_matches(key, list(CATALOG), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    raise CatalogError(f"unknown MusicGen model {name!r}; {hint}known: {', '.join(CATALOG)}")


def is_musicgen_name(name: str) -> bool:
    return name.split("/")[-1].startswith("musicgen")


def describe(e: MusicgenEntry) -> str:
    """One catalogue line: name, parameters, memory per dtype, features, licence."""

    def gb(b: int) -> str:
        return f"{b / 1e9:.1f} GB"

    mem = ", ".join(
        [
            f"fp32 {gb(e.memory_bytes('float32'))}",
            f"fp16 {gb(e.memory_bytes('float16'))}",
            f"8-bit {gb(e.memory_bytes(bits=8))}",
            f"4-bit {gb(e.memory_bytes(bits=4))}",
        ]
    )
    kind = " ".join(k for k, on in (("stereo", e.stereo), ("melody", e.melody)) if on) or "mono"
    return f"{e.name:24} {e.params / 1e6:6.0f} M params, {kind:13} {mem}; {LICENCE}"


# ---- the score models shipped in the package ---------------------------------------------------
ASSETS_DIR = Path(__file__).resolve().parent / "assets"
MODELS_DIR = ASSETS_DIR / "models"  # score-base, score-base-v1, basic-pitch


# ---- the user's own models (made by `disco-musica train`) -------------------------------------
TRAINED_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
CHECKPOINT_TAGS = "best, latest, round-N or step-N"


class TrainedModelError(UserError, ValueError):
    """A name or tag of a trained model that does not exist or cannot be used."""


def trained_models_dir() -> Path:
    """Where `disco-musica train` keeps the user's models: $DISCO_MUSICA_HOME/my-models, else
    the platform's user data folder's ``models`` (not a cache: these are the user's work)."""
    home = os.environ.get("DISCO_MUSICA_HOME")
    if home:
        return Path(home) / "my-models"
    import platformdirs

    return platformdirs.user_data_path("disco-musica", appauthor=False) / "models"


def trained_models() -> list[str]:
    """Names of the user's trained models (folders with a ``model.json`` card)."""
    root = trained_models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "model.json").is_file())


def split_tag(name: str) -> tuple[str, str | None]:
    """``"my-model@step-400"`` -> ("my-model", "step-400"); no ``@``: (name, None)."""
    base, sep, tag = str(name).partition("@")
    return base, (tag if sep else None)


# What makes a folder of a trained model loadable: a score model's config.json, or a MusicGen
# fine-tune's finetune.json (engine.train.musicgen: base + adapter or decoder weights).
FINETUNE_FILE = "finetune.json"  # what a MusicGen fine-tune's folder holds (engine.train.musicgen)
MODEL_MARKERS = ("config.json", FINETUNE_FILE)
TRAINED_CARD = "model.json"  # a trained model's card (engine.train.finetune, .musicgen)
TRAINED_CARD_FORMAT = 1


def _loadable(folder: Path) -> bool:
    return any((folder / marker).is_file() for marker in MODEL_MARKERS)


def resolve_trained(name: str) -> Path | None:
    """The folder a trained model's name (with an optional ``@tag``) loads, or None when no
    trained model has that name. Tags: ``best`` (the model itself: the best round's best
    weights), ``latest`` (the newest checkpoint of the last round), ``round-N`` (the best
    of round N), ``step-N`` (a kept checkpoint of the last round)."""
    base, tag = split_tag(name)
    folder = trained_models_dir() / base
    if not base or "/" in base or "\\" in base or not (folder / "model.json").is_file():
        return None
    if tag is None or tag == "best":
        try:
            current = json.loads((folder / "model.json").read_text())["current"]
        except (OSError, ValueError, KeyError, TypeError):
            raise TrainedModelError(
                f"{base}: its model.json is unreadable; pick a checkpoint ({base}@latest) or "
                "train it again"
            ) from None
        if not isinstance(current, str):  # the first round has not finished yet
            raise TrainedModelError(
                f"{base} has no finished round yet; pick a checkpoint ({base}@latest) or "
                f"finish the round (train ... --name {base} --resume)"
            )
        found = (folder / current).resolve()
        if folder.resolve() not in found.parents or not _loadable(found):
            raise TrainedModelError(f"{base}: its model.json names no model ({current!r})")
        return found
    rounds = sorted(
        (p for p in (folder / "runs").glob("round-*") if p.name[6:].isdigit()),
        key=lambda p: int(p.name[6:]),
    )
    if not rounds:
        raise TrainedModelError(f"{base} has no training runs to pick {tag!r} from")
    if tag == "latest":
        found = rounds[-1] / "checkpoint"
    elif tag.startswith("round-") and tag[6:].isdigit():
        found = folder / "runs" / f"round-{int(tag[6:])}" / "best"
    elif tag.startswith("step-") and tag[5:].isdigit():
        found = rounds[-1] / "checkpoints" / f"step-{int(tag[5:]):06d}"
    else:
        raise TrainedModelError(f"unknown checkpoint {tag!r} of {base}; use {CHECKPOINT_TAGS}")
    if not _loadable(found):
        kept = [
            f"step-{n}"
            for n in sorted(
                int(p.name[5:])
                for p in (rounds[-1] / "checkpoints").glob("step-*")
                if p.name[5:].isdigit()
            )
        ]
        have = ", ".join(["best", "latest", *(p.name for p in rounds), *kept])
        raise TrainedModelError(f"{base} has no checkpoint {tag!r}; it has: {have}")
    return found


# ---- MusicGen: find, or download and convert ---------------------------------------------------
def resolve_model(name_or_path: str, *, progress: ProgressFn | None = None) -> Path:
    """The folder of a converted MusicGen model, converting (or downloading) it if needed.

    A converted folder is used as it is; a transformers snapshot folder is converted once into
    the models home; a catalogue name is looked up there and, the first time, downloaded from
    the Hugging Face Hub (pinned revision) and converted.
    """
    from convert.errors import ConversionError, HubUnreachableError

    p = Path(name_or_path).expanduser()
    if p.exists():
        cfg = p / "config.json"
        if not p.is_dir() or not cfg.is_file():
            raise MusicgenError(
                f"{p} is not a MusicGen model folder (no config.json); give a model name such "
                "as musicgen-small or a folder made by `disco-musica convert musicgen`"
            )
        try:
            raw = json.loads(cfg.read_text())
        except (OSError, ValueError) as e:
            raise MusicgenError(f"{cfg} cannot be read ({e}); re-convert the model") from None
        if raw.get("model_type") not in ("musicgen", "musicgen_melody"):
            raise MusicgenError(
                f"{p} is not a MusicGen model (model_type {raw.get('model_type')!r})"
            )
        if "disco_musica" in raw:
            return p
        out = models_home() / f"{p.resolve().name}-mlx"
        if not (out / "config.json").is_file():
            try:
                _convert(str(p), out, progress)
            except UserError:
                raise
            except (ValueError, KeyError, TypeError) as e:  # a config or weights that do not fit
                raise MusicgenError(_not_a_snapshot(p, _first_line(e))) from None
        return out
    try:
        found = entry(str(name_or_path))
    except CatalogError as e:
        raise MusicgenError(str(e)) from None
    out = models_home() / found.name
    if (out / "config.json").is_file():
        return out
    try:
        _convert(found.repo, out, progress)
    except HubUnreachableError as e:
        raise MusicgenError(
            f"{found.name} is not on this computer yet and could not be downloaded: {e.reason}; "
            f"connect to the internet once, or get the snapshot of {found.repo} (the files of "
            f"huggingface.co/{found.repo}) elsewhere and convert it here with `disco-musica "
            "convert musicgen /path/to/snapshot --out DIR`, then pass --model DIR"
        ) from None
    except ConversionError:
        raise
    except Exception as e:  # network, Hub or disk trouble: one line with the way out
        shutil.rmtree(out, ignore_errors=True)
        raise MusicgenError(
            f"{found.name} is not on this computer yet and could not be downloaded from "
            f"{found.repo} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "connect to the internet once, or convert it elsewhere with `disco-musica convert "
            f"musicgen {found.repo} --out DIR` and pass --model DIR"
        ) from None
    return out


def _not_a_snapshot(folder: Path, why: str) -> str:
    return (
        f"{folder} is not a usable MusicGen model ({why}); give a model name such as "
        "musicgen-small, a folder made by `disco-musica convert musicgen`, or a complete "
        "transformers snapshot"
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _convert(src: str, out: Path, progress: ProgressFn | None) -> None:
    from convert.musicgen import convert_musicgen

    if progress:
        progress(Progress("converting", 0, 1))
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        convert_musicgen(src, tmp)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if progress:
        progress(Progress("converting", 1, 1))


def check_musicgen_source(source: str, **options) -> None:
    """Check a snapshot folder or Hub id before anything is written (`convert.musicgen`)."""
    from convert.musicgen import check_source

    check_source(source, **options)


def convert_musicgen_snapshot(source: str, out: Path, **options) -> None:
    """Convert a transformers MusicGen snapshot (folder or Hub id) into ``out`` (MLX)."""
    from convert.musicgen import convert_musicgen

    convert_musicgen(source, out, **options)


def converted_file_names() -> set[str]:
    """The files a converted MusicGen folder holds (what `convert` writes)."""
    from convert.musicgen import EXTRA_FILES, TOKENIZER_FILES

    return {"config.json", "model.safetensors", *TOKENIZER_FILES, *EXTRA_FILES}
