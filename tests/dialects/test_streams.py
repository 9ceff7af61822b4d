"""StreamsDialect: the XADD commands of @socket.io/redis-streams-emitter, byte for byte;
stream naming with 0.3.x ``streamCount``; what it refuses."""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import pytest

from siotools import ConfigurationError, UnsupportedOperation
from siotools.dialects import EMITTED, SPOKEN, StreamsDialect, make_dialect, resolve_dialect
from siotools.dialects.base import Append
from siotools.protocol import Dialect
from siotools.protocol.streams import emitter_stream_for, js_hash_code, stream_for, streams_for
from tests.nodepeer.fixtures import InstallFn


def fields(step: Any) -> dict[bytes, bytes]:
    assert isinstance(step, Append)
    cmd = step.command
    assert cmd[:6] == (b"XADD", step.stream, b"MAXLEN", b"~", cmd[4], b"*")
    flat = cmd[6:]
    assert [flat[i] for i in range(0, len(flat), 2)][:3] == [b"uid", b"nsp", b"type"]
    return dict(zip(flat[::2], flat[1::2], strict=True))


def test_broadcast_command_is_the_emitters() -> None:
    wire = StreamsDialect("socket.io")
    step = wire.emitter_broadcast("/", ["r1", 1], ["room1"], ["room2"], {"volatile": True})
    assert isinstance(step, Append)
    assert step.command == (
        b"XADD", b"socket.io", b"MAXLEN", b"~", b"10000", b"*",
        b"uid", b"emitter", b"nsp", b"/", b"type", b"3",
        b"data", b'{"packet":{"type":2,"data":["r1",1],"nsp":"/"},'
                 b'"opts":{"rooms":["room1"],"flags":{"volatile":true},"except":["room2"]}}',
    )  # fmt: skip


def test_bulk_operations_and_server_side_emit() -> None:
    wire = StreamsDialect("p", stream="s", max_len=50)
    plan = wire.sockets_join("/chat", "", ["a"], ["b"], ["c"])
    step = next(plan)
    assert isinstance(step, Append) and step.command[:5] == (b"XADD", b"s", b"MAXLEN", b"~", b"50")
    assert fields(step) == {
        b"uid": b"emitter", b"nsp": b"/chat", b"type": b"4",
        b"data": b'{"opts":{"rooms":["a"],"except":["b"],"flags":{}},"rooms":["c"]}',
    }  # fmt: skip
    with pytest.raises(StopIteration):
        plan.send(b"1-0")
    assert fields(next(wire.sockets_leave("/", "", [], [], ["x"])))[b"type"] == b"5"
    dis = fields(next(wire.disconnect_sockets("/", "", ["r"], [], True)))
    assert dis[b"type"] == b"6" and dis[b"data"].endswith(b'"close":true}')
    sse = fields(next(wire.server_side_emit("/", "emitter", ["e", 1], ack=False)))
    assert (sse[b"type"], sse[b"data"]) == (b"9", b'{"packet":["e",1]}')
    with pytest.raises(UnsupportedOperation, match="Acknowledgements are not supported"):
        next(wire.server_side_emit("/", "emitter", ["e"], ack=True))
    bin_sse = fields(next(wire.server_side_emit("/", "emitter", ["e", b"\x01"], ack=False)))
    assert not bin_sse[b"data"].startswith(b"{")  # base64 msgpack: it may carry binary


def test_join_with_binary_room_names_stays_json_types() -> None:
    # flattenPayload: only BROADCAST, *_RESPONSE, SERVER_SIDE_EMIT, BROADCAST_ACK go msgpack
    step = next(StreamsDialect().sockets_join("/", "", ["a"], [], ["b"]))
    assert fields(step)[b"data"].startswith(b"{")


@pytest.mark.node
def test_binary_data_is_msgpack_base64_of_msgpack_msgpack(node_install: InstallFn) -> None:
    # @msgpack/msgpack (the emitter's and the adapter's encoder) on the same object
    modules = node_install("streams")
    data = ["bin", b"\x00\x01\xfe\xff", {"n": [1, None, 2.5, -3, 300, "é"]}]
    step = StreamsDialect().emitter_broadcast("/", data, ["r"], [], {"compress": False})
    ours = fields(step)[b"data"].decode()
    script = (
        "const {encode} = require(process.argv[1] + '/node_modules/@msgpack/msgpack');"
        "const data = {packet: {type: 2, data: ['bin', Buffer.from([0, 1, 254, 255]),"
        " {n: [1, null, 2.5, -3, 300, 'é']}], nsp: '/'},"
        " opts: {rooms: ['r'], flags: {compress: false}, except: []}};"
        "process.stdout.write(Buffer.from(encode(data)).toString('base64'));"
    )
    out = subprocess.run(
        ["node", "-e", script, str(modules)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert ours == out.stdout
    assert base64.b64decode(ours)  # and it is base64


def test_stream_count_naming_mirrors_compute_stream_name() -> None:
    # util.ts hashCode: Java's String.hashCode over UTF-16 code units, int32
    assert js_hash_code("/") == 47 and js_hash_code("/chat") == 46457863
    assert js_hash_code("/" + "x" * 20) == -2106005329
    assert js_hash_code("/é😀") == 3396989  # a surrogate pair counts as two units
    assert stream_for("/", "socket.io", 1) == "socket.io"
    assert stream_for("/", "socket.io", 3) == "socket.io-2"
    assert stream_for("/chat", "s", 3) == "s-1"
    # JavaScript's % keeps the hash's sign: the adapter's own "s--<n>" streams
    assert stream_for("/" + "x" * 20, "s", 3) == "s--" + str(2106005329 % 3)
    assert streams_for("s", 3) == ("s-0", "s-1", "s-2") and streams_for("s") == ("s",)
    wire = StreamsDialect(stream="s", stream_count=3)
    assert wire.stream_of("/chat") == "s-1"
    # ...but the emitter writes to a stream the nodes read (they dispatch by nsp)
    assert emitter_stream_for("/" + "x" * 20, "s", 3) == "s-1"
    assert emitter_stream_for("/chat", "s", 3) == "s-1"
    assert emitter_stream_for("/" + "x" * 20, "s", 1) == "s"
    assert wire.stream_of("/" + "x" * 20) == "s-1"
    step = wire.emitter_broadcast("/chat", ["e"], [], [], {})
    assert isinstance(step, Append) and step.stream == b"s-1"


def test_the_dialect_is_for_emitting_only() -> None:
    assert Dialect.STREAMS in EMITTED and Dialect.STREAMS not in SPOKEN
    with pytest.raises(ConfigurationError, match="only emits to it"):
        resolve_dialect("streams")
    assert resolve_dialect("streams", spoken=EMITTED) is Dialect.STREAMS
    wire = make_dialect("streams", "p", stream="s", max_len=5, stream_count=2, spoken=EMITTED)
    assert isinstance(wire, StreamsDialect) and (wire.stream, wire.max_len) == ("s", 5)
    assert not wire.counts_listeners and not wire.node_dialect
    with pytest.raises(UnsupportedOperation, match="only emits"):
        wire.node_subscriptions("/", "x")
    with pytest.raises(UnsupportedOperation):
        next(wire.fetch_sockets("/", "x", [], [], None))
    for bad in ({"stream": ""}, {"max_len": 0}, {"stream_count": 0}, {"max_len": 1.5}):
        with pytest.raises(ConfigurationError):
            StreamsDialect(**bad)  # type: ignore[arg-type]
    assert json.loads(fields(next(wire.sockets_join("/", "", [], [], ["r"])))[b"data"])
