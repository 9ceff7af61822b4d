"""siotools.sync.ClusterClient and Emitter from a thread pool, as Celery-style tasks do."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import socketio

from siotools import UnsupportedOperation
from siotools.pynode import PythonNode
from siotools.sync import ClusterClient, Emitter


@pytest.mark.parametrize("dialect", ["legacy", "current"])
async def test_tasks_on_a_thread_pool_share_one_emitter_and_one_cluster_client(
    redis_url: str, dialect: str
) -> None:
    key = f"tasks-{uuid.uuid4().hex[:8]}"
    node = await PythonNode(redis_url, key=key, dialect=dialect).start()
    got: list[Any] = []
    client = socketio.AsyncClient(reconnection=False)

    async def on_job(*args: Any) -> None:
        got.append(args)

    client.on("job", on_job)
    try:
        await client.connect(node.url, transports=["websocket"])
        sid = client.get_sid("/")
        await client.emit("join", "workers")
        for _ in range(100):
            if "workers" in node.adapter.rooms_of(sid, "/"):
                break
            await asyncio.sleep(0.02)
        emitter = Emitter(redis_url, key=key, dialect=dialect)
        cluster = ClusterClient(redis_url, key=key, dialect=dialect)

        def task(i: int) -> tuple[int, list[str]]:
            # What a Celery task body does: emit a result, look the cluster up.
            emitter.to("workers").emit("job", i, {"done": True})
            return cluster.server_count(), [s for s in cluster.clients(["workers"])]

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = await asyncio.to_thread(lambda: list(pool.map(task, range(64))))
        assert all(count == 1 and ids == [sid] for count, ids in results)
        for _ in range(250):
            if len(got) == 64:
                break
            await asyncio.sleep(0.02)
        assert sorted(args[0] for args in got) == list(range(64))
        assert all(args[1] == {"done": True} for args in got)
        if dialect == "current":
            await asyncio.to_thread(emitter.to("workers").sockets_join, "extra")
            for _ in range(100):
                if "extra" in node.adapter.rooms_of(sid, "/"):
                    break
                await asyncio.sleep(0.02)
            assert "extra" in node.adapter.rooms_of(sid, "/")
            found = await asyncio.to_thread(cluster.fetch_sockets, rooms=["extra"])
            assert [s.id for s in found] == [sid]
        else:
            with pytest.raises(UnsupportedOperation):
                await asyncio.to_thread(emitter.to("workers").sockets_join, "extra")
        await asyncio.to_thread(emitter.close)
        await asyncio.to_thread(cluster.close)
    finally:
        await client.disconnect()
        await node.stop()


def test_the_context_managers_connect_and_close(redis_url: str) -> None:
    key = f"ctx-{uuid.uuid4().hex[:8]}"
    with ClusterClient(redis_url, key=key, dialect="current") as cluster:
        assert cluster.server_count() == 0
        assert cluster.fetch_sockets() == []
        assert cluster.running
    assert not cluster.running
    with Emitter(redis_url, key=key, dialect="current") as emitter:
        emitter.of("/chat").to("a", "b").except_("c").volatile.emit("x", 1)
        assert emitter.of("/chat").sockets_join("r") == 0  # no node heard it


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_worker_emits_on_connections_of_its_own(redis_url: str) -> None:
    import os

    import redis

    key = f"fork-{uuid.uuid4().hex[:8]}"
    emitter = Emitter(redis_url, key=key, dialect="current")
    with redis.Redis.from_url(redis_url) as r, r.pubsub() as sub:
        sub.psubscribe(f"{key}#*")
        assert sub.get_message(timeout=5) is not None  # the psubscribe confirmation
        emitter.emit("parent", 1)
        pid = os.fork()
        if pid == 0:  # a prefork worker: the parent's loop thread does not exist here
            code = 1
            try:
                emitter.emit("child", 2)
                emitter.close()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        emitter.emit("parent-again", 3)  # the parent's connection still works
        got = []
        while len(got) < 3:
            message = sub.get_message(timeout=5)
            assert message is not None, got
            if message["type"] == "pmessage":
                got.append(message["data"])
    assert sum(b"child" in m for m in got) == 1 and sum(b"parent-again" in m for m in got) == 1
    emitter.close()
