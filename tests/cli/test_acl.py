"""The README's least-privilege ACL line for ``siotools sniff`` works, with nothing more."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis

from siotools.protocol import Dialect, encode_broadcast
from siotools.redis_server import RedisServer

README = Path(__file__).parents[2] / "README.md"


def _sniffer_acl() -> str:
    """The ``ACL SETUSER siotools-sniffer ...`` line, as the README prints it."""
    found = re.search(r"^\s*ACL SETUSER siotools-sniffer .*$", README.read_text(), re.M)
    assert found, "the README gives the sniffer's ACL line"
    return found[0].strip().replace("siotools-sniffer", "sniffer", 1)


async def test_sniff_runs_with_the_readme_acl_user() -> None:
    with RedisServer() as server:
        admin = aioredis.from_url(server.url)
        words = _sniffer_acl().split()[1:]  # SETUSER sniffer on >... ~... &... +...
        words = [w.replace(">PASSWORD", ">sniff-pw") for w in words]
        await admin.execute_command("ACL", *words)
        url = f"redis://sniffer:sniff-pw@127.0.0.1:{server.port}/0"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIOTOOLS_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "siotools", "sniff", "--url", url, "--count", "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            # No traffic yet: after a few seconds it looks around with PUBSUB, allowed too.
            hint = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert "no frame under prefix 'socket.io'" in hint and "could not" not in hint, hint
            channel, payload = encode_broadcast(uid="u1", data=["ev", 1], dialect=Dialect.LEGACY)
            deadline = time.monotonic() + 20
            while proc.returncode is None and time.monotonic() < deadline:
                await admin.publish(channel, payload)
                try:
                    await asyncio.wait_for(proc.wait(), 0.2)
                except TimeoutError:
                    continue
            out, err = await asyncio.wait_for(proc.communicate(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
            await admin.aclose()
        assert proc.returncode == 0, err
        assert " ev " in out.decode() or "ev" in out.decode()
        assert "sniff-pw" not in (out + err).decode()
