"""``rooms`` and ``client-rooms`` print rooms whatever their names, under a strict stdout."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from siotools.pynode import PythonNode
from tests.adapter.pyclients import Client

# A lone surrogate (what a JSON client can send) and the surrogate escape of byte 0xff.
POISON = ["\ud800", "\udcff", "\x1b[2Jclear", "fine"]


async def run_strict(*args: str) -> tuple[int, bytes, bytes]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "siotools", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_poison_room_names_in_rooms_and_client_rooms(redis_url: str, key: str) -> None:
    node = PythonNode(redis_url, key=key, namespaces=["/"])
    await node.start()
    client = await Client("poison").connect(node.url, ["/"])
    try:
        await client.join(*POISON)
        common = ["--url", redis_url, "--key", key, "--timeout", "2"]
        for argv in (["rooms", "--json"], ["client-rooms", client.sid(), "--json"]):
            code, out, err = await run_strict(*argv, *common)
            assert code == 0, err.decode("utf-8", "replace")
            text = out.decode("utf-8")  # strict
            rooms = json.loads(text)
            names = {r["room"] if isinstance(r, dict) else r for r in rooms}
            assert {"\\ud800", "\\xff", "\\x1b[2Jclear", "fine"} <= names, names
        for argv in (["rooms"], ["client-rooms", client.sid()]):
            code, out, err = await run_strict(*argv, *common)
            assert code == 0, err.decode("utf-8", "replace")
            assert "\\xff" in out.decode("utf-8") and b"\x1b[2J" not in out
    finally:
        await client.close()
        await node.stop()
