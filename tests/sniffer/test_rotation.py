"""Long captures: rolling parquet files in a folder, opened lazily as one dataset."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from siotools import ConfigurationError
from siotools.protocol import encode_broadcast
from siotools.sniffer import CaptureSet, load_capture, start_capture
from siotools.sniffer.store import FILE_COLUMNS, parse_size

N = 600


async def publish(r: aioredis.Redis, key: str, n: int = N, pause: float = 0.0) -> None:
    for i in range(n):
        if pause and i and i % 100 == 0:
            await asyncio.sleep(pause)  # bursts: rotations happen while capturing
        nsp = "/chat" if i % 3 == 0 else "/"
        ch, p = encode_broadcast(
            uid="u1", data=["say" if i % 2 else "typing", {"i": i, "pad": "x" * 200}],
            rooms=[f"room{i % 4}"], nsp=nsp, prefix=key,
        )  # fmt: skip
        await r.publish(ch, p)


async def test_capture_rotates_and_loads_lazily(redis_url: str, key: str, tmp_path: Path) -> None:
    folder = tmp_path / "caps"
    cap = await start_capture(redis_url, key, path=folder, rotate="16KB")
    r = aioredis.from_url(redis_url)
    await publish(r, key, pause=0.4)

    async def until_all() -> None:
        while cap.received < N:
            await asyncio.sleep(0.1)

    await asyncio.wait_for(until_all(), 20)
    # Files are written while the capture runs, and memory only holds the newest rows.
    assert cap.writer is not None and cap.writer.rows > 0
    assert len(cap) < N
    cap.stop()
    await cap.wait()
    await r.aclose()
    files = sorted(folder.glob("*.parquet"))
    assert len(files) >= 2
    assert not list(folder.glob("*.tmp"))

    caps = load_capture(folder)
    assert isinstance(caps, CaptureSet) and caps.prefix == key
    assert len(caps) == N
    df = caps.to_pandas(["time", "nsp", "event"], where={"nsp": "/chat", "event": "say"})
    assert list(df.columns) == ["time", "nsp", "event"]
    assert len(df) == sum(1 for i in range(N) if i % 3 == 0 and i % 2)
    assert set(df["nsp"]) == {"/chat"} and set(df["event"]) == {"say"}
    t0 = df["time"].iloc[0]
    later = caps.to_pandas(["time"], where={"nsp": "/chat", "event": "say", "since": t0})
    assert len(later) == len(df)
    # Object columns: decoded from the selected rows' payloads only.
    args = caps.to_pandas(["event", "args"], where={"event": "typing", "nsp": "/"})
    assert all(a[0]["i"] % 2 == 0 for a in args["args"])
    assert len(args) == sum(1 for i in range(N) if i % 3 and not i % 2)
    # The raw records are all there, in order, and frames decode.
    raw = list(caps.raw())
    assert len(raw) == N and [t for t, *_ in raw] == sorted(t for t, *_ in raw)
    assert next(iter(caps)).row.kind == "broadcast"


def test_rotated_files_have_the_documented_schema(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from siotools.sniffer import Capture

    cap = Capture(prefix="k")
    for i in range(20):
        ch, p = encode_broadcast(uid="u", data=["ev", i], prefix="k")
        cap.append(i, ch.encode(), p)
    cap.append(99, b"k#/#", b"\xc1")  # undecodable: kept raw, error column set
    cap.save(tmp_path / "one.parquet")
    t = pq.read_table(tmp_path / "one.parquet")
    assert t.column_names == list(FILE_COLUMNS)
    assert t.column("event").to_pylist()[:2] == ["ev", "ev"]
    assert t.column("error").to_pylist()[-1] is not None
    assert load_capture(tmp_path / "one.parquet").columns.payload(20) == b"\xc1"


async def test_duckdb_queries_a_capture_folder(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    from siotools.sniffer import Capture

    folder = tmp_path / "caps"
    cap = Capture(prefix="k")
    cap.stream_to(folder, rotate="2KB")
    for i in range(300):
        ch, p = encode_broadcast(uid="u", data=["a" if i % 3 else "b", i], nsp="/n", prefix="k")
        cap.append(1_700_000_000_000_000_000 + i, ch.encode(), p)
        await cap.flush_if_due()
    await cap.close_stream()
    assert len(list(folder.glob("*.parquet"))) > 3
    rows = duckdb.sql(
        f"SELECT event, count(*) AS n FROM '{folder}/*.parquet' "
        "WHERE nsp = '/n' GROUP BY event ORDER BY event"
    ).fetchall()
    assert rows == [("a", 200), ("b", 100)]


def test_rotation_arguments() -> None:
    assert parse_size("256MB") == 256 * 2**20 and parse_size("1.5k") == 1536
    assert parse_size(1000) == 1000
    for bad in ("lots", "0", "-5MB"):
        with pytest.raises(ConfigurationError):
            parse_size(bad)


async def test_rotate_without_path_is_refused(redis_url: str, key: str) -> None:
    with pytest.raises(ConfigurationError, match="rotate= needs path="):
        await start_capture(redis_url, key, rotate="1MB")


def test_sniff_cli_output_folder_rotates(redis_url: str, key: str, tmp_path: Path) -> None:
    folder = tmp_path / "cli-caps"
    proc = subprocess.Popen(
        [sys.executable, "-m", "siotools", "sniff", "--url", redis_url, "--prefix", key,
         "--output", str(folder), "--rotate", "8KB", "--count", str(N), "--kind", "broadcast"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip

    async def drive() -> None:
        r = aioredis.from_url(redis_url)
        before = int(await r.execute_command("PUBSUB", "NUMPAT"))
        while int(await r.execute_command("PUBSUB", "NUMPAT")) < before + 3:
            await asyncio.sleep(0.05)
        await publish(r, key)
        await r.aclose()

    asyncio.run(asyncio.wait_for(drive(), 30))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert len(list(folder.glob("*.parquet"))) >= 5
    caps = load_capture(folder)
    assert len(caps) == N
    out = subprocess.run(
        [sys.executable, "-m", "siotools", "sniff", "--output", str(tmp_path / "f.txt"),
         "--rotate", "nope", "--url", redis_url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 2 and "is not a size" in out.stderr and "Traceback" not in out.stderr


async def test_a_file_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    from siotools import SiotoolsError
    from siotools.sniffer import Capture

    folder = tmp_path / "caps"
    cap = Capture(prefix="k")
    cap.stream_to(folder, rotate="1KB")
    folder.rmdir()
    folder.write_text("not a folder any more")  # the next file cannot be created
    for i in range(50):
        ch, p = encode_broadcast(uid="u", data=["ev", "x" * 100], prefix="k")
        cap.append(i, ch.encode(), p)
    with pytest.raises(SiotoolsError, match="cannot write the capture file"):
        await cap.flush_if_due()
        await cap.close_stream()
