"""Emitter(dialect="streams") on real @socket.io/redis-streams-adapter 0.3.1 and 0.2.3 nodes:
real socket.io clients get exactly what it sent, and its entries are the adapter's own
(tests/data/vectors/streams), signed "emitter" as @socket.io/redis-streams-emitter signs.

The Node emitter is not on npm, so the nodes are the judges: they read the entries with
the adapter's own decode() and deliver them with socket.io's own broadcast.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from siotools import Emitter
from siotools.nodepeer import NodePeer
from siotools.protocol import (
    ClusterMessage,
    ClusterMessageType,
    StreamMessage,
    decode,
    decode_entry,
)
from siotools.sync import Emitter as SyncEmitter
from tests.nodepeer.fixtures import StartFn

pytestmark = pytest.mark.node

VECTORS = Path(__file__).resolve().parent / "data" / "vectors" / "streams"
VERSIONS = [pytest.param("0.3", id="0.3.1"), pytest.param("0.2", id="0.2.3")]
T = ClusterMessageType
Emit = Callable[[Emitter], Awaitable[Any]]


def vector(scenario: str, index: int) -> ClusterMessage:
    """The ``index``-th message of a scenario: a stream entry, or (0.3 pub/sub) a map."""
    lines = (VECTORS / f"{scenario}.entries.ndjson").read_text(encoding="utf-8").splitlines()
    rec = [json.loads(line) for line in lines][index]
    if rec["source"] == "pubsub":
        frame = decode(rec["channel"], bytes.fromhex(rec["data_hex"]))
        assert isinstance(frame, ClusterMessage)
        return frame
    fields = [(k.encode(), v.encode()) for k, v in rec["fields"]]
    return decode_entry(rec["stream"], rec["id"], fields)


# (what the emitter does, the adapter's own message for it, who of c1..c4 receives it)
BROADCASTS: list[tuple[Emit, tuple[str, int], set[str]]] = [
    (lambda io: io.emit("news", "hi"), ("broadcast_all", 0), {"c1", "c2", "c3"}),
    (lambda io: io.of("/chat").emit("chat", {"n": 1}), ("broadcast_all", 1), {"c4"}),
    (lambda io: io.to("room1").emit("r1", 1), ("broadcast_rooms", 0), {"c1"}),
    (lambda io: io.to("room1", "room2").emit("r12", 3), ("broadcast_rooms", 1), {"c1", "c2"}),
    (lambda io: io.root.except_("room1").emit("ex", 1), ("broadcast_except", 0), {"c2", "c3"}),
    (
        lambda io: io.to("room2").except_("room1").emit("ex2", 2),
        ("broadcast_except", 1),
        {"c2"},
    ),
    (
        lambda io: io.emit("bin", b"\x00\x01\xfe\xff"),
        ("broadcast_binary", 0),
        {"c1", "c2", "c3"},
    ),
    (
        lambda io: io.to("room2").emit("mixed", "x", {"b": b"\xff", "n": [1, None, 2.5]}),
        ("broadcast_binary", 1),
        {"c2"},
    ),
    (
        lambda io: io.root.compress(False).emit("nocomp", 2),
        ("broadcast_flags", 1),
        {"c1", "c2", "c3"},
    ),
]


def assert_same_message(ours: StreamMessage, theirs: ClusterMessage) -> None:
    """Ours equals the adapter's message but for the uid and the emitter's ``packet.nsp``
    (and the encoding of a 0.3 pub/sub map, which is msgpack whatever it holds)."""
    assert ours.uid == "emitter" and ours.from_emitter
    assert (ours.type, ours.nsp) == (theirs.type, theirs.nsp)
    if isinstance(theirs, StreamMessage):
        assert ours.binary == theirs.binary
    data = copy.deepcopy(ours.data)
    if ours.type == T.BROADCAST:
        # redis-streams-emitter Emitter.publish: `message.data.packet.nsp = this.#nsp`
        assert data["packet"].pop("nsp") == ours.nsp
    assert data == theirs.data


async def _received(cl: NodePeer, client: str, until: str) -> list[tuple[str, list[Any]]]:
    await cl.wait_event(name="client_recv", client=client, event=until)
    return [
        (e["event"], e["args"])
        for e in cl.events
        if e.get("name") == "client_recv" and e.get("client") == client and e["event"] != until
    ]


@pytest.mark.parametrize("version", VERSIONS)
async def test_streams_emitter_reaches_real_nodes(
    node_peers: StartFn, redis_url: str, key: str, version: str
) -> None:
    opts = {"stream": key, "streams_version": version}
    a = await node_peers("streams", "A", port=0, **opts)
    b = await node_peers("streams", "B", port=0, **opts)
    cl = await node_peers("streams", "CL")
    clients = {"c1": (a, "/", "room1"), "c2": (b, "/", "room2"), "c3": (b, "/", "room3")}
    for name, (node, nsp, room) in clients.items():
        await cl.call("client_connect", client=name, url=node.url, nsp=nsp)
        await cl.call("client_join", client=name, rooms=[room])
    await cl.call("client_connect", client="c4", url=a.url, nsp="/chat")

    async with Emitter(redis_url, key=key, dialect="streams", stream=key) as io:
        for emit, _, _ in BROADCASTS:
            await emit(io)
        await io.emit("end")
        await io.of("/chat").emit("end")
        got = {c: await _received(cl, c, "end") for c in ("c1", "c2", "c3", "c4")}
        for c in got:
            want = []
            for _emit, where, who in BROADCASTS:
                if c in who:
                    data = vector(*where).data["packet"]["data"]
                    want.append((data[0], data[1:]))
            assert got[c] == want, c

        # volatile: socket.io drops it for a socket whose transport is busy writing, so
        # it goes when the clients are idle (after "end")
        await io.root.volatile.emit("vol", 1)
        for c in ("c1", "c2", "c3"):
            assert (await cl.wait_event(name="client_recv", client=c, event="vol"))["args"] == [1]

        # socketsJoin / socketsLeave / disconnectSockets / serverSideEmit (all XADDed)
        assert await io.to("room1").sockets_join("room9") is None
        await io.to("room9").emit("r9", 9)
        assert (await cl.wait_event(name="client_recv", event="r9"))["client"] == "c1"
        await io.root.sockets_leave("room9", "room2")
        await io.to("room9").emit("gone")
        await io.to("room2").emit("gone")
        await io.emit("end2")
        for c in ("c1", "c2", "c3"):
            assert ("gone", []) not in await _received(cl, c, "end2")
        await io.root.server_side_emit("sse", "hello", {"x": 1})
        for node in (a, b):
            ev = await node.wait_event(name="server_side_emit", event="sse")
            assert (ev["args"], ev["with_ack"]) == (["hello", {"x": 1}], False)
        await io.to("room3").disconnect_sockets()
        await cl.wait_event(name="client_disconnect", client="c3")
        assert not any(e.get("client") in ("c1", "c2") and e["name"] == "client_disconnect"
                       for e in cl.events)  # fmt: skip

    # The entries, as XRANGE reads them back, next to the adapter's own ones.
    r = aioredis.from_url(redis_url)
    try:
        raw = await r.xrange(key)
    finally:
        await r.aclose()
    ours = [decode_entry(key, eid, fields.items()) for eid, fields in raw]
    ours = [m for m in ours if m.from_emitter]
    adapter = [vector(*where) for _, where, _ in BROADCASTS]
    for mine, theirs in zip(ours[: len(adapter)], adapter, strict=True):
        assert_same_message(mine, theirs)
    (vol,) = [m for m in ours if m.type == T.BROADCAST and m.data["packet"]["data"][0] == "vol"]
    assert_same_message(vol, vector("broadcast_flags", 0))
    bulk = [m for m in ours if m.type != T.BROADCAST]
    assert [m.type for m in bulk] == [T.SOCKETS_JOIN, T.SOCKETS_LEAVE, T.SERVER_SIDE_EMIT,
                                      T.DISCONNECT_SOCKETS]  # fmt: skip
    assert_same_message(bulk[0], vector("socketsJoin_socketsLeave", 0))
    assert_same_message(bulk[1], vector("socketsJoin_socketsLeave", 1))
    assert_same_message(bulk[2], vector("serverSideEmit", 0))  # 0.3 PUBLISHes its own
    assert_same_message(bulk[3], vector("disconnectSockets", 0))


async def test_sync_streams_emitter(node_peers: StartFn, redis_url: str, key: str) -> None:
    a = await node_peers("streams", "A", port=0, stream=key)
    cl = await node_peers("streams", "CL")
    await cl.call("client_connect", client="c1", url=a.url, nsp="/")
    await cl.call("client_join", client="c1", rooms=["room1"])

    def emit() -> Any:
        with SyncEmitter(redis_url, key=key, dialect="streams", stream=key, max_len=100) as io:
            io.to("room1").emit("sync-news", b"\x01", {"n": 1})
            return io.to("room1").sockets_join("room7")

    assert await asyncio.to_thread(emit) is None
    ev = await cl.wait_event(name="client_recv", client="c1", event="sync-news")
    assert ev["args"] == [b"\x01", {"n": 1}]
    # the join reached the node: a Node-side broadcast to room7 finds the socket
    await a.call("nsp_emit", nsp="/", rooms=["room7"], event="in-7", args=[])
    await cl.wait_event(name="client_recv", client="c1", event="in-7")


async def test_streams_emitter_on_a_redis_cluster(redis_cluster_url: str, key: str) -> None:
    # XADD goes to the master of the stream key's slot (MOVED followed), each stream of
    # streamCount on its own slot.
    import redis.asyncio.cluster as aiocluster

    url = redis_cluster_url + ("&" if "?" in redis_cluster_url else "?") + "cluster=true"
    async with Emitter(url, key=key, dialect="streams", stream=key, stream_count=3) as io:
        await io.emit("a", 1)
        await io.of("/chat").emit("b", 2)
        await io.of("/chat").to("r").sockets_join("s")
    rc = aiocluster.RedisCluster.from_url(redis_cluster_url.split("?")[0])
    try:
        root = await rc.xrange(f"{key}-2")
        chat = await rc.xrange(f"{key}-1")
    finally:
        await rc.aclose()
    assert [decode_entry(f"{key}-2", i, f.items()).data["packet"]["data"] for i, f in root] == [
        ["a", 1]
    ]
    assert [decode_entry(f"{key}-1", i, f.items()).type for i, f in chat] == [
        T.BROADCAST, T.SOCKETS_JOIN
    ]  # fmt: skip
