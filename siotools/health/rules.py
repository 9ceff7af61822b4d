"""From the facts to findings: each rule names a known cause of cluster trouble.

The causes come from the Node adapters' trackers: a foreign subscriber on the request
channel that NUMSUB counts as a node (socket.io-redis-adapter #406), two adapter
generations on one prefix (#506 and the 5.x crash on 8.x ack broadcasts), a socket.io-redis
4.x node without channel multiplexing (it never hears single-room broadcasts published on
room channels), nodes that do not answer (#431, a hung process), a consumer near the
pub/sub output-buffer limit (Redis then disconnects it, socket.io #4845), one pattern
subscription per namespace and node (#480), answers slower than the Node adapters' default
``requestsTimeout`` (a requester left at the default gave up before they came).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from siotools.dialects.answers import DefaultTimeout, default_timeouts
from siotools.dialects.detect import (
    MixHazard,
    NamespaceClues,
    PubSubSnapshot,
    classic,
    counts_masters_per_slot_run,
    dialect_name,
    generations,
    is_legacy,
    legacy_versions_mixed,
    mix_hazards,
    needs_sharded_pubsub,
)
from siotools.dialects.sharded import looks_like_socket_id
from siotools.health.facts import ClientInfo, ServerFacts, Sniff, TrackedRequest
from siotools.health.probe import ProbeResult
from siotools.health.report import Finding, Severity
from siotools.protocol import ChannelGrammar, Dialect

__all__ = ["Inputs", "dynamic_private_rooms", "evaluate", "nodes_estimate"]

_DEFAULT_LIMIT = (32 << 20, 8 << 20)  # Redis' default pubsub hard/soft limits
_NEAR_LIMIT = 0.5
_PATTERN_LOAD = 1000
_DEAF_SHARE = 0.8
_PROBE_REQUESTS = frozenset({"allRooms", "clients", "sockets", "fetchSockets"})
_HEADROOM = 0.5  # a probe answer slower than this share of the timeout leaves little margin


@dataclass(slots=True)
class Inputs:
    """Everything the rules read.

    Attributes:
        prefix: The prefix.
        snap: ``PUBSUB`` counts.
        clues: The subscription structure per namespace.
        dialects: The dialects seen per namespace (structure and traffic).
        server: INFO, CONFIG and CLIENT LIST.
        sniff: The passive listen.
        probes: The probe's results (empty without ``--probe``).
        other_prefixes: Prefixes with request channels, when this one has none.
        room_numsub: NUMSUB of socket-id room channels, per namespace (probe only).
        stream_nodes: Nodes a streams-adapter stream on the prefix shows (0: none).
        split_masters: On a Redis Cluster, the masters serving more than one run of slots,
            with their runs.
    """

    prefix: str
    snap: PubSubSnapshot
    clues: dict[str, NamespaceClues]
    dialects: dict[str, set[Dialect]]
    server: ServerFacts
    sniff: Sniff
    probes: list[ProbeResult] = field(default_factory=list)
    other_prefixes: list[str] = field(default_factory=list)
    room_numsub: dict[str, dict[str, int]] = field(default_factory=dict)
    stream_nodes: int = 0
    split_masters: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _probe_window(inp: Inputs) -> list[tuple[str, int, int]]:
    return [(p.nsp, p.started_ns, p.ended_ns) for p in inp.probes if p.started_ns]


def is_probe(req: TrackedRequest, windows: Iterable[tuple[str, int, int]]) -> bool:
    """Whether a request heard in the sniff is the probe's own: a read-only request of the
    same namespace, heard within the probe's window (the probe waits for its answers, so
    another requester's identical request in that window is taken for it: rare, harmless)."""
    return req.name in _PROBE_REQUESTS and any(
        req.nsp == nsp and start <= req.seen_ns <= end + 50_000_000 for nsp, start, end in windows
    )


def _node_like(c: ClientInfo) -> bool:
    # The subscription counts a node's connection holds (per namespace it serves):
    # 5.x: 1 pattern + request + response; 8.x classic: 1 pattern + 3 channels;
    # 4.x / siotools subscribe mode: 3 channels + one per room; sharded: 2+ shard channels.
    if c.ssub >= 2:
        return True
    if c.psub >= 1:
        return c.sub >= 2 or c.sub == 0
    return c.sub >= 3


def _suspects(clients: list[ClientInfo]) -> list[ClientInfo]:
    return [c for c in clients if c.sub >= 1 and not _node_like(c)]


def _legacy_psub_connections(clients: list[ClientInfo]) -> int:
    # socket.io-redis 5.x and siotools' psubscribe mode: per namespace one pattern plus the
    # request and response channels, on one connection (8.x holds three channels each).
    return sum(1 for c in clients if c.psub >= 1 and c.sub == 2 * c.psub and not c.ssub)


def nodes_estimate(c: NamespaceClues, server: ServerFacts) -> tuple[int, str]:
    """How many adapter nodes hold the request channel of a namespace, and how it is known.

    8.x classic nodes are counted by their response channels, 4.x-style nodes by NUMSUB of
    ``P#N#``, and 5.x-style nodes by their connections' subscription profile in CLIENT LIST
    (a ClusterClient holds response channels only, so the response channel's NUMSUB would
    count it). Without CLIENT LIST: the subscribers holding both request and response.
    """
    upper = min(c.request_subscribers, c.response_subscribers)
    if not server.clients:
        return upper, f"{upper} hold the response channel too, as every adapter node does"
    exact = len(c.current_uids) + c.broadcast_subscribers
    psub = min(_legacy_psub_connections(server.clients), max(0, upper - exact))
    parts = []
    if c.current_uids:
        parts.append(f"{len(c.current_uids)} 8.x node(s) by their response channels")
    if c.broadcast_subscribers:
        parts.append(f"{c.broadcast_subscribers} 4.x-style node(s) by NUMSUB of P#N#")
    if psub:
        parts.append(f"{psub} 5.x-style node(s) by their CLIENT LIST profile")
    return exact + psub, ", ".join(parts) or "no adapter node"


def _foreign(inp: Inputs, out: list[Finding]) -> None:
    g = ChannelGrammar(inp.prefix)
    probes = {p.nsp: p for p in inp.probes}
    suspects = _suspects(inp.server.clients)
    for nsp, c in inp.clues.items():
        nodes, how = nodes_estimate(c, inp.server)
        extra = c.request_subscribers - nodes
        if c.request_subscribers == 0 or extra <= 0:
            continue
        ev = [
            f"PUBSUB NUMSUB {g.request(nsp)} counts {c.request_subscribers} subscribers, but "
            f"the nodes are {nodes}: {how.replace('P#N#', g.broadcast(nsp))}",
        ]
        p = probes.get(nsp)
        if p is not None and p.error is None:
            ev.append(
                f"the probe's {p.request} request waited for {p.expected} answers and got "
                f"{p.answered} in {_ms(p.seconds)}"
            )
        if suspects:
            ev += [f"CLIENT LIST candidate: {s.label()}" for s in suspects[:10]]
        elif inp.server.clients:
            subs = [s for s in inp.server.clients if s.sub]
            ev.append(
                "CLIENT LIST shows no connection with an unusual subscription profile; the "
                "subscribers are: " + "; ".join(s.label() for s in subs[:8])
            )
        elif "CLIENT LIST" in inp.server.refused:
            ev.append(f"CLIENT LIST was refused ({inp.server.refused['CLIENT LIST']})")
        out.append(
            Finding(
                "foreign-subscriber",
                Severity.ERROR,
                f"{extra} subscriber(s) of {g.request(nsp)} are counted as nodes but are not: "
                f"every request will wait for them and time out",
                tuple(ev),
                "Find the connection(s) above and make them PSUBSCRIBE instead of SUBSCRIBE "
                "(a pattern is not counted by NUMSUB), or stop them (CLIENT KILL ID <id>); "
                "tools that only watch must never SUBSCRIBE a request channel.",
                nsp,
            )
        )


_HAZARDS = {
    MixHazard.REQUESTS_MISREAD: (
        "8.x fetchSockets()/allRooms() time out (the 5.x nodes are counted by NUMSUB but "
        "read the renumbered requests as other ones, #506), and an 8.x "
        "io.timeout().emit(..., ack) crashes every 5.x node (JSON.parse of a msgpack "
        "request)"
    ),
    MixHazard.CHANNELS_APART: (
        "sharded nodes (SSUBSCRIBE/SPUBLISH) and classic nodes (PSUBSCRIBE/PUBLISH) never "
        "hear each other's broadcasts or requests"
    ),
}


def _mixed(inp: Inputs, out: list[Finding]) -> None:
    every: dict[Dialect, list[str]] = {}
    for nsp, dialects in inp.dialects.items():
        for d in dialects:
            every.setdefault(d, []).append(nsp)
    families = generations(every)
    if len(families) < 2:
        if legacy_versions_mixed(every):
            out.append(
                Finding(
                    "mixed-legacy",
                    Severity.NOTE,
                    "socket.io-redis 4.x and 5.x nodes share the prefix",
                    ("broadcasts in both msgpack-lite (4.x) and notepack 2 (5.x) were heard",),
                    "They read each other's requests; binary, dates and undefined values "
                    "decode differently. Upgrade the 4.x nodes when you can.",
                )
            )
        return
    ev = []
    for d, nsps in sorted(every.items(), key=lambda kv: kv[0].value):
        uids: set[str] = set(inp.sniff.uids.get(d, set()))
        for nsp in nsps:
            c = inp.clues.get(nsp)
            if c is not None:
                uids |= set(c.node_uids(d))
        uid_text = f", uids {', '.join(sorted(uids))}" if uids else ""
        count = ""
        if is_legacy(d):
            n = max(
                (
                    nodes_estimate(inp.clues[x], inp.server)[0] - len(inp.clues[x].current_uids)
                    for x in nsps
                    if x in inp.clues
                ),
                default=0,
            )
            count = f", {n} node(s) in the busiest namespace (5.x requests carry no uid)"
        ev.append(f"{dialect_name(d)} in {', '.join(nsps)}{count}{uid_text}")
    hazards = [_HAZARDS[h] for h in mix_hazards(families)]
    names = " and ".join(dialect_name(d) for d in sorted(families, key=lambda d: d.value))
    out.append(
        Finding(
            "mixed-dialects",
            Severity.ERROR,
            f"two adapter generations share the prefix {inp.prefix}: {names}",
            tuple(ev + hazards),
            "Give each generation its own key (the adapters' key/channelPrefix option) and "
            "migrate the nodes in one go; the protocols are not compatible on one prefix.",
        )
    )


def _multiplexing(inp: Inputs, out: list[Finding]) -> None:
    g = ChannelGrammar(inp.prefix)
    probes = {p.nsp: p for p in inp.probes}
    for nsp, c in inp.clues.items():
        if not c.subscribe_mode:
            continue
        publishers = bool(c.room_channels) or inp.sniff.room_channel_broadcasts.get(nsp, 0) > 0
        ev = []
        nomux_uids = inp.sniff.single_room_on_base.get(nsp, set())
        if nomux_uids:
            ev.append(
                f"single-room broadcasts were published on {g.broadcast(nsp)} instead of the "
                f"room's channel by node(s) {', '.join(sorted(nomux_uids))}: "
                "withChannelMultiplexing is off there"
            )
        p = probes.get(nsp)
        numsub = inp.room_numsub.get(nsp, {})
        if p is not None and numsub:
            # Per answering node (each clients answer lists one node's sockets): a node
            # that multiplexes SUBSCRIBEs each socket's id room; one that does not, none.
            # Sockets that connected or left meanwhile make a few misses on any node.
            windows = [(p.nsp, p.started_ns, p.ended_ns)]
            answers = [
                sids
                for r in inp.sniff.requests.values()
                if r.name == "clients" and is_probe(r, windows)
                for sids in r.answer_sids
            ]
            deaf_nodes = []
            for sids in answers:
                known = [sid for sid in sids if sid in numsub]
                deaf = [sid for sid in known if numsub[sid] == 0]
                if known and len(deaf) >= _DEAF_SHARE * len(known):
                    deaf_nodes.append((len(deaf), len(known), deaf[0]))
            if deaf_nodes and len(deaf_nodes) < len(answers):
                for n_deaf, n_known, example in deaf_nodes:
                    ev.append(
                        f"a node answered the probe with {n_known} socket(s), {n_deaf} of them "
                        f"without a SUBSCRIBEd id-room channel ({g.room(nsp, example)} has "
                        "NUMSUB 0): that node does not multiplex"
                    )
        if not ev or not publishers:
            continue
        rooms = len(c.room_channels)
        ev.append(
            f"{rooms} room channels of {nsp} are SUBSCRIBEd (nodes with multiplexing on)"
            if rooms
            else f"{inp.sniff.room_channel_broadcasts.get(nsp, 0)} broadcasts were sent on room "
            f"channels of {nsp}"
        )
        out.append(
            Finding(
                "no-multiplexing",
                Severity.ERROR,
                f"socket.io-redis 4.x nodes without channel multiplexing serve {nsp}: they "
                "miss every single-room broadcast published on a room channel",
                tuple(ev),
                "Set withChannelMultiplexing the same on every node (true is the default), "
                "or upgrade them to socket.io-redis 5.x (PSUBSCRIBE, hears every room).",
                nsp,
            )
        )


def _unanswered(inp: Inputs, out: list[Finding]) -> None:
    end = inp.sniff.started_ns + int(inp.sniff.seconds * 1e9)
    grace = int(min(1.0, inp.sniff.seconds / 2) * 1e9)
    windows = _probe_window(inp)
    by_nsp: dict[str, list[TrackedRequest]] = {}
    for req in inp.sniff.requests.values():
        if is_probe(req, windows) or req.seen_ns > end - grace:
            continue
        by_nsp.setdefault(req.nsp, []).append(req)
    for nsp, reqs in sorted(by_nsp.items()):
        # A single-socket request nobody answers is "socket not found" (the legacy adapters
        # answer only from the node that has it): not a node's fault.
        bad = [r for r in reqs if not r.complete and r.expected is not None]
        if not bad:
            continue
        ev = []
        for r in bad[:6]:
            want = "the first answer" if r.expected is None else f"{r.expected} answers"
            got = ", ".join(_ms(x) for x in r.latencies[:8]) or "none"
            sender = f" from node {r.uid}" if r.uid else ""
            ev.append(
                f"{r.name} {r.request_id}{sender} ({r.dialect.value}): waited for {want}, "
                f"got {len(r.answers_ns)} (after {got})"
            )
        out.append(
            Finding(
                "unanswered-requests",
                Severity.ERROR,
                f"{len(bad)} of {len(reqs)} request(s) in {nsp} got fewer answers than their "
                "requester waits for: they end in 'timeout reached'",
                tuple(ev),
                "A node counted by NUMSUB does not answer: a hung process, a foreign "
                "subscriber (see above), a customHook or serverSideEmit listener that never "
                "calls back (#431), or a node of another adapter generation.",
                nsp,
            )
        )


def _timeout_text(defaults: tuple[DefaultTimeout, ...]) -> str:
    return " or ".join(f"{d.seconds * 1000:.0f} ms ({d.adapters})" for d in defaults)


def _beyond(latency: float, defaults: tuple[DefaultTimeout, ...]) -> list[DefaultTimeout]:
    return [d for d in defaults if latency > d.seconds]


def _late_answers(inp: Inputs, out: list[Finding]) -> None:
    """Answers heard later than the requester's dialect's default ``requestsTimeout``.

    What a passive listener can say: when a request and each answer crossed Redis (their
    delivery to this listener, within a millisecond of the nodes'), hence how long the
    requester had to wait. What it cannot: the timeout the requester runs with, which is
    never on the wire (an application may set ``requestsTimeout`` higher, and then it
    waited, or lower, and then earlier answers were too late too), nor whether the
    requester's own event loop was late to read the answers. The default is what a
    requester without the option uses; 5.x nodes default to 1000 ms up to 5.1 and
    5000 ms from 5.2, which the wire does not tell apart.
    """
    windows = _probe_window(inp)
    by_nsp: dict[str, list[tuple[TrackedRequest, list[float], tuple[DefaultTimeout, ...]]]] = {}
    for req in inp.sniff.requests.values():
        if is_probe(req, windows):
            continue
        defaults = default_timeouts(req.dialect, inp.dialects.get(req.nsp, ()))
        late = [x for x in req.latencies if defaults and _beyond(x, defaults)]
        if late:
            by_nsp.setdefault(req.nsp, []).append((req, late, defaults))
    for nsp, rows in sorted(by_nsp.items()):
        every = all(
            len(_beyond(x, defaults)) == len(defaults) for _, late, defaults in rows for x in late
        )
        answers = sum(len(late) for _, late, _ in rows)
        ev = []
        for req, late, defaults in rows[:6]:
            sender = f" from node {req.uid}" if req.uid else ""
            ev.append(
                f"{req.name} {req.request_id}{sender} ({req.dialect.value}): "
                f"{len(late)} answer(s) after {', '.join(_ms(x) for x in late[:8])}; the "
                f"default requestsTimeout is {_timeout_text(defaults)}"
            )
        ev.append(
            "the timeout a requester runs with is never on the wire: one that set "
            "requestsTimeout above these latencies waited for them; one left at the default "
            "had already failed with 'timeout reached' and dropped them"
        )
        out.append(
            Finding(
                "late-answers",
                Severity.WARNING if every else Severity.NOTE,
                f"{answers} answer(s) to {len(rows)} request(s) in {nsp} came later than the "
                "default requestsTimeout" + ("" if every else " of the older adapter versions"),
                tuple(ev),
                "Find why the answering node is slow (a blocked event loop, a slow "
                "serverSideEmit or customHook listener, a backlog on its Redis connection), "
                "or give the requesting nodes a requestsTimeout above the slowest answer.",
                nsp,
            )
        )


def _probe_latency(inp: Inputs, out: list[Finding]) -> None:
    """The probe's answers (one per node) against the default ``requestsTimeout``."""
    for p in inp.probes:
        if p.error is not None:
            continue
        reqs = [
            r
            for r in inp.sniff.requests.values()
            if is_probe(r, [(p.nsp, p.started_ns, p.ended_ns)])
        ]
        rows = [(r, x) for r in reqs for x in r.latencies]
        if not rows:
            continue
        req, slowest = max(rows, key=lambda row: row[1])
        defaults = default_timeouts(req.dialect, inp.dialects.get(p.nsp, ()))
        if not defaults or slowest <= _HEADROOM * defaults[0].seconds:
            continue
        over = _beyond(slowest, defaults)
        if over:
            title = (
                f"a node answered the probe's {req.name} in {p.nsp} after {_ms(slowest)}, "
                "later than the default requestsTimeout"
            )
            severity = Severity.ERROR if len(over) == len(defaults) else Severity.WARNING
        else:
            share = 100 * slowest / defaults[0].seconds
            title = (
                f"a node answered the probe's {req.name} in {p.nsp} after {_ms(slowest)}, "
                f"{share:.0f}% of the default requestsTimeout"
            )
            severity = Severity.NOTE
        out.append(
            Finding(
                "slow-answers",
                severity,
                title,
                (
                    "the probe's answers, one per node, in arrival order: "
                    + ", ".join(_ms(x) for _, x in sorted(rows, key=lambda row: row[1])),
                    f"default requestsTimeout: {_timeout_text(defaults)}",
                    f"the probe waited {_ms(p.seconds)} for {p.expected} answer(s) and got "
                    f"{p.answered}",
                ),
                "A node that answers this late makes every cluster request of a requester "
                "with the default timeout fail: find it (a blocked event loop, CPU-bound "
                "handlers, a backlog on its Redis connection), or raise requestsTimeout on "
                "every node.",
                p.nsp,
            )
        )


def _probes(inp: Inputs, out: list[Finding]) -> None:
    g = ChannelGrammar(inp.prefix)
    for p in inp.probes:
        if p.error is not None:
            out.append(
                Finding(
                    "probe-failed",
                    Severity.NOTE,
                    f"the probe of {p.nsp} could not run",
                    (p.error,),
                    "Run the doctor without --probe, or with a siotools that speaks this dialect.",
                    p.nsp,
                )
            )
            continue
        reqs = [
            r
            for r in inp.sniff.requests.values()
            if is_probe(r, [(p.nsp, p.started_ns, p.ended_ns)])
        ]
        lat = [x for r in reqs for x in r.latencies]
        lat_text = ", ".join(_ms(x) for x in lat[:10]) or "none heard"
        c = inp.clues.get(p.nsp)
        foreign = max(0, c.request_subscribers - nodes_estimate(c, inp.server)[0]) if c else 0
        if p.answered >= p.expected - foreign:
            continue  # every node answered (the foreign-subscriber finding says the rest)
        out.append(
            Finding(
                "silent-nodes",
                Severity.ERROR,
                f"{p.expected - p.answered} of {p.expected} subscribers of "
                f"{g.request(p.nsp)} did not answer the probe's {p.request} in "
                f"{_ms(p.seconds)}",
                (
                    f"NUMSUB {g.request(p.nsp)} = {p.expected}; answers: {p.answered}",
                    f"answer latencies: {lat_text}",
                ),
                "Find the node that does not answer (hung, overloaded, another adapter "
                "generation, or a foreign subscriber) and restart, upgrade or remove it.",
                p.nsp,
            )
        )


def _buffers(inp: Inputs, out: list[Finding]) -> None:
    limit = inp.server.buffer_limit
    if limit is not None:
        hard, soft = limit.hard, limit.soft
        where = f"client-output-buffer-limit pubsub: {limit.describe()}"
    else:
        hard, soft = _DEFAULT_LIMIT
        where = "the limit could not be read (CONFIG GET refused); Redis' default is 32 MiB/8 MiB"
    edge = min(x for x in (soft, hard) if x) if (soft or hard) else 0
    if not edge:
        return
    for c in inp.server.clients:
        if not c.pubsub or c.omem < edge * _NEAR_LIMIT:
            continue
        out.append(
            Finding(
                "slow-consumer",
                Severity.WARNING,
                f"a subscriber holds {c.omem / (1 << 20):.1f} MiB unread, "
                f"{100 * c.omem / edge:.0f}% of its output-buffer limit",
                (f"CLIENT LIST: {c.label()} omem={c.omem}", where),
                "That connection reads too slowly: at the limit Redis disconnects it and its "
                "node hears nothing until it resubscribes (node-redis does not, socket.io "
                "#4845). Speed up its consumer, give it fewer patterns, or raise the pubsub "
                "limit.",
            )
        )


def _patterns(inp: Inputs, out: list[Finding]) -> None:
    numpat = inp.snap.numpat
    per_nsp = {nsp: c for nsp, c in inp.clues.items() if c.request_subscribers}
    if numpat < _PATTERN_LOAD:
        return
    out.append(
        Finding(
            "pattern-load",
            Severity.WARNING,
            f"Redis matches every PUBLISH against {numpat} pattern subscriptions",
            (
                f"PUBSUB NUMPAT = {numpat}; {len(per_nsp)} namespaces of {inp.prefix} have "
                "nodes, and each classic node PSUBSCRIBEs one pattern per namespace (#480)",
            ),
            "Clean up empty namespaces (cleanupEmptyChildNamespaces with adapter 8.1+), use "
            "fewer dynamic namespaces, or the sharded adapter.",
        )
    )


def _runs(runs: list[tuple[int, int]]) -> str:
    shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:4])
    return shown + (f" and {len(runs) - 4} more" if len(runs) > 4 else "")


def _split_slots(inp: Inputs, out: list[Finding]) -> None:
    every = {d for ds in inp.dialects.values() for d in ds}
    if not inp.split_masters or not counts_masters_per_slot_run(every):
        return
    split = sorted(inp.split_masters.items())
    times = max(len(runs) for _, runs in split)
    out.append(
        Finding(
            "split-slot-runs",
            Severity.WARNING,
            f"{len(split)} master(s) serve slots in more than one run: Node nodes on "
            f"node-redis 4 count their subscribers up to {times} times, so their cluster "
            "requests wait for answers that never come",
            (
                *(
                    f"master {master} serves {len(runs)} runs of slots ({_runs(runs)}): "
                    f"CLUSTER SLOTS lists it {len(runs)} times"
                    for master, runs in split
                ),
                "@socket.io/redis-adapter 8.x and @socket.io/redis-streams-adapter 0.3 on a "
                "node-redis 4 cluster client sum PUBSUB NUMSUB/SHARDNUMSUB over its "
                "'masters' list, which holds a master once per CLUSTER SLOTS entry: "
                "serverCount() is too high, and fetchSockets, serverSideEmit with acks and "
                "broadcasts with acks time out when that master holds a counted "
                "subscription (on ioredis each node counts once)",
            ),
            "Give each master one contiguous run of slots again (redis-cli --cluster reshard "
            "or CLUSTER SETSLOT), or run those Node nodes on ioredis.",
        )
    )


def _server(inp: Inputs, out: list[Finding]) -> None:
    v = inp.server.version_tuple
    sharded = needs_sharded_pubsub(d for ds in inp.dialects.values() for d in ds)
    if v and v < (7,) and not inp.snap.sharded_supported:
        out.append(
            Finding(
                "redis-version",
                Severity.ERROR if sharded else Severity.NOTE,
                f"Redis {inp.server.version} has no sharded pub/sub",
                ("PUBSUB SHARDCHANNELS is unknown to this server",),
                "The 8.x sharded adapter needs Redis 7.0 or later.",
            )
        )
    for what, why in sorted(inp.server.refused.items()):
        out.append(
            Finding(
                "refused",
                Severity.NOTE,
                f"Redis refused {what}",
                (why,),
                "Grant the doctor's user that command (read-only) for a fuller report.",
            )
        )


def _malformed(inp: Inputs, out: list[Finding]) -> None:
    s = inp.sniff
    if not s.malformed_count:
        return
    ev = list(s.malformed)
    families = classic(d for ds in inp.dialects.values() for d in ds)
    if len(families) > 1:
        ev.append(
            "several adapter generations share the prefix: answers without a request id are "
            "typically one generation's node answering a request it misread (see "
            "mixed-dialects)"
        )
    out.append(
        Finding(
            "malformed-frames",
            Severity.WARNING,
            f"{s.malformed_count} of {s.messages} messages on {inp.prefix} did not decode",
            tuple(ev),
            "Something publishes on the prefix in a format no adapter reads (a foreign "
            "producer, a custom parser option); the nodes drop these messages.",
        )
    )


def _listen_gaps(inp: Inputs, out: list[Finding]) -> None:
    s = inp.sniff
    if not s.gaps:
        return
    if s.lost_at_end:
        title = (
            f"the passive listen lost its Redis connection, which was not back when the "
            f"listen ended: {s.gap_seconds:.1f} s of {s.seconds:.1f} s were not heard"
        )
    else:
        title = (
            f"the passive listen lost its Redis connection {len(s.gaps)} time(s): "
            f"{s.gap_seconds:.1f} s of {s.seconds:.1f} s were not heard"
        )
    out.append(
        Finding(
            "listen-gap",
            Severity.NOTE,
            title,
            tuple(s.notices[:10]) or ("the listen's connection was lost",),
            "Requests and answers published meanwhile were not seen, so the answer counts "
            "and latencies cover only the rest of the listen; run the doctor again once "
            "Redis is stable.",
        )
    )


def _empty(inp: Inputs, out: list[Finding]) -> None:
    if any(
        c.request_subscribers or c.sharded_subscribers or c.subscribe_mode
        for c in inp.clues.values()
    ):
        return
    if inp.sniff.messages or inp.stream_nodes:
        return
    others = [p for p in inp.other_prefixes if p != inp.prefix]
    ev = [f"no channel of {inp.prefix} is subscribed and no message was heard"]
    if others:
        ev.append("prefixes with nodes on this Redis: " + ", ".join(others[:10]))
    out.append(
        Finding(
            "no-nodes",
            Severity.ERROR,
            f"no node serves prefix {inp.prefix} on this Redis",
            tuple(ev),
            "Check the prefix (the adapters' key option; --prefix) and the Redis URL "
            "(database numbers do not matter for pub/sub, the server does).",
        )
    )


def dynamic_private_rooms(clues: dict[str, NamespaceClues]) -> dict[str, list[str]]:
    """Namespace -> SSUBSCRIBEd room channels that name a socket id (20 characters).

    Both sharded generations skip a socket's own id room in ``dynamic`` mode
    (``!this.sids.has(room)``, 8.2.1 and 8.3.0 ``sharded-adapter.ts``); only 8.3.0's
    ``dynamic-private`` subscribes to them. So such a channel says an 8.3.0+ node is there
    (a public room named with exactly 20 characters would look the same: rare).
    """
    out = {}
    for nsp, c in clues.items():
        rooms = sorted(r for r in c.sharded_rooms if looks_like_socket_id(r))
        if rooms:
            out[nsp] = rooms
    return out


def _uids(per: dict[str, int]) -> str:
    return ", ".join(f"{uid} ({n})" for uid, n in sorted(per.items()))


def _sharded_generations(inp: Inputs, out: list[Finding]) -> None:
    """8.2.x sharded nodes (no ``nsp`` in the envelope), alone or beside 8.3 ones.

    The subscriptions of the two generations are the same (``SSUBSCRIBE P#N#`` and
    ``P#N#<uid>#``, 16-hex uids), so only their messages tell them apart, and those only
    ``MONITOR`` shows (``monitor=True``). ``dynamic-private`` room channels prove an 8.3
    node without it, never an 8.2 one.
    """
    s = inp.sniff
    if s.monitor_error is not None:
        out.append(
            Finding(
                "refused",
                Severity.NOTE,
                "Redis refused MONITOR: sharded traffic was not watched",
                (s.monitor_error,),
                "Grant the doctor's user MONITOR (or run it where it is allowed) to tell "
                "8.2.x sharded nodes from 8.3 ones.",
            )
        )
    old = s.sharded_without_nsp
    if not old:
        return
    private = dynamic_private_rooms(inp.clues)
    g = ChannelGrammar(inp.prefix)
    ev = [
        f"{sum(old.values())} sharded message(s) without 'nsp' in the envelope from node(s) "
        f"{_uids(old)}: @socket.io/redis-adapter 8.2.x (its own ClusterAdapter)"
    ]
    if s.sharded_with_nsp:
        ev.append(
            f"{sum(s.sharded_with_nsp.values())} with 'nsp' from node(s) "
            f"{_uids(s.sharded_with_nsp)}: 8.3.0+ (socket.io-adapter's ClusterAdapter)"
        )
    for nsp, rooms in sorted(private.items()):
        ev.append(
            f"socket-id room channels of {nsp} are SSUBSCRIBEd (e.g. {g.room(nsp, rooms[0])}): "
            "subscriptionMode 'dynamic-private', 8.3.0+ only"
        )
    if not s.sharded_with_nsp and not private:
        out.append(
            Finding(
                "sharded-8.2",
                Severity.NOTE,
                "the sharded nodes run @socket.io/redis-adapter 8.2.x",
                tuple(ev),
                "Upgrade them to 8.3 all at once: an 8.3 node drops every message of an "
                "8.2.x node (socket.io-adapter 2.5.6+ checks 'nsp'), so a rolling upgrade "
                "splits the cluster while it lasts.",
            )
        )
        return
    ev.append(
        "an 8.3 node drops every message without 'nsp' (socket.io-adapter 2.5.6+ "
        "ClusterAdapter.onMessage): the 8.2.x nodes' broadcasts never reach its sockets, "
        "and their requests and answers are lost, so requests time out both ways"
    )
    out.append(
        Finding(
            "mixed-sharded-versions",
            Severity.ERROR,
            f"@socket.io/redis-adapter 8.2.x and 8.3 sharded nodes share the prefix {inp.prefix}",
            tuple(ev),
            "Upgrade the 8.2.x nodes to 8.3 (or give the 8.3 nodes their own channelPrefix "
            "until every node is upgraded).",
        )
    )


def evaluate(inp: Inputs) -> list[Finding]:
    """Apply every rule; the findings worst first."""
    out: list[Finding] = []
    for rule in (
        _empty,
        _foreign,
        _mixed,
        _multiplexing,
        _unanswered,
        _late_answers,
        _probes,
        _probe_latency,
        _sharded_generations,
        _split_slots,
        _buffers,
        _patterns,
        _malformed,
        _listen_gaps,
        _server,
    ):
        rule(inp, out)
    out.sort(key=lambda f: f.severity.rank)
    return out
