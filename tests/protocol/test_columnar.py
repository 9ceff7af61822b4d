"""The native column decoder's own contract (its results are checked row for row against
the pure path in tests/sniffer/test_columns_native.py)."""

from __future__ import annotations

from array import array

import pytest

from siotools.protocol import Dialect, columnar, encode_broadcast


def test_built_where_the_project_is_developed() -> None:
    # make install builds it (the extension is optional for installs without a compiler);
    # an install that silently lost it would take the slow path unnoticed.
    assert columnar.AVAILABLE


def _call(payloads: list[bytes], **over: object) -> columnar.BroadcastColumns:
    offsets = array("q", [0])
    for p in payloads:
        offsets.append(offsets[-1] + len(p))
    n = len(payloads)
    args: dict[str, object] = {
        "data": b"".join(payloads),
        "offsets": offsets,
        "first": 0,
        "channel_codes": array("I", [0] * n),
        "sharded": bytes(n),
        "channel_fast": b"\x01",
        "channel_nsp": array("i", [7]),
        "max_size": None,
        "dialect_column": ({None: -1}, []),
        "type_codes": (3, 4),
        "uid_column": ({None: -1}, []),
        "event_column": ({None: -1}, []),
        "objects": True,
    }
    args.update(over)
    return columnar.broadcast_columns(**args)  # type: ignore[arg-type]


def test_reads_broadcasts_and_declines_the_rest() -> None:
    _, legacy = encode_broadcast(uid="n1", data=["hi", 1], rooms=["r"], dialect=Dialect.LEGACY)
    _, current = encode_broadcast(uid="n2", data=["yo"], except_=["x"])
    dialects: tuple[dict[object, int], list[object]] = ({None: -1}, [])
    got = _call([legacy, b"{}", current, b"\x93\xa1u"], dialect_column=dialects)
    assert got.ok == b"\x01\x00\x01\x00"
    codes = array("i", got.codes)
    n = 4
    size, dialect, nsp, event, uid, type_ = (codes[k * n : (k + 1) * n] for k in range(6))
    assert list(size) == [len(legacy), 2, len(current), 3]
    assert [dialects[1][dialect[i]] for i in (0, 2)] == ["legacy", "current"]
    assert nsp[0] == nsp[2] == 7 and type_[0] == type_[2] == 3
    assert event[0] != event[2] and uid[0] != uid[2]
    assert got.args == [[1], None, [], None] and got.rooms == [["r"], None, [], None]
    assert got.except_ == [[], None, ["x"], None] and got.flags is not None


def test_sharded_rows_other_channels_and_oversized_are_declined() -> None:
    _, p = encode_broadcast(uid="n1", data=["hi"])
    assert _call([p], sharded=b"\x01").ok == b"\x00"
    assert _call([p], channel_fast=b"\x00").ok == b"\x00"
    assert _call([p], max_size=len(p) - 1).ok == b"\x00"
    assert _call([p], max_size=len(p)).ok == b"\x01"
    assert _call([p], objects=False).args is None


def test_buffers_that_do_not_match_are_refused() -> None:
    _, p = encode_broadcast(uid="n1", data=["hi"])
    with pytest.raises(ValueError, match="do not match"):
        _call([p], sharded=b"\x00\x00")
    with pytest.raises(ValueError, match="do not match"):
        _call([p], first=1)
    with pytest.raises(ValueError, match="out of range"):
        _call([p], offsets=array("q", [0, len(p) + 5]))
    with pytest.raises(ValueError, match="out of range"):
        _call([p, p], offsets=array("q", [0, len(p) * 2, len(p)]))
    with pytest.raises(TypeError, match="uid_column"):
        _call([p], uid_column=([], {}))
