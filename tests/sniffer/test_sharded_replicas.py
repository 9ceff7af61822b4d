"""MONITOR on a Redis Cluster's replicas: what clients send to a replica is heard once.

A client may send ``PUBLISH`` (and, after ``READONLY``, ``SPUBLISH``) to a replica:
node-redis 4 ``createCluster({useReplicas: true})`` does. The replica broadcasts it over
the cluster bus and no master's MONITOR shows it. A replica's MONITOR also shows what its
master replicates to it, under the replication link's address: those lines must not be
reported a second time. Everything here runs on the session's real Redis Cluster (3
masters, 3 replicas) and, for the Node part, real node-redis 4 clients.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from siotools.nodepeer import NodePeer
from siotools.redis_cluster import ClusterNodeInfo, RedisCluster
from siotools.redis_server import RedisServer
from siotools.sniffer import start_capture
from siotools.sniffer.sharded import ClusterMonitorSource
from siotools.transport.cluster import channel_slot
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.monitor import Monitor, replica_link
from tests.nodepeer.fixtures import InstallFn
from tests.sniffer.helpers import wait_frames
from tests.sniffer.shards import until

Heard = tuple[bytes, bytes, bool]
"""``(channel, payload, sharded)`` as the source's sink got it."""


def _addr(node: ClusterNodeInfo) -> str:
    return f"{node.host}:{node.port}"


def _pairs(rc: RedisCluster) -> list[tuple[ClusterNodeInfo, ClusterNodeInfo]]:
    """Every ``(replica, its master)`` of the cluster, sorted by the replica's port."""
    nodes = [n for n in rc.nodes() if not n.failed]
    masters = {n.node_id: n for n in nodes if n.master}
    pairs = [(n, masters[n.master_id]) for n in nodes if not n.master and n.master_id]
    return sorted(pairs, key=lambda p: p[0].port)


def _channel_on(key: str, master: ClusterNodeInfo) -> str:
    """A namespace's main channel of ``key`` whose slot ``master`` serves."""
    for i in range(10_000):
        channel = f"{key}#/r{i}#"
        if channel_slot(channel.encode()) in master.slots:
            return channel
    raise AssertionError(f"no channel of {key!r} on {_addr(master)}")


@pytest.fixture
async def clients(sharded_cluster: RedisCluster) -> AsyncIterator[dict[int, aioredis.Redis]]:
    """A redis-py client on every node, by port (a replica's answers to READONLY)."""
    out = {p: aioredis.Redis(port=p) for p in sharded_cluster.ports}
    try:
        yield out
    finally:
        for c in out.values():
            await c.aclose()


async def test_replica_monitor_drops_what_its_master_replicates(
    sharded_cluster: RedisCluster, clients: dict[int, aioredis.Redis]
) -> None:
    replica, master = _pairs(sharded_cluster)[0]
    endpoint = RedisEndpoint.from_url(f"redis://{_addr(replica)}/0")
    link = await replica_link(endpoint)
    # What MONITOR shows for the replicated commands: the master's own address.
    assert link.master == _addr(master) and link.up
    assert link.clients == {_addr(master).encode()}
    of_master = await replica_link(RedisEndpoint.from_url(f"redis://{_addr(master)}/0"))
    assert of_master.master is None and not of_master.clients
    everything: list[list[bytes]] = []
    kept: list[list[bytes]] = []
    raw = Monitor(endpoint, lambda _ts, args: everything.append(args))
    filtered = Monitor(endpoint, lambda _ts, args: kept.append(args), ignore_clients=link.clients)
    await raw.start()
    await filtered.start()
    try:
        key = "{" + _channel_on("mon-repl", master) + "}"
        m = clients[master.port]
        await m.set(key + "s", b"v")
        await m.expire(key + "s", 100)
        await m.xadd(key + "x", {"a": "b"})
        assert await m.execute_command("WAIT", 1, 5000) >= 1  # the replica has them all
        # Sent to the replica by a client: shown, after everything replicated before.
        await clients[replica.port].publish("mon-repl-marker", b"end")
        for seen in (everything, kept):
            await until(lambda seen=seen: [b"PUBLISH", b"mon-repl-marker", b"end"] in seen)
    finally:
        await raw.close()
        await filtered.close()
    verbs = [a[0].upper() for a in everything]
    assert {b"SET", b"PEXPIREAT", b"XADD"} <= set(verbs), everything  # replicated, shown
    assert not {b"SET", b"PEXPIREAT", b"XADD", b"EXPIRE"} & {a[0].upper() for a in kept}, kept
    assert kept.count([b"PUBLISH", b"mon-repl-marker", b"end"]) == 1


async def test_standalone_replica_monitor_drops_a_replicated_publish() -> None:
    # Without cluster mode a PUBLISH is replicated: the replica's MONITOR shows it too.
    with RedisServer() as master, RedisServer(replica_of=master.port) as replica:
        endpoint = RedisEndpoint.from_url(replica.url)
        m = aioredis.Redis(port=master.port)
        r = aioredis.Redis(port=replica.port)
        try:
            for _ in range(200):  # the link comes up once the first sync is done
                if (await r.info("replication")).get("master_link_status") == "up":
                    break
                await asyncio.sleep(0.05)
            link = (await replica_link(endpoint)).clients
            assert link == {f"127.0.0.1:{master.port}".encode()}
            everything: list[list[bytes]] = []
            kept: list[list[bytes]] = []
            raw = Monitor(endpoint, lambda _ts, args: everything.append(args))
            filtered = Monitor(endpoint, lambda _ts, args: kept.append(args), ignore_clients=link)
            await raw.start()
            await filtered.start()
            try:
                await m.publish("socket.io#/#", b"from-master")
                assert await m.execute_command("WAIT", 1, 5000) == 1
                await r.publish("socket.io#/#", b"from-replica")
                for seen in (everything, kept):
                    await until(
                        lambda seen=seen: [b"PUBLISH", b"socket.io#/#", b"from-replica"] in seen
                    )
            finally:
                await raw.close()
                await filtered.close()
        finally:
            await m.aclose()
            await r.aclose()
    assert [b"PUBLISH", b"socket.io#/#", b"from-master"] in everything  # replicated, shown
    published = [a for a in kept if a[0] == b"PUBLISH"]
    assert published == [[b"PUBLISH", b"socket.io#/#", b"from-replica"]], kept


async def test_cluster_monitor_hears_publish_sent_to_replicas_once(
    sharded_cluster: RedisCluster, clients: dict[int, aioredis.Redis], key: str
) -> None:
    rc = sharded_cluster
    pairs = _pairs(rc)
    assert len(pairs) == 3
    heard: list[Heard] = []

    def sink(_now: int, batch: list[list[bytes]], sharded: bool) -> None:
        heard.extend((r[2], r[3], sharded) for r in batch)

    source = ClusterMonitorSource(RedisEndpoint.from_url(rc.url), key, sink)
    with pytest.warns(RuntimeWarning, match="MONITOR"):
        await source.start()
    expected: list[Heard] = []
    broadcast = f"{key}#/#"
    try:
        assert source.masters == sorted(_addr(m) for m in rc.masters())
        assert source.replicas == sorted(_addr(r) for r, _ in pairs)
        for replica, master in pairs:
            tag = str(replica.port).encode()
            channel = _channel_on(key, master)
            rep, mas = clients[replica.port], clients[master.port]
            # Sent to the replica: a PUBLISH, and a SPUBLISH after READONLY.
            await rep.publish(broadcast, b"to-replica " + tag)
            pipe = rep.pipeline(transaction=False)
            pipe.execute_command("READONLY")
            pipe.execute_command("SPUBLISH", channel, b"to-replica " + tag)
            await pipe.execute()
            # Sent to its master, and writes the master replicates to the replica.
            await mas.publish(broadcast, b"to-master " + tag)
            await mas.execute_command("SPUBLISH", channel, b"to-master " + tag)
            await mas.set("{" + channel + "}w", b"v")
            await mas.xadd("{" + channel + "}x", {"a": "b"})
            await mas.execute_command("EVAL", "redis.call('set', KEYS[1], 'x')", 1, channel)
            assert await mas.execute_command("WAIT", 1, 5000) >= 1
            expected += [
                (broadcast.encode(), b"to-replica " + tag, False),
                (channel.encode(), b"to-replica " + tag, True),
                (broadcast.encode(), b"to-master " + tag, False),
                (channel.encode(), b"to-master " + tag, True),
            ]
        # A marker on every node last: each MONITOR stream is in order, so once a node's
        # marker is heard, everything that node showed before it was heard too.
        marks = [(broadcast.encode(), f"mark {p}".encode(), False) for p in sorted(clients)]
        for port in sorted(clients):
            await clients[port].publish(broadcast, f"mark {port}".encode())
        await until(lambda: all(m in heard for m in marks))
    finally:
        await source.close()
    counts = Counter(h for h in heard if h not in marks)
    assert counts == Counter(expected), (counts, expected)  # every one, exactly once
    assert Counter(marks) == Counter(h for h in heard if h in marks)


@pytest.mark.node
@pytest.mark.parametrize("adapter", ["classic", "sharded"])
async def test_node_use_replicas_every_broadcast_captured_once(
    adapter: str,
    sharded_cluster: RedisCluster,
    node_install: InstallFn,
    clients: dict[int, aioredis.Redis],
    key: str,
) -> None:
    rc = sharded_cluster
    node_install("current")
    replicas = [r.port for r, _ in _pairs(rc)]

    async def publishes() -> dict[int, int]:
        out = {}
        for port in replicas:
            stats: dict[str, Any] = await clients[port].info("commandstats")
            out[port] = sum(
                int(stats.get(f"cmdstat_{verb}", {}).get("calls", 0))
                for verb in ("publish", "spublish")
            )
        return out

    opts: dict[str, Any] = {
        "redis_url": rc.url,
        "redis_cluster": True,
        "redis_use_replicas": True,
        "adapter": adapter,
        "key": key,
        "nsps": ("/",),
        "requests_timeout_ms": 1000,
    }
    peers = [await NodePeer.start("current", name=n, port=0, **opts) for n in ("A", "B")]
    n = 60
    try:
        with pytest.warns(RuntimeWarning, match="MONITOR"):
            cap = await start_capture(rc.url + "?cluster=true", key, monitor=True)
        try:
            before = await publishes()
            for i in range(n):
                await peers[0].call("nsp_emit", nsp="/", event="rep-news", args=[i])
            await wait_frames(cap, lambda f: f.event == "rep-news", n=n, timeout=15)
            after = await publishes()  # every one ran (heard), before the markers below
            # Then a marker on every node (each MONITOR stream is in order): once all are
            # heard, nothing a node showed before its marker is still on its way.
            for port in sorted(clients):
                await clients[port].publish(f"{key}#/#", f"mark {port}".encode())
            marks = {f"mark {p}".encode() for p in clients}
            await until(lambda: marks <= {f.payload for f in cap.frames})
        finally:
            cap.stop()
            await cap.wait()
    finally:
        for peer in peers:
            await peer.stop()
    on_replicas = sum(after[p] - before[p] for p in replicas)
    assert on_replicas > 0, (before, after)  # node-redis did send PUBLISH to replicas
    got = Counter(f.row.args[0] for f in cap.frames if f.event == "rep-news")
    assert got == Counter(range(n)), got  # each broadcast once, wherever it was sent
    assert all(f.sharded == (adapter == "sharded") for f in cap.frames if f.event == "rep-news")
    verb = "SPUBLISH" if adapter == "sharded" else "PUBLISH"
    print(f"\nuseReplicas, {adapter}: {on_replicas} of {n} {verb} went to replicas; all captured")


async def test_cluster_monitor_follows_replicas_through_a_failover(
    owned_redis_cluster: RedisCluster, key: str
) -> None:
    rc = owned_redis_cluster
    heard: list[Heard] = []
    notices: list[str] = []

    def sink(_now: int, batch: list[list[bytes]], sharded: bool) -> None:
        heard.extend((r[2], r[3], sharded) for r in batch)

    broadcast = f"{key}#/#".encode()
    source = ClusterMonitorSource(
        RedisEndpoint.from_url(rc.url), key, sink, on_notice=notices.append, refresh=0.2
    )
    with pytest.warns(RuntimeWarning, match="MONITOR"):
        await source.start()
    try:
        victim = rc.kill_master()
        heir = await asyncio.to_thread(rc.wait_failover, victim)
        # The heir was monitored as a replica: it becomes a master, its MONITOR goes on.
        await until(lambda: _addr(heir) in source.masters, timeout=15)
        await until(lambda: _addr(victim) not in source.masters + source.replicas, timeout=15)
        assert f"monitoring new master {_addr(heir)} (a promoted replica)" in notices
        assert source.links.get(_addr(heir)) is None
        # The victim comes back as the heir's replica: monitored again, dropping the
        # lines of its link to the heir (the heir's own address).
        await asyncio.to_thread(rc.restart_node, victim.port)
        await until(lambda: source.links.get(_addr(victim)) == {_addr(heir).encode()}, timeout=15)
        assert f"monitoring new replica {_addr(victim)}" in notices
        # A replica lost: a notice, and a gap ended once it left the slot map.
        gaps = len(source.gaps)
        lost = next(r for r, _ in _pairs(rc) if r.port != victim.port)
        rc.servers[lost.port].kill()
        await until(lambda: _addr(lost) not in source.replicas, timeout=15)
        assert any(f"MONITOR of replica {_addr(lost)} lost" in n for n in notices), notices
        assert f"replica {_addr(lost)} left the slot map: not monitored now" in notices
        await until(lambda: len(source.gaps) == gaps + 1)
        # What clients send to the replica that came back is heard, once.
        r = aioredis.Redis(port=victim.port)
        try:
            await r.publish(broadcast.decode(), b"to-the-new-replica")
        finally:
            await r.aclose()
        await until(lambda: (broadcast, b"to-the-new-replica", False) in heard)
    finally:
        await source.close()
    assert heard.count((broadcast, b"to-the-new-replica", False)) == 1
