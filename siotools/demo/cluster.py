"""``DemoCluster``: Redis, python-socketio nodes, an optional Node node and simulated clients.

Everything runs in the caller's event loop except Redis and the Node node, which are child
processes. The clients are real python-socketio ``AsyncClient`` objects over websockets, so
every broadcast they cause is real adapter traffic on Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from siotools._extras import require
from siotools.demo.traffic import (
    CHAT_ROOMS,
    NAMESPACES,
    NodeSide,
    NodeState,
    SimClient,
    install_handlers,
    pick_action,
    remote_operation,
)
from siotools.exceptions import ConfigurationError
from siotools.transport.timers import wait_for

__all__ = ["CHAT_ROOMS", "NAMESPACES", "DemoCluster", "DemoStats"]

log = logging.getLogger("siotools.demo")


@dataclass
class DemoStats:
    """Counters of what the demo has done since it started.

    Attributes:
        started: ``time.monotonic()`` when the cluster became ready (0 before).
        actions: Client actions by kind (``say``, ``upload``, ``move``, ...).
        remote_ops: Remote operations by kind (``remote_join``, ``custom_request``, ...).
        received: Events delivered to the simulated clients.
        connects: Successful client connections (reconnections included).
        reconnects: Client reconnections.
        node_emits: Broadcasts sent by the Node node (``--node-peer``).
        errors: Failed actions by kind (timeouts, disconnected clients).
        skipped: Actions dropped because too many were still in flight.
    """

    started: float = 0.0
    actions: Counter[str] = field(default_factory=Counter)
    remote_ops: Counter[str] = field(default_factory=Counter)
    received: int = 0
    connects: int = 0
    reconnects: int = 0
    node_emits: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    last_error: dict[str, str] = field(default_factory=dict)
    skipped: int = 0

    def failed(self, kind: str, exc: BaseException | None = None) -> None:
        """Count a failed action of ``kind``; ``exc`` is kept to say what it was."""
        self.errors[kind] += 1
        if exc is not None:
            text = " ".join(str(exc).split())
            name = type(exc).__name__
            self.last_error[kind] = f"{name}: {text[:80]}" if text else name

    def errors_detail(self) -> str:
        """``4 (say 3: TimeoutError; connect 1)``: the failures by kind and the last reason."""
        total = sum(self.errors.values())
        if not total:
            return "0"
        parts = []
        for kind, n in self.errors.most_common(3):
            why = self.last_error.get(kind)
            parts.append(f"{kind} {n}" + (f": {why}" if why else ""))
        more = "; ..." if len(self.errors) > 3 else ""
        return f"{total} ({'; '.join(parts)}{more})"

    def summary(self, connected: int) -> str:
        """One status line: sockets, action rate, deliveries, churn, remote operations."""
        elapsed = max(time.monotonic() - self.started, 1e-9) if self.started else 0.0
        total = sum(self.actions.values())
        rate = total / elapsed if elapsed else 0.0
        return (
            f"clients {connected}  actions {total} ({rate:.0f}/s)  delivered {self.received}  "
            f"reconnects {self.reconnects}  remote ops {sum(self.remote_ops.values())}  "
            f"node emits {self.node_emits}  errors {self.errors_detail()}"
        )


class DemoCluster:
    """A local Socket.IO cluster with simulated users, for demos, notebooks and tests.

    Starts (in :meth:`start`) a private Redis unless ``redis_url`` is given, ``nodes``
    :class:`~siotools.pynode.PythonNode` servers with the siotools adapter, optionally a
    real Node node of the same generation, and ``clients`` python-socketio
    clients spread over the nodes. The clients connect to ``/`` and ``/chat``, join and leave
    rooms (some busy, some quiet), chat, type, react, whisper, upload binary files and
    reconnect; a cluster client does occasional remote operations (joins, leaves, kicks,
    custom requests, announcements).

    Args:
        nodes: How many python-socketio nodes.
        clients: How many simulated clients.
        rate: Client actions per second, over all clients.
        node_peer: Add a Node node from the interop harness (needs Node and npm).
        dialect: What the cluster speaks (``"current"``: socket.io 4 +
            @socket.io/redis-adapter 8.x; ``"sharded"``: its ``createShardedAdapter``, on
            Redis 7 sharded pub/sub; ``"legacy"``: socket.io 2 + socket.io-redis 5.x;
            ``"legacy-lite"``: 4.x); the Node node is of the same generation.
        redis_url: Use this Redis instead of starting one (``?cluster=true``: a node of a
            Redis Cluster).
        redis_cluster: Start a private 3-master Redis Cluster instead of one Redis.
        key: The cluster's channel prefix.
        churn: Fraction of client actions that are a disconnect followed by a reconnect.
        remote_interval: Seconds between remote operations (0 disables them).
        seed: Seed of the random choices, for repeatable runs.
    """

    def __init__(
        self,
        *,
        nodes: int = 3,
        clients: int = 200,
        rate: float = 50.0,
        node_peer: bool = False,
        dialect: str = "current",
        redis_url: str | None = None,
        redis_cluster: bool = False,
        key: str = "socket.io",
        churn: float = 0.02,
        remote_interval: float = 2.0,
        seed: int | None = None,
    ) -> None:
        if nodes < 1:
            raise ConfigurationError("The demo needs at least one node (--nodes 1 or more)")
        if not (math.isfinite(rate) and math.isfinite(remote_interval)):
            raise ConfigurationError("--rate and the remote interval must be finite numbers")
        if clients < 0 or rate < 0 or remote_interval < 0:
            raise ConfigurationError("--clients, --rate and the remote interval cannot be negative")
        if not 0 <= churn <= 1:
            raise ConfigurationError("churn is a fraction of the actions, between 0 and 1")
        if not key:
            raise ConfigurationError("The channel prefix (--key) cannot be empty")
        if redis_cluster and redis_url is not None:
            raise ConfigurationError(
                "Either start a private Redis Cluster (--redis-cluster) or use a given Redis "
                "(--redis URL, with ?cluster=true for a Redis Cluster), not both"
            )
        self.n_nodes = nodes
        self.n_clients = clients
        self.rate = float(rate)
        self.with_node_peer = node_peer
        from siotools.dialects import make_dialect, resolve_dialect

        self.dialect = resolve_dialect(dialect)
        self._wire = make_dialect(self.dialect, key)
        self.with_redis_cluster = redis_cluster
        self.key = key
        self.churn = churn
        self.remote_interval = remote_interval
        self.rng = random.Random(seed)
        self.stats = DemoStats()
        self._given_url = redis_url
        self._redis: Any = None
        self.nodes: list[Any] = []
        """The running :class:`~siotools.pynode.PythonNode` servers."""
        self.clients: list[SimClient] = []
        """The simulated clients (connected or not)."""
        self.node_side: NodeSide | None = None
        self._cluster: Any = None
        self._session: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[Any]] = []
        self._running = False
        self._redis_ready = False
        self._stopped = asyncio.Event()

    # ------------------------------------------------------------------ properties

    @property
    def redis_url(self) -> str:
        """The cluster's Redis URL (the private server's once started; a Redis Cluster's
        seed node with ``?cluster=true``)."""
        if self._redis is not None:
            url = str(self._redis.url)
            return url + "?cluster=true" if self.with_redis_cluster else url
        if self._given_url is None:
            raise ConfigurationError("The demo's Redis is not started yet")
        return self._given_url

    @property
    def on_redis_cluster(self) -> bool:
        """Whether the cluster's Redis is a Redis Cluster."""
        from siotools.transport.cluster import parse_cluster_url

        return parse_cluster_url(self.redis_url)[1]

    @property
    def seed_url(self) -> str:
        """:attr:`redis_url` without ``?cluster=true`` (what a Node client connects to)."""
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        parts = urlsplit(self.redis_url)
        query = [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k.lower() != "cluster"
        ]
        return urlunsplit(parts._replace(query=urlencode(query)))

    @property
    def shown_url(self) -> str:
        """:attr:`redis_url` without its password, if it has one (safe to print)."""
        url = self.redis_url
        if "@" not in url:
            return url
        from siotools.transport.endpoint import redact_url

        # Not RedisEndpoint.from_url: that reads a single Redis, and this may end in
        # ?cluster=true (kept, as the printed URL is meant to be used).
        return redact_url(url)

    @property
    def node_urls(self) -> list[str]:
        """HTTP URLs of every node (the Node node last)."""
        urls = [node.url for node in self.nodes]
        if self.node_side is not None:
            urls.append(self.node_side.url)
        return urls

    @property
    def node_names(self) -> dict[str, str]:
        """Each node's adapter uid (the ``uid`` of its broadcasts) -> a readable name."""
        names = {node.adapter.uid: f"py-{i + 1}" for i, node in enumerate(self.nodes)}
        if self.node_side is not None:
            # socket.io-redis gives each namespace's adapter a uid of its own.
            for uid in (self.node_side.peer.ready.get("uids") or {}).values():
                names[str(uid)] = "node-1"
        return names

    @property
    def running(self) -> bool:
        """Whether the cluster is started and not stopped."""
        return self._running

    def connected_clients(self) -> list[SimClient]:
        """The simulated clients that are connected right now."""
        return [c for c in self.clients if c.connected]

    def describe(self) -> list[str]:
        """Human-readable lines saying what runs where."""
        redis = "Redis Cluster (3 masters), seed node" if self.with_redis_cluster else "Redis"
        lines = [f"{redis} {self.shown_url}  key {self.key!r}"]
        for i, node in enumerate(self.nodes):
            lines.append(
                f"python-socketio node {i + 1}: {node.url}  (AsyncRedisAdapter, {self._wire.label})"
            )
        if self.node_side is not None:
            lines.append(
                f"Node node: {self.node_side.url}  ({self.node_side.versions}, "
                f"{len(self.node_side.clients)} Node clients)"
            )
        lines.append(
            f"{_n(self.n_clients, 'simulated client')} on namespaces {', '.join(NAMESPACES)}; "
            f"{self.rate:g} actions/s, churn {self.churn:.0%}, "
            + (
                f"a remote operation every {self.remote_interval:g}s"
                if self.remote_interval
                else "no remote operations"
            )
        )
        return lines

    # ------------------------------------------------------------------ life cycle

    async def start(self, progress: Callable[[str], None] | None = None) -> DemoCluster:
        """Start Redis, the nodes and the clients, then the traffic.

        Args:
            progress: Called with short progress messages while starting.

        Raises:
            RedisLaunchError: No redis-server could be started.
            RedisUnavailableError: The given Redis cannot be reached.
            NodePeerError: The Node node could not start (``node_peer=True``).
        """
        say = progress or (lambda _msg: None)
        require("socketio", "server")
        aiohttp = require("aiohttp", "server")
        from siotools.cluster import ClusterClient
        from siotools.pynode import PythonNode

        self._running = True
        try:
            await self.start_redis(progress)
            say(f"starting {_n(self.n_nodes, 'python-socketio node')}")
            for i in range(self.n_nodes):
                name = f"py-{i + 1}"
                state = NodeState(name)
                node = PythonNode(
                    self.redis_url,
                    key=self.key,
                    namespaces=list(NAMESPACES),
                    setup=functools.partial(install_handlers, state=state),
                    custom_hook=state.custom_hook,
                    requests_timeout=2.0,
                    dialect=self.dialect,
                )
                # 8.x has no customRequest: the same answer through serverSideEmit.
                node.adapter.on_server_side_emit("stats")(state.custom_hook)
                self.nodes.append(node)
                await node.start()
            if self.with_node_peer:
                say("starting the Node node (first run installs its npm packages)")
                self.node_side = await NodeSide.start(self)
            self._cluster = ClusterClient(
                self.redis_url, key=self.key, requests_timeout=2.0, dialect=self.dialect
            )
            await self._cluster.connect()
            # One HTTP session for every client; no per-host connection cap, since each
            # websocket holds its connection for its whole life.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            say(f"connecting {_n(self.n_clients, 'client')}")
            self.clients = [SimClient(self, i) for i in range(self.n_clients)]
            await self._connect_all()
            if self.node_side is not None:
                await self.node_side.connect_clients()
        except BaseException:
            await self.stop()
            raise
        self.stats.started = time.monotonic()
        self._loops = [asyncio.create_task(self._traffic_loop(), name="demo-traffic")]
        if self.remote_interval:
            self._loops.append(asyncio.create_task(self._remote_loop(), name="demo-remote"))
        if self.node_side is not None:
            self._loops.append(asyncio.create_task(self.node_side.loop(), name="demo-node"))
        say("ready")
        return self

    async def start_redis(self, progress: Callable[[str], None] | None = None) -> str:
        """Start the private Redis (nothing when a URL was given or it runs); returns its URL.

        :meth:`start` calls it; call it first to know the URL before the rest starts.

        Raises:
            RedisLaunchError: No redis-server could be started.
        """
        from siotools.redis_cluster import RedisCluster
        from siotools.redis_server import RedisServer

        self._running = True
        if self._redis_ready:
            return self.redis_url
        if self._given_url is None:
            server: Any
            if self.with_redis_cluster:
                if progress is not None:
                    progress("starting a Redis Cluster (3 masters)")
                server = RedisCluster(masters=3, replicas=0)
            else:
                if progress is not None:
                    progress("starting Redis")
                server = RedisServer()
            # RedisServer.start blocks while it polls; keep the loop free meanwhile. A
            # cancelled wait cannot stop the thread, so let it finish and stop the server,
            # or the redis-server process would outlive us.
            launch = asyncio.ensure_future(asyncio.to_thread(server.start))
            try:
                await asyncio.shield(launch)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await launch
                await asyncio.to_thread(server.stop)
                raise
            self._redis = server
            if self._wire.sharded_pubsub:
                await asyncio.to_thread(self._require_sharded_pubsub)
        self._redis_ready = True
        if progress is not None:
            verb = "using Redis" if self._given_url else "Redis is ready"
            progress(f"{verb} at {self.shown_url}")
        return self.redis_url

    def _require_sharded_pubsub(self) -> None:
        """Refuse (and stop the private Redis) when it is older than Redis 7."""
        version = self._redis.version() if self.with_redis_cluster else _server_version(self._redis)
        if version < (7, 0):
            self._redis.stop()
            self._redis = None
            raise ConfigurationError(
                f"The {self._wire.label} dialect needs Redis 7 or later (sharded pub/sub); "
                f"this redis-server is {'.'.join(map(str, version))}: install Redis 7"
            )

    async def _connect_all(self) -> None:
        # In waves: a burst of 200 simultaneous handshakes starves a 2-core machine.
        wave = 20
        for i in range(0, len(self.clients), wave):
            batch = self.clients[i : i + wave]
            await asyncio.gather(
                *(c.connect(self.pick_node_url(j + i)) for j, c in enumerate(batch))
            )

    def pick_node_url(self, hint: int | None = None) -> str:
        """The URL of a python node: round robin on ``hint``, random without."""
        index = self.rng.randrange(len(self.nodes)) if hint is None else hint % len(self.nodes)
        url: str = self.nodes[index].url
        return url

    async def stop(self) -> None:
        """Stop the traffic, disconnect the clients, stop the nodes and the Redis it started.

        Safe to call twice and after a failed :meth:`start`.
        """
        if not self._running:
            return
        self._running = False
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._tasks, return_exceptions=True)
        self._loops.clear()
        self._tasks.clear()
        await _quietly(
            asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True), 10
        )
        if self.node_side is not None:
            await _quietly(self.node_side.stop(), 10)
        for node in self.nodes:
            await _quietly(node.stop(), 10)
        if self._cluster is not None:
            await _quietly(self._cluster.close(), 5)
        if self._session is not None:
            await _quietly(self._session.close(), 5)
        if self._redis is not None:
            await asyncio.to_thread(self._redis.stop)
        self._stopped.set()

    async def __aenter__(self) -> DemoCluster:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self, duration: float | None = None) -> None:
        """Wait ``duration`` seconds (until :meth:`stop` when None) while traffic flows."""
        if duration is None:
            await self._stopped.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await wait_for(self._stopped.wait(), duration)

    # ------------------------------------------------------------------ traffic

    def spawn(self, coro: Coroutine[Any, Any, Any], kind: str) -> None:
        """Run ``coro`` as a tracked task; failures are counted under ``kind``."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.stats.failed(kind, t.exception())
                log.debug("demo action %s failed: %r", kind, t.exception())

        task.add_done_callback(done)

    async def _traffic_loop(self) -> None:
        tick = 0.05
        budget = 0.0
        last = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            budget = min(budget + self.rate * (now - last), max(self.rate, 1.0))
            last = now
            while budget >= 1.0:
                budget -= 1.0
                self._one_action()

    def _one_action(self) -> None:
        # Back-pressure: when the machine cannot keep up, drop actions rather than queue
        # an ever-growing backlog.
        if len(self._tasks) > max(50, self.rate * 2):
            self.stats.skipped += 1
            return
        online = self.connected_clients()
        if not online:
            return
        client = self.rng.choice(online)
        if self.rng.random() < self.churn:
            self.stats.actions["reconnect"] += 1
            self.spawn(client.bounce(), "reconnect")
            return
        kind, action = pick_action(self.rng)
        self.stats.actions[kind] += 1
        self.spawn(action(client), kind)

    async def _remote_loop(self) -> None:
        assert self._cluster is not None
        while True:
            # Jitter so the operations do not beat in step with anything else.
            await asyncio.sleep(self.remote_interval * self.rng.uniform(0.5, 1.5))
            kind, op = remote_operation(self.rng)
            self.stats.remote_ops[kind] += 1
            self.spawn(op(self, self._cluster), f"remote_{kind}")


async def _quietly(aw: Awaitable[Any], timeout: float) -> None:
    # Shutdown must finish even when a part is already dead (e.g. Ctrl-C reached Redis).
    try:
        await wait_for(aw, timeout)
    except Exception as exc:
        log.debug("demo shutdown step failed: %r", exc)


def _server_version(server: Any) -> tuple[int, ...]:
    """The version of a started :class:`~siotools.redis_server.RedisServer`."""
    import redis

    client = redis.Redis.from_url(server.url, socket_connect_timeout=2)
    try:
        text = str(client.info("server")["redis_version"])
    finally:
        client.close()
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _n(count: int, noun: str) -> str:
    """``1 client``, ``2 clients``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
