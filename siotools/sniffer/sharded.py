"""Sniffing sharded pub/sub: on a single Redis 7 and on every node of a Redis Cluster.

The 8.x sharded adapter (``createShardedAdapter``, RA 8.3.0 ``lib/sharded-adapter.ts``
L76-L112) talks with ``SPUBLISH`` on ``P#N#`` (broadcasts and requests), ``P#N#<uid>#``
(responses) and, in dynamic mode, ``P#N#room#``. Sharded pub/sub has no pattern
subscriptions, so the default ``PSUBSCRIBE`` sniffer hears none of it, and an
``SSUBSCRIBE`` is counted by ``PUBSUB SHARDNUMSUB``, which every node reads to know how many
answers to wait for (``serverCount()``, ``lib/util.ts`` L107-L144): a sniffer that
SSUBSCRIBEs makes every ``fetchSockets`` of the cluster wait for it and time out.

Three ways to look, each chosen explicitly:

* **discovery** (:func:`discover_shards`, :func:`watch_shards`): ``PUBSUB SHARDCHANNELS``
  and ``SHARDNUMSUB`` on every master; which sharded channels exist where, and how many
  subscribers each has. Invisible to the nodes; sees no payloads.
* **MONITOR on every node** (:class:`ClusterMonitorSource`): every ``SPUBLISH`` of every
  shard and every ``PUBLISH``, on masters and replicas (a client may send either to a
  replica), at MONITOR's cost on each node (:data:`~siotools.sniffer.live.MONITOR_WARNING`).
  A node lost, added or promoted by a failover is reported and followed.
* **SSUBSCRIBE** (:class:`ClusterPubSubSource` with ``ssubscribe=True``): subscribes every
  discovered sharded channel, one ``SSUBSCRIBE`` per slot on the slot's master
  (:class:`~siotools.transport.cluster_pubsub.ClusterSubscriber`), and follows new ones.
  It inflates SHARDNUMSUB (:data:`SSUBSCRIBE_WARNING`): the user's explicit choice.

Without one of these, a ``PSUBSCRIBE`` sniffer on a prefix whose nodes are sharded would
wait silently; :func:`open_source` checks first and raises :class:`ShardedPubSubError`
(only sharded channels) or notices it (sharded and classic channels side by side).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Protocol

from siotools.exceptions import ConfigurationError, RedisUnavailableError
from siotools.protocol import ChannelKind, glob_escape, grammar
from siotools.sniffer.live import MONITOR_WARNING, LiveSource, RawSink, patterns_for
from siotools.transport.cluster import ClusterTopology, parse_cluster_url
from siotools.transport.cluster_pubsub import ClusterPublisher, ClusterSubscriber
from siotools.transport.connection import CommandConnection, open_connection
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.monitor import Monitor, ReplicaLink, replica_link
from siotools.transport.pubsub import LinkEvent
from siotools.transport.timers import wait_for

__all__ = [
    "DISCOVER_NOTE",
    "SSUBSCRIBE_WARNING",
    "ClusterMonitorSource",
    "ClusterPubSubSource",
    "MasterShards",
    "ShardDiscovery",
    "ShardProbe",
    "ShardedNotice",
    "ShardedPubSubError",
    "SnifferSource",
    "discover_shards",
    "open_source",
    "sharded_sentence",
    "watch_shards",
]

log = logging.getLogger("siotools.sniffer")

SSUBSCRIBE_WARNING: Final = (
    "SSUBSCRIBE is counted by PUBSUB SHARDNUMSUB, which the sharded nodes read to know how "
    "many answers to wait for: while this sniffer runs, every node's fetchSockets, "
    "serverSideEmit and broadcast with ack waits for it too, and times out."
)
DISCOVER_NOTE: Final = (
    "discovery lists the sharded channels and their SHARDNUMSUB counts only; it sees no "
    "payloads (MONITOR or SSUBSCRIBE do)."
)
REFRESH: Final = 2.0
"""Seconds between two looks at the topology and the sharded channels."""


class SnifferSource(Protocol):
    """What a capture needs of a live source (:class:`~siotools.sniffer.live.LiveSource`
    or one of this module's)."""

    endpoint: RedisEndpoint
    sink: RawSink

    @property
    def gaps(self) -> list[tuple[int, int]]: ...

    @property
    def reconnects(self) -> int: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True, slots=True)
class MasterShards:
    """What one master (or the single Redis) says about a prefix.

    Attributes:
        addr: ``host:port`` of the master.
        shard_channels: Its sharded channels of the prefix with their SHARDNUMSUB there.
        classic_channels: Its classic (SUBSCRIBEd) channels of the prefix.
        supported: Whether it knows ``PUBSUB SHARDCHANNELS`` (Redis 7+).
    """

    addr: str
    shard_channels: dict[str, int]
    classic_channels: tuple[str, ...]
    supported: bool = True


@dataclass(frozen=True, slots=True)
class ShardDiscovery:
    """The sharded channels of a prefix on every master, at one moment.

    Attributes:
        prefix: The adapters' key.
        masters: One entry per master, sorted by address.
        cluster: Whether the URL names a Redis Cluster (else a single Redis).
        at: When it was read (epoch seconds).
    """

    prefix: str
    masters: tuple[MasterShards, ...]
    cluster: bool
    at: float = field(default_factory=time.time)

    @property
    def channels(self) -> dict[str, int]:
        """Every sharded channel with its SHARDNUMSUB summed over the masters."""
        out: dict[str, int] = {}
        for m in self.masters:
            for name, count in m.shard_channels.items():
                out[name] = out.get(name, 0) + count
        return dict(sorted(out.items()))

    @property
    def sharded(self) -> bool:
        """Whether the prefix has sharded channels (8.x sharded nodes)."""
        return any(m.shard_channels for m in self.masters)

    @property
    def classic(self) -> bool:
        """Whether the prefix also has classic subscribed channels (PSUBSCRIBE sees those)."""
        return any(m.classic_channels for m in self.masters)

    def where(self, channel: str) -> str | None:
        """The master that lists ``channel``, if one does."""
        for m in self.masters:
            if channel in m.shard_channels:
                return m.addr
        return None

    def numsub(self, channel: str) -> int:
        """SHARDNUMSUB of ``channel`` summed over the masters (what the nodes count)."""
        return self.channels.get(channel, 0)

    def summary(self) -> str:
        """One line: how many sharded channels on how many masters."""
        n = sum(len(m.shard_channels) for m in self.masters)
        where = f"{len(self.masters)} master{'s' if len(self.masters) != 1 else ''}"
        if not self.cluster:
            where = "this Redis"
        return f"{n} sharded channel{'s' if n != 1 else ''} of prefix {self.prefix!r} on {where}"

    def lines(self) -> list[str]:
        """One line per master and one per channel (``channel  SHARDNUMSUB``)."""
        out = [self.summary()]
        for m in self.masters:
            if not m.supported:
                out.append(f"  {m.addr}: no sharded pub/sub (Redis before 7.0)")
                continue
            out.append(f"  {m.addr}: {len(m.shard_channels)} channel(s)")
            width = max((len(c) for c in m.shard_channels), default=0)
            for name, count in sorted(m.shard_channels.items()):
                out.append(f"    {name:<{width}}  SHARDNUMSUB {count}")
        return out

    def as_json(self) -> dict[str, Any]:
        """A JSON-able view (for ``--json``)."""
        return {
            "time": self.at,
            "prefix": self.prefix,
            "masters": {
                m.addr: {"channels": dict(sorted(m.shard_channels.items())), "sharded": m.supported}
                for m in self.masters
            },
            "channels": self.channels,
        }


def sharded_sentence(
    found: ShardDiscovery, *, cli: bool = False, flags: tuple[str, str, str] | None = None
) -> str:
    """The one sentence telling a PSUBSCRIBE sniffer's user what to do on a sharded prefix.

    Args:
        found: The discovery that found sharded channels.
        cli: Name the ``siotools sniff`` flags (else the keyword arguments).
        flags: Other names of the MONITOR, SSUBSCRIBE and discovery modes.
    """
    kind = "this Redis Cluster" if found.cluster else "this Redis"
    monitor, ssub, disc = flags or (
        ("--monitor", "--ssubscribe", "--discover")
        if cli
        else ("monitor=True", "ssubscribe=True", "discover_shards()")
    )
    n = sum(len(m.shard_channels) for m in found.masters)
    where = f" on {len(found.masters)} masters" if found.cluster else ""
    return (
        f"prefix {found.prefix!r} uses sharded pub/sub on {kind} (the @socket.io/redis-adapter "
        f"8.x sharded adapter: {n} sharded channel{'s' if n != 1 else ''}{where}), which "
        f"PSUBSCRIBE cannot see: use {monitor} (costly for Redis), {ssub} (inflates "
        f"SHARDNUMSUB, so the nodes' requests time out) or {disc} (channels only, no payloads)."
    )


class ShardedPubSubError(ConfigurationError):
    """The prefix speaks sharded pub/sub only; a PSUBSCRIBE sniffer would hear nothing.

    Attributes:
        found: What discovery saw.
    """

    def __init__(self, found: ShardDiscovery, message: str | None = None) -> None:
        super().__init__(message or sharded_sentence(found))
        self.found = found


class ShardedNotice(str):
    """The sharded sentence handed to ``on_notice`` when classic channels share the prefix
    (the sniffer goes on with PSUBSCRIBE); :attr:`found` lets a caller word it its way."""

    found: ShardDiscovery

    def __new__(cls, found: ShardDiscovery) -> ShardedNotice:
        self = super().__new__(cls, sharded_sentence(found))
        self.found = found
        return self


class _Runner(Protocol):
    @property
    def connected(self) -> bool: ...

    async def execute(self, *args: bytes | str | int | float) -> Any: ...


class _Pinned:
    """A cluster publisher's ``execute`` pinned to one master (nothing is published)."""

    def __init__(self, publisher: ClusterPublisher, addr: str) -> None:
        self.publisher, self.addr = publisher, addr

    @property
    def connected(self) -> bool:
        return self.publisher.connected

    async def execute(self, *args: bytes | str | int | float) -> Any:
        return await self.publisher.execute(*args, node=self.addr)


class _Single:
    """One command connection to a single Redis."""

    def __init__(self, conn: CommandConnection) -> None:
        self.conn = conn

    @property
    def connected(self) -> bool:
        return self.conn.connected

    async def execute(self, *args: bytes | str | int | float) -> Any:
        return await self.conn.execute(*args)


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


async def _read(runner: _Runner, addr: str, prefix: str) -> MasterShards:
    """``PUBSUB SHARDCHANNELS``/``SHARDNUMSUB``/``CHANNELS`` of a prefix on one node."""
    g = grammar(prefix)
    shard: dict[str, int] = {}
    supported = True
    try:
        pattern = (glob_escape(prefix + "#") + "*").encode()
        names = [_text(c) for c in await runner.execute(b"PUBSUB", b"SHARDCHANNELS", pattern)]
        names = [n for n in names if g.parse(n).kind is not ChannelKind.UNKNOWN]
        if names:
            reply = list(
                await runner.execute(b"PUBSUB", b"SHARDNUMSUB", *(n.encode() for n in names))
            )
            shard = {_text(reply[i]): int(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}
    except RedisUnavailableError as exc:
        if not runner.connected or "unknown subcommand" not in str(exc).lower():
            raise  # down, or refused for another reason (an ACL): the caller decides
        supported = False  # Redis before 7.0: no sharded pub/sub at all
    classic_pattern = (glob_escape(prefix) + "*").encode()
    classic = tuple(
        n
        for n in map(_text, await runner.execute(b"PUBSUB", b"CHANNELS", classic_pattern))
        if g.parse(n).kind is not ChannelKind.UNKNOWN
    )
    return MasterShards(addr, shard, classic, supported)


class ShardProbe:
    """Command connections to every master that read ``PUBSUB`` (never subscribe, never
    publish), following failovers like the rest of the cluster transport.

    Args:
        seed: One node of the cluster or the single Redis (or a topology to share).
        prefix: The adapters' key.
        cluster: Whether ``seed`` is a Redis Cluster node; a single Redis otherwise.
        on_error: Called with connection errors.
    """

    def __init__(
        self,
        seed: RedisEndpoint | ClusterTopology,
        prefix: str,
        *,
        cluster: bool = True,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.prefix = prefix
        self.cluster = cluster
        self._on_error = on_error
        self.topology: ClusterTopology | None = None
        self._pub: ClusterPublisher | None = None
        self._conn: CommandConnection | None = None
        if cluster:
            self.topology = seed if isinstance(seed, ClusterTopology) else ClusterTopology(seed)
            self.endpoint = self.topology.seed
        else:
            assert isinstance(seed, RedisEndpoint)
            self.endpoint = seed

    async def start(self) -> None:
        """Connect (to every master of a cluster).

        Raises:
            RedisUnavailableError: Redis cannot be reached.
            ConfigurationError: ``cluster`` is wrong about the server.
        """
        if self.topology is not None:
            self._pub = ClusterPublisher(
                self.topology, name="siotools-sniffer-probe", on_error=self._on_error
            )
            await self._pub.start()
        else:
            self._conn = await open_connection(
                self.endpoint, lambda: CommandConnection("siotools-sniffer-probe")
            )

    @property
    def connected(self) -> bool:
        """Whether the probe's connections are up."""
        if self._pub is not None:
            return self._pub.connected
        return self._conn is not None and self._conn.connected

    async def look(self) -> ShardDiscovery:
        """Read the prefix's sharded channels on every master.

        Raises:
            RedisUnavailableError: A master cannot be asked now.
        """
        if self._pub is not None:
            assert self.topology is not None
            addrs = sorted(self.topology.masters)
            masters = tuple(
                await asyncio.gather(*(_read(_Pinned(self._pub, a), a, self.prefix) for a in addrs))
            )
        else:
            if self._conn is None or not self._conn.connected:
                if self._conn is not None:
                    await self._conn.close()
                self._conn = await open_connection(
                    self.endpoint, lambda: CommandConnection("siotools-sniffer-probe")
                )
            addr = f"{self.endpoint.host}:{self.endpoint.port}"
            masters = (await _read(_Single(self._conn), addr, self.prefix),)
        cluster = self.topology is not None and not self.topology.standalone
        return ShardDiscovery(self.prefix, masters, cluster)

    async def close(self) -> None:
        """Close the connections."""
        if self._pub is not None:
            await self._pub.close()
            self._pub = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


def _resolve(url: str, cluster: bool | None) -> tuple[RedisEndpoint, bool]:
    return parse_cluster_url(url, cluster)


async def discover_shards(
    url: str, prefix: str = "socket.io", *, cluster: bool | None = None
) -> ShardDiscovery:
    """Which sharded channels of ``prefix`` exist, on which master, with which counts.

    ``PUBSUB SHARDCHANNELS prefix#*`` and ``SHARDNUMSUB`` on the single Redis or on every
    master of a Redis Cluster (``?cluster=true`` or ``cluster=True``). Passive and cheap;
    it sees no payloads.

    Raises:
        RedisUnavailableError: Redis cannot be reached.
        ConfigurationError: Bad URL.
    """
    endpoint, is_cluster = _resolve(url, cluster)
    probe = ShardProbe(endpoint, prefix, cluster=is_cluster)
    await probe.start()
    try:
        return await probe.look()
    finally:
        await probe.close()


async def watch_shards(
    url: str,
    prefix: str = "socket.io",
    *,
    cluster: bool | None = None,
    interval: float = REFRESH,
    on_error: Callable[[BaseException], None] | None = None,
) -> AsyncGenerator[ShardDiscovery, None]:
    """:func:`discover_shards` every ``interval`` seconds, on connections kept open.

    A master that cannot be asked (a failover in progress) skips one look and goes to
    ``on_error``; the probe follows the cluster to the new master.

    Raises:
        RedisUnavailableError: Redis cannot be reached at the start.
    """
    endpoint, is_cluster = _resolve(url, cluster)
    probe = ShardProbe(endpoint, prefix, cluster=is_cluster, on_error=on_error)
    await probe.start()
    try:
        while True:
            try:
                found = await probe.look()
            except RedisUnavailableError as exc:
                if on_error is not None:
                    on_error(exc)
            else:
                yield found
            await asyncio.sleep(interval)
    finally:
        await probe.close()


# --------------------------------------------------------------------------- gaps


class _Gaps:
    """Reconnect gaps of a source with several connections: from the first loss (or the
    last message before it) to the restore, moved to the first message after it."""

    def __init__(self, on_gap: Callable[[int, int], None] | None) -> None:
        self.on_gap = on_gap
        self.gaps: list[tuple[int, int]] = []
        self.last_ns: int | None = None
        self.lost_ns: int | None = None
        self.open = False

    def lost(self) -> None:
        if self.lost_ns is None:
            self.lost_ns = self.last_ns if self.last_ns is not None else time.time_ns()

    def restored(self) -> None:
        now = time.time_ns()
        lost, self.lost_ns = self.lost_ns, None
        self.gaps.append((lost if lost is not None else now, now))
        self.open = True
        self._tell()

    def seen(self, now: int) -> None:
        self.last_ns = now
        if self.open:
            self.open = False
            start, _ = self.gaps[-1]
            self.gaps[-1] = (start, max(start, now))
            self._tell()

    def _tell(self) -> None:
        if self.on_gap is not None:
            self.on_gap(*self.gaps[-1])


def _notify(on_notice: Callable[[str], None] | None, text: str) -> None:
    if on_notice is not None:
        on_notice(text)
    else:  # nobody shows it: the log does (once, not twice on a command line)
        log.warning("sniffer: %s", text)


# --------------------------------------------------------------------------- MONITOR


class ClusterMonitorSource:
    """``MONITOR`` on every master and every replica of a Redis Cluster (or on the single
    Redis).

    A client may send its ``PUBLISH`` to a replica (node-redis 4 ``createCluster`` with
    ``useReplicas: true`` sends keyless read-only commands, ``PUBLISH`` among them, to
    masters and replicas in turn; keyed ones such as ``SPUBLISH`` to the slot's master or
    one of its replicas): the replica broadcasts it over the cluster bus, and the masters'
    MONITOR never shows it. So replicas are monitored too. A replica's MONITOR also shows
    what its master replicates to it; those lines are dropped by the monitor
    (:func:`~siotools.transport.monitor.replica_link`), so each command is
    reported once, by the node a client sent it to.

    Each node's ``PUBLISH``/``SPUBLISH`` of the prefix goes to the sink (``SPUBLISH`` as
    sharded). Every ``refresh`` seconds, and at once when a monitor loses its node, the
    slot map is read again: a node that is gone is no longer monitored, a new one is, a
    replica promoted by a failover is monitored as a master from then on (its MONITOR
    goes on), a demoted master as a replica; each change is reported through
    ``on_notice``. A lost monitor is a gap until its node is monitored again or has left
    the cluster; nodes lost together are one gap, ended once every one is monitored again.

    Args:
        seed: One node of the cluster (a single Redis is a cluster of one master).
        prefix: The adapters' key.
        sink: Receives ``(time_ns, [[verb, b"", channel, payload]], sharded)``.
        pysocketio: python-socketio's channel to keep too, or None.
        on_gap: Called with ``(start_ns, end_ns)`` of a gap.
        on_notice: Called with one sentence per topology change or loss.
        refresh: Seconds between two reads of the slot map.

    Attributes:
        masters: The masters monitored now (``host:port``).
        replicas: The replicas monitored now (``host:port``).
        links: Each monitored replica's master link, whose lines its monitor drops.
        changes: How many times a node was added, dropped, promoted or demoted after the
            start.
    """

    def __init__(
        self,
        seed: RedisEndpoint,
        prefix: str,
        sink: RawSink,
        *,
        pysocketio: str | None = None,
        on_gap: Callable[[int, int], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        refresh: float = REFRESH,
    ) -> None:
        self.endpoint = seed
        self.topology = ClusterTopology(seed, standalone_ok=True)
        self.prefix = prefix
        self.sink = sink
        self.pysocketio = pysocketio.encode() if pysocketio else None
        self.refresh = refresh
        self._notice = on_notice
        self._gaps = _Gaps(on_gap)
        self._monitors: dict[str, Monitor] = {}
        self._master: dict[str, bool] = {}
        """Whether each monitored node is a master (else a replica)."""
        self._links: dict[str, str | None] = {}
        """Each monitored replica's master whose replication link its monitor ignores
        (None: to be read again)."""
        self._lost: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._prefer: list[str] = []
        self._grammar = grammar(prefix)
        self._kinds: dict[bytes, bool] = {}
        self.errors: list[str] = []
        self.changes = 0
        self._restarts = 0

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """``(start_ns, end_ns)`` of every gap so far."""
        return self._gaps.gaps

    @property
    def masters(self) -> list[str]:
        """The masters monitored now."""
        return sorted(a for a in self._monitors if self._master[a])

    @property
    def replicas(self) -> list[str]:
        """The replicas monitored now."""
        return sorted(a for a in self._monitors if not self._master[a])

    @property
    def links(self) -> dict[str, set[bytes]]:
        """Each monitored replica's master link: the client address(es) whose commands
        (what the master replicates) its monitor drops; empty while not known yet."""
        return {
            a: set(m.ignored_clients)
            for a, m in sorted(self._monitors.items())
            if not self._master[a]
        }

    @property
    def reconnects(self) -> int:
        """Reconnects of the monitors plus node changes (still counted once stopped)."""
        return self._restarts + self.changes

    def _role(self, addr: str) -> str:
        return "master" if self._master.get(addr, True) else "replica"

    def _keep(self, channel: bytes) -> bool:
        keep = self._kinds.get(channel)
        if keep is None:
            if self.pysocketio is not None and channel == self.pysocketio:
                keep = True
            else:
                kind = self._grammar.parse(channel).kind
                keep = kind is not ChannelKind.UNKNOWN and kind is not ChannelKind.PYSOCKETIO
            if len(self._kinds) < 100_000:
                self._kinds[channel] = keep
        return keep

    def _on_command(self, ts: float, args: list[bytes]) -> None:
        if len(args) != 3:
            return
        verb = args[0].upper()
        if verb == b"SPUBLISH":
            sharded = True
        elif verb == b"PUBLISH":
            sharded = False
        else:
            return
        if not self._keep(args[1]):
            return
        now = int(ts * 1e9)
        self._gaps.seen(now)
        self.sink(now, [[verb, b"", args[1], args[2]]], sharded)

    def _error(self, addr: str, exc: BaseException) -> None:
        self.errors.append(str(exc))
        self._gaps.lost()
        if self._master.get(addr, True):  # its replicas are the first to know of a failover
            self._prefer = [*self.topology.replicas.get(addr, []), *self._prefer]
        if addr not in self._lost:  # once per loss, not once per reconnect attempt
            self._lost.add(addr)
            text = str(exc).rstrip(".")
            _notify(
                self._notice,
                f"MONITOR of {self._role(addr)} {addr} lost ({text}); following the cluster",
            )
        self._wake.set()

    def _healthy(self) -> bool:
        """Whether every slot's master, and every replica, is monitored on a connection
        that is up."""
        return self.topology.covered and all(m.connected for m in self._monitors.values())

    def _maybe_restored(self) -> None:
        # Nodes lost together (or a master lost and its heir not monitored yet) are one gap,
        # ended once every node is monitored again.
        if self._gaps.lost_ns is not None and not self._lost and self._healthy():
            self._gaps.restored()

    def _reconnected(self, addr: str) -> None:
        self._restarts += 1
        self._lost.discard(addr)
        if addr in self._links:  # a replica restarted: its master link may be another now
            self._links[addr] = None
            self._wake.set()
        _notify(
            self._notice,
            f"MONITOR of {self._role(addr)} {addr} restored; traffic in between was missed",
        )
        self._maybe_restored()

    async def _attach(self, addr: str, master: str | None) -> None:
        """MONITOR ``addr``: a master (``master`` None) or a replica of ``master``."""
        link = None
        if master is not None:
            # Read before MONITOR starts, so that no replicated line gets through.
            link = await replica_link(self.topology.endpoint(addr))
        mon = Monitor(
            self.topology.endpoint(addr),
            self._on_command,
            name=f"siotools-sniffer-monitor@{addr}",
            on_error=partial(self._error, addr),
            on_reconnect=partial(self._reconnected, addr),
            ignore_clients=link.clients if link is not None else (),
        )
        await mon.start()
        self._monitors[addr] = mon
        self._master[addr] = master is None
        if link is not None:
            self._links[addr] = self._learned(link)

    def _replica_of(self) -> dict[str, str]:
        """Each replica of the slot map with its master."""
        masters = self.topology.masters
        return {
            rep: master
            for master, reps in self.topology.replicas.items()
            for rep in reps
            if rep not in masters
        }

    async def start(self) -> None:
        """Read the slot map and MONITOR every master and replica; returns once each
        master's and each reachable replica's monitor confirmed (a replica that cannot be
        monitored now is reported and tried again at the next refresh).

        Raises:
            RedisUnavailableError: A master cannot be reached.
            ConfigurationError: The seed is not a Redis Cluster node.
        """
        warnings.warn(MONITOR_WARNING, RuntimeWarning, stacklevel=3)
        await self.topology.refresh()
        replicas = self._replica_of()
        try:
            await asyncio.gather(*(self._attach(a, None) for a in sorted(self.topology.masters)))
            done = await asyncio.gather(
                *(self._attach(r, m) for r, m in sorted(replicas.items())), return_exceptions=True
            )
        except BaseException:
            await self._close_monitors()
            raise
        for (addr, _), outcome in zip(sorted(replicas.items()), done, strict=True):
            if isinstance(outcome, RedisUnavailableError):
                self.errors.append(str(outcome))
                text = str(outcome).rstrip(".")
                _notify(self._notice, f"replica {addr} not monitored ({text}); trying again")
            elif isinstance(outcome, BaseException):
                await self._close_monitors()
                raise outcome
        self._task = asyncio.create_task(self._watch(), name="siotools-sniffer-topology")

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await wait_for(self._wake.wait(), self.refresh)
            self._wake.clear()
            try:
                await self._follow()
            except RedisUnavailableError as exc:
                self.errors.append(str(exc))
                await asyncio.sleep(0.2)
                self._wake.set()
            except Exception as exc:  # the sniffer must outlive whatever went wrong once
                log.exception("sniffer: following the cluster's nodes failed")
                self.errors.append(str(exc))

    async def _drop(self, addr: str) -> None:
        mon = self._monitors.pop(addr)
        was_master = self._master.pop(addr)
        self._links.pop(addr, None)
        self._lost.discard(addr)
        await mon.close()
        self.changes += 1
        if was_master:
            _notify(self._notice, f"{addr} is no longer a master (a failover?): not monitored now")
        else:
            _notify(self._notice, f"replica {addr} left the slot map: not monitored now")

    def _recast(self, addr: str, master: str | None) -> None:
        """A monitored node changed role: promoted (``master`` None) or demoted."""
        mon = self._monitors[addr]
        self._master[addr] = master is None
        self.changes += 1
        if master is None:
            self._links.pop(addr, None)
            mon.ignore(())  # a master replicates to others; everything it shows was sent to it
            _notify(self._notice, f"monitoring new master {addr} (a promoted replica)")
        else:
            self._links[addr] = None
            _notify(
                self._notice,
                f"{addr} is no longer a master (a failover?): monitored as a replica of {master}",
            )

    @staticmethod
    def _learned(link: ReplicaLink) -> str | None:
        # Known only once the link is up with its client listed; else read it again.
        return link.master if link.up and link.clients else None

    async def _relearn(self, addr: str) -> None:
        """Read again the replication link a replica's monitor drops (its master in the
        slot map is another than the one it was read for, its monitor reconnected, or the
        link was down at the last look)."""
        try:
            link = await replica_link(self.topology.endpoint(addr))
        except RedisUnavailableError as exc:
            self.errors.append(str(exc))
            return
        if link.clients:
            self._monitors[addr].ignore(link.clients)
        self._links[addr] = self._learned(link)

    async def _follow(self) -> None:
        prefer, self._prefer = self._prefer, []
        await self.topology.refresh(prefer)
        masters = set(self.topology.masters)
        replicas = self._replica_of()
        changed = False
        for addr in sorted(set(self._monitors) - masters - set(replicas)):
            await self._drop(addr)
            changed = True
        for addr in sorted(set(self._monitors)):
            if self._master[addr] != (addr in masters):
                self._recast(addr, replicas.get(addr))
                changed = True
        for addr in sorted(set(self._monitors) & set(replicas)):
            if self._links.get(addr) != replicas[addr]:
                await self._relearn(addr)
        for addr in sorted((masters | set(replicas)) - set(self._monitors)):
            role = "master" if addr in masters else "replica"
            try:
                await self._attach(addr, replicas.get(addr))
            except RedisUnavailableError as exc:
                self.errors.append(str(exc))
                if role == "master":
                    self._wake.set()  # try again soon; a replica waits for the next refresh
                continue
            changed = True
            self.changes += 1
            _notify(self._notice, f"monitoring new {role} {addr}")
        if changed:
            self._maybe_restored()

    async def _close_monitors(self) -> None:
        monitors, self._monitors = self._monitors, {}
        self._master.clear()
        self._links.clear()
        for mon in monitors.values():
            with contextlib.suppress(Exception):
                await mon.close()

    async def close(self) -> None:
        """Stop every monitor."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_monitors()


# --------------------------------------------------------------------------- (S)SUBSCRIBE


class ClusterPubSubSource:
    """PSUBSCRIBE on a Redis Cluster (any node hears every ``PUBLISH``), and with
    ``ssubscribe=True`` also SSUBSCRIBE on every discovered sharded channel of the prefix.

    The sharded channels are read (:class:`ShardProbe`) at the start and every
    ``refresh`` seconds: new ones are subscribed (one ``SSUBSCRIBE`` per slot, on the
    slot's master), those only the sniffer still holds are released. Failovers and slot
    moves are followed by :class:`~siotools.transport.cluster_pubsub.ClusterSubscriber`.

    Its outages are gaps as the single-Redis source's: one per outage, however many of
    its connections went (its ``"lost"`` and ``"restored"`` link events), from the last
    message before it to the first one after every subscription is confirmed again. A
    slot that migrates is a gap too, from the old owner's unsubscribe to the new one's
    confirmation.

    Args:
        seed: One node of the cluster, or the single Redis 7 (``cluster=False``).
        prefix: The adapters' key.
        sink: Receives ``(time_ns, batch, sharded)``.
        pysocketio: python-socketio's channel to watch too, or None.
        ssubscribe: Subscribe the sharded channels (inflates SHARDNUMSUB; warns).
        cluster: Whether ``seed`` is a Redis Cluster node.
        on_gap: Called with ``(start_ns, end_ns)`` of a gap.
        on_notice: Called with one sentence per loss or restore.
        refresh: Seconds between two looks at the sharded channels.

    Attributes:
        discovery: The latest look at the sharded channels (None before the start).
    """

    def __init__(
        self,
        seed: RedisEndpoint,
        prefix: str,
        sink: RawSink,
        *,
        pysocketio: str | None = None,
        ssubscribe: bool = False,
        cluster: bool = True,
        on_gap: Callable[[int, int], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        refresh: float = REFRESH,
    ) -> None:
        self.endpoint = seed
        self.prefix = prefix
        self.sink = sink
        self.ssubscribe = ssubscribe
        self.refresh = refresh
        self._notice = on_notice
        self._gaps = _Gaps(on_gap)
        self.topology = ClusterTopology(seed, standalone_ok=not cluster)
        self.probe = ShardProbe(self.topology, prefix, on_error=self._probe_error)
        self.sub = ClusterSubscriber(
            self.topology,
            on_batch=self._on_batch,
            name="siotools-sniffer",
            on_error=self._error,
            on_reconnect=self._reconnected,
            on_event=self._link_event,
        )
        self._moved = False
        # Remembered before start() so that the first connect sends them.
        self.sub.patterns.update(patterns_for(prefix, pysocketio))
        self.discovery: ShardDiscovery | None = None
        self._task: asyncio.Task[None] | None = None
        self.errors: list[str] = []

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """``(start_ns, end_ns)`` of every gap so far."""
        return self._gaps.gaps

    @property
    def reconnects(self) -> int:
        """How many times the subscriptions were restored."""
        return len(self.gaps)

    def _on_batch(self, now: int, batch: list[list[bytes]]) -> None:
        self._gaps.seen(now)
        head = batch[0][0]
        if head == b"pmessage":
            self.sink(now, batch, False)
        elif head == b"smessage":
            self.sink(now, [[b"smessage", b"", r[1], r[2]] for r in batch], True)
        else:  # plain "message" replies cannot happen: the sniffer never SUBSCRIBEs
            self.sink(now, [[b"message", b"", r[1], r[2]] for r in batch], False)

    def _outage(self) -> bool:
        """Whether the subscriber reported a loss it has not reported restored yet."""
        event = self.sub.last_event
        return event is not None and event.kind == "lost"

    def _unplaced(self) -> bool:
        """Whether a sharded channel asked for is confirmed on no master right now."""
        return any(self.sub.shard_node(ch) is None for ch in self.sub.shard_channels)

    def _link_event(self, event: LinkEvent) -> None:
        # One outage of the subscriber (however many of its connections went) is one gap,
        # as the single-Redis source's one connection: from the last message before the
        # first loss to the first message after every subscription is confirmed again.
        if event.kind == "lost":
            self._gaps.lost()
            return
        self._moved = False
        _notify(self._notice, "subscriptions restored; traffic in between was missed")
        self._gaps.restored()

    def _error(self, exc: BaseException) -> None:
        self.errors.append(str(exc))
        _notify(self._notice, str(exc).rstrip("."))
        if not self._outage() and self._unplaced():
            # No connection was lost, yet a channel is on no master: its slot moved away
            # (the old owner unsubscribed it); what is published until it is subscribed on
            # the new owner is missed.
            self._moved = True
            self._gaps.lost()

    def _probe_error(self, exc: BaseException) -> None:
        self.errors.append(str(exc))

    def _reconnected(self) -> None:
        # An outage ends with its "restored" event; this ends a slot move's gap.
        if self._moved and not self._outage() and not self._unplaced():
            self._moved = False
            _notify(self._notice, "sharded subscriptions moved; traffic in between was missed")
            self._gaps.restored()

    def _wanted(self, found: ShardDiscovery) -> set[bytes]:
        masters = set(self.topology.masters)
        want: set[bytes] = set()
        for name, count in found.channels.items():
            ch = name.encode("utf-8", "surrogateescape")
            ours = 1 if self.sub.shard_node(ch) in masters else 0
            if count - ours > 0:  # somebody besides the sniffer holds it
                want.add(ch)
        return want

    async def _sync(self, *, wait: bool) -> None:
        found = await self.probe.look()
        self.discovery = found
        if not self.ssubscribe:
            return
        want = self._wanted(found)
        gone = self.sub.shard_channels - want
        if gone:
            self.sub.sunsubscribe_nowait(gone)
        new = want - self.sub.shard_channels
        if new and wait:
            await self.sub.ssubscribe(new)
        elif new:
            self.sub.ssubscribe_nowait(new)

    async def start(self) -> None:
        """Connect, subscribe, and (with ``ssubscribe``) SSUBSCRIBE every sharded channel
        found; returns once Redis confirmed them.

        Raises:
            RedisUnavailableError: Redis cannot be reached.
            ConfigurationError: ``cluster`` is wrong about the server.
        """
        if self.ssubscribe:
            warnings.warn(SSUBSCRIBE_WARNING, RuntimeWarning, stacklevel=3)
        await self.probe.start()
        try:
            await self.sub.start()
            await self._sync(wait=True)
        except BaseException:
            await self.sub.close()
            await self.probe.close()
            raise
        self._task = asyncio.create_task(self._follow(), name="siotools-sniffer-shards")

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            try:
                await self._sync(wait=False)
            except RedisUnavailableError as exc:
                self.errors.append(str(exc))
            except Exception as exc:  # keep following whatever went wrong once
                log.exception("sniffer: following the sharded channels failed")
                self.errors.append(str(exc))

    @property
    def channels(self) -> set[bytes]:
        """The sharded channels subscribed (asked for) now."""
        return set(self.sub.shard_channels)

    async def close(self) -> None:
        """Unsubscribe and close every connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.sub.close()
        await self.probe.close()


# --------------------------------------------------------------------------- choosing


class _CheckedLiveSource(LiveSource):
    """The single-Redis PSUBSCRIBE source, which first looks for sharded channels."""

    def __init__(
        self,
        url: str,
        prefix: str,
        sink: RawSink,
        *,
        endpoint: RedisEndpoint,
        pysocketio: str | None,
        on_gap: Callable[[int, int], None] | None,
        on_notice: Callable[[str], None] | None,
    ) -> None:
        super().__init__(url, prefix, sink, pysocketio=pysocketio, on_gap=on_gap)
        self._checked_endpoint = endpoint
        self._on_notice = on_notice

    async def start(self) -> None:
        await _check(
            ShardProbe(self._checked_endpoint, self.prefix, cluster=False), self._on_notice
        )
        await super().start()


class _CheckedClusterSource(ClusterPubSubSource):
    """PSUBSCRIBE on a Redis Cluster, which first looks for sharded channels."""

    async def start(self) -> None:
        await super().start()
        try:
            assert self.discovery is not None
            _verdict(self.discovery, self._notice)
        except BaseException:
            await self.close()
            raise


async def _check(probe: ShardProbe, on_notice: Callable[[str], None] | None) -> None:
    await probe.start()
    try:
        found = await probe.look()
    except RedisUnavailableError as exc:
        if not probe.connected:
            raise
        # PUBSUB refused (an ACL without +pubsub|shardchannels): sniff without the check.
        log.warning("sniffer: cannot look for sharded channels (%s)", exc)
        return
    finally:
        await probe.close()
    _verdict(found, on_notice)


def _verdict(found: ShardDiscovery, on_notice: Callable[[str], None] | None) -> None:
    if not found.sharded:
        return
    if not found.classic:
        raise ShardedPubSubError(found)
    # Classic nodes share the prefix: PSUBSCRIBE still shows them; say what it misses.
    text = ShardedNotice(found)
    if on_notice is not None:
        on_notice(text)
    else:
        warnings.warn(text, RuntimeWarning, stacklevel=4)


def open_source(
    url: str,
    prefix: str,
    sink: RawSink,
    *,
    pysocketio: str | None = None,
    monitor: bool = False,
    ssubscribe: bool = False,
    cluster: bool | None = None,
    on_gap: Callable[[int, int], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> SnifferSource:
    """The live source for a URL and a mode (not started).

    * ``monitor``: MONITOR on the single Redis, or on every master and replica of a Redis
      Cluster;
    * ``ssubscribe``: PSUBSCRIBE plus SSUBSCRIBE of every sharded channel found;
    * neither: PSUBSCRIBE; its ``start()`` first looks for sharded channels of the prefix
      and raises :class:`ShardedPubSubError` when there are only sharded ones (the sniffer
      would hear nothing), or tells ``on_notice`` (else warns) when classic ones are there
      too.

    Args:
        url: A Redis URL; ``?cluster=true`` (or ``cluster=True``) names a Redis Cluster.
        prefix: The adapters' key.
        sink: The raw sink.
        pysocketio: python-socketio's channel to watch too.
        monitor: Use MONITOR.
        ssubscribe: Also SSUBSCRIBE the sharded channels.
        cluster: Overrides the URL's ``cluster=`` flag.
        on_gap: Called with each gap.
        on_notice: Called with sentences the user should read (topology changes, the
            sharded notice).

    Raises:
        ConfigurationError: Bad URL, or ``monitor`` with ``ssubscribe``.
    """
    if monitor and ssubscribe:
        raise ConfigurationError(
            "monitor and ssubscribe are two ways to see sharded traffic; choose one"
        )
    endpoint, is_cluster = _resolve(url, cluster)
    if ssubscribe:
        return ClusterPubSubSource(
            endpoint,
            prefix,
            sink,
            pysocketio=pysocketio,
            ssubscribe=True,
            cluster=is_cluster,
            on_gap=on_gap,
            on_notice=on_notice,
        )
    if is_cluster and monitor:
        return ClusterMonitorSource(
            endpoint, prefix, sink, pysocketio=pysocketio, on_gap=on_gap, on_notice=on_notice
        )
    if is_cluster:
        return _CheckedClusterSource(
            endpoint, prefix, sink, pysocketio=pysocketio, on_gap=on_gap, on_notice=on_notice
        )
    if monitor:
        return LiveSource(url, prefix, sink, pysocketio=pysocketio, monitor=True, on_gap=on_gap)
    return _CheckedLiveSource(
        url,
        prefix,
        sink,
        endpoint=endpoint,
        pysocketio=pysocketio,
        on_gap=on_gap,
        on_notice=on_notice,
    )
