"""Passive dialect detection: what a prefix speaks, read from Redis without a request.

A request in the wrong dialect can make a node misread it (§7.3 of the 8.x notes: a 5.x
``remoteLeave`` is an 8.x ``REMOTE_DISCONNECT``), so the cluster is only *looked at*:
``PUBSUB CHANNELS`` and ``NUMSUB`` of the request channels, ``PUBSUB SHARDCHANNELS``.
Nothing is published and no request channel is subscribed (NUMSUB never changes).

Clues (@socket.io/redis-adapter 8.3.0 ``lib/index.ts`` L143-L186, socket.io-redis 5.4.0
``index.js``): an 8.x classic node SUBSCRIBEs ``P-response#nsp#<uid>#`` besides the
request channel; a 4.x/5.x node only the request and response channels; sharded nodes
SSUBSCRIBE ``P#nsp#``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from siotools.exceptions import ConfigurationError, UnsupportedOperation
from siotools.protocol import ChannelGrammar, ChannelKind, Dialect, glob_escape
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher

__all__ = ["Detection", "choose", "conflict", "detect", "detect_with"]

_FAMILY = {
    Dialect.LEGACY: "socket.io-redis 4.x/5.x",
    Dialect.LEGACY_LITE: "socket.io-redis 4.x/5.x",
    Dialect.CURRENT: "@socket.io/redis-adapter 8.x",
    Dialect.SHARDED: "@socket.io/redis-adapter 8.x sharded",
}


@dataclass(frozen=True, slots=True)
class Detection:
    """What a prefix speaks, as far as Redis shows it.

    Attributes:
        prefix: The prefix looked at.
        dialects: Every dialect seen (empty: no node).
        namespaces: Namespaces with nodes.
        sharded: Sharded channels (``PUBSUB SHARDCHANNELS``) exist under the prefix.
        evidence: One sentence per clue.
    """

    prefix: str
    dialects: frozenset[Dialect]
    namespaces: tuple[str, ...]
    sharded: bool
    evidence: tuple[str, ...]

    @property
    def dialect(self) -> Dialect | None:
        """The one dialect seen, or ``None`` (none, or several)."""
        if len(self.dialects) == 1:
            return next(iter(self.dialects))
        return None


def choose(found: Detection) -> Dialect:
    """The dialect to speak to what was found (the default 5.x when no node is there: every
    request then answers empty whatever the dialect).

    Raises:
        ConfigurationError: Two classic generations share the prefix.
        UnsupportedOperation: Only sharded nodes serve it.
    """
    classic = found.dialects - {Dialect.SHARDED}
    if len(classic) > 1:
        names = " and ".join(sorted(_FAMILY[d] for d in classic))
        raise ConfigurationError(
            f"two adapter dialects share the prefix {found.prefix!r} ({names}): their "
            "nodes misread each other's requests, so no request is sent; give them "
            "distinct keys, or pass dialect= to speak one of them ("
            + "; ".join(found.evidence)
            + ")"
        )
    if classic:
        return next(iter(classic))
    if found.sharded:
        raise UnsupportedOperation(
            f"the prefix {found.prefix!r} is served by @socket.io/redis-adapter 8.x sharded "
            "nodes (SSUBSCRIBE), which siotools can sniff (siotools sniff --monitor) but "
            "not query yet"
        )
    return Dialect.LEGACY


def conflict(found: Detection, speaking: Dialect) -> str | None:
    """The warning for a node of ``speaking`` joining a prefix where other adapter
    generations run (their requests are misread both ways, RA issue #506), or ``None``."""
    mine = _FAMILY.get(speaking)
    others = sorted({_FAMILY[d] for d in found.dialects if d in _FAMILY} - {mine})
    # Sharded nodes use other commands (SPUBLISH) and never see classic requests.
    others = [o for o in others if o != _FAMILY[Dialect.SHARDED]]
    if not others:
        return None
    return (
        f"the prefix {found.prefix!r} is also served by {' and '.join(others)} nodes; this "
        f"node speaks {mine}: the generations misread each other's cluster requests (a 5.x "
        "node crashes on an 8.x ack request); give them distinct keys"
    )


async def detect_with(publisher: Publisher, prefix: str = "socket.io") -> Detection:
    """:func:`detect` over an already started publisher connection."""
    g = ChannelGrammar(prefix)
    evidence: list[str] = []
    dialects: set[Dialect] = set()
    request_pattern = glob_escape(g.request("")[:-1]) + "*"
    requests: dict[str, bytes] = {}
    for channel in await publisher.execute(b"PUBSUB", b"CHANNELS", request_pattern.encode()):
        parsed = g.parse(channel)
        if parsed.kind is ChannelKind.REQUEST and parsed.nsp is not None:
            requests[parsed.nsp] = channel
    response_pattern = glob_escape(g.response("")[:-1]) + "*"
    specific: dict[str, set[str]] = {}
    for channel in await publisher.execute(b"PUBSUB", b"CHANNELS", response_pattern.encode()):
        parsed = g.parse(channel)
        if parsed.kind is ChannelKind.RESPONSE_UID and parsed.nsp is not None and parsed.uid:
            specific.setdefault(parsed.nsp, set()).add(parsed.uid)
    for nsp, channel in sorted(requests.items()):
        reply: Any = await publisher.execute(b"PUBSUB", b"NUMSUB", channel)
        nodes = int(reply[1])
        if nodes <= 0:
            continue
        uids = len(specific.get(nsp, ()))
        if uids:
            dialects.add(Dialect.CURRENT)
            evidence.append(
                f"{uids} subscriber(s) of {g.response(nsp)}<uid>#: @socket.io/redis-adapter 8.x "
                f"node(s) in {nsp}"
            )
        if nodes > uids:
            dialects.add(Dialect.LEGACY)
            evidence.append(
                f"{nodes - uids} subscriber(s) of {g.request(nsp)} without an own response "
                f"channel: socket.io-redis 4.x/5.x node(s) in {nsp}"
            )
    sharded = False
    shard_pattern = glob_escape(g.broadcast("")[:-1]) + "*"
    try:
        shards = await publisher.execute(b"PUBSUB", b"SHARDCHANNELS", shard_pattern.encode())
    except Exception:  # Redis < 7 has no sharded pub/sub
        shards = []
    if shards:
        sharded = True
        dialects.add(Dialect.SHARDED)
        evidence.append(
            f"{len(shards)} sharded channel(s) under {prefix!r} (PUBSUB SHARDCHANNELS): "
            "@socket.io/redis-adapter 8.x sharded node(s)"
        )
    return Detection(
        prefix=prefix,
        dialects=frozenset(dialects),
        namespaces=tuple(sorted(requests)),
        sharded=sharded,
        evidence=tuple(evidence),
    )


async def detect(
    endpoint: RedisEndpoint, prefix: str = "socket.io", *, listen: float = 0.0
) -> Detection:
    """What ``prefix`` speaks on the Redis at ``endpoint``, read passively.

    Args:
        endpoint: The Redis server.
        prefix: The cluster's channel prefix.
        listen: Unused by this channel-based reading (kept for a traffic-based one).

    Raises:
        RedisUnavailableError: Redis cannot be reached.
    """
    publisher = Publisher(endpoint, name="siotools-detect")
    await publisher.start()
    try:
        return await detect_with(publisher, prefix)
    finally:
        await publisher.close()
