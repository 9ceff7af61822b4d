"""Hand one broadcast to the local sockets of a python-socketio ``AsyncServer``, fast.

python-socketio sends a packet to one socket through five coroutine layers
(``AsyncServer._send_eio_packet`` -> ``engineio.AsyncServer.send_packet`` ->
``_get_socket`` -> ``AsyncSocket.send`` -> ``check_ping_timeout`` -> ``Queue.put``), all
per recipient. :class:`LocalDelivery` encodes the Socket.IO and Engine.IO packets once per
broadcast and puts them straight into each socket's outgoing queue, doing per recipient
only what ``AsyncSocket.send`` does that matters: skip a closed socket, and let a socket
whose ping timed out go through python-engineio's own ``send`` (which closes it). What is
left per recipient is python-engineio's writer task and the websocket's frame write.

It relies on these python-engineio / python-socketio internals, each pinned by
``tests/test_delivery.py``: ``AsyncServer.eio.sockets`` (Engine.IO sid -> socket),
``AsyncSocket.queue`` (an unbounded ``asyncio.Queue`` its writer drains), ``.closed``,
``.last_ping``, ``server.ping_timeout``, ``engineio.packet.Packet.encode_cache`` (the
writer calls ``encode()`` per packet and that returns the cache), the manager's
``pending_disconnect``, and python-socketio's text encoding of an EVENT being its
data-less packet followed by ``json.dumps(data, separators=(",", ":"))`` (stdlib JSON, which
fails on bytes with ``TypeError``: the binary case, left to python-socketio).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

from engineio import packet as eio_packet
from socketio import packet as sio_packet

from siotools.exceptions import ConfigurationError

__all__ = ["LocalDelivery"]


class LocalDelivery:
    """Deliver broadcasts to the sockets an ``AsyncServer`` holds.

    Args:
        server: The ``socketio.AsyncServer`` (asyncio; its Engine.IO sockets' queues must
            be ``asyncio.Queue``).

    Attributes:
        delivered: Packets handed to a socket's queue so far (one per recipient).
        volatile_dropped: Volatile packets not sent because the socket had some queued.
    """

    def __init__(self, server: Any) -> None:
        eio = getattr(server, "eio", None)
        if eio is None or not isinstance(getattr(eio, "sockets", None), dict):
            raise ConfigurationError(
                "LocalDelivery needs a python-socketio AsyncServer (its .eio.sockets dict "
                "of Engine.IO sockets)"
            )
        self.server = server
        self._sockets: dict[str, Any] = eio.sockets
        self._eio = eio
        # The JSON shortcut is exact only for python-socketio's own Packet with the stdlib
        # JSON module (AsyncServer(json=...) or a msgpack packet class may differ).
        self._plain_json = (
            server.packet_class is sio_packet.Packet
            and getattr(server.packet_class.json, "dumps", None) is json.dumps
        )
        self._json = json.JSONEncoder(separators=(",", ":")).encode
        self._heads: dict[str, str] = {}
        self.delivered = 0
        self.volatile_dropped = 0

    def encode(self, nsp: str, data: list[Any]) -> list[Any]:
        """Return the Engine.IO MESSAGE packets of ``EVENT data`` in ``nsp``, encoded.

        One text packet, or a text packet and one per binary attachment.
        """
        packet_class = self.server.packet_class
        encoded: Any = None
        if self._plain_json:
            # python-socketio's Packet walks the whole payload looking for bytes, then calls
            # json.dumps(data, separators=(",", ":")), which builds a new JSONEncoder each
            # time. Here: its own header for this namespace (the packet without data), then
            # the same encoder, built once. The encoder raises TypeError on bytes: that is
            # the binary case, which goes python-socketio's way, attachments and all.
            head = self._heads.get(nsp)
            if head is None:
                head = self._heads[nsp] = packet_class(sio_packet.EVENT, None, nsp).encode()
            try:
                encoded = head + self._json(data)
            except TypeError:
                encoded = None
        if encoded is None:
            encoded = packet_class(sio_packet.EVENT, namespace=nsp, data=data).encode()
        if not isinstance(encoded, list):
            encoded = [encoded]
        out = []
        for part in encoded:
            eio_pkt = eio_packet.Packet(eio_packet.MESSAGE, part)
            # Fills encode_cache: python-engineio's writer calls encode() once per recipient
            # and gets the cached string back.
            eio_pkt.encode()
            out.append(eio_pkt)
        return out

    async def deliver(
        self,
        nsp: str,
        data: list[Any],
        recipients: Iterable[tuple[str, str]],
        volatile: bool = False,
    ) -> int:
        """Send ``[event, *args]`` to ``recipients`` in ``nsp``.

        Args:
            nsp: The namespace.
            data: ``[event, *args]``.
            recipients: ``(sid, eio_sid)`` pairs (the manager's room members).
            volatile: Drop the packet for a socket that still has packets queued, as Node's
                volatile flag does for a transport that is not writable.

        Returns:
            How many sockets the packet was queued for.
        """
        pkts = self.encode(nsp, data)
        pending = self.server.manager.pending_disconnect.get(nsp)
        sockets = self._sockets
        now = time.time()
        ping_timeout = self._eio.ping_timeout
        sent = 0
        slow: list[Any] = []
        for sid, eio_sid in recipients:
            if pending and sid in pending:
                continue
            sock = sockets.get(eio_sid)
            if sock is None or sock.closed:
                continue  # engineio send_packet: "Cannot send to sid", nothing queued
            queue: asyncio.Queue[Any] = sock.queue
            if volatile and queue.qsize():
                self.volatile_dropped += 1
                continue
            last_ping = sock.last_ping
            if last_ping and now - last_ping > ping_timeout:
                slow.append(sock)  # AsyncSocket.send closes it (check_ping_timeout)
                continue
            for p in pkts:
                queue.put_nowait(p)
            sent += 1
        for sock in slow:
            for p in pkts:
                await sock.send(p)
        self.delivered += sent
        return sent
