"""``FrameDetail``: one frame of the traffic view, whole: decoded, raw and where it came from."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from .traffic_model import TrafficLine

__all__ = ["HEX_LIMIT", "FrameDetail", "decoded_value", "hex_dump"]

HEX_LIMIT = 4096
"""Bytes of the payload shown as hex (a 15 MB upload would drown the pane)."""


def hex_dump(data: bytes, limit: int = HEX_LIMIT) -> str:
    """``0000  cc 12 ...  |..|`` lines, 16 bytes each, up to ``limit`` bytes."""
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:06x}  {hexes:<47}  |{text}|")
    if len(data) > limit:
        lines.append(f"… {len(data) - limit:,} more bytes")
    return "\n".join(lines) or "(empty)"


def decoded_value(frame: Any) -> Any:
    """What the frame says, as JSON-ready data (binary as ``{"$bin": base64}``)."""
    from siotools.sniffer.frames import jsonable

    row = frame.row
    return {
        "kind": row.kind,
        "type": row.type,
        "uid": jsonable(row.uid),
        "nsp": row.nsp,
        "rooms": jsonable(row.rooms),
        "except": jsonable(row.except_),
        "event": jsonable(row.event),
        "args": jsonable(row.args),
        "flags": jsonable(row.flags),
        "request_id": jsonable(row.request_id),
    }


class FrameDetail(ModalScreen[None]):
    """The decoded frame (pretty JSON, scrollable), its bytes as hex, channel and dialect."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,enter", "close", "Close")]

    def __init__(self, line: TrafficLine) -> None:
        super().__init__()
        self.line = line

    def compose(self) -> ComposeResult:
        line = self.line
        moment = dt.datetime.fromtimestamp(line.time_ns / 1e9, tz=dt.UTC)
        payload = bytes(getattr(line.frame, "payload", b"") or b"")
        with VerticalScroll(id="dialog"):
            yield Label(f"{line.kind} {line.event}".strip(), id="title")
            yield Static(
                Text.assemble(
                    ("time     ", "dim"),
                    moment.isoformat(timespec="milliseconds"),
                    "\n",
                    ("channel  ", "dim"),
                    (line.channel, "bold"),
                    "\n",
                    ("dialect  ", "dim"),
                    line.dialect,
                    "\n",
                    ("node     ", "dim"),
                    line.node or "-",
                    "\n",
                    ("size     ", "dim"),
                    f"{len(payload):,} bytes (hex below)",
                ),
                id="where",
            )
            yield Static(self._decoded(), id="decoded")
            yield Static(
                Group(
                    Text(f"raw payload, {len(payload):,} bytes", style="bold"),
                    Text(hex_dump(payload)),
                ),
                id="raw",
            )

    def _decoded(self) -> RenderableType:
        line = self.line
        head = Text("decoded", style="bold")
        if line.error is not None or line.frame is None or line.frame.frame is None:
            return Group(head, Text(f"not decodable: {line.error}", style="red"))
        try:
            return Group(head, JSON.from_data(decoded_value(line.frame), indent=2))
        except (TypeError, ValueError, RecursionError) as exc:
            # A hostile value (say, nested thousands deep) is still a frame to look at.
            return Group(head, Text(f"cannot be shown as JSON ({exc}); see the raw bytes"))

    def action_close(self) -> None:
        self.dismiss(None)
