"""Fixtures of the TUI tests: a real two-node Python cluster with real clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from siotools.tui.app import SiotoolsApp
from textual.css.query import NoMatches

from siotools import ClusterClient
from siotools.pynode import PythonNode
from tests.adapter.pyclients import Client


@dataclass
class Cluster:
    """Two nodes; ``alice`` (node a) in lobby, ``bob`` and ``carol`` (node b) in lobby+vip."""

    redis_url: str
    key: str
    nodes: list[PythonNode]
    alice: Client
    bob: Client
    carol: Client

    def app(self, **options: object) -> SiotoolsApp:
        # generous: a loaded CI machine must not turn a slow answer into a test failure
        client = ClusterClient(self.redis_url, key=self.key, requests_timeout=2.0)
        options.setdefault("refresh", 60.0)
        return SiotoolsApp(client, **options)  # type: ignore[arg-type]


@pytest.fixture
async def cluster(redis_url: str, key: str) -> AsyncIterator[Cluster]:
    nodes = [
        await PythonNode(redis_url, key=key, namespaces=["/", "/chat"]).start() for _ in range(2)
    ]
    alice = await Client("alice").connect(nodes[0].url, ["/", "/chat"])
    bob = await Client("bob").connect(nodes[1].url)
    carol = await Client("carol").connect(nodes[1].url)
    await alice.join("lobby")
    await bob.join("lobby", "vip")
    await carol.join("lobby", "vip")
    yield Cluster(redis_url, key, nodes, alice, bob, carol)
    for client in (alice, bob, carol):
        await client.close()
    for node in nodes:
        await node.stop()


async def until(pilot: object, predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Let the app run until ``predicate()`` is true (no fixed sleeps in assertions)."""
    deadline = time.monotonic() + timeout

    def holds() -> bool:
        try:
            return bool(predicate())
        except NoMatches:  # the screen is not composed yet
            return False

    while not holds():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.05)  # type: ignore[attr-defined]
    await asyncio.sleep(0)


async def fill(pilot: object, text: str) -> None:
    """Put ``text`` into the focused Input at once (typing long strings key by key is slow)."""
    from textual.widgets import Input

    focused = pilot.app.focused  # type: ignore[attr-defined]
    assert isinstance(focused, Input), focused
    focused.value = text
    await pilot.pause()  # type: ignore[attr-defined]


async def loaded(pilot: object, app: SiotoolsApp, screen_type: type, timeout: float = 20.0) -> None:
    """Wait until the app shows a ``screen_type`` screen with rows.

    The refresh timer is slowed to a minute in these tests; while rows are missing this asks
    for a load every 3 s, as the timer would, and a failure says what the screen reported.
    """
    deadline = time.monotonic() + timeout
    next_reload = time.monotonic() + 3.0
    while True:
        screen = app.screen
        try:
            if isinstance(screen, screen_type) and screen.table.keys:  # type: ignore[attr-defined]
                return
        except NoMatches:
            pass
        now = time.monotonic()
        if now > deadline:
            raise AssertionError(
                f"no rows on {type(screen).__name__}: problem={getattr(screen, 'problem', None)!r}"
                f" shortfall={getattr(screen, 'shortfall', None)!r}"
                f" note={getattr(screen, 'note', None)!r}"
            )
        if now > next_reload and isinstance(screen, screen_type):
            screen.reload()  # type: ignore[attr-defined]
            next_reload = now + 3.0
        await pilot.pause(0.05)  # type: ignore[attr-defined]
