"""``SocketsScreen``: the sockets of a room, or of the whole namespace."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from textual.binding import Binding, BindingType

from .actions import (
    disconnect_all_flow,
    disconnect_flow,
    emit_flow,
    join_flow,
    leave_all_flow,
    leave_flow,
)
from .base import NamespaceScreen, Rows
from .source import NamespaceData
from .table import Column

__all__ = ["SocketsScreen"]


class SocketsScreen(NamespaceScreen):
    """Socket id, number of named rooms, the rooms. Enter opens the socket."""

    VIEW: ClassVar[str] = "sockets"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "join", "Join"),
        Binding("l", "leave", "Leave"),
        Binding("d", "disconnect", "Disconnect"),
        Binding("e", "emit", "Emit"),
        Binding("L", "leave_all", "Clear room", show=False),
        Binding("D", "disconnect_all", "Disconnect room", show=False),
    ]

    def __init__(self, namespace: str = "/", room: str | None = None) -> None:
        super().__init__(namespace)
        self.room = room

    def crumbs(self) -> list[str]:
        if self.room is None:
            return ["Namespaces", self.namespace, "sockets"]
        return ["Namespaces", self.namespace, "rooms", self.room]

    def columns(self) -> list[Column]:
        return [Column("Socket"), Column("Rooms", numeric=True), Column("Named rooms")]

    def rows_of(self, data: NamespaceData) -> Rows:
        by_socket = data.socket_rooms()
        sids = data.sockets if self.room is None else data.members.get(self.room, [])
        rows: Rows = {}
        for sid in sids:
            rooms = by_socket.get(sid, [])
            rows[sid] = (sid, len(rooms), " ".join(rooms))
        return rows

    def drill(self, key: str) -> None:
        self.siotools.open_socket(self.namespace, key)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("leave_all", "disconnect_all") and self.room is None:
            return False
        return super().check_action(action, parameters)

    def _sid(self) -> str | None:
        sid = self.table.cursor_key
        if sid is None:
            self.notify("no socket selected", severity="warning")
        return sid

    def action_join(self) -> None:
        if (sid := self._sid()) is not None:
            self.start_action(partial(join_flow, self, sid), "join")

    def action_leave(self) -> None:
        if (sid := self._sid()) is not None:
            self.start_action(partial(leave_flow, self, sid, self.room), "leave")

    def action_disconnect(self) -> None:
        if (sid := self._sid()) is not None:
            self.start_action(partial(disconnect_flow, self, sid), "disconnect")

    def action_emit(self) -> None:
        if (sid := self._sid()) is not None:
            self.start_action(partial(emit_flow, self, sid, is_room=False), "emit")

    def action_leave_all(self) -> None:
        if self.room is not None:
            self.start_action(partial(leave_all_flow, self, self.room), "leave-all")

    def action_disconnect_all(self) -> None:
        if self.room is not None:
            self.start_action(partial(disconnect_all_flow, self, self.room), "disconnect-all")
