"""Reusable pytest fixtures for tests that run real Node Socket.IO nodes.

Use them from any test folder by importing them into its ``conftest.py``::

    from tests.nodepeer.fixtures import node_available, node_install, node_peers  # noqa: F401

They build on the root fixtures ``redis_url`` and ``key``. Mark the tests
``@pytest.mark.node``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from siotools.nodepeer import NodePeer, ensure_installed

InstallFn = Callable[[str], Path]
StartFn = Callable[..., Awaitable[NodePeer]]


@pytest.fixture(scope="session")
def node_available() -> None:
    """Skip the test when ``node`` or ``npm`` is not on PATH."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the Node peers")


@pytest.fixture(scope="session")
def node_install() -> InstallFn:
    """``install(flavor) -> Path``: ``npm ci`` a flavor once per session (cached on disk).

    Skips the test when ``node`` or ``npm`` is not on PATH; an install failure fails it.
    """
    done: dict[str, Path] = {}

    def install(flavor: str) -> Path:
        if shutil.which("node") is None or shutil.which("npm") is None:
            pytest.skip("node and npm are needed for the Node peers")
        if flavor not in done:
            started = time.monotonic()
            done[flavor] = ensure_installed(flavor)
            elapsed = time.monotonic() - started
            if elapsed > 1:
                print(f"\nnpm ci of Node flavor {flavor}: {elapsed:.1f}s")
        return done[flavor]

    return install


@pytest.fixture
async def node_peers(node_install: InstallFn, redis_url: str, key: str) -> AsyncIterator[StartFn]:
    """``await start(flavor, name, **kw) -> NodePeer``; every peer is stopped after the test.

    Defaults: the session Redis (``redis_url``), the test's ``key``, namespaces
    ``/`` and ``/chat``, a 2000 ms requests timeout. ``port=0`` starts a server on a
    free port; the default ``None`` starts a client-only peer.
    """
    peers: list[NodePeer] = []

    async def start(flavor: str, name: str, **kw: Any) -> NodePeer:
        node_install(flavor)
        kw.setdefault("redis_url", redis_url)
        kw.setdefault("key", key)
        kw.setdefault("nsps", ("/", "/chat"))
        kw.setdefault("requests_timeout_ms", 2000)
        peer = await NodePeer.start(flavor, name=name, **kw)
        peers.append(peer)
        return peer

    yield start
    for peer in reversed(peers):
        await peer.stop()
