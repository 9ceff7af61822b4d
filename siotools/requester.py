"""Runs a dialect's cluster operations (:data:`~siotools.dialects.base.Plan`) on asyncio.

The dialect objects say what to publish and how to read the replies, as pure generators;
this shell does the I/O: ``PUBSUB NUMSUB`` for :class:`~siotools.dialects.base.Count`,
publish-and-collect for :class:`~siotools.dialects.base.Ask`, with the timers of the
:class:`~siotools.transport.requests.RequestEngine`. The adapter and
:class:`~siotools.ClusterClient` share it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from siotools.dialects.base import (
    Action,
    AddExpected,
    Append,
    Ask,
    Count,
    Expect,
    Local,
    Plan,
    Reply,
    WireDialect,
)
from siotools.exceptions import ConfigurationError
from siotools.transport.cluster import ClusterTopology, parse_cluster_url, seed_from_client
from siotools.transport.cluster_pubsub import ClusterPublisher, ClusterSubscriber
from siotools.transport.connection import BatchHandler, MessageHandler
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import ErrorHandler, EventHandler, Publisher, Subscriber
from siotools.transport.requests import RequestEngine

__all__ = ["AnyPublisher", "AnySubscriber", "Requester", "Transport", "append"]

T = TypeVar("T")

AnyPublisher = Publisher | ClusterPublisher
"""A single-Redis or a Redis Cluster publisher (same interface)."""
AnySubscriber = Subscriber | ClusterSubscriber
"""A single-Redis or a Redis Cluster subscriber (same interface)."""
LocalHandler = Callable[[Local], Awaitable[None]]


class Transport:
    """Where a shell's Redis is and how to reach it: one Redis, or a Redis Cluster.

    The Redis Cluster transport is used when the URL says ``?cluster=true`` (or
    ``cluster=True`` is passed, or the client given is a redis-py ``RedisCluster``), and
    whenever the dialect talks sharded pub/sub: a standalone Redis 7 is then treated as a
    one-master cluster.

    Args:
        url: A Redis URL (``?cluster=true`` names a seed node of a Redis Cluster).
        client: A redis-py client whose settings to use instead of ``url``.
        cluster: Force (True) or refuse (False) the cluster transport; ``None`` reads the
            URL / client.
        endpoint: An endpoint already made (host and port given as such).

    Raises:
        ConfigurationError: A malformed URL, or a cluster URL with a database or a socket.
    """

    def __init__(
        self,
        url: str | None,
        client: Any = None,
        cluster: bool | None = None,
        *,
        endpoint: RedisEndpoint | None = None,
    ) -> None:
        if endpoint is not None:
            self.endpoint, self.cluster = endpoint, bool(cluster)
        elif client is not None:
            is_cluster = cluster if cluster is not None else hasattr(client, "nodes_manager")
            if is_cluster:
                self.endpoint = seed_from_client(client)
            else:
                self.endpoint = RedisEndpoint.from_client(client)
            self.cluster = bool(is_cluster)
        else:
            self.endpoint, self.cluster = parse_cluster_url(
                url or "redis://127.0.0.1:6379/0", cluster
            )
        self._topology: ClusterTopology | None = None

    def uses_cluster(self, dialect: WireDialect | None) -> bool:
        """Whether ``dialect`` runs on the Redis Cluster transport here (``None``: before
        the dialect is known, as the URL says)."""
        return self.cluster or (dialect is not None and dialect.sharded_pubsub)

    def topology(self) -> ClusterTopology:
        """The slot map shared by this transport's publishers and subscribers."""
        if self._topology is None:
            self._topology = ClusterTopology(self.endpoint, standalone_ok=not self.cluster)
        return self._topology

    def publisher(
        self, dialect: WireDialect | None, *, name: str, on_error: ErrorHandler | None
    ) -> AnyPublisher:
        """A publisher for ``dialect`` (not started)."""
        if self.uses_cluster(dialect):
            return ClusterPublisher(self.topology(), name=name, on_error=on_error)
        return Publisher(self.endpoint, name=name, on_error=on_error)

    def subscriber(
        self,
        dialect: WireDialect | None,
        *,
        name: str,
        on_message: MessageHandler | None = None,
        on_batch: BatchHandler | None = None,
        on_error: ErrorHandler | None = None,
        on_event: EventHandler | None = None,
    ) -> AnySubscriber:
        """A subscriber for ``dialect`` (not started). ``on_event`` (lost/restored link
        events) is reported by the single-Redis subscriber only, for now."""
        if self.uses_cluster(dialect):
            return ClusterSubscriber(
                self.topology(), on_message, on_batch=on_batch, name=name, on_error=on_error
            )
        return Subscriber(
            self.endpoint,
            on_message,
            on_batch=on_batch,
            name=name,
            on_error=on_error,
            on_event=on_event,
        )


def sharded_publisher(publisher: AnyPublisher) -> ClusterPublisher:
    """``publisher`` as a publisher that can SPUBLISH, or a clear error."""
    if not isinstance(publisher, ClusterPublisher):
        raise ConfigurationError(
            "sharded pub/sub needs the Redis Cluster transport (a sharded dialect on a "
            "plain publisher is a siotools bug)"
        )
    return publisher


async def append(publisher: AnyPublisher, step: Append, *, timeout: float | None = None) -> Any:
    """XADD one stream entry and return its id (on a Redis Cluster, on the key's master).

    Raises:
        RedisUnavailableError: Redis cannot be reached or refused the command.
    """
    if isinstance(publisher, ClusterPublisher):
        return await publisher.execute(*step.command, channel=step.stream, timeout=timeout)
    return await publisher.execute(*step.command, timeout=timeout)


def publish(publisher: AnyPublisher, channel: bytes, payload: bytes, sharded: bool) -> None:
    """PUBLISH, or SPUBLISH when ``sharded``, without waiting."""
    if sharded:
        sharded_publisher(publisher).spublish(channel, payload)
    else:
        publisher.publish(channel, payload)


class Requester:
    """Carries out cluster operations over a publisher and a pending-request table.

    Args:
        publisher: Where requests are published and NUMSUB is asked.
        engine: The pending-request table replies are matched in.
        timeout: Seconds before a request fails with :class:`~siotools.RequestTimeout`
            (an :class:`~siotools.dialects.base.Ask` may carry its own).
        counted: Whether this process is one of the nodes NUMSUB counts (a server node);
            a node that does not answer its own requests is then left out of the count.
        local: Carries out a plan's :class:`~siotools.dialects.base.Local` step on this
            node's sockets (``None``: a process without sockets, the step is skipped).
    """

    def __init__(
        self,
        publisher: AnyPublisher,
        engine: RequestEngine,
        *,
        timeout: float,
        counted: bool,
        local: LocalHandler | None = None,
    ) -> None:
        self.publisher = publisher
        self.engine = engine
        self.timeout = timeout
        self.counted = counted
        self.local = local

    async def masters_execute(self, *args: bytes) -> list[Any]:
        """Run a command on every master (one Redis: on it) and return the replies."""
        publisher = self.publisher
        if isinstance(publisher, ClusterPublisher):
            masters = sorted(publisher.topology.masters)
            return list(
                await asyncio.gather(*(publisher.execute(*args, node=addr) for addr in masters))
            )
        return [await publisher.execute(*args)]

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

    async def _step(self, step: Count | Ask | Local | Append) -> Any:
        if isinstance(step, Local):
            if self.local is not None:
                await self.local(step)
            return None
        if isinstance(step, Append):
            return await append(self.publisher, step, timeout=self.timeout)
        if isinstance(step, Count):
            if step.sharded:
                count = await sharded_publisher(self.publisher).shardnumsub(step.channel)
            elif isinstance(self.publisher, Publisher):
                count = await self.publisher.numsub(step.channel, timeout=self.timeout)
            else:
                count = await self.publisher.numsub(step.channel)
            if step.exclude_self and self.counted:
                count -= 1
            return count
        if step.expect is Expect.NONE:
            if step.sharded:
                return await sharded_publisher(self.publisher).spublish_wait(
                    step.channel, step.payload
                )
            if isinstance(self.publisher, Publisher):
                return await self.publisher.publish_wait(
                    step.channel, step.payload, timeout=self.timeout
                )
            return await self.publisher.publish_wait(step.channel, step.payload)
        assert step.request_id is not None
        expected = None if step.expect is Expect.FIRST else step.expected
        timeout = self.timeout if step.timeout is None else step.timeout
        if isinstance(self.publisher, Publisher) and not step.sharded:
            # Published with a deadline: a request is never sent after its caller gave up.
            fut = self.engine.request(
                self.publisher,
                step.request_id,
                step.channel,
                step.payload,
                expected=expected,
                timeout=timeout,
                timeout_message=step.timeout_message,
                finish=step.finish,
            )
        else:
            # The Redis Cluster transport has no request deadlines yet: a request published
            # while a master is away waits in its offline queue and may go out late.
            fut = self.engine.open(
                step.request_id,
                expected=expected,
                timeout=timeout,
                timeout_message=step.timeout_message,
                finish=step.finish,
            )
            publish(self.publisher, step.channel, step.payload, step.sharded)
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
