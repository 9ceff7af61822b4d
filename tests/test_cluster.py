"""ClusterClient against a real Python cluster: not counted, exact answers, discovery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from siotools import ClusterClient, Dialect, RequestTimeout
from siotools.pynode import PythonNode
from siotools.redis_cluster import RedisCluster
from tests.adapter.pyclients import Client


@pytest.fixture
async def nodes(redis_url: str, key: str) -> AsyncIterator[list[PythonNode]]:
    started = [
        await PythonNode(redis_url, key=key, namespaces=["/", "/chat"]).start() for _ in range(2)
    ]
    yield started
    for node in started:
        await node.stop()


async def test_client_is_not_counted_and_gets_exact_answers(
    nodes: list[PythonNode], redis_url: str, key: str
) -> None:
    a, b = nodes
    ca = await Client().connect(a.url, ["/", "/chat"])
    cb = await Client().connect(b.url)
    await ca.join("lobby")
    await cb.join("lobby", "vip")
    async with ClusterClient(redis_url, key=key, requests_timeout=1.0) as cluster:
        r = aioredis.Redis.from_url(redis_url)
        request_channel = f"{key}-request#/#"
        assert (await r.pubsub_numsub(request_channel))[0][1] == 2
        assert await cluster.namespaces() == ["/", "/chat"]
        assert await cluster.node_counts() == {"/": 2, "/chat": 2}
        assert sorted(await cluster.clients()) == sorted([ca.sid(), cb.sid()])
        assert sorted(await cluster.clients(["lobby"])) == sorted([ca.sid(), cb.sid()])
        assert await cluster.clients(["vip"]) == [cb.sid()]
        assert sorted(await cluster.rooms()) == ["lobby", "vip"]
        assert await cluster.clients(namespace="/chat") == [ca.sid("/chat")]
        assert await cluster.client_rooms(cb.sid()) == [cb.sid(), "lobby", "vip"]
        # the client is still not counted after asking
        assert (await r.pubsub_numsub(request_channel))[0][1] == 2
        await cluster.remote_join(ca.sid(), "vip")
        assert sorted(await cluster.clients(["vip"])) == sorted([ca.sid(), cb.sid()])
        await cluster.remote_leave(ca.sid(), "vip")
        assert await cluster.clients(["vip"]) == [cb.sid()]
        assert await cluster.custom_request({"ping": 1}) == [None, None]
        await cluster.emit("news", "hello", b"\x00", rooms=["vip"])
        assert await cb.wait_event("news") == [["hello", b"\x00"]]
        assert await ca.no_event("news")
        await cluster.remote_disconnect(cb.sid())
        await cb.wait_disconnected()
        with pytest.raises(RequestTimeout) as info:
            await cluster.remote_leave("no-such-sid", "vip")
        assert str(info.value) == "timeout reached while waiting for remoteLeave response"
        await r.aclose()
    await ca.close()


async def test_partial_result_on_timeout(nodes: list[PythonNode], redis_url: str, key: str) -> None:
    a, b = nodes

    async def never(data: object) -> object:
        import asyncio

        await asyncio.sleep(10)
        return None

    b.adapter.custom_hook = never
    a.adapter.custom_hook = lambda data: "a"
    async with ClusterClient(redis_url, key=key, requests_timeout=0.3) as cluster:
        with pytest.raises(RequestTimeout) as info:
            await cluster.custom_request(1)
    assert (info.value.partial, info.value.answered, info.value.expected) == (["a"], 1, 2)


async def test_room_members(nodes: list[PythonNode], redis_url: str, key: str) -> None:
    a, b = nodes
    ca = await Client().connect(a.url)
    cb = await Client().connect(b.url)
    await ca.join("lobby")
    await cb.join("lobby", "vip")
    async with ClusterClient(redis_url, key=key, requests_timeout=1.0) as cluster:
        members = await cluster.room_members()
        assert sorted(members) == ["lobby", "vip"]
        assert sorted(members["lobby"]) == sorted([ca.sid(), cb.sid()])
        assert members["vip"] == [cb.sid()]
        assert await cluster.room_members(["vip", "nobody"], concurrency=1) == {
            "vip": [cb.sid()],
            "nobody": [],
        }
    await ca.close()
    await cb.close()


@pytest.mark.parametrize("on_master", [0, 1, 2])
async def test_detection_looks_at_every_master_of_a_redis_cluster(
    redis_cluster: RedisCluster, key: str, on_master: int
) -> None:
    # PUBSUB CHANNELS/NUMSUB are node-local on a Redis Cluster, and an 8.x node on a
    # node-redis cluster client subscribes on a random master: wherever its three
    # channels are, the dialect is found (passively: nothing is published).
    redis_cluster.wait_ok(30)
    port = sorted(m.port for m in redis_cluster.masters())[on_master]
    spy = aioredis.Redis(port=port)
    ps = spy.pubsub()
    await ps.subscribe(f"{key}-request#/#", f"{key}-response#/#", f"{key}-response#/#aB3dE5#")
    try:
        async with ClusterClient(redis_cluster.url + "?cluster=true", key=key) as cluster:
            assert cluster.dialect is Dialect.CURRENT
            assert cluster.detection is not None and cluster.detection.namespaces == ("/",)
            assert await cluster.namespaces() == ["/"]
            assert await cluster.node_count("/") == 1
    finally:
        await ps.aclose()
        await spy.aclose()


@pytest.mark.parametrize("dialect", ["current", "sharded"])
async def test_operations_started_together_subscribe_once(
    sharded_cluster: RedisCluster, dialect: str
) -> None:
    """The TUI's workers start their first operations together: each connects the client.
    Connecting twice subscribed the response channels twice, so every answer arrived twice
    and a request could complete with one node's answer counted for two."""
    url = sharded_cluster.url + "?cluster=true"
    key = f"once-{uuid.uuid4().hex[:8]}"
    nsps = ["/", *(f"/n{i}" for i in range(7))]
    node = await PythonNode(url, key=key, namespaces=nsps, dialect=dialect).start()
    client = ClusterClient(url, key=key, dialect=dialect)
    try:
        # As the TUI's first refresh: every namespace at once, each operation connecting.
        results = await asyncio.gather(*(client.clients(namespace=n) for n in nsps * 2))
        assert all(r == [] for r in results)
        # The channels only this client listens on (its uid is in their names): each once.
        mine = 0
        for master in sharded_cluster.masters():
            admin = sharded_cluster.client(master.port)
            for listing, count in (("CHANNELS", "NUMSUB"), ("SHARDCHANNELS", "SHARDNUMSUB")):
                for name in admin.execute_command("PUBSUB", listing, f"{key}*"):
                    if client.uid.encode() in name:
                        mine += int(admin.execute_command("PUBSUB", count, name)[1])
            admin.close()
        assert mine == len(nsps)
    finally:
        await client.close()
        await node.stop()
