"""The cluster doctor: why requests time out, from what Redis and the wire say.

Passive by default: ``PUBSUB`` counts, ``CLIENT LIST``, ``INFO``, ``CONFIG GET`` where
allowed, and a few seconds of ``PSUBSCRIBE`` listening, none of which a node can notice
(nothing is published, nothing SUBSCRIBEd, so NUMSUB and SHARDNUMSUB stay the same).
``probe=True`` adds one read-only request per namespace through
:class:`~siotools.ClusterClient` to measure who answers and how fast; ``monitor=True`` adds
``MONITOR`` for the sharded adapter's ``SPUBLISH`` traffic, which no subscription sees
(8.2.x and 8.3 sharded nodes mixed on one prefix show there)::

    report = await siotools.doctor("redis://127.0.0.1:6379/0", prefix="socket.io")
    report            # a notebook shows the findings (``_repr_html_``)
    report.exit_code  # 0 healthy, 1 problems
"""

from __future__ import annotations

import statistics

from siotools.dialects.detect import (
    CommandRunner,
    clues,
    numsub_across,
    reconcile_streams,
    snapshot_across,
    structural_evidence,
    with_traffic,
)
from siotools.dialects.detect import spoken as spoken_dialects
from siotools.exceptions import ConfigurationError
from siotools.health.facts import ServerFacts, Sniff, read_servers, sniff
from siotools.health.probe import ProbeResult, probe
from siotools.health.report import Finding, NamespaceHealth, Report, Severity
from siotools.health.rules import Inputs, dynamic_private_rooms, evaluate, is_probe
from siotools.protocol import ChannelGrammar, Dialect
from siotools.requester import Transport, command_runners, read_stream_on
from siotools.transport.cluster_pubsub import ClusterPublisher
from siotools.transport.endpoint import RedisEndpoint

__all__ = ["Finding", "NamespaceHealth", "Report", "Severity", "doctor"]


async def _other_prefixes(runners: list[CommandRunner]) -> list[str]:
    found = set()
    for runner in runners:  # PUBSUB CHANNELS is node-local on a Redis Cluster
        names = await runner.execute(b"PUBSUB", b"CHANNELS", b"*-request#*")
        for raw in names:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            head = text.split("-request#", 1)[0]
            if head:
                found.add(head)
        shard = []
        try:
            shard = await runner.execute(b"PUBSUB", b"SHARDCHANNELS", b"*#/*")
        except Exception:  # Redis < 7 has no sharded pub/sub
            shard = []
        for raw in shard:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            found.add(text.split("#", 1)[0])
    return sorted(found)


async def doctor(
    url: str | RedisEndpoint = "redis://127.0.0.1:6379/0",
    prefix: str = "socket.io",
    *,
    probe_nodes: bool = False,
    duration: float = 3.0,
    timeout: float = 2.0,
    monitor: bool = False,
    cluster: bool | None = None,
) -> Report:
    """Examine the cluster on ``prefix`` and say what is wrong.

    On a Redis Cluster (``?cluster=true``, or ``cluster=True``), where ``PUBSUB`` is
    node-local, the subscription counts, ``INFO`` and ``CLIENT LIST`` are read on every
    master and summed or merged, as :class:`~siotools.ClusterClient`'s detection does;
    the passive listen is on one node (any node hears every ``PUBLISH``) and moves to
    another when its own is lost; what it could not hear meanwhile is a ``listen-gap``
    note.

    Args:
        url: The Redis URL, or a :class:`~siotools.transport.endpoint.RedisEndpoint` (a
            ``ClusterClient``'s ``endpoint``, password included).
        prefix: The adapters' key.
        probe_nodes: Also send one read-only request per namespace (``allRooms``) and
            measure who answers; without it nothing is sent at all.
        duration: Seconds of passive listening.
        timeout: Seconds the probe waits for answers (a node slower than this shows as
            silent; while the listen lasts, its late answer is still timed).
        monitor: Also watch ``SPUBLISH`` with ``MONITOR`` during the listen, to tell
            @socket.io/redis-adapter 8.2.x sharded nodes from 8.3 ones. Passive for the
            nodes, but costly for Redis (it formats every command for the monitor); on a
            Redis Cluster every master and replica is monitored (a ``SPUBLISH`` runs on its
            slot's master, or on one of its replicas after ``READONLY``).
        cluster: ``True``: ``url`` names a node of a Redis Cluster (as ``?cluster=true``
            does), ``False`` a single Redis; ``None`` reads the URL (an endpoint: single).

    Returns:
        The :class:`Report` (``exit_code`` 0 when healthy, 1 with problems).

    Raises:
        RedisUnavailableError: Redis cannot be reached.
        ConfigurationError: Bad URL or arguments.
    """
    if duration < 0 or timeout <= 0:
        raise ConfigurationError("duration must be >= 0 and timeout > 0 seconds")
    prefix = prefix or "socket.io"
    if isinstance(url, RedisEndpoint):
        transport = Transport(None, cluster=cluster, endpoint=url)
    else:
        transport = Transport(url, cluster=cluster)
    endpoint, on_cluster = transport.endpoint, transport.cluster
    # The probe's ClusterClient takes a URL; an endpoint with a password has none to give.
    probe_url = url if isinstance(url, str) else (None if endpoint.password else endpoint.url)
    g = ChannelGrammar(prefix)
    publisher = transport.publisher(None, name="siotools-doctor", on_error=None)
    await publisher.start()
    masters = (
        sorted(publisher.topology.masters) if isinstance(publisher, ClusterPublisher) else None
    )
    split_masters = (
        {m: runs for m, runs in publisher.topology.slot_runs().items() if len(runs) > 1}
        if isinstance(publisher, ClusterPublisher)
        else {}
    )
    # PUBSUB, INFO and CLIENT LIST are node-local on a Redis Cluster: asked of every master.
    runners = command_runners(publisher)
    try:
        snap = await snapshot_across(runners, prefix)
        server: ServerFacts = await read_servers(runners)
        structural, evidence = structural_evidence(snap)
        per_nsp = clues(snap)
        dialects = {nsp: set(d) for nsp, d in structural.items()}
        streams = await read_stream_on(publisher, prefix, snap)
        if streams is not None:  # @socket.io/redis-streams-adapter: its stream is the prefix
            reconcile_streams(dialects, evidence, streams, snap)
        targets = sorted(
            nsp for nsp, c in per_nsp.items() if c.request_subscribers or c.sharded_subscribers
        )
        want_sids = frozenset(
            nsp for nsp in targets if per_nsp[nsp].subscribe_mode and per_nsp[nsp].room_channels
        )
        probes: list[ProbeResult] = []
        room_numsub: dict[str, dict[str, int]] = {}

        async def run_probe() -> None:
            every = set().union(*dialects.values()) if dialects else set()
            spoken = spoken_dialects(every)
            if not probe_nodes or not targets:
                return
            if len(spoken) != 1:
                probes.extend(
                    ProbeResult(nsp, error="the namespace has no single dialect to ask in")
                    for nsp in targets
                )
                return
            if probe_url is None:
                probes.extend(
                    ProbeResult(nsp, error="the probe needs the Redis URL, not an endpoint")
                    for nsp in targets
                )
                return
            probes.extend(
                await probe(
                    probe_url,
                    prefix,
                    targets,
                    spoken[0],
                    timeout=timeout,
                    want_sids=want_sids,
                    cluster=on_cluster,
                )
            )
            # Right after the probe, while the sockets it listed are (mostly) still there.
            for p in probes:
                if p.sids:
                    channels = [g.room(p.nsp, sid).encode() for sid in p.sids]
                    counts = await numsub_across(runners, channels)
                    room_numsub[p.nsp] = dict(zip(p.sids, counts, strict=True))

        heard: Sniff = await sniff(
            endpoint, prefix, duration, snap, during=run_probe, monitor=monitor,
            cluster=on_cluster,
        )  # fmt: skip
        others = await _other_prefixes(runners) if not targets else []
    finally:
        await publisher.close()

    if masters is not None:
        evidence.append(
            f"a Redis Cluster: PUBSUB counts (summed), INFO and CLIENT LIST were read on every "
            f"master ({', '.join(masters)}); the listen was on one node (any node hears "
            "every PUBLISH), moving to another if its own was lost"
            + (
                f"; MONITOR watched every master ({', '.join(heard.monitored_masters)})"
                + (
                    f" and replica ({', '.join(heard.monitored_replicas)})"
                    if heard.monitored_replicas
                    else ""
                )
                if heard.monitored_masters
                else ""
            )
        )

    traffic: dict[str, set[Dialect]] = {}
    for d, per in heard.dialects.items():
        for nsp in per:
            traffic.setdefault(nsp, set()).add(d)
    for nsp, ds in traffic.items():
        with_traffic(dialects.setdefault(nsp, set()), ds)
    if any(c.sharded_subscribers for c in per_nsp.values()):
        if heard.monitored:
            evidence.append(
                f"MONITOR showed {heard.spublished} SPUBLISH on the prefix: "
                f"{sum(heard.sharded_with_nsp.values())} from 8.3 nodes (nsp in the "
                f"envelope), {sum(heard.sharded_without_nsp.values())} from 8.2.x nodes "
                "(none)"
            )
        else:
            evidence.append(
                "sharded traffic (SPUBLISH) is out of a passive listener's sight: only the "
                "sharded subscriptions were read, so 8.2 and 8.3 sharded nodes mixed (8.3 "
                "drops every 8.2 message) cannot be told apart (--monitor shows it)"
            )
        for nsp, rooms in sorted(dynamic_private_rooms(per_nsp).items()):
            evidence.append(
                f"PUBSUB SHARDCHANNELS lists socket-id room channels of {nsp} (e.g. "
                f"{g.room(nsp, rooms[0])}): a node runs subscriptionMode 'dynamic-private', "
                "which only @socket.io/redis-adapter 8.3.0+ has"
            )
    for d, per in sorted(heard.dialects.items(), key=lambda kv: kv[0].value):
        total = sum(per.values())
        evidence.append(
            f"{total} message(s) heard decode as {d.value} (in {', '.join(sorted(per))})"
        )
    inputs = Inputs(
        prefix=prefix,
        snap=snap,
        clues=per_nsp,
        dialects=dialects,
        server=server,
        sniff=heard,
        probes=probes,
        other_prefixes=others,
        room_numsub=room_numsub,
        stream_nodes=streams.nodes if streams is not None else 0,
        split_masters=split_masters,
    )
    findings = evaluate(inputs)
    windows = [(p.nsp, p.started_ns, p.ended_ns) for p in probes if p.started_ns]
    namespaces = []
    by_probe = {p.nsp: p for p in probes}
    for nsp in sorted(set(per_nsp) | set(dialects)):
        c = per_nsp.get(nsp)
        reqs = [r for r in heard.requests.values() if r.nsp == nsp and not is_probe(r, windows)]
        probed = by_probe.get(nsp)
        uids = set(c.current_uids) | set(c.sharded_uids) if c is not None else set()
        if streams is not None:
            uids |= streams.heartbeat_uids.get(nsp) or streams.channel_uids.get(nsp) or set()
        nh = NamespaceHealth(
            nsp=nsp,
            dialects=sorted(d.value for d in dialects.get(nsp, ())),
            request_subscribers=c.request_subscribers if c else 0,
            sharded_subscribers=c.sharded_subscribers if c else 0,
            node_uids=sorted(uids),
            requests_seen=len(reqs),
            requests_incomplete=sum(1 for r in reqs if not r.complete),
        )
        lat = sorted(x * 1000 for r in reqs for x in r.latencies)
        if lat:
            nh.answer_ms_median = round(statistics.median(lat), 2)
            nh.answer_ms_max = round(lat[-1], 2)
        if probed is not None and probed.error is None:
            nh.probe_answers = probed.answered
            nh.probe_expected = probed.expected
            nh.probe_latencies_ms = [
                round(x * 1000, 2)
                for r in heard.requests.values()
                if is_probe(r, [(nsp, probed.started_ns, probed.ended_ns)])
                for x in r.latencies
            ]
        namespaces.append(nh)
    every = set().union(*dialects.values()) if dialects else set()
    subscribers = [c for c in server.clients if c.pubsub]
    return Report(
        url=endpoint.url,
        prefix=prefix,
        redis_version=server.version,
        dialects=sorted(d.value for d in every),
        namespaces=namespaces,
        findings=findings,
        evidence=evidence,
        sniff_seconds=heard.seconds,
        messages=heard.messages,
        probed=bool(probes),
        facts={
            "masters": masters,
            "split_masters": {m: [list(r) for r in runs] for m, runs in split_masters.items()},
            "monitored": heard.monitored_masters + heard.monitored_replicas
            or ([f"{endpoint.host}:{endpoint.port}"] if heard.monitored else []),
            "spublished": heard.spublished,
            "numpat": snap.numpat,
            "clients": len(server.clients),
            "pubsub_clients": len(subscribers),
            "buffer_limit": server.buffer_limit.describe() if server.buffer_limit else None,
            "max_omem": max((c.omem for c in subscribers), default=0),
            "malformed": heard.malformed_count,
            "bytes": heard.payload_bytes,
            "orphan_answers": heard.orphans,
            "streams": None
            if streams is None
            else {
                "key": streams.key,
                "length": streams.length,
                "nodes": streams.nodes,
                "sessions": streams.sessions,
                "heartbeats": any(streams.heartbeat_uids.values()),
            },
        },
    )
