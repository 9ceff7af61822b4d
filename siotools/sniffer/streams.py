"""Live source for @socket.io/redis-streams-adapter: read the adapter's Redis stream.

The streams adapter XADDs its messages to one stream (``streamName``, default
``socket.io``) and every node reads it with ``XREAD BLOCK``. Reading a stream is passive by
nature: it is not a subscription, Redis counts nothing, and no consumer group is created, so
the nodes cannot notice the sniffer. :class:`StreamSource` does the same from ``$`` (what is
added from now on) and, with ``since``, first backfills the entries already in the stream
with ``XRANGE`` (``"-"`` for all of it, or an entry id / a millisecond time).

Each entry is handed to the same raw sink as the pub/sub sources, as a record whose channel
is the stream key and whose payload is :func:`siotools.protocol.streams.pack_record` (the
entry id and field/value bytes as read), so captures, files and the column store keep one
schema; the decoder tells the records apart by their first byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Final

import redis.asyncio as aioredis
import redis.exceptions

from siotools.exceptions import ConfigurationError, RedisUnavailableError
from siotools.protocol.streams import DEFAULT_STREAM, pack_record
from siotools.sniffer.live import RawSink
from siotools.transport.endpoint import RedisEndpoint

__all__ = ["StreamSource", "is_stream"]

log = logging.getLogger("siotools.sniffer")

_BLOCK_MS: Final = 1000
_COUNT: Final = 500
_RETRY: Final = 0.5


async def is_stream(url: str, key: str = DEFAULT_STREAM) -> bool:
    """Whether ``key`` holds a Redis stream (``TYPE``; a read-only look).

    Raises:
        RedisUnavailableError: Redis cannot be reached, or refused TYPE (an ACL).
    """
    client = aioredis.Redis(**RedisEndpoint.from_url(url).redis_py_kwargs())
    try:
        return bool(await client.type(key) == b"stream")
    except (redis.exceptions.ConnectionError, OSError) as exc:
        raise RedisUnavailableError(f"cannot reach Redis to look at key {key!r}: {exc}") from exc
    except redis.exceptions.ResponseError as exc:  # an ACL without +type: cannot tell
        raise RedisUnavailableError(f"Redis refused TYPE {key!r}: {exc}") from exc
    finally:
        await client.aclose()


class StreamSource:
    """One connection reading a stream with ``XREAD BLOCK`` into a raw sink.

    Args:
        url: The Redis URL.
        stream: The stream key (the adapter's ``streamName``).
        sink: Receives ``sink(time_ns, [[b"stream", None, key, payload], ...], False)``.
        since: Backfill first with XRANGE from this id (``"-"``: the whole stream); None
            reads only what is added after :meth:`start`.
        block_ms: How long one XREAD blocks.

    Attributes:
        last_id: The id of the last entry handed over (``$`` before the first).
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
    ) -> None:
        if not stream:
            raise ConfigurationError("the stream key must not be empty")
        self.endpoint = RedisEndpoint.from_url(url)
        self.stream = stream
        self.sink = sink
        self.since = since
        self.block_ms = block_ms
        self.last_id = "$"
        self.errors: list[str] = []
        self.reconnects = 0
        self._key = stream.encode()
        self._client: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None

    def _hand(self, entries: list[Any]) -> None:
        if not entries:
            return
        now = time.time_ns()
        batch: list[list[Any]] = []
        for eid, fields in entries:
            batch.append([b"stream", None, self._key, pack_record(eid, fields.items())])
            self.last_id = eid.decode() if isinstance(eid, bytes) else str(eid)
        self.sink(now, batch, False)

    async def start(self) -> None:
        """Connect, check the key, backfill (``since``) and start reading.

        Raises:
            RedisUnavailableError: Redis cannot be reached.
            ConfigurationError: The key holds something else than a stream.
        """
        self._client = aioredis.Redis(
            **self.endpoint.redis_py_kwargs(), client_name="siotools-sniffer-streams"
        )
        try:
            kind: Any = await self._client.type(self._key)
            if kind not in (b"stream", b"none"):
                raise ConfigurationError(
                    f"key {self.stream!r} holds a {kind.decode()}, not a stream; pass the "
                    "adapter's streamName"
                )
            if self.since is not None:
                start = self.since
                while True:
                    got: Any = await self._client.xrange(self._key, min=start, count=_COUNT)
                    self._hand(got)
                    if len(got) < _COUNT:
                        break
                    start = "(" + self.last_id
            if self.last_id == "$":
                # Pin "$" now: entries added between start() and the first XREAD count.
                info: Any = None
                if kind == b"stream":
                    info = await self._client.xinfo_stream(self._key)
                self.last_id = info["last-generated-id"].decode() if info else "0-0"
        except (redis.exceptions.ConnectionError, OSError) as exc:
            await self.close()
            raise RedisUnavailableError(f"cannot read stream {self.stream!r}: {exc}") from exc
        except BaseException:
            await self.close()
            raise
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._client is not None
        while True:
            try:
                got: Any = await self._client.xread(
                    {self._key: self.last_id}, count=_COUNT, block=self.block_ms
                )
            except (redis.exceptions.ConnectionError, OSError, TimeoutError) as exc:
                self.errors.append(str(exc))
                log.warning("stream %s: %s; reading again", self.stream, exc)
                self.reconnects += 1
                await asyncio.sleep(_RETRY)
                continue
            for _key, entries in got or ():
                self._hand(entries)

    async def close(self) -> None:
        """Stop reading and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None
