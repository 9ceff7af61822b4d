"""``Unreachable``: Redis cannot be reached; say so and offer a retry."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

__all__ = ["Unreachable"]


class Unreachable(ModalScreen[bool]):
    """Dismisses True on ``r`` (retry); ``q`` quits the app with exit status 2."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Retry"),
        Binding("q", "quit_unreachable", "Quit"),
    ]

    def __init__(self, url: str, reason: str) -> None:
        super().__init__()
        self.url = url
        self.reason = reason

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Redis is unreachable", id="title")
            yield Static(
                Text.assemble(
                    "Cannot reach ",
                    (self.url, "bold"),
                    ".\n",
                    self.reason,
                    "\n\n",
                    "Press r to retry, q to quit.",
                ),
                id="reason",
            )

    def action_quit_unreachable(self) -> None:
        """q: quit with exit status 2 (the app knows why)."""
        quit_unreachable = getattr(self.app, "quit_unreachable", None)
        if quit_unreachable is not None:
            quit_unreachable()
        else:
            self.app.exit(return_code=2)

    def action_retry(self) -> None:
        self.dismiss(True)
