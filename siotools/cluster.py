"""``ClusterClient``: ask a socket.io-redis cluster from a process that serves no sockets.

The CLI, the TUI and the notebooks use it. It never SUBSCRIBEs to a request channel, so it
is not counted by ``PUBSUB NUMSUB`` and does not distort the nodes' reply counting; it
waits for exactly the servers' answers. It subscribes to the response channel of each
namespace it asks about (those are not counted by anyone).

Example::

    async with ClusterClient("redis://127.0.0.1:6379/0") as cluster:
        print(await cluster.namespaces())
        print(await cluster.clients(["room1"], namespace="/chat"))
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from siotools.dialects.legacy import LegacyRequester
from siotools.emitter import BroadcastTarget, Emitter
from siotools.exceptions import ConfigurationError, DecodeError, RequestTimeout
from siotools.protocol import ChannelGrammar, ChannelKind, Dialect, decode, glob_escape
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import ErrorHandler, Publisher, Subscriber
from siotools.transport.requests import RequestEngine

__all__ = ["ClusterClient"]


class ClusterClient:
    """Cluster-wide queries and operations on a socket.io-redis 4.x/5.x cluster.

    Args:
        url: Redis URL.
        key: The cluster's channel prefix.
        requests_timeout: Seconds to wait for the nodes' answers.
        dialect: ``Dialect.LEGACY`` (5.x) or ``Dialect.LEGACY_LITE`` (4.x).
        pub_client: A ``redis.asyncio.Redis`` whose connection settings to use.
        on_error: Called with Redis errors and malformed responses.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key: str = "socket.io",
        requests_timeout: float = 1.0,
        dialect: Dialect = Dialect.LEGACY,
        pub_client: Any = None,
        on_error: ErrorHandler | None = None,
    ) -> None:
        if dialect not in (Dialect.LEGACY, Dialect.LEGACY_LITE):
            raise ConfigurationError(
                f"ClusterClient speaks socket.io-redis 4.x/5.x (LEGACY or LEGACY_LITE), "
                f"not {dialect.name}"
            )
        if requests_timeout <= 0:
            raise ConfigurationError("requests_timeout must be a positive number of seconds")
        self.endpoint = (
            RedisEndpoint.from_client(pub_client)
            if pub_client is not None
            else RedisEndpoint.from_url(url)
        )
        self.prefix = key or "socket.io"
        self.grammar = ChannelGrammar(self.prefix)
        self.requests_timeout = float(requests_timeout)
        self.dialect = dialect
        self._on_error = on_error
        self.malformed = 0
        """Responses that could not be decoded."""
        self._publisher = Publisher(self.endpoint, name="siotools-cluster-pub", on_error=on_error)
        self._subscriber = Subscriber(
            self.endpoint, self._on_message, name="siotools-cluster-sub", on_error=on_error
        )
        self._engine = RequestEngine()
        self._requester = LegacyRequester(
            grammar=self.grammar,
            dialect=dialect,
            publisher=self._publisher,
            engine=self._engine,
            timeout=self.requests_timeout,
        )
        self._emitter = Emitter(key=self.prefix, dialect=dialect, publisher=self._publisher)
        self._connected = False

    @property
    def url(self) -> str:
        """The Redis URL, without password."""
        return self.endpoint.url

    async def connect(self) -> ClusterClient:
        """Connect to Redis.

        Raises:
            RedisUnavailableError: Redis cannot be reached.
        """
        if not self._connected:
            await self._publisher.start()
            await self._subscriber.start()
            self._connected = True
        return self

    async def close(self) -> None:
        """Cancel pending requests and close the connections."""
        self._engine.cancel_all()
        if self._connected:
            await self._subscriber.close()
            await self._publisher.close()
            self._connected = False

    async def __aenter__(self) -> ClusterClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _on_message(self, channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        try:
            frame = decode(channel, payload, prefix=self.prefix)
        except DecodeError as exc:
            self.malformed += 1
            if self._on_error is not None:
                self._on_error(exc)
            return
        self._requester.on_response(frame)

    async def _listen(self, namespace: str) -> None:
        await self.connect()
        await self._subscriber.subscribe([self.grammar.response(namespace).encode()])

    # ------------------------------------------------------------------ discovery

    async def namespaces(self) -> list[str]:
        """Namespaces with at least one node, from the request channels present in Redis."""
        await self.connect()
        pattern = glob_escape(self.grammar.request("")[:-1]) + "*"
        reply = await self._publisher.execute(b"PUBSUB", b"CHANNELS", pattern.encode())
        found = []
        for channel in reply:
            parsed = self.grammar.parse(channel)
            if parsed.kind is ChannelKind.REQUEST and parsed.nsp is not None:
                found.append(parsed.nsp)
        return sorted(set(found))

    async def node_count(self, namespace: str = "/") -> int:
        """How many nodes serve ``namespace`` (the NUMSUB count their requests rely on)."""
        await self.connect()
        return await self._requester.node_count(namespace)

    async def node_counts(self) -> dict[str, int]:
        """Node count per namespace, for every namespace with a node."""
        return {nsp: await self.node_count(nsp) for nsp in await self.namespaces()}

    # ------------------------------------------------------------------ requests

    async def clients(
        self, rooms: Iterable[str] | None = None, *, namespace: str = "/"
    ) -> list[str]:
        """Socket ids in any of ``rooms`` (every socket when None), across the cluster.

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        await self._listen(namespace)
        return await self._requester.clients(namespace, list(rooms or ()))

    async def all_rooms(self, *, namespace: str = "/") -> list[str]:
        """Every room of every node, socket-id rooms included.

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        await self._listen(namespace)
        return await self._requester.all_rooms(namespace)

    async def rooms(self, *, namespace: str = "/") -> list[str]:
        """Named rooms only: :meth:`all_rooms` without the rooms that are socket ids."""
        rooms = await self.all_rooms(namespace=namespace)
        sids = set(await self.clients(namespace=namespace))
        return [r for r in rooms if r not in sids]

    async def room_members(
        self,
        rooms: Iterable[str] | None = None,
        *,
        namespace: str = "/",
        concurrency: int = 32,
    ) -> dict[str, list[str]]:
        """The socket ids of each room (every named room when ``rooms`` is None).

        The 4.x/5.x protocol has no per-room count request, so this asks ``clients([room])``
        for each room, ``concurrency`` requests at a time.

        Raises:
            RequestTimeout: Not every node answered for some room; ``partial`` holds the
                dict with what arrived, ``answered``/``expected`` the worst room's counts.
        """
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        names = list(await self.rooms(namespace=namespace) if rooms is None else rooms)
        gate = asyncio.Semaphore(concurrency)
        result: dict[str, list[str]] = {}
        worst: RequestTimeout | None = None

        async def one(room: str) -> None:
            nonlocal worst
            async with gate:
                try:
                    result[room] = await self.clients([room], namespace=namespace)
                except RequestTimeout as exc:
                    result[room] = list(exc.partial or [])
                    if worst is None or exc.answered < worst.answered:
                        worst = exc

        await asyncio.gather(*(one(room) for room in names))
        ordered = {room: result[room] for room in names}
        if worst is not None:
            raise RequestTimeout(
                "timeout reached while waiting for room members",
                partial=ordered,
                answered=worst.answered,
                expected=worst.expected,
            )
        return ordered

    async def client_rooms(self, sid: str, *, namespace: str = "/") -> list[str]:
        """The rooms of socket ``sid`` (its own id room first).

        Raises:
            RequestTimeout: No node has that socket.
        """
        await self._listen(namespace)
        return await self._requester.client_rooms(namespace, sid)

    async def remote_join(self, sid: str, room: str, *, namespace: str = "/") -> None:
        """Make socket ``sid`` join ``room``.

        Raises:
            RequestTimeout: No node has that socket.
        """
        await self._listen(namespace)
        await self._requester.remote_join(namespace, sid, room)

    async def remote_leave(self, sid: str, room: str, *, namespace: str = "/") -> None:
        """Make socket ``sid`` leave ``room``.

        Raises:
            RequestTimeout: No node has that socket.
        """
        await self._listen(namespace)
        await self._requester.remote_leave(namespace, sid, room)

    async def remote_disconnect(
        self, sid: str, close: bool = False, *, namespace: str = "/"
    ) -> None:
        """Disconnect socket ``sid`` (``close``: its whole connection).

        Raises:
            RequestTimeout: No node has that socket.
        """
        await self._listen(namespace)
        await self._requester.remote_disconnect(namespace, sid, close)

    async def custom_request(self, data: Any, *, namespace: str = "/") -> list[Any]:
        """Every node's ``customHook`` reply to ``data``.

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        await self._listen(namespace)
        return await self._requester.custom_request(namespace, data)

    # ------------------------------------------------------------------ broadcasts

    def of(self, namespace: str) -> BroadcastTarget:
        """A broadcast target for ``namespace`` (``.to(room).emit(...)``)."""
        return self._emitter.of(namespace)

    async def emit(
        self,
        event: str,
        *args: Any,
        rooms: Iterable[str] = (),
        except_: Iterable[str] = (),
        namespace: str = "/",
    ) -> None:
        """Broadcast ``event`` to ``rooms`` (everyone when empty) of ``namespace``."""
        await self.connect()
        target = self._emitter.of(namespace).to(*rooms).except_(*except_)
        await target.emit(event, *args)
        await self._emitter.flush()
