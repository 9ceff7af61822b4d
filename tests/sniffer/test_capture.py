"""Live capture from real python-socketio nodes; limits, filters, anomalies, robustness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

import siotools
from siotools import ConfigurationError, RedisUnavailableError
from siotools.protocol import Broadcast, Dialect, LegacyClientsRequest, encode_broadcast
from siotools.pynode import PythonNode
from siotools.sniffer import SniffFilter, capture, sniff, start_capture
from tests.adapter.pyclients import Client
from tests.sniffer.helpers import broadcasts, wait_frames


@pytest.fixture
async def cluster(redis_url: str, key: str) -> AsyncIterator[list[PythonNode]]:
    nodes = [PythonNode(redis_url, key=key, namespaces=["/", "/chat"]) for _ in range(2)]
    for node in nodes:
        await node.start()
    yield nodes
    for node in nodes:
        await node.stop()


async def test_python_cluster_frames_match_what_was_sent(
    cluster: list[PythonNode], redis_url: str, key: str
) -> None:
    a, b = cluster
    c1 = await Client().connect(b.url)
    await c1.join("room1")
    cap = await start_capture(redis_url, key)
    await a.sio.emit("news", {"n": 1}, to="room1")
    await a.sio.emit("all", ("x", b"\x01\x02"), namespace="/")
    await a.sio.emit("chatty", [1, 2], namespace="/chat")
    assert await c1.wait_event("news") == [[{"n": 1}]]
    await wait_frames(cap, lambda f: f.kind == "broadcast", 3)
    rooms = await a.adapter.clients(["room1"])
    assert rooms == [c1.sid()]
    await wait_frames(cap, lambda f: f.kind == "response", 1)
    cap.stop()
    await cap.wait()
    await c1.close()

    news = broadcasts(cap, "news")[0]
    assert isinstance(news.frame, Broadcast)
    assert news.frame.args == [{"n": 1}] and news.frame.rooms == ["room1"]
    assert news.channel == f"{key}#/#room1#" and news.dialect is Dialect.LEGACY
    assert news.frame.uid == news.row.uid and news.size == len(news.payload)
    assert news.pattern == f"{key}#*"
    everyone = broadcasts(cap, "all")[0]
    assert everyone.row.args == ["x", b"\x01\x02"] and everyone.row.rooms == []
    chat = broadcasts(cap, "chatty")[0]
    assert chat.nsp == "/chat" and chat.row.args == [[1, 2]]
    (req,) = [f for f in cap.frames if f.kind == "request"]
    assert isinstance(req.frame, LegacyClientsRequest) and req.frame.rooms == ("room1",)
    responses = [f for f in cap.frames if f.kind == "response"]
    assert {r.row.request_id for r in responses} == {req.frame.request_id}
    assert cap.anomalies()["undecodable"] == 0


async def test_malformed_payloads_are_counted_never_crash(redis_url: str, key: str) -> None:
    r = aioredis.from_url(redis_url)
    cap = await start_capture(redis_url, key)
    bad = [
        (f"{key}#/#", b""),
        (f"{key}#/#", b"\xc1\xc1\xc1"),
        (f"{key}#/#room#", b"\x93\x01\x02"),
        (f"{key}-request#/#", b"{not json"),
        (f"{key}-response#/#", b'{"requestid": 5}'),
        (f"{key}#/#", bytes(range(256))),
    ]
    for ch, payload in bad:
        await r.publish(ch, payload)
    good_ch, good = encode_broadcast(uid="u1", data=["ok", 1], prefix=key)
    await r.publish(good_ch, good)
    await wait_frames(cap, n=len(bad) + 1)
    cap.stop()
    await cap.wait()
    await r.aclose()
    assert [f.ok for f in cap.frames] == [False] * len(bad) + [True]
    assert all(f.error for f in cap.frames[:-1])
    assert cap.anomalies()["undecodable"] == len(bad)
    df = cap.to_pandas()
    assert (df["anomaly"] == "undecodable").sum() == len(bad)
    assert df["error"].notna().sum() == len(bad)


async def test_count_duration_and_filter(redis_url: str, key: str) -> None:
    r = aioredis.from_url(redis_url)

    async def publish_soon() -> None:
        await asyncio.sleep(0.2)
        for i in range(10):
            room = "a" if i % 2 else "b"
            ch, p = encode_broadcast(uid="u", data=["ev", i], rooms=[room], prefix=key)
            await r.publish(ch, p)
        ch, p = encode_broadcast(uid="u", data=["other", 0], rooms=["a", "c"], prefix=key)
        await r.publish(ch, p)

    task = asyncio.create_task(publish_soon())
    cap = await capture(redis_url, key, count=3, duration=5)
    await task
    assert len(cap) == 3 and [f.row.args for f in cap.frames] == [[0], [1], [2]]

    task = asyncio.create_task(publish_soon())
    cap = await capture(redis_url, key, duration=1.0, filter=SniffFilter(room="a"))
    await task
    assert [f.row.args for f in cap.frames] == [[1], [3], [5], [7], [9], [0]]

    task = asyncio.create_task(publish_soon())
    cap = await capture(redis_url, key, duration=1.0, filter=lambda f: f.event == "other")
    await task
    assert [f.event for f in cap.frames] == ["other"]
    await r.aclose()


async def test_sniff_async_iterator(redis_url: str, key: str) -> None:
    r = aioredis.from_url(redis_url)
    ready = asyncio.Event()
    got = []

    async def run() -> None:
        async for f in sniff(
            redis_url, key, count=2, on_ready=ready.set, filter=SniffFilter(kind="broadcast")
        ):
            got.append(f)

    task = asyncio.create_task(run())
    await asyncio.wait_for(ready.wait(), 5)
    await r.publish(f"{key}-request#/#", b'{"requestid":"r1","type":2}')
    for i in range(3):
        ch, p = encode_broadcast(uid="u", data=["e", i], prefix=key)
        await r.publish(ch, p)
    await asyncio.wait_for(task, 5)
    await r.aclose()
    assert [f.row.args for f in got] == [[0], [1]]


async def test_mixed_dialects_and_unanswered_requests(redis_url: str, key: str) -> None:
    r = aioredis.from_url(redis_url)
    cap = await start_capture(redis_url, key, response_window=0.3)
    for dialect in (Dialect.LEGACY, Dialect.LEGACY, Dialect.CURRENT):
        ch, p = encode_broadcast(uid="u", data=["e"], dialect=dialect, prefix=key)
        await r.publish(ch, p)
    await r.publish(f"{key}-request#/#", b'{"requestid":"answered","type":2}')
    await r.publish(f"{key}-response#/#", b'{"requestid":"answered","rooms":[]}')
    await r.publish(f"{key}-request#/#", b'{"requestid":"lonely","type":2}')
    await asyncio.sleep(0.5)
    cap.stop()
    await cap.wait()
    await r.aclose()
    an = cap.anomalies()
    assert an["mixed_dialect"] == 1 and an["unanswered"] == 1
    assert an["dialects"] == {"legacy": 5, "current": 1}
    df = cap.to_pandas()
    assert df.loc[df["anomaly"] == "unanswered", "request_id"].tolist() == ["lonely"]
    assert df.loc[df["anomaly"] == "mixed_dialect", "dialect"].tolist() == ["current"]


async def test_background_capture_stop_and_repr(redis_url: str, key: str) -> None:
    cap = await siotools.start_capture(redis_url, key)
    assert not cap.done and "running" in repr(cap)
    r = aioredis.from_url(redis_url)
    ch, p = encode_broadcast(uid="u", data=["e", 1], prefix=key)
    await r.publish(ch, p)
    await wait_frames(cap)
    assert "siotools Capture" in cap._repr_html_()
    cap.stop()
    await cap.wait()
    assert cap.done and cap.stopped_ns is not None
    await r.publish(ch, p)
    await asyncio.sleep(0.1)
    assert len(cap) == 1
    await r.aclose()


async def test_errors(redis_url: str) -> None:
    with pytest.raises(RedisUnavailableError):
        await capture("redis://127.0.0.1:1/0", duration=1)
    with pytest.raises(ConfigurationError):
        await capture("http://nowhere", duration=1)
    with pytest.raises(ConfigurationError):
        await capture(redis_url)  # neither duration nor count
    with pytest.raises(ConfigurationError):
        await capture(redis_url, count=0)


async def test_reconnect_is_recorded_as_gap(fresh_redis: siotools.RedisServer, key: str) -> None:
    cap = await start_capture(fresh_redis.url, key)
    r = aioredis.from_url(fresh_redis.url)
    await r.client_kill_filter(_type="pubsub")
    ch, p = encode_broadcast(uid="u", data=["after"], prefix=key)

    async def until_back() -> None:
        while not cap.gaps:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(until_back(), 10)
    await r.publish(ch, p)
    await wait_frames(cap)
    cap.stop()
    await cap.wait()
    await r.aclose()
    assert cap.reconnects == 1 and len(cap.gaps) == 1
    assert cap.anomalies()["gaps"] == 1


async def test_pysocketio_channel_only_when_asked(redis_url: str, key: str) -> None:
    r = aioredis.from_url(redis_url)
    channel = f"{key}-pysio"
    body = (
        b'{"method": "emit", "event": "hello", "data": [1], "namespace": "/", '
        b'"room": "lobby", "skip_sid": null, "callback": null, "host_id": "h1"}'
    )
    cap = await start_capture(redis_url, key, pysocketio=channel)
    plain = await start_capture(redis_url, key)
    await r.publish(channel, body)
    (f,) = await wait_frames(cap)
    for c in (cap, plain):
        c.stop()
        await c.wait()
    await r.aclose()
    assert len(plain) == 0
    assert f.dialect is Dialect.PYSOCKETIO and f.kind == "broadcast" and f.event == "hello"
    assert f.row.rooms == ["lobby"] and f.row.uid == "h1" and f.row.args == [1]
