"""What the TUI asks the cluster, through the public :class:`siotools.ClusterClient` API only.

:class:`ClusterAPI` is the slice of ``ClusterClient`` the console uses; ``ClusterClient``
satisfies it structurally. The behaviour tests and the CLI pass a real ``ClusterClient``; the
snapshot tests and the scale bench pass a labelled fake with the same methods.

Nothing here imports Textual: the loaders and the action runners are plain asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from siotools.dialects.base import RemoteSocket
from siotools.exceptions import RedisUnavailableError, RequestTimeout
from siotools.protocol import Dialect

__all__ = [
    "ClusterAPI",
    "NamespaceData",
    "NamespaceSummary",
    "Outcome",
    "Shortfall",
    "load_namespace",
    "load_summaries",
    "run_bulk",
    "run_one",
]


class ClusterAPI(Protocol):
    """The ``ClusterClient`` methods the TUI calls."""

    prefix: str
    dialect: Dialect
    requests_timeout: float

    @property
    def url(self) -> str: ...

    async def connect(self) -> Any: ...

    async def close(self) -> None: ...

    async def namespaces(self) -> list[str]: ...

    async def node_counts(self) -> dict[str, int]: ...

    async def clients(
        self, rooms: Iterable[str] | None = None, *, namespace: str = "/"
    ) -> list[str]: ...

    async def all_rooms(self, *, namespace: str = "/") -> list[str]: ...

    async def room_members(
        self,
        rooms: Iterable[str] | None = None,
        *,
        namespace: str = "/",
        concurrency: int = 32,
    ) -> dict[str, list[str]]: ...

    async def client_rooms(self, sid: str, *, namespace: str = "/") -> list[str]: ...

    async def fetch_sockets(
        self,
        *,
        rooms: Iterable[Any] | None = None,
        except_rooms: Iterable[Any] | None = None,
        namespace: str = "/",
    ) -> list[RemoteSocket]: ...

    async def remote_join(self, sid: str, room: str, *, namespace: str = "/") -> None: ...

    async def remote_leave(self, sid: str, room: str, *, namespace: str = "/") -> None: ...

    async def remote_disconnect(
        self, sid: str, close: bool = False, *, namespace: str = "/"
    ) -> None: ...

    async def emit(
        self,
        event: str,
        *args: Any,
        rooms: Iterable[str] = (),
        except_: Iterable[str] = (),
        namespace: str = "/",
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Not every node answered: ``answered`` of ``expected`` (None: first-reply request)."""

    answered: int
    expected: int | None

    def __str__(self) -> str:
        if self.expected is None:
            return "no node answered"
        return f"{self.answered} of {self.expected} nodes answered"

    @classmethod
    def of(cls, exc: RequestTimeout) -> Shortfall:
        return cls(exc.answered, exc.expected)


@dataclass(slots=True)
class NamespaceData:
    """One namespace as the cluster reported it on one refresh.

    Attributes:
        namespace: The namespace.
        sockets: Every socket id, sorted.
        members: Named room -> its socket ids (socket-id rooms left out).
        shortfall: Set when some node did not answer; the data is then partial.
    """

    namespace: str
    sockets: list[str]
    members: dict[str, list[str]]
    shortfall: Shortfall | None = None
    _by_socket: dict[str, list[str]] | None = field(default=None, repr=False)

    def socket_rooms(self) -> dict[str, list[str]]:
        """Socket id -> its named rooms (sorted), for every socket."""
        if self._by_socket is None:
            by_socket: dict[str, list[str]] = {sid: [] for sid in self.sockets}
            for room in sorted(self.members):
                for sid in self.members[room]:
                    by_socket.setdefault(sid, []).append(room)
            self._by_socket = by_socket
        return self._by_socket


@dataclass(frozen=True, slots=True)
class NamespaceSummary:
    """A row of the namespaces view."""

    namespace: str
    nodes: int
    sockets: int | None
    rooms: int | None
    shortfall: Shortfall | None = None


async def load_namespace(cluster: ClusterAPI, namespace: str) -> NamespaceData:
    """Sockets and named rooms with their members; partial (with a shortfall) on timeouts."""
    shortfall: Shortfall | None = None
    try:
        sockets = await cluster.clients(namespace=namespace)
    except RequestTimeout as exc:
        sockets, shortfall = list(exc.partial or []), Shortfall.of(exc)
    try:
        every = await cluster.all_rooms(namespace=namespace)
    except RequestTimeout as exc:
        every, shortfall = list(exc.partial or []), Shortfall.of(exc)
    ids = set(sockets)
    named = [room for room in every if room not in ids]
    try:
        members = await cluster.room_members(named, namespace=namespace)
    except RequestTimeout as exc:
        members, shortfall = dict(exc.partial or {}), Shortfall.of(exc)
    return NamespaceData(namespace, sorted(sockets), members, shortfall)


async def load_summaries(cluster: ClusterAPI) -> list[NamespaceSummary]:
    """Node, socket and room counts of every namespace that has a node."""
    counts = await cluster.node_counts()

    async def one(namespace: str, nodes: int) -> NamespaceSummary:
        shortfall: Shortfall | None = None
        try:
            sockets = await cluster.clients(namespace=namespace)
        except RequestTimeout as exc:
            sockets, shortfall = list(exc.partial or []), Shortfall.of(exc)
        try:
            every = await cluster.all_rooms(namespace=namespace)
        except RequestTimeout as exc:
            every, shortfall = list(exc.partial or []), Shortfall.of(exc)
        ids = set(sockets)
        rooms = sum(1 for room in every if room not in ids)
        return NamespaceSummary(namespace, nodes, len(sockets), rooms, shortfall)

    return list(await asyncio.gather(*(one(nsp, n) for nsp, n in sorted(counts.items()))))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a mutating action went.

    Attributes:
        ok: Every request was answered.
        summary: One line for the user.
        done: Requests answered.
        failed: Requests that timed out.
    """

    ok: bool
    summary: str
    done: int = 1
    failed: int = 0


async def run_one(what: str, call: Callable[[], Awaitable[None]]) -> Outcome:
    """Run one request; a timeout or a Redis failure becomes a failed :class:`Outcome`."""
    try:
        await call()
    except RequestTimeout as exc:
        return Outcome(False, f"{what}: timeout, {Shortfall.of(exc)}", done=0, failed=1)
    except RedisUnavailableError as exc:
        return Outcome(False, f"{what}: Redis unavailable ({exc})", done=0, failed=1)
    return Outcome(True, f"{what}: ok")


async def run_bulk(
    what: str, calls: list[Callable[[], Awaitable[None]]], *, concurrency: int = 32
) -> Outcome:
    """Run many requests, ``concurrency`` at a time, and count how many timed out."""
    gate = asyncio.Semaphore(concurrency)
    failed = 0
    unavailable: RedisUnavailableError | None = None

    async def one(call: Callable[[], Awaitable[None]]) -> None:
        nonlocal failed, unavailable
        async with gate:
            try:
                await call()
            except RequestTimeout:
                failed += 1
            except RedisUnavailableError as exc:
                failed += 1
                unavailable = exc

    await asyncio.gather(*(one(call) for call in calls))
    done = len(calls) - failed
    if unavailable is not None:
        return Outcome(False, f"{what}: Redis unavailable ({unavailable})", done, failed)
    if failed:
        return Outcome(
            False, f"{what}: {done} ok, {failed} timed out (no node answered)", done, failed
        )
    return Outcome(True, f"{what}: {done} of {len(calls)} ok", done, failed)
