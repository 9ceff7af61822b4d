"""The request engine: completion by count, first reply, timeouts with partial results."""

from __future__ import annotations

import asyncio

import pytest

from siotools.exceptions import RequestTimeout
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


def test_request_ids_look_like_uid2() -> None:
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 6 and i.isalnum() for i in ids)
