"""Every code block of the README runs: python blocks as scripts, shell blocks in bash.

Both run against a demo cluster this module starts (its URL in ``$REDIS_URL``). A block that
cannot run here is preceded by ``<!-- readme-test: skip (why) -->``; there are few.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
BLOCK = re.compile(
    r"(?P<marker><!-- readme-test: skip[^>]*-->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S
)
BLOCKS = [
    (m["lang"], m["code"], m["marker"] is not None, README.read_text()[: m.start()].count("\n") + 1)
    for m in BLOCK.finditer(README.read_text())
]
RUNNABLE = [(lang, code, line) for lang, code, skip, line in BLOCKS if not skip]

# Runs one python block; top-level await allowed, as in a notebook.
RUNNER = """
import ast, asyncio, sys
source = open(sys.argv[1]).read()
code = compile(source, "README block", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
scope = {"__name__": "readme"}
result = eval(code, scope)
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


def test_blocks_are_few_skipped_and_known_languages() -> None:
    assert len(RUNNABLE) >= 6
    # Skipped: make, the demo's URL, JavaScript, the interactive TUI, an ACL line for your own
    # Redis and a settings file. Everything a reader can run against the demo runs here.
    assert sum(skip for _, _, skip, _ in BLOCKS) <= 6
    assert {lang for lang, _, _ in RUNNABLE} <= {"python", "sh"}


@pytest.fixture(scope="module")
def demo_env() -> Iterator[dict[str, str]]:
    """A small demo cluster with still sockets (no churn, no kicks), as the README's target."""
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": bindir + os.pathsep + os.environ["PATH"]}
    argv = [sys.executable, "-m", "siotools", "demo", "--headless", "--nodes", "2"]
    argv += ["--clients", "12", "--rate", "10", "--churn", "0", "--remote-every", "0"]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    url = None
    for line in proc.stdout:
        found = re.search(r"Redis is ready at (redis://\S+)", line)
        url = found[1] if found else url
        if "Press Ctrl-C" in line:
            break
    assert url is not None, "the demo did not start"
    try:
        yield {**env, "REDIS_URL": url}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


@pytest.mark.parametrize(
    ("lang", "code"),
    [(lang, code) for lang, code, _ in RUNNABLE],
    ids=[f"{lang}-line{line}" for lang, _, line in RUNNABLE],
)
def test_block_runs(lang: str, code: str, demo_env: dict[str, str], tmp_path: Path) -> None:
    if "--node-peer" in code and not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed for --node-peer")
    if lang == "python":
        script = tmp_path / "block.py"
        script.write_text(code)
        argv = [sys.executable, "-c", RUNNER, str(script)]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", code]
    out = subprocess.run(argv, capture_output=True, text=True, env=demo_env, timeout=240)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    assert "Traceback" not in out.stderr
