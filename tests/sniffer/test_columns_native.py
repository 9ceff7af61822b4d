"""The native broadcast decoder gives the column store exactly what the pure path gives.

Every row is decoded twice, by a store that reads classic broadcasts natively
(``ColumnStore.native``, the default where the extension is built) and by one that reads
every row in Python; codes (compared as values), error and request lists, and object cells
must be identical, on the captured Node traffic and on hostile payloads.
"""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siotools.protocol import Dialect, columnar, encode_broadcast
from siotools.sniffer import Capture
from siotools.sniffer.columns import CHUNK, OBJECT_COLUMNS, ColumnStore, RowDecoder
from tests.protocol.vectors import all_messages

pytestmark = pytest.mark.skipif(not columnar.AVAILABLE, reason="native decoder not built")

CATEGORIES = ("kind", "dialect", "nsp", "event", "uid", "type", "frame", "request_id", "error")
Record = tuple[int, bytes, bytes, bool]


def _stores(
    records: list[Record], prefix: str = "socket.io", max_size: int | None = None
) -> tuple[ColumnStore, ColumnStore]:
    native = ColumnStore(RowDecoder(prefix, max_size=max_size))
    pure = ColumnStore(RowDecoder(prefix, max_size=max_size))
    pure.native = False
    native.extend(records)
    pure.extend(records)
    return native, pure


def _values(store: ColumnStore) -> dict[str, Any]:
    cols = store.decoded
    out: dict[str, Any] = {
        name: [cols.categorical(name).value(i) for i in range(len(cols))] for name in CATEGORIES
    }
    out["size"] = list(cols.size)
    out["lists"] = (cols.errors, cols.oversized, cols.requests, cols.responses)
    return out


def _same(a: Any, b: Any) -> bool:
    # NaN is not equal to itself: compare such cells by their repr (the same value read twice).
    return bool(a == b) or repr(a) == repr(b)


def assert_parity(records: list[Record], prefix: str = "socket.io", **kw: Any) -> None:
    native, pure = _stores(records, prefix, **kw)
    objs_n, objs_p = native.objects(), pure.objects()
    got, want = _values(native), _values(pure)
    assert got.keys() == want.keys()
    for name in got:
        # Element by element: a NaN event (decoded apart in each store) is not == itself.
        assert len(got[name]) == len(want[name]), name
        for i, (a, b) in enumerate(zip(got[name], want[name], strict=True)):
            assert _same(a, b), (name, i, a, b)
    for name in OBJECT_COLUMNS:
        assert len(objs_n[name]) == len(objs_p[name]) == len(records)
        for i, (a, b) in enumerate(zip(objs_n[name], objs_p[name], strict=True)):
            assert type(a) is type(b) and _same(a, b), (name, i, a, b, records[i][2])


def _broadcasts(n: int, distinct: bool = True) -> list[Record]:
    out = []
    for i in range(n):
        ch, p = encode_broadcast(
            uid="Ab3_xZ",
            data=["chat message", {"user": f"user{i % 50}", "n": i if distinct else 0}],
            rooms=[f"room{i % 20}"],
            dialect=Dialect.CURRENT if i % 3 else Dialect.LEGACY,
        )
        out.append((i, ch.encode(), bytes(memoryview(p)), False))
    return out


@pytest.mark.parametrize("group", sorted({m.group for m in all_messages()}))
def test_every_captured_vector(group: str) -> None:
    msgs = [m for m in all_messages() if m.group == group]
    for prefix in ("socket.io", "myapp"):
        mine = [m for m in msgs if ("myapp" in m.scenario) == (prefix == "myapp")]
        recs = [
            (k, m.channel.encode(), bytes(m.payload), "sharded" in m.scenario)
            for k, m in enumerate(mine * 2)  # twice: the repeated-payload path too
        ]
        if recs:
            assert_parity(recs, prefix)


def test_the_native_path_reads_typical_broadcasts() -> None:
    # Not a vacuous parity: the broadcasts are read natively (ok), and read right.
    native, _ = _stores(_broadcasts(10))
    cols = native.decode()
    assert [cols.event.value(i) for i in range(10)] == ["chat message"] * 10
    assert [cols.dialect.value(i) for i in range(3)] == ["legacy", "current", "current"]
    assert native.objects(4, 5)["args"] == [[{"user": "user4", "n": 4}]]
    assert native.objects(4, 5)["rooms"] == [["room4"]]


def test_chunks_tail_and_rows_already_coded() -> None:
    recs = _broadcasts(CHUNK + 300)
    # A request and a malformed payload among them, one on each side of the chunk boundary.
    for at in (CHUNK - 1, CHUNK + 1, 5):
        req = b'{"uid":"x","requestId":"r%d","type":1}' % at
        recs[at] = (at, b"socket.io-request#/#", req, False)
    recs[CHUNK] = (CHUNK, recs[0][1], b"\x93\xa1u\x81", False)
    native, pure = _stores(recs)
    for store in (native, pure):
        store.decode(CHUNK - 7)  # codes for the first rows, then objects across the line
    a, b = native.objects(10, CHUNK + 200), pure.objects(10, CHUNK + 200)
    assert a == b
    assert _values(native) == _values(pure)
    assert_parity(recs)


def test_sharded_rows_and_other_channels_go_the_ordinary_way() -> None:
    recs = _broadcasts(6)
    recs[1] = (1, recs[1][1], recs[1][2], True)  # an SPUBLISH of the same bytes
    recs[2] = (2, b"socket.io-request#/#", recs[2][2], False)
    recs[3] = (3, b"otherapp#/#", recs[3][2], False)
    assert_parity(recs)


def test_oversized_payloads() -> None:
    recs = _broadcasts(4)
    ch, big = encode_broadcast(uid="u", data=["big", "x" * 1000])
    recs.append((9, ch.encode(), big, False))
    assert_parity(recs, max_size=200)


def _packed(uid: Any, packet: Any, opts: Any) -> bytes:
    return msgpack.packb([uid, packet, opts])


HOSTILE = [
    _packed("u", {"type": 2, "data": ["ev", 1]}, {"rooms": [], "except": [], "flags": {}}),
    _packed("u", {"type": 5, "data": ["ev", b"\x00\x01"]}, {"rooms": ["a"], "flags": {}}),
    _packed("u", {"type": 5.0, "data": ["ev"]}, {"except": ["b"], "rooms": [], "flags": {}}),
    _packed("u", {"type": True, "data": ["ev"]}, {"rooms": "notalist", "flags": []}),
    _packed("u", {"data": []}, {"rooms": []}),
    _packed("u", {"data": "x"}, {}),
    _packed("u", {"type": 2}, {}),
    _packed("u", {"data": [1, 2]}, {"rooms": []}),
    _packed("u", {"data": [["ev"], 2]}, {"rooms": []}),
    _packed(7, {"data": ["ev"]}, {}),
    _packed("u", ["data"], {}),
    _packed("u", {"data": ["ev"]}, [1]),
    _packed("u", {"data": ["ev", {1: 2, 2.5: None, b"k": True}]}, {"rooms": [], "rooms2": 1}),
    _packed("u", {"data": ["ev", float("nan"), float("inf"), -0.0]}, {"rooms": [], "flags": {}}),
    _packed("u", {"data": [float("nan")]}, {"rooms": []}),
    _packed("u", {"data": ["ev", 2**64 - 1, -(2**63), 2**32, 1.5]}, {"rooms": []}),
    _packed("u", {"data": ["ev"], 3: 4}, {"rooms": [], 5: 6}),
    _packed("u", {"data": ["ev"], "data ": ["x"]}, {"rooms": ["a"], "except": ["b"]}),
    _packed("u", {"data": ["ev", msgpack.ExtType(0, b"\x00")]}, {"rooms": []}),
    _packed("u", {"data": ["ev", msgpack.ExtType(42, b"xyz")]}, {"rooms": []}),
    _packed("u", {"data": ["ev", msgpack.Timestamp(1, 2)]}, {"rooms": []}),
    _packed("u", {"data": ["ev", "\x00\xcf\x00\x00\x00\x00"]}, {"rooms": []}),
    _packed("u", {"data": ["ev", "é", "\U0001f600", "日本"]}, {"rooms": ["é"]}),
    # Duplicate keys: the last value wins, the first key keeps its place.
    b"\x93\xa1u\x82\xa4data\x91\xa1a\xa4data\x91\xa1b\x83\xa5rooms\x91\xa1x\xa5rooms\x90\xa5flags\x80",
    b"\x93\xa1u\x81\xa4data\x91\xa2ev\x82\xa6except\x90\xa6except\x91\xa1z",
    # Bad UTF-8 (overlong, surrogate, truncated, above U+10FFFF) in a value, a key, the uid.
    b"\x93\xa1u\x81\xa4data\x92\xa2ev\xa2\xc0\xaf\x81\xa5rooms\x90",
    b"\x93\xa1u\x81\xa4data\x92\xa2ev\xa3\xed\xa0\x80\x81\xa5rooms\x90",
    b"\x93\xa1u\x81\xa4data\x92\xa2ev\xa2\xe2\x82\x81\xa5rooms\x90",
    b"\x93\xa1u\x81\xa4data\x92\xa2ev\xa4\xf4\x90\x80\x80\x81\xa5rooms\x90",
    b"\x93\xa2\xff\xfe\x81\xa4data\x91\xa2ev\x81\xa5rooms\x90",
    b"\x93\xa1u\x81\xa4data\x91\xa2ev\x81\xa2\xc3\x28\x90",
    # Truncated, trailing bytes, lengths past the end, reserved byte, unhashable key.
    b"\x93\xa1u\x81\xa4data\x91\xa2ev\x81\xa5rooms",
    b"\x93\xa1u\x81\xa4data\x91\xa2ev\x81\xa5rooms\x90\x00",
    b"\x93\xa1u\x81\xa4data\xdd\xff\xff\xff\xff\x81\xa5rooms\x90",
    b"\x93\xa1u\x81\xa4data\x91\xdb\xff\xff\xff\xff\x81\xa5rooms\x90",
    b"\x93\xa1u\x81\xa4data\x92\xa2ev\xc6\x7f\xff\xff\xff\x80",
    b"\x93\xa1u\x81\xa4data\x92\xa2ev\xc1\x80",
    b"\x93\xa1u\x81\xa4data\x92\xa2ev\x81\x91\x01\x02\x80",
    b"\x93\xa1u\x81\xa4data\x92\xa2ev\x81\x80\x01\x80",
    b"\x93",
    b"\x93\xa1u",
    b"\x92\xa1u\x80",
    b"",
    # Nesting deeper than the native reader goes (msgpack-python reads it).
    b"\x93\xa1u\x81\xa4data\x92\xa2ev" + b"\x91" * 300 + b"\x01\x81\xa5rooms\x90",
]


def test_hostile_payloads() -> None:
    ch = b"socket.io#/#"
    room = b"socket.io#/#r#"
    recs = [(i, ch if i % 2 else room, p, False) for i, p in enumerate(HOSTILE)]
    assert_parity(recs + [(len(recs) + i, *r[1:]) for i, r in enumerate(recs)])


def test_mutations_of_real_broadcasts() -> None:
    rng = random.Random(1605)
    base = [r for r in _broadcasts(40)] + [
        (0, b"socket.io#/#", bytes(m.payload), False)
        for m in all_messages()
        if m.payload[:1] == b"\x93" and "sharded" not in m.scenario
    ]
    recs: list[Record] = []
    for k in range(3000):
        _, ch, p, _ = base[k % len(base)]
        b = bytearray(p)
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            if op < 0.5 and b:
                b[rng.randrange(len(b))] = rng.randrange(256)
            elif op < 0.7 and b:
                del b[rng.randrange(len(b)) :]
            elif op < 0.85:
                b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
            elif b:
                i = rng.randrange(len(b))
                del b[i : i + rng.randint(1, 4)]
        recs.append((k, ch, bytes(b), False))
    assert_parity(recs)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
_values_st = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.integers(-5, 5), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    uid=st.text(max_size=6) | st.integers(0, 3),
    typ=st.sampled_from([2, 5, 5.0, "5", None, True]),
    data=st.lists(_values_st, max_size=4) | _values_st,
    opts=st.dictionaries(
        st.sampled_from(["rooms", "except", "flags", "x"]), _values_st, max_size=4
    ),
    cut=st.integers(0, 3),
)
def test_generated_broadcasts(uid: Any, typ: Any, data: Any, opts: Any, cut: int) -> None:
    packet = {"type": typ, "data": data, "nsp": "/"}
    p = msgpack.packb([uid, packet, opts])
    variants = [p, p[: len(p) - cut] if cut else p + b"\xc0"]
    recs = [(i, b"socket.io#/#", v, False) for i, v in enumerate(variants * 2)]
    assert_parity(recs)


def test_table_is_the_same_either_way() -> None:
    recs = _broadcasts(500) + [(500 + i, b"socket.io#/#", p, False) for i, p in enumerate(HOSTILE)]
    tables = []
    for native in (True, False):
        cap = Capture(prefix="socket.io")
        cap.columns.native = native
        cap.extend(recs)
        tables.append(cap.to_pandas())
    a, b = tables
    assert list(a.columns) == list(b.columns)
    for c in a.columns:
        left, right = list(a[c].astype(object)), list(b[c].astype(object))
        assert all(_same(x, y) for x, y in zip(left, right, strict=True)), c


def test_rows_appended_after_a_pass_are_decoded_too() -> None:
    first, more = _broadcasts(CHUNK + 5), _broadcasts(40)
    native, pure = _stores(first)
    for store in (native, pure):
        store.decode()
        store.extend(more)  # the arrays can still grow: no buffer left exported
        store.decode()
    assert _values(native) == _values(pure) and len(native.decoded) == CHUNK + 45
