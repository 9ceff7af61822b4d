"""``siotools sniff`` as a user runs it: a subprocess against a real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from siotools.protocol import encode_broadcast
from siotools.sniffer import load_capture
from tests.sniffer.poison import poison

SIOTOOLS = [sys.executable, "-m", "siotools"]


def run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIOTOOLS, "sniff", *args], capture_output=True, text=True, timeout=timeout
    )


def one_sentence(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].endswith("."), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def test_unreachable_redis_is_one_sentence_exit_2() -> None:
    out = run("--url", "redis://127.0.0.1:1/0", "--count", "1")
    assert out.returncode == 2
    assert "Cannot reach Redis" in one_sentence(out.stderr)


def test_bad_options_exit_2() -> None:
    for args in (["--kind", "nope"], ["--count", "0"], ["--duration", "-1"], ["--url", "http://x"]):
        out = run(*args)
        assert out.returncode == 2, args
        one_sentence(out.stderr)
    out = run("--output", "/no/such/folder/x.jsonl", "--count", "1")
    assert out.returncode == 2 and "does not exist" in one_sentence(out.stderr)


async def _start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *SIOTOOLS,
        "sniff",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _wait_subscribed(r: aioredis.Redis, before: int) -> None:
    async def until() -> None:
        # The sniffer PSUBSCRIBEs three patterns of the test's own prefix.
        while int(await r.execute_command("PUBSUB", "NUMPAT")) < before + 3:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(until(), 15)


async def _publish(r: aioredis.Redis, key: str, n: int) -> None:
    for i in range(n):
        ch, p = encode_broadcast(uid="u1", data=["ev", i, b"\x01"], rooms=[f"r{i}"], prefix=key)
        await r.publish(ch, p)


async def test_json_lines_and_count(redis_url: str, key: str) -> None:
    r = aioredis.from_url(redis_url)
    before = int(await r.execute_command("PUBSUB", "NUMPAT"))
    proc = await _start("--url", redis_url, "--prefix", key, "--json", "--count", "3")
    await _wait_subscribed(r, before)
    await _publish(r, key, 5)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 15)
    await r.aclose()
    assert proc.returncode == 0, stderr
    rows = [json.loads(line) for line in stdout.decode().splitlines()]
    assert [row["args"] for row in rows] == [[i, {"$bin": "AQ=="}] for i in range(3)]
    assert rows[0]["channel"] == f"{key}#/#r0#" and rows[0]["rooms"] == ["r0"]
    assert rows[0]["kind"] == "broadcast" and rows[0]["uid"] == "u1" and rows[0]["event"] == "ev"
    assert "3 shown" in stderr.decode()


async def test_text_lines_filter_output_and_ctrl_c(
    redis_url: str, key: str, tmp_path: Path
) -> None:
    r = aioredis.from_url(redis_url)
    before = int(await r.execute_command("PUBSUB", "NUMPAT"))
    out_file = tmp_path / "cap.jsonl"
    proc = await _start(
        "--url", redis_url, "--prefix", key, "--room", "r1", "--output", str(out_file)
    )
    await _wait_subscribed(r, before)
    await _publish(r, key, 3)
    await r.publish(f"{key}#/#", b"\xc1")
    await asyncio.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 15)
    await r.aclose()
    assert proc.returncode == 0, stderr
    lines = stdout.decode().splitlines()
    assert len(lines) == 1, lines  # r1 only
    assert "u1" in lines[0] and "r1" in lines[0] and "ev" in lines[0]
    summary = stderr.decode()
    assert "4 frames" in summary and "1 shown" in summary and "undecodable 1" in summary
    cap = load_capture(out_file, prefix=key)
    assert len(cap) == 1 and cap.frames[0].row.rooms == ["r1"]


async def test_stats_table(redis_url: str, key: str) -> None:
    r = aioredis.from_url(redis_url)
    before = int(await r.execute_command("PUBSUB", "NUMPAT"))
    proc = await _start(
        "--url", redis_url, "--prefix", key, "--stats", "--interval", "0.3", "--duration", "1.5"
    )
    await _wait_subscribed(r, before)
    await _publish(r, key, 4)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 15)
    await r.aclose()
    assert proc.returncode == 0, stderr
    text = stdout.decode()
    assert "room" in text and "event" in text and "r3" in text and "msg/s" in text


async def _start_strict(*args: str) -> asyncio.subprocess.Process:
    # A strict UTF-8 stdout and stderr: what a pipe into a strict consumer gives.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    return await asyncio.create_subprocess_exec(
        *SIOTOOLS,
        "sniff",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


@pytest.mark.parametrize("mode", ["text", "json"])
async def test_poison_frames_do_not_kill_the_sniffer(
    redis_url: str, key: str, mode: str, tmp_path: Path
) -> None:
    """Deep nesting, lone surrogates, non-UTF-8 rooms and channels, NaN: every frame is
    shown, stdout stays valid UTF-8, the saved capture keeps the raw bytes."""
    r = aioredis.from_url(redis_url)
    before = int(await r.execute_command("PUBSUB", "NUMPAT"))
    frames = poison(key)
    out_file = tmp_path / "poison.jsonl"
    extra = ["--json"] if mode == "json" else []
    proc = await _start_strict(
        "--url", redis_url, "--prefix", key, "--count", str(len(frames)),
        "--output", str(out_file), *extra,
    )  # fmt: skip
    await _wait_subscribed(r, before)
    for ch, payload in frames:
        await r.publish(ch, payload)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 15)
    await r.aclose()
    assert proc.returncode == 0, stderr.decode("utf-8", "replace")[-2000:]
    assert b"Traceback" not in stderr
    text = stdout.decode("utf-8")  # strict: raises on anything that is not UTF-8
    lines = text.splitlines()
    assert len(lines) == len(frames), text
    if mode == "json":
        rows = [json.loads(line) for line in lines]
        assert rows[1]["rooms"] == ["\\ud800", "ok"]
        assert rows[2]["channel"] == f"{key}#/#\\xff#"
        assert rows[3]["rooms"] == ["\\xff"]
        assert rows[4]["args"] == [{"$num": "NaN"}]
        assert "$deep" in json.dumps(rows[0]["args"])
    else:
        assert "\\ud800" in lines[1] and "\\xff" in lines[2] and "\\xff" in lines[3]
    cap = load_capture(out_file, prefix=key)
    assert [(f.channel.encode("utf-8", "surrogateescape"), f.payload) for f in cap.frames] == [
        (ch, p) for ch, p in frames
    ]


@pytest.mark.parametrize("flag", ["false", "0", "no"])
async def test_cluster_false_is_a_single_redis(redis_url: str, key: str, flag: str) -> None:
    r = aioredis.from_url(redis_url)
    before = int(await r.execute_command("PUBSUB", "NUMPAT"))
    url = f"{redis_url}?cluster={flag}"
    proc = await _start("--url", url, "--prefix", key, "--json", "--count", "1")
    try:
        await _wait_subscribed(r, before)
        await _publish(r, key, 1)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await r.aclose()
    assert proc.returncode == 0, stderr
    (row,) = [json.loads(line) for line in stdout.decode().splitlines()]
    assert row["channel"] == f"{key}#/#r0#"


def test_a_bad_cluster_flag_is_one_sentence_exit_2(redis_url: str) -> None:
    out = run("--url", f"{redis_url}?cluster=maybe", "--count", "1")
    assert out.returncode == 2
    text = one_sentence(out.stderr)
    assert "cluster='maybe'" in text and "is not a Redis URL" not in text
