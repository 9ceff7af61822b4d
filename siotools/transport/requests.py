"""The cluster request/response engine: pending requests, reply counting, timeouts.

Every adapter dialect asks the cluster the same way: publish a request, collect replies
on a response channel keyed by a request id, and finish when enough replies arrived
(the count of request-channel subscribers from ``PUBSUB NUMSUB``, or the first reply
for single-target requests) or when the timeout fires. This module holds that
bookkeeping once; the dialects only say what to publish and how to read a reply.

:meth:`RequestEngine.request` also publishes: the request goes out with a deadline (the
request's timeout), so a request made while Redis is away is dropped unsent when its
caller gives up, and the caller learns that Redis was unreachable
(:class:`~siotools.exceptions.RequestUndelivered`) instead of a plain
:class:`~siotools.exceptions.RequestTimeout` that would blame the nodes.
"""

from __future__ import annotations

import asyncio
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar

from siotools.exceptions import RequestTimeout, RequestUndelivered

if TYPE_CHECKING:
    from siotools.transport.endpoint import RedisEndpoint

__all__ = ["PendingRequest", "RequestEngine", "RequestPublisher", "new_request_id"]

T = TypeVar("T")

_ALPHABET = string.ascii_letters + string.digits

TimeoutMessage: TypeAlias = str | Callable[[int, int | None], str]
"""Node's wording of a timeout, or a function of ``(answered, expected)`` making it."""


class RequestPublisher(Protocol):
    """What publishes a request with a deadline: the single-Redis
    :class:`~siotools.transport.pubsub.Publisher` or the Redis Cluster one."""

    @property
    def endpoint(self) -> RedisEndpoint: ...

    def publish_request(
        self, channel: bytes, payload: bytes, *, deadline: float
    ) -> asyncio.Future[int]: ...


def new_request_id(length: int = 6, alphabet: str = _ALPHABET) -> str:
    """A random id like ``uid2(6)`` makes in the Node adapters (``[A-Za-z0-9]``)."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(eq=False)
class PendingRequest(Generic[T]):
    """A request waiting for replies.

    Attributes:
        request_id: The id the replies carry.
        expected: How many replies complete it; ``None`` means the first one does.
        replies: The replies so far, in arrival order.
        timeout_message: The error text when it times out (the Node adapter's wording).
        finish: Turns the replies into the result (also used for the partial result).
    """

    request_id: str
    expected: int | None
    timeout_message: TimeoutMessage
    finish: Callable[[list[Any]], T]
    future: asyncio.Future[T]
    replies: list[Any] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    sent: asyncio.Future[int] | None = None
    """Redis's PUBLISH reply for the request (:meth:`RequestEngine.request` only)."""
    where: str = ""
    timeout: float = 0.0
    nodes: int | None = None
    """With per-node counts: how many count replies (:meth:`RequestEngine.add_expected`)
    must arrive before the request can complete."""
    counted: int = 0
    """Count replies arrived so far."""

    @property
    def complete(self) -> bool:
        """Whether enough replies arrived."""
        if self.expected is None:
            return len(self.replies) >= 1
        if self.nodes is not None and self.counted < self.nodes:
            return False  # a node's acks may come before another node's count
        return len(self.replies) >= self.expected


class RequestEngine:
    """Tracks pending cluster requests and resolves them from replies or timeouts."""

    def __init__(self) -> None:
        self._pending: dict[str, PendingRequest[Any]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._pending

    def open(
        self,
        request_id: str,
        *,
        expected: int | None,
        timeout: float,
        timeout_message: TimeoutMessage,
        finish: Callable[[list[Any]], T],
        per_node_counts: bool = False,
    ) -> asyncio.Future[T]:
        """Register a request before it is published; returns the future of its result.

        The future fails with :class:`RequestTimeout` (carrying the partial result and
        the counts) when ``timeout`` seconds pass first. With ``expected == 0`` it
        completes at once with ``finish([])``. With ``per_node_counts``, each of the
        ``expected`` nodes answers a count first (:meth:`add_expected`), and the request
        completes only once every one of those counts arrived too.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        req = PendingRequest(request_id, expected, timeout_message, finish, fut)
        if per_node_counts and expected is not None:
            req.nodes = expected
        if req.complete:
            fut.set_result(finish([]))
            return fut
        req.timer = loop.call_later(timeout, self._expire, request_id)
        self._pending[request_id] = req
        fut.add_done_callback(lambda _f: self._drop(request_id))
        return fut

    def request(
        self,
        publisher: RequestPublisher,
        request_id: str,
        channel: bytes,
        payload: bytes,
        *,
        expected: int | None,
        timeout: float,
        timeout_message: TimeoutMessage,
        finish: Callable[[list[Any]], T],
        per_node_counts: bool = False,
    ) -> asyncio.Future[T]:
        """Register a request and publish it with a deadline of ``timeout`` seconds.

        Like :meth:`open`, but when the time is up and Redis never acknowledged the
        request (it was unreachable, or the request was dropped unsent at its deadline),
        the future fails with :class:`RequestUndelivered` saying Redis is unreachable.

        Returns:
            The future of the request's result.
        """
        fut = self.open(
            request_id,
            expected=expected,
            timeout=timeout,
            timeout_message=timeout_message,
            finish=finish,
            per_node_counts=per_node_counts,
        )
        if fut.done():
            return fut
        req = self._pending[request_id]
        req.where = publisher.endpoint.url
        req.timeout = timeout
        deadline = asyncio.get_running_loop().time() + timeout
        req.sent = publisher.publish_request(channel, payload, deadline=deadline)
        return fut

    def reply(self, request_id: str, value: Any) -> bool:
        """Record one reply; returns whether a pending request took it."""
        req = self._pending.get(request_id)
        if req is None or req.future.done():
            return False
        req.replies.append(value)
        if req.complete:
            self._resolve(req)
        return True

    def add_expected(self, request_id: str, count: int) -> None:
        """One node's count: raise how many replies a request waits for (8.x BROADCAST
        client counts)."""
        req = self._pending.get(request_id)
        if req is None or req.expected is None or req.future.done():
            return
        req.counted += 1
        req.expected += count
        if req.complete:
            self._resolve(req)

    def _resolve(self, req: PendingRequest[Any]) -> None:
        self._drop(req.request_id)
        try:
            req.future.set_result(req.finish(req.replies))
        except Exception as exc:  # a bad reply must fail this request, not the listener
            req.future.set_exception(exc)

    def _expire(self, request_id: str) -> None:
        req = self._pending.get(request_id)
        if req is None or req.future.done():
            return
        self._drop(request_id)
        try:
            partial = req.finish(req.replies)
        except Exception:
            partial = list(req.replies)
        sent = req.sent
        if sent is not None and not req.replies and (not sent.done() or sent.exception()):
            # Redis never acknowledged the PUBLISH: the nodes could not have answered.
            cause = sent.exception() if sent.done() else None
            detail = f" ({cause})" if cause is not None else " (no acknowledgement from Redis)"
            req.future.set_exception(
                RequestUndelivered(
                    f"Redis at {req.where} is unreachable: the request could not be "
                    f"delivered within {req.timeout:g}s{detail}.",
                    partial=partial,
                )
            )
            return
        message = req.timeout_message
        if not isinstance(message, str):
            message = message(len(req.replies), req.expected)
        req.future.set_exception(
            RequestTimeout(
                message,
                partial=partial,
                answered=len(req.replies),
                expected=req.expected,
            )
        )

    def _drop(self, request_id: str) -> None:
        req = self._pending.pop(request_id, None)
        if req is not None and req.timer is not None:
            req.timer.cancel()

    def cancel_all(self) -> None:
        """Cancel every pending request (on close)."""
        for req in list(self._pending.values()):
            if not req.future.done():
                req.future.cancel()
        self._pending.clear()
