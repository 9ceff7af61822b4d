"""What one cluster node did on Redis: counters kept by the adapter, read as a snapshot.

The cluster exporter (:mod:`siotools.exporter`) hears the whole prefix from outside; this
module is the node's own account, kept by :class:`~siotools.AsyncRedisAdapter` and
:class:`~siotools.RedisAdapter` as they work: messages and bytes it published and received
by kind and namespace, how far the broadcasts it received fanned out to its sockets, the
cluster requests it sent (by type, with the time from request to last answer, and the
timeouts), malformed and ignored frames, lost and restored links, its subscriptions.

``adapter.metrics`` returns a :class:`NodeMetrics`, a frozen copy made on the spot (no
lock, no I/O); :class:`NodeCollector` turns it into ``siotools_node_*`` Prometheus
families at each scrape::

    from prometheus_client import REGISTRY
    REGISTRY.register(siotools.NodeCollector(adapter))

The counting is a few integer additions per message on the paths that carry broadcasts
(a cell per ``(kind, namespace)`` is looked up when a channel is subscribed, not per
message); requests, which are rarer, are classified by parsing their channel.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol

from siotools._extras import require
from siotools.dialects.base import Route
from siotools.protocol import ChannelGrammar

__all__ = [
    "FANOUT_BUCKETS",
    "LATENCY_BUCKETS",
    "MAX_NAMESPACES",
    "NODE_METRICS",
    "OTHER_NAMESPACE",
    "Histogram",
    "MetricsRecorder",
    "NodeCollector",
    "NodeMetrics",
    "RequestFigures",
    "Traffic",
]

LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds) of the request latency histogram (the exporter's, and 10 s)."""

FANOUT_BUCKETS: Final = (0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000)
"""Upper bounds (sockets) of the fan-out histogram: local sockets per received broadcast."""

MAX_NAMESPACES: Final = 64
"""Namespaces with figures of their own; later ones count under :data:`OTHER_NAMESPACE`
(dynamic namespaces are unbounded; a metric label must not be)."""

OTHER_NAMESPACE: Final = "(other)"
"""The namespace of every figure beyond :data:`MAX_NAMESPACES` namespaces."""

_SMALL_FANOUT: Final = 1024
_FANOUT_INDEX: Final = tuple(bisect.bisect_left(FANOUT_BUCKETS, n) for n in range(_SMALL_FANOUT))

_KIND_OF_ROUTE: Final = {
    Route.BROADCAST: "broadcast",
    Route.REQUEST: "request",
    Route.RESPONSE: "response",
}

NODE_METRICS: Final[dict[str, tuple[str, str]]] = {
    # name (without the _total of counters) -> (type, help)
    "siotools_node_messages_published": (
        "counter",
        "Messages this node published, by kind (broadcast, request, response) and namespace.",
    ),
    "siotools_node_published_bytes": ("counter", "Payload bytes published, by kind and namespace."),
    "siotools_node_messages_received": (
        "counter",
        "Messages this node received from Redis (its own echoes included), by kind and namespace.",
    ),
    "siotools_node_received_bytes": ("counter", "Payload bytes received, by kind and namespace."),
    "siotools_node_broadcasts_delivered": (
        "counter",
        "Broadcasts from other nodes handed to this node's sockets.",
    ),
    "siotools_node_sockets_reached": (
        "counter",
        "Local sockets reached by broadcasts from other nodes.",
    ),
    "siotools_node_fanout": ("histogram", "Local sockets reached per delivered broadcast."),
    "siotools_node_requests": (
        "counter",
        "Cluster requests this node sent, by type and namespace.",
    ),
    "siotools_node_request_timeouts": (
        "counter",
        "Requests of this node that timed out before every answer arrived, by type.",
    ),
    "siotools_node_request_failures": (
        "counter",
        "Requests of this node that failed otherwise (not found, a bad answer), by type.",
    ),
    "siotools_node_request_duration_seconds": (
        "histogram",
        "Seconds from a request of this node to its last answer, by type and namespace.",
    ),
    "siotools_node_pending_requests": ("gauge", "Requests of this node waiting for answers."),
    "siotools_node_malformed_frames": ("counter", "Messages received that did not decode."),
    "siotools_node_ignored_frames": ("counter", "Messages received and ignored, by reason."),
    "siotools_node_errors": ("counter", "Errors reported to the adapter's error callbacks."),
    "siotools_node_link_events": (
        "counter",
        "Subscriber link events (lost, restored).",
    ),
    "siotools_node_reconnects": ("counter", "Reconnects, by connection (pub, sub)."),
    "siotools_node_subscriptions": (
        "gauge",
        "Subscriptions held, by type (channel, pattern, shard_channel).",
    ),
}
"""Every ``siotools_node_*`` family :class:`NodeCollector` exposes."""


@dataclass(frozen=True, slots=True)
class Traffic:
    """Messages and payload bytes of one kind in one namespace.

    Attributes:
        messages: How many messages.
        bytes: Their payload bytes (the channel name not included).
    """

    messages: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Histogram:
    """A histogram's state: how many observations fell at or under each bound.

    Attributes:
        bounds: The buckets' upper bounds, increasing (``+Inf`` is implied after them).
        counts: Observations per bucket, not cumulative: ``len(bounds) + 1`` numbers,
            the last one for observations over the last bound.
        count: Observations in all.
        sum: Their sum.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    count: int = 0
    sum: float = 0.0

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at or under it)`` pairs, ``inf`` last (the
        Prometheus form)."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((float(bound), total))
        return out


@dataclass(frozen=True, slots=True)
class RequestFigures:
    """The requests of one type in one namespace that this node sent.

    Attributes:
        sent: Request messages published (an operation that asks twice counts twice).
        answered: Requests that got every answer they waited for (those that wait for
            none, such as ``sockets_join`` in 8.x, are only sent).
        timeouts: Requests whose timeout came first (:class:`~siotools.RequestTimeout`).
        failures: Requests that failed otherwise (no such socket, a bad answer, Redis away).
        latency: Seconds from publishing to the last answer, of the answered ones.
    """

    sent: int
    answered: int
    timeouts: int
    failures: int
    latency: Histogram


@dataclass(frozen=True, slots=True)
class NodeMetrics:
    """A node's figures at one instant (see :attr:`AsyncRedisAdapter.metrics
    <siotools.shell.NodeShell.metrics>`).

    Counters start at 0 when the adapter is made and only grow. Each figure is exact; the
    synchronous adapter counts on its loop thread while another thread copies, so two
    figures may be a few messages apart.

    Attributes:
        node: The adapter's uid (its id on the wire).
        prefix: The channel prefix (the adapter's ``key``).
        dialect: The dialect's label.
        published: ``(kind, namespace) -> Traffic``: what this node published. Kinds:
            ``broadcast``, ``request``, ``response`` (answers to other nodes' requests:
            one per answer message, an 8.x broadcast with acks is answered by a count and
            then one message per ack).
        received: ``(kind, namespace) -> Traffic``: what arrived on the channels this node
            listens to, its own publications that Redis echoes back included (the node
            drops those after decoding, as the Node adapters do). On the sharded adapter's
            main channel, which carries broadcasts and requests alike, a message counts as
            a broadcast when it was handed to local delivery; the node's own echoes there
            count as requests.
        broadcasts_delivered: Broadcasts from other nodes handed to this node's sockets
            (those no local socket could receive are dropped before, undecoded).
        sockets_reached: Local sockets those broadcasts reached in all.
        fanout: Local sockets reached per delivered broadcast.
        requests: ``(type, namespace) -> RequestFigures``: the cluster requests this node
            sent; the type is the operation (``fetch_sockets``, ``server_side_emit``...).
        pending_requests: Requests waiting for answers now.
        malformed: Received messages that did not decode.
        ignored: ``reason -> count`` of received messages ignored: ``ignored`` (nothing
            for this node), ``oversized``, ``responses_ignored`` (an answer no request of
            this node waits for: late, or another node's), ``requests_ignored``,
            ``foreign_requests`` (another adapter generation on the prefix)...
        errors: Errors reported to the error callbacks (or logged).
        link_events: ``"lost"``/``"restored"`` -> count, of the subscriber's connection
            (on a Redis Cluster or sharded pub/sub: of its outages, however many of its
            connections each one took).
        link_gap_seconds: Seconds the subscriber was without a connection (or without
            every subscription), summed.
        reconnects: ``"pub"``/``"sub"`` -> reconnects of each connection.
        subscriptions: ``"channel"``, ``"pattern"``, ``"shard_channel"`` -> how many the
            subscriber holds now.
        taken_at: ``time.time()`` of the snapshot.
    """

    node: str
    prefix: str
    dialect: str
    published: Mapping[tuple[str, str], Traffic]
    received: Mapping[tuple[str, str], Traffic]
    broadcasts_delivered: int
    sockets_reached: int
    fanout: Histogram
    requests: Mapping[tuple[str, str], RequestFigures]
    pending_requests: int
    malformed: int
    ignored: Mapping[str, int]
    errors: int
    link_events: Mapping[str, int]
    link_gap_seconds: float
    reconnects: Mapping[str, int]
    subscriptions: Mapping[str, int]
    taken_at: float = field(default_factory=time.time)

    def published_total(self, kind: str | None = None) -> Traffic:
        """What was published, of one kind (every kind when None), all namespaces."""
        return _total(self.published, kind)

    def received_total(self, kind: str | None = None) -> Traffic:
        """What was received, of one kind (every kind when None), all namespaces."""
        return _total(self.received, kind)


def _total(table: Mapping[tuple[str, str], Traffic], kind: str | None) -> Traffic:
    messages = bytes_ = 0
    for (k, _), t in table.items():
        if kind is None or k == kind:
            messages += t.messages
            bytes_ += t.bytes
    return Traffic(messages, bytes_)


class _HistogramCell:
    """A mutable histogram (bisect over the bounds: one C call per observation)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def frozen(self) -> Histogram:
        return Histogram(self.bounds, tuple(self.counts), self.count, self.sum)


class _RequestCell:
    __slots__ = ("answered", "failures", "latency", "sent", "timeouts")

    def __init__(self) -> None:
        self.sent = self.answered = self.timeouts = self.failures = 0
        self.latency = _HistogramCell(LATENCY_BUCKETS)

    def frozen(self) -> RequestFigures:
        return RequestFigures(
            self.sent, self.answered, self.timeouts, self.failures, self.latency.frozen()
        )


class _Subscriber(Protocol):
    channels: set[bytes]
    patterns: set[bytes]


class MetricsRecorder:
    """The mutable counters behind :class:`NodeMetrics` (one per adapter; no I/O).

    The node core keeps a ``[messages, bytes]`` cell per subscribed route (looked up once,
    by :meth:`received_cell`); the shells call the other methods where they publish,
    deliver and ask.

    Args:
        grammar: The prefix's channel grammar (requests and answers are attributed to the
            namespace of their channel).
    """

    def __init__(self, grammar: ChannelGrammar) -> None:
        self.grammar = grammar
        self.published: dict[tuple[str, str], list[int]] = {}
        self.received: dict[tuple[str, str], list[int]] = {}
        self.requests: dict[tuple[str, str], _RequestCell] = {}
        # The fan-out histogram's count and sum are broadcasts_delivered and
        # sockets_reached; its bucket of a small fan-out is looked up in a table.
        self.fanout_counts = [0] * (len(FANOUT_BUCKETS) + 1)
        self.broadcasts_delivered = 0
        self.sockets_reached = 0
        self.ignored: Counter[str] = Counter()
        self._namespaces: set[str] = set()
        # nsp -> its cell in `published`: one str-keyed lookup per broadcast published.
        self._broadcast_cells: dict[str, list[int]] = {}

    def _nsp(self, nsp: str | None) -> str:
        nsp = nsp if nsp is not None else ""
        if nsp in self._namespaces:
            return nsp
        if len(self._namespaces) >= MAX_NAMESPACES:
            return OTHER_NAMESPACE
        self._namespaces.add(nsp)
        return nsp

    @staticmethod
    def _cell(table: dict[tuple[str, str], list[int]], key: tuple[str, str]) -> list[int]:
        cell = table.get(key)
        if cell is None:
            cell = table[key] = [0, 0]
        return cell

    def received_cell(self, route: Route, nsp: str) -> list[int]:
        """The ``[messages, bytes]`` cell the core adds to for messages on ``route``."""
        return self._cell(self.received, (_KIND_OF_ROUTE[route], self._nsp(nsp)))

    def reclassify(self, cell: list[int], kind: str, nsp: str, size: int) -> None:
        """Move one message of ``size`` bytes counted in ``cell`` to ``kind`` (a broadcast
        on the sharded adapter's main channel, counted as a request on arrival)."""
        cell[0] -= 1
        cell[1] -= size
        other = self._cell(self.received, (kind, self._nsp(nsp)))
        other[0] += 1
        other[1] += size

    def published_broadcast(self, nsp: str, size: int) -> None:
        """This node published a broadcast of ``size`` bytes in ``nsp``."""
        cell = self._broadcast_cells.get(nsp)
        if cell is None:
            cell = self._cell(self.published, ("broadcast", self._nsp(nsp)))
            if len(self._broadcast_cells) < MAX_NAMESPACES * 2:
                self._broadcast_cells[nsp] = cell
        cell[0] += 1
        cell[1] += size

    def broadcasts_published(self) -> int:
        """Broadcasts this node published, all namespaces (the adapter's ``published``)."""
        return sum(c[0] for (kind, _), c in list(self.published.items()) if kind == "broadcast")

    def published_response(self, channel: bytes, size: int) -> None:
        """This node answered another node's request on ``channel``."""
        nsp = self._nsp(self.grammar.parse(channel).nsp)
        cell = self._cell(self.published, ("response", nsp))
        cell[0] += 1
        cell[1] += size

    def request_sent(self, kind: str, channel: bytes, size: int) -> _RequestCell:
        """This node published a request of type ``kind`` on ``channel``; returns the cell
        to record its outcome in."""
        nsp = self._nsp(self.grammar.parse(channel).nsp)
        cell = self._cell(self.published, ("request", nsp))
        cell[0] += 1
        cell[1] += size
        req = self.requests.get((kind, nsp))
        if req is None:
            req = self.requests[(kind, nsp)] = _RequestCell()
        req.sent += 1
        return req

    @staticmethod
    def request_answered(req: _RequestCell, seconds: float) -> None:
        """The request got its last answer ``seconds`` after it was published."""
        req.answered += 1
        req.latency.observe(seconds)

    @staticmethod
    def request_timed_out(req: _RequestCell) -> None:
        """The request's timeout fired before every answer arrived."""
        req.timeouts += 1

    @staticmethod
    def request_failed(req: _RequestCell) -> None:
        """The request failed otherwise (no such socket, a bad answer, Redis away)."""
        req.failures += 1

    def delivered(self, sockets: int) -> None:
        """A broadcast from another node reached ``sockets`` local sockets."""
        self.broadcasts_delivered += 1
        self.sockets_reached += sockets
        if sockets < _SMALL_FANOUT:
            self.fanout_counts[_FANOUT_INDEX[sockets]] += 1
        else:
            self.fanout_counts[bisect.bisect_left(FANOUT_BUCKETS, sockets)] += 1

    def fanout(self) -> Histogram:
        """The fan-out histogram now."""
        return Histogram(
            tuple(float(b) for b in FANOUT_BUCKETS),
            tuple(self.fanout_counts),
            self.broadcasts_delivered,
            float(self.sockets_reached),
        )

    def snapshot(
        self,
        *,
        node: str,
        prefix: str,
        dialect: str,
        counts: Mapping[str, int],
        pending: int,
        publisher: Any,
        subscriber: Any,
    ) -> NodeMetrics:
        """A frozen copy of the figures (copies of the dicts first: each copy is one C
        call, so a counting thread cannot change a dict while it is walked).

        Args:
            node: The adapter's uid.
            prefix: The channel prefix.
            dialect: The dialect's label.
            counts: The adapter's own counters (``malformed``, ``errors``,
                ``subscription_lost``...).
            pending: Requests waiting for answers.
            publisher: The publishing connection (its ``reconnects``).
            subscriber: The subscriber (``channels``, ``patterns``, ``shard_channels``,
                ``reconnects``).
        """
        published = dict(self.published)
        received = dict(self.received)
        requests = dict(self.requests)
        counts = dict(counts)
        shard_channels = getattr(subscriber, "shard_channels", None)
        return NodeMetrics(
            node=node,
            prefix=prefix,
            dialect=dialect,
            published=MappingProxyType({k: Traffic(*c) for k, c in published.items()}),
            received=MappingProxyType({k: Traffic(*c) for k, c in received.items()}),
            broadcasts_delivered=self.broadcasts_delivered,
            sockets_reached=self.sockets_reached,
            fanout=self.fanout(),
            requests=MappingProxyType({k: r.frozen() for k, r in requests.items()}),
            pending_requests=pending,
            malformed=counts.get("malformed", 0),
            ignored=MappingProxyType(dict(self.ignored)),
            errors=counts.get("errors", 0),
            link_events=MappingProxyType(
                {event: counts.get(f"subscription_{event}", 0) for event in ("lost", "restored")}
            ),
            link_gap_seconds=counts.get("subscription_gap_ms", 0) / 1000,
            reconnects=MappingProxyType(
                {
                    "pub": int(getattr(publisher, "reconnects", 0)),
                    "sub": int(getattr(subscriber, "reconnects", 0)),
                }
            ),
            subscriptions=MappingProxyType(
                {
                    "channel": len(subscriber.channels),
                    "pattern": len(subscriber.patterns),
                    "shard_channel": len(shard_channels) if shard_channels is not None else 0,
                }
            ),
        )


class _HasMetrics(Protocol):
    @property
    def metrics(self) -> NodeMetrics: ...


class NodeCollector:
    """A ``prometheus_client`` collector of one adapter's :class:`NodeMetrics`.

    Every family (:data:`NODE_METRICS`) carries a ``node`` label (the adapter's uid), so
    the nodes of one process, or of a fleet scraped together, stay apart; namespaces are
    bounded by :data:`MAX_NAMESPACES`, request types by the adapter's operations.

    Args:
        adapter: An :class:`~siotools.AsyncRedisAdapter` or :class:`~siotools.RedisAdapter`.
        registry: A ``prometheus_client`` registry to register with at once (None: do
            not register; pass the collector to ``registry.register`` yourself).

    Raises:
        MissingExtraError: ``prometheus_client`` is not installed
            (``pip install 'siotools[metrics]'``).
    """

    def __init__(self, adapter: _HasMetrics, registry: Any = None) -> None:
        require("prometheus_client", "metrics")
        self.adapter = adapter
        if registry is not None:
            registry.register(self)

    def describe(self) -> list[Any]:
        """No families up front: the registry then calls :meth:`collect` only at scrapes
        (registering must not read the adapter)."""
        return []

    def collect(self) -> Iterator[Any]:
        """The ``siotools_node_*`` families of the adapter's figures, now."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        m = self.adapter.metrics
        node = m.node

        def family(name: str, labels: list[str]) -> Any:
            kind, doc = NODE_METRICS[name]
            make = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}[kind]
            return make(name, doc, labels=["node", *labels])

        def histogram(name: str, labels: list[str], rows: list[tuple[list[str], Histogram]]) -> Any:
            fam = HistogramMetricFamily(name, NODE_METRICS[name][1], labels=["node", *labels])
            for values, h in rows:
                buckets = [(_le(b), n) for b, n in h.cumulative()]
                fam.add_metric([node, *values], buckets, h.sum)
            return fam

        for prefix, table in (("published", m.published), ("received", m.received)):
            msgs = family(f"siotools_node_messages_{prefix}", ["kind", "nsp"])
            size = family(f"siotools_node_{prefix}_bytes", ["kind", "nsp"])
            for (kind, nsp), t in sorted(table.items()):
                msgs.add_metric([node, kind, nsp], t.messages)
                size.add_metric([node, kind, nsp], t.bytes)
            yield msgs
            yield size
        fam = family("siotools_node_broadcasts_delivered", [])
        fam.add_metric([node], m.broadcasts_delivered)
        yield fam
        fam = family("siotools_node_sockets_reached", [])
        fam.add_metric([node], m.sockets_reached)
        yield fam
        yield histogram("siotools_node_fanout", [], [([], m.fanout)])
        sent = family("siotools_node_requests", ["type", "nsp"])
        timeouts = family("siotools_node_request_timeouts", ["type", "nsp"])
        failures = family("siotools_node_request_failures", ["type", "nsp"])
        rows = []
        for (kind, nsp), r in sorted(m.requests.items()):
            sent.add_metric([node, kind, nsp], r.sent)
            timeouts.add_metric([node, kind, nsp], r.timeouts)
            failures.add_metric([node, kind, nsp], r.failures)
            rows.append(([kind, nsp], r.latency))
        yield sent
        yield timeouts
        yield failures
        yield histogram("siotools_node_request_duration_seconds", ["type", "nsp"], rows)
        fam = family("siotools_node_pending_requests", [])
        fam.add_metric([node], m.pending_requests)
        yield fam
        fam = family("siotools_node_malformed_frames", [])
        fam.add_metric([node], m.malformed)
        yield fam
        fam = family("siotools_node_ignored_frames", ["reason"])
        for reason, n in sorted(m.ignored.items()):
            fam.add_metric([node, reason], n)
        yield fam
        fam = family("siotools_node_errors", [])
        fam.add_metric([node], m.errors)
        yield fam
        fam = family("siotools_node_link_events", ["event"])
        for event, n in m.link_events.items():
            fam.add_metric([node, event], n)
        yield fam
        fam = family("siotools_node_reconnects", ["connection"])
        for conn, n in m.reconnects.items():
            fam.add_metric([node, conn], n)
        yield fam
        fam = family("siotools_node_subscriptions", ["type"])
        for kind, n in m.subscriptions.items():
            fam.add_metric([node, kind], n)
        yield fam


def _le(bound: float) -> str:
    # Prometheus spells bucket bounds as floats ("0.005", "+Inf").
    return "+Inf" if bound == float("inf") else repr(float(bound))
