"""``siotools sniff``: watch what a Socket.IO cluster says on Redis, passively.

One line per frame (time, sender uid, namespace, rooms, event, short args), JSON lines
with ``--json``, or per-room / per-event rates with ``--stats`` (a live table on a
terminal, a line per window elsewhere). After a few seconds without a single frame it says
which prefixes this Redis does carry. Ctrl-C stops cleanly and prints a summary on stderr.

Sharded pub/sub (the 8.x sharded adapter) has no pattern subscriptions, so the default
PSUBSCRIBE cannot hear it. On such a prefix sniff says so in one sentence and exits 2
(when classic nodes share the prefix, it says so and goes on with what PSUBSCRIBE sees),
unless one mode is chosen: ``--monitor`` (MONITOR on the Redis, or on every master and
replica of a Redis Cluster: costly), ``--ssubscribe`` (SSUBSCRIBE every sharded channel: counted by
SHARDNUMSUB, so the nodes' requests time out) or ``--discover`` (the sharded channels per
master with their SHARDNUMSUB counts, refreshed every ``--interval``; no payloads).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from siotools.cli.options import (
    ClusterOptions,
    add_cluster_options,
    add_stream_count,
    check_stream_count,
    count_arg,
    json_text,
    seconds_arg,
)
from siotools.exceptions import ConfigurationError, SiotoolsError

__all__ = ["register", "run"]

_OPTIONS = ClusterOptions(
    nsp_default=None, nsp_help="only this namespace", dialect=False, json="one JSON object per line"
)
QUIET_AFTER = 5.0
"""Seconds without a frame before sniff says what this Redis does carry."""
_KIND_STYLE = {
    "broadcast": "cyan",
    "request": "yellow",
    "response": "green",
    "heartbeat": "dim",
    "unknown": "red",
}


def register(sub: Any) -> None:
    """Add the ``sniff`` subcommand to ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "sniff",
        help="decode a cluster's Redis traffic, passively",
        description=(
            "Watch the Socket.IO Redis adapter traffic of one prefix. Passive: one connection "
            "with PSUBSCRIBE only (never counted by PUBSUB NUMSUB), or MONITOR with --monitor. "
            "Sharded pub/sub (8.x sharded adapter) needs --monitor, --ssubscribe or --discover; "
            "--url ...?cluster=true names a Redis Cluster (every master is looked at)."
        ),
    )
    add_cluster_options(p, _OPTIONS)
    p.add_argument("--room", help="only frames targeting this room")
    p.add_argument("--event", help="only this event")
    p.add_argument("--kind", choices=["broadcast", "request", "response"], help="only this kind")
    p.add_argument("--count", type=count_arg, metavar="N", help="stop after N frames")
    p.add_argument("--duration", type=seconds_arg, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--output",
        metavar="FILE",
        help="also save the raw frames (.parquet needs the notebook extra; .jsonl does not; "
        "a folder, or --rotate, streams rolling parquet files there)",
    )
    p.add_argument(
        "--rotate",
        metavar="SIZE",
        help="with --output FOLDER: a new parquet file every SIZE of payloads (default 256MB)",
    )
    p.add_argument("--stats", action="store_true", help="a per-room / per-event rate table")
    p.add_argument(
        "--interval",
        type=seconds_arg,
        default=2.0,
        metavar="S",
        help="seconds between --stats tables or --discover listings (default 2)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--monitor",
        action="store_true",
        help="use MONITOR to see sharded SPUBLISH traffic, on every master and replica of a "
        "Redis Cluster (costly for the Redis server)",
    )
    mode.add_argument(
        "--ssubscribe",
        action="store_true",
        help="also SSUBSCRIBE every sharded channel of the prefix (counted by PUBSUB "
        "SHARDNUMSUB: the nodes' requests wait for the sniffer and time out)",
    )
    mode.add_argument(
        "--discover",
        action="store_true",
        help="list the prefix's sharded channels per master with their SHARDNUMSUB counts, "
        "every --interval seconds (no payloads; --count N stops after N listings)",
    )
    p.add_argument(
        "--stream",
        metavar="KEY",
        help="also read this Redis stream (@socket.io/redis-streams-adapter's streamName, "
        "e.g. socket.io) with XREAD from $; passive, nothing counts a stream reader",
    )
    add_stream_count(p)
    p.add_argument(
        "--since",
        metavar="ID",
        help="with --stream: first show the entries already in the stream from this id "
        "(XRANGE; '-' for all of them)",
    )
    p.add_argument(
        "--pysocketio",
        nargs="?",
        const="socketio",
        metavar="CHANNEL",
        help="also watch python-socketio's channel (default name: socketio)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Sniff until ``--count``/``--duration`` or Ctrl-C; returns the exit status."""
    args.folder = bool(args.output) and (
        args.rotate is not None or Path(args.output).is_dir() or args.output.endswith("/")
    )
    if args.rotate is not None:
        from siotools.sniffer.store import parse_size

        if not args.output:
            raise ConfigurationError("--rotate needs --output FOLDER (where the files go)")
        parse_size(args.rotate)
    if args.since is not None and args.stream is None:
        raise ConfigurationError("--since needs --stream KEY (the stream to backfill from)")
    check_stream_count(args)
    if args.output:
        out = Path(args.output)
        if not out.parent.is_dir():
            raise ConfigurationError(f"the folder of --output {args.output!r} does not exist")
        if args.folder and out.exists() and not out.is_dir():
            raise ConfigurationError(f"--output {args.output!r} is a file, not a folder")
        if args.folder or out.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
            from siotools._extras import require

            require("pyarrow", "notebook")
    # The sniffer prints these itself, once, as one line.
    warnings.filterwarnings("ignore", "MONITOR makes|SSUBSCRIBE is counted", RuntimeWarning)
    if args.discover:
        if args.output:
            raise ConfigurationError("--discover sees no payloads: there is nothing to --output")
        return asyncio.run(_discover(args))
    return asyncio.run(_sniff(args))


async def _discover(args: argparse.Namespace) -> int:
    """``--discover``: the sharded channels per master, every ``--interval`` seconds."""
    from rich.console import Console

    from siotools.sniffer import DISCOVER_NOTE, watch_shards

    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    err.print(f"siotools sniff: {DISCOVER_NOTE}", markup=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    looks = 0

    def lost(exc: BaseException) -> None:
        err.print(f"siotools sniff: {exc}", markup=False)

    async def show() -> None:
        nonlocal looks
        agen = watch_shards(args.url, args.prefix, interval=args.interval, on_error=lost)
        async with contextlib.aclosing(agen):
            async for found in agen:
                looks += 1
                if args.json:
                    sys.stdout.write(json_text(found.as_json()) + "\n")
                    sys.stdout.flush()
                else:
                    stamp = time.strftime("%H:%M:%S", time.localtime(found.at))
                    lines = found.lines()
                    out.print(f"{stamp} {lines[0]}", markup=False)
                    for line in lines[1:]:
                        out.print(line, markup=False)
                if args.count is not None and looks >= args.count:
                    return

    task = asyncio.create_task(show())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, timeout=args.duration, return_when="FIRST_COMPLETED")
    finally:
        for t in (task, stopper):
            if not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    return 0


class _Stats:
    """Counters for the summary and the rate table."""

    def __init__(self, window: float = 5.0) -> None:
        self.frames = 0
        self.shown = 0
        self.bytes = 0
        self.undecodable = 0
        self.families: collections.Counter[str] = collections.Counter()
        self.rooms: collections.Counter[str] = collections.Counter()
        self.events: collections.Counter[str] = collections.Counter()
        self.rooms_total: collections.Counter[str] = collections.Counter()
        self.events_total: collections.Counter[str] = collections.Counter()
        self.pending: dict[Any, int] = {}
        self.unanswered = 0
        self.window_ns = int(window * 1e9)
        self.started = time.monotonic()
        self.gaps: list[tuple[int, int]] = []

    def add(self, f: Any) -> None:
        from siotools.protocol.safe import text as safe_text
        from siotools.sniffer.frames import dialect_family, expects_response

        self.frames += 1
        self.bytes += f.size
        if f.frame is None:
            self.undecodable += 1
            return
        fam = dialect_family(f.dialect)
        if fam is not None:
            self.families[fam] += 1
        row = f.row
        if row.kind == "broadcast":
            rooms = row.rooms if isinstance(row.rooms, list) and row.rooms else ["<all>"]
            for room in rooms:
                self.rooms[safe_text(str(room))] += 1
            self.events[safe_text(str(row.event))] += 1
        if row.kind == "response" and row.request_id is not None:
            self.pending.pop(_key(row.request_id), None)
        elif expects_response(f.frame):
            self.pending.setdefault(_key(row.request_id), f.time_ns)
        if self.frames % 1024 == 0:
            self.expire(time.time_ns())

    def gap(self, start_ns: int, end_ns: int) -> None:
        """A reconnect's gap; called again with the same start when its end moves."""
        if self.gaps and self.gaps[-1][0] == start_ns:
            self.gaps[-1] = (start_ns, end_ns)
        else:
            self.gaps.append((start_ns, end_ns))

    def expire(self, now_ns: int) -> None:
        old = [k for k, t in self.pending.items() if now_ns - t > self.window_ns]
        for k in old:
            del self.pending[k]
        self.unanswered += len(old)

    @property
    def mixed(self) -> bool:
        return len(self.families) > 1


def _key(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


async def _sniff(args: argparse.Namespace) -> int:
    from rich.console import Console

    from siotools.sniffer import SSUBSCRIBE_WARNING, Capture, ShardedPubSubError, SniffFilter, sniff
    from siotools.sniffer.live import MONITOR_WARNING
    from siotools.sniffer.sharded import ShardedNotice, sharded_sentence

    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if args.stream is None:
        from siotools.sniffer.streams import is_stream

        # The streams adapter's default streamName is the default prefix: a stream under
        # the prefix's own name is its stream, read it too.
        with contextlib.suppress(SiotoolsError):
            if await is_stream(args.url, args.prefix):
                args.stream = args.prefix
                err.print(f"reading stream {args.prefix!r} too (XREAD)", markup=False)
    flt = SniffFilter(nsp=args.nsp, room=args.room, event=args.event, kind=args.kind)
    stats = _Stats()
    saved = (
        Capture(prefix=args.prefix, pysocketio=args.pysocketio or False) if args.output else None
    )
    if saved is not None and args.folder:
        saved.stream_to(args.output, args.rotate)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    if args.monitor:
        err.print(f"[yellow]warning:[/] {MONITOR_WARNING}", markup=True)
    if args.ssubscribe:
        err.print(f"[yellow]warning:[/] {SSUBSCRIBE_WARNING}", markup=True)

    def notice(text: str) -> None:
        if isinstance(text, ShardedNotice):  # classic nodes share the prefix: say it in flags
            text = sharded_sentence(text.found, cli=True)
        err.print(f"siotools sniff: {text}", markup=False)

    ready = asyncio.Event()
    json_lines = args.json
    show_lines = not args.stats or json_lines

    async def consume() -> None:
        agen = sniff(
            args.url,
            args.prefix,
            pysocketio=args.pysocketio or False,
            monitor=args.monitor,
            ssubscribe=args.ssubscribe,
            on_notice=notice,
            duration=args.duration,
            on_ready=ready.set,
            on_gap=stats.gap,
            stream=args.stream,
            since=args.since,
            stream_count=args.stream_count,
        )
        # Filtering here rather than in sniff(): the summary counts every frame seen
        # (an undecodable frame matches no filter but is still worth reporting).
        async with contextlib.aclosing(agen):
            await _print_frames(agen)

    async def _print_frames(agen: Any) -> None:
        async for f in agen:
            stats.add(f)
            if not flt.empty and not flt(f):
                continue
            stats.shown += 1
            if saved is not None:
                saved.append(
                    f.time_ns, f.channel.encode("utf-8", "surrogateescape"), f.payload, f.sharded
                )
                if args.folder:
                    await saved.flush_if_due()
            if not show_lines:
                continue
            if json_lines:
                sys.stdout.write(json_text(_as_json(f)) + "\n")
            else:
                out.print(_as_text(f))
            if args.count is not None and stats.shown >= args.count:
                break
        if json_lines:
            sys.stdout.flush()

    view: _RateView | None = None

    async def table_loop() -> None:
        nonlocal view
        await ready.wait()
        view = _RateView(err if json_lines else out, stats, args.interval)
        while True:
            await asyncio.sleep(args.interval)
            view.tick()

    async def quiet_watch() -> None:
        # Silence usually means a wrong --prefix or the wrong Redis: say what is there.
        await ready.wait()
        await asyncio.sleep(QUIET_AFTER)
        if stats.frames:
            return
        from siotools.discovery import discover
        from siotools.sniffer.live import patterns_for
        from siotools.transport.cluster import parse_cluster_url

        own = 0 if args.monitor else len(patterns_for(args.prefix, args.pysocketio))
        try:
            # On a Redis Cluster: the seed node (the sniffer's patterns are on one master).
            found = await discover(parse_cluster_url(args.url)[0], own_patterns=own)
        except SiotoolsError as exc:
            found_text = f"could not look at what this Redis carries ({exc})"
        else:
            found_text = found.describe()
        err.print(
            f"siotools sniff: no frame under prefix {args.prefix!r} in {QUIET_AFTER:g}s; "
            f"{found_text.rstrip('.')}. Still listening.",
            markup=False,
        )

    task = asyncio.create_task(consume())
    ticker = asyncio.create_task(table_loop()) if args.stats else None
    quiet = asyncio.create_task(quiet_watch())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopper, ticker, quiet):
            if t is not None and not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        if view is not None:
            view.stop()
    if task.done() and not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        if isinstance(exc, ShardedPubSubError):
            raise ConfigurationError(sharded_sentence(exc.found, cli=True)) from None
        raise exc  # type: ignore[misc]
    if saved is not None:
        saved.stopped_ns = time.time_ns()
        saved.gaps = list(stats.gaps)
        if args.folder:
            await saved.close_stream()
        else:
            saved.save(args.output)
    _summary(err, stats, args, saved is not None)
    return 0


def _short(value: Any, width: int = 60) -> str:
    from siotools.sniffer.frames import jsonable

    text = json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def _as_text(f: Any) -> Any:
    from rich.text import Text

    from siotools.protocol.safe import text as safe

    stamp = time.strftime("%H:%M:%S", time.localtime(f.time_ns / 1e9))
    stamp += f".{f.time_ns // 1_000_000 % 1000:03d}"
    if f.frame is None:
        return Text.assemble(
            (stamp, "dim"), " ", ("undecodable", "bold red"), f" {safe(f.channel)} ",
            (f"{f.size}B ", "dim"), (safe(str(f.error)), "red"),
        )  # fmt: skip
    row = f.row
    rooms = ",".join(map(str, row.rooms)) if isinstance(row.rooms, list) and row.rooms else "*"
    rooms = safe(rooms)
    what = row.event if row.event is not None else row.type
    parts: list[Any] = [
        (stamp, "dim"),
        " ",
        (f"{row.kind:<9}", _KIND_STYLE.get(row.kind, "")),
        " ",
        (safe(str(row.uid or "-")), "magenta"),
        " ",
        (safe(str(row.nsp)), "blue"),
        " ",
        (rooms, "bold"),
        " ",
        (safe(str(what)), "bold cyan"),
    ]
    if row.request_id is not None:
        parts += [" ", (safe(f"#{row.request_id}"), "dim")]
    if row.args is not None and row.args != []:
        parts += [" ", _short(row.args)]
    return Text.assemble(*parts)


def _as_json(f: Any) -> dict[str, Any]:
    from siotools.sniffer.frames import jsonable

    row = f.row
    out: dict[str, Any] = jsonable(
        {
            "time": f.time.isoformat(),
            "channel": f.channel,
            "kind": row.kind,
            "dialect": f.dialect.value if f.dialect is not None else None,
            "nsp": row.nsp,
            "rooms": row.rooms,
            "except": row.except_,
            "event": row.event,
            "args": row.args,
            "flags": row.flags,
            "uid": row.uid,
            "request_id": row.request_id,
            "type": row.type,
            "size": f.size,
            "error": f.error,
        }
    )
    return out


class _RateView:
    """The ``--stats`` view: a live table on a terminal, one plain line per window elsewhere.

    Each row shows a room or an event with its rate over the last window ("now") and its
    count since the start ("total"); the totals include every window, the last partial one
    too, so the final table agrees with the summary.
    """

    def __init__(self, console: Any, stats: _Stats, interval: float) -> None:
        self.console = console
        self.stats = stats
        self.interval = interval
        self.window_started = time.monotonic()
        self.live: Any = None
        if console.is_terminal:
            from rich.live import Live

            self.live = Live(console=console, auto_refresh=False, transient=False)
            self.live.start()

    def tick(self) -> None:
        """Close the current window: fold it into the totals and show it."""
        stats = self.stats
        now = time.monotonic()
        span = max(now - self.window_started, 1e-9)
        self.window_started = now
        rooms = stats.rooms.most_common(10)
        events = stats.events.most_common(10)
        window = sum(stats.events.values())
        stats.rooms_total.update(stats.rooms)
        stats.events_total.update(stats.events)
        stats.rooms.clear()
        stats.events.clear()
        if self.live is not None:
            self.live.update(self._table(rooms, events, window, span), refresh=True)
        else:
            self.console.print(self._line(rooms, events, window, span))

    def stop(self) -> None:
        """Show the last (partial) window and leave the final table on screen."""
        self.tick()
        if self.live is not None:
            self.live.stop()

    def _heading(self, window: int, span: float) -> str:
        total = sum(self.stats.events_total.values())
        elapsed = time.monotonic() - self.stats.started
        return (
            f"broadcasts: last {span:.1f}s {window:,} ({window / span:,.1f} msg/s) · "
            f"total {total:,} in {elapsed:.1f}s · {self.stats.frames:,} frames of every kind"
        )

    def _table(
        self, rooms: list[tuple[str, int]], events: list[tuple[str, int]], window: int, span: float
    ) -> Any:
        from rich.table import Table

        table = Table(title=self._heading(window, span), title_justify="left", expand=False)
        for name in ("room", "msg/s now", "total", "event", "msg/s now", "total"):
            table.add_column(name, justify="left" if name in ("room", "event") else "right")
        # Rows are the busiest of the window; a room quiet now still counts in its total.
        for i in range(max(len(rooms), len(events), 1)):
            r = rooms[i] if i < len(rooms) else None
            e = events[i] if i < len(events) else None
            table.add_row(
                r[0] if r else "",
                f"{r[1] / span:,.1f}" if r else "",
                f"{self.stats.rooms_total[r[0]]:,}" if r else "",
                e[0] if e else "",
                f"{e[1] / span:,.1f}" if e else "",
                f"{self.stats.events_total[e[0]]:,}" if e else "",
            )
        return table

    def _line(
        self, rooms: list[tuple[str, int]], events: list[tuple[str, int]], window: int, span: float
    ) -> Any:
        from rich.text import Text

        def top(kind: str, rows: list[tuple[str, int]], totals: Any) -> str:
            items = [f"{n} {c / span:,.1f} msg/s (total {totals[n]:,})" for n, c in rows[:5]]
            return f"{kind}: " + (", ".join(items) or "none")

        stamp = time.strftime("%H:%M:%S")
        return Text(
            f"{stamp} {self._heading(window, span)} | "
            f"{top('room', rooms, self.stats.rooms_total)} | "
            f"{top('event', events, self.stats.events_total)}"
        )


def _summary(console: Any, stats: _Stats, args: argparse.Namespace, saved: bool) -> None:
    elapsed = time.monotonic() - stats.started
    stats.expire(time.time_ns())
    rate = stats.frames / elapsed if elapsed > 0 else 0.0
    fams = ", ".join(f"{k} {v}" for k, v in stats.families.most_common()) or "none"
    line = (
        f"siotools sniff: {stats.frames:,} frames ({stats.bytes:,} bytes) in {elapsed:.1f}s "
        f"({rate:,.0f}/s), {stats.shown:,} shown; undecodable {stats.undecodable}; "
        f"unanswered requests {stats.unanswered}; dialects: {fams}"
    )
    if stats.mixed:
        line += " [bold red](two dialect families on one prefix!)[/]"
    if stats.gaps:
        missed = sum(b - a for a, b in stats.gaps) / 1e9
        spans = ", ".join(
            f"{time.strftime('%H:%M:%S', time.localtime(a / 1e9))}+{(b - a) / 1e9:.3f}s"
            for a, b in stats.gaps[:5]
        )
        line += (
            f"; [bold yellow]reconnects {len(stats.gaps)}, {missed:.3f}s of traffic missed[/]"
            f" ({spans})"
        )
    if saved:
        line += f"; saved to {args.output}"
    console.print(line, markup=True)
