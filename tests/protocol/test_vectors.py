"""Captured Node traffic decodes into the structures the scenario metadata describes."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from siotools.protocol import (
    UNDEFINED,
    Broadcast,
    ClusterMessage,
    ClusterMessageType,
    Dialect,
    Frame,
    LegacyClientsRequest,
    LegacyClientsResponse,
    LegacyCustomRequest,
    LegacyDataResponse,
    LegacyRemoteDisconnectRequest,
    LegacyRemoteJoinRequest,
    LegacyRemoteLeaveRequest,
    LegacyRoomsResponse,
    PacketType,
    RemoteFetchRequest,
    RoomsResponse,
    ServerSideEmitRequest,
    SocketsResponse,
    TypedArray,
    decode,
)
from tests.protocol.vectors import Captured, messages, scenarios

SCENARIOS = scenarios()
EMIT_CMDS = {"nsp_emit", "emitter_emit", "socket_emit"}


def decoded(path: Path) -> list[tuple[Captured, Frame]]:
    return [(m, decode(m.channel, m.payload, prefix=m.meta["key"])) for m in messages(path)]


def wire_value(value: Any, dialect: Dialect) -> Any:
    """The decoded form of a tagged value from the meta file."""
    legacy = dialect is Dialect.LEGACY
    if isinstance(value, dict):
        if "$bin" in value:
            return bytes.fromhex(value["$bin"])
        for tag in ("$u8", "$arraybuffer"):
            if tag in value:
                data = bytes.fromhex(value[tag])
                return TypedArray("ArrayBuffer", data) if legacy else data
        if "$date" in value:
            return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
                milliseconds=value["$date"]
            )
        if "$undefined" in value:
            return UNDEFINED if legacy else None
        out = {}
        for k, v in value.items():
            converted = wire_value(v, dialect)
            # notepack.io 3.x drops undefined map values.
            if not legacy and isinstance(v, dict) and "$undefined" in v:
                continue
            out[k] = converted
        return out
    if isinstance(value, list):
        return [wire_value(v, dialect) for v in value]
    if isinstance(value, float) and value.is_integer():
        # notepack: integral doubles >= 2**64 wrap (1e300 arrives as 0).
        return int(value) % 2**64 if value >= 2**64 else int(value)
    return value


def node_uids(meta: dict[str, Any]) -> set[str]:
    return {uid for node in meta["nodes"] for uid in node["uids"].values()}


def client_sids(meta: dict[str, Any]) -> set[str]:
    sids = {c["sid"] for c in meta["clients"]}
    for node in meta["nodes"]:
        for state in node.get("state", {}).values():
            sids.update(state.get("sids", {}))
    return sids


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_senders_are_known_nodes(path: Path) -> None:
    frames = decoded(path)
    meta = frames[0][0].meta if frames else {}
    uids = node_uids(meta) | {"emitter"}
    for msg, frame in frames:
        uid = getattr(frame, "uid", None)
        if uid is not None:
            assert uid in uids, msg.id
        if isinstance(frame, ClusterMessage):
            assert isinstance(frame.type, ClusterMessageType)
            assert len(frame.uid) == 16
        assert frame.nsp in ("/", "/chat"), msg.id
        expected = Dialect.SHARDED if meta["sharded"] else None
        if expected is not None:
            assert frame.dialect is expected
        elif meta["flavor"] == "legacy":
            assert frame.dialect is Dialect.LEGACY, msg.id
        else:
            assert frame.dialect is Dialect.CURRENT, msg.id


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_broadcasts_match_emit_steps(path: Path) -> None:
    frames = decoded(path)
    if not frames:
        pytest.skip("no messages")
    meta = frames[0][0].meta
    steps = [s for s in meta["steps"] if s["cmd"] in EMIT_CMDS and s["ok"]]
    by_event: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for step in steps:
        by_event[(step["params"]["nsp"], step["params"]["event"])].append(step["params"])
    checked = 0
    for msg, frame in frames:
        if not isinstance(frame, Broadcast):
            continue
        candidates = by_event.get((frame.packet_nsp, frame.event), [])
        if not candidates:
            continue
        assert any(wire_value(p["args"], frame.dialect) == frame.args for p in candidates), msg.id
        assert any(sorted(p.get("rooms", [])) == sorted(frame.rooms) for p in candidates), msg.id
        assert frame.packet_type in (PacketType.EVENT, PacketType.BINARY_EVENT)
        if frame.dialect is Dialect.CURRENT or frame.is_emitter:
            assert frame.packet_type == PacketType.EVENT
        rooms = frame.rooms
        if len(rooms) == 1:
            assert msg.channel == f"{meta['key']}#{frame.nsp}#{rooms[0]}#"
        else:
            assert msg.channel == f"{meta['key']}#{frame.nsp}#"
        checked += 1
    if steps and meta["flavor"] == "legacy" and not meta["sharded"]:
        assert checked, "no broadcast matched an emit step"


def test_legacy_binary_packets_are_type_5() -> None:
    path = next(p for p in SCENARIOS if p.parent.name == "legacy" and p.stem == "broadcast_binary")
    types = {f.event: f.packet_type for _, f in decoded(path) if isinstance(f, Broadcast)}
    assert types["bin"] == PacketType.BINARY_EVENT
    assert types["date"] == PacketType.EVENT
    assert types["undef"] == PacketType.EVENT


def steps_of(meta: dict[str, Any], cmd: str) -> list[dict[str, Any]]:
    return [s for s in meta["steps"] if s["cmd"] == cmd]


def test_legacy_clients_requests_and_responses() -> None:
    path = next(p for p in SCENARIOS if p.parent.name == "legacy" and p.stem == "requests_clients")
    frames = decoded(path)
    meta = frames[0][0].meta
    requests = [f for _, f in frames if isinstance(f, LegacyClientsRequest)]
    steps = [s for s in meta["steps"] if s["cmd"] in ("clients", "nsp_clients")]
    assert [list(r.rooms) for r in requests] == [s["params"]["rooms"] for s in steps]
    for request, step in zip(requests, steps, strict=True):
        answers = [
            f
            for _, f in frames
            if isinstance(f, LegacyClientsResponse) and f.request_id == request.request_id
        ]
        assert len(answers) == 3
        got = {sid for a in answers for sid in a.clients}
        assert got == set(step["result"])
        assert got <= client_sids(meta)


@pytest.mark.parametrize("flavor", ["legacy", "current"])
def test_all_rooms_results(flavor: str) -> None:
    stem = "requests_allRooms" if flavor == "legacy" else "allRooms"
    path = next(p for p in SCENARIOS if p.parent.name == flavor and p.stem == stem)
    frames = decoded(path)
    meta = frames[0][0].meta
    response_cls = LegacyRoomsResponse if flavor == "legacy" else RoomsResponse
    rooms = {r for _, f in frames if isinstance(f, response_cls) for r in f.rooms}
    expected = {r for s in steps_of(meta, "allRooms") if s["ok"] for r in s["result"]}
    # The requester answers from its local state; the responses carry the remote rooms.
    assert rooms and rooms <= expected


def test_legacy_custom_request_roundtrip_values() -> None:
    path = next(
        p for p in SCENARIOS if p.parent.name == "legacy" and p.stem == "requests_customRequest"
    )
    frames = decoded(path)
    meta = frames[0][0].meta
    requests = [f for _, f in frames if isinstance(f, LegacyCustomRequest)]
    params = [s["params"]["data"] for s in steps_of(meta, "customRequest")]
    assert [r.data for r in requests] == params
    echoes = [f.data for _, f in frames if isinstance(f, LegacyDataResponse)]
    assert any(isinstance(e, dict) and e.get("echo") == params[0] for e in echoes)


def test_legacy_remote_join_leave_disconnect() -> None:
    path = next(
        p
        for p in SCENARIOS
        if p.parent.name == "legacy" and p.stem == "requests_remoteJoin_remoteLeave"
    )
    frames = decoded(path)
    meta = frames[0][0].meta
    joins = [(f.sid, f.room) for _, f in frames if isinstance(f, LegacyRemoteJoinRequest)]
    leaves = [(f.sid, f.room) for _, f in frames if isinstance(f, LegacyRemoteLeaveRequest)]
    # Local sockets are handled without Redis, so check that what was sent was asked for.
    for cmd, got in (("remoteJoin", joins), ("remoteLeave", leaves)):
        asked = {(s["params"]["sid"], s["params"]["room"]) for s in steps_of(meta, cmd)}
        assert got
        assert set(got) <= asked
    path = next(
        p for p in SCENARIOS if p.parent.name == "legacy" and p.stem == "requests_remoteDisconnect"
    )
    frames = decoded(path)
    meta = frames[0][0].meta
    got_d = [(f.sid, f.close) for _, f in frames if isinstance(f, LegacyRemoteDisconnectRequest)]
    asked_d = {
        (s["params"]["sid"], s["params"]["close"]) for s in steps_of(meta, "remoteDisconnect")
    }
    assert got_d
    assert set(got_d) <= asked_d


def test_current_fetch_sockets() -> None:
    path = next(p for p in SCENARIOS if p.parent.name == "current" and p.stem == "fetchSockets")
    frames = decoded(path)
    meta = frames[0][0].meta
    assert any(isinstance(f, RemoteFetchRequest) for _, f in frames)
    sockets = {s["id"]: s for _, f in frames if isinstance(f, SocketsResponse) for s in f.sockets}
    for step in steps_of(meta, "fetchSockets"):
        for sock in step["result"] or []:
            if sock.get("remote"):
                assert sock["id"] in sockets
                assert sockets[sock["id"]]["rooms"] == sock["rooms"]
                assert sockets[sock["id"]]["data"] == sock["data"]


def test_current_server_side_emit() -> None:
    path = next(p for p in SCENARIOS if p.parent.name == "current" and p.stem == "serverSideEmit")
    frames = decoded(path)
    meta = frames[0][0].meta
    sent = [f.data for _, f in frames if isinstance(f, ServerSideEmitRequest)]
    for step in steps_of(meta, "serverSideEmit"):
        params = step["params"]
        expected = [params["event"], *params["args"]]
        # JSON.stringify turns Buffers into {"type":"Buffer"} and Dates into ISO strings.
        if not any("$" in str(a) for a in params["args"]):
            assert expected in sent


def test_sharded_messages() -> None:
    for stem in ("sharded_dynamic", "sharded_static"):
        path = next(p for p in SCENARIOS if p.parent.name == "current" and p.stem == stem)
        frames = decoded(path)
        meta = frames[0][0].meta
        uids = node_uids(meta)
        types = {f.type for _, f in frames if isinstance(f, ClusterMessage)}
        assert ClusterMessageType.BROADCAST in types
        assert ClusterMessageType.FETCH_SOCKETS in types
        for msg, frame in frames:
            assert isinstance(frame, ClusterMessage)
            assert frame.uid in uids
            if frame.target is not None and frame.target in uids:
                assert frame.type in (8, 10, 11, 12), msg.id
            if frame.type == ClusterMessageType.BROADCAST:
                assert isinstance(frame.data, dict)
                assert "nsp" not in frame.data["packet"]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_unpack_broadcast_reads_captures_like_the_frame(path: Path) -> None:
    from siotools.protocol import unpack_broadcast

    seen = 0
    for captured, frame in decoded(path):
        if not isinstance(frame, Broadcast):
            continue
        uid, nsp, data, rooms, except_, flags = unpack_broadcast(captured.payload)
        assert (uid, nsp, data) == (frame.uid, frame.packet.get("nsp", "/"), frame.data)
        assert (rooms, except_, flags) == (frame.rooms, frame.except_, frame.flags)
        seen += 1
    if path.stem.startswith("broadcast") and path.stem != "broadcast_ack":  # acks: requests
        assert seen > 0
