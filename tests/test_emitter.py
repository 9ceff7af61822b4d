"""Emitter: broadcasts from a process with no sockets reach Python nodes' clients."""

from __future__ import annotations

import pytest

from siotools import ConfigurationError, Dialect, Emitter, RedisUnavailableError
from siotools.protocol import decode
from siotools.pynode import PythonNode
from siotools.redis_server import free_port
from tests.adapter.pyclients import Client


async def test_emitter_reaches_rooms_and_namespaces(redis_url: str, key: str) -> None:
    async with PythonNode(redis_url, key=key, namespaces=["/", "/chat"]) as node:
        c1 = await Client().connect(node.url, ["/", "/chat"])
        c2 = await Client().connect(node.url)
        await c1.join("r1")
        async with Emitter(redis_url, key=key) as io:
            await io.to("r1").emit("only-r1", 1)
            await io.emit("everyone", {"a": [1, 2]})
            await io.of("chat").emit("in-chat", "x")
            await io.root.except_(c2.sid()).emit("not-c2", True)
            await io.flush()
        assert await c1.wait_event("only-r1") == [[1]]
        assert await c2.wait_event("everyone") == [[{"a": [1, 2]}]]
        await c1.wait_event("in-chat")
        assert ("/chat", "in-chat", ["x"]) in c1.events
        assert await c1.wait_event("not-c2") == [[True]]
        assert await c2.no_event("only-r1") and await c2.no_event("not-c2", 0.05)
        await c1.close()
        await c2.close()


async def test_emitter_wire_format(redis_url: str, key: str) -> None:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(redis_url)
    ps = r.pubsub()
    await ps.psubscribe(f"{key}#*")
    await ps.get_message(timeout=1)
    async with Emitter(redis_url, key=key, dialect=Dialect.LEGACY) as io:
        await io.to("room1").volatile.emit("ev", b"\x01")
    msg = None
    while msg is None:
        msg = await ps.get_message(ignore_subscribe_messages=True, timeout=2)
    assert msg["channel"] == f"{key}#/#room1#".encode()
    frame = decode(msg["channel"], msg["data"], prefix=key)
    assert frame.uid == "emitter"  # type: ignore[union-attr]
    assert frame.packet == {"type": 5, "data": ["ev", b"\x01"], "nsp": "/"}  # type: ignore[union-attr]
    assert frame.opts == {"rooms": ["room1"], "flags": {"volatile": True}}  # type: ignore[union-attr]
    await ps.aclose()
    await r.aclose()


async def test_emitter_errors_are_clear() -> None:
    with pytest.raises(ConfigurationError):
        Emitter(dialect=Dialect.PYSOCKETIO)  # sniffed, not spoken
    with pytest.raises(RedisUnavailableError, match="Cannot reach Redis"):
        await Emitter(f"redis://127.0.0.1:{free_port()}/0").emit("x")
    with pytest.raises(RedisUnavailableError):
        await Emitter(f"redis://127.0.0.1:{free_port()}/0", dialect=Dialect.SHARDED).emit("x")
