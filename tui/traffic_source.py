"""Where the traffic view's frames come from: the passive sniffer (:func:`siotools.sniff`).

Kept apart so the app takes any ``() -> AsyncIterator[frame]`` factory: the CLI passes the
sniffer, the snapshot tests a fixed list of frames.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from siotools.exceptions import ConfigurationError, SiotoolsError

from .traffic_model import FrameLike

__all__ = ["Discovery", "TrafficSource", "discovery_source", "sniffer_source"]

TrafficSource = Callable[[], AsyncIterator[FrameLike]]
Discovery = Callable[[], Awaitable[str]]
"""One line saying what this Redis carries (for a console that sees no node)."""


def sniffer_source(
    url: str,
    prefix: str,
    *,
    monitor: bool = False,
    ssubscribe: bool = False,
    stream: str | None = None,
    stream_count: int | None = None,
) -> TrafficSource | None:
    """A factory of live sniffs of ``url``/``prefix``, or None without the sniffer.

    ``monitor``/``ssubscribe`` choose how sharded pub/sub is seen (see
    :mod:`siotools.sniffer.sharded`); without them a sharded-only prefix ends each sniff
    with one sentence naming ``--monitor`` and ``--ssubscribe`` (the traffic view shows it).

    ``stream`` names the @socket.io/redis-streams-adapter stream to read too (its
    ``streamName``); without it, the one named like the prefix is read when it is a stream
    (or has ``<prefix>-<integer>`` siblings). ``stream_count`` is the adapter's 0.3
    ``streamCount``: exactly its nodes' streams are read (see
    :func:`siotools.sniffer.streams.node_streams`); it needs ``stream``.

    Raises:
        ConfigurationError: ``stream_count`` without ``stream``.
    """
    if stream_count is not None and stream is None:
        raise ConfigurationError("stream_count= needs stream= (the adapter's streamName)")
    try:
        sniffer: Any = importlib.import_module("siotools.sniffer")
    except ImportError:
        return None
    sniff = sniffer.sniff
    sharded_error = sniffer.ShardedPubSubError
    sentence = sniffer.sharded_sentence
    is_stream = importlib.import_module("siotools.sniffer.streams").is_stream

    async def source() -> AsyncIterator[FrameLike]:
        # @socket.io/redis-streams-adapter: its stream is named like the prefix by default;
        # read it too (XREAD is passive), its entries show as dialect "streams".
        read = stream
        if read is None:
            try:
                read = prefix if await is_stream(url, prefix) else None
            except SiotoolsError:  # unreachable Redis: the sniff says so itself
                read = None
        frames = sniff(
            url,
            prefix=prefix,
            stream=read,
            stream_count=stream_count,
            monitor=monitor,
            ssubscribe=ssubscribe,
        )
        async with contextlib.aclosing(frames):
            try:
                async for frame in frames:
                    yield frame
            except sharded_error as exc:
                flags = ("--monitor", "--ssubscribe", "siotools sniff --discover")
                raise sharded_error(exc.found, sentence(exc.found, flags=flags)) from None

    return source


def discovery_source(url: str, prefix: str) -> Discovery:
    """What :func:`siotools.discovery.discover` finds on ``url``, as one line.

    The sniffer's own pattern subscriptions for ``prefix`` are left out of the count.
    """

    async def look() -> str:
        from siotools.discovery import discover
        from siotools.sniffer.live import patterns_for

        found = await discover(url, own_patterns=len(patterns_for(prefix, None)))
        return found.describe()

    return look
