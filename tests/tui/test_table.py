"""``KeyedTable``: cached sort orders and filter views agree with computing them afresh."""

from __future__ import annotations

from siotools.tui.rows import sort_key
from siotools.tui.table import Column, KeyedTable
from textual.app import App, ComposeResult

ROWS = {
    "k1": ("beta", 2, "x"),
    "k2": ("Alpha", 2, 1),
    "k3": ("alpha", 10, "y"),
    "k4": ("gamma", 2, 2.5),
    "k5": ("beta", 1, "ab"),
    "k6": ("Beta", 10, "abc"),
}


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable([Column("Name"), Column("N", numeric=True), Column("Mixed")], id="t")


def expected(col: int, reverse: bool) -> list[str]:
    """Stable ascending order (ties keep insertion order); a reversed sort is it reversed."""
    order = sorted(ROWS, key=lambda k: sort_key(ROWS[k][col]))
    return order[::-1] if reverse else order


async def test_sort_orders_ties_and_mixed_types() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one("#t", KeyedTable)
        table.set_rows(ROWS)
        for col in range(3):
            for reverse in (False, True):
                table.sort_by(col, reverse)
                await pilot.pause()
                assert table.keys == expected(col, reverse), (col, reverse)
        # the orders are kept per load: new rows give new orders
        table.set_rows({**ROWS, "k7": ("aaa", 0, "")})
        table.sort_by(1)
        assert table.keys[0] == "k7"
        table.sort_by(None)
        assert table.keys == [*ROWS, "k7"]


async def test_filter_narrowing_and_deleting_agree_with_a_fresh_scan() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one("#t", KeyedTable)
        table.set_rows(ROWS)
        table.sort_by(0, True)
        seen = {}
        for text in ["a", "ab", "abc", "ab", "a", "", "b", "!b"]:
            table.set_filter(text)
            await pilot.pause()
            fresh = KeyedTable(table.columns)
            fresh.sort_column, fresh.sort_reverse = 0, True
            fresh._rows = table._rows
            fresh._search = table._search
            fresh._orders = {}
            fresh._filter_text = text
            base = fresh._base_order(fresh._rows, fresh._orders)
            assert table.keys == fresh._filtered(base, fresh._search, None)[0], text
            seen[text] = table.keys
        assert seen["abc"] == ["k6"]
        assert set(seen["!b"]) == set(ROWS) - set(seen["b"])
