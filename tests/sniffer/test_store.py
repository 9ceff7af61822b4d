"""Saving, loading (parquet, JSON lines, the test vectors) and replaying captures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from siotools import ConfigurationError
from siotools.protocol import Dialect, encode_broadcast
from siotools.sniffer import Capture, load_capture, replay, sniff, start_capture
from tests.protocol.vectors import VECTORS
from tests.sniffer.helpers import wait_frames


def _sample(prefix: str = "socket.io") -> Capture:
    cap = Capture(prefix=prefix)
    ch, p = encode_broadcast(uid="u1", data=["ev", {"a": 1}], rooms=["salle-é"], prefix=prefix)
    cap.append(1_700_000_000_000_000_001, ch.encode(), p)
    cap.append(
        1_700_000_000_100_000_000, f"{prefix}-request#/#".encode(), b'{"requestid":"x","type":2}'
    )
    cap.append(1_700_000_000_200_000_000, f"{prefix}#/#".encode(), b"\xc1garbage")
    cap.append(1_700_000_000_300_000_000, f"{prefix}#/#".encode(), b'{"type":2,"uid":"abcd"}', True)
    return cap


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_save_load_round_trip(tmp_path: Path, suffix: str) -> None:
    cap = _sample("myapp")
    path = tmp_path / f"cap{suffix}"
    cap.save(path)
    back = load_capture(path)
    assert back.prefix == "myapp" or suffix == ".jsonl"
    back = load_capture(path, prefix="myapp")
    assert list(back.raw()) == list(cap.raw())
    assert [f.frame for f in back.frames] == [f.frame for f in cap.frames]
    assert [f.sharded for f in back.frames] == [False, False, False, True]
    assert back.anomalies()["undecodable"] == 1


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        load_capture(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"nope": 1}\n')
    with pytest.raises(ConfigurationError, match="line 1"):
        load_capture(bad)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(ConfigurationError):
        load_capture(junk)


@pytest.mark.parametrize("path", sorted(VECTORS.glob("*/*.jsonl")), ids=lambda p: p.stem)
def test_every_vector_file_loads_and_decodes(path: Path) -> None:
    prefix = "myapp" if "myapp" in path.stem else "socket.io"
    cap = load_capture(path, prefix=prefix)
    assert len(cap) > 0
    assert [f.error for f in cap.frames if not f.ok] == []
    df = cap.to_pandas()
    assert len(df) == len(cap) and df["error"].isna().all()
    group = path.parent.name
    families = set(cap.anomalies()["dialects"])
    if group == "legacy":
        assert families == {"legacy"}
    elif "sharded" in path.stem:
        assert families == {"sharded"}


async def test_offline_sniff(tmp_path: Path) -> None:
    cap = _sample()
    cap.save(tmp_path / "c.jsonl")
    frames = [f async for f in sniff(tmp_path / "c.jsonl", count=2)]
    assert [f.kind for f in frames] == ["broadcast", "request"]
    assert [f.kind async for f in sniff(cap)] == ["broadcast", "request", "unknown", "heartbeat"]


async def test_replay_into_another_prefix(redis_url: str, key: str) -> None:
    src = Capture(prefix="prod")
    sent = []
    for i, (dialect, rooms) in enumerate(
        [(Dialect.CURRENT, ["r1"]), (Dialect.CURRENT, []), (Dialect.LEGACY, ["a", "b"])]
    ):
        ch, p = encode_broadcast(
            uid="u", data=["e", i], rooms=rooms, dialect=dialect, prefix="prod"
        )
        src.append(i, ch.encode(), p)
        sent.append(p)
    src.append(3, b"prod-request#/chat#", b'{"requestid":"q","type":2}')
    src.append(4, b"prod-response#/#abc#", b'{"requestId":"q","rooms":[]}')
    src.append(5, b"elsewhere", b"x")  # not a channel of the prefix: skipped
    target = await start_capture(redis_url, key)
    assert await replay(src, redis_url, prefix=key) == 5
    await wait_frames(target, n=5)
    target.stop()
    await target.wait()
    assert [f.channel for f in target.frames] == [
        f"{key}#/#r1#",
        f"{key}#/#",
        f"{key}#/#",
        f"{key}-request#/chat#",
        f"{key}-response#/#abc#",
    ]
    assert [f.payload for f in target.frames[:3]] == sent
    assert [f.frame for f in target.frames] != [None] * 5


async def test_replay_keeps_pacing(redis_url: str, key: str) -> None:
    src = Capture(prefix="p")
    for i in range(3):
        ch, p = encode_broadcast(uid="u", data=["e", i], prefix="p")
        src.append(i * 100_000_000, ch.encode(), p)  # 0.1 s apart
    r = aioredis.from_url(redis_url)
    target = await start_capture(redis_url, key)
    started = asyncio.get_running_loop().time()
    await replay(src, redis_url, prefix=key, speed=1.0)
    assert asyncio.get_running_loop().time() - started >= 0.19
    await wait_frames(target, n=3)
    target.stop()
    await target.wait()
    await r.aclose()
    with pytest.raises(ConfigurationError):
        await replay(src, redis_url, speed=0)
