"""``AsyncRedisAdapter``: a python-socketio client manager that joins Node Redis clusters.

A thin asyncio shell over the pure node core (:class:`~siotools.node.NodeCore`) and a wire
dialect object (:mod:`siotools.dialects`): socket.io-redis 4.x/5.x (``dialect="legacy"``,
``"legacy-lite"``) or @socket.io/redis-adapter 8.x classic (``dialect="current"``). Python
and Node servers can therefore share one cluster. What it shares with the synchronous
:class:`~siotools.RedisAdapter` lives in :class:`~siotools.shell.NodeShell`.

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
import inspect
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

import socketio

from siotools.delivery import LocalDelivery
from siotools.dialects.base import (
    Action,
    CallHook,
    Deliver,
    DeliverWithAck,
    Disconnect,
    FetchLocal,
    RemoteSocket,
    Settle,
)
from siotools.exceptions import RequestTimeout, SocketNotFound
from siotools.requester import Requester
from siotools.shell import (
    ACK_TIMEOUT,
    CustomHook,
    ErrorCallback,
    NodeShell,
    ServerSideEmitHandler,
    emit_args,
    timed_out,
)
from siotools.transport.timers import wait_for

__all__ = ["AsyncRedisAdapter", "CustomHook", "ErrorCallback", "ServerSideEmitHandler"]

log = logging.getLogger("siotools.adapter")


class AsyncRedisAdapter(NodeShell, socketio.AsyncManager):  # type: ignore[misc]
    """A python-socketio ``AsyncServer`` ``client_manager`` that is a node of a Socket.IO
    Redis cluster (options: :class:`~siotools.shell.NodeShell`)."""

    name = "siotools-redis"

    def _make_transport(self) -> None:
        super()._make_transport()
        self._inbox: collections.deque[Deliver] = collections.deque()
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._deliverer: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None
        self._local_delivery: LocalDelivery | None = None

    @property
    def pub_client(self) -> Any:
        """The ``redis.asyncio.Redis`` for the publishing side: the one passed in, or one
        made on first use with the same settings, for the application's own commands.

        The adapter itself publishes and subscribes on lean connections of its own, opened
        with these settings (address, credentials, TLS).
        """
        import redis.asyncio as aioredis

        return self._client("pub", aioredis.Redis)

    @property
    def sub_client(self) -> Any:
        """The ``redis.asyncio.Redis`` for the subscribing side (see :attr:`pub_client`)."""
        import redis.asyncio as aioredis

        return self._client("sub", aioredis.Redis)

    def attach(self, app: Any) -> None:
        """Start and close the adapter with an aiohttp ``web.Application``.

        Joining the cluster when the server starts, rather than at the first client,
        matters: a node is counted by ``PUBSUB NUMSUB`` only once it is subscribed. For
        ASGI, pass :meth:`start` and :meth:`close` as ``socketio.ASGIApp(on_startup=...,
        on_shutdown=...)``.
        """
        app.on_startup.append(self.start)
        app.on_cleanup.append(self.close)

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
        await self._join_cluster()

    def _on_started(self) -> None:
        self._deliverer = asyncio.get_running_loop().create_task(
            self._deliver_loop(), name=f"siotools-adapter-{self.uid}-deliver"
        )

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
        tasks = [t for t in (self._deliverer, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._deliverer = None
        self._tasks.clear()
        await self._close_transport()

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        async def run() -> None:
            await awaitable

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ local sockets

    async def describe(self, sid: str, nsp: str) -> RemoteSocket:
        """A local socket as ``fetch_sockets`` reports it: rooms, session data, handshake."""
        data: Any = None
        with contextlib.suppress(Exception):  # a socket that left meanwhile has no session
            data = await self.server.get_session(sid, namespace=nsp)
        return self._remote_socket(sid, nsp, data)

    # ------------------------------------------------------------------ carrying out

    def _queue_delivery(self, action: Deliver) -> None:
        self._inbox.append(action)
        self._wakeup.set()

    def _later(self, actions: list[Action]) -> None:
        task = asyncio.get_running_loop().create_task(self._carry_out(actions))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _carry_out(self, actions: list[Action]) -> None:
        try:
            for action in actions:
                await self._act(action)
        except Exception as exc:
            self._error(exc)

    async def _act(self, action: Action) -> None:
        if self._act_now(action):
            return
        match action:
            case Disconnect(nsp=nsp, sids=sids, close=close):
                for sid in sids:
                    if self.is_connected(sid, nsp):
                        await self._disconnect_local(sid, nsp, close)
            case Settle():
                await self._settle_subscriptions()
            case CallHook():
                await self._call_hook(action)
            case FetchLocal(nsp=nsp, sids=sids, respond=respond):
                self._respond(respond([await self.describe(sid, nsp) for sid in sids]))
            case DeliverWithAck():
                targets, event, args, callback = self._ack_fanout(action)
                for sid in targets:
                    await super().emit(event, args, action.nsp, room=sid, callback=callback)

    async def _call_hook(self, action: CallHook) -> None:
        calls = self._hook_calls(action)
        if not calls:
            return
        results = []
        for fn, args in calls:
            result = fn(*args)
            results.append(await result if inspect.isawaitable(result) else result)
        self._hook_answer(action, results[0])

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
                self._metrics.delivered(await self._deliver_local(**self._delivery(d)))
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
    ) -> int:
        """Send ``[event, *args]`` to the local sockets of ``rooms`` (all when empty);
        returns how many it was queued for."""
        recipients = self._targets(nsp, rooms, except_)
        if not recipients:
            return 0
        delivery = self._local_delivery
        if delivery is None or delivery.server is not self.server:
            delivery = self._local_delivery = LocalDelivery(self.server)
        # One encode per broadcast, queued straight onto each socket's Engine.IO queue.
        sent = await delivery.deliver(nsp, data, recipients, volatile)
        self._counts["delivered"] += sent
        return sent

    def counter(self, name: str) -> int:
        """One counter's value (0 when never incremented)."""
        value = super().counter(name)
        if name == "volatile_dropped" and self._local_delivery is not None:
            value += self._local_delivery.volatile_dropped
        return value

    async def _disconnect_local(self, sid: str, nsp: str, close: bool) -> None:
        eio_sid = self.eio_sid_from_sid(sid, nsp) if close else None
        await self.server.disconnect(sid, namespace=nsp, ignore_queue=True)
        if eio_sid is not None:
            # socket.disconnect(true) closes the whole Engine.IO connection.
            with contextlib.suppress(Exception):
                await self.server.eio.disconnect(eio_sid)

    # ------------------------------------------------------------------ python-socketio API

    async def pre_connect(self, eio_sid: str, namespace: str) -> Any:
        """Register a connecting socket (joins the namespace in the cluster if new)."""
        self._connecting(namespace)
        sid = self._connected(await super().pre_connect(eio_sid, namespace))
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
        r = self._route_emit(data, namespace, room, skip_sid, callback, to, kwargs)
        if r.ack == "local":
            await super().emit(
                event, data, namespace, room=r.rooms[0], skip_sid=skip_sid, callback=callback
            )
        elif r.ack == "remote":
            self._spawn(self._remote_callback(event, r.args, namespace, r.rooms, r.skips, callback))
        else:
            if r.publish:
                await self._publish_broadcast(
                    namespace, [event, *r.args], r.rooms, r.skips, r.flags
                )
            if self.rooms.get(namespace):
                volatile = bool(r.flags.get("volatile"))
                await self._deliver_local(
                    namespace, [event, *r.args], r.rooms, r.skips, volatile=volatile
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
                timeout=ACK_TIMEOUT,
            )
        except RequestTimeout as exc:
            acks = list(exc.partial or [])
        for ack in acks:
            result = callback(*emit_args(ack))
            if inspect.isawaitable(result):
                await result

    async def _publish_broadcast(
        self, nsp: str, data: list[Any], rooms: list[Any], except_: list[Any], flags: dict[str, Any]
    ) -> None:
        if not self._started:
            await self.start()
        self._broadcast_now(nsp, data, rooms, except_, flags)
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
        members = await self.clients([room], namespace=namespace)
        remote = [sid for sid in members if not self._is_local(sid, namespace)]
        self.basic_close_room(room, namespace)
        results = await asyncio.gather(
            *(self.remote_leave(sid, room, namespace=namespace) for sid in remote),
            return_exceptions=True,
        )
        for result in results:
            # RequestTimeout/SocketNotFound: the socket left meanwhile, nothing to remove.
            if isinstance(result, BaseException) and not isinstance(
                result, (RequestTimeout, SocketNotFound)
            ):
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

    async def _run(self, namespace: str, plan: Any, requester: Requester | None = None) -> Any:
        await self._ready(namespace)
        return await (requester or self._requester).run(plan)

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
        sids = self._local_ids(namespace, rooms_l, except_l)
        mine = [await self.describe(s, namespace) for s in sids]
        if local:
            return mine
        result: list[RemoteSocket] = await self._run(
            namespace, self._fetch_plan(rooms_l, except_l, namespace, mine)
        )
        return result

    async def sockets_join(
        self,
        room_or_rooms: Any,
        *,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
    ) -> None:
        """Make every matching socket of the cluster join ``room_or_rooms``."""
        await self._run(
            namespace,
            self._bulk_plan("sockets_join", room_or_rooms, rooms, except_rooms, namespace),
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
        await self._run(
            namespace,
            self._bulk_plan("sockets_leave", room_or_rooms, rooms, except_rooms, namespace),
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
        await self._run(
            namespace, self._bulk_plan("disconnect_sockets", close, rooms, except_rooms, namespace)
        )

    async def server_side_emit(self, event: str, *args: Any, namespace: str = "/") -> None:
        """Send ``event`` to the other server nodes (socket.io 4 ``serverSideEmit``)."""
        await self._run(namespace, self._sse_plan(event, args, namespace, False))

    async def server_side_emit_with_ack(
        self, event: str, *args: Any, namespace: str = "/", timeout: float | None = None
    ) -> list[Any]:
        """Send ``event`` to the other server nodes and collect each one's reply.

        Raises:
            RequestTimeout: Not every node answered (``partial``: the replies so far).
        """
        requester = None
        if timeout is not None:
            requester = Requester(
                self._publisher,
                self._engine,
                timeout=timeout,
                counted=True,
                metrics=self._metrics,
            )
        plan = self._sse_plan(event, args, namespace, True)
        return list(await self._run(namespace, plan, requester))

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
        plan, args, sids = self._ack_plan(event, data, to, skip_sid, namespace, timeout)
        await self._ready(namespace)
        local_acks: list[Any] = []
        done = asyncio.get_running_loop().create_future()

        def callback(*ack: Any) -> None:
            local_acks.append(ack[0] if ack else None)
            if len(local_acks) == len(sids) and not done.done():
                done.set_result(None)

        for sid in sids:
            await super().emit(event, args, namespace, room=sid, callback=callback)
        if not sids:
            done.set_result(None)
        remote_task = asyncio.ensure_future(self._requester.run(plan))
        try:
            await wait_for(asyncio.shield(done), timeout)
            remote = await remote_task
        except (TimeoutError, RequestTimeout) as exc:
            partial = exc.partial if isinstance(exc, RequestTimeout) else []
            if not remote_task.done():
                try:
                    partial = await remote_task
                except RequestTimeout as late:
                    partial = late.partial or []
            raise timed_out(local_acks, partial) from None
        return [*local_acks, *remote]

    async def clients(
        self, rooms: Iterable[Any] | None = None, *, namespace: str = "/"
    ) -> list[str]:
        """Socket ids in any of ``rooms`` (every socket when None) across the cluster.

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        await self._ready(namespace)
        result: list[str] = await self._requester.run(self._clients_plan(rooms, namespace))
        return result

    async def all_rooms(self, *, namespace: str = "/") -> list[Any]:
        """Every room of every node, socket-id rooms included (as the Node adapters report).

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds what arrived.
        """
        await self._ready(namespace)
        result: list[Any] = await self._requester.run(self._all_rooms_plan(namespace))
        return result

    async def client_rooms(self, sid: str, *, namespace: str = "/") -> list[Any]:
        """The rooms of socket ``sid``, wherever it is connected (its own id room first).

        Raises:
            RequestTimeout: 4.x/5.x: no node has that socket (nobody answers).
            SocketNotFound: 8.x: no node has that socket.
        """
        if self._is_local(sid, namespace):
            return self.rooms_of(sid, namespace)
        result: list[Any] = await self._run(
            namespace, self.wire.client_rooms(namespace, self.uid, sid)
        )
        return result

    async def remote_join(self, sid: str, room: Any, *, namespace: str = "/") -> None:
        """Make socket ``sid`` join ``room`` on whichever node it is connected to.

        Raises:
            RequestTimeout: 4.x/5.x: no node has that socket.
            SocketNotFound: 8.x: no node has that socket.
        """
        if self.is_connected(sid, namespace):
            self._enter_local(sid, namespace, room)
            await self._settle_subscriptions()
        else:
            await self._run(namespace, self.wire.remote_join(namespace, self.uid, sid, room))

    async def remote_leave(self, sid: str, room: Any, *, namespace: str = "/") -> None:
        """Make socket ``sid`` leave ``room`` on whichever node it is connected to.

        Raises:
            RequestTimeout: 4.x/5.x: no node has that socket.
            SocketNotFound: 8.x: no node has that socket.
        """
        if self.is_connected(sid, namespace):
            self.basic_leave_room(sid, namespace, room)
        else:
            await self._run(namespace, self.wire.remote_leave(namespace, self.uid, sid, room))

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
        else:
            plan = self.wire.remote_disconnect(namespace, self.uid, sid, close)
            await self._run(namespace, plan)

    async def custom_request(self, data: Any, *, namespace: str = "/") -> list[Any]:
        """Ask every node's ``custom_hook`` (this one's too); replies in arrival order.

        Raises:
            RequestTimeout: Not every node answered; ``partial`` holds the replies so far.
            UnsupportedOperation: 8.x has no customRequest (use
                :meth:`server_side_emit_with_ack`).
        """
        result: list[Any] = await self._run(
            namespace, self.wire.custom_request(namespace, self.uid, data)
        )
        return result

    async def server_count(self, *, namespace: str = "/") -> int:
        """How many nodes (this one included) serve ``namespace`` in the cluster."""
        result: int = await self._run(namespace, self.wire.server_count(namespace))
        return result

    node_count = server_count
