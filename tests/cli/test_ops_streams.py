"""``siotools emit --dialect streams`` on real @socket.io/redis-streams-adapter nodes: the
event reaches their clients; the node count is what Redis shows (0.3 NUMSUB, 0.2
heartbeats), "unknown" when it cannot tell, 0 only when no node can be there."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
import redis.asyncio as aioredis

from tests.nodepeer.fixtures import StartFn

pytestmark = pytest.mark.node


async def _siotools(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "siotools", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("version", ["0.3", "0.2"])
async def test_cli_emit_streams(
    node_peers: StartFn, redis_url: str, key: str, version: str
) -> None:
    opts = {"stream": key, "streams_version": version}
    a = await node_peers("streams", "A", port=0, **opts)
    await node_peers("streams", "B", port=0, **opts)
    cl = await node_peers("streams", "CL")
    await cl.call("client_connect", client="c1", url=a.url, nsp="/")
    await cl.call("client_join", client="c1", rooms=["room1"])
    await a.call("nsp_emit", nsp="/", event="warm", args=[])  # the stream exists (0.3)
    common = ["--url", redis_url, "--prefix", key, "--dialect", "streams", "--stream", key]
    code, out, err = await _siotools("emit", *common, "--room", "room1", "news", '"hi"', "2")
    assert code == 0, err
    assert "2 nodes listening, socket count unknown" in out
    ev = await cl.wait_event(name="client_recv", client="c1", event="news")
    assert ev["args"] == ["hi", 2]
    code, out, err = await _siotools("emit", *common, "--json", "more")
    assert code == 0, err
    row = json.loads(out)
    assert (row["nodes"], row["sockets"]) == (2, None)
    await cl.wait_event(name="client_recv", client="c1", event="more")


async def test_cli_emit_stream_count(node_peers: StartFn, redis_url: str, key: str) -> None:
    a = await node_peers("streams", "A", port=0, stream=key, stream_count=2)
    cl = await node_peers("streams", "CL")
    await cl.call("client_connect", client="c1", url=a.url, nsp="/chat")
    common = ["--url", redis_url, "--prefix", key, "--dialect", "streams", "--stream", key]
    code, out, err = await _siotools("emit", *common, "--stream-count", "2", "--nsp", "/chat", "x")
    assert code == 0 and "1 node listening" in out, err
    await cl.wait_event(name="client_recv", client="c1", event="x")
    code, _, err = await _siotools("emit", *common, "--stream-count", "0", "x")
    assert code == 2 and "--stream-count: '0' must be at least 1" in err


async def test_cli_emit_streams_node_count_known_or_unknown(redis_url: str, key: str) -> None:
    common = ["--url", redis_url, "--prefix", key, "--dialect", "streams", "--stream", key]
    # No stream and no subscriber: no node of either generation can be there.
    code, out, err = await _siotools("emit", *common, "news")
    assert code == 1 and out == ""
    assert "No node serves namespace / under prefix" in err and "nothing was sent" in err
    assert "Traceback" not in err
    # Now our own entry (and an old heartbeat) is there, but nobody reads or beats: unknown.
    r = aioredis.from_url(redis_url)
    try:
        assert not await r.exists(key)  # nothing was appended
        await r.xadd(key, {"uid": "0123456789abcdef", "nsp": "/", "type": "2"}, id="1-0")
    finally:
        await r.aclose()
    code, out, err = await _siotools("emit", *common, "news")
    assert code == 0, err
    assert "node count unknown" in out and "0 node" not in out
    # Other commands say in one sentence that siotools only emits to this dialect.
    code, out, err = await _siotools("rooms", *common[:-2])
    assert code == 2 and "only emits to it" in err and "Traceback" not in err
