"""The footer of keys: Textual's `Footer`, rebuilt only when the keys it shows change.

Textual's footer rebuilds itself (new key widgets, each styled) whenever the screen's
bindings are updated, which is every change of focus, even when the keys it shows stay the
same. On the Make screen that was about 230 style applications and half a second of work
for every Tab press (measured with Textual 8.2 in Pilot). `KeysFooter` compares what it
would show with what it shows and rebuilds only on a difference.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class KeysFooter(Footer):
    """A `Footer` that skips rebuilds which would show the same keys."""

    _shown: tuple | None = None

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self._recompose_if_changed)

    def shown_keys(self) -> tuple:
        """What `Footer.compose` reads of the active bindings: the bindings it shows and
        the command palette's, in order."""
        palette = self.app.COMMAND_PALETTE_BINDING
        keys = []
        for key, (_node, b, enabled, tooltip) in self.screen.active_bindings.items():
            if b.show or key == palette:
                group = (b.group.description, b.group.compact) if b.group else None
                keys.append(
                    (key, b.key, b.key_display, b.description, b.action, b.show, enabled)
                    + (tooltip, b.tooltip, group)
                )
        return (self.show_command_palette, self.app.ENABLE_COMMAND_PALETTE, *keys)

    async def _recompose_if_changed(self) -> None:
        shown = self.shown_keys()
        if shown != self._shown:
            self._shown = shown
            await self.recompose()
