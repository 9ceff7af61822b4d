"""Request deadlines on a Redis Cluster are those of one Redis.

A node that does not answer fails the request with Node's own timeout string, within the
timeout, on one Redis and on a Redis Cluster alike; a stalled Redis Cluster master (here
``CLIENT PAUSE``: it takes connections and commands and answers none, while the cluster
bus keeps it a healthy master) fails the request within its timeout too, as a stalled
single Redis does, instead of leaving it waiting for an answer that may never come.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from siotools import ClusterClient
from siotools.dialects.base import Ask, Expect, Plan
from siotools.exceptions import RedisUnavailableError, RequestTimeout, RequestUndelivered
from siotools.nodepeer import NodePeer
from siotools.pynode import PythonNode
from siotools.redis_cluster import RedisCluster
from siotools.requester import Requester, Transport
from siotools.transport.requests import RequestEngine

TIMEOUT = 0.8
# Process scheduling on a loaded machine; a missing deadline would be seconds, or forever.
SLACK = 0.7


@pytest.fixture(params=["redis", "rcluster"])
def where(request: pytest.FixtureRequest, redis_url: str) -> Iterator[str]:
    if request.param == "redis":
        yield redis_url
        return
    cluster: RedisCluster = request.getfixturevalue("sharded_cluster")
    yield cluster.url.removesuffix("/0") + "?cluster=true"


@pytest.mark.node
async def test_a_silent_node_times_out_with_nodes_string_in_time(
    where: str, node_install: Any
) -> None:
    node_install("current")
    key = f"dl-{uuid.uuid4().hex[:8]}"
    cluster = "cluster=true" in where
    py = PythonNode(where, key=key, namespaces=["/"], dialect="current")
    await py.start()
    py.adapter.on_server_side_emit("probe")(lambda *args: "py")
    silent = await NodePeer.start(
        "current",
        name="silent",
        port=0,
        redis_url=where.removesuffix("?cluster=true"),
        key=key,
        sse_events="probe",
        sse_mode="silent",
        **({"redis_cluster": True} if cluster else {}),
    )
    try:
        async with ClusterClient(
            where, key=key, dialect="current", requests_timeout=TIMEOUT
        ) as client:
            assert await client.node_count("/") == 2
            started = time.monotonic()
            with pytest.raises(RequestTimeout) as caught:
                await client.server_side_emit_with_ack("probe", namespace="/")
            elapsed = time.monotonic() - started
    finally:
        await silent.stop()
        await py.stop()
    # @socket.io/redis-adapter 8.x serverSideEmit's wording, on both transports.
    assert str(caught.value) == "timeout reached: only 1 responses received out of 2"
    assert caught.value.answered == 1 and caught.value.partial == ["py"]
    assert TIMEOUT - 0.05 <= elapsed <= TIMEOUT + SLACK, elapsed


def _first_master(cluster: RedisCluster) -> int:
    return min(m.port for m in cluster.masters())


def _ask(channel: bytes) -> Plan[Any]:
    result = yield Ask(
        channel=channel,
        payload=b"never answered",
        request_id="dl-req",
        expect=Expect.FIRST,
        timeout_message="timeout reached while waiting for the answer",
    )
    return result


async def test_a_stalled_cluster_master_fails_requests_in_time(
    sharded_cluster: RedisCluster,
) -> None:
    """The first master (by address) takes the classic publishes and the NUMSUB of every
    request; stopped, it answers nothing, and the requests must fail by their deadline."""
    cluster = sharded_cluster
    port = _first_master(cluster)
    url = f"redis://127.0.0.1:{port}?cluster=true"
    key = f"dl-{uuid.uuid4().hex[:8]}"
    node = PythonNode(url, key=key, namespaces=["/"], dialect="current")
    await node.start()
    client = ClusterClient(url, key=key, dialect="current", requests_timeout=TIMEOUT)
    await client.connect()
    transport = Transport(url)
    publisher = transport.publisher(None, name="dl-pub", on_error=lambda exc: None)
    await publisher.start()
    requester = Requester(publisher, RequestEngine(), timeout=TIMEOUT, counted=False)
    assert await client.node_count("/") == 1
    admin = cluster.client(port)
    admin.execute_command("CLIENT", "PAUSE", 10_000, "ALL")
    try:
        # A request's NUMSUB: the stalled master never answers it.
        started = time.monotonic()
        with pytest.raises(RedisUnavailableError, match="did not answer PUBSUB"):
            await client.fetch_sockets(namespace="/")
        assert time.monotonic() - started <= TIMEOUT + SLACK
        # A request published to the stalled master: undelivered, said so, in time.
        started = time.monotonic()
        with pytest.raises(RequestUndelivered, match="is unreachable"):
            await requester.run(_ask(f"{key}-request#/#".encode()))
        assert time.monotonic() - started <= TIMEOUT + SLACK
        await asyncio.sleep(0.2)  # the publisher's own deadline timer, just after the engine's
        assert publisher.stalls + publisher.expired >= 1  # type: ignore[union-attr]
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
        await asyncio.gather(client.close(), publisher.close(), node.stop())
