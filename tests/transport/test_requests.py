"""The request engine: completion by count, first reply, timeouts with partial results."""

from __future__ import annotations

import asyncio
import time

import pytest

from siotools.exceptions import RequestTimeout, RequestUndelivered
from siotools.redis_server import RedisServer
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher, Subscriber
from siotools.transport.requests import RequestEngine, new_request_id


async def test_completes_when_expected_replies_arrive() -> None:
    engine = RequestEngine()
    fut = engine.open("r1", expected=2, timeout=5, timeout_message="t", finish=sorted)
    assert engine.reply("r1", 2) is True
    assert not fut.done()
    assert engine.reply("other", 9) is False
    engine.reply("r1", 1)
    assert await fut == [1, 2]
    assert len(engine) == 0
    assert engine.reply("r1", 3) is False


async def test_first_reply_wins() -> None:
    engine = RequestEngine()
    fut = engine.open("r", expected=None, timeout=5, timeout_message="t", finish=lambda r: r[0])
    engine.reply("r", "a")
    engine.reply("r", "b")
    assert await fut == "a"


async def test_zero_expected_completes_at_once() -> None:
    engine = RequestEngine()
    fut = engine.open("r", expected=0, timeout=5, timeout_message="t", finish=list)
    assert fut.done() and await fut == []
    assert len(engine) == 0


async def test_timeout_carries_partial_and_counts() -> None:
    engine = RequestEngine()
    fut = engine.open(
        "r",
        expected=3,
        timeout=0.05,
        timeout_message="timeout reached while waiting for clients response",
        finish=lambda r: sorted(x for part in r for x in part),
    )
    engine.reply("r", ["b"])
    engine.reply("r", ["a"])
    with pytest.raises(RequestTimeout) as info:
        await fut
    err = info.value
    assert str(err) == "timeout reached while waiting for clients response"
    assert (err.partial, err.answered, err.expected) == (["a", "b"], 2, 3)
    assert len(engine) == 0


async def test_add_expected_and_cancel_all() -> None:
    engine = RequestEngine()
    fut = engine.open("r", expected=1, timeout=5, timeout_message="t", finish=len)
    engine.add_expected("r", 2)
    engine.reply("r", 1)
    engine.reply("r", 1)
    assert not fut.done()
    engine.cancel_all()
    assert fut.cancelled()
    await asyncio.sleep(0)


async def test_per_node_counts_wait_for_every_count_whatever_the_order() -> None:
    # broadcastWithAck to two other nodes: c has one client, b two (one never acks). b's
    # ack may come before b's count (another connection, another thread): the request
    # must not complete on c's count and two acks (socket.io checkCompleteness).
    engine = RequestEngine()
    fut = engine.open(
        "r", expected=2, timeout=0.2, timeout_message="operation has timed out",
        finish=lambda r: [x for x in r if x != "count"], per_node_counts=True,
    )  # fmt: skip
    engine.add_expected("r", 1)
    engine.reply("r", "count")  # c's count
    engine.reply("r", "c-ack")
    engine.reply("r", "b-ack")  # before b's count
    assert not fut.done()
    engine.add_expected("r", 2)
    engine.reply("r", "count")  # b's count: one of b's acks is still missing
    assert not fut.done()
    with pytest.raises(RequestTimeout) as info:
        await fut
    assert info.value.partial == ["c-ack", "b-ack"]


async def test_per_node_counts_complete_once_all_arrived() -> None:
    engine = RequestEngine()
    fut = engine.open(
        "r", expected=2, timeout=5, timeout_message="t", finish=len, per_node_counts=True
    )
    engine.reply("r", "b-ack")  # an ack before any count
    engine.add_expected("r", 1)
    engine.reply("r", "b-count")
    assert not fut.done()
    engine.add_expected("r", 0)
    engine.reply("r", "c-count")  # c has no client
    assert await fut == 3


def test_request_ids_look_like_uid2() -> None:
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 6 and i.isalnum() for i in ids)


async def test_request_published_and_answered(redis_url: str, key: str) -> None:
    pub = Publisher(RedisEndpoint.from_url(redis_url))
    await pub.start()
    engine = RequestEngine()
    fut = engine.request(
        pub,
        "r",
        key.encode(),
        b"q",
        expected=1,
        timeout=0.3,
        timeout_message="timeout reached while waiting for clients response",
        finish=list,
    )
    engine.reply("r", "answer")
    assert await fut == ["answer"]
    # Redis took it but nobody answered: a plain timeout, the nodes' business.
    late = engine.request(
        pub, "r2", key.encode(), b"q", expected=1, timeout=0.2, timeout_message="t", finish=list
    )
    with pytest.raises(RequestTimeout) as info:
        await late
    assert not isinstance(info.value, RequestUndelivered)
    await pub.close()


async def test_request_while_redis_is_away_is_undelivered_and_never_sent(
    fresh_redis: RedisServer,
) -> None:
    ep = RedisEndpoint.from_url(fresh_redis.url)
    pub = Publisher(ep, on_error=lambda e: None)
    await pub.start()
    fresh_redis.kill()
    await asyncio.sleep(0.1)
    engine = RequestEngine()
    start = time.monotonic()
    fut = engine.request(
        pub, "r", b"req", b"q", expected=1, timeout=0.5, timeout_message="t", finish=list
    )
    pub.publish(b"req", b"broadcast")  # a broadcast queued after it, kept
    with pytest.raises(RequestUndelivered) as info:
        await fut
    assert time.monotonic() - start < 1.0
    assert "unreachable" in str(info.value) and fresh_redis.url[:-2] in str(info.value)
    got: list[bytes] = []
    await asyncio.to_thread(fresh_redis.restart)
    sub = Subscriber(ep, lambda c, p, _: got.append(p))
    await sub.start()
    await sub.subscribe([b"req"])
    for _ in range(200):
        if got:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert got == [b"broadcast"]  # the request itself was dropped at its deadline
    assert pub.expired == 1
    await sub.close()
    await pub.close()
