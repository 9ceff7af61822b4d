"""The 4.x/5.x dialect object, pure: requests are socket.io-redis 5.4's bytes, answers
follow its onrequest, and wrong field types are never acted on."""

from __future__ import annotations

from typing import Any

import pytest

from siotools.dialects import LegacyDialect, make_dialect, resolve_dialect
from siotools.dialects.base import (
    CallHook,
    Count,
    Disconnect,
    Expect,
    Ignored,
    Join,
    Leave,
    Malformed,
    Publish,
    Settle,
    Subscriptions,
)
from siotools.exceptions import ConfigurationError, UnsupportedOperation
from siotools.protocol import Dialect
from tests.dialects.test_current import View, first_ask


def test_subscriptions_per_mode() -> None:
    sub = LegacyDialect("k", subscription_mode="subscribe")
    assert sub.node_subscriptions("/", "u") == Subscriptions(
        channels=(b"k#/#", b"k-request#/#", b"k-response#/#")
    )
    assert sub.room_channel("/", "r") == b"k#/#r#"
    psub = LegacyDialect("k", subscription_mode="psubscribe")
    assert psub.node_subscriptions("/", "u") == Subscriptions(
        channels=(b"k-request#/#", b"k-response#/#"), patterns=(b"k#/#*",)
    )
    assert psub.room_channel("/", "r") is None
    assert sub.client_subscriptions("/", "u") == Subscriptions(channels=(b"k-response#/#",))
    nomux = LegacyDialect("k", with_channel_multiplexing=False)
    assert nomux.broadcast("u", "/", ["e"], ["r"], [], {}).channel == b"k#/#"


def test_requests_count_the_asker_itself() -> None:
    d = LegacyDialect("k")
    plan = d.clients("/", "u", ["r"], ["ignored: the node answers itself"])
    assert next(plan) == Count(b"k-request#/#", exclude_self=False)
    ask = plan.send(3)
    assert ask.expect is Expect.COUNT and ask.expected == 3
    assert ask.payload == b'{"requestid":"%s","type":0,"rooms":["r"]}' % ask.request_id.encode()  # type: ignore[union-attr]
    ask = first_ask(d.client_rooms("/", "u", "S"))
    assert ask.expect is Expect.FIRST
    assert ask.timeout_message == "timeout reached while waiting for rooms response"


def test_answers_and_validation() -> None:
    d = LegacyDialect("k")
    view = View("/", {"a": ["r1"], "b": []})

    def answer(body: bytes) -> list[Any]:
        return d.on_request("me", b"k-request#/#", body, view)

    (clients,) = answer(b'{"requestid":"x","type":0,"rooms":["r1"]}')
    assert clients == Publish(b"k-response#/#", b'{"requestid":"x","clients":["a"]}')
    join = answer(b'{"requestid":"x","type":3,"sid":"a","room":"r9"}')
    assert join[0] == Join("/", ("a",), ("r9",)) and join[1] == Settle()
    leave = answer(b'{"requestid":"x","type":4,"sid":"a","room":"r1"}')
    assert leave[0] == Leave("/", ("a",), ("r1",))
    (own,) = answer(b'{"requestid":"x","type":4,"sid":"a","room":"a"}')
    assert own == Ignored("own_room_leave")
    disc = answer(b'{"requestid":"x","type":6,"sid":"b","close":true}')
    assert disc[0] == Disconnect("/", ("b",), True)
    assert answer(b'{"requestid":"x","type":6,"sid":"nobody","close":true}') == []
    (hook,) = answer(b'{"requestid":"x","type":5,"data":{"q":1}}')
    assert isinstance(hook, CallHook) and hook.args == [{"q": 1}]
    assert hook.respond is not None
    assert hook.respond([1]) == Publish(b"k-response#/#", b'{"requestid":"x","data":[1]}')
    for body in (
        b'{"requestid":"x","type":4,"sid":"a"}',
        b'{"requestid":"x","type":4,"sid":"a","room":null}',
        b'{"requestid":"x","type":3,"sid":"a","room":[1]}',
        b'{"requestid":"x","type":6,"sid":"a","close":1}',
        b'{"requestid":"x","type":0,"rooms":[null]}',
        b'{"requestid":"x","type":1,"sid":7}',
    ):
        (bad,) = answer(body)
        assert isinstance(bad, Malformed), body
    (foreign,) = answer(b'{"uid":"o","requestId":"x","type":1}')
    assert isinstance(foreign, Ignored) and foreign.reason == "foreign_requests"


def test_8x_only_operations_are_refused_with_a_pointer() -> None:
    d = LegacyDialect()
    with pytest.raises(UnsupportedOperation, match="custom_request"):
        next(d.server_side_emit("/", "u", ["ev"], ack=True))
    with pytest.raises(UnsupportedOperation, match="acknowledgements across nodes"):
        next(d.emit_with_ack("/", "u", ["ev"], [], [], {}, 1.0))


def test_dialect_names() -> None:
    assert resolve_dialect("current") is Dialect.CURRENT
    assert resolve_dialect(" Legacy ") is Dialect.LEGACY
    with pytest.raises(ConfigurationError, match="valid dialects are 'legacy', 'legacy-lite'"):
        resolve_dialect("8.x")
    with pytest.raises(ConfigurationError, match="sniffed but not spoken yet"):
        resolve_dialect("pysocketio")
    assert resolve_dialect("sharded") is Dialect.SHARDED
    assert make_dialect("legacy-lite").label == "socket.io-redis 4.x"
