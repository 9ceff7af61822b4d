"""Saving, loading and replaying captures.

Files keep the raw records (receive time, channel bytes, payload bytes, sharded flag), never
a decoded form, so a capture taken today can be decoded again by a newer siotools.

* ``.parquet`` (needs the ``notebook`` extra): columns ``time`` (timestamp[ns, UTC]),
  ``channel`` (binary), ``payload`` (binary), ``sharded`` (bool); the capture's prefix and
  settings in the schema metadata under ``siotools``.
* ``.jsonl``: one object per message, ``{"t", "t_ns", "channel", "pattern", "data_hex",
  "sharded"}`` (plus ``channel_hex`` when the channel is not UTF-8: ``channel`` then shows
  the bad bytes as ``\\xff`` escapes); the test vectors' format, so those files load too
  (a ``null`` pattern there means a sharded message taken from MONITOR).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any, Final

from siotools._extras import require
from siotools.exceptions import ConfigurationError
from siotools.protocol import ChannelGrammar, ChannelKind, safe
from siotools.sniffer.capture import Capture
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher

__all__ = ["load_capture", "replay", "save_capture"]

FORMAT_VERSION: Final = 1
_META_KEY: Final = b"siotools"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".ndjson", ".json")


def save_capture(cap: Capture, path: str | os.PathLike[str]) -> None:
    """Write ``cap``'s raw records to ``path`` (parquet, or JSON lines for ``.jsonl``).

    Raises:
        MissingExtraError: pyarrow is missing (parquet only).
    """
    p = Path(path)
    meta = {
        "format": FORMAT_VERSION,
        "prefix": cap.prefix,
        "pysocketio": cap.pysocketio,
        "source": cap.source,
        "url": cap.url,
        "started_ns": cap.started_ns,
        "stopped_ns": cap.stopped_ns,
        "gaps": cap.gaps,
    }
    if _is_jsonl(p):
        with p.open("w", encoding="utf-8") as out:
            for t, ch, payload, sharded in cap.raw():
                rec = {
                    "t": t / 1e9,
                    "t_ns": t,
                    "channel": safe.text(ch.decode("utf-8", "surrogateescape")),
                    "pattern": None if sharded else cap.decoder.pattern(ch),
                    "data_hex": payload.hex(),
                    "sharded": sharded,
                }
                if not _is_utf8(ch):
                    # The readable name above shows the bad bytes as escapes; these are
                    # the exact bytes, which loading prefers.
                    rec["channel_hex"] = ch.hex()
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return
    pa = require("pyarrow", "notebook")
    pq = require("pyarrow.parquet", "notebook")
    import numpy as np

    n = len(cap)
    times = np.frombuffer(cap._times, dtype=np.int64, count=n) if n else np.empty(0, np.int64)
    channels = pa.DictionaryArray.from_arrays(
        pa.array(np.frombuffer(cap._codes, dtype=np.uint32, count=n).astype(np.int32)),
        pa.array(cap._channels, type=pa.binary()),
    )
    table = pa.table(
        {
            "time": pa.array(times, type=pa.timestamp("ns", tz="UTC")),
            "channel": channels,
            "payload": pa.array(cap._payloads[:n], type=pa.binary()),
            "sharded": pa.array(np.frombuffer(bytes(cap._sharded[:n]), dtype=np.bool_)),
        }
    )
    table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    pq.write_table(table, p, compression="zstd")


def load_capture(
    path: str | os.PathLike[str],
    *,
    prefix: str | None = None,
    pysocketio: bool | str | None = None,
    allow_pickle: bool = False,
) -> Capture:
    """Read a capture saved by :meth:`Capture.save` (or a ``.jsonl`` test vector file).

    Args:
        path: The file.
        prefix: The adapters' key to decode with (default: the one saved in the file,
            ``socket.io`` for files without one).
        pysocketio: python-socketio's channel (default: as saved).
        allow_pickle: Unpickle python-socketio < 5.14 payloads when decoding.

    Raises:
        ConfigurationError: The file does not exist or is not a capture.
        MissingExtraError: pyarrow is missing (parquet only).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigurationError(f"no capture file at {str(p)!r}")
    if _is_jsonl(p):
        return _load_jsonl(p, prefix, pysocketio, allow_pickle)
    pq = require("pyarrow.parquet", "notebook")
    try:
        table = pq.read_table(p)
    except Exception as exc:
        raise ConfigurationError(f"{str(p)!r} is not a parquet capture: {exc}") from exc
    raw_meta = (table.schema.metadata or {}).get(_META_KEY)
    meta: dict[str, Any] = json.loads(raw_meta) if raw_meta else {}
    if not {"time", "channel", "payload"} <= set(table.column_names):
        raise ConfigurationError(f"{str(p)!r} is not a siotools capture (missing columns)")
    cap = Capture(
        prefix=prefix or meta.get("prefix") or "socket.io",
        pysocketio=meta.get("pysocketio") or False if pysocketio is None else pysocketio,
        allow_pickle=allow_pickle,
        source="file",
        url=meta.get("url"),
    )
    cap.gaps = [(int(g[0]), int(g[1])) for g in meta.get("gaps", [])]
    import numpy as np

    times = table.column("time").cast(_int64(table)).to_numpy()
    channel_col = table.column("channel").combine_chunks()
    if hasattr(channel_col, "dictionary"):
        channels = channel_col.dictionary.to_pylist()
        codes = channel_col.indices.to_numpy(zero_copy_only=False)
    else:
        values = channel_col.to_pylist()
        channels = list(dict.fromkeys(values))
        index = {c: i for i, c in enumerate(channels)}
        codes = np.array([index[c] for c in values], dtype=np.uint32)
    cap._channels = list(channels)
    cap._index = {c: i for i, c in enumerate(cap._channels)}
    cap._times.frombytes(np.ascontiguousarray(times, dtype=np.int64).tobytes())
    cap._codes.frombytes(np.ascontiguousarray(codes, dtype=np.uint32).tobytes())
    cap._payloads = table.column("payload").to_pylist()
    if "sharded" in table.column_names:
        sharded = table.column("sharded").to_numpy(zero_copy_only=False)
        cap._sharded = bytearray(np.asarray(sharded, dtype=np.uint8).tobytes())
    else:
        cap._sharded = bytearray(len(cap._payloads))
    cap.started_ns = int(meta.get("started_ns") or (times[0] if len(times) else 0))
    cap.stopped_ns = meta.get("stopped_ns") or (int(times[-1]) if len(times) else cap.started_ns)
    return cap


def _int64(table: Any) -> Any:
    return require("pyarrow", "notebook").int64()


def _load_jsonl(
    p: Path, prefix: str | None, pysocketio: bool | str | None, allow_pickle: bool
) -> Capture:
    cap = Capture(
        prefix=prefix or "socket.io",
        pysocketio=pysocketio or False,
        allow_pickle=allow_pickle,
        source="file",
    )
    with p.open(encoding="utf-8") as lines:
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                t = int(rec["t_ns"]) if "t_ns" in rec else int(float(rec["t"]) * 1e9)
                if "channel_hex" in rec:
                    ch = bytes.fromhex(rec["channel_hex"])
                else:
                    ch = str(rec["channel"]).encode("utf-8", "surrogateescape")
                payload = bytes.fromhex(rec["data_hex"])
                sharded = bool(rec.get("sharded", rec.get("pattern", "*") is None))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigurationError(
                    f"{str(p)!r} line {lineno} is not a capture record"
                ) from exc
            cap.append(t, ch, payload, sharded)
    if len(cap):
        cap.started_ns = cap._times[0]
        cap.stopped_ns = cap._times[-1]
    return cap


def rewrite_channel(channel: bytes, source: ChannelGrammar, target: ChannelGrammar) -> bytes | None:
    """The same channel under another prefix (None when it is not one of ``source``'s)."""
    ch = source.parse(channel)
    nsp = ch.nsp or "/"
    kind = ch.kind
    if kind is ChannelKind.BROADCAST:
        return target.broadcast(nsp).encode()
    if kind is ChannelKind.ROOM:
        return target.room(nsp, ch.room or "").encode("utf-8", "surrogateescape")
    if kind is ChannelKind.REQUEST:
        return target.request(nsp).encode()
    if kind is ChannelKind.RESPONSE:
        return target.response(nsp).encode()
    if kind is ChannelKind.RESPONSE_UID:
        return target.response_for(nsp, ch.uid or "").encode()
    if kind is ChannelKind.PYSOCKETIO:
        return channel  # python-socketio's channel is not prefixed
    return None


async def replay(
    cap: Capture,
    url: str,
    prefix: str | None = None,
    *,
    speed: float | None = None,
) -> int:
    """Publish a capture's messages again, into ``prefix`` on the Redis at ``url``.

    Meant for a staging Redis: channels are rewritten from the capture's prefix to
    ``prefix`` (payloads do not carry the prefix), sharded messages are SPUBLISHed.

    Args:
        cap: The capture.
        url: The target Redis.
        prefix: The target key (default: the capture's own).
        speed: None publishes as fast as Redis takes it; 1.0 keeps the recorded pacing,
            2.0 twice as fast.

    Returns:
        How many messages were published.

    Raises:
        RedisUnavailableError: The target Redis cannot be reached.
    """
    if speed is not None and speed <= 0:
        raise ConfigurationError("speed must be positive (or None for as fast as possible)")
    source = ChannelGrammar(cap.prefix, pysocketio_channel=cap.pysocketio or "socketio")
    target = ChannelGrammar(prefix or cap.prefix, pysocketio_channel=cap.pysocketio or "socketio")
    pub = Publisher(RedisEndpoint.from_url(url), name="siotools-replay")
    await pub.start()
    rewritten: dict[bytes, bytes | None] = {}
    sent = 0
    t0: int | None = None
    wall0 = time.monotonic()
    try:
        for t, ch, payload, sharded in cap.raw():
            if ch not in rewritten:
                rewritten[ch] = rewrite_channel(ch, source, target)
            out = rewritten[ch]
            if out is None:
                continue
            if speed is not None:
                t0 = t if t0 is None else t0
                delay = (t - t0) / 1e9 / speed - (time.monotonic() - wall0)
                if delay > 0:
                    await asyncio.sleep(delay)
            if sharded:
                await pub.execute(b"SPUBLISH", out, payload)
            else:
                pub.publish(out, payload)
            sent += 1
            if sent % 1000 == 0:
                await pub.wait_writable()
        await pub.flush()
    finally:
        await pub.close()
    return sent
