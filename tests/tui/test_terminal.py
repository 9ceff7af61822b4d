"""``siotools tui`` in a real terminal: tmux runs it against a demo cluster; keys in, screen out.

The Pilot tests drive the app inside pytest; this one runs the installed command the way an
operator does (a pseudo-terminal, a real demo cluster, real key presses) and reads the screen
as tmux renders it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from siotools.redis_server import free_port

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


class Terminal:
    """One tmux session on a private server (``-L``), 100x30, running ``command``."""

    def __init__(self, command: list[str]) -> None:
        self.server = f"siotools-test-{uuid.uuid4().hex[:8]}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("SIOTOOLS_", "TMUX"))}
        line = " ".join(shlex.quote(w) for w in command)
        # The exit status is printed on the screen once the command ends.
        script = f"{line}; echo EXIT=$?; sleep 60"
        self._tmux(
            "new-session", "-d", "-x", "100", "-y", "30", "-s", "t", "sh", "-c", script,
            env={**clean, "TERM": "xterm-256color"},
        )  # fmt: skip

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.server, *args],
            capture_output=True, text=True, timeout=20, env=env,
        )  # fmt: skip
        return out.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def wait(self, check: Callable[[str], bool], what: str, timeout: float = 40) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}; the screen:\n{text}")
            time.sleep(0.2)

    def seen(self, check: Callable[[str], object], timeout: float) -> bool:
        """Whether the screen satisfies ``check`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self.screen()):
                return True
            time.sleep(0.2)
        return False

    def close(self) -> None:
        self._tmux("kill-server")


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    argv = [sys.executable, "-m", "siotools", "demo", "--headless", "--nodes", "2"]
    argv += ["--clients", "20", "--rate", "20", "--churn", "0", "--remote-every", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIOTOOLS_")}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    url = None
    for line in proc.stdout:
        found = re.search(r"Redis is ready at (redis://\S+)", line)
        url = found[1] if found else url
        if "Press Ctrl-C" in line:
            break
    assert url is not None, "the demo did not start"
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_browse_and_traffic_in_a_real_terminal(demo_url: str) -> None:
    term = Terminal([sys.executable, "-m", "siotools", "tui", "--url", demo_url])
    try:
        text = term.wait(
            lambda s: "/chat" in s and "@socket.io/redis-adapter 8.x" in s, "the namespaces"
        )
        assert "nodes / 2" in text or "/ 2" in text
        term.wait(lambda s: "2 rows" in s, "both namespaces' rows")
        term.keys("Down", "Enter")  # /chat's rooms
        if not term.seen(lambda s: "rooms" in s and re.search(r"\d+ rows", s), timeout=10):
            # On a loaded machine the first keys can reach the app before its table has
            # focus; the screen still shows the namespaces, so asking again is the same act.
            term.keys("Down", "Enter")
        term.wait(lambda s: "rooms" in s and re.search(r"\d+ rows", s) is not None, "rooms")
        term.keys("4")
        term.wait(
            lambda s: (
                "Traffic" in s
                and "broadcast" in s
                and s.rstrip().splitlines()[-1].rstrip().endswith("? Help")
            ),  # the footer, whole
            "live traffic",
        )
        term.keys("Enter")
        # The whole detail, once drawn (a capture can catch the pane mid-render).
        term.wait(
            lambda s: (
                "channel" in s
                and "hex below" in s
                and "dialect  @socket.io/redis-adapter 8.x" in s
                and '"kind": "' in s  # which frame is selected depends on the moment
            ),
            "a frame's detail",
        )
        term.keys("End")  # the pane scrolls down to the raw bytes
        # The end of the hex dump (a large frame's first lines have scrolled off by then).
        hexline = re.compile(r"\b[0-9a-f]{6}  (?:[0-9a-f]{2} )+")
        term.wait(lambda s: hexline.search(s) is not None, "the frame's bytes")
        term.keys("Escape")
        term.wait(lambda s: "hex below" not in s and "Traffic" in s, "back to the traffic")
        term.keys("q")
        term.wait(lambda s: "EXIT=0" in s, "a clean exit")
    finally:
        term.close()


def test_unreachable_then_q_exits_2_in_a_real_terminal() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    term = Terminal([sys.executable, "-m", "siotools", "tui", "--url", url])
    try:
        term.wait(lambda s: "Redis is unreachable" in s, "the unreachable dialog")
        term.keys("q")
        text = term.wait(lambda s: "EXIT=" in s, "the exit")
        assert "EXIT=2" in text
        assert "siotools tui: Cannot reach Redis" in text and "Traceback" not in text
    finally:
        term.close()
