"""``SiotoolsApp``: the ops console for a Socket.IO Redis-adapter cluster.

It only talks to the cluster through :class:`~siotools.tui.source.ClusterAPI` (a
:class:`siotools.ClusterClient`) and to the traffic through a frame source (the sniffer).
Screens form a drill-down stack: Namespaces → Rooms → Sockets → Socket; Esc pops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import var
from textual.screen import Screen

from siotools.exceptions import RedisUnavailableError, SiotoolsError

from .base import ClusterScreen
from .commands import ClusterCommands
from .config import DEFAULT_REFRESH
from .header import HeaderInfo
from .health import HealthScreen
from .help import HelpScreen
from .namespaces import NamespacesScreen
from .rooms import RoomsScreen
from .socket_detail import SocketScreen
from .sockets import SocketsScreen
from .source import ClusterAPI, NamespaceData, NamespaceSummary
from .traffic import TrafficScreen
from .traffic_model import TrafficModel
from .traffic_source import Discovery, TrafficSource
from .unreachable import Unreachable

__all__ = ["SiotoolsApp"]

SOCKET_SCREEN = "socket"


class SiotoolsApp(App[None]):
    """The console.

    Args:
        cluster: A :class:`siotools.ClusterClient` (or anything with its methods).
        read_only: Hide and refuse every action that changes the cluster.
        refresh: Seconds between refreshes of the current view.
        traffic: A factory of frame iterators for the traffic view (None: no traffic).
        traffic_cap: Lines the traffic view keeps.
        traffic_filter: The traffic view's initial filter (``nsp=/ room=lobby ...``).
        discovery: Says what the Redis carries when no node answers under the prefix
            (a wrong prefix, the wrong Redis); None: no such hint.
        clock: Epoch seconds, for the rates (the tests freeze it).
    """

    CSS_PATH = "app.tcss"
    TITLE = "siotools"
    COMMANDS = App.COMMANDS | {ClusterCommands}
    SCREENS: ClassVar[dict[str, Callable[[], Screen[None]]]] = {"health": HealthScreen}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+r", "refresh_now", "Refresh", show=False),
        Binding("1", "go('namespaces')", "Namespaces", show=False),
        Binding("2", "go('rooms')", "Rooms", show=False),
        Binding("3", "go('sockets')", "Sockets", show=False),
        Binding("4", "go('traffic')", "Traffic", show=False),
        Binding("5", "push_screen('health')", "Health", show=False),
    ]

    header_info: var[HeaderInfo] = var(HeaderInfo)

    def __init__(
        self,
        cluster: ClusterAPI,
        *,
        read_only: bool = False,
        refresh: float = DEFAULT_REFRESH,
        traffic: TrafficSource | None = None,
        traffic_cap: int = 5000,
        traffic_filter: str = "",
        discovery: Discovery | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.cluster = cluster
        self.read_only = read_only
        self.refresh_seconds = refresh
        self.traffic_source = traffic
        self.traffic = TrafficModel(cap=traffic_cap)
        self.traffic_filter = traffic_filter
        self.traffic_problem: str | None = None if traffic else "no traffic source"
        self.clock = clock
        self.namespace = "/"
        self.summaries: list[NamespaceSummary] | None = None
        self.namespace_cache: dict[str, NamespaceData] = {}
        self.node_counts: dict[str, int] = {}
        self.down: Unreachable | None = None
        self.socket_screen: SocketScreen | None = None
        self.discovery = discovery
        self.hint: str | None = None
        """What the Redis carries, once no node answered for a while (see ``discovery``)."""
        self._quiet_since: float | None = None
        self.exit_reason: str | None = None
        """Why the app quit on a failure (the command prints it); None after a normal quit."""
        self.set_reactive(SiotoolsApp.header_info, self._header())

    def get_default_screen(self) -> Screen[None]:
        return NamespacesScreen()

    def on_mount(self) -> None:
        self.set_interval(self.refresh_seconds, self.tick, name="refresh")
        self.refresh_header()
        if self.traffic_source is not None:
            self.watch_traffic()

    # ------------------------------------------------------------------ refresh

    def _header(self, problem: str | None = None) -> HeaderInfo:
        # As users know it ("socket.io-redis 5.x"); no dialect yet: the client detects it.
        dialect = getattr(self.cluster.dialect, "label", None) or "auto"
        fps = None
        if self.traffic_source is not None:
            fps = self.traffic.frames_per_second(self.clock())
        return HeaderInfo(
            url=self.cluster.url,
            prefix=self.cluster.prefix,
            dialect=dialect,
            read_only=self.read_only,
            refresh=self.refresh_seconds,
            nodes=dict(self.node_counts),
            frames_per_second=fps,
            problem=(problem or self.traffic_problem if self.traffic_source else problem)
            or self.hint,
        )

    def tick(self) -> None:
        """The refresh timer: the current view and the header."""
        if self.down is not None:
            return
        screen = self.screen
        if isinstance(screen, ClusterScreen) and not isinstance(screen, TrafficScreen):
            screen.reload()
        self.refresh_header()

    def action_refresh_now(self) -> None:
        """Ctrl+R."""
        screen = self.screen
        if isinstance(screen, ClusterScreen):
            screen.reload()
        self.refresh_header()

    @work(name="refresh-header", group="header", exclusive=True, exit_on_error=False)
    async def refresh_header(self) -> None:
        try:
            self.node_counts = await self.cluster.node_counts()
        except RedisUnavailableError as exc:
            self.redis_down(exc)
            return
        except SiotoolsError as exc:
            self.header_info = self._header(str(exc))
            return
        self._check_quiet()
        self.header_info = self._header()

    def _check_quiet(self) -> None:
        """No node and no frame for a while: look at what the Redis does carry."""
        quiet = not self.node_counts and self.traffic.total == 0
        if not quiet:
            self._quiet_since, self.hint = None, None
            return
        now = time.monotonic()
        if self._quiet_since is None:
            self._quiet_since = now
        if self.discovery is not None and self.hint is None and now - self._quiet_since >= 3:
            self.look_around()

    @work(name="discovery", group="discovery", exclusive=True, exit_on_error=False)
    async def look_around(self) -> None:
        assert self.discovery is not None
        try:
            found = await self.discovery()
        except SiotoolsError as exc:
            found = f"cannot look at the Redis ({exc})"
        self.hint = f"nothing under prefix {self.cluster.prefix!r}: {found}"
        self.header_info = self._header()

    @work(name="traffic", group="traffic", exclusive=True, exit_on_error=False)
    async def watch_traffic(self) -> None:
        """Feed the traffic model from the sniffer; reconnect after failures."""
        assert self.traffic_source is not None
        while True:
            try:
                self.traffic_problem = None
                async for frame in self.traffic_source():
                    self.traffic.add(frame)
                self.traffic_problem = "traffic source ended"
                return
            except (SiotoolsError, OSError) as exc:
                self.traffic_problem = f"traffic: {exc}"
                await asyncio.sleep(self.refresh_seconds)

    # ------------------------------------------------------------------ Redis down

    def redis_down(self, exc: BaseException) -> None:
        """Show the unreachable dialog (once) with a retry."""
        if self.down is not None:
            return
        self.down = Unreachable(self.cluster.url, str(exc) or type(exc).__name__)
        self.push_screen(self.down, self._retry)

    def quit_unreachable(self) -> None:
        """Quit from the unreachable dialog: exit status 2, as the command line has."""
        reason = self.down.reason if self.down is not None else "Redis is unreachable"
        self.exit_reason = reason
        self.exit(return_code=2)

    def _retry(self, retry: bool | None) -> None:
        self.down = None
        if retry:
            self.action_refresh_now()

    # ------------------------------------------------------------------ navigation

    def _to_root(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def open_rooms(self, namespace: str) -> None:
        self.namespace = namespace
        self.push_screen(RoomsScreen(namespace))

    def open_sockets(self, namespace: str, room: str) -> None:
        self.namespace = namespace
        self.push_screen(SocketsScreen(namespace, room))

    def open_all_sockets(self, namespace: str) -> None:
        self.namespace = namespace
        self._to_root()
        self.push_screen(SocketsScreen(namespace))

    def open_socket(self, namespace: str, sid: str) -> None:
        """Push the socket screen (one installed screen, reused: see :meth:`SocketScreen.show`)."""
        self.namespace = namespace
        screen = self.socket_screen
        if screen is None:
            screen = self.socket_screen = SocketScreen(namespace, sid)
            self.install_screen(screen, SOCKET_SCREEN)
        if self.screen is screen:
            screen.show(namespace, sid)
        elif screen in self.screen_stack:  # under a modal: a fresh one on top
            self.push_screen(SocketScreen(namespace, sid))
        else:
            screen.show(namespace, sid)
            self.push_screen(screen)

    def action_go(self, view: str) -> None:
        """1..4: Namespaces, Rooms, Sockets (of the current namespace), Traffic."""
        if view == "traffic":
            if not isinstance(self.screen, TrafficScreen):
                self.push_screen(TrafficScreen(self.namespace))
            return
        self._to_root()
        if view == "rooms":
            self.push_screen(RoomsScreen(self.namespace))
        elif view == "sockets":
            self.push_screen(SocketsScreen(self.namespace))

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, ClusterScreen):
            self.push_screen(HelpScreen(screen.VIEW, screen.help_keys()))
