"""Redis restarts, close() and the EIO3 limit, with Python and Node nodes on one Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as redis

from siotools.exceptions import NodePeerError
from siotools.pynode import PythonNode
from siotools.redis_server import RedisServer
from tests.interop.harness import PyClient
from tests.nodepeer.fixtures import StartFn


async def pubsub_state(url: str, key: str) -> tuple[set[str], dict[str, int], int]:
    """(channels matching the key, NUMSUB of each, NUMPAT)."""
    async with redis.Redis.from_url(url) as r:
        channels = {c.decode() for c in await r.pubsub_channels(f"{key}*")}
        numsub = {c.decode(): n for c, n in await r.pubsub_numsub(*channels)} if channels else {}
        numpat = int(await r.pubsub_numpat())
    return channels, numsub, numpat


async def wait_state(url: str, key: str, want: Any, timeout: float = 15.0) -> Any:
    state = None
    for _ in range(int(timeout / 0.05)):
        try:
            state = await pubsub_state(url, key)
        except (redis.ConnectionError, OSError):
            state = None
        if state == want:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"pub/sub state {state} never became {want}")


@pytest.mark.parametrize(
    "opts",
    [{}, {"subscription_mode": "psubscribe"}, {"with_channel_multiplexing": False}],
    ids=["subscribe-mux", "psubscribe", "no-mux"],
)
async def test_redis_restart_restores_every_subscription(
    fresh_redis: RedisServer, key: str, opts: dict[str, Any]
) -> None:
    url = fresh_redis.url
    a = await PythonNode(url, key=key, namespaces=["/", "/chat"], **opts).start()
    b = await PythonNode(url, key=key, namespaces=["/", "/chat"], **opts).start()
    client = await PyClient("/chat").connect(b.url)
    await client.join("r1", "r#2")
    try:
        before = await pubsub_state(url, key)
        if opts == {}:  # per-room channels, the socket's own room included
            assert {f"{key}#/chat#r1#", f"{key}#/chat#r#2#", f"{key}#/chat#{client.sid}#"} <= (
                before[0]
            )
        fresh_redis.restart()
        await wait_state(url, key, before)
        # Delivery and requests work again, without restarting anything.
        for _ in range(100):
            await a.sio.emit("back", 1, to="r1", namespace="/chat")
            try:
                await client.wait_event("back", timeout=0.1)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("no delivery after the restart")
        await a.sio.emit("back2", 2, to="r#2", namespace="/chat")
        assert await client.wait_event("back2") == [2]
        assert await a.adapter.clients(["r#2"], namespace="/chat") == [client.sid]
        assert await a.adapter.custom_request("x", namespace="/chat") == [None, None]
        assert b.adapter.stats["errors"] >= 1  # the outage was reported
    finally:
        await client.close()
        await a.stop()
        await b.stop()


@pytest.mark.node
async def test_redis_restart_in_a_mixed_cluster(
    node_peers: StartFn, fresh_redis: RedisServer, key: str
) -> None:
    """Python and a Node legacy4 multiplexing node both come back after a restart."""
    url = fresh_redis.url
    node = await node_peers("legacy4", "N", port=0, redis_url=url, multiplexing=True)
    py = await PythonNode(url, key=key, with_channel_multiplexing=True).start()
    client = await PyClient("/").connect(py.url)
    await client.join("room")
    try:
        before = await pubsub_state(url, key)
        fresh_redis.restart()
        await wait_state(url, key, before)
        for _ in range(100):
            await node.call("nsp_emit", nsp="/", rooms=["room"], event="back", args=[1])
            try:
                assert await client.wait_event("back", timeout=0.1) == [1]
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("no delivery after the restart")
        assert await node.call("clients", nsp="/", rooms=["room"]) == [client.sid]
        replies = await py.adapter.custom_request("x")
        assert sorted(map(str, replies)) == sorted(
            ["None", str({"node": "N", "nsp": "/", "echo": "x"})]
        )
    finally:
        await client.close()
        await py.stop()


async def test_close_leaves_no_task_and_unsubscribes(redis_url: str, key: str) -> None:
    before_tasks = asyncio.all_tasks()
    node = PythonNode(redis_url, key=key, namespaces=["/", "/chat"])
    await node.start()
    other = await PythonNode(redis_url, key=key).start()
    client = await PyClient("/chat").connect(node.url)
    await client.join("room")
    await other.adapter.custom_request("x", namespace="/")  # spawns answer tasks
    await other.sio.emit("hello", 1, to="room", namespace="/chat")
    assert await client.wait_event("hello") == [1]
    _, numsub, _ = await pubsub_state(redis_url, key)
    assert numsub[f"{key}-request#/#"] == 2
    assert numsub[f"{key}-request#/chat#"] == 1
    assert numsub[f"{key}#/chat#room#"] == 1
    await client.close()
    await node.stop()
    await other.stop()
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before_tasks if t is not asyncio.current_task()]
    # python-engineio's per-connection ping task sleeps out its ping interval after the
    # server shut down (it is not the adapter's, and ends on its own); nothing else is left.
    names = {getattr(t.get_coro(), "__qualname__", "?") for t in leaked}
    assert names <= {"AsyncSocket._send_ping"}
    for task in leaked:
        task.cancel()
    assert await pubsub_state(redis_url, key) == (set(), {}, 0)


async def test_close_of_a_bare_adapter(redis_url: str, key: str) -> None:
    from siotools import AsyncRedisAdapter

    before_tasks = asyncio.all_tasks()
    adapter = AsyncRedisAdapter(redis_url, key=key)
    await adapter.start()
    assert await adapter.node_count() == 1
    assert await adapter.custom_request(1) == [None]
    await adapter.close()
    await adapter.close()  # idempotent
    leaked = [t for t in asyncio.all_tasks() - before_tasks if t is not asyncio.current_task()]
    assert leaked == []
    assert await pubsub_state(redis_url, key) == (set(), {}, 0)


@pytest.mark.node
@pytest.mark.parametrize("flavor", ["legacy5", "legacy4"])
async def test_node_legacy_clients_cannot_connect_to_a_python_server(
    node_peers: StartFn, redis_url: str, key: str, flavor: str
) -> None:
    """socket.io-client 1.x/2.x speak Engine.IO 3; python-engineio 4.x serves EIO 4 only.

    So a Python node only serves python-socketio (or socket.io-client 3+) clients; the
    cluster protocol is unaffected (Node clients on Node nodes reach Python's sockets).
    """
    py = await PythonNode(redis_url, key=key).start()
    cl = await node_peers(flavor, "CL")
    try:
        with pytest.raises(NodePeerError, match="connect"):
            await cl.call("client_connect", client="x", url=py.url, nsp="/", timeout=10)
    finally:
        await py.stop()
