"""``Capture.to_pandas()``: one row per message, built from the column store's arrays.

Columns (in this order):

=============  ========================  ===================================================
column         dtype                     content
=============  ========================  ===================================================
time           datetime64[ns, UTC]       receive time (MONITOR: the server's timestamp)
channel        category                  the Redis channel (bad bytes shown as ``\\xff``)
kind           category                  broadcast, request, response, heartbeat, unknown
dialect        category                  legacy, legacy-lite, current, sharded, pysocketio
nsp            category                  namespace
rooms          object                    target rooms (list) or None
except         object                    excluded rooms / socket ids (list) or None
event          category (object if not   event name of a broadcast / server-side emit
               hashable)
args           object                    event arguments, or a response's payload
flags          object                    broadcast flags (dict) or None
uid            category                  sender uid (response: addressee; python: host_id)
request_id     category                  request / response correlation id
type           category                  readable type: EVENT, ALL_ROOMS, ROOMS, ...
frame          category                  the protocol frame class name
size           int32                     payload bytes
error          category                  why decoding failed (else NaN)
anomaly        category                  undecodable, mixed_dialect, unanswered (else NaN)
gap_s          float64                   on the first row after a reconnect: the seconds
                                         missed before it (from the last message before the
                                         loss to this one), else NaN
=============  ========================  ===================================================

``df.attrs["gaps"]`` lists the capture's gaps as ``(start, end)`` UTC timestamps.

Categorical labels are made printable (lone surrogates and undecodable bytes shown as
escapes, see :mod:`siotools.protocol.safe`); so are strings inside the object cells of
requests and responses, the only frames (JSON) that can carry them.

``where`` selects rows before any object column is decoded (see :data:`Where`).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

from siotools._extras import require
from siotools.exceptions import ConfigurationError
from siotools.protocol import safe
from siotools.sniffer.columns import ANOMALIES, OBJECT_COLUMNS, ColumnStore, Interned

if TYPE_CHECKING:
    import pandas

__all__ = ["CATEGORICAL", "COLUMNS", "FILTERABLE", "Where", "to_pandas"]

COLUMNS: Final = (
    "time",
    "channel",
    "kind",
    "dialect",
    "nsp",
    "rooms",
    "except",
    "event",
    "args",
    "flags",
    "uid",
    "request_id",
    "type",
    "frame",
    "size",
    "error",
    "anomaly",
    "gap_s",
)

CATEGORICAL: Final = ("kind", "dialect", "nsp", "event", "uid", "request_id", "type", "frame")
"""Decoded categorical columns (also stored, as dictionary strings, in parquet files)."""

FILTERABLE: Final = ("channel", "kind", "dialect", "nsp", "event", "uid", "type", "frame")
"""Columns ``where`` may name, besides ``since``/``until``."""

Where = Mapping[str, Any]
"""A row filter: ``{column: value or list of values, "since": t, "until": t}``.

Columns are those of :data:`FILTERABLE`; ``since``/``until`` bound the receive time
(inclusive / exclusive) and take epoch nanoseconds, a datetime or anything
``pandas.Timestamp`` reads (naive means UTC). Every condition must hold.
"""


def time_bound(value: Any) -> int:
    """``since``/``until`` as epoch nanoseconds."""
    if isinstance(value, int):
        return value
    pd = require("pandas", "notebook")
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value)


def check_where(where: Where | None) -> dict[str, Any]:
    """``where`` validated: values as lists, time bounds as ns. Raises ConfigurationError."""
    out: dict[str, Any] = {}
    for k, v in (where or {}).items():
        if k in ("since", "until"):
            out[k] = time_bound(v)
        elif k in FILTERABLE:
            out[k] = list(v) if isinstance(v, (list, tuple, set, frozenset)) else [v]
        else:
            raise ConfigurationError(
                f"cannot filter on {k!r}: use since, until or one of {', '.join(FILTERABLE)}"
            )
    return out


def check_columns(columns: Iterable[str] | None) -> list[str]:
    """The requested columns in table order. Raises ConfigurationError for unknown ones."""
    if columns is None:
        return list(COLUMNS)
    wanted = list(columns)
    unknown = [c for c in wanted if c not in COLUMNS]
    if unknown:
        raise ConfigurationError(
            f"no column {unknown[0]!r} in a capture table; columns: {', '.join(COLUMNS)}"
        )
    return [c for c in COLUMNS if c in wanted]


def _mask(store: ColumnStore, names: list[str], where: dict[str, Any], n: int) -> Any:
    """The rows (numpy indices) matching ``where``, or None for all."""
    np = require("numpy", "notebook")
    if not where:
        return None
    keep = np.ones(n, dtype=bool)
    times = np.frombuffer(store.times, dtype=np.int64, count=n) if n else np.empty(0, np.int64)
    if "since" in where:
        keep &= times >= where["since"]
    if "until" in where:
        keep &= times < where["until"]
    for name, values in where.items():
        if name in ("since", "until"):
            continue
        if name == "channel":
            labels = names
            codes = np.frombuffer(store.channel_codes, dtype=np.uint32, count=n).astype(np.int64)
        else:
            col = store.decoded.categorical(name)
            labels = col.values
            codes = np.frombuffer(col.codes, dtype=np.int32, count=n) if n else np.empty(0, "i4")
        wanted = set(values)
        hits = [
            i
            for i, v in enumerate(labels)
            if v in wanted or (type(v) is str and safe.text(v) in wanted)
        ]
        keep &= np.isin(codes, np.array(hits, dtype=np.int64))
    return np.flatnonzero(keep)


def to_pandas(
    store: ColumnStore,
    anomaly: Callable[[], array[int]],
    *,
    names: list[str],
    gaps: list[tuple[int, int]],
    columns: Iterable[str] | None = None,
    where: Where | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> pandas.DataFrame:
    """Build the DataFrame of a decoded store (see the module docstring for the columns).

    Args:
        store: The column store (decoded here as far as needed).
        anomaly: Gives the anomaly code of each row (once the store is decoded).
        names: The printable name of each channel code.
        gaps: The capture's gaps.
        columns: Only these columns.
        where: Only these rows.
        on_chunk: Called with the number of rows decoded, chunk by chunk (progress).
    """
    pd = require("pandas", "notebook")
    np = require("numpy", "notebook")
    wanted = check_columns(columns)
    flt = check_where(where)
    n = len(store)
    need_objects = [c for c in wanted if c in OBJECT_COLUMNS]
    objs: dict[str, list[Any]] | None = None
    if need_objects and not flt:
        # One pass decodes the objects and fills the cached columns on the way.
        objs = store.objects(0, n, on_chunk)
    store.decode(n, on_chunk if objs is None else None)
    rows = _mask(store, names, flt, n)
    cols = store.decoded

    def pick(a: Any) -> Any:
        return a if rows is None else a[rows]

    def cat(column: Interned) -> Any:
        codes = np.frombuffer(column.codes, dtype=np.int32, count=n) if n else np.empty(0, "i4")
        try:
            values = [safe.text(v) if type(v) is str else v for v in column.values]
            return pd.Categorical.from_codes(pick(codes), categories=values)
        except (TypeError, ValueError):  # values pandas will not take as categories
            idx = range(n) if rows is None else rows
            return np.fromiter((column.value(int(i)) for i in idx), dtype=object)

    times = np.frombuffer(store.times, dtype=np.int64, count=n) if n else np.empty(0, np.int64)
    data: dict[str, Any] = {}
    if need_objects:
        if objs is None:
            # Only the selected rows are decoded again.
            objs = store.objects(0, n) if rows is None else store.objects_at(map(int, rows))
        k = n if rows is None else len(rows)
        for c in need_objects:
            # fromiter never tries to make a 2-D array out of equal-length lists.
            data[c] = np.fromiter(objs[c], dtype=object, count=k)
        del objs
    for c in wanted:
        if c in data:
            continue
        if c == "time":
            t = pd.DatetimeIndex(pick(times).view("datetime64[ns]")).tz_localize("UTC")
            data[c] = pd.Series(t).astype("datetime64[ns, UTC]")
        elif c == "channel":
            codes = np.frombuffer(store.channel_codes, dtype=np.uint32, count=n).astype(np.int32)
            try:
                data[c] = pd.Categorical.from_codes(pick(codes), categories=names)
            except ValueError:  # two channels shown alike
                data[c] = np.array([names[i] for i in pick(codes)], dtype=object)
        elif c == "size":
            size = np.frombuffer(cols.size, dtype=np.int32, count=n) if n else np.empty(0, "i4")
            data[c] = pick(size)
        elif c == "error":
            data[c] = cat(cols.error)
        elif c == "anomaly":
            codes = np.frombuffer(anomaly(), dtype=np.int8, count=n) if n else np.empty(0, "i1")
            data[c] = pd.Categorical.from_codes(pick(codes), categories=list(ANOMALIES))
        elif c == "gap_s":
            gap_s = np.full(n, np.nan)
            for start, end in gaps:
                i = int(np.searchsorted(times, end, side="left"))
                if i < n:
                    gap_s[i] = (end - start) / 1e9
            data[c] = pick(gap_s)
        else:
            data[c] = cat(cols.categorical(c))
    frame = pd.DataFrame(data, columns=wanted, copy=False)
    if rows is not None:
        frame.index = pd.RangeIndex(len(frame))
    frame.attrs["gaps"] = [
        (pd.Timestamp(a, unit="ns", tz="UTC"), pd.Timestamp(b, unit="ns", tz="UTC"))
        for a, b in gaps
    ]
    return cast("pandas.DataFrame", frame)
