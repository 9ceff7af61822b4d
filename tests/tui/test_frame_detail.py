"""The traffic view opens one frame (Enter): decoded JSON, raw hex, channel and dialect."""

from __future__ import annotations

from siotools.tui.frame_detail import FrameDetail, hex_dump
from siotools.tui.traffic import TrafficScreen
from siotools.tui.traffic_source import sniffer_source
from textual.widgets import Static

from siotools import ClusterClient
from tests.tui.conftest import Cluster, until


def _text(screen: FrameDetail, widget_id: str) -> str:
    from rich.console import Console

    console = Console(width=120, record=True, color_system=None)
    console.print(screen.query_one(f"#{widget_id}", Static).content)
    return console.export_text()


async def test_enter_opens_the_frame_with_its_bytes(cluster: Cluster) -> None:
    source = sniffer_source(cluster.redis_url, cluster.key)
    assert source is not None
    app = cluster.app(traffic=source, refresh=0.5)
    async with (
        app.run_test(size=(80, 30)) as pilot,
        ClusterClient(cluster.redis_url, key=cluster.key) as sender,
    ):
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, TrafficScreen))
        screen = app.screen
        assert isinstance(screen, TrafficScreen)
        blob = bytes(range(256)) * 2
        for _ in range(50):  # until the sniffer's subscription is up
            await sender.emit("upload", {"name": "a.bin"}, blob, rooms=["vip"])
            try:
                await until(
                    pilot, lambda: "upload" in {line.event for line in app.traffic.lines}, 0.3
                )
                break
            except AssertionError:
                continue
        await until(
            pilot, lambda: any(screen.table.row(k)[1] == "upload" for k in screen.table.keys)
        )
        key = next(k for k in screen.table.keys if screen.table.row(k)[1] == "upload")
        # binary is a size in the list, not b'\xcc...'
        assert screen.table.row(key)[3] == '[{"name":"a.bin"},"<512 bytes>"]'
        screen.paused = True
        assert screen.table.move_to(key)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FrameDetail))
        detail = app.screen
        assert isinstance(detail, FrameDetail)
        where = _text(detail, "where")
        assert f"{cluster.key}#/#vip#" in where
        assert "socket.io-redis 5.x" in where
        decoded = _text(detail, "decoded")
        assert '"event": "upload"' in decoded and '"name": "a.bin"' in decoded
        assert '"$bin"' in decoded  # the blob, whole, as base64 rather than cut with "..."
        raw = _text(detail, "raw")
        assert "raw payload" in raw and "000000  " in raw
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TrafficScreen))


def test_hex_dump_lines_and_limit() -> None:
    text = hex_dump(b"AB\x00\xff" * 5)
    assert text.splitlines()[0] == (
        "000000  41 42 00 ff 41 42 00 ff 41 42 00 ff 41 42 00 ff  |AB..AB..AB..AB..|"
    )
    assert text.splitlines()[1].startswith("000010  41 42 00 ff")
    assert hex_dump(b"x" * 100, limit=32).splitlines()[-1] == "… 68 more bytes"
    assert hex_dump(b"") == "(empty)"
