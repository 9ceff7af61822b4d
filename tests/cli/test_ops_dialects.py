"""The operation commands on every dialect, on one Redis and on a real Redis Cluster:
``emit``'s node count and exit status (0 reached someone, 1 no node serves the namespace),
and ``rooms``/``sockets``, which the sharded adapter answers from fetchSockets (it has no
allRooms request).

On the Redis Cluster the two nodes' classic subscriptions sit on two different masters
(each node is seeded with its own): a PUBLISH reply counts only the subscribers of the node
that took it, so a command that trusted it would count one node, or none.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from siotools import ClusterClient
from siotools.nodepeer import NodePeer
from siotools.pynode import PythonNode
from siotools.redis_cluster import RedisCluster
from tests.adapter.pyclients import Client

DIALECTS = ["legacy", "current", "sharded"]


@dataclass
class Setup:
    url: str
    key: str
    dialect: str
    nodes: list[PythonNode]
    clients: list[Client]

    async def run(self, *args: str, nsp: str = "/chat") -> tuple[int, str, str]:
        argv = [*args, "--url", self.url, "--key", self.key, "--nsp", nsp]
        argv += ["--dialect", self.dialect, "--timeout", "3"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "siotools",
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


async def _start(urls: list[str], url: str, key: str, dialect: str) -> Setup:
    nodes = [PythonNode(u, key=key, namespaces=["/", "/chat"], dialect=dialect) for u in urls]
    clients: list[Client] = []
    try:
        for node in nodes:
            await node.start()
        for i, node in enumerate(nodes):
            client = await Client(f"c{i}").connect(node.url, ["/", "/chat"])
            clients.append(client)
            await client.join("general", nsp="/chat")
    except BaseException:
        await _stop(nodes, clients)
        raise
    return Setup(url, key, dialect, nodes, clients)


async def _stop(nodes: list[PythonNode], clients: list[Client]) -> None:
    for client in clients:
        await client.close()
    for node in nodes:
        await node.stop()


@pytest.fixture(params=DIALECTS)
async def on_redis(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Setup]:
    key = f"emit-{uuid.uuid4().hex[:8]}"
    setup = await _start([redis_url, redis_url], redis_url, key, request.param)
    try:
        yield setup
    finally:
        await _stop(setup.nodes, setup.clients)


@pytest.fixture(params=DIALECTS)
async def on_cluster(
    request: pytest.FixtureRequest, sharded_cluster: RedisCluster
) -> AsyncIterator[Setup]:
    key = f"emit-{uuid.uuid4().hex[:8]}"
    masters = sorted(m.port for m in sharded_cluster.masters())
    # One node seeded on each of the last two masters: the command's classic PUBLISH goes
    # to the first master, which holds neither node's subscriptions.
    urls = [f"redis://127.0.0.1:{port}?cluster=true" for port in masters[1:3]]
    setup = await _start(urls, urls[0], key, request.param)
    try:
        yield setup
    finally:
        await _stop(setup.nodes, setup.clients)


async def _check_emit(setup: Setup) -> None:
    code, out, err = await setup.run("emit", "news", '"hi"', "--room", "general", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["nodes"] == 2 and result["sockets"] == 2, result
    for client in setup.clients:
        assert await client.wait_event("news") == [["hi"]]
    code, out, err = await setup.run("emit", "hello", "1")
    assert code == 0, err
    assert "2 nodes listening, 2 sockets" in out, out


async def _check_no_node(setup: Setup) -> None:
    code, out, err = await setup.run("emit", "news", "1", nsp="/nowhere")
    assert code == 1, (out, err)
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("siotools: No node serves namespace /nowhere"), err
    assert "nothing was sent" in err


async def _check_rooms(setup: Setup) -> None:
    code, out, err = await setup.run("rooms", "--json")
    assert code == 0, err
    assert json.loads(out) == [{"room": "general", "sockets": 2}]
    code, out, err = await setup.run("sockets", "--json", "--room", "general")
    assert code == 0, err
    found = json.loads(out)
    assert sorted(s["id"] for s in found) == sorted(c.sid("/chat") for c in setup.clients)
    assert all(s["rooms"] == ["general"] for s in found), found
    async with ClusterClient(setup.url, key=setup.key, dialect=setup.dialect) as c:
        every = await c.all_rooms(namespace="/chat")
        assert sorted(every) == sorted(["general", *(x.sid("/chat") for x in setup.clients)])


async def test_emit_and_rooms_on_one_redis(on_redis: Setup) -> None:
    await _check_emit(on_redis)
    await _check_no_node(on_redis)
    await _check_rooms(on_redis)


async def test_emit_and_rooms_on_a_redis_cluster(on_cluster: Setup) -> None:
    await _check_emit(on_cluster)
    await _check_no_node(on_cluster)
    await _check_rooms(on_cluster)


async def test_cluster_client_emit_returns_the_nodes_that_heard(on_cluster: Setup) -> None:
    async with ClusterClient(on_cluster.url, key=on_cluster.key, dialect=on_cluster.dialect) as c:
        assert await c.emit("news", 1, namespace="/chat") == 2
        assert await c.emit("news", 1, namespace="/nowhere") == 0
        if on_cluster.dialect != "legacy":
            # 8.x fire-and-forget operations say how many nodes heard them, too.
            assert await c.server_side_emit("ping", namespace="/chat") == 2


def _numsub_by_master(cluster: RedisCluster, channel: bytes) -> dict[int, int]:
    out = {}
    for master in cluster.masters():
        reply = cluster.client(master.port).execute_command("PUBSUB", "NUMSUB", channel)
        out[master.port] = int(reply[1])
    return out


@pytest.mark.node
async def test_emit_counts_a_node_node_subscribed_on_another_master(
    sharded_cluster: RedisCluster, node_install: Any
) -> None:
    """node-redis's cluster client SUBSCRIBEs on a random cluster node: with the Python
    node on the first master (where the command publishes) and the Node node on another,
    the PUBLISH reply says 1, the cluster has 2 nodes."""
    node_install("current")
    key = f"emit-{uuid.uuid4().hex[:8]}"
    channel = f"{key}-request#/chat#".encode()
    first = min(m.port for m in sharded_cluster.masters())
    url = f"redis://127.0.0.1:{first}?cluster=true"
    setup = await _start([url], url, key, "current")
    peers: list[NodePeer] = []
    try:
        # Start Node nodes until one subscribed away from the first master (each start
        # picks a node at random; a replica is not counted by NUMSUB over the masters,
        # by @socket.io/redis-adapter either, so that one is stopped too).
        for attempt in range(12):
            peer = await NodePeer.start(
                "current",
                name=f"node-{attempt}",
                port=0,
                redis_url=sharded_cluster.url,
                key=key,
                nsps=("/", "/chat"),
                redis_cluster=True,
            )
            counts = _numsub_by_master(sharded_cluster, channel)
            if sum(counts.values()) == 2 and counts[first] == 1:
                peers.append(peer)
                break
            await peer.stop()
        assert peers, "no Node node subscribed on another master in 12 starts"
        code, out, err = await setup.run("emit", "news", '"hi"', "--json")
        assert code == 0, err
        assert json.loads(out)["nodes"] == 2
        assert await setup.clients[0].wait_event("news") == [["hi"]]
        async with ClusterClient(url, key=key, dialect="current") as c:
            assert await c.emit("news", 2, namespace="/chat") == 2
            assert await c.server_side_emit("ping", namespace="/chat") == 2
    finally:
        for peer in peers:
            await peer.stop()
        await _stop(setup.nodes, setup.clients)
