"""RedisAdapter's lifecycle: a Redis restart, a fork, close() and interpreter exit."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import socketio

from siotools import RedisAdapter, SiotoolsError
from siotools.redis_server import RedisServer
from siotools.sync_pynode import SyncPythonNode
from tests.interop.harness import PyClient

ROOT = Path(__file__).resolve().parents[2]


def _numsub(url: str, channel: str) -> int:
    with redis.Redis.from_url(url) as r:
        return int(dict(r.pubsub_numsub(channel)).get(channel.encode(), 0))


def _wait(check: Any, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


@pytest.mark.parametrize("dialect", ["legacy", "current"])
async def test_redis_restart_restores_subscriptions_and_outage_requests_fail_clearly(
    fresh_redis: RedisServer, key: str, dialect: str
) -> None:
    url = fresh_redis.url
    opts: dict[str, Any] = {"key": key, "dialect": dialect, "requests_timeout": 1.0}
    a = SyncPythonNode(url, namespaces=["/", "/chat"], **opts)
    b = SyncPythonNode(url, namespaces=["/", "/chat"], **opts)
    await asyncio.to_thread(a.start)
    await asyncio.to_thread(b.start)
    client = await PyClient("/chat").connect(b.url)
    await client.join("r1")
    try:
        request_channel = f"{key}-request#/chat#"
        assert _numsub(url, request_channel) == 2
        fresh_redis.kill()
        # A request during the outage fails with one of siotools' errors, in bounded time.
        started = time.monotonic()
        with pytest.raises(SiotoolsError):
            await asyncio.to_thread(a.adapter.clients, ["r1"], namespace="/chat")
        assert time.monotonic() - started < 10
        fresh_redis.stop()
        fresh_redis.start()
        await asyncio.to_thread(_wait, lambda: _numsub(url, request_channel) == 2)
        for _ in range(100):
            await asyncio.to_thread(a.sio.emit, "back", 1, to="r1", namespace="/chat")
            try:
                await client.wait_event("back", timeout=0.1)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("no delivery after the restart")
        assert await asyncio.to_thread(a.adapter.clients, ["r1"], namespace="/chat") == [client.sid]
        assert b.adapter.stats["errors"] >= 1  # the outage was reported
    finally:
        await client.close()
        await asyncio.to_thread(a.stop)
        await asyncio.to_thread(b.stop)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("dialect", ["current", "sharded-rcluster"])
def test_a_forked_child_reconnects_and_leaves_the_parents_connections_alone(
    request: pytest.FixtureRequest, redis_url: str, key: str, dialect: str
) -> None:
    url = redis_url
    if dialect == "sharded-rcluster":
        # The Redis Cluster transport: a connection per master, the parent's kept too.
        url = request.getfixturevalue("sharded_cluster").url + "?cluster=true"
    adapter = RedisAdapter(url, key=key, dialect=dialect.removesuffix("-rcluster"))
    socketio.Server(async_mode="threading", client_manager=adapter)
    adapter.start()
    parent_uid = adapter.uid
    assert adapter.server_count() == 1
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child, as a gunicorn or Celery prefork worker
        code = 1
        try:
            os.close(read_end)
            report = {"uid": adapter.uid, "count": adapter.server_count()}
            os.write(write_end, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The child joined on connections of its own, under a node id of its own.
    assert report["uid"] != parent_uid
    assert report["count"] == 2
    # Its exit took its connections away, not the parent's: the parent still works.
    _wait(lambda: adapter.server_count() == 1)
    assert adapter.uid == parent_uid
    adapter.close()


def test_close_stops_the_loop_thread_and_leaves_the_cluster(redis_url: str, key: str) -> None:
    adapter = RedisAdapter(redis_url, key=key, dialect="legacy")
    socketio.Server(async_mode="threading", client_manager=adapter)
    adapter.start()
    name = f"siotools-adapter-{adapter.uid}"
    assert any(t.name == name for t in threading.enumerate())
    assert _numsub(redis_url, f"{key}-request#/#") == 1
    adapter.close()
    assert not any(t.name == name for t in threading.enumerate())
    assert _numsub(redis_url, f"{key}-request#/#") == 0
    adapter.close()  # idempotent


EXIT_SCRIPT = """
import sys, socketio
from siotools import RedisAdapter
adapter = RedisAdapter(sys.argv[1], key=sys.argv[2], dialect="current")
sio = socketio.Server(async_mode="threading", client_manager=adapter)
adapter.start()
sio.emit("bye", {"n": 1})
print(adapter.server_count(), flush=True)
"""


def test_the_interpreter_exits_cleanly_without_close(redis_url: str) -> None:
    key = f"exit-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, redis_url, key],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert done.stderr == ""
    assert _numsub(redis_url, f"{key}-request#/#") == 0


def test_start_after_close_joins_again(redis_url: str, key: str) -> None:
    adapter = RedisAdapter(redis_url, key=key, dialect="current")
    socketio.Server(async_mode="threading", client_manager=adapter)
    adapter.start()
    adapter.close()
    assert _numsub(redis_url, f"{key}-request#/#") == 0
    adapter.start()
    assert adapter.server_count() == 1
    adapter.close()
