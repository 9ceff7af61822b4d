"""``siotools tui``: the Textual ops console (needs ``pip install 'siotools[tui]'``)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
from typing import Any

from siotools._extras import require
from siotools.exceptions import ConfigurationError
from siotools.protocol import Dialect

__all__ = ["register"]

_DIALECTS = {"legacy": Dialect.LEGACY, "legacy-lite": Dialect.LEGACY_LITE}


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None


def register(sub: Any) -> None:
    """Add the ``tui`` subcommand to ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "tui", help="browse a cluster, watch its traffic, join/leave/disconnect sockets"
    )
    p.add_argument("--url", default="redis://127.0.0.1:6379/0", help="Redis URL")
    p.add_argument("--prefix", default="socket.io", help="the adapters' key (channel prefix)")
    p.add_argument(
        "--dialect",
        choices=sorted(_DIALECTS),
        default="legacy",
        help="socket.io-redis 5.x (legacy) or 4.x (legacy-lite)",
    )
    p.add_argument(
        "--read-only",
        action="store_true",
        help="hide and refuse every action that changes the cluster",
    )
    p.add_argument(
        "--refresh", type=_seconds, default=None, metavar="S", help="refresh every S seconds (2)"
    )
    p.add_argument(
        "--timeout", type=_seconds, default=1.0, metavar="S", help="cluster request timeout (1)"
    )
    p.add_argument("--nsp", help="traffic filter: namespace")
    p.add_argument("--room", help="traffic filter: a room the frame targets")
    p.add_argument("--event", help="traffic filter: event name")
    p.add_argument(
        "--kind", choices=["broadcast", "request", "response"], help="traffic filter: kind"
    )
    p.add_argument("--lines", type=int, default=5000, help="traffic lines kept (5000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the console until it is quit."""
    require("textual", "tui")
    from siotools.cluster import ClusterClient

    # Loaded by name: type checkers cannot follow the siotools.tui -> tui/ mapping.
    app_module: Any = importlib.import_module("siotools.tui.app")
    config: Any = importlib.import_module("siotools.tui.config")
    traffic_source: Any = importlib.import_module("siotools.tui.traffic_source")

    if args.lines < 1:
        raise ConfigurationError("--lines must be at least 1")
    settings = config.load_settings(
        args.url, args.prefix, read_only=args.read_only, refresh=args.refresh
    )
    cluster = ClusterClient(
        args.url, key=args.prefix, requests_timeout=args.timeout, dialect=_DIALECTS[args.dialect]
    )
    words = [
        f"{name}={value}"
        for name in ("nsp", "room", "event", "kind")
        if (value := getattr(args, name)) is not None
    ]
    app = app_module.SiotoolsApp(
        cluster,
        read_only=settings.read_only,
        refresh=settings.refresh,
        traffic=traffic_source.sniffer_source(args.url, args.prefix),
        traffic_cap=args.lines,
        traffic_filter=" ".join(words),
    )

    async def main() -> None:
        # The cluster's connections belong to the app's event loop: close them there.
        try:
            await app.run_async()
        finally:
            await cluster.close()

    asyncio.run(main())
    return 0
