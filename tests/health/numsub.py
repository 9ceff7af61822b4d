"""Watch NUMSUB/SHARDNUMSUB of a prefix while something runs: it must not change them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

import redis.asyncio as aioredis

T = TypeVar("T")


async def counts(rc: aioredis.Redis, key: str) -> dict[str, Any]:
    """Every channel of the prefix with its NUMSUB, every shard channel with SHARDNUMSUB."""
    names = await rc.pubsub_channels(f"{key}*")
    shard = await rc.execute_command("PUBSUB", "SHARDCHANNELS", f"{key}*")
    out: dict[str, Any] = {}
    if names:
        out.update({f"sub {n!r}": c for n, c in await rc.pubsub_numsub(*names)})
    if shard:
        reply = await rc.execute_command("PUBSUB", "SHARDNUMSUB", *shard)
        out.update({f"ssub {reply[i]!r}": reply[i + 1] for i in range(0, len(reply), 2)})
    return out


async def settled_counts(rc: aioredis.Redis, key: str) -> dict[str, Any]:
    """The counts once two readings 100 ms apart agree (nodes subscribe rooms lazily)."""
    last = await counts(rc, key)
    for _ in range(50):
        await asyncio.sleep(0.1)
        now = await counts(rc, key)
        if now == last:
            return now
        last = now
    raise AssertionError(f"the subscriptions of {key} never settled: {last}")


async def unchanged(
    rc: aioredis.Redis, keys: list[str], work: Awaitable[T], *, ignore: str | None = None
) -> T:
    """Await ``work`` while sampling the counts of ``keys`` every 20 ms; fail if any sample
    differs from the settled counts before it (channels containing ``ignore`` aside: a
    probe's cluster client subscribes response channels, which nobody counts)."""
    before = {k: await settled_counts(rc, k) for k in keys}
    samples: list[dict[str, Any]] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            samples.append({k: await counts(rc, k) for k in keys})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)

    sampler = asyncio.create_task(sample())
    await asyncio.sleep(0.03)  # the first samples are taken before the work starts
    try:
        result = await work
    finally:
        stop.set()
        await sampler
    samples.append({k: await counts(rc, k) for k in keys})
    assert len(samples) >= 3
    for s in samples:
        for k in keys:
            changed = {
                c: (before[k].get(c), s[k].get(c))
                for c in before[k].keys() | s[k].keys()
                if before[k].get(c) != s[k].get(c) and not (ignore and ignore in c)
            }
            assert not changed, f"NUMSUB/SHARDNUMSUB changed while it ran: {changed}"
    return result
