"""A Flask-SocketIO app (threading) as one node of a mixed cluster with real Node nodes.

``SocketIO(app, client_manager=siotools.RedisAdapter(url, dialect=...))``, next to a
Node socket.io server on @socket.io/redis-adapter 8.3 (``current``; ``createShardedAdapter``
on a Redis Cluster), socket.io-redis 5.4 (``legacy5``) or 4.x (``legacy4``): broadcasts
both ways, cluster requests from a Flask handler and from the Node node.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from siotools import RedisAdapter
from siotools.nodepeer import NodePeer
from siotools.sync_pynode import SyncPythonNode
from tests.interop.harness import (
    CONFIGS,
    CURRENT_CONFIGS,
    SHARDED_CLUSTER_CONFIGS,
    Config,
    NodeClient,
    NodeServer,
    PyClient,
)

flask = pytest.importorskip("flask")
flask_socketio = pytest.importorskip("flask_socketio")

pytestmark = pytest.mark.node

PICKED = {c.id: c for c in [*CURRENT_CONFIGS, *CONFIGS, *SHARDED_CLUSTER_CONFIGS]}
FLAVORS = {
    "current": PICKED["current"],
    "legacy5": PICKED["legacy5-subscribe"],
    "legacy4": PICKED["legacy4-mux"],
    "sharded-rcluster": PICKED["sharded-dynamic-rcluster"],
}


def flask_node(redis_url: str, key: str, config: Config) -> SyncPythonNode:
    app = flask.Flask(__name__)
    adapter = RedisAdapter(redis_url, key=key, requests_timeout=1.0, **config.py_opts)
    socketio = flask_socketio.SocketIO(app, async_mode="threading", client_manager=adapter)

    @socketio.on("ask")
    def ask() -> dict[str, Any]:
        # A cluster request from a Flask-SocketIO handler (blocks this handler's thread).
        return {"count": adapter.server_count(), "clients": sorted(adapter.clients())}

    @socketio.on("shout")
    def shout(text: str) -> str:
        flask_socketio.emit("shouted", {"text": text}, broadcast=True)
        return "ok"

    return SyncPythonNode(redis_url, app=app, server=socketio.server)


@pytest.mark.parametrize("config", list(FLAVORS.values()), ids=list(FLAVORS))
async def test_a_flask_socketio_node_in_a_mixed_cluster(
    request: pytest.FixtureRequest, redis_url: str, node_install: Any, config: Config
) -> None:
    node_install(config.flavor)
    on_cluster: dict[str, Any] = {}
    if config.redis_cluster:
        # A seed node of the session's Redis Cluster (Python: cluster=True, Node:
        # node-redis createCluster).
        redis_url = request.getfixturevalue("sharded_cluster").url
        on_cluster = {"redis_cluster": True}
    key = f"flask-{uuid.uuid4().hex[:8]}"
    py = flask_node(redis_url, key, config)
    await asyncio.to_thread(py.start)
    peers: list[NodePeer] = []
    py_client = None
    try:
        client_peer = await NodePeer.start(
            config.flavor, name="CL", redis_url=redis_url, key=key, **on_cluster
        )
        peers.append(client_peer)
        peer = await NodePeer.start(
            config.flavor,
            name="N",
            port=0,
            redis_url=redis_url,
            key=key,
            requests_timeout_ms=1000,
            **config.node_opts,
        )
        peers.append(peer)
        node = NodeServer(peer, client_peer)
        node_client = await node.client("/")
        py_client = await PyClient("/").connect(py.url)
        # The Flask app's broadcast reaches the Node node's client.
        assert await py_client.sio.call("shout", "from flask", timeout=5) == "ok"
        assert await node_client.wait_event("shouted") == [{"text": "from flask"}]
        assert await py_client.wait_event("shouted") == [{"text": "from flask"}]
        # The Node node's room broadcast reaches the Flask app's client.
        await py_client.join("room1")
        await node.emit("/", "news", [1, "2"], rooms=["room1"])
        assert await py_client.wait_event("news") == [1, "2"]
        assert node_client.received("news") == []
        # A cluster request from a Flask handler, and one from the Node node.
        answer = await py_client.sio.call("ask", timeout=5)
        assert answer == {"count": 2, "clients": sorted([py_client.sid, node_client.sid])}
        if config.flavor == "current":
            # 8.x: python-socketio's call() for the Node node's client (a broadcast with acks).
            ack = await asyncio.to_thread(py.sio.call, "ping", 1, to=node_client.sid, timeout=5)
            assert isinstance(node_client, NodeClient)
            assert ack == {"client": node_client.name, "event": "ping"}

            found = await node.op("fetch_sockets", "/")
            assert sorted(s["id"] for s in found) == sorted([py_client.sid, node_client.sid])
        else:
            found = await node.request("clients", "/", None)
            assert sorted(found) == sorted([py_client.sid, node_client.sid])
        assert not [e for e in peer.events if e["name"] in ("adapter_error", "redis_error")]
    finally:
        if py_client is not None:
            await py_client.close()
        await asyncio.to_thread(py.stop)
        for p in reversed(peers):
            await p.stop()
