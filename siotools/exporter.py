"""A Prometheus exporter for a whole Socket.IO cluster, fed by the passive sniffer.

Per-process exporters count one node's sockets; this one counts what the cluster says on
Redis: messages and bytes by namespace, event and room, broadcasts and requests by type,
request latency (from a request to its last answer), unanswered requests, malformed frames,
dialects, nodes per namespace, and the sniffer's own health. It listens with one
``PSUBSCRIBE`` connection (never counted by NUMSUB) and reads ``PUBSUB`` counts every few
seconds; it publishes nothing. On a Redis Cluster (``?cluster=true``), where ``PUBSUB`` is
node-local, the counts are read on every master and summed (as
:class:`~siotools.ClusterClient`'s detection does), and the listen follows failovers.

Rooms and events are unbounded in a cluster (socket ids are rooms), so their labels are
bounded: the ``top`` busiest (tracked with a Space-Saving sketch) get a label each, every
other message counts under ``room="other"``. A labelled room idle for ``evict_after``
seconds gives its label up. Every series stays monotonic.

    exporter = Exporter("redis://127.0.0.1:6379/0", prefix="socket.io")
    await exporter.serve("127.0.0.1:9464")      # until cancelled

Needs ``prometheus_client`` (``pip install 'siotools[metrics]'``). The Grafana dashboard
:data:`DASHBOARD` (``grafana-dashboard.json`` next to this module) charts every metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final

from siotools._extras import require
from siotools.dialects.answers import counts_as_answer, expectation
from siotools.dialects.detect import PubSubSnapshot, clues, snapshot_across
from siotools.exceptions import ConfigurationError, DecodeError, RedisUnavailableError
from siotools.protocol import Broadcast, ChannelGrammar, ChannelKind, Frame, decode, heard_as
from siotools.requester import AnyPublisher, Transport, command_runners
from siotools.sniffer.frames import describe
from siotools.sniffer.live import LiveSource
from siotools.sniffer.sharded import ClusterPubSubSource, SnifferSource

__all__ = ["DASHBOARD", "METRICS", "Exporter", "TopN", "dashboard", "parse_listen"]

DASHBOARD: Final = "grafana-dashboard.json"
"""The Grafana dashboard's file name, package data of ``siotools``."""

OTHER: Final = "other"
"""The label of every room or event without a label of its own."""
ALL_ROOMS: Final = "(namespace)"
"""The room label of namespace-wide broadcasts (no room)."""
_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

METRICS: Final[dict[str, tuple[str, str]]] = {
    # name (without the _total of counters) -> (type, help)
    "siotools_messages": ("counter", "Messages heard on the prefix, by namespace, kind, dialect."),
    "siotools_message_bytes": ("counter", "Payload bytes heard, by namespace and kind."),
    "siotools_event_messages": ("counter", "Broadcasts by namespace and event (top N + other)."),
    "siotools_room_messages": ("counter", "Broadcasts by namespace and room (top N + other)."),
    "siotools_room_bytes": ("counter", "Broadcast bytes by namespace and room (top N + other)."),
    "siotools_broadcasts": (
        "counter",
        "Broadcasts by namespace and target (namespace, room, rooms, with except).",
    ),
    "siotools_requests": ("counter", "Cluster requests by namespace and type."),
    "siotools_responses": ("counter", "Answers to cluster requests, by namespace."),
    "siotools_requests_unanswered": (
        "counter",
        "Requests that got fewer answers than their requester waits for, by type.",
    ),
    "siotools_request_duration_seconds": (
        "histogram",
        "Seconds from a request to its last expected answer, by namespace and type.",
    ),
    "siotools_requests_pending": ("gauge", "Requests still waiting for answers."),
    "siotools_malformed_frames": ("counter", "Messages on the prefix that did not decode."),
    "siotools_dialect_messages": ("counter", "Messages by dialect."),
    "siotools_nodes": ("gauge", "Nodes per namespace (NUMSUB of the request channel)."),
    "siotools_sharded_nodes": ("gauge", "Sharded nodes per namespace (SHARDNUMSUB)."),
    "siotools_pattern_subscriptions": ("gauge", "PUBSUB NUMPAT of the whole server."),
    "siotools_sniffer_lag_seconds": (
        "gauge",
        "How late the exporter's event loop ran its last tick (processing lag).",
    ),
    "siotools_sniffer_reconnects": ("counter", "Reconnects of the sniffing connection."),
    "siotools_sniffer_gaps": ("counter", "Periods the sniffer was disconnected (traffic lost)."),
    "siotools_sniffer_gap_seconds": ("counter", "Seconds the sniffer was disconnected."),
    "siotools_label_overflow": (
        "counter",
        "Messages counted under 'other' because their room or event had no label.",
    ),
    "siotools_up": ("gauge", "1 while the exporter is connected to Redis."),
}


def metric_names(table: Mapping[str, tuple[str, str]] = METRICS) -> set[str]:
    """Every sample name the exporter can expose (``_total``, ``_bucket``... included);
    of another table of families (``siotools.metrics.NODE_METRICS``) when given."""
    out = set()
    for name, (kind, _) in table.items():
        if kind == "counter":
            out |= {name + "_total", name + "_created"}
        elif kind == "histogram":
            out |= {name + s for s in ("_bucket", "_sum", "_count", "_created")}
        else:
            out.add(name)
    return out


def dashboard() -> dict[str, Any]:
    """The shipped Grafana dashboard, parsed."""
    import json

    text = resources.files("siotools").joinpath(DASHBOARD).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` -> ``("127.0.0.1", 9464)`` (``":9464"`` listens on 127.0.0.1).

    Raises:
        ConfigurationError: Not ``HOST:PORT``.
    """
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    try:
        number = int(port)
    except ValueError:
        raise ConfigurationError(f"--listen {text!r} is not HOST:PORT") from None
    if not 0 <= number <= 65535:
        raise ConfigurationError(f"--listen port {number} is not a TCP port")
    return host.strip("[]") or "127.0.0.1", number


class TopN:
    """Bounded labels for an unbounded key set: the busiest ``top`` keys get a label.

    Candidates are counted in a bounded sketch of ``8 * top`` entries, a batched variant
    of Space-Saving (Metwally et al. 2005): when it is full, the lower half by count is
    dropped at once, and a key that enters afterwards starts at the highest count dropped,
    counted as its error (so eviction costs one sort per ``4 * top`` new keys, not a scan
    per key). A free label goes to a candidate once its guaranteed count (count minus
    error) reaches ``admit``; a labelled key idle for ``evict_after`` seconds frees its
    label. Messages of a key before it got its label stay counted under ``other``.

    Args:
        top: How many labels.
        admit: Guaranteed count a candidate needs for a label (1: the first keys seen
            while labels are free get them).
        evict_after: Seconds of silence after which a label is freed.
    """

    __slots__ = (
        "_floor",
        "_last",
        "_sketch",
        "admit",
        "capacity",
        "evict_after",
        "labelled",
        "top",
    )

    def __init__(self, top: int = 50, *, admit: int = 3, evict_after: float = 600.0) -> None:
        if top < 1 or admit < 1:
            raise ConfigurationError("top and admit must be at least 1")
        self.top = top
        self.admit = admit
        self.evict_after = evict_after
        self.capacity = 8 * top
        self.labelled: set[Any] = set()
        self._sketch: dict[Any, list[int]] = {}  # key -> [count, error]
        self._floor = 0
        self._last: dict[Any, float] = {}

    def label(self, key: Any, now: float) -> Any:
        """The label to count ``key`` under: itself when labelled, else :data:`OTHER`."""
        if key in self.labelled:
            self._last[key] = now
            return key
        sketch = self._sketch
        entry = sketch.get(key)
        if entry is None:
            if len(sketch) >= self.capacity:
                self._shrink()
            entry = sketch[key] = [self._floor, self._floor]
        entry[0] += 1
        if entry[0] - entry[1] >= self.admit and len(self.labelled) < self.top:
            self.labelled.add(key)
            del sketch[key]
            self._last[key] = now
            return key
        return OTHER

    def _shrink(self) -> None:
        ranked = sorted(self._sketch.items(), key=lambda kv: kv[1][0], reverse=True)
        keep = self.capacity // 2
        if len(ranked) > keep:
            self._floor = max(self._floor, ranked[keep][1][0])
        self._sketch = dict(ranked[:keep])

    def evict(self, now: float) -> list[Any]:
        """Free the labels of keys idle for ``evict_after``; returns them."""
        gone = [k for k, t in self._last.items() if now - t > self.evict_after]
        for key in gone:
            self.labelled.discard(key)
            del self._last[key]
        return gone


@dataclass(slots=True)
class _Pending:
    nsp: str
    name: str
    seen: float
    expected: int | None
    answers: int = 0


def _target(frame: Broadcast) -> str:
    rooms = frame.rooms or ()
    excepts = frame.except_ or ()
    base = "namespace" if not rooms else ("room" if len(rooms) == 1 else "rooms")
    return base + ("+except" if excepts else "")


@dataclass(slots=True)
class _State:
    messages: dict[tuple[str, str, str], int] = field(default_factory=dict)
    bytes_: dict[tuple[str, str], int] = field(default_factory=dict)
    events: dict[tuple[str, str], int] = field(default_factory=dict)
    rooms: dict[tuple[str, str], int] = field(default_factory=dict)
    room_bytes: dict[tuple[str, str], int] = field(default_factory=dict)
    broadcasts: dict[tuple[str, str], int] = field(default_factory=dict)
    requests: dict[tuple[str, str], int] = field(default_factory=dict)
    responses: dict[str, int] = field(default_factory=dict)
    unanswered: dict[tuple[str, str], int] = field(default_factory=dict)
    dialects: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    overflow: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    gap_seconds: float = 0.0


class Exporter:
    """Cluster metrics from the passive sniffer, as a ``prometheus_client`` collector.

    Args:
        url: The Redis URL (``?cluster=true``: a node of a Redis Cluster).
        prefix: The adapters' key.
        top_rooms: Room labels per exporter (the rest is ``other``).
        top_events: Event labels per exporter.
        admit: Messages a room or event needs before it gets a label (see :class:`TopN`).
        request_timeout: Seconds after which a request short of answers counts as
            unanswered (Node's default ``requestsTimeout`` is 5 s).
        refresh: Seconds between ``PUBSUB`` reads (nodes per namespace).
        registry: The ``prometheus_client`` registry to register with (a new one if None).
        cluster: ``True``: ``url`` names a node of a Redis Cluster (as ``?cluster=true``
            does), ``False`` a single Redis; ``None`` reads the URL.

    Raises:
        MissingExtraError: ``prometheus_client`` is not installed.
        ConfigurationError: Bad URL or arguments.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "socket.io",
        *,
        top_rooms: int = 50,
        top_events: int = 50,
        admit: int = 3,
        request_timeout: float = 5.0,
        refresh: float = 5.0,
        registry: Any = None,
        cluster: bool | None = None,
    ) -> None:
        prom = require("prometheus_client", "metrics")
        if request_timeout <= 0 or refresh <= 0:
            raise ConfigurationError("request_timeout and refresh must be positive seconds")
        self.url = url
        self._transport = Transport(url, cluster=cluster)
        self.endpoint = self._transport.endpoint
        self.cluster = self._transport.cluster
        self.prefix = prefix or "socket.io"
        self.grammar = ChannelGrammar(self.prefix)
        self.request_timeout = float(request_timeout)
        self.refresh = float(refresh)
        self.rooms = TopN(top_rooms, admit=admit)
        self.events = TopN(top_events, admit=admit)
        self._s = _State()
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._last_gap: tuple[int, int] | None = None
        self._max_pending = 100_000
        self._snap: PubSubSnapshot | None = None
        self._lag = 0.0
        self._source: SnifferSource | None = None
        self._publisher: AnyPublisher | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._server: Any = None
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        self._latency = prom.Histogram(
            "siotools_request_duration_seconds",
            METRICS["siotools_request_duration_seconds"][1],
            ["nsp", "type"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Collector(self))

    @property
    def heard(self) -> int:
        """Messages of the prefix counted so far (malformed ones included)."""
        with self._lock:
            return sum(self._s.messages.values()) + self._s.malformed

    # ------------------------------------------------------------------ feeding

    def feed(self, now_ns: int, channel: bytes, payload: bytes, sharded: bool = False) -> None:
        """Count one message heard at ``now_ns`` (the sniffer calls this per message;
        ``sharded``: heard as an SPUBLISH)."""
        with self._lock:
            self._feed(now_ns, channel, payload, sharded)

    def _sink(self, now_ns: int, batch: list[list[bytes]], sharded: bool) -> None:
        with self._lock:
            for reply in batch:
                self._feed(now_ns, reply[2], reply[3], sharded)

    def _feed(self, now_ns: int, channel: bytes, payload: bytes, sharded: bool = False) -> None:
        s = self._s
        g = self.grammar
        ch = g.parse(channel)
        if ch.kind is ChannelKind.UNKNOWN or ch.kind is ChannelKind.PYSOCKETIO:
            return
        try:
            frame = heard_as(decode(channel, payload, prefix=g.prefix), sharded=sharded)
        except DecodeError:
            s.malformed += 1
            return
        if type(frame) is Broadcast:
            nsp = frame.nsp or ch.nsp or "/"
            kind = "broadcast"
            row_type = None
        else:
            row = describe(frame)
            nsp = row.nsp or ch.nsp or "/"
            kind = row.kind
            row_type = row.type
        key3 = (nsp, kind, frame.dialect.value)
        s.messages[key3] = s.messages.get(key3, 0) + 1
        key2 = (nsp, kind)
        s.bytes_[key2] = s.bytes_.get(key2, 0) + len(payload)
        s.dialects[frame.dialect.value] = s.dialects.get(frame.dialect.value, 0) + 1
        now = now_ns / 1e9
        if isinstance(frame, Broadcast):
            self._broadcast(frame, nsp, len(payload), now)
        elif kind == "request":
            self._request(frame, nsp, row_type or "unknown", now)
        elif kind == "response":
            s.responses[nsp] = s.responses.get(nsp, 0) + 1
            self._answer(frame, now)

    def _broadcast(self, frame: Broadcast, nsp: str, size: int, now: float) -> None:
        s = self._s
        target = _target(frame)
        s.broadcasts[(nsp, target)] = s.broadcasts.get((nsp, target), 0) + 1
        event = frame.data[0] if frame.data else None
        ev = self.events.label((nsp, str(event)), now)
        ekey = (nsp, OTHER) if ev == OTHER else ev
        if ev == OTHER:
            s.overflow["event"] = s.overflow.get("event", 0) + 1
        s.events[ekey] = s.events.get(ekey, 0) + 1
        rooms = frame.rooms or ()
        for room in rooms or (ALL_ROOMS,):
            lab = self.rooms.label((nsp, str(room)), now)
            rkey = (nsp, OTHER) if lab == OTHER else lab
            if lab == OTHER:
                s.overflow["room"] = s.overflow.get("room", 0) + 1
            s.rooms[rkey] = s.rooms.get(rkey, 0) + 1
            s.room_bytes[rkey] = s.room_bytes.get(rkey, 0) + size

    def _request(self, frame: Frame, nsp: str, kind: str, now: float) -> None:
        s = self._s
        exp = expectation(frame, self._numsub(nsp))
        name = exp.name if exp is not None else kind
        s.requests[(nsp, name)] = s.requests.get((nsp, name), 0) + 1
        if exp is None or exp.request_id in self._pending:
            return
        if exp.expected == 0:
            self._latency.labels(nsp, name).observe(0.0)
            return
        if len(self._pending) >= self._max_pending:
            return
        self._pending[exp.request_id] = _Pending(nsp, name, now, exp.expected)

    def _answer(self, frame: Frame, now: float) -> None:
        request_id = counts_as_answer(frame)
        if request_id is None:
            return
        p = self._pending.get(request_id)
        if p is None:
            return
        p.answers += 1
        if p.expected is None or p.answers >= p.expected:
            del self._pending[request_id]
            self._latency.labels(p.nsp, p.name).observe(max(0.0, now - p.seen))

    def _numsub(self, nsp: str) -> int:
        snap = self._snap
        if snap is None:
            return 0
        return snap.channels.get(self.grammar.request(nsp), 0)

    def sweep(self, now: float | None = None) -> int:
        """Count the requests older than ``request_timeout`` short of answers as unanswered
        (single-socket requests nobody answered are "not found", not counted); returns how
        many were retired.

        Also frees the labels of idle rooms and events.
        """
        now = time.time() if now is None else now
        with self._lock:
            late = [rid for rid, p in self._pending.items() if now - p.seen > self.request_timeout]
            for rid in late:
                p = self._pending.pop(rid)
                if p.expected is None:
                    continue  # a single-socket request nobody answered: socket not found
                key = (p.nsp, p.name)
                self._s.unanswered[key] = self._s.unanswered.get(key, 0) + 1
            for key in self.rooms.evict(now):
                self._s.rooms.pop(key, None)
                self._s.room_bytes.pop(key, None)
            for key in self.events.evict(now):
                self._s.events.pop(key, None)
        return len(late)

    # ------------------------------------------------------------------ running

    def _gap(self, lost_ns: int, back_ns: int) -> None:
        # A source reports a gap at resubscription, then again (same start) when its first
        # message moves the end: one gap, its seconds grown by the move.
        with self._lock:
            last = self._last_gap
            if last is not None and last[0] == lost_ns:
                self._s.gap_seconds += max(0, back_ns - last[1]) / 1e9
            else:
                self._s.gaps += 1
                self._s.gap_seconds += max(0, back_ns - lost_ns) / 1e9
            self._last_gap = (lost_ns, max(back_ns, lost_ns))

    async def refresh_counts(self) -> None:
        """Read ``PUBSUB`` counts now (nodes per namespace, NUMPAT), on every master of a
        Redis Cluster."""
        if self._publisher is None:
            return
        snap = await snapshot_across(command_runners(self._publisher), self.prefix)
        with self._lock:
            self._snap = snap

    async def start(self) -> None:
        """Connect the sniffer and the counting connection, start the periodic work.

        Raises:
            RedisUnavailableError: Redis cannot be reached.
        """
        self._publisher = self._transport.publisher(None, name="siotools-exporter", on_error=None)
        await self._publisher.start()
        await self.refresh_counts()
        source: SnifferSource
        if self.cluster:
            # PSUBSCRIBE on one node hears every PUBLISH; it moves on when that node dies.
            source = ClusterPubSubSource(self.endpoint, self.prefix, self._sink, on_gap=self._gap)
        else:
            source = LiveSource(self.endpoint, self.prefix, self._sink, on_gap=self._gap)
        self._source = source
        await source.start()
        self._tasks = [
            asyncio.create_task(self._every(self.refresh, self._refresh_safely)),
            asyncio.create_task(self._every(0.5, self._tick)),
        ]

    async def _refresh_safely(self) -> None:
        with contextlib.suppress(RedisUnavailableError):
            await self.refresh_counts()

    async def _tick(self) -> None:
        self.sweep()

    async def _every(self, seconds: float, what: Any) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + seconds
            await asyncio.sleep(seconds)
            self._lag = max(0.0, loop.time() - due)
            await what()

    def listen(self, host: str = "127.0.0.1", port: int = 9464) -> int:
        """Serve ``/metrics`` over HTTP (a ``prometheus_client`` server thread).

        Returns:
            The port (useful with ``port=0``).
        """
        prom = require("prometheus_client", "metrics")
        server, _thread = prom.start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_port)

    async def serve(self, listen: str = "127.0.0.1:9464") -> None:
        """Start, serve ``/metrics`` on ``listen`` and run until cancelled; then close."""
        host, port = parse_listen(listen)
        await self.start()
        try:
            self.listen(host, port)
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop the HTTP server, the periodic work and the connections."""
        if self._server is not None:
            await asyncio.to_thread(self._server.shutdown)
            self._server.server_close()
            self._server = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._source is not None:
            await self._source.close()
            self._source = None
        if self._publisher is not None:
            await self._publisher.close()
            self._publisher = None

    async def __aenter__(self) -> Exporter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ exposition

    def collect(self) -> Iterator[Any]:
        """The metric families (what ``prometheus_client`` calls at each scrape)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        with self._lock:
            s = self._s
            messages = dict(s.messages)
            bytes_ = dict(s.bytes_)
            events = dict(s.events)
            rooms = dict(s.rooms)
            room_bytes = dict(s.room_bytes)
            broadcasts = dict(s.broadcasts)
            requests = dict(s.requests)
            responses = dict(s.responses)
            unanswered = dict(s.unanswered)
            dialects = dict(s.dialects)
            overflow = dict(s.overflow)
            malformed, gaps, gap_seconds = s.malformed, s.gaps, s.gap_seconds
            pending = len(self._pending)
            snap = self._snap

        def counter(name: str, labels: list[str], values: Mapping[Any, float]) -> Any:
            fam = CounterMetricFamily(name, METRICS[name][1], labels=labels)
            for key, value in values.items():
                fam.add_metric(list(key) if isinstance(key, tuple) else [key], value)
            return fam

        def gauge(name: str, labels: list[str], values: Mapping[Any, float]) -> Any:
            fam = GaugeMetricFamily(name, METRICS[name][1], labels=labels)
            for key, value in values.items():
                fam.add_metric(list(key) if isinstance(key, tuple) else [key], value)
            return fam

        yield counter("siotools_messages", ["nsp", "kind", "dialect"], messages)
        yield counter("siotools_message_bytes", ["nsp", "kind"], bytes_)
        yield counter("siotools_event_messages", ["nsp", "event"], events)
        yield counter("siotools_room_messages", ["nsp", "room"], rooms)
        yield counter("siotools_room_bytes", ["nsp", "room"], room_bytes)
        yield counter("siotools_broadcasts", ["nsp", "target"], broadcasts)
        yield counter("siotools_requests", ["nsp", "type"], requests)
        yield counter("siotools_responses", ["nsp"], responses)
        yield counter("siotools_requests_unanswered", ["nsp", "type"], unanswered)
        yield counter("siotools_dialect_messages", ["dialect"], dialects)
        yield counter("siotools_label_overflow", ["label"], overflow)
        yield counter("siotools_malformed_frames", [], {(): malformed})
        yield counter("siotools_sniffer_gaps", [], {(): gaps})
        yield counter("siotools_sniffer_gap_seconds", [], {(): gap_seconds})
        source = self._source
        reconnects = source.reconnects if source is not None else 0
        yield counter("siotools_sniffer_reconnects", [], {(): reconnects})
        yield gauge("siotools_requests_pending", [], {(): pending})
        yield gauge("siotools_sniffer_lag_seconds", [], {(): self._lag})
        yield gauge("siotools_up", [], {(): 1 if source is not None and self._connected() else 0})
        nodes: dict[Any, float] = {}
        sharded: dict[Any, float] = {}
        numpat = 0
        if snap is not None:
            numpat = snap.numpat
            for nsp, c in clues(snap).items():
                if c.request_subscribers:
                    nodes[(nsp,)] = c.request_subscribers
                if c.sharded_subscribers:
                    sharded[(nsp,)] = c.sharded_subscribers
        yield gauge("siotools_nodes", ["nsp"], nodes)
        yield gauge("siotools_sharded_nodes", ["nsp"], sharded)
        yield gauge("siotools_pattern_subscriptions", [], {(): numpat})

    def _connected(self) -> bool:
        pub = self._publisher
        return pub is not None and pub.connected


class _Collector:
    """Adapts :meth:`Exporter.collect` to the registry's collector protocol."""

    def __init__(self, exporter: Exporter) -> None:
        self._exporter = exporter

    def collect(self) -> Iterator[Any]:
        return self._exporter.collect()
