"""``siotools exporter``: a Prometheus endpoint for the whole cluster, fed passively.

Listens on the prefix with one PSUBSCRIBE connection (never counted by NUMSUB) and serves
``/metrics`` until Ctrl-C. Every metric name starts with ``siotools_``; the Grafana
dashboard shipped with siotools charts them (``--dashboard`` prints it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from siotools.cli.options import ClusterOptions, add_cluster_options, count_arg, seconds_arg

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``exporter`` subcommand to ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "exporter",
        help="serve Prometheus metrics of the whole cluster (passive)",
        description=(
            "Serve /metrics for Prometheus: messages, bytes, rooms (top N + other), events, "
            "broadcasts and requests by type, request latency, unanswered requests, nodes per "
            "namespace, dialects and the sniffer's health. Passive: PSUBSCRIBE only; "
            "--url ...?cluster=true counts nodes on every master of a Redis Cluster."
        ),
    )
    # --url/$SIOTOOLS_URL and --prefix/--key/$SIOTOOLS_PREFIX, as every command reads them.
    add_cluster_options(p, ClusterOptions(nsp=False, dialect=False, json=None))
    p.add_argument(
        "--listen",
        default="127.0.0.1:9464",
        metavar="HOST:PORT",
        help="where to serve /metrics (default 127.0.0.1:9464)",
    )
    p.add_argument("--top-rooms", type=count_arg, default=50, metavar="N", help="room labels (50)")
    p.add_argument(
        "--top-events", type=count_arg, default=50, metavar="N", help="event labels (50)"
    )
    p.add_argument(
        "--request-timeout",
        type=seconds_arg,
        default=5.0,
        metavar="S",
        help="seconds after which a request short of answers is unanswered (5)",
    )
    p.add_argument(
        "--dashboard", action="store_true", help="print the Grafana dashboard JSON and exit"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (or SIGTERM); returns the exit status."""
    from siotools.exporter import Exporter, dashboard, parse_listen

    if args.dashboard:
        json.dump(dashboard(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    host, port = parse_listen(args.listen)
    exporter = Exporter(
        args.url,
        args.prefix,
        top_rooms=args.top_rooms,
        top_events=args.top_events,
        request_timeout=args.request_timeout,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await exporter.start()
        try:
            try:
                bound = exporter.listen(host, port)
            except OSError as exc:
                from siotools.exceptions import ConfigurationError

                raise ConfigurationError(
                    f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                ) from None
            sys.stderr.write(
                f"siotools exporter: serving http://{host}:{bound}/metrics for prefix "
                f"{args.prefix} on {exporter.endpoint.url} (Ctrl-C stops)\n"
            )
            sys.stderr.flush()
            await stop.wait()
        finally:
            await exporter.close()

    asyncio.run(main())
    return 0
