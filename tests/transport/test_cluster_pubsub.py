"""ClusterSubscriber and ClusterPublisher on the session's real Redis Cluster."""

from __future__ import annotations

import asyncio

import pytest

from siotools.redis_cluster import RedisCluster
from siotools.redis_server import RedisServer
from siotools.transport.cluster import (
    ClusterTopology,
    channel_slot,
    parse_cluster_url,
)
from siotools.transport.cluster_pubsub import ClusterPublisher, ClusterSubscriber
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import LinkEvent


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


def seed(cluster: RedisCluster) -> RedisEndpoint:
    return parse_cluster_url(cluster.url + "?cluster=true")[0]


def spread_channels(topology: ClusterTopology, key: str, count: int = 3) -> list[bytes]:
    """Socket.IO-style channels of this test whose slots live on ``count`` different masters."""
    found: dict[str, bytes] = {}
    for name in [f"{key}#/#", f"{key}#/#room#", *(f"{key}#/#room{i}#" for i in range(200))]:
        owner = topology.owner_of(name.encode())
        assert owner is not None
        found.setdefault(owner, name.encode())
        if len(found) == count:
            break
    return list(found.values())


async def test_a_standalone_redis_as_a_cluster_of_one(redis_url: str, key: str) -> None:
    # Sharded pub/sub on a standalone Redis 7, as RA's "[sharded] ... standalone" setups.
    topology = ClusterTopology(RedisEndpoint.from_url(redis_url), standalone_ok=True)
    inbox = Inbox()
    pub = ClusterPublisher(topology)
    await pub.start()
    assert topology.standalone and topology.covered and len(topology.masters) == 1
    info = await pub.execute(b"INFO", b"server")
    if b"redis_version:6." in info:
        pytest.skip("sharded pub/sub needs Redis 7 or later")
    sub = ClusterSubscriber(topology, inbox)
    await sub.start()
    chans = [f"{key}#/#".encode(), f"{key}#/#room#".encode()]
    await sub.ssubscribe(chans)
    await sub.subscribe([f"{key}-request#/#".encode()])
    pub.spublish(chans[0], b"a")
    pub.spublish(chans[1], b"b")
    pub.publish(f"{key}-request#/#".encode(), b"c")
    await inbox.wait_for(3)
    assert sorted(p for _, p, _ in inbox.items) == [b"a", b"b", b"c"]
    assert [await pub.shardnumsub(c) for c in chans] == [1, 1]
    await sub.close()
    await pub.close()


async def test_classic_publish_subscribe_and_numsub(redis_cluster: RedisCluster, key: str) -> None:
    inbox = Inbox()
    sub = ClusterSubscriber(seed(redis_cluster), inbox)
    pub = ClusterPublisher(seed(redis_cluster))
    await sub.start()
    await pub.start()
    chan = f"{key}-request#/#".encode()
    await sub.subscribe([chan])
    await sub.psubscribe([f"{key}#/#*".encode()])
    for i in range(500):
        pub.publish(chan, str(i).encode())
    pub.publish(f"{key}#/#room#".encode(), b"p")
    await inbox.wait_for(501)
    assert [p for _, p, _ in inbox.items[:500]] == [str(i).encode() for i in range(500)]
    assert inbox.items[500] == (f"{key}#/#room#".encode(), b"p", f"{key}#/#*".encode())
    # The subscriber sits on one master; the sum over the masters counts it once.
    assert await pub.numsub(chan) == 1
    await sub.unsubscribe([chan])
    assert await pub.numsub(chan) == 0
    await sub.close()
    await pub.close()


async def test_sharded_across_slots_and_counting(sharded_cluster: RedisCluster, key: str) -> None:
    inbox = Inbox()
    other = Inbox()
    pub = ClusterPublisher(seed(sharded_cluster))
    await pub.start()
    chans = spread_channels(pub.topology, key)
    assert f"{key}#/#".encode() in chans  # the main channel of a sharded namespace
    assert len({channel_slot(c) for c in chans}) == 3
    sub = ClusterSubscriber(
        pub.topology, on_batch=lambda now, batch: [inbox(*r[1:], None) for r in batch]
    )
    sub2 = ClusterSubscriber(seed(sharded_cluster), other)
    await sub.start()
    await sub2.start()
    await sub.ssubscribe(chans)
    await sub2.ssubscribe(chans[:1])
    # Each channel lives on the master of its slot, which is where the subscriber went.
    assert {sub.shard_node(c) for c in chans} == set(pub.topology.masters)
    for i in range(300):
        for c in chans:
            pub.spublish(c, b"%d" % i)
    await inbox.wait_for(900)
    for c in chans:
        assert [p for ch, p, _ in inbox.items if ch == c] == [b"%d" % i for i in range(300)]
    await other.wait_for(300)
    assert {ch for ch, _, _ in other.items} == {chans[0]}
    # SHARDNUMSUB summed over the masters: sub and sub2 on chans[0], sub only elsewhere.
    assert [await pub.shardnumsub(c) for c in chans] == [2, 1, 1]
    # Classic NUMSUB does not see sharded subscribers, and PUBLISH does not reach them.
    assert await pub.numsub(chans[0]) == 0
    assert await pub.spublish_wait(chans[1], b"x") == 1
    await sub.sunsubscribe(chans)
    assert [await pub.shardnumsub(c) for c in chans] == [1, 0, 0]
    await sub.close()
    await sub2.close()
    await pub.close()


async def test_moved_is_followed(sharded_cluster: RedisCluster, key: str) -> None:
    inbox = Inbox()
    pub = ClusterPublisher(seed(sharded_cluster))
    sub = ClusterSubscriber(seed(sharded_cluster), inbox)
    await pub.start()
    await sub.start()
    chan = f"{key}#/#".encode()
    await sub.ssubscribe([chan])
    slot = channel_slot(chan)
    right = pub.topology.owner(slot)
    wrong = next(a for a in pub.topology.masters if a != right)
    pub.topology.moved(slot, wrong)  # a stale map: the node will answer MOVED
    pub.spublish(chan, b"after-moved")
    await inbox.wait_for(1)
    assert inbox.items[0][1] == b"after-moved"
    assert pub.redirected >= 1
    assert pub.topology.owner(slot) == right  # learnt from the MOVED answer
    pub.topology.moved(slot, wrong)
    assert await pub.spublish_wait(chan, b"again") == 1  # a waited command follows it too
    # A subscriber with a stale map is redirected as well, and still ends on the owner.
    sub2 = ClusterSubscriber(seed(sharded_cluster), Inbox())
    await sub2.start()
    other = f"{key}#/#room#".encode()
    sub2.topology.moved(
        channel_slot(other),
        next(a for a in sub2.topology.masters if a != sub2.topology.owner_of(other)),
    )
    await sub2.ssubscribe([other], timeout=5)
    assert sub2.shard_node(other) == pub.topology.owner_of(other)
    await sub2.close()
    await sub.close()
    await pub.close()


async def test_a_failing_handler_loses_nothing_else(
    sharded_cluster: RedisCluster, key: str
) -> None:
    seen: list[bytes] = []
    errors: list[BaseException] = []

    def handler(channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        if payload == b"bad":
            raise ValueError("handler bug")
        seen.append(payload)

    pub = ClusterPublisher(seed(sharded_cluster))
    sub = ClusterSubscriber(pub.topology, handler, on_error=errors.append)
    await pub.start()
    await sub.start()
    chan = f"{key}#/#".encode()
    await sub.ssubscribe([chan])
    for payload in (b"one", b"bad", b"two"):
        pub.spublish(chan, payload)
    for _ in range(100):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.02)
    assert seen == [b"one", b"two"]
    assert [str(e) for e in errors] == ["handler bug"]
    assert sub.shard_node(chan) is not None  # still subscribed on the same connection
    await sub.close()
    await pub.close()


async def test_numsub_counts_a_subscriber_on_a_replica(
    redis_cluster: RedisCluster, key: str
) -> None:
    # A socket.io-redis 5.x node holds one connection, to whichever node its host names; after
    # a failover that node is a replica. It still hears every PUBLISH and answers requests,
    # so the count must include it (ioredis nodes() does; node-redis masters would not).
    replica = next(n for n in redis_cluster.nodes() if not n.master and not n.failed)
    spy = redis_cluster.client(replica.port).pubsub()
    chan = f"{key}-request#/#"
    spy.subscribe(chan)
    spy.get_message(timeout=2)  # the subscribe confirmation
    pub = ClusterPublisher(seed(redis_cluster))
    await pub.start()
    try:
        assert await pub.numsub(chan.encode()) == 1
        pub.publish(chan.encode(), b"hello")
        await pub.flush()
        got = None
        for _ in range(50):
            got = spy.get_message(timeout=0.1)
            if got is not None:
                break
        assert got is not None and got["data"] == b"hello"  # it hears what masters publish
        spy.unsubscribe(chan)
        spy.get_message(timeout=2)
        assert await pub.numsub(chan.encode()) == 0
    finally:
        spy.close()
        await pub.close()


async def test_link_events_are_one_lost_and_one_restored_per_outage(
    fresh_redis: RedisServer, key: str
) -> None:
    # The sharded subscriber reports its outages as the single-Redis Subscriber does:
    # one "lost" when the first connection carrying subscriptions goes, one "restored"
    # once every subscription is confirmed again, whatever number of connections it has.
    events: list[LinkEvent] = []
    topology = ClusterTopology(RedisEndpoint.from_url(fresh_redis.url), standalone_ok=True)
    pub = ClusterPublisher(topology, on_error=lambda exc: None)
    await pub.start()
    info = await pub.execute(b"INFO", b"server")
    if b"redis_version:6." in info:
        pytest.skip("sharded pub/sub needs Redis 7 or later")
    inbox = Inbox()
    sub = ClusterSubscriber(topology, inbox, on_error=lambda exc: None, on_event=events.append)
    await sub.start()
    chans = [f"{key}#/#".encode(), f"{key}#/#room#".encode()]
    await sub.ssubscribe(chans)
    pub.spublish(chans[0], b"a")
    await inbox.wait_for(1)

    async def outage(n: int) -> tuple[LinkEvent, LinkEvent]:
        for _ in range(250):
            if len(events) >= 2 * n:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # nothing more comes
        assert [e.kind for e in events] == ["lost", "restored"] * n
        return events[-2], events[-1]

    # The sharded connection killed (the classic one, with nothing on it, is not).
    await pub.execute(b"CLIENT", b"KILL", b"TYPE", b"pubsub")
    lost, restored = await outage(1)
    assert lost.url == fresh_redis.url and lost.name == sub.name
    assert lost.last_message_at is not None and lost.last_message_at <= lost.at
    assert restored.lost_at == lost.at and restored.gap is not None and restored.gap > 0
    assert (sub.losses, sub.reconnects, sub.last_event) == (1, 1, restored)
    pub.spublish(chans[1], b"b")
    await inbox.wait_for(2)

    # Redis restarted: the classic connection, now with a channel, and the sharded one
    # are lost together: one outage.
    await sub.subscribe([f"{key}-request#/#".encode()])
    await asyncio.to_thread(fresh_redis.restart)
    lost, restored = await outage(2)
    assert restored.gap is not None and restored.gap >= 0
    assert sub.losses == 2 and sub.downtime >= restored.gap
    pub.spublish(chans[0], b"c")
    pub.publish(f"{key}-request#/#".encode(), b"d")
    await inbox.wait_for(4)
    assert sorted(p for _, p, _ in inbox.items) == [b"a", b"b", b"c", b"d"]
    await sub.close()
    await pub.close()
    assert len(events) == 4  # closing is no loss
