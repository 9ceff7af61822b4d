"""The project's ``wait_for``: asyncio.wait_for's contract, without Python 3.11's lost cancel."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from siotools.transport.timers import wait_for

Waiter = Callable[[Awaitable[Any], float | None], Awaitable[Any]]


async def _cancel_as_the_result_lands(wf: Waiter) -> str:
    """Cancel a task waiting on a future in the same step the future's result is set: the
    task has not resumed yet, so the cancel must win."""
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(wf(fut, 5))
    await asyncio.sleep(0)  # the task is now waiting
    fut.set_result(1)
    task.cancel()
    try:
        return f"returned {await task}"
    except asyncio.CancelledError:
        return "cancelled"


async def test_a_cancel_landing_with_the_result_is_kept() -> None:
    assert await _cancel_as_the_result_lands(wait_for) == "cancelled"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="asyncio.wait_for keeps it since 3.12")
async def test_asyncio_wait_for_loses_that_cancel_here() -> None:
    """Why the project has its own: the same race loses the cancel in asyncio.wait_for."""
    assert await _cancel_as_the_result_lands(asyncio.wait_for) == "returned 1"


async def test_result_timeout_and_no_bound() -> None:
    async def later(value: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return value

    assert await wait_for(later(7, 0.01), 5) == 7
    assert await wait_for(later(8, 0.01), None) == 8
    with pytest.raises(TimeoutError):
        await wait_for(later(9, 5), 0.05)


async def test_a_timeout_cancels_what_it_waited_for() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await wait_for(fut, 0.01)
    assert fut.cancelled()


async def test_no_time_left_never_starts_a_coroutine() -> None:
    started: list[bool] = []

    async def send() -> int:
        started.append(True)
        await asyncio.sleep(0)
        return 1

    for left in (0, -1.0):
        with pytest.raises(TimeoutError):
            await wait_for(send(), left)
    assert started == []
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    done.set_result(3)
    assert await wait_for(done, 0) == 3


async def test_an_outer_cancel_is_not_a_timeout() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(wait_for(forever(), 30))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
