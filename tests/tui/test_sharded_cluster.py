"""The TUI on a sharded cluster on a real Redis Cluster: the sharded adapter has no
allRooms request, so the namespaces and rooms views read each socket's rooms from
fetchSockets; the data is the same as on a classic cluster."""

from __future__ import annotations

import uuid

from siotools.tui.app import SiotoolsApp
from siotools.tui.rooms import RoomsScreen

from siotools import ClusterClient
from siotools.pynode import PythonNode
from siotools.redis_cluster import RedisCluster
from tests.adapter.pyclients import Client
from tests.tui.conftest import loaded, until
from tests.tui.test_browse import rows


async def test_browse_a_sharded_cluster_on_a_redis_cluster(
    sharded_cluster: RedisCluster,
) -> None:
    url = sharded_cluster.url + "?cluster=true"
    key = f"tui-{uuid.uuid4().hex[:8]}"
    nodes = [
        await PythonNode(url, key=key, namespaces=["/", "/chat"], dialect="sharded").start()
        for _ in range(2)
    ]
    clients = [await Client(f"c{i}").connect(nodes[i % 2].url) for i in range(3)]
    try:
        for client in clients:
            await client.join("lobby")
        await clients[1].join("vip")
        # The app's workers start together, each connecting the client: it must subscribe
        # once, or every answer comes twice and one node's answer can count for two.
        cc = ClusterClient(url, key=key, requests_timeout=2.0, dialect="sharded")
        app = SiotoolsApp(cc, refresh=60.0)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: "/" in rows(app.screen))
            assert rows(app.screen)["/"] == ("/", 2, 3, 2)  # nodes, sockets, named rooms
            await pilot.press("enter")
            await loaded(pilot, app, RoomsScreen)
            room_rows = rows(app.screen)
            assert {k: v[1] for k, v in room_rows.items()} == {"lobby": 3, "vip": 1}
    finally:
        for client in clients:
            await client.close()
        for node in nodes:
            await node.stop()
