"""``EmitPrompt``: an event name and its JSON arguments."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

__all__ = ["EmitPrompt", "EmitRequest", "parse_args"]


@dataclass(frozen=True, slots=True)
class EmitRequest:
    event: str
    args: list[Any]


def parse_args(text: str) -> list[Any]:
    """JSON arguments: a JSON array is the argument list, any other JSON value one argument.

    Raises:
        ValueError: Not JSON.
    """
    text = text.strip()
    if not text:
        return []
    value = json.loads(text)
    return value if isinstance(value, list) else [value]


class EmitPrompt(ModalScreen[EmitRequest | None]):
    """Event name, then JSON arguments; Enter on the arguments submits."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Emit to {self.target}", id="title")
            yield Input(placeholder="event name", id="event")
            yield Input(placeholder='JSON arguments, e.g. ["hello", {"n": 1}]', id="args")
            yield Static("", id="error")

    def on_mount(self) -> None:
        self.query_one("#event", Input).focus()

    @on(Input.Submitted, "#event")
    def _next(self) -> None:
        self.query_one("#args", Input).focus()

    @on(Input.Submitted, "#args")
    def _submit(self) -> None:
        event = self.query_one("#event", Input).value.strip()
        error = self.query_one("#error", Static)
        if not event:
            error.update("the event name is empty")
            self.query_one("#event", Input).focus()
            return
        try:
            args = parse_args(self.query_one("#args", Input).value)
        except ValueError as exc:
            error.update(f"arguments are not JSON: {exc}")
            return
        self.dismiss(EmitRequest(event, args))

    def action_cancel(self) -> None:
        self.dismiss(None)
