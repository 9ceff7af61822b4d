"""Helpers of the sharded sniffer tests: SHARDNUMSUB summed over masters, sampled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

T = TypeVar("T")


class Masters:
    """One redis-py client per master (or the single Redis), for PUBSUB reads only."""

    def __init__(self, urls: list[str]) -> None:
        self.clients = [aioredis.from_url(u) for u in urls]

    async def shardnumsub(self, *channels: str) -> dict[str, int]:
        """``PUBSUB SHARDNUMSUB`` of each channel summed over the masters (what nodes count)."""
        out = dict.fromkeys(channels, 0)
        for rc in self.clients:
            reply = await rc.execute_command("PUBSUB", "SHARDNUMSUB", *channels)
            for i in range(0, len(reply), 2):
                out[reply[i].decode()] += int(reply[i + 1])
        return out

    async def spublish(self, channel: str, payload: bytes) -> None:
        """SPUBLISH on whichever master serves the channel (the others answer MOVED)."""
        for rc in self.clients:
            try:
                await rc.execute_command("SPUBLISH", channel, payload)
            except redis.exceptions.MovedError:  # another master serves the slot
                continue
            else:
                return
        raise AssertionError(f"no master took SPUBLISH {channel}")

    async def close(self) -> None:
        for rc in self.clients:
            await rc.aclose()


async def sampled(
    read: Callable[[], Awaitable[dict[str, int]]], work: Awaitable[T]
) -> tuple[T, list[dict[str, int]]]:
    """Await ``work`` while reading the counts every 20 ms; returns its result and every
    sample (the first taken before the work started, the last after it ended)."""
    samples: list[dict[str, int]] = [await read()]
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            samples.append(await read())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)

    sampler = asyncio.create_task(sample())
    try:
        result = await work
    finally:
        stop.set()
        await sampler
    samples.append(await read())
    return result, samples


async def until(pred: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait until ``pred()`` is true."""

    async def loop() -> None:
        while not pred():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), timeout)
