"""A Socket.IO node under eventlet or gevent with RedisAdapter, run as its own process.

``python -m tests.sync.cooperative_node MODE REDIS_URL KEY PORT [DIALECT]``: monkey-patches first
(as such apps must), serves on 127.0.0.1:PORT and prints ``READY`` once it listens.
Events: ``ask`` (acks the cluster's server count and socket ids, asked from the handler's
green thread by the adapter and by a ``siotools.sync.ClusterClient``), ``shout``
(broadcasts ``shouted`` through the adapter and ``emitted`` through a
``siotools.sync.Emitter``).
"""

from __future__ import annotations

import sys

MODE = sys.argv[1]
if MODE == "eventlet":
    import eventlet

    eventlet.monkey_patch()
else:
    from gevent import monkey

    monkey.patch_all()

from typing import Any  # noqa: E402

import socketio  # noqa: E402

from siotools import RedisAdapter  # noqa: E402
from siotools.sync import ClusterClient, Emitter  # noqa: E402


def main() -> None:
    redis_url, key, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
    dialect = sys.argv[5] if len(sys.argv) > 5 else "current"
    adapter = RedisAdapter(redis_url, key=key, dialect=dialect, requests_timeout=2.0)
    cluster = ClusterClient(redis_url, key=key, dialect=dialect)
    emitter = Emitter(redis_url, key=key, dialect=dialect)
    sio = socketio.Server(async_mode=MODE, client_manager=adapter)

    @sio.on("ask")
    def ask(sid: str, *args: Any) -> dict[str, Any]:
        sockets = adapter.fetch_sockets()
        return {
            "count": adapter.server_count(),
            "ids": sorted(s.id for s in sockets),
            "client_count": cluster.server_count(),
        }

    @sio.on("shout")
    def shout(sid: str, *args: Any) -> str:
        sio.emit("shouted", {"mode": MODE, "args": list(args)})
        emitter.emit("emitted", MODE)  # siotools.sync.Emitter from a green thread
        return "ok"

    app = socketio.WSGIApp(sio)
    if MODE == "eventlet":
        import eventlet.wsgi

        listener = eventlet.listen(("127.0.0.1", port))
        print("READY", flush=True)
        eventlet.wsgi.server(listener, app, log_output=False)
    else:
        from gevent import pywsgi

        server = pywsgi.WSGIServer(("127.0.0.1", port), app, log=None)
        server.start()
        print("READY", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
