"""Sharded clusters (Python and real Node 8.3 sharded nodes) through a Redis Cluster
failover and a slot migration, under steady broadcasts.

A Python node P broadcasts sequence numbers; a client on a Python node Q and a client on
a Node node N (node-redis ``createCluster``) receive them. The figures (kill -> first
delivered broadcast, messages lost, per receiver) are printed (``-s``); they are measured,
not asserted. Asserted: delivery resumes, nothing arrives twice, the steady state after the
fault is complete, and ``fetchSockets`` answers again.

Found on the way (printed, not asserted, as it is Node's): node-redis 4.7.1's cluster
client does not restore a sharded subscription after its master dies (it keeps
reconnecting to the dead address), so the Node sharded node goes deaf and leaves the
``SHARDNUMSUB`` count; the Python nodes then answer for the cluster without waiting for it.
After a slot migration both kinds of node keep receiving.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from siotools.nodepeer import NodePeer
from siotools.pynode import PythonNode
from siotools.redis_cluster import RedisCluster
from siotools.transport.cluster import channel_slot
from tests.interop.harness import NodeClient, PyClient
from tests.nodepeer.fixtures import InstallFn

pytestmark = pytest.mark.node

RATE = 100  # broadcasts per second
NSP = "/f"


@dataclass
class Setup:
    cluster: RedisCluster
    key: str
    p: PythonNode
    q: PythonNode
    n: NodePeer
    cl: NodePeer
    on_p: PyClient
    on_q: PyClient
    on_n: NodeClient


@pytest.fixture
async def setup(
    owned_redis_cluster: RedisCluster, node_install: InstallFn, key: str
) -> AsyncIterator[Setup]:
    node_install("current")
    rc = owned_redis_cluster
    key = f"{key}-{uuid.uuid4().hex[:4]}"
    opts: dict[str, Any] = {"dialect": "sharded", "cluster": True, "key": key}
    p = await PythonNode(rc.url, namespaces=["/", NSP], **opts).start()
    q = await PythonNode(rc.url, namespaces=["/", NSP], **opts).start()
    peer_opts: dict[str, Any] = {"redis_url": rc.url, "redis_cluster": True, "key": key}
    n = await NodePeer.start(
        "current", name="N", port=0, nsps=("/", NSP), adapter="sharded", **peer_opts
    )
    cl = await NodePeer.start("current", name="CL", **peer_opts)
    on_p = await PyClient(NSP).connect(p.url)
    on_q = await PyClient(NSP).connect(q.url)
    on_n = await NodeClient(cl, NSP).connect(n.url)
    try:
        yield Setup(rc, key, p, q, n, cl, on_p, on_q, on_n)
    finally:
        for client in (on_p, on_q, on_n):
            await client.close()
        for node in (p, q):
            await node.stop()
        for peer in (cl, n):
            await peer.stop()


class Arrivals:
    """When each sequence number reached a client (wall-clock seconds)."""

    def __init__(self, s: Setup, client: Any) -> None:
        self.s, self.client = s, client

    def seqs(self) -> list[tuple[int, float]]:
        if isinstance(self.client, NodeClient):
            return [
                (e["args"][0], float(e["t"]))
                for e in self.s.cl.events
                if e["name"] == "client_recv"
                and e["client"] == self.client.name
                and e["event"] == "tick"
            ]
        return list(self.client.ticks)


def timed(client: PyClient) -> PyClient:
    client.ticks = []  # type: ignore[attr-defined]

    def on_tick(seq: int) -> None:
        client.ticks.append((seq, time.time()))  # type: ignore[attr-defined]

    client.sio.on("tick", on_tick, namespace=NSP)
    return client


async def steady(s: Setup, sent: list[float], stop: asyncio.Event, rooms: list[str]) -> None:
    start = time.monotonic()
    while not stop.is_set():
        seq = len(sent)
        sent.append(time.time())
        await s.p.sio.emit("tick", seq, namespace=NSP, to=rooms or None)
        await asyncio.sleep(max(0.0, start + (seq + 1) / RATE - time.monotonic()))


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout}s"
        await asyncio.sleep(0.05)


def report(name: str, got: list[tuple[int, float]], sent: int, t_fault: float) -> str:
    seqs = [seq for seq, _ in got]
    assert len(seqs) == len(set(seqs)), f"{name}: a broadcast was delivered twice"
    tail = set(range(max(0, sent - RATE // 2), sent))
    assert tail <= set(seqs), f"{name}: the steady state after the fault is incomplete"
    first = min((t for _, t in got if t > t_fault + 0.01), default=None)
    assert first is not None
    return f"{name}: first broadcast {first - t_fault:.3f}s after, lost {sent - len(set(seqs))}"


async def fetch_works(s: Setup) -> None:
    everyone = sorted([s.on_p.sid, s.on_q.sid, s.on_n.sid])
    found = await s.p.adapter.fetch_sockets(namespace=NSP)
    assert sorted(x.id for x in found) == everyone
    from_node = await s.n.call("fetchSockets", nsp=NSP, rooms=[])
    assert sorted(x["id"] for x in from_node) == everyone


async def test_failover_under_sharded_broadcasts(setup: Setup) -> None:
    s = setup
    timed(s.on_p), timed(s.on_q)
    main = f"{s.key}#{NSP}#".encode()
    await fetch_works(s)
    sent: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(steady(s, sent, stop, []))
    await asyncio.sleep(1.0)
    victim = s.cluster.kill_master(channel_slot(main))  # the main channel's master
    t_kill = time.time()
    python, node = Arrivals(s, s.on_q), Arrivals(s, s.on_n)
    await wait_for(
        lambda: any(t > t_kill + 0.01 for _, t in python.seqs()),
        30,
        "a broadcast reaching the Python node's client after the kill",
    )
    await asyncio.to_thread(s.cluster.wait_failover, victim)
    await asyncio.sleep(2.0)
    stop.set()
    await task
    total = len(sent)
    await wait_for(lambda: total - 1 in {seq for seq, _ in python.seqs()}, 10, "python tail")
    lines = [report("python node", python.seqs(), total, t_kill)]
    node_back = any(t > t_kill + 0.01 for _, t in node.seqs())
    if node_back:
        lines.append(report("node node", node.seqs(), total, t_kill))
    else:
        lines.append(f"node node (node-redis 4.7.1 createCluster): none of {total} after the kill")
    # fetchSockets answers again, without waiting for a node that left the count.
    counted = await s.p.adapter.server_count(namespace=NSP)
    assert counted == (3 if node_back else 2)
    found = await s.p.adapter.fetch_sockets(namespace=NSP)
    expected = {s.on_p.sid, s.on_q.sid} | ({s.on_n.sid} if node_back else set())
    assert {x.id for x in found} == expected
    s.p.adapter.on_server_side_emit("sse-ack", namespace=NSP)(lambda *args: "P")
    replies = await s.q.adapter.server_side_emit_with_ack("sse-ack", namespace=NSP)
    assert sorted(map(str, replies)) == (
        ["P"]
        if not node_back
        else sorted(["P", str({"node": "N", "event": "sse-ack", "args": []})])
    )
    print(f"\nsharded failover at {RATE}/s ({total} broadcasts): " + "; ".join(lines))


async def test_slot_migration_of_a_room_channel(setup: Setup) -> None:
    s = setup
    timed(s.on_q)
    await s.on_q.join("room1")
    await s.on_n.join("room1")
    await s.n.call("settle")
    room = f"{s.key}#{NSP}#room1#".encode()  # dynamic mode: the room's own channel
    slot = channel_slot(room)
    source = s.cluster.master_of_slot(slot)
    target = next(m for m in s.cluster.masters() if m.node_id != source.node_id)
    sent: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(steady(s, sent, stop, ["room1"]))
    await asyncio.sleep(0.5)
    try:
        await asyncio.to_thread(s.cluster.migrate_slot, slot, target.port)
        t_moved = time.time()
        python, node = Arrivals(s, s.on_q), Arrivals(s, s.on_n)
        await wait_for(
            lambda: any(t > t_moved + 0.01 for _, t in python.seqs()),
            10,
            "a room broadcast reaching the Python node's client after the move",
        )
        await asyncio.sleep(1.0)
        stop.set()
        await task
        total = len(sent)
        await wait_for(lambda: total - 1 in {seq for seq, _ in python.seqs()}, 10, "python tail")
        lines = [report("python node", python.seqs(), total, t_moved)]
        if total - 1 in {seq for seq, _ in node.seqs()}:
            lines.append(report("node node", node.seqs(), total, t_moved))
        else:
            after = sum(1 for _, t in node.seqs() if t > t_moved + 0.01)
            lines.append(f"node node (node-redis 4.7.1 createCluster): {after} after the move")
        # Nothing arrived garbled on the way.
        assert s.q.adapter.stats["malformed"] == 0
        assert s.on_p.received("tick") == []  # not in the room
        print(
            f"\nroom channel slot migration at {RATE}/s ({total} broadcasts): " + "; ".join(lines)
        )
    finally:
        stop.set()
        await asyncio.to_thread(s.cluster.migrate_slot, slot, source.port)
