"""RedisAdapter on the Redis Cluster transport: ``socketio.Server`` (threading) nodes on a
real Redis Cluster (``?cluster=true``) and real python-socketio clients.

The 8.x sharded dialect (SPUBLISH/SSUBSCRIBE, each subscription mode) and 8.x classic
on the cluster: broadcasts, rooms, acknowledgements across nodes and every cluster
request from the server's threads; socket.io-redis 5.x on the cluster with what its
protocol carries. The Node interop lists run the sync adapter on sharded pub/sub too
(tests/interop/test_current_list.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.cluster
import socketio

from siotools import RedisAdapter, RequestTimeout, UnsupportedOperation
from siotools.redis_cluster import RedisCluster
from siotools.sync_pynode import SyncPythonNode
from tests.adapter.pyclients import Client

NSPS = ["/", "/chat"]

EIGHT_X = {
    "sharded-dynamic": {"dialect": "sharded"},
    "sharded-static": {"dialect": "sharded", "subscription_mode": "static"},
    "sharded-dynamic-private": {"dialect": "sharded", "subscription_mode": "dynamic-private"},
    "current": {"dialect": "current"},
}


class Nodes:
    """Three sync nodes on one key; every error an adapter reports is kept."""

    def __init__(self, url: str, options: dict[str, Any], masters: list[str]) -> None:
        self.url, self.options, self.masters = url, options, masters
        self.key = f"sc-{uuid.uuid4().hex[:8]}"
        self.errors: list[BaseException] = []
        self.nodes: list[SyncPythonNode] = []
        self.clients: list[Client] = []

    def _node(self) -> SyncPythonNode:
        adapter = RedisAdapter(
            self.url, key=self.key, namespaces=NSPS, requests_timeout=1.0, **self.options
        )
        adapter.on_error(self.errors.append)
        # The server starts joining the cluster at once, in the background.
        server = socketio.Server(async_mode="threading", client_manager=adapter, namespaces=NSPS)
        return SyncPythonNode(self.url, server=server, namespaces=NSPS)

    async def start(self) -> Nodes:
        # One node after the other, as a deployment's nodes come up: a node joining while
        # another reads the subscriptions for its generation check could be misread.
        for _ in range(3):
            node = self._node()
            self.nodes.append(node)
            await asyncio.to_thread(node.start)
        return self

    async def client(self, node: SyncPythonNode) -> Client:
        client = await Client().connect(node.url)

        def ping(*args: Any) -> Any:
            return {"pong": list(args)}

        client.sio.on("ping", ping)
        self.clients.append(client)
        return client

    async def room_subscribed(self, node: SyncPythonNode, room: str, nsp: str = "/") -> None:
        """Wait until Redis confirms ``node``'s subscription to ``room``'s channel (a room
        joined from another node is subscribed to in the background, as RA does)."""
        wire = node.adapter.wire
        channel = wire.room_channel(nsp, room)
        if channel is None:  # the namespace's channel carries the room's broadcasts
            return
        command = ("PUBSUB", "SHARDNUMSUB" if wire.sharded_pubsub else "NUMSUB", channel)
        for _ in range(250):
            total = 0
            for url in self.masters:
                async with aioredis.Redis.from_url(url) as r:
                    total += int((await r.execute_command(*command))[1])
            if total:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"no subscription to {channel!r}")

    async def stop(self) -> None:
        for client in self.clients:
            if client.sio.connected:
                await client.close()
        for node in self.nodes:
            await asyncio.to_thread(node.stop)


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A blocking adapter or server call, from a thread as a server handler makes it."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.02)


@pytest.fixture
async def on_cluster(
    request: pytest.FixtureRequest, sharded_cluster: RedisCluster
) -> AsyncIterator[Nodes]:
    masters = [f"redis://127.0.0.1:{m.port}/0" for m in sharded_cluster.masters()]
    nodes = Nodes(sharded_cluster.url + "?cluster=true", request.param, masters)
    try:
        yield await nodes.start()
    finally:
        await nodes.stop()


@pytest.mark.parametrize("on_cluster", list(EIGHT_X.values()), ids=list(EIGHT_X), indirect=True)
async def test_an_8x_sync_cluster_on_a_redis_cluster(on_cluster: Nodes) -> None:
    a, b, c = on_cluster.nodes
    ad = a.adapter
    ca, cb, cc = [await on_cluster.client(n) for n in (a, b, c)]
    sa, sb, sc = ca.sid(), cb.sid(), cc.sid()
    await cb.join("r1")
    await cc.join("r2")

    # Broadcasts from a server thread: everyone, one room, everyone but a room.
    await call(a.sio.emit, "all", ("x", b"\x01\x02"))
    for client in (ca, cb, cc):
        assert await client.wait_event("all") == [["x", b"\x01\x02"]]
    await call(a.sio.emit, "room", {"n": 1}, to="r1")
    await call(a.sio.emit, "but", 2, skip_sid="r1")
    assert await cb.wait_event("room") == [[{"n": 1}]]
    assert await cc.wait_event("but") == [[2]]
    assert await ca.wait_event("but") == [[2]]
    assert await cb.no_event("but") and await cc.no_event("room") and await ca.no_event("room")

    # Rooms of sockets on other nodes: python-socketio's enter_room/leave_room.
    await call(a.sio.enter_room, sc, "r3")
    await until(lambda: "r3" in c.adapter.rooms_of(sc, "/"))
    await on_cluster.room_subscribed(c, "r3")
    await call(b.sio.emit, "three", 3, to="r3")
    assert await cc.wait_event("three") == [[3]]
    await call(a.sio.leave_room, sc, "r3")
    await until(lambda: "r3" not in c.adapter.rooms_of(sc, "/"))

    # Acknowledgements across nodes: call() to one remote socket, a broadcast with acks.
    assert await call(a.sio.call, "ping", 1, to=sb, timeout=5) == {"pong": [1]}
    acks = await call(ad.emit_with_ack, "ping", 2, timeout=3)
    assert acks == [{"pong": [2]}] * 3
    assert await call(ad.emit_with_ack, "ping", 3, to="r2", timeout=3) == [{"pong": [3]}]

    # Every cluster request, from a thread of the server.
    assert await call(ad.server_count) == 3
    assert sorted(await call(ad.clients)) == sorted([sa, sb, sc])
    assert await call(ad.clients, ["r1"]) == [sb]
    found = await call(ad.fetch_sockets, rooms=["r2"])
    assert [(s.id, s.rooms) for s in found] == [(sc, (sc, "r2"))]
    assert await call(ad.client_rooms, sb) == [sb, "r1"]
    await call(ad.sockets_join, "all-in")
    await until(
        lambda: all(
            "all-in" in n.adapter.rooms_of(s, "/")
            for n, s in zip((a, b, c), (sa, sb, sc), strict=True)
        )
    )
    await call(ad.sockets_leave, "all-in", rooms=["r1"])
    await until(lambda: "all-in" not in b.adapter.rooms_of(sb, "/"))
    assert "all-in" in c.adapter.rooms_of(sc, "/")
    await call(ad.close_room, "all-in")
    await until(lambda: "all-in" not in c.adapter.rooms_of(sc, "/"))
    got: list[Any] = []
    b.adapter.on_server_side_emit("sse")(lambda *args: ["b", *args])
    c.adapter.on_server_side_emit("sse")(lambda *args: ["c", *args])
    c.adapter.on_server_side_emit("note")(lambda *args: got.append(args))
    replies = await call(ad.server_side_emit_with_ack, "sse", 7)
    assert sorted(replies) == [["b", 7], ["c", 7]]
    await call(ad.server_side_emit, "note", "hi")
    await until(lambda: got == [("hi",)])
    if ad.wire.capabilities.all_rooms:
        assert set(await call(ad.all_rooms)) == {sa, sb, sc, "r1", "r2"}
    else:
        with pytest.raises(UnsupportedOperation, match="has no allRooms"):
            await call(ad.all_rooms)
    with pytest.raises(UnsupportedOperation):
        await call(ad.custom_request, "q")
    with pytest.raises(RequestTimeout):
        await call(ad.server_side_emit_with_ack, "nobody-listens", timeout=0.3)

    # A namespace the cluster has not used yet, then disconnects across nodes.
    assert await call(ad.server_count, namespace="/chat") == 3
    await call(ad.disconnect_sockets, rooms=["r2"])
    await cc.wait_disconnected()
    await call(a.sio.disconnect, sb)  # can_disconnect: the socket's node disconnects it
    await cb.wait_disconnected()
    assert await call(ad.clients) == [sa]
    assert ad.pending_requests == 0
    assert on_cluster.errors == []


LEGACY = {
    "legacy5-subscribe": {"dialect": "legacy"},
    "legacy5-psubscribe": {"dialect": "legacy", "subscription_mode": "psubscribe"},
    "legacy4-mux": {"dialect": "legacy-lite", "with_channel_multiplexing": True},
}


@pytest.mark.parametrize("on_cluster", list(LEGACY.values()), ids=list(LEGACY), indirect=True)
async def test_a_legacy_sync_cluster_on_a_redis_cluster(on_cluster: Nodes) -> None:
    a, b, c = on_cluster.nodes
    ad = a.adapter
    ca, cb, cc = [await on_cluster.client(n) for n in (a, b, c)]
    sa, sb, sc = ca.sid(), cb.sid(), cc.sid()
    await cb.join("r1")
    await cc.join("r2")
    await call(a.sio.emit, "all", ("x", b"\x01\x02"))
    for client in (ca, cb, cc):
        assert await client.wait_event("all") == [["x", b"\x01\x02"]]
    await call(a.sio.emit, "room", {"n": 1}, to="r1")
    assert await cb.wait_event("room") == [[{"n": 1}]]
    assert await cc.no_event("room") and await ca.no_event("room")
    assert await call(ad.server_count) == 3
    assert sorted(await call(ad.clients)) == sorted([sa, sb, sc])
    assert set(await call(ad.all_rooms)) == {sa, sb, sc, "r1", "r2"}
    assert await call(ad.client_rooms, sc) == [sc, "r2"]
    await call(ad.remote_join, sc, "r3")
    assert await call(ad.clients, ["r3"]) == [sc]
    await call(ad.remote_leave, sc, "r3")
    assert await call(ad.clients, ["r3"]) == []
    b.adapter.custom_hook = lambda data: {"b": data}
    replies = await call(ad.custom_request, "q")
    assert sorted(map(str, replies)) == sorted(map(str, [None, {"b": "q"}, None]))
    with pytest.raises(UnsupportedOperation):
        await call(ad.emit_with_ack, "ping", 1)
    await call(ad.remote_disconnect, sc)
    await cc.wait_disconnected()
    assert sorted(await call(ad.clients)) == sorted([sa, sb])
    assert ad.pending_requests == 0
    assert on_cluster.errors == []


async def test_a_sync_redis_py_cluster_client_names_the_cluster(
    sharded_cluster: RedisCluster,
) -> None:
    # pub_client=redis.cluster.RedisCluster(...): the adapter takes its seed and settings.
    client = redis.cluster.RedisCluster.from_url(sharded_cluster.url)
    key = f"sc-{uuid.uuid4().hex[:8]}"
    adapter = RedisAdapter(pub_client=client, key=key, dialect="sharded", requests_timeout=1.0)
    errors: list[BaseException] = []
    adapter.on_error(errors.append)
    server = socketio.Server(async_mode="threading", client_manager=adapter)
    a = SyncPythonNode(sharded_cluster.url, server=server)
    b = SyncPythonNode(
        sharded_cluster.url + "?cluster=true", key=key, dialect="sharded", requests_timeout=1.0
    )
    await call(a.start)
    await call(b.start)
    cb = await Client().connect(b.url)
    try:
        assert adapter.pub_client is client
        assert await call(adapter.server_count) == 2
        await call(a.sio.emit, "hello", "from a")
        assert await cb.wait_event("hello") == [["from a"]]
        assert await call(adapter.clients) == [cb.sid()]
        assert errors == []
    finally:
        await cb.close()
        await call(a.stop)
        await call(b.stop)
        client.close()
