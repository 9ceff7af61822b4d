"""``siotools.discovery``: which prefixes a Redis carries, from a real Redis and real nodes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from siotools.discovery import discover, parse_channels
from siotools.exceptions import RedisUnavailableError
from siotools.pynode import PythonNode
from siotools.redis_server import RedisServer, free_port


def test_parse_channels_groups_by_prefix_and_kind() -> None:
    found = parse_channels(
        [
            b"socket.io-request#/#",
            b"socket.io-response#/#",
            b"socket.io-response#/chat#abc123#",
            b"socket.io#/chat#room#with#hashes#",
            b"app-1#/#",
            b"socketio",
            b"unrelated",
        ],
        [b"shard#/#"],
    )
    assert list(found.prefixes) == ["socket.io", "app-1", "shard"]
    sio = found.prefixes["socket.io"]
    assert sio.namespaces == {"/", "/chat"}
    assert sio.kinds == {"request", "response", "response_uid", "room"}
    assert sio.dialects == ["@socket.io/redis-adapter 7.x/8.x"]
    assert found.prefixes["shard"].dialects == ["@socket.io/redis-adapter 8.x sharded"]
    assert found.prefixes["app-1"].kinds == {"broadcast"}
    assert found.pysocketio == ["socketio"] and found.other_channels == 1
    text = found.describe()
    assert "prefix 'socket.io' (namespaces /, /chat" in text and "python-socketio" in text


def test_an_empty_redis_says_so() -> None:
    found = parse_channels([])
    found.numpat, found.own_patterns = 3, 3
    assert found.empty
    assert "no Socket.IO subscribers at all" in found.describe()


async def test_discover_finds_a_running_node(redis_url: str, key: str) -> None:
    node = await PythonNode(redis_url, key=key, namespaces=["/", "/chat"]).start()
    try:
        found = await discover(redis_url)
    finally:
        await node.stop()
    assert key in found.prefixes
    seen = found.prefixes[key]
    assert {"/", "/chat"} <= seen.namespaces
    assert "request" in seen.kinds and "response" in seen.kinds
    assert f"prefix {key!r}" in found.describe()


async def test_discover_unreachable_is_a_siotools_error() -> None:
    with pytest.raises(RedisUnavailableError):
        await discover(f"redis://127.0.0.1:{free_port()}/0", timeout=1)


async def test_sniff_with_a_wrong_prefix_says_what_is_there(redis_url: str, key: str) -> None:
    """Item 3: a wrong prefix used to get silence, forever with --count."""
    node = await PythonNode(redis_url, key=key, namespaces=["/"]).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIOTOOLS_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "siotools", "sniff", "--url", redis_url, "--prefix", "wrong",
        "--count", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert line.startswith("siotools sniff: no frame under prefix 'wrong' in 5s; ")
        assert f"prefix {key!r} (namespaces /" in line and line.rstrip().endswith(
            "Still listening."
        )
        assert proc.returncode is None  # it keeps waiting
        # ... and still hears the right frames when they come (none here: Ctrl-C ends it).
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0 and out == b""
        assert "0 frames" in err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
        await node.stop()


async def test_sniff_on_an_empty_redis_says_nothing_subscribes(fresh_redis: RedisServer) -> None:
    url = fresh_redis.url
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "siotools", "sniff", "--url", url, "--duration", "6.5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    lines = err.decode().splitlines()
    assert any("this Redis has no Socket.IO subscribers at all" in x for x in lines), lines


def test_the_dialect_guess_follows_what_each_adapter_subscribes() -> None:
    five = parse_channels([b"k-request#/#", b"k-response#/#"]).prefixes["k"]
    assert five.dialects == ["socket.io-redis 5.x"]
    four = parse_channels([b"k-request#/#", b"k-response#/#", b"k#/#", b"k#/#room#"])
    assert four.prefixes["k"].dialects == ["socket.io-redis 4.x-style channel per room"]
