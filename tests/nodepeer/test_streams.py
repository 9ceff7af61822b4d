"""Two-node clusters of real socket.io 4 nodes with @socket.io/redis-streams-adapter."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from siotools.nodepeer import flavor_for
from tests.nodepeer.fixtures import StartFn

pytestmark = pytest.mark.node

ARGS = ["hi", b"\x00\x01\xfe\xff", {"n": 1, "nested": [True, None, 2.5]}]
VERSIONS = [pytest.param("0.3", id="0.3.1"), pytest.param("0.2", id="0.2.3")]


def test_flavor_for_streams() -> None:
    assert flavor_for("streams") == "streams"


@pytest.mark.parametrize("version", VERSIONS)
async def test_two_node_cluster(
    node_peers: StartFn, redis_url: str, key: str, version: str
) -> None:
    opts = {"stream": key, "streams_version": version, "heartbeat_interval": 300}
    a = await node_peers("streams", "A", port=0, **opts)
    b = await node_peers("streams", "B", port=0, **opts)
    cl = await node_peers("streams", "CL")
    assert a.uid and b.uid and a.uid != b.uid
    assert a.ready["streams_version"] == version

    sid = (await cl.call("client_connect", client="c1", url=b.url, nsp="/"))["id"]
    await cl.call("client_join", client="c1", rooms=["room1"])

    await a.call("nsp_emit", nsp="/", rooms=["room1"], event="news", args=ARGS)
    ev = await cl.wait_event(name="client_recv", client="c1", event="news")
    assert ev["args"] == ARGS

    found = await a.call("fetchSockets", nsp="/", rooms=["room1"])
    assert [(s["id"], s["data"], s["remote"]) for s in found] == [
        (sid, {"name": "c1", "node": "B"}, True)
    ]
    replies = await a.call("serverSideEmit", nsp="/", event="sse-ack", args=[{"x": 1}], ack=True)
    assert replies == [{"node": "B", "event": "sse-ack", "args": [{"x": 1}]}]
    assert await a.call("serverCount", nsp="/") == 2

    await a.call("disconnectSockets", nsp="/", rooms=["room1"], close=True)
    await cl.wait_event(name="client_disconnect", client="c1")

    # The broadcast went through the stream the peers were told to use.
    client = aioredis.from_url(redis_url)
    try:
        assert await client.type(key) == b"stream"
        entries = await client.xrange(key)
        assert {fields[b"type"] for _, fields in entries} >= {b"3", b"6"}
    finally:
        await client.aclose()
