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

Each entry is handed to the same raw sink as the pub/sub sources, as a record whose channel
is the stream key and whose payload is :func:`siotools.protocol.streams.pack_record` (the
entry id and field/value bytes as read), so captures, files and the column store keep one
schema; the decoder tells the records apart by their first byte.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Final

import redis.asyncio as aioredis
import redis.exceptions

from siotools.exceptions import ConfigurationError, RedisUnavailableError
from siotools.protocol import glob_escape
from siotools.protocol.streams import DEFAULT_STREAM, pack_record, streams_for
from siotools.sniffer.live import RawSink
from siotools.transport.endpoint import RedisEndpoint

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


async def is_stream(url: str, key: str = DEFAULT_STREAM, *, numbered: bool = True) -> bool:
    """Whether ``key`` holds a Redis stream (``TYPE``; a read-only look), or, with
    ``numbered``, one of its 0.3.x ``streamCount`` siblings ``<key>-<integer>`` does
    (bounded ``SCAN``): then a :class:`StreamSource` of ``key`` has streams to follow.

    Raises:
        RedisUnavailableError: Redis cannot be reached, or refused TYPE (an ACL).
    """
    endpoint = RedisEndpoint.from_url(url)
    client = aioredis.Redis(**endpoint.redis_py_kwargs(), socket_timeout=endpoint.connect_timeout)
    try:
        if await client.type(key) == b"stream":
            return True
        if not numbered:
            return False
        pattern = (glob_escape(key) + "-*").encode()
        cursor: Any = 0
        for _ in range(_SCAN_ROUNDS):
            cursor, keys = await client.scan(cursor, match=pattern, count=1000)
            for k in keys:
                k = k.encode() if isinstance(k, str) else bytes(k)
                if (
                    _NUMBERED.fullmatch(k[len(key.encode()) :])
                    and await client.type(k) == b"stream"
                ):
                    return True
            if not cursor:
                break
        return False
    except (redis.exceptions.ConnectionError, OSError) as exc:
        raise RedisUnavailableError(f"cannot reach Redis to look at key {key!r}: {exc}") from exc
    except redis.exceptions.ResponseError as exc:  # an ACL without +type: cannot tell
        raise RedisUnavailableError(f"Redis refused TYPE {key!r}: {exc}") from exc
    finally:
        await client.aclose()


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
    """One connection reading a stream (and its numbered siblings) with ``XREAD BLOCK``
    into a raw sink.

    Args:
        url: The Redis URL.
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
        reconnects: How many times the connection was re-established.
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
        self.endpoint = RedisEndpoint.from_url(url)
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
        self._client: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

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
        assert self._client is not None
        pattern = (glob_escape(self.stream) + "-*").encode()
        found: list[bytes] = []
        cursor: Any = 0
        for _ in range(_SCAN_ROUNDS):
            cursor, keys = await self._client.scan(cursor, match=pattern, count=1000)
            for k in keys:
                k = k.encode() if isinstance(k, str) else bytes(k)
                if _NUMBERED.fullmatch(k[len(self._key) :]) and k not in self._ids:
                    found.append(k)
            if not cursor:
                break
        out = []
        for k in sorted(set(found)):
            if await self._client.type(k) == b"stream":
                out.append(k)
        return out

    async def _follow(self, key: bytes, check: bool) -> None:
        """Start following ``key``: backfill (``since``), then pin ``$``."""
        assert self._client is not None
        kind: Any = await self._client.type(key)
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
                got: Any = await self._client.xrange(key, min=start, count=_COUNT)
                self._hand(key, got)
                if len(got) < _COUNT:
                    break
                start = "(" + self._ids[key]
        if self._ids[key] == "0-0" and kind == b"stream":
            # Pin "$" now: entries added between start() and the first XREAD count.
            info: Any = await self._client.xinfo_stream(key)
            self._ids[key] = info["last-generated-id"].decode()

    async def start(self) -> None:
        """Connect, check the key, backfill (``since``) and start reading.

        Raises:
            RedisUnavailableError: Redis cannot be reached.
            ConfigurationError: The key holds something else than a stream.
        """
        # An explicit socket timeout (redis-py's default differs between versions, none
        # before 8): a read on a connection that died unannounced fails instead of
        # waiting forever, and a reply to XREAD BLOCK is given its block time and more.
        self._client = aioredis.Redis(
            **self.endpoint.redis_py_kwargs(),
            client_name="siotools-sniffer-streams",
            socket_timeout=self.block_ms / 1000 + _SOCKET_MARGIN_S,
        )
        try:
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
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        # Its own reference: close() drops self._client while this may still be in XREAD.
        client = self._client
        assert client is not None
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
                if self.discover and loop.time() >= rescan:
                    rescan = loop.time() + _RESCAN_S
                    for key in await self._siblings():
                        # created after start(): every entry in it is new
                        self._ids.setdefault(key, "0-0")
                ids: dict[Any, Any] = dict(self._ids)
                got: Any = await client.xread(ids, count=_COUNT, block=self.block_ms)
            except (redis.exceptions.ConnectionError, OSError, TimeoutError) as exc:
                self.errors.append(str(exc))
                log.warning("stream %s: %s; reading again", self.stream, exc)
                self.reconnects += 1
                await asyncio.sleep(_RETRY)
                continue
            for key, entries in got or ():
                self._hand(bytes(key), entries)

    def stop(self) -> None:
        """Ask the reader to stop; returns at once (:meth:`close` waits for it)."""
        if self._closing:
            return
        self._closing = True
        if self._task is not None:
            self._task.cancel()

    async def close(self) -> None:
        """Stop reading and close the connection (within a bounded time)."""
        # Bounded waits: a reader whose cancel was lost (see _read) reads until its XREAD
        # returns, and a client closing under a stalled connection must not hold up the
        # capture's stop either.
        self.stop()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait({task}, timeout=_CLOSE_S)
        if self._client is not None:
            closing = asyncio.ensure_future(self._client.aclose())
            done, _ = await asyncio.wait({closing}, timeout=_CLOSE_S)
            if closing in done and not closing.cancelled():
                closing.exception()  # retrieved: a failed close is not worth a warning
            self._client = None
        if task is not None:
            if not task.done():  # in a longer XREAD: the closed connection ends it
                await asyncio.wait({task}, timeout=_CLOSE_S)
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the reader's last error is not worth a warning
