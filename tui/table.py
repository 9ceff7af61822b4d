"""``KeyedTable``: a virtual table keyed by row id, for lists of 100k sockets.

Textual's ``DataTable`` stores every row in Python and re-measures on load, which costs
seconds at 100k rows, and its ``clear()`` loses the cursor. This table keeps the rows in a
dict keyed by id and renders only the visible lines (Line API). :meth:`KeyedTable.set_rows`
diffs the new rows against the old ones by key: when nothing changed it does nothing, and
otherwise the cursor stays on the same key. Filtering and sorting work on the key list.

At 100k rows a key press must not do O(n log n) work on the event loop: the ascending order
of every column is computed once per data load (:meth:`KeyedTable.prepare`, in a thread), a
reversed sort is that permutation reversed (ties then come in reverse insertion order), and
the recent filter results are kept, so deleting a filter character shows a cached view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .rows import Cell, column_sort_keys, compile_filter, narrows, plain

__all__ = ["Column", "Diff", "KeyedTable", "Prepared", "ascending"]

NAME_ORDER = -1
"""The key of the by-key order in :attr:`Prepared.orders` (the order without a sort)."""
_MAX_WIDTH = 64
_FILTER_CACHE = 16
_LINE_CACHE = 4096


def ascending(rows: Mapping[str, Sequence[Cell]], col: int) -> list[str]:
    """The keys of ``rows`` sorted by column ``col`` (stable: ties keep insertion order)."""
    keys = column_sort_keys(rows, col)
    return sorted(keys, key=keys.__getitem__)


def _default_search(key: str, cells: tuple[Cell, ...]) -> str:
    return "\t".join(plain(c) for c in (key, *cells)).lower()


@dataclass(frozen=True, slots=True)
class Column:
    """A table column; ``width`` None fits the content (up to 64 cells)."""

    label: str
    width: int | None = None
    numeric: bool = False


@dataclass(frozen=True, slots=True)
class Diff:
    """What :meth:`KeyedTable.set_rows` changed, by key."""

    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    changed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @classmethod
    def between(
        cls, old: Mapping[str, tuple[Cell, ...]], new: Mapping[str, tuple[Cell, ...]]
    ) -> Diff:
        """What changed from the rows ``old`` to the rows ``new``, by key."""
        changed = frozenset(k for k, cells in new.items() if k in old and old[k] != cells)
        return cls(frozenset(new.keys() - old.keys()), frozenset(old.keys() - new.keys()), changed)

    def summary(self) -> str:
        parts = []
        if self.added:
            parts.append(f"+{len(self.added)}")
        if self.removed:
            parts.append(f"-{len(self.removed)}")
        if self.changed:
            parts.append(f"~{len(self.changed)}")
        return " ".join(parts) or "no change"


@dataclass(frozen=True, slots=True)
class Prepared:
    """Rows diffed and ordered off the event loop, ready for :meth:`KeyedTable.apply`."""

    rows: dict[str, tuple[Cell, ...]]
    search: dict[str, str]
    diff: Diff
    widths: list[int]
    view: list[str]
    view_texts: list[str] | None
    generation: int
    base: list[str] | None
    orders: dict[int, list[str]]


class KeyedTable(ScrollView, can_focus=True):
    """Rows keyed by id; a sticky header line; cursor, filter and sort on the key list."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "Top", show=False),
        Binding("end,G", "jump(-1)", "Bottom", show=False),
        Binding("enter", "choose", "Open", show=False),
    ]

    COMPONENT_CLASSES = {
        "keyed-table--header",
        "keyed-table--cursor",
        "keyed-table--changed",
    }

    cursor: reactive[int] = reactive(0, layout=False, repaint=True, init=False)

    @dataclass
    class Chosen(Message):
        """Enter on a row."""

        table: KeyedTable
        key: str

        @property
        def control(self) -> KeyedTable:
            return self.table

    @dataclass
    class CursorMoved(Message):
        """The cursor moved to another row (or the table emptied: ``key`` None)."""

        table: KeyedTable
        key: str | None

        @property
        def control(self) -> KeyedTable:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        search: Callable[[str, tuple[Cell, ...]], str] | None = None,
        compile_filter: Callable[[str], Callable[[str], bool] | None] = compile_filter,
        natural: Callable[[str], Any] | None = None,
        name: str | None = None,
        id: str | None = None,  # noqa: A002
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = list(columns)
        self._search_of = search or _default_search
        self._compile = compile_filter
        self.natural = natural
        """The sort key of the order without a sort column (None: the row key itself)."""
        self._rows: dict[str, tuple[Cell, ...]] = {}
        self._search: dict[str, str] = {}
        self._view: list[str] = []
        self._widths = [len(c.label) for c in self.columns]
        self._filter_text = ""
        self.sort_column: int | None = None
        self.sort_reverse = False
        self.highlighted: set[str] = set()
        self._cursor_key: str | None = None
        self._generation = 0
        self._sorted: list[str] | None = []
        self._orders: dict[int, list[str]] = {}
        self._view_texts: list[str] | None = []
        self._filter_cache: dict[str, tuple[list[str], list[str] | None]] = {}
        self._lines: dict[str, list[Segment]] = {}

    # ------------------------------------------------------------------ data

    @property
    def row_count(self) -> int:
        """Rows after filtering."""
        return len(self._view)

    @property
    def total_count(self) -> int:
        """Rows before filtering."""
        return len(self._rows)

    @property
    def keys(self) -> list[str]:
        """Row keys in display order (filtered and sorted)."""
        return list(self._view)

    @property
    def cursor_key(self) -> str | None:
        """The key under the cursor."""
        if 0 <= self.cursor < len(self._view):
            return self._view[self.cursor]
        return None

    def row(self, key: str) -> tuple[Cell, ...] | None:
        return self._rows.get(key)

    @property
    def rows(self) -> Mapping[str, tuple[Cell, ...]]:
        """Every row by key (unfiltered); a later change installs a new mapping, so what
        this returns stays as it was."""
        return self._rows

    def mark(self, diff: Diff) -> None:
        """Highlight the rows ``diff`` added or changed, until the next change."""
        self.highlighted = set(diff.added | diff.changed)
        self.refresh()

    def set_rows(self, rows: Mapping[str, Sequence[Cell]], *, highlight: bool = False) -> Diff:
        """Replace the rows, applying only the difference; the cursor keeps its key.

        ``highlight`` marks added and changed rows until the next call.
        """
        return self.apply(self.prepare(rows), highlight=highlight)

    def prepare(self, rows: Mapping[str, Sequence[Cell]], *, every_order: bool = False) -> Prepared:
        """The expensive half of :meth:`set_rows` (diff, search texts, widths, order).

        It only reads the table, so it may run in a thread while the table stays live;
        :meth:`apply` installs the result on the event loop. ``every_order`` also sorts by
        every column (else a column is sorted when first asked for), so that a later sort
        key press costs no sorting.
        """
        old = self._rows
        old_search = self._search
        search_of = self._search_of
        added: set[str] = set()
        changed: set[str] = set()
        new_rows: dict[str, tuple[Cell, ...]] = {}
        new_search: dict[str, str] = {}
        for key, cells in rows.items():
            cells = tuple(cells)
            previous = old.get(key)
            if previous is None:
                added.add(key)
                new_search[key] = search_of(key, cells).lower()
            elif previous != cells:
                changed.add(key)
                new_search[key] = search_of(key, cells).lower()
            else:
                new_search[key] = old_search[key]
            new_rows[key] = cells
        removed = old.keys() - new_rows.keys()
        diff = Diff(frozenset(added), frozenset(removed), frozenset(changed))
        generation = self._generation
        if not diff:
            return Prepared(
                new_rows,
                new_search,
                diff,
                self._widths,
                self._view,
                self._view_texts,
                generation,
                self._sorted,
                self._orders,
            )
        widths = self._measure(new_rows, added | changed, full=bool(removed))
        orders: dict[int, list[str]] = {}
        if every_order:
            for col in range(len(self.columns)):
                orders[col] = ascending(new_rows, col)
        elif self.sort_column is not None:
            orders[self.sort_column] = ascending(new_rows, self.sort_column)
        orders[NAME_ORDER] = sorted(new_rows, key=self.natural)
        base = self._base_order(new_rows, orders)
        view, texts = self._filtered(base, new_search, None)
        return Prepared(new_rows, new_search, diff, widths, view, texts, generation, base, orders)

    def apply(self, prepared: Prepared, *, highlight: bool = False) -> Diff:
        """Install what :meth:`prepare` computed (cheap; on the event loop)."""
        diff = prepared.diff
        self.highlighted = set(diff.added | diff.changed) if highlight else set()
        if not diff:
            if highlight:
                self.refresh()
            return diff
        self._rows = prepared.rows
        self._search = prepared.search
        self._set_widths(prepared.widths)
        self._sorted = prepared.base
        self._orders = prepared.orders
        self._filter_cache = {}
        self._lines = {}
        if prepared.generation == self._generation:
            self._install(prepared.view, prepared.view_texts)
        else:  # the filter or the sort changed while preparing
            self._rebuild()
        return diff

    def set_filter(self, text: str) -> None:
        """Show only the rows matching ``text`` (see :mod:`siotools.tui.rows`)."""
        if text != self._filter_text:
            previous = self._filter_text
            self._filter_text = text
            self._rebuild(narrow_from=previous)

    @property
    def filter_text(self) -> str:
        return self._filter_text

    def sort_by(self, column: int | None, reverse: bool = False) -> None:
        """Sort by ``column`` (None: by key)."""
        self.sort_column = column
        self.sort_reverse = reverse
        self._sorted = None
        self._filter_cache = {}
        self._rebuild()

    def cycle_sort(self) -> None:
        """Sort by the next column (after the last one: back to the order by key)."""
        if self.sort_column is None:
            self.sort_by(0, self.sort_reverse)
        elif self.sort_column + 1 < len(self.columns):
            self.sort_by(self.sort_column + 1, self.sort_reverse)
        else:
            self.sort_by(None, False)

    def reverse_sort(self) -> None:
        self.sort_by(self.sort_column if self.sort_column is not None else 0, not self.sort_reverse)

    def move_to(self, key: str) -> bool:
        """Put the cursor on ``key`` if it is shown."""
        try:
            index = self._view.index(key)
        except ValueError:
            return False
        self.cursor = index
        return True

    def _set_widths(self, widths: list[int]) -> None:
        if widths != self._widths:
            self._widths = widths
            self._lines = {}

    def _measure(
        self, rows: dict[str, tuple[Cell, ...]], keys: set[str], *, full: bool
    ) -> list[int]:
        widths = [len(c.label) for c in self.columns] if full else list(self._widths)
        source = rows.keys() if full else keys
        for key in source:
            cells = rows[key]
            for i, cell in enumerate(cells[: len(widths)]):
                n = len(plain(cell))
                if n > widths[i]:
                    widths[i] = min(n, _MAX_WIDTH)
        return widths

    def _base_order(
        self, rows: dict[str, tuple[Cell, ...]], orders: dict[int, list[str]]
    ) -> list[str]:
        """Every key, sorted by the current sort column (by key when none).

        Answers arrive in any order (every node replies when it likes), so the unsorted
        order is the keys' own: a row never moves because a refresh came back shuffled.
        ``orders`` caches the ascending order of each column; a missing one is added.
        """
        col = self.sort_column
        if col is None:
            order = orders.get(NAME_ORDER)
            if order is None:
                order = orders[NAME_ORDER] = sorted(rows, key=self.natural)
            return order
        order = orders.get(col)
        if order is None:
            order = orders[col] = ascending(rows, col)
        return order[::-1] if self.sort_reverse else order

    def _filtered(
        self, keys: list[str], search: dict[str, str], texts: list[str] | None
    ) -> tuple[list[str], list[str] | None]:
        """The keys (and their search texts, in the same order) that match the filter.

        ``texts`` are the search texts of ``keys`` when known: scanning a list is some three
        times faster than looking 100k keys up in a dict.
        """
        predicate = self._compile(self._filter_text)
        if predicate is None:
            return keys, texts
        if texts is None:
            texts = [search[k] for k in keys]
        mask = list(map(predicate, texts))
        return list(compress(keys, mask)), list(compress(texts, mask))

    def _rebuild(self, *, narrow_from: str | None = None) -> None:
        """Recompute the shown keys after a filter or sort change.

        The sorted list of every key is cached, so a filter change never sorts; a filter
        that only narrows the previous plain-text filter scans the shown rows only.
        """
        self._generation += 1
        if self._sorted is None:
            self._sorted = self._base_order(self._rows, self._orders)
        text = self._filter_text
        cache = self._filter_cache
        found = cache.pop(text, None)
        if found is None:
            if (
                narrow_from is not None
                and self._compile is compile_filter
                and narrows(narrow_from, text)
            ):
                found = self._filtered(self._view, self._search, self._view_texts)
            else:
                found = self._filtered(self._sorted, self._search, None)
        cache[text] = found  # the most recent last
        while len(cache) > _FILTER_CACHE:
            del cache[next(iter(cache))]
        self._install(*found)

    def _install(self, view: list[str], texts: list[str] | None = None) -> None:
        keep = self._cursor_key if self._cursor_key is not None else self.cursor_key
        self._view = view
        self._view_texts = texts
        index = 0
        if keep is not None:
            try:
                index = view.index(keep)
            except ValueError:
                index = min(self.cursor, max(len(view) - 1, 0))
        self.virtual_size = Size(self._line_width(), len(view) + 1)
        self.set_reactive(KeyedTable.cursor, index)
        self._cursor_key = self.cursor_key
        self._scroll_cursor_into_view()
        self.refresh()
        self.post_message(self.CursorMoved(self, self._cursor_key))

    def _line_width(self) -> int:
        return sum(self._widths) + 2 * len(self._widths)

    # ------------------------------------------------------------------ cursor

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self._view) - 1)) if self._view else 0

    def watch_cursor(self, old: int, new: int) -> None:
        self._cursor_key = self.cursor_key
        self._scroll_cursor_into_view()
        self.post_message(self.CursorMoved(self, self._cursor_key))

    def _body_height(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def _scroll_cursor_into_view(self) -> None:
        top = round(self.scroll_offset.y)
        height = self._body_height()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        self.cursor += delta

    def action_page(self, direction: int) -> None:
        self.cursor += direction * self._body_height()

    def action_jump(self, where: int) -> None:
        self.cursor = 0 if where == 0 else len(self._view) - 1

    def action_choose(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Chosen(self, key))

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            return
        index = round(self.scroll_offset.y) + event.y - 1
        if 0 <= index < len(self._view):
            if index == self.cursor and event.chain > 1:
                self.action_choose()
            self.cursor = index

    def on_resize(self, event: events.Resize) -> None:
        self._scroll_cursor_into_view()

    # ------------------------------------------------------------------ rendering

    def _cells_text(self, cells: Sequence[Cell], style: Style | None = None) -> Text:
        line = Text(no_wrap=True, overflow="ellipsis", style=style or "")
        for i, column in enumerate(self.columns):
            width = column.width or self._widths[i]
            cell = cells[i] if i < len(cells) else ""
            text = cell.copy() if isinstance(cell, Text) else Text(plain(cell))
            text.truncate(width, overflow="ellipsis", pad=True)
            if column.numeric:
                text.rstrip()
                text = Text(" " * (width - text.cell_len)) + text
                text.truncate(width, pad=True)
            line.append(" ")
            line.append_text(text)
            line.append(" ")
        return line

    def _header(self) -> Text:
        labels: list[Cell] = []
        for i, column in enumerate(self.columns):
            mark = ""
            if i == self.sort_column:
                mark = " ▼" if self.sort_reverse else " ▲"
            labels.append(column.label + mark)
        return self._cells_text(labels)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        scroll_x = round(self.scroll_offset.x)
        if y == 0:
            text = self._header()
            style = self.get_component_rich_style("keyed-table--header")
        else:
            index = round(self.scroll_offset.y) + y - 1
            if index >= len(self._view):
                return Strip.blank(width, base)
            key = self._view[index]
            segments = self._lines.get(key)
            if segments is None:
                if len(self._lines) > _LINE_CACHE:
                    self._lines = {}
                text = self._cells_text(self._rows[key])
                segments = self._lines[key] = list(text.render(self.app.console))
            style = base
            if key in self.highlighted:
                style = style + self.get_component_rich_style("keyed-table--changed")
            if index == self.cursor:
                style = style + self.get_component_rich_style("keyed-table--cursor")
            strip = Strip(Segment.apply_style(segments, style))
            return strip.crop(scroll_x, scroll_x + width).extend_cell_length(width, style)
        segments = list(text.render(self.app.console))
        strip = Strip(Segment.apply_style(segments, style))
        return strip.crop(scroll_x, scroll_x + width).extend_cell_length(width, style)
