"""A Python process of the adapter benchmark: a server node or a client, driven over stdin.

Run as ``python -m bench._pynode server --impl siotools|pysio --redis URL --key K`` or
``python -m bench._pynode client --url http://127.0.0.1:PORT --room r``. It prints one JSON
line ``{"ready": ...}`` and then answers one JSON command per line with one JSON line, so
the benchmark's measured traffic never crosses this channel message by message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import socketio
from aiohttp import web

from siotools import AsyncRedisAdapter
from siotools.redis_server import free_port


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.latencies: list[float] = []

    def hit(self, sent_at: float | None = None) -> None:
        now = time.time()
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now
        if sent_at is not None:
            self.latencies.append(now - sent_at)

    def stats(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "first": self.first,
            "last": self.last,
            "latencies": self.latencies,
        }


async def server(args: argparse.Namespace) -> dict[str, Any]:
    if args.impl == "siotools":
        mgr: Any = AsyncRedisAdapter(args.redis, key=args.key)
    else:
        mgr = socketio.AsyncRedisManager(args.redis, channel=args.key)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=mgr)
    app = web.Application()
    sio.attach(app)

    @sio.on("join")  # type: ignore[misc]
    async def join(sid: str, rooms: str | list[str]) -> list[str]:
        for room in rooms if isinstance(rooms, list) else [rooms]:
            await sio.enter_room(sid, room)
        return list(sio.rooms(sid))

    decoded = Counter()
    if args.impl == "siotools":
        await mgr.start()
    else:
        # python-socketio decodes each queue message in _thread, then calls _handle_emit.
        original = mgr._handle_emit

        async def counting(message: dict[str, Any]) -> None:
            decoded.hit()
            await original(message)

        mgr._handle_emit = counting
        # Start its listener now, as the adapter does; the server must not start a second
        # one at the first connection.
        sio.manager_initialized = True
        mgr.initialize()
    port = free_port()
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    async def emit(n: int, rate: float, room: str) -> dict[str, Any]:
        start = time.perf_counter()
        if not rate:
            for i in range(n):
                await sio.emit("m", {"i": i, "t": time.time()}, to=room)
        else:
            t0 = time.perf_counter()
            i = 0
            while i < n:
                due = min(n, int((time.perf_counter() - t0) * rate) + 1)
                while i < due:
                    await sio.emit("m", {"i": i, "t": time.time()}, to=room)
                    i += 1
                await asyncio.sleep(0.001)
        looped = time.perf_counter() - start
        if args.impl == "siotools":
            await mgr._publisher.flush()
        return {"loop_s": looped, "flushed_s": time.perf_counter() - start}

    def stats() -> dict[str, Any]:
        if args.impl == "siotools":
            return {"count": mgr.stats["decoded"]}
        return {"count": decoded.count}

    return {"port": port, "emit": emit, "stats": stats, "runner": runner, "mgr": mgr}


async def client(args: argparse.Namespace) -> dict[str, Any]:
    sio = socketio.AsyncClient(reconnection=False)
    counter = Counter()

    @sio.on("m")  # type: ignore[misc]
    async def on_m(data: dict[str, Any]) -> None:
        counter.hit(data.get("t") if isinstance(data, dict) else None)

    await sio.connect(args.url, transports=["websocket"])
    if args.room:
        await sio.call("join", args.room, timeout=10)

    def reset() -> dict[str, Any]:
        counter.__init__()  # type: ignore[misc]
        return {}

    return {"stats": counter.stats, "reset": reset, "close": sio.disconnect}


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("--impl", default="siotools")
    p.add_argument("--redis")
    p.add_argument("--key", default="socket.io")
    p.add_argument("--url")
    p.add_argument("--room")
    args = p.parse_args()
    ctx = await (server(args) if args.role == "server" else client(args))
    print(json.dumps({"ready": {"port": ctx.get("port")}}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = json.loads(line)
        name = cmd.pop("cmd")
        if name == "quit":
            if "close" in ctx:
                await ctx["close"]()
            break
        result = ctx[name](**cmd)
        if asyncio.iscoroutine(result):
            result = await result
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
