"""What the doctor reads from Redis: server facts, pub/sub clients, a passive sniff.

Everything here is read-only and passive: ``INFO``, ``CONFIG GET`` (where allowed),
``CLIENT LIST``, ``PUBSUB ...`` on a command connection, and ``PSUBSCRIBE`` on the sniffing
connection (patterns are not counted by NUMSUB). Nothing is published, nothing SUBSCRIBEd.
Sharded traffic (``SPUBLISH``) has no pattern form: only ``MONITOR``, on request, sees it.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from siotools.dialects.answers import counts_as_answer, expectation
from siotools.dialects.detect import CommandRunner, PubSubSnapshot, is_legacy
from siotools.exceptions import DecodeError, RedisUnavailableError
from siotools.protocol import (
    AllRoomsRequest,
    Broadcast,
    BroadcastAckRequest,
    ChannelGrammar,
    ChannelKind,
    ClusterMessage,
    Dialect,
    LegacyClientsResponse,
    RemoteDisconnectRequest,
    RemoteFetchRequest,
    RemoteJoinRequest,
    RemoteLeaveRequest,
    ServerSideEmitRequest,
    SocketsRequest,
    StreamMessage,
    decode,
    glob_escape,
    heard_as,
)
from siotools.sniffer.sharded import ClusterMonitorSource
from siotools.transport.cluster_pubsub import ClusterSubscriber
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.monitor import Monitor
from siotools.transport.pubsub import LinkEvent, Subscriber

DECODE_BROADCASTS = 20_000
"""Broadcasts a sniff decodes; later ones are only counted (requests are all decoded)."""

__all__ = [
    "DECODE_BROADCASTS",
    "BufferLimit",
    "ClientInfo",
    "ServerFacts",
    "Sniff",
    "TrackedRequest",
    "parse_buffer_limits",
    "parse_client_list",
    "parse_info",
    "read_server",
    "read_servers",
    "sniff",
]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """One connection of ``CLIENT LIST``.

    Attributes:
        id: The client id.
        addr: Its address.
        name: Its ``CLIENT SETNAME`` name ('' when none).
        age: Seconds connected.
        idle: Seconds since its last command.
        sub: Channels it SUBSCRIBEd.
        psub: Patterns it PSUBSCRIBEd.
        ssub: Shard channels it SSUBSCRIBEd (Redis 7+).
        omem: Bytes in its output buffer (what Redis holds for it, not yet read).
        cmd: Its last command.
        lib: The client library it reported (``lib-name lib-ver``, Redis 7.2+), or ''.
        fields: Every field as Redis printed it.
    """

    id: int
    addr: str
    name: str
    age: int
    idle: int
    sub: int
    psub: int
    ssub: int
    omem: int
    cmd: str
    lib: str
    fields: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def pubsub(self) -> bool:
        """Whether the connection is in pub/sub mode (holds a subscription)."""
        return bool(self.sub or self.psub or self.ssub)

    def label(self) -> str:
        """``id 12 addr 127.0.0.1:5555 name '' age 3s, last command subscribe``."""
        name = f" name {self.name!r}" if self.name else " (no name)"
        lib = f", library {self.lib}" if self.lib else ""
        return (
            f"client id {self.id} addr {self.addr}{name} age {self.age}s "
            f"(sub={self.sub} psub={self.psub} ssub={self.ssub}, last command {self.cmd}{lib})"
        )


def parse_client_list(text: str) -> list[ClientInfo]:
    """Parse ``CLIENT LIST`` output (one ``k=v`` line per client)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = dict(part.split("=", 1) for part in line.split(" ") if "=" in part)
        lib = " ".join(x for x in (fields.get("lib-name"), fields.get("lib-ver")) if x)
        out.append(
            ClientInfo(
                id=_int(fields.get("id")),
                addr=fields.get("addr", "?"),
                name=fields.get("name", ""),
                age=_int(fields.get("age")),
                idle=_int(fields.get("idle")),
                sub=_int(fields.get("sub")),
                psub=_int(fields.get("psub")),
                ssub=_int(fields.get("ssub")),
                omem=_int(fields.get("omem")),
                cmd=fields.get("cmd", "?"),
                lib=lib,
                fields=fields,
            )
        )
    return out


def parse_info(text: str) -> dict[str, str]:
    """Parse ``INFO`` output into ``{field: value}``."""
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


@dataclass(frozen=True, slots=True)
class BufferLimit:
    """The ``client-output-buffer-limit`` of pub/sub clients.

    Attributes:
        hard: Bytes at which Redis disconnects the client at once (0: no limit).
        soft: Bytes that, held for ``soft_seconds``, disconnect it (0: no limit).
        soft_seconds: How long the soft limit may be exceeded.
    """

    hard: int
    soft: int
    soft_seconds: int

    def describe(self) -> str:
        """``hard 32 MiB, soft 8 MiB for 60 s``."""
        return f"hard {_size(self.hard)}, soft {_size(self.soft)} for {self.soft_seconds} s"


def _size(n: int) -> str:
    if n == 0:
        return "none"
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:g} {unit}"
    return f"{n} B"


def parse_buffer_limits(value: str) -> BufferLimit | None:
    """The pub/sub entry of ``CONFIG GET client-output-buffer-limit``, or None."""
    parts = value.split()
    for i in range(0, len(parts) - 3, 4):
        if parts[i] == "pubsub":
            try:
                return BufferLimit(_bytes(parts[i + 1]), _bytes(parts[i + 2]), int(parts[i + 3]))
            except ValueError:
                return None
    return None


def _bytes(text: str) -> int:
    text = text.lower()
    for suffix, mult in (("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10), ("b", 1)):
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * mult
    return int(text)


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What Redis says about itself and its clients.

    Attributes:
        version: ``redis_version`` ('' when INFO was refused).
        info: Every ``INFO`` field read.
        clients: ``CLIENT LIST`` without the doctor's own connection (empty when refused).
        buffer_limit: The pub/sub output-buffer limit (None when CONFIG GET was refused).
        refused: The commands the server refused, with its answer.
        own_id: The doctor's own client id.
    """

    version: str
    info: dict[str, str]
    clients: list[ClientInfo]
    buffer_limit: BufferLimit | None
    refused: dict[str, str]
    own_id: int | None

    @property
    def version_tuple(self) -> tuple[int, ...]:
        """``(7, 0, 15)`` (empty when unknown)."""
        try:
            return tuple(int(x) for x in self.version.split("."))
        except ValueError:
            return ()


async def read_server(publisher: CommandRunner) -> ServerFacts:
    """Read INFO, CONFIG GET client-output-buffer-limit and CLIENT LIST.

    A command the server refuses (ACL, a managed Redis without CONFIG) is noted in
    ``refused``; only an unreachable server raises.

    Raises:
        RedisUnavailableError: Redis cannot be reached.
    """
    refused: dict[str, str] = {}

    async def ask(what: str, *args: bytes) -> Any:
        try:
            return await publisher.execute(*args)
        except RedisUnavailableError as exc:
            if not publisher.connected:
                raise
            # Still connected: the server refused this command (ACL, managed Redis).
            refused[what] = str(exc)
            return None

    info_raw = await ask("INFO", b"INFO")
    info = parse_info(_text(info_raw)) if info_raw is not None else {}
    limit = None
    cfg = await ask("CONFIG GET", b"CONFIG", b"GET", b"client-output-buffer-limit")
    if isinstance(cfg, list) and len(cfg) >= 2:
        limit = parse_buffer_limits(_text(cfg[1]))
    own = await ask("CLIENT ID", b"CLIENT", b"ID")
    own_id = int(own) if isinstance(own, int) else None
    listing = await ask("CLIENT LIST", b"CLIENT", b"LIST")
    clients = []
    if isinstance(listing, bytes | str):
        clients = [c for c in parse_client_list(_text(listing)) if c.id != own_id]
    return ServerFacts(
        version=info.get("redis_version", ""),
        info=info,
        clients=clients,
        buffer_limit=limit,
        refused=refused,
        own_id=own_id,
    )


async def read_servers(runners: Sequence[CommandRunner]) -> ServerFacts:
    """:func:`read_server` of each node (every master of a Redis Cluster) as one server:
    the clients of them all (a node's subscriptions are on the master it connected to),
    the oldest version, the first output-buffer limit read, every refusal.

    Raises:
        RedisUnavailableError: A node cannot be reached.
    """
    facts = [await read_server(runner) for runner in runners]
    if len(facts) == 1:
        return facts[0]
    known = [f for f in facts if f.version_tuple]
    oldest = min(known, key=lambda f: f.version_tuple) if known else facts[0]
    refused: dict[str, str] = {}
    for f in facts:
        for what, why in f.refused.items():
            refused.setdefault(what, why)
    return ServerFacts(
        version=oldest.version,
        info=oldest.info,
        clients=[c for f in facts for c in f.clients],
        buffer_limit=next((f.buffer_limit for f in facts if f.buffer_limit), None),
        refused=refused,
        own_id=facts[0].own_id,
    )


@dataclass(slots=True)
class TrackedRequest:
    """A request seen on the wire and the answers that followed it.

    Attributes:
        name: Node's name of the request.
        nsp: Its namespace.
        request_id: Its id.
        dialect: Its dialect.
        seen_ns: When it was seen.
        expected: Answers its requester waits for (None: the first completes it).
        answers_ns: When each answer was seen.
        uid: The requester's uid when the wire carries it.
        answer_sids: The socket ids of each ``clients`` answer (one node's sockets each).
    """

    name: str
    nsp: str
    request_id: str
    dialect: Dialect
    seen_ns: int
    expected: int | None
    answers_ns: list[int] = field(default_factory=list)
    uid: str | None = None
    answer_sids: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        """Seconds from the request to each answer."""
        return [(t - self.seen_ns) / 1e9 for t in self.answers_ns]

    @property
    def complete(self) -> bool:
        """Whether the answers the requester waits for all arrived."""
        if self.expected is None:
            return bool(self.answers_ns)
        return len(self.answers_ns) >= self.expected


@dataclass(slots=True)
class Sniff:
    """What a passive listen heard.

    Attributes:
        seconds: How long it listened.
        messages: Messages of the prefix heard.
        payload_bytes: Their payload bytes.
        malformed: Messages that did not decode, with an example reason.
        dialects: Dialect -> namespace -> messages.
        uids: Dialect -> sender uids seen (broadcasts and 8.x requests carry them).
        requests: Every request that expects answers, by request id.
        single_room_on_base: Legacy broadcasts to exactly one room sent on the namespace
            channel (a 4.x node without channel multiplexing), per namespace: uids.
        room_channel_broadcasts: Broadcasts sent on a room channel, per namespace.
        orphans: Answers whose request was not seen.
        started_ns: When it started.
        broadcasts_heard: Broadcasts heard (only the first :data:`DECODE_BROADCASTS` are
            decoded).
        monitored: Whether ``MONITOR`` watched sharded traffic.
        spublished: ``SPUBLISH`` commands on the prefix's channels that MONITOR showed.
        sharded_with_nsp: Sender uid -> sharded messages whose envelope has ``nsp``
            (@socket.io/redis-adapter 8.3.0+, socket.io-adapter's ClusterAdapter).
        sharded_without_nsp: Sender uid -> sharded messages without it (8.2.x, its own
            ClusterAdapter: ``{uid, type, data}``).
        monitor_error: Why MONITOR could not run, when it was asked for and refused.
        monitored_masters: On a Redis Cluster, the masters MONITOR watched (``host:port``).
        monitored_replicas: On a Redis Cluster, the replicas MONITOR watched.
        gaps: ``(start_ns, end_ns)`` of each stretch the listen heard nothing because its
            connection was lost (on a Redis Cluster it moves to another node).
        lost_at_end: Whether the listen's connection was lost and not back when the
            listen ended (what was published from the loss on was missed).
        notices: One sentence per loss or restore of the listen's connection.
    """

    seconds: float = 0.0
    messages: int = 0
    payload_bytes: int = 0
    malformed: list[str] = field(default_factory=list)
    malformed_count: int = 0
    dialects: dict[Dialect, dict[str, int]] = field(default_factory=dict)
    uids: dict[Dialect, set[str]] = field(default_factory=dict)
    requests: dict[str, TrackedRequest] = field(default_factory=dict)
    single_room_on_base: dict[str, set[str]] = field(default_factory=dict)
    room_channel_broadcasts: dict[str, int] = field(default_factory=dict)
    orphans: int = 0
    started_ns: int = 0
    broadcasts_heard: int = 0
    monitored: bool = False
    spublished: int = 0
    sharded_with_nsp: dict[str, int] = field(default_factory=dict)
    sharded_without_nsp: dict[str, int] = field(default_factory=dict)
    monitor_error: str | None = None
    monitored_masters: list[str] = field(default_factory=list)
    monitored_replicas: list[str] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    lost_at_end: bool = False
    notices: list[str] = field(default_factory=list)

    @property
    def gap_seconds(self) -> float:
        """Seconds of the listen during which nothing could be heard."""
        return sum(end - start for start, end in self.gaps) / 1e9

    def feed_spublish(self, channel: bytes, payload: bytes, g: ChannelGrammar) -> None:
        """Account for one ``SPUBLISH`` that MONITOR showed: which sharded adapter
        generation sent it (8.3.0 added ``nsp`` to the envelope)."""
        ch = g.parse(channel)
        if ch.kind is not ChannelKind.BROADCAST and ch.kind is not ChannelKind.ROOM:
            return
        self.spublished += 1
        try:
            frame = decode(channel, payload, prefix=g.prefix, sharded=True)
        except DecodeError as exc:
            self.malformed_count += 1
            if len(self.malformed) < 5:
                self.malformed.append(f"{ch.name} (SPUBLISH): {exc}")
            return
        if not isinstance(frame, ClusterMessage) or not isinstance(frame.uid, str):
            return
        per = self.sharded_with_nsp if frame.has_nsp else self.sharded_without_nsp
        per[frame.uid] = per.get(frame.uid, 0) + 1

    def feed(
        self,
        now_ns: int,
        channel: bytes,
        payload: bytes,
        g: ChannelGrammar,
        numsub: Callable[[str], int],
    ) -> None:
        """Account for one message heard at ``now_ns``."""
        ch = g.parse(channel)
        if ch.kind is ChannelKind.UNKNOWN or ch.kind is ChannelKind.PYSOCKETIO:
            return
        self.messages += 1
        self.payload_bytes += len(payload)
        if ch.kind is ChannelKind.ROOM or ch.kind is ChannelKind.BROADCAST:
            self.broadcasts_heard += 1
            if self.broadcasts_heard > DECODE_BROADCASTS:
                # On a busy cluster the doctor must not become a slow consumer itself:
                # past a sample, broadcasts are counted, not decoded (requests always are).
                if ch.kind is ChannelKind.ROOM and ch.nsp is not None:
                    n = self.room_channel_broadcasts.get(ch.nsp, 0)
                    self.room_channel_broadcasts[ch.nsp] = n + 1
                return
        try:
            # A PSUBSCRIBE hears no SPUBLISH: maps it hears are no sharded adapter's.
            frame = heard_as(decode(channel, payload, prefix=g.prefix), sharded=False)
        except DecodeError as exc:
            self.malformed_count += 1
            if len(self.malformed) < 5:
                self.malformed.append(f"{ch.name}: {exc}")
            return
        nsp = frame.nsp or ch.nsp or "/"
        per = self.dialects.setdefault(frame.dialect, {})
        per[nsp] = per.get(nsp, 0) + 1
        uid = frame.uid if isinstance(frame, _SENDERS) else None
        if isinstance(uid, str) and uid and uid != "emitter":
            self.uids.setdefault(frame.dialect, set()).add(uid)
        if isinstance(frame, Broadcast):
            rooms = frame.rooms
            if ch.kind is ChannelKind.ROOM:
                self.room_channel_broadcasts[nsp] = self.room_channel_broadcasts.get(nsp, 0) + 1
            elif (
                ch.kind is ChannelKind.BROADCAST
                and rooms is not None
                and len(rooms) == 1
                and is_legacy(frame.dialect)
            ):
                self.single_room_on_base.setdefault(nsp, set()).add(frame.uid)
            return
        if ch.kind is ChannelKind.REQUEST:
            exp = expectation(frame, numsub(nsp))
            if exp is not None and exp.request_id not in self.requests:
                self.requests[exp.request_id] = TrackedRequest(
                    exp.name,
                    nsp,
                    exp.request_id,
                    frame.dialect,
                    now_ns,
                    exp.expected,
                    uid=uid if isinstance(uid, str) else None,
                )
            return
        answered = counts_as_answer(frame)
        if answered is not None:
            req = self.requests.get(answered)
            if req is None:
                self.orphans += 1
            else:
                req.answers_ns.append(now_ns)
                if isinstance(frame, LegacyClientsResponse) and isinstance(frame.clients, tuple):
                    req.answer_sids.append(tuple(str(x) for x in frame.clients))


_SENDERS: Final = (
    Broadcast, ClusterMessage, StreamMessage, AllRoomsRequest, SocketsRequest,
    RemoteFetchRequest, RemoteJoinRequest, RemoteLeaveRequest, RemoteDisconnectRequest,
    ServerSideEmitRequest, BroadcastAckRequest,
)  # fmt: skip
"""Frames that name their sender's uid."""


async def sniff(
    endpoint: RedisEndpoint,
    prefix: str,
    seconds: float,
    snap: PubSubSnapshot,
    *,
    during: Callable[[], Any] | None = None,
    monitor: bool = False,
    cluster: bool = False,
) -> Sniff:
    """Listen passively (``PSUBSCRIBE P*``) for ``seconds`` and track requests and answers.

    Args:
        endpoint: The Redis server.
        prefix: The adapters' key.
        seconds: How long to listen.
        snap: The subscription counts, which size what each requester waits for.
        during: An awaitable factory run while listening (the probe), awaited before the
            listen ends.
        monitor: Also run ``MONITOR`` to see ``SPUBLISH`` (sharded traffic); costly for
            the server (it formats every command for the monitor). MONITOR sees only the
            server it is connected to: on a Redis Cluster every master and replica is monitored
            (and followed through failovers).
        cluster: ``endpoint`` is a node of a Redis Cluster: the listen is a
            :class:`~siotools.transport.cluster_pubsub.ClusterSubscriber` (as the sniffer's
            cluster source), which moves to another node when its own is lost (any node
            hears every ``PUBLISH``).

    Each stretch the listen heard nothing because its connection was lost is noted in
    ``gaps`` (one per outage, with a sentence in ``notices``).

    A refused MONITOR (ACL, a managed Redis) is noted in ``monitor_error``; the listen
    goes on without it.
    """
    g = ChannelGrammar(prefix)
    result = Sniff(seconds=seconds, started_ns=time.time_ns(), monitored=monitor)

    def numsub(nsp: str) -> int:
        return snap.channels.get(g.request(nsp), 0)

    def on_message(channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        result.feed(time.time_ns(), channel, payload, g, numsub)

    def on_command(_: float, args: list[bytes]) -> None:
        if len(args) == 3 and args[0].upper() == b"SPUBLISH":
            result.feed_spublish(args[1], args[2], g)

    def on_published(_: int, batch: list[list[bytes]], sharded: bool) -> None:
        if sharded:
            for reply in batch:
                result.feed_spublish(reply[2], reply[3], g)

    watcher: Monitor | ClusterMonitorSource | None = None
    if monitor and cluster:
        # A SPUBLISH runs on the node it was sent to: its slot's master, or one of the
        # master's replicas (after READONLY). One MONITOR per master and per replica.
        watcher = ClusterMonitorSource(endpoint, prefix, on_published)
    elif monitor:
        watcher = Monitor(endpoint, on_command, name="siotools-doctor-monitor")

    def on_event(event: LinkEvent) -> None:
        if event.kind == "lost":
            result.notices.append(f"the listen's connection to {event.url} was lost")
            return
        # From the last message before the loss: Redis may have dropped what it held for
        # the connection too.
        since = event.last_message_at if event.last_message_at is not None else event.lost_at
        result.gaps.append((int(since * 1e9), int(event.at * 1e9)))
        result.notices.append(
            f"the listen was subscribed again after {event.gap or 0.0:.1f} s; traffic in "
            "between was missed"
        )

    sub: Subscriber | ClusterSubscriber
    if cluster:
        # Any node hears every PUBLISH: the cluster subscriber moves the listen to another
        # node when its own is lost (a failover, a node killed).
        sub = ClusterSubscriber(
            endpoint, on_message, name="siotools-doctor-sniff", on_event=on_event
        )
    else:
        sub = Subscriber(endpoint, on_message, name="siotools-doctor-sniff", on_event=on_event)
    sub.patterns.add((glob_escape(g.prefix) + "*").encode())
    if watcher is not None:
        try:
            with warnings.catch_warnings():
                # The cost is the doctor's to say (its --monitor help and the CLI).
                warnings.simplefilter("ignore", RuntimeWarning)
                await watcher.start()
        except RedisUnavailableError as exc:  # refused (ACL, managed Redis): said, not fatal
            result.monitored, result.monitor_error, watcher = False, str(exc), None
        else:
            if isinstance(watcher, ClusterMonitorSource):
                result.monitored_masters = list(watcher.masters)
                result.monitored_replicas = list(watcher.replicas)
    try:
        await sub.start()
    except BaseException:
        if watcher is not None:
            await watcher.close()
        raise
    try:
        started = time.monotonic()
        if during is not None:
            await during()
        left = seconds - (time.monotonic() - started)
        if left > 0:
            await asyncio.sleep(left)
        result.seconds = max(seconds, time.monotonic() - started)
        event = sub.last_event
        if event is not None and event.kind == "lost":
            # Lost and not back by the end: what was published since was missed.
            result.lost_at_end = True
            since = event.last_message_at if event.last_message_at is not None else event.at
            result.gaps.append((int(since * 1e9), time.time_ns()))
    finally:
        await sub.close()
        if watcher is not None:
            await watcher.close()
    return result
