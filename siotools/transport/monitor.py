"""A ``MONITOR`` connection: the passive way to see sharded pub/sub.

:class:`Monitor` runs ``MONITOR``: every command the Redis server runs, parsed into arguments.

Pattern subscriptions cannot see sharded pub/sub (``SPUBLISH`` has no pattern form), so
the only passive way to watch a sharded adapter is ``MONITOR``. It is expensive for the
server: Redis formats every command of every client for every monitor (the Redis docs
measure about half the throughput with one monitor attached), so callers should warn
before using it.

Redis writes each command as one status line::

    1339518083.107412 [0 127.0.0.1:60866] "PUBLISH" "chan" "\\x93\\xa6..."

Arguments are quoted with ``sdscatrepr`` escapes (``\\"``, ``\\\\``, ``\\n``, ``\\r``,
``\\t``, ``\\a``, ``\\b`` and ``\\xHH`` for every other non-printable byte).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import hiredis

from siotools.exceptions import RedisUnavailableError
from siotools.transport.connection import RespConnection
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import ErrorHandler, EventHandler, _Supervised

__all__ = ["CommandHandler", "Monitor", "MonitorConnection", "parse_monitor_line"]

CommandHandler = Callable[[float, list[bytes]], None]
"""Called with ``(server time in seconds, [command, *args])`` for each monitored command."""

_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE = {
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("a"): b"\a",
    ord("b"): b"\b",
    ord('"'): b'"',
    ord("\\"): b"\\",
}


def _unescape_one(match: re.Match[bytes]) -> bytes:
    text = match.group(1)
    if len(text) == 3 and text[0] == 0x78:  # x
        return bytes((int(text[1:], 16),))
    return _SIMPLE.get(text[0], text)


def parse_monitor_line(line: bytes) -> tuple[float, list[bytes]] | None:
    """Parse one MONITOR line into ``(timestamp, [command, *args])``.

    Returns:
        None for lines that are not a command (``OK``, malformed lines).
    """
    space = line.find(b" ")
    close = line.find(b"] ", space)
    if space <= 0 or close < 0:
        return None
    try:
        ts = float(line[:space])
    except ValueError:
        return None
    args = []
    for raw in _ARG.findall(line, close + 2):
        args.append(_ESCAPE.sub(_unescape_one, raw) if b"\\" in raw else raw)
    if not args:
        return None
    return ts, args


class MonitorConnection(RespConnection):
    """A connection in MONITOR mode; each monitored command goes to ``on_command``."""

    def __init__(self, name: str, on_command: CommandHandler) -> None:
        super().__init__(name)
        self.on_command = on_command
        self.started: asyncio.Future[None] = self._loop.create_future()

    def on_reply(self, reply: Any) -> None:
        if isinstance(reply, hiredis.ReplyError):
            if not self.started.done():
                self.started.set_exception(RedisUnavailableError(f"Redis refused MONITOR: {reply}"))
            return
        if not self.started.done():
            # The first reply is MONITOR's own "+OK".
            self.started.set_result(None)
            return
        if type(reply) is bytes:
            parsed = parse_monitor_line(reply)
            if parsed is not None:
                self.on_command(parsed[0], parsed[1])

    def on_lost(self, exc: BaseException | None) -> None:
        if not self.started.done():
            self.started.set_exception(
                RedisUnavailableError(f"The connection to Redis was lost ({self.name}).")
            )


class Monitor(_Supervised[MonitorConnection]):
    """A MONITOR connection that reconnects after a loss.

    Args:
        endpoint: The Redis server.
        on_command: Called with ``(server time, [command, *args])``; must not raise.
        name: The connection's name in logs and errors.
        on_error: Called with connection errors.
        on_reconnect: Called after MONITOR was restarted on a new connection.
        on_event: Called with a :class:`~siotools.transport.pubsub.LinkEvent` on each
            loss and restore (with the gap's span).
    """

    def __init__(
        self,
        endpoint: RedisEndpoint,
        on_command: CommandHandler,
        *,
        name: str = "siotools-monitor",
        on_error: ErrorHandler | None = None,
        on_reconnect: Callable[[], None] | None = None,
        on_event: EventHandler | None = None,
    ) -> None:
        super().__init__(endpoint, name, on_error, on_reconnect, on_event)
        self._on_command = on_command

    def _dispatch(self, ts: float, args: list[bytes]) -> None:
        self.last_message_at = ts
        try:
            self._on_command(ts, args)
        except Exception as exc:  # a bad handler must not kill the connection
            self.report(exc)

    _BEGIN = "start MONITOR"

    def _new_connection(self) -> MonitorConnection:
        return MonitorConnection(self.name, self._dispatch)

    async def _begin(self, conn: MonitorConnection) -> None:
        conn.write_command(b"MONITOR")
        conn.flush()
        await asyncio.shield(conn.started)

    async def close(self) -> None:
        """Stop monitoring and close the connection."""
        await self._stop_supervisor()
        conn, self._conn = self._conn, None
        self._up.clear()
        if conn is not None:
            await conn.close()
