"""The project metadata builds without a deprecation warning (``make install`` stays quiet)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.timeout(300)
def test_the_wheel_builds_quietly_and_ships_the_node_peers(tmp_path: Path) -> None:
    pytest.importorskip("build")
    # A copy of what the wheel is built from: the build's scratch files stay out of the tree.
    src = tmp_path / "src"
    # An in-place build of the extension stays behind too: the wheel must compile its own.
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules", "*.egg-info", "*.so")
    for name in ("siotools", "tui"):
        shutil.copytree(ROOT / name, src / name, ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    dist = tmp_path / "dist"
    out = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
        cwd=src, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    for warning in ("deprecated", "BuildBackendWarning", "SetuptoolsDeprecationWarning"):
        assert warning not in text, [line for line in text.splitlines() if warning in line]
    (wheel,) = dist.glob("siotools-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for peer in ("legacy4", "legacy5", "current", "sharded82", "streams"):
        assert f"siotools/nodepeer/{peer}/package.json" in names
        assert f"siotools/nodepeer/{peer}/peer.js" in names
    assert "siotools/tui/app.tcss" in names and "siotools/py.typed" in names
    # The native column decoder, compiled, with its type stub.
    assert any(n.startswith("siotools/protocol/_columns.") and n.endswith(".so") for n in names)
    assert "siotools/protocol/_columns.pyi" in names
