"""``AsyncRedisAdapter``: a python-socketio client manager that joins Node Redis clusters.

It speaks socket.io-redis 4.x/5.x on the wire: broadcasts are notepack/msgpack-lite
``[uid, packet, opts]`` on ``key#nsp#`` and ``key#nsp#room#``, cluster requests are JSON
on ``key-request#nsp#`` with replies on ``key-response#nsp#``. Python and Node servers can
therefore share one cluster.

Example::

    import socketio
    from siotools import AsyncRedisAdapter

    adapter = AsyncRedisAdapter("redis://127.0.0.1:6379/0")
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
import secrets
import string
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from siotools.dialects.legacy import LegacyRequester, custom_reply_frame
from siotools.exceptions import (
    ConfigurationError,
    DecodeError,
    RequestTimeout,
    UnsupportedOperation,
)
from siotools.protocol import (
    U64,
    UNDEFINED,
    ChannelGrammar,
    ChannelKind,
    Dialect,
    Frame,
    LegacyAllRoomsRequest,
    LegacyClientRoomsRequest,
    LegacyClientsRequest,
    LegacyClientsResponse,
    LegacyCustomRequest,
    LegacyEmptyResponse,
    LegacyRemoteDisconnectRequest,
    LegacyRemoteJoinRequest,
    LegacyRemoteLeaveRequest,
    LegacyRoomsResponse,
    TypedArray,
    Undefined,
    decode,
    encode,
    encode_broadcast,
    unpack_broadcast,
)
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import LinkEvent, Publisher, Subscriber, settle
from siotools.transport.requests import RequestEngine

__all__ = ["AsyncRedisAdapter", "CustomHook", "ErrorCallback"]

log = logging.getLogger("siotools.adapter")

CustomHook = Callable[[Any], Any]
"""``hook(data) -> reply`` (sync or async): this node's answer to ``custom_request``."""

ErrorCallback = Callable[[BaseException], Any]
"""Called with every error the adapter meets (the Node adapter's ``'error'`` event)."""

_UID_ALPHABET = string.ascii_letters + string.digits

# Route kinds of subscribed channels.
_BROADCAST, _REQUEST, _RESPONSE = 0, 1, 2


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


class _Stats(Mapping[str, int]):
    """A live, read-only view of an adapter's counters."""

    _HOT = ("received", "decoded", "published")

    def __init__(self, adapter: AsyncRedisAdapter) -> None:
        self._adapter = adapter

    def __getitem__(self, name: str) -> int:
        if name in self._HOT:
            value: int = getattr(self._adapter, "_" + name)
            return value
        return self._adapter._counts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys((*self._HOT, *self._adapter._counts)))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr(dict(self))


class AsyncRedisAdapter(socketio.AsyncManager):  # type: ignore[misc]
    """A python-socketio ``client_manager`` that is a node of a socket.io-redis cluster.

    Args:
        url: Redis URL (``redis://host:port/db``, ``rediss://``, ``unix://``).
        host: Redis host, when no URL is given.
        port: Redis port, when no URL is given.
        key: The channel prefix shared by the cluster (``socket.io`` by default).
        pub_client: A ``redis.asyncio.Redis`` whose settings (address, password, TLS) the
            adapter's publishing connection uses.
        sub_client: The same for the subscribing connection.
        requests_timeout: Seconds to wait for the other nodes' answers (1.0 as in
            socket.io-redis 4.x; 5.2+ uses 5.0).
        with_channel_multiplexing: Publish single-room broadcasts on the room's channel and
            SUBSCRIBE to the channel of every room with a local member (socket.io-redis 4.x
            default). ``False`` publishes everything on ``key#nsp#`` (the 4.x
            single-channel mode).
        subscription_mode: ``"subscribe"`` (4.x: SUBSCRIBE ``key#nsp#`` plus the room
            channels) or ``"psubscribe"`` (5.x: PSUBSCRIBE ``key#nsp#*``).
        dialect: ``Dialect.LEGACY`` (socket.io-redis 5.x, notepack 2) or
            ``Dialect.LEGACY_LITE`` (4.x, msgpack-lite) for what this node encodes;
            both are always decoded.
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
        requests_timeout: float = 1.0,
        with_channel_multiplexing: bool = True,
        subscription_mode: Literal["subscribe", "psubscribe"] = "subscribe",
        dialect: Dialect = Dialect.LEGACY,
        namespaces: Iterable[str] = (),
        custom_hook: CustomHook | None = None,
        logger: Any = None,
    ) -> None:
        super().__init__()
        if dialect not in (Dialect.LEGACY, Dialect.LEGACY_LITE):
            raise ConfigurationError(
                f"AsyncRedisAdapter speaks socket.io-redis 4.x/5.x (Dialect.LEGACY or "
                f"Dialect.LEGACY_LITE), not {dialect.name}"
            )
        if subscription_mode not in ("subscribe", "psubscribe"):
            raise ConfigurationError(
                f"subscription_mode must be 'subscribe' or 'psubscribe', not {subscription_mode!r}"
            )
        if requests_timeout <= 0:
            raise ConfigurationError("requests_timeout must be a positive number of seconds")
        self._pub_client = pub_client
        self._sub_client = sub_client
        self._made_clients: list[Any] = []  # made by the properties: closed by close()
        self._pub_endpoint = self._endpoint(url, host, port, pub_client)
        self._sub_endpoint = (
            RedisEndpoint.from_client(sub_client) if sub_client is not None else self._pub_endpoint
        )
        # socket.io-redis: `prefix = opts.key || 'socket.io'`
        self.prefix = key or "socket.io"
        self.grammar = ChannelGrammar(self.prefix)
        self.uid = "".join(secrets.choice(_UID_ALPHABET) for _ in range(6))
        self.requests_timeout = float(requests_timeout)
        self.with_channel_multiplexing = with_channel_multiplexing
        self.subscription_mode = subscription_mode
        self.dialect = dialect
        self.custom_hook: CustomHook = custom_hook or _default_hook
        self.logger = logger
        self._extra_namespaces = list(namespaces)
        self._error_callbacks: list[ErrorCallback] = []
        self._counts: collections.Counter[str] = collections.Counter()
        # The per-message counters are plain ints: a Counter update costs as much as a
        # quarter of the rest of the receive path.
        self._received = 0
        self._decoded = 0
        self._published = 0
        self._stats = _Stats(self)
        self._engine = RequestEngine()
        self._publisher = Publisher(
            self._pub_endpoint, name=f"{self.uid}-pub", on_error=self._error
        )
        self._subscriber = Subscriber(
            self._sub_endpoint,
            on_batch=self._on_batch,
            name=f"{self.uid}-sub",
            on_error=self._error,
            on_event=self._link_event,
        )
        self._requester = LegacyRequester(
            grammar=self.grammar,
            dialect=dialect,
            publisher=self._publisher,
            engine=self._engine,
            timeout=self.requests_timeout,
        )
        self._routes: dict[bytes, tuple[int, str, str | None]] = {}
        self._nsps: set[str] = set()
        self._pending_subs: list[asyncio.Future[None]] = []
        self._inbox: collections.deque[
            tuple[str, list[Any], list[Any], list[Any], dict[str, Any]]
        ] = collections.deque()
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._deliverer: asyncio.Task[None] | None = None
        self._started = False
        self._starting: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def stats(self) -> Mapping[str, int]:
        """Live counters: ``received``, ``decoded``, ``published``, ``delivered``,
        ``malformed``, ``ignored``, ``errors``, ``subscription_lost``,
        ``subscription_restored``, ``subscription_gap_ms``... (0 for a counter never
        incremented)."""
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
        url: str | None, host: str | None, port: int | None, client: Any
    ) -> RedisEndpoint:
        if client is not None:
            return RedisEndpoint.from_client(client)
        if url is not None:
            if host is not None or port is not None:
                raise ConfigurationError("pass either a Redis URL or host/port, not both")
            return RedisEndpoint.from_url(url)
        # An explicit port 0 is an error (RedisEndpoint says so), not the default port.
        return RedisEndpoint(host=host or "127.0.0.1", port=6379 if port is None else port)

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
        # Rooms that got members before the start (sockets connect before the loop ran).
        if self.with_channel_multiplexing and self.subscription_mode == "subscribe":
            for nsp, rooms in self.rooms.items():
                self._join_namespace(nsp)
                for room in rooms:
                    if room is not None:
                        self._subscribe_room(nsp, room)
        await self._settle_subscriptions()
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

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        async def run() -> None:
            await awaitable

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ subscriptions

    def _join_namespace(self, nsp: str) -> None:
        if nsp in self._nsps:
            return
        self._nsps.add(nsp)
        g = self.grammar
        bcast, req, resp = g.broadcast_bytes(nsp), g.request(nsp).encode(), g.response(nsp).encode()
        self._routes[bcast] = (_BROADCAST, nsp, None)
        self._routes[req] = (_REQUEST, nsp, None)
        self._routes[resp] = (_RESPONSE, nsp, None)
        sub = self._subscriber
        if self.subscription_mode == "psubscribe":
            # socket.io-redis 5.x: PSUBSCRIBE key#nsp#*, then SUBSCRIBE request+response.
            self._track(sub.psubscribe_nowait([g.broadcast_pattern(nsp).encode()]))
            self._track(sub.subscribe_nowait([req, resp]))
        else:
            # socket.io-redis 4.x: SUBSCRIBE key#nsp# key-request#nsp# key-response#nsp#.
            self._track(sub.subscribe_nowait([bcast, req, resp]))

    def _track(self, fut: asyncio.Future[None] | None) -> None:
        if fut is not None:
            self._pending_subs.append(fut)

    async def _settle_subscriptions(self) -> None:
        """Wait until Redis confirmed the subscriptions made so far."""
        pending, self._pending_subs = self._pending_subs, []
        for fut in pending:
            # A refused (P)SUBSCRIBE raises SubscriptionRefused (a deaf node must not start).
            await settle(fut)

    def _subscribe_room(self, nsp: str, room: Any) -> None:
        channel = self.grammar.room_bytes(nsp, room)
        self._routes[channel] = (_BROADCAST, nsp, str(room))
        self._track(self._subscriber.subscribe_nowait([channel]))

    def _unsubscribe_room(self, nsp: str, room: Any) -> None:
        channel = self.grammar.room_bytes(nsp, room)
        self._routes.pop(channel, None)
        self._subscriber.unsubscribe_nowait([channel])

    def _multiplexed(self) -> bool:
        return (
            self._started
            and self.with_channel_multiplexing
            and self.subscription_mode == "subscribe"
        )

    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        """Add a local socket to a room (and SUBSCRIBE to the room's channel if it is new)."""
        ns_rooms = self.rooms.get(namespace)
        new_room = room is not None and (ns_rooms is None or room not in ns_rooms)
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if self._started and namespace not in self._nsps:
            self._join_namespace(namespace)
        if new_room and self._multiplexed():
            # socket.io-redis 4.x Redis#add: SUBSCRIBE key#nsp#room# for a room new here.
            self._subscribe_room(namespace, room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Remove a local socket from a room (UNSUBSCRIBE when the room empties here)."""
        super().basic_leave_room(sid, namespace, room)
        if room is not None and self._multiplexed() and room not in self.rooms.get(namespace, {}):
            # socket.io-redis 4.x Redis#del: UNSUBSCRIBE when the last local member left.
            self._unsubscribe_room(namespace, room)

    # ------------------------------------------------------------------ local state

    def _is_local(self, sid: str, nsp: str) -> bool:
        members = self.rooms.get(nsp, {}).get(None)
        return members is not None and sid in members

    def _local_clients(self, nsp: str, rooms: Iterable[Any]) -> list[str]:
        # socket.io-adapter 1.1.x clients(): connected sockets of the given rooms (all when
        # none), de-duplicated.
        ns_rooms = self.rooms.get(nsp)
        if not ns_rooms:
            return []
        rooms = list(rooms)
        seen: dict[str, None] = {}
        if rooms:
            for room in rooms:
                for sid in ns_rooms.get(room, ()):
                    if self.is_connected(sid, nsp):
                        seen[sid] = None
        else:
            for sid in ns_rooms.get(None, ()):
                if self.is_connected(sid, nsp):
                    seen[sid] = None
        return list(seen)

    def _local_rooms_of(self, sid: str, nsp: str) -> list[Any]:
        # Node's Object.keys(sids[id]) starts with the socket's own room.
        rooms = self.get_rooms(sid, nsp)
        if sid in rooms:
            rooms.remove(sid)
        return [sid, *rooms]

    # ------------------------------------------------------------------ receiving

    def _on_batch(self, now: int, batch: list[list[bytes]]) -> None:
        """Handle the messages of one socket read, in order."""
        routes = self._routes
        for reply in batch:
            try:
                if len(reply) == 3:  # [b"message", channel, payload]
                    channel, payload, pattern = reply[1], reply[2], None
                else:  # [b"pmessage", pattern, channel, payload]
                    pattern, channel, payload = reply[1], reply[2], reply[3]
                route = routes.get(channel)
                if route is None:
                    route = self._pattern_route(channel, pattern)
                    if route is None:
                        continue
                kind, nsp, room = route
                if kind == _BROADCAST:
                    self._on_broadcast(channel, nsp, room, payload)
                elif kind == _REQUEST:
                    self._on_request(channel, payload)
                else:
                    self._on_response(channel, payload)
            except Exception as exc:  # one bad message must not cost the rest of the batch
                self._error(exc)

    def _pattern_route(
        self, channel: bytes, pattern: bytes | None
    ) -> tuple[int, str, str | None] | None:
        # Room channels heard through PSUBSCRIBE key#nsp#* (the 5.x subscription mode).
        if pattern is not None:
            parsed = self.grammar.parse(channel)
            if parsed.nsp in self._nsps and parsed.nsp is not None:
                if parsed.kind is ChannelKind.ROOM:
                    return (_BROADCAST, parsed.nsp, parsed.room)
                if parsed.kind is ChannelKind.BROADCAST:
                    return (_BROADCAST, parsed.nsp, None)
        self._counts["ignored"] += 1
        return None

    def _on_broadcast(self, channel: bytes, nsp: str, room: str | None, payload: bytes) -> None:
        self._received += 1
        ns_rooms = self.rooms.get(nsp)
        # socket.io-redis 5.x onmessage: a room channel of a room this node does not have
        # is dropped before decoding; so is anything for a namespace with no local socket.
        if not ns_rooms or (room is not None and room not in ns_rooms):
            return
        try:
            uid, packet_nsp, data, rooms, except_, flags = unpack_broadcast(payload)
        except DecodeError as exc:
            exc.channel = channel
            self._malformed(exc)
            return
        self._decoded += 1
        # socket.io-redis 5.x onmessage: own messages and other namespaces are skipped.
        if uid == self.uid or packet_nsp != nsp:
            return
        if not data:
            self._counts["ignored"] += 1
            return
        if rooms:
            for r in rooms:
                if isinstance(r, (str, int)) and r in ns_rooms:
                    break
            else:
                return  # none of the target rooms has a socket here
        self._inbox.append((nsp, data, rooms, except_, flags))
        self._wakeup.set()

    def _malformed(self, exc: DecodeError) -> None:
        self._counts["malformed"] += 1
        self._error(exc)

    async def _deliver_loop(self) -> None:
        inbox = self._inbox
        wakeup = self._wakeup
        while True:
            if not inbox:
                wakeup.clear()
                await wakeup.wait()
                continue
            nsp, data, rooms, except_, flags = inbox.popleft()
            try:
                await self._deliver_local(
                    nsp, _js_to_py(data), rooms, except_, volatile=bool(flags.get("volatile"))
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

        ``volatile`` drops the message for a socket whose transport still has packets
        waiting, as Node's volatile flag does for a transport that is not writable.
        """
        ns_rooms = self.rooms.get(nsp)
        if not ns_rooms:
            return
        # socket.io-adapter 1.1.x broadcast(): union of the named rooms' sockets, skipping
        # the except list and sockets that are not connected yet.
        skip = set(except_)
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

    def _on_request(self, channel: bytes, payload: bytes) -> None:
        try:
            frame = decode(channel, payload, prefix=self.prefix)
        except DecodeError as exc:
            # socket.io-redis 5.x emits 'error' for a request it cannot JSON.parse.
            self._malformed(exc)
            return
        task = asyncio.get_running_loop().create_task(self._answer(frame))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_response(self, channel: bytes, payload: bytes) -> None:
        try:
            frame = decode(channel, payload, prefix=self.prefix)
        except DecodeError as exc:
            self._malformed(exc)
            return
        if not self._requester.on_response(frame):
            self._counts["responses_ignored"] += 1

    def _reply(self, frame: Frame) -> None:
        channel, payload = encode(frame)
        self._publisher.publish(channel.encode(), payload)

    async def _answer(self, frame: Frame) -> None:
        """Answer one cluster request the way a socket.io-redis 5.x node does."""
        try:
            await self._answer_inner(frame)
        except Exception as exc:
            self._error(exc)

    async def _answer_inner(self, frame: Frame) -> None:
        common: dict[str, Any] = {
            "nsp": getattr(frame, "nsp", "/"),
            "prefix": self.prefix,
            "dialect": self.dialect,
        }
        match frame:
            case LegacyClientsRequest(request_id=rid, rooms=rooms, nsp=nsp):
                self._reply(
                    LegacyClientsResponse(
                        request_id=rid, clients=tuple(self._local_clients(nsp, rooms)), **common
                    )
                )
            case LegacyAllRoomsRequest(request_id=rid, nsp=nsp):
                rooms = tuple(r for r in self.rooms.get(nsp, {}) if r is not None)
                self._reply(LegacyRoomsResponse(request_id=rid, rooms=rooms, **common))
            case LegacyClientRoomsRequest(request_id=rid, sid=sid, nsp=nsp):
                if isinstance(sid, str) and self._is_local(sid, nsp):
                    self._reply(
                        LegacyRoomsResponse(
                            request_id=rid, rooms=tuple(self._local_rooms_of(sid, nsp)), **common
                        )
                    )
            case LegacyRemoteJoinRequest(request_id=rid, sid=sid, room=room, nsp=nsp):
                if isinstance(sid, str) and self.is_connected(sid, nsp):
                    self._enter_local(sid, nsp, room)
                    # Node answers after socket.join() completed, i.e. after SUBSCRIBE.
                    await self._settle_subscriptions()
                    self._reply(LegacyEmptyResponse(request_id=rid, **common))
            case LegacyRemoteLeaveRequest(request_id=rid, sid=sid, room=room, nsp=nsp):
                if isinstance(sid, str) and self.is_connected(sid, nsp):
                    self.basic_leave_room(sid, nsp, room)
                    self._reply(LegacyEmptyResponse(request_id=rid, **common))
            case LegacyRemoteDisconnectRequest(request_id=rid, sid=sid, close=close, nsp=nsp):
                if isinstance(sid, str) and self.is_connected(sid, nsp):
                    await self._disconnect_local(sid, nsp, close is True)
                    self._reply(LegacyEmptyResponse(request_id=rid, **common))
            case LegacyCustomRequest():
                value = self.custom_hook(frame.data)
                if inspect.isawaitable(value):
                    value = await value
                self._reply(custom_reply_frame(frame, value))
            case _:
                # 8.x requests on a legacy prefix: type numbers overlap with other meanings,
                # so they are never answered (and mixing the two breaks Node nodes).
                self._counts["foreign_requests"] += 1

    def _enter_local(self, sid: str, nsp: str, room: Any) -> None:
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
        if namespace not in self._nsps and self._started:
            self._join_namespace(namespace)
        sid = await super().pre_connect(eio_sid, namespace)
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
            UnsupportedOperation: A callback (ack) for sockets on other nodes:
                socket.io-redis 4.x/5.x cannot carry acknowledgements across nodes.
        """
        room = to if to is not None else room
        if isinstance(data, tuple):
            args = list(data)
        elif data is None:
            args = []
        else:
            args = [data]
        if room is None:
            rooms: list[Any] = []
        elif isinstance(room, (list, tuple, set)):
            rooms = list(room)
        else:
            rooms = [room]
        if skip_sid is None:
            skips: list[Any] = []
        elif isinstance(skip_sid, (list, tuple, set)):
            skips = list(skip_sid)
        else:
            skips = [skip_sid]
        if callback is not None:
            if len(rooms) == 1 and self._is_local(rooms[0], namespace):
                await super().emit(
                    event, data, namespace, room=rooms[0], skip_sid=skip_sid, callback=callback
                )
                return
            raise UnsupportedOperation(
                "socket.io-redis 4.x/5.x cannot carry acknowledgements across nodes; a "
                "callback is only possible for a socket connected to this node"
            )
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

    async def _publish_broadcast(
        self, nsp: str, data: list[Any], rooms: list[Any], except_: list[Any], flags: dict[str, Any]
    ) -> None:
        if not self._started:
            await self.start()
        channel, payload = encode_broadcast(
            uid=self.uid,
            data=data,
            nsp=nsp,
            rooms=rooms,
            except_=except_,
            flags=flags,
            dialect=self.dialect,
            prefix=self.prefix,
        )
        if len(rooms) == 1 and not self.with_channel_multiplexing:
            # socket.io-redis 4.x without multiplexing publishes everything on key#nsp#.
            channel = self.grammar.broadcast(nsp)
        self._publisher.publish(channel.encode(), payload)
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
            if isinstance(result, RequestTimeout):
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
        except RequestTimeout:
            self._get_logger().info("disconnect: no node has socket %s in %s", sid, namespace)
        return False

    # ------------------------------------------------------------------ cluster requests

    async def _ready(self) -> None:
        if not self._started:
            await self.start()

    async def clients(
        self, rooms: Iterable[Any] | None = None, *, namespace: str = "/"
    ) -> list[str]:
        """Socket ids in any of ``rooms`` (every socket when None) across the cluster.

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        await self._ready()
        self._join_namespace(namespace)
        return await self._requester.clients(namespace, list(rooms or ()))

    async def all_rooms(self, *, namespace: str = "/") -> list[str]:
        """Every room of every node, socket-id rooms included (as socket.io-redis reports).

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        await self._ready()
        self._join_namespace(namespace)
        return await self._requester.all_rooms(namespace)

    async def client_rooms(self, sid: str, *, namespace: str = "/") -> list[str]:
        """The rooms of socket ``sid``, wherever it is connected (its own id room first).

        Raises:
            RequestTimeout: No node has that socket.
        """
        if self._is_local(sid, namespace):
            return self._local_rooms_of(sid, namespace)
        await self._ready()
        return await self._requester.client_rooms(namespace, sid)

    async def remote_join(self, sid: str, room: Any, *, namespace: str = "/") -> None:
        """Make socket ``sid`` join ``room`` on whichever node it is connected to.

        Raises:
            RequestTimeout: No node has that socket.
        """
        if self.is_connected(sid, namespace):
            self._enter_local(sid, namespace, room)
            await self._settle_subscriptions()
            return
        await self._ready()
        await self._requester.remote_join(namespace, sid, room)

    async def remote_leave(self, sid: str, room: Any, *, namespace: str = "/") -> None:
        """Make socket ``sid`` leave ``room`` on whichever node it is connected to.

        Raises:
            RequestTimeout: No node has that socket.
        """
        if self.is_connected(sid, namespace):
            self.basic_leave_room(sid, namespace, room)
            return
        await self._ready()
        await self._requester.remote_leave(namespace, sid, room)

    async def remote_disconnect(
        self, sid: str, close: bool = False, *, namespace: str = "/"
    ) -> None:
        """Disconnect socket ``sid`` wherever it is (``close``: its whole connection).

        Raises:
            RequestTimeout: No node has that socket.
        """
        if self.is_connected(sid, namespace):
            await self._disconnect_local(sid, namespace, close)
            return
        await self._ready()
        await self._requester.remote_disconnect(namespace, sid, close)

    async def custom_request(self, data: Any, *, namespace: str = "/") -> list[Any]:
        """Ask every node's ``custom_hook`` (this one's too); replies in arrival order.

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds the replies so far.
        """
        await self._ready()
        self._join_namespace(namespace)
        return await self._requester.custom_request(namespace, data)

    async def node_count(self, *, namespace: str = "/") -> int:
        """How many nodes (this one included) serve ``namespace`` in the cluster."""
        await self._ready()
        return await self._requester.node_count(namespace)
