"""Every dialect on the session's Redis Cluster, with real Node nodes: a smoke test per
dialect (broadcasts both ways and one cluster request each way).

The Python nodes get ``cluster=True`` (their classic pub/sub goes to one master, Redis
Cluster forwards it to every node; NUMSUB is summed over the masters). The 8.x Node nodes
use node-redis ``createCluster`` (RA's "redis@4 cluster" entry); socket.io-redis 5.x has
no cluster client of its own, so its Node nodes connect to the seed node with a plain
client, which Redis Cluster's classic pub/sub serves as any node. A 5.x node counts
``PUBSUB NUMSUB`` on that node only, so its requests see the Python nodes because their
classic subscriptions are on the first master by address, the seed here (a 5.x limit on
a Redis Cluster, not one of siotools). RA's full list runs on the cluster for 8.x classic
and sharded in test_current_list.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from siotools import ClusterClient
from siotools.dialects import resolve_dialect
from siotools.redis_cluster import RedisCluster
from tests.interop.conftest import Ctx
from tests.interop.harness import CONFIGS, CURRENT_CONFIGS, SHARDED_CONFIGS, Cluster, PyServer

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

SMOKE = [
    CONFIGS[0].on_redis_cluster(),  # socket.io-redis 5.x, SUBSCRIBE
    CONFIGS[1].on_redis_cluster(),  # socket.io-redis 5.x, PSUBSCRIBE
    CURRENT_CONFIGS[0].on_redis_cluster(),
    SHARDED_CONFIGS[0].on_redis_cluster(),
]
PARAMS = [
    pytest.param((config, direction), id=f"{config.id}-{direction}")
    for config in SMOKE
    for direction in ("py-asks", "node-asks")
]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=PARAMS)
async def cluster(
    request: pytest.FixtureRequest, redis_cluster: RedisCluster, node_install: object
) -> AsyncIterator[Cluster]:
    config, direction = request.param
    if redis_cluster.version() < (7, 0):
        pytest.skip("the sharded configuration needs Redis 7 or later")
    redis_cluster.wait_ok(30)
    node_install(config.flavor)  # type: ignore[operator]
    cl = Cluster(config, direction, redis_cluster.url, f"sio-{uuid.uuid4().hex[:8]}")
    try:
        await cl.start()
        yield cl
    finally:
        await cl.stop()


@pytest.fixture(autouse=True)
def no_errors(cluster: Cluster) -> object:
    yield
    assert cluster.node_failures() == []
    for node in cluster.nodes:
        if isinstance(node, PyServer):
            assert node.errors == [], node.errors


async def test_broadcasts_reach_every_node(ctx: Ctx) -> None:
    for sender in (ctx.cluster.a, ctx.cluster.b):
        await sender.emit(ctx.nsp, "hello", [sender.name, 1])
        for client in (ctx.a, ctx.b, ctx.c):
            assert await client.wait_event("hello") == [sender.name, 1]


async def test_broadcast_to_a_room(ctx: Ctx) -> None:
    await ctx.c.join("room1")
    await ctx.cluster.settle()
    await ctx.cluster.a.emit(ctx.nsp, "r", [], rooms=["room1"])
    assert await ctx.c.wait_event("r") == []


async def test_one_request_each_way(ctx: Ctx) -> None:
    cl = ctx.cluster
    everyone = sorted([ctx.a.sid, ctx.b.sid, ctx.c.sid])
    for asker in (cl.a, cl.b):
        if cl.config.flavor.startswith("legacy"):
            found = await asker.request("clients", ctx.nsp, None)
            assert sorted(found) == everyone
        else:
            found = await asker.op("fetch_sockets", ctx.nsp)
            assert sorted(s["id"] for s in found) == everyone


async def test_cluster_client_detects_the_dialect_on_the_cluster(ctx: Ctx) -> None:
    """Detection looks at every master: PUBSUB is node-local on a Redis Cluster, and a
    node-redis cluster client subscribes on a random master."""
    cl = ctx.cluster
    expected = resolve_dialect(cl.config.py_opts.get("dialect", "legacy"))
    async with ClusterClient(cl.redis_url + "?cluster=true", key=cl.key) as client:
        assert client.dialect is expected
        assert await client.node_count(ctx.nsp) == 3
        found = await client.clients(namespace=ctx.nsp)
        assert sorted(found) == sorted([ctx.a.sid, ctx.b.sid, ctx.c.sid])
