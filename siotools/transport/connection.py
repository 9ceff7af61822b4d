"""Lean RESP2 connections on asyncio, parsed by hiredis.

redis-py's async pub/sub costs about 8 µs per message in ``listen()`` and awaits one
round trip per ``PUBLISH``. These connections write pipelined commands in one buffer
per batch and hand each parsed reply straight to a callback, which is what lets a
Python node publish and receive as fast as a Node one (node-redis pipelines the same
way: every command written in one tick goes out in one write).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import hiredis

from siotools.exceptions import RedisUnavailableError, SubscriptionRefused
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.timers import wait_for

__all__ = [
    "BatchHandler",
    "CommandConnection",
    "MessageHandler",
    "RespConnection",
    "SubscriberConnection",
    "open_connection",
    "refusal",
    "resolve_master",
]

MessageHandler = Callable[[bytes, bytes, "bytes | None"], None]
"""Called with ``(channel, payload, pattern)`` for every pub/sub message."""

BatchHandler = Callable[[int, list[list[bytes]]], None]
"""Called with ``(time_ns, replies)`` per socket read; each reply is
``[b"message", channel, payload]`` or ``[b"pmessage", pattern, channel, payload]``."""

C = TypeVar("C", bound="RespConnection")

# Write as soon as this many commands are queued, instead of waiting for the next
# loop iteration: a producer that never yields must not grow the buffer unbounded.
_WRITE_BATCH = 512


class RespConnection(asyncio.Protocol):
    """A RESP2 connection: writes packed commands, feeds replies to :meth:`on_reply`.

    Subclasses decide what a reply means. ``lost`` is resolved (never with an error)
    when the connection closes, for whatever reason.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.where = ""
        """The (password-free) URL of the server, set once connected, for error messages."""
        self.transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader()
        self._wbuf: list[bytes] = []
        self._flush_scheduled = False
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    # asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, but it has the same
        # methods (uvicorn runs on uvloop whenever it is installed).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        on_reply = self.on_reply
        try:
            while True:
                reply = reader.gets()
                if reply is False:
                    return
                on_reply(reply)
        except hiredis.ProtocolError as exc:
            # The stream is out of sync; nothing after this point can be trusted.
            self.abort(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(exc)
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        self.on_lost(exc)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # for subclasses -------------------------------------------------------

    def on_reply(self, reply: Any) -> None:
        """Handle one parsed reply (or push message)."""
        raise NotImplementedError

    def on_lost(self, exc: BaseException | None) -> None:
        """Called once when the connection closes."""

    # writing ----------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether the kernel's send buffer is full (``drain`` would wait)."""
        return self._paused

    @property
    def connected(self) -> bool:
        """Whether the connection is open."""
        return self.transport is not None and not self.transport.is_closing()

    def write_command(self, *args: bytes | str | int | float) -> None:
        """Queue one command; it is written with the others queued in the same batch."""
        self.write_packed(hiredis.pack_command(args))  # type: ignore[arg-type]

    def write_packed(self, packed: bytes) -> None:
        """Queue one command already packed in RESP."""
        self._wbuf.append(packed)
        if len(self._wbuf) >= _WRITE_BATCH:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every queued command now."""
        self._flush_scheduled = False
        if not self._wbuf:
            return
        data = b"".join(self._wbuf)
        self._wbuf.clear()
        if self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the kernel's send buffer is full (the server reads slowly)."""
        if self._paused and self.transport is not None:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def abort(self, exc: BaseException | None = None, *, reset: bool = False) -> None:
        """Close the connection at once.

        Args:
            exc: Why (for the record).
            reset: Send a TCP reset (``SO_LINGER`` 0): what is still in the send buffer is
                discarded instead of retransmitted when a stalled link comes back.
        """
        if self.transport is None:
            return
        if reset:
            sock = self.transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    async def close(self) -> None:
        """Close the connection and wait until it is closed."""
        if self.transport is not None:
            self.flush()
            self.transport.close()
        with contextlib.suppress(Exception):
            await wait_for(asyncio.shield(self.lost), 2.0)


class CommandConnection(RespConnection):
    """A connection for ordinary commands: each reply resolves its command's future.

    Commands sent with :meth:`send_nowait` have their replies dropped (error replies
    are passed to ``on_error``), which is how broadcasts are published without a
    round trip each. Those still unanswered when the connection is lost are kept in
    :attr:`unacknowledged` (packed), so the owner can send them again.
    """

    def __init__(self, name: str, on_error: Callable[[BaseException], None] | None = None) -> None:
        super().__init__(name)
        # A future per command sent with send(); the packed command itself for send_nowait.
        self._waiting: collections.deque[asyncio.Future[Any] | bytes] = collections.deque()
        self._on_error = on_error
        self.unacknowledged: list[bytes] = []
        """Packed :meth:`send_nowait` commands Redis never answered (set when lost)."""

    @property
    def pending(self) -> int:
        """Commands written or queued whose reply has not arrived yet."""
        return len(self._waiting)

    def on_reply(self, reply: Any) -> None:
        try:
            fut = self._waiting.popleft()
        except IndexError:
            return
        if type(fut) is bytes:
            if isinstance(reply, hiredis.ReplyError) and self._on_error is not None:
                self._on_error(RedisUnavailableError(f"Redis refused a command: {reply}"))
            return
        assert not isinstance(fut, bytes)
        if fut.done():
            return
        if isinstance(reply, hiredis.ReplyError):
            fut.set_exception(RedisUnavailableError(f"Redis refused a command: {reply}"))
        else:
            fut.set_result(reply)

    def on_lost(self, exc: BaseException | None) -> None:
        error = RedisUnavailableError(f"The connection to Redis was lost ({self.name}).")
        unacknowledged = self.unacknowledged
        while self._waiting:
            fut = self._waiting.popleft()
            if type(fut) is bytes:
                unacknowledged.append(fut)
            elif not fut.done():  # type: ignore[union-attr]
                fut.set_exception(error)  # type: ignore[union-attr]
        # What was still queued for writing never left: it is unacknowledged too.
        self._wbuf.clear()

    def send(self, *args: bytes | str | int | float) -> asyncio.Future[Any]:
        """Queue a command; the future resolves with its reply."""
        fut: asyncio.Future[Any] = self._loop.create_future()
        if not self.connected:
            fut.set_exception(RedisUnavailableError(f"Not connected to Redis ({self.name})."))
            return fut
        self._waiting.append(fut)
        self.write_command(*args)
        return fut

    def send_nowait(self, *args: bytes | str | int | float) -> None:
        """Queue a command whose reply is not needed."""
        self.send_packed_nowait(hiredis.pack_command(args))  # type: ignore[arg-type]

    def send_packed_nowait(self, packed: bytes) -> None:
        """Queue a command packed in RESP whose reply is not needed."""
        self._waiting.append(packed)
        self.write_packed(packed)

    async def execute(self, *args: bytes | str | int | float) -> Any:
        """Send a command and return its reply.

        Raises:
            RedisUnavailableError: The connection is down or Redis answered with an error.
        """
        return await self.send(*args)


class SubscriberConnection(RespConnection):
    """A connection in subscriber mode: messages go to a handler, confirmations to waiters.

    With ``on_batch``, the messages of one socket read are passed on together, with one
    receive time (``time.time_ns()``), as ``[b"message", channel, payload]`` or
    ``[b"pmessage", pattern, channel, payload]`` replies: at 100k+ messages/s the
    per-message Python calls are most of a subscriber's cost.
    """

    def __init__(
        self,
        name: str,
        on_message: MessageHandler | None = None,
        on_batch: BatchHandler | None = None,
    ) -> None:
        super().__init__(name)
        self.on_message = on_message
        self.on_batch = on_batch
        # (kind, how many confirmations are still due, future, items)
        self._confirm: collections.deque[list[Any]] = collections.deque()

    def data_received(self, data: bytes) -> None:
        on_batch = self.on_batch
        if on_batch is None:
            super().data_received(data)
            return
        reader = self._reader
        reader.feed(data)
        now = time.time_ns()
        batch: list[list[bytes]] = []
        try:
            while True:
                reply = reader.gets()
                if reply is False:
                    break
                if type(reply) is list and (reply[0] == b"pmessage" or reply[0] == b"message"):
                    batch.append(reply)
                    continue
                if batch:  # keep the order of messages and confirmations
                    on_batch(now, batch)
                    batch = []
                self.on_reply(reply)
        except hiredis.ProtocolError as exc:
            self.abort(exc)
        if batch:
            on_batch(now, batch)

    def on_reply(self, reply: Any) -> None:
        # RESP2 subscriber mode: every reply is an array whose first item says its kind.
        if type(reply) is list:
            kind = reply[0]
            if kind == b"message" or kind == b"pmessage":
                if self.on_batch is not None:
                    self.on_batch(time.time_ns(), [reply])
                elif self.on_message is not None:
                    if kind == b"message":
                        self.on_message(reply[1], reply[2], None)
                    else:
                        self.on_message(reply[2], reply[3], reply[1])
                return
            self._confirmed(kind)
        elif isinstance(reply, hiredis.ReplyError):
            self._confirmed(None, reply)

    def _confirmed(self, kind: bytes | None, error: BaseException | None = None) -> None:
        if not self._confirm:
            return
        entry = self._confirm[0]
        entry[1] -= 1
        if entry[1] <= 0 or error is not None:
            # Redis checks the ACL of a whole (P)SUBSCRIBE before applying any of it, so one
            # error reply answers the whole command.
            self._confirm.popleft()
            fut: asyncio.Future[None] = entry[2]
            if not fut.done():
                if error is not None:
                    fut.set_exception(refusal(self.where, entry[0], entry[3], str(error)))
                else:
                    fut.set_result(None)

    def on_lost(self, exc: BaseException | None) -> None:
        while self._confirm:
            fut = self._confirm.popleft()[2]
            if not fut.done():
                fut.set_exception(
                    RedisUnavailableError(f"The connection to Redis was lost ({self.name}).")
                )

    def command(self, verb: bytes, items: list[bytes]) -> asyncio.Future[None]:
        """Send (P)(UN)SUBSCRIBE (or PING); the future resolves when Redis confirmed it."""
        fut: asyncio.Future[None] = self._loop.create_future()
        if not self.connected:
            fut.set_exception(RedisUnavailableError(f"Not connected to Redis ({self.name})."))
            return fut
        self._confirm.append([verb, max(1, len(items)), fut, tuple(items)])
        self.write_command(verb, *items)
        return fut


def refusal(where: str, verb: bytes, items: tuple[bytes, ...], reply: str) -> SubscriptionRefused:
    """The error for a refused (P)SUBSCRIBE: what was refused, by whom, and the fix."""
    command = verb.decode(errors="replace").upper()
    shown = ", ".join(repr(i.decode(errors="backslashreplace")) for i in items[:4])
    if len(items) > 4:
        shown += f" and {len(items) - 4} more"
    code = reply.split(" ", 1)[0].upper()
    if code == "NOAUTH":
        fix = (
            "Redis requires a password: put it in the URL (redis://:PASSWORD@host:port/0, "
            "or redis://USER:PASSWORD@... for an ACL user)."
        )
    elif code == "NOPERM" and "to run" in reply:
        fix = (
            f"The ACL user may not run {command}: allow it (ACL SETUSER <user> +{command.lower()})."
        )
    elif code == "NOPERM" and command == "PSUBSCRIBE":
        fix = (
            "The ACL user may not subscribe to this pattern. Redis compares a PSUBSCRIBE "
            "pattern with the user's channel rules literally, so a rule like '&socket.io*' "
            "does not cover it: add the pattern itself (ACL SETUSER <user> &<pattern>), or "
            "subscribe to channels instead of a pattern."
        )
    elif code == "NOPERM":
        fix = (
            "The ACL user may not subscribe to these channels: add a channel rule that "
            "matches them (ACL SETUSER <user> &<prefix>*)."
        )
    else:
        fix = "Check the Redis server's ACL and configuration."
    at = f" at {where}" if where else ""
    return SubscriptionRefused(
        f"Redis{at} refused {command} {shown}: {reply}. {fix}",
        command=command,
        items=items,
        reply=reply,
    )


async def open_connection(endpoint: RedisEndpoint, factory: Callable[[], C]) -> C:
    """Connect ``factory()`` to ``endpoint``, log in and check the server answers.

    For a Sentinel endpoint the master is looked up first (each Sentinel in turn), and
    the server is checked to be a master, so a reconnect after a failover finds the new
    one.

    Raises:
        RedisUnavailableError: The server cannot be reached, refused the login or the
            TLS handshake; the message says which and what to do (never the password).
        siotools.exceptions.ConfigurationError: A TLS file named in the settings cannot
            be read.
    """
    if endpoint.sentinels:
        endpoint = await resolve_master(endpoint)
    loop = asyncio.get_running_loop()
    context = endpoint.ssl_context()
    try:
        if endpoint.path:
            coro = loop.create_unix_connection(factory, endpoint.path)
        else:
            coro = loop.create_connection(factory, endpoint.host, endpoint.port, ssl=context)
        _, proto = await wait_for(coro, endpoint.connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise RedisUnavailableError(
            f"Cannot reach Redis at {endpoint.url}: {_reason(exc, endpoint)}"
        ) from None
    proto.where = endpoint.url
    try:
        await _handshake(endpoint, proto)
    except BaseException:
        proto.abort()
        raise
    return proto


async def _ask_once(
    endpoint: RedisEndpoint, proto: RespConnection, *args: bytes | str | int
) -> Any:
    # Runs on a throwaway reply path before the owner uses the connection (subscriber
    # mode accepts no AUTH afterwards); a closed connection or silence is an error.
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    original = proto.on_reply

    def first_reply(reply: Any) -> None:
        if not fut.done():
            fut.set_result(reply)

    proto.on_reply = first_reply  # type: ignore[method-assign]
    proto.write_command(*args)
    proto.flush()
    try:
        done, _ = await asyncio.wait(
            [fut, proto.lost], timeout=endpoint.connect_timeout, return_when="FIRST_COMPLETED"
        )
    finally:
        proto.on_reply = original  # type: ignore[method-assign]
    if fut in done:
        return fut.result()
    if proto.lost.done():
        hint = ""
        if endpoint.tls and not endpoint.ssl_certfile:
            hint = (
                " It may require a client certificate (tls-auth-clients): pass "
                "ssl_certfile and ssl_keyfile."
            )
        raise RedisUnavailableError(
            f"Redis at {endpoint.url} closed the connection before answering.{hint}"
        )
    raise RedisUnavailableError(
        f"Redis at {endpoint.url} did not answer within {endpoint.connect_timeout:g}s."
    )


async def _handshake(endpoint: RedisEndpoint, proto: RespConnection) -> None:
    # One round trip before the owner starts: AUTH when there are credentials, else PING,
    # so a missing password, a refused client certificate or a server that is not Redis
    # is reported here, in one sentence, instead of as a silent subscriber.
    if endpoint.password is not None or endpoint.username is not None:
        if endpoint.username:
            reply = await _ask_once(
                endpoint, proto, b"AUTH", endpoint.username, endpoint.password or ""
            )
        else:
            reply = await _ask_once(endpoint, proto, b"AUTH", endpoint.password or "")
        if isinstance(reply, hiredis.ReplyError):
            raise RedisUnavailableError(
                f"Redis at {endpoint.url} refused the login: {reply}. Check the user name "
                "and password in the URL (redis://USER:PASSWORD@host:port/0)."
            )
    else:
        reply = await _ask_once(endpoint, proto, b"PING")
        if isinstance(reply, hiredis.ReplyError):
            text = str(reply)
            if text.upper().startswith("NOAUTH"):
                raise RedisUnavailableError(
                    f"Redis at {endpoint.url} requires a password ({text}): put it in the "
                    "URL (redis://:PASSWORD@host:port/0)."
                )
            if not text.upper().startswith("NOPERM"):  # an ACL user without +ping may work
                raise RedisUnavailableError(f"Redis at {endpoint.url} refused PING: {text}")


async def resolve_master(endpoint: RedisEndpoint) -> RedisEndpoint:
    """Ask the endpoint's Sentinels, in turn, where its master is now.

    Returns:
        The endpoint of the master (same credentials and TLS settings).

    Raises:
        RedisUnavailableError: No Sentinel answered with a master that says it is one.
    """
    service = endpoint.service_name or "mymaster"
    problems: list[str] = []
    for host, port in endpoint.sentinels:
        where = f"{host}:{port}"
        try:
            reply = await _sentinel_query(endpoint, host, port, service)
        except RedisUnavailableError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if not isinstance(reply, list) or len(reply) != 2:
            problems.append(f"{where} knows no master named {service!r}")
            continue
        master = endpoint.with_address(reply[0].decode(), int(reply[1]))
        if await _is_master(master):
            return master
        problems.append(f"{where} named {master.url}, which is not a master (yet)")
    raise RedisUnavailableError(
        f"No Sentinel of {endpoint.url} gave a reachable master: " + "; ".join(problems)
    )


class _OneShot(RespConnection):
    def on_reply(self, reply: Any) -> None:  # replaced by _ask_once while it waits
        pass


async def _sentinel_query(endpoint: RedisEndpoint, host: str, port: int, service: str) -> Any:
    loop = asyncio.get_running_loop()
    try:
        _, proto = await wait_for(
            loop.create_connection(lambda: _OneShot("siotools-sentinel"), host, port),
            endpoint.connect_timeout,
        )
    except (OSError, TimeoutError) as exc:
        raise RedisUnavailableError(_reason(exc, endpoint)) from None
    try:
        return await _ask_once(endpoint, proto, b"SENTINEL", b"get-master-addr-by-name", service)
    finally:
        proto.abort()


async def _is_master(master: RedisEndpoint) -> bool:
    # After a failover the old master may come back as a replica while a Sentinel still
    # names it: ROLE says which it is (redis-py's Sentinel client checks the same).
    loop = asyncio.get_running_loop()
    try:
        _, proto = await wait_for(
            loop.create_connection(
                lambda: _OneShot("siotools-role"),
                master.host,
                master.port,
                ssl=master.ssl_context(),
            ),
            master.connect_timeout,
        )
    except (OSError, TimeoutError):
        return False
    try:
        await _handshake(master, proto)
        reply = await _ask_once(master, proto, b"ROLE")
    except RedisUnavailableError:
        return False
    finally:
        proto.abort()
    if isinstance(reply, hiredis.ReplyError):
        return True  # an ACL user without +role: trust the Sentinel
    return isinstance(reply, list) and bool(reply) and reply[0] == b"master"


def _reason(exc: BaseException, endpoint: RedisEndpoint) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {endpoint.connect_timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is redis-server running there?)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or "certificate verify failed"
        return (
            f"the server's TLS certificate was not accepted ({detail}). For a private CA "
            "pass ssl_ca_certs=/path/to/ca.pem; ssl_check_hostname=false skips the name "
            "check, ssl_cert_reqs=none every check."
        )
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        return (
            f"the TLS handshake failed ({reason}); the server may require a client "
            "certificate (ssl_certfile, ssl_keyfile) or not speak TLS on this port."
        )
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.rstrip(".")
