"""Runs a dialect's cluster operations (:data:`~siotools.dialects.base.Plan`) on asyncio.

The dialect objects say what to publish and how to read the replies, as pure generators;
this shell does the I/O: ``PUBSUB NUMSUB`` for :class:`~siotools.dialects.base.Count`,
publish-and-collect for :class:`~siotools.dialects.base.Ask`, with the timers of the
:class:`~siotools.transport.requests.RequestEngine`. The adapter and
:class:`~siotools.ClusterClient` share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from siotools.dialects.base import (
    Action,
    AddExpected,
    Ask,
    Count,
    Expect,
    Plan,
    Reply,
)
from siotools.transport.pubsub import Publisher
from siotools.transport.requests import RequestEngine

__all__ = ["Requester"]

T = TypeVar("T")


class Requester:
    """Carries out cluster operations over a publisher and a pending-request table.

    Args:
        publisher: Where requests are published and NUMSUB is asked.
        engine: The pending-request table replies are matched in.
        timeout: Seconds before a request fails with :class:`~siotools.RequestTimeout`
            (an :class:`~siotools.dialects.base.Ask` may carry its own).
        counted: Whether this process is one of the nodes NUMSUB counts (a server node);
            a node that does not answer its own requests is then left out of the count.
    """

    def __init__(
        self, publisher: Publisher, engine: RequestEngine, *, timeout: float, counted: bool
    ) -> None:
        self.publisher = publisher
        self.engine = engine
        self.timeout = timeout
        self.counted = counted

    async def run(self, plan: Plan[T]) -> T:
        """Drive ``plan`` to its result; its errors (timeouts, not found) propagate."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = plan.send(value) if error is None else plan.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value, error = None, None
            try:
                value = await self._step(step)
            except Exception as exc:  # handed to the plan, which may handle it
                error = exc

    async def _step(self, step: Count | Ask) -> Any:
        if isinstance(step, Count):
            count = await self.publisher.numsub(step.channel, timeout=self.timeout)
            if step.exclude_self and self.counted:
                count -= 1
            return count
        if step.expect is Expect.NONE:
            return await self.publisher.publish_wait(
                step.channel, step.payload, timeout=self.timeout
            )
        assert step.request_id is not None
        # Published with a deadline: a request is never sent after its caller gave up on it.
        fut = self.engine.request(
            self.publisher,
            step.request_id,
            step.channel,
            step.payload,
            expected=None if step.expect is Expect.FIRST else step.expected,
            timeout=self.timeout if step.timeout is None else step.timeout,
            timeout_message=step.timeout_message,
            finish=step.finish,
        )
        return await fut

    def take(self, actions: Sequence[Action]) -> bool:
        """Feed the reply actions of a response; returns whether a pending request took one."""
        took = False
        for action in actions:
            if isinstance(action, AddExpected):
                self.engine.add_expected(action.request_id, action.count)
            elif isinstance(action, Reply):
                took = self.engine.reply(action.request_id, action.value) or took
        return took
