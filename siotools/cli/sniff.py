"""``siotools sniff``: watch what a Socket.IO cluster says on Redis, passively.

One line per frame (time, sender uid, namespace, rooms, event, short args), JSON lines
with ``--json``, or a periodic per-room / per-event rate table with ``--stats``. Ctrl-C
stops cleanly and prints a summary on stderr.
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
from pathlib import Path
from typing import Any

from siotools.exceptions import ConfigurationError

__all__ = ["register", "run"]

_DEFAULT_URL = "redis://127.0.0.1:6379/0"
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
            "with PSUBSCRIBE only (never counted by PUBSUB NUMSUB), or MONITOR with --monitor."
        ),
    )
    p.add_argument("--url", default=_DEFAULT_URL, help=f"Redis URL (default {_DEFAULT_URL})")
    p.add_argument("--prefix", default="socket.io", help="the adapters' key (default socket.io)")
    p.add_argument("--nsp", help="only this namespace")
    p.add_argument("--room", help="only frames targeting this room")
    p.add_argument("--event", help="only this event")
    p.add_argument("--kind", choices=["broadcast", "request", "response"], help="only this kind")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--count", type=_positive_int, metavar="N", help="stop after N frames")
    p.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
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
        type=_positive_float,
        default=2.0,
        metavar="S",
        help="seconds between --stats tables (default 2)",
    )
    p.add_argument(
        "--monitor",
        action="store_true",
        help="use MONITOR to see sharded SPUBLISH traffic (costly for the Redis server)",
    )
    p.add_argument(
        "--pysocketio",
        nargs="?",
        const="socketio",
        metavar="CHANNEL",
        help="also watch python-socketio's channel (default name: socketio)",
    )
    p.set_defaults(func=run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def run(args: argparse.Namespace) -> int:
    """Sniff until ``--count``/``--duration`` or Ctrl-C; returns the exit status."""
    from siotools.transport.endpoint import RedisEndpoint

    RedisEndpoint.from_url(args.url)  # a bad URL is a usage error before anything starts
    args.folder = bool(args.output) and (
        args.rotate is not None or Path(args.output).is_dir() or args.output.endswith("/")
    )
    if args.rotate is not None:
        from siotools.sniffer.store import parse_size

        if not args.output:
            raise ConfigurationError("--rotate needs --output FOLDER (where the files go)")
        parse_size(args.rotate)
    if args.output:
        out = Path(args.output)
        if not out.parent.is_dir():
            raise ConfigurationError(f"the folder of --output {args.output!r} does not exist")
        if args.folder and out.exists() and not out.is_dir():
            raise ConfigurationError(f"--output {args.output!r} is a file, not a folder")
        if args.folder or out.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
            from siotools._extras import require

            require("pyarrow", "notebook")
    return asyncio.run(_sniff(args))


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

    from siotools.sniffer import Capture, SniffFilter, sniff
    from siotools.sniffer.live import MONITOR_WARNING

    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
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

    ready = asyncio.Event()
    json_lines = args.json
    show_lines = not args.stats or json_lines

    async def consume() -> None:
        agen = sniff(
            args.url,
            args.prefix,
            pysocketio=args.pysocketio or False,
            monitor=args.monitor,
            duration=args.duration,
            on_ready=ready.set,
            on_gap=stats.gap,
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
                sys.stdout.write(json.dumps(_as_json(f), ensure_ascii=False, allow_nan=False))
                sys.stdout.write("\n")
            else:
                out.print(_as_text(f))
            if args.count is not None and stats.shown >= args.count:
                break
        if json_lines:
            sys.stdout.flush()

    async def table_loop() -> None:
        await ready.wait()
        while True:
            await asyncio.sleep(args.interval)
            _print_stats(err if json_lines else out, stats, args.interval)

    task = asyncio.create_task(consume())
    ticker = asyncio.create_task(table_loop()) if args.stats else None
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopper, ticker):
            if t is not None and not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
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


def _print_stats(console: Any, stats: _Stats, interval: float) -> None:
    from rich.table import Table

    table = Table(title=f"last {interval:g}s — {stats.frames:,} frames in total", expand=False)
    table.add_column("room")
    table.add_column("msg/s", justify="right")
    table.add_column("total", justify="right")
    table.add_column("event")
    table.add_column("msg/s", justify="right")
    table.add_column("total", justify="right")
    stats.rooms_total.update(stats.rooms)
    stats.events_total.update(stats.events)
    rooms = stats.rooms.most_common(10)
    events = stats.events.most_common(10)
    for i in range(max(len(rooms), len(events), 1)):
        r = rooms[i] if i < len(rooms) else None
        e = events[i] if i < len(events) else None
        table.add_row(
            r[0] if r else "",
            f"{r[1] / interval:,.1f}" if r else "",
            f"{stats.rooms_total[r[0]]:,}" if r else "",
            e[0] if e else "",
            f"{e[1] / interval:,.1f}" if e else "",
            f"{stats.events_total[e[0]]:,}" if e else "",
        )
    stats.rooms.clear()
    stats.events.clear()
    console.print(table)


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
