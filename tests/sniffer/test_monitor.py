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


def test_parse_entry_names_the_client() -> None:
    from siotools.transport.monitor import parse_monitor_entry

    # Lines as a Redis 7.0 replica's MONITOR wrote them: its master's replicated write
    # (under the master's address), then a client's PUBLISH to the replica.
    entry = parse_monitor_entry(b'1796146628.564994 [0 127.0.0.1:34859] "SET" "k" "v"')
    assert entry is not None
    assert (entry.ts, entry.db, entry.client, entry.args) == (
        1796146628.564994,
        0,
        b"127.0.0.1:34859",
        [b"SET", b"k", b"v"],
    )
    entry = parse_monitor_entry(b'1.5 [12 127.0.0.1:46082] "PUBLISH" "k" "x"')
    assert entry is not None and entry.db == 12 and entry.client == b"127.0.0.1:46082"
    entry = parse_monitor_entry(b'1.5 [0 lua] "publish" "k" "x"')
    assert entry is not None and entry.client == b"lua" and entry.args[0] == b"publish"
    entry = parse_monitor_entry(b'1.5 [3 unix:/tmp/r.sock] "PING"')
    assert entry is not None and entry.client == b"unix:/tmp/r.sock"
    assert parse_monitor_entry(b'1.5 0 127.0.0.1:1] "PING"') is None  # no bracket
    assert parse_monitor_entry(b'1.5 [x 127.0.0.1:1] "PING"') is None  # no database
