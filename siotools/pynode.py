"""Run a python-socketio server with :class:`~siotools.AsyncRedisAdapter` on aiohttp.

Used by ``siotools demo``, the benchmarks and the test suite to start real Python nodes of
a cluster on loopback ports. Needs aiohttp (``pip install 'siotools[server]'``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from siotools._extras import require
from siotools.adapter import AsyncRedisAdapter
from siotools.redis_server import free_port

__all__ = ["PythonNode"]


class PythonNode:
    """One python-socketio ``AsyncServer`` (aiohttp) that is a node of a Redis cluster.

    Every socket handles ``join`` and ``leave`` events (a room or a list of rooms; the ack
    is the socket's rooms), as the Node harness peers do, so clients can move themselves
    between rooms.

    Args:
        redis_url: The cluster's Redis.
        port: The HTTP port on 127.0.0.1 (a free one when None).
        namespaces: Namespaces the server accepts.
        setup: Called with the ``socketio.AsyncServer`` before the server starts, to add
            handlers.
        **adapter_options: Passed to :class:`~siotools.AsyncRedisAdapter`.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        port: int | None = None,
        namespaces: list[str] | None = None,
        setup: Callable[[Any], None] | None = None,
        **adapter_options: Any,
    ) -> None:
        socketio = require("socketio", "server")
        require("aiohttp", "server")
        self.port = port or free_port()
        self.namespaces = namespaces or ["/"]
        self.adapter = AsyncRedisAdapter(redis_url, namespaces=self.namespaces, **adapter_options)
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            client_manager=self.adapter,
            namespaces=self.namespaces,
            cors_allowed_origins="*",
        )
        self.received: list[tuple[str, str, str, list[Any]]] = []
        for nsp in self.namespaces:
            self._install_handlers(nsp)
        if setup is not None:
            setup(self.sio)
        self._runner: Any = None

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
        web = require("aiohttp.web", "server")
        app = web.Application()
        self.sio.attach(app)
        await self.adapter.start()
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        return self

    async def stop(self) -> None:
        """Stop the HTTP server, then the adapter."""
        if self._runner is not None:
            await self.sio.shutdown()
            await asyncio.wait_for(self._runner.cleanup(), 10)
            self._runner = None
        await self.adapter.close()

    async def __aenter__(self) -> PythonNode:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
