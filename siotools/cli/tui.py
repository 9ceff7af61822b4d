"""``siotools tui``: the Textual ops console (needs ``pip install 'siotools[tui]'``)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
from typing import Any

from siotools._extras import require
from siotools.cli._base import EXIT_OK, EXIT_USAGE, say
from siotools.cli.options import (
    ClusterOptions,
    add_cluster_options,
    add_stream_count,
    check_seconds,
    check_stream_count,
    cluster_client,
    count_arg,
)
from siotools.exceptions import ConfigurationError

__all__ = ["register"]

_OPTIONS = ClusterOptions(
    timeout=1.0, nsp_default=None, nsp_help="traffic filter: namespace", json=None
)


def _seconds(text: str) -> float:
    try:
        return check_seconds(text, "--refresh")
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: Any) -> None:
    """Add the ``tui`` subcommand to ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "tui", help="browse a cluster, watch its traffic, join/leave/disconnect sockets"
    )
    add_cluster_options(p, _OPTIONS)
    p.add_argument(
        "--read-only",
        action="store_true",
        help="hide and refuse every action that changes the cluster",
    )
    p.add_argument(
        "--refresh", type=_seconds, default=None, metavar="S", help="refresh every S seconds (2)"
    )
    p.add_argument("--room", help="traffic filter: a room the frame targets")
    p.add_argument("--event", help="traffic filter: event name")
    p.add_argument(
        "--kind", choices=["broadcast", "request", "response"], help="traffic filter: kind"
    )
    p.add_argument("--lines", type=count_arg, default=5000, help="traffic lines kept (5000)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--monitor",
        action="store_true",
        help="traffic view: MONITOR to see sharded SPUBLISH traffic, on every master of a "
        "Redis Cluster (costly for the Redis server)",
    )
    mode.add_argument(
        "--ssubscribe",
        action="store_true",
        help="traffic view: SSUBSCRIBE the prefix's sharded channels (counted by PUBSUB "
        "SHARDNUMSUB: the nodes' requests wait for the console and time out)",
    )
    p.add_argument(
        "--stream",
        metavar="KEY",
        help="traffic view: read this Redis stream (@socket.io/redis-streams-adapter's "
        "streamName) with XREAD from $ (default: the prefix's, when it is a stream)",
    )
    add_stream_count(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the console until it is quit."""
    require("textual", "tui")

    # Loaded by name: type checkers cannot follow the siotools.tui -> tui/ mapping.
    app_module: Any = importlib.import_module("siotools.tui.app")
    config: Any = importlib.import_module("siotools.tui.config")
    traffic_source: Any = importlib.import_module("siotools.tui.traffic_source")

    if args.lines < 1:
        raise ConfigurationError("--lines must be at least 1")
    check_stream_count(args)
    settings = config.load_settings(
        args.url, args.prefix, read_only=args.read_only, refresh=args.refresh
    )
    cluster = cluster_client(args)
    words = [
        f"{name}={value}"
        for name in ("nsp", "room", "event", "kind")
        if (value := getattr(args, name)) is not None
    ]
    app = app_module.SiotoolsApp(
        cluster,
        read_only=settings.read_only,
        refresh=settings.refresh,
        traffic=traffic_source.sniffer_source(
            args.url,
            args.prefix,
            monitor=args.monitor,
            ssubscribe=args.ssubscribe,
            stream=args.stream,
            stream_count=args.stream_count,
        ),
        traffic_cap=args.lines,
        traffic_filter=" ".join(words),
        discovery=traffic_source.discovery_source(args.url, args.prefix),
    )

    async def main() -> None:
        # The cluster's connections belong to the app's event loop: close them there.
        try:
            await app.run_async()
        finally:
            await cluster.close()

    asyncio.run(main())
    code = app.return_code or EXIT_OK
    if code != EXIT_OK:
        reason = app.exit_reason or "the console stopped on an error"
        say(f"siotools tui: {reason.rstrip('.')}.")
        return EXIT_USAGE
    return EXIT_OK
