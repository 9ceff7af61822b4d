"""The cluster doctor: why requests time out, from what Redis and the wire say.

Passive by default: ``PUBSUB`` counts, ``CLIENT LIST``, ``INFO``, ``CONFIG GET`` where
allowed, and a few seconds of ``PSUBSCRIBE`` listening, none of which a node can notice
(nothing is published, nothing SUBSCRIBEd, so NUMSUB and SHARDNUMSUB stay the same).
``probe=True`` adds one read-only request per namespace through
:class:`~siotools.ClusterClient` to measure who answers and how fast::

    report = await siotools.doctor("redis://127.0.0.1:6379/0", prefix="socket.io")
    report            # a notebook shows the findings (``_repr_html_``)
    report.exit_code  # 0 healthy, 1 problems
"""

from __future__ import annotations

import statistics

from siotools.dialects.detect import (
    clues,
    read_stream,
    reconcile_streams,
    snapshot,
    structural_evidence,
    with_traffic,
)
from siotools.dialects.detect import spoken as spoken_dialects
from siotools.exceptions import ConfigurationError
from siotools.health.facts import ServerFacts, Sniff, read_server, sniff
from siotools.health.probe import ProbeResult, probe
from siotools.health.report import Finding, NamespaceHealth, Report, Severity
from siotools.health.rules import Inputs, evaluate, is_probe
from siotools.protocol import ChannelGrammar, Dialect
from siotools.transport.endpoint import RedisEndpoint
from siotools.transport.pubsub import Publisher

__all__ = ["Finding", "NamespaceHealth", "Report", "Severity", "doctor"]


async def _other_prefixes(publisher: Publisher) -> list[str]:
    names = await publisher.execute(b"PUBSUB", b"CHANNELS", b"*-request#*")
    found = set()
    for raw in names:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        head = text.split("-request#", 1)[0]
        if head:
            found.add(head)
    shard = []
    try:
        shard = await publisher.execute(b"PUBSUB", b"SHARDCHANNELS", b"*#/*")
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
) -> Report:
    """Examine the cluster on ``prefix`` and say what is wrong.

    Args:
        url: The Redis URL, or a :class:`~siotools.transport.endpoint.RedisEndpoint` (a
            ``ClusterClient``'s ``endpoint``, password included).
        prefix: The adapters' key.
        probe_nodes: Also send one read-only request per namespace (``allRooms``) and
            measure who answers; without it nothing is sent at all.
        duration: Seconds of passive listening.
        timeout: Seconds the probe waits for answers.

    Returns:
        The :class:`Report` (``exit_code`` 0 when healthy, 1 with problems).

    Raises:
        RedisUnavailableError: Redis cannot be reached.
        ConfigurationError: Bad URL or arguments.
    """
    if duration < 0 or timeout <= 0:
        raise ConfigurationError("duration must be >= 0 and timeout > 0 seconds")
    prefix = prefix or "socket.io"
    endpoint = url if isinstance(url, RedisEndpoint) else RedisEndpoint.from_url(url)
    # The probe's ClusterClient takes a URL; an endpoint with a password has none to give.
    probe_url = url if isinstance(url, str) else (None if endpoint.password else endpoint.url)
    g = ChannelGrammar(prefix)
    publisher = Publisher(endpoint, name="siotools-doctor")
    await publisher.start()
    try:
        snap = await snapshot(publisher, prefix)
        server: ServerFacts = await read_server(publisher)
        structural, evidence = structural_evidence(snap)
        per_nsp = clues(snap)
        dialects = {nsp: set(d) for nsp, d in structural.items()}
        streams = await read_stream(publisher, prefix, snap)
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
                    probe_url, prefix, targets, spoken[0], timeout=timeout, want_sids=want_sids
                )
            )
            # Right after the probe, while the sockets it listed are (mostly) still there.
            for p in probes:
                if p.sids:
                    channels = [g.room(p.nsp, sid).encode() for sid in p.sids]
                    reply = await publisher.execute(b"PUBSUB", b"NUMSUB", *channels)
                    room_numsub[p.nsp] = {
                        sid: int(reply[2 * i + 1]) for i, sid in enumerate(p.sids)
                    }

        heard: Sniff = await sniff(endpoint, prefix, duration, snap, during=run_probe)
        others = await _other_prefixes(publisher) if not targets else []
    finally:
        await publisher.close()

    traffic: dict[str, set[Dialect]] = {}
    for d, per in heard.dialects.items():
        for nsp in per:
            traffic.setdefault(nsp, set()).add(d)
    for nsp, ds in traffic.items():
        with_traffic(dialects.setdefault(nsp, set()), ds)
    if any(c.sharded_subscribers for c in per_nsp.values()):
        evidence.append(
            "sharded traffic (SPUBLISH) is out of a passive listener's sight: only the "
            "sharded subscriptions were read, so 8.2 and 8.3 sharded nodes mixed (8.3 drops "
            "every 8.2 message) cannot be told apart ('siotools sniff --monitor' shows it)"
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
