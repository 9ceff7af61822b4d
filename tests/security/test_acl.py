"""Least privilege: each role runs with exactly the ACL line the README gives it.

The lines are the README's (section "Least privilege"), parsed from it, so the README
and the tests cannot drift apart. A refused subscription fails ``start()`` with a
sentence naming the command and the fix, instead of leaving a deaf node.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from siotools import AsyncRedisAdapter, ClusterClient, Emitter
from siotools.exceptions import RedisUnavailableError, SubscriptionRefused
from siotools.pynode import PythonNode
from siotools.redis_server import RedisServer
from siotools.sniffer.live import LiveSource
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Subscriber
from tests.adapter.pyclients import Client

README = Path(__file__).resolve().parents[2] / "README.md"


def acl_lines() -> dict[str, str]:
    """``{role: "ACL SETUSER ..." arguments}`` from the README's least-privilege block."""
    text = README.read_text()
    start = text.index("<!-- acl-lines -->")
    block = text[start : text.index("<!-- /acl-lines -->", start)]
    found = {}
    for match in re.finditer(r"^\s*ACL SETUSER (\S+) (.+)$", block, re.MULTILINE):
        found[match.group(1)] = match.group(2)
    return found


@pytest.fixture(scope="module")
def acl_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def users(acl_redis: RedisServer) -> dict[str, str]:
    """Create every README user (password: its name reversed); ``{role: url}``."""
    admin = redis.Redis(port=acl_redis.port)
    urls = {}
    for role, rules in acl_lines().items():
        password = role[::-1]
        rules = rules.replace(">PASSWORD", f">{password}")
        admin.execute_command("ACL", "SETUSER", role, "reset", *rules.split())
        urls[role] = f"redis://{role}:{password}@127.0.0.1:{acl_redis.port}/0"
    admin.close()
    return urls


def test_readme_gives_a_line_per_role() -> None:
    assert set(acl_lines()) == {
        "siotools-node",
        "siotools-node-psub",
        "siotools-cluster",
        "siotools-emitter",
        "siotools-sniffer",
    }


@pytest.fixture
async def two_nodes(users: dict[str, str], key: str) -> AsyncIterator[list[PythonNode]]:
    # The README's lines use the default prefix; a test prefix would need its own rules.
    del key
    nodes = [
        PythonNode(users["siotools-node"], namespaces=["/"]),
        PythonNode(users["siotools-node-psub"], namespaces=["/"], subscription_mode="psubscribe"),
    ]
    for node in nodes:
        await node.start()
    yield nodes
    for node in nodes:
        await node.stop()


async def test_nodes_cluster_client_emitter_and_sniffer_with_their_users(
    two_nodes: list[PythonNode], users: dict[str, str]
) -> None:
    a, b = two_nodes
    heard: list[Any] = []
    sniffer = LiveSource(users["siotools-sniffer"], "socket.io", lambda now, b, s: heard.extend(b))
    await sniffer.start()
    ca = await Client().connect(a.url)
    cb = await Client().connect(b.url)
    await ca.join("room-a")
    # node to node, both ways (SUBSCRIBE mode and PSUBSCRIBE mode)
    await a.sio.emit("from-a", 1)
    await b.sio.emit("from-b", 2, to="room-a")
    assert await cb.wait_event("from-a") == [[1]]
    assert await ca.wait_event("from-b") == [[2]]
    assert await a.adapter.node_count() == 2
    assert sorted(await b.adapter.clients()) == sorted([ca.sid(), cb.sid()])
    # the ClusterClient asks and acts
    async with ClusterClient(users["siotools-cluster"]) as cluster:
        assert await cluster.namespaces() == ["/"]
        assert set(await cluster.all_rooms()) >= {"room-a", ca.sid(), cb.sid()}
        await cluster.remote_join(cb.sid(), "room-b")
        assert await cluster.clients(["room-b"]) == [cb.sid()]
        await cluster.remote_disconnect(cb.sid())
        await cb.wait_disconnected()
    # the emitter publishes
    async with Emitter(users["siotools-emitter"]) as emitter:
        await emitter.to("room-a").emit("from-emitter", 3)
        await emitter.flush()
    assert await ca.wait_event("from-emitter") == [[3]]
    for _ in range(100):
        if any(b"from-emitter" in item[-1] for item in heard):
            break
        await asyncio.sleep(0.02)
    assert any(b"from-emitter" in item[-1] for item in heard)
    assert sniffer.errors == []
    await sniffer.close()
    await ca.close()
    await cb.close()
    for node in (a, b):
        assert node.adapter.stats["errors"] == 0


async def test_psubscribe_refused_by_a_prefix_rule_fails_start(acl_redis: RedisServer) -> None:
    # Redis 7 compares a PSUBSCRIBE pattern with the channel rules literally: a user
    # with "&socket.io*" may PSUBSCRIBE "socket.io*" but not "socket.io#/#*".
    admin = aioredis.Redis(port=acl_redis.port)
    await admin.execute_command(
        "ACL", "SETUSER", "prefix-only", "reset", "on", ">pw", "+@pubsub", "+ping", "&socket.io*"
    )
    await admin.aclose()
    node = AsyncRedisAdapter(
        f"redis://prefix-only:pw@127.0.0.1:{acl_redis.port}/0", subscription_mode="psubscribe"
    )
    with pytest.raises(SubscriptionRefused) as info:
        await node.start()
    await node.close()
    text = str(info.value)
    assert info.value.command == "PSUBSCRIBE" and info.value.items == (b"socket.io#/#*",)
    assert "refused PSUBSCRIBE 'socket.io#/#*'" in text and "NOPERM" in text
    assert "ACL SETUSER <user> &<pattern>" in text and "literally" in text
    assert ":pw@" not in text and "prefix-only:***@" in text
    allowed = Subscriber(
        RedisEndpoint.from_url(f"redis://prefix-only:pw@127.0.0.1:{acl_redis.port}/0"),
        lambda *a: None,
    )
    await allowed.start()
    await allowed.psubscribe([b"socket.io*"])  # the rule itself, literally: allowed
    await allowed.close()


async def test_missing_command_permission_names_it(users: dict[str, str]) -> None:
    node = AsyncRedisAdapter(users["siotools-node"], subscription_mode="psubscribe")
    with pytest.raises(SubscriptionRefused, match=r"ACL SETUSER <user> \+psubscribe"):
        await node.start()
    await node.close()


async def test_subscribe_refused_fails_start(acl_redis: RedisServer) -> None:
    admin = aioredis.Redis(port=acl_redis.port)
    await admin.execute_command(
        "ACL", "SETUSER", "narrow", "reset", "on", ">pw", "+@pubsub", "+ping", "&other*"
    )
    await admin.aclose()
    node = AsyncRedisAdapter(f"redis://narrow:pw@127.0.0.1:{acl_redis.port}/0")
    with pytest.raises(SubscriptionRefused) as info:
        await node.start()
    await node.close()
    assert info.value.command == "SUBSCRIBE"
    assert "ACL SETUSER <user> &<prefix>*" in str(info.value)


async def test_requirepass_without_password_fails_start() -> None:
    with RedisServer(extra_args=["--requirepass", "pw"]) as server:
        node = AsyncRedisAdapter(server.url)
        with pytest.raises(RedisUnavailableError) as info:
            await node.start()
        await node.close()
        assert "requires a password" in str(info.value)
        assert "redis://:PASSWORD@" in str(info.value)


async def test_permission_revoked_while_running_is_reported(acl_redis: RedisServer) -> None:
    admin = aioredis.Redis(port=acl_redis.port)
    await admin.execute_command(
        "ACL", "SETUSER", "revoked", "reset", "on", ">pw", "+@pubsub", "+ping", "&a*", "&b*"
    )
    errors: list[BaseException] = []
    sub = Subscriber(
        RedisEndpoint.from_url(f"redis://revoked:pw@127.0.0.1:{acl_redis.port}/0"),
        lambda *a: None,
        on_error=errors.append,
    )
    await sub.start()
    await sub.subscribe([b"a1"])
    await sub.subscribe([b"b1"])
    # Redis 7 disconnects a subscriber whose channel permissions shrink; the reconnect's
    # SUBSCRIBE of "a1" is then refused, said once, and the rest is restored.
    await admin.execute_command("ACL", "SETUSER", "revoked", "resetchannels", "&b*")
    for _ in range(200):
        if any(isinstance(e, SubscriptionRefused) for e in errors) and sub.connected:
            break
        await asyncio.sleep(0.02)
    refused = [e for e in errors if isinstance(e, SubscriptionRefused)]
    assert len(refused) == 1 and refused[0].items == (b"a1",)
    assert sub.refused == 1 and sub.channels == {b"b1"}
    for _ in range(100):
        if await admin.execute_command("PUBSUB", "NUMSUB", "b1") == [b"b1", 1]:
            break
        await asyncio.sleep(0.02)
    assert await admin.execute_command("PUBSUB", "NUMSUB", "b1") == [b"b1", 1]
    await admin.aclose()
    await sub.close()


async def test_a_node_without_pubsub_channels_skips_the_generation_check(
    acl_redis: RedisServer,
) -> None:
    admin = aioredis.Redis(port=acl_redis.port)
    rules = (
        acl_lines()["siotools-node"].replace(">PASSWORD", ">pw").replace(" +pubsub|channels", "")
    )
    await admin.execute_command("ACL", "SETUSER", "no-channels", "reset", *rules.split())
    await admin.aclose()
    node = AsyncRedisAdapter(f"redis://no-channels:pw@127.0.0.1:{acl_redis.port}/0")
    errors: list[BaseException] = []
    node.on_error(errors.append)
    await node.start()  # the advisory check is refused, the node starts all the same
    assert errors == [] and node.stats["errors"] == 0
    assert await node.node_count() == 1
    await node.close()
