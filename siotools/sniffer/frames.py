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
from functools import partial
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
    Request,
    Response,
    RoomsResponse,
    ServerSideEmitRequest,
    ServerSideEmitResponse,
    SocketsRequest,
    SocketsResponse,
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


_UNKNOWN_ROW: Final = Row("unknown", None, None, None, None, None, None, None, None, None)
_PICKLED_ROW: Final = Row("unknown", None, None, None, None, None, None, None, None, "pickle")


def _unknown_row() -> Row:
    return _UNKNOWN_ROW


# --------------------------------------------------------------------------- describe

# Row's own constructor is a Python function taking the fields by name: building the tuple
# directly, as NamedTuple._make does, halves what a row costs (every field is given).
_row: Final[Callable[[tuple[Any, ...]], Row]] = partial(tuple.__new__, Row)


def describe(frame: Frame) -> Row:
    """Flatten a frame into one row's fields.

    ``rooms``/``except_`` are the target and excluded rooms (a request's rooms, a rooms
    response's rooms), ``args`` the event arguments (or a response's payload: clients,
    sockets, data, client count), ``uid`` the sender's uid (a response's addressee on
    8.x per-requester channels, python-socketio's ``host_id``), ``type`` a readable type
    name (``EVENT``, ``ALL_ROOMS``, ``ROOMS``, ``FETCH_SOCKETS``, a python-socketio method).
    """
    # Each case costs an isinstance, so the frames a capture holds most come first:
    # sharded and stream messages (heartbeats), broadcasts, 8.x answers and requests,
    # then the legacy ones and python-socketio's.
    match frame:
        case ClusterMessage():  # a StreamMessage (a stream entry) is one too
            return _cluster(frame)
        case Broadcast():
            return _broadcast(frame)
        case SocketsResponse():
            return _response(frame, None, list(frame.sockets), frame.to_uid, "SOCKETS")
        case RoomsResponse():
            return _response(frame, list(frame.rooms), None, frame.to_uid, "ROOMS")
        case BroadcastClientCountResponse():
            return _response(
                frame, None, frame.client_count, frame.to_uid, "BROADCAST_CLIENT_COUNT"
            )
        case BroadcastAckResponse():
            return _response(frame, None, frame.packet, frame.to_uid, "BROADCAST_ACK")
        case ServerSideEmitResponse():
            return _response(frame, None, frame.data, frame.to_uid, "SERVER_SIDE_EMIT")
        case EmptyResponse():
            return _response(frame, None, None, frame.to_uid, "EMPTY")
        case SocketsRequest():
            return _request(frame, list(frame.rooms), None, None, None, None, frame.uid)
        case AllRoomsRequest():
            return _request(frame, None, None, None, None, None, frame.uid)
        case RemoteFetchRequest() | RemoteDisconnectRequest():
            opts = frame.opts  # whom they are for is in opts alone
            if isinstance(opts, dict):
                rooms = _listed(opts.get("rooms"))
                return _request(frame, rooms, opts.get("except"), None, None, None, frame.uid)
            return _request(frame, None, None, None, None, None, frame.uid)
        case ServerSideEmitRequest():
            data = frame.data
            if data:
                return _request(frame, None, None, data[0], list(data[1:]), None, frame.uid)
            return _request(frame, None, None, None, None, None, frame.uid)
        case BroadcastAckRequest():
            return _broadcast_ack(frame)
        case RemoteJoinRequest() | RemoteLeaveRequest():
            return _membership(frame)
        case LegacyClientsResponse():
            return _response(frame, None, list(frame.clients), None, "CLIENTS")
        case LegacyRoomsResponse():
            return _response(frame, list(frame.rooms), None, None, "ROOMS")
        case LegacyDataResponse():
            return _response(frame, None, frame.data, None, "DATA")
        case LegacyEmptyResponse():
            return _response(frame, None, None, None, "EMPTY")
        case LegacyClientsRequest():
            return _request(frame, list(frame.rooms), None, None, None, None, None)
        case LegacyRemoteJoinRequest() | LegacyRemoteLeaveRequest():
            room = frame.room
            rooms = [room] if room is not None else None
            return _request(frame, rooms, None, None, None, None, None)
        case LegacyCustomRequest():
            return _request(frame, None, None, None, frame.data, None, None)
        case LegacyClientRoomsRequest() | LegacyAllRoomsRequest() | LegacyRemoteDisconnectRequest():
            return _request(frame, None, None, None, None, None, None)
        case PySocketIOMessage():
            return _pysocketio(frame)
        case PickledMessage():
            return _PICKLED_ROW
    return _UNKNOWN_ROW


def _listed(rooms: Any) -> list[Any] | None:
    return list(rooms) if rooms is not None else None


def _broadcast(f: Broadcast) -> Row:
    data = f.data
    return _row(
        (
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
    )


def _response(f: Response, rooms: Any, args: Any, uid: Any, type_name: str) -> Row:
    return _row(("response", f.nsp, rooms, None, None, args, None, uid, f.request_id, type_name))


def _request(
    f: Request, rooms: Any, except_: Any, event: Any, args: Any, flags: Any, uid: Any
) -> Row:
    name = _TYPE_NAMES.get(type(f))
    if name is None:
        # A request's type is a class attribute: its enum name (a Python-level property
        # in enum) is looked up once per class.
        name = _TYPE_NAMES[type(f)] = f.type.name
    return _row(("request", f.nsp, rooms, except_, event, args, flags, uid, f.request_id, name))


_TYPE_NAMES: Final[dict[type, str]] = {}


def _membership(f: RemoteJoinRequest | RemoteLeaveRequest) -> Row:
    # socketsJoin/Leave name the rooms to join (``rooms``) and whom (``opts``); the 7.x
    # form one socket (``sid``) and one room (``room``).
    rooms: Any = f.rooms
    if rooms is None and f.room is not None:
        rooms = [f.room]
    opts = f.opts
    except_ = None
    if isinstance(opts, dict):
        if rooms is None:
            rooms = opts.get("rooms")
        except_ = opts.get("except")
    return _request(f, _listed(rooms), except_, None, None, None, f.uid)


def _broadcast_ack(f: BroadcastAckRequest) -> Row:
    opts = f.opts
    rooms = except_ = flags = event = args = None
    if isinstance(opts, dict):
        rooms = _listed(opts.get("rooms"))
        except_ = opts.get("except")
        flags = opts.get("flags")
    data = f.packet.get("data")
    if isinstance(data, list) and data:
        event, args = data[0], data[1:]
    return _request(f, rooms, except_, event, args, flags, f.uid)


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
_CLUSTER_TYPE_NAMES: Final = {t.value: t.name for t in ClusterMessageType}


def _cluster(f: ClusterMessage) -> Row:
    data = f.data if isinstance(f.data, dict) else {}
    kind = _CLUSTER_KIND.get(f.type, "unknown")
    type_name = _CLUSTER_TYPE_NAMES.get(f.type)
    if type_name is None:  # a type this version does not know, kept as its number
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
    return _row(
        (
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
    )


_PY_KIND: Final = {"emit": "broadcast", "callback": "response"}


def _pysocketio(f: PySocketIOMessage) -> Row:
    body = f.body
    room = body.get("room")
    rooms = room if isinstance(room, list) else ([room] if room is not None else None)
    skip = body.get("skip_sid")
    except_ = skip if isinstance(skip, list) else ([skip] if skip is not None else None)
    return _row(
        (
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
    )


def expects_response(frame: Frame) -> bool:
    """Whether some node must answer this frame (a request with a request id)."""
    match frame:
        case ClusterMessage():  # BROADCAST, FETCH_SOCKETS, SERVER_SIDE_EMIT
            return frame.type in (3, 7, 9) and frame.request_id is not None
        case Broadcast():
            return False
        case (
            RemoteFetchRequest()
            | ServerSideEmitRequest()
            | BroadcastAckRequest()
            | SocketsRequest()
            | AllRoomsRequest()
        ):
            return frame.request_id is not None
        case (
            LegacyClientsRequest()
            | LegacyClientRoomsRequest()
            | LegacyAllRoomsRequest()
            | LegacyRemoteJoinRequest()
            | LegacyRemoteLeaveRequest()
            | LegacyCustomRequest()
            | LegacyRemoteDisconnectRequest()
        ):
            return True  # every legacy request is answered
    return False  # broadcasts, answers, socketsJoin/Leave and disconnectSockets


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
