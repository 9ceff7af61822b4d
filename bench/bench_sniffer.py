"""Sniffer benchmark: sustained capture rate under a flood, and ``to_pandas()`` of 1M frames.

Run: ``python -m bench.bench_sniffer [--n 1000000] [--rows 1000000] [--rate 0]``

1. Capture. A private redis-server; ``start_capture(count=N)`` PSUBSCRIBEs; then a separate
   ``redis-benchmark -c 1 -P 100 -x PUBLISH`` process floods a typical 8.x room broadcast.
   The capture rate is frames / (last receive - first receive). ``--rate R`` paces the
   flood to about R msg/s instead (several redis-benchmark bursts of ``--rps``), to check
   that the sniffer keeps up without being disconnected for its output buffer.
2. Decode + DataFrame. 1M varied broadcasts and requests are appended to a Capture (no I/O),
   then the decode step and ``to_pandas()`` on the decoded columns are timed separately;
   rows/s and the peak RSS growth are printed.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import shutil
import subprocess
import time

from siotools.protocol import Dialect, encode_broadcast
from siotools.redis_server import RedisServer
from siotools.sniffer import Capture, start_capture


def typical_broadcast(i: int = 0) -> tuple[str, bytes]:
    """An 8.x ``io.to(room).emit("chat message", {...})`` of about 100 bytes."""
    return encode_broadcast(
        uid="Ab3_xZ",
        data=["chat message", {"user": f"user{i % 50}", "text": "hello there", "n": i}],
        rooms=[f"room{i % 20}"],
        dialect=Dialect.CURRENT,
    )


async def bench_capture(n: int, port: int, url: str, big_buffer: bool = True) -> None:
    channel, payload = typical_broadcast(7)
    exe = shutil.which("redis-benchmark")
    if exe is None:
        print("capture: redis-benchmark not found; skipped")
        return
    # A pipelined flood outruns any single reader for a while; with the default
    # "pubsub 32mb 8mb 60" limit Redis would cut the sniffer off mid-burst, and this
    # measures the drain rate, so the limit is raised here (as perf-anchors did for b2/b5).
    if big_buffer:
        import redis.asyncio as redis

        r = redis.from_url(url)
        await r.config_set("client-output-buffer-limit", "pubsub 1gb 512mb 60")
        await r.aclose()
    cap = await start_capture(url, count=n)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    cmd = [exe, "-p", str(port), "-c", "1", "-P", "100", "-n", str(n), "-q"]
    cmd += ["-x", "PUBLISH", channel]
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    await proc.communicate(payload)
    pub_s = time.perf_counter() - t0
    try:
        await asyncio.wait_for(cap.wait(), 120)
    except TimeoutError:
        cap.stop()
        await cap.wait()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    got = len(cap)
    span = (cap._times[got - 1] - cap._times[0]) / 1e9 if got > 1 else float("nan")
    print(f"capture: payload {len(payload)} B on {channel}")
    print(
        f"  flood (redis-benchmark -c1 -P100): {n:,} PUBLISH in {pub_s:.2f}s = {n / pub_s:,.0f}/s"
    )
    print(f"  sniffer received {got:,}/{n:,} in {span:.2f}s = {got / span:,.0f} msg/s")
    print(f"  sniffer process CPU {cpu:.2f}s ({cpu / span:.0%} of one core while receiving)")
    print(f"  reconnects (output-buffer kicks): {cap.reconnects}")
    del cap
    gc.collect()


async def bench_paced(rate: int, seconds: float, port: int, url: str) -> None:
    """redis-benchmark bursts of ``rate`` messages every second for ``seconds``."""
    channel, payload = typical_broadcast(3)
    exe = shutil.which("redis-benchmark")
    if exe is None:
        return
    import redis.asyncio as redis

    # Redis's default limit, as a production server would have it (the flood raised it).
    r = redis.from_url(url)
    await r.config_set("client-output-buffer-limit", "pubsub 32mb 8mb 60")
    await r.aclose()
    cap = await start_capture(url, duration=seconds + 3)
    start = time.perf_counter()
    sent = 0
    while time.perf_counter() - start < seconds:
        tick = time.perf_counter()
        cmd = [exe, "-p", str(port), "-c", "1", "-P", "100", "-n", str(rate), "-q"]
        proc = await asyncio.create_subprocess_exec(
            *cmd, "-x", "PUBLISH", channel, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        await proc.communicate(payload)
        sent += rate
        await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
    cap.stop()
    await cap.wait()
    print(
        f"paced {rate:,}/s for {seconds:.0f}s (default output-buffer limit): sent {sent:,}, "
        f"captured {len(cap):,}, reconnects {cap.reconnects}, gaps {len(cap.gaps)}"
    )


def bench_table(rows: int) -> None:
    cap = Capture(prefix="socket.io")
    # 1000 distinct messages cycled: broadcasts to rooms, namespace-wide emits, requests.
    samples: list[tuple[bytes, bytes]] = []
    for i in range(1000):
        if i % 10 == 9:
            samples.append(
                (b"socket.io-request#/#", b'{"uid":"Ab3_xZ","requestId":"r%d","type":1}' % i)
            )
            continue
        ch, p = typical_broadcast(i)
        samples.append((ch.encode(), p))
    t = time.time_ns()
    for i in range(rows):
        ch, p = samples[i % 1000]
        # Distinct bytes objects per row, as received from Redis.
        cap.append(t + i * 1000, ch, bytes(p))
    cap.stopped_ns = t + rows * 1000
    import pandas  # noqa: F401 - imported before timing: the import is not the table's cost

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    cap._decoded()
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    df = cap.to_pandas()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    df = cap.to_pandas()
    again = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mem = df.memory_usage(deep=False).sum()
    print(f"to_pandas of {rows:,} frames ({len(df.columns)} columns, 90% broadcasts):")
    print(
        f"  decode (protocol.decode + row fields): {decode_s:.2f}s = {rows / decode_s:,.0f} rows/s"
    )
    print(f"  to_pandas on decoded columns: {first:.3f}s = {rows / first:,.0f} rows/s")
    print(f"  to_pandas again: {again:.3f}s = {rows / again:,.0f} rows/s")
    cold = decode_s + first
    print(f"  cold total (decode + table): {cold:.2f}s = {rows / cold:,.0f} rows/s")
    print(f"  peak RSS growth while decoding and building: {(rss1 - rss0) / 1024:,.0f} MB")
    print(f"  DataFrame shallow size {mem / 1e6:,.0f} MB")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="flood size")
    ap.add_argument("--rows", type=int, default=1_000_000, help="to_pandas rows")
    ap.add_argument("--rate", type=int, default=0, help="also run a paced flood at this msg/s")
    ap.add_argument("--seconds", type=float, default=60.0, help="paced flood duration")
    ap.add_argument(
        "--default-buffer",
        action="store_true",
        help="keep Redis's default pubsub output-buffer limit during the flood",
    )
    ap.add_argument("--skip-capture", action="store_true")
    ap.add_argument("--skip-table", action="store_true")
    args = ap.parse_args()
    if not args.skip_capture:
        with RedisServer() as server:
            await bench_capture(args.n, server.port, server.url, not args.default_buffer)
            if args.rate:
                await bench_paced(args.rate, args.seconds, server.port, server.url)
    if not args.skip_table:
        bench_table(args.rows)


if __name__ == "__main__":
    asyncio.run(main())
