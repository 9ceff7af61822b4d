"""``ConfirmAction``: the blast radius of a mutating action, then its outcome.

The modal shows what will happen and to how many sockets; ``y``/Enter runs the action in the
modal (the action callable gets the "close the connection" choice when the modal offers it)
and the modal then shows the outcome until it is closed. It dismisses with the
:class:`~siotools.tui.source.Outcome`, or None when cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Label, Static

from .source import Outcome

__all__ = ["ConfirmAction"]

Run = Callable[[bool], Awaitable[Outcome]]


class ConfirmAction(ModalScreen[Outcome | None]):
    """Confirm, run, report."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Run", show=False),
        Binding("n,escape", "cancel", "Cancel", show=False),
    ]

    def __init__(
        self,
        title: str,
        blast_radius: Sequence[str],
        run: Run,
        *,
        offer_close: bool = False,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.blast_radius = list(blast_radius)
        self._run_action = run
        self.offer_close = offer_close
        self.outcome: Outcome | None = None
        self.running = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="title")
            yield Static(Text("\n".join(self.blast_radius)), id="radius")
            if self.offer_close:
                yield Checkbox("also close the client's connection (every namespace)", id="close")
            yield Static("", id="outcome")
            with Horizontal(id="buttons"):
                yield Button("Run (y)", variant="error", id="confirm")
                yield Button("Cancel (n)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        if self.outcome is not None:
            self.dismiss(self.outcome)
            return
        if self.running:
            return
        self.running = True
        self.query_one("#confirm", Button).disabled = True
        self.query_one("#cancel", Button).disabled = True
        self.query_one("#outcome", Static).update("running…")
        close = self.offer_close and self.query_one("#close", Checkbox).value
        self._run(close)

    @work(name="confirm-run", exclusive=True, exit_on_error=False)
    async def _run(self, close: bool) -> None:
        outcome = await self._run_action(close)
        self.outcome = outcome
        self.running = False
        style = "bold green" if outcome.ok else "bold red"
        self.query_one("#outcome", Static).update(
            Text.assemble(("OK  " if outcome.ok else "FAILED  ", style), outcome.summary)
        )
        confirm = self.query_one("#confirm", Button)
        confirm.label = "Close (enter)"
        confirm.variant = "primary"
        confirm.disabled = False
        confirm.focus()
        self.query_one("#cancel", Button).display = False

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        if self.running:
            return
        self.dismiss(self.outcome)
