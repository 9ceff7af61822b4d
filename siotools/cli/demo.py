"""``siotools demo``: a local cluster with realistic traffic to try siotools on.

Runs :class:`siotools.demo.DemoCluster` in the foreground until Ctrl-C (or ``--duration``),
printing a status line now and then. ``--with-tui`` also opens ``siotools tui`` on the
cluster and stops the cluster when the TUI quits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from siotools.cli.options import seconds_arg
from siotools.transport.timers import wait_for

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand to ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run a local demo cluster with simulated clients",
        description=(
            "Start a local Redis (or, with --redis-cluster, a 3-master Redis Cluster), "
            "python-socketio nodes with the siotools adapter and simulated socket.io clients "
            "that chat, join and leave rooms, upload files and reconnect. Ctrl-C stops "
            "everything it started."
        ),
    )
    p.add_argument("--nodes", type=int, default=3, help="python-socketio nodes (default 3)")
    p.add_argument("--clients", type=int, default=200, help="simulated clients (default 200)")
    p.add_argument(
        "--rate", type=float, default=50.0, help="client actions per second (default 50)"
    )
    p.add_argument(
        "--churn",
        type=float,
        default=0.02,
        help="fraction of actions that are a disconnect + reconnect (default 0.02)",
    )
    p.add_argument(
        "--remote-every",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between remote operations (joins, kicks, ...); 0 for none (default 2)",
    )
    p.add_argument(
        "--dialect",
        choices=["current", "sharded", "legacy", "legacy-lite"],
        default="current",
        help=(
            "what the cluster speaks: current (socket.io 4 + @socket.io/redis-adapter 8.x, "
            "the default), sharded (its createShardedAdapter, Redis 7 sharded pub/sub), "
            "legacy (socket.io 2 + socket.io-redis 5.x), legacy-lite (4.x)"
        ),
    )
    p.add_argument(
        "--node-peer",
        action="store_true",
        help=(
            "add a real Node node of the dialect (socket.io 4.8 + redis-adapter 8.3, or "
            "socket.io 2.5 + socket.io-redis 5.4; needs node and npm)"
        ),
    )
    redis = p.add_mutually_exclusive_group()
    redis.add_argument(
        "--redis",
        metavar="URL",
        help="use this Redis instead of starting one (a Redis Cluster: add ?cluster=true)",
    )
    redis.add_argument(
        "--redis-cluster",
        action="store_true",
        help=(
            "start a private 3-master Redis Cluster instead of one Redis (needs redis-cli; "
            "the printed URL then ends in ?cluster=true)"
        ),
    )
    p.add_argument(
        "--key",
        "--prefix",
        dest="key",
        default="socket.io",
        help="the cluster's channel prefix (default socket.io)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for repeatable traffic")
    p.add_argument(
        "--duration",
        type=seconds_arg,
        default=None,
        metavar="S",
        help="stop after S seconds (default: run until Ctrl-C)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--headless",
        action="store_true",
        help="plain status lines, no live display (for scripts, tests and notebooks)",
    )
    mode.add_argument(
        "--with-tui",
        action="store_true",
        help="open 'siotools tui' on the cluster; quitting it stops the cluster",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the demo and block until it is stopped."""
    from siotools.cli.options import check_url
    from siotools.demo import DemoCluster

    # Validate the arguments before starting anything.
    if args.redis is not None:
        check_url(args.redis, "--redis")
    demo = DemoCluster(
        nodes=args.nodes,
        clients=args.clients,
        rate=args.rate,
        node_peer=args.node_peer,
        dialect=args.dialect,
        redis_url=args.redis,
        redis_cluster=args.redis_cluster,
        key=args.key,
        churn=args.churn,
        remote_interval=args.remote_every,
        seed=args.seed,
    )
    logging.basicConfig(level=logging.WARNING, format="siotools demo: %(message)s")
    # The adapters log Redis hiccups; during a demo they would only scroll the screen.
    logging.getLogger("siotools").setLevel(logging.CRITICAL)
    return asyncio.run(_main(demo, args))


async def _main(demo: Any, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deadline = None if args.duration is None else loop.time() + args.duration
    # The TUI needs a terminal; from a script or CI, fall back to the headless run.
    tui = args.with_tui and _has_tui() and sys.stdin.isatty() and sys.stdout.isatty()
    out = sys.stdout

    def say(msg: str) -> None:
        if msg != "ready":
            print(f"siotools demo: {msg}", file=out, flush=True)

    try:
        # Redis first, whatever the deadline: its URL is the one thing a caller needs.
        await demo.start_redis(progress=say)
        starting = asyncio.create_task(demo.start(progress=say))
        done = await _first(starting, stop, deadline)
        if not done:
            # Stopped (Ctrl-C or --duration) while starting: undo what started so far.
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
            return 0
        starting.result()
        _banner(demo, out, tui=tui, tui_asked=args.with_tui)
        if tui:
            await _run_tui(demo, stop)
        else:
            await _status_loop(demo, stop, deadline, live=not args.headless and out.isatty())
    finally:
        await demo.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        print("siotools demo: stopped.", file=out, flush=True)
    return 0


async def _first(task: asyncio.Task[Any], stop: asyncio.Event, deadline: float | None) -> bool:
    """Wait for ``task``; False when ``stop`` is set or ``deadline`` passes first."""
    stopper = asyncio.create_task(stop.wait())
    timeout = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
    try:
        await asyncio.wait({task, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    return task.done()


def _banner(demo: Any, out: Any, *, tui: bool, tui_asked: bool) -> None:
    print(f"siotools demo: the cluster is running (key {demo.key!r}):", file=out)
    for line in demo.describe():
        print(f"  {line}", file=out)
    command, note = siotools_command()
    target = (
        f"--url {shlex.quote(demo.shown_url)} --prefix {shlex.quote(demo.key)} "
        f"--dialect {demo.dialect.value}"
    )
    print("Try, in another terminal:", file=out)
    print(f"  {command} rooms {target} --nsp /chat", file=out)
    print(f"  {command} tui {target}", file=out)
    if note:
        print(f"  ({note})", file=out)
    if tui_asked and not tui:
        print(
            "No TUI here (not a terminal, or the tui extra is missing): running headless.",
            file=out,
        )
    if not tui:
        print("Press Ctrl-C to stop.", file=out, flush=True)


async def _status_loop(
    demo: Any, stop: asyncio.Event, deadline: float | None, *, live: bool
) -> None:
    loop = asyncio.get_running_loop()
    every = 2.0 if live else 10.0
    last = time.monotonic()
    display: Any = None
    if live:
        from rich.console import Console
        from rich.live import Live

        display = Live(console=Console(), refresh_per_second=1, transient=True)
        display.start()
    try:
        while not stop.is_set():
            left = every if deadline is None else min(every, deadline - loop.time())
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await wait_for(stop.wait(), left)
            line = demo.stats.summary(len(demo.connected_clients()))
            if display is not None:
                display.update(f"[bold]siotools demo[/]  {line}")
            elif time.monotonic() - last >= every - 0.01:
                last = time.monotonic()
                print(f"{time.strftime('%H:%M:%S')}  {line}", flush=True)
    finally:
        if display is not None:
            display.stop()


def siotools_command() -> tuple[str, str | None]:
    """How to run ``siotools`` from a shell here, and a note when it is not on PATH.

    The demo often runs from a venv that is not activated (``make demo``): the bare name
    would then not be found, so the hint gives the path of the venv's script.
    """
    script = Path(sys.executable).parent / "siotools"
    found = shutil.which("siotools")
    if found is not None and (not script.exists() or Path(found).resolve() == script.resolve()):
        return "siotools", None
    if script.exists():
        try:
            shown = str(script.relative_to(Path.cwd()))
        except ValueError:
            shown = str(script)
        venv = script.parent.parent
        return shlex.quote(shown), (
            f"siotools is not on PATH: activate the venv (source {venv}/bin/activate) to type "
            "just 'siotools', or install it with pip install 'siotools[all]'"
        )
    return f"{shlex.quote(sys.executable)} -m siotools", None


def _has_tui() -> bool:
    """Whether this installation has the ``tui`` subcommand."""
    from siotools.cli._base import build_parser

    return "tui" in build_parser().commands


async def _run_tui(demo: Any, stop: asyncio.Event) -> None:
    """Run ``siotools tui`` on the cluster in a child process that owns the terminal."""
    argv = [
        sys.executable, "-m", "siotools", "tui", "--prefix", demo.key,
        "--dialect", demo.dialect.value,
    ]  # fmt: skip
    # The URL goes by environment, not argv: a password in it stays out of ps.
    env = {**os.environ, "SIOTOOLS_URL": demo.redis_url}
    proc = await asyncio.create_subprocess_exec(*argv, env=env)
    waiter = asyncio.create_task(proc.wait())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not waiter.done():
        proc.terminate()
        try:
            await wait_for(waiter, 5)
        except TimeoutError:
            proc.kill()
            await waiter
