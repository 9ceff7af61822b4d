"""``siotools tui`` command line: argument errors are one line, never a traceback."""

from __future__ import annotations

import pytest

from siotools.cli import main


def test_refresh_floor_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tui", "--url", "redis://127.0.0.1:1/0", "--refresh", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "siotools: --refresh 0.1 is too short: the refresh interval must be at least 0.5 s.\n"
    )


def test_help_lists_the_sniff_filters(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["tui", "--help"])
    out = capsys.readouterr().out
    for flag in ("--read-only", "--refresh", "--nsp", "--room", "--event", "--kind"):
        assert flag in out
