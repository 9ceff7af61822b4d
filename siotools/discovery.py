"""What Socket.IO clusters a Redis carries, from its subscriptions (``PUBSUB`` commands).

When a tool hears nothing, the usual reason is a wrong prefix or the wrong Redis. Every
adapter node keeps channels subscribed (``K-request#N#``, ``K-response#N#``, per-room and
per-namespace channels, ``K-response#N#uid#`` for 8.x, sharded channels for the 8.x
sharded adapter, ``socketio`` for python-socketio), so ``PUBSUB CHANNELS`` and
``PUBSUB SHARDCHANNELS`` name the prefixes in use without listening to any traffic;
``PUBSUB NUMPAT`` counts pattern subscriptions (socket.io-redis 5.x and 8.x psubscribe
``K#N#*``, which no command lists).

Example::

    found = await discover("redis://127.0.0.1:6379/0")
    print(found.describe())  # prefix 'socket.io': namespaces /, /chat (...); ...
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from siotools.exceptions import RedisUnavailableError
from siotools.transport.connection import CommandConnection, open_connection
from siotools.transport.endpoint import RedisEndpoint

__all__ = ["Discovery", "PrefixSeen", "discover", "parse_channels"]

# K#N#, K#N#room#, K-request#N#, K-response#N#, K-response#N#uid#: the shortest prefix
# wins, so "socket.io-request#/#" is prefix socket.io, kind request. Namespaces start with /.
_CHANNEL = re.compile(
    r"^(?P<prefix>.+?)(?P<kind>-request|-response)?#(?P<nsp>/[^#]*)#(?P<rest>.*)$"
)
_PYSOCKETIO_DEFAULT = "socketio"


@dataclass(slots=True)
class PrefixSeen:
    """One prefix found on the Redis.

    Attributes:
        prefix: The adapters' key.
        namespaces: Namespaces with a subscribed channel.
        kinds: Which channel kinds are subscribed: ``broadcast``, ``room``, ``request``,
            ``response``, ``response_uid`` (8.x), ``sharded`` (8.x sharded adapter).
        channels: How many channels of this prefix are subscribed.
    """

    prefix: str
    namespaces: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)
    channels: int = 0

    @property
    def dialects(self) -> list[str]:
        """The adapters these channels point at, as users know them (best guess)."""
        # What each adapter SUBSCRIBEs (its broadcast patterns are PSUBSCRIBEd, unlisted):
        # 8.x always adds K-response#N#uid#; 5.x only K-request#N# and K-response#N#;
        # 4.x (and a node in subscribe mode) also K#N# and a channel per room.
        if "sharded" in self.kinds:
            return ["@socket.io/redis-adapter 8.x sharded"]
        if "response_uid" in self.kinds:
            return ["@socket.io/redis-adapter 7.x/8.x"]
        if self.kinds & {"broadcast", "room"}:
            return ["socket.io-redis 4.x-style channel per room"]
        if "request" in self.kinds:
            return ["socket.io-redis 5.x"]
        return []


@dataclass(slots=True)
class Discovery:
    """Socket.IO channels seen on one Redis.

    Attributes:
        prefixes: Prefixes by name, the busiest first.
        pysocketio: python-socketio manager channels (``socketio`` by default).
        other_channels: Subscribed channels that belong to no Socket.IO adapter.
        numpat: Pattern subscriptions on the server (``PUBSUB NUMPAT``).
        own_patterns: How many of those the caller itself holds (left out of the text).
    """

    prefixes: dict[str, PrefixSeen] = field(default_factory=dict)
    pysocketio: list[str] = field(default_factory=list)
    other_channels: int = 0
    numpat: int = 0
    own_patterns: int = 0

    @property
    def empty(self) -> bool:
        """Nothing on this Redis looks like a Socket.IO cluster."""
        others = self.numpat - self.own_patterns
        return not self.prefixes and not self.pysocketio and others <= 0

    def describe(self) -> str:
        """One line saying what is there (or that nothing is)."""
        parts: list[str] = []
        for seen in self.prefixes.values():
            nsps = ", ".join(sorted(seen.namespaces)) or "none"
            dialects = "; ".join(seen.dialects)
            what = f"prefix {seen.prefix!r} (namespaces {nsps}"
            parts.append(what + (f"; {dialects})" if dialects else ")"))
        parts += [f"python-socketio channel {name!r}" for name in self.pysocketio]
        patterns = self.numpat - self.own_patterns
        if patterns > 0:
            parts.append(
                f"{patterns} pattern subscription{'s' if patterns != 1 else ''} "
                "(psubscribe adapters; prefixes not listable)"
            )
        if self.other_channels:
            parts.append(f"{self.other_channels} other channel(s)")
        if not parts:
            return (
                "this Redis has no Socket.IO subscribers at all: is this the cluster's Redis "
                "(and are its nodes running)?"
            )
        return "this Redis has " + ", ".join(parts)


def parse_channels(
    channels: Sequence[bytes | str],
    sharded: Sequence[bytes | str] = (),
    *,
    pysocketio_channels: tuple[str, ...] = (_PYSOCKETIO_DEFAULT,),
) -> Discovery:
    """Group subscribed channel names by prefix (no I/O).

    Args:
        channels: ``PUBSUB CHANNELS`` names.
        sharded: ``PUBSUB SHARDCHANNELS`` names.
        pysocketio_channels: Names that are python-socketio manager channels.
    """
    found = Discovery()
    for is_sharded, names in ((False, channels), (True, sharded)):
        for raw in names:
            name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            if name in pysocketio_channels:
                if name not in found.pysocketio:
                    found.pysocketio.append(name)
                continue
            m = _CHANNEL.match(name)
            if m is None:
                found.other_channels += 1
                continue
            seen = found.prefixes.setdefault(m["prefix"], PrefixSeen(m["prefix"]))
            seen.channels += 1
            seen.namespaces.add(m["nsp"])
            kind = (m["kind"] or "-broadcast")[1:]
            if m["rest"]:
                kind = "response_uid" if kind == "response" else "room"
            seen.kinds.add("sharded" if is_sharded else kind)
    found.prefixes = dict(sorted(found.prefixes.items(), key=lambda kv: -kv[1].channels))
    return found


async def discover(
    url: str | RedisEndpoint, *, own_patterns: int = 0, timeout: float = 2.0
) -> Discovery:
    """Ask a Redis which Socket.IO channels are subscribed there.

    Args:
        url: The Redis URL (or endpoint).
        own_patterns: Pattern subscriptions the caller holds itself (a sniffer's), left out.
        timeout: Seconds for the whole look.

    Raises:
        RedisUnavailableError: Redis cannot be reached or did not answer in time.
    """
    endpoint = url if isinstance(url, RedisEndpoint) else RedisEndpoint.from_url(url)
    conn = await open_connection(endpoint, lambda: CommandConnection("siotools-discovery"))
    try:
        async with asyncio.timeout(timeout):
            channels = await conn.execute("PUBSUB", "CHANNELS")
            numpat = await conn.execute("PUBSUB", "NUMPAT")
            try:
                sharded = await conn.execute("PUBSUB", "SHARDCHANNELS")
            except RedisUnavailableError:  # Redis before 7.0 has no sharded pub/sub
                sharded = []
    except TimeoutError:
        raise RedisUnavailableError(
            f"Redis at {endpoint.url} did not answer PUBSUB within {timeout:g}s"
        ) from None
    finally:
        await conn.close()
    found = parse_channels(list(channels or []), list(sharded or []))
    found.numpat = int(numpat or 0)
    found.own_patterns = own_patterns
    return found
