"""Failover and slot migration under steady traffic, on the session's real Redis Cluster.

The figures (time from the kill to the first delivered message, messages lost) are
printed; run with ``-s`` to see them. They are measured, not asserted: the assertions
are that delivery resumes, nothing is delivered twice, and the steady state after the
fault is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from siotools.redis_cluster import RedisCluster
from siotools.transport.cluster import channel_slot, parse_cluster_url
from siotools.transport.cluster_pubsub import ClusterPublisher, ClusterSubscriber

RATE = 200  # messages per second on each channel


class Received:
    def __init__(self) -> None:
        self.at: dict[bytes, list[tuple[int, float]]] = {}
        self.event = asyncio.Event()

    def __call__(self, channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        self.at.setdefault(channel, []).append((int(payload), time.monotonic()))
        self.event.set()

    def seqs(self, channel: bytes) -> list[int]:
        return [s for s, _ in self.at.get(channel, [])]

    def first_after(self, channel: bytes, t: float) -> float | None:
        return next((ts for _, ts in self.at.get(channel, []) if ts > t), None)

    async def until(self, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            remaining = deadline - time.monotonic()
            assert remaining > 0, "delivery did not resume in time"
            self.event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.event.wait(), min(remaining, 0.2))


async def steady(
    pub: ClusterPublisher,
    shard: bytes,
    classic: bytes | None,
    sent: list[float],
    stop: asyncio.Event,
) -> None:
    """Publish sequence numbers at RATE per second until ``stop`` is set."""
    start = time.monotonic()
    while not stop.is_set():
        seq = len(sent)
        sent.append(time.monotonic())
        pub.spublish(shard, b"%d" % seq)
        if classic is not None:
            pub.publish(classic, b"%d" % seq)
        await asyncio.sleep(max(0.0, start + (seq + 1) / RATE - time.monotonic()))


def check_delivery(name: str, got: list[int], sent: int) -> int:
    """Assert no duplicates and a complete tail; return how many were lost."""
    assert len(got) == len(set(got)), f"{name}: a message was delivered twice"
    lost = sent - len(set(got))
    tail = set(range(max(0, sent - RATE // 2), sent))
    assert tail <= set(got), f"{name}: the steady state after the fault is incomplete"
    return lost


async def test_failover_of_a_master_restores_delivery(
    owned_redis_cluster: RedisCluster, key: str
) -> None:
    cluster = owned_redis_cluster
    ep = parse_cluster_url(cluster.url, cluster=True)[0]
    inbox = Received()
    errors: list[BaseException] = []
    sub = ClusterSubscriber(ep, inbox, on_error=errors.append)
    pub = ClusterPublisher(ep, on_error=errors.append)
    await sub.start()
    await pub.start()
    # A sharded channel on the very master the classic subscription sits on: one kill
    # tests both restorations.
    home = f"{sub.classic_endpoint.host}:{sub.classic_endpoint.port}"
    shard = next(
        c
        for c in (f"{key}#/#room{i}#".encode() for i in range(2000))
        if sub.topology.owner_of(c) == home
    )
    classic = f"{key}-request#/#".encode()
    await sub.ssubscribe([shard])
    await sub.subscribe([classic])
    assert sub.shard_node(shard) == home

    replica = next(
        n
        for n in cluster.nodes()
        if n.master_id == cluster.master_of_slot(channel_slot(shard)).node_id
    )
    rep_addr = f"{replica.host}:{replica.port}"

    async def on_replica_at() -> float:
        while sub.shard_node(shard) != rep_addr:
            await asyncio.sleep(0.005)
        return time.monotonic()

    sent: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(steady(pub, shard, classic, sent, stop))
    await asyncio.sleep(1.0)
    moved = asyncio.create_task(on_replica_at())
    victim = cluster.kill_master(channel_slot(shard))
    t_kill = time.monotonic()
    assert f"{victim.host}:{victim.port}" == home

    # When the cluster itself finished the failover (polled by the fixture, 50 ms steps).
    def failover_done() -> float:
        cluster.wait_failover(victim)
        return time.monotonic()

    promoted = asyncio.create_task(asyncio.to_thread(failover_done))
    await inbox.until(lambda: inbox.first_after(shard, t_kill + 0.01) is not None, 30)
    await inbox.until(lambda: inbox.first_after(classic, t_kill + 0.01) is not None, 30)
    t_promoted = await promoted
    t_replica = await asyncio.wait_for(moved, 10)
    t_shard = inbox.first_after(shard, t_kill + 0.01)
    t_classic = inbox.first_after(classic, t_kill + 0.01)
    assert t_shard is not None and t_classic is not None
    await asyncio.sleep(1.0)
    stop.set()
    await task
    await pub.flush()
    total = len(sent)
    await inbox.until(lambda: total - 1 in inbox.seqs(shard), 10)
    await inbox.until(lambda: total - 1 in inbox.seqs(classic), 10)

    lost_shard = check_delivery("sharded", inbox.seqs(shard), total)
    lost_classic = check_delivery("classic", inbox.seqs(classic), total)
    # The subscription waited on the victim's replica, which the cluster then promoted.
    assert sub.shard_node(shard) == rep_addr
    assert sub.topology.owner_of(shard) == rep_addr
    assert await pub.shardnumsub(shard) == 1  # counted again, on the promoted replica
    assert await pub.numsub(classic) == 1  # the classic subscription moved to a master
    assert any("Lost the connection" in str(e) for e in errors)
    assert sub.reconnects >= 1 and pub.reconnects >= 1
    print(
        f"\nfailover at {RATE}/s: kill -> subscribed on the replica {t_replica - t_kill:.3f}s, "
        f"kill -> replica promoted {t_promoted - t_kill:.3f}s, "
        f"kill -> first sharded message {t_shard - t_kill:.3f}s, "
        f"kill -> first classic message {t_classic - t_kill:.3f}s; "
        f"lost {lost_shard} sharded, {lost_classic} classic of {total} each; "
        f"publisher in flight at the kill {pub.lost_in_flight}, "
        f"subscriber restorations {sub.reconnects}"
    )
    await sub.close()
    await pub.close()


async def test_slot_migration_keeps_delivery(owned_redis_cluster: RedisCluster, key: str) -> None:
    cluster = owned_redis_cluster
    ep = parse_cluster_url(cluster.url, cluster=True)[0]
    inbox = Received()
    errors: list[BaseException] = []
    sub = ClusterSubscriber(ep, inbox, on_error=errors.append)
    pub = ClusterPublisher(ep, on_error=errors.append)
    await sub.start()
    await pub.start()
    shard = f"{key}#/#".encode()
    slot = channel_slot(shard)
    await sub.ssubscribe([shard])
    source = sub.shard_node(shard)
    target = next(m for m in cluster.masters() if f"{m.host}:{m.port}" != source)

    sent: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(steady(pub, shard, None, sent, stop))
    await asyncio.sleep(0.5)
    await asyncio.to_thread(cluster.migrate_slot, slot, target.port)
    t_moved = time.monotonic()
    await inbox.until(lambda: inbox.first_after(shard, t_moved + 0.01) is not None, 10)
    await asyncio.sleep(0.5)
    stop.set()
    await task
    await pub.flush()
    total = len(sent)
    await inbox.until(lambda: total - 1 in inbox.seqs(shard), 10)
    lost = check_delivery("migrated", inbox.seqs(shard), total)
    assert sub.shard_node(shard) == f"{target.host}:{target.port}"
    assert await pub.shardnumsub(shard) == 1
    assert any("dropped the sharded subscription" in str(e) for e in errors)
    print(
        f"\nslot migration at {RATE}/s: lost {lost} of {total}; "
        f"publishes redirected {pub.redirected}; re-subscribed {sub.moves} channel(s)"
    )
    await sub.close()
    await pub.close()
    # Leave the session's cluster as it was.
    await asyncio.to_thread(cluster.migrate_slot, slot, int(str(source).rsplit(":", 1)[1]))


async def test_ask_is_followed_during_a_migration(
    owned_redis_cluster: RedisCluster, key: str
) -> None:
    cluster = owned_redis_cluster
    pub = ClusterPublisher(parse_cluster_url(cluster.url, cluster=True)[0])
    await pub.start()
    name = f"{key}-ask".encode()
    slot = channel_slot(name)
    source = cluster.master_of_slot(slot)
    target = next(m for m in cluster.masters() if m.node_id != source.node_id)
    src, dst = cluster.client(source.port), cluster.client(target.port)
    try:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        # The key is not on the source, so the source answers ASK; the target serves
        # the command only after ASKING (without it, it would answer MOVED back).
        assert await pub.execute(b"SET", name, b"v", channel=name) == b"OK"
        assert pub.topology.owner(slot) == f"{source.host}:{source.port}"  # ASK: not moved
        assert src.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        pipe = dst.pipeline(transaction=False)  # one connection: ASKING applies to it
        pipe.execute_command("ASKING")
        pipe.execute_command("GET", name)
        pipe.execute_command("ASKING")
        pipe.execute_command("DEL", name)
        assert pipe.execute()[1::2] == [b"v", 1]  # it was written on the target
    finally:
        for conn in (src, dst):
            conn.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        src.close()
        dst.close()
        await pub.close()
