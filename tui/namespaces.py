"""``NamespacesScreen``: every namespace with a node; the root of the drill-down."""

from __future__ import annotations

from typing import ClassVar

from .base import ClusterScreen, Rows
from .source import load_summaries
from .table import Column

__all__ = ["NamespacesScreen"]


class NamespacesScreen(ClusterScreen):
    """Namespace, nodes, sockets, named rooms. Enter opens its rooms."""

    VIEW: ClassVar[str] = "namespaces"

    def crumbs(self) -> list[str]:
        return ["Namespaces"]

    def columns(self) -> list[Column]:
        return [
            Column("Namespace"),
            Column("Nodes", numeric=True),
            Column("Sockets", numeric=True),
            Column("Rooms", numeric=True),
        ]

    def cached_rows(self) -> Rows | None:
        summaries = self.siotools.summaries
        if summaries is None:
            return None
        return {s.namespace: (s.namespace, s.nodes, s.sockets, s.rooms) for s in summaries}

    async def fetch(self) -> Rows:
        summaries = await load_summaries(self.cluster)
        self.siotools.summaries = summaries
        self.shortfall = next((s.shortfall for s in summaries if s.shortfall), None)
        return {s.namespace: (s.namespace, s.nodes, s.sockets, s.rooms) for s in summaries}

    def drill(self, key: str) -> None:
        self.siotools.open_rooms(key)
