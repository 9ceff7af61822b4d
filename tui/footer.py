"""``KeyFooter``: Textual's key-hint footer, rebuilt only when the shown keys change."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

__all__ = ["KeyFooter"]

Shown = tuple[tuple[str, str, str, bool, str], ...]


def shown_keys(screen: Screen[Any]) -> Shown:
    """What the footer shows of ``screen``'s active bindings."""
    return tuple(
        (binding.key, binding.description, binding.action, enabled, tooltip)
        for _, binding, enabled, tooltip in screen.active_bindings.values()
        if binding.show or binding.action == "command_palette"
    )


class KeyFooter(Footer):
    """A :class:`~textual.widgets.Footer` that skips rebuilding when nothing it shows changed.

    The footer recomposes every key on every bindings change (a focus move, a screen
    switch): some 40 ms a time for a dozen keys, on the key press that caused it.
    """

    _shown: Shown | None = None

    def compose(self) -> ComposeResult:
        if self._bindings_ready:
            self._shown = shown_keys(self.screen)
        yield from super().compose()

    def bindings_changed(self, screen: Screen[Any]) -> None:
        if (
            self._shown is not None
            and self.is_attached
            and screen is self.screen
            and shown_keys(screen) == self._shown
        ):
            return
        super().bindings_changed(screen)
