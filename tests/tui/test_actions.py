"""Every mutating action, with its confirmation, against a real two-node cluster."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from siotools.tui.app import SiotoolsApp
from siotools.tui.base import ClusterScreen
from siotools.tui.confirm import ConfirmAction
from siotools.tui.emit_prompt import EmitPrompt
from siotools.tui.room_picker import RoomPicker
from siotools.tui.rooms import RoomsScreen
from siotools.tui.socket_detail import SocketScreen
from siotools.tui.sockets import SocketsScreen
from textual.widgets import Checkbox, Static

from siotools import ClusterClient
from tests.tui.conftest import Cluster, fill, loaded, until


def text_of(screen: object, selector: str) -> str:
    assert isinstance(screen, ConfirmAction)
    content = screen.query_one(selector, Static).render()
    return content.plain if isinstance(content, Text) else str(content)


async def open_rooms(app: SiotoolsApp, pilot: object) -> RoomsScreen:
    app.open_rooms("/")
    await loaded(pilot, app, RoomsScreen)
    assert isinstance(app.screen, RoomsScreen)
    return app.screen


async def confirm(app: SiotoolsApp, pilot: object) -> ConfirmAction:
    await until(pilot, lambda: isinstance(app.screen, ConfirmAction))
    modal = app.screen
    assert isinstance(modal, ConfirmAction)
    return modal


async def run_and_close(app: SiotoolsApp, pilot: object, modal: ConfirmAction) -> str:
    await pilot.press("y")  # type: ignore[attr-defined]
    await until(pilot, lambda: modal.outcome is not None)
    outcome = text_of(modal, "#outcome")
    await pilot.press("enter")  # type: ignore[attr-defined]
    await until(pilot, lambda: not isinstance(app.screen, ConfirmAction))
    await until(pilot, lambda: "after re-query" in app.screen.note)  # type: ignore[attr-defined]
    return outcome


async def requery_until(pilot: object, screen: ClusterScreen, predicate: Any) -> None:
    for _ in range(50):
        if predicate():
            return
        await screen.load()
        await pilot.pause(0.1)  # type: ignore[attr-defined]
    raise AssertionError("the cluster did not settle")


async def rooms_of(cluster: Cluster, sid: str) -> list[str]:
    async with ClusterClient(cluster.redis_url, key=cluster.key) as client:
        return await client.client_rooms(sid)


async def test_join_pick_or_type_then_cancel_and_confirm(cluster: Cluster) -> None:
    app = cluster.app()
    alice = cluster.alice.sid()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_rooms(app, pilot)  # fills the namespace cache
        app.open_socket("/", alice)
        # the socket's own rooms answer is in: the picker must not offer lobby
        await until(
            pilot,
            lambda: isinstance(app.screen, SocketScreen) and app.screen.fetched is not None,
        )
        detail = app.screen
        await pilot.press("j")
        await until(pilot, lambda: isinstance(app.screen, RoomPicker))
        picker = app.screen
        assert isinstance(picker, RoomPicker) and picker.rooms == ["vip"]  # not lobby: in it
        await fill(pilot, "vip")
        await pilot.press("enter")
        modal = await confirm(app, pilot)
        radius = text_of(modal, "#radius")
        assert alice in radius and "joins room 'vip' (2 members now)" in radius
        await pilot.press("n")  # cancel: nothing happens
        await until(pilot, lambda: app.screen is detail)
        assert await rooms_of(cluster, alice) == [alice, "lobby"]

        await pilot.press("j")
        await until(pilot, lambda: isinstance(app.screen, RoomPicker))
        await fill(pilot, "brand-new")
        await pilot.press("enter")
        modal = await confirm(app, pilot)
        assert "new room" in text_of(modal, "#radius")
        outcome = await run_and_close(app, pilot, modal)
        assert outcome.startswith("OK") and "join brand-new: ok" in outcome
        assert sorted(await rooms_of(cluster, alice)) == sorted([alice, "brand-new", "lobby"])
        assert "brand-new" in detail.table.keys
        assert "+1" in detail.note  # the re-query shows what changed


async def test_the_note_counts_the_change_a_refresh_showed_first(cluster: Cluster) -> None:
    # The screen refreshes itself on coming back from the modal; when that refresh shows
    # the joined room before the action's own re-query, the note still says what changed.
    app = cluster.app()
    alice = cluster.alice.sid()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_rooms(app, pilot)
        app.open_socket("/", alice)
        await until(
            pilot,
            lambda: isinstance(app.screen, SocketScreen) and app.screen.fetched is not None,
        )
        detail = app.screen
        assert isinstance(detail, SocketScreen)
        join = detail.cluster.remote_join

        async def join_then_refresh(*args: Any, **kwargs: Any) -> Any:
            result = await join(*args, **kwargs)
            for _ in range(50):
                await detail.load()
                if "shown-early" in detail.table.keys:
                    return result
                await pilot.pause(0.1)
            raise AssertionError("the join never showed")

        detail.cluster.remote_join = join_then_refresh  # type: ignore[method-assign]
        await pilot.press("j")
        await until(pilot, lambda: isinstance(app.screen, RoomPicker))
        await fill(pilot, "shown-early")
        await pilot.press("enter")
        modal = await confirm(app, pilot)
        outcome = await run_and_close(app, pilot, modal)
        assert outcome.startswith("OK")
        assert "+1" in detail.note, detail.note
        assert "shown-early" in detail.table.highlighted


async def test_leave_and_disconnect_a_socket(cluster: Cluster) -> None:
    app = cluster.app()
    bob, carol = cluster.bob.sid(), cluster.carol.sid()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_rooms(app, pilot)
        app.open_sockets("/", "vip")
        await loaded(pilot, app, SocketsScreen)
        screen = app.screen
        assert isinstance(screen, SocketsScreen)
        screen.table.move_to(bob)
        await pilot.press("l")
        modal = await confirm(app, pilot)
        assert f"{bob}" in text_of(modal, "#radius")
        assert "leaves room 'vip' (2 members now)" in text_of(modal, "#radius")
        assert (await run_and_close(app, pilot, modal)).startswith("OK")
        assert await rooms_of(cluster, bob) == [bob, "lobby"]
        assert screen.table.keys == [carol]

        screen.table.move_to(carol)
        await pilot.press("d")
        modal = await confirm(app, pilot)
        assert modal.query_one("#close", Checkbox).value is False
        assert "in rooms: lobby, vip" in text_of(modal, "#radius")
        assert "disconnect: ok" in await run_and_close(app, pilot, modal)
        await cluster.carol.wait_disconnected()
        await requery_until(pilot, screen, lambda: screen.table.keys == [])


async def test_emit_to_room_and_socket(cluster: Cluster) -> None:
    app = cluster.app()
    async with app.run_test(size=(120, 36)) as pilot:
        rooms = await open_rooms(app, pilot)
        rooms.table.move_to("vip")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EmitPrompt))
        await pilot.press(*"news", "enter", *"not json", "enter")
        prompt = app.screen
        assert isinstance(prompt, EmitPrompt)
        assert "not JSON" in str(prompt.query_one("#error", Static).render())
        await fill(pilot, '["hi", {"n": 1}]')
        await pilot.press("enter")
        modal = await confirm(app, pilot)
        assert "to room 'vip': 2 sockets" in text_of(modal, "#radius")
        assert "emit news: ok" in await run_and_close(app, pilot, modal)
        assert await cluster.bob.wait_event("news") == [["hi", {"n": 1}]]
        assert await cluster.carol.wait_event("news") == [["hi", {"n": 1}]]
        assert await cluster.alice.no_event("news")

        app.open_socket("/", cluster.alice.sid())
        await loaded(pilot, app, SocketScreen)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EmitPrompt))
        await fill(pilot, "ping")
        await pilot.press("enter")
        await fill(pilot, "42")
        await pilot.press("enter")
        modal = await confirm(app, pilot)
        assert "1 socket" in text_of(modal, "#radius")
        await run_and_close(app, pilot, modal)
        assert await cluster.alice.wait_event("ping") == [[42]]


async def test_clear_room_and_disconnect_room(cluster: Cluster) -> None:
    app = cluster.app()
    async with app.run_test(size=(120, 36)) as pilot:
        rooms = await open_rooms(app, pilot)
        rooms.table.move_to("lobby")
        await pilot.press("L")
        modal = await confirm(app, pilot)
        radius = text_of(modal, "#radius")
        count = int(radius.split(": ")[1].split(" ")[0])
        assert f"{count} sockets leave room 'lobby'" in radius and count >= 2
        assert f"leave lobby: {count} of {count} ok" in await run_and_close(app, pilot, modal)
        await requery_until(pilot, rooms, lambda: rooms.table.keys == ["vip"])

        rooms.table.move_to("vip")
        await pilot.press("D")
        modal = await confirm(app, pilot)
        assert "2 sockets of room 'vip' are disconnected" in text_of(modal, "#radius")
        await pilot.click("#close")
        assert modal.query_one("#close", Checkbox).value is True
        assert "disconnect (closed): 2 of 2 ok" in await run_and_close(app, pilot, modal)
        await cluster.bob.wait_disconnected()
        await cluster.carol.wait_disconnected()
        # the nodes answer before their sockets have left every room: re-query until settled
        await requery_until(pilot, rooms, lambda: rooms.table.keys == [])


async def test_timeout_outcome_when_the_socket_is_gone(cluster: Cluster) -> None:
    app = cluster.app()
    bob = cluster.bob.sid()
    async with app.run_test(size=(120, 36)) as pilot:
        app.open_socket("/", bob)
        await loaded(pilot, app, SocketScreen)
        await cluster.bob.close()
        await pilot.press("d")
        modal = await confirm(app, pilot)
        await pilot.press("y")
        await until(pilot, lambda: modal.outcome is not None)
        assert modal.outcome is not None and not modal.outcome.ok
        assert "timeout, no node answered" in text_of(modal, "#outcome")
        assert text_of(modal, "#outcome").startswith("FAILED")
