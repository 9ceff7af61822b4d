"""Exporter benchmark: what counting metrics costs on top of decoding, and the live drain rate.

Run: ``python -m bench.bench_exporter [--n 300000]``

1. In process (no I/O): N varied broadcasts (20 hot rooms, 10% of them to one of 50k cold
   rooms, 30 events) go through ``protocol.decode`` alone, then through ``Exporter.feed``
   (decode + counters + bounded labels). The ratio is the metrics overhead.
2. Live: a private redis-server, ``redis-benchmark -P 100`` floods one broadcast; the
   exporter's sniffer and a plain ``start_capture`` listen side by side, and each one's
   drain rate (messages / time to hear them all) is printed.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import time

from siotools.exporter import Exporter
from siotools.protocol import Dialect, decode, encode_broadcast
from siotools.redis_server import RedisServer
from siotools.sniffer import start_capture


def messages(n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        room = f"cold-{i % 50_000}" if i % 10 == 0 else f"room{i % 20}"
        channel, payload = encode_broadcast(
            uid="Ab3_xZ",
            data=[f"event{i % 30}", {"user": f"user{i % 50}", "text": "hello there", "n": i}],
            rooms=[room],
            dialect=Dialect.CURRENT,
        )
        out.append((channel.encode(), payload))
    return out


def in_process(n: int, url: str) -> None:
    batch = messages(n)
    t0 = time.perf_counter()
    for channel, payload in batch:
        decode(channel, payload)
    decode_s = time.perf_counter() - t0
    exp = Exporter(url, "socket.io")
    now = time.time_ns()
    t0 = time.perf_counter()
    for channel, payload in batch:
        exp.feed(now, channel, payload)
    feed_s = time.perf_counter() - t0
    series = sum(len(list(f.samples)) for f in exp.collect())
    print(f"in process: {n} broadcasts, {len(exp.rooms.labelled)} room labels, {series} series")
    print(f"  decode only      {n / decode_s:>10,.0f} msg/s")
    print(
        f"  exporter feed    {n / feed_s:>10,.0f} msg/s  ({feed_s / decode_s:.2f}x the decode time)"
    )


async def _flood(exe: str, port: int, n: int, channel: str, payload: bytes) -> float:
    cmd = [exe, "-p", str(port), "-c", "1", "-P", "100", "-n", str(n), "-q", "-x", "PUBLISH"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, channel, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    t0 = time.perf_counter()
    await proc.communicate(payload)
    return time.perf_counter() - t0


async def live(n: int, port: int, url: str) -> None:
    exe = shutil.which("redis-benchmark")
    if exe is None:
        print("live: redis-benchmark not found; skipped")
        return
    import redis.asyncio as redis

    r = redis.from_url(url)
    await r.config_set("client-output-buffer-limit", "pubsub 1gb 512mb 60")
    await r.aclose()
    channel, payload = encode_broadcast(
        uid="Ab3_xZ", data=["chat message", {"text": "hello"}], rooms=["room1"]
    )
    # One listener at a time: both would share this process's one core otherwise.
    cap = await start_capture(url, count=n)
    t0 = time.perf_counter()
    await _flood(exe, port, n, channel, payload)
    await cap.wait()
    cap_s = time.perf_counter() - t0
    exp = Exporter(url, "socket.io", refresh=60)
    await exp.start()
    t0 = time.perf_counter()
    await _flood(exe, port, n, channel, payload)
    while exp.heard < n and time.perf_counter() - t0 < 120:
        await asyncio.sleep(0.01)
    exp_s = time.perf_counter() - t0
    heard = exp.heard
    await exp.close()
    print(f"live: {n} messages flooded (redis-benchmark -P 100), one listener at a time")
    print(f"  capture   heard all in {cap_s:.2f} s ({n / cap_s:,.0f} msg/s)")
    print(f"  exporter  heard {heard} in {exp_s:.2f} s ({heard / exp_s:,.0f} msg/s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300_000)
    args = parser.parse_args()
    with RedisServer() as server:
        in_process(args.n, server.url)
        asyncio.run(live(args.n, server.port, server.url))


if __name__ == "__main__":
    main()
