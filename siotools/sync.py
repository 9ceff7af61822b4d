"""Blocking :class:`ClusterClient` and :class:`Emitter` for scripts, WSGI apps and workers.

Thin shells over :class:`siotools.ClusterClient` and :class:`siotools.Emitter`: each
runs its asyncio twin on a loop thread of its own
(:class:`~siotools.loop_thread.LoopThread`), so it can be shared by several threads (a
thread pool, a Celery worker's threads) and used from code that has no event loop. Every
coroutine method of the twin is a blocking method here, with the same arguments.

A forked child (gunicorn, Celery prefork) never uses the parent's connections: the
first call in the child connects anew.

Example::

    from siotools.sync import ClusterClient, Emitter

    with ClusterClient("redis://127.0.0.1:6379/0") as cluster:
        print(cluster.fetch_sockets(rooms=["room1"]))

    emitter = Emitter("redis://127.0.0.1:6379/0", dialect="current")
    emitter.to("room1").emit("news", {"hello": "world"})
"""

from __future__ import annotations

import atexit
import contextlib
import inspect
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from siotools import cluster as _cluster
from siotools import emitter as _emitter
from siotools.loop_thread import LoopThread

__all__ = ["BroadcastTarget", "ClusterClient", "Emitter"]

_OPEN: weakref.WeakSet[_Shell] = weakref.WeakSet()


class _Shell:
    """Owns an asyncio object on a private loop thread and blocks on its coroutines."""

    def __init__(self, name: str, make: Callable[[], Any]) -> None:
        self._name = name
        self._make = make
        self._lock = threading.Lock()
        self._bridge = LoopThread.for_process(name)
        self._inner: Any = None
        self._connected = False
        self._pid = os.getpid()
        _OPEN.add(self)

    @property
    def running(self) -> bool:
        """Whether the loop thread of this process runs (until :meth:`close`)."""
        return self._bridge.running

    def _twin(self) -> Any:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child: the parent's loop and connections stay the parent's.
                self._bridge.stop()
                self._bridge = LoopThread.for_process(self._name)
                self._inner, self._pid = None, os.getpid()
                self._connected = False
            if self._inner is None:
                self._inner = self._make()
            return self._inner

    def _block(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.connect()
        return self._bridge.run(lambda: fn(*args, **kwargs))

    def connect(self) -> Any:
        """Connect to Redis (done on first use otherwise; once, whichever thread asks)."""
        inner = self._twin()
        with self._lock:
            if not self._connected:
                self._bridge.run(inner.connect)
                self._connected = True
        return self

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, _emitter.BroadcastTarget):
            return BroadcastTarget(self, value)
        return value

    def _method(self, target: Any, name: str) -> Any:
        attr = getattr(target, name)
        if inspect.iscoroutinefunction(attr):

            def blocking(*args: Any, **kwargs: Any) -> Any:
                return self._wrap(self._block(attr, *args, **kwargs))

            blocking.__name__ = name
            blocking.__doc__ = attr.__doc__
            return blocking
        if callable(attr):

            def chained(*args: Any, **kwargs: Any) -> Any:
                return self._wrap(attr(*args, **kwargs))

            chained.__name__ = name
            chained.__doc__ = attr.__doc__
            return chained
        return self._wrap(attr)

    def __enter__(self) -> Any:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._method(self._twin(), name)

    def close(self) -> None:
        """Close the connections and stop the loop thread (idempotent)."""
        with self._lock:
            inner, forked = self._inner, self._pid != os.getpid()
            self._inner, self._connected = None, False
        if inner is not None and not forked and self._bridge.running:
            with contextlib.suppress(Exception):
                self._bridge.run(inner.close, timeout=10)
        self._bridge.stop()


class ClusterClient(_Shell):
    """Blocking :class:`siotools.ClusterClient` (same arguments and methods).

    ``connect()`` happens on first use; ``with`` closes it at the end.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", **options: Any) -> None:
        super().__init__("siotools-cluster-client", lambda: _cluster.ClusterClient(url, **options))


class Emitter(_Shell):
    """Blocking :class:`siotools.Emitter` (same arguments; ``to``/``of``/``except_``
    chain, ``emit`` and the 8.x operations block until published)."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", **options: Any) -> None:
        super().__init__("siotools-emitter", lambda: _emitter.Emitter(url, **options))


class BroadcastTarget:
    """Blocking :class:`siotools.emitter.BroadcastTarget`: where an emit goes."""

    def __init__(self, shell: _Shell, target: Any) -> None:
        self._shell = shell
        self._target = target

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._shell._method(self._target, name)

    def __repr__(self) -> str:
        return f"sync {self._target!r}"


def _at_exit() -> None:
    for shell in list(_OPEN):
        with contextlib.suppress(Exception):
            shell.close()


atexit.register(_at_exit)
