"""``Capture.to_pandas()``: one row per message, built column by column.

Columns (in this order):

=============  ========================  ===================================================
column         dtype                     content
=============  ========================  ===================================================
time           datetime64[ns, UTC]       receive time (MONITOR: the server's timestamp)
channel        category                  the Redis channel
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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

from siotools._extras import require
from siotools.protocol import safe
from siotools.sniffer.columns import ANOMALIES, Interned

if TYPE_CHECKING:
    import pandas

    from siotools.sniffer.capture import Capture, Progress

__all__ = ["COLUMNS", "to_pandas"]

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


def to_pandas(cap: Capture, *, progress: Progress = None) -> pandas.DataFrame:
    """Build the DataFrame of ``cap`` (see the module docstring for the columns)."""
    pd = require("pandas", "notebook")
    np = require("numpy", "notebook")
    cols = cap._decoded(progress)
    anomaly = cap._anomaly_codes()
    n = len(cols)

    def obj(values: list[Any]) -> Any:
        # fromiter never tries to make a 2-D array out of equal-length lists.
        return np.fromiter(values, dtype=object, count=n)

    def cat(column: Interned) -> Any:
        codes = np.frombuffer(column.codes, dtype=np.int32, count=n) if n else np.empty(0, "i4")
        try:
            values = [safe.text(v) if type(v) is str else v for v in column.values]
            return pd.Categorical.from_codes(codes, categories=values)
        except (TypeError, ValueError):  # values pandas will not take as categories
            return obj([column.value(i) for i in range(n)])

    times = np.frombuffer(cap._times, dtype=np.int64, count=n) if n else np.empty(0, np.int64)
    time_col = pd.Series(pd.DatetimeIndex(times.view("datetime64[ns]")).tz_localize("UTC"))
    codes = np.frombuffer(cap._codes, dtype=np.uint32, count=n).astype(np.int32)
    names = [safe.text(cap.decoder.channel_text(c)) for c in cap._channels]
    data: dict[str, Any] = {
        "time": time_col.astype("datetime64[ns, UTC]"),
        "channel": pd.Categorical.from_codes(codes, categories=names),
        "kind": cat(cols.kind),
        "dialect": cat(cols.dialect),
        "nsp": cat(cols.nsp),
        "rooms": cols.object_array("rooms"),
        "except": cols.object_array("except"),
        "event": cat(cols.event),
        "args": cols.object_array("args"),
        "flags": cols.object_array("flags"),
        "uid": cat(cols.uid),
        "request_id": cat(cols.request_id),
        "type": cat(cols.type),
        "frame": cat(cols.frame),
        "size": np.frombuffer(cols.size, dtype=np.int32, count=n) if n else np.empty(0, "i4"),
        "error": cat(cols.error),
        "anomaly": pd.Categorical.from_codes(
            np.frombuffer(anomaly, dtype=np.int8, count=n) if n else np.empty(0, "i1"),
            categories=list(ANOMALIES),
        ),
    }
    gap_s = np.full(n, np.nan)
    for start, end in cap.gaps:
        i = int(np.searchsorted(times, end, side="left"))
        if i < n:
            gap_s[i] = (end - start) / 1e9
    data["gap_s"] = gap_s
    frame = pd.DataFrame(data, columns=list(COLUMNS), copy=False)
    frame.attrs["gaps"] = [
        (pd.Timestamp(a, unit="ns", tz="UTC"), pd.Timestamp(b, unit="ns", tz="UTC"))
        for a, b in cap.gaps
    ]
    return cast("pandas.DataFrame", frame)
