"""The transport runs on uvloop (uvicorn's loop whenever it is installed)."""

from __future__ import annotations

import asyncio

import pytest

from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher, Subscriber

uvloop = pytest.importorskip("uvloop")


def test_publish_and_subscribe_on_uvloop(redis_url: str, key: str) -> None:
    async def main() -> list[tuple[bytes, bytes]]:
        got: list[tuple[bytes, bytes]] = []
        arrived = asyncio.Event()

        def on_message(channel: bytes, payload: bytes, pattern: bytes | None) -> None:
            got.append((channel, payload))
            arrived.set()

        endpoint = RedisEndpoint.from_url(redis_url)
        sub = Subscriber(endpoint, on_message)
        pub = Publisher(endpoint)
        await sub.start()
        await pub.start()
        channel = f"{key}#/#".encode()
        await sub.subscribe([channel])
        assert await pub.numsub(channel) == 1
        pub.publish(channel, b"on uvloop")
        await asyncio.wait_for(arrived.wait(), 5)
        await pub.close()
        await sub.close()
        return got

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == [(f"{key}#/#".encode(), b"on uvloop")]
