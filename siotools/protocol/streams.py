"""@socket.io/redis-streams-adapter entries: a Redis stream entry <-> a ClusterAdapter message.

The streams adapter (0.2.x and 0.3.x, ``lib/index.ts`` ``encode``/``decode``) XADDs each
socket.io-adapter ``ClusterMessage`` to one stream (``streamName``, default ``socket.io``,
trimmed with ``MAXLEN ~ maxLen``) as the field/value pairs, in this order::

    uid   the sender's uid (16 hex chars; "emitter" for @socket.io/redis-streams-emitter)
    nsp   the namespace
    type  the MessageType as decimal text ("3" = BROADCAST, "2" = HEARTBEAT, ...)
    data  JSON.stringify(data), or, when a type that may carry binary (BROADCAST,
          FETCH_SOCKETS_RESPONSE, SERVER_SIDE_EMIT(_RESPONSE), BROADCAST_ACK) does, the
          base64 of @msgpack/msgpack's encoding; absent when the message has no data
          (heartbeats, ADAPTER_CLOSE)

Readers tell the two ``data`` forms apart by the first character (``{`` = JSON). 0.3.x
publishes its ephemeral messages (broadcasts with an ack, FETCH_SOCKETS, SERVER_SIDE_EMIT
and every response) with PUBLISH instead, msgpack-encoded on ``<channelPrefix>#<nsp>#`` and
``<channelPrefix>#<nsp>#<uid>#``, exactly like the sharded adapter: :func:`decode_ephemeral`.
0.2.x (ClusterAdapterWithHeartbeat) puts everything on the stream, heartbeats and
ADAPTER_CLOSE included; 0.3.x sends no heartbeats.

Connection state recovery keeps each session under ``<sessionKeyPrefix><pid>`` (default
``sio:session:``) as the base64 of msgpack ``{sid, pid, rooms, data}``, with ``PX``
``maxDisconnectionDuration``: :func:`decode_session`.

:func:`heard_as` tells those 0.3.x pub/sub maps from the sharded adapter's by how they were
heard. The emitter side mirrors @socket.io/redis-streams-emitter (socketio/socket.io
monorepo, ``packages/socket.io-redis-streams-emitter/lib/index.ts``):
:func:`emitter_broadcast` / :func:`emitter_message` / :func:`emitter_opts` build its
messages, :func:`xadd_args` its ``XADD``, and :func:`stream_for` /
:func:`emitter_stream_for` / :func:`streams_for` name 0.3.x's ``streamCount`` streams.

Everything here is pure; malformed input raises :class:`~siotools.exceptions.DecodeError`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from siotools.exceptions import DecodeError, EncodeError
from siotools.protocol.frames import ClusterMessage, ClusterMessageType, Dialect, Frame
from siotools.protocol.jsjson import js_parse, js_stringify
from siotools.protocol.msgpack_codec import MsgpackFlavor, pack, unpack
from siotools.protocol.values import UNDEFINED, has_binary

__all__ = [
    "DEFAULT_MAX_LEN",
    "DEFAULT_SESSION_PREFIX",
    "DEFAULT_STREAM",
    "EMITTER_UID",
    "FIELD_ORDER",
    "RECORD_MARK",
    "RecoverySession",
    "StreamMessage",
    "decode_entry",
    "decode_ephemeral",
    "decode_record",
    "decode_session",
    "emitter_broadcast",
    "emitter_message",
    "emitter_opts",
    "emitter_stream_for",
    "encode_entry",
    "encode_session",
    "entry_id_ms",
    "heard_as",
    "is_record",
    "js_hash_code",
    "pack_record",
    "stream_for",
    "streams_for",
    "xadd_args",
]

DEFAULT_STREAM: Final = "socket.io"
"""The adapter's default ``streamName``."""
DEFAULT_SESSION_PREFIX: Final = "sio:session:"
"""The adapter's default ``sessionKeyPrefix``."""
EMITTER_UID: Final = "emitter"
"""The ``uid`` of @socket.io/redis-streams-emitter's entries."""
FIELD_ORDER: Final = ("uid", "nsp", "type", "data")
"""The fields of an entry, in the order the adapter writes them."""

RECORD_MARK: Final = b"\xc1"
"""The first byte of a packed stream-entry record. 0xc1 is the one byte msgpack never
uses, and JSON and pickle never start with it, so no pub/sub payload of any adapter
begins with it: a capture keeps stream entries and pub/sub messages in one column."""

_ENTRY_ID: Final = re.compile(r"(0|[1-9][0-9]*)-(0|[1-9][0-9]*)")
_TYPE: Final = re.compile(r"0|[1-9][0-9]{0,2}")
_MAX_FIELD: Final = 64 * 1024 * 1024

Fields = Mapping[bytes | str, bytes | str] | Iterable[tuple[bytes | str, bytes | str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamMessage(ClusterMessage):
    """A ClusterAdapter message read from a stream entry.

    It is a :class:`ClusterMessage` (``type``, ``data``, ``uid``, ``nsp``), so whatever
    handles the sharded adapter's messages handles these; ``binary`` says that ``data``
    was base64 msgpack rather than JSON.

    Attributes:
        stream: The stream key.
        entry_id: The entry id (``<ms>-<seq>``), the adapter's offset for recovery.
    """

    stream: str = DEFAULT_STREAM
    entry_id: str = "0-0"
    dialect: Dialect = Dialect.STREAMS

    @property
    def is_heartbeat(self) -> bool:
        """An INITIAL_HEARTBEAT or HEARTBEAT (0.2.x)."""
        return self.type in (ClusterMessageType.INITIAL_HEARTBEAT, ClusterMessageType.HEARTBEAT)

    @property
    def from_emitter(self) -> bool:
        """Written by @socket.io/redis-streams-emitter (uid ``"emitter"``)."""
        return bool(self.uid == EMITTER_UID)


@dataclass(frozen=True, slots=True)
class RecoverySession:
    """A connection-state-recovery session the adapter stored under ``<prefix><pid>``.

    Attributes:
        sid: The socket id the client had.
        pid: The private session id (the key's suffix).
        rooms: The rooms the socket was in.
        data: ``socket.data``.
    """

    sid: Any
    pid: Any
    rooms: Any
    data: Any = None


def _text(value: bytes | str, what: str) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, bytes | bytearray | memoryview):
        raise DecodeError(f"stream entry {what} is a {type(value).__name__}, not bytes")
    if len(value) > _MAX_FIELD:
        raise DecodeError(f"stream entry {what} is over {_MAX_FIELD} bytes")
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"stream entry {what} is not UTF-8: {exc}") from None


def entry_id_ms(entry_id: bytes | str) -> int:
    """The milliseconds part of a stream entry id.

    Raises:
        DecodeError: Not an ``<ms>-<seq>`` id.
    """
    text = _text(entry_id, "id")
    m = _ENTRY_ID.fullmatch(text)
    if m is None:
        raise DecodeError(f"{text[:40]!r} is not a stream entry id (<ms>-<seq>)")
    return int(m.group(1))


def _pairs(fields: Fields) -> list[tuple[str, str]]:
    items: Iterable[Any] = fields.items() if isinstance(fields, Mapping) else fields
    out: list[tuple[str, str]] = []
    try:
        for pair in items:
            name, value = pair
            out.append((_text(name, "field name"), _text(value, "field value")))
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"stream entry fields are not name/value pairs: {exc}") from None
    return out


def _decode_data(text: str) -> tuple[Any, bool]:
    # adapter decode(): JSON when it starts with "{", else base64 of msgpack.
    if text.startswith("{"):
        return js_parse(text), False
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("stream entry 'data' is neither JSON nor base64") from None
    return unpack(raw), True


def decode_entry(
    stream: bytes | str,
    entry_id: bytes | str,
    fields: Fields,
    *,
    prefix: str = DEFAULT_STREAM,
) -> StreamMessage:
    """Decode one stream entry (as XREAD/XRANGE return it) into a :class:`StreamMessage`.

    Args:
        stream: The stream key.
        entry_id: The entry id.
        fields: The field/value pairs, a mapping (redis-py) or pairs in stream order.
        prefix: The adapter's ``channelPrefix``, kept on the frame.

    Returns:
        The message.

    Raises:
        DecodeError: Not an entry the adapter writes (unknown or repeated fields, a missing
            uid/nsp/type, a non-decimal type, data that is neither JSON nor base64
            msgpack, ...); nothing else escapes.
    """
    try:
        return _decode_entry(stream, entry_id, fields, prefix)
    except DecodeError:
        raise
    except Exception as exc:  # a decoder bug must not take the sniffer down
        raise DecodeError(f"cannot decode stream entry: {type(exc).__name__}: {exc}") from exc


def _decode_entry(
    stream: bytes | str, entry_id: bytes | str, fields: Fields, prefix: str
) -> StreamMessage:
    key = _text(stream, "stream key")
    eid = _text(entry_id, "id")
    entry_id_ms(eid)
    pairs = _pairs(fields)
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise DecodeError(f"stream entry {eid} repeats a field: {names}")
    unknown = [n for n in names if n not in FIELD_ORDER]
    if unknown:
        raise DecodeError(f"stream entry {eid} has fields the adapter never writes: {unknown}")
    obj = dict(pairs)
    for required in ("uid", "nsp", "type"):
        if required not in obj:
            raise DecodeError(f"stream entry {eid} has no {required!r} field")
    if not _TYPE.fullmatch(obj["type"]):
        raise DecodeError(f"stream entry {eid}: 'type' {obj['type'][:20]!r} is not a number")
    t = int(obj["type"])
    mtype: int
    try:
        mtype = ClusterMessageType(t)
    except ValueError:
        mtype = t
    data: Any = UNDEFINED
    binary = False
    if "data" in obj:
        if obj["data"] == "":
            raise DecodeError(f"stream entry {eid} has an empty 'data' field")
        data, binary = _decode_data(obj["data"])
    return StreamMessage(
        type=mtype,
        data=data,
        uid=obj["uid"],
        nsp=obj["nsp"],
        binary=binary,
        prefix=prefix,
        stream=key,
        entry_id=eid,
    )


def encode_entry(message: ClusterMessage) -> list[tuple[bytes, bytes]]:
    """The field/value pairs the adapter XADDs for ``message``, in its order.

    A :class:`StreamMessage` decoded from the adapter's entry gives its exact bytes back.

    Raises:
        EncodeError: A value that the chosen data encoding cannot carry.
    """
    fields = [
        (b"uid", str(message.uid).encode()),
        (b"nsp", message.nsp.encode()),
        (b"type", str(int(message.type)).encode()),
    ]
    if message.data is not UNDEFINED and message.data is not None:
        try:
            if message.binary:
                text = base64.b64encode(pack(message.data, MsgpackFlavor.NOTEPACK3)).decode()
            else:
                text = js_stringify(message.data)
        except EncodeError:
            raise
        except Exception as exc:
            raise EncodeError(f"cannot encode the entry's data: {exc}") from exc
        fields.append((b"data", text.encode()))
    return fields


# --------------------------------------------------------------------------- emitter

DEFAULT_MAX_LEN: Final = 10_000
"""The adapter's and the emitter's default ``maxLen`` (``XADD ... MAXLEN ~ maxLen``)."""


def js_hash_code(text: str) -> int:
    """redis-streams-adapter 0.3.x ``util.ts`` ``hashCode``: ``hash = hash * 31 +
    charCodeAt(i); hash |= 0`` over the UTF-16 code units, a signed 32-bit result."""
    units = text.encode("utf-16-le", "surrogatepass")
    h = 0
    for i in range(0, len(units), 2):
        h = (h * 31 + (units[i] | units[i + 1] << 8)) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def stream_for(nsp: str, stream: str = DEFAULT_STREAM, stream_count: int = 1) -> str:
    """The stream a namespace's entries go to (0.3.x ``adapter.ts`` ``computeStreamName``).

    With ``streamCount`` 1 (the default, and always in 0.2.x) it is ``streamName``; else
    ``streamName + "-" + (hashCode(nsp) % streamCount)``, with JavaScript's ``%``, whose
    result takes the sign of the hash: a namespace whose hash is negative goes to
    ``socket.io--<i>``, a stream no node reads (0.3.1 reads ``-0`` .. ``-<N-1>`` only;
    seen on real nodes: such a namespace's broadcasts reach no other node). The sniffer
    follows those too; the emitter writes elsewhere (:func:`emitter_stream_for`). Only
    the namespace picks the stream, never the rooms.
    """
    if stream_count == 1:
        return stream
    h = js_hash_code(nsp)
    r = abs(h) % stream_count
    return f"{stream}-{-r if h < 0 else r}"


def emitter_stream_for(nsp: str, stream: str = DEFAULT_STREAM, stream_count: int = 1) -> str:
    """The stream siotools' emitter writes a namespace's entries to: :func:`stream_for`,
    unless that is a ``<streamName>--<i>`` stream, which no node reads (0.3.1 nodes'
    own broadcasts in such a namespace reach no other node); then ``<streamName>-<i>``,
    which every node reads and dispatches by ``nsp``. The entry is then delivered live,
    though a node's connection state recovery, which replays from the namespace's own
    (``--<i>``) stream, will not find it."""
    name = stream_for(nsp, stream, stream_count)
    if stream_count == 1 or not name.startswith(stream + "--"):
        return name
    return stream + "-" + name[len(stream) + 2 :]


def streams_for(stream: str = DEFAULT_STREAM, stream_count: int = 1) -> tuple[str, ...]:
    """The streams the nodes read (0.3.x ``createReadOnlyClients``): ``streamName``, or
    ``streamName-0`` .. ``streamName-<streamCount - 1>``."""
    if stream_count == 1:
        return (stream,)
    return tuple(f"{stream}-{i}" for i in range(stream_count))


_MAY_CARRY_BINARY: Final = frozenset(
    {
        ClusterMessageType.BROADCAST,
        ClusterMessageType.FETCH_SOCKETS_RESPONSE,
        ClusterMessageType.SERVER_SIDE_EMIT,
        ClusterMessageType.SERVER_SIDE_EMIT_RESPONSE,
        ClusterMessageType.BROADCAST_ACK,
    }
)


def emitter_message(mtype: ClusterMessageType, nsp: str, data: dict[str, Any]) -> ClusterMessage:
    """The message @socket.io/redis-streams-emitter XADDs: uid ``"emitter"``, ``data`` as
    base64 msgpack when a type that may carry binary does (``flattenPayload``: BROADCAST,
    FETCH_SOCKETS_RESPONSE, SERVER_SIDE_EMIT(_RESPONSE), BROADCAST_ACK), JSON otherwise.
    :func:`encode_entry` gives its fields."""
    binary = mtype in _MAY_CARRY_BINARY and has_binary(data)
    return ClusterMessage(type=mtype, data=data, uid=EMITTER_UID, nsp=nsp, binary=binary)


def emitter_broadcast(
    nsp: str,
    data: list[Any],
    rooms: Iterable[Any],
    except_: Iterable[Any],
    flags: Mapping[str, Any],
) -> ClusterMessage:
    """The emitter's BROADCAST: ``{packet: {type: 2, data, nsp}, opts: {rooms, flags,
    except}}``, in its key order (``BroadcastOperator.emit`` builds ``opts`` as
    ``{rooms, flags, except}``, and ``Emitter.publish`` then sets ``packet.nsp``; the
    adapter's own entries carry ``{rooms, except, flags}`` and no ``packet.nsp``)."""
    body = {
        "packet": {"type": 2, "data": list(data), "nsp": nsp},
        "opts": {
            "rooms": list(dict.fromkeys(rooms)),
            "flags": dict(flags),
            "except": list(dict.fromkeys(except_)),
        },
    }
    return emitter_message(ClusterMessageType.BROADCAST, nsp, body)


def emitter_opts(rooms: Iterable[Any], except_: Iterable[Any]) -> dict[str, Any]:
    """``opts`` of the emitter's socketsJoin/socketsLeave/disconnectSockets:
    ``{rooms, except, flags: {}}``."""
    return {
        "rooms": list(dict.fromkeys(rooms)),
        "except": list(dict.fromkeys(except_)),
        "flags": {},
    }


def xadd_args(
    stream: str, fields: Iterable[tuple[bytes, bytes]], max_len: int = DEFAULT_MAX_LEN
) -> tuple[bytes, ...]:
    """``XADD <stream> MAXLEN ~ <max_len> * <field> <value> ...``, as the adapter's and the
    emitter's ``util.ts`` ``XADD`` send it (ioredis form; node-redis sends the same)."""
    out = [b"XADD", stream.encode(), b"MAXLEN", b"~", str(int(max_len)).encode(), b"*"]
    for name, value in fields:
        out += (name, value)
    return tuple(out)


def decode_ephemeral(frame: ClusterMessage) -> ClusterMessage:
    """A 0.3.x pub/sub message, decoded by :func:`siotools.protocol.decode` as sharded-style
    ClusterMessage, relabelled as the streams adapter's."""
    return dataclasses.replace(frame, dialect=Dialect.STREAMS)


def heard_as(frame: Frame, *, sharded: bool) -> Frame:
    """``frame`` with the dialect that its shape and the way it was heard prove.

    :func:`siotools.protocol.decode` cannot tell a ClusterAdapter map of the 8.x sharded
    adapter from one of @socket.io/redis-streams-adapter 0.3.x: both are
    ``{type, data, uid, nsp}`` on ``P#N#`` / ``P#N#<uid>#`` and it labels both ``sharded``.
    How the message travelled does tell:

    * the sharded adapter only ever SPUBLISHes (``sharded-adapter.ts``), so a map heard by
      (P)SUBSCRIBE, or seen as a PUBLISH in MONITOR (``sharded=False``), is the streams
      adapter's, which PUBLISHes its ephemeral messages unless ``useShardedPubSub``
      (redis-streams-adapter 0.3.1 ``adapter.ts`` ``doPublish``/``doPublishResponse``);
    * the streams adapter msgpack-encodes every pub/sub message, the sharded adapter only
      the types that may carry binary (sharded-adapter.ts L177-L192, the set
      the streams adapter and emitter use too) whose data holds binary: a SPUBLISHed msgpack
      map that the sharded adapter would have sent as JSON is the streams adapter's with
      ``useShardedPubSub``. Anything else SPUBLISHed stays ``sharded``.

    Frames of other dialects, JSON maps and stream entries are returned as they are.

    Args:
        frame: A frame :func:`siotools.protocol.decode` returned for a pub/sub message.
        sharded: Whether it was heard as an SPUBLISH (the sniffer's ``sharded`` flag).
    """
    if (
        type(frame) is not ClusterMessage
        or frame.dialect is not Dialect.SHARDED
        or not frame.binary  # JSON: the streams adapter never PUBLISHes JSON
    ):
        return frame
    if sharded and frame.type in _MAY_CARRY_BINARY and has_binary(frame.data):
        return frame  # what the sharded adapter sends too: the way it came says sharded
    return dataclasses.replace(frame, dialect=Dialect.STREAMS)


def decode_session(value: bytes | str) -> RecoverySession:
    """Decode a ``sio:session:<pid>`` value (base64 of msgpack ``{sid, pid, rooms, data}``).

    Raises:
        DecodeError: Not base64, not msgpack, or not such a map.
    """
    text = _text(value, "session value")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("session value is not base64") from None
    try:
        obj = unpack(raw)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"session value is not msgpack: {exc}") from exc
    if type(obj) is not dict or list(obj)[:3] != ["sid", "pid", "rooms"]:
        raise DecodeError("session value is not a {sid, pid, rooms, data} map")
    if set(obj) - {"sid", "pid", "rooms", "data"}:
        raise DecodeError(f"session value has unknown keys: {sorted(map(str, obj))}")
    return RecoverySession(sid=obj["sid"], pid=obj["pid"], rooms=obj["rooms"], data=obj.get("data"))


def encode_session(session: RecoverySession) -> bytes:
    """The value the adapter SETs for ``session`` (exact for decoded sessions)."""
    body = {"sid": session.sid, "pid": session.pid, "rooms": session.rooms, "data": session.data}
    return base64.b64encode(pack(body, MsgpackFlavor.NOTEPACK3))


def pack_record(entry_id: bytes | str, fields: Fields) -> bytes:
    """One stream entry as a capture record's payload: :data:`RECORD_MARK` + msgpack
    ``[id, [name, value, ...]]`` (the raw bytes, in stream order).

    The record's channel is the stream key; :func:`decode_record` reads it back.
    """
    eid = entry_id.encode() if isinstance(entry_id, str) else bytes(entry_id)
    items: Iterable[Any] = fields.items() if isinstance(fields, Mapping) else fields
    flat: list[bytes] = []
    for name, value in items:
        flat.append(name.encode() if isinstance(name, str) else bytes(name))
        flat.append(value.encode() if isinstance(value, str) else bytes(value))
    return RECORD_MARK + _pack_bins([eid, flat])


def is_record(payload: bytes) -> bool:
    """Whether a capture payload is a packed stream entry (see :func:`pack_record`)."""
    return payload[:1] == RECORD_MARK


def decode_record(
    stream: bytes | str, payload: bytes, *, prefix: str = DEFAULT_STREAM
) -> StreamMessage:
    """Decode a :func:`pack_record` payload of stream ``stream``.

    Raises:
        DecodeError: Not a packed entry, or not an entry the adapter writes.
    """
    if not is_record(payload):
        raise DecodeError("not a packed stream entry")
    try:
        obj = unpack(payload[1:])
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"packed stream entry is not msgpack: {exc}") from exc
    if type(obj) is not list or len(obj) != 2 or type(obj[1]) is not list or len(obj[1]) % 2:
        raise DecodeError("packed stream entry is not [id, [name, value, ...]]")
    flat = obj[1]
    return decode_entry(
        stream, obj[0], list(zip(flat[::2], flat[1::2], strict=True)), prefix=prefix
    )


def _pack_bins(value: list[Any]) -> bytes:
    return pack(value, MsgpackFlavor.NOTEPACK3)
