"""What a new operator hit: rows moving under the cursor, stale data on return, silence."""

from __future__ import annotations

import random
import time
from pathlib import Path

from siotools.tui.app import SiotoolsApp
from siotools.tui.base import STALE_AFTER
from siotools.tui.rooms import RoomsScreen
from siotools.tui.sockets import SocketsScreen
from siotools.tui.table import Column, KeyedTable
from siotools.tui.traffic_source import discovery_source
from textual.app import App, ComposeResult

from siotools import ClusterClient
from tests.tui.conftest import Cluster, loaded, until


class _TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable([Column("sid"), Column("rooms", numeric=True)], id="t")


async def test_unsorted_rows_keep_their_order_and_the_cursor_its_row() -> None:
    """Nodes answer in any order: the list must not reshuffle between refreshes."""
    app = _TableApp()
    keys = [f"sid-{i:03d}" for i in range(200)]
    async with app.run_test() as pilot:
        table = app.query_one(KeyedTable)
        rng = random.Random(7)
        shuffled = keys[:]
        rng.shuffle(shuffled)
        table.set_rows({k: (k, 1) for k in shuffled})
        assert table.keys == sorted(keys)
        assert table.move_to("sid-123")
        for _ in range(5):  # refreshes that come back in another order
            rng.shuffle(shuffled)
            table.set_rows({k: (k, rng.randint(0, 3)) for k in shuffled})
            await pilot.pause()
            assert table.keys == sorted(keys)
            assert table.cursor_key == "sid-123"
        # a row removed above the cursor: the cursor stays on its row's key
        table.set_rows({k: (k, 1) for k in shuffled if k != "sid-010"})
        assert table.cursor_key == "sid-123"


async def test_back_from_a_drill_down_requeries_and_shows_the_age(cluster: Cluster) -> None:
    app = cluster.app()  # the refresh timer is a minute: only the return can re-query
    async with app.run_test(size=(120, 30)) as pilot:
        app.open_rooms("/")
        await loaded(pilot, app, RoomsScreen)
        rooms = app.screen
        assert isinstance(rooms, RoomsScreen)
        before = rooms.loaded_at
        assert before is not None
        rooms.table.move_to("vip")
        await pilot.press("enter")
        await loaded(pilot, app, SocketsScreen)
        await cluster.alice.join("fresh-room")
        # Rows older than STALE_AFTER are asked for again on return: wait until they are
        # (a fixed pause raced with it: a fast drill-down came back under a second).
        await until(pilot, lambda: time.monotonic() - before > STALE_AFTER + 0.1)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is rooms)
        # Re-queried on return (the timer would take a minute), the cursor still on vip.
        await until(pilot, lambda: rooms.table.row("fresh-room") is not None)
        assert rooms.loaded_at is not None and rooms.loaded_at > before
        assert not rooms.stale
        assert rooms.table.cursor_key == "vip"
        # While the answer is out, the status line says how old the rows are.
        rooms.stale, rooms.loaded_at = True, rooms.loaded_at - 4.2
        rooms.update_status()
        assert "data from 4s ago, refreshing…" in str(rooms.query_one("#status").content)


async def test_a_wrong_prefix_says_what_the_redis_carries(cluster: Cluster) -> None:
    client = ClusterClient(cluster.redis_url, key="wrong-prefix", requests_timeout=0.5)
    app = SiotoolsApp(
        client, refresh=0.5, discovery=discovery_source(cluster.redis_url, "wrong-prefix")
    )
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.hint is not None, timeout=15)
        problem = app.header_info.problem or ""
        assert problem.startswith("nothing under prefix 'wrong-prefix': this Redis has ")
        assert f"prefix {cluster.key!r} (namespaces /, /chat" in problem
    await client.close()


async def test_quitting_the_unreachable_dialog_exits_2() -> None:
    from siotools.tui.unreachable import Unreachable

    from siotools.redis_server import free_port

    client = ClusterClient(f"redis://127.0.0.1:{free_port()}/0", key="x", requests_timeout=0.5)
    app = SiotoolsApp(client, refresh=60)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, Unreachable))
        await pilot.press("q")
    assert app.return_code == 2
    assert app.exit_reason is not None and "Cannot reach Redis" in app.exit_reason
    await client.close()


async def test_the_header_names_the_dialect_as_users_know_it(cluster: Cluster) -> None:
    app = cluster.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.header_info.dialect not in ("", "auto"))
        assert app.header_info.dialect == "socket.io-redis 5.x"


async def test_at_80_columns_the_footer_fits_and_the_traffic_shows_what_matters(
    cluster: Cluster,
) -> None:
    from siotools.tui.footer import KeyFooter
    from siotools.tui.traffic import TrafficScreen
    from siotools.tui.traffic_source import sniffer_source

    app = cluster.app(traffic=sniffer_source(cluster.redis_url, cluster.key))
    async with app.run_test(size=(80, 24)) as pilot:

        def footer_fits() -> bool:
            keys = [c for c in app.screen.query_one(KeyFooter).walk_children() if c.region.width]
            return bool(keys) and max(c.region.right for c in keys) <= 80

        for go in ("namespaces", "rooms", "sockets"):
            app.action_go(go)
            await until(pilot, footer_fits)
        app.open_socket("/", cluster.bob.sid())
        await until(pilot, lambda: type(app.screen).__name__ == "SocketScreen" and footer_fits())
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, TrafficScreen) and footer_fits())
        screen = app.screen
        assert isinstance(screen, TrafficScreen)
        labels = [c.label for c in screen.table.columns]
        assert labels[:4] == ["Time", "Event", "Rooms", "Args"]
        header = screen.table.render_line(0).text  # what the 80-column screen shows
        assert header.split()[:4] == ["Time", "Event", "Rooms", "Args"], header


async def test_one_row_is_one_row(cluster: Cluster) -> None:
    app = cluster.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.screen.table.keys)
        app.open_all_sockets("/chat")  # alice alone
        await loaded(pilot, app, SocketsScreen)
        assert str(app.screen.query_one("#status").content).startswith("1 row")
        assert "1 rows" not in str(app.screen.query_one("#status").content)


async def test_one_member_is_one_member(cluster: Cluster) -> None:
    from tests.tui.test_actions import confirm, open_rooms, text_of

    async with ClusterClient(cluster.redis_url, key=cluster.key) as client:
        await client.remote_leave(cluster.bob.sid(), "vip")  # carol alone in vip
    app = cluster.app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_rooms(app, pilot)
        app.open_sockets("/", "vip")
        await loaded(pilot, app, SocketsScreen)
        assert app.screen.table.keys == [cluster.carol.sid()]
        await pilot.press("l")
        modal = await confirm(app, pilot)
        assert "leaves room 'vip' (1 member now)" in text_of(modal, "#radius")
        await pilot.press("n")


async def test_a_long_hint_gets_lines_of_its_own_in_the_header() -> None:
    import siotools.tui.app as tui_app
    from siotools.tui.header import ClusterHeader, HeaderInfo
    from textual.reactive import var

    class _HeaderApp(App[None]):
        CSS_PATH = str(Path(tui_app.__file__).with_name("app.tcss"))  # the console's styles
        header_info: var[HeaderInfo] = var(HeaderInfo)  # what the header watches

        def compose(self) -> ComposeResult:
            yield ClusterHeader()

        def on_mount(self) -> None:
            self.header_info = HeaderInfo(url="redis://h:1/0", prefix="p", problem="x" * 150)

    app = _HeaderApp()
    async with app.run_test(size=(80, 20)) as pilot:
        await pilot.pause()
        header = app.query_one(ClusterHeader)
        assert header.region.height >= 4  # two lines, then the hint wrapped, not cut
