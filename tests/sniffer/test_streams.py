"""Live capture of real @socket.io/redis-streams-adapter nodes: the stream read with XREAD
(passive), backfill with XRANGE, the same columns as pub/sub traffic."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from typing import Any

import pytest
import redis.asyncio as aioredis

from siotools import ConfigurationError, Emitter
from siotools.protocol import ClusterMessage, ClusterMessageType, Dialect, StreamMessage
from siotools.protocol.streams import stream_for, streams_for
from siotools.sniffer import capture, sniff, start_capture
from siotools.sniffer.streams import StreamSource, is_stream, node_streams
from tests.nodepeer.fixtures import StartFn
from tests.sniffer.helpers import wait_frames

pytestmark = pytest.mark.node

SIOTOOLS = [sys.executable, "-m", "siotools"]


async def test_sniff_streams_nodes(node_peers: StartFn, redis_url: str, key: str) -> None:
    opts = {"stream": key, "streams_version": "0.3"}
    a = await node_peers("streams", "A", port=0, **opts)
    b = await node_peers("streams", "B", port=0, **opts)
    cl = await node_peers("streams", "CL")
    await cl.call("client_connect", client="c1", url=b.url, nsp="/")
    await cl.call("client_join", client="c1", rooms=["room1"])
    await a.call("nsp_emit", nsp="/", event="before", args=[0])  # creates the stream
    # The node's XADD may land just after its call returns.
    for _ in range(200):
        if await is_stream(redis_url, key):
            break
        await asyncio.sleep(0.02)
    assert await is_stream(redis_url, key)

    cap = await start_capture(redis_url, key, stream=key)
    await a.call("nsp_emit", nsp="/", rooms=["room1"], event="news", args=["hi", b"\x01"])
    await cl.wait_event(name="client_recv", client="c1", event="news")
    await a.call("socketsJoin", nsp="/", rooms=["room1"], join=["room2"])
    # 0.3 sends fetchSockets over pub/sub: the PSUBSCRIBE half of the capture hears it
    await a.call("fetchSockets", nsp="/")
    assert await a.call("serverCount", nsp="/") == 2  # the sniffer is not counted
    frames = await wait_frames(cap, lambda f: f.dialect is Dialect.STREAMS, 2)
    await wait_frames(cap, lambda f: f.row.type == "FETCH_SOCKETS_RESPONSE", 1)
    cap.stop()
    await cap.wait()

    news, join = [f for f in frames if isinstance(f.frame, StreamMessage)][:2]
    assert news.channel == key and news.error is None
    assert news.frame.type == ClusterMessageType.BROADCAST and news.frame.uid == a.uid
    assert news.frame.data["packet"]["data"] == ["news", "hi", b"\x01"] and news.frame.binary
    assert join.frame.type == ClusterMessageType.SOCKETS_JOIN
    assert "before" not in str([f.frame for f in frames])  # from "$": no backfill asked
    df = cap.to_pandas()
    rows = df[df["channel"] == key]
    assert list(rows["dialect"]) == ["streams", "streams"]
    assert list(rows["type"]) == ["BROADCAST", "SOCKETS_JOIN"]
    assert cap.source.endswith("+xread")


@pytest.mark.parametrize("monitor", [False, True], ids=["psubscribe", "monitor"])
async def test_published_maps_say_streams(
    node_peers: StartFn, redis_url: str, key: str, monitor: bool
) -> None:
    # 0.3 PUBLISHes fetchSockets, broadcasts with an ack, serverSideEmit and every answer
    # as msgpack ClusterAdapter maps: heard by PSUBSCRIBE (or as a PUBLISH in MONITOR)
    # they cannot be the sharded adapter's, which only SPUBLISHes.
    opts = {"stream": key, "streams_version": "0.3"}
    a = await node_peers("streams", "A", port=0, **opts)
    b = await node_peers("streams", "B", port=0, **opts)
    cl = await node_peers("streams", "CL")
    await cl.call("client_connect", client="c1", url=b.url, nsp="/")
    await cl.call("client_join", client="c1", rooms=["room1"])
    if monitor:
        with pytest.warns(RuntimeWarning, match="MONITOR"):
            cap = await start_capture(redis_url, key, stream=key, monitor=True)
    else:
        cap = await start_capture(redis_url, key, stream=key)
    assert len(await a.call("fetchSockets", nsp="/")) == 1
    acks = await a.call(
        "nsp_emit", nsp="/", rooms=["room1"], event="ask", args=[b"\x01"], ack=True,
        flags={"timeout": 2000},
    )  # fmt: skip
    assert acks == [{"client": "c1", "event": "ask"}]
    await a.call("serverSideEmit", nsp="/", event="sse-ack", args=[1], ack=True)
    want = ("FETCH_SOCKETS_RESPONSE", "BROADCAST_ACK", "SERVER_SIDE_EMIT_RESPONSE")
    for name in want:
        await wait_frames(cap, lambda f, n=name: f.row.type == n, 1)  # type: ignore[misc]
    cap.stop()
    await cap.wait()

    maps = [f for f in cap.frames if isinstance(f.frame, ClusterMessage)]
    published = [f for f in maps if not isinstance(f.frame, StreamMessage)]
    assert {f.row.type for f in published} >= {"FETCH_SOCKETS", "BROADCAST", *want}
    assert all(not f.sharded and f.frame.binary for f in published)
    assert {f.dialect for f in maps} == {Dialect.STREAMS}
    df = cap.to_pandas()
    pubsub = df[df["channel"].str.startswith(f"{key}#")]
    assert len(pubsub) == len(published)
    assert set(df["dialect"]) == {"streams"}
    assert cap.anomalies()["mixed_dialect"] == 0


async def test_backfill_since_and_bad_key(redis_url: str, key: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await client.xadd(key, {"uid": "abc", "nsp": "/", "type": "2"})
        await client.xadd(key, {"uid": "abc", "nsp": "/", "type": "oops"})
        await client.set(f"{key}-str", "x")
    finally:
        await client.aclose()
    cap = await start_capture(redis_url, key, stream=key, since="-")
    await wait_frames(cap, lambda f: True, 2)
    cap.stop()
    await cap.wait()
    hb, bad = cap.frames[:2]
    assert isinstance(hb.frame, StreamMessage) and hb.frame.is_heartbeat
    assert bad.frame is None and "not a number" in (bad.error or "")
    with pytest.raises(ConfigurationError, match="not a stream"):
        await start_capture(redis_url, key, stream=f"{key}-str")


async def test_cli_sniff_stream_backfill(redis_url: str, key: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await client.xadd(key, {"uid": "abc", "nsp": "/", "type": "3", "data": DATA})
    finally:
        await client.aclose()
    args = ["--url", redis_url, "--prefix", key, "--stream", key, "--since", "-"]
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "siotools", "sniff", *args, "--count", "1", "--json"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    row = json.loads(line)
    assert (row["dialect"], row["channel"], row["event"]) == ("streams", key, "news")
    bad = subprocess.run(
        [sys.executable, "-m", "siotools", "sniff", "--url", redis_url, "--since", "-"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode == 2 and "--since needs --stream" in bad.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "siotools", "sniff", "--url", redis_url, "--stream-count", "2"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode == 2 and "--stream-count needs --stream" in bad.stderr


DATA = '{"packet":{"type":2,"data":["news",1]},"opts":{"rooms":[],"except":[],"flags":{}}}'


NEG = "/" + "x" * 20  # hashCode < 0: 0.3.1 puts it on "<stream>--1", which no node reads


async def test_stream_count_streams_followed_and_written(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    # 0.3 streamCount 3: "/" -> <key>-2, "/chat" -> <key>-1 (hashCode % 3), NEG -> <key>--1
    opts = {"stream": key, "streams_version": "0.3", "stream_count": 3,
            "nsps": ("/", "/chat", NEG)}  # fmt: skip
    a = await node_peers("streams", "A", port=0, **opts)
    b = await node_peers("streams", "B", port=0, **opts)
    cl = await node_peers("streams", "CL")
    for client, nsp in (("c1", "/"), ("c2", "/chat"), ("c3", NEG)):
        await cl.call("client_connect", client=client, url=b.url, nsp=nsp)
    # Started before any of the streams exists: followed from the option.
    cap = await start_capture(redis_url, key, stream=key, stream_count=3)
    await a.call("nsp_emit", nsp="/", event="n-root", args=[1])
    await a.call("nsp_emit", nsp="/chat", event="n-chat", args=[2])
    await cl.wait_event(name="client_recv", client="c1", event="n-root")
    await cl.wait_event(name="client_recv", client="c2", event="n-chat")
    await a.call("nsp_emit", nsp=NEG, event="n-neg", args=[3])  # lost: nobody reads --1
    async with Emitter(redis_url, key=key, dialect="streams", stream=key, stream_count=3) as io:
        await io.emit("e-root", 4)
        await io.of("/chat").emit("e-chat", 5)
        await io.of(NEG).emit("e-neg", 6)  # written where the nodes read
    for client, event in (("c1", "e-root"), ("c2", "e-chat"), ("c3", "e-neg")):
        await cl.wait_event(name="client_recv", client=client, event=event)
    frames = await wait_frames(cap, lambda f: isinstance(f.frame, StreamMessage), 6)
    cap.stop()
    await cap.wait()
    where = {f.frame.data["packet"]["data"][0]: f.channel for f in frames}
    assert where == {
        "n-root": f"{key}-2", "n-chat": f"{key}-1", "n-neg": f"{key}--1",
        "e-root": f"{key}-2", "e-chat": f"{key}-1", "e-neg": f"{key}-1",
    }  # fmt: skip
    assert not [e for e in cl.events if e.get("event") == "n-neg"]  # the adapter's own loss
    assert set(cap.to_pandas()["dialect"]) == {"streams"}

    # A capture that is not told the count finds the numbered streams by SCAN (and
    # sniff/the TUI, which look with is_stream, read them without being asked).
    assert await is_stream(redis_url, key) and not await is_stream(redis_url, key, numbered=False)
    found = await start_capture(redis_url, key, stream=key)
    async with Emitter(redis_url, key=key, dialect="streams", stream=key, stream_count=3) as io:
        await io.of("/chat").emit("again", 7)
    (again,) = await wait_frames(found, lambda f: f.event == "again", 1)
    found.stop()
    await found.wait()
    assert again.channel == f"{key}-1"
    assert set(found.stream_keys) == {key, f"{key}-1", f"{key}-2", f"{key}--1"}


def test_node_streams_are_where_every_namespace_goes() -> None:
    assert node_streams("K", 1) == ("K",)
    assert node_streams("K", 3) == ("K-0", "K-1", "K-2", "K--1", "K--2")
    nsps = ["/", "/chat", NEG, *(f"/n{i}" for i in range(200)), *(f"/{'y' * i}" for i in range(40))]
    for count in (1, 2, 3, 7):
        written = {stream_for(nsp, "K", count) for nsp in nsps}
        assert written <= set(node_streams("K", count)), count
        assert set(streams_for("K", count)) <= set(node_streams("K", count))
    assert {stream_for(nsp, "K", 3) for nsp in nsps} == set(node_streams("K", 3))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ConfigurationError, match="stream_count must be a positive integer"):
            node_streams("K", bad)  # type: ignore[arg-type]


def _entry(event: str, nsp: str = "/") -> dict[Any, Any]:
    data = {
        "packet": {"type": 2, "data": [event]},
        "opts": {"rooms": [], "except": [], "flags": {}},
    }
    return {"uid": "abc", "nsp": nsp, "type": "3", "data": json.dumps(data)}


async def test_capture_with_stream_count_reads_exactly_those_streams(
    redis_url: str, key: str
) -> None:
    client = aioredis.from_url(redis_url)
    try:
        for stream, event in (
            (f"{key}-1", "one"), (f"{key}--1", "neg"), (key, "base"), (f"{key}-2", "two"),
        ):  # fmt: skip
            await client.xadd(stream, _entry(event))
        # streamCount 2: <key>-0, <key>-1 and <key>--1; <key> and <key>-2 are no node's
        cap = await capture(redis_url, key, stream=key, stream_count=2, since="-", duration=1)
        assert set(cap.stream_keys) == {f"{key}-0", f"{key}-1", f"{key}--1"}
        assert sorted(f.event for f in cap.frames) == ["neg", "one"]
        everything = await capture(redis_url, key, stream=key, since="-", duration=1)
        assert sorted(f.event for f in everything.frames) == ["base", "neg", "one", "two"]

        got = []
        agen = sniff(redis_url, key, stream=key, stream_count=1, since="-", duration=1)
        async with contextlib.aclosing(agen):
            async for f in agen:
                got.append((f.channel, f.event))
        assert got == [(key, "base")]

        await client.set(f"{key}--1", "x")
        with pytest.raises(ConfigurationError, match=r"not a stream.*streamCount"):
            await start_capture(redis_url, key, stream=key, stream_count=2)
    finally:
        await client.aclose()
    with pytest.raises(ConfigurationError, match="stream_count= needs stream="):
        await start_capture(redis_url, key, stream_count=2)
    with pytest.raises(ConfigurationError, match="stream_count= needs stream="):
        await anext(sniff(redis_url, key, stream_count=2))
    with pytest.raises(ConfigurationError, match="positive integer"):
        await start_capture(redis_url, key, stream=key, stream_count=0)


async def _lines_until(proc: asyncio.subprocess.Process, rows: list[Any], event: str) -> None:
    async def until() -> None:
        while not any(row.get("event") == event for row in rows):
            line = await proc.stdout.readline()  # type: ignore[union-attr]
            assert line, (await proc.stderr.read()).decode()  # type: ignore[union-attr]
            rows.append(json.loads(line))

    await asyncio.wait_for(until(), 20)


async def test_cli_stream_count_reads_the_nodes_streams(
    node_peers: StartFn, redis_url: str, key: str
) -> None:
    # streamCount 3: "/" -> <key>-2, "/chat" -> <key>-1, "/a" -> <key>-0, NEG -> <key>--1.
    opts = {"stream": key, "streams_version": "0.3", "stream_count": 3,
            "nsps": ("/", "/chat", "/a", NEG)}  # fmt: skip
    a = await node_peers("streams", "A", port=0, **opts)
    b = await node_peers("streams", "B", port=0, **opts)
    cl = await node_peers("streams", "CL")
    for name, nsp in (("c1", "/"), ("c2", "/chat"), ("c3", "/a")):
        await cl.call("client_connect", client=name, url=b.url, nsp=nsp)
    client = aioredis.from_url(redis_url)
    try:
        await a.call("nsp_emit", nsp="/", event="n-root", args=[1])
        await a.call("nsp_emit", nsp=NEG, event="n-neg", args=[2])  # lost: nobody reads --1
        await cl.wait_event(name="client_recv", client="c1", event="n-root")
        for _ in range(100):
            if await client.xlen(f"{key}--1"):
                break
            await asyncio.sleep(0.05)
        # Streams no node with streamCount 3 reads or writes, with entries that decode.
        await client.xadd(key, _entry("decoy-base"))
        await client.xadd(f"{key}-5", _entry("decoy-5"))

        sniff_args = ["--url", redis_url, "--prefix", key, "--stream", key, "--since", "-"]
        # Told the count: the entries already there (--since -), then live ones, also on
        # <key>-0 and <key>-1, which did not exist when it started.
        proc = await asyncio.create_subprocess_exec(
            *SIOTOOLS, "sniff", *sniff_args, "--stream-count", "3", "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        rows: list[Any] = []
        try:
            await _lines_until(proc, rows, "n-neg")
            await _lines_until(proc, rows, "n-root")
            await a.call("nsp_emit", nsp="/a", event="n-a", args=[3])
            await cl.wait_event(name="client_recv", client="c3", event="n-a")
            await client.xadd(key, _entry("decoy-base-live"))
            await client.xadd(f"{key}-5", _entry("decoy-5-live"))
            await a.call("nsp_emit", nsp="/chat", event="n-last", args=[4])
            await cl.wait_event(name="client_recv", client="c2", event="n-last")
            # One XREAD reads every stream followed: the decoys, added before n-last,
            # would have come with it or before.
            await _lines_until(proc, rows, "n-last")
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            _, stderr = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, stderr.decode()
        read = {row["event"]: row["channel"] for row in rows if row["dialect"] == "streams"}
        assert read == {
            "n-root": f"{key}-2", "n-neg": f"{key}--1", "n-a": f"{key}-0", "n-last": f"{key}-1",
        }  # fmt: skip

        # Not told: every <key>-<integer> stream found by SCAN, and <key> itself.
        out = await asyncio.to_thread(
            subprocess.run, [*SIOTOOLS, "sniff", *sniff_args, "--json", "--duration", "2"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        found = {json.loads(line).get("event") for line in out.stdout.splitlines()}
        assert {"decoy-base", "decoy-5", "n-root", "n-neg", "n-a", "n-last"} <= found
    finally:
        await client.aclose()


def _pending_task(qualname: str) -> asyncio.Task[Any] | None:
    for task in asyncio.all_tasks():
        if getattr(task.get_coro(), "__qualname__", "") == qualname:
            return task
    return None


async def test_close_stops_a_reader_whose_cancel_was_lost(redis_url: str, key: str) -> None:
    # What hung a capture's stop: redis-py sends each command through asyncio.wait_for,
    # which on Python 3.11 loses a cancel that lands after the send completed but before
    # the waiting task resumed; the reader then read on, and close() waited for it
    # forever. Forced here: the source is stopped (stop(), what close() does first) in
    # the very loop turn in which the reader's XREAD send completes.
    source = StreamSource(redis_url, key, lambda *a: None, stream_count=2, block_ms=500)
    await source.start()
    try:
        reader = _pending_task("StreamSource._read")
        assert reader is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        send = None
        while send is None:  # the next XREAD's send, caught while it is still pending
            assert loop.time() < deadline, "no redis-py send task seen (renamed?)"
            await asyncio.sleep(0)
            send = _pending_task("AbstractConnection._send_packed_command")
        send.add_done_callback(lambda _: source.stop())
        while not reader.cancelling():
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
        if sys.version_info < (3, 12):
            # the cancel was lost: the reader is in its XREAD, not cancelled
            assert not reader.done()
        started = loop.time()
        await asyncio.wait_for(source.close(), 5)
        assert reader.done() and reader.cancelled()
        assert loop.time() - started < 2.5  # the XREAD (500 ms) ended, not a 3 s bound
    finally:
        await source.close()


async def test_a_key_replaced_by_another_type_is_dropped_and_the_rest_read(
    redis_url: str, key: str
) -> None:
    # One XREAD reads every stream: a WRONGTYPE for one key failed all of it, and the
    # reader ended without a word while the capture went on.
    got: list[bytes] = []
    arrived = asyncio.Event()

    def sink(t: int, batch: list[list[bytes]], sharded: bool) -> None:
        got.extend(r[2] for r in batch)
        arrived.set()

    source = StreamSource(redis_url, key, sink, stream_count=2, block_ms=200)
    client = aioredis.from_url(redis_url)
    try:
        await source.start()
        await client.set(f"{key}--1", "x")  # seen by the next XREAD (the block is 200 ms)

        async def dropped() -> None:
            while f"{key}--1" in source.keys:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(dropped(), 10)
        assert any("WRONGTYPE" in e for e in source.errors)
        await client.xadd(f"{key}-1", _entry("after"))
        await asyncio.wait_for(arrived.wait(), 10)
        assert got == [f"{key}-1".encode()]
        assert f"{key}-0" in source.keys
    finally:
        await source.close()
        await client.aclose()
