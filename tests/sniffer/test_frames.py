"""SniffedFrame, describe(), filters and the JSON rendering."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import siotools.protocol as P
from siotools.protocol import UNDEFINED, Dialect, TypedArray, decode, encode_broadcast
from siotools.protocol.frames import FRAME_KINDS
from siotools.protocol.streams import StreamMessage
from siotools.sniffer import SniffFilter, describe, jsonable
from siotools.sniffer.capture import Decoder
from siotools.sniffer.frames import Row, expects_response
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


# One frame of every kind decode returns, and the row fields it must give: the table's
# columns for the shapes the vectors do not hold (7.x single-room forms, targets in opts).
_R = Row
_KIND_ROWS: list[tuple[P.Frame, Row]] = [
    (P.LegacyClientsRequest(request_id="1", rooms=("a",)),
     _R("request", "/", ["a"], None, None, None, None, None, "1", "CLIENTS")),
    (P.LegacyClientRoomsRequest(request_id="1", sid="s"),
     _R("request", "/", None, None, None, None, None, None, "1", "CLIENT_ROOMS")),
    (P.LegacyAllRoomsRequest(request_id="1", nsp="/n"),
     _R("request", "/n", None, None, None, None, None, None, "1", "ALL_ROOMS")),
    (P.LegacyRemoteJoinRequest(request_id="1", sid="s", room="r"),
     _R("request", "/", ["r"], None, None, None, None, None, "1", "REMOTE_JOIN")),
    (P.LegacyRemoteLeaveRequest(request_id="1", sid="s", room=None),
     _R("request", "/", None, None, None, None, None, None, "1", "REMOTE_LEAVE")),
    (P.LegacyCustomRequest(request_id="1", data={"q": 1}),
     _R("request", "/", None, None, None, {"q": 1}, None, None, "1", "CUSTOM_REQUEST")),
    (P.LegacyRemoteDisconnectRequest(request_id="1", sid="s"),
     _R("request", "/", None, None, None, None, None, None, "1", "REMOTE_DISCONNECT")),
    (P.LegacyClientsResponse(request_id="1", clients=("c",)),
     _R("response", "/", None, None, None, ["c"], None, None, "1", "CLIENTS")),
    (P.LegacyRoomsResponse(request_id="1", rooms=("r",)),
     _R("response", "/", ["r"], None, None, None, None, None, "1", "ROOMS")),
    (P.LegacyDataResponse(request_id="1", data=[2]),
     _R("response", "/", None, None, None, [2], None, None, "1", "DATA")),
    (P.LegacyEmptyResponse(request_id="1"),
     _R("response", "/", None, None, None, None, None, None, "1", "EMPTY")),
    (P.SocketsRequest(uid="u", request_id="1", rooms=("r",)),
     _R("request", "/", ["r"], None, None, None, None, "u", "1", "SOCKETS")),
    (P.AllRoomsRequest(uid="u", request_id="1"),
     _R("request", "/", None, None, None, None, None, "u", "1", "ALL_ROOMS")),
    (P.RemoteJoinRequest(uid="u", request_id="1", sid="s", room="r"),
     _R("request", "/", ["r"], None, None, None, None, "u", "1", "REMOTE_JOIN")),
    (P.RemoteLeaveRequest(uid="u", rooms=("x",), opts={"rooms": ["a"], "except": ["b"]}),
     _R("request", "/", ["x"], ["b"], None, None, None, "u", None, "REMOTE_LEAVE")),
    (P.RemoteJoinRequest(opts={"rooms": ["a"], "except": ["b"]}),
     _R("request", "/", ["a"], ["b"], None, None, None, None, None, "REMOTE_JOIN")),
    (P.RemoteDisconnectRequest(uid="u", opts={"rooms": ["a"], "except": ["b"]}, close=True),
     _R("request", "/", ["a"], ["b"], None, None, None, "u", None, "REMOTE_DISCONNECT")),
    (P.RemoteDisconnectRequest(uid="u", request_id="1", sid="s"),
     _R("request", "/", None, None, None, None, None, "u", "1", "REMOTE_DISCONNECT")),
    (P.RemoteFetchRequest(uid="u", request_id="1", opts={"rooms": ["a"], "except": ["b"]}),
     _R("request", "/", ["a"], ["b"], None, None, None, "u", "1", "REMOTE_FETCH")),
    (P.ServerSideEmitRequest(uid="u", data=["ev", 1], request_id="1"),
     _R("request", "/", None, None, "ev", [1], None, "u", "1", "SERVER_SIDE_EMIT")),
    (P.ServerSideEmitRequest(uid="u", data=[]),
     _R("request", "/", None, None, None, None, None, "u", None, "SERVER_SIDE_EMIT")),
    (P.BroadcastAckRequest(uid="u", request_id="1", packet={"data": ["ev", 2]},
                           opts={"rooms": ["r"], "except": [], "flags": {"f": 1}}),
     _R("request", "/", ["r"], [], "ev", [2], {"f": 1}, "u", "1", "BROADCAST")),
    (P.SocketsResponse(request_id="1", sockets=("s",), to_uid="t"),
     _R("response", "/", None, None, None, ["s"], None, "t", "1", "SOCKETS")),
    (P.RoomsResponse(request_id="1", rooms=("r",)),
     _R("response", "/", ["r"], None, None, None, None, None, "1", "ROOMS")),
    (P.EmptyResponse(request_id="1", to_uid="t"),
     _R("response", "/", None, None, None, None, None, "t", "1", "EMPTY")),
    (P.ServerSideEmitResponse(request_id="1", data=3),
     _R("response", "/", None, None, None, 3, None, None, "1", "SERVER_SIDE_EMIT")),
    (P.BroadcastClientCountResponse(request_id="1", client_count=4),
     _R("response", "/", None, None, None, 4, None, None, "1", "BROADCAST_CLIENT_COUNT")),
    (P.BroadcastAckResponse(request_id="1", packet=["a"]),
     _R("response", "/", None, None, None, ["a"], None, None, "1", "BROADCAST_ACK")),
    (P.Broadcast(uid="u", packet={"type": 5, "data": ["ev", b"x"]}, opts={"rooms": ["r"]}),
     _R("broadcast", "/", ["r"], [], "ev", [b"x"], {}, "u", None, "BINARY_EVENT")),
    (P.ClusterMessage(type=3, data={"packet": {"data": ["ev"]}, "opts": {}}, uid="u",
                      target="r"),
     _R("broadcast", "/", ["r"], None, "ev", [], None, "u", None, "BROADCAST")),
    (StreamMessage(type=7, data={"requestId": "1", "opts": {"rooms": ["r"]}}, uid="u"),
     _R("request", "/", ["r"], None, None, None, None, "u", "1", "FETCH_SOCKETS")),
    (P.ClusterMessage(type=42, data=UNDEFINED, uid="u"),
     _R("unknown", "/", None, None, None, None, None, "u", None, "42")),
    (P.PySocketIOMessage(method="emit", body={"event": "ev", "data": [1], "room": "r",
                                              "skip_sid": "s", "namespace": "/n",
                                              "host_id": "h"}),
     _R("broadcast", "/n", ["r"], ["s"], "ev", [1], None, "h", None, "emit")),
    (P.PickledMessage(payload=b"x"),
     _R("unknown", None, None, None, None, None, None, None, None, "pickle")),
    (P.Frame(), _R("unknown", None, None, None, None, None, None, None, None, None)),
]  # fmt: skip


@pytest.mark.parametrize(("frame", "want"), _KIND_ROWS, ids=lambda v: type(v).__name__)
def test_describe_every_frame_kind(frame: P.Frame, want: Row) -> None:
    row = describe(frame)
    assert type(row) is Row and row == want


def test_describe_covers_every_frame_kind() -> None:
    described = {type(f) for f, want in _KIND_ROWS if want.kind != "unknown" or want.type}
    assert set(FRAME_KINDS) <= described


@pytest.mark.parametrize(
    ("frame", "answered"),
    [
        (P.LegacyCustomRequest(request_id="1"), True),
        (P.RemoteFetchRequest(uid="u", request_id="1"), True),
        (P.ServerSideEmitRequest(uid="u", data=["ev"]), False),  # no ack asked
        (P.ServerSideEmitRequest(uid="u", data=["ev"], request_id="1"), True),
        (P.RemoteJoinRequest(uid="u", request_id="1", sid="s", room="r"), False),
        (P.SocketsResponse(request_id="1", sockets=()), False),
        (P.ClusterMessage(type=7, data={"requestId": "1"}, uid="u"), True),
        (P.ClusterMessage(type=4, data={"requestId": "1"}, uid="u"), False),
        (P.Broadcast(uid="u", packet={}, opts={}), False),
    ],
    ids=repr,
)
def test_expects_response(frame: P.Frame, answered: bool) -> None:
    assert expects_response(frame) is answered
