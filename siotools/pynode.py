"""Run a python-socketio server with :class:`~siotools.AsyncRedisAdapter` on loopback.

Used by ``siotools demo``, the benchmarks and the test suite to start real Python nodes of
a cluster on loopback ports. Needs the ``server`` extra (``pip install 'siotools[server]'``).

The HTTP/websocket stack is one of :data:`STACKS`, the ones python-socketio supports under
asyncio: aiohttp, or its ASGI app under uvicorn with the ``websockets`` or ``wsproto``
websocket implementation. Per-message compression (permessage-deflate) is off unless asked
for, as in socket.io 4's Node server (``perMessageDeflate: false``): aiohttp and uvicorn
both accept it whenever a client offers it (socket.io-client does) and then deflate every
frame, however small, which costs more than the rest of a delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

from siotools._extras import require
from siotools.adapter import AsyncRedisAdapter
from siotools.exceptions import ConfigurationError
from siotools.redis_server import free_port
from siotools.transport.timers import wait_for

__all__ = [
    "DEFAULT_STACK",
    "STACKS",
    "HttpServer",
    "PythonNode",
    "Stack",
    "async_mode",
    "without_ws_compression",
]

Stack = Literal["aiohttp", "uvicorn-websockets", "uvicorn-websockets-sansio", "uvicorn-wsproto"]

STACKS: Final[tuple[Stack, ...]] = (
    "aiohttp",
    "uvicorn-websockets",
    "uvicorn-websockets-sansio",
    "uvicorn-wsproto",
)
"""The server stacks :class:`HttpServer` runs: aiohttp, or ASGI under uvicorn with its
``ws=`` implementation (``websockets``, ``websockets-sansio``, ``wsproto``)."""

DEFAULT_STACK: Final[Stack] = "aiohttp"
"""The stack that delivered the most messages per second in ``bench.bench_adapter``
(without compression); see the README's "How fast"."""

# The request header a client offers websocket extensions in (RFC 6455 section 9.1).
_WS_EXTENSIONS: Final = "Sec-WebSocket-Extensions"


def async_mode(stack: str) -> str:
    """Return the python-socketio ``async_mode`` a stack needs.

    Args:
        stack: One of :data:`STACKS`.

    Raises:
        ConfigurationError: ``stack`` is not one of :data:`STACKS`.
    """
    if stack not in STACKS:
        raise ConfigurationError(
            f"unknown server stack {stack!r}; choose one of {', '.join(STACKS)}"
        )
    return "aiohttp" if stack == "aiohttp" else "asgi"


class HttpServer:
    """Serve a ``socketio.AsyncServer`` on ``127.0.0.1:port`` with one of :data:`STACKS`.

    Args:
        sio: The server; its ``async_mode`` must be :func:`async_mode` of ``stack``.
        port: The TCP port.
        stack: One of :data:`STACKS`.
        ws_compression: Accept permessage-deflate when a client offers it (every frame is
            then compressed). Off by default, as in socket.io 4's Node server.
    """

    def __init__(
        self, sio: Any, *, port: int, stack: str = DEFAULT_STACK, ws_compression: bool = False
    ) -> None:
        mode = async_mode(stack)
        if sio.async_mode != mode:
            raise ConfigurationError(
                f"the {stack} stack needs socketio.AsyncServer(async_mode={mode!r}), "
                f"not {sio.async_mode!r}"
            )
        self.sio = sio
        self.port = port
        self.stack = stack
        self.ws_compression = ws_compression
        self._stop: Callable[[], Awaitable[None]] | None = None

    async def start(self) -> None:
        """Listen; returns once the port accepts connections."""
        if self.stack == "aiohttp":
            await self._start_aiohttp()
        else:
            await self._start_uvicorn(self.stack.removeprefix("uvicorn-"))

    async def stop(self) -> None:
        """Close the listening socket and the open connections."""
        stop, self._stop = self._stop, None
        if stop is not None:
            await stop()

    async def _start_aiohttp(self) -> None:
        web = require("aiohttp.web", "server")
        middlewares = [] if self.ws_compression else [without_ws_compression()]
        app = web.Application(middlewares=middlewares)
        self.sio.attach(app)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()

        async def stop() -> None:
            await wait_for(runner.cleanup(), 10)

        self._stop = stop

    async def _start_uvicorn(self, ws: str) -> None:
        uvicorn = require("uvicorn", "server")
        require("wsproto" if ws == "wsproto" else "websockets", "server")
        socketio = require("socketio", "server")
        config = uvicorn.Config(
            socketio.ASGIApp(self.sio),
            host="127.0.0.1",
            port=self.port,
            ws=ws,
            ws_per_message_deflate=self.ws_compression,
            lifespan="off",
            log_level="warning",
            access_log=False,
        )
        config.load()
        server = uvicorn.Server(config)
        # uvicorn.Server.serve() would take over SIGINT/SIGTERM for as long as it runs;
        # this is its body without that (the host process owns its signals).
        server.lifespan = config.lifespan_class(config)
        await server.startup()
        ticks = asyncio.create_task(server.main_loop(), name=f"uvicorn-{self.port}")

        async def stop() -> None:
            server.should_exit = True
            await ticks
            await wait_for(server.shutdown(), 10)

        self._stop = stop


def without_ws_compression() -> Any:
    """Return an aiohttp middleware that turns permessage-deflate off for python-socketio.

    python-engineio's aiohttp driver makes ``WebSocketResponse(max_msg_size=...)`` with
    aiohttp's default ``compress=True`` and has no option for it; the middleware hides the
    client's ``Sec-WebSocket-Extensions`` offer, so the handshake negotiates no extension.
    Use it as ``web.Application(middlewares=[without_ws_compression()])``.
    """
    web = require("aiohttp.web", "server")

    @web.middleware  # type: ignore[untyped-decorator]
    async def no_ws_compression(request: Any, handler: Any) -> Any:
        if _WS_EXTENSIONS in request.headers:
            headers = request.headers.copy()
            del headers[_WS_EXTENSIONS]
            request = request.clone(headers=headers)
        return await handler(request)

    return no_ws_compression


class PythonNode:
    """One python-socketio ``AsyncServer`` that is a node of a Redis cluster.

    Every socket handles ``join`` and ``leave`` events (a room or a list of rooms; the ack
    is the socket's rooms), as the Node harness peers do, so clients can move themselves
    between rooms.

    Args:
        redis_url: The cluster's Redis.
        port: The HTTP port on 127.0.0.1 (a free one when None).
        namespaces: Namespaces the server accepts.
        setup: Called with the ``socketio.AsyncServer`` before the server starts, to add
            handlers.
        stack: The HTTP/websocket stack, one of :data:`STACKS`.
        ws_compression: Accept permessage-deflate (see :class:`HttpServer`).
        **adapter_options: Passed to :class:`~siotools.AsyncRedisAdapter`.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        port: int | None = None,
        namespaces: list[str] | None = None,
        setup: Callable[[Any], None] | None = None,
        stack: str = DEFAULT_STACK,
        ws_compression: bool = False,
        **adapter_options: Any,
    ) -> None:
        socketio = require("socketio", "server")
        mode = async_mode(stack)
        self.port = port or free_port()
        self.namespaces = namespaces or ["/"]
        self.adapter = AsyncRedisAdapter(redis_url, namespaces=self.namespaces, **adapter_options)
        self.sio = socketio.AsyncServer(
            async_mode=mode,
            client_manager=self.adapter,
            namespaces=self.namespaces,
            cors_allowed_origins="*",
        )
        self.http = HttpServer(self.sio, port=self.port, stack=stack, ws_compression=ws_compression)
        self.received: list[tuple[str, str, str, list[Any]]] = []
        for nsp in self.namespaces:
            self._install_handlers(nsp)
        if setup is not None:
            setup(self.sio)
        self._running = False

    @property
    def url(self) -> str:
        """The server's HTTP URL."""
        return f"http://127.0.0.1:{self.port}"

    def _install_handlers(self, nsp: str) -> None:
        sio = self.sio

        async def join(sid: str, rooms: Any) -> list[str]:
            for room in rooms if isinstance(rooms, list) else [rooms]:
                await sio.enter_room(sid, room, namespace=nsp)
            rooms_now: list[str] = sio.rooms(sid, namespace=nsp)
            return rooms_now

        async def leave(sid: str, rooms: Any) -> list[str]:
            for room in rooms if isinstance(rooms, list) else [rooms]:
                await sio.leave_room(sid, room, namespace=nsp)
            rooms_now: list[str] = sio.rooms(sid, namespace=nsp)
            return rooms_now

        async def catch_all(event: str, sid: str, *args: Any) -> None:
            self.received.append((nsp, sid, event, list(args)))

        sio.on("join", join, namespace=nsp)
        sio.on("leave", leave, namespace=nsp)
        sio.on("*", catch_all, namespace=nsp)

    async def start(self) -> PythonNode:
        """Start the adapter and the HTTP server."""
        await self.adapter.start()
        await self.http.start()
        self._running = True
        return self

    async def stop(self) -> None:
        """Stop the HTTP server, then the adapter."""
        if self._running:
            self._running = False
            await self.sio.shutdown()
            await self.http.stop()
        await self.adapter.close()

    async def __aenter__(self) -> PythonNode:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
