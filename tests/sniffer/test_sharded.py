"""The sniffer on sharded pub/sub: a single Redis 7 and a real Redis Cluster.

The nodes are siotools' own sharded adapters (proven interoperable with Node's by the
interop suite) here, real Node 8.3 sharded peers in ``test_sharded_node.py``. What is
asserted is what each mode sees, and what it does to ``PUBSUB SHARDNUMSUB`` summed over
the masters: nothing for discovery and MONITOR, +1 for SSUBSCRIBE.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from siotools.protocol import ClusterMessage, Dialect
from siotools.pynode import PythonNode
from siotools.redis_cluster import RedisCluster
from siotools.sniffer import (
    SSUBSCRIBE_WARNING,
    Capture,
    ShardedPubSubError,
    discover_shards,
    sharded_sentence,
    start_capture,
    watch_shards,
)
from siotools.transport.cluster import channel_slot
from tests.sniffer.helpers import wait_frames
from tests.sniffer.shards import Masters, sampled, until

NSPS = [f"/n{i}" for i in range(9)]


@dataclass
class Sharded:
    url: str
    key: str
    nodes: list[PythonNode]
    masters: Masters
    owner: dict[str, int]
    """Namespace -> port of the master serving its main channel (cluster only)."""
    ports: list[int] = field(default_factory=list)
    """The masters' ports (cluster only)."""

    def main(self, nsp: str) -> str:
        return f"{self.key}#{nsp}#"

    async def counts(self) -> dict[str, int]:
        return await self.masters.shardnumsub(*(self.main(n) for n in ["/", *NSPS]))

    async def emit_everywhere(self, event: str) -> None:
        for nsp in NSPS:
            await self.nodes[0].sio.emit(event, nsp, namespace=nsp)


async def _nodes(url: str, key: str, **opts: object) -> list[PythonNode]:
    nodes = []
    for _ in range(2):
        node = PythonNode(url, namespaces=["/", *NSPS], dialect="sharded", key=key, **opts)
        nodes.append(await node.start())
    return nodes


@pytest.fixture
async def standalone(redis_url: str, key: str) -> AsyncIterator[Sharded]:
    nodes = await _nodes(redis_url, key)
    masters = Masters([redis_url])
    try:
        yield Sharded(redis_url, key, nodes, masters, {})
    finally:
        for node in nodes:
            await node.stop()
        await masters.close()


@pytest.fixture
async def on_cluster(sharded_cluster: RedisCluster, key: str) -> AsyncIterator[Sharded]:
    url = sharded_cluster.url + "?cluster=true"
    nodes = await _nodes(sharded_cluster.url, key, cluster=True)
    ports = [m.port for m in sharded_cluster.masters()]
    masters = Masters([f"redis://127.0.0.1:{p}/0" for p in ports])
    owner = {
        nsp: sharded_cluster.master_of_slot(channel_slot(f"{key}#{nsp}#".encode())).port
        for nsp in NSPS
    }
    try:
        yield Sharded(url, key, nodes, masters, owner, ports)
    finally:
        for node in nodes:
            await node.stop()
        await masters.close()


def _unchanged(before: dict[str, int], samples: list[dict[str, int]]) -> None:
    assert all(v == 2 for v in before.values()), before  # two sharded nodes per namespace
    changed = [s for s in samples if s != before]
    assert not changed, f"SHARDNUMSUB changed while the sniffer ran: {changed[0]}"


# --------------------------------------------------------------------------- single Redis 7


async def test_standalone_discovery_lists_channels_and_counts(standalone: Sharded) -> None:
    s = standalone
    before = await s.counts()

    async def look() -> list[object]:
        seen = []
        async for found in watch_shards(s.url, s.key, interval=0.05):
            seen.append(found)
            if len(seen) == 5:
                break
        return seen

    seen, samples = await sampled(s.counts, look())
    _unchanged(before, samples)
    found = seen[-1]
    assert found.sharded and not found.cluster and not found.classic  # type: ignore[attr-defined]
    (master,) = found.masters  # type: ignore[attr-defined]
    for nsp in ["/", *NSPS]:
        assert master.shard_channels[s.main(nsp)] == 2
    uids = {n.adapter.uid for n in s.nodes}  # type: ignore[attr-defined]
    assert {f"{s.key}#/#{u}#" for u in uids} <= set(master.shard_channels)
    assert "sharded channel" in found.lines()[0]  # type: ignore[attr-defined]


async def test_standalone_default_mode_says_so(standalone: Sharded) -> None:
    with pytest.raises(ShardedPubSubError) as info:
        await start_capture(standalone.url, standalone.key)
    text = str(info.value)
    assert "sharded pub/sub" in text and "monitor=True" in text and "ssubscribe=True" in text
    assert "discover_shards()" in text and text.endswith(".") and "\n" not in text


async def test_standalone_ssubscribe_is_counted(standalone: Sharded) -> None:
    s = standalone
    before = await s.counts()
    with pytest.warns(RuntimeWarning, match="SSUBSCRIBE is counted"):
        cap = await start_capture(s.url, s.key, ssubscribe=True)
    try:
        during = await s.counts()
        assert during == {ch: n + 1 for ch, n in before.items()}
        await s.emit_everywhere("ss-news")
        hits = await wait_frames(cap, lambda f: f.event == "ss-news", n=len(NSPS))
    finally:
        cap.stop()
        await cap.wait()
    assert {f.nsp for f in hits} == set(NSPS)
    assert all(f.sharded and f.dialect is Dialect.SHARDED for f in hits)
    assert cap.source == "ssubscribe"
    await asyncio.sleep(0.1)
    assert await s.counts() == before  # released on stop
    assert SSUBSCRIBE_WARNING.endswith("times out.")


# --------------------------------------------------------------------------- Redis Cluster


async def test_cluster_discovery_per_master(on_cluster: Sharded) -> None:
    s = on_cluster
    before = await s.counts()
    found, samples = await sampled(s.counts, discover_shards(s.url, s.key))
    _unchanged(before, samples)
    assert found.cluster and len(found.masters) == 3
    by_port = {int(m.addr.rpartition(":")[2]): m for m in found.masters}
    for nsp, port in s.owner.items():
        # Listed on the master that serves its slot, and only there.
        assert by_port[port].shard_channels[s.main(nsp)] == 2
        assert found.where(s.main(nsp)) == by_port[port].addr
        assert found.numsub(s.main(nsp)) == 2
    assert len(set(s.owner.values())) >= 2, "the namespaces should live on several masters"


async def test_cluster_default_mode_says_so(on_cluster: Sharded) -> None:
    with pytest.raises(ShardedPubSubError, match="uses sharded pub/sub on this Redis Cluster"):
        await start_capture(on_cluster.url, on_cluster.key)


async def test_cluster_monitor_every_master_leaves_counts_alone(on_cluster: Sharded) -> None:
    s = on_cluster
    before = await s.counts()

    async def run() -> list[object]:
        with pytest.warns(RuntimeWarning, match="MONITOR"):
            cap = await start_capture(s.url, s.key, monitor=True)
        try:
            await s.emit_everywhere("mon-news")
            hits = await wait_frames(cap, lambda f: f.event == "mon-news", n=len(NSPS))
        finally:
            cap.stop()
            await cap.wait()
        return list(hits)

    hits, samples = await sampled(s.counts, run())
    _unchanged(before, samples)
    assert {f.nsp for f in hits} == set(NSPS)  # type: ignore[attr-defined]
    ports = {s.owner[f.nsp] for f in hits}  # type: ignore[attr-defined]
    assert len(ports) >= 2  # broadcasts published on different masters, all captured
    for f in hits:
        assert f.sharded and isinstance(f.frame, ClusterMessage)  # type: ignore[attr-defined]
        assert f.row.args == [f.nsp]  # type: ignore[attr-defined]


async def test_cluster_ssubscribe_adds_one_per_channel(on_cluster: Sharded) -> None:
    s = on_cluster
    before = await s.counts()
    with pytest.warns(RuntimeWarning, match="SSUBSCRIBE"):
        cap = await start_capture(s.url, s.key, ssubscribe=True)
    try:
        assert await s.counts() == {ch: n + 1 for ch, n in before.items()}
        await s.emit_everywhere("ss-news")
        hits = await wait_frames(cap, lambda f: f.event == "ss-news", n=len(NSPS))
    finally:
        cap.stop()
        await cap.wait()
    assert {f.nsp for f in hits} == set(NSPS)
    assert len({s.owner[f.nsp] for f in hits}) >= 2
    assert all(f.sharded for f in hits)
    await asyncio.sleep(0.1)
    assert await s.counts() == before


async def test_malformed_sharded_bytes_do_not_kill_the_sniffer(on_cluster: Sharded) -> None:
    s = on_cluster
    garbage = [b"\xc1", b"{not json", b"\x93\xa2u1", b"\xff" * 64, b""]
    for mode in ({"monitor": True}, {"ssubscribe": True}):
        with pytest.warns(RuntimeWarning):
            cap = await start_capture(s.url, s.key, **mode)  # type: ignore[arg-type]
        try:
            for nsp in NSPS[:3]:
                for payload in garbage:
                    await s.masters.spublish(s.main(nsp), payload)
            await s.emit_everywhere("after-garbage")
            await wait_frames(cap, lambda f: f.event == "after-garbage", n=len(NSPS))
            assert cap.running
        finally:
            cap.stop()
            await cap.wait()
        bad = [f for f in cap.frames if f.frame is None]
        assert len(bad) == 3 * len(garbage), mode
        assert all(f.sharded and f.error for f in bad)
        assert cap.anomalies()["undecodable"] == len(bad)


async def test_cluster_monitor_follows_a_failover(
    owned_redis_cluster: RedisCluster, key: str
) -> None:
    rc = owned_redis_cluster
    nodes = await _nodes(rc.url, key, cluster=True)
    notices: list[str] = []
    nsp = NSPS[0]
    slot = channel_slot(f"{key}#{nsp}#".encode())
    try:
        with pytest.warns(RuntimeWarning, match="MONITOR"):
            cap = await start_capture(
                rc.url + "?cluster=true", key, monitor=True, on_notice=notices.append
            )
        await nodes[0].sio.emit("before", 0, namespace=nsp)
        await wait_frames(cap, lambda f: f.event == "before")
        victim = rc.kill_master(slot)
        heir = await asyncio.to_thread(rc.wait_failover, victim)
        # The nodes follow the failover too; publish until a frame arrives from the heir.
        for i in range(200):
            await nodes[0].sio.emit("after", i, namespace=nsp)
            if any(f.event == "after" for f in cap.frames):
                break
            await asyncio.sleep(0.1)
        await wait_frames(cap, lambda f: f.event == "after", timeout=5)
        # The heir was monitored as a replica already, so its frames may come before the
        # source read the new slot map: wait for that (the promotion ends the gap).
        promoted = f"monitoring new master {heir.host}:{heir.port}"
        await until(lambda: any(promoted in n for n in notices))
        assert cap.running
    finally:
        cap.stop()
        await cap.wait()
        for node in nodes:
            await node.stop()
    text = "\n".join(notices)
    assert f"MONITOR of master {victim.host}:{victim.port} lost" in text, text
    assert f"monitoring new master {heir.host}:{heir.port}" in text, text
    assert sum(f"{victim.host}:{victim.port} lost" in n for n in notices) == 1  # said once
    assert len(cap.gaps) == 1 and cap.gaps[0][1] >= cap.gaps[0][0]  # one failover, one gap


def test_one_mode_at_a_time_and_the_sentence() -> None:
    from siotools.exceptions import ConfigurationError
    from siotools.sniffer.sharded import MasterShards, ShardDiscovery, open_source

    with pytest.raises(ConfigurationError, match="choose one"):
        open_source("redis://127.0.0.1:1/0", "p", lambda *a: None, monitor=True, ssubscribe=True)
    found = ShardDiscovery(
        "p",
        (
            MasterShards("h:1", {"p#/#": 2, "p#/#0123456789abcdef#": 1}, ()),
            MasterShards("h:2", {"p#/x#": 2}, ()),
        ),
        cluster=True,
    )
    assert found.channels == {"p#/#": 2, "p#/#0123456789abcdef#": 1, "p#/x#": 2}
    assert found.where("p#/x#") == "h:2" and found.numsub("p#/nope#") == 0
    cli = sharded_sentence(found, cli=True)
    assert cli.endswith(".") and ". " not in cli and "\n" not in cli  # one sentence
    assert "3 sharded channels" in cli and "3 sharded channels of prefix" not in cli
    assert "--monitor" in cli and "--ssubscribe" in cli and "--discover" in cli
    assert found.lines()[0] == "3 sharded channels of prefix 'p' on 2 masters"


async def test_cluster_ssubscribe_follows_a_failover(
    owned_redis_cluster: RedisCluster, key: str
) -> None:
    rc = owned_redis_cluster
    nodes = await _nodes(rc.url, key, cluster=True)
    nsp = NSPS[1]
    channel = f"{key}#{nsp}#"
    slot = channel_slot(channel.encode())
    try:
        with pytest.warns(RuntimeWarning, match="SSUBSCRIBE"):
            cap = await start_capture(rc.url + "?cluster=true", key, ssubscribe=True)
        victim = rc.kill_master(slot)
        heir = await asyncio.to_thread(rc.wait_failover, victim)
        for i in range(200):
            await nodes[0].sio.emit("after", i, namespace=nsp)
            if any(f.event == "after" for f in cap.frames):
                break
            await asyncio.sleep(0.1)
        await wait_frames(cap, lambda f: f.event == "after", timeout=5)
        # On the heir, the sniffer is counted again: the two nodes plus itself.
        heir_only = Masters([f"redis://127.0.0.1:{heir.port}/0"])
        try:
            for _ in range(100):
                if (await heir_only.shardnumsub(channel))[channel] == 3:
                    break
                await asyncio.sleep(0.1)
            assert (await heir_only.shardnumsub(channel))[channel] == 3
        finally:
            await heir_only.close()
        assert cap.running
        assert len(cap.gaps) == 1, cap.gaps  # the lost master's channels, back on the heir
    finally:
        cap.stop()
        await cap.wait()
        for node in nodes:
            await node.stop()


# --------------------------------------------------------------------------- lost links


async def _clients(port: int) -> dict[int, dict[str, str]]:
    """``CLIENT LIST`` of one node: id -> fields."""
    r = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        text = (await r.execute_command("CLIENT", "LIST")).decode()
    finally:
        await r.aclose()
    out = {}
    for line in text.splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
        out[int(fields["id"])] = fields
    return out


async def _kill(port: int, ids: list[int]) -> None:
    r = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        for i in ids:
            assert await r.execute_command("CLIENT", "KILL", "ID", i) == 1
    finally:
        await r.aclose()


async def _one_gap_then_more(s: Sharded, cap: Capture, nsp: str) -> None:
    """Wait for the capture's gap, then publish until frames after it are captured."""
    await until(lambda: cap.gaps)
    for i in range(100):
        await s.nodes[0].sio.emit("after", i, namespace=nsp)
        if any(f.event == "after" and f.time_ns > cap.gaps[-1][1] for f in cap.frames):
            break
        await asyncio.sleep(0.05)
    await s.nodes[0].sio.emit("later", 0, namespace=nsp)
    await wait_frames(cap, lambda f: f.event == "later")
    assert cap.running


def _assert_one_gap(cap: Capture) -> None:
    assert len(cap.gaps) == 1, cap.gaps
    (start, end), before = cap.gaps[0], next(f for f in cap.frames if f.event == "before")
    assert before.time_ns <= start <= end
    assert any(f.event == "after" and f.time_ns >= end for f in cap.frames)
    an = cap.anomalies()
    assert an["gaps"] == 1 and an["gap_s"] == round((end - start) / 1e9, 3)
    df = cap.to_pandas()
    assert df["gap_s"].notna().sum() == 1


async def test_cluster_ssubscribe_one_outage_is_one_gap(on_cluster: Sharded) -> None:
    # Both of the sniffer's connections to the master that carries its PSUBSCRIBE (the
    # classic one and that master's SSUBSCRIBE one) are killed at once, as when the master
    # restarts: one outage, one gap, ended once every subscription is back.
    s = on_cluster
    ports = s.ports
    before = {p: await _clients(p) for p in ports}
    notices: list[str] = []
    with pytest.warns(RuntimeWarning, match="SSUBSCRIBE"):
        cap = await start_capture(s.url, s.key, ssubscribe=True, on_notice=notices.append)
    try:
        ours = {
            p: {i: f for i, f in (await _clients(p)).items() if i not in before[p]} for p in ports
        }
        (port,) = [p for p in ports if any(f["psub"] != "0" for f in ours[p].values())]
        victims = [i for i, f in ours[port].items() if f["psub"] != "0" or f["ssub"] != "0"]
        assert len(victims) == 2, ours[port]
        nsp = next((n for n in NSPS if s.owner[n] == port), NSPS[0])
        await s.nodes[0].sio.emit("before", 0, namespace=nsp)
        await wait_frames(cap, lambda f: f.event == "before")
        await _kill(port, victims)
        await _one_gap_then_more(s, cap, nsp)
    finally:
        cap.stop()
        await cap.wait()
    _assert_one_gap(cap)
    assert cap.reconnects == 1
    assert sum("restored" in n for n in notices) == 1, notices


async def test_cluster_monitor_masters_lost_together_are_one_gap(on_cluster: Sharded) -> None:
    s = on_cluster
    ports = s.ports
    before = {p: await _clients(p) for p in ports}
    with pytest.warns(RuntimeWarning, match="MONITOR"):
        cap = await start_capture(s.url, s.key, monitor=True)
    try:
        nsp = NSPS[0]
        await s.nodes[0].sio.emit("before", 0, namespace=nsp)
        await wait_frames(cap, lambda f: f.event == "before")
        for p in ports:
            now = await _clients(p)
            monitors = [i for i, f in now.items() if i not in before[p] and "O" in f["flags"]]
            assert len(monitors) == 1
            await _kill(p, monitors)
        await _one_gap_then_more(s, cap, nsp)
    finally:
        cap.stop()
        await cap.wait()
    _assert_one_gap(cap)
    assert cap.reconnects == len(ports)  # each master's MONITOR restarted once


async def test_cluster_ssubscribe_slot_move_is_one_gap(
    owned_redis_cluster: RedisCluster, key: str
) -> None:
    # No connection is lost when a slot migrates, but the old owner unsubscribes the
    # sniffer: what is published until it is subscribed on the new owner is missed.
    rc = owned_redis_cluster
    nodes = await _nodes(rc.url, key, cluster=True)
    s = Sharded(rc.url + "?cluster=true", key, nodes, Masters([]), {})
    nsp = NSPS[2]
    slot = channel_slot(f"{key}#{nsp}#".encode())
    source = rc.master_of_slot(slot)
    target = next(m for m in rc.masters() if m.node_id != source.node_id)
    notices: list[str] = []
    try:
        with pytest.warns(RuntimeWarning, match="SSUBSCRIBE"):
            cap = await start_capture(s.url, key, ssubscribe=True, on_notice=notices.append)
        try:
            await nodes[0].sio.emit("before", 0, namespace=nsp)
            await wait_frames(cap, lambda f: f.event == "before")
            await asyncio.to_thread(rc.migrate_slot, slot, target.port)
            await _one_gap_then_more(s, cap, nsp)
        finally:
            cap.stop()
            await cap.wait()
    finally:
        for node in nodes:
            await node.stop()
        await asyncio.to_thread(rc.migrate_slot, slot, source.port)
    _assert_one_gap(cap)
    assert sum("moved; traffic in between was missed" in n for n in notices) == 1, notices
