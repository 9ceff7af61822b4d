"""Sharded broadcast throughput over a 3-master Redis Cluster: siotools vs a Node sharded
node, in one run.

Run: ``nice -n 10 python -m bench.bench_sharded [--n 60000]``

A private 3-master Redis Cluster (no replicas). The receiving server is either a siotools
``AsyncRedisAdapter(dialect="sharded", cluster=True)`` (python-socketio on aiohttp, its own
process) or a socket.io 4.8.4 + @socket.io/redis-adapter 8.3.0 ``createShardedAdapter``
node on node-redis ``createCluster``, both in ``dynamic`` subscription mode. One Node
socket.io-client 4.8 websocket client is connected to it, in three rooms whose room
channels (``key#/#room#``) live on three different masters ("3 masters"), or on one master
("1 master"). Three flood processes SPUBLISH ``n/3`` ClusterAdapter BROADCASTs each, one
per room channel, to the slot's master, as fast as Redis takes them; the rate is what
reached the client, per second from the first to the last arrival.

Figures are printed, never asserted; read the ratios of the same run (the machine is
shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import hiredis

from siotools.nodepeer import NodePeer
from siotools.redis_cluster import RedisCluster
from siotools.transport.cluster import channel_slot

KEY = "bench-sharded"


def flood(port: int, channel: bytes, payload: bytes, n: int) -> None:
    """SPUBLISH ``payload`` ``n`` times on ``channel`` to the master on ``port``."""
    command = hiredis.pack_command((b"SPUBLISH", channel, payload))
    sock = socket.create_connection(("127.0.0.1", port))
    reader = hiredis.Reader()
    replies = 0

    def drain() -> None:
        nonlocal replies
        while replies < n:
            data = sock.recv(1 << 16)
            if not data:
                return
            reader.feed(data)
            while reader.gets() is not False:
                replies += 1

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    sent = 0
    while sent < n:
        batch = min(1000, n - sent)
        sock.sendall(command * batch)
        sent += batch
    t.join(120)
    sock.close()
    print(replies, flush=True)


async def serve(url: str) -> None:
    """A siotools sharded server; prints its port, then runs until stdin closes."""
    import socketio
    from aiohttp import web

    from siotools import AsyncRedisAdapter
    from siotools.redis_server import free_port

    adapter = AsyncRedisAdapter(url, key=KEY, dialect="sharded", cluster=True)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=adapter)
    app = web.Application()
    sio.attach(app)

    @sio.on("join")  # type: ignore[misc]
    async def join(sid: str, rooms: list[str]) -> list[str]:
        for room in rooms:
            await sio.enter_room(sid, room)
        return list(sio.rooms(sid))

    await adapter.start()
    port = free_port()
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(json.dumps({"port": port}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    await adapter.close()


def message(room: str) -> bytes:
    # A ClusterAdapter BROADCAST from another sharded node (16-hex uid), as RA 8.3 sends it.
    body = {
        "type": 3,
        "data": {
            "packet": {"type": 2, "data": ["m", {"user": "u7", "text": "hello"}]},
            "opts": {"rooms": [room], "except": [], "flags": {}},
        },
        "uid": "f100d0123456789a",
        "nsp": "/",
    }
    return json.dumps(body, separators=(",", ":")).encode()


def pick_rooms(rc: RedisCluster, spread: bool) -> list[tuple[str, int]]:
    """Three rooms and the master port of each room channel."""
    masters = rc.masters()
    owner = {slot: m.port for m in masters for slot in m.slots}
    out: list[tuple[str, int]] = []
    used: set[int] = set()
    i = 0
    while len(out) < 3:
        room = f"room{i}"
        port = owner[channel_slot(f"{KEY}#/#{room}#".encode())]
        if (spread and port not in used) or (not spread and (not out or port == out[0][1])):
            out.append((room, port))
            used.add(port)
        i += 1
    return out


async def run(impl: str, rc: RedisCluster, rooms: list[tuple[str, int]], n: int) -> dict[str, Any]:
    cl = await NodePeer.start("current", name="CL", redis_url=rc.url, redis_cluster=True)
    server: Any = None
    try:
        if impl == "node":
            server = await NodePeer.start(
                "current",
                name="B",
                port=0,
                redis_url=rc.url,
                key=KEY,
                adapter="sharded",
                subscription_mode="dynamic",
                redis_cluster=True,
            )
            url = server.url
        else:
            server = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.bench_sharded",
                "--serve",
                rc.url,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert server.stdout is not None
            line = await asyncio.wait_for(server.stdout.readline(), 30)
            url = f"http://127.0.0.1:{json.loads(line)['port']}"
        await cl.call("client_connect", client="c", url=url, nsp="/")
        await cl.call("client_join", client="c", rooms=[r for r, _ in rooms])
        if impl == "node":
            await server.call("settle")
        await asyncio.sleep(0.5)  # the room SSUBSCRIBEs (Python: already confirmed)
        await cl.call("bench_client", client="c", event="m")
        per = n // len(rooms)
        floods = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.bench_sharded",
                    "--flood",
                    str(port),
                    f"{KEY}#/#{room}#",
                    message(room).hex(),
                    str(per),
                ],
                stdout=subprocess.PIPE,
            )
            for room, port in rooms
        ]
        taken = 0
        for proc in floods:
            out, _ = await asyncio.to_thread(proc.communicate)
            taken += int(out or 0)
        total = per * len(rooms)
        last, changed = -1, time.monotonic()
        while True:
            stats = await cl.call("bench_client_stats", client="c")
            count = int(stats["count"]) if stats else 0
            if count != last:
                last, changed = count, time.monotonic()
            if count >= total or time.monotonic() - changed > 3.0:
                break
            await asyncio.sleep(0.1)
        span = max(1e-9, stats["last"] - stats["first"]) if count else 0.0
        return {
            "impl": impl,
            "sent": total,
            "taken_by_redis": taken,
            "delivered": count,
            "per_s": count / span if count else 0.0,
        }
    finally:
        await cl.stop()
        if impl == "node" and server is not None:
            await server.stop()
        elif server is not None:
            assert server.stdin is not None
            server.stdin.close()
            try:
                await asyncio.wait_for(server.wait(), 10)
            except TimeoutError:
                server.kill()
                await server.wait()


async def main(args: argparse.Namespace) -> None:
    rc = RedisCluster(masters=3, replicas=0).start()
    try:
        print(f"sharded broadcast throughput, {args.n} broadcasts, 1 websocket client")
        for label, spread in (("3 masters", True), ("1 master", False)):
            rooms = pick_rooms(rc, spread)
            for impl in ("siotools", "node"):
                r = await run(impl, rc, rooms, args.n)
                print(
                    f"  {label:9} {impl:8}: {r['per_s']:>9.0f} msg/s delivered "
                    f"({r['delivered']}/{r['sent']}, Redis took {r['taken_by_redis']})",
                    flush=True,
                )
    finally:
        rc.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--flood":
        flood(int(sys.argv[2]), sys.argv[3].encode(), bytes.fromhex(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--serve":
        asyncio.run(serve(sys.argv[2]))
    else:
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        parser.add_argument("--n", type=int, default=60000)
        asyncio.run(main(parser.parse_args()))
