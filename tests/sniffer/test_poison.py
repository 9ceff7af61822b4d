"""Captures of poison frames: the table, the files and the summary survive any value."""

from __future__ import annotations

import json
from pathlib import Path

from siotools.sniffer import Capture, load_capture
from tests.sniffer.poison import poison


def poisoned(key: str = "k") -> Capture:
    cap = Capture(prefix=key)
    for i, (ch, payload) in enumerate(poison(key)):
        cap.append(1_700_000_000_000_000_000 + i, ch, payload)
    return cap


def test_table_of_poison_frames() -> None:
    df = poisoned().to_pandas()
    assert len(df) == len(poison("k"))
    assert list(df["kind"]) == ["broadcast", "response", "unknown", "response", "broadcast"]
    assert df["channel"].iloc[2] == "k#/#\\xff#"
    assert df["rooms"].iloc[1] == ["\\ud800", "ok"]  # shown escaped
    for col in ("channel", "kind", "nsp", "event", "error"):
        for v in map(str, df[col]):
            v.encode("utf-8")  # labels are printable under a strict encoder
    df.to_string().encode("utf-8")  # the repr a notebook shows


def test_jsonl_and_parquet_keep_the_raw_bytes(tmp_path: Path) -> None:
    cap = poisoned()
    raw = list(cap.raw())
    for name in ("p.jsonl", "p.parquet"):
        cap.save(tmp_path / name)
        assert list(load_capture(tmp_path / name).raw()) == raw
    lines = (tmp_path / "p.jsonl").read_bytes().decode("utf-8").splitlines()
    rec = json.loads(lines[2])
    assert rec["channel"] == "k#/#\\xff#" and bytes.fromhex(rec["channel_hex"]) == raw[2][1]


def test_summary_and_html_of_poison_frames() -> None:
    cap = poisoned()
    s = cap.summary()
    assert s["frames"] == 5 and s["anomalies"]["undecodable"] == 1
    cap._repr_html_().encode("utf-8")
    json.dumps(s, ensure_ascii=False).encode("utf-8")
