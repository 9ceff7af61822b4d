"""siotools.protocol.safe: any decoded value becomes valid, printable JSON."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from siotools.protocol import U64, UNDEFINED, TypedArray
from siotools.protocol.safe import MAX_DEPTH, dumps, jsonable, text


def test_text_escapes_what_a_strict_encoder_or_a_terminal_refuses() -> None:
    assert text("plain room") == "plain room"
    assert text("caf\u00e9 \u2603") == "caf\u00e9 \u2603"
    assert text("\udcff") == "\\xff"  # the surrogate escape of byte 0xff
    assert text("a\ud800b") == "a\\ud800b"  # a lone surrogate from JSON
    assert text("\x1b[31mred\x07") == "\\x1b[31mred\\x07"
    assert text("two\nlines") == "two\\nlines".replace("\\n", "\\x0a")
    for s in ("\udcff", "a\ud800b", "\x1b"):
        text(s).encode("utf-8")  # strict


def test_jsonable_values() -> None:
    assert jsonable(b"\x00\xff") == {"$bin": "AP8="}
    assert jsonable(b"\x00\xff", binary="hex") == {"$bin": "00ff"}
    assert jsonable(TypedArray("Uint8Array", b"\x01")) == {"$typed": "Uint8Array", "$bin": "AQ=="}
    assert jsonable([UNDEFINED, U64(5), (1, 2)]) == [None, 5, [1, 2]]
    assert jsonable(float("nan")) == {"$num": "NaN"}
    assert jsonable([float("inf"), float("-inf")]) == [{"$num": "Infinity"}, {"$num": "-Infinity"}]
    assert jsonable(dt.datetime(2020, 1, 1, tzinfo=dt.UTC)) == "2020-01-01T00:00:00+00:00"
    assert jsonable({b"\xff": 1, 2: "\ud800"}) == {"\\xff": 1, "2": "\\ud800"}


def test_deep_nesting_is_cut_not_fatal() -> None:
    deep: object = "bottom"
    for _ in range(100_000):  # far beyond the recursion limit
        deep = [deep]
    out = jsonable(deep)
    depth = 0
    while isinstance(out, list):
        out, depth = out[0], depth + 1
    assert depth == MAX_DEPTH and out == {"$deep": 1}
    json.loads(dumps(deep))


class Weird:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_unknown_objects_never_raise() -> None:
    assert jsonable(Weird()) == "<Weird>"
    assert jsonable(object()).startswith("<object object")


ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=300)
@given(ANY)
def test_dumps_is_always_strict_utf8_json(value: object) -> None:
    out = dumps(value)
    out.encode("utf-8")  # strict
    json.loads(out)
