"""Python nodes on the session's Redis Cluster whose subscriptions live on different masters.

``PUBSUB`` is node-local on a Redis Cluster: a tool that asks one node sees only the
subscriptions made there. Two layouts make that visible:

* :func:`classic_on_two_masters`: two 8.x classic nodes, each with a plain connection to a
  different master (as a node-redis cluster client or a socket.io-redis 5.x node does:
  classic pub/sub works on any node), so each master counts one of them;
* :func:`sharded_on_every_master`: two sharded nodes over several namespaces, whose
  sharded channels are spread over the masters by hash slot.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from siotools.pynode import PythonNode
from siotools.redis_cluster import RedisCluster
from siotools.transport.cluster import channel_slot

__all__ = ["SHARDED_NSPS", "Spread", "classic_on_two_masters", "sharded_on_every_master"]

SHARDED_NSPS = ["/", *(f"/n{i}" for i in range(9))]
"""Namespaces of the sharded layout: enough main channels to land on every master."""


@dataclass
class Spread:
    """Nodes of one prefix on a Redis Cluster.

    Attributes:
        url: The seed node's URL with ``?cluster=true``.
        key: The prefix.
        nodes: The running nodes.
        namespaces: Their namespaces.
        masters: The ports of the masters holding the subscriptions.
    """

    url: str
    key: str
    nodes: list[PythonNode]
    namespaces: list[str]
    masters: set[int]


def _master_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


@contextlib.asynccontextmanager
async def classic_on_two_masters(cluster: RedisCluster, key: str) -> AsyncIterator[Spread]:
    """Two 8.x classic nodes (namespaces ``/`` and ``/chat``), one per master."""
    ports = sorted(m.port for m in cluster.masters())
    assert len(ports) >= 2, ports
    chosen = [ports[0], ports[-1]]
    nsps = ["/", "/chat"]
    nodes: list[PythonNode] = []
    try:
        for port in chosen:
            node = PythonNode(_master_url(port), namespaces=nsps, dialect="current", key=key)
            nodes.append(await node.start())
        yield Spread(cluster.url + "?cluster=true", key, nodes, nsps, set(chosen))
    finally:
        for node in nodes:
            await node.stop()


@contextlib.asynccontextmanager
async def sharded_on_every_master(cluster: RedisCluster, key: str) -> AsyncIterator[Spread]:
    """Two sharded nodes on :data:`SHARDED_NSPS`; their main channels span the masters."""
    owners = {
        cluster.master_of_slot(channel_slot(f"{key}#{nsp}#".encode())).port for nsp in SHARDED_NSPS
    }
    assert len(owners) >= 2, owners  # else one master alone would show everything
    nodes: list[PythonNode] = []
    try:
        for _ in range(2):
            node = PythonNode(
                cluster.url, namespaces=SHARDED_NSPS, dialect="sharded", key=key, cluster=True
            )
            nodes.append(await node.start())
        yield Spread(cluster.url + "?cluster=true", key, nodes, list(SHARDED_NSPS), owners)
    finally:
        for node in nodes:
            await node.stop()
