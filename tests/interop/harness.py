"""Mixed Python + Node clusters behind one interface, for the interop tests.

A :class:`Cluster` has three nodes ``A``, ``B`` and ``C`` on one Redis key. ``A`` is the
node that acts (broadcasts, asks); ``B`` and ``C`` receive and answer. The *direction*
chooses their kinds:

* ``py-asks``: A is a Python node, B and C are Node nodes;
* ``node-asks``: A is a Node node, B and C are Python nodes;
* ``python``: all three are Python nodes.

Every node serves the namespaces ``/`` and ``/t0`` .. ``/tN``; each test takes a namespace
of its own (:meth:`Cluster.namespace`), so tests sharing a cluster never see each other's
sockets or rooms. Node servers get Node socket.io clients (from a client-only Node peer of
the same flavor), Python servers get python-socketio clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import socketio

from siotools import RequestTimeout
from siotools.exceptions import NodePeerError
from siotools.nodepeer import UNDEFINED, NodePeer
from siotools.protocol import Dialect
from siotools.pynode import PythonNode
from siotools.sync_pynode import SyncPythonNode

NAMESPACES = 40
# Short, as "socket not found" is a timeout; every request that completes does so early.
REQUESTS_TIMEOUT = 0.5
NSPS = ["/", *(f"/t{i}" for i in range(NAMESPACES))]


@dataclass(frozen=True)
class Config:
    """One flavor of the protocol, with matching Node and Python adapter options."""

    id: str
    flavor: str
    node_opts: dict[str, Any] = field(default_factory=dict)
    py_opts: dict[str, Any] = field(default_factory=dict)

    @property
    def multiplexing(self) -> bool:
        """Whether the nodes SUBSCRIBE per room (4.x multiplexing)."""
        return bool(self.node_opts.get("multiplexing", False))

    @property
    def redis_cluster(self) -> bool:
        """Whether the nodes run on the session's Redis Cluster (a seed node's URL)."""
        return bool(self.py_opts.get("cluster", False))

    @property
    def sharded(self) -> bool:
        """Whether the nodes are @socket.io/redis-adapter sharded nodes."""
        return self.node_opts.get("adapter") == "sharded"

    def on_redis_cluster(self) -> Config:
        """The same flavor on a Redis Cluster: Python ``cluster=True``, Node node-redis
        ``createCluster`` (RA's "redis@4 cluster" matrix entries)."""
        return Config(
            f"{self.id}-rcluster",
            self.flavor,
            node_opts={**self.node_opts, "redis_cluster": True},
            py_opts={**self.py_opts, "cluster": True},
        )


CONFIGS = [
    Config("legacy5-subscribe", "legacy5"),
    Config("legacy5-psubscribe", "legacy5", py_opts={"subscription_mode": "psubscribe"}),
    Config(
        "legacy4-mux",
        "legacy4",
        node_opts={"multiplexing": True},
        py_opts={"with_channel_multiplexing": True, "dialect": Dialect.LEGACY_LITE},
    ),
    Config(
        "legacy4-nomux",
        "legacy4",
        node_opts={"multiplexing": False},
        py_opts={"with_channel_multiplexing": False},
    ),
]
DIRECTIONS = ["py-asks", "node-asks", "python"]
# The Python nodes' adapter: AsyncRedisAdapter (aiohttp) or RedisAdapter (threading, WSGI).
ADAPTERS = ["async", "sync"]

# @socket.io/redis-adapter 8.3.0 classic, as RA's own test matrix runs it: default, with
# the specific response channel, and with a JSON parser.
CURRENT_CONFIGS = [
    Config("current", "current", py_opts={"dialect": "current"}),
    Config(
        "current-specific",
        "current",
        node_opts={"specific_response_channel": True},
        py_opts={"dialect": "current", "publish_on_specific_response_channel": True},
    ),
    Config(
        "current-json",
        "current",
        node_opts={"parser": "json"},
        py_opts={"dialect": "current", "parser": "json"},
    ),
]


# @socket.io/redis-adapter 8.3.0 createShardedAdapter, as RA's "[sharded] redis@4
# standalone" entries run it (the three subscription modes), then on a Redis Cluster.
SHARDED_CONFIGS = [
    Config(
        f"sharded-{mode}",
        "current",
        node_opts={"adapter": "sharded", "subscription_mode": mode},
        py_opts={"dialect": "sharded", "subscription_mode": mode},
    )
    for mode in ("dynamic", "static", "dynamic-private")
]
SHARDED_CLUSTER_CONFIGS = [c.on_redis_cluster() for c in SHARDED_CONFIGS]


class Timeout(Exception):
    """A cluster request timed out (Python ``RequestTimeout`` or a Node timeout error)."""

    def __init__(self, message: str, partial: Any) -> None:
        super().__init__(message)
        self.partial = partial


# ---------------------------------------------------------------------------- clients


class Client:
    """A socket.io client connected to one namespace of one node."""

    sid: str
    nsp: str

    async def join(self, *rooms: str) -> list[str]:
        raise NotImplementedError

    async def leave(self, room: str) -> list[str]:
        raise NotImplementedError

    def received(self, event: str) -> list[list[Any]]:
        """The args of every ``event`` received so far."""
        raise NotImplementedError

    async def wait_event(self, event: str, timeout: float = 5.0) -> list[Any]:
        """The args of the next ``event`` not returned before."""
        raise NotImplementedError

    async def wait_disconnected(self, timeout: float = 5.0) -> str:
        """Wait until the server disconnected this client; returns the reason."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class PyClient(Client):
    """python-socketio ``AsyncClient`` (EIO4) for a Python server."""

    def __init__(self, nsp: str, *, mute: bool = False) -> None:
        self.nsp = nsp
        self.mute = mute
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, list[Any]]] = []
        self.reasons: list[str] = []
        self._consumed: dict[str, int] = {}
        self._changed = asyncio.Event()

        async def catch_all(event: str, *args: Any) -> dict[str, str]:
            self.events.append((event, list(args)))
            self._changed.set()
            if self.mute:  # never acknowledges (python-socketio acks when a handler returns)
                await asyncio.sleep(3600)
            # The ack, when the server asked for one (the Node clients answer the same).
            return {"client": self.sid, "event": event}

        async def on_disconnect(reason: Any = None) -> None:
            # python-socketio calls socket.io's "io server disconnect" "server disconnect".
            if reason == self.sio.reason.SERVER_DISCONNECT:
                reason = "io server disconnect"
            self.reasons.append(str(reason))
            self._changed.set()

        self.sio.on("*", catch_all, namespace=nsp)
        self.sio.on("disconnect", on_disconnect, namespace=nsp)

    async def connect(self, url: str) -> PyClient:
        await self.sio.connect(url, namespaces=[self.nsp], transports=["websocket"])
        sid = self.sio.get_sid(self.nsp)
        assert sid is not None
        self.sid = str(sid)
        return self

    async def join(self, *rooms: str) -> list[str]:
        result: list[str] = await self.sio.call("join", list(rooms), namespace=self.nsp, timeout=5)
        return result

    async def leave(self, room: str) -> list[str]:
        result: list[str] = await self.sio.call("leave", room, namespace=self.nsp, timeout=5)
        return result

    def received(self, event: str) -> list[list[Any]]:
        return [args for ev, args in self.events if ev == event]

    async def _until(self, check: Any, timeout: float) -> Any:
        async def loop() -> Any:
            while True:
                self._changed.clear()
                value = check()
                if value is not None:
                    return value
                await self._changed.wait()

        return await asyncio.wait_for(loop(), timeout)

    async def wait_event(self, event: str, timeout: float = 5.0) -> list[Any]:
        def check() -> list[Any] | None:
            got = self.received(event)
            n = self._consumed.get(event, 0)
            if len(got) > n:
                self._consumed[event] = n + 1
                return got[n]
            return None

        result: list[Any] = await self._until(check, timeout)
        return result

    async def wait_disconnected(self, timeout: float = 5.0) -> str:
        reason: str = await self._until(lambda: self.reasons[0] if self.reasons else None, timeout)
        return reason

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()


class NodeClient(Client):
    """A Node socket.io-client (1.7.4 or 2.5.0, EIO3) living in a client-only peer."""

    _names = itertools.count()

    def __init__(self, peer: NodePeer, nsp: str) -> None:
        self.peer = peer
        self.nsp = nsp
        self.name = f"c{next(self._names)}"

    async def connect(self, url: str) -> NodeClient:
        result = await self.peer.call("client_connect", client=self.name, url=url, nsp=self.nsp)
        self.sid = result["id"]
        return self

    async def join(self, *rooms: str) -> list[str]:
        result: list[str] = await self.peer.call("client_join", client=self.name, rooms=list(rooms))
        return result

    async def leave(self, room: str) -> list[str]:
        result: list[str] = await self.peer.call("client_leave", client=self.name, room=room)
        return result

    def received(self, event: str) -> list[list[Any]]:
        return [
            e["args"]
            for e in self.peer.events
            if e["name"] == "client_recv" and e["client"] == self.name and e["event"] == event
        ]

    async def wait_event(self, event: str, timeout: float = 5.0) -> list[Any]:
        ev = await self.peer.wait_event(
            name="client_recv", client=self.name, event=event, timeout=timeout
        )
        args: list[Any] = ev["args"]
        return args

    async def wait_disconnected(self, timeout: float = 5.0) -> str:
        ev = await self.peer.wait_event(name="client_disconnect", client=self.name, timeout=timeout)
        return str(ev["reason"])

    async def close(self) -> None:
        with contextlib.suppress(NodePeerError):
            await self.peer.call("client_close", client=self.name)


# ---------------------------------------------------------------------------- servers


class Server:
    """One node of the cluster, Python or Node, with the operations the tests need."""

    name: str
    kind: str

    async def client(self, nsp: str) -> Client:
        raise NotImplementedError

    async def emit(
        self, nsp: str, event: str, args: list[Any], rooms: list[str] = (), local: bool = False
    ) -> None:
        """``io.of(nsp).to(rooms...).emit(event, ...args)`` (``local``: ``io.local``)."""
        raise NotImplementedError

    async def socket_broadcast(
        self, nsp: str, sid: str, event: str, args: list[Any], rooms: list[str] = ()
    ) -> None:
        """``socket.broadcast.to(rooms...).emit``: everyone but the sender socket."""
        raise NotImplementedError

    async def request(self, op: str, nsp: str, *args: Any) -> Any:
        """Run a cluster request: ``clients``, ``all_rooms``, ``client_rooms``,
        ``remote_join``, ``remote_leave``, ``remote_disconnect``, ``custom_request``.
        Raises :class:`Timeout`."""
        raise NotImplementedError

    async def op(self, name: str, nsp: str, **params: Any) -> Any:
        """Run an 8.x server API call: ``fetch_sockets`` (rooms, except_, local) -> list of
        ``{id, rooms (sorted), data}``; ``sockets_join``/``sockets_leave`` (join/leave,
        rooms, except_); ``disconnect_sockets`` (close, rooms, except_);
        ``server_side_emit`` (event, args, ack) -> replies; ``emit_with_ack`` (event,
        args, rooms, timeout) -> acks; ``all_rooms``; ``server_count``. Raises
        :class:`Timeout` with the partial result."""
        raise NotImplementedError


class PyServer(Server):
    kind = "py"

    def __init__(self, node: PythonNode | SyncPythonNode, name: str) -> None:
        self.node = node
        self.name = name
        self.sync = isinstance(node, SyncPythonNode)
        self.adapter: Any = node.adapter
        self.url = node.url
        node.adapter.custom_hook = lambda data: {"node": name, "echo": data}
        self.errors: list[BaseException] = []
        node.adapter.on_error(self.errors.append)
        self.sse_mode = "reply"
        self.sse_received: list[tuple[str, str, list[Any]]] = []
        if node.adapter.wire.capabilities.server_side_emit:
            for nsp in NSPS:
                for event in ("sse", "sse-ack"):
                    node.adapter.on_server_side_emit(event, namespace=nsp)(
                        self._sse_handler(nsp, event)
                    )

    def _sse_handler(self, nsp: str, event: str) -> Any:
        # As the Node peers' handlers: record, and answer {node, event, args} in reply mode.
        def record(args: tuple[Any, ...]) -> Any:
            self.sse_received.append((nsp, event, list(args)))
            return {"node": self.name, "event": event, "args": list(args)}

        async def handler(*args: Any) -> Any:
            answer = record(args)
            if self.sse_mode == "silent":
                await asyncio.sleep(3600)
            return answer

        def sync_handler(*args: Any) -> Any:
            answer = record(args)
            if self.sse_mode == "silent":
                time.sleep(3600)  # a daemon background thread: it dies with the process
            return answer

        return sync_handler if self.sync else handler

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a server or adapter method: awaited (async node) or in a thread (sync)."""
        if self.sync:
            return await asyncio.to_thread(fn, *args, **kwargs)
        result = fn(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    async def op(self, name: str, nsp: str, **p: Any) -> Any:
        a = self.adapter
        rooms, except_ = p.get("rooms") or None, p.get("except_") or None
        try:
            if name == "fetch_sockets":
                found = await self.call(
                    a.fetch_sockets,
                    rooms=rooms,
                    except_rooms=except_,
                    namespace=nsp,
                    local=p.get("local", False),
                )
                return [{"id": s.id, "rooms": sorted(s.rooms), "data": s.data} for s in found]
            if name == "sockets_join":
                return await self.call(
                    a.sockets_join, p["join"], rooms=rooms, except_rooms=except_, namespace=nsp
                )
            if name == "sockets_leave":
                return await self.call(
                    a.sockets_leave, p["leave"], rooms=rooms, except_rooms=except_, namespace=nsp
                )
            if name == "disconnect_sockets":
                return await self.call(
                    a.disconnect_sockets,
                    close=p.get("close", False),
                    rooms=rooms,
                    except_rooms=except_,
                    namespace=nsp,
                )
            if name == "server_side_emit":
                if p.get("ack"):
                    return await self.call(
                        a.server_side_emit_with_ack, p["event"], *p.get("args", []), namespace=nsp
                    )
                return await self.call(
                    a.server_side_emit, p["event"], *p.get("args", []), namespace=nsp
                )
            if name == "emit_with_ack":
                return await self.call(
                    a.emit_with_ack,
                    p["event"],
                    tuple(p.get("args", [])),
                    to=rooms,
                    namespace=nsp,
                    timeout=p.get("timeout", 2.0),
                )
            if name == "all_rooms":
                return await self.call(a.all_rooms, namespace=nsp)
            if name == "server_count":
                return await self.call(a.server_count, namespace=nsp)
        except RequestTimeout as exc:
            raise Timeout(str(exc), exc.partial) from exc
        raise ValueError(name)

    async def client(self, nsp: str) -> Client:
        return await PyClient(nsp).connect(self.url)

    async def emit(
        self, nsp: str, event: str, args: list[Any], rooms: list[str] = (), local: bool = False
    ) -> None:
        # io.local.emit is python-socketio's ignore_queue: deliver here, publish nothing.
        await self.call(
            self.node.sio.emit,
            event,
            tuple(args),
            to=list(rooms) or None,
            namespace=nsp,
            ignore_queue=local,
        )

    async def socket_broadcast(
        self, nsp: str, sid: str, event: str, args: list[Any], rooms: list[str] = ()
    ) -> None:
        await self.call(
            self.node.sio.emit,
            event,
            tuple(args),
            to=list(rooms) or None,
            skip_sid=sid,
            namespace=nsp,
        )

    async def request(self, op: str, nsp: str, *args: Any) -> Any:
        method = getattr(self.adapter, op)
        try:
            return await self.call(method, *args, namespace=nsp)
        except RequestTimeout as exc:
            raise Timeout(str(exc), exc.partial) from exc


_NODE_OPS = {
    "clients": ("clients", ("rooms",)),
    "all_rooms": ("allRooms", ()),
    "client_rooms": ("clientRooms", ("sid",)),
    "remote_join": ("remoteJoin", ("sid", "room")),
    "remote_leave": ("remoteLeave", ("sid", "room")),
    "remote_disconnect": ("remoteDisconnect", ("sid", "close")),
    "custom_request": ("customRequest", ("data",)),
}


def _node_sockets(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": s["id"], "rooms": sorted(s["rooms"]), "data": s["data"]} for s in found]


class NodeServer(Server):
    kind = "node"

    async def op(self, name: str, nsp: str, **p: Any) -> Any:
        common: dict[str, Any] = {"nsp": nsp, "rooms": list(p.get("rooms") or [])}
        if p.get("except_"):
            common["except"] = list(p["except_"])
        if p.get("local"):
            common["flags"] = {"local": True}
        try:
            if name == "fetch_sockets":
                return _node_sockets(await self.peer.call("fetchSockets", **common))
            if name == "sockets_join":
                return await self.peer.call("socketsJoin", join=p["join"], **common)
            if name == "sockets_leave":
                return await self.peer.call("socketsLeave", leave=p["leave"], **common)
            if name == "disconnect_sockets":
                return await self.peer.call(
                    "disconnectSockets", close=p.get("close", False), **common
                )
            if name == "server_side_emit":
                return await self.peer.call(
                    "serverSideEmit",
                    nsp=nsp,
                    event=p["event"],
                    args=p.get("args", []),
                    ack=bool(p.get("ack")),
                )
            if name == "emit_with_ack":
                common["flags"] = {"timeout": int(p.get("timeout", 2.0) * 1000)}
                return await self.peer.call(
                    "nsp_emit", event=p["event"], args=p.get("args", []), ack=True, **common
                )
            if name == "all_rooms":
                return await self.peer.call("allRooms", nsp=nsp)
            if name == "server_count":
                return await self.peer.call("serverCount", nsp=nsp)
        except NodePeerError as exc:
            message = str(exc).split(" failed: ", 1)[-1]
            if message.startswith(("timeout reached", "operation has timed out")):
                raise Timeout(message, exc.result) from exc
            raise
        raise ValueError(name)

    def __init__(self, peer: NodePeer, clients: NodePeer) -> None:
        self.peer = peer
        self.name = peer.name
        self.url = peer.url
        self.client_peer = clients

    async def client(self, nsp: str) -> Client:
        client = await NodeClient(self.client_peer, nsp).connect(self.url)
        # socket.io-client 1.7.4 reports the bare engine id; the server's socket id (the
        # one requests name) is `/nsp#<engine id>` there, so take it from the server.
        ev = await self.peer.wait_event(name="connection", nsp=nsp, client=client.name)
        client.sid = ev["sid"]
        return client

    async def emit(
        self, nsp: str, event: str, args: list[Any], rooms: list[str] = (), local: bool = False
    ) -> None:
        flags = {"local": True} if local else {}
        await self.peer.call(
            "nsp_emit", nsp=nsp, rooms=list(rooms), flags=flags, event=event, args=args
        )

    async def socket_broadcast(
        self, nsp: str, sid: str, event: str, args: list[Any], rooms: list[str] = ()
    ) -> None:
        await self.peer.call(
            "socket_emit",
            nsp=nsp,
            sid=sid,
            broadcast=True,
            rooms=list(rooms),
            event=event,
            args=args,
        )

    async def request(self, op: str, nsp: str, *args: Any) -> Any:
        cmd, names = _NODE_OPS[op]
        params = dict(zip(names, args, strict=False))
        if op == "clients" and params.get("rooms") is None:
            params["rooms"] = []
        try:
            result = await self.peer.call(cmd, nsp=nsp, **params)
        except NodePeerError as exc:
            message = str(exc).split(" failed: ", 1)[-1]
            if message.startswith("timeout reached"):
                raise Timeout(message, exc.result) from exc
            raise
        # fn(null) with no result: JavaScript undefined, Python's None.
        return None if result is UNDEFINED else result


# ---------------------------------------------------------------------------- cluster


class Cluster:
    """Three nodes ``a`` (acts), ``b``, ``c`` on one Redis and key."""

    def __init__(
        self, config: Config, direction: str, redis_url: str, key: str, adapter: str = "async"
    ) -> None:
        self.config = config
        self.direction = direction
        self.adapter = adapter
        self.redis_url = redis_url
        self.key = key
        self.nodes: list[Server] = []
        self.py_nodes: list[PythonNode | SyncPythonNode] = []
        self.peers: list[NodePeer] = []
        self.client_peer: NodePeer | None = None
        self._nsps = iter(NSPS[1:])

    @property
    def a(self) -> Server:
        return self.nodes[0]

    @property
    def b(self) -> Server:
        return self.nodes[1]

    @property
    def c(self) -> Server:
        return self.nodes[2]

    def namespace(self) -> str:
        """A namespace no other test of this cluster uses."""
        return next(self._nsps)

    async def _python(self, name: str) -> Server:
        def setup(sio: Any) -> None:
            # socket.data of the Node peers is {name, node}; a python-socketio node's is
            # the session.
            for nsp in NSPS:

                async def connect(sid: str, environ: Any, auth: Any = None, nsp: str = nsp) -> None:
                    await sio.save_session(sid, {"node": name}, namespace=nsp)

                def sync_connect(sid: str, environ: Any, auth: Any = None, nsp: str = nsp) -> None:
                    sio.save_session(sid, {"node": name}, namespace=nsp)

                sio.on(
                    "connect", sync_connect if self.adapter == "sync" else connect, namespace=nsp
                )

        options: dict[str, Any] = {
            "key": self.key,
            "namespaces": NSPS,
            "requests_timeout": REQUESTS_TIMEOUT,
            "setup": setup,
            **self.config.py_opts,
        }
        node: PythonNode | SyncPythonNode
        if self.adapter == "sync":
            node = SyncPythonNode(self.redis_url, **options)
            await asyncio.to_thread(node.start)
        else:
            node = await PythonNode(self.redis_url, **options).start()
        self.py_nodes.append(node)
        return PyServer(node, name)

    async def _node(self, name: str) -> Server:
        peer = await NodePeer.start(
            self.config.flavor,
            name=name,
            port=0,
            redis_url=self.redis_url,
            key=self.key,
            nsps=NSPS,
            requests_timeout_ms=int(REQUESTS_TIMEOUT * 1000),
            **self.config.node_opts,
        )
        self.peers.append(peer)
        assert self.client_peer is not None
        return NodeServer(peer, self.client_peer)

    async def start(self) -> Cluster:
        kinds = {
            "py-asks": "pnn",
            "node-asks": "npp",
            "python": "ppp",
        }[self.direction]
        if "n" in kinds:
            extra = {"redis_cluster": True} if self.config.node_opts.get("redis_cluster") else {}
            self.client_peer = await NodePeer.start(
                self.config.flavor, name="CL", redis_url=self.redis_url, key=self.key, **extra
            )
            self.peers.append(self.client_peer)
        for name, kind in zip("ABC", kinds, strict=True):
            self.nodes.append(await (self._python(name) if kind == "p" else self._node(name)))
        return self

    async def settle(self) -> None:
        """Wait until every node confirmed its pending (per-room) subscriptions."""
        for node in self.nodes:
            if isinstance(node, NodeServer):
                await node.peer.call("settle")

    def node_failures(self) -> list[str]:
        """Problems of the Node processes: uncaught exceptions, adapter errors, exits."""
        out = []
        for peer in self.peers:
            if not peer.running:
                out.append(f"{peer.name} exited: {peer.stderr[-2000:]}")
            for ev in peer.events:
                if ev["name"] in ("uncaught_exception", "adapter_error", "redis_error"):
                    out.append(f"{peer.name}: {ev}")
        return out

    async def stop(self) -> None:
        for node in self.py_nodes:
            if isinstance(node, SyncPythonNode):
                await asyncio.to_thread(node.stop)
            else:
                await node.stop()
        for peer in reversed(self.peers):
            await peer.stop()
