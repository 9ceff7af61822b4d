"""Capture files: one parquet or JSON-lines file, or a folder of rotated parquet files.

Files keep the raw records (receive time, channel bytes, payload bytes, sharded flag), so a
capture taken today can be decoded again by a newer siotools; parquet files also carry the
decoded categorical columns, so that a dataset can be filtered without decoding and other
tools can query it directly.

* ``.parquet`` (needs the ``notebook`` extra), :data:`FILE_SCHEMA`: ``time``
  (timestamp[ns, UTC]), ``channel`` (dictionary of binary), ``payload`` (binary),
  ``sharded`` (bool), then ``kind``, ``dialect``, ``nsp``, ``event``, ``uid``,
  ``request_id``, ``type``, ``frame``, ``error`` (dictionary of string, null when missing;
  non-string values as their printable text) and ``size`` (int32). The capture's prefix and
  settings are in the schema metadata under ``siotools`` (:class:`CaptureMeta`).
* ``.jsonl``: one object per message, ``{"t", "t_ns", "channel", "pattern", "data_hex",
  "sharded"}`` (plus ``channel_hex`` when the channel is not UTF-8: ``channel`` then shows
  the bad bytes as ``\\xff`` escapes); the test vectors' format, so those files load too
  (a ``null`` pattern there means a sharded message taken from MONITOR).
* A folder written by a long capture (``capture(..., path="caps/", rotate="256MB")``):
  ``capture-<start>-<n>.parquet`` files of the schema above, one per rotation. Any parquet
  reader sees them as one dataset, e.g. DuckDB
  ``SELECT nsp, event, count(*) FROM 'caps/*.parquet' GROUP BY ALL`` or polars
  ``pl.scan_parquet("caps/*.parquet").group_by("event").len()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from siotools._extras import require
from siotools.exceptions import ConfigurationError, SiotoolsError
from siotools.protocol import safe
from siotools.sniffer.columns import ColumnStore

__all__ = [
    "FILE_COLUMNS",
    "FORMAT_VERSION",
    "CaptureMeta",
    "RotatingWriter",
    "arrow_table",
    "is_jsonl",
    "parse_size",
    "read_jsonl",
    "read_parquet",
    "save_capture",
]

log = logging.getLogger("siotools.sniffer")

FORMAT_VERSION: Final = 2
_META_KEY: Final = b"siotools"
_DECODED: Final = (
    "kind", "dialect", "nsp", "event", "uid", "request_id", "type", "frame", "error",
)  # fmt: skip
FILE_COLUMNS: Final = ("time", "channel", "payload", "sharded", *_DECODED, "size")
"""Columns of a parquet capture file, in order."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def parse_size(value: str | int) -> int:
    """``"256MB"`` / ``"1.5GB"`` / ``"500k"`` / ``1000000`` as bytes (k, M, G: powers of 1024).

    Raises:
        ConfigurationError: Not a size.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = _SIZE.match(str(value))
        if m is None:
            raise ConfigurationError(f"{value!r} is not a size (say 256MB, 1GB or a byte count)")
        n = int(float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower()))
    if n <= 0:
        raise ConfigurationError(f"a rotation size must be more than 0 bytes, not {value!r}")
    return n


@dataclasses.dataclass
class CaptureMeta:
    """What a capture file stores besides its records.

    Attributes:
        prefix: The adapters' key.
        pysocketio: python-socketio's channel, or None.
        source: ``psubscribe``, ``monitor`` or ``file``.
        url: The Redis URL (password removed), or None.
        started_ns: When the capture started.
        stopped_ns: When it stopped (None while running).
        gaps: ``(start_ns, end_ns)`` of every reconnect so far.
    """

    prefix: str = "socket.io"
    pysocketio: str | None = None
    source: str = "file"
    url: str | None = None
    started_ns: int = 0
    stopped_ns: int | None = None
    gaps: list[tuple[int, int]] = dataclasses.field(default_factory=list)

    def to_json(self) -> bytes:
        """The metadata as stored in a file."""
        d = dataclasses.asdict(self)
        d["format"] = FORMAT_VERSION
        return json.dumps(d).encode()

    @classmethod
    def from_json(cls, raw: bytes | None) -> CaptureMeta:
        """Metadata read from a file (defaults for what is missing)."""
        d: dict[str, Any] = json.loads(raw) if raw else {}
        return cls(
            prefix=d.get("prefix") or "socket.io",
            pysocketio=d.get("pysocketio") or None,
            source=d.get("source") or "file",
            url=d.get("url"),
            started_ns=int(d.get("started_ns") or 0),
            stopped_ns=d.get("stopped_ns"),
            gaps=[(int(g[0]), int(g[1])) for g in d.get("gaps", [])],
        )


def is_jsonl(path: Path) -> bool:
    """Whether ``path`` names a JSON-lines capture."""
    return path.suffix.lower() in (".jsonl", ".ndjson", ".json")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def save_capture(cols: ColumnStore, meta: CaptureMeta, path: str | os.PathLike[str]) -> None:
    """Write ``cols``' records to ``path`` (parquet, or JSON lines for ``.jsonl``).

    Raises:
        MissingExtraError: pyarrow is missing (parquet only).
    """
    p = Path(path)
    if is_jsonl(p):
        grammar = cols.decoder.grammar
        pats = grammar.sniffer_patterns()
        with p.open("w", encoding="utf-8") as out:
            for t, ch, payload, sharded in cols.records():
                rec = {
                    "t": t / 1e9,
                    "t_ns": t,
                    "channel": safe.text(ch.decode("utf-8", "surrogateescape")),
                    "pattern": None if sharded else _pattern(grammar, pats, ch),
                    "data_hex": payload.hex(),
                    "sharded": sharded,
                }
                if not _is_utf8(ch):
                    # The readable name above shows the bad bytes as escapes; these are
                    # the exact bytes, which loading prefers.
                    rec["channel_hex"] = ch.hex()
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return
    pq = require("pyarrow.parquet", "notebook")
    pq.write_table(arrow_table(cols, meta), p, compression="zstd")


def _pattern(grammar: Any, pats: Sequence[str], channel: bytes) -> str | None:
    from siotools.protocol import ChannelKind

    kind = grammar.parse(channel).kind
    if kind in (ChannelKind.BROADCAST, ChannelKind.ROOM):
        return pats[0]
    if kind is ChannelKind.REQUEST:
        return pats[1]
    if kind in (ChannelKind.RESPONSE, ChannelKind.RESPONSE_UID):
        return pats[2]
    return grammar.pysocketio_channel if kind is ChannelKind.PYSOCKETIO else None


def arrow_table(cols: ColumnStore, meta: CaptureMeta) -> Any:
    """The pyarrow table of a store's records (decoded first), schema :data:`FILE_COLUMNS`."""
    pa = require("pyarrow", "notebook")
    import numpy as np

    dec = cols.decode()
    n = len(cols)
    times = np.frombuffer(cols.times, dtype=np.int64, count=n) if n else np.empty(0, np.int64)
    codes = np.frombuffer(cols.channel_codes, dtype=np.uint32, count=n).astype(np.int32)
    data: dict[str, Any] = {
        "time": pa.array(times, type=pa.timestamp("ns", tz="UTC")),
        "channel": pa.DictionaryArray.from_arrays(
            pa.array(codes, type=pa.int32()), pa.array(cols.channels, type=pa.binary())
        ),
        "payload": pa.array(list(cols.payloads()), type=pa.binary()),
        "sharded": pa.array(np.frombuffer(bytes(cols.sharded[:n]), dtype=np.bool_)),
    }
    for name in _DECODED:
        col = dec.categorical(name)
        idx = np.frombuffer(col.codes, dtype=np.int32, count=n) if n else np.empty(0, "i4")
        values = [safe.text(v if type(v) is str else str(v)) for v in col.values]
        data[name] = pa.DictionaryArray.from_arrays(
            pa.array(idx, type=pa.int32(), mask=idx < 0), pa.array(values, type=pa.string())
        )
    size = np.frombuffer(dec.size, dtype=np.int32, count=n) if n else np.empty(0, "i4")
    data["size"] = pa.array(size, type=pa.int32())
    table = pa.table(data)
    return table.replace_schema_metadata({_META_KEY: meta.to_json()})


def read_parquet(path: Path, into: ColumnStore) -> CaptureMeta:
    """Append the records of one parquet capture file to ``into``; returns its metadata.

    Raises:
        ConfigurationError: Not a capture file.
    """
    pq = require("pyarrow.parquet", "notebook")
    try:
        table = pq.read_table(path, columns=None)
    except Exception as exc:
        raise ConfigurationError(f"{str(path)!r} is not a parquet capture: {exc}") from exc
    meta = CaptureMeta.from_json((table.schema.metadata or {}).get(_META_KEY))
    add_arrow(table, into)
    return meta


def add_arrow(table: Any, into: ColumnStore) -> None:
    """Append the raw columns of a pyarrow table (file schema) to ``into``.

    Raises:
        ConfigurationError: The table lacks the raw columns.
    """
    pa = require("pyarrow", "notebook")
    import numpy as np

    if not {"time", "channel", "payload"} <= set(table.column_names):
        raise ConfigurationError("not a siotools capture (missing time/channel/payload columns)")
    n = table.num_rows
    if n == 0:
        return
    times = table.column("time").cast(pa.int64()).to_numpy()
    channel_col = table.column("channel").combine_chunks()
    if pa.types.is_dictionary(channel_col.type):
        names = channel_col.dictionary.to_pylist()
        local = channel_col.indices.to_numpy(zero_copy_only=False)
    else:
        values = channel_col.to_pylist()
        names = list(dict.fromkeys(values))
        pos = {c: i for i, c in enumerate(names)}
        local = np.array([pos[c] for c in values], dtype=np.int64)
    remap = np.array([into.channel_code(c) for c in names], dtype=np.uint32)
    codes = remap[local] if len(names) else np.empty(0, np.uint32)
    if "sharded" in table.column_names:
        sharded = table.column("sharded").to_numpy(zero_copy_only=False)
    else:
        sharded = np.zeros(n, dtype=bool)
    payloads = table.column("payload").to_pylist()
    into.extend_columns(
        np.ascontiguousarray(times, dtype=np.int64).tobytes(),
        np.ascontiguousarray(codes, dtype=np.uint32).tobytes(),
        payloads,
        np.asarray(sharded, dtype=np.uint8).tobytes(),
    )


def read_jsonl(path: Path, into: ColumnStore) -> None:
    """Append the records of a JSON-lines capture to ``into``.

    Raises:
        ConfigurationError: A line is not a capture record.
    """
    with path.open(encoding="utf-8") as lines:
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                t = int(rec["t_ns"]) if "t_ns" in rec else int(float(rec["t"]) * 1e9)
                if "channel_hex" in rec:
                    ch = bytes.fromhex(rec["channel_hex"])
                else:
                    ch = str(rec["channel"]).encode("utf-8", "surrogateescape")
                payload = bytes.fromhex(rec["data_hex"])
                sharded = bool(rec.get("sharded", rec.get("pattern", "*") is None))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigurationError(
                    f"{str(path)!r} line {lineno} is not a capture record"
                ) from exc
            into.append(t, ch, payload, sharded)


# --------------------------------------------------------------------------- rotation


class RotatingWriter:
    """Streams a live capture's records to rolling parquet files in a folder.

    The capture's sink asks :meth:`due` after each batch (cheap); the capture's control loop
    calls :meth:`flush_if_due`, which moves the rows held in memory into a file written by a
    worker thread, so memory stays bounded by about one rotation's worth of payloads.

    Args:
        folder: Where the files go (created if missing).
        cols: The live capture's column store.
        meta: Returns the capture's metadata (stored in every file).
        rotate: Rotation size in raw payload bytes (``"256MB"``...; default 256MB).

    Attributes:
        files: The files written so far.
        rows: Records written so far.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        cols: ColumnStore,
        meta: Callable[[], CaptureMeta],
        *,
        rotate: str | int | None = None,
    ) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigurationError(f"{str(self.folder)!r} is a file, not a folder for captures")
        if not self.folder.parent.is_dir():
            raise ConfigurationError(f"the folder of {str(self.folder)!r} does not exist")
        require("pyarrow", "notebook")
        self.folder.mkdir(exist_ok=True)
        self.limit = parse_size(rotate if rotate is not None else "256MB")
        self.cols = cols
        self.meta = meta
        self.files: list[Path] = []
        self.rows = 0
        self._stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self._due = False
        self._writing: asyncio.Task[None] | None = None

    def due(self) -> bool:
        """Whether the rows in memory reached the rotation size (cheap: bytes are counted
        incrementally)."""
        if not self._due and self.cols.nbytes >= self.limit:
            self._due = True
        return self._due

    def rotate_soon(self) -> None:
        """Mark a rotation as due (the control loop writes it)."""
        self._due = True

    async def flush_if_due(self) -> None:
        """Write the rows held in memory to a new file if a rotation is due."""
        if self._due:
            await self.flush()

    async def flush(self) -> None:
        """Move the rows in memory to a new file (written by a worker thread)."""
        await self._wait_written()  # one file at a time, in order
        self._due = False
        if not len(self.cols):
            return
        part = self.cols.detach()
        path = self.folder / f"capture-{self._stamp}-{len(self.files):05d}.parquet"
        self.files.append(path)
        self.rows += len(part)
        meta = self.meta()
        # Decoding and compressing a rotation takes seconds: off the loop, so the capture
        # keeps reading (and Redis does not kick it for a full output buffer).
        self._writing = asyncio.create_task(asyncio.to_thread(self._write, part, meta, path))

    @staticmethod
    def _write(part: ColumnStore, meta: CaptureMeta, path: Path) -> None:
        pq = require("pyarrow.parquet", "notebook")
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(arrow_table(part, meta), tmp, compression="zstd")
        tmp.replace(path)  # readers never see half a file
        log.info("capture: wrote %s (%d records)", path, len(part))

    async def _wait_written(self) -> None:
        task, self._writing = self._writing, None
        if task is None:
            return
        try:
            await task
        except OSError as exc:
            raise SiotoolsError(
                f"cannot write the capture file {str(self.files[-1])!r}: {exc.strerror or exc}; "
                "free some space or choose another folder (the files before it are complete)"
            ) from exc

    async def close(self) -> None:
        """Write what is left and wait for the last file.

        Raises:
            SiotoolsError: A file could not be written (disk full, permissions).
        """
        await self.flush()
        with contextlib.suppress(asyncio.CancelledError):
            await self._wait_written()
