"""Where a Redis server is and how to log in: parsed once from a URL or a redis-py client.

Accepted URLs (the forms redis-py and python-socketio users know)::

    redis://[[user]:password@]host[:port][/db][?option=value...]
    rediss://...                      the same over TLS
    unix://[[user]:password@]/path/to/redis.sock[?db=N&...]
    redis+sentinel://[[user]:password@]host:port[,host:port...]/db/service_name[?...]

For ``redis+sentinel://`` the path is python-socketio's ``/db/service_name``;
``/service_name`` and ``/service_name/db`` are accepted too (a first part that is not a
number is the service name), and the service defaults to ``mymaster``. The
credentials are those of the master; the sentinels are asked without them.

Query options (the redis-py names): ``db``, ``socket_connect_timeout``,
``ssl_ca_certs``, ``ssl_ca_path``, ``ssl_certfile``, ``ssl_keyfile``,
``ssl_cert_reqs`` (``none``, ``optional``, ``required``) and ``ssl_check_hostname``
(``true``/``false``). Any other option is refused, so a typo never silently connects
without the setting it meant. ``cluster=false`` (or ``0``, ``no``, ``off``) says the URL
names a single Redis, which is what this parser reads; ``cluster=true`` names a Redis
Cluster, which only :func:`~siotools.transport.cluster.parse_cluster_url` accepts.

No string made here ever contains the password: :attr:`RedisEndpoint.url`, ``str()``,
``repr()`` and every :class:`~siotools.exceptions.ConfigurationError` show it as
``***``.
"""

from __future__ import annotations

import ssl as ssl_module
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from siotools.exceptions import ConfigurationError

__all__ = ["CERT_REQS", "RedisEndpoint", "cluster_flag", "redact_url"]

_SCHEMES = {
    "redis": False,
    "rediss": True,
    "valkey": False,
    "valkeys": True,
    "unix": False,
    "redis+sentinel": False,
    "rediss+sentinel": True,
    "valkey+sentinel": False,
}

CERT_REQS = {
    "none": ssl_module.CERT_NONE,
    "optional": ssl_module.CERT_OPTIONAL,
    "required": ssl_module.CERT_REQUIRED,
}
"""The ``ssl_cert_reqs`` values (redis-py's names) and the verify mode each means."""

_TLS_OPTIONS = ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile")
_OPTIONS = ("db", "socket_connect_timeout", *_TLS_OPTIONS, "ssl_cert_reqs", "ssl_check_hostname")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

DEFAULT_SERVICE = "mymaster"


def cluster_flag(value: str, where: str = "the Redis URL") -> bool:
    """What a URL's ``cluster=`` option says: a Redis Cluster (``true``, ``1``, ``yes``,
    ``on``) or a single Redis (``false``, ``0``, ``no``, ``off``), in any case.

    Args:
        value: The option's value.
        where: What the value came from, for the error (a flag, a URL with its password
            hidden).

    Raises:
        ConfigurationError: The value is neither (one sentence).
    """
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ConfigurationError(
        f"cluster={value!r} in {where} is not a boolean (cluster=true names a Redis "
        "Cluster, cluster=false a single Redis)"
    )


def redact_url(url: str) -> str:
    """``url`` with the password (whatever follows ``user:`` up to the last ``@``) as ``***``.

    Works on strings that do not parse as URLs too, so an error about a malformed URL can
    quote it safely; when unsure it hides more, never less.
    """
    scheme_end = url.find("://")
    if scheme_end < 0:
        head, rest = "", url
    else:
        head, rest = url[: scheme_end + 3], url[scheme_end + 3 :]
    at = rest.rfind("@")
    if at < 0:
        return url
    userinfo = rest[:at]
    if ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{head}{user}:***@{rest[at + 1 :]}"


@dataclass(frozen=True, slots=True)
class RedisEndpoint:
    """The address, credentials and TLS settings of one Redis server (or Sentinel service).

    Attributes:
        host: Host name or address (ignored when ``path`` is set).
        port: TCP port (1 to 65535).
        db: Database number selected after connecting (pub/sub is global to the server).
        username: ACL user name, if any.
        password: Password, if any (never shown: see :attr:`url`).
        tls: Whether to wrap the connection in TLS.
        path: A Unix socket path instead of host and port.
        connect_timeout: Seconds to wait for the TCP (or TLS) connection and the login.
        ssl_ca_certs: A PEM file of the CAs to trust instead of the system's.
        ssl_ca_path: A directory of CA certificates to trust instead of the system's.
        ssl_certfile: The client certificate (PEM), for a Redis with ``tls-auth-clients``.
        ssl_keyfile: The client certificate's private key (PEM).
        ssl_cert_reqs: ``"required"`` (default), ``"optional"`` or ``"none"`` (no check
            of the server's certificate at all).
        ssl_check_hostname: Whether the server's certificate must name ``host``.
        sentinels: ``(host, port)`` of the Sentinels to ask for the master, when set.
        service_name: The master's name known to the Sentinels.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    path: str | None = None
    connect_timeout: float = 5.0
    ssl_ca_certs: str | None = None
    ssl_ca_path: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str = "required"
    ssl_check_hostname: bool = True
    sentinels: tuple[tuple[str, int], ...] = ()
    service_name: str | None = None

    def __post_init__(self) -> None:
        where = self.url
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ConfigurationError(
                f"Redis port {self.port!r} is out of range (1 to 65535) in {where}"
            )
        if not isinstance(self.db, int) or self.db < 0:
            raise ConfigurationError(
                f"Redis database {self.db!r} is not a number 0 or above in {where}"
            )
        if self.ssl_cert_reqs not in CERT_REQS:
            raise ConfigurationError(
                f"ssl_cert_reqs must be none, optional or required, not {self.ssl_cert_reqs!r}"
            )
        if not self.connect_timeout > 0 or self.connect_timeout == float("inf"):
            raise ConfigurationError(
                f"socket_connect_timeout must be a positive number of seconds, "
                f"not {self.connect_timeout!r}"
            )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ConfigurationError("ssl_keyfile needs ssl_certfile (the client certificate)")
        for host, port in self.sentinels:
            if not 0 < port < 65536:
                raise ConfigurationError(
                    f"Sentinel port {port!r} of {host} is out of range (1 to 65535) in {where}"
                )

    def __repr__(self) -> str:
        secret = ", password='***'" if self.password is not None else ""
        return f"RedisEndpoint({self.url!r}{secret})"

    def __str__(self) -> str:
        return self.url

    @classmethod
    def from_url(cls, url: str) -> RedisEndpoint:
        """Parse a ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://`` URL.

        Raises:
            ConfigurationError: The URL is not a Redis URL, or an option or number in it is
                wrong; the message quotes the URL with its password hidden.
        """
        shown = redact_url(str(url))
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
        except (ValueError, AttributeError) as exc:
            raise ConfigurationError(f"{shown!r} is not a valid Redis URL: {exc}") from None
        if scheme not in _SCHEMES:
            raise ConfigurationError(
                f"{shown!r} is not a Redis URL (expected redis://host:port/db, rediss://, "
                "unix:///path or redis+sentinel://host:port/db/service)"
            )
        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
        except ValueError as exc:
            raise ConfigurationError(f"{shown!r} has a malformed query: {exc}") from None
        # ``cluster=`` as parse_cluster_url reads it (any case): false is this parser's.
        flags = [
            cluster_flag(v, repr(shown))
            for name in [n for n in query if n.lower() == "cluster"]
            for v in query.pop(name)
        ]
        if flags and flags[-1]:
            raise ConfigurationError(
                f"{shown!r} names a Redis Cluster (cluster=true); this reads a single Redis only"
            )
        unknown = sorted(set(query) - set(_OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"{shown!r} has unknown option(s) {', '.join(unknown)}; "
                f"the known ones are {', '.join(_OPTIONS)}"
            )
        opts = {name: values[-1] for name, values in query.items()}
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        common: dict[str, Any] = {
            "username": username or None,
            "password": password,
            "tls": _SCHEMES[scheme],
            **_parse_options(opts, shown),
        }
        db_opt = opts.get("db")
        if scheme == "unix":
            if not parts.path:
                raise ConfigurationError(f"{shown!r} names no socket path (unix:///path)")
            db = _int(db_opt, "database number", shown) if db_opt is not None else 0
            return cls._make(shown, db=db, path=unquote(parts.path), **common)
        if scheme.endswith("+sentinel"):
            sentinels, service, db = _parse_sentinel(parts.netloc, parts.path, shown)
            if db_opt is not None:
                db = _int(db_opt, "database number", shown)
            host, port = sentinels[0]
            return cls._make(
                shown,
                host=host,
                port=port,
                db=db,
                sentinels=sentinels,
                service_name=service,
                **common,
            )
        path = parts.path.strip("/")
        if db_opt is not None:  # redis-py: ?db= wins over the path
            db = _int(db_opt, "database number", shown)
        elif path:
            db = _int(path, "database number", shown)
        else:
            db = 0
        try:
            given = parts.port
        except ValueError:
            port_text = parts.netloc.rsplit(":", 1)[-1]
            raise ConfigurationError(
                f"{shown!r} has an invalid port {port_text!r} (expected 1 to 65535)"
            ) from None
        port = 6379 if given is None else given
        if given == 0:
            raise ConfigurationError(f"{shown!r} has port 0; Redis needs a port from 1 to 65535")
        return cls._make(shown, host=parts.hostname or "127.0.0.1", port=port, db=db, **common)

    @classmethod
    def _make(cls, shown: str, **kwargs: Any) -> RedisEndpoint:
        try:
            return cls(**kwargs)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{shown!r}: {exc}") from None

    @classmethod
    def from_client(cls, client: Any) -> RedisEndpoint:
        """Read the endpoint of a ``redis.asyncio.Redis`` (or sync) client the caller made.

        Its address, credentials and TLS settings (CA, client certificate, verify mode,
        hostname check) are all kept.

        Raises:
            ConfigurationError: The object is not a redis-py client.
        """
        pool = getattr(client, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", None)
        if not isinstance(kwargs, dict):
            raise ConfigurationError(
                f"{type(client).__name__} is not a redis-py client (no connection_pool)"
            )
        conn_class = getattr(pool, "connection_class", None)
        tls = conn_class is not None and "SSL" in conn_class.__name__
        sentinel_kwargs: dict[str, Any] = {}
        manager = getattr(pool, "sentinel_manager", None)
        if manager is not None and getattr(pool, "service_name", None):
            # A client from redis-py's Sentinel(...).master_for(name): its pool has no
            # address of its own; keep the Sentinels and the service instead.
            sentinels = []
            for sentinel in getattr(manager, "sentinels", []):
                skw = sentinel.connection_pool.connection_kwargs
                sentinels.append((str(skw.get("host", "127.0.0.1")), int(skw.get("port", 26379))))
            host, port = sentinels[0] if sentinels else ("127.0.0.1", 26379)
            kwargs = {**kwargs, "host": host, "port": port}
            service = str(getattr(pool, "service_name", ""))
            sentinel_kwargs = {"sentinels": tuple(sentinels), "service_name": service}
            tls = tls or bool(kwargs.get("ssl"))
        tls_kwargs: dict[str, Any] = {}
        if tls:
            for name in _TLS_OPTIONS:
                value = kwargs.get(name)
                if value:
                    tls_kwargs[name] = str(value)
            tls_kwargs["ssl_cert_reqs"] = _cert_reqs_name(kwargs.get("ssl_cert_reqs", "required"))
            check = kwargs.get("ssl_check_hostname")
            if check is not None:
                tls_kwargs["ssl_check_hostname"] = bool(check)
            elif tls_kwargs["ssl_cert_reqs"] == "none":
                tls_kwargs["ssl_check_hostname"] = False
        return cls(
            host=str(kwargs.get("host", "127.0.0.1")),
            port=int(kwargs.get("port", 6379)),
            db=int(kwargs.get("db", 0) or 0),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            tls=tls,
            path=kwargs.get("path"),
            connect_timeout=float(kwargs.get("socket_connect_timeout") or 5.0),
            **tls_kwargs,
            **sentinel_kwargs,
        )

    def with_address(self, host: str, port: int) -> RedisEndpoint:
        """This endpoint at another address (the master a Sentinel named), same settings."""
        return replace(self, host=host, port=port, sentinels=(), service_name=None)

    @property
    def url(self) -> str:
        """A URL for this endpoint without the password (safe to print)."""
        user = self.username or ""
        if self.password is not None:
            user += ":***"
        if user:
            user += "@"
        if self.path:
            return f"unix://{user}{self.path}?db={self.db}"
        if self.sentinels:
            scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
            hosts = ",".join(f"{_host(h)}:{p}" for h, p in self.sentinels)
            return f"{scheme}://{user}{hosts}/{self.db}/{self.service_name or DEFAULT_SERVICE}"
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{user}{_host(self.host)}:{self.port}/{self.db}"

    def ssl_context(self) -> ssl_module.SSLContext | None:
        """The TLS context to connect with, or ``None`` for plain TCP.

        Raises:
            ConfigurationError: A CA or certificate file cannot be read.
        """
        if not self.tls:
            return None
        try:
            ctx = ssl_module.create_default_context(
                cafile=self.ssl_ca_certs, capath=self.ssl_ca_path
            )
            verify = CERT_REQS[self.ssl_cert_reqs]
            ctx.check_hostname = self.ssl_check_hostname and verify != ssl_module.CERT_NONE
            ctx.verify_mode = verify
            if self.ssl_certfile:
                ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        except (OSError, ssl_module.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigurationError(
                f"Cannot load the TLS files for {self.url} (ssl_ca_certs={self.ssl_ca_certs}, "
                f"ssl_certfile={self.ssl_certfile}): {reason}"
            ) from None
        return ctx

    def redis_py_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make a redis-py client for this endpoint."""
        kwargs: dict[str, Any] = {
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "socket_connect_timeout": self.connect_timeout,
        }
        if self.path:
            kwargs["unix_socket_path"] = self.path
            return kwargs
        kwargs.update(host=self.host, port=self.port, ssl=self.tls)
        if self.tls:
            for name in _TLS_OPTIONS:
                value = getattr(self, name)
                if value:
                    kwargs[name] = value
            kwargs["ssl_cert_reqs"] = self.ssl_cert_reqs
            kwargs["ssl_check_hostname"] = self.ssl_check_hostname
        return kwargs


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _int(text: str, what: str, shown: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(
            f"{shown!r} has an invalid {what} {text!r} (expected a number 0 or above)"
        ) from None
    if value < 0:
        raise ConfigurationError(f"{shown!r} has an invalid {what} {text!r} (expected 0 or above)")
    return value


def _bool(text: str, name: str, shown: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigurationError(f"{shown!r}: {name} must be true or false, not {text!r}")


def _cert_reqs_name(value: Any) -> str:
    if isinstance(value, ssl_module.VerifyMode):
        return {v: k for k, v in CERT_REQS.items()}[value]
    if value is None:
        return "none"
    return str(value).lower()


def _parse_options(opts: dict[str, str], shown: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _TLS_OPTIONS:
        if name in opts:
            if not opts[name]:
                raise ConfigurationError(f"{shown!r}: {name} is empty")
            out[name] = opts[name]
    if "ssl_cert_reqs" in opts:
        reqs = opts["ssl_cert_reqs"].lower()
        if reqs not in CERT_REQS:
            raise ConfigurationError(
                f"{shown!r}: ssl_cert_reqs must be none, optional or required, "
                f"not {opts['ssl_cert_reqs']!r}"
            )
        out["ssl_cert_reqs"] = reqs
        if reqs == "none":
            out["ssl_check_hostname"] = False
    if "ssl_check_hostname" in opts:
        out["ssl_check_hostname"] = _bool(opts["ssl_check_hostname"], "ssl_check_hostname", shown)
    if "socket_connect_timeout" in opts:
        text = opts["socket_connect_timeout"]
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 < value < float("inf"):
            raise ConfigurationError(
                f"{shown!r}: socket_connect_timeout must be a positive number of seconds, "
                f"not {text!r}"
            )
        out["connect_timeout"] = value
    return out


def _parse_sentinel(
    netloc: str, path: str, shown: str
) -> tuple[tuple[tuple[str, int], ...], str, int]:
    hosts = netloc.rsplit("@", 1)[-1]
    sentinels = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):  # [::1]:26379
            host, _, port_text = item[1:].partition("]")
            port_text = port_text.lstrip(":")
        else:
            host, _, port_text = item.rpartition(":")
            if not host:
                host, port_text = port_text, "26379"
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigurationError(
                f"{shown!r} has an invalid Sentinel port {port_text!r} (expected 1 to 65535)"
            ) from None
        if not 0 < port < 65536:
            raise ConfigurationError(
                f"{shown!r} has an invalid Sentinel port {port} (expected 1 to 65535)"
            )
        sentinels.append((host, port))
    if not sentinels:
        raise ConfigurationError(
            f"{shown!r} names no Sentinel (redis+sentinel://host:port[,host:port]/db/service)"
        )
    parts = [p for p in path.split("/") if p]
    if len(parts) > 2:
        raise ConfigurationError(
            f"{shown!r} has too many path parts (expected /db/service_name or /service_name)"
        )
    db, service = 0, DEFAULT_SERVICE
    if parts:
        if parts[0].isdigit():  # python-socketio's /db/service_name
            db = int(parts[0])
            if len(parts) == 2:
                service = unquote(parts[1])
        else:  # /service_name[/db]
            service = unquote(parts[0])
            if len(parts) == 2:
                db = _int(parts[1], "database number", shown)
    return tuple(sentinels), service, db
