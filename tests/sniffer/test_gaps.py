"""A slow sniffer kicked by Redis (client-output-buffer-limit): the gap's real span is
reported in the capture, its table, its summary and ``siotools sniff``'s summary."""

from __future__ import annotations

import asyncio
import math
import signal
import sys
import threading
import time

import redis
import redis.asyncio as aioredis

import siotools
from siotools.protocol import encode_broadcast
from siotools.sniffer import start_capture
from tests.sniffer.helpers import wait_frames

BLOCKED = 2.5


def flood(url: str, channel: str, payload: bytes, stop: threading.Event) -> None:
    """Publish big messages until ``stop``: what fills a stalled reader's output buffer."""
    r = redis.Redis.from_url(url)
    try:
        while not stop.is_set():
            r.publish(channel, payload)
    finally:
        r.close()


async def numpat(r: aioredis.Redis, at_least: int, timeout: float = 15) -> None:
    async def until() -> None:
        while int(await r.execute_command("PUBSUB", "NUMPAT")) < at_least:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(until(), timeout)


async def test_kicked_slow_capture_records_the_real_gap(
    fresh_redis: siotools.RedisServer, key: str
) -> None:
    r = aioredis.from_url(fresh_redis.url)
    # A pub/sub reader more than 256 kB behind is disconnected at once.
    await r.config_set("client-output-buffer-limit", "pubsub 256kb 128kb 1")
    cap = await start_capture(fresh_redis.url, key)
    ch, before = encode_broadcast(uid="u", data=["before"], prefix=key)
    _, big = encode_broadcast(uid="u", data=["flood", "x" * 100_000], prefix=key)
    _, after = encode_broadcast(uid="u", data=["after"], prefix=key)
    await r.publish(ch, before)
    await wait_frames(cap, lambda f: f.row.event == "before")
    stop = threading.Event()
    pub = threading.Thread(target=flood, args=(fresh_redis.url, ch, big, stop))
    pub.start()
    t0 = time.time_ns()
    time.sleep(BLOCKED)  # the capture's loop is stalled: it reads nothing, Redis kicks it
    stop.set()
    pub.join()
    await numpat(r, 3)  # resubscribed
    await asyncio.sleep(0.2)
    await r.publish(ch, after)
    await wait_frames(cap, lambda f: f.row.event == "after")
    cap.stop()
    await cap.wait()
    await r.aclose()

    assert cap.reconnects >= 1 and len(cap.gaps) >= 1
    start, end = cap.gaps[0]
    # From when the loop stalled (what got the capture kicked; whatever it read from the
    # socket after that is stale) to the first message after resubscription.
    before_ns = next(f.time_ns for f in cap.frames if f.row.event == "before")
    after_ns = next(f.time_ns for f in cap.frames if f.row.event == "after")
    assert before_ns <= start <= t0 + 150_000_000
    assert end == after_ns
    assert (end - start) / 1e9 >= BLOCKED  # once 0.05 s: error to reconnect only
    an = cap.anomalies()
    assert an["gaps"] == len(cap.gaps) and an["gap_s"] >= BLOCKED
    s = cap.summary()
    assert s["gaps"][0]["seconds"] >= BLOCKED
    df = cap.to_pandas()
    marked = df[df["gap_s"].notna()]
    assert len(marked) == len(cap.gaps)
    assert marked["gap_s"].iloc[0] >= BLOCKED and not math.isnan(marked["gap_s"].iloc[0])
    assert df.attrs["gaps"][0][0].value == start
    assert "gaps" in cap._repr_html_()


async def test_sniff_summary_reports_reconnects_and_missed_time(
    fresh_redis: siotools.RedisServer, key: str
) -> None:
    r = aioredis.from_url(fresh_redis.url)
    await r.config_set("client-output-buffer-limit", "pubsub 256kb 128kb 1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "siotools", "sniff", "--url", fresh_redis.url, "--prefix", key,
        # Nothing shown (a full stdout pipe would stall it too): the summary counts all.
        "--kind", "request", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await numpat(r, 3)
    ch, before = encode_broadcast(uid="u", data=["before"], prefix=key)
    _, big = encode_broadcast(uid="u", data=["flood", "x" * 100_000], prefix=key)
    _, after = encode_broadcast(uid="u", data=["after"], prefix=key)
    await r.publish(ch, before)
    await asyncio.sleep(0.3)
    proc.send_signal(signal.SIGSTOP)  # a sniffer too slow to read
    stop = threading.Event()
    pub = threading.Thread(target=flood, args=(fresh_redis.url, ch, big, stop))
    pub.start()
    await asyncio.sleep(BLOCKED)
    stop.set()
    await asyncio.to_thread(pub.join)
    proc.send_signal(signal.SIGCONT)
    await numpat(r, 3)
    await asyncio.sleep(0.2)
    await r.publish(ch, after)
    await asyncio.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    await r.aclose()
    summary = err.decode()
    assert proc.returncode == 0, summary
    assert "reconnects 1" in summary, summary
    missed = float(summary.split("reconnects 1, ")[1].split("s of traffic missed")[0])
    assert missed >= BLOCKED, summary
