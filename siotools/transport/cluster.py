"""Redis Cluster: the seed-node convention, the slot map, and per-node connections.

A user names one node of the cluster, as with redis-py's ``RedisCluster.from_url``, and
says it is a cluster either with the ``cluster=True`` keyword or with ``?cluster=true``
in the URL (for the command line and environment variables, where there is no keyword)::

    redis://10.0.0.5:7000?cluster=true
    rediss://user:secret@10.0.0.5:7000/0?cluster=yes

The rest of the cluster is discovered with ``CLUSTER SLOTS`` (every Redis that has
cluster mode answers it; ``CLUSTER SHARDS`` is 7.0+ only). Channels map to hash slots
with redis-py's own ``key_slot`` (CRC16 with ``{hash tags}``), so siotools and redis-py
agree on where each sharded channel lives.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import hiredis
from redis.crc import key_slot

from siotools.exceptions import ConfigurationError, RedisUnavailableError
from siotools.transport.connection import CommandConnection, RespConnection, open_connection
from siotools.transport.endpoint import RedisEndpoint, cluster_flag, redact_url
from siotools.transport.timers import wait_for

__all__ = [
    "SLOTS",
    "ClusterRedirect",
    "ClusterTopology",
    "NodeCommandConnection",
    "channel_slot",
    "parse_cluster_url",
    "parse_redirect",
    "seed_from_client",
]

SLOTS = 16384
"""Hash slots of a Redis Cluster."""


def parse_cluster_url(url: str, cluster: bool | None = None) -> tuple[RedisEndpoint, bool]:
    """Read a Redis URL and whether it names a Redis Cluster seed node.

    Args:
        url: A ``redis://``/``rediss://`` URL, optionally with ``?cluster=true``.
        cluster: The ``cluster=`` keyword; when given it wins over the URL's flag.

    Returns:
        The endpoint (the URL without the flag) and whether it is a cluster.

    Raises:
        ConfigurationError: The URL is not a Redis URL, the flag is not a boolean, or a
            cluster URL selects a database other than 0 or a Unix socket.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        # Not even a URL (``redis://[::1``): the endpoint's own sentence, password hidden.
        return RedisEndpoint.from_url(url), bool(cluster)
    query = parse_qsl(parts.query, keep_blank_values=True)
    flag: bool | None = None
    rest = []
    for name, value in query:
        if name.lower() != "cluster":
            rest.append((name, value))
            continue
        flag = cluster_flag(value, repr(redact_url(url)))
    plain = urlunsplit(parts._replace(query=urlencode(rest)))
    endpoint = RedisEndpoint.from_url(plain)
    is_cluster = cluster if cluster is not None else bool(flag)
    if is_cluster:
        check_cluster_endpoint(endpoint)
    return endpoint, is_cluster


def seed_from_client(client: Any) -> RedisEndpoint:
    """The seed endpoint of a redis-py ``RedisCluster`` (``redis.asyncio`` or sync) the
    caller made, with its credentials, TLS and connect timeout.

    Raises:
        ConfigurationError: The object is not a redis-py cluster client.
    """
    manager = getattr(client, "nodes_manager", None)
    # redis.asyncio's RedisCluster keeps the connection settings itself, the sync one on
    # its nodes manager.
    kwargs = getattr(client, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        kwargs = getattr(manager, "connection_kwargs", None)
    nodes = getattr(manager, "startup_nodes", None)
    if not isinstance(kwargs, dict) or not isinstance(nodes, dict) or not nodes:
        raise ConfigurationError(
            f"{type(client).__name__} is not a redis-py RedisCluster client "
            "(pass a redis.asyncio.cluster.RedisCluster, or a URL with ?cluster=true)"
        )
    node = next(iter(nodes.values()))
    conn_class = kwargs.get("connection_class")
    return RedisEndpoint(
        host=str(node.host),
        port=int(node.port),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        tls=conn_class is not None and "SSL" in conn_class.__name__,
        connect_timeout=float(kwargs.get("socket_connect_timeout") or 5.0),
    )


def check_cluster_endpoint(endpoint: RedisEndpoint) -> None:
    """Refuse what a Redis Cluster cannot do: databases other than 0, Unix sockets.

    Raises:
        ConfigurationError: The endpoint cannot be a cluster seed node.
    """
    if endpoint.path:
        raise ConfigurationError(
            f"{endpoint.url} is a Unix socket; a Redis Cluster is reached over TCP host:port"
        )
    if endpoint.db != 0:
        raise ConfigurationError(
            f"{endpoint.url} selects database {endpoint.db}; a Redis Cluster has only "
            "database 0 (drop the /db part of the URL)"
        )


def channel_slot(channel: bytes) -> int:
    """The hash slot of a channel (or key), honouring ``{hash tags}`` as Redis does."""
    slot: int = key_slot(channel)
    return slot


class ClusterRedirect(RedisUnavailableError):
    """A node answered ``MOVED`` or ``ASK``: the slot is (being) served elsewhere.

    Attributes:
        kind: ``"MOVED"`` (the slot moved for good) or ``"ASK"`` (this command only).
        slot: The hash slot.
        addr: ``host:port`` of the node to ask.
    """

    def __init__(self, kind: str, slot: int, addr: str) -> None:
        super().__init__(f"Redis Cluster redirected a command ({kind} slot {slot} to {addr}).")
        self.kind = kind
        self.slot = slot
        self.addr = addr


def parse_redirect(text: str) -> ClusterRedirect | None:
    """Parse a ``MOVED 3999 127.0.0.1:6381`` or ``ASK ...`` error reply; None otherwise."""
    fields = text.split()
    if len(fields) == 3 and fields[0] in ("MOVED", "ASK") and fields[1].isdigit():
        return ClusterRedirect(fields[0], int(fields[1]), fields[2])
    return None


def _addr(host: str, port: int) -> str:
    return f"{host}:{port}"


class ClusterTopology:
    """Which master serves each hash slot, and each master's replicas.

    Args:
        seed: One node of the cluster; its credentials, TLS and timeout are used for
            every node.
        standalone_ok: Also accept a Redis without cluster mode, as a "cluster" of one
            master that serves every slot (sharded pub/sub works on a standalone Redis 7
            too, which is how @socket.io/redis-adapter's sharded adapter is often run).

    Raises:
        ConfigurationError: The seed cannot be a cluster node (see
            :func:`check_cluster_endpoint`).
    """

    def __init__(self, seed: RedisEndpoint, *, standalone_ok: bool = False) -> None:
        if not standalone_ok:
            check_cluster_endpoint(seed)
        self.seed = seed
        self.standalone_ok = standalone_ok
        self.standalone = False
        """Whether the seed turned out to be a Redis without cluster mode."""
        self._owner: list[str | None] = [None] * SLOTS
        self.masters: dict[str, RedisEndpoint] = {}
        """The masters serving slots, by ``host:port``."""
        self.replicas: dict[str, list[str]] = {}
        """Each master's replicas (``host:port``), by the master's ``host:port``."""
        self._known: dict[str, RedisEndpoint] = {_addr(seed.host, seed.port): seed}
        self.refreshes = 0
        """How many times the map was read from the cluster."""

    def endpoint(self, addr: str) -> RedisEndpoint:
        """The endpoint of the node ``host:port`` (seed's credentials)."""
        ep = self._known.get(addr)
        if ep is None:
            host, _, port = addr.rpartition(":")
            ep = dataclasses.replace(self.seed, host=host or self.seed.host, port=int(port))
            self._known[addr] = ep
        return ep

    def owner(self, slot: int) -> str | None:
        """``host:port`` of the master serving ``slot`` (None while no one serves it)."""
        return self._owner[slot]

    def owner_of(self, channel: bytes) -> str | None:
        """``host:port`` of the master serving ``channel``'s slot."""
        return self._owner[key_slot(channel)]

    def slot_runs(self) -> dict[str, list[tuple[int, int]]]:
        """Each master's runs of contiguous slots (``(first, last)``, in slot order), as
        CLUSTER SLOTS lists them: one entry per run."""
        runs: dict[str, list[tuple[int, int]]] = {}
        start = 0
        for slot in range(1, SLOTS + 1):
            here = self._owner[start]
            if slot < SLOTS and self._owner[slot] == here:
                continue
            if here is not None:
                runs.setdefault(here, []).append((start, slot - 1))
            start = slot
        return runs

    @property
    def covered(self) -> bool:
        """Whether every slot has a master."""
        return None not in self._owner

    def moved(self, slot: int, addr: str) -> None:
        """Record a ``MOVED`` answer: ``slot`` is now served by ``addr``."""
        self._owner[slot] = addr
        if addr not in self.masters:
            self.masters[addr] = self.endpoint(addr)

    def candidates(self, prefer: Iterable[str] = ()) -> list[str]:
        """Nodes to ask for the map: ``prefer`` first, then masters, replicas, the seed."""
        order: dict[str, None] = {}
        for addr in prefer:
            order[addr] = None
        for addr in self.masters:
            order[addr] = None
        for reps in self.replicas.values():
            for addr in reps:
                order[addr] = None
        order[_addr(self.seed.host, self.seed.port)] = None
        return list(order)

    async def refresh(self, prefer: Iterable[str] = ()) -> None:
        """Read the slot map from the first node that answers ``CLUSTER SLOTS``.

        Args:
            prefer: Nodes to ask first, e.g. the replicas of a master that was just lost
                (the first to know they were promoted).

        Raises:
            ConfigurationError: The seed is a Redis without cluster mode.
            RedisUnavailableError: No known node answers.
        """
        last: BaseException | None = None
        for addr in self.candidates(prefer):
            ep = self.endpoint(addr)
            try:
                reply = await wait_for(_one_command(ep, b"CLUSTER", b"SLOTS"), ep.connect_timeout)
            except (RedisUnavailableError, TimeoutError) as exc:
                if "cluster support disabled" in str(exc) and self.standalone_ok:
                    self._standalone(addr)
                    return
                if "cluster support disabled" in str(exc):
                    raise ConfigurationError(
                        f"Redis at {ep.url} is not a Redis Cluster node (its cluster support "
                        "is disabled): drop cluster=true to use it as a single Redis"
                    ) from None
                last = exc
                continue
            self._apply(reply, ep.host)
            self.refreshes += 1
            return
        raise RedisUnavailableError(
            f"No node of the Redis Cluster at {self.seed.url} answers ({last or 'no node known'})."
        )

    def _standalone(self, addr: str) -> None:
        self.standalone = True
        self._owner = [addr] * SLOTS
        self.masters = {addr: self.endpoint(addr)}
        self.replicas = {addr: []}
        self.refreshes += 1

    def _apply(self, reply: Any, asked_host: str) -> None:
        owner: list[str | None] = [None] * SLOTS
        masters: dict[str, RedisEndpoint] = {}
        replicas: dict[str, list[str]] = {}
        for entry in reply:
            lo, hi = int(entry[0]), int(entry[1])
            nodes = []
            for node in entry[2:]:
                host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
                # An empty host means "the address you used to reach me" (CLUSTER SLOTS doc).
                nodes.append(_addr(host or asked_host, int(node[1])))
            if not nodes:
                continue
            master = nodes[0]
            masters[master] = self.endpoint(master)
            replicas.setdefault(master, [])
            for rep in nodes[1:]:
                self.endpoint(rep)
                if rep not in replicas[master]:
                    replicas[master].append(rep)
            owner[lo : hi + 1] = [master] * (hi - lo + 1)
        self._owner = owner
        self.masters = masters
        self.replicas = replicas


async def _one_command(ep: RedisEndpoint, *args: bytes) -> Any:
    conn = await open_connection(ep, lambda: CommandConnection("siotools-cluster-map"))
    try:
        return await conn.execute(*args)
    finally:
        await conn.close()


RedirectHandler = Callable[[ClusterRedirect, tuple[Any, ...]], None]
"""Called with the redirect and the command (its arguments) a node did not run."""


class NodeCommandConnection(RespConnection):
    """Commands to one cluster node, pipelined; redirected commands are handed back.

    Like :class:`~siotools.transport.connection.CommandConnection`, but a command sent
    with :meth:`send_nowait` that the node answers with ``MOVED``/``ASK`` goes to
    ``on_redirect`` with its arguments, so the caller can send it to the right node
    instead of losing it (a publish during a slot migration or after a failover).
    A command sent with :meth:`send` fails with :class:`ClusterRedirect` instead.

    Args:
        name: The connection's name in errors.
        on_redirect: Receives redirected fire-and-forget commands.
        on_error: Receives other error replies of fire-and-forget commands.
    """

    def __init__(
        self,
        name: str,
        on_redirect: RedirectHandler,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        super().__init__(name)
        self._waiting: collections.deque[tuple[tuple[Any, ...], asyncio.Future[Any] | None]] = (
            collections.deque()
        )
        self._on_redirect = on_redirect
        self._on_error = on_error
        self.unanswered = 0
        """Fire-and-forget commands still awaiting their reply when the connection was lost."""

    @property
    def pending(self) -> int:
        """Commands written or queued whose reply has not arrived yet."""
        return len(self._waiting)

    def on_reply(self, reply: Any) -> None:
        try:
            args, fut = self._waiting.popleft()
        except IndexError:
            return
        if isinstance(reply, hiredis.ReplyError):
            redirect = parse_redirect(str(reply))
            if fut is None:
                if redirect is not None:
                    self._on_redirect(redirect, args)
                elif self._on_error is not None and args[0] != b"ASKING":
                    self._on_error(RedisUnavailableError(f"Redis refused a command: {reply}"))
            elif not fut.done():
                fut.set_exception(
                    redirect or RedisUnavailableError(f"Redis refused a command: {reply}")
                )
        elif fut is not None and not fut.done():
            fut.set_result(reply)

    def on_lost(self, exc: BaseException | None) -> None:
        error = RedisUnavailableError(f"The connection to Redis was lost ({self.name}).")
        while self._waiting:
            _, fut = self._waiting.popleft()
            if fut is None:
                self.unanswered += 1
            elif not fut.done():
                fut.set_exception(error)

    def send(self, *args: Any) -> asyncio.Future[Any]:
        """Queue a command; the future resolves with its reply (or a redirect error)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self.connected:
            fut.set_exception(RedisUnavailableError(f"Not connected to Redis ({self.name})."))
            return fut
        self._waiting.append((args, fut))
        self.write_command(*args)
        return fut

    def send_nowait(self, *args: Any) -> None:
        """Queue a command whose reply is not needed (redirects go to ``on_redirect``)."""
        self._waiting.append((args, None))
        self.write_command(*args)

    async def execute(self, *args: Any) -> Any:
        """Send a command and return its reply.

        Raises:
            ClusterRedirect: The node does not serve the command's slot.
            RedisUnavailableError: The connection is down or Redis refused the command.
        """
        return await self.send(*args)
