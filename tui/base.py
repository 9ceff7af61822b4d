"""``ClusterScreen``: the list view every screen of the console is built on.

Header, breadcrumbs, the ``/`` filter, a :class:`~siotools.tui.table.KeyedTable`, a status
line and the key-hint footer. Subclasses say which columns they show and how to fetch their
rows; the refresh (the app's timer, Ctrl+R, after an action) runs :meth:`fetch` in a named,
exclusive worker and diffs the rows into the table by key.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker

from siotools.exceptions import RedisUnavailableError, SiotoolsError

from .breadcrumbs import Breadcrumbs
from .filter_bar import FilterBar
from .footer import KeyFooter
from .header import ClusterHeader
from .rows import Cell
from .source import ClusterAPI, NamespaceData, Shortfall, load_namespace
from .table import Column, Diff, KeyedTable

if TYPE_CHECKING:
    from .app import SiotoolsApp

__all__ = ["MUTATING", "ClusterScreen", "Rows"]

MUTATING: frozenset[str] = frozenset(
    {"join", "leave", "disconnect", "emit", "leave_all", "disconnect_all"}
)
"""Every action that changes the cluster; all are hidden and refused in read-only mode."""

Rows = dict[str, tuple[Cell, ...]]

FREEZE_ROWS = 10_000
"""From this many rows a load moves the heap out of the cycle collector's way."""


def settle_heap() -> None:
    """Collect the young garbage, then freeze the heap (:func:`gc.freeze`).

    With 100k rows the process holds millions of references, and a full collection walks them
    all: 150-300 ms on the event loop, at whatever key press happens to trigger it. Frozen
    objects are skipped by the collector; they are still freed by reference counting when a
    refresh replaces them (rows, tuples and strings hold no cycles).
    """
    gc.collect(1)
    gc.freeze()


STALE_AFTER = 1.0
"""Seconds after which rows shown again (back from a drill-down) are re-queried at once."""
RESUME_DELAY = 0.2
"""Seconds between showing a screen again and re-querying its rows."""


class ClusterScreen(Screen[None]):
    """A list view of the cluster."""

    VIEW: ClassVar[str] = "view"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort", show=False),
        Binding("S", "reverse", "Reverse sort", show=False),
    ]

    def __init__(self, namespace: str = "/") -> None:
        super().__init__()
        self.namespace = namespace
        self.shortfall: Shortfall | None = None
        self.problem: str | None = None
        self.note: str = ""
        self.loaded_at: float | None = None
        """``time.monotonic()`` of the last successful load (None before the first)."""
        self.stale = False
        """Shown rows are from before this screen was covered; a re-query is under way."""

    # ------------------------------------------------------------------ to override

    def crumbs(self) -> list[str]:
        return ["Namespaces"]

    def columns(self) -> list[Column]:
        raise NotImplementedError

    async def fetch(self) -> Rows:
        """Ask the cluster for the rows (raises SiotoolsError)."""
        raise NotImplementedError

    def cached_rows(self) -> Rows | None:
        """Rows from the app's last answers, shown before the first fetch completes."""
        return None

    def drill(self, key: str) -> None:
        """Enter on row ``key``."""

    def order_key(self, key: str) -> Any:
        """Where row ``key`` goes while no column is sorted: by key (a stable order)."""
        return key

    def compose_extra(self) -> ComposeResult:
        yield from ()

    # ------------------------------------------------------------------ plumbing

    @property
    def siotools(self) -> SiotoolsApp:
        from .app import SiotoolsApp

        app = self.app
        assert isinstance(app, SiotoolsApp)
        return app

    @property
    def cluster(self) -> ClusterAPI:
        return self.siotools.cluster

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#table", KeyedTable)

    def namespace_data(self) -> NamespaceData | None:
        return self.siotools.namespace_cache.get(self.namespace)

    def rooms_known(self, sid: str) -> set[str]:
        """Rooms this screen has itself fetched for socket ``sid`` (none by default)."""
        return set()

    def compose(self) -> ComposeResult:
        yield ClusterHeader(id="header")
        yield Breadcrumbs(self.crumbs(), id="crumbs")
        yield from self.compose_extra()
        yield FilterBar(id="filter")
        yield KeyedTable(self.columns(), natural=self.order_key, id="table")
        yield Static("", id="status")
        yield KeyFooter(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#filter", FilterBar).display = False
        self.table.focus()
        cached = self.cached_rows()
        if cached is not None:
            self.table.set_rows(cached)
            self.update_status()
        self.reload()

    def on_screen_resume(self) -> None:
        # Back from a drill-down: what is shown may be a whole refresh old. Ask again now
        # and say how old the rows are until the answer is in. The query starts just after
        # the screen is back: at 100k rows its diff would otherwise slow that repaint.
        if self.loaded_at is not None and time.monotonic() - self.loaded_at > STALE_AFTER:
            self.stale = True
            self.update_status()
            self.set_timer(RESUME_DELAY, self.reload)

    def reload(self, *, highlight: bool = False) -> Worker[Diff | None]:
        """Fetch the rows again in the background."""
        return self.run_worker(
            partial(self.load, highlight=highlight),
            name=f"load-{self.VIEW}",
            group="load",
            exclusive=True,
            exit_on_error=False,
        )

    async def load(self, *, highlight: bool = False) -> Diff | None:
        """Fetch the rows and diff them into the table; errors go to the status line."""
        try:
            rows = await self.fetch()
        except RedisUnavailableError as exc:
            self.siotools.redis_down(exc)
            return None
        except SiotoolsError as exc:
            self.problem = str(exc)
            self.update_status()
            return None
        self.problem = None
        self.loaded_at = time.monotonic()
        self.stale = False
        # Diffing 100k rows takes a while: do it in a thread so keys stay responsive. Every
        # column's order is sorted there too, so a sort key press does not sort.
        prepared = await asyncio.to_thread(self.table.prepare, rows, every_order=True)
        diff = self.table.apply(prepared, highlight=highlight)
        if diff and len(rows) >= FREEZE_ROWS:
            settle_heap()
        self.update_status()
        return diff

    def start_action(
        self, flow: Callable[[], Coroutine[Any, Any, None]], name: str
    ) -> Worker[None]:
        """Run an action flow (it awaits modals, so it needs a worker)."""

        async def run() -> None:
            await flow()

        worker: Worker[None] = self.run_worker(
            run, name=f"action-{name}", group="action", exclusive=True, exit_on_error=False
        )
        return worker

    def update_status(self) -> None:
        table = self.table
        text = Text()
        if table.row_count == table.total_count:
            text.append(f"{table.total_count} {_rows(table.total_count)}")
        else:
            text.append(f"{table.row_count} of {table.total_count} {_rows(table.total_count)}")
        if table.filter_text:
            text.append("  filter ")
            text.append(table.filter_text, "bold")
        if table.sort_column is not None:
            order = "▼" if table.sort_reverse else "▲"
            text.append(f"  sorted by {table.columns[table.sort_column].label} {order}")
        if self.shortfall is not None:
            text.append(f"  partial: {self.shortfall}", "bold yellow")
        if self.problem:
            text.append(f"  {self.problem}", "bold red")
        if self.stale and self.loaded_at is not None:
            age = time.monotonic() - self.loaded_at
            text.append(f"  data from {age:.0f}s ago, refreshing…", "yellow")
        if self.note:
            text.append("  ")
            text.append(self.note, "italic")
        self.query_one("#status", Static).update(text)

    def set_note(self, note: str) -> None:
        self.note = note
        self.update_status()

    # ------------------------------------------------------------------ bindings

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in MUTATING and self.siotools.read_only)

    def action_back(self) -> None:
        bar = self.query_one("#filter", FilterBar)
        if bar.display or self.table.filter_text:
            bar.action_clear()
            return
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def action_filter(self) -> None:
        bar = self.query_one("#filter", FilterBar)
        bar.display = True
        bar.value = self.table.filter_text
        bar.focus()

    @on(FilterBar.Updated)
    def _filtered(self, event: FilterBar.Updated) -> None:
        self.table.set_filter(event.text)
        if event.done:
            bar = self.query_one("#filter", FilterBar)
            bar.display = bool(event.text)
            self.table.focus()
        self.update_status()

    def action_sort(self) -> None:
        self.table.cycle_sort()
        self.update_status()

    def action_reverse(self) -> None:
        self.table.reverse_sort()
        self.update_status()

    @on(KeyedTable.Chosen)
    def _chosen(self, event: KeyedTable.Chosen) -> None:
        self.drill(event.key)

    def help_keys(self) -> list[tuple[str, str, str]]:
        """(keys, description, note) for every binding of this view, the table and the app."""
        order: list[str] = []
        keys: dict[str, list[str]] = {}
        described: dict[str, str] = {}
        for node in (self, self.table, self.siotools):
            for group in node._bindings.key_to_bindings.values():
                for binding in group:
                    if not binding.description:
                        continue
                    if binding.action not in keys:
                        order.append(binding.action)
                        keys[binding.action] = []
                        described[binding.action] = binding.description
                    shown = self.app.get_key_display(binding)
                    if shown not in keys[binding.action]:
                        keys[binding.action].append(shown)
        rows = []
        for action in order:
            note = ""
            if action in MUTATING:
                note = "disabled: read-only" if self.siotools.read_only else "asks first"
            rows.append((" ".join(keys[action]), described[action], note))
        return rows


class NamespaceScreen(ClusterScreen):
    """A list built from one namespace load (rooms and their members), shared with the
    other screens of that namespace through the app's namespace cache."""

    def rows_of(self, data: NamespaceData) -> Rows:
        """The rows of this view, from a namespace load."""
        raise NotImplementedError

    def cached_rows(self) -> Rows | None:
        data = self.namespace_data()
        return None if data is None else self.rows_of(data)

    async def fetch(self) -> Rows:
        data = await load_namespace(self.cluster, self.namespace)
        self.siotools.namespace_cache[self.namespace] = data
        self.shortfall = data.shortfall
        return await asyncio.to_thread(self.rows_of, data)


def _rows(n: int) -> str:
    return "row" if n == 1 else "rows"
