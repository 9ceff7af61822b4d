"""Adapter benchmark: python-socketio's AsyncRedisManager, siotools, Node, side by side.

Each implementation runs as a two-node cluster (A and B, separate processes) on one private
Redis, with one websocket client on B in room ``r``, in the same run, one after the other:

* **emit**: A runs a serial ``await emit`` loop of N messages to ``r`` (Node: a plain
  ``io.to('r').emit`` loop); the rate counts until Redis has taken them all.
* **delivered**: the messages of that loop that reached the client on B, per second from
  the start of the loop to the last arrival.
* **latency**: A paced at 1k msg/s; p50/p99 from the emit to the client's receipt.
* **receive**: a separate process floods Redis with broadcasts to rooms B does not have, on
  the namespace channel (so B must decode each one); B's decode rate with nothing to deliver.

Figures are reported as ratios measured in the same run; machines are noisy. The client is
Node's socket.io-client (the fastest client at hand, so it is not the bottleneck): 4.8 for
the Python servers (Engine.IO 4), 2.5 for Node's socket.io 2 server (Engine.IO 3).

Run: ``python -m bench.bench_adapter [--n 20000] [--paced 3000] [--flood 100000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

from siotools.nodepeer import NodePeer
from siotools.protocol import Dialect, encode_broadcast
from siotools.redis_server import RedisServer

IMPLS = ("pysio", "siotools", "node")


class PyProc:
    """A bench._pynode process driven over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, ready: dict[str, Any]) -> None:
        self.proc = proc
        self.ready = ready

    @classmethod
    async def start(cls, *argv: str) -> PyProc:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench._pynode",
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError(f"bench process {argv[0]} did not start")
        return cls(proc, json.loads(line)["ready"])

    async def call(self, cmd: str, **params: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **params}) + "\n").encode())
        await self.proc.stdin.drain()
        return json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 300))

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b'{"cmd": "quit"}\n')
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class Cluster:
    """A, B and a client on B in room r, for one implementation."""

    async def start(self, impl: str, redis: RedisServer, key: str) -> Cluster:
        self.impl = impl
        if impl == "node":
            kw = {"redis_url": redis.url, "key": key, "nsps": ("/",)}
            self.a = await NodePeer.start("legacy5", name="A", port=0, **kw)
            self.b = await NodePeer.start("legacy5", name="B", port=0, **kw)
            self.cl = await NodePeer.start("legacy5", name="CL", redis_url=redis.url)
            await self.cl.call("client_connect", client="c", url=self.b.url, nsp="/")
            await self.cl.call("client_join", client="c", rooms=["r"])
            await self.cl.call("bench_client", client="c", event="m")
            await self.b.call("bench_node_count", nsp="/")
        else:
            args = ("--impl", impl, "--redis", redis.url, "--key", key)
            self.pa = await PyProc.start("server", *args)
            self.pb = await PyProc.start("server", *args)
            # socket.io-client 4 (Engine.IO 4) is what python-socketio servers accept.
            self.cl = await NodePeer.start("current", name="CL", redis_url=redis.url)
            url = f"http://127.0.0.1:{self.pb.ready['port']}"
            await self.cl.call("client_connect", client="c", url=url, nsp="/")
            await self.cl.call("client_join", client="c", rooms=["r"])
            await self.cl.call("bench_client", client="c", event="m")
        await asyncio.sleep(0.5)
        return self

    async def emit(self, n: int, rate: float) -> dict[str, Any]:
        if self.impl == "node":
            result: dict[str, Any] = await self.a.call(
                "bench_emit", nsp="/", room="r", n=n, rate=rate, timeout=300
            )
            return result
        result = await self.pa.call("emit", n=n, rate=rate, room="r")
        return result

    async def client_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await self.cl.call("bench_client_stats", client="c")
        return stats

    async def reset_client(self) -> None:
        await self.cl.call("bench_client", client="c", event="m")

    async def b_count(self) -> int:
        if self.impl == "node":
            stats = await self.b.call("bench_node_stats", nsp="/")
            return int(stats["count"]) if stats else 0
        return int((await self.pb.call("stats"))["count"])

    async def stop(self) -> None:
        await self.cl.stop()
        if self.impl == "node":
            for peer in (self.a, self.b):
                await peer.stop()
        else:
            for proc in (self.pa, self.pb):
                await proc.stop()


async def wait_count(get: Any, target: int, idle: float = 3.0) -> tuple[int, float]:
    """Poll ``get()`` until it reaches ``target`` or stops growing for ``idle`` seconds."""
    last, last_change = -1, time.perf_counter()
    while True:
        value = await get()
        now = time.perf_counter()
        if value != last:
            last, last_change = value, now
        if value >= target or now - last_change > idle:
            return value, now
        await asyncio.sleep(0.05)


def flood_payload(impl: str, key: str) -> tuple[str, str]:
    rooms = ["nobody", "nobody-else"]
    if impl == "pysio":
        message = {
            "method": "emit",
            "event": "m",
            "data": [{"i": 1, "t": 0}],
            "binary": False,
            "namespace": "/",
            "room": rooms,
            "skip_sid": None,
            "callback": None,
            "host_id": "flood",
        }
        return key, json.dumps(message).encode().hex()
    channel, payload = encode_broadcast(
        uid="FLOOD1",
        data=["m", {"i": 1, "t": 0}],
        nsp="/",
        rooms=rooms,
        dialect=Dialect.LEGACY,
        prefix=key,
    )
    return channel, payload.hex()


async def run_impl(impl: str, redis: RedisServer, args: argparse.Namespace) -> dict[str, Any]:
    key = f"bench-{impl}"
    cluster = await Cluster().start(impl, redis, key)
    out: dict[str, Any] = {"impl": impl}
    try:
        start = time.time()
        emit = await cluster.emit(args.n, 0)
        out["emit_per_s"] = args.n / emit["flushed_s"]

        async def received() -> int:
            return int((await cluster.client_stats())["count"])

        count, _ = await wait_count(received, args.n)
        stats = await cluster.client_stats()
        out["delivered"] = count
        out["delivered_per_s"] = count / max(1e-9, stats["last"] - start) if count else 0.0

        await cluster.reset_client()
        await cluster.emit(args.paced, 1000)
        await wait_count(received, args.paced)
        lat = sorted((await cluster.client_stats())["latencies"])
        if lat:
            out["p50_ms"] = 1000 * statistics.median(lat)
            out["p99_ms"] = 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))]

        before = await cluster.b_count()
        channel, payload_hex = flood_payload(impl, key)
        t0 = time.perf_counter()
        flood = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench._flood",
            str(redis.port),
            channel,
            payload_hex,
            str(args.flood),
            stdout=asyncio.subprocess.DEVNULL,
        )

        async def b_received() -> int:
            return await cluster.b_count() - before

        got, t_end = await wait_count(b_received, args.flood)
        await flood.wait()
        out["receive"] = got
        out["receive_per_s"] = got / (t_end - t0)
    finally:
        await cluster.stop()
    return out


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000, help="messages in the emit loop")
    p.add_argument("--paced", type=int, default=3_000, help="messages paced at 1k/s")
    p.add_argument("--flood", type=int, default=100_000, help="messages flooded to B")
    p.add_argument("--impls", default=",".join(IMPLS))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    results = {}
    with RedisServer() as redis:
        for impl in args.impls.split(","):
            results[impl] = await run_impl(impl, redis, args)
    if args.json:
        print(json.dumps(results, indent=2))
    print(f"\nadapter benchmark, N={args.n}, paced {args.paced} at 1k/s, flood {args.flood}")
    cols = ("emit_per_s", "delivered_per_s", "receive_per_s", "p50_ms", "p99_ms")
    print(f"{'impl':10}" + "".join(f"{c:>17}" for c in cols) + f"{'delivered':>11}")
    for impl, r in results.items():
        print(
            f"{impl:10}"
            + "".join(f"{r.get(c, float('nan')):>17.1f}" for c in cols)
            + f"{r.get('delivered', 0):>11}"
        )
    s, n, py = results.get("siotools", {}), results.get("node", {}), results.get("pysio", {})
    print("\nratios (same run):")
    print(
        f"  emit      siotools/node  {ratio(s.get('emit_per_s'), n.get('emit_per_s'))}"
        "  (target >= 1.0x)"
    )
    print(
        f"  receive   siotools/node  {ratio(s.get('receive_per_s'), n.get('receive_per_s'))}"
        "  (target >= 1.0x)"
    )
    print(
        f"  delivered siotools/pysio "
        f"{ratio(s.get('delivered_per_s'), py.get('delivered_per_s'))}  (target >= 5x)"
    )
    print(f"  paced p99 siotools {s.get('p99_ms', float('nan')):.2f} ms  (target <= 2.5 ms)")


if __name__ == "__main__":
    asyncio.run(main())
