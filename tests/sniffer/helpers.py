"""Shared helpers of the sniffer tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from siotools.sniffer import Capture, SniffedFrame


async def wait_frames(
    cap: Capture,
    pred: Callable[[SniffedFrame], bool] = lambda f: True,
    n: int = 1,
    timeout: float = 5.0,
) -> list[SniffedFrame]:
    """Wait until ``cap`` holds ``n`` frames matching ``pred``; returns them."""

    async def until() -> list[SniffedFrame]:
        while True:
            hits = [f for f in cap.frames if pred(f)]
            if len(hits) >= n:
                return hits
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(until(), timeout)


def broadcasts(cap: Capture, event: str | None = None) -> list[SniffedFrame]:
    """The captured broadcasts (of one event)."""
    return [f for f in cap.frames if f.kind == "broadcast" and (event is None or f.event == event)]
