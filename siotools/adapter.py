"""``AsyncRedisAdapter``: a python-socketio client manager that joins Node Redis clusters.

A thin asyncio shell over the pure node core (:class:`~siotools.node.NodeCore`) and a wire
dialect object (:mod:`siotools.dialects`): socket.io-redis 4.x/5.x (``dialect="legacy"``,
``"legacy-lite"``), @socket.io/redis-adapter 8.x classic (``dialect="current"``) or 8.x
sharded (``dialect="sharded"``, Redis 7 SSUBSCRIBE/SPUBLISH). Python and Node servers can
therefore share one cluster, on one Redis or on a Redis Cluster (``?cluster=true`` in the
URL, or ``cluster=True``: the URL names one seed node, the topology is discovered).

Example::

    import socketio
    from siotools import AsyncRedisAdapter

    adapter = AsyncRedisAdapter("redis://127.0.0.1:6379/0", dialect="current")
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=adapter)
    app = socketio.ASGIApp(sio, on_startup=adapter.start, on_shutdown=adapter.close)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as _dt
import inspect
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from siotools.dialects import make_dialect, resolve_dialect
from siotools.dialects.base import (
    Action,
    AddExpected,
    CallHook,
    Deliver,
    DeliverWithAck,
    Disconnect,
    FetchLocal,
    Ignored,
    Join,
    Leave,
    Local,
    Malformed,
    Publish,
    RemoteSocket,
    Reply,
    Settle,
    Subscriptions,
    select_sids,
)
from siotools.dialects.detect import conflict, detect_with
from siotools.exceptions import (
    ConfigurationError,
    RequestTimeout,
    SocketNotFound,
    UnsupportedOperation,
)
from siotools.node import NodeCore
from siotools.protocol import U64, UNDEFINED, Dialect, TypedArray, Undefined
from siotools.requester import Requester, Transport, publish
from siotools.transport.cluster_pubsub import ClusterSubscriber
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.requests import RequestEngine

__all__ = ["AsyncRedisAdapter", "CustomHook", "ErrorCallback", "ServerSideEmitHandler"]

log = logging.getLogger("siotools.adapter")

CustomHook = Callable[[Any], Any]
"""``hook(data) -> reply`` (sync or async): this node's answer to ``custom_request``."""

ErrorCallback = Callable[[BaseException], Any]
"""Called with every error the adapter meets (the Node adapter's ``'error'`` event)."""

ServerSideEmitHandler = Callable[..., Any]
"""``handler(*args) -> ack`` (sync or async) for a ``server_side_emit`` event."""

_ACK_TIMEOUT = 60.0  # python-socketio's call() default, for callbacks to remote sockets


def _default_hook(data: Any) -> Any:
    # socket.io-redis: `this.customHook = function(data, cb){ cb(null); }`
    return None


def _js_to_py(value: Any) -> Any:
    """Map the JS-only values a Node node may send onto what python-socketio can encode."""
    t = type(value)
    if t is str or t is int or t is float or t is bool or value is None or t is bytes:
        return value
    if t is list:
        return [_js_to_py(v) for v in value]
    if t is dict:
        # JSON.stringify drops undefined-valued keys, as a Node receiver's parser would.
        return {k: _js_to_py(v) for k, v in value.items() if v is not UNDEFINED}
    if isinstance(value, Undefined):
        return None
    if isinstance(value, _dt.datetime):
        # Date.prototype.toJSON: ISO 8601 with milliseconds and a Z.
        return value.astimezone(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, TypedArray):
        return value.data
    if isinstance(value, U64):
        return int(value)
    return value


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return [value]


def _args(data: Any) -> list[Any]:
    # python-socketio: a tuple is several arguments, anything else one (None: none).
    if isinstance(data, tuple):
        return list(data)
    if data is None:
        return []
    return [data]


def handshake_of(environ: Mapping[str, Any] | None, connected_at: float | None) -> dict[str, Any]:
    """A socket.io 4 ``socket.handshake`` built from the WSGI/ASGI environ python-socketio
    keeps for a connection (``auth`` is not kept by python-socketio: always ``{}``)."""
    environ = environ or {}
    headers = {
        key[5:].lower().replace("_", "-"): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    }
    query_string = environ.get("QUERY_STRING") or ""
    query = {k: v[0] for k, v in urllib.parse.parse_qs(query_string).items()}
    issued = int((connected_at or time.time()) * 1000)
    path = environ.get("PATH_INFO") or "/socket.io/"
    return {
        "headers": headers,
        "time": _dt.datetime.fromtimestamp(issued / 1000, _dt.UTC).strftime(
            "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)"
        ),
        "address": environ.get("REMOTE_ADDR") or "",
        "xdomain": "HTTP_ORIGIN" in environ,
        "secure": environ.get("wsgi.url_scheme") == "https",
        "issued": issued,
        "url": path + ("?" + query_string if query_string else ""),
        "query": query,
        "auth": {},
    }


class _Stats(Mapping[str, int]):
    """A live, read-only view of an adapter's counters."""

    def __init__(self, adapter: AsyncRedisAdapter) -> None:
        self._adapter = adapter

    def __getitem__(self, name: str) -> int:
        return self._adapter.counter(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(("received", "decoded", "published", *self._adapter.counters)))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr(dict(self))


class AsyncRedisAdapter(socketio.AsyncManager):  # type: ignore[misc]
    """A python-socketio ``client_manager`` that is a node of a Socket.IO Redis cluster.

    Args:
        url: Redis URL (``redis://host:port/db``, ``rediss://``, ``unix://``).
        host: Redis host, when no URL is given.
        port: Redis port, when no URL is given.
        key: The channel prefix shared by the cluster (``socket.io`` by default).
        pub_client: A ``redis.asyncio.Redis`` whose settings (address, password, TLS) the
            adapter's publishing connection uses.
        sub_client: The same for the subscribing connection.
        dialect: What the cluster speaks: ``"legacy"`` (socket.io-redis 5.x, notepack 2;
            the default), ``"legacy-lite"`` (4.x, msgpack-lite), ``"current"``
            (@socket.io/redis-adapter 8.x classic) or ``"sharded"`` (8.x
            ``createShardedAdapter``, Redis 7 sharded pub/sub); a :class:`~siotools.Dialect`
            works too.
        cluster: ``True``: ``url`` names one node of a Redis Cluster (as ``?cluster=true``
            in the URL does); the topology is discovered from it. The sharded dialect
            always uses the cluster transport (a standalone Redis 7 is one master).
        requests_timeout: Seconds to wait for the other nodes' answers (default: 1.0 for
            4.x/5.x as in socket.io-redis 4.x, 5.0 for 8.x as in RA 8.3).
        with_channel_multiplexing: 4.x/5.x: publish single-room broadcasts on the room's
            channel and SUBSCRIBE to the channel of every room with a local member
            (socket.io-redis 4.x default). ``False`` publishes everything on ``key#nsp#``.
        subscription_mode: sharded: ``"dynamic"`` (default), ``"static"`` or
            ``"dynamic-private"`` (RA ``subscriptionMode``).
            4.x/5.x: ``"subscribe"`` (4.x: SUBSCRIBE ``key#nsp#`` plus the
            room channels) or ``"psubscribe"`` (5.x: PSUBSCRIBE ``key#nsp#*``).
        publish_on_specific_response_channel: 8.x: answer on the requester's own response
            channel (RA ``publishOnSpecificResponseChannel``).
        parser: 8.x: ``"msgpack"`` (notepack 3) or ``"json"`` for broadcasts.
        namespaces: Namespaces to join the cluster in at start, in addition to ``/`` and
            the server's registered ones; others are joined when a client connects.
        custom_hook: This node's answer to ``custom_request`` (see :data:`CustomHook`).
        logger: A logger for the manager (python-socketio's own convention).
    """

    name = "siotools-redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        key: str = "socket.io",
        pub_client: Any = None,
        sub_client: Any = None,
        dialect: Dialect | str = Dialect.LEGACY,
        requests_timeout: float | None = None,
        with_channel_multiplexing: bool = True,
        subscription_mode: str | None = None,
        publish_on_specific_response_channel: bool = False,
        parser: Literal["msgpack", "json"] = "msgpack",
        namespaces: Iterable[str] = (),
        custom_hook: CustomHook | None = None,
        logger: Any = None,
        cluster: bool | None = None,
    ) -> None:
        super().__init__()
        self.prefix = key or "socket.io"  # socket.io-redis: `prefix = opts.key || 'socket.io'`
        self.wire = make_dialect(
            resolve_dialect(dialect),
            self.prefix,
            subscription_mode=subscription_mode,
            with_channel_multiplexing=with_channel_multiplexing,
            publish_on_specific_response_channel=publish_on_specific_response_channel,
            parser=parser,
        )
        if requests_timeout is None:
            requests_timeout = self.wire.default_timeout
        if not requests_timeout > 0 or requests_timeout == float("inf"):
            raise ConfigurationError("requests_timeout must be a positive number of seconds")
        self._pub_client = pub_client
        self._sub_client = sub_client
        self._made_clients: list[Any] = []  # made by the properties: closed by close()
        self._transport = self._endpoint(url, host, port, pub_client, cluster)
        self._pub_endpoint = self._transport.endpoint
        self._sub_endpoint = (
            RedisEndpoint.from_client(sub_client) if sub_client is not None else self._pub_endpoint
        )
        self.grammar = self.wire.grammar
        self.uid = self.wire.new_uid()
        self.requests_timeout = float(requests_timeout)
        self.dialect = self.wire.dialect
        # The options as given (the dialect object applies those of its dialect).
        self.with_channel_multiplexing = with_channel_multiplexing
        self.subscription_mode = getattr(self.wire, "subscription_mode", subscription_mode)
        self.publish_on_specific_response_channel = publish_on_specific_response_channel
        self.custom_hook: CustomHook = custom_hook or _default_hook
        self.logger = logger
        self.core = NodeCore(self.wire, self.uid)
        self._extra_namespaces = list(namespaces)
        self._error_callbacks: list[ErrorCallback] = []
        self._handlers: dict[tuple[str, str], list[ServerSideEmitHandler]] = {}
        self._counts: collections.Counter[str] = collections.Counter()
        self._warned: set[str] = set()
        self._connected_at: dict[str, float] = {}
        # The per-message counter is a plain int: a Counter update costs as much as a
        # quarter of the rest of the receive path.
        self._published = 0
        self._stats = _Stats(self)
        self._engine = RequestEngine()
        # One Redis, or a Redis Cluster (asked for, or needed by sharded pub/sub).
        self._publisher = self._transport.publisher(
            self.wire, name=f"{self.uid}-pub", on_error=self._error
        )
        sub_transport = self._transport
        if sub_client is not None and not self._transport.uses_cluster(self.wire):
            sub_transport = Transport(None, sub_client, False)
        self._subscriber = sub_transport.subscriber(
            self.wire, on_batch=self._on_batch, name=f"{self.uid}-sub", on_error=self._error
        )
        self._requester = Requester(
            self._publisher,
            self._engine,
            timeout=self.requests_timeout,
            counted=True,
            local=self._apply_local,
        )
        self._pending_subs: list[asyncio.Future[None]] = []
        self._inbox: collections.deque[Deliver] = collections.deque()
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._deliverer: asyncio.Task[None] | None = None
        self._started = False
        self._starting: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending_requests(self) -> int:
        """Cluster requests of this node still waiting for answers (RA's
        ``adapter.requests.size`` plus ``ackRequests.size``)."""
        return len(self._engine)

    @property
    def counters(self) -> list[str]:
        """The names of the counters incremented so far (see :attr:`stats`)."""
        return list(self._counts)

    def counter(self, name: str) -> int:
        """One counter's value (0 when never incremented)."""
        if name == "received":
            return self.core.received
        if name == "decoded":
            return self.core.decoded
        if name == "published":
            return self._published
        return self._counts[name]

    @property
    def stats(self) -> Mapping[str, int]:
        """Live counters: ``received``, ``decoded``, ``published``, ``delivered``,
        ``malformed``, ``ignored``, ``errors``... (0 for a counter never incremented)."""
        return self._stats

    @property
    def pub_client(self) -> Any:
        """The ``redis.asyncio.Redis`` for the publishing side: the one passed in, or one
        made on first use with the same settings, for the application's own commands.

        The adapter itself publishes and subscribes on lean connections of its own, opened
        with these settings (address, credentials, TLS).
        """
        if self._pub_client is None:
            import redis.asyncio as aioredis

            self._pub_client = aioredis.Redis(**self._pub_endpoint.redis_py_kwargs())
            self._made_clients.append(self._pub_client)
        return self._pub_client

    @property
    def sub_client(self) -> Any:
        """The ``redis.asyncio.Redis`` for the subscribing side (see :attr:`pub_client`)."""
        if self._sub_client is None:
            import redis.asyncio as aioredis

            self._sub_client = aioredis.Redis(**self._sub_endpoint.redis_py_kwargs())
            self._made_clients.append(self._sub_client)
        return self._sub_client

    def attach(self, app: Any) -> None:
        """Start and close the adapter with an aiohttp ``web.Application``.

        Joining the cluster when the server starts, rather than at the first client,
        matters: a node is counted by ``PUBSUB NUMSUB`` only once it is subscribed. For
        ASGI, pass :meth:`start` and :meth:`close` as ``socketio.ASGIApp(on_startup=...,
        on_shutdown=...)``.
        """
        app.on_startup.append(self.start)
        app.on_cleanup.append(self.close)

    @staticmethod
    def _endpoint(
        url: str | None, host: str | None, port: int | None, client: Any, cluster: bool | None
    ) -> Transport:
        if client is not None:
            return Transport(None, client, cluster)
        if url is not None:
            if host is not None or port is not None:
                raise ConfigurationError("pass either a Redis URL or host/port, not both")
            return Transport(url, None, cluster)
        return Transport(f"redis://{host or '127.0.0.1'}:{port or 6379}/0", None, cluster)

    # ------------------------------------------------------------------ lifecycle

    def set_server(self, server: Any) -> None:
        """Called by python-socketio when the server is created."""
        super().set_server(server)
        # Start listening as soon as a loop runs: a node that is not subscribed yet is
        # not counted by NUMSUB, and one that is must answer, so the earlier the better.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self._schedule_start()

    def initialize(self) -> None:
        """Called by python-socketio on the first connection; starts the adapter if needed."""
        super().initialize()
        self._schedule_start()

    def _schedule_start(self) -> None:
        if not self._started and self._starting is None and not self._closed:
            self._starting = asyncio.get_running_loop().create_task(
                self._start_logged(), name=f"siotools-adapter-{self.uid}-start"
            )

    async def _start_logged(self) -> None:
        try:
            await self.start()
        except Exception as exc:
            self._error(exc)

    async def start(self, *_: Any) -> None:
        """Connect to Redis and join the cluster in every known namespace (idempotent).

        Usable directly as an aiohttp ``on_startup`` or ASGI ``on_startup`` hook.

        Raises:
            RedisUnavailableError: Redis cannot be reached.
        """
        if self._started:
            return
        if self._starting is not None and asyncio.current_task() is not self._starting:
            await asyncio.shield(self._starting)
            if self._started:
                return
        self._closed = False
        await self._publisher.start()
        await self._subscriber.start()
        self._started = True
        self._deliverer = asyncio.get_running_loop().create_task(
            self._deliver_loop(), name=f"siotools-adapter-{self.uid}-deliver"
        )
        for nsp in self._initial_namespaces():
            self._join_namespace(nsp)
        self._subscribe_rooms()
        await self._settle_subscriptions()
        # Another adapter generation on this prefix misreads our requests and we theirs:
        # say so at once (passively: nothing is published).
        warning = conflict(await detect_with(self._publisher, self.prefix), self.dialect)  # type: ignore[arg-type]
        if warning is not None:
            self._error(ConfigurationError(warning))
        self._get_logger().info(
            "siotools adapter %s joined the cluster at %s (key %r)",
            self.uid,
            self._pub_endpoint.url,
            self.prefix,
        )

    def _initial_namespaces(self) -> list[str]:
        names = ["/", *self._extra_namespaces]
        server = self.server
        if server is not None:
            handlers = getattr(server, "handlers", {}) or {}
            names.extend(handlers)
            names.extend(getattr(server, "namespace_handlers", {}) or {})
            configured = getattr(server, "namespaces", None)
            if isinstance(configured, list):
                names.extend(configured)
        return [n for n in dict.fromkeys(names) if isinstance(n, str) and n != "*"]

    async def close(self, *_: Any) -> None:
        """Leave the cluster: unsubscribe, cancel pending requests, close the connections.

        Usable directly as an aiohttp ``on_shutdown``/``on_cleanup`` or ASGI
        ``on_shutdown`` hook.
        """
        self._closed = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._starting
        self._starting = None
        self._engine.cancel_all()
        tasks = [t for t in (self._deliverer, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._deliverer = None
        self._tasks.clear()
        await self._subscriber.close()
        await self._publisher.close()
        while self._made_clients:
            await self._made_clients.pop().aclose()
        self._started = False

    # ------------------------------------------------------------------ errors

    def on_error(self, callback: ErrorCallback) -> ErrorCallback:
        """Register a callback for errors (Redis, malformed frames); usable as a decorator."""
        self._error_callbacks.append(callback)
        return callback

    def _error(self, exc: BaseException) -> None:
        self._counts["errors"] += 1
        if not self._error_callbacks:
            self._get_logger().warning("siotools adapter %s: %s", self.uid, exc)
        for callback in self._error_callbacks:
            try:
                result = callback(exc)
                if inspect.isawaitable(result):
                    self._spawn(result)
            except Exception:
                self._get_logger().exception("error callback failed")

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        async def run() -> None:
            await awaitable

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ subscriptions

    def _join_namespace(self, nsp: str) -> None:
        subs = self.core.join_namespace(nsp)
        if subs is not None:
            self._subscribe(subs)

    def _subscribe(self, subs: Subscriptions) -> None:
        sub = self._subscriber
        if subs.patterns:
            self._track(sub.psubscribe_nowait(list(subs.patterns)))
        if subs.channels:
            self._track(sub.subscribe_nowait(list(subs.channels)))
        if subs.shard_channels:
            # Each channel on its own: sharded channels of one SSUBSCRIBE share a slot.
            for channel in subs.shard_channels:
                self._track(self._sharded_subscriber().ssubscribe_nowait([channel]))

    def _sharded_subscriber(self) -> ClusterSubscriber:
        sub = self._subscriber
        if not isinstance(sub, ClusterSubscriber):  # pragma: no cover - Transport's job
            raise ConfigurationError("sharded pub/sub needs the Redis Cluster transport")
        return sub

    def _track(self, fut: asyncio.Future[None] | None) -> None:
        if fut is not None:
            self._pending_subs.append(fut)

    async def _settle_subscriptions(self) -> None:
        """Wait until Redis confirmed the subscriptions made so far."""
        pending, self._pending_subs = self._pending_subs, []
        for fut in pending:
            with contextlib.suppress(Exception):
                await fut

    def _subscribe_rooms(self) -> None:
        # Rooms that got members before the start (sockets connect before the loop ran).
        for nsp, rooms in self.rooms.items():
            self._join_namespace(nsp)
            for room in rooms:
                if room is not None:
                    self._room_added(nsp, room)

    def _room_added(self, nsp: str, room: Any) -> None:
        # A socket's own id room is private (socket.io-adapter: `sids.has(room)`).
        private = room in (self.rooms.get(nsp, {}).get(None) or {})
        channel = self.core.room_added(nsp, room, private=private)
        if channel is not None:
            if self.wire.sharded_pubsub:
                self._track(self._sharded_subscriber().ssubscribe_nowait([channel]))
            else:
                self._track(self._subscriber.subscribe_nowait([channel]))

    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        """Add a local socket to a room (and SUBSCRIBE to the room's channel if the dialect
        listens per room and the room is new here)."""
        ns_rooms = self.rooms.get(namespace)
        new_room = room is not None and (ns_rooms is None or room not in ns_rooms)
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if self._started:
            if namespace not in self.core.namespaces:
                self._join_namespace(namespace)
            if new_room:
                self._room_added(namespace, room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Remove a local socket from a room (UNSUBSCRIBE when the room empties here)."""
        super().basic_leave_room(sid, namespace, room)
        if room is not None and self._started and room not in self.rooms.get(namespace, {}):
            channel = self.core.room_removed(namespace, room)
            if channel is not None:
                if self.wire.sharded_pubsub:
                    self._sharded_subscriber().sunsubscribe_nowait([channel])
                else:
                    self._subscriber.unsubscribe_nowait([channel])

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """Forget a disconnected socket (python-socketio hook)."""
        self._connected_at.pop(sid, None)
        super().basic_disconnect(sid, namespace, **kwargs)

    # ------------------------------------------------------------------ local view

    def namespace_rooms(self, nsp: str) -> Mapping[Any, Mapping[str, Any]] | None:
        """``room -> {sid: eio_sid}`` of a namespace (the node core's view of this node)."""
        rooms: Mapping[Any, Mapping[str, Any]] | None = self.rooms.get(nsp)
        return rooms

    def rooms_of(self, sid: str, nsp: str) -> list[Any]:
        """The rooms of a local socket, its own id room first (Node's ``Object.keys``)."""
        rooms: list[Any] = self.get_rooms(sid, nsp)
        if sid in rooms:
            rooms.remove(sid)
        return [sid, *rooms]

    def _is_local(self, sid: Any, nsp: str) -> bool:
        members = self.rooms.get(nsp, {}).get(None)
        return members is not None and sid in members

    async def describe(self, sid: str, nsp: str) -> RemoteSocket:
        """A local socket as ``fetch_sockets`` reports it: rooms, session data, handshake."""
        server = self.server
        eio_sid = self.eio_sid_from_sid(sid, nsp)
        environ = server.environ.get(eio_sid) if server is not None else None
        data: Any = None
        with contextlib.suppress(Exception):  # a socket that left meanwhile has no session
            data = await server.get_session(sid, namespace=nsp)
        return RemoteSocket(
            id=sid,
            rooms=tuple(self.rooms_of(sid, nsp)),
            data=data,
            handshake=handshake_of(environ, self._connected_at.get(sid)),
            nsp=nsp,
        )

    # ------------------------------------------------------------------ receiving

    def _on_batch(self, now: int, batch: list[list[bytes]]) -> None:
        """Handle the messages of one socket read, in order."""
        receive = self.core.receive
        for reply in batch:
            try:
                if len(reply) == 3:  # [b"message", channel, payload]
                    actions = receive(reply[1], reply[2], None, self)
                else:  # [b"pmessage", pattern, channel, payload]
                    actions = receive(reply[2], reply[3], reply[1], self)
                if actions:
                    self._perform(actions)
            except Exception as exc:  # one bad message must not cost the rest of the batch
                self._error(exc)

    def _perform(self, actions: Sequence[Action]) -> None:
        """Carry out what the core said; what needs awaiting runs in one task, in order."""
        later: list[Action] = []
        for action in actions:
            if isinstance(action, Deliver):
                self._inbox.append(action)
                self._wakeup.set()
            elif isinstance(action, Malformed):
                self._counts["malformed"] += 1
                self._error(action.error)
            elif isinstance(action, Ignored):
                self._counts[action.reason] += 1
                if action.warning is not None and action.reason not in self._warned:
                    self._warned.add(action.reason)
                    self._error(ConfigurationError(action.warning))
            elif isinstance(action, (Reply, AddExpected)):
                if not self._requester.take([action]) and isinstance(action, Reply):
                    self._counts["responses_ignored"] += 1
            else:
                later.append(action)
        if later:
            task = asyncio.get_running_loop().create_task(self._carry_out(later))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _carry_out(self, actions: list[Action]) -> None:
        try:
            for action in actions:
                await self._act(action)
        except Exception as exc:
            self._error(exc)

    async def _act(self, action: Action) -> None:
        match action:
            case Publish(channel=channel, payload=payload, sharded=sharded):
                publish(self._publisher, channel, payload, sharded)
            case Join(nsp=nsp, sids=sids, rooms=rooms):
                for sid in sids:
                    for room in rooms:
                        self._enter_local(sid, nsp, room)
            case Leave(nsp=nsp, sids=sids, rooms=rooms):
                for sid in sids:
                    for room in rooms:
                        if self._is_local(sid, nsp) and room is not None and room != sid:
                            self.basic_leave_room(sid, nsp, room)
            case Disconnect(nsp=nsp, sids=sids, close=close):
                for sid in sids:
                    if self.is_connected(sid, nsp):
                        await self._disconnect_local(sid, nsp, close)
            case Settle():
                await self._settle_subscriptions()
            case CallHook():
                await self._call_hook(action)
            case FetchLocal(nsp=nsp, sids=sids, respond=respond):
                sockets = [await self.describe(sid, nsp) for sid in sids]
                out = respond(sockets)
                publish(self._publisher, out.channel, out.payload, out.sharded)
            case DeliverWithAck():
                await self._deliver_with_ack(action)

    async def _call_hook(self, action: CallHook) -> None:
        if action.kind == "custom_request":
            value = self.custom_hook(action.args[0])
        else:
            event, *args = action.args
            handlers = self._handlers.get((action.nsp, event))
            if not handlers:
                return  # Node: a server without a listener never answers (RA #431)
            value = None
            for i, handler in enumerate(handlers):
                result = handler(*_js_to_py(args))
                if inspect.isawaitable(result):
                    result = await result
                if i == 0:
                    value = result
        if inspect.isawaitable(value):
            value = await value
        if action.respond is not None:
            out = action.respond(value)
            if out is not None:
                publish(self._publisher, out.channel, out.payload, out.sharded)

    async def _apply_local(self, step: Local) -> None:
        # A plan's local part (the sharded adapter applies its own socketsJoin/... after
        # publishing them).
        for action in step.actions(self):
            await self._act(action)

    async def _deliver_with_ack(self, action: DeliverWithAck) -> None:
        sids = select_sids(self, action.nsp, action.rooms, action.except_)
        count = action.on_count(len(sids))
        publish(self._publisher, count.channel, count.payload, count.sharded)
        event, *args = _js_to_py(action.data)
        publisher = self._publisher

        def callback(*ack: Any) -> None:
            out = action.on_ack(ack[0] if ack else None)
            publish(publisher, out.channel, out.payload, out.sharded)

        for sid in sids:
            await super().emit(event, tuple(args), action.nsp, room=sid, callback=callback)

    async def _deliver_loop(self) -> None:
        inbox = self._inbox
        wakeup = self._wakeup
        while True:
            if not inbox:
                wakeup.clear()
                await wakeup.wait()
                continue
            d = inbox.popleft()
            try:
                await self._deliver_local(
                    d.nsp,
                    _js_to_py(d.data),
                    d.rooms,
                    d.except_,
                    volatile=bool(d.flags.get("volatile")),
                )
            except Exception as exc:
                self._error(exc)

    async def _deliver_local(
        self,
        nsp: str,
        data: list[Any],
        rooms: list[Any],
        except_: Iterable[Any],
        *,
        volatile: bool = False,
    ) -> None:
        """Send ``[event, *args]`` to the local sockets of ``rooms`` (all when empty).

        ``except_`` names rooms (a socket id is a room, so 4.x/5.x socket ids work too).
        ``volatile`` drops the message for a socket whose transport still has packets
        waiting, as Node's volatile flag does for a transport that is not writable.
        """
        ns_rooms = self.rooms.get(nsp)
        if not ns_rooms:
            return
        # socket.io-adapter broadcast(): union of the named rooms' sockets, skipping the
        # except rooms' members and sockets that are not connected yet.
        skip: set[Any] = set()
        for name in except_:
            skip.add(name)
            members = ns_rooms.get(name)
            if members:
                skip.update(members)
        if rooms:
            targets: dict[str, str] = {}
            for room in rooms:
                members = ns_rooms.get(room)
                if members:
                    for sid, eio_sid in members.items():
                        if sid not in skip and sid not in targets:
                            targets[sid] = eio_sid
            recipients = list(targets.items())
        else:
            recipients = [(s, e) for s, e in ns_rooms.get(None, {}).items() if s not in skip]
        if not recipients:
            return
        server = self.server
        pkt = server.packet_class(sio_packet.EVENT, namespace=nsp, data=data)
        encoded = pkt.encode()
        if not isinstance(encoded, list):
            encoded = [encoded]
        eio_pkts = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in encoded]
        pending = self.pending_disconnect.get(nsp, ())
        for sid, eio_sid in recipients:
            if pending and sid in pending:
                continue
            if volatile and self._busy(eio_sid):
                self._counts["volatile_dropped"] += 1
                continue
            for p in eio_pkts:
                await server._send_eio_packet(eio_sid, p)
        self._counts["delivered"] += len(recipients)

    def _busy(self, eio_sid: str) -> bool:
        # python-engineio keeps each socket's outgoing packets in an asyncio queue that
        # its writer task drains; packets still queued mean the transport is not writable.
        try:
            queue = self.server.eio._get_socket(eio_sid).queue
        except Exception:
            return False
        return bool(queue.qsize())

    def _enter_local(self, sid: str, nsp: str, room: Any) -> None:
        if not self._is_local(sid, nsp) or room is None:
            return
        try:
            self.basic_enter_room(sid, nsp, room)
        except ValueError as exc:
            # python-socketio refuses to put a socket in another socket's id room.
            self._error(exc)

    async def _disconnect_local(self, sid: str, nsp: str, close: bool) -> None:
        server = self.server
        if close:
            eio_sid = self.eio_sid_from_sid(sid, nsp)
            await server.disconnect(sid, namespace=nsp, ignore_queue=True)
            if eio_sid is not None:
                # socket.disconnect(true) closes the whole Engine.IO connection.
                with contextlib.suppress(Exception):
                    await server.eio.disconnect(eio_sid)
        else:
            await server.disconnect(sid, namespace=nsp, ignore_queue=True)

    # ------------------------------------------------------------------ python-socketio API

    async def pre_connect(self, eio_sid: str, namespace: str) -> Any:
        """Register a connecting socket (joins the namespace in the cluster if new)."""
        if namespace not in self.core.namespaces and self._started:
            self._join_namespace(namespace)
        sid = await super().pre_connect(eio_sid, namespace)
        if sid is not None:
            self._connected_at[sid] = time.time()
        await self._settle_subscriptions()
        return sid

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """Emit to local sockets and publish the broadcast to the other nodes.

        Beyond python-socketio's arguments: ``volatile``, ``compress`` and ``local`` flags
        (``local=True`` does not publish), as in ``io.local.volatile.emit``.

        Raises:
            UnsupportedOperation: A callback (ack) for sockets on other nodes where the
                dialect cannot carry acknowledgements (socket.io-redis 4.x/5.x).
        """
        room = to if to is not None else room
        args = _args(data)
        rooms = _as_list(room)
        skips = _as_list(skip_sid)
        if callback is not None:
            if len(rooms) == 1 and self._is_local(rooms[0], namespace):
                await super().emit(
                    event, data, namespace, room=rooms[0], skip_sid=skip_sid, callback=callback
                )
                return
            if not self.wire.capabilities.acks_across_nodes:
                raise UnsupportedOperation(
                    f"{self.wire.label} cannot carry acknowledgements across nodes; a "
                    "callback is only possible for a socket connected to this node"
                )
            self._spawn(self._remote_callback(event, args, namespace, rooms, skips, callback))
            return
        flags: dict[str, Any] = {}
        if kwargs:
            for flag in ("volatile", "compress", "local"):
                if kwargs.get(flag) is not None:
                    flags[flag] = kwargs[flag]
        local_only = bool(kwargs.get("ignore_queue")) or bool(flags.get("local"))
        # A socket id is unique in the cluster: a broadcast to one local socket needs no
        # other node (Node publishes it anyway; every other node drops it unread).
        single_local = len(rooms) == 1 and self._is_local(rooms[0], namespace)
        if not local_only and not single_local:
            await self._publish_broadcast(namespace, [event, *args], rooms, skips, flags)
        if self.rooms.get(namespace):
            await self._deliver_local(
                namespace, [event, *args], rooms, skips, volatile=bool(flags.get("volatile"))
            )

    async def _remote_callback(
        self,
        event: str,
        args: list[Any],
        nsp: str,
        rooms: list[Any],
        skips: list[Any],
        callback: Any,
    ) -> None:
        # python-socketio's emit(..., callback=) / call() to sockets on other nodes: an 8.x
        # broadcast with acks; the callback gets each client's (first) ack argument.
        try:
            acks = await self.emit_with_ack(
                event,
                tuple(args),
                to=rooms or None,
                skip_sid=skips or None,
                namespace=nsp,
                timeout=_ACK_TIMEOUT,
            )
        except RequestTimeout as exc:
            acks = list(exc.partial or [])
        for ack in acks:
            result = callback(*_args(ack))
            if inspect.isawaitable(result):
                await result

    async def _publish_broadcast(
        self, nsp: str, data: list[Any], rooms: list[Any], except_: list[Any], flags: dict[str, Any]
    ) -> None:
        if not self._started:
            await self.start()
        out = self.wire.broadcast(self.uid, nsp, data, rooms, except_, flags)
        publish(self._publisher, out.channel, out.payload, out.sharded)
        self._published += 1
        if self._publisher.congested:
            await self._publisher.wait_writable()

    async def enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        """Add a socket to a room; a socket on another node joins through ``remote_join``."""
        if self._is_local(sid, namespace) or eio_sid is not None:
            self.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
            await self._settle_subscriptions()
        else:
            await self.remote_join(sid, room, namespace=namespace)

    async def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Remove a socket from a room; a socket on another node leaves through ``remote_leave``."""
        if self._is_local(sid, namespace):
            self.basic_leave_room(sid, namespace, room)
        else:
            await self.remote_leave(sid, room, namespace=namespace)

    async def close_room(self, room: Any, namespace: str) -> None:
        """Remove every socket of the cluster from ``room``."""
        remote = [
            sid
            for sid in await self.clients([room], namespace=namespace)
            if not self._is_local(sid, namespace)
        ]
        self.basic_close_room(room, namespace)
        results = await asyncio.gather(
            *(self.remote_leave(sid, room, namespace=namespace) for sid in remote),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, (RequestTimeout, SocketNotFound)):
                # the socket left or disconnected meanwhile: nothing to remove
                continue
            if isinstance(result, BaseException):
                raise result

    async def can_disconnect(self, sid: str, namespace: str) -> bool:
        """Local sockets: whether python-socketio may disconnect it here. Remote sockets are
        disconnected through ``remote_disconnect`` (False is returned: nothing to do here)."""
        if self._is_local(sid, namespace):
            result: bool = await super().can_disconnect(sid, namespace)
            return result
        try:
            await self.remote_disconnect(sid, namespace=namespace)
        except (RequestTimeout, SocketNotFound):
            self._get_logger().info("disconnect: no node has socket %s in %s", sid, namespace)
        return False

    # ------------------------------------------------------------------ cluster requests

    async def _ready(self, namespace: str) -> None:
        if not self._started:
            await self.start()
        # Asking in a namespace makes this node one of its nodes (Node: `io.of(nsp)`).
        self._join_namespace(namespace)
        await self._settle_subscriptions()

    def _local_ids(self, nsp: str, rooms: Sequence[Any], except_: Sequence[Any] = ()) -> list[str]:
        return select_sids(self, nsp, rooms, except_)

    async def fetch_sockets(
        self,
        *,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
        local: bool = False,
    ) -> list[RemoteSocket]:
        """Every socket of the cluster in any of ``rooms`` (all when None), minus the members
        of ``except_rooms`` (socket.io 4 ``fetchSockets()``).

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        rooms_l, except_l = list(rooms or ()), list(except_rooms or ())
        mine = [
            await self.describe(s, namespace) for s in self._local_ids(namespace, rooms_l, except_l)
        ]
        if local:
            return mine
        await self._ready(namespace)
        return await self._requester.run(
            self.wire.fetch_sockets(namespace, self.uid, rooms_l, except_l, mine)
        )

    async def sockets_join(
        self,
        room_or_rooms: Any,
        *,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
    ) -> None:
        """Make every matching socket of the cluster join ``room_or_rooms``."""
        await self._ready(namespace)
        await self._requester.run(
            self.wire.sockets_join(
                namespace,
                self.uid,
                list(rooms or ()),
                list(except_rooms or ()),
                _as_list(room_or_rooms),
            )
        )

    async def sockets_leave(
        self,
        room_or_rooms: Any,
        *,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
    ) -> None:
        """Make every matching socket of the cluster leave ``room_or_rooms``."""
        await self._ready(namespace)
        await self._requester.run(
            self.wire.sockets_leave(
                namespace,
                self.uid,
                list(rooms or ()),
                list(except_rooms or ()),
                _as_list(room_or_rooms),
            )
        )

    async def disconnect_sockets(
        self,
        *,
        close: bool = False,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
    ) -> None:
        """Disconnect every matching socket of the cluster (``close``: their connections)."""
        await self._ready(namespace)
        await self._requester.run(
            self.wire.disconnect_sockets(
                namespace, self.uid, list(rooms or ()), list(except_rooms or ()), close
            )
        )

    def on_server_side_emit(
        self, event: str, namespace: str = "/"
    ) -> Callable[[ServerSideEmitHandler], ServerSideEmitHandler]:
        """Register a handler for ``server_side_emit(event, ...)`` from other nodes; its
        return value (sync or async) is the ack. Usable as a decorator."""

        def register(handler: ServerSideEmitHandler) -> ServerSideEmitHandler:
            self._handlers.setdefault((namespace, event), []).append(handler)
            return handler

        return register

    async def server_side_emit(self, event: str, *args: Any, namespace: str = "/") -> None:
        """Send ``event`` to the other server nodes (socket.io 4 ``serverSideEmit``)."""
        await self._ready(namespace)
        await self._requester.run(
            self.wire.server_side_emit(namespace, self.uid, [event, *args], ack=False)
        )

    async def server_side_emit_with_ack(
        self, event: str, *args: Any, namespace: str = "/", timeout: float | None = None
    ) -> list[Any]:
        """Send ``event`` to the other server nodes and collect each one's reply.

        Raises:
            RequestTimeout: Not every node answered (``partial``: the replies so far).
        """
        await self._ready(namespace)
        plan = self.wire.server_side_emit(namespace, self.uid, [event, *args], ack=True)
        if timeout is None:
            result: list[Any] = await self._requester.run(plan)
            return result
        return list(
            await Requester(self._publisher, self._engine, timeout=timeout, counted=True).run(plan)
        )

    async def emit_with_ack(
        self,
        event: str,
        data: Any = None,
        *,
        to: Any = None,
        skip_sid: Any = None,
        namespace: str = "/",
        timeout: float = 5.0,
    ) -> list[Any]:
        """Broadcast with acknowledgements: every client's (first) ack argument, from this
        node's sockets and the other nodes' (socket.io 4 ``io.timeout(t).emit(..., cb)``).

        Raises:
            RequestTimeout: ``operation has timed out``; ``partial`` holds the acks so far.
            UnsupportedOperation: The dialect cannot carry acknowledgements (4.x/5.x).
        """
        args = _args(data)
        rooms, skips = _as_list(to), _as_list(skip_sid)
        plan = self.wire.emit_with_ack(
            namespace, self.uid, [event, *args], rooms, skips, {}, timeout
        )
        await self._ready(namespace)
        local_acks: list[Any] = []
        sids = select_sids(self, namespace, rooms, skips)
        done = asyncio.get_running_loop().create_future()

        def callback(*ack: Any) -> None:
            local_acks.append(ack[0] if ack else None)
            if len(local_acks) == len(sids) and not done.done():
                done.set_result(None)

        for sid in sids:
            await super().emit(event, tuple(args), namespace, room=sid, callback=callback)
        if not sids:
            done.set_result(None)
        remote_task = asyncio.ensure_future(self._requester.run(plan))
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
            remote = await remote_task
        except (TimeoutError, RequestTimeout) as exc:
            partial = exc.partial if isinstance(exc, RequestTimeout) else []
            if not remote_task.done():
                try:
                    partial = await remote_task
                except RequestTimeout as late:
                    partial = late.partial or []
            raise RequestTimeout(
                "operation has timed out",
                partial=[*local_acks, *(partial or [])],
                answered=len(local_acks) + len(partial or []),
            ) from None
        return [*local_acks, *remote]

    async def clients(
        self, rooms: Iterable[Any] | None = None, *, namespace: str = "/"
    ) -> list[str]:
        """Socket ids in any of ``rooms`` (every socket when None) across the cluster.

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        rooms_l = list(rooms or ())
        await self._ready(namespace)
        return await self._requester.run(
            self.wire.clients(namespace, self.uid, rooms_l, self._local_ids(namespace, rooms_l))
        )

    async def all_rooms(self, *, namespace: str = "/") -> list[Any]:
        """Every room of every node, socket-id rooms included (as the Node adapters report).

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        await self._ready(namespace)
        local = [r for r in self.rooms.get(namespace, {}) if r is not None]
        return await self._requester.run(self.wire.all_rooms(namespace, self.uid, local))

    async def client_rooms(self, sid: str, *, namespace: str = "/") -> list[Any]:
        """The rooms of socket ``sid``, wherever it is connected (its own id room first).

        Raises:
            RequestTimeout: 4.x/5.x: no node has that socket (nobody answers).
            SocketNotFound: 8.x: no node has that socket.
        """
        if self._is_local(sid, namespace):
            return self.rooms_of(sid, namespace)
        await self._ready(namespace)
        return await self._requester.run(self.wire.client_rooms(namespace, self.uid, sid))

    async def remote_join(self, sid: str, room: Any, *, namespace: str = "/") -> None:
        """Make socket ``sid`` join ``room`` on whichever node it is connected to.

        Raises:
            RequestTimeout: 4.x/5.x: no node has that socket.
            SocketNotFound: 8.x: no node has that socket.
        """
        if self.is_connected(sid, namespace):
            self._enter_local(sid, namespace, room)
            await self._settle_subscriptions()
            return
        await self._ready(namespace)
        await self._requester.run(self.wire.remote_join(namespace, self.uid, sid, room))

    async def remote_leave(self, sid: str, room: Any, *, namespace: str = "/") -> None:
        """Make socket ``sid`` leave ``room`` on whichever node it is connected to.

        Raises:
            RequestTimeout: 4.x/5.x: no node has that socket.
            SocketNotFound: 8.x: no node has that socket.
        """
        if self.is_connected(sid, namespace):
            self.basic_leave_room(sid, namespace, room)
            return
        await self._ready(namespace)
        await self._requester.run(self.wire.remote_leave(namespace, self.uid, sid, room))

    async def remote_disconnect(
        self, sid: str, close: bool = False, *, namespace: str = "/"
    ) -> None:
        """Disconnect socket ``sid`` wherever it is (``close``: its whole connection).

        Raises:
            RequestTimeout: 4.x/5.x: no node has that socket.
            SocketNotFound: 8.x: no node has that socket.
        """
        if self.is_connected(sid, namespace):
            await self._disconnect_local(sid, namespace, close)
            return
        await self._ready(namespace)
        await self._requester.run(self.wire.remote_disconnect(namespace, self.uid, sid, close))

    async def custom_request(self, data: Any, *, namespace: str = "/") -> list[Any]:
        """Ask every node's ``custom_hook`` (this one's too); replies in arrival order.

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds the replies so far.
            UnsupportedOperation: 8.x has no customRequest (use
                :meth:`server_side_emit_with_ack`).
        """
        await self._ready(namespace)
        return await self._requester.run(self.wire.custom_request(namespace, self.uid, data))

    async def server_count(self, *, namespace: str = "/") -> int:
        """How many nodes (this one included) serve ``namespace`` in the cluster."""
        await self._ready(namespace)
        return await self._requester.run(self.wire.server_count(namespace))

    node_count = server_count
