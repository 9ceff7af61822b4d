"""``ClusterClient``: ask a Socket.IO Redis cluster from a process that serves no sockets.

The CLI, the TUI and the notebooks use it. It never SUBSCRIBEs to a request channel, so it
is not counted by ``PUBSUB NUMSUB`` and does not distort the nodes' reply counting; it
waits for exactly the servers' answers. It subscribes to the response channels of each
namespace it asks about (those are not counted by anyone).

The dialect is detected passively when not given (``PUBSUB CHANNELS``/``NUMSUB``/
``SHARDCHANNELS``, see :mod:`siotools.dialects.detect`): a request in the wrong dialect can
make a node misread it, up to disconnecting sockets, so none is sent before the dialect is
known.

Example::

    async with ClusterClient("redis://127.0.0.1:6379/0") as cluster:
        print(cluster.dialect, await cluster.namespaces())
        print(await cluster.fetch_sockets(rooms=["room1"], namespace="/chat"))
"""

from __future__ import annotations

import asyncio
import secrets
import string
from collections.abc import Iterable
from typing import Any, TypeVar

from siotools.dialects import SPOKEN as _SPEAKABLE
from siotools.dialects import make_dialect, resolve_dialect
from siotools.dialects.base import Malformed, Plan, RemoteSocket, WireDialect
from siotools.dialects.detect import Detection, choose
from siotools.emitter import BroadcastTarget, Emitter
from siotools.exceptions import ConfigurationError, RequestTimeout
from siotools.node import NodeCore
from siotools.protocol import Dialect
from siotools.requester import AnyPublisher, AnySubscriber, Requester, Transport, detect_on
from siotools.transport.cluster_pubsub import ClusterPublisher, ClusterSubscriber
from siotools.transport.pubsub import ErrorHandler
from siotools.transport.requests import RequestEngine

__all__ = ["ClusterClient"]

T = TypeVar("T")

_UID_ALPHABET = string.ascii_letters + string.digits


class ClusterClient:
    """Cluster-wide queries and operations on a Socket.IO Redis cluster.

    Args:
        url: Redis URL.
        key: The cluster's channel prefix.
        requests_timeout: Seconds to wait for the nodes' answers (default: the dialect's,
            1.0 for 4.x/5.x and 5.0 for 8.x).
        dialect: What the cluster speaks (``"legacy"``, ``"legacy-lite"``, ``"current"``,
            ``"sharded"`` or a :class:`~siotools.Dialect`); ``None`` detects it passively
            at connect (sharded nodes are recognised by their sharded channels).
        pub_client: A ``redis.asyncio.Redis`` (or ``RedisCluster``) whose connection
            settings to use.
        on_error: Called with Redis errors and malformed responses.
        cluster: ``True``: ``url`` names one node of a Redis Cluster (as ``?cluster=true``
            does). The sharded dialect always uses the cluster transport.
        subscription_mode: Sharded clusters: the nodes' ``subscriptionMode`` (only changes
            which channel a single-room :meth:`emit` goes to; ``"static"``, the main
            channel, reaches every mode and is the default here).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key: str = "socket.io",
        requests_timeout: float | None = None,
        dialect: Dialect | str | None = None,
        pub_client: Any = None,
        on_error: ErrorHandler | None = None,
        cluster: bool | None = None,
        subscription_mode: str | None = None,
    ) -> None:
        if requests_timeout is not None and (
            not requests_timeout > 0 or requests_timeout == float("inf")
        ):
            raise ConfigurationError("requests_timeout must be a positive number of seconds")
        self._transport = Transport(url, pub_client, cluster)
        self.endpoint = self._transport.endpoint
        self.prefix = key or "socket.io"
        self._subscription_mode = subscription_mode
        self._timeout = requests_timeout
        self._asked: Dialect | None = None if dialect is None else resolve_dialect(dialect)
        self.detection: Detection | None = None
        """What passive detection found (``None`` when ``dialect=`` was given)."""
        self.uid = "".join(secrets.choice(_UID_ALPHABET) for _ in range(6))
        self._on_error = on_error
        self.malformed = 0
        """Responses that could not be decoded."""
        self._publisher, self._subscriber = self._pubsub(None)
        self._retired: list[tuple[AnyPublisher, AnySubscriber]] = []
        self._engine = RequestEngine()
        self._wire: WireDialect | None = None
        self._core: NodeCore | None = None
        self._requester: Requester | None = None
        self._emitter: Emitter | None = None
        self._connected = False
        self._connecting = asyncio.Lock()
        self._joining: dict[str, asyncio.Future[None]] = {}
        """Each namespace's response-channel subscriptions (for the dialect spoken)."""
        self._provisional = False
        if self._asked is not None:
            self._use(self._asked)

    def _pubsub(self, wire: WireDialect | None) -> tuple[AnyPublisher, AnySubscriber]:
        t = self._transport
        publisher = t.publisher(wire, name="siotools-cluster-pub", on_error=self._on_error)
        subscriber = t.subscriber(
            wire, on_message=self._on_message, name="siotools-cluster-sub", on_error=self._on_error
        )
        return publisher, subscriber

    def _use(self, dialect: Dialect) -> None:
        wire = make_dialect(
            dialect, self.prefix, subscription_mode=self._subscription_mode or "static"
        )
        if self._transport.uses_cluster(wire) and not isinstance(self._publisher, ClusterPublisher):
            # Sharded pub/sub: the Redis Cluster transport (one Redis 7 is one master).
            self._retired.append((self._publisher, self._subscriber))
            self._publisher, self._subscriber = self._pubsub(wire)
        self._wire = wire
        self.uid = wire.new_uid()
        self._core = NodeCore(wire, self.uid, counted=False)
        self._joining = {}
        timeout = wire.default_timeout if self._timeout is None else self._timeout
        self._requester = Requester(self._publisher, self._engine, timeout=timeout, counted=False)
        self._emitter = Emitter(
            key=self.prefix,
            dialect=dialect,
            publisher=self._publisher,
            subscription_mode=self._subscription_mode,
        )

    @property
    def dialect(self) -> Dialect | None:
        """The dialect spoken (``None`` before :meth:`connect` detected it)."""
        return None if self._wire is None else self._wire.dialect

    @property
    def wire(self) -> WireDialect:
        """The dialect object (after :meth:`connect`)."""
        if self._wire is None:
            raise ConfigurationError("connect() first: the dialect is not known yet")
        return self._wire

    @property
    def requests_timeout(self) -> float:
        """Seconds to wait for the nodes' answers."""
        if self._timeout is not None:
            return self._timeout
        return self.wire.default_timeout

    @property
    def grammar(self) -> Any:
        """The channel grammar of the prefix."""
        return self.wire.grammar

    @property
    def url(self) -> str:
        """The Redis URL, without password."""
        return self.endpoint.url

    @property
    def on_redis_cluster(self) -> bool:
        """Whether :attr:`endpoint` is a node of a Redis Cluster (``?cluster=true``,
        ``cluster=True`` or a redis-py ``RedisCluster``), not a single Redis."""
        return self._transport.cluster

    async def connect(self) -> ClusterClient:
        """Connect to Redis and, unless ``dialect=`` was given, detect the dialect.

        Raises:
            RedisUnavailableError: Redis cannot be reached.
            ConfigurationError: Two dialects share the prefix (pass ``dialect=``).
        """
        # One at a time: operations started together (the TUI's workers) each call this,
        # and starting the connections twice subscribed twice, so every answer came twice
        # and a request could complete with one node's answer counted for two.
        async with self._connecting:
            await self._connect()
        return self

    async def _connect(self) -> None:
        if not self._connected:
            await self._publisher.start()
            await self._subscriber.start()
            self._connected = True
        if self._wire is None or self._provisional:
            found = await self._detect()
            if self._wire is None or found.dialects:
                self.detection = found
                self._use(choose(found))
                # Nobody there yet: speak the default meanwhile (every request answers
                # empty), and look again at the next operation.
                self._provisional = not found.dialects
            if self._retired:
                await self._publisher.start()
                await self._subscriber.start()
        while self._retired:
            old_pub, old_sub = self._retired.pop()
            await old_sub.close()
            await old_pub.close()

    async def _detect(self) -> Detection:
        # On a Redis Cluster, every master is asked (PUBSUB is node-local there).
        return await detect_on(self._publisher, self.prefix)

    async def close(self) -> None:
        """Cancel pending requests and close the connections."""
        self._engine.cancel_all()
        if self._connected:
            await self._subscriber.close()
            await self._publisher.close()
            self._connected = False
        while self._retired:
            old_pub, old_sub = self._retired.pop()
            await old_sub.close()
            await old_pub.close()

    async def __aenter__(self) -> ClusterClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _on_message(self, channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        core, requester = self._core, self._requester
        if core is None or requester is None:
            return
        actions = core.receive(channel, payload, pattern, _NO_SOCKETS)
        for action in actions:
            if isinstance(action, Malformed):
                self.malformed += 1
                if self._on_error is not None:
                    self._on_error(action.error)
        requester.take(actions)

    async def _run(self, requester: Requester, plan: Plan[T]) -> T:
        """Run a plan; a request nobody answered says what the cluster speaks instead."""
        try:
            return await requester.run(plan)
        except RequestTimeout as exc:
            if exc.answered or self._asked is None:
                raise
            found = await self._detect()
            spoken = found.dialects - {self.wire.dialect}
            if not spoken or found.dialect is self.wire.dialect:
                raise
            labels = " and ".join(
                sorted(make_dialect(d, self.prefix).label for d in spoken if d in _SPEAKABLE)
            )
            if not labels:
                labels = "a dialect siotools does not speak yet (" + "; ".join(found.evidence) + ")"
            raise RequestTimeout(
                f"{exc}: no node answered; the cluster under prefix {self.prefix!r} speaks "
                f"{labels}, not {self.wire.label}; leave dialect= out to detect it",
                partial=exc.partial,
                answered=exc.answered,
                expected=exc.expected,
            ) from None

    async def _ask(self, namespace: str) -> Requester:
        await self.connect()
        assert self._core is not None and self._requester is not None
        # The first operation in a namespace subscribes to its response channels; one
        # started meanwhile waits for those subscriptions too, or its answers could arrive
        # before them and be lost (the request then timed out).
        core = self._core
        joining = self._joining.get(namespace)
        if joining is None:
            joining = asyncio.ensure_future(self._join(namespace))
            self._joining[namespace] = joining
        try:
            await asyncio.shield(joining)
        except Exception:
            if self._joining.get(namespace) is joining:
                del self._joining[namespace]
                core.namespaces.discard(namespace)  # the next operation subscribes again
            raise
        return self._requester

    async def _join(self, namespace: str) -> None:
        assert self._core is not None
        subs = self._core.join_namespace(namespace)
        if subs is not None:
            if subs.channels:
                await self._subscriber.subscribe(list(subs.channels))
            for channel in subs.shard_channels:
                sub = self._subscriber
                assert isinstance(sub, ClusterSubscriber)  # Transport: sharded -> cluster
                await sub.ssubscribe([channel])

    # ------------------------------------------------------------------ discovery

    async def namespaces(self) -> list[str]:
        """Namespaces with at least one node, from the request channels present in Redis."""
        await self.connect()
        assert self._requester is not None
        wire = self.wire
        sub, pattern = wire.namespace_probe()
        found = []
        # Per master on a Redis Cluster (PUBSUB CHANNELS/SHARDCHANNELS are node-local).
        for reply in await self._requester.masters_execute(b"PUBSUB", sub, pattern):
            for channel in reply:
                nsp = wire.namespace_of(channel)
                if nsp is not None:
                    found.append(nsp)
        return sorted(set(found))

    async def server_count(self, namespace: str = "/") -> int:
        """How many nodes serve ``namespace`` (the NUMSUB count their requests rely on)."""
        requester = await self._ask(namespace)
        return await self._run(requester, self.wire.server_count(namespace))

    node_count = server_count

    async def node_counts(self) -> dict[str, int]:
        """Node count per namespace, for every namespace with a node."""
        return {nsp: await self.node_count(nsp) for nsp in await self.namespaces()}

    # ------------------------------------------------------------------ requests

    async def fetch_sockets(
        self,
        *,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
    ) -> list[RemoteSocket]:
        """Every socket in any of ``rooms`` (all when None) minus the members of
        ``except_rooms``, with its rooms (and, on 8.x, ``data`` and handshake).

        On 4.x/5.x this takes one ``clients`` request plus one ``clientRooms`` request per
        socket, and ``data``/``handshake`` are ``None``.

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        requester = await self._ask(namespace)
        plan = self.wire.fetch_sockets(
            namespace, self.uid, list(rooms or ()), list(except_rooms or ()), None
        )
        return await self._run(requester, plan)

    async def clients(
        self, rooms: Iterable[Any] | None = None, *, namespace: str = "/"
    ) -> list[str]:
        """Socket ids in any of ``rooms`` (every socket when None), across the cluster.

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        requester = await self._ask(namespace)
        return await self._run(
            requester, self.wire.clients(namespace, self.uid, list(rooms or ()), None)
        )

    async def all_rooms(self, *, namespace: str = "/") -> list[Any]:
        """Every room of every node, socket-id rooms included.

        The sharded adapter has no allRooms request (socket.io-adapter's ClusterAdapter
        dropped it); there the rooms are read from one ``fetch_sockets``, each socket's
        rooms, its own id room included: the same set.

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        await self.connect()
        caps = self.wire.capabilities
        if not caps.all_rooms and caps.socket_details:
            try:
                sockets = await self.fetch_sockets(namespace=namespace)
            except RequestTimeout as exc:
                raise RequestTimeout(
                    str(exc),
                    partial=_rooms_of(exc.partial or []),
                    answered=exc.answered,
                    expected=exc.expected,
                ) from None
            return _rooms_of(sockets)
        requester = await self._ask(namespace)
        return await self._run(requester, self.wire.all_rooms(namespace, self.uid, None))

    async def rooms(self, *, namespace: str = "/") -> list[Any]:
        """Named rooms only: :meth:`all_rooms` without the rooms that are socket ids.

        Where the dialect has no all-rooms request but reports each socket's rooms (the
        sharded adapter), they are read from one ``fetch_sockets``.
        """
        await self.connect()
        caps = self.wire.capabilities
        if not caps.all_rooms and caps.socket_details:
            return list(await self._members_from_fetch(None, namespace))
        rooms = await self.all_rooms(namespace=namespace)
        sids = set(await self.clients(namespace=namespace))
        return [r for r in rooms if r not in sids]

    async def room_members(
        self,
        rooms: Iterable[Any] | None = None,
        *,
        namespace: str = "/",
        concurrency: int = 32,
    ) -> dict[Any, list[str]]:
        """The socket ids of each room (every named room when ``rooms`` is None).

        Where the dialect reports each socket's rooms (8.x), one ``fetchSockets`` answers
        it; the 4.x/5.x protocol has no per-room count request, so there this asks
        ``clients([room])`` for each room, ``concurrency`` requests at a time.

        Raises:
            RequestTimeout: Not every node answered for some room; ``partial`` holds the
                dict with what arrived, ``answered``/``expected`` the worst room's counts.
        """
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        await self.connect()
        if self.wire.capabilities.socket_details:
            return await self._members_from_fetch(rooms, namespace)
        names = list(await self.rooms(namespace=namespace) if rooms is None else rooms)
        gate = asyncio.Semaphore(concurrency)
        result: dict[Any, list[str]] = {}
        worst: RequestTimeout | None = None

        async def one(room: Any) -> None:
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

    async def _members_from_fetch(
        self, rooms: Iterable[Any] | None, namespace: str
    ) -> dict[Any, list[str]]:
        wanted = None if rooms is None else list(rooms)
        try:
            sockets = await self.fetch_sockets(rooms=wanted, namespace=namespace)
        except RequestTimeout as exc:
            partial = self._group(exc.partial or [], wanted)
            raise RequestTimeout(
                str(exc), partial=partial, answered=exc.answered, expected=exc.expected
            ) from None
        return self._group(sockets, wanted)

    @staticmethod
    def _group(sockets: list[RemoteSocket], wanted: list[Any] | None) -> dict[Any, list[str]]:
        ids = {s.id for s in sockets}
        out: dict[Any, list[str]] = {} if wanted is None else {r: [] for r in wanted}
        for socket in sockets:
            for room in socket.rooms:
                if wanted is None and room in ids:
                    continue  # socket-id rooms are not named rooms
                if wanted is None or room in out:
                    out.setdefault(room, []).append(socket.id)
        return out

    async def client_rooms(self, sid: str, *, namespace: str = "/") -> list[Any]:
        """The rooms of socket ``sid`` (its own id room first).

        Raises:
            RequestTimeout: 4.x/5.x: no node has that socket (nobody answers).
            SocketNotFound: 8.x: no node has that socket.
        """
        requester = await self._ask(namespace)
        return await self._run(requester, self.wire.client_rooms(namespace, self.uid, sid))

    async def remote_join(self, sid: str, room: Any, *, namespace: str = "/") -> None:
        """Make socket ``sid`` join ``room``.

        Raises:
            RequestTimeout: 4.x/5.x: no node has that socket.
            SocketNotFound: 8.x: no node has that socket.
        """
        requester = await self._ask(namespace)
        await self._run(requester, self.wire.remote_join(namespace, self.uid, sid, room))

    async def remote_leave(self, sid: str, room: Any, *, namespace: str = "/") -> None:
        """Make socket ``sid`` leave ``room``.

        Raises:
            RequestTimeout: 4.x/5.x: no node has that socket.
            SocketNotFound: 8.x: no node has that socket.
        """
        requester = await self._ask(namespace)
        await self._run(requester, self.wire.remote_leave(namespace, self.uid, sid, room))

    async def remote_disconnect(
        self, sid: str, close: bool = False, *, namespace: str = "/"
    ) -> None:
        """Disconnect socket ``sid`` (``close``: its whole connection).

        Raises:
            RequestTimeout: 4.x/5.x: no node has that socket.
            SocketNotFound: 8.x: no node has that socket.
        """
        requester = await self._ask(namespace)
        await self._run(requester, self.wire.remote_disconnect(namespace, self.uid, sid, close))

    async def sockets_join(
        self,
        room_or_rooms: Any,
        *,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
    ) -> int:
        """Make the matching sockets join ``room_or_rooms``; returns how many nodes (8.x) or
        sockets (4.x/5.x) it reached."""
        requester = await self._ask(namespace)
        plan = self.wire.sockets_join(
            namespace,
            self.uid,
            list(rooms or ()),
            list(except_rooms or ()),
            _as_list(room_or_rooms),
        )
        return await self._run(requester, plan)

    async def sockets_leave(
        self,
        room_or_rooms: Any,
        *,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
    ) -> int:
        """Make the matching sockets leave ``room_or_rooms`` (see :meth:`sockets_join`)."""
        requester = await self._ask(namespace)
        plan = self.wire.sockets_leave(
            namespace,
            self.uid,
            list(rooms or ()),
            list(except_rooms or ()),
            _as_list(room_or_rooms),
        )
        return await self._run(requester, plan)

    async def disconnect_sockets(
        self,
        *,
        close: bool = False,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
    ) -> int:
        """Disconnect the matching sockets (see :meth:`sockets_join` for the result)."""
        requester = await self._ask(namespace)
        plan = self.wire.disconnect_sockets(
            namespace, self.uid, list(rooms or ()), list(except_rooms or ()), close
        )
        return await self._run(requester, plan)

    async def custom_request(self, data: Any, *, namespace: str = "/") -> list[Any]:
        """Every node's ``customHook`` reply to ``data`` (4.x/5.x).

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
            UnsupportedOperation: 8.x has no customRequest (use
                :meth:`server_side_emit_with_ack`).
        """
        requester = await self._ask(namespace)
        return await self._run(requester, self.wire.custom_request(namespace, self.uid, data))

    async def server_side_emit(self, event: str, *args: Any, namespace: str = "/") -> int:
        """Send ``event`` to every server node (8.x); returns how many heard it."""
        requester = await self._ask(namespace)
        heard: int = await self._run(
            requester, self.wire.server_side_emit(namespace, self.uid, [event, *args], ack=False)
        )
        return heard

    async def server_side_emit_with_ack(
        self, event: str, *args: Any, namespace: str = "/"
    ) -> list[Any]:
        """Send ``event`` to every server node and collect each one's reply (8.x).

        Raises:
            RequestTimeout: Not every node answered (``partial``: the replies so far).
        """
        requester = await self._ask(namespace)
        result: list[Any] = await self._run(
            requester, self.wire.server_side_emit(namespace, self.uid, [event, *args], ack=True)
        )
        return result

    async def emit_with_ack(
        self,
        event: str,
        *args: Any,
        rooms: Iterable[Any] = (),
        except_rooms: Iterable[Any] = (),
        namespace: str = "/",
        timeout: float = 5.0,
    ) -> list[Any]:
        """Broadcast with acknowledgements (8.x): every client's first ack argument.

        Raises:
            RequestTimeout: ``operation has timed out``; ``partial`` holds the acks so far.
        """
        requester = await self._ask(namespace)
        plan = self.wire.emit_with_ack(
            namespace, self.uid, [event, *args], list(rooms), list(except_rooms), {}, timeout
        )
        result: list[Any] = await self._run(requester, plan)
        return result

    # ------------------------------------------------------------------ broadcasts

    def of(self, namespace: str) -> BroadcastTarget:
        """A broadcast target for ``namespace`` (``.to(room).emit(...)``); after connect()."""
        if self._emitter is None:
            raise ConfigurationError("connect() first: the dialect is not known yet")
        return self._emitter.of(namespace)

    async def emit(
        self,
        event: str,
        *args: Any,
        rooms: Iterable[Any] = (),
        except_: Iterable[Any] = (),
        namespace: str = "/",
    ) -> int:
        """Broadcast ``event`` to ``rooms`` (everyone when empty) of ``namespace``; returns
        how many Redis subscribers received the message (0: no node heard it). On a Redis
        Cluster, where a PUBLISH reply counts one cluster node's subscribers only, it is
        the number of nodes serving ``namespace`` (:meth:`node_count`) for a classic
        dialect, and the SPUBLISH reply (exact) for the sharded one."""
        await self.connect()
        assert self._emitter is not None
        target = self._emitter.of(namespace).to(*rooms).except_(*except_)
        return await self._emitter.publish(target, event, args, count=True)


class _NoSockets:
    """The local view of a process that serves no sockets."""

    def namespace_rooms(self, nsp: str) -> None:
        return None

    def is_connected(self, sid: str, nsp: str) -> bool:
        return False

    def rooms_of(self, sid: str, nsp: str) -> list[Any]:
        return []


_NO_SOCKETS = _NoSockets()


def _rooms_of(sockets: Iterable[RemoteSocket]) -> list[Any]:
    """Every room of ``sockets``, once each, in the order first seen."""
    return list(dict.fromkeys(room for socket in sockets for room in socket.rooms))


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return [value]
