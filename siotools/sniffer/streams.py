"""Live source for @socket.io/redis-streams-adapter: read the adapter's Redis stream.

The streams adapter XADDs its messages to one stream (``streamName``, default
``socket.io``) and every node reads it with ``XREAD BLOCK``. Reading a stream is passive by
nature: it is not a subscription, Redis counts nothing, and no consumer group is created, so
the nodes cannot notice the sniffer. :class:`StreamSource` does the same from ``$`` (what is
added from now on) and, with ``since``, first backfills the entries already in the stream
with ``XRANGE`` (``"-"`` for all of it, or an entry id / a millisecond time).

With 0.3.x's ``streamCount`` the adapter spreads the namespaces over ``<streamName>-0`` ..
``<streamName>-<N-1>`` (and, for a namespace whose hash is negative, ``<streamName>--<i>``:
see :func:`siotools.protocol.streams.stream_for`). Told the count (``stream_count``), the
source reads exactly the streams such nodes read and write, existing yet or not, all in
one ``XREAD``: ``<streamName>`` alone for a count of 1, else ``-0`` .. ``-<N-1>`` and
``--1`` .. ``--<N-1>`` (not ``<streamName>`` itself, which they never touch). Not told, it
follows the named stream and every ``<streamName>-<integer>`` stream, found with
``SCAN MATCH`` + ``TYPE`` at start and again every few seconds (a stream appears with its
first entry).

On a Redis Cluster (``?cluster=true``) the numbered streams hash to slots on different
masters, and one XREAD over keys of different slots fails with CROSSSLOT. The source then
reads like the adapter's own nodes, which read each stream on its own connection: one
blocking XREAD per slot, sent to the master that serves it (``MOVED`` and ``ASK``
followed, the slot map read again after a lost master, so a failover's promoted replica
is read from the entry it had reached); ``SCAN`` looks on every master.

Each entry is handed to the same raw sink as the pub/sub sources, as a record whose channel
is the stream key and whose payload is :func:`siotools.protocol.streams.pack_record` (the
entry id and field/value bytes as read), so captures, files and the column store keep one
schema; the decoder tells the records apart by their first byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Final

import redis.asyncio as aioredis
import redis.exceptions

from siotools.exceptions import ConfigurationError, RedisUnavailableError
from siotools.protocol import glob_escape
from siotools.protocol.streams import DEFAULT_STREAM, pack_record, streams_for
from siotools.sniffer.live import RawSink
from siotools.transport.cluster import ClusterTopology, channel_slot, parse_cluster_url

__all__ = ["StreamSource", "is_stream", "node_streams"]

log = logging.getLogger("siotools.sniffer")

_BLOCK_MS: Final = 1000
_CLOSE_S: Final = 3.0
_SOCKET_MARGIN_S: Final = 5.0
"""How much longer than one XREAD's block a reply may take before the read fails."""
_COUNT: Final = 500
_RETRY: Final = 0.5
_RESCAN_S: Final = 5.0
_SCAN_ROUNDS: Final = 50
_NUMBERED: Final = re.compile(rb"-(0|-?[1-9][0-9]*)")
_REDIRECTS: Final = 5
_RETRIED: Final = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    RedisUnavailableError,
    OSError,
)
"""What a read waits out and tries again: a lost connection or master, a cluster without
a master for some slot, a slot half migrated."""


class _Nodes:
    """redis-py clients of a single Redis, or of each master of a Redis Cluster, with
    commands on a key sent where its slot is served.

    Args:
        url: The Redis URL; ``?cluster=true`` names a Redis Cluster node.
        name: The connections' client name.
        socket_timeout: How long a reply may take.
    """

    def __init__(self, url: str, *, name: str, socket_timeout: float) -> None:
        self.endpoint, cluster = parse_cluster_url(url)
        self.topology = ClusterTopology(self.endpoint) if cluster else None
        self.name = name
        self.socket_timeout = socket_timeout
        self._clients: dict[str, aioredis.Redis] = {}

    async def start(self) -> None:
        """Read the slot map (a Redis Cluster).

        Raises:
            RedisUnavailableError: No node of the cluster answers.
        """
        if self.topology is not None:
            await self.topology.refresh()

    def client(self, addr: str = "") -> aioredis.Redis:
        """The client of the node ``host:port`` (``""``: the single Redis)."""
        client = self._clients.get(addr)
        if client is None:
            ep = self.endpoint if self.topology is None else self.topology.endpoint(addr)
            client = self._clients[addr] = aioredis.Redis(
                **ep.redis_py_kwargs(), client_name=self.name, socket_timeout=self.socket_timeout
            )
        return client

    def group(self, key: bytes) -> int | None:
        """The slot of ``key`` on a Redis Cluster (None on a single Redis: all together)."""
        return None if self.topology is None else channel_slot(key)

    def masters(self) -> list[str]:
        """The nodes that hold keys: every master (``""``: the single Redis)."""
        return [""] if self.topology is None else list(self.topology.masters)

    async def refresh(self) -> None:
        """Read the slot map again (after a lost master; nothing on a single Redis).

        Raises:
            RedisUnavailableError: No node of the cluster answers.
        """
        if self.topology is not None:
            await self.topology.refresh()

    async def on_key(self, key: bytes, call: Callable[[Any], Any]) -> Any:
        """``call(client)`` on the node serving ``key``, MOVED and ASK followed.

        Args:
            key: The key the command is about (its slot picks the node).
            call: Calls one command method on the client it is given: a client (awaited)
                or, after ASK, a pipeline after ``ASKING`` (run).

        Raises:
            RedisUnavailableError: No master serves the key's slot, or it kept moving.
            redis.exceptions.RedisError: What the command failed with.
        """
        top = self.topology
        if top is None:
            return await call(self.client())
        slot = channel_slot(key)
        for _ in range(_REDIRECTS):
            addr = top.owner(slot)
            if addr is None:
                await top.refresh()
                addr = top.owner(slot)
                if addr is None:
                    raise RedisUnavailableError(
                        f"no master of the Redis Cluster serves slot {slot}"
                    )
            try:
                return await call(self.client(addr))
            except redis.exceptions.MovedError as exc:
                top.moved(exc.slot_id, f"{exc.host}:{exc.port}")
            except redis.exceptions.AskError as exc:
                # The slot is migrating and the key is already (or only) on the target:
                # ASKING lets the next command there run once.
                pipe = self.client(f"{exc.host}:{exc.port}").pipeline(transaction=False)
                pipe.execute_command("ASKING")
                call(pipe)
                return (await pipe.execute())[1]
        raise RedisUnavailableError(f"slot {slot} kept moving ({_REDIRECTS} redirects)")

    async def type(self, key: bytes) -> Any:
        """``TYPE key`` on the node serving it."""
        return await self.on_key(key, lambda c: c.type(key))

    async def close(self) -> None:
        """Close every client (within a bounded time)."""
        clients, self._clients = list(self._clients.values()), {}
        if not clients:
            return
        closing = [asyncio.ensure_future(c.aclose()) for c in clients]
        done, _ = await asyncio.wait(closing, timeout=_CLOSE_S)
        for fut in done:
            if not fut.cancelled():
                fut.exception()  # retrieved: a failed close is not worth a warning


def _xrange(key: bytes, start: str) -> Callable[[Any], Any]:
    return lambda c: c.xrange(key, min=start, count=_COUNT)


def _xread(ids: dict[Any, Any], block_ms: int) -> Callable[[Any], Any]:
    return lambda c: c.xread(ids, count=_COUNT, block=block_ms)


async def _scan(nodes: _Nodes, pattern: bytes) -> list[bytes]:
    """The keys matching ``pattern`` on every master (bounded SCAN on each)."""
    found: list[bytes] = []
    for addr in nodes.masters():
        client = nodes.client(addr)
        cursor: Any = 0
        for _ in range(_SCAN_ROUNDS):
            cursor, keys = await client.scan(cursor, match=pattern, count=1000)
            found += [k.encode() if isinstance(k, str) else bytes(k) for k in keys]
            if not cursor:
                break
    return found


async def is_stream(url: str, key: str = DEFAULT_STREAM, *, numbered: bool = True) -> bool:
    """Whether ``key`` holds a Redis stream (``TYPE``; a read-only look), or, with
    ``numbered``, one of its 0.3.x ``streamCount`` siblings ``<key>-<integer>`` does
    (bounded ``SCAN``, on every master of a Redis Cluster): then a :class:`StreamSource`
    of ``key`` has streams to follow.

    Raises:
        RedisUnavailableError: Redis cannot be reached, or refused TYPE (an ACL).
        ConfigurationError: The URL is invalid.
    """
    endpoint, _ = parse_cluster_url(url)
    nodes = _Nodes(url, name="siotools-sniffer-streams", socket_timeout=endpoint.connect_timeout)
    try:
        await nodes.start()
        raw = key.encode()
        if await nodes.type(raw) == b"stream":
            return True
        if not numbered:
            return False
        for k in await _scan(nodes, (glob_escape(key) + "-*").encode()):
            if _NUMBERED.fullmatch(k[len(raw) :]) and (await nodes.type(k) == b"stream"):
                return True
        return False
    except (redis.exceptions.ConnectionError, OSError) as exc:
        raise RedisUnavailableError(f"cannot reach Redis to look at key {key!r}: {exc}") from exc
    except redis.exceptions.ResponseError as exc:  # an ACL without +type: cannot tell
        raise RedisUnavailableError(f"Redis refused TYPE {key!r}: {exc}") from exc
    finally:
        await nodes.close()


def node_streams(stream: str = DEFAULT_STREAM, stream_count: int = 1) -> tuple[str, ...]:
    """The streams @socket.io/redis-streams-adapter nodes with this ``streamCount`` read or
    write: what they read (:func:`siotools.protocol.streams.streams_for`) and, from a count
    of 2, the ``<stream>--1`` .. ``<stream>--<N-1>`` that 0.3.1 writes a namespace with a
    negative hash to (JavaScript's ``%`` keeps the sign: see
    :func:`siotools.protocol.streams.stream_for`), which no node reads.

    Raises:
        ConfigurationError: ``stream_count`` is not a positive integer.
    """
    if type(stream_count) is not int or stream_count < 1:
        raise ConfigurationError(f"stream_count must be a positive integer, not {stream_count!r}")
    negative = tuple(f"{stream}--{i}" for i in range(1, stream_count))
    return streams_for(stream, stream_count) + negative


class StreamSource:
    """Reads a stream (and its numbered siblings) with ``XREAD BLOCK`` into a raw sink:
    one connection on a single Redis, one XREAD per slot on a Redis Cluster.

    Args:
        url: The Redis URL; ``?cluster=true`` names a node of a Redis Cluster.
        stream: The stream key (the adapter's ``streamName``).
        sink: Receives ``sink(time_ns, [[b"stream", None, key, payload], ...], False)``.
        since: Backfill first with XRANGE from this id (``"-"``: the whole stream); None
            reads only what is added after :meth:`start`.
        block_ms: How long one XREAD blocks.
        stream_count: The adapter's 0.3.x ``streamCount``: read exactly the streams its
            nodes read and write (:func:`node_streams`), from the start, before they exist.
            None: the count is not known, ``discover`` finds the numbered streams.
        discover: Look for ``<stream>-<integer>`` streams (SCAN, at start and every few
            seconds); None (the default) when ``stream_count`` is not given.

    Attributes:
        last_id: The id of the last entry handed over (``$`` before the first).
        keys: The stream keys followed so far.
        errors: The connection errors seen, as text.
        reconnects: How many times a read was tried again after an error.

    Raises:
        ConfigurationError: An empty stream key, a bad URL or ``stream_count``.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        sink: RawSink,
        *,
        since: str | None = None,
        block_ms: int = _BLOCK_MS,
        stream_count: int | None = None,
        discover: bool | None = None,
    ) -> None:
        if not stream:
            raise ConfigurationError("the stream key must not be empty")
        # An explicit socket timeout (redis-py's default differs between versions, none
        # before 8): a read on a connection that died unannounced fails instead of
        # waiting forever, and a reply to XREAD BLOCK is given its block time and more.
        self._nodes = _Nodes(
            url,
            name="siotools-sniffer-streams",
            socket_timeout=block_ms / 1000 + _SOCKET_MARGIN_S,
        )
        self.endpoint = self._nodes.endpoint
        self.stream = stream
        self.sink = sink
        self.since = since
        self.block_ms = block_ms
        self.discover = stream_count is None if discover is None else discover
        self.last_id = "$"
        self.errors: list[str] = []
        self.reconnects = 0
        self._key = stream.encode()
        self._counted = stream_count is not None
        named = node_streams(stream, stream_count) if stream_count is not None else (stream,)
        self._named = [k.encode() for k in named]
        self._ids: dict[bytes, str] = {}
        self._readers: dict[int | None, asyncio.Task[None]] = {}
        self._rescan: asyncio.Task[None] | None = None
        self._started = False
        self._closing = False

    @property
    def cluster(self) -> bool:
        """Whether the URL names a Redis Cluster."""
        return self._nodes.topology is not None

    @property
    def keys(self) -> tuple[str, ...]:
        """The stream keys followed so far."""
        return tuple(k.decode("utf-8", "replace") for k in self._ids)

    def _hand(self, key: bytes, entries: list[Any]) -> None:
        if not entries:
            return
        now = time.time_ns()
        batch: list[list[Any]] = []
        last = self._ids.get(key, "0-0")
        for eid, fields in entries:
            batch.append([b"stream", None, key, pack_record(eid, fields.items())])
            last = eid.decode() if isinstance(eid, bytes) else str(eid)
        self._ids[key] = self.last_id = last
        self.sink(now, batch, False)

    async def _siblings(self) -> list[bytes]:
        """The ``<stream>-<integer>`` keys that hold streams (bounded SCAN)."""
        found = [
            k
            for k in await _scan(self._nodes, (glob_escape(self.stream) + "-*").encode())
            if _NUMBERED.fullmatch(k[len(self._key) :]) and k not in self._ids
        ]
        out = []
        for k in sorted(set(found)):
            if await self._nodes.type(k) == b"stream":
                out.append(k)
        return out

    async def _follow(self, key: bytes, check: bool) -> None:
        """Start following ``key``: backfill (``since``), then pin ``$``."""
        on_key = self._nodes.on_key
        kind: Any = await self._nodes.type(key)
        if kind not in (b"stream", b"none"):
            if check:
                raise ConfigurationError(
                    f"key {key.decode('utf-8', 'replace')!r} holds a {kind.decode()}, not a "
                    "stream; pass the adapter's streamName"
                    + (" and streamCount" if self._counted else "")
                )
            return
        self._ids[key] = "0-0"
        if self.since is not None:
            start = self.since
            while True:
                got: Any = await on_key(key, _xrange(key, start))
                self._hand(key, got)
                if len(got) < _COUNT:
                    break
                start = "(" + self._ids[key]
        if self._ids[key] == "0-0" and kind == b"stream":
            # Pin "$" now: entries added between start() and the first XREAD count.
            info: Any = await on_key(key, lambda c: c.xinfo_stream(key))
            self._ids[key] = info["last-generated-id"].decode()

    async def start(self) -> None:
        """Connect, check the key, backfill (``since``) and start reading.

        Raises:
            RedisUnavailableError: Redis cannot be reached.
            ConfigurationError: The key holds something else than a stream, or the URL
                names a Redis Cluster node that is not one.
        """
        try:
            await self._nodes.start()
            # The stream(s) named are checked: a key of another type is a wrong name.
            for key in self._named:
                await self._follow(key, True)
            if self.discover:
                for key in await self._siblings():
                    await self._follow(key, False)
        except (redis.exceptions.ConnectionError, OSError) as exc:
            await self.close()
            raise RedisUnavailableError(f"cannot read stream {self.stream!r}: {exc}") from exc
        except BaseException:
            await self.close()
            raise
        self._started = True
        self._spawn()
        if self.discover and self.cluster:
            self._rescan = asyncio.create_task(self._rescan_loop())

    def _spawn(self) -> None:
        """A reader for each group of keys that has none yet (one for a single Redis)."""
        if self._closing or not self._started:
            return
        for key in list(self._ids):
            group = self._nodes.group(key)
            reader = self._readers.get(group)
            if reader is None or reader.done():  # done: its keys were dropped, one is back
                self._readers[group] = asyncio.create_task(self._read(group))

    async def _rescan_loop(self) -> None:
        # On a Redis Cluster streams that appear later may be on any slot: a new reader
        # for a new slot (on a single Redis the one reader rescans itself).
        me = asyncio.current_task()
        while not self._closing and not (me is not None and me.cancelling()):
            await asyncio.sleep(_RESCAN_S)
            try:
                for key in await self._siblings():
                    self._ids.setdefault(key, "0-0")  # created after start(): all new
            except (*_RETRIED, redis.exceptions.ResponseError) as exc:
                self.errors.append(str(exc))
                log.warning("stream %s: looking for streams: %s", self.stream, exc)
                continue
            self._spawn()

    async def _read(self, group: int | None) -> None:
        nodes = self._nodes
        me = asyncio.current_task()
        loop = asyncio.get_running_loop()
        rescan = loop.time() + _RESCAN_S
        while True:
            # A cancel can be lost: Python 3.11's asyncio.wait_for, which redis-py sends
            # every command through when a socket timeout is set, returns the result
            # instead of raising when the cancel lands just after the send completed; the
            # XREAD then goes on, and so would this loop, forever. The cancel still counts
            # in cancelling(), and stop() says so too: either ends the reader here.
            if self._closing or (me is not None and me.cancelling()):
                raise asyncio.CancelledError
            try:
                if group is None and self.discover and loop.time() >= rescan:
                    rescan = loop.time() + _RESCAN_S
                    for key in await self._siblings():
                        # created after start(): every entry in it is new
                        self._ids.setdefault(key, "0-0")
                # One XREAD for every key of the group: all of them on a single Redis
                # (one connection), those of one slot on a Redis Cluster (no CROSSSLOT).
                ids: dict[Any, Any] = {
                    k: i for k, i in self._ids.items() if nodes.group(k) == group
                }
                if not ids:  # every key of the group was dropped
                    return
                got: Any = await nodes.on_key(next(iter(ids)), _xread(ids, self.block_ms))
            except _RETRIED as exc:
                self.errors.append(str(exc))
                log.warning("stream %s: %s; reading again", self.stream, exc)
                self.reconnects += 1
                await asyncio.sleep(_RETRY)
                if self.cluster:  # a lost master: where its slots went
                    with contextlib.suppress(*_RETRIED):
                        await nodes.refresh()
                continue
            except redis.exceptions.ResponseError as exc:
                # A key replaced by another type (WRONGTYPE), an ACL changed under the
                # reader: said, and read again, rather than a reader that ends silently
                # while the capture goes on.
                self.errors.append(str(exc))
                log.warning("stream %s: %s; reading again", self.stream, exc)
                with contextlib.suppress(*_RETRIED, redis.exceptions.ResponseError):
                    await self._drop_non_streams(list(ids))
                await asyncio.sleep(_RETRY)
                continue
            for key, entries in got or ():
                self._hand(bytes(key), entries)

    async def _drop_non_streams(self, keys: list[bytes]) -> None:
        """Stop following the keys that now hold something else than a stream."""
        for key in keys:
            kind: Any = await self._nodes.type(key)
            if kind not in (b"stream", b"none"):
                self._ids.pop(key, None)
                log.warning(
                    "stream %s: key %r now holds a %s; no longer followed",
                    self.stream,
                    key.decode("utf-8", "replace"),
                    kind.decode(),
                )

    def stop(self) -> None:
        """Ask the readers to stop; returns at once (:meth:`close` waits for them)."""
        if self._closing:
            return
        self._closing = True
        for task in self._tasks():
            task.cancel()

    def _tasks(self) -> list[asyncio.Task[None]]:
        return [*self._readers.values(), *([self._rescan] if self._rescan is not None else [])]

    async def close(self) -> None:
        """Stop reading and close the connections (within a bounded time)."""
        # Bounded waits: a reader whose cancel was lost (see _read) reads until its XREAD
        # returns, and a client closing under a stalled connection must not hold up the
        # capture's stop either.
        self.stop()
        tasks = self._tasks()
        self._readers, self._rescan = {}, None
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_S)
        await self._nodes.close()
        left = [t for t in tasks if not t.done()]
        if left:  # in a longer XREAD: the closed connection ends it
            await asyncio.wait(left, timeout=_CLOSE_S)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the reader's last error is not worth a warning
