"""MONITOR line parsing."""

from __future__ import annotations

from siotools.transport.monitor import parse_monitor_line


def test_parse_escapes() -> None:
    line = (
        b'1339518083.107412 [0 127.0.0.1:60866] "PUBLISH" "socket.io#/#salle-\\xc3\\xa9#" '
        b'"\\x93\\xa6a\\"b\\\\c\\n\\r\\t\\a\\b "'
    )
    ts, args = parse_monitor_line(line)  # type: ignore[misc]
    assert ts == 1339518083.107412
    assert args == [
        b"PUBLISH",
        "socket.io#/#salle-é#".encode(),
        b'\x93\xa6a"b\\c\n\r\t\x07\x08 ',
    ]


def test_parse_other_lines() -> None:
    assert parse_monitor_line(b"OK") is None
    assert parse_monitor_line(b'notatime [0 lua] "x"') is None
    _ts, args = parse_monitor_line(b'1.5 [0 unix:/tmp/r.sock] "SPUBLISH" "c" ""')  # type: ignore[misc]
    assert args == [b"SPUBLISH", b"c", b""]
