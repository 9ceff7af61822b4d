"""The 8.x sharded dialect object, pure: what it publishes is Node's bytes (the captured
sharded traffic in tests/data/vectors/current), what it answers follows socket.io-adapter
2.5.x's ClusterAdapter as @socket.io/redis-adapter 8.3.0 runs it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from siotools.dialects import ShardedDialect, make_dialect, resolve_dialect
from siotools.dialects.base import (
    AddExpected,
    Ask,
    CallHook,
    Count,
    Deliver,
    DeliverWithAck,
    Disconnect,
    Expect,
    FetchLocal,
    Ignored,
    Join,
    Leave,
    Local,
    Malformed,
    Plan,
    Publish,
    RemoteSocket,
    Reply,
    Route,
    Subscriptions,
)
from siotools.exceptions import ConfigurationError, SocketNotFound, UnsupportedOperation
from siotools.node import NodeCore
from siotools.protocol import ClusterMessage, Dialect, decode
from tests.dialects.test_current import View
from tests.protocol.vectors import Captured, messages, scenarios

SHARDED = [
    m
    for path in scenarios()
    if path.parent.name == "current" and path.name.startswith("sharded_")
    for m in messages(path)
]
SENT = [m for m in SHARDED if re.fullmatch(r"socket\.io#/(chat)?#([^#]*#)?", m.channel)]

UID = "0123456789abcdef"


def mode_of(m: Captured) -> str:
    opts = m.meta["node_options"]
    mode: str = opts[opts.index("--subscription-mode") + 1]
    return mode


def frame_of(m: Captured) -> ClusterMessage:
    frame = decode(m.channel, m.payload, prefix="socket.io", dialect=Dialect.SHARDED)
    assert isinstance(frame, ClusterMessage)
    return frame


def steps(plan: Plan[Any], count: int = 3) -> list[Any]:
    """Run a plan: Counts get ``count``, Asks get [] or 0; every step is returned."""
    out: list[Any] = []
    value: Any = None
    while True:
        try:
            step = plan.send(value)
        except StopIteration:
            return out
        out.append(step)
        if isinstance(step, Count):
            value = count - 1 if step.exclude_self else count
        elif isinstance(step, Ask):
            value = 0 if step.expect is Expect.NONE else step.finish([])
        else:
            value = None


def first_ask(plan: Plan[Any], count: int = 3) -> Ask:
    return next(s for s in steps(plan, count) if isinstance(s, Ask))


def swap_ids(payload: bytes, ours: dict[str, str]) -> bytes:
    for mine, theirs in ours.items():
        payload = payload.replace(mine.encode(), theirs.encode())
    return payload


def test_the_captures_are_here() -> None:
    # 2 modes x (broadcasts, fetch, sse, socketsJoin/Leave, ack broadcast, disconnect)
    assert len(SHARDED) == 42
    assert {mode_of(m) for m in SHARDED} == {"dynamic", "static"}


@pytest.mark.parametrize(
    "m", [m for m in SENT if frame_of(m).type not in (8, 10, 11, 12)], ids=lambda m: m.id
)
def test_what_we_publish_is_nodes_bytes(m: Captured) -> None:
    frame = frame_of(m)
    d = ShardedDialect("socket.io", subscription_mode=mode_of(m))  # type: ignore[arg-type]
    data = frame.data
    nsp = frame.nsp
    ids = {UID: frame.uid}
    match frame.type:
        case 3 if "requestId" in data:
            opts = data["opts"]
            flags = dict(opts["flags"])
            timeout = flags.pop("timeout") / 1000
            plan: Plan[Any] = d.emit_with_ack(
                nsp, UID, data["packet"]["data"], opts["rooms"], opts["except"], flags, timeout
            )
            ask = first_ask(plan)
            ids[ask.request_id or ""] = data["requestId"]
            out = Publish(ask.channel, ask.payload, sharded=ask.sharded)
        case 3:
            opts = data["opts"]
            out = d.broadcast(
                UID, nsp, data["packet"]["data"], opts["rooms"], opts["except"], opts["flags"]
            )
        case 4 | 5 | 6 | 7 | 9:
            opts = data.get("opts", {"rooms": [], "except": []})
            rooms, except_ = opts["rooms"], opts["except"]
            if frame.type == 4:
                plan = d.sockets_join(nsp, UID, rooms, except_, data["rooms"])
            elif frame.type == 5:
                plan = d.sockets_leave(nsp, UID, rooms, except_, data["rooms"])
            elif frame.type == 6:
                plan = d.disconnect_sockets(nsp, UID, rooms, except_, data["close"])
            elif frame.type == 7:
                plan = d.fetch_sockets(nsp, UID, rooms, except_, None)
            else:
                plan = d.server_side_emit(nsp, UID, data["packet"], ack="requestId" in data)
            ask = first_ask(plan)
            if ask.request_id is not None:
                ids[ask.request_id] = data["requestId"]
            out = Publish(ask.channel, ask.payload, sharded=ask.sharded)
        case _:
            pytest.fail(f"unexpected message type {frame.type}")
    assert out.sharded
    assert out.channel == m.channel.encode()
    assert swap_ids(out.payload, ids) == m.payload


@pytest.mark.parametrize(
    "m", [m for m in SHARDED if frame_of(m).type in (10, 11, 12)], ids=lambda m: m.id
)
def test_what_we_answer_is_nodes_bytes(m: Captured) -> None:
    """Type 10/11/12 answers, made by our dialect from the captured request."""
    frame = frame_of(m)
    rid = frame.request_id
    request = next(
        r
        for r in SHARDED
        if r.scenario == m.scenario and frame_of(r).type in (3, 9) and frame_of(r).request_id == rid
    )
    asked = frame_of(request)
    d = ShardedDialect("socket.io", subscription_mode=mode_of(m))  # type: ignore[arg-type]
    view = View("/", {"s1": []})
    actions = d.on_request(frame.uid, request.channel.encode(), request.payload, view)
    data = frame.data
    if asked.type == 9:
        (hook,) = actions
        assert isinstance(hook, CallHook) and hook.respond is not None
        out = hook.respond(data["packet"])
    else:
        (deliver,) = actions
        assert isinstance(deliver, DeliverWithAck)
        if frame.type == 11:
            out = deliver.on_count(data["clientCount"])
        else:
            out = deliver.on_ack(data["packet"])
    assert out is not None and out.sharded
    assert out.channel == m.channel.encode()
    assert out.payload == m.payload


def test_fetch_answer_is_nodes_layout() -> None:
    m = next(m for m in SHARDED if frame_of(m).type == 8)
    frame = frame_of(m)
    request = next(r for r in SHARDED if r.scenario == m.scenario and frame_of(r).type == 7)
    theirs = frame.data["sockets"]
    d = ShardedDialect()
    view = View("/", {s["id"]: [r for r in s["rooms"] if r != s["id"]] for s in theirs})
    (fetch,) = d.on_request(frame.uid, request.channel.encode(), request.payload, view)
    assert isinstance(fetch, FetchLocal)
    assert set(fetch.sids) == {s["id"] for s in theirs}
    sockets = [
        RemoteSocket(id=s["id"], rooms=tuple(s["rooms"]), data=s["data"], handshake=s["handshake"])
        for s in theirs
    ]
    out = fetch.respond(sockets)
    assert out.channel == m.channel.encode()
    assert json.loads(out.payload) == json.loads(m.payload)
    assert out.payload == m.payload  # key order too


def test_binary_goes_as_a_msgpack_map_and_comes_back() -> None:
    d = ShardedDialect()
    out = d.broadcast(UID, "/", ["bin", b"\x01\x02"], [], [], {})
    assert out.payload[0] == 0x84  # a map of 4: type, data, uid, nsp
    assert d.read_broadcast(out.payload) == (UID, "/", ["bin", b"\x01\x02"], [], [], {})
    # the types that never carry binary stay JSON (type 11), those that may switch (12)
    request = first_ask(d.emit_with_ack("/", UID, ["q"], [], [], {}, 1.0))
    (ack,) = d.on_request("me", b"socket.io#/#", request.payload, View("/", {"s": []}))
    assert isinstance(ack, DeliverWithAck)
    assert ack.on_count(1).payload.startswith(b"{")
    assert ack.on_ack({"x": 1}).payload.startswith(b"{")
    assert ack.on_ack(b"\x09\x08").payload[0] == 0x84


def test_channels_and_modes() -> None:
    d = ShardedDialect("k")
    assert d.sharded_pubsub and d.dialect is Dialect.SHARDED
    assert len(d.new_uid()) == 16 and int(d.new_uid(), 16) >= 0
    assert d.node_subscriptions("/", UID) == Subscriptions(
        shard_channels=(b"k#/#", b"k#/#0123456789abcdef#")
    )
    assert d.client_subscriptions("/", UID) == Subscriptions(
        shard_channels=(b"k#/#0123456789abcdef#",)
    )
    assert d.routes("/", UID) == {b"k#/#": Route.REQUEST, b"k#/#0123456789abcdef#": Route.RESPONSE}
    assert d.count_channel("/chat") == b"k#/chat#"
    assert next(d.server_count("/")) == Count(b"k#/#", sharded=True)
    sid = "A" * 20
    for mode, room1, private, to_sid in (
        ("dynamic", b"k#/#room1#", False, b"k#/#"),
        ("dynamic-private", b"k#/#room1#", True, b"k#/#" + sid.encode() + b"#"),
        ("static", None, False, b"k#/#"),
    ):
        dm = ShardedDialect("k", subscription_mode=mode)  # type: ignore[arg-type]
        core = NodeCore(dm, UID)
        core.join_namespace("/")
        assert core.room_added("/", "room1") == room1
        assert (core.room_added("/", sid, private=True) is not None) is private
        assert core.room_removed("/", "room1") == room1
        # a single-room broadcast: the room's channel in the dynamic modes, except a
        # socket id in "dynamic" (the 20-character rule); 2 rooms or an ack: main channel
        assert dm.broadcast(UID, "/", ["e"], ["room1"], [], {}).channel == (room1 or b"k#/#")
        assert dm.broadcast(UID, "/", ["e"], [sid], [], {}).channel == to_sid
        assert dm.broadcast(UID, "/", ["e"], ["a", "b"], [], {}).channel == b"k#/#"
        ask = first_ask(dm.emit_with_ack("/", UID, ["e"], ["room1"], [], {}, 1.0))
        assert ask.channel == b"k#/#" and ask.sharded
    with pytest.raises(ConfigurationError, match="subscription_mode must be one of"):
        ShardedDialect(subscription_mode="psubscribe")  # type: ignore[arg-type]


def test_registered() -> None:
    assert resolve_dialect("sharded") is Dialect.SHARDED
    d = make_dialect("sharded", "p", subscription_mode="static")
    assert isinstance(d, ShardedDialect) and d.subscription_mode == "static"
    assert isinstance(make_dialect(Dialect.SHARDED), ShardedDialect)
    assert make_dialect(Dialect.SHARDED).subscription_mode == "dynamic"  # type: ignore[attr-defined]


def test_counting_and_timeouts() -> None:
    d = ShardedDialect()
    local = [RemoteSocket(id="L", rooms=("L",))]
    plan = d.fetch_sockets("/", UID, ["r"], [], local)
    assert next(plan) == Count(b"socket.io#/#", exclude_self=True, sharded=True)
    ask = plan.send(2)
    assert ask.expect is Expect.COUNT and ask.expected == 2 and ask.sharded
    assert callable(ask.timeout_message)
    assert ask.timeout_message(1, 2) == "timeout reached: only 1 responses received out of 2"
    body = {
        "type": 8,
        "data": {
            "requestId": ask.request_id,
            "sockets": [{"id": "R", "handshake": {}, "rooms": ["R", "r"], "data": {"a": 1}}],
        },
        "uid": "fedcba9876543210",
        "nsp": "/",
    }
    (reply,) = d.on_response(b"socket.io#/#" + UID.encode() + b"#", json.dumps(body).encode())
    assert isinstance(reply, Reply) and reply.request_id == ask.request_id
    result = ask.finish([reply.value])
    assert [s.id for s in result] == ["L", "R"] and result[1].data == {"a": 1}
    # expected <= 0 (SHARDNUMSUB 1 or 0, RA PR #523): local only, nothing published
    plan = d.fetch_sockets("/", UID, [], [], local)
    next(plan)
    with pytest.raises(StopIteration) as stop:
        plan.send(0)
    assert stop.value.value == local
    sse = d.server_side_emit("/", UID, ["e"], ack=True)
    next(sse)
    ask = sse.send(2)
    assert ask.timeout_message(1, 2) == "timeout reached: only 1 responses received out of 2"  # type: ignore[operator]
    ack = d.emit_with_ack("/", UID, ["e"], [], [], {}, 0.5)
    next(ack)
    ask = ack.send(2)
    assert ask.timeout_message == "operation has timed out" and ask.timeout == 0.5
    count = json.dumps(
        {"type": 11, "data": {"requestId": "r", "clientCount": 3}, "uid": "x", "nsp": "/"}
    ).encode()
    actions = d.on_response(b"socket.io#/#me#", count)
    assert actions[0] == AddExpected("r", 3) and isinstance(actions[1], Reply)


def test_all_rooms_is_refused() -> None:
    with pytest.raises(UnsupportedOperation, match="sharded cannot list every room"):
        next(ShardedDialect().all_rooms("/", UID, []))


def test_bulk_operations_publish_then_apply_locally() -> None:
    d = ShardedDialect()
    view = View("/", {"a": ["r1"], "b": ["r2"]})
    for plan, expected in (
        (d.sockets_join("/", UID, ["r1"], [], ["x"]), [Join("/", ("a",), ("x",))]),
        (d.sockets_leave("/", UID, [], ["r1"], ["r2"]), [Leave("/", ("b",), ("r2",))]),
        (d.disconnect_sockets("/", UID, ["r2"], [], True), [Disconnect("/", ("b",), True)]),
    ):
        ask, local = steps(plan)
        assert isinstance(ask, Ask) and ask.expect is Expect.NONE and ask.sharded
        assert isinstance(local, Local)
        assert local.actions(view) == expected
        # and the echo of our own message is dropped by uid
        assert d.on_request(UID, ask.channel, ask.payload, view) == []
    # the emitter signs "emitter"
    ask = first_ask(d.sockets_join("/", "", [], [], ["x"]))
    assert json.loads(ask.payload)["uid"] == "emitter"


def test_answers_and_filters() -> None:
    d = ShardedDialect("k")
    view = View("/", {"a": ["r1"], "b": ["r1", "r2"], "c": []})
    main = b"k#/#"

    def msg(t: int, data: Any, uid: str = "other0123456789a", nsp: str | None = "/") -> bytes:
        body: dict[str, Any] = {"type": t, "data": data, "uid": uid}
        if nsp is not None:
            body["nsp"] = nsp
        return json.dumps(body, separators=(",", ":")).encode()

    def answer(body: bytes, channel: bytes = main) -> list[Any]:
        return d.on_request(UID, channel, body, view)

    opts = {"rooms": ["r1"], "except": ["r2"], "flags": {}}
    assert answer(msg(4, {"opts": opts, "rooms": ["x"]})) == [Join("/", ("a",), ("x",))]
    assert answer(msg(5, {"opts": opts, "rooms": ["r1"]})) == [Leave("/", ("a",), ("r1",))]
    assert answer(msg(6, {"opts": opts, "close": True})) == [Disconnect("/", ("a",), True)]
    packet = {"type": 2, "data": ["ev", 1]}
    vol = {"rooms": [], "except": [], "flags": {"volatile": True}}
    assert answer(msg(3, {"packet": packet, "opts": vol})) == [
        Deliver("/", ["ev", 1], [], [], {"volatile": True})
    ]
    (hook,) = answer(msg(9, {"packet": ["ev", 2]}))
    assert isinstance(hook, CallHook) and hook.respond is None and hook.args == ["ev", 2]
    # the own echo, another namespace: dropped (cluster-adapter.ts onMessage)
    assert answer(msg(3, {"packet": packet, "opts": vol}, uid=UID)) == []
    assert answer(msg(3, {"packet": packet, "opts": vol}, nsp="/chat")) == []
    # an 8.2.x message (no nsp): dropped, and said once
    (ignored,) = answer(msg(3, {"packet": packet, "opts": vol}, nsp=None))
    assert isinstance(ignored, Ignored) and "8.2" in (ignored.warning or "")
    # heartbeats and unknown types: ignored; a response on the main channel: a reply
    assert answer(msg(2, {})) == [Ignored("requests_ignored")]
    (rep,) = answer(msg(10, {"requestId": "q", "packet": 1}))
    assert isinstance(rep, Reply) and rep.request_id == "q"
    # malformed never acted on
    for body in (
        b"\xc1garbage",
        b"{not json",
        msg(4, {"opts": {"rooms": [None]}, "rooms": ["x"]}),
        msg(4, {"opts": opts}),
        msg(5, {"opts": "r1", "rooms": ["x"]}),
        msg(7, {"opts": opts}),
        msg(9, {"packet": []}),
        msg(3, {"packet": {"type": 2}, "opts": vol}),
        msg(3, "nope"),
        msg(4, {"opts": opts, "rooms": ["x"]}, uid=12),  # type: ignore[arg-type]
    ):
        (bad,) = answer(body)
        assert isinstance(bad, Malformed), body
    for body in (b"{}", msg(11, {"requestId": "r", "clientCount": -1}), b"\x93\x01\x02\x03"):
        (bad,) = d.on_response(main + b"me#", body)
        assert isinstance(bad, (Malformed, Ignored)), body


def test_find_of_an_unknown_socket_is_socket_not_found() -> None:
    with pytest.raises(SocketNotFound, match="no node has socket nope"):
        steps(ShardedDialect().remote_join("/chat", UID, "nope", "room"))
