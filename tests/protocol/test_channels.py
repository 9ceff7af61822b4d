"""Channel grammar: rendering, parsing and glob patterns."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from siotools.protocol import ChannelGrammar, ChannelKind, glob_escape

G = ChannelGrammar()
NSPS = st.text(st.characters(blacklist_characters="#", blacklist_categories=["Cs"]), max_size=12)
NSPS = NSPS.map(lambda s: "/" + s)
ROOMS = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)
PREFIXES = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12).filter(
    lambda p: "#" not in p and "-re" not in p
)


def test_render() -> None:
    assert G.broadcast("/") == "socket.io#/#"
    assert G.room("/", "room1") == "socket.io#/#room1#"
    assert G.room("/", 123) == "socket.io#/#123#"
    assert G.request("/chat") == "socket.io-request#/chat#"
    assert G.response("/") == "socket.io-response#/#"
    assert G.response_for("/", "aUKtae") == "socket.io-response#/#aUKtae#"
    assert G.sharded_response("/", "3a88c21771af4c4d") == "socket.io#/#3a88c21771af4c4d#"
    assert G.room_bytes("/", "salle-é") == "socket.io#/#salle-é#".encode()
    assert ChannelGrammar("").prefix == "socket.io"


def test_parse_kinds() -> None:
    c = G.parse(b"socket.io#/chat#/chat#abc#")
    assert (c.kind, c.nsp, c.room) == (ChannelKind.ROOM, "/chat", "/chat#abc")
    c = G.parse(b"socket.io#/#")
    assert (c.kind, c.nsp, c.room) == (ChannelKind.BROADCAST, "/", None)
    c = G.parse("socket.io-request#/#")
    assert (c.kind, c.nsp) == (ChannelKind.REQUEST, "/")
    c = G.parse(b"socket.io-response#/#")
    assert c.kind is ChannelKind.RESPONSE
    c = G.parse(b"socket.io-response#/#aUKtae#")
    assert (c.kind, c.uid) == (ChannelKind.RESPONSE_UID, "aUKtae")
    assert G.parse(b"socketio").kind is ChannelKind.PYSOCKETIO
    for bad in (b"other#/#", b"socket.io#/", b"socket.io-request#/#x#", b"\xff#", b"socket.io#/#a"):
        assert G.parse(bad).kind is ChannelKind.UNKNOWN
    assert G.parse(b"socket.io#/#", nsps={"/chat"}).kind is ChannelKind.UNKNOWN
    assert G.parse(b"socket.io#/chat#", nsps={"/chat"}).kind is ChannelKind.BROADCAST
    assert G.parse("socket.io#/#salle-é#".encode()).room == "salle-é"


def test_parse_is_cached() -> None:
    assert G.parse(b"socket.io#/#room1#") is G.parse(b"socket.io#/#room1#")


def test_glob_escape_and_patterns() -> None:
    assert glob_escape("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"
    g = ChannelGrammar("my*app")
    assert g.broadcast_pattern("/") == "my\\*app#/#*"
    assert g.sniffer_patterns() == ("my\\*app#*", "my\\*app-request#*", "my\\*app-response#*")
    assert ChannelGrammar().broadcast_pattern("/") == "socket.io#/#*"


@settings(max_examples=60)
@given(PREFIXES, NSPS, ROOMS)
def test_room_roundtrip(prefix: str, nsp: str, room: str) -> None:
    g = ChannelGrammar(prefix)
    for channel in (g.room(nsp, room), g.room(nsp, room).encode()):
        parsed = g.parse(channel)
        assert parsed.kind is ChannelKind.ROOM
        assert (parsed.prefix, parsed.nsp, parsed.room) == (prefix, nsp, room)


@settings(max_examples=60)
@given(PREFIXES, NSPS, st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=10))
def test_other_roundtrips(prefix: str, nsp: str, uid: str) -> None:
    g = ChannelGrammar(prefix)
    assert g.parse(g.broadcast(nsp)).kind is ChannelKind.BROADCAST
    assert g.parse(g.request(nsp)).nsp == nsp
    assert g.parse(g.response(nsp)).kind is ChannelKind.RESPONSE
    parsed = g.parse(g.response_for(nsp, uid))
    assert (parsed.kind, parsed.nsp, parsed.uid) == (ChannelKind.RESPONSE_UID, nsp, uid)


def _redis_glob(pattern: str, text: str) -> bool:
    """Redis stringmatch for the subset used here: backslash escapes and '*'."""
    regex = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if c == "*" else re.escape(c)
        i += 1
    return re.fullmatch(regex, text, re.S) is not None


@settings(max_examples=60)
@given(PREFIXES, NSPS, ROOMS)
def test_broadcast_pattern_matches_own_channels_only(prefix: str, nsp: str, room: str) -> None:
    g = ChannelGrammar(prefix)
    pattern = g.broadcast_pattern(nsp)
    assert _redis_glob(pattern, g.broadcast(nsp))
    assert _redis_glob(pattern, g.room(nsp, room))
    assert not _redis_glob(pattern, g.request(nsp))
