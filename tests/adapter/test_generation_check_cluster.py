"""The starting node's generation warning on a real Redis Cluster: ``PUBSUB CHANNELS`` is
node-local there, so the check must ask every master.

A socket.io-redis 5.x Node node has no cluster client: it SUBSCRIBEs on the node its URL
names (here the second master). The siotools 8.x node's classic subscriptions and its
commands go to the first master, whose ``PUBSUB CHANNELS`` shows none of the 5.x
channels: read there only, the mix would pass unnoticed.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from siotools import AsyncRedisAdapter
from siotools.nodepeer import NodePeer
from siotools.redis_cluster import RedisCluster

pytestmark = pytest.mark.node


async def test_a_5x_node_on_another_master_is_warned_about(
    sharded_cluster: RedisCluster, node_install: Any
) -> None:
    node_install("legacy5")
    key = f"gen-{uuid.uuid4().hex[:8]}"
    first, second = sorted(m.port for m in sharded_cluster.masters())[:2]
    legacy = await NodePeer.start(
        "legacy5", name="legacy", port=0, redis_url=f"redis://127.0.0.1:{second}", key=key
    )
    try:
        seen = sharded_cluster.client(first).execute_command("PUBSUB", "CHANNELS", f"{key}*")
        assert seen == []  # the 5.x channels are on the second master only
        node = AsyncRedisAdapter(
            f"redis://127.0.0.1:{first}?cluster=true", key=key, dialect="current"
        )
        errors: list[BaseException] = []
        node.on_error(errors.append)
        await node.start()
        try:
            warnings = [str(e) for e in errors if "misread each other" in str(e)]
            assert len(warnings) == 1, errors
            assert "socket.io-redis 4.x/5.x" in warnings[0]
            assert "@socket.io/redis-adapter 8.x" in warnings[0]
        finally:
            await node.close()
    finally:
        await legacy.stop()
