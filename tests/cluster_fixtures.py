"""The Redis Cluster of the test session: 3 masters and 3 replicas on free loopback ports.

Started once on first use and reused by every test; ``SIOTOOLS_TEST_REDIS_CLUSTER`` (the
URL of one node of an existing cluster) replaces it. Tests that kill a node ask for
``owned_redis_cluster``, which skips on an existing cluster, and leave it healthy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from siotools.exceptions import RedisLaunchError
from siotools.redis_cluster import RedisCluster

__all__ = ["owned_redis_cluster", "redis_cluster", "redis_cluster_url", "sharded_cluster"]


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """The session's Redis Cluster (or the one ``SIOTOOLS_TEST_REDIS_CLUSTER`` names)."""
    override = os.environ.get("SIOTOOLS_TEST_REDIS_CLUSTER")
    if override:
        yield RedisCluster.existing(override)
        return
    try:
        cluster = RedisCluster(masters=3, replicas=1).start()
    except RedisLaunchError as exc:
        pytest.fail(f"Could not start the test Redis Cluster: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """The seed URL of the session's Redis Cluster."""
    return redis_cluster.url


@pytest.fixture
def sharded_cluster(redis_cluster: RedisCluster) -> RedisCluster:
    """The session's cluster, healthy, for tests of sharded pub/sub (Redis 7 or later)."""
    if redis_cluster.version() < (7, 0):
        pytest.skip("sharded pub/sub (SSUBSCRIBE, SPUBLISH) needs Redis 7 or later")
    redis_cluster.wait_ok(30)
    return redis_cluster


@pytest.fixture
def owned_redis_cluster(sharded_cluster: RedisCluster) -> Iterator[RedisCluster]:
    """The session's cluster for a test that kills or moves things; healthy again after."""
    if not sharded_cluster.owned:
        pytest.skip("the test kills nodes: it needs the cluster the test session started")
    try:
        yield sharded_cluster
    finally:
        for port, server in sharded_cluster.servers.items():
            if not server.running:
                sharded_cluster.restart_node(port)
        sharded_cluster.wait_ok(30)
        # A slot left on another master (its test's master died before it could move the
        # slot back) would make Node peers of later tests count a master twice.
        sharded_cluster.tidy_slots()
