"""Replaying a capture into another Redis (a staging one), under another prefix."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Protocol

from siotools.exceptions import ConfigurationError
from siotools.protocol import ChannelGrammar, ChannelKind
from siotools.sniffer.columns import RawRecord
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher

__all__ = ["Replayable", "replay", "rewrite_channel"]


class Replayable(Protocol):
    """What :func:`replay` needs of a capture (a Capture or a loaded capture folder)."""

    prefix: str
    pysocketio: str | None

    def raw(self) -> Iterator[RawRecord]:
        """Every record as received."""
        ...


def rewrite_channel(channel: bytes, source: ChannelGrammar, target: ChannelGrammar) -> bytes | None:
    """The same channel under another prefix (None when it is not one of ``source``'s)."""
    ch = source.parse(channel)
    nsp = ch.nsp or "/"
    kind = ch.kind
    if kind is ChannelKind.BROADCAST:
        return target.broadcast(nsp).encode()
    if kind is ChannelKind.ROOM:
        return target.room(nsp, ch.room or "").encode("utf-8", "surrogateescape")
    if kind is ChannelKind.REQUEST:
        return target.request(nsp).encode()
    if kind is ChannelKind.RESPONSE:
        return target.response(nsp).encode()
    if kind is ChannelKind.RESPONSE_UID:
        return target.response_for(nsp, ch.uid or "").encode()
    if kind is ChannelKind.PYSOCKETIO:
        return channel  # python-socketio's channel is not prefixed
    return None


async def replay(
    cap: Replayable,
    url: str,
    prefix: str | None = None,
    *,
    speed: float | None = None,
) -> int:
    """Publish a capture's messages again, into ``prefix`` on the Redis at ``url``.

    Meant for a staging Redis: channels are rewritten from the capture's prefix to
    ``prefix`` (payloads do not carry the prefix), sharded messages are SPUBLISHed.

    Args:
        cap: The capture.
        url: The target Redis.
        prefix: The target key (default: the capture's own).
        speed: None publishes as fast as Redis takes it; 1.0 keeps the recorded pacing,
            2.0 twice as fast.

    Returns:
        How many messages were published.

    Raises:
        RedisUnavailableError: The target Redis cannot be reached.
    """
    if speed is not None and speed <= 0:
        raise ConfigurationError("speed must be positive (or None for as fast as possible)")
    source = ChannelGrammar(cap.prefix, pysocketio_channel=cap.pysocketio or "socketio")
    target = ChannelGrammar(prefix or cap.prefix, pysocketio_channel=cap.pysocketio or "socketio")
    pub = Publisher(RedisEndpoint.from_url(url), name="siotools-replay")
    await pub.start()
    rewritten: dict[bytes, bytes | None] = {}
    sent = 0
    t0: int | None = None
    wall0 = time.monotonic()
    try:
        for t, ch, payload, sharded in cap.raw():
            if ch not in rewritten:
                rewritten[ch] = rewrite_channel(ch, source, target)
            out = rewritten[ch]
            if out is None:
                continue
            if speed is not None:
                t0 = t if t0 is None else t0
                delay = (t - t0) / 1e9 / speed - (time.monotonic() - wall0)
                if delay > 0:
                    await asyncio.sleep(delay)
            if sharded:
                await pub.execute(b"SPUBLISH", out, payload)
            else:
                pub.publish(out, payload)
            sent += 1
            if sent % 1000 == 0:
                await pub.wait_writable()
        await pub.flush()
    finally:
        await pub.close()
    return sent
