"""@socket.io/redis-adapter 8.x classic (and @socket.io/redis-emitter 5.x).

Mirrors ``lib/index.ts`` of @socket.io/redis-adapter 8.3.0 (the wire has not changed since
8.0.0): notepack 3 broadcasts whose ``except`` names rooms; requests with ``uid`` and
``requestId``, JSON except BROADCAST (7) and BROADCAST_ACK (9), which are msgpack;
counting by ``PUBSUB NUMSUB`` of the request channel where the asking node does not
answer itself (it merges its local result); ``socketsJoin``/``socketsLeave``/
``disconnectSockets`` are fire-and-forget and the sender applies them when its own request
comes back from Redis (L300-L367); responses go to ``P-response#nsp#`` or, with
``publishOnSpecificResponseChannel``, to ``P-response#nsp#<requester uid>#`` (except the
serverSideEmit acks, always on the common channel, L397-L426).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

from siotools.dialects.base import (
    Action,
    AddExpected,
    Ask,
    CallHook,
    Capabilities,
    Count,
    DeliverWithAck,
    Disconnect,
    Expect,
    FetchLocal,
    FetchNames,
    Ignored,
    Join,
    Leave,
    LocalView,
    Malformed,
    Plan,
    Publish,
    RemoteSocket,
    Reply,
    Route,
    Settle,
    Subscriptions,
    WireDialect,
    remote_socket,
    select_sids,
    valid_room,
    valid_rooms,
)
from siotools.exceptions import ConfigurationError, DecodeError
from siotools.protocol import (
    UNDEFINED,
    AllRoomsRequest,
    BroadcastAckRequest,
    BroadcastAckResponse,
    BroadcastClientCountResponse,
    CurrentRequest,
    CurrentResponse,
    Dialect,
    EmptyResponse,
    Frame,
    RemoteDisconnectRequest,
    RemoteFetchRequest,
    RemoteJoinRequest,
    RemoteLeaveRequest,
    RoomsResponse,
    ServerSideEmitRequest,
    ServerSideEmitResponse,
    SocketsRequest,
    SocketsResponse,
    encode,
    encode_broadcast,
    js_parse,
    js_stringify_bytes,
    make_broadcast,
    unpack_broadcast,
)
from siotools.protocol.wire import BroadcastFields
from siotools.transport.requests import new_request_id

__all__ = ["RESERVED_EVENTS", "TIMEOUT_MESSAGES", "CurrentDialect"]

# lib/index.ts 8.3.0: the rejections of allRooms/fetchSockets/serverSideEmit, and
# socket.io's BroadcastOperator for acks.
TIMEOUT_MESSAGES: Final[dict[str, str]] = {
    "all_rooms": "timeout reached while waiting for allRooms response",
    "fetch_sockets": "timeout reached while waiting for fetchSockets response",
    "emit_with_ack": "operation has timed out",
}

# @socket.io/redis-emitter 5.1.0 lib/index.ts RESERVED_EVENTS.
RESERVED_EVENTS: Final = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)


def _publish(frame: Frame) -> Publish:
    channel, payload = encode(frame)
    return Publish(channel.encode(), payload)


def _ssemit_timeout(answered: int, expected: int | None) -> str:
    # lib/index.ts serverSideEmitWithAck: `timeout reached: only ${n} responses received
    # out of ${expectedResponseCount}`.
    return f"timeout reached: only {answered} responses received out of {expected}"


def _opts(rooms: Sequence[Any], except_: Sequence[Any]) -> dict[str, Any]:
    # lib/index.ts: `opts: { rooms: [...opts.rooms], except: [...opts.except] }`.
    return {"rooms": list(dict.fromkeys(rooms)), "except": list(dict.fromkeys(except_))}


def _read_opts(opts: Any) -> tuple[list[Any], list[Any]] | None:
    """``(rooms, except)`` of a request's ``opts`` map, or ``None`` when malformed."""
    if type(opts) is not dict:
        return None
    rooms = opts.get("rooms", [])
    except_ = opts.get("except", [])
    if not valid_rooms(rooms) or not valid_rooms(except_):
        return None
    return list(rooms), list(except_)


def _json_broadcast(payload: bytes) -> BroadcastFields:
    # RA's custom parser test: JSON.stringify([uid, packet, opts]).
    try:
        value = js_parse(payload)
    except Exception as exc:
        raise DecodeError(f"cannot decode JSON broadcast: {exc}", payload=payload) from exc
    if type(value) is not list or len(value) != 3:
        raise DecodeError("a broadcast is [uid, packet, opts]", payload=payload)
    uid, packet, opts = value
    if type(packet) is not dict or type(opts) is not dict:
        raise DecodeError("a broadcast's packet and opts are maps", payload=payload)
    data = packet.get("data")
    rooms = opts.get("rooms") or []
    except_ = opts.get("except") or []
    flags = opts.get("flags") or {}
    if type(data) is not list or type(rooms) is not list or type(except_) is not list:
        raise DecodeError("malformed JSON broadcast", payload=payload)
    return (uid, packet.get("nsp", "/"), data, rooms, except_, flags if type(flags) is dict else {})


def socket_json(socket: RemoteSocket) -> dict[str, Any]:
    """What an 8.x node sends of a socket in a REMOTE_FETCH answer (key order kept)."""
    return {
        "id": socket.id,
        "handshake": dict(socket.handshake or {}),
        "rooms": list(socket.rooms),
        "data": socket.data,
    }


class CurrentDialect(FetchNames, WireDialect):
    """@socket.io/redis-adapter 8.x classic (``createAdapter``).

    Args:
        prefix: The cluster's channel prefix (``key``).
        publish_on_specific_response_channel: Answer on ``P-response#nsp#<uid>#`` of the
            requester (RA 7.1+ option) instead of the common response channel.
        parser: ``"msgpack"`` (notepack 3, the default) or ``"json"`` (the custom parser of
            RA's tests) for broadcasts and the msgpack request types.
    """

    dialect = Dialect.CURRENT
    label = "@socket.io/redis-adapter 8.x"
    capabilities = Capabilities(
        acks_across_nodes=True,
        except_is_rooms=True,
        socket_details=True,
        all_rooms=True,
        server_side_emit=True,
        bulk_operations=True,
    )
    default_timeout = 5.0
    reserved_events: frozenset[str] = RESERVED_EVENTS

    def __init__(
        self,
        prefix: str = "socket.io",
        *,
        publish_on_specific_response_channel: bool = False,
        parser: Literal["msgpack", "json"] = "msgpack",
    ) -> None:
        super().__init__(prefix)
        if parser not in ("msgpack", "json"):
            raise ConfigurationError(f"parser must be 'msgpack' or 'json', not {parser!r}")
        self.publish_on_specific_response_channel = publish_on_specific_response_channel
        self.parser = parser

    # ------------------------------------------------------------------ channels

    def node_subscriptions(self, nsp: str, uid: str) -> Subscriptions:
        # lib/index.ts L143-L186: PSUBSCRIBE P#nsp#*, SUBSCRIBE request, response and the
        # node's own response channel (whatever publishOnSpecificResponseChannel says).
        g = self.grammar
        return Subscriptions(
            channels=(
                g.request(nsp).encode(),
                g.response(nsp).encode(),
                g.response_for(nsp, uid).encode(),
            ),
            patterns=(g.broadcast_pattern(nsp).encode(),),
        )

    def client_subscriptions(self, nsp: str, uid: str) -> Subscriptions:
        g = self.grammar
        return Subscriptions(channels=(g.response(nsp).encode(), g.response_for(nsp, uid).encode()))

    def routes(self, nsp: str, uid: str) -> dict[bytes, Route]:
        g = self.grammar
        return {
            g.broadcast_bytes(nsp): Route.BROADCAST,
            g.request(nsp).encode(): Route.REQUEST,
            g.response(nsp).encode(): Route.RESPONSE,
            g.response_for(nsp, uid).encode(): Route.RESPONSE,
        }

    # ------------------------------------------------------------------ broadcasts

    def _encode(self, obj: Any) -> bytes:
        if self.parser == "json":
            return js_stringify_bytes(obj)
        from siotools.protocol import MsgpackFlavor, pack

        return pack(obj, MsgpackFlavor.NOTEPACK3)

    def read_broadcast(self, payload: bytes) -> BroadcastFields:
        if self.parser == "json" and payload[:1] == b"[":
            return _json_broadcast(payload)
        return unpack_broadcast(payload)

    def broadcast(
        self,
        uid: str,
        nsp: str,
        data: list[Any],
        rooms: Sequence[Any],
        except_: Sequence[Any],
        flags: Mapping[str, Any],
    ) -> Publish:
        if self.parser == "json":
            frame = make_broadcast(
                uid=uid,
                data=data,
                nsp=nsp,
                rooms=rooms,
                except_=except_,
                flags=flags,
                dialect=Dialect.CURRENT,
                prefix=self.prefix,
            )
            channel, _ = encode(frame)
            payload = js_stringify_bytes([frame.uid, frame.packet, frame.opts])
            return Publish(channel.encode(), payload)
        channel, payload = encode_broadcast(
            uid=uid,
            data=data,
            nsp=nsp,
            rooms=rooms,
            except_=except_,
            flags=flags,
            dialect=Dialect.CURRENT,
            prefix=self.prefix,
        )
        return Publish(channel.encode(), payload)

    # ------------------------------------------------------------------ answering

    def _to(self, frame: CurrentRequest) -> str | None:
        return frame.uid if self.publish_on_specific_response_channel else None

    def on_request(self, uid: str, channel: bytes, payload: bytes, view: LocalView) -> list[Action]:
        frame = self.decode(channel, payload)
        if isinstance(frame, list):
            return frame
        if not isinstance(frame, CurrentRequest):
            return [
                Ignored(
                    "foreign_requests",
                    warning=(
                        f"a {frame.dialect.value} request arrived on the "
                        f"@socket.io/redis-adapter 8.x prefix {self.prefix!r}: two adapter "
                        "generations share this prefix and misread each other's requests "
                        "(5.x nodes crash on 8.x acks); give them distinct keys"
                    ),
                )
            ]
        common: dict[str, Any] = {"nsp": frame.nsp, "prefix": self.prefix}
        nsp = frame.nsp

        def bad(why: str) -> list[Action]:
            return [Malformed(DecodeError(why, channel=channel, payload=payload))]

        match frame:
            case SocketsRequest(uid=req_uid, request_id=rid, rooms=rooms):
                if req_uid == uid:
                    return []  # our own request: the local part is merged by the asker
                if not valid_rooms(rooms):
                    return bad("SOCKETS request: 'rooms' must be a list of room names")
                sids = tuple(select_sids(view, nsp, rooms, ()))
                return [
                    _publish(
                        SocketsResponse(
                            request_id=rid, sockets=sids, to_uid=self._to(frame), **common
                        )
                    )
                ]
            case AllRoomsRequest(uid=req_uid, request_id=rid):
                if req_uid == uid:
                    return []
                rooms = tuple(r for r in view.namespace_rooms(nsp) or {} if r is not None)
                return [
                    _publish(
                        RoomsResponse(request_id=rid, rooms=rooms, to_uid=self._to(frame), **common)
                    )
                ]
            case RemoteJoinRequest() | RemoteLeaveRequest():
                return self._join_leave(frame, view, bad)
            case RemoteDisconnectRequest(opts=opts, sid=sid, close=close, request_id=rid):
                if opts is not None:
                    parsed = _read_opts(opts)
                    if parsed is None:
                        return bad("REMOTE_DISCONNECT request: malformed 'opts'")
                    sids = tuple(select_sids(view, nsp, *parsed))
                    return [Disconnect(nsp, sids, close is True)] if sids else []
                # The 6.x-7.x single-socket form, still answered by 8.3.0.
                if type(sid) is not str or rid is None:
                    return bad("REMOTE_DISCONNECT request: needs 'opts', or 'sid' and 'requestId'")
                if not view.is_connected(sid, nsp):
                    return []
                return [
                    Disconnect(nsp, (sid,), close is True),
                    _publish(EmptyResponse(request_id=rid, to_uid=self._to(frame), **common)),
                ]
            case RemoteFetchRequest(uid=req_uid, request_id=fetch_id, opts=opts):
                if req_uid == uid:
                    return []
                parsed = _read_opts(opts)
                if parsed is None:
                    return bad("REMOTE_FETCH request: malformed 'opts'")
                sids = tuple(select_sids(view, nsp, *parsed))
                to_uid = self._to(frame)

                def respond(sockets: list[RemoteSocket]) -> Publish:
                    body = tuple(socket_json(s) for s in sockets)
                    return _publish(
                        SocketsResponse(request_id=fetch_id, sockets=body, to_uid=to_uid, **common)
                    )

                return [FetchLocal(nsp, sids, respond)]
            case ServerSideEmitRequest(uid=req_uid, request_id=rid, data=data):
                if req_uid == uid:
                    return []
                if not data or type(data[0]) is not str:
                    return bad("SERVER_SIDE_EMIT request: 'data' must start with an event name")
                answer: Callable[[Any], Publish | None] | None = None
                if rid is not None:
                    request_id = rid

                    def answer(value: Any) -> Publish:
                        # Always the common response channel (L397-L426).
                        return _publish(
                            ServerSideEmitResponse(request_id=request_id, data=value, **common)
                        )

                return [CallHook(nsp, "server_side_emit", list(data), answer)]
            case BroadcastAckRequest(uid=req_uid, request_id=ack_id, packet=packet, opts=opts):
                if req_uid == uid:
                    return []
                parsed = _read_opts(opts)
                ack_data = packet.get("data")
                if parsed is None or type(ack_data) is not list or not ack_data:
                    return bad("BROADCAST request: malformed 'packet' or 'opts'")
                to_uid = self._to(frame)
                encode_obj = self._encode
                g = self.grammar
                response_channel = (
                    g.response(nsp) if to_uid is None else g.response_for(nsp, to_uid)
                ).encode()

                def on_count(count: int) -> Publish:
                    return _publish(
                        BroadcastClientCountResponse(
                            request_id=ack_id, client_count=count, to_uid=to_uid, **common
                        )
                    )

                def on_ack(arg: Any) -> Publish:
                    # lib/index.ts L456-L462: parser.encode({type: 9, requestId, packet}).
                    body = {"type": 9, "requestId": ack_id, "packet": arg}
                    return Publish(response_channel, encode_obj(body))

                # The received flags are dropped for ack broadcasts (L434-L437).
                return [DeliverWithAck(nsp, ack_data, parsed[0], parsed[1], on_count, on_ack)]
        return [Ignored("requests_ignored")]  # pragma: no cover - the match is exhaustive

    def _join_leave(
        self,
        frame: RemoteJoinRequest | RemoteLeaveRequest,
        view: LocalView,
        bad: Callable[[str], list[Action]],
    ) -> list[Action]:
        nsp = frame.nsp
        joining = isinstance(frame, RemoteJoinRequest)
        name = "REMOTE_JOIN" if joining else "REMOTE_LEAVE"
        if frame.opts is not None:
            # 6.1+ opts form: every node, the sender included, applies it on receipt.
            parsed = _read_opts(frame.opts)
            targets = frame.rooms
            if parsed is None or targets is None or not valid_rooms(targets):
                return bad(f"{name} request: malformed 'opts' or 'rooms'")
            sids = tuple(select_sids(view, nsp, *parsed))
            if not sids or not targets:
                return []
            if joining:
                return [Join(nsp, sids, tuple(targets))]
            return [Leave(nsp, tuple(s for s in sids), tuple(targets))]
        # The 6.x-7.x single-socket form {requestId, sid, room}.
        sid, room, rid = frame.sid, frame.room, frame.request_id
        if type(sid) is not str or not valid_room(room) or rid is None:
            return bad(f"{name} request: needs 'opts', or 'sid', 'room' and 'requestId'")
        if not view.is_connected(sid, nsp):
            return []
        common: dict[str, Any] = {"nsp": nsp, "prefix": self.prefix}
        reply = _publish(EmptyResponse(request_id=rid, to_uid=self._to(frame), **common))
        if joining:
            return [Join(nsp, (sid,), (room,)), Settle(), reply]
        return [Leave(nsp, (sid,), (room,)), reply]

    def on_response(self, channel: bytes, payload: bytes) -> list[Action]:
        frame = self.decode(channel, payload)
        if isinstance(frame, list):
            return frame
        if isinstance(frame, BroadcastClientCountResponse):
            # More acks to wait for, then the count itself is one reply (so the request
            # cannot complete before every node's count arrived).
            return [
                AddExpected(frame.request_id, frame.client_count),
                Reply(frame.request_id, frame),
            ]
        if isinstance(frame, CurrentResponse):
            return [Reply(frame.request_id, frame)]
        return [Ignored("responses_ignored")]

    # ------------------------------------------------------------------ asking

    def _request(self, frame: CurrentRequest) -> tuple[bytes, bytes]:
        if isinstance(frame, BroadcastAckRequest) and self.parser == "json":
            channel = self.grammar.request(frame.nsp).encode()
            body = {
                "uid": frame.uid,
                "requestId": frame.request_id,
                "type": 7,
                "packet": frame.packet,
                "opts": frame.opts,
            }
            return channel, js_stringify_bytes(body)
        channel_str, payload = encode(frame)
        return channel_str.encode(), payload

    def _common(self, nsp: str) -> dict[str, Any]:
        return {"nsp": nsp, "prefix": self.prefix}

    def fetch_sockets(
        self,
        nsp: str,
        uid: str,
        rooms: Sequence[Any],
        except_: Sequence[Any],
        local: list[RemoteSocket] | None,
    ) -> Plan[list[RemoteSocket]]:
        # lib/index.ts fetchSockets L729-L776: local first, numSub <= 1 -> local only.
        found = list(local or [])
        expected: int = yield Count(self.count_channel(nsp), exclude_self=True)
        if expected <= 0:
            return found
        rid = new_request_id()
        frame = RemoteFetchRequest(
            uid=uid, request_id=rid, opts=_opts(rooms, except_), **self._common(nsp)
        )

        def finish(replies: list[Any]) -> list[RemoteSocket]:
            out = list(found)
            for reply in replies:
                if isinstance(reply, SocketsResponse):
                    for value in reply.sockets:
                        socket = remote_socket(value, nsp)
                        if socket is not None:
                            out.append(socket)
            return out

        channel, payload = self._request(frame)
        result: list[RemoteSocket] = yield Ask(
            channel=channel,
            payload=payload,
            request_id=rid,
            expect=Expect.COUNT,
            expected=expected,
            timeout_message=TIMEOUT_MESSAGES["fetch_sockets"],
            finish=finish,
        )
        return result

    def all_rooms(self, nsp: str, uid: str, local: list[Any] | None) -> Plan[list[Any]]:
        seen: dict[Any, None] = dict.fromkeys(local or [])
        expected: int = yield Count(self.count_channel(nsp), exclude_self=True)
        if expected <= 0:
            return list(seen)
        rid = new_request_id()
        frame = AllRoomsRequest(uid=uid, request_id=rid, **self._common(nsp))

        def finish(replies: list[Any]) -> list[Any]:
            out = dict(seen)
            for reply in replies:
                if isinstance(reply, RoomsResponse):
                    out.update(dict.fromkeys(reply.rooms))
            return list(out)

        channel, payload = self._request(frame)
        result: list[Any] = yield Ask(
            channel=channel,
            payload=payload,
            request_id=rid,
            expect=Expect.COUNT,
            expected=expected,
            timeout_message=TIMEOUT_MESSAGES["all_rooms"],
            finish=finish,
        )
        return result

    def _fire(self, frame: CurrentRequest) -> Ask:
        channel, payload = self._request(frame)
        return Ask(channel=channel, payload=payload, request_id=None, expect=Expect.NONE)

    def sockets_join(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], join: Sequence[Any]
    ) -> Plan[int]:
        frame = RemoteJoinRequest(
            uid=uid or None,
            opts=_opts(rooms, except_),
            rooms=tuple(dict.fromkeys(join)),
            **self._common(nsp),
        )
        heard: int = yield self._fire(frame)
        return heard

    def sockets_leave(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], leave: Sequence[Any]
    ) -> Plan[int]:
        frame = RemoteLeaveRequest(
            uid=uid or None,
            opts=_opts(rooms, except_),
            rooms=tuple(dict.fromkeys(leave)),
            **self._common(nsp),
        )
        heard: int = yield self._fire(frame)
        return heard

    def disconnect_sockets(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], close: bool
    ) -> Plan[int]:
        frame = RemoteDisconnectRequest(
            uid=uid or None, opts=_opts(rooms, except_), close=bool(close), **self._common(nsp)
        )
        heard: int = yield self._fire(frame)
        return heard

    def server_side_emit(
        self, nsp: str, uid: str, data: list[Any], *, ack: bool, local_replies: int = 0
    ) -> Plan[Any]:
        if not ack:
            frame = ServerSideEmitRequest(uid=uid, data=list(data), **self._common(nsp))
            heard: int = yield self._fire(frame)
            return heard
        # lib/index.ts serverSideEmitWithAck: expected = NUMSUB - 1; <= 0 -> [] at once.
        expected: int = yield Count(self.count_channel(nsp), exclude_self=True)
        if expected <= 0:
            return []
        rid = new_request_id()
        frame = ServerSideEmitRequest(uid=uid, data=list(data), request_id=rid, **self._common(nsp))

        def finish(replies: list[Any]) -> list[Any]:
            return [
                None if r.data is UNDEFINED else r.data
                for r in replies
                if isinstance(r, ServerSideEmitResponse)
            ]

        channel, payload = self._request(frame)
        result: list[Any] = yield Ask(
            channel=channel,
            payload=payload,
            request_id=rid,
            expect=Expect.COUNT,
            expected=expected,
            timeout_message=_ssemit_timeout,
            finish=finish,
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
        # lib/index.ts broadcastWithAck L641-L683 + socket.io BroadcastOperator.emit: every
        # other node answers its client count (8), then one ack (9) per client.
        expected: int = yield Count(self.count_channel(nsp), exclude_self=True)
        if expected <= 0:
            return []
        rid = new_request_id()
        opts = _opts(rooms, except_)
        opts["flags"] = {**flags, "timeout": int(timeout * 1000)}
        frame = BroadcastAckRequest(
            uid=uid,
            request_id=rid,
            packet={"type": 2, "data": list(data), "nsp": nsp},
            opts=opts,
            **self._common(nsp),
        )

        def finish(replies: list[Any]) -> list[Any]:
            return [r.packet for r in replies if isinstance(r, BroadcastAckResponse)]

        channel, payload = self._request(frame)
        result: list[Any] = yield Ask(
            channel=channel,
            payload=payload,
            request_id=rid,
            expect=Expect.COUNTS,
            expected=expected,
            timeout_message=TIMEOUT_MESSAGES["emit_with_ack"],
            finish=finish,
            timeout=timeout,
        )
        return result
