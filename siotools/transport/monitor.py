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

The bracket holds the database and the client that sent the command: its ``addr`` (as
``CLIENT LIST`` shows it), ``lua`` for a script's commands (Redis 6 and earlier) or
``unix:<socket>``. A replica's MONITOR also shows the commands its master replicates to
it, under the replication link's client, whose address is the master's own (checked on
Redis 7.0: ``[0 127.0.0.1:<master port>] "SELECT" "0"``, ``"SET"``, ``"PEXPIREAT"`` for an
``EXPIRE``, ``"XADD"`` with the id the master chose, a script's writes in lower case);
what clients send to the replica itself (a ``PUBLISH``, a ``SPUBLISH`` after
``READONLY``) shows under their own address. :func:`replica_link` reads that
link's address and :class:`Monitor` drops its lines (``ignore_clients``), so a replica's
monitor hands on only what was sent to the replica.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import hiredis

from siotools.exceptions import RedisUnavailableError
from siotools.transport.connection import CommandConnection, RespConnection, open_connection
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import ErrorHandler, EventHandler, _Supervised

__all__ = [
    "CommandHandler",
    "Monitor",
    "MonitorConnection",
    "MonitorEntry",
    "ReplicaLink",
    "parse_monitor_entry",
    "parse_monitor_line",
    "replica_link",
]

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


class MonitorEntry(NamedTuple):
    """One command of a MONITOR stream (a named tuple: cheap at MONITOR's rates).

    Attributes:
        ts: The server's time of the command (seconds).
        db: The database it ran in.
        client: Who sent it: ``host:port`` as ``CLIENT LIST``'s ``addr``, ``lua`` or
            ``unix:<socket>``; on a replica, the master's replicated commands carry the
            replication link's address.
        args: ``[command, *args]``, unescaped.
    """

    ts: float
    db: int
    client: bytes
    args: list[bytes]


def parse_monitor_entry(line: bytes) -> MonitorEntry | None:
    """Parse one MONITOR line (``ts [db client] "arg" ...``).

    Returns:
        None for lines that are not a command (``OK``, malformed lines).
    """
    space = line.find(b" ")
    split = line.find(b" ", space + 1)
    close = line.find(b"] ", split)
    if space <= 0 or split < 0 or close < 0 or line[space + 1] != 0x5B:  # [
        return None
    try:
        ts = float(line[:space])
        db = int(line[space + 2 : split])
    except ValueError:
        return None
    args = [
        _ESCAPE.sub(_unescape_one, raw) if b"\\" in raw else raw
        for raw in _ARG.findall(line, close + 2)
    ]
    if not args:
        return None
    return MonitorEntry(ts, db, line[split + 1 : close], args)


def parse_monitor_line(line: bytes) -> tuple[float, list[bytes]] | None:
    """Parse one MONITOR line into ``(timestamp, [command, *args])``.

    Returns:
        None for lines that are not a command (``OK``, malformed lines).
    """
    entry = parse_monitor_entry(line)
    return None if entry is None else (entry.ts, entry.args)


def _client_addrs(listing: Any) -> set[bytes]:
    text = listing if isinstance(listing, bytes) else str(listing).encode()
    out = set()
    for row in text.splitlines():
        for field in row.split():
            if field.startswith(b"addr="):
                out.add(field[5:])
    return out


def _info_fields(info: Any) -> dict[bytes, bytes]:
    text = info if isinstance(info, bytes) else str(info).encode()
    return dict(
        row.strip().split(b":", 1) for row in text.splitlines() if b":" in row and row[:1] != b"#"
    )


@dataclass(frozen=True, slots=True)
class ReplicaLink:
    """A server's replication link to its master, as the server says.

    Attributes:
        master: ``master_host:master_port`` of ``INFO replication`` (the master's
            announced address, as a Redis Cluster's slot map names it); None on a master.
        up: Whether the link is up (``master_link_status:up``).
        clients: The link's client address(es), under which the server's MONITOR shows
            what the master replicates (``CLIENT LIST TYPE master``'s ``addr``; where
            ``CLIENT LIST`` is refused, an ACL, the ``master`` address stands in: the same
            unless a NAT sits between the two). Empty on a master or while the link is down.
    """

    master: str | None
    up: bool
    clients: frozenset[bytes]


async def replica_link(endpoint: RedisEndpoint) -> ReplicaLink:
    """Read ``endpoint``'s replication link: ``INFO replication``, then ``CLIENT LIST
    TYPE master`` (in that order, so that a link that changes between the two reads is
    named by its older master and read again by a caller that compares).

    Raises:
        RedisUnavailableError: The server cannot be reached or refuses ``INFO``.
    """
    conn = await open_connection(endpoint, lambda: CommandConnection("siotools-monitor-link"))
    try:
        fields = _info_fields(await conn.execute(b"INFO", b"replication"))
        host, port = fields.get(b"master_host"), fields.get(b"master_port")
        if fields.get(b"role") != b"slave" or not host or not port:
            return ReplicaLink(None, False, frozenset())
        master = (host + b":" + port).decode("utf-8", "replace")
        up = fields.get(b"master_link_status") == b"up"
        try:
            listing = await conn.execute(b"CLIENT", b"LIST", b"TYPE", b"master")
        except RedisUnavailableError:
            if not conn.connected:
                raise
            clients = {master.encode()} if up else set()
        else:
            clients = _client_addrs(listing)
        return ReplicaLink(master, up, frozenset(clients))
    finally:
        await conn.close()


class MonitorConnection(RespConnection):
    """A connection in MONITOR mode; each monitored command goes to ``on_command``.

    Args:
        name: The connection's name in logs and errors.
        on_command: Called with ``(server time, [command, *args])``.
        ignore: Clients (:attr:`MonitorEntry.client`) whose commands are dropped; read at
            each line, so a set changed in place takes effect at once.
    """

    def __init__(
        self, name: str, on_command: CommandHandler, ignore: set[bytes] | None = None
    ) -> None:
        super().__init__(name)
        self.on_command = on_command
        self.ignore: set[bytes] = ignore if ignore is not None else set()
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
            entry = parse_monitor_entry(reply)
            if entry is not None and entry.client not in self.ignore:
                self.on_command(entry.ts, entry.args)

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
        ignore_clients: Clients whose commands are not handed on (on a replica, its
            master's link, see :func:`replica_link`); :meth:`ignore` changes them.

    Attributes:
        ignored_clients: The clients whose commands are dropped now.
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
        ignore_clients: Iterable[bytes] = (),
    ) -> None:
        super().__init__(endpoint, name, on_error, on_reconnect, on_event)
        self._on_command = on_command
        # One set shared with every connection of this monitor, changed in place.
        self.ignored_clients: set[bytes] = set(ignore_clients)

    def ignore(self, clients: Iterable[bytes]) -> None:
        """Drop the commands of ``clients`` from now on (instead of the previous ones)."""
        new = set(clients)
        self.ignored_clients.intersection_update(new)
        self.ignored_clients.update(new)

    def _dispatch(self, ts: float, args: list[bytes]) -> None:
        self.last_message_at = ts
        try:
            self._on_command(ts, args)
        except Exception as exc:  # a bad handler must not kill the connection
            self.report(exc)

    _BEGIN = "start MONITOR"

    def _new_connection(self) -> MonitorConnection:
        return MonitorConnection(self.name, self._dispatch, self.ignored_clients)

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
