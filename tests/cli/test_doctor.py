"""``siotools doctor`` as a subprocess: exit 0 healthy, 1 problems, 2 could not run."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
import redis.asyncio as aioredis

from siotools.redis_cluster import RedisCluster
from siotools.redis_server import RedisServer
from tests.cluster_nodes import sharded_on_every_master
from tests.nodepeer.fixtures import StartFn


async def doctor(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "siotools",
        "doctor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.node
async def test_healthy_then_broken(node_peers: StartFn, redis_url: str, key: str) -> None:
    await node_peers("legacy5", "A", port=0)
    await node_peers("legacy5", "B", port=0)
    code, out, err = await doctor("--url", redis_url, "--prefix", key, "--duration", "1")
    assert (code, err) == (0, "")
    assert "healthy" in out and "No problem found." in out

    rc = aioredis.Redis.from_url(redis_url)
    spy = rc.pubsub()
    await spy.subscribe(f"{key}-request#/#")
    try:
        code, out, err = await doctor(
            "--url", redis_url, "--prefix", key, "--duration", "1", "--probe", "--json"
        )
    finally:
        await spy.aclose()
        await rc.aclose()
    assert code == 1, err
    report = json.loads(out)
    assert report["healthy"] is False
    assert [f["code"] for f in report["findings"]] == ["foreign-subscriber"]
    assert report["findings"][0]["severity"] == "error"
    assert report["findings"][0]["fix"]
    assert report["probed"] is True
    root = next(n for n in report["namespaces"] if n["nsp"] == "/")
    assert (root["probe_answers"], root["probe_expected"]) == (2, 3)


async def test_unreachable_redis_is_one_sentence_exit_2() -> None:
    code, out, err = await doctor("--url", "redis://:secret@127.0.0.1:1/0", "--duration", "0")
    assert code == 2 and out == ""
    assert err.startswith("siotools: Cannot reach Redis at redis://") and "127.0.0.1:1/0" in err
    assert err.count("\n") == 1 and "Traceback" not in err and "secret" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["--duration", "-1"],
        ["--duration", "inf"],
        ["--timeout", "0"],
        ["--timeout", "nan"],
        ["--url", "http://x"],
        ["--nope"],
    ],
)
async def test_bad_arguments_exit_2(args: list[str]) -> None:
    code, out, err = await doctor(*args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err


async def test_monitor_refused_is_a_note_not_a_failure(fresh_redis: RedisServer) -> None:
    rc = aioredis.Redis.from_url(fresh_redis.url)
    try:
        await rc.execute_command(
            "ACL", "SETUSER", "watcher", "on", ">pw", "~*", "&*", "+@all", "-monitor"
        )
    finally:
        await rc.aclose()
    url = f"redis://watcher:pw@127.0.0.1:{fresh_redis.port}/0"
    code, out, err = await doctor("--url", url, "--duration", "0.3", "--monitor", "--json")
    assert code == 1, err  # no node on the prefix: that is the error, not MONITOR
    findings = {f["code"]: f for f in json.loads(out)["findings"]}
    assert set(findings) == {"no-nodes", "refused"}
    refused = findings["refused"]
    assert refused["severity"] == "note"
    assert refused["title"] == "Redis refused MONITOR: sharded traffic was not watched"
    assert "pw" not in out


async def test_a_redis_cluster_url_reads_every_master(
    sharded_cluster: RedisCluster, key: str
) -> None:
    async with sharded_on_every_master(sharded_cluster, key) as spread:
        code, out, err = await doctor(
            "--url", spread.url, "--prefix", key, "--duration", "0.3", "--json"
        )
    assert code == 0, err
    report = json.loads(out)
    counts = {n["nsp"]: n["sharded_subscribers"] for n in report["namespaces"]}
    assert counts == dict.fromkeys(spread.namespaces, 2)
    assert len(report["facts"]["masters"]) == len(sharded_cluster.masters())


@pytest.mark.parametrize("flag", ["false", "0", "no"])
async def test_cluster_false_is_a_single_redis(redis_url: str, key: str, flag: str) -> None:
    code, out, err = await doctor(
        "--url", f"{redis_url}?cluster={flag}", "--prefix", key, "--duration", "0", "--json"
    )
    assert code == 1, err  # it ran: no node on the prefix is its finding
    assert err == "" and json.loads(out)["url"] == redis_url


async def test_a_bad_cluster_flag_is_one_sentence_exit_2(redis_url: str) -> None:
    code, out, err = await doctor("--url", f"{redis_url}?cluster=maybe", "--duration", "0")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "cluster='maybe'" in err and "is not a Redis URL" not in err
