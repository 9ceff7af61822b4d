"""Guardrails: the public door, the import weight of the core, the wheel's contents."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import siotools

ROOT = Path(__file__).resolve().parents[2]

# Modules that must import without textual or pandas loaded.
LIGHT_MODULES = ["siotools", "siotools.protocol", "siotools.cli", "siotools.sniffer"]


def test_all_is_sorted_and_resolves() -> None:
    assert list(siotools.__all__) == sorted(siotools.__all__)
    for name in siotools.__all__:
        assert getattr(siotools, name) is not None, name


def test_unknown_attribute_is_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = siotools.NoSuchThing  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_core_does_not_import_heavy_extras(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "heavy = sorted(m for m in ('textual', 'pandas', 'pyarrow', 'matplotlib') "
        "if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"


def test_protocol_is_pure() -> None:
    code = (
        "import sys, siotools.protocol\n"
        "bad = sorted(m for m in ('asyncio', 'redis', 'socketio', 'textual', 'pandas') "
        "if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"siotools.protocol pulled in {out.stdout.strip()}"


def test_missing_extra_message() -> None:
    from siotools._extras import require

    with pytest.raises(siotools.MissingExtraError) as info:
        require("no_such_module_for_siotools", "tui")
    assert "pip install 'siotools[tui]'" in str(info.value)


def test_wheel_contains_every_tui_module(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("siotools-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tui_files = [p for p in (ROOT / "tui").rglob("*") if p.suffix in {".py", ".tcss"}]
    assert tui_files
    for path in tui_files:
        rel = path.relative_to(ROOT / "tui").as_posix()
        assert f"siotools/tui/{rel}" in names, rel
    assert "siotools/py.typed" in names
    py_packages = {p.parent for p in (ROOT / "siotools").rglob("*.py")}
    for pkg in py_packages:
        rel = pkg.relative_to(ROOT).as_posix()
        assert f"{rel}/__init__.py" in names, f"{rel} is not listed in pyproject packages"


def test_ruff_bans_import_tui(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import tui\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--config",
            str(ROOT / "pyproject.toml"),
            "--no-cache",
            str(bad),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "TID251" in out.stdout
