"""Small frames that once killed the sniffer's output paths (issue: one small frame kills
``siotools sniff``), as ``(channel, payload)`` for a prefix."""

from __future__ import annotations

from siotools.protocol import ChannelGrammar, pack


def poison(key: str) -> list[tuple[bytes, bytes]]:
    """The poison frames of prefix ``key``: each is a real message shape a peer can send."""
    g = ChannelGrammar(key)
    deep: object = "bottom"
    for _ in range(500):
        deep = [deep]
    nested = pack(["u1", {"type": 2, "data": ["deep", deep], "nsp": "/"}, {"rooms": []}])
    # A legacy allRooms response holding a lone surrogate (JSON allows the escape).
    surrogate = b'{"requestid":"r1","rooms":["\\ud800","ok"]}'
    # A room whose name is not UTF-8: the room channel carries byte 0xff, and a JSON
    # rooms response carries the surrogate escape of that byte.
    bad_room = pack(["u1", {"type": 2, "data": ["ev", 1], "nsp": "/"}, {"rooms": ["r"]}])
    escaped = b'{"requestid":"r2","rooms":["\\udcff"]}'
    return [
        (g.broadcast("/").encode(), nested),
        (g.response("/").encode(), surrogate),
        (g.room_bytes("/", "x") .replace(b"#x#", b"#\xff#"), bad_room),
        (g.response("/").encode(), escaped),
        (g.broadcast("/").encode(), b"\x93\xa2u1\x83\xa4type\x02\xa4data\x92\xa2ev\xcb\x7f\xf8"
         b"\x00\x00\x00\x00\x00\x00\xa3nsp\xa1/\x81\xa5rooms\x90"),  # NaN argument
    ]  # fmt: skip
