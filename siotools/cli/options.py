"""The options every command shares, parsed and checked in one place.

``--url`` (or ``$SIOTOOLS_URL``), ``--prefix``/``--key`` (or ``$SIOTOOLS_PREFIX``),
``--timeout``, ``--nsp``, ``--dialect`` and ``--json`` mean the same thing in every command
that takes them. Each value is checked before anything connects, and a wrong one is a
:class:`~siotools.exceptions.ConfigurationError` that names the flag (or the environment
variable) it came from, with the password of a URL never repeated.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from siotools.exceptions import ConfigurationError
from siotools.protocol import Dialect, safe

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_URL",
    "MAX_TIMEOUT",
    "ClusterOptions",
    "add_cluster_options",
    "add_stream_count",
    "check_seconds",
    "check_stream_count",
    "check_url",
    "cluster_client",
    "count_arg",
    "duration_arg",
    "json_text",
    "redact",
    "resolve_options",
    "seconds_arg",
]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "socket.io"
MAX_TIMEOUT = 3600.0
"""The longest ``--timeout`` accepted: beyond an hour a request is a hang, not a wait."""

URL_ENV = "SIOTOOLS_URL"
PREFIX_ENV = "SIOTOOLS_PREFIX"
PREFIX_ENV_OLD = "SIOTOOLS_KEY"  # the name earlier versions read; still honoured
DIALECT_CHOICES = ["auto", *(d.value for d in Dialect)]

# scheme://user:password@ -> scheme://user:***@ (any scheme: a typo'd one still hides it).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/?#@\s:]*):(?P<pw>[^@\s/]*)@")


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every URL password, and each of ``secrets``, replaced by ``***``.

    Args:
        text: What is about to be printed.
        secrets: Passwords known to be in play (e.g. parsed from ``--url``); each is hidden
            wherever it appears, also outside a URL.
    """
    out = _USERINFO.sub(lambda m: f"{m['head']}:***@", text)
    for secret in secrets:
        if secret and len(secret) >= 2:
            out = out.replace(secret, "***")
    return out


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """Which of the shared options a command takes, and their defaults."""

    url: bool = True
    prefix: bool = True
    timeout: float | None = None
    """The default ``--timeout``; ``None``: the command has no ``--timeout``."""
    nsp: bool = True
    nsp_default: str | None = "/"
    """The default ``--nsp``; ``None``: optional (no namespace means every namespace)."""
    nsp_help: str = "the namespace (default /)"
    dialect: bool = True
    json: str | None = "print JSON instead of a table"
    """The ``--json`` help; ``None``: the command has no ``--json``."""


def add_cluster_options(parser: argparse.ArgumentParser, spec: ClusterOptions) -> None:
    """Add the shared options of ``spec`` to ``parser`` (checked by :func:`resolve_options`)."""
    if spec.url:
        parser.add_argument(
            "--url",
            default=None,
            metavar="URL",
            help=(
                f"the cluster's Redis URL (default ${URL_ENV}, else {DEFAULT_URL}); on a "
                "Redis Cluster, one node's URL with ?cluster=true "
                "(redis://host:port?cluster=true)"
            ),
        )
    if spec.prefix:
        parser.add_argument(
            "--prefix",
            "--key",
            dest="prefix",
            default=None,
            metavar="PREFIX",
            help=(
                f"the cluster's channel prefix, the adapters' key "
                f"(default ${PREFIX_ENV}, else {DEFAULT_PREFIX})"
            ),
        )
    if spec.nsp:
        parser.add_argument("--nsp", default=spec.nsp_default, metavar="NSP", help=spec.nsp_help)
    if spec.timeout is not None:
        parser.add_argument(
            "--timeout",
            default=str(spec.timeout),
            metavar="S",
            help=f"seconds to wait for the nodes' answers (default {spec.timeout:g})",
        )
    if spec.dialect:
        parser.add_argument(
            "--dialect",
            choices=DIALECT_CHOICES,
            default="auto",
            metavar="DIALECT",
            help=(
                "the cluster's adapter: legacy (socket.io-redis 5.x), legacy-lite (4.x), "
                "current (@socket.io/redis-adapter 8.x), sharded (8.x createShardedAdapter, "
                "Redis 7 SPUBLISH), streams (emit only), pysocketio, or auto (default: "
                "detected from the subscriptions)"
            ),
        )
    if spec.json is not None:
        parser.add_argument("--json", action="store_true", help=spec.json)


def resolve_options(args: argparse.Namespace) -> None:
    """Fill the shared options from the environment and check them, in place.

    After this, ``args.url`` is a string that parses as a Redis URL, ``args.prefix`` a
    non-empty prefix, ``args.timeout`` a finite float in (0, 3600], ``args.nsp`` a
    namespace starting with ``/`` (or ``None`` where optional) and ``args.dialect`` a
    :class:`Dialect` or ``None`` for auto.

    Raises:
        ConfigurationError: A value is wrong; the message names the flag or variable.
    """
    if hasattr(args, "url"):
        args.url = _check_url(args.url)
    if hasattr(args, "prefix"):
        args.prefix = _check_prefix(args.prefix)
    if hasattr(args, "timeout") and isinstance(args.timeout, str):
        args.timeout = check_seconds(args.timeout, "--timeout")
    if hasattr(args, "nsp") and args.nsp is not None:
        args.nsp = _check_nsp(args.nsp)
    if hasattr(args, "dialect") and isinstance(args.dialect, str):
        args.dialect = None if args.dialect == "auto" else Dialect(args.dialect)


def _check_url(given: str | None) -> str:
    source, url = "--url", given
    if url is None:
        source, url = f"${URL_ENV}", os.environ.get(URL_ENV) or None
    if url is None:
        return DEFAULT_URL
    return check_url(url, source)


def check_url(url: str, source: str) -> str:
    """``url`` if it parses as a Redis URL.

    Raises:
        ConfigurationError: It does not; the message names ``source`` (a flag or variable)
            and hides the password.
    """
    _check_cluster_flag(url, source)
    why = _url_problem(url)
    if why is not None:
        raise ConfigurationError(
            redact(
                f"{source} {url!r} is not a Redis URL ({why}); expected "
                "redis://host:port/db, rediss://host:port/db, unix:///path?db=N or, for a "
                "Redis Cluster, redis://host:port?cluster=true",
                _password_of(url),
            )
        )
    return url


_SCHEMES = ("redis", "rediss", "valkey", "valkeys", "unix")


def _check_cluster_flag(url: str, source: str) -> None:
    """Refuse a ``cluster=`` value that is not a boolean, in a sentence of its own (the
    rest of the URL may be fine: "is not a Redis URL" would mislead)."""
    from urllib.parse import parse_qsl, urlsplit

    from siotools.transport.endpoint import cluster_flag

    try:
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return  # _url_problem says what is wrong with it
    for name, value in query:
        if name.lower() == "cluster":
            try:
                cluster_flag(value, f"{source} {url!r}")
            except ConfigurationError as exc:
                raise ConfigurationError(redact(str(exc), _password_of(url))) from None


def _url_problem(url: str) -> str | None:
    """What is wrong with ``url`` in a few words, or ``None`` when it parses."""
    from urllib.parse import parse_qs, urlsplit

    from siotools.transport.cluster import parse_cluster_url

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        text = str(exc)
        return "the port must be a number from 1 to 65535" if "port" in text.lower() else text
    if parts.scheme not in _SCHEMES:
        return f"unknown scheme {parts.scheme!r}" if parts.scheme else "no scheme"
    # An explicit port 0 is a typo, not "the default port": never reach another server.
    if port == 0 or (parts.scheme != "unix" and parts.netloc.endswith(":")):
        return "the port must be a number from 1 to 65535"
    db = parts.path.strip("/") if parts.scheme != "unix" else ""
    db = db or parse_qs(parts.query).get("db", ["0"])[0]
    if not db.isdigit():
        return f"the database must be a number, not {db!r}"
    try:
        # ``?cluster=true`` names a seed node of a Redis Cluster (read, then left out).
        parse_cluster_url(url)
    except Exception as exc:  # any other parse failure is the user's URL too
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def _password_of(url: str) -> str | None:
    m = _USERINFO.search(url)
    if m:
        return m["pw"]
    # A URL too broken for the pattern: hide whatever sits between the last ':' and '@'.
    head, at, _ = url.rpartition("@")
    return head.rpartition(":")[2] if at and ":" in head.partition("://")[2] else None


def _check_prefix(given: str | None) -> str:
    source, prefix = "--prefix", given
    if prefix is None:
        for name in (PREFIX_ENV, PREFIX_ENV_OLD):
            if os.environ.get(name) is not None:
                source, prefix = f"${name}", os.environ[name]
                break
    if prefix is None:
        return DEFAULT_PREFIX
    if not prefix.strip():
        raise ConfigurationError(
            f"{source} is empty; give the adapters' key (usually {DEFAULT_PREFIX!r})"
        )
    if "#" in prefix:
        # '#' separates the prefix from the namespace in every channel name.
        raise ConfigurationError(
            f"{source} {prefix!r} contains '#'; the prefix is what comes before the first "
            f"'#' of a channel (socket.io in socket.io#/chat#)"
        )
    return prefix


def check_seconds(text: str, flag: str, *, maximum: float = MAX_TIMEOUT) -> float:
    """``text`` as a finite number of seconds in (0, ``maximum``].

    Raises:
        ConfigurationError: Not a number, not positive, not finite or too long.
    """
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{flag} {text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= maximum:
        raise ConfigurationError(
            f"{flag} {text!r} must be a number of seconds above 0 and at most {maximum:g}"
        )
    return value


def count_arg(text: str) -> int:
    """An argparse ``type``: a whole number of at least 1 (``--count``, ``--top``, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_stream_count(parser: argparse.ArgumentParser) -> None:
    """``--stream-count N``, read with ``--stream KEY`` (sniff and the TUI's traffic view);
    :func:`check_stream_count` refuses it without ``--stream``."""
    parser.add_argument(
        "--stream-count",
        type=count_arg,
        metavar="N",
        help="with --stream: the adapter's 0.3 streamCount; read exactly the streams its "
        "nodes read (KEY-0 .. KEY-<N-1>, KEY alone for 1) and the KEY--<i> ones 0.3.1 writes "
        "namespaces with a negative hash to (without it: every KEY-<integer> stream found)",
    )


def check_stream_count(args: argparse.Namespace) -> None:
    """Refuse ``--stream-count`` given without ``--stream`` (one sentence, exit 2)."""
    if args.stream_count is not None and args.stream is None:
        raise ConfigurationError("--stream-count needs --stream KEY (the adapter's streamName)")


def _seconds(text: str, *, zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if math.isfinite(value) and (value >= 0 if zero else value > 0):
        return value
    bound = ", 0 or more" if zero else " above 0"
    raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds{bound}")


def seconds_arg(text: str) -> float:
    """An argparse ``type``: a finite number of seconds above 0.

    ``inf`` and ``nan`` are refused: an interval of ``inf`` would never report and a
    duration of ``inf`` is what leaving the option out already means.
    """
    return _seconds(text, zero=False)


def duration_arg(text: str) -> float:
    """An argparse ``type``: a finite number of seconds, 0 or more (0: not at all)."""
    return _seconds(text, zero=True)


def _check_nsp(nsp: str) -> str:
    if not nsp:
        raise ConfigurationError("--nsp is empty; the main namespace is --nsp /")
    if not nsp.startswith("/"):
        raise ConfigurationError(
            f"--nsp {nsp!r} is not a namespace: namespaces start with '/' (--nsp /{nsp})"
        )
    if "#" in nsp:
        raise ConfigurationError(f"--nsp {nsp!r} contains '#', which no channel name can carry")
    return nsp


def cluster_client(args: argparse.Namespace, **kwargs: Any) -> Any:
    """A :class:`~siotools.ClusterClient` for the resolved options of ``args``.

    ``--dialect`` is passed only when it is not ``auto``: the client then picks its default.
    """
    from siotools.cluster import ClusterClient

    if getattr(args, "dialect", None) is not None:
        kwargs["dialect"] = args.dialect
    if hasattr(args, "timeout"):
        kwargs.setdefault("requests_timeout", args.timeout)
    return ClusterClient(args.url, key=args.prefix, **kwargs)


def json_text(value: Any) -> str:
    """``value`` as valid JSON for ``--json``, whatever the cluster holds.

    Python's ``json`` writes ``NaN``/``Infinity``, which no JSON parser reads, and fails on
    lone surrogates or deep nesting; :func:`siotools.protocol.safe.dumps` writes them as
    ``{"$num": "NaN"}``, escapes and ``{"$deep": n}``, and binary as ``{"$bin": hex}``.
    """
    return safe.dumps(value, binary="hex")


def finite(value: Any) -> Any:
    """``value`` made JSON-able (see :func:`json_text`)."""
    return safe.jsonable(value, binary="hex")
