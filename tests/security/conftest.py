"""Fixtures of the security tests: a private CA, TLS and mutual-TLS redis-servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from siotools.redis_server import RedisServer, TlsFiles, make_tls_files


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and localhost, a client certificate."""
    return make_tls_files(tmp_path_factory.mktemp("tls"), server_names=("127.0.0.1", "localhost"))


@pytest.fixture(scope="session")
def localhost_only_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Certificates whose server certificate names only ``localhost`` (not 127.0.0.1)."""
    return make_tls_files(tmp_path_factory.mktemp("tls-localhost"), server_names=("localhost",))


@pytest.fixture(scope="session")
def tls_redis(tls_files: TlsFiles) -> Iterator[RedisServer]:
    """A redis-server with a TLS port (no client certificate needed)."""
    with RedisServer(tls=tls_files) as server:
        yield server


@pytest.fixture(scope="session")
def mtls_redis(tls_files: TlsFiles) -> Iterator[RedisServer]:
    """A redis-server whose TLS port demands a client certificate (tls-auth-clients yes)."""
    with RedisServer(tls=tls_files, tls_auth_clients=True) as server:
        yield server
