"""The options every command shares, as a user types them: subprocesses, real Redis.

Every wrong value is one sentence on stderr naming the flag, exit status 2, no traceback
and never a password.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import pytest

from siotools.cli._base import ArgumentParser, build_parser
from siotools.cli.options import redact
from siotools.redis_server import RedisServer

SIOTOOLS = [sys.executable, "-m", "siotools"]
PASSWORD = "S3cret"


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIOTOOLS_")}
    return subprocess.run(
        [*SIOTOOLS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean, **(env or {})},
    )


def one_sentence(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].endswith("."), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--url", "redis://[::1"], "--url 'redis://[::1' is not a Redis URL (Invalid IPv6 URL)"),
        (["--url", "unix:///tmp/x.sock?db=x"], "the database must be a number, not 'x'"),
        (["--url", "redis://127.0.0.1:0/0"], "the port must be a number from 1 to 65535"),
        (["--url", "redis://127.0.0.1:99999/0"], "the port must be a number from 1 to 65535"),
        (["--url", "http://x"], "unknown scheme 'http'"),
        (["--timeout", "inf"], "--timeout 'inf' must be a number of seconds above 0"),
        (["--timeout", "1e308"], "--timeout '1e308' must be a number of seconds above 0"),
        (["--timeout", "nan"], "--timeout 'nan' must be a number of seconds above 0"),
        (["--timeout", "0"], "--timeout '0' must be a number of seconds above 0"),
        (["--timeout", "soon"], "--timeout 'soon' is not a number of seconds"),
        (["--nsp", "chat"], "namespaces start with '/' (--nsp /chat)"),
        (["--nsp", ""], "--nsp is empty"),
        (["--prefix", ""], "--prefix is empty"),
        (["--dialect", "modern"], "invalid choice: 'modern'"),
    ],
)
def test_bad_shared_options_are_one_sentence_naming_the_flag(args: list[str], says: str) -> None:
    started = time.monotonic()
    # Port 1: nothing listens there, so a value that slipped through would fail differently.
    line = one_sentence(run("rooms", "--url", "redis://127.0.0.1:1/0", *args))
    assert says in line
    assert "requests_timeout" not in line
    assert time.monotonic() - started < 20  # checked before anything connects (no hang)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["sniff", "--interval", "inf"], "'inf' must be a finite number of seconds above 0"),
        (["sniff", "--duration", "nan"], "'nan' must be a finite number of seconds above 0"),
        (["sniff", "--duration", "-1"], "'-1' must be a finite number of seconds above 0"),
        (["sniff", "--count", "0"], "'0' must be at least 1"),
        (["sniff", "--count", "2.5"], "'2.5' is not a whole number"),
        (["sniff", "--stream-count", "0"], "'0' must be at least 1"),
        (["sniff", "--stream-count", "1.5"], "'1.5' is not a whole number"),
        (["emit", "--stream-count", "0", "ev"], "'0' must be at least 1"),
        (["demo", "--duration", "nan"], "'nan' must be a finite number of seconds above 0"),
        (["tui", "--lines", "0"], "'0' must be at least 1"),
        (["exporter", "--top-rooms", "0"], "'0' must be at least 1"),
        (["exporter", "--request-timeout", "inf"], "must be a finite number of seconds"),
    ],
)
def test_numbers_of_seconds_and_counts_are_finite_and_positive(args: list[str], says: str) -> None:
    line = one_sentence(run(*args, "--url", "redis://127.0.0.1:1/0"))
    assert says in line
    assert line.startswith(f"siotools {args[0]}: argument {args[1]}:"), line


@pytest.mark.parametrize("command", ["rooms", "sniff", "tui", "emit"])
def test_every_command_checks_the_same_options(command: str) -> None:
    extra = ["ev"] if command == "emit" else []
    for args, says in (
        (["--url", "redis://[::1"], "is not a Redis URL"),
        (["--nsp", "chat"], "namespaces start with '/'"),
        (["--prefix", "a#b"], "contains '#'"),
    ):
        assert says in one_sentence(run(command, *extra, *args))


def test_environment_is_read_and_named_when_wrong() -> None:
    line = one_sentence(run("sniff", env={"SIOTOOLS_URL": "redis://127.0.0.1:0/0"}))
    assert line.startswith("siotools: $SIOTOOLS_URL 'redis://127.0.0.1:0/0' is not a Redis URL")
    line = one_sentence(run("rooms", env={"SIOTOOLS_PREFIX": ""}))
    assert "$SIOTOOLS_PREFIX is empty" in line


async def test_sniff_reads_siotools_url_and_prefix(redis_url: str, key: str) -> None:
    """Item 1: sniff used to ignore $SIOTOOLS_URL and listen on 127.0.0.1:6379."""
    import asyncio

    import redis.asyncio as aioredis

    from siotools.protocol import Dialect, encode_broadcast

    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIOTOOLS_")}
    env = {**clean, "SIOTOOLS_URL": redis_url, "SIOTOOLS_PREFIX": key}
    proc = await asyncio.create_subprocess_exec(
        *SIOTOOLS, "sniff", "--count", "1", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    r = aioredis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 20
        channel, payload = encode_broadcast(
            uid="u1", data=["hello", 1], prefix=key, dialect=Dialect.LEGACY
        )
        while proc.returncode is None and time.monotonic() < deadline:
            await r.publish(channel, payload)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.2)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        await r.aclose()
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out.decode().splitlines()[0])["event"] == "hello"


# ---------------------------------------------------------------------- passwords


@pytest.mark.parametrize(
    "args",
    [
        ["rooms"],
        ["clients", "--room", "r"],
        ["client-rooms", "sid"],
        ["join", "sid", "room"],
        ["leave", "sid", "room"],
        ["disconnect", "sid"],
        ["emit", "ev", "1"],
        ["custom-request", "1"],
        ["sniff", "--count", "1"],
        ["tui"],
    ],
    ids=lambda a: a[0],
)
@pytest.mark.parametrize(
    "url",
    [
        f"redis://u:{PASSWORD}@127.0.0.1:99999/0",  # a bad port
        f"redis://u:{PASSWORD}@127.0.0.1:6379/x",  # a bad database
        f"ftp://u:{PASSWORD}@127.0.0.1/0",  # an unknown scheme
        f"redis://u:{PASSWORD}@[::1/0",  # not even a URL
        f"redis://u:{PASSWORD}@127.0.0.1:1/0",  # nobody listens
    ],
    ids=["port", "db", "scheme", "broken", "unreachable"],
)
def test_no_command_prints_the_password(args: list[str], url: str) -> None:
    if args == ["tui"] and "127.0.0.1:1/" in url:
        pytest.skip("an unreachable Redis opens the TUI's dialog: tests/tui covers it")
    for how in ("flag", "env"):
        if how == "flag":
            out = (
                run(*args, "--url", url, "--timeout", "0.5")
                if args[0] != "sniff"
                else run(*args, "--url", url)
            )
        else:
            out = run(*args, env={"SIOTOOLS_URL": url})
        line = one_sentence(out)
        assert PASSWORD not in out.stderr + out.stdout, (how, line)
        assert "***" in line or "u@" in line, line


def test_a_refused_password_is_not_printed() -> None:
    with RedisServer(extra_args=["--requirepass", "right-one"]) as server:
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
        for args in (["rooms"], ["sniff", "--count", "1"]):
            out = run(*args, "--url", url)
            line = one_sentence(out)
            assert PASSWORD not in out.stderr + out.stdout
            assert "refused" in line.lower() or "auth" in line.lower(), line


def test_demo_with_a_password_url_never_prints_it() -> None:
    with RedisServer(extra_args=["--requirepass", PASSWORD]) as server:
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
        out = run(
            "demo", "--redis", url, "--nodes", "1", "--clients", "2", "--headless",
            "--duration", "2", "--remote-every", "0", timeout=90,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert PASSWORD not in out.stdout + out.stderr
        assert f"127.0.0.1:{server.port}" in out.stdout


def test_demo_checks_its_redis_url_the_same_way() -> None:
    line = one_sentence(run("demo", "--redis", f"redis://u:{PASSWORD}@127.0.0.1:0/0"))
    assert line.startswith("siotools: --redis 'redis://u:***@127.0.0.1:0/0' is not a Redis URL")


def test_redact_hides_url_passwords_and_known_secrets() -> None:
    assert redact("redis://u:pw@h:1/0 and rediss://:x%40y@h") == (
        "redis://u:***@h:1/0 and rediss://:***@h"
    )
    assert redact("login failed for hunter2", "hunter2") == "login failed for ***"
    assert redact("nothing here") == "nothing here"


# ---------------------------------------------------------------------- typos


def test_a_typo_gets_the_closest_option_not_the_socket_id_hint() -> None:
    line = one_sentence(run("rooms", "--nps", "/chat", "--url", "redis://127.0.0.1:1/0"))
    assert "did you mean --nsp instead of --nps?" in line
    assert "goes after '--'" not in line
    line = one_sentence(run("client-rooms", "--nps", "/chat"))
    assert "did you mean --nsp" in line and "goes after '--'" not in line
    line = one_sentence(run("romos"))
    assert "did you mean 'rooms'?" in line


def test_the_socket_id_hint_only_where_a_word_looks_like_an_option() -> None:
    line = one_sentence(run("client-rooms", "-AbCdEf"))
    assert "goes after '--'" in line
    line = one_sentence(run("client-rooms"))  # no socket id at all: no '--' hint
    assert "required" in line and "goes after '--'" not in line
    line = one_sentence(run("rooms", "-AbCdEf"))  # rooms takes no socket id
    assert "goes after '--'" not in line


def test_option_strings_reads_the_parsers_options() -> None:
    """Pins ArgumentParser.option_strings (argparse has no public list of options)."""
    parser = build_parser()
    rooms = parser.commands["rooms"]
    assert isinstance(rooms, ArgumentParser)
    assert {"--url", "--prefix", "--key", "--nsp", "--timeout", "--dialect", "--json"} <= set(
        rooms.option_strings()
    )
    assert "--interval" in parser.commands["sniff"].option_strings()


def test_help_documents_the_environment_and_exit_statuses() -> None:
    out = run("--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "$SIOTOOLS_URL" in text and "$SIOTOOLS_PREFIX" in text
    assert "3 an emit that no socket received" in text
    emit = " ".join(run("emit", "--help").stdout.split())
    assert "Exit status 3" in emit


# ---------------------------------------------------------------------- --dialect


def test_dialect_reaches_the_cluster_client(redis_url: str) -> None:
    from siotools.cli.options import cluster_client, resolve_options
    from siotools.protocol import Dialect

    parser = build_parser()
    for word, expected in (("legacy-lite", Dialect.LEGACY_LITE), ("legacy", Dialect.LEGACY)):
        args, _ = parser.parse_known_args(["rooms", "--url", redis_url, "--dialect", word])
        resolve_options(args)
        assert args.dialect is expected
        assert cluster_client(args).dialect is expected
    args, _ = parser.parse_known_args(["rooms", "--url", redis_url])
    resolve_options(args)
    assert args.dialect is None  # auto: not passed, the client chooses
    assert args.timeout == 2.0 and args.prefix == "socket.io" and args.nsp == "/"


def test_an_explicit_port_0_is_refused_not_read_as_6379() -> None:
    """An explicit port 0 used to become 6379: the machine's Redis, not the one asked for."""
    line = one_sentence(run("rooms", "--url", "redis://127.0.0.1:0/0"))
    assert "the port must be a number from 1 to 65535" in line
