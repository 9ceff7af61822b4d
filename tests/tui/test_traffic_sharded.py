"""The traffic view's source on a sharded prefix: one sentence, or the mode chosen."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from siotools.tui.traffic_source import sniffer_source

from siotools.pynode import PythonNode
from siotools.sniffer import ShardedPubSubError


async def test_sharded_prefix_says_so_then_ssubscribe_sees_it(redis_url: str, key: str) -> None:
    node = await PythonNode(redis_url, namespaces=["/"], dialect="sharded", key=key).start()
    try:
        plain = sniffer_source(redis_url, key)
        assert plain is not None
        with pytest.raises(ShardedPubSubError) as info:
            async for _ in plain():
                pass
        text = str(info.value)
        assert (
            "--monitor" in text and "--ssubscribe" in text and "siotools sniff --discover" in text
        )

        chosen = sniffer_source(redis_url, key, ssubscribe=True)
        assert chosen is not None
        frames = chosen()

        async def first() -> object:
            return await anext(frames)  # type: ignore[call-overload]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            task = asyncio.create_task(first())
            for _ in range(100):  # until the source's SSUBSCRIBE is up
                await node.sio.emit("tui-news", 3)
                done, _ = await asyncio.wait({task}, timeout=0.1)
                if done:
                    break
            frame = await asyncio.wait_for(task, 5)
        await frames.aclose()  # type: ignore[attr-defined]
        assert frame.event == "tui-news" and frame.sharded  # type: ignore[attr-defined]
    finally:
        await node.stop()
