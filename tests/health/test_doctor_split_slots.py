"""A master serving two runs of slots: real Node 8.3 nodes on node-redis 4 count it twice,
and the doctor says so (a Redis Cluster after a reshard that left a slot behind)."""

from __future__ import annotations

import uuid

import pytest

import siotools
from siotools.health.report import Severity
from siotools.nodepeer import NodePeer
from siotools.pynode import PythonNode
from siotools.redis_cluster import RedisCluster
from siotools.transport.cluster import channel_slot
from tests.nodepeer.fixtures import InstallFn

pytestmark = pytest.mark.node


def _split_owner_of(rc: RedisCluster, channel: bytes) -> str:
    """Give the master of ``channel``'s slot a slot from the middle of another master's
    run: both then serve two runs. Returns the first one's ``host:port``."""
    owner = rc.master_of_slot(channel_slot(channel))
    first, last, _port = next(r for r in rc.slot_runs() if r[2] != owner.port)
    rc.migrate_slot((first + last) // 2, owner.port)
    return f"{owner.host}:{owner.port}"


async def test_node_nodes_count_a_split_master_twice_and_the_doctor_says_why(
    owned_redis_cluster: RedisCluster, node_install: InstallFn
) -> None:
    node_install("current")
    rc = owned_redis_cluster
    key = f"split-{uuid.uuid4().hex[:8]}"
    split = _split_owner_of(rc, f"{key}#/#".encode())
    assert sorted(_runs_per_master(rc).values()) == [1, 2, 2]
    # Started after the split, as a node restarted after a reshard: node-redis reads
    # CLUSTER SLOTS then.
    py = await PythonNode(
        rc.url, key=key, dialect="sharded", cluster=True, namespaces=["/"]
    ).start()
    peer = await NodePeer.start(
        "current", name="N", port=0, redis_url=rc.url, redis_cluster=True, key=key,
        adapter="sharded", nsps=("/",),
    )  # fmt: skip
    try:
        # Two nodes subscribe to the main channel; the Node node counts each twice.
        assert await peer.call("serverCount", nsp="/") == 4
        report = await siotools.doctor(rc.url, key, cluster=True, duration=0.5, probe_nodes=False)
    finally:
        await peer.stop()
        await py.stop()
    (finding,) = [f for f in report.findings if f.code == "split-slot-runs"]
    assert finding.severity is Severity.WARNING
    assert any(split in line and "2 runs of slots" in line for line in finding.evidence)
    assert split in report.facts["split_masters"] and len(report.facts["split_masters"]) == 2

    # Tidied, the same cluster has no finding.
    rc.tidy_slots()
    py = await PythonNode(
        rc.url, key=key, dialect="sharded", cluster=True, namespaces=["/"]
    ).start()
    try:
        report = await siotools.doctor(rc.url, key, cluster=True, duration=0.2, probe_nodes=False)
    finally:
        await py.stop()
    assert [f for f in report.findings if f.code == "split-slot-runs"] == []
    assert report.facts["split_masters"] == {}


def _runs_per_master(rc: RedisCluster) -> dict[int, int]:
    counts: dict[int, int] = {}
    for _first, _last, port in rc.slot_runs():
        counts[port] = counts.get(port, 0) + 1
    return counts
