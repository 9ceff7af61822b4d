"""Live traffic bookkeeping (pure Python): the line buffer, frames/s and per-room rates.

It takes the sniffer's frames (:class:`siotools.sniffer.SniffedFrame`, or anything with the
same ``time_ns``, ``channel``, ``dialect``, ``error`` and ``row`` attributes) and keeps:

* the last ``cap`` frames as :class:`TrafficLine` for the traffic view;
* frame counts per second, for the header's frames/s;
* broadcast counts per second per ``(namespace, room)``, for the rooms' msgs/s sparklines.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["SPARK", "FrameLike", "TrafficLine", "TrafficModel", "sparkline"]

SPARK = "▁▂▃▄▅▆▇█"


class _RowLike(Protocol):
    kind: str
    nsp: str | None
    rooms: Any
    event: Any
    args: Any
    uid: Any
    type: str | None


class FrameLike(Protocol):
    @property
    def time_ns(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def dialect(self) -> Any: ...
    @property
    def error(self) -> str | None: ...
    @property
    def row(self) -> _RowLike: ...


def _shown(value: Any) -> Any:
    # Binary is a size in the list (Enter shows the bytes); anything else its repr.
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value):,} bytes>"
    return repr(value)


def _short(value: Any, limit: int = 120) -> str:
    if value is None:
        return ""
    try:
        text = json.dumps(value, ensure_ascii=False, default=_shown, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        text = repr(value)[: limit * 2]
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class TrafficLine:
    """One frame, flattened for display."""

    time_ns: int
    kind: str
    dialect: str
    node: str
    nsp: str
    rooms: tuple[str, ...]
    event: str
    args: str
    channel: str
    error: str | None = None
    frame: Any = field(default=None, compare=False, repr=False)
    """The sniffed frame itself (its payload and decoded value), for the detail pane."""

    @classmethod
    def of(cls, frame: FrameLike) -> TrafficLine:
        row = frame.row
        rooms = row.rooms if isinstance(row.rooms, list | tuple) else []
        dialect = getattr(frame.dialect, "label", None) or "?"
        event = row.event if row.event is not None else (row.type or "")
        return cls(
            time_ns=frame.time_ns,
            kind=row.kind,
            dialect=dialect,
            node="" if row.uid is None else str(row.uid),
            nsp=row.nsp or "",
            rooms=tuple(str(r) for r in rooms),
            event=str(event),
            args=_short(row.args) if row.kind != "response" else "",
            channel=frame.channel,
            error=frame.error,
            frame=frame,
        )

    def search_text(self) -> str:
        return "\t".join(
            (self.kind, self.node, self.nsp, " ".join(self.rooms), self.event, self.args)
        )


def sparkline(values: list[int]) -> str:
    """Block characters scaled to the largest value (all low when every value is 0)."""
    top = max(values, default=0)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, v * (len(SPARK) - 1) // top)] for v in values)


class TrafficModel:
    """Buffer and counters; ``now`` values are epoch seconds (the frames' clock)."""

    def __init__(self, cap: int = 5000, window: int = 20) -> None:
        self.lines: deque[TrafficLine] = deque(maxlen=cap)
        self.window = window
        self.total = 0
        self._frames: dict[int, int] = {}
        self._rooms: dict[tuple[str, str], dict[int, int]] = {}
        self._last_second = 0

    @property
    def cap(self) -> int:
        return self.lines.maxlen or 0

    def set_cap(self, cap: int) -> None:
        self.lines = deque(self.lines, maxlen=cap)

    def add(self, frame: FrameLike) -> TrafficLine:
        line = TrafficLine.of(frame)
        self.add_line(line)
        return line

    def add_line(self, line: TrafficLine) -> None:
        self.lines.append(line)
        self.total += 1
        second = line.time_ns // 1_000_000_000
        self._last_second = max(self._last_second, second)
        self._frames[second] = self._frames.get(second, 0) + 1
        if line.kind == "broadcast":
            for room in line.rooms or ("",):
                counts = self._rooms.setdefault((line.nsp, room), {})
                counts[second] = counts.get(second, 0) + 1
        if len(self._frames) > 4 * self.window:
            self._forget(second - 2 * self.window)

    def _forget(self, before: int) -> None:
        self._frames = {s: n for s, n in self._frames.items() if s >= before}
        for key in list(self._rooms):
            kept = {s: n for s, n in self._rooms[key].items() if s >= before}
            if kept:
                self._rooms[key] = kept
            else:
                del self._rooms[key]

    def frames_per_second(self, now: float, span: int = 5) -> float:
        """Mean frames per second over the ``span`` whole seconds before ``now``."""
        end = int(now)
        return sum(self._frames.get(s, 0) for s in range(end - span, end)) / span

    def room_series(self, nsp: str, room: str, now: float, points: int = 10) -> list[int]:
        """Broadcasts per second to ``room`` for the ``points`` seconds before ``now``."""
        counts = self._rooms.get((nsp, room), {})
        end = int(now)
        return [counts.get(s, 0) for s in range(end - points, end)]

    def room_rate(self, nsp: str, room: str, now: float, span: int = 5) -> float:
        return sum(self.room_series(nsp, room, now, span)) / span
