"""Scriptable cluster operations: ``siotools rooms``, ``clients``, ``join``, ``emit``, ...

Every command talks to the cluster through :class:`siotools.ClusterClient`: it needs the
cluster's Redis (``--url``) and channel prefix (``--key``/``--prefix``), never a node.
Output is a table, or JSON with ``--json``. Exit status: 0 ok, 1 timeout or not found
(an emit where no node serves the namespace too), 2 usage or connection error, 3 an emit
that no socket received; failures print one sentence on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from siotools.cli._base import EXIT_FAILED, EXIT_NOBODY, EXIT_OK, say
from siotools.cli.options import (
    ClusterOptions,
    add_cluster_options,
    cluster_client,
    count_arg,
    json_text,
)
from siotools.dialects import SPOKEN
from siotools.exceptions import ConfigurationError, RequestError, RequestTimeout, SocketNotFound
from siotools.protocol import safe

__all__ = ["register"]

_OPTIONS = ClusterOptions(timeout=2.0)


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    add_cluster_options(p, _OPTIONS)
    return p


def register(sub: Any) -> None:
    """Add the cluster operation subcommands to ``sub``."""
    common = [_common()]

    def add(name: str, help_: str, func: Callable[[argparse.Namespace], int]) -> Any:
        description = help_[0].upper() + help_[1:] + "."
        p = sub.add_parser(name, help=help_, description=description, parents=common)
        p.set_defaults(func=func)
        return p

    add("rooms", "list the named rooms of a namespace and their socket counts", _rooms)
    p = add("clients", "list the socket ids of a namespace (or of some rooms)", _clients)
    p.add_argument(
        "--room", action="append", default=[], metavar="ROOM", help="only sockets in ROOM"
    )
    p = add(
        "sockets",
        "list the sockets of a namespace with their rooms and data (fetchSockets)",
        _sockets,
    )
    p.add_argument(
        "--room", action="append", default=[], metavar="ROOM", help="only sockets in ROOM"
    )
    p.add_argument(
        "--except",
        dest="except_rooms",
        action="append",
        default=[],
        metavar="ROOM",
        help="leave out the sockets in ROOM",
    )
    p = add("client-rooms", "list the rooms of one socket", _client_rooms)
    p.add_argument("sid", metavar="SID")
    p = add("join", "make a socket join a room, on whichever node has it", _join)
    p.add_argument("sid", metavar="SID")
    p.add_argument("room", metavar="ROOM")
    p = add("leave", "make a socket leave a room, on whichever node has it", _leave)
    p.add_argument("sid", metavar="SID")
    p.add_argument("room", metavar="ROOM")
    p = add("disconnect", "disconnect a socket, on whichever node has it", _disconnect)
    p.add_argument("sid", metavar="SID")
    p.add_argument(
        "--close", action="store_true", help="close the whole connection, every namespace"
    )
    p = add("emit", "broadcast an event to a namespace or to rooms", _emit)
    p.epilog = (
        f"Exit status {EXIT_NOBODY} (after emitting) when the rooms or the namespace hold "
        f"no socket, so nobody received the event; {EXIT_FAILED} (nothing emitted) when no "
        "node serves the namespace; 0 when someone did or when not every node answered in "
        "time to tell."
    )
    p.add_argument("event", metavar="EVENT")
    p.add_argument(
        "args", nargs="*", metavar="JSON_ARG", help="arguments, each a JSON value: 42 '\"hi\"'"
    )
    p.add_argument(
        "--room", action="append", default=[], metavar="ROOM", help="only to ROOM (repeatable)"
    )
    p.add_argument(
        "--stream",
        default=None,
        metavar="KEY",
        help="--dialect streams: the adapter's streamName (default socket.io)",
    )
    p.add_argument(
        "--stream-count",
        type=count_arg,
        default=None,
        metavar="N",
        help="--dialect streams: the adapter's 0.3 streamCount (default 1)",
    )
    p = add("custom-request", "send a custom request and show every node's reply", _custom)
    p.add_argument("data", metavar="JSON", help="the request data, a JSON value")


# ---------------------------------------------------------------------- plumbing


def _run(
    args: argparse.Namespace, body: Callable[[Any], Awaitable[Any]], render: Callable[[Any], None]
) -> int:
    _output(args, _query(args, body), render)
    return EXIT_OK


def _query(args: argparse.Namespace, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Connect a cluster client, run ``body`` with it, close it; ``body``'s result."""

    async def main() -> Any:
        cluster = cluster_client(args)
        try:
            await cluster.connect()
            return await body(cluster)
        finally:
            await cluster.close()

    return asyncio.run(main())


def _output(args: argparse.Namespace, result: Any, render: Callable[[Any], None]) -> None:
    if args.json:
        # Room names and replies are whatever the cluster holds (lone surrogates, bytes that
        # are not UTF-8, NaN, deep nesting): json_text prints valid JSON for all.
        sys.stdout.write(json_text(result) + "\n")
    else:
        render(result)


def _not_json(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")


def _parse_json(text: str, what: str) -> Any:
    try:
        # NaN and Infinity are Python's extensions, not JSON: no Node peer could read them.
        return json.loads(text, parse_constant=_not_json)
    except ValueError:
        raise ConfigurationError(
            f"{what} {text!r} is not JSON (quote strings: '\"hello\"')"
        ) from None


async def _require_nodes(cluster: Any, nsp: str, then: str = "") -> int:
    count: int = await cluster.node_count(nsp)
    if count == 0:
        raise RequestError(f"No node serves namespace {nsp} under prefix {cluster.prefix!r}{then}")
    return count


def _partial(exc: RequestTimeout, args: argparse.Namespace, what: str) -> RequestError:
    expected = f" of {exc.expected}" if exc.expected is not None else ""
    nodes = _noun(exc.expected if exc.expected is not None else exc.answered, "node")
    return RequestError(
        f"Only {exc.answered}{expected} {nodes} answered the {what} request in {args.nsp} "
        f"within {args.timeout:g}s"
    )


def _noun(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _count(n: int, word: str) -> str:
    """``1 node``, ``2 nodes``."""
    return f"{n} {_noun(n, word)}"


def _no_socket(args: argparse.Namespace) -> RequestError:
    # 4.x/5.x: nobody answers for an unknown socket (a timeout); 8.x: fetchSockets says so.
    return RequestError(
        f"No node has socket {args.sid} in namespace {args.nsp} "
        f"(none answered for it within {args.timeout:g}s)"
    )


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=safe.text(title), title_justify="left")
    for col in columns:
        table.add_column(col, justify="right" if col in ("sockets", "#") else "left")
    for row in rows:
        table.add_row(*(safe.text(str(c)) for c in row))
    Console(soft_wrap=True).print(table)


def _say(text: str) -> None:
    from rich.console import Console

    Console(soft_wrap=True, highlight=False).print(text, markup=False)


# ---------------------------------------------------------------------- commands


def _rooms(args: argparse.Namespace) -> int:
    async def body(cluster: Any) -> list[dict[str, Any]]:
        await _require_nodes(cluster, args.nsp)
        try:
            # One fetchSockets on 8.x; one clients request per room on 4.x/5.x.
            members = await cluster.room_members(namespace=args.nsp, concurrency=8)
        except RequestTimeout as exc:
            raise _partial(exc, args, "room members") from None
        rows = [{"room": r, "sockets": len(sids)} for r, sids in members.items()]
        return sorted(rows, key=lambda row: (-row["sockets"], row["room"]))

    def render(rows: list[dict[str, Any]]) -> None:
        _table(
            f"rooms of {args.nsp} ({len(rows)})",
            ["room", "sockets"],
            [[r["room"], r["sockets"]] for r in rows],
        )

    return _run(args, body, render)


def _clients(args: argparse.Namespace) -> int:
    async def body(cluster: Any) -> list[str]:
        await _require_nodes(cluster, args.nsp)
        try:
            sids: list[str] = await cluster.clients(args.room, namespace=args.nsp)
        except RequestTimeout as exc:
            raise _partial(exc, args, "clients") from None
        return sorted(sids)

    def render(sids: list[str]) -> None:
        where = f"room {', '.join(args.room)} of {args.nsp}" if args.room else args.nsp
        _table(f"sockets in {where} ({len(sids)})", ["sid"], [[s] for s in sids])

    return _run(args, body, render)


def _sockets(args: argparse.Namespace) -> int:
    async def body(cluster: Any) -> list[dict[str, Any]]:
        await _require_nodes(cluster, args.nsp)
        try:
            found = await cluster.fetch_sockets(
                rooms=args.room, except_rooms=args.except_rooms, namespace=args.nsp
            )
        except RequestTimeout as exc:
            raise _partial(exc, args, "fetchSockets") from None
        rows = [
            {
                "id": s.id,
                "rooms": [r for r in s.rooms if r != s.id],
                "data": s.data,
                "handshake": s.handshake,
            }
            for s in found
        ]
        return sorted(rows, key=lambda row: str(row["id"]))

    def render(rows: list[dict[str, Any]]) -> None:
        where = f"room {', '.join(args.room)} of {args.nsp}" if args.room else args.nsp
        # socket.data and the handshake travel on 8.x only (4.x/5.x: ids and rooms).
        with_data = any(r["data"] is not None for r in rows)
        columns = ["sid", "rooms", *(["data"] if with_data else [])]
        table = []
        for r in rows:
            line = [r["id"], ", ".join(str(x) for x in r["rooms"])]
            if with_data:
                line.append(json_text(r["data"]))
            table.append(line)
        _table(f"sockets in {where} ({len(rows)})", columns, table)

    return _run(args, body, render)


def _client_rooms(args: argparse.Namespace) -> int:
    async def body(cluster: Any) -> list[str]:
        await _require_nodes(cluster, args.nsp)
        try:
            rooms: list[str] = await cluster.client_rooms(args.sid, namespace=args.nsp)
        except (RequestTimeout, SocketNotFound):
            raise _no_socket(args) from None
        return rooms

    def render(rooms: list[str]) -> None:
        _table(f"rooms of socket {args.sid} in {args.nsp}", ["room"], [[r] for r in rooms])

    return _run(args, body, render)


def _remote(args: argparse.Namespace, op: str) -> int:
    async def body(cluster: Any) -> dict[str, Any]:
        await _require_nodes(cluster, args.nsp)
        try:
            if op == "join":
                await cluster.remote_join(args.sid, args.room, namespace=args.nsp)
            elif op == "leave":
                await cluster.remote_leave(args.sid, args.room, namespace=args.nsp)
            else:
                await cluster.remote_disconnect(args.sid, args.close, namespace=args.nsp)
        except (RequestTimeout, SocketNotFound):
            raise _no_socket(args) from None
        result: dict[str, Any] = {"ok": True, "op": op, "sid": args.sid, "nsp": args.nsp}
        if op in ("join", "leave"):
            result["room"] = args.room
        else:
            result["close"] = args.close
        return result

    def render(result: dict[str, Any]) -> None:
        if op == "join":
            _say(f"Socket {args.sid} joined room {args.room} in {args.nsp}.")
        elif op == "leave":
            _say(f"Socket {args.sid} left room {args.room} in {args.nsp}.")
        else:
            how = " and its connection closed" if args.close else ""
            _say(f"Socket {args.sid} was disconnected from {args.nsp}{how}.")

    return _run(args, body, render)


def _join(args: argparse.Namespace) -> int:
    return _remote(args, "join")


def _leave(args: argparse.Namespace) -> int:
    return _remote(args, "leave")


def _disconnect(args: argparse.Namespace) -> int:
    return _remote(args, "disconnect")


def _emit(args: argparse.Namespace) -> int:
    values = [_parse_json(a, "Argument") for a in args.args]
    target = f"room {', '.join(args.room)} of {args.nsp}" if args.room else args.nsp

    async def body(cluster: Any) -> dict[str, Any]:
        # The nodes as the dialect counts them (NUMSUB, or SHARDNUMSUB, summed over the
        # masters of a Redis Cluster, where a PUBLISH reply counts one node's subscribers):
        # with none, nobody can receive the event, so it is not sent.
        nodes = await _require_nodes(
            cluster, args.nsp, f", so nobody could receive {args.event!r} (nothing was sent)"
        )
        # Who is there to receive it, asked before the emit (the same request as
        # `clients`): None when not every node answered, so nobody can say.
        sockets: int | None
        try:
            sockets = len(await cluster.clients(args.room, namespace=args.nsp))
        except RequestTimeout:
            sockets = None
        reached: int = await cluster.emit(args.event, *values, rooms=args.room, namespace=args.nsp)
        if reached == 0 and sockets != 0:
            raise RequestError(
                f"No node received {args.event!r} in {target}: the {_count(nodes, 'node')} "
                "counted a moment before left before it was published"
            )
        return {
            "ok": True,
            "event": args.event,
            "args": values,
            "rooms": args.room,
            "nsp": args.nsp,
            "nodes": nodes,
            "sockets": sockets,
        }

    def render(result: dict[str, Any]) -> None:
        sockets = result["sockets"]
        reach = "socket count unknown" if sockets is None else _count(sockets, "socket")
        nodes = result["nodes"]
        listening = "node count unknown" if nodes is None else f"{_count(nodes, 'node')} listening"
        _say(
            f"Emitted {args.event!r} with {_count(len(values), 'argument')} to {target} "
            f"({listening}, {reach})."
        )

    if args.dialect is not None and args.dialect not in SPOKEN:
        result = asyncio.run(_emit_only(args, values))  # a dialect siotools only emits to
    else:
        result = _query(args, body)
    _output(args, result, render)
    if result["sockets"] != 0:
        return EXIT_OK
    where = f"room {', '.join(args.room)} of {args.nsp}" if args.room else f"namespace {args.nsp}"
    say(f"siotools: {where} is empty (no socket is in it), so nobody received {args.event!r}.")
    return EXIT_NOBODY


async def _emit_only(args: argparse.Namespace, values: list[Any]) -> dict[str, Any]:
    """``emit`` through an :class:`~siotools.Emitter` (no cluster client of the dialect):
    the node count as Redis shows it, the socket count unknown (nobody can be asked)."""
    from siotools.emitter import Emitter

    io = Emitter(
        args.url,
        key=args.prefix,
        dialect=args.dialect,
        stream=args.stream,
        stream_count=args.stream_count,
    )
    try:
        nodes = await io.node_count(args.nsp)
        if nodes == 0:  # known: no node reads there (None is unknown, and sent anyway)
            raise RequestError(
                f"No node serves namespace {args.nsp} under prefix {args.prefix!r}, so "
                f"nobody could receive {args.event!r} (nothing was sent)"
            )
        await io.of(args.nsp).to(*args.room).emit(args.event, *values)
    finally:
        await io.close()
    return {
        "ok": True,
        "event": args.event,
        "args": values,
        "rooms": args.room,
        "nsp": args.nsp,
        "nodes": nodes,
        "sockets": None,
    }


def _custom(args: argparse.Namespace) -> int:
    data = _parse_json(args.data, "The request data")

    async def body(cluster: Any) -> list[Any]:
        await _require_nodes(cluster, args.nsp)
        try:
            replies: list[Any] = await cluster.custom_request(data, namespace=args.nsp)
        except RequestTimeout as exc:
            raise _partial(exc, args, "customRequest") from None
        return replies

    def render(replies: list[Any]) -> None:
        rows = [[i + 1, json_text(r)] for i, r in enumerate(replies)]
        _table(f"custom request replies in {args.nsp} ({len(replies)})", ["#", "reply"], rows)

    return _run(args, body, render)
