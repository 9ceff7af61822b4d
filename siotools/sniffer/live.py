"""Live sources: one passive Redis connection that hands raw messages to a sink.

The default source is a single connection with ``PSUBSCRIBE`` on the prefix's patterns
(:meth:`ChannelGrammar.sniffer_patterns`). Pattern subscriptions are not counted by
``PUBSUB NUMSUB``, which the Node adapters use to know how many answers to wait for, so the
sniffer is invisible to the cluster. ``SUBSCRIBE``/``SSUBSCRIBE`` are never used: they are
counted, and every requester in the cluster would then wait for an answer that never comes.

The MONITOR source sees ``SPUBLISH`` too (sharded pub/sub has no pattern subscriptions) at
a real cost on the server. Both sources call ``sink(time_ns, batch, sharded)`` where
``batch`` is a list of ``[kind, pattern, channel, payload]`` replies that arrived together
(one socket read, one timestamp); handing them over in batches keeps the per-message cost
to a few list appends.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Final

from siotools.protocol import ChannelGrammar, ChannelKind, glob_escape, grammar
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.monitor import Monitor
from siotools.transport.pubsub import Subscriber

__all__ = [
    "MONITOR_WARNING",
    "LiveSource",
    "RawSink",
    "gc_paused",
    "gc_relaxed",
    "patterns_for",
]

log = logging.getLogger("siotools.sniffer")

RawSink = Callable[[int, list[list[bytes]], bool], None]
"""``sink(time_ns, [[kind, pattern, channel, payload], ...], sharded)``."""

MONITOR_WARNING: Final = (
    "MONITOR makes Redis format every command of every client for this connection; "
    "it can halve the server's throughput. Use it briefly, and not on a busy production server."
)

# Young-generation collections walk every object allocated since the last one; at 150k
# messages/s the default threshold (700) triggers a collection every few milliseconds for
# objects (hiredis reply lists) that die young anyway. perf-anchors measured 128k -> 318k
# msgs/s for the append loop with the threshold at 100k.
_GC_THRESHOLD: Final = 100_000
_TICK: Final = 0.1
_STALL_NS: Final = 500_000_000
"""A loop that did not run for this long was stalled (five missed ticks)."""
_STALL_RECENT_NS: Final = 2_000_000_000
"""A loss this soon after a stall ended was caused by it."""
_gc_users = 0
_gc_saved: tuple[int, int, int] | None = None


def gc_relaxed(on: bool) -> None:
    """Raise (``on=True``) or restore the young-generation GC threshold; reference-counted."""
    global _gc_users, _gc_saved
    if on:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(_GC_THRESHOLD, _gc_saved[0]), *_gc_saved[1:])
        _gc_users += 1
    elif _gc_users > 0:
        _gc_users -= 1
        if _gc_users == 0 and _gc_saved is not None:
            gc.set_threshold(*_gc_saved)
            _gc_saved = None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (restored after, even on errors).

    For bulk decoding: every row allocates containers that all survive (a decoded
    capture's objects are trees, never cycles), so each collection would re-walk the
    growing heap for nothing; a million rows spent a third of their time there.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def patterns_for(prefix: str, pysocketio: str | None) -> list[bytes]:
    """The PSUBSCRIBE patterns of a prefix (plus python-socketio's channel, literally)."""
    pats = [p.encode() for p in ChannelGrammar(prefix).sniffer_patterns()]
    if pysocketio:
        pats.append(glob_escape(pysocketio).encode())
    return pats


class LiveSource:
    """One passive connection (PSUBSCRIBE or MONITOR) feeding a raw sink.

    A reconnect is a gap: traffic published while the connection was down (or, when Redis
    kicked a slow subscriber for its output buffer, while the kicked buffer was dropped) was
    not seen. Its real span runs from the last message received before the loss to the first
    one received after resubscription; until that first message arrives, the end is the
    resubscription time. When the process was stalled just before the loss (a blocked loop,
    a stopped process: what makes Redis kick a reader), the gap starts when the stall began:
    what was read from the socket's buffers after it is stale, and the rest was dropped.
    ``on_gap(start_ns, end_ns)`` is called at resubscription and again
    when the first message moves the end.

    Args:
        url: The Redis URL (a single Redis), or its endpoint.
        prefix: The adapters' key.
        sink: Receives every message of the prefix.
        pysocketio: python-socketio's channel to watch too, or None.
        monitor: Use MONITOR instead of PSUBSCRIBE (sees SPUBLISH; costly).
        on_gap: Called with ``(start_ns, end_ns)`` of a gap (see above).

    Attributes:
        gaps: ``(start_ns, end_ns)`` of every gap so far.
        errors: The connection errors seen, as text.
    """

    def __init__(
        self,
        url: str | RedisEndpoint,
        prefix: str,
        sink: RawSink,
        *,
        pysocketio: str | None = None,
        monitor: bool = False,
        on_gap: Callable[[int, int], None] | None = None,
    ) -> None:
        self.endpoint = url if isinstance(url, RedisEndpoint) else RedisEndpoint.from_url(url)
        self.prefix = prefix
        self.sink = sink
        self.pysocketio = pysocketio
        self.monitor = monitor
        self._on_gap = on_gap
        self._lost_ns: int | None = None
        self._last_ns: int | None = None
        self._open_gap = False
        self._tick_ns = time.time_ns()
        self._fresh_ns = 0
        """When the last message read while the loop kept time arrived."""
        self._stall: tuple[int, int] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._sub: Subscriber | None = None
        self._mon: Monitor | None = None
        self.gaps: list[tuple[int, int]] = []
        self.errors: list[str] = []

    @property
    def reconnects(self) -> int:
        """How many times the connection was re-established."""
        conn = self._sub or self._mon
        return conn.reconnects if conn is not None else 0

    async def _tick(self) -> None:
        # A clock the loop only advances when it runs: a late tick is a stall.
        while True:
            await asyncio.sleep(_TICK)
            now = time.time_ns()
            if now - self._tick_ns > _STALL_NS:
                self._stall = (max(self._tick_ns, self._fresh_ns), now)
            self._tick_ns = now

    def _loss_start(self, now: int) -> int:
        # The stall began after the last tick and after the last message read in time.
        if now - self._tick_ns > _STALL_NS:  # stalled until this very callback
            return max(self._tick_ns, self._fresh_ns)
        if self._stall is not None and now - self._stall[1] < _STALL_RECENT_NS:
            return self._stall[0]
        return self._last_ns if self._last_ns is not None else now

    def _error(self, exc: BaseException) -> None:
        if self._lost_ns is None:
            # The loss began after the last message that made it (when Redis kicks a slow
            # reader, everything in its dropped output buffer was lost before the error),
            # or when the stall that got it kicked began.
            self._lost_ns = self._loss_start(time.time_ns())
        self.errors.append(str(exc))
        log.warning("sniffer: %s", exc)

    def _reconnected(self) -> None:
        now = time.time_ns()
        self._stall = None
        lost, self._lost_ns = self._lost_ns, None
        self.gaps.append((lost if lost is not None else now, now))
        self._open_gap = True
        log.warning("sniffer: resubscribed after a reconnect; traffic in between was missed")
        if self._on_gap is not None:
            self._on_gap(*self.gaps[-1])

    def _first_after_gap(self, now: int) -> None:
        self._open_gap = False
        start, _ = self.gaps[-1]
        self.gaps[-1] = (start, max(now, start))
        if self._on_gap is not None:
            self._on_gap(*self.gaps[-1])

    async def start(self) -> None:
        """Connect and subscribe; returns once Redis confirmed.

        Raises:
            RedisUnavailableError: Redis cannot be reached.
            ConfigurationError: The URL is invalid.
        """
        if self.monitor:
            warnings.warn(MONITOR_WARNING, RuntimeWarning, stacklevel=3)
            self._mon = Monitor(
                self.endpoint,
                self._on_command,
                name="siotools-sniffer-monitor",
                on_error=self._error,
                on_reconnect=self._reconnected,
            )
            await self._mon.start()
            self._start_ticker()
            return
        self._sub = Subscriber(
            self.endpoint,
            on_batch=self._on_batch,
            name="siotools-sniffer",
            on_error=self._error,
            on_reconnect=self._reconnected,
        )
        # Patterns are remembered before start() so that the first connect sends them.
        self._sub.patterns.update(patterns_for(self.prefix, self.pysocketio))
        await self._sub.start()
        self._start_ticker()

    def _start_ticker(self) -> None:
        self._tick_ns = time.time_ns()
        self._ticker = asyncio.create_task(self._tick())

    def _on_batch(self, now: int, batch: list[list[bytes]]) -> None:
        self._last_ns = now
        if now - self._tick_ns <= _STALL_NS:
            self._fresh_ns = now
        if self._open_gap:
            self._first_after_gap(now)
        if batch[0][0] == b"pmessage":
            self.sink(now, batch, False)
        else:  # plain "message" replies cannot happen: the tap never SUBSCRIBEs
            self.sink(now, [[b"message", b"", r[1], r[2]] for r in batch], False)

    def _on_command(self, ts: float, args: list[bytes]) -> None:
        if len(args) != 3:
            return
        verb = args[0].upper()
        if verb == b"PUBLISH":
            sharded = False
        elif verb == b"SPUBLISH":
            sharded = True
        else:
            return
        channel = args[1]
        if not (self.pysocketio and channel == self.pysocketio.encode()):
            kind = grammar(self.prefix).parse(channel).kind
            if kind is ChannelKind.UNKNOWN or kind is ChannelKind.PYSOCKETIO:
                return
        now = int(ts * 1e9)
        self._last_ns = now
        if time.time_ns() - self._tick_ns <= _STALL_NS:
            self._fresh_ns = now
        if self._open_gap:
            self._first_after_gap(now)
        self.sink(now, [[verb, b"", channel, args[2]]], sharded)

    async def close(self) -> None:
        """Unsubscribe and close the connection."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._sub is not None:
            await self._sub.close()
        if self._mon is not None:
            await self._mon.close()
