"""Every captured Node message decodes and re-encodes to Node's exact bytes."""

from __future__ import annotations

import pytest

from siotools.protocol import decode, encode
from tests.protocol.vectors import Captured, all_messages

MESSAGES = all_messages()


def test_all_groups_captured() -> None:
    groups = {m.group for m in MESSAGES}
    assert groups == {"legacy", "current", "emitter"}
    assert len(MESSAGES) > 300


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: m.id)
def test_reencode_is_byte_exact(msg: Captured) -> None:
    frame = decode(msg.channel.encode(), msg.payload, prefix=msg.meta["key"])
    assert encode(frame) == (msg.channel, msg.payload)


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: m.id)
def test_reencode_with_forced_dialect(msg: Captured) -> None:
    frame = decode(msg.channel, msg.payload, prefix=msg.meta["key"])
    again = decode(msg.channel, msg.payload, prefix=msg.meta["key"], dialect=frame.dialect)
    assert again == frame
