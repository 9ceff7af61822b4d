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
import dataclasses
import html
import logging
import os
import time
from array import array
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from siotools.exceptions import ConfigurationError, DecodeError
from siotools.protocol import ChannelKind, safe
from siotools.sniffer import store, table
from siotools.sniffer.columns import ANOMALIES, ColumnStore, DecodedColumns, RawRecord, RowDecoder
from siotools.sniffer.frames import FrameFilter, SniffedFrame, SniffFilter, _Verdict
from siotools.sniffer.live import gc_paused, gc_relaxed
from siotools.sniffer.sharded import SnifferSource, open_source
from siotools.sniffer.store import CaptureMeta, RotatingWriter
from siotools.sniffer.streams import StreamSource
from siotools.sniffer.table import Where
from siotools.transport.timers import wait_for

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Capture",
    "CaptureSet",
    "Decoder",
    "RawRecord",
    "capture",
    "load_capture",
    "sniff",
    "start_capture",
]

log = logging.getLogger("siotools.sniffer")

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
        max_size: Payloads over this many bytes are not decoded (an error frame, counted).
    """

    def __init__(
        self,
        prefix: str = DEFAULT_PREFIX,
        pysocketio: str | None = None,
        allow_pickle: bool = False,
        max_size: int | None = None,
    ) -> None:
        self.prefix = prefix
        self.pysocketio = pysocketio
        self.allow_pickle = allow_pickle
        self.rows = RowDecoder(prefix, pysocketio, allow_pickle, max_size)
        self.grammar = self.rows.grammar
        self._text: dict[bytes, str] = {}

    def channel_text(self, channel: bytes) -> str:
        """The channel as text (undecodable bytes kept with surrogate escapes)."""
        text = self._text.get(channel)
        if text is None:
            text = self._text[channel] = channel.decode("utf-8", "surrogateescape")
        return text

    def decode(self, channel: bytes, payload: bytes, sharded: bool) -> Any:
        """The decoded frame. Raises DecodeError only."""
        return self.rows.decode(channel, payload, sharded)

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

    Build one with :func:`capture`, :func:`start_capture` or :func:`load_capture`. The
    records live in :attr:`columns` (a :class:`~siotools.sniffer.columns.ColumnStore`, whose
    schema its module documents); frames are decoded on demand (:meth:`frame`,
    :attr:`frames`), tables straight from the columns (:meth:`to_pandas`).

    Attributes:
        prefix: The adapters' key the traffic belongs to.
        source: ``psubscribe``, ``monitor``, ``ssubscribe`` or ``file``.
        url: The Redis URL sniffed (password removed), or None.
        started_ns: When the capture started (epoch ns).
        stopped_ns: When it stopped, or None while running.
        gaps: ``(start_ns, end_ns)`` of every reconnect: from the last message received before
            the connection was lost (or Redis kicked the sniffer for a full output buffer)
            to the first one received after resubscription. Traffic in between was missed.
        response_window: Seconds a request may wait for its first response before it
            counts as unanswered.
        columns: The column store holding the records.
        writer: Where a long capture streams its rotated files (None when in memory).
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
        max_size: int | None = None,
    ) -> None:
        self.prefix = prefix or DEFAULT_PREFIX
        self.pysocketio = _pysocketio_channel(pysocketio)
        self.source = source
        self.url = url
        self.response_window = response_window
        self.decoder = Decoder(self.prefix, self.pysocketio, allow_pickle, max_size)
        self.columns = ColumnStore(self.decoder.rows)
        self.started_ns = time.time_ns()
        self.stopped_ns: int | None = None
        self.gaps: list[tuple[int, int]] = []
        self.error: BaseException | None = None
        self.writer: RotatingWriter | None = None
        self._frames: list[SniffedFrame] = []
        self._source: SnifferSource | None = None
        self._streams: StreamSource | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._count: int | None = None
        self._accepting = True

    def meta(self) -> CaptureMeta:
        """What the files store about this capture besides its records."""
        return CaptureMeta(
            prefix=self.prefix,
            pysocketio=self.pysocketio,
            source=self.source,
            url=self.url,
            started_ns=self.started_ns,
            stopped_ns=self.stopped_ns,
            gaps=list(self.gaps),
        )

    # ------------------------------------------------------------------ storing
    def append(self, time_ns: int, channel: bytes, payload: bytes, sharded: bool = False) -> None:
        """Add one raw record (what a source hands over)."""
        self.columns.append(time_ns, channel, payload, sharded)

    def stream_to(self, path: str | os.PathLike[str], rotate: str | int | None = None) -> None:
        """Stream this capture's records to rolling parquet files in the folder ``path``.

        For captures fed by hand (:meth:`append`): call :meth:`flush_if_due` now and then
        and :meth:`close_stream` at the end. :func:`start_capture` does this itself with
        ``path=``.

        Raises:
            ConfigurationError: ``path`` is a file, its parent is missing, a bad size.
            MissingExtraError: pyarrow is missing.
        """
        self.writer = RotatingWriter(path, self.columns, self.meta, rotate=rotate)

    async def flush_if_due(self) -> None:
        """Write the records held in memory to a new file if the rotation size is reached."""
        if self.writer is not None and self.writer.due():
            await self.writer.flush()

    async def close_stream(self) -> None:
        """Write the records still in memory and wait until every file is complete."""
        if self.writer is not None:
            if self.stopped_ns is None:
                self.stopped_ns = time.time_ns()
            await self.writer.close()

    def extend(self, records: Iterable[RawRecord]) -> None:
        """Add raw records."""
        self.columns.extend(records)

    def _make_sink(
        self, count: int | None, flt: FrameFilter | None
    ) -> Callable[[int, list[list[bytes]], bool], None]:
        limit = count if count is not None else -1
        full = self._limit_reached
        writer = self.writer

        if flt is None:
            batch_sink = self.columns.batch_sink()

            def sink(t: int, batch: list[list[bytes]], sharded: bool) -> None:
                if not self._accepting:
                    return
                n = batch_sink(t, batch, sharded)
                if limit > 0 and n >= limit:
                    full()
                if writer is not None and writer.due():
                    writer.rotate_soon()

            return sink

        decoder = self.decoder
        verdicts: dict[tuple[bytes, bool], _Verdict] = {}
        structured = flt if isinstance(flt, SniffFilter) else None
        append = self.columns.append

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
                append(t, channel, payload, sharded)
                if self.writer is None and len(self.columns) == limit:
                    full()
            if writer is not None and writer.due():
                writer.rotate_soon()

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
        ssubscribe: bool = False,
        on_notice: Callable[[str], None] | None = None,
        duration: float | None,
        count: int | None,
        flt: FrameFilter | None,
        progress: Progress,
        path: str | os.PathLike[str] | None = None,
        rotate: str | int | None = None,
        stream: str | None = None,
        since: str | None = None,
        stream_count: int | None = None,
    ) -> None:
        if count is not None and count <= 0:
            raise ConfigurationError("count must be a positive number of frames")
        if stream_count is not None and stream is None:
            raise ConfigurationError("stream_count= needs stream= (the adapter's streamName)")
        if duration is not None and duration <= 0:
            raise ConfigurationError("duration must be a positive number of seconds")
        if path is not None:
            self.writer = RotatingWriter(path, self.columns, self.meta, rotate=rotate)
            count = None if count is None else count  # counted per file set: see _truncate
        elif rotate is not None:
            raise ConfigurationError("rotate= needs path= (the folder the files go to)")
        self._count = count
        self._stop = asyncio.Event()
        source = open_source(
            url,
            self.prefix,
            self._make_sink(count if self.writer is None else None, flt),
            pysocketio=self.pysocketio,
            monitor=monitor,
            ssubscribe=ssubscribe,
            on_gap=self._gap,
            on_notice=on_notice,
        )
        self.url = source.endpoint.url
        self.source = "monitor" if monitor else "ssubscribe" if ssubscribe else "psubscribe"
        if stream is not None:  # the streams adapter: its stream too (sniffer.streams)
            self._streams = StreamSource(
                url, stream, source.sink, since=since, stream_count=stream_count
            )
        gc_relaxed(True)
        try:
            await source.start()
        except BaseException:
            gc_relaxed(False)
            raise
        self._source = source
        if self._streams is not None:
            try:
                await self._streams.start()
            except BaseException:
                await source.close()
                gc_relaxed(False)
                raise
            self.source += "+xread"
        self.started_ns = time.time_ns()
        self._task = asyncio.create_task(self._run(source, duration, progress))
        self._task.add_done_callback(self._finished)

    async def _run(self, source: SnifferSource, duration: float | None, progress: Progress) -> None:
        assert self._stop is not None
        bar = _progress_bar(progress, self._count, "frames")
        deadline = None if duration is None else time.monotonic() + duration
        writer = self.writer
        try:
            while not self._stop.is_set():
                wait = 0.25 if bar is not None or writer is not None else 3600.0
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        break
                with contextlib.suppress(TimeoutError):
                    await wait_for(self._stop.wait(), wait)
                if writer is not None:
                    await writer.flush_if_due()
                    if self._count is not None and writer.rows + len(self.columns) >= self._count:
                        break
                if bar is not None:
                    bar.update(self.received - bar.n)
        finally:
            self._accepting = False
            with contextlib.suppress(Exception):
                await source.close()
            if self._streams is not None:
                await self._streams.close()
            self._truncate()
            self.stopped_ns = time.time_ns()
            gc_relaxed(False)
            if writer is not None:
                await writer.close()
            if bar is not None:
                bar.update(self.received - bar.n)
                bar.close()

    @property
    def received(self) -> int:
        """Records kept so far (those already written to rotated files included)."""
        return len(self.columns) + (self.writer.rows if self.writer is not None else 0)

    @property
    def stream_keys(self) -> tuple[str, ...]:
        """The Redis streams a live capture with ``stream=`` follows (its numbered
        ``<stream>-<i>`` siblings included; with ``stream_count=``, exactly the nodes'
        streams; empty otherwise)."""
        return self._streams.keys if self._streams is not None else ()

    def _truncate(self) -> None:
        count = self._count
        if count is None:
            return
        written = self.writer.rows if self.writer is not None else 0
        if written + len(self.columns) > count:
            self.columns.truncate(max(0, count - written))

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
        return len(self.columns)

    def raw(self) -> Iterator[RawRecord]:
        """Every record as received: ``(time_ns, channel, payload, sharded)``."""
        return self.columns.records()

    def frame(self, index: int) -> SniffedFrame:
        """Row ``index`` decoded into a typed frame (not cached; see :attr:`frames`)."""
        n = len(self.columns)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"capture has {n} frames, no frame {index}")
        if index < len(self._frames):
            return self._frames[index]
        return self.decoder.frame(*self.columns.record(index))

    @property
    def frames(self) -> list[SniffedFrame]:
        """Every frame, decoded (decoded once and cached; the list grows live).

        One object per message: for millions of messages prefer :meth:`to_pandas` or
        :meth:`frame`.
        """
        frames = self._frames
        n = len(self.columns)
        if len(frames) < n:
            dec = self.decoder.frame
            frames.extend(dec(*r) for r in self.columns.records(len(frames), n))
        return frames

    def __iter__(self) -> Iterator[SniffedFrame]:
        dec = self.decoder.frame
        for r in self.columns.records():
            yield dec(*r)

    def __getitem__(self, index: int) -> SniffedFrame:
        return self.frame(index)

    @property
    def duration(self) -> float:
        """Seconds from start to stop (to now while running)."""
        end = self.stopped_ns if self.stopped_ns is not None else time.time_ns()
        times = self.columns.times
        if self.source == "file" and len(times):
            return (times[-1] - times[0]) / 1e9
        return max(0.0, (end - self.started_ns) / 1e9)

    @property
    def total_bytes(self) -> int:
        """Payload bytes captured."""
        return self.columns.nbytes

    # ------------------------------------------------------------------ decoded rows
    def decoded(self, progress: Progress = None) -> DecodedColumns:
        """The decoded columns, after decoding whatever arrived since the last call."""
        cols = self.columns
        todo = len(cols) - len(cols.decoded)
        if todo <= 0:
            return cols.decoded
        bar = _progress_bar(progress, todo, "decoding")
        try:
            with gc_paused():
                cols.decode(on_chunk=bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
        return cols.decoded

    def anomaly_codes(self) -> array[int]:
        """One code per row: -1 none, else an index into ``ANOMALIES``."""
        cols = self.decoded()
        end = self.stopped_ns if self.stopped_ns is not None else time.time_ns()
        return cols.anomalies(self.columns.times, int(self.response_window * 1e9), end)

    def anomalies(self) -> dict[str, Any]:
        """Counters of what looks wrong, computed over the whole capture.

        Returns:
            ``undecodable`` (payloads that did not decode), ``oversized`` (payloads over
            ``max_size``, not decoded; part of undecodable), ``mixed_dialect`` (frames whose
            dialect family differs from the prefix's main one: 5.x and 8.x nodes on one
            prefix crash each other), ``unanswered`` (requests no node answered within
            :attr:`response_window`), ``dialects`` (frames per dialect family), ``gaps``
            (reconnects, during which traffic was missed), ``gap_s`` (their total span in
            seconds).
        """
        codes = self.anomaly_codes()
        counts = collections.Counter(codes)
        out: dict[str, Any] = {name: counts.get(i, 0) for i, name in enumerate(ANOMALIES)}
        out["oversized"] = len(self.columns.decoded.oversized)
        out["dialects"] = self.columns.decoded.families()
        out["gaps"] = len(self.gaps)
        out["gap_s"] = round(sum(e - s for s, e in self.gaps) / 1e9, 3)
        return out

    # ------------------------------------------------------------------ tables
    def to_pandas(
        self,
        columns: Iterable[str] | None = None,
        *,
        where: Where | None = None,
        progress: Progress = None,
    ) -> pd.DataFrame:
        """One row per message; see :mod:`siotools.sniffer.table` for the columns.

        Args:
            columns: Only these columns (default: all); the object columns (``rooms``,
                ``except``, ``args``, ``flags``) are decoded only when asked for.
            where: Only rows matching, e.g. ``{"nsp": "/chat", "event": ["a", "b"],
                "since": t0, "until": t1}`` (see :data:`siotools.sniffer.table.Where`).
            progress: ``"auto"`` (tqdm.auto), ``"text"`` or None: a bar while decoding.

        Raises:
            MissingExtraError: pandas is not installed (``pip install 'siotools[notebook]'``).
            ConfigurationError: An unknown column or filter.
        """
        todo = len(self.columns) - len(self.columns.decoded)
        bar = _progress_bar(progress, todo, "decoding") if todo > 0 else None
        try:
            with gc_paused():
                return table.to_pandas(
                    self.columns,
                    self.anomaly_codes,
                    names=[safe.text(self.decoder.channel_text(c)) for c in self.columns.channels],
                    gaps=self.gaps,
                    columns=columns,
                    where=where,
                    on_chunk=bar.update if bar is not None else None,
                )
        finally:
            if bar is not None:
                bar.close()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the raw capture (parquet, or JSON lines when the name ends in ``.jsonl``).

        The raw bytes are kept, so a newer siotools can decode the file again; parquet files
        also hold the decoded categorical columns, for readers such as DuckDB or polars.
        """
        if self.writer is not None:
            raise ConfigurationError(
                f"this capture streams to {str(self.writer.folder)!r}; load that folder instead"
            )
        store.save_capture(self.columns, self.meta(), path)

    # ------------------------------------------------------------------ display
    def summary(self) -> dict[str, Any]:
        """Counts for display: frames, bytes, rate, top channels, anomalies, gaps."""
        n = len(self)
        dur = self.duration
        top = collections.Counter(self.columns.channel_codes).most_common(5)
        channels = self.columns.channels
        out: dict[str, Any] = {
            "status": "running" if self.running else "done",
            "prefix": self.prefix,
            "source": self.source,
            "frames": n,
            "bytes": self.total_bytes,
            "duration_s": round(dur, 3),
            "rate_per_s": round(n / dur, 1) if dur > 0 else None,
            "top_channels": [
                (safe.text(self.decoder.channel_text(channels[c])), k) for c, k in top
            ],
            "reconnects": self.reconnects,
            "gaps": [
                {"start_ns": a, "end_ns": b, "seconds": round((b - a) / 1e9, 3)}
                for a, b in self.gaps
            ],
        }
        if self.writer is not None:
            out["written_rows"] = self.writer.rows
            out["files"] = len(self.writer.files)
        # Decoding a million frames for a repr would freeze a notebook; only do it when
        # it is cheap or already done.
        if n <= 200_000 or len(self.columns.decoded) >= n:
            ev = self.decoded().event
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
    ssubscribe: bool = False,
    on_notice: Callable[[str], None] | None = None,
    allow_pickle: bool = False,
    response_window: float = DEFAULT_RESPONSE_WINDOW,
    progress: Progress = None,
    path: str | os.PathLike[str] | None = None,
    rotate: str | int | None = None,
    max_size: int | None = None,
    stream: str | None = None,
    since: str | None = None,
    stream_count: int | None = None,
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
        monitor: Use MONITOR (sees sharded SPUBLISH; costly for the server, warns); on a
            Redis Cluster (``?cluster=true``) every master and replica is monitored.
        ssubscribe: Also SSUBSCRIBE every sharded channel of the prefix (sees SPUBLISH;
            inflates ``PUBSUB SHARDNUMSUB``, so the nodes' requests time out; warns).
        on_notice: Called with sentences for the user (a sharded prefix, a failover).
        allow_pickle: Unpickle python-socketio < 5.14 payloads when decoding.
        response_window: Seconds before an unanswered request is flagged.
        progress: ``"auto"``/``"text"``: a frame counter while capturing.
        path: A folder: stream the records to rolling parquet files there while capturing
            (memory stays bounded); open them with ``load_capture(path)``.
        rotate: With ``path``: start a new file every this many raw payload bytes
            (``"256MB"``, the default; ``"1GB"``, a byte count).
        max_size: Payloads over this many bytes are kept raw but not decoded (counted in
            ``anomalies()["oversized"]``).
        stream: Also read this Redis stream (@socket.io/redis-streams-adapter's
            ``streamName``, e.g. ``"socket.io"``) with XREAD from ``$``: its entries are
            frames of dialect ``streams`` (see :mod:`siotools.sniffer.streams`); on a
            Redis Cluster one XREAD per slot, on the master that serves it.
        since: With ``stream``: first backfill the entries already there with XRANGE from
            this id (``"-"``: the whole stream).
        stream_count: With ``stream``: the adapter's 0.3.x ``streamCount``, to read
            exactly the streams its nodes read and write, before they exist
            (:func:`siotools.sniffer.streams.node_streams`: ``<stream>-0`` ..
            ``<stream>-<N-1>`` and the ``<stream>--<i>`` of negative-hash namespaces);
            without it every ``<stream>-<integer>`` stream found by SCAN is followed.

    Raises:
        RedisUnavailableError: Redis cannot be reached.
        ConfigurationError: Bad URL or arguments.
        MissingExtraError: ``path`` needs pyarrow (the notebook extra).
    """
    cap = Capture(
        prefix=prefix,
        pysocketio=pysocketio,
        allow_pickle=allow_pickle,
        response_window=response_window,
        max_size=max_size,
    )
    await cap._start(
        url,
        monitor=monitor,
        ssubscribe=ssubscribe,
        on_notice=on_notice,
        duration=duration,
        count=count,
        flt=filter,
        progress=progress,
        path=path,
        rotate=rotate,
        stream=stream,
        since=since,
        stream_count=stream_count,
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
    ssubscribe: bool = False,
    on_notice: Callable[[str], None] | None = None,
    allow_pickle: bool = False,
    response_window: float = DEFAULT_RESPONSE_WINDOW,
    progress: Progress = None,
    path: str | os.PathLike[str] | None = None,
    rotate: str | int | None = None,
    max_size: int | None = None,
    stream: str | None = None,
    since: str | None = None,
    stream_count: int | None = None,
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
        ssubscribe=ssubscribe,
        on_notice=on_notice,
        allow_pickle=allow_pickle,
        response_window=response_window,
        progress=progress,
        path=path,
        rotate=rotate,
        max_size=max_size,
        stream=stream,
        since=since,
        stream_count=stream_count,
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
    ssubscribe: bool = False,
    on_notice: Callable[[str], None] | None = None,
    filter: FrameFilter | None = None,  # noqa: A002 - the scapy/pyshark name users expect
    count: int | None = None,
    duration: float | None = None,
    allow_pickle: bool = False,
    max_queue: int = 1_000_000,
    on_ready: Callable[[], None] | None = None,
    on_gap: Callable[[int, int], None] | None = None,
    max_size: int | None = None,
    stream: str | None = None,
    since: str | None = None,
    stream_count: int | None = None,
) -> AsyncGenerator[SniffedFrame, None]:
    """Yield decoded frames as they arrive: ``async for f in siotools.sniff(url): ...``.

    Passive: one connection, PSUBSCRIBE on the prefix's patterns only (or MONITOR with
    ``monitor=True``, on every master and replica of a Redis Cluster). Sharded pub/sub needs
    ``monitor=True`` or ``ssubscribe=True`` (see :mod:`siotools.sniffer.sharded`). ``url``
    may also be a :class:`Capture` or the path of a saved capture: the frames are then read
    offline.

    Args:
        url: A Redis URL, a :class:`Capture`, or a saved capture's path.
        prefix: The adapters' key.
        pysocketio: Also watch python-socketio's channel (True for ``socketio``).
        monitor: Use MONITOR (sees sharded SPUBLISH; costly, warns); every master and
            replica of a Redis Cluster.
        ssubscribe: Also SSUBSCRIBE the prefix's sharded channels (inflates SHARDNUMSUB).
        on_notice: Called with sentences for the user (a sharded prefix, a failover).
        filter: A :class:`SniffFilter` or a predicate on :class:`SniffedFrame`.
        count: Stop after this many frames (after filtering).
        duration: Stop after this many seconds.
        allow_pickle: Unpickle python-socketio < 5.14 payloads.
        max_queue: Frames kept while the consumer is slower than the traffic; beyond it the
            oldest are dropped (counted in the log).
        on_ready: Called once the subscription is confirmed.
        on_gap: Called with ``(start_ns, end_ns)`` of a reconnect's gap: at resubscription,
            then again when the first message after it moves the end (same start).
        max_size: Payloads over this many bytes are not decoded (an error frame whose
            ``error`` says so).
        stream: Also read this Redis stream (the streams adapter's ``streamName``) with
            XREAD from ``$``; ``since`` backfills it first (see :func:`start_capture`).
        since: With ``stream``: XRANGE from this id first (``"-"``: the whole stream).
        stream_count: With ``stream``: the adapter's 0.3.x ``streamCount``, to read exactly
            its nodes' streams (see :func:`start_capture`).

    Raises:
        RedisUnavailableError: Redis cannot be reached.
        ConfigurationError: Bad URL or arguments.
        ShardedPubSubError: Neither ``monitor`` nor ``ssubscribe`` on a prefix whose nodes
            speak sharded pub/sub only (PSUBSCRIBE would hear nothing).
    """
    if isinstance(url, (Capture, CaptureSet)) or (
        url is not None and not (isinstance(url, str) and "://" in url)
    ):
        async for f in _sniff_offline(url, prefix, filter, count, pysocketio, allow_pickle):
            yield f
        return
    if stream_count is not None and stream is None:
        raise ConfigurationError("stream_count= needs stream= (the adapter's streamName)")
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

    source = open_source(
        str(url),
        prefix,
        sink,
        pysocketio=_pysocketio_channel(pysocketio),
        monitor=monitor,
        ssubscribe=ssubscribe,
        on_gap=on_gap,
        on_notice=on_notice,
    )
    decoder = Decoder(prefix, _pysocketio_channel(pysocketio), allow_pickle, max_size)
    streams = (
        None
        if stream is None
        else StreamSource(str(url), stream, sink, since=since, stream_count=stream_count)
    )
    await source.start()
    if streams is not None:
        try:
            await streams.start()
        except BaseException:
            await source.close()
            raise
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
                    await wait_for(wake.wait(), timeout)
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
        if streams is not None:
            await streams.close()


async def _sniff_offline(
    src: Any,
    prefix: str,
    flt: FrameFilter | None,
    count: int | None,
    pysocketio: bool | str,
    allow_pickle: bool,
) -> AsyncGenerator[SniffedFrame, None]:
    if isinstance(src, (Capture, CaptureSet)):
        cap: Capture | CaptureSet = src
    else:
        cap = load_capture(src, prefix=prefix, pysocketio=pysocketio, allow_pickle=allow_pickle)
    seen = 0
    for f in cap:
        if flt is not None and not flt(f):
            continue
        yield f
        seen += 1
        if count is not None and seen >= count:
            return


# --------------------------------------------------------------------------- files


def load_capture(
    path: str | os.PathLike[str],
    *,
    prefix: str | None = None,
    pysocketio: bool | str | None = None,
    allow_pickle: bool = False,
) -> Any:
    """Open a saved capture: a file (:meth:`Capture.save`, a ``.jsonl`` test vector file)
    or a folder of rotated files (``capture(..., path=folder)``).

    Args:
        path: The file or folder.
        prefix: The adapters' key to decode with (default: the one saved in the file,
            ``socket.io`` for files without one).
        pysocketio: python-socketio's channel (default: as saved).
        allow_pickle: Unpickle python-socketio < 5.14 payloads when decoding.

    Returns:
        A :class:`Capture` for a file (read whole), a :class:`CaptureSet` for a folder
        (read lazily: ``to_pandas(columns=..., where=...)`` reads only what is asked).

    Raises:
        ConfigurationError: Nothing there, or not a capture.
        MissingExtraError: pyarrow is missing (parquet only).
    """
    p = Path(path)
    if p.is_dir():
        return CaptureSet(p, prefix=prefix, pysocketio=pysocketio, allow_pickle=allow_pickle)
    if not p.is_file():
        raise ConfigurationError(f"no capture file or folder at {str(p)!r}")
    if store.is_jsonl(p):
        cap = Capture(
            prefix=prefix or DEFAULT_PREFIX,
            pysocketio=pysocketio or False,
            allow_pickle=allow_pickle,
            source="file",
        )
        store.read_jsonl(p, cap.columns)
        times = cap.columns.times
        if len(times):
            cap.started_ns, cap.stopped_ns = times[0], times[-1]
        return cap
    probe = ColumnStore(RowDecoder(DEFAULT_PREFIX))
    meta = store.read_parquet(p, probe)
    cap = Capture(
        prefix=prefix or meta.prefix,
        pysocketio=(meta.pysocketio or False) if pysocketio is None else pysocketio,
        allow_pickle=allow_pickle,
        source="file",
        url=meta.url,
    )
    _adopt(cap, probe, meta)
    return cap


def _adopt(cap: Capture, cols: ColumnStore, meta: store.CaptureMeta) -> None:
    """Give ``cap`` the records read into ``cols`` (decoded with ``cap``'s decoder)."""
    cols.decoder = cap.decoder.rows
    cols.decoded = DecodedColumns()
    cap.columns = cols
    cap.gaps = list(meta.gaps)
    times = cols.times
    cap.started_ns = meta.started_ns or (times[0] if len(times) else 0)
    cap.stopped_ns = meta.stopped_ns or (times[-1] if len(times) else cap.started_ns)


_STORED: Final = frozenset(store.FILE_COLUMNS) - {"payload", "sharded"}


class CaptureSet:
    """A folder of rotated capture files, opened lazily as one pyarrow dataset.

    Nothing is read until asked: :meth:`to_pandas` pushes ``where`` (time, namespace,
    event, kind...) down to the files and reads only the columns asked for; the columns
    stored decoded (see :mod:`siotools.sniffer.store`) are not decoded again, the object
    columns are decoded from the selected rows' payloads.

    Attributes:
        folder: The folder.
        files: Its capture files, in order.
        prefix: The adapters' key (as saved, unless overridden).
        pysocketio: python-socketio's channel, or None.
        gaps: The gaps recorded by the capture that wrote the files.
        dataset: The ``pyarrow.dataset.Dataset`` (for direct use).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        prefix: str | None = None,
        pysocketio: bool | str | None = None,
        allow_pickle: bool = False,
    ) -> None:
        from siotools._extras import require

        ds = require("pyarrow.dataset", "notebook")
        pq = require("pyarrow.parquet", "notebook")
        self.folder = Path(folder)
        self.files = sorted(self.folder.glob("*.parquet"))
        if not self.files:
            raise ConfigurationError(f"no capture files (*.parquet) in {str(self.folder)!r}")
        metas = []
        for f in self.files:
            try:
                raw = (pq.read_schema(f).metadata or {}).get(b"siotools")
            except Exception as exc:
                raise ConfigurationError(f"{str(f)!r} is not a parquet capture: {exc}") from exc
            metas.append(store.CaptureMeta.from_json(raw))
        meta = metas[-1]
        self.meta = meta
        self.prefix = prefix or meta.prefix
        self.pysocketio = _pysocketio_channel(
            (meta.pysocketio or False) if pysocketio is None else pysocketio
        )
        self.allow_pickle = allow_pickle
        self.gaps = sorted({g for m in metas for g in m.gaps})
        self.dataset = ds.dataset([str(f) for f in self.files], format="parquet")
        self.decoder = Decoder(self.prefix, self.pysocketio, allow_pickle)

    def __len__(self) -> int:
        return int(self.dataset.count_rows())

    def __repr__(self) -> str:
        return f"<CaptureSet {self.prefix!r}: {len(self.files)} files in {str(self.folder)!r}>"

    def _filter(self, where: table.Where | None) -> Any:
        from siotools._extras import require

        pa = require("pyarrow", "notebook")
        pc = require("pyarrow.compute", "notebook")
        expr = None
        ts = pa.timestamp("ns", tz="UTC")
        for k, v in table.check_where(where).items():
            if k == "since":
                e = pc.field("time") >= pa.scalar(v, type=ts)
            elif k == "until":
                e = pc.field("time") < pa.scalar(v, type=ts)
            elif k == "channel":
                chans = [c if isinstance(c, bytes) else str(c).encode("utf-8", "surrogateescape")
                         for c in v]  # fmt: skip
                e = pc.field("channel").isin(pa.array(chans, type=pa.binary()))
            else:
                e = pc.field(k).isin(pa.array([str(x) for x in v], type=pa.string()))
            expr = e if expr is None else expr & e
        return expr

    def load(self, where: table.Where | None = None) -> Capture:
        """The selected rows as an in-memory :class:`Capture` (raw columns read only)."""
        t = self.dataset.to_table(
            columns=["time", "channel", "payload", "sharded"], filter=self._filter(where)
        )
        cap = Capture(
            prefix=self.prefix,
            pysocketio=self.pysocketio or False,
            allow_pickle=self.allow_pickle,
            source="file",
            url=self.meta.url,
        )
        store.add_arrow(t, cap.columns)
        _adopt(cap, cap.columns, dataclasses.replace(self.meta, gaps=list(self.gaps)))
        return cap

    def to_pandas(
        self, columns: Iterable[str] | None = None, *, where: table.Where | None = None
    ) -> pd.DataFrame:
        """The selected rows and columns as a DataFrame (see :mod:`siotools.sniffer.table`).

        Columns stored decoded in the files (time, channel, kind, dialect, nsp, event,
        uid, request_id, type, frame, size, error) are read as they are; asking for
        ``rooms``/``except``/``args``/``flags``/``anomaly``/``gap_s`` decodes the selected
        rows' payloads (anomalies are then judged within the selection).

        Raises:
            ConfigurationError: An unknown column or filter.
        """
        wanted = table.check_columns(columns)
        if not set(wanted) <= _STORED:
            return self.load(where).to_pandas(wanted)
        t = self.dataset.to_table(columns=wanted, filter=self._filter(where))
        df = t.to_pandas()
        if "channel" in df:
            cats = df["channel"].cat.categories
            df["channel"] = df["channel"].cat.rename_categories(
                [safe.text(bytes(c).decode("utf-8", "surrogateescape")) for c in cats]
            )
        out: pd.DataFrame = df[wanted]
        return out

    def raw(self) -> Iterator[RawRecord]:
        """Every record as received, file by file."""
        for batch in self.dataset.to_batches(columns=["time", "channel", "payload", "sharded"]):
            times = batch.column(0).cast("int64").to_pylist()
            chans = batch.column(1).to_pylist()
            payloads = batch.column(2).to_pylist()
            sharded = batch.column(3).to_pylist()
            yield from zip(times, chans, payloads, map(bool, sharded), strict=True)

    def __iter__(self) -> Iterator[SniffedFrame]:
        dec = self.decoder.frame
        for r in self.raw():
            yield dec(*r)
