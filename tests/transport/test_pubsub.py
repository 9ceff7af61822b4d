"""Subscriber and Publisher against a real redis-server, including restarts."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from siotools.exceptions import RedisUnavailableError
from siotools.redis_server import RedisServer, free_port
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher, Subscriber


class Inbox:
    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes, bytes | None]] = []
        self.event = asyncio.Event()

    def __call__(self, channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        self.items.append((channel, payload, pattern))
        self.event.set()

    async def wait_for(self, n: int, timeout: float = 5.0) -> None:
        async def until() -> None:
            while len(self.items) < n:
                self.event.clear()
                await self.event.wait()

        await asyncio.wait_for(until(), timeout)


async def test_publish_and_receive_in_order(redis_url: str, key: str) -> None:
    ep = RedisEndpoint.from_url(redis_url)
    inbox = Inbox()
    sub = Subscriber(ep, inbox)
    pub = Publisher(ep)
    await sub.start()
    await pub.start()
    chan = f"{key}#/#".encode()
    await sub.subscribe([chan])
    await sub.psubscribe([f"{key}#/chat#*".encode()])
    for i in range(1000):
        pub.publish(chan, str(i).encode())
    pub.publish(f"{key}#/chat#room#".encode(), b"p")
    await inbox.wait_for(1001)
    assert [p for _, p, _ in inbox.items[:1000]] == [str(i).encode() for i in range(1000)]
    assert inbox.items[1000] == (f"{key}#/chat#room#".encode(), b"p", f"{key}#/chat#*".encode())
    assert await pub.numsub(chan) == 1
    await sub.close()
    await pub.close()


async def test_unsubscribe_stops_delivery_and_numsub(redis_url: str, key: str) -> None:
    ep = RedisEndpoint.from_url(redis_url)
    inbox = Inbox()
    sub = Subscriber(ep, inbox)
    pub = Publisher(ep)
    await sub.start()
    await pub.start()
    a, b = f"{key}-a".encode(), f"{key}-b".encode()
    await sub.subscribe([a, b])
    assert await pub.numsub(a) == 1
    await sub.unsubscribe([a])
    assert await pub.numsub(a) == 0
    assert await pub.publish_wait(a, b"x") == 0
    assert await pub.publish_wait(b, b"y") == 1
    await inbox.wait_for(1)
    assert inbox.items == [(b, b"y", None)]
    await sub.close()
    assert await pub.numsub(b) == 0
    await pub.close()


async def test_restart_restores_every_subscription(fresh_redis: RedisServer) -> None:
    ep = RedisEndpoint.from_url(fresh_redis.url)
    inbox = Inbox()
    errors: list[BaseException] = []
    reconnected = asyncio.Event()
    sub = Subscriber(ep, inbox, on_error=errors.append, on_reconnect=reconnected.set)
    pub = Publisher(ep, on_error=errors.append)
    await sub.start()
    await pub.start()
    await sub.subscribe([b"c1", b"room#x#"])
    await sub.psubscribe([b"p#*"])
    await asyncio.to_thread(fresh_redis.restart)
    await asyncio.wait_for(reconnected.wait(), 10)
    await pub.wait_connected(10)
    assert sub.reconnects == 1
    assert any(isinstance(e, RedisUnavailableError) for e in errors)
    assert await pub.numsub(b"c1") == 1
    assert await pub.numsub(b"room#x#") == 1
    pub.publish(b"p#1", b"after")
    pub.publish(b"room#x#", b"room")
    await inbox.wait_for(2)
    assert {(c, p) for c, p, _ in inbox.items} == {(b"p#1", b"after"), (b"room#x#", b"room")}
    await sub.close()
    await pub.close()


async def test_publishes_while_down_are_sent_after_reconnect(fresh_redis: RedisServer) -> None:
    ep = RedisEndpoint.from_url(fresh_redis.url)
    pub = Publisher(ep, on_error=lambda e: None)
    await pub.start()
    fresh_redis.kill()
    await asyncio.sleep(0.1)
    for i in range(5):
        pub.publish(b"queued", str(i).encode())
    await asyncio.to_thread(fresh_redis.restart)
    inbox = Inbox()
    sub = Subscriber(ep, inbox)
    # subscribe before the publisher's backoff fires, so the replay is heard
    await sub.start()
    await sub.subscribe([b"queued"])
    await pub.wait_connected(10)
    await inbox.wait_for(5)
    assert [p for _, p, _ in inbox.items] == [b"0", b"1", b"2", b"3", b"4"]
    await sub.close()
    await pub.close()


async def test_unreachable_redis_is_one_clear_error() -> None:
    ep = RedisEndpoint.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RedisUnavailableError) as info:
        await Publisher(ep).start()
    text = str(info.value)
    assert text.startswith("Cannot reach Redis at redis://127.0.0.1:")
    assert "\n" not in text


async def test_password_from_url_and_from_client() -> None:
    with RedisServer(extra_args=["--requirepass", "s3cret"]) as server:
        ep = RedisEndpoint.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/0")
        pub = Publisher(ep)
        await pub.start()
        assert await pub.execute(b"PING") == b"PONG"
        await pub.close()
        client = aioredis.Redis(host="127.0.0.1", port=server.port, password="s3cret")
        ep2 = RedisEndpoint.from_client(client)
        assert ep2.password == "s3cret" and ep2.port == server.port
        inbox = Inbox()
        sub = Subscriber(ep2, inbox)
        await sub.start()
        await sub.subscribe([b"x"])
        await client.publish("x", "hello")
        await inbox.wait_for(1)
        assert inbox.items[0][1] == b"hello"
        await sub.close()
        await client.aclose()
        bad = RedisEndpoint.from_url(f"redis://:wrong@127.0.0.1:{server.port}/0")
        with pytest.raises(RedisUnavailableError, match="refused the login"):
            await Publisher(bad).start()


async def test_handler_exception_is_reported_not_fatal(redis_url: str, key: str) -> None:
    ep = RedisEndpoint.from_url(redis_url)
    seen: list[bytes] = []
    errors: list[BaseException] = []

    def handler(channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        if payload == b"boom":
            raise ValueError("bad payload")
        seen.append(payload)

    sub = Subscriber(ep, handler, on_error=errors.append)
    pub = Publisher(ep)
    await sub.start()
    await pub.start()
    chan = key.encode()
    await sub.subscribe([chan])
    pub.publish(chan, b"boom")
    pub.publish(chan, b"ok")
    await pub.flush()
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.01)
    assert seen == [b"ok"]
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    await sub.close()
    await pub.close()


async def test_batch_mode_keeps_order_and_stamps_each_read(redis_url: str, key: str) -> None:
    ep = RedisEndpoint.from_url(redis_url)
    batches: list[tuple[int, list[list[bytes]]]] = []
    sub = Subscriber(ep, on_batch=lambda now, batch: batches.append((now, list(batch))))
    pub = Publisher(ep)
    await sub.start()
    await pub.start()
    await sub.psubscribe([f"{key}#*".encode()])
    await sub.subscribe([f"{key}-plain".encode()])
    for i in range(2000):
        pub.publish(f"{key}#{i % 3}".encode(), str(i).encode())
    pub.publish(f"{key}-plain".encode(), b"plain")
    await pub.flush()
    for _ in range(200):
        if sum(len(b) for _, b in batches) == 2001:
            break
        await asyncio.sleep(0.01)
    replies = [r for _, b in batches for r in b]
    assert [r[3] for r in replies[:2000]] == [str(i).encode() for i in range(2000)]
    assert replies[0][:3] == [b"pmessage", f"{key}#*".encode(), f"{key}#0".encode()]
    assert replies[2000] == [b"message", f"{key}-plain".encode(), b"plain"]
    assert len(batches) < 2001  # several messages per socket read
    stamps = [now for now, _ in batches]
    assert stamps == sorted(stamps)
    with pytest.raises(ValueError):
        Subscriber(ep)
    await sub.close()
    await pub.close()


async def test_second_subscriber_of_a_channel_waits_for_the_same_confirmation(
    redis_url: str, key: str
) -> None:
    ep = RedisEndpoint.from_url(redis_url)
    sub = Subscriber(ep, Inbox())
    pub = Publisher(ep)
    await sub.start()
    await pub.start()
    chan = f"{key}-r".encode()
    confirmation = sub.subscribe_nowait([chan])  # written, not confirmed yet
    assert confirmation is not None and not confirmation.done()
    # A concurrent caller asks for the same channel: nothing new is sent, but it must not
    # return before Redis confirmed the first SUBSCRIBE.
    await sub.subscribe([chan])
    assert confirmation.done()
    assert await pub.numsub(chan) == 1
    await sub.close()
    await pub.close()
