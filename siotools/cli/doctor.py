"""``siotools doctor``: say why a cluster's requests time out.

Passive by default (nothing published, nothing SUBSCRIBEd); ``--probe`` adds one read-only
request per namespace. A readable report, or JSON with ``--json``. Exit status: 0 healthy,
1 problems found, 2 the doctor could not run (bad arguments, Redis unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from siotools.cli.options import ClusterOptions, add_cluster_options, duration_arg, seconds_arg

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``doctor`` subcommand to ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "doctor",
        help="find why a cluster's requests time out (passive unless --probe)",
        description=(
            "Examine a Socket.IO Redis cluster: PUBSUB counts, CLIENT LIST, INFO, CONFIG GET "
            "and a few seconds of passive listening (PSUBSCRIBE only); --url ...?cluster=true "
            "reads every master of a Redis Cluster. Each finding has a severity, the evidence "
            "and the fix. Exit 0 healthy, 1 problems, 2 not run."
        ),
    )
    # --url/$SIOTOOLS_URL and --prefix/--key/$SIOTOOLS_PREFIX, as every command reads them.
    add_cluster_options(p, ClusterOptions(nsp=False, dialect=False, json=None))
    p.add_argument(
        "--probe",
        action="store_true",
        help="also send one read-only request (allRooms) per namespace and time the answers",
    )
    p.add_argument(
        "--duration",
        type=duration_arg,
        default=3.0,
        metavar="S",
        help="seconds of passive listening (default 3)",
    )
    p.add_argument(
        "--timeout",
        type=seconds_arg,
        default=2.0,
        metavar="S",
        help="seconds the probe waits for answers (default 2)",
    )
    p.add_argument(
        "--monitor",
        action="store_true",
        help=(
            "also run MONITOR while listening, to see sharded traffic (SPUBLISH) and tell "
            "8.2.x sharded nodes from 8.3 ones (costly for Redis: use it briefly)"
        ),
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the doctor and print its report; returns the exit status."""
    from siotools.health import doctor

    report = asyncio.run(
        doctor(
            args.url,
            args.prefix,
            probe_nodes=args.probe,
            duration=args.duration,
            timeout=args.timeout,
            monitor=args.monitor,
        )
    )
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        from rich.console import Console

        Console().print(report.render())
    return report.exit_code
