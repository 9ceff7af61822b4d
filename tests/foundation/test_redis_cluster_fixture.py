"""The private Redis Cluster the suite runs on is real, private and healthy."""

from __future__ import annotations

import pytest

from siotools.exceptions import ConfigurationError
from siotools.redis_cluster import RedisCluster, find_redis_cli


def test_session_cluster_is_private_and_real(redis_cluster: RedisCluster) -> None:
    nodes = redis_cluster.nodes()
    masters = [n for n in nodes if n.master and n.slots]
    replicas = [n for n in nodes if not n.master]
    assert 6379 not in {n.port for n in nodes}
    if redis_cluster.owned:  # the session's own: 3 masters, one replica each
        assert (len(masters), len(replicas)) == (3, 3)
    else:
        assert len(masters) >= 3
    assert sum(len(m.slots) for m in masters) == 16384
    assert {r.master_id for r in replicas} <= {m.node_id for m in masters}
    assert all(redis_cluster.is_ok(n.port) for n in nodes if not n.failed)


def test_too_few_masters_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 3 masters"):
        RedisCluster(masters=2)


def test_an_existing_cluster_is_never_killed(redis_cluster: RedisCluster) -> None:
    other = RedisCluster.existing(redis_cluster.url)
    assert not other.owned and other.url == redis_cluster.url
    with pytest.raises(ConfigurationError, match="did not start"):
        other.kill_master()


def test_redis_cli_is_found() -> None:
    assert find_redis_cli().name == "redis-cli"


def test_tidy_slots_gives_every_master_one_run_again(owned_redis_cluster: RedisCluster) -> None:
    # What a test leaves when its slot's new master dies before the slot can move back.
    rc = owned_redis_cluster
    before = rc.slot_runs()
    assert len(before) == len({port for *_, port in before}) == len(rc.masters())
    first, last, _port = before[1]
    rc.migrate_slot((first + last) // 2, before[0][2])
    assert len(rc.slot_runs()) == len(before) + 2
    assert rc.tidy_slots() == 1
    assert rc.slot_runs() == before
    assert rc.tidy_slots() == 0
