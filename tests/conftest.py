"""Shared fixtures: a private redis-server for the whole session, fresh ones on demand.

Tests never touch a Redis they did not start, except the one named by
``SIOTOOLS_TEST_REDIS_URL`` when that variable is set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from siotools.redis_server import RedisServer

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the session's private Redis (or ``SIOTOOLS_TEST_REDIS_URL``)."""
    override = os.environ.get("SIOTOOLS_TEST_REDIS_URL")
    if override:
        yield override
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, which the test may kill and restart."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def key() -> str:
    """A channel prefix unique to this test, so tests on one Redis never hear each other."""
    return f"sio-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of captured wire traffic and other test data."""
    return DATA


# The Redis Cluster fixtures (a 3-master + 3-replica cluster for the session).
from tests.cluster_fixtures import (  # noqa: E402
    owned_redis_cluster,
    redis_cluster,
    redis_cluster_url,
    sharded_cluster,
)

# The Node interop harness fixtures, for every test folder.
from tests.nodepeer.fixtures import node_available, node_install, node_peers  # noqa: E402

__all__ = [
    "node_available",
    "node_install",
    "node_peers",
    "owned_redis_cluster",
    "redis_cluster",
    "redis_cluster_url",
    "sharded_cluster",
]
