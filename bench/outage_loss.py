"""Broadcast loss around a Redis restart: the offline-queue policy, measured.

A sender emits 500 broadcasts per second for 6 s; Redis is killed 1 s in and started
again 3 s later; the loss is what the receiver never got. Three set-ups, one after the
other, five runs each, on one private Redis:

* **adapter**: two python-socketio nodes (siotools adapter), node A emitting to ``/``,
  a websocket client on node B counting (the real path, the default policy);
* **transport, hold**: a ``Publisher`` and a ``Subscriber`` (the default policy: the
  queue waits until the subscribers are back);
* **transport, no hold**: the same with ``hold_max=0`` (the queue is sent as soon as the
  publisher reconnects, the policy before it was measured).

It also measures how long a subscriber takes to be resubscribed after Redis is back
(``--reconnects N`` restarts after outages of 0.5 to 4 s).

Run: ``python -m bench.outage_loss [--runs 5] [--rate 500] [--outage 3] [--reconnects 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from siotools.pynode import PythonNode
from siotools.redis_server import RedisServer
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher, Subscriber

Send = Callable[[int], None]


async def _drive(
    server: RedisServer, send: Send, received: Callable[[], int], rate: float, outage: float
) -> tuple[int, int]:
    """Send at ``rate`` for ``outage + 3`` s around a restart; returns (sent, received)."""
    sent = 0
    interval = 1.0 / rate

    async def produce(seconds: float) -> None:
        nonlocal sent
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed / interval) + 1
            while sent < due:
                send(sent)
                sent += 1
            await asyncio.sleep(interval)

    await produce(1.0)
    server.kill()
    await produce(outage)
    await asyncio.to_thread(server.restart)
    await produce(2.0)
    end = time.monotonic() + 5.0
    while received() < sent and time.monotonic() < end:
        await asyncio.sleep(0.05)
    return sent, received()


async def run_transport(server: RedisServer, rate: float, outage: float, hold: bool) -> int:
    ep = RedisEndpoint.from_url(server.url)
    got: set[bytes] = set()  # distinct: a publish in flight at the kill may come twice

    def on_message(channel: bytes, payload: bytes, pattern: bytes | None) -> None:
        got.add(payload)

    sub = Subscriber(ep, on_message, on_error=lambda e: None)
    pub = Publisher(ep, on_error=lambda e: None, hold_max=2.0 if hold else 0.0)
    await sub.start()
    await pub.start()
    await sub.subscribe([b"outage"])
    sent, received = await _drive(
        server, lambda i: pub.publish(b"outage", str(i).encode()), lambda: len(got), rate, outage
    )
    await sub.close()
    await pub.close()
    return sent - received


async def run_adapter(server: RedisServer, rate: float, outage: float) -> int:
    import socketio

    a = PythonNode(server.url)
    b = PythonNode(server.url)
    for node in (a, b):
        node.adapter.on_error(lambda e: None)
        await node.start()
    client = socketio.AsyncClient(reconnection=False)
    got: set[Any] = set()

    @client.on("tick")  # type: ignore[misc]
    async def tick(i: Any) -> None:
        got.add(i)

    await client.connect(b.url, transports=["websocket"])
    pending: set[asyncio.Task[Any]] = set()

    def send(i: int) -> None:
        task = asyncio.ensure_future(a.sio.emit("tick", i))
        pending.add(task)
        task.add_done_callback(pending.discard)

    sent, received = await _drive(server, send, lambda: len(got), rate, outage)
    await client.disconnect()
    await a.stop()
    await b.stop()
    return sent - received


async def reconnect_times(count: int) -> list[float]:
    """Seconds from Redis answering again to the subscriber's "restored" event."""
    times = []
    with RedisServer() as server:
        restored = asyncio.Event()
        at = 0.0

        def on_event(event: Any) -> None:
            nonlocal at
            if event.kind == "restored":
                at = event.at
                restored.set()

        sub = Subscriber(
            RedisEndpoint.from_url(server.url),
            lambda *a: None,
            on_event=on_event,
            on_error=lambda e: None,
        )
        await sub.start()
        await sub.subscribe([b"x"])
        for i in range(count):
            restored.clear()
            server.kill()
            await asyncio.sleep(0.5 + 3.5 * i / max(1, count - 1))
            await asyncio.to_thread(server.restart)
            back = time.time()
            await asyncio.wait_for(restored.wait(), 30)
            times.append(at - back)
        await sub.close()
    return times


async def main_async(runs: int, rate: float, outage: float, reconnects: int) -> None:
    if reconnects:
        times = await reconnect_times(reconnects)
        print(
            f"resubscribed after Redis was back: median {statistics.median(times):.3f}s, "
            f"max {max(times):.3f}s over {len(times)} restarts"
        )
    setups: list[tuple[str, Callable[[RedisServer], Awaitable[int]]]] = [
        ("adapter (hold)", lambda s: run_adapter(s, rate, outage)),
        ("transport, hold", lambda s: run_transport(s, rate, outage, True)),
        ("transport, no hold", lambda s: run_transport(s, rate, outage, False)),
    ]
    if runs < 1:
        return
    expected = int(rate * (outage + 3.0))
    print(f"about {expected} broadcasts per run, {rate:g}/s, Redis down {outage:g}s")
    for name, run in setups:
        losses = []
        for _ in range(runs):
            with RedisServer() as server:
                losses.append(await run(server))
        print(
            f"{name:>20}: lost {losses} (median {statistics.median(losses):g}, max {max(losses)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--outage", type=float, default=3.0)
    parser.add_argument("--reconnects", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main_async(args.runs, args.rate, args.outage, args.reconnects))


if __name__ == "__main__":
    main()
