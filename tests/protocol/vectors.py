"""Loading the captured Node traffic in tests/data/vectors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[1] / "data" / "vectors"


@dataclass(frozen=True)
class Captured:
    """One captured pub/sub message."""

    scenario: str
    group: str
    index: int
    channel: str
    payload: bytes
    meta: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.group}/{self.scenario}#{self.index}"


def scenarios() -> list[Path]:
    return sorted(VECTORS.glob("*/*.jsonl"))


def load_meta(path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(path.with_suffix("").with_suffix(".meta.json").read_text())
    return meta


def messages(path: Path) -> list[Captured]:
    meta = load_meta(path)
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        rec = json.loads(line)
        out.append(
            Captured(
                scenario=path.name.removesuffix(".jsonl"),
                group=path.parent.name,
                index=i,
                channel=rec["channel"],
                payload=bytes.fromhex(rec["data_hex"]),
                meta=meta,
            )
        )
    return out


def all_messages() -> list[Captured]:
    return [m for p in scenarios() for m in messages(p)]
