"""The cluster operation commands, run as subprocesses against a real two-node cluster."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from siotools.cli.options import json_text
from siotools.pynode import PythonNode
from tests.adapter.pyclients import Client


@dataclass
class Cli:
    code: int
    out: str
    err: str

    def json(self) -> object:
        assert self.out, f"no output; exit {self.code}, stderr: {self.err!r}"
        return json.loads(self.out)


@dataclass
class Cluster:
    url: str
    key: str
    nodes: list[PythonNode]
    alice: Client
    bob: Client

    async def run(self, *args: str, nsp: str = "/chat", timeout: float = 3.0) -> Cli:
        """Run ``siotools ARGS`` without blocking the loop the nodes answer on."""
        argv = [*args, "--url", self.url, "--key", self.key, "--nsp", nsp]
        argv += ["--timeout", str(timeout)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "siotools",
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode is not None
        return Cli(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def cluster(redis_url: str, key: str) -> AsyncIterator[Cluster]:
    nodes = [PythonNode(redis_url, key=key, namespaces=["/", "/chat"]) for _ in range(2)]
    for node in nodes:
        await node.start()
    alice = await Client("alice").connect(nodes[0].url, ["/", "/chat"])
    bob = await Client("bob").connect(nodes[1].url, ["/", "/chat"])
    await alice.join("general", "python", nsp="/chat")
    await bob.join("general", nsp="/chat")
    try:
        yield Cluster(redis_url, key, nodes, alice, bob)
    finally:
        for c in (alice, bob):
            await c.close()
        for node in nodes:
            await node.stop()


async def test_rooms_table_and_json(cluster: Cluster) -> None:
    table = await cluster.run("rooms")
    assert table.code == 0, table.err
    assert "general" in table.out and "python" in table.out
    rows = (await cluster.run("rooms", "--json")).json()
    assert {"room": "general", "sockets": 2} in rows  # type: ignore[operator]
    assert {"room": "python", "sockets": 1} in rows  # type: ignore[operator]


async def test_clients_and_client_rooms(cluster: Cluster) -> None:
    alice, bob = cluster.alice.sid("/chat"), cluster.bob.sid("/chat")
    everyone = (await cluster.run("clients", "--json")).json()
    assert sorted(everyone) == sorted([alice, bob])  # type: ignore[arg-type]
    in_python = (await cluster.run("clients", "--room", "python", "--json")).json()
    assert in_python == [alice]
    # 5.x clientRooms: only bob's node answers, and no answer by the timeout means "no such
    # socket", so a busy machine needs a bound it will not reach (the answer ends the wait).
    rooms = (await cluster.run("client-rooms", bob, "--json", timeout=15.0)).json()
    assert sorted(rooms) == sorted([bob, "general"])  # type: ignore[arg-type]


async def test_join_leave_then_visible(cluster: Cluster) -> None:
    bob = cluster.bob.sid("/chat")
    joined = await cluster.run("join", bob, "vip")
    assert joined.code == 0, joined.err
    assert f"{bob} joined room vip" in joined.out
    assert "vip" in (await cluster.run("client-rooms", bob, "--json")).json()  # type: ignore[operator]
    left = (await cluster.run("leave", bob, "vip", "--json")).json()
    assert left == {"ok": True, "op": "leave", "sid": bob, "nsp": "/chat", "room": "vip"}
    assert "vip" not in (await cluster.run("client-rooms", bob, "--json")).json()  # type: ignore[operator]


async def test_emit_reaches_clients(cluster: Cluster) -> None:
    out = await cluster.run("emit", "news", '{"title": "hi"}', "42", "--room", "python")
    assert out.code == 0, out.err
    assert "2 nodes listening" in out.out
    assert await cluster.alice.wait_event("news") == [[{"title": "hi"}, 42]]
    out = await cluster.run("emit", "hello", '"world"', "--json", nsp="/")
    assert out.json()["nodes"] == 2  # type: ignore[index]
    assert await cluster.bob.wait_event("hello") == [["world"]]
    assert await cluster.bob.no_event("news", wait=0.1)


async def test_custom_request_every_node_answers(cluster: Cluster) -> None:
    replies = (await cluster.run("custom-request", '{"q": 1}', "--json")).json()
    assert isinstance(replies, list) and len(replies) == 2


async def test_disconnect_close(cluster: Cluster) -> None:
    bob = cluster.bob.sid("/chat")
    out = await cluster.run("disconnect", bob, "--close")
    assert out.code == 0, out.err
    await cluster.bob.wait_disconnected("/")


async def test_unknown_socket_exit_1_one_sentence(cluster: Cluster) -> None:
    out = await cluster.run("client-rooms", "no-such-sid", timeout=0.3)
    assert out.code == 1
    assert out.err.count("\n") == 1 and "no-such-sid" in out.err
    out = await cluster.run("join", "no-such-sid", "r", timeout=0.3)
    assert out.code == 1


async def test_namespace_without_nodes_exit_1(cluster: Cluster) -> None:
    out = await cluster.run("clients", nsp="/nowhere")
    assert out.code == 1
    assert "No node serves namespace /nowhere" in out.err


async def test_usage_and_connection_errors_exit_2(cluster: Cluster) -> None:
    bad_json = await cluster.run("emit", "ev", "{not json")
    assert bad_json.code == 2 and bad_json.err.count("\n") == 1
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "siotools",
        "rooms",
        "--url",
        "redis://127.0.0.1:1/0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert err.decode().startswith("siotools: Cannot reach Redis") and err.count(b"\n") == 1
    missing = await cluster.run("join", "only-a-sid")
    assert missing.code == 2 and "Traceback" not in missing.err


def test_socket_ids_starting_with_a_dash_get_a_hint() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "siotools", "join", "-AbCdEf", "room", "--url", "redis://x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "goes after '--'" in out.stderr


async def test_emit_to_an_empty_room_says_so_with_exit_3(cluster: Cluster) -> None:
    out = await cluster.run("emit", "news", "1", "--room", "nobody-here")
    assert out.code == 3, (out.out, out.err)
    assert "0 sockets" in out.out
    assert out.err.strip() == (
        "siotools: room nobody-here of /chat is empty (no socket is in it), "
        "so nobody received 'news'."
    )
    out = await cluster.run("emit", "news", "1", "--room", "nobody-here", "--json")
    assert out.code == 3 and out.json()["sockets"] == 0  # type: ignore[index]
    # No node at all is a failure (exit 1), not an emit to nobody: nothing is sent.
    out = await cluster.run("emit", "news", "1", nsp="/nowhere")
    assert out.code == 1 and "No node serves namespace /nowhere" in out.err
    assert out.err.count("\n") == 1 and out.out == ""
    out = await cluster.run("emit", "news", "1", "--room", "general")
    assert out.code == 0 and "2 sockets" in out.out, out.err


async def test_emit_output_agrees_in_number(cluster: Cluster) -> None:
    out = await cluster.run("emit", "news", "1", "--room", "python")
    assert out.code == 0, out.err
    assert "with 1 argument to" in out.out and "1 socket)" in out.out


async def test_json_output_is_strict_json(cluster: Cluster) -> None:
    """NaN/Infinity are not JSON: refused as arguments, never printed by --json."""
    for word in ("NaN", "Infinity", '{"a": NaN}', "[-Infinity]"):
        out = await cluster.run("emit", "news", word, "--json")
        assert out.code == 2, (word, out.out)
        assert "is not JSON" in out.err and out.out == ""
    value = {"load": float("nan"), "peaks": [float("inf"), -float("inf"), 1.5], "n": 1}
    text = json_text(value)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in --json")) == {
        "load": {"$num": "NaN"},
        "peaks": [{"$num": "Infinity"}, {"$num": "-Infinity"}, 1.5],
        "n": 1,
    }
