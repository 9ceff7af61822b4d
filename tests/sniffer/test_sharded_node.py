"""The sharded sniffer modes against real Node 8.3 sharded nodes (createShardedAdapter).

On a single Redis 7 and on a real Redis Cluster (node-redis ``createCluster``). The point:
discovery and MONITOR leave ``PUBSUB SHARDNUMSUB`` alone, so the nodes' ``fetchSockets``
keep completing; SSUBSCRIBE adds one, and the same ``fetchSockets`` times out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from siotools.exceptions import NodePeerError
from siotools.nodepeer import NodePeer
from siotools.protocol import Dialect
from siotools.redis_cluster import RedisCluster
from siotools.sniffer import ShardedPubSubError, discover_shards, start_capture
from siotools.transport.cluster import channel_slot
from tests.nodepeer.fixtures import InstallFn, StartFn
from tests.sniffer.helpers import wait_frames
from tests.sniffer.shards import Masters, sampled

pytestmark = pytest.mark.node

CHANNEL_NSPS = ("/", "/chat", "/a", "/b", "/c", "/d", "/e")


async def _fetch_ids(peer: NodePeer, nsp: str = "/") -> list[str]:
    return sorted(s["id"] for s in await peer.call("fetchSockets", nsp=nsp))


async def test_node_sharded_standalone_every_mode(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    a = await node_peers("current", "A", port=0, adapter="sharded", requests_timeout_ms=1000)
    b = await node_peers("current", "B", port=0, adapter="sharded", requests_timeout_ms=1000)
    cl = await node_peers("current", "CL")
    sid = (await cl.call("client_connect", client="c1", url=b.url, nsp="/"))["id"]
    masters = Masters([redis_url])
    main = f"{key}#/#"

    async def counts() -> dict[str, int]:
        return await masters.shardnumsub(main, f"{key}#/chat#")

    took: dict[str, float] = {}
    try:
        started = time.perf_counter()
        assert await _fetch_ids(a) == [sid]
        took["none"] = time.perf_counter() - started
        before = await counts()
        assert before == {main: 2, f"{key}#/chat#": 2}

        # (a) discovery: the main and response channels with their counts, nothing else.
        found, samples = await sampled(counts, discover_shards(redis_url, key))
        assert all(s == before for s in samples)
        assert found.numsub(main) == 2
        assert {f"{key}#/#{a.uid}#", f"{key}#/#{b.uid}#"} <= set(found.channels)
        assert not found.classic

        # No mode: one sentence instead of a silent capture.
        with pytest.raises(ShardedPubSubError, match="PSUBSCRIBE cannot see"):
            await start_capture(redis_url, key)

        # (b) MONITOR: counts unchanged, so fetchSockets completes while it runs.
        async def monitored() -> Any:
            with pytest.warns(RuntimeWarning, match="MONITOR"):
                cap = await start_capture(redis_url, key, monitor=True)
            try:
                started = time.perf_counter()
                assert await _fetch_ids(a) == [sid]
                took["monitor"] = time.perf_counter() - started
                await a.call("nsp_emit", nsp="/", event="mon-news", args=[1, "x"])
                await wait_frames(cap, lambda f: f.event == "mon-news")
                await wait_frames(cap, lambda f: f.row.type == "FETCH_SOCKETS_RESPONSE")
            finally:
                cap.stop()
                await cap.wait()
            return cap

        cap, samples = await sampled(counts, monitored())
        assert all(s == before for s in samples), samples
        (news,) = [f for f in cap.frames if f.event == "mon-news"]
        assert news.sharded and news.dialect is Dialect.SHARDED and news.row.args == [1, "x"]

        # (c) SSUBSCRIBE: +1 on every main channel, and the nodes' requests now time out.
        with pytest.warns(RuntimeWarning, match="SSUBSCRIBE"):
            cap = await start_capture(redis_url, key, ssubscribe=True)
        try:
            assert await counts() == {ch: n + 1 for ch, n in before.items()}
            started = time.perf_counter()
            with pytest.raises(NodePeerError, match="timeout"):
                await a.call("fetchSockets", nsp="/")
            took["ssubscribe"] = time.perf_counter() - started
            await a.call("nsp_emit", nsp="/", event="ss-news", args=[2])
            await wait_frames(cap, lambda f: f.event == "ss-news")
        finally:
            cap.stop()
            await cap.wait()
        kinds = {f.row.type for f in cap.frames}
        assert {"FETCH_SOCKETS", "FETCH_SOCKETS_RESPONSE", "BROADCAST"} <= kinds
        await asyncio.sleep(0.1)
        assert await counts() == before
        assert await _fetch_ids(a) == [sid]  # released: requests complete again
        print(f"\nfetchSockets seconds by sniffer mode: {took}; SHARDNUMSUB before {before}")
    finally:
        await masters.close()


@pytest.fixture
async def node_cluster(
    sharded_cluster: RedisCluster, node_install: InstallFn, key: str
) -> AsyncIterator[tuple[RedisCluster, list[NodePeer]]]:
    node_install("current")
    opts: dict[str, Any] = {
        "redis_url": sharded_cluster.url,
        "redis_cluster": True,
        "key": key,
        "nsps": CHANNEL_NSPS,
        "requests_timeout_ms": 1000,
    }
    peers: list[NodePeer] = []
    try:
        for name in ("A", "B"):
            peers.append(
                await NodePeer.start("current", name=name, port=0, adapter="sharded", **opts)
            )
        yield sharded_cluster, peers
    finally:
        for peer in peers:
            await peer.stop()


async def test_node_sharded_cluster_monitor_and_ssubscribe(
    node_cluster: tuple[RedisCluster, list[NodePeer]], key: str
) -> None:
    rc, (a, _b) = node_cluster
    url = rc.url + "?cluster=true"
    masters = Masters([f"redis://127.0.0.1:{m.port}/0" for m in rc.masters()])
    mains = [f"{key}#{n}#" for n in CHANNEL_NSPS]
    owner = {n: rc.master_of_slot(channel_slot(f"{key}#{n}#".encode())).port for n in CHANNEL_NSPS}
    assert len(set(owner.values())) >= 2

    async def counts() -> dict[str, int]:
        return await masters.shardnumsub(*mains)

    try:
        before = await counts()
        assert set(before.values()) == {2}
        found = await discover_shards(url, key)
        assert found.cluster and all(found.numsub(m) == 2 for m in mains)

        async def monitored() -> Any:
            with pytest.warns(RuntimeWarning, match="MONITOR"):
                cap = await start_capture(url, key, monitor=True)
            try:
                assert await _fetch_ids(a) == []
                for nsp in CHANNEL_NSPS:
                    await a.call("nsp_emit", nsp=nsp, event="mon-news", args=[nsp])
                await wait_frames(cap, lambda f: f.event == "mon-news", n=len(CHANNEL_NSPS))
            finally:
                cap.stop()
                await cap.wait()
            return cap

        cap, samples = await sampled(counts, monitored())
        assert all(s == before for s in samples), samples
        hits = [f for f in cap.frames if f.event == "mon-news"]
        assert {f.nsp for f in hits} == set(CHANNEL_NSPS)
        assert len({owner[f.nsp] for f in hits}) >= 2
        assert all(f.sharded and f.row.args == [f.nsp] for f in hits)

        with pytest.warns(RuntimeWarning, match="SSUBSCRIBE"):
            cap = await start_capture(url, key, ssubscribe=True)
        try:
            assert await counts() == {ch: n + 1 for ch, n in before.items()}
            with pytest.raises(NodePeerError, match="timeout"):
                await a.call("fetchSockets", nsp="/chat")
            for nsp in CHANNEL_NSPS:
                await a.call("nsp_emit", nsp=nsp, event="ss-news", args=[nsp])
            await wait_frames(cap, lambda f: f.event == "ss-news", n=len(CHANNEL_NSPS))
        finally:
            cap.stop()
            await cap.wait()
        await asyncio.sleep(0.1)
        assert await counts() == before
    finally:
        await masters.close()
