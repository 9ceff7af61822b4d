"""Navigation, filter, sort, help and palette against a real two-node cluster."""

from __future__ import annotations

from siotools.tui.base import ClusterScreen
from siotools.tui.breadcrumbs import Breadcrumbs
from siotools.tui.help import HelpScreen
from siotools.tui.namespaces import NamespacesScreen
from siotools.tui.rooms import RoomsScreen
from siotools.tui.socket_detail import SocketScreen
from siotools.tui.sockets import SocketsScreen

from tests.tui.conftest import Cluster, fill, until


def rows(screen: object) -> dict[str, tuple[object, ...]]:
    assert isinstance(screen, ClusterScreen)
    table = screen.table
    return {key: table.row(key) or () for key in table.keys}


async def test_drill_down_and_back(cluster: Cluster) -> None:
    app = cluster.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: set(rows(app.screen)) == {"/", "/chat"})
        assert rows(app.screen)["/"] == ("/", 2, 3, 2)
        assert rows(app.screen)["/chat"] == ("/chat", 2, 1, 0)

        await pilot.press("enter")  # "/" is the first row
        await until(pilot, lambda: isinstance(app.screen, RoomsScreen) and rows(app.screen))
        room_rows = rows(app.screen)
        assert {k: v[1] for k, v in room_rows.items()} == {"lobby": 3, "vip": 2}
        crumbs = app.screen.query_one(Breadcrumbs).crumbs
        assert crumbs == ["Namespaces", "/", "rooms"]

        app.screen.table.move_to("vip")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SocketsScreen) and rows(app.screen))
        assert set(rows(app.screen)) == {cluster.bob.sid(), cluster.carol.sid()}
        assert app.screen.query_one(Breadcrumbs).crumbs == ["Namespaces", "/", "rooms", "vip"]

        app.screen.table.move_to(cluster.bob.sid())
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SocketScreen) and rows(app.screen))
        assert list(rows(app.screen)) == [cluster.bob.sid(), "lobby", "vip"]

        for expected in (SocketsScreen, RoomsScreen, NamespacesScreen):
            await pilot.press("escape")
            await until(pilot, lambda expected=expected: type(app.screen) is expected)
        await pilot.press("escape")  # at the root Esc stays
        assert type(app.screen) is NamespacesScreen


async def test_sockets_across_namespace_filter_and_sort(cluster: Cluster) -> None:
    app = cluster.app()
    bob, carol, alice = cluster.bob.sid(), cluster.carol.sid(), cluster.alice.sid()
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: rows(app.screen))
        await pilot.press("3")
        await until(
            pilot, lambda: isinstance(app.screen, SocketsScreen) and len(rows(app.screen)) == 3
        )
        screen = app.screen
        assert isinstance(screen, SocketsScreen) and screen.room is None
        assert rows(screen)[alice] == (alice, 1, "lobby")
        assert rows(screen)[bob] == (bob, 2, "lobby vip")

        await pilot.press("slash", *"vip", "enter")
        assert set(screen.table.keys) == {bob, carol}
        # a regex, then an inverse filter, then Esc clears
        await pilot.press("slash")
        await fill(pilot, "^lob.*$")
        await pilot.press("enter")
        assert set(screen.table.keys) == set()
        await pilot.press("slash")
        await fill(pilot, alice[:6])
        await pilot.press("enter")
        assert screen.table.keys == [alice]
        await pilot.press("slash")
        await fill(pilot, "!vip")
        await pilot.press("enter")
        assert screen.table.keys == [alice]
        await pilot.press("slash")
        await fill(pilot, "[")
        await pilot.press("enter")  # not a regex: a substring
        assert screen.table.keys == []
        await pilot.press("escape")
        assert screen.table.filter_text == "" and len(screen.table.keys) == 3

        await pilot.press("s", "s")  # sort by the Rooms column
        assert screen.table.keys[0] == alice
        await pilot.press("S")
        assert screen.table.keys[-1] == alice
        await pilot.press("1")
        await until(pilot, lambda: type(app.screen) is NamespacesScreen)


async def test_help_and_palette(cluster: Cluster) -> None:
    app = cluster.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: rows(app.screen))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RoomsScreen) and rows(app.screen))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        descriptions = {d for _, d, _ in help_screen.keys}
        assert {
            "Filter",
            "Sort",
            "Emit",
            "Clear room",
            "Disconnect room",
            "Refresh",
        } <= descriptions
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RoomsScreen))

        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"vip")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SocketsScreen))
        screen = app.screen
        assert isinstance(screen, SocketsScreen) and screen.room == "vip"


async def test_manual_refresh_diffs_rows(cluster: Cluster) -> None:
    app = cluster.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: rows(app.screen))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RoomsScreen) and rows(app.screen))
        screen = app.screen
        assert isinstance(screen, RoomsScreen)
        screen.table.move_to("vip")
        await cluster.alice.join("zoo")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: "zoo" in rows(screen))
        assert screen.table.cursor_key == "vip"  # the cursor kept its row
