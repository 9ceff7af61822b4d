"""The cluster exporter, scraped over HTTP by a real client during real traffic."""

from __future__ import annotations

import asyncio
import collections
import json
import re
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

import siotools
from siotools.demo import DemoCluster
from siotools.exporter import METRICS, OTHER, Exporter, TopN, dashboard, metric_names
from siotools.metrics import NODE_METRICS
from siotools.protocol import Dialect, encode_broadcast
from siotools.redis_cluster import RedisCluster
from siotools.redis_server import RedisServer
from tests.cluster_nodes import classic_on_two_masters, sharded_on_every_master
from tests.nodepeer.fixtures import StartFn

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape_url(url: str) -> Samples:
    """GET /metrics with urllib (in a thread: the loop keeps serving the sniffer)."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: Samples = collections.defaultdict(list)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name].append((dict(s.labels), s.value))
    return out


async def scrape(port: int) -> Samples:
    return await asyncio.to_thread(scrape_url, f"http://127.0.0.1:{port}/metrics")


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())
    )


@pytest.fixture
async def exporter(redis_url: str, key: str) -> AsyncIterator[tuple[Exporter, int]]:
    # admit=1: the first rooms and events seen get labels while some are free.
    exp = Exporter(
        redis_url, key, top_rooms=5, top_events=5, admit=1, request_timeout=0.6, refresh=0.3
    )
    await exp.start()
    port = exp.listen("127.0.0.1", 0)
    yield exp, port
    await exp.close()


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.mark.node
async def test_counters_match_the_traffic_sent(
    node_peers: StartFn, exporter: tuple[Exporter, int]
) -> None:
    exp, port = exporter
    a = await node_peers("legacy5", "A", port=0, requests_timeout_ms=500)
    await node_peers("legacy5", "B", port=0, custom_hook="silent")
    await exp.refresh_counts()

    for i in range(7):
        await a.call("nsp_emit", nsp="/chat", rooms=["lobby"], event="say", args=[i])
    mid = await scrape(port)  # scraped while the traffic is under way
    for i in range(3):
        await a.call("nsp_emit", nsp="/chat", rooms=[], event="news", args=[i])
    await a.call("nsp_emit", nsp="/chat", rooms=["r1", "r2"], event="say", args=["two"])
    await a.call("allRooms", nsp="/chat")
    with pytest.raises(siotools.NodePeerError):  # B never answers custom requests
        await a.call("customRequest", nsp="/chat", data={"op": "stats"})

    async def settled() -> bool:
        s = await scrape(port)
        return value(s, "siotools_requests_unanswered_total") >= 1

    await until(settled)
    s = await scrape(port)
    assert value(mid, "siotools_room_messages_total", room="lobby") <= 7
    assert value(s, "siotools_room_messages_total", nsp="/chat", room="lobby") == 7
    assert value(s, "siotools_room_messages_total", nsp="/chat", room="(namespace)") == 3
    assert value(s, "siotools_broadcasts_total", nsp="/chat", target="room") == 7
    assert value(s, "siotools_broadcasts_total", nsp="/chat", target="namespace") == 3
    assert value(s, "siotools_broadcasts_total", nsp="/chat", target="rooms") == 1
    assert value(s, "siotools_event_messages_total", nsp="/chat", event="say") == 8
    assert value(s, "siotools_messages_total", kind="broadcast", dialect="legacy") == 11
    assert value(s, "siotools_requests_total", nsp="/chat", type="allRooms") == 1
    assert value(s, "siotools_requests_total", nsp="/chat", type="customRequest") == 1
    assert value(s, "siotools_responses_total", nsp="/chat") == 3  # 2 allRooms + A's own
    assert value(s, "siotools_request_duration_seconds_count", type="allRooms") == 1
    assert value(s, "siotools_request_duration_seconds_sum", type="allRooms") > 0
    assert value(s, "siotools_requests_unanswered_total", type="customRequest") == 1
    assert value(s, "siotools_nodes", nsp="/chat") == 2
    assert value(s, "siotools_malformed_frames_total") == 0
    assert value(s, "siotools_up") == 1
    assert value(s, "siotools_dialect_messages_total", dialect="legacy") >= 11
    # Every sample name is one the exporter declares (what the dashboard test relies on).
    assert set(s) <= metric_names()
    assert all(name.startswith("siotools_") for name in s)


async def test_demo_traffic_counts_match_a_capture(
    redis_url: str, key: str, exporter: tuple[Exporter, int]
) -> None:
    _, port = exporter
    cap = await siotools.start_capture(redis_url, key)
    demo = DemoCluster(nodes=2, clients=12, rate=60, redis_url=redis_url, key=key, seed=7)
    scrapes = []
    try:
        await demo.start()
        for _ in range(4):
            await asyncio.sleep(0.5)
            scrapes.append(await scrape(port))  # during the demo traffic
    finally:
        await demo.stop()
    await asyncio.sleep(0.5)  # both listeners have heard everything
    cap.stop()
    await cap.wait()
    s = await scrape(port)
    frames = cap.frames
    assert len(frames) > 50
    totals = [value(x, "siotools_messages_total") for x in [*scrapes, s]]
    assert totals == sorted(totals) and totals[0] > 0  # live and monotonic
    assert value(s, "siotools_messages_total") == len(frames)
    assert value(s, "siotools_message_bytes_total") == sum(f.size for f in frames)
    by_kind = collections.Counter(f.kind for f in frames)
    for kind, n in by_kind.items():
        assert value(s, "siotools_messages_total", kind=kind) == n, kind
    broadcasts = sum(len(f.frame.rooms or ()) or 1 for f in frames if f.kind == "broadcast")
    assert value(s, "siotools_room_messages_total") == broadcasts
    assert len(s["siotools_room_messages_total"]) <= 5 + 2  # top 5 + other, per namespace


async def test_room_cardinality_stays_bounded(redis_url: str, key: str) -> None:
    exp = Exporter(redis_url, key, top_rooms=20, top_events=10)
    await exp.start()
    port = exp.listen("127.0.0.1", 0)
    rc = aioredis.Redis.from_url(redis_url)
    try:
        n = 100_000
        hot = [f"hot-{i}" for i in range(5)]
        for start in range(0, n, 5_000):
            pipe = rc.pipeline(transaction=False)
            for i in range(start, start + 5_000):
                room = hot[i % 5] if i % 4 == 0 else f"room-{i}"
                channel, payload = encode_broadcast(
                    uid="abc123",
                    data=[f"ev-{i % 1000}", i],
                    nsp="/chat",
                    rooms=[room],
                    dialect=Dialect.LEGACY,
                    prefix=key,
                )
                pipe.publish(channel, payload)
            await pipe.execute()

        async def all_heard() -> bool:
            return value(await scrape(port), "siotools_room_messages_total") >= n

        await until(all_heard, timeout=60)
        s = await scrape(port)
    finally:
        await rc.aclose()
        await exp.close()
    rooms = s["siotools_room_messages_total"]
    assert len(rooms) <= 21  # 20 labels + other
    assert value(s, "siotools_room_messages_total") == n
    labelled = {lab["room"] for lab, _ in rooms}
    assert set(hot) <= labelled  # the busiest rooms got labels of their own
    for room in hot:
        assert value(s, "siotools_room_messages_total", room=room) >= n // 20 - 10
    assert value(s, "siotools_room_messages_total", room=OTHER) > n / 2
    assert len(s["siotools_event_messages_total"]) <= 11
    assert value(s, "siotools_label_overflow_total", label="room") > n / 2
    total_series = sum(len(v) for v in s.values())
    assert total_series < 200


def test_top_n_keeps_heavy_hitters() -> None:
    top = TopN(3, admit=3)
    now = 0.0
    for i in range(20_000):
        key = ("heavy", i % 3) if i % 2 == 0 else ("single", i)
        top.label(key, now)
    assert top.labelled == {("heavy", 0), ("heavy", 1), ("heavy", 2)}
    assert top.label(("single", 1), now) == OTHER
    assert top.evict(now + 601) and not top.labelled


def test_dashboard_queries_name_exported_metrics() -> None:
    dash = dashboard()
    names = metric_names() | metric_names(NODE_METRICS)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [
        v["query"]["query"] for v in dash["templating"]["list"] if isinstance(v.get("query"), dict)
    ]
    assert len(exprs) >= 15
    used = set()
    for expr in exprs:
        found = re.findall(r"\bsiotools_[a-z0-9_]+", expr)
        assert found, f"query names no siotools metric: {expr}"
        for name in found:
            assert name in names, f"{name} (in {expr}) is not exported"
            used.add(name)
    # Every metric the exporter declares is charted somewhere.
    charted = {re.sub(r"_(total|bucket|sum|count)$", "", u) for u in used} | used
    assert set(METRICS) <= charted, set(METRICS) - charted
    # And every family of an adapter's own collector (siotools.NodeCollector).
    assert set(NODE_METRICS) <= charted, set(NODE_METRICS) - charted


@pytest.mark.node
async def test_cli_serves_until_interrupted(node_peers: StartFn, redis_url: str, key: str) -> None:
    a = await node_peers("legacy5", "A", port=0)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "siotools",
        "exporter",
        "--url",
        redis_url,
        "--prefix",
        key,
        "--listen",
        "127.0.0.1:0",
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
    port = int(re.findall(r"http://127\.0\.0\.1:(\d+)/metrics", line)[0])
    await a.call("nsp_emit", nsp="/", rooms=[], event="hello", args=[1])

    async def heard() -> bool:
        return value(await scrape(port), "siotools_event_messages_total") == 1

    await until(heard)
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 15) == 0


def test_cli_dashboard_and_bad_arguments() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "siotools", "exporter", "--dashboard"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and json.loads(out.stdout)["uid"] == "siotools-cluster"
    for args in (["--listen", "nowhere"], ["--url", "redis://127.0.0.1:1/0"]):
        bad = subprocess.run(
            [sys.executable, "-m", "siotools", "exporter", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert bad.returncode == 2, bad.stderr
        assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


async def test_reconnects_and_gaps_after_a_redis_restart(fresh_redis: RedisServer) -> None:
    url = fresh_redis.url
    exp = Exporter(url, "sio-gap", refresh=0.2)
    await exp.start()
    port = exp.listen("127.0.0.1", 0)
    try:
        before = await scrape(port)
        assert value(before, "siotools_sniffer_reconnects_total") == 0
        assert value(before, "siotools_up") == 1
        await asyncio.to_thread(fresh_redis.restart)

        async def back() -> bool:
            s = await scrape(port)
            return value(s, "siotools_sniffer_reconnects_total") >= 1

        await until(back, timeout=30)
        rc = aioredis.Redis.from_url(url)
        channel, payload = encode_broadcast(uid="x1", data=["after"], prefix="sio-gap")
        await rc.publish(channel, payload)
        await rc.aclose()

        async def heard() -> bool:
            return value(await scrape(port), "siotools_messages_total") == 1

        await until(heard)
        s = await scrape(port)
    finally:
        await exp.close()
    assert value(s, "siotools_sniffer_gaps_total") == 1  # moved by the first message, not twice
    assert value(s, "siotools_sniffer_gap_seconds_total") > 0
    assert value(s, "siotools_sniffer_lag_seconds") >= 0


# ---------------------------------------------------------------------------- Redis Cluster


async def _cluster_exporter(url: str, key: str) -> tuple[Exporter, int]:
    exp = Exporter(url, key, refresh=0.2)
    await exp.start()
    return exp, exp.listen("127.0.0.1", 0)


async def test_cluster_node_gauges_count_every_master(
    redis_cluster: RedisCluster, key: str
) -> None:
    redis_cluster.wait_ok(30)
    async with classic_on_two_masters(redis_cluster, key) as spread:
        exp, port = await _cluster_exporter(spread.url, key)
        try:
            # A broadcast from the node on the other master is heard too (classic pub/sub
            # reaches every node of a Redis Cluster).
            await spread.nodes[-1].sio.emit("hello", 1, namespace="/chat")

            async def heard() -> bool:
                s = await scrape(port)
                return value(s, "siotools_room_messages_total", nsp="/chat") >= 1

            await until(heard)
            s = await scrape(port)
        finally:
            await exp.close()
    # One node per master: a single master's NUMSUB would say 1.
    assert value(s, "siotools_nodes", nsp="/") == 2
    assert value(s, "siotools_nodes", nsp="/chat") == 2
    assert value(s, "siotools_up") == 1


async def test_cluster_sharded_gauges_count_every_master(
    sharded_cluster: RedisCluster, key: str
) -> None:
    async with sharded_on_every_master(sharded_cluster, key) as spread:
        exp, port = await _cluster_exporter(spread.url, key)
        try:
            s = await scrape(port)
        finally:
            await exp.close()
    for nsp in spread.namespaces:
        assert value(s, "siotools_sharded_nodes", nsp=nsp) == 2, nsp
    assert value(s, "siotools_up") == 1


@pytest.mark.parametrize("flag", ["false", "0", "no"])
async def test_cluster_false_is_a_single_redis(redis_url: str, key: str, flag: str) -> None:
    r = aioredis.from_url(redis_url)
    exp, port = await _cluster_exporter(f"{redis_url}?cluster={flag}", key)
    try:
        ch, payload = encode_broadcast(uid="u1", data=["ev", 1], prefix=key)
        await r.publish(ch, payload)

        async def heard() -> bool:
            return value(await scrape(port), "siotools_messages_total") >= 1

        await until(heard)
        assert value(await scrape(port), "siotools_up") == 1
        assert exp.endpoint.url == redis_url
    finally:
        await exp.close()
        await r.aclose()


def test_a_bad_cluster_flag_is_one_sentence(redis_url: str) -> None:
    with pytest.raises(siotools.ConfigurationError) as bad:
        Exporter(f"{redis_url}?cluster=maybe")
    assert "cluster='maybe'" in str(bad.value) and "\n" not in str(bad.value)
