"""No string siotools makes (repr, URL, error, log line, CLI output) shows a password."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import pytest

from siotools import AsyncRedisAdapter, ClusterClient
from siotools.exceptions import ConfigurationError, RedisUnavailableError
from siotools.redis_server import RedisServer, free_port
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher, Subscriber

SECRET = "S3cret"

BAD_URLS = [
    ("redis://u:S3cret@127.0.0.1:99999/0", "invalid port"),
    ("redis://u:S3cret@127.0.0.1:0/0", "port 0"),
    ("redis://u:S3cret@127.0.0.1:6379/x", "invalid database number 'x'"),
    ("redis://u:S3cret@127.0.0.1:6379/-1", "invalid database number"),
    ("http://u:S3cret@127.0.0.1:6379/0", "is not a Redis URL"),
    ("redis://u:S3cret@[::1", "is not a valid Redis URL"),
    ("redis://:S3cret@[::1", "is not a valid Redis URL"),
    ("unix://u:S3cret@/tmp/x.sock?db=x", "invalid database number 'x'"),
    ("unix:///tmp/x.sock?db=x", "invalid database number 'x'"),
    ("redis://u:S3cret@h:6379/0?bogus=1", "unknown option(s) bogus"),
    ("redis://u:S3cret@h:6379/0?socket_connect_timeout=nan", "socket_connect_timeout"),
    ("redis+sentinel://u:S3cret@h:notaport/mymaster", "invalid Sentinel port"),
    ("redis+sentinel://u:S3cret@h:26379/0/svc/extra", "too many path parts"),
    ("redis://u:S3c@ret@127.0.0.1:99999/0", "invalid port"),  # an '@' in the password
]


@pytest.mark.parametrize(("url", "says"), BAD_URLS)
def test_bad_url_errors_never_show_the_password(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisEndpoint.from_url(url)
    text = str(info.value)
    assert says in text, text
    assert SECRET not in text and "S3c" not in text, text
    assert "\n" not in text
    with pytest.raises(ConfigurationError) as info2:
        AsyncRedisAdapter(url)
    assert "S3c" not in str(info2.value)


def test_explicit_port_zero_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="out of range"):
        RedisEndpoint(port=0)
    with pytest.raises(ConfigurationError, match="port 0"):
        RedisEndpoint.from_url("redis://127.0.0.1:0")
    assert RedisEndpoint.from_url("redis://127.0.0.1").port == 6379


def test_repr_str_url_and_redis_py_kwargs() -> None:
    from siotools.transport.endpoint import redact_url

    ep = RedisEndpoint.from_url("redis://user:S3cret@example.org:6380/3")
    for text in (repr(ep), str(ep), ep.url, f"{ep}", f"{ep!r}"):
        assert SECRET not in text and "***" in text, text
    assert ep.password == SECRET  # kept, only never shown
    assert ep.redis_py_kwargs()["password"] == SECRET
    assert redact_url("redis://:S3cret@h/0") == "redis://:***@h/0"
    assert redact_url("not a url u:S3cret@x") == "not a url u:***@x"
    sentinel = RedisEndpoint.from_url("redis+sentinel://u:S3cret@a:1,b:2/0/svc")
    assert SECRET not in repr(sentinel) and SECRET not in sentinel.url


async def test_unreachable_and_refused_errors_never_show_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://u:{SECRET}@127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnavailableError) as info:
        await Publisher(RedisEndpoint.from_url(url)).start()
    assert "Cannot reach Redis at redis://u:***@127.0.0.1:" in str(info.value)
    assert SECRET not in str(info.value)
    with RedisServer(extra_args=["--requirepass", "right"]) as server:
        wrong = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
        with pytest.raises(RedisUnavailableError) as info:
            await Subscriber(RedisEndpoint.from_url(wrong), lambda *a: None).start()
        assert "refused the login" in str(info.value) and SECRET not in str(info.value)
        # a node that loses Redis logs the loss and its reconnects: no password there either
        caplog.set_level(logging.DEBUG)
        node = AsyncRedisAdapter(f"redis://:right@127.0.0.1:{server.port}/0")
        await node.start()
        server.kill()
        await asyncio.sleep(0.3)  # the loss is noticed and reported while reconnecting
        await node.close()
        with pytest.raises(RedisUnavailableError) as info:
            await ClusterClient(f"redis://:{SECRET}@127.0.0.1:{server.port}/0").connect()
        assert SECRET not in str(info.value)
    assert "Lost the connection" in caplog.text
    assert ":right@" not in caplog.text and SECRET not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "redis://u:S3cret@127.0.0.1:99999/0",
        "redis://u:S3cret@127.0.0.1:6379/x",
        "redis://u:S3cret@[::1",
        "unix://u:S3cret@/tmp/x.sock?db=x",
        "redis://u:S3cret@127.0.0.1:FREE/0",  # a free port, found when the test runs
    ],
)
def test_cli_never_prints_the_password(url: str) -> None:
    url = url.replace("FREE", str(free_port()))
    proc = subprocess.run(
        [sys.executable, "-m", "siotools", "rooms", "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert SECRET not in out, out
    assert "Traceback" not in out, out


def test_adapter_port_zero_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="out of range"):
        AsyncRedisAdapter(port=0)
