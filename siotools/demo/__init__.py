"""A local demo cluster with realistic traffic, for ``siotools demo``, notebooks and tests.

Example::

    from siotools.demo import DemoCluster

    async with DemoCluster(nodes=2, clients=40, rate=20) as demo:
        print(demo.redis_url, demo.key)
        await demo.run(duration=10)
"""

from __future__ import annotations

from siotools.demo.cluster import CHAT_ROOMS, NAMESPACES, DemoCluster, DemoStats

__all__ = ["CHAT_ROOMS", "NAMESPACES", "DemoCluster", "DemoStats"]
