"""JSON.stringify equivalence (expected strings were produced by Node 20's JSON.stringify)."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siotools.protocol import UNDEFINED, TypedArray, js_number, js_parse, js_stringify
from tests.protocol.vectors import all_messages

NODE_OUTPUTS = [
    (
        [
            0,
            -0.0,
            1,
            -1,
            2.5,
            1e20,
            1e21,
            1.5e-7,
            0.000001,
            123456789012345680000,
            5e-324,
            1.7976931348623157e308,
            0.1 + 0.2,
            -1e-7,
            4294967296,
            9007199254740993,
        ],
        "[0,0,1,-1,2.5,100000000000000000000,1e+21,1.5e-7,0.000001,123456789012345680000,"
        "5e-324,1.7976931348623157e+308,0.30000000000000004,-1e-7,4294967296,9007199254740992]",
    ),
    ([math.nan, math.inf, -math.inf], "[null,null,null]"),
    (
        'a"b\\c\n\t\b\f\r\u0000\u001f\u007f\u2028\u2029é日本😀',
        '"a\\"b\\\\c\\n\\t\\b\\f\\r\\u0000\\u001f\u007f\u2028\u2029é日本😀"',
    ),
    ("x\ud800y\udfffz", '"x\\ud800y\\udfffz"'),
    ("\ud83d\ude00", '"😀"'),
    ({"a": UNDEFINED, "b": [UNDEFINED, 1]}, '{"b":[null,1]}'),
    ({"b": 1, "2": 2, "a": 3, "1": 4, "01": 5}, '{"1":4,"2":2,"b":1,"a":3,"01":5}'),
    (b"\x01\x02\xff", '{"type":"Buffer","data":[1,2,255]}'),
    (
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=1700000000123),
        '"2023-11-14T22:13:20.123Z"',
    ),
    (TypedArray("Uint8Array", b"\x01\x02\x03"), '{"0":1,"1":2,"2":3}'),
    (TypedArray("ArrayBuffer", b"\x01\x02"), "{}"),
    (2.0, "2"),
    ({"k": [1.0, {"x": None}], "t": True, "f": False}, '{"k":[1,{"x":null}],"t":true,"f":false}'),
]


@pytest.mark.parametrize(("value", "expected"), NODE_OUTPUTS)
def test_matches_node(value: object, expected: str) -> None:
    assert js_stringify(value) == expected


def test_captured_json_payloads_restringify_exactly() -> None:
    count = 0
    for msg in all_messages():
        if msg.payload[:1] == b"{":
            assert js_stringify(js_parse(msg.payload)).encode() == msg.payload, msg.id
            count += 1
    assert count > 200


def test_rejects() -> None:
    with pytest.raises(ValueError):
        js_stringify(UNDEFINED)
    with pytest.raises(ValueError):
        js_stringify(object())
    with pytest.raises(ValueError):
        js_parse(b"NaN")
    with pytest.raises(ValueError):
        js_stringify(dt.datetime(2020, 1, 1))


@settings(max_examples=300)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_parse_back(value: float) -> None:
    text = js_number(value)
    assert float(text) == value
    if value.is_integer() and abs(value) < 1e21:
        assert "." not in text and "e" not in text


JSONABLE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200)
@given(JSONABLE)
def test_agrees_with_json_module_on_plain_data(value: object) -> None:
    text = js_stringify(value)
    assert js_parse(text) == json.loads(text)
    if not any(c in text for c in "\ud800\udfff"):
        reparsed = json.loads(text)
        assert js_stringify(reparsed) == text
