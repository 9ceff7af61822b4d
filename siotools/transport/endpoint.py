"""Where a Redis server is and how to log in: parsed once from a URL or a redis-py client."""

from __future__ import annotations

import ssl as ssl_module
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from siotools.exceptions import ConfigurationError

__all__ = ["RedisEndpoint"]

_SCHEMES = {"redis": False, "rediss": True, "valkey": False, "valkeys": True, "unix": False}


@dataclass(frozen=True, slots=True)
class RedisEndpoint:
    """The address and credentials of one Redis server.

    Attributes:
        host: Host name or address (ignored when ``path`` is set).
        port: TCP port.
        db: Database number selected after connecting (pub/sub is global to the server).
        username: ACL user name, if any.
        password: Password, if any.
        tls: Whether to wrap the connection in TLS.
        path: A Unix socket path instead of host and port.
        connect_timeout: Seconds to wait for the TCP (or TLS) connection.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    path: str | None = None
    connect_timeout: float = 5.0

    @classmethod
    def from_url(cls, url: str) -> RedisEndpoint:
        """Parse a ``redis://``, ``rediss://`` or ``unix://`` URL.

        Raises:
            ConfigurationError: The URL is not a Redis URL.
        """
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES:
            raise ConfigurationError(
                f"{url!r} is not a Redis URL (expected redis://host:port/db, rediss:// or unix://)"
            )
        query = parse_qs(parts.query)
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if parts.scheme == "unix":
            db = int(query.get("db", ["0"])[0])
            return cls(db=db, username=username, password=password, path=parts.path)
        path = parts.path.strip("/")
        try:
            db = int(path) if path else int(query.get("db", ["0"])[0])
            port = parts.port or 6379
        except ValueError as exc:
            raise ConfigurationError(f"{url!r} has an invalid port or database number") from exc
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            db=db,
            username=username or None,
            password=password,
            tls=_SCHEMES[parts.scheme],
        )

    @classmethod
    def from_client(cls, client: Any) -> RedisEndpoint:
        """Read the endpoint of a ``redis.asyncio.Redis`` (or sync) client the caller made.

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
        return cls(
            host=str(kwargs.get("host", "127.0.0.1")),
            port=int(kwargs.get("port", 6379)),
            db=int(kwargs.get("db", 0) or 0),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            tls=tls,
            path=kwargs.get("path"),
            connect_timeout=float(kwargs.get("socket_connect_timeout") or 5.0),
        )

    @property
    def url(self) -> str:
        """A URL for this endpoint without the password (safe to print)."""
        user = f"{self.username}@" if self.username else ""
        if self.path:
            return f"unix://{user}{self.path}?db={self.db}"
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{user}{self.host}:{self.port}/{self.db}"

    def ssl_context(self) -> ssl_module.SSLContext | None:
        """The TLS context to connect with, or ``None`` for plain TCP."""
        return ssl_module.create_default_context() if self.tls else None

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
        else:
            kwargs.update(host=self.host, port=self.port, ssl=self.tls)
        return kwargs
