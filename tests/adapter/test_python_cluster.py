"""Python-to-Python clusters: every python-socketio path through AsyncRedisAdapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from siotools import RequestTimeout, UnsupportedOperation
from siotools.pynode import PythonNode
from tests.adapter.pyclients import Client


@pytest.fixture
async def cluster(redis_url: str, key: str) -> AsyncIterator[list[PythonNode]]:
    nodes = [PythonNode(redis_url, key=key, namespaces=["/", "/chat"]) for _ in range(3)]
    for node in nodes:
        await node.start()
    yield nodes
    for node in nodes:
        await node.stop()


async def test_broadcast_to_room_reaches_other_node(cluster: list[PythonNode]) -> None:
    a, b, _ = cluster
    c1 = await Client().connect(b.url)
    await c1.join("room1")
    c2 = await Client().connect(b.url)
    await a.sio.emit("news", {"n": 1}, to="room1")
    await a.sio.emit("all", ("x", b"\x01\x02"))
    assert await c1.wait_event("news") == [[{"n": 1}]]
    assert await c1.wait_event("all") == [["x", b"\x01\x02"]]
    assert await c2.wait_event("all") == [["x", b"\x01\x02"]]
    assert await c2.no_event("news")
    await c1.close()
    await c2.close()


async def test_cluster_requests(cluster: list[PythonNode]) -> None:
    a, b, c = cluster
    cb = await Client().connect(b.url)
    cc = await Client().connect(c.url)
    await cb.join("r1", "r2")
    await cc.join("r2")
    sb, sc = cb.sid(), cc.sid()
    assert sorted(await a.adapter.clients()) == sorted([sb, sc])
    assert sorted(await a.adapter.clients(["r2"])) == sorted([sb, sc])
    assert await a.adapter.clients(["r1"]) == [sb]
    rooms = await a.adapter.all_rooms()
    assert {"r1", "r2", sb, sc} == set(rooms)
    assert await a.adapter.client_rooms(sb) == [sb, "r1", "r2"]
    await a.adapter.remote_join(sc, "r3")
    assert await a.adapter.clients(["r3"]) == [sc]
    await a.adapter.remote_leave(sc, "r3")
    assert await a.adapter.clients(["r3"]) == []
    replies = await a.adapter.custom_request({"q": 1})
    assert replies == [None, None, None]
    assert await a.adapter.node_count() == 3
    await a.adapter.remote_disconnect(sc)
    await cc.wait_disconnected()
    assert await a.adapter.clients() == [sb]
    with pytest.raises(RequestTimeout) as info:
        await a.adapter.client_rooms("nobody")
    assert str(info.value) == "timeout reached while waiting for rooms response"
    await cb.close()


async def test_custom_hook_and_partial_timeout(cluster: list[PythonNode]) -> None:
    a, b, c = cluster
    b.adapter.custom_hook = lambda data: {"node": "b", "echo": data}

    async def slow(data: object) -> object:
        await asyncio.sleep(5)
        return "late"

    c.adapter.custom_hook = slow
    with pytest.raises(RequestTimeout) as info:
        await a.adapter.custom_request("hi")
    err = info.value
    assert str(err) == "timeout reached while waiting for customRequest response"
    assert (err.answered, err.expected) == (2, 3)
    assert sorted(map(str, err.partial)) == sorted(map(str, [None, {"node": "b", "echo": "hi"}]))


async def test_server_api_maps_to_requests(cluster: list[PythonNode]) -> None:
    a, b, _ = cluster
    cb = await Client().connect(b.url)
    sid = cb.sid()
    await a.sio.enter_room(sid, "vip")
    assert await a.adapter.clients(["vip"]) == [sid]
    await a.sio.emit("hello", "vip-only", room="vip")
    assert await cb.wait_event("hello") == [["vip-only"]]
    await a.sio.leave_room(sid, "vip")
    assert await a.adapter.clients(["vip"]) == []
    await a.sio.enter_room(sid, "gone")
    await a.sio.close_room("gone")
    assert await a.adapter.clients(["gone"]) == []
    await a.sio.disconnect(sid)
    await cb.wait_disconnected()


async def test_skip_sid_and_namespaces(cluster: list[PythonNode]) -> None:
    a, b, c = cluster
    c1 = await Client().connect(b.url, ["/", "/chat"])
    c2 = await Client().connect(c.url, ["/", "/chat"])
    await a.sio.emit("x", 1, skip_sid=c1.sid())
    await a.sio.emit("y", 2, namespace="/chat")
    assert await c2.wait_event("x") == [[1]]
    assert await c1.no_event("x")
    assert ("/chat", "y", [2]) in c1.events or await c1.wait_event("y")
    assert await a.adapter.clients(namespace="/chat") != []
    await c1.close()
    await c2.close()


async def test_ack_to_remote_socket_is_refused(cluster: list[PythonNode]) -> None:
    a, b, _ = cluster
    cb = await Client().connect(b.url)
    with pytest.raises(UnsupportedOperation, match="acknowledgements across nodes"):
        await a.sio.emit("q", 1, to=cb.sid(), callback=lambda *x: None)
    await cb.close()


async def test_exposed_attributes_and_aiohttp_hooks(redis_url: str, key: str) -> None:
    import socketio
    from aiohttp import web

    from siotools import AsyncRedisAdapter

    adapter = AsyncRedisAdapter(redis_url, key=key, requests_timeout=0.5)
    assert (adapter.prefix, adapter.requests_timeout) == (key, 0.5)
    assert len(adapter.uid) == 6 and adapter.uid.isalnum()
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=adapter)
    app = web.Application()
    sio.attach(app)
    adapter.attach(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()  # runs on_startup: the node joins the cluster before any client
    assert await adapter.pub_client.ping() is True
    numsub = await adapter.pub_client.pubsub_numsub(f"{key}-request#/#")
    assert numsub == [(f"{key}-request#/#".encode(), 1)]
    await runner.cleanup()  # runs on_cleanup: the node leaves
    from redis.asyncio import Redis

    probe = Redis.from_url(redis_url)
    assert await probe.pubsub_numsub(f"{key}-request#/#") == [(f"{key}-request#/#".encode(), 0)]
    await probe.aclose()
