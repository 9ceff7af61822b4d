"""``python -m bench`` (``make bench``): every benchmark, one after the other.

Each script prints its own figures; they compare implementations side by side within
the same run, so read the ratios rather than the absolute rates.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

# (module, extra arguments); scripts that are missing are skipped with a note.
BENCHES = [
    ("bench.bench_protocol", []),
    ("bench.fuzz_protocol", ["--cases", "1000000"]),
    ("bench.bench_adapter", []),
    ("bench.bench_sniffer", []),
    ("bench.bench_exporter", []),
    ("bench.bench_tui", []),
    ("bench.bench_cluster", []),
    ("bench.bench_sync", []),
    ("bench.bench_sharded", []),
]


def main() -> int:
    failed = 0
    for module, extra in BENCHES:
        script = HERE / (module.split(".")[-1] + ".py")
        if not script.exists():
            print(f"== {module}: not present, skipped")
            continue
        print(f"== {module} {' '.join(extra)}", flush=True)
        result = subprocess.run([sys.executable, "-m", module, *extra], cwd=HERE.parent)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
