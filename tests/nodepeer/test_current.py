"""Two-node clusters of real socket.io 4 nodes with @socket.io/redis-adapter 8."""

from __future__ import annotations

import pytest

from siotools.exceptions import NodePeerError
from tests.nodepeer.fixtures import StartFn

pytestmark = pytest.mark.node

ARGS = ["hi", b"\x00\x01\xfe\xff", {"n": 1, "nested": [True, None, 2.5]}]
ADAPTERS = [pytest.param("classic", id="classic"), pytest.param("sharded", id="sharded")]


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_two_node_cluster(node_peers: StartFn, adapter: str) -> None:
    a = await node_peers("current", "A", port=0, adapter=adapter)
    b = await node_peers("current", "B", port=0, adapter=adapter)
    cl = await node_peers("current", "CL")
    assert a.uid and b.uid and a.uid != b.uid

    sid = (await cl.call("client_connect", client="c1", url=b.url, nsp="/"))["id"]
    assert sorted(await cl.call("client_join", client="c1", rooms=["room1"])) == sorted(
        [sid, "room1"]
    )

    await a.call("nsp_emit", nsp="/", rooms=["room1"], event="news", args=ARGS)
    ev = await cl.wait_event(name="client_recv", client="c1", event="news")
    assert ev["args"] == ARGS

    # except: the room is excluded, so only the next broadcast arrives.
    await a.call("nsp_emit", nsp="/", except_=["room1"], event="lost", args=[1])
    await a.call("nsp_emit", nsp="/", event="all", args=[2])
    ev = await cl.wait_event(name="client_recv", client="c1")
    assert (ev["event"], ev["args"]) == ("all", [2])

    found = await a.call("fetchSockets", nsp="/", rooms=["room1"])
    assert [(s["id"], sorted(s["rooms"]), s["data"]) for s in found] == [
        (sid, sorted([sid, "room1"]), {"name": "c1", "node": "B"})
    ]
    assert found[0]["remote"] is True

    # serverSideEmit with ack: every other node answers (not the sender).
    replies = await a.call("serverSideEmit", nsp="/", event="sse-ack", args=[{"x": 1}], ack=True)
    assert replies == [{"node": "B", "event": "sse-ack", "args": [{"x": 1}]}]
    await b.wait_event(name="server_side_emit", event="sse-ack")

    await a.call("socketsJoin", nsp="/", rooms=["room1"], join=["room2"])
    assert [s["id"] for s in await a.call("fetchSockets", nsp="/", rooms=["room2"])] == [sid]
    if adapter == "classic":
        assert {"room1", "room2", sid} <= set(await a.call("allRooms", nsp="/"))
    else:  # the sharded (cluster) adapter has no allRooms()
        with pytest.raises(NodePeerError, match="not a function"):
            await a.call("allRooms", nsp="/")
    assert await a.call("serverCount", nsp="/") == 2

    await a.call("disconnectSockets", nsp="/", rooms=["room2"], close=True)
    await cl.wait_event(name="client_disconnect", client="c1")


async def test_timeout_keeps_partial_result(node_peers: StartFn) -> None:
    a = await node_peers("current", "A", port=0, requests_timeout_ms=500)
    await node_peers("current", "B", port=0, sse_mode="silent")
    await node_peers("current", "C", port=0)
    with pytest.raises(NodePeerError, match="timeout") as info:
        await a.call("serverSideEmit", nsp="/", event="sse-ack", args=[], ack=True, timeout=500)
    assert [r["node"] for r in info.value.result] == ["C"]


async def test_broadcast_ack_and_socket_broadcast(node_peers: StartFn) -> None:
    a = await node_peers("current", "A", port=0)
    b = await node_peers("current", "B", port=0)
    cl = await node_peers("current", "CL")
    sid1 = (await cl.call("client_connect", client="c1", url=a.url, nsp="/"))["id"]
    await cl.call("client_connect", client="c2", url=b.url, nsp="/", ack_value=b"\x09")

    # socket.broadcast from c1's socket reaches c2 on the other node, not c1.
    await a.call("socket_emit", nsp="/", sid=sid1, broadcast=True, event="bc", args=[b"\x01"])
    ev = await cl.wait_event(name="client_recv", event="bc")
    assert (ev["client"], ev["args"]) == ("c2", [b"\x01"])

    acks = await a.call(
        "nsp_emit", nsp="/", event="ask", args=[], ack=True, flags={"timeout": 2000}
    )
    assert sorted(acks, key=repr) == sorted([{"client": "c1", "event": "ask"}, b"\x09"], key=repr)


async def test_emitter_reaches_cluster(node_peers: StartFn) -> None:
    b = await node_peers("current", "B", port=0)
    cl = await node_peers("current", "CL")
    await cl.call("client_connect", client="c1", url=b.url, nsp="/chat")
    await cl.call("emitter_emit", nsp="/chat", event="from-emitter", args=[b"\x05"])
    ev = await cl.wait_event(name="client_recv", event="from-emitter")
    assert (ev["nsp"], ev["args"]) == ("/chat", [b"\x05"])
