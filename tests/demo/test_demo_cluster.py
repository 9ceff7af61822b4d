"""``siotools demo --dialect sharded --redis-cluster``: the printed URL and dialect work with
the operation commands and the TUI's data, and stopping the demo stops its Redis Cluster."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from siotools import ClusterClient
from siotools.redis_cluster import find_redis_cli


def _redis_children(pid: int) -> set[int]:
    """The redis-server processes started by process ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"redis-server" in cmdline:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _siotools(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "siotools", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _start_demo(*argv: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "siotools", "demo", "--headless", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or "Press Ctrl-C" not in lines[-1]:
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not line:
            _, err = await proc.communicate()
            pytest.fail("demo exited early: " + "".join(lines) + err.decode())
        lines.append(line.decode())
    return proc, "".join(lines)


@pytest.fixture
def redis_cli() -> None:
    find_redis_cli()  # the cluster is formed with redis-cli --cluster create


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "terminate"])
async def test_sharded_demo_on_a_redis_cluster(redis_cli: None, stop: signal.Signals) -> None:
    proc, text = await _start_demo(
        "--dialect", "sharded", "--redis-cluster", "--nodes", "2", "--clients", "6",
        "--rate", "5", "--churn", "0", "--remote-every", "0", "--key", "demo-rc",
    )  # fmt: skip
    servers = _redis_children(proc.pid)
    try:
        assert len(servers) == 3, text  # three masters
        url = re.findall(r"Redis is ready at (\S+)", text)[0]
        assert url.endswith("?cluster=true")
        hint = next(line for line in text.splitlines() if " rooms --url " in line)
        assert f"--url '{url}'" in hint and "--dialect sharded" in hint
        assert "tui --url" in text
        target = ["--url", url, "--prefix", "demo-rc", "--dialect", "sharded"]

        # rooms: built from fetchSockets (the sharded adapter has no allRooms request)
        code, out, err = await _siotools("rooms", *target, "--nsp", "/", "--json")
        assert code == 0, err
        rows = json.loads(out)
        assert {"room": "lobby", "sockets": 6} in rows, rows
        code, out, err = await _siotools("sockets", *target, "--nsp", "/", "--json")
        assert code == 0, err
        sids = [s["id"] for s in json.loads(out)]
        assert len(sids) == 6

        # join, seen by rooms; emit counts both nodes
        # Options first and "--": a socket id may start with "-".
        code, out, err = await _siotools("join", *target, "--nsp", "/", "--", sids[0], "spotlight")
        assert code == 0, err
        code, out, err = await _siotools("rooms", *target, "--nsp", "/", "--json")
        assert {"room": "spotlight", "sockets": 1} in json.loads(out)
        code, out, err = await _siotools(
            "emit", "news", '"hi"', "--room", "spotlight", *target, "--nsp", "/", "--json"
        )
        assert code == 0, err
        result = json.loads(out)
        assert result["nodes"] == 2 and result["sockets"] == 1
        code, out, err = await _siotools("emit", "news", "1", *target, "--nsp", "/nowhere")
        assert code == 1 and "No node serves namespace /nowhere" in err

        # the TUI's data: namespaces with nodes, sockets and rooms
        from siotools.tui.source import load_namespace, load_summaries

        async with ClusterClient(url, key="demo-rc") as cluster:
            assert cluster.dialect is not None and cluster.dialect.value == "sharded"
            summaries = {s.namespace: s for s in await load_summaries(cluster)}
            assert summaries["/"].nodes == 2 and summaries["/"].sockets == 6
            assert summaries["/"].rooms is not None and summaries["/"].rooms >= 2
            data = await load_namespace(cluster, "/")
            assert data.shortfall is None
            assert sorted(data.members["spotlight"]) == [sids[0]]
    finally:
        proc.send_signal(stop)
        out_b, err_b = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err_b.decode()
    assert "stopped" in out_b.decode() and "Traceback" not in err_b.decode()
    assert [pid for pid in servers if _alive(pid)] == []  # no redis-server left behind


@pytest.mark.node
async def test_sharded_demo_with_a_node_node_on_a_redis_cluster(
    redis_cli: None, node_install: object
) -> None:
    node_install("current")  # type: ignore[operator]
    proc, text = await _start_demo(
        "--dialect", "sharded", "--redis-cluster", "--node-peer", "--nodes", "1",
        "--clients", "4", "--rate", "5", "--churn", "0", "--remote-every", "0",
    )  # fmt: skip
    try:
        assert "Node node: http://" in text and "@socket.io/redis-adapter 8.3.0" in text
        url = re.findall(r"Redis is ready at (\S+)", text)[0]
        code, out, err = await _siotools(
            "emit", "news", "1", "--url", url, "--dialect", "sharded", "--nsp", "/chat", "--json"
        )
        assert code == 0, err
        assert json.loads(out)["nodes"] == 2  # the Python node and the Node node
    finally:
        proc.send_signal(signal.SIGINT)
        _, err_b = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err_b.decode()
