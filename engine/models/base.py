"""What every architecture's hyper-parameters share: `BaseModelArgs`.

Each model's args are a dataclass deriving from `BaseModelArgs`, whose field names are the
Hugging Face ``config.json`` names, so a config builds its args by keeping the keys the
dataclass knows and ignoring the rest (``architectures``, ``torch_dtype``, …).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Self


@dataclass
class BaseModelArgs:
    """Base of the models' hyper-parameter dataclasses."""

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> Self:
        """Build from a ``config.json`` dict; keys this model does not know are ignored.

        Values are passed as they are: a missing key takes the field's default, and the
        dataclass (its ``__post_init__``) does any checking.
        """
        fields = inspect.signature(cls).parameters
        return cls(**{k: v for k, v in params.items() if k in fields})
