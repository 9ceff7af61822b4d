"""The node core, pure: routing, the room gate before decoding, own messages skipped."""

from __future__ import annotations

from siotools.dialects import CurrentDialect, LegacyDialect, ShardedDialect
from siotools.dialects.base import Deliver, Ignored, Malformed
from siotools.node import NodeCore
from siotools.protocol import encode_broadcast
from tests.dialects.test_current import View, first_ask


def test_broadcast_routing_and_gates() -> None:
    core = NodeCore(CurrentDialect("k"), "me")
    subs = core.join_namespace("/")
    assert subs is not None and subs.patterns == (b"k#/#*",)
    assert core.join_namespace("/") is None
    view = View("/", {"a": ["r1"]})
    ch, payload = encode_broadcast(uid="other", data=["ev", 1], rooms=["r1"], prefix="k")
    assert ch == "k#/#r1#"
    (d,) = core.receive(ch.encode(), payload, b"k#/#*", view)
    assert d == Deliver("/", ["ev", 1], ["r1"], [], {})
    # a room this node does not have: dropped before decoding
    assert core.receive(b"k#/#zz#", b"\xc1garbage", b"k#/#*", view) == ()
    assert core.received == 2 and core.decoded == 1
    # own broadcasts and undecodable ones
    _, mine = encode_broadcast(uid="me", data=["ev"], prefix="k")
    assert core.receive(b"k#/#", mine, b"k#/#*", view) == ()
    (bad,) = core.receive(b"k#/#", b"\xc1", b"k#/#*", view)
    assert isinstance(bad, Malformed) and bad.error.channel == b"k#/#"
    # unknown channels and namespaces are ignored
    assert core.receive(b"k#/other#", payload, b"k#/#*", view) == (Ignored("ignored"),)


def test_numeric_room_channel() -> None:
    core = NodeCore(CurrentDialect("k"), "me")
    core.join_namespace("/")
    view = View("/", {"a": [123]})
    _, payload = encode_broadcast(uid="o", data=["ev"], rooms=[123], prefix="k")
    (d,) = core.receive(b"k#/#123#", payload, b"k#/#*", view)
    assert isinstance(d, Deliver) and d.rooms == [123]


def test_a_client_core_never_answers_requests() -> None:
    core = NodeCore(LegacyDialect("k"), "me", counted=False)
    subs = core.join_namespace("/")
    assert subs is not None and subs.channels == (b"k-response#/#",)
    view = View("/", {"a": []})
    assert core.receive(b"k-request#/#", b'{"requestid":"x","type":2}', None, view) == ()


def test_multiplexed_room_channels() -> None:
    core = NodeCore(LegacyDialect("k"), "me")
    core.join_namespace("/")
    assert core.room_added("/", "r") == b"k#/#r#"
    view = View("/", {"a": ["r"]})
    _, payload = encode_broadcast(
        uid="o", data=["ev"], rooms=["r"], prefix="k", dialect=LegacyDialect().dialect
    )
    (d,) = core.receive(b"k#/#r#", payload, None, view)
    assert isinstance(d, Deliver)
    assert core.room_removed("/", "r") == b"k#/#r#"
    assert core.receive(b"k#/#r#", payload, None, view) == (Ignored("ignored"),)


def test_sharded_broadcasts_are_counted_on_the_main_channel() -> None:
    # The sharded adapter's broadcasts come on its main channel, a request route: those
    # of the other nodes count as received and decoded, as in the metrics.
    d = ShardedDialect("k")
    core = NodeCore(d, d.new_uid())
    core.join_namespace("/")
    view = View("/", {"a": ["r1"]})
    other = d.broadcast("0123456789abcdef", "/", ["ev", 1], [], [], {})
    assert other.channel == b"k#/#"
    (deliver,) = core.receive(other.channel, other.payload, None, view)
    assert isinstance(deliver, Deliver) and deliver.data == ["ev", 1]
    assert (core.received, core.decoded) == (1, 1)
    room = d.broadcast("0123456789abcdef", "/", ["ev", 2], ["r1"], [], {})
    core.room_added("/", "r1")
    assert room.channel == b"k#/#r1#"
    assert isinstance(core.receive(room.channel, room.payload, None, view)[0], Deliver)
    mine = d.broadcast(core.uid, "/", ["ev", 3], [], [], {})
    assert core.receive(mine.channel, mine.payload, None, view) == []  # own: dropped
    ask = first_ask(d.fetch_sockets("/", "0123456789abcdef", [], [], None))
    assert core.receive(ask.channel, ask.payload, None, view)  # a request: answered
    assert (core.received, core.decoded) == (2, 2)
    assert core.metrics.received[("broadcast", "/")][0] == core.received
