"""@socket.io/redis-streams-adapter entries captured from real Node nodes decode and re-encode
byte for byte; malformed entries raise DecodeError."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from siotools.exceptions import DecodeError
from siotools.protocol import (
    UNDEFINED,
    ClusterMessage,
    ClusterMessageType,
    Dialect,
    StreamMessage,
    decode,
    decode_entry,
    decode_ephemeral,
    decode_session,
    encode,
    encode_entry,
    encode_session,
    has_binary,
    heard_as,
)

STREAMS = Path(__file__).resolve().parents[1] / "data" / "vectors" / "streams"
T = ClusterMessageType


def records(scenario: str) -> list[dict[str, Any]]:
    lines = (STREAMS / f"{scenario}.entries.ndjson").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def meta(scenario: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((STREAMS / f"{scenario}.meta.json").read_text())
    return loaded


SCENARIOS = sorted(p.name.removesuffix(".entries.ndjson") for p in STREAMS.glob("*.ndjson"))
ENTRIES = [
    pytest.param(s, r, id=f"{s}#{i}")
    for s in SCENARIOS
    for i, r in enumerate(records(s))
    if r["source"] == "stream"
]
PUBSUB = [
    pytest.param(s, r, id=f"{s}#{i}")
    for s in SCENARIOS
    for i, r in enumerate(records(s))
    if r["source"] == "pubsub"
]


def entry(rec: dict[str, Any], key: str = "socket.io") -> StreamMessage:
    fields = [(k.encode(), v.encode()) for k, v in rec["fields"]]
    return decode_entry(rec["stream"].encode(), rec["id"].encode(), fields, prefix=key)


def test_vectors_cover_the_message_types() -> None:
    seen = Counter(entry(r).type for s in SCENARIOS for r in records(s) if r["source"] == "stream")
    assert {T.INITIAL_HEARTBEAT, T.HEARTBEAT, T.BROADCAST, T.SOCKETS_JOIN, T.SOCKETS_LEAVE,
            T.DISCONNECT_SOCKETS, T.FETCH_SOCKETS, T.FETCH_SOCKETS_RESPONSE,
            T.SERVER_SIDE_EMIT, T.SERVER_SIDE_EMIT_RESPONSE, T.BROADCAST_CLIENT_COUNT,
            T.BROADCAST_ACK, T.ADAPTER_CLOSE} <= set(seen)  # fmt: skip


@pytest.mark.parametrize(("scenario", "rec"), ENTRIES)
def test_entry_decodes_and_reencodes_exactly(scenario: str, rec: dict[str, Any]) -> None:
    m = meta(scenario)
    msg = entry(rec, m["key"])
    assert isinstance(msg, ClusterMessage) and msg.dialect is Dialect.STREAMS
    assert (msg.stream, msg.entry_id, msg.prefix) == (m["stream"], rec["id"], m["key"])
    uids = {uid for node in m["nodes"] for uid in node["uids"].values()}
    assert msg.uid in uids or msg.from_emitter
    fields = [(k.encode(), v.encode()) for k, v in rec["fields"]]
    assert encode_entry(msg) == fields
    # binary data is base64 msgpack, the rest JSON, as the adapter chooses
    data = dict(rec["fields"]).get("data")
    assert msg.binary == (data is not None and not data.startswith("{"))
    if data is None:
        assert msg.data is UNDEFINED and msg.type in (T.HEARTBEAT, T.INITIAL_HEARTBEAT,
                                                      T.ADAPTER_CLOSE)  # fmt: skip


def test_broadcast_entries_carry_the_steps() -> None:
    emitted = [
        entry(r).data["packet"]["data"]
        for s in ("broadcast_all", "broadcast_rooms", "broadcast_binary")
        for r in records(s)
        if r["source"] == "stream"
    ]
    assert ["news", "hi"] in emitted and ["é", "ü"] in emitted
    assert ["bin", b"\x00\x01\xfe\xff"] in emitted
    assert ["mixed", "x", {"b": b"\xff", "n": [1, None, 2.5]}] in emitted
    (r,) = [e for e in records("broadcast_except") if e["source"] == "stream"][1:]
    assert entry(r).data["opts"] == {"rooms": ["room2"], "except": ["room1"], "flags": {}}


def test_local_broadcast_writes_nothing() -> None:
    events = [entry(r).data["packet"]["data"][0] for r in records("broadcast_flags")]
    assert events == ["vol", "nocomp"]
    flags = [entry(r).data["opts"]["flags"] for r in records("broadcast_flags")]
    assert flags == [{"volatile": True}, {"compress": False}]


def test_v02_heartbeats_and_close() -> None:
    msgs = [entry(r) for r in records("v02_heartbeat") if r["source"] == "stream"]
    uids = {uid for node in meta("v02_heartbeat")["nodes"] for uid in node["uids"].values()}
    assert {m.uid for m in msgs if m.is_heartbeat} == uids
    (close,) = [m for m in msgs if m.type == T.ADAPTER_CLOSE]
    assert close.nsp == "/chat" and close.uid == meta("v02_heartbeat")["nodes"][2]["uids"]["/chat"]
    ack = [m for m in msgs if m.type == T.BROADCAST and m.request_id is not None]
    assert ack and ack[0].binary  # a binary broadcast with ack: msgpack on the stream in 0.2


@pytest.mark.parametrize(("scenario", "rec"), PUBSUB)
def test_03_ephemeral_pubsub_messages(scenario: str, rec: dict[str, Any]) -> None:
    m = meta(scenario)
    payload = bytes.fromhex(rec["data_hex"])
    frame = decode_ephemeral(decode(rec["channel"], payload, prefix=m["key"]))
    assert isinstance(frame, ClusterMessage) and frame.dialect is Dialect.STREAMS
    assert frame.type in (T.BROADCAST, T.FETCH_SOCKETS, T.FETCH_SOCKETS_RESPONSE,
                          T.SERVER_SIDE_EMIT, T.SERVER_SIDE_EMIT_RESPONSE,
                          T.BROADCAST_CLIENT_COUNT, T.BROADCAST_ACK)  # fmt: skip
    assert encode(frame) == (rec["channel"], payload)


def test_recovery_session_value() -> None:
    (rec,) = [r for r in records("recovery_session") if r["source"] == "key"]
    session = decode_session(rec["value"])
    a2 = next(c for c in meta("recovery_session")["clients"] if c["name"] == "a2")
    assert rec["key"] == f"sio:session:{session.pid}"
    assert session.sid == a2["sid"] and sorted(session.rooms) == sorted(a2["rooms"])
    assert session.data == {"name": "a2", "node": "A"}
    assert encode_session(session) == rec["value"].encode()
    assert rec["pttl_positive"]


GOOD = [(b"uid", b"abc"), (b"nsp", b"/"), (b"type", b"3"), (b"data", b'{"x":1}')]
MALFORMED = [
    pytest.param("socket.io", "1-0", [(b"uid", b"a"), (b"nsp", b"/")], id="no-type"),
    pytest.param("socket.io", "1-0", [(b"nsp", b"/"), (b"type", b"3")], id="no-uid"),
    pytest.param("socket.io", "1-0", [(b"uid", b"a"), (b"type", b"3")], id="no-nsp"),
    pytest.param("socket.io", "1-0", [*GOOD[:2], (b"type", b"03")], id="type-leading-zero"),
    pytest.param("socket.io", "1-0", [*GOOD[:2], (b"type", b"x")], id="type-text"),
    pytest.param("socket.io", "1-0", [*GOOD[:3], (b"data", b"{nope")], id="bad-json"),
    pytest.param("socket.io", "1-0", [*GOOD[:3], (b"data", b"!!!")], id="bad-base64"),
    pytest.param("socket.io", "1-0", [*GOOD[:3], (b"data", b"wQ==")], id="bad-msgpack"),
    pytest.param("socket.io", "1-0", [*GOOD[:3], (b"data", b"")], id="empty-data"),
    pytest.param("socket.io", "1-0", [*GOOD, (b"extra", b"1")], id="extra-field"),
    pytest.param("socket.io", "1-0", [*GOOD, (b"uid", b"b")], id="repeated"),
    pytest.param("socket.io", "1-0", [(b"uid", b"\xff\xfe"), *GOOD[1:]], id="not-utf8"),
    pytest.param("socket.io", "1-0", [(b"uid",)], id="not-a-pair"),
    pytest.param("socket.io", "1-0", [(b"uid", 5), *GOOD[1:]], id="not-bytes"),
    pytest.param("socket.io", "nope", GOOD, id="bad-id"),
    pytest.param("socket.io", "1-0", 42, id="not-iterable"),
]


@pytest.mark.parametrize(("stream", "eid", "fields"), MALFORMED)
def test_malformed_entries_raise_decode_error(stream: str, eid: str, fields: Any) -> None:
    with pytest.raises(DecodeError):
        decode_entry(stream, eid, fields)


def test_mapping_fields_as_redis_py_returns_them() -> None:
    msg = decode_entry(b"s", b"5-1", dict(GOOD))
    assert (msg.type, msg.data, msg.uid, msg.nsp, msg.stream) == (T.BROADCAST, {"x": 1}, "abc",
                                                                  "/", "s")  # fmt: skip


@pytest.mark.parametrize(
    "value", ["!!", base64.b64encode(b"\xc1").decode(), base64.b64encode(b"\x93\x01\x02\x03")]
)
def test_malformed_sessions_raise_decode_error(value: Any) -> None:
    with pytest.raises(DecodeError):
        decode_session(value)


def _mutations(seed: int, n: int) -> list[tuple[list[tuple[bytes, bytes]], bytes]]:
    """Captured entries with random bytes flipped, fields dropped or duplicated."""
    import random

    rng = random.Random(seed)
    base = [r for s in SCENARIOS for r in records(s) if r["source"] == "stream"]
    out = []
    for _ in range(n):
        rec = rng.choice(base)
        fields = [(k.encode(), v.encode()) for k, v in rec["fields"]]
        i = rng.randrange(len(fields))
        name, value = fields[i]
        op = rng.randrange(4)
        if op == 0 and value:
            j = rng.randrange(len(value))
            value = value[:j] + bytes([rng.randrange(256)]) + value[j + 1 :]
        elif op == 1:
            value = value[: rng.randrange(len(value) + 1)]
        elif op == 2:
            fields.append(fields[i])
        else:
            value = bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
        fields[i] = (name, value)
        out.append((fields, rec["id"].encode()))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mutated_entries_decode_or_raise_decode_error(seed: int) -> None:
    raised = 0
    for fields, eid in _mutations(seed, 2000):
        try:
            msg = decode_entry(b"socket.io", eid, fields)
        except DecodeError:
            raised += 1
            continue
        assert isinstance(msg, StreamMessage)
    assert raised > 100  # the mutations do reach the error paths


def test_records_round_trip_through_capture_files(tmp_path: Path) -> None:
    from siotools.protocol.streams import decode_record, pack_record
    from siotools.sniffer import Capture, load_capture

    cap = Capture(prefix="socket.io")
    recs = [r for r in records("v02_heartbeat") if r["source"] == "stream"]
    for r in recs:
        fields = [(k.encode(), v.encode()) for k, v in r["fields"]]
        payload = pack_record(r["id"], fields)
        assert decode_record(b"socket.io", payload) == entry(r)
        cap.append(int(r["t"] * 1e9), b"socket.io", payload)
    cap.save(tmp_path / "streams.jsonl")
    loaded = load_capture(tmp_path / "streams.jsonl")
    frames = list(loaded)
    assert [f.frame for f in frames] == [entry(r) for r in recs]
    assert {f.dialect for f in frames} == {Dialect.STREAMS}
    assert loaded.to_pandas()["type"].iloc[0] == "INITIAL_HEARTBEAT"


SHARDED_VECTORS = Path(__file__).resolve().parents[1] / "data" / "vectors" / "current"


def sharded_frames() -> list[ClusterMessage]:
    out = []
    for name in ("sharded_static", "sharded_dynamic"):
        text = (SHARDED_VECTORS / f"{name}.jsonl").read_text(encoding="utf-8")
        for line in text.splitlines():
            rec = json.loads(line)
            frame = decode(rec["channel"], bytes.fromhex(rec["data_hex"]), dialect=Dialect.SHARDED)
            assert isinstance(frame, ClusterMessage)
            out.append(frame)
    return out


@pytest.mark.parametrize(("scenario", "rec"), PUBSUB)
def test_heard_as_03_published_maps(scenario: str, rec: dict[str, Any]) -> None:
    # What a PSUBSCRIBE (or MONITOR's PUBLISH) hears of 0.3.x: never the sharded adapter.
    payload = bytes.fromhex(rec["data_hex"])
    key = meta(scenario)["key"]
    frame = decode(rec["channel"], payload, prefix=key)
    assert frame.dialect is Dialect.SHARDED  # what the shape alone says
    heard = heard_as(frame, sharded=False)
    assert isinstance(heard, ClusterMessage) and heard.dialect is Dialect.STREAMS
    assert heard == decode_ephemeral(frame)
    # useShardedPubSub: SPUBLISHed, but msgpack where the sharded adapter sends JSON
    forced = decode(rec["channel"], payload, prefix=key, dialect=Dialect.SHARDED)
    spublished = heard_as(forced, sharded=True)
    may_carry = (T.BROADCAST, T.FETCH_SOCKETS_RESPONSE, T.SERVER_SIDE_EMIT,
                 T.SERVER_SIDE_EMIT_RESPONSE, T.BROADCAST_ACK)  # fmt: skip
    binary = frame.type in may_carry and has_binary(frame.data)
    assert spublished.dialect is (Dialect.SHARDED if binary else Dialect.STREAMS)


def test_heard_as_keeps_sharded_adapter_maps() -> None:
    frames = sharded_frames()
    assert any(f.binary for f in frames) and any(not f.binary for f in frames)
    for frame in frames:
        assert heard_as(frame, sharded=True) is frame
        if not frame.binary:  # JSON: the streams adapter never publishes JSON
            assert heard_as(frame, sharded=False) is frame
    entry_frame = entry(records("broadcast_all")[0])
    assert heard_as(entry_frame, sharded=False) is entry_frame
    classic = decode("socket.io#/#", bytes.fromhex(_CLASSIC_BROADCAST))
    assert heard_as(classic, sharded=False) is classic


# ["uid", {type: 2, data: ["e"], nsp: "/"}, {rooms: [], except: [], flags: {}}] (notepack 3)
_CLASSIC_BROADCAST = (
    "93a3756964"
    "83a47479706502a46461746191a165a36e7370a12f"
    "83a5726f6f6d7390a665786365707490a5666c61677380"
)
