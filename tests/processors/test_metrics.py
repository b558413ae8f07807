"""observe_all (bulk histogram observation) gives exactly what prometheus_client's per-value observe gives."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from processors.metrics import LatencyWindow, observe_all


def samples(h: Histogram) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("le", "")): s.value for m in h.collect() for s in m.samples
            if not s.name.endswith("_created")}


def test_observe_all_matches_observe_per_value() -> None:
    rng = random.Random(7)
    buckets = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
    # values on, just below and just above every bound, zero and beyond the last bound (+Inf bucket)
    values = [b + d for b in buckets for d in (-1e-9, 0.0, 1e-9)] + [0.0, 11.0, 1e6]
    values += [rng.uniform(0, 12) for _ in range(500)]
    one = Histogram("one_by_one", "x", buckets=buckets, registry=CollectorRegistry())
    bulk = Histogram("one_by_one", "x", buckets=buckets, registry=CollectorRegistry())
    for v in values:
        one.observe(v)
    observe_all(bulk, values[:100])
    observe_all(bulk, values[100:])
    observe_all(bulk, [])
    got, want = samples(bulk), samples(one)
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert abs(got[k] - v) < 1e-6, k
    assert want[("one_by_one_count", "")] == len(values)


def test_events_by_stream_reads_the_labelled_counters() -> None:
    from processors import metrics

    before = metrics.events_by_stream()
    metrics.EVENTS.labels("fence-test").inc(3)
    metrics.EVENTS.labels("fence-test").inc(4)
    after = metrics.events_by_stream()
    assert after["fence-test"] - before.get("fence-test", 0) == 7
    assert all(after[k] == v for k, v in before.items() if k != "fence-test")


def test_gc_pauses_are_timed_per_generation() -> None:
    """GcPauses (installed by the worker at start-up) observes one duration per collection, by generation."""
    import gc

    from processors import metrics

    def count(generation: int) -> float:
        for family in metrics.GC_SECONDS.collect():
            for sample in family.samples:
                if sample.name.endswith("_count") and sample.labels["generation"] == str(generation):
                    return sample.value
        return 0.0

    installed = [cb for cb in gc.callbacks if isinstance(cb, metrics.GcPauses)]
    for cb in installed:  # exactly one timer while counting
        gc.callbacks.remove(cb)
    timer = metrics.GcPauses()
    gc.callbacks.append(timer)
    try:
        before = count(2)
        gc.collect(2)
        gc.collect(2)
        assert count(2) == before + 2
    finally:
        gc.callbacks.remove(timer)
        gc.callbacks.extend(installed)


def test_latency_breakdown_splits_each_event_where_it_was_spent() -> None:
    window = LatencyWindow()
    # a batch started at t=10.0 and ended at t=10.002 (2 ms); three events: fetched by the consumer thread at
    # 9.990 / 9.994 / (unknown), taken by the drain loop 1 ms and 5 ms before the batch; totals 20, 9, 30 ms
    window.samples.extend([0.020, 0.009, 0.030])
    window.add_parts([0.020, 0.009, 0.030], [(9.990, 9.999), (9.994, 9.995), (None, 9.99)], 10.0, 10.002)
    assert len(window.parts) == 2  # an event without both stamps is left out of the breakdown only
    (a_before, a_hand, a_queued, a_batch), (b_before, b_hand, b_queued, b_batch) = window.parts
    assert [round(x * 1e3, 6) for x in (a_before, a_hand, a_queued, a_batch)] == [8.0, 9.0, 1.0, 2.0]
    assert [round(x * 1e3, 6) for x in (b_before, b_hand, b_queued, b_batch)] == [1.0, 1.0, 5.0, 2.0]
    for _ in range(198):  # 200 events in all: the slowest 1 % (2 events) are the two above
        window.add_parts([0.001], [(10.0, 10.0)], 10.0, 10.0005)
    bd = window.percentiles()["breakdown"]
    assert bd["slowest_1pct"] == {"before_fetch": 4.5, "handoff": 5.0, "queued": 3.0, "batch": 2.0}
    assert bd["all"]["batch"] == round((0.002 * 2 + 0.0005 * 198) / 200 * 1e3, 2)
    window.clear()
    assert window.percentiles() == {"count": 0} and not window.parts
