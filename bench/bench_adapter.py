"""Adapter benchmark: siotools, python-socketio's AsyncRedisManager and Node, side by side.

Each implementation runs as a two-node cluster (A and B, separate processes) on one private
Redis, in the same run, one after the other (and round after round with ``--rounds``):

* ``pysio``: python-socketio's ``AsyncRedisManager`` (its own JSON protocol; the baseline
  siotools replaces).
* ``siotools``: :class:`siotools.AsyncRedisAdapter` in the dialect ``--dialect`` (the rows
  are named ``siotools[current]`` etc. for another dialect than ``legacy``).
* ``siotools+delivery``: the same with :class:`siotools.delivery.LocalDelivery` doing the
  local sends (wired into a benchmark-local subclass, see ``bench/_pynode.py``).
* ``node2``: Node socket.io 2.5 + socket.io-redis 5.4; ``node4``: Node socket.io 4.8 +
  @socket.io/redis-adapter 8.3 (classic).

A Python implementation may name its server stack after ``@`` (``siotools@uvicorn-wsproto``,
one of ``siotools.pynode.STACKS``; ``+z`` accepts permessage-deflate, as aiohttp and uvicorn
do by default; ``+uv`` runs the node on uvloop's event loop). Without one it runs on
``siotools.pynode.DEFAULT_STACK``, uncompressed, on asyncio's own loop.

Cases, one websocket client on B in room ``r`` (Node's socket.io-client: 4.8 for the
Engine.IO 4 servers, 2.5 for socket.io 2):

* **emit**: A runs a serial emit loop of N messages to ``r``; the rate counts until Redis
  has taken them all.
* **delivered**: the messages of that loop that reached the client on B, per second from
  the start of the loop to the last arrival. **B us/msg**: B's CPU time per delivered
  message (less sensitive to the other load on the machine than the rates).
* **latency**: A paced at 1k msg/s; p50/p99 from the emit to the client's receipt.
* **receive**: a separate process floods Redis with broadcasts to rooms B does not have,
  on the namespace channel (so B must decode each one); B's decode rate.
* **B cap**: the same flood, to room ``r``: what B delivers to its client per second when
  A's emitter is not the limit, and B's CPU time per message (**B cap us**).

and the **fan-out**: 1,000 clients in room ``fan``, half on A and half on B; A emits
``--fanout`` broadcasts to ``fan``; recipient deliveries per second (every client's count,
from the start of A's loop to the last arrival). The fan-out clients are raw websockets in
one Node process (``bench/benchnode.js``, handshake by hand, no parser); its CPU share of
the wall time is printed so a saturated client shows. **ack rounds**: A sends ``--acks``
broadcasts with acknowledgements to that room, one after the other, each awaited until all
1,000 clients answered (round trips per second; only Node 4.8 and a siotools dialect whose
adapter has ``emit_with_ack``, i.e. 8.x: socket.io-redis 5.x and python-socketio's manager
cannot carry acks across nodes).

Figures are ratios measured in the same round; the machine is shared, so the spread over
the rounds is printed too.

Run: ``python -m bench.bench_adapter [--rounds 3] [--n 20000] [--warmup 10000]
[--paced 3000] [--flood 100000] [--fanout 100] [--acks 20] [--impls ROW,...]
[--dialect legacy|legacy-lite|current] [--json FILE]``; ``BENCH_PYSPY=DIR`` also records a
py-spy profile of node B per case (``python -m bench.profile_summary DIR/*.txt``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from siotools.nodepeer import ensure_installed
from siotools.protocol import Dialect, encode_broadcast
from siotools.pynode import DEFAULT_STACK, STACKS
from siotools.redis_server import RedisServer

IMPLS = ("pysio", "siotools", "siotools+delivery", "node2", "node4")
# python-socketio as it ships (aiohttp, which accepts permessage-deflate) is the baseline row;
# siotools@aiohttp+z is the adapter on that stack, siotools the adapter on pynode's default.
DEFAULT_ROWS = (
    "pysio@aiohttp+z",
    "siotools@aiohttp+z",
    "siotools",
    "siotools+delivery",
    "node2",
    "node4",
)
HERE = Path(__file__).resolve().parent
PEERS = HERE.parent / "siotools" / "nodepeer"
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class Proc:
    """A benchmark process speaking JSON lines over stdin/stdout, one command at a time.

    Node processes speak the peers' protocol (rpc.js: ``ready``/``reply``/``event`` lines);
    the Python nodes answer each command with one bare JSON line.
    """

    def __init__(self, proc: asyncio.subprocess.Process, ready: dict[str, Any], node: bool):
        self.proc = proc
        self.ready = ready
        self.node = node
        self._id = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ready['port']}"

    def cpu(self) -> float:
        return cpu_of(self.proc.pid)

    @classmethod
    async def start(cls, argv: list[str], node: bool) -> Proc:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26
        )
        self = cls(proc, {}, node)
        while True:
            line = await asyncio.wait_for(self._line(), 60)
            msg = json.loads(line)
            if "error" in msg and not node:
                await proc.wait()
                raise RuntimeError(msg["error"])
            if node and msg.get("type") == "ready":
                self.ready = msg
                return self
            if not node and "ready" in msg:
                self.ready = msg["ready"]
                return self

    async def _line(self) -> bytes:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark process {self.proc.pid} exited")
        return line

    async def call(self, cmd: str, timeout: float = 300, **params: Any) -> Any:
        assert self.proc.stdin is not None
        self._id += 1
        self.proc.stdin.write((json.dumps({"cmd": cmd, "id": self._id, **params}) + "\n").encode())
        await self.proc.stdin.drain()
        while True:
            msg = json.loads(await asyncio.wait_for(self._line(), timeout))
            if not self.node:
                return msg
            if msg.get("type") == "reply" and msg.get("id") == self._id:
                if not msg.get("ok"):
                    raise RuntimeError(f"{cmd}: {msg.get('error')}")
                return msg.get("result")

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        try:
            if self.node:
                await self.call("shutdown", timeout=5)
            else:
                self.proc.stdin.write(b'{"cmd": "quit"}\n')
            self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), 10)
        except (TimeoutError, RuntimeError, BrokenPipeError, ConnectionResetError):
            if self.proc.returncode is None:
                self.proc.kill()
            await self.proc.wait()


async def node_peer(flavor: str, *args: str) -> Proc:
    """A siotools.nodepeer peer process (``legacy5`` / ``current``) through :class:`Proc`."""
    modules = await asyncio.to_thread(ensure_installed, flavor)
    script = PEERS / flavor / "peer.js"
    return await Proc.start(["node", str(script), "--modules", str(modules), *args], node=True)


async def bench_node(*args: str) -> Proc:
    """A ``bench/benchnode.js`` process (socket.io 4.8 server, or the raw clients)."""
    modules = await asyncio.to_thread(ensure_installed, "current")
    script = HERE / "benchnode.js"
    return await Proc.start(["node", str(script), "--modules", str(modules), *args], node=True)


class Impl:
    """What one benchmark row runs: parsed from ``base[@stack][+z]``."""

    def __init__(self, spec: str, dialect: str) -> None:
        self.spec = spec
        base, _, stack_spec = spec.partition("@")
        stack, *options = stack_spec.split("+")
        self.compress = "z" in options
        self.uvloop = "uv" in options
        if set(options) - {"z", "uv"}:
            raise SystemExit(f"unknown stack option in {spec!r}: +z (deflate), +uv (uvloop)")
        self.stack = stack or DEFAULT_STACK
        self.base = base
        self.dialect = dialect
        if base not in IMPLS:
            raise SystemExit(f"unknown implementation {base!r}; choose from {', '.join(IMPLS)}")
        if self.stack not in STACKS:
            raise SystemExit(f"unknown stack {self.stack!r}; choose from {', '.join(STACKS)}")
        self.python = base in ("pysio", "siotools", "siotools+delivery")
        self.name = spec
        if base.startswith("siotools") and dialect != "legacy":
            self.name = base + f"[{dialect}]" + spec[len(base) :]


class Cluster:
    """A, B and a client on B in room r, for one implementation."""

    async def start(self, impl: Impl, redis: RedisServer, key: str) -> Cluster:
        self.impl = impl
        self.fan: Proc | None = None
        rargs = ("--redis-port", str(redis.port), "--key", key)
        if impl.base == "node2":
            self.a = await node_peer("legacy5", "--name", "A", "--port", "0", *rargs)
            self.b = await node_peer("legacy5", "--name", "B", "--port", "0", *rargs)
            self.cl = await node_peer("legacy5", "--name", "CL", "--redis-port", str(redis.port))
            await self.b.call("bench_node_count", nsp="/")
        elif impl.base == "node4":
            self.a = await bench_node("--role", "server", "--port", "0", *rargs)
            self.b = await bench_node("--role", "server", "--port", "0", *rargs)
            self.cl = await node_peer("current", "--name", "CL", "--redis-port", str(redis.port))
            await self.b.call("bench_node_count")
        else:
            args = ["--impl", "pysio" if impl.base == "pysio" else "siotools"]
            args += ["--redis", redis.url, "--key", key, "--stack", impl.stack]
            args += ["--dialect", impl.dialect]
            if impl.compress:
                args.append("--ws-compression")
            if impl.uvloop:
                args.append("--uvloop")
            if impl.base == "siotools+delivery":
                args.append("--delivery")
            argv = [sys.executable, "-m", "bench._pynode", *args]
            # BENCH_PROFILE_B=PREFIX: cProfile node B into PREFIX-<row> (bench/profile.py)
            profile = os.environ.get("BENCH_PROFILE_B")
            b_argv = [*argv, "--profile", f"{profile}-{impl.name}"] if profile else argv
            self.a = await Proc.start(argv, node=False)
            self.b = await Proc.start(b_argv, node=False)
            self.cl = await node_peer("current", "--name", "CL", "--redis-port", str(redis.port))
        await self.cl.call("client_connect", client="c", url=self.b.url, nsp="/")
        await self.cl.call("client_join", client="c", rooms=["r"])
        await self.cl.call("bench_client", client="c", event="m")
        await asyncio.sleep(0.5)
        return self

    async def emit(self, n: int, rate: float, room: str = "r") -> dict[str, Any]:
        if self.impl.base == "node2":
            result: dict[str, Any] = await self.a.call(
                "bench_emit", nsp="/", room=room, n=n, rate=rate
            )
        else:
            result = await self.a.call(
                "bench_emit" if self.impl.base == "node4" else "emit", n=n, rate=rate, room=room
            )
        return result

    async def client_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await self.cl.call("bench_client_stats", client="c")
        return stats

    async def reset_client(self) -> None:
        await self.cl.call("bench_client", client="c", event="m")

    async def b_count(self) -> int:
        if self.impl.base == "node2":
            stats = await self.b.call("bench_node_stats", nsp="/")
        elif self.impl.base == "node4":
            stats = await self.b.call("bench_node_stats")
        else:
            stats = await self.b.call("stats")
        return int(stats["count"]) if stats else 0

    async def connect_fan(self, n: int) -> None:
        self.fan = await bench_node("--role", "clients")
        eio = 3 if self.impl.base == "node2" else 4
        for node in (self.a, self.b):
            await self.fan.call("connect", url=node.url, n=n // 2, room="fan", eio=eio)
        await asyncio.sleep(0.5)

    async def stop(self) -> None:
        for proc in (self.fan, self.cl, self.a, self.b):
            if proc is not None:
                await proc.stop()


async def wait_count(
    get: Callable[[], Awaitable[int]], target: int, idle: float = 3.0
) -> tuple[int, float]:
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


def flood_payload(impl: Impl, key: str, rooms: list[str] | None = None) -> tuple[str, str]:
    rooms = rooms or ["nobody", "nobody-else"]
    if impl.base == "pysio":
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
    dialect = Dialect.CURRENT if impl.base == "node4" else Dialect.LEGACY
    if impl.base.startswith("siotools"):
        dialect = Dialect(impl.dialect)
    channel, payload = encode_broadcast(
        uid="FLOOD1",
        data=["m", {"i": 1, "t": 0}],
        nsp="/",
        rooms=rooms,
        dialect=dialect,
        prefix=key,
    )
    return channel, payload.hex()


async def run_impl(
    impl: Impl, redis: RedisServer, args: argparse.Namespace, round_no: int
) -> dict[str, Any]:
    # a key of letters only: the adapters PSUBSCRIBE key#nsp#*, where [ ] ? * are glob syntax
    key = f"bench-{round_no}-" + re.sub(r"[^A-Za-z0-9]+", "-", impl.name)
    out: dict[str, Any] = {"impl": impl.name}
    try:
        cluster = await Cluster().start(impl, redis, key)
    except RuntimeError as exc:
        out["error"] = str(exc)
        return out
    try:
        if args.n:
            await one_client(cluster, impl, redis, key, args, out)
        if args.fanout:
            await fan_out(cluster, args, out)
        if args.acks:
            await acks(cluster, args, out)
    finally:
        await cluster.stop()
    return out


async def one_client(
    cluster: Cluster,
    impl: Impl,
    redis: RedisServer,
    key: str,
    args: argparse.Namespace,
    out: dict[str, Any],
) -> None:
    async def received() -> int:
        return int((await cluster.client_stats())["count"])

    if args.warmup:
        # Node's JIT: a cold process runs the first 20k emits at a third of its later rate;
        # production nodes are warm, so every implementation gets the same warm-up.
        await cluster.emit(args.warmup, 0)
        await wait_count(received, args.warmup)
        await cluster.reset_client()
    async with Spy(cluster, "one"):
        b_cpu = cluster.b.cpu()
        start = time.time()
        emit = await cluster.emit(args.n, 0)
        out["emit_per_s"] = args.n / emit["flushed_s"]
        count, _ = await wait_count(received, args.n)
    stats = await cluster.client_stats()
    out["delivered"] = count
    out["delivered_per_s"] = count / max(1e-9, stats["last"] - start) if count else 0.0
    if count:
        out["b_us_per_msg"] = 1e6 * (cluster.b.cpu() - b_cpu) / count

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

    # B's own delivery capacity: the flood goes to room r, so A's emitter is out of the way
    await cluster.reset_client()
    channel, payload_hex = flood_payload(impl, key, ["r"])
    async with Spy(cluster, "cap"):
        cpu0 = cluster.b.cpu(), cluster.cl.cpu()
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
        got, t_end = await wait_count(received, args.flood)
        await flood.wait()
    stats = await cluster.client_stats()
    wall = max(1e-9, stats["last"] - (time.time() - (time.perf_counter() - t0)))
    out["flood_delivered"] = got
    if got:
        out["flood_delivered_per_s"] = got / wall
        out["flood_b_us_per_msg"] = 1e6 * (cluster.b.cpu() - cpu0[0]) / got
        out["flood_client_cpu_share"] = round((cluster.cl.cpu() - cpu0[1]) / wall, 2)


async def fan_out(cluster: Cluster, args: argparse.Namespace, out: dict[str, Any]) -> None:
    await cluster.connect_fan(args.fan_clients)
    fan = cluster.fan
    assert fan is not None
    target = args.fanout * args.fan_clients

    async def count() -> int:
        return int((await fan.call("stats"))["count"])

    if args.warmup:
        warm = max(1, args.warmup // 1000)
        await cluster.emit(warm, 0, room="fan")
        await wait_count(count, warm * args.fan_clients)
    await fan.call("reset", sample=0)
    cpu0 = {name: p.cpu() for name, p in (("a", cluster.a), ("b", cluster.b), ("cl", fan))}
    async with Spy(cluster, "fanout"):
        start = time.time()
        await cluster.emit(args.fanout, 0, room="fan")
        got, _ = await wait_count(count, target)
    stats = await fan.call("stats")
    wall = max(1e-9, stats["last"] - start)
    out["fanout"] = got
    out["fanout_per_s"] = got / wall if got else 0.0
    used = {
        name: p.cpu() - cpu0[name] for name, p in (("a", cluster.a), ("b", cluster.b), ("cl", fan))
    }
    out["fan_cpu_share"] = {name: round(v / wall, 2) for name, v in used.items()}
    if got:
        out["fan_us_per_delivery"] = 1e6 * (used["a"] + used["b"]) / got
    out["fan_open"] = stats["open"]


class Spy:
    """``py-spy record`` on node B for one case, when ``BENCH_PYSPY=DIR`` is set.

    Writes ``DIR/<row>-<case>.txt`` (collapsed stacks); ``python -m bench.profile_summary``
    turns them into shares of the time.
    """

    def __init__(self, cluster: Cluster, case: str) -> None:
        folder = os.environ.get("BENCH_PYSPY")
        self.path = Path(folder) / f"{cluster.impl.name}-{case}.txt" if folder else None
        self.pid = cluster.b.pid if cluster.impl.python else None
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Spy:
        if self.path is not None and self.pid is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            spy = Path(sys.executable).with_name("py-spy")
            self.proc = await asyncio.create_subprocess_exec(
                str(spy),
                "record",
                "--pid",
                str(self.pid),
                "--format",
                "raw",
                "--rate",
                "250",
                "--output",
                str(self.path),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await asyncio.sleep(0.5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(2)  # SIGINT: py-spy writes its file and exits
            await self.proc.wait()


async def acks(cluster: Cluster, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Broadcasts with acknowledgements to the fan-out room, one after the other."""
    if cluster.fan is None:
        await cluster.connect_fan(args.fan_clients)
    if cluster.impl.base in ("node2", "pysio"):
        return  # socket.io-redis 5.x / python-socketio's manager cannot carry acks
    cmd = "bench_emit_ack" if cluster.impl.base == "node4" else "emit_ack"
    try:
        result = await cluster.a.call(cmd, n=args.acks, room="fan", timeout=10)
    except RuntimeError as exc:
        result = {"error": str(exc)}
    if "error" in result:
        out["acks_error"] = result["error"]
        return
    out["ack_rounds_per_s"] = args.acks / result["s"]
    out["acks_per_s"] = result["acks"] / result["s"]
    out["acks_complete"] = result["acks"] == args.acks * args.fan_clients


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def fmt_ratio(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "n/a"
    med = statistics.median(got)
    return f"{med:.2f}x" + (f" ({min(got):.2f}-{max(got):.2f})" if len(got) > 1 else "")


COLS = (
    ("emit_per_s", "emit/s", 0),
    ("delivered_per_s", "deliv/s", 0),
    ("b_us_per_msg", "B us/msg", 1),
    ("receive_per_s", "recv/s", 0),
    ("flood_delivered_per_s", "B cap/s", 0),
    ("flood_b_us_per_msg", "B cap us", 1),
    ("p50_ms", "p50 ms", 2),
    ("p99_ms", "p99 ms", 2),
    ("fanout_per_s", "fan deliv/s", 0),
    ("fan_us_per_delivery", "fan us/dlv", 1),
    ("ack_rounds_per_s", "ack rnd/s", 1),
)


def report(rounds: list[dict[str, dict[str, Any]]], args: argparse.Namespace) -> None:
    names = list(rounds[0])
    print(
        f"\nadapter benchmark, {len(rounds)} round(s): N={args.n}, paced {args.paced} at 1k/s, "
        f"flood {args.flood}, fan-out {args.fanout} x {args.fan_clients} clients "
        f"(medians over the rounds)"
    )
    print(f"{'impl':34}" + "".join(f"{title:>12}" for _, title, _ in COLS))
    for name in names:
        rows = [r[name] for r in rounds]
        errors = [row["error"] for row in rows if "error" in row]
        if errors:
            print(f"{name:34}  error: {errors[0].splitlines()[-1][:80]}")
            continue
        cells = []
        for col, _, digits in COLS:
            vals = [row[col] for row in rows if col in row]
            cells.append(f"{statistics.median(vals):>12.{digits}f}" if vals else f"{'-':>12}")
        print(f"{name:34}" + "".join(cells))
    print("\nclient CPU share during the flood to r (1.0 = a saturated client), per round:")
    for name in names:
        shares = [r[name].get("flood_client_cpu_share") for r in rounds]
        if any(v is not None for v in shares):
            print(f"  {name:32} " + "  ".join(f"{v:.2f}" for v in shares if v is not None))
    incomplete = [
        f"{name} round {i + 1}: {what} {r[name].get(what)} of {want}"
        for i, r in enumerate(rounds)
        for name in names
        for what, want in (
            ("delivered", args.n),
            ("fanout", args.fanout * args.fan_clients),
            ("flood_delivered", args.flood),
        )
        if what in r[name] and r[name][what] < want
    ]
    if incomplete:
        print("\nINCOMPLETE (messages lost or a node down; those rates are not comparable):")
        for line in incomplete:
            print("  " + line)
    fan_rows = [(n, [r[n].get("fan_cpu_share") for r in rounds]) for n in names]
    print("\nfan-out CPU share of the wall time (A / B / the 1,000 clients' process), per round:")
    for name, shares in fan_rows:
        text = "  ".join(f"{s['a']:.2f}/{s['b']:.2f}/{s['cl']:.2f}" for s in shares if s)
        if text:
            print(f"  {name:32} {text}")

    def ratios(num: str, den: str, col: str) -> str:
        return fmt_ratio([ratio(r.get(num, {}).get(col), r.get(den, {}).get(col)) for r in rounds])

    print("\nratios (per round, then median and range):")
    node4, node2 = "node4", "node2"
    pysio = next((n for n in names if n.startswith("pysio")), "pysio")
    for name in names:
        if not name.startswith("siotools"):
            continue
        print(f"  {name}")
        print(
            f"    delivered / node4       {ratios(name, node4, 'delivered_per_s')}"
            "  (target >= 0.5x)"
        )
        print(
            f"    fan-out   / node4       {ratios(name, node4, 'fanout_per_s')}  (target >= 0.5x)"
        )
        print(f"    delivered / pysio       {ratios(name, pysio, 'delivered_per_s')}")
        print(f"    fan-out   / pysio       {ratios(name, pysio, 'fanout_per_s')}")
        print(
            f"    emit      / node2 node4 {ratios(name, node2, 'emit_per_s')} "
            f"{ratios(name, node4, 'emit_per_s')}"
        )
        print(
            f"    receive   / node2 node4 {ratios(name, node2, 'receive_per_s')} "
            f"{ratios(name, node4, 'receive_per_s')}"
        )
        # CPU time per message (Node's over ours: > 1 means siotools needs less CPU);
        # steadier than the rates when the machine is shared.
        print(
            f"    CPU/msg at B, node4/this {ratios(node4, name, 'b_us_per_msg')}"
            f"   fan-out CPU/delivery (A+B), node4/this "
            f"{ratios(node4, name, 'fan_us_per_delivery')}"
        )
        print(
            f"    B capacity (flood to r) / node4 {ratios(name, node4, 'flood_delivered_per_s')}"
            f"   its CPU/msg, node4/this {ratios(node4, name, 'flood_b_us_per_msg')}"
        )
        print(f"    ack rounds / node4      {ratios(name, node4, 'ack_rounds_per_s')}")
        ack_errors = {r[name]["acks_error"] for r in rounds if "acks_error" in r[name]}
        if ack_errors:
            print(f"      (no ack rounds: {sorted(ack_errors)[0][:90]})")
        p99 = [r[name].get("p99_ms") for r in rounds if r[name].get("p99_ms")]
        if p99:
            print(f"    paced p99 {statistics.median(p99):.2f} ms (max {max(p99):.2f})")
    if pysio in names and "node4" in names:
        print(f"  {pysio} delivered / node4   {ratios(pysio, node4, 'delivered_per_s')}")
        print(f"  {pysio} fan-out   / node4   {ratios(pysio, node4, 'fanout_per_s')}")
    if "node2" in names and "node4" in names:
        print(f"  node2 delivered / node4   {ratios(node2, node4, 'delivered_per_s')}")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds over every implementation")
    p.add_argument("--n", type=int, default=20_000, help="messages in the emit loop (0: skip)")
    p.add_argument("--paced", type=int, default=3_000, help="messages paced at 1k/s")
    p.add_argument("--flood", type=int, default=100_000, help="messages flooded to B")
    p.add_argument("--warmup", type=int, default=10_000, help="emits before measuring")
    p.add_argument("--fanout", type=int, default=100, help="broadcasts to the room (0: skip)")
    p.add_argument("--acks", type=int, default=20, help="broadcasts with ack to the room (0: skip)")
    p.add_argument("--fan-clients", type=int, default=1000, help="clients in the room")
    p.add_argument("--impls", default=",".join(DEFAULT_ROWS), help="comma-separated rows")
    p.add_argument(
        "--dialect",
        default="legacy",
        choices=[d.value for d in (Dialect.LEGACY, Dialect.LEGACY_LITE, Dialect.CURRENT)],
        help="the dialect of the siotools rows",
    )
    p.add_argument("--json", help="also write every round's figures to this file")
    args = p.parse_args()
    impls = [Impl(spec, args.dialect) for spec in args.impls.split(",") if spec]
    rounds: list[dict[str, dict[str, Any]]] = []
    with RedisServer() as redis:
        for round_no in range(args.rounds):
            results: dict[str, dict[str, Any]] = {}
            for impl in impls:
                results[impl.name] = await run_impl(impl, redis, args, round_no)
                print(json.dumps(results[impl.name]), file=sys.stderr, flush=True)
            rounds.append(results)
    if args.json:
        Path(args.json).write_text(json.dumps(rounds, indent=2))
    report(rounds, args)


if __name__ == "__main__":
    asyncio.run(main())
