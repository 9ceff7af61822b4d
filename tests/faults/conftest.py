"""Fixtures of the fault tests: a private Redis behind a proxy the test controls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from siotools.redis_server import RedisServer
from tests.faults.proxy import FaultProxy


@pytest.fixture
def proxy(fresh_redis: RedisServer) -> Iterator[FaultProxy]:
    """A :class:`FaultProxy` in front of this test's own Redis."""
    with FaultProxy(fresh_redis.port) as p:
        yield p
