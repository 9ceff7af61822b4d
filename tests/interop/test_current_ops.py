"""Operating real socket.io 4.8 + @socket.io/redis-adapter 8.3 clusters from Python.

ClusterClient detection and every operation; the Emitter against @socket.io/redis-emitter
5.1's test list, byte for byte against the real Node emitter; python-socketio's own API on
sockets held by Node nodes; and mixed-version safety on one prefix.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from siotools import (
    ClusterClient,
    ConfigurationError,
    Dialect,
    Emitter,
    EncodeError,
    RequestTimeout,
    SocketNotFound,
    UnsupportedOperation,
)
from siotools.nodepeer import NodePeer
from siotools.pynode import PythonNode
from tests.nodepeer.fixtures import StartFn

pytestmark = pytest.mark.node


async def numsub(redis_url: str, channel: str) -> int:
    async with aioredis.Redis.from_url(redis_url) as r:
        return int((await r.pubsub_numsub(channel))[0][1])


async def until(check: Any, timeout: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


class Capture:
    """Every message published under a key (a passive PSUBSCRIBE, as the sniffer does)."""

    def __init__(self, redis_url: str, key: str) -> None:
        self.redis_url, self.key = redis_url, key
        self.messages: list[tuple[bytes, bytes]] = []

    async def __aenter__(self) -> Capture:
        self.r = aioredis.Redis.from_url(self.redis_url)
        self.ps = self.r.pubsub()
        await self.ps.psubscribe(f"{self.key}*")
        await self.ps.get_message(timeout=1)
        return self

    async def next(self) -> tuple[bytes, bytes]:
        while True:
            msg = await self.ps.get_message(ignore_subscribe_messages=True, timeout=3)
            if msg is None:
                raise AssertionError("nothing published")
            return msg["channel"], msg["data"]

    async def __aexit__(self, *exc: object) -> None:
        await self.ps.aclose()
        await self.r.aclose()


@pytest.fixture
async def node_cluster(
    node_peers: StartFn,
) -> AsyncIterator[tuple[NodePeer, NodePeer, NodePeer, dict[str, str]]]:
    """Two Node 8.3 nodes A and B, a client peer, clients a1 (on A) and b1, b2 (on B)."""
    a = await node_peers("current", "A", port=0)
    b = await node_peers("current", "B", port=0)
    cl = await node_peers("current", "CL")
    sids = {}
    for client, node in (("a1", a), ("b1", b), ("b2", b)):
        sids[client] = (await cl.call("client_connect", client=client, url=node.url, nsp="/chat"))[
            "id"
        ]
    await cl.call("client_join", client="b1", rooms=["vip"])
    yield a, b, cl, sids


async def test_cluster_client_operates_an_8x_cluster(
    node_cluster: tuple[NodePeer, NodePeer, NodePeer, dict[str, str]], redis_url: str, key: str
) -> None:
    a, b, cl, sids = node_cluster
    request_channel = f"{key}-request#/chat#"
    before = await numsub(redis_url, request_channel)
    assert before == 2
    async with ClusterClient(redis_url, key=key) as cluster:
        assert cluster.dialect is Dialect.CURRENT  # detected without sending a request
        assert cluster.detection is not None and cluster.detection.evidence
        assert cluster.requests_timeout == 5.0  # RA 8.x default
        assert await cluster.namespaces() == ["/", "/chat"]
        assert await cluster.node_count("/chat") == 2
        found = await cluster.fetch_sockets(namespace="/chat")
        assert sorted(s.id for s in found) == sorted(sids.values())
        b1 = next(s for s in found if s.id == sids["b1"])
        assert b1.data == {"name": "b1", "node": "B"}
        assert b1.handshake is not None and "headers" in b1.handshake
        assert sorted(b1.rooms) == sorted([sids["b1"], "vip"])
        assert sorted(await cluster.clients(namespace="/chat")) == sorted(sids.values())
        assert await cluster.clients(["vip"], namespace="/chat") == [sids["b1"]]
        assert await cluster.rooms(namespace="/chat") == ["vip"]
        assert await cluster.room_members(namespace="/chat") == {"vip": [sids["b1"]]}
        assert sorted(await cluster.client_rooms(sids["b1"], namespace="/chat")) == sorted(
            [sids["b1"], "vip"]
        )

        # remoteLeave must leave (a 5.x type-4 request would have disconnected the socket).
        await cluster.remote_join(sids["a1"], "vip", namespace="/chat")
        await until(
            lambda: _has(cluster, "vip", sids["a1"]),
        )
        await cluster.remote_leave(sids["b1"], "vip", namespace="/chat")
        assert await until(lambda: _lacks(cluster, "vip", sids["b1"]))
        assert sids["b1"] in await cluster.clients(namespace="/chat")  # still connected
        assert not [e for e in cl.events if e["name"] == "client_disconnect"]

        with pytest.raises(SocketNotFound, match="no node has socket nope"):
            await cluster.remote_join("nope", "vip", namespace="/chat")
        with pytest.raises(UnsupportedOperation, match="server_side_emit_with_ack"):
            await cluster.custom_request({"x": 1}, namespace="/chat")

        replies = await cluster.server_side_emit_with_ack("sse-ack", 1, namespace="/chat")
        assert sorted(r["node"] for r in replies) == ["A", "B"]
        assert await cluster.emit("news", "hi", rooms=["vip"], namespace="/chat") == 2
        ev = await cl.wait_event(name="client_recv", client="a1", event="news")
        assert ev["args"] == ["hi"]
        acks = await cluster.emit_with_ack("ask", namespace="/chat", timeout=2.0)
        assert sorted(ack["client"] for ack in acks) == ["a1", "b1", "b2"]

        await cluster.disconnect_sockets(rooms=[sids["b2"]], namespace="/chat")
        ev = await cl.wait_event(name="client_disconnect", client="b2")
        assert ev["reason"] == "io server disconnect"
    assert await numsub(redis_url, request_channel) == before  # never counted
    for peer in (a, b, cl):
        assert not [e for e in peer.events if e["name"] in ("uncaught_exception", "adapter_error")]


async def _has(cluster: ClusterClient, room: str, sid: str) -> bool:
    return sid in await cluster.clients([room], namespace="/chat")


async def _lacks(cluster: ClusterClient, room: str, sid: str) -> bool:
    return sid not in await cluster.clients([room], namespace="/chat")


async def test_emitter_5_list_byte_for_byte(
    node_cluster: tuple[NodePeer, NodePeer, NodePeer, dict[str, str]], redis_url: str, key: str
) -> None:
    """@socket.io/redis-emitter 5.1.0 test/index.ts, each message compared with the real
    Node emitter's bytes, and delivered by real Node 8.3 nodes."""
    a, b, cl, sids = node_cluster
    async with Emitter(redis_url, key=key, dialect="current") as io, Capture(redis_url, key) as cap:

        async def same(node_call: dict[str, Any], python: Any) -> tuple[bytes, bytes]:
            await cl.call(**node_call)
            expected = await cap.next()
            await python
            got = await cap.next()
            assert got == expected
            return got

        chat = io.of("/chat")
        # should be able to emit any kind of data (a Buffer arrives as a Buffer)
        args = [1, "2", [3], {"4": 5}, b"\x06\x07"]
        await same(
            {"cmd": "emitter_emit", "nsp": "/chat", "event": "payload", "args": args},
            chat.emit("payload", *args),
        )
        for client in ("a1", "b1", "b2"):
            ev = await cl.wait_event(name="client_recv", client=client, event="payload")
            assert ev["args"] == args
        # should support all broadcast modifiers
        await same(
            {
                "cmd": "emitter_emit",
                "nsp": "/chat",
                "flags": ["volatile"],
                "event": "mod",
                "args": [],
            },
            chat.volatile.emit("mod"),
        )
        # should prepend a missing / to the namespace name
        await same(
            {"cmd": "emitter_emit", "nsp": "/chat", "event": "nsp", "args": []},
            io.of("chat").emit("nsp"),
        )
        # rooms: to a room, to a socket id, excluding a socket id
        await same(
            {"cmd": "emitter_emit", "nsp": "/chat", "rooms": ["vip"], "event": "r", "args": []},
            chat.to("vip").emit("r"),
        )
        await same(
            {
                "cmd": "emitter_emit",
                "nsp": "/chat",
                "rooms": [sids["b2"]],
                "event": "one",
                "args": [],
            },
            chat.to(sids["b2"]).emit("one"),
        )
        await same(
            {
                "cmd": "emitter_emit",
                "nsp": "/chat",
                "except": [sids["a1"]],
                "event": "not-a1",
                "args": [],
            },
            chat.except_(sids["a1"]).emit("not-a1"),
        )
        # utility methods
        await same(
            {"cmd": "emitter_socketsJoin", "nsp": "/chat", "rooms": ["vip"], "join": ["gold"]},
            chat.to("vip").sockets_join("gold"),
        )
        await same(
            {"cmd": "emitter_socketsLeave", "nsp": "/chat", "leave": ["gold"]},
            chat.sockets_leave("gold"),
        )
        await same(
            {"cmd": "emitter_serverSideEmit", "nsp": "/chat", "event": "sse", "args": [1]},
            chat.server_side_emit("sse", 1),
        )
        await same(
            {
                "cmd": "emitter_disconnectSockets",
                "nsp": "/chat",
                "rooms": [sids["b2"]],
                "close": True,
            },
            chat.to(sids["b2"]).disconnect_sockets(close=True),
        )
        ev = await cl.wait_event(name="client_disconnect", client="b2")
        assert ev["reason"] in ("io server disconnect", "transport close")
        # the emitter's own errors
        with pytest.raises(EncodeError, match='"connect" is a reserved event name'):
            await chat.emit("connect")
        with pytest.raises(UnsupportedOperation, match="Acknowledgements are not supported"):
            await chat.server_side_emit("sse", lambda *_: None)
    await sentinel_events(cl, "b1", ["r", "not-a1"])
    assert [e for e in cl.events if e.get("client") == "a1" and e.get("event") == "not-a1"] == []
    assert [e for e in cl.events if e.get("client") == "a1" and e.get("event") == "one"] == []
    for peer in (a, b, cl):
        assert not [e for e in peer.events if e["name"] in ("uncaught_exception", "adapter_error")]


async def sentinel_events(cl: NodePeer, client: str, events: list[str]) -> None:
    for event in events:
        await cl.wait_event(name="client_recv", client=client, event=event)


async def test_python_node_uses_python_socketio_api_on_node_sockets(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    """enter_room, leave_room, close_room, call, emit with a callback and disconnect, on a
    socket another (Node 8.3) node holds."""
    b = await node_peers("current", "B", port=0)
    cl = await node_peers("current", "CL")
    async with PythonNode(
        redis_url, key=key, namespaces=["/", "/chat"], dialect="current", requests_timeout=2.0
    ) as py:
        sid = (await cl.call("client_connect", client="b1", url=b.url, nsp="/chat"))["id"]
        sio = py.sio
        adapter = py.adapter
        await sio.enter_room(sid, "gold", namespace="/chat")
        assert await adapter.clients(["gold"], namespace="/chat") == [sid]
        await sio.leave_room(sid, "gold", namespace="/chat")
        assert await adapter.clients(["gold"], namespace="/chat") == []
        await sio.enter_room(sid, "silver", namespace="/chat")
        await sio.close_room("silver", namespace="/chat")
        assert await adapter.clients(["silver"], namespace="/chat") == []

        answer = await sio.call("question", {"q": 1}, to=sid, namespace="/chat", timeout=5)
        assert answer == {"client": "b1", "event": "question"}
        got: list[Any] = []
        done = asyncio.Event()

        def callback(*ack: Any) -> None:
            got.append(ack)
            done.set()

        await sio.emit("cb", 1, to=sid, namespace="/chat", callback=callback)
        await asyncio.wait_for(done.wait(), 5)
        assert got == [({"client": "b1", "event": "cb"},)]

        await sio.disconnect(sid, namespace="/chat")
        ev = await cl.wait_event(name="client_disconnect", client="b1")
        assert ev["reason"] == "io server disconnect"
    assert not [e for e in b.events if e["name"] in ("uncaught_exception", "adapter_error")]


async def test_two_dialects_on_one_prefix_are_refused_or_warned(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    legacy = await node_peers("legacy5", "L", port=0)
    current = await node_peers("current", "C", port=0)
    with pytest.raises(ConfigurationError, match="two adapter dialects share the prefix"):
        async with ClusterClient(redis_url, key=key):
            pass
    errors: list[BaseException] = []
    node = PythonNode(redis_url, key=key, namespaces=["/", "/chat"], dialect="current")
    node.adapter.on_error(errors.append)
    async with node:
        # Warned at start: the 5.x node on the prefix.
        assert any("socket.io-redis 4.x/5.x" in str(e) for e in errors)
        # A 5.x request reaches the 8.x Python node: never acted on, reported once.
        with pytest.raises(Exception, match="timeout"):
            await legacy.call("clients", nsp="/chat", rooms=[])
        await until(lambda: _async(node.adapter.stats["foreign_requests"] >= 1))
        # What the Python 8.x node publishes never makes the Node 8.3 node report an error.
        await node.sio.emit("hello", 1, namespace="/chat")
        await node.adapter.sockets_join("gold", namespace="/chat")
        await asyncio.sleep(0.2)
    for peer in (legacy, current):
        assert not [e for e in peer.events if e["name"] in ("uncaught_exception",)]
    assert not [e for e in current.events if e["name"] == "adapter_error"]


async def _async(value: Any) -> Any:
    return value


async def test_a_forced_wrong_dialect_says_what_the_cluster_speaks(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    await node_peers("current", "A", port=0)
    async with ClusterClient(redis_url, key=key, dialect="legacy", requests_timeout=0.5) as c:
        with pytest.raises(RequestTimeout, match=r"speaks @socket\.io/redis-adapter 8\.x, not"):
            await c.clients(namespace="/chat")


async def siotools_cli(*argv: str) -> tuple[int, str, str]:
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "siotools", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_operates_an_8x_cluster(
    node_cluster: tuple[NodePeer, NodePeer, NodePeer, dict[str, str]], redis_url: str, key: str
) -> None:
    """What a new user tried first: rooms, clients, sockets, leave (which disconnected the
    socket when a 5.x request reached an 8.x node), custom-request, emit."""
    import json

    a, b, cl, sids = node_cluster
    common = ["--url", redis_url, "--prefix", key, "--nsp", "/chat", "--timeout", "3"]
    code, out, err = await siotools_cli("rooms", *common, "--json")
    assert code == 0, err
    assert json.loads(out) == [{"room": "vip", "sockets": 1}]
    code, out, err = await siotools_cli("clients", *common, "--json")
    assert code == 0 and sorted(json.loads(out)) == sorted(sids.values()), err
    code, out, err = await siotools_cli("sockets", *common, "--json", "--room", "vip")
    assert code == 0, err
    (b1,) = json.loads(out)
    assert (b1["id"], b1["rooms"], b1["data"]) == (sids["b1"], ["vip"], {"name": "b1", "node": "B"})
    code, out, err = await siotools_cli("sockets", *common)
    assert code == 0 and "data" in out and sids["a1"] in out, err
    code, out, err = await siotools_cli("leave", *common, "--", sids["b1"], "vip")
    assert code == 0 and "left room vip" in out, err
    code, out, err = await siotools_cli("clients", *common, "--json", "--room", "vip")
    assert json.loads(out) == []
    code, out, err = await siotools_cli("clients", *common, "--json")
    assert sids["b1"] in json.loads(out)  # left the room, still connected
    assert not [e for e in cl.events if e["name"] == "client_disconnect"]
    code, out, err = await siotools_cli("leave", *common, "--", "nobody", "vip")
    assert code == 1 and "No node has socket nobody" in err
    code, out, err = await siotools_cli("custom-request", *common, '{"x": 1}')
    assert code == 1 and "server_side_emit_with_ack" in err and err.count("\n") == 1, err
    code, out, err = await siotools_cli("emit", *common, "news", '"hi"')
    assert code == 0, err
    ev = await cl.wait_event(name="client_recv", client="a1", event="news")
    assert ev["args"] == ["hi"]
    for peer in (a, b, cl):
        assert not [e for e in peer.events if e["name"] in ("uncaught_exception", "adapter_error")]
