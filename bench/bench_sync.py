"""Synchronous adapter benchmark: RedisAdapter vs python-socketio's RedisManager vs
AsyncRedisAdapter, in one run, on one private Redis.

* **emit**: a serial loop of N ``emit(..., to="r")`` from the server's thread (no local
  socket in ``r``: everything is published); the rate counts until Redis has taken them all
  (a round trip on the same connection after the loop: NUMSUB for the siotools adapters,
  whose publishes are pipelined; python-socketio's ``RedisManager`` waits for each PUBLISH).
* **receive**: a separate process floods Redis with broadcasts to rooms the node does not
  have, on the namespace channel; the rate at which the node takes them off Redis and
  through its room gate (python-socketio decodes each JSON message; the siotools adapters
  read the rooms without decoding the packet, as the Node adapters do).

All three speak to Redis from the benchmark process; the flooder runs in its own process.
Figures are ratios measured in the same run (``sync/pysio``, ``sync/async``).

Run: ``python -m bench.bench_sync [--n 20000] [--flood 50000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import socketio

from bench.bench_adapter import flood_payload
from siotools import AsyncRedisAdapter, RedisAdapter
from siotools.redis_server import RedisServer

IMPLS = ("sync", "pysio", "async")


class _CountingRedisManager(socketio.RedisManager):  # type: ignore[misc]
    """python-socketio's RedisManager, counting the broadcasts its listener handled."""

    handled = 0

    def _handle_emit(self, message: Any) -> Any:
        type(self).handled += 1
        return super()._handle_emit(message)


def _flood(port: int, impl: str, key: str, n: int) -> subprocess.Popen[bytes]:
    channel, payload_hex = flood_payload("pysio" if impl == "pysio" else "siotools", key)
    return subprocess.Popen(
        [sys.executable, "-m", "bench._flood", str(port), channel, payload_hex, str(n)]
    )


def _wait(count: Callable[[], int], target: int, idle: float = 5.0) -> tuple[int, float]:
    last, last_change = -1, time.perf_counter()
    while True:
        now, value = time.perf_counter(), count()
        if value != last:
            last, last_change = value, now
        if value >= target or now - last_change > idle:
            return value, now
        time.sleep(0.005)


def bench_sync_impl(impl: str, redis: RedisServer, n: int, flood: int) -> dict[str, float]:
    key = f"b{uuid.uuid4().hex[:6]}"
    if impl == "sync":
        adapter: Any = RedisAdapter(redis.url, key=key)
        count: Callable[[], int] = lambda: adapter.stats["received"]  # noqa: E731
    else:
        _CountingRedisManager.handled = 0
        adapter = _CountingRedisManager(redis.url, channel=key)
        count = lambda: _CountingRedisManager.handled  # noqa: E731
    sio = socketio.Server(async_mode="threading", client_manager=adapter)
    if impl == "sync":
        adapter.start()
    else:
        adapter.initialize()  # python-socketio starts its listener at the first client
        time.sleep(0.5)
    started = time.perf_counter()
    for i in range(n):
        sio.emit("m", {"i": i}, to="r")
    if impl == "sync":
        adapter.server_count()  # after every pipelined PUBLISH on the same connection
    emit_rate = n / (time.perf_counter() - started)
    proc = _flood(redis.port, impl, key, flood)
    t0 = time.perf_counter()
    got, t1 = _wait(count, flood)
    proc.wait()
    if impl == "sync":
        adapter.close()
    return {"emit": emit_rate, "receive": got / (t1 - t0), "received": got}


async def bench_async(redis: RedisServer, n: int, flood: int) -> dict[str, float]:
    key = f"b{uuid.uuid4().hex[:6]}"
    adapter = AsyncRedisAdapter(redis.url, key=key)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=adapter)
    await adapter.start()
    started = time.perf_counter()
    for i in range(n):
        await sio.emit("m", {"i": i}, to="r")
    await adapter.server_count()
    emit_rate = n / (time.perf_counter() - started)
    proc = _flood(redis.port, "async", key, flood)
    t0 = time.perf_counter()
    last, last_change, t1 = -1, t0, t0
    while True:
        now, value = time.perf_counter(), adapter.stats["received"]
        if value != last:
            last, last_change, t1 = value, now, now
        if value >= flood or now - last_change > 5.0:
            break
        await asyncio.sleep(0.005)
    await asyncio.to_thread(proc.wait)
    await adapter.close()
    return {"emit": emit_rate, "receive": last / (t1 - t0), "received": last}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20_000, help="emits per implementation")
    p.add_argument("--flood", type=int, default=50_000, help="broadcasts flooded")
    args = p.parse_args()
    results: dict[str, dict[str, float]] = {}
    with RedisServer() as redis:
        for impl in IMPLS:
            if impl == "async":
                results[impl] = asyncio.run(bench_async(redis, args.n, args.flood))
            else:
                results[impl] = bench_sync_impl(impl, redis, args.n, args.flood)
    print(f"\nsync adapter benchmark, N={args.n} emits, flood {args.flood}")
    print(f"{'':8}{'emit msg/s':>14}{'receive msg/s':>16}{'received':>10}")
    for impl, r in results.items():
        print(f"{impl:8}{r['emit']:>14,.0f}{r['receive']:>16,.0f}{r['received']:>10,.0f}")
    s, py, a = results["sync"], results["pysio"], results["async"]
    print(
        f"ratios: emit sync/pysio {s['emit'] / py['emit']:.2f}, sync/async "
        f"{s['emit'] / a['emit']:.2f}; receive sync/pysio {s['receive'] / py['receive']:.2f}, "
        f"sync/async {s['receive'] / a['receive']:.2f}"
    )


if __name__ == "__main__":
    main()
