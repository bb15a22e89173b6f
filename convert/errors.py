"""Errors raised while converting checkpoints, shown to the user in one line."""

from __future__ import annotations

from engine.errors import UserError


class ConversionError(UserError, ValueError):
    """A checkpoint that cannot be converted: missing, unexpected or mis-shaped tensors."""
