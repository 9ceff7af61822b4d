"""What the two adapter shells share: options, the local view, carrying out actions.

:class:`~siotools.AsyncRedisAdapter` (asyncio) and :class:`~siotools.RedisAdapter`
(threads, eventlet, gevent) are thin shells over the same pure node core
(:class:`~siotools.node.NodeCore`) and dialect objects. :class:`NodeShell` holds
everything that neither awaits nor blocks: the options and the transport objects, the
counters, the :class:`~siotools.dialects.base.LocalView` over python-socketio's rooms,
the sorting of the core's actions, who gets a delivery and with which packets, the plans
of the cluster operations. A shell adds only how it waits (``await`` or a blocking call).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as _dt
import logging
import secrets
import string
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import socketio.base_manager
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from siotools.dialects import make_dialect, resolve_dialect
from siotools.dialects.base import (
    Action,
    AddExpected,
    CallHook,
    Deliver,
    DeliverWithAck,
    Ignored,
    Join,
    Leave,
    Local,
    Malformed,
    Plan,
    Publish,
    RemoteSocket,
    Reply,
    Subscriptions,
    select_sids,
)
from siotools.dialects.detect import conflict
from siotools.exceptions import (
    ConfigurationError,
    RequestTimeout,
    SiotoolsError,
    UnsupportedOperation,
)
from siotools.metrics import MetricsRecorder, NodeMetrics
from siotools.node import NodeCore
from siotools.protocol import U64, UNDEFINED, Dialect, TypedArray, Undefined
from siotools.requester import Requester, Transport, detect_on, publish
from siotools.transport.cluster_pubsub import ClusterSubscriber
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import LinkEvent, settle
from siotools.transport.requests import RequestEngine

__all__ = [
    "ACK_TIMEOUT",
    "CustomHook",
    "EmitRoute",
    "ErrorCallback",
    "NodeShell",
    "ServerSideEmitHandler",
    "as_list",
    "emit_args",
    "handshake_of",
    "js_to_py",
    "new_uid",
    "timed_out",
]

CustomHook = Callable[[Any], Any]
"""``hook(data) -> reply`` (sync or async): this node's answer to ``custom_request``."""

ErrorCallback = Callable[[BaseException], Any]
"""Called with every error the adapter meets (the Node adapter's ``'error'`` event)."""

ServerSideEmitHandler = Callable[..., Any]
"""``handler(*args) -> ack`` (sync or async) for a ``server_side_emit`` event."""

_UID_ALPHABET = string.ascii_letters + string.digits
ACK_TIMEOUT = 60.0
"""python-socketio's ``call()`` default, for callbacks to sockets on other nodes."""

# python-socketio's BaseManager: its basic_* helpers are what the Admin UI patches.
_BASE = socketio.base_manager.BaseManager


def new_uid() -> str:
    """A node id as the Node adapters make them (6 random alphanumerics)."""
    return "".join(secrets.choice(_UID_ALPHABET) for _ in range(6))


def _default_hook(data: Any) -> Any:
    # socket.io-redis: `this.customHook = function(data, cb){ cb(null); }`
    return None


def js_to_py(value: Any) -> Any:
    """Map the JS-only values a Node node may send onto what python-socketio can encode."""
    t = type(value)
    if t is str or t is int or t is float or t is bool or value is None or t is bytes:
        return value
    if t is list:
        return [js_to_py(v) for v in value]
    if t is dict:
        # JSON.stringify drops undefined-valued keys, as a Node receiver's parser would.
        return {k: js_to_py(v) for k, v in value.items() if v is not UNDEFINED}
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


def as_list(value: Any) -> list[Any]:
    """``None`` -> ``[]``, a collection -> its items, anything else -> ``[value]``."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return [value]


def emit_args(data: Any) -> list[Any]:
    """python-socketio's ``data``: a tuple is several arguments, anything else one
    (``None``: none)."""
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


def timed_out(local_acks: list[Any], partial: list[Any] | None) -> RequestTimeout:
    """The error of an ``emit_with_ack`` that did not get every ack in time."""
    partial = partial or []
    return RequestTimeout(
        "operation has timed out",
        partial=[*local_acks, *partial],
        answered=len(local_acks) + len(partial),
    )


class _Stats(Mapping[str, int]):
    """A live, read-only view of an adapter's counters."""

    def __init__(self, adapter: NodeShell) -> None:
        self._adapter = adapter

    def __getitem__(self, name: str) -> int:
        return self._adapter.counter(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(("received", "decoded", "published", *self._adapter.counters)))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr(dict(self))


@dataclass(frozen=True, slots=True)
class EmitRoute:
    """Where a python-socketio ``emit`` goes.

    Attributes:
        args: The event's arguments.
        rooms: The target rooms (all sockets when empty).
        skips: Rooms (socket ids) to leave out.
        flags: ``volatile``/``compress``/``local`` as given.
        ack: ``"local"``: a callback for one local socket (python-socketio does it);
            ``"remote"``: a callback for sockets elsewhere (a broadcast with acks);
            ``None``: no callback.
        publish: Whether the other nodes get the broadcast.
    """

    args: list[Any]
    rooms: list[Any]
    skips: list[Any]
    flags: dict[str, Any]
    ack: Literal["local", "remote"] | None
    publish: bool


class NodeShell:
    """The part of a cluster-node adapter that neither awaits nor blocks.

    Mixed in before python-socketio's ``Manager``/``AsyncManager``; a shell provides
    ``_subscribe``, ``_subscribe_channel``, ``_unsubscribe_channel``, ``_publish_raw``,
    ``_queue_delivery``, ``_later`` and ``_spawn``.

    Args:
        url: Redis URL (``redis://host:port/db``, ``rediss://``, ``unix://``).
        host: Redis host, when no URL is given.
        port: Redis port, when no URL is given.
        key: The channel prefix shared by the cluster (``socket.io`` by default).
        pub_client: A ``redis.Redis`` or ``redis.asyncio.Redis`` whose settings (address,
            password, TLS) the adapter's publishing connection uses.
        sub_client: The same for the subscribing connection.
        dialect: What the cluster speaks: ``"legacy"`` (socket.io-redis 5.x, notepack 2;
            the default), ``"legacy-lite"`` (4.x, msgpack-lite) or ``"current"``
            (@socket.io/redis-adapter 8.x classic); a :class:`~siotools.Dialect` works too.
        requests_timeout: Seconds to wait for the other nodes' answers (default: 1.0 for
            4.x/5.x as in socket.io-redis 4.x, 5.0 for 8.x as in RA 8.3).
        with_channel_multiplexing: 4.x/5.x: publish single-room broadcasts on the room's
            channel and SUBSCRIBE to the channel of every room with a local member
            (socket.io-redis 4.x default). ``False`` publishes everything on ``key#nsp#``.
        subscription_mode: 4.x/5.x: ``"subscribe"`` (4.x: SUBSCRIBE ``key#nsp#`` plus the
            room channels) or ``"psubscribe"`` (5.x: PSUBSCRIBE ``key#nsp#*``).
        publish_on_specific_response_channel: 8.x: answer on the requester's own response
            channel (RA ``publishOnSpecificResponseChannel``).
        parser: 8.x: ``"msgpack"`` (notepack 3) or ``"json"`` for broadcasts.
        max_payload: Messages over this many bytes are dropped undecoded and counted as
            ``oversized`` (reported once to the error callbacks); None: no limit.
        namespaces: Namespaces to join the cluster in at start, in addition to ``/`` and
            the server's registered ones; others are joined when a client connects.
        custom_hook: This node's answer to ``custom_request`` (see :data:`CustomHook`).
        logger: A logger for the manager (python-socketio's own convention).
    """

    if TYPE_CHECKING:
        # python-socketio's manager state and helpers (the class this one is mixed into).
        rooms: dict[str, dict[Any, Any]]
        server: Any
        pending_disconnect: dict[str, Any]

        def get_rooms(self, sid: str, namespace: str) -> list[Any]: ...
        def is_connected(self, sid: str, namespace: str) -> bool: ...
        def eio_sid_from_sid(self, sid: str, namespace: str) -> Any: ...
        def _get_logger(self) -> logging.Logger: ...

    _started: bool

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
        max_payload: int | None = 64 * 2**20,
        cluster: bool | None = None,
        namespaces: Iterable[str] = (),
        custom_hook: CustomHook | None = None,
        logger: Any = None,
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
            max_payload=max_payload,
        )
        if requests_timeout is None:
            requests_timeout = self.wire.default_timeout
        if not requests_timeout > 0 or requests_timeout == float("inf"):
            raise ConfigurationError("requests_timeout must be a positive number of seconds")
        self._pub_client = pub_client
        self._sub_client = sub_client
        self._made_clients: list[Any] = []  # made by the properties: closed by close()
        # One Redis, or a Redis Cluster (asked for, or needed by sharded pub/sub).
        self._transport = endpoint_of(url, host, port, pub_client, cluster)
        self._sub_transport = self._transport
        if sub_client is not None and not self._transport.uses_cluster(self.wire):
            self._sub_transport = Transport(None, sub_client, False)
        self._pub_endpoint = self._transport.endpoint
        self._sub_endpoint = self._sub_transport.endpoint
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
        self._metrics = MetricsRecorder(self.grammar)
        self.core = NodeCore(self.wire, self.uid, metrics=self._metrics)
        self._extra_namespaces = list(namespaces)
        self._error_callbacks: list[ErrorCallback] = []
        self._handlers: dict[tuple[str, str], list[ServerSideEmitHandler]] = {}
        self._counts: collections.Counter[str] = collections.Counter()
        self._warned: set[str] = set()
        self._connected_at: dict[str, float] = {}
        # Broadcasts published are counted in the metrics' cell of their namespace, never
        # in a Counter (an update costs as much as a quarter of the rest of the path).
        self._stats = _Stats(self)
        self._started = False
        self._closed = False
        self._pending_subs: list[asyncio.Future[None]] = []
        self._make_transport()

    def _make_transport(self) -> None:
        """New Redis connections (not opened yet) and an empty pending-request table."""
        self._engine = RequestEngine()
        self._publisher = self._transport.publisher(
            self.wire, name=f"{self.uid}-pub", on_error=self._error
        )
        self._subscriber = self._sub_transport.subscriber(
            self.wire,
            on_batch=self._on_batch,
            name=f"{self.uid}-sub",
            on_error=self._error,
            on_event=self._link_event,
        )
        self._requester = Requester(
            self._publisher,
            self._engine,
            timeout=self.requests_timeout,
            counted=True,
            local=self._apply_local,
            metrics=self._metrics,
        )

    async def _apply_local(self, step: Local) -> None:
        # A plan's local part (the sharded adapter applies its own socketsJoin/... right
        # after publishing them): joins and leaves at once, disconnects in the background.
        waiting = [a for a in step.actions(self) if not self._act_now(a)]
        if waiting:
            self._later(waiting)

    def _link_event(self, event: LinkEvent) -> None:
        # The loss itself reaches the error callbacks from the transport ("Lost the
        # connection ... reconnecting"); here it is counted, and so is the way back.
        self._counts[f"subscription_{event.kind}"] += 1
        if event.kind == "restored":
            self._counts["subscription_gap_ms"] += round((event.gap or 0.0) * 1000)
            self._get_logger().warning(
                "siotools adapter %s resubscribed at %s after a %.3fs gap",
                self.uid,
                event.url,
                event.gap or 0.0,
            )

    # ------------------------------------------------------------------ the Redis side
    # These run where the transport lives (the asyncio loop); a shell whose callers are
    # elsewhere overrides the un-suffixed hooks to hand them over.

    def _subscribe(self, subs: Subscriptions) -> None:
        self._subscribe_now(subs)

    def _subscribe_channel(self, channel: bytes) -> None:
        if self.wire.sharded_pubsub:
            self._track(self._sharded_subscriber().ssubscribe_nowait([channel]))
        else:
            self._track(self._subscriber.subscribe_nowait([channel]))

    def _unsubscribe_channel(self, channel: bytes) -> None:
        if self.wire.sharded_pubsub:
            self._sharded_subscriber().sunsubscribe_nowait([channel])
        else:
            self._subscriber.unsubscribe_nowait([channel])

    def _publish_raw(self, channel: bytes, payload: bytes, sharded: bool = False) -> None:
        publish(self._publisher, channel, payload, sharded)

    def _respond(self, out: Publish) -> None:
        """Publish an answer to another node's request (counted as a response)."""
        self._metrics.published_response(out.channel, len(out.payload))
        self._publish_raw(out.channel, out.payload, out.sharded)

    def _sharded_subscriber(self) -> ClusterSubscriber:
        sub = self._subscriber
        if not isinstance(sub, ClusterSubscriber):  # pragma: no cover - Transport's job
            raise ConfigurationError("sharded pub/sub needs the Redis Cluster transport")
        return sub

    def _subscribe_now(self, subs: Subscriptions) -> None:
        sub = self._subscriber
        if subs.patterns:
            self._track(sub.psubscribe_nowait(list(subs.patterns)))
        if subs.channels:
            self._track(sub.subscribe_nowait(list(subs.channels)))
        if subs.shard_channels:
            # Each channel on its own: sharded channels of one SSUBSCRIBE share a slot.
            for channel in subs.shard_channels:
                self._track(self._sharded_subscriber().ssubscribe_nowait([channel]))

    def _track(self, fut: asyncio.Future[None] | None) -> None:
        if fut is not None:
            self._pending_subs.append(fut)

    async def _settle_subscriptions(self) -> None:
        """Wait until Redis confirmed the subscriptions made so far."""
        pending, self._pending_subs = self._pending_subs, []
        for fut in pending:
            # A refused (P)SUBSCRIBE raises SubscriptionRefused (a deaf node must not start).
            await settle(fut)

    async def _join_cluster(self) -> None:
        """Connect and subscribe in every known namespace (on the transport's loop)."""
        self._closed = False
        await self._publisher.start()
        await self._subscriber.start()
        self._started = True
        self._on_started()
        for nsp in self._initial_namespaces():
            self._join_namespace(nsp)
        self._subscribe_rooms()
        await self._settle_subscriptions()
        await self._check_generations()
        self._get_logger().info(
            "siotools adapter %s joined the cluster at %s (key %r)",
            self.uid,
            self._pub_endpoint.url,
            self.prefix,
        )

    async def _check_generations(self) -> None:
        # Another adapter generation on this prefix misreads our requests and we theirs:
        # say so at once (passively: PUBSUB CHANNELS, nothing is published; on a Redis
        # Cluster of every master, as each shows only its own subscribers). An ACL user
        # without +pubsub|channels skips the check; it is advice, not a duty.
        try:
            found = await detect_on(self._publisher, self.prefix)
        except SiotoolsError as exc:
            self._get_logger().info(
                "siotools adapter %s: generation check skipped: %s", self.uid, exc
            )
            return
        warning = conflict(found, self.dialect)
        if warning is not None:
            self._error(ConfigurationError(warning))

    async def _close_transport(self) -> None:
        """Cancel pending requests, unsubscribe and close the connections."""
        self._engine.cancel_all()
        await self._subscriber.close()
        await self._publisher.close()
        while self._made_clients:
            client = self._made_clients.pop()
            closing = getattr(client, "aclose", None) or client.close
            result = closing()
            if hasattr(result, "__await__"):
                await result
        self._started = False

    def _on_started(self) -> None:
        """Called on the loop once the connections are up, before subscribing."""

    # ------------------------------------------------------------------ hooks of a shell

    def _queue_delivery(self, action: Deliver) -> None:
        raise NotImplementedError

    def _later(self, actions: list[Action]) -> None:
        raise NotImplementedError

    def _spawn(self, awaitable: Any) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ counters

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
            return self._metrics.broadcasts_published()
        return self._counts[name]

    @property
    def metrics(self) -> NodeMetrics:
        """This node's figures now, as a frozen :class:`~siotools.metrics.NodeMetrics`:
        messages and bytes published and received by kind and namespace, the fan-out of
        received broadcasts to local sockets, requests sent by type with their latency
        and timeouts, malformed and ignored frames, link events, reconnects and
        subscriptions.

        Cheap (dict copies, no I/O, no lock), callable from any thread; for Prometheus,
        :class:`~siotools.metrics.NodeCollector` reads it at each scrape.
        """
        return self._metrics.snapshot(
            node=self.uid,
            prefix=self.prefix,
            dialect=self.wire.label,
            counts=self._counts,
            pending=len(self._engine),
            publisher=self._publisher,
            subscriber=self._subscriber,
        )

    @property
    def stats(self) -> Mapping[str, int]:
        """Live counters: ``received``, ``decoded``, ``published``, ``delivered``,
        ``malformed``, ``oversized``, ``ignored``, ``errors``, ``subscription_lost``,
        ``subscription_restored``, ``subscription_gap_ms``... (0 for a counter never
        incremented)."""
        return self._stats

    def _client(self, side: Literal["pub", "sub"], factory: Callable[..., Any]) -> Any:
        # The application's own Redis client with the adapter's settings, made once.
        attr = "_pub_client" if side == "pub" else "_sub_client"
        client = getattr(self, attr)
        if client is None:
            endpoint = self._pub_endpoint if side == "pub" else self._sub_endpoint
            client = factory(**endpoint.redis_py_kwargs())
            setattr(self, attr, client)
            self._made_clients.append(client)
        return client

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
                if hasattr(result, "__await__"):
                    self._spawn(result)
            except Exception:
                self._get_logger().exception("error callback failed")

    def on_server_side_emit(
        self, event: str, namespace: str = "/"
    ) -> Callable[[ServerSideEmitHandler], ServerSideEmitHandler]:
        """Register a handler for ``server_side_emit(event, ...)`` from other nodes; its
        return value is the ack. Usable as a decorator."""

        def register(handler: ServerSideEmitHandler) -> ServerSideEmitHandler:
            self._handlers.setdefault((namespace, event), []).append(handler)
            return handler

        return register

    # ------------------------------------------------------------------ subscriptions

    def _join_namespace(self, nsp: str) -> None:
        subs = self.core.join_namespace(nsp)
        if subs is not None:
            self._subscribe(subs)

    def _subscribe_rooms(self) -> None:
        # Rooms that got members before the start (sockets connect before the loop ran).
        for nsp, rooms in list(self.rooms.items()):
            self._join_namespace(nsp)
            for room in list(rooms):
                if room is not None:
                    self._room_added(nsp, room)

    def _room_added(self, nsp: str, room: Any) -> None:
        # A socket's own id room is private (socket.io-adapter: `sids.has(room)`).
        private = room in (self.rooms.get(nsp, {}).get(None) or {})
        channel = self.core.room_added(nsp, room, private=private)
        if channel is not None:
            self._subscribe_channel(channel)

    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        """Add a local socket to a room (and SUBSCRIBE to the room's channel if the dialect
        listens per room and the room is new here)."""
        ns_rooms = self.rooms.get(namespace)
        new_room = room is not None and (ns_rooms is None or room not in ns_rooms)
        _BASE.basic_enter_room(self, sid, namespace, room, eio_sid=eio_sid)
        if self._started:
            if namespace not in self.core.namespaces:
                self._join_namespace(namespace)
            if new_room:
                self._room_added(namespace, room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Remove a local socket from a room (UNSUBSCRIBE when the room empties here)."""
        _BASE.basic_leave_room(self, sid, namespace, room)
        if room is not None and self._started and room not in self.rooms.get(namespace, {}):
            channel = self.core.room_removed(namespace, room)
            if channel is not None:
                self._unsubscribe_channel(channel)

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """Forget a disconnected socket (python-socketio hook)."""
        self._connected_at.pop(sid, None)
        _BASE.basic_disconnect(self, sid, namespace, **kwargs)

    def _connecting(self, namespace: str) -> None:
        # A socket connecting in a namespace new to this node joins it in the cluster.
        if namespace not in self.core.namespaces and self._started:
            self._join_namespace(namespace)

    def _connected(self, sid: Any) -> Any:
        if sid is not None:
            self._connected_at[sid] = time.time()
        return sid

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

    def _local_ids(self, nsp: str, rooms: Sequence[Any], except_: Sequence[Any] = ()) -> list[str]:
        return select_sids(self, nsp, rooms, except_)

    def _remote_socket(self, sid: str, nsp: str, data: Any) -> RemoteSocket:
        server = self.server
        eio_sid = self.eio_sid_from_sid(sid, nsp)
        environ = server.environ.get(eio_sid) if server is not None else None
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
        """Carry out what the core said; what may wait is handed to :meth:`_later`."""
        later: list[Action] = []
        for action in actions:
            if isinstance(action, Deliver):
                self._queue_delivery(action)
            elif isinstance(action, Malformed):
                self._counts["malformed"] += 1
                self._error(action.error)
            elif isinstance(action, Ignored):
                self._counts[action.reason] += 1
                self._metrics.ignored[action.reason] += 1
                if action.warning is not None and action.reason not in self._warned:
                    self._warned.add(action.reason)
                    self._error(ConfigurationError(action.warning))
            elif isinstance(action, (Reply, AddExpected)):
                if not self._requester.take([action]) and isinstance(action, Reply):
                    self._counts["responses_ignored"] += 1
                    self._metrics.ignored["responses_ignored"] += 1
            else:
                later.append(action)
        if later:
            self._later(later)

    def _act_now(self, action: Action) -> bool:
        """Carry out an action that never waits; False for the others."""
        if isinstance(action, Publish):
            self._respond(action)
        elif isinstance(action, Join):
            for sid in action.sids:
                for room in action.rooms:
                    self._enter_local(sid, action.nsp, room)
        elif isinstance(action, Leave):
            for sid in action.sids:
                for room in action.rooms:
                    if self._is_local(sid, action.nsp) and room is not None and room != sid:
                        self.basic_leave_room(sid, action.nsp, room)
        else:
            return False
        return True

    def _hook_calls(self, action: CallHook) -> list[tuple[Callable[..., Any], list[Any]]]:
        """The calls that answer a hook request, the first one's result being the answer
        (none: a server without a listener never answers, RA #431)."""
        if action.kind == "custom_request":
            return [(self.custom_hook, [action.args[0]])]
        event, *args = action.args
        handlers = self._handlers.get((action.nsp, event)) or []
        return [(handler, js_to_py(args)) for handler in handlers]

    def _hook_answer(self, action: CallHook, value: Any) -> None:
        if action.respond is not None:
            out = action.respond(value)
            if out is not None:
                self._respond(out)

    def _ack_fanout(
        self, action: DeliverWithAck
    ) -> tuple[list[str], str, tuple[Any, ...], Callable[..., None]]:
        """A broadcast with acks from another node: publishes the client count and
        returns ``(sids, event, args, callback)`` for the local emits."""
        sids = select_sids(self, action.nsp, action.rooms, action.except_)
        self._respond(action.on_count(len(sids)))
        event, *args = js_to_py(action.data)
        respond = self._respond

        def callback(*ack: Any) -> None:
            respond(action.on_ack(ack[0] if ack else None))

        return sids, event, tuple(args), callback

    def _targets(self, nsp: str, rooms: list[Any], except_: Iterable[Any]) -> list[tuple[str, str]]:
        """The ``(sid, eio_sid)`` of the local sockets of ``rooms`` (all when empty), minus
        the members of ``except_`` (rooms; a socket id is a room, so 4.x/5.x socket ids
        work too), connected ones only (socket.io-adapter ``broadcast()``)."""
        ns_rooms = self.rooms.get(nsp)
        if not ns_rooms:
            return []
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
                    for sid, eio_sid in list(members.items()):
                        if sid not in skip and sid not in targets:
                            targets[sid] = eio_sid
            return list(targets.items())
        return [(s, e) for s, e in list(ns_rooms.get(None, {}).items()) if s not in skip]

    def _recipients(
        self,
        nsp: str,
        data: list[Any],
        rooms: list[Any],
        except_: Iterable[Any],
        *,
        volatile: bool = False,
    ) -> tuple[list[str], list[Any]]:
        """Who gets ``[event, *args]`` here and in which Engine.IO packets (the synchronous
        server's path; the asyncio one queues through :class:`~siotools.delivery.LocalDelivery`).

        ``volatile`` drops the message for a socket whose transport still has packets
        waiting, as Node's volatile flag does for a transport that is not writable.
        """
        recipients = self._targets(nsp, rooms, except_)
        if not recipients:
            return [], []
        pkt = self.server.packet_class(sio_packet.EVENT, namespace=nsp, data=data)
        encoded = pkt.encode()
        if not isinstance(encoded, list):
            encoded = [encoded]
        eio_pkts = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in encoded]
        pending = self.pending_disconnect.get(nsp, ())
        out: list[str] = []
        for sid, eio_sid in recipients:
            if pending and sid in pending:
                continue
            if volatile and self._busy(eio_sid):
                self._counts["volatile_dropped"] += 1
                continue
            out.append(eio_sid)
        self._counts["delivered"] += len(recipients)
        return out, eio_pkts

    @staticmethod
    def _delivery(d: Deliver) -> dict[str, Any]:
        """The :meth:`_deliver_local` arguments of a broadcast from another node."""
        return {
            "nsp": d.nsp,
            "data": js_to_py(d.data),
            "rooms": d.rooms,
            "except_": d.except_,
            "volatile": bool(d.flags.get("volatile")),
        }

    def _busy(self, eio_sid: str) -> bool:
        # python-engineio keeps each socket's outgoing packets in a queue that its writer
        # drains; packets still queued mean the transport is not writable.
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

    # ------------------------------------------------------------------ emitting

    def _route_emit(
        self,
        data: Any,
        namespace: str,
        room: Any,
        skip_sid: Any,
        callback: Any,
        to: Any,
        kwargs: Mapping[str, Any],
    ) -> EmitRoute:
        """Where a python-socketio ``emit`` goes (see :class:`EmitRoute`).

        Raises:
            UnsupportedOperation: A callback for sockets on other nodes where the dialect
                cannot carry acknowledgements (socket.io-redis 4.x/5.x).
        """
        room = to if to is not None else room
        args, rooms, skips = emit_args(data), as_list(room), as_list(skip_sid)
        # A socket id is unique in the cluster: a broadcast to one local socket needs no
        # other node (Node publishes it anyway; every other node drops it unread).
        single_local = len(rooms) == 1 and self._is_local(rooms[0], namespace)
        if callback is not None:
            if single_local:
                return EmitRoute(args, rooms, skips, {}, "local", False)
            if not self.wire.capabilities.acks_across_nodes:
                raise UnsupportedOperation(
                    f"{self.wire.label} cannot carry acknowledgements across nodes; a "
                    "callback is only possible for a socket connected to this node"
                )
            return EmitRoute(args, rooms, skips, {}, "remote", False)
        flags: dict[str, Any] = {}
        if kwargs:
            for flag in ("volatile", "compress", "local"):
                if kwargs.get(flag) is not None:
                    flags[flag] = kwargs[flag]
        local_only = bool(kwargs.get("ignore_queue")) or bool(flags.get("local"))
        return EmitRoute(args, rooms, skips, flags, None, not local_only and not single_local)

    def _broadcast_now(
        self, nsp: str, data: list[Any], rooms: list[Any], except_: list[Any], flags: dict[str, Any]
    ) -> None:
        out = self.wire.broadcast(self.uid, nsp, data, rooms, except_, flags)
        self._publish_raw(out.channel, out.payload, out.sharded)
        self._metrics.published_broadcast(nsp, len(out.payload))

    # ------------------------------------------------------------------ plans

    def _fetch_plan(
        self, rooms: list[Any], except_: list[Any], namespace: str, mine: list[RemoteSocket]
    ) -> Plan[list[RemoteSocket]]:
        return self.wire.fetch_sockets(namespace, self.uid, rooms, except_, mine)

    def _bulk_plan(
        self,
        op: Literal["sockets_join", "sockets_leave", "disconnect_sockets"],
        arg: Any,
        rooms: Iterable[Any] | None,
        except_: Iterable[Any] | None,
        ns: str,
    ) -> Plan[Any]:
        """``socketsJoin``/``socketsLeave`` (``arg``: the rooms) or ``disconnectSockets``
        (``arg``: close) for the sockets of ``rooms`` minus ``except_``."""
        if op != "disconnect_sockets":
            arg = as_list(arg)
        make: Callable[..., Plan[Any]] = getattr(self.wire, op)
        return make(ns, self.uid, list(rooms or ()), list(except_ or ()), arg)

    def _sse_plan(self, event: str, args: tuple[Any, ...], ns: str, ack: bool) -> Plan[Any]:
        return self.wire.server_side_emit(ns, self.uid, [event, *args], ack=ack)

    def _ack_plan(
        self, event: str, data: Any, to: Any, skip_sid: Any, ns: str, timeout: float
    ) -> tuple[Plan[list[Any]], tuple[Any, ...], list[str]]:
        """The plan of a broadcast with acks, its arguments and the local sockets it
        reaches.

        Raises:
            UnsupportedOperation: The dialect cannot carry acknowledgements (4.x/5.x).
        """
        args = emit_args(data)
        rooms, skips = as_list(to), as_list(skip_sid)
        plan = self.wire.emit_with_ack(ns, self.uid, [event, *args], rooms, skips, {}, timeout)
        return plan, tuple(args), select_sids(self, ns, rooms, skips)

    def _clients_plan(self, rooms: Iterable[Any] | None, ns: str) -> Plan[list[str]]:
        rooms_l = list(rooms or ())
        return self.wire.clients(ns, self.uid, rooms_l, self._local_ids(ns, rooms_l))

    def _all_rooms_plan(self, ns: str) -> Plan[list[Any]]:
        local = [r for r in list(self.rooms.get(ns, {})) if r is not None]
        return self.wire.all_rooms(ns, self.uid, local)


def endpoint_of(
    url: str | None, host: str | None, port: int | None, client: Any, cluster: bool | None = None
) -> Transport:
    """Where the adapter's Redis is (a client's settings, a URL, or host and port), and
    whether it is a Redis Cluster.

    Raises:
        ConfigurationError: Both a URL and host/port were given.
    """
    if client is not None:
        return Transport(None, client, cluster)
    if url is not None:
        if host is not None or port is not None:
            raise ConfigurationError("pass either a Redis URL or host/port, not both")
        return Transport(url, None, cluster)
    # An explicit port 0 is an error (RedisEndpoint says so), not the default port.
    endpoint = RedisEndpoint(host=host or "127.0.0.1", port=6379 if port is None else port)
    return Transport(None, None, cluster, endpoint=endpoint)
