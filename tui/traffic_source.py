"""Where the traffic view's frames come from: the passive sniffer (:func:`siotools.sniff`).

Kept apart so the app takes any ``() -> AsyncIterator[frame]`` factory: the CLI passes the
sniffer, the snapshot tests a fixed list of frames.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from .traffic_model import FrameLike

__all__ = ["TrafficSource", "sniffer_source"]

TrafficSource = Callable[[], AsyncIterator[FrameLike]]


def sniffer_source(url: str, prefix: str) -> TrafficSource | None:
    """A factory of live sniffs of ``url``/``prefix``, or None without the sniffer."""
    try:
        sniffer: Any = importlib.import_module("siotools.sniffer")
    except ImportError:
        return None
    sniff = sniffer.sniff

    def source() -> AsyncIterator[FrameLike]:
        frames: AsyncIterator[FrameLike] = sniff(url, prefix=prefix)
        return frames

    return source
