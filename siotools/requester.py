"""Runs a dialect's cluster operations (:data:`~siotools.dialects.base.Plan`) on asyncio.

The dialect objects say what to publish and how to read the replies, as pure generators;
this shell does the I/O: ``PUBSUB NUMSUB`` for :class:`~siotools.dialects.base.Count`,
publish-and-collect for :class:`~siotools.dialects.base.Ask`, with the timers of the
:class:`~siotools.transport.requests.RequestEngine`. The adapter and
:class:`~siotools.ClusterClient` share it.
"""

from __future__ import annotations

import asyncio
import time
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
from siotools.dialects.detect import (
    CommandRunner,
    Detection,
    KeyRoute,
    PubSubSnapshot,
    StreamClues,
    detect_across,
    read_stream_across,
)
from siotools.exceptions import ConfigurationError, RequestTimeout
from siotools.metrics import MetricsRecorder
from siotools.transport.cluster import ClusterTopology, parse_cluster_url, seed_from_client
from siotools.transport.cluster_pubsub import ClusterPublisher, ClusterSubscriber
from siotools.transport.connection import BatchHandler, MessageHandler
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import ErrorHandler, EventHandler, Publisher, Subscriber
from siotools.transport.requests import RequestEngine, RequestPublisher

__all__ = [
    "AnyPublisher",
    "AnySubscriber",
    "KeyCommands",
    "NodeCommands",
    "Requester",
    "Transport",
    "append",
    "command_runners",
    "detect_on",
    "key_route",
    "read_stream_on",
]

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
        """A subscriber for ``dialect`` (not started); ``on_event`` gets its lost and
        restored link events."""
        if self.uses_cluster(dialect):
            return ClusterSubscriber(
                self.topology(),
                on_message,
                on_batch=on_batch,
                name=name,
                on_error=on_error,
                on_event=on_event,
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


class _ShardedRequests:
    """A Redis Cluster publisher whose requests go out with ``SPUBLISH``."""

    def __init__(self, publisher: ClusterPublisher) -> None:
        self.publisher = publisher
        self.endpoint = publisher.endpoint

    def publish_request(
        self, channel: bytes, payload: bytes, *, deadline: float
    ) -> asyncio.Future[int]:
        return self.publisher.spublish_request(channel, payload, deadline=deadline)


class NodeCommands:
    """A Redis Cluster publisher's ``execute`` pinned to one node (``PUBSUB`` is node-local)."""

    def __init__(self, publisher: ClusterPublisher, addr: str) -> None:
        self.publisher, self.addr = publisher, addr

    @property
    def connected(self) -> bool:
        """Whether the publisher is connected (to every master)."""
        return self.publisher.connected

    async def execute(self, *args: bytes | str | int | float, timeout: float | None = None) -> Any:
        """Run one command on this node."""
        return await self.publisher.execute(*args, node=self.addr, timeout=timeout)


class KeyCommands:
    """A Redis Cluster publisher's ``execute`` routed to the master of one key's slot
    (``MOVED``/``ASK`` followed)."""

    def __init__(self, publisher: ClusterPublisher, key: str) -> None:
        self.publisher, self.key = publisher, key.encode()

    @property
    def connected(self) -> bool:
        """Whether the publisher is connected (to every master)."""
        return self.publisher.connected

    async def execute(self, *args: bytes | str | int | float, timeout: float | None = None) -> Any:
        """Run one command on the master of the key's slot."""
        return await self.publisher.execute(*args, channel=self.key, timeout=timeout)


def key_route(publisher: AnyPublisher) -> KeyRoute:
    """Where a command on a key runs: its slot's master on a Redis Cluster, else the one
    Redis."""
    if isinstance(publisher, ClusterPublisher):
        cluster = publisher
        return lambda key: KeyCommands(cluster, key)
    return lambda _key: publisher


def command_runners(publisher: AnyPublisher) -> list[CommandRunner]:
    """Where a node-local command must be asked: every master of a Redis Cluster, else the
    one Redis."""
    if isinstance(publisher, ClusterPublisher):
        return [NodeCommands(publisher, addr) for addr in sorted(publisher.topology.masters)]
    return [publisher]


async def detect_on(publisher: AnyPublisher, prefix: str) -> Detection:
    """Passive dialect detection through ``publisher``: on a Redis Cluster, ``PUBSUB
    CHANNELS/NUMSUB/SHARDCHANNELS`` are asked of every master and merged (a node-redis
    cluster client subscribes on a random master, so one master shows only its own).

    Raises:
        RedisUnavailableError: Redis cannot be reached or refused ``PUBSUB``.
    """
    return await detect_across(command_runners(publisher), prefix)


async def read_stream_on(
    publisher: AnyPublisher, key: str, snap: PubSubSnapshot | None = None
) -> StreamClues | None:
    """:func:`~siotools.dialects.detect.read_stream_across` through ``publisher``: on a
    Redis Cluster the numbered streams and the recovery sessions are looked for on every
    master (``SCAN`` is node-local there) and each key is read on its slot's master.

    Raises:
        RedisUnavailableError: Redis (or a master) cannot be reached.
    """
    return await read_stream_across(command_runners(publisher), key_route(publisher), key, snap)


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
        metrics: Where to count the requests sent, their latency and timeouts (the type
            of a request is the name of the dialect's plan: ``fetch_sockets``...).
    """

    def __init__(
        self,
        publisher: AnyPublisher,
        engine: RequestEngine,
        *,
        timeout: float,
        counted: bool,
        local: LocalHandler | None = None,
        metrics: MetricsRecorder | None = None,
    ) -> None:
        self.publisher = publisher
        self.engine = engine
        self.timeout = timeout
        self.counted = counted
        self.local = local
        self.metrics = metrics

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
        # The dialects' plans are generators named after their operation.
        kind = str(getattr(plan, "__name__", "request"))
        while True:
            try:
                step = plan.send(value) if error is None else plan.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value, error = None, None
            try:
                value = await self._step(step, kind)
            except Exception as exc:  # handed to the plan, which may handle it
                error = exc

    async def _step(self, step: Count | Ask | Local | Append, kind: str) -> Any:
        if isinstance(step, Local):
            if self.local is not None:
                await self.local(step)
            return None
        if isinstance(step, Append):
            return await append(self.publisher, step, timeout=self.timeout)
        # Every Redis command of a plan has the request's deadline, on one Redis and on a
        # Redis Cluster alike: a stalled server fails the request in time, never hangs it.
        if isinstance(step, Count):
            if step.sharded:
                count = await sharded_publisher(self.publisher).shardnumsub(
                    step.channel, timeout=self.timeout
                )
            else:
                count = await self.publisher.numsub(step.channel, timeout=self.timeout)
            if step.exclude_self and self.counted:
                count -= 1
            return count
        if self.metrics is None:
            return await self._ask(step)
        req = self.metrics.request_sent(kind, step.channel, len(step.payload))
        started = time.perf_counter()
        try:
            value = await self._ask(step)
        except RequestTimeout:
            self.metrics.request_timed_out(req)
            raise
        except Exception:
            self.metrics.request_failed(req)
            raise
        if step.expect is not Expect.NONE:  # fire-and-forget ones have no answer to time
            self.metrics.request_answered(req, time.perf_counter() - started)
        return value

    async def _ask(self, step: Ask) -> Any:
        if step.expect is Expect.NONE:
            if step.sharded:
                return await sharded_publisher(self.publisher).spublish_wait(
                    step.channel, step.payload, timeout=self.timeout
                )
            heard: int = await self.publisher.publish_wait(
                step.channel, step.payload, timeout=self.timeout
            )
            if isinstance(self.publisher, ClusterPublisher):
                # A Redis Cluster's PUBLISH reply counts the subscribers of one node only:
                # the nodes that heard it are the request channel's, summed over the
                # masters (@socket.io/redis-adapter serverCount() on a cluster).
                heard = await self.publisher.numsub(step.channel, timeout=self.timeout)
            return heard
        assert step.request_id is not None
        expected = None if step.expect is Expect.FIRST else step.expected
        timeout = self.timeout if step.timeout is None else step.timeout
        sender: RequestPublisher = self.publisher
        if step.sharded:
            sender = _ShardedRequests(sharded_publisher(self.publisher))
        # Published with a deadline: a request is never sent after its caller gave up, and
        # one Redis never took is reported as such (RequestUndelivered), not as the nodes'
        # silence.
        fut = self.engine.request(
            sender,
            step.request_id,
            step.channel,
            step.payload,
            expected=expected,
            timeout=timeout,
            timeout_message=step.timeout_message,
            finish=step.finish,
            per_node_counts=step.expect is Expect.COUNTS,
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
