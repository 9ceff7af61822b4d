"""Decode and encode rates of the protocol core for a typical broadcast.

Run: ``python bench/bench_protocol.py [--rounds N]``. Raw ``msgpack.unpackb`` and each
decoder run in alternating batches on the same bytes, so machine noise hits both; the
ratio printed is the median of the per-round ratios (target: decode >= 0.6x raw).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

import msgpack

from siotools.protocol import (
    Dialect,
    decode,
    decode_broadcast,
    encode_broadcast,
    unpack_broadcast,
)

# A typical legacy broadcast (socket.io-redis 5.x), 76 bytes:
# io.to('room1').emit('message', {user: 'alice', text: 'hi'}).
UID = "zR5Gwg"
DATA = ["message", {"user": "alice", "text": "hi"}]
CHANNEL, PAYLOAD = encode_broadcast(uid=UID, data=DATA, rooms=["room1"], dialect=Dialect.LEGACY)
CHANNEL_BYTES = CHANNEL.encode()
BATCH = 20_000


def timed(fn: Callable[[], object]) -> float:
    """Seconds for BATCH calls of ``fn``."""
    start = time.perf_counter()
    for _ in range(BATCH):
        fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=25, help="alternating rounds")
    args = parser.parse_args(argv)
    unpackb = msgpack.unpackb
    payload = PAYLOAD
    legacy = Dialect.LEGACY
    contenders: dict[str, Callable[[], object]] = {
        "unpack_broadcast (adapter receive)": lambda: unpack_broadcast(payload),
        "decode_broadcast(dialect=LEGACY)": lambda: decode_broadcast(payload, dialect=legacy),
        "decode_broadcast(detect)": lambda: decode_broadcast(payload),
        "decode(channel, payload)": lambda: decode(CHANNEL_BYTES, payload),
    }
    raw_times: list[float] = []
    ratios: dict[str, list[float]] = {name: [] for name in contenders}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    gc.disable()
    try:
        for _ in range(args.rounds):
            for name, fn in contenders.items():
                raw = timed(lambda: unpackb(payload))
                mine = timed(fn)
                raw_times.append(raw)
                times[name].append(mine)
                ratios[name].append(raw / mine)
        enc = [
            timed(
                lambda: encode_broadcast(
                    uid=UID, data=DATA, rooms=["room1"], dialect=Dialect.LEGACY
                )
            )
            for _ in range(max(3, args.rounds // 5))
        ]
    finally:
        gc.enable()
    print(f"payload: {len(payload)} bytes on {CHANNEL}")
    print(f"{'raw msgpack.unpackb':36} {BATCH / statistics.median(raw_times):12,.0f} msgs/s")
    for name in contenders:
        rate = BATCH / statistics.median(times[name])
        ratio = statistics.median(ratios[name])
        print(f"{name:36} {rate:12,.0f} msgs/s   ratio {ratio:.2f}")
    print(f"{'encode_broadcast':36} {BATCH / statistics.median(enc):12,.0f} msgs/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
