"""What the sniffer hands out: :class:`SniffedFrame`, the row view of a frame, filters.

A sniffed message is kept as received (channel, payload bytes, receive time) plus what
:func:`siotools.protocol.decode` made of it. :func:`describe` flattens any frame into the
fields of one table row (kind, namespace, rooms, event...), which the live printer, the
filters and :meth:`Capture.to_pandas` share.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from siotools.protocol import (
    AllRoomsRequest,
    Broadcast,
    BroadcastAckRequest,
    BroadcastAckResponse,
    BroadcastClientCountResponse,
    ClusterMessage,
    ClusterMessageType,
    Dialect,
    EmptyResponse,
    Frame,
    LegacyAllRoomsRequest,
    LegacyClientRoomsRequest,
    LegacyClientsRequest,
    LegacyClientsResponse,
    LegacyCustomRequest,
    LegacyDataResponse,
    LegacyEmptyResponse,
    LegacyRemoteDisconnectRequest,
    LegacyRemoteJoinRequest,
    LegacyRemoteLeaveRequest,
    LegacyRoomsResponse,
    PickledMessage,
    PySocketIOMessage,
    RemoteDisconnectRequest,
    RemoteFetchRequest,
    RemoteJoinRequest,
    RemoteLeaveRequest,
    RequestType,
    RoomsResponse,
    ServerSideEmitRequest,
    ServerSideEmitResponse,
    SocketsRequest,
    SocketsResponse,
    StreamMessage,
    dialect_family,
    safe,
)

__all__ = [
    "KINDS",
    "FrameFilter",
    "Row",
    "SniffFilter",
    "SniffedFrame",
    "describe",
    "dialect_family",
    "jsonable",
]

KINDS: Final = ("broadcast", "request", "response", "heartbeat", "unknown")
"""Values of the ``kind`` field: what a message does in the cluster."""


class Row(NamedTuple):
    """The flat, table-shaped view of one decoded frame (see :func:`describe`)."""

    kind: str
    nsp: str | None
    rooms: Any
    except_: Any
    event: Any
    args: Any
    flags: Any
    uid: Any
    request_id: Any
    type: str | None


@dataclass(frozen=True, slots=True)
class SniffedFrame:
    """One message seen on Redis.

    Attributes:
        time_ns: Receive time, nanoseconds since the epoch (UTC). For frames taken from
            MONITOR it is the Redis server's timestamp.
        channel: The channel, as text.
        size: Payload size in bytes.
        dialect: The detected dialect, or None when the payload could not be decoded.
        frame: The decoded frame, or None when it could not be decoded.
        error: Why decoding failed, or None.
        payload: The raw payload bytes.
        pattern: The PSUBSCRIBE pattern that matched, or None (MONITOR, saved captures).
        sharded: True for SPUBLISH traffic (seen through MONITOR only).
    """

    time_ns: int
    channel: str
    size: int
    dialect: Dialect | None
    frame: Frame | None
    error: str | None
    payload: bytes
    pattern: str | None = None
    sharded: bool = False

    @property
    def time(self) -> dt.datetime:
        """Receive time as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.time_ns / 1e9, tz=dt.UTC)

    @property
    def ok(self) -> bool:
        """Whether the payload decoded."""
        return self.frame is not None

    @property
    def row(self) -> Row:
        """The frame flattened into table fields (see :func:`describe`)."""
        if self.frame is None:
            return _unknown_row()
        return describe(self.frame)

    @property
    def kind(self) -> str:
        """``broadcast``, ``request``, ``response``, ``heartbeat`` or ``unknown``."""
        return self.row.kind

    @property
    def nsp(self) -> str | None:
        """The namespace."""
        return self.row.nsp

    @property
    def event(self) -> Any:
        """The event name of a broadcast (or server-side emit), else None."""
        return self.row.event


def _unknown_row() -> Row:
    return Row("unknown", None, None, None, None, None, None, None, None, None)


# --------------------------------------------------------------------------- describe


def _broadcast(f: Any) -> Row:
    data = f.data
    return Row(
        "broadcast",
        f.nsp,
        f.rooms,
        f.except_,
        data[0] if data else None,
        data[1:],
        f.flags,
        f.uid,
        None,
        "BINARY_EVENT" if f.packet_type == 5 else "EVENT",
    )


def _request(f: Any) -> Row:
    rooms = getattr(f, "rooms", None)
    if rooms is None and getattr(f, "room", None) is not None:
        rooms = [f.room]
    opts = getattr(f, "opts", None)
    except_ = None
    if isinstance(opts, dict):
        if rooms is None or type(f) is RemoteFetchRequest:
            rooms = rooms or opts.get("rooms")
        except_ = opts.get("except")
    event = args = flags = None
    if type(f) is ServerSideEmitRequest and f.data:
        event, args = f.data[0], list(f.data[1:])
    elif type(f) is BroadcastAckRequest:
        data = f.packet.get("data")
        if isinstance(data, list) and data:
            event, args = data[0], data[1:]
        flags = opts.get("flags") if isinstance(opts, dict) else None
    elif type(f) is LegacyCustomRequest:
        args = f.data
    return Row(
        "request",
        f.nsp,
        list(rooms) if rooms is not None else None,
        except_,
        event,
        args,
        flags,
        getattr(f, "uid", None),
        f.request_id,
        _type_name(f),
    )


_TYPE_NAMES: Final[dict[type, str]] = {}


def _type_name(f: Any) -> str:
    # A request's type is a class attribute: its enum name (a Python-level property in
    # enum) is looked up once per class.
    cls = type(f)
    name = _TYPE_NAMES.get(cls)
    if name is None:
        name = _TYPE_NAMES[cls] = f.type.name
    return name


_RESPONSE_TYPE: Final[dict[type, str]] = {
    LegacyClientsResponse: "CLIENTS",
    LegacyRoomsResponse: "ROOMS",
    LegacyDataResponse: "DATA",
    LegacyEmptyResponse: "EMPTY",
    SocketsResponse: "SOCKETS",
    RoomsResponse: "ROOMS",
    EmptyResponse: "EMPTY",
    ServerSideEmitResponse: "SERVER_SIDE_EMIT",
    BroadcastClientCountResponse: "BROADCAST_CLIENT_COUNT",
    BroadcastAckResponse: "BROADCAST_ACK",
}


def _response(f: Any) -> Row:
    rooms = getattr(f, "rooms", None)
    args: Any = None
    if type(f) is LegacyClientsResponse:
        args = list(f.clients)
    elif type(f) is SocketsResponse:
        args = list(f.sockets)
    elif type(f) in (LegacyDataResponse, ServerSideEmitResponse):
        args = f.data
    elif type(f) is BroadcastClientCountResponse:
        args = f.client_count
    elif type(f) is BroadcastAckResponse:
        args = f.packet
    return Row(
        "response",
        f.nsp,
        list(rooms) if rooms is not None else None,
        None,
        None,
        args,
        None,
        getattr(f, "to_uid", None),
        f.request_id,
        _RESPONSE_TYPE[type(f)],
    )


_CLUSTER_KIND: Final = {
    1: "heartbeat",
    2: "heartbeat",
    13: "heartbeat",
    3: "broadcast",
    4: "request",
    5: "request",
    6: "request",
    7: "request",
    9: "request",
    8: "response",
    10: "response",
    11: "response",
    12: "response",
}


def _cluster(f: Any) -> Row:
    data = f.data if isinstance(f.data, dict) else {}
    kind = _CLUSTER_KIND.get(f.type, "unknown")
    try:
        type_name: str | None = ClusterMessageType(f.type).name
    except ValueError:
        type_name = str(f.type)
    raw_opts = data.get("opts")
    opts: dict[str, Any] = raw_opts if isinstance(raw_opts, dict) else {}
    raw_packet = data.get("packet")
    packet: dict[str, Any] = raw_packet if isinstance(raw_packet, dict) else {}
    event = args = None
    pdata = packet.get("data")
    if isinstance(pdata, list) and pdata:
        event, args = pdata[0], pdata[1:]
    elif isinstance(data.get("data"), list) and data["data"]:
        event, args = data["data"][0], data["data"][1:]
    rooms = opts.get("rooms")
    if rooms is None and f.target is not None and kind == "broadcast":
        rooms = [f.target]
    return Row(
        kind,
        f.nsp,
        rooms,
        opts.get("except"),
        event,
        args,
        opts.get("flags"),
        f.uid,
        f.request_id,
        type_name,
    )


_PY_KIND: Final = {"emit": "broadcast", "callback": "response"}


def _pysocketio(f: Any) -> Row:
    body = f.body
    room = body.get("room")
    rooms = room if isinstance(room, list) else ([room] if room is not None else None)
    skip = body.get("skip_sid")
    except_ = skip if isinstance(skip, list) else ([skip] if skip is not None else None)
    return Row(
        _PY_KIND.get(f.method, "request"),
        body.get("namespace", f.nsp),
        rooms,
        except_,
        body.get("event"),
        body.get("data"),
        None,
        body.get("host_id"),
        body.get("id"),
        f.method,
    )


def _pickled(f: Any) -> Row:
    return Row("unknown", None, None, None, None, None, None, None, None, "pickle")


_DESCRIBE: Final[dict[type, Callable[[Any], Row]]] = {Broadcast: _broadcast}
_cls: type
for _cls in (
    LegacyClientsRequest,
    LegacyClientRoomsRequest,
    LegacyAllRoomsRequest,
    LegacyRemoteJoinRequest,
    LegacyRemoteLeaveRequest,
    LegacyCustomRequest,
    LegacyRemoteDisconnectRequest,
    SocketsRequest,
    AllRoomsRequest,
    RemoteJoinRequest,
    RemoteLeaveRequest,
    RemoteDisconnectRequest,
    RemoteFetchRequest,
    ServerSideEmitRequest,
    BroadcastAckRequest,
):
    _DESCRIBE[_cls] = _request
for _cls in _RESPONSE_TYPE:
    _DESCRIBE[_cls] = _response
_DESCRIBE[ClusterMessage] = _cluster
_DESCRIBE[StreamMessage] = _cluster  # a stream entry is a ClusterMessage too
_DESCRIBE[PySocketIOMessage] = _pysocketio
_DESCRIBE[PickledMessage] = _pickled


def describe(frame: Frame) -> Row:
    """Flatten a frame into one row's fields.

    ``rooms``/``except_`` are the target and excluded rooms (a request's rooms, a rooms
    response's rooms), ``args`` the event arguments (or a response's payload: clients,
    sockets, data, client count), ``uid`` the sender's uid (a response's addressee on
    8.x per-requester channels, python-socketio's ``host_id``), ``type`` a readable type
    name (``EVENT``, ``ALL_ROOMS``, ``ROOMS``, ``FETCH_SOCKETS``, a python-socketio method).
    """
    fn = _DESCRIBE.get(type(frame))
    return fn(frame) if fn is not None else _unknown_row()


_REQUESTS_ANSWERED: Final = frozenset(
    {
        RequestType.SOCKETS,
        RequestType.ALL_ROOMS,
        RequestType.REMOTE_FETCH,
        RequestType.SERVER_SIDE_EMIT,
        RequestType.BROADCAST,
    }
)


_ANSWERED_CLASS: Final[dict[type, int]] = {}
"""Per frame class: 0 never answered, 1 always (legacy requests), 2 when it has a request id."""


def _answered_class(cls: type, frame: Frame) -> int:
    if cls.__name__.startswith("Legacy") and cls.__name__.endswith("Request"):
        return 1
    rtype = getattr(frame, "type", None)
    return (
        2
        if isinstance(rtype, RequestType)
        and rtype in _REQUESTS_ANSWERED
        and _DESCRIBE.get(cls) is _request
        else 0
    )


def expects_response(frame: Frame) -> bool:
    """Whether some node must answer this frame (a request with a request id)."""
    if isinstance(frame, ClusterMessage):
        return frame.type in (3, 7, 9) and frame.request_id is not None
    # What the class says is worked out once per class (the sniffer asks for every row).
    cls = type(frame)
    answered = _ANSWERED_CLASS.get(cls)
    if answered is None:
        answered = _ANSWERED_CLASS[cls] = _answered_class(cls, frame)
    if answered == 2:
        return getattr(frame, "request_id", None) is not None
    return answered == 1


# --------------------------------------------------------------------------- filters


class _Verdict(enum.Enum):
    REJECT = 0
    ACCEPT = 1
    DECODE = 2


@dataclass(frozen=True, slots=True)
class SniffFilter:
    """Keep only frames matching every given field (None = any).

    Attributes:
        nsp: The namespace.
        room: A room the frame targets (in ``rooms``).
        event: The event name.
        kind: ``broadcast``, ``request`` or ``response`` (or ``heartbeat``).
    """

    nsp: str | None = None
    room: str | None = None
    event: str | None = None
    kind: str | None = None

    def __call__(self, frame: SniffedFrame) -> bool:
        """Whether ``frame`` matches."""
        row = frame.row
        if self.kind is not None and row.kind != self.kind:
            return False
        if self.nsp is not None and row.nsp != self.nsp:
            return False
        if self.event is not None and row.event != self.event:
            return False
        if self.room is not None:
            rooms = row.rooms
            if not isinstance(rooms, (list, tuple)) or self.room not in rooms:
                return False
        return True

    @property
    def empty(self) -> bool:
        """True when the filter keeps everything."""
        return self.nsp is None and self.room is None and self.event is None and self.kind is None

    def channel_verdict(self, kind: str | None, nsp: str | None, room: str | None) -> _Verdict:
        """Decide from a classic channel alone (``kind`` from its shape) when possible.

        Args:
            kind: ``broadcast``/``request``/``response`` for classic adapter channels, or
                None when the channel alone does not say (python-socketio, sharded).
            nsp: The channel's namespace (None when it has none).
            room: The room of a single-room broadcast channel.
        """
        if kind is None:
            return _Verdict.DECODE
        if self.kind is not None and kind != self.kind:
            return _Verdict.REJECT
        if self.nsp is not None and nsp is not None and nsp != self.nsp:
            return _Verdict.REJECT
        if self.room is not None and room is not None:
            if room != self.room:
                return _Verdict.REJECT
            return _Verdict.ACCEPT if self.event is None else _Verdict.DECODE
        if self.room is None and self.event is None:
            return _Verdict.ACCEPT
        return _Verdict.DECODE


FrameFilter = SniffFilter | Callable[[SniffedFrame], bool]
"""A :class:`SniffFilter` or any predicate on :class:`SniffedFrame`."""


# --------------------------------------------------------------------------- json


def jsonable(value: Any) -> Any:
    """A JSON-serialisable, printable rendering of a decoded value.

    Binary becomes ``{"$bin": base64}``, a Date an ISO string, ``undefined`` null, typed
    arrays ``{"$typed": kind, "$bin": base64}``, ``NaN`` ``{"$num": "NaN"}``; tuples become
    lists, enums their value; strings have surrogates and control characters escaped and
    nesting is cut at :data:`siotools.protocol.safe.MAX_DEPTH` (see that module).
    """
    return safe.jsonable(value)
