"""``siotools demo``: a local cluster to try siotools on.

Until the demo cluster lands, this starts a private Redis, says what the full demo
will run on it, and waits for Ctrl-C (or ``--duration`` seconds).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from siotools.redis_server import RedisServer

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand to ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser("demo", help="run a local demo cluster")
    p.add_argument("--redis", metavar="URL", help="use this Redis instead of starting one")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds (default: run until Ctrl-C)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the demo and block until it is stopped."""
    server: RedisServer | None = None
    url = args.redis
    if url is None:
        server = RedisServer().start()
        url = server.url
    try:
        print(f"siotools demo: Redis is ready at {url}")
        print("The demo cluster (python-socketio nodes with the siotools adapter and simulated")
        print("clients) is not built yet; this run only proves the Redis launcher works.")
        deadline = None if args.duration is None else time.monotonic() + args.duration
        print("Press Ctrl-C to stop." if deadline is None else f"Stopping in {args.duration}s.")
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
    finally:
        if server is not None:
            server.stop()
    print("siotools demo: stopped.")
    return 0
