"""LocalDelivery: what it delivers through real servers and clients, and the python-socketio /
python-engineio internals it relies on, each pinned so an upgrade that changes one fails here.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import engineio
import pytest
import socketio
from engineio import async_socket
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from siotools.delivery import LocalDelivery
from siotools.exceptions import ConfigurationError
from siotools.pynode import PythonNode
from tests.adapter.pyclients import Client

SAMPLES: list[Any] = [
    ["m"],
    ["m", {"i": 1, "t": 1.5}],
    ["m", "é ü 😀", None, True, 3, [1, [2, {"a": []}]]],
    ["m", {"nested": {"deep": [{"x": "y"}]}}, "two"],
]
BINARY_SAMPLES: list[Any] = [
    ["m", b"\x00\x01"],
    ["m", {"blob": bytearray(b"ab"), "n": 1}],
    ["m", [1, [b"deep"]]],
]


# ------------------------------------------------------------------ the pinned internals


def test_server_keeps_engineio_sockets_in_a_dict_by_sid() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    assert isinstance(sio.eio, engineio.AsyncServer)
    assert sio.eio.sockets == {}
    sock = async_socket.AsyncSocket(sio.eio, "abc")
    sio.eio.sockets["abc"] = sock
    # engineio's own lookup reads the same dict, and refuses a closed socket
    assert sio.eio._get_socket("abc") is sock
    sock.closed = True
    with pytest.raises(KeyError):
        sio.eio._get_socket("abc")


async def test_socket_send_is_a_put_on_an_unbounded_asyncio_queue() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    sock = async_socket.AsyncSocket(sio.eio, "abc")
    assert isinstance(sock.queue, asyncio.Queue)
    assert sock.queue.maxsize == 0
    assert isinstance(sock.last_ping, float) and sock.closed is False
    assert isinstance(sio.eio.ping_timeout, int | float)
    pkt = eio_packet.Packet(eio_packet.MESSAGE, "2hello")
    await sock.send(pkt)
    assert sock.queue.get_nowait() is pkt


async def test_send_closes_a_socket_whose_ping_timed_out() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    sock = async_socket.AsyncSocket(sio.eio, "abc")
    sock.last_ping = time.time() - sio.eio.ping_timeout - 1
    await sock.send(eio_packet.Packet(eio_packet.MESSAGE, "2x"))
    assert sock.closed
    assert sock.queue.qsize() == 0 or sock.queue.get_nowait().packet_type != eio_packet.MESSAGE


def test_engineio_encode_returns_the_cache() -> None:
    # python-engineio's websocket writer calls pkt.encode() once per packet it sends.
    pkt = eio_packet.Packet(eio_packet.MESSAGE, "2[1]")
    first = pkt.encode()
    assert first == "42[1]" and pkt.encode_cache == first
    pkt.data = "changed"
    assert pkt.encode() is first


@pytest.mark.parametrize("nsp", ["/", "/chat"])
def test_event_text_is_header_then_compact_stdlib_json(nsp: str) -> None:
    assert sio_packet.Packet.json.dumps is json.dumps
    head = sio_packet.Packet(sio_packet.EVENT, None, nsp).encode()
    for data in SAMPLES:
        full = sio_packet.Packet(sio_packet.EVENT, data, nsp).encode()
        assert full == head + json.dumps(data, separators=(",", ":"))
    # bytes: the stdlib encoder refuses them, python-socketio makes a binary event
    with pytest.raises(TypeError):
        json.JSONEncoder(separators=(",", ":")).encode(["m", b"x"])
    scanned = sio_packet.Packet(sio_packet.EVENT, ["m", b"x"], nsp)
    assert scanned.packet_type == sio_packet.BINARY_EVENT


def test_manager_pending_disconnect_is_a_dict_of_lists() -> None:
    mgr = socketio.AsyncManager()
    assert mgr.pending_disconnect == {}
    # socketio.base_manager.BaseManager.pre_disconnect
    mgr.set_server(socketio.AsyncServer(async_mode="aiohttp"))
    mgr.rooms["/"] = {None: {"sid1": "eio1"}}
    mgr.pre_disconnect("sid1", "/")
    assert mgr.pending_disconnect == {"/": ["sid1"]}


@pytest.mark.parametrize("nsp", ["/", "/chat"])
@pytest.mark.parametrize("data", SAMPLES + BINARY_SAMPLES)
def test_encode_is_python_socketio_encoding(nsp: str, data: list[Any]) -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    expected = sio.packet_class(sio_packet.EVENT, namespace=nsp, data=data).encode()
    expected = expected if isinstance(expected, list) else [expected]
    got = LocalDelivery(sio).encode(nsp, data)
    assert [p.encode() for p in got] == [
        eio_packet.Packet(eio_packet.MESSAGE, e).encode() for e in expected
    ]
    assert all(p.encode_cache is not None for p in got)


def test_a_custom_json_module_takes_the_full_path() -> None:
    class Loud:
        @staticmethod
        def dumps(obj: Any, **kw: Any) -> str:
            return json.dumps(obj, **kw).upper()

        loads = staticmethod(json.loads)

    class LoudPacket(sio_packet.Packet):  # type: ignore[misc]
        json = Loud

    sio = socketio.AsyncServer(async_mode="aiohttp")
    sio.packet_class = LoudPacket
    (pkt,) = LocalDelivery(sio).encode("/", ["m", "abc"])
    assert pkt.encode() == '42["M","ABC"]'


def test_needs_a_socketio_server() -> None:
    with pytest.raises(ConfigurationError, match="AsyncServer"):
        LocalDelivery(object())


# ------------------------------------------------------------- real server, real clients


@pytest.fixture
async def node(redis_url: str, key: str) -> AsyncIterator[PythonNode]:
    n = await PythonNode(redis_url, key=key, namespaces=["/", "/chat"]).start()
    yield n
    await n.stop()


def recipients(node: PythonNode, room: str, nsp: str = "/") -> list[tuple[str, str]]:
    return list(node.adapter.rooms[nsp][room].items())


async def test_delivers_to_every_recipient(node: PythonNode) -> None:
    clients = [await Client().connect(node.url, ["/", "/chat"]) for _ in range(3)]
    for c in clients[:2]:
        await c.join("r")
        await c.join("r", nsp="/chat")
    delivery = LocalDelivery(node.sio)
    assert await delivery.deliver("/", ["news", {"a": 1}, "é"], recipients(node, "r")) == 2
    assert await delivery.deliver("/chat", ["chat", b"\x00\xff"], recipients(node, "r", "/chat"))
    for c in clients[:2]:
        assert await c.wait_event("news") == [[{"a": 1}, "é"]]
        await c.wait_event("chat")
        assert [args for nsp, ev, args in c.events if ev == "chat"] == [[b"\x00\xff"]]
        assert [nsp for nsp, ev, _ in c.events if ev == "chat"] == ["/chat"]
    assert await clients[2].no_event("news")
    assert delivery.delivered == 4
    for c in clients:
        await c.close()


async def test_skips_sockets_pending_disconnect_and_closed(node: PythonNode) -> None:
    a, b, c = [await Client().connect(node.url) for _ in range(3)]
    for client in (a, b, c):
        await client.join("r")
    targets = recipients(node, "r")
    by_sid = dict(targets)
    node.adapter.pending_disconnect["/"] = [a.sid()]
    sock_b = node.sio.eio.sockets[by_sid[b.sid()]]
    sock_b.closed = True
    try:
        sent = await LocalDelivery(node.sio).deliver("/", ["news", 1], targets)
    finally:
        node.adapter.pending_disconnect.pop("/")
        sock_b.closed = False
    assert sent == 1
    assert await c.wait_event("news") == [[1]]
    assert await a.no_event("news")
    assert await b.no_event("news", wait=0)
    for client in (a, b, c):
        await client.close()


async def test_volatile_drops_for_a_socket_with_queued_packets(node: PythonNode) -> None:
    a, b = [await Client().connect(node.url) for _ in range(2)]
    await a.join("r")
    await b.join("r")
    targets = recipients(node, "r")
    eio_a = dict(targets)[a.sid()]
    queue = node.sio.eio.sockets[eio_a].queue
    delivery = LocalDelivery(node.sio)
    # a backlog on a's queue, put before its writer task runs again (no await in between)
    queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))
    sent = await delivery.deliver("/", ["v", 1], targets, volatile=True)
    assert sent == 1 and delivery.volatile_dropped == 1
    assert await b.wait_event("v") == [[1]]
    assert await a.no_event("v")
    await a.close()
    await b.close()


async def test_a_timed_out_socket_is_closed_not_sent_to(node: PythonNode) -> None:
    a, b = [await Client().connect(node.url) for _ in range(2)]
    await a.join("r")
    await b.join("r")
    targets = recipients(node, "r")
    sock_a = node.sio.eio.sockets[dict(targets)[a.sid()]]
    sock_a.last_ping = time.time() - node.sio.eio.ping_timeout - 1
    assert await LocalDelivery(node.sio).deliver("/", ["t", 1], targets) == 1
    assert await b.wait_event("t") == [[1]]
    # AsyncSocket.send -> check_ping_timeout closed it (and queued Engine.IO CLOSE)
    assert sock_a.closed
    assert await a.no_event("t")
    await a.close()
    await b.close()


async def test_order_is_kept_with_the_servers_own_sends(node: PythonNode) -> None:
    a = await Client().connect(node.url)
    await a.join("r")
    delivery = LocalDelivery(node.sio)
    for i in range(50):
        if i % 2:
            await node.sio.emit("seq", i, to=a.sid())
        else:
            await delivery.deliver("/", ["seq", i], recipients(node, "r"))
    assert await a.wait_event("seq", count=50) == [[i] for i in range(50)]
    await a.close()
