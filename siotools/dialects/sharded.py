"""@socket.io/redis-adapter 8.x sharded (``createShardedAdapter``, Redis 7 sharded pub/sub).

Mirrors ``lib/sharded-adapter.ts`` of @socket.io/redis-adapter 8.3.0 on socket.io-adapter
2.5.x's ``ClusterAdapter`` (``lib/cluster-adapter.ts``): every message is an envelope
``{type, data, uid, nsp}`` (MessageType 3-12; no heartbeats), JSON unless the message is a
BROADCAST (3), FETCH_SOCKETS_RESPONSE (8), SERVER_SIDE_EMIT (9), its response (10) or a
BROADCAST_ACK (12) whose ``data`` holds binary, which is then a msgpack map
(sharded-adapter.ts L177-L192). Broadcasts and requests travel on ``P#nsp#`` (SPUBLISH),
responses on the requester's ``P#nsp#<uid>#``; in the ``dynamic`` modes a broadcast to one
room without ack goes to ``P#nsp#room#``, which the nodes with that room SSUBSCRIBE
(``dynamic`` skips socket-id rooms, recognised on the sending side by their 20 characters;
``dynamic-private`` subscribes them too). Nodes are counted with ``PUBSUB SHARDNUMSUB
P#nsp#`` and a requester waits for ``count - 1`` answers. Server ids are 16 hex digits.
A node publishes ``socketsJoin``/``socketsLeave``/``disconnectSockets`` first, then
applies them locally (socket.io-adapter 2.5.4+), and drops its own echo by ``uid``; it
also drops messages of another namespace (2.5.6+), which includes 8.2.x messages (no
``nsp``).

The sharded :class:`~siotools.Emitter` built on this dialect is a siotools feature: no
Node package publishes to sharded nodes (@socket.io/redis-emitter only PUBLISHes, which
SSUBSCRIBE never receives, redis-emitter issue #127).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

from siotools.dialects.base import (
    Action,
    AddExpected,
    Ask,
    CallHook,
    Capabilities,
    Count,
    Deliver,
    DeliverWithAck,
    Disconnect,
    Expect,
    FetchLocal,
    FetchNames,
    Ignored,
    Join,
    Leave,
    Local,
    LocalView,
    Malformed,
    Plan,
    Publish,
    RemoteSocket,
    Reply,
    Route,
    Subscriptions,
    WireDialect,
    remote_socket,
    select_sids,
    unsupported,
    valid_room,
    valid_rooms,
)
from siotools.dialects.current import RESERVED_EVENTS, socket_json
from siotools.exceptions import ConfigurationError, DecodeError
from siotools.protocol import (
    UNDEFINED,
    ChannelKind,
    ClusterMessage,
    ClusterMessageType,
    Dialect,
    decode,
    encode,
    glob_escape,
    has_binary,
)
from siotools.protocol.wire import BroadcastFields

__all__ = ["SUBSCRIPTION_MODES", "TIMEOUT_MESSAGES", "ShardedDialect", "looks_like_socket_id"]

SubscriptionMode = Literal["dynamic", "static", "dynamic-private"]
SUBSCRIPTION_MODES: Final = ("dynamic", "static", "dynamic-private")

M = ClusterMessageType

# socket.io-adapter 2.5.x cluster-adapter.ts (fetchSockets, serverSideEmit) and
# socket.io's BroadcastOperator (acks).
TIMEOUT_MESSAGES: Final[dict[str, str]] = {
    "emit_with_ack": "operation has timed out",
}

# sharded-adapter.ts L177-L192: these types go as msgpack when their data holds binary.
_BINARY_TYPES: Final = frozenset(
    {
        M.BROADCAST,
        M.FETCH_SOCKETS_RESPONSE,
        M.SERVER_SIDE_EMIT,
        M.SERVER_SIDE_EMIT_RESPONSE,
        M.BROADCAST_ACK,
    }
)
_RESPONSES: Final = frozenset(
    {
        M.FETCH_SOCKETS_RESPONSE,
        M.SERVER_SIDE_EMIT_RESPONSE,
        M.BROADCAST_CLIENT_COUNT,
        M.BROADCAST_ACK,
    }
)


def looks_like_socket_id(room: Any) -> bool:
    """sharded-adapter.ts ``looksLikeASocketId``: a 20-character string."""
    return type(room) is str and len(room) == 20


def _timeout(answered: int, expected: int | None) -> str:
    # cluster-adapter.ts: `timeout reached: only ${current} responses received out of
    # ${expected}` (fetchSockets and serverSideEmit alike).
    return f"timeout reached: only {answered} responses received out of {expected}"


def _opts(rooms: Sequence[Any], except_: Sequence[Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    # cluster-adapter.ts encodeOptions: {rooms: [...], except: [...], flags}.
    return {
        "rooms": list(dict.fromkeys(rooms)),
        "except": list(dict.fromkeys(except_)),
        "flags": dict(flags),
    }


def _read_opts(opts: Any) -> tuple[list[Any], list[Any], dict[str, Any]] | None:
    if type(opts) is not dict:
        return None
    rooms = opts.get("rooms", [])
    except_ = opts.get("except", [])
    flags = opts.get("flags") or {}
    if not valid_rooms(rooms) or not valid_rooms(except_) or type(flags) is not dict:
        return None
    return list(rooms), list(except_), flags


class ShardedDialect(FetchNames, WireDialect):
    """@socket.io/redis-adapter 8.x sharded (``createShardedAdapter``).

    Args:
        prefix: The cluster's channel prefix (RA ``channelPrefix``).
        subscription_mode: ``"dynamic"`` (the default: one sharded channel per public
            room), ``"static"`` (the main and response channels only) or
            ``"dynamic-private"`` (also the socket-id rooms), as RA's
            ``subscriptionMode``. Every node of a cluster should use the same one: a node
            publishes single-room broadcasts where its own mode says the others listen.

    Raises:
        ConfigurationError: An unknown subscription mode.
    """

    dialect = Dialect.SHARDED
    label = "@socket.io/redis-adapter 8.x sharded"
    capabilities = Capabilities(
        acks_across_nodes=True,
        except_is_rooms=True,
        socket_details=True,
        all_rooms=False,
        server_side_emit=True,
        bulk_operations=True,
    )
    default_timeout = 5.0
    reserved_events: frozenset[str] = RESERVED_EVENTS
    sharded_pubsub = True
    room_route = Route.REQUEST  # a room channel carries ClusterAdapter messages too

    def __init__(
        self, prefix: str = "socket.io", *, subscription_mode: SubscriptionMode = "dynamic"
    ) -> None:
        super().__init__(prefix)
        if subscription_mode not in SUBSCRIPTION_MODES:
            raise ConfigurationError(
                f"subscription_mode must be one of {', '.join(map(repr, SUBSCRIPTION_MODES))} "
                f"for the sharded adapter, not {subscription_mode!r}"
            )
        self.subscription_mode: SubscriptionMode = subscription_mode
        self.private_room_channels = subscription_mode == "dynamic-private"

    def new_uid(self) -> str:
        # cluster-adapter.ts randomId(): randomBytes(8).toString("hex").
        return secrets.token_hex(8)

    # ------------------------------------------------------------------ channels

    def _main(self, nsp: str) -> bytes:
        return self.grammar.broadcast(nsp).encode()

    def _response(self, nsp: str, uid: str) -> bytes:
        return self.grammar.sharded_response(nsp, uid).encode()

    def node_subscriptions(self, nsp: str, uid: str) -> Subscriptions:
        # sharded-adapter.ts L88-L94: SSUBSCRIBE the main channel, then the response one
        # (two commands: the channels of one SSUBSCRIBE must share a slot).
        return Subscriptions(shard_channels=(self._main(nsp), self._response(nsp, uid)))

    def client_subscriptions(self, nsp: str, uid: str) -> Subscriptions:
        # Only the own response channel: SHARDNUMSUB of the main channel stays the nodes'.
        return Subscriptions(shard_channels=(self._response(nsp, uid),))

    def routes(self, nsp: str, uid: str) -> dict[bytes, Route]:
        return {self._main(nsp): Route.REQUEST, self._response(nsp, uid): Route.RESPONSE}

    def room_channel(self, nsp: str, room: Any) -> bytes | None:
        # sharded-adapter.ts L96-L111, L160-L162: dynamic modes SSUBSCRIBE P#nsp#room#.
        if self.subscription_mode == "static" or not valid_room(room):
            return None
        return self.grammar.room_bytes(nsp, room)

    def count_channel(self, nsp: str) -> bytes:
        return self._main(nsp)

    def server_count(self, nsp: str) -> Plan[int]:
        # sharded-adapter.ts serverCount(): PUBSUB SHARDNUMSUB P#nsp#, summed over masters.
        count: int = yield Count(self._main(nsp), sharded=True)
        return count

    def namespace_probe(self) -> tuple[bytes, bytes]:
        return b"SHARDCHANNELS", (glob_escape(self.grammar.broadcast("")[:-1]) + "*").encode()

    def namespace_of(self, channel: bytes) -> str | None:
        parsed = self.grammar.parse(channel)
        if parsed.kind is ChannelKind.BROADCAST:
            return parsed.nsp
        return None

    # ------------------------------------------------------------------ encoding

    def _message(
        self, mtype: ClusterMessageType, data: dict[str, Any], uid: str, nsp: str, to: str | None
    ) -> Publish:
        """One envelope ``{type, data, uid, nsp}`` for the main channel (``to=None``), a
        room channel or a response channel (``to``: the room or the requester's uid)."""
        binary = mtype in _BINARY_TYPES and has_binary(data)
        frame = ClusterMessage(
            type=mtype,
            data=data,
            uid=uid,
            nsp=nsp,
            binary=binary,
            target=to,
            prefix=self.prefix,
        )
        channel, payload = encode(frame)
        return Publish(channel.encode(), payload, sharded=True)

    def read_broadcast(self, payload: bytes) -> BroadcastFields:
        """``(uid, nsp, data, rooms, except, flags)`` of a BROADCAST message.

        Raises:
            DecodeError: The payload is not a sharded BROADCAST.
        """
        frame = self._decode(b"", payload)
        parsed = self._broadcast_fields(frame)
        if parsed is None:
            raise DecodeError("not a sharded BROADCAST message", payload=payload)
        return parsed

    def _decode(self, channel: bytes, payload: bytes) -> ClusterMessage:
        ch = channel or self._main("/")
        frame = decode(ch, payload, prefix=self.prefix, dialect=Dialect.SHARDED)
        if not isinstance(frame, ClusterMessage):  # pragma: no cover - forced dialect
            raise DecodeError("not a sharded message", channel=channel, payload=payload)
        return frame

    @staticmethod
    def _broadcast_fields(frame: ClusterMessage) -> BroadcastFields | None:
        data = frame.data
        if frame.type != M.BROADCAST or type(data) is not dict:
            return None
        packet = data.get("packet")
        parsed = _read_opts(data.get("opts"))
        if type(packet) is not dict or parsed is None:
            return None
        body = packet.get("data")
        if type(body) is not list:
            return None
        rooms, except_, flags = parsed
        return (frame.uid, frame.nsp, body, rooms, except_, flags)

    def broadcast(
        self,
        uid: str,
        nsp: str,
        data: list[Any],
        rooms: Sequence[Any],
        except_: Sequence[Any],
        flags: Mapping[str, Any],
    ) -> Publish:
        # cluster-adapter.ts broadcast(): {type: 3, data: {packet, opts}}; packet.nsp is not
        # set yet when it is published. sharded-adapter.ts computeChannel L142-L158.
        opts = _opts(rooms, except_, flags)
        to: str | None = None
        if len(opts["rooms"]) == 1 and self.subscription_mode != "static":
            room = opts["rooms"][0]
            if self.subscription_mode == "dynamic-private" or not looks_like_socket_id(room):
                to = str(room)
        body = {"packet": {"type": 2, "data": list(data)}, "opts": opts}
        return self._message(M.BROADCAST, body, uid, nsp, to)

    # ------------------------------------------------------------------ receiving

    def on_request(self, uid: str, channel: bytes, payload: bytes, view: LocalView) -> list[Action]:
        try:
            frame = self._decode(channel, payload)
        except DecodeError as exc:
            return [Malformed(exc)]
        nsp = self.grammar.parse(channel).nsp or "/"
        # cluster-adapter.ts onMessage: own messages and other namespaces are dropped.
        if frame.uid == uid:
            return []
        if not frame.has_nsp:
            return [
                Ignored(
                    "sharded_without_nsp",
                    warning=(
                        f"a sharded message without 'nsp' arrived on prefix {self.prefix!r}: "
                        "a @socket.io/redis-adapter 8.2.x node; 8.3 nodes (socket.io-adapter "
                        "2.5.6+) and siotools drop its messages: upgrade it to 8.3"
                    ),
                )
            ]
        if frame.nsp != nsp:
            return []
        if type(frame.uid) is not str:
            return self._bad(channel, payload, "sharded message: 'uid' must be a string")
        if frame.type in _RESPONSES:
            return self.on_response(channel, payload)
        data = frame.data
        if type(data) is not dict:
            return self._bad(channel, payload, f"sharded message type {frame.type}: no 'data'")
        common: dict[str, Any] = {"uid": uid, "nsp": nsp, "to": frame.uid}
        match frame.type:
            case M.BROADCAST:
                return self._on_broadcast(frame, data, channel, payload, common)
            case M.SOCKETS_JOIN | M.SOCKETS_LEAVE | M.DISCONNECT_SOCKETS:
                return self._on_bulk(frame.type, data, view, nsp, channel, payload)
            case M.FETCH_SOCKETS:
                parsed = _read_opts(data.get("opts"))
                rid = data.get("requestId")
                if parsed is None or type(rid) is not str:
                    return self._bad(channel, payload, "FETCH_SOCKETS: malformed 'opts'")
                sids = tuple(select_sids(view, nsp, parsed[0], parsed[1]))
                message = self._message

                def respond(sockets: list[RemoteSocket]) -> Publish:
                    body = {"requestId": rid, "sockets": [socket_json(s) for s in sockets]}
                    return message(M.FETCH_SOCKETS_RESPONSE, body, **common)

                return [FetchLocal(nsp, sids, respond)]
            case M.SERVER_SIDE_EMIT:
                packet = data.get("packet")
                if type(packet) is not list or not packet or type(packet[0]) is not str:
                    return self._bad(
                        channel, payload, "SERVER_SIDE_EMIT: 'packet' must start with an event"
                    )
                rid = data.get("requestId")
                answer: Callable[[Any], Publish | None] | None = None
                if rid is not None:
                    request_id = rid
                    message = self._message

                    def answer(value: Any) -> Publish:
                        body = {"requestId": request_id, "packet": value}
                        return message(M.SERVER_SIDE_EMIT_RESPONSE, body, **common)

                return [CallHook(nsp, "server_side_emit", list(packet), answer)]
        # Unknown types, heartbeats and ADAPTER_CLOSE: ClusterAdapter ignores them.
        return [Ignored("requests_ignored")]

    def _bad(self, channel: bytes, payload: bytes, why: str) -> list[Action]:
        return [Malformed(DecodeError(why, channel=channel, payload=payload))]

    def _on_broadcast(
        self,
        frame: ClusterMessage,
        data: dict[str, Any],
        channel: bytes,
        payload: bytes,
        common: dict[str, Any],
    ) -> list[Action]:
        fields = self._broadcast_fields(frame)
        if fields is None:
            return self._bad(channel, payload, "BROADCAST: malformed 'packet' or 'opts'")
        _, nsp, body, rooms, except_, flags = fields
        if not body:
            return [Ignored("ignored")]
        rid = data.get("requestId")
        if rid is None:
            return [Deliver(nsp, body, rooms, except_, flags)]
        message = self._message

        def on_count(count: int) -> Publish:
            body = {"requestId": rid, "clientCount": count}
            return message(M.BROADCAST_CLIENT_COUNT, body, **common)

        def on_ack(arg: Any) -> Publish:
            return message(M.BROADCAST_ACK, {"requestId": rid, "packet": arg}, **common)

        return [DeliverWithAck(nsp, body, rooms, except_, on_count, on_ack)]

    def _on_bulk(
        self,
        mtype: int,
        data: dict[str, Any],
        view: LocalView,
        nsp: str,
        channel: bytes,
        payload: bytes,
    ) -> list[Action]:
        parsed = _read_opts(data.get("opts"))
        if parsed is None:
            return self._bad(channel, payload, f"sharded message type {mtype}: malformed 'opts'")
        if mtype == M.DISCONNECT_SOCKETS:
            sids = tuple(select_sids(view, nsp, parsed[0], parsed[1]))
            return [Disconnect(nsp, sids, data.get("close") is True)] if sids else []
        targets = data.get("rooms")
        if not valid_rooms(targets):
            return self._bad(channel, payload, f"sharded message type {mtype}: malformed 'rooms'")
        return _bulk(mtype, view, nsp, parsed[0], parsed[1], list(targets or ()))

    def on_response(self, channel: bytes, payload: bytes) -> list[Action]:
        try:
            frame = self._decode(channel, payload)
        except DecodeError as exc:
            return [Malformed(exc)]
        data = frame.data
        rid = data.get("requestId") if type(data) is dict else None
        if frame.type not in _RESPONSES or type(rid) is not str:
            return [Ignored("responses_ignored")]
        assert type(data) is dict
        if frame.type == M.BROADCAST_CLIENT_COUNT:
            count = data.get("clientCount")
            if type(count) is not int or count < 0:
                return self._bad(channel, payload, "BROADCAST_CLIENT_COUNT: bad 'clientCount'")
            # More acks to wait for, then the count itself is one reply.
            return [AddExpected(rid, count), Reply(rid, frame)]
        return [Reply(rid, frame)]

    # ------------------------------------------------------------------ asking

    def _count(self, nsp: str) -> Count:
        # expected = SHARDNUMSUB - 1: the asking node is counted, never answers itself.
        return Count(self._main(nsp), exclude_self=True, sharded=True)

    def _ask(self, out: Publish, rid: str | None, *, counts: bool = False, **kwargs: Any) -> Ask:
        expect = Expect.NONE if rid is None else Expect.COUNTS if counts else Expect.COUNT
        return Ask(
            channel=out.channel,
            payload=out.payload,
            request_id=rid,
            expect=expect,
            sharded=True,
            **kwargs,
        )

    def _sender(self, uid: str) -> str:
        # A process without an id (the emitter) signs "emitter", as the Node emitters do.
        return uid or "emitter"

    def fetch_sockets(
        self,
        nsp: str,
        uid: str,
        rooms: Sequence[Any],
        except_: Sequence[Any],
        local: list[RemoteSocket] | None,
    ) -> Plan[list[RemoteSocket]]:
        # cluster-adapter.ts fetchSockets L566-L610.
        found = list(local or [])
        expected: int = yield self._count(nsp)
        if expected <= 0:
            return found
        rid = secrets.token_hex(8)
        body = {"opts": _opts(rooms, except_, {}), "requestId": rid}
        out = self._message(M.FETCH_SOCKETS, body, self._sender(uid), nsp, None)

        def finish(replies: list[Any]) -> list[RemoteSocket]:
            result = list(found)
            for reply in replies:
                if isinstance(reply, ClusterMessage) and type(reply.data) is dict:
                    sockets = reply.data.get("sockets")
                    for value in sockets if type(sockets) is list else ():
                        socket = remote_socket(value, nsp)
                        if socket is not None:
                            result.append(socket)
            return result

        result: list[RemoteSocket] = yield self._ask(
            out, rid, expected=expected, timeout_message=_timeout, finish=finish
        )
        return result

    def all_rooms(self, nsp: str, uid: str, local: list[Any] | None) -> Plan[list[Any]]:
        raise unsupported(
            self,
            "list every room of the cluster (the ClusterAdapter protocol has no allRooms)",
            "use fetch_sockets() and read each socket's rooms",
        )
        yield  # pragma: no cover - makes this a generator

    def _bulk_plan(
        self, nsp: str, uid: str, mtype: ClusterMessageType, body: dict[str, Any]
    ) -> Plan[int]:
        # cluster-adapter.ts addSockets/delSockets/disconnectSockets (2.5.4+): publish
        # first, then apply locally; the echo is dropped by uid.
        out = self._message(mtype, body, self._sender(uid), nsp, None)
        heard: int = yield self._ask(out, None)
        opts = body["opts"]
        if mtype == M.DISCONNECT_SOCKETS:
            close = body["close"]

            def disconnect(view: LocalView) -> list[Action]:
                sids = tuple(select_sids(view, nsp, opts["rooms"], opts["except"]))
                return [Disconnect(nsp, sids, close)] if sids else []

            yield Local(disconnect)
        else:
            rooms = body["rooms"]
            yield Local(lambda view: _bulk(mtype, view, nsp, opts["rooms"], opts["except"], rooms))
        return heard

    def sockets_join(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], join: Sequence[Any]
    ) -> Plan[int]:
        body = {"opts": _opts(rooms, except_, {}), "rooms": list(dict.fromkeys(join))}
        return (yield from self._bulk_plan(nsp, uid, M.SOCKETS_JOIN, body))

    def sockets_leave(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], leave: Sequence[Any]
    ) -> Plan[int]:
        body = {"opts": _opts(rooms, except_, {}), "rooms": list(dict.fromkeys(leave))}
        return (yield from self._bulk_plan(nsp, uid, M.SOCKETS_LEAVE, body))

    def disconnect_sockets(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], close: bool
    ) -> Plan[int]:
        body = {"opts": _opts(rooms, except_, {}), "close": bool(close)}
        return (yield from self._bulk_plan(nsp, uid, M.DISCONNECT_SOCKETS, body))

    def server_side_emit(
        self, nsp: str, uid: str, data: list[Any], *, ack: bool, local_replies: int = 0
    ) -> Plan[Any]:
        # cluster-adapter.ts serverSideEmit L612-L669.
        sender = self._sender(uid)
        if not ack:
            out = self._message(M.SERVER_SIDE_EMIT, {"packet": list(data)}, sender, nsp, None)
            heard: int = yield self._ask(out, None)
            return heard
        expected: int = yield self._count(nsp)
        if expected <= 0:
            return []
        rid = secrets.token_hex(8)
        body = {"requestId": rid, "packet": list(data)}
        out = self._message(M.SERVER_SIDE_EMIT, body, sender, nsp, None)

        def finish(replies: list[Any]) -> list[Any]:
            values = []
            for r in replies:
                if isinstance(r, ClusterMessage) and type(r.data) is dict:
                    value = r.data.get("packet")
                    values.append(None if value is UNDEFINED else value)
            return values

        result: list[Any] = yield self._ask(
            out, rid, expected=expected, timeout_message=_timeout, finish=finish
        )
        return result

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
        # cluster-adapter.ts broadcastWithAck L472-L504: always on the main channel (the
        # server count is that of the main channel), every other node answers its client
        # count (11), then one ack (12) per client.
        expected: int = yield self._count(nsp)
        if expected <= 0:
            return []
        rid = secrets.token_hex(8)
        opts = _opts(rooms, except_, {**flags, "timeout": int(timeout * 1000)})
        body = {"packet": {"type": 2, "data": list(data)}, "requestId": rid, "opts": opts}
        out = self._message(M.BROADCAST, body, self._sender(uid), nsp, None)

        def finish(replies: list[Any]) -> list[Any]:
            return [
                r.data.get("packet")
                for r in replies
                if isinstance(r, ClusterMessage)
                and r.type == M.BROADCAST_ACK
                and type(r.data) is dict
            ]

        result: list[Any] = yield self._ask(
            out,
            rid,
            counts=True,
            expected=expected,
            timeout_message=TIMEOUT_MESSAGES["emit_with_ack"],
            finish=finish,
            timeout=timeout,
        )
        return result


def _bulk(
    mtype: int,
    view: LocalView,
    nsp: str,
    rooms: Sequence[Any],
    except_: Sequence[Any],
    targets: Sequence[Any],
) -> list[Action]:
    sids = tuple(select_sids(view, nsp, rooms, except_))
    if not sids or not targets:
        return []
    if mtype == M.SOCKETS_JOIN:
        return [Join(nsp, sids, tuple(targets))]
    return [Leave(nsp, sids, tuple(targets))]
