"""Channel names of the Socket.IO Redis adapters, rendered and parsed for one prefix.

With ``K`` the prefix (the adapter's ``key``, ``socket.io`` by default) and ``N`` a namespace:

=================  ===========================  ==============================================
kind               channel                      used by
=================  ===========================  ==============================================
``BROADCAST``      ``K#N#``                     every dialect; sharded: also its requests
``ROOM``           ``K#N#room#``                single-room broadcasts; sharded: dynamic rooms
                                                and ``K#N#uid#`` responses
``REQUEST``        ``K-request#N#``             legacy and 8.x requests
``RESPONSE``       ``K-response#N#``            legacy and 8.x responses
``RESPONSE_UID``   ``K-response#N#uid#``        8.x ``publishOnSpecificResponseChannel``
``PYSOCKETIO``     ``socketio``                 python-socketio's own pub/sub manager
=================  ===========================  ==============================================

Rooms are not escaped by Node: they may contain ``#`` (socket.io 2.x ids look like
``/chat#abc``) and any unicode. Namespaces never contain ``#``, so a channel is parsed by
stripping the known prefix, taking the namespace up to the next ``#`` and the room as the
rest minus the trailing ``#``. Channels are rendered as ``str``; Redis carries their UTF-8
bytes (``*_bytes`` variants give those directly). :meth:`ChannelGrammar.parse` accepts both.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = ["Channel", "ChannelGrammar", "ChannelKind", "glob_escape"]

DEFAULT_PREFIX: Final = "socket.io"
DEFAULT_PYSOCKETIO_CHANNEL: Final = "socketio"
_CACHE_LIMIT: Final = 4096


class ChannelKind(enum.Enum):
    """What a channel is for (see the module docstring for the shapes)."""

    BROADCAST = "broadcast"
    ROOM = "room"
    REQUEST = "request"
    RESPONSE = "response"
    RESPONSE_UID = "response_uid"
    PYSOCKETIO = "pysocketio"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Channel:
    """A parsed channel.

    Attributes:
        kind: The channel kind.
        prefix: The prefix it was parsed with ('' for ``PYSOCKETIO`` and ``UNKNOWN``).
        nsp: The namespace, or None when the kind has none.
        room: The room of a ``ROOM`` channel (for the sharded adapter this may be the uid of
            a requesting server: ``K#N#uid#`` is its response channel).
        uid: The requester uid of a ``RESPONSE_UID`` channel.
        name: The channel as text.
    """

    kind: ChannelKind
    prefix: str
    nsp: str | None
    name: str
    room: str | None = None
    uid: str | None = None


def glob_escape(text: str) -> str:
    """Escape the Redis glob metacharacters ``\\ * ? [ ]`` in ``text`` for PSUBSCRIBE."""
    if not any(c in text for c in "\\*?[]"):
        return text
    return "".join("\\" + c if c in "\\*?[]" else c for c in text)


class ChannelGrammar:
    """Render and parse the channels of one prefix.

    Render methods return ``str``; parsing results are cached (channels repeat), so calling
    :meth:`parse` per message is a dict look-up after the first time.

    Args:
        prefix: The adapter's key (``socket.io`` by default; Node falls back to it for '').
        pysocketio_channel: The channel python-socketio's manager uses.
    """

    __slots__ = (
        "_cache",
        "_pre_bc",
        "_pre_req",
        "_pre_resp",
        "prefix",
        "pysocketio_channel",
    )

    def __init__(
        self,
        prefix: str = DEFAULT_PREFIX,
        *,
        pysocketio_channel: str = DEFAULT_PYSOCKETIO_CHANNEL,
    ) -> None:
        self.prefix = prefix or DEFAULT_PREFIX
        self.pysocketio_channel = pysocketio_channel
        self._pre_bc = self.prefix + "#"
        self._pre_req = self.prefix + "-request#"
        self._pre_resp = self.prefix + "-response#"
        self._cache: dict[bytes | str, Channel] = {}

    def __repr__(self) -> str:
        return f"ChannelGrammar({self.prefix!r})"

    # ------------------------------------------------------------------ rendering
    def broadcast(self, nsp: str) -> str:
        """``K#N#``: namespace-wide and multi-room broadcasts (sharded: all messages)."""
        return f"{self._pre_bc}{nsp}#"

    def room(self, nsp: str, room: str | int) -> str:
        """``K#N#room#``: a broadcast to exactly one room (numeric rooms as in 8.x)."""
        return f"{self._pre_bc}{nsp}#{room}#"

    def request(self, nsp: str) -> str:
        """``K-request#N#``."""
        return f"{self._pre_req}{nsp}#"

    def response(self, nsp: str) -> str:
        """``K-response#N#``."""
        return f"{self._pre_resp}{nsp}#"

    def response_for(self, nsp: str, uid: str) -> str:
        """``K-response#N#uid#``: the 8.x per-requester response channel."""
        return f"{self._pre_resp}{nsp}#{uid}#"

    def sharded_response(self, nsp: str, uid: str) -> str:
        """``K#N#uid#``: a sharded server's response channel."""
        return f"{self._pre_bc}{nsp}#{uid}#"

    def broadcast_bytes(self, nsp: str) -> bytes:
        """:meth:`broadcast` as UTF-8 bytes."""
        return self.broadcast(nsp).encode()

    def room_bytes(self, nsp: str, room: str | int) -> bytes:
        """:meth:`room` as UTF-8 bytes (a lone surrogate as U+FFFD, as Node writes it)."""
        name = self.room(nsp, room)
        try:
            return name.encode()
        except UnicodeEncodeError:
            # Node's Buffer.from(string) (node-redis channel names) replaces lone
            # surrogates with U+FFFD; a room a JSON client named "\ud800" must not crash.
            return name.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()

    # ------------------------------------------------------------------ patterns
    def broadcast_pattern(self, nsp: str) -> str:
        """``K#N#*`` with prefix and namespace glob-escaped: what a Node node PSUBSCRIBEs."""
        return f"{glob_escape(self._pre_bc + nsp)}#*"

    def sniffer_patterns(self) -> tuple[str, str, str]:
        """PSUBSCRIBE patterns covering every namespace's broadcast, request and response
        channels of this prefix.

        Pattern subscriptions are not counted by ``PUBSUB NUMSUB``, so a sniffer using them
        does not disturb the adapters' response counting (a plain SUBSCRIBE would).
        """
        return (
            glob_escape(self._pre_bc) + "*",
            glob_escape(self._pre_req) + "*",
            glob_escape(self._pre_resp) + "*",
        )

    # ------------------------------------------------------------------ parsing
    def parse(self, channel: bytes | str, nsps: frozenset[str] | set[str] | None = None) -> Channel:
        """Classify a channel.

        Args:
            channel: The channel as received (bytes from redis-py) or as text.
            nsps: If given, only these namespaces are recognised; others give ``UNKNOWN``.

        Returns:
            The parsed :class:`Channel`; never raises (undecodable names are ``UNKNOWN``).
        """
        if nsps is None:
            hit = self._cache.get(channel)
            if hit is not None:
                return hit
        parsed = self._parse(channel)
        if nsps is not None:
            if parsed.nsp is not None and parsed.nsp not in nsps:
                return Channel(ChannelKind.UNKNOWN, "", None, parsed.name)
            return parsed
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[channel] = parsed
        return parsed

    def _parse(self, channel: bytes | str) -> Channel:
        if isinstance(channel, (bytes, bytearray, memoryview)):
            try:
                name = bytes(channel).decode("utf-8")
            except UnicodeDecodeError:
                return Channel(ChannelKind.UNKNOWN, "", None, bytes(channel).decode("latin-1"))
        elif isinstance(channel, str):
            name = channel
        else:
            return Channel(ChannelKind.UNKNOWN, "", None, repr(channel))
        if name == self.pysocketio_channel:
            return Channel(ChannelKind.PYSOCKETIO, "", None, name)
        unknown = Channel(ChannelKind.UNKNOWN, "", None, name)
        prefix = self.prefix
        for head, kind in (
            (self._pre_req, ChannelKind.REQUEST),
            (self._pre_resp, ChannelKind.RESPONSE),
            (self._pre_bc, ChannelKind.BROADCAST),
        ):
            if not name.startswith(head):
                continue
            rest = name[len(head) :]
            cut = rest.find("#")
            if cut < 0:
                return unknown
            nsp = rest[:cut]
            tail = rest[cut + 1 :]
            if not tail:
                return Channel(kind, prefix, nsp, name)
            if not tail.endswith("#") or kind is ChannelKind.REQUEST:
                return unknown
            if kind is ChannelKind.RESPONSE:
                return Channel(ChannelKind.RESPONSE_UID, prefix, nsp, name, uid=tail[:-1])
            return Channel(ChannelKind.ROOM, prefix, nsp, name, room=tail[:-1])
        return unknown
