"""``RedisAdapter``: the synchronous python-socketio client manager that joins Node clusters.

The twin of :class:`~siotools.AsyncRedisAdapter` for ``socketio.Server``: WSGI apps,
Flask-SocketIO, Django. A thin shell over the same node core, dialect objects and plans
(:class:`~siotools.shell.NodeShell`); the Redis side (connections, plans, timers) runs on
an asyncio loop in a thread of its own (:class:`~siotools.loop_thread.LoopThread`), and
the server's threads wait for it. Every dialect runs on both transports, as with the
asyncio adapter: one Redis, or a Redis Cluster (``?cluster=true``, ``cluster=True``, and
the sharded dialect's SPUBLISH/SSUBSCRIBE, routed by slot).

* ``async_mode="threading"``: the loop runs in an OS thread; broadcasts from other nodes
  are delivered from it, as python-socketio's own ``RedisManager`` thread does.
* ``"eventlet"``/``"gevent"`` (monkey-patched, as python-socketio's ``RedisManager``
  requires too): the same thread is a green thread and the loop's ``select`` is the
  cooperative one, so waiting parks one green thread, never the hub. Without
  monkey-patching the adapter refuses at construction, in one sentence.

Handlers it calls (``on_server_side_emit``, ``custom_hook``, disconnects asked by other
nodes) run in background tasks of the server, never on the loop, so they may call the
cluster operations themselves.

Example::

    from flask import Flask
    from flask_socketio import SocketIO
    import siotools

    app = Flask(__name__)
    socketio = SocketIO(app, client_manager=siotools.RedisAdapter(url, dialect="current"))
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import contextlib
import os
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

import socketio

from siotools.dialects import base as seam
from siotools.dialects.base import RemoteSocket, Subscriptions
from siotools.exceptions import ConfigurationError, RequestTimeout, SocketNotFound
from siotools.loop_thread import LoopThread
from siotools.node import NodeCore
from siotools.requester import Requester
from siotools.shell import ACK_TIMEOUT, NodeShell, emit_args, new_uid, timed_out

__all__ = ["RedisAdapter", "cooperative_problem"]

# Emits queued for the loop beyond this wait until the loop took them (backpressure).
_OUTBOX_LIMIT = 4096

_ADAPTERS: weakref.WeakSet[RedisAdapter] = weakref.WeakSet()
# A parent's transport objects, kept so that a forked child never finalises them.
_INHERITED: list[Any] = []


def cooperative_problem(async_mode: str) -> str | None:
    """Why :class:`RedisAdapter` cannot run under ``async_mode`` (None: it can)."""
    if async_mode == "threading":
        return None
    if async_mode == "eventlet":
        import eventlet.patcher

        if all(eventlet.patcher.is_monkey_patched(m) for m in ("socket", "select", "thread")):
            return None
        return (
            "RedisAdapter under async_mode='eventlet' needs eventlet.monkey_patch() to run "
            "before anything else is imported, as its Redis side is a green thread"
        )
    if async_mode in ("gevent", "gevent_uwsgi"):
        from gevent import monkey

        if all(monkey.is_module_patched(m) for m in ("socket", "select", "threading")):
            return None
        return (
            f"RedisAdapter under async_mode={async_mode!r} needs gevent.monkey.patch_all() to "
            "run before anything else is imported, as its Redis side is a green thread"
        )
    return (
        f"RedisAdapter cannot run under async_mode={async_mode!r}: use 'threading', "
        "'eventlet' or 'gevent', or AsyncRedisAdapter with a socketio.AsyncServer"
    )


class _Acks:
    """The acks of this node's sockets for one ``emit_with_ack``."""

    def __init__(self, expected: int) -> None:
        self.values: list[Any] = []
        self.expected = expected
        self.done = threading.Event()
        if not expected:
            self.done.set()

    def add(self, *ack: Any) -> None:
        self.values.append(ack[0] if ack else None)
        if len(self.values) >= self.expected:
            self.done.set()


class RedisAdapter(NodeShell, socketio.Manager):  # type: ignore[misc]
    """A python-socketio ``Server`` (and Flask-SocketIO) ``client_manager`` that is a node
    of a Socket.IO Redis cluster; the synchronous :class:`~siotools.AsyncRedisAdapter`
    (options: :class:`~siotools.shell.NodeShell`). Every cluster operation blocks the
    calling thread (green thread under eventlet/gevent) until the cluster answered."""

    name = "siotools-redis"

    def _make_transport(self) -> None:
        super()._make_transport()
        self._bridge = LoopThread.for_process(f"siotools-adapter-{self.uid}")
        # (channel, payload, sharded): SPUBLISH, routed by slot on a Redis Cluster.
        self._outbox: collections.deque[tuple[bytes, bytes, bool]] = collections.deque()
        self._flush_pending = False
        self._unsettled = False
        self._starting: concurrent.futures.Future[None] | None = None
        self._start_lock = threading.Lock()
        self._pid = os.getpid()
        _ADAPTERS.add(self)

    @property
    def pub_client(self) -> Any:
        """A ``redis.Redis`` with the publishing side's settings, for the application's
        own commands (the adapter itself uses lean connections of its own)."""
        import redis

        return self._client("pub", redis.Redis)

    @property
    def sub_client(self) -> Any:
        """A ``redis.Redis`` with the subscribing side's settings."""
        import redis

        return self._client("sub", redis.Redis)

    # ------------------------------------------------------------------ lifecycle

    def set_server(self, server: Any) -> None:
        """Called by python-socketio when the server is created; joins the cluster in the
        background.

        Raises:
            ConfigurationError: The server's ``async_mode`` cannot carry this adapter.
        """
        problem = cooperative_problem(getattr(server.eio, "async_mode", "threading"))
        if problem is not None:
            raise ConfigurationError(problem)
        super().set_server(server)
        self._begin()

    def initialize(self) -> None:
        """Called by python-socketio on the first connection; joins the handlers'
        namespaces (registered after the server was made)."""
        super().initialize()
        self._begin()
        if self._started:
            for nsp in self._initial_namespaces():
                self._join_namespace(nsp)

    def _begin(self) -> concurrent.futures.Future[None] | None:
        self._check_fork()
        with self._start_lock:
            fut = self._starting
            if self._started or self._closed:
                return fut
            if fut is None or (fut.done() and fut.exception() is not None):
                fut = self._starting = self._bridge.submit(self._join_cluster)
                fut.add_done_callback(self._start_failed)
            return fut

    def _start_failed(self, fut: concurrent.futures.Future[None]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self._error(fut.exception())  # type: ignore[arg-type]

    def start(self) -> None:
        """Connect to Redis and join the cluster in every known namespace (idempotent,
        blocking; done on first use otherwise).

        Raises:
            RedisUnavailableError: Redis cannot be reached.
        """
        self._check_fork()
        fut = self._starting
        if fut is None or not fut.done() or fut.exception() is not None or not self._started:
            # Waits for a join in flight too: its subscriptions are made after _started.
            self._closed = False
            fut = self._begin()
        if fut is not None and not fut.done():
            fut.result()
        elif fut is not None and fut.exception() is not None:
            raise fut.exception()  # type: ignore[misc]

    def close(self) -> None:
        """Leave the cluster: unsubscribe, cancel pending requests, close the connections,
        stop the loop thread (idempotent; run at interpreter exit too)."""
        self._closed = True
        if self._bridge.running and not self._bridge.in_loop():
            with contextlib.suppress(Exception):
                self._bridge.run(self._leave, timeout=10)
        self._bridge.stop()
        self._started = False
        # A later start() joins again on fresh connections.
        self.core = NodeCore(self.wire, self.uid)
        self._pending_subs = []
        self._make_transport()

    async def _leave(self) -> None:
        self._flush()
        await self._close_transport()

    def __enter__(self) -> RedisAdapter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            self._forked()

    def _forked(self) -> None:
        """In a forked child: leave the parent's connections and loop alone, take a new
        node id, and join the cluster again on first use."""
        if self._pid == os.getpid():
            return
        _INHERITED.append((self._publisher, self._subscriber, self._engine))
        self._bridge.stop()
        self.uid = new_uid()
        self.core = NodeCore(self.wire, self.uid)
        self._pending_subs = []
        self._started = False
        self._make_transport()

    def _spawn(self, awaitable: Any) -> None:
        async def run() -> None:
            await awaitable

        self._bridge.submit(run)

    def _background(self, fn: Any, *args: Any) -> None:
        server = self.server
        if server is not None:
            server.start_background_task(fn, *args)
        else:
            threading.Thread(target=fn, args=args, daemon=True).start()

    # ------------------------------------------------------------------ handing over to the loop

    def _subscribe(self, subs: Subscriptions) -> None:
        self._unsettled = True
        self._bridge.call(self._subscribe_now, subs)

    def _subscribe_channel(self, channel: bytes) -> None:
        self._unsettled = True
        self._bridge.call(NodeShell._subscribe_channel, self, channel)

    def _unsubscribe_channel(self, channel: bytes) -> None:
        self._bridge.call(NodeShell._unsubscribe_channel, self, channel)

    def _settle(self) -> None:
        if self._unsettled and not self._bridge.in_loop():
            self._unsettled = False
            self._bridge.run(self._settle_subscriptions)

    def _publish_raw(self, channel: bytes, payload: bytes, sharded: bool = False) -> None:
        if self._bridge.in_loop():
            super()._publish_raw(channel, payload, sharded)
            return
        # One wake-up of the loop for a burst of publishes from the server's threads.
        self._outbox.append((channel, payload, sharded))
        if not self._flush_pending:
            self._flush_pending = True
            self._bridge.call(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        outbox, publish, either = self._outbox, self._publisher.publish, super()._publish_raw
        while outbox:
            channel, payload, sharded = outbox.popleft()
            if sharded:  # SPUBLISH, on the master of the channel's slot
                either(channel, payload, True)
            else:
                publish(channel, payload)

    async def _drain(self) -> None:
        self._flush()
        if self._publisher.congested:
            await self._publisher.wait_writable()

    def describe(self, sid: str, nsp: str) -> RemoteSocket:
        """How ``fetch_sockets`` reports a socket of this node (with its session)."""
        session: Any = None
        with contextlib.suppress(Exception):  # a socket that left meanwhile has no session
            session = self.server.get_session(sid, namespace=nsp)
        return self._remote_socket(sid, nsp, session)

    # ------------------------------------------------------------------ carrying out

    def _queue_delivery(self, action: seam.Deliver) -> None:
        # On the loop: python-engineio's send only queues the packet for the socket.
        try:
            self._metrics.delivered(self._deliver_local(**self._delivery(action)))
        except Exception as exc:
            self._error(exc)

    def _later(self, actions: list[seam.Action]) -> None:
        self._background(self._carry_out, actions)

    def _carry_out(self, actions: list[seam.Action]) -> None:
        try:
            for action in actions:
                self._act(action)
        except Exception as exc:
            self._error(exc)

    def _act(self, action: seam.Action) -> None:
        if self._act_now(action):
            pass
        elif isinstance(action, seam.Disconnect):
            for sid in action.sids:
                if self.is_connected(sid, action.nsp):
                    self._disconnect_local(sid, action.nsp, action.close)
        elif isinstance(action, seam.Settle):
            self._settle()
        elif isinstance(action, seam.CallHook):
            calls = self._hook_calls(action)
            if calls:
                answers = [fn(*args) for fn, args in calls]
                self._hook_answer(action, answers[0])
        elif isinstance(action, seam.FetchLocal):
            self._respond(action.respond([self.describe(sid, action.nsp) for sid in action.sids]))
        elif isinstance(action, seam.DeliverWithAck):
            targets, event, args, callback = self._ack_fanout(action)
            for sid in targets:
                super().emit(event, args, action.nsp, room=sid, callback=callback)

    def _deliver_local(
        self,
        nsp: str,
        data: list[Any],
        rooms: list[Any],
        except_: Iterable[Any],
        *,
        volatile: bool = False,
    ) -> int:
        """Queue ``[event, *args]`` for this node's sockets of ``rooms`` (every socket
        when empty); returns how many it was queued for."""
        server = self.server
        targets, packets = self._recipients(nsp, data, rooms, except_, volatile=volatile)
        for eio_sid in targets:
            for packet in packets:
                server._send_eio_packet(eio_sid, packet)
        return len(targets)

    def _disconnect_local(self, sid: str, nsp: str, close: bool) -> None:
        eio_sid = self.eio_sid_from_sid(sid, nsp)
        self.server.disconnect(sid, namespace=nsp, ignore_queue=True)
        if close and eio_sid is not None:
            # socket.disconnect(true) closes the whole Engine.IO connection.
            with contextlib.suppress(Exception):
                self.server.eio.disconnect(eio_sid)

    # ------------------------------------------------------------------ python-socketio API

    def pre_connect(self, eio_sid: str, namespace: str) -> Any:
        """Register a connecting socket (the namespace joins the cluster if new here)."""
        self._connecting(namespace)
        sid = super().pre_connect(eio_sid, namespace)
        self._settle()
        return self._connected(sid)

    def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """Deliver to this node's sockets and publish to the other nodes (see
        :meth:`AsyncRedisAdapter.emit <siotools.AsyncRedisAdapter.emit>`; a callback for a
        socket elsewhere is called from a background task)."""
        nsp = namespace or "/"
        route = self._route_emit(data, nsp, room, skip_sid, callback, to, kwargs)
        if route.ack == "local":
            super().emit(
                event, data, nsp, room=route.rooms[0], skip_sid=skip_sid, callback=callback
            )
            return
        if route.ack == "remote":
            self._background(self._remote_callback, event, route.args, nsp, route, callback)
            return
        message = [event, *route.args]
        if route.publish:
            self._publish_broadcast(nsp, message, route.rooms, route.skips, route.flags)
        if self.rooms.get(nsp):
            volatile = bool(route.flags.get("volatile"))
            self._deliver_local(nsp, message, route.rooms, route.skips, volatile=volatile)

    def _remote_callback(
        self, event: str, args: list[Any], nsp: str, route: Any, callback: Any
    ) -> None:
        # emit(..., callback=) / call() for sockets of other nodes: a broadcast with acks.
        to, skip = route.rooms or None, route.skips or None
        try:
            acks = self.emit_with_ack(
                event, tuple(args), to=to, skip_sid=skip, namespace=nsp, timeout=ACK_TIMEOUT
            )
        except RequestTimeout as exc:
            acks = list(exc.partial or [])
        for ack in acks:
            callback(*emit_args(ack))

    def _publish_broadcast(
        self, nsp: str, data: list[Any], rooms: list[Any], except_: list[Any], flags: dict[str, Any]
    ) -> None:
        if not self._started:
            self.start()
        self._broadcast_now(nsp, data, rooms, except_, flags)
        if len(self._outbox) > _OUTBOX_LIMIT or self._publisher.congested:
            self._bridge.run(self._drain)

    def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        """Put a socket in a room, on whichever node it is connected to."""
        if eio_sid is not None or self._is_local(sid, namespace):
            self.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
            self._settle()
            return
        self.remote_join(sid, room, namespace=namespace)

    def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Take a socket out of a room, on whichever node it is connected to."""
        if not self._is_local(sid, namespace):
            self.remote_leave(sid, room, namespace=namespace)
            return
        self.basic_leave_room(sid, namespace, room)

    def close_room(self, room: Any, namespace: str | None = None) -> None:
        """Empty ``room`` on every node."""
        nsp = namespace or "/"
        elsewhere = [s for s in self.clients([room], namespace=nsp) if not self._is_local(s, nsp)]
        self.basic_close_room(room, nsp)
        for sid in elsewhere:
            # A socket that left or disconnected meanwhile has nothing to leave.
            with contextlib.suppress(RequestTimeout, SocketNotFound):
                self.remote_leave(sid, room, namespace=nsp)

    def can_disconnect(self, sid: str, namespace: str) -> bool:
        """Whether python-socketio may disconnect a socket here; one of another node is
        disconnected there (and False returned)."""
        if not self._is_local(sid, namespace):
            with contextlib.suppress(RequestTimeout, SocketNotFound):
                self.remote_disconnect(sid, namespace=namespace)
            return False
        return bool(super().can_disconnect(sid, namespace))

    # ------------------------------------------------------------------ cluster requests

    def _ready(self, namespace: str) -> None:
        self.start()
        self._join_namespace(namespace)
        self._settle()

    def _run(self, namespace: str, plan: Any, requester: Requester | None = None) -> Any:
        self._ready(namespace)
        runner = requester or self._requester
        return self._bridge.run(lambda: runner.run(plan))

    def fetch_sockets(
        self,
        *,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
        local: bool = False,
    ) -> list[RemoteSocket]:
        """The sockets of the cluster in ``rooms`` minus ``except_rooms`` (blocking
        :meth:`AsyncRedisAdapter.fetch_sockets <siotools.AsyncRedisAdapter.fetch_sockets>`)."""
        wanted, unwanted = list(rooms or ()), list(except_rooms or ())
        here = [self.describe(s, namespace) for s in self._local_ids(namespace, wanted, unwanted)]
        if local:
            return here
        found: list[RemoteSocket] = self._run(
            namespace, self._fetch_plan(wanted, unwanted, namespace, here)
        )
        return found

    def sockets_join(
        self,
        room_or_rooms: Any,
        *,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
    ) -> None:
        """Blocking :meth:`AsyncRedisAdapter.sockets_join`."""
        self._run(
            namespace,
            self._bulk_plan("sockets_join", room_or_rooms, rooms, except_rooms, namespace),
        )

    def sockets_leave(
        self,
        room_or_rooms: Any,
        *,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
    ) -> None:
        """Blocking :meth:`AsyncRedisAdapter.sockets_leave`."""
        self._run(
            namespace,
            self._bulk_plan("sockets_leave", room_or_rooms, rooms, except_rooms, namespace),
        )

    def disconnect_sockets(
        self,
        *,
        close: bool = False,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
    ) -> None:
        """Blocking :meth:`AsyncRedisAdapter.disconnect_sockets`."""
        self._run(
            namespace, self._bulk_plan("disconnect_sockets", close, rooms, except_rooms, namespace)
        )

    def server_side_emit(self, event: str, *args: Any, namespace: str = "/") -> None:
        """Blocking :meth:`AsyncRedisAdapter.server_side_emit`."""
        self._run(namespace, self._sse_plan(event, args, namespace, False))

    def server_side_emit_with_ack(
        self, event: str, *args: Any, namespace: str = "/", timeout: float | None = None
    ) -> list[Any]:
        """Blocking :meth:`AsyncRedisAdapter.server_side_emit_with_ack`."""
        own = timeout is not None
        requester = (
            Requester(
                self._publisher, self._engine, timeout=timeout, counted=True, metrics=self._metrics
            )
            if own and timeout is not None
            else None
        )
        return list(self._run(namespace, self._sse_plan(event, args, namespace, True), requester))

    def emit_with_ack(
        self,
        event: str,
        data: Any = None,
        *,
        to: Any = None,
        skip_sid: Any = None,
        namespace: str = "/",
        timeout: float = 5.0,
    ) -> list[Any]:
        """Blocking :meth:`AsyncRedisAdapter.emit_with_ack`: every client's first ack
        argument, this node's sockets first.

        Raises:
            RequestTimeout: ``operation has timed out``; ``partial`` holds the acks so far.
            UnsupportedOperation: The dialect cannot carry acknowledgements (4.x/5.x).
        """
        plan, args, sids = self._ack_plan(event, data, to, skip_sid, namespace, timeout)
        self._ready(namespace)
        acks = _Acks(len(sids))
        for sid in sids:
            super().emit(event, args, namespace, room=sid, callback=acks.add)
        requester = self._requester
        elsewhere = self._bridge.submit(lambda: requester.run(plan))
        deadline = time.monotonic() + timeout
        in_time = acks.done.wait(timeout)
        try:
            # The plan times out by itself; the margin covers the hand-over.
            remote = elsewhere.result(max(0.0, deadline - time.monotonic()) + 5.0)
        except RequestTimeout as exc:
            raise timed_out(acks.values, exc.partial) from None
        if not in_time:
            raise timed_out(acks.values, remote)
        return [*acks.values, *remote]

    def clients(self, rooms: Iterable[Any] | None = None, *, namespace: str = "/") -> list[str]:
        """Blocking :meth:`AsyncRedisAdapter.clients`."""
        self._ready(namespace)
        plan = self._clients_plan(rooms, namespace)
        sids: list[str] = self._bridge.run(lambda: self._requester.run(plan))
        return sids

    def all_rooms(self, *, namespace: str = "/") -> list[Any]:
        """Blocking :meth:`AsyncRedisAdapter.all_rooms`."""
        self._ready(namespace)
        plan = self._all_rooms_plan(namespace)
        names: list[Any] = self._bridge.run(lambda: self._requester.run(plan))
        return names

    def client_rooms(self, sid: str, *, namespace: str = "/") -> list[Any]:
        """Blocking :meth:`AsyncRedisAdapter.client_rooms`."""
        if not self._is_local(sid, namespace):
            names: list[Any] = self._run(
                namespace, self.wire.client_rooms(namespace, self.uid, sid)
            )
            return names
        return self.rooms_of(sid, namespace)

    def remote_join(self, sid: str, room: Any, *, namespace: str = "/") -> None:
        """Blocking :meth:`AsyncRedisAdapter.remote_join`."""
        if not self.is_connected(sid, namespace):
            self._run(namespace, self.wire.remote_join(namespace, self.uid, sid, room))
            return
        self._enter_local(sid, namespace, room)
        self._settle()

    def remote_leave(self, sid: str, room: Any, *, namespace: str = "/") -> None:
        """Blocking :meth:`AsyncRedisAdapter.remote_leave`."""
        if not self.is_connected(sid, namespace):
            self._run(namespace, self.wire.remote_leave(namespace, self.uid, sid, room))
            return
        self.basic_leave_room(sid, namespace, room)

    def remote_disconnect(self, sid: str, close: bool = False, *, namespace: str = "/") -> None:
        """Blocking :meth:`AsyncRedisAdapter.remote_disconnect`."""
        if not self.is_connected(sid, namespace):
            self._run(namespace, self.wire.remote_disconnect(namespace, self.uid, sid, close))
            return
        self._disconnect_local(sid, namespace, close)

    def custom_request(self, data: Any, *, namespace: str = "/") -> list[Any]:
        """Blocking :meth:`AsyncRedisAdapter.custom_request`."""
        replies: list[Any] = self._run(
            namespace, self.wire.custom_request(namespace, self.uid, data)
        )
        return replies

    def server_count(self, *, namespace: str = "/") -> int:
        """Blocking :meth:`AsyncRedisAdapter.server_count`."""
        count: int = self._run(namespace, self.wire.server_count(namespace))
        return count

    node_count = server_count


def _after_fork_in_child() -> None:
    for adapter in list(_ADAPTERS):
        with contextlib.suppress(Exception):
            adapter._forked()


def _at_exit() -> None:
    for adapter in list(_ADAPTERS):
        with contextlib.suppress(Exception):
            adapter.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
