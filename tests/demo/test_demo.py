"""The demo cluster: real traffic, cluster state, clean start and stop, the command."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from siotools import ClusterClient, ConfigurationError
from siotools.demo import DemoCluster


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_traffic_state_and_stop(redis_url: str, key: str) -> None:
    demo = DemoCluster(
        nodes=2, clients=10, rate=40, redis_url=redis_url, key=key, churn=0,
        remote_interval=0.2, seed=7,
    )  # fmt: skip
    received: list[bytes] = []
    async with ClusterClient(redis_url, key=key) as cluster:
        # Watch the raw channels: the traffic must cross Redis, binary payloads included.
        import redis.asyncio as aioredis

        r = aioredis.from_url(redis_url)
        pubsub = r.pubsub()
        await pubsub.psubscribe(f"{key}#*")

        async def tap() -> None:
            async for msg in pubsub.listen():
                if msg["type"] == "pmessage":
                    received.append(msg["channel"])

        tapper = asyncio.create_task(tap())
        try:
            await demo.start()
            assert len(demo.connected_clients()) == 10
            await until(lambda: sum(demo.stats.actions.values()) >= 30)
            await until(lambda: sum(demo.stats.remote_ops.values()) >= 3)
            assert await cluster.node_count("/chat") == 2
            assert len(await cluster.clients(namespace="/")) == 10
            rooms = await cluster.rooms(namespace="/chat")
            assert "general" in rooms or len(rooms) > 0
            assert "lobby" in await cluster.rooms(namespace="/")
            assert demo.stats.received > 0
            channels = {c.decode() for c in received}
            assert any(c.startswith(f"{key}#/chat#") for c in channels)
            assert any(c.startswith(f"{key}#/#") for c in channels)
        finally:
            tapper.cancel()
            await pubsub.aclose()
            await r.aclose()
            await demo.stop()
        assert not demo.running
        assert await cluster.node_count("/") == 0  # every node unsubscribed


async def test_private_redis_is_started_and_stopped() -> None:
    demo = DemoCluster(nodes=1, clients=2, rate=5, remote_interval=0)
    await demo.start()
    port = int(re.findall(r":(\d+)/", demo.redis_url)[0])
    await demo.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError):
        DemoCluster(nodes=0)
    with pytest.raises(ConfigurationError):
        DemoCluster(churn=2)
    for bad in ({"rate": float("nan")}, {"rate": float("inf")}, {"remote_interval": float("nan")}):
        with pytest.raises(ConfigurationError, match="must be finite numbers"):
            DemoCluster(**bad)
    with pytest.raises(ConfigurationError, match="cannot be negative"):
        DemoCluster(rate=-1)


@pytest.mark.node
@pytest.mark.parametrize("dialect", ["current", "legacy"])
async def test_mixed_cluster_with_node_peer(
    node_available: None, redis_url: str, key: str, dialect: str
) -> None:
    demo = DemoCluster(
        nodes=1, clients=16, rate=30, redis_url=redis_url, key=key, node_peer=True,
        remote_interval=0.5, dialect=dialect,
    )  # fmt: skip
    async with demo, ClusterClient(redis_url, key=key) as cluster:
        assert cluster.dialect is not None and cluster.dialect.value == dialect
        assert await cluster.node_count("/chat") == 2
        await until(lambda: demo.stats.node_emits >= 2)
        if dialect == "legacy":
            replies = await cluster.custom_request({"q": 1}, namespace="/")
        else:
            replies = await cluster.server_side_emit_with_ack("stats", {"q": 1}, namespace="/")
        assert len(replies) == 2
        assert len(demo.node_urls) == 2


async def test_command_headless_sigint_cleans_up() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "siotools", "demo", "--headless", "--nodes", "1",
        "--clients", "4", "--rate", "5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or "Press Ctrl-C" not in lines[-1]:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, "demo exited early: " + "".join(lines)
        lines.append(line.decode())
    text = "".join(lines)
    assert "Redis is ready at redis://127.0.0.1:" in text
    assert "siotools rooms --url" in text
    port = int(re.findall(r"redis://127\.0\.0\.1:(\d+)/", text)[0])
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert "stopped" in out.decode()
    assert "Traceback" not in err.decode()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_command_duration_and_bad_args() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "siotools", "demo", "--headless", "--nodes", "0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1


def test_errors_say_what_they_were() -> None:
    """The headless status line used to say "errors 4" and nothing more."""
    from siotools.demo.cluster import DemoStats

    stats = DemoStats()
    assert "errors 0" in stats.summary(0)
    for _ in range(3):
        stats.failed("remote_join", TimeoutError())
    stats.failed("connect", ConnectionRefusedError(111, "Connection refused"))
    assert stats.errors_detail() == (
        "4 (remote_join 3: TimeoutError; connect 1: ConnectionRefusedError: "
        "[Errno 111] Connection refused)"
    )
    assert "errors 4 (remote_join 3: TimeoutError" in stats.summary(2)


def _demo_until_ready(argv: list[str], env: dict[str, str]) -> tuple[Any, str]:
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "siotools", "demo", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    return proc, "".join(lines)


def test_the_hint_prints_a_command_that_works_here() -> None:
    """Item 2: the hint said "siotools rooms ..." though siotools was not on PATH."""
    import shlex
    import subprocess

    bindir = os.path.dirname(sys.executable)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bindir)
    env = {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1"}
    argv = ["--headless", "--nodes", "1", "--clients", "1", "--rate", "5", "--churn", "0"]
    proc, text = _demo_until_ready([*argv, "--remote-every", "0"], env)
    try:
        # one of each: the grammar agrees with the numbers
        assert "starting 1 python-socketio node\n" in text
        assert "connecting 1 client\n" in text and "1 simulated client on" in text
        rooms = next(line for line in text.splitlines() if " rooms --url " in line)
        assert "siotools is not on PATH: activate the venv" in text
        # the printed command runs as printed, from a shell without the venv on PATH
        out = subprocess.run(
            shlex.split(rooms.strip()), capture_output=True, text=True, timeout=60, env=env
        )
        assert out.returncode == 0, out.stderr
        assert "rooms of /chat" in out.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
