"""``Emitter``: publish broadcasts to a Socket.IO cluster from a process that serves no sockets.

The Python counterpart of socket.io-emitter 3.x (socket.io-redis 4.x/5.x clusters,
``dialect="legacy"``) and @socket.io/redis-emitter 5.x (@socket.io/redis-adapter 8.x,
``dialect="current"``): it publishes ``["emitter", packet, opts]`` on the cluster's
broadcast channels, and the nodes deliver to their sockets. On 8.x it also sends
``socketsJoin``/``socketsLeave``/``disconnectSockets``/``serverSideEmit``. It subscribes
to nothing.

``dialect="sharded"`` is a feature no Node package has: an emitter for
@socket.io/redis-adapter 8.x sharded clusters (``createShardedAdapter``), which
@socket.io/redis-emitter cannot reach (it PUBLISHes; sharded nodes only hear SPUBLISH,
redis-emitter issue #127). It SPUBLISHes socket.io-adapter ``ClusterAdapter`` messages
signed ``uid: "emitter"``, as @socket.io/redis-streams-emitter does for its adapter: a
BROADCAST ``{type: 3, data: {packet, opts}, uid, nsp}`` on ``key#nsp#`` (or, with
``subscription_mode="dynamic"``, a single-room broadcast on the room's channel, as the
dynamic nodes publish it), and SOCKETS_JOIN/SOCKETS_LEAVE/DISCONNECT_SOCKETS/
SERVER_SIDE_EMIT. On a Redis Cluster (``?cluster=true``, or always for sharded) the
messages go to the slot's master.

``dialect="streams"`` mirrors @socket.io/redis-streams-emitter (socketio/socket.io
monorepo, ``packages/socket.io-redis-streams-emitter``; not published on npm) for
@socket.io/redis-streams-adapter 0.2.x/0.3.x clusters: every message is an entry
``{uid: "emitter", nsp, type, data}`` XADDed to the adapter's stream (``stream``, default
``socket.io``) with ``MAXLEN ~ max_len`` (default 10 000); with 0.3.x's ``stream_count``
a namespace's entries go to the stream its nodes use. A stream entry has no receiver
count: the operations that return how many nodes heard a message return ``None`` there.

Example::

    async with Emitter("redis://127.0.0.1:6379/0") as io:
        await io.to("room1").emit("news", {"hello": "world"})
        await io.of("/chat").emit("message", "hi", b"\\x00\\x01")
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from siotools.dialects import EMITTED, make_dialect
from siotools.dialects.base import Append, Plan
from siotools.exceptions import EncodeError, UnsupportedOperation
from siotools.protocol import Dialect
from siotools.requester import (
    AnyPublisher,
    Requester,
    Transport,
    append,
    publish,
    read_stream_on,
    sharded_publisher,
)
from siotools.transport.cluster_pubsub import ClusterPublisher
from siotools.transport.pubsub import ErrorHandler
from siotools.transport.requests import RequestEngine

__all__ = ["BroadcastTarget", "Emitter"]

EMITTER_UID = "emitter"  # socket.io-emitter index.js: `var uid = 'emitter';`


@dataclass(frozen=True, slots=True)
class BroadcastTarget:
    """Where an emit goes: a namespace, rooms, excluded sockets and flags (immutable).

    Each chaining method returns a new target, like socket.io's ``BroadcastOperator``.
    """

    emitter: Emitter
    nsp: str = "/"
    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()
    flags: tuple[tuple[str, Any], ...] = field(default=())

    def of(self, nsp: str) -> BroadcastTarget:
        """Target namespace ``nsp`` (a missing leading ``/`` is added, as emitter 3.2 does)."""
        return replace(self, nsp=nsp if nsp.startswith("/") else "/" + nsp)

    def to(self, *rooms: str) -> BroadcastTarget:
        """Also target these rooms (a socket id is a room)."""
        return replace(self, rooms=tuple(dict.fromkeys((*self.rooms, *rooms))))

    in_ = to

    def except_(self, *sids: str) -> BroadcastTarget:
        """Skip these sockets or rooms (5.x ``except`` holds socket ids, 8.x rooms; a
        socket id is a room)."""
        return replace(self, except_rooms=tuple(dict.fromkeys((*self.except_rooms, *sids))))

    def _flag(self, name: str, value: Any) -> BroadcastTarget:
        flags = dict(self.flags)
        flags[name] = value
        return replace(self, flags=tuple(flags.items()))

    @property
    def volatile(self) -> BroadcastTarget:
        """Let nodes drop the message for sockets that are not ready to receive."""
        return self._flag("volatile", True)

    def compress(self, value: bool) -> BroadcastTarget:
        """Ask nodes to (not) compress the message."""
        return self._flag("compress", value)

    async def emit(self, event: str, *args: Any) -> None:
        """Publish ``event`` with ``args`` to the target.

        Raises:
            EncodeError: A reserved event name (8.x) or a value the protocol cannot carry.
        """
        await self.emitter.publish(self, event, args)

    async def sockets_join(self, *rooms: str) -> int | None:
        """Make the target's sockets join ``rooms`` (8.x, streams); returns how many nodes
        heard it (``None`` on streams: an entry has no receiver count)."""
        return await self.emitter.run(
            self.emitter.wire.sockets_join(self.nsp, "", self.rooms, self.except_rooms, rooms)
        )

    async def sockets_leave(self, *rooms: str) -> int | None:
        """Make the target's sockets leave ``rooms`` (8.x, streams)."""
        return await self.emitter.run(
            self.emitter.wire.sockets_leave(self.nsp, "", self.rooms, self.except_rooms, rooms)
        )

    async def disconnect_sockets(self, close: bool = False) -> int | None:
        """Disconnect the target's sockets (8.x, streams; ``close``: their whole
        connections)."""
        return await self.emitter.run(
            self.emitter.wire.disconnect_sockets(self.nsp, "", self.rooms, self.except_rooms, close)
        )

    async def server_side_emit(self, event: str, *args: Any) -> int | None:
        """Send ``event`` to every server node of the namespace (8.x, streams).

        Raises:
            UnsupportedOperation: An ack callback as last argument (emitter 5.x:
                "Acknowledgements are not supported").
        """
        if args and callable(args[-1]):
            raise UnsupportedOperation("Acknowledgements are not supported")
        result = await self.emitter.run(
            self.emitter.wire.server_side_emit(self.nsp, EMITTER_UID, [event, *args], ack=False)
        )
        return result


class Emitter:
    """Publishes Socket.IO broadcasts to a Redis cluster (socket.io-emitter 3.x protocol).

    Args:
        url: Redis URL.
        key: The cluster's channel prefix.
        dialect: ``"legacy"`` (socket.io-emitter 3.x, notepack 2), ``"legacy-lite"``
            (msgpack-lite, 4.x), ``"current"`` (@socket.io/redis-emitter 5.x),
            ``"sharded"`` (SPUBLISH to 8.x sharded nodes; no Node equivalent) or
            ``"streams"`` (XADD to @socket.io/redis-streams-adapter nodes, as
            @socket.io/redis-streams-emitter does).
        pub_client: A ``redis.asyncio.Redis`` (or ``RedisCluster``) whose connection
            settings to use.
        publisher: Share an already started publisher (the emitter then does not own or
            close it).
        on_error: Called with Redis connection errors.
        cluster: ``True``: ``url`` names one node of a Redis Cluster (as ``?cluster=true``
            does).
        subscription_mode: Sharded: ``"static"`` (the default: every message on the main
            channel, which nodes of every mode hear) or ``"dynamic"``/``"dynamic-private"``
            (single-room broadcasts on the room's channel, as such nodes publish them).
        stream: Streams: the adapter's ``streamName`` (default ``socket.io``).
        max_len: Streams: ``maxLen``, each XADD trims to about this many entries (default
            10 000).
        stream_count: Streams 0.3.x: ``streamCount`` (default 1).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key: str = "socket.io",
        dialect: Dialect | str = Dialect.LEGACY,
        pub_client: Any = None,
        publisher: AnyPublisher | None = None,
        on_error: ErrorHandler | None = None,
        cluster: bool | None = None,
        subscription_mode: str | None = None,
        stream: str | None = None,
        max_len: int | None = None,
        stream_count: int | None = None,
    ) -> None:
        self.prefix = key or "socket.io"
        self.wire = make_dialect(
            dialect,
            self.prefix,
            subscription_mode=subscription_mode or "static",
            stream=stream,
            max_len=max_len,
            stream_count=stream_count,
            spoken=EMITTED,
        )
        self.dialect = self.wire.dialect
        self._publisher: AnyPublisher
        if publisher is not None:
            self._publisher = publisher
            self._owned = False
        else:
            transport = Transport(url, pub_client, cluster)
            self._publisher = transport.publisher(
                self.wire, name="siotools-emitter", on_error=on_error
            )
            self._owned = True
        self._started = not self._owned
        self._requester = Requester(self._publisher, RequestEngine(), timeout=1.0, counted=False)

    async def connect(self) -> Emitter:
        """Connect to Redis (done on the first emit otherwise).

        Raises:
            RedisUnavailableError: Redis cannot be reached.
        """
        if not self._started:
            await self._publisher.start()
            self._started = True
        return self

    async def close(self) -> None:
        """Send what is queued and close the connection (if the emitter owns it)."""
        if self._owned and self._started:
            await self._publisher.close()
            self._started = False

    async def __aenter__(self) -> Emitter:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def root(self) -> BroadcastTarget:
        """The whole ``/`` namespace."""
        return BroadcastTarget(self)

    def of(self, nsp: str) -> BroadcastTarget:
        """Target namespace ``nsp``."""
        return self.root.of(nsp)

    def to(self, *rooms: str) -> BroadcastTarget:
        """Target rooms of ``/``."""
        return self.root.to(*rooms)

    in_ = to

    async def emit(self, event: str, *args: Any) -> None:
        """Emit to every socket of ``/``."""
        await self.root.emit(event, *args)

    async def publish(
        self, target: BroadcastTarget, event: str, args: Iterable[Any], *, count: bool = False
    ) -> int:
        """Encode and publish one broadcast for ``target``.

        Args:
            target: Where it goes.
            event: The event name.
            args: Its arguments.
            count: Wait for Redis and return how many received it (else the publish is
                pipelined and 0 is returned): the subscribers Redis delivered it to; on a
                Redis Cluster, where a PUBLISH reply counts only the subscribers of the node
                that took it, the nodes serving the namespace, counted as the dialect
                counts them (``PUBSUB NUMSUB`` summed over the masters).

        Raises:
            EncodeError: A reserved event name (8.x) or an argument the protocol cannot
                carry.
            RedisUnavailableError: Redis cannot be reached at the first emit (streams: or
                refused the XADD).
            UnsupportedOperation: ``count`` on streams (an entry has no receiver count).
        """
        if event in self.wire.reserved_events:
            # @socket.io/redis-emitter 5.1.0 lib/index.ts L240-L247.
            raise EncodeError(f'"{event}" is a reserved event name')
        await self.connect()
        out = self.wire.emitter_broadcast(
            target.nsp,
            [event, *args],
            target.rooms,
            target.except_rooms,
            dict(target.flags),
        )
        if isinstance(out, Append):
            if count:
                raise UnsupportedOperation(
                    f"a {self.wire.label} stream entry has no receiver count"
                )
            await append(self._publisher, out)
            return 0
        if count:
            if out.sharded:
                # SPUBLISH goes to the slot's master, where its subscribers are: exact.
                return await sharded_publisher(self._publisher).spublish_wait(
                    out.channel, out.payload
                )
            heard = await self._publisher.publish_wait(out.channel, out.payload)
            if isinstance(self._publisher, ClusterPublisher):
                # The reply counted one cluster node's subscribers only.
                nodes: int = await self._requester.run(self.wire.server_count(target.nsp))
                return nodes
            return heard
        publish(self._publisher, out.channel, out.payload, out.sharded)
        await self._publisher.wait_writable()
        return 0

    async def run(self, plan: Plan[int]) -> int | None:
        """Carry out one of the dialect's fire-and-forget operations; how many nodes heard
        it (``None`` where the dialect cannot tell: streams).

        Raises:
            UnsupportedOperation: The dialect has no such operation (4.x/5.x emitters can
                only broadcast).
        """
        if not self.wire.capabilities.bulk_operations:
            raise UnsupportedOperation(
                f"the {self.wire.label} emitter can only broadcast; socketsJoin, "
                "socketsLeave, disconnectSockets and serverSideEmit need dialect='current', "
                "'sharded' or 'streams'"
            )
        await self.connect()
        heard: int = await self._requester.run(plan)
        return heard if self.wire.counts_listeners else None

    async def node_count(self, nsp: str = "/") -> int | None:
        """How many nodes serve ``nsp``, as far as Redis shows it without disturbing them.

        ``PUBSUB NUMSUB`` (SHARDNUMSUB for sharded) as the adapters count themselves; on
        streams 0.3.x nodes SUBSCRIBE ``P#nsp#`` (their ``serverCount``), and 0.2.x nodes
        are the uids with a heartbeat in the stream in the last
        :data:`~siotools.dialects.detect.HEARTBEAT_STALE_MS`.

        Returns:
            The count; ``0`` only when it is known that no node listens (on streams: the
            stream does not exist yet, so no 0.2.x node ever announced itself, and no
            0.3.x node subscribes); ``None`` when Redis cannot tell (a stream without
            fresh heartbeats: 0.3.x nodes with other pub/sub options, or 0.2.x nodes with
            a long ``heartbeatInterval``, may still read it).

        Raises:
            RedisUnavailableError: Redis cannot be reached.
        """
        await self.connect()
        count: int = await self._requester.run(self.wire.server_count(nsp))
        streams = self.wire.listener_streams(nsp)
        if count or not streams:
            return count
        unknown = False
        for key in streams:
            clues = await read_stream_on(self._publisher, key)
            if clues is None:
                continue  # no such stream: no node of the heartbeat generation wrote one
            beats = clues.heartbeat_uids.get(nsp)
            if beats:
                return len(beats)
            unknown = True
        return None if unknown else 0

    async def flush(self) -> None:
        """Wait until Redis has taken every message published so far."""
        await self._publisher.flush()
