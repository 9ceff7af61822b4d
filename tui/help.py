"""``HelpScreen``: every key of the current view, and the filter syntax."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

__all__ = ["HelpScreen"]

FILTER_HELP = (
    "Filter (/): a case-insensitive regular expression over every column; text that is not "
    "a valid regex matches as a plain substring; a leading ! keeps the rows that do not "
    "match. Enter keeps the filter, Esc clears it. Ctrl+P opens the command palette: every "
    "action and view by name."
)


class HelpScreen(ModalScreen[None]):
    """Keys as (key, description, note) rows."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, view: str, keys: Sequence[tuple[str, str, str]]) -> None:
        super().__init__()
        self.view = view
        self.keys = list(keys)

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_column(style="dim")
        for key, description, note in self.keys:
            table.add_row(key, description, note)
        with VerticalScroll(id="dialog"):
            yield Label(f"Keys: {self.view}", id="title")
            yield Static(table)
            yield Static(Text(FILTER_HELP), id="filter-help")

    def action_close(self) -> None:
        self.dismiss(None)
