"""The seed-node URL convention and the slot map (ClusterTopology) on a real Redis Cluster."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import redis.asyncio.cluster as aiocluster
import redis.cluster

from siotools.exceptions import ConfigurationError, RedisUnavailableError
from siotools.redis_cluster import RedisCluster
from siotools.redis_server import free_port
from siotools.transport.cluster import (
    ClusterTopology,
    parse_cluster_url,
    parse_redirect,
    seed_from_client,
)
from siotools.transport.endpoint import RedisEndpoint


def seed(cluster: RedisCluster) -> RedisEndpoint:
    return parse_cluster_url(cluster.url + "?cluster=true")[0]


def test_cluster_url_convention() -> None:
    ep, is_cluster = parse_cluster_url("redis://10.0.0.5:7000?cluster=true")
    assert (ep.host, ep.port, is_cluster) == ("10.0.0.5", 7000, True)
    assert parse_cluster_url("redis://h:7000/0?cluster=no")[1] is False
    assert parse_cluster_url("redis://h:7000")[1] is False
    assert parse_cluster_url("redis://h:7000", cluster=True)[1] is True
    ep, _ = parse_cluster_url("rediss://u:secret@h:7001/0?cluster=yes")
    assert (ep.tls, ep.username, ep.password) == (True, "u", "secret")
    with pytest.raises(ConfigurationError, match="only database 0"):
        parse_cluster_url("redis://h:7000/2?cluster=true")
    with pytest.raises(ConfigurationError, match="not a boolean"):
        parse_cluster_url("redis://h:7000?cluster=maybe")
    assert parse_redirect("MOVED 3999 127.0.0.1:6381") is not None
    assert parse_redirect("ERR unknown command") is None


async def test_seed_from_a_redis_py_cluster_client(redis_cluster: RedisCluster) -> None:
    client = aiocluster.RedisCluster.from_url(redis_cluster.url, password="pw", username="u")
    ep = seed_from_client(client)
    assert (ep.port, ep.username, ep.password) == (urlsplit(redis_cluster.url).port, "u", "pw")
    await client.aclose()
    # The sync client (what a RedisAdapter's pub_client is) keeps them on its nodes manager;
    # it connects when made, so with the cluster's own (no) credentials.
    sync_client = redis.cluster.RedisCluster.from_url(redis_cluster.url, socket_connect_timeout=2)
    ep = seed_from_client(sync_client)
    # It has already read the topology into its startup nodes: any node of the cluster is a
    # seed (the one named first after a failover moved the roles need not be the URL's).
    assert ep.port in redis_cluster.ports and (ep.password, ep.tls) == (None, False)
    assert ep.connect_timeout == 2.0
    sync_client.close()
    with pytest.raises(ConfigurationError, match="not a redis-py RedisCluster"):
        seed_from_client(object())


async def test_unreachable_seed_is_one_clear_sentence() -> None:
    topology = ClusterTopology(RedisEndpoint(port=free_port(), connect_timeout=1.0))
    with pytest.raises(RedisUnavailableError) as info:
        await topology.refresh()
    assert "No node of the Redis Cluster at redis://127.0.0.1:" in str(info.value)
    assert "connection refused" in str(info.value)
    assert "\n" not in str(info.value)


async def test_topology_discovered_from_one_seed(redis_cluster: RedisCluster) -> None:
    topology = ClusterTopology(seed(redis_cluster))
    await topology.refresh()
    assert topology.covered
    assert sorted(int(a.rsplit(":", 1)[1]) for a in topology.masters) == sorted(
        m.port for m in redis_cluster.masters()
    )
    assert all(len(reps) == 1 for reps in topology.replicas.values())
    for master in redis_cluster.masters():
        assert topology.owner(min(master.slots)) == f"{master.host}:{master.port}"


async def test_a_single_redis_is_refused_clearly(redis_url: str) -> None:
    topology = ClusterTopology(RedisEndpoint.from_url(redis_url))
    with pytest.raises(ConfigurationError, match="not a Redis Cluster node"):
        await topology.refresh()


async def test_slot_runs_as_cluster_slots_lists_them(owned_redis_cluster: RedisCluster) -> None:
    rc = owned_redis_cluster
    topology = ClusterTopology(seed(rc))
    await topology.refresh()
    expected: dict[str, list[tuple[int, int]]] = {}
    for first, last, port in rc.slot_runs():
        expected.setdefault(f"127.0.0.1:{port}", []).append((first, last))
    assert topology.slot_runs() == expected
    assert all(len(runs) == 1 for runs in expected.values())
    # A slot moved out of the middle of a run leaves two runs there, one more elsewhere.
    first, last, port = rc.slot_runs()[0]
    target = rc.slot_runs()[1][2]
    mid = (first + last) // 2
    rc.migrate_slot(mid, target)
    await topology.refresh()
    runs = topology.slot_runs()
    assert runs[f"127.0.0.1:{port}"] == [(first, mid - 1), (mid + 1, last)]
    assert (mid, mid) in runs[f"127.0.0.1:{target}"]
    assert len(runs[f"127.0.0.1:{target}"]) == 2
