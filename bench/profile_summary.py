"""Summarise ``py-spy record --format raw`` files as shares of the time.

``python -m bench.profile_summary FILE... [--top 15]``: for each file, the share of the
samples spent *inside* each of the path's stages (inclusive), then the functions with the
most samples of their own (self time), grouped by the package that owns them. The files
come from ``BENCH_PYSPY=DIR python -m bench.bench_adapter ...`` (node B, per case).
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path


# Stages of the receive-to-client path: (label, regex on one frame). py-spy writes a frame
# as "Class.func (package/file.py:line)".
def _fn(func: str, file: str) -> str:
    return rf"(^|\.){func} \({file}"


STAGES = (
    ("subscriber read (siotools/transport; includes route + decode)", r"\(siotools/transport/"),
    ("adapter: route + decode (_on_batch)", _fn("_on_batch", "siotools/adapter")),
    ("adapter: deliver loop (_deliver_loop)", _fn("_deliver_loop", "siotools/adapter")),
    ("  recipients + sends (_deliver_local)", _fn("_deliver_local", "")),
    ("  socket.io packet encode (socketio/packet.py)", r"\(socketio/packet\.py"),
    ("  per-recipient send chain (_send_eio_packet)", _fn("_send_eio_packet", "socketio/")),
    ("  LocalDelivery.deliver", _fn("deliver", "siotools/delivery")),
    ("engineio writer task (async_socket writer)", _fn("writer", "engineio/async_socket")),
    ("  websocket send (engineio driver)", _fn("send", "engineio/async_drivers/")),
    ("    permessage-deflate", r"\((aiohttp/compression_utils|websockets/extensions|wsproto/ext)"),
    ("    transport.write (one send() per frame)", _fn("write", "asyncio/selector_events")),
    ("python-socketio AsyncRedisManager", r"\(socketio/async_(redis|pubsub)_manager\.py"),
    (
        "event loop (select + _run_once own time)",
        r"^(EpollSelector\.select|BaseEventLoop\._run_once) ",
    ),
)


def owner(frame: str) -> str:
    """The package (or stdlib module) a frame's file belongs to."""
    m = re.search(r"\((.*?):\d+\)$", frame)
    path = m.group(1) if m else frame
    parts = path.split("/")
    if parts[0] == "siotools" and len(parts) > 1:
        return "/".join(parts[:2])
    return parts[0]


def short(frame: str) -> str:
    m = re.match(r"(.*?) \((.*?):(\d+)\)$", frame)
    if not m:
        return frame
    func, path, _ = m.groups()
    tail = "/".join(path.split("/")[-2:])
    return f"{func} ({tail})"


def summarise(path: Path, top: int) -> None:
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        frames = [f for f in body.split(";") if not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        stacks.append((frames, int(count)))
    total = sum(c for _, c in stacks)
    print(f"\n== {path.name}: {total} samples (busy time only; idle waits excluded)")
    if not total:
        return
    print("  inclusive share by stage:")
    for label, pattern in STAGES:
        rx = re.compile(pattern)
        if label.startswith("event loop"):
            n = sum(c for frames, c in stacks if frames and rx.search(frames[-1]))
        else:
            n = sum(c for frames, c in stacks if any(rx.search(f) for f in frames))
        if n:
            print(f"    {100 * n / total:5.1f}%  {label}")
    self_by_func: collections.Counter[str] = collections.Counter()
    self_by_pkg: collections.Counter[str] = collections.Counter()
    for frames, c in stacks:
        if frames:
            self_by_func[frames[-1]] += c
            self_by_pkg[owner(frames[-1])] += c
    print("  self time by package:")
    for pkg, n in self_by_pkg.most_common(10):
        print(f"    {100 * n / total:5.1f}%  {pkg}")
    print(f"  top {top} functions by self time:")
    for func, n in self_by_func.most_common(top):
        print(f"    {100 * n / total:5.1f}%  {short(func)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args()
    for path in args.files:
        summarise(path, args.top)


if __name__ == "__main__":
    main()
