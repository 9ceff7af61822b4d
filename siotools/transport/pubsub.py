"""Publishing and subscribing that survive Redis restarts.

A :class:`Subscriber` remembers every channel and pattern it was asked for and
restores all of them after a reconnect; a :class:`Publisher` pipelines commands and
keeps what is published while Redis is away in a bounded offline queue, as node-redis
does with its offline queue (``enable_offline_queue``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from siotools.exceptions import RedisUnavailableError
from siotools.transport.connection import (
    BatchHandler,
    CommandConnection,
    MessageHandler,
    RespConnection,
    SubscriberConnection,
    open_connection,
)
from siotools.transport.endpoint import RedisEndpoint

__all__ = ["ErrorHandler", "Publisher", "Subscriber"]

log = logging.getLogger("siotools.transport")

ErrorHandler = Callable[[BaseException], None]

C = TypeVar("C", bound=RespConnection)

_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 2.0


class _Supervised(Generic[C]):
    """Owns one connection and reconnects it, with backoff, until closed.

    Subclasses say how to make the connection (:meth:`_new_connection`) and what to start
    on it once it is open (:meth:`_begin`: subscriptions, MONITOR, the offline queue).
    """

    _BEGIN = "accept the connection"
    """What :meth:`_begin` does, for the error when it fails ("did not ...")."""

    def __init__(
        self,
        endpoint: RedisEndpoint,
        name: str,
        on_error: ErrorHandler | None,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self._on_error = on_error
        self._on_reconnect = on_reconnect
        self._conn: C | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self.reconnects = 0
        """How many times the connection was re-established after a loss."""

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._up.is_set()

    def report(self, exc: BaseException) -> None:
        """Pass an error to the owner's error handler (or log it when there is none)."""
        if self._on_error is not None:
            try:
                self._on_error(exc)
            except Exception:  # an error handler must never break the connection
                log.exception("error handler of %s failed", self.name)
        else:
            log.warning("%s: %s", self.name, exc)

    async def start(self) -> None:
        """Connect once; the first failure is raised, later ones are retried.

        Raises:
            RedisUnavailableError: Redis cannot be reached now.
        """
        await self._establish()
        self._task = asyncio.create_task(self._supervise(), name=f"{self.name}-supervisor")

    def _new_connection(self) -> C:
        raise NotImplementedError

    async def _begin(self, conn: C) -> None:
        """Start what the connection is for (it is open, not yet marked up)."""

    async def _establish(self) -> None:
        conn = await open_connection(self.endpoint, self._new_connection)
        first = self._conn is None
        self._conn = conn
        try:
            await asyncio.wait_for(self._begin(conn), self.endpoint.connect_timeout)
        except (TimeoutError, RedisUnavailableError) as exc:
            conn.abort()
            raise RedisUnavailableError(
                f"Redis at {self.endpoint.url} did not {self._BEGIN}: {exc or 'timed out'}"
            ) from exc
        self._up.set()
        if not first and self._on_reconnect is not None:
            self._on_reconnect()

    async def _wait_lost(self) -> None:
        assert self._conn is not None
        await asyncio.shield(self._conn.lost)

    async def _supervise(self) -> None:
        while not self._closing:
            await self._wait_lost()
            self._up.clear()
            if self._closing:
                return
            self.report(
                RedisUnavailableError(
                    f"Lost the connection to Redis at {self.endpoint.url} ({self.name}); "
                    "reconnecting."
                )
            )
            delay = _BACKOFF_FIRST
            while not self._closing:
                await asyncio.sleep(delay)
                try:
                    await self._establish()
                except RedisUnavailableError:
                    delay = min(delay * 2, _BACKOFF_MAX)
                    continue
                self.reconnects += 1
                log.info("%s reconnected to %s", self.name, self.endpoint.url)
                break

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the connection is up.

        Raises:
            RedisUnavailableError: It is not up within ``timeout`` seconds.
        """
        if self._up.is_set():
            return
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            raise RedisUnavailableError(
                f"Redis at {self.endpoint.url} is unreachable ({self.name})."
            ) from None

    async def _stop_supervisor(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Subscriber(_Supervised[SubscriberConnection]):
    """A subscriber connection that restores its channels and patterns after a reconnect.

    Args:
        endpoint: The Redis server.
        on_message: Called with ``(channel, payload, pattern)`` for each message, on the
            event loop, in the order Redis sent them.
        on_batch: Instead of ``on_message``: called once per socket read with the
            messages it carried (see :data:`~siotools.transport.connection.BatchHandler`).
        name: The connection's name in logs and errors.
        on_error: Called with connection errors (lost, refused) and handler exceptions.
        on_reconnect: Called after the subscriptions were restored on a new connection.
    """

    def __init__(
        self,
        endpoint: RedisEndpoint,
        on_message: MessageHandler | None = None,
        *,
        on_batch: BatchHandler | None = None,
        name: str = "siotools-sub",
        on_error: ErrorHandler | None = None,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(endpoint, name, on_error, on_reconnect)
        if (on_message is None) == (on_batch is None):
            raise ValueError("pass exactly one of on_message and on_batch")
        self._on_message = on_message
        self._on_batch = on_batch
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self._pending: dict[bytes, asyncio.Future[None]] = {}

    def _dispatch(self, channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        assert self._on_message is not None
        try:
            self._on_message(channel, payload, pattern)
        except Exception as exc:  # a bad handler must not kill the connection
            log.exception("message handler of %s failed", self.name)
            self.report(exc)

    def _dispatch_batch(self, now: int, batch: list[list[bytes]]) -> None:
        assert self._on_batch is not None
        try:
            self._on_batch(now, batch)
        except Exception as exc:  # a bad handler must not kill the connection
            log.exception("message handler of %s failed", self.name)
            self.report(exc)

    def _new_connection(self) -> SubscriberConnection:
        if self._on_batch is not None:
            return SubscriberConnection(self.name, on_batch=self._dispatch_batch)
        return SubscriberConnection(self.name, on_message=self._dispatch)

    _BEGIN = "confirm the subscriptions"

    async def _begin(self, conn: SubscriberConnection) -> None:
        waits = []
        if self.channels:
            waits.append(conn.command(b"SUBSCRIBE", sorted(self.channels)))
        if self.patterns:
            waits.append(conn.command(b"PSUBSCRIBE", sorted(self.patterns)))
        await asyncio.gather(*waits)

    def _send(self, verb: bytes, items: list[bytes]) -> asyncio.Future[None] | None:
        conn = self._conn
        if not items or conn is None or not conn.connected:
            return None  # applied from the remembered sets on the next connect
        fut = conn.command(verb, items)
        # The caller may never await it (a room subscription made from sync code);
        # a lost connection is handled by the supervisor, not by this future.
        fut.add_done_callback(_consume)
        return fut

    def _confirming(self, fut: asyncio.Future[None] | None, items: list[bytes]) -> None:
        # Remember which confirmation each new item waits for: a second subscriber of the
        # same channel must also wait for it (a request published before Redis applied the
        # SUBSCRIBE could have its replies missed).
        if fut is None:
            return
        pending = self._pending
        for item in items:
            pending[item] = fut

        def done(f: asyncio.Future[None]) -> None:
            for item in items:
                if pending.get(item) is f:
                    del pending[item]

        fut.add_done_callback(done)

    def subscribe_nowait(self, channels: Iterable[bytes]) -> asyncio.Future[None] | None:
        """SUBSCRIBE without waiting; returns the confirmation future (None if nothing sent)."""
        new = [c for c in channels if c not in self.channels]
        self.channels.update(new)
        fut = self._send(b"SUBSCRIBE", new)
        self._confirming(fut, new)
        return fut

    def unsubscribe_nowait(self, channels: Iterable[bytes]) -> asyncio.Future[None] | None:
        """UNSUBSCRIBE without waiting; returns the confirmation future (None if nothing sent)."""
        gone = [c for c in channels if c in self.channels]
        self.channels.difference_update(gone)
        return self._send(b"UNSUBSCRIBE", gone)

    def psubscribe_nowait(self, patterns: Iterable[bytes]) -> asyncio.Future[None] | None:
        """PSUBSCRIBE without waiting; returns the confirmation future (None if nothing sent)."""
        new = [p for p in patterns if p not in self.patterns]
        self.patterns.update(new)
        fut = self._send(b"PSUBSCRIBE", new)
        # Patterns and channels never collide: a pattern key is kept with a marker byte.
        self._confirming(fut, [b"\x00" + p for p in new])
        return fut

    def punsubscribe_nowait(self, patterns: Iterable[bytes]) -> asyncio.Future[None] | None:
        """PUNSUBSCRIBE without waiting; returns the confirmation future (None if nothing sent)."""
        gone = [p for p in patterns if p in self.patterns]
        self.patterns.difference_update(gone)
        return self._send(b"PUNSUBSCRIBE", gone)

    async def _settle_all(self, fut: asyncio.Future[None] | None, keys: list[bytes]) -> None:
        waits = {f for f in map(self._pending.get, keys) if f is not None}
        if fut is not None:
            waits.add(fut)
        for wait in waits:
            await _settle(wait)

    async def subscribe(self, channels: Iterable[bytes]) -> None:
        """SUBSCRIBE to the channels not yet subscribed; returns once Redis confirmed them
        (also those another caller's SUBSCRIBE is still waiting for)."""
        channels = list(channels)
        await self._settle_all(self.subscribe_nowait(channels), channels)

    async def unsubscribe(self, channels: Iterable[bytes]) -> None:
        """UNSUBSCRIBE from the given channels that are subscribed."""
        await _settle(self.unsubscribe_nowait(channels))

    async def psubscribe(self, patterns: Iterable[bytes]) -> None:
        """PSUBSCRIBE to the patterns not yet subscribed; returns once Redis confirmed them."""
        patterns = list(patterns)
        fut = self.psubscribe_nowait(patterns)
        await self._settle_all(fut, [b"\x00" + p for p in patterns])

    async def punsubscribe(self, patterns: Iterable[bytes]) -> None:
        """PUNSUBSCRIBE from the given patterns that are subscribed."""
        await _settle(self.punsubscribe_nowait(patterns))

    async def close(self) -> None:
        """Unsubscribe from everything and close the connection."""
        await self._stop_supervisor()
        conn, self._conn = self._conn, None
        self._up.clear()
        if conn is not None and conn.connected:
            with contextlib.suppress(RedisUnavailableError, TimeoutError):
                waits = []
                if self.channels:
                    waits.append(conn.command(b"UNSUBSCRIBE", sorted(self.channels)))
                if self.patterns:
                    waits.append(conn.command(b"PUNSUBSCRIBE", sorted(self.patterns)))
                await asyncio.wait_for(asyncio.gather(*waits), 1.0)
            await conn.close()


class Publisher(_Supervised[CommandConnection]):
    """A command connection that pipelines publishes and survives Redis restarts.

    Args:
        endpoint: The Redis server.
        name: The connection's name in logs and errors.
        on_error: Called with connection errors and refused commands.
        max_offline: How many publishes to keep while Redis is unreachable; older
            ones are dropped (and reported) beyond that.
        high_water: :meth:`wait_writable` blocks while more commands than this await
            their reply, so a fast producer cannot queue without bound.
    """

    def __init__(
        self,
        endpoint: RedisEndpoint,
        *,
        name: str = "siotools-pub",
        on_error: ErrorHandler | None = None,
        max_offline: int = 100_000,
        high_water: int = 20_000,
    ) -> None:
        super().__init__(endpoint, name, on_error)
        self._offline: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self.max_offline = max_offline
        self.high_water = high_water
        self.dropped = 0
        """Publishes dropped because the offline queue was full."""

    def _new_connection(self) -> CommandConnection:
        return CommandConnection(self.name, self.report)

    async def _begin(self, conn: CommandConnection) -> None:
        while self._offline:
            channel, payload = self._offline.popleft()
            conn.send_nowait(b"PUBLISH", channel, payload)

    def publish(self, channel: bytes, payload: bytes) -> None:
        """Publish without waiting for Redis; the command goes out with its batch."""
        conn = self._conn
        if conn is not None and conn.transport is not None:
            conn.send_nowait(b"PUBLISH", channel, payload)
            return
        if len(self._offline) >= self.max_offline:
            self._offline.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                self.report(
                    RedisUnavailableError(
                        f"Redis at {self.endpoint.url} is unreachable; "
                        f"{self.dropped} publishes dropped."
                    )
                )
        self._offline.append((channel, payload))

    @property
    def congested(self) -> bool:
        """Whether :meth:`wait_writable` would wait (checked without a coroutine)."""
        conn = self._conn
        return conn is not None and (conn.pending > self.high_water or conn.paused)

    async def wait_writable(self) -> None:
        """Return at once unless too many commands await their reply; then wait."""
        conn = self._conn
        if conn is None:
            return
        while conn.connected and conn.pending > self.high_water:
            conn.flush()
            await asyncio.sleep(0.001)
        await conn.drain()

    async def execute(self, *args: bytes | str | int | float, timeout: float | None = None) -> Any:
        """Run one command and return its reply, waiting for a reconnect if needed.

        Raises:
            RedisUnavailableError: Redis is unreachable or refused the command.
        """
        wait = self.endpoint.connect_timeout if timeout is None else timeout
        await self.wait_connected(wait)
        assert self._conn is not None
        return await self._conn.execute(*args)

    async def publish_wait(self, channel: bytes, payload: bytes) -> int:
        """Publish and return how many subscribers received the message."""
        result: int = await self.execute(b"PUBLISH", channel, payload)
        return result

    async def flush(self) -> None:
        """Wait until every command written so far was answered by Redis."""
        if self._conn is not None and self._conn.connected:
            with contextlib.suppress(RedisUnavailableError):
                await self._conn.execute(b"PING")

    async def numsub(self, channel: bytes) -> int:
        """``PUBSUB NUMSUB channel``: how many connections SUBSCRIBEd to it."""
        reply = await self.execute(b"PUBSUB", b"NUMSUB", channel)
        return int(reply[1])

    async def close(self) -> None:
        """Write what is queued and close the connection."""
        await self._stop_supervisor()
        conn, self._conn = self._conn, None
        self._up.clear()
        if conn is not None:
            if conn.connected:
                with contextlib.suppress(RedisUnavailableError, TimeoutError):
                    await asyncio.wait_for(conn.execute(b"PING"), 1.0)
            await conn.close()


def _consume(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()


async def _settle(fut: asyncio.Future[None] | None) -> None:
    """Wait for a confirmation; a connection lost meanwhile is the supervisor's business."""
    if fut is not None:
        with contextlib.suppress(RedisUnavailableError):
            await fut
