"""Parsing Redis URLs and reading redis-py clients."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from siotools.exceptions import ConfigurationError
from siotools.transport.endpoint import RedisEndpoint


def test_url_forms() -> None:
    ep = RedisEndpoint.from_url("redis://user:p%40ss@example.org:6380/3")
    assert (ep.host, ep.port, ep.db, ep.username, ep.password, ep.tls) == (
        "example.org",
        6380,
        3,
        "user",
        "p@ss",
        False,
    )
    assert "p@ss" not in ep.url and "p@ss" not in repr(ep)
    assert RedisEndpoint.from_url("rediss://h").tls is True
    unix = RedisEndpoint.from_url("unix:///tmp/redis.sock?db=2")
    assert (unix.path, unix.db) == ("/tmp/redis.sock", 2)


@pytest.mark.parametrize("url", ["http://x", "localhost:6379", "redis://h:notaport/0"])
def test_bad_urls_name_the_problem(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisEndpoint.from_url(url)
    assert url in str(info.value)


def test_from_client_and_rejects_other_objects() -> None:
    client = aioredis.Redis(host="10.0.0.9", port=7000, db=4, password="pw", username="u")
    ep = RedisEndpoint.from_client(client)
    assert (ep.host, ep.port, ep.db, ep.password, ep.username) == ("10.0.0.9", 7000, 4, "pw", "u")
    with pytest.raises(ConfigurationError):
        RedisEndpoint.from_client(object())


def test_query_options() -> None:
    ep = RedisEndpoint.from_url("redis://h?db=3&socket_connect_timeout=0.5")
    assert (ep.db, ep.connect_timeout) == (3, 0.5)
    assert RedisEndpoint.from_url("redis://h/2?db=3").db == 3  # ?db= wins, as in redis-py
    assert RedisEndpoint.from_url("rediss://h/0?ssl_cert_reqs=none").ssl_check_hostname is False
    with pytest.raises(ConfigurationError, match="unknown option"):
        RedisEndpoint.from_url("redis://h/0?ssl_ca_cert=/x")  # a typo is not ignored
    for url in ("unix://", "redis+sentinel:///0/m"):
        with pytest.raises(ConfigurationError):
            RedisEndpoint.from_url(url)


def test_from_client_of_a_tls_url() -> None:
    client = aioredis.Redis.from_url("rediss://h:6380/0?ssl_cert_reqs=none")
    ep = RedisEndpoint.from_client(client)
    assert ep.tls and ep.ssl_cert_reqs == "none" and not ep.ssl_check_hostname


@pytest.mark.parametrize("flag", ["false", "0", "no", "off", "FALSE"])
def test_cluster_false_is_a_single_redis(flag: str) -> None:
    # Every single-Redis path reads the URL here: cluster=false must mean just that.
    ep = RedisEndpoint.from_url(f"redis://h:7000/2?cluster={flag}&socket_connect_timeout=3")
    assert (ep.host, ep.port, ep.db, ep.connect_timeout) == ("h", 7000, 2, 3.0)
    assert "cluster" not in ep.url


def test_cluster_flags_a_single_redis_cannot_take() -> None:
    with pytest.raises(ConfigurationError) as bad:
        RedisEndpoint.from_url("redis://:secret@h:7000/0?cluster=maybe")
    text = str(bad.value)
    assert "cluster='maybe'" in text and "secret" not in text and "\n" not in text
    with pytest.raises(ConfigurationError) as true:
        RedisEndpoint.from_url("redis://:secret@h:7000/0?cluster=true")
    text = str(true.value)
    assert "Redis Cluster" in text and "secret" not in text and "unknown option" not in text
