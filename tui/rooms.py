"""``RoomsScreen``: the named rooms of a namespace, their members and message rates."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from textual.binding import Binding, BindingType

from .actions import disconnect_all_flow, emit_flow, leave_all_flow
from .base import NamespaceScreen, Rows
from .source import NamespaceData
from .table import Column
from .traffic_model import sparkline

__all__ = ["RoomsScreen"]


class RoomsScreen(NamespaceScreen):
    """Room, members, msgs/s and the last 10 s. Enter lists the room's sockets."""

    VIEW: ClassVar[str] = "rooms"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "emit", "Emit"),
        Binding("L", "leave_all", "Clear room", show=False),
        Binding("D", "disconnect_all", "Disconnect room", show=False),
    ]

    def crumbs(self) -> list[str]:
        return ["Namespaces", self.namespace, "rooms"]

    def columns(self) -> list[Column]:
        return [
            Column("Room"),
            Column("Members", numeric=True),
            Column("msgs/s", numeric=True),
            Column("last 10 s", width=10),
        ]

    def rows_of(self, data: NamespaceData) -> Rows:
        traffic = self.siotools.traffic
        now = self.siotools.clock()
        nsp = self.namespace
        rows: Rows = {}
        for room, members in data.members.items():
            series = traffic.room_series(nsp, room, now)
            rate = round(sum(series[-5:]) / 5, 1)
            rows[room] = (room, len(members), rate, sparkline(series))
        return rows

    def drill(self, key: str) -> None:
        self.siotools.open_sockets(self.namespace, key)

    def _room(self) -> str | None:
        room = self.table.cursor_key
        if room is None:
            self.notify("no room selected", severity="warning")
        return room

    def action_emit(self) -> None:
        if (room := self._room()) is not None:
            self.start_action(partial(emit_flow, self, room, is_room=True), "emit")

    def action_leave_all(self) -> None:
        if (room := self._room()) is not None:
            self.start_action(partial(leave_all_flow, self, room), "leave-all")

    def action_disconnect_all(self) -> None:
        if (room := self._room()) is not None:
            self.start_action(partial(disconnect_all_flow, self, room), "disconnect-all")
