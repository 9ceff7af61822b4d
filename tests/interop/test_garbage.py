"""Garbage on every channel kind never crashes a Python node: it counts, reports, serves on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import redis.asyncio as redis

from siotools.protocol import Dialect
from siotools.pynode import PythonNode
from tests.interop.harness import PyClient

MODES = [
    pytest.param({}, id="subscribe"),
    pytest.param({"subscription_mode": "psubscribe"}, id="psubscribe"),
    pytest.param(
        {"with_channel_multiplexing": True, "dialect": Dialect.LEGACY_LITE}, id="legacy4-mux"
    ),
    pytest.param({"with_channel_multiplexing": False}, id="legacy4-nomux"),
]


def pack(value: Any) -> bytes:
    return bytes(msgpack.packb(value))


PACKET = {"type": 2, "data": ["evil", 1], "nsp": "/"}
# Undecodable bytes: each must be counted as malformed and reported.
BROKEN_MSGPACK = [
    b"",
    b"bar",  # the spec's capture: "2 trailing bytes" crashed a 5.4.0 node
    b"\x93",  # array header, no elements
    pack(["uid", PACKET, {"rooms": []}])[:-3],  # truncated frame
    b"\x93\xa3uid\xdb\xff\xff\xff\xff",  # str32 claiming 4 GiB
    b"\xc1",  # never-used msgpack byte
]
# Well-formed msgpack of the wrong shape: dropped or delivered, never a crash.
WRONG_SHAPES = [
    pack(42),
    pack("string"),
    pack({"a": 1}),
    pack([]),
    pack(["uid"]),
    pack(["uid", PACKET]),  # 2 elements: a Node node would re-publish it
    pack(["uid", PACKET, {}, True]),  # 4 elements
    pack(["uid", "not a map", {}]),
    pack(["uid", {"type": 2, "data": "not a list", "nsp": "/"}, {}]),
    pack(["uid", {"type": 2, "data": [], "nsp": "/"}, {}]),
    pack(["uid", {"type": 2, "data": [{"no": "event name"}], "nsp": "/"}, {}]),
    pack(["uid", {"type": 2, "data": [None], "nsp": "/"}, {}]),
    pack(["uid", {"type": 2, "data": ["x"], "nsp": 5}, {}]),
    pack(["uid", PACKET, {"rooms": "room", "except": 5, "flags": []}]),
    pack(["uid", PACKET, {"rooms": [{"a": 1}, None, 3], "except": [None]}]),
    pack([7, PACKET, None]),
    pack([b"uid", PACKET, "opts"]),
    pack(["uid", {**PACKET, "data": ["evil", msgpack.ExtType(42, b"xx")]}, {}]),
    pack(["uid", {**PACKET, "data": ["evil", msgpack.ExtType(0, b"\x01")]}, {}]),
    pack(["uid", {**PACKET, "data": ["evil", 1]}, {}])[:-1] + b"\xd7\xff" + b"\x00" * 8,
]
BROKEN_JSON = [b"not json", b"{", b"\xff\xfe", b"[" * 100_000]
WRONG_REQUESTS = [
    b"null",
    b"[]",
    b"42",
    b'{"type":0}',
    b'{"requestid":"x","type":99}',
    b'{"requestid":"x","type":"0"}',
    b'{"requestid":"x","type":0,"rooms":"notalist"}',
    b'{"requestid":"x","type":0,"rooms":[{"a":1},null,3]}',
    b'{"requestid":"x","type":1,"sid":5}',
    b'{"requestid":"x","type":1}',
    b'{"requestid":"x","type":3,"sid":"nobody","room":{"o":1}}',
    b'{"requestid":"x","type":4,"sid":null}',
    b'{"requestid":"x","type":6,"sid":["a"],"close":"yes"}',
    b'{"requestid":null,"type":2}',
    b'{"requestid":{"a":1},"type":5}',
    b'{"requestid":"x","type":5,"data":' + json.dumps({"n": list(range(10_000))}).encode() + b"}",
]
WRONG_RESPONSES = [
    b"null",
    b"[]",
    b'{"requestid":"unknown"}',
    b'{"requestid":"unknown","clients":"x"}',
    b'{"rooms":[1]}',
    b'{"requestid":5,"data":null}',
]


@pytest.fixture
async def nodes(redis_url: str, key: str, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    opts = request.param
    a = PythonNode(redis_url, key=key, **opts)
    b = PythonNode(redis_url, key=key, **opts)
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


@pytest.mark.parametrize("nodes", MODES, indirect=True)
async def test_garbage_on_every_channel_never_crashes_a_python_node(
    nodes: tuple[PythonNode, PythonNode], redis_url: str, key: str
) -> None:
    a, b = nodes
    loop_errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    reported: list[BaseException] = []
    b.adapter.on_error(reported.append)
    client = await PyClient("/").connect(b.url)
    await client.join("room", "a#b")
    sid = client.sid
    stats = b.adapter.stats
    broadcast_channels = [f"{key}#/#", f"{key}#/#room#", f"{key}#/#a#b#", f"{key}#/#{sid}#"]
    try:
        async with redis.Redis.from_url(redis_url) as r:

            async def flood(channels: list[str], payloads: list[bytes]) -> None:
                for channel in channels:
                    for payload in payloads:
                        await r.publish(channel, payload)

            async def until(check: Any) -> None:
                for _ in range(200):
                    if check():
                        return
                    await asyncio.sleep(0.01)
                raise AssertionError(f"timed out: {dict(stats)}")

            # Undecodable bytes: every one counted and reported, on every broadcast channel.
            before, reported_before = stats["malformed"], len(reported)
            await flood(broadcast_channels, BROKEN_MSGPACK)
            # Without multiplexing (4.x single channel) room channels are not subscribed.
            heard = broadcast_channels if b.adapter.with_channel_multiplexing else [f"{key}#/#"]
            expected = len(heard) * len(BROKEN_MSGPACK)
            await until(lambda: stats["malformed"] - before >= expected)
            assert stats["malformed"] - before == expected
            assert len(reported) - reported_before == expected

            # Undecodable requests and responses: the same.
            before, reported_before = stats["malformed"], len(reported)
            await flood([f"{key}-request#/#", f"{key}-response#/#"], BROKEN_JSON)
            expected = 2 * len(BROKEN_JSON)
            await until(lambda: stats["malformed"] - before >= expected)
            assert stats["malformed"] - before == expected
            assert len(reported) - reported_before == expected

            # Decodable, wrong shapes: whatever the node does, it must not re-publish
            # (a 2-element frame makes a Node node re-publish it) nor go down.
            published = stats["published"]
            await flood(broadcast_channels, WRONG_SHAPES)
            await flood([f"{key}-request#/#"], WRONG_REQUESTS)
            await flood([f"{key}-response#/#"], WRONG_RESPONSES)

        # Still serving: a broadcast from the other node is delivered, requests answered.
        await a.sio.emit("after", "ok")
        assert await client.wait_event("after") == ["ok"]
        await a.sio.emit("after-room", "ok", to="room")
        assert await client.wait_event("after-room") == ["ok"]
        assert await a.adapter.clients(["room"]) == [sid]
        assert await a.adapter.custom_request("q") == [None, None]
        assert stats["published"] == published
        # A frame whose event name is null is delivered as it is, as a Node node does
        # (socket.io 2.x does not check the name of a broadcast packet).
        assert {e[0] for e in client.events} <= {"after", "after-room", "evil", None}
        assert b.adapter._deliverer is not None and not b.adapter._deliverer.done()

        # The only loop errors are the test client's: python-socketio's AsyncClient fails
        # on the packet whose event name is a map (a Node client just finds no listener).
        # The server forwards it as a Node server would; nothing on the server side failed.
        def from_client(context: dict[str, Any]) -> bool:
            coro = getattr(context.get("future"), "get_coro", lambda: None)()
            return str(getattr(coro, "__qualname__", "")).startswith("AsyncClient.")

        server_errors = [c for c in loop_errors if not from_client(c)]
        assert server_errors == []
    finally:
        loop.set_exception_handler(previous)
        await client.close()
