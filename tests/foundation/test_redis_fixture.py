"""The private Redis the suite runs on is real, private and can be restarted."""

from __future__ import annotations

import pytest
import redis

from siotools.exceptions import RedisLaunchError
from siotools.redis_server import RedisServer, find_redis_server


def test_session_redis_is_private_and_real(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping() is True
    assert client.connection_pool.connection_kwargs["port"] != 6379
    info = client.info("server")
    assert info["redis_version"].split(".")[0] >= "6"
    client.close()


def test_fresh_redis_kill_and_restart(fresh_redis: RedisServer) -> None:
    client = redis.Redis(port=fresh_redis.port, socket_timeout=1)
    client.set("k", "v")
    fresh_redis.kill()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    fresh_redis.restart()
    assert redis.Redis(port=fresh_redis.port).ping() is True
    # a fresh process keeps nothing on disk
    assert redis.Redis(port=fresh_redis.port).get("k") is None


def test_missing_binary_is_one_clear_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIOTOOLS_REDIS_SERVER", "/nonexistent/redis-server")
    with pytest.raises(RedisLaunchError) as info:
        RedisServer().start()
    message = str(info.value)
    assert message.count("\n") == 0 and message.endswith(".")
    assert "/nonexistent/redis-server" in message


def test_binary_discovery_finds_something() -> None:
    assert find_redis_server().name == "redis-server"
