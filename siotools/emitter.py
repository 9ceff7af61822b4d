"""``Emitter``: publish broadcasts to a Socket.IO cluster from a process that serves no sockets.

The Python counterpart of socket.io-emitter 3.x (socket.io-redis 4.x/5.x clusters): it
publishes ``["emitter", packet, opts]`` on the cluster's broadcast channels, and the
nodes deliver to their sockets. It subscribes to nothing.

Example::

    async with Emitter("redis://127.0.0.1:6379/0") as io:
        await io.to("room1").emit("news", {"hello": "world"})
        await io.of("/chat").emit("message", "hi", b"\\x00\\x01")
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from siotools.exceptions import ConfigurationError
from siotools.protocol import Dialect, encode_broadcast
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import ErrorHandler, Publisher

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
        """Skip these sockets (socket.io-redis 5.x ``except`` holds socket ids)."""
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
        """Publish ``event`` with ``args`` to the target."""
        await self.emitter.publish(self, event, args)


class Emitter:
    """Publishes Socket.IO broadcasts to a Redis cluster (socket.io-emitter 3.x protocol).

    Args:
        url: Redis URL.
        key: The cluster's channel prefix.
        dialect: ``Dialect.LEGACY`` (notepack 2, socket.io-redis 5.x) or
            ``Dialect.LEGACY_LITE`` (msgpack-lite, 4.x).
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
        dialect: Dialect = Dialect.LEGACY,
        pub_client: Any = None,
        publisher: Publisher | None = None,
        on_error: ErrorHandler | None = None,
    ) -> None:
        if dialect not in (Dialect.LEGACY, Dialect.LEGACY_LITE):
            raise ConfigurationError(
                "Emitter speaks socket.io-redis 4.x/5.x (LEGACY or LEGACY_LITE), "
                f"not {dialect.name}"
            )
        self.prefix = key or "socket.io"
        self.dialect = dialect
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

    async def publish(self, target: BroadcastTarget, event: str, args: Iterable[Any]) -> None:
        """Encode and publish one broadcast for ``target``.

        Raises:
            EncodeError: An argument cannot be carried by the protocol.
            RedisUnavailableError: Redis cannot be reached at the first emit.
        """
        await self.connect()
        channel, payload = encode_broadcast(
            uid=EMITTER_UID,
            data=[event, *args],
            nsp=target.nsp,
            rooms=target.rooms,
            except_=target.except_rooms,
            flags=dict(target.flags),
            dialect=self.dialect,
            prefix=self.prefix,
        )
        self._publisher.publish(channel.encode(), payload)
        await self._publisher.wait_writable()

    async def flush(self) -> None:
        """Wait until Redis has taken every message published so far."""
        await self._publisher.flush()
