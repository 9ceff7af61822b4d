"""The dialect seam: what a wire dialect tells the shells, and what the core hands them.

Pure: no asyncio, no redis, no socketio. A :class:`WireDialect` knows one generation of the
Redis adapter protocol (its channels, how it counts nodes, how it asks and answers each
cluster request, what it can do). The node core (:mod:`siotools.node`) routes what
arrived to it and returns :data:`Action` values; the shells (the adapters,
:class:`~siotools.ClusterClient`, :class:`~siotools.Emitter`) carry the actions out.

Cluster operations are :data:`Plan` generators: they yield :class:`Count` (ask Redis how
many nodes listen) and :class:`Ask` (publish a request and collect replies) and receive
the answers, so the same operation runs under asyncio or a sync shell (redis-py's
``parser_class``-per-protocol and h11's ``Connection`` are the models).
"""

from __future__ import annotations

import enum
import secrets
import string
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from siotools.exceptions import (
    DecodeError,
    PayloadTooLargeError,
    SocketNotFound,
    UnsupportedOperation,
)
from siotools.protocol import (
    ChannelGrammar,
    ChannelKind,
    Dialect,
    Frame,
    decode,
    glob_escape,
    unpack_broadcast,
)
from siotools.protocol.wire import BroadcastFields

__all__ = [
    "Action",
    "AddExpected",
    "Append",
    "Ask",
    "CallHook",
    "Capabilities",
    "Count",
    "Deliver",
    "DeliverWithAck",
    "Disconnect",
    "Expect",
    "FetchLocal",
    "FetchNames",
    "Ignored",
    "Join",
    "Leave",
    "Local",
    "LocalView",
    "Malformed",
    "Plan",
    "Publish",
    "RemoteSocket",
    "Reply",
    "Route",
    "Settle",
    "Subscriptions",
    "WireDialect",
    "oversized",
    "remote_socket",
    "select_sids",
    "valid_room",
    "valid_rooms",
]

T = TypeVar("T")
_UID_ALPHABET = string.ascii_letters + string.digits


# --------------------------------------------------------------------------- public values


@dataclass(frozen=True, slots=True)
class RemoteSocket:
    """A socket somewhere in the cluster, as ``fetchSockets()`` reports it.

    Attributes:
        id: The socket id.
        rooms: Its rooms (its own id room included, as Node reports them).
        data: ``socket.data`` on a Node node, the session on a python-socketio node;
            ``None`` where the dialect does not carry it (4.x/5.x).
        handshake: The handshake details (headers, query, address, time...), ``None``
            where the dialect does not carry it.
        nsp: The namespace.
    """

    id: str
    rooms: tuple[Any, ...] = ()
    data: Any = None
    handshake: Mapping[str, Any] | None = None
    nsp: str = "/"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a dialect can express on the wire."""

    acks_across_nodes: bool = False
    """Broadcasts with acknowledgements and acks to sockets on other nodes."""
    except_is_rooms: bool = False
    """``except`` names rooms (8.x) rather than socket ids (4.x/5.x)."""
    socket_details: bool = False
    """``fetch_sockets`` carries ``data`` and ``handshake``."""
    all_rooms: bool = True
    """A request for every room of every node."""
    custom_request: bool = False
    """socket.io-redis ``customRequest`` / ``customHook``."""
    server_side_emit: bool = False
    """``serverSideEmit`` between server nodes."""
    bulk_operations: bool = False
    """``socketsJoin``/``socketsLeave``/``disconnectSockets`` by rooms in one message."""


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """Channels to SUBSCRIBE, patterns to PSUBSCRIBE and sharded channels to SSUBSCRIBE
    (bytes, as Redis gets them)."""

    channels: tuple[bytes, ...] = ()
    patterns: tuple[bytes, ...] = ()
    shard_channels: tuple[bytes, ...] = ()


class Route(enum.IntEnum):
    """What a subscribed channel carries."""

    BROADCAST = 0
    REQUEST = 1
    RESPONSE = 2


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``payload`` on ``channel`` (``sharded``: SPUBLISH, to the slot's master)."""

    channel: bytes
    payload: bytes
    sharded: bool = False


@dataclass(frozen=True, slots=True)
class Deliver:
    """Send ``data`` (``[event, *args]``) to the local sockets of ``rooms`` (all when
    empty), skipping the members of ``except_`` (rooms; a socket id is a room)."""

    nsp: str
    data: list[Any]
    rooms: list[Any]
    except_: list[Any]
    flags: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DeliverWithAck:
    """Deliver with an acknowledgement per socket (8.x BROADCAST, type 7).

    The shell delivers, then publishes ``on_count(number of recipients)`` and, for each
    socket's ack, ``on_ack(first ack argument)``.
    """

    nsp: str
    data: list[Any]
    rooms: list[Any]
    except_: list[Any]
    on_count: Callable[[int], Publish]
    on_ack: Callable[[Any], Publish]


@dataclass(frozen=True, slots=True)
class Join:
    """Make local sockets join rooms."""

    nsp: str
    sids: tuple[str, ...]
    rooms: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Leave:
    """Make local sockets leave rooms."""

    nsp: str
    sids: tuple[str, ...]
    rooms: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Disconnect local sockets (``close``: their whole Engine.IO connection)."""

    nsp: str
    sids: tuple[str, ...]
    close: bool


@dataclass(frozen=True, slots=True)
class Settle:
    """Wait until Redis confirmed the subscriptions made so far (Node answers a join only
    after its SUBSCRIBE completed)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply to a pending request of this process."""

    request_id: str
    value: Any


@dataclass(frozen=True, slots=True)
class AddExpected:
    """A pending request waits for ``count`` more replies (8.x ack client counts)."""

    request_id: str
    count: int


@dataclass(frozen=True, slots=True)
class CallHook:
    """Call this node's handler(s) and publish what ``respond`` makes of the result.

    ``kind`` is ``"custom_request"`` (``args == [data]``) or ``"server_side_emit"``
    (``args == [event, *args]``). ``respond`` is ``None`` when no answer is expected.
    """

    nsp: str
    kind: str
    args: list[Any]
    respond: Callable[[Any], Publish | None] | None


@dataclass(frozen=True, slots=True)
class FetchLocal:
    """Describe local sockets ``sids`` (:class:`RemoteSocket`) and publish ``respond(...)``."""

    nsp: str
    sids: tuple[str, ...]
    respond: Callable[[list[RemoteSocket]], Publish]


@dataclass(frozen=True, slots=True)
class Malformed:
    """A message that cannot be read or acted on (counted and reported, never acted on)."""

    error: DecodeError


@dataclass(frozen=True, slots=True)
class Ignored:
    """A message deliberately not acted on (counted under ``reason``; ``warning``, when
    set, is reported once per reason: something the operator must fix)."""

    reason: str
    warning: str | None = None


Action = (
    Publish
    | Deliver
    | DeliverWithAck
    | Join
    | Leave
    | Disconnect
    | Settle
    | Reply
    | AddExpected
    | CallHook
    | FetchLocal
    | Malformed
    | Ignored
)


# --------------------------------------------------------------------------- plans


class Expect(enum.Enum):
    """How many replies complete an :class:`Ask`."""

    NONE = "none"
    """Fire and forget: the result is the number of Redis clients that received it."""
    FIRST = "first"
    """The first reply (single-target requests)."""
    COUNT = "count"
    """``Ask.expected`` replies (from a :class:`Count`)."""
    COUNTS = "counts"
    """``Ask.expected`` nodes each answer a client count (:class:`AddExpected`), then one
    reply per client: complete once every node's count and every counted reply arrived,
    in whatever order they come (socket.io ``BroadcastOperator.emit``'s
    ``checkCompleteness``: ``expectedServerCount === actualServerCount &&
    responses.length === expectedClientCount``)."""


@dataclass(frozen=True, slots=True)
class Count:
    """Ask Redis how many nodes listen on ``channel`` (``PUBSUB NUMSUB``).

    ``exclude_self``: the asking node, if it is counted, does not answer its own request
    (8.x); the shell then subtracts it.
    """

    channel: bytes
    exclude_self: bool = False
    sharded: bool = False
    """Count sharded subscribers (``PUBSUB SHARDNUMSUB``, summed over the masters)."""


@dataclass(frozen=True, slots=True)
class Append:
    """Add one entry to a Redis stream (``XADD``, trimmed ``MAXLEN ~``): what
    @socket.io/redis-streams-adapter nodes read instead of a pub/sub message.

    ``command`` is the whole command (see
    :func:`siotools.protocol.streams.xadd_args`); ``stream`` is its key, which a Redis
    Cluster routes by. The step's result is the new entry's id.
    """

    stream: bytes
    command: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Ask:
    """Publish a request and collect its replies.

    ``timeout_message`` is Node's wording; it may be a function of ``(answered,
    expected)`` for the messages that carry counts.
    """

    channel: bytes
    payload: bytes
    request_id: str | None
    expect: Expect
    timeout_message: str | Callable[[int, int | None], str] = ""
    finish: Callable[[list[Any]], Any] = field(default=list)
    expected: int = 0
    timeout: float | None = None
    sharded: bool = False
    """SPUBLISH the request (sharded pub/sub) instead of PUBLISH."""


@dataclass(frozen=True, slots=True)
class Local:
    """Carry out ``actions(view)`` on this node, if the asker is a node (processes without
    sockets skip it). The sharded adapter publishes ``socketsJoin``/``socketsLeave``/
    ``disconnectSockets`` first and then applies them locally (socket.io-adapter 2.5.4+
    ``ClusterAdapter.addSockets``...), dropping its own echo."""

    actions: Callable[[LocalView], list[Action]]


Plan = Generator[Count | Ask | Local | Append, Any, T]
"""A cluster operation: yields steps, receives their results, returns the result."""


class LocalView(Protocol):
    """The read-only view of a node's local sockets the core and dialects need."""

    def namespace_rooms(self, nsp: str) -> Mapping[Any, Mapping[str, Any]] | None:
        """``room -> {sid: eio_sid}`` of ``nsp``; the ``None`` room holds every connected
        socket (python-socketio's manager layout)."""

    def is_connected(self, sid: str, nsp: str) -> bool:
        """Whether ``sid`` is a connected local socket of ``nsp``."""

    def rooms_of(self, sid: str, nsp: str) -> list[Any]:
        """The rooms of a local socket, its own id room first."""


# --------------------------------------------------------------------------- helpers


def valid_room(room: Any) -> bool:
    """Whether a value may name a room on the wire: a string or a (non-bool) integer.

    ``None`` is python-socketio's internal room of connected sockets: a peer must never
    reach it.
    """
    t = type(room)
    return t is str or t is int


def valid_rooms(rooms: Any) -> bool:
    """Whether a value is a list of room names."""
    return type(rooms) in (list, tuple) and all(valid_room(r) for r in rooms)


def remote_socket(value: Any, nsp: str) -> RemoteSocket | None:
    """A socket of a fetchSockets answer ``{id, handshake, rooms, data}`` (RA 8.x
    REMOTE_FETCH, socket.io-adapter FETCH_SOCKETS), or ``None`` when it is not one."""
    if type(value) is not dict or type(value.get("id")) is not str:
        return None
    rooms = value.get("rooms")
    handshake = value.get("handshake")
    return RemoteSocket(
        id=value["id"],
        rooms=tuple(rooms) if type(rooms) is list else (),
        data=value.get("data"),
        handshake=handshake if type(handshake) is dict else None,
        nsp=nsp,
    )


def select_sids(
    view: LocalView, nsp: str, rooms: Iterable[Any], except_: Iterable[Any]
) -> list[str]:
    """The connected local sockets of ``rooms`` (all when empty), minus the members of
    ``except_`` (socket.io-adapter ``apply``/``computeExceptSids``)."""
    ns_rooms = view.namespace_rooms(nsp)
    if not ns_rooms:
        return []
    connected = ns_rooms.get(None) or {}
    skip: set[str] = set()
    for room in except_:
        members = ns_rooms.get(room)
        if members:
            skip.update(members)
    rooms = list(rooms)
    if not rooms:
        return [sid for sid in connected if sid not in skip]
    seen: dict[str, None] = {}
    for room in rooms:
        for sid in ns_rooms.get(room) or ():
            if sid not in skip and sid in connected:
                seen[sid] = None
    return list(seen)


def oversized(exc: PayloadTooLargeError) -> Ignored:
    """The action for a payload over the size limit: dropped undecoded, counted, reported
    once (the limit is the operator's to raise)."""
    return Ignored("oversized", warning=str(exc))


def unsupported(dialect: WireDialect, what: str, instead: str) -> UnsupportedOperation:
    """The error for an operation ``dialect`` cannot express, with a pointer."""
    return UnsupportedOperation(f"{dialect.label} cannot {what}; {instead}")


# --------------------------------------------------------------------------- the seam


class WireDialect(ABC):
    """One wire dialect: channels, counting, requests, answers, capabilities.

    Args:
        prefix: The cluster's channel prefix (``key``).
    """

    dialect: Dialect
    label: str
    capabilities: Capabilities
    default_timeout: float = 5.0
    reserved_events: frozenset[str] = frozenset()
    """Event names an emitter of this dialect refuses."""
    max_payload: int | None = None
    """Payloads over this many bytes are dropped undecoded (``oversized``); None: no limit."""
    sharded_pubsub: bool = False
    """The dialect talks sharded pub/sub (SSUBSCRIBE/SPUBLISH/SHARDNUMSUB): the shells
    then use the Redis Cluster transport (a standalone Redis 7 is a one-master cluster)."""
    room_route: Route = Route.BROADCAST
    """What the channels of :meth:`room_channel` carry."""
    private_room_channels: bool = True
    """Whether a socket's own id room gets a channel of :meth:`room_channel` too."""
    counts_listeners: bool = True
    """Whether sending tells how many nodes received it (PUBLISH's reply). False for a
    stream: an entry is read later by whoever reads the stream, nobody is counted."""
    node_dialect: bool = True
    """Whether siotools can be a node or a cluster client of this dialect (False: it can
    only emit to it)."""

    def listener_streams(self, nsp: str) -> tuple[str, ...]:
        """The Redis streams whose recent heartbeats may count the nodes of ``nsp`` that
        :meth:`server_count` cannot see (none: pub/sub counts them all)."""
        return ()

    def emitter_broadcast(
        self,
        nsp: str,
        data: list[Any],
        rooms: Sequence[Any],
        except_: Sequence[Any],
        flags: Mapping[str, Any],
    ) -> Publish | Append:
        """What an emitter sends to broadcast ``data`` (the node's :meth:`broadcast`
        signed ``"emitter"``, unless the dialect's emitter writes something else)."""
        return self.broadcast("emitter", nsp, data, rooms, except_, flags)

    def __init__(self, prefix: str = "socket.io") -> None:
        self.prefix = prefix or "socket.io"
        self.grammar = ChannelGrammar(self.prefix)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} prefix={self.prefix!r}>"

    def new_uid(self) -> str:
        """A fresh server id in this dialect's format (6 characters of ``[A-Za-z0-9]``
        unless the dialect says otherwise)."""
        return "".join(secrets.choice(_UID_ALPHABET) for _ in range(6))

    def namespace_probe(self) -> tuple[bytes, bytes]:
        """``(PUBSUB subcommand, pattern)`` whose channels name the namespaces with nodes
        (read with :meth:`namespace_of`)."""
        g = self.grammar
        return b"CHANNELS", (glob_escape(g.request("")[:-1]) + "*").encode()

    def namespace_of(self, channel: bytes) -> str | None:
        """The namespace a channel of :meth:`namespace_probe` shows a node for."""
        parsed = self.grammar.parse(channel)
        if parsed.kind is ChannelKind.REQUEST:
            return parsed.nsp
        return None

    # ------------------------------------------------------------------ channels

    @abstractmethod
    def node_subscriptions(self, nsp: str, uid: str) -> Subscriptions:
        """What a node of this dialect subscribes to for ``nsp``."""

    @abstractmethod
    def client_subscriptions(self, nsp: str, uid: str) -> Subscriptions:
        """What a process that only asks (ClusterClient) subscribes to: responses only,
        so it is never counted as a node."""

    @abstractmethod
    def routes(self, nsp: str, uid: str) -> dict[bytes, Route]:
        """Subscribed channel -> what it carries."""

    def room_channel(self, nsp: str, room: Any) -> bytes | None:
        """The channel to SUBSCRIBE while a room has local members (4.x multiplexing);
        ``None`` when the dialect hears rooms otherwise."""
        return None

    def count_channel(self, nsp: str) -> bytes:
        """The channel whose ``PUBSUB NUMSUB`` counts the nodes of ``nsp``."""
        return self.grammar.request(nsp).encode()

    def server_count(self, nsp: str) -> Plan[int]:
        """How many nodes serve ``nsp``."""
        count: int = yield Count(self.count_channel(nsp))
        return count

    # ------------------------------------------------------------------ broadcasts

    def read_broadcast(self, payload: bytes) -> BroadcastFields:
        """``(uid, packet nsp, data, rooms, except, flags)`` of a received broadcast.

        Raises:
            DecodeError: the payload is not a broadcast.
        """
        return unpack_broadcast(payload, max_size=self.max_payload)

    def decode(self, channel: bytes, payload: bytes) -> Frame | list[Action]:
        """A request or response of this prefix as a frame, or the actions for a payload
        that cannot be one (malformed, or over :attr:`max_payload`)."""
        try:
            return decode(channel, payload, prefix=self.prefix, max_size=self.max_payload)
        except PayloadTooLargeError as exc:
            return [oversized(exc)]
        except DecodeError as exc:
            return [Malformed(exc)]

    @abstractmethod
    def broadcast(
        self,
        uid: str,
        nsp: str,
        data: list[Any],
        rooms: Sequence[Any],
        except_: Sequence[Any],
        flags: Mapping[str, Any],
    ) -> Publish:
        """What a node (``uid``) or an emitter (``"emitter"``) publishes for an emit."""

    # ------------------------------------------------------------------ receiving

    @abstractmethod
    def on_request(self, uid: str, channel: bytes, payload: bytes, view: LocalView) -> list[Action]:
        """A request arrived on a node: what to do (answers are :class:`Publish`)."""

    @abstractmethod
    def on_response(self, channel: bytes, payload: bytes) -> list[Action]:
        """A response arrived: :class:`Reply`/:class:`AddExpected` for pending requests."""

    # ------------------------------------------------------------------ asking

    @abstractmethod
    def fetch_sockets(
        self,
        nsp: str,
        uid: str,
        rooms: Sequence[Any],
        except_: Sequence[Any],
        local: list[RemoteSocket] | None,
    ) -> Plan[list[RemoteSocket]]:
        """Every matching socket of the cluster (``local``: this node's own, if a node)."""

    @abstractmethod
    def all_rooms(self, nsp: str, uid: str, local: list[Any] | None) -> Plan[list[Any]]:
        """Every room of every node."""

    @abstractmethod
    def sockets_join(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], join: Sequence[Any]
    ) -> Plan[int]:
        """Make the matching sockets join rooms ``join``; returns how many nodes heard it."""

    @abstractmethod
    def sockets_leave(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], leave: Sequence[Any]
    ) -> Plan[int]:
        """Make the matching sockets leave rooms ``leave``."""

    @abstractmethod
    def disconnect_sockets(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], close: bool
    ) -> Plan[int]:
        """Disconnect the matching sockets."""

    @abstractmethod
    def clients(
        self, nsp: str, uid: str, rooms: Sequence[Any], local: list[str] | None
    ) -> Plan[list[str]]:
        """Socket ids in any of ``rooms`` (all when empty), across the cluster (``local``:
        this node's own, if a node)."""

    @abstractmethod
    def client_rooms(self, nsp: str, uid: str, sid: str) -> Plan[list[Any]]:
        """The rooms of socket ``sid`` wherever it is (fails when no node has it)."""

    @abstractmethod
    def remote_join(self, nsp: str, uid: str, sid: str, room: Any) -> Plan[None]:
        """Make socket ``sid`` join ``room`` (fails when no node has it)."""

    @abstractmethod
    def remote_leave(self, nsp: str, uid: str, sid: str, room: Any) -> Plan[None]:
        """Make socket ``sid`` leave ``room`` (fails when no node has it)."""

    @abstractmethod
    def remote_disconnect(self, nsp: str, uid: str, sid: str, close: bool) -> Plan[None]:
        """Disconnect socket ``sid`` (fails when no node has it)."""

    def custom_request(self, nsp: str, uid: str, data: Any) -> Plan[list[Any]]:
        """Every node's ``custom_hook`` reply to ``data``."""
        raise unsupported(
            self, "carry customRequest", "use server_side_emit_with_ack() with a handler"
        )
        yield  # pragma: no cover - makes this a generator

    def server_side_emit(
        self, nsp: str, uid: str, data: list[Any], *, ack: bool, local_replies: int = 0
    ) -> Plan[Any]:
        """Send ``[event, *args]`` to the other server nodes (``ack``: collect replies)."""
        raise unsupported(
            self, "send serverSideEmit", "use custom_request() with a custom_hook instead"
        )
        yield  # pragma: no cover

    def emit_with_ack(
        self,
        nsp: str,
        uid: str,
        data: list[Any],
        rooms: Sequence[Any],
        except_: Sequence[Any],
        flags: Mapping[str, Any],
        timeout: float,
    ) -> Plan[list[Any]]:
        """Broadcast with acknowledgements: every remote client's first ack argument."""
        raise unsupported(
            self,
            "carry acknowledgements across nodes",
            "an ack callback is only possible for a socket connected to this node",
        )
        yield  # pragma: no cover


class FetchNames:
    """The 4.x/5.x names (``clients``, ``client_rooms``, ``remote_join``...) for the
    dialects that have fetchSockets and socketsJoin/Leave/disconnectSockets instead (8.x
    removed the single-socket requests): a socket nobody has is a
    :class:`~siotools.SocketNotFound`, not a timeout. Mixed in before :class:`WireDialect`.
    """

    if TYPE_CHECKING:

        def fetch_sockets(
            self,
            nsp: str,
            uid: str,
            rooms: Sequence[Any],
            except_: Sequence[Any],
            local: list[RemoteSocket] | None,
        ) -> Plan[list[RemoteSocket]]: ...

        def sockets_join(
            self,
            nsp: str,
            uid: str,
            rooms: Sequence[Any],
            except_: Sequence[Any],
            join: Sequence[Any],
        ) -> Plan[int]: ...

        def sockets_leave(
            self,
            nsp: str,
            uid: str,
            rooms: Sequence[Any],
            except_: Sequence[Any],
            leave: Sequence[Any],
        ) -> Plan[int]: ...

        def disconnect_sockets(
            self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], close: bool
        ) -> Plan[int]: ...

    def clients(
        self, nsp: str, uid: str, rooms: Sequence[Any], local: list[str] | None
    ) -> Plan[list[str]]:
        mine = None if local is None else [RemoteSocket(id=s, nsp=nsp) for s in local]
        sockets = yield from self.fetch_sockets(nsp, uid, rooms, (), mine)
        return list(dict.fromkeys(s.id for s in sockets))

    def _find(self, nsp: str, uid: str, sid: str) -> Plan[RemoteSocket]:
        sockets = yield from self.fetch_sockets(nsp, uid, (sid,), (), None)
        for socket in sockets:
            if socket.id == sid:
                return socket
        raise SocketNotFound(sid, nsp)

    def client_rooms(self, nsp: str, uid: str, sid: str) -> Plan[list[Any]]:
        socket = yield from self._find(nsp, uid, sid)
        return list(socket.rooms)

    def remote_join(self, nsp: str, uid: str, sid: str, room: Any) -> Plan[None]:
        yield from self._find(nsp, uid, sid)
        yield from self.sockets_join(nsp, uid, (sid,), (), (room,))

    def remote_leave(self, nsp: str, uid: str, sid: str, room: Any) -> Plan[None]:
        yield from self._find(nsp, uid, sid)
        yield from self.sockets_leave(nsp, uid, (sid,), (), (room,))

    def remote_disconnect(self, nsp: str, uid: str, sid: str, close: bool) -> Plan[None]:
        yield from self._find(nsp, uid, sid)
        yield from self.disconnect_sockets(nsp, uid, (sid,), (), close)
