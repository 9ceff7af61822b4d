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

Sharded pub/sub (the 8.x sharded adapter) has no pattern subscriptions: sniff it with
``monitor=True`` (every master and replica of a Redis Cluster, ``?cluster=true``),
``ssubscribe=True`` (counted by SHARDNUMSUB: the nodes' requests time out) or list its
channels with :func:`discover_shards`; see :mod:`siotools.sniffer.sharded`.

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
from siotools.sniffer.sharded import (
    DISCOVER_NOTE,
    SSUBSCRIBE_WARNING,
    ShardDiscovery,
    ShardedPubSubError,
    discover_shards,
    sharded_sentence,
    watch_shards,
)

__all__ = [
    "DISCOVER_NOTE",
    "MONITOR_WARNING",
    "SSUBSCRIBE_WARNING",
    "Capture",
    "CaptureSet",
    "ColumnStore",
    "ShardDiscovery",
    "ShardedPubSubError",
    "SniffFilter",
    "SniffedFrame",
    "capture",
    "describe",
    "discover_shards",
    "jsonable",
    "load_capture",
    "replay",
    "sharded_sentence",
    "sniff",
    "start_capture",
    "watch_shards",
]
