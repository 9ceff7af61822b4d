"""Real Node Socket.IO nodes with the real Redis adapters, driven from asyncio.

Each *flavor* is a folder holding an exact-pinned ``package.json`` /
``package-lock.json`` and a ``peer.js``:

* ``legacy5``: socket.io 2.5.1 + socket.io-redis 5.4.0 (+ client 2.5.0, emitter 3.2.0)
* ``legacy4``: socket.io 1.7.4 + socket.io-redis 4.0.1 (+ client 1.7.4)
* ``current``: socket.io 4.8.4 + @socket.io/redis-adapter 8.3.0 (+ client 4.8.4,
  @socket.io/redis-emitter 5.1.0, redis 4.7.1)
* ``sharded82``: the same with @socket.io/redis-adapter 8.2.1, whose sharded adapter has
  its own ClusterAdapter (envelope without ``nsp``; 8.3 nodes drop its messages)
* ``streams``: socket.io 4.8.4 + @socket.io/redis-streams-adapter 0.3.1 (and 0.2.3 under
  the npm alias ``redis-streams-adapter-0.2``; + client 4.8.4, redis 4.7.1)

:func:`ensure_installed` runs ``npm ci`` once per lockfile into a cache folder.
:class:`NodePeer` starts a peer process and speaks its JSON-lines protocol:
commands get replies, and the peer reports events (``connection``,
``client_recv``, ``custom_hook``, ...) that are buffered in order. Values JSON
cannot carry travel tagged: ``bytes`` <-> ``{"$bin": hex}``, ``datetime`` <->
``{"$date": ms}`` and :data:`UNDEFINED` <-> ``{"$undefined": true}``; the
driver converts them both ways.

Example:
    >>> async with await NodePeer.start("legacy5", name="A", port=0,  # doctest: +SKIP
    ...                                 redis_url=url, key="sio") as a:
    ...     await a.call("nsp_emit", nsp="/", rooms=["room1"], event="news", args=[b"\\x01"])
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

from siotools.exceptions import NodePeerError
from siotools.transport.timers import wait_for

__all__ = [
    "CLUSTER_CLIENT_FLAVORS",
    "FLAVORS",
    "UNDEFINED",
    "NodePeer",
    "cache_root",
    "ensure_installed",
    "flavor_for",
    "from_wire",
    "peer_options_for",
    "to_wire",
]

FLAVORS: Final = ("legacy5", "legacy4", "current", "sharded82", "streams")
"""The Node flavors shipped with siotools."""

HERE: Final = Path(__file__).resolve().parent
_MARKER: Final = ".siotools-installed"
_INSTALL_TIMEOUT: Final = 600.0


class _Undefined:
    """JavaScript ``undefined``, which JSON cannot carry."""

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()
"""Stands for JavaScript ``undefined`` in arguments and results."""

Event = dict[str, Any]


def to_wire(value: Any) -> Any:
    """Tag the values JSON cannot carry for the peer protocol.

    Args:
        value: A JSON-like value that may contain ``bytes``, ``datetime`` or
            :data:`UNDEFINED`.

    Returns:
        The value with those replaced by their ``$bin`` / ``$date`` /
        ``$undefined`` tags.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bin": bytes(value).hex()}
    if isinstance(value, dt.datetime):
        return {"$date": round(value.timestamp() * 1000)}
    if value is UNDEFINED:
        return {"$undefined": True}
    if isinstance(value, list | tuple):
        return [to_wire(x) for x in value]
    if isinstance(value, dict):
        return {k: to_wire(x) for k, x in value.items()}
    return value


def from_wire(value: Any) -> Any:
    """Undo :func:`to_wire`: ``$bin`` -> bytes, ``$date`` -> aware datetime (UTC).

    Args:
        value: A decoded JSON value from the peer.

    Returns:
        The value with the tags replaced by Python objects.
    """
    if isinstance(value, list):
        return [from_wire(x) for x in value]
    if isinstance(value, dict):
        if len(value) == 1:
            if "$bin" in value:
                return bytes.fromhex(value["$bin"])
            if "$date" in value:
                return dt.datetime.fromtimestamp(value["$date"] / 1000, tz=dt.UTC)
            if "$undefined" in value:
                return UNDEFINED
        return {k: from_wire(x) for k, x in value.items()}
    return value


_FLAVOR_OF: dict[str, str] = {
    "legacy": "legacy5",
    "legacy-lite": "legacy4",
    "current": "current",
    "streams": "streams",
    "sharded": "current",
}
# The peer options that make a flavour's nodes speak a dialect (beyond the flavour's own).
_OPTIONS_OF: dict[str, dict[str, str]] = {"sharded": {"adapter": "sharded"}}
# Flavours whose adapter has a Redis Cluster client (node-redis createCluster); the
# socket.io-redis 4.x/5.x ones only connect to one node, which a Redis Cluster's classic
# pub/sub serves as any node.
CLUSTER_CLIENT_FLAVORS: frozenset[str] = frozenset({"current"})


def flavor_for(dialect: Any) -> str:
    """The Node flavour whose nodes speak ``dialect`` (a :class:`~siotools.Dialect` or its
    value).

    Raises:
        NodePeerError: No Node flavour speaks it.
    """
    value = getattr(dialect, "value", dialect)
    try:
        return _FLAVOR_OF[str(value)]
    except KeyError:
        raise NodePeerError(f"no Node peer flavour speaks dialect {value!r}") from None


def peer_options_for(dialect: Any) -> dict[str, str]:
    """The peer options (beyond :func:`flavor_for`'s flavour) whose nodes speak ``dialect``:
    ``{"adapter": "sharded"}`` for the sharded one, else none."""
    return dict(_OPTIONS_OF.get(str(getattr(dialect, "value", dialect)), {}))


def cache_root() -> Path:
    """Return the folder the flavors are installed into.

    Returns:
        ``$SIOTOOLS_NODE_CACHE`` when set, else ``~/.cache/siotools/node``.
    """
    override = os.environ.get("SIOTOOLS_NODE_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "siotools" / "node"


def _flavor_dir(flavor: str) -> Path:
    if flavor not in FLAVORS:
        raise NodePeerError(f"unknown Node flavor {flavor!r}; choose one of {', '.join(FLAVORS)}")
    return HERE / flavor


def _which(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise NodePeerError(f"{program} is not installed or not on PATH; the Node peers need it")
    return path


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_installed(flavor: str) -> Path:
    """Install a flavor's pinned npm packages once, and return the folder holding them.

    The folder is ``<cache_root()>/<flavor>-<hash of the lockfile>``; a later call
    with the same lockfile reuses it. Concurrent callers serialise on a file lock,
    and the install lands with an atomic rename, so a folder is complete or absent.

    Args:
        flavor: One of :data:`FLAVORS`.

    Returns:
        The folder whose ``node_modules`` the peer loads (pass it as ``--modules``).

    Raises:
        NodePeerError: Unknown flavor, node/npm missing, or ``npm ci`` failed.
    """
    src = _flavor_dir(flavor)
    lock = (src / "package-lock.json").read_bytes()
    target = cache_root() / f"{flavor}-{hashlib.sha256(lock).hexdigest()[:12]}"

    def done() -> bool:
        return (target / _MARKER).is_file() and (target / "node_modules").is_dir()

    if done():
        return target
    _which("node")
    npm = _which("npm")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{target.name}.lock"):
        if done():
            return target
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(src / name, work / name)
            try:
                proc = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund"],
                    cwd=work,
                    capture_output=True,
                    text=True,
                    timeout=_INSTALL_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                message = f"npm ci for {flavor} took over {_INSTALL_TIMEOUT:.0f}s"
                raise NodePeerError(message) from exc
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip()[-2000:]
                raise NodePeerError(f"npm ci for {flavor} failed (exit {proc.returncode}): {tail}")
            (work / _MARKER).write_text(f"{time.time()}\n")
            if target.exists():  # a stale, unfinished install
                shutil.rmtree(target)
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _option_args(options: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in options.items():
        if value is None:
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out += [f"--{key.replace('_', '-')}", text]
    return out


class NodePeer:
    """One running Node peer process (a server node and/or socket.io clients).

    Create it with :meth:`start`; stop it with :meth:`stop` or ``async with``.

    Attributes:
        flavor: The flavor name.
        name: The peer's label (in its events and in errors).
        ready: The peer's ``ready`` line: ``port``, ``uid``, ``uids`` (per namespace), ...
        events: Every event received so far, in order.
    """

    def __init__(self, flavor: str, name: str, proc: asyncio.subprocess.Process) -> None:
        """Wrap a launched process; use :meth:`start` instead."""
        self.flavor = flavor
        self.name = name
        self.ready: dict[str, Any] = {}
        self.events: list[Event] = []
        self._proc = proc
        self._stderr: deque[str] = deque(maxlen=200)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._consumed: set[int] = set()
        self._changed = asyncio.Event()
        self._ready_fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(
        cls,
        flavor: str,
        *,
        name: str = "peer",
        port: int | None = None,
        redis_url: str = "redis://127.0.0.1:6379",
        key: str | None = None,
        nsps: Sequence[str] = ("/",),
        requests_timeout_ms: int | None = None,
        startup_timeout: float = 30.0,
        **options: str | int | bool | None,
    ) -> NodePeer:
        """Install the flavor if needed, launch a peer and wait until it is ready.

        Args:
            flavor: One of :data:`FLAVORS`.
            name: Label of the peer.
            port: Port of the socket.io server on 127.0.0.1; ``0`` picks a free one
                (see ``ready["port"]`` / :attr:`url`); ``None`` starts no server
                (a client/emitter-only process).
            redis_url: The Redis the adapter connects to (``redis://host:port``).
            key: Adapter key (channel prefix); the adapter's default when ``None``.
            nsps: Namespaces created at start-up.
            requests_timeout_ms: Adapter ``requestsTimeout``.
            startup_timeout: Seconds to wait for the ``ready`` line.
            **options: Further peer options, e.g. ``custom_hook="silent"``,
                ``multiplexing=False`` (legacy4), ``adapter="sharded"`` (current);
                each becomes ``--custom-hook silent`` etc.

        Returns:
            The running peer; its adapters have confirmed their subscriptions.

        Raises:
            NodePeerError: Installation failed, or the peer exited or was not
                ready in time (the message includes its stderr).
        """
        modules = await asyncio.to_thread(ensure_installed, flavor)
        node = _which("node")
        url = urlsplit(redis_url)
        argv = [str(HERE / flavor / "peer.js"), "--modules", str(modules), "--name", name]
        argv += _option_args(
            {
                "port": port,
                "redis_host": url.hostname or "127.0.0.1",
                "redis_port": url.port or 6379,
                "key": key,
                "nsps": ",".join(nsps),
                "requests_timeout": requests_timeout_ms,
                **options,
            }
        )
        proc = await asyncio.create_subprocess_exec(
            node,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        peer = cls(flavor, name, proc)
        try:
            peer.ready = await wait_for(asyncio.shield(peer._ready_fut), startup_timeout)
        except TimeoutError:
            await peer.stop()
            raise NodePeerError(peer._with_stderr(f"not ready after {startup_timeout}s")) from None
        except BaseException:
            await peer.stop()
            raise
        return peer

    @property
    def port(self) -> int | None:
        """The server's port, or ``None`` for a client-only peer."""
        port: int | None = self.ready.get("port")
        return port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, for clients to connect to."""
        if self.port is None:
            raise NodePeerError(f"peer {self.name} runs no server")
        return f"http://127.0.0.1:{self.port}"

    @property
    def uid(self) -> str | None:
        """The adapter uid of namespace ``/`` (``None`` without a server)."""
        uid: str | None = self.ready.get("uid")
        return uid

    @property
    def stderr(self) -> str:
        """The last lines the process wrote to stderr."""
        return "\n".join(self._stderr)

    def _with_stderr(self, message: str) -> str:
        text = f"node peer {self.name} ({self.flavor}): {message}"
        if self._stderr:
            text += "\nstderr:\n" + self.stderr[-3000:]
        return text

    async def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        async for raw in self._proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                self._stderr.append(f"[stdout] {raw.decode(errors='replace').rstrip()}")
                continue
            kind = msg.get("type")
            if kind == "reply":
                fut = self._pending.pop(msg.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif kind == "event":
                self.events.append(from_wire(msg))
                self._changed.set()
            elif kind == "ready" and not self._ready_fut.done():
                self._ready_fut.set_result(from_wire(msg))
        await self._proc.wait()
        await asyncio.sleep(0.05)  # let the stderr reader catch the last lines
        error = NodePeerError(self._with_stderr(f"exited with code {self._proc.returncode}"))
        for fut in [self._ready_fut, *self._pending.values()]:
            if not fut.done():
                fut.set_exception(error)
        self._pending.clear()
        self._changed.set()

    async def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        async for raw in self._proc.stderr:
            self._stderr.append(raw.decode(errors="replace").rstrip())

    @property
    def running(self) -> bool:
        """Whether the process is still alive."""
        return self._proc.returncode is None

    async def call(self, cmd: str, *, timeout: float = 15.0, **params: Any) -> Any:
        """Run a command on the peer and return its result.

        Args:
            cmd: The command name (``nsp_emit``, ``clients``, ``client_connect``, ...).
            timeout: Seconds to wait for the reply.
            **params: The command's parameters (``bytes`` etc. are tagged for you); a
                trailing underscore is dropped, so ``except_=[...]`` sends ``except``.

        Returns:
            The result, with ``$bin``/``$date`` tags turned back into Python values.

        Raises:
            NodePeerError: The peer answered ``ok: false`` (``.result`` holds the
                partial result, e.g. the replies that arrived before a timeout),
                did not answer in time, or is gone.
        """
        if not self.running or self._proc.stdin is None:
            raise NodePeerError(self._with_stderr(f"cannot run {cmd}: the process has exited"))
        self._next_id += 1
        mid = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[mid] = fut
        params = {k.removesuffix("_"): v for k, v in params.items()}
        line = json.dumps({**to_wire(params), "id": mid, "cmd": cmd}) + "\n"
        try:
            self._proc.stdin.write(line.encode())
            await self._proc.stdin.drain()
            reply = await wait_for(fut, timeout)
        except TimeoutError:
            raise NodePeerError(self._with_stderr(f"no reply to {cmd} within {timeout}s")) from None
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise NodePeerError(self._with_stderr(f"cannot run {cmd}: {exc}")) from None
        finally:
            self._pending.pop(mid, None)
        result = from_wire(reply.get("result"))
        if not reply.get("ok"):
            raise NodePeerError(f"{self.name}: {cmd} failed: {reply.get('error')}", result=result)
        return result

    async def wait_event(
        self,
        predicate: Callable[[Event], bool] | None = None,
        timeout: float = 5.0,
        **fields: Any,
    ) -> Event:
        """Return the first buffered event that matches and was not returned before.

        Events that arrived before the call count, so there is no race between a
        command's reply and the event it causes.

        Args:
            predicate: Extra test on the event dict.
            timeout: Seconds to wait.
            **fields: Required field values, e.g. ``name="client_recv", event="news"``.

        Returns:
            The event (a dict with ``name``, ``t`` and the event's fields).

        Raises:
            NodePeerError: No such event within ``timeout``, or the process exited.
        """

        def match(ev: Event) -> bool:
            if any(ev.get(k) != v for k, v in fields.items()):
                return False
            return predicate is None or predicate(ev)

        deadline = asyncio.get_running_loop().time() + timeout
        scanned = 0
        while True:
            self._changed.clear()
            for i in range(scanned, len(self.events)):
                if i not in self._consumed and match(self.events[i]):
                    self._consumed.add(i)
                    return self.events[i]
            scanned = len(self.events)
            left = deadline - asyncio.get_running_loop().time()
            if not self.running and self._tasks[0].done():
                raise NodePeerError(self._with_stderr(f"exited while waiting for event {fields}"))
            if left <= 0:
                raise NodePeerError(self._with_stderr(f"no event {fields or ''} within {timeout}s"))
            with contextlib.suppress(TimeoutError):
                await wait_for(self._changed.wait(), left)

    async def stop(self, timeout: float = 3.0) -> None:
        """Shut the peer down gracefully, kill it if it lingers, and reap it."""
        if self.running and self._proc.stdin is not None:
            with contextlib.suppress(NodePeerError):
                await self.call("shutdown", timeout=timeout)
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            await wait_for(self._proc.wait(), timeout)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await wait_for(task, 1.0)

    async def __aenter__(self) -> NodePeer:
        """Return the peer itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the peer."""
        await self.stop()
