"""The traffic view and the per-room rates, fed by the real passive sniffer."""

from __future__ import annotations

from siotools.tui.rooms import RoomsScreen
from siotools.tui.traffic import TrafficScreen
from siotools.tui.traffic_source import sniffer_source

from siotools import ClusterClient
from tests.tui.conftest import Cluster, fill, loaded, until


async def test_live_frames_filter_pause_and_room_rates(cluster: Cluster) -> None:
    source = sniffer_source(cluster.redis_url, cluster.key)
    assert source is not None
    app = cluster.app(traffic=source, refresh=0.5)
    async with (
        app.run_test(size=(140, 36)) as pilot,
        ClusterClient(cluster.redis_url, key=cluster.key) as sender,
    ):
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, TrafficScreen))
        screen = app.screen
        assert isinstance(screen, TrafficScreen)

        async def wait_for_event(event: str) -> None:
            async def emitted() -> None:
                await sender.emit(event, {"n": 1}, rooms=["vip"])

            for _ in range(50):  # the subscription may not be up yet: send until seen
                await emitted()
                try:
                    await until(
                        pilot,
                        lambda: any(line.event == event for line in app.traffic.lines),
                        timeout=0.3,
                    )
                    return
                except AssertionError:
                    continue
            raise AssertionError(f"{event} never seen")

        await wait_for_event("news")
        await until(pilot, lambda: any(screen.table.row(k)[1] == "news" for k in screen.table.keys))
        key = next(k for k in screen.table.keys if screen.table.row(k)[1] == "news")
        assert screen.table.row(key)[1:] == (
            "news",
            "vip",
            '[{"n":1}]',
            "broadcast",
            "/",
            "emitter",
        )

        # the sniff filters as words, exact; free text as a regex
        await pilot.press("slash")
        await fill(pilot, "event=news room=vip")
        await pilot.press("enter")
        assert screen.table.keys and all(
            screen.table.row(k)[1] == "news" for k in screen.table.keys
        )
        await pilot.press("slash")
        await fill(pilot, "room=vi")
        await pilot.press("enter")
        assert screen.table.keys == []
        await pilot.press("escape")

        await pilot.press("p")
        assert screen.paused
        shown = screen.table.total_count
        await wait_for_event("later")
        await pilot.pause(0.6)
        assert screen.table.total_count == shown  # paused: the view does not move
        await pilot.press("p")
        await until(pilot, lambda: screen.table.total_count > shown)

        await pilot.press("escape")
        app.open_rooms("/")
        await loaded(pilot, app, RoomsScreen)
        rooms = app.screen
        assert isinstance(rooms, RoomsScreen)
        await until(pilot, lambda: (rooms.table.row("vip") or (0, 0, 0))[2] > 0)
        assert app.header_info.frames_per_second is not None
