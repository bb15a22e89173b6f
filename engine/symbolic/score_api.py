"""Python API of the symbolic score model.

>>> from engine.symbolic.score_api import load
>>> model = load("score-base")                      # ships inside the package
>>> piece = model.generate(style="chorale", key="G", mode="major", bars=8, seed=1)
>>> piece.save_midi("chorale.mid")
>>> satb = model.add_tracks("melody.mid", parts=["alto", "tenor", "bass"], style="chorale")
>>> longer = model.continue_score("sketch.mid", bars=4)
>>> varied = model.regenerate_bars("piece.mid", start_bar=4, end_bar=5)

Every call takes keyword-only parameters with named defaults and returns a
:class:`GeneratedScore` (a symusic score plus the tokens and settings that made it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from symusic import KeySignature, Note, Score, TextMeta
from symusic import Track as SymTrack

from engine import hub, names
from engine.atomic import write_bytes_atomic
from engine.errors import ScoreModelError, one_line
from engine.progress import Progress, ProgressFn
from engine.seeds import check_seed, derive_seed
from engine.symbolic.grammar import GrammarError, ScoreGrammar, TrackPlan
from engine.symbolic.midi import midi_bytes, read_midi, source_name
from engine.symbolic.steer import Steering
from engine.symbolic.tokenizer import (
    CONDITION_VALUES,
    MAX_VOICES,
    METERS,
    PITCH_RANGE,
    REGISTER_NAMES,
    STYLES,
    TEMPO_BAND_DEFAULT_BPM,
    TONICS,
    ScoreTokenizer,
    TokenizerError,
    Track,
    register_of,
    tempo_band,
    tonic_index,
)

MODELS_DIR = hub.MODELS_DIR
DEFAULT_MODEL = names.DEFAULT_MODEL
DEFAULT_TEMPERATURE = names.DEFAULT_TEMPERATURE
DEFAULT_TOP_K = names.DEFAULT_TOP_K
DEFAULT_TOP_P = names.DEFAULT_TOP_P
DEFAULT_BARS = names.DEFAULT_BARS
DEFAULT_CONTINUE_BARS = names.DEFAULT_CONTINUE_BARS
DEFAULT_SEED = 0
# Logit bonus for pitches of the requested key's scale (0 = the model alone). The model
# follows its Key condition only partly; this documented nudge makes keys audible.
DEFAULT_KEY_STRENGTH = names.DEFAULT_KEY_STRENGTH
MAX_KEY_STRENGTH = names.MAX_KEY_STRENGTH
# Extra shares of key_strength for the degrees that make a key heard as itself rather than
# its relative or mediant key (music21's key finders weigh the tonic most, then the fifth):
# tonic, fifth, third, each at most DEGREE_BONUS_CAP logits (a strong key bonus must not
# pin the parts to the tonic). In minor the third is what tells the key from its parallel
# major, which the model leans to (its modal corpus ends minor pieces on a major chord): with
# the major shares, 9 of 210 sketches were heard in the parallel major (2 since 0.10.0), so in
# minor the third gets as much as the tonic, which gives up as much as the third gains
# (keeping the pitch-class variety; a third of 0.6 beside the tonic's 0.6 lowered it on the
# prompts of `eval prompts`). In major a larger third share only helps the relative minor,
# whose fifth it is. In minor the raised 6th (melodic minor) gets half the scale's bonus.
DEGREE_BONUS = {0: 0.6, 7: 0.3, "third": 0.15}
MINOR_DEGREE_BONUS = {0: 0.45, 7: 0.3, "third": 0.45}
DEGREE_BONUS_CAP = 0.9
RAISED_SIXTH_SHARE = 0.5
MAX_TEMPERATURE = names.MAX_TEMPERATURE
# A model's own calibration of the key bonus (`key_strength_scale`): config.json's key.
KEY_SCALE_KEY = "key_strength_scale"
MAX_KEY_SCALE = 2.0
TOKENS_PER_BAR_ESTIMATE = 20  # one voice, one bar: a generous average over the corpus
# Sections of a piece longer than one window (`ScoreModel._next_section`): a new bar is
# reckoned at NEW_BAR_MARGIN times the mean tokens of the last RECENT_BARS bars; the kept
# bars take at most PREFIX_SHARE of the window when the new bars need more; WINDOW_SLACK
# tokens are left over.
RECENT_BARS = 8
NEW_BAR_MARGIN = 1.5
PREFIX_SHARE = 0.4
WINDOW_SLACK = 8
MAX_BARS = names.MAX_BARS
MIN_TEMPO_BPM = names.MIN_TEMPO_BPM
MAX_TEMPO_BPM = names.MAX_TEMPO_BPM
VOCAL_PROGRAMS = (52, 53, 54)
MAX_SEED = names.MAX_SEED  # as the command line's --seed
MAX_TOP_K = 2**31 - 1  # top_k's limit before a model (its vocabulary) is known
SCORE_MODEL_TYPE = "score"  # config.json "model_type" of a score model
TRANSCRIPTION_MODELS = {"basic_pitch": "the transcription model (disco-musica transcribe)"}
SIDECAR_SUFFIX = names.SIDECAR_SUFFIX
# A text marker at tick 0 of every MIDI file the score model writes: what it was conditioned
# on, so that `continue_score` and `add_tracks` can keep the style of a file made here.
MARKER_PREFIX = "disco-musica:"
# Part names accepted by add_tracks → register index (see engine.symbolic.tokenizer.REGISTER_NAMES).
PART_REGISTERS = {
    "soprano": 4,
    "melody": 4,
    "alto": 3,
    "tenor": 2,
    "bass": 1,
    "bassline": 1,
    "high": 5,
    "low": 0,
    "mezzo": 4,
    "baritone": 1,
}

# Pitch range (MIDI, inclusive) that generated notes of a named part keep to: the usual
# choral ranges, a little widened; the grammar masks pitches outside.
PART_RANGES = {
    "soprano": (59, 84),
    "melody": (55, 91),
    "alto": (52, 77),
    "tenor": (45, 70),
    "bass": (36, 64),
    "bassline": (28, 60),
    "high": (67, 108),
    "low": (21, 57),
    "mezzo": (55, 79),
    "baritone": (41, 67),
}
# Default layout of small ensembles (top to bottom), as in four-part writing.
DEFAULT_PARTS = {
    2: ("soprano", "bass"),
    3: ("soprano", "alto", "bass"),
    4: ("soprano", "alto", "tenor", "bass"),
    5: ("soprano", "mezzo", "alto", "tenor", "bass"),
    6: ("soprano", "mezzo", "alto", "tenor", "baritone", "bass"),
    7: ("soprano", "soprano", "mezzo", "alto", "tenor", "baritone", "bass"),
    8: ("soprano", "soprano", "mezzo", "alto", "alto", "tenor", "baritone", "bass"),
}
# Parts a style writes when the number of voices is not asked for (as the corpus does).
STYLE_VOICES = names.STYLE_VOICES
# Median pitch a Register token stands for (engine.symbolic.tokenizer.register_of's bands).
REGISTER_CENTRES = (38, 49, 56, 63, 70, 79)


@dataclass
class GeneratedScore:
    """The result of a generation call."""

    score: Score
    tokens: list[int]
    conditions: dict[str, str]
    finish_reason: str
    settings: dict = field(default_factory=dict)

    @property
    def num_tracks(self) -> int:
        return len(self.score.tracks)

    def to_midi_bytes(self) -> bytes:
        return midi_bytes(self.score)

    def save_midi(self, path: str | Path) -> Path:
        """Write a standard MIDI file atomically; return its path."""
        if not isinstance(path, str | Path) or not str(path):
            raise ScoreModelError(f"save_midi needs a file path, not {path!r}")
        path = Path(path)
        if path.is_dir():
            raise ScoreModelError(f"{path} is a folder; give a file name such as {path / 'x.mid'}")
        if not path.parent.is_dir():
            raise ScoreModelError(
                f"the folder {path.parent} does not exist; create it or choose another path"
            )
        data = self.to_midi_bytes()
        try:
            return write_bytes_atomic(path, data)
        except OSError as e:
            reason = (e.strerror or str(e)).lower()
            raise ScoreModelError(f"cannot write {path}: {reason}; choose another path") from None


def _model_config(folder: Path) -> dict | None:
    """The folder's config.json as a dict, or None if it has none or it is not a JSON object."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _is_score_model(folder: Path) -> bool:
    config = _model_config(folder)
    return (
        config is not None
        and config.get("model_type", SCORE_MODEL_TYPE) == SCORE_MODEL_TYPE
        and (folder / "tokenizer").is_dir()
    )


def available_models() -> list[str]:
    """Names of the score models shipped in ``engine/assets/models`` (not other models)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if _is_score_model(p))


def _not_a_score_model(folder: Path, shown: str) -> str | None:
    """Why ``folder`` (a name or folder given as ``shown``) is not a score model, or None."""
    hint = "give a score model folder or a name from `disco-musica models`"
    if (folder / "finetune.json").is_file():
        return (
            f"{shown} is a MusicGen model (made by `disco-musica train musicgen`), not a score "
            f'model: it makes audio with `disco-musica generate --model {shown} "..."`'
        )
    config_file = folder / "config.json"
    if not config_file.is_file():
        return f"{shown} is not a score model: it has no config.json; {hint}"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return f"{shown} is not a score model: its config.json is not valid JSON; {hint}"
    if not isinstance(config, dict):
        return f"{shown} is not a score model: its config.json is not a JSON object; {hint}"
    kind = config.get("model_type", SCORE_MODEL_TYPE)
    if kind in TRANSCRIPTION_MODELS:
        return f"{shown} is {TRANSCRIPTION_MODELS[kind]}, not a score model; {hint}"
    if kind != SCORE_MODEL_TYPE:
        return f"{shown} is not a score model: config.json names model_type {kind!r}; {hint}"
    if not (folder / "tokenizer").is_dir():
        return f"{shown} is not a score model: it has no tokenizer folder; {hint}"
    if (folder / "adapter_config.json").is_file():
        if not (folder / "adapters.safetensors").is_file():
            return f"{shown} is a LoRA adapter without its adapters.safetensors; {hint}"
        return None
    if not (folder / "model.safetensors").is_file():
        return f"{shown} is not a score model: it has no model.safetensors; {hint}"
    return None


def installed_weights() -> dict[str, str]:
    """Shipped score model name -> SHA-256 of its weights (of the models installed now; each
    file hashed once per version of it)."""
    from engine.atomic import sha256_file_cached

    return {
        n: sha256_file_cached(MODELS_DIR / n / "model.safetensors")
        for n in available_models()
        if (MODELS_DIR / n / "model.safetensors").is_file()
    }


def folder_with_weights(name: str, sha256: str | None) -> Path:
    """The folder of score model ``name``, or, when its weights are no longer ``sha256``, the
    shipped model that holds those weights (``score-base-v1`` for the weights ``score-base``
    has shipped since 0.1.0, once it holds others): a LoRA adapter or a model trained on a
    shipped base keeps the base it was trained on when the name moves on. When no shipped
    model holds them, ``name``'s folder (the caller then names the mismatch). Raises
    `ScoreModelError` for an unknown name."""
    folder = resolve_model_path(name)
    if not sha256 or _weights_sha256(folder) == sha256:
        return folder
    holders = sorted(n for n, s in installed_weights().items() if s == sha256)
    holders.sort(key=lambda n: (not n.startswith(f"{name}-"), n))
    return MODELS_DIR / holders[0] if holders else folder


def _weights_sha256(folder: Path) -> str | None:
    """Of a full model folder's weights (a LoRA base is one; `model_versions.weights_sha256`,
    which depends on this module, also hashes adapter folders)."""
    from engine.atomic import sha256_file_cached

    path = Path(folder) / "model.safetensors"
    return sha256_file_cached(path) if path.is_file() else None


def _load_with_adapter(folder: Path):
    """A LoRA folder: its base model (named in adapter_config.json, checked by hash) with the
    adapter put on and fused (W + scale * B^T A^T), so generating costs what the base does."""
    from engine.models import load_model, lora

    base = lora.read_config(folder).get("base_model") or {}
    want = base.get("sha256")
    try:
        base_path = folder_with_weights(base.get("path") or base.get("name") or "", want)
    except ScoreModelError:
        base_path = folder_with_weights(base.get("name") or "", want)
    if want and _weights_sha256(base_path) != want and base.get("name"):
        base_path = folder_with_weights(base["name"], want)  # the path moved on: by name
    if want and _weights_sha256(base_path) != want:
        raise ScoreModelError(
            f"{folder} is a LoRA adapter for another version of {base.get('name')!r} (its "
            "weights differ from the ones it was trained on); fuse it where it was made "
            "(`disco-musica train fuse`) or train it again"
        )
    model, config = load_model(base_path)
    lora.load(model, folder)
    lora.fuse(model)
    return model, config


def resolve_model_path(name_or_path: str | Path) -> Path:
    if not isinstance(name_or_path, str | Path) or not str(name_or_path).strip():
        raise ScoreModelError(
            f"the model must be a name or a folder, not {name_or_path!r}; see `disco-musica models`"
        )
    name = str(name_or_path)
    p = Path(name_or_path)
    candidates = [p]
    if "/" not in name and "\\" not in name:
        candidates.append(MODELS_DIR / name)
        if not any((c / "config.json").is_file() for c in candidates):
            try:
                trained = hub.resolve_trained(name)  # the user's own (`disco-musica train`)
            except hub.TrainedModelError as e:
                raise ScoreModelError(str(e)) from None
            if trained is not None:
                candidates.append(trained)
    # First a folder with a config.json, else any folder of that name (to say what it lacks).
    found = [c for c in candidates if (c / "config.json").is_file()]
    found += [c for c in candidates if c.is_dir()]
    if found:
        problem = _not_a_score_model(found[0], name)
        if problem:
            raise ScoreModelError(problem)
        return found[0]
    known = available_models() + hub.trained_models()
    import difflib

    near = difflib.get_close_matches(str(name_or_path), known, n=3)
    hint = (
        f"; did you mean {', '.join(near)}?" if near else f"; known: {', '.join(known) or 'none'}"
    )
    raise ScoreModelError(f"unknown score model {str(name_or_path)!r}{hint}")


def load(name_or_path: str | Path = DEFAULT_MODEL) -> ScoreModel:
    """Load a score model by name (``"score-base"``, the shipped default; see
    `available_models`) or from a model folder (``config.json``, ``model.safetensors``,
    ``tokenizer/``), e.g. one that ``disco-musica train score`` wrote.

    Returns a `ScoreModel`, whose ``generate``, ``continue_score``, ``add_tracks`` and
    ``regenerate_bars`` return a `GeneratedScore` (``.score``: a symusic Score in ticks;
    ``.save_midi(path)``). Its ``context`` is the window in tokens. Pass it as ``model=`` to
    the pipelines to load it once for many calls. Raises `ScoreModelError` (a
    `engine.errors.UserError`) for an unknown name or a folder that is not a score model.
    """
    return ScoreModel.load(name_or_path)


def check_sampling(
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int = DEFAULT_TOP_K,
    top_p: float = DEFAULT_TOP_P,
    seed: int = DEFAULT_SEED,
    key_strength: float = DEFAULT_KEY_STRENGTH,
    vocab: int | None = None,
) -> dict:
    """The sampling settings checked (no model needed); ``vocab``: the model's vocabulary
    size, top_k's upper limit (unknown before a model loads: any whole number then)."""
    temperature = _number("temperature", temperature, 0, MAX_TEMPERATURE)
    top = MAX_TOP_K if vocab is None else vocab
    if not is_int(top_k) or not 0 <= top_k <= top:
        raise ScoreModelError(f"top_k must be a whole number 0..{top} (0: no limit), not {top_k!r}")
    if not _is_number(top_p) or not 0 < top_p <= 1:
        raise ScoreModelError(f"top_p must be more than 0 and at most 1, not {top_p!r}")
    key_strength = _number("key_strength", key_strength, 0, MAX_KEY_STRENGTH)
    return {
        "temperature": temperature,
        "top_k": int(top_k),
        "top_p": float(top_p),
        "seed": check_seed(seed, ScoreModelError),
        "key_strength": key_strength,
    }


def check_conditions(
    style=None, key=None, mode=None, meter=None, tempo_bpm=None, voices=None
) -> dict[str, str]:
    """The condition values checked (no model needed): unknown names are refused."""
    c: dict[str, str] = {}
    if style is not None:
        if not isinstance(style, str) or style not in STYLES:
            import difflib

            near = difflib.get_close_matches(str(style), STYLES, n=2)
            hint = f"did you mean {' or '.join(near)}? " if near else ""
            raise ScoreModelError(
                f"unknown style {style!r}; {hint}known styles: {', '.join(STYLES)}"
            )
        c["style"] = style
    if key is not None:
        if not isinstance(key, str):
            raise ScoreModelError(f"key must be a tonic name ({', '.join(TONICS)}), not {key!r}")
        try:
            c["key"] = TONICS[tonic_index(key)]
        except TokenizerError as e:
            raise ScoreModelError(str(e)) from None
    if mode is not None:
        if not isinstance(mode, str) or mode not in CONDITION_VALUES["mode"]:
            raise ScoreModelError(f"unknown mode {mode!r}; use major or minor")
        c["mode"] = mode
    if meter is not None:
        if not isinstance(meter, str) or meter not in METERS:
            raise ScoreModelError(f"unsupported meter {meter!r}; use one of {', '.join(METERS)}")
        c["meter"] = meter
    if tempo_bpm is not None:
        if not _is_number(tempo_bpm) or not MIN_TEMPO_BPM <= tempo_bpm <= MAX_TEMPO_BPM:
            raise ScoreModelError(
                f"tempo {tempo_bpm} BPM is outside {MIN_TEMPO_BPM:g}..{MAX_TEMPO_BPM:g}"
            )
        c["tempo"] = tempo_band(float(tempo_bpm))
    if voices is not None:
        if not is_int(voices) or not 1 <= voices <= MAX_VOICES:
            raise ScoreModelError(f"voices must be 1..{MAX_VOICES}, not {voices}")
        c["voices"] = str(int(voices))
    return c


def check_request(
    source: str | Path | Score | bytes | None = None,
    *,
    style: str | None = None,
    key: str | None = None,
    mode: str | None = None,
    meter: str | None = None,
    parts: Sequence[str] | str | None = None,
    programs: Sequence[int] | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int = DEFAULT_TOP_K,
    top_p: float = DEFAULT_TOP_P,
    key_strength: float = DEFAULT_KEY_STRENGTH,
    seed: int = DEFAULT_SEED,
    model: str | Path | None = None,
) -> Score | None:
    """Every cheap check of a request, before any model loads: the names (style, key, mode,
    meter, parts), the programs, the sampling numbers, the model's name or folder (found,
    not loaded) and the input file (read with `read_midi`). Returns the input's Score
    (None without one); raises the same `ScoreModelError` the model's call would.

    A face calls it first, so that a wrong ``--style`` or a broken file is refused in a
    moment rather than after the model has loaded: ``api.check_request(path, style=...)``.
    """
    check_sampling(temperature, top_k, top_p, seed, key_strength)
    check_conditions(style, key, mode, meter)
    if parts is not None:
        parts = parse_parts(parts)
    if programs is not None:
        count = len(parts) if parts is not None else _length(programs)
        _check_programs(programs, count, "part" if parts is not None else "program")
    if model is not None and not isinstance(model, ScoreModel):
        resolve_model_path(model)
    if source is None:
        return None
    score = read_midi(source)
    name = source_name(source)
    n = len(readable_tracks(score, name))
    if n > MAX_VOICES:  # (as `_encode_input` says it once the model has read the file)
        raise ScoreModelError(
            f"{name} has {n} tracks with notes; the model writes at most {MAX_VOICES}: keep "
            "the parts you need (a MIDI editor can delete tracks)"
        )
    if parts is not None and n + len(parts) > MAX_VOICES:  # (as `add_tracks` says it)
        raise ScoreModelError(
            f"{n} given + {len(parts)} new tracks is more than {MAX_VOICES} voices"
        )
    return score


def input_shape(
    source: str | Path | Score | bytes, model: str | Path = DEFAULT_MODEL
) -> tuple[int, int]:
    """(bars, tracks) of the input as the score model reads it, from the model's tokenizer
    alone (its weights are not loaded): what a face checks bar and track numbers against
    before loading the model (`regenerate_bars`)."""
    path = model.path if isinstance(model, ScoreModel) else resolve_model_path(model)
    score = read_midi(source)
    try:
        tokenizer = ScoreTokenizer.load(Path(path) / "tokenizer")
    except (OSError, ValueError, KeyError) as e:
        raise ScoreModelError(
            f"{model}: its tokenizer cannot be read ({one_line(e)}); give a score "
            "model folder or a name from `disco-musica models`"
        ) from None
    try:
        piece = tokenizer.encode_score(score, source_name(source))
    except TokenizerError as e:
        raise ScoreModelError(str(e)) from None
    return piece.num_bars, len(piece.tracks)


def readable_tracks(score: Score, name: str = "the MIDI file") -> list:
    """The tracks of ``score`` the model reads (not drums, some pitch in `PITCH_RANGE`);
    refused in the tokenizer's words when there are none (e.g. a file of drums only)."""
    lo, hi = PITCH_RANGE
    tracks = [t for t in score.tracks if not t.is_drum and any(lo <= n.pitch < hi for n in t.notes)]
    if not tracks:
        raise ScoreModelError(
            f"{name} has no pitched notes the model can read (drum tracks and pitches "
            f"outside {lo}..{hi - 1} are left out)"
        )
    return tracks


def _length(x) -> int:
    return len(x) if isinstance(x, Sequence) and not isinstance(x, str | bytes) else 0


def key_strength_scale(config: dict) -> float:
    """The share of a requested key bonus this model's sampling applies: ``config.json``'s
    ``key_strength_scale`` (KEY_SCALE_KEY), 1 when absent. A model that keeps to the key by
    itself more firmly needs less of the bonus to sound as the default's settings intend
    (measured with `disco-musica eval compare` and the sketch test: the model card of
    score-base shows a merged model at 0.85). Raises ValueError for a value that is not a
    number in (0, MAX_KEY_SCALE]."""
    value = config.get(KEY_SCALE_KEY, 1.0)
    if not _is_number(value) or not 0 < float(value) <= MAX_KEY_SCALE:
        raise ValueError(
            f"config.json's {KEY_SCALE_KEY} must be a number above 0 and at most "
            f"{MAX_KEY_SCALE:g}, not {value!r}"
        )
    return float(value)


class ScoreModel:
    """A loaded score model: MLX weights plus its tokenizer."""

    def __init__(self, model, config: dict, tokenizer: ScoreTokenizer, path: Path | None = None):
        self.model = model
        self.config = config
        self.tokenizer = tokenizer
        self.path = path
        self.context = int(config.get("max_position_embeddings", 1024))
        self.key_strength_scale = key_strength_scale(config)
        self.decoder = None  # a row of a BatchDecoder (`for_row`); None decodes alone

    def for_row(self, row) -> ScoreModel:
        """This model writing through ``row`` (a `engine.generate.BatchRow`): its sequences
        are decoded together with the batch's other rows (`compose.compose_variations`)."""
        twin = ScoreModel(self.model, self.config, self.tokenizer, self.path)
        twin.decoder = row
        return twin

    @classmethod
    def load(cls, name_or_path: str | Path = DEFAULT_MODEL) -> ScoreModel:
        from engine.models import load_model

        path = resolve_model_path(name_or_path)
        try:
            if (path / "adapter_config.json").is_file():
                model, config = _load_with_adapter(path)
            else:
                model, config = load_model(path)
            key_strength_scale(config)
        except (ValueError, KeyError, TypeError, RuntimeError) as e:  # bad config or weights
            raise ScoreModelError(
                f"{name_or_path} is not a usable score model: {one_line(e)}; give a score model "
                "folder or a name from `disco-musica models`"
            ) from None
        try:
            tokenizer = ScoreTokenizer.load(path / "tokenizer")
        except (OSError, ValueError, KeyError) as e:
            raise ScoreModelError(
                f"{name_or_path}: its tokenizer cannot be read ({one_line(e)}); give a score "
                "model folder or a name from `disco-musica models`"
            ) from None
        return cls(model, config, tokenizer, path)

    # ---- public calls ------------------------------------------------------------------------
    def generate(
        self,
        *,
        style: str | None = None,
        key: str | None = None,
        mode: str | None = None,
        meter: str | None = None,
        tempo_bpm: float | None = None,
        voices: int | None = None,
        programs: Sequence[int] | None = None,
        parts: Sequence[str] | None = None,
        bars: int = DEFAULT_BARS,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = DEFAULT_TOP_K,
        top_p: float = DEFAULT_TOP_P,
        key_strength: float = DEFAULT_KEY_STRENGTH,
        seed: int = DEFAULT_SEED,
        pitch_ranges: Sequence[tuple[int, int]] | None = None,
        registers: Sequence[int] | None = None,
        steer: Steering | None = None,
        progress: ProgressFn | None = None,
        voice_leading: float | None = None,
        polyphony: int | None = None,
        double_stops: bool = False,
    ) -> GeneratedScore:
        """A new piece from condition tokens alone. Unset conditions are chosen by the model.

        ``parts`` names the register of each track (soprano, alto, tenor, bass...; see
        ``PART_REGISTERS``); by default 2 to 4 voices are laid out as soprano (alto, tenor)
        and bass, more voices are left to the model.  ``pitch_ranges`` (one (low, high) MIDI
        pair per track) replaces the parts' ranges, e.g. with instruments' ranges, and
        ``registers`` (0..5 per track, see ``REGISTER_NAMES``) their register tokens.
        ``steer`` applies harmony, density, syncopation and contour controls while sampling
        (`engine.symbolic.steer.Steering`); by default it steers the last bars to a cadence.
        ``voice_leading`` is the strength of the voice-leading penalty (`engine.symbolic.voicing`;
        default: on for the vocal styles, 0 = the model alone); ``polyphony`` caps the notes
        each part sounds at once (`engine.symbolic.texture`; one-note instruments always play one);
        ``double_stops`` lets a solo string part (violin, viola, cello, contrabass: programs
        40-43) sound two notes at once (other programs ignore it).
        Without ``voices`` a style writes its usual number of parts (`STYLE_VOICES`).
        """
        _check_bars(bars)
        polyphony = check_polyphony(polyphony)
        double_stops = check_double_stops(double_stops)
        if voices is None and parts is None and programs is None and style in STYLE_VOICES:
            voices = STYLE_VOICES[style]
        if parts is not None:
            parts = parse_parts(parts)
            if voices is not None and voices != len(parts):
                raise ScoreModelError(f"{voices} voices but {_plural(len(parts), 'part')}")
            voices = len(parts)
        if programs is not None:
            n_programs = len(programs) if isinstance(programs, Sequence) else 0
            programs = _check_programs(programs, voices if is_int(voices) else n_programs, "voice")
            voices = len(programs)
        conditions = self._conditions(style, key, mode, meter, tempo_bpm, voices)
        sampling = self._sampling(temperature, top_k, top_p, seed, key_strength)
        voicing = check_voice_leading(voice_leading)
        n = int(conditions["voices"]) if "voices" in conditions else None
        first = min(bars, self._section_bars(n or 4))
        if parts is None and n is not None:
            parts = DEFAULT_PARTS.get(n)
        if pitch_ranges is not None:
            pitch_ranges = _check_ranges(pitch_ranges, n or 1)
        elif parts:
            pitch_ranges = [PART_RANGES[p] for p in parts]
        if registers is not None:
            registers = [int(r) for r in registers]
            if len(registers) != (n or 1) or not all(
                0 <= r < len(REGISTER_NAMES) for r in registers
            ):
                raise ScoreModelError(
                    f"registers must be one of 0..{len(REGISTER_NAMES) - 1} for each track"
                )
        elif parts:
            registers = [PART_REGISTERS[p] for p in parts]

        def first_plans(b: int) -> list[TrackPlan]:
            return [
                TrackPlan(
                    program=(programs[i] if programs else None),
                    register=registers[i] if registers else None,
                    pitch_range=pitch_ranges[i] if pitch_ranges else None,
                    free_bars=b,
                    polyphony=polyphony,
                    double_stops=double_stops,
                )
                for i in range(n or 1)
            ]

        if steer is None:
            steer = self.default_steering(bars, n, pitch_ranges, key, mode)
        result, first = _fitting(
            first,
            lambda b: self._run(
                conditions,
                first_plans(b),
                meter,
                tempo_bpm,
                sampling,
                progress,
                steer,
                voicing=voicing,
            ),
        )
        if first < bars:
            # Longer than one window: continue section by section, all conditions now fixed.
            cond, tracks = self.tokenizer.split(result.tokens)
            last, sections = self._extend(
                cond,
                tracks,
                bars - first,
                meter=meter,
                tempo_bpm=tempo_bpm,
                sampling=sampling,
                progress=progress,
                steer=steer,
                ranges=pitch_ranges,
                seed_of=lambda k: derive_seed(seed, "window", 1 + k),
                voicing=voicing,
                polyphony=polyphony,
                double_stops=double_stops,
            )
            tokens = self.tokenizer.build_sequence(cond, tracks)
            result = self._result(tokens, conditions, tempo_bpm, sampling, last.finish_reason)
            result.settings["sections"] = 1 + len(sections)
            result.settings["kept_bars"] = [keep for keep, _ in sections]
        result.settings.update(
            voice_leading=voicing[0],
            crossing_strength=voicing[1],
            polyphony=polyphony,
            double_stops=double_stops,
            steering=steer.to_dict(),
        )
        if n is not None:
            _check_complete(result.score.tracks, n)
        if parts:  # tracks in the requested order, named after their parts
            for t, part in zip(result.score.tracks, parts, strict=True):
                t.name = part.capitalize()
        elif programs is None and pitch_ranges is None and registers is None:
            # (with programs, ranges or registers per track the caller's order stands)
            _sort_tracks_by_pitch(result.score)
        return result

    def default_steering(self, bars: int, voices, ranges, key=None, mode=None) -> Steering:
        """The controls a request without any gets: a cadence at the end of ``bars`` bars,
        with the lowest part (by ``ranges``, else the last track) as the bass."""
        n = voices or 1
        if n == 1:
            bass = None  # a single part: only its last bar is held to the tonic
        elif ranges:
            centres = [(lo + hi) / 2 for lo, hi in ranges]
            bass = min(reversed(range(n)), key=lambda i: centres[i])
        else:
            bass = n - 1
        return Steering(key=key, mode=mode, total_bars=bars, bass_track=bass)

    def _continuation_plans(
        self,
        tracks: list[Track],
        keep: int,
        bars: int,
        ranges: Sequence[tuple[int, int]] | None = None,
        polyphony: int | None = None,
        double_stops: bool = False,
    ) -> list[TrackPlan]:
        """Plans that copy the last ``keep`` bars of every track and add ``bars`` new ones."""
        return [
            TrackPlan(
                program=t.program,
                register=self.tokenizer.track_register(t.bars),
                prefix=t.bars[len(t.bars) - keep :],
                free_bars=bars,
                pitch_range=ranges[i] if ranges else None,
                polyphony=polyphony,
                double_stops=double_stops,
            )
            for i, t in enumerate(tracks)
        ]

    def _section_bars(self, voices: int) -> int:
        """Bars of ``voices`` tracks that safely fit 60 % of the window (20 tokens a bar)."""
        return max(1, int(0.6 * self.context / (voices * TOKENS_PER_BAR_ESTIMATE)))

    def _next_section(self, tracks: list[Track], remaining: int) -> tuple[int, int]:
        """(bars of ``tracks`` to keep as the prompt, new bars) of the next section.

        Sized from the tokens the piece has used so far: a new bar is reckoned at
        `NEW_BAR_MARGIN` times the mean of the last `RECENT_BARS` bars (all tracks
        together). When all ``remaining`` bars fit beside the prompt they are written at
        once; else the prompt keeps the latest bars that fit in `PREFIX_SHARE` of the
        window (at least the last bar when one new bar fits beside it) and the new bars get
        the rest (at least one bar: the grammar paces the window, so a bar denser than
        reckoned still ends inside it).
        """
        n = len(tracks)
        per_bar = [sum(len(t.bars[b]) for t in tracks) for b in range(len(tracks[0].bars))]
        recent = per_bar[-RECENT_BARS:] or [0]
        est = max(NEW_BAR_MARGIN * float(np.mean(recent)), 4.0 * n)
        # BOS, 6 conditions and EOS; Track_Start, Program, Register, Track_End per track.
        room = self.context - 8 - 4 * n - WINDOW_SLACK
        if remaining * est <= room * (1 - PREFIX_SHARE):
            prefix_budget = room - remaining * est
        else:
            prefix_budget = room * PREFIX_SHARE
        keep, used = 0, 0
        for tokens in reversed(per_bar):
            if used + tokens > prefix_budget:
                break
            used += tokens
            keep += 1
        if not keep and per_bar and per_bar[-1] + est <= room:  # at least the last bar
            keep, used = 1, per_bar[-1]
        step = int(max(1.0, min(remaining, (room - used) // est)))
        return keep, step

    def _extend(
        self,
        cond: dict[str, str],
        tracks: list[Track],
        bars: int,
        *,
        meter,
        tempo_bpm,
        sampling: dict,
        progress,
        steer,
        ranges,
        seed_of: Callable[[int], int],
        voicing: tuple[float, float] = (0.0, 0.0),
        polyphony: int | None = None,
        double_stops: bool = False,
    ) -> tuple[GeneratedScore, list[tuple[int, int]]]:
        """Add ``bars`` bars to every track of ``tracks`` (in place), section by section.

        Each section is planned by `_next_section` from the tokens used so far and copies
        the last kept bars as its prompt. If the window still ran short of room for the
        model's notes (the grammar had to end a bar: ``squeezed``), the section is planned
        again with half the new bars, then half the kept bars, with the same seed; a
        section of one new bar and no kept bars stands as it came. Returns the last
        section's result and (kept bars, new bars) of every section.
        """
        sections: list[tuple[int, int]] = []
        done = 0
        while done < bars:
            keep, step = self._next_section(tracks, bars - done)
            k = len(sections)
            while True:
                r = self._run(
                    cond,
                    self._continuation_plans(tracks, keep, step, ranges, polyphony, double_stops),
                    meter,
                    tempo_bpm,
                    {**sampling, "seed": seed_of(k)},
                    progress,
                    steer,
                    bar_offset=len(tracks[0].bars) - keep,
                    voicing=voicing,
                )
                if not r.settings.pop("squeezed", False) or (step == 1 and keep == 0):
                    break
                if step > 1:
                    step //= 2
                else:
                    keep //= 2
            _, new_tracks = self.tokenizer.split(r.tokens)
            _check_complete(new_tracks, len(tracks))
            for t, t_new in zip(tracks, new_tracks, strict=True):
                t.bars = t.bars[: len(t.bars) - keep] + t_new.bars
            sections.append((keep, step))
            done += step
        return r, sections

    def continue_score(
        self,
        prefix: str | Path | Score | bytes,
        *,
        bars: int = DEFAULT_CONTINUE_BARS,
        style: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = DEFAULT_TOP_K,
        top_p: float = DEFAULT_TOP_P,
        key_strength: float = DEFAULT_KEY_STRENGTH,
        seed: int = DEFAULT_SEED,
        key: str | None = None,
        mode: str | None = None,
        pitch_ranges: Sequence[tuple[int, int]] | None = None,
        steer: Steering | None = None,
        progress: ProgressFn | None = None,
        voice_leading: float | None = None,
        polyphony: int | None = None,
        double_stops: bool = False,
    ) -> GeneratedScore:
        """The given music followed by ``bars`` new bars in every track (same key, meter).

        The given notes come back exactly as they were (times, lengths, velocities and
        pitches, at the file's ticks per quarter, with its tracks, tempo map and time
        signatures); the model hears a copy on its grid, and the new bars are placed on the
        file's time base after its last bar. ``key``/``mode`` default to the key the input is
        in (`input_key`); ``style`` defaults to the style the input was made in when a
        sidecar or a marker of this program records one, else the model chooses.
        ``settings["conditioned_on"]`` says what the model was given and where it came from.
        ``pitch_ranges`` (one (low, high) per track) keeps new notes in range; ``steer`` as
        in `generate`, with bars counted from the start of the input; ``polyphony`` and
        ``double_stops`` as in `generate`, for the new bars.
        """
        _check_bars(bars)
        double_stops = check_double_stops(double_stops)
        sampling = self._sampling(temperature, top_k, top_p, seed, key_strength)
        self._conditions(style, key, mode, None, None, None)  # bad names fail before work
        score = read_midi(prefix)
        piece_tracks, info = self._encode_input(score, source_name(prefix))
        if pitch_ranges is not None:
            if len(pitch_ranges) == len(score.tracks) != len(piece_tracks):
                # one range per track of the file; its silent tracks are not encoded
                pitch_ranges = [pitch_ranges[i] for i in info["track_index"]]
            pitch_ranges = _check_ranges(pitch_ranges, len(piece_tracks))
        style, style_from = _style_of(style, prefix, score)
        conditions = self._conditions(
            style,
            key or info["key"],
            mode or info["mode"],
            info["meter"],
            info["tempo_bpm"],
            len(piece_tracks),
        )
        nbars = len(piece_tracks[0].bars)
        start = self._ticks_of_bars(piece_tracks[0].bars)
        voicing = check_voice_leading(voice_leading)
        if steer is None:
            steer = self.default_steering(
                nbars + bars, len(piece_tracks), _track_ranges(self.tokenizer, piece_tracks)
            )
        # (the bars are written section by section when they do not fit one window)
        result, sections = self._extend(
            conditions,
            piece_tracks,
            bars,
            meter=None,
            tempo_bpm=info["tempo_bpm"],
            sampling=sampling,
            progress=progress,
            steer=steer,
            ranges=pitch_ranges,
            seed_of=lambda k: derive_seed(seed, "window", k),
            voicing=voicing,
            polyphony=check_polyphony(polyphony),
            double_stops=double_stops,
        )
        keep = sections[0][0]
        out = score.copy()
        for t_gen, i in zip(piece_tracks, info["track_index"], strict=False):
            notes = self._notes_of_bars(t_gen.program, t_gen.bars[nbars:])
            velocity = _median_velocity(score.tracks[i])
            target = out.tracks[i]
            # (appended after the given notes, which keep their own order)
            for n in _after_held(
                _placed(notes, self._tpq, score.ticks_per_quarter, start, velocity),
                score.tracks[i],
            ):
                target.notes.append(n)
        result.score = out
        start_tick = _scaled(start, self._tpq, score.ticks_per_quarter)
        self._conditioned(result, conditions, info, key, mode, style_from)
        result.settings.update(
            prefix_bars_used=keep,
            prefix_bars=nbars,
            sections=len(sections),
            ticks_per_quarter=int(score.ticks_per_quarter),
            continuation_start_tick=int(start_tick),
        )
        return result

    def add_tracks(
        self,
        existing: str | Path | Score | bytes,
        *,
        parts: Sequence[str] | str = ("alto", "tenor", "bass"),
        programs: Sequence[int] | None = None,
        style: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = DEFAULT_TOP_K,
        top_p: float = DEFAULT_TOP_P,
        key_strength: float = DEFAULT_KEY_STRENGTH,
        seed: int = DEFAULT_SEED,
        progress: ProgressFn | None = None,
        steer: Steering | None = None,
        voice_leading: float | None = None,
        double_stops: bool = False,
    ) -> GeneratedScore:
        """New tracks written against the given ones (e.g. alto, tenor, bass under a soprano).

        ``parts`` names the register of each new track (soprano, alto, tenor, bass, melody,
        bassline, high, low): a list, one name, or names separated by commas; ``programs``
        their General MIDI programs (default: the program of the first given track).  The
        result is the given score exactly as it was (every track, note, velocity, tempo and
        time signature, at its ticks per quarter) followed by the new tracks in the order of
        ``parts``, placed on the same time base; the model hears the given tracks on its
        grid. The key is the input's (`input_key`); ``style`` defaults as in
        `continue_score`. ``steer`` (`engine.symbolic.steer.Steering`) applies its controls to the
        new
        tracks while sampling: a progression (one chord a bar from the first bar) is a bonus
        for chord tones, and a hard constraint for the track numbered ``steer.bass_track``
        (given tracks first, then the new ones in order). ``double_stops`` as in `generate`,
        for the new tracks.
        """
        parts = parse_parts(parts)
        double_stops = check_double_stops(double_stops)
        programs = _check_programs(programs, len(parts), "part")
        sampling = self._sampling(temperature, top_k, top_p, seed, key_strength)
        self._conditions(style, None, None, None, None, None)
        score = read_midi(existing)
        given, info = self._encode_input(score, source_name(existing))
        if len(given) + len(parts) > MAX_VOICES:
            raise ScoreModelError(
                f"{len(given)} given + {len(parts)} new tracks is more than {MAX_VOICES} voices"
            )
        nbars = len(given[0].bars)
        plans = [
            TrackPlan(
                program=t.program,
                register=self.tokenizer.track_register(t.bars),
                prefix=t.bars,
                free_bars=0,
            )
            for t in given
        ]
        for i, part in enumerate(parts):
            prog = programs[i] if programs is not None else given[0].program
            plans.append(
                TrackPlan(
                    program=prog,
                    register=PART_REGISTERS[part],
                    pitch_range=PART_RANGES[part],
                    free_bars=nbars,
                    double_stops=double_stops,
                )
            )
        style, style_from = _style_of(style, existing, score)
        conditions = self._conditions(
            style, info["key"], info["mode"], info["meter"], info["tempo_bpm"], len(plans)
        )
        self._check_fits(given, len(parts))
        voicing = check_voice_leading(voice_leading)
        order = _top_to_bottom(self.tokenizer, plans)
        if steer is None:
            steer = Steering(total_bars=nbars, bass_track=order[-1] if len(plans) > 1 else None)
        result = self._run(
            conditions,
            plans,
            None,
            info["tempo_bpm"],
            sampling,
            progress,
            steer,
            voicing=voicing,
        )
        result.settings.update(voice_leading=voicing[0], crossing_strength=voicing[1])
        _, gen_tracks = self.tokenizer.split(result.tokens)
        out = score.copy()
        velocity = _median_velocity(*(score.tracks[i] for i in info["track_index"]))
        new_tracks = []
        for t_gen, part in zip(gen_tracks[len(given) :], parts, strict=False):
            track = SymTrack(name=part.capitalize(), program=int(t_gen.program))
            notes = self._notes_of_bars(t_gen.program, t_gen.bars)
            for n in _placed(notes, self._tpq, score.ticks_per_quarter, 0, velocity):
                track.notes.append(n)
            new_tracks.append(track)
            out.tracks.append(track)
        result.score = out
        n_in = len(score.tracks)
        self._conditioned(result, conditions, info, None, None, style_from)
        result.settings.update(
            ticks_per_quarter=int(score.ticks_per_quarter),
            given_tracks=list(range(n_in)),
            new_tracks=list(range(n_in, n_in + len(new_tracks))),
        )
        return result

    def regenerate_bars(
        self,
        source: str | Path | Score | bytes,
        *,
        start_bar: int,
        end_bar: int,
        tracks: Sequence[int] | None = None,
        style: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = DEFAULT_TOP_K,
        top_p: float = DEFAULT_TOP_P,
        key_strength: float = DEFAULT_KEY_STRENGTH,
        seed: int = DEFAULT_SEED,
        progress: ProgressFn | None = None,
        steer: Steering | None = None,
        first_bar: int = 0,
        voice_leading: float | None = None,
        double_stops: bool = False,
        polyphony: int | None = None,
    ) -> GeneratedScore:
        """Rewrite bars ``start_bar..end_bar`` (0-based, inclusive) of some tracks; keep the rest.

        Each regenerated track is written after all kept tracks, so it hears them in full,
        including the bars after ``end_bar``; its own later bars are copied back unchanged.
        ``steer`` applies its controls to the rewritten bars, its bars counted from
        ``first_bar`` (the number the source's first bar has in a longer piece).
        ``double_stops`` and ``polyphony`` as in `generate`, for the rewritten bars.
        """
        double_stops = check_double_stops(double_stops)
        polyphony = check_polyphony(polyphony)
        for name, bar in (("start_bar", start_bar), ("end_bar", end_bar)):
            if not is_int(bar) or bar < 0:
                raise ScoreModelError(
                    f"{name} must be a whole bar number counted from 0, not {bar!r}"
                )
        if end_bar < start_bar:
            raise ScoreModelError(
                f"the bar range {start_bar}..{end_bar} goes backwards; give start_bar <= end_bar"
            )
        if tracks is not None and (
            isinstance(tracks, str | bytes)
            or not isinstance(tracks, Sequence)
            or not all(is_int(t) for t in tracks)
        ):
            raise ScoreModelError(f"tracks must be a list of track numbers from 0, not {tracks!r}")
        sampling = self._sampling(temperature, top_k, top_p, seed, key_strength)
        self._conditions(style, None, None, None, None, None)
        score = read_midi(source)
        given, info = self._encode_input(score, source_name(source))
        nbars = len(given[0].bars)
        if not end_bar < nbars:
            raise ScoreModelError(
                f"bars {start_bar}..{end_bar} are outside the piece (bars 0..{nbars - 1})"
            )
        chosen = list(range(len(given))) if tracks is None else [int(t) for t in tracks]
        bad = [t for t in chosen if not 0 <= t < len(given)]
        if bad or not chosen:
            raise ScoreModelError(
                f"track {bad[0] if bad else '(none)'} does not exist; the "
                f"piece has tracks 0..{len(given) - 1}"
            )
        order = [i for i in range(len(given)) if i not in chosen] + chosen
        plans = []
        for i in order:
            t = given[i]
            plan = TrackPlan(
                program=t.program,
                register=self.tokenizer.track_register(t.bars),
                double_stops=double_stops,
                polyphony=polyphony,
            )
            if i in chosen:
                plan.prefix = t.bars[:start_bar]
                plan.free_bars = end_bar - start_bar + 1
                plan.suffix = t.bars[end_bar + 1 :]
            else:
                plan.prefix, plan.free_bars = t.bars, 0
            plans.append(plan)
        self._check_fits(given, 0)
        conditions = self._conditions(
            style, info["key"], info["mode"], info["meter"], info["tempo_bpm"], len(given)
        )
        voicing = check_voice_leading(voice_leading)
        if steer is None:
            steer = self.default_steering(
                nbars, len(given), _track_ranges(self.tokenizer, [given[i] for i in order])
            )
        result = self._run(
            conditions,
            plans,
            None,
            info["tempo_bpm"],
            sampling,
            progress,
            steer,
            bar_offset=first_bar,
            voicing=voicing,
        )
        inverse = [order.index(i) for i in range(len(given))]
        result.score.tracks = [result.score.tracks[j] for j in inverse]
        _copy_names(score, result.score)
        result.settings.update(start_bar=start_bar, end_bar=end_bar, tracks=chosen)
        return result

    # ---- internals ---------------------------------------------------------------------------
    def _sampling(
        self, temperature: float, top_k: int, top_p: float, seed: int, key_strength: float
    ) -> dict:
        return check_sampling(temperature, top_k, top_p, seed, key_strength, len(self.tokenizer))

    def _conditions(self, style, key, mode, meter, tempo_bpm, voices) -> dict[str, str]:
        return check_conditions(style, key, mode, meter, tempo_bpm, voices)

    def _encode_input(self, score: Score, name: str = "the MIDI file") -> tuple[list[Track], dict]:
        """The model's view of ``score`` (its grid) and what the model is told about it.

        ``info["track_index"][j]`` is the index in ``score.tracks`` of encoded track ``j``;
        ``name`` is how an error names the input.
        """
        tok = self.tokenizer
        try:
            piece = tok.encode_score(score, name)
        except TokenizerError as e:
            raise ScoreModelError(str(e)) from None
        if len(piece.tracks) > MAX_VOICES:
            raise ScoreModelError(
                f"{name} has {len(piece.tracks)} tracks with notes; the model writes at most "
                f"{MAX_VOICES}: keep the parts you need (a MIDI editor can delete tracks)"
            )
        tonic, mode = input_key(score)
        ts = piece.tracks[0].bars[0][1]
        bpm = tempo_at(score, first_onset(score))
        bpm = min(max(bpm, MIN_TEMPO_BPM), MAX_TEMPO_BPM)
        return piece.tracks, {
            "key": TONICS[tonic],
            "mode": mode,
            "meter": tok.value(ts),
            "tempo_bpm": bpm,
            "track_index": track_index_of(score, piece.tracks),
        }

    @property
    def _tpq(self) -> int:
        """Ticks per quarter of the model's grid (what its tokenizer decodes to)."""
        return int(self.tokenizer.base.time_division)

    def _ticks_of_bars(self, bars: Sequence[Sequence[int]]) -> int:
        """Length in the model's ticks of ``bars`` (each starts with Bar and its TimeSig)."""
        tok, total, meter = self.tokenizer, 0, "4/4"
        for bar in bars:
            if len(bar) > 1 and tok.kind(bar[1]) == "TimeSig":
                meter = tok.value(bar[1])
            num, den = (int(x) for x in meter.split("/"))
            total += self._tpq * 4 * num // den
        return total

    def _notes_of_bars(self, program: int, bars: Sequence[Sequence[int]]) -> list:
        """The notes of ``bars`` of one track, in the model's ticks from the first bar line."""
        tok = self.tokenizer
        ids = [tok.track_start_id, tok.program_id(program)]
        for bar in bars:
            ids += bar
        ids.append(tok.track_end_id)
        decoded = tok.decode(ids)
        return list(decoded.tracks[0].notes) if len(decoded.tracks) else []

    def _conditioned(self, result, conditions, info, key, mode, style_from) -> None:
        """Record what the model was conditioned on; mark the output with it."""
        c = result.conditions
        result.settings["conditioned_on"] = {
            "style": c.get("style"),
            "style_from": style_from,
            "key": conditions.get("key"),
            "mode": conditions.get("mode"),
            "key_from": "request" if key or mode else "input",
            "input_key": info["key"],
            "input_mode": info["mode"],
            "meter": conditions.get("meter"),
            "tempo": conditions.get("tempo"),
        }
        score = result.score
        if not len(score.key_signatures) and "key" in c and "mode" in c:
            score.key_signatures = [
                KeySignature(0, key_sharps(c["key"], c["mode"]), int(c["mode"] == "minor"))
            ]
        _mark(score, c)

    def _check_fits(self, tracks: list[Track], new_tracks: int) -> None:
        n_tok = sum(len(bar) for t in tracks for bar in t.bars)
        per_track = n_tok / max(1, len(tracks))
        if n_tok + per_track * new_tracks + 16 > self.context:
            raise ScoreModelError(
                f"the input is too long for the model's {self.context}-token window "
                f"({len(tracks[0].bars)} bars, about {int(n_tok)} tokens); "
                "split it into shorter sections"
            )

    def _run(
        self,
        conditions,
        plans,
        meter,
        tempo_bpm,
        sampling,
        progress,
        steer: Steering | None = None,
        bar_offset: int = 0,
        voicing: tuple[float, float] = (0.0, 0.0),
    ) -> GeneratedScore:
        from engine.generate import generate_step
        from engine.sample import make_sampler
        from engine.symbolic.voicing import VoiceLeading

        tok = self.tokenizer
        grammar = ScoreGrammar(
            tok,
            conditions=conditions,
            plans=plans,
            meter=meter,
            max_tokens=self.context,
            texture=True,
        )
        strength, crossing = voicing
        leading = VoiceLeading(
            tok, _top_to_bottom(tok, plans), strength=strength, crossing_strength=crossing
        )
        leading = leading if leading.active else None
        # The longest run of forced tokens is the prompt (prefilled in one pass).
        prompt: list[int] = []
        while not grammar.done:
            allowed = grammar.allowed()
            if allowed.sum() != 1:
                break
            t = int(np.flatnonzero(allowed)[0])
            grammar.feed(t)
            prompt.append(t)
        if len(prompt) >= self.context - 1:
            raise ScoreModelError(
                f"the request needs more than the model's {self.context}-token window; "
                "ask for fewer bars or tracks"
            )
        seen = [len(prompt)]

        strength = sampling["key_strength"]
        key_bias: list[np.ndarray | None] = []  # computed once the key is known
        steering = steer.bind(tok) if steer is not None and steer.active else None

        def allowed_fn(tokens: list[int]) -> np.ndarray:
            for t in tokens[seen[0] :]:
                grammar.feed(t)
            seen[0] = len(tokens)
            allowed = grammar.allowed()
            bias = None
            if strength and grammar.state in ("pitch", "event"):
                if not key_bias:
                    key_bias.append(self._key_bias(grammar.tokens, strength))
                bias = key_bias[0]
            if steering is not None:
                extra = steering(grammar, bar_offset)
                if extra is not None:
                    bias = extra if bias is None else bias + extra
            if leading is not None:
                extra = leading(grammar)
                if extra is not None:
                    bias = extra if bias is None else bias + extra
            if bias is None:
                return allowed
            biased = np.where(allowed, bias, -np.inf).astype(np.float32)
            if not np.isfinite(biased).any():  # a hard constraint left nothing: drop it
                biased = np.where(allowed, 0.0, -np.inf).astype(np.float32)
            return biased

        sampler = make_sampler(sampling["temperature"], sampling["top_k"], sampling["top_p"])
        tokens = list(prompt)
        reason = "stop"
        budget = self.context - len(prompt)
        if not grammar.done:
            for r in generate_step(
                self.model,
                prompt,
                sampler=sampler,
                max_tokens=budget,
                seed=sampling["seed"],
                eos_id=tok.eos_id,
                allowed_fn=allowed_fn,
                decoder=self.decoder,
            ):
                tokens.append(r.token)
                if progress is not None:
                    progress(Progress("tokens", len(tokens), self.context))
                if r.finish_reason is not None:
                    reason = r.finish_reason
        try:
            for t in tokens[seen[0] :]:
                grammar.feed(t)
        except GrammarError as e:  # internal bug: the mask was not honoured
            raise RuntimeError(f"sampled sequence broke the grammar: {e}") from e
        result = self._result(tokens, conditions, tempo_bpm, sampling, reason)
        if grammar.squeezed:
            result.settings["squeezed"] = True
        return result

    def _key_bias(self, tokens: list[int], strength: float) -> np.ndarray | None:
        """Bias [V]: ``strength`` on pitches of the scale named by the Key/Mode conditions."""
        from engine.symbolic.quality import scale_pitch_classes

        cond, _ = self.tokenizer.split(tokens)
        if not strength or "key" not in cond or "mode" not in cond:
            return None
        strength = strength * self.key_strength_scale
        tonic = TONICS.index(cond["key"])
        minor = cond["mode"] == "minor"
        scale = scale_pitch_classes(tonic, cond["mode"])
        pitch = self.tokenizer.pitch_of
        pc = (pitch - tonic) % 12
        bias = np.zeros(len(self.tokenizer), dtype=np.float32)
        bias[(pitch >= 0) & np.isin(pitch % 12, list(scale))] = strength
        if minor:
            bias[(pitch >= 0) & (pc == 9)] = RAISED_SIXTH_SHARE * strength
        # The tonic most, then the fifth and the third: the tonic (not the relative or the
        # mediant key) is heard.
        third = 3 if minor else 4
        shares = MINOR_DEGREE_BONUS if minor else DEGREE_BONUS
        for degree, share in ((0, shares[0]), (7, shares[7]), (third, shares["third"])):
            bias[(pitch >= 0) & (pc == degree)] += min(share * strength, DEGREE_BONUS_CAP)
        return bias

    def _result(self, tokens, conditions, tempo_bpm, sampling, reason) -> GeneratedScore:
        """Decode a finished token sequence into a named, key-signed score."""
        tok = self.tokenizer
        cond, _ = tok.split(tokens)
        bpm = (
            float(tempo_bpm)
            if tempo_bpm is not None
            else TEMPO_BAND_DEFAULT_BPM.get(cond.get("tempo", ""), 96.0)
        )
        score = tok.decode(tokens, tempo_bpm=bpm)
        _name_tracks(score)
        if "key" in cond and "mode" in cond:
            score.key_signatures = [
                KeySignature(
                    0, key_sharps(cond["key"], cond["mode"]), 0 if cond["mode"] == "major" else 1
                )
            ]
        _mark(score, cond)
        settings = {**sampling, "requested_conditions": conditions, "tempo_bpm": bpm}
        return GeneratedScore(score, tokens, cond, reason, settings)


def _track_ranges(tok: ScoreTokenizer, tracks: Sequence[Track]) -> list[tuple[int, int]]:
    """(lowest, highest) pitch of each encoded track (its notes so far)."""
    out = []
    for t in tracks:
        ids = np.concatenate([np.asarray(b, np.int64) for b in t.bars]) if t.bars else []
        p = [int(x) for x in tok.pitch_of[ids] if x >= 0] if len(ids) else []
        out.append((min(p), max(p)) if p else (60, 60))
    return out


def _top_to_bottom(tok: ScoreTokenizer, plans: Sequence[TrackPlan]) -> list[int]:
    """Track indices from the highest part to the lowest, as planned: a given part by its
    median pitch, a new one by the centre of its range, else of its register; with none of
    these, the order of the tracks (the first part highest)."""
    keys = []
    for p in plans:
        bars = p.prefix + p.suffix
        pitches = (
            tok.pitch_of[np.concatenate([np.asarray(b, np.int64) for b in bars])] if bars else []
        )
        pitches = [x for x in pitches if x >= 0]
        if p.free_bars == 0 and pitches:
            keys.append(float(np.median(pitches)))
        elif p.pitch_range is not None:
            keys.append((p.pitch_range[0] + p.pitch_range[1]) / 2)
        elif p.register is not None:
            keys.append(float(REGISTER_CENTRES[p.register]))
        elif pitches:
            keys.append(float(np.median(pitches)))
        else:
            keys.append(None)
    if any(k is None for k in keys):
        return list(range(len(plans)))
    return sorted(range(len(plans)), key=lambda i: (-keys[i], i))


def check_polyphony(polyphony) -> int | None:
    """``polyphony`` (notes a part may sound at once) checked against `MAX_POLYPHONY`."""
    from engine.symbolic.texture import MAX_POLYPHONY

    if polyphony is None:
        return None
    if not is_int(polyphony) or not 1 <= polyphony <= MAX_POLYPHONY:
        nearest = MAX_POLYPHONY if _is_number(polyphony) and polyphony > MAX_POLYPHONY else 1
        raise ScoreModelError(
            f"polyphony {polyphony!r} is beyond the limit: a part sounds 1 to {MAX_POLYPHONY} "
            f"notes at once (one-note instruments and voices always 1); use {nearest}"
        )
    return int(polyphony)


def check_double_stops(double_stops) -> bool:
    """``double_stops`` (a solo string part may sound two notes at once) checked: a bool."""
    if not isinstance(double_stops, bool | np.bool_):
        raise ScoreModelError(
            f"double_stops must be True or False, not {double_stops!r}; True lets a solo "
            "violin, viola, cello or double bass part play two notes at once"
        )
    return bool(double_stops)


def check_voice_leading(voice_leading) -> tuple[float, float]:
    """(penalty strength, crossing strength) for a request (`engine.symbolic.voicing`).

    ``None``: the default penalty, for every ensemble of lines (vocal and instrumental lines
    are held to the same rules); 0: the model alone.
    """
    from engine.symbolic.voicing import CROSSING_STRENGTH, DEFAULT_STRENGTH, MAX_STRENGTH

    if voice_leading is None:
        return (DEFAULT_STRENGTH, CROSSING_STRENGTH)
    if not _is_number(voice_leading) or not 0 <= voice_leading <= MAX_STRENGTH:
        raise ScoreModelError(
            f"voice leading strength must be a number from 0 (the model alone) to "
            f"{MAX_STRENGTH:g}, not {voice_leading!r}; the default is {DEFAULT_STRENGTH:g}"
        )
    v = float(voice_leading)
    return (v, max(v, CROSSING_STRENGTH) if v else 0.0)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def is_int(x) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def _is_number(x) -> bool:
    return (
        isinstance(x, int | float | np.integer | np.floating)
        and not isinstance(x, bool | np.bool_)
        and math.isfinite(float(x))
    )


def _number(name: str, x, lo: float, hi: float) -> float:
    if not _is_number(x) or not lo <= x <= hi:
        raise ScoreModelError(f"{name} must be a number {lo:g}..{hi:g}, not {x!r}")
    return float(x)


def parse_parts(parts) -> list[str]:
    """Part names from a list, one name (``"bass"``) or a comma-separated list (``"alto,bass"``)."""
    if isinstance(parts, str):
        parts = [p.strip() for p in parts.split(",")]
        if any(not p for p in parts):
            raise ScoreModelError(
                f"parts {','.join(parts)!r} has an empty name; use e.g. 'alto,tenor,bass'"
            )
    elif parts is None or not isinstance(parts, Sequence | set | frozenset | tuple):
        raise ScoreModelError(
            f"parts must be part names (e.g. ['alto', 'bass'] or 'alto,bass'), not {parts!r}"
        )
    parts = list(parts)
    bad = [p for p in parts if not isinstance(p, str)]
    if bad:
        raise ScoreModelError(
            f"part {bad[0]!r} is not a part name; use names from {', '.join(PART_REGISTERS)}"
        )
    if not parts:
        raise ScoreModelError(f"give at least one part ({', '.join(PART_REGISTERS)})")
    _check_parts(parts)
    return parts


def _check_programs(programs, count: int, what: str) -> list[int] | None:
    if programs is None:
        return None
    if isinstance(programs, str | bytes) or not isinstance(programs, Sequence):
        raise ScoreModelError(f"programs must be a list of General MIDI programs, not {programs!r}")
    programs = list(programs)
    for p in programs:
        if not is_int(p) or not 0 <= p <= 127:
            raise ScoreModelError(f"program {p!r} is not a General MIDI program (0..127)")
    if len(programs) != count:
        raise ScoreModelError(
            f"{_plural(count, what)} but {_plural(len(programs), 'program')}; "
            f"give one program per {what}"
        )
    return [int(p) for p in programs]


def _check_parts(parts: Sequence[str]) -> None:
    unknown = [p for p in parts if p not in PART_REGISTERS]
    if unknown:
        raise ScoreModelError(
            f"unknown part {unknown[0]!r}; use one of {', '.join(PART_REGISTERS)}"
        )


def input_key(score: Score) -> tuple[int, str]:
    """(tonic pitch class, mode) of the music in ``score``.

    The key finder is `engine.symbolic.quality.analyze_key` (Aarden-Essen profiles). A key
    signature written in the file settles only the choice between a key and its relative
    (same signature): D minor written with one flat stays D minor, F major stays F major.
    """
    from engine.symbolic.quality import analyze_key

    try:
        tonic, mode = analyze_key(score)
    except ValueError as e:
        raise ScoreModelError(f"no key can be heard in the input: {e}") from None
    if len(score.key_signatures):
        ks = score.key_signatures[0]
        major = _sharps_tonic(int(ks.key))
        written = (major, "major") if int(ks.tonality) == 0 else ((major + 9) % 12, "minor")
        relative = (tonic + 3) % 12 if mode == "minor" else (tonic + 9) % 12
        other = "major" if mode == "minor" else "minor"
        if written == (relative, other):
            tonic, mode = written
    return tonic, mode


def _sharps_tonic(sharps: int) -> int:
    """Pitch class of the major key with ``sharps`` sharps (negative: flats)."""
    return (7 * sharps) % 12


def tempo_at(score: Score, tick: int) -> float:
    """The tempo (quarters a minute) in effect at ``tick`` (96 if the file sets none)."""
    bpm = 96.0
    for t in sorted(score.tempos, key=lambda t: t.time):
        if t.time > tick:
            break
        bpm = float(t.qpm)
    return bpm


def first_onset(score: Score) -> int:
    return min((int(t.notes[0].time) for t in score.tracks if len(t.notes)), default=0)


def track_index_of(score: Score, tracks: Sequence[Track]) -> list[int]:
    """Index in ``score.tracks`` of each encoded track (drums and unreadable tracks skipped)."""
    lo, hi = PITCH_RANGE
    candidates = [
        i
        for i, t in enumerate(score.tracks)
        if not t.is_drum and any(lo <= n.pitch < hi for n in t.notes)
    ]
    out, k = [], 0
    for t in tracks:
        while k < len(candidates) and int(score.tracks[candidates[k]].program) != t.program:
            k += 1
        if k == len(candidates):
            raise ScoreModelError(
                "the MIDI file's tracks could not be matched to what the model reads; "
                "save it again from a MIDI editor"
            )
        out.append(candidates[k])
        k += 1
    return out


def _scaled(tick: int, from_tpq: int, to_tpq: int) -> int:
    return int(round(tick * to_tpq / from_tpq))


def _placed(notes, from_tpq: int, to_tpq: int, start: int, velocity: int) -> list:
    """``notes`` (model ticks, from ``start``) as notes at ``to_tpq`` ticks a quarter."""
    out = []
    for n in notes:
        t0 = _scaled(start + n.time, from_tpq, to_tpq)
        t1 = _scaled(start + n.time + n.duration, from_tpq, to_tpq)
        out.append(Note(t0, max(1, t1 - t0), int(n.pitch), int(velocity)))
    return out


def _after_held(new: list, given) -> list:
    """``new`` notes, each started no earlier than the end of a given note of its pitch that
    still sounds (MIDI cannot hold one pitch twice on a track: the given note would be cut
    short in the file); a note left with no length is dropped."""
    held: dict[int, int] = {}
    for n in given.notes:
        held[n.pitch] = max(held.get(n.pitch, 0), n.time + n.duration)
    out = []
    for n in new:
        end = n.time + n.duration
        start = max(n.time, held.get(n.pitch, 0))
        if start < end:
            out.append(Note(start, end - start, n.pitch, n.velocity))
    return out


def _median_velocity(*tracks) -> int:
    v = [n.velocity for t in tracks for n in t.notes]
    return int(np.median(v)) if v else 100


def recorded_conditions(source, score: Score | None = None) -> tuple[dict[str, str], str | None]:
    """(conditions, where) that a file made here records: its marker, else its sidecar."""
    if score is not None:
        for m in score.markers:
            text = str(m.text)
            if text.startswith(MARKER_PREFIX):
                pairs = (w.split("=", 1) for w in text[len(MARKER_PREFIX) :].split() if "=" in w)
                return {k: v for k, v in pairs}, "marker"
    if isinstance(source, str | Path):
        sidecar = Path(source).with_suffix(SIDECAR_SUFFIX)
        try:
            record = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            return {}, None
        if isinstance(record, dict) and isinstance(record.get("conditions"), dict):
            return {str(k): str(v) for k, v in record["conditions"].items()}, "sidecar"
    return {}, None


def _style_of(style: str | None, source, score: Score) -> tuple[str | None, str]:
    """The style to condition on and where it came from: the request, the input's record, or
    none (the model chooses)."""
    if style is not None:
        return style, "request"
    recorded, where = recorded_conditions(source, score)
    if recorded.get("style") in STYLES:
        return recorded["style"], where or "record"
    return None, "model"


def _mark(score: Score, conditions: dict[str, str]) -> None:
    """Replace this program's marker at tick 0 with one naming ``conditions``."""
    words = [f"{k}={conditions[k]}" for k in ("style", "key", "mode", "meter") if k in conditions]
    kept = [m for m in score.markers if not str(m.text).startswith(MARKER_PREFIX)]
    score.markers = [TextMeta(0, " ".join([MARKER_PREFIX, *words])), *kept]


def _fitting(bars: int, run: Callable[[int], GeneratedScore]) -> tuple[GeneratedScore, int]:
    """``run(bars)``, halving ``bars`` while the model's window runs short of room for its
    notes (the grammar had to end a bar early, or the window filled up)."""
    while True:
        result = run(bars)
        squeezed = result.settings.pop("squeezed", False)
        if (result.finish_reason != "length" and not squeezed) or bars == 1:
            return result, bars
        bars = max(1, bars // 2)


def _check_complete(tracks, expected: int) -> None:
    if len(tracks) < expected:
        raise ScoreModelError(
            f"the model's window filled up after {len(tracks)} of {expected} parts even for one "
            "bar; ask for fewer parts"
        )


def _check_ranges(ranges: Sequence[tuple[int, int]], tracks: int) -> list[tuple[int, int]]:
    try:
        ranges = [(lo, hi) for lo, hi in ranges]
    except (TypeError, ValueError):
        raise ScoreModelError(
            f"pitch_ranges must be one (low, high) pair of MIDI pitches per track, not {ranges!r}"
        ) from None
    for lo, hi in ranges:
        if not (is_int(lo) and is_int(hi)):
            raise ScoreModelError(f"pitch range {lo!r}-{hi!r} must be whole MIDI pitches 0..127")
    ranges = [(int(lo), int(hi)) for lo, hi in ranges]
    if len(ranges) != tracks:
        raise ScoreModelError(f"{len(ranges)} pitch ranges for {_plural(tracks, 'track')}")
    for lo, hi in ranges:
        if not 0 <= lo <= hi <= 127:
            raise ScoreModelError(f"pitch range {lo}-{hi} is not within MIDI pitches 0..127")
    return ranges


def _check_bars(bars: int) -> None:
    if not is_int(bars) or not 1 <= bars <= MAX_BARS:
        nearest = MAX_BARS if _is_number(bars) and bars > MAX_BARS else 1
        raise ScoreModelError(
            f"bars must be a whole number 1..{MAX_BARS}, not {bars!r}; use {nearest}"
        )


def key_sharps(tonic: str, mode: str) -> int:
    """Number of sharps (negative: flats) of a key signature."""
    pc = TONICS.index(tonic)
    if mode == "minor":
        pc = (pc + 3) % 12  # relative major
    fifths = (pc * 7) % 12  # C=0, G=1, D=2 ...
    return fifths - 12 if fifths > 6 else fifths


def _name_tracks(score: Score) -> None:
    from miditok.constants import MIDI_INSTRUMENTS

    for t in score.tracks:
        if len(t.notes) and t.program in VOCAL_PROGRAMS:
            med = float(np.median([n.pitch for n in t.notes]))
            t.name = REGISTER_NAMES[register_of(med)].capitalize()
        else:
            t.name = MIDI_INSTRUMENTS[t.program]["name"]


def _median_pitch(track) -> float:
    return float(np.median([n.pitch for n in track.notes])) if len(track.notes) else -1.0


def _sort_tracks_by_pitch(score: Score) -> None:
    """Score order: highest voice first."""
    score.tracks = sorted(score.tracks, key=_median_pitch, reverse=True)


def _copy_names(source: Score, target: Score) -> None:
    names = [t.name for t in source.tracks if not t.is_drum and t.note_num() > 0]
    for name, t in zip(names, target.tracks, strict=False):
        if name:
            t.name = name
