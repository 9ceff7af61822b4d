"""siotools: the Socket.IO Redis adapter protocol, from Python.

The public API lives here. Heavy modules load on first use, so ``import siotools``
stays cheap and never imports the optional extras (textual, pandas).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from siotools._version import __version__
from siotools.exceptions import (
    ConfigurationError,
    DecodeError,
    EncodeError,
    MissingExtraError,
    NodePeerError,
    PayloadTooLargeError,
    ProtocolError,
    RedisLaunchError,
    RedisUnavailableError,
    RequestError,
    RequestTimeout,
    SiotoolsError,
    SocketNotFound,
    UnsupportedOperation,
)

if TYPE_CHECKING:
    from siotools.adapter import AsyncRedisAdapter
    from siotools.cluster import ClusterClient
    from siotools.dialects.base import RemoteSocket
    from siotools.emitter import Emitter
    from siotools.health import Report, doctor
    from siotools.metrics import NodeCollector, NodeMetrics
    from siotools.protocol import Dialect
    from siotools.redis_server import RedisServer
    from siotools.sniffer import (
        Capture,
        SniffedFrame,
        capture,
        load_capture,
        replay,
        sniff,
        start_capture,
    )
    from siotools.sync_adapter import RedisAdapter

# Public name -> module that defines it; loaded on first attribute access.
_LAZY: dict[str, str] = {
    "AsyncRedisAdapter": "siotools.adapter",
    "ClusterClient": "siotools.cluster",
    "Dialect": "siotools.protocol",
    "RemoteSocket": "siotools.dialects.base",
    "Emitter": "siotools.emitter",
    "Report": "siotools.health",
    "doctor": "siotools.health",
    "NodeCollector": "siotools.metrics",
    "NodeMetrics": "siotools.metrics",
    "RedisServer": "siotools.redis_server",
    "RedisAdapter": "siotools.sync_adapter",
    "Capture": "siotools.sniffer",
    "SniffedFrame": "siotools.sniffer",
    "capture": "siotools.sniffer",
    "load_capture": "siotools.sniffer",
    "replay": "siotools.sniffer",
    "sniff": "siotools.sniffer",
    "start_capture": "siotools.sniffer",
}

__all__ = [
    "AsyncRedisAdapter",
    "Capture",
    "ClusterClient",
    "ConfigurationError",
    "DecodeError",
    "Dialect",
    "Emitter",
    "EncodeError",
    "MissingExtraError",
    "NodeCollector",
    "NodeMetrics",
    "NodePeerError",
    "PayloadTooLargeError",
    "ProtocolError",
    "RedisAdapter",
    "RedisLaunchError",
    "RedisServer",
    "RedisUnavailableError",
    "RemoteSocket",
    "Report",
    "RequestError",
    "RequestTimeout",
    "SiotoolsError",
    "SniffedFrame",
    "SocketNotFound",
    "UnsupportedOperation",
    "__version__",
    "capture",
    "doctor",
    "load_capture",
    "replay",
    "sniff",
    "start_capture",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'siotools' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
