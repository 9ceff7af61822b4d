"""Sniffer benchmark: sustained capture rate under a flood, and ``to_pandas()`` of 1M frames.

Run: ``python -m bench.bench_sniffer [--n 1000000] [--rows 1000000] [--rate 0]``

1. Capture. A private redis-server; ``start_capture(count=N)`` PSUBSCRIBEs; then a separate
   ``redis-benchmark -c 1 -P 100 -x PUBLISH`` process floods a typical 8.x room broadcast.
   The capture rate is frames / (last receive - first receive). ``--rate R`` paces the
   flood to about R msg/s instead (several redis-benchmark bursts of ``--rps``), to check
   that the sniffer keeps up without being disconnected for its output buffer.
2. End to end. 1M messages of demo traffic (room broadcasts, requests, responses) are
   appended to a Capture as a live capture would (no I/O), then ``to_pandas()`` builds the
   table cold; the rate is printed as a ratio of bare ``msgpack.unpackb`` (``json.loads``
   for the JSON rows) over the same payloads in the same run, with the RSS the capture and
   the DataFrame hold per 1M frames (the DataFrame's RSS: the first round's, native path).
   Twice: 1000 distinct messages cycled (repeated payloads are decoded once), and every
   message distinct (a counter in each). Every round builds the table twice: with the
   native broadcast decoder (``siotools.protocol.columnar``) and with every row decoded in
   Python (``ColumnStore.native = False``, the path used where the extension is not built).

3. Soak (``--minutes M`` or ``--soak SECONDS``): a private redis-server, a capture
   streaming to rotated parquet files (``path=``, ``rotate=``) under a paced flood of
   ``--soak-rate`` msg/s (default 20,000); RSS, sent and captured counts and rates, and
   files written are printed every ``--soak-every`` s (default 60), then the achieved
   rate and the RSS series. The hour-long soak::

       nice -n 10 python -m bench.bench_sniffer --minutes 60

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import resource
import shutil
import subprocess
import time
from pathlib import Path

from siotools.protocol import Dialect, columnar, encode_broadcast
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
    times = cap.columns.times
    span = (times[got - 1] - times[0]) / 1e9 if got > 1 else float("nan")
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


def _rss_mb() -> float:
    """Current resident set size (not the peak), in MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def _cached_mb(cap: Capture) -> float:
    """What the capture's cached decoded columns hold: code arrays, distinct values, row
    lists (counted object by object, not from RSS)."""
    import sys

    cols = cap.columns.decoded
    total = cols.size.itemsize * len(cols.size) + sys.getsizeof(cols.size)
    for name in ("kind", "dialect", "nsp", "event", "uid", "type", "frame", "request_id", "error"):
        col = cols.categorical(name)
        total += col.codes.itemsize * len(col.codes)
        total += sys.getsizeof(col.values) + sys.getsizeof(col.index)
        total += sum(sys.getsizeof(v) for v in col.values)
    for rows in (cols.errors, cols.oversized, cols.requests, cols.responses):
        total += sys.getsizeof(rows) + 28 * len(rows)  # an int object per row
    return total / 1e6


def demo_message(i: int) -> tuple[bytes, bytes]:
    """Message ``i`` of typical demo traffic: 80% room broadcasts, 10% requests, 10%
    responses (a counter makes each one's bytes distinct)."""
    if i % 10 == 9:
        return b"socket.io-request#/#", b'{"uid":"Ab3_xZ","requestId":"r%d","type":1}' % i
    if i % 10 == 8:
        return (
            b"socket.io-response#/#Ab3_xZ#",
            b'{"requestId":"r%d","rooms":["room1","room2"]}' % (i + 1),
        )
    ch, p = typical_broadcast(i)
    return ch.encode(), p


def bench_end_to_end(rows: int, distinct: int | None, rounds: int = 5) -> None:
    """Capture -> DataFrame end to end, as a ratio of bare ``msgpack.unpackb``; RSS held.

    ``distinct``: how many distinct messages are cycled (None: every message distinct).
    ``rounds``: how many times both rates are measured, alternately, in this process (the
    table is built cold each time); the median ratio and its spread are printed.
    """
    import json
    import statistics

    import msgpack
    import pandas  # noqa: F401 - imported before timing: the import is not the table's cost

    from siotools.sniffer.columns import DecodedColumns

    cycle = [demo_message(i) for i in range(distinct)] if distinct else None

    def message(i: int) -> tuple[bytes, bytes]:
        ch, p = cycle[i % len(cycle)] if cycle else demo_message(i)
        return ch, bytes(memoryview(p))  # a distinct bytes object per row, as received

    # RSS first, in a fresh process (see main): freed memory is not always returned.
    gc.collect()
    rss0 = _rss_mb()
    cap = Capture(prefix="socket.io")
    t = time.time_ns()
    for i in range(rows):
        ch, p = message(i)
        cap.append(t + i * 1000, ch, p)
    cap.stopped_ns = t + rows * 1000
    gc.collect()
    rss_raw = _rss_mb()

    def bare_unpack() -> float:
        # Bare unpackb over the same payloads, in the same run.
        t0 = time.perf_counter()
        for _, _, p, _ in cap.raw():
            if p[0] == 0x7B:
                json.loads(p)
            else:
                msgpack.unpackb(p, strict_map_key=False)
        return time.perf_counter() - t0

    what = f"{distinct:,} distinct messages cycled" if distinct else "every message distinct"
    print(f"end to end, {rows:,} frames of demo traffic ({what}), {rounds} rounds:")
    # Each round: bare unpackb, the table with the native broadcast decoder (the default
    # where it is built) and with every row decoded in Python, alternately.
    paths = ("native", "pure") if columnar.AVAILABLE else ("pure",)
    ratios: dict[str, list[float]] = {path: [] for path in paths}
    for r in range(rounds):
        bare = bare_unpack()
        line = [f"  round {r + 1}: bare msgpack.unpackb {rows / bare:,.0f} rows/s"]
        for path in paths:
            cap.columns.native = path == "native"
            cap.columns.decoded = DecodedColumns()  # cold: nothing decoded yet
            gc.collect()
            t0 = time.perf_counter()
            df = cap.to_pandas()
            e2e = time.perf_counter() - t0
            ratios[path].append(bare / e2e)
            line.append(f"to_pandas() {path} {rows / e2e:,.0f} rows/s ({bare / e2e:.2f}x)")
            if r == 0 and path == paths[0]:
                gc.collect()
                rss_all = _rss_mb()
            del df
        print(", ".join(line), flush=True)
    cap.columns.native = True
    for path in paths:
        rs = ratios[path]
        print(
            f"  ratio to bare unpackb ({path}): median {statistics.median(rs):.2f}x "
            f"(min {min(rs):.2f}x, max {max(rs):.2f}x over {rounds} rounds)"
        )
    per_m = 1e6 / rows
    print(
        f"  RSS per 1M frames: capture holding raw records {(rss_raw - rss0) * per_m:,.0f} MB,"
        f" + the DataFrame {(rss_all - rss0) * per_m:,.0f} MB"
    )
    gc.collect()
    print(
        f"  capture after the DataFrame is dropped (raw + cached columns): "
        f"{(_rss_mb() - rss0) * per_m:,.0f} MB RSS, of which the cached columns hold "
        f"{_cached_mb(cap) * per_m:,.0f} MB (the rest is memory the tables freed that the "
        f"allocator keeps)"
    )
    t0 = time.perf_counter()
    cap.to_pandas(["time", "nsp", "event", "kind"])
    cat = time.perf_counter() - t0
    print(f"  to_pandas(time, nsp, event, kind) again: {rows / cat:,.0f} rows/s")


async def bench_soak(
    rate: int,
    seconds: float,
    rotate: str,
    port: int,
    url: str,
    every: float = 60.0,
    folder: str | None = None,
) -> None:
    """A long capture to rotated files under a paced flood; RSS printed every ``every`` s.

    The publisher is ``redis-benchmark -c 1 -P 100`` sending ``rate`` PUBLISHes once per
    second (a separate process, so it does not share the sniffer's core); when a burst
    takes longer than a second the next starts at once, and the achieved rate is
    reported as it was, not as asked.
    """
    import tempfile

    channel, payload = typical_broadcast(5)
    exe = shutil.which("redis-benchmark")
    if exe is None:
        print("soak: redis-benchmark not found; skipped")
        return
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory())
        else:
            Path(folder).mkdir(parents=True, exist_ok=True)
        cap = await start_capture(url, path=folder, rotate=rotate)
        print(
            f"soak: asking {rate:,} msg/s for {seconds:.0f}s ({len(payload)} B payloads), "
            f"rotating every {rotate} into parquet; RSS every {every:.0f}s",
            flush=True,
        )
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        sent = 0
        next_print = start
        series: list[tuple[float, float, int, int]] = []
        prev = (start, 0, 0)

        def report(now: float) -> None:
            nonlocal prev
            w = cap.writer
            got = cap.received
            rss = _rss_mb()
            dt = max(now - prev[0], 1e-9)
            series.append((now - start, rss, sent, got))
            print(
                f"  t={now - start:6.0f}s RSS {rss:6.0f} MB | sent {sent:,} "
                f"({(sent - prev[1]) / dt:,.0f}/s) | captured {got:,} "
                f"({(got - prev[2]) / dt:,.0f}/s) | in memory {len(cap):,} | "
                f"files {len(w.files) if w else 0} | reconnects {cap.reconnects}",
                flush=True,
            )
            prev = (now, sent, got)

        while (tick := time.perf_counter()) - start < seconds:
            if tick >= next_print:
                report(tick)
                next_print += every
            cmd = [exe, "-p", str(port), "-c", "1", "-P", "100", "-n", str(rate), "-q"]
            proc = await asyncio.create_subprocess_exec(
                *cmd, "-x", "PUBLISH", channel, stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            await proc.communicate(payload)
            sent += rate
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
        await asyncio.sleep(2)  # let the sniffer drain what is in flight
        report(time.perf_counter())
        elapsed = time.perf_counter() - start
        cap.stop()
        await cap.wait()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        files = list(Path(folder).glob("*.parquet"))
        size = sum(f.stat().st_size for f in files)
        rss = [r for _, r, _, _ in series]
        print(
            f"soak end: {elapsed:,.0f}s, sent {sent:,} ({sent / elapsed:,.0f} msg/s achieved), "
            f"captured {cap.received:,} ({cap.received / max(sent, 1):.2%} of sent), "
            f"{len(files)} files ({size / 1e6:,.0f} MB on disk), gaps {len(cap.gaps)}, "
            f"reconnects {cap.reconnects}, sniffer CPU {cpu / elapsed:.0%} of one core",
            flush=True,
        )
        print(
            f"soak RSS MB: min {min(rss):,.0f}, max {max(rss):,.0f}, last {rss[-1]:,.0f} "
            f"over {len(rss)} samples: " + " ".join(f"{r:.0f}" for r in rss),
            flush=True,
        )


def _e2e_subprocesses(rows: int, rounds: int, variants: tuple[str, ...]) -> None:
    # Each variant in a fresh process, so that RSS deltas are not blurred by memory an
    # earlier run freed but the allocator kept.
    import sys

    for variant in variants:
        subprocess.run(
            [sys.executable, "-m", "bench.bench_sniffer", "--rows", str(rows),
             "--rounds", str(rounds), "--e2e-variant", variant],
            check=False,
        )  # fmt: skip


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
    ap.add_argument("--soak", type=float, default=0, help="seconds of a rotated soak capture")
    ap.add_argument("--minutes", type=float, default=0, help="minutes of a rotated soak capture")
    ap.add_argument("--soak-every", type=float, default=60.0, help="soak report interval (s)")
    ap.add_argument("--soak-dir", help="keep the soak's parquet files in this folder")
    ap.add_argument("--soak-rate", type=int, default=20_000, help="soak msg/s")
    ap.add_argument("--soak-rotate", default="16MB", help="soak rotation size")
    ap.add_argument("--skip-table", action="store_true")
    ap.add_argument("--only-e2e", action="store_true", help="only the end-to-end table bench")
    ap.add_argument("--rounds", type=int, default=5, help="end-to-end rounds (median ratio)")
    ap.add_argument(
        "--only-distinct", action="store_true", help="end to end: only every-message-distinct"
    )
    ap.add_argument("--e2e-variant", choices=["cycled", "distinct"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.soak or args.minutes:
        seconds = args.soak or args.minutes * 60
        with RedisServer() as server:
            await bench_soak(
                args.soak_rate, seconds, args.soak_rotate, server.port, server.url,
                every=args.soak_every, folder=args.soak_dir,
            )  # fmt: skip
        return
    if args.e2e_variant:
        bench_end_to_end(
            args.rows, 1000 if args.e2e_variant == "cycled" else None, args.rounds
        )  # fmt: skip
        return
    variants = ("distinct",) if args.only_distinct else ("cycled", "distinct")
    if args.only_e2e or args.only_distinct:
        _e2e_subprocesses(args.rows, args.rounds, variants)
        return
    if not args.skip_capture:
        with RedisServer() as server:
            await bench_capture(args.n, server.port, server.url, not args.default_buffer)
            if args.rate:
                await bench_paced(args.rate, args.seconds, server.port, server.url)
    if not args.skip_table:
        _e2e_subprocesses(args.rows, args.rounds, variants)


if __name__ == "__main__":
    asyncio.run(main())
