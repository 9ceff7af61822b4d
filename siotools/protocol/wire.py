"""``decode(channel, payload) -> Frame`` and ``encode(frame) -> (channel, payload)``."""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from siotools.exceptions import DecodeError, EncodeError
from siotools.protocol import frames as F
from siotools.protocol.channels import Channel, ChannelGrammar, ChannelKind
from siotools.protocol.frames import Dialect
from siotools.protocol.jsjson import js_parse, js_stringify_bytes
from siotools.protocol.msgpack_codec import (
    MsgpackFlavor,
    check_size,
    is_plain,
    pack,
    pack_plain,
    unpack_flavored,
)
from siotools.protocol.values import UNDEFINED, has_binary

__all__ = [
    "broadcast_parts",
    "decode",
    "decode_broadcast",
    "encode",
    "encode_broadcast",
    "grammar",
    "make_broadcast",
    "request_id_cut",
]

_FLAVOR: Final = {
    Dialect.LEGACY: MsgpackFlavor.NOTEPACK2,
    Dialect.LEGACY_LITE: MsgpackFlavor.MSGPACK_LITE,
    Dialect.CURRENT: MsgpackFlavor.NOTEPACK3,
    Dialect.SHARDED: MsgpackFlavor.NOTEPACK3,
}
_DIALECT_OF_FLAVOR: Final = {
    MsgpackFlavor.NOTEPACK2: Dialect.LEGACY,
    MsgpackFlavor.MSGPACK_LITE: Dialect.LEGACY_LITE,
    MsgpackFlavor.NOTEPACK3: Dialect.CURRENT,
}
_GRAMMARS: dict[str, ChannelGrammar] = {}
_PICKLE_PROTOCOLS: Final = frozenset(range(2, 6))


def grammar(prefix: str = F.DEFAULT_PREFIX) -> ChannelGrammar:
    """The shared (cached) :class:`ChannelGrammar` of a prefix."""
    g = _GRAMMARS.get(prefix)
    if g is None:
        g = _GRAMMARS.setdefault(prefix, ChannelGrammar(prefix))
    return g


_unpack = unpack_flavored


# --------------------------------------------------------------------------- decode


def decode(
    channel: bytes | str,
    payload: bytes,
    *,
    prefix: str = F.DEFAULT_PREFIX,
    dialect: Dialect | None = None,
    nsps: frozenset[str] | set[str] | None = None,
    allow_pickle: bool = False,
    pysocketio_channel: str = "socketio",
    max_size: int | None = None,
    sharded: bool = False,
) -> F.Frame:
    """Decode one pub/sub message into a frame.

    The dialect is detected per message unless forced: JSON (first byte ``{``) or msgpack,
    then ``requestid`` (legacy) vs ``requestId``/``uid`` (8.x), the broadcast ``opts`` key
    order, notepack 2.x / msgpack-lite exts, and ``{type,data,uid,nsp}`` envelopes on
    broadcast channels (sharded).

    Args:
        channel: The channel, bytes as redis-py delivers it, or str.
        payload: The raw payload.
        prefix: The adapter key the channel is parsed with.
        dialect: Force a dialect instead of detecting it.
        nsps: Only accept these namespaces.
        allow_pickle: Unpickle python-socketio pickle payloads (runs arbitrary code: only
            for trusted Redis servers).
        pysocketio_channel: python-socketio's channel name.
        max_size: Refuse payloads over this many bytes undecoded (None: no limit).
        sharded: The message was published with SPUBLISH (seen through MONITOR, say):
            only the 8.x sharded adapter publishes that way, so unless ``dialect`` is
            given it is decoded as :attr:`Dialect.SHARDED` (its classic-looking channels
            carry ClusterAdapter messages there, not broadcasts).

    Returns:
        The frame.

    Raises:
        PayloadTooLargeError: the payload is over ``max_size`` (a DecodeError).
        DecodeError: for anything that cannot be decoded; no other exception escapes.
    """
    if sharded and dialect is None:
        dialect = Dialect.SHARDED
    if max_size is not None and len(payload) > max_size:
        try:
            check_size(payload, max_size)
        except DecodeError as exc:
            exc.channel = channel
            raise
    if nsps is None and pysocketio_channel == "socketio" and type(payload) is bytes:
        # Hot path: a cached channel of a known prefix carrying a msgpack array.
        g = _GRAMMARS.get(prefix)
        if g is not None:
            ch = g._cache.get(channel)
            if ch is not None and payload:
                kind = ch.kind
                if (
                    (kind is _ROOM or kind is _BROADCAST)
                    and payload[0] & 0xF0 == 0x90
                    and dialect is not Dialect.SHARDED
                ):
                    try:
                        return decode_broadcast(
                            payload, nsp=ch.nsp or "/", dialect=dialect, prefix=prefix
                        )
                    except DecodeError as exc:
                        exc.channel = channel
                        raise
                if (
                    (kind is _REQUEST or kind is _RESPONSE or kind is _RESPONSE_UID)
                    and payload[0] == 0x7B
                    and dialect is not Dialect.SHARDED
                    and dialect is not Dialect.PYSOCKETIO
                ):
                    # A JSON request or response: what _decode does, without its checks.
                    try:
                        return _decode_json(ch, payload, dialect)
                    except DecodeError as exc:
                        if exc.channel is None:
                            exc.channel, exc.payload = channel, payload
                        raise
                    except Exception as exc:
                        raise DecodeError(
                            f"cannot decode: {type(exc).__name__}: {exc}",
                            channel=channel,
                            payload=payload,
                        ) from exc
    try:
        if isinstance(payload, (bytearray, memoryview)):
            payload = bytes(payload)
        if pysocketio_channel == "socketio":
            g = grammar(prefix)
        else:
            g = ChannelGrammar(prefix, pysocketio_channel=pysocketio_channel)
        ch = g.parse(channel, nsps)
        return _decode(ch, payload, dialect, allow_pickle)
    except DecodeError as exc:
        if exc.channel is None:
            exc.channel = channel
            exc.payload = payload if isinstance(payload, bytes) else None
        raise
    except Exception as exc:
        raise DecodeError(
            f"cannot decode: {type(exc).__name__}: {exc}",
            channel=channel,
            payload=payload if isinstance(payload, bytes) else None,
        ) from exc


_ROOM: Final = ChannelKind.ROOM
_BROADCAST: Final = ChannelKind.BROADCAST
_REQUEST: Final = ChannelKind.REQUEST
_RESPONSE: Final = ChannelKind.RESPONSE
_RESPONSE_UID: Final = ChannelKind.RESPONSE_UID


BroadcastFields = tuple[str, Any, list[Any], list[Any], list[Any], dict[str, Any]]
"""``(uid, packet nsp, data, rooms, except, flags)``: see :func:`unpack_broadcast`."""


def unpack_broadcast(payload: bytes, *, max_size: int | None = None) -> BroadcastFields:
    """Hottest path: what a receiving node needs of a classic broadcast, no frame built.

    The fields are read the way the Node receivers read them (socket.io-redis 5.x
    ``onmessage`` and socket.io-adapter ``broadcast``): ``nsp`` is ``"/"`` when the packet
    has none (and whatever it holds otherwise, ``None`` included); ``data`` is
    ``[event, *args]`` (``[]`` when not a list); ``rooms``/``except`` are ``[]`` and
    ``flags`` ``{}`` when absent or of another type.

    Raises:
        PayloadTooLargeError: the payload is over ``max_size`` bytes (a DecodeError).
        DecodeError: if the payload is not a well-formed broadcast.
    """
    uid, packet, opts, _ = _unpack_broadcast(payload, max_size)
    data = packet.get("data")
    rooms = opts.get("rooms")
    except_ = opts.get("except")
    flags = opts.get("flags")
    return (
        uid,
        packet.get("nsp", "/"),
        data if type(data) is list else [],
        rooms if type(rooms) is list else [],
        except_ if type(except_) is list else [],
        flags if type(flags) is dict else {},
    )


def _unpack_broadcast(
    payload: bytes, max_size: int | None = None
) -> tuple[str, dict[str, Any], dict[str, Any], MsgpackFlavor | None]:
    check_size(payload, max_size)
    try:
        obj, flavor = unpack_flavored(payload)
        uid, packet, opts = obj
    except Exception as exc:
        raise DecodeError(
            f"cannot decode broadcast: {type(exc).__name__}: {exc}", payload=payload
        ) from exc
    if type(packet) is not dict or type(opts) is not dict or type(uid) is not str:
        raise DecodeError("broadcast is not [uid, packet, opts]", payload=payload)
    return uid, packet, opts, flavor


def broadcast_parts(
    payload: bytes, *, max_size: int | None = None
) -> tuple[str, dict[str, Any], dict[str, Any], Dialect]:
    """``(uid, packet, opts, dialect)`` of a classic broadcast, no frame built.

    What :func:`decode_broadcast` reads, for bulk decoders (the sniffer's columns) that
    need the dialect but not a frame per message.

    Raises:
        PayloadTooLargeError: the payload is over ``max_size`` bytes (a DecodeError).
        DecodeError: if the payload is not a well-formed broadcast.
    """
    # _unpack_broadcast inlined: the sniffer calls this once per message of a capture.
    if max_size is not None and len(payload) > max_size:
        check_size(payload, max_size)
    try:
        obj, flavor = unpack_flavored(payload)
        uid, packet, opts = obj
    except Exception as exc:
        raise DecodeError(
            f"cannot decode broadcast: {type(exc).__name__}: {exc}", payload=payload
        ) from exc
    if type(packet) is not dict or type(opts) is not dict or type(uid) is not str:
        raise DecodeError("broadcast is not [uid, packet, opts]", payload=payload)
    if flavor is not None:
        return uid, packet, opts, _DIALECT_OF_FLAVOR[flavor]
    if len(opts) == 2 or next(iter(opts), None) == "except":
        # socket.io-redis 5.x writes {rooms, flags} or {except, rooms, flags};
        # 8.x always writes except, after rooms.
        return uid, packet, opts, _LEGACY
    return uid, packet, opts, _CURRENT


def decode_broadcast(
    payload: bytes,
    *,
    nsp: str = "/",
    dialect: Dialect | None = None,
    prefix: str = F.DEFAULT_PREFIX,
    max_size: int | None = None,
) -> F.Broadcast:
    """Fast path for the adapter: decode a classic broadcast ``[uid, packet, opts]``.

    The channel is not looked at (the caller already routed it); ``nsp`` and ``prefix`` are
    stored in the frame.

    Raises:
        PayloadTooLargeError: the payload is over ``max_size`` bytes (a DecodeError).
        DecodeError: if the payload is not a well-formed broadcast.
    """
    if dialect is None:
        uid, packet, opts, dialect = broadcast_parts(payload, max_size=max_size)
    else:
        uid, packet, opts, _ = _unpack_broadcast(payload, max_size)
    frame = _new_broadcast(_BC)
    _set_uid(frame, uid)
    _set_packet(frame, packet)
    _set_opts(frame, opts)
    _set_nsp(frame, nsp)
    _set_dialect(frame, dialect)
    _set_prefix(frame, prefix)
    return frame


_LEGACY: Final = Dialect.LEGACY
_CURRENT: Final = Dialect.CURRENT
_BC: Final = F.Broadcast
_new_broadcast = object.__new__
_BC_SLOTS: Final[Mapping[str, Any]] = F.Broadcast.__dict__
# Frozen dataclasses assign through object.__setattr__; the slot descriptors do the same
# without the per-call overhead, which is what the decode hot path needs.
_set_uid = _BC_SLOTS["uid"].__set__
_set_packet = _BC_SLOTS["packet"].__set__
_set_opts = _BC_SLOTS["opts"].__set__
# The fields every frame has live in the base's slots.
_FRAME_SLOTS: Final[Mapping[str, Any]] = F.Frame.__dict__
_set_nsp = _FRAME_SLOTS["nsp"].__set__
_set_dialect = _FRAME_SLOTS["dialect"].__set__
_set_prefix = _FRAME_SLOTS["prefix"].__set__


def _fail(message: str) -> DecodeError:
    return DecodeError(message)


def _decode(ch: Channel, payload: bytes, dialect: Dialect | None, allow_pickle: bool) -> F.Frame:
    kind = ch.kind
    if kind is ChannelKind.UNKNOWN:
        raise _fail(f"channel {ch.name!r} is not a channel of prefix {ch.prefix or '?'}")
    if kind is ChannelKind.PYSOCKETIO or dialect is Dialect.PYSOCKETIO:
        return _decode_pysocketio(ch, payload, allow_pickle)
    if not payload:
        raise _fail("empty payload")
    nsp = ch.nsp if ch.nsp is not None else "/"
    is_json = payload[0] == 0x7B
    if kind is ChannelKind.BROADCAST or kind is ChannelKind.ROOM:
        if is_json or dialect is Dialect.SHARDED:
            return _decode_cluster(ch, payload, is_json)
        if payload[0] & 0xF0 == 0x80 or payload[0] in (0xDE, 0xDF):
            return _decode_cluster(ch, payload, False)
        return decode_broadcast(payload, nsp=nsp, dialect=dialect, prefix=ch.prefix)
    if dialect is Dialect.SHARDED:
        raise _fail("sharded messages travel on K#N# channels only")
    if is_json:
        return _decode_json(ch, payload, dialect)
    if dialect in (Dialect.LEGACY, Dialect.LEGACY_LITE):
        raise _fail("legacy requests and responses are JSON")
    obj, _ = _unpack(payload)
    if type(obj) is not dict:
        raise _fail("msgpack request/response is not a map")
    if kind is ChannelKind.REQUEST:
        return _broadcast_ack_request(obj, ch)
    return _broadcast_ack_response(obj, ch)


def _decode_json(ch: Channel, payload: bytes, dialect: Dialect | None) -> F.Frame:
    # A JSON payload on a request or response channel (not sharded).
    obj = js_parse(payload)
    if type(obj) is not dict:
        raise _fail("request/response JSON is not an object")
    legacy = "requestid" in obj
    if dialect is not None and legacy != (dialect in (Dialect.LEGACY, Dialect.LEGACY_LITE)):
        raise _fail(f"message does not belong to dialect {dialect.value}")
    if ch.kind is _REQUEST:
        if legacy:
            return _legacy_request(obj, ch, dialect or Dialect.LEGACY)
        return _current_request(obj, ch)
    if legacy:
        return _legacy_response(obj, ch, dialect or Dialect.LEGACY)
    return _current_response(obj, ch)


_RID_KEY_ENDS: Final = frozenset((b'Id":"', b'id":"'))
_CONTROL: Final = re.compile("[\x00-\x1f]")


def request_id_cut(payload: bytes) -> tuple[bytes, str] | None:
    """A JSON request or response with its request id cut out: ``(rest, request_id)``.

    The request id is opaque to the grammar: :func:`decode` checks only that it is a
    string and passes it on as ``request_id``. So when a payload of a request or response
    channel decodes to a frame whose ``request_id`` is its cut id (the cut key is then the
    top-level one), every payload of that channel with the same ``rest`` decodes to the
    same frame but for ``request_id``, which is its own cut id (``max_size`` aside: the
    caller checks it on the whole payload).

    The cut is made only where that reasoning holds, else None: the payload has no
    backslash (every key and string is written as it reads, so no escape can spell a
    second ``requestId``); the key ``requestId`` or ``requestid`` occurs exactly once (no
    duplicate key; checked as a single ``"request`` in the payload), written
    ``"requestId":"`` as JSON.stringify writes it; and the id holds no control character
    (JSON forbids them in strings) and is valid UTF-8. The id's bytes are then a whole
    string literal that any other such literal can replace without changing how the rest
    parses, and ``rest`` shows where it was cut (its only key ``"request``).

    Args:
        payload: A payload of a request or response channel.

    Returns:
        The payload without the id's characters (between its quotes) and the id, or None.
    """
    # Built-in calls only, each as cheap as it gets (an int in bytes is a memchr): the
    # sniffer cuts every JSON request and response of a capture.
    if 0x5C in payload:
        return None
    at = payload.find(b'"request')
    # One "request for both keys: a payload with another string starting so (a room
    # named "requests") is not cut either, which costs it only the sniffer's cache.
    if at < 0 or payload.find(b'"request', at + 8) >= 0:
        return None
    start = at + 13
    if payload[at + 8 : start] not in _RID_KEY_ENDS:
        return None
    end = payload.find(b'"', start)
    if end < 0:
        return None
    try:
        rid = payload[start:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not rid.isprintable() and _CONTROL.search(rid) is not None:
        return None
    return payload[:start] + payload[end:], rid


# --------------------------------------------------------------------------- decode helpers


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if type(value) is not str:
        raise _fail(f"{key!r} must be a string")
    return value


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and type(value) is not str:
        raise _fail(f"{key!r} must be a string")
    return value


def _list(obj: Mapping[str, Any], key: str) -> tuple[Any, ...]:
    value = obj.get(key)
    if type(value) is not list:
        raise _fail(f"{key!r} must be an array")
    return tuple(value)


def _opt_list(obj: Mapping[str, Any], key: str) -> tuple[Any, ...] | None:
    return _list(obj, key) if key in obj else None


def _opt_map(obj: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    if key not in obj:
        return None
    value = obj[key]
    if type(value) is not dict:
        raise _fail(f"{key!r} must be an object")
    return value


def _check_keys(obj: Mapping[str, Any], allowed: Iterable[str]) -> None:
    if type(allowed) is frozenset and obj.keys() <= allowed:
        return
    extra = set(obj) - set(allowed)
    if extra:
        raise _fail(f"unexpected keys {sorted(map(str, extra))}")


def _type(obj: Mapping[str, Any]) -> int:
    value = obj.get("type")
    if type(value) is not int:
        raise _fail("'type' must be an integer")
    return value


def _legacy_request(obj: dict[str, Any], ch: Channel, dialect: Dialect) -> F.Frame:
    rid = _str(obj, "requestid")
    t = _type(obj)
    common: dict[str, Any] = {"nsp": ch.nsp, "prefix": ch.prefix, "dialect": dialect}
    base = ("requestid", "type")
    if t == F.LegacyRequestType.CLIENTS:
        _check_keys(obj, (*base, "rooms"))
        rooms = _list(obj, "rooms") if "rooms" in obj else ()
        return F.LegacyClientsRequest(request_id=rid, rooms=rooms, **common)
    if t == F.LegacyRequestType.CLIENT_ROOMS:
        _check_keys(obj, (*base, "sid"))
        return F.LegacyClientRoomsRequest(request_id=rid, sid=obj.get("sid"), **common)
    if t == F.LegacyRequestType.ALL_ROOMS:
        _check_keys(obj, base)
        return F.LegacyAllRoomsRequest(request_id=rid, **common)
    if t in (F.LegacyRequestType.REMOTE_JOIN, F.LegacyRequestType.REMOTE_LEAVE):
        _check_keys(obj, (*base, "sid", "room"))
        cls = F.LegacyRemoteJoinRequest if t == 3 else F.LegacyRemoteLeaveRequest
        return cls(request_id=rid, sid=obj.get("sid"), room=obj.get("room"), **common)
    if t == F.LegacyRequestType.CUSTOM_REQUEST:
        _check_keys(obj, (*base, "data"))
        return F.LegacyCustomRequest(request_id=rid, data=obj.get("data", UNDEFINED), **common)
    if t == F.LegacyRequestType.REMOTE_DISCONNECT:
        _check_keys(obj, (*base, "sid", "close"))
        close = obj.get("close", UNDEFINED)
        if close is not UNDEFINED and type(close) is not bool:
            raise _fail("'close' must be a boolean")
        return F.LegacyRemoteDisconnectRequest(
            request_id=rid, sid=obj.get("sid"), close=close, **common
        )
    raise _fail(f"unknown legacy request type {t}")


def _legacy_response(obj: dict[str, Any], ch: Channel, dialect: Dialect) -> F.Frame:
    rid = _str(obj, "requestid")
    common: dict[str, Any] = {"nsp": ch.nsp, "prefix": ch.prefix, "dialect": dialect}
    keys = list(obj)
    if keys == ["requestid"]:
        return F.LegacyEmptyResponse(request_id=rid, **common)
    if keys == ["requestid", "clients"]:
        return F.LegacyClientsResponse(request_id=rid, clients=_list(obj, "clients"), **common)
    if keys == ["requestid", "rooms"]:
        return F.LegacyRoomsResponse(request_id=rid, rooms=_list(obj, "rooms"), **common)
    if keys == ["requestid", "data"]:
        return F.LegacyDataResponse(request_id=rid, data=obj["data"], **common)
    raise _fail(f"unknown legacy response shape {keys}")


_SOCKETS_KEYS: Final = frozenset(("uid", "requestId", "type", "rooms"))
_ALL_ROOMS_KEYS: Final = frozenset(("uid", "requestId", "type"))
_FETCH_KEYS: Final = frozenset(("uid", "requestId", "type", "opts"))
_JOIN_KEYS: Final = frozenset(("uid", "requestId", "type", "opts", "rooms", "sid", "room"))
_DISCONNECT_KEYS: Final = frozenset(("uid", "requestId", "type", "opts", "sid", "close"))
_EMIT_KEYS: Final = frozenset(("uid", "requestId", "type", "data"))
_ANSWERED: Final = frozenset(
    (F.RequestType.SOCKETS, F.RequestType.ALL_ROOMS, F.RequestType.REMOTE_FETCH)
)
_JOIN_LEAVE: Final = frozenset((F.RequestType.REMOTE_JOIN, F.RequestType.REMOTE_LEAVE))


def _current_request(obj: dict[str, Any], ch: Channel) -> F.Frame:
    # The helpers (_type, _opt_str, _check_keys) inlined for the common types: the
    # sniffer decodes every request of a capture through here.
    t = obj.get("type")
    if type(t) is not int:
        raise _fail("'type' must be an integer")
    uid = obj.get("uid")
    if uid is not None and type(uid) is not str:
        raise _fail("'uid' must be a string")
    rid = obj.get("requestId")
    if rid is not None and type(rid) is not str:
        raise _fail("'requestId' must be a string")
    # Request channels always have a namespace (typed Any as the kwargs dict was).
    nsp: Any = ch.nsp
    prefix = ch.prefix
    if t in _ANSWERED:
        if rid is None:
            raise _fail("'requestId' is required")
        if t == F.RequestType.SOCKETS:
            _check_keys(obj, _SOCKETS_KEYS)
            rooms = _list(obj, "rooms") if "rooms" in obj else ()
            return F.SocketsRequest(uid=uid, request_id=rid, rooms=rooms, nsp=nsp, prefix=prefix)
        if t == F.RequestType.ALL_ROOMS:
            _check_keys(obj, _ALL_ROOMS_KEYS)
            return F.AllRoomsRequest(uid=uid, request_id=rid, nsp=nsp, prefix=prefix)
        _check_keys(obj, _FETCH_KEYS)
        opts = _opt_map(obj, "opts")
        return F.RemoteFetchRequest(
            uid=uid, request_id=rid, opts=opts or {}, nsp=nsp, prefix=prefix
        )
    if t in _JOIN_LEAVE:
        _check_keys(obj, _JOIN_KEYS)
        cls = F.RemoteJoinRequest if t == F.RequestType.REMOTE_JOIN else F.RemoteLeaveRequest
        return cls(
            uid=uid,
            request_id=rid,
            opts=_opt_map(obj, "opts"),
            rooms=_opt_list(obj, "rooms"),
            sid=obj.get("sid"),
            room=obj.get("room"),
            nsp=nsp,
            prefix=prefix,
        )
    if t == F.RequestType.REMOTE_DISCONNECT:
        _check_keys(obj, _DISCONNECT_KEYS)
        close = obj.get("close", UNDEFINED)
        if close is not UNDEFINED and type(close) is not bool:
            raise _fail("'close' must be a boolean")
        return F.RemoteDisconnectRequest(
            uid=uid,
            request_id=rid,
            opts=_opt_map(obj, "opts"),
            sid=obj.get("sid"),
            close=close,
            nsp=nsp,
            prefix=prefix,
        )
    if t == F.RequestType.SERVER_SIDE_EMIT:
        _check_keys(obj, _EMIT_KEYS)
        data = obj.get("data")
        if type(data) is not list:
            raise _fail("'data' must be an array")
        return F.ServerSideEmitRequest(uid=uid, request_id=rid, data=data, nsp=nsp, prefix=prefix)
    if t == F.RequestType.BROADCAST:
        # A custom (JSON) parser encodes the msgpack types as JSON (RA 8.x `parser` option).
        return _broadcast_ack_request(obj, ch)
    raise _fail(f"unknown JSON request type {t}")


def _current_response(obj: dict[str, Any], ch: Channel) -> F.Frame:
    rid = obj.get("requestId")
    if type(rid) is not str:
        raise _fail("'requestId' must be a string")
    nsp: Any = ch.nsp  # response channels always have a namespace
    prefix, to_uid = ch.prefix, ch.uid
    keys = list(obj)
    if keys == ["requestId"]:
        return F.EmptyResponse(request_id=rid, nsp=nsp, prefix=prefix, to_uid=to_uid)
    if keys == ["requestId", "rooms"]:
        return F.RoomsResponse(
            request_id=rid, rooms=_list(obj, "rooms"), nsp=nsp, prefix=prefix, to_uid=to_uid
        )
    if keys == ["requestId", "sockets"]:
        return F.SocketsResponse(
            request_id=rid, sockets=_list(obj, "sockets"), nsp=nsp, prefix=prefix, to_uid=to_uid
        )
    t = obj.get("type")
    if keys in (["type", "requestId", "data"], ["type", "requestId"]) and t == 6:
        return F.ServerSideEmitResponse(
            request_id=rid, data=obj.get("data", UNDEFINED), nsp=nsp, prefix=prefix, to_uid=to_uid
        )
    if keys == ["type", "requestId", "clientCount"] and t == 8:
        count = obj["clientCount"]
        if type(count) is not int:
            raise _fail("'clientCount' must be an integer")
        return F.BroadcastClientCountResponse(
            request_id=rid, client_count=count, nsp=nsp, prefix=prefix, to_uid=to_uid
        )
    if keys == ["type", "requestId", "packet"] and t == 9:
        return _broadcast_ack_response(obj, ch)  # a custom (JSON) parser's BROADCAST_ACK
    raise _fail(f"unknown response shape {keys}")


def _broadcast_ack_request(obj: dict[Any, Any], ch: Channel) -> F.Frame:
    if list(obj) != ["uid", "requestId", "type", "packet", "opts"] or obj["type"] != 7:
        raise _fail("request is not a BROADCAST (type 7) request")
    packet, opts = obj["packet"], obj["opts"]
    if type(packet) is not dict or type(opts) is not dict:
        raise _fail("'packet' and 'opts' must be maps")
    return F.BroadcastAckRequest(
        uid=_str(obj, "uid"),
        request_id=_str(obj, "requestId"),
        packet=packet,
        opts=opts,
        nsp=ch.nsp or "/",
        prefix=ch.prefix,
    )


def _broadcast_ack_response(obj: dict[Any, Any], ch: Channel) -> F.Frame:
    if list(obj) != ["type", "requestId", "packet"] or obj["type"] != 9:
        raise _fail("response is not a BROADCAST_ACK (type 9) response")
    return F.BroadcastAckResponse(
        request_id=_str(obj, "requestId"),
        packet=obj["packet"],
        to_uid=ch.uid,
        nsp=ch.nsp or "/",
        prefix=ch.prefix,
    )


def _decode_cluster(ch: Channel, payload: bytes, is_json: bool) -> F.Frame:
    obj = js_parse(payload) if is_json else _unpack(payload)[0]
    if type(obj) is not dict:
        raise _fail("sharded message is not a map")
    _check_keys(obj, ("type", "data", "uid", "nsp"))
    t = _type(obj)
    if "uid" not in obj:
        raise _fail("sharded message has no 'uid'")
    nsp = obj.get("nsp", ch.nsp)
    if type(nsp) is not str:
        raise _fail("'nsp' must be a string")
    try:
        mtype: int = F.ClusterMessageType(t)
    except ValueError:
        mtype = t
    return F.ClusterMessage(
        type=mtype,
        data=obj.get("data", UNDEFINED),
        uid=obj["uid"],
        nsp=nsp,
        binary=not is_json,
        target=ch.room,
        has_nsp="nsp" in obj,
        prefix=ch.prefix,
    )


def _decode_pysocketio(ch: Channel, payload: bytes, allow_pickle: bool) -> F.Frame:
    if len(payload) >= 2 and payload[0] == 0x80 and payload[1] in _PICKLE_PROTOCOLS:
        if not allow_pickle:
            return F.PickledMessage(payload=payload, channel=ch.name)
        value = pickle.loads(payload)  # the caller opted in explicitly
        nsp = value.get("namespace") if isinstance(value, dict) else None
        return F.PickledMessage(
            payload=payload,
            value=value,
            unpickled=True,
            channel=ch.name,
            nsp=nsp if isinstance(nsp, str) else None,
        )
    obj = json.loads(payload.decode("utf-8"))
    if type(obj) is not dict or type(obj.get("method")) is not str:
        raise _fail("python-socketio message is not an object with a 'method'")
    nsp = obj.get("namespace")
    return F.PySocketIOMessage(
        method=obj["method"], body=obj, channel=ch.name, nsp=nsp if type(nsp) is str else None
    )


# --------------------------------------------------------------------------- encode


def _ordered(*pairs: tuple[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pairs if v is not None}


def encode(frame: F.Frame) -> tuple[str, bytes]:
    """Encode a frame into ``(channel, payload)``, exactly as Node would publish it.

    Raises:
        EncodeError: if a value cannot be carried by the frame's dialect.
    """
    try:
        return _encode(frame)
    except EncodeError:
        raise
    except Exception as exc:
        raise EncodeError(f"cannot encode {type(frame).__name__}: {exc}") from exc


def _encode(frame: F.Frame) -> tuple[str, bytes]:
    encoder = _ENCODERS.get(type(frame))
    if encoder is None:
        raise EncodeError(f"not a frame: {type(frame).__name__}")
    encoded: tuple[str, bytes] = encoder(frame)
    return encoded


def _nsp(frame: F.Frame) -> str:
    return frame.nsp if frame.nsp is not None else "/"


def _encode_broadcast(frame: F.Broadcast) -> tuple[str, bytes]:
    g = grammar(frame.prefix)
    rooms = frame.opts.get("rooms")
    if type(rooms) is list and len(rooms) == 1:
        channel = g.room(frame.nsp, rooms[0])
    else:
        channel = g.broadcast(frame.nsp)
    return channel, pack([frame.uid, frame.packet, frame.opts], _FLAVOR[frame.dialect])


def _encode_pysocketio(frame: F.PySocketIOMessage) -> tuple[str, bytes]:
    # python-socketio pubsub managers: json.dumps(message) with default separators.
    return frame.channel, json.dumps(frame.body).encode("utf-8")


def _encode_pickled(frame: F.PickledMessage) -> tuple[str, bytes]:
    return frame.channel, frame.payload


def _encode_cluster(frame: F.ClusterMessage) -> tuple[str, bytes]:
    g = grammar(frame.prefix)
    body: dict[str, Any] = {"type": int(frame.type)}
    if frame.data is not UNDEFINED:
        body["data"] = frame.data
    body["uid"] = frame.uid
    if frame.has_nsp:
        body["nsp"] = frame.nsp
    if frame.target is None:
        channel = g.broadcast(frame.nsp)
    else:
        channel = g.sharded_response(frame.nsp, frame.target)
    payload = pack(body, MsgpackFlavor.NOTEPACK3) if frame.binary else js_stringify_bytes(body)
    return channel, payload


def _encode_legacy_request(frame: F.Frame) -> tuple[str, bytes]:
    return grammar(frame.prefix).request(_nsp(frame)), js_stringify_bytes(
        _legacy_request_body(frame)
    )


def _encode_legacy_response(
    frame: F.LegacyClientsResponse
    | F.LegacyRoomsResponse
    | F.LegacyDataResponse
    | F.LegacyEmptyResponse,
) -> tuple[str, bytes]:
    body: dict[str, Any] = {"requestid": frame.request_id}
    match frame:
        case F.LegacyClientsResponse(clients=clients):
            body["clients"] = list(clients)
        case F.LegacyRoomsResponse(rooms=rooms):
            body["rooms"] = list(rooms)
        case F.LegacyDataResponse(data=data):
            body["data"] = data
    return grammar(frame.prefix).response(frame.nsp), js_stringify_bytes(body)


def _encode_broadcast_ack_request(frame: F.BroadcastAckRequest) -> tuple[str, bytes]:
    body = {
        "uid": frame.uid,
        "requestId": frame.request_id,
        "type": 7,
        "packet": frame.packet,
        "opts": frame.opts,
    }
    return grammar(frame.prefix).request(frame.nsp), pack(body, MsgpackFlavor.NOTEPACK3)


def _encode_current_request(frame: F.Frame) -> tuple[str, bytes]:
    return grammar(frame.prefix).request(_nsp(frame)), js_stringify_bytes(
        _current_request_body(frame)
    )


_CurrentResponse = (
    F.SocketsResponse
    | F.RoomsResponse
    | F.EmptyResponse
    | F.ServerSideEmitResponse
    | F.BroadcastClientCountResponse
    | F.BroadcastAckResponse
)


def _response_channel(frame: _CurrentResponse) -> str:
    g = grammar(frame.prefix)
    if frame.to_uid is None:
        return g.response(frame.nsp)
    return g.response_for(frame.nsp, frame.to_uid)


def _encode_current_response(frame: _CurrentResponse) -> tuple[str, bytes]:
    # lib/index.ts 8.3.0: JSON bodies in these key orders; BROADCAST_ACK is msgpack.
    match frame:
        case F.BroadcastAckResponse(request_id=rid, packet=packet):
            body = {"type": 9, "requestId": rid, "packet": packet}
            return _response_channel(frame), pack(body, MsgpackFlavor.NOTEPACK3)
        case F.EmptyResponse(request_id=rid):
            body = {"requestId": rid}
        case F.RoomsResponse(request_id=rid, rooms=rooms):
            body = {"requestId": rid, "rooms": list(rooms)}
        case F.SocketsResponse(request_id=rid, sockets=sockets):
            body = {"requestId": rid, "sockets": list(sockets)}
        case F.ServerSideEmitResponse(request_id=rid, data=data):
            body = {"type": 6, "requestId": rid, "data": data}
        case F.BroadcastClientCountResponse(request_id=rid, client_count=count):
            body = {"type": 8, "requestId": rid, "clientCount": count}
    return _response_channel(frame), js_stringify_bytes(body)


_ENCODERS: Final[dict[type[F.Frame], Callable[[Any], tuple[str, bytes]]]] = {
    F.Broadcast: _encode_broadcast,
    F.PySocketIOMessage: _encode_pysocketio,
    F.PickledMessage: _encode_pickled,
    F.ClusterMessage: _encode_cluster,
    F.BroadcastAckRequest: _encode_broadcast_ack_request,
    **dict.fromkeys(
        (
            F.LegacyClientsRequest,
            F.LegacyClientRoomsRequest,
            F.LegacyAllRoomsRequest,
            F.LegacyRemoteJoinRequest,
            F.LegacyRemoteLeaveRequest,
            F.LegacyCustomRequest,
            F.LegacyRemoteDisconnectRequest,
        ),
        _encode_legacy_request,
    ),
    **dict.fromkeys(
        (
            F.LegacyClientsResponse,
            F.LegacyRoomsResponse,
            F.LegacyDataResponse,
            F.LegacyEmptyResponse,
        ),
        _encode_legacy_response,
    ),
    **dict.fromkeys(
        (
            F.SocketsRequest,
            F.AllRoomsRequest,
            F.RemoteJoinRequest,
            F.RemoteLeaveRequest,
            F.RemoteDisconnectRequest,
            F.RemoteFetchRequest,
            F.ServerSideEmitRequest,
        ),
        _encode_current_request,
    ),
    **dict.fromkeys(
        (
            F.SocketsResponse,
            F.RoomsResponse,
            F.EmptyResponse,
            F.ServerSideEmitResponse,
            F.BroadcastClientCountResponse,
            F.BroadcastAckResponse,
        ),
        _encode_current_response,
    ),
}
"""Frame type -> its encoder: Node's channel and bytes for that kind."""


def _legacy_request_body(frame: Any) -> dict[str, Any]:
    # socket.io-redis 5.4.0 index.js builds each request as {requestid, type, ...}.
    body: dict[str, Any] = {"requestid": frame.request_id, "type": int(frame.type)}
    if isinstance(frame, F.LegacyClientsRequest):
        body["rooms"] = list(frame.rooms)
    elif isinstance(frame, F.LegacyClientRoomsRequest):
        body["sid"] = frame.sid
    elif isinstance(frame, (F.LegacyRemoteJoinRequest, F.LegacyRemoteLeaveRequest)):
        body["sid"] = frame.sid
        body["room"] = frame.room
    elif isinstance(frame, F.LegacyCustomRequest):
        body["data"] = frame.data
    elif isinstance(frame, F.LegacyRemoteDisconnectRequest):
        body["sid"] = frame.sid
        body["close"] = frame.close
    return body


def _current_request_body(frame: Any) -> dict[str, Any]:
    # @socket.io/redis-adapter 8.3.0 lib/index.ts: {uid, requestId?, type, ...}; the emitter
    # leaves uid out of socketsJoin/socketsLeave/disconnectSockets.
    body: dict[str, Any] = {}
    if frame.uid is not None:
        body["uid"] = frame.uid
    if frame.request_id is not None:
        body["requestId"] = frame.request_id
    body["type"] = int(frame.type)
    if isinstance(frame, F.SocketsRequest):
        body["rooms"] = list(frame.rooms)
    elif isinstance(frame, (F.RemoteJoinRequest, F.RemoteLeaveRequest)):
        if frame.opts is not None:
            body["opts"] = frame.opts
        if frame.rooms is not None:
            body["rooms"] = list(frame.rooms)
        if frame.sid is not None:
            body["sid"] = frame.sid
        if frame.room is not None:
            body["room"] = frame.room
    elif isinstance(frame, F.RemoteDisconnectRequest):
        if frame.opts is not None:
            body["opts"] = frame.opts
        if frame.sid is not None:
            body["sid"] = frame.sid
        body["close"] = frame.close
    elif isinstance(frame, F.RemoteFetchRequest):
        body["opts"] = frame.opts
    elif isinstance(frame, F.ServerSideEmitRequest):
        body["data"] = frame.data
    return body


# --------------------------------------------------------------------------- broadcast helpers


_EVENT: Final = int(F.PacketType.EVENT)
_BINARY_EVENT: Final = int(F.PacketType.BINARY_EVENT)


def _broadcast_parts(
    uid: str,
    data: list[Any],
    nsp: str,
    rooms: Iterable[Any],
    except_: Iterable[Any],
    flags: Mapping[str, Any] | None,
    dialect: Dialect,
    packet_type: int | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    # De-duplicated, first occurrence kept (socket.io's Set of rooms); the common one-room
    # and no-room cases skip the dict round trip.
    rooms_list = list(rooms)
    if len(rooms_list) > 1:
        rooms_list = list(dict.fromkeys(rooms_list))
    except_list = list(except_)
    if len(except_list) > 1:
        except_list = list(dict.fromkeys(except_list))
    flags_map = dict(flags) if flags else {}
    legacy = dialect is Dialect.LEGACY or dialect is Dialect.LEGACY_LITE
    if packet_type is None:
        # socket.io 2.1+ namespace.js/socket.js: type 5 when the args hold binary.
        packet_type = _BINARY_EVENT if legacy and has_binary(data) else _EVENT
    packet = {"type": int(packet_type), "data": list(data), "nsp": nsp}
    if legacy:
        # socket.io 2.x: Namespace#emit {rooms, flags}; Socket#emit {except, rooms, flags}.
        if except_list:
            opts = {"except": except_list, "rooms": rooms_list, "flags": flags_map}
        else:
            opts = {"rooms": rooms_list, "flags": flags_map}
    elif uid == "emitter":
        # @socket.io/redis-emitter 5.x lib/index.ts: {rooms, flags, except}.
        opts = {"rooms": rooms_list, "flags": flags_map, "except": except_list}
    else:
        # @socket.io/redis-adapter 8.x lib/index.ts: {rooms, except, flags}.
        opts = {"rooms": rooms_list, "except": except_list, "flags": flags_map}
    return packet, opts


def make_broadcast(
    *,
    uid: str,
    data: list[Any],
    nsp: str = "/",
    rooms: Iterable[Any] = (),
    except_: Iterable[Any] = (),
    flags: Mapping[str, Any] | None = None,
    dialect: Dialect = Dialect.CURRENT,
    prefix: str = F.DEFAULT_PREFIX,
    packet_type: int | None = None,
) -> F.Broadcast:
    """Build a :class:`Broadcast` the way the Node producer of ``dialect`` lays it out.

    Rooms and except are de-duplicated (first occurrence kept). For the legacy dialects the
    packet type is 5 (BINARY_EVENT) when ``data`` holds binary, as socket.io 2.x does;
    otherwise 2. The emitter's key order is used when ``uid == "emitter"``.

    Args:
        uid: The sender's uid.
        data: ``[event, *args]``.
        nsp: The namespace.
        rooms: Target rooms (none = the whole namespace).
        except_: Excluded socket ids (legacy) or rooms (8.x).
        flags: ``volatile``, ``compress``, ``timeout``... in the order to write them.
        dialect: LEGACY, LEGACY_LITE or CURRENT.
        prefix: The channel prefix.
        packet_type: Force a packet type.
    """
    packet, opts = _broadcast_parts(uid, data, nsp, rooms, except_, flags, dialect, packet_type)
    return F.Broadcast(uid=uid, packet=packet, opts=opts, nsp=nsp, dialect=dialect, prefix=prefix)


def encode_broadcast(
    *,
    uid: str,
    data: list[Any],
    nsp: str = "/",
    rooms: Iterable[Any] = (),
    except_: Iterable[Any] = (),
    flags: Mapping[str, Any] | None = None,
    dialect: Dialect = Dialect.CURRENT,
    prefix: str = F.DEFAULT_PREFIX,
    packet_type: int | None = None,
) -> tuple[str, bytes]:
    """``encode(make_broadcast(...))`` without building the frame: the adapter's send path.

    Returns:
        ``(channel, payload)``: the room channel when there is exactly one room.

    Raises:
        EncodeError: if ``data`` holds a value the dialect cannot carry.
    """
    packet, opts = _broadcast_parts(uid, data, nsp, rooms, except_, flags, dialect, packet_type)
    g = grammar(prefix)
    rooms_list = opts["rooms"]
    channel = g.room(nsp, rooms_list[0]) if len(rooms_list) == 1 else g.broadcast(nsp)
    flavor = _FLAVOR[dialect]
    obj = [uid, packet, opts]
    try:
        # The envelope is plain by construction: only what the caller passed needs the walk.
        if (
            flavor is not MsgpackFlavor.MSGPACK_LITE
            and type(uid) is str
            and type(nsp) is str
            and is_plain(packet["data"])
            and is_plain(rooms_list)
            and is_plain(opts.get("except", ()))
            and is_plain(opts["flags"])
        ):
            return channel, pack_plain(obj)
        return channel, pack(obj, flavor)
    except Exception as exc:
        raise EncodeError(f"cannot encode broadcast: {exc}") from exc
