"""Redis down: a clear message in the app with a retry, not a traceback."""

from __future__ import annotations

from siotools.tui.app import SiotoolsApp
from siotools.tui.namespaces import NamespacesScreen
from siotools.tui.unreachable import Unreachable

from siotools import ClusterClient
from siotools.redis_server import RedisServer, free_port
from tests.tui.conftest import until


async def test_unreachable_then_retry() -> None:
    port = free_port()
    client = ClusterClient(f"redis://127.0.0.1:{port}/0", key="x", requests_timeout=0.5)
    app = SiotoolsApp(client, refresh=60)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, Unreachable))
        modal = app.screen
        assert isinstance(modal, Unreachable)
        assert modal.url == f"redis://127.0.0.1:{port}/0"
        await pilot.press("r")  # still down: the dialog comes back
        await until(pilot, lambda: isinstance(app.screen, Unreachable) and app.screen is not modal)
        with RedisServer(port=port):
            await pilot.press("r")
            await until(
                pilot, lambda: app.down is None and isinstance(app.screen, NamespacesScreen)
            )
            await app.workers.wait_for_complete()
            assert app.down is None
            assert app.header_info.nodes == {}
        await client.close()
