"""Which dialects side by side on one prefix are hazards (pure, no Redis)."""

from __future__ import annotations

from siotools.dialects.detect import (
    MixHazard,
    counts_masters_per_slot_run,
    legacy_versions_mixed,
    mix_hazards,
    needs_sharded_pubsub,
)
from siotools.protocol import Dialect

L, LL, C, S = Dialect.LEGACY, Dialect.LEGACY_LITE, Dialect.CURRENT, Dialect.SHARDED


def test_4x_beside_5x_is_one_generation_but_mixed() -> None:
    assert legacy_versions_mixed([L, LL])
    assert not legacy_versions_mixed([L]) and not legacy_versions_mixed([LL, C])
    assert mix_hazards([L, LL]) == []


def test_classic_generations_misread_each_others_requests() -> None:
    assert mix_hazards([L, C]) == [MixHazard.REQUESTS_MISREAD]
    assert mix_hazards([LL, C]) == [MixHazard.REQUESTS_MISREAD]  # 4.x asks like 5.x


def test_sharded_and_classic_never_meet() -> None:
    assert mix_hazards([S, C]) == [MixHazard.CHANNELS_APART]
    assert mix_hazards([S, LL]) == [MixHazard.CHANNELS_APART]
    assert mix_hazards([L, C, S]) == [MixHazard.REQUESTS_MISREAD, MixHazard.CHANNELS_APART]


def test_dialects_in_no_pair() -> None:
    assert mix_hazards([S]) == [] and mix_hazards([C, Dialect.PYSOCKETIO]) == []
    assert mix_hazards([Dialect.STREAMS, C]) == []


def test_only_the_sharded_adapter_needs_sharded_pubsub() -> None:
    assert needs_sharded_pubsub([C, S])
    assert not needs_sharded_pubsub([L, LL, C, Dialect.STREAMS, Dialect.PYSOCKETIO])
    assert not needs_sharded_pubsub([])


def test_the_node_redis_4_adapters_count_a_master_per_slot_run() -> None:
    # 8.x classic and sharded and the streams adapter sum over node-redis 4's masters list;
    # socket.io-redis 4.x/5.x and python-socketio count each node once.
    for d in (C, S, Dialect.STREAMS):
        assert counts_masters_per_slot_run([L, d])
    assert not counts_masters_per_slot_run([L, LL, Dialect.PYSOCKETIO])
    assert not counts_masters_per_slot_run([])
