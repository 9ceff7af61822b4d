"""Module-scoped mixed clusters for the interop tests (one per flavor and direction)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from tests.interop.harness import ADAPTERS, CONFIGS, DIRECTIONS, Client, Cluster

# The synchronous adapter runs the same lists on one config per generation and subscription
# style (its dialect code is the async adapter's; what differs is its threads and loop), in
# the directions given: on the Redis Cluster transport (sharded pub/sub, a Redis Cluster)
# a Python node asking Node nodes and Node nodes asking Python nodes.
_MIXED = ("py-asks", "node-asks")
SYNC_CONFIGS: dict[str, tuple[str, ...]] = {
    "legacy5-psubscribe": tuple(DIRECTIONS),
    "legacy4-nomux": tuple(DIRECTIONS),
    "current": tuple(DIRECTIONS),
    "current-rcluster": _MIXED,
    "sharded-dynamic": _MIXED,
    "sharded-dynamic-rcluster": _MIXED,
}


def cluster_params(configs: list[Any]) -> list[Any]:
    """Every config x direction with the async adapter, and the :data:`SYNC_CONFIGS` ones
    with the sync adapter too (ids of the async kind unchanged)."""
    return [
        pytest.param(
            (config, direction, adapter),
            id=f"{config.id}-{direction}" + ("" if adapter == "async" else f"-{adapter}"),
        )
        for adapter in ADAPTERS
        for config in configs
        for direction in DIRECTIONS
        if adapter == "async" or direction in SYNC_CONFIGS.get(config.id, ())
    ]


CLUSTER_PARAMS = cluster_params(CONFIGS)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=CLUSTER_PARAMS)
async def cluster(
    request: pytest.FixtureRequest, redis_url: str, node_install: object
) -> AsyncIterator[Cluster]:
    """A 3-node cluster shared by the tests of a module; nodes serve ``/t0`` .. ``/tN``."""
    config, direction, adapter = request.param
    if direction != "python":
        node_install(config.flavor)  # type: ignore[operator]
    key = f"sio-{uuid.uuid4().hex[:8]}"
    cl = Cluster(config, direction, redis_url, key, adapter)
    try:
        await cl.start()
        yield cl
    finally:
        await cl.stop()


@dataclass
class Ctx:
    """One test's view of a cluster: its own namespace and a client on every node."""

    cluster: Cluster
    nsp: str
    a: Client
    b: Client
    c: Client


@pytest_asyncio.fixture(loop_scope="module")
async def ctx(cluster: Cluster) -> AsyncIterator[Ctx]:
    nsp = cluster.namespace()
    clients = [await node.client(nsp) for node in cluster.nodes]
    yield Ctx(cluster, nsp, *clients)
    for client in clients:
        await client.close()
