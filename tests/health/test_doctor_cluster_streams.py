"""The doctor on a Redis Cluster with @socket.io/redis-streams-adapter 0.3.1 nodes (a
node-redis cluster client): the ``streamCount`` streams and the recovery sessions hash to
slots of different masters, and ``SCAN`` is node-local, so every master is looked at."""

from __future__ import annotations

import asyncio

import pytest

import siotools
from siotools.nodepeer import NodePeer
from siotools.protocol.streams import DEFAULT_SESSION_PREFIX, js_hash_code, stream_for
from siotools.redis_cluster import RedisCluster
from siotools.transport.cluster import channel_slot
from tests.nodepeer.fixtures import StartFn

STREAM_COUNT = 4
CANDIDATES = ("/", "/chat", *(f"/namespace-{i}" for i in range(40)))


def _owner(cluster: RedisCluster, key: str) -> int:
    return cluster.master_of_slot(channel_slot(key.encode())).port


def _spread(cluster: RedisCluster, key: str) -> tuple[str, list[str]] | None:
    """A prefix (the stream name too) and namespaces whose streams are on every master,
    one namespace of negative hash among them (its ``<stream>--<i>`` stream)."""
    masters = {m.port for m in cluster.masters()}
    for attempt in range(50):
        prefix = f"{key}{attempt}"
        picked: dict[int, str] = {}
        negative = None
        for nsp in CANDIDATES:
            port = _owner(cluster, stream_for(nsp, prefix, STREAM_COUNT))
            if js_hash_code(nsp) < 0 and negative is None:
                negative = nsp
                picked.setdefault(port, nsp)
            elif js_hash_code(nsp) >= 0:
                picked.setdefault(port, nsp)
        if set(picked) == masters and negative is not None:
            nsps = sorted(set(picked.values()) | {negative})
            return prefix, nsps
    return None


def _session_owners(cluster: RedisCluster) -> dict[int, int]:
    """How many recovery sessions each master holds (read with SCAN on each)."""
    out = {}
    for m in cluster.masters():
        keys = list(
            cluster.client(m.port).scan_iter(match=f"{DEFAULT_SESSION_PREFIX}*", count=1000)
        )
        out[m.port] = len(keys)
    return out


def _streams(cluster: RedisCluster, prefix: str, nsps: list[str]) -> dict[str, int]:
    """The streams the namespaces' entries went to, and their lengths (XLEN on the owner)."""
    out = {}
    for nsp in nsps:
        name = stream_for(nsp, prefix, STREAM_COUNT)
        out[name] = int(cluster.client(_owner(cluster, name)).xlen(name))
    return out


@pytest.mark.node
async def test_numbered_streams_and_sessions_on_every_master(
    node_peers: StartFn, redis_cluster: RedisCluster, key: str
) -> None:
    redis_cluster.wait_ok(30)
    spread = _spread(redis_cluster, key)
    assert spread is not None, "no prefix puts the streams on every master"
    prefix, nsps = spread
    opts = {"stream": prefix, "key": prefix, "stream_count": STREAM_COUNT, "recovery": 60000,
            "redis_url": redis_cluster.url, "redis_cluster": True, "nsps": nsps}  # fmt: skip
    a = await node_peers("streams", "A", port=0, **opts)
    b = await node_peers("streams", "B", port=0, **opts)
    for nsp in nsps:  # one XADD each, to the namespace's stream on its master
        await a.call("nsp_emit", nsp=nsp, event="news", args=[nsp])
    # Recoverable disconnects until the sessions (random pids) are on two masters or more.
    cl = await node_peers("streams", "CL", redis_url=redis_cluster.url, redis_cluster=True)
    before = sum(_session_owners(redis_cluster).values())
    made = 0
    for i in range(30):
        await _drop_one(cl, b, f"c{i}")
        made += 1
        owners = await _wait_sessions(redis_cluster, before + made)
        if made >= 3 and sum(1 for n in owners.values() if n) >= 2:
            break
    owners = _session_owners(redis_cluster)
    assert sum(1 for n in owners.values() if n) >= 2, owners
    streams = _streams(redis_cluster, prefix, nsps)
    assert len({_owner(redis_cluster, s) for s in streams}) == len(redis_cluster.masters())
    assert all(streams.values()), streams
    assert any("--" in s[len(prefix) :] for s in streams), streams

    report = await siotools.doctor(redis_cluster.url, prefix, duration=0.2, cluster=True)

    facts = report.facts["streams"]
    assert facts is not None, report.to_text()
    sessions = sum(_session_owners(redis_cluster).values())
    seen = {k: facts[k] for k in ("key", "length", "sessions")}
    assert seen == {
        "key": ", ".join(sorted(streams)),
        "length": sum(streams.values()),
        "sessions": sessions,
    }, report.to_text()
    assert sessions >= made
    assert "streams" in report.dialects
    assert set(nsps) <= {n.nsp for n in report.namespaces}


async def _drop_one(cl: NodePeer, server: NodePeer, client: str) -> None:
    """Connect a client to ``server`` and drop its transport: one recoverable disconnect,
    so one session saved under a random pid."""
    await cl.call("client_connect", client=client, url=server.url, nsp="/")
    await cl.call("client_drop", client=client)
    await server.wait_event(name="disconnect")


async def _wait_sessions(cluster: RedisCluster, total: int) -> dict[int, int]:
    """Wait until the masters hold ``total`` sessions (a node saves one after its
    disconnect event)."""
    owners = _session_owners(cluster)
    for _ in range(250):
        if sum(owners.values()) >= total:
            return owners
        await asyncio.sleep(0.02)
        owners = _session_owners(cluster)
    raise AssertionError(f"the sessions did not show: {owners}, {total} expected")
