"""The traffic view's live source reads a streams-adapter stream named like the prefix."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from siotools.tui.traffic_source import sniffer_source

from siotools.protocol import Dialect, StreamMessage

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
