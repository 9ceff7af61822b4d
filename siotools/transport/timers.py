"""Timeouts that keep a cancel: the one ``wait_for`` every async module of the project uses.

Python 3.11's :func:`asyncio.wait_for` loses a cancel that lands after the awaited thing
finished but before the waiting task resumed: it returns the result instead of raising
(CPython gh-86296, fixed in 3.12 by rebuilding ``wait_for`` on :func:`asyncio.timeout`).
A loop around such a wait (a reader, a refresher, a stop flag) then runs on after its task
was cancelled, and whoever awaits that task waits forever. :func:`wait_for` is the 3.12
implementation, on every supported Python.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["wait_for"]

T = TypeVar("T")


async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
    """Await ``aw`` for at most ``timeout`` seconds (None: no bound).

    As :func:`asyncio.wait_for`, except that ``aw`` runs in the calling task and a cancel
    of the calling task is never turned into a result. With no time left (``timeout``
    0 or less) ``aw`` is cancelled before it starts, as ``asyncio.wait_for`` does.

    Raises:
        TimeoutError: ``timeout`` passed first; ``aw`` was cancelled.
    """
    if timeout is not None and timeout <= 0:
        # As 3.12: no time left means ``aw`` never starts (a command is not even sent).
        fut = asyncio.ensure_future(aw)
        if fut.done():
            return fut.result()
        fut.cancel()
        try:
            return await fut
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise TimeoutError from None
    async with asyncio.timeout(timeout):
        return await aw
