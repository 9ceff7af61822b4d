"""JavaScript values that have no plain Python equivalent.

The wire carries a few JS values that Python lacks (``undefined``) or that need to remember
how Node encoded them so that re-encoding is byte-exact (typed arrays, a number notepack
wrapped into a uint64). Everything else maps onto plain Python: ``None`` for ``null``,
``bytes`` for a Node ``Buffer``, an aware UTC ``datetime`` for a ``Date``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, final

__all__ = ["TYPED_ARRAY_KINDS", "U64", "UNDEFINED", "TypedArray", "Undefined", "has_binary"]


@final
class Undefined:
    """The type of :data:`UNDEFINED`, JavaScript's ``undefined`` (a singleton)."""

    __slots__ = ()
    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = Undefined()
"""JavaScript ``undefined``.

notepack 2.x writes it as ``d4 00 00`` (kept as a map value), notepack 3.x as nil in arrays
and drops it from maps, msgpack-lite as nil, ``JSON.stringify`` drops it from objects and
writes ``null`` in arrays.
"""

# msgpack-lite 0.1.26 lib/ext-packer.js: the ext type code of each typed array class.
TYPED_ARRAY_KINDS: Final[dict[str, int]] = {
    "Int8Array": 0x11,
    "Uint8Array": 0x12,
    "Int16Array": 0x13,
    "Uint16Array": 0x14,
    "Int32Array": 0x15,
    "Uint32Array": 0x16,
    "Float32Array": 0x17,
    "Float64Array": 0x18,
    "Uint8ClampedArray": 0x19,
    "ArrayBuffer": 0x1A,
    "DataView": 0x1D,
}


@dataclass(frozen=True, slots=True)
class TypedArray:
    """A JS ``ArrayBuffer`` or typed array, for codecs that keep it apart from ``Buffer``.

    notepack 2.x writes every ArrayBuffer and view as ext type 0 with an ext8/16/32 header
    and cannot tell them apart, so it decodes to ``kind="ArrayBuffer"``. msgpack-lite gives
    each class its own ext type (see :data:`TYPED_ARRAY_KINDS`). notepack 3.x writes them as
    plain bin, which decodes to ``bytes``.

    Attributes:
        kind: The JS class name, a key of :data:`TYPED_ARRAY_KINDS`.
        data: The raw bytes (the whole underlying buffer, little-endian elements).
    """

    kind: str
    data: bytes

    def __post_init__(self) -> None:
        if self.kind not in TYPED_ARRAY_KINDS:
            raise ValueError(f"unknown typed array kind {self.kind!r}")
        if not isinstance(self.data, bytes):
            raise TypeError("TypedArray.data must be bytes")


class U64(int):
    """An integer that Node wrote as a uint64 (``cf``) whatever its magnitude.

    notepack.io writes every integral number >= 2**32 as ``cf`` + hi/lo uint32, computing
    each half modulo 2**32; an integral double >= 2**64 such as ``1e300`` therefore goes out
    as ``cf 00 00 00 00 00 00 00 00``, i.e. 0 in an oversized form. Decoding such a value
    gives a ``U64`` so that re-encoding reproduces the ``cf`` form. It compares equal to the
    plain ``int``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"U64({int(self)})"


def has_binary(obj: Any) -> bool:
    """Tell whether ``obj`` holds binary data anywhere (``bytes``, ``bytearray``, typed arrays).

    Mirrors has-binary2 as used by socket.io 2.x to pick packet type 5 (BINARY_EVENT).

    Args:
        obj: Any value made of dicts, lists, tuples and scalars.

    Returns:
        True if a binary value is found at any depth.
    """
    stack = [obj]
    while stack:
        item = stack.pop()
        t = type(item)
        if t is str or t is int or t is float or t is bool or item is None:
            continue
        if isinstance(item, (bytes, bytearray, memoryview, TypedArray)):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False
