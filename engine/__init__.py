"""Disco-Musica engine: MLX models, tokenization, sampling, training and rendering."""

from engine import _blas  # noqa: F401  (must run before the first `import mlx`)

__version__ = "0.3.0"
