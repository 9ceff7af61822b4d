"""A TCP proxy the tests control: cut, stall, delay and throttle the link to Redis.

The proxy runs its own event loop in a thread, so both async tests (a node in the
test's loop) and sync ones (a CLI in a subprocess) can steer it. Every link between a
client and Redis goes through it; the controls apply to the links open now and to
those opened later.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

_CHUNK = 65536


class _Link:
    """One client connection and its connection to Redis."""

    def __init__(self, proxy: FaultProxy, client: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        for writer in (self.client, self.server):
            if writer is not None:
                # SO_LINGER 0: a reset, and what sits in the send buffers is discarded,
                # as when a link really breaks.
                with contextlib.suppress(OSError):
                    sock = writer.get_extra_info("socket")
                    if sock is not None:
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                        )
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to a Redis at ``target_host:target_port``.

    Args:
        target_port: Redis's port.
        target_host: Redis's host.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._refusing = False
        self._flowing: asyncio.Event | None = None
        self.delay = 0.0
        self.rate: float | None = None
        self.accepted = 0
        """Connections accepted so far (refused ones included)."""

    # lifecycle --------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Start listening on a free loopback port."""
        self._thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Close every link and stop the proxy."""
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        self._links.clear()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def url(self, db: int = 0, userinfo: str = "") -> str:
        """A ``redis://`` URL through the proxy."""
        at = f"{userinfo}@" if userinfo else ""
        return f"redis://{at}127.0.0.1:{self.port}/{db}"

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # controls ---------------------------------------------------------------

    @property
    def links(self) -> int:
        """How many client connections are open through the proxy."""
        return len(self._links)

    def cut(self) -> None:
        """Break every link (a reset) and refuse new ones until :meth:`restore`."""
        self._call(self._cut(refuse=True))

    def kick(self) -> None:
        """Break every link once; new connections are accepted."""
        self._call(self._cut(refuse=False))

    async def _cut(self, refuse: bool) -> None:
        self._refusing = refuse
        for link in list(self._links):
            link.abort()
        self._links.clear()

    def stall(self) -> None:
        """Keep the links open but read and forward nothing until :meth:`restore`.

        New connections are accepted and stall too. Bytes are held in the kernel's socket
        buffers, not lost; a side that resets its connection meanwhile discards them.
        """
        self._call(self._set_flow(False))

    def restore(self) -> None:
        """Undo :meth:`cut` and :meth:`stall` (not the delay or the rate)."""
        self._refusing = False
        self._call(self._set_flow(True))

    async def _set_flow(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    def set_delay(self, seconds: float) -> None:
        """Add ``seconds`` of latency in each direction."""
        self.delay = seconds

    def throttle(self, bytes_per_second: float | None) -> None:
        """Limit each direction of each link to ``bytes_per_second`` (None: no limit)."""
        self.rate = bytes_per_second

    # forwarding -------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(self, writer)
        if self._refusing:
            link.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            link.abort()
            return
        link.server = up_writer
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pipe(link, reader, up_writer)),
            asyncio.create_task(self._pipe(link, up_reader, writer)),
        ]

    async def _pipe(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, writer))
        assert self._flowing is not None
        try:
            while True:
                # A stalled link reads nothing either: the bytes stay in the kernel's
                # buffers, so the sender's TCP sees backpressure, as on a real dead link.
                await self._flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    break
                queue.put_nowait((time.monotonic() + self.delay, data))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            queue.put_nowait(None)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await sender
            self._links.discard(link)
            link.abort()

    async def _send(
        self, queue: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter
    ) -> None:
        assert self._flowing is not None
        while True:
            item = await queue.get()
            if item is None:
                return
            due, data = item
            await self._flowing.wait()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            rate = self.rate
            if rate:
                for i in range(0, len(data), 1024):
                    await self._flowing.wait()
                    writer.write(data[i : i + 1024])
                    await writer.drain()
                    await asyncio.sleep(min(1024, len(data) - i) / rate)
            else:
                writer.write(data)
                await writer.drain()
