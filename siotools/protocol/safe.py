"""Any decoded value made safe to show: JSON-able, printable, valid UTF-8, bounded depth.

What comes off the wire is whatever a peer (or an attacker) wrote: lists nested hundreds of
levels deep, JSON strings holding lone surrogates (``"\\ud800"``), room names and channels
that are not UTF-8 at all (kept as surrogate escapes, ``"\\udcff"``), ``NaN``, binary.
Every output path (the sniffer's lines and JSON lines, a capture's table and ``.jsonl``
file, the CLI's ``--json``) goes through this module so that no such value can crash it:

* :func:`jsonable` turns a value into plain JSON types: binary becomes ``{"$bin": ...}``,
  a typed array ``{"$typed": kind, "$bin": ...}``, a non-finite number ``{"$num": "NaN"}``,
  a container deeper than ``max_depth`` ``{"$deep": depth}``, an unknown object its repr;
* :func:`text` makes a string printable as UTF-8 under any strict encoder: a surrogate
  escape (a byte that was not UTF-8) is shown as ``\\xff``, a lone surrogate as ``\\ud800``,
  control characters (terminal escape sequences) as ``\\x1b``;
* :func:`dumps` is ``json.dumps`` of :func:`jsonable` (valid, ASCII-compatible UTF-8 JSON).

Pure: no I/O, iterative where depth is attacker-controlled.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import json
import math
import re
from typing import Any, Final, Literal

from siotools.protocol.values import U64, TypedArray, Undefined

__all__ = ["MAX_DEPTH", "Binary", "dumps", "jsonable", "printable", "text"]

MAX_DEPTH: Final = 32
"""Containers nested deeper than this are cut (``{"$deep": depth}``)."""

Binary = Literal["base64", "hex"]
"""How :func:`jsonable` writes bytes in ``{"$bin": ...}``."""

# Surrogates (lone, or the escapes of undecodable bytes) and C0/C1 controls except none:
# a terminal interprets ESC, BEL, CR...; tabs and newlines are shown escaped too, so that
# one value is one line.
_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


_NON_FINITE: Final = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:  # surrogateescape of the byte c - 0xDC00
        return f"\\x{c - 0xDC00:02x}"
    if c >= 0xD800:
        return f"\\u{c:04x}"
    return f"\\x{c:02x}"


def text(value: str) -> str:
    """``value`` with surrogates and control characters written as escapes.

    The result encodes to UTF-8 under any strict encoder and holds no terminal control
    sequence. ASCII-printable text is returned as is (the common case costs one scan).
    """
    if value.isascii() and value.isprintable():
        return value
    return _UNSAFE.sub(_escape, value)


def _key(k: Any) -> str:
    if type(k) is str:
        return text(k)
    if isinstance(k, (bytes, bytearray)):
        return text(bytes(k).decode("utf-8", "surrogateescape"))
    return text(str(k))


def jsonable(value: Any, *, max_depth: int = MAX_DEPTH, binary: Binary = "base64") -> Any:
    """A JSON-serialisable, printable rendering of any decoded value.

    Strings go through :func:`text`; binary becomes ``{"$bin": base64 or hex}``, a typed
    array ``{"$typed": kind, "$bin": ...}``, a Date its ISO string, ``undefined`` null,
    ``NaN``/``Infinity`` ``{"$num": "NaN"}``; tuples become lists, enums their value, map
    keys strings; containers below ``max_depth`` levels become ``{"$deep": depth}``; other
    objects their (escaped) repr. Never raises for any value a decoder produces.
    """
    return _jsonable(value, max_depth, binary)


def _bin(data: bytes, binary: Binary) -> str:
    return data.hex() if binary == "hex" else base64.b64encode(data).decode("ascii")


def _jsonable(value: Any, depth: int, binary: Binary) -> Any:
    t = type(value)
    if value is None or t is bool or t is int:
        return value
    if t is str:
        return text(value)
    if t is float:
        return value if math.isfinite(value) else {"$num": _NON_FINITE[repr(value)]}
    if t is dict or t is list or t is tuple or isinstance(value, (dict, list, tuple)):
        if depth <= 0:
            return {"$deep": len(value)}
        d = depth - 1
        if isinstance(value, dict):
            return {_key(k): _jsonable(v, d, binary) for k, v in value.items()}
        return [_jsonable(v, d, binary) for v in value]
    if isinstance(value, U64):
        return int(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bin": _bin(bytes(value), binary)}
    if isinstance(value, Undefined):
        return None
    if isinstance(value, TypedArray):
        return {"$typed": value.kind, "$bin": _bin(value.data, binary)}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, depth, binary)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _jsonable(float(value), depth, binary)
    if isinstance(value, str):
        return text(str(value))
    try:
        r = repr(value)
    except Exception:  # a repr that fails (or recurses too deep) still gets a name
        r = f"<{type(value).__name__}>"
    return text(r)


def dumps(value: Any, *, max_depth: int = MAX_DEPTH, binary: Binary = "base64") -> str:
    """Compact JSON of :func:`jsonable` ``(value)``: always valid, printable UTF-8."""
    return json.dumps(
        jsonable(value, max_depth=max_depth, binary=binary),
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
    )


def printable(value: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` with every string in it passed through :func:`text`, types kept.

    For values shown as they are (a table's object cells) rather than as JSON: lists,
    tuples and dicts are rebuilt only where a string changed, so the common case returns
    ``value`` itself. Containers deeper than ``max_depth`` are left as they are.
    """
    out = _printable(value, max_depth)
    return value if out is _SAME else out


_SAME: Final = object()


def _printable(value: Any, depth: int) -> Any:
    t = type(value)
    if t is str:
        s = text(value)
        return _SAME if s is value or s == value else s
    if depth <= 0 or not (t is list or t is dict or t is tuple):
        return _SAME
    d = depth - 1
    if t is dict:
        changed = False
        items = []
        for k, v in value.items():
            k2, v2 = _printable(k, d), _printable(v, d)
            changed = changed or k2 is not _SAME or v2 is not _SAME
            items.append((k if k2 is _SAME else k2, v if v2 is _SAME else v2))
        return dict(items) if changed else _SAME
    new = [_printable(v, d) for v in value]
    if all(v is _SAME for v in new):
        return _SAME
    rebuilt = [old if v is _SAME else v for old, v in zip(value, new, strict=True)]
    return tuple(rebuilt) if t is tuple else rebuilt
