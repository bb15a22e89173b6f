"""MusicGen as a product: find (or download and convert) a model, make audio, record, replay.

>>> from engine.pipelines.musicgen import generate_audio_piece
>>> generate_audio_piece("lo-fi piano with soft rain", "rain", model="musicgen-small",
...                      seconds=10, seed=1)

It writes the same kind of folder as ``disco-musica generate`` with the score model: the
audio files and a ``generation.json`` that `replay` turns back into the same files.  The
MusicGen weights are CC-BY-NC 4.0: the record and the command line say so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine import hub as catalog
from engine import names
from engine.atomic import sha256_file
from engine.errors import MusicgenError
from engine.hub import resolve_model
from engine.progress import Progress, ProgressFn
from engine.record import (
    DEFAULT_ROOT,
    OutputFolder,
    check_new_folder,
    file_info,
    forget_made_dirs,
    make_dirs,
    prompt_words,
    remove_made_dirs,
    unique_folder,
    with_replaced,
    write_record,
)
from engine.seeds import check_seed

DEFAULT_SECONDS = names.MUSICGEN_DEFAULT_SECONDS
MAX_SECONDS = names.MUSICGEN_MAX_SECONDS
DEFAULT_GUIDANCE = names.DEFAULT_GUIDANCE
DEFAULT_TOP_K = names.MUSICGEN_DEFAULT_TOP_K
AUDIO_FORMATS = names.AUDIO_FORMATS
GENERATION_FILE = names.GENERATION_FILE
STEM = names.OUTPUT_STEM
ENGINE = "musicgen"


# ---- models ------------------------------------------------------------------------------
# A MusicGen fine-tune (`engine.train.musicgen`, which imports mlx: these checks stay light,
# so that telling the engines apart costs nothing): a folder with this file, or a run folder
# with it in one of these, or one of the user's models whose card has this kind.
FINETUNE_FILE = catalog.FINETUNE_FILE
FINETUNE_SUBFOLDERS = ("model", "best", "checkpoint")
FINETUNE_KIND = "musicgen"


def is_musicgen(model: str | None) -> bool:
    """True for a MusicGen name (``musicgen-small``), a folder holding a MusicGen model, a
    MusicGen fine-tune folder (made by ``train musicgen``) or one of the user's MusicGen
    models (``my-sound``, ``my-sound@step-400``)."""
    if not model:
        return False
    if is_finetune(model):
        return True
    p = Path(model).expanduser()
    if p.is_dir() and (p / "config.json").is_file():
        try:
            raw = json.loads((p / "config.json").read_text())
        except (OSError, ValueError):
            return False
        return raw.get("model_type") in ("musicgen", "musicgen_melody")
    return catalog.is_musicgen_name(str(model))


def is_finetune(model: str | Path | None) -> bool:
    """Whether ``model`` names a MusicGen fine-tune: a folder `train musicgen` wrote (a
    checkpoint, ``model/``, or the run folder) or one of the user's MusicGen models, with or
    without a ``@tag``. Reads no weights."""
    if not model:
        return False
    p = Path(str(model)).expanduser()
    if p.is_dir():
        return any((p / sub / FINETUNE_FILE).is_file() for sub in ("", *FINETUNE_SUBFOLDERS))
    base, _ = catalog.split_tag(str(model))
    if not base or "/" in base or "\\" in base:
        return False
    try:
        card = json.loads((catalog.trained_models_dir() / base / "model.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(card, dict) and card.get("kind") == FINETUNE_KIND


# ---- audio in ----------------------------------------------------------------------------
def read_audio(path: str | Path, what: str) -> tuple[np.ndarray, int]:
    """Audio [T, C] float32 and its rate, with one-line errors for bad files.

    `engine.audio.io.load_audio` reads it (the one audio reader: a missing or empty
    file,
    content that is not audio, no samples, NaN or infinite samples are refused; a WAV or AIFF
    cut short is used as far as it goes, with an `engine.errors.InputWarning`); silence (peak
    below `engine.audio.io.SILENCE_DBFS`) is refused too. ``what`` ("melody") starts the
    name of the file in every message.
    """
    from engine.audio.io import check_audible, load_audio
    from engine.errors import AudioFileError

    p = Path(path).expanduser()
    try:
        audio, sr = load_audio(p, what=what)
        check_audible(audio, f"{what} {p}")
    except AudioFileError as e:
        raise MusicgenError(str(e)) from None
    return audio, sr


def check_formats(formats: Sequence[str]) -> list[str]:
    """The audio formats asked for, lower case without dots, or a MusicgenError: MusicGen makes
    audio only (no MIDI or MusicXML). Cheap: call it before anything is loaded."""
    if isinstance(formats, str):
        formats = formats.split(",")
    wanted = list(dict.fromkeys(f.strip().lower().lstrip(".") for f in formats if f.strip()))
    bad = [f for f in wanted if f not in AUDIO_FORMATS]
    if bad or not wanted:
        raise MusicgenError(
            f"MusicGen makes audio: formats {', '.join(AUDIO_FORMATS)} (not "
            f"{', '.join(bad) or 'none'}); MIDI and MusicXML come from the score models"
        )
    return wanted


@dataclass
class CheckedRequest:
    """What `check_request` found: the request's numbers, the model's kind, the audio read."""

    seconds: float
    creativity: float
    guidance: float
    seed: int
    melody_model: bool | None  # None: a folder that resolve_model will look at
    melody_audio: tuple[np.ndarray, int] | None = None
    prompt_audio: tuple[np.ndarray, int] | None = None


KNOWN_OPTIONS = ("style", "mood", "instruments", "key", "mode", "tempo_bpm")


def check_request(
    prompt: str = "",
    *,
    model: str = "musicgen-small",
    seconds: float | None = None,
    seed: int = 0,
    creativity: float | None = None,
    guidance: float = DEFAULT_GUIDANCE,
    melody: str | Path | None = None,
    audio_prompt: str | Path | None = None,
    formats: Sequence[str] | None = None,
    **options,
) -> CheckedRequest:
    """Every check of a MusicGen request that needs no model: the prompt's length, numbers,
    options, the model's name (and whether it takes a melody), the melody and audio-prompt
    files, ``formats``.

    `compose_audio` calls it before `resolve_model`, so a wrong option is reported as itself
    even when the model would have to be downloaded (or the network is down).
    """
    from engine.models.musicgen import DEFAULT_MAX_WINDOW_S
    from engine.pipelines.prompt import MAX_PROMPT_CHARS

    if not isinstance(prompt, str):
        raise MusicgenError(f"the prompt must be text, not {type(prompt).__name__}")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise MusicgenError(
            f"prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}: shorten it"
        )
    seconds = DEFAULT_SECONDS if seconds is None else _number("duration", seconds)
    if not 0 < seconds <= MAX_SECONDS:
        raise MusicgenError(
            f"duration {seconds:g} s is outside 0..{MAX_SECONDS:g} s; ask for at most "
            f"{MAX_SECONDS / 60:g} minutes"
        )
    c = 0.5 if creativity is None else _number("creativity", creativity)
    if not 0 <= c <= 1:
        raise MusicgenError(f"creativity must be between 0 and 1, not {c:g}")
    guidance = _number("guidance", guidance)
    if not 0 <= guidance <= 20:
        raise MusicgenError(f"guidance must be between 0 and 20, not {guidance:g} (3 is usual)")
    check_seed(seed, MusicgenError)
    unused = sorted(k for k, v in options.items() if v is not None and k not in KNOWN_OPTIONS)
    if unused:
        raise MusicgenError(
            f"{', '.join(unused)} cannot steer MusicGen (it reads only text); put it in the prompt"
        )
    if formats is not None:
        check_formats(formats)
    melody_model = model_takes_melody(model)
    if melody is not None and melody_model is False:
        raise MusicgenError(
            f"{model} has no melody conditioning; use musicgen-melody or musicgen-stereo-melody"
        )
    checked = CheckedRequest(seconds, c, guidance, int(seed), melody_model)
    if melody is not None:
        checked.melody_audio = read_audio(melody, "melody")
    if audio_prompt is not None:
        checked.prompt_audio = read_audio(audio_prompt, "audio prompt")
        clip_s = checked.prompt_audio[0].shape[0] / checked.prompt_audio[1]
        if clip_s >= DEFAULT_MAX_WINDOW_S:
            raise MusicgenError(
                f"the audio prompt {audio_prompt} is {clip_s:.1f} s long; MusicGen continues "
                f"clips shorter than {DEFAULT_MAX_WINDOW_S:g} s: cut it to its last seconds"
            )
    return checked


def _number(name: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MusicgenError(f"{name} must be a number, not {value!r}") from None


def model_takes_melody(name_or_path: str) -> bool | None:
    """Whether the model follows a melody: from the catalogue for a name, from config.json for
    a folder; None when a folder's config cannot tell (resolve_model then says why). A name
    that is neither is a MusicgenError with suggestions, without looking anything up."""
    if is_finetune(name_or_path):
        return False  # fine-tuning takes the text-only models
    p = Path(str(name_or_path)).expanduser()
    if p.exists():
        try:
            kind = json.loads((p / "config.json").read_text()).get("model_type")
        except (OSError, ValueError, AttributeError):
            return None
        return {"musicgen_melody": True, "musicgen": False}.get(kind)
    try:
        return catalog.entry(str(name_or_path)).melody
    except catalog.CatalogError as e:
        raise MusicgenError(str(e)) from None


# ---- composing ---------------------------------------------------------------------------
@dataclass
class AudioComposition:
    """Audio made by `compose_audio`: ``audio`` float32 [frames, channels] (1, or 2 for the
    stereo models) at ``sample_rate`` Hz (32000), and what was asked and used."""

    audio: np.ndarray  # [T, C] float32
    sample_rate: int
    text: str
    request: dict
    settings: dict
    model_name: str
    model_sha256: str
    inputs: dict = field(default_factory=dict)  # melody / audio prompt: path and sha256
    finetune: dict | None = None  # a fine-tuned model: its folder, method, base, weights

    def save(
        self,
        folder: str | Path,
        *,
        formats: Sequence[str] = ("wav",),
        bit_depth: int = 16,
        overwrite: bool = False,
    ) -> dict:
        """Write ``music.<format>`` (wav, flac, ogg, mp3; loudness normalised) and
        ``generation.json`` into the new ``folder``; return the record (`save_audio_piece`)."""
        return save_audio_piece(
            self, folder, formats=formats, bit_depth=bit_depth, overwrite=overwrite
        )


def describe_text(prompt: str, options: dict) -> str:
    """The text MusicGen reads: the prompt, then explicit options spelled as words."""
    words = [prompt.strip()] if prompt.strip() else []
    if options.get("style"):
        words.append(str(options["style"]))
    if options.get("mood"):
        words.append(f"{options['mood']} mood")
    if options.get("instruments"):
        inst = options["instruments"]
        words.append("featuring " + (inst if isinstance(inst, str) else ", ".join(inst)))
    if options.get("key"):
        words.append(f"in {options['key']} {options.get('mode') or ''}".strip())
    elif options.get("mode"):
        words.append(f"in a {options['mode']} key")
    if options.get("tempo_bpm"):
        words.append(f"{float(options['tempo_bpm']):g} bpm")
    return ", ".join(words)


def compose_audio(
    prompt: str = "",
    *,
    model: str = "musicgen-small",
    seconds: float | None = None,
    seed: int = 0,
    creativity: float | None = None,
    guidance: float = DEFAULT_GUIDANCE,
    melody: str | Path | None = None,
    audio_prompt: str | Path | None = None,
    progress: ProgressFn | None = None,
    **options,
) -> AudioComposition:
    """Make audio with a MusicGen model (see the module docstring).

    ``model``: a catalogue name (``disco-musica models``; downloaded from the Hugging Face Hub
    and converted on first use, see `engine.hub.resolve_model`), a converted folder, or a
    fine-tune: one of the user's MusicGen models (``my-sound``, ``my-sound@step-400``) or a
    folder made by ``train musicgen`` (`load_model`).
    ``seconds``: length in seconds (default 10, at most 300; with ``audio_prompt`` the length
    added). ``seed`` 0..2**32-1. ``creativity`` 0..1 sets the temperature (0.5: MusicGen's
    1.0); ``guidance``: the classifier-free guidance scale, 0..20 (default 3). ``melody``: an
    audio file whose chroma conditions a melody model; ``audio_prompt``: an audio file to
    continue. Options
    ``style``, ``mood``, ``instruments``, ``key``, ``mode``, ``tempo_bpm`` become words of
    the text. ``progress`` gets `engine.progress.Progress` events: stage "converting"
    (0..1 of 1) the first time, then "audio frames" (done of total, 50 frames a second).

    Every option is checked (`check_request`) before the model is looked up, downloaded or
    loaded. Returns an `AudioComposition` (``.audio`` float32 [frames, channels] at
    ``.sample_rate`` Hz; ``.save(folder)``). Raises `engine.errors.MusicgenError`.
    The weights are CC-BY-NC 4.0 (non-commercial).
    """
    checked = check_request(
        prompt,
        model=model,
        seconds=seconds,
        seed=seed,
        creativity=creativity,
        guidance=guidance,
        melody=melody,
        audio_prompt=audio_prompt,
        **options,
    )
    seconds, c, guidance = checked.seconds, checked.creativity, checked.guidance
    melody_audio, prompt_audio = checked.melody_audio, checked.prompt_audio
    inputs = {}
    if melody is not None:
        inputs["melody"] = _input_record(melody)
    if audio_prompt is not None:
        inputs["audio_prompt"] = _input_record(audio_prompt)
    mg, sha256, finetune = load_model(model, progress=progress)
    if melody_audio is not None and not mg.config.is_melody:
        raise MusicgenError(
            f"{model} has no melody conditioning; use musicgen-melody or musicgen-stereo-melody"
        )
    text = describe_text(prompt, options)
    temperature = round(0.8 + 0.4 * c, 4)  # creativity 0.5 -> MusicGen's default 1.0
    total = seconds
    if prompt_audio is not None:  # continuation: the duration asked is what is added
        total = seconds + prompt_audio[0].shape[0] / prompt_audio[1]
    settings = {
        "seconds": seconds,
        "total_seconds": round(total, 6),
        "guidance_scale": guidance,
        "temperature": temperature,
        "top_k": DEFAULT_TOP_K,
        "top_p": 0.0,
        "creativity": c,
        "seed": int(seed),
        "text": text,
    }
    kwargs = {
        "duration_s": total,
        "guidance_scale": guidance,
        "temperature": temperature,
        "top_k": DEFAULT_TOP_K,
        "seed": int(seed),
    }
    if melody_audio is not None:
        kwargs.update(melody=melody_audio[0], melody_sr=melody_audio[1])
    if prompt_audio is not None:
        kwargs.update(audio_prompt=prompt_audio[0], audio_prompt_sr=prompt_audio[1])
    # The model raises MusicgenError (a UserError) for what a user can change: a duration too
    # short, an audio prompt too long, no tokenizer in the folder. Anything else is a bug.
    audio = mg.generate(
        [text] if text else None,
        progress=(lambda s, n: progress(Progress("audio frames", s, n))) if progress else None,
        **kwargs,
    )
    request = {
        "prompt": prompt,
        "model": model,
        "seconds": seconds,
        "seed": int(seed),
        "creativity": creativity,
        "guidance": guidance,
        "melody": str(melody) if melody is not None else None,
        "audio_prompt": str(audio_prompt) if audio_prompt is not None else None,
        **{k: v for k, v in options.items() if v is not None},
    }
    return AudioComposition(
        audio=np.asarray(audio[0], np.float32),
        sample_rate=mg.sample_rate,
        text=text,
        request=request,
        settings=settings,
        model_name=str(model),
        model_sha256=sha256,
        inputs=inputs,
        finetune=finetune,
    )


def load_model(model: str, *, progress: ProgressFn | None = None) -> tuple[Any, str, dict | None]:
    """(the `engine.models.musicgen.MusicGen`, the sha256 a record stores, the fine-tune's
    record or None) of a model name or folder.

    A fine-tune (`is_finetune`) is its base with the adapter fused (or the fine-tuned
    decoder weights: `engine.train.musicgen.load_finetuned`); its sha256 pins both parts
    (`engine.train.musicgen.finetune_sha256`), and its record names the folder the weights
    came from, so that `replay_record` uses the same weights even after the model moved on
    to later rounds. Anything else is `engine.hub.resolve_model`'s, with the sha256 of its
    ``model.safetensors``.
    """
    from engine.errors import UserError
    from engine.models.musicgen import MusicGen

    if is_finetune(model):
        from engine.train import musicgen as tuned

        try:
            folder = tuned.resolve_finetuned(model)
            if folder is None:  # (is_finetune said yes: a card that names no weights)
                raise MusicgenError(f"{model} names no fine-tuned weights")
            mg = tuned.load_finetuned(folder)
            info = tuned.read_finetune(folder)[1]
            record = {
                "path": str(folder.resolve()),
                "method": info["method"],
                "base": {"name": info["base"]["name"], "sha256": info["base"]["sha256"]},
                "dataset": info.get("dataset"),
            }
            return mg, tuned.finetune_sha256(folder), record
        except MusicgenError:
            raise
        except UserError as e:  # the card, a missing checkpoint, the base: one line
            raise MusicgenError(str(e)) from None
    folder = resolve_model(model, progress=progress)
    return MusicGen.load(folder), sha256_file(folder / "model.safetensors"), None


def _input_record(path: str | Path) -> dict:
    p = Path(path).expanduser()
    return {"path": str(p.resolve()), "sha256": sha256_file(p)}


# ---- files -------------------------------------------------------------------------------
def save_audio_piece(
    comp: AudioComposition,
    folder: str | Path,
    *,
    formats: Sequence[str] = ("wav",),
    bit_depth: int = 16,
    overwrite: bool = False,
) -> dict:
    """Write the audio files and ``generation.json`` into a new ``folder``; return the record."""
    from engine.audio.render import normalize_loudness, write_audio

    formats = list(dict.fromkeys(f.strip().lower().lstrip(".") for f in formats))
    bad = [f for f in formats if f not in AUDIO_FORMATS]
    if bad or not formats:
        raise MusicgenError(
            f"MusicGen makes audio: formats {', '.join(AUDIO_FORMATS)} (not "
            f"{', '.join(bad) or 'none'}); MIDI and MusicXML come from the score models"
        )
    folder = Path(folder)
    check_new_folder(folder, overwrite, MusicgenError)
    audio, loudness = normalize_loudness(comp.audio, comp.sample_rate)
    with OutputFolder(folder, overwrite=overwrite, error=MusicgenError) as out:
        outputs = {}
        for fmt in formats:
            path = out.path / f"{STEM}.{fmt}"
            write_audio(audio, comp.sample_rate, path, bit_depth=bit_depth)
            outputs[path.name] = file_info(path)
        record = {
            "engine": ENGINE,
            "prompt": comp.request.get("prompt", ""),
            "request": {k: v for k, v in comp.request.items() if k != "prompt"},
            "settings": comp.settings,
            "seed": comp.settings["seed"],
            "model": {
                "name": comp.model_name,
                "sha256": comp.model_sha256,
                "licence": catalog.LICENCE,
                **({"finetune": comp.finetune} if comp.finetune else {}),
            },
            "warning": catalog.NON_COMMERCIAL_WARNING,
            "inputs": comp.inputs,
            "output": {"formats": formats, "bit_depth": bit_depth},
            "render": {"sample_rate": comp.sample_rate, **loudness},
            "replay": f"disco-musica replay {GENERATION_FILE}",
        }
        record = write_record(out.path, record, outputs)
    return with_replaced(record, out)


def generate_audio_piece(
    prompt: str = "",
    folder: str | Path | None = None,
    *,
    formats: Sequence[str] = ("wav",),
    bit_depth: int = 16,
    overwrite: bool = False,
    **kwargs,
) -> dict:
    """`compose_audio` and `save_audio_piece` in one call; the record with ``"folder"``."""
    comp = compose_audio(prompt, **kwargs)
    try:
        if folder is None:
            make_dirs(DEFAULT_ROOT)
            stem = f"{prompt_words(prompt, 'audio')}-{comp.settings['seed']}"
            folder = unique_folder(DEFAULT_ROOT, stem)
        record = save_audio_piece(
            comp, folder, formats=formats, bit_depth=bit_depth, overwrite=overwrite
        )
    except BaseException:
        remove_made_dirs()
        raise
    forget_made_dirs()
    return {**record, "folder": str(folder)}


def replay_record(
    record: dict, folder: str | Path, *, overwrite: bool = False, progress=None
) -> tuple[dict, dict[str, bool]]:
    """Make a recorded MusicGen generation again; (new record, same bytes per file)."""
    request = dict(record["request"])
    prompt = record.get("prompt", "")
    for name in ("melody", "audio_prompt"):
        info = record.get("inputs", {}).get(name)
        if info and sha256_file(Path(info["path"])) != info["sha256"]:
            raise MusicgenError(f"the {name.replace('_', ' ')} {info['path']} has changed since")
    if record["model"].get("finetune"):
        request["model"] = recorded_finetune(record["model"], request.get("model"))
    comp = compose_audio(prompt, progress=progress, **request)
    if comp.model_sha256 != record["model"]["sha256"]:
        raise MusicgenError(
            f"model {request.get('model')} is not the one recorded (sha256 differs)"
        )
    out = record["output"]
    new = save_audio_piece(
        comp, folder, formats=out["formats"], bit_depth=out["bit_depth"], overwrite=overwrite
    )
    same = {
        name: new["outputs"].get(name, {}).get("sha256") == info["sha256"]
        for name, info in record.get("outputs", {}).items()
    }
    return new, same


def recorded_finetune(model: dict, name: str | None) -> str:
    """What to load for the fine-tuned weights a record names (``model``: its ``"model"``
    entry): ``name`` when it still loads them, else the folder they were loaded from, else
    the checkpoint of that model of the user's that holds them (it may have trained further
    rounds since: ``my-sound@round-1``). A `MusicgenError` when none holds them."""
    from engine.errors import UserError
    from engine.train import musicgen as tuned

    want = model["sha256"]
    candidates = [name, model["finetune"].get("path")]
    for c in candidates:
        if not c:
            continue
        try:
            folder = tuned.resolve_finetuned(c)
            if folder is not None and tuned.finetune_sha256(folder) == want:
                return str(c)
        except (UserError, OSError):
            continue
    if name and is_finetune(name) and not Path(name).expanduser().is_dir():
        for tag, folder in tuned.finetune_checkpoints(name):
            try:
                if tuned.finetune_sha256(folder) == want:
                    return tag
            except (UserError, OSError):
                continue
    raise MusicgenError(
        f"the fine-tuned model of the record ({name}, sha256 {want[:12]}...) is not here any "
        f"more: its weights were in {model['finetune'].get('path')}; put that folder back"
    )
