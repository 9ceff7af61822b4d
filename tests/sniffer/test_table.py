"""Capture.to_pandas: columns, dtypes, values."""

from __future__ import annotations

import pandas as pd

from siotools.protocol import Dialect, encode_broadcast
from siotools.sniffer import Capture
from siotools.sniffer.table import COLUMNS


def test_columns_and_dtypes() -> None:
    cap = Capture(prefix="socket.io")
    ch, p = encode_broadcast(
        uid="Ab3_xZ",
        data=["news", 1, b"\x00"],
        rooms=["r1", "r2"],
        except_=["r3"],
        flags={"volatile": True},
        dialect=Dialect.CURRENT,
    )
    cap.append(1_700_000_000_123_456_789, ch.encode(), p)
    cap.append(
        1_700_000_001_000_000_000, b"socket.io-request#/chat#", b'{"requestid":"q1","type":0}'
    )
    cap.append(1_700_000_002_000_000_000, b"socket.io#/#", b"\x00")
    df = cap.to_pandas(progress="text")
    assert list(df.columns) == list(COLUMNS)
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert df["time"][0] == pd.Timestamp(1_700_000_000_123_456_789, unit="ns", tz="UTC")
    for col in ("channel", "kind", "dialect", "nsp", "event", "uid", "type", "frame", "anomaly"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
    assert str(df["size"].dtype) == "int32" and df["size"].tolist() == [len(p), 27, 1]
    row = df.iloc[0]
    assert (row["kind"], row["dialect"], row["nsp"], row["event"]) == (
        "broadcast",
        "current",
        "/",
        "news",
    )
    assert row["rooms"] == ["r1", "r2"] and row["except"] == ["r3"]
    assert row["args"] == [1, b"\x00"] and row["flags"] == {"volatile": True}
    assert row["uid"] == "Ab3_xZ" and row["type"] == "EVENT" and row["frame"] == "Broadcast"
    req = df.iloc[1]
    assert (req["kind"], req["nsp"], req["request_id"], req["type"]) == (
        "request",
        "/chat",
        "q1",
        "CLIENTS",
    )
    bad = df.iloc[2]
    assert bad["kind"] == "unknown" and bad["anomaly"] == "undecodable"
    assert isinstance(bad["error"], str) and pd.isna(bad["dialect"])
    # A second call reuses the decoded columns and gives the same table.
    pd.testing.assert_frame_equal(df, cap.to_pandas())


def test_empty_capture() -> None:
    df = Capture().to_pandas()
    assert list(df.columns) == list(COLUMNS) and len(df) == 0
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"


def test_decoding_grows_with_the_capture() -> None:
    cap = Capture()
    for i in range(3):
        ch, p = encode_broadcast(uid="u", data=["e", i])
        cap.append(i, ch.encode(), p)
        assert cap.to_pandas()["args"].tolist() == [[j] for j in range(i + 1)]
