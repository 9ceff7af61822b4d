"""The doctor names each cause of trouble, constructed for real on real Node clusters."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

import siotools
from siotools import AsyncRedisAdapter
from siotools.health import Report, Severity
from siotools.nodepeer import NodePeer
from siotools.pynode import PythonNode
from siotools.redis_server import RedisServer
from tests.health.numsub import unchanged
from tests.nodepeer.fixtures import StartFn

DURATION = 2.5


@pytest.fixture
async def rc(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def examine(
    url: str,
    key: str,
    *,
    during: Callable[[], Awaitable[Any]] | None = None,
    delay: float = 0.4,
    **kw: Any,
) -> Report:
    """Run the doctor; ``during`` runs ``delay`` s after it started listening."""

    async def later() -> None:
        await asyncio.sleep(delay)
        if during is not None:
            await during()

    task = asyncio.create_task(later())
    report = await siotools.doctor(url, key, duration=kw.pop("duration", DURATION), **kw)
    await task
    return report


def only(report: Report, code: str) -> siotools.health.Finding:
    found = report.find(code)
    assert len(found) == 1, report.to_text()
    return found[0]


async def quiet(awaitable: Awaitable[Any]) -> None:
    """Await a Node command whose failure (a timeout) is the point."""
    with contextlib.suppress(siotools.NodePeerError):
        await awaitable


# ---------------------------------------------------------------------------- healthy


@pytest.mark.node
async def test_healthy_legacy_cluster_has_no_finding(
    node_peers: StartFn, rc: aioredis.Redis, redis_url: str, key: str
) -> None:
    a = await node_peers("legacy5", "A", port=0)
    b = await node_peers("legacy5", "B", port=0)
    cl = await node_peers("legacy5", "CL")
    await cl.call("client_connect", client="c1", url=b.url, nsp="/chat")
    await cl.call("client_join", client="c1", rooms=["lobby"])

    async def traffic() -> None:
        for i in range(5):
            await a.call("nsp_emit", nsp="/chat", rooms=["lobby"], event="news", args=[i])
        await a.call("allRooms", nsp="/chat")

    report = await unchanged(rc, [key], examine(redis_url, key, during=traffic))
    assert report.findings == [], report.to_text()
    assert report.healthy and report.exit_code == 0
    assert report.dialects == ["legacy"]
    chat = next(n for n in report.namespaces if n.nsp == "/chat")
    assert chat.request_subscribers == 2
    assert chat.requests_seen == 1 and chat.requests_incomplete == 0
    assert chat.answer_ms_max is not None and chat.answer_ms_max > 0
    assert report.messages >= 7  # 5 broadcasts, the request, its 2 answers


@pytest.mark.node
async def test_healthy_probe_measures_every_node(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    await node_peers("legacy5", "A", port=0)
    await node_peers("legacy5", "B", port=0)
    report = await examine(redis_url, key, probe_nodes=True)
    assert report.healthy and report.exit_code == 0, report.to_text()
    assert report.probed
    for n in report.namespaces:
        assert (n.probe_answers, n.probe_expected) == (2, 2)
        assert len(n.probe_latencies_ms) == 2  # both answers were heard and timed
    assert report.findings == []


@pytest.mark.node
@pytest.mark.parametrize("adapter", ["classic", "sharded"])
async def test_healthy_current_cluster(
    node_peers: StartFn, rc: aioredis.Redis, redis_url: str, key: str, adapter: str
) -> None:
    await node_peers("current", "A", port=0, adapter=adapter)
    await node_peers("current", "B", port=0, adapter=adapter)
    report = await unchanged(rc, [key], examine(redis_url, key, duration=1.0))
    assert report.exit_code == 0, report.to_text()
    assert report.dialects == ["current" if adapter == "classic" else "sharded"]
    assert report.findings == []
    assert len(report.namespaces[0].node_uids) == 2
    if adapter == "sharded":  # its traffic is out of a passive listener's sight: said so
        assert report.namespaces[0].sharded_subscribers == 2
        assert any("SPUBLISH" in e for e in report.evidence)


# ---------------------------------------------------------------------------- a spy


@pytest.mark.node
@pytest.mark.parametrize("flavor", ["legacy5", "current"])
async def test_spy_on_the_request_channel(
    node_peers: StartFn, rc: aioredis.Redis, redis_url: str, key: str, flavor: str
) -> None:
    await node_peers(flavor, "A", port=0)
    await node_peers(flavor, "B", port=0)
    spy_client = aioredis.Redis.from_url(redis_url, client_name="spy")
    spy = spy_client.pubsub()
    await spy.subscribe(f"{key}-request#/chat#")
    # A ClusterClient (a console, a script) holds the response channels: it must not hide
    # the spy by making the response channel's count match the request channel's.
    asker = siotools.ClusterClient(redis_url, key=key)
    if flavor == "legacy5":
        await asker.connect()
        with contextlib.suppress(siotools.RequestTimeout):
            await asker.all_rooms(namespace="/chat")
    try:
        probing = flavor == "legacy5"
        report = await unchanged(
            rc,
            [key],
            examine(redis_url, key, probe_nodes=probing),
            ignore="-response#" if probing else None,
        )
    finally:
        await asker.close()
        await spy.aclose()
        await spy_client.aclose()
    assert report.exit_code == 1
    f = only(report, "foreign-subscriber")
    assert f.severity is Severity.ERROR and f.nsp == "/chat"
    assert "1 subscriber(s)" in f.title and "time out" in f.title
    text = "\n".join(f.evidence)
    assert f"PUBSUB NUMSUB {key}-request#/chat# counts 3 subscribers" in text
    assert "name 'spy'" in text and "sub=1 psub=0" in text
    assert not report.find("mixed-dialects")
    if flavor == "legacy5":  # the probe sees it too: the nodes answer, the spy does not
        assert "waited for 3 answers and got 2" in text
        assert not report.find("silent-nodes")


# ---------------------------------------------------------------------------- 5.x beside 8.x


@pytest.mark.node
async def test_5x_beside_8x(
    node_peers: StartFn, rc: aioredis.Redis, redis_url: str, key: str
) -> None:
    await node_peers("legacy5", "OLD", port=0)
    new = await node_peers("current", "NEW", port=0)
    report = await unchanged(rc, [key], examine(redis_url, key, duration=1.0))
    assert report.exit_code == 1
    f = only(report, "mixed-dialects")
    assert f.severity is Severity.ERROR
    text = "\n".join(f.evidence)
    assert new.uid is not None and new.uid in text
    assert "socket.io-redis 4.x/5.x in /, /chat, 1 node(s)" in text
    assert "#506" in text and "crashes every 5.x node" in text
    assert report.dialects == ["current", "legacy"]


# ---------------------------------------------------------------------------- 4.x, no multiplexing


async def mixed_multiplexing(node_peers: StartFn) -> tuple[NodePeer, NodePeer, NodePeer]:
    """A 4.x node with multiplexing and one without, a client in room 'lobby' on each."""
    a = await node_peers("legacy4", "MUX", port=0, multiplexing=True)
    b = await node_peers("legacy4", "NOMUX", port=0, multiplexing=False)
    cl = await node_peers("legacy4", "CL")
    await cl.call("client_connect", client="ca", url=a.url, nsp="/chat")
    await cl.call("client_connect", client="cb", url=b.url, nsp="/chat")
    await cl.call("client_join", client="ca", rooms=["lobby"])
    await cl.call("client_join", client="cb", rooms=["lobby"])
    await a.call("settle")
    return a, b, cl


@pytest.mark.node
async def test_4x_without_multiplexing_from_traffic(
    node_peers: StartFn, rc: aioredis.Redis, redis_url: str, key: str
) -> None:
    a, b, cl = await mixed_multiplexing(node_peers)
    # The harm is real: the multiplexing node's single-room broadcast misses cb.
    await a.call("nsp_emit", nsp="/chat", rooms=["lobby"], event="from-mux", args=[1])
    await cl.wait_event(name="client_recv", client="ca", event="from-mux")
    with pytest.raises(siotools.NodePeerError):
        await cl.wait_event(name="client_recv", client="cb", event="from-mux", timeout=0.5)

    async def traffic() -> None:
        await b.call("nsp_emit", nsp="/chat", rooms=["lobby"], event="from-nomux", args=[2])

    report = await unchanged(rc, [key], examine(redis_url, key, during=traffic))
    f = next(f for f in report.find("no-multiplexing") if f.nsp == "/chat")
    assert f.severity is Severity.ERROR
    text = "\n".join(f.evidence)
    assert f"published on {key}#/chat# instead of the room's channel" in text
    assert b.ready["uids"]["/chat"] in text or (b.uid or "") in text
    assert "room channels of /chat are SUBSCRIBEd" in text
    assert report.exit_code == 1


@pytest.mark.node
async def test_4x_without_multiplexing_from_the_probe(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    await mixed_multiplexing(node_peers)
    report = await examine(redis_url, key, probe_nodes=True, duration=1.5)
    # socket.io 1.x clients also connect to '/', so both namespaces are concerned.
    found = {f.nsp: f for f in report.find("no-multiplexing")}
    assert set(found) == {"/", "/chat"}, report.to_text()
    text = "\n".join(found["/chat"].evidence)
    assert "a node answered the probe with 1 socket(s), 1 of them without a SUBSCRIBEd" in text
    assert text.count("a node answered the probe") == 1  # the multiplexing node is fine


# ---------------------------------------------------------------------------- silent nodes


@pytest.mark.node
async def test_silent_legacy_node(node_peers: StartFn, redis_url: str, key: str) -> None:
    a = await node_peers("legacy5", "A", port=0, requests_timeout_ms=1000)
    await node_peers("legacy5", "B", port=0, custom_hook="silent")

    async def traffic() -> None:
        await quiet(a.call("customRequest", nsp="/chat", data={"op": "stats"}))

    report = await examine(redis_url, key, during=traffic)
    f = only(report, "unanswered-requests")
    assert f.severity is Severity.ERROR and f.nsp == "/chat"
    assert "customRequest" in f.evidence[0]
    assert "waited for 2 answers, got 1" in f.evidence[0]
    assert report.exit_code == 1


@pytest.mark.node
async def test_silent_current_node(node_peers: StartFn, redis_url: str, key: str) -> None:
    a = await node_peers("current", "A", port=0)
    await node_peers("current", "B", port=0, sse_mode="silent")

    async def traffic() -> None:
        await quiet(
            a.call("serverSideEmit", nsp="/", event="sse-ack", args=[1], ack=True, timeout=800)
        )

    report = await examine(redis_url, key, during=traffic)
    f = only(report, "unanswered-requests")
    assert f.nsp == "/"
    assert "serverSideEmit" in f.evidence[0] and f"from node {a.uid}" in f.evidence[0]
    assert "waited for 1 answers, got 0" in f.evidence[0]


# ---------------------------------------------------------------------------- slow consumer


async def test_slow_consumer(fresh_redis: RedisServer) -> None:
    url = fresh_redis.url
    rc = aioredis.Redis.from_url(url)
    await rc.config_set("client-output-buffer-limit", "pubsub 256mb 4mb 600")
    parts = urlsplit(url)
    # A subscriber that never reads: what Redis cannot send piles up in its output buffer.
    slow = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"CLIENT SETNAME laggard\r\nSUBSCRIBE sio-slow#/#\r\n")
    try:
        await asyncio.sleep(0.2)
        blob = b"x" * 65536
        for _ in range(200):  # 12.5 MiB
            await rc.publish("sio-slow#/#", blob)
        report = await siotools.doctor(url, "sio-slow", duration=0.2)
    finally:
        slow.close()
        await rc.aclose()
    f = only(report, "slow-consumer")
    assert f.severity is Severity.WARNING
    assert "name 'laggard'" in f.evidence[0]
    assert "client-output-buffer-limit pubsub: hard 256 MiB, soft 4 MiB for 600 s" in f.evidence
    assert report.facts["max_omem"] >= 2 << 20
    assert report.exit_code == 1


# ---------------------------------------------------------------------------- the rest


async def test_no_node_on_the_prefix_names_the_others(redis_url: str, key: str) -> None:
    rc = aioredis.Redis.from_url(redis_url)
    other = rc.pubsub()
    await other.subscribe(f"{key}-elsewhere-request#/#")
    try:
        report = await siotools.doctor(redis_url, key, duration=0.2)
    finally:
        await other.aclose()
        await rc.aclose()
    f = only(report, "no-nodes")
    assert f"{key}-elsewhere" in "\n".join(f.evidence)
    assert report.exit_code == 1


async def test_malformed_frames(redis_url: str, key: str) -> None:
    rc = aioredis.Redis.from_url(redis_url)

    async def garbage() -> None:
        for _ in range(3):
            await rc.publish(f"{key}#/#", b"\xc1\xc1 not msgpack")

    try:
        report = await examine(redis_url, key, during=garbage, duration=1.0, delay=0.2)
    finally:
        await rc.aclose()
    f = only(report, "malformed-frames")
    assert f.title.startswith("3 of 3 messages")
    assert report.facts["malformed"] == 3


async def test_report_renders_for_notebooks_and_scripts(redis_url: str, key: str) -> None:
    report = await siotools.doctor(redis_url, key, duration=0.1)
    html = report._repr_html_()
    assert "no node serves prefix" in html and "Fix:" in html
    data = report.to_dict()
    assert data["healthy"] is False and data["findings"][0]["code"] == "no-nodes"
    assert "ERROR no-nodes" in report.to_text()
    assert "doctor" in siotools.__all__ and "Report" in siotools.__all__


async def test_unreachable_redis() -> None:
    with pytest.raises(siotools.RedisUnavailableError):
        await siotools.doctor("redis://127.0.0.1:1/0", duration=0.1)


@pytest.mark.node
@pytest.mark.parametrize("adapter", ["classic", "sharded"])
async def test_probe_of_current_clusters(
    node_peers: StartFn, redis_url: str, key: str, adapter: str
) -> None:
    """The probe asks 8.x clusters through ClusterClient's public API; until that client
    speaks the dialect, the report says so instead of guessing."""
    await node_peers("current", "A", port=0, adapter=adapter)
    await node_peers("current", "B", port=0, adapter=adapter)
    report = await examine(redis_url, key, probe_nodes=True, duration=1.0)
    failed = {f.nsp: f for f in report.find("probe-failed")}
    for n in report.namespaces:
        if n.nsp in failed:
            assert "cannot ask this dialect" in failed[n.nsp].evidence[0]
            assert n.probe_answers is None
        else:
            assert (n.probe_answers, n.probe_expected) == (2, 2), report.to_text()
    assert report.exit_code == 0  # a probe that cannot run is a note, not a problem


async def test_pattern_load(fresh_redis: RedisServer) -> None:
    """One PSUBSCRIBE per namespace and node (#480): 1200 patterns on the server."""
    rc = aioredis.Redis.from_url(fresh_redis.url)
    node = rc.pubsub()
    await node.subscribe("sio-pat-request#/n0#", "sio-pat-response#/n0#")
    await node.psubscribe(*[f"sio-pat#/n{i}#*" for i in range(1200)])
    try:
        report = await siotools.doctor(fresh_redis.url, "sio-pat", duration=0.2)
    finally:
        await node.aclose()
        await rc.aclose()
    f = only(report, "pattern-load")
    assert f.severity is Severity.WARNING
    assert "1200 pattern subscriptions" in f.title
    assert report.facts["numpat"] == 1200


def test_redis_version_rule() -> None:
    """The version rule on the facts an old server gives (no Redis 6 to run here)."""
    from siotools.dialects.detect import PubSubSnapshot
    from siotools.health.facts import ServerFacts, Sniff
    from siotools.health.rules import Inputs, evaluate

    snap = PubSubSnapshot("p", {"p-request#/#": 1, "p-response#/#": 1}, {}, 1, False)
    server = ServerFacts("6.2.14", {"redis_version": "6.2.14"}, [], None, {}, None)
    from siotools.dialects.detect import clues

    inputs = Inputs("p", snap, clues(snap), {"/": {siotools.Dialect.LEGACY}}, server, Sniff())
    found = [f for f in evaluate(inputs) if f.code == "redis-version"]
    assert len(found) == 1 and found[0].severity is Severity.NOTE
    assert "needs Redis 7.0" in found[0].fix
    inputs.dialects["/"].add(siotools.Dialect.SHARDED)
    assert [f.severity for f in evaluate(inputs) if f.code == "redis-version"] == [Severity.ERROR]


async def test_busy_healthy_demo_has_no_problem(redis_url: str, key: str) -> None:
    """Churn (sockets connecting and leaving mid-probe), remote operations and room traffic
    on a healthy cluster: no finding, probed or not."""
    from siotools.demo import DemoCluster

    demo = DemoCluster(nodes=3, clients=30, rate=30, redis_url=redis_url, key=key, seed=2)
    await demo.start()
    try:
        passive = await siotools.doctor(redis_url, key, duration=2.0)
        probed = await siotools.doctor(redis_url, key, duration=2.0, probe_nodes=True)
    finally:
        await demo.stop()
    assert passive.findings == [], passive.to_text()
    assert probed.findings == [], probed.to_text()
    assert passive.messages > 10 and probed.probed
    assert all(n.probe_answers == n.probe_expected == 3 for n in probed.namespaces)


@pytest.mark.node
async def test_socket_not_found_is_no_problem(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    """A clientRooms for a socket no node has gets no answer: "not found", not silence."""
    a = await node_peers("legacy5", "A", port=0, requests_timeout_ms=500)
    await node_peers("legacy5", "B", port=0)

    async def traffic() -> None:
        await quiet(a.call("clientRooms", nsp="/chat", sid="/chat#nobody"))

    report = await examine(redis_url, key, during=traffic)
    chat = next(n for n in report.namespaces if n.nsp == "/chat")
    assert chat.requests_seen == 1 and chat.requests_incomplete == 1
    assert report.findings == [], report.to_text()


# ---------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize(
    ("dialect", "delay", "severity", "default"),
    [
        # Legacy requests do not say whether a 4.x or a 5.x node asked: a note, naming
        # the 1000 ms of 4.x (and 5.0-5.1) and the 5000 ms of 5.2+.
        ("legacy-lite", 1.3, Severity.NOTE, "1000 ms (socket.io-redis 4.x)"),
        ("legacy", 1.3, Severity.NOTE, "1000 ms (socket.io-redis 5.0-5.1) or 5000 ms"),
        ("current", 5.3, Severity.WARNING, "5000 ms (@socket.io/redis-adapter 8.x)"),
    ],
)
async def test_answers_later_than_the_default_requests_timeout(
    redis_url: str, key: str, dialect: str, delay: float, severity: Severity, default: str
) -> None:
    """A requester with a long requestsTimeout waits for a slow node: the doctor sees the
    answer come after the default, which a requester left at the default never waits for."""
    a = await PythonNode(redis_url, key=key, dialect=dialect, requests_timeout=9.0).start()
    b = await PythonNode(redis_url, key=key, dialect=dialect).start()

    async def slow(*_: Any) -> str:
        await asyncio.sleep(delay)
        return "late"

    b.adapter.custom_hook = slow
    b.adapter.on_server_side_emit("slow")(slow)

    async def traffic() -> None:
        # A date in a broadcast tells 4.x from 5.x (msgpack-lite's ext or notepack's);
        # legacy requests are the same JSON in both.
        await a.sio.emit("tick", datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
        if dialect == "current":
            assert await a.adapter.server_side_emit_with_ack("slow") == ["late"]
        else:
            assert "late" in await a.adapter.custom_request("q")

    try:
        report = await examine(redis_url, key, during=traffic, duration=delay + 1.2)
    finally:
        await a.stop()
        await b.stop()
    f = only(report, "late-answers")
    assert f.severity is severity and f.nsp == "/", report.to_text()
    name = "serverSideEmit" if dialect == "current" else "customRequest"
    assert f.evidence[0].startswith(name) and "1 answer(s) after" in f.evidence[0]
    assert default in f.evidence[0]
    late_ms = float(f.evidence[0].split("after ")[1].split(" ms")[0])
    assert delay * 1000 <= late_ms < delay * 1000 + 500
    assert "never on the wire" in f.evidence[-1]
    assert report.find("unanswered-requests") == []  # it was answered, only late


async def test_probe_answer_slower_than_the_default_requests_timeout(
    redis_url: str, key: str
) -> None:
    """A node whose event loop is blocked for 2 s (a CPU-bound handler) answers the probe
    after the 4.x default of 1000 ms: every default requester times out on it."""
    a = await PythonNode(redis_url, key=key, dialect="legacy-lite").start()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    hung = AsyncRedisAdapter(redis_url, key=key, dialect="legacy-lite")
    try:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(hung.start(), loop))
        loop.call_soon_threadsafe(time.sleep, 2.0)
        report = await siotools.doctor(redis_url, key, probe_nodes=True, timeout=4.0, duration=3.0)
    finally:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(hung.close(), loop))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        await a.stop()
    f = only(report, "slow-answers")
    # 4.x or 5.x (the wire does not say): over 1000 ms, under 5.2's 5000 ms.
    assert f.severity is Severity.WARNING and f.nsp == "/", report.to_text()
    assert "later than the default requestsTimeout" in f.title
    answers = [float(x.split(" ms")[0]) for x in f.evidence[0].split("order: ")[1].split(", ")]
    assert len(answers) == 2 and answers[0] < 500 and 1000 < answers[1] < 2500
    # Without broadcasts the wire shows no 4.x trait: 5.x's defaults (4.x's 1000 ms too).
    assert f.evidence[1].startswith("default requestsTimeout: 1000 ms (socket.io-redis 5.0")
    assert "got 2" in f.evidence[2]
    assert report.find("late-answers") == []  # the probe's own requests are not the cluster's


# ---------------------------------------------------------------------------- sharded 8.2


@pytest.mark.node
async def test_82_and_83_sharded_nodes_on_one_prefix(
    node_peers: StartFn, rc: aioredis.Redis, redis_url: str, key: str
) -> None:
    """A real 8.2.1 sharded node beside an 8.3.0 one: the subscriptions look alike, the
    SPUBLISH envelopes do not (MONITOR), and the 8.3 node drops the 8.2 node's broadcasts."""
    a = await node_peers(
        "current", "A", port=0, adapter="sharded", subscription_mode="dynamic-private"
    )
    b = await node_peers("sharded82", "B", port=0, adapter="sharded")
    cl = await node_peers("current", "CL")
    await cl.call("client_connect", client="ca", url=a.url, nsp="/")
    await cl.call("client_connect", client="cb", url=b.url, nsp="/")

    async def traffic() -> None:
        for i in range(3):
            await b.call("nsp_emit", nsp="/", rooms=[], event="from82", args=[i])
        await a.call("nsp_emit", nsp="/", rooms=[], event="from83", args=[0])

    passive = await unchanged(rc, [key], examine(redis_url, key, duration=1.0))
    assert passive.findings == [], passive.to_text()
    assert any("--monitor shows it" in e for e in passive.evidence)
    # An 8.3 node subscribed to its socket's id room: what SHARDCHANNELS alone proves.
    assert any("dynamic-private" in e and "8.3.0+" in e for e in passive.evidence)

    report = await examine(redis_url, key, during=traffic, monitor=True)
    f = only(report, "mixed-sharded-versions")
    assert f.severity is Severity.ERROR and report.exit_code == 1
    assert f.evidence[0].startswith("3 sharded message(s) without 'nsp'")
    assert f"{b.uid} (3)" in f.evidence[0]
    assert f"{a.uid} (1)" in f.evidence[1] and "8.3.0+" in f.evidence[1]
    assert "dynamic-private" in f.evidence[2]
    assert any("MONITOR showed 4 SPUBLISH" in e for e in report.evidence)
    # What the finding says happens: 8.2 hears 8.3, 8.3 drops 8.2.
    await cl.wait_event(name="client_recv", client="cb", event="from83")
    await cl.wait_event(name="client_recv", client="ca", event="from83")
    assert await cl.wait_event(name="client_recv", client="cb", event="from82")
    with pytest.raises(siotools.NodePeerError):
        await cl.wait_event(name="client_recv", client="ca", event="from82", timeout=0.5)


@pytest.mark.node
async def test_82_sharded_nodes_alone(node_peers: StartFn, redis_url: str, key: str) -> None:
    a = await node_peers("sharded82", "A", port=0, adapter="sharded")
    await node_peers("sharded82", "B", port=0, adapter="sharded")

    async def traffic() -> None:
        await a.call("nsp_emit", nsp="/", rooms=[], event="e", args=[1])

    report = await examine(redis_url, key, during=traffic, monitor=True, duration=1.5)
    f = only(report, "sharded-8.2")
    assert f.severity is Severity.NOTE and report.exit_code == 0, report.to_text()
    assert f"{a.uid} (1)" in f.evidence[0]


async def test_a_lost_listen_is_a_gap_note(redis_url: str, key: str, rc: aioredis.Redis) -> None:
    # Redis closed the listen's connection (as it does to a slow subscriber): it reconnects,
    # and the report says the listen was deaf meanwhile instead of passing over it.
    async def listeners() -> set[str]:
        return {c["id"] for c in await rc.client_list() if c["psub"] != "0" and c["sub"] == "0"}

    before = await listeners()
    doctor = asyncio.create_task(siotools.doctor(redis_url, key, duration=1.5))
    for _ in range(250):
        if await listeners() - before:
            break
        await asyncio.sleep(0.02)
    mine = await listeners() - before
    assert len(mine) == 1, mine
    assert await rc.execute_command("CLIENT", "KILL", "ID", mine.pop()) == 1
    report = await doctor
    (gap,) = [f for f in report.findings if f.code == "listen-gap"]
    assert gap.severity is Severity.NOTE
    assert "lost its Redis connection 1 time(s)" in gap.title, report.to_text()
    assert any("subscribed again" in e for e in gap.evidence), gap.evidence


async def test_a_listen_lost_to_the_end_says_so(fresh_redis: RedisServer, key: str) -> None:
    # Redis went away during the listen and did not come back: the report still comes (the
    # subscriptions were read before) and says the rest of the listen heard nothing.
    r = aioredis.Redis.from_url(fresh_redis.url)

    async def listeners() -> set[str]:
        return {c["id"] for c in await r.client_list() if c["psub"] != "0" and c["sub"] == "0"}

    node = await PythonNode(fresh_redis.url, namespaces=["/"], dialect="current", key=key).start()
    try:
        before = await listeners()
        doctor = asyncio.create_task(siotools.doctor(fresh_redis.url, key, duration=1.5))
        for _ in range(250):
            if await listeners() - before:
                break
            await asyncio.sleep(0.02)
        assert await listeners() - before, "the doctor's listen never showed"
        await r.aclose()
        fresh_redis.kill()
        report = await doctor
    finally:
        await node.stop()
    (gap,) = [f for f in report.findings if f.code == "listen-gap"]
    assert "was not back when the listen ended" in gap.title, gap.title
    assert any("was lost" in e for e in gap.evidence), gap.evidence
