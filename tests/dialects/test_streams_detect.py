"""Detection of @socket.io/redis-streams-adapter nodes: the stream on the prefix, node
count from heartbeat uids (0.2.x) or private channels (0.3.x), recovery sessions."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from siotools.dialects.detect import detect, stream_clues
from siotools.health import doctor
from siotools.protocol import Dialect
from siotools.transport.endpoint import RedisEndpoint
from tests.nodepeer.fixtures import StartFn


@pytest.mark.node
@pytest.mark.parametrize("version", ["0.3", "0.2"])
async def test_streams_nodes_are_detected(
    node_peers: StartFn, redis_url: str, key: str, version: str
) -> None:
    opts = {"stream": key, "streams_version": version, "heartbeat_interval": 200,
            "recovery": 60000}  # fmt: skip
    a = await node_peers("streams", "A", port=0, **opts)
    b = await node_peers("streams", "B", port=0, **opts)
    cl = await node_peers("streams", "CL")
    await cl.call("client_connect", client="c1", url=b.url, nsp="/")
    await cl.call("client_drop", client="c1")  # a recoverable disconnect: one session
    await b.wait_event(name="disconnect")
    await a.call("nsp_emit", nsp="/", event="news", args=[1])
    await a.call("nsp_emit", nsp="/chat", event="news", args=[1])
    # The node saves the session after its disconnect event: wait until it is there.
    async with aioredis.from_url(redis_url) as r:
        for _ in range(200):
            if [k async for k in r.scan_iter(match="sio:session:*", count=1000)]:
                break
            await asyncio.sleep(0.02)

    found = await detect(RedisEndpoint.from_url(redis_url), key, listen=0)
    assert Dialect.STREAMS in found.dialects
    assert found.streams is not None and found.streams.nodes == 2
    assert set(found.streams.namespaces) == {"/", "/chat"}
    assert found.streams.sessions >= 1
    assert bool(any(found.streams.heartbeat_uids.values())) == (version == "0.2")

    # 0.3's SUBSCRIBEs (P#N# and P#N#<uid>#) are not taken for socket.io-redis 4.x
    assert found.dialects == {Dialect.STREAMS}
    report = await doctor(redis_url, key, duration=0.3)
    assert report.dialects == ["streams"] and report.healthy, report.codes()
    assert report.facts["streams"]["nodes"] == 2
    assert any("Redis stream" in e for e in report.evidence)
    (root,) = [n for n in report.namespaces if n.nsp == "/"]
    assert set(root.node_uids) == {a.uid, b.uid}


def test_stale_heartbeats_count_no_node() -> None:
    recent = [(b"100000-0", {b"uid": b"u1", b"nsp": b"/", b"type": b"2"}),
              (b"1000-0", {b"uid": b"u2", b"nsp": b"/", b"type": b"2"})]  # fmt: skip
    assert stream_clues("s", 2, recent, now_ms=101_000).nodes == 1
    assert stream_clues("s", 2, recent, now_ms=10_000_000).nodes == 0
    assert stream_clues("s", 2, recent).nodes == 2


def test_stream_clues_count_malformed_entries() -> None:
    recent = [(b"2-0", {b"uid": b"u1", b"nsp": b"/", b"type": b"2"}),
              (b"1-0", {b"uid": b"u2", b"nsp": b"/", b"type": b"x"})]  # fmt: skip
    clues = stream_clues("s", 2, recent)
    assert (clues.nodes, clues.malformed, clues.last_id) == (1, 1, "2-0")
    assert "1 malformed" in clues.describe()


@pytest.mark.node
async def test_published_03_traffic_is_not_sharded(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    # fetchSockets and serverSideEmit of 0.3 nodes go over PUBLISH as msgpack maps: heard
    # by the doctor's and the detection's PSUBSCRIBE they are streams traffic, not a
    # second (sharded) adapter generation on the prefix.
    opts = {"stream": key, "streams_version": "0.3"}
    a = await node_peers("streams", "A", port=0, **opts)
    await node_peers("streams", "B", port=0, **opts)
    await a.call("nsp_emit", nsp="/", event="news", args=[1])  # creates the stream
    stop = asyncio.Event()

    async def traffic() -> int:
        n = 0
        while not stop.is_set():
            await a.call("fetchSockets", nsp="/")
            await a.call("serverSideEmit", nsp="/", event="sse-ack", args=[n], ack=True)
            n += 1
            await asyncio.sleep(0.05)
        return n

    task = asyncio.create_task(traffic())
    try:
        found = await detect(RedisEndpoint.from_url(redis_url), key, listen=0.8)
        report = await doctor(redis_url, key, duration=0.8)
    finally:
        stop.set()
        rounds = await task
    assert rounds >= 2
    assert found.dialects == {Dialect.STREAMS} and found.dialect is Dialect.STREAMS
    assert any("decode as streams" in e for e in found.evidence)
    assert report.dialects == ["streams"] and report.healthy, report.codes()
    assert "mixed-dialects" not in report.codes()


@pytest.mark.node
async def test_stream_count_streams_are_detected(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    # 0.3 streamCount 3: no stream is named like the prefix; <key>-1 and <key>-2 are.
    opts = {"stream": key, "streams_version": "0.3", "stream_count": 3}
    a = await node_peers("streams", "A", port=0, **opts)
    await node_peers("streams", "B", port=0, **opts)
    await a.call("nsp_emit", nsp="/", event="news", args=[1])
    await a.call("nsp_emit", nsp="/chat", event="news", args=[1])
    # The node's XADD may still be on its way when the call returns: wait for both streams.
    async with aioredis.from_url(redis_url) as r:
        for _ in range(200):
            if await r.exists(f"{key}-1", f"{key}-2") == 2:
                break
            await asyncio.sleep(0.02)
    found = await detect(RedisEndpoint.from_url(redis_url), key, listen=0)
    assert found.dialects == {Dialect.STREAMS}
    assert found.streams is not None and found.streams.nodes == 2
    assert found.streams.key == f"{key}-1, {key}-2" and found.streams.length == 2
    assert set(found.streams.namespaces) == {"/", "/chat"}
    report = await doctor(redis_url, key, duration=0.3)
    assert report.dialects == ["streams"] and report.healthy, report.codes()
