"""``FilterBar``: the ``/`` filter input under the breadcrumbs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input

__all__ = ["FilterBar"]


class FilterBar(Input):
    """Filters the list as you type; Enter keeps the filter, Esc clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "clear", "Clear filter", show=False)]

    @dataclass
    class Updated(Message):
        """The filter text changed (``done``: Enter or Esc was pressed)."""

        text: str
        done: bool = False

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(
            placeholder="filter: regex or text, !text inverts; Enter keeps, Esc clears",
            id=id,
        )

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Updated(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Updated(event.value, done=True))

    def action_clear(self) -> None:
        self.value = ""
        self.post_message(self.Updated("", done=True))
