"""msgpack flavors: notepack.io 2.x/3.x and msgpack-lite, both directions."""

from __future__ import annotations

import datetime as dt

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siotools.protocol import (
    U64,
    UNDEFINED,
    MsgpackFlavor,
    TypedArray,
    pack,
    unpack,
    unpack_detect,
)

NP2, NP3, LITE = MsgpackFlavor.NOTEPACK2, MsgpackFlavor.NOTEPACK3, MsgpackFlavor.MSGPACK_LITE
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def ms(n: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=n)


# Values and the bytes the Node libraries write for them (protocol notes, checked in Node).
CASES = [
    (NP3, ms(1704067200000), "d6ff65920080"),
    (NP3, ms(1704067200005), "d7ff01312d0065920080"),
    (NP3, {"a": UNDEFINED, "b": 1}, "81a16201"),
    (NP3, [UNDEFINED], "91c0"),
    (NP3, TypedArray("ArrayBuffer", b"\x01\x02\x03"), "c403010203"),
    (NP3, 3.5, "cb400c000000000000"),
    (NP3, 2**40, "cf0000010000000000"),
    (NP3, -33, "d0df"),
    (NP3, 2.0, "02"),
    (NP3, -0.0, "00"),
    (NP3, 1e300, "cf0000000000000000"),
    (NP3, "x" * 40, "d928" + "78" * 40),
    (NP2, UNDEFINED, "d40000"),
    (NP2, {"a": UNDEFINED}, "81a161d40000"),
    (NP2, ms(0), "d7000000000000000000"),
    (NP2, TypedArray("Uint8Array", b"\x04\x05"), "c7020004 05".replace(" ", "")),
    (NP2, 2147483648, "ce80000000"),
    (NP2, b"\xff" * 255, "c4ff" + "ff" * 255),
    (LITE, UNDEFINED, "c0"),
    (LITE, 2147483648, "cb41e0000000000000"),
    (LITE, TypedArray("Uint8Array", b"\x04\x05"), "d5120405"),
    (LITE, TypedArray("ArrayBuffer", b"\x01\x02\x03"), "c7031a010203"),
    (LITE, ms(0), "d40d00"),
    (LITE, b"\xff" * 255, "c500ff" + "ff" * 255),
]


@pytest.mark.parametrize(("flavor", "value", "hexed"), CASES)
def test_pack_like_node(flavor: MsgpackFlavor, value: object, hexed: str) -> None:
    assert pack(value, flavor).hex() == hexed


@pytest.mark.parametrize(("flavor", "value", "hexed"), CASES)
def test_unpack_then_pack_is_exact(flavor: MsgpackFlavor, value: object, hexed: str) -> None:
    data = bytes.fromhex(hexed)
    assert pack(unpack(data), flavor) == data


def test_legacy_examples_from_the_notes() -> None:
    e5 = bytes.fromhex(
        "93a641624331323383a47479706505a46461746193a362696ec403010203c70200040"
        "5a36e7370a12f82a5726f6f6d7390a5666c61677380"
    )
    value, flavor = unpack_detect(e5)
    assert flavor is NP2
    assert value[1]["data"] == ["bin", b"\x01\x02\x03", TypedArray("ArrayBuffer", b"\x04\x05")]
    assert pack(value, NP2) == e5
    e6 = bytes.fromhex(
        "93a641624331323383a47479706505a46461746193a362696ec403010203d5120405a36e7370a12f"
        "82a5726f6f6d73c0a5666c616773c0"
    )
    value, flavor = unpack_detect(e6)
    assert flavor is LITE
    assert value[1]["data"][2] == TypedArray("Uint8Array", b"\x04\x05")
    assert value[2] == {"rooms": None, "flags": None}
    assert pack(value, LITE) == e6


def test_ambiguous_ext0_uses_format_byte() -> None:
    assert unpack(bytes.fromhex("d40000")) is UNDEFINED
    assert unpack(bytes.fromhex("c7010000")) == TypedArray("ArrayBuffer", b"\x00")
    assert unpack(bytes.fromhex("d7000000018bcfe56800")) == ms(1700000000000)
    assert unpack(bytes.fromhex("c708000000018bcfe56800")) == TypedArray(
        "ArrayBuffer", bytes.fromhex("0000018bcfe56800")
    )
    assert unpack(bytes.fromhex("d50001 02".replace(" ", ""))) == msgpack.ExtType(0, b"\x01\x02")


def test_wrapped_uint64_keeps_its_form() -> None:
    value = unpack(bytes.fromhex("cf0000000000000005"))
    assert value == 5 and type(value) is U64
    assert pack(value, NP3).hex() == "cf0000000000000005"
    assert type(unpack(bytes.fromhex("cf0000000100000000"))) is int


def test_errors() -> None:
    for bad in ("", "c1", "9301", "a2ff", "93a1", "0102", "d7ff"):
        with pytest.raises(Exception):  # noqa: B017 - any error; decode() wraps them
            unpack(bytes.fromhex(bad))
    with pytest.raises(ValueError):
        pack(2**64)
    with pytest.raises(ValueError):
        pack(dt.datetime(2020, 1, 1))
    with pytest.raises(ValueError):
        pack(object())


VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False).filter(lambda f: not f.is_integer())
    | st.text()
    | st.binary(max_size=40),
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8), kids, max_size=5)
    ),
    max_leaves=20,
)
JS_EXTRAS = st.sampled_from(
    [UNDEFINED, ms(0), ms(1700000000123), ms(-5), TypedArray("ArrayBuffer", b"\x01")]
)


@settings(max_examples=200)
@given(VALUES, st.sampled_from([NP2, NP3, LITE]))
def test_roundtrip(value: object, flavor: MsgpackFlavor) -> None:
    data = pack(value, flavor)
    if flavor is LITE:
        # msgpack-lite writes integers beyond int32 as float64.
        assert pack(unpack(data), flavor) == data
    else:
        assert unpack(data) == value
        assert pack(unpack(data), flavor) == data


@settings(max_examples=100)
@given(st.lists(JS_EXTRAS | VALUES, max_size=4))
def test_roundtrip_js_values_notepack2(value: list[object]) -> None:
    data = pack(value, NP2)
    assert unpack(data) == value
    assert pack(unpack(data), NP2) == data


def test_pack_plain_is_safe_across_threads() -> None:
    import threading

    import msgpack

    from siotools.protocol.msgpack_codec import pack_plain

    values = [[i, "x" * (i % 50), {"k": [i, 1.5]}] for i in range(2000)]
    expected = [msgpack.packb(v, use_bin_type=True) for v in values]
    results: list[list[bytes]] = [[], [], [], []]

    def work(out: list[bytes]) -> None:
        for v in values:
            out.append(pack_plain(v))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(out == expected for out in results)
