"""The cluster-node core: what arrived on Redis in, actions out. No I/O.

:class:`NodeCore` is to the adapters what h11's ``Connection`` is to an HTTP server: it
owns the node's routing state (which channels it listens to, for which namespace) and
turns each ``(channel, payload, pattern)`` into :mod:`~siotools.dialects.base` actions
(deliver, publish, join, leave, disconnect, reply...), reading the local sockets through a
:class:`~siotools.dialects.base.LocalView`. Timers, Redis and python-socketio stay in the
shells (:class:`~siotools.AsyncRedisAdapter` and its synchronous sibling), which only
carry actions out.

Example::

    core = NodeCore(CurrentDialect("socket.io"), uid="aB3dE5")
    subs = core.join_namespace("/")            # -> Subscriptions to make
    for action in core.receive(channel, payload, pattern, view):
        ...                                    # Deliver / Publish / Join / ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from siotools.dialects.base import (
    Action,
    Deliver,
    Ignored,
    LocalView,
    Malformed,
    Route,
    Subscriptions,
    WireDialect,
    oversized,
)
from siotools.exceptions import DecodeError, PayloadTooLargeError
from siotools.metrics import MetricsRecorder
from siotools.protocol import ChannelKind

__all__ = ["NodeCore"]

_RouteEntry = tuple[Route, str, str | None, list[int]]
_HEARD_LIMIT: Final = 4096

_NOTHING: Final[tuple[Action, ...]] = ()
_BROADCAST: Final = Route.BROADCAST
_REQUEST: Final = Route.REQUEST


class NodeCore:
    """A node of a Socket.IO Redis cluster, without I/O.

    Args:
        dialect: The wire dialect this node speaks.
        uid: The node's id on the wire (its own broadcasts and requests carry it).
        counted: Whether the process SUBSCRIBEs the request channels (a server node,
            counted by ``PUBSUB NUMSUB``) or only listens for responses (an asking client).

        metrics: Where to count what arrives (a new recorder if None).

    Attributes:
        received: Broadcast messages that arrived. On the sharded adapter's channels,
            which carry its requests too, every message is read to tell: there it is the
            broadcasts of the other nodes (its own are dropped once read, as
            ``ClusterAdapter`` does, and are not told apart from its requests), the same
            ones :attr:`metrics` counts as received broadcasts.
        decoded: Broadcast messages decoded (the others were dropped unread by the room
            gate, as the Node adapters do; the sharded adapter reads all of them).
    """

    def __init__(
        self,
        dialect: WireDialect,
        uid: str,
        *,
        counted: bool = True,
        metrics: MetricsRecorder | None = None,
    ) -> None:
        self.dialect = dialect
        self.uid = uid
        self.counted = counted
        self.received = 0
        self.decoded = 0
        self.namespaces: set[str] = set()
        self.metrics = metrics if metrics is not None else MetricsRecorder(dialect.grammar)
        # channel -> (route, nsp, room, the metrics cell of route and nsp): the cell is
        # looked up once here so that counting a message is two additions.
        self._routes: dict[bytes, _RouteEntry] = {}
        self._heard: dict[bytes, _RouteEntry] = {}  # routes found through a pattern

    def join_namespace(self, nsp: str) -> Subscriptions | None:
        """Start serving ``nsp``; returns what to subscribe to (``None``: already joined)."""
        if nsp in self.namespaces:
            return None
        self.namespaces.add(nsp)
        d = self.dialect
        cell = self.metrics.received_cell
        for channel, route in d.routes(nsp, self.uid).items():
            self._routes[channel] = (route, nsp, None, cell(route, nsp))
        if self.counted:
            return d.node_subscriptions(nsp, self.uid)
        return d.client_subscriptions(nsp, self.uid)

    def room_added(self, nsp: str, room: Any, *, private: bool = False) -> bytes | None:
        """A room got its first local member: the channel to (S)SUBSCRIBE, if the dialect
        listens per room (socket.io-redis 4.x multiplexing, the sharded adapter's dynamic
        modes). ``private``: the room is a local socket's own id room."""
        d = self.dialect
        if private and not d.private_room_channels:
            return None
        channel = d.room_channel(nsp, room)
        if channel is not None:
            cell = self.metrics.received_cell(d.room_route, nsp)
            self._routes[channel] = (d.room_route, nsp, str(room), cell)
        return channel

    def room_removed(self, nsp: str, room: Any) -> bytes | None:
        """A room lost its last local member: the channel to UNSUBSCRIBE, if one was
        subscribed for it."""
        channel = self.dialect.room_channel(nsp, room)
        if channel is None or self._routes.pop(channel, None) is None:
            return None
        return channel

    def receive(
        self, channel: bytes, payload: bytes, pattern: bytes | None, view: LocalView
    ) -> Sequence[Action]:
        """What to do about one message (in arrival order with the others)."""
        route = self._routes.get(channel)
        if route is None:
            route = self._pattern_route(channel, pattern)
            if route is None:
                return (Ignored("ignored"),)
        kind, nsp, room, cell = route
        cell[0] += 1
        cell[1] += len(payload)
        if kind is _BROADCAST:
            return self._broadcast(channel, nsp, room, payload, view)
        if kind is _REQUEST:
            if not self.counted:
                return _NOTHING
            actions = self.dialect.on_request(self.uid, channel, payload, view)
            # The sharded adapter's main channel carries broadcasts too: a message that
            # is delivered was one (counted as such, not as a request).
            if actions and type(actions[0]) is Deliver:
                self.metrics.reclassify(cell, "broadcast", nsp, len(payload))
                self.received += 1
                self.decoded += 1
            return actions
        return self.dialect.on_response(channel, payload)

    def _pattern_route(self, channel: bytes, pattern: bytes | None) -> _RouteEntry | None:
        # Room channels heard through PSUBSCRIBE key#nsp#* (5.x and 8.x).
        if pattern is None:
            return None
        entry = self._heard.get(channel)
        if entry is not None:
            return entry
        entry = self._parse_route(channel)
        if entry is not None:
            if len(self._heard) >= _HEARD_LIMIT:  # room channels are unbounded
                self._heard.clear()
            self._heard[channel] = entry
        return entry

    def _parse_route(self, channel: bytes) -> _RouteEntry | None:
        parsed = self.dialect.grammar.parse(channel)
        nsp = parsed.nsp
        if nsp is None or nsp not in self.namespaces:
            return None
        if parsed.kind is ChannelKind.ROOM:
            return (_BROADCAST, nsp, parsed.room, self.metrics.received_cell(_BROADCAST, nsp))
        if parsed.kind is ChannelKind.BROADCAST:
            return (_BROADCAST, nsp, None, self.metrics.received_cell(_BROADCAST, nsp))
        return None

    def _broadcast(
        self, channel: bytes, nsp: str, room: str | None, payload: bytes, view: LocalView
    ) -> Sequence[Action]:
        self.received += 1
        ns_rooms = view.namespace_rooms(nsp)
        # socket.io-redis 5.x / RA 8.x onmessage: a room channel of a room this node does
        # not have is dropped before decoding (numbers too: RA 7.0.1 parseFloat); so is
        # anything for a namespace with no local socket.
        if not ns_rooms:
            return _NOTHING
        if (
            room is not None
            and room not in ns_rooms
            and not (room.isdigit() and int(room) in ns_rooms)
        ):
            return _NOTHING
        try:
            uid, packet_nsp, data, rooms, except_, flags = self.dialect.read_broadcast(payload)
        except PayloadTooLargeError as exc:
            return (oversized(exc),)
        except DecodeError as exc:
            exc.channel = channel
            return (Malformed(exc),)
        self.decoded += 1
        # Own messages and other namespaces are skipped.
        if uid == self.uid or packet_nsp != nsp:
            return _NOTHING
        if not data:
            return (Ignored("ignored"),)
        if rooms:
            for r in rooms:
                if (type(r) is str or type(r) is int) and r in ns_rooms:
                    break
            else:
                return _NOTHING  # none of the target rooms has a socket here
        return (Deliver(nsp, data, rooms, except_, flags),)
