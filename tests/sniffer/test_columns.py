"""The column store: its documented schema, chunked payloads, decoded columns on demand."""

from __future__ import annotations

import pytest

from siotools.protocol import encode_broadcast
from siotools.sniffer import Capture
from siotools.sniffer.columns import CHUNK, OBJECT_COLUMNS, ColumnStore, RowDecoder
from siotools.sniffer.table import CATEGORICAL, COLUMNS


def records(n: int, key: str = "socket.io") -> list[tuple[int, bytes, bytes, bool]]:
    out = []
    for i in range(n):
        ch, p = encode_broadcast(uid="u1", data=["ev", {"n": i}], rooms=[f"r{i % 3}"], prefix=key)
        out.append((1_000 + i, ch.encode(), p, False))
    return out


def test_raw_columns_survive_chunking() -> None:
    store = ColumnStore(RowDecoder("socket.io"))
    recs = records(CHUNK + 10)
    store.extend(recs)
    assert len(store) == CHUNK + 10 and len(store.times) == CHUNK + 10
    assert store.record(0) == recs[0] and store.record(CHUNK + 3) == recs[CHUNK + 3]
    assert list(store.records(CHUNK - 2, CHUNK + 2)) == recs[CHUNK - 2 : CHUNK + 2]
    assert store.nbytes == sum(len(r[2]) for r in recs)
    assert store.channels == [recs[i][1] for i in range(3)]
    assert [store.channels[c] for c in store.channel_codes[:6]] == [r[1] for r in recs[:6]]
    store.truncate(5)
    assert list(store.records()) == recs[:5]


def test_decoded_columns_match_typed_frames() -> None:
    cap = Capture()
    cap.extend(records(50))
    dec = cap.decoded()
    assert len(dec) == 50
    for i in (0, 7, 49):
        f = cap.frame(i)
        row = f.row
        assert dec.event.value(i) == row.event == "ev"
        assert dec.nsp.value(i) == row.nsp and dec.uid.value(i) == row.uid
        assert dec.kind.value(i) == "broadcast" and dec.size[i] == f.size
    # Object columns are not kept: decoded again on demand, equal to the frames' fields.
    objs = cap.columns.objects(10, 13)
    assert set(objs) == set(OBJECT_COLUMNS)
    assert objs["args"] == [cap.frame(i).row.args for i in (10, 11, 12)]
    assert objs["rooms"] == [["r1"], ["r2"], ["r0"]]


def test_table_schema_and_projection() -> None:
    cap = Capture()
    cap.extend(records(30))
    df = cap.to_pandas()
    assert list(df.columns) == list(COLUMNS)
    for c in CATEGORICAL:
        assert str(df[c].dtype) == "category", c
    assert str(df["time"].dtype) == "datetime64[ns, UTC]" and str(df["size"].dtype) == "int32"
    small = cap.to_pandas(["event", "time"])
    assert list(small.columns) == ["time", "event"]  # table order
    only = cap.to_pandas(["args", "rooms"], where={"event": "ev", "since": 1_010, "until": 1_013})
    assert list(only["args"]) == [[{"n": 10}], [{"n": 11}], [{"n": 12}]]
    assert len(cap.to_pandas(where={"event": "nope"})) == 0
    with pytest.raises(Exception, match="no column 'bogus'"):
        cap.to_pandas(["bogus"])
    with pytest.raises(Exception, match="cannot filter on 'args'"):
        cap.to_pandas(where={"args": 1})


def test_identical_payloads_decode_alike() -> None:
    cap = Capture()
    rec = records(1)[0]
    for i in range(10):
        cap.append(i, rec[1], bytes(memoryview(rec[2])))
    df = cap.to_pandas()
    assert list(df["event"]) == ["ev"] * 10 and list(df["args"]) == [[{"n": 0}]] * 10


def test_oversized_payloads_are_counted_not_decoded() -> None:
    cap = Capture(max_size=200)
    small = records(1)[0]
    ch, big = encode_broadcast(uid="u", data=["big", "x" * 1000], prefix="socket.io")
    cap.append(1, small[1], small[2])
    cap.append(2, ch.encode(), big)
    an = cap.anomalies()
    assert an["oversized"] == 1 and an["undecodable"] == 1
    df = cap.to_pandas(["event", "error", "size"])
    assert df["event"].iloc[0] == "ev" and str(df["event"].iloc[1]) == "nan"
    assert "max_size" in str(df["error"].iloc[1]) and df["size"].iloc[1] == len(big)
    assert cap.columns.payload(1) == big  # kept raw: nothing lost
    assert "max_size" in str(cap.frame(1).error)
