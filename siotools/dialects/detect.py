"""Passive dialect detection: which adapter generations live on a prefix.

Reads what Redis says about the prefix's subscriptions, and, when that leaves the answer
open, listens a moment to the traffic; it never publishes and never SUBSCRIBEs (a plain
subscription to a request channel would be counted by ``PUBSUB NUMSUB`` and every node's
requests would then wait for it, socket.io-redis-adapter #406). The clues, per namespace
``N`` of prefix ``P``:

* ``P-response#N#<uid>#`` SUBSCRIBEd, ``uid`` six ``[A-Za-z0-9_-]`` characters: a
  @socket.io/redis-adapter 7.1+/8.x classic node (every namespace adapter subscribes its own
  response channel, RA 8.3.0 ``lib/index.ts`` L143-L186);
* ``P-request#N#`` counted by NUMSUB beyond those nodes, with ``P-response#N#`` counted too:
  socket.io-redis 4.x/5.x nodes (they SUBSCRIBE request and response only, 5.4.0
  ``index.js`` L405-L417, besides their pattern or broadcast subscription);
* ``P#N#`` SUBSCRIBEd (not PSUBSCRIBEd): socket.io-redis 4.x (``SUBSCRIBE P#N# P-request#N#
  P-response#N#``, 4.0.1 ``index.js`` L108-L121) or a siotools adapter in ``subscribe``
  mode; ``P#N#room#`` SUBSCRIBEd: the same with channel multiplexing on;
* sharded channels (``PUBSUB SHARDCHANNELS``) ``P#N#`` and ``P#N#<16 hex>#``: the 8.x
  sharded adapter (``SSUBSCRIBE`` of its main and response channels, RA 8.3.0
  ``lib/sharded-adapter.ts`` L76-L112);
* messages heard through ``PSUBSCRIBE P*`` (not counted by NUMSUB): each decoded frame
  carries its dialect (:func:`siotools.protocol.decode`).

socket.io-redis 4.x and 5.x write the same requests, and the same broadcasts unless a
payload holds binary, dates or ``undefined``; :data:`Dialect.LEGACY` stands for both unless
the traffic shows msgpack-lite.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from siotools.exceptions import (
    ConfigurationError,
    DecodeError,
    RedisUnavailableError,
)
from siotools.protocol import (
    ChannelGrammar,
    ChannelKind,
    ClusterMessageType,
    Dialect,
    decode,
    decode_entry,
    glob_escape,
)
from siotools.protocol.streams import DEFAULT_SESSION_PREFIX, entry_id_ms, heard_as
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher, Subscriber

__all__ = [
    "Detection",
    "KeyRoute",
    "MixHazard",
    "NamespaceClues",
    "PubSubSnapshot",
    "StreamClues",
    "choose",
    "classic",
    "clues",
    "conflict",
    "counts_masters_per_slot_run",
    "describe_dialects",
    "detect",
    "detect_across",
    "detect_with",
    "dialect_name",
    "generation",
    "generations",
    "is_current_uid",
    "is_legacy",
    "is_sharded_uid",
    "legacy_versions_mixed",
    "listen_traffic",
    "merge_snapshots",
    "mix_hazards",
    "needs_sharded_pubsub",
    "numsub_across",
    "read_stream",
    "read_stream_across",
    "snapshot",
    "snapshot_across",
    "spoken",
    "stream_clues",
    "structural_evidence",
    "with_traffic",
]

_CURRENT_UID: Final = re.compile(r"[A-Za-z0-9_-]{6}")
_SHARDED_UID: Final = re.compile(r"[0-9a-f]{16}")
_DIALECT_NAMES: Final = {
    Dialect.LEGACY: "socket.io-redis 4.x/5.x",
    Dialect.LEGACY_LITE: "socket.io-redis 4.x (msgpack-lite)",
    Dialect.CURRENT: "@socket.io/redis-adapter 7.x/8.x classic",
    Dialect.SHARDED: "@socket.io/redis-adapter 8.x sharded",
    Dialect.PYSOCKETIO: "python-socketio's own manager",
    Dialect.STREAMS: "@socket.io/redis-streams-adapter",
}


def dialect_name(dialect: Dialect) -> str:
    """The libraries behind a dialect, for sentences ("socket.io-redis 4.x/5.x")."""
    return _DIALECT_NAMES[dialect]


def is_current_uid(text: str) -> bool:
    """Whether ``text`` has the shape of an 8.x classic server uid (``uid2(6)``)."""
    return _CURRENT_UID.fullmatch(text) is not None


def is_sharded_uid(text: str) -> bool:
    """Whether ``text`` has the shape of a sharded server uid (``randomBytes(8).hex``)."""
    return _SHARDED_UID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class PubSubSnapshot:
    """What ``PUBSUB`` says about one prefix at one moment.

    Attributes:
        prefix: The prefix.
        channels: Every SUBSCRIBEd channel of the prefix and its NUMSUB count.
        shard_channels: Every SSUBSCRIBEd channel of the prefix and its SHARDNUMSUB count
            (empty on Redis < 7, see ``sharded_supported``).
        numpat: ``PUBSUB NUMPAT``: pattern subscriptions on the whole server.
        sharded_supported: Whether the server knows ``PUBSUB SHARDCHANNELS`` (Redis 7+).
    """

    prefix: str
    channels: dict[str, int]
    shard_channels: dict[str, int]
    numpat: int
    sharded_supported: bool = True


@dataclass(frozen=True, slots=True)
class NamespaceClues:
    """The subscription structure of one namespace, read from a :class:`PubSubSnapshot`.

    Attributes:
        nsp: The namespace.
        request_subscribers: NUMSUB of ``P-request#N#`` (what classic requesters wait for).
        response_subscribers: NUMSUB of ``P-response#N#``.
        current_uids: 8.x classic node uids (from their ``P-response#N#<uid>#`` channels).
        broadcast_subscribers: NUMSUB of ``P#N#`` (4.x-style subscribe-mode nodes).
        room_channels: SUBSCRIBEd room channels ``P#N#room#`` (4.x multiplexing) by room.
        sharded_subscribers: SHARDNUMSUB of ``P#N#`` (sharded nodes).
        sharded_uids: Sharded node uids (from their ``P#N#<uid>#`` shard channels).
        sharded_rooms: SSUBSCRIBEd dynamic room channels by room.
    """

    nsp: str
    request_subscribers: int = 0
    response_subscribers: int = 0
    current_uids: tuple[str, ...] = ()
    broadcast_subscribers: int = 0
    room_channels: dict[str, int] = field(default_factory=dict)
    sharded_subscribers: int = 0
    sharded_uids: tuple[str, ...] = ()
    sharded_rooms: dict[str, int] = field(default_factory=dict)

    def node_uids(self, dialect: Dialect) -> tuple[str, ...]:
        """The node uids the subscriptions name for ``dialect`` (8.x classic response
        channels, sharded private channels; 4.x/5.x subscriptions carry none)."""
        if dialect is Dialect.CURRENT:
            return self.current_uids
        if dialect is Dialect.SHARDED:
            return self.sharded_uids
        return ()

    @property
    def legacy_subscribers(self) -> int:
        """Request-channel subscribers that are not 8.x classic nodes (legacy or foreign)."""
        return max(0, self.request_subscribers - len(self.current_uids))

    @property
    def legacy_likely(self) -> bool:
        """Whether the extra request subscribers look like legacy nodes (they also hold the
        common response channel, which a bare spy on the request channel does not)."""
        extra_responses = self.response_subscribers - len(self.current_uids)
        return self.legacy_subscribers > 0 and (extra_responses > 0 or self.subscribe_mode)

    @property
    def subscribe_mode(self) -> bool:
        """Whether some node SUBSCRIBEs ``P#N#`` (4.x, or a siotools adapter in that mode)."""
        return self.broadcast_subscribers > 0


def clues(snap: PubSubSnapshot) -> dict[str, NamespaceClues]:
    """Group a snapshot's channels by namespace."""
    g = ChannelGrammar(snap.prefix)
    acc: dict[str, dict[str, Any]] = {}

    def ns(nsp: str) -> dict[str, Any]:
        return acc.setdefault(
            nsp,
            {
                "current_uids": [],
                "room_channels": {},
                "sharded_uids": [],
                "sharded_rooms": {},
            },
        )

    for name, count in snap.channels.items():
        ch = g.parse(name)
        if ch.nsp is None or count <= 0:
            continue
        d = ns(ch.nsp)
        if ch.kind is ChannelKind.REQUEST:
            d["request_subscribers"] = count
        elif ch.kind is ChannelKind.RESPONSE:
            d["response_subscribers"] = count
        elif ch.kind is ChannelKind.RESPONSE_UID and ch.uid is not None:
            if is_current_uid(ch.uid):
                d["current_uids"].append(ch.uid)
        elif ch.kind is ChannelKind.BROADCAST:
            d["broadcast_subscribers"] = count
        elif ch.kind is ChannelKind.ROOM and ch.room is not None:
            d["room_channels"][ch.room] = count
    for name, count in snap.shard_channels.items():
        ch = g.parse(name)
        if ch.nsp is None or count <= 0:
            continue
        d = ns(ch.nsp)
        if ch.kind is ChannelKind.BROADCAST:
            d["sharded_subscribers"] = count
        elif ch.kind is ChannelKind.ROOM and ch.room is not None:
            if is_sharded_uid(ch.room):
                d["sharded_uids"].append(ch.room)
            else:
                d["sharded_rooms"][ch.room] = count
    out = {}
    for nsp, d in sorted(acc.items()):
        d["current_uids"] = tuple(sorted(d["current_uids"]))
        d["sharded_uids"] = tuple(sorted(d["sharded_uids"]))
        out[nsp] = NamespaceClues(nsp=nsp, **d)
    return out


@dataclass(frozen=True, slots=True)
class Detection:
    """The adapter dialects found on one prefix, and why.

    Attributes:
        prefix: The prefix examined.
        dialects: Every dialect seen on this prefix (empty: none).
        namespaces: Namespaces seen (from channel names and traffic).
        sharded: Whether sharded channels (``PUBSUB SHARDCHANNELS``) exist under the prefix.
        evidence: One sentence per clue.
        by_namespace: The dialects seen per namespace.
        clues: The subscription structure per namespace.
        snapshot: The ``PUBSUB`` answers the detection read.
        messages: How many messages the listen phase heard (0 when it was skipped).
        listened: Seconds the listen phase lasted (0 when it was skipped).
    """

    prefix: str
    dialects: frozenset[Dialect]
    namespaces: tuple[str, ...]
    sharded: bool
    evidence: tuple[str, ...]
    by_namespace: dict[str, frozenset[Dialect]] = field(default_factory=dict)
    clues: dict[str, NamespaceClues] = field(default_factory=dict)
    snapshot: PubSubSnapshot | None = None
    messages: int = 0
    listened: float = 0.0
    streams: StreamClues | None = None

    @property
    def dialect(self) -> Dialect | None:
        """The single dialect, or None when there is none or several."""
        if len(self.dialects) == 1:
            return next(iter(self.dialects))
        return None

    @property
    def mixed(self) -> bool:
        """Whether more than one dialect shares the prefix."""
        return len(self.dialects) > 1


def _pairs(reply: Any) -> dict[str, int]:
    items = list(reply or [])
    out: dict[str, int] = {}
    for i in range(0, len(items) - 1, 2):
        name = items[i]
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        out[text] = int(items[i + 1])
    return out


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class CommandRunner(Protocol):
    """A started command connection: :class:`~siotools.transport.pubsub.Publisher` or the
    Redis Cluster one (only ``execute`` and ``connected`` are used, nothing is published)."""

    @property
    def connected(self) -> bool: ...

    async def execute(self, *args: Any, timeout: float | None = None) -> Any: ...


_SNAPSHOT_ATTEMPTS: Final = 3
"""Reads of ``CHANNELS``+``NUMSUB`` before a moving subscription list is taken as it is."""


async def snapshot(publisher: CommandRunner, prefix: str) -> PubSubSnapshot:
    """Read ``PUBSUB CHANNELS/NUMSUB/SHARDCHANNELS/SHARDNUMSUB/NUMPAT`` for a prefix.

    Args:
        publisher: A started command connection (nothing is published on it).
        prefix: The prefix.

    Raises:
        RedisUnavailableError: Redis cannot be reached or refused ``PUBSUB``.
    """
    g = ChannelGrammar(prefix)
    pattern = (glob_escape(g.prefix) + "*").encode()

    async def listed() -> list[str]:
        names = [_text(c) for c in await publisher.execute(b"PUBSUB", b"CHANNELS", pattern)]
        return sorted(n for n in names if g.parse(n).kind is not ChannelKind.UNKNOWN)

    # A node that subscribes between CHANNELS and NUMSUB is counted on the request channel
    # without its response channel listed, which reads as a 5.x node beside the 8.x ones:
    # the channel list is read again after NUMSUB, and the pair is retried while it moved.
    names = await listed()
    for _attempt in range(_SNAPSHOT_ATTEMPTS):
        channels = (
            _pairs(await publisher.execute(b"PUBSUB", b"NUMSUB", *[n.encode() for n in names]))
            if names
            else {}
        )
        again = await listed()
        if again == names:
            break
        names = again
    shard: dict[str, int] = {}
    supported = True
    try:
        shard_pattern = (glob_escape(g.prefix + "#") + "*").encode()
        shard_names = [
            _text(c) for c in await publisher.execute(b"PUBSUB", b"SHARDCHANNELS", shard_pattern)
        ]
        if shard_names:
            shard = _pairs(
                await publisher.execute(
                    b"PUBSUB", b"SHARDNUMSUB", *[n.encode() for n in shard_names]
                )
            )
    except RedisUnavailableError:
        if not publisher.connected:
            raise
        # Still connected: the server refused the subcommand (sharded pub/sub is Redis 7+).
        supported = False
    numpat = int(await publisher.execute(b"PUBSUB", b"NUMPAT"))
    return PubSubSnapshot(prefix, channels, shard, numpat, supported)


def structural_evidence(snap: PubSubSnapshot) -> tuple[dict[str, set[Dialect]], list[str]]:
    """The dialects the subscription structure proves, per namespace, with one sentence each.

    Returns:
        ``(dialects by namespace, evidence sentences)``.
    """
    g = ChannelGrammar(snap.prefix)
    found: dict[str, set[Dialect]] = {}
    evidence: list[str] = []
    for nsp, c in clues(snap).items():
        seen = found.setdefault(nsp, set())
        for uid in c.current_uids:
            seen.add(Dialect.CURRENT)
            evidence.append(
                f"PUBSUB CHANNELS lists {g.response_for(nsp, uid)}: a "
                f"@socket.io/redis-adapter 8.x classic node (uid {uid})"
            )
        if c.sharded_subscribers or c.sharded_uids:
            seen.add(Dialect.SHARDED)
            uids = ", ".join(c.sharded_uids) or "none listed"
            evidence.append(
                f"PUBSUB SHARDCHANNELS lists {g.broadcast(nsp)} ({c.sharded_subscribers} "
                f"SSUBSCRIBEd): @socket.io/redis-adapter 8.x sharded nodes (uids {uids})"
            )
        if c.subscribe_mode:
            seen.add(Dialect.LEGACY)
            mux = (
                f", and {len(c.room_channels)} room channels (channel multiplexing on)"
                if c.room_channels
                else ""
            )
            evidence.append(
                f"{g.broadcast(nsp)} is SUBSCRIBEd by {c.broadcast_subscribers} "
                f"connection(s){mux}: socket.io-redis 4.x nodes (or siotools adapters in "
                f"subscribe mode)"
            )
        elif c.legacy_likely:
            seen.add(Dialect.LEGACY)
            evidence.append(
                f"PUBSUB NUMSUB {g.request(nsp)} is {c.request_subscribers} with "
                f"{len(c.current_uids)} 8.x node(s) and {g.response(nsp)} counted too: "
                f"{c.legacy_subscribers} socket.io-redis 5.x-style node(s) (PSUBSCRIBE "
                f"{g.broadcast_pattern(nsp)} plus request and response)"
            )
        elif c.legacy_subscribers:
            evidence.append(
                f"PUBSUB NUMSUB {g.request(nsp)} counts {c.legacy_subscribers} subscriber(s) "
                f"that hold no response channel: not adapter nodes (a foreign subscriber "
                f"every request waits for)"
            )
    if not snap.sharded_supported:
        evidence.append("this Redis has no PUBSUB SHARDCHANNELS (before 7.0): no sharded nodes")
    return found, evidence


def _ambiguous(found: dict[str, set[Dialect]]) -> bool:
    every = set().union(*found.values()) if found else set()
    # 4.x and 5.x look alike in the subscriptions: only traffic can show msgpack-lite.
    return len(every) != 1 or Dialect.LEGACY in every


async def listen_traffic(
    endpoint: RedisEndpoint, prefix: str, seconds: float
) -> tuple[dict[str, set[Dialect]], list[str], int]:
    """PSUBSCRIBE ``P*`` for ``seconds`` and note the dialect of every decoded message.

    Pattern subscriptions are not counted by NUMSUB, so the cluster does not notice.

    Returns:
        ``(dialects by namespace, evidence sentences, messages heard)``.
    """
    g = ChannelGrammar(prefix)
    seen: dict[str, dict[Dialect, tuple[int, str]]] = {}
    heard = 0

    def on_message(channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        nonlocal heard
        ch = g.parse(channel)
        if ch.kind is ChannelKind.UNKNOWN:
            return
        heard += 1
        try:
            # A PSUBSCRIBE hears no SPUBLISH: maps it hears are no sharded adapter's.
            frame = heard_as(decode(channel, payload, prefix=g.prefix), sharded=False)
        except DecodeError:
            return
        nsp = frame.nsp or ch.nsp or "/"
        per = seen.setdefault(nsp, {})
        count, example = per.get(frame.dialect, (0, ch.name))
        per[frame.dialect] = (count + 1, example)

    sub = Subscriber(endpoint, on_message, name="siotools-detect")
    sub.patterns.add((glob_escape(g.prefix) + "*").encode())
    await sub.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        await sub.close()
    found: dict[str, set[Dialect]] = {}
    evidence = []
    for nsp, per in sorted(seen.items()):
        found[nsp] = set(per)
        for dialect, (count, example) in per.items():
            evidence.append(
                f"{count} message(s) heard in {nsp} decode as {dialect.value} "
                f"({dialect_name(dialect)}), e.g. on {example}"
            )
    return found, evidence, heard


async def detect(
    endpoint: RedisEndpoint, prefix: str = "socket.io", *, listen: float = 1.0
) -> Detection:
    """Find the adapter dialects on ``prefix`` without disturbing the cluster.

    First the subscription structure (``PUBSUB CHANNELS``/``NUMSUB``/``SHARDCHANNELS``/
    ``SHARDNUMSUB``); then, if that leaves one dialect open (none found, several, or the
    legacy family, whose 4.x and 5.x look alike), ``listen`` seconds of ``PSUBSCRIBE P*``.
    Never publishes, never SUBSCRIBEs: NUMSUB and SHARDNUMSUB stay as they were.

    Args:
        endpoint: The Redis server.
        prefix: The adapters' key.
        listen: Seconds to listen when the structure is ambiguous (0: never listen).

    Returns:
        The :class:`Detection`.

    Raises:
        RedisUnavailableError: Redis cannot be reached.
    """
    prefix = prefix or "socket.io"
    publisher = Publisher(endpoint, name="siotools-detect")
    await publisher.start()
    try:
        snap = await snapshot(publisher, prefix)
    finally:
        await publisher.close()
    found, evidence = structural_evidence(snap)
    heard = 0
    listened = 0.0
    if listen > 0 and _ambiguous(found):
        traffic, said, heard = await listen_traffic(endpoint, prefix, listen)
        listened = listen
        for nsp, dialects in traffic.items():
            with_traffic(found.setdefault(nsp, set()), dialects)
        evidence += said
        if not heard:
            evidence.append(f"no message of {prefix} was heard in {listen:g} s of listening")
    streams = await _read_stream_once(endpoint, prefix, snap)
    if streams is not None:
        reconcile_streams(found, evidence, streams, snap)
    by_nsp = {nsp: frozenset(d) for nsp, d in sorted(found.items())}
    every: set[Dialect] = set()
    for nsp_dialects in by_nsp.values():
        every |= nsp_dialects
    if not evidence:
        evidence.append(f"no channel of prefix {prefix} is subscribed: no node runs there")
    return Detection(
        prefix=prefix,
        dialects=frozenset(every),
        namespaces=tuple(by_nsp),
        sharded=bool(snap.shard_channels),
        evidence=tuple(evidence),
        by_namespace=by_nsp,
        clues=clues(snap),
        snapshot=snap,
        messages=heard,
        listened=listened,
        streams=streams,
    )


def describe_dialects(dialects: Iterable[Dialect]) -> str:
    """``"socket.io-redis 4.x/5.x and @socket.io/redis-adapter 7.x/8.x classic"``."""
    names = [dialect_name(d) for d in sorted(dialects, key=lambda d: d.value)]
    return " and ".join(names) if names else "none"


def _detection(prefix: str, snap: PubSubSnapshot) -> Detection:
    found, evidence = structural_evidence(snap)
    by_nsp = {nsp: frozenset(d) for nsp, d in sorted(found.items())}
    every: set[Dialect] = set()
    for nsp_dialects in by_nsp.values():
        every |= nsp_dialects
    return Detection(
        prefix=prefix,
        dialects=frozenset(every),
        namespaces=tuple(by_nsp),
        sharded=bool(snap.shard_channels),
        evidence=tuple(evidence),
        by_namespace=by_nsp,
        clues=clues(snap),
        snapshot=snap,
    )


async def detect_with(publisher: CommandRunner, prefix: str = "socket.io") -> Detection:
    """The structural part of :func:`detect` (no listening) over a started connection:
    what :class:`~siotools.ClusterClient` and a starting node read, in a few commands.

    Raises:
        RedisUnavailableError: Redis cannot be reached or refused ``PUBSUB``.
    """
    prefix = prefix or "socket.io"
    return _detection(prefix, await snapshot(publisher, prefix))


def merge_snapshots(prefix: str, snaps: Sequence[PubSubSnapshot]) -> PubSubSnapshot:
    """One snapshot of a Redis Cluster from each master's: ``PUBSUB`` is node-local there
    (a node-redis cluster client SUBSCRIBEs on one node, SSUBSCRIBEs on the slot's master),
    so the counts of a channel are summed over the nodes, as @socket.io/redis-adapter
    lib/util.ts ``PUBSUB()`` sums NUMSUB over the masters."""
    channels: dict[str, int] = {}
    shard: dict[str, int] = {}
    for snap in snaps:
        for name, n in snap.channels.items():
            channels[name] = channels.get(name, 0) + n
        for name, n in snap.shard_channels.items():
            shard[name] = shard.get(name, 0) + n
    return PubSubSnapshot(
        prefix,
        channels,
        shard,
        sum(snap.numpat for snap in snaps),
        all(snap.sharded_supported for snap in snaps),
    )


async def snapshot_across(runners: Sequence[CommandRunner], prefix: str) -> PubSubSnapshot:
    """:func:`snapshot` of each node (every master of a Redis Cluster), merged by
    :func:`merge_snapshots`; a single Redis' as it is.

    Raises:
        RedisUnavailableError: A node cannot be reached or refused ``PUBSUB``.
    """
    if len(runners) == 1:
        return await snapshot(runners[0], prefix)
    return merge_snapshots(prefix, [await snapshot(runner, prefix) for runner in runners])


async def numsub_across(runners: Sequence[CommandRunner], channels: Sequence[bytes]) -> list[int]:
    """``PUBSUB NUMSUB`` of ``channels`` summed over the nodes (every master of a Redis
    Cluster, where it is node-local), in the order given.

    Raises:
        RedisUnavailableError: A node cannot be reached or refused ``PUBSUB``.
    """
    totals = [0] * len(channels)
    if not channels:
        return totals
    for runner in runners:
        reply = list(await runner.execute(b"PUBSUB", b"NUMSUB", *channels) or [])
        for i in range(len(channels)):
            totals[i] += int(reply[2 * i + 1])
    return totals


async def detect_across(runners: Sequence[CommandRunner], prefix: str = "socket.io") -> Detection:
    """:func:`detect_with` over several nodes (every master of a Redis Cluster), their
    snapshots merged by :func:`merge_snapshots` (:func:`snapshot_across`).

    Raises:
        RedisUnavailableError: A node cannot be reached or refused ``PUBSUB``.
    """
    prefix = prefix or "socket.io"
    return _detection(prefix, await snapshot_across(runners, prefix))


_FAMILY: Final = {
    Dialect.LEGACY: "socket.io-redis 4.x/5.x",
    Dialect.LEGACY_LITE: "socket.io-redis 4.x/5.x",
    Dialect.CURRENT: "@socket.io/redis-adapter 8.x",
    Dialect.SHARDED: "@socket.io/redis-adapter 8.x sharded",
}


def with_traffic(structural: set[Dialect], heard: Iterable[Dialect]) -> None:
    """Add the dialects ``heard`` on the wire to those the structure proved, in place: the
    structure cannot tell 4.x from 5.x, msgpack-lite traffic can."""
    heard = set(heard)
    if Dialect.LEGACY_LITE in heard and Dialect.LEGACY not in heard:
        structural.discard(Dialect.LEGACY)
    structural |= heard


def is_legacy(dialect: Dialect) -> bool:
    """Whether ``dialect`` is socket.io-redis 4.x or 5.x (one request format, no uids)."""
    return dialect in (Dialect.LEGACY, Dialect.LEGACY_LITE)


def generation(dialect: Dialect) -> Dialect:
    """The request generation ``dialect`` belongs to: 4.x and 5.x read each other's
    requests, so both are :attr:`Dialect.LEGACY`."""
    return Dialect.LEGACY if dialect is Dialect.LEGACY_LITE else dialect


def classic(dialects: Iterable[Dialect]) -> set[Dialect]:
    """The classic pub/sub adapter dialects among ``dialects`` (4.x, 5.x, 8.x classic)."""
    return {d for d in dialects if is_legacy(d) or d is Dialect.CURRENT}


def generations(dialects: Iterable[Dialect]) -> set[Dialect]:
    """The adapter generations among ``dialects`` (4.x with 5.x as one; python-socketio's
    own channel is no adapter generation)."""
    return {generation(d) for d in dialects if d is not Dialect.PYSOCKETIO}


def legacy_versions_mixed(dialects: Iterable[Dialect]) -> bool:
    """Whether socket.io-redis 4.x and 5.x nodes both show among ``dialects``: 4.x's
    msgpack-lite (:attr:`Dialect.LEGACY_LITE`) beside :attr:`Dialect.LEGACY`, which then is
    5.x's notepack 2. They are one request generation, but binary, dates and ``undefined``
    decode differently between them."""
    found = set(dialects)
    return Dialect.LEGACY in found and Dialect.LEGACY_LITE in found


class MixHazard(enum.Enum):
    """What breaks when two adapter generations share one prefix."""

    REQUESTS_MISREAD = "requests-misread"
    """socket.io-redis 4.x/5.x beside @socket.io/redis-adapter 8.x classic: one set of
    request channels, but 8.x renumbered the request types (RA issue #506) and 5.x nodes
    crash on its ack requests."""
    CHANNELS_APART = "channels-apart"
    """@socket.io/redis-adapter 8.x sharded beside classic nodes (socket.io-redis 4.x/5.x
    or 8.x classic): SSUBSCRIBE/SPUBLISH and PSUBSCRIBE/PUBLISH never meet."""


def mix_hazards(dialects: Iterable[Dialect]) -> list[MixHazard]:
    """The hazards of the adapter generations among ``dialects`` sharing one prefix, in
    the order of :class:`MixHazard` (none for one generation; python-socketio's own channel
    and the streams adapter are in no pair)."""
    found = generations(dialects)
    out: list[MixHazard] = []
    if Dialect.LEGACY in found and Dialect.CURRENT in found:
        out.append(MixHazard.REQUESTS_MISREAD)
    if Dialect.SHARDED in found and found & {Dialect.LEGACY, Dialect.CURRENT}:
        out.append(MixHazard.CHANNELS_APART)
    return out


def needs_sharded_pubsub(dialects: Iterable[Dialect]) -> bool:
    """Whether a node of ``dialects`` needs Redis 7's sharded pub/sub: the
    @socket.io/redis-adapter 8.x sharded adapter (``createShardedAdapter``, SSUBSCRIBE and
    SPUBLISH); every other adapter runs on plain pub/sub or streams."""
    return any(d is Dialect.SHARDED for d in dialects)


def counts_masters_per_slot_run(dialects: Iterable[Dialect]) -> bool:
    """Whether a Node node of ``dialects`` on node-redis 4's cluster client counts a master
    once per run of slots it serves.

    @socket.io/redis-adapter 8.x (classic and sharded, util.ts ``PUBSUB``) and
    @socket.io/redis-streams-adapter 0.3 (util.ts ``PUBSUB``) sum ``PUBSUB NUMSUB`` /
    ``SHARDNUMSUB`` over ``redisClient.masters``, and node-redis 4 puts a master in that
    list once per CLUSTER SLOTS entry (cluster-slots.js ``initiateSlotNode``). On ioredis
    they sum over ``nodes()``, each node once, as socket.io-redis 5.x does.
    """
    return any(d in (Dialect.CURRENT, Dialect.SHARDED, Dialect.STREAMS) for d in dialects)


def spoken(dialects: Iterable[Dialect]) -> list[Dialect]:
    """The cluster dialects among ``dialects`` that one client could ask in (python-socketio's
    own channel aside; 4.x and 5.x read each other's requests, so they count as one)."""
    found: list[Dialect] = [d for d in dialects if d is not Dialect.PYSOCKETIO]
    if set(found) == {Dialect.LEGACY, Dialect.LEGACY_LITE}:
        return [Dialect.LEGACY]
    return found


def choose(found: Detection) -> Dialect:
    """The dialect to speak to what was found (5.x when no node is there: every request
    then answers empty, whatever the dialect).

    Raises:
        ConfigurationError: Two classic generations share the prefix.
    """
    classic = found.dialects - {Dialect.SHARDED, Dialect.PYSOCKETIO}
    families = {_FAMILY[d] for d in classic if d in _FAMILY}
    if len(families) > 1:
        raise ConfigurationError(
            f"two adapter dialects share the prefix {found.prefix!r} "
            f"({' and '.join(sorted(families))}): their nodes misread each other's requests, "
            "so no request is sent; give them distinct keys, or pass dialect= to speak one "
            "of them (" + "; ".join(found.evidence) + ")"
        )
    if classic:
        return Dialect.LEGACY_LITE if classic == {Dialect.LEGACY_LITE} else next(iter(classic))
    if found.sharded or Dialect.SHARDED in found.dialects:
        return Dialect.SHARDED  # sharded nodes only
    return Dialect.LEGACY


def conflict(found: Detection, speaking: Dialect) -> str | None:
    """The warning for a node of ``speaking`` joining a prefix where another adapter
    generation runs (their requests are misread both ways, RA issue #506), or ``None``.

    Sharded nodes use other commands (SPUBLISH) and never see classic requests.
    """
    mine = _FAMILY.get(speaking)
    others = sorted(
        {_FAMILY[d] for d in found.dialects if d in _FAMILY and d is not Dialect.SHARDED} - {mine}
    )
    if not others:
        return None
    return (
        f"the prefix {found.prefix!r} is also served by {' and '.join(others)} nodes; this "
        f"node speaks {mine}: the generations misread each other's cluster requests (a 5.x "
        "node crashes on an 8.x ack request); give them distinct keys"
    )


# --------------------------------------------------------------------------- streams adapter

_RECENT: Final = 200
HEARTBEAT_STALE_MS: Final = 15_000
"""A heartbeat older than this says nothing about a live node (0.2.x defaults:
``heartbeatInterval`` 5 s, ``heartbeatTimeout`` 10 s)."""
_SCAN_ROUNDS: Final = 50


@dataclass(frozen=True, slots=True)
class StreamClues:
    """What a @socket.io/redis-streams-adapter stream and its keys say (read-only looks).

    Attributes:
        key: The stream key (the adapter's ``streamName``; the prefix by default).
        length: ``XLEN``.
        last_id: The newest entry's id (None when empty).
        namespaces: Namespaces of the recent entries.
        uids: Per namespace, the uids that wrote recent entries.
        heartbeat_uids: Per namespace, the uids that sent a heartbeat among the recent
            entries (0.2.x, ClusterAdapterWithHeartbeat; 0.3.x sends none).
        channel_uids: Per namespace, the uids whose private channel ``P#N#<uid>#`` is
            SUBSCRIBEd (0.3.x: one per node and namespace).
        malformed: Recent entries that do not decode.
        sessions: Connection-state-recovery sessions (``sio:session:*`` keys; SCAN, bounded).
        sessions_capped: Whether the SCAN stopped before the end (``sessions`` is a floor).
    """

    key: str
    length: int
    last_id: str | None
    namespaces: tuple[str, ...]
    uids: dict[str, frozenset[str]]
    heartbeat_uids: dict[str, frozenset[str]]
    channel_uids: dict[str, frozenset[str]]
    malformed: int = 0
    sessions: int = 0
    sessions_capped: bool = False

    @property
    def nodes(self) -> int:
        """The node count: per namespace the heartbeat uids (0.2.x) or the subscribed
        private channels (0.3.x); the largest namespace's count."""
        per = [
            len(self.heartbeat_uids.get(n) or self.channel_uids.get(n) or ())
            for n in self.namespaces
        ]
        per += [len(u) for u in self.channel_uids.values()]
        return max(per, default=0)

    def describe(self) -> str:
        """One sentence for the evidence."""
        version = "0.2.x (heartbeats)" if any(self.heartbeat_uids.values()) else "0.3.x"
        sessions = f"{self.sessions}{'+' if self.sessions_capped else ''}"
        return (
            f"key {self.key} is a Redis stream of {self.length} entries: "
            f"@socket.io/redis-streams-adapter {version}, {self.nodes} node(s), namespaces "
            f"{', '.join(self.namespaces) or 'none'}, {sessions} recovery session(s)"
            + (f", {self.malformed} malformed recent entries" if self.malformed else "")
        )


def stream_clues(
    key: str,
    length: int,
    recent: Iterable[tuple[Any, Any]],
    snap: PubSubSnapshot | None = None,
    *,
    sessions: int = 0,
    sessions_capped: bool = False,
    now_ms: int | None = None,
) -> StreamClues:
    """Read the clues out of the recent entries (``XREVRANGE``) and the pub/sub snapshot.

    Pure: the entries are ``(id, fields)`` as redis-py returns them. With ``now_ms`` (the
    server's ``TIME``), heartbeats older than :data:`HEARTBEAT_STALE_MS` do not count: the
    stream keeps them after their node is gone.
    """
    uids: dict[str, set[str]] = {}
    beats: dict[str, set[str]] = {}
    malformed = 0
    last_id: str | None = None
    for eid, fields in recent:
        try:
            m = decode_entry(key, eid, fields)
        except DecodeError:
            malformed += 1
            continue
        last_id = last_id or m.entry_id
        uids.setdefault(m.nsp, set()).add(str(m.uid))
        fresh = now_ms is None or now_ms - entry_id_ms(m.entry_id) <= HEARTBEAT_STALE_MS
        if fresh and m.type in (ClusterMessageType.INITIAL_HEARTBEAT, ClusterMessageType.HEARTBEAT):
            beats.setdefault(m.nsp, set()).add(str(m.uid))
    channel_uids: dict[str, set[str]] = {}
    if snap is not None:
        g = ChannelGrammar(snap.prefix)
        for name, count in snap.channels.items():
            ch = g.parse(name)
            # 0.3.x SUBSCRIBEs P#N# and its private P#N#<uid>#, uid = randomBytes(8).hex
            if count and ch.kind is ChannelKind.ROOM and ch.room and is_sharded_uid(ch.room):
                channel_uids.setdefault(ch.nsp or "/", set()).add(ch.room)
    nsps = sorted(set(uids) | set(channel_uids))
    return StreamClues(
        key=key,
        length=length,
        last_id=last_id,
        namespaces=tuple(nsps),
        uids={n: frozenset(u) for n, u in uids.items()},
        heartbeat_uids={n: frozenset(u) for n, u in beats.items()},
        channel_uids={n: frozenset(u) for n, u in channel_uids.items()},
        malformed=malformed,
        sessions=sessions,
        sessions_capped=sessions_capped,
    )


KeyRoute = Callable[[str], CommandRunner]
"""Where a command on a key must go: the master holding the key's slot on a Redis Cluster
(``MOVED`` followed), the one Redis otherwise."""


async def read_stream(
    publisher: CommandRunner,
    key: str,
    snap: PubSubSnapshot | None = None,
    *,
    session_prefix: str = DEFAULT_SESSION_PREFIX,
) -> StreamClues | None:
    """:func:`read_stream_across` on one Redis (every key and every ``SCAN`` on
    ``publisher``); on a Redis Cluster use
    :func:`siotools.requester.read_stream_on`, which reads every master.

    Raises:
        RedisUnavailableError: Redis cannot be reached.
    """
    return await read_stream_across(
        [publisher], lambda _key: publisher, key, snap, session_prefix=session_prefix
    )


async def read_stream_across(
    runners: Sequence[CommandRunner],
    route: KeyRoute,
    key: str,
    snap: PubSubSnapshot | None = None,
    *,
    session_prefix: str = DEFAULT_SESSION_PREFIX,
) -> StreamClues | None:
    """Look at ``key`` (``TYPE``, ``XLEN``, ``XREVRANGE`` of the last entries) and count the
    recovery sessions (bounded ``SCAN``); None when the key holds no stream. Read-only:
    nothing is written, no consumer group is made.

    When ``key`` is no stream, its numbered siblings ``<key>-<integer>`` are read instead:
    0.3.x with ``streamCount > 1`` uses ``<streamName>-0`` .. ``-<N-1>`` (and ``--<i>``
    for namespaces of negative hash, see :func:`siotools.protocol.streams.stream_for`);
    their clues are read as one stream's, ``key`` then naming them all.

    On a Redis Cluster the numbered streams and the session keys hash to different slots,
    so to different masters: ``SCAN`` (node-local) runs on each of ``runners`` (every
    master), and each key's commands go where ``route`` sends them (its slot's master).

    Args:
        runners: Where ``SCAN`` runs: every master of a Redis Cluster, else the one Redis.
        route: The runner for a key's commands.
        key: The stream key (the adapter's ``streamName``).
        snap: The prefix's pub/sub snapshot (0.3.x nodes' private channels).
        session_prefix: The adapter's ``sessionKeyPrefix``.

    Raises:
        RedisUnavailableError: Redis (or one master) cannot be reached.
    """
    keys = [key]
    if _text(await route(key).execute(b"TYPE", key.encode())) != "stream":
        keys = await _numbered_streams(runners, route, key)
        if not keys:
            return None
    length = 0
    recent = []
    for k in keys:
        owner = route(k)
        length += int(await owner.execute(b"XLEN", k.encode()))
        raw = await owner.execute(
            b"XREVRANGE", k.encode(), b"+", b"-", b"COUNT", str(_RECENT).encode()
        )
        for item in raw or ():
            eid, flat = item[0], item[1] or []
            recent.append((eid, list(zip(flat[::2], flat[1::2], strict=False))))
    if len(keys) > 1:  # newest first across the streams, as one XREVRANGE gives them
        recent.sort(key=lambda e: _entry_order(e[0]), reverse=True)
    sessions, capped = 0, False
    pattern = (glob_escape(session_prefix) + "*").encode()
    for runner in runners:
        found, complete = await _scan(runner, pattern)
        sessions += len(found)
        capped = capped or not complete
    secs, micros = await runners[0].execute(b"TIME")
    now_ms = int(secs) * 1000 + int(micros) // 1000
    return stream_clues(
        ", ".join(keys), length, recent, snap, sessions=sessions, sessions_capped=capped,
        now_ms=now_ms,
    )  # fmt: skip


_NUMBERED: Final = re.compile(r"-(0|-?[1-9][0-9]*)")


def _entry_order(eid: Any) -> tuple[int, int]:
    text = _text(eid)
    ms, _, seq = text.partition("-")
    return (int(ms), int(seq)) if ms.isdigit() and seq.isdigit() else (0, 0)


async def _scan(runner: CommandRunner, pattern: bytes) -> tuple[list[Any], bool]:
    """The keys of one node matching ``pattern`` (at most :data:`_SCAN_ROUNDS` rounds),
    and whether the SCAN reached its end."""
    cursor: Any = b"0"
    names: list[Any] = []
    for _ in range(_SCAN_ROUNDS):
        cursor, found = await runner.execute(b"SCAN", cursor, b"MATCH", pattern, b"COUNT", b"1000")
        names += found
        if cursor in (b"0", 0, "0"):
            return names, True
    return names, False


async def _numbered_streams(
    runners: Sequence[CommandRunner], route: KeyRoute, key: str
) -> list[str]:
    """The ``<key>-<integer>`` keys holding streams (bounded SCAN of every node, then TYPE
    on each key's own node)."""
    pattern = (glob_escape(key) + "-*").encode()
    names: set[str] = set()
    for runner in runners:
        found, _complete = await _scan(runner, pattern)
        for raw in found:
            name = _text(raw)
            if _NUMBERED.fullmatch(name[len(key) :]):
                names.add(name)
    out = []
    for name in sorted(names):
        if _text(await route(name).execute(b"TYPE", name.encode())) == "stream":
            out.append(name)
    return out


def reconcile_streams(
    found: dict[str, set[Dialect]],
    evidence: list[str],
    streams: StreamClues,
    snap: PubSubSnapshot,
) -> None:
    """Fold the streams adapter into what the subscription structure said (in place).

    0.3.x nodes SUBSCRIBE ``P#N#`` and their private ``P#N#<uid>#``, which on their own look
    like socket.io-redis 4.x in subscribe mode with channel multiplexing. When the stream
    on the prefix exists and every such room channel is a 16-hex uid, and ``P#N#`` counts
    one subscriber per uid, they are the streams nodes: legacy is dropped for that
    namespace and its sentence replaced.
    """
    g = ChannelGrammar(snap.prefix)
    per = clues(snap)
    for nsp in streams.namespaces:
        found.setdefault(nsp, set()).add(Dialect.STREAMS)
    for nsp, uids in streams.channel_uids.items():
        c = per.get(nsp)
        if c is None or not c.subscribe_mode:
            continue
        if set(c.room_channels) != set(uids) or c.broadcast_subscribers != len(uids):
            continue
        found.setdefault(nsp, set()).discard(Dialect.LEGACY)
        head = f"{g.broadcast(nsp)} is SUBSCRIBEd by "
        evidence[:] = [e for e in evidence if not e.startswith(head)]
        evidence.append(
            f"{g.broadcast(nsp)} and {len(uids)} private channel(s) {g.broadcast(nsp)}<uid># "
            f"are SUBSCRIBEd, with a stream {streams.key}: @socket.io/redis-streams-adapter "
            f"0.3.x nodes (uids {', '.join(sorted(uids))})"
        )
    evidence.append(streams.describe())


async def _read_stream_once(
    endpoint: RedisEndpoint, key: str, snap: PubSubSnapshot
) -> StreamClues | None:
    publisher = Publisher(endpoint, name="siotools-detect")
    await publisher.start()
    try:
        return await read_stream(publisher, key, snap)
    finally:
        await publisher.close()
