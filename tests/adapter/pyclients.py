"""Real python-socketio clients for the adapter tests."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio


class Client:
    """A python-socketio AsyncClient that records every event it receives."""

    def __init__(self, name: str = "c") -> None:
        self.name = name
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, str, list[Any]]] = []
        self._changed = asyncio.Event()
        self.disconnected: list[str] = []

        async def catch_all(event: str, *args: Any) -> None:
            self._record("/", event, list(args))

        self.sio.on("*", catch_all)

    def _record(self, nsp: str, event: str, args: list[Any]) -> None:
        self.events.append((nsp, event, args))
        self._changed.set()

    async def connect(self, url: str, namespaces: list[str] | None = None) -> Client:
        for nsp in namespaces or ["/"]:
            if nsp != "/":

                async def handler(event: str, *args: Any, _nsp: str = nsp) -> None:
                    self._record(_nsp, event, list(args))

                self.sio.on("*", handler, namespace=nsp)

            @self.sio.on("disconnect", namespace=nsp)
            async def on_disconnect(*_: Any, _nsp: str = nsp) -> None:
                self.disconnected.append(_nsp)
                self._changed.set()

        await self.sio.connect(url, namespaces=namespaces or ["/"], transports=["websocket"])
        return self

    def sid(self, nsp: str = "/") -> str:
        sid = self.sio.get_sid(nsp)
        assert sid is not None
        return str(sid)

    async def join(self, *rooms: str, nsp: str = "/") -> list[str]:
        result: list[str] = await self.sio.call("join", list(rooms), namespace=nsp, timeout=5)
        return result

    async def leave(self, *rooms: str, nsp: str = "/") -> list[str]:
        result: list[str] = await self.sio.call("leave", list(rooms), namespace=nsp, timeout=5)
        return result

    async def wait_event(self, event: str, *, count: int = 1, timeout: float = 5.0) -> list[Any]:
        """Wait until ``count`` events named ``event`` arrived; returns their args."""

        async def until() -> list[Any]:
            while True:
                got = [args for _, ev, args in self.events if ev == event]
                if len(got) >= count:
                    return got
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(until(), timeout)

    async def no_event(self, event: str, wait: float = 0.3) -> bool:
        await asyncio.sleep(wait)
        return all(ev != event for _, ev, _ in self.events)

    async def wait_disconnected(self, nsp: str = "/", timeout: float = 5.0) -> None:
        async def until() -> None:
            while nsp not in self.disconnected:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), timeout)

    async def close(self) -> None:
        await self.sio.disconnect()
