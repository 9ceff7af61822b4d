"""The Python driver of the Node peers: installation, process life cycle, errors."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from pathlib import Path

import pytest

from siotools.exceptions import NodePeerError
from siotools.nodepeer import UNDEFINED, NodePeer, cache_root, ensure_installed, from_wire, to_wire
from tests.nodepeer.fixtures import InstallFn, StartFn


def test_wire_tags_round_trip() -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    value = {"b": b"\x00\xff", "l": [bytearray(b"\x01"), when, UNDEFINED], "s": "x", "n": None}
    wire = to_wire(value)
    assert wire == {
        "b": {"$bin": "00ff"},
        "l": [{"$bin": "01"}, {"$date": 1704164645678}, {"$undefined": True}],
        "s": "x",
        "n": None,
    }
    assert from_wire(wire) == {**value, "l": [b"\x01", when, UNDEFINED]}


def test_cache_root_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SIOTOOLS_NODE_CACHE", str(tmp_path))
    assert cache_root() == tmp_path


def test_unknown_flavor() -> None:
    with pytest.raises(NodePeerError, match="unknown Node flavor"):
        ensure_installed("legacy3")


def test_missing_npm_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SIOTOOLS_NODE_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NodePeerError, match="not installed or not on PATH"):
        ensure_installed("legacy5")


@pytest.mark.node
def test_concurrent_installs_share_one_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, node_available: None
) -> None:
    monkeypatch.setenv("SIOTOOLS_NODE_CACHE", str(tmp_path))
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_installed("legacy4")))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 2
    folder = results[0]
    assert folder.parent == tmp_path and folder.name.startswith("legacy4-")
    assert (folder / "node_modules" / "socket.io-redis" / "package.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [folder.name]
    assert ensure_installed("legacy4") == folder  # reused


@pytest.mark.node
async def test_errors_events_and_shutdown(node_peers: StartFn) -> None:
    peer = await node_peers("legacy5", "A", port=0)
    assert await peer.call("ping") == "pong"
    with pytest.raises(NodePeerError, match="unknown command nope"):
        await peer.call("nope")
    with pytest.raises(NodePeerError, match="no event"):
        await peer.wait_event(name="connection", timeout=0.2)
    info = await peer.call("info")
    assert info["uid"] == peer.uid and set(info["nsps"]) == {"/", "/chat"}
    await peer.stop()
    assert not peer.running
    with pytest.raises(NodePeerError, match="exited"):
        await peer.call("ping")


@pytest.mark.node
async def test_peer_exits_when_stdin_closes(node_install: InstallFn, redis_url: str) -> None:
    node_install("current")
    peer = await NodePeer.start("current", name="X", port=0, redis_url=redis_url)
    proc = peer._proc
    assert proc.stdin is not None
    proc.stdin.close()
    assert await asyncio.wait_for(proc.wait(), 5) == 0
    await peer.stop()


@pytest.mark.node
async def test_startup_failure_reports_stderr(node_install: InstallFn) -> None:
    # Nothing listens on port 1: the peer gives up at once and says why.
    for flavor in ("legacy5", "current"):
        node_install(flavor)
        with pytest.raises(NodePeerError, match=r"exited with code 1(.|\n)*ECONNREFUSED"):
            await NodePeer.start(flavor, name="X", port=0, redis_url="redis://127.0.0.1:1")
