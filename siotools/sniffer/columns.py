"""The capture's column store: raw records and their decoded columns, one documented schema.

:class:`ColumnStore` is what a :class:`~siotools.sniffer.Capture` holds, what the files of
:mod:`siotools.sniffer.store` hold, and what :mod:`siotools.sniffer.table` turns into a
DataFrame. Its schema, row ``i`` being the ``i``-th message received:

Raw columns (always present, what was on the wire; files keep exactly these):

=============  ===================  ======================================================
column         storage              content
=============  ===================  ======================================================
time           ``array('q')``       receive time, epoch nanoseconds (MONITOR: server time)
channel        ``array('I')`` code  index into :attr:`ColumnStore.channels` (bytes)
payload        chunked bytes        the payload bytes (:meth:`ColumnStore.payload`)
sharded        ``bytearray``        1 for SPUBLISH traffic (seen through MONITOR only)
=============  ===================  ======================================================

Decoded columns (:class:`DecodedColumns`, filled on demand and cached): categorical ones as
int32 codes into a list of distinct values (``-1`` is missing) -- ``kind``, ``dialect``,
``nsp``, ``event``, ``uid``, ``type``, ``frame``, ``request_id``, ``error`` -- and ``size``
(int32). The object columns ``rooms``, ``except``, ``args``, ``flags`` are not kept: they
are what makes a million decoded messages cost most of a gigabyte, so they are decoded from
the payloads again whenever a table asks for them (:meth:`ColumnStore.objects`).

Payloads are kept in chunks of :data:`CHUNK` rows joined into one ``bytes`` with an offset
array (a separate ``bytes`` object per message costs 33 bytes of header and an allocation);
the newest rows sit in a plain list until a chunk is full, so appending stays a list append.

Decoding goes a chunk at a time: the classic broadcasts (most of any capture) are read by
the native decoder of :mod:`siotools.protocol.columnar` straight from the joined chunk into
the code arrays (and object cells when asked); every row it declines (requests, responses,
sharded or streams traffic, exts, anything malformed) is decoded in Python, frame by frame,
into scratch columns that share the codes, and put in its place. Within a pass, a JSON
request or response that differs from one already read only in its request id (what
:func:`~siotools.protocol.wire.request_id_cut` finds; the protocol says it is then the same
frame but for that id) is given that row with its own id, without a frame. Where the
extension is not built (or :attr:`ColumnStore.native` is False) every row takes the Python
path; the result is the same row for row.
"""

from __future__ import annotations

import collections
from array import array
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate, compress, repeat
from operator import not_
from struct import pack
from typing import Any, Final, NamedTuple

from siotools.exceptions import DecodeError
from siotools.protocol import (
    ChannelGrammar,
    ChannelKind,
    Dialect,
    columnar,
    decode,
    dialect_family,
)
from siotools.protocol.msgpack_codec import PayloadTooLargeError
from siotools.protocol.safe import printable
from siotools.protocol.streams import RECORD_MARK, decode_record, heard_as
from siotools.protocol.wire import broadcast_parts, request_id_cut
from siotools.sniffer.frames import Row, describe, expects_response

__all__ = [
    "ANOMALIES",
    "CHUNK",
    "OBJECT_COLUMNS",
    "ColumnStore",
    "DecodedColumns",
    "Interned",
    "RawRecord",
    "RowDecoder",
]

ANOMALIES: Final = ("undecodable", "mixed_dialect", "unanswered")
"""Categories of the ``anomaly`` column, in code order."""

OBJECT_COLUMNS: Final = ("rooms", "except", "args", "flags")
"""Decoded columns that hold Python objects (decoded again when asked, never kept)."""

CHUNK: Final = 65_536
"""Rows per payload chunk."""

_UNDECODABLE, _MIXED, _UNANSWERED = 0, 1, 2
# Identical broadcast payloads up to this size are decoded once (their codes and objects
# shared by every row); the cache is dropped whenever it holds this many.
_CACHED_SIZE: Final = 1024
_CACHE_ROWS: Final = 65_536
_PROBES: Final = 4096
"""After this many look-ups, a cache that found almost nothing is switched off (a pass)."""

RawRecord = tuple[int, bytes, bytes, bool]
"""``(time_ns, channel, payload, sharded)``: one message as received."""


class Interned:
    """One categorical column: an int32 code per row, each distinct value once."""

    __slots__ = ("codes", "index", "values")

    def __init__(self) -> None:
        self.codes = array("i")
        self.index: dict[Any, int] = {None: -1}
        self.values: list[Any] = []

    def code(self, value: Any) -> int:
        """The code of ``value`` (-1 for None), adding it when new."""
        try:
            c = self.index.get(value)
        except TypeError:  # unhashable: shown by its repr
            value = repr(value)
            c = self.index.get(value)
        if c is None:
            c = self.index[value] = len(self.values)
            self.values.append(value)
        return c

    def value(self, row: int) -> Any:
        """The value of one row."""
        c = self.codes[row]
        return None if c < 0 else self.values[c]

    def take(self, n: int) -> None:
        """Keep the first ``n`` rows."""
        del self.codes[n:]

    def sibling(self) -> Interned:
        """A column with no rows that shares this one's values (codes mean the same)."""
        other = Interned()
        other.index, other.values = self.index, self.values
        return other


class _ChannelInfo(NamedTuple):
    broadcast: bool  # a classic broadcast / room channel: the msgpack fast path applies
    nsp: str
    answers: bool  # a request or response channel: JSON rows may share a shape (request_id_cut)


class RowDecoder:
    """Decodes payloads of one prefix into row fields, as :func:`describe` flattens frames.

    Args:
        prefix: The adapters' key.
        pysocketio: python-socketio's channel name, or None.
        allow_pickle: Unpickle python-socketio < 5.14 payloads (trusted servers only).
        max_size: Payloads over this many bytes are not decoded (counted as oversized).
    """

    def __init__(
        self,
        prefix: str,
        pysocketio: str | None = None,
        allow_pickle: bool = False,
        max_size: int | None = None,
    ) -> None:
        self.prefix = prefix
        self.pysocketio = pysocketio or "socketio"
        self.allow_pickle = allow_pickle
        self.max_size = max_size
        self.grammar = ChannelGrammar(prefix, pysocketio_channel=self.pysocketio)
        self._info: dict[bytes, _ChannelInfo] = {}

    def decode(self, channel: bytes, payload: bytes, sharded: bool) -> Any:
        """The decoded frame. Raises DecodeError only."""
        if payload[:1] == RECORD_MARK:  # a stream entry (sniffer.streams): channel = key
            return decode_record(channel, payload, prefix=self.prefix)
        frame = decode(
            channel,
            payload,
            prefix=self.prefix,
            sharded=sharded,
            allow_pickle=self.allow_pickle,
            pysocketio_channel=self.pysocketio,
            max_size=self.max_size,
        )
        # How it was heard settles sharded vs streams 0.3.x maps (protocol.streams).
        return heard_as(frame, sharded=sharded)

    def info(self, channel: bytes) -> _ChannelInfo:
        """What the channel alone says (cached per channel)."""
        got = self._info.get(channel)
        if got is None:
            ch = self.grammar.parse(channel)
            fast = ch.kind in (ChannelKind.BROADCAST, ChannelKind.ROOM)
            answers = ch.kind in (
                ChannelKind.REQUEST, ChannelKind.RESPONSE, ChannelKind.RESPONSE_UID
            )  # fmt: skip
            got = self._info[channel] = _ChannelInfo(fast, ch.nsp or "/", answers)
        return got


class DecodedColumns:
    """The cached decoded columns of a store's first ``len(self)`` rows (see the module)."""

    def __init__(self) -> None:
        self.n = 0
        self.kind = Interned()
        self.dialect = Interned()
        self.nsp = Interned()
        self.event = Interned()
        self.uid = Interned()
        self.type = Interned()
        self.frame = Interned()
        self.request_id = Interned()
        self.error = Interned()
        self.size = array("i")
        self.errors: list[int] = []
        """Rows that did not decode."""
        self.oversized: list[int] = []
        """Rows over the decoder's ``max_size`` (not decoded; also in :attr:`errors`)."""
        self.requests: list[int] = []
        """Rows of requests some node must answer."""
        self.responses: list[int] = []
        """Rows of responses carrying a request id."""
        self._anomaly_key: tuple[int, int, int] | None = None
        self._anomaly_codes: array[int] | None = None

    def __len__(self) -> int:
        return self.n

    def scratch(self) -> DecodedColumns:
        """Empty columns whose codes mean what this one's mean (rows decoded apart)."""
        other = DecodedColumns()
        other.kind, other.dialect = self.kind.sibling(), self.dialect.sibling()
        other.nsp, other.event = self.nsp.sibling(), self.event.sibling()
        other.uid, other.type = self.uid.sibling(), self.type.sibling()
        other.frame, other.request_id = self.frame.sibling(), self.request_id.sibling()
        other.error = self.error.sibling()
        return other

    def categorical(self, name: str) -> Interned:
        """The categorical column ``name`` (``kind``, ``dialect``, ``nsp``...)."""
        col = getattr(self, name)
        assert isinstance(col, Interned)
        return col

    def families(self) -> dict[str, int]:
        """Frames per dialect family (``legacy``, ``current``, ``sharded``)."""
        per_code = collections.Counter(self.dialect.codes)
        out: dict[str, int] = {}
        for code, value in enumerate(self.dialect.values):
            fam = dialect_family(Dialect(value))
            count = per_code.get(code, 0)
            if fam is not None and count:
                out[fam] = out.get(fam, 0) + count
        return out

    def anomalies(self, times: array[int], window_ns: int, end_ns: int) -> array[int]:
        """One code per row: -1 none, else an index into :data:`ANOMALIES`.

        Args:
            times: Receive times (ns) of the rows.
            window_ns: How long a request may wait for its first response.
            end_ns: When the capture stopped: requests younger than the window then are
                not judged.
        """
        n = self.n
        key = (n, window_ns, end_ns)
        if key == self._anomaly_key and self._anomaly_codes is not None:
            return self._anomaly_codes
        flags = array("b", [-1]) * n
        families = self.families()
        if len(families) > 1:
            main = max(families, key=lambda k: families[k])
            odd = {
                c
                for c, v in enumerate(self.dialect.values)
                if dialect_family(Dialect(v)) not in (None, main)
            }
            for i, c in enumerate(self.dialect.codes):
                if c in odd:
                    flags[i] = _MIXED
        # Request ids are interned, so equal ids share a code.
        rid = self.request_id.codes
        first_answer: dict[int, int] = {}
        for i in self.responses:
            if rid[i] not in first_answer:
                first_answer[rid[i]] = times[i]
        for i in self.requests:
            t = times[i]
            got = first_answer.get(rid[i])
            if got is not None and got - t <= window_ns:
                continue
            if got is None and end_ns - t < window_ns:
                continue  # still inside its window when the capture stopped: not judged
            if flags[i] < 0:
                flags[i] = _UNANSWERED
        for i in self.errors:
            flags[i] = _UNDECODABLE
        self._anomaly_key, self._anomaly_codes = key, flags
        return flags


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _printable_row(r: Row) -> Row:
    # Requests, responses and JSON frames are the only values that can hold lone
    # surrogates (JSON escapes, channel bytes): shown escaped in the table.
    return r._replace(
        rooms=printable(r.rooms),
        except_=printable(r.except_),
        args=printable(r.args),
        flags=printable(r.flags),
    )


class _Seen:
    """What one decoding pass remembers of the payloads it read: identical payloads are
    decoded once, so are JSON requests and responses that differ in their request id
    alone (:func:`~siotools.protocol.wire.request_id_cut`), and a cache that finds almost
    nothing is switched off."""

    __slots__ = (
        "broadcasts", "cut_hits", "cut_probes", "cuts", "frame_hits", "frame_probes",
        "frames", "probes", "use_broadcasts", "use_cuts", "use_frames",
    )  # fmt: skip

    def __init__(self) -> None:
        self.broadcasts: dict[bytes, tuple[Any, ...]] = {}
        self.frames: dict[int, dict[bytes, tuple[Any, ...]]] = {}
        self.cuts: dict[int, dict[bytes, tuple[Any, ...]]] = {}
        self.probes = self.frame_probes = self.frame_hits = self.cut_probes = self.cut_hits = 0
        self.use_broadcasts = self.use_frames = self.use_cuts = True

    def clear(self) -> None:
        # The caches only pay within a pass; kept, they would hold up to 64k rows' decoded
        # objects for as long as the capture lives.
        self.broadcasts.clear()
        self.frames.clear()
        self.cuts.clear()


class ColumnStore:
    """Raw records in columns plus their cached decoded columns (schema: see the module).

    Args:
        decoder: Decodes the payloads (its prefix is the store's).
    """

    def __init__(self, decoder: RowDecoder) -> None:
        self.decoder = decoder
        self.times = array("q")
        self.channel_codes = array("I")
        self.channels: list[bytes] = []
        self.channel_index: dict[bytes, int] = {}
        self.sharded = bytearray()
        self._chunks: list[tuple[bytes, array[int]]] = []
        self._tail: list[bytes] = []
        self._nbytes = 0
        self._tail_counted = self._tail_bytes = 0
        self.decoded = DecodedColumns()
        self.native = True
        """Read classic broadcasts with the native decoder when it is built
        (:mod:`siotools.protocol.columnar`); False: every row in Python (same result)."""

    # ------------------------------------------------------------------ raw
    def __len__(self) -> int:
        return len(self._chunks) * CHUNK + len(self._tail)

    def channel_code(self, channel: bytes) -> int:
        """The code of ``channel``, adding it when new."""
        code = self.channel_index.get(channel)
        if code is None:
            code = self.channel_index[channel] = len(self.channels)
            self.channels.append(channel)
        return code

    def append(self, time_ns: int, channel: bytes, payload: bytes, sharded: bool = False) -> None:
        """Add one raw record."""
        self.times.append(time_ns)
        self.channel_codes.append(self.channel_code(channel))
        self.sharded.append(sharded)
        self._tail.append(payload)
        if len(self._tail) >= CHUNK:
            self._seal()

    def batch_sink(self) -> Callable[[int, list[list[bytes]], bool], int]:
        """A fast appender of ``[kind, pattern, channel, payload]`` replies; returns len.

        The hot loop at 150k msgs/s: one call per socket read, locals only, two list
        appends per message. The arrays are looked up per call, so the sink stays valid
        across :meth:`detach`.
        """
        index = self.channel_index
        new_code = self.channel_code

        def sink(t: int, batch: list[list[bytes]], sharded: bool) -> int:
            tail = self._tail
            p_append = tail.append
            c_append = self.channel_codes.append
            for reply in batch:
                channel = reply[2]
                code = index.get(channel)
                if code is None:
                    code = new_code(channel)
                c_append(code)
                p_append(reply[3])
            k = len(batch)
            self.times.extend(repeat(t, k))
            self.sharded.extend(b"\x01" * k if sharded else bytes(k))
            if len(tail) >= CHUNK:
                self._seal()
            return len(self._chunks) * CHUNK + len(self._tail)

        return sink

    def detach(self) -> ColumnStore:
        """Move every row into a new store (returned) and keep none; channel codes stay
        valid in both (the new store gets a copy of the channel table)."""
        part = ColumnStore(self.decoder)
        part.times, part.channel_codes, part.sharded = self.times, self.channel_codes, self.sharded
        part._chunks, part._tail, part._nbytes = self._chunks, self._tail, self._nbytes
        part.channels = list(self.channels)
        part.channel_index = dict(self.channel_index)
        part.decoded = self.decoded
        self.clear()
        return part

    def _seal(self) -> None:
        if len(self._tail) >= CHUNK:
            self._tail_counted = self._tail_bytes = 0
        while len(self._tail) >= CHUNK:
            part, self._tail = self._tail[:CHUNK], self._tail[CHUNK:]
            offsets = array("q", [0])
            offsets.extend(accumulate(map(len, part)))
            self._chunks.append((b"".join(part), offsets))
            self._nbytes += offsets[-1]

    def payload(self, i: int) -> bytes:
        """The payload of row ``i``."""
        c, j = divmod(i, CHUNK)
        if c < len(self._chunks):
            data, offs = self._chunks[c]
            return data[offs[j] : offs[j + 1]]
        return self._tail[j]

    def payloads(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The payloads of rows ``start`` .. ``stop``, in order."""
        n = len(self)
        stop = n if stop is None else min(stop, n)
        i = start
        while i < stop:
            c, j = divmod(i, CHUNK)
            if c < len(self._chunks):
                data, offs = self._chunks[c]
                end = min(stop - c * CHUNK, CHUNK)
                for k in range(j, end):
                    yield data[offs[k] : offs[k + 1]]
                i = c * CHUNK + end
            else:
                yield from self._tail[j : stop - c * CHUNK]
                i = stop

    def record(self, i: int) -> RawRecord:
        """Row ``i`` as received."""
        return (
            self.times[i],
            self.channels[self.channel_codes[i]],
            self.payload(i),
            bool(self.sharded[i]),
        )

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[RawRecord]:
        """Rows ``start`` .. ``stop`` as received."""
        times, codes, channels, sharded = (
            self.times,
            self.channel_codes,
            self.channels,
            self.sharded,
        )
        for i, p in enumerate(self.payloads(start, stop), start):
            yield times[i], channels[codes[i]], p, bool(sharded[i])

    def extend_columns(
        self, times: bytes, channel_codes: bytes, payloads: list[bytes], sharded: bytes
    ) -> None:
        """Add rows given as column buffers (int64 times, uint32 codes of this store's
        channel table, one payload per row, one sharded byte per row)."""
        self.times.frombytes(times)
        self.channel_codes.frombytes(channel_codes)
        self.sharded.extend(sharded)
        self._tail.extend(payloads)
        self._seal()

    def extend(self, records: Iterable[RawRecord]) -> None:
        """Add raw records."""
        for t, ch, p, sh in records:
            self.append(t, ch, p, sh)

    @property
    def nbytes(self) -> int:
        """Payload bytes held (counted incrementally: cheap to ask often)."""
        tail = self._tail
        if self._tail_counted > len(tail):  # the tail was sealed or replaced
            self._tail_counted = self._tail_bytes = 0
        if self._tail_counted < len(tail):
            self._tail_bytes += sum(map(len, tail[self._tail_counted :]))
            self._tail_counted = len(tail)
        return self._nbytes + self._tail_bytes

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` rows (decoded columns included)."""
        if n >= len(self):
            return
        payloads = list(self.payloads(0, n))
        del self.times[n:]
        del self.channel_codes[n:]
        del self.sharded[n:]
        self._chunks, self._tail, self._nbytes = [], payloads, 0
        self._tail_counted = self._tail_bytes = 0
        self._seal()
        if len(self.decoded) > n:
            self.decoded = DecodedColumns()

    def clear(self) -> None:
        """Drop every row (the channel table stays: codes remain valid)."""
        self.times = array("q")
        self.channel_codes = array("I")
        self.sharded = bytearray()
        self._chunks, self._tail, self._nbytes = [], [], 0
        self._tail_counted = self._tail_bytes = 0
        self.decoded = DecodedColumns()

    # ------------------------------------------------------------------ decoded
    def decode(
        self, stop: int | None = None, on_chunk: Callable[[int], None] | None = None
    ) -> DecodedColumns:
        """Decode rows up to ``stop`` (default: all) into the cached columns."""
        n = len(self) if stop is None else stop
        if len(self.decoded) < n:
            self._decode(len(self.decoded), n, None, on_chunk)
        return self.decoded

    def objects(
        self, start: int = 0, stop: int | None = None, on_chunk: Callable[[int], None] | None = None
    ) -> dict[str, list[Any]]:
        """The object columns (:data:`OBJECT_COLUMNS`) of rows ``start`` .. ``stop``,
        decoded from the payloads now (and the cached columns filled on the way)."""
        n = len(self) if stop is None else stop
        out: dict[str, list[Any]] = {name: [] for name in OBJECT_COLUMNS}
        self._decode(start, n, out, on_chunk)
        return out

    def objects_at(self, rows: Iterable[int]) -> dict[str, list[Any]]:
        """The object columns of the given (decoded) rows, in the order given."""
        out: dict[str, list[Any]] = {name: [] for name in OBJECT_COLUMNS}
        n = len(self.decoded)
        payload = self.payload
        self._decode_items(((i, payload(i)) for i in rows if i < n), n, out, None)
        return out

    def _decode(
        self,
        start: int,
        stop: int,
        objects: dict[str, list[Any]] | None,
        on_chunk: Callable[[int], None] | None,
    ) -> None:
        # Rows below decoded.n already have their codes: only objects are wanted there.
        fill = self.decoded.n
        if start > fill:
            self._decode(fill, start, None, None)
            fill = start
        if self.native and columnar.AVAILABLE:
            self._decode_native(start, stop, fill, objects, on_chunk)
        else:
            items = enumerate(self.payloads(start, stop), start)
            self._decode_items(items, fill, objects, on_chunk)

    def _blocks(
        self, start: int, stop: int, fill: int
    ) -> Iterator[tuple[int, bytes, Any, int, int]]:
        """``(row, data, offsets, first, count)`` runs of rows ``start`` .. ``stop``: joined
        payloads with their offsets, none across a chunk or across ``fill``."""
        stop = min(stop, len(self))
        i = start
        while i < stop:
            c, j = divmod(i, CHUNK)
            end = min(stop - c * CHUNK, CHUNK)
            if i < fill < c * CHUNK + end:
                end = fill - c * CHUNK
            if c < len(self._chunks):
                data, offs = self._chunks[c]
                yield i, data, offs, j, end - j
            else:
                part = self._tail[j:end]
                offsets = array("q", [0])
                offsets.extend(accumulate(map(len, part)))
                yield i, b"".join(part), offsets, 0, end - j
            i = c * CHUNK + end

    def _decode_native(
        self,
        start: int,
        stop: int,
        fill: int,
        objects: dict[str, list[Any]] | None,
        on_chunk: Callable[[int], None] | None,
    ) -> None:
        # Classic broadcasts are read a block at a time by the native decoder
        # (protocol.columnar); the rows it declines go through _decode_items, into scratch
        # columns that share the codes, and are put in their places.
        cols = self.decoded
        dec = self.decoder
        infos = [dec.info(c) for c in self.channels]
        fast = bytes(info.broadcast for info in infos)
        nsp_of = array("i", [cols.nsp.code(info.nsp) for info in infos])
        bc_kind, bc_frame = cols.kind.code("broadcast"), cols.frame.code("Broadcast")
        type_codes = (cols.type.code("EVENT"), cols.type.code("BINARY_EVENT"))
        dialect_col = (cols.dialect.index, cols.dialect.values)
        uid_col = (cols.uid.index, cols.uid.values)
        event_col = (cols.event.index, cols.event.values)
        want = objects is not None
        seen = _Seen()
        try:
            for row, data, offsets, first, count in self._blocks(start, stop, fill):
                # Copies, not views: an array exporting its buffer cannot grow, and the
                # capture may append while a part is decoded for its file.
                got = columnar.broadcast_columns(
                    data, offsets, first, self.channel_codes[row : row + count],
                    self.sharded[row : row + count], fast, nsp_of, dec.max_size, dialect_col,
                    type_codes, uid_col, event_col, want,
                )  # fmt: skip
                bad = list(compress(range(count), map(not_, got.ok)))
                part = cols.scratch()
                part_objects: dict[str, list[Any]] | None = (
                    {name: [] for name in OBJECT_COLUMNS} if want else None
                )
                if bad:
                    at = offsets.__getitem__
                    items = ((row + k, data[at(first + k) : at(first + k + 1)]) for k in bad)
                    self._decode_items(items, fill, part_objects, None, part, seen)
                    cols.errors.extend(part.errors)
                    cols.oversized.extend(part.oversized)
                    cols.requests.extend(part.requests)
                    cols.responses.extend(part.responses)
                if row >= fill:
                    self._place_codes(got.codes, count, bad, part, bc_kind, bc_frame)
                if objects is not None and part_objects is not None:
                    cells = (got.rooms, got.except_, got.args, got.flags)
                    for name, column in zip(OBJECT_COLUMNS, cells, strict=True):
                        assert column is not None
                        if bad:
                            collections.deque(map(column.__setitem__, bad, part_objects[name]), 0)
                        objects[name].extend(column)
                if on_chunk is not None:
                    on_chunk(count)
        finally:
            cols.n = len(cols.size)
            seen.clear()

    def _place_codes(
        self,
        codes: bytes,
        count: int,
        bad: list[int],
        part: DecodedColumns,
        bc_kind: int,
        bc_frame: int,
    ) -> None:
        """Append a block's codes: the native decoder's, with declined rows from ``part``."""
        cols = self.decoded
        size, dialect, nsp, event, uid, type_ = (
            array("i", codes[k * 4 * count : (k + 1) * 4 * count]) for k in range(6)
        )
        blocks = (
            (cols.size, size, part.size),
            (cols.kind.codes, array("i", [bc_kind]) * count, part.kind.codes),
            (cols.dialect.codes, dialect, part.dialect.codes),
            (cols.nsp.codes, nsp, part.nsp.codes),
            (cols.event.codes, event, part.event.codes),
            (cols.uid.codes, uid, part.uid.codes),
            (cols.type.codes, type_, part.type.codes),
            (cols.frame.codes, array("i", [bc_frame]) * count, part.frame.codes),
            (cols.request_id.codes, array("i", [-1]) * count, part.request_id.codes),
            (cols.error.codes, array("i", [-1]) * count, part.error.codes),
        )
        for target, block, declined in blocks:
            if bad:
                collections.deque(map(block.__setitem__, bad, declined), 0)
            target.extend(block)

    def _decode_items(
        self,
        items: Iterable[tuple[int, bytes]],
        fill: int,
        objects: dict[str, list[Any]] | None,
        on_chunk: Callable[[int], None] | None,
        into: DecodedColumns | None = None,
        seen: _Seen | None = None,
    ) -> None:
        # into: scratch columns sharing the codes (the native pass's declined rows);
        # seen: what the pass has read so far, when it calls this more than once.
        cols = self.decoded if into is None else into
        own = seen is None
        if seen is None:
            seen = _Seen()
        cache = seen.broadcasts
        frame_cache = seen.frames
        dec = self.decoder
        decode_frame = dec.decode
        max_size = dec.max_size
        channels, codes, sharded = self.channels, self.channel_codes, self.sharded
        # What each channel says, by code (rows only refer to channels added before them).
        infos = [dec.info(c) for c in channels]
        fast = [info.broadcast for info in infos]
        answers = [info.answers for info in infos]
        kind_code, dia_code, nsp_code = cols.kind.code, cols.dialect.code, cols.nsp.code
        ev_code, uid_code, type_code = cols.event.code, cols.uid.code, cols.type.code
        fr_code, rid_code, err_code = cols.frame.code, cols.request_id.code, cols.error.code
        # A new row's codes go out as one tuple (size, kind, dialect, nsp, event, uid, type,
        # frame, request_id, error), moved into the arrays a chunk at a time: one list
        # append per row instead of ten array appends.
        pending: list[tuple[int, ...]] = []
        pend = pending.append
        targets = (
            cols.size, cols.kind.codes, cols.dialect.codes, cols.nsp.codes, cols.event.codes,
            cols.uid.codes, cols.type.codes, cols.frame.codes, cols.request_id.codes,
            cols.error.codes,
        )  # fmt: skip

        def flush() -> None:
            if pending:
                # struct packs a C int per value more cheaply than array.extend/append,
                # which parse each item with PyArg_Parse (arraymodule.c i_setitem).
                fmt = f"{len(pending)}i"
                for target, values in zip(targets, zip(*pending, strict=True), strict=True):
                    target.frombytes(pack(fmt, *values))
                pending.clear()

        ev_index, uid_index = cols.event.index, cols.uid.index
        nsp_index, kind_ix = cols.nsp.index, cols.kind.index
        rid_ix, type_ix = cols.request_id.index, cols.type.index
        nsp_of = [nsp_code(info.nsp) for info in infos]
        if objects is not None:
            rooms_o, except_o = objects["rooms"].append, objects["except"].append
            args_o, flags_o = objects["args"].append, objects["flags"].append
        last_dialect: Dialect | None = None
        last_d = -1
        utf8 = [_is_utf8(c) for c in channels]
        bc_kind, bc_frame = kind_code("broadcast"), fr_code("Broadcast")
        bc_event, bc_binary = type_code("EVENT"), type_code("BINARY_EVENT")
        unknown = kind_code("unknown")
        done = 0
        probes, frame_probes, frame_hits = seen.probes, seen.frame_probes, seen.frame_hits
        use_cache, use_frame_cache = seen.use_broadcasts, seen.use_frames
        cut_cache, cut_probes, cut_hits, use_cuts = (
            seen.cuts, seen.cut_probes, seen.cut_hits, seen.use_cuts
        )  # fmt: skip
        frame_of: dict[type, int] = {}
        try:
            for i, payload in items:
                done += 1
                if done % CHUNK == 0:
                    flush()
                    if on_chunk is not None:
                        on_chunk(CHUNK)
                have = i < fill
                code = codes[i]
                if fast[code] and not sharded[i]:
                    # Identical payloads (typing, presence, repeated emits) are decoded
                    # once: the row's codes and objects come from the first.
                    if use_cache:
                        hit = cache.get(payload)
                        probes += 1
                        if probes == _PROBES and len(cache) > _PROBES * 9 // 10:
                            use_cache = False  # nearly every payload is new: not worth it
                    else:
                        hit = None
                    if hit is not None:
                        if objects is not None:
                            rooms_o(hit[4])
                            except_o(hit[5])
                            args_o(hit[6])
                            flags_o(hit[7])
                        if not have:
                            pend(
                                (len(payload), bc_kind, hit[2], nsp_of[code], hit[0], hit[1],
                                 hit[3], bc_frame, -1, -1)
                            )  # fmt: skip
                        continue
                    if payload and payload[0] & 0xF0 == 0x90:
                        # The bulk of any capture: a classic broadcast, read without a
                        # frame (the same fields as Broadcast's properties and describe()).
                        try:
                            uid, packet, opts, dialect = broadcast_parts(payload, max_size=max_size)
                        except DecodeError as exc:
                            f_err: DecodeError | None = exc
                        else:
                            data = packet.get("data")
                            if type(data) is not list:
                                data = []
                            rm, ex, fl = opts.get("rooms"), opts.get("except"), opts.get("flags")
                            rm = rm if type(rm) is list else []
                            ex = ex if type(ex) is list else []
                            fl = fl if type(fl) is dict else {}
                            args = data[1:]
                            ev = data[0] if data else None
                            try:
                                e = ev_index.get(ev)
                                u = uid_index.get(uid)
                            except TypeError:
                                e = u = None  # unhashable: the slow path below
                            if e is None:
                                e = ev_code(ev)
                            if u is None:
                                u = uid_code(uid)
                            if dialect is last_dialect:
                                d = last_d
                            else:  # Dialect hashes in Python: compare identities instead
                                d = last_d = dia_code(dialect.value)
                                last_dialect = dialect
                            ty = bc_binary if packet.get("type") == 5 else bc_event
                            if use_cache and len(payload) <= _CACHED_SIZE:
                                if len(cache) >= _CACHE_ROWS:
                                    cache.clear()
                                cache[payload] = (e, u, d, ty, rm, ex, args, fl)
                            if objects is not None:
                                rooms_o(rm)
                                except_o(ex)
                                args_o(args)
                                flags_o(fl)
                            if have:
                                continue
                            pend(
                                (len(payload), bc_kind, d, nsp_of[code], e, u, ty, bc_frame,
                                 -1, -1)
                            )  # fmt: skip
                            continue
                    else:
                        f_err = None
                else:
                    f_err = None
                if use_frame_cache:
                    per = frame_cache.get(code)
                    hit = per.get(payload) if per is not None and f_err is None else None
                    frame_probes += 1
                    if hit is not None:
                        frame_hits += 1
                    elif frame_probes == _PROBES and frame_hits < _PROBES // 10:
                        use_frame_cache = False  # nearly every payload is new: not worth it
                else:
                    hit = None
                cut: tuple[bytes, str] | None = None
                if (
                    hit is None
                    and use_cuts
                    and answers[code]
                    and not sharded[i]
                    and payload[:1] == b"{"
                    and len(payload) <= _CACHED_SIZE
                    and (max_size is None or len(payload) <= max_size)
                ):
                    # A request or response of a shape already read, but for its request
                    # id: the shape's row with this id (the protocol says that is the row).
                    cut = request_id_cut(payload)
                    cut_probes += 1
                    if cut is not None:
                        per = cut_cache.get(code)
                        shape = per.get(cut[0]) if per is not None else None
                        if shape is not None:
                            cut_hits += 1
                            rid_v = cut[1]
                            r_c = rid_ix.get(rid_v)
                            hit = (
                                *shape[:7], rid_code(rid_v) if r_c is None else r_c, *shape[8:]
                            )  # fmt: skip
                            if use_frame_cache and len(payload) <= _CACHED_SIZE:
                                # Repeated as it is, it is a plain hit from now on.
                                per = frame_cache.get(code)
                                if per is None:
                                    per = frame_cache[code] = {}
                                if len(per) >= _CACHE_ROWS:
                                    per.clear()
                                per[payload] = hit
                    if cut_probes == _PROBES and cut_hits < _PROBES // 10:
                        use_cuts = False  # nearly every shape is new: not worth it
                if hit is None and f_err is None:
                    try:
                        f = decode_frame(channels[code], payload, bool(sharded[i]))
                    except DecodeError as exc:
                        f_err = exc
                if f_err is not None:
                    if objects is not None:
                        rooms_o(None)
                        except_o(None)
                        args_o(None)
                        flags_o(None)
                    if have:
                        continue
                    pend((len(payload), unknown, -1, -1, -1, -1, -1, -1, -1, err_code(str(f_err))))
                    cols.errors.append(i)
                    if isinstance(f_err, PayloadTooLargeError):
                        cols.oversized.append(i)
                    continue
                if hit is None:
                    r = describe(f)
                    if not utf8[code] or b"\\u" in payload:
                        # Only a JSON \u escape or a channel that is not UTF-8 can put a
                        # lone surrogate in a value: shown escaped in the table.
                        r = _printable_row(r)
                    req = r.request_id is not None and r.kind != "response" and expects_response(f)
                    resp = r.request_id is not None and r.kind == "response"
                    kind_v, nsp_v, ev_v, uid_v, rid_v, type_v = (
                        r.kind, r.nsp, r.event, r.uid, r.request_id, r.type
                    )  # fmt: skip
                    try:  # dict look-ups first: a method call per column costs more
                        k_c = kind_ix.get(kind_v)
                        n_c = nsp_index.get(nsp_v)
                        e_c = ev_index.get(ev_v)
                        u_c = uid_index.get(uid_v)
                        r_c = rid_ix.get(rid_v)
                        t_c = type_ix.get(type_v)
                    except TypeError:  # an unhashable value: code() shows it by its repr
                        k_c = n_c = e_c = u_c = r_c = t_c = None
                    fd = f.dialect
                    if fd is last_dialect:
                        d = last_d
                    else:  # .value is a Python-level property: looked up on a change only
                        d = last_d = dia_code(fd.value)
                        last_dialect = fd
                    fcls = type(f)
                    fr_c = frame_of.get(fcls)
                    if fr_c is None:
                        fr_c = frame_of[fcls] = fr_code(fcls.__name__)
                    row = (
                        kind_code(kind_v) if k_c is None else k_c,
                        d,
                        nsp_code(nsp_v) if n_c is None else n_c,
                        ev_code(ev_v) if e_c is None else e_c,
                        uid_code(uid_v) if u_c is None else u_c,
                        type_code(type_v) if t_c is None else t_c,
                        fr_c,
                        rid_code(rid_v) if r_c is None else r_c,
                        req, resp, r.rooms, r.except_, r.args, r.flags,
                    )  # fmt: skip
                    if use_frame_cache and len(payload) <= _CACHED_SIZE:
                        per = frame_cache.get(code)
                        if per is None:
                            per = frame_cache[code] = {}
                        if len(per) >= _CACHE_ROWS:
                            per.clear()
                        per[payload] = row
                    if cut is not None and rid_v == cut[1]:
                        # The cut key was the frame's own request id: the shape is known.
                        per = cut_cache.get(code)
                        if per is None:
                            per = cut_cache[code] = {}
                        if len(per) >= _CACHE_ROWS:
                            per.clear()
                        per[cut[0]] = row
                else:
                    row = hit
                if objects is not None:
                    rooms_o(row[10])
                    except_o(row[11])
                    args_o(row[12])
                    flags_o(row[13])
                if have:
                    continue
                pend((len(payload), *row[:8], -1))
                if row[8]:
                    cols.requests.append(i)
                elif row[9]:
                    cols.responses.append(i)
        finally:
            flush()
            # Every new row appended exactly one size: that is how far the codes reach.
            cols.n = len(cols.size)
            seen.probes, seen.frame_probes, seen.frame_hits = probes, frame_probes, frame_hits
            seen.use_broadcasts, seen.use_frames = use_cache, use_frame_cache
            seen.cut_probes, seen.cut_hits, seen.use_cuts = cut_probes, cut_hits, use_cuts
            if own:
                seen.clear()
        if on_chunk is not None and done % CHUNK:
            on_chunk(done % CHUNK)
