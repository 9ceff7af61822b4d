"""``redis+sentinel://`` against real Sentinels: a master, a replica and three Sentinels."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from siotools.exceptions import RedisUnavailableError
from siotools.redis_server import RedisSentinel, RedisServer, free_port
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher, Subscriber


def test_sentinel_url_forms() -> None:
    ep = RedisEndpoint.from_url("redis+sentinel://u:pw@h1:26379,h2:26380/2/cache")
    assert ep.sentinels == (("h1", 26379), ("h2", 26380))
    assert (ep.service_name, ep.db, ep.username, ep.password) == ("cache", 2, "u", "pw")
    assert ep.url == "redis+sentinel://u:***@h1:26379,h2:26380/2/cache"
    assert RedisEndpoint.from_url("redis+sentinel://h:26379/cache").service_name == "cache"
    assert RedisEndpoint.from_url("redis+sentinel://h:26379/cache/3").db == 3
    default = RedisEndpoint.from_url("redis+sentinel://h:26379")
    assert (default.service_name, default.db) == ("mymaster", 0)
    assert RedisEndpoint.from_url("redis+sentinel://h/x").sentinels == (("h", 26379),)
    assert RedisEndpoint.from_url("rediss+sentinel://h:1/0/m?ssl_cert_reqs=none").tls


def test_from_a_redis_py_sentinel_client() -> None:
    from redis.asyncio.sentinel import Sentinel

    client = Sentinel([("s1", 26379), ("s2", 26380)]).master_for(
        "cache", password="pw", username="u", db=2
    )
    ep = RedisEndpoint.from_client(client)
    assert (ep.sentinels, ep.service_name, ep.db, ep.username, ep.password) == (
        (("s1", 26379), ("s2", 26380)),
        "cache",
        2,
        "u",
        "pw",
    )


def wait_until(check: Any, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def sentinel_setup() -> Iterator[tuple[RedisServer, RedisServer, list[RedisSentinel]]]:
    with RedisServer() as master, RedisServer(replica_of=master.port) as replica:
        sentinels = [RedisSentinel(master.port, quorum=2) for _ in range(3)]
        try:
            for s in sentinels:
                s.start()
            info = redis.Redis(port=replica.port)
            wait_until(lambda: info.info("replication")["master_link_status"] == "up", "sync")
            info.close()
            for s in sentinels:
                client = redis.Redis(port=s.port)
                # Each Sentinel knows the replica and the two other Sentinels before the
                # master dies, so the failover is voted, as in production.
                wait_until(
                    lambda c=client: (
                        len(c.sentinel_slaves("mymaster")) == 1
                        and len(c.sentinel_sentinels("mymaster")) == 2
                    ),
                    "the Sentinels to discover each other",
                )
                client.close()
            yield master, replica, sentinels
        finally:
            for s in sentinels:
                s.stop()


async def test_failover_resubscribes_on_the_new_master(
    sentinel_setup: tuple[RedisServer, RedisServer, list[RedisSentinel]],
) -> None:
    master, replica, sentinels = sentinel_setup
    dead = free_port()  # a Sentinel that is down is skipped
    hosts = ",".join(f"127.0.0.1:{p}" for p in [dead, *(s.port for s in sentinels)])
    ep = RedisEndpoint.from_url(f"redis+sentinel://{hosts}/0/mymaster")
    got: list[bytes] = []
    restored = asyncio.Event()
    sub = Subscriber(
        ep,
        lambda c, p, _: got.append(p),
        on_error=lambda e: None,
        on_event=lambda e: restored.set() if e.kind == "restored" else None,
    )
    pub = Publisher(ep, on_error=lambda e: None)
    await sub.start()
    await pub.start()
    await sub.subscribe([b"news"])
    assert (await pub.execute(b"CONFIG", b"GET", b"port"))[1] == str(master.port).encode()
    assert await pub.publish_wait(b"news", b"before") == 1
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.02)
    assert got == [b"before"]
    master.kill()
    await asyncio.wait_for(restored.wait(), 60)
    await pub.wait_connected(30)
    assert (await pub.execute(b"CONFIG", b"GET", b"port"))[1] == str(replica.port).encode()
    assert (await pub.execute(b"ROLE"))[0] == b"master"
    for _ in range(100):
        if await pub.numsub(b"news") == 1:
            break
        await asyncio.sleep(0.05)
    assert await pub.publish_wait(b"news", b"after") == 1
    for _ in range(100):
        if got == [b"before", b"after"]:
            break
        await asyncio.sleep(0.02)
    assert got == [b"before", b"after"]
    assert sub.reconnects == 1
    await sub.close()
    await pub.close()


async def test_no_sentinel_answers_is_one_clear_error() -> None:
    ep = RedisEndpoint.from_url(f"redis+sentinel://127.0.0.1:{free_port()}/0/mymaster")
    with pytest.raises(RedisUnavailableError) as info:
        await Publisher(ep).start()
    assert "No Sentinel of redis+sentinel://" in str(info.value)
    assert "connection refused" in str(info.value)
