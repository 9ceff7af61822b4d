"""JSON exactly as Node's ``JSON.stringify`` / ``JSON.parse`` write and read it.

``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)`` is close but differs on
numbers (``2.0`` vs ``2``, ``1e+20`` vs ``100000000000000000000``, ``NaN``), on lone
surrogates (JS escapes them as ``\\udxxx`` since ES2019), on JS-only values and on the order
of integer-like keys. This module reproduces the JS output byte for byte.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import struct
from collections.abc import Callable
from typing import Any, Final

from siotools.protocol.values import U64, UNDEFINED, TypedArray, Undefined

__all__ = ["js_number", "js_parse", "js_stringify", "js_stringify_bytes"]

_encode_str = json.encoder.encode_basestring
_SURROGATES: Final = re.compile("[\ud800-\udfff]")
_PAIR: Final = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_INDEX_KEY: Final = re.compile(r"0|[1-9][0-9]*")
# Element formats of the typed arrays, for JSON.stringify of a view ({"0":v0,"1":v1,...}).
_ELEMENT: Final = {
    "Int8Array": "b",
    "Uint8Array": "B",
    "Uint8ClampedArray": "B",
    "Int16Array": "h",
    "Uint16Array": "H",
    "Int32Array": "i",
    "Uint32Array": "I",
    "Float32Array": "f",
    "Float64Array": "d",
}


def js_number(value: float) -> str:
    """Format a number like JS ``Number.prototype.toString`` (as JSON.stringify does).

    Non-finite numbers give ``null`` (JSON.stringify's rule), integral values have no
    ``.0``, exponents appear only below 1e-6 and from 1e21 on, as ``1e+21``.
    """
    if isinstance(value, int):
        if -(2**53) <= value <= 2**53:
            return str(int(value))
        value = float(value)
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "0"
    text = repr(float(value))
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    exp = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    if frac_part == "0":
        frac_part = ""
    digits = (int_part + frac_part).lstrip("0")
    # Position of the decimal point relative to the start of ``digits`` (ECMA-262 "n").
    point = (
        len(int_part) + exp
        if int_part != "0"
        else exp - (len(frac_part) - len(frac_part.lstrip("0")))
    )
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * (-point) + digits
    e = point - 1
    e_text = f"e+{e}" if e >= 0 else f"e-{-e}"
    if k == 1:
        return sign + digits + e_text
    return sign + digits[0] + "." + digits[1:] + e_text


def _js_string(s: str) -> str:
    out: str = _encode_str(s)
    if _SURROGATES.search(out) is None:
        return out
    # A surrogate pair in a Python str is one UTF-16 character in JS: keep it raw.
    out = _PAIR.sub(lambda m: m.group().encode("utf-16", "surrogatepass").decode("utf-16"), out)
    return _SURROGATES.sub(lambda m: f"\\u{ord(m.group()):04x}", out)


def _iso(value: _dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC) for a JS Date")
    utc = value.astimezone(_dt.UTC)
    ms = utc.microsecond // 1000
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc:%H:%M:%S}.{ms:03d}Z"


def _typed_json(value: TypedArray) -> dict[str, Any]:
    fmt = _ELEMENT.get(value.kind)
    if fmt is None:
        return {}
    size = struct.calcsize(fmt)
    count = len(value.data) // size
    elements = struct.unpack(f"<{count}{fmt}", value.data[: count * size])
    return {str(i): v for i, v in enumerate(elements)}


def _ordered_items(obj: dict[Any, Any]) -> list[tuple[str, Any]]:
    items = [(k if isinstance(k, str) else _key(k), v) for k, v in obj.items()]
    # Object.keys order: array-index keys ascending first, then the others as inserted.
    if any(_INDEX_KEY.fullmatch(k) and int(k) < 2**32 - 1 for k, _ in items):
        index = sorted(
            (kv for kv in items if _INDEX_KEY.fullmatch(kv[0]) and int(kv[0]) < 2**32 - 1),
            key=lambda kv: int(kv[0]),
        )
        rest = [kv for kv in items if not (_INDEX_KEY.fullmatch(kv[0]) and int(kv[0]) < 2**32 - 1)]
        return index + rest
    return items


def _key(k: Any) -> str:
    if k is None:
        return "null"
    if isinstance(k, bool):
        return "true" if k else "false"
    if isinstance(k, (int, float)):
        return js_number(k) if not (isinstance(k, float) and math.isnan(k)) else "NaN"
    if isinstance(k, str):
        return k
    raise ValueError(f"cannot use a {type(k).__name__} as an object key")


def _write(obj: Any, parts: list[str], in_array: bool) -> bool:
    """Append the JSON of ``obj``; return False when JS would omit it (undefined)."""
    t = type(obj)
    if t is str:
        parts.append(_js_string(obj))
    elif obj is None:
        parts.append("null")
    elif t is bool:
        parts.append("true" if obj else "false")
    elif t is int or t is float or t is U64:
        parts.append(js_number(obj))
    elif t is dict or isinstance(obj, dict):
        parts.append("{")
        first = True
        for k, v in _ordered_items(obj):
            mark = len(parts)
            parts.append("" if first else ",")
            parts.append(_js_string(k))
            parts.append(":")
            if _write(v, parts, False):
                first = False
            else:
                del parts[mark:]
        parts.append("}")
    elif t is list or t is tuple or isinstance(obj, (list, tuple)):
        parts.append("[")
        for i, v in enumerate(obj):
            if i:
                parts.append(",")
            _write(v, parts, True)
        parts.append("]")
    elif obj is UNDEFINED or isinstance(obj, Undefined):
        if not in_array:
            return False
        parts.append("null")
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        # Node Buffer.prototype.toJSON.
        data = ",".join(map(str, bytes(obj)))
        parts.append(f'{{"type":"Buffer","data":[{data}]}}')
    elif isinstance(obj, _dt.datetime):
        parts.append(f'"{_iso(obj)}"')
    elif isinstance(obj, TypedArray):
        _write(_typed_json(obj), parts, in_array)
    elif isinstance(obj, int):
        parts.append(js_number(int(obj)))
    elif isinstance(obj, float):
        parts.append(js_number(float(obj)))
    else:
        raise ValueError(f"cannot encode a {t.__name__} value as JSON")
    return True


def js_stringify(obj: Any) -> str:
    """Return what ``JSON.stringify(obj)`` returns in Node for the equivalent JS value.

    Raises:
        ValueError: for values with no JS equivalent, or for a top-level ``UNDEFINED``.
    """
    parts: list[str] = []
    if not _write(obj, parts, False):
        raise ValueError("JSON.stringify(undefined) is not JSON")
    return "".join(parts)


def js_stringify_bytes(obj: Any) -> bytes:
    """:func:`js_stringify` as the UTF-8 bytes Node publishes."""
    return js_stringify(obj).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def js_parse(payload: bytes | str) -> Any:
    """Parse JSON the way ``JSON.parse`` does (strict: no NaN/Infinity literals).

    Raises:
        ValueError: for invalid JSON or invalid UTF-8.
    """
    text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload
    # One decoder for every call: json.loads(text, parse_constant=...) builds a new
    # JSONDecoder each time, which costs as much as parsing a small request. Its C
    # scanner is called directly first: decode() adds two whitespace regex matches and a
    # Python frame, more than the scan itself for a request. Anything the bare scan does
    # not settle (surrounding whitespace, trailing data, any error) goes through decode(),
    # so results and error messages are decode()'s.
    try:
        value, end = _SCAN(text, 0)
    except (StopIteration, ValueError, TypeError):
        pass
    else:
        if end == len(text):
            return value
    return _DECODER.decode(text)


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
# The C scanner JSONDecoder.__init__ sets (json.scanner.make_scanner); untyped in typeshed.
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]
