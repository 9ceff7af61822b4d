"""SniffedFrame, describe(), filters and the JSON rendering."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from siotools.protocol import UNDEFINED, Dialect, TypedArray, decode, encode_broadcast
from siotools.sniffer import SniffFilter, describe, jsonable
from siotools.sniffer.capture import Decoder
from tests.protocol.vectors import all_messages

MESSAGES = all_messages()


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: m.id)
def test_describe_every_vector(msg: object) -> None:
    prefix = "myapp" if "myapp" in msg.scenario else "socket.io"  # type: ignore[attr-defined]
    sharded = "sharded" in msg.scenario  # type: ignore[attr-defined]
    frame = decode(
        msg.channel,  # type: ignore[attr-defined]
        msg.payload,  # type: ignore[attr-defined]
        prefix=prefix,
        dialect=Dialect.SHARDED if sharded else None,
    )
    row = describe(frame)
    assert row.kind in ("broadcast", "request", "response", "heartbeat")
    assert row.nsp in ("/", "/chat")
    json.dumps(jsonable(row._asdict()))
    if row.kind == "broadcast":
        assert row.event is not None or row.args == []


def test_sniffed_frame_fields() -> None:
    ch, p = encode_broadcast(uid="u", data=["e", 1], rooms=["r"], prefix="k")
    f = Decoder("k").frame(1_700_000_000_000_000_000, ch.encode(), p, False)
    assert f.ok and f.kind == "broadcast" and f.event == "e" and f.nsp == "/"
    assert f.time == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert f.pattern == "k#*" and f.size == len(p) and f.channel == "k#/#r#"
    bad = Decoder("k").frame(0, b"k#/#", b"\x01", False)
    assert not bad.ok and bad.error and bad.kind == "unknown" and bad.dialect is None


def test_filter() -> None:
    dec = Decoder("k")
    ch, p = encode_broadcast(uid="u", data=["e", 1], rooms=["r", "s"], nsp="/chat", prefix="k")
    f = dec.frame(0, ch.encode(), p, False)
    assert SniffFilter(room="s")(f) and SniffFilter(nsp="/chat", event="e")(f)
    assert not SniffFilter(room="x")(f) and not SniffFilter(kind="request")(f)
    assert SniffFilter().empty and not SniffFilter(nsp="/").empty


def test_jsonable() -> None:
    value = {
        "b": b"\x00\xff",
        "d": dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
        "u": UNDEFINED,
        "t": TypedArray("ArrayBuffer", b"\x01"),
        "l": (1, 2.5, None, True),
    }
    assert jsonable(value) == {
        "b": {"$bin": "AP8="},
        "d": "2024-01-02T00:00:00+00:00",
        "u": None,
        "t": {"$typed": "ArrayBuffer", "$bin": "AQ=="},
        "l": [1, 2.5, None, True],
    }
