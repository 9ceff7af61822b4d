"""Frames: one frozen dataclass per kind of message on the wire.

Every frame knows its :class:`Dialect`, its namespace (``nsp``) and the prefix of its
channels, so :func:`siotools.protocol.encode` can rebuild the channel and the payload.
Field names are Python-style; the wire spellings (``requestid``/``requestId``,
``clientCount``...) live in the codec.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar

from siotools.protocol.values import UNDEFINED, Undefined

__all__ = [
    "FRAME_KINDS",
    "AllRoomsRequest",
    "Broadcast",
    "BroadcastAckRequest",
    "BroadcastAckResponse",
    "BroadcastClientCountResponse",
    "ClusterMessage",
    "ClusterMessageType",
    "CurrentRequest",
    "CurrentResponse",
    "Dialect",
    "EmptyResponse",
    "Frame",
    "LegacyAllRoomsRequest",
    "LegacyClientRoomsRequest",
    "LegacyClientsRequest",
    "LegacyClientsResponse",
    "LegacyCustomRequest",
    "LegacyDataResponse",
    "LegacyEmptyResponse",
    "LegacyRemoteDisconnectRequest",
    "LegacyRemoteJoinRequest",
    "LegacyRemoteLeaveRequest",
    "LegacyRequest",
    "LegacyRequestType",
    "LegacyResponse",
    "LegacyRoomsResponse",
    "PacketType",
    "PickledMessage",
    "PySocketIOMessage",
    "RemoteDisconnectRequest",
    "RemoteFetchRequest",
    "RemoteJoinRequest",
    "RemoteLeaveRequest",
    "Request",
    "RequestType",
    "Response",
    "RoomsResponse",
    "ServerSideEmitRequest",
    "ServerSideEmitResponse",
    "SocketsRequest",
    "SocketsResponse",
]

DEFAULT_PREFIX = "socket.io"


class Dialect(enum.Enum):
    """Which generation of the protocol a message belongs to."""

    LEGACY = "legacy"
    """socket.io-redis 5.x (socket.io 2.x) and socket.io-emitter 3.x: notepack.io 2.x,
    JSON requests with ``requestid``."""
    LEGACY_LITE = "legacy-lite"
    """socket.io-redis 4.x (socket.io 1.x): as LEGACY but msgpack-lite encoded."""
    CURRENT = "current"
    """@socket.io/redis-adapter 7.x/8.x classic and @socket.io/redis-emitter 4.x/5.x:
    notepack.io 3.x, requests with ``uid`` and ``requestId``."""
    SHARDED = "sharded"
    """The 8.x sharded adapter (socket.io-adapter ClusterAdapter messages)."""
    PYSOCKETIO = "pysocketio"
    """python-socketio's own pub/sub manager messages."""
    STREAMS = "streams"
    """@socket.io/redis-streams-adapter 0.2.x/0.3.x: ClusterAdapter messages as Redis
    stream entries (0.3.x sends its ephemeral ones over pub/sub, sharded-style)."""

    @property
    def label(self) -> str:
        """The dialect as its users know it: the package and version it matches."""
        return _DIALECT_LABELS[self]


_DIALECT_LABELS = {
    Dialect.LEGACY: "socket.io-redis 5.x",
    Dialect.LEGACY_LITE: "socket.io-redis 4.x",
    Dialect.CURRENT: "@socket.io/redis-adapter 8.x",
    Dialect.SHARDED: "@socket.io/redis-adapter 8.x sharded",
    Dialect.PYSOCKETIO: "python-socketio",
    Dialect.STREAMS: "@socket.io/redis-streams-adapter",
}


def dialect_family(dialect: Dialect | None) -> str | None:
    """Which generations cannot share a prefix: ``legacy`` (4.x/5.x), ``current``, ``sharded``.

    socket.io-redis 4.x and 5.x read each other's channels (only the msgpack library
    differs), while 8.x classic and sharded use other payloads on the same prefix.
    python-socketio's own channel is not an adapter prefix, so it has no family.
    """
    if dialect is None or dialect is Dialect.PYSOCKETIO:
        return None
    if dialect is Dialect.LEGACY_LITE:
        return "legacy"
    return str(dialect.value)


class PacketType(enum.IntEnum):
    """socket.io-parser packet types."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6
    ERROR = 4  # socket.io-parser 3.x name of type 4 (an alias of CONNECT_ERROR)


class LegacyRequestType(enum.IntEnum):
    """socket.io-redis 5.x request types (``requestid`` requests)."""

    CLIENTS = 0
    CLIENT_ROOMS = 1
    ALL_ROOMS = 2
    REMOTE_JOIN = 3
    REMOTE_LEAVE = 4
    CUSTOM_REQUEST = 5
    REMOTE_DISCONNECT = 6


class RequestType(enum.IntEnum):
    """@socket.io/redis-adapter 6+ request types (lib/index.ts RequestType)."""

    SOCKETS = 0
    ALL_ROOMS = 1
    REMOTE_JOIN = 2
    REMOTE_LEAVE = 3
    REMOTE_DISCONNECT = 4
    REMOTE_FETCH = 5
    SERVER_SIDE_EMIT = 6
    BROADCAST = 7
    BROADCAST_CLIENT_COUNT = 8
    BROADCAST_ACK = 9


class ClusterMessageType(enum.IntEnum):
    """socket.io-adapter ClusterAdapter MessageType (the sharded adapter's messages)."""

    INITIAL_HEARTBEAT = 1
    HEARTBEAT = 2
    BROADCAST = 3
    SOCKETS_JOIN = 4
    SOCKETS_LEAVE = 5
    DISCONNECT_SOCKETS = 6
    FETCH_SOCKETS = 7
    FETCH_SOCKETS_RESPONSE = 8
    SERVER_SIDE_EMIT = 9
    SERVER_SIDE_EMIT_RESPONSE = 10
    BROADCAST_CLIENT_COUNT = 11
    BROADCAST_ACK = 12
    ADAPTER_CLOSE = 13


# --------------------------------------------------------------------------- the base


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """The base of every frame :func:`siotools.protocol.decode` returns (h11's ``Event``).

    Every frame has a namespace, the prefix of its channels and a dialect, so consumers
    read ``frame.nsp`` whatever the kind and use ``match``/``isinstance`` for the rest.

    Attributes:
        nsp: The namespace (``None`` only for python-socketio messages that carry none).
        prefix: The channel prefix.
        dialect: The protocol generation.
    """

    nsp: str | None = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT


# --------------------------------------------------------------------------- broadcasts


@dataclass(frozen=True, slots=True, kw_only=True)
class Broadcast(Frame):
    """A broadcast ``[uid, packet, opts]`` (legacy, legacy-lite, current and emitters).

    ``packet`` and ``opts`` are the decoded maps in wire order, so re-encoding keeps Node's
    key order (it differs between producers: ``{except, rooms, flags}`` for a socket.io 2.x
    socket broadcast, ``{rooms, except, flags}`` for 8.x, ``{rooms, flags, except}`` for
    @socket.io/redis-emitter). Use :func:`siotools.protocol.make_broadcast` to build one,
    and the properties for typed access.

    Attributes:
        uid: The sender's uid (``"emitter"`` for the emitters).
        packet: ``{"type", "data", "nsp"}``: socket.io packet; ``data`` is
            ``[event, *args]``.
        opts: ``{"rooms", "except", "flags"}`` (any subset, any order).
        nsp: The namespace of the channel it travels on.
        dialect: LEGACY, LEGACY_LITE or CURRENT (decides the msgpack flavor).
        prefix: The channel prefix.
    """

    uid: str
    packet: dict[str, Any]
    opts: dict[str, Any]
    nsp: str = "/"
    dialect: Dialect = Dialect.CURRENT
    prefix: str = DEFAULT_PREFIX

    @property
    def packet_type(self) -> int:
        """The socket.io packet type (2 EVENT, 5 BINARY_EVENT...)."""
        value = self.packet.get("type", PacketType.EVENT)
        return value if isinstance(value, int) else PacketType.EVENT

    @property
    def data(self) -> list[Any]:
        """``[event, *args]`` ([] if absent)."""
        value = self.packet.get("data")
        return value if isinstance(value, list) else []

    @property
    def event(self) -> Any:
        """The event name (first element of ``data``), or None."""
        data = self.data
        return data[0] if data else None

    @property
    def args(self) -> list[Any]:
        """The event arguments (``data[1:]``)."""
        return self.data[1:]

    @property
    def packet_nsp(self) -> str:
        """``packet.nsp``, defaulting to ``/`` as the Node receivers do."""
        value = self.packet.get("nsp")
        return value if isinstance(value, str) else "/"

    @property
    def rooms(self) -> list[Any]:
        """``opts.rooms`` ([] when absent or nil)."""
        value = self.opts.get("rooms")
        return value if isinstance(value, list) else []

    @property
    def except_(self) -> list[Any]:
        """``opts.except`` (socket ids in legacy, rooms or ids in 8.x; [] when absent)."""
        value = self.opts.get("except")
        return value if isinstance(value, list) else []

    @property
    def flags(self) -> dict[str, Any]:
        """``opts.flags`` ({} when absent or nil)."""
        value = self.opts.get("flags")
        return value if isinstance(value, dict) else {}

    @property
    def is_emitter(self) -> bool:
        """True when sent by socket.io-emitter / @socket.io/redis-emitter."""
        return self.uid == "emitter"


# --------------------------------------------------------------------------- legacy requests


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyClientsRequest(Frame):
    """Legacy ``clients(rooms)``: ``{"requestid","type":0,"rooms":[...]}``; every node answers
    with :class:`LegacyClientsResponse`."""

    request_id: str
    rooms: tuple[Any, ...] = ()
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.LEGACY
    type: ClassVar[LegacyRequestType] = LegacyRequestType.CLIENTS


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyClientRoomsRequest(Frame):
    """Legacy ``clientRooms(sid)``: ``{"requestid","type":1,"sid"}``; the owner answers with
    :class:`LegacyRoomsResponse`."""

    request_id: str
    sid: Any
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.LEGACY
    type: ClassVar[LegacyRequestType] = LegacyRequestType.CLIENT_ROOMS


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyAllRoomsRequest(Frame):
    """Legacy ``allRooms()``: ``{"requestid","type":2}``; every node answers with
    :class:`LegacyRoomsResponse`."""

    request_id: str
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.LEGACY
    type: ClassVar[LegacyRequestType] = LegacyRequestType.ALL_ROOMS


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyRemoteJoinRequest(Frame):
    """Legacy ``remoteJoin(sid, room)``: ``{"requestid","type":3,"sid","room"}``; the owner
    answers with :class:`LegacyEmptyResponse`."""

    request_id: str
    sid: Any
    room: Any
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.LEGACY
    type: ClassVar[LegacyRequestType] = LegacyRequestType.REMOTE_JOIN


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyRemoteLeaveRequest(Frame):
    """Legacy ``remoteLeave(sid, room)``: ``{"requestid","type":4,"sid","room"}``."""

    request_id: str
    sid: Any
    room: Any
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.LEGACY
    type: ClassVar[LegacyRequestType] = LegacyRequestType.REMOTE_LEAVE


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyCustomRequest(Frame):
    """Legacy ``customRequest(data)``: ``{"requestid","type":5,"data"}`` (``data`` omitted
    when UNDEFINED); every node answers with :class:`LegacyDataResponse`."""

    request_id: str
    data: Any = UNDEFINED
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.LEGACY
    type: ClassVar[LegacyRequestType] = LegacyRequestType.CUSTOM_REQUEST


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyRemoteDisconnectRequest(Frame):
    """Legacy ``remoteDisconnect(sid, close)``: ``{"requestid","type":6,"sid","close"}``
    (``close`` omitted when UNDEFINED)."""

    request_id: str
    sid: Any
    close: bool | Undefined = UNDEFINED
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.LEGACY
    type: ClassVar[LegacyRequestType] = LegacyRequestType.REMOTE_DISCONNECT


# --------------------------------------------------------------------------- legacy responses


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyClientsResponse(Frame):
    """``{"requestid","clients":[...]}``: the answer to ``clients``."""

    request_id: str
    clients: tuple[Any, ...]
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.LEGACY


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyRoomsResponse(Frame):
    """``{"requestid","rooms":[...]}``: the answer to ``clientRooms`` and ``allRooms``."""

    request_id: str
    rooms: tuple[Any, ...]
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.LEGACY


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyDataResponse(Frame):
    """``{"requestid","data":...}``: a ``customHook`` answer."""

    request_id: str
    data: Any
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.LEGACY


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyEmptyResponse(Frame):
    """``{"requestid"}``: remoteJoin/Leave/Disconnect done, or a hook that answered
    ``undefined``."""

    request_id: str
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.LEGACY


# --------------------------------------------------------------------------- current requests


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketsRequest(Frame):
    """8.x SOCKETS (0): ``{"uid","requestId","type":0,"rooms"}`` (answered, never sent by
    8.3.0)."""

    uid: str | None
    request_id: str
    rooms: tuple[Any, ...] = ()
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT
    type: ClassVar[RequestType] = RequestType.SOCKETS


@dataclass(frozen=True, slots=True, kw_only=True)
class AllRoomsRequest(Frame):
    """8.x ALL_ROOMS (1): ``{"uid","requestId","type":1}``."""

    uid: str | None
    request_id: str
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT
    type: ClassVar[RequestType] = RequestType.ALL_ROOMS


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteJoinRequest(Frame):
    """8.x REMOTE_JOIN (2). ``socketsJoin`` form: ``{"uid","type":2,"opts":{"rooms","except"},
    "rooms"}`` (no uid from the emitter, no answer); 7.x form: ``{"uid","requestId","type":2,
    "sid","room"}``. Absent keys are None."""

    uid: str | None = None
    request_id: str | None = None
    opts: dict[str, Any] | None = None
    rooms: tuple[Any, ...] | None = None
    sid: Any = None
    room: Any = None
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT
    type: ClassVar[RequestType] = RequestType.REMOTE_JOIN


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteLeaveRequest(Frame):
    """8.x REMOTE_LEAVE (3): as :class:`RemoteJoinRequest`."""

    uid: str | None = None
    request_id: str | None = None
    opts: dict[str, Any] | None = None
    rooms: tuple[Any, ...] | None = None
    sid: Any = None
    room: Any = None
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT
    type: ClassVar[RequestType] = RequestType.REMOTE_LEAVE


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteDisconnectRequest(Frame):
    """8.x REMOTE_DISCONNECT (4): ``{"uid","type":4,"opts","close"}``; 7.x form with
    ``requestId`` and ``sid``. Absent keys are None (``close`` UNDEFINED)."""

    uid: str | None = None
    request_id: str | None = None
    opts: dict[str, Any] | None = None
    sid: Any = None
    close: bool | Undefined = UNDEFINED
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT
    type: ClassVar[RequestType] = RequestType.REMOTE_DISCONNECT


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteFetchRequest(Frame):
    """8.x REMOTE_FETCH (5): ``{"uid","requestId","type":5,"opts":{"rooms","except"}}``."""

    uid: str | None
    request_id: str
    opts: dict[str, Any] = field(default_factory=dict)
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT
    type: ClassVar[RequestType] = RequestType.REMOTE_FETCH


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSideEmitRequest(Frame):
    """8.x SERVER_SIDE_EMIT (6): ``{"uid","requestId"?,"type":6,"data":[ev,...args]}``."""

    uid: str | None
    data: list[Any]
    request_id: str | None = None
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT
    type: ClassVar[RequestType] = RequestType.SERVER_SIDE_EMIT


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastAckRequest(Frame):
    """8.x BROADCAST (7), msgpack: ``{"uid","requestId","type":7,"packet","opts"}``."""

    uid: str
    request_id: str
    packet: dict[str, Any]
    opts: dict[str, Any]
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT
    type: ClassVar[RequestType] = RequestType.BROADCAST


# --------------------------------------------------------------------------- current responses


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketsResponse(Frame):
    """``{"requestId","sockets":[...]}``: socket ids (SOCKETS) or socket details
    ``{id, handshake, rooms, data}`` (REMOTE_FETCH).

    ``to_uid`` is the requester's uid when sent on ``K-response#N#uid#``.
    """

    request_id: str
    sockets: tuple[Any, ...]
    to_uid: str | None = None
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomsResponse(Frame):
    """``{"requestId","rooms":[...]}``: the answer to ALL_ROOMS."""

    request_id: str
    rooms: tuple[Any, ...]
    to_uid: str | None = None
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT


@dataclass(frozen=True, slots=True, kw_only=True)
class EmptyResponse(Frame):
    """``{"requestId"}``: the 7.x-form REMOTE_JOIN/LEAVE/DISCONNECT acknowledgement."""

    request_id: str
    to_uid: str | None = None
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSideEmitResponse(Frame):
    """``{"type":6,"requestId","data"}``: a serverSideEmit ack (``data`` = first ack arg)."""

    request_id: str
    data: Any = UNDEFINED
    to_uid: str | None = None
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT
    type: ClassVar[RequestType] = RequestType.SERVER_SIDE_EMIT


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastClientCountResponse(Frame):
    """``{"type":8,"requestId","clientCount"}``."""

    request_id: str
    client_count: int
    to_uid: str | None = None
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT
    type: ClassVar[RequestType] = RequestType.BROADCAST_CLIENT_COUNT


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastAckResponse(Frame):
    """msgpack ``{"type":9,"requestId","packet"}``: one client's ack (first argument)."""

    request_id: str
    packet: Any
    to_uid: str | None = None
    nsp: str = "/"
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.CURRENT
    type: ClassVar[RequestType] = RequestType.BROADCAST_ACK


# --------------------------------------------------------------------------- sharded


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterMessage(Frame):
    """A sharded-adapter message ``{"type","data","uid","nsp"}``.

    Attributes:
        type: The :class:`ClusterMessageType` (kept as a plain int if unknown).
        data: The ``data`` map in wire order (UNDEFINED when absent, e.g. heartbeats).
        uid: The sender's 16-hex-char uid.
        nsp: ``nsp`` of the envelope (the namespace of the channel if absent).
        binary: True when msgpack encoded (Node does so when ``data`` holds binary).
        target: The channel's part after the namespace: a room (dynamic broadcast) or the
            requester's uid (responses on ``K#N#uid#``); None on ``K#N#``.
        has_nsp: False when the envelope had no ``nsp`` key (8.2.x).
    """

    type: int
    data: Any
    uid: Any
    nsp: str = "/"
    binary: bool = False
    target: str | None = None
    has_nsp: bool = True
    prefix: str = DEFAULT_PREFIX
    dialect: Dialect = Dialect.SHARDED

    @property
    def request_id(self) -> Any:
        """``data.requestId`` or None."""
        return self.data.get("requestId") if isinstance(self.data, dict) else None


# --------------------------------------------------------------------------- python-socketio


@dataclass(frozen=True, slots=True, kw_only=True)
class PySocketIOMessage(Frame):
    """A python-socketio pub/sub manager message (``{"method": "emit", ...}``).

    Attributes:
        method: ``emit``, ``disconnect``, ``enter_room``, ``leave_room``, ``close_room``,
            ``callback``...
        body: The whole JSON object in wire order.
        channel: The channel it travels on.
    """

    method: str
    body: dict[str, Any]
    channel: str = "socketio"
    nsp: str | None = None
    dialect: Dialect = Dialect.PYSOCKETIO

    @property
    def host_id(self) -> Any:
        """The sender's ``host_id``."""
        return self.body.get("host_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class PickledMessage(Frame):
    """A python-socketio < 5.14 message, pickled.

    It is only unpickled when the caller passed ``allow_pickle=True`` (unpickling runs
    arbitrary code from whoever can publish on Redis).

    Attributes:
        payload: The raw pickle bytes.
        value: The unpickled object when allowed and successful, else None.
        unpickled: Whether ``value`` holds the unpickled object.
        channel: The channel it travels on.
    """

    payload: bytes
    value: Any = None
    unpickled: bool = False
    channel: str = "socketio"
    nsp: str | None = None
    dialect: Dialect = Dialect.PYSOCKETIO


FRAME_KINDS: tuple[type[Frame], ...] = (
    Broadcast,
    LegacyClientsRequest,
    LegacyClientRoomsRequest,
    LegacyAllRoomsRequest,
    LegacyRemoteJoinRequest,
    LegacyRemoteLeaveRequest,
    LegacyCustomRequest,
    LegacyRemoteDisconnectRequest,
    LegacyClientsResponse,
    LegacyRoomsResponse,
    LegacyDataResponse,
    LegacyEmptyResponse,
    SocketsRequest,
    AllRoomsRequest,
    RemoteJoinRequest,
    RemoteLeaveRequest,
    RemoteDisconnectRequest,
    RemoteFetchRequest,
    ServerSideEmitRequest,
    BroadcastAckRequest,
    SocketsResponse,
    RoomsResponse,
    EmptyResponse,
    ServerSideEmitResponse,
    BroadcastClientCountResponse,
    BroadcastAckResponse,
    ClusterMessage,
    PySocketIOMessage,
    PickledMessage,
)
"""Every kind of frame :func:`siotools.protocol.decode` can return."""

LegacyRequest = (
    LegacyClientsRequest
    | LegacyClientRoomsRequest
    | LegacyAllRoomsRequest
    | LegacyRemoteJoinRequest
    | LegacyRemoteLeaveRequest
    | LegacyCustomRequest
    | LegacyRemoteDisconnectRequest
)
"""A socket.io-redis 4.x/5.x request (``socket.io-request#<nsp>#``)."""
LegacyResponse = (
    LegacyClientsResponse | LegacyRoomsResponse | LegacyDataResponse | LegacyEmptyResponse
)
"""A socket.io-redis 4.x/5.x response (``socket.io-response#<nsp>#``)."""
CurrentRequest = (
    SocketsRequest
    | AllRoomsRequest
    | RemoteJoinRequest
    | RemoteLeaveRequest
    | RemoteDisconnectRequest
    | RemoteFetchRequest
    | ServerSideEmitRequest
    | BroadcastAckRequest
)
"""A @socket.io/redis-adapter 7.x/8.x request (classic and sharded)."""
CurrentResponse = (
    SocketsResponse
    | RoomsResponse
    | EmptyResponse
    | ServerSideEmitResponse
    | BroadcastClientCountResponse
    | BroadcastAckResponse
)
"""A @socket.io/redis-adapter 7.x/8.x response (classic and sharded)."""
Request = LegacyRequest | CurrentRequest
"""A cluster request of any dialect."""
Response = LegacyResponse | CurrentResponse
"""A cluster response of any dialect."""
