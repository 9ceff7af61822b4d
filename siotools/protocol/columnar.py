"""Classic broadcasts decoded straight into table columns, in native code.

A capture's rows are mostly classic broadcasts (``[uid, packet, opts]`` in msgpack on a
``socket.io#/#`` or room channel). Decoding them one by one in Python costs about three
times what ``msgpack.unpackb`` alone costs, most of it in building objects the table never
shows (the packet and opts maps) and in per-row bookkeeping. :func:`broadcast_columns`
reads a whole chunk of rows in one call of the ``_columns`` extension: each broadcast's
codes (size, dialect, namespace, event, uid, packet type) go straight into int32 columns
and, when asked, its object cells (rooms, except, args, flags) into lists, with exactly the
values the ordinary path (:func:`siotools.protocol.wire.broadcast_parts` plus the
sniffer's row reader) gives.

The extension accepts only what it reads exactly and *declines* every other row (its ``ok``
byte is 0): any ext (the flavor-specific notepack / msgpack-lite forms), a uint64 notepack
may have wrapped, bad UTF-8, a key that is not hashable, deep nesting, trailing bytes, a
non-string event or uid, a shape that is not a broadcast, a payload over ``max_size``. The
caller decodes declined rows the ordinary way, so the result never depends on whether the
extension is there (:data:`AVAILABLE`); it is built by ``pip install`` where a C compiler
exists, and the pure path is used otherwise.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Final, NamedTuple, TypeAlias

from siotools.protocol.frames import Dialect

_columns: ModuleType | None
try:
    from siotools.protocol import _columns
except ImportError:  # built without a compiler: the ordinary path decodes every row
    _columns = None

__all__ = ["AVAILABLE", "CODE_COLUMNS", "BroadcastColumns", "Buffer", "broadcast_columns"]

Buffer: TypeAlias = Any
"""Anything with the buffer protocol: bytes, bytearray, memoryview, array.array."""

AVAILABLE: Final = _columns is not None
"""Whether the native decoder was built (else :func:`broadcast_columns` is not usable)."""

# What the opts shape says (wire.broadcast_parts): 8.x, else socket.io-redis 4.x/5.x.
_DIALECTS: Final = (Dialect.CURRENT.value, Dialect.LEGACY.value)

CODE_COLUMNS: Final = ("size", "dialect", "nsp", "event", "uid", "type")
"""The int32 columns of :attr:`BroadcastColumns.codes`, in order."""


class BroadcastColumns(NamedTuple):
    """What :func:`broadcast_columns` read from ``n`` rows.

    Attributes:
        ok: One byte per row: 1 when the row was a classic broadcast read here, 0 when it
            was declined (not a broadcast channel, or a payload the caller must decode).
        codes: ``len(CODE_COLUMNS)`` int32 columns of ``n`` rows each, one after the other
            (native byte order). ``size`` is set for every row, the others for ok rows.
        rooms: The rooms cell of each row (None where declined), or None when objects
            were not asked for; ``except_``, ``args``, ``flags`` likewise.
    """

    ok: bytes
    codes: bytes
    rooms: list[Any] | None
    except_: list[Any] | None
    args: list[Any] | None
    flags: list[Any] | None


def broadcast_columns(
    data: Buffer,
    offsets: Buffer,
    first: int,
    channel_codes: Buffer,
    sharded: Buffer,
    channel_fast: Buffer,
    channel_nsp: Buffer,
    max_size: int | None,
    dialect_column: tuple[dict[Any, int], list[Any]],
    type_codes: tuple[int, int],
    uid_column: tuple[dict[Any, int], list[Any]],
    event_column: tuple[dict[Any, int], list[Any]],
    objects: bool,
) -> BroadcastColumns:
    """Decode the classic broadcasts among ``n`` rows of joined payloads into columns.

    Args:
        data: The rows' payloads, joined.
        offsets: int64 offsets into ``data``; row ``k``'s payload is
            ``data[offsets[first + k] : offsets[first + k + 1]]``.
        first: The first row's index in ``offsets``.
        channel_codes: uint32 channel code of each of the ``n`` rows.
        sharded: One byte per row, 1 for SPUBLISH traffic (never read here: declined).
        channel_fast: One byte per channel code, 1 for classic broadcast / room channels.
        channel_nsp: int32 namespace code per channel code.
        max_size: Payloads over this many bytes are declined (None: no limit).
        dialect_column: ``(index, values)`` of the dialect column (:class:`Dialect` values,
            as in frames); a value is added (coded) when first seen.
        type_codes: Codes of ``EVENT`` and ``BINARY_EVENT`` in the type column.
        uid_column: ``(index, values)`` of the uid column (values added when new).
        event_column: ``(index, values)`` of the event column (values added when new).
        objects: Also build the object cells.

    Raises:
        RuntimeError: the extension is not built (check :data:`AVAILABLE` first).
        ValueError: the buffers do not describe the same rows.
    """
    if _columns is None:
        raise RuntimeError("the native column decoder is not built")
    got = _columns.broadcast_columns(
        data,
        offsets,
        first,
        channel_codes,
        sharded,
        channel_fast,
        channel_nsp,
        -1 if max_size is None else max_size,
        _DIALECTS,
        dialect_column,
        type_codes,
        uid_column,
        event_column,
        objects,
    )
    return BroadcastColumns(*got)
