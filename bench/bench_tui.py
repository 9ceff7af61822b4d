"""Responsiveness of ``siotools tui`` with 100k sockets across 3 nodes.

Run: ``python -m bench.bench_tui [--sockets N] [--rooms N] [--presses N]``.

The cluster is a FAKE at the ``ClusterClient`` interface (:class:`FakeCluster` below, the
same methods the TUI calls), so the figures measure the console, not Redis or the nodes:
100k socket ids, ``--rooms`` named rooms, every socket in one to three rooms, "3 nodes".
The app runs headless (``App.run_test``) at 160x50.

Figures:

* first load of the namespace's sockets view (fetch + diff into the table, 100k rows);
* key press to repaint: from posting the key event to the app until its last screen update
  (the compositor's output handed to the driver) once the screen has been quiet for 30 ms,
  per key, median / p95 / max, for cursor moves, page moves, sort changes, each keystroke
  of a ``/`` filter over 100k rows, and drilling into a socket and back;
* a refresh that changes 1% of the rows (fetch + diff, the cursor keeps its row).

Target: every key press <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Iterable
from typing import Any

from siotools.tui.app import SiotoolsApp
from siotools.tui.sockets import SocketsScreen
from textual import events

from siotools.dialects.base import RemoteSocket
from siotools.protocol import Dialect

TARGET_MS = 100.0


class FakeCluster:
    """FAKE cluster (bench only): the ClusterClient methods over in-memory data."""

    prefix = "socket.io"
    dialect = Dialect.LEGACY
    requests_timeout = 1.0

    def __init__(self, sockets: int, rooms: int, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.room_names = [f"room-{i:05d}" for i in range(rooms)]
        self.members: dict[str, list[str]] = {r: [] for r in self.room_names}
        self.sockets = [f"{rng.getrandbits(96):024x}" for _ in range(sockets)]
        # sid -> its rooms, as each node keeps it: a client_rooms request costs the console
        # nothing but the wait (a real one is a Redis round trip, not CPU of this process)
        self.rooms_of: dict[str, list[str]] = {sid: [] for sid in self.sockets}
        for sid in self.sockets:
            for room in rng.sample(self.room_names, rng.randint(1, 3)):
                self.members[room].append(sid)
                self.rooms_of[sid].append(room)
        self.rng = rng

    @property
    def url(self) -> str:
        return "redis://fake:6379/0"

    def churn(self, fraction: float) -> None:
        """Move ``fraction`` of the sockets into another room (a busy cluster)."""
        for sid in self.rng.sample(self.sockets, int(len(self.sockets) * fraction)):
            room = self.rng.choice(self.room_names)
            self.members[room].append(sid)
            self.rooms_of[sid].append(room)

    async def connect(self) -> FakeCluster:
        return self

    async def close(self) -> None:
        return None

    async def namespaces(self) -> list[str]:
        return ["/"]

    async def node_counts(self) -> dict[str, int]:
        return {"/": 3}

    async def clients(
        self, rooms: Iterable[str] | None = None, *, namespace: str = "/"
    ) -> list[str]:
        if rooms:
            return sorted({s for r in rooms for s in self.members.get(r, [])})
        return list(self.sockets)

    async def all_rooms(self, *, namespace: str = "/") -> list[str]:
        return [*self.sockets, *self.room_names]

    async def room_members(
        self,
        rooms: Iterable[str] | None = None,
        *,
        namespace: str = "/",
        concurrency: int = 32,
    ) -> dict[str, list[str]]:
        names = self.room_names if rooms is None else list(rooms)
        return {r: list(self.members.get(r, [])) for r in names}

    async def client_rooms(self, sid: str, *, namespace: str = "/") -> list[str]:
        return [sid, *dict.fromkeys(self.rooms_of.get(sid, []))]

    async def fetch_sockets(
        self, *, rooms: Any = None, except_rooms: Any = None, namespace: str = "/"
    ) -> list[RemoteSocket]:
        sids = list(rooms or self.rooms_of)
        return [
            RemoteSocket(id=s, rooms=tuple(await self.client_rooms(s)), nsp=namespace)
            for s in sids
            if s in self.rooms_of
        ]

    async def remote_join(self, sid: str, room: str, *, namespace: str = "/") -> None:
        raise NotImplementedError

    async def remote_leave(self, sid: str, room: str, *, namespace: str = "/") -> None:
        raise NotImplementedError

    async def remote_disconnect(
        self, sid: str, close: bool = False, *, namespace: str = "/"
    ) -> None:
        raise NotImplementedError

    async def emit(
        self,
        event: str,
        *args: Any,
        rooms: Iterable[str] = (),
        except_: Iterable[str] = (),
        namespace: str = "/",
    ) -> None:
        raise NotImplementedError


def summary(name: str, samples_ms: list[float]) -> tuple[str, float]:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    worst = ordered[-1]
    line = (
        f"{name:<28} n={len(ordered):<4} median {statistics.median(ordered):6.1f} ms  "
        f"p95 {p95:6.1f} ms  max {worst:6.1f} ms"
    )
    return line, worst


async def run(sockets: int, rooms: int, presses: int) -> int:
    cluster = FakeCluster(sockets, rooms)
    app = SiotoolsApp(cluster, refresh=3600)
    results: list[tuple[str, float]] = []
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        start = time.perf_counter()
        app.open_all_sockets("/")
        while not (
            isinstance(app.screen, SocketsScreen)
            and app.screen.is_mounted
            and app.screen.table.total_count == sockets
        ):
            await asyncio.sleep(0.005)
        await pilot.pause()
        load_ms = (time.perf_counter() - start) * 1000
        screen = app.screen
        assert isinstance(screen, SocketsScreen)
        table = screen.table
        print(f"sockets: {sockets}, rooms: {rooms}, nodes: 3 (FAKE cluster)")
        print(f"first load of the sockets view (fetch + diff, {sockets} rows): {load_ms:.0f} ms")

        displays: list[float] = []
        original = app._display

        def recording(screen: Any, renderable: Any) -> None:
            if renderable is not None:
                displays.append(time.perf_counter())
            original(screen, renderable)

        app._display = recording  # type: ignore[method-assign]

        async def key_to_repaint(key: str) -> float:
            await pilot.pause()
            seen = len(displays)
            char = {"slash": "/"}.get(key, key if len(key) == 1 else None)
            t0 = time.perf_counter()
            app.post_message(events.Key(key, char))
            deadline = t0 + 5.0
            while time.perf_counter() < deadline:
                await asyncio.sleep(0.002)
                if len(displays) > seen and time.perf_counter() - displays[-1] > 0.03:
                    break
            if len(displays) == seen:
                raise RuntimeError(f"no repaint after {key!r}")
            return (displays[-1] - t0) * 1000

        async def timed_keys(name: str, keys: list[str]) -> None:
            samples = [await key_to_repaint(key) for key in keys]
            results.append(summary(name, samples))

        await timed_keys("cursor down/up", ["down", "up"] * (presses // 2))
        await timed_keys("page down/up", ["pagedown", "pagedown", "pageup"] * (presses // 3))
        await timed_keys("end/home", ["end", "home"] * 5)
        await pilot.press("home")
        await timed_keys("sort column / reverse", ["s", "S", "s", "S", "s"])
        await pilot.press("s")  # back to the natural order
        await timed_keys("open filter", ["slash"])
        await timed_keys("filter keystrokes (100k)", list("abc12"))
        await timed_keys("filter delete + Enter", ["backspace"] * 5 + ["enter"])
        await timed_keys("drill into socket + back", ["enter", "escape"] * 5)

        cursor_key = table.cursor_key
        cluster.churn(0.01)
        t0 = time.perf_counter()
        diff = await screen.load()
        await pilot.pause()
        refresh_ms = (time.perf_counter() - t0) * 1000
        assert table.cursor_key == cursor_key
        print(
            f"refresh with 1% of the rows changed: {refresh_ms:.0f} ms "
            f"({diff.summary() if diff else '?'}; cursor kept its row)"
        )
    worst = 0.0
    for line, top in results:
        print(line)
        worst = max(worst, top)
    verdict = "OK" if worst <= TARGET_MS else "OVER"
    print(f"worst key press to repaint: {worst:.1f} ms (target <= {TARGET_MS:.0f} ms): {verdict}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=1_000)
    parser.add_argument("--presses", type=int, default=60)
    args = parser.parse_args()
    return asyncio.run(run(args.sockets, args.rooms, args.presses))


if __name__ == "__main__":
    raise SystemExit(main())
