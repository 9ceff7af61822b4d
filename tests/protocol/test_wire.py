"""decode/encode: round trips for every frame kind, detection, errors, helpers."""

from __future__ import annotations

import pickle
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import siotools.protocol as P
from siotools.exceptions import DecodeError, EncodeError
from siotools.protocol import UNDEFINED, Dialect, decode, encode

IDS = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=6, max_size=6
)
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=10)
NSP = st.sampled_from(["/", "/chat", "/é"])
PREFIX = st.sampled_from(["socket.io", "myapp", "a*b"])
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(TEXT, kids, max_size=3),
    max_leaves=8,
)
ROOMS = st.lists(TEXT, max_size=3).map(tuple)
SELECTOR = st.fixed_dictionaries(
    {"rooms": st.lists(TEXT, max_size=2), "except": st.lists(TEXT, max_size=2)}
)
COMMON = {"nsp": NSP, "prefix": PREFIX}
TO_UID = st.none() | IDS


def legacy(cls: Any, **kw: Any) -> st.SearchStrategy[Any]:
    return st.builds(cls, request_id=IDS, **kw, **COMMON)


FRAMES: list[st.SearchStrategy[Any]] = [
    st.builds(
        P.make_broadcast,
        uid=IDS | st.just("emitter"),
        data=st.lists(JSON_VALUE | st.binary(max_size=5), min_size=1, max_size=3),
        rooms=st.lists(TEXT, max_size=3, unique=True),
        except_=st.lists(TEXT, max_size=2, unique=True),
        flags=st.dictionaries(st.sampled_from(["volatile", "compress", "timeout"]), st.booleans()),
        dialect=st.sampled_from([Dialect.LEGACY, Dialect.CURRENT, Dialect.LEGACY_LITE]),
        **COMMON,
    ),
    legacy(P.LegacyClientsRequest, rooms=ROOMS),
    legacy(P.LegacyClientRoomsRequest, sid=TEXT),
    legacy(P.LegacyAllRoomsRequest),
    legacy(P.LegacyRemoteJoinRequest, sid=TEXT, room=TEXT),
    legacy(P.LegacyRemoteLeaveRequest, sid=TEXT, room=TEXT),
    legacy(P.LegacyCustomRequest, data=JSON_VALUE | st.just(UNDEFINED)),
    legacy(
        P.LegacyRemoteDisconnectRequest, sid=TEXT, close=st.sampled_from([True, False, UNDEFINED])
    ),
    legacy(P.LegacyClientsResponse, clients=ROOMS),
    legacy(P.LegacyRoomsResponse, rooms=ROOMS),
    legacy(P.LegacyDataResponse, data=JSON_VALUE),
    legacy(P.LegacyEmptyResponse),
    st.builds(P.SocketsRequest, uid=IDS, request_id=IDS, rooms=ROOMS, **COMMON),
    st.builds(P.AllRoomsRequest, uid=IDS | st.none(), request_id=IDS, **COMMON),
    st.builds(P.RemoteJoinRequest, uid=IDS | st.none(), opts=SELECTOR, rooms=ROOMS, **COMMON),
    st.builds(P.RemoteLeaveRequest, uid=IDS, request_id=IDS, sid=TEXT, room=TEXT, **COMMON),
    st.builds(
        P.RemoteDisconnectRequest, uid=IDS | st.none(), opts=SELECTOR, close=st.booleans(), **COMMON
    ),
    st.builds(P.RemoteFetchRequest, uid=IDS, request_id=IDS, opts=SELECTOR, **COMMON),
    st.builds(
        P.ServerSideEmitRequest,
        uid=IDS | st.just("emitter"),
        request_id=IDS | st.none(),
        data=st.lists(JSON_VALUE, min_size=1, max_size=3),
        **COMMON,
    ),
    st.builds(
        P.BroadcastAckRequest,
        uid=IDS,
        request_id=IDS,
        packet=st.fixed_dictionaries(
            {"type": st.just(2), "data": st.lists(JSON_VALUE, max_size=2), "nsp": NSP}
        ),
        opts=st.fixed_dictionaries(
            {
                "rooms": st.lists(TEXT, max_size=2),
                "except": st.just([]),
                "flags": st.fixed_dictionaries({"timeout": st.integers(0, 10000)}),
            }
        ),
        **COMMON,
    ),
    st.builds(
        P.SocketsResponse,
        request_id=IDS,
        sockets=st.lists(JSON_VALUE, max_size=2).map(tuple),
        to_uid=TO_UID,
        **COMMON,
    ),
    st.builds(P.RoomsResponse, request_id=IDS, rooms=ROOMS, to_uid=TO_UID, **COMMON),
    st.builds(P.EmptyResponse, request_id=IDS, to_uid=TO_UID, **COMMON),
    st.builds(
        P.ServerSideEmitResponse,
        request_id=IDS,
        data=JSON_VALUE | st.just(UNDEFINED),
        to_uid=TO_UID,
        **COMMON,
    ),
    st.builds(
        P.BroadcastClientCountResponse,
        request_id=IDS,
        client_count=st.integers(0, 1000),
        to_uid=TO_UID,
        **COMMON,
    ),
    st.builds(
        P.BroadcastAckResponse,
        request_id=IDS,
        packet=JSON_VALUE | st.binary(max_size=4),
        to_uid=TO_UID,
        **COMMON,
    ),
    st.builds(
        P.ClusterMessage,
        type=st.sampled_from(list(P.ClusterMessageType)),
        data=st.dictionaries(
            st.sampled_from(["requestId", "opts", "packet"]), JSON_VALUE, max_size=3
        ),
        uid=st.text("0123456789abcdef", min_size=16, max_size=16),
        nsp=NSP,
        prefix=PREFIX,
        target=st.none() | TEXT,
    ),
    st.builds(
        P.ClusterMessage,
        type=st.just(P.ClusterMessageType.BROADCAST),
        data=st.fixed_dictionaries(
            {
                "packet": st.fixed_dictionaries(
                    {
                        "type": st.just(2),
                        "data": st.lists(st.binary(max_size=3), min_size=1, max_size=2),
                    }
                )
            }
        ),
        uid=st.text("0123456789abcdef", min_size=16, max_size=16),
        nsp=NSP,
        binary=st.just(True),
    ),
]


@pytest.mark.parametrize("strategy", FRAMES, ids=lambda s: repr(s)[:60])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_roundtrip(strategy: st.SearchStrategy[Any], data: st.DataObject) -> None:
    frame = data.draw(strategy)
    channel, payload = encode(frame)
    back = decode(channel.encode(), payload, prefix=frame.prefix, dialect=frame.dialect)
    assert back == frame
    assert encode(back) == (channel, payload)


from siotools.protocol.frames import FRAME_KINDS  # noqa: E402


def test_frame_kinds_are_all_covered() -> None:
    names = {re.match(r"builds\((\w+)", repr(s)).group(1) for s in FRAMES}  # type: ignore[union-attr]
    covered = {P.Broadcast if n == "make_broadcast" else getattr(P, n) for n in names}
    assert covered | {P.PySocketIOMessage, P.PickledMessage} == set(FRAME_KINDS)


def test_every_frame_kind_has_an_encoder() -> None:
    from siotools.protocol.wire import _ENCODERS  # the table itself is the subject

    assert set(_ENCODERS) == set(FRAME_KINDS)


def test_make_broadcast_layouts() -> None:
    legacy = P.make_broadcast(uid="AbC123", data=["bin", b"\x01"], dialect=Dialect.LEGACY)
    assert legacy.packet_type == P.PacketType.BINARY_EVENT
    assert list(legacy.opts) == ["rooms", "flags"]
    sock = P.make_broadcast(
        uid="AbC123",
        data=["msg", 42],
        rooms=["room1"],
        except_=["sid"],
        flags={"broadcast": True},
        dialect=Dialect.LEGACY,
    )
    assert list(sock.opts) == ["except", "rooms", "flags"]
    current = P.make_broadcast(uid="aUKtae", data=["x", b"\x01"])
    assert current.packet_type == P.PacketType.EVENT
    assert list(current.opts) == ["rooms", "except", "flags"]
    emitter = P.make_broadcast(uid="emitter", data=["x"])
    assert list(emitter.opts) == ["rooms", "flags", "except"]
    # Spec E3 (legacy socket broadcast), byte for byte.
    assert encode(sock)[1] == bytes.fromhex(
        "93a641624331323383a47479706502a46461746192a36d73672aa36e7370a12f83a6657863657074"
        "91a3736964a5726f6f6d7391a5726f6f6d31a5666c61677381a962726f616463617374c3"
    )
    assert P.encode_broadcast(uid="AbC123", data=["hello", "world"], dialect=Dialect.LEGACY) == (
        "socket.io#/#",
        bytes.fromhex(
            "93a641624331323383a47479706502a46461746192a568656c6c6fa5776f726c64a36e7370a12f"
            "82a5726f6f6d7390a5666c61677380"
        ),
    )
    assert P.has_binary({"a": [1, {"b": bytearray(b"x")}]})
    assert not P.has_binary({"a": [1, {"b": "x"}]})


def test_decode_broadcast_fast_path_matches_decode() -> None:
    channel, payload = P.encode_broadcast(
        uid="AbC123", data=["e", 1], rooms=["r"], dialect=Dialect.LEGACY
    )
    assert decode(channel, payload) == P.decode_broadcast(payload, nsp="/")
    assert decode(channel.encode(), payload) == decode(channel.encode(), payload)


def test_dialect_detection() -> None:
    assert decode("socket.io-request#/#", b'{"requestid":"a","type":2}').dialect is Dialect.LEGACY
    assert (
        decode("socket.io-request#/#", b'{"uid":"u","requestId":"a","type":1}').dialect
        is Dialect.CURRENT
    )
    frame = decode("socket.io#/#", b'{"type":3,"data":{},"uid":"0123456789abcdef","nsp":"/"}')
    assert isinstance(frame, P.ClusterMessage) and frame.dialect is Dialect.SHARDED
    with pytest.raises(DecodeError):
        decode("socket.io-request#/#", b'{"requestid":"a","type":2}', dialect=Dialect.CURRENT)


def test_sharded_traffic_is_decoded_as_sharded() -> None:
    # A classic broadcast payload is not a ClusterAdapter message: heard as SPUBLISH
    # traffic (MONITOR) it does not decode; requests never travel by SPUBLISH.
    channel, payload = P.encode_broadcast(uid="AbC123", data=["e", 1], rooms=["r"])
    assert isinstance(decode(channel, payload), P.Broadcast)
    with pytest.raises(DecodeError, match="sharded message is not a map"):
        decode(channel, payload, sharded=True)
    with pytest.raises(DecodeError, match="K#N# channels only"):
        decode("socket.io-request#/#", b'{"uid":"u","requestId":"a","type":1}', sharded=True)
    frame = decode(channel, payload, sharded=True, dialect=Dialect.CURRENT)  # forced wins
    assert isinstance(frame, P.Broadcast) and frame.dialect is Dialect.CURRENT


def test_dialect_families() -> None:
    assert P.dialect_family(Dialect.LEGACY) == P.dialect_family(Dialect.LEGACY_LITE) == "legacy"
    assert P.dialect_family(Dialect.CURRENT) == "current"
    assert P.dialect_family(Dialect.SHARDED) == "sharded"
    assert P.dialect_family(Dialect.PYSOCKETIO) is None and P.dialect_family(None) is None


def test_decode_errors_carry_channel_and_payload() -> None:
    for channel, payload in [
        (b"socket.io#/#", b"bar"),
        (b"socket.io-request#/#", b"not json"),
        (b"socket.io-request#/#", b'{"requestid":"a","type":99}'),
        (b"nowhere", b"\x90"),
        (b"socket.io#/#", b""),
        (b"socket.io#/#", b"\x93\x01\x02\x03"),
    ]:
        with pytest.raises(DecodeError) as info:
            decode(channel, payload)
        assert info.value.channel == channel
        assert info.value.payload == payload


def test_pysocketio_messages_and_pickle() -> None:
    body = b'{"method": "emit", "event": "ev", "data": [1], "namespace": "/", "host_id": "h"}'
    frame = decode(b"socketio", body)
    assert isinstance(frame, P.PySocketIOMessage)
    assert (frame.method, frame.nsp, frame.host_id) == ("emit", "/", "h")
    assert encode(frame) == ("socketio", body)
    pickled = pickle.dumps({"method": "emit", "namespace": "/chat"})
    frame = decode(b"socketio", pickled)
    assert isinstance(frame, P.PickledMessage) and not frame.unpickled and frame.value is None
    frame = decode(b"socketio", pickled, allow_pickle=True)
    assert isinstance(frame, P.PickledMessage) and frame.unpickled
    assert frame.value == {"method": "emit", "namespace": "/chat"} and frame.nsp == "/chat"


def test_encode_errors() -> None:
    with pytest.raises(EncodeError):
        P.encode_broadcast(uid="u", data=["x", object()])
    with pytest.raises(EncodeError):
        encode(P.LegacyCustomRequest(request_id="a", data=object()))
