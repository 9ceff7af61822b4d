"""adapter.metrics and NodeCollector on a real two-node cluster with real traffic."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import siotools
from siotools import MissingExtraError, RequestTimeout
from siotools.metrics import NODE_METRICS, NodeCollector, NodeMetrics, Traffic
from siotools.pynode import PythonNode
from siotools.sync_pynode import SyncPythonNode
from tests.adapter.pyclients import Client


@pytest.fixture
async def pair(redis_url: str, key: str) -> AsyncIterator[tuple[PythonNode, PythonNode]]:
    nodes = [
        PythonNode(redis_url, key=key, namespaces=["/", "/chat"], dialect="current")
        for _ in range(2)
    ]
    for node in nodes:
        await node.start()
    yield nodes[0], nodes[1]
    for node in nodes:
        await node.stop()


async def _until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "figures never settled"
        await asyncio.sleep(0.02)


def _scrape(adapter: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    NodeCollector(adapter, registry)
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_figures_match_the_traffic(pair: tuple[PythonNode, PythonNode]) -> None:
    a, b = pair
    wire = a.adapter.wire
    uid_a, uid_b = a.adapter.uid, b.adapter.uid
    c1 = await Client().connect(b.url)
    c2 = await Client().connect(b.url)
    await c1.join("r")

    @b.adapter.on_server_side_emit("slow")
    async def slow(*_: Any) -> str:
        await asyncio.sleep(0.6)
        return "late"

    sent: list[tuple[str, list[Any], list[Any]]] = [
        ("/", ["news", 1], []),
        ("/", ["news", 2], []),
        ("/", ["news", {"n": 3}], []),
        ("/", ["room", "only r"], ["r"]),
        ("/chat", ["nobody", "here"], []),
    ]
    for nsp, (event, *args), rooms in sent:
        await a.sio.emit(event, tuple(args), namespace=nsp, to=rooms[0] if rooms else None)
    assert len(await c1.wait_event("news", count=3)) == 3
    assert await c1.wait_event("room") == [["only r"]]
    assert len(await c2.wait_event("news", count=3)) == 3

    found = await a.adapter.fetch_sockets()
    assert sorted(s.id for s in found) == sorted([c1.sid(), c2.sid()])
    with pytest.raises(RequestTimeout):
        await a.adapter.server_side_emit_with_ack("slow", namespace="/", timeout=0.3)
    # B answers late: A hears an answer that no request of its own waits for any more.
    await _until(lambda: a.adapter.metrics.ignored.get("responses_ignored") == 1)

    sizes: dict[str, int] = {}
    for nsp, data, rooms in sent:
        size = len(wire.broadcast(uid_a, nsp, data, rooms, [], {}).payload)
        sizes[nsp] = sizes.get(nsp, 0) + size
    ma, mb = a.adapter.metrics, b.adapter.metrics
    assert isinstance(ma, NodeMetrics)
    assert ma.node == uid_a and mb.node == uid_b and ma.prefix == a.adapter.prefix
    assert ma.published[("broadcast", "/")] == Traffic(4, sizes["/"])
    assert ma.published[("broadcast", "/chat")] == Traffic(1, sizes["/chat"])
    assert ma.published_total("request").messages == 2  # fetchSockets, serverSideEmit
    assert ma.published_total("response") == Traffic(0, 0)
    fetch = ma.requests[("fetch_sockets", "/")]
    assert (fetch.sent, fetch.answered, fetch.timeouts, fetch.failures) == (1, 1, 0, 0)
    assert fetch.latency.count == 1 and 0 < fetch.latency.sum < 5
    sse = ma.requests[("server_side_emit", "/")]
    assert (sse.sent, sse.answered, sse.timeouts, sse.latency.count) == (1, 0, 1, 0)
    # Redis echoes A's own messages to A: every broadcast and request it published.
    assert ma.received[("broadcast", "/")] == Traffic(4, sizes["/"])
    assert ma.received[("broadcast", "/chat")] == Traffic(1, sizes["/chat"])
    assert ma.received[("request", "/")] == ma.published[("request", "/")]
    # B: the same broadcasts, 3 to both of its sockets and 1 to the room's; none in /chat.
    assert mb.received[("broadcast", "/")] == Traffic(4, sizes["/"])
    assert mb.received[("broadcast", "/chat")] == Traffic(1, sizes["/chat"])
    assert (mb.broadcasts_delivered, mb.sockets_reached) == (4, 7)
    assert mb.fanout.count == 4 and mb.fanout.sum == 7
    assert dict(mb.fanout.cumulative())[1.0] == 1 and dict(mb.fanout.cumulative())[2.0] == 4
    assert mb.received[("request", "/")] == ma.published[("request", "/")]
    answers = mb.published[("response", "/")]
    assert answers.messages == 2  # its sockets, then the late ack
    # Both nodes listen on the shared response channel: each hears B's answers.
    assert ma.received[("response", "/")] == answers == mb.received[("response", "/")]
    assert mb.requests == {} and mb.published_total("request") == Traffic(0, 0)
    assert ma.malformed == mb.malformed == 0
    assert ma.subscriptions == {"channel": 6, "pattern": 2, "shard_channel": 0}
    assert ma.link_events == {"lost": 0, "restored": 0}
    assert ma.pending_requests == 0

    samples = _scrape(a.adapter)
    node = {"node": uid_a}
    assert (
        _sample(
            samples, "siotools_node_messages_published_total", **node, kind="broadcast", nsp="/"
        )
        == 4
    )
    assert (
        _sample(
            samples, "siotools_node_published_bytes_total", **node, kind="broadcast", nsp="/chat"
        )
        == sizes["/chat"]
    )
    assert (
        _sample(samples, "siotools_node_requests_total", **node, type="fetch_sockets", nsp="/") == 1
    )
    assert (
        _sample(
            samples,
            "siotools_node_request_timeouts_total",
            **node,
            type="server_side_emit",
            nsp="/",
        )
        == 1
    )
    labels = {**node, "type": "fetch_sockets", "nsp": "/"}
    assert _sample(samples, "siotools_node_request_duration_seconds_count", **labels) == 1
    bucket = "siotools_node_request_duration_seconds_bucket"
    assert _sample(samples, bucket, **labels, le="+Inf") == 1
    assert (
        _sample(samples, "siotools_node_ignored_frames_total", **node, reason="responses_ignored")
        == 1
    )
    assert _sample(samples, "siotools_node_subscriptions", **node, type="pattern") == 2
    samples_b = _scrape(b.adapter)
    node_b = {"node": uid_b}
    assert _sample(samples_b, "siotools_node_sockets_reached_total", **node_b) == 7
    assert _sample(samples_b, "siotools_node_fanout_bucket", **node_b, le="1.0") == 1
    assert _sample(samples_b, "siotools_node_fanout_bucket", **node_b, le="2.0") == 4
    assert (
        _sample(
            samples_b, "siotools_node_messages_published_total", **node_b, kind="response", nsp="/"
        )
        == 2
    )
    names = {name for name, _ in samples} | {name for name, _ in samples_b}
    families = {n.removesuffix("_total").removesuffix("_bucket") for n in names}
    assert {n for n in NODE_METRICS if NODE_METRICS[n][0] != "histogram"} <= families
    await c1.close()
    await c2.close()


def test_collector_without_prometheus_client_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'siotools\[metrics\]'"):
        NodeCollector(object())  # type: ignore[arg-type]


def test_collector_is_public() -> None:
    assert siotools.NodeCollector is NodeCollector
    assert siotools.NodeMetrics is NodeMetrics


def test_adapters_do_not_import_prometheus_client() -> None:
    import subprocess

    code = (
        "import sys, siotools.adapter, siotools.sync_adapter, siotools.metrics\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_the_sync_adapter_counts_the_same_way(redis_url: str, key: str) -> None:
    sync_node = SyncPythonNode(redis_url, key=key, dialect="current", requests_timeout=1.0)
    await asyncio.to_thread(sync_node.start)
    async_node = await PythonNode(redis_url, key=key, dialect="current").start()
    try:
        s_client = await Client().connect(sync_node.url)
        a_client = await Client().connect(async_node.url)
        a = sync_node.adapter
        await async_node.sio.emit("to-sync", 1)
        await _until(lambda: ("/", "to-sync", [1]) in s_client.events)
        await asyncio.to_thread(sync_node.sio.emit, "from-sync", 2)
        await _until(lambda: ("/", "from-sync", [2]) in a_client.events)
        found = await asyncio.to_thread(a.fetch_sockets)
        assert len(found) == 2
        await _until(lambda: a.metrics.received_total("response").messages == 1)
        m = await asyncio.to_thread(lambda: a.metrics)
        size = len(a.wire.broadcast(a.uid, "/", ["from-sync", 2], [], [], {}).payload)
        assert m.published[("broadcast", "/")] == Traffic(1, size)
        # Its own echo and the async node's broadcast.
        assert m.received[("broadcast", "/")].messages == 2
        assert (m.broadcasts_delivered, m.sockets_reached) == (1, 1)
        fetch = m.requests[("fetch_sockets", "/")]
        assert (fetch.sent, fetch.answered, fetch.timeouts, fetch.latency.count) == (1, 1, 0, 1)
        assert m.subscriptions["channel"] == 3 and m.subscriptions["pattern"] == 1
        answered = async_node.adapter.metrics.published[("response", "/")]
        assert m.received[("response", "/")] == answered
        assert (
            _sample(
                _scrape(a),
                "siotools_node_requests_total",
                node=a.uid,
                type="fetch_sockets",
                nsp="/",
            )
            == 1
        )
        await s_client.close()
        await a_client.close()
    finally:
        await async_node.stop()
        await asyncio.to_thread(sync_node.stop)


async def test_sharded_main_channel_tells_broadcasts_from_requests(
    redis_url: str, key: str
) -> None:
    """The sharded adapter's main channel carries broadcasts and requests alike: a message
    that is delivered counts as a broadcast, the node's own echoes as requests."""
    a = await PythonNode(redis_url, key=key, dialect="sharded").start()
    b = await PythonNode(redis_url, key=key, dialect="sharded").start()
    try:
        c = await Client().connect(b.url)
        await a.sio.emit("one", 1)
        await a.sio.emit("two", 2)
        assert len(await c.wait_event("two")) == 1
        assert [s.id for s in await a.adapter.fetch_sockets()] == [c.sid()]
        wire = a.adapter.wire
        sizes = [
            len(wire.broadcast(a.adapter.uid, "/", [e, n], [], [], {}).payload)
            for e, n in (("one", 1), ("two", 2))
        ]
        ma, mb = a.adapter.metrics, b.adapter.metrics
        request = ma.published[("request", "/")]
        assert ma.published[("broadcast", "/")] == Traffic(2, sum(sizes))
        assert request.messages == 1
        assert mb.received[("broadcast", "/")] == Traffic(2, sum(sizes))
        assert mb.received[("request", "/")] == request
        assert (mb.broadcasts_delivered, mb.sockets_reached) == (2, 2)
        # A's own broadcasts and request, echoed on the main channel it SSUBSCRIBEd.
        echoes = ma.received[("request", "/")]
        assert echoes == Traffic(3, sum(sizes) + request.bytes)
        assert ("broadcast", "/") not in ma.received
        assert ma.received[("response", "/")] == mb.published[("response", "/")]
        assert ma.subscriptions["shard_channel"] == 2
        await c.close()
    finally:
        await a.stop()
        await b.stop()
