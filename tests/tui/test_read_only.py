"""The read-only audit: every mutating action is hidden and refused, on every view.

A new binding must be classified here (mutating or safe), so no action slips past the
flag (k9s shipped drain/cordon in read-only mode for that reason).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from siotools.tui.app import SiotoolsApp
from siotools.tui.base import MUTATING, ClusterScreen
from siotools.tui.commands import ClusterCommands
from siotools.tui.config import load_settings
from siotools.tui.health import HealthScreen
from siotools.tui.namespaces import NamespacesScreen
from siotools.tui.rooms import RoomsScreen
from siotools.tui.socket_detail import SocketScreen
from siotools.tui.sockets import SocketsScreen
from siotools.tui.traffic import TrafficScreen

from siotools.exceptions import ConfigurationError
from tests.tui.conftest import Cluster, loaded, until

SCREENS: list[type[ClusterScreen]] = [
    NamespacesScreen,
    RoomsScreen,
    SocketsScreen,
    SocketScreen,
    TrafficScreen,
    HealthScreen,
]
SAFE = {
    # ours
    "back", "filter", "sort", "reverse", "pause", "follow", "clear",
    "quit", "help", "refresh_now", "go('namespaces')", "go('rooms')", "go('sockets')",
    "go('traffic')", "push_screen('health')", "stay",
    # Textual's own
    "app.focus_next", "app.focus_previous", "screen.copy_text", "help_quit",
}  # fmt: skip


def bindings(cls: type[object]) -> list[tuple[str, str]]:
    found = []
    for klass in cls.__mro__:
        for binding in vars(klass).get("BINDINGS", []):
            found.append((binding.key, binding.action))
    return found


def test_every_binding_is_classified() -> None:
    actions = {action for cls in [*SCREENS, SiotoolsApp] for _, action in bindings(cls)}
    assert actions <= MUTATING | SAFE, actions - MUTATING - SAFE
    assert actions >= MUTATING  # every mutating action has a key somewhere


async def test_read_only_hides_and_refuses_every_action(cluster: Cluster) -> None:
    app = cluster.app(read_only=True)
    bob = cluster.bob.sid()
    mutating_keys = sorted(
        {key.split(",")[0] for cls in SCREENS for key, act in bindings(cls) if act in MUTATING}
    )
    assert set(mutating_keys) == {"j", "l", "d", "e", "L", "D"}
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.screen.table.keys)  # type: ignore[attr-defined]
        views = [
            lambda: app.push_screen(RoomsScreen("/")),
            lambda: app.push_screen(SocketsScreen("/", "vip")),
            lambda: app.push_screen(SocketsScreen("/")),
            lambda: app.push_screen(SocketScreen("/", bob)),
            lambda: app.push_screen(TrafficScreen("/")),
        ]
        visited = [app.screen]
        for open_view in [None, *views]:
            if open_view is not None:
                open_view()
                await until(pilot, lambda: app.screen not in visited and app.screen.is_mounted)
                visited.append(app.screen)
            screen = app.screen
            assert isinstance(screen, ClusterScreen)
            await until(pilot, lambda screen=screen: screen.table.keys or screen.VIEW == "traffic")
            shown = {b.binding.action for b in screen.active_bindings.values()}
            assert not shown & MUTATING, (screen.VIEW, shown & MUTATING)
            for key in mutating_keys:
                await pilot.press(key)
                await pilot.pause()
                assert app.screen is screen, (screen.VIEW, key)
            # reached by another path than a key (the palette, a stray call): still refused
            for action in sorted(MUTATING):
                method = getattr(screen, f"action_{action}", None)
                if method is not None:
                    method()
                    await pilot.pause(0.05)
                    assert app.screen is screen, (screen.VIEW, action)
            provider = ClusterCommands(screen)
            assert not [c for c in provider._candidates() if c[2] == "action"]
        await app.workers.wait_for_complete()
        assert app.screen is visited[-1]

    # nothing changed in the cluster
    assert sorted(await cluster.bob.join()) == sorted([bob, "lobby", "vip"])
    assert await cluster.bob.no_event("anything", wait=0.1)
    assert not cluster.bob.disconnected and not cluster.carol.disconnected


async def test_write_mode_offers_actions_in_the_palette(cluster: Cluster) -> None:
    app = cluster.app()
    async with app.run_test(size=(120, 36)) as pilot:
        app.open_sockets("/", "vip")
        await loaded(pilot, app, SocketsScreen)
        screen = app.screen
        shown = {b.binding.action for b in screen.active_bindings.values()}
        assert shown >= MUTATING
        titles = [c[0] for c in ClusterCommands(screen)._candidates() if c[2] == "action"]
        assert "Disconnect the selected socket" in titles


def test_config_file_per_cluster(tmp_path: Path) -> None:
    path = tmp_path / "tui.toml"
    path.write_text(
        '[[cluster]]\nurl = "redis://prod:6379/0"\nprefix = "socket.io"\n'
        "read_only = true\nrefresh = 5\n"
        '[[cluster]]\nurl = "redis://dev:6379/0"\nrefresh = 1\n'
    )
    prod = load_settings("redis://prod:6379/0", "socket.io", path=path)
    assert (prod.read_only, prod.refresh) == (True, 5.0)
    # the flag cannot turn read-only off; --refresh overrides the file
    assert load_settings("redis://:secret@prod:6379/0", "socket.io", path=path).read_only
    assert load_settings("redis://prod:6379/0", "socket.io", refresh=3, path=path).refresh == 3
    other_prefix = load_settings("redis://prod:6379/0", "staging", path=path)
    assert (other_prefix.read_only, other_prefix.refresh) == (False, 2.0)
    dev = load_settings("redis://dev:6379/0", "anything", read_only=True, path=path)
    assert (dev.read_only, dev.refresh) == (True, 1.0)
    assert load_settings("redis://x", "p", path=tmp_path / "missing.toml").refresh == 2.0
    with pytest.raises(ConfigurationError):
        load_settings("redis://x", "p", refresh=0.1, path=path)
    path.write_text("[[cluster]\n")
    with pytest.raises(ConfigurationError):
        load_settings("redis://x", "p", path=path)
