"""``HealthScreen``: the doctor's findings on the cluster, refreshed like every view.

Each refresh runs :func:`siotools.health.doctor` in passive mode (nothing published, nothing
SUBSCRIBEd) for a short listen; the rows are the findings, worst first, and Enter shows a
finding's evidence and fix above the table.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from siotools.health import Report, Severity, doctor

from .base import ClusterScreen, Rows
from .table import Column

__all__ = ["HEALTHY_KEY", "HealthScreen"]

HEALTHY_KEY = "healthy"
"""The key of the one row shown when nothing is wrong."""

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.NOTE: "cyan"}


class HealthScreen(ClusterScreen):
    """Severity, finding, namespace, what is wrong. Enter shows the evidence and the fix.

    Args:
        listen: Seconds of passive listening per refresh.
    """

    VIEW: ClassVar[str] = "health"
    BINDINGS: ClassVar[list[BindingType]] = [
        # Already here: the app's "5" would push a second copy.
        Binding("5", "stay", "Health", show=False),
    ]

    def __init__(self, listen: float = 1.0) -> None:
        super().__init__()
        self.listen = listen
        self.report: Report | None = None

    def crumbs(self) -> list[str]:
        return ["Health"]

    def columns(self) -> list[Column]:
        return [Column("Severity"), Column("Finding"), Column("Namespace"), Column("What")]

    def compose_extra(self) -> ComposeResult:
        yield Static("", id="health-detail")

    async def fetch(self) -> Rows:
        cluster: Any = self.cluster
        # A ClusterClient's endpoint keeps the password its printable url drops.
        target = getattr(cluster, "endpoint", None) or cluster.url
        # An endpoint does not say it is a Redis Cluster's node: the client does.
        on_cluster = getattr(cluster, "on_redis_cluster", None)
        report = await doctor(target, cluster.prefix, duration=self.listen, cluster=on_cluster)
        self.report = report
        self.note = report.summary()
        if not report.findings:
            return {HEALTHY_KEY: ("ok", "-", "", "No problem found.")}
        rows: Rows = {}
        for i, f in enumerate(report.findings):
            severity = Text(f.severity.value, style=_STYLE[f.severity])
            rows[f"{i}:{f.code}:{f.nsp or ''}"] = (severity, f.code, f.nsp or "", f.title)
        return rows

    def drill(self, key: str) -> None:
        self.query_one("#health-detail", Static).update(self.detail(key))

    def detail(self, key: str) -> Text:
        """The evidence and the fix of the finding in row ``key``."""
        report = self.report
        text = Text()
        if report is None or key == HEALTHY_KEY:
            text.append("No problem found.", "green")
            return text
        index = int(key.split(":", 1)[0])
        if index >= len(report.findings):
            return text
        f = report.findings[index]
        text.append(f.title + "\n", "bold")
        for line in f.evidence:
            text.append("• " + line + "\n")
        text.append("Fix: ", "bold")
        text.append(f.fix)
        return text

    def action_stay(self) -> None:
        """Pressing 5 again reloads instead of stacking another Health view."""
        self.reload()
