"""The Health view: the doctor's findings on a real cluster, evidence and fix on Enter."""

from __future__ import annotations

import redis.asyncio as aioredis
from siotools.tui.app import SiotoolsApp
from siotools.tui.health import HEALTHY_KEY, HealthScreen
from textual.widgets import Static

from siotools import ClusterClient
from siotools.redis_cluster import RedisCluster
from tests.cluster_nodes import sharded_on_every_master
from tests.tui.conftest import Cluster, loaded, until


async def test_healthy_then_a_spy(cluster: Cluster) -> None:
    app = cluster.app()
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("5")
        await loaded(pilot, app, HealthScreen)
        screen = app.screen
        assert isinstance(screen, HealthScreen)
        assert screen.table.keys == [HEALTHY_KEY]
        assert "healthy" in screen.note

        rc = aioredis.Redis.from_url(cluster.redis_url, client_name="spy")
        spy = rc.pubsub()
        await spy.subscribe(f"{cluster.key}-request#/chat#")
        try:
            screen.reload()
            await until(pilot, lambda: any("foreign-subscriber" in k for k in screen.table.keys))
        finally:
            await spy.aclose()
            await rc.aclose()
        key = next(k for k in screen.table.keys if "foreign-subscriber" in k)
        row = screen.table.row(key)
        assert row is not None and str(row[0]) == "error" and row[2] == "/chat"
        screen.table.move_to(key)
        await pilot.press("enter")
        detail = str(screen.query_one("#health-detail", Static).render())
        assert "name 'spy'" in detail and "Fix:" in detail

        await pilot.press("5")  # already here: a reload, not a second Health view
        assert sum(isinstance(s, HealthScreen) for s in app.screen_stack) == 1
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HealthScreen))


async def test_on_a_redis_cluster_every_master_is_read(
    sharded_cluster: RedisCluster, key: str
) -> None:
    async with sharded_on_every_master(sharded_cluster, key) as spread:
        cc = ClusterClient(spread.url, key=key, requests_timeout=2.0, dialect="sharded")
        assert cc.on_redis_cluster
        app = SiotoolsApp(cc, refresh=60.0)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("5")
            await loaded(pilot, app, HealthScreen)
            screen = app.screen
            assert isinstance(screen, HealthScreen)
            await until(pilot, lambda: screen.report is not None)
            report = screen.report
    assert report is not None
    counts = {n.nsp: n.sharded_subscribers for n in report.namespaces}
    assert counts == dict.fromkeys(spread.namespaces, 2), report.to_text()
