"""@socket.io/redis-streams-adapter 0.2.x/0.3.x, as its emitter writes to it.

siotools is no streams-adapter node or cluster client yet: this dialect is what
:class:`~siotools.Emitter` needs to reach such a cluster, mirroring
@socket.io/redis-streams-emitter (socketio/socket.io monorepo,
``packages/socket.io-redis-streams-emitter/lib/index.ts``, 0.0.1, not published on npm).
That emitter XADDs every message to the stream, signed ``uid: "emitter"``: a BROADCAST
``{packet: {type: 2, data, nsp}, opts: {rooms, flags, except}}``, SOCKETS_JOIN /
SOCKETS_LEAVE ``{opts, rooms}``, DISCONNECT_SOCKETS ``{opts, close}`` and
SERVER_SIDE_EMIT ``{packet}`` (no ack: "Acknowledgements are not supported"), each
``XADD <streamName> MAXLEN ~ <maxLen> *`` (defaults ``socket.io`` and 10 000). The
encoding is :mod:`siotools.protocol.streams`.

Both adapter generations read every type from the stream (``onRawMessage`` ->
``ClusterAdapter.onMessage``), so these entries reach 0.2.x and 0.3.x nodes alike. With
0.3.x's ``streamCount > 1`` a namespace's entries go to ``<streamName>-<i>`` (see
:func:`~siotools.protocol.streams.emitter_stream_for`), which the Node emitter does not do
(it always writes ``streamName``, which such nodes do not read): siotools writes to the
stream the namespace's nodes use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from siotools.dialects.base import (
    Action,
    Append,
    Capabilities,
    Plan,
    Publish,
    RemoteSocket,
    Route,
    Subscriptions,
    WireDialect,
    unsupported,
)
from siotools.dialects.current import RESERVED_EVENTS
from siotools.exceptions import ConfigurationError, UnsupportedOperation
from siotools.protocol import ClusterMessage, ClusterMessageType, Dialect
from siotools.protocol.streams import (
    DEFAULT_MAX_LEN,
    DEFAULT_STREAM,
    emitter_broadcast,
    emitter_message,
    emitter_opts,
    emitter_stream_for,
    encode_entry,
    xadd_args,
)

__all__ = ["StreamsDialect"]

M = ClusterMessageType

_NODE = "act as a streams-adapter node or cluster client (siotools only emits to it)"
_INSTEAD = "use a Node node, or Emitter(dialect='streams') to emit"


class StreamsDialect(WireDialect):
    """@socket.io/redis-streams-adapter, for :class:`~siotools.Emitter` only.

    Args:
        prefix: The adapter's ``channelPrefix`` (0.3.x pub/sub; no emitter message uses it).
        stream: The adapter's ``streamName``.
        max_len: ``maxLen``: each XADD trims the stream to about this many entries.
        stream_count: 0.3.x ``streamCount`` (1, the default, for 0.2.x).

    Raises:
        ConfigurationError: An empty stream name, or a count/length below 1.
    """

    dialect = Dialect.STREAMS
    label = "@socket.io/redis-streams-adapter"
    capabilities = Capabilities(
        except_is_rooms=True,
        all_rooms=False,
        server_side_emit=True,
        bulk_operations=True,
    )
    # redis-streams-emitter lib/index.ts RESERVED_EVENTS: the same six names.
    reserved_events: frozenset[str] = RESERVED_EVENTS
    counts_listeners = False
    node_dialect = False

    def __init__(
        self,
        prefix: str = "socket.io",
        *,
        stream: str = DEFAULT_STREAM,
        max_len: int = DEFAULT_MAX_LEN,
        stream_count: int = 1,
    ) -> None:
        super().__init__(prefix)
        if not stream:
            raise ConfigurationError("the stream name must not be empty")
        if type(max_len) is not int or max_len < 1:
            raise ConfigurationError(f"max_len must be a positive integer, not {max_len!r}")
        if type(stream_count) is not int or stream_count < 1:
            raise ConfigurationError(
                f"stream_count must be a positive integer, not {stream_count!r}"
            )
        self.stream = stream
        self.max_len = max_len
        self.stream_count = stream_count

    def stream_of(self, nsp: str) -> str:
        """The stream the entries of ``nsp`` go to (one the nodes read: see
        :func:`~siotools.protocol.streams.emitter_stream_for`)."""
        return emitter_stream_for(nsp, self.stream, self.stream_count)

    def _append(self, message: ClusterMessage) -> Append:
        stream = self.stream_of(message.nsp)
        command = xadd_args(stream, encode_entry(message), self.max_len)
        return Append(stream.encode(), command)

    def count_channel(self, nsp: str) -> bytes:
        # 0.3.x serverCount(): PUBSUB NUMSUB P#nsp#, which its nodes SUBSCRIBE. 0.2.x nodes
        # subscribe to nothing (heartbeats on the stream): NUMSUB counts none of them.
        return self.grammar.broadcast(nsp).encode()

    def listener_streams(self, nsp: str) -> tuple[str, ...]:
        # 0.2.x nodes (ClusterAdapterWithHeartbeat) announce themselves on the stream only.
        return (self.stream_of(nsp),)

    # ------------------------------------------------------------------ emitting

    def emitter_broadcast(
        self,
        nsp: str,
        data: list[Any],
        rooms: Sequence[Any],
        except_: Sequence[Any],
        flags: Mapping[str, Any],
    ) -> Publish | Append:
        return self._append(emitter_broadcast(nsp, data, rooms, except_, flags))

    def _bulk(self, mtype: ClusterMessageType, nsp: str, body: dict[str, Any]) -> Plan[int]:
        yield self._append(emitter_message(mtype, nsp, body))
        return 0  # not a count: the emitter reports None (counts_listeners is False)

    def sockets_join(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], join: Sequence[Any]
    ) -> Plan[int]:
        body = {"opts": emitter_opts(rooms, except_), "rooms": list(join)}
        return (yield from self._bulk(M.SOCKETS_JOIN, nsp, body))

    def sockets_leave(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], leave: Sequence[Any]
    ) -> Plan[int]:
        body = {"opts": emitter_opts(rooms, except_), "rooms": list(leave)}
        return (yield from self._bulk(M.SOCKETS_LEAVE, nsp, body))

    def disconnect_sockets(
        self, nsp: str, uid: str, rooms: Sequence[Any], except_: Sequence[Any], close: bool
    ) -> Plan[int]:
        body = {"opts": emitter_opts(rooms, except_), "close": bool(close)}
        return (yield from self._bulk(M.DISCONNECT_SOCKETS, nsp, body))

    def server_side_emit(
        self, nsp: str, uid: str, data: list[Any], *, ack: bool, local_replies: int = 0
    ) -> Plan[Any]:
        if ack:
            raise UnsupportedOperation("Acknowledgements are not supported")
        return (yield from self._bulk(M.SERVER_SIDE_EMIT, nsp, {"packet": list(data)}))

    # ------------------------------------------------------------------ not a node

    def node_subscriptions(self, nsp: str, uid: str) -> Subscriptions:
        raise unsupported(self, _NODE, _INSTEAD)

    def client_subscriptions(self, nsp: str, uid: str) -> Subscriptions:
        raise unsupported(self, _NODE, _INSTEAD)

    def routes(self, nsp: str, uid: str) -> dict[bytes, Route]:
        raise unsupported(self, _NODE, _INSTEAD)

    def broadcast(
        self,
        uid: str,
        nsp: str,
        data: list[Any],
        rooms: Sequence[Any],
        except_: Sequence[Any],
        flags: Mapping[str, Any],
    ) -> Publish:
        raise unsupported(self, _NODE, _INSTEAD)

    def on_request(self, uid: str, channel: bytes, payload: bytes, view: Any) -> list[Action]:
        raise unsupported(self, _NODE, _INSTEAD)

    def on_response(self, channel: bytes, payload: bytes) -> list[Action]:
        raise unsupported(self, _NODE, _INSTEAD)

    def _refuse(self) -> Plan[NoReturn]:
        raise unsupported(self, _NODE, _INSTEAD)
        yield  # pragma: no cover - makes this a generator

    def fetch_sockets(
        self,
        nsp: str,
        uid: str,
        rooms: Sequence[Any],
        except_: Sequence[Any],
        local: list[RemoteSocket] | None,
    ) -> Plan[list[RemoteSocket]]:
        return (yield from self._refuse())

    def all_rooms(self, nsp: str, uid: str, local: list[Any] | None) -> Plan[list[Any]]:
        return (yield from self._refuse())

    def clients(
        self, nsp: str, uid: str, rooms: Sequence[Any], local: list[str] | None
    ) -> Plan[list[str]]:
        return (yield from self._refuse())

    def client_rooms(self, nsp: str, uid: str, sid: str) -> Plan[list[Any]]:
        return (yield from self._refuse())

    def remote_join(self, nsp: str, uid: str, sid: str, room: Any) -> Plan[None]:
        yield from self._refuse()

    def remote_leave(self, nsp: str, uid: str, sid: str, room: Any) -> Plan[None]:
        yield from self._refuse()

    def remote_disconnect(self, nsp: str, uid: str, sid: str, close: bool) -> Plan[None]:
        yield from self._refuse()
