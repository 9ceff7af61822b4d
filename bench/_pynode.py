"""A Python server node of the adapter benchmark, driven over stdin.

Run as ``python -m bench._pynode --impl siotools|pysio --redis URL --key K [--stack S]
[--ws-compression] [--dialect legacy|current] [--delivery] [--uvloop]``. It prints one JSON line
``{"ready": ...}`` and then answers one JSON command per line with one JSON line, so the
benchmark's measured traffic never crosses this channel message by message.

``--delivery`` runs siotools with :class:`siotools.delivery.LocalDelivery` wired into a
benchmark-local subclass of the adapter (the change the adapter itself is to make).
``--profile FILE`` writes a cProfile of the process (its whole life) to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import sys
import time
from collections.abc import Iterable
from typing import Any

import socketio

from siotools import AsyncRedisAdapter
from siotools.delivery import LocalDelivery
from siotools.protocol import Dialect
from siotools.pynode import HttpServer, async_mode
from siotools.redis_server import free_port


class DeliveringAdapter(AsyncRedisAdapter):  # type: ignore[misc]
    """The adapter with its local sends handed to :class:`LocalDelivery` (benchmark only).

    ``_deliver_local`` is the adapter's own recipient selection, unchanged; only the last
    lines (one ``_send_eio_packet`` per recipient) become ``LocalDelivery.deliver``.
    """

    _delivery: LocalDelivery | None = None

    async def _deliver_local(
        self,
        nsp: str,
        data: list[Any],
        rooms: list[Any],
        except_: Iterable[Any],
        *,
        volatile: bool = False,
    ) -> None:
        ns_rooms = self.rooms.get(nsp)
        if not ns_rooms:
            return
        skip = set(except_)
        if rooms:
            targets: dict[str, str] = {}
            for room in rooms:
                members = ns_rooms.get(room)
                if members:
                    for sid, eio_sid in members.items():
                        if sid not in skip and sid not in targets:
                            targets[sid] = eio_sid
            recipients = list(targets.items())
        else:
            recipients = [(s, e) for s, e in ns_rooms.get(None, {}).items() if s not in skip]
        if not recipients:
            return
        # --- the change: three lines in the adapter ---
        if self._delivery is None:
            self._delivery = LocalDelivery(self.server)
        await self._delivery.deliver(nsp, data, recipients, volatile)


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


async def server(args: argparse.Namespace) -> dict[str, Any]:
    if args.impl == "siotools":
        cls = DeliveringAdapter if args.delivery else AsyncRedisAdapter
        mgr: Any = cls(args.redis, key=args.key, dialect=Dialect(args.dialect))
    else:
        mgr = socketio.AsyncRedisManager(args.redis, channel=args.key)
    sio = socketio.AsyncServer(
        async_mode=async_mode(args.stack), client_manager=mgr, transports=["websocket"]
    )

    @sio.on("join")  # type: ignore[misc]
    async def join(sid: str, rooms: str | list[str]) -> list[str]:
        for room in rooms if isinstance(rooms, list) else [rooms]:
            await sio.enter_room(sid, room)
        return list(sio.rooms(sid))

    decoded = 0
    if args.impl == "siotools":
        await mgr.start()
    else:
        # python-socketio decodes each queue message in _thread, then calls _handle_emit.
        original = mgr._handle_emit

        async def counting(message: dict[str, Any]) -> None:
            nonlocal decoded
            decoded += 1
            await original(message)

        mgr._handle_emit = counting
        # Start its listener now, as the adapter does; the server must not start a second
        # one at the first connection.
        sio.manager_initialized = True
        mgr.initialize()
    port = free_port()
    http = HttpServer(sio, port=port, stack=args.stack, ws_compression=args.ws_compression)
    await http.start()

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

    async def emit_ack(n: int, room: str, timeout: float = 10.0) -> dict[str, Any]:
        # broadcasts with acknowledgements across nodes: the 8.x dialect's emit_with_ack
        emit_with_ack = getattr(mgr, "emit_with_ack", None)
        if emit_with_ack is None:
            return {"error": "this adapter has no emit_with_ack (the 8.x dialect has)"}
        start = time.perf_counter()
        acks = 0
        try:
            for i in range(n):
                data = {"i": i, "t": time.time()}
                acks += len(await emit_with_ack("m", data, to=room, timeout=timeout))
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"s": time.perf_counter() - start, "acks": acks}

    def stats() -> dict[str, Any]:
        if args.impl == "siotools":
            return {"count": mgr.stats["decoded"]}
        return {"count": decoded}

    async def close() -> None:
        await sio.shutdown()
        await http.stop()
        if args.impl == "siotools":
            await mgr.close()

    return {
        "port": port,
        "emit": emit,
        "emit_ack": emit_ack,
        "stats": stats,
        "cpu": cpu_s,
        "close": close,
    }


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--impl", default="siotools", choices=["siotools", "pysio"])
    p.add_argument("--redis", required=True)
    p.add_argument("--key", default="socket.io")
    p.add_argument("--stack", default="aiohttp")
    p.add_argument("--ws-compression", action="store_true")
    p.add_argument("--dialect", default="legacy")
    p.add_argument("--delivery", action="store_true")
    p.add_argument("--profile")
    args = p.parse_args()
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    try:
        ctx = await server(args)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return
    print(json.dumps({"ready": {"port": ctx["port"], "pid": os.getpid()}}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = json.loads(line)
        name = cmd.pop("cmd")
        cmd.pop("id", None)
        if name == "quit":
            await ctx["close"]()
            break
        result = ctx[name](**cmd)
        if asyncio.iscoroutine(result):
            result = await result
        print(json.dumps(result), flush=True)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        # the event loop is the host application's choice; measured as an option
        import uvloop

        sys.argv.remove("--uvloop")
        uvloop.run(main())
    else:
        asyncio.run(main())
