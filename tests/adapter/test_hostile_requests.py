"""Requests with wrong field types are counted and reported, never acted on.

Regression for "a remoteLeave without a room cuts a socket off": Node's
``remoteLeave(id, undefined)`` publishes ``{"requestid","type":4,"sid"}``, which used to
remove the socket from python-socketio's internal connected room (it stayed connected,
but namespace-wide emits missed it and ``clients()`` no longer listed it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from siotools import DecodeError
from siotools.pynode import PythonNode
from tests.adapter.pyclients import Client


@pytest.fixture
async def node(redis_url: str, key: str) -> AsyncIterator[PythonNode]:
    async with PythonNode(redis_url, key=key) as n:
        yield n


LEGACY_POISON = [
    {"type": 4},  # remoteLeave without a room (Node's remoteLeave(id, undefined))
    {"type": 4, "room": None},
    {"type": 4, "room": ["a"]},
    {"type": 4, "room": {"x": 1}},
    {"type": 4, "room": True},
    {"type": 3, "room": None},  # remoteJoin into python-socketio's internal room
    {"type": 3},
    {"type": 6, "close": "yes"},  # remoteDisconnect with a non-boolean close
    {"type": 0, "rooms": [None]},  # clients of the internal room
    {"type": 0, "rooms": "abc"},
]


@pytest.mark.parametrize("body", LEGACY_POISON, ids=lambda b: json.dumps(b))
async def test_malformed_legacy_request_is_counted_not_acted_on(
    node: PythonNode, redis_url: str, key: str, body: dict[str, object]
) -> None:
    client = await Client().connect(node.url)
    sid = client.sid()
    errors: list[BaseException] = []
    node.adapter.on_error(errors.append)
    before = node.adapter.stats["malformed"]
    request = {"requestid": "x1", **body}
    if body.get("type") in (3, 4, 6):
        request["sid"] = sid
    async with aioredis.Redis.from_url(redis_url) as r:
        await r.publish(f"{key}-request#/#", json.dumps(request))
    for _ in range(100):
        if node.adapter.stats["malformed"] > before:
            break
        await asyncio.sleep(0.02)
    assert node.adapter.stats["malformed"] == before + 1
    assert isinstance(errors[-1], DecodeError)
    # The socket is intact: connected, listed, and reached by namespace-wide emits.
    assert node.adapter.is_connected(sid, "/")
    assert await node.adapter.clients() == [sid]
    await node.sio.emit("still-here", 1)
    assert await client.wait_event("still-here") == [[1]]
    await client.close()


@pytest.mark.parametrize(
    "body",
    [
        {"uid": "zz", "type": 3, "opts": {"rooms": [], "except": []}},  # no rooms to leave
        {"uid": "zz", "type": 3, "opts": {"rooms": [None]}, "rooms": ["a"]},
        {"uid": "zz", "type": 3, "opts": {"rooms": []}, "rooms": [None]},
        {"uid": "zz", "type": 2, "opts": "x", "rooms": ["a"]},
        {"uid": "zz", "type": 4, "opts": {"rooms": {"a": 1}}},
        {"uid": "zz", "requestId": "r", "type": 3, "sid": "S"},  # 7.x form without a room
    ],
    ids=lambda b: json.dumps(b),
)
async def test_malformed_8x_request_is_counted_not_acted_on(
    redis_url: str, key: str, body: dict[str, object]
) -> None:
    async with PythonNode(redis_url, key=key, dialect="current") as node:
        client = await Client().connect(node.url)
        sid = client.sid()
        before = node.adapter.stats["malformed"]
        text = json.dumps(body).replace('"S"', json.dumps(sid))
        async with aioredis.Redis.from_url(redis_url) as r:
            await r.publish(f"{key}-request#/#", text)
        for _ in range(100):
            if node.adapter.stats["malformed"] > before:
                break
            await asyncio.sleep(0.02)
        assert node.adapter.stats["malformed"] == before + 1
        assert node.adapter.is_connected(sid, "/")
        assert await node.adapter.clients() == [sid]
        await client.close()


async def test_a_payload_over_the_limit_is_dropped_with_a_count(redis_url: str, key: str) -> None:
    from siotools import PayloadTooLargeError
    from siotools.protocol import encode_broadcast

    async with PythonNode(redis_url, key=key, max_payload=4096) as node:
        client = await Client().connect(node.url)
        errors: list[BaseException] = []
        node.adapter.on_error(errors.append)
        big = encode_broadcast(uid="other", data=["big", "x" * 10_000], prefix=key)
        small = encode_broadcast(uid="other", data=["small", 1], prefix=key)
        async with aioredis.Redis.from_url(redis_url) as r:
            for _ in range(3):
                await r.publish(*big)
            await r.publish(
                f"{key}-request#/#", b'{"requestid":"x","type":5,"data":"' + b"y" * 5000 + b'"}'
            )
            await r.publish(*small)
        assert await client.wait_event("small") == [[1]]
        assert node.adapter.stats["oversized"] == 4
        assert node.adapter.stats["malformed"] == 0
        # reported once (the limit is the operator's to raise), with the sizes
        assert len(errors) == 1 and "4,096-byte limit" in str(errors[0])
        assert not isinstance(errors[0], PayloadTooLargeError)  # a warning, the node goes on
        assert await client.no_event("big", 0.05)
        await client.close()
