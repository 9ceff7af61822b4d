"""The column store: its documented schema, chunked payloads, decoded columns on demand."""

from __future__ import annotations

import pytest

from siotools.protocol import encode_broadcast
from siotools.sniffer import Capture
from siotools.sniffer.columns import CHUNK, OBJECT_COLUMNS, ColumnStore, RowDecoder
from siotools.sniffer.table import CATEGORICAL, COLUMNS
from tests.protocol.vectors import all_messages


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


def _cell(value: object) -> object:
    # A missing categorical is NaN in the table, None in a frame's row.
    return None if isinstance(value, float) and value != value else value


@pytest.mark.parametrize("group", sorted({m.group for m in all_messages()}))
def test_table_matches_typed_frames_on_every_vector(group: str) -> None:
    # The table's columns come from the bulk decode (broadcasts read without a frame,
    # repeated payloads decoded once); a typed frame is decoded alone: both must agree on
    # every real message, read once (every payload new) and again (the repeat caches).
    msgs = [m for m in all_messages() if m.group == group]
    for prefix in ("socket.io", "myapp"):
        mine = [m for m in msgs if ("myapp" in m.scenario) == (prefix == "myapp")]
        if not mine:
            continue
        cap = Capture(prefix=prefix)
        for rnd in range(2):
            for k, m in enumerate(mine):
                sharded = "sharded" in m.scenario
                cap.append(rnd * 10_000 + k, m.channel.encode(), bytes(m.payload), sharded)
        df = cap.to_pandas()
        assert len(df) == 2 * len(mine)
        for i in range(len(df)):
            f = cap.frame(i)
            got = {c: _cell(df[c].iat[i]) for c in df.columns}
            assert got["size"] == f.size and got["error"] == f.error, i
            assert got["dialect"] == (f.dialect.value if f.dialect is not None else None), i
            assert got["frame"] == (type(f.frame).__name__ if f.frame is not None else None), i
            row = f.row
            for col, want in (
                ("kind", row.kind), ("nsp", row.nsp), ("event", row.event), ("uid", row.uid),
                ("request_id", row.request_id), ("type", row.type), ("rooms", row.rooms),
                ("except", row.except_), ("args", row.args), ("flags", row.flags),
            ):  # fmt: skip
                assert got[col] == want, (mine[i % len(mine)].id, col, got[col], want)
