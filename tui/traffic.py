"""``TrafficScreen``: the live decoded frames, with pause, follow and a line cap.

The app's traffic worker feeds :class:`~siotools.tui.traffic_model.TrafficModel`; this view
copies the model's lines into its table twice a second unless paused. The ``/`` filter takes
the ``siotools sniff`` filters as ``nsp=... room=... event=... kind=...`` words plus free text.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from textual.binding import Binding, BindingType

from .base import ClusterScreen, Rows
from .frame_detail import FrameDetail
from .rows import Cell, compile_field_filter, plain, tagged
from .table import Column, Diff
from .traffic_model import TrafficLine

__all__ = ["TrafficScreen"]


def _search(key: str, cells: tuple[Cell, ...]) -> str:
    event, rooms, kind, nsp = (plain(c) for c in (cells[1], cells[2], cells[4], cells[5]))
    tags = [tagged("kind", kind), tagged("nsp", nsp), tagged("event", event)]
    tags += [tagged("room", room) for room in rooms.split(" ") if room]
    return "".join(tags) + "\t".join(plain(c) for c in cells)


def _clock(time_ns: int) -> str:
    moment = dt.datetime.fromtimestamp(time_ns / 1e9, tz=dt.UTC)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


class TrafficScreen(ClusterScreen):
    """Time, event, rooms, arguments, kind, namespace, node uid; Enter opens a frame.

    The columns an operator reads first come first: at 80 columns time, event, rooms and
    the start of the arguments stay on screen.
    """

    VIEW: ClassVar[str] = "traffic"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "Pause"),
        Binding("f", "follow", "Follow"),
        Binding("c", "clear", "Clear"),
    ]

    def __init__(self, namespace: str = "/") -> None:
        super().__init__(namespace)
        self.paused = False
        self.follow = True
        self._cleared = 0
        self.lines_by_key: dict[str, TrafficLine] = {}
        """The frame behind each shown row, for Enter."""

    def crumbs(self) -> list[str]:
        return ["Traffic"]

    def columns(self) -> list[Column]:
        return [
            Column("Time"),
            Column("Event", width=16),
            Column("Rooms", width=16),
            Column("Args", width=60),
            Column("Kind"),
            Column("Nsp"),
            Column("Node", width=8),
        ]

    def on_mount(self) -> None:
        table = self.table
        table._search_of = _search
        table._compile = compile_field_filter
        initial = self.siotools.traffic_filter
        if initial:
            table.set_filter(initial)
        super().on_mount()
        self.set_interval(0.5, self._poll, name="traffic-poll")

    def _poll(self) -> None:
        if not self.paused:
            self.reload()

    def rows_of(self, lines: list[TrafficLine]) -> Rows:
        rows: Rows = {}
        shown: dict[str, TrafficLine] = {}
        first = self.siotools.traffic.total - len(lines)
        for n, line in enumerate(lines, start=first):
            if n < self._cleared:
                continue
            event = line.event if line.error is None else f"! {line.error}"
            key = f"{n:012d}"
            shown[key] = line
            rows[key] = (
                _clock(line.time_ns),
                event,
                " ".join(line.rooms),
                line.args,
                line.kind,
                line.nsp,
                line.node,
            )
        self.lines_by_key = shown
        return rows

    def drill(self, key: str) -> None:
        """Enter: the frame in a detail pane (decoded JSON, raw hex, channel, dialect)."""
        line = self.lines_by_key.get(key)
        if line is not None:
            self.app.push_screen(FrameDetail(line))

    def cached_rows(self) -> Rows | None:
        return self.rows_of(list(self.siotools.traffic.lines))

    async def fetch(self) -> Rows:
        return self.rows_of(list(self.siotools.traffic.lines))

    async def load(self, *, highlight: bool = False) -> Diff | None:
        diff = await super().load(highlight=highlight)
        if self.follow:
            self.table.action_jump(-1)
        return diff

    def update_status(self) -> None:
        state = "PAUSED" if self.paused else ("following" if self.follow else "not following")
        source = self.siotools.traffic_problem or f"{self.siotools.traffic.total} frames seen"
        self.note = f"{state}; cap {self.siotools.traffic.cap} lines; {source}"
        super().update_status()

    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.reload()
        self.update_status()

    def action_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self.table.action_jump(-1)
        self.update_status()

    def action_clear(self) -> None:
        self._cleared = self.siotools.traffic.total
        self.table.set_rows({})
        self.update_status()
