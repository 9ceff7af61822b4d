"""Publishing and subscribing on a Redis Cluster, restored after failovers and slot moves.

:class:`ClusterSubscriber` and :class:`ClusterPublisher` have the interface of
:class:`~siotools.transport.pubsub.Subscriber` and
:class:`~siotools.transport.pubsub.Publisher` (same callbacks, ``*_nowait`` methods,
``numsub``), plus sharded pub/sub: ``ssubscribe``/``sunsubscribe``/``spublish`` and
``shardnumsub``. A dialect can therefore run on either.

Where things go, as node-redis' cluster client does for @socket.io/redis-adapter:

* ``PUBLISH``/``SUBSCRIBE``/``PSUBSCRIBE``: any node (Redis Cluster forwards classic
  pub/sub to every node). The subscriber uses one master, so the counts Node nodes take
  (``NUMSUB`` summed over the masters) include it; when that node dies it moves to another.
* ``SPUBLISH``/``SSUBSCRIBE``: the master of the channel's hash slot, one slot per
  ``SSUBSCRIBE`` command (channels of one command must share a slot).
* ``MOVED`` is followed (and remembered), ``ASK`` is followed once with ``ASKING``.
* After a master is lost, its sharded subscriptions and the publishes meant for it wait
  until the cluster names the slot's new master (its promoted replica), then go there.
  When a slot migrates, Redis tells the old master's subscribers with an unsolicited
  ``sunsubscribe``; the subscriber re-subscribes on the new owner. Both cases are silent
  message loss in clients that do not handle them.
* ``NUMSUB``/``SHARDNUMSUB`` are summed over the masters and the replicas, as
  @socket.io/redis-adapter's ``PUBSUB`` helper does for an ioredis cluster (``lib/util.ts``;
  node-redis asks the masters only, which misses a node subscribed on a replica).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import hiredis

from siotools.exceptions import RedisUnavailableError
from siotools.transport.cluster import (
    ClusterRedirect,
    ClusterTopology,
    NodeCommandConnection,
    channel_slot,
    parse_redirect,
)
from siotools.transport.connection import (
    BatchHandler,
    MessageHandler,
    RespConnection,
    open_connection,
)
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import ErrorHandler, EventHandler, LinkEvent, Subscriber
from siotools.transport.timers import wait_for

__all__ = ["ClusterPublisher", "ClusterSubscriber", "ShardSubscriberConnection"]

log = logging.getLogger("siotools.transport")

_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 0.25  # a failover takes about cluster-node-timeout; poll it closely
_PROBE_AFTER = 0.5  # seconds before a lost master is tried again
_MAX_REDIRECTS = 5
_REPLICA_RETRY_AFTER = 10.0
"""Seconds a replica that did not answer a count is left out of the next ones."""


def _by_slot(channels: Iterable[bytes]) -> list[list[bytes]]:
    groups: dict[int, list[bytes]] = collections.defaultdict(list)
    for ch in sorted(channels):
        groups[channel_slot(ch)].append(ch)
    return list(groups.values())


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


class ShardSubscriberConnection(RespConnection):
    """A connection in sharded subscriber mode to one master.

    Messages (``smessage``) go to ``on_message(channel, payload, None)`` or, per socket
    read, to ``on_batch(time_ns, [[b"smessage", channel, payload], ...])`` (three items,
    like a ``message`` reply). ``ssubscribe``/``sunsubscribe`` confirmations resolve the
    command's future; a ``sunsubscribe`` nobody asked for (the slot moved away) goes to
    ``on_dropped``.

    Args:
        name: The connection's name in errors.
        on_message: Per-message handler.
        on_batch: Per-read handler (instead of ``on_message``).
        on_confirmed: Called with each channel Redis confirmed as subscribed.
        on_dropped: Called with each channel Redis unsubscribed by itself.
    """

    def __init__(
        self,
        name: str,
        *,
        on_message: MessageHandler | None,
        on_batch: BatchHandler | None,
        on_confirmed: Callable[[bytes], None],
        on_dropped: Callable[[bytes], None],
    ) -> None:
        super().__init__(name)
        self.on_message = on_message
        self.on_batch = on_batch
        self.on_confirmed = on_confirmed
        self.on_dropped = on_dropped
        # [verb, channels not yet confirmed, future]
        self._confirm: collections.deque[list[Any]] = collections.deque()
        self._shard_reader = hiredis.Reader()  # this class parses its own stream

    def data_received(self, data: bytes) -> None:
        reader = self._shard_reader
        reader.feed(data)
        on_batch = self.on_batch
        if on_batch is None:
            try:
                while True:
                    reply = reader.gets()
                    if reply is False:
                        return
                    self.on_reply(reply)
            except hiredis.ProtocolError:
                self.abort()  # the stream is out of sync; nothing after this can be trusted
            return
        now = time.time_ns()
        batch: list[list[bytes]] = []
        try:
            while True:
                reply = reader.gets()
                if reply is False:
                    break
                if type(reply) is list and reply[0] == b"smessage":
                    batch.append(reply)
                    continue
                if batch:  # keep the order of messages and confirmations
                    on_batch(now, batch)
                    batch = []
                self.on_reply(reply)
        except hiredis.ProtocolError:
            self.abort()
        if batch:
            on_batch(now, batch)

    def on_reply(self, reply: Any) -> None:
        if type(reply) is list:
            kind = reply[0]
            if kind == b"smessage":
                if self.on_batch is not None:
                    self.on_batch(time.time_ns(), [reply])
                elif self.on_message is not None:
                    self.on_message(reply[1], reply[2], None)
                return
            channel = reply[1] if len(reply) > 1 else None
            head = self._confirm[0] if self._confirm else None
            if kind == b"ssubscribe":
                if head is not None and head[0] == b"SSUBSCRIBE":
                    self._tick(head, channel)
                if channel is not None:
                    self.on_confirmed(channel)
            elif kind == b"sunsubscribe":
                if head is not None and head[0] == b"SUNSUBSCRIBE" and channel in head[1]:
                    self._tick(head, channel)
                elif channel is not None:
                    # Redis removed the subscription itself: the slot now lives elsewhere
                    # (valkey/redis cluster.c removeChannelsInSlot).
                    self.on_dropped(channel)
            elif kind == b"pong" and head is not None and head[0] == b"PING":
                self._tick(head, None)
        elif isinstance(reply, hiredis.ReplyError) and self._confirm:
            _, _, fut = self._confirm.popleft()
            if not fut.done():
                fut.set_exception(
                    parse_redirect(str(reply)) or RedisUnavailableError(f"Redis refused: {reply}")
                )

    def _tick(self, head: list[Any], channel: bytes | None) -> None:
        head[1].discard(channel)
        if not head[1]:
            self._confirm.popleft()
            if not head[2].done():
                head[2].set_result(None)

    def on_lost(self, exc: BaseException | None) -> None:
        while self._confirm:
            fut = self._confirm.popleft()[2]
            if not fut.done():
                fut.set_exception(
                    RedisUnavailableError(f"The connection to Redis was lost ({self.name}).")
                )

    def command(self, verb: bytes, channels: list[bytes]) -> asyncio.Future[None]:
        """Send ``SSUBSCRIBE``/``SUNSUBSCRIBE`` (channels of one slot) or ``PING``."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        if not self.connected:
            fut.set_exception(RedisUnavailableError(f"Not connected to Redis ({self.name})."))
            return fut
        self._confirm.append([verb, set(channels) if channels else {None}, fut])
        self.write_command(verb, *channels)
        return fut


class _ShardLink:
    """The sharded subscriber connection to one master and what it should carry."""

    __slots__ = ("addr", "assigned", "conn", "subscribed")

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.conn: ShardSubscriberConnection | None = None
        self.assigned: set[bytes] = set()
        self.subscribed: set[bytes] = set()

    @property
    def connected(self) -> bool:
        return self.conn is not None and self.conn.connected


class ClusterSubscriber:
    """Subscriptions on a Redis Cluster that follow failovers and slot migrations.

    Args:
        seed: One node of the cluster (or a topology shared with a publisher).
        on_message: Called with ``(channel, payload, pattern)`` for each message.
        on_batch: Instead of ``on_message``: called per socket read (sharded messages
            arrive as ``[b"smessage", channel, payload]``).
        name: The connections' name in logs and errors.
        on_error: Called with connection errors (a node lost, a slot moved).
        on_reconnect: Called after the subscriptions were restored.
        on_event: Called with a :class:`~siotools.transport.pubsub.LinkEvent` when a
            connection that carries subscriptions is lost (``"lost"``: the first one of
            an outage; others lost before it ends add no event) and once every
            subscription is confirmed again (``"restored"``, with the gap's span), as the
            single-Redis :class:`~siotools.transport.pubsub.Subscriber` reports its one
            connection. A connection with nothing subscribed on it (the classic one of a
            sharded-only subscriber) is restored without a word.
    """

    def __init__(
        self,
        seed: RedisEndpoint | ClusterTopology,
        on_message: MessageHandler | None = None,
        *,
        on_batch: BatchHandler | None = None,
        name: str = "siotools-sub",
        on_error: ErrorHandler | None = None,
        on_reconnect: Callable[[], None] | None = None,
        on_event: EventHandler | None = None,
    ) -> None:
        if (on_message is None) == (on_batch is None):
            raise ValueError("pass exactly one of on_message and on_batch")
        self.topology = seed if isinstance(seed, ClusterTopology) else ClusterTopology(seed)
        self.endpoint = self.topology.seed
        self.name = name
        self._on_message = on_message
        self._on_batch = on_batch
        self._on_error = on_error
        self._on_reconnect = on_reconnect
        self._on_event = on_event
        # Classic pub/sub works on any node: the single-node Subscriber, re-pointed at
        # another node when its own is lost.
        self._classic = Subscriber(
            self.endpoint,
            on_message,
            on_batch=on_batch,
            name=name,
            on_error=self._classic_error,
            on_reconnect=on_reconnect,
            on_event=self._classic_event,
        )
        self.shard_channels: set[bytes] = set()
        """The sharded channels asked for (restored on their slot's master)."""
        self._links: dict[str, _ShardLink] = {}
        self._where: dict[bytes, str] = {}
        self._waiters: dict[bytes, asyncio.Future[None]] = {}
        self._dirty = asyncio.Event()
        self._stale = False
        self._prefer: list[str] = []
        self._down: dict[str, float] = {}  # lost masters -> when to try them again
        self._classic_tried: set[str] = set()
        self._redirected = False
        self._recovering = False
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self.reconnects = 0
        """How many times sharded subscriptions were restored after a loss or a move."""
        self.moves = 0
        """Sharded channels re-subscribed elsewhere (failover or slot migration)."""
        self.losses = 0
        """How many outages began: a connection carrying subscriptions was lost."""
        self.downtime = 0.0
        """Seconds from each outage's first loss until every subscription was back, summed."""
        self.last_event: LinkEvent | None = None
        """The latest loss or restore."""
        self._last_shard_message: float | None = None
        self._lost_at: float | None = None

    # ------------------------------------------------------------------ state

    @property
    def channels(self) -> set[bytes]:
        """The classic channels subscribed (restored after a reconnect)."""
        return self._classic.channels

    @property
    def patterns(self) -> set[bytes]:
        """The patterns subscribed (restored after a reconnect)."""
        return self._classic.patterns

    @property
    def connected(self) -> bool:
        """Whether the classic connection and every sharded link are up."""
        return self._classic.connected and all(
            link.connected for link in self._links.values() if link.assigned
        )

    @property
    def last_message_at(self) -> float | None:
        """When the last message arrived, classic or sharded (``time.time()``)."""
        classic, shard = self._classic.last_message_at, self._last_shard_message
        if classic is None or shard is None:
            return shard if classic is None else classic
        return max(classic, shard)

    @property
    def classic_endpoint(self) -> RedisEndpoint:
        """The node the classic subscriptions are on right now."""
        return self._classic.endpoint

    def shard_node(self, channel: bytes) -> str | None:
        """``host:port`` of the master a sharded channel is subscribed on (None if not yet)."""
        addr = self._where.get(channel)
        link = self._links.get(addr) if addr else None
        return addr if link is not None and channel in link.subscribed else None

    def report(self, exc: BaseException) -> None:
        """Pass an error to the owner's error handler (or log it when there is none)."""
        if self._on_error is not None:
            try:
                self._on_error(exc)
            except Exception:  # an error handler must never break the subscriber
                log.exception("error handler of %s failed", self.name)
        else:
            log.warning("%s: %s", self.name, exc)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Discover the cluster and connect; the first failure is raised.

        Raises:
            RedisUnavailableError: No node of the cluster can be reached now.
            ConfigurationError: The seed is not a Redis Cluster node.
        """
        await self.topology.refresh()
        # The classic subscriptions go on the first master that answers (one may be down
        # while the cluster fails over).
        last: RedisUnavailableError | None = None
        for addr in sorted(self.topology.masters) or [self.topology.candidates()[0]]:
            self._classic.endpoint = self.topology.endpoint(addr)
            try:
                await self._classic.start()
            except RedisUnavailableError as exc:
                last = exc
                continue
            break
        else:
            assert last is not None
            raise last
        self._tasks = [
            asyncio.create_task(self._maintain(), name=f"{self.name}-shards"),
            asyncio.create_task(self._watch_classic(), name=f"{self.name}-classic-watch"),
        ]
        if self.shard_channels:
            self._dirty.set()

    async def wait_connected(self, timeout: float) -> None:
        """Wait until every connection is up.

        Raises:
            RedisUnavailableError: They are not up within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while not self.connected:
            if time.monotonic() > deadline:
                raise RedisUnavailableError(
                    f"The Redis Cluster at {self.endpoint.url} is unreachable ({self.name})."
                )
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        """Unsubscribe from everything and close every connection."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        waits = []
        for link in self._links.values():
            conn = link.conn
            if conn is not None and conn.connected:
                for group in _by_slot(link.subscribed):
                    waits.append(conn.command(b"SUNSUBSCRIBE", group))
        with contextlib.suppress(RedisUnavailableError, TimeoutError):
            await wait_for(asyncio.gather(*waits), 1.0)
        for link in self._links.values():
            if link.conn is not None:
                await link.conn.close()
        self._links.clear()
        for fut in self._waiters.values():
            fut.cancel()
        self._waiters.clear()
        await self._classic.close()

    # ------------------------------------------------------------------ link events

    def _event(self, event: LinkEvent) -> None:
        self.last_event = event
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # an event handler must never break the subscriber
                log.exception("event handler of %s failed", self.name)

    def _link_lost(self, url: str, error: BaseException | None) -> None:
        """A connection with subscriptions on it was lost: an outage begins (if none is
        going on)."""
        if self._closing or self._lost_at is not None:
            return
        self.losses += 1
        self._lost_at = now = time.time()
        last = self.last_message_at
        self._event(
            LinkEvent(
                "lost", self.name, url, now, now, last_message_at=last,
                reconnects=self.reconnects, error=error,
            )
        )  # fmt: skip

    def _whole(self) -> bool:
        """Whether every subscription is confirmed on a connection that is up."""
        classic = self._classic
        if (classic.channels or classic.patterns) and not classic.connected:
            return False
        for ch in self.shard_channels:
            addr = self._where.get(ch)
            link = self._links.get(addr) if addr is not None else None
            if link is None or not link.connected or ch not in link.subscribed:
                return False
        return True

    def _maybe_restored(self) -> None:
        """End the outage if every subscription is back."""
        lost_at = self._lost_at
        if lost_at is None or self._closing or not self._whole():
            return
        now = time.time()
        gap = max(0.0, now - lost_at)
        self.downtime += gap
        self._lost_at = None
        self._event(
            LinkEvent(
                "restored", self.name, self.endpoint.url, now, lost_at, gap=gap,
                last_message_at=self.last_message_at, reconnects=self.reconnects,
            )
        )  # fmt: skip

    def _classic_event(self, event: LinkEvent) -> None:
        # The classic connection counts only while it carries subscriptions (a sharded
        # adapter subscribes nothing on it); its restore ends an outage once the sharded
        # subscriptions are back too.
        if event.kind == "lost":
            if self._classic.channels or self._classic.patterns:
                self._link_lost(event.url, event.error)
        else:
            self._maybe_restored()

    # ------------------------------------------------------------------ classic

    def _classic_error(self, exc: BaseException) -> None:
        self.report(exc)
        if not self._closing and not self._classic.connected:
            self._repoint_classic()

    def _repoint_classic(self) -> None:
        # Any node hears every classic message; go to another master (Node nodes count
        # request-channel subscribers with NUMSUB over the masters, so a subscriber on a
        # replica would not be waited for), a replica only when no master is left.
        ep = self._classic.endpoint
        current = f"{ep.host}:{ep.port}"
        self._classic_tried.add(current)
        masters = list(self.topology.masters)
        replicas = [r for reps in self.topology.replicas.values() for r in reps]
        order = [a for a in (*masters, *replicas) if a not in self._classic_tried]
        if not order:  # every node was tried once: start over (one may be back)
            self._classic_tried = {current}
            order = [a for a in (*masters, *replicas) if a != current] or [current]
        self._classic.endpoint = self.topology.endpoint(order[0])
        self._stale = True
        self._dirty.set()

    async def _watch_classic(self) -> None:
        while not self._closing:
            await asyncio.sleep(0.5)
            if not self._classic.connected:
                self._repoint_classic()
            elif self._classic_tried:
                self._classic_tried = set()

    def subscribe_nowait(self, channels: Iterable[bytes]) -> asyncio.Future[None] | None:
        """SUBSCRIBE without waiting; returns the confirmation future (None if nothing sent)."""
        return self._classic.subscribe_nowait(channels)

    def unsubscribe_nowait(self, channels: Iterable[bytes]) -> asyncio.Future[None] | None:
        """UNSUBSCRIBE without waiting."""
        return self._classic.unsubscribe_nowait(channels)

    def psubscribe_nowait(self, patterns: Iterable[bytes]) -> asyncio.Future[None] | None:
        """PSUBSCRIBE without waiting; returns the confirmation future (None if nothing sent)."""
        return self._classic.psubscribe_nowait(patterns)

    def punsubscribe_nowait(self, patterns: Iterable[bytes]) -> asyncio.Future[None] | None:
        """PUNSUBSCRIBE without waiting."""
        return self._classic.punsubscribe_nowait(patterns)

    async def subscribe(self, channels: Iterable[bytes]) -> None:
        """SUBSCRIBE (on one node: classic pub/sub reaches every node); waits for Redis."""
        await self._classic.subscribe(channels)

    async def unsubscribe(self, channels: Iterable[bytes]) -> None:
        """UNSUBSCRIBE from the given channels that are subscribed."""
        await self._classic.unsubscribe(channels)

    async def psubscribe(self, patterns: Iterable[bytes]) -> None:
        """PSUBSCRIBE; waits for Redis."""
        await self._classic.psubscribe(patterns)

    async def punsubscribe(self, patterns: Iterable[bytes]) -> None:
        """PUNSUBSCRIBE from the given patterns that are subscribed."""
        await self._classic.punsubscribe(patterns)

    # ------------------------------------------------------------------ sharded

    def ssubscribe_nowait(self, channels: Iterable[bytes]) -> asyncio.Future[Any] | None:
        """SSUBSCRIBE on each channel's master, one command per slot, without waiting.

        Returns:
            A future resolved when Redis confirmed every new channel (None if none is new).
        """
        new = [c for c in channels if c not in self.shard_channels]
        if not new:
            return None
        loop = asyncio.get_running_loop()
        waits = []
        for ch in new:
            self.shard_channels.add(ch)
            fut = self._waiters.get(ch)
            if fut is None or fut.done():
                fut = loop.create_future()
                self._waiters[ch] = fut
            waits.append(fut)
        fast: dict[str, list[bytes]] = collections.defaultdict(list)
        slow = False
        for ch in new:
            owner = self.topology.owner_of(ch)
            if owner is None:
                self._stale = slow = True
                continue
            link = self._link(owner)
            link.assigned.add(ch)
            self._where[ch] = owner
            if link.connected:
                fast[owner].append(ch)
            else:
                slow = True  # the maintenance task connects and subscribes
        for owner, chans in fast.items():
            conn = self._links[owner].conn
            assert conn is not None
            for group in _by_slot(chans):
                conn.command(b"SSUBSCRIBE", group).add_done_callback(self._on_command_done)
        if slow:
            self._dirty.set()
        return asyncio.gather(*waits)

    def sunsubscribe_nowait(self, channels: Iterable[bytes]) -> asyncio.Future[Any] | None:
        """SUNSUBSCRIBE the given sharded channels that are subscribed, without waiting."""
        gone = [c for c in channels if c in self.shard_channels]
        sent: list[asyncio.Future[None]] = []
        per_link: dict[str, list[bytes]] = collections.defaultdict(list)
        for ch in gone:
            self.shard_channels.discard(ch)
            fut = self._waiters.pop(ch, None)
            if fut is not None and not fut.done():
                fut.cancel()
            addr = self._where.pop(ch, None)
            if addr is not None and addr in self._links:
                self._links[addr].assigned.discard(ch)
                per_link[addr].append(ch)
        for addr, chans in per_link.items():
            link = self._links[addr]
            conn = link.conn
            if conn is None or not conn.connected:
                continue
            for group in _by_slot(chans):
                link.subscribed.difference_update(group)
                sent.append(conn.command(b"SUNSUBSCRIBE", group))
        return asyncio.gather(*sent) if sent else None

    async def ssubscribe(self, channels: Iterable[bytes], timeout: float | None = None) -> None:
        """SSUBSCRIBE and wait until Redis confirmed every channel.

        A channel whose master is unreachable stays remembered and is subscribed once the
        cluster serves its slot again; this returns after ``timeout`` seconds (the seed's
        connect timeout by default) in that case, and the error handler was told.
        """
        channels = list(channels)
        self.ssubscribe_nowait(channels)
        waits = [f for f in map(self._waiters.get, channels) if f is not None and not f.done()]
        if waits:
            wait = self.endpoint.connect_timeout if timeout is None else timeout
            await asyncio.wait(waits, timeout=wait)  # a waiter cancelled by sunsubscribe ends it

    async def sunsubscribe(self, channels: Iterable[bytes]) -> None:
        """SUNSUBSCRIBE from the given sharded channels that are subscribed."""
        fut = self.sunsubscribe_nowait(channels)
        if fut is not None:
            with contextlib.suppress(RedisUnavailableError, TimeoutError):
                await wait_for(fut, self.endpoint.connect_timeout)

    # ------------------------------------------------------------------ links

    def _link(self, addr: str) -> _ShardLink:
        link = self._links.get(addr)
        if link is None:
            link = self._links[addr] = _ShardLink(addr)
        return link

    def _on_command_done(self, fut: asyncio.Future[None]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if isinstance(exc, ClusterRedirect):
            if exc.kind == "MOVED":
                self.topology.moved(exc.slot, exc.addr)
            self._stale = True
            self._dirty.set()
        elif exc is not None:
            self._dirty.set()

    def _confirmed(self, link: _ShardLink, channel: bytes) -> None:
        if channel not in link.assigned:
            return
        link.subscribed.add(channel)
        fut = self._waiters.pop(channel, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _dropped(self, link: _ShardLink, channel: bytes) -> None:
        link.subscribed.discard(channel)
        if channel in link.assigned:
            link.assigned.discard(channel)
            if self._where.get(channel) == link.addr:
                del self._where[channel]
            self.report(
                RedisUnavailableError(
                    f"Redis Cluster node {link.addr} dropped the sharded subscription "
                    f"{channel!r} (its slot moved); re-subscribing on the new owner."
                )
            )
            self._stale = True
            # The node that dropped us has just been told who owns the slot now.
            self._prefer = [link.addr, *self._prefer]
            self._recovering = True
            self._dirty.set()

    def _lost(self, link: _ShardLink, conn: ShardSubscriberConnection) -> None:
        if link.conn is not conn:
            return
        link.subscribed.clear()
        if self._closing or not link.assigned:
            return
        self._link_lost(self.topology.endpoint(link.addr).url, conn.lost.result())
        self.report(
            RedisUnavailableError(
                f"Lost the connection to Redis Cluster node {link.addr} ({self.name}); "
                "its sharded subscriptions move to the slots' master once the cluster names it."
            )
        )
        self._stale = True
        self._prefer = [*self.topology.replicas.get(link.addr, []), *self._prefer]
        self._down[link.addr] = 0.0  # try it once more right away (a blip, not a crash?)
        self._recovering = True
        self._dirty.set()

    async def _reachable(self, owner: str) -> str:
        """Where to subscribe to ``owner``'s slots now: the owner, or while it is down one
        of its replicas (they serve sharded subscribers too and hear the master's
        SPUBLISH through replication; once promoted, they keep their subscribers, so a
        failover loses nothing published after the promotion)."""
        retry = self._down.get(owner)
        if retry is None:
            return owner
        if time.monotonic() >= retry:
            link = self._link(owner)
            try:
                if not link.connected:
                    await self._connect(link)
            except RedisUnavailableError:
                self._down[owner] = time.monotonic() + _PROBE_AFTER
            else:
                del self._down[owner]
                return owner
        for rep in self.topology.replicas.get(owner, []):
            if rep not in self._down:
                return rep
        return owner

    async def _connect(self, link: _ShardLink) -> None:
        def factory() -> ShardSubscriberConnection:
            return ShardSubscriberConnection(
                f"{self.name}@{link.addr}",
                on_message=self._dispatch if self._on_message is not None else None,
                on_batch=self._dispatch_batch if self._on_batch is not None else None,
                on_confirmed=lambda ch: self._confirmed(link, ch),
                on_dropped=lambda ch: self._dropped(link, ch),
            )

        conn = await open_connection(self.topology.endpoint(link.addr), factory)
        link.conn = conn
        link.subscribed.clear()
        conn.lost.add_done_callback(lambda _: self._lost(link, conn))

    def _dispatch(self, channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        assert self._on_message is not None
        self._last_shard_message = time.time()
        try:
            self._on_message(channel, payload, pattern)
        except Exception as exc:  # a bad handler must not kill the connection
            log.exception("message handler of %s failed", self.name)
            self.report(exc)

    def _dispatch_batch(self, now: int, batch: list[list[bytes]]) -> None:
        assert self._on_batch is not None
        self._last_shard_message = now / 1e9
        try:
            self._on_batch(now, batch)
        except Exception as exc:  # a bad handler must not kill the connection
            log.exception("message handler of %s failed", self.name)
            self.report(exc)

    async def _maintain(self) -> None:
        delay = _BACKOFF_FIRST
        quick = 0  # retries without a pause, each after a MOVED that named the owner
        while not self._closing:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                done = await self._reconcile()
            except RedisUnavailableError:
                done = False
            except Exception as exc:  # keep restoring whatever went wrong once
                log.exception("%s: restoring sharded subscriptions failed", self.name)
                self.report(exc)
                done = False
            if not done and self._redirected and quick < _MAX_REDIRECTS:
                self._redirected = False
                quick += 1
                self._dirty.set()
                continue
            quick = 0
            if done:
                delay = _BACKOFF_FIRST
                if self._recovering:
                    self._recovering = False
                    self.reconnects += 1
                    if self._on_reconnect is not None:
                        self._on_reconnect()
                self._maybe_restored()
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)
            self._dirty.set()

    async def _reconcile(self) -> bool:
        """Put every sharded channel on its slot's master (or, while that master is down,
        on one of its replicas); True when all are on masters and confirmed."""
        if self._stale:
            prefer, self._prefer = self._prefer, []
            self._stale = False
            try:
                await self.topology.refresh(prefer)
            except RedisUnavailableError:
                self._prefer = prefer
                self._stale = True
                return False
        ok = True
        targets: dict[str, str] = {}
        for ch in list(self.shard_channels):
            owner = self.topology.owner_of(ch)
            if owner is None:
                ok = False
                self._stale = True
                continue
            if owner not in targets:
                targets[owner] = await self._reachable(owner)
            if targets[owner] != owner:  # on a replica until the cluster names a master
                ok = False
                self._stale = True
            owner = targets[owner]
            current = self._where.get(ch)
            if current == owner:
                continue
            if current is not None and current in self._links:
                old = self._links[current]
                old.assigned.discard(ch)
                if ch in old.subscribed and old.conn is not None and old.conn.connected:
                    old.subscribed.discard(ch)
                    old.conn.command(b"SUNSUBSCRIBE", [ch])
            self._where[ch] = owner
            self._link(owner).assigned.add(ch)
            self.moves += 1
        waits: list[asyncio.Future[None]] = []
        for addr, link in list(self._links.items()):
            if not link.assigned:
                if not link.subscribed:  # nothing left on it: release the connection
                    del self._links[addr]
                    if link.conn is not None:
                        await link.conn.close()
                continue
            if not link.connected:
                try:
                    await self._connect(link)
                except RedisUnavailableError:
                    ok = False
                    self._stale = True
                    self._prefer = [*self.topology.replicas.get(addr, []), *self._prefer]
                    self._down[addr] = time.monotonic() + _PROBE_AFTER
                    continue
            missing = link.assigned - link.subscribed
            conn = link.conn
            assert conn is not None
            for group in _by_slot(missing):
                waits.append(conn.command(b"SSUBSCRIBE", group))
        if waits:
            results = await asyncio.gather(
                *(wait_for(w, self.endpoint.connect_timeout) for w in waits),
                return_exceptions=True,
            )
            for res in results:
                if isinstance(res, ClusterRedirect):
                    if res.kind == "MOVED":
                        self.topology.moved(res.slot, res.addr)
                        self._redirected = True  # the answer named the owner: retry now
                    else:
                        self._stale = True
                    ok = False
                elif isinstance(res, BaseException):
                    ok = False
                    self._stale = True
        return ok and all(link.assigned <= link.subscribed for link in self._links.values())


class _PubLink:
    __slots__ = ("addr", "conn", "connecting")

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.conn: NodeCommandConnection | None = None
        self.connecting: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.conn is not None and self.conn.connected


class ClusterPublisher:
    """Pipelined PUBLISH/SPUBLISH to a Redis Cluster that survives failovers and moves.

    Each master gets one connection; ``spublish`` writes to the master of the channel's
    slot without waiting for the reply. A publish answered with ``MOVED``/``ASK`` is sent
    again to the named node; publishes meant for a lost master wait (in a bounded offline
    queue, as :class:`~siotools.transport.pubsub.Publisher` does while Redis is away)
    until the cluster names the slot's new master.

    Args:
        seed: One node of the cluster (or a topology shared with a subscriber).
        name: The connections' name in logs and errors.
        on_error: Called with connection errors and refused commands.
        max_offline: How many publishes to keep while their master is unknown or down.
        high_water: :meth:`wait_writable` blocks while a connection has more commands
            than this awaiting their reply.
    """

    def __init__(
        self,
        seed: RedisEndpoint | ClusterTopology,
        *,
        name: str = "siotools-pub",
        on_error: ErrorHandler | None = None,
        max_offline: int = 100_000,
        high_water: int = 20_000,
    ) -> None:
        self.topology = seed if isinstance(seed, ClusterTopology) else ClusterTopology(seed)
        self.endpoint = self.topology.seed
        self.name = name
        self._on_error = on_error
        self.max_offline = max_offline
        self.high_water = high_water
        self._links: dict[str, _PubLink] = {}
        self._any: NodeCommandConnection | None = None
        self._offline: collections.deque[tuple[Any, ...]] = collections.deque()
        self._slots: dict[bytes, int] = {}
        self._dirty = asyncio.Event()
        self._stale = False
        self._prefer: list[str] = []
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        """Publishes dropped because the offline queue was full."""
        self.redirected = 0
        """Publishes sent again after a ``MOVED``/``ASK`` answer."""
        self.reconnects = 0
        """How many times a lost master's traffic found its new master."""
        self.lost_in_flight = 0
        """Publishes written to a node that was lost before answering (perhaps undelivered)."""
        self._requests: set[asyncio.Task[int]] = set()
        self._replicas_down: dict[str, float] = {}
        self.expired = 0
        """Requests dropped unsent because their deadline passed."""
        self.stalls = 0
        """Connections reset because a request went unacknowledged past its deadline."""

    @property
    def connected(self) -> bool:
        """Whether every master of the slot map has a live connection."""
        return bool(self.topology.masters) and all(
            addr in self._links and self._links[addr].connected for addr in self.topology.masters
        )

    def report(self, exc: BaseException) -> None:
        """Pass an error to the owner's error handler (or log it when there is none)."""
        if self._on_error is not None:
            try:
                self._on_error(exc)
            except Exception:  # an error handler must never break the publisher
                log.exception("error handler of %s failed", self.name)
        else:
            log.warning("%s: %s", self.name, exc)

    async def start(self) -> None:
        """Discover the cluster and connect to every master; the first failure is raised.

        Raises:
            RedisUnavailableError: The cluster cannot be reached now.
            ConfigurationError: The seed is not a Redis Cluster node.
        """
        await self.topology.refresh()
        await asyncio.gather(*(self._connect(self._link(a)) for a in self.topology.masters))
        self._pick_any()
        self._task = asyncio.create_task(self._maintain(), name=f"{self.name}-cluster")

    async def wait_connected(self, timeout: float) -> None:
        """Wait until every master has a live connection.

        Raises:
            RedisUnavailableError: Not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while not self.connected:
            if time.monotonic() > deadline:
                raise RedisUnavailableError(
                    f"The Redis Cluster at {self.endpoint.url} is unreachable ({self.name})."
                )
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ links

    def _link(self, addr: str) -> _PubLink:
        link = self._links.get(addr)
        if link is None:
            link = self._links[addr] = _PubLink(addr)
        return link

    async def _connect(self, link: _PubLink) -> None:
        name = f"{self.name}@{link.addr}"
        conn = await open_connection(
            self.topology.endpoint(link.addr),
            lambda: NodeCommandConnection(name, self._on_redirect, self.report),
        )
        link.conn = conn
        conn.lost.add_done_callback(lambda _: self._lost(link, conn))

    def _pick_any(self) -> None:
        for addr in sorted(self.topology.masters):
            link = self._links.get(addr)
            if link is not None and link.connected:
                self._any = link.conn
                return
        self._any = None

    def _lost(self, link: _PubLink, conn: NodeCommandConnection) -> None:
        self.lost_in_flight += conn.unanswered
        if link.conn is not conn or self._closing:
            return
        if self._any is conn:
            self._any = None
        self.report(
            RedisUnavailableError(
                f"Lost the connection to Redis Cluster node {link.addr} ({self.name}); "
                "its publishes wait for the slots' new master."
            )
        )
        self._stale = True
        self._prefer = [*self.topology.replicas.get(link.addr, []), *self._prefer]
        self._dirty.set()

    def _on_redirect(self, redirect: ClusterRedirect, args: tuple[Any, ...]) -> None:
        self.redirected += 1
        if redirect.kind == "MOVED":
            self.topology.moved(redirect.slot, redirect.addr)
            self._stale = True  # a whole range probably moved (failover): re-read the map
            self._dirty.set()
        link = self._links.get(redirect.addr)
        conn = link.conn if link is not None else None
        if conn is None or not conn.connected:
            self._queue(args)
            return
        if redirect.kind == "ASK":
            conn.send_nowait(b"ASKING")
        conn.send_nowait(*args)

    def _queue(self, args: tuple[Any, ...]) -> None:
        if len(self._offline) >= self.max_offline:
            self._offline.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                self.report(
                    RedisUnavailableError(
                        f"The Redis Cluster at {self.endpoint.url} cannot take publishes now; "
                        f"{self.dropped} publishes dropped."
                    )
                )
        self._offline.append(args)
        self._dirty.set()

    async def _maintain(self) -> None:
        delay = _BACKOFF_FIRST
        while not self._closing:
            await self._dirty.wait()
            self._dirty.clear()
            recovering = self._stale
            try:
                done = await self._reconcile()
            except RedisUnavailableError:
                done = False
            except Exception as exc:  # keep trying whatever went wrong once
                log.exception("%s: restoring the cluster connections failed", self.name)
                self.report(exc)
                done = False
            if done:
                delay = _BACKOFF_FIRST
                if recovering:
                    self.reconnects += 1
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)
            self._dirty.set()

    async def _reconcile(self) -> bool:
        if self._stale:
            prefer, self._prefer = self._prefer, []
            self._stale = False
            try:
                await self.topology.refresh(prefer)
            except RedisUnavailableError:
                self._prefer = prefer
                self._stale = True
                return False
        ok = self.topology.covered
        down = [self._link(a) for a in self.topology.masters if not self._link(a).connected]
        # In parallel: a dead host may take the whole connect timeout to refuse.
        results = await asyncio.gather(
            *(self._connect(link) for link in down), return_exceptions=True
        )
        for res in results:
            if isinstance(res, RedisUnavailableError):
                ok = False
                self._stale = True
            elif isinstance(res, BaseException):
                raise res
        for addr in [a for a in self._links if a not in self.topology.masters]:
            link = self._links[addr]
            if link.conn is None or not link.connected or not link.conn.pending:
                del self._links[addr]
                if link.conn is not None:
                    await link.conn.close()
        self._pick_any()
        pending, self._offline = self._offline, collections.deque()
        for args in pending:
            self._route(args)
        return ok and not self._offline

    # ------------------------------------------------------------------ publishing

    def _route(self, args: tuple[Any, ...]) -> None:
        if args[0] == b"SPUBLISH":
            self.spublish(args[1], args[2])
        else:
            self.publish(args[1], args[2])

    def publish(self, channel: bytes, payload: bytes) -> None:
        """PUBLISH on any node (Redis Cluster forwards it to every node), without waiting."""
        conn = self._any
        if conn is not None and conn.transport is not None:
            conn.send_nowait(b"PUBLISH", channel, payload)
            return
        self._queue((b"PUBLISH", channel, payload))

    def spublish(self, channel: bytes, payload: bytes) -> None:
        """SPUBLISH on the master of the channel's slot, without waiting."""
        slot = self._slots.get(channel)
        if slot is None:
            if len(self._slots) > 100_000:
                self._slots.clear()
            slot = self._slots[channel] = channel_slot(channel)
        addr = self.topology.owner(slot)
        link = self._links.get(addr) if addr is not None else None
        conn = link.conn if link is not None else None
        if conn is not None and conn.transport is not None:
            conn.send_nowait(b"SPUBLISH", channel, payload)
            return
        self._queue((b"SPUBLISH", channel, payload))

    @property
    def congested(self) -> bool:
        """Whether :meth:`wait_writable` would wait (safe from any thread: the synchronous
        adapter asks from the server's threads while the loop may change the links)."""
        return any(
            link.conn is not None and (link.conn.pending > self.high_water or link.conn.paused)
            for link in tuple(self._links.values())
        )

    async def wait_writable(self) -> None:
        """Return at once unless a connection has too many commands awaiting their reply."""
        for link in list(self._links.values()):
            conn = link.conn
            if conn is None:
                continue
            while conn.connected and conn.pending > self.high_water:
                conn.flush()
                await asyncio.sleep(0.001)
            await conn.drain()

    async def _conn_for(self, addr: str | None, timeout: float) -> NodeCommandConnection:
        deadline = time.monotonic() + timeout
        while True:
            if addr is None:
                conn = self._any
            else:
                link = self._links.get(addr)
                if link is None and addr not in self.topology.masters:
                    link = self._link(addr)
                    with contextlib.suppress(RedisUnavailableError):
                        await self._connect(link)
                conn = link.conn if link is not None else None
            if conn is not None and conn.connected:
                return conn
            if time.monotonic() > deadline:
                raise RedisUnavailableError(
                    f"The Redis Cluster at {self.endpoint.url} is unreachable ({self.name})."
                )
            self._dirty.set()
            await asyncio.sleep(0.02)

    async def execute(
        self,
        *args: bytes | str | int | float,
        channel: bytes | None = None,
        node: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Run one command and return its reply, following ``MOVED``/``ASK``.

        Args:
            args: The command.
            channel: Route by this channel's (or key's) slot; any master when None.
            node: Run it on this ``host:port`` instead.
            timeout: Seconds for the whole call, waiting for a connection and for the
                reply (the seed's connect timeout when None), as
                :meth:`Publisher.execute <siotools.transport.pubsub.Publisher.execute>`.

        Raises:
            RedisUnavailableError: The cluster is unreachable, did not answer in time or
                refused the command.
        """
        wait = self.endpoint.connect_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        addr = (
            node
            if node is not None
            else (self.topology.owner_of(channel) if channel is not None else None)
        )
        asking = False
        for _ in range(_MAX_REDIRECTS):
            conn = await self._conn_for(addr, max(0.0, deadline - loop.time()))
            if asking:
                conn.send_nowait(b"ASKING")
            try:
                return await wait_for(conn.execute(*args), max(0.0, deadline - loop.time()))
            except TimeoutError:
                what = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
                raise RedisUnavailableError(
                    f"Redis Cluster node {addr or 'of ' + self.endpoint.url} did not answer "
                    f"{what} within {wait:g}s (the server or the network is stalled)."
                ) from None
            except ClusterRedirect as redirect:
                addr, asking = self._follow(redirect)
        raise RedisUnavailableError(
            f"The Redis Cluster at {self.endpoint.url} redirected {args[0]!r} "
            f"{_MAX_REDIRECTS} times; its slots are moving, try again."
        )

    def _follow(self, redirect: ClusterRedirect) -> tuple[str, bool]:
        """Where a ``MOVED``/``ASK`` sends the command next, and whether with ``ASKING``;
        a ``MOVED`` also updates the slot map (and has it read again)."""
        if redirect.kind == "MOVED":
            self.topology.moved(redirect.slot, redirect.addr)
            self._stale = True
            self._dirty.set()
        return redirect.addr, redirect.kind == "ASK"

    def publish_request(
        self, channel: bytes, payload: bytes, *, deadline: float
    ) -> asyncio.Future[int]:
        """PUBLISH a request that must reach the cluster before ``deadline``
        (``loop.time()``), as :meth:`Publisher.publish_request
        <siotools.transport.pubsub.Publisher.publish_request>` does on one Redis.

        Returns:
            A future of the node's ``PUBLISH`` reply; it fails with
            :class:`~siotools.exceptions.RedisUnavailableError` when the request was
            dropped unsent at its deadline (no master to take it meanwhile) or was not
            acknowledged by then (the link is then reset, so a stalled connection cannot
            deliver it after its caller was told it failed).
        """
        return self._request(b"PUBLISH", channel, payload, deadline)

    def spublish_request(
        self, channel: bytes, payload: bytes, *, deadline: float
    ) -> asyncio.Future[int]:
        """:meth:`publish_request` with ``SPUBLISH``, on the master of the channel's slot."""
        return self._request(b"SPUBLISH", channel, payload, deadline)

    def _request(
        self, verb: bytes, channel: bytes, payload: bytes, deadline: float
    ) -> asyncio.Future[int]:
        # Written at once when its connection is up, as on one Redis: a publish made
        # after the request (a broadcast) cannot overtake it on that connection.
        conn = self._ready(verb, channel, None)
        sent = conn.send(verb, channel, payload) if conn is not None else None
        first = (conn, sent) if conn is not None and sent is not None else None
        task = asyncio.ensure_future(self._send_request(verb, channel, payload, deadline, first))
        task.add_done_callback(_consume)
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)
        return task

    def _ready(self, verb: bytes, channel: bytes, addr: str | None) -> NodeCommandConnection | None:
        """The connection a request can be written on now: up, and no earlier publish of
        the same channel waits offline (a request never overtakes a broadcast queued
        before it). ``addr``: a node a redirect named."""
        target = addr
        if target is None and verb == b"SPUBLISH":
            target = self.topology.owner_of(channel)
            if target is None:
                return None  # the slot's master is not known yet
        if target is None:
            conn = self._any
        else:
            link = self._links.get(target)
            conn = link.conn if link is not None else None
        if conn is None or not conn.connected or conn.transport is None:
            return None
        if self._offline and any(args[1] == channel for args in self._offline):
            return None
        return conn

    async def _send_request(
        self,
        verb: bytes,
        channel: bytes,
        payload: bytes,
        deadline: float,
        first: tuple[NodeCommandConnection, asyncio.Future[Any]] | None,
    ) -> int:
        loop = asyncio.get_running_loop()
        redirected: str | None = None
        asking = False
        for _ in range(_MAX_REDIRECTS):
            if first is not None:
                (conn, sent), first = first, None
            else:
                conn = await self._request_conn(verb, channel, redirected, deadline)
                if asking:
                    conn.send_nowait(b"ASKING")
                sent = conn.send(verb, channel, payload)
            try:
                return int(await wait_for(sent, max(0.0, deadline - loop.time())))
            except TimeoutError:
                # Sent, but the node did not answer by the deadline while the connection
                # looks open: a stalled link. Reset it (the kernel must not deliver the
                # request when the link comes back); _maintain reconnects.
                self.stalls += 1
                self.report(
                    RedisUnavailableError(
                        f"A Redis Cluster node did not acknowledge a request by its deadline "
                        f"({self.name}); the link seems stalled, reconnecting."
                    )
                )
                conn.abort(reset=True)
                raise RedisUnavailableError(
                    f"The Redis Cluster at {self.endpoint.url} did not acknowledge the "
                    "request by its deadline (a node or the network is stalled)."
                ) from None
            except ClusterRedirect as redirect:
                self.redirected += 1
                redirected, asking = self._follow(redirect)
        raise RedisUnavailableError(
            f"The Redis Cluster at {self.endpoint.url} redirected a request "
            f"{_MAX_REDIRECTS} times; its slots are moving, try again."
        )

    async def _request_conn(
        self, verb: bytes, channel: bytes, addr: str | None, deadline: float
    ) -> NodeCommandConnection:
        """Wait for :meth:`_ready`'s connection; past ``deadline`` the request is dropped
        unsent."""
        loop = asyncio.get_running_loop()
        while True:
            if addr is not None and addr not in self._links and addr not in self.topology.masters:
                # A redirect named a node outside the slot map: connect to it.
                with contextlib.suppress(RedisUnavailableError):
                    await self._connect(self._link(addr))
            conn = self._ready(verb, channel, addr)
            if conn is not None:
                return conn
            if loop.time() >= deadline:
                self.expired += 1
                raise RedisUnavailableError(
                    f"The Redis Cluster at {self.endpoint.url} could not take the request "
                    "before its deadline; it was dropped unsent."
                )
            self._dirty.set()
            await asyncio.sleep(0.02)

    async def publish_wait(
        self, channel: bytes, payload: bytes, *, timeout: float | None = None
    ) -> int:
        """PUBLISH and return how many subscribers *of that node* received it (Redis
        Cluster counts only the node's own clients); ``timeout`` as for :meth:`execute`."""
        result: int = await self.execute(b"PUBLISH", channel, payload, timeout=timeout)
        return result

    async def spublish_wait(
        self, channel: bytes, payload: bytes, *, timeout: float | None = None
    ) -> int:
        """SPUBLISH and return how many sharded subscribers received it."""
        result: int = await self.execute(
            b"SPUBLISH", channel, payload, channel=channel, timeout=timeout
        )
        return result

    async def _sum_over_nodes(self, sub: bytes, channel: bytes, timeout: float | None) -> int:
        # @socket.io/redis-adapter lib/util.ts PUBSUB(): Promise.all over the nodes, each
        # reply parsed by parseNumSubResponse, then summed. node-redis asks the masters,
        # ioredis ``nodes()`` every node: a subscriber on a replica (a socket.io-redis 5.x
        # node whose one connection went to a node that a failover made a replica) is a
        # node that answers, so replicas are asked too, with the same deadline (a short one
        # would undercount a busy replica's subscribers, and a count too low ends a request
        # before every node answered). A master must answer; a replica that cannot (down)
        # is counted as 0 and left out for a while, so a dead one does not slow requests.
        masters = sorted(self.topology.masters)
        loop = asyncio.get_running_loop()
        now = loop.time()
        replicas = sorted(
            {r for reps in self.topology.replicas.values() for r in reps}
            - set(masters)
            - {a for a, until in self._replicas_down.items() if until > now}
        )
        nodes = [*masters, *replicas]
        replies = await asyncio.gather(
            *(self.execute(b"PUBSUB", sub, channel, node=addr, timeout=timeout) for addr in nodes),
            return_exceptions=True,
        )
        total = 0
        for addr, reply in zip(nodes, replies, strict=True):
            if isinstance(reply, BaseException):
                if addr in self.topology.masters:
                    raise reply
                self._replicas_down[addr] = loop.time() + _REPLICA_RETRY_AFTER
                continue
            self._replicas_down.pop(addr, None)
            total += int(reply[1])
        return total

    async def numsub(self, channel: bytes, *, timeout: float | None = None) -> int:
        """``PUBSUB NUMSUB channel`` summed over the masters and the replicas that answer;
        ``timeout`` bounds each master's answer (see :meth:`execute`)."""
        return await self._sum_over_nodes(b"NUMSUB", channel, timeout)

    async def shardnumsub(self, channel: bytes, *, timeout: float | None = None) -> int:
        """``PUBSUB SHARDNUMSUB channel`` summed as :meth:`numsub` (a sharded subscriber
        waits on a replica while its master fails over)."""
        return await self._sum_over_nodes(b"SHARDNUMSUB", channel, timeout)

    async def flush(self) -> None:
        """Wait until every command written so far was answered."""
        waits = [
            link.conn.send(b"PING") for link in self._links.values() if link.connected and link.conn
        ]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)

    async def close(self) -> None:
        """Write what is queued and close every connection."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for request in list(self._requests):
            request.cancel()
        with contextlib.suppress(TimeoutError):
            await wait_for(self.flush(), 1.0)
        for link in self._links.values():
            if link.conn is not None:
                await link.conn.close()
        self._links.clear()
        self._any = None
