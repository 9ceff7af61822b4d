"""PythonNode on every server stack: real clients connect and receive, permessage-deflate is
negotiated only when asked for, and the host process keeps its signal handlers."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest
import socketio

from siotools.exceptions import ConfigurationError
from siotools.pynode import (
    DEFAULT_STACK,
    STACKS,
    HttpServer,
    PythonNode,
    async_mode,
    without_ws_compression,
)
from siotools.redis_server import free_port
from tests.adapter.pyclients import Client

# uvicorn 0.3x+ announces that ws="websockets" will mean websockets-sansio one day.
# websockets 14+ deprecates the legacy server that ws="websockets" runs on.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets"),
]


def ws_url(node: PythonNode) -> str:
    return f"ws://127.0.0.1:{node.port}/socket.io/?EIO=4&transport=websocket"


async def negotiated_compression(node: PythonNode) -> int:
    """Open a raw websocket offering permessage-deflate; the window bits agreed (0: none)."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(node), compress=15) as ws,
    ):
        opening = await ws.receive_str()
        assert opening.startswith('0{"sid":')
        return int(ws.compress)


@pytest.mark.parametrize("stack", STACKS)
async def test_every_stack_serves_a_cluster_node(stack: str, redis_url: str, key: str) -> None:
    # (checked before any client: python-engineio's AsyncClient installs its own)
    before = signal.getsignal(signal.SIGINT)
    a = await PythonNode(redis_url, key=key, stack=stack).start()
    b = await PythonNode(redis_url, key=key, stack=stack).start()
    try:
        assert signal.getsignal(signal.SIGINT) is before
        assert a.sio.async_mode == async_mode(stack)
        ca = await Client().connect(a.url)
        cb = await Client().connect(b.url)
        await ca.join("r")
        await cb.join("r")
        await a.sio.emit("news", {"n": 1}, to="r")
        assert await ca.wait_event("news") == [[{"n": 1}]]
        assert await cb.wait_event("news") == [[{"n": 1}]]
        await cb.sio.emit("hello", "from b")
        for _ in range(100):
            if b.received:
                break
            await asyncio.sleep(0.02)
        assert b.received == [("/", cb.sid(), "hello", ["from b"])]
        assert await negotiated_compression(a) == 0
        await ca.close()
        await cb.close()
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.parametrize("stack", STACKS)
async def test_ws_compression_is_negotiated_when_asked_for(
    stack: str, redis_url: str, key: str
) -> None:
    async with PythonNode(redis_url, key=key, stack=stack, ws_compression=True) as node:
        assert await negotiated_compression(node) > 0  # window bits: 15, or 12 (sansio)
        client = await Client().connect(node.url)
        await client.join("r")
        await node.sio.emit("z", "x" * 2000, to="r")
        assert await client.wait_event("z") == [["x" * 2000]]
        await client.close()


async def test_the_default_stack_is_uncompressed(redis_url: str, key: str) -> None:
    assert DEFAULT_STACK in STACKS
    async with PythonNode(redis_url, key=key) as node:
        assert node.http.stack == DEFAULT_STACK
        assert await negotiated_compression(node) == 0


def test_an_unknown_stack_is_a_configuration_error(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown server stack 'tornado'; choose one of"):
        PythonNode(redis_url, stack="tornado")


def test_the_server_must_match_the_stack() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    with pytest.raises(ConfigurationError, match="async_mode='asgi'"):
        HttpServer(sio, port=1, stack="uvicorn-wsproto")


@pytest.mark.parametrize("middleware", [False, True])
async def test_aiohttp_compresses_unless_the_middleware_is_there(middleware: bool) -> None:
    # python-engineio's aiohttp driver accepts permessage-deflate whenever it is offered
    # (socket.io-client offers it); without_ws_compression() hides the offer.
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application(middlewares=[without_ws_compression()] if middleware else [])
    sio.attach(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", compress=15
            ) as ws,
        ):
            assert (await ws.receive_str()).startswith("0{")
            assert ws.compress == (0 if middleware else 15)
            await ws.send_str("40")
            assert (await ws.receive_str()).startswith('40{"sid":')
    finally:
        await runner.cleanup()
