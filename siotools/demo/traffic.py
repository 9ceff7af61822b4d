"""What the demo's users and servers do: server handlers, simulated clients, remote operations.

The server handlers turn client events into broadcasts (the traffic that crosses Redis);
client-to-server events themselves never reach Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from siotools._extras import require
from siotools.exceptions import RequestError

if TYPE_CHECKING:
    from siotools.cluster import ClusterClient
    from siotools.demo.cluster import DemoCluster
    from siotools.nodepeer import NodePeer

__all__ = [
    "CHAT_ROOMS",
    "NAMESPACES",
    "NodeSide",
    "NodeState",
    "SimClient",
    "install_handlers",
    "pick_action",
    "remote_operation",
]

NAMESPACES = ("/", "/chat")
"""The demo's namespaces: ``/`` (lobby, presence, news) and ``/chat`` (chat rooms)."""

CHAT_ROOMS: dict[str, int] = {
    "general": 40,
    "random": 20,
    "python": 12,
    "node": 10,
    "ops": 6,
    "design": 4,
    "music": 3,
    "books": 2,
    "archive": 1,
}
"""Rooms of ``/chat`` and their popularity: how likely users join them and talk in them.

``vip`` is not listed: only remote joins put sockets there.
"""

_NAMES = (
    "ada", "alan", "barbara", "claude", "donald", "edsger", "frances", "grace", "guido",
    "ken", "linus", "margaret", "niklaus", "radia", "rob", "tim",
)  # fmt: skip
_WORDS = (
    "deploy", "redis", "socket", "room", "latency", "cache", "merge", "release", "broadcast",
    "adapter", "cluster", "node", "python", "coffee", "lunch", "review", "ship", "green",
    "build", "metrics", "alert", "pager", "retry", "timeout", "lgtm", "thanks", "hello",
)  # fmt: skip
_EMOJI = ("+1", "tada", "eyes", "rocket", "heart", "laugh")


def _text(rng: random.Random) -> str:
    # Mostly short lines, now and then a long paste: payload sizes should have a tail.
    n = rng.choice((2, 3, 4, 5, 6, 8, 12)) if rng.random() > 0.05 else rng.randint(80, 300)
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _pick_rooms(rng: random.Random, k: int) -> list[str]:
    rooms = list(CHAT_ROOMS)
    weights = list(CHAT_ROOMS.values())
    chosen: list[str] = []
    while len(chosen) < k:
        room = rng.choices(rooms, weights)[0]
        if room not in chosen:
            chosen.append(room)
    return chosen


# ---------------------------------------------------------------------- servers


class NodeState:
    """What one python node knows about its users (for its handlers and custom hook).

    Args:
        name: The node's label, e.g. ``py-1``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.users: dict[tuple[str, str], str] = {}

    def user(self, nsp: str, sid: str) -> str:
        """The user name of socket ``sid`` in ``nsp``."""
        return self.users.get((nsp, sid), "?")

    def custom_hook(self, data: Any) -> Any:
        """This node's answer to ``custom_request``: its name and socket counts."""
        sockets = {nsp: sum(1 for n, _ in self.users if n == nsp) for nsp in NAMESPACES}
        return {"node": self.name, "sockets": sockets, "echo": data}


def install_handlers(sio: Any, state: NodeState) -> None:
    """Add the demo's event handlers to a python-socketio ``AsyncServer``.

    Args:
        sio: The server.
        state: The node's user registry.
    """

    def room_of(data: Any) -> str | None:
        room = data.get("room") if isinstance(data, dict) else data
        return room if isinstance(room, str) else None

    for nsp in NAMESPACES:

        async def connect(sid: str, environ: Any, auth: Any = None, nsp: str = nsp) -> None:
            user = auth.get("user") if isinstance(auth, dict) else None
            state.users[(nsp, sid)] = str(user or sid[:6])
            if nsp == "/":
                await sio.enter_room(sid, "lobby", namespace="/")

        async def disconnect(sid: str, reason: Any = None, nsp: str = nsp) -> None:
            state.users.pop((nsp, sid), None)

        sio.on("connect", connect, namespace=nsp)
        sio.on("disconnect", disconnect, namespace=nsp)

    chat = "/chat"

    async def enter(sid: str, data: Any) -> list[str]:
        room = room_of(data)
        if room is not None:
            await sio.enter_room(sid, room, namespace=chat)
            payload = {"room": room, "user": state.user(chat, sid)}
            await sio.emit("joined", payload, to=room, skip_sid=sid, namespace=chat)
        rooms: list[str] = sio.rooms(sid, namespace=chat)
        return rooms

    async def exit_(sid: str, data: Any) -> list[str]:
        room = room_of(data)
        if room is not None:
            payload = {"room": room, "user": state.user(chat, sid)}
            await sio.emit("left", payload, to=room, skip_sid=sid, namespace=chat)
            await sio.leave_room(sid, room, namespace=chat)
        rooms: list[str] = sio.rooms(sid, namespace=chat)
        return rooms

    def relay(event: str, fields: tuple[str, ...]) -> Callable[[str, Any], Awaitable[None]]:
        async def handler(sid: str, data: Any) -> None:
            room = room_of(data)
            if room is None or not isinstance(data, dict):
                return
            payload = {k: data.get(k) for k in fields}
            payload.update(room=room, user=state.user(chat, sid), ts=time.time())
            await sio.emit(event, payload, to=room, skip_sid=sid, namespace=chat)

        return handler

    async def typing(sid: str, data: Any) -> None:
        room = room_of(data)
        if room is not None:
            payload = {"room": room, "user": state.user(chat, sid)}
            await sio.emit("typing", payload, to=room, skip_sid=sid, namespace=chat)

    async def whisper(sid: str, data: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("to"), str):
            payload = {"from": state.user(chat, sid), "text": data.get("text")}
            # A socket-id room: the target may live on any node.
            await sio.emit("whisper", payload, to=data["to"], namespace=chat)

    async def status(sid: str, data: Any) -> None:
        payload = {"user": state.user("/", sid), "state": data, "node": state.name}
        await sio.emit("presence", payload, to="lobby", skip_sid=sid, namespace="/")

    async def shout(sid: str, data: Any) -> None:
        await sio.emit("shout", {"user": state.user("/", sid), "text": data}, namespace="/")

    sio.on("enter", enter, namespace=chat)
    sio.on("exit", exit_, namespace=chat)
    sio.on("say", relay("message", ("text",)), namespace=chat)
    sio.on("react", relay("reaction", ("emoji",)), namespace=chat)
    sio.on("upload", relay("file", ("name", "mime", "data")), namespace=chat)
    sio.on("typing", typing, namespace=chat)
    sio.on("whisper", whisper, namespace=chat)
    sio.on("status", status, namespace="/")
    sio.on("shout", shout, namespace="/")


# ---------------------------------------------------------------------- clients


_CLIENT_CLASS: Any = None


def _client_class() -> Any:
    """python-socketio's ``AsyncClient``, minus a shutdown race's spurious errors.

    The client handles each received message in its own task. When it disconnects
    between a binary packet's header and its attachment, the attachment's task still runs
    and fails to parse it as a packet; the message is lost either way, since the
    connection is gone, so the error is only noise.
    """
    global _CLIENT_CLASS
    if _CLIENT_CLASS is None:
        base: Any = require("socketio", "server").AsyncClient

        class DemoClient(base):  # type: ignore[misc]
            async def _handle_eio_message(self, data: Any) -> None:
                try:
                    await super()._handle_eio_message(data)
                except ValueError:
                    if self.connected:
                        raise

        _CLIENT_CLASS = DemoClient
    return _CLIENT_CLASS


class SimClient:
    """One simulated user: a python-socketio ``AsyncClient`` on ``/`` and ``/chat``.

    Args:
        demo: The cluster it belongs to.
        index: Its number, which also names it.
    """

    def __init__(self, demo: DemoCluster, index: int) -> None:
        self.demo = demo
        self.index = index
        self.user = f"{_NAMES[index % len(_NAMES)]}{index}"
        self.sio: Any = None
        self.rooms: list[str] = []
        self.connected = False
        self._busy = False  # leaving on purpose or recovering: ignore disconnect events
        self._closing = False

    def sid(self, nsp: str = "/chat") -> str | None:
        """The socket id in ``nsp`` while connected."""
        if self.sio is None or not self.connected:
            return None
        sid = self.sio.get_sid(nsp)
        return str(sid) if sid else None

    async def connect(self, url: str) -> None:
        """Connect to the node at ``url`` and join a few rooms; failures are counted."""
        stats = self.demo.stats
        sio = _client_class()(
            reconnection=False, handle_sigint=False, http_session=self.demo._session
        )

        async def on_any(event: str, *args: Any) -> None:
            stats.received += 1

        async def on_disconnect(*_: Any) -> None:
            if self._busy or self._closing or not self.demo.running:
                return
            # Kicked by a remote disconnect, or the node went away: come back later.
            self.connected = False
            self._busy = True
            self.demo.spawn(self._recover(), "recover")

        for nsp in NAMESPACES:
            sio.on("*", on_any, namespace=nsp)
            sio.on("disconnect", on_disconnect, namespace=nsp)
        self.sio = sio
        try:
            await sio.connect(
                url,
                namespaces=list(NAMESPACES),
                transports=["websocket"],
                auth={"user": self.user},
                wait_timeout=10,
            )
        except Exception as exc:
            stats.failed("connect", exc)
            if self.demo.running and not self._closing:
                self._busy = True
                self.demo.spawn(self._recover(), "recover")
            return
        self.connected = True
        stats.connects += 1
        rng = self.demo.rng
        self.rooms = []
        for room in _pick_rooms(rng, rng.choice((1, 1, 2, 2, 3))):
            await self.enter(room)
        if rng.random() < 0.25:
            await sio.emit("join", "news", namespace="/")

    async def enter(self, room: str) -> None:
        """Join ``room`` of ``/chat`` (the server announces it to the room)."""
        await self.sio.call("enter", room, namespace="/chat", timeout=10)
        if room not in self.rooms:
            self.rooms.append(room)

    async def exit(self, room: str) -> None:
        """Leave ``room`` of ``/chat``."""
        if room in self.rooms:
            self.rooms.remove(room)
        await self.sio.call("exit", room, namespace="/chat", timeout=10)

    def speaking_room(self, rng: random.Random) -> str | None:
        """One of the client's rooms, busy rooms more likely."""
        if not self.rooms:
            return None
        return rng.choices(self.rooms, [CHAT_ROOMS.get(r, 1) for r in self.rooms])[0]

    async def _recover(self) -> None:
        try:
            if self.sio is not None:
                await self.sio.disconnect()
            await asyncio.sleep(self.demo.rng.uniform(1.0, 4.0))
            if self.demo.running and not self._closing:
                self.demo.stats.reconnects += 1
                await self.connect(self.demo.pick_node_url())
        finally:
            self._busy = False

    async def bounce(self) -> None:
        """Disconnect on purpose, wait a little, reconnect to a random node."""
        if self._busy:
            return
        self._busy = True
        self.connected = False
        try:
            await self.sio.disconnect()
            await asyncio.sleep(self.demo.rng.uniform(0.5, 3.0))
            if self.demo.running and not self._closing:
                self.demo.stats.reconnects += 1
                await self.connect(self.demo.pick_node_url())
        finally:
            self._busy = False

    async def close(self) -> None:
        """Disconnect for good."""
        self._closing = True
        self.connected = False
        if self.sio is not None:
            await self.sio.disconnect()


Action = Callable[[SimClient], Coroutine[Any, Any, None]]


async def _say(c: SimClient) -> None:
    room = c.speaking_room(c.demo.rng)
    if room is None:
        await c.enter(_pick_rooms(c.demo.rng, 1)[0])
        return
    await c.sio.emit("say", {"room": room, "text": _text(c.demo.rng)}, namespace="/chat")


async def _typing(c: SimClient) -> None:
    room = c.speaking_room(c.demo.rng)
    if room is not None:
        await c.sio.emit("typing", {"room": room}, namespace="/chat")


async def _react(c: SimClient) -> None:
    room = c.speaking_room(c.demo.rng)
    if room is not None:
        emoji = c.demo.rng.choice(_EMOJI)
        await c.sio.emit("react", {"room": room, "emoji": emoji}, namespace="/chat")


async def _upload(c: SimClient) -> None:
    rng = c.demo.rng
    room = c.speaking_room(rng)
    if room is None:
        return
    # Log-normal sizes: many small images, a few large files (capped at 64 KiB).
    size = min(int(rng.lognormvariate(7.5, 1.0)), 64 * 1024)
    kind = rng.choice((("png", "image/png"), ("jpg", "image/jpeg"), ("pdf", "application/pdf")))
    payload = {
        "room": room,
        "name": f"file-{rng.randrange(1000)}.{kind[0]}",
        "mime": kind[1],
        "data": rng.randbytes(size),
    }
    await c.sio.emit("upload", payload, namespace="/chat")


async def _whisper(c: SimClient) -> None:
    others = [o for o in c.demo.connected_clients() if o is not c]
    target = c.demo.rng.choice(others).sid("/chat") if others else None
    if target is not None:
        text = _text(c.demo.rng)
        await c.sio.emit("whisper", {"to": target, "text": text}, namespace="/chat")


async def _status(c: SimClient) -> None:
    state = c.demo.rng.choice(("online", "away", "busy", "online"))
    await c.sio.emit("status", state, namespace="/")


async def _shout(c: SimClient) -> None:
    await c.sio.emit("shout", _text(c.demo.rng), namespace="/")


async def _move(c: SimClient) -> None:
    rng = c.demo.rng
    if c.rooms and (len(c.rooms) >= 3 or rng.random() < 0.5):
        await c.exit(rng.choice(c.rooms))
    else:
        await c.enter(_pick_rooms(rng, 1)[0])


_ACTIONS: dict[str, tuple[int, Action]] = {
    "say": (40, _say),
    "typing": (14, _typing),
    "status": (10, _status),
    "move": (12, _move),
    "react": (8, _react),
    "whisper": (6, _whisper),
    "upload": (5, _upload),
    "shout": (1, _shout),
}


def pick_action(rng: random.Random) -> tuple[str, Action]:
    """A random client action and its name, by weight."""
    name = rng.choices(list(_ACTIONS), [w for w, _ in _ACTIONS.values()])[0]
    return name, _ACTIONS[name][1]


# ---------------------------------------------------------------------- remote operations

RemoteOp = Callable[["DemoCluster", "ClusterClient"], Coroutine[Any, Any, None]]


def _some_sid(demo: DemoCluster, nsp: str) -> str | None:
    online = demo.connected_clients()
    return demo.rng.choice(online).sid(nsp) if online else None


async def _announce(demo: DemoCluster, cluster: ClusterClient) -> None:
    text = f"maintenance window in {demo.rng.randint(5, 60)} minutes"
    await cluster.emit("announcement", {"text": text, "ts": time.time()}, namespace="/")


async def _headline(demo: DemoCluster, cluster: ClusterClient) -> None:
    payload = {"title": _text(demo.rng).capitalize(), "ts": time.time()}
    await cluster.emit("headline", payload, rooms=["news"], namespace="/")


async def _census(demo: DemoCluster, cluster: ClusterClient) -> None:
    await cluster.clients(["general"], namespace="/chat")


async def _all_rooms(demo: DemoCluster, cluster: ClusterClient) -> None:
    await cluster.all_rooms(namespace="/chat")


async def _custom(demo: DemoCluster, cluster: ClusterClient) -> None:
    # Every node's statistics: socket.io-redis customRequest, or 8.x serverSideEmit with acks.
    if cluster.wire.capabilities.custom_request:
        await cluster.custom_request({"op": "stats"}, namespace="/")
    else:
        await cluster.server_side_emit_with_ack("stats", {"op": "stats"}, namespace="/")


async def _client_rooms(demo: DemoCluster, cluster: ClusterClient) -> None:
    sid = _some_sid(demo, "/chat")
    if sid is not None:
        await cluster.client_rooms(sid, namespace="/chat")


async def _vip_join(demo: DemoCluster, cluster: ClusterClient) -> None:
    sid = _some_sid(demo, "/chat")
    if sid is not None:
        await cluster.remote_join(sid, "vip", namespace="/chat")


async def _vip_leave(demo: DemoCluster, cluster: ClusterClient) -> None:
    members = await cluster.clients(["vip"], namespace="/chat")
    if members:
        await cluster.remote_leave(demo.rng.choice(members), "vip", namespace="/chat")


async def _kick(demo: DemoCluster, cluster: ClusterClient) -> None:
    sid = _some_sid(demo, "/")
    if sid is not None:
        # The client may have left by itself meanwhile.
        with contextlib.suppress(RequestError):
            await cluster.remote_disconnect(sid, close=True, namespace="/")


_REMOTE: dict[str, tuple[int, RemoteOp]] = {
    "announce": (2, _announce),
    "headline": (3, _headline),
    "clients": (3, _census),
    "all_rooms": (2, _all_rooms),
    "custom_request": (2, _custom),
    "client_rooms": (2, _client_rooms),
    "remote_join": (3, _vip_join),
    "remote_leave": (2, _vip_leave),
    "remote_disconnect": (1, _kick),
}


def remote_operation(rng: random.Random) -> tuple[str, RemoteOp]:
    """A random remote operation and its name, by weight."""
    name = rng.choices(list(_REMOTE), [w for w, _ in _REMOTE.values()])[0]
    return name, _REMOTE[name][1]


# ---------------------------------------------------------------------- the Node node


_VERSIONS = {
    "current": "socket.io 4.8.4 + @socket.io/redis-adapter 8.3.0",
    "legacy5": "socket.io 2.5.1 + socket.io-redis 5.4.0",
    "legacy4": "socket.io 1.7.4 + socket.io-redis 4.0.1",
}


class NodeSide:
    """The Node node of a mixed cluster (socket.io 4.8 + @socket.io/redis-adapter 8.3, or
    socket.io 2.5 + socket.io-redis 5.4), its clients and its broadcasts.

    Its clients are Node clients inside the peer process (socket.io 2.x speaks Engine.IO 3,
    which python-socketio clients do not).
    """

    def __init__(self, demo: DemoCluster, peer: NodePeer) -> None:
        self.demo = demo
        self.peer = peer
        self.clients: list[str] = []

    @classmethod
    async def start(cls, demo: DemoCluster) -> NodeSide:
        """Start the Node node on the demo's Redis and key."""
        from siotools.nodepeer import (
            CLUSTER_CLIENT_FLAVORS,
            NodePeer,
            flavor_for,
            peer_options_for,
        )

        flavor = flavor_for(demo.dialect)
        options: dict[str, str | bool] = dict(peer_options_for(demo.dialect))
        if demo.on_redis_cluster and flavor in CLUSTER_CLIENT_FLAVORS:
            options["redis_cluster"] = True  # node-redis createCluster from the seed node
        # Without a cluster client (socket.io-redis 4.x/5.x), the node connects to the seed
        # node only: Redis Cluster's classic pub/sub serves it as any node does.
        peer = await NodePeer.start(
            flavor,
            name="node-1",
            port=0,
            redis_url=demo.seed_url,
            key=demo.key,
            nsps=NAMESPACES,
            requests_timeout_ms=2000,
            startup_timeout=300.0,  # the first run installs the npm packages
            # 8.x nodes answer the demo's "stats" serverSideEmit (4.x/5.x ignore the option).
            sse_events="sse,sse-ack,stats",
            **options,
        )
        return cls(demo, peer)

    @property
    def url(self) -> str:
        """The Node node's HTTP URL."""
        return self.peer.url

    @property
    def versions(self) -> str:
        """What the Node node runs, as its users know it."""
        return _VERSIONS.get(self.peer.flavor, self.peer.flavor)

    async def connect_clients(self) -> None:
        """Connect a few Node clients to ``/chat`` and put them in rooms."""
        n = min(12, max(2, self.demo.n_clients // 15)) if self.demo.n_clients else 0
        for i in range(n):
            name = f"node-client-{i}"
            await self.peer.call("client_connect", client=name, url=self.url, nsp="/chat")
            rooms = _pick_rooms(self.demo.rng, self.demo.rng.choice((1, 2)))
            await self.peer.call("client_join", client=name, rooms=rooms)
            self.clients.append(name)

    async def loop(self) -> None:
        """Broadcast from the Node side now and then, and count what its clients receive."""
        rng = self.demo.rng
        while True:
            await asyncio.sleep(max(0.2, 25.0 / max(self.demo.rate, 1.0)) * rng.uniform(0.5, 1.5))
            # The peer logs every delivery as an event; count and drop them so a long demo
            # does not accumulate them.
            events = list(self.peer.events)
            self.peer.events.clear()
            self.demo.stats.received += sum(1 for e in events if e.get("name") == "client_recv")
            self.demo.spawn(self._emit_one(rng), "node_emit")

    async def _emit_one(self, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.6:
            room = _pick_rooms(rng, 1)[0]
            args: list[Any] = [
                {"room": room, "user": "node-bot", "text": _text(rng), "ts": time.time()}
            ]
            await self.peer.call("nsp_emit", nsp="/chat", rooms=[room], event="message", args=args)
        elif roll < 0.75:
            room = _pick_rooms(rng, 1)[0]
            blob = rng.randbytes(min(int(rng.lognormvariate(7.0, 1.0)), 32 * 1024))
            args = [{"room": room, "user": "node-bot", "name": "chart.png", "data": blob}]
            await self.peer.call("nsp_emit", nsp="/chat", rooms=[room], event="file", args=args)
        elif roll < 0.95:
            args = [{"user": "node-bot", "state": "online", "node": "node-1"}]
            await self.peer.call("nsp_emit", nsp="/", rooms=["lobby"], event="presence", args=args)
        else:
            args = [{"title": _text(rng).capitalize(), "ts": time.time()}]
            await self.peer.call("nsp_emit", nsp="/", rooms=["news"], event="headline", args=args)
        self.demo.stats.node_emits += 1

    async def stop(self) -> None:
        """Stop the Node process (its clients go with it)."""
        await self.peer.stop()
