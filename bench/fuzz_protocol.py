"""Fuzz ``siotools.protocol.decode``: random and mutated payloads on every channel kind.

Run: ``python bench/fuzz_protocol.py [--cases N] [--seed S]``. Prints how many cases raised
something other than ``DecodeError`` (a crash); exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from siotools.exceptions import DecodeError
from siotools.protocol import Dialect, decode, encode_broadcast

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "data" / "vectors"

CHANNELS: list[bytes | str] = [
    b"socket.io#/#",
    b"socket.io#/#room1#",
    b"socket.io#/chat#/chat#abc#",
    b"socket.io-request#/#",
    b"socket.io-response#/#",
    b"socket.io-response#/#aUKtae#",
    b"socket.io#/#3a88c21771af4c4d#",
    b"socketio",
    b"myapp#/#",
    b"socket.io#",
    b"socket.io-request#/#x",
    "socket.io#/#salle-\u00e9#",
    b"\xff\xfe#/#",
    b"",
]
DIALECTS: list[Dialect | None] = [None, None, None, *Dialect]

# Structural seeds: one of each message shape, in case no capture is around.
_SEEDS_TEXT = [
    b'{"requestid":"gnpnjy","type":0,"rooms":["room1"]}',
    b'{"requestid":"gnpnjy","clients":["a"]}',
    b'{"requestid":"2RHW76","type":5,"data":{"q":"hi"}}',
    b'{"uid":"aUKtae","requestId":"-akvg5","type":5,"opts":{"rooms":[],"except":[]}}',
    b'{"type":8,"requestId":"zViBXx","clientCount":1}',
    b'{"type":4,"opts":{"rooms":["room9"],"except":[]},"close":true}',
    b'{"type":7,"data":{"opts":{"rooms":[],"except":[],"flags":{}},"requestId":"8f"},'
    b'"uid":"3a88c21771af4c4d","nsp":"/"}',
    b'{"method":"emit","event":"ev","data":[1],"namespace":"/","host_id":"x"}',
    b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x06method\x94\x8c\x04emit\x94s.",
    bytes.fromhex(
        "85a3756964a661554b746165a9726571756573744964a67a5669425878a47479706507a67061636b6574"
        "83a47479706502a46461746192a861636b2d746573742aa36e7370a12fa46f70747383a5726f6f6d7390"
        "a665786365707490a5666c61677381a774696d656f7574cd03e8"
    ),
    bytes.fromhex("83a47479706509a9726571756573744964a67a5669425878a67061636b6574c4020908"),
    bytes.fromhex("93a641624331323383a474797065d40000c70200010d70000000000000000000c4020304"),
]


def seeds() -> list[bytes]:
    """Captured payloads plus structural seeds."""
    out = list(_SEEDS_TEXT)
    for dialect in (Dialect.LEGACY, Dialect.CURRENT, Dialect.LEGACY_LITE):
        out.append(encode_broadcast(uid="AbC123", data=["e", 1, b"\x00"], dialect=dialect)[1])
    for path in sorted(VECTORS.glob("*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(bytes.fromhex(json.loads(line)["data_hex"]))
    return out


_INTERESTING = [0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xC0, 0xC1, 0xC4, 0xC7, 0xCB, 0xCF, 0xD4]
_INTERESTING += [0xD7, 0xD9, 0xDC, 0xDE, 0xDF, 0xFF, ord("{"), ord("}"), ord('"'), ord("[")]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf.insert(pos, rng.choice(_INTERESTING))
        elif op == 2 and buf:
            del buf[min(pos, len(buf) - 1)]
        elif op == 3:
            del buf[pos:]
        elif op == 4 and buf:
            buf[min(pos, len(buf) - 1)] = rng.choice(_INTERESTING)
        elif op == 5:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        else:
            start = rng.randrange(len(buf) + 1)
            buf[pos:pos] = buf[start : start + rng.randint(1, 16)]
    return bytes(buf)


def cases(n: int, seed: int) -> Iterator[tuple[bytes | str, bytes, Dialect | None, bool]]:
    """``n`` fuzz cases ``(channel, payload, dialect, allow_pickle)``."""
    rng = random.Random(seed)
    pool = seeds()
    for _ in range(n):
        r = rng.random()
        if r < 0.1:
            payload = rng.randbytes(rng.randint(0, 64))
        elif r < 0.15:
            payload = bytes([rng.choice(_INTERESTING)]) + rng.randbytes(rng.randint(0, 16))
        else:
            payload = mutate(rng.choice(pool), rng)
        yield rng.choice(CHANNELS), payload, rng.choice(DIALECTS), False


def run(n: int, seed: int, *, verbose: bool = True) -> list[tuple[bytes | str, bytes, str]]:
    """Run the cases; return the crashes ``(channel, payload, traceback)``."""
    crashes = []
    for channel, payload, dialect, allow_pickle in cases(n, seed):
        try:
            decode(channel, payload, dialect=dialect, allow_pickle=allow_pickle)
        except DecodeError:
            pass
        except BaseException:  # a crash is any other exception, including SystemExit
            crashes.append((channel, payload, traceback.format_exc()))
            if verbose and len(crashes) <= 5:
                print(f"CRASH on {channel!r} {payload.hex()}", file=sys.stderr)
                print(crashes[-1][2], file=sys.stderr)
    return crashes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20260)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    crashes = run(args.cases, args.seed)
    elapsed = time.perf_counter() - start
    print(f"cases: {args.cases:,}  crashes: {len(crashes)}  ({args.cases / elapsed:,.0f} cases/s)")
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
