"""Cluster requests of socket.io-redis 4.x/5.x (JSON, ``requestid``, types 0-6).

Mirrors ``socket.io-redis`` ``index.js`` (5.4.0 lines 426-760; 4.0.1 is the same on the
wire): multi-response requests (clients, allRooms, customRequest) first ask Redis how many
connections SUBSCRIBEd to the request channel (``PUBSUB NUMSUB``) and wait for that many
replies; single-target requests (clientRooms, remoteJoin, remoteLeave, remoteDisconnect)
complete on the first reply. Nobody answers for an unknown socket, so "not found" is a
timeout, with the adapter's exact wording.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from siotools.protocol import (
    UNDEFINED,
    ChannelGrammar,
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
    LegacyRoomsResponse,
    encode,
)
from siotools.transport.pubsub import Publisher
from siotools.transport.requests import RequestEngine, new_request_id

__all__ = ["TIMEOUT_MESSAGES", "LegacyRequester", "custom_reply_frame"]

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

LegacyRequest = (
    LegacyClientsRequest
    | LegacyClientRoomsRequest
    | LegacyAllRoomsRequest
    | LegacyRemoteJoinRequest
    | LegacyRemoteLeaveRequest
    | LegacyCustomRequest
    | LegacyRemoteDisconnectRequest
)
LegacyResponse = (
    LegacyClientsResponse | LegacyRoomsResponse | LegacyDataResponse | LegacyEmptyResponse
)


def _union(field: str) -> Any:
    # Node collects ids as object keys: the union, in first-seen order. A reply whose list
    # is missing still counted towards the total (onresponse increments first).
    def finish(replies: list[Any]) -> list[Any]:
        seen: dict[Any, None] = {}
        for reply in replies:
            values = getattr(reply, field, None)
            if isinstance(values, tuple):
                seen.update(dict.fromkeys(values))
        return list(seen)

    return finish


def _first_rooms(replies: list[Any]) -> list[Any]:
    rooms = getattr(replies[0], "rooms", None) if replies else None
    return list(rooms) if isinstance(rooms, tuple) else []


def _done(replies: list[Any]) -> None:
    return None


def _datas(replies: list[Any]) -> list[Any]:
    return [getattr(r, "data", None) for r in replies]


class LegacyRequester:
    """Publishes legacy requests and completes them from the responses.

    Args:
        grammar: The channel grammar of the cluster's prefix.
        dialect: ``Dialect.LEGACY`` (5.x) or ``Dialect.LEGACY_LITE`` (4.x).
        publisher: Where requests are published and NUMSUB is asked.
        engine: The pending-request table responses are matched in.
        timeout: Seconds before a request fails with :class:`~siotools.RequestTimeout`.
    """

    def __init__(
        self,
        *,
        grammar: ChannelGrammar,
        dialect: Dialect,
        publisher: Publisher,
        engine: RequestEngine,
        timeout: float,
    ) -> None:
        self.grammar = grammar
        self.dialect = dialect
        self.publisher = publisher
        self.engine = engine
        self.timeout = timeout

    def _envelope(self, nsp: str) -> dict[str, Any]:
        # What every request frame carries besides its own fields: a fresh uid2(6)-style id.
        return {
            "request_id": new_request_id(),
            "nsp": nsp,
            "prefix": self.grammar.prefix,
            "dialect": self.dialect,
        }

    async def node_count(self, nsp: str) -> int:
        """How many nodes answer requests in ``nsp`` (``PUBSUB NUMSUB`` of its request channel)."""
        return await self.publisher.numsub(self.grammar.request(nsp).encode(), timeout=self.timeout)

    async def _ask(
        self, frame: LegacyRequest, *, expected: int | None, what: str, finish: Any
    ) -> Any:
        channel, payload = encode(frame)
        fut = self.engine.request(
            self.publisher,
            frame.request_id,
            channel.encode(),
            payload,
            expected=expected,
            timeout=self.timeout,
            timeout_message=TIMEOUT_MESSAGES[what],
            finish=finish,
        )
        return await fut

    async def clients(self, nsp: str, rooms: Iterable[str] = ()) -> list[str]:
        """Socket ids in any of ``rooms`` (all sockets if empty), from every node."""
        expected = await self.node_count(nsp)
        frame = LegacyClientsRequest(
            rooms=tuple(rooms),
            **self._envelope(nsp),
        )
        result: list[str] = await self._ask(
            frame, expected=expected, what="clients", finish=_union("clients")
        )
        return result

    async def all_rooms(self, nsp: str) -> list[str]:
        """Every room of every node (socket-id rooms included, as Node reports them)."""
        expected = await self.node_count(nsp)
        frame = LegacyAllRoomsRequest(**self._envelope(nsp))
        result: list[str] = await self._ask(
            frame, expected=expected, what="all_rooms", finish=_union("rooms")
        )
        return result

    async def custom_request(self, nsp: str, data: Any) -> list[Any]:
        """Every node's ``customHook`` reply to ``data``, in arrival order."""
        expected = await self.node_count(nsp)
        frame = LegacyCustomRequest(
            data=data,
            **self._envelope(nsp),
        )
        result: list[Any] = await self._ask(
            frame, expected=expected, what="custom_request", finish=_datas
        )
        return result

    async def client_rooms(self, nsp: str, sid: str) -> list[str]:
        """The rooms of the socket ``sid`` (answered by the node that has it)."""
        frame = LegacyClientRoomsRequest(
            sid=sid,
            **self._envelope(nsp),
        )
        result: list[str] = await self._ask(
            frame, expected=None, what="client_rooms", finish=_first_rooms
        )
        return result

    async def remote_join(self, nsp: str, sid: str, room: str) -> None:
        """Make the node that has ``sid`` join it to ``room``."""
        frame = LegacyRemoteJoinRequest(
            sid=sid,
            room=room,
            **self._envelope(nsp),
        )
        await self._ask(frame, expected=None, what="remote_join", finish=_done)

    async def remote_leave(self, nsp: str, sid: str, room: str) -> None:
        """Make the node that has ``sid`` remove it from ``room``."""
        frame = LegacyRemoteLeaveRequest(
            sid=sid,
            room=room,
            **self._envelope(nsp),
        )
        await self._ask(frame, expected=None, what="remote_leave", finish=_done)

    async def remote_disconnect(self, nsp: str, sid: str, close: bool = False) -> None:
        """Make the node that has ``sid`` disconnect it (``close``: the whole connection)."""
        frame = LegacyRemoteDisconnectRequest(
            sid=sid,
            close=close,
            **self._envelope(nsp),
        )
        await self._ask(frame, expected=None, what="remote_disconnect", finish=_done)

    def on_response(self, frame: Frame) -> bool:
        """Feed a decoded response; returns whether a pending request took it."""
        if isinstance(frame, LegacyResponse):
            return self.engine.reply(frame.request_id, frame)
        return False


def custom_reply_frame(request: LegacyCustomRequest, value: Any) -> Frame:
    """The response a node publishes for its hook's ``value`` (``undefined`` omits data)."""
    if value is UNDEFINED:
        return LegacyEmptyResponse(
            request_id=request.request_id,
            nsp=request.nsp,
            prefix=request.prefix,
            dialect=request.dialect,
        )
    return LegacyDataResponse(
        request_id=request.request_id,
        data=value,
        nsp=request.nsp,
        prefix=request.prefix,
        dialect=request.dialect,
    )
