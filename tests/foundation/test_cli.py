"""The command line: version, help, one-sentence errors."""

from __future__ import annotations

import subprocess
import sys

import siotools


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "siotools", *args], capture_output=True, text=True, timeout=timeout
    )


def test_version() -> None:
    out = run("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"siotools {siotools.__version__}"


def test_help_lists_commands() -> None:
    out = run("--help")
    assert out.returncode == 0
    assert "demo" in out.stdout


def test_bad_option_is_one_sentence_exit_2() -> None:
    out = run("--no-such-option")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr


def test_demo_stub_starts_redis_and_stops() -> None:
    out = run("demo", "--duration", "0.2")
    assert out.returncode == 0, out.stderr
    assert "Redis is ready at redis://127.0.0.1:" in out.stdout
    assert "stopped" in out.stdout
