"""Operating real socket.io 4.8 + @socket.io/redis-adapter 8.3 *sharded* clusters from
Python, on a standalone Redis 7 and on a Redis Cluster.

ClusterClient picks the sharded dialect from the sharded channels alone (nothing
published), runs every operation, and never changes ``SHARDNUMSUB`` (the Node nodes'
count); the sharded Emitter (no Node package has one) reaches the Node nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from siotools import ClusterClient, Dialect, Emitter, SocketNotFound
from siotools.nodepeer import NodePeer
from siotools.redis_cluster import RedisCluster
from tests.interop.test_current_ops import until
from tests.nodepeer.fixtures import StartFn

pytestmark = pytest.mark.node


@dataclass
class Sharded:
    """Two Node sharded nodes A and B, a client peer, clients a1 (on A), b1 and b2 (on B)."""

    a: NodePeer
    b: NodePeer
    cl: NodePeer
    sids: dict[str, str]
    url: str  # what a siotools user passes (``?cluster=true`` on the Redis Cluster)
    masters: list[str]  # redis:// URLs of the masters (one for a standalone Redis)


async def shardnumsub(s: Sharded, channel: str) -> int:
    """``PUBSUB SHARDNUMSUB`` summed over the masters, with plain redis-py clients."""
    total = 0
    for url in s.masters:
        async with aioredis.Redis.from_url(url) as r:
            reply = await r.execute_command("PUBSUB", "SHARDNUMSUB", channel)
            total += int(reply[1])
    return total


@pytest.fixture(params=["standalone", "rcluster"])
async def sharded(
    request: pytest.FixtureRequest, node_peers: StartFn, redis_url: str
) -> AsyncIterator[Sharded]:
    extra: dict[str, Any] = {"adapter": "sharded", "subscription_mode": "dynamic"}
    url, masters = redis_url, [redis_url]
    if request.param == "rcluster":
        rc: RedisCluster = request.getfixturevalue("sharded_cluster")
        extra |= {"redis_url": rc.url, "redis_cluster": True}
        url = rc.url + "?cluster=true"
        masters = [f"redis://127.0.0.1:{m.port}/0" for m in rc.masters()]
    a = await node_peers("current", "A", port=0, **extra)
    b = await node_peers("current", "B", port=0, **extra)
    cl = await node_peers("current", "CL", **{k: v for k, v in extra.items() if "redis" in k})
    sids = {}
    for client, node in (("a1", a), ("b1", b), ("b2", b)):
        sids[client] = (await cl.call("client_connect", client=client, url=node.url, nsp="/chat"))[
            "id"
        ]
    await cl.call("client_join", client="b1", rooms=["vip"])
    yield Sharded(a, b, cl, sids, url, masters)
    for peer in (a, b, cl):
        assert not [e for e in peer.events if e["name"] in ("uncaught_exception", "adapter_error")]


async def test_cluster_client_operates_a_sharded_cluster(sharded: Sharded, key: str) -> None:
    s = sharded
    main = f"{key}#/chat#"
    assert await shardnumsub(s, main) == 2
    async with ClusterClient(s.url, key=key) as cluster:
        assert cluster.dialect is Dialect.SHARDED  # from the sharded channels, passively
        assert cluster.requests_timeout == 5.0
        assert await cluster.namespaces() == ["/", "/chat"]
        assert await cluster.node_count("/chat") == 2
        found = await cluster.fetch_sockets(namespace="/chat")
        assert sorted(x.id for x in found) == sorted(s.sids.values())
        b1 = next(x for x in found if x.id == s.sids["b1"])
        assert b1.data == {"name": "b1", "node": "B"}
        assert b1.handshake is not None and "headers" in b1.handshake
        assert await cluster.clients(["vip"], namespace="/chat") == [s.sids["b1"]]
        assert await cluster.rooms(namespace="/chat") == ["vip"]
        assert await cluster.room_members(namespace="/chat") == {"vip": [s.sids["b1"]]}
        # The sharded adapter has no allRooms request: the client reads every socket's
        # rooms from one fetchSockets instead (socket-id rooms included, as allRooms has).
        every = await cluster.all_rooms(namespace="/chat")
        assert sorted(every) == sorted(["vip", *s.sids.values()])

        await cluster.remote_join(s.sids["a1"], "vip", namespace="/chat")
        await until(lambda: _has(cluster, "vip", s.sids["a1"]))
        await cluster.remote_leave(s.sids["b1"], "vip", namespace="/chat")
        await until(lambda: _lacks(cluster, "vip", s.sids["b1"]))
        assert s.sids["b1"] in await cluster.clients(namespace="/chat")  # still connected
        with pytest.raises(SocketNotFound, match="no node has socket nope"):
            await cluster.remote_join("nope", "vip", namespace="/chat")

        await cluster.sockets_join("gold", rooms=[s.sids["b2"]], namespace="/chat")
        await until(lambda: _has(cluster, "gold", s.sids["b2"]))
        replies = await cluster.server_side_emit_with_ack("sse-ack", 1, namespace="/chat")
        assert sorted(r["node"] for r in replies) == ["A", "B"]
        assert await cluster.emit("news", "hi", rooms=["vip"], namespace="/chat") == 2
        ev = await s.cl.wait_event(name="client_recv", client="a1", event="news")
        assert ev["args"] == ["hi"]
        acks = await cluster.emit_with_ack("ask", namespace="/chat", timeout=2.0)
        assert sorted(ack["client"] for ack in acks) == ["a1", "b1", "b2"]
        # SHARDNUMSUB is the nodes' only: the client's own response channel is not main
        assert await shardnumsub(s, main) == 2
        await cluster.disconnect_sockets(rooms=["gold"], namespace="/chat")
        ev = await s.cl.wait_event(name="client_disconnect", client="b2")
        assert ev["reason"] == "io server disconnect"
    assert await shardnumsub(s, main) == 2


async def _has(cluster: ClusterClient, room: str, sid: str) -> bool:
    return sid in await cluster.clients([room], namespace="/chat")


async def _lacks(cluster: ClusterClient, room: str, sid: str) -> bool:
    return sid not in await cluster.clients([room], namespace="/chat")


@pytest.mark.parametrize("mode", ["static", "dynamic"])
async def test_sharded_emitter_reaches_node_sharded_nodes(
    sharded: Sharded, key: str, mode: str
) -> None:
    """A siotools feature: @socket.io/redis-emitter cannot reach sharded nodes."""
    s = sharded
    async with Emitter(s.url, key=key, dialect="sharded", subscription_mode=mode) as io:
        chat = io.of("/chat")
        await chat.emit("all", 1, "2", b"\x03\x04")
        for client in ("a1", "b1", "b2"):
            ev = await s.cl.wait_event(name="client_recv", client=client, event="all")
            assert ev["args"] == [1, "2", b"\x03\x04"]
        # one room: on the room's channel in dynamic mode, the main channel in static
        heard = await io.publish(chat.to("vip"), "vip-only", [mode], count=True)
        assert heard == (1 if mode == "dynamic" else 2)
        ev = await s.cl.wait_event(name="client_recv", client="b1", event="vip-only")
        assert ev["args"] == [mode]
        await chat.to(s.sids["a1"]).emit("dm", 7)
        ev = await s.cl.wait_event(name="client_recv", client="a1", event="dm")
        assert ev["args"] == [7]
        await chat.except_("vip").emit("not-vip")
        for client in ("a1", "b2"):
            await s.cl.wait_event(name="client_recv", client=client, event="not-vip")
        assert await chat.server_side_emit("sse", "from-emitter") >= 1
        for node in (s.a, s.b):
            ev = await node.wait_event(name="server_side_emit", nsp="/chat", event="sse")
            assert ev["args"] == ["from-emitter"]
        await chat.to(s.sids["b2"]).sockets_join("silver")
        async with ClusterClient(s.url, key=key) as cluster:
            await until(lambda: _has(cluster, "silver", s.sids["b2"]))
            await chat.to("silver").sockets_leave("silver")
            await until(lambda: _lacks(cluster, "silver", s.sids["b2"]))
        await chat.to("vip").disconnect_sockets(close=True)
        ev = await s.cl.wait_event(name="client_disconnect", client="b1")
        assert ev["reason"] in ("io server disconnect", "transport close")
    await asyncio.sleep(0.1)
    vip = [e for e in s.cl.events if e["name"] == "client_recv" and e["event"] == "vip-only"]
    assert [e["client"] for e in vip] == ["b1"]
    not_vip = [e for e in s.cl.events if e["name"] == "client_recv" and e["event"] == "not-vip"]
    assert sorted(e["client"] for e in not_vip) == ["a1", "b2"]
