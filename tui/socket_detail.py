"""``SocketScreen``: one socket and its rooms."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from siotools.dialects.base import RemoteSocket
from siotools.exceptions import RequestTimeout
from siotools.protocol import safe

from .actions import disconnect_flow, emit_flow, join_flow, leave_flow
from .base import ClusterScreen, Rows
from .breadcrumbs import Breadcrumbs
from .filter_bar import FilterBar
from .table import Column

__all__ = ["SocketScreen"]


def json_line(value: Any) -> str:
    """A value on one line, as JSON that survives any decoded value."""
    return safe.dumps(value, binary="hex")


class SocketScreen(ClusterScreen):
    """The socket's rooms (its own id room first) with their member counts."""

    VIEW: ClassVar[str] = "socket"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "join", "Join"),
        Binding("l", "leave", "Leave"),
        Binding("d", "disconnect", "Disconnect"),
        Binding("e", "emit", "Emit"),
    ]

    def __init__(self, namespace: str, sid: str) -> None:
        super().__init__(namespace)
        self.sid = sid
        self.gone = False
        self.fetched: tuple[str, list[str]] | None = None
        """``(sid, rooms)`` of the last ``fetch_sockets`` answer this screen got."""
        self.socket: RemoteSocket | None = None
        """The socket as ``fetch_sockets`` reported it (``data``/handshake on 8.x)."""

    def crumbs(self) -> list[str]:
        return ["Namespaces", self.namespace, "socket", self.sid]

    def columns(self) -> list[Column]:
        return [Column("Room"), Column("Members", numeric=True), Column("Kind")]

    def compose_extra(self) -> ComposeResult:
        yield Static(id="detail")

    def on_mount(self) -> None:
        self._describe()
        super().on_mount()

    def show(self, namespace: str, sid: str) -> None:
        """Turn this (installed, reused) screen to another socket, as a new one would be.

        Building a screen costs some 50 ms of widgets and styles at every drill-down; the app
        keeps one socket screen and points it at the socket to show.
        """
        self.namespace = namespace
        self.sid = sid
        self.gone = False
        self.fetched = None
        self.socket = None
        self.shortfall = None
        self.problem = None
        self.note = ""
        if not self.is_mounted:
            return  # on_mount does the rest
        crumbs = self.query_one("#crumbs", Breadcrumbs)
        crumbs.crumbs = self.crumbs()
        crumbs.update(crumbs.render_crumbs())
        self._describe()
        bar = self.query_one("#filter", FilterBar)
        bar.display = False
        table = self.table
        table.set_filter("")
        table.sort_by(None)
        table.set_rows(self.cached_rows() or {})
        table.cursor = 0
        table.focus()
        self.update_status()
        self.reload()

    def _describe(self) -> None:
        text = Text.assemble(
            "socket ", (self.sid, "bold"), "  namespace ", (self.namespace, "bold")
        )
        if self.gone:
            text.append("  GONE: no node has this socket", "bold red")
        socket = self.socket
        if socket is not None and not self.gone:
            # socket.data and the handshake travel on 8.x only (4.x/5.x: rooms).
            if socket.data is not None:
                text.append("\ndata ")
                text.append(safe.text(json_line(socket.data)), "bold")
            hs = socket.handshake or {}
            if hs:
                headers = hs.get("headers") if isinstance(hs.get("headers"), dict) else {}
                parts = [
                    ("address", hs.get("address")),
                    ("url", hs.get("url")),
                    ("user-agent", (headers or {}).get("user-agent")),
                    ("query", json_line(hs.get("query")) if hs.get("query") else None),
                    ("auth", json_line(hs.get("auth")) if hs.get("auth") else None),
                ]
                text.append("\nhandshake")
                for name, value in parts:
                    if value:
                        text.append(f"  {name} ")
                        text.append(safe.text(str(value)), "bold")
        self.query_one("#detail", Static).update(text)

    def order_key(self, key: str) -> Any:
        return (key != self.sid, key)  # its own id room first, then by name

    def rows_of(self, rooms: list[str]) -> Rows:
        data = self.namespace_data()
        rows: Rows = {}
        for room in rooms:
            if room == self.sid:
                rows[room] = (room, 1, "own id")
                continue
            members = data.members.get(room) if data else None
            rows[room] = (room, "?" if members is None else len(members), "named")
        return rows

    def cached_rows(self) -> Rows | None:
        data = self.namespace_data()
        if data is None or self.sid not in data.socket_rooms():
            return None
        return self.rows_of([self.sid, *data.socket_rooms()[self.sid]])

    async def fetch(self) -> Rows:
        try:
            found = await self.cluster.fetch_sockets(rooms=[self.sid], namespace=self.namespace)
        except RequestTimeout:
            found = []
        socket = next((s for s in found if s.id == self.sid), None)
        if socket is None:
            self.gone = True
            self.socket = None
            self._describe()
            return {}
        rooms = [self.sid, *(r for r in socket.rooms if r != self.sid)]
        self.gone = False
        self.socket = socket
        self.fetched = (self.sid, list(rooms))
        self._describe()
        return self.rows_of(rooms)

    def rooms_known(self, sid: str) -> set[str]:
        """The rooms of ``sid`` from this screen's own ``client_rooms`` answer, if it has one."""
        if self.fetched is not None and self.fetched[0] == sid:
            return set(self.fetched[1])
        return set()

    def action_join(self) -> None:
        self.start_action(partial(join_flow, self, self.sid), "join")

    def action_leave(self) -> None:
        room = self.table.cursor_key
        if room is None or room == self.sid:
            self.start_action(partial(leave_flow, self, self.sid), "leave")
        else:
            self.start_action(partial(leave_flow, self, self.sid, room), "leave")

    def action_disconnect(self) -> None:
        self.start_action(partial(disconnect_flow, self, self.sid), "disconnect")

    def action_emit(self) -> None:
        self.start_action(partial(emit_flow, self, self.sid, is_room=False), "emit")
