"""Publish one payload N times, pipelined, from a process of its own.

``python -m bench._flood PORT CHANNEL HEXPAYLOAD N``: the traffic a busy third node would
send, as fast as Redis takes it (batches of 1000 commands per write).
"""

from __future__ import annotations

import socket
import sys
import threading

import hiredis


def main() -> None:
    port, channel, payload_hex, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    command = hiredis.pack_command((b"PUBLISH", channel.encode(), bytes.fromhex(payload_hex)))
    sock = socket.create_connection(("127.0.0.1", int(port)))
    reader = hiredis.Reader()
    replies = 0

    def drain() -> None:
        nonlocal replies
        while replies < n:
            data = sock.recv(1 << 16)
            if not data:
                return
            reader.feed(data)
            while reader.gets() is not False:
                replies += 1

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    batch = command * 1000
    sent = 0
    while sent + 1000 <= n:
        sock.sendall(batch)
        sent += 1000
    if sent < n:
        sock.sendall(command * (n - sent))
    t.join(60)
    sock.close()
    print(replies, flush=True)


if __name__ == "__main__":
    main()
