"""``Emitter``: publish broadcasts to a Socket.IO cluster from a process that serves no sockets.

The Python counterpart of socket.io-emitter 3.x (socket.io-redis 4.x/5.x clusters,
``dialect="legacy"``) and @socket.io/redis-emitter 5.x (@socket.io/redis-adapter 8.x,
``dialect="current"``): it publishes ``["emitter", packet, opts]`` on the cluster's
broadcast channels, and the nodes deliver to their sockets. On 8.x it also sends
``socketsJoin``/``socketsLeave``/``disconnectSockets``/``serverSideEmit``. It subscribes
to nothing.

Example::

    async with Emitter("redis://127.0.0.1:6379/0") as io:
        await io.to("room1").emit("news", {"hello": "world"})
        await io.of("/chat").emit("message", "hi", b"\\x00\\x01")
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from siotools.dialects import make_dialect, resolve_dialect
from siotools.dialects.base import Plan
from siotools.exceptions import EncodeError, UnsupportedOperation
from siotools.protocol import Dialect
from siotools.requester import Requester
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import ErrorHandler, Publisher
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

    async def sockets_join(self, *rooms: str) -> int:
        """Make the target's sockets join ``rooms`` (8.x); returns how many nodes heard it."""
        return await self.emitter.run(
            self.emitter.wire.sockets_join(self.nsp, "", self.rooms, self.except_rooms, rooms)
        )

    async def sockets_leave(self, *rooms: str) -> int:
        """Make the target's sockets leave ``rooms`` (8.x)."""
        return await self.emitter.run(
            self.emitter.wire.sockets_leave(self.nsp, "", self.rooms, self.except_rooms, rooms)
        )

    async def disconnect_sockets(self, close: bool = False) -> int:
        """Disconnect the target's sockets (8.x; ``close``: their whole connections)."""
        return await self.emitter.run(
            self.emitter.wire.disconnect_sockets(self.nsp, "", self.rooms, self.except_rooms, close)
        )

    async def server_side_emit(self, event: str, *args: Any) -> int:
        """Send ``event`` to every server node of the namespace (8.x).

        Raises:
            UnsupportedOperation: An ack callback as last argument (emitter 5.x:
                "Acknowledgements are not supported").
        """
        if args and callable(args[-1]):
            raise UnsupportedOperation("Acknowledgements are not supported")
        result: int = await self.emitter.run(
            self.emitter.wire.server_side_emit(self.nsp, EMITTER_UID, [event, *args], ack=False)
        )
        return result


class Emitter:
    """Publishes Socket.IO broadcasts to a Redis cluster (socket.io-emitter 3.x protocol).

    Args:
        url: Redis URL.
        key: The cluster's channel prefix.
        dialect: ``"legacy"`` (socket.io-emitter 3.x, notepack 2), ``"legacy-lite"``
            (msgpack-lite, 4.x) or ``"current"`` (@socket.io/redis-emitter 5.x).
        pub_client: A ``redis.asyncio.Redis`` whose connection settings to use.
        publisher: Share an already started :class:`~siotools.transport.pubsub.Publisher`
            (the emitter then does not own or close it).
        on_error: Called with Redis connection errors.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key: str = "socket.io",
        dialect: Dialect | str = Dialect.LEGACY,
        pub_client: Any = None,
        publisher: Publisher | None = None,
        on_error: ErrorHandler | None = None,
    ) -> None:
        self.prefix = key or "socket.io"
        self.wire = make_dialect(resolve_dialect(dialect), self.prefix)
        self.dialect = self.wire.dialect
        if publisher is not None:
            self._publisher = publisher
            self._owned = False
        else:
            endpoint = (
                RedisEndpoint.from_client(pub_client)
                if pub_client is not None
                else RedisEndpoint.from_url(url)
            )
            self._publisher = Publisher(endpoint, name="siotools-emitter", on_error=on_error)
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
            count: Wait for Redis and return how many subscribers received it (else the
                publish is pipelined and 0 is returned).

        Raises:
            EncodeError: A reserved event name (8.x) or an argument the protocol cannot
                carry.
            RedisUnavailableError: Redis cannot be reached at the first emit.
        """
        if event in self.wire.reserved_events:
            # @socket.io/redis-emitter 5.1.0 lib/index.ts L240-L247.
            raise EncodeError(f'"{event}" is a reserved event name')
        await self.connect()
        out = self.wire.broadcast(
            EMITTER_UID,
            target.nsp,
            [event, *args],
            target.rooms,
            target.except_rooms,
            dict(target.flags),
        )
        if count:
            return await self._publisher.publish_wait(out.channel, out.payload)
        self._publisher.publish(out.channel, out.payload)
        await self._publisher.wait_writable()
        return 0

    async def run(self, plan: Plan[int]) -> int:
        """Carry out one of the dialect's fire-and-forget operations.

        Raises:
            UnsupportedOperation: The dialect has no such operation (4.x/5.x emitters can
                only broadcast).
        """
        if not self.wire.capabilities.bulk_operations:
            raise UnsupportedOperation(
                f"the {self.wire.label} emitter can only broadcast; socketsJoin, "
                "socketsLeave, disconnectSockets and serverSideEmit need dialect='current'"
            )
        await self.connect()
        heard: int = await self._requester.run(plan)
        return heard

    async def flush(self) -> None:
        """Wait until Redis has taken every message published so far."""
        await self._publisher.flush()
