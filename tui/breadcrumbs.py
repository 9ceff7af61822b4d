"""``Breadcrumbs``: where you are (Namespaces > / > rooms > lobby)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

__all__ = ["Breadcrumbs"]


class Breadcrumbs(Static):
    """The path from the namespaces list to the current view."""

    def __init__(self, crumbs: Sequence[str], *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.crumbs = list(crumbs)

    def on_mount(self) -> None:
        self.update(self.render_crumbs())

    def render_crumbs(self) -> Text:
        text = Text()
        for i, crumb in enumerate(self.crumbs):
            if i:
                text.append(" \u203a ", "dim")
            text.append(crumb, "bold" if i == len(self.crumbs) - 1 else "")
        return text
