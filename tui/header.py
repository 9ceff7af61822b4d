"""``ClusterHeader``: which cluster this is and how it is doing, on two lines."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.widgets import Static

__all__ = ["ClusterHeader", "HeaderInfo"]


@dataclass(frozen=True, slots=True)
class HeaderInfo:
    """What the header shows; the app replaces it on every refresh."""

    url: str = ""
    prefix: str = ""
    dialect: str = ""
    read_only: bool = False
    refresh: float = 2.0
    nodes: dict[str, int] = field(default_factory=dict)
    frames_per_second: float | None = None
    problem: str | None = None


class ClusterHeader(Static):
    """Redis URL, prefix, dialect, mode; node count per namespace, frames/s, refresh; then
    a problem or hint, if any, on lines of its own."""

    def on_mount(self) -> None:
        self.watch(self.app, "header_info", self.show, init=True)

    def show(self, info: HeaderInfo) -> None:
        top = Text.assemble(
            ("siotools ", "bold"),
            (info.url, "bold"),
            "  prefix ",
            (info.prefix, "bold"),
            "  dialect ",
            (info.dialect, "bold"),
        )
        if info.read_only:
            top.append("  READ-ONLY", "bold reverse")
        nodes = "  ".join(f"{nsp} {n}" for nsp, n in sorted(info.nodes.items())) or "none"
        fps = "-" if info.frames_per_second is None else f"{info.frames_per_second:.1f}"
        bottom = Text.assemble(
            "nodes ", (nodes, "bold"), "  frames/s ", (fps, "bold"), f"  refresh {info.refresh:g}s"
        )
        lines = [top, bottom]
        if info.problem:
            # Its own line(s), wrapped: a hint about what the Redis carries is a sentence.
            lines.append(Text(info.problem, "bold red"))
        self.update(Text("\n").join(lines))
