"""Disco-Musica engine: MLX models, tokenization, sampling, training and rendering.

The public Python API, in one place (see docs/api.md)::

    from engine import compose, load, transcribe, harmonize, accompany, replay

Each name is imported from its home on first use (PEP 562), so ``import engine`` stays light:
no MLX, music21, librosa or torch until a function is called for.
"""

from engine import (
    _blas,  # noqa: F401  (must run before the first `import mlx`)
    _mlx_exit,  # noqa: F401  (MLX's caches emptied at exit, before Python ends)
)

__version__ = "0.11.0"

# Public name -> the module it lives in. The functions are those modules' own (not copies);
# nothing inside engine imports them from here (tests/test_api.py checks both).
_API = {
    # text to music
    "compose": "engine.pipelines.compose",
    "compose_variations": "engine.pipelines.compose",
    "compose_by_bar": "engine.pipelines.live",
    "compose_audio": "engine.pipelines.musicgen",
    # the score model itself
    "load": "engine.symbolic.score_api",
    # from recordings and MIDI files
    "transcribe": "engine.pipelines.transcribe",
    "harmonize": "engine.pipelines.workflows",
    "restyle": "engine.pipelines.workflows",
    "continue_audio": "engine.pipelines.workflows",
    "accompany": "engine.pipelines.accompany",
    # provenance, the library, audio, errors
    "replay": "engine.pipelines.replay",
    "Library": "engine.library.store",
    "keeping": "engine.library.store",
    # datasets of your own music
    "Dataset": "engine.data.store",
    "finetune_score": "engine.train.finetune",
    "FinetuneOptions": "engine.train.finetune",
    "TrainControl": "engine.train.trainer",
    "render_midi": "engine.audio.render",
    "UserError": "engine.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    home = _API.get(name)
    if home is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # found once; later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
