"""An asyncio loop on a thread of its own, for the synchronous shells.

:class:`~siotools.RedisAdapter`, :class:`siotools.sync.ClusterClient` and
:class:`siotools.sync.Emitter` run the asyncio transport, plans and timers on one
:class:`LoopThread` each and wait for the results from the caller's thread.

The thread comes from the ``threading`` module as the process has it. Under threading it
is an OS thread. Under eventlet or gevent with monkey-patching it is a green thread, the
loop's ``select`` is the cooperative one, and waiting for a result parks only the calling
green thread, so nothing blocks the hub and no lock is shared between OS threads.

asyncio allows one running loop per OS thread, and green threads share one: in a
monkey-patched process every shell therefore shares one loop (:meth:`LoopThread.for_process`),
which runs until the process ends.

A forked child does not inherit the parent's thread: the first use in the child starts a
loop of its own (the parent's loop and its connections are left alone, never closed
from the child, so the parent's Redis connections stay the parent's).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")

# Loops of a parent process, kept so that a child never finalises (closes) them.
_INHERITED: list[asyncio.AbstractEventLoop] = []


def cooperative() -> bool:
    """Whether ``threading`` makes green threads here (eventlet or gevent monkey-patching)."""
    eventlet = sys.modules.get("eventlet.patcher")
    if eventlet is not None and eventlet.is_monkey_patched("thread"):
        return True
    gevent = sys.modules.get("gevent.monkey")
    return gevent is not None and bool(gevent.is_module_patched("threading"))


_SHARED: LoopThread | None = None
_SHARED_LOCK = threading.Lock()


async def _call(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


class LoopThread:
    """Runs coroutines on a private asyncio loop, started on first use.

    Args:
        name: The thread's name.
    """

    def __init__(self, name: str, *, shared: bool = False) -> None:
        self.name = name
        self.shared = shared
        """A process-wide loop: :meth:`stop` leaves it running for the other shells."""
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @classmethod
    def for_process(cls, name: str) -> LoopThread:
        """A loop thread of its own, or the process-wide one when threads are green
        (:func:`cooperative`): a second asyncio loop cannot run there."""
        global _SHARED
        if not cooperative():
            return cls(name)
        with _SHARED_LOCK:
            if _SHARED is None:
                _SHARED = cls("siotools-loop", shared=True)
            return _SHARED

    @property
    def running(self) -> bool:
        """Whether this process's loop thread is up."""
        return self._loop is not None and self._pid == os.getpid()

    @property
    def forked(self) -> bool:
        """Whether the loop was started by a parent process (this one is a fork)."""
        return self._loop is not None and self._pid != os.getpid()

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started now if needed (and anew in a forked child)."""
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        if self._loop is not None:
            _INHERITED.append(self._loop)
        self._pid = os.getpid()
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=main, name=self.name, daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread

    def in_loop(self) -> bool:
        """Whether the caller runs on the loop's own thread."""
        return self.running and threading.current_thread() is self._thread

    def submit(self, factory: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Start ``factory()`` on the loop; its result arrives in the returned future."""
        return asyncio.run_coroutine_threadsafe(_call(factory), self.loop())

    def run(self, factory: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Run ``factory()`` on the loop and wait for its result (its errors propagate).

        Raises:
            RuntimeError: Called from the loop's own thread (it would wait for itself).
            TimeoutError: ``timeout`` passed first.
        """
        if self.in_loop():
            raise RuntimeError(
                f"{self.name}: a blocking call from the adapter's own event loop would wait "
                "for itself; call it from a server thread or a background task"
            )
        return self.submit(factory).result(timeout)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop soon (at once when already on it)."""
        if self.in_loop():
            fn(*args)
        else:
            self.loop().call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and wait for its thread (a parent's loop is only forgotten; the
        process-wide loop keeps running)."""
        if self.shared and self._pid == os.getpid():
            return
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            if loop is None:
                return
            if self._pid != os.getpid():
                _INHERITED.append(loop)
                return
        if thread is threading.current_thread():
            loop.stop()
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()
