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


def test_stream_count_needs_stream_and_a_count(capsys: pytest.CaptureFixture[str]) -> None:
    url = "redis://127.0.0.1:1/0"
    assert main(["tui", "--url", url, "--stream-count", "2"]) == 2
    err = capsys.readouterr().err
    assert "--stream-count needs --stream KEY" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as info:
        main(["tui", "--url", url, "--stream", "s", "--stream-count", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--stream-count: '0' must be at least 1" in err and "Traceback" not in err


def test_stream_and_count_reach_the_traffic_source(monkeypatch: pytest.MonkeyPatch) -> None:
    from siotools.tui import app as app_module
    from siotools.tui import traffic_source

    asked: list[dict[str, object]] = []
    real = traffic_source.sniffer_source

    def recorded(url: str, prefix: str, **kw: object) -> object:
        asked.append({"url": url, "prefix": prefix, **kw})
        return real(url, prefix, **kw)  # type: ignore[arg-type]

    async def no_terminal(self: object) -> None:
        return None

    monkeypatch.setattr(traffic_source, "sniffer_source", recorded)
    monkeypatch.setattr(app_module.SiotoolsApp, "run_async", no_terminal)
    url = "redis://127.0.0.1:1/0"
    common = ["tui", "--url", url, "--prefix", "p"]
    assert main([*common, "--stream", "s", "--stream-count", "2"]) == 0
    assert main(common) == 0
    assert [(a["stream"], a["stream_count"]) for a in asked] == [("s", 2), (None, None)]
