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
request_id     string                    request / response correlation id
type           category                  readable type: EVENT, ALL_ROOMS, ROOMS, ...
frame          category                  the protocol frame class name
size           int32                     payload bytes
error          string                    why decoding failed (else <NA>)
anomaly        category                  undecodable, mixed_dialect, unanswered (else NaN)
=============  ========================  ===================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

from siotools._extras import require

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
)

# Positions in the decoded row tuples (see capture._decoded_rows).
_ROW = {
    "kind": 0,
    "nsp": 1,
    "rooms": 2,
    "except": 3,
    "event": 4,
    "args": 5,
    "flags": 6,
    "uid": 7,
    "request_id": 8,
    "type": 9,
    "dialect": 10,
    "frame": 11,
    "error": 13,
}
_CATEGORICAL: Final = ("kind", "dialect", "nsp", "event", "uid", "type", "frame")
_OBJECT: Final = ("rooms", "except", "args", "flags")
_STRING: Final = ("request_id", "error")


def to_pandas(cap: Capture, *, progress: Progress = None) -> pandas.DataFrame:
    """Build the DataFrame of ``cap`` (see the module docstring for the columns)."""
    pd = require("pandas", "notebook")
    np = require("numpy", "notebook")
    rows = cap._decoded_rows(progress)
    n = min(len(rows), len(cap._payloads))
    flags, _ = cap._anomaly_flags()
    # Transposing the row tuples is one C-level pass; columns are then built whole.
    cols = list(zip(*rows[:n], strict=True)) if n else [() for _ in range(14)]

    def obj(values: Any) -> Any:
        # fromiter never tries to make a 2-D array out of equal-length lists.
        return np.fromiter(values, dtype=object, count=n)

    data: dict[str, Any] = {}
    times = np.frombuffer(cap._times, dtype=np.int64, count=n) if n else np.empty(0, np.int64)
    data["time"] = pd.Series(
        pd.DatetimeIndex(times.view("datetime64[ns]")).tz_localize("UTC"),
        copy=False,
    ).astype("datetime64[ns, UTC]")
    codes = np.frombuffer(cap._codes, dtype=np.uint32, count=n).astype(np.int32)
    names = [cap.decoder.channel_text(c) for c in cap._channels]
    data["channel"] = (
        pd.Categorical.from_codes(codes, categories=names) if names else (pd.Categorical([]))
    )
    for name in ("kind", "dialect", "nsp"):
        data[name] = _categorical(pd, obj(cols[_ROW[name]]))
    for name in ("rooms", "except"):
        data[name] = obj(cols[_ROW[name]])
    data["event"] = _categorical(pd, obj(cols[_ROW["event"]]))
    for name in ("args", "flags"):
        data[name] = obj(cols[_ROW[name]])
    data["uid"] = _categorical(pd, obj(cols[_ROW["uid"]]))
    data["request_id"] = _string(pd, obj(cols[_ROW["request_id"]]))
    data["type"] = _categorical(pd, obj(cols[_ROW["type"]]))
    data["frame"] = _categorical(pd, obj(cols[_ROW["frame"]]))
    data["size"] = np.fromiter(map(len, cap._payloads[:n]), dtype=np.int32, count=n)
    data["error"] = _string(pd, obj(cols[_ROW["error"]]))
    data["anomaly"] = pd.Categorical(
        obj(flags[:n]), categories=["undecodable", "mixed_dialect", "unanswered"]
    )
    frame = pd.DataFrame(data, columns=list(COLUMNS), copy=False)
    return cast("pandas.DataFrame", frame)


def _categorical(pd: Any, arr: Any) -> Any:
    try:
        return pd.Categorical(arr)
    except TypeError:  # unhashable values (an object used as an event name)
        return arr


def _string(pd: Any, arr: Any) -> Any:
    try:
        return pd.array(arr, dtype="string")
    except (TypeError, ValueError):
        return arr
