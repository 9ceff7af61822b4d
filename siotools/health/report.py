"""The doctor's report: findings (severity, evidence, fix) and what was measured.

Rendered three ways from the same data: :meth:`Report.to_json` for scripts,
:meth:`Report.render` (rich) for terminals and ``_repr_html_`` for notebooks.
"""

from __future__ import annotations

import enum
import html
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["EXIT_FAILED", "EXIT_HEALTHY", "Finding", "NamespaceHealth", "Report", "Severity"]

EXIT_HEALTHY = 0
EXIT_FAILED = 1


class Severity(enum.Enum):
    """How bad a finding is. Errors and warnings make the doctor exit 1; notes do not."""

    ERROR = "error"
    """Requests time out or messages are lost now."""
    WARNING = "warning"
    """Something that will break under load or on the next deploy."""
    NOTE = "note"
    """Worth knowing; nothing is wrong."""

    @property
    def rank(self) -> int:
        """0 for errors, 1 for warnings, 2 for notes (sort order)."""
        return {"error": 0, "warning": 1, "note": 2}[self.value]


_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.NOTE: "cyan"}
_HTML_COLOR = {Severity.ERROR: "#c62828", Severity.WARNING: "#b26a00", Severity.NOTE: "#1565c0"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or note) the doctor found.

    Attributes:
        code: A stable identifier (``foreign-subscriber``, ``mixed-dialects``...).
        severity: How bad it is.
        title: One sentence: what is wrong.
        evidence: What was observed, one sentence each.
        fix: What to do about it.
        nsp: The namespace concerned, if one.
    """

    code: str
    severity: Severity
    title: str
    evidence: tuple[str, ...]
    fix: str
    nsp: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON-ready data."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "title": self.title,
            "evidence": list(self.evidence),
            "fix": self.fix,
            "nsp": self.nsp,
        }


@dataclass(slots=True)
class NamespaceHealth:
    """What was measured for one namespace.

    Attributes:
        nsp: The namespace.
        dialects: The dialects seen there (values of :class:`~siotools.Dialect`).
        request_subscribers: NUMSUB of its request channel (what classic requests wait for).
        sharded_subscribers: SHARDNUMSUB of its sharded channel.
        node_uids: Node uids seen (8.x response channels, sharded channels, broadcasts).
        requests_seen: Requests heard during the sniff.
        requests_incomplete: Of those, the ones fewer nodes answered than their requester
            waited for.
        answer_ms_median: Median milliseconds from a heard request to its answers.
        answer_ms_max: The slowest answer heard, in milliseconds.
        probe_answers: Answers to the probe (None: no probe).
        probe_expected: Answers the probe waited for.
        probe_latencies_ms: Milliseconds from the probe to each answer.
    """

    nsp: str
    dialects: list[str] = field(default_factory=list)
    request_subscribers: int = 0
    sharded_subscribers: int = 0
    node_uids: list[str] = field(default_factory=list)
    requests_seen: int = 0
    requests_incomplete: int = 0
    answer_ms_median: float | None = None
    answer_ms_max: float | None = None
    probe_answers: int | None = None
    probe_expected: int | None = None
    probe_latencies_ms: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Report:
    """The doctor's report on one prefix of one Redis.

    Attributes:
        url: The Redis URL (without password).
        prefix: The prefix examined.
        redis_version: The server's version ('' when unknown).
        dialects: Every dialect seen on the prefix.
        namespaces: Per-namespace measurements.
        findings: What is wrong (errors and warnings) and worth knowing (notes).
        evidence: The detection's clues, one sentence each.
        sniff_seconds: How long the passive listen lasted.
        messages: Messages heard during it.
        probed: Whether ``--probe`` requests were sent.
        facts: Further figures (clients, NUMPAT, output-buffer limit...).
    """

    url: str
    prefix: str
    redis_version: str = ""
    dialects: list[str] = field(default_factory=list)
    namespaces: list[NamespaceHealth] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    sniff_seconds: float = 0.0
    messages: int = 0
    probed: bool = False
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def problems(self) -> list[Finding]:
        """The errors and warnings."""
        return [f for f in self.findings if f.severity is not Severity.NOTE]

    @property
    def healthy(self) -> bool:
        """Whether nothing worse than a note was found."""
        return not self.problems

    @property
    def exit_code(self) -> int:
        """0 when healthy, 1 when there are problems."""
        return EXIT_HEALTHY if self.healthy else EXIT_FAILED

    def codes(self) -> list[str]:
        """The codes of the findings, worst first."""
        return [f.code for f in self.findings]

    def find(self, code: str) -> list[Finding]:
        """The findings with this code."""
        return [f for f in self.findings if f.code == code]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "url": self.url,
            "prefix": self.prefix,
            "healthy": self.healthy,
            "redis_version": self.redis_version,
            "dialects": self.dialects,
            "namespaces": [asdict(n) for n in self.namespaces],
            "findings": [f.to_dict() for f in self.findings],
            "evidence": self.evidence,
            "sniff_seconds": round(self.sniff_seconds, 3),
            "messages": self.messages,
            "probed": self.probed,
            "facts": self.facts,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)

    def summary(self) -> str:
        """One line: ``socket.io on redis://...: 2 errors, 1 warning``."""
        counts = {s: sum(1 for f in self.findings if f.severity is s) for s in Severity}
        if self.healthy:
            state = "healthy"
        else:
            parts = []
            for sev, word in ((Severity.ERROR, "error"), (Severity.WARNING, "warning")):
                n = counts[sev]
                if n:
                    parts.append(f"{n} {word}{'s' if n > 1 else ''}")
            state = ", ".join(parts)
        return f"prefix {self.prefix} on {self.url}: {state}"

    # ------------------------------------------------------------------ rendering

    def render(self) -> Any:
        """A rich renderable (``rich.console.Console().print(report.render())``)."""
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        parts: list[Any] = []
        head = Text(self.summary(), style="bold green" if self.healthy else "bold red")
        parts.append(head)
        dial = ", ".join(self.dialects) or "none"
        parts.append(
            Text(
                f"Redis {self.redis_version or '?'} · dialects: {dial} · listened "
                f"{self.sniff_seconds:.1f} s, {self.messages} messages"
                + (" · probed" if self.probed else " · passive"),
                style="dim",
            )
        )
        if self.namespaces:
            table = Table(box=None, pad_edge=False, header_style="bold")
            for col in (
                "namespace",
                "dialects",
                "NUMSUB",
                "SHARDNUMSUB",
                "requests",
                "answers",
                "probe",
            ):
                table.add_column(col)
            for n in self.namespaces:
                probe = "-"
                if n.probe_answers is not None:
                    lat = ", ".join(f"{x:.1f}" for x in n.probe_latencies_ms[:6])
                    probe = f"{n.probe_answers}/{n.probe_expected} answered" + (
                        f" ({lat} ms)" if lat else ""
                    )
                table.add_row(
                    n.nsp,
                    ", ".join(n.dialects) or "-",
                    str(n.request_subscribers),
                    str(n.sharded_subscribers),
                    f"{n.requests_seen} seen, {n.requests_incomplete} incomplete",
                    _answers(n),
                    probe,
                )
            parts.append(table)
        for f in self.findings:
            body = Text()
            body.append(f.title + "\n", style="bold")
            for line in f.evidence:
                body.append("• " + line + "\n")
            body.append("Fix: ", style="bold")
            body.append(f.fix)
            where = f" {f.nsp}" if f.nsp else ""
            title = f"[{_STYLE[f.severity]}]{f.severity.value.upper()}[/] {f.code}{where}"
            parts.append(Panel(body, title=title, title_align="left", expand=True))
        if not self.findings:
            parts.append(Text("No problem found.", style="green"))
        return Group(*parts)

    def to_text(self, width: int = 100) -> str:
        """The rich rendering as plain text."""
        from rich.console import Console

        console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
        console.print(self.render())
        return console.export_text()

    def _repr_html_(self) -> str:
        esc = html.escape
        color = "#2e7d32" if self.healthy else "#c62828"
        out = [
            f'<div><p style="color:{color};font-weight:bold">{esc(self.summary())}</p>',
            f"<p>Redis {esc(self.redis_version or '?')} · dialects: "
            f"{esc(', '.join(self.dialects) or 'none')} · listened {self.sniff_seconds:.1f} s, "
            f"{self.messages} messages{' · probed' if self.probed else ''}</p>",
        ]
        if self.namespaces:
            out.append(
                "<table><tr><th>namespace</th><th>dialects</th><th>NUMSUB</th>"
                "<th>SHARDNUMSUB</th><th>requests seen</th><th>incomplete</th><th>answers</th>"
                "<th>probe</th></tr>"
            )
            for n in self.namespaces:
                probe = (
                    "-"
                    if n.probe_answers is None
                    else f"{n.probe_answers}/{n.probe_expected}"
                    + "".join(f" {x:.1f} ms" for x in n.probe_latencies_ms[:6])
                )
                out.append(
                    f"<tr><td>{esc(n.nsp)}</td><td>{esc(', '.join(n.dialects))}</td>"
                    f"<td>{n.request_subscribers}</td><td>{n.sharded_subscribers}</td>"
                    f"<td>{n.requests_seen}</td><td>{n.requests_incomplete}</td>"
                    f"<td>{esc(_answers(n))}</td>"
                    f"<td>{esc(probe)}</td></tr>"
                )
            out.append("</table>")
        for f in self.findings:
            items = "".join(f"<li>{esc(e)}</li>" for e in f.evidence)
            out.append(
                f'<div style="border-left:4px solid {_HTML_COLOR[f.severity]};'
                f'padding-left:8px;margin:6px 0"><b>{f.severity.value.upper()}</b> '
                f"{esc(f.title)}<ul>{items}</ul><p><b>Fix:</b> {esc(f.fix)}</p></div>"
            )
        if not self.findings:
            out.append("<p>No problem found.</p>")
        out.append("</div>")
        return "".join(out)

    def __repr__(self) -> str:
        return f"<Report {self.summary()}; {len(self.findings)} findings>"


def _answers(n: NamespaceHealth) -> str:
    if n.answer_ms_median is None or n.answer_ms_max is None:
        return "-"
    return f"{n.answer_ms_median:.1f} ms median, {n.answer_ms_max:.1f} ms max"
