"""Regenerate tests/data/vectors/streams: real @socket.io/redis-streams-adapter traffic.

Each scenario runs on a fresh redis-server with three real Node nodes (A, B, C) of the
``streams`` flavor and real socket.io clients. The stream's entries are read back with
XRANGE at the end (complete, in order, passive), the pub/sub messages (0.3.x sends its
ephemeral messages there) are heard with ``PSUBSCRIBE *`` while the scenario runs, and
the connection-state-recovery session keys are read with GET/PTTL.

Run: ``python -m tests.streams_capture [--out DIR] [scenario ...]``. Socket ids, uids,
request ids and entry ids come out different on every run.

Files per scenario: ``<scenario>.entries.ndjson`` (one JSON object a line, ``source``
``"stream"``: ``{"t", "stream", "id", "fields": [[name, value], ...]}``; ``"pubsub"``:
``{"t", "channel", "pattern", "data_hex"}``; ``"key"``: ``{"t", "key", "value", "pttl"}``)
and ``<scenario>.meta.json`` (versions, nodes, clients, steps, events).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from siotools.nodepeer import HERE, NodePeer, to_wire
from siotools.redis_server import RedisServer

OUT = Path(__file__).resolve().parent / "data" / "vectors" / "streams"
PACKAGES = {
    "socket.io": "socket.io",
    "@socket.io/redis-streams-adapter": "@socket.io/redis-streams-adapter",
    "@socket.io/redis-streams-adapter (0.2 alias)": "redis-streams-adapter-0.2",
    "socket.io-adapter": "socket.io-adapter",
    "socket.io-parser": "socket.io-parser",
    "@msgpack/msgpack": "@msgpack/msgpack",
    "socket.io-client": "socket.io-client",
    "redis": "redis",
}
CLIENTS = [  # name, node, nsp, rooms
    ("a1", "A", "/", ["room1"]),
    ("a2", "A", "/", ["room3"]),
    ("b1", "B", "/", ["room1", "room2"]),
    ("c1", "C", "/", ["room2", "salle-é"]),
    ("a1chat", "A", "/chat", ["chatroom"]),
    ("c2chat", "C", "/chat", ["chatroom"]),
]
Step = tuple[str, str, str, dict[str, Any]]  # desc, peer, cmd, params


@dataclass
class Scenario:
    name: str
    description: str
    steps: list[Step]
    version: str = "0.3"
    stream: str = "socket.io"
    key: str = "socket.io"
    node_options: dict[str, Any] = field(default_factory=dict)


def versions() -> dict[str, str]:
    lock = json.loads((HERE / "streams" / "package-lock.json").read_text())["packages"]
    return {label: lock[f"node_modules/{pkg}"]["version"] for label, pkg in PACKAGES.items()}


SCENARIOS = [
    Scenario(
        "broadcast_all",
        "Broadcast to every client of '/' and of '/chat' (XADD, JSON data).",
        [
            ("io.emit('news', 'hi')", "A", "nsp_emit",
             {"nsp": "/", "event": "news", "args": ["hi"]}),
            ("io.of('/chat').emit('chat', {n: 1})", "B", "nsp_emit",
             {"nsp": "/chat", "event": "chat", "args": [{"n": 1}]}),
        ],
    ),
    Scenario(
        "broadcast_rooms",
        "Broadcast to rooms, to a socket id and to a non-ASCII room.",
        [
            ("io.to('room1').emit('r1', 1)", "A", "nsp_emit",
             {"nsp": "/", "rooms": ["room1"], "event": "r1", "args": [1]}),
            ("io.to(['room1','room2']).emit('r12', 3)", "B", "nsp_emit",
             {"nsp": "/", "rooms": ["room1", "room2"], "event": "r12", "args": [3]}),
            ("io.to('salle-é').emit('é', 'ü')", "C", "nsp_emit",
             {"nsp": "/", "rooms": ["salle-é"], "event": "é", "args": ["ü"]}),
        ],
    ),
    Scenario(
        "broadcast_except",
        "Broadcast with except rooms.",
        [
            ("io.except('room1').emit('ex', 1)", "A", "nsp_emit",
             {"nsp": "/", "except": ["room1"], "event": "ex", "args": [1]}),
            ("io.to('room2').except('room1').emit('ex2', 2)", "B", "nsp_emit",
             {"nsp": "/", "rooms": ["room2"], "except": ["room1"], "event": "ex2", "args": [2]}),
        ],
    ),
    Scenario(
        "broadcast_binary",
        "Binary arguments: data is base64 of msgpack instead of JSON.",
        [
            ("io.emit('bin', Buffer<00 01 fe ff>)", "A", "nsp_emit",
             {"nsp": "/", "event": "bin", "args": [b"\x00\x01\xfe\xff"]}),
            ("io.to('room2').emit('mixed', 'x', {b: Buffer<ff>, n: [1, null, 2.5]})", "B",
             "nsp_emit",
             {"nsp": "/", "rooms": ["room2"], "event": "mixed",
              "args": ["x", {"b": b"\xff", "n": [1, None, 2.5]}]}),
        ],
    ),
    Scenario(
        "broadcast_flags",
        "Broadcast flags: volatile, compress(false); local sends nothing to Redis.",
        [
            ("io.volatile.emit('vol', 1)", "A", "nsp_emit",
             {"nsp": "/", "flags": {"volatile": True}, "event": "vol", "args": [1]}),
            ("io.compress(false).emit('nocomp', 2)", "A", "nsp_emit",
             {"nsp": "/", "flags": {"compress": False}, "event": "nocomp", "args": [2]}),
            ("io.local.emit('loc', 3)", "A", "nsp_emit",
             {"nsp": "/", "flags": {"local": True}, "event": "loc", "args": [3]}),
        ],
    ),
    Scenario(
        "broadcast_ack",
        "Broadcast with acknowledgements: 0.3 sends the request over pub/sub (msgpack), the "
        "client counts and acks on the requester's channel.",
        [
            ("io.timeout(1000).emit('ask', 1, cb)", "A", "nsp_emit",
             {"nsp": "/", "flags": {"timeout": 1000}, "event": "ask", "args": [1], "ack": True}),
            ("io.to('room2').timeout(1000).emit('askbin', Buffer<01>, cb)", "B", "nsp_emit",
             {"nsp": "/", "rooms": ["room2"], "flags": {"timeout": 1000}, "event": "askbin",
              "args": [b"\x01"], "ack": True}),
        ],
    ),
    Scenario(
        "fetchSockets",
        "fetchSockets of all sockets and of a room (pub/sub request and responses in 0.3).",
        [
            ("io.fetchSockets()", "A", "fetchSockets", {"nsp": "/"}),
            ("io.in('room1').fetchSockets()", "B", "fetchSockets",
             {"nsp": "/", "rooms": ["room1"]}),
        ],
    ),
    Scenario(
        "socketsJoin_socketsLeave",
        "socketsJoin and socketsLeave (XADD).",
        [
            ("io.in('room1').socketsJoin('room9')", "A", "socketsJoin",
             {"nsp": "/", "rooms": ["room1"], "join": ["room9"]}),
            ("io.socketsLeave(['room9', 'room2'])", "B", "socketsLeave",
             {"nsp": "/", "leave": ["room9", "room2"]}),
        ],
    ),
    Scenario(
        "disconnectSockets",
        "disconnectSockets without and with close (XADD).",
        [
            ("io.in('room3').disconnectSockets()", "B", "disconnectSockets",
             {"nsp": "/", "rooms": ["room3"]}),
            ("io.in('salle-é').disconnectSockets(true)", "A", "disconnectSockets",
             {"nsp": "/", "rooms": ["salle-é"], "close": True}),
        ],
    ),
    Scenario(
        "serverSideEmit",
        "serverSideEmit with and without ack, and with binary (pub/sub in 0.3).",
        [
            ("io.serverSideEmit('sse', 'hello', {x: 1})", "A", "serverSideEmit",
             {"nsp": "/", "event": "sse", "args": ["hello", {"x": 1}]}),
            ("io.timeout(1000).serverSideEmit('sse-ack', 1, cb)", "A", "serverSideEmit",
             {"nsp": "/", "event": "sse-ack", "args": [1], "ack": True, "timeout": 1000}),
            ("io.serverSideEmit('sse', Buffer<01 02>)", "C", "serverSideEmit",
             {"nsp": "/", "event": "sse", "args": [b"\x01\x02"]}),
        ],
    ),
    Scenario(
        "recovery_session",
        "Connection state recovery: a dropped client's session is stored under sio:session:<pid> "
        "(base64 msgpack, PX); a broadcast it missed stays in the stream.",
        [
            ("a2's transport closes (recoverable)", "CL", "client_drop", {"client": "a2"}),
            ("io.emit('missed', 1)", "B", "nsp_emit", {"nsp": "/", "event": "missed", "args": [1]}),
        ],
        node_options={"recovery": 60000},
    ),
    Scenario(
        "stream_myapp",
        "Custom stream name and channel prefix (streamName 'myapp-stream', channelPrefix 'myapp').",
        [
            ("io.emit('news', 1)", "A", "nsp_emit", {"nsp": "/", "event": "news", "args": [1]}),
            ("io.serverSideEmit('sse', 2)", "B", "serverSideEmit",
             {"nsp": "/", "event": "sse", "args": [2]}),
        ],
        stream="myapp-stream",
        key="myapp",
    ),
    Scenario(
        "v02_heartbeat",
        "0.2.3 (ClusterAdapterWithHeartbeat, everything on the stream): heartbeats, a "
        "broadcast, fetchSockets and serverSideEmit with ack whose responses are stream "
        "entries, and ADAPTER_CLOSE when a namespace's adapter closes.",
        [
            ("wait for heartbeats", "A", "sleep", {"ms": 700}),
            ("io.emit('news', 'hi')", "A", "nsp_emit",
             {"nsp": "/", "event": "news", "args": ["hi"]}),
            ("io.in('room1').fetchSockets()", "B", "fetchSockets",
             {"nsp": "/", "rooms": ["room1"]}),
            ("io.timeout(1000).serverSideEmit('sse-ack', 1, cb)", "A", "serverSideEmit",
             {"nsp": "/", "event": "sse-ack", "args": [1], "ack": True, "timeout": 1000}),
            ("io.timeout(1000).emit('askbin', Buffer<01>, cb)", "C", "nsp_emit",
             {"nsp": "/", "flags": {"timeout": 1000}, "event": "askbin", "args": [b"\x01"],
              "ack": True}),
            ("io.of('/chat').adapter.close() on C", "C", "close_adapter", {"nsp": "/chat"}),
        ],
        version="0.2",
        node_options={"heartbeat_interval": 300},
    ),
]  # fmt: skip


async def _listen(url: str, out: list[dict[str, Any]], ready: asyncio.Event) -> None:
    client = aioredis.from_url(url)
    pubsub = client.pubsub()
    try:
        await pubsub.psubscribe("*")
        ready.set()
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is None or msg["type"] != "pmessage":
                continue
            out.append(
                {
                    "t": time.time(),
                    "source": "pubsub",
                    "channel": msg["channel"].decode(),
                    "pattern": msg["pattern"].decode(),
                    "data_hex": bytes(msg["data"]).hex(),
                }
            )
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
        await client.aclose()


async def run(sc: Scenario, out_dir: Path) -> None:
    """Run one scenario on a fresh Redis and write its two files."""
    with RedisServer() as server:
        url = server.url
        opts = {"streams_version": sc.version, "stream": sc.stream, "key": sc.key}
        opts.update(sc.node_options)
        peers: dict[str, NodePeer] = {}
        heard: list[dict[str, Any]] = []
        ready = asyncio.Event()
        listener = asyncio.create_task(_listen(url, heard, ready))
        await ready.wait()
        try:
            for name in ("A", "B", "C"):
                peers[name] = await NodePeer.start(
                    "streams", name=name, port=0, redis_url=url, nsps=("/", "/chat"),
                    requests_timeout_ms=1500, **opts,
                )  # fmt: skip
            cl = peers["CL"] = await NodePeer.start("streams", name="CL", redis_url=url)
            clients = []
            for cname, node, nsp, rooms in CLIENTS:
                got = await cl.call("client_connect", client=cname, url=peers[node].url, nsp=nsp)
                joined = await cl.call("client_join", client=cname, rooms=rooms)
                clients.append(
                    {"name": cname, "node": node, "nsp": nsp, "sid": got["id"], "rooms": joined}
                )
            await asyncio.sleep(0.3)
            t_setup = time.time()
            steps = []
            for i, (desc, peer, cmd, params) in enumerate(sc.steps, 1):
                t0 = time.time()
                ok, error, result = True, None, None
                try:
                    if cmd == "sleep":
                        await asyncio.sleep(params["ms"] / 1000)
                    else:
                        result = await peers[peer].call(cmd, **params)
                except Exception as exc:  # the capture records a step's failure
                    ok, error = False, str(exc).splitlines()[0]
                steps.append(
                    {"index": i, "desc": desc, "peer": peer, "cmd": cmd,
                     "params": to_wire(params), "ok": ok, "error": error,
                     "result": to_wire(result), "t_start": t0, "t_end": time.time()}
                )  # fmt: skip
                await asyncio.sleep(0.3)
            await asyncio.sleep(0.3)
            t_end = time.time()
            records = [r for r in heard if r["t"] >= t_setup]
            reader = aioredis.from_url(url)
            try:
                for sid, fields in await reader.xrange(sc.stream):
                    ms = int(sid.split(b"-")[0])  # every entry, 0.2's start-up heartbeats too
                    records.append(
                        {"t": ms / 1000, "source": "stream", "stream": sc.stream,
                         "id": sid.decode(),
                         "fields": [[k.decode(), v.decode()] for k, v in fields.items()]}
                    )  # fmt: skip
                async for k in reader.scan_iter(match="sio:session:*"):
                    records.append(
                        {"t": t_end, "source": "key", "key": k.decode(),
                         "value": (await reader.get(k) or b"").decode(),
                         "pttl_positive": (await reader.pttl(k)) > 0}
                    )  # fmt: skip
            finally:
                await reader.aclose()
            records.sort(key=lambda r: (r["t"], r.get("id", "")))
            nodes = []
            for name in ("A", "B", "C"):
                info = await peers[name].call("info")
                nodes.append({"name": name, "port": info["port"], "uids": info["uids"],
                              "state": info["nsps"]})  # fmt: skip
            events = [
                to_wire({**ev, "peer": name}) for name, p in peers.items() for ev in p.events
                if ev.get("t", 0) >= t_setup
            ]  # fmt: skip
        finally:
            for p in peers.values():
                await p.stop()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
    vs = versions()
    meta = {
        "scenario": sc.name,
        "group": "streams",
        "flavor": "streams",
        "streams_version": vs["@socket.io/redis-streams-adapter" if sc.version == "0.3"
                              else "@socket.io/redis-streams-adapter (0.2 alias)"],
        "description": sc.description,
        "stream": sc.stream,
        "key": sc.key,
        "session_key_prefix": "sio:session:",
        "versions": vs,
        "node_options": sc.node_options,
        "requests_timeout_ms": 1500,
        "nodes": nodes,
        "clients": clients,
        "t_setup_done": t_setup,
        "t_end": t_end,
        "steps": steps,
        "client_events": [e for e in events if e["peer"] == "CL"],
        "server_events": [e for e in events if e["peer"] != "CL"],
    }  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    (out_dir / f"{sc.name}.entries.ndjson").write_text(lines, encoding="utf-8")
    (out_dir / f"{sc.name}.meta.json").write_text(
        json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"{sc.name}: {len(records)} records")


async def main(argv: list[str] | None = None) -> None:
    """Run the scenarios named on the command line (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("scenarios", nargs="*")
    ns = parser.parse_args(argv)
    for sc in SCENARIOS:
        if not ns.scenarios or sc.name in ns.scenarios:
            await run(sc, ns.out)


if __name__ == "__main__":
    asyncio.run(main())
