"""socket.io-redis's own test list (test/index.js) in 3-node mixed clusters.

Each test runs once per flavor (legacy5 SUBSCRIBE / PSUBSCRIBE, legacy4 with and without
multiplexing) and direction: ``py-asks`` (a Python node acts, two Node nodes answer and
deliver), ``node-asks`` (a Node node acts, two Python nodes answer and deliver) and
``python`` (three Python nodes). Node A/B/C stand for the seed's namespace1/2/3, each
with one client (a, b, c).
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from tests.interop.conftest import Ctx
from tests.interop.harness import Cluster, PyServer, Timeout

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

# The seed's `broadcasts` args: [], {a: 'b'}, a Buffer and Uint8Array.of(1, 2, 3, 4).
SEED_ARGS = [[], {"a": "b"}, b"\x00\x01\xfe\xff", bytes([1, 2, 3, 4])]


async def sentinel(ctx: Ctx, *clients: str) -> None:
    """Broadcast a marker from A and wait until the named clients got it: whatever A
    broadcast before it has been delivered (or dropped) by then."""
    await ctx.cluster.a.emit(ctx.nsp, "sentinel", [])
    for name in clients or ("a", "b", "c"):
        await getattr(ctx, name).wait_event("sentinel")


async def test_broadcasts(ctx: Ctx) -> None:
    cl = ctx.cluster
    await cl.a.socket_broadcast(ctx.nsp, ctx.a.sid, "woot", SEED_ARGS)
    assert await ctx.b.wait_event("woot") == SEED_ARGS
    assert await ctx.c.wait_event("woot") == SEED_ARGS
    await cl.a.emit(ctx.nsp, "io-emit", [{"nested": [1, 2.5, None, True, "é"]}])
    for client in (ctx.a, ctx.b, ctx.c):
        assert await client.wait_event("io-emit") == [{"nested": [1, 2.5, None, True, "é"]}]
    await sentinel(ctx)
    assert ctx.a.received("woot") == []  # broadcast skips the sender


async def test_broadcasts_to_rooms(ctx: Ctx) -> None:
    cl = ctx.cluster
    await ctx.b.join("woot")
    await cl.settle()
    await cl.a.socket_broadcast(ctx.nsp, ctx.a.sid, "broadcast", [1], rooms=["woot"])
    await cl.a.emit(ctx.nsp, "io-room", [b"\x02"], rooms=["woot"])
    assert await ctx.b.wait_event("broadcast") == [1]
    assert await ctx.b.wait_event("io-room") == [b"\x02"]
    await sentinel(ctx)
    assert ctx.c.received("broadcast") == ctx.c.received("io-room") == []
    assert ctx.a.received("io-room") == []


async def test_broadcasts_to_multiple_rooms_at_a_time(ctx: Ctx) -> None:
    cl = ctx.cluster
    await ctx.b.join("woot1", "woot2")
    await ctx.c.join("woot2")
    await cl.settle()
    await cl.a.emit(ctx.nsp, "once", ["x"], rooms=["woot1", "woot2"])
    await sentinel(ctx)
    assert ctx.b.received("once") == [["x"]]
    assert ctx.c.received("once") == [["x"]]
    assert ctx.a.received("once") == []


async def test_does_not_broadcast_when_using_the_local_flag(ctx: Ctx) -> None:
    cl = ctx.cluster
    await cl.a.emit(ctx.nsp, "local", ["here"], local=True)
    assert await ctx.a.wait_event("local") == ["here"]
    await sentinel(ctx)
    assert ctx.b.received("local") == ctx.c.received("local") == []


async def test_does_not_broadcast_to_left_rooms(ctx: Ctx) -> None:
    cl = ctx.cluster
    await ctx.b.join("woot")
    assert "woot" not in await ctx.b.leave("woot")
    await cl.settle()
    await cl.a.emit(ctx.nsp, "left", [1], rooms=["woot"])
    await sentinel(ctx)
    assert ctx.b.received("left") == []


async def test_deletes_rooms_upon_disconnection(ctx: Ctx) -> None:
    cl = ctx.cluster
    await ctx.b.join("woot")
    await cl.settle()
    assert "woot" in await cl.a.request("all_rooms", ctx.nsp)
    await ctx.b.close()
    # Wait until B noticed the disconnection (the server side may lag the client).
    for _ in range(100):
        if ctx.b.sid not in await cl.a.request("clients", ctx.nsp, None):
            break
        await asyncio.sleep(0.02)
    rooms = await cl.a.request("all_rooms", ctx.nsp)
    assert "woot" not in rooms
    assert ctx.b.sid not in rooms
    assert await cl.a.request("clients", ctx.nsp, ["woot"]) == []
    if cl.config.multiplexing:
        # 4.x Redis#del: the last local member left, so B UNSUBSCRIBEd the room channel.
        await cl.settle()
        async with redis.Redis.from_url(cl.redis_url) as r:
            numsub = dict(await r.pubsub_numsub(f"{cl.key}#{ctx.nsp}#woot#"))
        assert list(numsub.values()) == [0]


async def test_returns_clients_in_the_same_room(ctx: Ctx) -> None:
    cl = ctx.cluster
    await ctx.b.join("woot")
    await ctx.c.join("woot")
    await ctx.a.join("other")
    assert sorted(await cl.a.request("clients", ctx.nsp, ["woot"])) == sorted(
        [ctx.b.sid, ctx.c.sid]
    )
    everyone = sorted([ctx.a.sid, ctx.b.sid, ctx.c.sid])
    assert sorted(await cl.a.request("clients", ctx.nsp, None)) == everyone
    assert sorted(await cl.a.request("clients", ctx.nsp, ["woot", "other"])) == everyone


async def test_ignores_messages_from_unknown_channels(ctx: Ctx) -> None:
    cl = ctx.cluster
    k, n = cl.key, ctx.nsp
    async with redis.Redis.from_url(cl.redis_url) as r:
        # The seed: PSUBSCRIBE f?o / SUBSCRIBE woot, then publish foo, bar, toow.
        for channel in ["foo", "bar", "toow", "woot"]:
            await r.publish(channel, b"\x93\xa3abc")
        # Channels that look like the adapter's but are not one of this cluster's.
        for channel in [f"{k}#{n}", f"{k}#/unknown#", f"{k}x#{n}#", f"{k}-request#/unknown#"]:
            await r.publish(channel, b"\x01garbage")
    await cl.a.emit(ctx.nsp, "after", [1])
    for client in (ctx.a, ctx.b, ctx.c):
        assert await client.wait_event("after") == [1]
    assert len(await cl.a.request("clients", ctx.nsp, None)) == 3
    assert cl.node_failures() == []


async def test_returns_rooms_of_a_given_client(ctx: Ctx) -> None:
    await ctx.a.join("woot1")
    assert await ctx.cluster.a.request("client_rooms", ctx.nsp, ctx.a.sid) == [
        ctx.a.sid,
        "woot1",
    ]


async def test_returns_rooms_of_a_given_client_from_another_node(ctx: Ctx) -> None:
    await ctx.b.join("woot1", "woot2")
    assert await ctx.cluster.a.request("client_rooms", ctx.nsp, ctx.b.sid) == [
        ctx.b.sid,
        "woot1",
        "woot2",
    ]


async def test_returns_all_rooms_across_several_nodes(ctx: Ctx) -> None:
    await ctx.b.join("woot1")
    rooms = await ctx.cluster.a.request("all_rooms", ctx.nsp)
    assert sorted(rooms) == sorted([ctx.a.sid, ctx.b.sid, ctx.c.sid, "woot1"])


async def test_makes_a_given_socket_join_a_room(ctx: Ctx) -> None:
    cl = ctx.cluster
    assert await cl.a.request("remote_join", ctx.nsp, ctx.b.sid, "woot3") is None
    assert "woot3" in await cl.c.request("client_rooms", ctx.nsp, ctx.b.sid)
    # The joined socket receives the room's broadcasts (B SUBSCRIBEd the room if it
    # multiplexes, before it answered).
    await cl.a.emit(ctx.nsp, "in-room", [3], rooms=["woot3"])
    assert await ctx.b.wait_event("in-room") == [3]


async def test_makes_a_given_socket_leave_a_room(ctx: Ctx) -> None:
    cl = ctx.cluster
    await ctx.b.join("woot3")
    assert await cl.a.request("remote_leave", ctx.nsp, ctx.b.sid, "woot3") is None
    assert "woot3" not in await cl.c.request("client_rooms", ctx.nsp, ctx.b.sid)
    await cl.a.emit(ctx.nsp, "left", [3], rooms=["woot3"])
    await sentinel(ctx)
    assert ctx.b.received("left") == []


async def test_sends_a_custom_request(ctx: Ctx) -> None:
    replies = await ctx.cluster.a.request("custom_request", ctx.nsp, "hello")
    assert sorted(r["node"] for r in replies) == ["A", "B", "C"]
    assert all(r["echo"] == "hello" for r in replies)


async def test_makes_a_given_socket_disconnect(ctx: Ctx) -> None:
    cl = ctx.cluster
    assert await cl.a.request("remote_disconnect", ctx.nsp, ctx.b.sid, True) is None
    assert await ctx.b.wait_disconnected() == "io server disconnect"
    assert await cl.a.request("remote_disconnect", ctx.nsp, ctx.c.sid, False) is None
    assert await ctx.c.wait_disconnected() == "io server disconnect"
    for _ in range(100):
        if await cl.a.request("clients", ctx.nsp, None) == [ctx.a.sid]:
            break
        await asyncio.sleep(0.02)
    assert await cl.a.request("clients", ctx.nsp, None) == [ctx.a.sid]


async def test_unknown_socket_times_out_with_the_seed_message(ctx: Ctx) -> None:
    cl = ctx.cluster
    # Nobody answers for an unknown socket; "not found" is the requester's timeout.
    results = await asyncio.gather(
        cl.a.request("client_rooms", ctx.nsp, "nobody"),
        cl.a.request("remote_join", ctx.nsp, "nobody", "r"),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [Timeout, Timeout]
    assert [str(r) for r in results] == [
        "timeout reached while waiting for rooms response",
        "timeout reached while waiting for remoteJoin response",
    ]


async def test_python_server_api_on_sockets_of_other_nodes(ctx: Ctx) -> None:
    """python-socketio's own API (enter_room, leave_room, close_room, disconnect) on
    sockets of the other nodes maps onto remoteJoin / remoteLeave / remoteDisconnect."""
    cl = ctx.cluster
    if not isinstance(cl.a, PyServer):
        pytest.skip("A is a Node node: python-socketio's API is not involved")
    a, sio, nsp = cl.a, cl.a.node.sio, ctx.nsp
    await a.call(sio.enter_room, ctx.b.sid, "vip", namespace=nsp)
    await a.call(sio.enter_room, ctx.c.sid, "vip", namespace=nsp)
    assert sorted(await cl.a.request("clients", nsp, ["vip"])) == sorted([ctx.b.sid, ctx.c.sid])
    await a.call(sio.emit, "vip", "only", to="vip", namespace=nsp)
    assert await ctx.b.wait_event("vip") == ["only"]
    assert await ctx.c.wait_event("vip") == ["only"]
    await a.call(sio.leave_room, ctx.c.sid, "vip", namespace=nsp)
    assert await cl.a.request("clients", nsp, ["vip"]) == [ctx.b.sid]
    await a.call(sio.close_room, "vip", namespace=nsp)
    assert await cl.a.request("clients", nsp, ["vip"]) == []
    await a.call(sio.disconnect, ctx.c.sid, namespace=nsp)
    assert await ctx.c.wait_disconnected() == "io server disconnect"


# Rooms Node puts in channel names unescaped: unicode, `#` (the channel separator), empty.
ODD_ROOMS = ["ünï ☃ 😀", "a#b", "#", "x#/t1#y#", ""]
ODD_PAYLOADS = [
    [],
    [None],
    ["", 0, -1, 2**31, 2**53 - 1, -(2**53) + 1, 1.5, True, False],
    [{"a": [{"b": {"c": [1, [2, [3, [4, {"bin": b"\x00\xff"}]]]]}}], "ü": "☃ 😀"}],
    [b"", b"\x00", [b"\x01", {"k": b"\x02"}]],
    [b"\xab" * 1_000_000],
    ["x" * 300_000, {"k" * 1000: list(range(5000))}],
]


async def test_odd_rooms_and_payloads(ctx: Ctx) -> None:
    """Unicode and `#` rooms, empty/nested/binary/big payloads reach every kind of node
    and client intact; the receivers (Node or Python) keep running."""
    cl = ctx.cluster
    await ctx.b.join(*ODD_ROOMS)
    await cl.settle()
    for room in ODD_ROOMS:
        await cl.a.emit(ctx.nsp, "odd-room", [room], rooms=[room])
        assert await ctx.b.wait_event("odd-room") == [room]
    await cl.a.emit(ctx.nsp, "odd-rooms", [1], rooms=ODD_ROOMS)
    for i, args in enumerate(ODD_PAYLOADS):
        await cl.a.emit(ctx.nsp, f"odd-{i} é☃", args)
        await cl.a.socket_broadcast(ctx.nsp, ctx.a.sid, f"odd-{i} é☃", args, rooms=["#"])
    for client in (ctx.b, ctx.c):
        for i, args in enumerate(ODD_PAYLOADS):
            assert await client.wait_event(f"odd-{i} é☃", timeout=10) == args, i
    # ctx.b is in "#" too, and socket_broadcast to one room goes once more to b only.
    for i, args in enumerate(ODD_PAYLOADS):
        assert await ctx.b.wait_event(f"odd-{i} é☃", timeout=10) == args, i
    await sentinel(ctx)
    assert ctx.b.received("odd-rooms") == [[1]]
    assert ctx.c.received("odd-room") == ctx.c.received("odd-rooms") == []
    assert cl.node_failures() == []


async def test_node_peers_survived(cluster: Cluster) -> None:
    """Runs last for its cluster: nothing published in the run hurt a Node node."""
    assert cluster.node_failures() == []
    assert all(peer.running for peer in cluster.peers)
