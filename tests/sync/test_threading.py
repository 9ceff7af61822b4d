"""RedisAdapter under async_mode="threading": a sync node and an async node, real clients."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import socketio

from siotools import AsyncRedisAdapter, ConfigurationError, RedisAdapter, UnsupportedOperation
from siotools.pynode import PythonNode
from siotools.sync_pynode import SyncPythonNode


async def _client(url: str, nsp: str = "/") -> tuple[socketio.AsyncClient, list[Any]]:
    got: list[Any] = []
    sio = socketio.AsyncClient(reconnection=False)

    async def catch_all(event: str, *args: Any) -> Any:
        got.append((event, list(args)))
        return {"ack": event}

    sio.on("*", catch_all, namespace=nsp)
    await sio.connect(url, namespaces=[nsp], transports=["websocket"])
    return sio, got


async def _until(check: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("dialect", ["legacy", "current"])
async def test_sync_and_async_nodes_share_a_cluster(redis_url: str, dialect: str) -> None:
    key = f"sync-{uuid.uuid4().hex[:8]}"
    sync_node = SyncPythonNode(redis_url, key=key, dialect=dialect, requests_timeout=1.0)
    await asyncio.to_thread(sync_node.start)
    async_node = await PythonNode(redis_url, key=key, dialect=dialect, requests_timeout=1.0).start()
    try:
        s_client, s_got = await _client(sync_node.url)
        a_client, a_got = await _client(async_node.url)
        s_sid = s_client.get_sid("/")
        a_sid = a_client.get_sid("/")
        await s_client.call("join", "room1")
        # async node -> sync node's socket (room broadcast)
        await async_node.sio.emit("hello", ("from-async", b"\x01"), to="room1")
        await _until(lambda: ("hello", ["from-async", b"\x01"]) in s_got)
        # sync node -> everyone (its own socket and the async node's)
        await asyncio.to_thread(sync_node.sio.emit, "news", {"n": 1})
        await _until(lambda: ("news", [{"n": 1}]) in a_got and ("news", [{"n": 1}]) in s_got)
        a = sync_node.adapter
        assert await asyncio.to_thread(a.server_count) == 2
        ids = sorted(await asyncio.to_thread(a.clients))
        assert ids == sorted([s_sid, a_sid])
        rooms = await asyncio.to_thread(a.all_rooms)
        assert "room1" in rooms and a_sid in rooms
        assert await asyncio.to_thread(a.client_rooms, a_sid) == [a_sid]
        await asyncio.to_thread(a.remote_join, a_sid, "room2")
        # 8.x: socketsJoin is fire-and-forget (RA 8.3 remoteJoin finds, then publishes).
        await _until(lambda: "room2" in async_node.adapter.rooms_of(a_sid, "/"))
        if dialect == "current":
            found = await asyncio.to_thread(a.fetch_sockets)
            assert sorted(s.id for s in found) == sorted([s_sid, a_sid])
            acks = await asyncio.to_thread(a.emit_with_ack, "ping", 1, timeout=3)
            assert sorted(map(str, acks)) == sorted(map(str, [{"ack": "ping"}] * 2))
            a.on_server_side_emit("sse")(lambda *args: ["sync", *args])
            replies = await async_node.adapter.server_side_emit_with_ack("sse", 7)
            assert replies == [["sync", 7]]
            # python-socketio's call() for a socket of another node: a broadcast with acks.
            ack = await asyncio.to_thread(sync_node.sio.call, "hey", 5, to=a_sid, timeout=5)
            assert ack == {"ack": "hey"}
            await asyncio.to_thread(a.sockets_join, "all-in", rooms=[])
            await _until(lambda: "all-in" in async_node.adapter.rooms_of(a_sid, "/"))
        else:
            with pytest.raises(UnsupportedOperation):
                await asyncio.to_thread(a.emit_with_ack, "ping", 1)
            a.custom_hook = lambda data: {"sync": data}
            replies = await async_node.adapter.custom_request("q")
            assert {"sync": "q"} in replies
        await asyncio.to_thread(a.remote_disconnect, a_sid)
        await _until(lambda: not a_client.connected)
        await s_client.disconnect()
    finally:
        await async_node.stop()
        await asyncio.to_thread(sync_node.stop)


@pytest.mark.parametrize(
    ("mode", "needs"),
    [("eventlet", "eventlet.monkey_patch()"), ("gevent", "gevent.monkey.patch_all()")],
)
def test_a_cooperative_mode_without_monkey_patching_is_refused_at_construction(
    mode: str, needs: str
) -> None:
    # This test process is not monkey-patched: the adapter says so, in one sentence.
    with pytest.raises(ConfigurationError) as info:
        socketio.Server(async_mode=mode, client_manager=RedisAdapter("redis://127.0.0.1:1"))
    message = str(info.value)
    assert needs in message and message.count(". ") == 0


def test_the_async_adapter_is_still_an_async_manager() -> None:
    assert isinstance(AsyncRedisAdapter("redis://127.0.0.1:1"), socketio.AsyncManager)
    assert isinstance(RedisAdapter("redis://127.0.0.1:1"), socketio.Manager)


def test_an_unreachable_redis_is_one_clear_error(key: str) -> None:
    from siotools import RedisUnavailableError

    adapter = RedisAdapter("redis://127.0.0.1:1", key=key)
    reported: list[BaseException] = []
    adapter.on_error(reported.append)
    socketio.Server(async_mode="threading", client_manager=adapter)
    with pytest.raises(RedisUnavailableError) as info:
        adapter.server_count()
    assert "127.0.0.1:1" in str(info.value) and "\n" not in str(info.value)
    adapter.close()


def test_a_blocking_call_from_the_loop_thread_says_it_would_wait_for_itself() -> None:
    from siotools.loop_thread import LoopThread

    bridge = LoopThread("siotools-test-loop")

    async def inside() -> str:
        try:
            bridge.run(inside)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    try:
        assert "would wait for itself" in bridge.run(inside)
    finally:
        bridge.stop()
    assert not bridge.running
