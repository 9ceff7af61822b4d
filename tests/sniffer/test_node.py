"""The sniffer on real Node clusters (the project's harness): decoding and passivity."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from siotools.exceptions import NodePeerError
from siotools.protocol import Broadcast, ClusterMessage, ClusterMessageType, Dialect
from siotools.sniffer import start_capture
from tests.nodepeer.fixtures import StartFn
from tests.sniffer.helpers import broadcasts, wait_frames

pytestmark = pytest.mark.node

ARGS = ["hi", b"\x00\x01\xfe\xff", {"n": 1, "nested": [True, None, 2.5]}]
DIALECT = {"legacy5": Dialect.LEGACY, "current": Dialect.CURRENT}


async def _numsub(r: aioredis.Redis, channel: str) -> int:
    ((_, count),) = await r.pubsub_numsub(channel)
    return int(count)


async def _requests(flavor: str, a: object, sid: str) -> float:
    """Run the cluster requests that count answers with NUMSUB; returns their duration."""
    started = time.perf_counter()
    call = a.call  # type: ignore[attr-defined]
    assert sid in await call("allRooms", nsp="/")
    if flavor == "legacy5":
        assert await call("clients", nsp="/", rooms=["room1"]) == [sid]
    else:
        assert [s["id"] for s in await call("fetchSockets", nsp="/", rooms=["room1"])] == [sid]
    return time.perf_counter() - started


@pytest.mark.parametrize("flavor", ["legacy5", "current"])
async def test_node_cluster_decoded_and_undisturbed(
    node_peers: StartFn, redis_url: str, key: str, flavor: str
) -> None:
    # A short requests timeout: a sniffer counted by NUMSUB would make these requests fail.
    a = await node_peers(flavor, "A", port=0, requests_timeout_ms=1000)
    b = await node_peers(flavor, "B", port=0, requests_timeout_ms=1000)
    cl = await node_peers(flavor, "CL")
    sid = (await cl.call("client_connect", client="c1", url=b.url, nsp="/"))["id"]
    await cl.call("client_join", client="c1", rooms=["room1"])
    r = aioredis.from_url(redis_url)
    request_channel = f"{key}-request#/#"

    numsub_before = await _numsub(r, request_channel)
    latency_before = await _requests(flavor, a, sid)
    cap = await start_capture(redis_url, key)
    assert await _numsub(r, request_channel) == numsub_before == 2
    latency_during = await _requests(flavor, a, sid)
    print(f"\n{flavor}: requests took {latency_before:.3f}s before, {latency_during:.3f}s during")

    await a.call("nsp_emit", nsp="/", rooms=["room1"], event="news", args=ARGS)
    await cl.wait_event(name="client_recv", client="c1", event="news")
    await a.call("nsp_emit", nsp="/chat", event="chat", args=[1])
    await wait_frames(cap, lambda f: f.event == "chat")
    cap.stop()
    await cap.wait()
    await r.aclose()

    (news,) = broadcasts(cap, "news")
    assert isinstance(news.frame, Broadcast) and news.dialect is DIALECT[flavor]
    assert news.row.args == ARGS and news.row.rooms == ["room1"] and news.row.uid == a.uid
    assert news.channel == f"{key}#/#room1#"
    (chat,) = broadcasts(cap, "chat")
    assert chat.nsp == "/chat" and chat.row.args == [1]
    requests = [f for f in cap.frames if f.kind == "request"]
    assert {f.row.type for f in requests} >= {"ALL_ROOMS"}
    answered = {f.row.request_id for f in cap.frames if f.kind == "response"}
    assert {f.row.request_id for f in requests} <= answered
    an = cap.anomalies()
    assert an["undecodable"] == an["mixed_dialect"] == an["unanswered"] == 0
    df = cap.to_pandas()
    assert set(df["dialect"].dropna()) == {DIALECT[flavor].value}


async def test_a_plain_subscriber_would_break_requests(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    """The control experiment: what PSUBSCRIBE avoids. A SUBSCRIBE is counted by NUMSUB."""
    a = await node_peers("legacy5", "A", port=0, requests_timeout_ms=500)
    await node_peers("legacy5", "B", port=0, requests_timeout_ms=500)
    r = aioredis.from_url(redis_url)
    pubsub = r.pubsub()
    await pubsub.subscribe(f"{key}-request#/#")
    try:
        assert await _numsub(r, f"{key}-request#/#") == 3
        with pytest.raises(NodePeerError, match="timeout"):
            await a.call("allRooms", nsp="/")
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()
        await r.aclose()


async def test_sharded_cluster_through_monitor(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    a = await node_peers("current", "A", port=0, adapter="sharded", requests_timeout_ms=1000)
    b = await node_peers("current", "B", port=0, adapter="sharded", requests_timeout_ms=1000)
    cl = await node_peers("current", "CL")
    sid = (await cl.call("client_connect", client="c1", url=b.url, nsp="/"))["id"]
    r = aioredis.from_url(redis_url)
    shard_before = await r.execute_command("PUBSUB", "SHARDNUMSUB", f"{key}#/#")
    with pytest.warns(RuntimeWarning, match="MONITOR"):
        cap = await start_capture(redis_url, key, monitor=True)
    assert await r.execute_command("PUBSUB", "SHARDNUMSUB", f"{key}#/#") == shard_before
    found = await a.call("fetchSockets", nsp="/")
    assert [s["id"] for s in found] == [sid]
    await a.call("nsp_emit", nsp="/", event="sharded-news", args=ARGS)
    await cl.wait_event(name="client_recv", client="c1", event="sharded-news")
    await wait_frames(cap, lambda f: f.event == "sharded-news")
    await asyncio.sleep(0.1)
    cap.stop()
    await cap.wait()
    await r.aclose()
    (news,) = [f for f in cap.frames if f.event == "sharded-news"]
    assert news.sharded and isinstance(news.frame, ClusterMessage)
    assert news.frame.type == ClusterMessageType.BROADCAST and news.dialect is Dialect.SHARDED
    assert news.row.args == ARGS
    fetch = [f for f in cap.frames if f.row.type == "FETCH_SOCKETS"]
    assert fetch and fetch[0].kind == "request"
    assert cap.anomalies()["unanswered"] == 0
    # SPUBLISHed maps stay sharded, the msgpack broadcast with binary included (the
    # streams adapter's 0.3 pub/sub maps are told apart by how they were heard).
    assert news.frame.binary
    maps = [f for f in cap.frames if isinstance(f.frame, ClusterMessage)]
    assert maps and all(f.sharded and f.dialect is Dialect.SHARDED for f in maps)
    df = cap.to_pandas()
    assert set(df[df["channel"].str.startswith(f"{key}#")]["dialect"]) == {"sharded"}
