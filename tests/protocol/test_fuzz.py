"""Random and mutated payloads on every channel kind raise DecodeError and nothing else."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_fuzzer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fuzz_protocol", ROOT / "bench" / "fuzz_protocol.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_protocol", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzz_only_decode_errors(seed: int) -> None:
    crashes = load_fuzzer().run(5_000, seed, verbose=False)
    assert crashes == [], crashes[0][2]


def test_fuzz_script_exit_code() -> None:
    assert load_fuzzer().main(["--cases", "200", "--seed", "3"]) == 0
