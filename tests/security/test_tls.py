"""TLS and mutual TLS against a real redis-server with a CA made by the test session."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
import redis.asyncio as aioredis

from siotools import AsyncRedisAdapter
from siotools.exceptions import ConfigurationError, RedisUnavailableError
from siotools.redis_server import RedisServer, TlsFiles
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher, Subscriber


def q(path: object) -> str:
    return quote(str(path), safe="")


async def roundtrip(ep: RedisEndpoint) -> list[bytes]:
    """Subscribe and publish over ``ep``; returns what the subscriber heard."""
    got: list[bytes] = []
    heard = asyncio.Event()

    def on_message(channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        got.append(payload)
        heard.set()

    sub = Subscriber(ep, on_message)
    pub = Publisher(ep)
    await sub.start()
    await pub.start()
    try:
        await sub.subscribe([b"tls-check"])
        assert await pub.publish_wait(b"tls-check", b"over tls") == 1
        await asyncio.wait_for(heard.wait(), 5)
    finally:
        await sub.close()
        await pub.close()
    return got


async def test_private_ca_from_the_url(tls_redis: RedisServer, tls_files: TlsFiles) -> None:
    ep = RedisEndpoint.from_url(f"{tls_redis.tls_url}?ssl_ca_certs={q(tls_files.ca)}")
    assert ep.tls and ep.ssl_ca_certs == str(tls_files.ca)
    assert await roundtrip(ep) == [b"over tls"]


async def test_ca_path(tls_redis: RedisServer, tls_files: TlsFiles, tmp_path: Path) -> None:
    # A CA folder holds certificates under their subject hash (what c_rehash makes).
    digest = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(tls_files.ca)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    shutil.copy(tls_files.ca, tmp_path / f"{digest}.0")
    url = f"{tls_redis.tls_url}?ssl_ca_path={q(tmp_path)}"
    assert await roundtrip(RedisEndpoint.from_url(url)) == [b"over tls"]
    keyword = RedisEndpoint(port=tls_redis.tls_port or 0, tls=True, ssl_ca_path=str(tmp_path))
    assert await roundtrip(keyword) == [b"over tls"]


async def test_unknown_ca_says_what_to_pass(tls_redis: RedisServer, tls_files: TlsFiles) -> None:
    for url in (
        tls_redis.tls_url,  # the system CAs do not know the private CA
        f"{tls_redis.tls_url}?ssl_ca_certs={q(tls_files.other_ca)}",
    ):
        with pytest.raises(RedisUnavailableError) as info:
            await Publisher(RedisEndpoint.from_url(url)).start()
        text = str(info.value)
        assert "certificate" in text and "ssl_ca_certs" in text, text
        assert "\n" not in text


async def test_cert_reqs_none_skips_verification(tls_redis: RedisServer) -> None:
    ep = RedisEndpoint.from_url(f"{tls_redis.tls_url}?ssl_cert_reqs=none")
    assert ep.ssl_cert_reqs == "none" and ep.ssl_check_hostname is False
    assert await roundtrip(ep) == [b"over tls"]


async def test_check_hostname(localhost_only_tls: TlsFiles) -> None:
    with RedisServer(tls=localhost_only_tls) as server:
        base = f"rediss://127.0.0.1:{server.tls_port}/0?ssl_ca_certs={q(localhost_only_tls.ca)}"
        with pytest.raises(RedisUnavailableError, match="certificate"):
            await Publisher(RedisEndpoint.from_url(base)).start()
        ep = RedisEndpoint.from_url(f"{base}&ssl_check_hostname=false")
        assert await roundtrip(ep) == [b"over tls"]
        by_name = RedisEndpoint.from_url(base.replace("127.0.0.1", "localhost"))
        assert await roundtrip(by_name) == [b"over tls"]


async def test_mutual_tls(mtls_redis: RedisServer, tls_files: TlsFiles) -> None:
    base = f"{mtls_redis.tls_url}?ssl_ca_certs={q(tls_files.ca)}"
    with pytest.raises(RedisUnavailableError) as info:
        await Publisher(RedisEndpoint.from_url(base)).start()
    assert "client certificate" in str(info.value) and "ssl_certfile" in str(info.value)
    full = f"{base}&ssl_certfile={q(tls_files.client_cert)}&ssl_keyfile={q(tls_files.client_key)}"
    assert await roundtrip(RedisEndpoint.from_url(full)) == [b"over tls"]


async def test_pub_client_tls_settings_are_kept(
    mtls_redis: RedisServer, tls_files: TlsFiles, key: str
) -> None:
    client = aioredis.Redis(
        host="127.0.0.1",
        port=mtls_redis.tls_port or 0,
        ssl=True,
        ssl_ca_certs=str(tls_files.ca),
        ssl_certfile=str(tls_files.client_cert),
        ssl_keyfile=str(tls_files.client_key),
        ssl_cert_reqs="required",
    )
    ep = RedisEndpoint.from_client(client)
    assert (ep.tls, ep.ssl_ca_certs, ep.ssl_certfile, ep.ssl_keyfile) == (
        True,
        str(tls_files.ca),
        str(tls_files.client_cert),
        str(tls_files.client_key),
    )
    adapter = AsyncRedisAdapter(pub_client=client, sub_client=client, key=key)
    await adapter.start()
    try:
        assert await adapter.node_count() == 1
        assert await client.ping()  # the application's own client keeps working too
    finally:
        await adapter.close()
        await client.aclose()


def test_url_tls_options_are_checked(tls_files: TlsFiles) -> None:
    ep = RedisEndpoint.from_url(
        f"rediss://h:6380/1?ssl_ca_certs={q(tls_files.ca)}&ssl_cert_reqs=optional"
        f"&ssl_certfile={q(tls_files.client_cert)}&ssl_keyfile={q(tls_files.client_key)}"
        "&ssl_check_hostname=no"
    )
    assert (ep.ssl_cert_reqs, ep.ssl_check_hostname) == ("optional", False)
    ctx = ep.ssl_context()
    assert ctx is not None and not ctx.check_hostname
    kwargs = ep.redis_py_kwargs()
    assert kwargs["ssl"] and kwargs["ssl_certfile"] == str(tls_files.client_cert)
    for bad, says in [
        ("rediss://h/0?ssl_cert_reqs=maybe", "ssl_cert_reqs must be none, optional or required"),
        ("rediss://h/0?ssl_check_hostname=perhaps", "must be true or false"),
        ("rediss://h/0?ssl_verify=1", "unknown option(s) ssl_verify"),
        ("rediss://h/0?ssl_keyfile=/k.pem", "ssl_keyfile needs ssl_certfile"),
    ]:
        with pytest.raises(ConfigurationError, match=says.replace("(", r"\(").replace(")", r"\)")):
            RedisEndpoint.from_url(bad)
    missing = RedisEndpoint.from_url("rediss://h/0?ssl_ca_certs=/no/such/ca.pem")
    with pytest.raises(ConfigurationError, match="Cannot load the TLS files"):
        missing.ssl_context()
