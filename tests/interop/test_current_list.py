"""@socket.io/redis-adapter 8.3.0's own test list (test/index.ts, test/specifics.ts,
test/custom-parser.ts) in 3-node mixed clusters.

Each test runs per configuration (classic: default, ``publishOnSpecificResponseChannel``, a
JSON parser, and the default on a Redis Cluster; sharded (``createShardedAdapter``): the
``dynamic``, ``static`` and ``dynamic-private`` subscription modes, on a standalone Redis 7
and on a Redis Cluster) and direction: ``py-asks`` (a Python node acts, two real Node 8.3
nodes answer and deliver), ``node-asks`` (a Node node acts, two Python nodes answer and
deliver) and ``python`` (three Python nodes). Every test ends by checking that no Node
node reported an error or an uncaught exception, and that no Python node reported one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as redis

from siotools import UnsupportedOperation
from tests.interop.conftest import Ctx, cluster_params
from tests.interop.harness import (
    CURRENT_CONFIGS,
    SHARDED_CLUSTER_CONFIGS,
    SHARDED_CONFIGS,
    Cluster,
    PyClient,
    PyServer,
    Timeout,
)

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

CONFIGS = [
    *CURRENT_CONFIGS,
    CURRENT_CONFIGS[0].on_redis_cluster(),
    *SHARDED_CONFIGS,
    *SHARDED_CLUSTER_CONFIGS,
]
PARAMS = cluster_params(CONFIGS)

# RA test/index.ts "broadcasts to all clients": 1, "2", Buffer.from([3, 4]); the custom
# (JSON) parser test (test/custom-parser.ts) sends 1, "2", [3]: JSON carries no Buffer.
RA_ARGS = [1, "2", b"\x03\x04"]
JSON_ARGS = [1, "2", [3]]
# Seconds a broadcast with acks waits for the clients' acks in these tests.
ACK_WINDOW = 2.0


def binary_ok(ctx: Ctx) -> bool:
    return ctx.cluster.config.py_opts.get("parser") != "json"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=PARAMS)
async def cluster(
    request: pytest.FixtureRequest, redis_url: str, node_install: object
) -> AsyncIterator[Cluster]:
    config, direction, adapter = request.param
    if direction != "python":
        node_install(config.flavor)  # type: ignore[operator]
    if config.redis_cluster:
        # A seed node of the session's Redis Cluster (Python: cluster=True, Node:
        # node-redis createCluster).
        rc = request.getfixturevalue("redis_cluster")
        if rc.version() < (7, 0):
            pytest.skip("sharded pub/sub (SSUBSCRIBE, SPUBLISH) needs Redis 7 or later")
        rc.wait_ok(30)
        redis_url = rc.url
    cl = Cluster(config, direction, redis_url, f"sio-{uuid.uuid4().hex[:8]}", adapter)
    try:
        await cl.start()
        yield cl
    finally:
        await cl.stop()


@pytest.fixture(autouse=True)
def no_errors(cluster: Cluster) -> object:
    yield
    assert cluster.node_failures() == []
    for node in cluster.nodes:
        if isinstance(node, PyServer):
            assert node.errors == [], node.errors


# Seconds a negative check waits past the sentinel on a Redis Cluster (see sentinel()).
CLUSTER_BUS_GRACE = 0.25


async def sentinel(ctx: Ctx, *clients: str) -> None:
    """Broadcast a marker from A and wait until the named clients got it.

    On one Redis, whatever A published before the marker has been delivered (or dropped)
    by then. On a Redis Cluster it has not: node-redis 4 sends each PUBLISH to the next
    node of the cluster in turn (the command has no key: cluster-slots.js getClient ->
    getRandomNode), the cluster bus carries messages from different nodes in no common
    order, and sharded room channels live on other masters. There the marker
    proves nothing about order, so the tests wait for every delivery they expect with
    ``wait_event`` first, and a check that something did *not* arrive waits a grace
    period past the marker.
    """
    await ctx.cluster.a.emit(ctx.nsp, "sentinel", [])
    for name in clients or ("a", "b", "c"):
        await getattr(ctx, name).wait_event("sentinel")
    if ctx.cluster.config.redis_cluster:
        await asyncio.sleep(CLUSTER_BUS_GRACE)


async def settle(ctx: Ctx) -> None:
    """Give a fire-and-forget request (socketsJoin...) time to come back from Redis to
    every node and be applied, then wait for the room subscriptions."""
    await asyncio.sleep(0.2)
    await ctx.cluster.settle()


def ids(sockets: list[dict[str, object]]) -> list[object]:
    return sorted(s["id"] for s in sockets)


# --------------------------------------------------------------------------- broadcast


async def test_broadcasts_to_all_clients(ctx: Ctx) -> None:
    args = RA_ARGS if binary_ok(ctx) else JSON_ARGS
    await ctx.cluster.a.emit(ctx.nsp, "test", args)
    for client in (ctx.a, ctx.b, ctx.c):
        assert await client.wait_event("test") == args


async def test_broadcasts_to_all_clients_in_a_namespace(ctx: Ctx) -> None:
    other = ctx.cluster.namespace()
    outsider = await ctx.cluster.b.client(other)
    try:
        await ctx.cluster.a.emit(ctx.nsp, "test", [])
        assert await ctx.b.wait_event("test") == []
        await sentinel(ctx)
        assert ctx.b.received("test") == [[]]
        assert outsider.received("test") == []
    finally:
        await outsider.close()


async def test_broadcasts_to_all_clients_in_a_room(ctx: Ctx) -> None:
    await ctx.b.join("room1")
    await ctx.cluster.settle()
    await ctx.cluster.a.emit(ctx.nsp, "test", [], rooms=["room1"])
    assert await ctx.b.wait_event("test") == []
    await sentinel(ctx)
    assert ctx.a.received("test") == ctx.c.received("test") == []


async def test_broadcasts_to_all_clients_except_in_room(ctx: Ctx) -> None:
    await ctx.b.join("room1")
    await ctx.cluster.settle()
    a = ctx.cluster.a
    # socket.io 4 io.except("room1").emit(...); python-socketio's skip_sid names rooms on
    # an 8.x node (a socket id is a room).
    if isinstance(a, PyServer):
        await a.call(a.node.sio.emit, "except", (), skip_sid="room1", namespace=ctx.nsp)
    else:
        await a.peer.call("nsp_emit", nsp=ctx.nsp, except_=["room1"], event="except", args=[])  # type: ignore[attr-defined]
    assert await ctx.a.wait_event("except") == await ctx.c.wait_event("except") == []
    await sentinel(ctx)
    assert ctx.b.received("except") == []
    assert ctx.a.received("except") == ctx.c.received("except") == [[]]


async def test_broadcasts_to_all_clients_once(ctx: Ctx) -> None:
    await ctx.b.join("room1", "room2")
    await ctx.c.join("room2")
    await ctx.cluster.settle()
    await ctx.cluster.a.emit(ctx.nsp, "once", [], rooms=["room1", "room2", "room3"])
    assert await ctx.b.wait_event("once") == await ctx.c.wait_event("once") == []
    await sentinel(ctx)
    assert ctx.b.received("once") == [[]]
    assert ctx.c.received("once") == [[]]
    assert ctx.a.received("once") == []


async def test_broadcasts_to_local_clients_only(ctx: Ctx) -> None:
    await ctx.cluster.a.emit(ctx.nsp, "test", [], local=True)
    assert await ctx.a.wait_event("test") == []
    await sentinel(ctx)
    assert ctx.b.received("test") == ctx.c.received("test") == []


async def test_broadcasts_to_a_single_client(ctx: Ctx) -> None:
    await ctx.cluster.a.emit(ctx.nsp, "test", [], rooms=[ctx.b.sid])
    assert await ctx.b.wait_event("test") == []
    await sentinel(ctx)
    assert ctx.a.received("test") == ctx.c.received("test") == []


async def test_broadcasts_with_multiple_acknowledgements(ctx: Ctx) -> None:
    acks = await ctx.cluster.a.op(
        "emit_with_ack", ctx.nsp, event="test", args=[], timeout=ACK_WINDOW
    )
    assert len(acks) == 3
    assert all(ack["event"] == "test" for ack in acks)
    for client in (ctx.a, ctx.b, ctx.c):
        assert await client.wait_event("test") == []


async def test_broadcasts_with_multiple_acknowledgements_binary_content(ctx: Ctx) -> None:
    if not binary_ok(ctx):
        pytest.skip("a JSON parser carries no binary (RA runs this test with msgpack only)")
    acks = await ctx.cluster.a.op(
        "emit_with_ack", ctx.nsp, event="bin", args=[b"\x01\x02"], timeout=ACK_WINDOW
    )
    assert len(acks) == 3
    for client in (ctx.a, ctx.b, ctx.c):
        assert await client.wait_event("bin") == [b"\x01\x02"]


async def test_broadcasts_with_multiple_acknowledgements_no_client(ctx: Ctx) -> None:
    acks = await ctx.cluster.a.op(
        "emit_with_ack", ctx.nsp, event="test", args=[], rooms=["abc"], timeout=ACK_WINDOW
    )
    assert acks == []


async def test_broadcasts_with_multiple_acknowledgements_timeout(ctx: Ctx) -> None:
    # A client that never acks: the operation times out with the acks that came.
    cl = ctx.cluster
    silent = cl.b
    if isinstance(silent, PyServer):
        mute: Any = await PyClient(ctx.nsp, mute=True).connect(silent.url)
        close = mute.close
    else:
        peer = silent.client_peer  # type: ignore[attr-defined]
        await peer.call("client_connect", client="mute", url=silent.url, nsp=ctx.nsp, ack="none")

        async def close() -> None:
            await peer.call("client_close", client="mute")

    try:
        # The three acks that do come cross the client peer, the other nodes and Redis (a
        # Redis Cluster's bus too): they get the window the tests above give them. With
        # 0.5 s, a loaded machine sometimes delivered one after the timeout, and the partial
        # result had two (the result is whatever arrived in time, as in socket.io).
        started = time.monotonic()
        with pytest.raises(Timeout, match="operation has timed out") as info:
            await cl.a.op("emit_with_ack", ctx.nsp, event="test", args=[], timeout=ACK_WINDOW)
        elapsed = time.monotonic() - started
        acks = info.value.partial or []
        assert len(acks) == 3, acks
        assert all(ack["event"] == "test" for ack in acks)
        assert elapsed >= ACK_WINDOW - 0.05  # it waited for the silent client, in vain
    finally:
        await close()


# --------------------------------------------------------------------------- socketsJoin / Leave


async def test_sockets_join_makes_all_socket_instances_join(ctx: Ctx) -> None:
    await ctx.cluster.a.op("sockets_join", ctx.nsp, join=["room1"])
    await settle(ctx)
    found = await ctx.cluster.a.op("fetch_sockets", ctx.nsp, rooms=["room1"])
    assert ids(found) == sorted([ctx.a.sid, ctx.b.sid, ctx.c.sid])


async def test_sockets_join_makes_the_matching_socket_instances_join(ctx: Ctx) -> None:
    await ctx.b.join("room1")
    await ctx.c.join("room2")
    await ctx.cluster.settle()
    await ctx.cluster.a.op("sockets_join", ctx.nsp, join=["room3"], rooms=["room1"])
    await settle(ctx)
    found = await ctx.cluster.a.op("fetch_sockets", ctx.nsp, rooms=["room3"])
    assert ids(found) == [ctx.b.sid]


async def test_sockets_join_makes_the_given_socket_instance_join(ctx: Ctx) -> None:
    await ctx.cluster.a.op("sockets_join", ctx.nsp, join=["room1"], rooms=[ctx.c.sid])
    await settle(ctx)
    found = await ctx.cluster.a.op("fetch_sockets", ctx.nsp, rooms=["room1"])
    assert ids(found) == [ctx.c.sid]


async def test_sockets_leave_makes_all_socket_instances_leave(ctx: Ctx) -> None:
    for client in (ctx.a, ctx.b, ctx.c):
        await client.join("room1")
    await ctx.cluster.settle()
    await ctx.cluster.a.op("sockets_leave", ctx.nsp, leave=["room1"])
    await settle(ctx)
    assert await ctx.cluster.a.op("fetch_sockets", ctx.nsp, rooms=["room1"]) == []


async def test_sockets_leave_makes_the_matching_socket_instances_leave(ctx: Ctx) -> None:
    await ctx.a.join("room1")
    await ctx.b.join("room1", "room2")
    await ctx.c.join("room2")
    await ctx.cluster.settle()
    await ctx.cluster.a.op("sockets_leave", ctx.nsp, leave=["room2"], rooms=["room1"])
    await settle(ctx)
    found = await ctx.cluster.a.op("fetch_sockets", ctx.nsp, rooms=["room2"])
    assert ids(found) == [ctx.c.sid]


async def test_sockets_leave_makes_the_given_socket_instance_leave(ctx: Ctx) -> None:
    for client in (ctx.a, ctx.b, ctx.c):
        await client.join("room1")
    await ctx.cluster.settle()
    await ctx.cluster.a.op("sockets_leave", ctx.nsp, leave=["room1"], rooms=[ctx.b.sid])
    await settle(ctx)
    found = await ctx.cluster.a.op("fetch_sockets", ctx.nsp, rooms=["room1"])
    assert ids(found) == sorted([ctx.a.sid, ctx.c.sid])


# --------------------------------------------------------------------------- disconnectSockets


async def test_disconnect_sockets_makes_all_socket_instances_disconnect(ctx: Ctx) -> None:
    await ctx.cluster.a.op("disconnect_sockets", ctx.nsp, close=True)
    for client in (ctx.a, ctx.b, ctx.c):
        assert await client.wait_disconnected() == "io server disconnect"


# --------------------------------------------------------------------------- fetchSockets


async def test_fetch_sockets_returns_all_socket_instances(ctx: Ctx) -> None:
    found = await ctx.cluster.a.op("fetch_sockets", ctx.nsp)
    assert ids(found) == sorted([ctx.a.sid, ctx.b.sid, ctx.c.sid])
    a = ctx.cluster.a
    if isinstance(a, PyServer):
        assert a.adapter.pending_requests == 0  # RA: `adapter.requests.size === 0`


async def test_fetch_sockets_returns_a_single_socket_instance(ctx: Ctx) -> None:
    found = await ctx.cluster.a.op("fetch_sockets", ctx.nsp, rooms=[ctx.b.sid])
    assert ids(found) == [ctx.b.sid]
    assert found[0]["rooms"] == [ctx.b.sid]
    data = found[0]["data"]
    # socket.data round trip: Node peers set {name, node}, python nodes save a session.
    assert isinstance(data, dict) and data["node"] == ctx.cluster.b.name


async def test_fetch_sockets_returns_only_local_socket_instances(ctx: Ctx) -> None:
    found = await ctx.cluster.a.op("fetch_sockets", ctx.nsp, local=True)
    assert ids(found) == [ctx.a.sid]


# --------------------------------------------------------------------------- serverSideEmit


async def test_server_side_emit_sends_an_event_to_other_server_instances(ctx: Ctx) -> None:
    cl = ctx.cluster
    await cl.a.op("server_side_emit", ctx.nsp, event="sse", args=["hello", "world", 1, "2"])
    for node in (cl.b, cl.c):
        if isinstance(node, PyServer):
            for _ in range(100):
                if node.sse_received:
                    break
                await asyncio.sleep(0.02)
            assert (ctx.nsp, "sse", ["hello", "world", 1, "2"]) in node.sse_received
        else:
            ev = await node.peer.wait_event(name="server_side_emit", nsp=ctx.nsp, event="sse")  # type: ignore[attr-defined]
            assert ev["args"] == ["hello", "world", 1, "2"]
    if isinstance(cl.a, PyServer):
        assert cl.a.sse_received == []  # not to itself


async def test_server_side_emit_receives_a_response_from_the_other_instances(ctx: Ctx) -> None:
    cl = ctx.cluster
    replies = await cl.a.op("server_side_emit", ctx.nsp, event="sse-ack", args=[{"x": 1}], ack=True)
    assert sorted(r["node"] for r in replies) == sorted([cl.b.name, cl.c.name])
    assert all(r["args"] == [{"x": 1}] for r in replies)


async def test_server_side_emit_timeout_if_one_server_does_not_respond(ctx: Ctx) -> None:
    cl = ctx.cluster
    quiet = cl.c
    if isinstance(quiet, PyServer):
        quiet.sse_mode = "silent"
    else:
        await quiet.peer.call("set_sse_mode", mode="silent")  # type: ignore[attr-defined]
    try:
        with pytest.raises(Timeout, match="timeout reached: only 1 responses received out of 2"):
            await cl.a.op("server_side_emit", ctx.nsp, event="sse-ack", args=[], ack=True)
    finally:
        if isinstance(quiet, PyServer):
            quiet.sse_mode = "reply"
        else:
            await quiet.peer.call("set_sse_mode", mode="reply")  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- specifics


async def test_broadcasts_to_a_numeric_room(ctx: Ctx) -> None:
    cl = ctx.cluster
    b = cl.b
    if isinstance(b, PyServer):
        await b.call(b.adapter.enter_room, ctx.b.sid, ctx.nsp, 123)
    else:
        await b.peer.call("socket_join", nsp=ctx.nsp, sid=ctx.b.sid, room=123)  # type: ignore[attr-defined]
    await cl.settle()
    await cl.a.emit(ctx.nsp, "test", [], rooms=[123])  # type: ignore[list-item]
    assert await ctx.b.wait_event("test") == []


async def test_ignores_messages_from_unknown_channels(ctx: Ctx) -> None:
    cl = ctx.cluster
    async with redis.Redis.from_url(cl.redis_url) as r:
        await r.publish("f?o", b"\x93\xa1a\x80\x80")
        await r.publish("woot", b"garbage")
        await r.publish(f"{cl.key}#{ctx.nsp}woot", b"garbage")
    await sentinel(ctx)


async def test_all_rooms_returns_all_rooms_across_several_nodes(ctx: Ctx) -> None:
    if ctx.cluster.config.sharded:
        # RA skips it for sharded: the ClusterAdapter protocol has no allRooms.
        a = ctx.cluster.a
        if not isinstance(a, PyServer):
            pytest.skip("a Node sharded adapter has no allRooms()")
        with pytest.raises(UnsupportedOperation, match="has no allRooms"):
            await a.op("all_rooms", ctx.nsp)
        return
    await ctx.a.join("woot1")
    await ctx.cluster.settle()
    rooms = await ctx.cluster.a.op("all_rooms", ctx.nsp)
    assert sorted(rooms) == sorted([ctx.a.sid, ctx.b.sid, ctx.c.sid, "woot1"])
    a = ctx.cluster.a
    if isinstance(a, PyServer):
        assert a.adapter.pending_requests == 0


async def test_server_count(ctx: Ctx) -> None:
    assert await ctx.cluster.a.op("server_count", ctx.nsp) == 3
