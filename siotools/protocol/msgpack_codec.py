"""MessagePack as the Node peers write it: notepack.io 2.x/3.x and msgpack-lite 0.1.26.

Decoding always goes through msgpack-python's C unpacker, so its cost never depends on what
a payload holds. Two things the C unpacker cannot see are resolved without leaving it:

* notepack 2.x tells ``undefined`` (``d4 00``), a Date (``d7 00``) and an ArrayBuffer
  (``c7 len 00``) apart by the ext's *format byte*, which ``ext_hook`` does not receive;
* notepack wraps integral doubles >= 2**32 into a uint64 (``cf``); one whose high word is
  zero must stay a :class:`U64` so that re-encoding gives Node's bytes back.

When a payload may hold either (the byte patterns ``d4 00``..``d8 00`` or
``cf 00 00 00 00`` occur), every occurrence is rewritten into a private ext the hook can
recognise (``dX 00`` -> ``dX 7e``; ``cf 00 00 00 00`` -> ``c7 06 7f 00 00``, same length),
the rewritten payload is decoded, and the result is checked against a plain decode of the
original: an occurrence that was not a format byte (inside a string, say) changes a value
and fails the check, and the payload is then read exactly by a small pure-Python reader if
it is small, or as the plain decode (no :class:`U64` marks, notepack 2.x fixext forms
assumed) if it is large. Either way the cost stays a few C passes, whatever the bytes.

Encoding reproduces each library's choices (integral floats as ints, never float32, bin for
bytes, the ext forms of each flavor) so that what Python sends decodes in Node to the same
values, and re-encoding a decoded Node payload gives Node's bytes back.
"""

from __future__ import annotations

import datetime as _dt
import enum
import math
import struct
import threading
from typing import Any, Final

import msgpack

from siotools.exceptions import PayloadTooLargeError
from siotools.protocol.values import TYPED_ARRAY_KINDS, U64, UNDEFINED, TypedArray, Undefined

__all__ = [
    "EXACT_BELOW",
    "MsgpackFlavor",
    "PayloadTooLargeError",
    "check_size",
    "pack",
    "unpack",
    "unpack_detect",
    "unpack_flavored",
]

_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_KIND_BY_CODE: Final = {code: kind for kind, code in TYPED_ARRAY_KINDS.items()}
# msgpack-lite 0.1.26 lib/ext-packer.js: Date is ext 0x0D.
_LITE_DATE: Final = 0x0D
_LITE_CODES: Final = frozenset(_KIND_BY_CODE) | {_LITE_DATE}
# A uint64 whose high word is zero can only come from notepack wrapping a huge double
# (notepack.io encode.js: any integral number >= 2**32 goes out as cf + hi/lo).
_WIDE_MARK: Final = b"\xcf\x00\x00\x00\x00"


class MsgpackFlavor(enum.Enum):
    """Which Node msgpack library wrote (or should read) a payload."""

    NOTEPACK2 = "notepack2"
    """notepack.io 2.x: socket.io-redis 5.x, socket.io-emitter 3.x."""
    NOTEPACK3 = "notepack3"
    """notepack.io 3.x: @socket.io/redis-adapter 8.x, @socket.io/redis-emitter 5.x."""
    MSGPACK_LITE = "msgpack-lite"
    """msgpack-lite 0.1.26: socket.io-redis 4.x (socket.io 1.x)."""


class _NeedScan(Exception):
    """Raised inside the C unpacker when an ext's format byte matters."""


def _ext_hook(code: int, data: bytes) -> Any:
    # Exts that name a flavor (or need their format byte) go through _resolve, which keeps
    # track of the flavor; typical traffic has none.
    if code == 0 or code in _LITE_CODES:
        raise _NeedScan
    return msgpack.ExtType(code, data)


_unpackb = msgpack.unpackb
_AMBIGUOUS: Final = frozenset((1, 2, 4, 8, 16))
# Private ext types of the rewritten payload (see the module docstring).
_FIX0: Final = 0x7E
_WIDE: Final = 0x7F
_FIX_MARKS: Final = tuple(bytes((b, 0)) for b in range(0xD4, 0xD9))
_WIDE_REWRITE: Final = b"\xc7\x06\x7f\x00\x00"

EXACT_BELOW: Final = 4096
"""Payloads smaller than this that need a format byte are read by the exact reader."""


def check_size(payload: bytes, max_size: int | None) -> None:
    """Raise :class:`PayloadTooLargeError` when ``payload`` is over ``max_size`` bytes."""
    if max_size is not None and len(payload) > max_size:
        raise PayloadTooLargeError(len(payload), max_size)


class _Same:
    """Stands for an ambiguous ext 0 in the plain decode: equal to whatever was resolved."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0


_SAME: Final = _Same()


class _Never:
    """An ext the rewritten decode could not place: equal to nothing (fails the check)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 1


_NEVER: Final = _Never()


def _lite_ext(code: int, data: bytes) -> Any:
    if code == _LITE_DATE:
        ms = unpack(data)
        if type(ms) not in (int, float, U64):
            raise ValueError("msgpack-lite Date ext does not hold a number")
        return _from_ms(ms)
    return TypedArray(_KIND_BY_CODE[code], data)


def _plain_hook(code: int, data: bytes) -> Any:
    # The original payload, format bytes unknown: ambiguous ext 0 compare equal to anything.
    if code == 0:
        return _SAME if len(data) in _AMBIGUOUS else TypedArray("ArrayBuffer", data)
    if code in _LITE_CODES:
        return _lite_ext(code, data)
    return msgpack.ExtType(code, data)


def _guess_hook(code: int, data: bytes) -> Any:
    # Large payloads the rewrite could not settle: notepack 2.x's fixext forms assumed.
    if code == 0:
        n = len(data)
        if n == 1:
            return UNDEFINED
        if n == 8:
            hi, lo = struct.unpack(">iI", data)
            return _from_ms(hi * 0x100000000 + lo)
        return TypedArray("ArrayBuffer", data) if n not in _AMBIGUOUS else msgpack.ExtType(0, data)
    if code in _LITE_CODES:
        return _lite_ext(code, data)
    return msgpack.ExtType(code, data)


class _Resolver:
    """The ext hook of a rewritten payload; remembers which flavor the exts point to."""

    __slots__ = ("flavor",)

    def __init__(self) -> None:
        self.flavor: MsgpackFlavor | None = None

    def __call__(self, code: int, data: bytes) -> Any:
        n = len(data)
        if code == 0:  # every fixext 0 was rewritten: this is an ext8/16/32 ArrayBuffer
            self.flavor = MsgpackFlavor.NOTEPACK2
            return TypedArray("ArrayBuffer", data)
        if code == _FIX0:
            if n == 1:
                self.flavor = MsgpackFlavor.NOTEPACK2
                return UNDEFINED
            if n == 8:
                self.flavor = MsgpackFlavor.NOTEPACK2
                hi, lo = struct.unpack(">iI", data)
                return _from_ms(hi * 0x100000000 + lo)
            return msgpack.ExtType(0, data) if n in _AMBIGUOUS else _NEVER
        if code == _WIDE:
            if n == 6 and data[:2] == b"\x00\x00":
                return U64(int.from_bytes(data[2:], "big"))
            return _NEVER
        if code in _LITE_CODES:
            self.flavor = MsgpackFlavor.MSGPACK_LITE
            return _lite_ext(code, data)
        return msgpack.ExtType(code, data)


def _rewritten(payload: bytes) -> bytes:
    out = payload
    if 0xCF in out:
        out = out.replace(_WIDE_MARK, _WIDE_REWRITE)
    for mark in _FIX_MARKS:
        if mark in out:
            out = out.replace(mark, bytes((mark[0], _FIX0)))
    return out


def _resolve(payload: bytes, exact_below: int) -> tuple[Any, MsgpackFlavor | None]:
    if len(payload) < exact_below:
        return _Reader(payload).read_all()
    resolver = _Resolver()
    value = _unpackb(_rewritten(payload), strict_map_key=False, timestamp=3, ext_hook=resolver)
    try:
        plain = _unpackb(payload, strict_map_key=False, timestamp=3, ext_hook=_plain_hook)
        same = bool(plain == value)
    except Exception:
        same = False
    if same:
        return value, resolver.flavor
    # Some pattern was not a format byte (or a NaN defeats the comparison): a plain read.
    return _unpackb(payload, strict_map_key=False, timestamp=3, ext_hook=_guess_hook), None


def unpack_flavored(
    payload: bytes, *, max_size: int | None = None, exact_below: int = EXACT_BELOW
) -> tuple[Any, MsgpackFlavor | None]:
    """Decode one msgpack value of any Node flavor, and say which flavor its exts point to.

    The cost is that of msgpack-python's C unpacker (one pass, a few when the payload holds
    the byte patterns of notepack's ambiguous forms), never that of a Python loop per value.

    Args:
        payload: The complete payload; trailing bytes are an error, as in notepack.
        max_size: Refuse payloads larger than this many bytes (None: no limit).
        exact_below: Payloads smaller than this that hold an ambiguous form are read by the
            exact pure-Python reader (cheap at that size).

    Returns:
        ``(value, flavor)``; ``flavor`` is None when nothing in the payload is specific to
        one flavor. See :func:`unpack` for the values.

    Raises:
        PayloadTooLargeError: The payload is over ``max_size``.
        ValueError: (or another exception of msgpack) if the payload is malformed.
    """
    if max_size is not None and len(payload) > max_size:
        raise PayloadTooLargeError(len(payload), max_size)
    # memchr for one byte first: the five-byte search costs more than the check.
    if 0xCF in payload and _WIDE_MARK in payload:
        return _resolve(payload, exact_below)
    try:
        return _unpackb(payload, strict_map_key=False, timestamp=3, ext_hook=_ext_hook), None
    except _NeedScan:
        return _resolve(payload, exact_below)


def unpack(payload: bytes, *, max_size: int | None = None) -> Any:
    """Decode one msgpack value written by any of the Node flavors.

    Args:
        payload: The complete payload; trailing bytes are an error, as in notepack.
        max_size: Refuse payloads larger than this many bytes (None: no limit).

    Returns:
        The value: dict, list, str, int (:class:`U64` for a wrapped uint64), float, bool,
        None, bytes, datetime (UTC), :data:`UNDEFINED`, :class:`TypedArray`, or
        ``msgpack.ExtType`` for exts no flavor defines.

    Raises:
        PayloadTooLargeError: The payload is over ``max_size``.
        ValueError: (or another exception of msgpack) if the payload is malformed.
    """
    return unpack_flavored(payload, max_size=max_size)[0]


def unpack_detect(payload: bytes) -> tuple[Any, MsgpackFlavor | None]:
    """Decode like :func:`unpack` and say which flavor the exts found point to.

    Exact (it reads every format byte, so notepack 2.x's ext forms are told apart even in a
    payload the rewrite check cannot settle); a pure-Python pass, for tools and tests, not
    for traffic: use :func:`unpack_flavored` there.

    Returns:
        ``(value, flavor)``; ``flavor`` is None when nothing in the payload is specific to
        one flavor.
    """
    value, flavor = _Reader(payload).read_all()
    return value, flavor


class _Reader:
    """A pure-Python msgpack reader that sees format bytes (slow path only)."""

    __slots__ = ("buf", "flavor", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = bytes(buf)
        self.pos = 0
        self.flavor: MsgpackFlavor | None = None

    def read_all(self) -> tuple[Any, MsgpackFlavor | None]:
        value = self.read()
        if self.pos != len(self.buf):
            raise ValueError(f"{len(self.buf) - self.pos} trailing bytes")
        return value, self.flavor

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise ValueError("truncated payload")
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk

    def unpack_from(self, fmt: str, size: int) -> Any:
        return struct.unpack(fmt, self.take(size))[0]

    def read(self) -> Any:
        b = self.take(1)[0]
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0xA0 <= b <= 0xBF:
            return self.take(b & 0x1F).decode("utf-8")
        if 0x90 <= b <= 0x9F:
            return [self.read() for _ in range(b & 0x0F)]
        if 0x80 <= b <= 0x8F:
            return self.read_map(b & 0x0F)
        if b == 0xC0:
            return None
        if b == 0xC2:
            return False
        if b == 0xC3:
            return True
        if b in (0xC4, 0xC5, 0xC6):
            n = self.unpack_from(">" + "BHI"[b - 0xC4], 1 << (b - 0xC4))
            return self.take(n)
        if b in (0xC7, 0xC8, 0xC9):
            n = self.unpack_from(">" + "BHI"[b - 0xC7], 1 << (b - 0xC7))
            return self.read_ext(n, fixed=False)
        if b == 0xCA:
            return float(self.unpack_from(">f", 4))
        if b == 0xCB:
            return float(self.unpack_from(">d", 8))
        if 0xCC <= b <= 0xCF:
            size = 1 << (b - 0xCC)
            v = int(self.unpack_from(">" + "BHIQ"[b - 0xCC], size))
            return U64(v) if b == 0xCF and v < 0x100000000 else v
        if 0xD0 <= b <= 0xD3:
            return int(self.unpack_from(">" + "bhiq"[b - 0xD0], 1 << (b - 0xD0)))
        if 0xD4 <= b <= 0xD8:
            return self.read_ext(1 << (b - 0xD4), fixed=True)
        if b in (0xD9, 0xDA, 0xDB):
            n = self.unpack_from(">" + "BHI"[b - 0xD9], 1 << (b - 0xD9))
            return self.take(n).decode("utf-8")
        if b in (0xDC, 0xDD):
            n = self.unpack_from(">" + "HI"[b - 0xDC], 2 << (b - 0xDC))
            return [self.read() for _ in range(n)]
        if b in (0xDE, 0xDF):
            return self.read_map(self.unpack_from(">" + "HI"[b - 0xDE], 2 << (b - 0xDE)))
        raise ValueError(f"invalid msgpack byte 0x{b:02x}")

    def read_map(self, n: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for _ in range(n):
            key = self.read()
            out[key] = self.read()
        return out

    def read_ext(self, n: int, *, fixed: bool) -> Any:
        code = struct.unpack(">b", self.take(1))[0]
        data = self.take(n)
        if code == 0:
            # notepack.io 2.x decode.js: d4 00 = undefined, d7 00 = Date (ms as hi/lo
            # uint32), ext8/16/32 type 0 = ArrayBuffer; other fixext 0 are [type, Buffer].
            if fixed and n == 1:
                self.flavor = MsgpackFlavor.NOTEPACK2
                return UNDEFINED
            if fixed and n == 8:
                self.flavor = MsgpackFlavor.NOTEPACK2
                hi, lo = struct.unpack(">iI", data)
                return _from_ms(hi * 0x100000000 + lo)
            if not fixed:
                self.flavor = MsgpackFlavor.NOTEPACK2
                return TypedArray("ArrayBuffer", data)
            return msgpack.ExtType(code, data)
        if code == -1:
            return _from_timestamp(data)
        if code in _KIND_BY_CODE:
            self.flavor = MsgpackFlavor.MSGPACK_LITE
            return TypedArray(_KIND_BY_CODE[code], data)
        if code == _LITE_DATE:
            self.flavor = MsgpackFlavor.MSGPACK_LITE
            ms = _Reader(data).read_all()[0]
            if type(ms) not in (int, float, U64):
                raise ValueError("msgpack-lite Date ext does not hold a number")
            return _from_ms(ms)
        return msgpack.ExtType(code, data)


def _from_ms(ms: float) -> _dt.datetime:
    return _EPOCH + _dt.timedelta(milliseconds=ms)


def _from_timestamp(data: bytes) -> _dt.datetime:
    ts = msgpack.Timestamp.from_bytes(data)
    return _EPOCH + _dt.timedelta(seconds=ts.seconds, microseconds=ts.nanoseconds // 1000)


def _to_ms(value: _dt.datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC) for a JS Date")
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


# ---------------------------------------------------------------------------- encoding

_SIMPLE: Final = frozenset({str, int, bool, type(None), bytes})


def _plain(obj: Any) -> bool:
    """True when msgpack-python packs ``obj`` exactly as notepack would."""
    # Explicit loops and identity tests: this walk runs on every message an adapter emits,
    # and generator expressions or set look-ups double its cost.
    t = type(obj)
    if t is str or t is bool or obj is None or t is bytes:
        return True
    if t is int:
        return bool(-0x8000000000000000 <= obj < 0x10000000000000000)
    if t is float:
        return not obj.is_integer()
    if t is list or t is tuple:
        for x in obj:  # noqa: SIM110 - a loop, not all(genexpr): this is the hot path
            if not _plain(x):
                return False
        return True
    if t is dict:
        for k, v in obj.items():  # noqa: SIM110
            if type(k) is not str or not _plain(v):
                return False
        return True
    return False


_packers = threading.local()


def pack_plain(obj: Any) -> bytes:
    """msgpack of a value :func:`_plain` accepts (the common case), with a reused packer.

    ``msgpack.packb`` builds a new Packer per call, which costs twice the packing itself; a
    Packer is not thread-safe, so each thread keeps its own.
    """
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    return packer.pack(obj)  # type: ignore[no-any-return]


def is_plain(obj: Any) -> bool:
    """True when :func:`pack_plain` encodes ``obj`` as every Node flavor but msgpack-lite
    would (no integral floats, no JS-only values, ints within 64 bits)."""
    return _plain(obj)


def pack(obj: Any, flavor: MsgpackFlavor = MsgpackFlavor.NOTEPACK3) -> bytes:
    """Encode ``obj`` the way the given Node library encodes the equivalent JS value.

    Rules shared by the flavors: ``None`` is nil, ``bytes``/``bytearray`` are bin, str is
    str (fixstr/str8/str16/str32), lists and tuples are arrays, dicts are maps in insertion
    order, finite floats with an integral value are integers, other floats are float64
    (never float32). Per flavor:

    * notepack 2.x: :data:`UNDEFINED` is ``d4 00 00``; a datetime is ``d7 00`` + ms;
      :class:`TypedArray` is ext type 0 in ext8/16/32 form.
    * notepack 3.x: :data:`UNDEFINED` is nil in arrays and dropped from maps; a datetime is
      the timestamp ext -1 (32-bit form when it has no milliseconds); :class:`TypedArray`
      is bin.
    * msgpack-lite: :data:`UNDEFINED` is nil; numbers outside int32 are float64; a
      datetime is ext 0x0D; :class:`TypedArray` uses its kind's ext type.

    Args:
        obj: The value.
        flavor: The library to imitate.

    Returns:
        The msgpack bytes.

    Raises:
        ValueError: for values the flavor cannot carry (ints beyond 64 bits, naive
            datetimes, unknown types).
    """
    if flavor is not MsgpackFlavor.MSGPACK_LITE and _plain(obj):
        return pack_plain(obj)
    out = bytearray()
    _Encoder(out, flavor).write(obj)
    return bytes(out)


class _Encoder:
    __slots__ = ("flavor", "lite", "np2", "out")

    def __init__(self, out: bytearray, flavor: MsgpackFlavor) -> None:
        self.out = out
        self.flavor = flavor
        self.lite = flavor is MsgpackFlavor.MSGPACK_LITE
        self.np2 = flavor is MsgpackFlavor.NOTEPACK2

    def write(self, obj: Any) -> None:
        out = self.out
        t = type(obj)
        if obj is None:
            out.append(0xC0)
        elif t is bool:
            out.append(0xC3 if obj else 0xC2)
        elif t is str:
            self.write_str(obj)
        elif t is U64 and not self.lite:
            out.append(0xCF)
            out += struct.pack(">Q", int(obj) & 0xFFFFFFFFFFFFFFFF)
        elif isinstance(obj, int):
            self.write_number(int(obj))
        elif t is float:
            self.write_number(obj)
        elif isinstance(obj, (bytes, bytearray, memoryview)):
            self.write_bin(bytes(obj))
        elif t is list or t is tuple:
            n = len(obj)
            self.write_head(n, 0x90, 16, 0xDC)
            for item in obj:
                self.write(item)
        elif isinstance(obj, dict):
            self.write_map(obj)
        elif obj is UNDEFINED or isinstance(obj, Undefined):
            if self.np2:
                out += b"\xd4\x00\x00"
            else:
                out.append(0xC0)
        elif isinstance(obj, _dt.datetime):
            self.write_date(obj)
        elif isinstance(obj, TypedArray):
            self.write_typed(obj)
        elif isinstance(obj, msgpack.ExtType):
            self.write_ext(obj.code, obj.data, fixext=True)
        elif isinstance(obj, (list, tuple)):
            self.write(list(obj))
        else:
            raise ValueError(f"cannot encode a {t.__name__} value")

    def write_head(self, n: int, fix: int, fix_limit: int, base: int) -> None:
        if n < fix_limit:
            self.out.append(fix + n)
        elif n <= 0xFFFF:
            self.out.append(base)
            self.out += struct.pack(">H", n)
        else:
            self.out.append(base + 1)
            self.out += struct.pack(">I", n)

    def write_map(self, obj: dict[Any, Any]) -> None:
        if self.np2 or self.lite:
            items = list(obj.items())
        else:
            # notepack.io 3.x encode.js: keys whose value is undefined are skipped.
            items = [(k, v) for k, v in obj.items() if v is not UNDEFINED]
        self.write_head(len(items), 0x80, 16, 0xDE)
        for k, v in items:
            self.write(k)
            self.write(v)

    def write_str(self, s: str) -> None:
        data = s.encode("utf-8", "surrogatepass")
        n = len(data)
        out = self.out
        if n < 32:
            out.append(0xA0 + n)
        elif n < 256:
            out += bytes((0xD9, n))
        elif n <= 0xFFFF:
            out.append(0xDA)
            out += struct.pack(">H", n)
        else:
            out.append(0xDB)
            out += struct.pack(">I", n)
        out += data

    def write_bin(self, data: bytes) -> None:
        n = len(data)
        out = self.out
        # msgpack-lite write-type.js: bin8 only below 255 bytes.
        if n < (255 if self.lite else 256):
            out += bytes((0xC4, n))
        elif n <= 0xFFFF:
            out.append(0xC5)
            out += struct.pack(">H", n)
        else:
            out.append(0xC6)
            out += struct.pack(">I", n)
        out += data

    def write_number(self, value: float) -> None:
        out = self.out
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                out.append(0xCB)
                out += struct.pack(">d", value)
                return
            if self.lite:
                if not -0x80000000 <= value <= 0x7FFFFFFF:
                    out.append(0xCB)
                    out += struct.pack(">d", value)
                    return
                value = int(value)
            elif value >= 0x100000000:
                # notepack.io encode.js: hi = (v / 2**32) >>> 0, lo = v >>> 0 (wraps).
                out.append(0xCF)
                out += struct.pack(">Q", int(value) % 0x10000000000000000)
                return
            elif value < -0x80000000:
                out.append(0xD3)
                out += struct.pack(">q", int(value))
                return
            else:
                value = int(value)
        v = int(value)
        if self.lite and not -0x80000000 <= v <= 0x7FFFFFFF:
            # msgpack-lite write-type.js: value !== (value|0) -> float64.
            out.append(0xCB)
            out += struct.pack(">d", float(v))
            return
        if v >= 0:
            if v < 0x80:
                out.append(v)
            elif v < 0x100:
                out += bytes((0xCC, v))
            elif v < 0x10000:
                out.append(0xCD)
                out += struct.pack(">H", v)
            elif v < 0x100000000:
                out.append(0xCE)
                out += struct.pack(">I", v)
            elif v < 0x10000000000000000:
                out.append(0xCF)
                out += struct.pack(">Q", v)
            else:
                raise ValueError(f"integer {v} does not fit in 64 bits")
        elif v >= -0x20:
            out.append(v & 0xFF)
        elif v >= -0x80:
            out += bytes((0xD0, v & 0xFF))
        elif v >= -0x8000:
            out.append(0xD1)
            out += struct.pack(">h", v)
        elif v >= -0x80000000:
            out.append(0xD2)
            out += struct.pack(">i", v)
        elif v >= -0x8000000000000000:
            out.append(0xD3)
            out += struct.pack(">q", v)
        else:
            raise ValueError(f"integer {v} does not fit in 64 bits")

    def write_ext(self, code: int, data: bytes, *, fixext: bool) -> None:
        n = len(data)
        out = self.out
        fix = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}.get(n) if fixext else None
        if fix is not None:
            out.append(fix)
        elif n < (255 if self.lite else 256):
            out += bytes((0xC7, n))
        elif n <= 0xFFFF:
            out.append(0xC8)
            out += struct.pack(">H", n)
        else:
            out.append(0xC9)
            out += struct.pack(">I", n)
        out += struct.pack(">b", code)
        out += data

    def write_date(self, value: _dt.datetime) -> None:
        ms = _to_ms(value)
        if self.np2:
            # notepack.io 2.x encode.js: Date is fixext8 type 0, ms as hi/lo uint32.
            self.out += b"\xd7\x00" + struct.pack(">iI", ms // 0x100000000, ms & 0xFFFFFFFF)
        elif self.lite:
            sub = bytearray()
            _Encoder(sub, self.flavor).write_number(ms)
            self.write_ext(_LITE_DATE, bytes(sub), fixext=True)
        else:
            # notepack.io 3.x encode.js: timestamp 32 when whole seconds, else 64, else 96.
            s, rem = divmod(ms, 1000)
            ns = rem * 1000000
            if 0 <= s <= 0x3FFFFFFFF:
                if ns == 0 and s <= 0xFFFFFFFF:
                    self.out += b"\xd6\xff" + struct.pack(">I", s)
                else:
                    self.out += b"\xd7\xff" + struct.pack(">Q", (ns << 34) | s)
            else:
                self.out += b"\xc7\x0c\xff" + struct.pack(">Iq", ns, s)

    def write_typed(self, value: TypedArray) -> None:
        if self.np2:
            self.write_ext(0, value.data, fixext=False)
        elif self.lite:
            self.write_ext(TYPED_ARRAY_KINDS[value.kind], value.data, fixext=True)
        else:
            self.write_bin(value.data)
