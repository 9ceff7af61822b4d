"""Redis Cluster benchmark: SPUBLISH throughput and the sharded subscriber's receive rate.

Run: ``nice -n 10 python -m bench.bench_cluster [--n 200000] [--redispy-n 30000] [--repeat 3]``

A private 3-master Redis Cluster (no replicas) and, as the reference measured in the
same run, a private single redis-server. Channels are socket.io room channels
(``socket.io#/#roomN#``) chosen so that "1 master" puts every channel on one master and
"3 masters" spreads them over all three.

1. Publish: ``N`` SPUBLISH of a ~100-byte ClusterAdapter broadcast, pipelined by
   :class:`ClusterPublisher`, against redis-py's ``redis.asyncio.RedisCluster.spublish``
   (awaited one by one, and 100 at a time with ``asyncio.gather``) and against the
   single-Redis :class:`Publisher` doing PUBLISH.
2. Receive: a separate process floods the channels; the rate is messages / (last
   receive - first receive) in the subscriber: :class:`ClusterSubscriber` against
   redis-py's ``ClusterPubSub.get_sharded_message`` loop, and the single-Redis
   :class:`Subscriber` as the reference.

Figures are printed, never asserted. Read the ratios; the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

import redis
import redis.asyncio.cluster as aiocluster

from siotools.redis_cluster import RedisCluster
from siotools.redis_server import RedisServer
from siotools.transport.cluster import ClusterTopology, parse_cluster_url
from siotools.transport.cluster_pubsub import ClusterPublisher, ClusterSubscriber
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher, Subscriber

PAYLOAD = json.dumps(
    {
        "type": 3,
        "data": {
            "packet": {"type": 2, "data": ["chat message", {"user": "u7", "text": "hello"}]},
            "opts": {"rooms": ["room1"], "except": [], "flags": {}},
        },
        "uid": "3a88c21771af4c4d",
        "nsp": "/",
    },
    separators=(",", ":"),
).encode()


def pick_channels(topology: ClusterTopology, masters: int, per_master: int = 4) -> list[bytes]:
    """``masters * per_master`` room channels, ``per_master`` on each of ``masters`` masters."""
    wanted = sorted(topology.masters)[:masters]
    picked: dict[str, list[bytes]] = {a: [] for a in wanted}
    i = 0
    while any(len(v) < per_master for v in picked.values()):
        ch = f"socket.io#/#room{i}#".encode()
        owner = topology.owner_of(ch)
        if owner in picked and len(picked[owner]) < per_master:
            picked[owner].append(ch)
        i += 1
    return [c for v in picked.values() for c in v]


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f} msg/s" if seconds > 0 else "       n/a"


# ----------------------------------------------------------------------- publishing


async def publish_siotools(ep: RedisEndpoint, chans: list[bytes], n: int) -> float:
    pub = ClusterPublisher(ep)
    await pub.start()
    t0 = time.perf_counter()
    for i in range(n):
        pub.spublish(chans[i % len(chans)], PAYLOAD)
        if i % 1000 == 999:
            await pub.wait_writable()
    await pub.flush()
    elapsed = time.perf_counter() - t0
    await pub.close()
    return elapsed


async def publish_redispy(url: str, chans: list[bytes], n: int, batch: int) -> float:
    rc = aiocluster.RedisCluster.from_url(url)
    await rc.initialize()
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        if batch == 1:
            await rc.spublish(chans[start % len(chans)], PAYLOAD)
        else:
            await asyncio.gather(
                *(
                    rc.spublish(chans[i % len(chans)], PAYLOAD)
                    for i in range(start, min(n, start + batch))
                )
            )
    elapsed = time.perf_counter() - t0
    await rc.aclose()
    return elapsed


async def publish_single(url: str, n: int) -> float:
    pub = Publisher(RedisEndpoint.from_url(url))
    await pub.start()
    t0 = time.perf_counter()
    for i in range(n):
        pub.publish(b"socket.io#/#room1#", PAYLOAD)
        if i % 1000 == 999:
            await pub.wait_writable()
    await pub.flush()
    elapsed = time.perf_counter() - t0
    await pub.close()
    return elapsed


# ----------------------------------------------------------------------- receiving


def flood(url: str, chans: list[bytes], n: int, sharded: bool) -> subprocess.Popen[bytes]:
    """Start a separate process that publishes ``n`` messages round-robin on ``chans``."""
    args = [sys.executable, "-m", "bench.bench_cluster", "--flood", url, "--n", str(n)]
    args += ["--sharded" if sharded else "--plain", *(c.decode() for c in chans)]
    return subprocess.Popen(args)


async def run_flood(url: str, chans: list[bytes], n: int, sharded: bool) -> None:
    if sharded:
        cpub = ClusterPublisher(parse_cluster_url(url, cluster=True)[0])
        await cpub.start()
        send, pub_close, pub_flush, writable = (
            cpub.spublish,
            cpub.close,
            cpub.flush,
            cpub.wait_writable,
        )
    else:
        spub = Publisher(RedisEndpoint.from_url(url))
        await spub.start()
        send, pub_close, pub_flush, writable = (
            spub.publish,
            spub.close,
            spub.flush,
            spub.wait_writable,
        )
    for i in range(n):
        send(chans[i % len(chans)], PAYLOAD)
        if i % 1000 == 999:
            await writable()
    await pub_flush()
    await pub_close()


class Counter:
    def __init__(self, n: int) -> None:
        self.n = n
        self.got = 0
        self.first = 0.0
        self.last = 0.0
        self.done = asyncio.Event()

    def batch(self, now: int, batch: list[list[bytes]]) -> None:
        t = time.perf_counter()
        if not self.got:
            self.first = t
        self.got += len(batch)
        self.last = t
        if self.got >= self.n:
            self.done.set()

    async def wait(self, timeout: float = 120) -> float:
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        except TimeoutError:
            print(f"    (received {self.got} of {self.n} before the timeout)")
        return self.last - self.first


async def receive_siotools(url: str, chans: list[bytes], n: int) -> tuple[int, float]:
    counter = Counter(n)
    sub = ClusterSubscriber(parse_cluster_url(url, cluster=True)[0], on_batch=counter.batch)
    await sub.start()
    await sub.ssubscribe(chans)
    proc = flood(url, chans, n, sharded=True)
    span = await counter.wait()
    await asyncio.to_thread(proc.wait)
    await sub.close()
    return counter.got, span


async def receive_redispy(url: str, chans: list[bytes], n: int) -> tuple[int, float]:
    rc = aiocluster.RedisCluster.from_url(url)
    await rc.initialize()
    ps = rc.pubsub()
    await ps.ssubscribe(*chans)
    while await ps.get_sharded_message(ignore_subscribe_messages=True, timeout=0.2):
        pass  # drain the confirmations
    proc = flood(url, chans, n, sharded=True)
    got, first, last = 0, 0.0, 0.0
    deadline = time.perf_counter() + 120
    while got < n and time.perf_counter() < deadline:
        msg = await ps.get_sharded_message(ignore_subscribe_messages=True, timeout=0.0)
        if msg is not None and msg["type"] == "smessage":
            last = time.perf_counter()
            if not got:
                first = last
            got += 1
    await asyncio.to_thread(proc.wait)
    await ps.aclose()
    await rc.aclose()
    return got, last - first


async def receive_single(url: str, n: int) -> tuple[int, float]:
    counter = Counter(n)
    chans = [f"socket.io#/#room{i}#".encode() for i in range(4)]
    sub = Subscriber(RedisEndpoint.from_url(url), on_batch=counter.batch)
    await sub.start()
    await sub.subscribe(chans)
    proc = flood(url, chans, n, sharded=False)
    span = await counter.wait()
    await asyncio.to_thread(proc.wait)
    await sub.close()
    return counter.got, span


# ----------------------------------------------------------------------- main


def raise_buffers(ports: list[int]) -> None:
    # A pipelined flood outruns any single reader for a while; the default pubsub output
    # limit (32mb hard) would disconnect the subscriber, and this measures the drain rate.
    for port in ports:
        with redis.Redis(port=port) as r:
            r.config_set("client-output-buffer-limit", "pubsub 1gb 512mb 60")


async def bench(n: int, redispy_n: int, repeat: int) -> None:
    with RedisCluster(masters=3, replicas=0) as cluster, RedisServer() as single:
        raise_buffers([*cluster.ports, single.port])
        url = cluster.url
        topology = ClusterTopology(parse_cluster_url(url, cluster=True)[0])
        await topology.refresh()
        spread = {m: pick_channels(topology, m) for m in (1, 3)}
        ep = topology.seed
        print(
            f"payload {len(PAYLOAD)} B; 4 room channels per master; Redis {cluster.version()}; "
            f"siotools figures: best of {repeat} interleaved rounds"
        )

        print(f"publish ({n:,} messages; redis-py {redispy_n:,}):")
        pub: dict[str, float] = {"single": 0.0, "sio1": 0.0, "sio3": 0.0}
        for _ in range(repeat):  # interleaved, so the machine's noise hits each alike
            pub["single"] = max(pub["single"], n / await publish_single(single.url, n))
            for m in (1, 3):
                pub[f"sio{m}"] = max(pub[f"sio{m}"], n / await publish_siotools(ep, spread[m], n))
        print(f"  single Redis, Publisher PUBLISH           {pub['single']:>10,.0f} msg/s")
        for m in (1, 3):
            print(f"  cluster {m} master(s), ClusterPublisher    {pub[f'sio{m}']:>10,.0f} msg/s")
        for m in (1, 3):
            for batch in (1, 100):
                s = await publish_redispy(url, spread[m], redispy_n, batch)
                pub[f"rp{m}-{batch}"] = redispy_n / s
                label = "awaited" if batch == 1 else "gather 100"
                print(
                    f"  cluster {m} master(s), redis-py {label:<11} "
                    f"{pub[f'rp{m}-{batch}']:>10,.0f} msg/s"
                )
        print(
            f"  ratios: ClusterPublisher 3/1 masters {pub['sio3'] / pub['sio1']:.2f}; "
            f"3 masters vs single-Redis Publisher {pub['sio3'] / pub['single']:.2f}; "
            f"vs redis-py gather-100 (3 masters) {pub['sio3'] / pub['rp3-100']:.1f}x; "
            f"vs redis-py awaited {pub['sio3'] / pub['rp3-1']:.1f}x"
        )

        print(f"receive (flood from a separate process; {n:,} messages; redis-py {redispy_n:,}):")
        rec: dict[str, float] = {"single": 0.0, "sio1": 0.0, "sio3": 0.0}
        for _ in range(repeat):
            got, span = await receive_single(single.url, n)
            rec["single"] = max(rec["single"], got / span if span > 0 and got == n else 0.0)
            for m in (1, 3):
                got, span = await receive_siotools(url, spread[m], n)
                rec[f"sio{m}"] = max(rec[f"sio{m}"], got / span if span > 0 and got == n else 0.0)
        print(f"  single Redis, Subscriber                  {rec['single']:>10,.0f} msg/s")
        for m in (1, 3):
            print(f"  cluster {m} master(s), ClusterSubscriber   {rec[f'sio{m}']:>10,.0f} msg/s")
        for m in (1, 3):
            got, span = await receive_redispy(url, spread[m], redispy_n)
            rec[f"rp{m}"] = got / span if span > 0 else 0.0
            print(
                f"  cluster {m} master(s), redis-py ClusterPubSub {rec[f'rp{m}']:>10,.0f} msg/s "
                f"({got:,} received)"
            )
        print(
            f"  ratios: ClusterSubscriber 3/1 masters {rec['sio3'] / rec['sio1']:.2f}; "
            f"3 masters vs single-Redis Subscriber {rec['sio3'] / rec['single']:.2f}; "
            f"vs redis-py ClusterPubSub (3 masters) {rec['sio3'] / rec['rp3']:.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--redispy-n", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--flood", help=argparse.SUPPRESS)
    parser.add_argument("--sharded", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("channels", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        chans = [c.encode() for c in args.channels]
        asyncio.run(run_flood(args.flood, chans, args.n, args.sharded))
        return
    asyncio.run(bench(args.n, args.redispy_n, max(1, args.repeat)))


if __name__ == "__main__":
    main()
