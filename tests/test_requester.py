"""The plan runner and the transport choice of the shells, on a real Redis.

One Redis or a Redis Cluster is chosen from the URL (``?cluster=true``), the keyword or
the client given; a sharded dialect always gets the cluster transport (a standalone
Redis 7 as a one-master cluster). Plans' sharded steps go to SPUBLISH/SHARDNUMSUB and
their local steps to the node that runs them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from siotools.dialects import CurrentDialect, ShardedDialect
from siotools.dialects.base import Count, Join, Local, LocalView, Plan
from siotools.exceptions import ConfigurationError
from siotools.requester import Requester, Transport
from siotools.transport.cluster_pubsub import ClusterPublisher, ClusterSubscriber
from siotools.transport.pubsub import Publisher, Subscriber
from siotools.transport.requests import RequestEngine


def test_the_transport_follows_the_url_the_keyword_and_the_dialect() -> None:
    classic, sharded = CurrentDialect(), ShardedDialect()
    plain = Transport("redis://127.0.0.1:7000/0")
    assert not plain.cluster
    assert isinstance(plain.publisher(classic, name="p", on_error=None), Publisher)
    assert isinstance(plain.subscriber(classic, name="s", on_message=print), Subscriber)
    # sharded pub/sub: the cluster transport even on one Redis (one master)
    assert isinstance(plain.publisher(sharded, name="p", on_error=None), ClusterPublisher)
    assert isinstance(plain.subscriber(sharded, name="s", on_message=print), ClusterSubscriber)
    assert plain.topology().standalone_ok
    flagged = Transport("redis://127.0.0.1:7000?cluster=true")
    assert flagged.cluster and not flagged.topology().standalone_ok
    assert isinstance(flagged.publisher(classic, name="p", on_error=None), ClusterPublisher)
    assert Transport("redis://127.0.0.1:7000/0", cluster=True).cluster
    assert not Transport("redis://127.0.0.1:7000/0?cluster=true", cluster=False).cluster
    client = RedisCluster(host="127.0.0.1", port=7001, password="pw")
    seeded = Transport(None, client)
    assert seeded.cluster and seeded.endpoint.port == 7001
    assert seeded.endpoint.password == "pw"
    assert not Transport(None, aioredis.Redis(port=7002)).cluster


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("redis://127.0.0.1:7000/3?cluster=true", "only database 0"),
        ("redis://127.0.0.1:7000/0?cluster=maybe", "is not a boolean"),
    ],
)
def test_bad_cluster_urls_are_one_clear_sentence(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Transport(url)


class NoSockets:
    def namespace_rooms(self, nsp: str) -> None:
        return None

    def is_connected(self, sid: str, nsp: str) -> bool:
        return False

    def rooms_of(self, sid: str, nsp: str) -> list[Any]:
        return []


async def test_sharded_steps_on_a_standalone_redis_7(redis_url: str, key: str) -> None:
    t = Transport(redis_url)
    d = ShardedDialect(key)
    pub = t.publisher(d, name="p", on_error=None)
    got: list[tuple[bytes, bytes]] = []
    sub = t.subscriber(d, name="s", on_message=lambda ch, p, _: got.append((ch, p)))
    await pub.start()
    await sub.start()
    try:
        assert isinstance(sub, ClusterSubscriber)
        main = d.count_channel("/")
        await sub.ssubscribe([main])
        local: list[Local] = []

        async def on_local(step: Local) -> None:
            local.append(step)

        node = Requester(pub, RequestEngine(), timeout=1.0, counted=True, local=on_local)
        assert await node.run(d.server_count("/")) == 1  # SHARDNUMSUB: the subscriber
        # a socketsJoin: SPUBLISHed (one sharded subscriber heard it), then applied here
        assert await node.run(d.sockets_join("/", d.new_uid(), [], [], ["r"])) == 1
        assert len(local) == 1
        assert local[0].actions(NoSockets()) == []
        asker = Requester(pub, RequestEngine(), timeout=1.0, counted=False)
        assert await asker.run(d.sockets_join("/", "", [], [], ["r"])) == 1  # skipped: no node
        for _ in range(200):  # SPUBLISH answered; the subscriber reads them a moment later
            if len(got) >= 2:
                break
            await asyncio.sleep(0.01)
        assert [ch for ch, _ in got] == [main, main]
    finally:
        await sub.close()
        await pub.close()


async def test_a_sharded_step_on_a_plain_publisher_is_refused(redis_url: str) -> None:
    pub = Publisher(Transport(redis_url).endpoint, name="p")
    await pub.start()
    try:

        def plan() -> Plan[int]:
            n: int = yield Count(b"k#/#", sharded=True)
            return n

        with pytest.raises(ConfigurationError, match="needs the Redis Cluster transport"):
            await Requester(pub, RequestEngine(), timeout=1.0, counted=False).run(plan())
    finally:
        await pub.close()


def test_local_steps_see_the_view() -> None:
    view: LocalView = NoSockets()
    step = Local(lambda v: [Join("/", ("a",), ("r",))] if v is view else [])
    assert step.actions(view) == [Join("/", ("a",), ("r",))]
