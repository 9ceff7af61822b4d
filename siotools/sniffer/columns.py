"""Decoded columns of a capture, filled incrementally, and the anomaly flags over them.

Low-cardinality fields (kind, dialect, namespace, event, uid, type, frame class) are
interned while decoding: each row stores a small integer code and the distinct values are
kept once. ``to_pandas`` then builds its categoricals straight from the codes, with no
per-row hashing in pandas; that is what makes the DataFrame step cheap once decoded.
"""

from __future__ import annotations

import collections
import importlib.util
from array import array
from collections.abc import Callable, Sequence
from typing import Any, Final

from siotools.exceptions import DecodeError
from siotools.protocol import Broadcast, Dialect
from siotools.protocol.safe import printable
from siotools.sniffer.frames import Row, describe, dialect_family, expects_response

__all__ = ["ANOMALIES", "DecodedColumns", "Interned"]

ANOMALIES: Final = ("undecodable", "mixed_dialect", "unanswered")
"""Categories of the ``anomaly`` column, in code order."""

_UNDECODABLE, _MIXED, _UNANSWERED = 0, 1, 2


class Interned:
    """One categorical column being built: codes per row, each distinct value once."""

    __slots__ = ("codes", "index", "values")

    def __init__(self) -> None:
        self.codes = array("i")
        self.index: dict[Any, int] = {None: -1}
        self.values: list[Any] = []

    def code(self, value: Any) -> int:
        """The code of ``value`` (-1 for None), adding it when new."""
        try:
            c = self.index.get(value)
        except TypeError:  # unhashable: shown by its repr
            value = repr(value)
            c = self.index.get(value)
        if c is None:
            c = self.index[value] = len(self.values)
            self.values.append(value)
        return c

    def value(self, row: int) -> Any:
        """The value of one row."""
        c = self.codes[row]
        return None if c < 0 else self.values[c]


def _printable_row(r: Row) -> Row:
    return r._replace(
        rooms=printable(r.rooms),
        except_=printable(r.except_),
        args=printable(r.args),
        flags=printable(r.flags),
    )


class DecodedColumns:
    """The decoded form of a capture's first ``len(self)`` records, column by column."""

    def __init__(self) -> None:
        self.n = 0
        self.kind = Interned()
        self.dialect = Interned()
        self.nsp = Interned()
        self.event = Interned()
        self.uid = Interned()
        self.type = Interned()
        self.frame = Interned()
        self.request_id = Interned()
        self.error = Interned()
        self.rooms: list[Any] = []
        self.except_: list[Any] = []
        self.args: list[Any] = []
        self.flags: list[Any] = []
        self.size = array("i")
        # The object columns again as numpy object arrays, one per decoded chunk: the
        # conversion costs as much as building the DataFrame, so it is paid while decoding
        # (a small share there) and to_pandas only concatenates. Only when numpy is around.
        self.arrays: dict[str, list[Any]] | None = (
            {"rooms": [], "except": [], "args": [], "flags": []}
            if importlib.util.find_spec("numpy") is not None
            else None
        )
        self._anomaly_key: tuple[int, int, int] | None = None
        self._anomaly_codes: array[int] | None = None
        self.errors: list[int] = []
        self.requests: list[int] = []
        """Rows of requests some node must answer."""
        self.responses: list[int] = []
        """Rows of responses carrying a request id."""

    def __len__(self) -> int:
        return self.n

    def extend(
        self,
        decode: Callable[[bytes, bytes, bool], Any],
        channels: Sequence[bytes],
        codes: Sequence[int],
        payloads: Sequence[bytes],
        sharded: Sequence[int],
        stop: int,
        on_chunk: Callable[[int], None] | None = None,
    ) -> None:
        """Decode records ``len(self)`` .. ``stop`` and append them."""
        kind_code, kind_codes = self.kind.code, self.kind.codes.append
        dia_code, dia_codes = self.dialect.code, self.dialect.codes.append
        nsp_code, nsp_codes = self.nsp.code, self.nsp.codes.append
        ev_code, ev_codes = self.event.code, self.event.codes.append
        uid_code, uid_codes = self.uid.code, self.uid.codes.append
        type_code, type_codes = self.type.code, self.type.codes.append
        fr_code, fr_codes = self.frame.code, self.frame.codes.append
        rooms, except_, args = self.rooms.append, self.except_.append, self.args.append
        flags, size = self.flags.append, self.size.append
        rid_code, rid_codes = self.request_id.code, self.request_id.codes.append
        err_code, err_codes = self.error.code, self.error.codes.append
        ev_index, uid_index, nsp_index = self.event.index, self.uid.index, self.nsp.index
        dia_cache: dict[Any, int] = {}
        bc_kind, bc_frame = kind_code("broadcast"), fr_code("Broadcast")
        bc_event, bc_binary = type_code("EVENT"), type_code("BINARY_EVENT")
        step = 50_000
        start = self.n
        for chunk in range(start, stop, step):
            end = min(stop, chunk + step)
            for i in range(chunk, end):
                payload = payloads[i]
                size(len(payload))
                try:
                    f = decode(channels[codes[i]], payload, bool(sharded[i]))
                except DecodeError as exc:
                    kind_codes(kind_code("unknown"))
                    dia_codes(-1)
                    nsp_codes(-1)
                    ev_codes(-1)
                    uid_codes(-1)
                    type_codes(-1)
                    fr_codes(-1)
                    rooms(None)
                    except_(None)
                    args(None)
                    flags(None)
                    rid_codes(-1)
                    err_codes(err_code(str(exc)))
                    self.errors.append(i)
                    continue
                if type(f) is Broadcast:
                    # Inline form of describe() for the bulk of any capture; the same
                    # semantics as the Broadcast properties, without ~10 calls per row.
                    packet, opts = f.packet, f.opts
                    data = packet.get("data")
                    if type(data) is not list:
                        data = []
                    ev = data[0] if data else None
                    rm = opts.get("rooms")
                    ex = opts.get("except")
                    fl = opts.get("flags")
                    try:
                        e = ev_index.get(ev)
                        u = uid_index.get(f.uid)
                        ns = nsp_index.get(f.nsp)
                    except TypeError:
                        e = u = ns = None  # unhashable: the slow path below
                    if e is None:
                        e = ev_code(ev)
                    if u is None:
                        u = uid_code(f.uid)
                    if ns is None:
                        ns = nsp_code(f.nsp)
                    d = dia_cache.get(f.dialect)
                    if d is None:
                        d = dia_cache[f.dialect] = dia_code(f.dialect.value)
                    kind_codes(bc_kind)
                    dia_codes(d)
                    nsp_codes(ns)
                    ev_codes(e)
                    uid_codes(u)
                    type_codes(bc_binary if packet.get("type") == 5 else bc_event)
                    fr_codes(bc_frame)
                    rooms(rm if type(rm) is list else [])
                    except_(ex if type(ex) is list else [])
                    args(data[1:])
                    flags(fl if type(fl) is dict else {})
                    rid_codes(-1)
                    err_codes(-1)
                    continue
                # Requests, responses and JSON frames: the only values that can hold lone
                # surrogates (JSON escapes, channel bytes); shown escaped in the table.
                r = _printable_row(describe(f))
                kind_codes(kind_code(r.kind))
                dia_codes(dia_code(f.dialect.value))
                nsp_codes(nsp_code(r.nsp))
                ev_codes(ev_code(r.event))
                uid_codes(uid_code(r.uid))
                type_codes(type_code(r.type))
                fr_codes(fr_code(type(f).__name__))
                rooms(r.rooms)
                except_(r.except_)
                args(r.args)
                flags(r.flags)
                rid_codes(rid_code(r.request_id))
                err_codes(-1)
                if r.request_id is not None:
                    if r.kind == "response":
                        self.responses.append(i)
                    elif expects_response(f):
                        self.requests.append(i)
            self.n = end
            if self.arrays is not None:
                self._convert(chunk, end)
            if on_chunk is not None:
                on_chunk(end - chunk)

    def _convert(self, start: int, end: int) -> None:
        import numpy as np

        assert self.arrays is not None
        k = end - start
        for name, values in (
            ("rooms", self.rooms),
            ("except", self.except_),
            ("args", self.args),
            ("flags", self.flags),
        ):
            # fromiter never tries to make a 2-D array out of equal-length lists.
            self.arrays[name].append(np.fromiter(values[start:end], dtype=object, count=k))

    def object_array(self, name: str) -> Any:
        """A numpy object array of an object column (``rooms``, ``except``, ``args``, ``flags``)."""
        import numpy as np

        if self.arrays is not None:
            chunks = self.arrays[name]
            if len(chunks) > 1:
                # Concatenate once and keep the result: the next call is free.
                chunks[:] = [np.concatenate(chunks)]
            return chunks[0] if chunks else np.empty(0, dtype=object)
        values = {"rooms": self.rooms, "except": self.except_, "args": self.args}.get(
            name, self.flags
        )
        return np.fromiter(values, dtype=object, count=self.n)

    def families(self) -> dict[str, int]:
        """Frames per dialect family (``legacy``, ``current``, ``sharded``)."""
        per_code = collections.Counter(self.dialect.codes)
        out: dict[str, int] = {}
        for code, value in enumerate(self.dialect.values):
            fam = dialect_family(Dialect(value))
            count = per_code.get(code, 0)
            if fam is not None and count:
                out[fam] = out.get(fam, 0) + count
        return out

    def anomalies(self, times: Sequence[int], window_ns: int, end_ns: int) -> array[int]:
        """One code per row: -1 none, else an index into :data:`ANOMALIES`.

        Args:
            times: Receive times (ns) of the rows.
            window_ns: How long a request may wait for its first response.
            end_ns: When the capture stopped: requests younger than the window then are
                not judged.
        """
        n = self.n
        key = (n, window_ns, end_ns)
        if key == self._anomaly_key and self._anomaly_codes is not None:
            return self._anomaly_codes
        flags = array("b", [-1]) * n
        families = self.families()
        if len(families) > 1:
            main = max(families, key=lambda k: families[k])
            odd = {
                c
                for c, v in enumerate(self.dialect.values)
                if dialect_family(Dialect(v)) not in (None, main)
            }
            for i, c in enumerate(self.dialect.codes):
                if c in odd:
                    flags[i] = _MIXED
        # Request ids are interned, so equal ids share a code.
        rid = self.request_id.codes
        first_answer: dict[int, int] = {}
        for i in self.responses:
            if rid[i] not in first_answer:
                first_answer[rid[i]] = times[i]
        for i in self.requests:
            t = times[i]
            got = first_answer.get(rid[i])
            if got is not None and got - t <= window_ns:
                continue
            if got is None and end_ns - t < window_ns:
                continue  # still inside its window when the capture stopped: not judged
            if flags[i] < 0:
                flags[i] = _UNANSWERED
        for i in self.errors:
            flags[i] = _UNDECODABLE
        self._anomaly_key, self._anomaly_codes = key, flags
        return flags
