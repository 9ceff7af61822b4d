"""``RoomPicker``: pick a room from a list or type a new one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, OptionList

__all__ = ["RoomPicker"]


class RoomPicker(ModalScreen[str | None]):
    """Type a room (Tab completes) or choose one below; Enter picks, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", show=False),
        Binding("down", "to_list", "List", show=False),
    ]

    def __init__(self, title: str, rooms: Sequence[str], *, free_text: bool = True) -> None:
        super().__init__()
        self.title_text = title
        self.rooms = list(rooms)
        self.free_text = free_text

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="title")
            if self.free_text:
                yield Input(
                    placeholder="room name",
                    suggester=SuggestFromList(self.rooms, case_sensitive=True),
                    id="room",
                )
            yield OptionList(*self.rooms, id="rooms")

    def on_mount(self) -> None:
        if self.free_text:
            self.query_one("#room", Input).focus()
        else:
            self.query_one("#rooms", OptionList).focus()

    @on(Input.Changed, "#room")
    def _narrow(self, event: Input.Changed) -> None:
        options = self.query_one("#rooms", OptionList)
        options.clear_options()
        needle = event.value.lower()
        options.add_options([r for r in self.rooms if needle in r.lower()])

    @on(Input.Submitted, "#room")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value:
            self.dismiss(event.value)

    @on(OptionList.OptionSelected, "#rooms")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(str(event.option.prompt))

    def action_to_list(self) -> None:
        options = self.query_one("#rooms", OptionList)
        if options.option_count:
            options.focus()
            options.highlighted = options.highlighted or 0

    def action_cancel(self) -> None:
        self.dismiss(None)
