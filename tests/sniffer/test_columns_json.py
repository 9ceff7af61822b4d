"""JSON requests and responses read by shape give the column store exactly the frame-by-frame row.

The column path decodes a JSON request or response once per shape: rows that differ only in
their request id (:func:`siotools.protocol.wire.request_id_cut`) get the shape's row with
their own id. Here every row of a batch is compared, cell by cell, with the same row decoded
alone in a store of its own (nothing to share: frame by frame), on both column paths, over
the captured Node traffic with other ids and over hostile payloads that each follow a row
of the shape they would wrongly share.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from siotools.protocol import ChannelGrammar, ChannelKind, columnar
from siotools.protocol.wire import request_id_cut
from siotools.sniffer.columns import OBJECT_COLUMNS, ColumnStore, RowDecoder
from tests.protocol.vectors import Captured, all_messages

CATEGORIES = ("kind", "dialect", "nsp", "event", "uid", "type", "frame", "request_id", "error")
LISTS = ("errors", "oversized", "requests", "responses")
Record = tuple[int, bytes, bytes, bool]
PATHS = [False, True] if columnar.AVAILABLE else [False]
_ANSWERS = (ChannelKind.REQUEST, ChannelKind.RESPONSE, ChannelKind.RESPONSE_UID)


def prefix_of(m: Captured) -> str:
    return "myapp" if "myapp" in m.scenario else "socket.io"


def json_vectors() -> list[Captured]:
    """Captured JSON payloads of request and response channels."""
    out = []
    for m in all_messages():
        kind = ChannelGrammar(prefix_of(m)).parse(m.channel).kind
        if kind in _ANSWERS and m.payload[:1] == b"{" and "sharded" not in m.scenario:
            out.append(m)
    return out


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (bool(a == b) or repr(a) == repr(b))


def _row_cells(store: ColumnStore, objects: dict[str, list[Any]], i: int) -> dict[str, Any]:
    cols = store.decoded
    out: dict[str, Any] = {name: cols.categorical(name).value(i) for name in CATEGORIES}
    out["size"] = cols.size[i]
    for name in LISTS:
        out[name] = i in getattr(cols, name)
    for name in OBJECT_COLUMNS:
        out[name] = objects[name][i]
    return out


def _alone(record: Record, prefix: str, max_size: int | None) -> dict[str, Any]:
    """The row of ``record`` decoded in a store holding only it (frame by frame)."""
    store = ColumnStore(RowDecoder(prefix, max_size=max_size))
    store.native = False
    store.append(*record)
    return _row_cells(store, store.objects(), 0)


def assert_rows_as_alone(
    records: list[Record], prefix: str = "socket.io", max_size: int | None = None
) -> None:
    """Every row of the batch, on either column path, is the row decoded alone."""
    want = [_alone(r, prefix, max_size) for r in records]
    for native in PATHS:
        store = ColumnStore(RowDecoder(prefix, max_size=max_size))
        store.native = native
        store.extend(records)
        objects = store.objects()
        assert len(store.decoded) == len(records)
        for i, expected in enumerate(want):
            got = _row_cells(store, objects, i)
            for name, value in expected.items():
                assert _same(got[name], value), (native, i, name, got[name], value, records[i])


def with_id(payload: bytes, rid: bytes) -> bytes | None:
    """``payload`` with its request id's characters replaced by ``rid`` (None: no cut)."""
    cut = request_id_cut(payload)
    if cut is None:
        return None
    rest = cut[0]
    at = rest.index(b'"request') + len(b'"requestId":"')
    return rest[:at] + rid + rest[at:]


OTHER_IDS = [b"", b"1", b"zz-9", "é日本\U0001f600".encode(), b"\x7f", "\u2028".encode(), b"x" * 300]


@pytest.mark.parametrize("group", sorted({m.group for m in json_vectors()}))
def test_every_captured_request_and_response_with_other_ids(group: str) -> None:
    msgs = [m for m in json_vectors() if m.group == group]
    for prefix in ("socket.io", "myapp"):
        recs: list[Record] = []
        for m in msgs:
            if prefix_of(m) != prefix:
                continue
            ch, p = m.channel.encode(), bytes(m.payload)
            variants = [p, p] + [v for rid in OTHER_IDS if (v := with_id(p, rid)) is not None]
            recs += [(len(recs) + k, ch, v, False) for k, v in enumerate(variants)]
        if recs:
            assert_rows_as_alone(recs, prefix)


REQ = b"socket.io-request#/#"
RESP = b"socket.io-response#/#"
RESP_UID = b"socket.io-response#/#Ab3_xZ#"
PRIMER = b'{"uid":"u","requestId":"a","type":1}'
LEGACY = b'{"requestid":"a","type":5,"data":[1]}'

# (channel, payload) pairs; each hostile payload comes right after a row of the shape it
# must not be given (the first of its group), so that a rule left out shows as a wrong row.
HOSTILE: list[tuple[bytes, bytes]] = [
    # Control characters in the id: JSON forbids them, decode() refuses the payload.
    (REQ, PRIMER),
    (REQ, b'{"uid":"u","requestId":"a\x01","type":1}'),
    (REQ, b'{"uid":"u","requestId":"\x1f","type":1}'),
    (REQ, b'{"uid":"u","requestId":"a\tb","type":1}'),
    # Invalid UTF-8 in the id (overlong, surrogate, truncated, above U+10FFFF, bare byte).
    (REQ, b'{"uid":"u","requestId":"\xc0\xaf","type":1}'),
    (REQ, b'{"uid":"u","requestId":"\xed\xa0\x80","type":1}'),
    (REQ, b'{"uid":"u","requestId":"\xe2\x82","type":1}'),
    (REQ, b'{"uid":"u","requestId":"\xf4\x90\x80\x80","type":1}'),
    (REQ, b'{"uid":"u","requestId":"\xff","type":1}'),
    # Escapes: a second requestId spelled with an escape wins (the last key does).
    (REQ, b'{"uid":"u","requestId":"b","request\\u0049d":"b","type":1}'),
    (REQ, b'{"uid":"u","requestId":"c","request\\u0049d":"b","type":1}'),
    (REQ, b'{"uid":"u","requestId":"b","\\u0072equestId":"b","type":1}'),
    (REQ, b'{"uid":"u","requestId":"c","\\u0072equestId":"b","type":1}'),
    (RESP, b'{"requestid":"b","\\u0072equestid":"b","rooms":[]}'),
    (RESP, b'{"requestid":"c","\\u0072equestid":"b","rooms":[]}'),
    (REQ, b'{"uid":"u","requestId":"a\\u0000","type":1}'),
    (REQ, b'{"uid":"u","requestId":"\\ud800","type":1}'),
    (REQ, b'{"uid":"u","requestId":"a\\"","type":1}'),
    # Duplicate keys: the last one is the id.
    (REQ, b'{"uid":"u","requestId":"a","type":1,"requestId":"a"}'),
    (REQ, b'{"uid":"u","requestId":"z","type":1,"requestId":"a"}'),
    (RESP_UID, b'{"requestId":"a","rooms":["r"],"requestId":"a"}'),
    (RESP_UID, b'{"requestId":"q","rooms":["r"],"requestId":"a"}'),
    (REQ, b'{"requestid":"a","requestId":"a","type":1}'),
    (REQ, b'{"requestid":"b","requestId":"a","type":1}'),
    # A requestId nested in the data, none at the top: the row has no request id.
    (REQ, b'{"uid":"u","type":6,"data":["ev",{"requestId":"x"}]}'),
    (REQ, b'{"uid":"u","type":6,"data":["ev",{"requestId":"y"}]}'),
    (REQ, b'{"uid":"u","type":6,"data":["ev",{"requestid":"x"}]}'),
    (REQ, b'{"uid":"u","type":6,"data":["ev",{"requestid":"y"}]}'),
    # A room whose name starts like the key.
    (RESP_UID, b'{"requestId":"a","rooms":["requests"]}'),
    (RESP_UID, b'{"requestId":"b","rooms":["requests"]}'),
    # Wrong types for the id and the rest.
    (REQ, PRIMER),
    (REQ, b'{"uid":"u","requestId":7,"type":1}'),
    (REQ, b'{"uid":"u","requestId":null,"type":1}'),
    (REQ, b'{"uid":"u","requestId":["a"],"type":1}'),
    (REQ, b'{"uid":"u","requestId":"a","type":"1"}'),
    (REQ, b'{"uid":"u","requestId":"a","type":1.0}'),
    (REQ, b'{"uid":"u","requestId":"a","type":true}'),
    (REQ, b'{"uid":7,"requestId":"a","type":1}'),
    (REQ, b'{"uid":"u","requestId":"a","type":1,"extra":1}'),
    (REQ, b'{"uid":"u","requestId":"a","type":0,"rooms":"r"}'),
    (RESP, b'{"requestId":"a","sockets":{}}'),
    (RESP, b'{"requestId":"a","type":8,"clientCount":"3"}'),
    (RESP, b'{"type":8,"requestId":"a","clientCount":2.5}'),
    # Huge ints, NaN and other literals JSON does not have.
    (REQ, LEGACY),
    (REQ, b'{"requestid":"b","type":5,"data":[123456789012345678901234567890123]}'),
    (REQ, b'{"requestid":"c","type":5,"data":[123456789012345678901234567890123]}'),
    (REQ, b'{"requestid":"d","type":5,"data":[1e400,-1e400,1.5e-400]}'),
    (REQ, b'{"requestid":"e","type":5,"data":[NaN]}'),
    (REQ, b'{"requestid":"f","type":5,"data":[Infinity]}'),
    (REQ, b'{"requestid":"g","type":5,"data":[-Infinity]}'),
    (REQ, b'{"requestid":"h","type":100000000000000000000000000002}'),
    (REQ, b'{"uid":"u","requestId":"a","type":1e0}'),
    (REQ, b'{"requestid":"i","type":5,"data":undefined}'),
    # Not a JSON object, bad JSON, trailing garbage, BOM, whitespace.
    (REQ, b'["uid","u","requestId","a","type",1]'),
    (REQ, b'{"uid":"u","requestId":"a","type":1'),
    (REQ, b'{"uid":"u","requestId":"a","type":1}}'),
    (REQ, b'{"uid":"u","requestId":"a","type":1} x'),
    (REQ, b'{"uid":"u","requestId":"a","type":1}\x00'),
    (REQ, b'{"uid":"u","requestId":"a","type":1} '),
    (REQ, b'{"uid":"u","requestId":"a","type":1}{"uid":"u","requestId":"a","type":1}'),
    (REQ, b'\xef\xbb\xbf{"uid":"u","requestId":"a","type":1}'),
    (REQ, b'{"uid":"u","requestId" : "a","type":1}'),
    (REQ, b'{\n"uid":"u","requestId":"a","type":1}'),
    (REQ, b'{"uid":"u","requestId":"a",,"type":1}'),
    (REQ, b'{"uid":"u","requestId":"a","type":01}'),
    (REQ, b'{"uid":"u","requestId":"a","type":1,}'),
    (REQ, b"{'uid':'u','requestId':'a','type':1}"),
    (REQ, b'{"uid":"u\xff","requestId":"a","type":1}'),
    (REQ, b"{}"),
    (REQ, b"{"),
    (REQ, b""),
    (RESP, b"{null}"),
    # Deep nesting (past the JSON parser's recursion limit, and just inside it).
    (REQ, b'{"requestid":"a","type":5,"data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    (REQ, b'{"requestid":"b","type":5,"data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    (REQ, b'{"requestid":"a","type":5,"data":' + b"[" * 200 + b"]" * 200 + b"}"),
    (REQ, b'{"requestid":"b","type":5,"data":' + b"[" * 200 + b"]" * 200 + b"}"),
    # A request on a response channel and the other way round, a non-request channel.
    (RESP, PRIMER),
    (REQ, b'{"requestId":"a","rooms":["r"]}'),
    (b"socket.io#/#", PRIMER),
    (b"socketio", b'{"method":"emit","requestId":"a","id":"a"}'),
    (b"socketio", b'{"method":"emit","requestId":"b","id":"a"}'),
]


def test_hostile_payloads() -> None:
    recs = [(i, ch, p, False) for i, (ch, p) in enumerate(HOSTILE)]
    # Twice: the second time every shape is known.
    assert_rows_as_alone(recs + [(len(recs) + i, *r[1:]) for i, r in enumerate(recs)])


def test_sharded_rows_of_a_known_shape_are_not_taken_from_it() -> None:
    # An SPUBLISHed request: only the sharded adapter SPUBLISHes, and not on this channel.
    recs = [(0, REQ, PRIMER, False), (1, REQ, PRIMER.replace(b'"a"', b'"b"'), True)]
    assert_rows_as_alone([*recs, (2, REQ, PRIMER.replace(b'"a"', b'"c"'), False)])


def test_oversized_rows_of_a_known_shape_are_not_taken_from_it() -> None:
    long_id = PRIMER.replace(b'"a"', b'"' + b"x" * 100 + b'"')
    recs = [(0, REQ, PRIMER, False), (1, REQ, long_id, False), (2, REQ, PRIMER, False)]
    assert_rows_as_alone(recs, max_size=len(PRIMER) + 10)


def test_mutations_of_captured_requests_and_responses() -> None:
    rng = random.Random(2026)
    base = [
        (m.channel.encode(), bytes(m.payload))
        for m in json_vectors()
        if prefix_of(m) == "socket.io"
    ]
    recs: list[Record] = []
    for k in range(2500):
        ch, p = base[k % len(base)]
        b = bytearray(p)
        cut = request_id_cut(p)
        at = p.find(b'"request')
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            # Half the mutations go into the id (or right around it), where the rules are.
            if cut is not None and at >= 0 and rng.random() < 0.5:
                i = min(len(b), at + rng.randint(9, 16 + len(cut[1].encode())))
            else:
                i = rng.randrange(len(b) + 1)
            if op < 0.4 and i < len(b):
                b[i] = rng.choice(
                    [0x22, 0x5C, 0x01, 0x0A, 0x20, 0x7D, 0xFF, 0xC3, rng.randrange(256)]
                )
            elif op < 0.55:
                del b[i:]
            elif op < 0.85:
                b.insert(i, rng.choice([0x22, 0x5C, 0x01, 0x2C, 0x3A, 0xE2, rng.randrange(256)]))
            else:
                del b[i : i + rng.randint(1, 4)]
        # The original first, so that the mutant meets a row of its old shape.
        recs += [(len(recs), ch, p, False), (len(recs) + 1, ch, bytes(b), False)]
    assert_rows_as_alone(recs)


class _Counting(RowDecoder):
    """A row decoder that counts the payloads it decodes into frames."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix)
        self.calls = 0

    def decode(self, channel: bytes, payload: bytes, sharded: bool) -> Any:
        self.calls += 1
        return super().decode(channel, payload, sharded)


@pytest.mark.parametrize("native", PATHS)
def test_a_shape_is_decoded_once(native: bool) -> None:
    # Not a vacuous parity: requests and responses of one shape are decoded once each,
    # the rest of their rows are read by shape, and read right.
    dec = _Counting("socket.io")
    store = ColumnStore(dec)
    store.native = native
    for i in range(300):
        store.append(i, REQ, b'{"uid":"u","requestId":"r%d","type":1}' % i)
        store.append(i, RESP_UID, b'{"requestId":"r%d","rooms":["a","b"]}' % i)
    cols = store.decode()
    assert dec.calls == 2
    assert [cols.request_id.value(i) for i in range(4)] == ["r0", "r0", "r1", "r1"]
    assert [cols.type.value(i) for i in range(2)] == ["ALL_ROOMS", "ROOMS"]
    assert cols.requests == list(range(0, 600, 2)) and cols.responses == list(range(1, 600, 2))
    assert store.objects(598, 600)["rooms"] == [None, ["a", "b"]]
