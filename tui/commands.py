"""``ClusterCommands``: the Ctrl+P palette: jump to a namespace, room or socket; run an action.

Candidates come from the app's last answers (no query per keystroke). Sockets are capped at
:data:`MAX_SOCKETS` candidates for fuzzy search; an exact socket id is always found.
Mutating actions are offered only when the app is not read-only and the view has them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .base import MUTATING, ClusterScreen

if TYPE_CHECKING:
    from .app import SiotoolsApp

__all__ = ["MAX_SOCKETS", "ClusterCommands"]

MAX_SOCKETS = 2000

_ACTION_TITLES = {
    "join": "Join the selected socket to a room",
    "leave": "Make the selected socket leave a room",
    "disconnect": "Disconnect the selected socket",
    "emit": "Emit an event to the selection",
    "leave_all": "Clear the room (every socket leaves)",
    "disconnect_all": "Disconnect every socket of the room",
}


class ClusterCommands(Provider):
    """Jumps and actions."""

    def _app(self) -> SiotoolsApp:
        from .app import SiotoolsApp

        app = self.app
        assert isinstance(app, SiotoolsApp)
        return app

    def _candidates(self) -> list[tuple[str, Callable[[], object], str]]:
        app = self._app()
        found: list[tuple[str, Callable[[], object], str]] = [
            ("Go to namespaces", partial(app.action_go, "namespaces"), "view"),
            ("Go to traffic", partial(app.action_go, "traffic"), "view"),
            ("Refresh now", app.action_refresh_now, "Ctrl+R"),
        ]
        for summary in app.summaries or []:
            nsp = summary.namespace
            found.append((f"Namespace {nsp}: rooms", partial(app.open_rooms, nsp), "namespace"))
            found.append(
                (f"Namespace {nsp}: sockets", partial(app.open_all_sockets, nsp), "namespace")
            )
        for nsp, data in app.namespace_cache.items():
            for room in data.members:
                found.append((f"Room {room} ({nsp})", partial(app.open_sockets, nsp, room), "room"))
            for sid in data.sockets[:MAX_SOCKETS]:
                found.append(
                    (f"Socket {sid} ({nsp})", partial(app.open_socket, nsp, sid), "socket")
                )
        screen = app.screen
        if isinstance(screen, ClusterScreen) and not app.read_only:
            for action, title in _ACTION_TITLES.items():
                if (
                    action in MUTATING
                    and screen.check_action(action, ())
                    and hasattr(screen, f"action_{action}")
                ):
                    found.append((title, getattr(screen, f"action_{action}"), "action"))
        return found

    async def discover(self) -> Hits:
        for title, callback, help_text in self._candidates()[:20]:
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        app = self._app()
        for title, callback, help_text in self._candidates():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
        for nsp, data in app.namespace_cache.items():
            if query in data.sockets[MAX_SOCKETS:]:
                yield Hit(1.0, f"Socket {query} ({nsp})", partial(app.open_socket, nsp, query))
