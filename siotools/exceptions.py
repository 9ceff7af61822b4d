"""The exceptions siotools raises.

Every error derives from :class:`SiotoolsError`, so ``except SiotoolsError`` catches
all of them. The tree says whose fault an error is::

    SiotoolsError
    ├── ProtocolError                 bytes on the wire (a peer's fault)
    │   ├── DecodeError               a payload or channel that cannot be decoded
    │   │   └── PayloadTooLargeError  a payload over the configured size limit, not decoded
    │   └── EncodeError               a value the wire protocol cannot carry (the caller's)
    ├── ConfigurationError            wrong arguments or options (the caller's fault)
    ├── MissingExtraError             an optional dependency is not installed
    ├── RedisUnavailableError         Redis cannot be reached (the environment's fault)
    │   ├── RedisLaunchError          a local redis-server could not be started
    │   ├── SubscriptionRefused       Redis refused a (P)SUBSCRIBE (ACL rules, password)
    │   └── RequestUndelivered        a cluster request never reached Redis in its time
    ├── RequestError                  a cluster request did not complete
    │   ├── RequestTimeout            not every node answered in time
    │   ├── SocketNotFound            no node has the socket a request names
    │   └── UnsupportedOperation      the dialect cannot express the operation
    └── NodePeerError                 a Node peer of the test harness failed
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "DecodeError",
    "EncodeError",
    "MissingExtraError",
    "NodePeerError",
    "PayloadTooLargeError",
    "ProtocolError",
    "RedisLaunchError",
    "RedisUnavailableError",
    "RequestError",
    "RequestTimeout",
    "RequestUndelivered",
    "SiotoolsError",
    "SocketNotFound",
    "SubscriptionRefused",
    "UnsupportedOperation",
]


class SiotoolsError(Exception):
    """Root of every exception raised by siotools."""


class ProtocolError(SiotoolsError):
    """Something on the Socket.IO Redis wire protocol is wrong."""


class DecodeError(ProtocolError):
    """A channel or payload read from Redis cannot be decoded.

    Attributes:
        channel: The channel the payload arrived on (bytes or str, as received).
        payload: The raw payload bytes.
    """

    def __init__(
        self, message: str, *, channel: bytes | str | None = None, payload: bytes | None = None
    ) -> None:
        super().__init__(message)
        self.channel = channel
        self.payload = payload


class PayloadTooLargeError(DecodeError):
    """A payload is larger than the configured ``max_size``: it was not decoded.

    Attributes:
        size: The payload's size in bytes.
        limit: The limit it exceeded.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"payload of {size:,} bytes is over the {limit:,}-byte limit (max_size): dropped "
            "undecoded; raise max_size if such payloads are expected"
        )
        self.size = size
        self.limit = limit


class EncodeError(ProtocolError):
    """A value cannot be encoded for the wire (the caller passed it)."""


class ConfigurationError(SiotoolsError):
    """An argument or option is invalid (the caller's fault)."""


class MissingExtraError(SiotoolsError, ImportError):
    """An optional dependency is missing; the message says which extra installs it."""

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(
            f"{module} is not installed; install it with: pip install 'siotools[{extra}]'"
        )
        self.extra = extra
        self.module = module


class RedisUnavailableError(SiotoolsError):
    """Redis cannot be reached or answered with a connection error (the environment's fault)."""


class RedisLaunchError(RedisUnavailableError):
    """A local redis-server could not be found or started."""


class SubscriptionRefused(RedisUnavailableError):
    """Redis refused a ``SUBSCRIBE`` or ``PSUBSCRIBE``: this connection would hear nothing.

    The message names the refused command and the fix (the ACL channel rules, the
    password). Typical causes: an ACL user without the channel (for ``PSUBSCRIBE``
    Redis compares the pattern itself, literally, with the user's ``&`` rules), or a
    ``requirepass`` server reached without a password.

    Attributes:
        command: ``"SUBSCRIBE"`` or ``"PSUBSCRIBE"``.
        items: The channels or patterns of the refused command.
        reply: Redis's error reply (``NOPERM ...``, ``NOAUTH ...``).
    """

    def __init__(self, message: str, *, command: str, items: tuple[bytes, ...], reply: str) -> None:
        super().__init__(message)
        self.command = command
        self.items = items
        self.reply = reply


class RequestUndelivered(RedisUnavailableError, TimeoutError):
    """A cluster request could not reach Redis before its deadline.

    Nothing was sent after the deadline, so no node acts on it later. Raised instead of
    :class:`RequestTimeout` when the nodes could not have answered because Redis was
    unreachable (or never acknowledged the request).

    Attributes:
        partial: What was collected before the deadline (usually nothing).
    """

    def __init__(self, message: str, *, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial


class RequestError(SiotoolsError):
    """A cluster request did not complete."""


class RequestTimeout(RequestError, TimeoutError):
    """Not every expected node answered a cluster request before the timeout.

    Attributes:
        partial: What was collected from the nodes that did answer.
        answered: How many nodes answered.
        expected: How many nodes were expected to answer (``None`` for first-reply requests).
    """

    def __init__(
        self, message: str, *, partial: Any = None, answered: int = 0, expected: int | None = None
    ) -> None:
        super().__init__(message)
        self.partial = partial
        self.answered = answered
        self.expected = expected


class SocketNotFound(RequestError, LookupError):
    """No node of the cluster has the socket a request names (the 8.x dialects can tell;
    on 4.x/5.x nobody answers, which is a :class:`RequestTimeout`).

    Attributes:
        sid: The socket id.
        nsp: The namespace.
    """

    def __init__(self, sid: str, nsp: str) -> None:
        super().__init__(f"no node has socket {sid} in namespace {nsp}")
        self.sid = sid
        self.nsp = nsp


class UnsupportedOperation(RequestError):
    """The dialect of the cluster cannot express this operation (e.g. acks in socket.io-redis 5)."""


class NodePeerError(SiotoolsError):
    """A Node peer of the interop harness failed or answered with an error."""

    def __init__(self, message: str, *, result: Any = None) -> None:
        super().__init__(message)
        self.result = result
