"""Captures: sniffed traffic kept compactly, decoded on demand, turned into tables.

A capture stores each message as it came off the wire, in columns: receive time (an
``array('q')`` of epoch nanoseconds), a channel code (``array('I')`` into a table of the
distinct channels), the payload bytes and a sharded flag. That is a few appends per message,
which is what lets one Python process keep up with a flood; decoding happens when someone
looks (:attr:`Capture.frames`, :meth:`Capture.to_pandas`) and is cached.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import html
import logging
import time
from array import array
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from itertools import repeat
from typing import TYPE_CHECKING, Any, Final, Literal

from siotools.exceptions import ConfigurationError, DecodeError
from siotools.protocol import ChannelGrammar, ChannelKind, Dialect, decode, safe
from siotools.sniffer.columns import ANOMALIES, DecodedColumns
from siotools.sniffer.frames import FrameFilter, SniffedFrame, SniffFilter, _Verdict
from siotools.sniffer.live import LiveSource, gc_relaxed

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Capture", "Decoder", "RawRecord", "capture", "sniff", "start_capture"]

log = logging.getLogger("siotools.sniffer")

RawRecord = tuple[int, bytes, bytes, bool]
"""``(time_ns, channel, payload, sharded)``: one message as received."""

Progress = Literal["auto", "text"] | None

DEFAULT_PREFIX: Final = "socket.io"
DEFAULT_RESPONSE_WINDOW: Final = 5.0

_SHARDED_KINDS: Final = {ChannelKind.BROADCAST, ChannelKind.ROOM}
_CLASSIC_KIND: Final = {
    ChannelKind.BROADCAST: "broadcast",
    ChannelKind.ROOM: "broadcast",
    ChannelKind.REQUEST: "request",
    ChannelKind.RESPONSE: "response",
    ChannelKind.RESPONSE_UID: "response",
}


def _pysocketio_channel(pysocketio: bool | str) -> str | None:
    if pysocketio is True:
        return "socketio"
    if not pysocketio:
        return None
    return str(pysocketio)


class Decoder:
    """Decodes raw records of one prefix into :class:`SniffedFrame` (channel text cached).

    Args:
        prefix: The adapters' key.
        pysocketio: python-socketio's channel name, or None.
        allow_pickle: Unpickle python-socketio < 5.14 payloads (trusted servers only).
    """

    def __init__(
        self,
        prefix: str = DEFAULT_PREFIX,
        pysocketio: str | None = None,
        allow_pickle: bool = False,
    ) -> None:
        self.prefix = prefix
        self.pysocketio = pysocketio
        self.allow_pickle = allow_pickle
        self.grammar = ChannelGrammar(prefix, pysocketio_channel=pysocketio or "socketio")
        self._text: dict[bytes, str] = {}

    def channel_text(self, channel: bytes) -> str:
        """The channel as text (undecodable bytes kept with surrogate escapes)."""
        text = self._text.get(channel)
        if text is None:
            text = self._text[channel] = channel.decode("utf-8", "surrogateescape")
        return text

    def decode(self, channel: bytes, payload: bytes, sharded: bool) -> Any:
        """The decoded frame. Raises DecodeError only."""
        return decode(
            channel,
            payload,
            prefix=self.prefix,
            dialect=Dialect.SHARDED if sharded else None,
            allow_pickle=self.allow_pickle,
            pysocketio_channel=self.pysocketio or "socketio",
        )

    def frame(self, time_ns: int, channel: bytes, payload: bytes, sharded: bool) -> SniffedFrame:
        """Decode one record; undecodable payloads give a frame with ``error`` set."""
        try:
            f = self.decode(channel, payload, sharded)
        except DecodeError as exc:
            return SniffedFrame(
                time_ns, self.channel_text(channel), len(payload), None, None, str(exc), payload,
                self.pattern(channel), sharded,
            )  # fmt: skip
        return SniffedFrame(
            time_ns, self.channel_text(channel), len(payload), f.dialect, f, None, payload,
            self.pattern(channel), sharded,
        )  # fmt: skip

    def pattern(self, channel: bytes) -> str | None:
        """The sniffer pattern that matches ``channel`` (None if none does)."""
        kind = self.grammar.parse(channel).kind
        pats = self.grammar.sniffer_patterns()
        if kind in (ChannelKind.BROADCAST, ChannelKind.ROOM):
            return pats[0]
        if kind is ChannelKind.REQUEST:
            return pats[1]
        if kind in (ChannelKind.RESPONSE, ChannelKind.RESPONSE_UID):
            return pats[2]
        return self.pysocketio

    def verdict(self, flt: SniffFilter, channel: bytes, sharded: bool) -> _Verdict:
        """What a channel alone says about ``flt``."""
        ch = self.grammar.parse(channel)
        kind = None if sharded else _CLASSIC_KIND.get(ch.kind)
        return flt.channel_verdict(kind, ch.nsp, ch.room if ch.kind is ChannelKind.ROOM else None)


# --------------------------------------------------------------------------- the capture


class Capture:
    """Sniffed traffic of one prefix: live (while capturing) or finished, or loaded.

    Build one with :func:`capture`, :func:`start_capture` or :func:`load_capture`. Frames
    are decoded on first access and cached.

    Attributes:
        prefix: The adapters' key the traffic belongs to.
        source: ``psubscribe``, ``monitor`` or ``file``.
        url: The Redis URL sniffed (password removed), or None.
        started_ns: When the capture started (epoch ns).
        stopped_ns: When it stopped, or None while running.
        gaps: ``(start_ns, end_ns)`` of every reconnect: from the last message received before
            the connection was lost (or Redis kicked the sniffer for a full output buffer)
            to the first one received after resubscription. Traffic in between was missed.
        response_window: Seconds a request may wait for its first response before it
            counts as unanswered.
        error: The exception that ended a background capture, if any.
    """

    def __init__(
        self,
        *,
        prefix: str = DEFAULT_PREFIX,
        pysocketio: bool | str = False,
        allow_pickle: bool = False,
        source: str = "file",
        url: str | None = None,
        response_window: float = DEFAULT_RESPONSE_WINDOW,
    ) -> None:
        self.prefix = prefix or DEFAULT_PREFIX
        self.pysocketio = _pysocketio_channel(pysocketio)
        self.source = source
        self.url = url
        self.response_window = response_window
        self.decoder = Decoder(self.prefix, self.pysocketio, allow_pickle)
        self.started_ns = time.time_ns()
        self.stopped_ns: int | None = None
        self.gaps: list[tuple[int, int]] = []
        self.error: BaseException | None = None
        self._times = array("q")
        self._codes = array("I")
        self._payloads: list[bytes] = []
        self._sharded = bytearray()
        self._channels: list[bytes] = []
        self._index: dict[bytes, int] = {}
        self._frames: list[SniffedFrame] = []
        self._cols = DecodedColumns()
        self._source: LiveSource | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._accepting = True

    # ------------------------------------------------------------------ storing
    def _channel_code(self, channel: bytes) -> int:
        code = self._index.get(channel)
        if code is None:
            code = self._index[channel] = len(self._channels)
            self._channels.append(channel)
        return code

    def append(self, time_ns: int, channel: bytes, payload: bytes, sharded: bool = False) -> None:
        """Add one raw record (what a source hands over)."""
        self._times.append(time_ns)
        self._codes.append(self._channel_code(channel))
        self._payloads.append(payload)
        self._sharded.append(sharded)

    def extend(self, records: Iterable[RawRecord]) -> None:
        """Add raw records."""
        for t, ch, payload, sharded in records:
            self.append(t, ch, payload, sharded)

    def _make_sink(
        self, count: int | None, flt: FrameFilter | None
    ) -> Callable[[int, list[list[bytes]], bool], None]:
        # The hot loop at 150k msgs/s: one call per socket read, locals only, two appends
        # per message, no decoding unless a filter needs the payload.
        index = self._index
        new_code = self._channel_code
        t_extend = self._times.extend
        s_extend = self._sharded.extend
        c_append = self._codes.append
        p_append = self._payloads.append
        payloads = self._payloads
        limit = count if count is not None else -1
        full = self._limit_reached

        if flt is None:

            def sink(t: int, batch: list[list[bytes]], sharded: bool) -> None:
                if not self._accepting:
                    return
                for reply in batch:
                    channel = reply[2]
                    code = index.get(channel)
                    if code is None:
                        code = new_code(channel)
                    c_append(code)
                    p_append(reply[3])
                k = len(batch)
                t_extend(repeat(t, k))
                s_extend(b"\x01" * k if sharded else bytes(k))
                if limit > 0 and len(payloads) >= limit:
                    full()

            return sink

        decoder = self.decoder
        verdicts: dict[tuple[bytes, bool], _Verdict] = {}
        structured = flt if isinstance(flt, SniffFilter) else None
        t_append = self._times.append
        s_append = self._sharded.append

        def keep(t: int, channel: bytes, payload: bytes, sharded: bool) -> bool:
            if structured is not None:
                v = verdicts.get((channel, sharded))
                if v is None:
                    v = verdicts[(channel, sharded)] = decoder.verdict(structured, channel, sharded)
                if v is _Verdict.REJECT:
                    return False
                if v is _Verdict.ACCEPT:
                    return True
            assert flt is not None
            return flt(decoder.frame(t, channel, payload, sharded))

        def filtered_sink(t: int, batch: list[list[bytes]], sharded: bool) -> None:
            for reply in batch:
                if not self._accepting:
                    return
                channel, payload = reply[2], reply[3]
                if not keep(t, channel, payload, sharded):
                    continue
                code = index.get(channel)
                if code is None:
                    code = new_code(channel)
                t_append(t)
                c_append(code)
                p_append(payload)
                s_append(sharded)
                if len(payloads) == limit:
                    full()

        return filtered_sink

    def _gap(self, start_ns: int, end_ns: int) -> None:
        # A source reports a gap at resubscription, then again when its first message
        # moves the end: same start, new end.
        if self.gaps and self.gaps[-1][0] == start_ns:
            self.gaps[-1] = (start_ns, end_ns)
        else:
            self.gaps.append((start_ns, end_ns))

    def _limit_reached(self) -> None:
        self._accepting = False
        # Messages still arriving before the connection closes are dropped by truncation.
        if self._stop is not None:
            self._stop.set()

    # ------------------------------------------------------------------ live control
    async def _start(
        self,
        url: str,
        *,
        monitor: bool,
        duration: float | None,
        count: int | None,
        flt: FrameFilter | None,
        progress: Progress,
    ) -> None:
        if count is not None and count <= 0:
            raise ConfigurationError("count must be a positive number of frames")
        if duration is not None and duration <= 0:
            raise ConfigurationError("duration must be a positive number of seconds")
        self._count = count
        self._stop = asyncio.Event()
        source = LiveSource(
            url,
            self.prefix,
            self._make_sink(count, flt),
            pysocketio=self.pysocketio,
            monitor=monitor,
            on_gap=self._gap,
        )
        self.url = source.endpoint.url
        self.source = "monitor" if monitor else "psubscribe"
        gc_relaxed(True)
        try:
            await source.start()
        except BaseException:
            gc_relaxed(False)
            raise
        self._source = source
        self.started_ns = time.time_ns()
        self._task = asyncio.create_task(self._run(source, duration, progress))
        self._task.add_done_callback(self._finished)

    async def _run(self, source: LiveSource, duration: float | None, progress: Progress) -> None:
        assert self._stop is not None
        bar = _progress_bar(progress, self._count, "frames")
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while not self._stop.is_set():
                wait = 0.25 if bar is not None else 3600.0
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), wait)
                if bar is not None:
                    bar.update(len(self._payloads) - bar.n)
        finally:
            self._accepting = False
            with contextlib.suppress(Exception):
                await source.close()
            self._truncate()
            self.stopped_ns = time.time_ns()
            gc_relaxed(False)
            if bar is not None:
                bar.update(len(self._payloads) - bar.n)
                bar.close()

    def _truncate(self) -> None:
        count = getattr(self, "_count", None)
        if count is not None and len(self._payloads) > count:
            del self._times[count:], self._codes[count:], self._payloads[count:]
            del self._sharded[count:]

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.error = task.exception()
            log.error("capture failed: %s", self.error)

    @property
    def done(self) -> bool:
        """Whether the capture has stopped (always True for a loaded capture)."""
        return self._task is None or self._task.done()

    @property
    def running(self) -> bool:
        """Whether the capture is still receiving."""
        return not self.done

    @property
    def reconnects(self) -> int:
        """How many times the live connection was re-established."""
        return self._source.reconnects if self._source is not None else len(self.gaps)

    def stop(self) -> None:
        """Ask a running capture to stop; returns at once (``await cap.wait()`` to join)."""
        if self._stop is not None:
            self._stop.set()

    async def wait(self) -> Capture:
        """Wait until the capture has stopped; returns the capture.

        Raises:
            SiotoolsError: What ended a failed background capture.
        """
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)
        if self.error is not None:
            raise self.error
        return self

    async def __aenter__(self) -> Capture:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        await self.wait()

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._payloads)

    def raw(self) -> Iterator[RawRecord]:
        """Every record as received: ``(time_ns, channel, payload, sharded)``."""
        channels = self._channels
        n = len(self._payloads)
        for i in range(n):
            yield (
                self._times[i],
                channels[self._codes[i]],
                self._payloads[i],
                bool(self._sharded[i]),
            )

    @property
    def frames(self) -> list[SniffedFrame]:
        """Every frame, decoded (decoding is done once and cached; the list grows live)."""
        frames = self._frames
        n = len(self._payloads)
        if len(frames) < n:
            dec = self.decoder.frame
            times, codes, payloads, sharded = (
                self._times,
                self._codes,
                self._payloads,
                self._sharded,
            )
            channels = self._channels
            for i in range(len(frames), n):
                frames.append(dec(times[i], channels[codes[i]], payloads[i], bool(sharded[i])))
        return frames

    def __iter__(self) -> Iterator[SniffedFrame]:
        return iter(self.frames)

    def __getitem__(self, index: int) -> SniffedFrame:
        return self.frames[index]

    @property
    def duration(self) -> float:
        """Seconds from start to stop (to now while running)."""
        end = self.stopped_ns if self.stopped_ns is not None else time.time_ns()
        if self.source == "file" and len(self._times):
            return (self._times[-1] - self._times[0]) / 1e9
        return max(0.0, (end - self.started_ns) / 1e9)

    @property
    def total_bytes(self) -> int:
        """Payload bytes captured."""
        return sum(map(len, self._payloads))

    # ------------------------------------------------------------------ decoded rows
    def _decoded(self, progress: Progress = None) -> DecodedColumns:
        """The decoded columns, after decoding whatever arrived since the last call."""
        cols = self._cols
        n = len(self._payloads)
        if len(cols) < n:
            bar = _progress_bar(progress, n - len(cols), "decoding")
            # Decoding allocates several containers per row that all survive; with the
            # default thresholds the collector re-walks the growing heap over and over.
            gc_relaxed(True)
            try:
                cols.extend(
                    self.decoder.decode,
                    self._channels,
                    self._codes,
                    self._payloads,
                    self._sharded,
                    n,
                    bar.update if bar is not None else None,
                )
            finally:
                gc_relaxed(False)
            if bar is not None:
                bar.close()
        return cols

    def _anomaly_codes(self) -> array[int]:
        cols = self._decoded()
        end = self.stopped_ns if self.stopped_ns is not None else time.time_ns()
        return cols.anomalies(self._times, int(self.response_window * 1e9), end)

    def anomalies(self) -> dict[str, Any]:
        """Counters of what looks wrong, computed over the whole capture.

        Returns:
            ``undecodable`` (payloads that did not decode), ``mixed_dialect`` (frames whose
            dialect family differs from the prefix's main one: 5.x and 8.x nodes on one
            prefix crash each other), ``unanswered`` (requests no node answered within
            :attr:`response_window`), ``dialects`` (frames per dialect family), ``gaps``
            (reconnects, during which traffic was missed), ``gap_s`` (their total span in
            seconds).
        """
        codes = self._anomaly_codes()
        counts = collections.Counter(codes)
        out: dict[str, Any] = {name: counts.get(i, 0) for i, name in enumerate(ANOMALIES)}
        out["dialects"] = self._cols.families()
        out["gaps"] = len(self.gaps)
        out["gap_s"] = round(sum(e - s for s, e in self.gaps) / 1e9, 3)
        return out

    # ------------------------------------------------------------------ tables
    def to_pandas(self, *, progress: Progress = None) -> pd.DataFrame:
        """One row per message; see :mod:`siotools.sniffer.table` for the columns.

        Args:
            progress: ``"auto"`` (tqdm.auto), ``"text"`` or None: a bar while decoding.

        Raises:
            MissingExtraError: pandas is not installed (``pip install 'siotools[notebook]'``).
        """
        from siotools.sniffer.table import to_pandas

        return to_pandas(self, progress=progress)

    def save(self, path: str | Any) -> None:
        """Save the raw capture (parquet, or JSON lines when the name ends in ``.jsonl``).

        The raw bytes are kept, so a newer siotools can decode the file again.
        """
        from siotools.sniffer.store import save_capture

        save_capture(self, path)

    # ------------------------------------------------------------------ display
    def summary(self) -> dict[str, Any]:
        """Counts for display: frames, bytes, rate, top channels, anomalies."""
        n = len(self)
        dur = self.duration
        top = collections.Counter(self._codes).most_common(5)
        out: dict[str, Any] = {
            "status": "running" if self.running else "done",
            "prefix": self.prefix,
            "source": self.source,
            "frames": n,
            "bytes": self.total_bytes,
            "duration_s": round(dur, 3),
            "rate_per_s": round(n / dur, 1) if dur > 0 else None,
            "top_channels": [
                (safe.text(self.decoder.channel_text(self._channels[c])), k) for c, k in top
            ],
            "reconnects": self.reconnects,
            "gaps": [
                {"start_ns": a, "end_ns": b, "seconds": round((b - a) / 1e9, 3)}
                for a, b in self.gaps
            ],
        }
        # Decoding a million frames for a repr would freeze a notebook; only do it when
        # it is cheap or already done.
        if n <= 200_000 or len(self._cols) >= n:
            ev = self._decoded().event
            counts = collections.Counter(c for c in ev.codes if c >= 0).most_common(5)
            out["top_events"] = [(safe.printable(ev.values[c]), k) for c, k in counts]
            out["anomalies"] = self.anomalies()
        return out

    def __repr__(self) -> str:
        state = "running" if self.running else "done"
        return (
            f"<Capture {self.prefix!r} {state}: {len(self)} frames, "
            f"{self.duration:.1f}s, source={self.source}>"
        )

    def _repr_html_(self) -> str:
        s = self.summary()
        esc = html.escape
        items = [
            ("status", s["status"]),
            ("prefix", s["prefix"]),
            ("source", s["source"]),
            ("frames", f"{s['frames']:,}"),
            ("bytes", f"{s['bytes']:,}"),
            ("duration", f"{s['duration_s']} s"),
            ("rate", f"{s['rate_per_s']:,} /s" if s["rate_per_s"] else "-"),
            ("reconnects", str(s["reconnects"])),
        ]
        if s["gaps"]:
            missed = sum(g["seconds"] for g in s["gaps"])
            items.append(("gaps", f"{len(s['gaps'])}, {missed:.3f} s missed"))
        an = s.get("anomalies")
        if an is not None:
            items.append(
                (
                    "anomalies",
                    f"undecodable {an['undecodable']}, mixed dialect {an['mixed_dialect']}, "
                    f"unanswered {an['unanswered']}",
                )
            )
            items.append(("dialects", ", ".join(f"{k} {v}" for k, v in an["dialects"].items())))
        cells = "".join(
            f"<tr><th style='text-align:left'>{esc(k)}</th><td>{esc(str(v))}</td></tr>"
            for k, v in items
        )
        tops = "".join(
            f"<li><code>{esc(str(ch))}</code>: {k:,}</li>" for ch, k in s["top_channels"]
        )
        events = "".join(f"<li>{esc(str(ev))}: {k:,}</li>" for ev, k in s.get("top_events", []))
        return (
            "<div style='border:1px solid #ccc;padding:6px;display:inline-block'>"
            "<b>siotools Capture</b>"
            f"<table>{cells}</table>"
            f"<div>top channels<ul>{tops}</ul></div>"
            + (f"<div>top events<ul>{events}</ul></div>" if events else "")
            + "</div>"
        )


def _progress_bar(progress: Progress, total: int | None, unit: str) -> Any:
    if progress is None:
        return None
    from siotools._extras import require

    if progress == "auto":
        tqdm = require("tqdm.auto", "notebook").tqdm
    elif progress == "text":
        tqdm = require("tqdm", "notebook").tqdm
    else:
        raise ConfigurationError(f"progress must be 'auto', 'text' or None, not {progress!r}")
    return tqdm(total=total, unit=f" {unit}", unit_scale=True)


# --------------------------------------------------------------------------- entry points


async def start_capture(
    url: str,
    prefix: str = DEFAULT_PREFIX,
    *,
    duration: float | None = None,
    count: int | None = None,
    filter: FrameFilter | None = None,  # noqa: A002 - the scapy/pyshark name users expect
    pysocketio: bool | str = False,
    monitor: bool = False,
    allow_pickle: bool = False,
    response_window: float = DEFAULT_RESPONSE_WINDOW,
    progress: Progress = None,
) -> Capture:
    """Start capturing in the background; returns once Redis confirmed the subscription.

    Works with top-level ``await`` in Jupyter: the capture runs as a task on the kernel's
    loop, and the returned :class:`Capture` holds the task. ``cap.stop()`` stops it,
    ``cap.done`` tells whether it stopped, ``cap.frames``/``cap.to_pandas()`` show what was
    captured so far, ``await cap.wait()`` joins it.

    Args:
        url: The Redis URL (``redis://host:port/db``).
        prefix: The adapters' key.
        duration: Stop after this many seconds.
        count: Stop after this many frames (after filtering).
        filter: A :class:`SniffFilter` or a predicate on :class:`SniffedFrame`.
        pysocketio: Also capture python-socketio's channel (True for ``socketio``, or a
            channel name).
        monitor: Use MONITOR (sees sharded SPUBLISH; costly for the server, warns).
        allow_pickle: Unpickle python-socketio < 5.14 payloads when decoding.
        response_window: Seconds before an unanswered request is flagged.
        progress: ``"auto"``/``"text"``: a frame counter while capturing.

    Raises:
        RedisUnavailableError: Redis cannot be reached.
        ConfigurationError: Bad URL or arguments.
    """
    cap = Capture(
        prefix=prefix,
        pysocketio=pysocketio,
        allow_pickle=allow_pickle,
        response_window=response_window,
    )
    await cap._start(
        url, monitor=monitor, duration=duration, count=count, flt=filter, progress=progress
    )
    return cap


async def capture(
    url: str,
    prefix: str = DEFAULT_PREFIX,
    *,
    duration: float | None = None,
    count: int | None = None,
    filter: FrameFilter | None = None,  # noqa: A002 - the scapy/pyshark name users expect
    pysocketio: bool | str = False,
    monitor: bool = False,
    allow_pickle: bool = False,
    response_window: float = DEFAULT_RESPONSE_WINDOW,
    progress: Progress = None,
) -> Capture:
    """Capture until ``duration`` seconds passed or ``count`` frames arrived.

    ``cap = await siotools.capture(url, duration=5)``; see :func:`start_capture` for the
    arguments. Cancelling the awaiting task stops the capture and keeps what it got.

    Raises:
        ConfigurationError: Neither ``duration`` nor ``count`` was given.
        RedisUnavailableError: Redis cannot be reached.
    """
    if duration is None and count is None:
        raise ConfigurationError(
            "capture() needs duration= or count=; use start_capture() for an open-ended one"
        )
    cap = await start_capture(
        url,
        prefix,
        duration=duration,
        count=count,
        filter=filter,
        pysocketio=pysocketio,
        monitor=monitor,
        allow_pickle=allow_pickle,
        response_window=response_window,
        progress=progress,
    )
    try:
        return await cap.wait()
    except asyncio.CancelledError:
        cap.stop()
        await cap.wait()
        raise


async def sniff(
    url: Any,
    prefix: str = DEFAULT_PREFIX,
    *,
    pysocketio: bool | str = False,
    monitor: bool = False,
    filter: FrameFilter | None = None,  # noqa: A002 - the scapy/pyshark name users expect
    count: int | None = None,
    duration: float | None = None,
    allow_pickle: bool = False,
    max_queue: int = 1_000_000,
    on_ready: Callable[[], None] | None = None,
    on_gap: Callable[[int, int], None] | None = None,
) -> AsyncGenerator[SniffedFrame, None]:
    """Yield decoded frames as they arrive: ``async for f in siotools.sniff(url): ...``.

    Passive: one connection, PSUBSCRIBE on the prefix's patterns only (or MONITOR with
    ``monitor=True``). ``url`` may also be a :class:`Capture` or the path of a saved
    capture: the frames are then read offline.

    Args:
        url: A Redis URL, a :class:`Capture`, or a saved capture's path.
        prefix: The adapters' key.
        pysocketio: Also watch python-socketio's channel (True for ``socketio``).
        monitor: Use MONITOR (sees sharded SPUBLISH; costly, warns).
        filter: A :class:`SniffFilter` or a predicate on :class:`SniffedFrame`.
        count: Stop after this many frames (after filtering).
        duration: Stop after this many seconds.
        allow_pickle: Unpickle python-socketio < 5.14 payloads.
        max_queue: Frames kept while the consumer is slower than the traffic; beyond it the
            oldest are dropped (counted in the log).
        on_ready: Called once the subscription is confirmed.
        on_gap: Called with ``(start_ns, end_ns)`` of a reconnect's gap: at resubscription,
            then again when the first message after it moves the end (same start).

    Raises:
        RedisUnavailableError: Redis cannot be reached.
        ConfigurationError: Bad URL or arguments.
    """
    if isinstance(url, Capture) or (
        url is not None and not (isinstance(url, str) and "://" in url)
    ):
        async for f in _sniff_offline(url, prefix, filter, count, pysocketio, allow_pickle):
            yield f
        return
    queue: collections.deque[RawRecord] = collections.deque()
    wake = asyncio.Event()
    dropped = 0

    def sink(t: int, batch: list[list[bytes]], sharded: bool) -> None:
        nonlocal dropped
        for reply in batch:
            queue.append((t, reply[2], reply[3], sharded))
        over = len(queue) - max_queue
        if over > 0:
            for _ in range(over):
                queue.popleft()
            dropped += over
        wake.set()

    source = LiveSource(
        str(url),
        prefix,
        sink,
        pysocketio=_pysocketio_channel(pysocketio),
        monitor=monitor,
        on_gap=on_gap,
    )
    decoder = Decoder(prefix, _pysocketio_channel(pysocketio), allow_pickle)
    await source.start()
    if on_ready is not None:
        on_ready()
    deadline = None if duration is None else time.monotonic() + duration
    seen = 0
    try:
        while True:
            if not queue:
                wake.clear()
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    return
                try:
                    await asyncio.wait_for(wake.wait(), timeout)
                except TimeoutError:
                    return
            while queue:
                f = decoder.frame(*queue.popleft())
                if filter is not None and not filter(f):
                    continue
                yield f
                seen += 1
                if count is not None and seen >= count:
                    return
            if deadline is not None and time.monotonic() >= deadline:
                return
    finally:
        if dropped:
            log.warning("sniff: %d frames dropped (the consumer was too slow)", dropped)
        await source.close()


async def _sniff_offline(
    src: Any,
    prefix: str,
    flt: FrameFilter | None,
    count: int | None,
    pysocketio: bool | str,
    allow_pickle: bool,
) -> AsyncGenerator[SniffedFrame, None]:
    if isinstance(src, Capture):
        cap = src
    else:
        from siotools.sniffer.store import load_capture

        cap = load_capture(src, prefix=prefix, pysocketio=pysocketio, allow_pickle=allow_pickle)
    seen = 0
    for f in cap.frames:
        if flt is not None and not flt(f):
            continue
        yield f
        seen += 1
        if count is not None and seen >= count:
            return
