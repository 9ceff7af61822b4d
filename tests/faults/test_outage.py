"""Outages between a node and Redis, made with the fault proxy or by restarting Redis.

Requests made while Redis is unreachable fail within their timeout saying so, and are
never sent later; queued broadcasts are delivered after the subscribers are back; a
subscriber kicked by Redis reports the gap; reconnects take at most about 0.4 s after
Redis is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from siotools import RequestTimeout
from siotools.exceptions import RedisUnavailableError, RequestUndelivered
from siotools.pynode import PythonNode
from siotools.redis_server import RedisServer
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher, Subscriber
from tests.adapter.pyclients import Client
from tests.faults.proxy import FaultProxy

if TYPE_CHECKING:
    from siotools.transport.pubsub import LinkEvent

TIMEOUT = 1.0


async def until_nodes(node: PythonNode, count: int, timeout: float = 5.0) -> None:
    """Wait until ``node`` counts ``count`` nodes (its own subscriber reconnects too)."""
    end = time.monotonic() + timeout
    while True:
        try:
            if await node.adapter.node_count() == count:
                return
        except RedisUnavailableError:
            pass
        assert time.monotonic() < end, f"not {count} nodes after {timeout}s"
        await asyncio.sleep(0.05)


@pytest.fixture
async def nodes(
    proxy: FaultProxy, fresh_redis: RedisServer, key: str
) -> AsyncIterator[tuple[PythonNode, PythonNode]]:
    """Node ``a`` reaches Redis through the proxy, node ``b`` directly."""
    a = PythonNode(proxy.url(), key=key, requests_timeout=TIMEOUT)
    b = PythonNode(fresh_redis.url, key=key, requests_timeout=TIMEOUT)
    a.adapter.on_error(lambda exc: None)  # losses are expected here
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


async def test_request_during_outage_fails_in_time_and_is_never_sent_later(
    nodes: tuple[PythonNode, PythonNode], proxy: FaultProxy
) -> None:
    a, b = nodes
    client = await Client().connect(b.url)
    sid = client.sid()
    proxy.cut()
    await asyncio.sleep(0.1)
    start = time.monotonic()
    with pytest.raises(RedisUnavailableError) as info:
        await a.adapter.remote_disconnect(sid)
    took = time.monotonic() - start
    assert isinstance(info.value, RequestUndelivered)
    assert not isinstance(info.value, RequestTimeout)  # "no node has it" would be a lie
    assert "unreachable" in str(info.value)
    assert took < TIMEOUT + 0.5, took
    proxy.restore()
    # Node a comes back (its publisher answers) and the request it dropped stays dropped.
    await until_nodes(a, 2)
    await asyncio.sleep(1.0)
    assert client.disconnected == []
    assert await a.adapter.clients() == [sid]
    await client.close()


async def test_cluster_wide_request_during_outage_fails_in_time(
    nodes: tuple[PythonNode, PythonNode], proxy: FaultProxy
) -> None:
    a, _ = nodes
    proxy.cut()
    await asyncio.sleep(0.1)
    for ask in (a.adapter.clients, a.adapter.all_rooms, a.adapter.node_count):
        start = time.monotonic()
        with pytest.raises(RedisUnavailableError, match="unreachable"):
            await ask()
        took = time.monotonic() - start
        assert took < TIMEOUT + 0.5, (ask, took)
    proxy.restore()
    await until_nodes(a, 2)


async def test_stalled_link_fails_requests_in_time_and_never_delivers_them_later(
    nodes: tuple[PythonNode, PythonNode], proxy: FaultProxy
) -> None:
    a, b = nodes
    client = await Client().connect(b.url)
    sid = client.sid()
    proxy.stall()  # connections stay open, nothing gets through
    for ask in (
        lambda: a.adapter.client_rooms(sid),
        lambda: a.adapter.remote_disconnect(sid),
        a.adapter.all_rooms,
    ):
        start = time.monotonic()
        with pytest.raises(RedisUnavailableError):
            await asyncio.wait_for(ask(), 10)
        assert time.monotonic() - start < TIMEOUT + 0.5
    await asyncio.sleep(0.2)
    proxy.restore()
    await until_nodes(a, 2)
    await asyncio.sleep(1.0)
    # The stalled link was reset at the deadline: the kernel never delivered the request.
    assert client.disconnected == []
    assert await b.adapter.clients() == [sid]
    await client.close()


async def test_close_wakes_callers_waiting_for_redis(proxy: FaultProxy) -> None:
    pub = Publisher(RedisEndpoint.from_url(proxy.url()), on_error=lambda e: None)
    await pub.start()
    proxy.cut()
    await asyncio.sleep(0.1)
    waiting = asyncio.create_task(pub.execute(b"PING", timeout=30))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    start = time.monotonic()
    await pub.close()
    with pytest.raises(RedisUnavailableError, match="closed"):
        await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - start < 1.0


async def test_reconnect_is_back_within_a_second_of_redis(fresh_redis: RedisServer) -> None:
    ep = RedisEndpoint.from_url(fresh_redis.url)
    events: list[LinkEvent] = []
    restored = asyncio.Event()

    def on_event(event: LinkEvent) -> None:
        events.append(event)
        if event.kind == "restored":
            restored.set()

    sub = Subscriber(ep, lambda *a: None, on_event=on_event, on_error=lambda e: None)
    await sub.start()
    await sub.subscribe([b"c"])
    for outage in (4.0, 2.5):
        restored.clear()
        fresh_redis.kill()
        await asyncio.sleep(outage)  # long enough for the backoff to reach its cap
        await asyncio.to_thread(fresh_redis.restart)
        back = time.time()
        await asyncio.wait_for(restored.wait(), 10)
        assert events[-1].at - back <= 1.0, events[-1].at - back
        assert events[-1].gap is not None and events[-1].gap >= outage
    assert [e.kind for e in events] == ["lost", "restored", "lost", "restored"]
    assert sub.losses == 2 and sub.reconnects == 2 and sub.downtime >= 6.5
    await sub.close()


async def test_broadcasts_queued_during_a_restart_arrive_after_resubscription(
    fresh_redis: RedisServer,
) -> None:
    ep = RedisEndpoint.from_url(fresh_redis.url)
    got: list[bytes] = []
    sub = Subscriber(ep, lambda c, p, _: got.append(p), on_error=lambda e: None)
    pub = Publisher(ep, on_error=lambda e: None)
    await sub.start()
    await pub.start()
    await sub.subscribe([b"news"])
    sent = 0

    async def produce(seconds: float) -> None:
        nonlocal sent
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pub.publish(b"news", str(sent).encode())
            sent += 1
            await asyncio.sleep(0.002)  # about 500 msg/s

    await produce(0.5)
    fresh_redis.kill()
    await produce(3.0)
    await asyncio.to_thread(fresh_redis.restart)
    await produce(1.5)
    for _ in range(300):
        if len(set(got)) >= sent:
            break
        await asyncio.sleep(0.02)
    # Nothing lost, in order; a publish in flight at the kill may come twice (it is sent
    # again when Redis never acknowledged it), never more than a few.
    assert list(dict.fromkeys(got)) == [str(i).encode() for i in range(sent)]
    assert len(got) - sent <= 5
    assert pub.dropped == 0 and pub.replayed > 1000
    await sub.close()
    await pub.close()


async def test_slow_subscriber_kicked_by_redis_reports_the_gap(
    proxy: FaultProxy, fresh_redis: RedisServer
) -> None:
    admin = Publisher(RedisEndpoint.from_url(fresh_redis.url))
    await admin.start()
    await admin.execute(b"CONFIG", b"SET", b"client-output-buffer-limit", b"pubsub 256kb 0 0")
    events: list[LinkEvent] = []
    got: list[bytes] = []
    sub = Subscriber(
        RedisEndpoint.from_url(proxy.url()),
        lambda c, p, _: got.append(p),
        on_event=events.append,
        on_error=lambda e: None,
    )
    await sub.start()
    await sub.subscribe([b"flood"])
    admin.publish(b"flood", b"first")
    await admin.flush()
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.02)
    proxy.stall()  # the subscriber reads nothing: Redis's output buffer for it grows
    blob = b"x" * 16384
    for _ in range(3000):  # about 48 MB, far over the limit and the socket buffers
        admin.publish(b"flood", blob)
    await admin.flush()
    await asyncio.sleep(0.5)
    proxy.restore()
    for _ in range(250):
        if [e.kind for e in events] == ["lost", "restored"]:
            break
        await asyncio.sleep(0.02)
    assert [e.kind for e in events] == ["lost", "restored"]
    lost, restored = events
    assert restored.gap is not None and restored.gap > 0
    assert restored.lost_at == lost.at
    assert lost.last_message_at is not None and lost.last_message_at <= lost.at
    assert sub.losses == 1 and sub.reconnects == 1
    assert await admin.numsub(b"flood") == 1  # resubscribed
    await sub.close()
    await admin.close()


async def test_node_counts_and_reports_a_lost_and_restored_subscription(
    proxy: FaultProxy, fresh_redis: RedisServer, key: str
) -> None:
    a = PythonNode(proxy.url(), key=key)
    b = PythonNode(fresh_redis.url, key=key)
    errors: list[BaseException] = []
    a.adapter.on_error(errors.append)
    await a.start()
    await b.start()
    client = await Client().connect(a.url)
    proxy.cut()
    await asyncio.sleep(1.0)
    proxy.restore()
    for _ in range(150):
        if a.adapter.stats["subscription_restored"] == 1:
            break
        await asyncio.sleep(0.02)
    assert a.adapter.stats["subscription_lost"] == 1
    assert a.adapter.stats["subscription_restored"] == 1
    assert a.adapter.stats["subscription_gap_ms"] >= 900
    assert any("Lost the connection" in str(e) for e in errors)
    await until_nodes(b, 2)
    await b.sio.emit("after", 1)
    assert await client.wait_event("after") == [[1]]
    await client.close()
    await a.stop()
    await b.stop()


async def test_no_task_or_connection_left_after_close(proxy: FaultProxy) -> None:
    ep = RedisEndpoint.from_url(proxy.url())
    before = asyncio.all_tasks()
    sub = Subscriber(ep, lambda *a: None, on_error=lambda e: None)
    pub = Publisher(ep, on_error=lambda e: None)
    await sub.start()
    await pub.start()
    await sub.subscribe([b"x"])
    proxy.cut()
    await asyncio.sleep(0.3)
    pub.publish(b"x", b"queued")
    proxy.restore()
    await pub.wait_connected(5)
    await sub.close()
    await pub.close()
    await asyncio.sleep(0.1)
    assert asyncio.all_tasks() - before == set()
    assert proxy.links == 0


async def test_slow_link_is_not_mistaken_for_an_outage(
    nodes: tuple[PythonNode, PythonNode], proxy: FaultProxy
) -> None:
    a, b = nodes
    client = await Client().connect(b.url)
    proxy.set_delay(0.2)  # 0.4 s round trips, under the 1 s request timeout
    start = time.monotonic()
    assert await a.adapter.clients() == [client.sid()]
    assert await a.adapter.client_rooms(client.sid()) == [client.sid()]
    assert time.monotonic() - start > 0.8  # the delay really applied (two requests)
    proxy.set_delay(0.0)
    assert a.adapter.stats["subscription_lost"] == 0
    await client.close()


async def test_throttled_subscriber_gets_everything_in_order(proxy: FaultProxy) -> None:
    events: list[LinkEvent] = []
    got: list[bytes] = []
    sub = Subscriber(
        RedisEndpoint.from_url(proxy.url()), lambda c, p, _: got.append(p), on_event=events.append
    )
    pub = Publisher(RedisEndpoint.from_url(proxy.url()))
    await sub.start()
    await pub.start()
    await sub.subscribe([b"slow"])
    proxy.throttle(256_000)  # bytes per second, each direction
    for i in range(200):
        pub.publish(b"slow", str(i).encode() + b"." * 2000)
    await pub.flush()
    for _ in range(400):
        if len(got) == 200:
            break
        await asyncio.sleep(0.02)
    proxy.throttle(None)
    assert [p.split(b".", 1)[0] for p in got] == [str(i).encode() for i in range(200)]
    assert events == []
    await sub.close()
    await pub.close()
