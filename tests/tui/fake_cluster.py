"""FAKE cluster and FAKE traffic for the snapshot tests only (deterministic pictures).

The behaviour tests run against real nodes; these stand-ins implement the same
:class:`siotools.tui.source.ClusterAPI` methods over fixed in-memory data so that every SVG
snapshot is identical from run to run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from siotools.dialects.base import RemoteSocket
from siotools.exceptions import RequestTimeout
from siotools.protocol import Dialect

FROZEN = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the snapshots' clock


class FakeCluster:
    """FAKE: namespaces, sockets and rooms held in dicts; actions change them."""

    prefix = "socket.io"
    dialect = Dialect.LEGACY
    requests_timeout = 1.0

    def __init__(self, data: dict[str, dict[str, list[str]]], nodes: int = 3) -> None:
        # namespace -> socket id -> named rooms
        self.data = data
        self.nodes = nodes

    @property
    def url(self) -> str:
        return "redis://redis.example:6379/0"

    async def connect(self) -> FakeCluster:
        return self

    async def close(self) -> None:
        return None

    async def namespaces(self) -> list[str]:
        return sorted(self.data)

    async def node_counts(self) -> dict[str, int]:
        return {nsp: self.nodes for nsp in sorted(self.data)}

    async def clients(
        self, rooms: Iterable[str] | None = None, *, namespace: str = "/"
    ) -> list[str]:
        wanted = set(rooms or ())
        sockets = self.data.get(namespace, {})
        return [s for s, r in sockets.items() if not wanted or wanted & {s, *r}]

    async def all_rooms(self, *, namespace: str = "/") -> list[str]:
        sockets = self.data.get(namespace, {})
        return sorted({*sockets, *(room for rs in sockets.values() for room in rs)})

    async def room_members(
        self,
        rooms: Iterable[str] | None = None,
        *,
        namespace: str = "/",
        concurrency: int = 32,
    ) -> dict[str, list[str]]:
        names = list(rooms) if rooms is not None else []
        return {room: await self.clients([room], namespace=namespace) for room in names}

    async def client_rooms(self, sid: str, *, namespace: str = "/") -> list[str]:
        sockets = self.data.get(namespace, {})
        if sid not in sockets:
            raise RequestTimeout("timeout reached while waiting for clientRooms response")
        return [sid, *sockets[sid]]

    async def fetch_sockets(
        self,
        *,
        rooms: Any = None,
        except_rooms: Any = None,
        namespace: str = "/",
    ) -> list[RemoteSocket]:
        sockets = self.data.get(namespace, {})
        wanted = set(rooms or ())
        return [
            RemoteSocket(id=sid, rooms=(sid, *r), nsp=namespace)
            for sid, r in sockets.items()
            if not wanted or wanted & {sid, *r}
        ]

    async def remote_join(self, sid: str, room: str, *, namespace: str = "/") -> None:
        self.data[namespace][sid].append(room)

    async def remote_leave(self, sid: str, room: str, *, namespace: str = "/") -> None:
        self.data[namespace][sid].remove(room)

    async def remote_disconnect(
        self, sid: str, close: bool = False, *, namespace: str = "/"
    ) -> None:
        del self.data[namespace][sid]

    async def emit(
        self,
        event: str,
        *args: Any,
        rooms: Iterable[str] = (),
        except_: Iterable[str] = (),
        namespace: str = "/",
    ) -> None:
        return None


def small_cluster() -> FakeCluster:
    """FAKE data: two namespaces, a handful of sockets and rooms."""
    return FakeCluster(
        {
            "/": {
                "A1b2C3d4E5f6G7h8I9j0": ["lobby", "vip"],
                "B2c3D4e5F6g7H8i9J0k1": ["lobby"],
                "C3d4E5f6G7h8I9j0K1l2": ["lobby", "room:42"],
                "D4e5F6g7H8i9J0k1L2m3": ["vip", "room:42"],
                "E5f6G7h8I9j0K1l2M3n4": [],
            },
            "/chat": {"F6g7H8i9J0k1L2m3N4o5": ["general"]},
        }
    )


@dataclass(frozen=True)
class FakeRow:
    kind: str
    nsp: str | None
    rooms: Any
    event: Any
    args: Any
    uid: Any
    type: str | None


@dataclass(frozen=True)
class FakeFrame:
    """FAKE sniffed frame with the attributes the traffic model reads."""

    time_ns: int
    channel: str
    dialect: Any
    error: str | None
    row: FakeRow


def fake_frames() -> list[FakeFrame]:
    """FAKE traffic: broadcasts to lobby and vip over the 10 s before :data:`FROZEN`."""
    frames = []
    base = int((FROZEN - 10) * 1e9)
    for i in range(40):
        room = "lobby" if i % 3 else "vip"
        t = base + i * 240_000_000
        row = FakeRow("broadcast", "/", [room], "chat", ["hello", {"n": i}], "Xy12ab", "EVENT")
        frames.append(FakeFrame(t, f"socket.io#/#{room}#", Dialect.LEGACY, None, row))
    req = FakeRow("request", "/", None, None, None, None, "REMOTE_JOIN")
    frames.append(
        FakeFrame(base + 9_700_000_000, "socket.io-request#/#", Dialect.LEGACY, None, req)
    )
    bad = FakeRow("unknown", None, None, None, None, None, None)
    frames.append(FakeFrame(base + 9_800_000_000, "socket.io#/#", None, "truncated msgpack", bad))
    return frames


def fake_traffic() -> AsyncIterator[Any]:
    """FAKE traffic source: :func:`fake_frames`, then silence (like an idle cluster)."""

    async def frames() -> AsyncIterator[Any]:
        for frame in fake_frames():
            yield frame
        await asyncio.Event().wait()

    return frames()
