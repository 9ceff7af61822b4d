"""In-process benchmark of an adapter's receive path, without Redis or sockets.

Feeds batches of real 8.x broadcasts from another node to
:meth:`AsyncRedisAdapter._on_batch <siotools.shell.NodeShell>` (what the subscriber calls
per socket read): the node core routes, gates and decodes each one and queues a delivery
for the one local socket in the target room. Two cases: ``namespace`` (broadcasts on
``key#/#``) and ``room`` (on the room channel, heard through the pattern), and the
publish side (:meth:`_broadcast_now` onto a publisher that only buffers).

Run: ``python -m bench.bench_receive [--n 200000] [--rounds 5]``; prints the best
microseconds of CPU time per message of each case (process time, so that waiting for a
core on a shared machine does not count; the least disturbed round).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from siotools.adapter import AsyncRedisAdapter


class _BufferingPublisher:
    """Takes publishes and keeps nothing (the cost of the adapter's side only)."""

    congested = False

    def publish(self, channel: bytes, payload: bytes) -> None:
        pass


def _adapter() -> AsyncRedisAdapter:
    adapter = AsyncRedisAdapter("redis://127.0.0.1:1/0", dialect="current", key="bench")
    adapter.rooms = {"/": {None: {"s1": "e1"}, "s1": {"s1": "e1"}, "r": {"s1": "e1"}}}
    adapter.core.join_namespace("/")
    return adapter


def _best(fn: Any, n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best / n * 1e6


def main() -> None:
    """Run the cases and print microseconds per message."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    adapter = _adapter()
    wire = adapter.wire
    data = ["chat", {"text": "hello", "n": 1}]
    whole = wire.broadcast("other", "/", data, [], [], {})
    room = wire.broadcast("other", "/", data, ["r"], [], {})
    pattern = wire.grammar.broadcast("/").encode() + b"*"
    batch = 100
    whole_batch = [[b"message", whole.channel, whole.payload]] * batch
    room_batch = [[b"pmessage", pattern, room.channel, room.payload]] * batch
    inbox = adapter._inbox

    def run(items: list[list[bytes]]) -> Any:
        def go() -> None:
            on_batch = adapter._on_batch
            for _ in range(args.n // batch):
                on_batch(0, items)
                inbox.clear()

        return go

    adapter._publisher = _BufferingPublisher()  # type: ignore[assignment]

    def publish() -> None:
        now = adapter._broadcast_now
        for _ in range(args.n):
            now("/", data, ["r"], [], {})

    for name, fn in (
        ("namespace", run(whole_batch)),
        ("room", run(room_batch)),
        ("publish", publish),
    ):
        print(f"{name:10s} {_best(fn, args.n, args.rounds):.3f} us/msg")


if __name__ == "__main__":
    main()
