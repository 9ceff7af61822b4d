"""The Socket.IO Redis wire protocol: pure, no I/O.

Everything that knows a byte of the Redis adapters' protocol lives here: channel names,
the msgpack flavors of the Node libraries, ``JSON.stringify``-exact JSON, and one frozen
dataclass per message kind. No asyncio, no redis, no socketio.

Decoding and encoding::

    frame = decode(channel, payload, prefix="socket.io")   # -> Frame, raises DecodeError only
    channel, payload = encode(frame)                        # Node's bytes for Node's frames

``decode`` detects the dialect per message (``Dialect.LEGACY`` socket.io-redis 5.x/emitter
3.x, ``LEGACY_LITE`` 4.x, ``CURRENT`` redis-adapter 8.x/emitter 5.x, ``SHARDED``,
``PYSOCKETIO``) unless ``dialect=`` forces one. The frame kinds are:

* :class:`Broadcast` ``[uid, packet, opts]`` (all classic dialects; ``packet``/``opts`` are
  the wire maps, with typed properties ``event``, ``args``, ``rooms``, ``except_``...);
* legacy requests ``Legacy*Request`` (:class:`LegacyRequestType` 0-6) and responses
  ``LegacyClientsResponse``/``LegacyRoomsResponse``/``LegacyDataResponse``/
  ``LegacyEmptyResponse``;
* 8.x requests (:class:`RequestType` 0-7: ``SocketsRequest``, ``AllRoomsRequest``,
  ``RemoteJoinRequest``, ``RemoteLeaveRequest``, ``RemoteDisconnectRequest``,
  ``RemoteFetchRequest``, ``ServerSideEmitRequest``, ``BroadcastAckRequest``) and responses
  (``SocketsResponse``, ``RoomsResponse``, ``EmptyResponse``, ``ServerSideEmitResponse``,
  ``BroadcastClientCountResponse``, ``BroadcastAckResponse``);
* :class:`ClusterMessage` for the sharded adapter (:class:`ClusterMessageType`);
* :class:`StreamMessage` (a :class:`ClusterMessage`) for @socket.io/redis-streams-adapter
  stream entries: :func:`decode_entry` / :func:`encode_entry` (``Dialect.STREAMS``; its
  recovery sessions: :func:`decode_session`; :func:`heard_as` relabels its 0.3.x pub/sub
  maps, which :func:`decode` takes for the sharded adapter's, by how they were heard);
* :class:`PySocketIOMessage` / :class:`PickledMessage` for python-socketio's own channel
  (pickle is never unpickled unless ``allow_pickle=True``).

Hot paths for the adapter: :func:`unpack_broadcast` (the ``(uid, packet, opts)`` tuple, no
frame), :func:`decode_broadcast` (payload only, no channel parsing) and
:func:`encode_broadcast` / :func:`make_broadcast` (Node's key order per dialect; legacy
packet type 5 when the data holds binary, see :func:`has_binary`).

Channels: :class:`ChannelGrammar` renders (``broadcast``, ``room``, ``request``,
``response``, ``response_for``, ``sharded_response``), gives glob-escaped PSUBSCRIBE
patterns and parses channels into :class:`Channel` (:class:`ChannelKind`). Render methods
return ``str``.

Values: JS ``undefined`` is :data:`UNDEFINED`; a ``Buffer`` is ``bytes``; a ``Date`` is an
aware UTC ``datetime``; ArrayBuffers/typed arrays that notepack 2.x and msgpack-lite keep
apart from Buffers are :class:`TypedArray`; :class:`U64` marks notepack's wrapped uint64.
:func:`pack`/:func:`unpack` (:class:`MsgpackFlavor`) and :func:`js_stringify`/
:func:`js_parse` are the codecs underneath.
"""

from siotools.protocol.channels import Channel, ChannelGrammar, ChannelKind, glob_escape
from siotools.protocol.frames import (
    AllRoomsRequest,
    Broadcast,
    BroadcastAckRequest,
    BroadcastAckResponse,
    BroadcastClientCountResponse,
    ClusterMessage,
    ClusterMessageType,
    CurrentRequest,
    CurrentResponse,
    Dialect,
    EmptyResponse,
    Frame,
    LegacyAllRoomsRequest,
    LegacyClientRoomsRequest,
    LegacyClientsRequest,
    LegacyClientsResponse,
    LegacyCustomRequest,
    LegacyDataResponse,
    LegacyEmptyResponse,
    LegacyRemoteDisconnectRequest,
    LegacyRemoteJoinRequest,
    LegacyRemoteLeaveRequest,
    LegacyRequest,
    LegacyRequestType,
    LegacyResponse,
    LegacyRoomsResponse,
    PacketType,
    PickledMessage,
    PySocketIOMessage,
    RemoteDisconnectRequest,
    RemoteFetchRequest,
    RemoteJoinRequest,
    RemoteLeaveRequest,
    Request,
    RequestType,
    Response,
    RoomsResponse,
    ServerSideEmitRequest,
    ServerSideEmitResponse,
    SocketsRequest,
    SocketsResponse,
    dialect_family,
)
from siotools.protocol.jsjson import js_number, js_parse, js_stringify, js_stringify_bytes
from siotools.protocol.msgpack_codec import MsgpackFlavor, pack, unpack, unpack_detect
from siotools.protocol.streams import (
    RecoverySession,
    StreamMessage,
    decode_entry,
    decode_ephemeral,
    decode_session,
    encode_entry,
    encode_session,
    heard_as,
)
from siotools.protocol.values import U64, UNDEFINED, TypedArray, Undefined, has_binary
from siotools.protocol.wire import (
    decode,
    decode_broadcast,
    encode,
    encode_broadcast,
    grammar,
    make_broadcast,
    unpack_broadcast,
)

__all__ = [
    "U64",
    "UNDEFINED",
    "AllRoomsRequest",
    "Broadcast",
    "BroadcastAckRequest",
    "BroadcastAckResponse",
    "BroadcastClientCountResponse",
    "Channel",
    "ChannelGrammar",
    "ChannelKind",
    "ClusterMessage",
    "ClusterMessageType",
    "CurrentRequest",
    "CurrentResponse",
    "Dialect",
    "EmptyResponse",
    "Frame",
    "LegacyAllRoomsRequest",
    "LegacyClientRoomsRequest",
    "LegacyClientsRequest",
    "LegacyClientsResponse",
    "LegacyCustomRequest",
    "LegacyDataResponse",
    "LegacyEmptyResponse",
    "LegacyRemoteDisconnectRequest",
    "LegacyRemoteJoinRequest",
    "LegacyRemoteLeaveRequest",
    "LegacyRequest",
    "LegacyRequestType",
    "LegacyResponse",
    "LegacyRoomsResponse",
    "MsgpackFlavor",
    "PacketType",
    "PickledMessage",
    "PySocketIOMessage",
    "RecoverySession",
    "RemoteDisconnectRequest",
    "RemoteFetchRequest",
    "RemoteJoinRequest",
    "RemoteLeaveRequest",
    "Request",
    "RequestType",
    "Response",
    "RoomsResponse",
    "ServerSideEmitRequest",
    "ServerSideEmitResponse",
    "SocketsRequest",
    "SocketsResponse",
    "StreamMessage",
    "TypedArray",
    "Undefined",
    "decode",
    "decode_broadcast",
    "decode_entry",
    "decode_ephemeral",
    "decode_session",
    "dialect_family",
    "encode",
    "encode_broadcast",
    "encode_entry",
    "encode_session",
    "glob_escape",
    "grammar",
    "has_binary",
    "heard_as",
    "js_number",
    "js_parse",
    "js_stringify",
    "js_stringify_bytes",
    "make_broadcast",
    "pack",
    "unpack",
    "unpack_broadcast",
    "unpack_detect",
]
