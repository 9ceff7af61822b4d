"""socket.io-redis 4.x/5.x (JSON requests with ``requestid``, types 0-6).

Mirrors ``socket.io-redis`` ``index.js`` (5.4.0 lines 426-760; 4.0.1 is the same on the
wire): multi-response requests (clients, allRooms, customRequest) first ask Redis how many
connections SUBSCRIBEd to the request channel (``PUBSUB NUMSUB``) and wait for that many
replies, the asking node's own answer included (it hears its own request); single-target
requests (clientRooms, remoteJoin, remoteLeave, remoteDisconnect) complete on the first
reply. Nobody answers for an unknown socket, so "not found" is a timeout, with the
adapter's exact wording.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

from siotools.dialects.base import (
    Action,
    Ask,
    CallHook,
    Capabilities,
    Count,
    Disconnect,
    Expect,
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
    select_sids,
    valid_room,
    valid_rooms,
)
from siotools.exceptions import ConfigurationError, DecodeError, RequestTimeout
from siotools.protocol import (
    UNDEFINED,
    Dialect,
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
    LegacyRequest,
    LegacyResponse,
    LegacyRoomsResponse,
    encode,
    encode_broadcast,
)
from siotools.transport.requests import new_request_id

__all__ = ["TIMEOUT_MESSAGES", "LegacyDialect", "custom_reply_frame"]

# socket.io-redis 5.4.0 index.js, the timeout callbacks of each request method.
TIMEOUT_MESSAGES: Final[dict[str, str]] = {
    "clients": "timeout reached while waiting for clients response",
    "client_rooms": "timeout reached while waiting for rooms response",
    "all_rooms": "timeout reached while waiting for allRooms response",
    "remote_join": "timeout reached while waiting for remoteJoin response",
    "remote_leave": "timeout reached while waiting for remoteLeave response",
    "remote_disconnect": "timeout reached while waiting for remoteDisconnect response",
    "custom_request": "timeout reached while waiting for customRequest response",
}


def _union(field: str) -> Callable[[list[Any]], list[Any]]:
    # Node collects ids as object keys: the union, in first-seen order. A reply whose list
    # is missing still counted towards the total (onresponse increments first).
    def finish(replies: list[Any]) -> list[Any]:
        seen: dict[Any, None] = {}
        for reply in replies:
            if isinstance(reply, LegacyClientsResponse) and field == "clients":
                seen.update(dict.fromkeys(reply.clients))
            elif isinstance(reply, LegacyRoomsResponse) and field == "rooms":
                seen.update(dict.fromkeys(reply.rooms))
        return list(seen)

    return finish


def _first_rooms(replies: list[Any]) -> list[Any]:
    first = replies[0] if replies else None
    return list(first.rooms) if isinstance(first, LegacyRoomsResponse) else []


def _done(replies: list[Any]) -> None:
    return None


def _datas(replies: list[Any]) -> list[Any]:
    return [r.data if isinstance(r, LegacyDataResponse) else None for r in replies]


def custom_reply_frame(request: LegacyCustomRequest, value: Any) -> Frame:
    """The response a node publishes for its hook's ``value`` (``undefined`` omits data)."""
    common: dict[str, Any] = {
        "request_id": request.request_id,
        "nsp": request.nsp,
        "prefix": request.prefix,
        "dialect": request.dialect,
    }
    if value is UNDEFINED:
        return LegacyEmptyResponse(**common)
    return LegacyDataResponse(data=value, **common)


def _publish(frame: Frame) -> Publish:
    channel, payload = encode(frame)
    return Publish(channel.encode(), payload)


class LegacyDialect(WireDialect):
    """socket.io-redis 5.x (notepack 2) or 4.x (msgpack-lite).

    Args:
        prefix: The cluster's channel prefix.
        flavor: ``Dialect.LEGACY`` (5.x, notepack 2) or ``Dialect.LEGACY_LITE`` (4.x,
            msgpack-lite): what this process encodes; both are always decoded.
        subscription_mode: ``"subscribe"`` (4.x: SUBSCRIBE ``key#nsp#`` plus room channels)
            or ``"psubscribe"`` (5.x: PSUBSCRIBE ``key#nsp#*``).
        with_channel_multiplexing: Publish single-room broadcasts on the room's channel
            (and, in subscribe mode, SUBSCRIBE to the channels of rooms with local members).
    """

    capabilities = Capabilities(custom_request=True)
    default_timeout = 1.0

    def __init__(
        self,
        prefix: str = "socket.io",
        *,
        flavor: Dialect = Dialect.LEGACY,
        subscription_mode: Literal["subscribe", "psubscribe"] = "subscribe",
        with_channel_multiplexing: bool = True,
    ) -> None:
        super().__init__(prefix)
        if flavor not in (Dialect.LEGACY, Dialect.LEGACY_LITE):
            raise ConfigurationError(f"LegacyDialect encodes LEGACY or LEGACY_LITE, not {flavor}")
        if subscription_mode not in ("subscribe", "psubscribe"):
            raise ConfigurationError(
                f"subscription_mode must be 'subscribe' or 'psubscribe', not {subscription_mode!r}"
            )
        self.dialect = flavor
        self.label = (
            "socket.io-redis 4.x" if flavor is Dialect.LEGACY_LITE else "socket.io-redis 5.x"
        )
        self.subscription_mode = subscription_mode
        self.with_channel_multiplexing = with_channel_multiplexing

    # ------------------------------------------------------------------ channels

    def node_subscriptions(self, nsp: str, uid: str) -> Subscriptions:
        g = self.grammar
        req, resp = g.request(nsp).encode(), g.response(nsp).encode()
        if self.subscription_mode == "psubscribe":
            # socket.io-redis 5.x: PSUBSCRIBE key#nsp#*, then SUBSCRIBE request+response.
            return Subscriptions(
                channels=(req, resp), patterns=(g.broadcast_pattern(nsp).encode(),)
            )
        # socket.io-redis 4.x: SUBSCRIBE key#nsp# key-request#nsp# key-response#nsp#.
        return Subscriptions(channels=(g.broadcast_bytes(nsp), req, resp))

    def client_subscriptions(self, nsp: str, uid: str) -> Subscriptions:
        return Subscriptions(channels=(self.grammar.response(nsp).encode(),))

    def routes(self, nsp: str, uid: str) -> dict[bytes, Route]:
        g = self.grammar
        return {
            g.broadcast_bytes(nsp): Route.BROADCAST,
            g.request(nsp).encode(): Route.REQUEST,
            g.response(nsp).encode(): Route.RESPONSE,
        }

    def room_channel(self, nsp: str, room: Any) -> bytes | None:
        # socket.io-redis 4.x Redis#add: SUBSCRIBE key#nsp#room# for a room new here.
        if self.subscription_mode == "subscribe" and self.with_channel_multiplexing:
            return self.grammar.room_bytes(nsp, room)
        return None

    # ------------------------------------------------------------------ broadcasts

    def broadcast(
        self,
        uid: str,
        nsp: str,
        data: list[Any],
        rooms: Sequence[Any],
        except_: Sequence[Any],
        flags: Mapping[str, Any],
    ) -> Publish:
        channel, payload = encode_broadcast(
            uid=uid,
            data=data,
            nsp=nsp,
            rooms=rooms,
            except_=except_,
            flags=flags,
            dialect=self.dialect,
            prefix=self.prefix,
        )
        if len(rooms) == 1 and not self.with_channel_multiplexing:
            # socket.io-redis 4.x without multiplexing publishes everything on key#nsp#.
            channel = self.grammar.broadcast(nsp)
        return Publish(channel.encode(), payload)

    # ------------------------------------------------------------------ answering

    def on_request(self, uid: str, channel: bytes, payload: bytes, view: LocalView) -> list[Action]:
        # socket.io-redis 5.x emits 'error' for a request it cannot JSON.parse.
        frame = self.decode(channel, payload)
        if isinstance(frame, list):
            return frame
        problem = _invalid(frame)
        if problem is not None:
            return [Malformed(DecodeError(problem, channel=channel, payload=payload))]
        common: dict[str, Any] = {"prefix": self.prefix, "dialect": self.dialect}
        match frame:
            case LegacyClientsRequest(request_id=rid, rooms=rooms, nsp=nsp):
                # socket.io-adapter 1.1.x clients(): connected sockets of the rooms.
                clients = tuple(select_sids(view, nsp, rooms, ()))
                return [
                    _publish(
                        LegacyClientsResponse(request_id=rid, clients=clients, nsp=nsp, **common)
                    )
                ]
            case LegacyAllRoomsRequest(request_id=rid, nsp=nsp):
                rooms = tuple(r for r in view.namespace_rooms(nsp) or {} if r is not None)
                return [
                    _publish(LegacyRoomsResponse(request_id=rid, rooms=rooms, nsp=nsp, **common))
                ]
            case LegacyClientRoomsRequest(request_id=rid, sid=sid, nsp=nsp):
                if not view.is_connected(sid, nsp):
                    return []
                rooms = tuple(view.rooms_of(sid, nsp))
                return [
                    _publish(LegacyRoomsResponse(request_id=rid, rooms=rooms, nsp=nsp, **common))
                ]
            case LegacyRemoteJoinRequest(request_id=rid, sid=sid, room=room, nsp=nsp):
                if not view.is_connected(sid, nsp):
                    return []
                # Node answers after socket.join() completed, i.e. after SUBSCRIBE.
                return [
                    Join(nsp, (sid,), (room,)),
                    Settle(),
                    _publish(LegacyEmptyResponse(request_id=rid, nsp=nsp, **common)),
                ]
            case LegacyRemoteLeaveRequest(request_id=rid, sid=sid, room=room, nsp=nsp):
                if not view.is_connected(sid, nsp):
                    return []
                if room == sid:
                    # A socket's own room is how it is addressed: never taken away remotely.
                    return [Ignored("own_room_leave")]
                return [
                    Leave(nsp, (sid,), (room,)),
                    _publish(LegacyEmptyResponse(request_id=rid, nsp=nsp, **common)),
                ]
            case LegacyRemoteDisconnectRequest(request_id=rid, sid=sid, close=close, nsp=nsp):
                if not view.is_connected(sid, nsp):
                    return []
                return [
                    Disconnect(nsp, (sid,), close is True),
                    _publish(LegacyEmptyResponse(request_id=rid, nsp=nsp, **common)),
                ]
            case LegacyCustomRequest(nsp=nsp):
                request = frame

                def respond(value: Any) -> Publish:
                    return _publish(custom_reply_frame(request, value))

                return [CallHook(nsp, "custom_request", [frame.data], respond)]
            case _:
                # 8.x requests on a legacy prefix: type numbers overlap with other meanings,
                # so they are never answered (and mixing the two breaks Node nodes).
                return [
                    Ignored(
                        "foreign_requests",
                        warning=(
                            f"a {_family(frame)} request arrived on the socket.io-redis 4.x/5.x "
                            f"prefix {self.prefix!r}: two adapter generations share this prefix "
                            "and misread each other's requests; give them distinct keys"
                        ),
                    )
                ]

    def on_response(self, channel: bytes, payload: bytes) -> list[Action]:
        frame = self.decode(channel, payload)
        if isinstance(frame, list):
            return frame
        if isinstance(frame, LegacyResponse):
            return [Reply(frame.request_id, frame)]
        return [Ignored("responses_ignored")]

    # ------------------------------------------------------------------ asking

    def _envelope(self, nsp: str) -> dict[str, Any]:
        # What every request frame carries besides its own fields: a fresh uid2(6)-style id.
        return {
            "request_id": new_request_id(),
            "nsp": nsp,
            "prefix": self.prefix,
            "dialect": self.dialect,
        }

    def _ask(
        self,
        frame: LegacyRequest,
        what: str,
        finish: Callable[[list[Any]], Any],
        expected: int | None = None,
    ) -> Ask:
        channel, payload = encode(frame)
        return Ask(
            channel=channel.encode(),
            payload=payload,
            request_id=frame.request_id,
            expect=Expect.FIRST if expected is None else Expect.COUNT,
            expected=expected or 0,
            timeout_message=TIMEOUT_MESSAGES[what],
            finish=finish,
        )

    def clients(
        self, nsp: str, uid: str, rooms: Sequence[Any], local: list[str] | None
    ) -> Plan[list[str]]:
        # The asking node hears its own request and answers it: no local part.
        expected: int = yield Count(self.count_channel(nsp))
        frame = LegacyClientsRequest(rooms=tuple(rooms), **self._envelope(nsp))
        result: list[str] = yield self._ask(frame, "clients", _union("clients"), expected)
        return result

    def all_rooms(self, nsp: str, uid: str, local: list[Any] | None) -> Plan[list[Any]]:
        expected: int = yield Count(self.count_channel(nsp))
        frame = LegacyAllRoomsRequest(**self._envelope(nsp))
        result: list[Any] = yield self._ask(frame, "all_rooms", _union("rooms"), expected)
        return result

    def custom_request(self, nsp: str, uid: str, data: Any) -> Plan[list[Any]]:
        expected: int = yield Count(self.count_channel(nsp))
        frame = LegacyCustomRequest(data=data, **self._envelope(nsp))
        result: list[Any] = yield self._ask(frame, "custom_request", _datas, expected)
        return result

    def client_rooms(self, nsp: str, uid: str, sid: str) -> Plan[list[Any]]:
        frame = LegacyClientRoomsRequest(sid=sid, **self._envelope(nsp))
        result: list[Any] = yield self._ask(frame, "client_rooms", _first_rooms)
        return result

    def remote_join(self, nsp: str, uid: str, sid: str, room: Any) -> Plan[None]:
        frame = LegacyRemoteJoinRequest(sid=sid, room=room, **self._envelope(nsp))
        yield self._ask(frame, "remote_join", _done)

    def remote_leave(self, nsp: str, uid: str, sid: str, room: Any) -> Plan[None]:
        frame = LegacyRemoteLeaveRequest(sid=sid, room=room, **self._envelope(nsp))
        yield self._ask(frame, "remote_leave", _done)

    def remote_disconnect(self, nsp: str, uid: str, sid: str, close: bool) -> Plan[None]:
        frame = LegacyRemoteDisconnectRequest(sid=sid, close=close, **self._envelope(nsp))
        yield self._ask(frame, "remote_disconnect", _done)

    # The 8.x names, built from the 4.x/5.x requests (one request per socket where 5.x has
    # no bulk form).

    def _matching(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any]
    ) -> Plan[list[str]]:
        sids = yield from self.clients(nsp, uid, rooms, None)
        if except_:
            skip = set((yield from self.clients(nsp, uid, except_, None)))
            sids = [s for s in sids if s not in skip]
        return sids

    def fetch_sockets(
        self,
        nsp: str,
        uid: str,
        rooms: Sequence[Any],
        except_: Sequence[Any],
        local: list[RemoteSocket] | None,
    ) -> Plan[list[RemoteSocket]]:
        sids = yield from self._matching(nsp, uid, rooms, except_)
        found: list[RemoteSocket] = []
        for sid in sids:
            try:
                socket_rooms = yield from self.client_rooms(nsp, uid, sid)
            except RequestTimeout:
                continue  # it left between the two requests
            found.append(RemoteSocket(id=sid, rooms=tuple(socket_rooms), nsp=nsp))
        return found

    def sockets_join(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], join: Sequence[Any]
    ) -> Plan[int]:
        return (yield from self._each(nsp, uid, rooms, except_, "join", join))

    def sockets_leave(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], leave: Sequence[Any]
    ) -> Plan[int]:
        return (yield from self._each(nsp, uid, rooms, except_, "leave", leave))

    def disconnect_sockets(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], close: bool
    ) -> Plan[int]:
        return (yield from self._each(nsp, uid, rooms, except_, "disconnect", (), close=close))

    def _each(
        self,
        nsp: str,
        uid: str,
        rooms: Sequence[Any],
        except_: Sequence[Any],
        op: str,
        targets: Sequence[Any],
        *,
        close: bool = False,
    ) -> Plan[int]:
        sids = yield from self._matching(nsp, uid, rooms, except_)
        done = 0
        for sid in sids:
            try:
                if op == "disconnect":
                    yield from self.remote_disconnect(nsp, uid, sid, close)
                else:
                    for room in targets:
                        if op == "join":
                            yield from self.remote_join(nsp, uid, sid, room)
                        else:
                            yield from self.remote_leave(nsp, uid, sid, room)
            except RequestTimeout:
                continue  # it left meanwhile
            done += 1
        return done


def _family(frame: Frame) -> str:
    return "@socket.io/redis-adapter 8.x" if frame.dialect is Dialect.CURRENT else "foreign"


def _invalid(frame: Frame) -> str | None:
    """Why a legacy request must not be acted on (a wrong field type), or ``None``."""
    match frame:
        case LegacyClientsRequest(rooms=rooms):
            if not valid_rooms(rooms):
                return "clients request: 'rooms' must be a list of room names"
        case LegacyClientRoomsRequest(sid=sid):
            if type(sid) is not str:
                return "clientRooms request: 'sid' must be a string"
        case (
            LegacyRemoteJoinRequest(sid=sid, room=room)
            | LegacyRemoteLeaveRequest(sid=sid, room=room)
        ):
            if type(sid) is not str:
                return "remoteJoin/remoteLeave request: 'sid' must be a string"
            if not valid_room(room):
                return "remoteJoin/remoteLeave request: 'room' must be a room name"
        case LegacyRemoteDisconnectRequest(sid=sid, close=close):
            if type(sid) is not str:
                return "remoteDisconnect request: 'sid' must be a string"
            if close is not UNDEFINED and type(close) is not bool:
                return "remoteDisconnect request: 'close' must be a boolean"
    return None
