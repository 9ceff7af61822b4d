"""One object per wire dialect: how each adapter generation subscribes, counts, asks and
answers (pure; the shells do the I/O).

* :class:`~siotools.dialects.legacy.LegacyDialect`: socket.io-redis 4.x (msgpack-lite) and
  5.x (notepack 2), and socket.io-emitter 3.x;
* :class:`~siotools.dialects.current.CurrentDialect`: @socket.io/redis-adapter 8.x classic
  and @socket.io/redis-emitter 5.x;
* :class:`~siotools.dialects.sharded.ShardedDialect`: @socket.io/redis-adapter 8.x sharded
  (``createShardedAdapter``, socket.io-adapter ``ClusterAdapter`` messages);
* :class:`~siotools.dialects.streams.StreamsDialect`: @socket.io/redis-streams-adapter, for
  the emitter only (:data:`EMITTED`; siotools is no node of it).

:func:`make_dialect` builds the object for a :class:`~siotools.Dialect` (or its value);
:func:`resolve_dialect` turns what a user passed into a ``Dialect`` with one clear error.
"""

from __future__ import annotations

from typing import Any, Literal

from siotools.dialects.base import WireDialect
from siotools.dialects.current import CurrentDialect
from siotools.dialects.legacy import LegacyDialect
from siotools.dialects.sharded import SUBSCRIPTION_MODES, ShardedDialect
from siotools.dialects.streams import StreamsDialect
from siotools.exceptions import ConfigurationError
from siotools.protocol import Dialect
from siotools.protocol.streams import DEFAULT_MAX_LEN, DEFAULT_STREAM

__all__ = [
    "EMITTED",
    "SPOKEN",
    "CurrentDialect",
    "LegacyDialect",
    "ShardedDialect",
    "StreamsDialect",
    "WireDialect",
    "make_dialect",
    "resolve_dialect",
]

SPOKEN: tuple[Dialect, ...] = (
    Dialect.LEGACY,
    Dialect.LEGACY_LITE,
    Dialect.CURRENT,
    Dialect.SHARDED,
)
"""The dialects siotools speaks as a node and a cluster client (the others it only
decodes, or emits to)."""
EMITTED: tuple[Dialect, ...] = (*SPOKEN, Dialect.STREAMS)
"""The dialects :class:`~siotools.Emitter` writes."""
_LEGACY_MODES = ("subscribe", "psubscribe")


def resolve_dialect(value: Dialect | str, *, spoken: tuple[Dialect, ...] = SPOKEN) -> Dialect:
    """The :class:`~siotools.Dialect` for ``value`` (the enum or its value string).

    Args:
        value: The dialect or its name.
        spoken: The dialects the caller can use (:data:`SPOKEN`; :data:`EMITTED` for the
            emitter).

    Raises:
        ConfigurationError: An unknown name, or a dialect siotools cannot speak yet; the
            sentence lists the valid ones.
    """
    valid = ", ".join(repr(d.value) for d in spoken)
    if isinstance(value, Dialect):
        dialect = value
    else:
        try:
            dialect = Dialect(str(value).strip().lower())
        except ValueError:
            raise ConfigurationError(
                f"unknown dialect {value!r}; valid dialects are {valid}"
            ) from None
    if dialect not in spoken:
        more = (
            " (siotools only emits to it: Emitter(dialect='streams'))"
            if (dialect in EMITTED)
            else ""
        )
        raise ConfigurationError(
            f"dialect {dialect.value!r} can be sniffed but not spoken yet{more}; valid "
            f"dialects are {valid}"
        )
    return dialect


def make_dialect(
    dialect: Dialect | str,
    prefix: str = "socket.io",
    *,
    subscription_mode: str | None = None,
    with_channel_multiplexing: bool = True,
    publish_on_specific_response_channel: bool = False,
    parser: Literal["msgpack", "json"] = "msgpack",
    max_payload: int | None = None,
    stream: str | None = None,
    max_len: int | None = None,
    stream_count: int | None = None,
    spoken: tuple[Dialect, ...] = SPOKEN,
    **_ignored: Any,
) -> WireDialect:
    """The dialect object for ``dialect``; options of other dialects are ignored.

    ``subscription_mode`` belongs to 4.x/5.x (``"subscribe"``, the default, or
    ``"psubscribe"``) and to the sharded adapter (``"dynamic"``, the default, ``"static"``
    or ``"dynamic-private"``); ``None`` takes the dialect's default.

    Raises:
        ConfigurationError: An unknown dialect or option value.
    """
    d = resolve_dialect(dialect, spoken=spoken)
    wire: WireDialect
    if d is Dialect.STREAMS:
        wire = StreamsDialect(
            prefix,
            stream=stream or DEFAULT_STREAM,
            max_len=DEFAULT_MAX_LEN if max_len is None else max_len,
            stream_count=1 if stream_count is None else stream_count,
        )
    elif d is Dialect.SHARDED:
        if subscription_mode in _LEGACY_MODES:
            subscription_mode = None  # a 4.x/5.x option, as the others here are ignored
        wire = ShardedDialect(prefix, subscription_mode=subscription_mode or "dynamic")  # type: ignore[arg-type]
    elif d is Dialect.CURRENT:
        wire = CurrentDialect(
            prefix,
            publish_on_specific_response_channel=publish_on_specific_response_channel,
            parser=parser,
        )
    else:
        if subscription_mode in SUBSCRIPTION_MODES:
            subscription_mode = None  # a sharded option
        if subscription_mode not in (None, *_LEGACY_MODES):
            raise ConfigurationError(
                f"subscription_mode must be 'subscribe' or 'psubscribe' for {d.value}, not "
                f"{subscription_mode!r}"
            )
        wire = LegacyDialect(
            prefix,
            flavor=d,
            subscription_mode=subscription_mode or "subscribe",  # type: ignore[arg-type]
            with_channel_multiplexing=with_channel_multiplexing,
        )
    if max_payload is not None:
        if max_payload <= 0:
            raise ConfigurationError("max_payload must be a positive number of bytes")
        wire.max_payload = max_payload
    return wire
