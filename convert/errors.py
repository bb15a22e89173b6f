"""Errors raised while converting checkpoints, shown to the user in one line."""

from __future__ import annotations

from engine.errors import UserError


class ConversionError(UserError, ValueError):
    """A checkpoint that cannot be converted: missing, unexpected or mis-shaped tensors."""


class HubUnreachableError(ConversionError):
    """A Hub download that cannot happen here: no network, or ``HF_HUB_OFFLINE`` set and the
    files not in the Hugging Face cache. ``reason`` says which, for callers that phrase the
    way out themselves (``disco-musica generate`` names the model, not the repo)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason
