"""The streams sniffer on a Redis Cluster: real @socket.io/redis-streams-adapter 0.3.1 nodes
(node-redis cluster clients, one XREAD per stream) with ``streamCount`` streams on three
masters, read by ``capture``/``sniff`` and ``siotools sniff`` with one XREAD per slot, and
through a slot's migration and a master's failover."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid

import pytest

from siotools import Emitter
from siotools.protocol import StreamMessage
from siotools.redis_cluster import RedisCluster
from siotools.sniffer import start_capture
from siotools.sniffer.streams import StreamSource, is_stream
from siotools.transport.cluster import channel_slot
from tests.nodepeer.fixtures import StartFn
from tests.sniffer.helpers import wait_frames

NEG = "/" + "x" * 20  # hashCode < 0: 0.3.1 writes it to "<stream>--1"


def _cluster_url(cluster: RedisCluster) -> str:
    return cluster.url + "?cluster=true"


def _owner(cluster: RedisCluster, key: str) -> int:
    slot = channel_slot(key.encode())
    return next(m.port for m in cluster.masters() if slot in m.slots)


def _spread_key(cluster: RedisCluster) -> str:
    """A prefix whose streamCount-3 streams ``-0``, ``-1``, ``-2`` are on three masters."""
    for _ in range(500):
        key = f"sio-{uuid.uuid4().hex[:8]}"
        if len({_owner(cluster, f"{key}-{i}") for i in range(3)}) == 3:
            return key
    raise AssertionError("no prefix spreads its streams over three masters")


@pytest.mark.node
async def test_stream_count_streams_on_three_masters(
    node_peers: StartFn, redis_cluster: RedisCluster
) -> None:
    rc = redis_cluster
    rc.wait_ok(30)
    key = _spread_key(rc)
    url = _cluster_url(rc)
    # streamCount 3: "/" -> <key>-2, "/chat" -> <key>-1, "/a" -> <key>-0, NEG -> <key>--1
    opts = {"redis_url": rc.url, "key": key, "stream": key, "streams_version": "0.3",
            "stream_count": 3, "nsps": ("/", "/chat", "/a", NEG),
            "redis_cluster": True}  # fmt: skip
    a = await node_peers("streams", "A", port=0, **opts)
    b = await node_peers("streams", "B", port=0, **opts)
    cl = await node_peers("streams", "CL")
    for client, nsp in (("c1", "/"), ("c2", "/chat"), ("c3", "/a")):
        await cl.call("client_connect", client=client, url=b.url, nsp=nsp)
    # Before the streams exist: followed from the option, each on its slot's master.
    cap = await start_capture(url, key, stream=key, stream_count=3)
    try:
        for client, nsp, event in (("c1", "/", "n-root"), ("c2", "/chat", "n-chat"),
                                   ("c3", "/a", "n-a")):  # fmt: skip
            await a.call("nsp_emit", nsp=nsp, event=event, args=[1])
            await cl.wait_event(name="client_recv", client=client, event=event)
        await a.call("nsp_emit", nsp=NEG, event="n-neg", args=[2])  # lost: nobody reads --1
        frames = await wait_frames(cap, lambda f: isinstance(f.frame, StreamMessage), 4)
    finally:
        cap.stop()
        await cap.wait()
    where = {f.frame.data["packet"]["data"][0]: f.channel for f in frames}
    assert where == {
        "n-root": f"{key}-2", "n-chat": f"{key}-1", "n-a": f"{key}-0", "n-neg": f"{key}--1",
    }  # fmt: skip
    assert set(cap.stream_keys) == {f"{key}-0", f"{key}-1", f"{key}-2", f"{key}--1", f"{key}--2"}

    # Not told the count: is_stream and the SCAN find the streams on every master.
    assert await is_stream(url, key) and not await is_stream(url, key, numbered=False)
    args = ["--url", url, "--prefix", key, "--stream", key, "--since", "-", "--json"]
    for extra in (["--stream-count", "3"], []):
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "siotools", "sniff", *args, *extra, "--count", "4"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        assert {(r["event"], r["channel"]) for r in rows} == {
            ("n-root", f"{key}-2"), ("n-chat", f"{key}-1"), ("n-a", f"{key}-0"),
            ("n-neg", f"{key}--1"),
        }, extra  # fmt: skip


async def test_reads_on_after_a_slot_migration_and_a_failover(
    owned_redis_cluster: RedisCluster,
) -> None:
    # Entries written as the adapter writes them (the streams emitter), read while the
    # slot of <key>-1 moves to another master (MOVED) and while that master dies and its
    # replica takes over (the slot map is read again).
    rc = owned_redis_cluster
    key = _spread_key(rc)
    url = _cluster_url(rc)
    chat = f"{key}-1"  # "/chat" with streamCount 3
    got: list[tuple[bytes, bytes]] = []
    arrived = asyncio.Event()

    def sink(t: int, batch: list[list[bytes]], sharded: bool) -> None:
        got.extend((r[2], r[3]) for r in batch)
        arrived.set()

    async def emit_until_read(event: str, via: str = url) -> None:
        async def until() -> None:
            async with Emitter(via, key=key, dialect="streams", stream=key, stream_count=3) as io:
                while True:
                    arrived.clear()
                    seen = len(got)
                    await io.of("/chat").emit(event)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(arrived.wait(), 1)
                    if any(event.encode() in p for _, p in got[seen:]):
                        return

        await asyncio.wait_for(until(), 45)

    source = StreamSource(url, key, sink, stream_count=3, block_ms=200)
    await source.start()
    slot = channel_slot(chat.encode())
    source_port = _owner(rc, chat)
    target = next(m.port for m in rc.masters() if m.port != source_port)
    try:
        await emit_until_read("before")
        await asyncio.to_thread(rc.migrate_slot, slot, target)
        await emit_until_read("after-migration")
        victim = rc.kill_master(slot)
        heir = await asyncio.to_thread(rc.wait_failover, victim)
        await emit_until_read("after-failover", f"redis://{heir.host}:{heir.port}?cluster=true")
    finally:
        await source.close()
        if rc.servers[target].running:
            await asyncio.to_thread(rc.migrate_slot, slot, source_port)
    assert {ch for ch, _ in got} == {chat.encode()}
    assert source.errors  # the lost master was seen, and read past
