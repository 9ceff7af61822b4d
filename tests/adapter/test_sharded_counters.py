"""The sharded adapter's counters on a real Redis: broadcasts received and decoded (they
come on its main channel, a request route), and its subscriber's lost and restored links."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from siotools.pynode import PythonNode
from siotools.redis_server import RedisServer
from siotools.sync_pynode import SyncPythonNode
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher
from tests.adapter.pyclients import Client


async def _until(check: Any, what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


@pytest.fixture
async def pair(fresh_redis: RedisServer, key: str) -> AsyncIterator[tuple[PythonNode, PythonNode]]:
    opts: dict[str, Any] = {"key": key, "dialect": "sharded", "requests_timeout": 1.0}
    a = PythonNode(fresh_redis.url, **opts)
    b = PythonNode(fresh_redis.url, **opts)
    for node in (a, b):
        node.adapter.on_error(lambda exc: None)  # the losses are made on purpose
        await node.start()
    yield a, b
    await a.stop()
    await b.stop()


async def test_received_and_decoded_count_the_broadcasts_of_the_other_nodes(
    pair: tuple[PythonNode, PythonNode], fresh_redis: RedisServer, key: str
) -> None:
    a, b = pair
    s = SyncPythonNode(fresh_redis.url, key=key, dialect="sharded", requests_timeout=1.0)
    await asyncio.to_thread(s.start)
    on_b = on_s = None
    try:
        on_b = await Client().connect(b.url)
        on_s = await Client().connect(s.url)
        await on_b.join("room")  # b SSUBSCRIBEs the room's channel (the dynamic mode)
        await _until(lambda: b.adapter.metrics.subscriptions["shard_channel"] == 3, "room channel")
        await a.sio.emit("one", 1)
        await a.sio.emit("two", 2, to="room")  # on the room's channel: b's alone
        await a.sio.emit("three", 3)
        await on_b.wait_event("three")
        await on_s.wait_event("three")
        assert await on_b.wait_event("two") == [[2]]
        for node, n in ((b.adapter, 3), (s.adapter, 2)):
            await _until(lambda node=node, n=n: node.stats["received"] == n, f"{n} broadcasts")
            assert node.stats["decoded"] == n
            assert node.metrics.received[("broadcast", "/")].messages == n
        # The sender's own echoes are dropped as ClusterAdapter drops them: not counted.
        assert (a.adapter.stats["received"], a.adapter.stats["decoded"]) == (0, 0)
        assert ("broadcast", "/") not in a.adapter.metrics.received
        await asyncio.to_thread(s.sio.emit, "from-sync", 4)
        await _until(lambda: b.adapter.stats["received"] == 4, "the sync node's broadcast")
    finally:
        for client in (on_b, on_s):
            if client is not None:
                await client.close()
        await asyncio.to_thread(s.stop)


async def test_lost_and_restored_links_are_counted(
    pair: tuple[PythonNode, PythonNode], fresh_redis: RedisServer
) -> None:
    a, b = pair
    admin = Publisher(RedisEndpoint.from_url(fresh_redis.url), on_error=lambda exc: None)
    await admin.start()
    on_b = await Client().connect(b.url)
    stats = b.adapter.stats

    async def outages(n: int) -> None:
        await _until(lambda: stats["subscription_restored"] == n, f"{n} restored links")
        await asyncio.sleep(0.3)  # nothing more comes
        assert (stats["subscription_lost"], stats["subscription_restored"]) == (n, n)
        assert dict(b.adapter.metrics.link_events) == {"lost": n, "restored": n}

    try:
        # The nodes' SSUBSCRIBE connections killed, as Redis kills a slow subscriber.
        await admin.execute("CLIENT", "KILL", "TYPE", "pubsub")
        await outages(1)
        assert stats["subscription_gap_ms"] >= 0 and b.adapter.metrics.reconnects["sub"] == 1
        await a.sio.emit("after-kill", 1)
        assert await on_b.wait_event("after-kill") == [[1]]

        # Redis restarted: every connection of the subscriber lost at once, one outage.
        await asyncio.to_thread(fresh_redis.restart)
        await outages(2)
        assert b.adapter.metrics.link_gap_seconds == stats["subscription_gap_ms"] / 1000
        await a.sio.emit("after-restart", 2)
        assert await on_b.wait_event("after-restart") == [[2]]
        assert a.adapter.stats["subscription_lost"] == 2
    finally:
        await admin.close()
        await on_b.close()
