"""Run a synchronous python-socketio server with :class:`~siotools.RedisAdapter`.

The threading twin of :class:`~siotools.pynode.PythonNode`: a ``socketio.Server`` in
``async_mode="threading"`` behind werkzeug's threaded WSGI server (websockets through
simple-websocket), on a loopback port, in a background thread. Used by the test suite and
the benchmarks. Needs ``pip install 'siotools[sync]'``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from siotools._extras import require
from siotools.redis_server import free_port
from siotools.sync_adapter import RedisAdapter

__all__ = ["SyncPythonNode"]


class SyncPythonNode:
    """One ``socketio.Server`` (threading, werkzeug) that is a node of a Redis cluster.

    Every socket handles ``join`` and ``leave`` events (a room or a list of rooms; the ack
    is the socket's rooms), as the Node harness peers do.

    Args:
        redis_url: The cluster's Redis.
        port: The HTTP port on 127.0.0.1 (a free one when None).
        namespaces: Namespaces the server accepts.
        setup: Called with the ``socketio.Server`` before the server starts.
        app: A WSGI app to serve instead of the bare ``socketio.WSGIApp`` (e.g. a Flask
            app whose Flask-SocketIO owns the server: pass ``server`` too).
        server: The ``socketio.Server`` to use (made here when None).
        **adapter_options: Passed to :class:`~siotools.RedisAdapter` (when the server is
            made here).
    """

    def __init__(
        self,
        redis_url: str,
        *,
        port: int | None = None,
        namespaces: list[str] | None = None,
        setup: Callable[[Any], None] | None = None,
        app: Any = None,
        server: Any = None,
        **adapter_options: Any,
    ) -> None:
        socketio = require("socketio", "sync")
        require("simple_websocket", "sync")
        self.port = port or free_port()
        self.namespaces = namespaces or ["/"]
        if server is None:
            adapter = RedisAdapter(redis_url, namespaces=self.namespaces, **adapter_options)
            server = socketio.Server(
                async_mode="threading",
                client_manager=adapter,
                namespaces=self.namespaces,
                cors_allowed_origins="*",
            )
        self.sio = server
        self.adapter: RedisAdapter = server.manager
        self.app = app if app is not None else socketio.WSGIApp(server)
        self.received: list[tuple[str, str, str, list[Any]]] = []
        for nsp in self.namespaces:
            self._install_handlers(nsp)
        if setup is not None:
            setup(self.sio)
        self._http: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's HTTP URL."""
        return f"http://127.0.0.1:{self.port}"

    def _install_handlers(self, nsp: str) -> None:
        sio = self.sio

        def join(sid: str, rooms: Any) -> list[str]:
            for room in rooms if isinstance(rooms, list) else [rooms]:
                sio.enter_room(sid, room, namespace=nsp)
            now: list[str] = sio.rooms(sid, namespace=nsp)
            return now

        def leave(sid: str, rooms: Any) -> list[str]:
            for room in rooms if isinstance(rooms, list) else [rooms]:
                sio.leave_room(sid, room, namespace=nsp)
            now: list[str] = sio.rooms(sid, namespace=nsp)
            return now

        def catch_all(event: str, sid: str, *args: Any) -> None:
            self.received.append((nsp, sid, event, list(args)))

        sio.on("join", join, namespace=nsp)
        sio.on("leave", leave, namespace=nsp)
        sio.on("*", catch_all, namespace=nsp)

    def start(self) -> SyncPythonNode:
        """Join the cluster and serve HTTP in a background thread."""
        serving = require("werkzeug.serving", "sync")
        self.adapter.start()
        self._http = serving.make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(
            target=self._http.serve_forever, name=f"siotools-wsgi-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, then leave the cluster."""
        if self._http is not None:
            self.sio.shutdown()
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.adapter.close()

    def __enter__(self) -> SyncPythonNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
