"""RedisAdapter under eventlet and gevent (monkey-patched processes) with real clients."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import socketio

from siotools.pynode import PythonNode
from siotools.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


async def _start(
    mode: str, redis_url: str, key: str, port: int, dialect: str = "current"
) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.sync.cooperative_node",
        mode,
        redis_url,
        key,
        str(port),
        dialect,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if b"READY" not in line:
        assert proc.stderr is not None
        err = await proc.stderr.read()
        raise AssertionError(f"{mode} node did not start: {line!r} {err.decode()[-2000:]}")
    return proc


@pytest.mark.parametrize(
    ("mode", "dialect", "where"),
    [
        ("eventlet", "current", "redis"),
        ("gevent", "current", "redis"),
        # The Redis Cluster transport under green threads: sharded pub/sub on a standalone
        # Redis 7 (a one-master cluster), then on a Redis Cluster.
        ("gevent", "sharded", "redis"),
        ("eventlet", "sharded", "rcluster"),
    ],
)
async def test_a_cooperative_node_joins_a_cluster(
    request: pytest.FixtureRequest, redis_url: str, mode: str, dialect: str, where: str
) -> None:
    if where == "rcluster":
        redis_url = request.getfixturevalue("sharded_cluster").url + "?cluster=true"
    key = f"coop-{uuid.uuid4().hex[:8]}"
    port = free_port()
    other = await PythonNode(redis_url, key=key, dialect=dialect, requests_timeout=2.0).start()
    proc = await _start(mode, redis_url, key, port, dialect)
    clients: list[socketio.AsyncClient] = []
    try:
        got: dict[str, list[Any]] = {"coop": [], "other": []}

        async def connect(url: str, name: str) -> socketio.AsyncClient:
            sio = socketio.AsyncClient(reconnection=False)

            async def catch_all(event: str, *args: Any) -> None:
                got[name].append((event, list(args)))

            sio.on("*", catch_all)
            await sio.connect(url, transports=["websocket"])
            clients.append(sio)
            return sio

        coop = await connect(f"http://127.0.0.1:{port}", "coop")
        mine = await connect(other.url, "other")
        # A cluster request from inside a handler: the green thread waits, the hub runs.
        answer = await coop.call("ask", timeout=10)
        assert answer["count"] == 2
        assert answer["client_count"] == 2
        assert answer["ids"] == sorted([coop.get_sid("/"), mine.get_sid("/")])
        # The cooperative node's broadcast reaches the other node's client, and back.
        assert await coop.call("shout", 1, timeout=10) == "ok"
        await other.sio.emit("from-async", "hi")
        for _ in range(250):
            if ("emitted", [mode]) in got["other"] and (
                "from-async",
                ["hi"],
            ) in got["coop"]:
                break
            await asyncio.sleep(0.02)
        assert ("shouted", [{"mode": mode, "args": [1]}]) in got["other"]
        assert ("from-async", ["hi"]) in got["coop"]
        assert ("emitted", [mode]) in got["other"]
        assert await other.adapter.server_count() == 2
    finally:
        for sio in clients:
            await sio.disconnect()
        proc.terminate()
        await proc.wait()
        await other.stop()
