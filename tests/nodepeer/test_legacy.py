"""Two-node clusters of real socket.io 1.x/2.x nodes with socket.io-redis 4.x/5.x."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis

from siotools.exceptions import NodePeerError
from tests.nodepeer.fixtures import StartFn

pytestmark = pytest.mark.node

LEGACY = [
    pytest.param("legacy5", {}, id="legacy5"),
    pytest.param("legacy4", {"multiplexing": True}, id="legacy4-multiplexing"),
    pytest.param("legacy4", {"multiplexing": False}, id="legacy4-no-multiplexing"),
]

ARGS = ["hi", b"\x00\x01\xfe\xff", {"n": 1, "nested": [True, None, 2.5]}]


@pytest.mark.parametrize(("flavor", "opts"), LEGACY)
async def test_two_node_cluster(node_peers: StartFn, flavor: str, opts: dict[str, Any]) -> None:
    a = await node_peers(flavor, "A", port=0, **opts)
    b = await node_peers(flavor, "B", port=0, **opts)
    cl = await node_peers(flavor, "CL")
    assert a.uid and b.uid and a.uid != b.uid

    sid = (await cl.call("client_connect", client="c1", url=b.url, nsp="/"))["id"]
    assert sorted(await cl.call("client_join", client="c1", rooms=["room1"])) == sorted(
        [sid, "room1"]
    )
    await b.wait_event(name="connection", client="c1")

    # A broadcasts to room1; only B has a member; the client hears it through B.
    await a.call("nsp_emit", nsp="/", rooms=["room1"], event="news", args=ARGS)
    ev = await cl.wait_event(name="client_recv", client="c1", event="news")
    assert ev["args"] == ARGS

    # A room nobody is in: nothing arrives (the next event is the one after it).
    await a.call("nsp_emit", nsp="/", rooms=["nobody"], event="lost", args=[1])
    await a.call("nsp_emit", nsp="/", event="all", args=[2])
    ev = await cl.wait_event(name="client_recv", client="c1")
    assert (ev["event"], ev["args"]) == ("all", [2])

    # Requests from A see B's socket.
    assert await a.call("clients", nsp="/", rooms=["room1"]) == [sid]
    assert sid in await a.call("clients", nsp="/")
    rooms = await a.call("allRooms", nsp="/")
    assert {"room1", sid} <= set(rooms)
    assert sorted(await a.call("clientRooms", nsp="/", sid=sid)) == sorted([sid, "room1"])

    # customRequest: every node, the requester included, answers through customHook.
    replies = await a.call("customRequest", nsp="/", data={"q": b"\x07"})
    assert sorted(r["node"] for r in replies) == ["A", "B"]
    # Requests travel as JSON, so a Buffer arrives as its toJSON() form, on every node.
    assert all(r["echo"] == {"q": {"type": "Buffer", "data": [7]}} for r in replies)
    await b.wait_event(name="custom_hook", nsp="/")


@pytest.mark.parametrize(("flavor", "opts"), LEGACY)
async def test_remote_operations_and_timeouts(
    node_peers: StartFn, flavor: str, opts: dict[str, Any]
) -> None:
    a = await node_peers(flavor, "A", port=0, requests_timeout_ms=500, **opts)
    b = await node_peers(flavor, "B", port=0, requests_timeout_ms=500, custom_hook="silent", **opts)
    cl = await node_peers(flavor, "CL")
    sid = (await cl.call("client_connect", client="c1", url=b.url, nsp="/"))["id"]

    await a.call("remoteJoin", nsp="/", sid=sid, room="joined")
    assert await a.call("clients", nsp="/", rooms=["joined"]) == [sid]
    await a.call("remoteLeave", nsp="/", sid=sid, room="joined")
    assert await a.call("clients", nsp="/", rooms=["joined"]) == []

    # B's hook stays silent: the request times out with A's own reply as partial result.
    with pytest.raises(NodePeerError, match="timeout") as info:
        await a.call("customRequest", nsp="/", data="x")
    assert [r["node"] for r in info.value.result] == ["A"]

    # socket.broadcast on B reaches the other sockets of the cluster, not the sender.
    sid2 = (await cl.call("client_connect", client="c2", url=a.url, nsp="/"))["id"]
    await b.call("socket_emit", nsp="/", sid=sid, broadcast=True, event="bc", args=[b"\x01"])
    ev = await cl.wait_event(name="client_recv", event="bc")
    assert (ev["client"], ev["args"]) == ("c2", [b"\x01"])
    assert sid2 in await b.call("clients", nsp="/")

    await a.call("remoteDisconnect", nsp="/", sid=sid, close=True)
    await cl.wait_event(name="client_disconnect", client="c1")
    assert not [e for e in cl.events if e["name"] == "client_recv" and e["client"] == "c1"]


@pytest.mark.parametrize("multiplexing", [True, False], ids=["multiplexing", "no-multiplexing"])
async def test_legacy4_room_channels(
    node_peers: StartFn, redis_url: str, key: str, multiplexing: bool
) -> None:
    b = await node_peers("legacy4", "B", port=0, multiplexing=multiplexing)
    cl = await node_peers("legacy4", "CL")
    sid = (await cl.call("client_connect", client="c1", url=b.url, nsp="/"))["id"]
    await cl.call("client_join", client="c1", rooms=["room1"])
    await b.call("settle")  # the socket's own-id room is subscribed without waiting
    async with redis.Redis.from_url(redis_url) as r:
        found = await r.pubsub_channels(f"{key}#/#*")
    channels = {c.decode() if isinstance(c, bytes) else c for c in found}
    rooms = {f"{key}#/#room1#", f"{key}#/#{sid}#"}
    assert channels == ({f"{key}#/#"} | rooms if multiplexing else {f"{key}#/#"})


async def test_legacy4_mixed_multiplexing_misses_room_broadcasts(node_peers: StartFn) -> None:
    # A (multiplexing on) publishes a one-room broadcast on the room channel; B
    # (multiplexing off) never subscribes to room channels, so its client misses it.
    a = await node_peers("legacy4", "A", port=0, multiplexing=True)
    b = await node_peers("legacy4", "B", port=0, multiplexing=False)
    cl = await node_peers("legacy4", "CL")
    await cl.call("client_connect", client="c1", url=b.url, nsp="/")
    await cl.call("client_join", client="c1", rooms=["room1"])
    await a.call("nsp_emit", nsp="/", rooms=["room1"], event="missed", args=[1])
    await a.call("nsp_emit", nsp="/", event="seen", args=[2])
    ev = await cl.wait_event(name="client_recv", client="c1")
    assert ev["event"] == "seen"


async def test_legacy5_emitter_reaches_cluster(node_peers: StartFn) -> None:
    b = await node_peers("legacy5", "B", port=0)
    cl = await node_peers("legacy5", "CL")
    await cl.call("client_connect", client="c1", url=b.url, nsp="/chat")
    await cl.call("client_join", client="c1", rooms=["r"])
    await cl.call("emitter_emit", nsp="/chat", rooms=["r"], event="from-emitter", args=[b"\x05"])
    ev = await cl.wait_event(name="client_recv", event="from-emitter")
    # socket.io-emitter 3.2.0 always sends packet type 2 (EVENT), so a 2.x node
    # JSON-encodes the Buffer instead of sending it as an attachment.
    assert (ev["nsp"], ev["args"]) == ("/chat", [{"type": "Buffer", "data": [5]}])
