"""``siotools sniff --stats``: window rates and running totals, live on a terminal."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time

import pexpect
import redis.asyncio as aioredis

from siotools.protocol import Dialect, encode_broadcast

SIOTOOLS = [sys.executable, "-m", "siotools"]


async def _until_subscribed(r: aioredis.Redis, before: int) -> None:
    deadline = time.monotonic() + 20
    while int(await r.execute_command("PUBSUB", "NUMPAT")) <= before:
        assert time.monotonic() < deadline, "sniff never subscribed"
        await asyncio.sleep(0.05)


async def _publish(r: aioredis.Redis, key: str, rooms: list[str]) -> None:
    for room in rooms:
        channel, payload = encode_broadcast(
            uid="u1", data=["ev", 1], rooms=[room], prefix=key, dialect=Dialect.LEGACY
        )
        await r.publish(channel, payload)


async def test_plain_lines_keep_window_and_total_apart(redis_url: str, key: str) -> None:
    r = aioredis.from_url(redis_url)
    before = int(await r.execute_command("PUBSUB", "NUMPAT"))
    proc = await asyncio.create_subprocess_exec(
        *SIOTOOLS, "sniff", "--url", redis_url, "--prefix", key, "--stats",
        "--interval", "0.5", "--duration", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await _until_subscribed(r, before)
    await _publish(r, key, ["a", "a", "b"])
    await asyncio.sleep(1.2)
    await _publish(r, key, ["a", "c"])
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    await r.aclose()
    assert proc.returncode == 0, err
    lines = out.decode().splitlines()
    assert len(lines) >= 3 and all("Traceback" not in x for x in lines)
    for line in lines:
        # one line per window: the window's count and rate, then the running total
        assert re.search(r"broadcasts: last \d+\.\ds \d+ \([\d.,]+ msg/s\) · total \d+", line)
    totals = [int(re.search(r"· total (\d+) in", x)[1]) for x in lines]  # type: ignore[index]
    assert totals == sorted(totals)
    # The last line includes the last partial window: it agrees with the summary.
    assert totals[-1] == 5
    assert "5 frames" in err.decode()
    assert re.search(r"room: a [\d.]+ msg/s \(total 3\)", "\n".join(lines))


async def test_a_terminal_gets_one_live_table(redis_url: str, key: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIOTOOLS_")}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "siotools", "sniff", "--url", redis_url, "--prefix", key, "--stats",
         "--interval", "0.3", "--duration", "3"],
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"},
        dimensions=(40, 120),
        encoding="utf-8",
        timeout=30,
    )  # fmt: skip
    r = aioredis.from_url(redis_url)
    try:
        await asyncio.to_thread(child.expect, "msg/s now")
        await _publish(r, key, ["live-room"] * 4)
        await asyncio.to_thread(child.expect, pexpect.EOF)
    finally:
        await r.aclose()
        child.close()
    screen = child.before or ""
    assert "live-room" in screen and "total" in screen
    # Redrawn in place (cursor up / erase line), not one table per window scrolling by.
    assert "\x1b[1A" in screen or "\x1b[2K" in screen
    assert child.exitstatus == 0


async def test_sniff_json_is_strict_json_even_for_nan(redis_url: str, key: str) -> None:
    """msgpack carries NaN and infinities; `sniff --json` used to print them bare."""
    import json

    r = aioredis.from_url(redis_url)
    before = int(await r.execute_command("PUBSUB", "NUMPAT"))
    proc = await asyncio.create_subprocess_exec(
        *SIOTOOLS, "sniff", "--url", redis_url, "--prefix", key, "--json", "--count", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await _until_subscribed(r, before)
    channel, payload = encode_broadcast(
        uid="u1", data=["ev", float("nan"), [float("inf"), -float("inf")]], prefix=key,
        dialect=Dialect.LEGACY,
    )  # fmt: skip
    await r.publish(channel, payload)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    await r.aclose()
    assert proc.returncode == 0, err
    line = out.decode().splitlines()[0]
    frame = json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(c)))
    assert frame["args"] == [{"$num": "NaN"}, [{"$num": "Infinity"}, {"$num": "-Infinity"}]]


def test_json_text_copes_with_deep_nesting() -> None:
    import json

    from siotools.cli.options import json_text

    deep: object = float("nan")
    for _ in range(100_000):
        deep = [deep]
    out = json.loads(json_text(deep))  # valid JSON, cut at the depth limit
    depth = 0
    while isinstance(out, list):
        out = out[0]
        depth += 1
    assert isinstance(out, dict) and "$deep" in out and depth < 100
