"""``request_id_cut``: where a JSON request's or response's id can be swapped, and its promise."""

from __future__ import annotations

import dataclasses

import pytest

from siotools.protocol import decode
from siotools.protocol.wire import request_id_cut
from tests.sniffer.test_columns_json import OTHER_IDS, json_vectors, prefix_of, with_id


@pytest.mark.parametrize(
    ("payload", "cut"),
    [
        (b'{"uid":"u","requestId":"r1","type":1}', (b'{"uid":"u","requestId":"","type":1}', "r1")),
        (b'{"requestid":"\xc3\xa9","rooms":[]}', (b'{"requestid":"","rooms":[]}', "\u00e9")),
        (b'{"requestId":""}', (b'{"requestId":""}', "")),
        (b'{"requestId":"a\x7f"}', (b'{"requestId":""}', "a\x7f")),
        (b'{"requestId":"a\x1f"}', None),  # a control character: not JSON
        (b'{"requestId":"a\\u0041"}', None),  # any backslash
        (b'{"requestId":"a","x":"\\n"}', None),
        (b'{"requestId":"a","requestid":"b"}', None),  # the key twice
        (b'{"requestId":"a","requestId":"a"}', None),
        (b'{"requestId":"a","rooms":["requests"]}', None),  # another "request...
        (b'{"requestId":"\xff"}', None),  # not UTF-8
        (b'{"requestId":"\xed\xa0\x80"}', None),  # a surrogate
        (b'{"requestId" : "a"}', None),  # not as JSON.stringify writes it
        (b'{"requestId":7}', None),
        (b'{"requestId":"a', None),
        (b'{"uid":"u","type":1}', None),
    ],
)
def test_cuts(payload: bytes, cut: tuple[bytes, str] | None) -> None:
    assert request_id_cut(payload) == cut


def test_the_cut_ids_decode_as_the_protocol_says() -> None:
    # The promise, checked against decode() itself on the captured traffic: the same rest
    # with another id is the same frame with that id.
    checked = 0
    for m in json_vectors():
        p = bytes(m.payload)
        cut = request_id_cut(p)
        if cut is None:
            continue
        frame = decode(m.channel, p, prefix=prefix_of(m))
        assert getattr(frame, "request_id", None) == cut[1], m.id
        for rid in OTHER_IDS:
            other = with_id(p, rid)
            assert other is not None and request_id_cut(other) == (cut[0], rid.decode())
            got = decode(m.channel, other, prefix=prefix_of(m))
            assert got == dataclasses.replace(frame, request_id=rid.decode()), m.id  # type: ignore[call-arg]
        checked += 1
    assert checked > 200  # nearly every captured request and response has a cuttable id
