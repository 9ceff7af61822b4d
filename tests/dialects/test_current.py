"""The 8.x classic dialect object, pure: what it asks is Node's bytes, what it answers
follows RA 8.3.0 (real captured traffic in tests/data/vectors/current)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from siotools.dialects import CurrentDialect
from siotools.dialects.base import (
    AddExpected,
    Ask,
    CallHook,
    Count,
    DeliverWithAck,
    Disconnect,
    Expect,
    FetchLocal,
    Ignored,
    Join,
    Leave,
    Malformed,
    Plan,
    Publish,
    RemoteSocket,
    Reply,
)
from siotools.exceptions import SocketNotFound
from siotools.protocol import (
    AllRoomsRequest,
    BroadcastAckRequest,
    RemoteDisconnectRequest,
    RemoteFetchRequest,
    RemoteJoinRequest,
    RemoteLeaveRequest,
    ServerSideEmitRequest,
    decode,
)
from tests.protocol.vectors import messages, scenarios


class View:
    """A node's local sockets as plain data (the LocalView the core reads)."""

    def __init__(self, nsp: str, rooms: dict[str, list[Any]]) -> None:
        self.nsp = nsp
        # sid -> rooms (own id room included)
        self.sockets = {sid: [sid, *r] for sid, r in rooms.items()}

    def namespace_rooms(self, nsp: str) -> Mapping[Any, Mapping[str, Any]] | None:
        if nsp != self.nsp:
            return None
        out: dict[Any, dict[str, str]] = {None: {s: "e" + s for s in self.sockets}}
        for sid, rooms in self.sockets.items():
            for room in rooms:
                out.setdefault(room, {})[sid] = "e" + sid
        return out

    def is_connected(self, sid: str, nsp: str) -> bool:
        return nsp == self.nsp and sid in self.sockets

    def rooms_of(self, sid: str, nsp: str) -> list[Any]:
        return list(self.sockets[sid])


def first_ask(plan: Plan[Any], numsub: int = 3) -> Ask:
    step = next(plan)
    while isinstance(step, Count):
        step = plan.send(numsub)
    assert isinstance(step, Ask)
    return step


CAPTURED_REQUESTS = [
    m
    for path in scenarios()
    if path.parent.name == "current" and "sharded" not in path.name
    for m in messages(path)
    if "-request#" in m.channel
]


def _uid_rid(ask: Ask, uid: str, rid: str | None, theirs: tuple[str | None, str | None]) -> bytes:
    out = ask.payload
    if theirs[0] is not None:
        out = out.replace(uid.encode(), theirs[0].encode())
    if rid is not None and theirs[1] is not None:
        out = out.replace(rid.encode(), theirs[1].encode())
    return out


@pytest.mark.parametrize("m", CAPTURED_REQUESTS, ids=lambda m: m.id)
def test_requests_are_nodes_bytes(m: Any) -> None:
    frame = decode(m.channel, m.payload, prefix=m.meta["key"])
    d = CurrentDialect(m.meta["key"])
    uid = "U1d2e3"
    nsp = frame.nsp
    match frame:
        case RemoteFetchRequest(opts=opts):
            plan: Plan[Any] = d.fetch_sockets(nsp, uid, opts["rooms"], opts["except"], None)
        case AllRoomsRequest():
            plan = d.all_rooms(nsp, uid, None)
        case RemoteJoinRequest(opts=opts, rooms=rooms) if opts is not None:
            plan = d.sockets_join(nsp, uid, opts["rooms"], opts["except"], rooms or ())
        case RemoteLeaveRequest(opts=opts, rooms=rooms) if opts is not None:
            plan = d.sockets_leave(nsp, uid, opts["rooms"], opts["except"], rooms or ())
        case RemoteDisconnectRequest(opts=opts, close=close) if opts is not None:
            plan = d.disconnect_sockets(nsp, uid, opts["rooms"], opts["except"], close is True)
        case ServerSideEmitRequest(data=data, request_id=rid):
            plan = d.server_side_emit(nsp, uid, data, ack=rid is not None)
        case BroadcastAckRequest(packet=packet, opts=opts):
            flags = dict(opts["flags"])
            timeout = flags.pop("timeout") / 1000
            plan = d.emit_with_ack(
                nsp, uid, packet["data"], opts["rooms"], opts["except"], flags, timeout
            )
        case _:
            pytest.skip(f"not a request this dialect sends: {type(frame).__name__}")
    ask = first_ask(plan)
    assert ask.channel == m.channel.encode()
    theirs = (getattr(frame, "uid", None), getattr(frame, "request_id", None))
    assert _uid_rid(ask, uid, ask.request_id, theirs) == m.payload


def test_fetch_merges_local_and_replies_and_names_nodes_timeouts() -> None:
    d = CurrentDialect()
    local = [RemoteSocket(id="L", rooms=("L",))]
    plan = d.fetch_sockets("/", "me", ["r"], [], local)
    assert next(plan) == Count(d.count_channel("/"), exclude_self=True)
    ask = plan.send(2)
    assert ask.expect is Expect.COUNT and ask.expected == 2
    assert ask.timeout_message == "timeout reached while waiting for fetchSockets response"
    reply = d.on_response(
        b"socket.io-response#/#",
        b'{"requestId":"%s","sockets":[{"id":"R","handshake":{},"rooms":["R","r"],"data":{"a":1}}]}'
        % ask.request_id.encode(),  # type: ignore[union-attr]
    )
    assert isinstance(reply[0], Reply)
    result = ask.finish([reply[0].value])
    assert [s.id for s in result] == ["L", "R"]
    assert result[1].data == {"a": 1} and result[1].rooms == ("R", "r")
    # a lone node (numsub 1, itself) answers locally without publishing
    plan = d.fetch_sockets("/", "me", [], [], local)
    next(plan)
    with pytest.raises(StopIteration) as stop:
        plan.send(0)
    assert stop.value.value == local


def test_remote_join_of_an_unknown_socket_is_socket_not_found() -> None:
    d = CurrentDialect()
    plan = d.remote_join("/chat", "me", "nope", "room")
    next(plan)
    ask = plan.send(2)
    with pytest.raises(SocketNotFound, match="no node has socket nope in namespace /chat"):
        plan.send(ask.finish([]))


def test_answers() -> None:
    d = CurrentDialect("k")
    view = View("/", {"a": ["r1"], "b": ["r1", "r2"], "c": []})
    req = b"k-request#/#"

    def answer(body: bytes) -> list[Any]:
        return d.on_request("me", req, body, view)

    # own requests are not answered (the asker merges its local part)
    assert answer(b'{"uid":"me","requestId":"x","type":1}') == []
    (rooms,) = answer(b'{"uid":"other","requestId":"x","type":1}')
    assert isinstance(rooms, Publish) and rooms.channel == b"k-response#/#"
    assert rooms.payload == b'{"requestId":"x","rooms":["a","r1","b","r2","c"]}'
    # socketsJoin opts form: applied on receipt, own echo included, no answer
    (join,) = answer(b'{"uid":"me","type":2,"opts":{"rooms":["r1"],"except":["r2"]},"rooms":["x"]}')
    assert join == Join("/", ("a",), ("x",))
    (leave,) = answer(b'{"type":3,"opts":{"rooms":[],"except":[]},"rooms":["r1"]}')
    assert leave == Leave("/", ("a", "b", "c"), ("r1",))
    (disc,) = answer(b'{"uid":"o","type":4,"opts":{"rooms":["r2"],"except":[]},"close":true}')
    assert disc == Disconnect("/", ("b",), True)
    (fetch,) = answer(b'{"uid":"o","requestId":"f","type":5,"opts":{"rooms":["r2"],"except":[]}}')
    assert isinstance(fetch, FetchLocal) and fetch.sids == ("b",)
    out = fetch.respond([RemoteSocket(id="b", rooms=("b", "r1", "r2"), data=None, handshake={})])
    assert out.payload == (
        b'{"requestId":"f","sockets":[{"id":"b","handshake":{},"rooms":["b","r1","r2"],'
        b'"data":null}]}'
    )
    (hook,) = answer(b'{"uid":"o","requestId":"s","type":6,"data":["ev",1]}')
    assert isinstance(hook, CallHook) and hook.args == ["ev", 1]
    assert hook.respond is not None
    assert hook.respond({"ok": 1}) == Publish(  # always the common channel
        b"k-response#/#", b'{"type":6,"requestId":"s","data":{"ok":1}}'
    )
    # malformed fields are never acted on
    for body in (
        b'{"uid":"o","type":2,"opts":{"rooms":[null],"except":[]},"rooms":["x"]}',
        b'{"uid":"o","type":3,"opts":{"rooms":[],"except":[]}}',
        b'{"uid":"o","requestId":"r","type":2,"sid":"a"}',
        b'{"uid":"o","requestId":"f","type":5,"opts":{"rooms":"r1"}}',
    ):
        (bad,) = answer(body)
        assert isinstance(bad, Malformed), body
    # a 5.x request on an 8.x prefix is ignored with a warning
    (foreign,) = answer(b'{"requestid":"x","type":4,"sid":"a","room":"r1"}')
    assert isinstance(foreign, Ignored) and foreign.warning and "distinct keys" in foreign.warning


def test_specific_response_channel_and_acks() -> None:
    d = CurrentDialect("k", publish_on_specific_response_channel=True)
    view = View("/", {"a": []})
    (rooms,) = d.on_request(
        "me", b"k-request#/#", b'{"uid":"other","requestId":"x","type":1}', view
    )
    assert isinstance(rooms, Publish) and rooms.channel == b"k-response#/#other#"
    ask = first_ask(d.emit_with_ack("/", "other", ["q"], [], [], {}, 1.5), numsub=1)
    (deliver,) = d.on_request("me", b"k-request#/#", ask.payload, view)
    assert isinstance(deliver, DeliverWithAck) and deliver.data == ["q"]
    count = deliver.on_count(1)
    assert count.channel == b"k-response#/#other#"
    actions = d.on_response(count.channel, count.payload)
    # the count raises the expectation before it counts as a reply
    assert isinstance(actions[0], AddExpected) and actions[0].count == 1
    assert isinstance(actions[1], Reply)
    ack = deliver.on_ack({"a": 1})
    (reply,) = d.on_response(ack.channel, ack.payload)
    assert isinstance(reply, Reply)
    assert ask.finish([actions[1].value, reply.value]) == [{"a": 1}]


def test_server_side_emit_timeout_message() -> None:
    d = CurrentDialect()
    ask = first_ask(d.server_side_emit("/", "me", ["ev"], ack=True), numsub=3)
    assert callable(ask.timeout_message)
    assert ask.timeout_message(1, 2) == "timeout reached: only 1 responses received out of 2"
