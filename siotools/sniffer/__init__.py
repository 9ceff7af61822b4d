"""The passive sniffer: what a Socket.IO cluster says on Redis, decoded.

Passive means one Redis connection that only ``PSUBSCRIBE``\\ s the prefix's patterns
(pattern subscriptions are not counted by ``PUBSUB NUMSUB``, so the cluster's requests keep
waiting for exactly the nodes they expect), or ``MONITOR`` when asked, to see sharded
``SPUBLISH`` traffic::

    async for f in siotools.sniff("redis://localhost:6379", prefix="socket.io"):
        print(f.channel, f.frame)

    cap = await siotools.capture(url, duration=10)       # or start_capture(...) + cap.stop()
    df = cap.to_pandas()                                 # one row per message
    cap.save("traffic.parquet"); cap = siotools.load_capture("traffic.parquet")
    cap = await siotools.capture(url, duration=3600, path="caps/", rotate="256MB")
    caps = siotools.load_capture("caps/")                # lazy: a CaptureSet
    df = caps.to_pandas(["time", "event"], where={"nsp": "/chat"})
    await siotools.replay(cap, staging_url, prefix="staging")

Nothing here imports pandas until :meth:`Capture.to_pandas` or a parquet file is used.
"""

from siotools.sniffer.capture import (
    Capture,
    CaptureSet,
    capture,
    load_capture,
    sniff,
    start_capture,
)
from siotools.sniffer.columns import ColumnStore
from siotools.sniffer.frames import SniffedFrame, SniffFilter, describe, jsonable
from siotools.sniffer.live import MONITOR_WARNING
from siotools.sniffer.replay import replay

__all__ = [
    "MONITOR_WARNING",
    "Capture",
    "CaptureSet",
    "ColumnStore",
    "SniffFilter",
    "SniffedFrame",
    "capture",
    "describe",
    "jsonable",
    "load_capture",
    "replay",
    "sniff",
    "start_capture",
]
