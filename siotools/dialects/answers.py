"""Who answers which cluster request, per dialect: what a watcher needs to judge requests.

The requesting node sizes its wait with ``PUBSUB NUMSUB`` of the request channel:

* socket.io-redis 4.x/5.x (``index.js`` 5.4.0 L426-L760): ``clients``, ``allRooms`` and
  ``customRequest`` wait for NUMSUB responses, the requester's own included (it is
  subscribed to its request channel); single-socket requests complete on the first answer;
* @socket.io/redis-adapter 8.x classic (``lib/index.ts`` 8.3.0 L690-L776, L851-L891):
  ``allRooms`` and ``fetchSockets`` count the requester as the first answer and wait for
  NUMSUB - 1 more, ``serverSideEmit`` with an ack waits for NUMSUB - 1; ``broadcastWithAck``
  expects one client count per other node (type 8);
* the fire-and-forget forms (8.x ``socketsJoin``... without ``requestId``) expect nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from siotools.protocol import (
    AllRoomsRequest,
    BroadcastAckRequest,
    BroadcastClientCountResponse,
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
    RemoteDisconnectRequest,
    RemoteFetchRequest,
    RemoteJoinRequest,
    RemoteLeaveRequest,
    RoomsResponse,
    ServerSideEmitRequest,
    ServerSideEmitResponse,
    SocketsRequest,
    SocketsResponse,
)

__all__ = ["DefaultTimeout", "Expectation", "counts_as_answer", "default_timeouts", "expectation"]

_LEGACY_ALL: Final = (LegacyClientsRequest, LegacyAllRoomsRequest, LegacyCustomRequest)
_LEGACY_ONE: Final = (
    LegacyClientRoomsRequest,
    LegacyRemoteJoinRequest,
    LegacyRemoteLeaveRequest,
    LegacyRemoteDisconnectRequest,
)
_CURRENT_OTHERS: Final = (AllRoomsRequest, RemoteFetchRequest, SocketsRequest)
_CURRENT_ONE: Final = (RemoteJoinRequest, RemoteLeaveRequest, RemoteDisconnectRequest)
_ANSWERS: Final = (
    LegacyClientsResponse,
    LegacyRoomsResponse,
    LegacyDataResponse,
    LegacyEmptyResponse,
    SocketsResponse,
    RoomsResponse,
    ServerSideEmitResponse,
    BroadcastClientCountResponse,
)

# Node's names of the requests, as in their timeout messages.
_NAMES: Final[dict[type, str]] = {
    LegacyClientsRequest: "clients",
    LegacyAllRoomsRequest: "allRooms",
    LegacyCustomRequest: "customRequest",
    LegacyClientRoomsRequest: "clientRooms",
    LegacyRemoteJoinRequest: "remoteJoin",
    LegacyRemoteLeaveRequest: "remoteLeave",
    LegacyRemoteDisconnectRequest: "remoteDisconnect",
    AllRoomsRequest: "allRooms",
    RemoteFetchRequest: "fetchSockets",
    SocketsRequest: "sockets",
    ServerSideEmitRequest: "serverSideEmit",
    BroadcastAckRequest: "broadcastWithAck",
    RemoteJoinRequest: "remoteJoin",
    RemoteLeaveRequest: "remoteLeave",
    RemoteDisconnectRequest: "remoteDisconnect",
}


_REQUESTS: Final = (
    *_LEGACY_ALL, *_LEGACY_ONE, *_CURRENT_OTHERS, *_CURRENT_ONE, ServerSideEmitRequest,
    BroadcastAckRequest,
)  # fmt: skip
"""Every request class of :data:`_NAMES` (a tuple, for isinstance)."""


@dataclass(frozen=True, slots=True)
class Expectation:
    """How many answers the requester of a request waits for.

    Attributes:
        name: Node's name of the request (``allRooms``, ``fetchSockets``...).
        request_id: The id its answers carry.
        expected: Answers that complete it (``None``: the first answer completes it).
    """

    name: str
    request_id: str
    expected: int | None


def expectation(frame: Frame, numsub: int) -> Expectation | None:
    """What the requester of ``frame`` waits for, given NUMSUB of its request channel.

    Args:
        frame: A decoded request.
        numsub: ``PUBSUB NUMSUB`` of the request channel when it was sent.

    Returns:
        The expectation, or None for a frame that expects no answer (broadcasts, the 8.x
        fire-and-forget forms, server-side emits without ack).
    """
    if not isinstance(frame, _REQUESTS):
        return None
    name = _NAMES[type(frame)]
    request_id = frame.request_id
    if not isinstance(request_id, str) or not request_id:
        return None
    if isinstance(frame, _LEGACY_ALL):
        return Expectation(name, request_id, numsub)
    if isinstance(frame, (*_LEGACY_ONE, *_CURRENT_ONE)):
        return Expectation(name, request_id, None)
    if isinstance(frame, (*_CURRENT_OTHERS, ServerSideEmitRequest, BroadcastAckRequest)):
        # 8.x: numSub <= 1 resolves locally; msgCount starts at 1 (the requester itself).
        return Expectation(name, request_id, max(0, numsub - 1))
    return None


def counts_as_answer(frame: Frame) -> str | None:
    """The request id a response answers, if it counts towards completion, else None.

    Broadcast-ack responses (type 9) come per client, not per node, and do not count.
    """
    if isinstance(frame, _ANSWERS):
        request_id = frame.request_id
        return request_id if isinstance(request_id, str) else None
    return None


@dataclass(frozen=True, slots=True)
class DefaultTimeout:
    """A Node adapter's default ``requestsTimeout``.

    Attributes:
        seconds: The default.
        adapters: The versions that have it.
    """

    seconds: float
    adapters: str


# socket.io-redis index.js `opts.requestsTimeout || 1000` up to 5.1.0, `|| 5000` from 5.2.0
# (History.md 5.2.0); @socket.io/redis-adapter lib/index.ts 8.3.0 L131 and the sharded
# adapter: `opts.requestsTimeout || 5000`. 4.x spoke msgpack-lite, 5.x notepack: the wire
# tells 4.x from 5.x, not 5.1 from 5.2.
_DEFAULT_TIMEOUTS: Final[dict[Dialect, tuple[DefaultTimeout, ...]]] = {
    Dialect.LEGACY_LITE: (DefaultTimeout(1.0, "socket.io-redis 4.x"),),
    Dialect.LEGACY: (
        DefaultTimeout(1.0, "socket.io-redis 5.0-5.1"),
        DefaultTimeout(5.0, "socket.io-redis 5.2+"),
    ),
    Dialect.CURRENT: (DefaultTimeout(5.0, "@socket.io/redis-adapter 8.x"),),
    Dialect.SHARDED: (DefaultTimeout(5.0, "@socket.io/redis-adapter 8.x (sharded)"),),
}


def default_timeouts(
    dialect: Dialect, spoken: Collection[Dialect] = ()
) -> tuple[DefaultTimeout, ...]:
    """The default ``requestsTimeout`` of the Node adapters that may have sent a request
    of ``dialect``, shortest first (empty for a dialect without requests).

    Args:
        dialect: The request's dialect as decoded.
        spoken: The dialects of its namespace (subscriptions and traffic): legacy
            requests are the same JSON in 4.x and 5.x, so the requester may be any legacy
            node the namespace has (any at all when none was told apart).
    """
    legacy = (Dialect.LEGACY_LITE, Dialect.LEGACY)
    if dialect in legacy:
        family = [d for d in legacy if d in spoken] or list(legacy)
        found = [t for d in family for t in _DEFAULT_TIMEOUTS[d]]
        return tuple(sorted(found, key=lambda t: t.seconds))
    return _DEFAULT_TIMEOUTS.get(dialect, ())
