"""The C-only decode path: same values and flavors as the exact reader, cost independent of
what the payload holds, and the size limit."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from siotools.exceptions import DecodeError
from siotools.protocol import (
    U64,
    UNDEFINED,
    MsgpackFlavor,
    TypedArray,
    decode,
    decode_broadcast,
    pack,
    unpack_broadcast,
    unpack_detect,
)
from siotools.protocol.msgpack_codec import PayloadTooLargeError, unpack, unpack_flavored
from tests.protocol.test_msgpack_codec import CASES, JS_EXTRAS, VALUES, ms
from tests.protocol.vectors import all_messages

NP2, NP3, LITE = MsgpackFlavor.NOTEPACK2, MsgpackFlavor.NOTEPACK3, MsgpackFlavor.MSGPACK_LITE


def same(a: Any, b: Any) -> bool:
    """Deep equality that also compares types (U64 vs int, UNDEFINED vs None...)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def fast(payload: bytes) -> tuple[Any, MsgpackFlavor | None]:
    # exact_below=0: never hand over to the exact reader, whatever the size.
    return unpack_flavored(payload, exact_below=0)


MSGPACK_VECTORS = [m for m in all_messages() if m.payload and m.payload[0] != 0x7B]


@pytest.mark.parametrize("msg", MSGPACK_VECTORS, ids=lambda m: m.id)
def test_vectors_decode_like_the_exact_reader(msg: Any) -> None:
    exact = unpack_detect(msg.payload)
    got = fast(msg.payload)
    assert same(got[0], exact[0])
    assert got[1] == exact[1]


@pytest.mark.parametrize(("flavor", "value", "hexed"), CASES)
def test_cases_decode_like_the_exact_reader(flavor: MsgpackFlavor, value: Any, hexed: str) -> None:
    payload = bytes.fromhex(hexed)
    exact = unpack_detect(payload)
    got = fast(payload)
    assert same(got[0], exact[0]) and got[1] == exact[1]
    if flavor is not LITE:
        assert pack(got[0], flavor) == payload


def true_forms(value: Any) -> int:
    """How many notepack 2.x fixext-0 forms and wrapped uint64 a value is written with."""
    if isinstance(value, dict):
        return sum(true_forms(k) + true_forms(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(map(true_forms, value))
    if value is UNDEFINED or type(value) is U64 or isinstance(value, dt.datetime):
        return 1
    return int(isinstance(value, msgpack.ExtType) and value.code == 0)


def patterns(payload: bytes) -> int:
    return payload.count(b"\xcf\x00\x00\x00\x00") + sum(
        payload.count(bytes((b, 0))) for b in range(0xD4, 0xD9)
    )


@settings(max_examples=300)
@given(st.lists(JS_EXTRAS | VALUES | st.just(U64(7)) | st.just(1e300), max_size=6))
def test_random_notepack2_payloads_decode_exactly(value: list[Any]) -> None:
    payload = pack(value, NP2)
    exact = unpack_detect(payload)
    # Payloads where a pattern also occurs outside a format byte are the next test's.
    assume(patterns(payload) == true_forms(exact[0]))
    got = fast(payload)
    assert same(got[0], exact[0])
    assert got[1] == exact[1]


def test_patterns_inside_strings_do_not_change_values() -> None:
    text = "a\xcf\x00\x00\x00\x00b\xd4\x00c\xd7\x00"
    value_in = ["ev", text.encode("latin-1"), {"k": UNDEFINED}, U64(3), text]
    small = pack(value_in, NP2)
    value, flavor = unpack_flavored(small)  # small: read exactly
    assert same(value, value_in) and flavor is NP2
    big = pack([*value_in, ["y" * 100] * 100], NP2)
    with python_calls() as calls:
        value, _ = unpack_flavored(big)
    assert calls[0] < 50
    # Large and unsettled: read plainly, every value kept (the wrapped 3 is a plain 3).
    assert value == [*value_in, ["y" * 100] * 100]
    assert value[2]["k"] is UNDEFINED and value[1] == text.encode("latin-1")


@contextmanager
def python_calls() -> Iterator[list[int]]:
    """Count Python-level function calls made while the block runs."""
    count = [0]

    def prof(frame: Any, event: str, arg: Any) -> None:
        # Only siotools' own functions: the test runner's hooks (gc callbacks) are not the
        # decoder's cost.
        if event == "call" and "siotools" in frame.f_code.co_filename:
            count[0] += 1

    sys.setprofile(prof)
    try:
        yield count
    finally:
        sys.setprofile(None)


def big_payload(marker: bytes) -> bytes:
    # ~1 MB of typical broadcast data: many small values, one Buffer holding ``marker``.
    rows = [{"id": i, "name": f"user{i}", "tags": ["a", "b"], "x": i / 7} for i in range(20_000)]
    rows.append({"note": b"look: " + marker})
    return pack(["uid", {"type": 2, "data": ["rows", rows], "nsp": "/"}, {"rooms": []}], NP3)


@pytest.mark.parametrize("marker", [b"", b"\xcf\x00\x00\x00\x00", b"\xd4\x00", b"\xd7\x00"])
def test_decode_cost_does_not_depend_on_markers(marker: bytes) -> None:
    """A marker in a string once forced a Python loop per value (0.13 s/MB); the decode now
    runs in C whatever the bytes: a handful of Python calls for 100k values."""
    payload = big_payload(marker)
    assert marker in payload
    with python_calls() as calls:
        value = unpack(payload)
        fields = unpack_broadcast(payload)
    assert value[1]["data"][1][-1]["note"].endswith(marker)
    assert fields[2][1] == value[1]["data"][1]
    assert calls[0] < 50


def test_real_wide_int_and_notepack2_forms_in_a_big_payload() -> None:
    rows = [{"n": i, "s": "x" * 20} for i in range(5_000)]
    payload = pack(
        [rows, 1e300, U64(5), UNDEFINED, ms(1700000000000), TypedArray("ArrayBuffer", b"\x01")],
        NP2,
    )
    with python_calls() as calls:
        value, flavor = unpack_flavored(payload)
    assert calls[0] < 50
    assert value[0] == rows
    assert type(value[1]) is U64 and type(value[2]) is U64 and value[2] == 5
    assert value[3] is UNDEFINED and value[4] == ms(1700000000000)
    assert value[5] == TypedArray("ArrayBuffer", b"\x01")
    assert flavor is NP2
    assert pack(value, NP2) == payload


def test_max_size_drops_with_a_clear_error() -> None:
    payload = pack(["uid", {"type": 2, "data": ["ev", "x" * 1000], "nsp": "/"}, {}], NP3)
    for call in (
        lambda: unpack(payload, max_size=100),
        lambda: unpack_broadcast(payload, max_size=100),
        lambda: decode_broadcast(payload, max_size=100),
        lambda: decode(b"socket.io#/#", payload, max_size=100),
    ):
        with pytest.raises(PayloadTooLargeError) as err:
            call()
        assert isinstance(err.value, DecodeError)
        assert err.value.size == len(payload) and err.value.limit == 100
        assert "max_size" in str(err.value)
    assert decode(b"socket.io#/#", payload, max_size=len(payload)).event == "ev"
    with pytest.raises(PayloadTooLargeError) as err2:
        decode(b"socket.io#/#", payload, max_size=10)
    assert err2.value.channel == b"socket.io#/#"
