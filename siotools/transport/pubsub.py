"""Publishing and subscribing that survive Redis restarts.

A :class:`Subscriber` remembers every channel and pattern it was asked for and
restores all of them after a reconnect; a :class:`Publisher` pipelines commands and
keeps what is published while Redis is away in a bounded offline queue, as node-redis
does with its offline queue (``enable_offline_queue``).

Reliability policy (measured in ``bench/outage_loss.py``):

* **Reconnects** retry with a backoff capped at 0.4 s, so a connection is back at
  most about 0.4 s (plus the connect and the resubscription) after Redis is.
* **Broadcasts queued while Redis is away are delivered after resubscription.** A
  reconnected publisher first holds its queue (and what is published meanwhile, so
  order is kept) until the subscribers of the queued channels are back: it polls
  ``PUBSUB NUMSUB``/``NUMPAT`` until the count stops changing for ``hold_settle``
  seconds (longer than a subscriber's backoff), at most ``hold_max`` seconds. Beyond
  ``max_offline`` queued publishes the oldest are dropped and counted (``dropped``).
* **Requests are never queued past their deadline.** :meth:`Publisher.publish_request`
  carries one; a queued request whose deadline passed is dropped unsent (``expired``),
  so no node acts on a request its caller was already told had failed. Requests do not
  wait in the hold: they are answered by the nodes subscribed when they are published,
  which is what ``PUBSUB NUMSUB`` counted for them. A request Redis has not acknowledged
  by its deadline on a connection that looks open means a stalled link: the connection
  is reset (``stalls``), so the kernel does not deliver the request when the link comes
  back, and it is reconnected.
* Every loss and restore is reported as a :class:`LinkEvent` (``on_event``) with the
  gap's span, and counted (``losses``, ``reconnects``, ``downtime``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from siotools.exceptions import RedisUnavailableError, SubscriptionRefused
from siotools.transport.connection import (
    BatchHandler,
    CommandConnection,
    MessageHandler,
    RespConnection,
    SubscriberConnection,
    open_connection,
    refusal,
)
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.timers import wait_for

__all__ = ["ErrorHandler", "EventHandler", "LinkEvent", "Publisher", "Subscriber", "settle"]

log = logging.getLogger("siotools.transport")

ErrorHandler = Callable[[BaseException], None]


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """A connection to Redis was lost or restored.

    Attributes:
        kind: ``"lost"`` (the connection closed; reconnecting) or ``"restored"`` (it is
            back and, for a subscriber, every subscription is confirmed again).
        name: The connection's name.
        url: The server (no password).
        at: When it happened (``time.time()``).
        lost_at: When the loss was noticed (for ``"restored"``: the start of the gap).
        gap: For ``"restored"``: seconds from ``lost_at`` to ``at``, during which a
            subscriber heard nothing that was published.
        last_message_at: For a subscriber, when the last message before the loss
            arrived: messages published after it may be lost too (Redis drops a slow
            subscriber's output buffer when it disconnects it).
        reconnects: How many reconnects the connection made so far.
        error: What ended the connection, when known.
    """

    kind: Literal["lost", "restored"]
    name: str
    url: str
    at: float
    lost_at: float
    gap: float | None = None
    last_message_at: float | None = None
    reconnects: int = 0
    error: BaseException | None = None


EventHandler = Callable[[LinkEvent], None]

C = TypeVar("C", bound=RespConnection)

# Capped low so a connection is back within about 0.4 s of Redis (the reconnect worst
# case is this cap plus one connect); refused connects on a LAN cost next to nothing.
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 0.4


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
        on_event: EventHandler | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self._on_error = on_error
        self._on_reconnect = on_reconnect
        self._on_event = on_event
        self._conn: C | None = None
        self._closing = False
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self.reconnects = 0
        """How many times the connection was re-established after a loss."""
        self.losses = 0
        """How many times the connection was lost."""
        self.downtime = 0.0
        """Seconds spent without a connection after losses (gaps summed)."""
        self.last_event: LinkEvent | None = None
        """The latest loss or restore."""
        self.last_message_at: float | None = None
        """When the last message arrived (subscribers; ``time.time()``)."""
        self._lost_at: float | None = None

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

    def _event(self, event: LinkEvent) -> None:
        self.last_event = event
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # an event handler must never break the connection
                log.exception("event handler of %s failed", self.name)

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

    def _on_up(self, conn: C, first: bool) -> None:
        """Called once the connection is up (after :meth:`_begin`)."""

    async def _establish(self) -> None:
        if self._closing:
            raise RedisUnavailableError(f"{self.name} is closed.")
        conn = await open_connection(self.endpoint, self._new_connection)
        first = self._conn is None
        self._conn = conn
        try:
            await wait_for(self._begin(conn), self.endpoint.connect_timeout)
        except SubscriptionRefused:
            conn.abort()
            raise
        except (TimeoutError, RedisUnavailableError) as exc:
            conn.abort()
            raise RedisUnavailableError(
                f"Redis at {self.endpoint.url} did not {self._BEGIN}: {exc or 'timed out'}"
            ) from exc
        self._up.set()
        self._on_up(conn, first)
        if not first:
            now = time.time()
            lost_at = self._lost_at if self._lost_at is not None else now
            gap = max(0.0, now - lost_at)
            self.downtime += gap
            self._lost_at = None
            self._event(
                LinkEvent(
                    "restored",
                    self.name,
                    self.endpoint.url,
                    now,
                    lost_at,
                    gap=gap,
                    last_message_at=self.last_message_at,
                    reconnects=self.reconnects + 1,
                )
            )
            if self._on_reconnect is not None:
                self._on_reconnect()

    async def _wait_lost(self) -> None:
        assert self._conn is not None
        await asyncio.shield(self._conn.lost)

    def _on_lost(self) -> None:
        """Called when the connection was lost, before reconnecting."""

    async def _supervise(self) -> None:
        while not self._closing:
            await self._wait_lost()
            self._up.clear()
            if self._closing:
                return
            self._on_lost()
            self.losses += 1
            self._lost_at = time.time()
            cause = self._conn.lost.result() if self._conn is not None else None
            self._event(
                LinkEvent(
                    "lost",
                    self.name,
                    self.endpoint.url,
                    self._lost_at,
                    self._lost_at,
                    last_message_at=self.last_message_at,
                    reconnects=self.reconnects,
                    error=cause,
                )
            )
            self.report(
                RedisUnavailableError(
                    f"Lost the connection to Redis at {self.endpoint.url} ({self.name}); "
                    "reconnecting."
                )
            )
            delay = _BACKOFF_FIRST
            refused: str | None = None
            while not self._closing:
                await asyncio.sleep(delay)
                try:
                    await self._establish()
                except SubscriptionRefused as exc:
                    # The refused items were forgotten: the next attempt restores the rest.
                    if str(exc) != refused:
                        refused = str(exc)
                        self.report(exc)
                    delay = _BACKOFF_FIRST
                    continue
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
        if self._closing:
            raise RedisUnavailableError(f"{self.name} is closed; no command can be sent.")
        up = asyncio.ensure_future(self._up.wait())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait([up, closed], timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            up.cancel()
            closed.cancel()
        if self._up.is_set():
            return
        if self._closing:
            raise RedisUnavailableError(
                f"{self.name} was closed while waiting for Redis at {self.endpoint.url}."
            )
        raise RedisUnavailableError(
            f"Redis at {self.endpoint.url} is unreachable: no connection for "
            f"{timeout:g}s ({self.name}); is redis-server running and reachable?"
        )

    async def _stop_supervisor(self) -> None:
        self._closing = True
        self._closed.set()
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
        on_event: Called with a :class:`LinkEvent` when the connection is lost and when
            it is restored (subscriptions confirmed again), with the gap's span.

    A (P)SUBSCRIBE that Redis refuses (ACL channel rules, a missing password) raises
    :class:`~siotools.exceptions.SubscriptionRefused` from :meth:`subscribe` /
    :meth:`psubscribe` and from :func:`settle` of its future, naming the command and the
    fix; the refused items are forgotten so a reconnect restores the others.
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
        on_event: EventHandler | None = None,
    ) -> None:
        super().__init__(endpoint, name, on_error, on_reconnect, on_event)
        if (on_message is None) == (on_batch is None):
            raise ValueError("pass exactly one of on_message and on_batch")
        self._on_message = on_message
        self._on_batch = on_batch
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self._pending: dict[bytes, asyncio.Future[None]] = {}
        self.refused = 0
        """How many (P)SUBSCRIBE commands Redis refused."""

    def _dispatch(self, channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        assert self._on_message is not None
        self.last_message_at = time.time()
        try:
            self._on_message(channel, payload, pattern)
        except Exception as exc:  # a bad handler must not kill the connection
            log.exception("message handler of %s failed", self.name)
            self.report(exc)

    def _dispatch_batch(self, now: int, batch: list[list[bytes]]) -> None:
        assert self._on_batch is not None
        self.last_message_at = now / 1e9
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
        groups: list[tuple[bytes, list[bytes], set[bytes]]] = []
        if self.channels:
            groups.append((b"SUBSCRIBE", sorted(self.channels), self.channels))
        if self.patterns:
            groups.append((b"PSUBSCRIBE", sorted(self.patterns), self.patterns))
        results = await asyncio.gather(
            *(conn.command(verb, items) for verb, items, _ in groups), return_exceptions=True
        )
        refusals: list[SubscriptionRefused] = []
        for (verb, items, remembered), result in zip(groups, results, strict=True):
            if isinstance(result, SubscriptionRefused):
                found = await self._which_refused(conn, verb, items, result)
                if found is None:
                    continue
                # Forgotten, so the next attempt restores the others; said to the caller.
                self.refused += 1
                remembered.difference_update(found.items)
                refusals.append(found)
            elif isinstance(result, BaseException):
                raise result
        if refusals:
            raise refusals[0]

    async def _which_refused(
        self,
        conn: SubscriberConnection,
        verb: bytes,
        items: list[bytes],
        error: SubscriptionRefused,
    ) -> SubscriptionRefused | None:
        # Redis refuses a whole (P)SUBSCRIBE for one item it may not have: ask item by item
        # so that only those are forgotten (an ACL change must not silence the rest).
        if len(items) == 1:
            return error
        singles = await asyncio.gather(
            *(conn.command(verb, [item]) for item in items), return_exceptions=True
        )
        for result in singles:
            if isinstance(result, BaseException) and not isinstance(result, SubscriptionRefused):
                raise result
        bad = tuple(
            i for i, r in zip(items, singles, strict=True) if isinstance(r, SubscriptionRefused)
        )
        if not bad:
            return None
        return refusal(conn.where, verb, bad, error.reply)

    def _watch(self, fut: asyncio.Future[None], patterns: bool) -> asyncio.Future[None]:
        # A refused (P)SUBSCRIBE is forgotten: remembering it would make every reconnect
        # fail, and the refusal itself is raised to whoever awaits the confirmation.
        def done(f: asyncio.Future[None]) -> None:
            if f.cancelled():
                return
            exc = f.exception()
            if isinstance(exc, SubscriptionRefused):
                self.refused += 1
                remembered = self.patterns if patterns else self.channels
                remembered.difference_update(exc.items)

        fut.add_done_callback(done)
        return fut

    def _send(self, verb: bytes, items: list[bytes]) -> asyncio.Future[None] | None:
        conn = self._conn
        if not items or conn is None or not conn.connected:
            return None  # applied from the remembered sets on the next connect
        fut = conn.command(verb, items)
        if verb in (b"SUBSCRIBE", b"PSUBSCRIBE"):
            self._watch(fut, verb == b"PSUBSCRIBE")
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
            await settle(wait)

    async def subscribe(self, channels: Iterable[bytes]) -> None:
        """SUBSCRIBE to the channels not yet subscribed; returns once Redis confirmed them
        (also those another caller's SUBSCRIBE is still waiting for).

        Raises:
            SubscriptionRefused: Redis refused the SUBSCRIBE (ACL, password).
        """
        channels = list(channels)
        await self._settle_all(self.subscribe_nowait(channels), channels)

    async def unsubscribe(self, channels: Iterable[bytes]) -> None:
        """UNSUBSCRIBE from the given channels that are subscribed."""
        await settle(self.unsubscribe_nowait(channels))

    async def psubscribe(self, patterns: Iterable[bytes]) -> None:
        """PSUBSCRIBE to the patterns not yet subscribed; returns once Redis confirmed them.

        Raises:
            SubscriptionRefused: Redis refused the PSUBSCRIBE (ACL, password).
        """
        patterns = list(patterns)
        fut = self.psubscribe_nowait(patterns)
        await self._settle_all(fut, [b"\x00" + p for p in patterns])

    async def punsubscribe(self, patterns: Iterable[bytes]) -> None:
        """PUNSUBSCRIBE from the given patterns that are subscribed."""
        await settle(self.punsubscribe_nowait(patterns))

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
                await wait_for(asyncio.gather(*waits), 1.0)
            await conn.close()


class _Queued:
    """A publish waiting for Redis: its deadline (loop time) and who waits for its reply."""

    __slots__ = ("channel", "deadline", "future", "packed", "payload")

    def __init__(
        self,
        channel: bytes,
        payload: bytes,
        deadline: float | None,
        future: asyncio.Future[int] | None,
        packed: bytes | None = None,
    ) -> None:
        self.channel = channel
        self.payload = payload
        self.deadline = deadline
        self.future = future
        self.packed = packed


class Publisher(_Supervised[CommandConnection]):
    """A command connection that pipelines publishes and survives Redis restarts.

    See the module's reliability policy: broadcasts published while Redis is away are
    queued (at most ``max_offline``) and delivered once the subscribers are back;
    requests carry a deadline and are dropped unsent when it passes.

    Args:
        endpoint: The Redis server.
        name: The connection's name in logs and errors.
        on_error: Called with connection errors and refused commands.
        on_event: Called with a :class:`LinkEvent` on each loss and restore.
        max_offline: How many publishes to keep while Redis is unreachable; older
            ones are dropped (and reported) beyond that.
        high_water: :meth:`wait_writable` blocks while more commands than this await
            their reply, so a fast producer cannot queue without bound.
        hold_settle: After a reconnect, the queue is sent once the subscriber count of
            the queued channels stayed the same this long (seconds)...
        hold_max: ...or this long after the reconnect at most; 0 sends it at once.
    """

    def __init__(
        self,
        endpoint: RedisEndpoint,
        *,
        name: str = "siotools-pub",
        on_error: ErrorHandler | None = None,
        on_event: EventHandler | None = None,
        max_offline: int = 100_000,
        high_water: int = 20_000,
        hold_settle: float = 0.5,
        hold_max: float = 2.0,
    ) -> None:
        super().__init__(endpoint, name, on_error, on_event=on_event)
        self._offline: collections.deque[_Queued] = collections.deque()
        self.max_offline = max_offline
        self.high_water = high_water
        self.hold_settle = hold_settle
        self.hold_max = hold_max
        self._holding = False
        self._hold_task: asyncio.Task[None] | None = None
        self.dropped = 0
        """Publishes dropped because the offline queue was full (or the publisher closed)."""
        self.expired = 0
        """Queued requests dropped unsent because their deadline passed."""
        self.replayed = 0
        """Queued publishes sent after a reconnect."""
        self.resent = 0
        """Publishes in flight when a connection was lost, queued to be sent again."""
        self.stalls = 0
        """Connections reset because a request went unacknowledged past its deadline."""

    def _new_connection(self) -> CommandConnection:
        return CommandConnection(self.name, self.report)

    @property
    def queued(self) -> int:
        """Publishes waiting for Redis (offline, or held until the subscribers are back)."""
        return len(self._offline)

    def _on_lost(self) -> None:
        self._holding = True
        conn = self._conn
        if conn is not None and conn.unacknowledged:
            # Publishes Redis never answered may not have run (Redis died, the link broke):
            # they go first when it is back. One that did run and lost only its reply is
            # sent twice; a broadcast delivered twice beats one lost.
            items = [_Queued(b"", b"", None, None, packed) for packed in conn.unacknowledged]
            conn.unacknowledged = []
            self.resent += len(items)
            self._offline.extendleft(reversed(items))
            while len(self._offline) > self.max_offline:
                self._offline.popleft()  # the oldest go first, as in _enqueue
                self.dropped += 1

    def _on_up(self, conn: CommandConnection, first: bool) -> None:
        if first and not self._offline:
            self._holding = False
            return
        self._holding = True
        if any(item.deadline is not None for item in self._offline):
            # Requests go at once (see publish_request); broadcasts stay held.
            requests = [item for item in self._offline if item.deadline is not None]
            kept = [item for item in self._offline if item.deadline is None]
            self._offline = collections.deque(requests)
            self._flush_offline(conn)
            self._offline = collections.deque(kept)
        if self._hold_task is not None:
            self._hold_task.cancel()
        self._hold_task = asyncio.get_running_loop().create_task(
            self._hold_then_flush(conn, first), name=f"{self.name}-replay"
        )

    async def _hold_then_flush(self, conn: CommandConnection, first: bool) -> None:
        try:
            if not first and self.hold_max > 0:
                await self._wait_for_subscribers(conn)
        finally:
            if conn.connected and self._conn is conn:
                self._flush_offline(conn)
                self._holding = False

    async def _wait_for_subscribers(self, conn: CommandConnection) -> None:
        # Redis forgot every subscription when it restarted; the subscribers (ours and
        # the other nodes') resubscribe within their backoff. Publishing the queue before
        # they did is what lost whole outages' worth of broadcasts.
        loop = asyncio.get_running_loop()
        start = loop.time()
        last: int | None = None
        stable_since = start
        while conn.connected and loop.time() - start < self.hold_max:
            channels = list(dict.fromkeys(q.channel for q in self._offline if q.channel))[:64]
            try:
                total = 0
                if channels:
                    reply = await wait_for(
                        conn.execute(b"PUBSUB", b"NUMSUB", *channels), self.hold_max
                    )
                    total += sum(int(n) for n in reply[1::2])
                numpat = await wait_for(conn.execute(b"PUBSUB", b"NUMPAT"), self.hold_max)
                total += int(numpat)
            except (RedisUnavailableError, TimeoutError):
                return  # not allowed (ACL) or not answering: send now rather than never
            now = loop.time()
            if total != last:
                last, stable_since = total, now
            elif total > 0 and now - stable_since >= self.hold_settle:
                return
            await asyncio.sleep(0.05)

    def _flush_offline(self, conn: CommandConnection) -> None:
        now = asyncio.get_running_loop().time()
        while self._offline:
            item = self._offline.popleft()
            if item.deadline is not None and now > item.deadline:
                # Never send a request past its deadline: its caller was already told it
                # failed, and a node acting on it now would surprise everyone.
                self.expired += 1
                if item.future is not None and not item.future.done():
                    item.future.set_exception(self._undelivered())
                continue
            self.replayed += 1
            if item.packed is not None:
                conn.send_packed_nowait(item.packed)
            elif item.future is None:
                conn.send_nowait(b"PUBLISH", item.channel, item.payload)
            else:
                assert item.deadline is not None
                self._send_request(conn, item.channel, item.payload, item.deadline, item.future)

    def _undelivered(self) -> RedisUnavailableError:
        return RedisUnavailableError(
            f"Redis at {self.endpoint.url} was unreachable until the request's deadline; "
            "it was dropped unsent."
        )

    def _enqueue(self, item: _Queued) -> None:
        if len(self._offline) >= self.max_offline:
            old = self._offline.popleft()
            self.dropped += 1
            if old.future is not None and not old.future.done():
                old.future.set_exception(self._undelivered())
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                self.report(
                    RedisUnavailableError(
                        f"Redis at {self.endpoint.url} is unreachable; "
                        f"{self.dropped} publishes dropped (offline queue full)."
                    )
                )
        self._offline.append(item)

    def publish(self, channel: bytes, payload: bytes, *, deadline: float | None = None) -> None:
        """Publish without waiting for Redis; the command goes out with its batch.

        Args:
            channel: The channel.
            payload: The message.
            deadline: ``loop.time()`` after which it must not be sent any more (requests);
                ``None`` keeps it queued until Redis is back (broadcasts).
        """
        conn = self._conn
        if not self._holding and conn is not None and conn.transport is not None:
            conn.send_nowait(b"PUBLISH", channel, payload)
            return
        self._enqueue(_Queued(channel, payload, deadline, None))

    def publish_request(
        self, channel: bytes, payload: bytes, *, deadline: float
    ) -> asyncio.Future[int]:
        """Publish a request that must reach Redis before ``deadline`` (``loop.time()``).

        Returns:
            A future of Redis's ``PUBLISH`` reply (how many subscribers got it); it fails
            with :class:`~siotools.exceptions.RedisUnavailableError` when the request was
            dropped unsent at its deadline, or the connection was lost before the reply.
        """
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        conn = self._conn
        # Requests skip the hold that broadcasts wait in: the nodes that answer are those
        # subscribed now, which is what NUMSUB counted for this request.
        if conn is not None and conn.transport is not None:
            self._send_request(conn, channel, payload, deadline, fut)
        else:
            self._enqueue(_Queued(channel, payload, deadline, fut))
        return fut

    def _send_request(
        self,
        conn: CommandConnection,
        channel: bytes,
        payload: bytes,
        deadline: float,
        fut: asyncio.Future[int],
    ) -> None:
        _chain(conn.send(b"PUBLISH", channel, payload), fut)
        loop = asyncio.get_running_loop()
        timer = loop.call_at(deadline, self._check_acknowledged, conn, fut)
        fut.add_done_callback(lambda _f: timer.cancel())

    def _check_acknowledged(self, conn: CommandConnection, fut: asyncio.Future[int]) -> None:
        # Redis did not answer a request's PUBLISH by its deadline while the connection
        # looks open: the link is stalled. Reset it, so the kernel does not deliver the
        # request when the link comes back, after its caller was told it failed; the
        # supervisor reconnects (and sends the unanswered broadcasts again).
        if fut.done() or not conn.connected:
            return
        self.report(
            RedisUnavailableError(
                f"Redis at {self.endpoint.url} did not acknowledge a request by its "
                f"deadline ({self.name}); the link seems stalled, reconnecting."
            )
        )
        self.stalls += 1
        conn.abort(reset=True)

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

        Args:
            args: The command and its arguments.
            timeout: Seconds for the whole call (waiting for a connection and for the
                reply); the endpoint's connect timeout when ``None``.

        Raises:
            RedisUnavailableError: Redis is unreachable, did not answer in time, refused
                the command, or the publisher was closed meanwhile.
        """
        wait = self.endpoint.connect_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self.wait_connected(wait)
        conn = self._conn
        if conn is None:
            raise RedisUnavailableError(f"{self.name} is closed; no command can be sent.")
        left = max(0.0, wait - (loop.time() - start))
        try:
            return await wait_for(conn.execute(*args), left)
        except TimeoutError:
            what = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
            raise RedisUnavailableError(
                f"Redis at {self.endpoint.url} did not answer {what} within {wait:g}s "
                "(the server or the network is stalled)."
            ) from None

    async def publish_wait(
        self, channel: bytes, payload: bytes, *, timeout: float | None = None
    ) -> int:
        """Publish and return how many subscribers received the message.

        Args:
            channel: The channel.
            payload: The message.
            timeout: Seconds to wait for Redis (the connect timeout when None).
        """
        result: int = await self.execute(b"PUBLISH", channel, payload, timeout=timeout)
        return result

    async def flush(self) -> None:
        """Wait until every command written so far was answered by Redis."""
        if self._conn is not None and self._conn.connected:
            with contextlib.suppress(RedisUnavailableError, TimeoutError):
                await wait_for(self._conn.execute(b"PING"), self.endpoint.connect_timeout)

    async def numsub(self, channel: bytes, *, timeout: float | None = None) -> int:
        """``PUBSUB NUMSUB channel``: how many connections SUBSCRIBEd to it.

        Args:
            channel: The channel.
            timeout: Seconds for the whole call (see :meth:`execute`).
        """
        reply = await self.execute(b"PUBSUB", b"NUMSUB", channel, timeout=timeout)
        return int(reply[1])

    async def close(self) -> None:
        """Write what can be written and close; what is still queued is dropped (counted)."""
        await self._stop_supervisor()
        if self._hold_task is not None:
            self._hold_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._hold_task
            self._hold_task = None
        conn, self._conn = self._conn, None
        self._up.clear()
        while self._offline:
            item = self._offline.popleft()
            self.dropped += 1
            if item.future is not None and not item.future.done():
                item.future.set_exception(
                    RedisUnavailableError(f"{self.name} was closed before the request was sent.")
                )
        if conn is not None:
            if conn.connected:
                with contextlib.suppress(RedisUnavailableError, TimeoutError):
                    await wait_for(conn.execute(b"PING"), 1.0)
            await conn.close()


def _chain(source: asyncio.Future[Any], target: asyncio.Future[int]) -> None:
    def done(f: asyncio.Future[Any]) -> None:
        if target.done():
            return
        if f.cancelled():
            target.cancel()
        elif f.exception() is not None:
            target.set_exception(f.exception())  # type: ignore[arg-type]
        else:
            target.set_result(int(f.result()))

    source.add_done_callback(done)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


async def settle(fut: asyncio.Future[None] | None) -> None:
    """Wait for a (P)SUBSCRIBE confirmation from :class:`Subscriber`.

    A connection lost meanwhile is the supervisor's business (it resubscribes), so that
    is not an error here; a refusal is.

    Raises:
        SubscriptionRefused: Redis refused the command (ACL channel rules, password).
    """
    if fut is not None:
        try:
            await fut
        except SubscriptionRefused:
            raise
        except RedisUnavailableError:
            pass
