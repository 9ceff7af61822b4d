"""The doctor on a real Redis Cluster reads every master (``PUBSUB`` is node-local there),
and ``cluster=`` in a URL means what it says on a single Redis too."""

from __future__ import annotations

import asyncio

import pytest

import siotools
from siotools.exceptions import ConfigurationError
from siotools.redis_cluster import RedisCluster
from siotools.transport.cluster import channel_slot
from siotools.transport.endpoint import RedisEndpoint
from tests.cluster_nodes import classic_on_two_masters, sharded_on_every_master


async def test_classic_nodes_on_two_masters_are_both_counted(
    redis_cluster: RedisCluster, key: str
) -> None:
    redis_cluster.wait_ok(30)
    async with classic_on_two_masters(redis_cluster, key) as spread:
        report = await siotools.doctor(spread.url, key, duration=1.0, probe_nodes=True)
    assert report.exit_code == 0, report.to_text()
    assert report.findings == [], report.to_text()
    assert report.dialects == ["current"]
    uids = sorted(n.adapter.uid for n in spread.nodes)
    assert [n.nsp for n in report.namespaces] == spread.namespaces
    for n in report.namespaces:
        # One node per master: a single master's NUMSUB would say 1.
        assert n.request_subscribers == 2, report.to_text()
        assert n.node_uids == uids
        assert (n.probe_answers, n.probe_expected) == (2, 2), report.to_text()
    masters = {f"127.0.0.1:{m.port}" for m in redis_cluster.masters()}
    assert set(report.facts["masters"]) == masters
    assert any("every master" in e for e in report.evidence)


async def test_sharded_nodes_over_every_master(sharded_cluster: RedisCluster, key: str) -> None:
    async with sharded_on_every_master(sharded_cluster, key) as spread:
        report = await siotools.doctor(spread.url, key, duration=0.5)
        uids = sorted(n.adapter.uid for n in spread.nodes)
    assert report.exit_code == 0, report.to_text()
    assert report.dialects == ["sharded"]
    assert sorted(n.nsp for n in report.namespaces) == sorted(spread.namespaces)
    for n in report.namespaces:
        assert n.sharded_subscribers == 2, (n.nsp, report.to_text())
        assert n.node_uids == uids, n.nsp


async def test_an_endpoint_with_the_cluster_keyword(
    sharded_cluster: RedisCluster, key: str
) -> None:
    endpoint = RedisEndpoint.from_url(sharded_cluster.url)
    async with sharded_on_every_master(sharded_cluster, key) as spread:
        report = await siotools.doctor(endpoint, key, duration=0.2, cluster=True)
    assert report.exit_code == 0, report.to_text()
    assert sorted(n.nsp for n in report.namespaces) == sorted(spread.namespaces)
    assert all(n.sharded_subscribers == 2 for n in report.namespaces), report.to_text()


@pytest.mark.parametrize("flag", ["false", "0", "no", "False"])
async def test_cluster_false_is_a_single_redis(redis_url: str, key: str, flag: str) -> None:
    report = await siotools.doctor(f"{redis_url}?cluster={flag}", key, duration=0.1)
    assert report.url == redis_url
    assert report.facts["masters"] is None
    assert report.redis_version  # INFO was read: it connected


async def test_bad_cluster_flags_are_one_sentence(redis_url: str, key: str) -> None:
    with pytest.raises(ConfigurationError) as bad:
        await siotools.doctor(f"{redis_url}?cluster=maybe", key, duration=0.1)
    text = str(bad.value)
    assert "cluster='maybe'" in text and "\n" not in text
    # A single Redis named a cluster: said in one sentence, not a hang or a traceback.
    with pytest.raises(ConfigurationError) as single:
        await siotools.doctor(f"{redis_url}?cluster=true", key, duration=0.1)
    assert "cluster=true" in str(single.value) and "\n" not in str(single.value)


async def test_monitor_watches_every_master(sharded_cluster: RedisCluster, key: str) -> None:
    # A SPUBLISH runs on the master of its channel's slot: MONITOR on the seed alone misses
    # the others. Broadcasts go only to namespaces whose channels live elsewhere.
    seed = int(sharded_cluster.url.rsplit(":", 1)[1].split("/")[0])
    async with sharded_on_every_master(sharded_cluster, key) as spread:
        away = [
            nsp
            for nsp in spread.namespaces
            if sharded_cluster.master_of_slot(channel_slot(f"{key}#{nsp}#".encode())).port != seed
        ]
        assert away, "every namespace on the seed's master"
        sent = 0

        async def traffic() -> None:
            nonlocal sent
            await asyncio.sleep(0.4)  # the monitors are on
            for round_ in range(3):
                for nsp in away:
                    await spread.nodes[0].sio.emit("tick", round_, namespace=nsp)
                    sent += 1

        report, _ = await asyncio.gather(
            siotools.doctor(spread.url, key, duration=1.5, monitor=True), traffic()
        )
    every = {f"127.0.0.1:{p}" for p in sharded_cluster.ports}  # masters and replicas
    assert set(report.facts["monitored"]) == every, report.to_text()
    assert report.facts["spublished"] >= sent >= 3, report.to_text()
    assert any("MONITOR watched every master" in e for e in report.evidence)


def _listeners(rc: RedisCluster, port: int) -> set[str]:
    """Ids of the connections of one node that hold patterns and no channel (a listen;
    adapter nodes SUBSCRIBE channels too)."""
    with rc.client(port) as r:
        return {c["id"] for c in r.client_list() if c["psub"] != "0" and c["sub"] == "0"}


async def test_the_listen_moves_when_its_node_is_lost(
    owned_redis_cluster: RedisCluster, key: str
) -> None:
    # Any node hears every PUBLISH: with the seed lost during the listen, the doctor goes on
    # listening on another node and says what it missed, rather than hearing nothing.
    rc = owned_redis_cluster
    async with classic_on_two_masters(rc, key) as spread:
        ports = [n.port for n in rc.nodes() if not n.failed]
        before = {port: _listeners(rc, port) for port in ports}
        doctor = asyncio.create_task(siotools.doctor(spread.url, key, duration=6.0))
        where = None
        for _ in range(250):
            where = next((p for p in ports if _listeners(rc, p) - before[p]), None)
            if where is not None:
                break
            await asyncio.sleep(0.02)
        assert where is not None, "the doctor's listen never showed"
        rc.servers[where].kill()
        # Broadcasts come from a node whose own master is still there.
        emitter = next(
            n for n, p in zip(spread.nodes, sorted(spread.masters), strict=True) if p != where
        )
        sent = 0
        while not doctor.done():
            await emitter.sio.emit("tick", sent, namespace="/")
            sent += 1
            await asyncio.sleep(0.1)
        report = await doctor
    assert sent > 0
    assert report.messages > 0, report.to_text()
    (gap,) = [f for f in report.findings if f.code == "listen-gap"]
    assert "lost its Redis connection 1 time(s)" in gap.title, gap.title
