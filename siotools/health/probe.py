"""``--probe``: one read-only request per namespace, through the public ClusterClient API.

``node_count`` says how many answers the request will wait for (NUMSUB, as the nodes
count), ``all_rooms`` (``clients`` where the dialect has no allRooms) asks every node. The
probing ClusterClient never SUBSCRIBEs a request channel, so it does not change what it
measures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from siotools.exceptions import (
    ConfigurationError,
    RequestError,
    RequestTimeout,
    UnsupportedOperation,
)
from siotools.protocol import Dialect

__all__ = ["ProbeResult", "probe"]


@dataclass(slots=True)
class ProbeResult:
    """What one namespace's probe got.

    Attributes:
        nsp: The namespace.
        request: Which request was sent (``allRooms`` or ``clients``).
        expected: Answers it waited for (the node count).
        answered: Answers that arrived.
        seconds: From the request to its completion (or its timeout).
        started_ns: When it was sent (wall clock, to match it in the sniff).
        ended_ns: When it (and the ``clients`` request after it) completed or timed out.
        sids: The socket ids of the namespace (from ``clients``), when asked.
        error: Why the probe could not run, if it could not.
    """

    nsp: str
    request: str = "allRooms"
    expected: int = 0
    answered: int = 0
    seconds: float = 0.0
    started_ns: int = 0
    ended_ns: int = 0
    sids: list[str] | None = None
    error: str | None = None


async def probe(
    url: str,
    prefix: str,
    namespaces: list[str],
    dialect: Dialect,
    *,
    timeout: float = 2.0,
    want_sids: frozenset[str] = frozenset(),
    cluster: bool | None = None,
) -> list[ProbeResult]:
    """Ask each namespace once and measure who answers and how fast.

    Args:
        url: The Redis URL.
        prefix: The adapters' key.
        namespaces: The namespaces to ask.
        dialect: The cluster's dialect.
        timeout: Seconds to wait for the answers.
        want_sids: Namespaces whose socket ids to list too (``clients``).
        cluster: Whether ``url`` names a Redis Cluster node (``None``: as the URL says).

    Returns:
        One result per namespace; a probe that could not run says why in ``error``.
    """
    from siotools.cluster import ClusterClient

    try:
        client: Any = ClusterClient(
            url,
            key=prefix,
            requests_timeout=timeout,
            dialect=dialect,
            cluster=cluster,
        )
    except ConfigurationError as exc:
        return [
            ProbeResult(nsp, error=f"the cluster client cannot ask this dialect: {exc}")
            for nsp in namespaces
        ]
    results = []
    try:
        await client.connect()
        for nsp in namespaces:
            res = ProbeResult(nsp)
            results.append(res)
            res.expected = await client.node_count(nsp)
            res.started_ns = time.time_ns()
            started = time.perf_counter()
            try:
                try:
                    await client.all_rooms(namespace=nsp)
                except UnsupportedOperation:
                    res.request = "clients"
                    await client.clients(namespace=nsp)
                res.answered = res.expected
            except RequestTimeout as exc:
                res.answered = exc.answered
                if exc.expected is not None:
                    res.expected = exc.expected
            except RequestError as exc:
                res.error = str(exc)
            res.seconds = time.perf_counter() - started
            if nsp in want_sids:
                try:
                    res.sids = list(await client.clients(namespace=nsp))
                except RequestTimeout as exc:
                    res.sids = list(exc.partial or [])
            res.ended_ns = time.time_ns()  # the window covers both requests
    finally:
        await client.close()
    return results
