"""Passive dialect detection against real Node clusters of every flavor and Python nodes."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from siotools.dialects.detect import Detection, detect, detect_with
from siotools.protocol import Dialect
from siotools.pynode import PythonNode
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher
from tests.health.numsub import unchanged
from tests.nodepeer.fixtures import StartFn

# A Date: msgpack-lite writes ext 0x0D where notepack writes ext 0 (socket.io-redis 5.x) or
# a timestamp (8.x), so a broadcast carrying one names its producer.
STAMP = dt.datetime(2024, 3, 13, tzinfo=dt.UTC)


@pytest.fixture
async def rc(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def detect_watched(
    rc: aioredis.Redis, redis_url: str, key: str, listen: float = 0.5
) -> Detection:
    """Run a detection while NUMSUB/SHARDNUMSUB are sampled every 20 ms (they must not move)."""
    return await unchanged(rc, [key], detect(RedisEndpoint.from_url(redis_url), key, listen=listen))


@pytest.mark.node
async def test_legacy5(node_peers: StartFn, rc: aioredis.Redis, redis_url: str, key: str) -> None:
    await node_peers("legacy5", "A", port=0)
    await node_peers("legacy5", "B", port=0)
    found = await detect_watched(rc, redis_url, key)
    assert found.dialects == {Dialect.LEGACY}
    assert found.dialect is Dialect.LEGACY
    assert found.namespaces == ("/", "/chat")
    assert not found.sharded
    assert found.clues["/"].request_subscribers == 2
    assert found.clues["/"].legacy_likely and not found.clues["/"].subscribe_mode
    assert any("2 socket.io-redis 5.x-style node(s)" in e for e in found.evidence)


@pytest.mark.node
@pytest.mark.parametrize("mux", [True, False], ids=["mux", "nomux"])
async def test_legacy4(
    node_peers: StartFn, rc: aioredis.Redis, redis_url: str, key: str, mux: bool
) -> None:
    a = await node_peers("legacy4", "A", port=0, multiplexing=mux)
    cl = await node_peers("legacy4", "CL")
    await cl.call("client_connect", client="c1", url=a.url, nsp="/chat")
    await cl.call("client_join", client="c1", rooms=["lobby"])
    await a.call("settle")
    found = await detect_watched(rc, redis_url, key)
    assert found.dialects == {Dialect.LEGACY}
    chat = found.clues["/chat"]
    assert chat.subscribe_mode and chat.broadcast_subscribers == 1
    assert ("lobby" in chat.room_channels) is mux
    assert any(f"{key}#/chat# is SUBSCRIBEd" in e for e in found.evidence)


@pytest.mark.node
async def test_legacy4_traffic_shows_msgpack_lite(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    a = await node_peers("legacy4", "A", port=0, multiplexing=False)

    async def chatter() -> None:
        for _ in range(40):
            await a.call("nsp_emit", nsp="/", rooms=[], event="blob", args=[STAMP])
            await asyncio.sleep(0.02)

    task = asyncio.create_task(chatter())
    found = await detect(RedisEndpoint.from_url(redis_url), key, listen=0.6)
    await task
    assert found.messages > 0
    assert found.by_namespace["/"] == {Dialect.LEGACY_LITE}
    assert any("decode as legacy-lite" in e for e in found.evidence)


@pytest.mark.node
async def test_current_classic(
    node_peers: StartFn, rc: aioredis.Redis, redis_url: str, key: str
) -> None:
    a = await node_peers("current", "A", port=0)
    b = await node_peers("current", "B", port=0)
    found = await detect_watched(rc, redis_url, key, listen=0.2)
    assert found.dialect is Dialect.CURRENT
    assert found.listened == 0  # the structure was conclusive: no listening
    assert set(found.clues["/"].current_uids) == {a.uid, b.uid}
    assert any(f"{key}-response#/#{a.uid}#" in e for e in found.evidence)


@pytest.mark.node
async def test_current_sharded(
    node_peers: StartFn, rc: aioredis.Redis, redis_url: str, key: str
) -> None:
    a = await node_peers("current", "A", port=0, adapter="sharded")
    b = await node_peers("current", "B", port=0, adapter="sharded")
    cl = await node_peers("current", "CL")
    await cl.call("client_connect", client="c1", url=a.url, nsp="/chat")
    await cl.call("client_join", client="c1", rooms=["lobby"])
    found = await detect_watched(rc, redis_url, key)
    assert found.dialect is Dialect.SHARDED
    assert found.sharded
    assert found.clues["/"].sharded_subscribers == 2
    assert set(found.clues["/"].sharded_uids) == {a.uid, b.uid}
    assert "lobby" in found.clues["/chat"].sharded_rooms


@pytest.mark.node
async def test_mixed_5x_and_8x(
    node_peers: StartFn, rc: aioredis.Redis, redis_url: str, key: str
) -> None:
    await node_peers("legacy5", "OLD", port=0)
    new = await node_peers("current", "NEW", port=0)
    found = await detect_watched(rc, redis_url, key)
    assert found.dialects == {Dialect.LEGACY, Dialect.CURRENT}
    assert found.dialect is None and found.mixed
    assert found.clues["/"].current_uids == (new.uid,)
    assert found.clues["/"].legacy_subscribers == 1
    assert found.by_namespace["/"] == {Dialect.LEGACY, Dialect.CURRENT}


@pytest.mark.parametrize("mode", ["subscribe", "psubscribe"])
async def test_python_nodes(rc: aioredis.Redis, redis_url: str, key: str, mode: str) -> None:
    node = PythonNode(redis_url, key=key, subscription_mode=mode)
    await node.start()
    try:
        found = await detect_watched(rc, redis_url, key, listen=0.3)
    finally:
        await node.stop()
    assert found.dialect is Dialect.LEGACY
    assert found.clues["/"].subscribe_mode is (mode == "subscribe")


async def test_spy_alone_is_no_dialect(rc: aioredis.Redis, redis_url: str, key: str) -> None:
    spy = rc.pubsub()
    await spy.subscribe(f"{key}-request#/#")
    try:
        found = await detect_watched(rc, redis_url, key, listen=0.2)
    finally:
        await spy.aclose()
    assert found.dialects == frozenset() and found.dialect is None
    assert found.clues["/"].legacy_subscribers == 1
    assert any("not adapter nodes" in e for e in found.evidence)


async def test_nothing_on_the_prefix(redis_url: str, key: str) -> None:
    found = await detect(RedisEndpoint.from_url(redis_url), key, listen=0.1)
    assert found.dialects == frozenset() and found.namespaces == ()
    assert found.messages == 0
    assert any("no message" in e for e in found.evidence)


async def test_traffic_alone_names_the_dialect(
    rc: aioredis.Redis, redis_url: str, key: str
) -> None:
    """A prefix with no subscriber but traffic (an 8.x emitter-style request): the listen
    phase decodes it."""

    async def chatter() -> None:
        for i in range(30):
            await rc.publish(f"{key}-request#/#", f'{{"uid":"emitter","type":6,"data":["e",{i}]}}')
            await asyncio.sleep(0.02)

    task = asyncio.create_task(chatter())
    found = await detect(RedisEndpoint.from_url(redis_url), key, listen=0.4)
    await task
    assert found.dialect is Dialect.CURRENT
    assert found.messages > 0


async def test_unreachable_redis_is_one_clear_error() -> None:
    from siotools import RedisUnavailableError

    with pytest.raises(RedisUnavailableError, match=r"Cannot reach Redis at redis://") as info:
        await detect(RedisEndpoint.from_url("redis://:pw@127.0.0.1:1/0"), "x", listen=0.1)
    assert ":pw@" not in str(info.value) and "127.0.0.1:1/0" in str(info.value)


class _JoinsBetweenReads:
    """A real command connection after whose first ``PUBSUB CHANNELS`` another 8.x node
    subscribes (on a real connection), as a node starting during a generation check does."""

    def __init__(self, publisher: Publisher, join: Callable[[], Awaitable[None]]) -> None:
        self.publisher = publisher
        self.join: Callable[[], Awaitable[None]] | None = join

    @property
    def connected(self) -> bool:
        return self.publisher.connected

    async def execute(self, *args: Any, timeout: float | None = None) -> Any:
        reply = await self.publisher.execute(*args, timeout=timeout)
        if args[:2] == (b"PUBSUB", b"CHANNELS") and self.join is not None:
            join, self.join = self.join, None
            await join()
        return reply


async def test_a_node_starting_during_the_snapshot_is_no_5x_node(
    rc: aioredis.Redis, redis_url: str, key: str
) -> None:
    # What an 8.x classic node SUBSCRIBEs (protocol-current.md §2.1), on real connections.
    async def node(uid: str) -> Any:
        sub = rc.pubsub()
        await sub.subscribe(f"{key}-request#/#", f"{key}-response#/#", f"{key}-response#/#{uid}#")
        return sub

    first = await node("aaaaaa")
    joined: list[Any] = []

    async def join() -> None:
        joined.append(await node("bbbbbb"))

    publisher = Publisher(RedisEndpoint.from_url(redis_url), name="siotools-detect-test")
    await publisher.start()
    try:
        found = await detect_with(_JoinsBetweenReads(publisher, join), key)
    finally:
        await publisher.close()
        for sub in [first, *joined]:
            await sub.aclose()
    assert joined, "the second node did not join between the reads"
    assert found.dialects == {Dialect.CURRENT}, found.evidence
    assert set(found.clues["/"].current_uids) == {"aaaaaa", "bbbbbb"}
    assert found.clues["/"].legacy_subscribers == 0
