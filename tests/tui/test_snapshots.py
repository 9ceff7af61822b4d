"""SVG snapshots of the main views, over the FAKE cluster of :mod:`tests.tui.fake_cluster`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from siotools.tui.app import SiotoolsApp
from siotools.tui.base import ClusterScreen
from siotools.tui.confirm import ConfirmAction
from siotools.tui.help import HelpScreen
from textual.pilot import Pilot

from tests.tui.conftest import until
from tests.tui.fake_cluster import FROZEN, fake_traffic, small_cluster

SIZE = (110, 24)


def make_app(*, read_only: bool = False) -> SiotoolsApp:
    return SiotoolsApp(
        small_cluster(),
        read_only=read_only,
        refresh=3600,
        traffic=fake_traffic,
        clock=lambda: FROZEN,
    )


async def settled(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, SiotoolsApp)
    await until(pilot, lambda: app.traffic.total == 42 and app.header_info.nodes)
    app.action_refresh_now()
    await until(pilot, lambda: isinstance(app.screen, ClusterScreen) and app.screen.table.keys)
    await pilot.pause()


def steps(*actions: Callable[[Pilot[Any]], Awaitable[None]]) -> Callable[..., Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        for action in actions:
            await action(pilot)
            await settled(pilot)

    return run_before


async def rooms(pilot: Pilot[Any]) -> None:
    await pilot.press("enter")


async def vip(pilot: Pilot[Any]) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, ClusterScreen)
    screen.table.move_to("vip")
    await pilot.press("enter")


async def socket(pilot: Pilot[Any]) -> None:
    await pilot.press("enter")


def test_namespaces(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=steps())


def test_rooms_with_rates(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=steps(rooms))


def test_sockets_of_a_room(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=steps(rooms, vip))


def test_socket_detail_read_only(snap_compare: Any) -> None:
    app = make_app(read_only=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=steps(rooms, vip, socket))


def test_traffic(snap_compare: Any) -> None:
    async def traffic(pilot: Pilot[Any]) -> None:
        await pilot.press("4")
        await pilot.pause(0.6)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=steps(traffic))


def test_confirm_disconnect_room(snap_compare: Any) -> None:
    async def disconnect_room(pilot: Pilot[Any]) -> None:
        await pilot.press("D")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmAction))
        await pilot.pause()

    async def run_before(pilot: Pilot[Any]) -> None:
        await steps(rooms)(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, ClusterScreen)
        screen.table.move_to("lobby")
        await disconnect_room(pilot)

    assert snap_compare(make_app(), terminal_size=(110, 30), run_before=run_before)


def test_help(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await steps(rooms)(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(110, 34), run_before=run_before)
