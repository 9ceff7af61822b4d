"""The traffic view's live source reads a streams-adapter stream named like the prefix, or
the streams a streamCount names."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from siotools.tui.app import SiotoolsApp
from siotools.tui.traffic import TrafficScreen
from siotools.tui.traffic_source import sniffer_source

from siotools import ClusterClient, ConfigurationError
from siotools.protocol import Dialect, StreamMessage
from siotools.protocol.streams import stream_for
from tests.nodepeer.fixtures import StartFn
from tests.tui.conftest import until

DATA = '{"packet":{"type":2,"data":["news",1]},"opts":{"rooms":["vip"],"except":[],"flags":{}}}'


async def test_source_shows_stream_entries(redis_url: str, key: str) -> None:
    client = aioredis.from_url(redis_url)
    await client.xadd(key, {"uid": "a" * 16, "nsp": "/", "type": "2"})  # makes it a stream
    source = sniffer_source(redis_url, key)
    assert source is not None
    frames = source()

    async def first() -> Any:
        return await frames.__anext__()

    try:
        pending = asyncio.ensure_future(first())
        for _ in range(50):  # the reader may not be up yet: add until one is seen
            await client.xadd(key, {"uid": "a" * 16, "nsp": "/", "type": "3", "data": DATA})
            done, _ = await asyncio.wait({pending}, timeout=0.1)
            if done:
                break
        frame: Any = await asyncio.wait_for(pending, 5)
    finally:
        await frames.aclose()  # type: ignore[attr-defined]
        await client.aclose()
    assert frame.dialect is Dialect.STREAMS and frame.channel == key
    assert isinstance(frame.frame, StreamMessage)
    row = frame.row
    assert (row.kind, row.event, row.rooms) == ("broadcast", "news", ["vip"])


@pytest.mark.node
async def test_traffic_view_reads_the_nodes_streams_with_a_stream_count(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    # Real 0.3 streams-adapter nodes with streamCount 2: each namespace goes to <key>-0 or
    # <key>-1; the stream named <key> itself is never written, so nothing is guessed.
    nsp = next(n for n in ("/", "/chat") if stream_for(n, key, 2) == f"{key}-1")
    opts = {"stream": key, "streams_version": "0.3", "stream_count": 2}
    a = await node_peers("streams", "A", port=0, **opts)
    await node_peers("streams", "B", port=0, **opts)
    source = sniffer_source(redis_url, key, stream=key, stream_count=2)
    assert source is not None
    client = ClusterClient(redis_url, key=key, requests_timeout=2.0)
    app = SiotoolsApp(client, traffic=source, refresh=60.0)
    try:
        async with app.run_test(size=(140, 36)) as pilot:
            await pilot.press("4")
            await until(pilot, lambda: isinstance(app.screen, TrafficScreen))
            screen = app.screen
            assert isinstance(screen, TrafficScreen)
            for i in range(50):  # the reader may not be up yet: emit until one is seen
                await a.call("nsp_emit", nsp=nsp, event="counted", args=[i])
                try:
                    await until(
                        pilot, lambda: any(x.event == "counted" for x in app.traffic.lines), 0.3
                    )
                    break
                except AssertionError:
                    continue
            await until(
                pilot, lambda: any(screen.table.row(k)[1] == "counted" for k in screen.table.keys)
            )
            line = next(x for x in app.traffic.lines if x.event == "counted")
            assert line.frame.channel == f"{key}-1"
            assert line.frame.dialect is Dialect.STREAMS
            assert line.frame.row.kind == "broadcast" and line.frame.nsp == nsp
    finally:
        await client.close()


def test_stream_count_needs_a_stream() -> None:
    with pytest.raises(ConfigurationError, match="stream_count= needs stream="):
        sniffer_source("redis://127.0.0.1:1/0", "p", stream_count=2)
