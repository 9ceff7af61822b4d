"""``siotools sniff`` on sharded pub/sub, as a user runs it (a subprocess, real Redis)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator

import pytest

from siotools.pynode import PythonNode
from siotools.redis_cluster import RedisCluster
from siotools.sniffer import DISCOVER_NOTE, SSUBSCRIBE_WARNING

SIOTOOLS = [sys.executable, "-m", "siotools", "sniff"]


async def _run(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *SIOTOOLS, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *SIOTOOLS, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


@pytest.fixture
async def sharded_nodes(redis_url: str, key: str) -> AsyncIterator[list[PythonNode]]:
    nodes = [
        await PythonNode(redis_url, namespaces=["/"], dialect="sharded", key=key).start()
        for _ in range(2)
    ]
    yield nodes
    for node in nodes:
        await node.stop()


async def test_no_mode_on_a_sharded_prefix_is_one_sentence(
    sharded_nodes: list[PythonNode], redis_url: str, key: str
) -> None:
    started = time.monotonic()
    code, out, err = await _run("--url", redis_url, "--prefix", key)
    elapsed = time.monotonic() - started
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("siotools: prefix ") and line.endswith(".")
    assert "sharded pub/sub" in line and "PSUBSCRIBE cannot see" in line
    for flag in ("--monitor", "--ssubscribe", "--discover"):
        assert flag in line
    assert "Traceback" not in err and elapsed < 10  # no silent wait


async def test_no_mode_with_classic_nodes_too_goes_on(
    sharded_nodes: list[PythonNode], redis_url: str, key: str
) -> None:
    classic = await PythonNode(redis_url, namespaces=["/"], dialect="current", key=key).start()
    try:
        proc = await _spawn("--url", redis_url, "--prefix", key, "--json", "--count", "1")
        line = await asyncio.wait_for(proc.stderr.readline(), 15)  # type: ignore[union-attr]
        assert b"--ssubscribe" in line and b"PSUBSCRIBE cannot see" in line
        await asyncio.sleep(0.3)
        await classic.sio.emit("classic-news", 1)
        out, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        await classic.stop()
    assert proc.returncode == 0, err
    (row,) = [json.loads(x) for x in out.decode().splitlines()]
    assert row["event"] == "classic-news" and row["dialect"] == "current"


async def test_ssubscribe_warns_and_sees_sharded_frames(
    sharded_nodes: list[PythonNode], redis_url: str, key: str
) -> None:
    proc = await _spawn(
        "--url", redis_url, "--prefix", key, "--ssubscribe", "--json", "--count", "1"
    )
    first = await asyncio.wait_for(proc.stderr.readline(), 15)  # type: ignore[union-attr]
    assert SSUBSCRIBE_WARNING.split(":")[0] in first.decode()
    for _ in range(50):  # until the sniffer's SSUBSCRIBE is confirmed: the count says so
        await sharded_nodes[0].sio.emit("ss-news", 7)
        if proc.stdout._buffer:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.1)
    out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, err
    row = json.loads(out.decode().splitlines()[0])
    assert row["event"] == "ss-news" and row["dialect"] == "sharded" and row["args"] == [7]


async def test_discover_lists_channels_per_master(sharded_cluster: RedisCluster, key: str) -> None:
    nodes = [
        await PythonNode(
            sharded_cluster.url,
            namespaces=["/", "/a", "/b"],
            dialect="sharded",
            key=key,
            cluster=True,
        ).start()
        for _ in range(2)
    ]
    try:
        url = sharded_cluster.url + "?cluster=true"
        args = ("--url", url, "--prefix", key, "--discover", "--interval", "0.2")
        code, out, err = await _run(*args, "--count", "2")
        code_j, out_j, _ = await _run(*args, "--count", "1", "--json")
        code_plain, out_plain, err_plain = await _run("--url", url, "--prefix", key)
    finally:
        for node in nodes:
            await node.stop()
    assert code == 0, err
    assert DISCOVER_NOTE in err
    assert out.count("sharded channel") == 2  # two listings
    assert re.search(rf"\n +{re.escape(key)}#/a# +SHARDNUMSUB 2\n", out), out
    assert code_j == 0
    (look,) = [json.loads(x) for x in out_j.splitlines()]
    assert len(look["masters"]) == 3
    assert look["channels"][f"{key}#/#"] == 2 and look["channels"][f"{key}#/b#"] == 2
    listed = [ch for m in look["masters"].values() for ch in m["channels"]]
    assert len(listed) == len(set(listed))  # each channel on one master only
    # No mode on the sharded cluster: the one sentence, exit 2.
    assert code_plain == 2 and out_plain == ""
    (line,) = err_plain.strip().splitlines()
    assert "uses sharded pub/sub on this Redis Cluster" in line and "on 3 masters" in line
    assert "--monitor" in line and "--ssubscribe" in line and "--discover" in line


async def _monitors_attached(cluster: RedisCluster) -> None:
    """Until every master has a MONITOR client (``flags=O`` in CLIENT LIST)."""
    masters = [m.port for m in cluster.masters()]
    for _ in range(300):
        lists = [str(cluster.client(p).execute_command("CLIENT", "LIST")) for p in masters]
        if all("flags=O" in text for text in lists):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the sniffer never started MONITOR on every master")


async def test_monitor_on_a_cluster_url(sharded_cluster: RedisCluster, key: str) -> None:
    nodes = [
        await PythonNode(
            sharded_cluster.url,
            namespaces=["/", "/a", "/b"],
            dialect="sharded",
            key=key,
            cluster=True,
        ).start()
        for _ in range(2)
    ]
    try:
        url = sharded_cluster.url + "?cluster=true"
        proc = await _spawn("--url", url, "--prefix", key, "--monitor", "--json", "--count", "3")
        first = await asyncio.wait_for(proc.stderr.readline(), 15)  # type: ignore[union-attr]
        assert b"MONITOR" in first
        await _monitors_attached(sharded_cluster)
        for nsp in ("/", "/a", "/b"):
            await nodes[0].sio.emit("mon-news", nsp, namespace=nsp)
        out, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        for node in nodes:
            await node.stop()
    assert proc.returncode == 0, err
    rows = [json.loads(x) for x in out.decode().splitlines()]
    assert sorted(r["nsp"] for r in rows) == ["/", "/a", "/b"]
    assert {r["dialect"] for r in rows} == {"sharded"}
    assert (first + err).decode().count("MONITOR makes") == 1  # the warning once, not twice


async def test_modes_exclude_each_other() -> None:
    code, _, err = await _run("--monitor", "--ssubscribe")
    assert code == 2 and "not allowed with" in err and len(err.strip().splitlines()) == 1
